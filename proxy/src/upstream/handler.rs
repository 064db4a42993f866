//! `UpstreamHandler`: the proxy's client-side handler for one upstream connection. It carries
//! what the upstream sends on its own to where it belongs downstream:
//! - `list_changed` (tools, resources, prompts) → the instance's caches and sessions;
//! - `resources/updated` → the sessions subscribed to the URI; log messages → the sessions
//!   whose level admits them (only the owning session, for a `per-session` connection);
//! - progress → the caller of the request it reports on;
//! - `sampling/createMessage`, `elicitation/create`, `roots/list` → the caller whose request
//!   caused them, answered back; on a connection a session owns, any of them goes to that
//!   session. One that cannot be tied to a caller gets a JSON-RPC error and is counted.
//!
//! Everything that arrives once the connection is past `active` (closing, closed) is dropped.

// Sampling, roots and logging are deprecated by SEP-2577 but are part of 2025-11-25, which
// this proxy carries.
#![allow(deprecated)]

use std::sync::Arc;
use std::time::Duration;

use rmcp::model::{
    ClientConfig, ClientResult, CreateMessageRequestParams, CreateMessageResult,
    ElicitRequestParams, ElicitResult, ErrorData, Implementation, ListRootsResult,
    LoggingMessageNotificationParam, ProgressNotificationParam, Request, RequestNoParam,
    ResourceUpdatedNotificationParam, ServerRequest,
};
use rmcp::service::{NotificationContext, RequestContext, RoleServer, ServiceError};
use rmcp::{ClientHandler, RoleClient};
use tokio_util::task::TaskTracker;

use super::conn_state::{ConnState, StateCell};
use super::events::{ListKind, SessionEvents};
use super::relay::{Downstream, Inflight};
use crate::ops::metrics::Metrics;

/// How long one notification to one downstream caller may take before it is given up.
const NOTIFY_TIMEOUT: Duration = Duration::from_secs(1);

/// A downstream session that owns the connection (`per-session` mode).
#[derive(Clone)]
pub struct SessionLink {
    pub id: u64,
    pub peer: rmcp::service::Peer<RoleServer>,
}

pub struct UpstreamHandler {
    pub(super) upstream: String,
    pub(super) instance_id: String,
    pub(super) sessions: Arc<dyn SessionEvents>,
    pub(super) state: Arc<StateCell>,
    pub(super) inflight: Arc<Inflight>,
    pub(super) session: Option<SessionLink>,
    pub(super) metrics: Arc<Metrics>,
    pub(super) tracker: TaskTracker,
    /// Bound on one server→client request (the downstream client's answer).
    pub(super) request_timeout: Duration,
}

impl UpstreamHandler {
    fn closed(&self) -> bool {
        self.state.get() > ConnState::Active
    }

    fn only(&self) -> Option<u64> {
        self.session.as_ref().map(|s| s.id)
    }

    /// The caller a server request belongs to. The request may overtake the registration of
    /// the call that caused it by a few microseconds (rmcp hands us the request id only once
    /// the call is on its way), so a miss is retried briefly before it counts.
    async fn owner(&self, ctx: &RequestContext<RoleClient>) -> Option<Downstream> {
        for attempt in 0..5 {
            if let Some(d) = self.inflight.owner_of(ctx) {
                return Some(d.as_ref().clone());
            }
            if self.inflight.is_empty() && attempt > 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        self.session.as_ref().map(|s| Downstream {
            peer: s.peer.clone(),
            request_id: None,
            progress_token: None,
        })
    }

    /// Carries one server→client request to its downstream caller and brings the answer back.
    async fn relay(
        &self,
        method: &'static str,
        request: ServerRequest,
        ctx: RequestContext<RoleClient>,
        supported: impl Fn(&rmcp::model::ClientCapabilities) -> bool,
    ) -> Result<ClientResult, ErrorData> {
        let outcome = |o: &'static str| self.metrics.server_request(&self.upstream, method, o);
        if self.closed() {
            outcome("closed");
            return Err(RelayRefusal::Closing {
                method,
                upstream: &self.upstream,
            }
            .into());
        }
        let Some(target) = self.owner(&ctx).await else {
            outcome("unroutable");
            tracing::warn!(upstream = %self.upstream, method, "server request not tied to a call in flight; refused");
            return Err(RelayRefusal::Unroutable {
                method,
                upstream: &self.upstream,
            }
            .into());
        };
        if let Some(info) = target.peer.peer_info()
            && !supported(&info.capabilities)
        {
            outcome("unsupported");
            return Err(RelayRefusal::Undeclared { method }.into());
        }
        match target
            .request(request, &self.tracker, self.request_timeout, ctx.ct.clone())
            .await
        {
            Ok(result) => {
                outcome("ok");
                Ok(result)
            }
            Err(ServiceError::McpError(e)) => {
                outcome("error");
                Err(e)
            }
            Err(e) => {
                outcome("failed");
                Err(RelayRefusal::NoAnswer { method, error: e }.into())
            }
        }
    }
}

fn unexpected(method: &'static str) -> ErrorData {
    RelayRefusal::UnexpectedAnswer { method }.into()
}

/// Why a server→client request from an upstream is not answered by a downstream client; the
/// one place it becomes the JSON-RPC error the upstream gets.
enum RelayRefusal<'a> {
    /// The connection is closing.
    Closing {
        method: &'static str,
        upstream: &'a str,
    },
    /// Not tied to a call in flight on a connection several clients share.
    Unroutable {
        method: &'static str,
        upstream: &'a str,
    },
    /// The caller did not declare the capability.
    Undeclared { method: &'static str },
    /// The caller did not answer (gone, timed out, transport failed).
    NoAnswer {
        method: &'static str,
        error: ServiceError,
    },
    /// The caller answered with another kind of result.
    UnexpectedAnswer { method: &'static str },
}

impl From<RelayRefusal<'_>> for ErrorData {
    fn from(refusal: RelayRefusal<'_>) -> ErrorData {
        match refusal {
            RelayRefusal::Closing { method, upstream } => ErrorData::internal_error(
                format!("{method}: the proxy's connection to upstream {upstream:?} is closing"),
                None,
            ),
            RelayRefusal::Unroutable { method, upstream } => ErrorData::invalid_request(
                format!(
                    "{method} from upstream {upstream:?} is not tied to a request in flight, and the \
                     connection is shared by several clients: send it while handling a request \
                     (on that request's event stream)"
                ),
                None,
            ),
            RelayRefusal::Undeclared { method } => ErrorData::invalid_request(
                format!("{method}: the client behind the proxy did not declare that capability"),
                None,
            ),
            RelayRefusal::NoAnswer { method, error } => ErrorData::internal_error(
                format!("{method}: the client behind the proxy did not answer: {error}"),
                None,
            ),
            RelayRefusal::UnexpectedAnswer { method } => ErrorData::internal_error(
                format!("{method}: unexpected answer type from the client"),
                None,
            ),
        }
    }
}

impl ClientHandler for UpstreamHandler {
    fn get_info(&self) -> ClientConfig {
        ClientConfig::new(
            crate::domain::capabilities::client_capabilities(),
            Implementation::new("mcp-proxy", env!("CARGO_PKG_VERSION")),
        )
    }

    async fn create_message(
        &self,
        params: CreateMessageRequestParams,
        ctx: RequestContext<RoleClient>,
    ) -> Result<CreateMessageResult, ErrorData> {
        let request = ServerRequest::CreateMessageRequest(Request::new(params));
        match self
            .relay("sampling/createMessage", request, ctx, |c| {
                c.sampling.is_some()
            })
            .await?
        {
            ClientResult::CreateMessageResult(r) => Ok(*r),
            _ => Err(unexpected("sampling/createMessage")),
        }
    }

    async fn create_elicitation(
        &self,
        params: ElicitRequestParams,
        ctx: RequestContext<RoleClient>,
    ) -> Result<ElicitResult, ErrorData> {
        let request = ServerRequest::ElicitRequest(Request::new(params));
        match self
            .relay("elicitation/create", request, ctx, |c| {
                c.elicitation.is_some()
            })
            .await?
        {
            ClientResult::ElicitResult(r) => Ok(r),
            _ => Err(unexpected("elicitation/create")),
        }
    }

    async fn list_roots(
        &self,
        ctx: RequestContext<RoleClient>,
    ) -> Result<ListRootsResult, ErrorData> {
        let request = ServerRequest::ListRootsRequest(RequestNoParam {
            method: Default::default(),
            extensions: Default::default(),
        });
        match self
            .relay("roots/list", request, ctx, |c| c.roots.is_some())
            .await?
        {
            ClientResult::ListRootsResult(r) => Ok(r),
            _ => Err(unexpected("roots/list")),
        }
    }

    async fn on_progress(
        &self,
        mut params: ProgressNotificationParam,
        _ctx: NotificationContext<RoleClient>,
    ) {
        if self.closed() {
            return;
        }
        let mut target = self.inflight.by_progress(&params.progress_token);
        if target.is_none() {
            // the first report can overtake the call's registration (see `owner`)
            tokio::time::sleep(Duration::from_millis(10)).await;
            target = self.inflight.by_progress(&params.progress_token);
        }
        let Some(target) = target else {
            tracing::debug!(upstream = %self.upstream, "progress for no call in flight; dropped");
            return;
        };
        let Some(token) = target.progress_token.clone() else {
            return; // the caller did not ask for progress
        };
        params.progress_token = token;
        let _ = tokio::time::timeout(NOTIFY_TIMEOUT, target.peer.notify_progress(params)).await;
    }

    async fn on_logging_message(
        &self,
        params: LoggingMessageNotificationParam,
        _ctx: NotificationContext<RoleClient>,
    ) {
        if !self.closed() {
            self.sessions
                .log(&self.instance_id, self.only(), params)
                .await;
        }
    }

    async fn on_resource_updated(
        &self,
        params: ResourceUpdatedNotificationParam,
        _ctx: NotificationContext<RoleClient>,
    ) {
        if !self.closed() {
            self.sessions
                .resource_updated(&self.instance_id, self.only(), params)
                .await;
        }
    }

    async fn on_tool_list_changed(&self, _ctx: NotificationContext<RoleClient>) {
        self.list_changed(ListKind::Tools).await;
    }

    async fn on_resource_list_changed(&self, _ctx: NotificationContext<RoleClient>) {
        self.list_changed(ListKind::Resources).await;
    }

    async fn on_prompt_list_changed(&self, _ctx: NotificationContext<RoleClient>) {
        self.list_changed(ListKind::Prompts).await;
    }
}

impl UpstreamHandler {
    async fn list_changed(&self, kind: ListKind) {
        if self.closed() {
            tracing::debug!(instance = %self.instance_id, ?kind, "list_changed after close; dropped");
            return;
        }
        tracing::debug!(instance = %self.instance_id, ?kind, "upstream list changed");
        self.sessions
            .clone()
            .list_changed(&self.instance_id, kind)
            .await;
    }
}
