//! `--roots-on-initialized`: on `notifications/initialized` of a 2025-11-25 session the mock asks
//! the client for its roots outside any request, and the `initial_roots` tool reports the
//! outcome for the calling session.

mod common;

use std::time::{Duration, Instant};

use common::*;
use mock_mcp::{MockConfig, MockServer};
use rmcp::{
    service::{ClientLifecycleMode, serve_client_with_lifecycle},
    transport::TokioChildProcess,
};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_mock-mcp");

async fn initial_roots(client: &Client) -> String {
    text(&call(client, "initial_roots", json!({})).await)
}

/// Polls `initial_roots` while it says "pending" (5 s at most); returns the first other answer.
async fn settled_initial_roots(client: &Client) -> String {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let answer = initial_roots(client).await;
        if answer != "pending" || Instant::now() >= deadline {
            return answer;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn roots_server() -> MockServer {
    MockServer::start(MockConfig {
        roots_on_initialized: true,
        ..MockConfig::default()
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn roots_are_asked_when_the_session_starts() {
    let server = roots_server().await;
    let recorder = Recorder::default();
    let client = connect(&server.url(), &recorder).await;
    // asked without any call of ours
    recorder.wait_event(Event::RootsListed).await;
    assert_eq!(settled_initial_roots(&client).await, ROOTS.join(","));
    assert_eq!(
        recorder
            .events()
            .iter()
            .filter(|e| **e == Event::RootsListed)
            .count(),
        1,
        "asked once per session"
    );

    // a second session is asked too, and has its own outcome
    let other = Recorder::default();
    let second = connect(&server.url(), &other).await;
    other.wait_event(Event::RootsListed).await;
    assert_eq!(settled_initial_roots(&second).await, ROOTS.join(","));

    client.cancel().await.unwrap();
    second.cancel().await.unwrap();
    server.shutdown().await;
}

#[tokio::test]
async fn without_the_flag_nothing_is_asked() {
    let server = MockServer::start(MockConfig::default()).await.unwrap();
    let recorder = Recorder::default();
    let client = connect(&server.url(), &recorder).await;
    assert_eq!(initial_roots(&client).await, "off");
    recorder
        .assert_quiet(Duration::from_millis(300), |e| *e == Event::RootsListed)
        .await;
    assert_eq!(initial_roots(&client).await, "off");
    client.cancel().await.unwrap();
    server.shutdown().await;
}

#[tokio::test]
async fn a_client_without_the_roots_capability_is_not_asked() {
    let server = roots_server().await;
    let recorder = Recorder::without_capabilities();
    let client = connect(&server.url(), &recorder).await;
    assert_eq!(
        settled_initial_roots(&client).await,
        "error: the client has no roots capability"
    );
    recorder
        .assert_quiet(Duration::from_millis(200), |e| *e == Event::RootsListed)
        .await;
    client.cancel().await.unwrap();
    server.shutdown().await;
}

#[tokio::test]
async fn a_2026_client_has_no_session_to_ask() {
    let server = roots_server().await;
    let client = connect_with(&server.url(), &Recorder::default(), discover()).await;
    assert!(
        initial_roots(&client)
            .await
            .starts_with("error: no session"),
        "{}",
        initial_roots(&client).await
    );
    client.cancel().await.unwrap();
    server.shutdown().await;
}

#[tokio::test]
async fn the_stdio_binary_asks_with_the_flag() {
    let recorder = Recorder::default();
    let mut cmd = tokio::process::Command::new(BIN);
    cmd.args(["stdio", "--roots-on-initialized"]);
    let client = serve_client_with_lifecycle(
        recorder.clone(),
        TokioChildProcess::new(cmd).unwrap(),
        ClientLifecycleMode::Initialize,
    )
    .await
    .expect("connect to mock-mcp stdio");
    recorder.wait_event(Event::RootsListed).await;
    assert_eq!(settled_initial_roots(&client).await, ROOTS.join(","));
    client.cancel().await.unwrap();
}

// ---- a raw-HTTP client that never answers: the request waits, and ends with the session ----

const V: &str = "2025-11-25";

fn raw(http: &reqwest::Client, method: reqwest::Method, url: &str) -> reqwest::RequestBuilder {
    http.request(method, url)
        .header("Accept", "application/json, text/event-stream")
        .header("Content-Type", "application/json")
}

/// The first JSON-RPC message of a JSON or SSE body.
async fn first_message(response: reqwest::Response) -> Value {
    let body = response.text().await.unwrap();
    body.lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .map(str::trim)
        .find_map(|d| serde_json::from_str::<Value>(d).ok())
        .or_else(|| serde_json::from_str(&body).ok())
        .unwrap_or_else(|| panic!("no JSON-RPC message in {body}"))
}

#[tokio::test]
async fn an_unanswered_request_is_pending_and_ends_with_the_session() {
    let server = roots_server().await;
    let url = server.url();
    let http = reqwest::Client::new();
    let init = json!({
        "jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {
            "protocolVersion": V,
            "capabilities": { "roots": {} },
            "clientInfo": { "name": "silent", "version": "0" }
        }
    });
    let r = raw(&http, reqwest::Method::POST, &url)
        .json(&init)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let sid = r.headers()["mcp-session-id"].to_str().unwrap().to_string();
    first_message(r).await;
    let in_session = |m: reqwest::Method| {
        raw(&http, m, &url)
            .header("Mcp-Session-Id", &sid)
            .header("MCP-Protocol-Version", V)
    };
    let r = in_session(reqwest::Method::POST)
        .json(&json!({ "jsonrpc": "2.0", "method": "notifications/initialized" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);

    // no GET stream, no answer: it stays pending (the ticker and the request are running)
    tokio::time::sleep(Duration::from_millis(300)).await;
    let call = json!({ "jsonrpc": "2.0", "id": 2, "method": "tools/call",
        "params": { "name": "initial_roots", "arguments": {} } });
    let r = in_session(reqwest::Method::POST)
        .json(&call)
        .send()
        .await
        .unwrap();
    let answer = first_message(r).await;
    assert_eq!(
        answer["result"]["content"][0]["text"], "pending",
        "{answer}"
    );
    assert_eq!(
        server.background_tasks(),
        2,
        "the ticker and the roots request"
    );

    // the session ends: so does the request (well before INITIAL_ROOTS_TIMEOUT)
    let r = in_session(reqwest::Method::DELETE).send().await.unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    let deadline = Instant::now() + Duration::from_secs(5);
    while server.background_tasks() > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(server.background_tasks(), 0, "tasks outlived the session");
    server.shutdown().await;
}
