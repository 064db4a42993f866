//! stdio transport: serves [`MockTools`] over stdin/stdout, through a line filter that applies
//! the stdio faults: `crash-after:N` (exit status 3 after N requests), `init-error`,
//! `init-garbage`, `hang-initialize`, `hang-call`, `slow-drip`; `list-changed-every` and
//! latency come from the tools. HTTP-only faults (`refuse`, `hang-accept`,
//! `disconnect-mid-call`, `expire-session-after`) have no stdio meaning and are ignored.
//!
//! Ownership: one writer task owns stdout (every line goes through it, so injected replies and
//! the server's never interleave); the rmcp server runs on an in-memory pipe owned by this
//! function and ends when stdin closes, which also cancels the handler's stop token (open
//! listen streams, the ticker and an unanswered `--roots-on-initialized` request end at once).

use std::path::Path;
use std::sync::Arc;

use rmcp::{ServiceExt, service::ServerInitializeError};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::faults::{FaultKind, FaultState};
use crate::stats_file::{StatsWriter, stdio_reader};
use crate::tools::MockTools;

/// Exit status of a `crash-after` crash.
pub const CRASH_EXIT_CODE: i32 = 3;

/// Serves the mock over stdin/stdout until stdin is closed, with `page_size` items per page
/// of the paginated lists (`0` = no pagination), asking the client for its roots on
/// `notifications/initialized` if `roots_on_initialized`. Nothing but MCP messages is written
/// to stdout. Stdin closing is a clean exit even before any `initialize`.
///
/// With `stats_dir`, the counters are kept in `stats_dir/<pid>.json` (see `stats_file`),
/// written a last time when stdin closes (and before a `crash-after` exit).
pub async fn serve_stdio(
    state: Arc<FaultState>,
    page_size: usize,
    roots_on_initialized: bool,
    stats_dir: Option<&Path>,
) -> anyhow::Result<()> {
    let stop = CancellationToken::new();
    let _stop = stop.clone().drop_guard();
    let (ours, theirs) = tokio::io::duplex(1 << 16);
    let tools = MockTools::new(state.clone(), stop.clone())
        .with_page_size(page_size)
        .with_roots_on_initialized(roots_on_initialized);
    let stats = match stats_dir {
        Some(dir) => {
            let t = tools.clone();
            let read = stdio_reader(state.clone(), move || (t.calls(), t.in_flight()));
            Some(
                StatsWriter::start(dir, read)
                    .map_err(|e| anyhow::anyhow!("--stats-dir {}: {e}", dir.display()))?,
            )
        }
        None => None,
    };
    let server = tokio::spawn(serve_tools(tools, theirs));
    let (from_server, mut to_server) = tokio::io::split(ours);

    let (out_tx, out_rx) = mpsc::unbounded_channel::<Vec<u8>>();
    let writer = tokio::spawn(write_stdout(out_rx, state.clone()));
    let pump_tx = out_tx.clone();
    let pump = tokio::spawn(async move {
        let mut lines = BufReader::new(from_server).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            if pump_tx.send(line.into_bytes()).is_err() {
                break;
            }
        }
    });

    let mut stdin = BufReader::new(tokio::io::stdin()).lines();
    while let Some(line) = stdin.next_line().await? {
        match filter(&state, &line) {
            Action::Forward => {
                to_server.write_all(line.as_bytes()).await?;
                to_server.write_all(b"\n").await?;
            }
            Action::Drop => {}
            Action::Reply(reply) => {
                let _ = out_tx.send(reply.into_bytes());
            }
            Action::Crash => {
                // let what was already answered reach the client (briefly), then die
                drop(out_tx);
                let _ = tokio::time::timeout(std::time::Duration::from_millis(200), writer).await;
                if let Some(stats) = stats {
                    stats.finish().await;
                }
                tracing::warn!("crash-after: exiting with status {CRASH_EXIT_CODE}");
                std::process::exit(CRASH_EXIT_CODE);
            }
        }
    }
    // Stdin closed: end what only ends on the stop token (open `subscriptions/listen`
    // streams, the ticker), or rmcp's drain would wait 5 s for them before exiting.
    stop.cancel();
    // EOF for the server (dropping a split half would not close the pipe)
    to_server.shutdown().await?;
    drop(to_server);
    let result = server.await?;
    let _ = pump.await;
    drop(out_tx);
    let _ = writer.await;
    if let Some(stats) = stats {
        stats.finish().await;
    }
    result
}

enum Action {
    Forward,
    Drop,
    Reply(String),
    Crash,
}

/// Decides what happens to one line from stdin.
fn filter(state: &FaultState, line: &str) -> Action {
    let Ok(message) = serde_json::from_str::<Value>(line) else {
        return Action::Forward; // rmcp answers malformed input itself
    };
    let method = message.get("method").and_then(Value::as_str).unwrap_or("");
    let id = message.get("id").cloned();
    if id.is_none() || method.is_empty() {
        return Action::Forward; // notifications and responses
    }
    let n = state.count_request();
    if let Some(FaultKind::CrashAfter(limit)) =
        state.active(|k| matches!(k, FaultKind::CrashAfter(_)))
        && n > limit
    {
        state.record_fired("crash-after");
        return Action::Crash;
    }
    match method {
        "initialize" | "server/discover" => {
            if state.fire(|k| *k == FaultKind::InitError).is_some() {
                let error = json!({ "jsonrpc": "2.0", "id": id, "error": {
                    "code": -32603, "message": "mock-mcp: injected fault init-error" } });
                return Action::Reply(error.to_string());
            }
            if let Some(FaultKind::InitGarbage { wrong_id }) =
                state.fire(|k| matches!(k, FaultKind::InitGarbage { .. }))
            {
                return Action::Reply(if wrong_id {
                    json!({ "jsonrpc": "2.0", "id": format!("not-{}", id.unwrap_or_default()), "result": {} })
                        .to_string()
                } else {
                    "{\"jsonrpc\": \"2.0\", \"id\": ".to_string()
                });
            }
            if state.fire(|k| *k == FaultKind::HangInitialize).is_some() {
                return Action::Drop;
            }
        }
        "tools/call" if state.fire(|k| *k == FaultKind::HangCall).is_some() => return Action::Drop,
        _ => {}
    }
    Action::Forward
}

async fn serve_tools(tools: MockTools, io: tokio::io::DuplexStream) -> anyhow::Result<()> {
    let (read, write) = tokio::io::split(io);
    let service = match tools.serve((read, write)).await {
        Ok(service) => service,
        Err(ServerInitializeError::ConnectionClosed(context)) => {
            tracing::debug!(%context, "stdin closed before initialization");
            return Ok(());
        }
        Err(e) => return Err(e.into()),
    };
    let reason = service.waiting().await?;
    tracing::debug!(?reason, "stdio session ended");
    Ok(())
}

/// The only writer of stdout: one line per message, dripped byte by byte under `slow-drip`.
async fn write_stdout(mut lines: mpsc::UnboundedReceiver<Vec<u8>>, state: Arc<FaultState>) {
    let mut stdout = tokio::io::stdout();
    while let Some(mut line) = lines.recv().await {
        line.push(b'\n');
        let written = match state.fire(|k| matches!(k, FaultKind::SlowDrip { .. })) {
            Some(FaultKind::SlowDrip { per_byte }) => {
                let mut r = Ok(());
                for b in &line {
                    tokio::time::sleep(per_byte).await;
                    r = stdout.write_all(std::slice::from_ref(b)).await;
                    if r.is_err() {
                        break;
                    }
                    let _ = stdout.flush().await;
                }
                r
            }
            _ => stdout.write_all(&line).await,
        };
        if written.is_err() || stdout.flush().await.is_err() {
            return;
        }
    }
}
