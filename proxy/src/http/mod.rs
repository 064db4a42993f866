//! The HTTP server: routes (SPEC contract), the authenticated entry into each instance's rmcp
//! service, and the lifecycle (`start` → `RunningProxy` → shutdown).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use axum::serve::ListenerExt;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::auth;
use crate::cache::{AuthCache, CatalogCache, ConfigCache, ConfigError};
use crate::capabilities::UpstreamCapabilities;
use crate::error::http_error;
use crate::metrics::Metrics;
use crate::seed::Seed;
use crate::sessions::Sessions;
use crate::settings::Settings;
use crate::shutdown;
use crate::state::AppState;
use crate::store::Store;
use crate::upstream::manager::ConnectionManager;
use crate::upstream::{ConnectContext, ToolsCache};

/// A proxy that is serving. Dropping it does not stop it; call [`RunningProxy::shutdown`].
pub struct RunningProxy {
    pub addr: SocketAddr,
    pub state: Arc<AppState>,
    task: JoinHandle<()>,
}

impl RunningProxy {
    /// The token that starts the graceful shutdown when cancelled.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.state.shutdown.clone()
    }

    /// Base URL of an instance's MCP endpoint.
    pub fn mcp_url(&self, instance_id: &str) -> String {
        format!("http://{}/mcp/{instance_id}", self.addr)
    }

    /// Waits until the server has shut down and released everything.
    pub async fn wait(self) {
        if let Err(e) = self.task.await {
            tracing::error!(error = %e, "server task failed");
        }
    }

    /// Starts the graceful shutdown and waits for it to complete.
    pub async fn shutdown(self) {
        self.state.shutdown.cancel();
        self.wait().await;
    }
}

/// Connects the store (running migrations), applies the seed if any, binds, and serves.
pub async fn start(settings: Settings) -> anyhow::Result<RunningProxy> {
    let metrics = Arc::new(Metrics::default());
    let store = Store::connect(
        &settings.resolved_database_url(),
        settings.db_pool_size,
        settings.db_acquire_timeout,
        metrics.clone(),
    )
    .await?
    .with_notify_channel(&settings.notify_channel)?;
    // Validate the seed before anything is bound; it is applied through the state below.
    let seed = settings.seed.as_deref().map(Seed::load).transpose()?;
    let configs = ConfigCache::new(
        store.clone(),
        metrics.clone(),
        settings.config_cache_ttl,
        settings.config_cache_capacity,
        settings.config_cache_bypass,
    );
    let auth = AuthCache::new(
        store.clone(),
        metrics.clone(),
        settings.auth_cache_ttl,
        100_000,
    );
    let tools = ToolsCache::new(settings.tools_cache_ttl, settings.config_cache_capacity);
    let catalogs = CatalogCache::new(settings.tools_cache_ttl, settings.config_cache_capacity);
    let capabilities = Arc::new(UpstreamCapabilities::default());
    let http = reqwest::Client::builder()
        .tcp_nodelay(true)
        .pool_idle_timeout(settings.upstream_http_idle_timeout)
        .pool_max_idle_per_host(settings.upstream_http_max_idle)
        .build()?;
    let tracker = TaskTracker::new();
    // Stops the background tasks (usage flusher, idle sweep, debounce timers, SIGHUP).
    let background_stop = CancellationToken::new();
    let sessions = Arc::new(Sessions::new(
        settings.max_sessions,
        settings.list_changed_debounce,
        tools.clone(),
        catalogs.clone(),
        tracker.clone(),
        background_stop.clone(),
    ));
    let pool = Arc::new(ConnectionManager::new(
        ConnectContext {
            http,
            connect_timeout: settings.connect_timeout,
            metrics: metrics.clone(),
            tracker: tracker.clone(),
            sessions: sessions.clone(),
            capabilities: capabilities.clone(),
            server_request_timeout: settings.client_request_timeout,
        },
        settings.manager_policy(),
        tracker.clone(),
    ));
    pool.spawn_sweeper(background_stop.clone());
    let listener = tokio::net::TcpListener::bind(settings.listen).await?;
    let addr = listener.local_addr()?;
    let state = Arc::new(AppState::new(
        settings,
        metrics,
        store.clone(),
        configs,
        auth,
        tools,
        catalogs,
        capabilities,
        pool,
        sessions,
        tracker.clone(),
        CancellationToken::new(),
    ));
    if let Some(seed) = &seed {
        let report = state.apply_seed(seed).await?;
        tracing::info!(?report, "seed applied");
    }
    state.usage.spawn_flusher(
        store,
        state.settings.usage_flush_interval,
        background_stop.clone(),
        &tracker,
    );
    crate::invalidation::spawn_listener(&state, background_stop.clone());
    tracker.spawn(shutdown::reload_on_sighup(
        state.clone(),
        background_stop.clone(),
    ));
    state
        .memory
        .spawn_watcher(background_stop.clone(), &tracker);
    let app = router(state.clone());
    let task = tokio::spawn(run(listener, app, state.clone(), background_stop));
    tracing::info!(%addr, "listening");
    #[cfg(feature = "planted-leaks")]
    crate::planted::current();
    Ok(RunningProxy { addr, state, task })
}

async fn run(
    listener: tokio::net::TcpListener,
    app: Router,
    state: Arc<AppState>,
    background_stop: CancellationToken,
) {
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    let stop = state.shutdown.clone();
    let mut server = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(stop.cancelled_owned())
            .await
    });
    // The server also watches the shutdown token: with no connection open its graceful
    // shutdown ends at once, so both branches can be ready together. Whichever wins, the
    // handle is polled to completion at most once and the close path below always runs.
    let mut server_done = false;
    tokio::select! {
        _ = state.shutdown.cancelled() => {}
        result = &mut server => {
            server_done = true;
            if !state.shutdown.is_cancelled() {
                tracing::error!(?result, "server stopped on its own; shutting down");
                state.shutdown.cancel();
            }
        }
    }
    let deadline = tokio::time::Instant::now() + state.settings.shutdown_deadline;
    shutdown::drain_requests(&state, deadline).await;
    // Connections end once their last response is written; past the deadline they are cut.
    if !server_done
        && tokio::time::timeout_at(deadline + Duration::from_millis(500), &mut server)
            .await
            .is_err()
    {
        tracing::warn!("connections still open at the deadline; closing them");
        server.abort();
    }
    shutdown::close_resources(&state, &background_stop).await;
    tracing::info!("shutdown complete");
}

/// The routes. Everything but `/mcp/{instance_id}` is unauthenticated and touches no upstream.
pub fn router(state: Arc<AppState>) -> Router {
    let limit = state.settings.max_body_bytes;
    Router::new()
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/metrics", get(metrics))
        .route(
            "/mcp/{instance_id}",
            any(mcp).layer(axum::middleware::from_fn_with_state(
                state.clone(),
                crate::origin::guard,
            )),
        )
        .fallback(|| async { http_error(StatusCode::NOT_FOUND, "not_found", "no such route") })
        .layer(tower_http::limit::RequestBodyLimitLayer::new(limit))
        .with_state(state)
}

async fn health() -> Response {
    axum::Json(serde_json::json!({ "status": "ok" })).into_response()
}

async fn ready(State(state): State<Arc<AppState>>) -> Response {
    if state.shutdown.is_cancelled() {
        return http_error(StatusCode::SERVICE_UNAVAILABLE, "draining", "shutting down");
    }
    if state.memory.under_pressure() {
        return http_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "memory_pressure",
            "resident memory is near --memory-limit-mib; send new work elsewhere",
        );
    }
    if !state.store.ping().await {
        return http_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "db_unreachable",
            "database unreachable",
        );
    }
    axum::Json(serde_json::json!({ "status": "ready" })).into_response()
}

async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    let m = &state.metrics;
    m.sessions.set(state.sessions.count() as i64);
    m.db_pool_size.set(state.store.pool_size() as i64);
    m.db_pool_idle.set(state.store.pool_idle() as i64);
    let mut response = m.render().into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    response
}

/// Cancelled when the HTTP exchange that carried a request ends: its response body was
/// dropped, finished or not (the client went away mid-stream, or the answer was sent), or the
/// exchange was dropped before a response existed. Handlers stop upstream work on it.
#[derive(Clone, Default)]
pub struct ClientGone(pub CancellationToken);

/// How long a client refused for the session cap is asked to wait.
const SESSION_CAP_RETRY_AFTER: &str = "5";

/// `POST|GET|DELETE /mcp/{instance_id}`: authenticate, then hand the request to the
/// instance's rmcp service (which answers 406/415/413/400 for malformed MCP requests).
async fn mcp(
    State(state): State<Arc<AppState>>,
    Path(instance_id): Path<String>,
    mut request: Request,
) -> Response {
    if state.shutdown.is_cancelled() {
        let mut r = http_error(StatusCode::SERVICE_UNAVAILABLE, "draining", "shutting down");
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        return r;
    }
    let key = auth::extract_key(request.headers(), request.uri().query());
    let record = match auth::authenticate(&state.auth, &instance_id, key.as_deref()).await {
        Ok(record) => record,
        Err(e) => {
            state.metrics.request("auth", "refused");
            return e.into_response();
        }
    };
    drop(key);
    match state.configs.get(&instance_id).await {
        Ok(_) => {}
        Err(e) => {
            return match e.as_ref() {
                ConfigError::Missing => {
                    http_error(StatusCode::NOT_FOUND, "not_found", "no such instance")
                }
                ConfigError::Store(e) => {
                    tracing::error!(error = %e, "config load failed");
                    http_error(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "store_unavailable",
                        "configuration unavailable",
                    )
                }
            };
        }
    }
    state.usage.record(&record.id);
    let refusal = if state.sessions.at_capacity() {
        Some(SessionRefusal::Capacity)
    } else if state.memory.under_pressure() {
        Some(SessionRefusal::Memory)
    } else {
        None
    };
    if let Some(why) = refusal {
        request = match refuse_new_session(request, state.settings.max_body_bytes, why).await {
            Ok(request) => request,
            Err(response) => return response,
        };
    }
    // A DELETE of a session this replica does not hold (another replica's, or one that died
    // with a restart) is 404 like every other request on it (rmcp would answer 202).
    if request.method() == axum::http::Method::DELETE
        && let Some(id) = request
            .headers()
            .get("mcp-session-id")
            .and_then(|v| v.to_str().ok())
        && !state.knows_session(&instance_id, id).await
    {
        return (StatusCode::NOT_FOUND, "Not Found: Session not found").into_response();
    }
    let gone = ClientGone::default();
    let guard = gone.0.clone().drop_guard();
    // the response's guard cancels nothing: work for a client that went away runs on
    #[cfg(feature = "planted-leaks")]
    let guard = if crate::planted::active(crate::planted::Leak::SseTask) {
        std::mem::forget(guard);
        CancellationToken::new().drop_guard()
    } else {
        guard
    };
    request.extensions_mut().insert(gone);
    let service = state.instance_service(&instance_id);
    let response = service.handle(request).await;
    // The guard rides with the body: dropped when the body ends or the client goes away.
    response.map(|body| {
        axum::body::Body::new(GuardedBody {
            inner: axum::body::Body::new(body),
            _guard: guard,
        })
    })
}

/// A response body that cancels [`ClientGone`] when dropped; frames and size hints (so a JSON
/// response keeps its `Content-Length`) pass through unchanged.
struct GuardedBody {
    inner: axum::body::Body,
    _guard: tokio_util::sync::DropGuard,
}

impl axum::body::HttpBody for GuardedBody {
    type Data = axum::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        std::pin::Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// Why new sessions are refused.
#[derive(Clone, Copy)]
enum SessionRefusal {
    /// `max_sessions` live sessions.
    Capacity,
    /// Resident memory near `memory_limit_mib`.
    Memory,
}

/// At the session cap or under memory pressure: a request that would open a session (a POST
/// `initialize` without `Mcp-Session-Id`) gets 503 + `Retry-After`; any other request is
/// passed on unchanged.
async fn refuse_new_session(
    request: Request,
    limit: usize,
    why: SessionRefusal,
) -> Result<Request, Response> {
    if request.method() != axum::http::Method::POST
        || request.headers().contains_key("mcp-session-id")
    {
        return Ok(request);
    }
    let (parts, body) = request.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, limit).await else {
        return Err(http_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            "request body too large",
        ));
    };
    #[derive(serde::Deserialize)]
    struct Method {
        method: Option<String>,
    }
    let initialize = serde_json::from_slice::<Method>(&bytes)
        .is_ok_and(|m| m.method.as_deref() == Some("initialize"));
    if initialize {
        let (code, message) = match why {
            SessionRefusal::Capacity => (
                "too_many_sessions",
                "session limit reached; retry later or reuse a session",
            ),
            SessionRefusal::Memory => (
                "memory_pressure",
                "resident memory is near --memory-limit-mib; retry later (another replica can take the session)",
            ),
        };
        let mut r = http_error(StatusCode::SERVICE_UNAVAILABLE, code, message);
        r.headers_mut().insert(
            header::RETRY_AFTER,
            HeaderValue::from_static(SESSION_CAP_RETRY_AFTER),
        );
        return Err(r);
    }
    Ok(Request::from_parts(parts, axum::body::Body::from(bytes)))
}
