//! Upstream MCP servers: one client type over both transports (`streamable_http`, `stdio`);
//! every operation hands back the same rmcp types, so no handler knows the transport.
//!
//! Ownership: an [`UpstreamClient`] owns its rmcp service (and through it the socket or the
//! child process) and its slot under the connection limit. [`UpstreamClient::close`] is the
//! release point: idempotent (its [`ConnState`] only moves forward), bounded in time, and the
//! only place the connection gauges and the slot are released. `Drop` is the fallback and logs.
//! Who owns each client (a shared slot, a session, a request) is [`manager`]'s business.

// Logging is deprecated by SEP-2577 but is part of 2025-11-25, which this proxy carries.
#![allow(deprecated)]

pub mod breaker;
pub mod cancel;
pub mod conn_state;
mod error;
pub mod events;
pub mod handler;
pub mod http_clients;
pub mod legacy_sse;
pub mod manager;
pub mod relay;
mod reply_limit;
pub mod stdio;
pub mod streamable_http;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use rmcp::model::{
    CallToolRequest, CallToolRequestParams, CallToolResponse, ClientRequest, CompleteRequest,
    CompleteRequestParams, CompleteResult, GetPromptRequest, GetPromptRequestParams,
    GetPromptResponse, Prompt, ReadResourceRequest, ReadResourceRequestParams,
    ReadResourceResponse, RequestMetaObject, Resource, ResourceTemplate, ServerCapabilities,
    ServerResult, SetLevelRequest, SetLevelRequestParams, SubscribeRequest, SubscribeRequestParams,
    Tool, UnsubscribeRequest, UnsubscribeRequestParams,
};
use rmcp::service::{Peer, PeerRequestOptions, RunningService, ServiceError};
use rmcp::{ClientServiceExt, RoleClient};
use tokio::sync::OwnedSemaphorePermit;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::domain::capabilities::UpstreamCapabilities;
use crate::domain::model::{UpstreamConfig, UpstreamTransport};
use crate::ops::metrics::Metrics;
use conn_state::{ConnState, StateCell};
pub use error::UpstreamError;
pub use handler::{SessionLink, UpstreamHandler};
use relay::{Downstream, Inflight};

/// Which protocol era a connection to an upstream speaks. A caller of one era is served over a
/// connection of the same era, so each era's own mechanisms pass end to end: sessions,
/// server→client requests and notifications for 2025-11-25; input-required results (MRTR),
/// retried statelessly, for 2026-07-28.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Era {
    /// `initialize` (2025-11-25 and older).
    #[default]
    Sessions,
    /// `server/discover` (2026-07-28); rmcp falls back to `initialize` for an older upstream.
    Stateless,
}

impl Era {
    fn lifecycle(self) -> rmcp::service::ClientLifecycleMode {
        match self {
            Era::Sessions => rmcp::service::ClientLifecycleMode::Initialize,
            Era::Stateless => rmcp::service::ClientLifecycleMode::Discover {
                preferred_versions: vec![rmcp::model::ProtocolVersion::V_2026_07_28],
            },
        }
    }
}

/// How long a new HTTP connection waits for the upstream's GET event stream to open.
const STREAM_WAIT: Duration = Duration::from_secs(1);

/// How long closing one upstream may take (stdio: stdin close, SIGTERM and SIGKILL waits).
pub const CLOSE_TIMEOUT: Duration = Duration::from_secs(10);

/// What connecting needs besides the upstream's own config.
#[derive(Clone)]
pub struct ConnectContext {
    pub http: Arc<http_clients::HttpClients>,
    pub connect_timeout: Duration,
    pub metrics: Arc<Metrics>,
    /// Where deferred work of a client (cancel notifications) runs.
    pub tracker: TaskTracker,
    /// Where an upstream's `list_changed`, `resources/updated` and log messages go.
    pub sessions: Arc<dyn events::SessionEvents>,
    /// Where each upstream's capabilities are recorded at connect.
    pub capabilities: Arc<UpstreamCapabilities>,
    /// Bound on one server→client request relayed to a downstream client.
    pub server_request_timeout: Duration,
    /// The largest message a stdio upstream may write (`--stdio-max-reply-bytes`).
    pub stdio_max_reply: usize,
}

/// One live MCP client session to one upstream.
pub struct UpstreamClient {
    name: String,
    config: UpstreamConfig,
    peer: Peer<RoleClient>,
    service: tokio::sync::Mutex<Option<RunningService<RoleClient, UpstreamHandler>>>,
    state: Arc<StateCell>,
    /// stdio: the child's process group, ended after the child is closed.
    process_group: Option<i32>,
    /// This connection's place under the connection limit; given back by `close`.
    permit: std::sync::Mutex<Option<OwnedSemaphorePermit>>,
    /// Milliseconds since [`epoch`] of the last lease (idle reaping).
    last_used: AtomicU64,
    cancels: Arc<cancel::CancelQueue>,
    tracker: TaskTracker,
    /// Cuts any HTTP exchange still running once the client is closed or dropped.
    transport_ct: CancellationToken,
    /// Requests forwarded for downstream callers, still running (progress and server
    /// requests are routed back through it).
    inflight: Arc<Inflight>,
    capabilities: ServerCapabilities,
}

impl UpstreamClient {
    /// Connects and initializes within the connect timeout. On any failure the transport
    /// (socket or child) has been dropped, which closes it.
    /// `session` is the downstream session that owns the connection (`per-session` mode).
    pub async fn connect(
        config: &UpstreamConfig,
        instance_id: &str,
        ctx: &ConnectContext,
        permit: OwnedSemaphorePermit,
        session: Option<SessionLink>,
        era: Era,
    ) -> Result<UpstreamClient, UpstreamError> {
        let name = config.name.clone();
        let state = Arc::new(StateCell::new(&ctx.metrics, &name));
        let inflight = Arc::new(Inflight::default());
        let handler = UpstreamHandler {
            upstream: name.clone(),
            instance_id: instance_id.to_string(),
            sessions: ctx.sessions.clone(),
            state: state.clone(),
            inflight: inflight.clone(),
            session,
            metrics: ctx.metrics.clone(),
            tracker: ctx.tracker.clone(),
            request_timeout: ctx.server_request_timeout,
        };
        // Ends every HTTP exchange of this connection: cancelled when the connect fails or
        // times out (the guard drops), and when the client is closed or dropped.
        let transport_ct = CancellationToken::new();
        let connect_guard = transport_ct.clone().drop_guard();
        let mut attempt = Attempt::default();
        let result = tokio::time::timeout(
            ctx.connect_timeout,
            open(config, handler, ctx, &transport_ct, era, &mut attempt),
        )
        .await;
        let service = match result {
            Ok(Ok(service)) => service,
            Ok(Err(cause)) => {
                #[cfg(feature = "planted-leaks")]
                if crate::ops::planted::active(crate::ops::planted::Leak::ConnectError) {
                    // the failed client is never closed: its state and transport live on
                    let keep = (state.clone(), transport_ct.clone());
                    tokio::spawn(async move {
                        let _keep = keep;
                        std::future::pending::<()>().await
                    });
                }
                if let Some(group) = attempt.process_group {
                    // The failed transport reaped the leader; members it started may remain.
                    ctx.tracker.spawn(stdio::end_group(group));
                }
                state.advance(ConnState::Closed);
                if let Some(status) = attempt.credential.as_ref().and_then(|c| c.refused()) {
                    ctx.metrics.upstream_connect(&name, "credential_refused");
                    return Err(UpstreamError::CredentialRefused {
                        upstream: name,
                        status,
                    });
                }
                ctx.metrics.upstream_connect(&name, "error");
                return Err(UpstreamError::Connect {
                    upstream: name,
                    cause,
                });
            }
            Err(_) => {
                if let Some(group) = attempt.process_group {
                    ctx.tracker.spawn(stdio::end_group(group));
                }
                state.advance(ConnState::Closed);
                ctx.metrics.upstream_connect(&name, "timeout");
                return Err(UpstreamError::ConnectTimeout {
                    upstream: name,
                    after: ctx.connect_timeout,
                });
            }
        };
        connect_guard.disarm();
        ctx.metrics.upstream_connect(&name, "ok");
        let capabilities = service
            .peer()
            .peer_info()
            .map(|info| info.capabilities.clone())
            .unwrap_or_default();
        ctx.capabilities.record(&name, capabilities.clone());
        state.advance(ConnState::Active);
        Ok(UpstreamClient {
            name,
            config: config.clone(),
            cancels: cancel::CancelQueue::new(service.peer().clone()),
            transport_ct,
            tracker: ctx.tracker.clone(),
            peer: service.peer().clone(),
            service: tokio::sync::Mutex::new(Some(service)),
            state,
            process_group: attempt.process_group,
            permit: std::sync::Mutex::new(Some(permit)),
            last_used: AtomicU64::new(now_ms()),
            inflight,
            capabilities,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn state(&self) -> ConnState {
        self.state.get()
    }

    /// Marks the client as used now (idle reaping counts from the last use).
    pub fn touch(&self) {
        self.last_used.store(now_ms(), Ordering::Relaxed);
    }

    /// How long since the client was last leased.
    pub fn idle_for(&self) -> Duration {
        Duration::from_millis(now_ms().saturating_sub(self.last_used.load(Ordering::Relaxed)))
    }

    /// The upstream dropped the connection while it was active (not closed by us).
    pub fn dropped_by_upstream(&self) -> bool {
        self.state.get() == ConnState::Active && self.peer.is_transport_closed()
    }

    pub fn config(&self) -> &UpstreamConfig {
        &self.config
    }

    /// Closed by us, or the transport went away (upstream died, connection dropped).
    pub fn is_closed(&self) -> bool {
        self.state.get() > ConnState::Active || self.peer.is_transport_closed()
    }

    /// What the upstream said it offers at `initialize`.
    pub fn capabilities(&self) -> &ServerCapabilities {
        &self.capabilities
    }

    fn timed_out(&self, after: Duration) -> UpstreamError {
        UpstreamError::CallTimeout {
            upstream: self.name.clone(),
            after,
        }
    }

    fn unexpected(&self, method: &str) -> UpstreamError {
        UpstreamError::Transport {
            upstream: self.name.clone(),
            cause: format!("unexpected response type to {method}"),
        }
    }

    /// Runs one paging helper of rmcp's within `timeout`.
    async fn all_pages<T>(
        &self,
        timeout: Duration,
        fut: impl Future<Output = Result<T, ServiceError>>,
    ) -> Result<T, UpstreamError> {
        match tokio::time::timeout(timeout, fut).await {
            Ok(r) => r.map_err(|e| UpstreamError::from_service(&self.name, e)),
            Err(_) => Err(self.timed_out(timeout)),
        }
    }

    /// Every tool of the upstream (all pages), within `timeout`.
    pub async fn list_tools(&self, timeout: Duration) -> Result<Vec<Tool>, UpstreamError> {
        self.all_pages(timeout, self.peer.list_all_tools()).await
    }

    /// Every resource (all pages), or none when the upstream offers no resources.
    pub async fn list_resources(&self, timeout: Duration) -> Result<Vec<Resource>, UpstreamError> {
        if self.capabilities.resources.is_none() {
            return Ok(Vec::new());
        }
        self.all_pages(timeout, self.peer.list_all_resources())
            .await
    }

    /// Every resource template (all pages), or none when the upstream offers no resources.
    pub async fn list_resource_templates(
        &self,
        timeout: Duration,
    ) -> Result<Vec<ResourceTemplate>, UpstreamError> {
        if self.capabilities.resources.is_none() {
            return Ok(Vec::new());
        }
        self.all_pages(timeout, self.peer.list_all_resource_templates())
            .await
    }

    /// Every prompt (all pages), or none when the upstream offers no prompts.
    pub async fn list_prompts(&self, timeout: Duration) -> Result<Vec<Prompt>, UpstreamError> {
        if self.capabilities.prompts.is_none() {
            return Ok(Vec::new());
        }
        self.all_pages(timeout, self.peer.list_all_prompts()).await
    }

    /// Sends one request for a downstream caller and waits up to `timeout` for the answer.
    /// `meta` is the caller's own `_meta` (rmcp adds this hop's progress token). While it runs,
    /// the request is in the connection's in-flight table, so the upstream's progress and
    /// server requests reach `downstream`. If the returned future is dropped (downstream
    /// cancellation, the client went away) or the timeout passes, the upstream gets
    /// `notifications/cancelled`, and its late answer is dropped by rmcp.
    pub async fn request(
        &self,
        request: ClientRequest,
        meta: Option<RequestMetaObject>,
        timeout: Duration,
        downstream: Option<Downstream>,
    ) -> Result<ServerResult, UpstreamError> {
        let mut options = PeerRequestOptions::no_options();
        options.meta = meta;
        let handle = self
            .peer
            .send_request_with_option(request, options)
            .await
            .map_err(|e| UpstreamError::from_service(&self.name, e))?;
        let _inflight = downstream.map(|d| {
            self.inflight
                .register(handle.id.clone(), handle.progress_token.clone(), d)
        });
        let guard = cancel::AbandonGuard::new(&self.cancels, &self.tracker, handle.id.clone());
        let result = tokio::time::timeout(timeout, handle.await_response()).await;
        let Ok(result) = result else {
            drop(guard); // armed: the upstream is told to stop
            return Err(self.timed_out(timeout));
        };
        guard.disarm();
        result.map_err(|e| UpstreamError::from_service(&self.name, e))
    }

    /// Calls one tool; the upstream's answer (complete, input-required or task) passes
    /// through unchanged.
    pub async fn call_tool(
        &self,
        params: CallToolRequestParams,
        meta: Option<RequestMetaObject>,
        timeout: Duration,
        downstream: Option<Downstream>,
    ) -> Result<CallToolResponse, UpstreamError> {
        let request = ClientRequest::CallToolRequest(CallToolRequest::new(params));
        match self.request(request, meta, timeout, downstream).await? {
            ServerResult::CallToolResult(r) => Ok(CallToolResponse::Complete(r)),
            ServerResult::InputRequiredResult(r) => Ok(CallToolResponse::InputRequired(r)),
            ServerResult::CreateTaskResult(r) => Ok(CallToolResponse::Task(r)),
            _ => Err(self.unexpected("tools/call")),
        }
    }

    pub async fn read_resource(
        &self,
        params: ReadResourceRequestParams,
        meta: Option<RequestMetaObject>,
        timeout: Duration,
        downstream: Option<Downstream>,
    ) -> Result<ReadResourceResponse, UpstreamError> {
        let request = ClientRequest::ReadResourceRequest(ReadResourceRequest::new(params));
        match self.request(request, meta, timeout, downstream).await? {
            ServerResult::ReadResourceResult(r) => Ok(ReadResourceResponse::Complete(r)),
            ServerResult::InputRequiredResult(r) => Ok(ReadResourceResponse::InputRequired(r)),
            _ => Err(self.unexpected("resources/read")),
        }
    }

    pub async fn get_prompt(
        &self,
        params: GetPromptRequestParams,
        meta: Option<RequestMetaObject>,
        timeout: Duration,
        downstream: Option<Downstream>,
    ) -> Result<GetPromptResponse, UpstreamError> {
        let request = ClientRequest::GetPromptRequest(GetPromptRequest::new(params));
        match self.request(request, meta, timeout, downstream).await? {
            ServerResult::GetPromptResult(r) => Ok(GetPromptResponse::Complete(r)),
            ServerResult::InputRequiredResult(r) => Ok(GetPromptResponse::InputRequired(r)),
            _ => Err(self.unexpected("prompts/get")),
        }
    }

    pub async fn complete(
        &self,
        params: CompleteRequestParams,
        meta: Option<RequestMetaObject>,
        timeout: Duration,
    ) -> Result<CompleteResult, UpstreamError> {
        let request = ClientRequest::CompleteRequest(CompleteRequest::new(params));
        match self.request(request, meta, timeout, None).await? {
            ServerResult::CompleteResult(r) => Ok(r),
            _ => Err(self.unexpected("completion/complete")),
        }
    }

    /// `resources/subscribe`, `resources/unsubscribe` or `logging/setLevel`: an empty answer.
    pub async fn subscribe(
        &self,
        params: SubscribeRequestParams,
        timeout: Duration,
    ) -> Result<(), UpstreamError> {
        let request = ClientRequest::SubscribeRequest(SubscribeRequest::new(params));
        self.empty(request, timeout, "resources/subscribe").await
    }

    pub async fn unsubscribe(
        &self,
        params: UnsubscribeRequestParams,
        timeout: Duration,
    ) -> Result<(), UpstreamError> {
        let request = ClientRequest::UnsubscribeRequest(UnsubscribeRequest::new(params));
        self.empty(request, timeout, "resources/unsubscribe").await
    }

    pub async fn set_level(
        &self,
        params: SetLevelRequestParams,
        timeout: Duration,
    ) -> Result<(), UpstreamError> {
        let request = ClientRequest::SetLevelRequest(SetLevelRequest::new(params));
        self.empty(request, timeout, "logging/setLevel").await
    }

    async fn empty(
        &self,
        request: ClientRequest,
        timeout: Duration,
        method: &str,
    ) -> Result<(), UpstreamError> {
        match self.request(request, None, timeout, None).await? {
            ServerResult::EmptyResult(_) => Ok(()),
            _ => Err(self.unexpected(method)),
        }
    }

    /// Closes the session and its transport (HTTP: DELETE and drop the socket; stdio: the
    /// graceful child shutdown). Idempotent; bounded by [`CLOSE_TIMEOUT`].
    pub async fn close(&self) {
        if !self.state.advance(ConnState::Closing) {
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
        if let Some(group) = self.process_group {
            stdio::end_group(group).await;
        }
        self.release_permit();
        self.state.advance(ConnState::Closed);
    }

    fn release_permit(&self) {
        drop(self.permit.lock().unwrap_or_else(|p| p.into_inner()).take());
    }
}

/// Milliseconds on a process-wide monotonic clock.
fn now_ms() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    EPOCH.get_or_init(Instant::now).elapsed().as_millis() as u64
}

impl Drop for UpstreamClient {
    fn drop(&mut self) {
        self.transport_ct.cancel();
        self.release_permit();
        if self.state.get() < ConnState::Closing {
            // Fallback only: rmcp's drop guard cancels the service, whose task closes the
            // transport (and kills and reaps a child).
            tracing::warn!(upstream = %self.name, "upstream client dropped without close()");
            if let Some(group) = self.process_group {
                stdio::kill_group(group);
            }
        }
        self.state.advance(ConnState::Closed);
    }
}

/// What a connect attempt leaves to clean up or to tell, whether or not it succeeded.
#[derive(Default)]
struct Attempt {
    /// stdio: the child's process group.
    process_group: Option<i32>,
    /// HTTP: whether the upstream refused the credential.
    credential: Option<Arc<streamable_http::CredentialCheck>>,
}

/// Opens `config`'s transport (every HTTP exchange cut by `ct`) and initializes over it; the
/// caller bounds it by the connect timeout.
async fn open(
    config: &UpstreamConfig,
    handler: UpstreamHandler,
    ctx: &ConnectContext,
    ct: &CancellationToken,
    era: Era,
    attempt: &mut Attempt,
) -> Result<RunningService<RoleClient, UpstreamHandler>, String> {
    let rendered = config.rendered().map_err(|e| e.to_string())?;
    match &config.transport {
        UpstreamTransport::StreamableHttp { url, ca_file, .. } => {
            let headers = streamable_http::header_map(&rendered)?;
            let http = ctx.http.client(ca_file.as_deref()).await?;
            let (transport, gate, check) =
                streamable_http::transport(&http, url, headers, ct.clone());
            attempt.credential = Some(check);
            let service = handler
                .serve_with_lifecycle(transport, era.lifecycle())
                .await
                .map_err(|e| error::connect_cause(&config.name, &e))?;
            // What the upstream sends unasked rides its GET stream: serve no call
            // before it is open (bounded; the connect timeout also applies).
            if !gate.wait(STREAM_WAIT).await {
                tracing::warn!(upstream = %config.name, "event stream not open after {STREAM_WAIT:?}; serving without waiting");
            }
            Ok(service)
        }
        UpstreamTransport::Sse { url, ca_file, .. } => {
            let headers = streamable_http::header_map(&rendered)?;
            let http = ctx.http.client(ca_file.as_deref()).await?;
            let check = Arc::new(streamable_http::CredentialCheck::default());
            attempt.credential = Some(check.clone());
            let transport = legacy_sse::connect(&http, url, headers, ct.clone(), check).await?;
            handler
                .serve_with_lifecycle(transport, era.lifecycle())
                .await
                .map_err(|e| error::connect_cause(&config.name, &e))
        }
        UpstreamTransport::Stdio { command, args, .. } => {
            let (child, group) = stdio::spawn(command, args, &rendered, ctx.stdio_max_reply)
                .map_err(|e| format!("cannot start {command:?}: {e}"))?;
            attempt.process_group = group;
            handler
                .serve_with_lifecycle(child, era.lifecycle())
                .await
                .map_err(|e| error::connect_cause(&config.name, &e))
        }
    }
}
