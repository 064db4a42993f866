//! The verdict: leak checks (growth of each resource over its baseline, after the settle
//! window) and thresholds (latency, errors, cache, DB pool), and the exit code (SPEC
//! contract: 0 pass, 1 threshold breached, 2 leak found; 2 wins).
//!
//! Every check is built here: the leak and threshold checks of the samples (this file), the
//! run's own ([`run`]: shutdown, RSS peak, orphans, the deployment's), the shards' decided
//! again ([`merge`]) and the regressions against an earlier run ([`compare`]). The check type
//! and the exit code are data of the report (`report::check`), re-exported here.
//!
//! Pure: no IO. The run hands in the baseline, the samples and the load's figures.

pub mod compare;
pub mod cycles;
pub mod merge;
pub mod outside;
pub mod run;
pub mod tree;

use std::collections::BTreeSet;

use crate::load::LoadResult;
pub use crate::report::check::{Check, Kind, exit_code};
use crate::report::sample::Sample;
pub use crate::report::sample::{RESOURCES, Resource};
use crate::scenario::{Leaks, Thresholds};

impl Check {
    /// A threshold check: `value` against `limit`, `passed` decided by the caller.
    pub fn threshold(
        name: &str,
        unit: &'static str,
        value: Option<f64>,
        limit: f64,
        passed: bool,
        skipped: Option<String>,
    ) -> Check {
        Check {
            name: name.to_string(),
            kind: Kind::Threshold,
            unit: unit.to_string(),
            baseline: None,
            peak: None,
            value,
            limit,
            passed: skipped.is_some() || passed,
            skipped,
        }
    }
}

/// How much `r` may grow over its baseline (the scenario's `[leaks]`).
pub fn tolerance(r: &Resource, l: &Leaks) -> f64 {
    match r.name {
        "fds.socket" => f64::from(l.fds),
        "fds.pipe" => f64::from(l.fds),
        "fds.anon_inode" => f64::from(l.fds),
        "fds.file" => f64::from(l.fds),
        "tcp.close_wait" => f64::from(l.sockets_close_wait),
        "children" => f64::from(l.children),
        "zombies" => 0.0,
        "orphans" => 0.0,
        "threads" => f64::from(l.threads),
        "sockets.unix" => f64::from(l.sockets_unix),
        "tokio.alive_tasks" => f64::from(l.tasks),
        "sessions" => f64::from(l.sessions),
        "rss" => l.rss_mib,
        other => unreachable!("no tolerance for the resource {other}"),
    }
}

/// A sample with every /proc figure and no /metrics: tells which resources come from /proc.
fn probed() -> Sample {
    Sample {
        probed: true,
        ..Sample::default()
    }
}

/// Every resource within its tolerance of `baseline` in `now`? (The settle loop's test.)
/// In rounds (`leaks.cycles` ≥ 2) memory is judged by repetition, not waited for: a heap
/// that never shrinks back would keep every round's settle to its longest.
pub fn settled(baseline: &Sample, now: &Sample, leaks: &Leaks) -> bool {
    RESOURCES
        .iter()
        .filter(|r| leaks.cycles <= 1 || r.name != "rss")
        .all(|r| within(r, baseline, now, leaks))
}

fn within(r: &Resource, baseline: &Sample, now: &Sample, leaks: &Leaks) -> bool {
    match ((r.read)(baseline), (r.read)(now)) {
        (_, Some(n)) if r.absolute => n <= 0.0,
        (Some(b), Some(n)) => n - b <= tolerance(r, leaks) + 1e-9,
        _ => true,
    }
}

/// The leak checks: `baseline` (after warm-up), `during` (every sample from the baseline to
/// the end, for peaks), `last` (after the settle window).
pub fn leak_checks(
    baseline: &Sample,
    during: &[Sample],
    last: &Sample,
    leaks: &Leaks,
) -> Vec<Check> {
    RESOURCES
        .iter()
        .map(|r| {
            let b = (r.read)(baseline);
            let n = (r.read)(last);
            let peak = during
                .iter()
                .filter(|s| !s.gone)
                .filter_map(|s| (r.read)(s))
                .fold(None, |m: Option<f64>, v| Some(m.map_or(v, |m| m.max(v))));
            let skipped = match (b, n) {
                (_, None) | (None, _) if !last.probed && (r.read)(&probed()).is_some() => {
                    Some("no PID to probe (an external target without `target.pid`)".to_string())
                }
                (_, None) => Some("the target has no /metrics with this figure".to_string()),
                (None, _) if !r.absolute => {
                    Some("the target has no /metrics with this figure".to_string())
                }
                _ => None,
            };
            Check {
                name: r.name.to_string(),
                kind: Kind::Leak,
                unit: r.unit.to_string(),
                baseline: if r.absolute { Some(0.0) } else { b },
                peak,
                value: n,
                limit: tolerance(r, leaks),
                passed: skipped.is_some() || within(r, baseline, last, leaks),
                skipped,
            }
        })
        .collect()
}

/// The threshold checks over the measured load.
pub fn threshold_checks(
    t: &Thresholds,
    load: &LoadResult,
    mix: &BTreeSet<String>,
    metrics_window: Option<(&Sample, &Sample)>,
    samples: &[Sample],
    db_pool_max: f64,
) -> Vec<Check> {
    let h = load.mix_histogram(mix);
    let (ok, failed) = load.totals();
    let total = ok + failed;
    let at_most = |v: Option<f64>, l: f64| v.is_some_and(|v| v <= l);
    let none = h.is_empty().then(|| "no request completed".to_string());
    let p99 = (!h.is_empty()).then(|| h.value_at_quantile(0.99) as f64 / 1000.0);
    let mean = (!h.is_empty()).then(|| h.mean() / 1000.0);
    let error_rate = (total > 0).then(|| failed as f64 / total as f64);
    let (hit_rate, hit_skip) = cache_hit_rate(metrics_window);
    let (pool, pool_skip) = pool_utilisation(samples, db_pool_max);
    // DB queries per request over the measured window, from the target's counters
    let per_request = |read: fn(&crate::report::sample::TargetMetrics) -> Option<f64>| {
        let (a, b) = metrics_window?;
        let d = read(&b.metrics?)? - read(&a.metrics?)?;
        (total > 0).then(|| d / total as f64)
    };
    let per_request_skip = |v: Option<f64>| {
        v.is_none().then(|| {
            if total == 0 {
                "no request completed".to_string()
            } else {
                "the target has no mcp_proxy_db_queries_total{query} on /metrics".to_string()
            }
        })
    };
    let config_q = per_request(|m| m.db_config_queries);
    let writes = per_request(|m| m.db_last_used_writes);
    vec![
        Check::threshold(
            "latency.p99",
            "ms",
            p99,
            t.p99_ms,
            at_most(p99, t.p99_ms),
            none.clone(),
        ),
        Check::threshold(
            "latency.mean",
            "ms",
            mean,
            t.mean_ms,
            at_most(mean, t.mean_ms),
            none,
        ),
        Check::threshold(
            "error_rate",
            "ratio",
            error_rate,
            t.error_rate,
            at_most(error_rate, t.error_rate),
            (total == 0).then(|| "no request completed".to_string()),
        ),
        Check::threshold(
            "config_cache.hit_rate",
            "ratio",
            hit_rate,
            t.cache_hit_rate,
            hit_rate.is_some_and(|v| v >= t.cache_hit_rate),
            hit_skip,
        ),
        Check::threshold(
            "db_pool.utilisation",
            "ratio",
            pool,
            t.db_pool_utilisation,
            at_most(pool, t.db_pool_utilisation),
            pool_skip,
        ),
        Check::threshold(
            "db.config_queries_per_request",
            "queries",
            config_q,
            t.config_queries_per_request,
            at_most(config_q, t.config_queries_per_request),
            per_request_skip(config_q),
        ),
        Check::threshold(
            "db.last_used_writes_per_request",
            "writes",
            writes,
            t.last_used_writes_per_request,
            at_most(writes, t.last_used_writes_per_request),
            per_request_skip(writes),
        ),
    ]
}

/// The config-cache hit rate over the measured window, from the target's counters (or why
/// there is none).
fn cache_hit_rate(metrics_window: Option<(&Sample, &Sample)>) -> (Option<f64>, Option<String>) {
    let hits = metrics_window.and_then(|(a, b)| {
        let (a, b) = (a.metrics?, b.metrics?);
        let h = b.config_cache_hits? - a.config_cache_hits?;
        let m = b.config_cache_misses? - a.config_cache_misses?;
        Some((h, m))
    });
    match hits {
        Some((h, m)) if h + m > 0.0 => (Some(h / (h + m)), None),
        Some(_) => (
            None,
            Some("no config-cache lookups in the window".to_string()),
        ),
        None => (
            None,
            Some("the target has no config-cache counters on /metrics".to_string()),
        ),
    }
}

/// The DB pool's peak utilisation (in use / its size) over `samples` (or why there is none).
fn pool_utilisation(samples: &[Sample], db_pool_max: f64) -> (Option<f64>, Option<String>) {
    let pool = samples
        .iter()
        .filter_map(|s| {
            let m = s.metrics?;
            Some((m.db_pool_size? - m.db_pool_idle?) / db_pool_max)
        })
        .fold(None, |m: Option<f64>, v| Some(m.map_or(v, |m| m.max(v))));
    let pool_skip = pool
        .is_none()
        .then(|| "the target has no DB pool gauges on /metrics".to_string());
    (pool, pool_skip)
}

#[cfg(test)]
#[path = "verdict_tests.rs"]
mod tests;
