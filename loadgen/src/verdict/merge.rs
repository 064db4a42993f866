//! `mcp-loadgen merge`: the shards' figures merged by `report::merge`, and their checks
//! decided again on the merged figures (latency, errors, DB per request); every other check
//! keeps its worst shard.

use crate::report::merge::{figures, per};
use crate::report::{Check, Kind, Report};

/// Merges `reports` (with the paths they came from) into one, checks decided again.
pub fn merge(reports: Vec<(String, Report)>) -> anyhow::Result<Report> {
    let mut out = figures(&reports)?;
    out.checks = merged_checks(&reports, &out);
    out.decide();
    Ok(out)
}

/// Every check name of every shard once: the latency, error and DB thresholds decided again
/// on the merged figures, the others from their worst shard.
fn merged_checks(reports: &[(String, Report)], out: &Report) -> Vec<Check> {
    let mut names: Vec<String> = Vec::new();
    for (_, r) in reports {
        for c in &r.checks {
            if c.kind != Kind::Regression && !names.contains(&c.name) {
                names.push(c.name.clone());
            }
        }
    }
    let mix = out.mix_latency();
    let total = out.load.requests;
    names
        .iter()
        .map(|name| {
            let all: Vec<&Check> = reports.iter().filter_map(|(_, r)| r.check(name)).collect();
            let worst = all
                .iter()
                .find(|c| !c.passed)
                .or_else(|| all.iter().find(|c| c.skipped.is_none()))
                .or(all.first())
                .map(|c| (*c).clone())
                .expect("the name came from a check");
            let again = |value: Option<f64>, at_least: bool| {
                let mut c = worst.clone();
                c.value = value;
                c.skipped = if value.is_none() {
                    worst.skipped.clone()
                } else {
                    None
                };
                c.passed = c.skipped.is_some()
                    || value.is_some_and(|v| if at_least { v >= c.limit } else { v <= c.limit });
                c
            };
            match name.as_str() {
                "latency.p99" if mix.count > 0 => again(Some(mix.p99_us as f64 / 1000.0), false),
                "latency.mean" if mix.count > 0 => again(Some(mix.mean_us / 1000.0), false),
                "error_rate" if total > 0 => {
                    again(Some(out.load.failed as f64 / total as f64), false)
                }
                "db.config_queries_per_request" if out.db.is_some() => {
                    again(out.db.map(|d| d.config_queries_per_request), false)
                }
                "db.last_used_writes_per_request" if out.db.is_some() => {
                    again(out.db.map(|d| per(d.last_used_writes, total)), false)
                }
                _ => worst,
            }
        })
        .collect()
}
