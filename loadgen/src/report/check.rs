//! A check of the verdict as the report keeps it, and the exit code the checks make (SPEC
//! contract: 0 pass, 1 threshold breached or regression, 2 leak found; 2 wins). The checks
//! themselves are built by `verdict`.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Leak,
    Threshold,
    /// Worse than the `--baseline` run by more than the noise margin (exits 1, like a
    /// threshold).
    Regression,
}

/// One named check with its figures.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Check {
    pub name: String,
    pub kind: Kind,
    pub unit: String,
    /// The baseline sample (leaks) or the earlier run's figure (regressions).
    pub baseline: Option<f64>,
    pub peak: Option<f64>,
    /// The final value (leaks) or the measured figure (thresholds).
    pub value: Option<f64>,
    /// Allowed growth (leaks) or the limit (thresholds).
    pub limit: f64,
    pub passed: bool,
    /// Why the check could not be made (then it passes, and says so).
    pub skipped: Option<String>,
}

impl Check {
    /// One line: `PASS fds.socket  baseline 12  peak 90  final 12  (allowed +0)`.
    pub fn line(&self) -> String {
        let mark = match (self.passed, &self.skipped) {
            (_, Some(_)) => "SKIP",
            (true, None) => "PASS",
            (false, None) => "FAIL",
        };
        let f = |v: Option<f64>| v.map(fmt).unwrap_or_else(|| "-".into());
        match (&self.skipped, self.kind) {
            (Some(why), _) => format!("{mark} {:<28} {why}", self.name),
            (None, Kind::Leak) => format!(
                "{mark} {:<28} baseline {:>8}  peak {:>8}  final {:>8}  (allowed +{} {})",
                self.name,
                f(self.baseline),
                f(self.peak),
                f(self.value),
                fmt(self.limit),
                self.unit
            ),
            (None, Kind::Regression) => format!(
                "{mark} {:<28} {:>10} {}  (before {}, allowed {})",
                self.name,
                f(self.value),
                self.unit,
                f(self.baseline),
                fmt(self.limit)
            ),
            (None, Kind::Threshold) => format!(
                "{mark} {:<28} {:>10} {}  (limit {})",
                self.name,
                f(self.value),
                self.unit,
                fmt(self.limit)
            ),
        }
    }
}

fn fmt(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.0}")
    } else {
        format!("{v:.3}")
    }
}

/// The SPEC exit code for these checks: 2 if a leak check failed, else 1 if a threshold
/// failed, else 0.
pub fn exit_code(checks: &[Check]) -> i32 {
    if checks.iter().any(|c| !c.passed && c.kind == Kind::Leak) {
        2
    } else if checks.iter().any(|c| !c.passed) {
        1
    } else {
        0
    }
}
