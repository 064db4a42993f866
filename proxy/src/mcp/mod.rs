//! `ProxyHandler`: the rmcp `ServerHandler` of one instance. It merges what the upstreams offer
//! (tools here; resources, templates and prompts in `catalog`), routes every request to the
//! upstream that owns its name or URI, and bounds every request by the whole-request timeout,
//! by the client's cancellation and by the client going away.

// Logging is deprecated by SEP-2577 but is part of 2025-11-25, which this proxy carries.
#![allow(deprecated)]

mod catalog;
pub mod context;
pub mod error;
pub mod instances;
pub mod owned_sessions;

use std::sync::{Arc, OnceLock};

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CompleteRequestParams, CompleteResult, DiscoverResult,
    ErrorData, GetPromptRequestParams, GetPromptResponse, Implementation, InitializeRequestParams,
    InitializeResult, ListPromptsResult, ListResourceTemplatesResult, ListResourcesResult,
    ListToolsResult, PaginatedRequestParams, ReadResourceRequestParams, ReadResourceResponse,
    RequestMetaObject, ResultType, ServerCapabilities, ServerConfig, SetLevelRequestParams,
    SubscribeRequestParams, UnsubscribeRequestParams,
};
use rmcp::service::RequestContext;
use rmcp::{RoleServer, ServerHandler};

use crate::domain::model::{InstanceConfig, UpstreamConfig};
use crate::domain::router::{self, RouteError, ToolIndex};
use crate::domain::secrets::Secret;
use crate::ops::metrics::RequestTimer;
use crate::sessions::SessionScope;
use crate::upstream::manager::Lease;
use crate::upstream::relay::{Downstream, forwarded_meta};
use crate::upstream::{Era, UpstreamError};
pub use context::{AdmittedConfig, AdmittedKey, ClientGone, McpSettings, McpState};
use error::Refusal;

/// How long `initialize` waits to learn the capabilities of upstreams not seen yet.
const CAPABILITY_PROBE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// Serves one instance. rmcp creates one per downstream session (or per stateless request)
/// and drops it when the session ends; a session's handler owns the session's [`SessionScope`]
/// (set at `initialize`), so everything the session holds is released with it.
#[derive(Clone)]
pub struct ProxyHandler {
    state: Arc<McpState>,
    instance_id: Arc<str>,
    session: Arc<OnceLock<SessionScope>>,
    /// What this handler advertised (set at `initialize` / `server/discover`).
    capabilities: Arc<OnceLock<ServerCapabilities>>,
}

impl ProxyHandler {
    pub fn new(state: Arc<McpState>, instance_id: Arc<str>) -> Self {
        Self {
            state,
            instance_id,
            session: Arc::default(),
            capabilities: Arc::default(),
        }
    }

    /// A client for `upstream` per its connection mode (this session's own in `per-session`),
    /// of the caller's protocol era.
    async fn lease(&self, upstream: &UpstreamConfig, era: Era) -> Result<Lease, UpstreamError> {
        let session = self.session.get().map(|s| &s.upstreams);
        self.state
            .pool
            .acquire(&self.instance_id, upstream, session, era)
            .await
    }

    /// As [`Self::lease`], counting a failure against the upstream.
    async fn lease_counted(
        &self,
        upstream: &UpstreamConfig,
        era: Era,
    ) -> Result<Lease, UpstreamError> {
        self.lease(upstream, era)
            .await
            .inspect_err(|e| self.state.metrics.upstream_error(&upstream.name, e.kind()))
    }

    /// The instance's config: the one the HTTP entry loaded for this request, else (a request
    /// that did not come through it) from the cache; with the caller's forwarded headers bound
    /// to the upstreams that take them.
    async fn config(
        &self,
        ctx: &RequestContext<RoleServer>,
    ) -> Result<Arc<InstanceConfig>, ErrorData> {
        let parts = http_parts(ctx);
        let config = match parts.and_then(|p| p.extensions.get()) {
            Some(AdmittedConfig(config)) => config.clone(),
            None => self
                .state
                .caches
                .configs
                .get(&self.instance_id)
                .await
                .map_err(|e| ErrorData::from(e.as_ref()))?,
        };
        Ok(match parts {
            Some(parts) => forwarding(config, &parts.headers),
            None => config,
        })
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
        let gone = http_parts(ctx)
            .and_then(|p| p.extensions.get::<ClientGone>())
            .map(|g| g.0.clone())
            .unwrap_or_default();
        tokio::select! {
            r = tokio::time::timeout(timeout, fut) => r.unwrap_or_else(|_| Err(Refusal::TimedOut(timeout).into())),
            _ = ctx.ct.cancelled() => Err(Refusal::Cancelled.into()),
            _ = gone.cancelled() => Err(Refusal::ClientGone.into()),
        }
    }

    /// [`Self::bounded`], timed and counted under `method`.
    async fn timed<T>(
        &self,
        method: &'static str,
        ctx: &RequestContext<RoleServer>,
        fut: impl Future<Output = Result<T, ErrorData>>,
    ) -> Result<T, ErrorData> {
        let timer = RequestTimer::start(&self.state.metrics, method);
        let result = self.bounded(ctx, fut).await;
        timer.finish(&result);
        result
    }

    /// Leases `upstream`, runs one upstream operation, releases the lease; a failure is
    /// counted and becomes the caller's JSON-RPC error, naming the upstream and `what`.
    async fn on_upstream<T, F>(
        &self,
        upstream: &UpstreamConfig,
        era: Era,
        what: &str,
        op: impl FnOnce(Lease) -> F,
    ) -> Result<T, ErrorData>
    where
        F: Future<Output = (Lease, Result<T, UpstreamError>)>,
    {
        let lease = self.lease_counted(upstream, era).await?;
        let (lease, result) = op(lease).await;
        lease.release().await;
        result.map_err(|e| {
            self.state.metrics.upstream_error(&upstream.name, e.kind());
            let mut error = ErrorData::from(e);
            error.message = format!("{} ({what})", error.message).into();
            error
        })
    }

    /// The `_meta` to forward with a request: the caller's own keys from the params and the
    /// request context (rmcp keeps `_meta` in either), without this hop's.
    fn meta(
        ctx: &RequestContext<RoleServer>,
        params: Option<RequestMetaObject>,
    ) -> Option<RequestMetaObject> {
        let mut all = params.unwrap_or_default();
        for (k, v) in ctx.meta.iter() {
            all.entry(k.clone()).or_insert_with(|| v.clone());
        }
        forwarded_meta(&all)
    }

    /// The instance's merged tool list: cached per instance, built by asking every upstream
    /// concurrently. A failing upstream is logged, counted and left out; a partial list is
    /// returned but not cached.
    async fn tool_index(&self, config: &InstanceConfig, era: Era) -> Arc<ToolIndex> {
        self.state
            .caches
            .tools
            .get_or_build(&self.instance_id, || self.build_tool_index(config, era))
            .await
    }

    /// Asks every upstream of `config` concurrently (`list` on a lease of each, released
    /// after); returns the answers by upstream name and the names of those that failed, each
    /// failure logged (as left out of `what`) and counted.
    async fn ask_every_upstream<T, F>(
        &self,
        config: &InstanceConfig,
        era: Era,
        what: &str,
        list: impl Fn(Lease) -> F,
    ) -> (Vec<(String, T)>, Vec<String>)
    where
        F: Future<Output = (Lease, Result<T, UpstreamError>)>,
    {
        let list = &list;
        let answers =
            futures::future::join_all(config.upstreams.iter().map(|upstream| async move {
                let lease = self.lease(upstream, era).await?;
                let (lease, answer) = list(lease).await;
                lease.release().await;
                answer
            }))
            .await;
        let mut ok = Vec::new();
        let mut failed = Vec::new();
        for (upstream, result) in config.upstreams.iter().zip(answers) {
            match result {
                Ok(answer) => ok.push((upstream.name.clone(), answer)),
                Err(e) => {
                    tracing::warn!(instance = %self.instance_id, error = %e, "upstream left out of {what}");
                    self.state.metrics.upstream_error(&upstream.name, e.kind());
                    failed.push(upstream.name.clone());
                }
            }
        }
        (ok, failed)
    }

    async fn build_tool_index(&self, config: &InstanceConfig, era: Era) -> ToolIndex {
        let timeout = self.state.settings.call_timeout;
        let (ok, failed) = self
            .ask_every_upstream(config, era, "tools/list", |lease| async move {
                let r = lease.list_tools(timeout).await;
                (lease, r)
            })
            .await;
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
        ctx: &RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let config = self.config(ctx).await?;
        let route = match router::route_by_name(&config, &request.name)? {
            Some(route) => route,
            None => self
                .tool_index(&config, era_of(ctx))
                .await
                .route(&request.name)
                .cloned()
                .ok_or_else(|| RouteError::UnknownTool(request.name.to_string()))?,
        };
        let upstream = config
            .upstream(&route.upstream)
            .ok_or_else(|| RouteError::UnknownTool(request.name.to_string()))?;
        let exposed = std::mem::replace(&mut request.name, route.tool.into());
        let meta = Self::meta(ctx, request.meta.take());
        let timeout = self.state.settings.call_timeout;
        let downstream = Downstream::of(ctx);
        self.on_upstream(
            upstream,
            era_of(ctx),
            &format!("calling tool {exposed:?}"),
            |lease| async move {
                let r = lease
                    .call_tool(request, meta, timeout, Some(downstream))
                    .await;
                (lease, r)
            },
        )
        .await
        .map(|mut response| {
            if let CallToolResponse::Complete(r) = &mut response {
                mark_complete(&mut r.result_type, ctx);
            }
            response
        })
    }

    /// What this instance offers: the union of its upstreams' capabilities. Upstreams not
    /// yet seen are connected (concurrently) to learn theirs, for at most
    /// [`CAPABILITY_PROBE_TIMEOUT`]; one that fails or is slower is left out (and tried again
    /// at the next `initialize`), so a hanging upstream never holds a session's start.
    async fn merged_capabilities(
        &self,
        ctx: &RequestContext<RoleServer>,
        era: Era,
    ) -> ServerCapabilities {
        let Ok(config) = self.config(ctx).await else {
            return crate::domain::capabilities::merged([]);
        };
        let unknown = config
            .upstreams
            .iter()
            .filter(|u| self.state.caches.capabilities.get(&u.name).is_none());
        let learn = futures::future::join_all(unknown.map(|upstream| async move {
            if let Ok(lease) = self.lease(upstream, era).await {
                // A connection that was already open (its capabilities forgotten when the
                // caches were dropped) tells them again here.
                self.state
                    .caches
                    .capabilities
                    .record(&upstream.name, lease.capabilities().clone());
                lease.release().await;
            }
        }));
        let _ = tokio::time::timeout(CAPABILITY_PROBE_TIMEOUT, learn).await;
        let known: Vec<ServerCapabilities> = config
            .upstreams
            .iter()
            .filter_map(|u| self.state.caches.capabilities.get(&u.name))
            .collect();
        let merged = crate::domain::capabilities::merged(&known);
        self.state
            .caches
            .capabilities
            .advertise(&self.instance_id, &merged);
        let _ = self.capabilities.set(merged.clone());
        merged
    }

    fn session_id(&self) -> Option<u64> {
        self.session.get().map(SessionScope::id)
    }
}

/// The HTTP request that carried an MCP request (rmcp hands its parts to the handler).
/// `config` with each upstream's `forward_headers` filled from the caller's `headers` (the
/// same `Arc` when no upstream forwards any). A `per-session` connection is made with the
/// values of the request that opened it and replaced when a later request's differ.
fn forwarding(config: Arc<InstanceConfig>, headers: &axum::http::HeaderMap) -> Arc<InstanceConfig> {
    if config
        .upstreams
        .iter()
        .all(|u| u.forward_headers.is_empty())
    {
        return config;
    }
    let mut bound = (*config).clone();
    for upstream in &mut bound.upstreams {
        upstream.credentials.forwarded = upstream
            .forward_headers
            .iter()
            .filter_map(|(from, to)| {
                let value = headers.get(from.as_str())?.to_str().ok()?;
                Some((to.clone(), Secret::new(value)))
            })
            .collect();
    }
    Arc::new(bound)
}

fn http_parts(ctx: &RequestContext<RoleServer>) -> Option<&axum::http::request::Parts> {
    ctx.extensions.get::<axum::http::request::Parts>()
}

/// Whether the caller speaks 2026-07-28 (or later): the request's own `_meta` version, else
/// its session's.
fn stateless_era(ctx: &RequestContext<RoleServer>) -> bool {
    ctx.protocol_version()
        .is_some_and(|v| v >= rmcp::model::ProtocolVersion::V_2026_07_28)
}

/// The era of the upstream connection that serves this caller.
fn era_of(ctx: &RequestContext<RoleServer>) -> Era {
    if stateless_era(ctx) {
        Era::Stateless
    } else {
        Era::Sessions
    }
}

/// A result an upstream of the older era gave without `resultType`, as a 2026-07-28 caller
/// gets it from a server of its own era: `"complete"` (which is what an absent field means).
fn mark_complete(result_type: &mut Option<ResultType>, ctx: &RequestContext<RoleServer>) {
    if result_type.is_none() && stateless_era(ctx) {
        *result_type = Some(ResultType::COMPLETE);
    }
}

/// The `cursor` of a list request.
fn cursor(request: &Option<PaginatedRequestParams>) -> Option<&str> {
    request.as_ref().and_then(|r| r.cursor.as_deref())
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
        let mut result = self.negotiate_initialize(&request);
        if result.is_ok() && self.session.get().is_none() {
            // This handler now serves a session: it owns the session's scope from here on.
            let scope = self.state.sessions.open(
                self.instance_id.clone(),
                context.peer.clone(),
                self.state.tracker.clone(),
            );
            let _ = self.session.set(scope);
        }
        if let Ok(result) = &mut result {
            result.capabilities = self.merged_capabilities(&context, Era::Sessions).await;
        }
        self.state
            .metrics
            .request("initialize", if result.is_ok() { "ok" } else { "error" });
        result
    }

    async fn discover(
        &self,
        context: RequestContext<RoleServer>,
    ) -> Result<DiscoverResult, ErrorData> {
        let mut info = self.get_info();
        info.capabilities = self.merged_capabilities(&context, Era::Stateless).await;
        self.state.metrics.request("server/discover", "ok");
        Ok(DiscoverResult::from_server_info(
            self.supported_protocol_versions().into_owned(),
            info,
        ))
    }

    fn get_info(&self) -> ServerConfig {
        // rmcp asks synchronously (e.g. to intersect a listen filter): this handler's own
        // answer, else what the instance last advertised (a 2026-07-28 request has a handler of
        // its own, after the client's `server/discover`)
        let capabilities = self
            .capabilities
            .get()
            .cloned()
            .or_else(|| self.state.caches.capabilities.advertised(&self.instance_id))
            .unwrap_or_else(|| crate::domain::capabilities::merged([]));
        ServerConfig::new(capabilities)
            .with_server_info(Implementation::new("mcp-proxy", env!("CARGO_PKG_VERSION")))
    }

    async fn list_tools(
        &self,
        request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        self.timed("tools/list", &context, async {
            let config = self.config(&context).await?;
            let index = self.tool_index(&config, era_of(&context)).await;
            let (tools, next) = crate::domain::catalog::page(
                &index.tools,
                cursor(&request),
                self.state.settings.list_page_size,
            )?;
            let mut result = ListToolsResult::with_all_items(tools);
            result.next_cursor = next;
            Ok(result)
        })
        .await
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        self.timed("tools/call", &context, self.call(request, &context))
            .await
    }

    async fn list_resources(
        &self,
        request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
        self.timed(
            "resources/list",
            &context,
            self.resources_page(&request, &context),
        )
        .await
    }

    async fn list_resource_templates(
        &self,
        request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, ErrorData> {
        self.timed(
            "resources/templates/list",
            &context,
            self.templates_page(&request, &context),
        )
        .await
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        self.timed("resources/read", &context, self.read(request, &context))
            .await
    }

    async fn subscribe(
        &self,
        request: SubscribeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        self.timed(
            "resources/subscribe",
            &context,
            self.subscribe_uri(request, &context),
        )
        .await
    }

    async fn unsubscribe(
        &self,
        request: UnsubscribeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        self.timed(
            "resources/unsubscribe",
            &context,
            self.unsubscribe_uri(request, &context),
        )
        .await
    }

    async fn list_prompts(
        &self,
        request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListPromptsResult, ErrorData> {
        self.timed(
            "prompts/list",
            &context,
            self.prompts_page(&request, &context),
        )
        .await
    }

    async fn get_prompt(
        &self,
        request: GetPromptRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<GetPromptResponse, ErrorData> {
        self.timed("prompts/get", &context, self.prompt(request, &context))
            .await
    }

    async fn complete(
        &self,
        request: CompleteRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CompleteResult, ErrorData> {
        self.timed(
            "completion/complete",
            &context,
            self.completion(request, &context),
        )
        .await
    }

    async fn set_level(
        &self,
        request: SetLevelRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        self.timed(
            "logging/setLevel",
            &context,
            self.log_level(request, &context),
        )
        .await
    }

    /// 2026-07-28 `subscriptions/listen`: every kind of notification the instance can carry is
    /// accepted (rmcp keeps only what was requested and advertised).
    fn accepted_subscription_filter(
        &self,
        requested: &rmcp::model::SubscriptionFilter,
    ) -> Option<rmcp::model::SubscriptionFilter> {
        Some(requested.clone())
    }

    async fn listen(&self, context: rmcp::service::SubscriptionContext) -> Result<(), ErrorData> {
        self.state.metrics.request("subscriptions/listen", "ok");
        self.listen_stream(context).await
    }
}
