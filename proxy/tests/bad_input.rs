//! Contract: bad input gets a clear 4xx or a JSON-RPC error naming the problem, never a 5xx
//! or a panic, and leaves the proxy serving.

mod common;

use common::*;
use mock_mcp::{MockConfig, MockServer};
use reqwest::StatusCode;
use serde_json::json;

const KEY: &str = "demo-key-0001";

async fn setup() -> (MockServer, TestProxy) {
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    let a = MockServer::start(MockConfig::default()).await.unwrap();
    let seed = http_seed(
        &[("echo", &mock.url(), "shared"), ("two", &a.url(), "shared")],
        "demo",
        KEY,
        "auto",
    );
    let proxy = start_proxy(&seed, |s| s.max_body_bytes = 64 * 1024).await;
    std::mem::forget(a);
    (mock, proxy)
}

/// Initializes a raw 2025-11-25 session and returns its id.
async fn session(url: &str) -> String {
    common::sessions::open_session(&common::sessions::http(), url).await
}

#[tokio::test]
async fn malformed_http_level_input_gets_4xx() {
    let (_mock, proxy) = setup().await;
    let url = proxy.url("demo");
    // malformed JSON
    let r = post(&url, Some(KEY))
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert!(r.status().is_client_error(), "{}", r.status());
    // a JSON-RPC batch (not accepted by this protocol revision)
    let r = post(&url, Some(KEY))
        .json(&json!([initialize_body("2025-11-25")]))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_client_error(), "batch: {}", r.status());
    // not JSON-RPC at all
    let r = post(&url, Some(KEY))
        .json(&json!({ "hello": "world" }))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_client_error(), "non-rpc: {}", r.status());
    // missing Accept
    let r = reqwest::Client::new()
        .post(&url)
        .header("Authorization", format!("Bearer {KEY}"))
        .header("Content-Type", "application/json")
        .json(&initialize_body("2025-11-25"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_ACCEPTABLE);
    // body over the limit
    let big = "x".repeat(100 * 1024);
    let r = post(&url, Some(KEY))
        .json(&json!({ "jsonrpc": "2.0", "id": 1, "method": "ping", "params": { "pad": big } }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    // unknown session
    let r = post(&url, Some(KEY))
        .header("mcp-session-id", "no-such-session")
        .json(&json!({ "jsonrpc": "2.0", "id": 2, "method": "tools/list" }))
        .send()
        .await
        .unwrap();
    assert!(
        r.status().is_client_error(),
        "unknown session: {}",
        r.status()
    );
    // unknown route
    let r = reqwest::get(format!("{}/nope", proxy.base()))
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    // still serving
    let r = post(&url, Some(KEY))
        .json(&initialize_body("2025-11-25"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    proxy.shutdown().await;
}

#[tokio::test]
async fn bad_mcp_requests_get_jsonrpc_errors_naming_the_problem() {
    let (mock, proxy) = setup().await;
    let url = proxy.url("demo");
    let sid = session(&url).await;
    let rpc = |body: serde_json::Value| {
        let url = url.clone();
        let sid = sid.clone();
        async move {
            let r = post(&url, Some(KEY))
                .header("mcp-session-id", sid)
                .json(&body)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), StatusCode::OK);
            rpc_json(r).await
        }
    };
    let cases = [
        (
            json!({ "jsonrpc": "2.0", "id": 10, "method": "tools/call", "params": { "name": "nope__echo", "arguments": {} } }),
            "nope__echo",
        ),
        (
            json!({ "jsonrpc": "2.0", "id": 11, "method": "tools/call", "params": { "name": "echo", "arguments": {} } }),
            "namespace",
        ),
        (
            json!({ "jsonrpc": "2.0", "id": 12, "method": "tools/call", "params": { "name": "echo__nosuchtool", "arguments": {} } }),
            "nosuchtool",
        ),
        (
            json!({ "jsonrpc": "2.0", "id": 15, "method": "no/such/method" }),
            "",
        ),
    ];
    for (body, needle) in cases {
        let id = body["id"].clone();
        let reply = rpc(body).await;
        assert_eq!(reply["id"], id, "{reply}");
        let error = &reply["error"];
        assert!(error.is_object(), "expected an error for id {id}: {reply}");
        let message = error["message"].as_str().unwrap_or_default();
        assert!(
            message.contains(needle),
            "id {id}: {message:?} should name {needle:?}"
        );
    }
    // a tools/call without a name does not fit the method: the proxy answers 400 with -32602
    // naming the field (rmcp alone read it as an unknown method, -32601)
    let r = post(&url, Some(KEY))
        .header("mcp-session-id", &sid)
        .json(&json!({ "jsonrpc": "2.0", "id": 13, "method": "tools/call", "params": { "arguments": {} } }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let reply: serde_json::Value = r.json().await.unwrap();
    assert_eq!(reply["id"], 13, "{reply}");
    assert_eq!(reply["error"]["code"], -32602, "{reply}");
    assert!(
        reply["error"]["message"]
            .as_str()
            .unwrap()
            .contains("missing field `name`"),
        "{reply}"
    );
    // invalid arguments are the upstream's to judge: its tool error passes through as a tool
    // error (isError), naming the missing field
    let reply = rpc(json!({ "jsonrpc": "2.0", "id": 14, "method": "tools/call", "params": { "name": "echo__echo", "arguments": { "wrong": 1 } } })).await;
    assert_eq!(reply["result"]["isError"], true, "{reply}");
    assert!(
        reply["result"]["content"][0]["text"]
            .as_str()
            .unwrap()
            .contains("text"),
        "{reply}"
    );
    // the valid call still works on the same session
    let reply = rpc(json!({ "jsonrpc": "2.0", "id": 20, "method": "tools/call", "params": { "name": "echo__echo", "arguments": { "text": "ok" } } })).await;
    assert_eq!(reply["result"]["content"][0]["text"], "ok", "{reply}");
    // Unknown namespaces and malformed calls never leave the proxy; an unknown tool of a known
    // namespace (12), bad arguments (14) and the valid call (20) are the upstream's to answer.
    assert_eq!(mock.calls(), 3);
    proxy.shutdown().await;
}
