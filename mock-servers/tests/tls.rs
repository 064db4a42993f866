//! Contract: `MockConfig::tls` serves the MCP endpoint over `https://` to a client that trusts
//! the throw-away CA (`TestCerts`) and to no other; a client that connects and never starts its
//! handshake holds up nobody (handshakes run off the accept loop); HTTP faults work the same.

use std::time::Duration;

use mock_mcp::tls::{TestCerts, server_config};
use mock_mcp::{MockConfig, MockServer};
use serde_json::{Value, json};

fn initialize() -> Value {
    json!({ "jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": { "name": "t", "version": "0" } } })
}

fn trusting(ca: &std::path::Path) -> reqwest::Client {
    let pem = std::fs::read(ca).unwrap();
    reqwest::Client::builder()
        .tls_certs_only(reqwest::Certificate::from_pem_bundle(&pem).unwrap())
        .build()
        .unwrap()
}

#[tokio::test]
async fn https_for_a_client_that_trusts_the_ca_and_nobody_else() {
    let dir = tempfile::tempdir().unwrap();
    let certs = TestCerts::generate(&dir.path().join("a")).unwrap();
    let other = TestCerts::generate(&dir.path().join("b")).unwrap();
    let mock = MockServer::start(MockConfig {
        tls: Some(server_config(&certs.cert, &certs.key).unwrap()),
        ..MockConfig::with_faults(&[])
    })
    .await
    .unwrap();
    let url = mock.url();
    assert!(url.starts_with("https://127.0.0.1:"), "{url}");

    // a client that connects and never says anything
    let silent = tokio::net::TcpStream::connect(mock.addr()).await.unwrap();

    let initialize_with = |client: reqwest::Client| {
        client
            .post(&url)
            .header("Accept", "application/json, text/event-stream")
            .json(&initialize())
            .timeout(Duration::from_secs(5))
            .send()
    };
    let r = initialize_with(trusting(&certs.ca)).await.unwrap();
    assert_eq!(r.status(), 200, "served over TLS despite the silent client");
    assert!(r.headers().contains_key("mcp-session-id"));

    let refused = initialize_with(trusting(&other.ca)).await.unwrap_err();
    let mut cause: &dyn std::error::Error = &refused;
    let mut words = cause.to_string();
    while let Some(next) = cause.source() {
        words += &format!(": {next}");
        cause = next;
    }
    assert!(words.contains("UnknownIssuer"), "{words}");

    let plain = reqwest::get(url.replacen("https://", "http://", 1)).await;
    assert!(
        plain.is_err() || !plain.unwrap().status().is_success(),
        "plain HTTP is not served"
    );

    // an HTTP fault over TLS: refused by the middleware as over plain HTTP
    mock.set_faults(&["init-error"]);
    let r = initialize_with(trusting(&certs.ca)).await.unwrap();
    assert!(r.status().is_server_error(), "{}", r.status());
    drop(silent);
    mock.shutdown().await;
}
