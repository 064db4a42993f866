//! The memory bound: what the allocator holds, and load shedding near the bound (Cloud Run
//! kills an instance that passes its memory size, and every session on it with it).
//!
//! The proxy allocates through jemalloc ([`ALLOCATOR`], for every binary and test that links
//! this library; with `unprefixed_malloc_on_supported_platforms` C code such as SQLite and
//! aws-lc allocates there too). The signal is jemalloc's live bytes (`stats.allocated`): it
//! falls as soon as memory is freed, where resident memory (`VmRSS`) under glibc stayed high
//! after a burst and kept the proxy shedding until restart. Freed pages go back to the OS too:
//! [`MALLOC_CONF`] starts one background purging thread when the allocator initialises (before
//! `main`, so it is there before any baseline and no thread is added under load) and purges
//! dirty pages after about a second.
//!
//! At [`HIGH`] of the limit the proxy is under pressure: `/ready` answers 503, so the balancer
//! stops sending new work, and new sessions are refused with 503 + `Retry-After`; existing
//! sessions and sessionless (2026-07-28) requests are still served. Below [`LOW`] it leaves
//! pressure (hysteresis, so it does not flap at the edge).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::ops::metrics::Metrics;

/// The process's allocator: jemalloc, so that the live-bytes figure exists and freed memory
/// is returned.
#[global_allocator]
pub static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's options, read once when it initialises (`MALLOC_CONF` in the environment still
/// overrides them): one background thread that purges freed pages (`max_background_threads:1`:
/// thread 0, created at initialisation, never more), dirty pages purged after 1 s, no muzzy
/// stage (returned to the OS at once).
#[unsafe(export_name = "malloc_conf")]
pub static MALLOC_CONF: &[u8; 85] =
    b"background_thread:true,max_background_threads:1,dirty_decay_ms:1000,muzzy_decay_ms:0\0";

/// Share of the limit at which pressure starts.
pub const HIGH: f64 = 0.90;
/// Share of the limit below which pressure ends.
pub const LOW: f64 = 0.80;
/// How often the watcher samples the allocator.
pub const INTERVAL: Duration = Duration::from_millis(250);

/// What the process holds, in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Usage {
    /// Live bytes the program allocated (jemalloc `stats.allocated`): the shedding signal.
    pub allocated: u64,
    /// Bytes in physically resident pages the allocator maps (`stats.resident`).
    pub resident: u64,
}

/// The allocator's current figures (`None` if jemalloc cannot say).
pub fn usage() -> Option<Usage> {
    use tikv_jemalloc_ctl::{epoch, stats};
    // the statistics are a snapshot refreshed by advancing the epoch
    epoch::advance().ok()?;
    Some(Usage {
        allocated: stats::allocated::read().ok()? as u64,
        resident: stats::resident::read().ok()? as u64,
    })
}

/// Resident memory of this process, in bytes (`VmRSS` of `/proc/self/status`; `None` off
/// Linux): reported, not the signal.
pub fn rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// The pressure decision: entered at `HIGH × limit`, left below `LOW × limit`; `used` is the
/// allocator's live bytes.
pub fn next_pressure(under: bool, used: u64, limit: u64) -> bool {
    if limit == 0 {
        return false;
    }
    let share = used as f64 / limit as f64;
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
        guard.metrics.memory_limit_bytes.set(gauge(guard.limit));
        guard.sample();
        guard
    }

    /// True while the proxy sheds load.
    pub fn under_pressure(&self) -> bool {
        self.pressure.load(Ordering::Relaxed)
    }

    /// Reads the allocator (and `VmRSS`), sets the gauges and moves the pressure flag.
    pub fn sample(&self) {
        if let Some(rss) = rss_bytes() {
            self.metrics.rss_bytes.set(gauge(rss));
        }
        let Some(usage) = usage() else { return };
        self.metrics
            .memory_allocated_bytes
            .set(gauge(usage.allocated));
        self.metrics
            .memory_resident_bytes
            .set(gauge(usage.resident));
        let was = self.under_pressure();
        let now = next_pressure(was, usage.allocated, self.limit);
        if now == was || self.pressure.swap(now, Ordering::Relaxed) == now {
            return;
        }
        self.metrics.memory_pressure.set(i64::from(now));
        let mib = |b: u64| b / (1024 * 1024);
        let (allocated_mib, resident_mib) = (mib(usage.allocated), mib(usage.resident));
        let limit_mib = mib(self.limit);
        if now {
            tracing::warn!(
                allocated_mib,
                resident_mib,
                limit_mib,
                "memory near the bound: /ready is 503 and new sessions are refused"
            );
        } else {
            tracing::info!(
                allocated_mib,
                resident_mib,
                limit_mib,
                "memory back under the bound: serving new sessions again"
            );
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

fn gauge(bytes: u64) -> i64 {
    bytes.min(i64::MAX as u64) as i64
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
        // and, cleared, it takes 90 % again to come back
        assert!(!next_pressure(false, 850, limit));
        // no bound, no pressure
        assert!(!next_pressure(false, u64::MAX, 0));
        assert!(!next_pressure(true, u64::MAX, 0));
    }

    #[test]
    fn a_burst_sheds_and_clears_once_freed() {
        // a sequence of samples: up through the band, over HIGH, back into the band, under LOW
        let limit = 100 << 20;
        let mib = |m: u64| m << 20;
        let mut under = false;
        let mut seen = Vec::new();
        for used in [
            mib(50),
            mib(85),
            mib(90),
            mib(95),
            mib(85),
            mib(80),
            mib(79),
            mib(85),
        ] {
            under = next_pressure(under, used, limit);
            seen.push(under);
        }
        assert_eq!(seen, [false, false, true, true, true, true, false, false]);
    }

    #[test]
    fn the_allocator_runs_with_our_options() {
        use tikv_jemalloc_ctl::{background_thread, max_background_threads, raw};
        assert!(background_thread::read().unwrap());
        assert_eq!(max_background_threads::read().unwrap(), 1);
        let decay = |name: &[u8]| unsafe { raw::read::<isize>(name) }.unwrap();
        assert_eq!(decay(b"opt.dirty_decay_ms\0"), 1000);
        assert_eq!(decay(b"opt.muzzy_decay_ms\0"), 0);
    }

    #[test]
    fn reads_its_own_resident_memory() {
        let rss = rss_bytes().expect("/proc/self/status");
        // a test binary with a tokio runtime linked in is more than 1 MiB and less than 1 GiB
        assert!(rss > 1024 * 1024 && rss < 1024 * 1024 * 1024, "{rss}");
    }

    #[test]
    fn the_allocator_counts_what_is_live() {
        let before = usage().expect("jemalloc statistics").allocated;
        let block = vec![7u8; 64 << 20];
        let during = usage().unwrap();
        assert!(
            during.allocated >= before + (48 << 20),
            "{before} → {during:?}"
        );
        assert!(during.resident >= 64 << 20, "{during:?}");
        assert_eq!(block[block.len() - 1], 7);
        drop(block);
        let after = usage().unwrap().allocated;
        assert!(
            after < during.allocated - (48 << 20),
            "{during:?} → {after}"
        );
    }
}
