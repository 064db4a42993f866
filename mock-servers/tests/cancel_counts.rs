//! The mock counts what became of cancelled calls: over HTTP (`GET /control`'s figures), for a
//! `sleep` cancelled by a real rmcp client and a `hang-call` ended by `notifications/cancelled`,
//! and over stdio in the stats file (`--stats-dir`).

use std::path::Path;
use std::time::{Duration, Instant};

use mock_mcp::{MockConfig, MockServer};
use rmcp::{
    ServiceExt,
    model::{CallToolRequestParams, ClientRequest, Request},
    service::PeerRequestOptions,
    transport::{StreamableHttpClientTransport, TokioChildProcess},
};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_mock-mcp");

async fn wait_until(what: &str, mut cond: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn sleep_call() -> ClientRequest {
    let args = json!({ "ms": 60_000 }).as_object().cloned().unwrap();
    ClientRequest::CallToolRequest(Request::new(
        CallToolRequestParams::new("sleep").with_arguments(args),
    ))
}

#[tokio::test]
async fn a_cancelled_sleep_is_counted_as_cancelled_and_stopped() {
    let server = MockServer::start(MockConfig::default()).await.unwrap();
    let client = ().serve(StreamableHttpClientTransport::from_uri(server.url())).await.unwrap();
    let handle = client
        .send_cancellable_request(sleep_call(), PeerRequestOptions::no_options())
        .await
        .unwrap();
    wait_until("the sleep to start", async || server.in_flight() == 1).await;
    assert_eq!(server.counters().await.cancels.cancelled, 0);
    handle.cancel(Some("test".into())).await.unwrap();
    wait_until("the cancellation to be counted", async || {
        let c = server.counters().await.cancels;
        c.cancels_received == 1 && c.cancelled == 1
    })
    .await;
    let c = server.counters().await;
    assert_eq!(c.in_flight, 0);
    assert_eq!((c.cancels.stopped, c.cancels.finished_after_cancel), (1, 0));
    client.cancel().await.unwrap();
    server.shutdown().await;
}

fn post(url: &str, sid: Option<&str>, body: &Value) -> reqwest::RequestBuilder {
    let mut rb = reqwest::Client::new()
        .post(url)
        .header("Accept", "application/json, text/event-stream")
        .json(body);
    if let Some(s) = sid {
        rb = rb.header("mcp-session-id", s);
    }
    rb
}

#[tokio::test]
async fn a_hung_call_is_held_until_its_cancellation() {
    let server = MockServer::start(MockConfig::with_faults(&["hang-call"]))
        .await
        .unwrap();
    let init = json!({ "jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": { "name": "t", "version": "0" } } });
    let r = post(&server.url(), None, &init).send().await.unwrap();
    let sid = r.headers()["mcp-session-id"].to_str().unwrap().to_string();
    r.text().await.unwrap();
    let done = json!({ "jsonrpc": "2.0", "method": "notifications/initialized" });
    post(&server.url(), Some(&sid), &done).send().await.unwrap();
    let call = json!({ "jsonrpc": "2.0", "id": 7, "method": "tools/call",
        "params": { "name": "echo", "arguments": { "text": "x" } } });
    let hung = tokio::spawn(post(&server.url(), Some(&sid), &call).send());
    wait_until("the call to hang", async || {
        server.counters().await.cancels.hung == 1
    })
    .await;
    let cancel = json!({ "jsonrpc": "2.0", "method": "notifications/cancelled",
        "params": { "requestId": 7, "reason": "gave up" } });
    post(&server.url(), Some(&sid), &cancel)
        .send()
        .await
        .unwrap();
    wait_until("the hang to end", async || {
        server.counters().await.cancels.hung == 0
    })
    .await;
    let c = server.counters().await.cancels;
    assert_eq!((c.cancelled, c.stopped, c.cancels_received), (1, 1, 1));
    assert!(hung.await.unwrap().is_ok(), "the hung request is answered");
    server.shutdown().await;
}

fn read_stats(dir: &Path) -> Option<Value> {
    let entry = std::fs::read_dir(dir)
        .ok()?
        .filter_map(Result::ok)
        .find(|e| e.path().extension().is_some_and(|x| x == "json"))?;
    serde_json::from_slice(&std::fs::read(entry.path()).ok()?).ok()
}

#[tokio::test]
async fn a_stdio_mock_writes_its_counts_to_the_stats_dir() {
    let dir = std::env::temp_dir().join(format!("mock-stats-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut cmd = tokio::process::Command::new(BIN);
    cmd.arg("stdio").env(mock_mcp::STATS_DIR_ENV, &dir);
    let child = TokioChildProcess::new(cmd).unwrap();
    let pid = child.id().expect("a running child");
    let client = ().serve(child).await.unwrap();
    let handle = client
        .send_cancellable_request(sleep_call(), PeerRequestOptions::no_options())
        .await
        .unwrap();
    wait_until("the file to show the call in flight", async || {
        read_stats(&dir).is_some_and(|s| s["in_flight"] == 1)
    })
    .await;
    handle.cancel(Some("test".into())).await.unwrap();
    wait_until("the file to show the cancellation", async || {
        read_stats(&dir).is_some_and(|s| s["cancelled"] == 1 && s["in_flight"] == 0)
    })
    .await;
    let s = read_stats(&dir).unwrap();
    assert_eq!(s["pid"], pid);
    assert_eq!(
        (&s["cancels_received"], &s["stopped"]),
        (&json!(1), &json!(1))
    );
    assert_eq!(s["exited"], false);
    client.cancel().await.unwrap();
    wait_until("the final write at exit", async || {
        read_stats(&dir).is_some_and(|s| s["exited"] == true)
    })
    .await;
    assert!(
        std::fs::read_dir(&dir).unwrap().count() == 1,
        "no temp file left"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
