//! Streamable HTTP upstream transport: one shared `reqwest::Client` (connection pooling) for
//! every upstream; each connection gets its own rmcp transport and MCP session.
//!
//! Every HTTP exchange of a connection goes through [`CancellableClient`], which ends it as soon
//! as the connection's token is cancelled. rmcp's transport worker is a detached task that
//! awaits the `initialize` POST without watching its own cancellation, so without this an
//! upstream that accepts and never answers keeps a task and a socket per failed connect forever
//! (found by `tests/connect_failure_leaks.rs`).

use std::collections::HashMap;
use std::sync::Arc;

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

/// The rmcp transport for `url`, whose HTTP exchanges all end when `ct` is cancelled.
/// Nothing is opened until the client initializes over it.
pub fn transport(
    http: &reqwest::Client,
    url: &str,
    ct: CancellationToken,
) -> StreamableHttpClientTransport<CancellableClient> {
    StreamableHttpClientTransport::with_client(
        CancellableClient {
            inner: http.clone(),
            ct,
        },
        StreamableHttpClientTransportConfig::with_uri(url.to_string()),
    )
}

/// `reqwest::Client` whose every request is abandoned (socket dropped) once `ct` is cancelled.
#[derive(Clone)]
pub struct CancellableClient {
    inner: reqwest::Client,
    ct: CancellationToken,
}

type HttpError = StreamableHttpError<reqwest::Error>;

impl CancellableClient {
    async fn run<T>(
        &self,
        fut: impl Future<Output = Result<T, HttpError>>,
    ) -> Result<T, HttpError> {
        tokio::select! {
            r = fut => r,
            _ = self.ct.cancelled() => Err(StreamableHttpError::Io(std::io::Error::other(
                "upstream connection closed",
            ))),
        }
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
        self.run(
            self.inner
                .post_message(uri, message, session_id, auth_header, custom_headers),
        )
        .await
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
        self.run(self.inner.post_message_with_max_sse_event_size(
            uri,
            message,
            session_id,
            auth_header,
            custom_headers,
            max_sse_event_size,
        ))
        .await
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
        self.run(self.inner.post_message_with_response_limits(
            uri,
            message,
            session_id,
            auth_header,
            custom_headers,
            limits,
        ))
        .await
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
        self.run(
            self.inner
                .get_stream(uri, session_id, last_event_id, auth_header, custom_headers),
        )
        .await
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
        self.run(self.inner.get_stream_with_max_sse_event_size(
            uri,
            session_id,
            last_event_id,
            auth_header,
            custom_headers,
            max_sse_event_size,
        ))
        .await
    }
}
