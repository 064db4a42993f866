//! Cross-process invalidation on SQLite: the change watcher.
//!
//! A SQLite deployment is one `serve` process, but the CLI (`mcp-proxy keys revoke|create`,
//! `seed`, `secrets …`) writes the same file from another process. Each such write appends its
//! payload to the store's change log in its own transaction ([`crate::data::store::Store`]).
//! The watcher is one tracked task with one connection of its own ([`ChangeFeed`]): every
//! [`POLL_INTERVAL`] it asks SQLite's `PRAGMA data_version`, which moves only when another
//! connection committed (no table is read while nothing changed), and then reads the rows
//! after the last one it applied and hands each payload to the [`Invalidator`]. Our own pool's
//! writes move `data_version` too: the `last_used_at` flush adds no row, and the rows this
//! process wrote (the admin path, which applied them at once) are skipped, so neither
//! invalidates anything twice.
//!
//! Like the PostgreSQL listener it is best effort over the TTLs: while its queries fail, caches
//! fall back to their TTLs (one warning per outage) and it reopens its connection; after an
//! outage, or when the log was pruned past what it had read, it applies `All`. It starts from
//! the newest row at start (the caches are empty then) and ends at the background stop token,
//! its connection closed.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::data::invalidation::{Invalidator, truncated};
use crate::data::store::{ChangeFeed, Store, StoreError};
use crate::domain::invalidation::Invalidation;

/// How often `data_version` is asked: a change written elsewhere is applied within this (plus
/// one read).
pub const POLL_INTERVAL: Duration = Duration::from_millis(200);

/// Rows read per query; more are read in further queries.
const BATCH: usize = 256;

/// Opens the watcher's connection (positioned after the newest change) and starts it on
/// `tracker` until `stop`. Nothing on PostgreSQL (its listener does this) or in-memory SQLite
/// (no other process can write it). A connection that cannot be opened is logged: caches then
/// rely on their TTLs.
pub async fn spawn_watcher(
    store: &Store,
    invalidator: Arc<Invalidator>,
    tracker: &TaskTracker,
    stop: CancellationToken,
) {
    match store.change_feed().await {
        Ok(Some(feed)) => {
            tracker.spawn(watch(store.clone(), feed, invalidator, stop));
        }
        Ok(None) => {}
        Err(e) => tracing::error!(
            error = %e,
            "change watcher not started; caches rely on their TTLs for writes by other processes"
        ),
    }
}

/// Polls until `stop`; on an error drops the connection and opens a new one at the next tick.
async fn watch(
    store: Store,
    feed: ChangeFeed,
    invalidator: Arc<Invalidator>,
    stop: CancellationToken,
) {
    let mut feed = Some(feed);
    let mut version: Option<i64> = None;
    let mut outage = false;
    let mut tick = tokio::time::interval(POLL_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tick.tick() => {}
        }
        let result = match feed.as_mut() {
            Some(f) => poll(f, &mut version, &invalidator).await,
            None => reopen(&store, &mut feed, &invalidator).await,
        };
        match result {
            Ok(()) if outage => {
                tracing::info!("change watcher is back; caches were dropped once");
                outage = false;
            }
            Ok(()) => {}
            Err(e) => {
                if !outage {
                    tracing::warn!(
                        error = %e,
                        "change watcher failed; caches fall back to their TTLs until it is back"
                    );
                    outage = true;
                }
                version = None;
                if let Some(f) = feed.take() {
                    f.close().await;
                }
            }
        }
    }
    if let Some(f) = feed {
        f.close().await;
    }
}

/// After an outage: a new connection, and `All`, since what was written meanwhile is unknown.
async fn reopen(
    store: &Store,
    feed: &mut Option<ChangeFeed>,
    invalidator: &Invalidator,
) -> Result<(), StoreError> {
    *feed = store.change_feed().await?;
    invalidator.apply(&Invalidation::All).await;
    Ok(())
}

/// One tick: if `data_version` moved (or is not known yet), applies every new row.
async fn poll(
    feed: &mut ChangeFeed,
    version: &mut Option<i64>,
    invalidator: &Invalidator,
) -> Result<(), StoreError> {
    let now = feed.data_version().await?;
    if *version == Some(now) {
        return Ok(());
    }
    // The first tick reads too: a write between the feed's opening and its first
    // `data_version` would otherwise go unseen.
    *version = Some(now);
    loop {
        let changes = feed.read(BATCH).await?;
        if changes.missed {
            tracing::warn!("change log pruned past what the watcher read; dropping every cache");
            invalidator.apply(&Invalidation::All).await;
        }
        for payload in &changes.payloads {
            match payload.parse::<Invalidation>() {
                Ok(invalidation) => invalidator.apply(&invalidation).await,
                Err(e) => tracing::warn!(
                    error = %e,
                    payload = %truncated(payload),
                    "ignored a change log payload"
                ),
            }
        }
        if changes.read < BATCH {
            return Ok(());
        }
    }
}
