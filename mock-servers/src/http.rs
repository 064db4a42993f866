//! Streamable HTTP transport: an axum server with the MCP endpoint at `/mcp` (and, with
//! `legacy_sse`, the 2024-11-05 HTTP+SSE transport's `/sse` and `/messages`) and the control
//! endpoint at `/control`, with the required headers checked and the HTTP faults of its
//! [`FaultState`] applied in front of rmcp.
//!
//! Ownership: the root token stops everything; each "generation" of the listener (a new one
//! after `refuse` is lifted) is served by a task on `tasks`; `shutdown` waits for all of them.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use axum::Router;
use rmcp::transport::streamable_http_server::{
    StreamableHttpServerConfig, StreamableHttpService,
    session::{local::LocalSessionManager, never::NeverSessionManager},
};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::control;
use crate::faults::{Counters, Fault, FaultState, Latency};
use crate::http_faults::{self, FaultListener, HttpFaults};
use crate::legacy_sse;
use crate::paging::DEFAULT_PAGE_SIZE;
use crate::require_header::{self, HeaderCheck, RequiredHeader};
use crate::tls::TlsListener;
use crate::tools::MockTools;

/// How long [`MockServer::shutdown`] waits for the graceful drain before giving up.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Configuration of an HTTP [`MockServer`].
#[derive(Debug, Clone)]
pub struct MockConfig {
    /// Address to bind; port 0 picks a free port. Default `127.0.0.1:0`.
    pub listen: SocketAddr,
    /// Serve without sessions (`NeverSessionManager`, JSON responses).
    /// Default `false`: sessionful (`LocalSessionManager`, SSE responses).
    pub stateless: bool,
    /// Also serve `/control` here (reachable while `refuse` closes the main port).
    pub control_listen: Option<SocketAddr>,
    /// Faults, latency and seed.
    pub state: Arc<FaultState>,
    /// Items per page of `resources/list`, `resources/templates/list` and `prompts/list`
    /// (`0` = no pagination). Default [`DEFAULT_PAGE_SIZE`] (2).
    pub page_size: usize,
    /// On `notifications/initialized` of a 2025-11-25 session, ask the client for its roots
    /// (`roots/list`, outside any request); the `initial_roots` tool tells what came of it.
    /// Default `false`.
    pub roots_on_initialized: bool,
    /// Serve `https://` with this config (`--tls-cert`/`--tls-key`). Default: plain HTTP.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// Headers every request to `/mcp` (and `/sse`, `/messages`) must carry at exactly their value
    /// (`--require-header "Name: value"`); otherwise 401 (`WWW-Authenticate: Bearer`), counted
    /// in `unauthorized`. `/control` needs none. Default: none.
    pub require_headers: Vec<RequiredHeader>,
    /// Also serve the 2024-11-05 HTTP+SSE transport (`--legacy-sse`): `GET /sse` (a session's
    /// event stream, first event `endpoint`) and `POST /messages?session_id=ID`, behind the same
    /// header check and faults as `/mcp`. Default `false`.
    pub legacy_sse: bool,
}

impl Default for MockConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            stateless: false,
            control_listen: None,
            state: Arc::default(),
            page_size: DEFAULT_PAGE_SIZE,
            roots_on_initialized: false,
            tls: None,
            require_headers: Vec::new(),
            legacy_sse: false,
        }
    }
}

impl MockConfig {
    /// The default config with these faults active from the start.
    pub fn with_faults(faults: &[&str]) -> Self {
        let faults = faults
            .iter()
            .map(|f| f.parse().expect("valid fault spec"))
            .collect();
        Self {
            state: Arc::new(FaultState::new(faults, Latency::default(), Some(1))),
            ..Self::default()
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
    control_addr: Option<SocketAddr>,
    tls: bool,
    tools: MockTools,
    http: Arc<HttpFaults>,
    token: CancellationToken,
    tasks: TaskTracker,
}

impl MockServer {
    /// Binds `config.listen` and starts serving; returns once the socket is listening (or,
    /// with `refuse`, once the port is known and closed).
    pub async fn start(config: MockConfig) -> std::io::Result<MockServer> {
        let listener = TcpListener::bind(config.listen).await?;
        let addr = listener.local_addr()?;
        let token = CancellationToken::new();
        let tasks = TaskTracker::new();
        let tools = MockTools::new(config.state.clone(), token.child_token())
            .with_page_size(config.page_size)
            .with_roots_on_initialized(config.roots_on_initialized);
        let (mcp, sessions) = mcp_router(&config, tools.clone(), token.child_token());
        let http = Arc::new(HttpFaults::new(
            config.state.clone(),
            tools.clone(),
            sessions,
            token.clone(),
        ));
        let check = Arc::new(HeaderCheck::new(
            config.require_headers.clone(),
            config.state.clone(),
        ));
        let routes = if config.legacy_sse {
            mcp.merge(legacy_sse::router(
                tools.clone(),
                http.clone(),
                token.child_token(),
                tasks.clone(),
            ))
        } else {
            mcp
        };
        // the last layer runs first: the credentials, then the faults, then rmcp
        let app = routes
            .layer(axum::middleware::from_fn_with_state(
                http.clone(),
                http_faults::apply,
            ))
            .layer(axum::middleware::from_fn_with_state(
                check,
                require_header::apply,
            ))
            .merge(control::router(http.clone()));

        let control_addr = match config.control_listen {
            Some(control_listen) => {
                let listener = TcpListener::bind(control_listen).await?;
                let control_addr = listener.local_addr()?;
                let stop = token.clone().cancelled_owned();
                let router = control::router(http.clone());
                tasks.spawn(async move {
                    let _ = axum::serve(listener, router)
                        .with_graceful_shutdown(stop)
                        .await;
                });
                Some(control_addr)
            }
            None => None,
        };
        tasks.spawn(supervise(
            listener,
            addr,
            app,
            config.tls.clone(),
            config.state.clone(),
            token.clone(),
            tasks.clone(),
        ));
        tracing::debug!(%addr, stateless = config.stateless, "mock-mcp listening");
        Ok(MockServer {
            addr,
            control_addr,
            tls: config.tls.is_some(),
            tools,
            http,
            token,
            tasks,
        })
    }

    /// The bound address (with the real port when `listen` used port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The MCP endpoint URL, `http://{addr}/mcp` (`https://` when serving TLS).
    pub fn url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}/mcp", self.addr)
    }

    /// The legacy HTTP+SSE event stream's URL, `http://{addr}/sse` (`https://` when serving
    /// TLS); served with [`MockConfig::legacy_sse`].
    pub fn sse_url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}{}", self.addr, legacy_sse::SSE_PATH)
    }

    /// The separate control address, if one was configured.
    pub fn control_addr(&self) -> Option<SocketAddr> {
        self.control_addr
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

    /// The fault state (switch faults in-process with `state().set(..)`).
    pub fn state(&self) -> &Arc<FaultState> {
        self.tools.state()
    }

    /// Replaces the active faults.
    pub fn set_faults(&self, faults: &[&str]) {
        let faults: Vec<Fault> = faults
            .iter()
            .map(|f| f.parse().expect("valid fault spec"))
            .collect();
        self.state().set(faults, None);
    }

    /// What `GET /control` reports.
    pub async fn counters(&self) -> Counters {
        self.http.counters().await
    }

    /// The current value of `mock://counter` (incremented by the `bump` tool).
    pub fn counter(&self) -> u64 {
        self.tools.counter()
    }

    /// Sessions holding a `resources/subscribe` subscription (2025-11-25), and open
    /// `subscriptions/listen` streams (2026-07-28). A listen stream is counted once its
    /// acknowledgment has been sent and the mock is ready to notify it.
    pub fn subscriptions(&self) -> (usize, usize) {
        self.tools.subscriptions()
    }

    /// Background tasks (per-session `list-changed-every` tickers and `--roots-on-initialized`
    /// requests) still running.
    pub fn background_tasks(&self) -> usize {
        self.tools.background_tasks()
    }

    /// Whether `crash-after` stopped the server.
    pub fn crashed(&self) -> bool {
        self.http.crashed()
    }

    /// Resolves when the server has stopped (shutdown, or `crash-after`).
    pub async fn stopped(&self) {
        self.token.cancelled().await;
    }

    /// Stops accepting, closes all sessions and waits for the server tasks (at most a few
    /// seconds). The listening socket is released when this returns.
    pub async fn shutdown(self) {
        self.token.cancel();
        self.tasks.close();
        if tokio::time::timeout(SHUTDOWN_GRACE, self.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!("mock-mcp graceful shutdown timed out");
        }
    }
}

impl Drop for MockServer {
    fn drop(&mut self) {
        self.token.cancel();
    }
}

/// Serves `app` on the port, closing it while `refuse` is active and re-binding it after.
async fn supervise(
    listener: TcpListener,
    addr: SocketAddr,
    app: Router,
    tls: Option<Arc<rustls::ServerConfig>>,
    state: Arc<FaultState>,
    stop: CancellationToken,
    tasks: TaskTracker,
) {
    let mut changes = state.watch();
    let mut listener = Some(listener);
    loop {
        if state.refuses_all() {
            if listener.take().is_some() {
                state.record_fired("refuse");
            }
            tokio::select! {
                () = stop.cancelled() => return,
                r = changes.changed() => if r.is_err() { return },
            }
            continue;
        }
        let current = match listener.take() {
            Some(l) => l,
            None => match TcpListener::bind(addr).await {
                Ok(l) => l,
                Err(e) => {
                    tracing::warn!(%addr, error = %e, "cannot re-bind; retrying");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let generation = stop.child_token();
        let faulty = FaultListener::new(current, state.clone(), generation.clone());
        match &tls {
            None => tasks.spawn(serve(faulty, app.clone(), generation.clone())),
            Some(config) => {
                match TlsListener::new(faulty, config.clone(), &tasks, generation.clone()) {
                    Ok(secure) => tasks.spawn(serve(secure, app.clone(), generation.clone())),
                    Err(e) => {
                        tracing::warn!(%addr, error = %e, "cannot serve TLS; retrying");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                }
            }
        };
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                r = changes.changed() => {
                    if r.is_err() {
                        return;
                    }
                    if state.refuses_all() {
                        generation.cancel();
                        state.record_fired("refuse");
                        break;
                    }
                }
            }
        }
    }
}

/// Serves `app` on `listener` until `generation` is cancelled (then drains gracefully).
async fn serve<L>(listener: L, app: Router, generation: CancellationToken)
where
    L: axum::serve::Listener,
    L::Addr: std::fmt::Debug,
{
    let serve = axum::serve(listener, app).with_graceful_shutdown(generation.cancelled_owned());
    if let Err(e) = serve.await {
        tracing::warn!("mock-mcp HTTP server error: {e}");
    }
}

fn mcp_router(
    config: &MockConfig,
    tools: MockTools,
    token: CancellationToken,
) -> (Router, Option<Arc<LocalSessionManager>>) {
    let http_config = StreamableHttpServerConfig::default().with_cancellation_token(token);
    // one handler per session (per request when stateless): own log level and subscriptions
    let factory = move || Ok(tools.new_session());
    if config.stateless {
        let http_config = http_config
            .with_legacy_session_mode(false)
            .with_json_response(true);
        let service = StreamableHttpService::new(
            factory,
            Arc::new(NeverSessionManager::default()),
            http_config,
        );
        (Router::new().nest_service("/mcp", service), None)
    } else {
        let sessions = Arc::new(LocalSessionManager::default());
        let service = StreamableHttpService::new(factory, sessions.clone(), http_config);
        (Router::new().nest_service("/mcp", service), Some(sessions))
    }
}
