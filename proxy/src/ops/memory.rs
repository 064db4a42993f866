//! The memory bound: resident memory sampled from `/proc/self/status`, and load shedding near
//! the bound (Cloud Run kills an instance that passes its memory size, and every session on
//! it with it). At [`HIGH`] of the limit the proxy is under pressure: `/ready` answers 503,
//! so the balancer stops sending new work, and new sessions are refused with 503 +
//! `Retry-After`; existing sessions and sessionless (2026-07-28) requests are still served.
//! Below [`LOW`] it leaves pressure (hysteresis, so it does not flap at the edge).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::ops::metrics::Metrics;

/// Share of the limit at which pressure starts.
pub const HIGH: f64 = 0.90;
/// Share of the limit below which pressure ends.
pub const LOW: f64 = 0.80;
/// How often the watcher samples resident memory.
pub const INTERVAL: Duration = Duration::from_millis(250);

/// Resident memory of this process, in bytes (`VmRSS` of `/proc/self/status`; `None` off
/// Linux).
pub fn rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// The pressure decision: entered at `HIGH × limit`, left below `LOW × limit`.
pub fn next_pressure(under: bool, rss: u64, limit: u64) -> bool {
    if limit == 0 {
        return false;
    }
    let share = rss as f64 / limit as f64;
    if under { share >= LOW } else { share >= HIGH }
}

/// Whether the process is near its memory bound; one per proxy.
pub struct MemoryGuard {
    limit: u64,
    pressure: AtomicBool,
    metrics: Arc<Metrics>,
}

impl MemoryGuard {
    /// A guard for `limit_mib` (0: no bound), sampled once now.
    pub fn new(limit_mib: u64, metrics: Arc<Metrics>) -> Arc<Self> {
        let guard = Arc::new(MemoryGuard {
            limit: limit_mib * 1024 * 1024,
            pressure: AtomicBool::new(false),
            metrics,
        });
        guard
            .metrics
            .memory_limit_bytes
            .set(guard.limit.min(i64::MAX as u64) as i64);
        guard.sample();
        guard
    }

    /// True while the proxy sheds load.
    pub fn under_pressure(&self) -> bool {
        self.pressure.load(Ordering::Relaxed)
    }

    /// Reads resident memory and moves the pressure flag.
    pub fn sample(&self) {
        let Some(rss) = rss_bytes() else { return };
        self.metrics.rss_bytes.set(rss.min(i64::MAX as u64) as i64);
        let was = self.under_pressure();
        let now = next_pressure(was, rss, self.limit);
        if now != was {
            self.pressure.store(now, Ordering::Relaxed);
            self.metrics.memory_pressure.set(i64::from(now));
            let mib = rss / (1024 * 1024);
            let limit = self.limit / (1024 * 1024);
            if now {
                tracing::warn!(
                    rss_mib = mib,
                    limit_mib = limit,
                    "memory near the bound: /ready is 503 and new sessions are refused"
                );
            } else {
                tracing::info!(
                    rss_mib = mib,
                    limit_mib = limit,
                    "memory back under the bound: serving new sessions again"
                );
            }
        }
    }

    /// Samples every [`INTERVAL`] on `tracker` until `stop` (no task at all without a bound).
    pub fn spawn_watcher(self: &Arc<Self>, stop: CancellationToken, tracker: &TaskTracker) {
        if self.limit == 0 {
            return;
        }
        let this = self.clone();
        tracker.spawn(async move {
            let mut tick = tokio::time::interval(INTERVAL);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = tick.tick() => this.sample(),
                    _ = stop.cancelled() => break,
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pressure_has_hysteresis() {
        let limit = 1000;
        assert!(!next_pressure(false, 899, limit));
        assert!(next_pressure(false, 900, limit));
        // once under pressure, it holds until below 80 %
        assert!(next_pressure(true, 850, limit));
        assert!(next_pressure(true, 800, limit));
        assert!(!next_pressure(true, 799, limit));
        // no bound, no pressure
        assert!(!next_pressure(false, u64::MAX, 0));
        assert!(!next_pressure(true, u64::MAX, 0));
    }

    #[test]
    fn reads_its_own_resident_memory() {
        let rss = rss_bytes().expect("/proc/self/status");
        // a test binary with a tokio runtime linked in is more than 1 MiB and less than 1 GiB
        assert!(rss > 1024 * 1024 && rss < 1024 * 1024 * 1024, "{rss}");
    }
}
