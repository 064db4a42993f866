//! Contract: a scenario the harness cannot run — an unknown field, a bad duration, a phase
//! naming a missing upstream, a port in use, a target that never becomes ready — exits 3 with
//! a message naming the file, the field or the cause, and leaves no process behind.

mod common;

use common::*;

const GOOD: &str = r#"
name = "bad-input"
[[upstream]]
name = "echo"
mock = "serve"
[load]
users = 2
warmup = "1s"
duration = "1s"
mix = { "tools/list" = 1 }
[leaks]
settle = "1s"
"#;

#[test]
fn unknown_field_names_the_file_and_the_field() {
    let run = fails_with_3(
        &GOOD.replace("users = 2", "users = 2\nconcurrency = 80"),
        &["unknown field `concurrency`"],
        "unknown field",
    );
    let file = run.path_of_scenario();
    assert!(
        run.stderr.contains(&file.display().to_string()),
        "{}",
        run.stderr
    );
}

#[test]
fn bad_duration_names_the_value() {
    fails_with_3(
        &GOOD.replace("\"1s\"\nmix", "\"ten seconds\"\nmix"),
        &["invalid duration \"ten seconds\"", "duration"],
        "bad duration",
    );
}

#[test]
fn a_phase_on_a_missing_upstream_is_refused() {
    fails_with_3(
        &format!(
            "{GOOD}\n[[phase]]\nat = \"0s\"\nupstream = \"ghost\"\nfaults = [\"hang-call\"]\n"
        ),
        &["upstream \"ghost\" is not defined"],
        "missing upstream",
    );
}

#[test]
fn a_port_in_use_is_named() {
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = busy.local_addr().unwrap();
    fails_with_3(
        &GOOD.replace(
            "[[upstream]]",
            &format!("[target]\nlisten = \"{addr}\"\n\n[[upstream]]"),
        ),
        &[&format!("`target.listen` {addr}"), "cannot listen there"],
        "port in use",
    );
}

#[test]
fn a_proxy_that_never_becomes_ready_is_stopped_with_its_mocks() {
    // a "proxy" that never listens: the harness must give up at `ready_timeout`, say so, and
    // stop it and the mock it started
    let dir = tempfile::tempdir().unwrap();
    let stuck = dir.path().join("stuck-proxy");
    std::fs::write(&stuck, "#!/bin/sh\nexec sleep 60\n").unwrap();
    std::fs::set_permissions(&stuck, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    subreaper();
    let scenario = GOOD.replace(
        "[[upstream]]",
        "[target]\nready_timeout = \"500ms\"\n\n[[upstream]]",
    );
    let run = run_scenario_with(
        &scenario,
        &[
            ("MCP_LOADGEN_PROXY_BIN", stuck.to_str().unwrap()),
            ("MCP_LOADGEN_MOCK_BIN", mock_bin().to_str().unwrap()),
        ],
    );
    assert_eq!(run.code, 3, "stderr:\n{}", run.stderr);
    assert!(
        run.stderr.contains("never became ready")
            && run.stderr.contains("/ready")
            && run.stderr.contains("500ms"),
        "{}",
        run.stderr
    );
    assert_no_process_left(&[], "never ready");
}

#[test]
fn a_proxy_that_exits_at_start_is_reported_with_its_log() {
    fails_with_3(
        &GOOD.replace(
            "[[upstream]]",
            "[target]\nproxy_args = [\"--no-such-flag\"]\n\n[[upstream]]",
        ),
        &["exited before it was ready", "--no-such-flag"],
        "proxy exits",
    );
}

#[test]
fn a_mock_with_a_bad_fault_is_reported() {
    fails_with_3(
        &GOOD.replace(
            "mock = \"serve\"",
            "mock = \"serve\"\nfaults = [\"explode\"]",
        ),
        &["upstream \"echo\"", "explode"],
        "bad fault",
    );
}

#[test]
fn an_external_target_that_does_not_answer_is_named() {
    let free = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let me = std::process::id();
    fails_with_3(
        &format!(
            "name = \"ext\"\n[target]\nurl = \"http://{free}/mcp\"\npid = {me}\nready_timeout = \"300ms\"\n[load]\nusers = 1\nwarmup = \"1s\"\nduration = \"1s\"\nmix = {{ \"tools/list\" = 1 }}\n"
        ),
        &["nothing answers", &free.to_string()],
        "external target down",
    );
}
