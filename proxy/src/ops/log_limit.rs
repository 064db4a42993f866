//! `LogLimiter`: at most one log line per kind per interval, so a flood (a client retrying a
//! wrong key thousands of times a second) costs a line a second, not a line a request. The
//! lines held back are counted and reported with the next one let through.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// One window per kind of line.
#[derive(Debug)]
pub struct LogLimiter {
    interval: Duration,
    windows: Mutex<HashMap<&'static str, Window>>,
}

#[derive(Debug)]
struct Window {
    /// When the last line of this kind was let through.
    last: Instant,
    /// Lines of this kind held back since then.
    held_back: u64,
}

impl LogLimiter {
    pub fn new(interval: Duration) -> Self {
        Self {
            interval,
            windows: Mutex::new(HashMap::new()),
        }
    }

    /// Whether a line of `kind` may be written now: `Some(n)` with the number of lines of that
    /// kind held back since the last one, or `None` (counted) when one was written within the
    /// interval.
    pub fn admit(&self, kind: &'static str) -> Option<u64> {
        self.admit_at(kind, Instant::now())
    }

    fn admit_at(&self, kind: &'static str, now: Instant) -> Option<u64> {
        let mut windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        match windows.get_mut(kind) {
            Some(w) if now.saturating_duration_since(w.last) < self.interval => {
                w.held_back += 1;
                None
            }
            Some(w) => {
                w.last = now;
                Some(std::mem::take(&mut w.held_back))
            }
            None => {
                windows.insert(
                    kind,
                    Window {
                        last: now,
                        held_back: 0,
                    },
                );
                Some(0)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_kind_per_interval_with_the_held_back_count() {
        let limiter = LogLimiter::new(Duration::from_secs(1));
        let t0 = Instant::now();
        assert_eq!(limiter.admit_at("invalid", t0), Some(0));
        assert_eq!(
            limiter.admit_at("invalid", t0 + Duration::from_millis(10)),
            None
        );
        assert_eq!(
            limiter.admit_at("invalid", t0 + Duration::from_millis(900)),
            None
        );
        // another kind has its own window
        assert_eq!(
            limiter.admit_at("revoked", t0 + Duration::from_millis(20)),
            Some(0)
        );
        assert_eq!(
            limiter.admit_at("invalid", t0 + Duration::from_secs(1)),
            Some(2)
        );
        assert_eq!(
            limiter.admit_at("invalid", t0 + Duration::from_millis(1500)),
            None
        );
        assert_eq!(
            limiter.admit_at("invalid", t0 + Duration::from_secs(3)),
            Some(1)
        );
        assert_eq!(
            limiter.admit_at("invalid", t0 + Duration::from_secs(5)),
            Some(0)
        );
    }
}
