//! Contract: the verdict and its exit codes, end to end through the `mcp-loadgen` binary.
//!
//! - A short scenario against the bundled proxy and a mock passes (exit 0) with every leak
//!   check back to baseline, and leaves no process behind.
//! - An external target with a planted leak (it opens a file per `tools/list` and never
//!   closes it) gives exit 2 naming `fds.file`; the same target without the leak but with
//!   an impossible p99 limit gives exit 1.
//!
//! The external target is this test binary itself, re-executed as a child running only
//! [`planted_target_process`]: a minimal MCP server (2026-07-28 era, JSON answers) on
//! loopback.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use common::*;

const TARGET_ENV: &str = "MCP_LOADGEN_TEST_TARGET";

#[test]
fn a_short_bundled_scenario_passes_and_cleans_up() {
    bundled_run("2025-11-25");
}

#[test]
fn the_stateless_era_passes_too() {
    bundled_run("2026-07-28");
}

fn bundled_run(protocol: &str) {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    subreaper();
    let run = run_scenario(
        &r#"
name = "e2e"
[target]
proxy_args = ["--upstream-http-idle-timeout", "2s"]
[[upstream]]
name = "echo"
mock = "serve"
latency = "fixed:1ms"
[[upstream]]
name = "local"
mock = "stdio"
[load]
protocol = "ERA"
users = 8
warmup = "1s"
duration = "3s"
mix = { "tools/call echo__echo" = 6, "tools/call local__add" = 2, "tools/list" = 2 }
arguments = { "local__add" = { a = 2, b = 3 } }
[leaks]
settle = "10s"  # more than twice the upstream keep-alive idle timeout
"#
        .replace("ERA", protocol),
    );
    assert_eq!(
        run.code, 0,
        "stdout:\n{}\nstderr:\n{}",
        run.stdout, run.stderr
    );
    let report = run.report();
    for op in [
        "tools/call echo__echo",
        "tools/call local__add",
        "tools/list",
    ] {
        let o = &report["ops"][op];
        assert!(o["ok"].as_u64().unwrap() > 10, "{op}: {o}");
        assert_eq!(o["failed"], 0, "{op}: {o}");
        assert!(o["p99_us"].as_u64().unwrap() > 0, "{op}: {o}");
    }
    if protocol == "2025-11-25" {
        assert_eq!(report["ops"]["initialize"]["ok"], 8, "one session per user");
        assert_eq!(
            report["ops"]["DELETE session"]["ok"], 8,
            "every session closed"
        );
    } else {
        assert_eq!(
            report["ops"]["server/discover"]["ok"], 8,
            "one discovery per user"
        );
        assert!(
            report["ops"].get("DELETE session").is_none(),
            "no session to close"
        );
    }
    for check in [
        "fds.socket",
        "tcp.close_wait",
        "children",
        "zombies",
        "tokio.alive_tasks",
        "sessions",
    ] {
        let c = run.check(check);
        assert_eq!(c["passed"], true, "{c}");
        assert!(c["skipped"].is_null(), "measured, not skipped: {c}");
    }
    // the stdio child was seen while the proxy ran
    assert_eq!(run.check("children")["baseline"], 1.0);
    assert!(run.stdout.contains("verdict: pass"), "{}", run.stdout);
    assert!(run.out.join("proxy.log").exists());
    assert_no_process_left(&[], "after a passing run");
}

/// Starts this test binary as the planted target; returns the child and its address.
fn planted_target(leak: bool) -> (Child, String) {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "planted_target_process",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(TARGET_ENV, if leak { "leak" } else { "clean" })
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let addr = loop {
        let line = lines.next().expect("target printed its address").unwrap();
        // libtest prints `test NAME ... ` on the same line first
        if let Some(i) = line.find("TARGET ") {
            break line[i + "TARGET ".len()..].trim().to_string();
        }
    };
    // keep draining its stdout so it never blocks on a full pipe
    std::thread::spawn(move || for _ in lines {});
    (child, addr)
}

fn external(addr: &str, pid: u32, p99_ms: f64) -> String {
    format!(
        r#"
name = "planted"
[target]
url = "http://{addr}/mcp"
pid = {pid}
[load]
users = 4
warmup = "1s"
duration = "2s"
protocol = "2026-07-28"
mix = {{ "tools/list" = 1 }}
[thresholds]
p99_ms = {p99_ms}
[leaks]
settle = "2s"
"#
    )
}

#[test]
fn a_planted_fd_leak_exits_2_and_names_the_resource() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    subreaper();
    let (mut target, addr) = planted_target(true);
    let run = run_scenario(&external(&addr, target.id(), 2000.0));
    let _ = target.kill();
    let _ = target.wait();
    assert_eq!(
        run.code, 2,
        "stdout:\n{}\nstderr:\n{}",
        run.stdout, run.stderr
    );
    let c = run.check("fds.file");
    assert_eq!(c["passed"], false, "{c}");
    assert!(
        c["value"].as_f64().unwrap() > c["baseline"].as_f64().unwrap() + 10.0,
        "{c}"
    );
    assert!(run.stdout.contains("FAIL fds.file"), "{}", run.stdout);
    assert!(run.stdout.contains("leak found (exit 2)"), "{}", run.stdout);
    // the leak-free checks of the same run pass
    assert_eq!(run.check("fds.socket")["passed"], true);
    // the target has no /metrics: those checks say so instead of passing silently
    assert!(run.check("tokio.alive_tasks")["skipped"].is_string());
}

#[test]
fn a_breached_threshold_exits_1() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    subreaper();
    let (mut target, addr) = planted_target(false);
    // 1 µs: no request over loopback answers that fast
    let run = run_scenario(&external(&addr, target.id(), 0.001));
    let _ = target.kill();
    let _ = target.wait();
    assert_eq!(
        run.code, 1,
        "stdout:\n{}\nstderr:\n{}",
        run.stdout, run.stderr
    );
    let c = run.check("latency.p99");
    assert_eq!(c["passed"], false, "{c}");
    assert_eq!(
        run.check("fds.file")["passed"],
        true,
        "no leak in the clean target"
    );
    assert!(
        run.stdout.contains("threshold breached (exit 1)"),
        "{}",
        run.stdout
    );
}

/// The planted target (runs only when re-executed with `MCP_LOADGEN_TEST_TARGET` set): a
/// minimal 2026-07-28 MCP server over HTTP/1.1 keep-alive. With `leak`, every `tools/list`
/// opens `/dev/null` and forgets the file (at most 500).
#[test]
fn planted_target_process() {
    let Ok(mode) = std::env::var(TARGET_ENV) else {
        return;
    };
    let leak = mode == "leak";
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        use std::sync::atomic::{AtomicUsize, Ordering};
        use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
        static LEAKED: AtomicUsize = AtomicUsize::new(0);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        println!("TARGET {}", listener.local_addr().unwrap());
        loop {
            let (sock, _) = listener.accept().await.unwrap();
            tokio::spawn(async move {
                let (r, mut w) = sock.into_split();
                let mut r = BufReader::new(r);
                loop {
                    let mut request_line = String::new();
                    if r.read_line(&mut request_line).await.unwrap_or(0) == 0 {
                        return;
                    }
                    let mut length = 0usize;
                    loop {
                        let mut h = String::new();
                        if r.read_line(&mut h).await.unwrap_or(0) == 0 {
                            return;
                        }
                        let h = h.trim_end();
                        if h.is_empty() {
                            break;
                        }
                        if let Some((k, v)) = h.split_once(':')
                            && k.eq_ignore_ascii_case("content-length")
                        {
                            length = v.trim().parse().unwrap_or(0);
                        }
                    }
                    let mut body = vec![0; length];
                    if r.read_exact(&mut body).await.is_err() {
                        return;
                    }
                    let (status, reply) = if request_line.starts_with("POST") {
                        let req: serde_json::Value =
                            serde_json::from_slice(&body).unwrap_or_default();
                        let result = match req["method"].as_str() {
                            Some("tools/list") => {
                                if leak && LEAKED.fetch_add(1, Ordering::Relaxed) < 500 {
                                    std::mem::forget(std::fs::File::open("/dev/null").unwrap());
                                }
                                serde_json::json!({ "tools": [] })
                            }
                            _ => serde_json::json!({}),
                        };
                        (
                            "200 OK",
                            serde_json::json!({ "jsonrpc": "2.0", "id": req["id"], "result": result })
                                .to_string(),
                        )
                    } else {
                        ("404 Not Found", String::from("{}"))
                    };
                    let head = format!(
                        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
                        reply.len()
                    );
                    if w.write_all(head.as_bytes()).await.is_err()
                        || w.write_all(reply.as_bytes()).await.is_err()
                    {
                        return;
                    }
                }
            });
        }
    });
}

#[test]
fn the_open_model_paces_requests_at_the_rate_and_reads_a_pid_file() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    subreaper();
    let (mut target, addr) = planted_target(false);
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("target.pid");
    std::fs::write(&pid_file, format!("{}\n", target.id())).unwrap();
    let run = run_scenario(&format!(
        r#"
name = "open"
[target]
url = "http://{addr}/mcp"
pid_file = "{}"
[load]
rate = 200
users = 8
warmup = "1s"
duration = "3s"
protocol = "2026-07-28"
mix = {{ "tools/list" = 1 }}
[leaks]
settle = "2s"
"#,
        pid_file.display()
    ));
    let _ = target.kill();
    let _ = target.wait();
    assert_eq!(
        run.code, 0,
        "stdout:\n{}\nstderr:\n{}",
        run.stdout, run.stderr
    );
    let report = run.report();
    // a closed model with 8 users would do thousands against this target in 3 s; the open
    // model does at most rate × duration (+ one in flight per user)
    let ok = report["ops"]["tools/list"]["ok"].as_u64().unwrap();
    assert!((400..=610).contains(&ok), "{ok} requests at 200/s for 3 s");
    assert!(
        report["load"]["late_starts"].is_u64(),
        "late starts are counted"
    );
    assert!(run.stdout.contains("late starts"), "{}", run.stdout);
}

#[test]
fn an_external_target_without_a_pid_is_judged_on_what_it_exposes() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    subreaper();
    let (mut target, addr) = planted_target(true);
    let run = run_scenario(&format!(
        r#"
name = "no-pid"
[target]
url = "http://{addr}/mcp"
[load]
users = 4
warmup = "1s"
duration = "2s"
protocol = "2026-07-28"
mix = {{ "tools/list" = 1 }}
[leaks]
settle = "1s"
"#
    ));
    let _ = target.kill();
    let _ = target.wait();
    // the planted fd leak is invisible without a PID: the /proc checks say why they are
    // skipped instead of passing silently, and the load is still measured and judged
    assert_eq!(
        run.code, 0,
        "stdout:\n{}\nstderr:\n{}",
        run.stdout, run.stderr
    );
    for name in ["fds.file", "fds.socket", "tcp.close_wait", "rss"] {
        let c = run.check(name);
        assert!(
            c["skipped"].as_str().is_some_and(|w| w.contains("no PID")),
            "{c}"
        );
    }
    assert_eq!(run.check("latency.p99")["skipped"], serde_json::Value::Null);
    let report = run.report();
    assert!(report["ops"]["tools/list"]["ok"].as_u64().unwrap() > 10);
    assert_eq!(report["probe"]["pid"], serde_json::Value::Null);
    assert!(run.stdout.contains("SKIP fds.file"), "{}", run.stdout);
}

#[test]
fn a_fault_phase_switches_the_mock_at_its_time() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    subreaper();
    let run = run_scenario(
        r#"
name = "phase"
[target]
proxy_args = ["--upstream-http-idle-timeout", "2s"]
[[upstream]]
name = "echo"
mock = "serve"
[load]
users = 4
warmup = "1s"
duration = "4s"
mix = { "tools/call echo" = 1 }
[[phase]]
at = "1s"
upstream = "echo"
faults = ["disconnect-mid-call"]
[[phase]]
at = "2s"
upstream = "echo"
faults = []
[thresholds]
error_rate = 1.0
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
    let call = &report["ops"]["tools/call echo"];
    assert!(
        call["failed"].as_u64().unwrap() > 0,
        "the fault phase failed calls: {call}"
    );
    assert!(
        call["ok"].as_u64().unwrap() > 0,
        "before and after it calls succeed: {call}"
    );
    assert!(
        call["failures"]["jsonrpc error -32603"].as_u64().unwrap() > 0,
        "the proxy answered the cut calls with a JSON-RPC error: {call}"
    );
    // the last second is after the fault was cleared
    let seconds = report["seconds"].as_array().unwrap();
    let last = &seconds[seconds.len() - 2];
    assert_eq!(
        last["failed"], 0,
        "calls fail after the phase ended: {seconds:?}"
    );
    assert!(last["ok"].as_u64().unwrap() > 0);
    assert_eq!(run.check("tcp.close_wait")["passed"], true);
}
