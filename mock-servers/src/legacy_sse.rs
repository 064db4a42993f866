//! The 2024-11-05 "HTTP+SSE" transport (`--legacy-sse`, [`MockConfig::legacy_sse`]), beside
//! Streamable HTTP (rmcp has no server for it):
//!
//! - `GET /sse` opens a session: a `text/event-stream` whose first event is `endpoint` with
//!   `data: /messages?session_id=ID` (a relative URL, as the official SDKs send), then every
//!   JSON-RPC message the server sends that session as `event: message`, one line of JSON each.
//! - `POST /messages?session_id=ID` with one JSON-RPC message: `202 Accepted` (empty body) and
//!   the message goes to that session's server; the answer travels on the stream. An unknown or
//!   ended session is 404, a missing `session_id` or a body that is not one JSON-RPC message 400,
//!   each with `{"error", "message"}` naming the problem.
//!
//! Each session is one rmcp server ([`MockTools::new_session`]) on a Sink/Stream pair of
//! channels, run on the server's tracker. The routes stand behind the same middlewares as `/mcp`
//! (`require_header`, then `http_faults`, which hands this module the faults that play on the
//! stream: [`StreamFault`]).
//!
//! Ownership: the session's [`SessionEnd`] rides in the event stream's body. When the client
//! drops the stream (or the stream ends: the server task ended, `expire-session-after`, the
//! mock stopped), it cancels the session's token (the rmcp service and any `hang-call` hold
//! end) and removes the session from the registry and from `HttpFaults`: nothing of a session
//! is kept once its stream is gone.
//!
//! [`MockConfig::legacy_sse`]: crate::MockConfig

use std::collections::{HashMap, HashSet};
use std::future::ready;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures::channel::mpsc;
use futures::{SinkExt, Stream, StreamExt};
use rmcp::ServiceExt;
use rmcp::model::{ClientJsonRpcMessage, ServerJsonRpcMessage};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::http_faults::{HttpFaults, MESSAGES_PATH, SESSION_QUERY, StreamFault, legacy_session};
use crate::tools::MockTools;

/// The event stream's path.
pub const SSE_PATH: &str = "/sse";

/// Messages waiting for the session's server (a POST waits when it is full).
const INBOUND: usize = 64;
/// Frames waiting for the client to read them (the server waits when it is full).
const OUTBOUND: usize = 64;

/// The `/sse` and `/messages` routes.
pub fn router(
    tools: MockTools,
    http: Arc<HttpFaults>,
    stop: CancellationToken,
    tasks: TaskTracker,
) -> Router {
    let legacy = Arc::new(Legacy {
        tools,
        http,
        sessions: Mutex::default(),
        stop,
        tasks,
    });
    Router::new()
        .route(SSE_PATH, get(open))
        .route(MESSAGES_PATH, post(message))
        .with_state(legacy)
}

#[derive(Debug)]
struct Legacy {
    tools: MockTools,
    http: Arc<HttpFaults>,
    sessions: Mutex<HashMap<String, Entry>>,
    /// The server's stop token: every session's token is a child.
    stop: CancellationToken,
    tasks: TaskTracker,
}

impl Legacy {
    fn sessions(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.sessions.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// What a POST needs of an open session.
#[derive(Debug, Clone)]
struct Entry {
    /// To the session's rmcp server.
    inbound: mpsc::Sender<ClientJsonRpcMessage>,
    /// To the event stream (injected replies).
    outbound: mpsc::Sender<Frame>,
    /// Request ids (as JSON text) whose reply cuts the stream (`disconnect-mid-call`).
    cut: Arc<Mutex<HashSet<String>>>,
    token: CancellationToken,
}

/// One event for the stream.
#[derive(Debug)]
enum Frame {
    Message(Box<ServerJsonRpcMessage>),
    Raw(String),
}

/// Ends the session when dropped (it rides in the event stream's body).
struct SessionEnd {
    legacy: Arc<Legacy>,
    id: String,
    token: CancellationToken,
}

impl Drop for SessionEnd {
    fn drop(&mut self) {
        self.token.cancel();
        self.legacy.sessions().remove(&self.id);
        self.legacy.http.legacy_ended(&self.id);
        tracing::debug!(session = %self.id, "legacy SSE session ended");
    }
}

/// `GET /sse`: a new session and its event stream.
async fn open(State(legacy): State<Arc<Legacy>>) -> Response {
    let id = format!("{:032x}", rand::random::<u128>());
    let token = legacy.stop.child_token();
    let (inbound, from_client) = mpsc::channel(INBOUND);
    let (outbound, frames) = mpsc::channel(OUTBOUND);
    let cut = Arc::new(Mutex::new(HashSet::new()));
    legacy.sessions().insert(
        id.clone(),
        Entry {
            inbound,
            outbound: outbound.clone(),
            cut: cut.clone(),
            token: token.clone(),
        },
    );
    legacy.http.legacy_opened(&id, token.clone());
    let end = SessionEnd {
        legacy: legacy.clone(),
        id: id.clone(),
        token: token.clone(),
    };

    let to_client = outbound.with(|m| ready(Ok::<_, mpsc::SendError>(Frame::Message(Box::new(m)))));
    let service = legacy.tools.new_session();
    let session_token = token.clone();
    let session = id.clone();
    legacy.tasks.spawn(async move {
        match service
            .serve_with_ct((to_client, from_client), session_token.clone())
            .await
        {
            Ok(running) => {
                let reason = running.waiting().await;
                tracing::debug!(%session, ?reason, "legacy SSE server ended");
            }
            Err(e) => tracing::debug!(%session, error = %e, "legacy SSE session not initialized"),
        }
        // the server is gone: so is the stream
        session_token.cancel();
    });

    let endpoint = format!("{MESSAGES_PATH}?{SESSION_QUERY}={id}");
    let first = futures::stream::once(ready(Ok(event("endpoint", &endpoint))));
    let body = first
        .chain(events(frames, cut, end))
        .take_until(token.cancelled_owned());
    (
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        Body::from_stream(body),
    )
        .into_response()
}

/// One SSE event (`data` is one line).
fn event(name: &str, data: &str) -> Bytes {
    Bytes::from(format!("event: {name}\ndata: {data}\n\n"))
}

enum Events {
    Open(mpsc::Receiver<Frame>, SessionEnd),
    /// Half a reply was sent: now the error that cuts the connection.
    Cutting(SessionEnd),
    Done,
}

/// The session's messages as `event: message`, until the session ends; a reply marked by
/// `disconnect-mid-call` is sent halfway and the connection cut.
fn events(
    frames: mpsc::Receiver<Frame>,
    cut: Arc<Mutex<HashSet<String>>>,
    end: SessionEnd,
) -> impl Stream<Item = Result<Bytes, std::io::Error>> + Send {
    futures::stream::unfold(Events::Open(frames, end), move |state| {
        let cut = cut.clone();
        async move {
            match state {
                Events::Open(mut frames, end) => loop {
                    let data = match frames.next().await? {
                        Frame::Raw(text) => text,
                        Frame::Message(message) => match serde_json::to_string(&message) {
                            Ok(json) => json,
                            Err(e) => {
                                tracing::warn!(error = %e, "cannot serialize a message");
                                continue;
                            }
                        },
                    };
                    let bytes = event("message", &data);
                    if cuts_here(&cut, &data) {
                        let half = bytes.slice(..bytes.len() / 2);
                        return Some((Ok(half), Events::Cutting(end)));
                    }
                    return Some((Ok(bytes), Events::Open(frames, end)));
                },
                Events::Cutting(end) => {
                    // the session ends with this poll; the error still reaches hyper, which
                    // then drops the connection instead of ending the body cleanly
                    drop(end);
                    let cut = std::io::Error::other("injected disconnect-mid-call");
                    Some((Err(cut), Events::Done))
                }
                Events::Done => None,
            }
        }
    })
}

/// Whether `data` is the reply to a request marked to cut the stream (the mark is taken).
fn cuts_here(cut: &Mutex<HashSet<String>>, data: &str) -> bool {
    let mut cut = cut.lock().unwrap_or_else(|p| p.into_inner());
    if cut.is_empty() {
        return false;
    }
    let Ok(message) = serde_json::from_str::<Value>(data) else {
        return false;
    };
    if message.get("result").is_none() && message.get("error").is_none() {
        return false;
    }
    message
        .get("id")
        .is_some_and(|id| cut.remove(&id.to_string()))
}

/// `{"error", "message"}` with `status`.
fn refuse(status: StatusCode, error: &str, message: String) -> Response {
    (
        status,
        axum::Json(json!({ "error": error, "message": message })),
    )
        .into_response()
}

/// `POST /messages?session_id=ID`: one JSON-RPC message for the session; 202, answered on
/// its stream.
async fn message(State(legacy): State<Arc<Legacy>>, request: Request) -> Response {
    let Some(id) = legacy_session(request.uri()) else {
        return refuse(
            StatusCode::BAD_REQUEST,
            "bad_request",
            format!("missing the {SESSION_QUERY} query parameter (from the endpoint event)"),
        );
    };
    let fault = request.extensions().get::<StreamFault>().cloned();
    let Some(entry) = legacy.sessions().get(&id).cloned() else {
        return unknown_session(&id);
    };
    let body = match axum::body::to_bytes(request.into_body(), 4 * 1024 * 1024).await {
        Ok(body) => body,
        Err(e) => {
            return refuse(
                StatusCode::BAD_REQUEST,
                "bad_request",
                format!("cannot read the body: {e}"),
            );
        }
    };
    let message: ClientJsonRpcMessage = match serde_json::from_slice(&body) {
        Ok(message) => message,
        Err(e) => {
            return refuse(
                StatusCode::BAD_REQUEST,
                "bad_request",
                format!("the body is not one JSON-RPC message: {e}"),
            );
        }
    };
    match fault {
        None => {}
        Some(StreamFault::Reply(text)) => {
            let _ = entry.outbound.clone().send(Frame::Raw(text)).await;
            return StatusCode::ACCEPTED.into_response();
        }
        Some(StreamFault::Swallow) => return StatusCode::ACCEPTED.into_response(),
        Some(StreamFault::HangCall { id: request_id }) => {
            let http = legacy.http.clone();
            let token = entry.token.clone();
            legacy.tasks.spawn(async move {
                tokio::select! {
                    _ = http.hang_call(Some(&id), request_id.as_ref()) => {}
                    () = token.cancelled() => {}
                }
            });
            return StatusCode::ACCEPTED.into_response();
        }
        Some(StreamFault::CutOnReply { id: request_id }) => {
            let key = request_id.map(|v| v.to_string()).unwrap_or_default();
            entry
                .cut
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(key);
        }
    }
    let mut inbound = entry.inbound.clone();
    let delivered = tokio::select! {
        sent = inbound.send(message) => sent.is_ok(),
        () = entry.token.cancelled() => false,
    };
    if !delivered {
        return unknown_session(&id);
    }
    StatusCode::ACCEPTED.into_response()
}

fn unknown_session(id: &str) -> Response {
    refuse(
        StatusCode::NOT_FOUND,
        "unknown_session",
        format!("no open session {id:?} (unknown, or its event stream has ended)"),
    )
}
