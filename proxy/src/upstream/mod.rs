//! Upstream MCP servers: one client type over both transports (`streamable_http`, `stdio`);
//! every operation hands back the same rmcp types, so no handler knows the transport.
//!
//! Ownership: an [`UpstreamClient`] owns its rmcp service (and through it the socket or the
//! child process). [`UpstreamClient::close`] is the release point: idempotent, bounded in time,
//! and the only place the connection gauge goes down. `Drop` is the fallback and logs.

pub mod cancel;
pub mod pool;
pub mod stdio;
pub mod streamable_http;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use prometheus_client::metrics::gauge::Gauge;
use rmcp::model::{
    CallToolRequest, CallToolRequestParams, CallToolResponse, ClientCapabilities, ClientConfig,
    ClientRequest, ErrorData, Implementation, ServerResult, Tool,
};
use rmcp::service::{NotificationContext, Peer, PeerRequestOptions, RunningService, ServiceError};
use rmcp::{ClientHandler, RoleClient, ServiceExt};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::metrics::Metrics;
use crate::model::{UpstreamConfig, UpstreamTransport};

/// How long closing one upstream may take (stdio: stdin close, SIGTERM and SIGKILL waits).
pub const CLOSE_TIMEOUT: Duration = Duration::from_secs(10);

pub use crate::cache::ToolsCache;

/// An upstream failure, naming the upstream and the cause.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("upstream {upstream:?}: connect failed: {cause}")]
    Connect { upstream: String, cause: String },
    #[error("upstream {upstream:?}: no answer to initialize within {after:?}")]
    ConnectTimeout { upstream: String, after: Duration },
    #[error("upstream {upstream:?}: {cause}")]
    Transport { upstream: String, cause: String },
    #[error("upstream {upstream:?}: no answer within {after:?}")]
    CallTimeout { upstream: String, after: Duration },
    #[error("upstream {upstream:?}: {}", error.message)]
    Rpc { upstream: String, error: ErrorData },
}

impl UpstreamError {
    /// Short label for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Connect { .. } => "connect",
            Self::ConnectTimeout { .. } => "connect_timeout",
            Self::Transport { .. } => "transport",
            Self::CallTimeout { .. } => "timeout",
            Self::Rpc { .. } => "rpc",
        }
    }

    fn from_service(upstream: &str, e: ServiceError) -> Self {
        match e {
            ServiceError::McpError(error) => Self::Rpc {
                upstream: upstream.to_string(),
                error,
            },
            other => Self::Transport {
                upstream: upstream.to_string(),
                cause: other.to_string(),
            },
        }
    }
}

/// What connecting needs besides the upstream's own config.
#[derive(Clone)]
pub struct ConnectContext {
    pub http: reqwest::Client,
    pub connect_timeout: Duration,
    pub metrics: Arc<Metrics>,
    /// Where deferred work of a client (cancel notifications) runs.
    pub tracker: TaskTracker,
}

/// The proxy's client-side handler for one upstream connection: identifies the proxy and
/// turns `tools/list_changed` into invalidation of the instance's merged tool list.
pub struct UpstreamHandler {
    instance_id: String,
    tools_cache: ToolsCache,
}

impl ClientHandler for UpstreamHandler {
    fn get_info(&self) -> ClientConfig {
        ClientConfig::new(
            ClientCapabilities::default(),
            Implementation::new("mcp-proxy", env!("CARGO_PKG_VERSION")),
        )
    }

    async fn on_tool_list_changed(&self, _context: NotificationContext<RoleClient>) {
        tracing::debug!(instance = %self.instance_id, "upstream tools changed; dropping cached list");
        self.tools_cache.invalidate(&self.instance_id).await;
    }
}

/// One live MCP client session to one upstream.
pub struct UpstreamClient {
    name: String,
    config: UpstreamConfig,
    peer: Peer<RoleClient>,
    service: tokio::sync::Mutex<Option<RunningService<RoleClient, UpstreamHandler>>>,
    closed: AtomicBool,
    active: Gauge,
    cancels: Arc<cancel::CancelQueue>,
    tracker: TaskTracker,
    /// Cuts any HTTP exchange still running once the client is closed or dropped.
    transport_ct: CancellationToken,
}

impl UpstreamClient {
    /// Connects and initializes within the connect timeout. On any failure the transport
    /// (socket or child) has been dropped, which closes it.
    pub async fn connect(
        config: &UpstreamConfig,
        instance_id: &str,
        tools_cache: ToolsCache,
        ctx: &ConnectContext,
    ) -> Result<UpstreamClient, UpstreamError> {
        let name = config.name.clone();
        let handler = UpstreamHandler {
            instance_id: instance_id.to_string(),
            tools_cache,
        };
        let connecting = ctx.metrics.upstream_state(&name, "connecting");
        connecting.inc();
        // Ends every HTTP exchange of this connection: cancelled when the connect fails or
        // times out (the guard drops), and when the client is closed or dropped.
        let transport_ct = CancellationToken::new();
        let connect_guard = transport_ct.clone().drop_guard();
        let result = tokio::time::timeout(ctx.connect_timeout, async {
            match &config.transport {
                UpstreamTransport::StreamableHttp { url } => handler
                    .serve(streamable_http::transport(
                        &ctx.http,
                        url,
                        transport_ct.clone(),
                    ))
                    .await
                    .map_err(|e| e.to_string()),
                UpstreamTransport::Stdio { command, args, env } => {
                    let child = stdio::spawn(command, args, env)
                        .map_err(|e| format!("cannot start {command:?}: {e}"))?;
                    handler.serve(child).await.map_err(|e| e.to_string())
                }
            }
        })
        .await;
        connecting.dec();
        let service = match result {
            Ok(Ok(service)) => service,
            Ok(Err(cause)) => {
                ctx.metrics.upstream_connect(&name, "error");
                return Err(UpstreamError::Connect {
                    upstream: name,
                    cause,
                });
            }
            Err(_) => {
                ctx.metrics.upstream_connect(&name, "timeout");
                return Err(UpstreamError::ConnectTimeout {
                    upstream: name,
                    after: ctx.connect_timeout,
                });
            }
        };
        connect_guard.disarm();
        ctx.metrics.upstream_connect(&name, "ok");
        let active = ctx.metrics.upstream_state(&name, "active");
        active.inc();
        Ok(UpstreamClient {
            name,
            config: config.clone(),
            cancels: cancel::CancelQueue::new(service.peer().clone()),
            transport_ct,
            tracker: ctx.tracker.clone(),
            peer: service.peer().clone(),
            service: tokio::sync::Mutex::new(Some(service)),
            closed: AtomicBool::new(false),
            active,
        })
    }

    pub fn config(&self) -> &UpstreamConfig {
        &self.config
    }

    /// Closed by us, or the transport went away (upstream died, connection dropped).
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire) || self.peer.is_transport_closed()
    }

    /// Every tool of the upstream (all pages), within `timeout`.
    pub async fn list_tools(&self, timeout: Duration) -> Result<Vec<Tool>, UpstreamError> {
        match tokio::time::timeout(timeout, self.peer.list_all_tools()).await {
            Ok(r) => r.map_err(|e| UpstreamError::from_service(&self.name, e)),
            Err(_) => Err(UpstreamError::CallTimeout {
                upstream: self.name.clone(),
                after: timeout,
            }),
        }
    }

    /// Calls one tool within `timeout`; the upstream's answer (complete, input-required or
    /// task) passes through unchanged. If the returned future is dropped (downstream
    /// cancellation) or the timeout passes, the upstream gets `notifications/cancelled`.
    pub async fn call_tool(
        &self,
        params: CallToolRequestParams,
        timeout: Duration,
    ) -> Result<CallToolResponse, UpstreamError> {
        let request = ClientRequest::CallToolRequest(CallToolRequest::new(params));
        let handle = self
            .peer
            .send_request_with_option(request, PeerRequestOptions::no_options())
            .await
            .map_err(|e| UpstreamError::from_service(&self.name, e))?;
        let guard = cancel::AbandonGuard::new(&self.cancels, &self.tracker, handle.id.clone());
        let result = tokio::time::timeout(timeout, handle.await_response()).await;
        let Ok(result) = result else {
            drop(guard); // armed: the upstream is told to stop
            return Err(UpstreamError::CallTimeout {
                upstream: self.name.clone(),
                after: timeout,
            });
        };
        guard.disarm();
        match result.map_err(|e| UpstreamError::from_service(&self.name, e))? {
            ServerResult::CallToolResult(r) => Ok(CallToolResponse::Complete(r)),
            ServerResult::InputRequiredResult(r) => Ok(CallToolResponse::InputRequired(r)),
            ServerResult::CreateTaskResult(r) => Ok(CallToolResponse::Task(r)),
            _ => Err(UpstreamError::Transport {
                upstream: self.name.clone(),
                cause: "unexpected response type to tools/call".into(),
            }),
        }
    }

    /// Closes the session and its transport (HTTP: DELETE and drop the socket; stdio: the
    /// graceful child shutdown). Idempotent; bounded by [`CLOSE_TIMEOUT`].
    pub async fn close(&self) {
        if self.closed.swap(true, Ordering::AcqRel) {
            return;
        }
        // Cancels of abandoned calls go out before the transport closes.
        self.cancels.flush().await;
        let service = self.service.lock().await.take();
        if let Some(mut service) = service {
            match service.close_with_timeout(CLOSE_TIMEOUT).await {
                Ok(Some(_)) => {}
                Ok(None) => tracing::warn!(upstream = %self.name, "upstream close timed out"),
                Err(e) => {
                    tracing::warn!(upstream = %self.name, error = %e, "upstream close task failed")
                }
            }
        }
        self.transport_ct.cancel();
        self.active.dec();
    }
}

impl Drop for UpstreamClient {
    fn drop(&mut self) {
        self.transport_ct.cancel();
        if !self.closed.swap(true, Ordering::AcqRel) {
            // Fallback only: rmcp's drop guard cancels the service, whose task closes the
            // transport (and kills and reaps a child).
            tracing::warn!(upstream = %self.name, "upstream client dropped without close()");
            self.active.dec();
        }
    }
}
