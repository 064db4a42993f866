//! The one place an MCP request's failure becomes the JSON-RPC error its caller sees (what is
//! refused before MCP becomes an HTTP status in the HTTP layer's `refusal`).

use std::time::Duration;

use rmcp::model::{ErrorCode, ErrorData};
use serde_json::json;

use crate::data::cache::ConfigError;
use crate::domain::router::RouteError;
use crate::upstream::UpstreamError;

impl From<UpstreamError> for ErrorData {
    fn from(e: UpstreamError) -> ErrorData {
        let kind = e.kind();
        match e {
            // The upstream's own JSON-RPC error keeps its code; the message names the upstream.
            UpstreamError::Rpc { upstream, error } => ErrorData::new(
                error.code,
                format!("upstream {upstream:?}: {}", error.message),
                Some(json!({ "upstream": upstream, "kind": kind, "upstreamData": error.data })),
            ),
            UpstreamError::Connect { ref upstream, .. }
            | UpstreamError::ConnectTimeout { ref upstream, .. }
            | UpstreamError::Transport { ref upstream, .. }
            | UpstreamError::CallTimeout { ref upstream, .. }
            | UpstreamError::TooManyConnections { ref upstream, .. }
            | UpstreamError::GaveUp { ref upstream, .. }
            | UpstreamError::ShuttingDown { ref upstream }
            | UpstreamError::CredentialRefused { ref upstream, .. } => {
                let data = json!({ "upstream": upstream, "kind": kind });
                ErrorData::new(ErrorCode::INTERNAL_ERROR, e.to_string(), Some(data))
            }
            UpstreamError::CircuitOpen {
                ref upstream,
                retry_in,
            } => {
                let data = json!({ "upstream": upstream, "kind": kind,
                    "retryAfterSeconds": retry_in.as_secs().max(1) });
                ErrorData::new(ErrorCode::INTERNAL_ERROR, e.to_string(), Some(data))
            }
        }
    }
}

impl From<RouteError> for ErrorData {
    fn from(e: RouteError) -> ErrorData {
        ErrorData::invalid_params(e.to_string(), None)
    }
}

impl From<&ConfigError> for ErrorData {
    fn from(e: &ConfigError) -> ErrorData {
        match e {
            ConfigError::Missing => {
                ErrorData::invalid_request("this instance no longer exists", None)
            }
            ConfigError::Store(e) => {
                ErrorData::internal_error(format!("configuration unavailable: {e}"), None)
            }
        }
    }
}

/// Why the proxy itself refuses or ends an MCP request (not an upstream's failure). Handlers
/// return one of these; [`From<Refusal> for ErrorData`] is the only place it gets a code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The whole-request timeout passed.
    TimedOut(Duration),
    /// The client sent `notifications/cancelled`.
    Cancelled,
    /// The client's HTTP exchange ended.
    ClientGone,
    /// No upstream listed the URI or a template matching it; `down` names the upstreams that
    /// did not answer (so the catalog may be partial).
    UnknownResource { uri: String, down: Vec<String> },
    /// No upstream offers a prompt of this name.
    UnknownPrompt(String),
    /// A prompt name that cannot be routed (`message` says why, in the router's words).
    BadPromptName { name: String, message: String },
    /// A 2025-11-25-only request without a session (`what` says which and the alternative).
    NeedsSession(&'static str),
    /// `resources/subscribe` on an upstream connected per request.
    SubscribePerRequest { upstream: String },
    /// `completion/complete` for a prompt or template no upstream offers.
    NoCompletionTarget,
    /// A POSTed body that is not JSON (serde's words).
    NotJson(String),
    /// A JSON-RPC batch (an array): MCP 2025-06-18 and later have no batching.
    Batch,
    /// JSON that is not a JSON-RPC 2.0 message (`what` says which rule it breaks).
    NotJsonRpc(String),
    /// A known method whose params do not fit it (`message` names the field, in serde's words).
    InvalidParams { method: String, message: String },
    /// A request reusing the id of one still in flight in the same session.
    DuplicateId(String),
}

impl From<Refusal> for ErrorData {
    fn from(refusal: Refusal) -> ErrorData {
        match refusal {
            Refusal::TimedOut(timeout) => {
                ErrorData::internal_error(format!("request timed out after {timeout:?}"), None)
            }
            Refusal::Cancelled => {
                ErrorData::internal_error("request cancelled by the client", None)
            }
            Refusal::ClientGone => ErrorData::internal_error("the client went away", None),
            Refusal::UnknownResource { uri, down } => {
                let partial = if down.is_empty() {
                    String::new()
                } else {
                    format!(" (not answering now: {})", down.join(", "))
                };
                ErrorData::resource_not_found(
                    format!(
                        "unknown resource {uri:?}: no upstream of this instance listed it or a \
                         template matching it{partial}"
                    ),
                    Some(json!({ "uri": uri })),
                )
            }
            Refusal::UnknownPrompt(name) => ErrorData::invalid_params(
                format!("unknown prompt {name:?}"),
                Some(json!({ "prompt": name })),
            ),
            Refusal::BadPromptName { name, message } => {
                ErrorData::invalid_params(message, Some(json!({ "prompt": name })))
            }
            Refusal::NeedsSession(what) => ErrorData::invalid_request(what, None),
            Refusal::SubscribePerRequest { upstream } => ErrorData::invalid_request(
                format!(
                    "resources/subscribe: upstream {upstream:?} is connected per request, so no \
                     connection stays open to deliver updates (use \"shared\" or \"per-session\")"
                ),
                None,
            ),
            Refusal::NoCompletionTarget => ErrorData::invalid_params(
                "completion/complete: no upstream of this instance offers that prompt or resource template",
                None,
            ),
            Refusal::NotJson(e) => ErrorData::parse_error(format!("parse error: {e}"), None),
            Refusal::Batch => ErrorData::invalid_request(
                "invalid request: JSON-RPC batches are not supported (MCP 2025-06-18 removed \
                 batching); send one message per POST",
                None,
            ),
            Refusal::NotJsonRpc(what) => {
                ErrorData::invalid_request(format!("invalid request: {what}"), None)
            }
            Refusal::InvalidParams { method, message } => ErrorData::invalid_params(
                format!("invalid params: {message}"),
                Some(json!({ "method": method })),
            ),
            Refusal::DuplicateId(id) => ErrorData::invalid_request(
                format!("request id {id} is already in flight in this session"),
                None,
            ),
        }
    }
}

impl From<crate::domain::catalog::BadCursor> for ErrorData {
    fn from(e: crate::domain::catalog::BadCursor) -> ErrorData {
        ErrorData::invalid_params(e.to_string(), None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::catalog::BadCursor;

    #[test]
    fn every_refusal_has_its_code_and_names_the_problem() {
        let cases: [(ErrorData, i32, &str); 15] = [
            (
                Refusal::TimedOut(Duration::from_secs(2)).into(),
                -32603,
                "timed out after 2s",
            ),
            (Refusal::Cancelled.into(), -32603, "cancelled by the client"),
            (Refusal::ClientGone.into(), -32603, "went away"),
            (
                Refusal::UnknownResource {
                    uri: "x://y".into(),
                    down: vec!["b".into()],
                }
                .into(),
                -32002,
                "unknown resource \"x://y\"",
            ),
            (
                Refusal::UnknownPrompt("p".into()).into(),
                -32602,
                "unknown prompt \"p\"",
            ),
            (
                Refusal::BadPromptName {
                    name: "p".into(),
                    message: "bad prompt".into(),
                }
                .into(),
                -32602,
                "bad prompt",
            ),
            (
                Refusal::NeedsSession("needs a session").into(),
                -32600,
                "needs a session",
            ),
            (
                Refusal::SubscribePerRequest {
                    upstream: "u".into(),
                }
                .into(),
                -32600,
                "connected per request",
            ),
            (
                Refusal::NoCompletionTarget.into(),
                -32602,
                "completion/complete",
            ),
            (
                BadCursor("o:9".into()).into(),
                -32602,
                "invalid cursor \"o:9\"",
            ),
            (
                Refusal::NotJson("EOF while parsing".into()).into(),
                -32700,
                "parse error: EOF while parsing",
            ),
            (Refusal::Batch.into(), -32600, "batches are not supported"),
            (
                Refusal::NotJsonRpc("`jsonrpc` must be \"2.0\"".into()).into(),
                -32600,
                "invalid request: `jsonrpc` must be",
            ),
            (
                Refusal::InvalidParams {
                    method: "tools/call".into(),
                    message: "missing field `name`".into(),
                }
                .into(),
                -32602,
                "invalid params: missing field `name`",
            ),
            (
                Refusal::DuplicateId("7".into()).into(),
                -32600,
                "request id 7 is already in flight in this session",
            ),
        ];
        for (error, code, words) in cases {
            assert_eq!(error.code.0, code, "{error:?}");
            assert!(error.message.contains(words), "{error:?}");
        }
        let partial: ErrorData = Refusal::UnknownResource {
            uri: "x://y".into(),
            down: vec!["b".into()],
        }
        .into();
        assert!(
            partial.message.ends_with("(not answering now: b)"),
            "{partial:?}"
        );
        assert_eq!(partial.data, Some(json!({ "uri": "x://y" })));
        let prompt: ErrorData = Refusal::UnknownPrompt("p".into()).into();
        assert_eq!(prompt.data, Some(json!({ "prompt": "p" })));
    }
}
