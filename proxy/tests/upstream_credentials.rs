//! Contract (upstream credentials per instance): an upstream template's `headers` carry
//! `${NAME}` values each instance supplies from its own secrets, so two instances of one
//! template reach the upstream with their own tokens over their own connections; a changed
//! secret replaces (and closes) the connection made with the old one; an upstream that refuses
//! the credential (401) is reported to the caller naming the upstream, is not retried in a
//! loop, trips the circuit breaker, and 300 refused connects leave nothing behind; a caller's
//! header is forwarded onto a `per-request` upstream.
//!
//! The upstream is `mock-mcp serve --require-header "Authorization: Bearer …"` as its own
//! process: it answers 401 to any other token and counts what it accepted and refused.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::*;
use mcp_proxy::domain::secrets::{Secret, SecretKey};
use serde_json::json;

const TOKEN_A: &str = "tok-a-0f3c9e51";
const TOKEN_B: &str = "tok-b-77d1aa20";
const KEY_A: &str = "key-a-000000001";
const KEY_B: &str = "key-b-000000002";

fn key_file(dir: &std::path::Path) -> PathBuf {
    let path = dir.join("secret.key");
    std::fs::write(&path, SecretKey::generate()).unwrap();
    path
}

/// Upstream `gh` (`connection`) behind instances `a` and `b`, each with its own `TOKEN`.
fn two_instances(url: &str, connection: &str, token_b: &str) -> String {
    format!(
        r#"
[[upstream]]
name = "gh"
transport = "streamable-http"
url = "{url}"
connection = "{connection}"
headers = {{ Authorization = "Bearer ${{TOKEN}}" }}

[[instance]]
id = "a"
upstreams = ["gh"]
api_keys = ["{KEY_A}"]
[instance.secrets]
TOKEN = "{TOKEN_A}"

[[instance]]
id = "b"
upstreams = ["gh"]
api_keys = ["{KEY_B}"]
[instance.secrets]
TOKEN = "{token_b}"
"#
    )
}

async fn echo(client: &Client, said: &str) -> Result<String, rmcp::model::ErrorData> {
    client
        .call_tool(call("echo", json!({ "text": said })))
        .await
        .map(|r| text(&r))
        .map_err(rpc_error)
}

async fn counter(mock: &MockProcess, name: &str) -> u64 {
    mock.counters().await[name].as_u64().unwrap_or_default()
}

fn assert_refused(e: &rmcp::model::ErrorData, secret: &str) {
    assert!(
        e.message
            .contains("upstream \"gh\" refused the credential (HTTP 401)"),
        "{}",
        e.message
    );
    assert!(
        !e.message.contains(secret),
        "the error shows no secret: {}",
        e.message
    );
    assert_eq!(e.data.as_ref().unwrap()["kind"], "credential_refused");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_instance_reaches_one_template_with_its_own_token_and_a_changed_secret_replaces_the_connection()
 {
    let mock = MockProcess::serve(&[
        "--require-header",
        &format!("Authorization: Bearer {TOKEN_A}"),
    ])
    .await;
    let dir = tempfile::tempdir().unwrap();
    let key = key_file(dir.path());
    let proxy = start_proxy(&two_instances(&mock.url(), "shared", TOKEN_B), |s| {
        s.secret_key.secret_key_file = Some(key)
    })
    .await;
    let a = client(&proxy.url("a"), KEY_A).await;
    let b = client(&proxy.url("b"), KEY_B).await;
    for i in 0..3 {
        assert_eq!(echo(&a, &format!("a{i}")).await.unwrap(), format!("a{i}"));
    }
    assert_eq!(
        mock.sessions_open().await,
        1,
        "a's calls share one pooled connection"
    );
    let accepted = counter(&mock, "authorized").await;
    assert!(
        accepted >= 4,
        "initialize, initialized, 3 calls: {accepted}"
    );

    // b: same template, its own token, which this upstream refuses
    let refused = echo(&b, "b").await.unwrap_err();
    assert_refused(&refused, TOKEN_B);
    assert!(counter(&mock, "unauthorized").await >= 1);
    assert_eq!(
        mock.sessions_open().await,
        1,
        "b's refused connect opened nothing"
    );

    // b gets a token the upstream accepts: its next call connects with it
    let state = &proxy.proxy.state;
    state
        .set_secret("b", "TOKEN", &Secret::new(TOKEN_A))
        .await
        .unwrap();
    assert_eq!(echo(&b, "b again").await.unwrap(), "b again");
    assert_eq!(mock.sessions_open().await, 2, "a and b: a connection each");

    // a's token changes: its connection made with the old one is closed, the new one is used
    state
        .set_secret("a", "TOKEN", &Secret::new("tok-rotated-away"))
        .await
        .unwrap();
    assert_refused(&echo(&a, "a").await.unwrap_err(), "tok-rotated-away");
    let open = mock.wait_sessions_open(1).await;
    assert_eq!(open, 1, "a's old connection was closed (only b's is left)");
    assert_eq!(echo(&b, "b still").await.unwrap(), "b still");

    a.cancel().await.unwrap();
    b.cancel().await.unwrap();
    proxy.shutdown().await;
    mock.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_credential_is_not_retried_in_a_loop_and_opens_the_circuit() {
    let mock = MockProcess::serve(&[
        "--require-header",
        &format!("Authorization: Bearer {TOKEN_A}"),
    ])
    .await;
    let dir = tempfile::tempdir().unwrap();
    let key = key_file(dir.path());
    let proxy = start_proxy(&two_instances(&mock.url(), "shared", TOKEN_B), |s| {
        s.secret_key.secret_key_file = Some(key);
        s.breaker_threshold = 3;
        s.breaker_cooldown = Duration::from_secs(3600);
    })
    .await;
    let b = unpooled_client(&proxy.url("b"), KEY_B).await;
    let mut kinds = Vec::new();
    for _ in 0..10 {
        let e = echo(&b, "b").await.unwrap_err();
        kinds.push(e.data.unwrap()["kind"].as_str().unwrap().to_string());
    }
    // a call may connect twice (listing the tools to route it, then calling)
    let refused = kinds
        .iter()
        .take_while(|k| *k == "credential_refused")
        .count();
    assert!(
        (1..=3).contains(&refused),
        "the first failures say the credential was refused: {kinds:?}"
    );
    assert!(
        kinds[refused..].iter().all(|k| k == "circuit_open"),
        "then the circuit is open: {kinds:?}"
    );
    let refusals = counter(&mock, "unauthorized").await;
    assert_eq!(
        refusals, 3,
        "one request per connect, three connects before the circuit opened: no retry loop"
    );
    proxy.shutdown().await;
    mock.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_hundred_refused_connects_leave_nothing_behind() {
    let mock = MockProcess::serve(&[
        "--require-header",
        &format!("Authorization: Bearer {TOKEN_A}"),
    ])
    .await;
    let dir = tempfile::tempdir().unwrap();
    let key = key_file(dir.path());
    let proxy = start_proxy(&two_instances(&mock.url(), "per-request", TOKEN_B), |s| {
        s.secret_key.secret_key_file = Some(key);
        s.breaker_threshold = 0;
    })
    .await;
    let a = unpooled_client(&proxy.url("a"), KEY_A).await;
    let b = unpooled_client(&proxy.url("b"), KEY_B).await;
    assert_eq!(echo(&a, "warm").await.unwrap(), "warm");
    let _ = echo(&b, "warm").await;
    let baseline = stable_resources().await;
    let (refused, peak) = drive(300, 10, |_| {
        let b = &b;
        async move { echo(b, "x").await.unwrap_err() }
    })
    .await;
    for e in &refused {
        assert_refused(e, TOKEN_B);
    }
    eprintln!("peak during 300 refused connects: {}", peak.line());
    assert_eq!(echo(&a, "after").await.unwrap(), "after");
    let settled = settle_within(&baseline, Duration::from_secs(25)).await;
    settled.assert_no_growth_over(&baseline, "after 300 refused connects");
    assert!(counter(&mock, "unauthorized").await >= 300);
    a.cancel().await.unwrap();
    b.cancel().await.unwrap();
    proxy.shutdown().await;
    mock.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_callers_header_is_forwarded_onto_a_per_request_upstream() {
    let mock =
        MockProcess::serve(&["--require-header", "Authorization: Bearer user-token-1"]).await;
    let seed = format!(
        r#"
[[upstream]]
name = "gh"
transport = "streamable-http"
url = "{}"
connection = "per-request"
forward_headers = {{ X-Upstream-Authorization = "Authorization" }}

[[instance]]
id = "demo"
upstreams = ["gh"]
api_keys = ["{KEY}"]
"#,
        mock.url()
    );
    let proxy = start_proxy(&seed, |s| s.breaker_threshold = 0).await;
    let call_with = |token: Option<&'static str>| {
        let url = proxy.url("demo");
        async move {
            let body = json!({ "jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {
                "name": "echo", "arguments": { "text": "fwd" },
                "_meta": {
                    "io.modelcontextprotocol/protocolVersion": "2026-07-28",
                    "io.modelcontextprotocol/clientInfo": { "name": "raw", "version": "0" },
                    "io.modelcontextprotocol/clientCapabilities": {}
                } } });
            let mut rb = post(&url, Some(KEY))
                .header("MCP-Protocol-Version", "2026-07-28")
                .header("Mcp-Method", "tools/call")
                .header("Mcp-Name", "echo");
            if let Some(token) = token {
                rb = rb.header("X-Upstream-Authorization", format!("Bearer {token}"));
            }
            rpc_json(rb.json(&body).send().await.unwrap()).await
        }
    };
    let ok = call_with(Some("user-token-1")).await;
    assert_eq!(ok["result"]["content"][0]["text"], "fwd", "{ok}");
    let other = call_with(Some("user-token-2")).await;
    assert!(
        other["error"]["message"]
            .as_str()
            .unwrap()
            .contains("refused the credential"),
        "{other}"
    );
    let none = call_with(None).await;
    assert!(none["error"].is_object(), "{none}");
    assert!(counter(&mock, "authorized").await >= 1);
    proxy.shutdown().await;
    mock.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_per_session_connection_is_remade_when_the_forwarded_header_changes() {
    use common::sessions::{V, http, open_session, rb};
    let mock = MockProcess::serve(&["--require-header", "Authorization: Bearer user-1"]).await;
    let seed = format!(
        "[[upstream]]\nname = \"gh\"\ntransport = \"streamable-http\"\nurl = \"{}\"\n\
         connection = \"per-session\"\n\
         forward_headers = {{ X-Upstream-Authorization = \"Authorization\" }}\n\n\
         [[instance]]\nid = \"demo\"\nupstreams = [\"gh\"]\napi_keys = [\"{KEY}\"]\n",
        mock.url()
    );
    let proxy = start_proxy(&seed, |s| s.breaker_threshold = 0).await;
    let (http, url) = (http(), proxy.url("demo"));
    let sid = open_session(&http, &url).await;
    let call = |token: &'static str, id: u64| {
        let body = json!({ "jsonrpc": "2.0", "id": id, "method": "tools/call",
            "params": { "name": "echo", "arguments": { "text": token } } });
        let request = rb(&http, reqwest::Method::POST, &url)
            .header("Mcp-Session-Id", &sid)
            .header("MCP-Protocol-Version", V)
            .header("X-Upstream-Authorization", format!("Bearer {token}"))
            .json(&body)
            .send();
        async move { rpc_json(request.await.unwrap()).await }
    };
    for id in 1..=2 {
        let ok = call("user-1", id).await;
        assert_eq!(ok["result"]["content"][0]["text"], "user-1", "{ok}");
    }
    assert_eq!(
        mock.sessions_open().await,
        1,
        "one connection for the session"
    );
    let other = call("user-2", 3).await;
    assert!(
        other["error"]["message"]
            .as_str()
            .unwrap()
            .contains("refused the credential"),
        "{other}"
    );
    let open = mock.wait_sessions_open(0).await;
    assert_eq!(
        open, 0,
        "the connection made with user-1's header was closed"
    );
    let again = call("user-1", 4).await;
    assert_eq!(again["result"]["content"][0]["text"], "user-1", "{again}");
    proxy.shutdown().await;
    mock.stop().await;
}
