//! `POST|GET|DELETE /mcp/{instance_id}`: authenticate, load the instance, read a POST's body
//! once at the limit and check it is one JSON-RPC message ([`jsonrpc`]), apply the session cap
//! and memory shedding to new sessions, refuse a session this key did not open (404, as for an
//! unknown session), hold the request's id in its session ([`inflight`]), then hand the
//! request to the instance's rmcp service with the config it loaded ([`AdmittedConfig`]: one
//! load per request), the key it admitted ([`AdmittedKey`]: a new session belongs to it) and a
//! [`ClientGone`] token that is cancelled when the exchange ends. rmcp's 406/415 (`Accept`,
//! `Content-Type`) keep their status and get a JSON-RPC body.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Path, Request, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;

use super::Gateway;
use super::auth;
use super::inflight::HeldId;
use super::jsonrpc::{self, Message, Rejected};
use super::refusal::Refusal;
use crate::data::cache::ConfigError;
use crate::mcp::error::Refusal as RpcRefusal;
use crate::mcp::{AdmittedConfig, AdmittedKey, ClientGone};

pub async fn mcp(
    State(state): State<Arc<Gateway>>,
    Path(instance_id): Path<String>,
    request: Request,
) -> Response {
    match admit(&state, &instance_id, request).await {
        Ok((request, held)) => serve(&state, &instance_id, request, held).await,
        Err(refusal) => refusal.into_response(),
    }
}

/// Everything that may refuse the request before MCP: draining, the key, the instance, a POST
/// body past the limit or not one JSON-RPC message, new sessions past the cap or under memory
/// pressure, a session this key did not open here, an id already in flight in the session.
async fn admit(
    state: &Gateway,
    instance_id: &str,
    request: Request,
) -> Result<(Request, Option<HeldId>), Refusal> {
    if state.shutdown.is_cancelled() {
        return Err(Refusal::Draining { retry: true });
    }
    let key = auth::extract_key(request.headers(), request.uri().query());
    let record = auth::authenticate(&state.caches.auth, instance_id, key.as_deref())
        .await
        .inspect_err(|e| {
            state.metrics.request("auth", "refused");
            let client = request.extensions().get::<ConnectInfo<SocketAddr>>();
            let client = client.map(|c| c.0);
            auth::log_refusal(&state.refused_keys, instance_id, e, key.as_deref(), client);
        })?;
    drop(key);
    let config = state
        .caches
        .configs
        .get(instance_id)
        .await
        .map_err(|e| match e.as_ref() {
            ConfigError::Missing => Refusal::NoSuchInstance,
            ConfigError::Store(e) => {
                tracing::error!(error = %e, "config load failed");
                Refusal::ConfigUnavailable
            }
        })?;
    state.usage.record(&record.id);
    let (mut request, message) = read_message(request, state.limits.max_body_bytes).await?;
    // a POST `initialize` without `Mcp-Session-Id` opens a session
    let opens_session = message.as_ref().is_some_and(Message::is_initialize)
        && !request.headers().contains_key("mcp-session-id");
    if opens_session && state.sessions.at_capacity() {
        return Err(Refusal::SessionCap);
    }
    if opens_session && state.memory.under_pressure() {
        return Err(Refusal::SessionMemory);
    }
    // A session belongs to the key that opened it: on one another key opened, or one this
    // replica does not hold (another replica's, or one that died with a restart), every
    // request is 404 with rmcp's own unknown-session answer (for a DELETE rmcp would answer
    // 202), so sessions cannot be probed with another key.
    if let Some(id) = request.headers().get("mcp-session-id") {
        let owner = id
            .to_str()
            .ok()
            .and_then(|id| state.instances.session_owner(instance_id, id));
        if !owner.is_some_and(|owner| bool::from(owner.ct_eq(&record.key_hash))) {
            return Err(Refusal::UnknownSession);
        }
    }
    let held = hold_id(state, instance_id, &request, message.as_ref())?;
    request.extensions_mut().insert(AdmittedConfig(config));
    request
        .extensions_mut()
        .insert(AdmittedKey(record.key_hash));
    Ok((request, held))
}

/// Hands an admitted request to the instance's service; the [`ClientGone`] guard and the
/// request's [`HeldId`] ride with the response body, so the token is cancelled and the id
/// freed when the body ends or the client goes away.
async fn serve(
    state: &Gateway,
    instance_id: &str,
    mut request: Request,
    held: Option<HeldId>,
) -> Response {
    let gone = ClientGone::default();
    let guard = gone.0.clone().drop_guard();
    // the response's guard cancels nothing: work for a client that went away runs on
    #[cfg(feature = "planted-leaks")]
    let guard = if crate::ops::planted::active(crate::ops::planted::Leak::SseTask) {
        std::mem::forget(guard);
        tokio_util::sync::CancellationToken::new().drop_guard()
    } else {
        guard
    };
    request.extensions_mut().insert(gone);
    let stream_of = (request.method() == Method::GET)
        .then(|| session_id(&request).map(str::to_string))
        .flatten();
    let service = state.instances.service(instance_id);
    let response = service.handle(request).await;
    let status = response.status();
    if status == StatusCode::NOT_ACCEPTABLE || status == StatusCode::UNSUPPORTED_MEDIA_TYPE {
        // rmcp's text answer to a wrong `Accept` or `Content-Type`, in its own words
        let text = axum::body::to_bytes(axum::body::Body::new(response.into_body()), 4096).await;
        let message = text.map_or_else(
            |_| status.to_string(),
            |t| String::from_utf8_lossy(&t).into_owned(),
        );
        return Refusal::Media { status, message }.into_response();
    }
    let opened = status.is_success();
    response.map(|body| {
        let body = axum::body::Body::new(GuardedBody {
            inner: axum::body::Body::new(body),
            _guard: guard,
            _held: held,
        });
        match stream_of {
            // a session's GET event stream that opened: the newest one wins
            Some(session) if opened => state.streams.claim(instance_id, &session, body),
            _ => body,
        }
    })
}

fn session_id(request: &Request) -> Option<&str> {
    request
        .headers()
        .get("mcp-session-id")
        .and_then(|v| v.to_str().ok())
}

/// A response body that cancels [`ClientGone`] and frees its request's id when dropped; frames
/// and size hints (so a JSON response keeps its `Content-Length`) pass through unchanged.
struct GuardedBody {
    inner: axum::body::Body,
    _guard: tokio_util::sync::DropGuard,
    _held: Option<HeldId>,
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

/// A POST's body, read once at `limit` (chunked too: past it is 413, not rmcp's 500) and
/// checked as one JSON-RPC message, then put back for rmcp; other methods pass unread.
async fn read_message(
    request: Request,
    limit: usize,
) -> Result<(Request, Option<Message>), Refusal> {
    if request.method() != Method::POST {
        return Ok((request, None));
    }
    let (parts, body) = request.into_parts();
    let bytes = axum::body::to_bytes(body, limit)
        .await
        .map_err(|e| unreadable(&e))?;
    let message = jsonrpc::check(&bytes)?;
    let request = Request::from_parts(parts, axum::body::Body::from(bytes));
    Ok((request, Some(message)))
}

/// A body that could not be read: past the limit (ours, or the router's body-limit layer's on
/// a chunked body) is 413; anything else (the client broke off) a parse error.
fn unreadable(e: &axum::Error) -> Refusal {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(c) = cause {
        if c.is::<http_body_util::LengthLimitError>() {
            return Refusal::BodyTooLarge;
        }
        cause = c.source();
    }
    let why = RpcRefusal::NotJson(format!("the request body could not be read: {e}"));
    Rejected { id: None, why }.into()
}

/// Holds a session request's id while its response runs; refused if the session has that id
/// in flight already (rmcp would route both answers to the second and leave the first hanging).
/// A request without `Mcp-Session-Id` (2026-07-28, sessionless) is its own exchange in rmcp
/// and holds nothing.
fn hold_id(
    state: &Gateway,
    instance_id: &str,
    request: &Request,
    message: Option<&Message>,
) -> Result<Option<HeldId>, Refusal> {
    let id = message.and_then(|m| m.request_id.as_ref());
    let (Some(id), Some(session)) = (id, session_id(request)) else {
        return Ok(None);
    };
    match state.inflight.hold(instance_id, session, id) {
        Some(held) => Ok(Some(held)),
        None => {
            let shown = id.clone().into_json_value().to_string();
            let why = RpcRefusal::DuplicateId(shown);
            Err(Rejected {
                id: Some(id.clone()),
                why,
            }
            .into())
        }
    }
}
