//! A cancelled `sleep` stops executing on the server promptly.

mod common;

use std::time::{Duration, Instant};

use common::{call, text};
use mock_mcp::{MockConfig, MockServer};
use rmcp::{
    ServiceExt,
    model::{CallToolRequestParams, ClientRequest, Request},
    service::PeerRequestOptions,
    transport::StreamableHttpClientTransport,
};
use serde_json::json;

async fn wait_until(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn cancelled_sleep_stops() {
    let server = MockServer::start(MockConfig::default()).await.unwrap();
    let client = ().serve(StreamableHttpClientTransport::from_uri(server.url())).await.unwrap();

    let args = json!({ "ms": 60_000 }).as_object().cloned().unwrap();
    let handle = client
        .send_cancellable_request(
            ClientRequest::CallToolRequest(Request::new(
                CallToolRequestParams::new("sleep").with_arguments(args),
            )),
            PeerRequestOptions::no_options(),
        )
        .await
        .unwrap();
    wait_until("sleep to start", Duration::from_secs(5), || {
        server.in_flight() == 1
    })
    .await;
    handle.cancel(Some("test".into())).await.unwrap();
    wait_until("sleep to stop", Duration::from_secs(5), || {
        server.in_flight() == 0
    })
    .await;

    // The session is still usable afterwards.
    let echoed = call(&client, "echo", json!({ "text": "after" })).await;
    assert_eq!(text(&echoed), "after");
    assert_eq!(server.calls(), 2);

    client.cancel().await.unwrap();
    server.shutdown().await;
}
