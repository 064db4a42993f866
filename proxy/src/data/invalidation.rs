//! Cross-replica cache invalidation over PostgreSQL `LISTEN/NOTIFY`.
//!
//! Replicas share one PostgreSQL but each caches keys, configs and merged lists in memory. A
//! write that changes what a cache holds sends a notification on the notify channel **inside
//! its own transaction** ([`crate::store::Store`]), so a rolled-back change notifies nobody and
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
//! revoke_key}`); hearing its own notification afterwards is harmless.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::{PgListener, PgPool, PgPoolOptions};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::state::AppState;
use crate::upstream::backoff::Backoff;

/// The longest channel name PostgreSQL keeps (`NAMEDATALEN - 1`); longer ones are truncated.
const MAX_CHANNEL_LEN: usize = 63;
/// How long closing the listener's connection may take at shutdown or after an error.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

/// What a notification tells a replica to drop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invalidation {
    /// One API key, by its SHA-256 (revoked, or created: unknown keys are cached as absent).
    Key([u8; 32]),
    /// One instance's config and merged lists.
    Instance(String),
    /// Everything cached (a seed was applied; or the listener (re)connected and may have missed
    /// notifications).
    All,
}

/// A payload that is not one of ours (logged and ignored).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("unknown invalidation payload (expected `all`, `key:HEX64` or `instance:ID`)")]
    Unknown,
    #[error("key payload is not 64 hex digits")]
    BadKey,
    #[error("instance payload without an id")]
    EmptyInstance,
}

impl Invalidation {
    /// The notification payload: `all`, `key:<64 hex digits>` or `instance:<id>`.
    pub fn encode(&self) -> String {
        match self {
            Invalidation::Key(hash) => format!("key:{}", hex::encode(hash)),
            Invalidation::Instance(id) => format!("instance:{id}"),
            Invalidation::All => "all".to_string(),
        }
    }

    /// The `kind` label of `mcp_proxy_invalidations_total`.
    pub fn kind(&self) -> &'static str {
        match self {
            Invalidation::Key(_) => "key",
            Invalidation::Instance(_) => "instance",
            Invalidation::All => "all",
        }
    }
}

impl FromStr for Invalidation {
    type Err = ParseError;

    fn from_str(payload: &str) -> Result<Self, ParseError> {
        if payload == "all" {
            return Ok(Invalidation::All);
        }
        if let Some(hex) = payload.strip_prefix("key:") {
            let mut hash = [0u8; 32];
            hex::decode_to_slice(hex, &mut hash).map_err(|_| ParseError::BadKey)?;
            return Ok(Invalidation::Key(hash));
        }
        if let Some(id) = payload.strip_prefix("instance:") {
            if id.is_empty() {
                return Err(ParseError::EmptyInstance);
            }
            return Ok(Invalidation::Instance(id.to_string()));
        }
        Err(ParseError::Unknown)
    }
}

/// Checks a notify channel name: a plain lower-case identifier `[a-z_][a-z0-9_]*` of at most
/// 63 bytes, so it means the same to `pg_notify` and to `LISTEN` and is never truncated.
pub fn check_channel(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_');
    let rest_ok = chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if !first_ok || !rest_ok {
        return Err(format!(
            "notify channel {name:?} is not a plain identifier [a-z_][a-z0-9_]*"
        ));
    }
    if name.len() > MAX_CHANNEL_LEN {
        return Err(format!(
            "notify channel {name:?} is longer than {MAX_CHANNEL_LEN} bytes"
        ));
    }
    Ok(())
}

/// A clap value parser for `--notify-channel`.
pub fn parse_channel(name: &str) -> Result<String, String> {
    check_channel(name).map(|()| name.to_string())
}

/// A clap value parser for `--notify-url`: it must be a PostgreSQL URL.
pub fn parse_notify_url(url: &str) -> Result<String, String> {
    if is_postgres_url(url) {
        Ok(url.to_string())
    } else {
        Err("the notify URL must be a postgres:// or postgresql:// URL".to_string())
    }
}

/// Whether `url` is a PostgreSQL database URL (the only database with replicas to tell).
pub fn is_postgres_url(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

/// Drops from this replica's caches what `invalidation` names, and counts it.
pub async fn apply(state: &AppState, invalidation: &Invalidation) {
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

/// Starts the listener on `state.tracker` when the database is PostgreSQL (on SQLite there is
/// one process and nothing to hear). It listens on `notify_channel` over `notify_url` (default:
/// the database URL) until `stop` is cancelled.
pub fn spawn_listener(state: &Arc<AppState>, stop: CancellationToken) {
    let database_url = state.settings.resolved_database_url();
    if !is_postgres_url(&database_url) {
        return;
    }
    let url = state.settings.notify_url.clone().unwrap_or(database_url);
    if let Err(e) = parse_notify_url(&url) {
        tracing::error!(
            error = %e,
            "invalidation listener not started; caches rely on their TTLs"
        );
        return;
    }
    let state = state.clone();
    let tracker = state.tracker.clone();
    tracker.spawn(listen_loop(state, url, stop));
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
async fn listen_loop(state: Arc<AppState>, url: String, stop: CancellationToken) {
    let settings = &state.settings;
    let metrics = state.metrics.clone();
    let channel = settings.notify_channel.clone();
    let connect_timeout = settings.db_acquire_timeout;
    let ping_interval = settings.listener_ping_interval;
    let backoff = Backoff {
        base: settings.listener_reconnect_base_delay,
        max: settings.listener_reconnect_max_delay,
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
                apply(&state, &Invalidation::All).await;
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
    state: &AppState,
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
                        Ok(invalidation) => apply(state, &invalidation).await,
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
                let probe = crate::store::ping_listener(&mut conn.listener, &state.metrics);
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
fn truncated(payload: &str) -> String {
    match payload.char_indices().nth(100) {
        Some((at, _)) => format!("{}…", &payload[..at]),
        None => payload.to_string(),
    }
}

#[cfg(test)]
#[path = "invalidation_tests.rs"]
mod tests;
