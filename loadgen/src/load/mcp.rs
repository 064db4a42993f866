//! The MCP wire as a load client speaks it: request bodies for both protocol eras, and the
//! validation of every answer (JSON or SSE) as JSON-RPC.
//!
//! Pure: no IO. The goose side (`load::session`) sends what this builds and hands back what came.

use serde_json::{Value, json};

use crate::scenario::Protocol;

/// `_meta` every 2026-07-28 request carries (that era has no session).
fn era_meta() -> Value {
    json!({
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientInfo": { "name": "mcp-loadgen", "version": env!("CARGO_PKG_VERSION") },
        "io.modelcontextprotocol/clientCapabilities": {}
    })
}

/// The body of a JSON-RPC request `id` for `method` in `protocol`'s era.
pub fn request(protocol: Protocol, id: u64, method: &str, params: Option<Value>) -> Value {
    let mut params = params.unwrap_or_else(|| json!({}));
    if protocol == Protocol::V2026_07_28 {
        params["_meta"] = era_meta();
    }
    json!({ "jsonrpc": "2.0", "id": id, "method": method, "params": params })
}

/// `notifications/cancelled` for our request `id` (both eras: a notification, no answer).
pub fn cancelled(protocol: Protocol, id: u64, reason: &str) -> Value {
    let mut params = json!({ "requestId": id, "reason": reason });
    if protocol == Protocol::V2026_07_28 {
        params["_meta"] = era_meta();
    }
    json!({ "jsonrpc": "2.0", "method": "notifications/cancelled", "params": params })
}

/// `initialize` (2025-11-25 era).
pub fn initialize(id: u64) -> Value {
    json!({ "jsonrpc": "2.0", "id": id, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25",
        "capabilities": {},
        "clientInfo": { "name": "mcp-loadgen", "version": env!("CARGO_PKG_VERSION") }
    }})
}

/// `notifications/initialized` (2025-11-25 era).
pub fn initialized() -> Value {
    json!({ "jsonrpc": "2.0", "method": "notifications/initialized" })
}

/// Why an answer is not a correct JSON-RPC response to our request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invalid {
    /// Not JSON, or no JSON-RPC message in the SSE stream.
    Unparsable(String),
    /// A response whose `id` is not ours.
    WrongId(String),
    /// Neither `result` nor `error`, or `jsonrpc` is not "2.0".
    NotJsonRpc(String),
}

impl Invalid {
    pub fn tag(&self) -> &'static str {
        match self {
            Invalid::Unparsable(_) => "unparsable response",
            Invalid::WrongId(_) => "wrong id",
            Invalid::NotJsonRpc(_) => "not JSON-RPC",
        }
    }

    pub fn detail(&self) -> &str {
        match self {
            Invalid::Unparsable(d) | Invalid::WrongId(d) | Invalid::NotJsonRpc(d) => d,
        }
    }
}

/// A valid JSON-RPC answer to our request.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    Result(Value),
    /// `error.code`, `error.message`.
    Error(i64, String),
}

impl Answer {
    /// A `tools/call` result flagged `isError` (a tool error, not a JSON-RPC error).
    pub fn is_tool_error(&self) -> bool {
        matches!(self, Answer::Result(r) if r.get("isError").and_then(Value::as_bool) == Some(true))
    }
}

/// Finds the response to request `id` in a body of `content_type` (`application/json`, or
/// `text/event-stream` whose events may also carry notifications and the empty priming
/// event) and checks it is JSON-RPC 2.0 with exactly one of `result` and `error`.
pub fn parse_answer(content_type: &str, body: &str, id: u64) -> Result<Answer, Invalid> {
    let messages: Vec<Value> = if content_type.starts_with("text/event-stream") {
        sse_data(body)
            .filter_map(|data| serde_json::from_str::<Value>(&data).ok())
            .collect()
    } else {
        match serde_json::from_str::<Value>(body) {
            Ok(v) => vec![v],
            Err(e) => return Err(Invalid::Unparsable(format!("{e}: {}", snippet(body)))),
        }
    };
    // Responses (with an `id`, no `method`); server requests and notifications are skipped.
    let mut responses = messages
        .into_iter()
        .filter(|m| m.get("method").is_none() && m.get("id").is_some());
    let Some(msg) = responses.next() else {
        return Err(Invalid::Unparsable(format!(
            "no JSON-RPC response in the body: {}",
            snippet(body)
        )));
    };
    if msg.get("id") != Some(&json!(id)) {
        return Err(Invalid::WrongId(format!(
            "expected id {id}, got {}",
            msg.get("id").cloned().unwrap_or(Value::Null)
        )));
    }
    if msg.get("jsonrpc") != Some(&json!("2.0")) {
        return Err(Invalid::NotJsonRpc("`jsonrpc` is not \"2.0\"".into()));
    }
    match (msg.get("result"), msg.get("error")) {
        (Some(r), None) => Ok(Answer::Result(r.clone())),
        (None, Some(e)) => Ok(Answer::Error(
            e.get("code").and_then(Value::as_i64).unwrap_or(0),
            e.get("message")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
        )),
        (Some(_), Some(_)) => Err(Invalid::NotJsonRpc("both `result` and `error`".into())),
        (None, None) => Err(Invalid::NotJsonRpc("neither `result` nor `error`".into())),
    }
}

/// The `data` of each SSE event (multi-line data joined with `\n`); empty events skipped.
fn sse_data(body: &str) -> impl Iterator<Item = String> {
    let body = body.replace("\r\n", "\n");
    let events: Vec<String> = body.split("\n\n").map(str::to_string).collect();
    events.into_iter().filter_map(|event| {
        let data: Vec<&str> = event
            .lines()
            .filter_map(|l| l.strip_prefix("data:"))
            .map(|d| d.strip_prefix(' ').unwrap_or(d))
            .collect();
        let joined = data.join("\n");
        (!joined.trim().is_empty()).then_some(joined)
    })
}

fn snippet(body: &str) -> String {
    let mut s: String = body.chars().take(120).collect();
    if body.len() > s.len() {
        s.push('…');
    }
    s
}

#[cfg(test)]
#[path = "mcp_tests.rs"]
mod tests;
