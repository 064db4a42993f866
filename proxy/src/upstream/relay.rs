//! What an upstream sends back on its own, routed to the downstream caller it belongs to:
//! `notifications/progress` and server→client requests (`sampling/createMessage`,
//! `elicitation/create`, `roots/list`).
//!
//! Every upstream request the proxy forwards on behalf of a downstream request is registered in
//! its connection's [`Inflight`] table for as long as it runs (an [`InflightGuard`] owns the
//! entry). rmcp gives each upstream request its own progress token and records, on a server
//! request that arrived on a POST's event stream, which of our requests that stream belongs to
//! ([`InboundStreamOrigin`]); both lead back to the downstream caller here.
//!
//! Ownership: an entry lives exactly as long as the forwarded request's future (the guard's
//! drop removes it), so a late message for a finished request finds nothing and is dropped.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rmcp::RoleServer;
use rmcp::model::{ProgressToken, RequestId, RequestMetaObject, ServerRequest};
use rmcp::service::{
    InboundStreamOrigin, OriginatingRequestId, Peer, RequestContext, ServiceError,
};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// `_meta` keys that describe the downstream hop itself (the 2026-07-28 per-request metadata,
/// the progress token); they are not forwarded, the upstream hop has its own.
const HOP_META_PREFIX: &str = "io.modelcontextprotocol/";

/// The downstream request an upstream request was made for.
#[derive(Clone)]
pub struct Downstream {
    pub peer: Peer<RoleServer>,
    /// The caller's request; `None` for a message to a session as a whole (its GET stream).
    pub request_id: Option<RequestId>,
    /// The downstream caller's progress token, if it asked for progress.
    pub progress_token: Option<ProgressToken>,
}

impl Downstream {
    pub fn of(ctx: &RequestContext<RoleServer>) -> Self {
        Self {
            peer: ctx.peer.clone(),
            request_id: Some(ctx.id.clone()),
            progress_token: ctx.meta.get_progress_token(),
        }
    }

    /// Sends a server→client request to this caller, on the event stream of its request
    /// (rmcp's session routes a request marked with [`OriginatingRequestId`] there). Runs on
    /// `tracker`, outside the upstream handler's task, whose own originating id rmcp would
    /// otherwise stamp on it. Bounded by `timeout` and by `cancel` (the upstream gave up).
    pub async fn request(
        &self,
        mut request: ServerRequest,
        tracker: &TaskTracker,
        timeout: Duration,
        cancel: CancellationToken,
    ) -> Result<rmcp::model::ClientResult, ServiceError> {
        use rmcp::model::GetExtensions;
        if let Some(id) = &self.request_id {
            request
                .extensions_mut()
                .insert(OriginatingRequestId(id.clone()));
        }
        let peer = self.peer.clone();
        let task = tracker.spawn(async move {
            tokio::select! {
                r = tokio::time::timeout(timeout, peer.send_request(request)) => {
                    r.unwrap_or(Err(ServiceError::Timeout { timeout }))
                }
                _ = cancel.cancelled() => Err(ServiceError::Cancelled {
                    reason: Some("the upstream cancelled its request".into()),
                }),
            }
        });
        task.await.unwrap_or(Err(ServiceError::TransportClosed))
    }
}

/// The forwarded requests of one upstream connection that are still running.
#[derive(Default)]
pub struct Inflight {
    inner: Mutex<Entries>,
}

#[derive(Default)]
struct Entries {
    by_request: HashMap<RequestId, Arc<Downstream>>,
    by_progress: HashMap<ProgressToken, RequestId>,
}

impl Inflight {
    /// Registers upstream request `id` (with rmcp's progress token `token`) as made for
    /// `downstream`, until the guard drops.
    pub fn register(
        self: &Arc<Self>,
        id: RequestId,
        token: ProgressToken,
        downstream: Downstream,
    ) -> InflightGuard {
        let mut entries = self.lock();
        entries.by_progress.insert(token.clone(), id.clone());
        entries.by_request.insert(id.clone(), Arc::new(downstream));
        InflightGuard {
            table: self.clone(),
            id,
            token,
        }
    }

    /// Who should get progress reported under the upstream token `token`.
    pub fn by_progress(&self, token: &ProgressToken) -> Option<Arc<Downstream>> {
        let entries = self.lock();
        let id = entries.by_progress.get(token)?;
        entries.by_request.get(id).cloned()
    }

    /// The downstream caller a server request belongs to: the request whose event stream it
    /// arrived on, else the only request in flight (stdio has no streams; neither does a
    /// per-request connection need one). `None` when it cannot be told.
    pub fn owner_of(&self, ctx: &RequestContext<rmcp::RoleClient>) -> Option<Arc<Downstream>> {
        let entries = self.lock();
        match ctx.extensions.get::<InboundStreamOrigin>() {
            Some(InboundStreamOrigin::OutboundRequest(id)) => entries.by_request.get(id).cloned(),
            _ if entries.by_request.len() == 1 => entries.by_request.values().next().cloned(),
            _ => None,
        }
    }

    pub fn len(&self) -> usize {
        self.lock().by_request.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Entries> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Owns one [`Inflight`] entry; dropping it (the request finished, failed, timed out or was
/// cancelled) removes it.
pub struct InflightGuard {
    table: Arc<Inflight>,
    id: RequestId,
    token: ProgressToken,
}

impl Drop for InflightGuard {
    fn drop(&mut self) {
        let mut entries = self.table.lock();
        entries.by_request.remove(&self.id);
        entries.by_progress.remove(&self.token);
    }
}

/// The downstream request's `_meta` as it should reach the upstream: the caller's own keys
/// pass unchanged; the hop's (progress token, per-request protocol metadata) do not.
pub fn forwarded_meta(meta: &RequestMetaObject) -> Option<RequestMetaObject> {
    let mut out = RequestMetaObject::new();
    for (key, value) in meta.iter() {
        if key == "progressToken" || key.starts_with(HOP_META_PREFIX) {
            continue;
        }
        out.insert(key.clone(), value.clone());
    }
    (!out.is_empty()).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_metadata_is_not_forwarded() {
        let mut meta = RequestMetaObject::new();
        meta.set_progress_token(ProgressToken(rmcp::model::NumberOrString::Number(7)));
        meta.set_protocol_version(rmcp::model::ProtocolVersion::V_2026_07_28);
        meta.insert("app/trace".into(), serde_json::json!({"id": "t-1"}));
        let out = forwarded_meta(&meta).expect("the caller's key stays");
        assert_eq!(out.len(), 1);
        assert_eq!(
            out.get("app/trace"),
            Some(&serde_json::json!({"id": "t-1"}))
        );
        let mut only_hop = RequestMetaObject::new();
        only_hop.set_progress_token(ProgressToken(rmcp::model::NumberOrString::Number(1)));
        assert!(forwarded_meta(&only_hop).is_none());
    }
}
