//! `--baseline PREV/report.json`: every KPI and leak figure side by side with an earlier
//! run. A figure worse than before by more than the noise margin is a regression: a check
//! of kind `regression`, which fails the run with exit 1.
//!
//! "Worse by more than the margin" is relative, with a floor per unit so that figures near
//! zero (an error rate of 0, a leak growth of 0) are not judged on noise alone:
//! allowed = before ± noise × max(|before|, floor).
//! Per-method p99s are compared for the mix's methods with at least [`MIN_COUNT`] requests in
//! both runs (the p99 of a handful of requests is their maximum: noise).

use serde::{Deserialize, Serialize};

use super::Report;
use super::capacity::Capacity;
use crate::report::Kind;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Comparison {
    /// The earlier report, as given.
    pub baseline: String,
    pub baseline_started_at: String,
    pub baseline_git_revision: Option<String>,
    pub noise: f64,
    pub rows: Vec<Row>,
    pub capacity_before: Capacity,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Better {
    Lower,
    Higher,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Row {
    pub figure: String,
    pub unit: String,
    pub better: Better,
    pub before: f64,
    pub after: f64,
    /// (after − before) / before; None when before is 0.
    pub change: Option<f64>,
    /// The worst value still within the noise margin.
    pub allowed: f64,
    pub regression: bool,
}

/// The smallest difference that can count as a regression, per unit.
fn floor(unit: &str) -> f64 {
    match unit {
        // a 2-core machine's scheduling noise alone moves a p99 by a millisecond or two
        "ms" => 5.0,
        "ratio" => 0.005,
        "req/s" => 1.0,
        // the allocator alone moves RSS by a MiB or so between identical runs
        "MiB" => 8.0,
        "queries" | "writes" => 0.01,
        _ => 1.0,
    }
}

/// Requests a method needs in both runs before its p99 is compared (below that the p99 is
/// about the maximum, which is noise).
pub const MIN_COUNT: u64 = 200;

/// The figures compared: `(figure, unit, better, value)`.
fn figures(r: &Report) -> Vec<(String, String, Better, f64)> {
    let mut out = vec![(
        "throughput".to_string(),
        "req/s".to_string(),
        Better::Higher,
        r.load.throughput_rps,
    )];
    for c in &r.checks {
        let Some(v) = c.value.filter(|_| c.skipped.is_none()) else {
            continue;
        };
        match c.kind {
            Kind::Threshold if !c.name.starts_with("shutdown.") => {
                let better = if c.name == "config_cache.hit_rate" {
                    Better::Higher
                } else {
                    Better::Lower
                };
                out.push((c.name.clone(), c.unit.clone(), better, v));
            }
            Kind::Leak => {
                if let Some(b) = c.baseline {
                    out.push((
                        format!("{} growth", c.name),
                        c.unit.clone(),
                        Better::Lower,
                        // below the baseline is no growth (not a leak, and not a gain either)
                        (v - b).max(0.0),
                    ));
                }
            }
            _ => {}
        }
    }
    // per method, where a p99 means something: the mix's methods, with enough requests
    for (method, l) in &r.methods {
        if l.in_mix && l.percentiles.count >= MIN_COUNT {
            out.push((
                format!("{method} p99"),
                "ms".into(),
                Better::Lower,
                l.percentiles.p99_us as f64 / 1000.0,
            ));
        }
    }
    out
}

/// Compares `after` with `before` (read from `path`), with the relative `noise` margin.
pub fn compare(after: &Report, before: &Report, path: &str, noise: f64) -> Comparison {
    let old = figures(before);
    let rows = figures(after)
        .into_iter()
        .filter_map(|(figure, unit, better, a)| {
            let (_, _, _, b) = old.iter().find(|(f, ..)| *f == figure)?;
            let b = *b;
            let slack = noise * b.abs().max(floor(&unit));
            let (allowed, regression) = match better {
                Better::Lower => (b + slack, a > b + slack),
                Better::Higher => (b - slack, a < b - slack),
            };
            Some(Row {
                change: (b != 0.0).then(|| (a - b) / b),
                figure,
                unit,
                better,
                before: b,
                after: a,
                allowed,
                regression,
            })
        })
        .collect();
    Comparison {
        baseline: path.to_string(),
        baseline_started_at: before.started_at.clone(),
        baseline_git_revision: before.environment.git_revision.clone(),
        noise,
        rows,
        capacity_before: before.capacity.clone(),
    }
}

impl Comparison {
    /// The rows, regressions first.
    pub fn rows_regressions_first(&self) -> Vec<&Row> {
        let mut rows: Vec<_> = self.rows.iter().collect();
        rows.sort_by_key(|r| !r.regression);
        rows
    }
}
