//! The one place errors become what a client sees: HTTP statuses with a JSON body for requests
//! refused before MCP (auth, unknown instance), JSON-RPC errors for everything inside MCP.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use rmcp::model::{ErrorCode, ErrorData};
use serde_json::json;

use crate::auth::AuthError;
use crate::cache::ConfigError;
use crate::router::RouteError;
use crate::upstream::UpstreamError;

/// HTTP response for a refused request: `{"error": code, "message": text}`.
pub fn http_error(status: StatusCode, code: &str, message: impl std::fmt::Display) -> Response {
    (
        status,
        Json(json!({ "error": code, "message": message.to_string() })),
    )
        .into_response()
}

impl IntoResponse for AuthError {
    fn into_response(self) -> Response {
        let (status, code) = match self {
            AuthError::Missing => (StatusCode::UNAUTHORIZED, "missing_api_key"),
            AuthError::Invalid => (StatusCode::UNAUTHORIZED, "invalid_api_key"),
            AuthError::Revoked => (StatusCode::UNAUTHORIZED, "revoked_api_key"),
            AuthError::NotFound => (StatusCode::NOT_FOUND, "not_found"),
            AuthError::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "store_unavailable"),
        };
        let mut response = http_error(status, code, &self);
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                "Bearer".parse().expect("static header"),
            );
        }
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                "1".parse().expect("static header"),
            );
        }
        response
    }
}

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
            | UpstreamError::ShuttingDown { ref upstream } => {
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
