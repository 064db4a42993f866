//! Contract: `mcp-loadgen gate DIR` runs every scenario of DIR, writes each one's reports, one
//! combined junit.xml and summary.md, appends the summary to $GITHUB_STEP_SUMMARY, and exits
//! with the worst code.

mod common;

use std::process::Command;

use common::*;

const PASS: &str = r#"
name = "gate-pass"
[target]
proxy_args = ["--upstream-http-idle-timeout", "2s"]
[[upstream]]
name = "echo"
mock = "serve"
[load]
users = 4
warmup = "1s"
duration = "2s"
mix = { "tools/call echo" = 3, "tools/list" = 1 }
[leaks]
settle = "8s"
"#;

#[test]
fn the_gate_runs_every_scenario_and_exits_with_the_worst_code() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    subreaper();
    let dir = tempfile::tempdir().unwrap();
    let scenarios = dir.path().join("gate");
    std::fs::create_dir(&scenarios).unwrap();
    std::fs::write(scenarios.join("a-pass.toml"), PASS).unwrap();
    std::fs::write(
        scenarios.join("b-slow.toml"),
        PASS.replace("gate-pass", "gate-slow")
            .replace("[leaks]", "[thresholds]\np99_ms = 0.001\n[leaks]"),
    )
    .unwrap();
    std::fs::write(scenarios.join("notes.txt"), "not a scenario").unwrap();
    let out = dir.path().join("out");
    let summary_file = dir.path().join("step-summary.md");
    std::fs::write(&summary_file, "earlier step\n").unwrap();
    let gate = |extra: Option<(&str, &str)>| {
        if let Some((name, text)) = extra {
            std::fs::write(scenarios.join(name), text).unwrap();
        }
        Command::new(env!("CARGO_BIN_EXE_mcp-loadgen"))
            .arg("gate")
            .arg(&scenarios)
            .arg("--out")
            .arg(&out)
            .env("GITHUB_STEP_SUMMARY", &summary_file)
            .output()
            .unwrap()
    };

    // a pass and a threshold breach: exit 1
    let run = gate(None);
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(1), "{stdout}{stderr}");
    assert!(
        stdout.starts_with("## ❌ Leak gate — THRESHOLD BREACHED (exit 1)"),
        "{stdout}"
    );
    assert!(stdout.contains("| `a-pass` | ✅ pass |"), "{stdout}");
    assert!(
        stdout.contains("| `b-slow` | ❌ threshold breached |"),
        "{stdout}"
    );
    assert!(stdout.contains("latency.p99"), "{stdout}");
    for f in [
        "a-pass/report.json",
        "a-pass/report.html",
        "b-slow/junit.xml",
        "junit.xml",
        "summary.md",
    ] {
        assert!(out.join(f).exists(), "no {f}");
    }
    let junit = std::fs::read_to_string(out.join("junit.xml")).unwrap();
    assert!(
        junit.contains("<testsuite name=\"gate-pass.leaks\""),
        "{junit}"
    );
    assert!(
        junit.contains("<testsuite name=\"gate-slow.thresholds\""),
        "{junit}"
    );
    let step = std::fs::read_to_string(&summary_file).unwrap();
    assert!(
        step.starts_with("earlier step\n## ❌ Leak gate"),
        "appended: {step}"
    );

    // and a scenario that cannot run: exit 3 (not judged is worse than a threshold)
    let run = gate(Some(("c-broken.toml", "name = \"x\"\nuserz = 1\n")));
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert_eq!(run.status.code(), Some(3), "{stdout}");
    assert!(
        stdout.contains("| `c-broken` | ❌ could not run (exit 3) |"),
        "{stdout}"
    );
    assert!(stdout.contains("userz"), "{stdout}");
    let junit = std::fs::read_to_string(out.join("junit.xml")).unwrap();
    assert!(
        junit.contains("<testsuite name=\"c-broken.harness\""),
        "{junit}"
    );
    assert_no_process_left(&[], "the gate");

    // no scenario at all: a harness error
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let run = Command::new(env!("CARGO_BIN_EXE_mcp-loadgen"))
        .args([
            "gate",
            empty.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(run.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&run.stderr).contains("no *.toml scenario"));
}
