//! The comparison with an earlier run (`--baseline`) as checks: one `regression.*` check per
//! figure `report::compare` compared, failed when it is worse beyond the noise margin.

use crate::report::compare::{Comparison, compare};
use crate::report::{Check, Kind, Report};

impl Report {
    /// Compares with the earlier report `before`: adds the comparison and its checks, and
    /// decides again.
    pub fn compare_with(&mut self, before: &Report, path: &str, noise: f64) {
        self.checks.retain(|c| c.kind != Kind::Regression);
        if before.name != self.name {
            self.notes.push(format!(
                "the baseline {path} is of scenario \"{}\", this run is \"{}\": figures compared as they are",
                before.name, self.name
            ));
        }
        let c = compare(self, before, path, noise);
        self.checks.extend(regression_checks(&c));
        self.comparison = Some(c);
        self.decide();
    }
}

/// One `regression.*` check per compared figure (failed when it regressed).
fn regression_checks(c: &Comparison) -> Vec<Check> {
    c.rows
        .iter()
        .map(|r| Check {
            name: format!("regression.{}", r.figure.replace(' ', ".")),
            kind: Kind::Regression,
            unit: r.unit.clone(),
            baseline: Some(r.before),
            peak: None,
            value: Some(r.after),
            limit: r.allowed,
            passed: !r.regression,
            skipped: None,
        })
        .collect()
}
