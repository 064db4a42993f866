//! Contract: each HTTP fault is observable from a real client, switchable at run time through
//! `POST /control`, and counted by `GET /control`; bad control input gets a 400 naming the field.

use std::time::{Duration, Instant};

use mock_mcp::{MockConfig, MockServer};
use reqwest::StatusCode;
use serde_json::{Value, json};

fn post(url: &str) -> reqwest::RequestBuilder {
    reqwest::Client::new()
        .post(url)
        .header("Accept", "application/json, text/event-stream")
        .header("Content-Type", "application/json")
}

fn initialize() -> Value {
    json!({ "jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": { "name": "t", "version": "0" } } })
}

fn tool_call(id: u64, name: &str, args: Value) -> Value {
    json!({ "jsonrpc": "2.0", "id": id, "method": "tools/call", "params": { "name": name, "arguments": args } })
}

/// Initializes a session; returns its id.
async fn session(url: &str) -> String {
    let r = post(url).json(&initialize()).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let sid = r.headers()["mcp-session-id"].to_str().unwrap().to_string();
    r.text().await.unwrap();
    post(url)
        .header("mcp-session-id", &sid)
        .json(&json!({ "jsonrpc": "2.0", "method": "notifications/initialized" }))
        .send()
        .await
        .unwrap();
    sid
}

async fn call(
    url: &str,
    sid: &str,
    id: u64,
    name: &str,
    args: Value,
) -> reqwest::Result<(StatusCode, String)> {
    let r = post(url)
        .header("mcp-session-id", sid)
        .json(&tool_call(id, name, args))
        .send()
        .await?;
    let status = r.status();
    Ok((status, r.text().await?))
}

async fn control(server: &MockServer) -> Value {
    reqwest::get(format!("http://{}/control", server.addr()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test]
async fn refuse_closes_the_port_until_lifted_through_the_control_port() {
    let mut config = MockConfig::with_faults(&["refuse"]);
    config.control_listen = Some("127.0.0.1:0".parse().unwrap());
    let server = MockServer::start(config).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let err = tokio::net::TcpStream::connect(server.addr())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused);
    let control_url = format!("http://{}/control", server.control_addr().unwrap());
    let r = reqwest::Client::new()
        .post(&control_url)
        .json(&json!({ "faults": [] }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let mut up = false;
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(server.addr()).await.is_ok() {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(up, "the port re-opens when refuse is lifted");
    let sid = session(&server.url()).await;
    let (status, body) = call(&server.url(), &sid, 2, "echo", json!({ "text": "back" }))
        .await
        .unwrap();
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("back"));
    // and closes again when switched on at run time
    server.set_faults(&["refuse"]);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(tokio::net::TcpStream::connect(server.addr()).await.is_err());
    assert_eq!(server.counters().await.faults_fired["refuse"], 2);
    server.shutdown().await;
}

#[tokio::test]
async fn init_error_and_init_garbage() {
    let server = MockServer::start(MockConfig::with_faults(&["init-error"]))
        .await
        .unwrap();
    let r = post(&server.url())
        .json(&initialize())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert!(r.text().await.unwrap().contains("init-error"));
    // an rmcp client fails to connect
    let client = rmcp::ServiceExt::serve(
        (),
        rmcp::transport::StreamableHttpClientTransport::from_uri(server.url()),
    )
    .await;
    assert!(client.is_err());

    server.set_faults(&["init-garbage"]);
    let r = post(&server.url())
        .json(&initialize())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(
        serde_json::from_str::<Value>(&r.text().await.unwrap()).is_err(),
        "invalid JSON"
    );

    server.set_faults(&["init-garbage:wrong-id"]);
    let r = post(&server.url())
        .json(&initialize())
        .send()
        .await
        .unwrap();
    let body: Value = r.json().await.unwrap();
    assert_ne!(body["id"], json!(1));
    let fired = control(&server).await["faults_fired"].clone();
    assert_eq!(
        (fired["init-error"].as_u64(), fired["init-garbage"].as_u64()),
        (Some(2), Some(2))
    );
    server.shutdown().await;
}

#[tokio::test]
async fn hangs_are_cut_only_by_the_client_timeout() {
    let server = MockServer::start(MockConfig::with_faults(&["hang-initialize"]))
        .await
        .unwrap();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let r = client
        .post(server.url())
        .header("Accept", "application/json, text/event-stream")
        .json(&initialize())
        .send()
        .await;
    assert!(r.unwrap_err().is_timeout());

    server.set_faults(&["hang-accept"]);
    let r = client.post(server.url()).json(&initialize()).send().await;
    assert!(r.unwrap_err().is_timeout(), "accepted but never answered");

    server.set_faults(&["hang-call"]);
    let sid = session(&server.url()).await; // everything but tools/call works
    let r = client
        .post(server.url())
        .header("Accept", "application/json, text/event-stream")
        .header("mcp-session-id", &sid)
        .json(&tool_call(2, "echo", json!({ "text": "x" })))
        .send()
        .await;
    assert!(r.unwrap_err().is_timeout());
    assert_eq!(server.calls(), 0, "the hung call never reached a tool");
    let started = Instant::now();
    server.shutdown().await;
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "shutdown ends hung requests"
    );
}

#[tokio::test]
async fn disconnect_mid_call_cuts_the_stream() {
    let server = MockServer::start(MockConfig::with_faults(&["disconnect-mid-call"]))
        .await
        .unwrap();
    let sid = session(&server.url()).await;
    let r = post(&server.url())
        .header("mcp-session-id", &sid)
        .json(&tool_call(2, "echo", json!({ "text": "never seen" })))
        .send()
        .await;
    // the connection is cut mid-response: either before the client has parsed the headers
    // (hyper: incomplete message) or while it reads the body
    match r {
        Err(e) => assert!(format!("{e:?}").contains("IncompleteMessage"), "{e:?}"),
        Ok(r) => assert!(r.text().await.is_err(), "the body is cut"),
    }
    assert_eq!(
        server.counters().await.faults_fired["disconnect-mid-call"],
        1
    );
    assert_eq!(
        server.calls(),
        1,
        "the call reached the tool before the cut"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn expire_session_after_n_calls_gives_404() {
    let server = MockServer::start(MockConfig::with_faults(&["expire-session-after:2"]))
        .await
        .unwrap();
    let sid = session(&server.url()).await;
    for i in 0..2 {
        let (status, _) = call(&server.url(), &sid, i + 2, "echo", json!({ "text": "x" }))
            .await
            .unwrap();
        assert_eq!(status, StatusCode::OK);
    }
    let (status, _) = call(&server.url(), &sid, 9, "echo", json!({ "text": "x" }))
        .await
        .unwrap();
    assert_eq!(status, StatusCode::NOT_FOUND);
    let r = post(&server.url())
        .header("mcp-session-id", &sid)
        .json(&json!({ "jsonrpc": "2.0", "id": 10, "method": "tools/list" }))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::NOT_FOUND,
        "every request on the session"
    );
    // a fresh session works
    let sid2 = session(&server.url()).await;
    let (status, _) = call(&server.url(), &sid2, 2, "echo", json!({ "text": "x" }))
        .await
        .unwrap();
    assert_eq!(status, StatusCode::OK);
    server.shutdown().await;
}

#[tokio::test]
async fn crash_after_n_requests_stops_the_server() {
    let server = MockServer::start(MockConfig::with_faults(&["crash-after:3"]))
        .await
        .unwrap();
    let sid = session(&server.url()).await; // 2 requests
    let (status, _) = call(&server.url(), &sid, 2, "echo", json!({ "text": "x" }))
        .await
        .unwrap();
    assert_eq!(status, StatusCode::OK);
    assert!(
        call(&server.url(), &sid, 3, "echo", json!({ "text": "x" }))
            .await
            .is_err()
            || server.crashed()
    );
    tokio::time::timeout(Duration::from_secs(2), server.stopped())
        .await
        .expect("server stops");
    assert!(server.crashed());
    let addr = server.addr();
    server.shutdown().await;
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}

#[tokio::test]
async fn slow_drip_and_latency_delay_but_answer() {
    let server = MockServer::start(MockConfig::default()).await.unwrap();
    let sid = session(&server.url()).await;
    let r = reqwest::Client::new()
        .post(format!("http://{}/control", server.addr()))
        .json(&json!({ "faults": ["slow-drip:1ms"], "latency": ["echo=fixed:150ms"] }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let started = Instant::now();
    let (status, body) = call(&server.url(), &sid, 2, "echo", json!({ "text": "drip" }))
        .await
        .unwrap();
    let took = started.elapsed();
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("drip"));
    assert!(
        took >= Duration::from_millis(150) + Duration::from_millis(body.len() as u64),
        "{took:?} for {} bytes",
        body.len()
    );
    server.shutdown().await;
}

#[tokio::test]
async fn control_counts_and_rejects_bad_input_naming_the_field() {
    let server = MockServer::start(MockConfig::default()).await.unwrap();
    let url = format!("http://{}/control", server.addr());
    let sid = session(&server.url()).await;
    call(&server.url(), &sid, 2, "echo", json!({ "text": "x" }))
        .await
        .unwrap();
    let c = control(&server).await;
    assert_eq!(
        (
            c["requests"].as_u64(),
            c["calls"].as_u64(),
            c["sessions_open"].as_u64()
        ),
        (Some(3), Some(1), Some(1))
    );
    let client = reqwest::Client::new();
    for (body, field, needle) in [
        (
            json!({ "faults": ["explode"] }),
            "faults[0]",
            "unknown fault",
        ),
        (
            json!({ "faults": ["hang-call", "hang-call@7"] }),
            "faults[1]",
            "probability",
        ),
        (json!({ "faults": "hang-call" }), "faults", "list"),
        (json!({ "latency": "fixed:soon" }), "latency", "duration"),
        (json!({ "latency": [5] }), "latency[0]", "string"),
        (json!({ "fault": [] }), "fault", "unknown field"),
    ] {
        let r = client.post(&url).json(&body).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{body}");
        let e: Value = r.json().await.unwrap();
        assert_eq!(e["field"], field, "{e}");
        assert!(e["error"].as_str().unwrap().contains(needle), "{e}");
    }
    let r = client.post(&url).body("{nope").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(
        control(&server).await["faults"]
            .as_array()
            .unwrap()
            .is_empty(),
        "nothing changed"
    );
    server.shutdown().await;
}
