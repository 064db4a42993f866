//! `last_used_at` written behind: requests only note the key in memory; one background task
//! (owned by the server's task tracker) writes all noted keys in one transaction per interval,
//! and once more on shutdown. Never a write per request.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::data::store::{Store, now_ms};

#[derive(Default)]
pub struct UsageRecorder {
    pending: Mutex<HashMap<Arc<str>, i64>>,
}

impl UsageRecorder {
    /// Notes that `key_id` was used now. O(1), no IO.
    pub fn record(&self, key_id: &str) {
        let now = now_ms();
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        match pending.get_mut(key_id) {
            Some(at) => *at = (*at).max(now),
            None => {
                pending.insert(Arc::from(key_id), now);
            }
        }
    }

    /// Keys noted but not yet written.
    pub fn pending(&self) -> usize {
        self.pending.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Writes every pending key in one transaction. On failure the batch is put back (newer
    /// timestamps win) so nothing is lost, and the error is returned.
    pub async fn flush(&self, store: &Store) -> Result<usize, crate::data::store::StoreError> {
        let batch: Vec<(Arc<str>, i64)> = {
            let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
            pending.drain().collect()
        };
        if batch.is_empty() {
            return Ok(0);
        }
        let rows: Vec<(String, i64)> = batch.iter().map(|(k, at)| (k.to_string(), *at)).collect();
        match store.touch_keys(&rows).await {
            Ok(()) => Ok(rows.len()),
            Err(e) => {
                let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
                for (k, at) in batch {
                    let slot = pending.entry(k).or_insert(at);
                    *slot = (*slot).max(at);
                }
                Err(e)
            }
        }
    }

    /// Starts the flusher on `tracker`; it flushes every `interval` and once more when `stop`
    /// is cancelled, then ends.
    pub fn spawn_flusher(
        self: &Arc<Self>,
        store: Store,
        interval: Duration,
        stop: CancellationToken,
        tracker: &TaskTracker,
    ) {
        let this = self.clone();
        tracker.spawn(async move {
            let mut tick = tokio::time::interval(interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tokio::select! {
                    _ = tick.tick() => {
                        if let Err(e) = this.flush(&store).await {
                            tracing::warn!(error = %e, "last_used_at flush failed; will retry");
                        }
                    }
                    _ = stop.cancelled() => break,
                }
            }
            if let Err(e) = this.flush(&store).await {
                tracing::error!(error = %e, "final last_used_at flush failed");
            }
        });
    }
}
