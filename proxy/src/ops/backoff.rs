//! Reconnect delays: exponential from `base`, capped at `max`, with "equal jitter" (half the
//! delay fixed, half random) so replicas that lost the same upstream do not retry in lockstep.

use std::time::Duration;

use rand::RngExt;

#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    pub base: Duration,
    pub max: Duration,
    /// Connect attempts in one reconnect, the first included (at least 1).
    pub max_attempts: u32,
}

impl Backoff {
    /// The delay before retry number `retry` (0 for the first retry).
    pub fn delay(&self, retry: u32) -> Duration {
        let exp = self
            .base
            .saturating_mul(2u32.saturating_pow(retry.min(31)))
            .min(self.max);
        let half = exp / 2;
        let jitter = rand::rng().random_range(0..=half.as_micros() as u64);
        half + Duration::from_micros(jitter)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_exponentially_within_jitter_and_cap() {
        let b = Backoff {
            base: Duration::from_millis(100),
            max: Duration::from_secs(2),
            max_attempts: 5,
        };
        for (retry, full) in [
            (0, 100),
            (1, 200),
            (2, 400),
            (3, 800),
            (4, 1600),
            (5, 2000),
            (30, 2000),
        ] {
            let full = Duration::from_millis(full);
            let mut seen = std::collections::HashSet::new();
            for _ in 0..50 {
                let d = b.delay(retry);
                assert!(
                    d >= full / 2 && d <= full,
                    "retry {retry}: {d:?} outside [{:?}, {full:?}]",
                    full / 2
                );
                seen.insert(d);
            }
            assert!(seen.len() > 1, "retry {retry}: no jitter");
        }
    }
}
