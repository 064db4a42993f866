//! Contract: `list-changed-every:D` sends `notifications/tools/list_changed` to every session
//! on that period (received by an rmcp `ClientHandler`), stops when switched off, and its
//! per-session ticker ends with the session.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use mock_mcp::{MockConfig, MockServer};
use rmcp::model::ClientConfig;
use rmcp::service::NotificationContext;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::{ClientHandler, RoleClient, ServiceExt};

#[derive(Clone, Default)]
struct Counting(Arc<AtomicU64>);

impl ClientHandler for Counting {
    fn get_info(&self) -> ClientConfig {
        ClientConfig::default()
    }

    async fn on_tool_list_changed(&self, _context: NotificationContext<RoleClient>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[tokio::test]
async fn list_changed_every_reaches_the_client_handler() {
    let server = MockServer::start(MockConfig::with_faults(&["list-changed-every:100ms"]))
        .await
        .unwrap();
    let counter = Counting::default();
    let client = counter
        .clone()
        .serve(StreamableHttpClientTransport::from_uri(server.url()))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(800)).await;
    let received = counter.0.load(Ordering::SeqCst);
    assert!(
        received >= 3,
        "received {received} in 800 ms at a 100 ms period"
    );

    server.set_faults(&[]);
    tokio::time::sleep(Duration::from_millis(150)).await;
    let at_switch = counter.0.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(
        counter.0.load(Ordering::SeqCst),
        at_switch,
        "stops when switched off"
    );
    assert!(server.counters().await.faults_fired["list-changed-every"] >= 3);

    client.cancel().await.unwrap();
    let mut ended = false;
    for _ in 0..100 {
        if server.background_tasks() == 0 {
            ended = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    assert!(ended, "the session's ticker ends with the session");
    server.shutdown().await;
}
