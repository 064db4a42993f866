//! Contract: every malformed MCP request gets the answer the JSON-RPC spec names, as a JSON
//! body: HTTP 400 with -32700 (not JSON), -32600 (a batch, a null/object id, a broken
//! envelope, an id already in flight in the session) or -32602 (params that do not fit a
//! known method, naming the field); an unknown method stays -32601; a wrong `Accept` or
//! `Content-Type` keeps 406/415 with a JSON-RPC body; a chunked body past the limit is 413
//! with a JSON body. Never 5xx, never rmcp's text bodies, nothing reaches the upstream, and
//! the proxy and the session keep serving after each.

mod common;

use std::time::Duration;

use common::*;
use mock_mcp::{MockConfig, MockServer};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const LIMIT: usize = 64 * 1024;

async fn setup() -> (MockServer, TestProxy) {
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    let seed = http_seed(&[("echo", &mock.url(), "shared")], "demo", KEY, "auto");
    let proxy = start_proxy(&seed, |s| s.max_body_bytes = LIMIT).await;
    (mock, proxy)
}

/// Initializes a raw 2025-11-25 session and returns its id.
async fn session(url: &str) -> String {
    common::sessions::open_session(&common::sessions::http(), url).await
}

/// POSTs `body` (raw bytes) in the session; the status and the JSON body, which must be JSON.
async fn send_raw(url: &str, sid: Option<&str>, body: impl Into<reqwest::Body>) -> (u16, Value) {
    let mut rb = post(url, Some(KEY));
    if let Some(sid) = sid {
        rb = rb.header("mcp-session-id", sid);
    }
    let r = rb.body(body).send().await.unwrap();
    let status = r.status().as_u16();
    if status == 200 {
        return (status, rpc_json(r).await);
    }
    let content_type = r.headers()["content-type"].to_str().unwrap().to_string();
    assert_eq!(content_type, "application/json", "status {status}");
    let text = r.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"));
    (status, body)
}

/// The session still answers a tool call (and the proxy serves).
async fn still_serving(url: &str, sid: &str, id: u64) {
    let call = json!({ "jsonrpc": "2.0", "id": id, "method": "tools/call",
        "params": { "name": "echo", "arguments": { "text": "still here" } } });
    let (status, reply) = send_raw(url, Some(sid), call.to_string()).await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["id"], id, "{reply}");
    assert_eq!(
        reply["result"]["content"][0]["text"], "still here",
        "{reply}"
    );
}

/// Asserts a 400 JSON-RPC error with `code`, `id`, and a message containing `needle`.
fn assert_rpc_error(status: u16, reply: &Value, code: i64, id: Value, needle: &str) {
    assert_eq!(status, 400, "{reply}");
    assert_eq!(reply["jsonrpc"], "2.0", "{reply}");
    assert_eq!(reply["id"], id, "{reply}");
    assert_eq!(reply["error"]["code"], code, "{reply}");
    let message = reply["error"]["message"].as_str().unwrap();
    assert!(
        message.contains(needle),
        "{message:?} should say {needle:?}"
    );
}

#[tokio::test]
async fn malformed_json_is_400_parse_error() {
    let (mock, proxy) = setup().await;
    let url = proxy.url("demo");
    let sid = session(&url).await;
    for body in ["{not json", "", "{\"jsonrpc\": \"2.0\", \"id\": 1,"] {
        let (status, reply) = send_raw(&url, Some(&sid), body).await;
        assert_rpc_error(status, &reply, -32700, Value::Null, "parse error");
        // without a session too (rmcp answered 415 with a text body)
        let (status, reply) = send_raw(&url, None, body).await;
        assert_rpc_error(status, &reply, -32700, Value::Null, "parse error");
    }
    still_serving(&url, &sid, 100).await;
    assert_eq!(mock.calls(), 1, "only the good call reached the upstream");
    proxy.shutdown().await;
}

#[tokio::test]
async fn a_batch_is_400_invalid_request_saying_batches_are_not_supported() {
    let (mock, proxy) = setup().await;
    let url = proxy.url("demo");
    let sid = session(&url).await;
    let batch = json!([
        { "jsonrpc": "2.0", "id": 1, "method": "tools/list" },
        { "jsonrpc": "2.0", "id": 2, "method": "ping" }
    ]);
    let (status, reply) = send_raw(&url, Some(&sid), batch.to_string()).await;
    assert_rpc_error(
        status,
        &reply,
        -32600,
        Value::Null,
        "batches are not supported",
    );
    let (status, reply) = send_raw(
        &url,
        None,
        json!([initialize_body("2025-11-25")]).to_string(),
    )
    .await;
    assert_rpc_error(
        status,
        &reply,
        -32600,
        Value::Null,
        "batches are not supported",
    );
    still_serving(&url, &sid, 100).await;
    assert_eq!(mock.calls(), 1);
    proxy.shutdown().await;
}

#[tokio::test]
async fn null_object_and_fractional_ids_and_broken_envelopes_are_400_invalid_request() {
    let (mock, proxy) = setup().await;
    let url = proxy.url("demo");
    let sid = session(&url).await;
    let cases = [
        (
            json!({ "jsonrpc": "2.0", "id": null, "method": "tools/list" }),
            Value::Null,
            "`id` must be a string or an integer (64-bit), not null",
        ),
        (
            json!({ "jsonrpc": "2.0", "id": { "n": 1 }, "method": "tools/list" }),
            Value::Null,
            "`id` must be a string or an integer (64-bit), not an object",
        ),
        (
            json!({ "jsonrpc": "2.0", "id": [1], "method": "tools/list" }),
            Value::Null,
            "not an array",
        ),
        (
            json!({ "jsonrpc": "2.0", "id": 1.5, "method": "tools/list" }),
            Value::Null,
            "not 1.5",
        ),
        (
            json!({ "jsonrpc": "1.0", "id": 3, "method": "tools/list" }),
            json!(3),
            "`jsonrpc` must be \"2.0\"",
        ),
        (
            json!({ "jsonrpc": "2.0", "id": 4, "method": 12 }),
            json!(4),
            "`method` must be a string",
        ),
        (
            json!({ "hello": "world" }),
            Value::Null,
            "`jsonrpc` must be \"2.0\"",
        ),
        (
            json!({ "jsonrpc": "2.0", "id": 5 }),
            json!(5),
            "needs `method`",
        ),
        (
            json!("tools/list"),
            Value::Null,
            "a message is a JSON object",
        ),
    ];
    for (body, id, needle) in cases {
        let (status, reply) = send_raw(&url, Some(&sid), body.to_string()).await;
        assert_rpc_error(status, &reply, -32600, id, needle);
    }
    // the same without a session
    let (status, reply) = send_raw(
        &url,
        None,
        json!({ "jsonrpc": "2.0", "id": null,
        "method": "initialize" })
        .to_string(),
    )
    .await;
    assert_rpc_error(status, &reply, -32600, Value::Null, "not null");
    still_serving(&url, &sid, 100).await;
    assert_eq!(mock.calls(), 1);
    proxy.shutdown().await;
}

#[tokio::test]
async fn invalid_params_of_a_known_method_are_32602_naming_the_field() {
    let (mock, proxy) = setup().await;
    let url = proxy.url("demo");
    let sid = session(&url).await;
    let cases = [
        (
            json!({ "jsonrpc": "2.0", "id": 10, "method": "tools/call",
            "params": { "arguments": {} } }),
            "missing field `name`",
        ),
        (
            json!({ "jsonrpc": "2.0", "id": "s-11", "method": "tools/call",
            "params": { "name": "echo", "arguments": "text" } }),
            "arguments: invalid type: string \"text\", expected a map",
        ),
        (
            json!({ "jsonrpc": "2.0", "id": 12, "method": "resources/read", "params": {} }),
            "missing field `uri`",
        ),
        (
            json!({ "jsonrpc": "2.0", "id": 13, "method": "prompts/get",
            "params": { "name": 7 } }),
            "name: invalid type: integer `7`",
        ),
        (
            json!({ "jsonrpc": "2.0", "id": 14, "method": "tools/call" }),
            "tools/call needs `params`",
        ),
    ];
    for (body, needle) in cases {
        let id = body["id"].clone();
        let (status, reply) = send_raw(&url, Some(&sid), body.to_string()).await;
        assert_rpc_error(status, &reply, -32602, id, needle);
        assert!(
            reply["error"]["message"]
                .as_str()
                .unwrap()
                .starts_with("invalid params: ")
        );
        assert_eq!(reply["error"]["data"]["method"], body["method"], "{reply}");
    }
    // initialize without protocolVersion, opening no session
    let init = json!({ "jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": { "capabilities": {}, "clientInfo": { "name": "c", "version": "0" } } });
    let (status, reply) = send_raw(&url, None, init.to_string()).await;
    assert_rpc_error(
        status,
        &reply,
        -32602,
        json!(1),
        "missing field `protocolVersion`",
    );
    // a truly unknown method is still rmcp's -32601
    let unknown = json!({ "jsonrpc": "2.0", "id": 15, "method": "no/such/method", "params": {} });
    let (status, reply) = send_raw(&url, Some(&sid), unknown.to_string()).await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(
        (reply["id"].clone(), reply["error"]["code"].clone()),
        (json!(15), json!(-32601)),
        "{reply}"
    );
    still_serving(&url, &sid, 100).await;
    assert_eq!(mock.calls(), 1, "no malformed call reached the upstream");
    proxy.shutdown().await;
}

#[tokio::test]
async fn a_duplicate_in_flight_id_is_refused_and_the_first_is_answered() {
    let (mock, proxy) = setup().await;
    let url = proxy.url("demo");
    let sid = session(&url).await;
    let slow = json!({ "jsonrpc": "2.0", "id": 42, "method": "tools/call",
        "params": { "name": "sleep", "arguments": { "ms": 1500 } } });
    let first = tokio::spawn({
        let (url, sid, slow) = (url.clone(), sid.clone(), slow.to_string());
        async move { send_raw(&url, Some(&sid), slow).await }
    });
    assert!(
        eventually(Duration::from_secs(10), || mock.in_flight() == 1).await,
        "the slow call never reached the upstream"
    );
    let again = json!({ "jsonrpc": "2.0", "id": 42, "method": "tools/call",
        "params": { "name": "echo", "arguments": { "text": "second" } } });
    let (status, reply) = send_raw(&url, Some(&sid), again.to_string()).await;
    assert_rpc_error(
        status,
        &reply,
        -32600,
        json!(42),
        "request id 42 is already in flight in this session",
    );
    // a string id "42" is another id; another session may use 42 meanwhile
    let string_id = json!({ "jsonrpc": "2.0", "id": "42", "method": "ping" });
    let (status, reply) = send_raw(&url, Some(&sid), string_id.to_string()).await;
    assert_eq!((status, reply["id"].clone()), (200, json!("42")), "{reply}");
    let other = session(&url).await;
    still_serving(&url, &other, 42).await;
    // the first is answered with its own result
    let (status, reply) = tokio::time::timeout(Duration::from_secs(30), first)
        .await
        .expect("the first request was left hanging")
        .unwrap();
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["id"], 42, "{reply}");
    assert_eq!(
        reply["result"]["content"][0]["text"], "slept 1500ms",
        "{reply}"
    );
    // once it ended, the id is free again in its session
    still_serving(&url, &sid, 42).await;
    assert_eq!(
        mock.calls(),
        3,
        "the sleep and two echoes; the refused duplicate never left"
    );
    proxy.shutdown().await;
}

#[tokio::test]
async fn wrong_content_type_and_accept_keep_their_status_with_a_jsonrpc_body() {
    let (_mock, proxy) = setup().await;
    let url = proxy.url("demo");
    let sid = session(&url).await;
    let ping = json!({ "jsonrpc": "2.0", "id": 1, "method": "ping" }).to_string();
    let r = reqwest::Client::new()
        .post(&url)
        .header("Authorization", format!("Bearer {KEY}"))
        .header("mcp-session-id", &sid)
        .header("accept", "application/json, text/event-stream")
        .header("content-type", "text/plain")
        .body(ping.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let reply: Value = r.json().await.unwrap();
    assert_eq!(
        (reply["id"].clone(), reply["error"]["code"].clone()),
        (Value::Null, json!(-32600)),
        "{reply}"
    );
    assert!(
        reply["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Content-Type must be application/json"),
        "{reply}"
    );
    let r = reqwest::Client::new()
        .post(&url)
        .header("Authorization", format!("Bearer {KEY}"))
        .header("mcp-session-id", &sid)
        .header("content-type", "application/json")
        .header("accept", "application/json")
        .body(ping)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_ACCEPTABLE);
    let reply: Value = r.json().await.unwrap();
    assert_eq!(reply["error"]["code"], -32600, "{reply}");
    assert!(
        reply["error"]["message"]
            .as_str()
            .unwrap()
            .contains("text/event-stream"),
        "{reply}"
    );
    still_serving(&url, &sid, 100).await;
    proxy.shutdown().await;
}

/// Sends a POST with a chunked body of `chunks` × `chunk` bytes over a raw socket (so nothing
/// sets a `Content-Length`); the status and the body of the answer.
async fn post_chunked(proxy: &TestProxy, chunks: &[Vec<u8>]) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(proxy.proxy.addr)
        .await
        .unwrap();
    let mut request = format!(
        "POST /mcp/demo HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {KEY}\r\n\
         Accept: application/json, text/event-stream\r\nContent-Type: application/json\r\n\
         Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
        proxy.proxy.addr
    )
    .into_bytes();
    for chunk in chunks {
        request.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        request.extend_from_slice(chunk);
        request.extend_from_slice(b"\r\n");
    }
    request.extend_from_slice(b"0\r\n\r\n");
    // the proxy may answer before it has read it all; what it answers is what counts
    let _ = stream.write_all(&request).await;
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer)).await;
    assert!(read.is_ok(), "no answer within 10 s");
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let status = answer
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line: {answer:?}"));
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

#[tokio::test]
async fn a_chunked_body_past_the_limit_is_413_with_a_json_body() {
    let (mock, proxy) = setup().await;
    let url = proxy.url("demo");
    // a chunked initialize under the limit is served (chunked bodies are read, not refused)
    let init = initialize_body("2025-11-25").to_string().into_bytes();
    let (status, body) = post_chunked(&proxy, &[init[..10].to_vec(), init[10..].to_vec()]).await;
    assert_eq!(status, 200, "{body}");
    // past the limit: a valid JSON-RPC message, padded, in 16 KiB chunks without a length
    let pad = "x".repeat(LIMIT + 1024);
    let big = json!({ "jsonrpc": "2.0", "id": 1, "method": "ping", "params": { "pad": pad } })
        .to_string()
        .into_bytes();
    let chunks: Vec<Vec<u8>> = big.chunks(16 * 1024).map(<[u8]>::to_vec).collect();
    let (status, body) = post_chunked(&proxy, &chunks).await;
    assert_eq!(status, 413, "{body}");
    let body: Value = serde_json::from_str(body.trim()).unwrap_or_else(|e| panic!("{e}: {body}"));
    assert_eq!(body["error"], "body_too_large", "{body}");
    // the proxy keeps serving, sessions and all
    let sid = session(&url).await;
    still_serving(&url, &sid, 100).await;
    assert_eq!(mock.calls(), 1);
    proxy.shutdown().await;
}
