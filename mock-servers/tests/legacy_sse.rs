//! Contract: `MockConfig::legacy_sse` / `mock-mcp serve --legacy-sse` serves the 2024-11-05
//! HTTP+SSE transport beside `/mcp`: `GET /sse` is a session's event stream whose first event
//! is `endpoint` (`/messages?session_id=ID`, relative), then every message the server sends as
//! `event: message` (one line of JSON); `POST /messages?session_id=ID` takes one JSON-RPC
//! message with 202 and the answer comes on the stream. Unknown or ended session 404, missing
//! `session_id` or a bad body 400 (JSON naming the problem). Dropping the stream ends the
//! session (`sessions_open` back down, a later POST 404). The HTTP faults play on this transport
//! as far as they apply, `--require-header` guards both routes, and TLS works.
//!
//! The client here is written by hand (reqwest and a line parser), as a legacy client would be.

use std::process::Stdio;
use std::time::Duration;

use futures::StreamExt;
use mock_mcp::tls::{TestCerts, server_config};
use mock_mcp::{MockConfig, MockServer};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};

const WAIT: Duration = Duration::from_secs(5);

type Chunks = futures::stream::BoxStream<'static, reqwest::Result<axum::body::Bytes>>;

/// One legacy session seen from the client: its event stream and its message URL.
struct Session {
    base: String,
    http: reqwest::Client,
    chunks: Chunks,
    buffer: String,
    /// The message endpoint, as the `endpoint` event gave it (relative).
    endpoint: String,
}

/// What reading the stream gave.
#[derive(Debug)]
enum Read {
    Event(String, String),
    /// The stream ended cleanly.
    End,
    /// The connection failed mid-stream (how).
    Cut(#[allow(dead_code)] String),
}

impl Session {
    /// `GET /sse` on `base` (`http://addr`), then the `endpoint` event.
    async fn open(http: &reqwest::Client, base: &str) -> Session {
        Self::open_with(http, base, &[]).await
    }

    async fn open_with(http: &reqwest::Client, base: &str, headers: &[(&str, &str)]) -> Session {
        let mut request = http
            .get(format!("{base}/sse"))
            .header("Accept", "text/event-stream");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            response.headers()["content-type"].to_str().unwrap(),
            "text/event-stream"
        );
        let mut session = Session {
            base: base.to_string(),
            http: http.clone(),
            chunks: response.bytes_stream().boxed(),
            buffer: String::new(),
            endpoint: String::new(),
        };
        let Read::Event(name, data) = session.read().await else {
            panic!("no endpoint event");
        };
        assert_eq!(name, "endpoint");
        assert!(data.starts_with("/messages?session_id="), "{data}");
        session.endpoint = data;
        session
    }

    fn id(&self) -> &str {
        self.endpoint.split('=').nth(1).unwrap()
    }

    /// The next event, or how the stream ended (within [`WAIT`]).
    async fn read(&mut self) -> Read {
        tokio::time::timeout(WAIT, self.read_forever())
            .await
            .expect("an event or the end of the stream within 5 s")
    }

    /// The next event, or `None` if nothing comes within `within`.
    async fn read_within(&mut self, within: Duration) -> Option<Read> {
        tokio::time::timeout(within, self.read_forever()).await.ok()
    }

    async fn read_forever(&mut self) -> Read {
        loop {
            if let Some(at) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..at + 2).collect();
                let (mut name, mut data) = ("message".to_string(), Vec::new());
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("event:") {
                        name = v.trim_start().to_string();
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push(v.strip_prefix(' ').unwrap_or(v).to_string());
                    }
                }
                if data.is_empty() {
                    continue; // a comment
                }
                return Read::Event(name, data.join("\n"));
            }
            match self.chunks.next().await {
                None => return Read::End,
                Some(Err(e)) => return Read::Cut(format!("{e:?}")),
                Some(Ok(bytes)) => self.buffer.push_str(&String::from_utf8_lossy(&bytes)),
            }
        }
    }

    /// The next `message` event, parsed.
    async fn message(&mut self) -> Value {
        match self.read().await {
            Read::Event(name, data) => {
                assert_eq!(name, "message", "{data}");
                assert!(!data.contains('\n'), "one line of JSON: {data}");
                serde_json::from_str(&data).unwrap_or_else(|e| panic!("{e}: {data}"))
            }
            other => panic!("expected a message, got {other:?}"),
        }
    }

    /// POSTs `message` to the session's endpoint: status and body.
    async fn post(&self, message: &Value) -> (StatusCode, String) {
        post_to(
            &self.http,
            &format!("{}{}", self.base, self.endpoint),
            message,
        )
        .await
    }

    /// POSTs `message` and expects 202 with an empty body.
    async fn send(&self, message: &Value) {
        let (status, body) = self.post(message).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        assert_eq!(body, "");
    }

    /// `initialize` (answered on the stream) and `notifications/initialized`.
    async fn initialize(&mut self) -> Value {
        self.send(&initialize()).await;
        let answer = self.message().await;
        assert_eq!(answer["id"], json!(1), "{answer}");
        self.send(&json!({ "jsonrpc": "2.0", "method": "notifications/initialized" }))
            .await;
        answer
    }
}

async fn post_to(http: &reqwest::Client, url: &str, message: &Value) -> (StatusCode, String) {
    let r = http
        .post(url)
        .header("Content-Type", "application/json")
        .body(message.to_string())
        .timeout(WAIT)
        .send()
        .await
        .unwrap();
    (r.status(), r.text().await.unwrap())
}

fn initialize() -> Value {
    json!({ "jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2024-11-05", "capabilities": {}, "clientInfo": { "name": "legacy", "version": "0" } } })
}

fn tool_call(id: u64, name: &str, args: Value) -> Value {
    json!({ "jsonrpc": "2.0", "id": id, "method": "tools/call", "params": { "name": name, "arguments": args } })
}

fn cancel(id: u64) -> Value {
    json!({ "jsonrpc": "2.0", "method": "notifications/cancelled", "params": { "requestId": id } })
}

fn legacy(faults: &[&str]) -> MockConfig {
    MockConfig {
        legacy_sse: true,
        ..MockConfig::with_faults(faults)
    }
}

fn base(server: &MockServer) -> String {
    format!("http://{}", server.addr())
}

/// Polls `GET /control` until `ready` holds (at most [`WAIT`]); the last reading.
async fn control_until(server: &MockServer, ready: impl Fn(&Value) -> bool) -> Value {
    let url = format!("http://{}/control", server.addr());
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let c: Value = reqwest::get(&url).await.unwrap().json().await.unwrap();
        if ready(&c) || tokio::time::Instant::now() > deadline {
            return c;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_session_round_trips_on_the_stream() {
    let server = MockServer::start(legacy(&[])).await.unwrap();
    assert_eq!(server.sse_url(), format!("{}/sse", base(&server)));
    let http = reqwest::Client::new();
    let mut session = Session::open(&http, &base(&server)).await;
    let init = session.initialize().await;
    assert_eq!(
        init["result"]["protocolVersion"],
        json!("2024-11-05"),
        "{init}"
    );
    assert!(
        init["result"]["capabilities"]["tools"].is_object(),
        "{init}"
    );

    session
        .send(&tool_call(2, "echo", json!({ "text": "hi" })))
        .await;
    let answer = session.message().await;
    assert_eq!(answer["id"], json!(2), "{answer}");
    assert_eq!(
        answer["result"]["content"][0]["text"],
        json!("hi"),
        "{answer}"
    );

    session
        .send(&json!({ "jsonrpc": "2.0", "id": "list", "method": "tools/list" }))
        .await;
    let list = session.message().await;
    assert_eq!(list["id"], json!("list"));
    assert_eq!(
        list["result"]["tools"].as_array().unwrap().len(),
        mock_mcp::TOOL_NAMES.len()
    );

    // a notification the server sends on its own comes on the stream too
    session.send(&tool_call(3, "poke", json!({}))).await;
    let mut seen = Vec::new();
    for _ in 0..2 {
        let m = session.message().await;
        seen.push(m["method"].as_str().map(str::to_string).unwrap_or_default());
    }
    assert!(
        seen.contains(&"notifications/tools/list_changed".to_string()),
        "{seen:?}"
    );

    // a cancelled sleep is counted, and stops
    session
        .send(&tool_call(4, "sleep", json!({ "ms": 60_000 })))
        .await;
    let c = control_until(&server, |c| c["in_flight"] == json!(1)).await;
    assert_eq!(c["in_flight"], json!(1), "{c}");
    session.send(&cancel(4)).await;
    let c = control_until(&server, |c| c["in_flight"] == json!(0)).await;
    assert_eq!(
        (
            &c["in_flight"],
            &c["cancels_received"],
            &c["cancelled"],
            &c["stopped"]
        ),
        (&json!(0), &json!(1), &json!(1), &json!(1)),
        "{c}"
    );
    assert_eq!(c["sessions_open"], json!(1), "{c}");
    assert_eq!(c["calls"], json!(3), "{c}");
    // GET /sse, initialize, initialized, 3 calls, tools/list, cancel
    assert_eq!(c["requests"], json!(8), "{c}");

    // Streamable HTTP is still served beside it
    let r = http
        .post(server.url())
        .header("Accept", "application/json, text/event-stream")
        .json(&json!({ "jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": { "name": "t", "version": "0" } } }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    drop(session);
    server.shutdown().await;
}

#[tokio::test]
async fn bad_posts_are_refused_naming_the_problem() {
    let server = MockServer::start(legacy(&[])).await.unwrap();
    let http = reqwest::Client::new();
    let messages = format!("{}/messages", base(&server));

    let (status, body) =
        post_to(&http, &format!("{messages}?session_id=nope"), &initialize()).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["error"], json!("unknown_session"));
    assert!(body["message"].as_str().unwrap().contains("nope"), "{body}");

    let (status, body) = post_to(&http, &messages, &initialize()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body.contains("session_id"), "{body}");

    let session = Session::open(&http, &base(&server)).await;
    let url = format!("{}{}", base(&server), session.endpoint);
    for garbage in ["{\"jsonrpc\": ", "[1, 2]", "{\"hello\": 1}"] {
        let r = http
            .post(&url)
            .header("Content-Type", "application/json")
            .body(garbage)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{garbage}");
        let body: Value = r.json().await.unwrap();
        assert!(
            body["message"].as_str().unwrap().contains("JSON-RPC"),
            "{body}"
        );
    }
    // the session is unharmed
    let mut session = session;
    session.initialize().await;

    // without --legacy-sse the routes are not there
    let plain = MockServer::start(MockConfig::default()).await.unwrap();
    let r = http
        .get(format!("{}/sse", base(&plain)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    plain.shutdown().await;
    server.shutdown().await;
}

#[tokio::test]
async fn dropping_the_stream_ends_the_session() {
    let server = MockServer::start(legacy(&["hang-call"])).await.unwrap();
    let http = reqwest::Client::new();
    let mut session = Session::open(&http, &base(&server)).await;
    session.initialize().await;
    // a call held by hang-call is released with its session
    session
        .send(&tool_call(2, "echo", json!({ "text": "held" })))
        .await;
    let c = control_until(&server, |c| c["hung"] == json!(1)).await;
    assert_eq!(
        (&c["sessions_open"], &c["hung"]),
        (&json!(1), &json!(1)),
        "{c}"
    );
    let endpoint = format!("{}{}", base(&server), session.endpoint);
    drop(session);
    let c = control_until(&server, |c| {
        c["sessions_open"] == json!(0) && c["hung"] == json!(0)
    })
    .await;
    assert_eq!(
        (&c["sessions_open"], &c["hung"]),
        (&json!(0), &json!(0)),
        "{c}"
    );
    // the session's list_changed ticker notices its transport closed within a second
    let deadline = tokio::time::Instant::now() + WAIT;
    while server.background_tasks() > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(server.background_tasks(), 0, "the session's tasks are gone");
    let (status, body) = post_to(&http, &endpoint, &tool_call(3, "echo", json!({}))).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert!(body.contains("unknown_session"), "{body}");
    server.shutdown().await;
}

#[tokio::test]
async fn hangs_are_held_until_cancelled_or_the_session_ends() {
    let server = MockServer::start(legacy(&["hang-initialize"]))
        .await
        .unwrap();
    let http = reqwest::Client::new();
    let mut session = Session::open(&http, &base(&server)).await;
    session.send(&initialize()).await;
    assert!(
        session
            .read_within(Duration::from_millis(300))
            .await
            .is_none(),
        "initialize is never answered"
    );

    server.set_faults(&["hang-call"]);
    let mut session = Session::open(&http, &base(&server)).await;
    session.initialize().await;
    session
        .send(&tool_call(2, "echo", json!({ "text": "x" })))
        .await;
    let c = control_until(&server, |c| c["hung"] == json!(1)).await;
    assert_eq!(c["hung"], json!(1), "{c}");
    assert!(
        session
            .read_within(Duration::from_millis(200))
            .await
            .is_none()
    );
    assert_eq!(server.calls(), 0, "the held call never reached a tool");
    // a notifications/cancelled for it ends the hold
    session.send(&cancel(2)).await;
    let c = control_until(&server, |c| c["hung"] == json!(0)).await;
    assert_eq!(
        (&c["hung"], &c["cancels_received"]),
        (&json!(0), &json!(1)),
        "{c}"
    );
    assert_eq!(c["faults_fired"]["hang-call"], json!(1), "{c}");
    assert_eq!(c["faults_fired"]["hang-initialize"], json!(1), "{c}");
    // and the session goes on
    server.set_faults(&[]);
    session
        .send(&tool_call(3, "echo", json!({ "text": "after" })))
        .await;
    assert_eq!(
        session.message().await["result"]["content"][0]["text"],
        json!("after")
    );
    server.shutdown().await;
}

#[tokio::test]
async fn init_error_is_500_and_init_garbage_comes_on_the_stream() {
    let server = MockServer::start(legacy(&["init-error"])).await.unwrap();
    let http = reqwest::Client::new();
    let mut session = Session::open(&http, &base(&server)).await;
    let (status, body) = session.post(&initialize()).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(body.contains("init-error"), "{body}");

    server.set_faults(&["init-garbage"]);
    session.send(&initialize()).await;
    match session.read().await {
        Read::Event(name, data) => {
            assert_eq!(name, "message");
            assert!(
                serde_json::from_str::<Value>(&data).is_err(),
                "invalid JSON: {data}"
            );
        }
        other => panic!("expected the garbage reply, got {other:?}"),
    }
    server.set_faults(&["init-garbage:wrong-id"]);
    session.send(&initialize()).await;
    let answer = session.message().await;
    assert_ne!(answer["id"], json!(1), "{answer}");

    // with the faults gone the same session initializes (nothing reached its server before)
    server.set_faults(&[]);
    let init = session.initialize().await;
    assert!(init["result"]["serverInfo"].is_object(), "{init}");
    let fired = server.counters().await.faults_fired;
    assert_eq!((fired["init-error"], fired["init-garbage"]), (1, 2));
    server.shutdown().await;
}

#[tokio::test]
async fn disconnect_mid_call_cuts_the_stream() {
    let server = MockServer::start(legacy(&[])).await.unwrap();
    let http = reqwest::Client::new();
    let mut session = Session::open(&http, &base(&server)).await;
    session.initialize().await;
    server.set_faults(&["disconnect-mid-call"]);
    let endpoint = format!("{}{}", base(&server), session.endpoint);
    session
        .send(&tool_call(2, "echo", json!({ "text": "never seen" })))
        .await;
    match session.read().await {
        Read::Cut(_) => {}
        other => panic!("expected the stream cut mid-reply, got {other:?}"),
    }
    assert_eq!(
        server.calls(),
        1,
        "the call reached the tool before the cut"
    );
    let c = control_until(&server, |c| c["sessions_open"] == json!(0)).await;
    assert_eq!(c["sessions_open"], json!(0), "{c}");
    assert_eq!(c["faults_fired"]["disconnect-mid-call"], json!(1), "{c}");
    server.set_faults(&[]);
    let (status, _) = post_to(&http, &endpoint, &tool_call(3, "echo", json!({}))).await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "the session went with its stream"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn expire_session_after_n_calls_ends_the_session() {
    let server = MockServer::start(legacy(&["expire-session-after:1"]))
        .await
        .unwrap();
    let http = reqwest::Client::new();
    let mut session = Session::open(&http, &base(&server)).await;
    session.initialize().await;
    session
        .send(&tool_call(2, "echo", json!({ "text": "one" })))
        .await;
    assert_eq!(session.message().await["id"], json!(2));
    let (status, body) = session
        .post(&tool_call(3, "echo", json!({ "text": "two" })))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert!(body.contains("expire-session-after"), "{body}");
    assert!(matches!(session.read().await, Read::End), "the stream ends");
    let c = control_until(&server, |c| c["sessions_open"] == json!(0)).await;
    assert_eq!(c["sessions_open"], json!(0), "{c}");
    let (status, _) = session.post(&tool_call(4, "echo", json!({}))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // a new session starts afresh
    let mut again = Session::open(&http, &base(&server)).await;
    again.initialize().await;
    again
        .send(&tool_call(2, "echo", json!({ "text": "x" })))
        .await;
    assert_eq!(again.message().await["id"], json!(2));
    server.shutdown().await;
}

#[tokio::test]
async fn crash_after_stops_the_server_and_its_streams() {
    let server = MockServer::start(legacy(&["crash-after:3"])).await.unwrap();
    let http = reqwest::Client::new();
    let mut session = Session::open(&http, &base(&server)).await; // 1
    session.initialize().await; // 2, 3
    let r = http
        .post(format!("{}{}", base(&server), session.endpoint))
        .body(tool_call(2, "echo", json!({})).to_string())
        .send()
        .await;
    assert!(r.is_err() || server.crashed());
    tokio::time::timeout(Duration::from_secs(2), server.stopped())
        .await
        .expect("the server stops");
    assert!(server.crashed());
    assert!(
        !matches!(session.read().await, Read::Event(..)),
        "the stream ends"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn require_header_guards_both_routes() {
    let server = MockServer::start(MockConfig {
        require_headers: vec!["Authorization: Bearer t0ken".parse().unwrap()],
        ..legacy(&[])
    })
    .await
    .unwrap();
    let http = reqwest::Client::new();
    let r = http
        .get(format!("{}/sse", base(&server)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        r.headers()["www-authenticate"].to_str().unwrap(),
        "Bearer realm=\"mock-mcp\""
    );
    let mut session =
        Session::open_with(&http, &base(&server), &[("Authorization", "Bearer t0ken")]).await;
    let (status, _) = session.post(&initialize()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "the POST needs it too");
    let r = http
        .post(format!("{}{}", base(&server), session.endpoint))
        .header("Authorization", "Bearer t0ken")
        .body(initialize().to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    assert_eq!(session.message().await["id"], json!(1));
    let c = server.counters().await;
    assert_eq!((c.unauthorized, c.authorized), (2, 2), "{c:?}");
    server.shutdown().await;
}

#[tokio::test]
async fn over_tls() {
    let dir = tempfile::tempdir().unwrap();
    let certs = TestCerts::generate(dir.path()).unwrap();
    let server = MockServer::start(MockConfig {
        tls: Some(server_config(&certs.cert, &certs.key).unwrap()),
        ..legacy(&[])
    })
    .await
    .unwrap();
    assert!(
        server.sse_url().starts_with("https://"),
        "{}",
        server.sse_url()
    );
    let pem = std::fs::read(&certs.ca).unwrap();
    let http = reqwest::Client::builder()
        .tls_certs_only(reqwest::Certificate::from_pem_bundle(&pem).unwrap())
        .build()
        .unwrap();
    let base = format!("https://{}", server.addr());
    let mut session = Session::open(&http, &base).await;
    session.initialize().await;
    session
        .send(&tool_call(2, "echo", json!({ "text": "tls" })))
        .await;
    assert_eq!(
        session.message().await["result"]["content"][0]["text"],
        json!("tls")
    );
    drop(session);
    let c = control_until_tls(&server).await;
    assert_eq!(c, 0);
    server.shutdown().await;
}

/// `sessions_open` of a TLS mock, once it is 0 (or after [`WAIT`]).
async fn control_until_tls(server: &MockServer) -> u64 {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let open = server.counters().await.sessions_open;
        if open == 0 || tokio::time::Instant::now() > deadline {
            return open;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn the_binary_serves_it_with_the_flag() {
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_mock-mcp"))
        .args(["serve", "--legacy-sse", "--latency", "fixed:5ms"])
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let ready = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
        .await
        .expect("no ready line")
        .unwrap()
        .unwrap();
    let addr = ready.strip_prefix("listening on ").unwrap().to_string();
    let http = reqwest::Client::new();
    let mut session = Session::open(&http, &format!("http://{addr}")).await;
    assert_eq!(session.id().len(), 32);
    session.initialize().await;
    session
        .send(&tool_call(2, "add", json!({ "a": 2, "b": 3 })))
        .await;
    assert_eq!(
        session.message().await["result"]["content"][0]["text"],
        json!("5")
    );
    child.kill().await.unwrap();
}
