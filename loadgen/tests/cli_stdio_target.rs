//! `[target] stdio`: a stdio MCP server measured directly, the harness being its client, end
//! to end through `mcp-loadgen run` over real parts (the real `mock-mcp stdio` as the server,
//! its counters in its stats file): a clean server passes and is judged on its own process;
//! calls it keeps running after their caller gave up (a `sleep`, no `notifications/cancelled`) fail
//! `upstream.in_flight` with exit 2, and pass when the harness cancels them; a server that
//! never answers `initialize`, or exits at once, is exit 3 naming it with its log; the
//! fields that belong to an HTTP target are refused; and at teardown a child the server leaves
//! running is `left_behind`, while one that ends with it (a moment after, as a stdio server on
//! EOF) is noted, its poll loop's short-lived helpers not counted as new children.

mod common;

use common::*;

/// A stdio target running `mock-mcp stdio` with `flags`; `load` lines (the mix) in `[load]`.
fn stdio_mock(flags: &str, load: &str, thresholds: &str) -> String {
    let mock = mock_bin();
    format!(
        r#"
name = "stdio-mock"
[target]
stdio = ["{mock}", "stdio"{flags}]
[load]
users = 5
warmup = "1s"
duration = "3s"
{load}
[thresholds]
{thresholds}
[leaks]
settle = "3s"
"#,
        mock = mock.display()
    )
}

#[test]
fn a_clean_stdio_server_passes_judged_on_its_own_process() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    subreaper();
    let mix = r#"mix = { "tools/call echo" = 4, "tools/list" = 1 }"#;
    let run = run_scenario(&stdio_mock("", mix, ""));
    assert_eq!(
        run.code, 0,
        "stdout:\n{}\nstderr:\n{}",
        run.stdout, run.stderr
    );
    let report = run.report();
    let calls = &report["ops"]["tools/call echo"];
    assert!(
        calls["ok"].as_u64().unwrap_or(0) > 100,
        "the load reached the server: {calls}\n{}",
        run.stdout
    );
    // the server's own counters (its stats file) are read: every call it got, none left
    let up = run.check("upstream.in_flight");
    assert_eq!(up["passed"], true, "{up}");
    assert_eq!(up["skipped"], serde_json::Value::Null, "{up}");
    // the measured process is the stdio server (its fds are the pipes and its log), not the
    // harness's front
    let fds = run.check("fds.pipe");
    assert_eq!(fds["skipped"], serde_json::Value::Null, "{fds}");
    assert!(fds["baseline"].as_f64().unwrap() <= 8.0, "{fds}");
    assert_no_process_left(&[], "clean stdio server");
}

#[test]
fn calls_a_stdio_server_keeps_after_their_caller_gave_up_are_a_leak() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    subreaper();
    // one call in five is a minute-long `sleep`; the harness gives up on each after 300 ms
    let load = |cancel: bool| {
        format!(
            r#"mix = {{ "tools/call echo" = 4, "tools/call sleep" = 1 }}
arguments = {{ sleep = {{ ms = 60000 }} }}
cancel = {cancel}
[load.timeouts]
call = "300ms""#
        )
    };
    let thresholds = "error_rate = 1.0";
    let kept = run_scenario(&stdio_mock("", &load(false), thresholds));
    assert_eq!(
        kept.code, 2,
        "stdout:\n{}\nstderr:\n{}",
        kept.stdout, kept.stderr
    );
    let up = kept.check("upstream.in_flight");
    assert_eq!(up["passed"], false, "{up}");
    assert!(up["value"].as_f64().unwrap() >= 1.0, "{up}");
    assert_no_process_left(&[], "stdio server keeping calls");

    let cancelled = run_scenario(&stdio_mock("", &load(true), thresholds));
    assert_eq!(
        cancelled.code, 0,
        "stdout:\n{}\nstderr:\n{}",
        cancelled.stdout, cancelled.stderr
    );
    let up = cancelled.check("upstream.in_flight");
    assert_eq!(up["passed"], true, "{up}");
    let outside = &cancelled.report()["outside"]["upstream"];
    assert!(outside["cancelled"].as_u64().unwrap() >= 1, "{outside}");
    assert_no_process_left(&[], "stdio server with cancels");
}

#[test]
fn a_stdio_server_that_never_answers_initialize_is_named() {
    fails_with_3(
        &bare(
            r#"stdio = ["sh", "-c", "echo reading-nothing >&2; exec sleep 60"]
ready_timeout = "1s""#,
        ),
        &["did not answer `initialize` within 1s", "reading-nothing"],
        "never answers",
    );
}

#[test]
fn a_stdio_server_that_exits_at_once_is_named_with_its_log() {
    fails_with_3(
        &bare(r#"stdio = ["sh", "-c", "echo no-such-config >&2; exit 4"]"#),
        &["closed its stdout", "target.log", "no-such-config"],
        "exits at once",
    );
}

#[test]
fn stdio_target_validation_names_the_field() {
    for (target, needle) in [
        (
            r#"stdio = ["x"]
url = "http://127.0.0.1:1/mcp""#,
            "do not apply to `target.stdio`",
        ),
        (r#"stdio = []"#, "`target.stdio` is empty"),
        (
            r#"stdio = ["x"]
command = ["y"]"#,
            "not both",
        ),
        (
            r#"stdio = ["x"]
headers = { A = "b" }"#,
            "`target.headers` do not apply",
        ),
        (r#"stdio = ["x", "{{nope}}"]"#, "`target.stdio[1]`"),
    ] {
        fails_with_3(&bare(target), &[needle], target);
    }
}

/// A stdio target that starts `helper` in the background, then becomes `mock-mcp stdio`
/// (the helper is the mock's child, orphaned when the mock exits at the end).
fn with_background_helper(helper: &str) -> String {
    let mock = mock_bin();
    let script = format!("{helper} & exec {} stdio", mock.display());
    let stdio = format!("stdio = [\"sh\", \"-c\", {}]", toml_string(&script));
    stdio_mock("", r#"mix = { "tools/call echo" = 1 }"#, "").replace(
        &format!("stdio = [\"{}\", \"stdio\"]", mock.display()),
        &stdio,
    )
}

fn toml_string(s: &str) -> String {
    format!("'{s}'")
}

#[test]
fn a_child_still_running_after_the_target_is_left_behind_one_ending_with_it_is_not() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    subreaper();
    let kept = run_scenario(&with_background_helper("sleep 300"));
    assert_eq!(
        kept.code, 2,
        "stdout:\n{}\nstderr:\n{}",
        kept.stdout, kept.stderr
    );
    assert_eq!(kept.check("left_behind")["passed"], false);
    let notes = kept.report()["notes"].to_string();
    assert!(
        notes.contains("left behind") && notes.contains("sleep"),
        "{notes}"
    );
    assert_no_process_left(&[], "left-behind sleeper");

    // a helper that ends half a second after its parent (as a stdio server ends on EOF) is
    // an orphan that exited, noted, not a leak
    let watcher = "sh -c \"while kill -0 \\$PPID 2>/dev/null; do sleep 0.1; done; sleep 0.5\"";
    let ended = run_scenario(&with_background_helper(watcher));
    assert_eq!(
        ended.code, 0,
        "stdout:\n{}\nstderr:\n{}",
        ended.stdout, ended.stderr
    );
    let notes = ended.report()["notes"].to_string();
    assert!(notes.contains("orphaned by the target exited"), "{notes}");
    assert_no_process_left(&[], "watcher");
}
