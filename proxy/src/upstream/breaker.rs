//! Per-upstream circuit breaker: after `threshold` consecutive connect failures the upstream
//! is failed fast for `cooldown` instead of stacking connects against it. When the cool-down
//! ends one trial connect is let through (half-open); its success closes the circuit, its
//! failure opens it for another cool-down.

use std::time::Duration;

use tokio::time::Instant;

#[derive(Debug, Clone, Copy)]
pub struct BreakerPolicy {
    /// Consecutive failures that open the circuit; 0 disables the breaker.
    pub threshold: u32,
    pub cooldown: Duration,
}

#[derive(Debug, Default)]
pub struct Breaker {
    consecutive_failures: u32,
    open_until: Option<Instant>,
}

impl Breaker {
    /// `Ok` when a connect may be attempted now; `Err(retry_in)` while the circuit is open.
    /// Past the cool-down the first caller gets the trial and the circuit stays open for the
    /// others until that trial reports.
    pub fn admit(&mut self, policy: &BreakerPolicy, now: Instant) -> Result<(), Duration> {
        match self.open_until {
            Some(until) if now < until => Err(until - now),
            Some(_) => {
                self.open_until = Some(now + policy.cooldown);
                Ok(())
            }
            None => Ok(()),
        }
    }

    pub fn success(&mut self) {
        self.consecutive_failures = 0;
        self.open_until = None;
    }

    /// Records a failed connect; returns true when this failure opened the circuit.
    pub fn failure(&mut self, policy: &BreakerPolicy, now: Instant) -> bool {
        self.consecutive_failures = self.consecutive_failures.saturating_add(1);
        if policy.threshold == 0 || self.consecutive_failures < policy.threshold {
            return false;
        }
        let was_closed = self.open_until.is_none();
        self.open_until = Some(now + policy.cooldown);
        was_closed
    }

    pub fn is_open(&self, now: Instant) -> bool {
        self.open_until.is_some_and(|until| now < until)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: BreakerPolicy = BreakerPolicy {
        threshold: 3,
        cooldown: Duration::from_secs(10),
    };

    #[test]
    fn opens_after_threshold_then_half_opens_once() {
        let t0 = Instant::now();
        let mut b = Breaker::default();
        assert!(!b.failure(&POLICY, t0));
        assert!(!b.failure(&POLICY, t0));
        assert!(
            b.admit(&POLICY, t0).is_ok(),
            "still closed below the threshold"
        );
        assert!(b.failure(&POLICY, t0), "third failure opens");
        assert_eq!(
            b.admit(&POLICY, t0 + Duration::from_secs(4)),
            Err(Duration::from_secs(6))
        );
        let after = t0 + Duration::from_secs(11);
        assert!(
            b.admit(&POLICY, after).is_ok(),
            "one trial after the cool-down"
        );
        assert!(b.admit(&POLICY, after).is_err(), "others still fail fast");
        assert!(
            !b.failure(&POLICY, after),
            "failed trial re-opens (already open)"
        );
        assert!(b.is_open(after + Duration::from_secs(9)));
        assert!(b.admit(&POLICY, after + Duration::from_secs(10)).is_ok());
        b.success();
        assert!(!b.is_open(after + Duration::from_secs(10)));
        assert!(b.admit(&POLICY, after + Duration::from_secs(10)).is_ok());
        assert!(!b.failure(&POLICY, after), "count restarted after success");
    }

    #[test]
    fn threshold_zero_never_opens() {
        let policy = BreakerPolicy {
            threshold: 0,
            cooldown: Duration::from_secs(1),
        };
        let mut b = Breaker::default();
        let now = Instant::now();
        for _ in 0..100 {
            assert!(!b.failure(&policy, now));
        }
        assert!(b.admit(&policy, now).is_ok());
    }
}
