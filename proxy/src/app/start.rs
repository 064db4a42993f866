//! The lifecycle of a running proxy: `start` (connect the store, apply the seed, build the
//! state, bind, start the background tasks, serve) → [`RunningProxy`] → the drain and the close
//! path, which run however serving ends.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::app::settings::Settings;
use crate::app::shutdown;
use crate::app::start_errors;
use crate::app::state::AppState;
use crate::data::store::Store;
use crate::data::{changes, invalidation};
use crate::domain::seed::Seed;
use crate::http::server::{Routes, ServerConfig};
use crate::ops::fd_limit;
use crate::ops::metrics::Metrics;

/// A proxy that is serving. Dropping it does not stop it; call [`RunningProxy::shutdown`].
pub struct RunningProxy {
    pub addr: SocketAddr,
    pub state: Arc<AppState>,
    task: JoinHandle<()>,
}

impl RunningProxy {
    /// The token that starts the graceful shutdown when cancelled.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.state.shutdown.clone()
    }

    /// Base URL of an instance's MCP endpoint.
    pub fn mcp_url(&self, instance_id: &str) -> String {
        format!("http://{}/mcp/{instance_id}", self.addr)
    }

    /// Waits until the server has shut down and released everything.
    pub async fn wait(self) {
        if let Err(e) = self.task.await {
            tracing::error!(error = %e, "server task failed");
        }
    }

    /// Starts the graceful shutdown and waits for it to complete.
    pub async fn shutdown(self) {
        self.state.shutdown.cancel();
        self.wait().await;
    }
}

/// Validates the seed if any, connects the store (running migrations), binds, applies the
/// seed, and serves. Every error names the setting it is about.
pub async fn start(settings: Settings) -> anyhow::Result<RunningProxy> {
    // Validate the seed before the database is touched (no file is created for a bad seed);
    // it is applied through the state below.
    let seed = settings.seed.as_deref().map(Seed::load).transpose();
    let seed = seed.context(start_errors::SEED)?;
    let metrics = Arc::new(Metrics::default());
    let url = settings.resolved_database_url();
    let store = Store::connect(
        &url,
        settings.db_pool_size,
        settings.db_acquire_timeout,
        metrics.clone(),
    )
    .await
    .with_context(|| start_errors::database(&url))?
    .with_notify_channel(&settings.notify_channel)?
    .with_keyring(settings.secret_key.keyring()?);
    // A store with secrets this proxy cannot open is refused before anything is served.
    store.check_secret_keys().await?;
    let server = server_config(&settings);
    let listener = start_errors::bind(settings.listen).await?;
    let addr = listener.local_addr()?;
    let state = Arc::new(AppState::build(settings, store, metrics)?);
    if let Some(seed) = &seed {
        let report = state.apply_seed(seed).await?;
        tracing::info!(?report, "seed applied");
    }
    spawn_background(&state).await;
    let routes = Routes {
        full: crate::http::router(state.gateway.clone()),
        ops: crate::http::ops_router(state.gateway.clone()),
    };
    let task = tokio::spawn(run(listener, routes, server, state.clone()));
    tracing::info!(%addr, "listening");
    #[cfg(feature = "planted-leaks")]
    crate::ops::planted::current();
    Ok(RunningProxy { addr, state, task })
}

/// Raises the open-files limit to its hard limit (logged) and derives the server's limits
/// from it.
fn server_config(settings: &Settings) -> ServerConfig {
    let nofile = match fd_limit::raise_nofile() {
        Ok(limit) => {
            tracing::info!(
                soft_before = limit.soft_before,
                soft = limit.soft,
                hard = limit.hard,
                "open-files limit"
            );
            limit.soft
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot read or raise the open-files limit; assuming 1024");
            1024
        }
    };
    let config = settings.server_config(nofile);
    tracing::info!(
        max_connections = config.max_connections,
        header_read_timeout = ?config.header_read_timeout,
        keep_alive_timeout = ?config.keep_alive_timeout,
        "client connection limits"
    );
    config
}

/// The background tasks, each on the tracker until the background stop token; started once
/// the seed is applied, so a start that fails before leaves none behind.
async fn spawn_background(state: &Arc<AppState>) {
    let stop = &state.background_stop;
    let tracker = &state.tracker;
    state.pool.spawn_sweeper(stop.clone());
    state.usage.spawn_flusher(
        state.store.clone(),
        state.settings.usage_flush_interval,
        stop.clone(),
        tracker,
    );
    invalidation::spawn_listener(
        state.listener_config(),
        state.invalidator.clone(),
        tracker,
        stop.clone(),
    );
    changes::spawn_watcher(
        &state.store,
        state.invalidator.clone(),
        tracker,
        stop.clone(),
    )
    .await;
    tracker.spawn(shutdown::reload_on_sighup(state.clone(), stop.clone()));
    state.memory.spawn_watcher(stop.clone(), tracker);
}

async fn run(
    listener: tokio::net::TcpListener,
    routes: Routes,
    config: ServerConfig,
    state: Arc<AppState>,
) {
    let stop = state.shutdown.clone();
    let metrics = state.metrics.clone();
    // The server owns every connection task: aborting it below cuts them all.
    let mut server = tokio::spawn(crate::http::server::serve(
        listener, routes, config, metrics, stop,
    ));
    // The server also watches the shutdown token: with no connection open its graceful
    // shutdown ends at once, so both branches can be ready together. Whichever wins, the
    // handle is polled to completion at most once and the close path below always runs.
    let mut server_done = false;
    tokio::select! {
        _ = state.shutdown.cancelled() => {}
        result = &mut server => {
            server_done = true;
            if !state.shutdown.is_cancelled() {
                tracing::error!(?result, "server stopped on its own; shutting down");
                state.shutdown.cancel();
            }
        }
    }
    let deadline = tokio::time::Instant::now() + state.settings.shutdown_deadline;
    shutdown::drain_requests(&state, deadline).await;
    // Connections end once their last response is written; past the deadline they are cut.
    if !server_done
        && tokio::time::timeout_at(deadline + Duration::from_millis(500), &mut server)
            .await
            .is_err()
    {
        tracing::warn!("connections still open at the deadline; closing them");
        server.abort();
    }
    shutdown::close_resources(&state, &state.background_stop).await;
    tracing::info!("shutdown complete");
}
