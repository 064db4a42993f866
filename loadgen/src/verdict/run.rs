//! The checks only a run can make (beside the leak and threshold checks of the samples): the
//! target's own shutdown after a SIGTERM phase, the RSS peak, orphans left behind, and the
//! deployment's (replicas, rolling restart, revocation, database restart).

use std::process::ExitStatus;
use std::time::Duration;

use crate::report::sample::Sample;
use crate::report::{Check, DeploymentFacts, Kind};
use crate::scenario::Thresholds;

/// After a SIGTERM phase the target must exit by itself, in time (10 s), with 0, and fail no
/// request in flight. `status`: its exit, when the harness could see it (`external`: an
/// external target's exit is not ours to see).
pub fn shutdown_checks(
    status: Option<ExitStatus>,
    took: Duration,
    external: bool,
    in_flight_failed: u64,
) -> Vec<Check> {
    let external = external.then(|| "an external target's exit is not ours to see".to_string());
    vec![
        Check::threshold(
            "shutdown.exit_code",
            "",
            status.and_then(|s| s.code()).map(f64::from),
            0.0,
            status.is_some_and(|s| s.success()),
            external.clone(),
        ),
        Check::threshold(
            "shutdown.seconds",
            "s",
            Some(took.as_secs_f64()),
            10.0,
            status.is_some() && took <= Duration::from_secs(10),
            external,
        ),
        Check::threshold(
            "shutdown.in_flight_failed",
            "requests",
            Some(in_flight_failed as f64),
            0.0,
            in_flight_failed == 0,
            None,
        ),
    ]
}

/// The target's RSS peak from the baseline on (`samples` of one process), under the limit.
pub fn rss_peak_check(samples: &[Sample], baseline_t_ms: u64, t: &Thresholds) -> Check {
    let peak = samples
        .iter()
        .filter(|s| s.t_ms >= baseline_t_ms && !s.gone)
        .map(|s| s.rss_bytes as f64 / (1024.0 * 1024.0))
        .fold(0.0, f64::max);
    Check::threshold(
        "memory.rss_peak_mib",
        "MiB",
        Some(peak),
        t.rss_limit_mib,
        peak <= t.rss_limit_mib,
        None,
    )
}

/// Processes left behind once the run's teardown is done (a leak). Named `left_behind`:
/// `orphans` is the leak check of orphans alive at the end of the settle.
pub fn left_behind_check(strays: usize) -> Check {
    Check {
        name: "left_behind".into(),
        kind: Kind::Leak,
        unit: "processes".into(),
        baseline: Some(0.0),
        peak: None,
        value: Some(strays as f64),
        limit: 0.0,
        passed: false,
        skipped: None,
    }
}

/// The deployment's checks: each replica's peak RSS under the bound, requests failed while
/// replicas were replaced, how long a revoked key kept working, and the database
/// connections after a restart (every one owned by a replica's pool or listener).
pub fn deployment_checks(t: &Thresholds, f: &DeploymentFacts) -> Vec<Check> {
    let mut checks = Vec::new();
    for r in &f.replicas {
        checks.push(Check::threshold(
            &format!("memory.rss_peak_mib.{}", r.name),
            "MiB",
            Some(r.rss_peak_mib),
            t.rss_limit_mib,
            r.rss_peak_mib <= t.rss_limit_mib,
            None,
        ));
    }
    if !f.restarts.is_empty() {
        let failed: u64 = f.restart_eras.iter().map(|e| e.failed).sum();
        checks.push(Check::threshold(
            "rolling_restart.failed_requests",
            "requests",
            Some(failed as f64),
            t.restart_failed_requests as f64,
            failed <= t.restart_failed_requests,
            None,
        ));
        let killed = f.restarts.iter().filter(|s| s.killed).count();
        checks.push(Check::threshold(
            "rolling_restart.killed",
            "replicas",
            Some(killed as f64),
            0.0,
            killed == 0,
            None,
        ));
    }
    if let Some(r) = &f.revocation {
        let max = r.max_ms();
        checks.push(Check::threshold(
            "revocation.ms",
            "ms",
            max,
            t.revocation_ms,
            max.is_some_and(|m| m <= t.revocation_ms),
            None,
        ));
    }
    if let Some(r) = &f.db_restart {
        let (end, owned) = (r.connections_end, r.connections_owned_end);
        checks.push(Check::threshold(
            "db_restart.stray_connections",
            "connections",
            end.zip(owned).map(|(e, o)| (e - o) as f64),
            0.0,
            end.zip(owned).is_some_and(|(e, o)| e <= o),
            None,
        ));
    }
    checks
}
