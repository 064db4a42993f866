//! Contract: the load client fits any MCP server, end to end through the `mcp-loadgen`
//! binary against the real `mock-mcp` (as an external target, or behind the bundled proxy).
//!
//! - A sessionless 2025-11-25 server (`mock-mcp serve --stateless`, no `Mcp-Session-Id`)
//!   passes; the calls' arguments come from the tools' `inputSchema`s (none in the
//!   scenario); its 405 to the GET event stream is "not offered", not a failure; nothing is
//!   DELETEd.
//! - With `event_stream = true` every session of the bundled proxy holds a GET stream that
//!   receives the `list_changed` notifications, and the streams close with their sessions:
//!   the socket and session checks come back to baseline and no stream broke early.
//! - Calls that hang (`hang-call`) past `[load.timeouts] call` are cancelled with
//!   `notifications/cancelled`, which the mock accepts on the session.
//! - A mix tool the target does not list is a harness error (exit 3) naming it and the
//!   tools offered.

mod common;

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// A `mock-mcp serve` child on a free loopback port, killed and reaped on drop.
struct Mock {
    child: Child,
    addr: SocketAddr,
}

impl Mock {
    fn start(args: &[&str]) -> Mock {
        let addr = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let child = Command::new(mock_bin())
            .args(["serve", "--listen", &addr.to_string()])
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(addr).is_err() {
            assert!(Instant::now() < deadline, "mock-mcp did not listen");
            std::thread::sleep(Duration::from_millis(20));
        }
        Mock { child, addr }
    }

    /// The `[target]` section pointing at this mock.
    fn target(&self) -> String {
        format!(
            "[target]\nurl = \"http://{}/mcp\"\npid = {}\n",
            self.addr,
            self.child.id()
        )
    }
}

impl Drop for Mock {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn client(report: &serde_json::Value) -> serde_json::Value {
    report["load"]["client"].clone()
}

#[test]
fn a_sessionless_server_passes_with_arguments_from_its_schemas() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    subreaper();
    let mock = Mock::start(&["--stateless"]);
    let run = run_scenario(&format!(
        r#"name = "sessionless"
{}
[load]
users = 4
warmup = "1s"
duration = "2s"
event_stream = true
mix = {{ "tools/call echo" = 3, "tools/call add" = 1, "tools/list" = 1 }}
[leaks]
settle = "3s"
"#,
        mock.target()
    ));
    assert_eq!(
        run.code, 0,
        "stdout:\n{}\nstderr:\n{}",
        run.stdout, run.stderr
    );
    let report = run.report();
    for op in ["tools/call echo", "tools/call add", "initialize"] {
        let o = &report["ops"][op];
        assert!(o["ok"].as_u64().unwrap() > 0, "{op}: {o}");
        assert_eq!(o["failed"], 0, "{op}: {o}");
    }
    assert!(
        report["ops"].get("DELETE session").is_none(),
        "a session without an id is not DELETEd: {}",
        report["ops"]
    );
    let c = client(&report);
    assert!(c["streams_not_offered"].as_u64().unwrap() > 0, "{c}");
    assert_eq!(c["streams_opened"], 0, "{c}");
    assert_eq!(c["streams_refused"], 0, "{c}");
}

#[test]
fn event_streams_receive_notifications_and_close_with_their_sessions() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    subreaper();
    let run = run_scenario(
        r#"name = "streams"
[target]
proxy_args = ["--upstream-http-idle-timeout", "2s"]
[[upstream]]
name = "echo"
mock = "serve"
[load]
users = 4
warmup = "1s"
duration = "3s"
event_stream = true
requests_per_session = 10
mix = { "tools/call echo" = 4, "tools/call poke" = 1 }
[leaks]
settle = "10s"
"#,
    );
    assert_eq!(
        run.code, 0,
        "stdout:\n{}\nstderr:\n{}",
        run.stdout, run.stderr
    );
    let report = run.report();
    let c = client(&report);
    let opened = c["streams_opened"].as_u64().unwrap();
    let sessions = report["load"]["sessions_opened"].as_u64().unwrap();
    assert!(opened > 4, "sessions rotate, each with its stream: {c}");
    assert_eq!(opened, sessions, "one stream per session: {c}");
    assert_eq!(
        c["streams_broken"], 0,
        "the client closes them, not the target: {c}"
    );
    assert!(
        c["stream_events"].as_u64().unwrap() > 0,
        "poke's list_changed reaches the streams: {c}"
    );
    for check in ["fds.socket", "tcp.close_wait", "sessions"] {
        assert_eq!(run.check(check)["passed"], true, "{check}");
    }
}

#[test]
fn hung_calls_are_cancelled_after_the_call_timeout() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    subreaper();
    let mock = Mock::start(&["--fault", "hang-call"]);
    let run = run_scenario_args(
        &format!(
            r#"name = "hangs"
{}
[load]
users = 2
warmup = "1s"
duration = "2s"
mix = {{ "tools/call echo" = 1 }}
[load.timeouts]
call = "300ms"
[thresholds]
error_rate = 1.0
[leaks]
settle = "1s"
"#,
            mock.target()
        ),
        &[],
        // the mock holds its hung requests until it stops: a leak verdict is not the point
        &["--no-fail"],
    );
    assert_eq!(
        run.code, 0,
        "stdout:\n{}\nstderr:\n{}",
        run.stdout, run.stderr
    );
    let report = run.report();
    let call = &report["ops"]["tools/call echo"];
    let timeouts = call["failures"]["timeout"].as_u64().unwrap_or(0);
    assert!(timeouts > 0, "calls time out after 300 ms: {call}");
    let c = client(&report);
    assert!(
        c["cancellations_sent"].as_u64().unwrap() >= timeouts,
        "every timed-out call is cancelled: {c} {call}"
    );
    assert_eq!(
        c["cancellations_failed"], 0,
        "the mock accepts them on the session: {c}"
    );
    // each call is given up after 300 ms, not the 30 s default
    let p99 = call["p99_us"].as_u64().unwrap();
    assert!(p99 < 5_000_000, "{call}");
}

#[test]
fn a_mix_tool_the_target_does_not_list_is_a_harness_error() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    subreaper();
    let mock = Mock::start(&["--stateless"]);
    let run = run_scenario(&format!(
        r#"name = "missing"
{}
[load]
users = 1
warmup = "1s"
duration = "1s"
mix = {{ "tools/call echo" = 1, "tools/call nosuch" = 1 }}
"#,
        mock.target()
    ));
    assert_eq!(
        run.code, 3,
        "stdout:\n{}\nstderr:\n{}",
        run.stdout, run.stderr
    );
    assert!(run.stderr.contains("\"nosuch\""), "{}", run.stderr);
    assert!(
        run.stderr.contains("offers:") && run.stderr.contains("echo"),
        "{}",
        run.stderr
    );
    assert!(
        !run.stderr.contains("\"echo\""),
        "echo is listed: {}",
        run.stderr
    );
}
