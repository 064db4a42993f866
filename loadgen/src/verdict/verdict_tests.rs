use super::*;
use crate::load::Recorder;
use crate::observe::sampler::TargetMetrics;
use std::time::Instant;

fn sample(sockets: u32, tasks: f64) -> Sample {
    let mut s = Sample {
        probed: true,
        ..Sample::default()
    };
    s.fds.socket = sockets;
    s.fds.file = 5;
    s.metrics = Some(TargetMetrics {
        tokio_alive_tasks: Some(tasks),
        sessions: Some(0.0),
        ..TargetMetrics::default()
    });
    s
}

#[test]
fn growth_within_tolerance_passes_and_beyond_it_is_a_leak() {
    let leaks = Leaks {
        fds: 2,
        ..Leaks::default()
    };
    let base = sample(10, 20.0);
    let peak = sample(90, 200.0);
    let ok = sample(12, 20.0);
    let checks = leak_checks(&base, &[base, peak, ok], &ok, &leaks);
    assert_eq!(exit_code(&checks), 0, "{checks:#?}");
    let socket = checks.iter().find(|c| c.name == "fds.socket").unwrap();
    assert_eq!(
        (socket.baseline, socket.peak, socket.value),
        (Some(10.0), Some(90.0), Some(12.0))
    );
    assert!(settled(&base, &ok, &leaks));

    let leaked = sample(13, 21.0);
    let checks = leak_checks(&base, &[base, leaked], &leaked, &leaks);
    assert_eq!(exit_code(&checks), 2);
    let failed: Vec<_> = checks
        .iter()
        .filter(|c| !c.passed)
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(failed, ["fds.socket", "tokio.alive_tasks"]);
    assert!(!settled(&base, &leaked, &leaks));
    // falling below the baseline is not a leak
    assert!(settled(&base, &sample(3, 10.0), &leaks));
}

#[test]
fn zombies_count_from_zero_and_missing_metrics_are_skipped() {
    let mut base = sample(1, 1.0);
    base.children.zombies = 1;
    let mut now = base;
    now.metrics = None;
    let checks = leak_checks(&base, &[now], &now, &Leaks::default());
    let z = checks.iter().find(|c| c.name == "zombies").unwrap();
    assert!(!z.passed, "a zombie is a leak even if the baseline had it");
    let t = checks
        .iter()
        .find(|c| c.name == "tokio.alive_tasks")
        .unwrap();
    assert!(t.passed && t.skipped.is_some());
    assert_eq!(exit_code(&checks), 2);
}

fn load_with(latencies_ms: &[u64], failures: usize) -> crate::load::LoadResult {
    let r = Recorder::new();
    for (i, ms) in latencies_ms.iter().enumerate() {
        let start = Instant::now() - std::time::Duration::from_millis(*ms);
        let outcome = if i < failures {
            Err(("http 503".to_string(), "busy".to_string()))
        } else {
            Ok(())
        };
        r.record("tools/list", start, outcome);
    }
    r.finish()
}

#[test]
fn thresholds_breach_gives_exit_1_and_leaks_win() {
    let mix: BTreeSet<String> = ["tools/list".to_string()].into();
    let t = Thresholds::default();
    let fast = load_with(&[5; 100], 0);
    let checks = threshold_checks(&t, &fast, &mix, None, &[], 10.0);
    assert_eq!(exit_code(&checks), 0, "{checks:#?}");
    let p99 = checks.iter().find(|c| c.name == "latency.p99").unwrap();
    assert!((p99.value.unwrap() - 5.0).abs() < 0.5, "{p99:?}");

    let slow = load_with(&[2500; 10], 0);
    let checks = threshold_checks(&t, &slow, &mix, None, &[], 10.0);
    assert_eq!(exit_code(&checks), 1);
    assert!(
        !checks
            .iter()
            .find(|c| c.name == "latency.p99")
            .unwrap()
            .passed
    );

    let failing = load_with(&[5; 100], 2);
    let mut checks = threshold_checks(&t, &failing, &mix, None, &[], 10.0);
    let e = checks.iter().find(|c| c.name == "error_rate").unwrap();
    assert_eq!(e.value, Some(0.02));
    assert_eq!(exit_code(&checks), 1);
    let base = sample(1, 1.0);
    checks.extend(leak_checks(&base, &[], &sample(2, 1.0), &Leaks::default()));
    assert_eq!(exit_code(&checks), 2, "a leak wins over a threshold");
}

#[test]
fn cache_hit_rate_and_pool_use_come_from_the_metrics_window() {
    let mix: BTreeSet<String> = ["tools/list".to_string()].into();
    let t = Thresholds::default();
    let load = load_with(&[5; 10], 0);
    let mut a = sample(1, 1.0);
    let mut b = a;
    a.metrics.as_mut().unwrap().config_cache_hits = Some(100.0);
    a.metrics.as_mut().unwrap().config_cache_misses = Some(50.0);
    b.metrics.as_mut().unwrap().config_cache_hits = Some(190.0);
    b.metrics.as_mut().unwrap().config_cache_misses = Some(60.0);
    let mut busy = b;
    busy.metrics.as_mut().unwrap().db_pool_size = Some(10.0);
    busy.metrics.as_mut().unwrap().db_pool_idle = Some(2.0);
    let checks = threshold_checks(&t, &load, &mix, Some((&a, &b)), &[busy], 10.0);
    let hit = checks
        .iter()
        .find(|c| c.name == "config_cache.hit_rate")
        .unwrap();
    assert_eq!(hit.value, Some(0.9));
    assert!(!hit.passed);
    let pool = checks
        .iter()
        .find(|c| c.name == "db_pool.utilisation")
        .unwrap();
    assert_eq!(pool.value, Some(0.8));
    assert!(!pool.passed);
}

#[test]
fn metrics_text_is_parsed_by_family() {
    let text = "# HELP x\nmcp_proxy_tokio_alive_tasks 42\nmcp_proxy_upstream_connections{upstream=\"a\",state=\"active\"} 1\nmcp_proxy_upstream_connections{upstream=\"b\",state=\"active\"} 2\nmcp_proxy_upstream_connections{upstream=\"b\",state=\"closed\"} 9\nmcp_proxy_config_cache_hits_total 7\nmcp_proxy_db_queries_total{query=\"a\"} 2\nmcp_proxy_db_queries_total{query=\"b\"} 3\n";
    let m = TargetMetrics::parse(text);
    assert_eq!(m.tokio_alive_tasks, Some(42.0));
    assert_eq!(m.upstream_active, Some(3.0));
    assert_eq!(m.config_cache_hits, Some(7.0));
    assert_eq!(m.db_queries, Some(5.0));
    assert_eq!(m.sessions, None);
}

#[test]
fn without_a_pid_the_proc_checks_are_skipped_and_the_metrics_ones_still_judge() {
    let unprobed = |tasks: f64| Sample {
        probed: false,
        ..sample(0, tasks)
    };
    let checks = leak_checks(
        &unprobed(20.0),
        &[unprobed(90.0)],
        &unprobed(25.0),
        &Leaks::default(),
    );
    for name in ["fds.socket", "tcp.close_wait", "zombies", "rss"] {
        let c = checks.iter().find(|c| c.name == name).unwrap();
        assert!(
            c.skipped.as_deref().is_some_and(|w| w.contains("no PID")),
            "{c:?}"
        );
    }
    let tasks = checks
        .iter()
        .find(|c| c.name == "tokio.alive_tasks")
        .unwrap();
    assert!(!tasks.passed && tasks.skipped.is_none(), "{tasks:?}");
    assert_eq!(exit_code(&checks), 2);
}

#[test]
fn sessions_held_and_upstream_in_flight_fail_on_a_leak_and_pass_when_clean() {
    use crate::report::{SessionsHeld, UpstreamCounts};
    use crate::verdict::outside::{sessions_held_check, upstream_in_flight_check};
    let leaks = Leaks::default();
    let held = |n| SessionsHeld {
        asked: 10,
        held: n,
        held_abandoned: n,
        gone: 10 - n,
        ..SessionsHeld::default()
    };
    assert!(!sessions_held_check(Some(&held(3)), &leaks).passed);
    let clean = sessions_held_check(Some(&held(0)), &leaks);
    assert!(clean.passed && clean.skipped.is_none());
    assert!(sessions_held_check(None, &leaks).skipped.is_some());
    let up = |n| UpstreamCounts {
        mocks: 1,
        in_flight: n,
        ..UpstreamCounts::default()
    };
    assert!(!upstream_in_flight_check(Some(&up(1))).passed);
    assert!(upstream_in_flight_check(Some(&up(0))).passed);
    assert!(upstream_in_flight_check(None).skipped.is_some());
}
