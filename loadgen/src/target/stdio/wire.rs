//! The harness as one stdio MCP server's client: newline-delimited JSON-RPC over the child's
//! stdin and stdout, every load user's requests in flight on it at once.
//!
//! Each request gets an id of this connection (its callers' ids may repeat across callers);
//! the answer is handed back under the caller's id. A caller's `notifications/cancelled`
//! names its own id and reaches the server under the connection's. What the server asks of
//! its client is answered here (`ping`; anything else is refused: the harness offers no
//! capability), and what it only announces (progress, log messages, list changes) is dropped. A line on stdout that is not JSON-RPC (a server logging to stdout breaks the
//! transport) is appended to the target's log.
//!
//! Ownership: [`Peer`] owns the two tasks. The writer owns the child's stdin and ends at
//! [`Peer::close`] or the peer's drop, closing it (the MCP stdio shutdown's first step); the
//! reader owns its stdout and is aborted with the peer. When stdout ends, every request in flight and every
//! later one fails at once.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{ChildStdin, ChildStdout};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::AbortOnDropHandle;

/// Lines waiting for the child's stdin before a sender waits.
const QUEUE: usize = 1024;

/// Why a request got no answer from the server.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PeerError {
    #[error("the stdio server closed its stdout (it exited, or crashed)")]
    Closed,
    #[error("the message has no id to answer")]
    NoId,
    #[error("cancelled by its caller (notifications/cancelled)")]
    Cancelled,
}

/// One request in flight: whose id it had, and where its answer goes (nowhere any more
/// when its caller gave up).
struct Waiter {
    caller_id: Value,
    reply: oneshot::Sender<Result<Value, PeerError>>,
}

impl Inflight {
    /// Forgets request `id` (answered, or cancelled): both of its entries.
    fn remove(&mut self, id: u64) -> Option<Waiter> {
        let w = self.by_id.remove(&id)?;
        let key = w.caller_id.to_string();
        if self.by_caller.get(&key) == Some(&id) {
            self.by_caller.remove(&key);
        }
        Some(w)
    }
}

#[derive(Default)]
struct Inflight {
    by_id: HashMap<u64, Waiter>,
    /// The caller's id (as JSON text) → this connection's, for `notifications/cancelled`.
    by_caller: HashMap<String, u64>,
}

struct Shared {
    inflight: Mutex<Inflight>,
    next_id: AtomicU64,
    closed: AtomicBool,
    log: PathBuf,
}

/// The connection to one stdio server; see the module doc.
pub struct Peer {
    lines: mpsc::Sender<String>,
    shared: Arc<Shared>,
    /// Ends the writer (closing stdin) even while callers still hold the peer.
    stop: CancellationToken,
    reader: AbortOnDropHandle<()>,
    writer: Mutex<Option<JoinHandle<()>>>,
}

impl Peer {
    /// Starts the reader and the writer over the child's pipes; stray stdout lines go to `log`.
    pub fn start(stdin: ChildStdin, stdout: ChildStdout, log: &Path) -> Peer {
        let (tx, rx) = mpsc::channel(QUEUE);
        let shared = Arc::new(Shared {
            inflight: Mutex::new(Inflight::default()),
            next_id: AtomicU64::new(0),
            closed: AtomicBool::new(false),
            log: log.to_path_buf(),
        });
        let stop = CancellationToken::new();
        let writer = tokio::spawn(write_lines(stdin, rx, stop.clone()));
        let reader = tokio::spawn(read_lines(stdout, shared.clone(), tx.clone()));
        Peer {
            lines: tx,
            shared,
            stop,
            reader: AbortOnDropHandle::new(reader),
            writer: Mutex::new(Some(writer)),
        }
    }

    /// Sends the request `msg` (which carries the caller's id) and waits for its answer,
    /// returned under the caller's id. A caller that stops waiting leaves the request in
    /// flight (the server is still working on it) until the server answers it, or the
    /// caller's `notifications/cancelled` names it: nothing is sent on its behalf.
    pub async fn request(&self, mut msg: Value) -> Result<Value, PeerError> {
        let caller_id = msg.get("id").cloned().ok_or(PeerError::NoId)?;
        let id = self.shared.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        let (reply, answer) = oneshot::channel();
        {
            let mut f = self.shared.inflight.lock().expect("inflight lock");
            f.by_caller.insert(caller_id.to_string(), id);
            f.by_id.insert(id, Waiter { caller_id, reply });
        }
        msg["id"] = json!(id);
        if let Err(e) = self.send(&msg).await {
            let mut f = self.shared.inflight.lock().expect("inflight lock");
            f.remove(id);
            return Err(e);
        }
        answer.await.unwrap_or(Err(PeerError::Closed))
    }

    /// Sends the notification `msg`; a `notifications/cancelled` is re-addressed to this
    /// connection's id of the request it names (dropped when that request is no longer in
    /// flight: its answer has come, which the spec allows for), which is then forgotten.
    pub async fn notify(&self, mut msg: Value) -> Result<(), PeerError> {
        if msg["method"] == "notifications/cancelled" {
            let key = msg["params"]["requestId"].to_string();
            let id = {
                let mut f = self.shared.inflight.lock().expect("inflight lock");
                let id = f.by_caller.get(&key).copied();
                // the spec has the server not answer a cancelled request: forget it now
                if let Some(w) = id.and_then(|id| f.remove(id)) {
                    let _ = w.reply.send(Err(PeerError::Cancelled));
                }
                id
            };
            let Some(id) = id else {
                return Ok(());
            };
            msg["params"]["requestId"] = json!(id);
        }
        self.send(&msg).await
    }

    async fn send(&self, msg: &Value) -> Result<(), PeerError> {
        if self.shared.closed.load(Ordering::Acquire) {
            return Err(PeerError::Closed);
        }
        self.lines
            .send(msg.to_string())
            .await
            .map_err(|_| PeerError::Closed)
    }

    /// Closes the server's stdin once the lines already queued are written, and stops
    /// reading its stdout; idempotent.
    pub async fn close(&self) {
        self.stop.cancel();
        let writer = self.writer.lock().expect("writer lock").take();
        if let Some(w) = writer {
            let _ = w.await;
        }
        self.reader.abort();
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        // the writer closes stdin when it sees this (the reader is aborted with its handle)
        self.stop.cancel();
    }
}

/// The writer task: one line per message, until `stop`; then what is queued is written and
/// stdin is closed.
async fn write_lines(
    mut stdin: ChildStdin,
    mut rx: mpsc::Receiver<String>,
    stop: CancellationToken,
) {
    loop {
        let mut line = tokio::select! {
            Some(line) = rx.recv() => line,
            () = stop.cancelled() => break,
        };
        line.push('\n');
        if stdin.write_all(line.as_bytes()).await.is_err() || stdin.flush().await.is_err() {
            break;
        }
    }
    rx.close();
    while let Ok(mut line) = rx.try_recv() {
        line.push('\n');
        if stdin.write_all(line.as_bytes()).await.is_err() {
            break;
        }
    }
    let _ = stdin.shutdown().await;
}

/// The reader task: routes each line of the server's stdout; at its end every request in
/// flight fails (its waiter is dropped).
async fn read_lines(stdout: ChildStdout, shared: Arc<Shared>, lines: mpsc::Sender<String>) {
    let mut stdout = BufReader::new(stdout);
    let mut line = String::new();
    loop {
        line.clear();
        match stdout.read_line(&mut line).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        let text = line.trim();
        if text.is_empty() {
            continue;
        }
        match serde_json::from_str::<Value>(text) {
            Ok(msg) if msg.is_object() => route(msg, &shared, &lines).await,
            _ => stray(&shared.log, text),
        }
    }
    shared.closed.store(true, Ordering::Release);
    let mut f = shared.inflight.lock().expect("inflight lock");
    f.by_id.clear();
    f.by_caller.clear();
}

/// One message from the server: an answer to one of ours, a request of its own, or a
/// notification.
async fn route(mut msg: Value, shared: &Shared, lines: &mpsc::Sender<String>) {
    let method = msg
        .get("method")
        .and_then(Value::as_str)
        .map(str::to_string);
    match (method, msg.get("id").cloned()) {
        (None, Some(id)) => {
            let waiter = id.as_u64().and_then(|id| {
                let mut f = shared.inflight.lock().expect("inflight lock");
                f.remove(id)
            });
            if let Some(w) = waiter {
                msg["id"] = w.caller_id;
                let _ = w.reply.send(Ok(msg));
            }
        }
        (Some(method), Some(id)) => {
            let answer = answer_server_request(&method, id);
            let _ = lines.send(answer.to_string()).await;
        }
        // progress, log messages, list changes: nothing here waits for them
        (Some(_), None) => {}
        (None, None) => stray(&shared.log, &msg.to_string()),
    }
}

/// The answer to a request the server sends its client: `ping` is answered; the harness
/// declares no capability, so anything else is refused as not offered.
fn answer_server_request(method: &str, id: Value) -> Value {
    if method == "ping" {
        return json!({ "jsonrpc": "2.0", "id": id, "result": {} });
    }
    json!({ "jsonrpc": "2.0", "id": id, "error": {
        "code": -32601,
        "message": format!("mcp-loadgen (a load client) offers no `{method}`: it declared no capabilities"),
    }})
}

/// Appends a stdout line that is not JSON-RPC to the target's log.
fn stray(log: &Path, text: &str) {
    if let Ok(mut f) = std::fs::OpenOptions::new().append(true).open(log) {
        let shown: String = text.chars().take(500).collect();
        let _ = writeln!(f, "[mcp-loadgen: not JSON-RPC on stdout] {shown}");
    }
}
