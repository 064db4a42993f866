//! Contract (Cloud Run scale-in at full concurrency): the `mcp-proxy serve` binary receives
//! SIGTERM while 80 `tools/call`s (80 clients, one session each) are in flight at the
//! upstream. Every one of the 80 completes successfully; requests that arrive after the signal
//! are refused (503 or connection refused), on a new session or an existing one; the process
//! exits 0 within the 9 s shutdown deadline; and no child process is left (its stdio upstream
//! child is reaped, not orphaned).
//!
//! Alone in its file: it counts child processes.

mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use common::*;
use mcp_loadgen::observe::probe;
use mock_mcp::{MockConfig, MockServer};
use serde_json::json;
use tokio::io::{AsyncBufReadExt, BufReader};

const USERS: usize = 80;
const SLEEP_MS: u64 = 1500;
/// The proxy's default shutdown deadline (Cloud Run sends SIGKILL 10 s after SIGTERM).
const DEADLINE: Duration = Duration::from_secs(9);
/// Longest a call may take before it counts as lost: its own sleep plus the whole deadline.
const CALL_GUARD: Duration = Duration::from_millis(SLEEP_MS + 9_000 + 2_000);

fn sigterm(pid: u32) {
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// `mcp_proxy_{name}` from the proxy's `/metrics`.
async fn gauge(base: &str, name: &str) -> Option<i64> {
    let text = unpooled_http()
        .get(format!("{base}/metrics"))
        .send()
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("mcp_proxy_{name} ")))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map(|v| v as i64)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_under_80_in_flight_calls_loses_none_and_exits_0() {
    let me = std::process::id();
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let seed_path = dir.path().join("seed.toml");
    let seed = format!(
        "[[upstream]]\nname = \"slow\"\ntransport = \"streamable-http\"\nurl = \"{}\"\nconnection = \"shared\"\n\n\
         [[upstream]]\nname = \"local\"\ntransport = \"stdio\"\ncommand = \"{}\"\nargs = [\"stdio\"]\nconnection = \"shared\"\n\n\
         [[instance]]\nid = \"demo\"\nupstreams = [\"slow\", \"local\"]\napi_keys = [\"{KEY}\"]\n",
        mock.url(),
        mock_bin().display()
    );
    std::fs::write(&seed_path, seed).unwrap();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let url = format!("{base}/mcp/demo");
    let mut proxy = proxy_serve_command(dir.path(), &seed_path, port)
        .env("RUST_LOG", "mcp_proxy=info")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = proxy.id().unwrap();
    let mut lines = BufReader::new(proxy.stderr.take().unwrap()).lines();
    wait_for_log(&mut lines, "listening").await;
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });

    // warm: the stdio child and the shared HTTP client exist
    let warm = client(&url, KEY).await;
    let r = warm
        .call_tool(call("local__echo", json!({ "text": "warm" })))
        .await
        .unwrap();
    assert_eq!(text(&r), "warm");
    let r = warm
        .call_tool(call("slow__sleep", json!({ "ms": 1 })))
        .await
        .unwrap();
    assert_eq!(text(&r), "slept 1ms");
    let children = probe::child_pids(pid).unwrap();
    assert_eq!(children.len(), 1, "one stdio child");
    let mut before = Resources::of(pid).unwrap();
    before.tasks = gauge(&base, "tokio_alive_tasks")
        .await
        .expect("mcp_proxy_tokio_alive_tasks") as usize;

    // 80 users, one session each, plus one idle session for a request after the signal
    let mut clients = Vec::new();
    for _ in 0..USERS {
        clients.push(client(&url, KEY).await);
    }
    let late = client(&url, KEY).await;
    let calls: Vec<_> = clients
        .into_iter()
        .map(|c| {
            tokio::spawn(async move {
                let t = Instant::now();
                // a lost call must fail the test, not hang it
                let r = tokio::time::timeout(
                    CALL_GUARD,
                    c.call_tool(call("slow__sleep", json!({ "ms": SLEEP_MS }))),
                )
                .await;
                (r, t.elapsed(), c)
            })
        })
        .collect();
    assert!(
        eventually(Duration::from_secs(20), || mock.in_flight() == USERS as u64).await,
        "only {} of {USERS} calls reached the upstream",
        mock.in_flight()
    );
    let inflight_metric = gauge(&base, "inflight_requests").await;
    let mut loaded = Resources::of(pid).unwrap();
    loaded.tasks = gauge(&base, "tokio_alive_tasks")
        .await
        .expect("mcp_proxy_tokio_alive_tasks") as usize;

    let signalled = Instant::now();
    sigterm(pid);
    // the exit is timed on its own, not after the calls are collected
    let exited = tokio::spawn(async move {
        let status = proxy.wait().await.unwrap();
        (status, signalled.elapsed())
    });
    tokio::time::sleep(Duration::from_millis(150)).await;
    let upstream_in_flight_at_refusal = mock.in_flight();
    // new requests are refused while draining: a new session, and a call on an existing one
    let new_session = post(&url, Some(KEY))
        .timeout(Duration::from_secs(5))
        .json(&initialize_body("2025-11-25"))
        .send()
        .await;
    let new_session = match &new_session {
        Ok(r) => format!("HTTP {}", r.status().as_u16()),
        Err(e) if e.is_connect() => "connection refused".to_string(),
        Err(e) => format!("error {e}"),
    };
    let ready = match unpooled_http()
        .get(format!("{base}/ready"))
        .timeout(Duration::from_secs(5))
        .send()
        .await
    {
        Ok(r) => format!("HTTP {}", r.status().as_u16()),
        Err(e) if e.is_connect() => "connection refused".to_string(),
        Err(e) => format!("error {e}"),
    };
    let late_call = tokio::time::timeout(
        Duration::from_secs(5),
        late.call_tool(call("slow__sleep", json!({ "ms": 1 }))),
    )
    .await;

    let mut ok = 0;
    let mut failed = Vec::new();
    let mut slowest = Duration::ZERO;
    let mut keep = Vec::new();
    for c in calls {
        let (r, took, client) = c.await.unwrap();
        slowest = slowest.max(took);
        match r {
            Ok(Ok(r)) if text(&r) == format!("slept {SLEEP_MS}ms") => ok += 1,
            Ok(Ok(r)) => failed.push(format!("{r:?}")),
            Ok(Err(e)) => failed.push(e.to_string()),
            Err(_) => failed.push(format!("no answer within {CALL_GUARD:?}")),
        }
        keep.push(client);
    }
    let all_done = signalled.elapsed();
    let (exit, exited_after) = tokio::time::timeout(
        (DEADLINE + Duration::from_secs(5)).saturating_sub(signalled.elapsed()),
        exited,
    )
    .await
    .expect("the proxy exits")
    .unwrap();
    let orphans: Vec<u32> = children
        .iter()
        .copied()
        .filter(|c| probe::process_state(*c).is_some())
        .collect();
    let mine = probe::children(me).unwrap();

    eprintln!(
        "before load: proxy {} | children {:?}",
        before.line(),
        children
    );
    eprintln!(
        "80 in flight: proxy {} | mcp_proxy_inflight_requests={inflight_metric:?}",
        loaded.line()
    );
    eprintln!(
        "after SIGTERM: new session -> {new_session}; /ready -> {ready}; call on an existing session -> {}; upstream in_flight then {upstream_in_flight_at_refusal}",
        match &late_call {
            Ok(Ok(_)) => "succeeded".to_string(),
            Ok(Err(e)) => format!("error: {e}"),
            Err(_) => "no answer within 5 s".to_string(),
        }
    );
    eprintln!(
        "{ok}/{USERS} in-flight calls succeeded, {} failed (slowest {slowest:?}); all answered {all_done:?} after SIGTERM; exit {exit:?} {exited_after:?} after SIGTERM; stdio children left: {orphans:?}; test process children {mine:?}",
        failed.len()
    );

    assert!(failed.is_empty(), "in-flight calls failed: {failed:?}");
    assert_eq!(ok, USERS);
    assert!(
        new_session == "connection refused" || new_session == "HTTP 503",
        "a new session after SIGTERM: {new_session}"
    );
    assert!(
        ready == "connection refused" || ready == "HTTP 503",
        "/ready after SIGTERM: {ready}"
    );
    assert!(
        matches!(late_call, Ok(Err(_))),
        "a new call on an existing session after SIGTERM must be refused at once"
    );
    assert!(exit.success(), "exit status {exit:?}");
    assert!(
        exited_after < DEADLINE,
        "exited {exited_after:?} after SIGTERM, past the {DEADLINE:?} deadline"
    );
    assert!(
        orphans.is_empty(),
        "stdio children outlived the proxy: {orphans:?}"
    );
    assert_eq!(mine.zombies, 0, "the proxy process was reaped");
    drop(keep);
    drop(late);
    drop(warm);
}
