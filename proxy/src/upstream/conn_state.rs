//! The explicit lifecycle of one upstream connection: `connecting → active → closing → closed`
//! (or `connecting → closed` when the connect fails). States only move forward, so a second
//! close is a no-op, and each move keeps `mcp_proxy_upstream_connections{state}` exact.

use std::sync::atomic::{AtomicU8, Ordering};

use prometheus_client::metrics::gauge::Gauge;

use crate::ops::metrics::Metrics;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub enum ConnState {
    Connecting = 0,
    Active = 1,
    Closing = 2,
    Closed = 3,
}

impl ConnState {
    fn from_u8(v: u8) -> Self {
        match v {
            0 => Self::Connecting,
            1 => Self::Active,
            2 => Self::Closing,
            _ => Self::Closed,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Self::Connecting => "connecting",
            Self::Active => "active",
            Self::Closing => "closing",
            Self::Closed => "closed",
        }
    }
}

/// The state of one connection and the gauges it moves. Starts in `connecting`.
pub struct StateCell {
    state: AtomicU8,
    /// One gauge per live state (`closed` is not a population worth a gauge).
    gauges: [Gauge; 3],
}

impl StateCell {
    pub fn new(metrics: &Metrics, upstream: &str) -> Self {
        let gauges = [ConnState::Connecting, ConnState::Active, ConnState::Closing]
            .map(|s| metrics.upstream_state(upstream, s.label()));
        gauges[0].inc();
        Self {
            state: AtomicU8::new(ConnState::Connecting as u8),
            gauges,
        }
    }

    pub fn get(&self) -> ConnState {
        ConnState::from_u8(self.state.load(Ordering::Acquire))
    }

    /// Moves to `to` if that is forward of the current state; returns whether it moved.
    /// Exactly one caller wins each move, which is what makes close idempotent.
    pub fn advance(&self, to: ConnState) -> bool {
        let mut current = self.state.load(Ordering::Acquire);
        loop {
            if current >= to as u8 {
                return false;
            }
            match self.state.compare_exchange(
                current,
                to as u8,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => {
                    if let Some(g) = self.gauges.get(current as usize) {
                        g.dec();
                    }
                    if let Some(g) = self.gauges.get(to as usize) {
                        g.inc();
                    }
                    return true;
                }
                Err(actual) => current = actual,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_only_move_forward_and_gauges_follow() {
        let metrics = Metrics::default();
        let cell = StateCell::new(&metrics, "u");
        let gauge = |s: &str| metrics.upstream_state("u", s).get();
        assert_eq!((gauge("connecting"), gauge("active")), (1, 0));
        assert!(cell.advance(ConnState::Active));
        assert_eq!((gauge("connecting"), gauge("active")), (0, 1));
        assert!(!cell.advance(ConnState::Connecting), "never backwards");
        assert!(cell.advance(ConnState::Closing));
        assert!(!cell.advance(ConnState::Closing), "second close is a no-op");
        assert!(cell.advance(ConnState::Closed));
        assert!(!cell.advance(ConnState::Closed));
        assert_eq!(cell.get(), ConnState::Closed);
        assert_eq!(
            (gauge("connecting"), gauge("active"), gauge("closing")),
            (0, 0, 0)
        );
    }

    #[test]
    fn a_failed_connect_goes_straight_to_closed() {
        let metrics = Metrics::default();
        let cell = StateCell::new(&metrics, "u");
        assert!(cell.advance(ConnState::Closed));
        assert_eq!(metrics.upstream_state("u", "connecting").get(), 0);
    }
}
