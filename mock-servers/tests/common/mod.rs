//! Helpers shared by the integration tests (included via `mod common;`).
#![allow(dead_code)]

use rmcp::{
    model::{CallToolRequestParams, CallToolResult},
    service::{RoleClient, RunningService, Service},
};
use serde_json::{Map, Value};

/// Calls `name` with `args` (a JSON object) and returns the result.
pub async fn call<S: Service<RoleClient>>(
    client: &RunningService<RoleClient, S>,
    name: &'static str,
    args: Value,
) -> CallToolResult {
    let args: Map<String, Value> = serde_json::from_value(args).expect("args must be an object");
    client
        .call_tool(CallToolRequestParams::new(name).with_arguments(args))
        .await
        .unwrap_or_else(|e| panic!("tools/call {name} failed: {e}"))
}

/// The concatenated text content of a tool result.
pub fn text(result: &CallToolResult) -> String {
    assert_ne!(
        result.is_error,
        Some(true),
        "tool returned an error: {result:?}"
    );
    result
        .content
        .iter()
        .filter_map(|c| c.as_text().map(|t| t.text.clone()))
        .collect()
}

// ---------------------------------------------------------------------------------------
// A recording client for the MCP surface tests.
// ---------------------------------------------------------------------------------------

#[allow(unused_imports)]
pub use mock_mcp::recorder::{Client, Event, ROOTS, Recorder, connect, connect_with, discover};

/// The text of a tool result that may be a tool error.
pub fn any_text(result: &CallToolResult) -> String {
    result
        .content
        .iter()
        .filter_map(|c| c.as_text().map(|t| t.text.clone()))
        .collect()
}

/// The JSON-RPC error inside a failed request.
pub fn mcp_error(error: rmcp::ServiceError) -> rmcp::ErrorData {
    match error {
        rmcp::ServiceError::McpError(e) => e,
        other => panic!("expected a JSON-RPC error, got {other}"),
    }
}
