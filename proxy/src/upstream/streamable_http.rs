//! Streamable HTTP upstream transport: one shared `reqwest::Client` (connection pooling) for
//! every upstream; each connection gets its own rmcp transport and MCP session.
//!
//! Every HTTP exchange of a connection goes through [`CancellableClient`], which ends it as soon
//! as the connection's token is cancelled. rmcp's transport worker is a detached task that
//! awaits the `initialize` POST without watching its own cancellation, so without this an
//! upstream that accepts and never answers keeps a task and a socket per failed connect forever
//! (found by `tests/connect_failure_leaks.rs`).
//!
//! It also tells when the upstream's standalone GET event stream is open ([`StreamGate`]):
//! rmcp opens it in the background once the upstream gave a session id, and what the upstream
//! sends on it before it is open could be lost, so a new connection waits for it (briefly)
//! before it serves calls.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU16, Ordering};
use std::time::Duration;

use axum::http::{HeaderName, HeaderValue};
use futures::stream::BoxStream;
use rmcp::model::ClientJsonRpcMessage;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::{
    SseError, StreamableHttpClient, StreamableHttpClientTransportConfig, StreamableHttpError,
    StreamableHttpPostResponse, StreamableHttpResponseLimits,
};
use sse_stream::Sse;
use tokio_util::sync::CancellationToken;

/// The rmcp transport for `url` sending `headers` with every request, whose HTTP exchanges
/// all end when `ct` is cancelled; the gate that tells when its GET event stream is open; and
/// what tells whether the upstream refused the credential. Nothing is opened until the client
/// initializes over it.
pub fn transport(
    http: &reqwest::Client,
    url: &str,
    headers: HashMap<HeaderName, HeaderValue>,
    ct: CancellationToken,
) -> (
    StreamableHttpClientTransport<CancellableClient>,
    Arc<StreamGate>,
    Arc<CredentialCheck>,
) {
    let gate = Arc::new(StreamGate::default());
    let credential = Arc::new(CredentialCheck::default());
    let transport = StreamableHttpClientTransport::with_client(
        CancellableClient {
            inner: http.clone(),
            ct,
            gate: gate.clone(),
            credential: credential.clone(),
        },
        StreamableHttpClientTransportConfig::with_uri(url.to_string()).custom_headers(headers),
    );
    (transport, gate, credential)
}

/// The upstream's headers as the transport sends them: each value marked sensitive (kept out
/// of any `Debug` of the request). The error names the header, never its value.
pub fn header_map(
    rendered: &[(&str, crate::domain::secrets::Secret)],
) -> Result<HashMap<HeaderName, HeaderValue>, String> {
    let mut out = HashMap::with_capacity(rendered.len());
    for (name, value) in rendered {
        let key = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| format!("{name:?} is not a valid HTTP header name"))?;
        let mut value = HeaderValue::from_str(value.expose())
            .map_err(|_| format!("the value of header {name:?} is not a valid header value"))?;
        value.set_sensitive(true);
        out.insert(key, value);
    }
    Ok(out)
}

/// The HTTP status (401 or 403) of an upstream that refused this connection's credential.
#[derive(Default)]
pub struct CredentialCheck(AtomicU16);

impl CredentialCheck {
    /// 401 or 403 once the upstream refused the credential.
    pub fn refused(&self) -> Option<u16> {
        Some(self.0.load(Ordering::Acquire)).filter(|s| *s != 0)
    }

    /// Records that the upstream answered `status` (401 or 403) to the credential.
    pub(super) fn refuse(&self, status: u16) {
        self.0.store(status, Ordering::Release);
    }

    fn observe(&self, e: &HttpError) {
        if let Some(status) = refusal_status(e) {
            self.refuse(status);
        }
    }
}

/// 401/403 as rmcp reports them: with a `WWW-Authenticate` challenge as their own errors,
/// without one as an unexpected response that keeps its status.
fn refusal_status(e: &HttpError) -> Option<u16> {
    match e {
        StreamableHttpError::AuthRequired(_) => Some(401),
        StreamableHttpError::InsufficientScope(_) => Some(403),
        StreamableHttpError::UnexpectedServerResponse(m) if m.starts_with("HTTP 401") => Some(401),
        StreamableHttpError::UnexpectedServerResponse(m) if m.starts_with("HTTP 403") => Some(403),
        _ => None,
    }
}

/// Whether the upstream's standalone event stream is expected (it gave a session id) and
/// whether the attempt to open it has concluded (open, or refused: no SSE offered).
#[derive(Default)]
pub struct StreamGate {
    expected: AtomicBool,
    settled: tokio::sync::Notify,
    done: AtomicBool,
}

impl StreamGate {
    /// Waits until the GET stream is open (or refused), at most `limit`; at once when the
    /// upstream has no session (stateless: no stream to wait for). True when it settled.
    pub async fn wait(&self, limit: Duration) -> bool {
        if !self.expected.load(Ordering::Acquire) {
            return true;
        }
        let settled = self.settled.notified();
        if self.done.load(Ordering::Acquire) {
            return true;
        }
        tokio::time::timeout(limit, settled).await.is_ok()
    }

    fn session_seen(&self, response: &Result<StreamableHttpPostResponse, HttpError>) {
        if let Ok(
            StreamableHttpPostResponse::Json(_, Some(_))
            | StreamableHttpPostResponse::Sse(_, Some(_)),
        ) = response
        {
            self.expected.store(true, Ordering::Release);
        }
    }

    fn stream_attempted(&self) {
        if !self.done.swap(true, Ordering::AcqRel) {
            self.settled.notify_waiters();
        }
    }
}

/// `reqwest::Client` whose every request is abandoned (socket dropped) once `ct` is cancelled.
#[derive(Clone)]
pub struct CancellableClient {
    inner: reqwest::Client,
    ct: CancellationToken,
    gate: Arc<StreamGate>,
    credential: Arc<CredentialCheck>,
}

type HttpError = StreamableHttpError<reqwest::Error>;

impl CancellableClient {
    async fn run<T>(
        &self,
        fut: impl Future<Output = Result<T, HttpError>>,
    ) -> Result<T, HttpError> {
        tokio::select! {
            r = fut => r.map_err(|e| {
                self.credential.observe(&e);
                worded(e)
            }),
            _ = self.ct.cancelled() => Err(StreamableHttpError::Io(std::io::Error::other(
                "upstream connection closed",
            ))),
        }
    }
}

/// A client (reqwest) failure with its whole cause: its own `Display` stops at "error sending
/// request", while the reason (`invalid peer certificate: UnknownIssuer`, `Connection
/// refused`) is further down its source chain.
fn worded(e: HttpError) -> HttpError {
    match e {
        StreamableHttpError::Client(e) => {
            StreamableHttpError::Io(std::io::Error::other(super::error::describe(&e)))
        }
        other => other,
    }
}

impl StreamableHttpClient for CancellableClient {
    type Error = reqwest::Error;

    async fn post_message(
        &self,
        uri: Arc<str>,
        message: ClientJsonRpcMessage,
        session_id: Option<Arc<str>>,
        auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
    ) -> Result<StreamableHttpPostResponse, HttpError> {
        let response = self
            .run(
                self.inner
                    .post_message(uri, message, session_id, auth_header, custom_headers),
            )
            .await;
        self.gate.session_seen(&response);
        response
    }

    async fn post_message_with_max_sse_event_size(
        &self,
        uri: Arc<str>,
        message: ClientJsonRpcMessage,
        session_id: Option<Arc<str>>,
        auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
        max_sse_event_size: usize,
    ) -> Result<StreamableHttpPostResponse, HttpError> {
        let response = self
            .run(self.inner.post_message_with_max_sse_event_size(
                uri,
                message,
                session_id,
                auth_header,
                custom_headers,
                max_sse_event_size,
            ))
            .await;
        self.gate.session_seen(&response);
        response
    }

    async fn post_message_with_response_limits(
        &self,
        uri: Arc<str>,
        message: ClientJsonRpcMessage,
        session_id: Option<Arc<str>>,
        auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
        limits: StreamableHttpResponseLimits,
    ) -> Result<StreamableHttpPostResponse, HttpError> {
        let response = self
            .run(self.inner.post_message_with_response_limits(
                uri,
                message,
                session_id,
                auth_header,
                custom_headers,
                limits,
            ))
            .await;
        self.gate.session_seen(&response);
        response
    }

    async fn delete_session(
        &self,
        uri: Arc<str>,
        session_id: Arc<str>,
        auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
    ) -> Result<(), HttpError> {
        // The DELETE is the polite end of a session: it is sent even while closing, bounded
        // by the client's close timeout rather than cut by the token.
        self.inner
            .delete_session(uri, session_id, auth_header, custom_headers)
            .await
    }

    async fn get_stream(
        &self,
        uri: Arc<str>,
        session_id: Option<Arc<str>>,
        last_event_id: Option<String>,
        auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
    ) -> Result<BoxStream<'static, Result<Sse, SseError>>, HttpError> {
        let stream = self
            .run(
                self.inner
                    .get_stream(uri, session_id, last_event_id, auth_header, custom_headers),
            )
            .await;
        self.gate.stream_attempted();
        stream
    }

    async fn get_stream_with_max_sse_event_size(
        &self,
        uri: Arc<str>,
        session_id: Option<Arc<str>>,
        last_event_id: Option<String>,
        auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
        max_sse_event_size: usize,
    ) -> Result<BoxStream<'static, Result<Sse, SseError>>, HttpError> {
        let stream = self
            .run(self.inner.get_stream_with_max_sse_event_size(
                uri,
                session_id,
                last_event_id,
                auth_header,
                custom_headers,
                max_sse_event_size,
            ))
            .await;
        self.gate.stream_attempted();
        stream
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rmcp::transport::streamable_http_client::{AuthRequiredError, InsufficientScopeError};

    #[test]
    fn a_refused_credential_is_told_apart_from_other_failures() {
        let challenge = "Bearer realm=\"x\"".to_string();
        let cases: [(HttpError, Option<u16>); 5] = [
            (
                StreamableHttpError::AuthRequired(AuthRequiredError::new(challenge.clone())),
                Some(401),
            ),
            (
                StreamableHttpError::InsufficientScope(InsufficientScopeError::new(
                    challenge, None,
                )),
                Some(403),
            ),
            (
                StreamableHttpError::UnexpectedServerResponse("HTTP 401 Unauthorized: no".into()),
                Some(401),
            ),
            (
                StreamableHttpError::UnexpectedServerResponse("HTTP 403 Forbidden: no".into()),
                Some(403),
            ),
            (
                StreamableHttpError::UnexpectedServerResponse("HTTP 404 Not Found: 401".into()),
                None,
            ),
        ];
        for (e, want) in cases {
            assert_eq!(refusal_status(&e), want, "{e}");
        }
    }

    #[test]
    fn header_values_are_sensitive_and_errors_never_show_them() {
        use crate::domain::secrets::Secret;
        let map = header_map(&[("Authorization", Secret::new("Bearer t0ken"))]).unwrap();
        let value = &map[&HeaderName::from_static("authorization")];
        assert!(value.is_sensitive());
        assert!(!format!("{map:?}").contains("t0ken"));
        let e = header_map(&[("X-Bad", Secret::new("a\nsecret"))]).unwrap_err();
        assert!(e.contains("X-Bad") && !e.contains("secret"), "{e}");
    }
}
