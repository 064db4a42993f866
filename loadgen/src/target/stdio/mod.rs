//! A stdio MCP server measured directly (`target.stdio`), the harness being its client: the
//! scenario's mocks and placeholders first ([`started`](super::started)), then the server as
//! the child `target` with piped stdin and stdout ([`wire`]), initialized once, and the
//! harness's own loopback HTTP front ([`front`]) that the load talks to like any server. The
//! probe watches the server's process tree, not the front (which runs inside the harness).
//!
//! Ownership: the front's server task and the connection are handed to [`Processes`] as the
//! child's input closer, so its stop is the MCP stdio shutdown: the front stops, stdin is
//! closed, the server gets its grace to exit, then SIGTERM, then SIGKILL; reaped on every
//! path. Dropped without a stop, the front's task is aborted and stdin closed with it.

mod front;
mod wire;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use axum::serve::ListenerExt;
use serde_json::Value;
use tokio_util::sync::CancellationToken;
use tokio_util::task::AbortOnDropHandle;

use super::started::prepare;
use super::{Binaries, COMMAND_TARGET, Endpoint, Processes};
use crate::load::mcp;
use crate::process::spawn;
use crate::scenario::{Protocol, Scenario};
use front::Front;
use wire::Peer;

/// How long the front's in-flight exchanges get to finish when it stops.
const FRONT_GRACE: Duration = Duration::from_secs(1);

/// Starts the scenario's mocks and its `target.stdio` server; the front's endpoint to measure.
pub async fn start(
    scenario: &Scenario,
    binaries: Option<&Binaries>,
    out_dir: &Path,
    procs: &mut Processes,
) -> anyhow::Result<Endpoint> {
    let t = &scenario.target;
    let p = prepare(scenario, binaries, out_dir, procs).await?;
    let argv = t.stdio.as_deref().context("`target.stdio`")?;
    let spec = p.command_spec(scenario, "`target.stdio`", argv)?;
    let child = procs.start_stdio(&spec)?;
    let peer = Peer::start(child.stdin, child.stdout, &child.log);
    let initialized = if speaks_2025(scenario) {
        let init = initialize(&peer, t.ready_timeout).await;
        Some(init.map_err(|e| {
            anyhow!(
                "{e}; its log ({}):\n{}",
                child.log.display(),
                spawn::tail(&child.log, 8)
            )
        })?)
    } else {
        None
    };
    let front = Arc::new(Front { peer, initialized });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .context("the stdio target's HTTP front: cannot bind a loopback port")?;
    let addr = listener.local_addr()?;
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    let stop = CancellationToken::new();
    let server = axum::serve(listener, front::router(front.clone()))
        .with_graceful_shutdown(stop.clone().cancelled_owned());
    let server = AbortOnDropHandle::new(tokio::spawn(async move {
        let _ = server.await;
    }));
    procs.set_input_closer(
        COMMAND_TARGET,
        Box::pin(async move {
            stop.cancel();
            let _ = tokio::time::timeout(FRONT_GRACE, server).await;
            front.peer.close().await;
        }),
    );
    Ok(Endpoint {
        url: format!("http://{addr}{}", front::PATH),
        headers: Default::default(),
        pid: Some(child.pid),
        version: None,
        process: Some(COMMAND_TARGET),
        metrics_url: None,
        controls: p.controls,
        db_pool_max: 0.0,
        stats_dir: Some(p.stats_dir),
    })
}

/// Does any user of the load speak 2025-11-25 (which the server is then initialized for)?
fn speaks_2025(scenario: &Scenario) -> bool {
    let load = &scenario.load;
    if load.protocols.is_empty() {
        load.protocol == Protocol::V2025_11_25
    } else {
        load.protocols.contains_key(&Protocol::V2025_11_25)
    }
}

/// The harness's own `initialize` and `notifications/initialized`, within `timeout` (the
/// server's readiness); the server's result.
async fn initialize(peer: &Peer, timeout: Duration) -> anyhow::Result<Value> {
    let answer = tokio::time::timeout(timeout, peer.request(mcp::initialize(0)))
        .await
        .map_err(|_| {
            anyhow!(
                "the stdio target did not answer `initialize` within {}",
                humantime::format_duration(timeout)
            )
        })?
        .map_err(|e| anyhow!("the stdio target did not answer `initialize`: {e}"))?;
    if let Some(err) = answer.get("error") {
        bail!("the stdio target refused `initialize`: {err}");
    }
    let result = answer
        .get("result")
        .cloned()
        .context("the stdio target's answer to `initialize` has no result")?;
    peer.notify(mcp::initialized())
        .await
        .map_err(|e| anyhow!("the stdio target: {e}"))?;
    Ok(result)
}

#[cfg(test)]
#[path = "stdio_tests.rs"]
mod tests;
