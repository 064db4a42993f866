//! Contract (seed incident: upstream calls that never return): with a short call timeout,
//! every call to a hung upstream ends with a JSON-RPC error that names the upstream and the
//! timeout, the upstream is told to stop (its in-flight count returns to 0), and the proxy's
//! fds by kind, TCP sockets (no CLOSE_WAIT), tokio tasks and children come back to their
//! baseline — in both `shared` and `per-request` connection modes.
//!
//! Two kinds of hang, 200 calls each, 20 at a time:
//! - `hang-call`: the mock holds the `tools/call` POST in front of its MCP server and never
//!   answers (the tool never starts, so the mock's `in_flight` stays 0 whatever the proxy does);
//! - `sleep` 60 s: the tool runs and is counted in `in_flight`, so `in_flight` back to 0 proves
//!   the proxy's cancel reached the upstream.
//!
//! The mock runs as its own process (`mock-mcp serve`), so every socket counted here is the
//! proxy's (or the test client's, which keeps no idle connection). The proxy's HTTP client
//! keeps idle keep-alive connections to the upstream for 30–60 s, as many as the last burst
//! needed; before the baseline and before each final count the mock closes its idle
//! connections (and only those: see `MockProcess::close_idle_connections`), so both counts
//! see the pool empty and any socket or task above the baseline was not released. The mock's
//! open MCP sessions must also come back to their baseline (per-request sessions are closed).
//! The two modes run one after the other (the probe counts the whole process).

mod common;

use std::time::{Duration, Instant};

use common::*;
use rmcp::model::ErrorCode;
use serde_json::json;

static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const CALLS: usize = 200;
const CONCURRENCY: usize = 20;
const CALL_TIMEOUT: Duration = Duration::from_millis(100);
/// A call still running this long after the call timeout is a hang, not a timeout.
const HANG_GUARD: Duration = Duration::from_secs(10);
const SETTLE: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hung_calls_are_cut_and_leave_nothing_behind_shared() {
    hung_calls("shared").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hung_calls_are_cut_and_leave_nothing_behind_per_request() {
    hung_calls("per-request").await;
}

async fn hung_calls(mode: &str) {
    let _serial = SERIAL.lock().await;
    let mock = MockProcess::serve(&[]).await;
    let proxy = start_proxy(
        &http_seed(&[("echo", &mock.url(), mode)], "demo", KEY, "auto"),
        |s| s.call_timeout = CALL_TIMEOUT,
    )
    .await;
    let client = unpooled_client(&proxy.url("demo"), KEY).await;

    // warm-up: the same shape of load, healthy
    let (warm, _) = drive(CALLS, CONCURRENCY, |i| {
        let client = &client;
        async move {
            client
                .call_tool(call("echo", json!({ "text": format!("w{i}") })))
                .await
        }
    })
    .await;
    let warm_failed = warm.iter().filter(|r| r.is_err()).count();
    mock.close_idle_connections().await;
    let baseline = stable_resources().await;
    let sessions_baseline = mock.sessions_open().await;
    eprintln!("{mode}: warm-up {CALLS} echo calls, {CONCURRENCY} at a time ({warm_failed} failed)");
    eprintln!(
        "{mode}: baseline  {} | mock sessions_open={sessions_baseline}",
        baseline.line()
    );

    for (phase, faults, tool, args) in [
        (
            "hang-call",
            &["hang-call"][..],
            "echo",
            json!({ "text": "x" }),
        ),
        ("sleep 60s", &[][..], "sleep", json!({ "ms": 60_000 })),
    ] {
        mock.set_faults(faults).await;
        let calls_before = mock.counters().await["calls"].as_u64().unwrap();
        let started = Instant::now();
        let (results, peak) = drive(CALLS, CONCURRENCY, |_| {
            let client = &client;
            let args = args.clone();
            async move {
                let t = Instant::now();
                let r = tokio::time::timeout(HANG_GUARD, client.call_tool(call(tool, args)))
                    .await
                    .unwrap_or_else(|_| {
                        panic!("{mode} {phase}: a call was not cut by the call timeout")
                    });
                (t.elapsed(), r)
            }
        })
        .await;
        let elapsed = started.elapsed();
        let slowest = results.iter().map(|(d, _)| *d).max().unwrap();
        for (_, r) in results {
            let err = rpc_error(r.expect_err("a hung call cannot succeed"));
            assert_eq!(
                err.code,
                ErrorCode::INTERNAL_ERROR,
                "{mode} {phase}: {err:?}"
            );
            assert!(
                err.message.contains("upstream \"echo\"")
                    && err.message.contains("no answer within 100ms"),
                "{mode} {phase}: the error names the upstream and the timeout: {}",
                err.message
            );
            let data = err.data.expect("error data");
            assert_eq!(data["upstream"], "echo", "{mode} {phase}");
            assert_eq!(data["kind"], "timeout", "{mode} {phase}");
        }
        let reached = mock.counters().await["calls"].as_u64().unwrap() - calls_before;
        mock.set_faults(&[]).await;
        let in_flight = mock.wait_in_flight(0, Duration::from_secs(2)).await;
        mock.close_idle_connections().await;
        let settled = settle_within(&baseline, SETTLE).await;
        let sessions = mock.sessions_open().await;
        let mock_tcp = mcp_loadgen::observe::probe::tcp_states(mock.pid()).unwrap();
        eprintln!(
            "{mode} {phase}: {CALLS} calls in {elapsed:?} (slowest {slowest:?}), {reached} reached the tool, mock in_flight after = {in_flight}"
        );
        eprintln!("{mode} {phase}: peak      {}", peak.line());
        eprintln!(
            "{mode} {phase}: final     {} | mock sessions_open={sessions}",
            settled.line()
        );
        eprintln!(
            "{mode} {phase}: (mock process sockets: est={} close_wait={})",
            mock_tcp.established, mock_tcp.close_wait
        );
        assert_eq!(
            in_flight, 0,
            "{mode} {phase}: the upstream is still working on abandoned calls"
        );
        assert_eq!(
            sessions, sessions_baseline,
            "{mode} {phase}: upstream MCP sessions left open"
        );
        settled.assert_no_growth_over(&baseline, &format!("{mode} {phase}, {SETTLE:?} after"));
        assert_active_connections(&proxy, mode, phase).await;
    }

    // the proxy still serves
    let r = client
        .call_tool(call("echo", json!({ "text": "after" })))
        .await
        .unwrap();
    assert_eq!(text(&r), "after");
    client.cancel().await.unwrap();
    proxy.shutdown().await;
    mock.stop().await;
}

/// The proxy's own gauge agrees: one live upstream client in `shared` mode, none left over in
/// `per-request` mode.
async fn assert_active_connections(proxy: &TestProxy, mode: &str, phase: &str) {
    let metrics = metrics_text(proxy).await;
    let active = metric_value(
        &metrics,
        "mcp_proxy_upstream_connections",
        &[("upstream", "echo"), ("state", "active")],
    );
    let expected = if mode == "shared" { 1.0 } else { 0.0 };
    assert_eq!(
        active,
        Some(expected),
        "{mode} {phase}: upstream clients not closed"
    );
}
