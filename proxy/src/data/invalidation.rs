//! Cross-replica cache invalidation over PostgreSQL `LISTEN/NOTIFY`.
//!
//! Replicas share one PostgreSQL but each caches keys, configs and merged lists in memory. A
//! write that changes what a cache holds sends a notification on the notify channel **inside
//! its own transaction** ([`crate::data::store::Store`]), so a rolled-back change notifies nobody and
//! a committed one is announced after it is visible. Every replica runs one listener task
//! ([`spawn_listener`]) that applies each payload ([`apply`]) to its caches.
//!
//! The listener is best effort on top of the TTLs, never instead of them: while it is down
//! (`mcp_proxy_invalidation_listener_up` is 0), notifications are lost and every cache simply
//! falls back to its TTL (auth 30 s, config and lists 60 s by default). Because what was sent
//! during an outage is gone, every (re)connect first applies [`Invalidation::All`]: the caches
//! must not trust what they held while deaf. The loop reconnects by itself with exponential
//! backoff and jitter, without limit, and ends promptly at the background stop token (its
//! connection closed). A lost connection is never silently re-established by sqlx (that would
//! hide the outage and skip the `All`), and a periodic `SELECT 1` on the listening connection
//! catches a silent network partition, which would otherwise leave the gauge at 1 while deaf.
//!
//! The writing replica applies its own change at once (`AppState::{apply_seed, create_key,
//! revoke_key}` in `app`); hearing its own notification afterwards is harmless.
//!
//! Whoever hears a payload hands it to one [`Invalidator`]: it drops what the payload names
//! from the caches ([`apply`]) and then ends the sessions of a key that is now revoked or gone
//! (through [`KeySessions`], which the layer holding the sessions implements).

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use sqlx::postgres::{PgListener, PgPool, PgPoolOptions};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use tokio_util::task::TaskTracker;

use crate::data::cache::Caches;
use crate::domain::invalidation::{Invalidation, is_postgres_url, parse_notify_url};
use crate::ops::backoff::Backoff;

/// How long closing the listener's connection may take at shutdown or after an error.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

/// Drops from this replica's caches what `invalidation` names, and counts it.
pub async fn apply(state: &Caches, invalidation: &Invalidation) {
    match invalidation {
        Invalidation::Key(hash) => state.auth.invalidate(hash).await,
        Invalidation::Instance(id) => {
            state.configs.invalidate(id).await;
            state.tools.invalidate(id).await;
            state.catalogs.invalidate(id).await;
            // learned capabilities are kept per upstream, not per instance
            state.capabilities.forget_all();
        }
        Invalidation::All => {
            state.configs.invalidate_all();
            state.auth.invalidate_all();
            state.tools.invalidate_all();
            state.catalogs.invalidate_all();
            state.capabilities.forget_all();
        }
    }
    state.metrics.invalidation(invalidation.kind());
}

/// The downstream sessions each key opened, as the layer that holds them sees them (the MCP
/// layer implements it: this layer may not use it).
pub trait KeySessions: Send + Sync {
    /// The keys (SHA-256) that opened at least one session still open.
    fn owners(&self) -> Vec<[u8; 32]>;
    /// Ends every session `key` opened (its close path runs as for a DELETE); how many.
    fn end_sessions(&self, key: [u8; 32]) -> BoxFuture<'_, usize>;
}

/// Applies what a payload says: the caches first ([`apply`]), then the sessions of every key it
/// names (`key:` one, `all` every owner) that is now revoked or gone are ended. A key whose
/// record cannot be read (store down) keeps its sessions: its requests are refused anyway
/// while the store cannot vouch for it, and the next payload checks again.
pub struct Invalidator {
    pub caches: Arc<Caches>,
    sessions: Option<Arc<dyn KeySessions>>,
}

impl Invalidator {
    pub fn new(caches: Arc<Caches>, sessions: Option<Arc<dyn KeySessions>>) -> Self {
        Self { caches, sessions }
    }

    pub async fn apply(&self, invalidation: &Invalidation) {
        apply(&self.caches, invalidation).await;
        let Some(sessions) = &self.sessions else {
            return;
        };
        let owners = sessions.owners();
        let named: Vec<[u8; 32]> = match invalidation {
            Invalidation::Key(hash) => owners.into_iter().filter(|o| o == hash).collect(),
            Invalidation::All => owners,
            Invalidation::Instance(_) => Vec::new(),
        };
        for key in named {
            match self.caches.auth.lookup(&key).await {
                Ok(Some(record)) if !record.revoked => {}
                Ok(record) => {
                    let ended = sessions.end_sessions(key).await;
                    let key_id = record.map(|r| r.id.clone()).unwrap_or_default();
                    tracing::info!(%key_id, ended, "key revoked or gone: its sessions ended");
                }
                Err(e) => tracing::warn!(
                    error = %e,
                    "cannot re-check a key that owns sessions; they stay until the next change"
                ),
            }
        }
    }
}

/// Where the listener listens and how it keeps its connection (the `--notify-*` and
/// `--listener-*` settings).
#[derive(Clone, Debug)]
pub struct ListenerConfig {
    /// The store's database URL: only PostgreSQL has replicas to hear.
    pub database_url: String,
    /// `--notify-url` (default: the database URL; PgBouncer in transaction mode cannot LISTEN).
    pub notify_url: Option<String>,
    pub channel: String,
    pub connect_timeout: Duration,
    pub ping_interval: Duration,
    pub reconnect_base_delay: Duration,
    pub reconnect_max_delay: Duration,
}

/// Starts the listener on `tracker` when the database is PostgreSQL (on SQLite there is one
/// process and nothing to hear). It listens on the channel over the notify URL (default: the
/// database URL) until `stop` is cancelled, handing what it hears to `invalidator`.
pub fn spawn_listener(
    config: ListenerConfig,
    invalidator: Arc<Invalidator>,
    tracker: &TaskTracker,
    stop: CancellationToken,
) {
    if !is_postgres_url(&config.database_url) {
        return;
    }
    let url = config
        .notify_url
        .clone()
        .unwrap_or_else(|| config.database_url.clone());
    if let Err(e) = parse_notify_url(&url) {
        tracing::error!(
            error = %e,
            "invalidation listener not started; caches rely on their TTLs"
        );
        return;
    }
    tracker.spawn(listen_loop(invalidator, config, url, stop));
}

/// How a listening connection ended.
enum Ended {
    Stopped,
    Lost(String),
}

/// One listening connection: its own one-connection pool, so closing it is explicit.
struct Connection {
    pool: PgPool,
    listener: PgListener,
}

impl Connection {
    /// Connects and `LISTEN`s on `channel`.
    async fn open(url: &str, channel: &str, timeout: Duration) -> Result<Connection, sqlx::Error> {
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .min_connections(0)
            .idle_timeout(None)
            .max_lifetime(None)
            .acquire_timeout(timeout)
            .connect_lazy(url)?;
        let attempt = async {
            let mut listener = PgListener::connect_with(&pool).await?;
            // A lost connection is reported (`Ok(None)`) and not silently re-established: this
            // loop reconnects, so the outage is visible and followed by `All`.
            listener.eager_reconnect(false);
            listener.listen(channel).await?;
            Ok::<_, sqlx::Error>(listener)
        };
        match attempt.await {
            Ok(listener) => Ok(Connection { pool, listener }),
            Err(e) => {
                let _ = tokio::time::timeout(CLOSE_TIMEOUT, pool.close()).await;
                Err(e)
            }
        }
    }

    /// Closes the connection (bounded: a dead peer cannot hold shutdown).
    async fn close(self) {
        // The listener's drop hands its connection back to the pool (after `UNLISTEN *`), and
        // closing the pool waits for that and then closes the socket.
        drop(self.listener);
        if tokio::time::timeout(CLOSE_TIMEOUT, self.pool.close())
            .await
            .is_err()
        {
            tracing::debug!("invalidation listener connection did not close in time");
        }
    }
}

/// Connect → LISTEN → up → `All` → apply each payload; on any failure: down, backoff, again.
async fn listen_loop(
    state: Arc<Invalidator>,
    config: ListenerConfig,
    url: String,
    stop: CancellationToken,
) {
    let metrics = state.caches.metrics.clone();
    let channel = config.channel.clone();
    let connect_timeout = config.connect_timeout;
    let ping_interval = config.ping_interval;
    let backoff = Backoff {
        base: config.reconnect_base_delay,
        max: config.reconnect_max_delay,
        max_attempts: u32::MAX,
    };
    // Sleeps since the listener was last up, for the backoff.
    let mut retry: u32 = 0;
    // Since when the listener has been down, once that was reported (one warning per outage).
    let mut outage: Option<Instant> = None;
    metrics.invalidation_listener_up.set(0);
    loop {
        let open = Connection::open(&url, &channel, connect_timeout);
        let opened = tokio::select! {
            _ = stop.cancelled() => return,
            opened = tokio::time::timeout(connect_timeout, open) => opened,
        };
        let opened = match opened {
            Ok(Ok(conn)) => Ok(conn),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!("connect timed out after {connect_timeout:?}")),
        };
        match opened {
            Ok(mut conn) => {
                metrics.invalidation_listener_connect("ok");
                metrics.invalidation_listener_up.set(1);
                retry = 0;
                match outage.take() {
                    Some(since) => tracing::info!(
                        %channel,
                        down_for = ?since.elapsed(),
                        "invalidation listener is back; dropping every cache entry"
                    ),
                    None => tracing::debug!(%channel, "invalidation listener up"),
                }
                // Whatever was sent while this replica was not listening is lost.
                state.apply(&Invalidation::All).await;
                let ended = serve(&state, &mut conn, &stop, ping_interval, connect_timeout).await;
                metrics.invalidation_listener_up.set(0);
                conn.close().await;
                match ended {
                    Ended::Stopped => return,
                    Ended::Lost(error) => {
                        tracing::warn!(
                            %channel,
                            %error,
                            "invalidation listener lost its connection; caches fall back to their TTLs until it is back"
                        );
                        outage = Some(Instant::now());
                    }
                }
            }
            Err(error) => {
                metrics.invalidation_listener_connect("error");
                if outage.is_none() {
                    tracing::warn!(
                        %channel,
                        %error,
                        "invalidation listener cannot connect; caches fall back to their TTLs; retrying with backoff"
                    );
                    outage = Some(Instant::now());
                } else {
                    tracing::debug!(%error, "invalidation listener connect failed again");
                }
            }
        }
        let delay = backoff.delay(retry);
        retry = retry.saturating_add(1);
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(delay) => {}
        }
    }
}

/// Applies every payload until `stop`, a lost connection or an error. Every `ping_interval`
/// (if not zero) a `SELECT 1` bounded by `ping_timeout` proves the connection still answers,
/// so a silent network partition is noticed instead of leaving the gauge at 1.
async fn serve(
    state: &Invalidator,
    conn: &mut Connection,
    stop: &CancellationToken,
    ping_interval: Duration,
    ping_timeout: Duration,
) -> Ended {
    let mut ping = (!ping_interval.is_zero()).then(|| {
        let mut tick = tokio::time::interval_at(Instant::now() + ping_interval, ping_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick
    });
    loop {
        let ping_due = async {
            match &mut ping {
                Some(tick) => {
                    tick.tick().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = stop.cancelled() => return Ended::Stopped,
            // `try_recv` is cancel-safe: a partly read message stays in the buffer.
            received = conn.listener.try_recv() => match received {
                Ok(Some(notification)) => {
                    match notification.payload().parse::<Invalidation>() {
                        Ok(invalidation) => state.apply(&invalidation).await,
                        Err(e) => tracing::warn!(
                            error = %e,
                            payload = %truncated(notification.payload()),
                            "ignored an invalidation payload"
                        ),
                    }
                }
                Ok(None) => return Ended::Lost("connection lost".to_string()),
                Err(e) => return Ended::Lost(e.to_string()),
            },
            () = ping_due => {
                let probe = crate::data::store::ping_listener(&mut conn.listener, &state.caches.metrics);
                match tokio::time::timeout(ping_timeout, probe).await {
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => return Ended::Lost(format!("liveness check failed: {e}")),
                    Err(_) => return Ended::Lost(format!("liveness check got no answer in {ping_timeout:?}")),
                }
            }
        }
    }
}

/// At most 100 characters of a foreign payload, for a log line.
pub(crate) fn truncated(payload: &str) -> String {
    match payload.char_indices().nth(100) {
        Some((at, _)) => format!("{}…", &payload[..at]),
        None => payload.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn foreign_payloads_are_logged_truncated() {
        assert_eq!(truncated("short"), "short");
        let long = "é".repeat(150);
        let t = truncated(&long);
        assert_eq!(t.chars().count(), 101);
        assert!(t.ends_with('…'));
    }
}
