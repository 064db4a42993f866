//! The CI files users copy: the GitHub Actions workflow parses, runs the gate script, keeps the
//! reports and publishes the JUnit; the gate script is executable and runs the gate scenarios.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use serde_json::Value;

fn ci(file: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../ci")
        .join(file)
}

#[test]
fn the_github_workflow_runs_the_gate_keeps_the_reports_and_publishes_the_junit() {
    let text = std::fs::read_to_string(ci("github/leak-gate.yml")).unwrap();
    let w: Value = serde_norway::from_str(&text).expect("the workflow is YAML");
    assert!(
        w["on"].get("pull_request").is_some(),
        "runs on pull requests: {}",
        w["on"]
    );
    let steps = w["jobs"]["leak-gate"]["steps"]
        .as_array()
        .expect("a leak-gate job");
    let uses = |prefix: &str| {
        steps
            .iter()
            .find(|s| s["uses"].as_str().is_some_and(|u| u.starts_with(prefix)))
            .unwrap_or_else(|| panic!("no step uses {prefix}"))
    };
    uses("actions/checkout@");
    uses("Swatinem/rust-cache@");
    let gate = steps
        .iter()
        .position(|s| s["run"].as_str() == Some("ci/leak-gate.sh reports/gate"))
        .expect("a step runs the gate into reports/gate");
    let upload = uses("actions/upload-artifact@");
    assert_eq!(
        upload["if"], "always()",
        "reports are kept when the gate fails"
    );
    assert_eq!(upload["with"]["path"], "reports/gate/");
    let junit = uses("EnricoMi/publish-unit-test-result-action@");
    assert_eq!(junit["if"], "always()");
    assert_eq!(junit["with"]["files"], "reports/gate/junit.xml");
    let after = |s: &Value| steps.iter().position(|x| x == s).unwrap() > gate;
    assert!(after(upload) && after(junit));
    assert_eq!(
        w["permissions"]["checks"], "write",
        "publishing a check needs it"
    );
}

#[test]
fn the_gate_script_is_executable_and_runs_the_gate_scenarios() {
    let script = ci("leak-gate.sh");
    let mode = std::fs::metadata(&script).unwrap().permissions().mode();
    assert!(mode & 0o111 != 0, "{} is not executable", script.display());
    let text = std::fs::read_to_string(&script).unwrap();
    assert!(text.starts_with("#!/usr/bin/env bash\n"));
    assert!(text.contains("set -euo pipefail"));
    assert!(text.contains("scenarios/gate"));
    assert!(text.contains("mcp-loadgen\" gate \"$scenarios\" --out \"$out\""));
    let ci_run =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../.ci/run")).unwrap();
    assert!(ci_run.contains("ci/leak-gate.sh"), ".ci/run runs the gate");
    assert!(
        ci_run.contains("cargo machete"),
        ".ci/run checks for unused dependencies"
    );
    assert!(
        ci_run.contains("ci/planted-leaks.sh"),
        ".ci/run proves the gate's detection power"
    );
}

#[test]
fn every_planted_leak_has_a_gate_scenario_that_must_catch_it() {
    let script = std::fs::read_to_string(ci("planted-leaks.sh")).unwrap();
    let planted = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../proxy/src/ops/planted.rs"),
    )
    .unwrap();
    let cases: Vec<(&str, &str, &str)> = script
        .lines()
        .filter_map(|l| l.trim().strip_prefix('"')?.strip_suffix('"'))
        .filter_map(|l| {
            let mut p = l.split('|');
            Some((p.next()?, p.next()?, p.next()?))
        })
        .collect();
    let mut names: Vec<&str> = cases.iter().map(|c| c.0).collect();
    names.dedup();
    assert_eq!(
        names,
        [
            "connect-error",
            "stdio-reap",
            "sse-task",
            "timer",
            "sessions",
            "sse-upstream"
        ]
    );
    assert!(
        cases.contains(&("connect-error", "tls-upstreams", "tokio.alive_tasks")),
        "a connect failure leaked over TLS upstreams is caught too"
    );
    for (leak, scenario, check) in cases {
        assert!(
            planted.contains(&format!("=> \"{leak}\"")),
            "{leak} is not a leak proxy/src/ops/planted.rs knows"
        );
        let file = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join(format!("../scenarios/gate/{scenario}.toml"));
        mcp_loadgen::scenario::Scenario::load(&file).unwrap();
        assert!(
            mcp_loadgen::verdict::RESOURCES
                .iter()
                .any(|r| r.name == check),
            "{check} is not a leak check"
        );
    }
}

#[test]
fn ci_runs_the_external_peers_and_each_case_names_a_real_scenario_and_check() {
    let script_path = ci("external-peers.sh");
    let mode = std::fs::metadata(&script_path)
        .unwrap()
        .permissions()
        .mode();
    assert!(
        mode & 0o111 != 0,
        "{} is not executable",
        script_path.display()
    );
    let script = std::fs::read_to_string(&script_path).unwrap();
    let ci_run =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../.ci/run")).unwrap();
    assert!(
        ci_run.contains("ci/external-peers.sh"),
        ".ci/run runs the external peers"
    );
    let cases: Vec<Vec<&str>> = script
        .lines()
        .filter_map(|l| l.trim().strip_prefix('"')?.strip_suffix('"'))
        .map(|l| l.split('|').collect())
        .collect();
    assert!(cases.len() >= 6, "{cases:?}");
    let checks: Vec<&str> = mcp_loadgen::verdict::RESOURCES
        .iter()
        .map(|r| r.name)
        .chain(["sessions.held", "upstream.in_flight"])
        .collect();
    for case in &cases {
        let [scenario, expected, check] = case[..] else {
            panic!("{case:?}: expected scenario|exit|check");
        };
        let file = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../scenarios/external")
            .join(format!("{scenario}.toml"));
        mcp_loadgen::scenario::Scenario::load(&file).unwrap_or_else(|e| panic!("{e}"));
        match expected {
            "0" => assert!(check.is_empty(), "{case:?}: a passing case names no check"),
            "2" => assert!(checks.contains(&check), "{case:?}: no check named {check}"),
            other => panic!("{case:?}: unexpected exit {other}"),
        }
    }
    // both peers are proven both ways
    for peer in ["npm-mcp-proxy", "supergateway"] {
        for expected in ["0", "2"] {
            assert!(
                cases
                    .iter()
                    .any(|c| c[0].starts_with(peer) && c[1] == expected),
                "{peer}: no case expecting exit {expected}"
            );
        }
    }
}
