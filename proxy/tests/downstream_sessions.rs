//! Contract (issue 5, "Downstream sessions" and "list_changed"): sessions never DELETEd are
//! reaped after the idle TTL; past the session cap a new `initialize` gets 503 + `Retry-After`;
//! event streams carry keep-alive pings; a client that vanishes mid-stream takes its stream
//! task and the upstream work it started with it within a second; an upstream's
//! `tools/list_changed` reaches every session of the instance, debounced. (The resource-count
//! proofs are in sessions_abandoned.rs and sessions_vanishing.rs, each alone in its process.)

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::sessions::*;
use common::*;
use rmcp::service::NotificationContext;
use rmcp::{ClientHandler, RoleClient, ServiceExt};
use serde_json::json;

#[tokio::test]
async fn past_the_session_cap_initialize_gets_503_with_retry_after() {
    let (_mock, proxy) = echo_proxy("shared", |s| s.max_sessions = 3).await;
    let url = proxy.url("demo");
    let http = http();
    let mut sessions = Vec::new();
    for _ in 0..3 {
        sessions.push(open_session(&http, &url).await);
    }
    let r = rb(&http, reqwest::Method::POST, &url)
        .json(&initialize_body(V))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    assert_eq!(r.headers()["retry-after"], "5");
    let body: serde_json::Value = r.json().await.unwrap();
    assert!(body.to_string().contains("session limit reached"), "{body}");
    // existing sessions keep working at the cap, and stateless (2026-07-28) requests too
    let r = rb(&http, reqwest::Method::POST, &url)
        .header("Mcp-Session-Id", &sessions[0])
        .header("MCP-Protocol-Version", V)
        .json(&json!({ "jsonrpc": "2.0", "id": 2, "method": "tools/call",
            "params": { "name": "echo", "arguments": { "text": "at cap" } } }))
        .send()
        .await
        .unwrap();
    assert_eq!(rpc_json(r).await["result"]["content"][0]["text"], "at cap");
    let d = discover_client(&url, KEY).await;
    d.call_tool(call("echo", json!({ "text": "stateless" })))
        .await
        .unwrap();
    // a DELETE frees a place
    let r = rb(&http, reqwest::Method::DELETE, &url)
        .header("Mcp-Session-Id", &sessions[0])
        .header("MCP-Protocol-Version", V)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    let state = proxy.proxy.state.clone();
    assert!(eventually(Duration::from_secs(2), || state.sessions.count() == 2).await);
    open_session(&http, &url).await;
    proxy.shutdown().await;
}

#[tokio::test]
async fn event_streams_carry_keepalive_pings() {
    let (_mock, proxy) = echo_proxy("shared", |s| {
        s.sse_keepalive = Duration::from_millis(100);
    })
    .await;
    let url = proxy.url("demo");
    let http = http();
    let sid = open_session(&http, &url).await;
    let mut r = rb(&http, reqwest::Method::GET, &url)
        .header("Mcp-Session-Id", &sid)
        .header("MCP-Protocol-Version", V)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let mut body = String::new();
    let until = tokio::time::Instant::now() + Duration::from_millis(650);
    while let Ok(Ok(Some(chunk))) = tokio::time::timeout_at(until, r.chunk()).await {
        body.push_str(&String::from_utf8_lossy(&chunk));
    }
    let pings = body.lines().filter(|l| l.starts_with(':')).count();
    assert!(
        pings >= 3,
        "expected a ping every 100 ms, got {pings}: {body:?}"
    );
    drop(r);
    proxy.shutdown().await;
}

/// Counts `tools/list_changed` notifications a downstream client receives.
#[derive(Clone, Default)]
struct Counter(Arc<AtomicUsize>);

impl ClientHandler for Counter {
    async fn on_tool_list_changed(&self, _context: NotificationContext<RoleClient>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[tokio::test]
async fn upstream_list_changed_reaches_every_session_debounced() {
    let (_mock, proxy) = echo_proxy("shared", |s| {
        s.list_changed_debounce = Duration::from_millis(300);
    })
    .await;
    let url = proxy.url("demo");
    let transport = |url: &str| {
        rmcp::transport::StreamableHttpClientTransport::with_client(
            reqwest::Client::new(),
            rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig::with_uri(
                url.to_string(),
            )
            .auth_header(KEY.to_string()),
        )
    };
    let counters: Vec<Counter> = (0..3).map(|_| Counter::default()).collect();
    let mut clients = Vec::new();
    for c in &counters {
        clients.push(c.clone().serve(transport(&url)).await.unwrap());
    }
    // give each client's GET event stream time to open
    tokio::time::sleep(Duration::from_millis(300)).await;
    // a burst of five upstream notifications within the debounce window
    for _ in 0..5 {
        clients[0].call_tool(call("poke", json!({}))).await.unwrap();
    }
    let all_got_one = eventually(Duration::from_secs(3), || {
        counters.iter().all(|c| c.0.load(Ordering::SeqCst) >= 1)
    })
    .await;
    let got: Vec<usize> = counters
        .iter()
        .map(|c| c.0.load(Ordering::SeqCst))
        .collect();
    assert!(all_got_one, "every session is told: {got:?}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let got: Vec<usize> = counters
        .iter()
        .map(|c| c.0.load(Ordering::SeqCst))
        .collect();
    assert!(
        got.iter().all(|&n| n <= 2),
        "a burst of 5 is debounced to one notification per window: {got:?}"
    );
    for c in clients {
        c.cancel().await.unwrap();
    }
    proxy.shutdown().await;
}
