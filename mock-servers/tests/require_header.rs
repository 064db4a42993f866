//! Contract: `MockConfig::require_headers` / `mock-mcp serve --require-header "Name: value"`.
//! A request to `/mcp` with every required header at exactly its value is served as before
//! (faults and latency included, over TLS too); one without gets 401 with
//! `WWW-Authenticate: Bearer realm="mock-mcp"` and a JSON body naming the header, never what
//! was presented; `GET /control` (which needs no header) counts both.

mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{call, text};
use mock_mcp::tls::{TestCerts, server_config};
use mock_mcp::{MockConfig, MockServer, RequiredHeader};
use reqwest::StatusCode;
use rmcp::ServiceExt;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};

const BIN: &str = env!("CARGO_BIN_EXE_mock-mcp");
const TOKEN: &str = "t0ken-abc";
const WRONG: &str = "not-the-t0ken-9f3e";

fn initialize() -> Value {
    json!({ "jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": { "name": "t", "version": "0" } } })
}

fn requiring(specs: &[&str]) -> MockConfig {
    MockConfig {
        require_headers: specs.iter().map(|s| s.parse().unwrap()).collect(),
        ..MockConfig::with_faults(&[])
    }
}

/// POSTs `initialize` to `url` with `headers`; status, `WWW-Authenticate`, body.
async fn initialize_with(
    client: &reqwest::Client,
    url: &str,
    headers: &[(&str, &str)],
) -> (StatusCode, Option<String>, String) {
    let mut request = client
        .post(url)
        .header("Accept", "application/json, text/event-stream")
        .json(&initialize())
        .timeout(Duration::from_secs(5));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let r = request.send().await.unwrap();
    let status = r.status();
    let challenge = r
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_string());
    (status, challenge, r.text().await.unwrap())
}

/// Asserts a 401 naming `header` that does not repeat `presented`.
fn assert_refused(answer: (StatusCode, Option<String>, String), header: &str, presented: &str) {
    let (status, challenge, body) = answer;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(challenge.as_deref(), Some("Bearer realm=\"mock-mcp\""));
    let json: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
    assert_eq!(
        json,
        json!({ "error": "unauthorized", "message": format!("missing or wrong {header} header") })
    );
    assert!(!presented.is_empty() && !body.contains(presented), "{body}");
}

async fn control(addr: std::net::SocketAddr) -> Value {
    reqwest::get(format!("http://{addr}/control"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

fn authorized_transport(
    url: &str,
    client: reqwest::Client,
    token: &str,
) -> StreamableHttpClientTransport<reqwest::Client> {
    let config = StreamableHttpClientTransportConfig::with_uri(url.to_string())
        .auth_header(token.to_string());
    StreamableHttpClientTransport::with_client(client, config)
}

#[tokio::test]
async fn the_right_header_is_served_and_a_missing_or_wrong_one_gets_401() {
    let mock = MockServer::start(requiring(&[&format!("Authorization: Bearer {TOKEN}")]))
        .await
        .unwrap();
    let url = mock.url();
    let http = reqwest::Client::new();

    assert_refused(
        initialize_with(&http, &url, &[]).await,
        "Authorization",
        "Bearer",
    );
    let wrong = format!("Bearer {WRONG}");
    assert_refused(
        initialize_with(&http, &url, &[("Authorization", &wrong)]).await,
        "Authorization",
        WRONG,
    );
    // the right token under another scheme is still wrong
    assert_refused(
        initialize_with(&http, &url, &[("Authorization", TOKEN)]).await,
        "Authorization",
        "x",
    );
    let counters = control(mock.addr()).await;
    assert_eq!(counters["unauthorized"], 3, "{counters}");
    assert_eq!(counters["authorized"], 0, "{counters}");
    assert_eq!(
        counters["requests"], 0,
        "refusals never reach the MCP layer"
    );
    assert!(!counters.to_string().contains(WRONG), "{counters}");

    // an MCP client with the right header: initialize, tools/call echo
    let client =
        ().serve(authorized_transport(&url, reqwest::Client::new(), TOKEN))
            .await
            .expect("initialize with the right header");
    let echoed = call(&client, "echo", json!({ "text": "with credentials" })).await;
    assert_eq!(text(&echoed), "with credentials");
    assert_eq!(mock.calls(), 1);
    client.cancel().await.unwrap();
    let counters = control(mock.addr()).await;
    let authorized = counters["authorized"].as_u64().unwrap();
    // initialize, notifications/initialized, tools/call at least (a GET stream, a DELETE)
    assert!(authorized >= 3, "{counters}");
    assert_eq!(
        counters["requests"].as_u64(),
        Some(authorized),
        "{counters}"
    );
    assert_eq!(counters["unauthorized"], 3, "{counters}");

    // an MCP client with the wrong one cannot connect
    let refused = ().serve(authorized_transport(&url, reqwest::Client::new(), WRONG)).await;
    assert!(refused.is_err(), "connected with the wrong token");
    let counters = control(mock.addr()).await;
    assert!(counters["unauthorized"].as_u64().unwrap() > 3, "{counters}");
    assert_eq!(counters["authorized"].as_u64(), Some(authorized));
    mock.shutdown().await;
}

#[tokio::test]
async fn every_required_header_is_needed_and_the_refusal_names_the_missing_one() {
    let mock = MockServer::start(requiring(&["Authorization: Bearer abc", "X-Tenant: blue"]))
        .await
        .unwrap();
    let http = reqwest::Client::new();
    let url = mock.url();
    let bearer = ("Authorization", "Bearer abc");
    assert_refused(
        initialize_with(&http, &url, &[bearer]).await,
        "X-Tenant",
        "Bearer abc",
    );
    assert_refused(
        initialize_with(&http, &url, &[bearer, ("x-tenant", "green")]).await,
        "X-Tenant",
        "green",
    );
    let (status, _, body) = initialize_with(&http, &url, &[bearer, ("x-tenant", "blue")]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let c = mock.counters().await;
    assert_eq!((c.authorized, c.unauthorized), (1, 2));
    mock.shutdown().await;
}

#[tokio::test]
async fn faults_and_latency_work_the_same_behind_the_header() {
    let mut config = requiring(&["X-Key: k1"]);
    config.state = std::sync::Arc::new(mock_mcp::faults::FaultState::new(
        Vec::new(),
        mock_mcp::faults::Latency::parse(&["echo=fixed:300ms"]).unwrap(),
        Some(1),
    ));
    let mock = MockServer::start(config).await.unwrap();
    let url = mock.url();
    let http = reqwest::Client::new();
    let key = [("X-Key", "k1")];

    // latency: the echo call takes its 300 ms
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert("x-key", "k1".parse().unwrap());
    let keyed = reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .unwrap();
    let client = ()
        .serve(StreamableHttpClientTransport::with_client(
            keyed,
            StreamableHttpClientTransportConfig::with_uri(url.clone()),
        ))
        .await
        .unwrap();
    let started = Instant::now();
    assert_eq!(
        text(&call(&client, "echo", json!({ "text": "slow" })).await),
        "slow"
    );
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "{:?}",
        started.elapsed()
    );
    client.cancel().await.unwrap();

    // a fault switched at run time through /control (which needs no header)
    let r = http
        .post(format!("http://{}/control", mock.addr()))
        .json(&json!({ "faults": ["init-error"] }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let (status, _, body) = initialize_with(&http, &url, &key).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{body}");
    assert!(body.contains("init-error"), "{body}");
    // a refused request never reaches the faults
    assert_refused(initialize_with(&http, &url, &[]).await, "X-Key", "k1");
    let c = mock.counters().await;
    assert_eq!(c.faults_fired.get("init-error"), Some(&1), "{c:?}");

    // crash-after counts the requests that got through only
    mock.set_faults(&["crash-after:1"]);
    let requests = c.requests;
    for _ in 0..3 {
        assert_refused(initialize_with(&http, &url, &[]).await, "X-Key", "k1");
    }
    assert!(!mock.crashed());
    assert_eq!(mock.counters().await.requests, requests);
    mock.shutdown().await;
}

#[tokio::test]
async fn over_tls_too() {
    let dir = tempfile::tempdir().unwrap();
    let certs = TestCerts::generate(dir.path()).unwrap();
    let mock = MockServer::start(MockConfig {
        tls: Some(server_config(&certs.cert, &certs.key).unwrap()),
        ..requiring(&[&format!("Authorization: Bearer {TOKEN}")])
    })
    .await
    .unwrap();
    let url = mock.url();
    assert!(url.starts_with("https://"), "{url}");
    let trusting = || {
        let pem = std::fs::read(&certs.ca).unwrap();
        reqwest::Client::builder()
            .tls_certs_only(reqwest::Certificate::from_pem_bundle(&pem).unwrap())
            .build()
            .unwrap()
    };
    let wrong = format!("Bearer {WRONG}");
    assert_refused(
        initialize_with(&trusting(), &url, &[("Authorization", &wrong)]).await,
        "Authorization",
        WRONG,
    );
    let client =
        ().serve(authorized_transport(&url, trusting(), TOKEN))
            .await
            .expect("initialize over TLS with the right header");
    assert_eq!(
        text(&call(&client, "echo", json!({ "text": "tls" })).await),
        "tls"
    );
    client.cancel().await.unwrap();
    let c = mock.counters().await;
    assert_eq!(c.unauthorized, 1);
    assert!(c.authorized >= 3, "{c:?}");
    mock.shutdown().await;
}

#[tokio::test]
async fn the_binary_takes_the_flag_and_names_it_when_malformed() {
    let mut child = tokio::process::Command::new(BIN)
        .args(["serve", "--require-header", "X-Key: k1", "--require-header"])
        .arg(format!("Authorization: Bearer {TOKEN}"))
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
    let addr: std::net::SocketAddr = ready
        .strip_prefix("listening on ")
        .unwrap()
        .parse()
        .unwrap();
    let url = format!("http://{addr}/mcp");
    let http = reqwest::Client::new();
    let bearer = format!("Bearer {TOKEN}");
    assert_refused(
        initialize_with(&http, &url, &[("X-Key", "k1")]).await,
        "Authorization",
        "k1",
    );
    let (status, _, body) =
        initialize_with(&http, &url, &[("X-Key", "k1"), ("Authorization", &bearer)]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let counters = control(addr).await;
    assert_eq!(
        (&counters["authorized"], &counters["unauthorized"]),
        (&json!(1), &json!(1))
    );
    child.kill().await.unwrap();

    for spec in ["Authorization Bearer abc", "X-Key:", "Bad Name: v"] {
        let output = tokio::process::Command::new(BIN)
            .args(["serve", "--require-header", spec])
            .output()
            .await
            .unwrap();
        assert!(!output.status.success(), "{spec:?}");
        assert!(output.stdout.is_empty(), "{spec:?}: never ready");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("--require-header"), "{spec:?}: {stderr}");
        assert!(stderr.contains("\"Name: value\""), "{spec:?}: {stderr}");
    }
    // the type the flag parses is the one MockConfig takes
    let parsed: RequiredHeader = "X-Key: k1".parse().unwrap();
    assert_eq!(parsed.name(), "X-Key");
}
