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
