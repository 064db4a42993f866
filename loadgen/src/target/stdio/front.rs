//! The harness's own HTTP front for a stdio target: what the load (built for Streamable HTTP)
//! talks to. A sessionless 2025-11-25 server in the shape the load already speaks to: JSON
//! answers, no `Mcp-Session-Id`, no GET event stream.
//!
//! `initialize` is answered with what the server answered the harness's own `initialize`
//! (the server is initialized once: one stdio connection is one MCP session) and
//! `notifications/initialized` is not passed on again; every other message goes through
//! [`Peer`] unchanged but for its id. Bad input gets the JSON-RPC error the spec names.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};

use super::wire::{Peer, PeerError};

/// The MCP path of the front.
pub const PATH: &str = "/mcp";

/// What the front answers from: the connection, and the server's `initialize` result.
pub struct Front {
    pub peer: Peer,
    /// The server's answer to the harness's `initialize` (None: the load speaks 2026-07-28
    /// only, and `server/discover` goes through).
    pub initialized: Option<Value>,
}

/// The routes: `POST /mcp`; GET and DELETE are 405 (no event stream, no session).
pub fn router(front: Arc<Front>) -> Router {
    Router::new()
        .route(PATH, post(message).get(not_offered).delete(not_offered))
        .with_state(front)
}

async fn not_offered() -> StatusCode {
    StatusCode::METHOD_NOT_ALLOWED
}

/// One JSON-RPC message from the load.
async fn message(State(front): State<Arc<Front>>, body: Bytes) -> Response {
    let msg = match serde_json::from_slice::<Value>(&body) {
        Ok(m) if m.is_object() => m,
        Ok(m) if m.is_array() => return bad(-32600, "batches are not supported"),
        Ok(_) => return bad(-32600, "not a JSON-RPC message (a JSON object)"),
        Err(e) => return bad(-32700, &format!("parse error: {e}")),
    };
    let method = msg
        .get("method")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let id = msg.get("id").cloned();
    match (method, id) {
        ("", _) => StatusCode::ACCEPTED.into_response(),
        ("notifications/initialized", None) if front.initialized.is_some() => {
            StatusCode::ACCEPTED.into_response()
        }
        (_, None) => match front.peer.notify(msg).await {
            Ok(()) => StatusCode::ACCEPTED.into_response(),
            Err(e) => (StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
        },
        ("initialize", Some(id)) if front.initialized.is_some() => {
            let result = front.initialized.clone().unwrap_or_default();
            json_body(&json!({ "jsonrpc": "2.0", "id": id, "result": result }))
        }
        (_, Some(id)) => match front.peer.request(msg).await {
            Ok(answer) => json_body(&answer),
            Err(e) => {
                let body = json!({ "jsonrpc": "2.0", "id": id, "error": { "code": -32603, "message": e.to_string() } });
                let status = match e {
                    PeerError::Cancelled => StatusCode::OK,
                    _ => StatusCode::BAD_GATEWAY,
                };
                with_status(status, &body)
            }
        },
    }
}

/// 400 with the JSON-RPC error `code` (no id: the message had none that could be read).
fn bad(code: i64, message: &str) -> Response {
    let body =
        json!({ "jsonrpc": "2.0", "id": null, "error": { "code": code, "message": message } });
    with_status(StatusCode::BAD_REQUEST, &body)
}

fn json_body(v: &Value) -> Response {
    with_status(StatusCode::OK, v)
}

fn with_status(status: StatusCode, v: &Value) -> Response {
    let mut r = (status, v.to_string()).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}
