//! The 2024-11-05 HTTP+SSE upstream transport, which rmcp 3.11 has no client for: `GET` the
//! event stream, read its `endpoint` event, `POST` every message there (`202`); the server's
//! messages arrive on the stream as `message` events. An rmcp [`Transport`], so the client
//! above it (initialize, requests, notifications, close) is the same as for the other wires.
//!
//! Ownership: the event stream (its socket) is owned by the transport, which rmcp's service
//! task owns: it ends when the service ends (close, drop), when the upstream closes it, or when
//! the connection's token is cancelled. POSTs run concurrently, each cut by the same token.
//! A 401/403 on the `GET` or a `POST` is recorded in the connection's [`CredentialCheck`].

use std::collections::HashMap;
use std::sync::Arc;

use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use futures::StreamExt;
use futures::stream::BoxStream;
use rmcp::RoleClient;
use rmcp::model::{ClientJsonRpcMessage, ServerJsonRpcMessage};
use rmcp::transport::Transport;
use sse_stream::{Sse, SseStream};
use tokio_util::sync::CancellationToken;

use super::error::describe;
use super::streamable_http::CredentialCheck;

/// One connection over the legacy SSE transport.
pub struct LegacySseTransport {
    http: reqwest::Client,
    /// Where messages are POSTed (the `endpoint` event, resolved against the stream's URL).
    endpoint: reqwest::Url,
    headers: HeaderMap,
    messages: BoxStream<'static, ServerJsonRpcMessage>,
    ct: CancellationToken,
    credential: Arc<CredentialCheck>,
}

fn io(message: String) -> std::io::Error {
    std::io::Error::other(message)
}

/// What a non-success status means; 401/403 recorded as a refused credential.
fn status_error(what: &str, status: StatusCode, credential: &CredentialCheck) -> String {
    if matches!(status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) {
        credential.refuse(status.as_u16());
    }
    format!("{what}: HTTP {status}")
}

/// Opens the event stream at `url` and waits for its `endpoint` event (the caller bounds this
/// by the connect timeout). The endpoint must be on the stream's own origin: the upstream's
/// headers (its credential) are never sent anywhere else.
pub async fn connect(
    http: &reqwest::Client,
    url: &str,
    headers: HashMap<HeaderName, HeaderValue>,
    ct: CancellationToken,
    credential: Arc<CredentialCheck>,
) -> Result<LegacySseTransport, String> {
    let base = reqwest::Url::parse(url).map_err(|e| format!("url {url:?}: {e}"))?;
    let headers: HeaderMap = headers.into_iter().collect();
    let get = http
        .get(base.clone())
        .headers(headers.clone())
        .header(header::ACCEPT, "text/event-stream")
        .send();
    let response = tokio::select! {
        r = get => r.map_err(|e| format!("open event stream: {}", describe(&e)))?,
        _ = ct.cancelled() => return Err("upstream connection closed".into()),
    };
    if !response.status().is_success() {
        return Err(status_error(
            "open event stream",
            response.status(),
            &credential,
        ));
    }
    let is_sse = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"));
    if !is_sse {
        return Err("open event stream: the answer is not text/event-stream".into());
    }
    let mut events = SseStream::from_byte_stream(response.bytes_stream());
    let endpoint = loop {
        let event = tokio::select! {
            e = events.next() => e,
            _ = ct.cancelled() => return Err("upstream connection closed".into()),
        };
        match event {
            Some(Ok(Sse {
                event: Some(kind),
                data: Some(data),
                ..
            })) if kind == "endpoint" => break data,
            Some(Ok(_)) => continue,
            Some(Err(e)) => return Err(format!("event stream: {e}")),
            None => return Err("the event stream ended before its endpoint event".into()),
        }
    };
    let endpoint = base.join(endpoint.trim()).map_err(|e| {
        // What the upstream sent goes to the log only; the caller learns what was wrong.
        tracing::debug!(endpoint, error = %e, "legacy SSE endpoint event is not a URL");
        format!("the endpoint event is not a URL or path ({e})")
    })?;
    if endpoint.origin() != base.origin() {
        return Err(format!(
            "the endpoint event names another origin ({}); refusing to send it this upstream's headers",
            endpoint.origin().ascii_serialization()
        ));
    }
    #[cfg(feature = "planted-leaks")]
    if crate::ops::planted::active(crate::ops::planted::Leak::SseUpstream) {
        // the stream read by a forwarding task that watches neither the token nor its receiver
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            let _forever = tx.clone();
            let mut events = events;
            while let Some(event) = events.next().await {
                let _ = tx.send(event);
            }
            std::future::pending::<()>().await
        });
        let events = tokio_stream_from(rx);
        return Ok(LegacySseTransport {
            http: http.clone(),
            endpoint,
            headers,
            messages: messages(events, ct.clone()),
            ct,
            credential,
        });
    }
    Ok(LegacySseTransport {
        http: http.clone(),
        endpoint,
        headers,
        messages: messages(events, ct.clone()),
        ct,
        credential,
    })
}

/// The server's messages: `message` events (or unnamed ones) parsed as JSON-RPC. The stream
/// ends at the token, at a transport error, or at a message that is not JSON-RPC (the
/// connection is then unusable, and ending it fails what waits on it at once).
fn messages<S>(events: S, ct: CancellationToken) -> BoxStream<'static, ServerJsonRpcMessage>
where
    S: futures::Stream<Item = Result<Sse, sse_stream::Error>> + Send + 'static,
{
    events
        .take_until(ct.cancelled_owned())
        .map(|event| match event {
            Ok(Sse { data: None, .. }) => Some(None),
            Ok(Sse {
                event, data: Some(data), ..
            }) if event.as_deref().is_none_or(|e| e == "message") => {
                match serde_json::from_str::<ServerJsonRpcMessage>(&data) {
                    Ok(message) => Some(Some(message)),
                    Err(e) => {
                        tracing::warn!(error = %e, "legacy SSE upstream sent a message that is not JSON-RPC; closing");
                        None
                    }
                }
            }
            Ok(_) => Some(None),
            Err(e) => {
                tracing::debug!(error = %e, "legacy SSE event stream ended");
                None
            }
        })
        .take_while(|m| std::future::ready(m.is_some()))
        .filter_map(|m| std::future::ready(m.flatten()))
        .boxed()
}

impl Transport<RoleClient> for LegacySseTransport {
    type Error = std::io::Error;

    fn send(
        &mut self,
        item: ClientJsonRpcMessage,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send + 'static {
        let post = self
            .http
            .post(self.endpoint.clone())
            .headers(self.headers.clone())
            .json(&item)
            .send();
        let (ct, credential) = (self.ct.clone(), self.credential.clone());
        async move {
            let response = tokio::select! {
                r = post => r.map_err(|e| io(format!("post message: {}", describe(&e))))?,
                _ = ct.cancelled() => return Err(io("upstream connection closed".into())),
            };
            if response.status().is_success() {
                Ok(())
            } else {
                Err(io(status_error(
                    "post message",
                    response.status(),
                    &credential,
                )))
            }
        }
    }

    fn receive(&mut self) -> impl Future<Output = Option<ServerJsonRpcMessage>> + Send {
        self.messages.next()
    }

    async fn close(&mut self) -> Result<(), Self::Error> {
        // ends the event stream and any POST still running; the socket goes with the stream
        self.ct.cancel();
        Ok(())
    }
}

/// An unbounded receiver as a stream (the planted leak's forwarder).
#[cfg(feature = "planted-leaks")]
fn tokio_stream_from<T: Send + 'static>(
    rx: tokio::sync::mpsc::UnboundedReceiver<T>,
) -> impl futures::Stream<Item = T> + Send + 'static {
    futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|t| (t, rx)) })
}
