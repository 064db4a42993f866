//! The one [`ServerHandler`] impl of [`MockTools`]: tools (routed, with latency), resources
//! (paginated, subscribable), prompts (paginated), completions, logging,
//! `subscriptions/listen`, and what a session starts on `notifications/initialized` (the
//! `list-changed-every` ticker, the `--roots-on-initialized` request).

// rmcp marks logging deprecated (SEP-2577); the mock serves it on purpose.
#![allow(deprecated)]

use std::{
    sync::{Arc, atomic::Ordering},
    time::Duration,
};

use rmcp::{
    ErrorData as McpError, RoleServer, ServerHandler,
    handler::server::tool::ToolCallContext,
    model::{
        CallToolRequestParams, CallToolResponse, CancelledNotificationParam, CompleteRequestParams,
        CompleteResult, GetPromptRequestParams, GetPromptResponse, Implementation,
        ListPromptsResult, ListResourceTemplatesResult, ListResourcesResult,
        PaginatedRequestParams, ReadResourceRequestParams, ReadResourceResponse,
        ServerCapabilities, ServerConfig, SetLevelRequestMethod, SetLevelRequestParams,
        SubscribeRequestParams, SubscriptionFilter, UnsubscribeRequestParams,
    },
    service::{NotificationContext, Peer, RequestContext, SubscriptionContext},
    tool_handler,
};
use tokio_util::sync::CancellationToken;

use crate::faults::{FaultKind, FaultState};
use crate::paging::page;
use crate::session::is_2026_era;
use crate::tools::MockTools;
use crate::{prompts, resources};

fn cursor(request: &Option<PaginatedRequestParams>) -> Option<&str> {
    request.as_ref().and_then(|r| r.cursor.as_deref())
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for MockTools {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_logging()
                .enable_completions()
                .enable_prompts()
                .enable_prompts_list_changed()
                .enable_resources()
                .enable_resources_list_changed()
                .enable_resources_subscribe()
                .enable_tools()
                .enable_tool_list_changed()
                .build(),
        )
        .with_server_info(Implementation::new("mock-mcp", env!("CARGO_PKG_VERSION")))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        let _in_flight = self.count_call();
        let watch = self.state.calls().watch(context.ct.clone());
        if let Some(delay) = self.state.sample_latency(&request.name) {
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                () = context.ct.cancelled() => {
                    watch.finish(false);
                    return Err(McpError::internal_error("request cancelled", None));
                }
            }
        }
        let tcc = ToolCallContext::new(self, request, context);
        let result = self.tool_router.call(tcc).await;
        watch.finish(result.is_ok());
        result
    }

    async fn on_cancelled(
        &self,
        _notification: CancelledNotificationParam,
        _context: NotificationContext<RoleServer>,
    ) {
        // rmcp has already cancelled the request's `context.ct` (if it was in flight)
        self.state.calls().cancel_received();
    }

    async fn list_resources(
        &self,
        request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, McpError> {
        let (items, next) = page(&resources::list(), cursor(&request), self.page_size)?;
        let mut result = ListResourcesResult::with_all_items(items);
        result.next_cursor = next;
        Ok(result)
    }

    async fn list_resource_templates(
        &self,
        request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, McpError> {
        let (items, next) = page(&resources::templates(), cursor(&request), self.page_size)?;
        let mut result = ListResourceTemplatesResult::with_all_items(items);
        result.next_cursor = next;
        Ok(result)
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, McpError> {
        let counter = self.shared.counter.load(Ordering::SeqCst);
        resources::read(&request.uri, counter).map(Into::into)
    }

    async fn subscribe(
        &self,
        request: SubscribeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        if !resources::exists(&request.uri) {
            return Err(resources::not_found(&request.uri));
        }
        self.shared
            .subscriptions
            .subscribe(self.session.id, &context.peer, &request.uri);
        Ok(())
    }

    async fn unsubscribe(
        &self,
        request: UnsubscribeRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        self.shared
            .subscriptions
            .unsubscribe(self.session.id, &request.uri);
        Ok(())
    }

    fn accepted_subscription_filter(
        &self,
        requested: &SubscriptionFilter,
    ) -> Option<SubscriptionFilter> {
        // rmcp intersects this with what get_info advertises; only readable URIs are kept.
        let mut accepted = requested.clone();
        accepted.resource_subscriptions = accepted
            .resource_subscriptions
            .map(|uris| {
                uris.into_iter()
                    .filter(|uri| resources::exists(uri))
                    .collect::<Vec<_>>()
            })
            .filter(|uris| !uris.is_empty());
        Some(accepted)
    }

    async fn listen(&self, context: SubscriptionContext) -> Result<(), McpError> {
        let _registered = self.shared.subscriptions.listen(context.sink().clone());
        tokio::select! {
            () = context.cancelled() => {}
            () = self.stop.cancelled() => {}
        }
        Ok(())
    }

    async fn list_prompts(
        &self,
        request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListPromptsResult, McpError> {
        let (items, next) = page(&prompts::list(), cursor(&request), self.page_size)?;
        let mut result = ListPromptsResult::with_all_items(items);
        result.next_cursor = next;
        Ok(result)
    }

    async fn get_prompt(
        &self,
        request: GetPromptRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<GetPromptResponse, McpError> {
        prompts::get(&request.name, request.arguments.as_ref()).map(Into::into)
    }

    async fn complete(
        &self,
        request: CompleteRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<CompleteResult, McpError> {
        Ok(prompts::complete(&request))
    }

    async fn set_level(
        &self,
        request: SetLevelRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        // 2026-07-28 has no session level: each request names its own (`_meta` logLevel).
        if is_2026_era(&context) {
            return Err(McpError::method_not_found::<SetLevelRequestMethod>());
        }
        self.session.set_log_level(request.level);
        Ok(())
    }

    async fn on_initialized(&self, context: NotificationContext<RoleServer>) {
        let peer = context.peer;
        if self.roots_on_initialized {
            self.ask_initial_roots(&peer);
        }
        let state = self.state.clone();
        let stop = self.stop.clone();
        self.tasks.spawn(list_changed_ticker(peer, state, stop));
    }
}

/// Sends `tools/list_changed` to one session every period while `list-changed-every` is
/// active; idles while it is not; ends when the session closes or `stop` fires.
async fn list_changed_ticker(
    peer: Peer<RoleServer>,
    state: Arc<FaultState>,
    stop: CancellationToken,
) {
    let mut faults = state.watch();
    loop {
        let period = state.active(|k| matches!(k, FaultKind::ListChangedEvery(_)));
        let wait = match period {
            Some(FaultKind::ListChangedEvery(d)) => d,
            _ => Duration::from_secs(1),
        };
        tokio::select! {
            () = stop.cancelled() => return,
            _ = faults.changed() => continue,
            () = tokio::time::sleep(wait) => {}
        }
        if peer.is_transport_closed() {
            return;
        }
        if period.is_some()
            && state
                .fire(|k| matches!(k, FaultKind::ListChangedEvery(_)))
                .is_some()
            && peer.notify_tool_list_changed().await.is_err()
        {
            return;
        }
    }
}
