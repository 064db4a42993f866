//! The MCP tool set served by every transport of the mock.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use rmcp::{
    ErrorData as McpError, RoleServer, ServerHandler,
    handler::server::{router::tool::ToolRouter, tool::ToolCallContext, wrapper::Parameters},
    model::{
        CallToolRequestParams, CallToolResponse, Implementation, ServerCapabilities, ServerConfig,
    },
    service::{NotificationContext, Peer, RequestContext},
    tool, tool_handler, tool_router,
};
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use crate::faults::{FaultKind, FaultState};
use schemars::JsonSchema;
use serde::Deserialize;

/// Upper bound for the `sleep` tool, in milliseconds (10 minutes).
pub const MAX_SLEEP_MS: u64 = 600_000;

/// Arguments of the `echo` tool.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct EchoArgs {
    /// Text returned verbatim.
    pub text: String,
}

/// Arguments of the `add` tool.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct AddArgs {
    /// First addend.
    pub a: f64,
    /// Second addend.
    pub b: f64,
}

/// Arguments of the `sleep` tool.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct SleepArgs {
    /// How long to sleep, in milliseconds (capped at 600000).
    pub ms: u64,
}

/// The mock's [`ServerHandler`]: tools `echo`, `add`, `sleep` and `poke`, with the latency
/// and the `list-changed-every` fault of its [`FaultState`].
///
/// Cheap to clone; clones share the counters, the fault state and the router.
/// Ownership: the `list-changed-every` ticker of a session runs on `tasks` and ends when the
/// session's transport closes or `stop` is cancelled.
#[derive(Debug, Clone)]
pub struct MockTools {
    calls: Arc<AtomicU64>,
    in_flight: Arc<AtomicU64>,
    tool_router: Arc<ToolRouter<MockTools>>,
    state: Arc<FaultState>,
    tasks: TaskTracker,
    stop: CancellationToken,
}

impl Default for MockTools {
    fn default() -> Self {
        Self::new(Arc::default(), CancellationToken::new())
    }
}

impl MockTools {
    /// Creates the handler over `state`; background work stops when `stop` is cancelled.
    pub fn new(state: Arc<FaultState>, stop: CancellationToken) -> Self {
        Self {
            calls: Arc::new(AtomicU64::new(0)),
            in_flight: Arc::new(AtomicU64::new(0)),
            tool_router: Arc::new(Self::tool_router()),
            state,
            tasks: TaskTracker::new(),
            stop,
        }
    }

    /// The fault state this handler reads.
    pub fn state(&self) -> &Arc<FaultState> {
        &self.state
    }

    /// Background tasks (list_changed tickers) still running.
    pub fn background_tasks(&self) -> usize {
        self.tasks.len()
    }

    /// Number of `tools/call` requests received so far (by this handler and its clones).
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    /// Number of `tools/call` requests currently executing (by this handler and its clones).
    pub fn in_flight(&self) -> u64 {
        self.in_flight.load(Ordering::Relaxed)
    }
}

/// Decrements the in-flight gauge when a call finishes or its future is dropped.
struct InFlightGuard(Arc<AtomicU64>);

impl InFlightGuard {
    fn enter(gauge: &Arc<AtomicU64>) -> Self {
        gauge.fetch_add(1, Ordering::Relaxed);
        Self(gauge.clone())
    }
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Formats a number without a trailing `.0` for integral values (`2 + 3` → `"5"`).
fn format_number(n: f64) -> String {
    // `Display` for f64 already prints integral values without a fraction.
    n.to_string()
}

#[tool_router]
impl MockTools {
    /// Returns `text` unchanged.
    #[tool(description = "Echo the given text back")]
    async fn echo(&self, Parameters(EchoArgs { text }): Parameters<EchoArgs>) -> String {
        text
    }

    /// Returns the sum of `a` and `b`.
    #[tool(description = "Add two numbers and return the sum as text")]
    async fn add(&self, Parameters(AddArgs { a, b }): Parameters<AddArgs>) -> String {
        format_number(a + b)
    }

    /// Sleeps `ms` milliseconds unless the request is cancelled first.
    #[tool(description = "Sleep for `ms` milliseconds (max 600000), then reply")]
    async fn sleep(
        &self,
        Parameters(SleepArgs { ms }): Parameters<SleepArgs>,
        context: RequestContext<RoleServer>,
    ) -> Result<String, McpError> {
        let ms = ms.min(MAX_SLEEP_MS);
        tokio::select! {
            () = tokio::time::sleep(Duration::from_millis(ms)) => Ok(format!("slept {ms}ms")),
            () = context.ct.cancelled() => {
                tracing::debug!(ms, "sleep cancelled");
                Err(McpError::internal_error("request cancelled", None))
            }
        }
    }

    /// Sends `notifications/tools/list_changed` to the caller.
    #[tool(description = "Send notifications/tools/list_changed to the caller")]
    async fn poke(&self, context: RequestContext<RoleServer>) -> Result<String, McpError> {
        context
            .peer
            .notify_tool_list_changed()
            .await
            .map_err(|e| McpError::internal_error(format!("notify failed: {e}"), None))?;
        Ok("poked".to_string())
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for MockTools {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(
            ServerCapabilities::builder()
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
        self.calls.fetch_add(1, Ordering::Relaxed);
        let _in_flight = InFlightGuard::enter(&self.in_flight);
        if let Some(delay) = self.state.sample_latency(&request.name) {
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                () = context.ct.cancelled() => {
                    return Err(McpError::internal_error("request cancelled", None));
                }
            }
        }
        let tcc = ToolCallContext::new(self, request, context);
        self.tool_router.call(tcc).await
    }

    async fn on_initialized(&self, context: NotificationContext<RoleServer>) {
        let peer = context.peer;
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

#[cfg(test)]
mod tests {
    use super::format_number;

    #[test]
    fn integral_sums_have_no_fraction() {
        assert_eq!(format_number(2.0 + 3.0), "5");
        assert_eq!(format_number(-4.0), "-4");
        assert_eq!(format_number(0.5 + 2.0), "2.5");
        assert_eq!(format_number(1e21), "1000000000000000000000");
    }
}
