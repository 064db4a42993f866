//! Streamable HTTP transport: an axum server with the MCP endpoint at `/mcp`.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use axum::{Router, serve::ListenerExt};
use rmcp::transport::streamable_http_server::{
    StreamableHttpServerConfig, StreamableHttpService,
    session::{local::LocalSessionManager, never::NeverSessionManager},
};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::MockTools;

/// How long [`MockServer::shutdown`] waits for the graceful drain before
/// aborting the server task.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Configuration of an HTTP [`MockServer`].
#[derive(Debug, Clone)]
pub struct MockConfig {
    /// Address to bind; port 0 picks a free port. Default `127.0.0.1:0`.
    pub listen: SocketAddr,
    /// Serve without sessions (`NeverSessionManager`, JSON responses).
    /// Default `false`: sessionful (`LocalSessionManager`, SSE responses).
    pub stateless: bool,
}

impl Default for MockConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            stateless: false,
        }
    }
}

/// A running Streamable HTTP mock MCP server.
///
/// Dropping it cancels the server without waiting; use
/// [`MockServer::shutdown`] to wait until the listener is released.
#[derive(Debug)]
pub struct MockServer {
    addr: SocketAddr,
    tools: MockTools,
    token: CancellationToken,
    task: Option<JoinHandle<()>>,
}

impl MockServer {
    /// Binds `config.listen` and starts serving; returns once the socket is
    /// listening.
    pub async fn start(config: MockConfig) -> std::io::Result<MockServer> {
        let listener = tokio::net::TcpListener::bind(config.listen).await?;
        let addr = listener.local_addr()?;
        let tools = MockTools::default();
        let token = CancellationToken::new();
        let router = build_router(&config, tools.clone(), token.child_token());

        let listener = listener.tap_io(|tcp| {
            if let Err(e) = tcp.set_nodelay(true) {
                tracing::debug!("set_nodelay failed: {e}");
            }
        });
        let shutdown = token.clone().cancelled_owned();
        let task = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, router)
                .with_graceful_shutdown(shutdown)
                .await
            {
                tracing::warn!("mock-mcp HTTP server error: {e}");
            }
        });
        tracing::debug!(%addr, stateless = config.stateless, "mock-mcp listening");
        Ok(MockServer {
            addr,
            tools,
            token,
            task: Some(task),
        })
    }

    /// The bound address (with the real port when `listen` used port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The MCP endpoint URL, `http://{addr}/mcp`.
    pub fn url(&self) -> String {
        format!("http://{}/mcp", self.addr)
    }

    /// Number of `tools/call` requests received so far (counted on arrival,
    /// so a call that is later cancelled still counts).
    pub fn calls(&self) -> u64 {
        self.tools.calls()
    }

    /// Number of `tools/call` requests currently executing; drops back when a
    /// call completes or is cancelled (e.g. an aborted `sleep`).
    pub fn in_flight(&self) -> u64 {
        self.tools.in_flight()
    }

    /// Stops accepting, closes all sessions and waits for the server task
    /// (at most a few seconds, then it is aborted). The listening socket is
    /// released when this returns.
    pub async fn shutdown(mut self) {
        self.token.cancel();
        let Some(mut task) = self.task.take() else {
            return;
        };
        if tokio::time::timeout(SHUTDOWN_GRACE, &mut task)
            .await
            .is_err()
        {
            tracing::warn!("mock-mcp graceful shutdown timed out; aborting");
            task.abort();
            let _ = task.await;
        }
    }
}

impl Drop for MockServer {
    fn drop(&mut self) {
        self.token.cancel();
    }
}

fn build_router(config: &MockConfig, tools: MockTools, token: CancellationToken) -> Router {
    let http_config = StreamableHttpServerConfig::default().with_cancellation_token(token);
    let factory = move || Ok(tools.clone());
    if config.stateless {
        let http_config = http_config
            .with_legacy_session_mode(false)
            .with_json_response(true);
        let service = StreamableHttpService::new(
            factory,
            Arc::new(NeverSessionManager::default()),
            http_config,
        );
        Router::new().nest_service("/mcp", service)
    } else {
        let service = StreamableHttpService::new(
            factory,
            Arc::new(LocalSessionManager::default()),
            http_config,
        );
        Router::new().nest_service("/mcp", service)
    }
}
