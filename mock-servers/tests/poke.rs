//! `poke` delivers `notifications/tools/list_changed` to the calling client,
//! for both lifecycles (2025-11-25 `initialize`, 2026-07-28 `server/discover`)
//! and both server modes (sessionful, stateless).

mod common;

use std::{sync::Arc, time::Duration};

use common::{call, text};
use mock_mcp::{MockConfig, MockServer};
use rmcp::{
    ClientHandler, RoleClient,
    model::{ClientConfig, ProtocolVersion},
    service::{ClientLifecycleMode, NotificationContext, serve_client_with_lifecycle},
    transport::StreamableHttpClientTransport,
};
use serde_json::json;
use tokio::sync::Notify;

struct ListChangedClient {
    notified: Arc<Notify>,
}

impl ClientHandler for ListChangedClient {
    fn get_info(&self) -> ClientConfig {
        ClientConfig::default().with_protocol_version(ProtocolVersion::LATEST_WITH_INITIALIZE)
    }

    async fn on_tool_list_changed(&self, _context: NotificationContext<RoleClient>) {
        self.notified.notify_one();
    }
}

async fn poke_delivers_list_changed(lifecycle: ClientLifecycleMode, stateless: bool) {
    let server = MockServer::start(MockConfig {
        stateless,
        ..MockConfig::default()
    })
    .await
    .unwrap();
    let notified = Arc::new(Notify::new());
    let handler = ListChangedClient {
        notified: notified.clone(),
    };
    let transport = StreamableHttpClientTransport::from_uri(server.url());
    let client = serve_client_with_lifecycle(handler, transport, lifecycle.clone())
        .await
        .unwrap();
    let negotiated = client.peer_info().map(|i| i.protocol_version.clone());
    eprintln!("{lifecycle:?} stateless={stateless}: negotiated {negotiated:?}");

    let poked = call(&client, "poke", json!({})).await;
    assert_eq!(text(&poked), "poked");
    tokio::time::timeout(Duration::from_secs(5), notified.notified())
        .await
        .expect("notifications/tools/list_changed not received");
    assert_eq!(server.calls(), 1);

    client.cancel().await.unwrap();
    server.shutdown().await;
}

fn discover() -> ClientLifecycleMode {
    ClientLifecycleMode::Discover {
        preferred_versions: vec![ProtocolVersion::V_2026_07_28],
    }
}

#[tokio::test]
async fn poke_session_initialize() {
    poke_delivers_list_changed(ClientLifecycleMode::Initialize, false).await;
}

#[tokio::test]
async fn poke_session_server_discover() {
    poke_delivers_list_changed(discover(), false).await;
}

#[tokio::test]
async fn poke_stateless_initialize() {
    poke_delivers_list_changed(ClientLifecycleMode::Initialize, true).await;
}

#[tokio::test]
async fn poke_stateless_discover() {
    poke_delivers_list_changed(discover(), true).await;
}
