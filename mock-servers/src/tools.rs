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
    service::RequestContext,
    tool, tool_handler, tool_router,
};
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

/// The mock's [`ServerHandler`]: tools `echo`, `add`, `sleep` and `poke`.
///
/// Cheap to clone; clones share the `tools/call` counter and the router.
#[derive(Debug, Clone)]
pub struct MockTools {
    calls: Arc<AtomicU64>,
    in_flight: Arc<AtomicU64>,
    tool_router: Arc<ToolRouter<MockTools>>,
}

impl Default for MockTools {
    fn default() -> Self {
        Self::new(Arc::new(AtomicU64::new(0)))
    }
}

impl MockTools {
    /// Creates the handler; every `tools/call` received increments `calls`.
    pub fn new(calls: Arc<AtomicU64>) -> Self {
        Self {
            calls,
            in_flight: Arc::new(AtomicU64::new(0)),
            tool_router: Arc::new(Self::tool_router()),
        }
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
        let tcc = ToolCallContext::new(self, request, context);
        self.tool_router.call(tcc).await
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
