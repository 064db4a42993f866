//! Contract: when a downstream client cancels a call (`notifications/cancelled`) or goes away
//! mid-request, the upstream work it started ends within a second, in both connection modes,
//! and a per-request upstream connection is closed.

mod common;

use std::time::Duration;

use common::*;
use rmcp::model::{CallToolRequest, ClientRequest};
use rmcp::service::PeerRequestOptions;
use serde_json::json;

fn sleep_request() -> ClientRequest {
    ClientRequest::CallToolRequest(CallToolRequest::new(call("sleep", json!({ "ms": 30000 }))))
}

fn active_connections(proxy: &TestProxy) -> i64 {
    proxy
        .proxy
        .state
        .metrics
        .upstream_state("echo", "active")
        .get()
}

#[tokio::test]
async fn cancelled_notification_stops_upstream_work() {
    for mode in ["shared", "per-request"] {
        let (mock, proxy) = echo_proxy(mode, |_| {}).await;
        let client = client(&proxy.url("demo"), "demo-key-0001").await;
        let handle = client
            .peer()
            .send_cancellable_request(sleep_request(), PeerRequestOptions::no_options())
            .await
            .unwrap();
        assert!(
            eventually(Duration::from_secs(5), || mock.in_flight() == 1).await,
            "{mode}: call never arrived"
        );
        let cancelled_at = std::time::Instant::now();
        handle.cancel(Some("test".into())).await.unwrap();
        assert!(
            eventually(Duration::from_secs(1), || mock.in_flight() == 0).await,
            "{mode}: upstream still working 1 s after the cancel"
        );
        eprintln!(
            "{mode}: upstream stopped {:?} after the cancel",
            cancelled_at.elapsed()
        );
        let expected_active = if mode == "shared" { 1 } else { 0 };
        assert!(
            eventually(Duration::from_secs(2), || active_connections(&proxy)
                == expected_active)
            .await,
            "{mode}: active upstream connections {}",
            active_connections(&proxy)
        );
        client.cancel().await.unwrap();
        let metrics = proxy.proxy.state.metrics.clone();
        proxy.shutdown().await;
        assert_eq!(
            metrics.upstream_state("echo", "active").get(),
            0,
            "{mode}: shutdown closes the shared client"
        );
    }
}

/// In the 2026-07-28 era a request is self-contained, so a client that drops the connection
/// has cancelled it. (In the 2025-11-25 session era the MCP transport spec says a disconnect
/// must not be read as a cancel — the stream may be resumed — so only the explicit
/// `notifications/cancelled` above applies there.)
#[tokio::test]
async fn client_going_away_stops_upstream_work() {
    for mode in ["shared", "per-request"] {
        let (mock, proxy) = echo_proxy(mode, |_| {}).await;
        let url = proxy.url("demo");
        let call = tokio::spawn(async move {
            let body = json!({ "jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {
                "name": "sleep", "arguments": { "ms": 30000 },
                "_meta": {
                    "io.modelcontextprotocol/protocolVersion": "2026-07-28",
                    "io.modelcontextprotocol/clientInfo": { "name": "raw", "version": "0" },
                    "io.modelcontextprotocol/clientCapabilities": {}
                } } });
            let client = reqwest::Client::builder()
                .pool_max_idle_per_host(0)
                .build()
                .unwrap();
            let r = client
                .post(&url)
                .header("Accept", "application/json, text/event-stream")
                .header("Authorization", "Bearer demo-key-0001")
                .header("MCP-Protocol-Version", "2026-07-28")
                .header("Mcp-Method", "tools/call")
                .header("Mcp-Name", "sleep")
                .json(&body)
                .send()
                .await
                .unwrap();
            let status = r.status();
            let text = r.text().await.unwrap_or_default();
            panic!("the call should never finish: {status} {text}");
        });
        assert!(
            eventually(Duration::from_secs(5), || mock.in_flight() == 1).await,
            "{mode}: call never arrived"
        );
        call.abort();
        assert!(
            eventually(Duration::from_secs(1), || mock.in_flight() == 0).await,
            "{mode}: upstream still working 1 s after the client went away"
        );
        let expected_active = if mode == "shared" { 1 } else { 0 };
        assert!(
            eventually(Duration::from_secs(2), || active_connections(&proxy)
                == expected_active)
            .await
        );
        proxy.shutdown().await;
    }
}

#[tokio::test]
async fn call_timeout_names_the_upstream_and_cancels_it() {
    for mode in ["shared", "per-request"] {
        let (mock, proxy) = echo_proxy(mode, |s| s.call_timeout = Duration::from_millis(300)).await;
        let client = client(&proxy.url("demo"), "demo-key-0001").await;
        let err = client
            .call_tool(call("sleep", json!({ "ms": 5000 })))
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("\"echo\"") && err.contains("no answer within 300ms"),
            "{mode}: {err}"
        );
        assert!(
            eventually(Duration::from_secs(1), || mock.in_flight() == 0).await,
            "{mode}: upstream still working after the call timed out"
        );
        // the proxy still serves
        let r = client
            .call_tool(call("echo", json!({ "text": "after" })))
            .await
            .unwrap();
        assert_eq!(text(&r), "after");
        client.cancel().await.unwrap();
        proxy.shutdown().await;
    }
}
