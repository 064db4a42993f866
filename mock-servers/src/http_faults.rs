//! The HTTP faults: at the listener (`hang-accept`, `refuse` with a probability) and in a
//! middleware in front of rmcp (everything that depends on the JSON-RPC method).
//!
//! The middleware also stands in front of the legacy HTTP+SSE routes (`legacy_sse`): a
//! `POST /messages?session_id=ID` is judged like a POST to `/mcp` (its session from the query),
//! but a fault that would answer on the POST's own body (`init-garbage`, `hang-initialize`,
//! `hang-call`, `disconnect-mid-call`) is handed to the session as a [`StreamFault`] instead,
//! since that transport answers on the session's event stream.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::Query;
use axum::extract::{Request, State};
use axum::http::{StatusCode, Uri, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use rmcp::transport::streamable_http_server::session::SessionManager;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use crate::faults::{Counters, FaultKind, FaultState};
use crate::tools::MockTools;

const MAX_BODY: usize = 4 * 1024 * 1024;

/// The legacy HTTP+SSE transport's message endpoint (`POST /messages?session_id=ID`).
pub const MESSAGES_PATH: &str = "/messages";
/// The query parameter naming a legacy session.
pub const SESSION_QUERY: &str = "session_id";

/// The legacy session named by a `…?session_id=ID` URI, if any.
pub fn legacy_session(uri: &Uri) -> Option<String> {
    let Query(query) = Query::<HashMap<String, String>>::try_from_uri(uri).ok()?;
    query.get(SESSION_QUERY).cloned()
}

/// A fault the middleware hands a legacy `POST /messages` (a request extension), to be played
/// on the session's event stream, where that transport's answers travel.
#[derive(Debug, Clone)]
pub enum StreamFault {
    /// `init-garbage`: this text goes on the stream as the reply; the message is not delivered.
    Reply(String),
    /// `hang-initialize`: the message is accepted and never delivered (never answered).
    Swallow,
    /// `hang-call`: accepted, not delivered, held (counted in `hung`) by
    /// [`HttpFaults::hang_call`] until cancelled, the session ends or the mock stops.
    HangCall { id: Option<serde_json::Value> },
    /// `disconnect-mid-call`: delivered, and the stream is cut halfway through the reply to
    /// this request id (so the client sees its call in flight when the stream goes).
    CutOnReply { id: Option<serde_json::Value> },
}

/// What the middleware and `/control` share.
#[derive(Debug)]
pub struct HttpFaults {
    pub(crate) state: Arc<FaultState>,
    tools: MockTools,
    sessions: Option<Arc<LocalSessionManager>>,
    /// `tools/call`s per session, for `expire-session-after`.
    calls_per_session: Mutex<HashMap<String, u64>>,
    expired: Mutex<HashSet<String>>,
    /// Calls held by `hang-call`, by (session, JSON-RPC id): a `notifications/cancelled`
    /// for one ends its hang.
    hung: Mutex<HashMap<(String, String), CancellationToken>>,
    /// Open legacy HTTP+SSE sessions, each with the token that ends it (`expire-session-after`
    /// cancels it; the session tells [`HttpFaults::legacy_ended`] when it is gone).
    legacy: Mutex<HashMap<String, CancellationToken>>,
    stop: CancellationToken,
    crashed: AtomicBool,
}

impl HttpFaults {
    pub fn new(
        state: Arc<FaultState>,
        tools: MockTools,
        sessions: Option<Arc<LocalSessionManager>>,
        stop: CancellationToken,
    ) -> Self {
        Self {
            state,
            tools,
            sessions,
            calls_per_session: Mutex::default(),
            expired: Mutex::default(),
            hung: Mutex::default(),
            legacy: Mutex::default(),
            stop,
            crashed: AtomicBool::new(false),
        }
    }

    pub fn crashed(&self) -> bool {
        self.crashed.load(Ordering::Acquire)
    }

    pub async fn counters(&self) -> Counters {
        let sessions = match &self.sessions {
            Some(s) => s.sessions.read().await.len() as u64,
            None => 0,
        } + self.legacy_map().len() as u64;
        self.state
            .counters(self.tools.calls(), self.tools.in_flight(), sessions)
    }

    /// Counts a `tools/call` on `session`; true once the session is past its allowance.
    fn session_expired(&self, session: &str, limit: u64) -> bool {
        if self
            .expired
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(session)
        {
            return true;
        }
        let mut calls = self
            .calls_per_session
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let n = calls.entry(session.to_string()).or_default();
        *n += 1;
        if *n <= limit {
            return false;
        }
        calls.remove(session);
        self.expired
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(session.to_string());
        true
    }

    /// A legacy session opened; `end` ends it.
    pub fn legacy_opened(&self, session: &str, end: CancellationToken) {
        self.legacy_map().insert(session.to_string(), end);
    }

    /// A legacy session is gone: nothing is kept of it (its `expire-session-after` count and
    /// mark go too; a later POST naming it is an unknown session).
    pub fn legacy_ended(&self, session: &str) {
        self.legacy_map().remove(session);
        self.calls_per_session
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(session);
        self.expired
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(session);
    }

    fn legacy_map(&self) -> std::sync::MutexGuard<'_, HashMap<String, CancellationToken>> {
        self.legacy.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Ends a session that `expire-session-after` expired, whichever transport holds it.
    async fn close_session(&self, session: &str) {
        if let Some(sessions) = &self.sessions {
            let _ = sessions.close_session(&Arc::from(session)).await;
        }
        let end = self.legacy_map().get(session).cloned();
        if let Some(end) = end {
            end.cancel();
        }
    }

    async fn hang(&self) -> Response {
        self.stop.cancelled().await;
        StatusCode::SERVICE_UNAVAILABLE.into_response()
    }

    /// Holds a `tools/call` (`hang-call`) until shutdown, its cancellation, or its client
    /// going away (the future is dropped); counted in `hung` meanwhile.
    pub async fn hang_call(
        &self,
        session: Option<&str>,
        id: Option<&serde_json::Value>,
    ) -> Response {
        let _held = self.state.calls().hold();
        let key = (session.unwrap_or("").to_string(), id_key(id));
        let cancel = CancellationToken::new();
        self.hung_map().insert(key.clone(), cancel.clone());
        let _entry = HungEntry(self, key);
        tokio::select! {
            () = self.stop.cancelled() => StatusCode::SERVICE_UNAVAILABLE.into_response(),
            () = cancel.cancelled() => {
                self.state.calls().ended(true, false);
                StatusCode::ACCEPTED.into_response()
            }
        }
    }

    /// A `notifications/cancelled` for a call held by `hang-call` ends its hang.
    fn cancel_hung(&self, session: Option<&str>, request_id: Option<&serde_json::Value>) {
        let key = (session.unwrap_or("").to_string(), id_key(request_id));
        if let Some(cancel) = self.hung_map().remove(&key) {
            cancel.cancel();
        }
    }

    fn hung_map(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), CancellationToken>> {
        self.hung.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A JSON-RPC id as a map key (`1` and `"1"` differ, as in JSON-RPC).
fn id_key(id: Option<&serde_json::Value>) -> String {
    id.map(ToString::to_string).unwrap_or_default()
}

/// Removes a hung call's entry when its hang ends, however it ends.
struct HungEntry<'a>(&'a HttpFaults, (String, String));

impl Drop for HungEntry<'_> {
    fn drop(&mut self) {
        self.0.hung_map().remove(&self.1);
    }
}

/// A listener that applies `hang-accept` (the socket is held, never read) and `refuse` with a
/// probability below 1 (accepted and reset at once). Held sockets are released when the
/// generation stops.
pub struct FaultListener {
    inner: TcpListener,
    state: Arc<FaultState>,
    stop: CancellationToken,
}

impl FaultListener {
    pub fn new(inner: TcpListener, state: Arc<FaultState>, stop: CancellationToken) -> Self {
        Self { inner, state, stop }
    }
}

impl axum::serve::Listener for FaultListener {
    type Io = TcpStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (TcpStream, SocketAddr) {
        loop {
            let (stream, addr) = match self.inner.accept().await {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::debug!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            };
            if self.state.fire(|k| *k == FaultKind::HangAccept).is_some() {
                let stop = self.stop.clone();
                tokio::spawn(async move {
                    stop.cancelled().await;
                    drop(stream);
                });
                continue;
            }
            if self.state.fire(|k| *k == FaultKind::Refuse).is_some() {
                let _ = stream.set_zero_linger();
                drop(stream);
                continue;
            }
            let _ = stream.set_nodelay(true);
            return (stream, addr);
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.inner.local_addr()
    }
}

fn injected(status: StatusCode, fault: &str) -> Response {
    (status, format!("mock-mcp: injected fault {fault}")).into_response()
}

/// The middleware in front of rmcp's `/mcp` service (and the legacy HTTP+SSE routes).
pub async fn apply(State(ctx): State<Arc<HttpFaults>>, request: Request, next: Next) -> Response {
    let n = ctx.state.count_request();
    if let Some(FaultKind::CrashAfter(limit)) =
        ctx.state.active(|k| matches!(k, FaultKind::CrashAfter(_)))
        && n > limit
    {
        ctx.state.record_fired("crash-after");
        ctx.crashed.store(true, Ordering::Release);
        ctx.stop.cancel();
        return cut_now();
    }
    // a legacy POST names its session in the query and is answered on the session's stream
    let legacy = request.uri().path() == MESSAGES_PATH;
    let session = if legacy {
        legacy_session(request.uri())
    } else {
        request
            .headers()
            .get("mcp-session-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    if let Some(session) = &session
        && ctx
            .expired
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(session)
    {
        return injected(
            StatusCode::NOT_FOUND,
            "expire-session-after (session expired)",
        );
    }
    let (mut parts, body) = request.into_parts();
    let bytes = match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(b) => b,
        Err(_) => return (StatusCode::PAYLOAD_TOO_LARGE, "body too large").into_response(),
    };
    let message: Option<serde_json::Value> = serde_json::from_slice(&bytes).ok();
    let (disconnect, on_stream) =
        match judge(&ctx, message.as_ref(), session.as_deref(), legacy).await {
            Verdict::Answer(response) => return response,
            Verdict::Pass {
                disconnect,
                on_stream,
            } => (disconnect, on_stream),
        };
    if let Some(fault) = on_stream {
        parts.extensions.insert(fault);
    }
    let response = next
        .run(Request::from_parts(parts, Body::from(bytes)))
        .await;
    if legacy {
        return response; // a 202 with no body: nothing to cut or drip
    }
    let response = if disconnect {
        cut_mid_stream(response)
    } else {
        response
    };
    match ctx.state.fire(|k| matches!(k, FaultKind::SlowDrip { .. })) {
        Some(FaultKind::SlowDrip { per_byte }) => drip(response, per_byte),
        _ => response,
    }
}

/// What the fault rules decide for one message: answer it now, or pass it on (cut mid-response,
/// or with a fault for the legacy session's stream to apply).
enum Verdict {
    Answer(Response),
    Pass {
        disconnect: bool,
        on_stream: Option<StreamFault>,
    },
}

async fn judge(
    ctx: &HttpFaults,
    message: Option<&serde_json::Value>,
    session: Option<&str>,
    legacy: bool,
) -> Verdict {
    let method = message
        .and_then(|m| m.get("method"))
        .and_then(|m| m.as_str())
        .unwrap_or("");
    let id = message.and_then(|m| m.get("id")).cloned();
    let mut disconnect = false;
    let mut on_stream = None;
    match method {
        "initialize" | "server/discover" => {
            if ctx.state.fire(|k| *k == FaultKind::InitError).is_some() {
                return Verdict::Answer(injected(StatusCode::INTERNAL_SERVER_ERROR, "init-error"));
            }
            if let Some(FaultKind::InitGarbage { wrong_id }) = ctx
                .state
                .fire(|k| matches!(k, FaultKind::InitGarbage { .. }))
            {
                let body = if wrong_id {
                    let wrong = serde_json::json!(format!("not-{}", id.unwrap_or_default()));
                    serde_json::json!({ "jsonrpc": "2.0", "id": wrong, "result": {} }).to_string()
                } else {
                    "{\"jsonrpc\": \"2.0\", \"id\": ".to_string()
                };
                if legacy {
                    on_stream = Some(StreamFault::Reply(body));
                } else {
                    return Verdict::Answer(
                        ([(header::CONTENT_TYPE, "application/json")], body).into_response(),
                    );
                }
            } else if ctx
                .state
                .fire(|k| *k == FaultKind::HangInitialize)
                .is_some()
            {
                if !legacy {
                    return Verdict::Answer(ctx.hang().await);
                }
                on_stream = Some(StreamFault::Swallow);
            }
        }
        "tools/call" => {
            if ctx.state.fire(|k| *k == FaultKind::HangCall).is_some() {
                if !legacy {
                    return Verdict::Answer(ctx.hang_call(session, id.as_ref()).await);
                }
                on_stream = Some(StreamFault::HangCall { id });
            } else {
                if let (Some(session), Some(FaultKind::ExpireSessionAfter(limit))) = (
                    session,
                    ctx.state
                        .active(|k| matches!(k, FaultKind::ExpireSessionAfter(_))),
                ) && ctx.session_expired(session, limit)
                {
                    ctx.state.record_fired("expire-session-after");
                    ctx.close_session(session).await;
                    return Verdict::Answer(injected(
                        StatusCode::NOT_FOUND,
                        "expire-session-after (session expired)",
                    ));
                }
                disconnect = ctx
                    .state
                    .fire(|k| *k == FaultKind::DisconnectMidCall)
                    .is_some();
                if disconnect && legacy {
                    on_stream = Some(StreamFault::CutOnReply { id });
                    disconnect = false;
                }
            }
        }
        "notifications/cancelled" => {
            let request_id = message.and_then(|m| m.pointer("/params/requestId"));
            ctx.cancel_hung(session, request_id);
        }
        _ => {}
    }
    Verdict::Pass {
        disconnect,
        on_stream,
    }
}

/// A response whose body fails at once: the connection is cut without an answer.
fn cut_now() -> Response {
    let body =
        futures::stream::once(async { Err::<Bytes, _>(std::io::Error::other("injected crash")) });
    Response::builder()
        .header(header::CONTENT_TYPE, "text/event-stream")
        .body(Body::from_stream(body))
        .expect("static response")
}

/// Sends the headers and half of the first chunk, then cuts the connection.
fn cut_mid_stream(response: Response) -> Response {
    let (mut parts, body) = response.into_parts();
    parts.headers.remove(header::CONTENT_LENGTH);
    let stream = body.into_data_stream().take(1).map(|chunk| {
        chunk
            .map(|b| b.slice(..b.len() / 2))
            .map_err(std::io::Error::other)
    });
    let cut = stream.chain(futures::stream::once(async {
        Err(std::io::Error::other("injected disconnect-mid-call"))
    }));
    Response::from_parts(parts, Body::from_stream(cut))
}

/// Writes the body one byte at a time, `per_byte` apart.
fn drip(response: Response, per_byte: Duration) -> Response {
    let (parts, body) = response.into_parts();
    let bytes = body
        .into_data_stream()
        .flat_map(|chunk| {
            let items: Vec<Result<Bytes, axum::Error>> = match chunk {
                Ok(b) => (0..b.len()).map(|i| Ok(b.slice(i..i + 1))).collect(),
                Err(e) => vec![Err(e)],
            };
            futures::stream::iter(items)
        })
        .then(move |b| async move {
            tokio::time::sleep(per_byte).await;
            b
        });
    Response::from_parts(parts, Body::from_stream(bytes))
}
