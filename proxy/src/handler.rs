//! `ProxyHandler`: the rmcp `ServerHandler` of one instance. It merges the upstreams' tools
//! (`router` names them), routes `tools/call` by name, and bounds every request by the
//! whole-request timeout, by the client's cancellation and by the client going away.

use std::sync::{Arc, OnceLock};

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, ErrorData, Implementation, InitializeRequestParams,
    InitializeResult, ListToolsResult, PaginatedRequestParams, ServerCapabilities, ServerConfig,
};
use rmcp::service::RequestContext;
use rmcp::{RoleServer, ServerHandler};

use crate::metrics::RequestTimer;
use crate::model::InstanceConfig;
use crate::router::{self, RouteError, ToolIndex};
use crate::server::ClientGone;
use crate::sessions::SessionScope;
use crate::state::AppState;
use crate::upstream::UpstreamError;
use crate::upstream::manager::{Lease, SessionUpstreams};

/// Serves one instance. rmcp creates one per downstream session (or per stateless request)
/// and drops it when the session ends; a session's handler owns the session's [`SessionScope`]
/// (set at `initialize`), so everything the session holds is released with it.
#[derive(Clone)]
pub struct ProxyHandler {
    state: Arc<AppState>,
    instance_id: Arc<str>,
    session: Arc<OnceLock<SessionScope>>,
}

impl ProxyHandler {
    pub fn new(state: Arc<AppState>, instance_id: Arc<str>) -> Self {
        Self {
            state,
            instance_id,
            session: Arc::default(),
        }
    }

    /// A client for `upstream` per its connection mode (this session's own in `per-session`).
    async fn lease(&self, upstream: &crate::model::UpstreamConfig) -> Result<Lease, UpstreamError> {
        let session = self.session.get().map(|s| &s.upstreams);
        self.state
            .pool
            .acquire(&self.instance_id, upstream, session)
            .await
    }

    async fn config(&self) -> Result<Arc<InstanceConfig>, ErrorData> {
        self.state
            .configs
            .get(&self.instance_id)
            .await
            .map_err(|e| ErrorData::from(e.as_ref()))
    }

    /// Runs `fut` unless the request timeout passes, the client cancels, or the client's HTTP
    /// exchange goes away first. Dropping `fut` drops any upstream lease it holds (which
    /// closes per-request clients) and any call in flight (which cancels it upstream).
    async fn bounded<T>(
        &self,
        ctx: &RequestContext<RoleServer>,
        fut: impl Future<Output = Result<T, ErrorData>>,
    ) -> Result<T, ErrorData> {
        let timeout = self.state.settings.request_timeout;
        let gone = ctx
            .extensions
            .get::<axum::http::request::Parts>()
            .and_then(|p| p.extensions.get::<ClientGone>())
            .map(|g| g.0.clone())
            .unwrap_or_default();
        tokio::select! {
            r = tokio::time::timeout(timeout, fut) => r.unwrap_or_else(|_| {
                Err(ErrorData::internal_error(format!("request timed out after {timeout:?}"), None))
            }),
            _ = ctx.ct.cancelled() => Err(ErrorData::internal_error("request cancelled by the client", None)),
            _ = gone.cancelled() => Err(ErrorData::internal_error("the client went away", None)),
        }
    }

    /// The instance's merged tool list: cached per instance, built by asking every upstream
    /// concurrently. A failing upstream is logged, counted and left out; a partial list is
    /// returned but not cached.
    async fn tool_index(&self, config: &InstanceConfig) -> Arc<ToolIndex> {
        self.state
            .tools
            .get_or_build(&self.instance_id, || self.build_tool_index(config))
            .await
    }

    async fn build_tool_index(&self, config: &InstanceConfig) -> ToolIndex {
        let timeout = self.state.settings.call_timeout;
        let lists = futures::future::join_all(config.upstreams.iter().map(|upstream| async move {
            let lease = self.lease(upstream).await?;
            let tools = lease.list_tools(timeout).await;
            lease.release().await;
            tools
        }))
        .await;
        let mut ok = Vec::new();
        let mut failed = Vec::new();
        for (upstream, result) in config.upstreams.iter().zip(lists) {
            match result {
                Ok(tools) => ok.push((upstream.name.clone(), tools)),
                Err(e) => {
                    tracing::warn!(instance = %self.instance_id, error = %e, "upstream left out of tools/list");
                    self.state.metrics.upstream_error(&upstream.name, e.kind());
                    failed.push(upstream.name.clone());
                }
            }
        }
        let index = ToolIndex::build(config.prefixed(), ok, failed);
        if !index.collisions.is_empty() {
            tracing::error!(instance = %self.instance_id, collisions = ?index.collisions,
                "tool name collision with prefix = \"never\"; the first upstream's tool wins");
        }
        index
    }

    async fn call(
        &self,
        mut request: CallToolRequestParams,
    ) -> Result<CallToolResponse, ErrorData> {
        let config = self.config().await?;
        let route = match router::route_by_name(&config, &request.name)? {
            Some(route) => route,
            None => self
                .tool_index(&config)
                .await
                .route(&request.name)
                .cloned()
                .ok_or_else(|| RouteError::UnknownTool(request.name.to_string()))?,
        };
        let upstream = config
            .upstream(&route.upstream)
            .ok_or_else(|| RouteError::UnknownTool(request.name.to_string()))?;
        let lease = self
            .lease(upstream)
            .await
            .inspect_err(|e| self.state.metrics.upstream_error(&upstream.name, e.kind()))?;
        let exposed = std::mem::replace(&mut request.name, route.tool.into());
        let result = lease
            .call_tool(request, self.state.settings.call_timeout)
            .await;
        lease.release().await;
        match result {
            Ok(response) => Ok(response),
            Err(e) => {
                self.state.metrics.upstream_error(&upstream.name, e.kind());
                let mut error = ErrorData::from(e);
                error.message = format!("{} (calling tool {exposed:?})", error.message).into();
                Err(error)
            }
        }
    }
}

impl ServerHandler for ProxyHandler {
    async fn ping(&self, _context: RequestContext<RoleServer>) -> Result<(), ErrorData> {
        self.state.metrics.request("ping", "ok");
        Ok(())
    }

    async fn initialize(
        &self,
        request: InitializeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<InitializeResult, ErrorData> {
        context.peer.set_peer_info(request.clone());
        let result = self.negotiate_initialize(&request);
        if result.is_ok() && self.session.get().is_none() {
            // This handler now serves a session: it owns the session's scope from here on.
            let scope = self.state.sessions.open(
                self.instance_id.clone(),
                context.peer.clone(),
                SessionUpstreams::new(self.state.tracker.clone()),
            );
            let _ = self.session.set(scope);
        }
        self.state
            .metrics
            .request("initialize", if result.is_ok() { "ok" } else { "error" });
        result
    }

    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_tool_list_changed()
                .build(),
        )
        .with_server_info(Implementation::new("mcp-proxy", env!("CARGO_PKG_VERSION")))
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let timer = RequestTimer::start(&self.state.metrics, "tools/list");
        let result = self
            .bounded(&context, async {
                let config = self.config().await?;
                let index = self.tool_index(&config).await;
                Ok(ListToolsResult::with_all_items(
                    index.tools.as_ref().clone(),
                ))
            })
            .await;
        timer.finish(&result);
        result
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let timer = RequestTimer::start(&self.state.metrics, "tools/call");
        let result = self.bounded(&context, self.call(request)).await;
        timer.finish(&result);
        result
    }
}
