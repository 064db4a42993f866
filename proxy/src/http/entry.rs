//! `POST|GET|DELETE /mcp/{instance_id}`: authenticate, load the instance, apply the session
//! cap and memory shedding to new sessions, then hand the request to the instance's rmcp
//! service (which answers 406/415/413/400 for malformed MCP requests), with the config it
//! loaded ([`AdmittedConfig`]: one load per request), the key it admitted ([`AdmittedKey`]: a
//! new session belongs to it) and a [`ClientGone`] token that is cancelled when the exchange
//! ends. A request on a session this key did not open is 404, as for an unknown session.

use std::sync::Arc;

use axum::extract::{Path, Request, State};
use axum::http::Method;
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;

use super::Gateway;
use super::auth;
use super::refusal::Refusal;
use crate::data::cache::ConfigError;
use crate::mcp::{AdmittedConfig, AdmittedKey, ClientGone};

pub async fn mcp(
    State(state): State<Arc<Gateway>>,
    Path(instance_id): Path<String>,
    request: Request,
) -> Response {
    match admit(&state, &instance_id, request).await {
        Ok(request) => serve(&state, &instance_id, request).await,
        Err(refusal) => refusal.into_response(),
    }
}

/// Everything that may refuse the request before MCP: draining, the key, the instance, new
/// sessions past the cap or under memory pressure, a session this key did not open here.
async fn admit(state: &Gateway, instance_id: &str, request: Request) -> Result<Request, Refusal> {
    if state.shutdown.is_cancelled() {
        return Err(Refusal::Draining { retry: true });
    }
    let key = auth::extract_key(request.headers(), request.uri().query());
    let record = auth::authenticate(&state.caches.auth, instance_id, key.as_deref())
        .await
        .inspect_err(|_| state.metrics.request("auth", "refused"))?;
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
    let mut request = if state.sessions.at_capacity() {
        refuse_new_session(request, state.limits.max_body_bytes, Refusal::SessionCap).await?
    } else if state.memory.under_pressure() {
        refuse_new_session(request, state.limits.max_body_bytes, Refusal::SessionMemory).await?
    } else {
        request
    };
    // A session belongs to the key that opened it: on one another key opened, or one this
    // replica does not hold (another replica's, or one that died with a restart), every
    // request is 404 with rmcp's own unknown-session answer (for a DELETE rmcp would answer
    // 202), so sessions cannot be probed with another key.
    if let Some(id) = request.headers().get("mcp-session-id") {
        let owner = id
            .to_str()
            .ok()
            .and_then(|id| state.instances.session_owner(instance_id, id));
        let owned = owner.is_some_and(|owner| bool::from(owner.ct_eq(&record.key_hash)));
        if !owned {
            return Err(Refusal::UnknownSession);
        }
    }
    request.extensions_mut().insert(AdmittedConfig(config));
    request
        .extensions_mut()
        .insert(AdmittedKey(record.key_hash));
    Ok(request)
}

/// Hands an admitted request to the instance's service; the [`ClientGone`] guard rides with
/// the response body, so it is cancelled when the body ends or the client goes away.
async fn serve(state: &Gateway, instance_id: &str, mut request: Request) -> Response {
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
    let service = state.instances.service(instance_id);
    let response = service.handle(request).await;
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

/// At the session cap or under memory pressure: a request that would open a session (a POST
/// `initialize` without `Mcp-Session-Id`) is refused with `why`; any other request is passed
/// on unchanged (its body read and put back).
async fn refuse_new_session(
    request: Request,
    limit: usize,
    why: Refusal,
) -> Result<Request, Refusal> {
    if request.method() != Method::POST || request.headers().contains_key("mcp-session-id") {
        return Ok(request);
    }
    let (parts, body) = request.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, limit).await else {
        return Err(Refusal::BodyTooLarge);
    };
    #[derive(serde::Deserialize)]
    struct Body {
        method: Option<String>,
    }
    let initialize = serde_json::from_slice::<Body>(&bytes)
        .is_ok_and(|m| m.method.as_deref() == Some("initialize"));
    if initialize {
        return Err(why);
    }
    Ok(Request::from_parts(parts, axum::body::Body::from(bytes)))
}
