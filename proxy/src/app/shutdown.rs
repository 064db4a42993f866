//! Shutdown: signals, and the drain sequence that closes everything in order.
//!
//! Order: stop accepting (axum graceful shutdown, `/ready` → 503, new MCP requests → 503) →
//! wait for in-flight MCP requests up to the deadline → cancel every downstream session and
//! SSE stream → wait for connections to finish and sessions to end (closing their per-session clients) →
//! close every shared upstream client and child →
//! final `last_used_at` flush and the other background tasks → close the DB pool.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::app::state::AppState;

/// Resolves on SIGTERM or SIGINT.
pub async fn signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
        _ = int.recv() => tracing::info!("SIGINT: shutting down"),
    }
}

/// Re-applies the `--seed` file on every SIGHUP until `stop` is cancelled (admin path: edit
/// the seed, `kill -HUP`, and the change is served at once on this replica).
pub async fn reload_on_sighup(state: Arc<AppState>, stop: CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut hup) = signal(SignalKind::hangup()) else {
        tracing::warn!("cannot install the SIGHUP handler; seed reload disabled");
        return;
    };
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            received = hup.recv() => {
                if received.is_none() {
                    return;
                }
                match state.reload_seed().await {
                    Ok(Some(report)) => tracing::info!(?report, "SIGHUP: seed re-applied, caches dropped"),
                    Ok(None) => tracing::info!("SIGHUP: no --seed file to reload"),
                    Err(e) => tracing::error!(error = %e, "SIGHUP: seed reload failed; config unchanged"),
                }
            }
        }
    }
}

/// Waits for in-flight MCP requests to finish or the deadline to pass, then ends every
/// downstream session. Returns the number of requests still running at the deadline.
pub async fn drain_requests(state: &AppState, deadline: Instant) -> i64 {
    loop {
        let inflight = state.metrics.inflight.get();
        if inflight <= 0 {
            break;
        }
        if Instant::now() >= deadline {
            tracing::warn!(
                inflight,
                "shutdown deadline reached with requests in flight"
            );
            state.sessions_ct.cancel();
            return inflight;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Let responses of just-finished requests reach their sockets before sessions close.
    tokio::time::sleep(Duration::from_millis(50)).await;
    state.sessions_ct.cancel();
    0
}

/// Closes what requests no longer need, after the HTTP server has stopped.
pub async fn close_resources(state: &Arc<AppState>, background_stop: &CancellationToken) {
    // Sessions were cancelled by the drain; their scopes close per-session clients.
    let left = state.sessions.wait_closed(Duration::from_secs(5)).await;
    if left > 0 {
        tracing::warn!(
            left,
            "downstream sessions still open 5 s after they were cancelled"
        );
    }
    state.pool.close_all().await;
    background_stop.cancel();
    state.tracker.close();
    if tokio::time::timeout(Duration::from_secs(15), state.tracker.wait())
        .await
        .is_err()
    {
        tracing::error!(
            left = state.tracker.len(),
            "background tasks did not finish in 15 s"
        );
    }
    state.instances.clear();
    state.store.close().await;
}
