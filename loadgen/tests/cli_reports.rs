//! Contract: a real run writes every report format, takes its share with `--shard I/N`, and
//! fails with exit 1 on a regression against `--baseline`.

mod common;

use std::path::Path;

use common::*;

const SCENARIO: &str = r#"
name = "reports"
[target]
proxy_args = ["--upstream-http-idle-timeout", "2s"]
[[upstream]]
name = "echo"
mock = "serve"
[load]
users = 9
warmup = "1s"
duration = "2s"
mix = { "tools/call echo" = 3, "tools/list" = 1 }
[leaks]
settle = "8s"
"#;

/// The recorded fixture, doctored to have been 100 times faster, written into `dir`.
fn better_baseline(dir: &Path) -> std::path::PathBuf {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/report.json");
    let mut before: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture).unwrap()).unwrap();
    let rps = before["load"]["throughput_rps"].as_f64().unwrap();
    before["load"]["throughput_rps"] = (rps * 100.0).into();
    let baseline = dir.join("before.json");
    std::fs::write(&baseline, serde_json::to_vec(&before).unwrap()).unwrap();
    baseline
}

#[test]
fn with_no_fail_a_failed_verdict_exits_0_and_stays_in_the_report() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    subreaper();
    let dir = tempfile::tempdir().unwrap();
    let baseline = better_baseline(dir.path());
    let run = run_scenario_args(
        SCENARIO,
        &[],
        &["--baseline", baseline.to_str().unwrap(), "--no-fail"],
    );
    assert_eq!(
        run.code, 0,
        "stdout:\n{}\nstderr:\n{}",
        run.stdout, run.stderr
    );
    assert!(run.stdout.contains("--no-fail"), "{}", run.stdout);
    assert_eq!(run.report()["exit_code"], 1);
    assert_eq!(run.report()["shard"], serde_json::Value::Null);
    assert_eq!(run.report()["load"]["users"], 9);
}

#[test]
fn a_sharded_run_compared_with_a_better_baseline_writes_every_format_and_exits_1() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    subreaper();
    let dir = tempfile::tempdir().unwrap();
    let baseline = better_baseline(dir.path());

    let run = run_scenario_args(
        SCENARIO,
        &[],
        &["--shard", "1/2", "--baseline", baseline.to_str().unwrap()],
    );
    assert_eq!(
        run.code, 1,
        "stdout:\n{}\nstderr:\n{}",
        run.stdout, run.stderr
    );
    assert!(
        run.stdout.contains("FAIL regression.throughput"),
        "{}",
        run.stdout
    );
    let report = run.report();
    assert_eq!(
        report["shard"],
        serde_json::json!({ "index": 1, "count": 2 })
    );
    // 9 users over 2 shards: shard 0 takes 5, shard 1 takes 4
    assert_eq!(report["load"]["users"], 4);
    assert_eq!(report["ops"]["initialize"]["ok"], 4, "one session per user");
    let c = &report["comparison"];
    assert_eq!(c["baseline"], baseline.to_str().unwrap());
    assert!(
        report["notes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n.as_str().unwrap().contains("is of scenario \"fixture\"")),
        "{}",
        report["notes"]
    );
    // every format is there and says what failed
    let read = |f: &str| std::fs::read_to_string(run.out.join(f)).unwrap();
    let md = read("report.md");
    assert!(md.contains("### Compared with the earlier run"), "{md}");
    assert!(md.contains("❌ regression"), "{md}");
    assert!(md.contains("Started ") && md.contains("shard 1/2"), "{md}");
    let junit = read("junit.xml");
    assert!(
        junit.contains("<testsuite name=\"reports.regressions\""),
        "{junit}"
    );
    assert!(junit.contains("regression.throughput"), "{junit}");
    let html = read("report.html");
    assert!(html.to_lowercase().starts_with("<!doctype html>"));
    assert!(html.contains("regression.throughput"));
    assert!(read("summary.txt").contains("FAIL regression.throughput"));
    // and the report re-reads as a report
    mcp_loadgen::report::Report::read(&run.out.join("report.json")).unwrap();
    assert_no_process_left(&[], "a sharded run");
}

#[test]
fn a_bad_shard_or_a_missing_baseline_is_a_harness_error() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let scenario = r#"
name = "bad"
[[upstream]]
name = "echo"
mock = "serve"
[load]
users = 2
warmup = "1s"
duration = "1s"
mix = { "tools/list" = 1 }
"#;
    for (args, says) in [
        (&["--shard", "2/2"][..], "0 ≤ I < N"),
        (&["--shard", "x"][..], "expected I/N"),
        (&["--shard", "0/3"][..], "fewer than 3 shards"),
        (
            &["--baseline", "/nonexistent/report.json"][..],
            "/nonexistent/report.json",
        ),
        (&["--noise=-1"][..], "--noise"),
        (&["--frobnicate"][..], "unexpected argument"),
    ] {
        let run = run_scenario_args(scenario, &[], args);
        assert_eq!(run.code, 3, "{args:?}: {}{}", run.stdout, run.stderr);
        assert!(run.stderr.contains(says), "{args:?}: {}", run.stderr);
    }
}
