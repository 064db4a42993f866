//! HTTP mock: tools list, echo/add results, call counter, shutdown releases the port.

mod common;

use common::{call, text};
use mock_mcp::{MockConfig, MockServer};
use rmcp::{ServiceExt, transport::StreamableHttpClientTransport};
use serde_json::json;

#[tokio::test]
async fn http_tools_roundtrip_and_shutdown() {
    let server = MockServer::start(MockConfig::default()).await.unwrap();
    let addr = server.addr();
    assert!(addr.ip().is_loopback());
    assert_ne!(addr.port(), 0);
    assert_eq!(server.url(), format!("http://{addr}/mcp"));

    let client = ().serve(StreamableHttpClientTransport::from_uri(server.url())).await.unwrap();
    let info = client.peer_info().expect("server info");
    let server_info = info.server_info.as_ref().expect("serverInfo");
    assert_eq!(server_info.name, "mock-mcp");
    let capabilities = serde_json::to_value(&info.capabilities).unwrap();
    for (pointer, expected) in [
        ("/tools/listChanged", json!(true)),
        ("/resources/subscribe", json!(true)),
        ("/resources/listChanged", json!(true)),
        ("/prompts/listChanged", json!(true)),
        ("/completions", json!({})),
        ("/logging", json!({})),
    ] {
        assert_eq!(
            capabilities.pointer(pointer),
            Some(&expected),
            "{pointer} in {capabilities}"
        );
    }

    let mut names: Vec<String> = client
        .list_all_tools()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.name.to_string())
        .collect();
    names.sort();
    assert_eq!(names, mock_mcp::TOOL_NAMES);
    for original in ["add", "echo", "poke", "sleep"] {
        assert!(names.iter().any(|n| n == original), "{original} missing");
    }
    assert_eq!(server.calls(), 0);

    let echoed = call(&client, "echo", json!({ "text": "hello mock" })).await;
    assert_eq!(text(&echoed), "hello mock");
    let sum = call(&client, "add", json!({ "a": 2, "b": 3 })).await;
    assert_eq!(text(&sum), "5");
    let sum = call(&client, "add", json!({ "a": 0.5, "b": 2 })).await;
    assert_eq!(text(&sum), "2.5");
    assert_eq!(server.calls(), 3);

    client.cancel().await.unwrap();
    server.shutdown().await;

    // The listener is released: binding the same address again succeeds.
    let rebound = std::net::TcpListener::bind(addr);
    assert!(
        rebound.is_ok(),
        "port still bound after shutdown: {rebound:?}"
    );
}

#[tokio::test]
async fn stateless_mode_serves_tool_calls() {
    let server = MockServer::start(MockConfig {
        stateless: true,
        ..MockConfig::default()
    })
    .await
    .unwrap();
    let client = ().serve(StreamableHttpClientTransport::from_uri(server.url())).await.unwrap();
    let echoed = call(&client, "echo", json!({ "text": "stateless" })).await;
    assert_eq!(text(&echoed), "stateless");
    let slept = call(&client, "sleep", json!({ "ms": 10 })).await;
    assert_eq!(text(&slept), "slept 10ms");
    assert_eq!(server.calls(), 2);
    client.cancel().await.unwrap();
    server.shutdown().await;
}

/// Shutdown does not wait for live sessions or running calls: with a client
/// still connected and a long `sleep` in progress it returns promptly and
/// releases the port (the session and its running call are cancelled).
#[tokio::test]
async fn shutdown_with_live_session_and_running_call() {
    let server = MockServer::start(MockConfig::default()).await.unwrap();
    let addr = server.addr();
    let client = ().serve(StreamableHttpClientTransport::from_uri(server.url())).await.unwrap();
    let sleeper = tokio::spawn(async move {
        let args = json!({ "ms": 60_000 }).as_object().cloned().unwrap();
        let _ = client
            .call_tool(rmcp::model::CallToolRequestParams::new("sleep").with_arguments(args))
            .await;
    });
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while server.in_flight() == 0 {
        assert!(std::time::Instant::now() < deadline, "sleep never started");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }

    let started = std::time::Instant::now();
    server.shutdown().await;
    assert!(
        started.elapsed() < std::time::Duration::from_secs(2),
        "shutdown took {:?}",
        started.elapsed()
    );
    assert!(std::net::TcpListener::bind(addr).is_ok());

    // Note: the rmcp client does not fail the pending call right away; its
    // SSE stream keeps retrying with backoff, so just drop it.
    sleeper.abort();
}
