//! The one place a request refused before MCP becomes an HTTP response: its status, a JSON
//! body `{"error": code, "message": text}`, and the headers the refusal calls for
//! (`WWW-Authenticate` on 401, `Retry-After` where a retry can succeed). A POSTed message that
//! is not one MCP can take gets a JSON-RPC error body instead (its code from
//! `crate::mcp::error`, where failures inside MCP become JSON-RPC errors too).

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::auth::AuthError;
use super::jsonrpc::Rejected;
use crate::mcp::error::Refusal as RpcRefusal;

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
    /// `/ready` while memory in use is near the bound.
    NotReadyMemory,
    /// `/ready` while the database does not answer.
    DbUnreachable,
    /// A DELETE of a session this replica does not hold (answered as rmcp answers POST/GET).
    UnknownSession,
    /// A body past `--max-body-bytes` (read by the proxy itself).
    BodyTooLarge,
    /// A new session past `--max-sessions`.
    SessionCap,
    /// A new session while memory in use is near the bound.
    SessionMemory,
    /// The DNS-rebinding guard: `forbidden_host` / `forbidden_origin`, naming value and setting.
    Forbidden { code: &'static str, message: String },
    /// Anything but `/health`, `/ready`, `/metrics` on a connection past `--max-connections`.
    ConnectionCap,
    /// A POSTed message that is not JSON, not one JSON-RPC 2.0 message, has params that do not
    /// fit its method, or reuses an id in flight: 400 with a JSON-RPC error.
    BadMessage(Rejected),
    /// rmcp refused the request's `Accept` (406) or `Content-Type` (415): that status, with
    /// rmcp's words as a JSON-RPC error (-32600, id null) instead of its text body.
    Media { status: StatusCode, message: String },
}

impl From<Rejected> for Refusal {
    fn from(r: Rejected) -> Self {
        Refusal::BadMessage(r)
    }
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
                "memory in use is near --memory-limit-mib; send new work elsewhere".into(),
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
                "memory in use is near --memory-limit-mib; retry later (another replica can take the session)".into(),
                Some(NEW_SESSION_RETRY_AFTER),
            ),
            Refusal::Forbidden { code, message } => (S::FORBIDDEN, code, message.clone(), None),
            Refusal::ConnectionCap => (
                unavailable,
                "too_many_connections",
                "connection limit reached (--max-connections); only /health, /ready and /metrics are served on this connection".into(),
                Some("1"),
            ),
            // answered with a JSON-RPC body (`rpc_body`), under this status
            Refusal::BadMessage(_) => (S::BAD_REQUEST, "bad_message", String::new(), None),
            Refusal::Media { status, message } => (*status, "bad_media", message.clone(), None),
        }
    }

    /// The JSON-RPC error body of a refused message (`None` for every other refusal).
    fn rpc_body(&self) -> Option<serde_json::Value> {
        let (id, why) = match self {
            Refusal::BadMessage(Rejected { id, why }) => (id.clone(), why.clone()),
            Refusal::Media { message, .. } => (None, RpcRefusal::NotJsonRpc(message.clone())),
            _ => return None,
        };
        let error = rmcp::model::ErrorData::from(why);
        Some(json!({ "jsonrpc": "2.0", "id": id, "error": error }))
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        if self == Refusal::UnknownSession {
            // The same answer rmcp gives a POST or GET on a session it does not hold.
            return (StatusCode::NOT_FOUND, "Not Found: Session not found").into_response();
        }
        let (status, code, message, retry_after) = self.parts();
        let body = self
            .rpc_body()
            .unwrap_or_else(|| json!({ "error": code, "message": message }));
        let mut response = (status, Json(body)).into_response();
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Status, `error` code, `Retry-After` and whether `WWW-Authenticate` is set.
    async fn seen(refusal: Refusal) -> (u16, String, Option<String>, bool) {
        let response = refusal.into_response();
        let status = response.status().as_u16();
        let header = |h| {
            response
                .headers()
                .get(h)
                .map(|v: &HeaderValue| v.to_str().unwrap().to_string())
        };
        let retry = header(header::RETRY_AFTER);
        let auth = header(header::WWW_AUTHENTICATE).is_some();
        let body = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .unwrap();
        let code = serde_json::from_slice::<serde_json::Value>(&body)
            .map(|v| v["error"].as_str().unwrap_or_default().to_string())
            .unwrap_or_else(|_| String::from_utf8_lossy(&body).into_owned());
        (status, code, retry, auth)
    }

    #[tokio::test]
    async fn every_refusal_has_its_status_code_and_headers() {
        let one = Some("1".to_string());
        let five = Some("5".to_string());
        let cases = [
            (
                Refusal::Auth(AuthError::Missing),
                (401, "missing_api_key", None, true),
            ),
            (
                Refusal::Auth(AuthError::Invalid),
                (401, "invalid_api_key", None, true),
            ),
            (
                Refusal::Auth(AuthError::Revoked),
                (401, "revoked_api_key", None, true),
            ),
            (
                Refusal::Auth(AuthError::NotFound),
                (404, "not_found", None, false),
            ),
            (
                Refusal::Auth(AuthError::Unavailable),
                (503, "store_unavailable", one.clone(), false),
            ),
            (Refusal::NoSuchRoute, (404, "not_found", None, false)),
            (Refusal::NoSuchInstance, (404, "not_found", None, false)),
            (
                Refusal::ConfigUnavailable,
                (503, "store_unavailable", None, false),
            ),
            (
                Refusal::Draining { retry: false },
                (503, "draining", None, false),
            ),
            (
                Refusal::Draining { retry: true },
                (503, "draining", one, false),
            ),
            (
                Refusal::NotReadyMemory,
                (503, "memory_pressure", None, false),
            ),
            (Refusal::DbUnreachable, (503, "db_unreachable", None, false)),
            (Refusal::BodyTooLarge, (413, "body_too_large", None, false)),
            (
                Refusal::SessionCap,
                (503, "too_many_sessions", five.clone(), false),
            ),
            (
                Refusal::SessionMemory,
                (503, "memory_pressure", five, false),
            ),
            (
                Refusal::Forbidden {
                    code: "forbidden_host",
                    message: "Host \"x\" is not allowed".into(),
                },
                (403, "forbidden_host", None, false),
            ),
            (
                Refusal::UnknownSession,
                (404, "Not Found: Session not found", None, false),
            ),
        ];
        for (refusal, (status, code, retry, auth)) in cases {
            let what = format!("{refusal:?}");
            assert_eq!(
                seen(refusal).await,
                (status, code.to_string(), retry, auth),
                "{what}"
            );
        }
    }

    #[tokio::test]
    async fn a_bad_message_gets_400_with_a_jsonrpc_error_and_its_id() {
        let cases = [
            (
                Refusal::BadMessage(Rejected {
                    id: None,
                    why: RpcRefusal::NotJson("EOF".into()),
                }),
                400,
                json!({ "jsonrpc": "2.0", "id": null,
                    "error": { "code": -32700, "message": "parse error: EOF" } }),
            ),
            (
                Refusal::BadMessage(Rejected {
                    id: Some(rmcp::model::RequestId::Number(7)),
                    why: RpcRefusal::DuplicateId("7".into()),
                }),
                400,
                json!({ "jsonrpc": "2.0", "id": 7, "error": { "code": -32600,
                    "message": "request id 7 is already in flight in this session" } }),
            ),
            (
                Refusal::Media {
                    status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    message: "Content-Type must be application/json".into(),
                },
                415,
                json!({ "jsonrpc": "2.0", "id": null, "error": { "code": -32600,
                    "message": "invalid request: Content-Type must be application/json" } }),
            ),
        ];
        for (refusal, status, body) in cases {
            let response = refusal.into_response();
            assert_eq!(response.status().as_u16(), status);
            assert_eq!(
                response.headers()[header::CONTENT_TYPE],
                "application/json",
                "{body}"
            );
            let got = axum::body::to_bytes(response.into_body(), 1 << 16)
                .await
                .unwrap();
            let got: serde_json::Value = serde_json::from_slice(&got).unwrap();
            assert_eq!(got, body);
        }
    }

    #[tokio::test]
    async fn the_message_names_the_problem() {
        let response = Refusal::Auth(AuthError::Missing).into_response();
        let body = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert!(v["message"].as_str().unwrap().contains("X-API-Key"), "{v}");
    }
}
