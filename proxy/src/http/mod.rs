//! The HTTP surface: routes (SPEC contract), the authenticated entry into each instance's rmcp
//! service ([`entry`]), the JSON-RPC envelope check of a POSTed message ([`jsonrpc`]), the
//! request ids in flight per session ([`inflight`]), the DNS-rebinding guard in front of it
//! ([`origin`]), API-key authentication ([`auth`]), the one mapping of a refusal to a status
//! ([`refusal`]), and the server that accepts and times client connections ([`server`],
//! [`head_timer`]).

pub mod auth;
pub mod entry;
pub mod head_timer;
pub mod inflight;
pub mod jsonrpc;
pub mod origin;
pub mod refusal;
pub mod server;
pub mod streams;

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use tokio_util::sync::CancellationToken;

use crate::data::cache::Caches;
use crate::data::store::Store;
use crate::data::usage::UsageRecorder;
use crate::mcp::instances::Instances;
use crate::ops::log_limit::LogLimiter;
use crate::ops::memory::MemoryGuard;
use crate::ops::metrics::Metrics;
use crate::sessions::Sessions;
use refusal::Refusal;

/// What the routes check before a request reaches MCP.
#[derive(Clone, Debug)]
pub struct HttpLimits {
    /// Request bodies past this are 413.
    pub max_body_bytes: usize,
    /// `Host` values the DNS-rebinding guard accepts.
    pub allowed_hosts: Vec<String>,
    /// `Origin` values the DNS-rebinding guard accepts (when one is sent).
    pub allowed_origins: Vec<String>,
}

/// What the routes work with; built by the composition root.
pub struct Gateway {
    pub limits: HttpLimits,
    pub metrics: Arc<Metrics>,
    pub store: Store,
    pub caches: Arc<Caches>,
    pub usage: Arc<UsageRecorder>,
    pub sessions: Arc<Sessions>,
    pub memory: Arc<MemoryGuard>,
    pub instances: Arc<Instances>,
    /// Request ids in flight per session (a duplicate is refused).
    pub inflight: Arc<inflight::InflightIds>,
    /// Each session's one GET event stream.
    pub streams: Arc<streams::StreamSlots>,
    /// Refused keys are logged at most once a second per reason.
    pub refused_keys: LogLimiter,
    /// Cancelled when shutdown starts: `/ready` and new MCP requests answer 503.
    pub shutdown: CancellationToken,
}

/// The routes. Everything but `/mcp/{instance_id}` is unauthenticated and touches no upstream.
pub fn router(state: Arc<Gateway>) -> Router {
    let limit = state.limits.max_body_bytes;
    Router::new()
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/metrics", get(metrics))
        .route(
            "/mcp/{instance_id}",
            any(entry::mcp).layer(axum::middleware::from_fn_with_state(
                state.clone(),
                origin::guard,
            )),
        )
        .fallback(|| async { Refusal::NoSuchRoute })
        .layer(tower_http::limit::RequestBodyLimitLayer::new(limit))
        .with_state(state)
}

/// The ops routes alone (`/health`, `/ready`, `/metrics`), for connections past the cap; any
/// other path is refused `too_many_connections`.
pub fn ops_router(state: Arc<Gateway>) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/metrics", get(metrics))
        .fallback(|| async { Refusal::ConnectionCap })
        .with_state(state)
}

async fn health() -> Response {
    axum::Json(serde_json::json!({ "status": "ok" })).into_response()
}

async fn ready(State(state): State<Arc<Gateway>>) -> Response {
    if state.shutdown.is_cancelled() {
        return Refusal::Draining { retry: false }.into_response();
    }
    if state.memory.under_pressure() {
        return Refusal::NotReadyMemory.into_response();
    }
    if !state.store.ping().await {
        return Refusal::DbUnreachable.into_response();
    }
    axum::Json(serde_json::json!({ "status": "ready" })).into_response()
}

async fn metrics(State(state): State<Arc<Gateway>>) -> Response {
    let m = &state.metrics;
    m.sessions.set(state.sessions.count() as i64);
    m.db_pool_size.set(state.store.pool_size() as i64);
    m.db_pool_idle.set(state.store.pool_idle() as i64);
    state.memory.sample();
    let mut response = m.render().into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    response
}
