//! A server→client request that reaches a downstream session before its client has opened the
//! GET event stream is held and delivered when the stream opens.
//!
//! The upstream is a mock with `roots_on_initialized` (it sends `roots/list` outside any request
//! when its session starts, as many real servers do) behind a `per-session` connection: the
//! proxy connects the session's upstream while it handles the downstream `initialize`, so the
//! mock's `roots/list` is relayed to the downstream session before that client has any stream
//! open. The client opens the GET stream only later, and must still get it (rmcp's session keeps
//! what the standalone stream missed and replays it to the first GET), answer it, and the
//! answer must reach the mock.

mod common;

use std::time::{Duration, Instant};

use common::sessions::{V, http, rb};
use common::{KEY, http_seed, rpc_json, start_proxy};
use mock_mcp::recorder::{Recorder, connect_authorized};
use mock_mcp::{MockConfig, MockServer};
use reqwest::Method;
use rmcp::service::ClientLifecycleMode;
use serde_json::{Value, json};

/// How long the client waits, after `notifications/initialized`, before opening its GET stream.
const HOLD: Duration = Duration::from_millis(500);

async fn roots_mock() -> MockServer {
    MockServer::start(MockConfig {
        roots_on_initialized: true,
        ..MockConfig::default()
    })
    .await
    .unwrap()
}

async fn per_session_proxy(mock: &MockServer) -> common::TestProxy {
    start_proxy(
        &http_seed(&[("mock", &mock.url(), "per-session")], "demo", KEY, "auto"),
        |_| {},
    )
    .await
}

/// One raw 2025-11-25 session: the session id and a request builder inside it.
struct RawSession {
    http: reqwest::Client,
    url: String,
    sid: String,
}

impl RawSession {
    fn rb(&self, method: Method) -> reqwest::RequestBuilder {
        rb(&self.http, method, &self.url)
            .header("Mcp-Session-Id", &self.sid)
            .header("MCP-Protocol-Version", V)
    }

    async fn post(&self, body: Value) -> reqwest::Response {
        self.rb(Method::POST).json(&body).send().await.unwrap()
    }

    /// `tools/call initial_roots`, polled while it says "pending" (5 s at most).
    async fn initial_roots(&self) -> String {
        let deadline = Instant::now() + Duration::from_secs(5);
        for id in 100.. {
            let r = self
                .post(json!({ "jsonrpc": "2.0", "id": id, "method": "tools/call",
                    "params": { "name": "initial_roots", "arguments": {} } }))
                .await;
            assert_eq!(r.status(), 200);
            let answer = rpc_json(r).await;
            assert_eq!(answer["id"], id, "{answer}");
            let text = answer["result"]["content"][0]["text"]
                .as_str()
                .unwrap_or_else(|| panic!("no text in {answer}"))
                .to_string();
            if text != "pending" || Instant::now() >= deadline {
                return text;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        unreachable!()
    }
}

/// The JSON-RPC messages in the complete SSE events at the front of `buffer` (removed from it);
/// events without data (priming, keep-alive) are skipped, and so is data that is not JSON.
fn drain_events(buffer: &mut String) -> Vec<Value> {
    let mut messages = Vec::new();
    loop {
        let normalized = buffer.replace("\r\n", "\n");
        let Some(end) = normalized.find("\n\n") else {
            *buffer = normalized;
            return messages;
        };
        let event = normalized[..end].to_string();
        *buffer = normalized[end + 2..].to_string();
        let data: Vec<&str> = event
            .lines()
            .filter_map(|l| l.strip_prefix("data:"))
            .map(|d| d.strip_prefix(' ').unwrap_or(d))
            .collect();
        let data = data.join("\n");
        if data.trim().is_empty() {
            continue;
        }
        if let Ok(message) = serde_json::from_str::<Value>(&data) {
            messages.push(message);
        }
    }
}

#[tokio::test]
async fn a_server_request_sent_before_the_get_stream_opens_is_held_and_delivered() {
    if std::env::var_os("HELD_TRACE").is_some() {
        // HELD_TRACE=1 RUST_LOG=rmcp=trace,mcp_proxy=debug: what the proxy and rmcp did
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
    }
    let mock = roots_mock().await;
    let proxy = per_session_proxy(&mock).await;
    let url = proxy.url("demo");
    let http = http();

    // initialize, declaring roots; the proxy connects the session's upstream meanwhile
    let started = Instant::now();
    let r = rb(&http, Method::POST, &url)
        .json(&json!({
            "jsonrpc": "2.0", "id": 1, "method": "initialize",
            "params": {
                "protocolVersion": V,
                "capabilities": { "roots": {} },
                "clientInfo": { "name": "held-requests-test", "version": "0" }
            }
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let sid = r.headers()["mcp-session-id"].to_str().unwrap().to_string();
    let init = rpc_json(r).await;
    assert_eq!(init["result"]["protocolVersion"], V, "{init}");
    let initialized_at = Instant::now();
    let session = RawSession { http, url, sid };
    let r = session
        .post(json!({ "jsonrpc": "2.0", "method": "notifications/initialized" }))
        .await;
    assert_eq!(r.status(), 202);

    // no GET stream for a while: whatever the mock asked is waiting in the proxy's session
    tokio::time::sleep(HOLD).await;
    // the mock did ask (its session started during our initialize) and is waiting for the
    // answer: its list_changed ticker and the roots/list request are running
    assert_eq!(mock.background_tasks(), 2, "the mock's roots/list is out");
    if std::env::var_os("HELD_TRACE").is_some() {
        eprintln!("--- GET opens now ---");
    }

    let get_opened_at = Instant::now();
    let mut stream = session
        .rb(Method::GET)
        .header("Accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    let content_type = stream.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        content_type.starts_with("text/event-stream"),
        "{content_type}"
    );
    let mut buffer = String::new();
    let mut seen = Vec::new();
    let request = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            let chunk = stream
                .chunk()
                .await
                .expect("GET stream readable")
                .unwrap_or_else(|| panic!("GET stream ended; it carried {seen:?}"));
            buffer.push_str(&String::from_utf8_lossy(&chunk));
            for message in drain_events(&mut buffer) {
                if message["method"] == "roots/list" && message.get("id").is_some() {
                    return message;
                }
                seen.push(message);
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no roots/list on the GET stream within 5 s (raw: {buffer:?})"));
    let delivered_at = Instant::now();
    eprintln!(
        "roots/list held: initialize took {:?}; delivered {:?} after the initialize answer, \
         {:?} after the GET opened; other messages before it: {seen:?}; request: {request}",
        initialized_at - started,
        delivered_at - initialized_at,
        delivered_at - get_opened_at,
    );
    assert!(
        delivered_at - initialized_at >= HOLD,
        "it waited for the stream"
    );

    // answer it; the answer reaches the mock through the proxy
    let r = session
        .post(json!({ "jsonrpc": "2.0", "id": request["id"],
            "result": { "roots": [{ "uri": "file:///held" }] } }))
        .await;
    assert_eq!(r.status(), 202);
    assert_eq!(session.initial_roots().await, "file:///held");

    let r = session.rb(Method::DELETE).send().await.unwrap();
    assert!(r.status().is_success(), "DELETE: {}", r.status());
    drop(stream);
    proxy.shutdown().await;
    mock.shutdown().await;
}

#[tokio::test]
async fn an_rmcp_client_gets_the_initial_roots_request_through_the_proxy() {
    let mock = roots_mock().await;
    let proxy = per_session_proxy(&mock).await;
    let recorder = Recorder::default();
    let client = connect_authorized(
        &proxy.url("demo"),
        Some(KEY),
        &recorder,
        ClientLifecycleMode::Initialize,
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(5);
    let answer = loop {
        let result = client
            .call_tool(common::call("initial_roots", json!({})))
            .await
            .expect("tools/call initial_roots");
        let text = common::text(&result);
        if text != "pending" || Instant::now() >= deadline {
            break text;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(answer, "file:///a,file:///b");
    assert!(
        recorder
            .events()
            .contains(&mock_mcp::recorder::Event::RootsListed)
    );
    // closing the client DELETEs its session
    client.cancel().await.unwrap();
    proxy.shutdown().await;
    mock.shutdown().await;
}
