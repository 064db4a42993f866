//! The one place a request refused before MCP becomes an HTTP response: its status, a JSON
//! body `{"error": code, "message": text}`, and the headers the refusal calls for
//! (`WWW-Authenticate` on 401, `Retry-After` where a retry can succeed). Failures inside MCP
//! become JSON-RPC errors in `crate::mcp::error` instead.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::auth::AuthError;

/// How long a client refused a new session (session cap, memory) is asked to wait.
const NEW_SESSION_RETRY_AFTER: &str = "5";

/// Why a request is refused before it reaches an instance's MCP service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The API key check failed.
    Auth(AuthError),
    /// No route of this server.
    NoSuchRoute,
    /// The key's instance no longer exists.
    NoSuchInstance,
    /// The instance's config could not be loaded.
    ConfigUnavailable,
    /// Shutting down: `/ready` (`retry: false`), or an MCP request (told to retry in 1 s).
    Draining { retry: bool },
    /// `/ready` while resident memory is near the bound.
    NotReadyMemory,
    /// `/ready` while the database does not answer.
    DbUnreachable,
    /// A DELETE of a session this replica does not hold (answered as rmcp answers POST/GET).
    UnknownSession,
    /// A body past `--max-body-bytes` (read by the proxy itself).
    BodyTooLarge,
    /// A new session past `--max-sessions`.
    SessionCap,
    /// A new session while resident memory is near the bound.
    SessionMemory,
    /// The DNS-rebinding guard: `forbidden_host` / `forbidden_origin`, naming value and setting.
    Forbidden { code: &'static str, message: String },
}

impl From<AuthError> for Refusal {
    fn from(e: AuthError) -> Self {
        Refusal::Auth(e)
    }
}

impl Refusal {
    /// Status, error code, message and the `Retry-After` it carries, if any.
    fn parts(&self) -> (StatusCode, &'static str, String, Option<&'static str>) {
        use StatusCode as S;
        let unavailable = S::SERVICE_UNAVAILABLE;
        match self {
            Refusal::Auth(e) => {
                let (status, code, retry) = match e {
                    AuthError::Missing => (S::UNAUTHORIZED, "missing_api_key", None),
                    AuthError::Invalid => (S::UNAUTHORIZED, "invalid_api_key", None),
                    AuthError::Revoked => (S::UNAUTHORIZED, "revoked_api_key", None),
                    AuthError::NotFound => (S::NOT_FOUND, "not_found", None),
                    AuthError::Unavailable => (unavailable, "store_unavailable", Some("1")),
                };
                (status, code, e.to_string(), retry)
            }
            Refusal::NoSuchRoute => (S::NOT_FOUND, "not_found", "no such route".into(), None),
            Refusal::NoSuchInstance => {
                (S::NOT_FOUND, "not_found", "no such instance".into(), None)
            }
            Refusal::ConfigUnavailable => (
                unavailable,
                "store_unavailable",
                "configuration unavailable".into(),
                None,
            ),
            Refusal::Draining { retry } => (
                unavailable,
                "draining",
                "shutting down".into(),
                retry.then_some("1"),
            ),
            Refusal::NotReadyMemory => (
                unavailable,
                "memory_pressure",
                "resident memory is near --memory-limit-mib; send new work elsewhere".into(),
                None,
            ),
            Refusal::DbUnreachable => (
                unavailable,
                "db_unreachable",
                "database unreachable".into(),
                None,
            ),
            Refusal::UnknownSession => (S::NOT_FOUND, "not_found", "Session not found".into(), None),
            Refusal::BodyTooLarge => (
                S::PAYLOAD_TOO_LARGE,
                "body_too_large",
                "request body too large".into(),
                None,
            ),
            Refusal::SessionCap => (
                unavailable,
                "too_many_sessions",
                "session limit reached; retry later or reuse a session".into(),
                Some(NEW_SESSION_RETRY_AFTER),
            ),
            Refusal::SessionMemory => (
                unavailable,
                "memory_pressure",
                "resident memory is near --memory-limit-mib; retry later (another replica can take the session)".into(),
                Some(NEW_SESSION_RETRY_AFTER),
            ),
            Refusal::Forbidden { code, message } => (S::FORBIDDEN, code, message.clone(), None),
        }
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        if self == Refusal::UnknownSession {
            // The same answer rmcp gives a POST or GET on a session it does not hold.
            return (StatusCode::NOT_FOUND, "Not Found: Session not found").into_response();
        }
        let (status, code, message, retry_after) = self.parts();
        let mut response =
            (status, Json(json!({ "error": code, "message": message }))).into_response();
        let headers = response.headers_mut();
        if status == StatusCode::UNAUTHORIZED {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let Some(seconds) = retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from_static(seconds));
        }
        response
    }
}
