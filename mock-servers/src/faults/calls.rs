//! What became of the mock's `tools/call`s once their client gave up: cancellations received
//! (`notifications/cancelled`), calls cancelled while in flight, and of those how many stopped
//! and how many ran to their end anyway (work nobody will read); calls held by `hang-call`.
//!
//! Invariant: every count only grows, except `hung` (a gauge, released by [`HungGuard`]'s
//! drop); each cancelled call is counted once, as stopped or as finished, when it ends.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;
use tokio_util::sync::CancellationToken;

/// The counts, shared by the transports and the tools (one per mock).
#[derive(Debug, Default)]
pub struct CallStats {
    cancels_received: AtomicU64,
    cancelled: AtomicU64,
    stopped: AtomicU64,
    finished_after_cancel: AtomicU64,
    hung: Arc<AtomicU64>,
}

/// A snapshot of [`CallStats`] (part of `GET /control` and of the stdio stats file).
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
pub struct CallCounts {
    /// `notifications/cancelled` messages received (for any request id).
    pub cancels_received: u64,
    /// `tools/call`s whose cancellation came while they ran (a `notifications/cancelled` for
    /// their id, or their session or connection ending).
    pub cancelled: u64,
    /// Of `cancelled`: calls that stopped early.
    pub stopped: u64,
    /// Of `cancelled`: calls that ran to their end anyway (their result reached nobody).
    pub finished_after_cancel: u64,
    /// `tools/call` requests held by `hang-call` now (HTTP): upstream work still pending.
    pub hung: u64,
}

impl CallStats {
    pub fn snapshot(&self) -> CallCounts {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        CallCounts {
            cancels_received: get(&self.cancels_received),
            cancelled: get(&self.cancelled),
            stopped: get(&self.stopped),
            finished_after_cancel: get(&self.finished_after_cancel),
            hung: get(&self.hung),
        }
    }

    /// Counts one `notifications/cancelled` received.
    pub fn cancel_received(&self) {
        self.cancels_received.fetch_add(1, Ordering::Relaxed);
    }

    /// A call ended; `cancelled`: its cancellation had come; `finished`: it produced its result.
    pub fn ended(&self, cancelled: bool, finished: bool) {
        if !cancelled {
            return;
        }
        self.cancelled.fetch_add(1, Ordering::Relaxed);
        if finished {
            self.finished_after_cancel.fetch_add(1, Ordering::Relaxed);
        } else {
            self.stopped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Watches one call running under `ct` (rmcp cancels it on `notifications/cancelled` for
    /// the call's id, or when the session ends); [`CallWatch::finish`] or its drop counts it.
    pub fn watch(self: &Arc<Self>, ct: CancellationToken) -> CallWatch {
        CallWatch {
            stats: self.clone(),
            ct,
            done: false,
        }
    }

    /// Counts one call held by `hang-call` until the guard drops.
    pub fn hold(&self) -> HungGuard {
        self.hung.fetch_add(1, Ordering::Relaxed);
        HungGuard(self.hung.clone())
    }
}

/// One running call; counted as it ends (dropped unfinished: stopped).
#[derive(Debug)]
pub struct CallWatch {
    stats: Arc<CallStats>,
    ct: CancellationToken,
    done: bool,
}

impl CallWatch {
    /// The call ended; `finished`: with its result (not an early stop).
    pub fn finish(mut self, finished: bool) {
        self.done = true;
        self.stats.ended(self.ct.is_cancelled(), finished);
    }
}

impl Drop for CallWatch {
    fn drop(&mut self) {
        if !self.done {
            self.stats.ended(self.ct.is_cancelled(), false);
        }
    }
}

/// A call held by `hang-call`; the gauge goes down when it drops.
#[derive(Debug)]
pub struct HungGuard(Arc<AtomicU64>);

impl Drop for HungGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cancelled_call_is_stopped_or_finished_once() {
        let stats = Arc::new(CallStats::default());
        let ct = CancellationToken::new();
        let w = stats.watch(ct.clone());
        ct.cancel();
        w.finish(true);
        let ct = CancellationToken::new();
        let w = stats.watch(ct.clone());
        ct.cancel();
        drop(w);
        stats.watch(CancellationToken::new()).finish(true);
        let c = stats.snapshot();
        assert_eq!((c.cancelled, c.finished_after_cancel, c.stopped), (2, 1, 1));
        let g = stats.hold();
        assert_eq!(stats.snapshot().hung, 1);
        drop(g);
        assert_eq!(stats.snapshot().hung, 0);
    }
}
