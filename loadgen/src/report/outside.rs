//! What the harness counted from outside the target, on any target: the 2025-11-25 sessions
//! the measured load opened, each asked once after the settle whether the target still holds
//! it, and the upstream work the mocks saw (calls in flight, cancellations received).
//!
//! The data only: `observe` asks and reads, `verdict` judges (`sessions.held`,
//! `upstream.in_flight`), `render` shows.

use serde::{Deserialize, Serialize};

/// Both counts; either is absent when there was nothing to count.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct OutsideCounts {
    pub sessions: Option<SessionsHeld>,
    pub upstream: Option<UpstreamCounts>,
}

impl OutsideCounts {
    /// Nothing was counted.
    pub fn is_empty(&self) -> bool {
        self.sessions.is_none() && self.upstream.is_none()
    }
}

/// The measured load's 2025-11-25 sessions, asked once each (a JSON-RPC `ping` with the
/// session's id) after the settle.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct SessionsHeld {
    /// Sessions asked (every one the measured load opened and did not see lost).
    pub asked: u64,
    /// Answered with a JSON-RPC result: the target still holds them.
    pub held: u64,
    /// Of `held`: DELETEd with a 2xx answer (`sessions = "close"`).
    pub held_closed: u64,
    /// Of `held`: abandoned by their user (`sessions = "abandon"`, or a DELETE that failed).
    pub held_abandoned: u64,
    /// Answered 404 (or a 400 saying the session is unknown): released.
    pub gone: u64,
    /// Any other answer (or none in time): counted apart, see `unknown_answers`.
    pub unknown: u64,
    /// A few of the unknown answers, as `HTTP 500: …` or `timeout`.
    pub unknown_answers: Vec<String>,
    /// A few ids of held sessions.
    pub held_ids: Vec<String>,
    /// How long after the load's end they were asked, ms.
    pub asked_after_ms: u64,
}

/// Upstream work seen by the scenario's mocks after the settle (HTTP mocks' `GET /control`,
/// stdio mocks' stats files).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct UpstreamCounts {
    /// Mocks read (HTTP mocks, and stdio mock processes that wrote a stats file).
    pub mocks: u64,
    /// `tools/call`s received.
    pub calls: u64,
    /// Calls still executing or held (`hang-call`) in mocks that still run.
    pub in_flight: u64,
    /// `notifications/cancelled` received.
    pub cancels_received: u64,
    /// Calls cancelled while in flight.
    pub cancelled: u64,
    /// Of `cancelled`: stopped early.
    pub stopped: u64,
    /// Of `cancelled`: ran to their end anyway.
    pub finished_after_cancel: u64,
    /// Mocks that could not be read (`name: reason`).
    pub unread: Vec<String>,
}

impl UpstreamCounts {
    /// Adds one mock's counts.
    pub fn add(&mut self, o: &UpstreamCounts) {
        self.mocks += o.mocks;
        self.calls += o.calls;
        self.in_flight += o.in_flight;
        self.cancels_received += o.cancels_received;
        self.cancelled += o.cancelled;
        self.stopped += o.stopped;
        self.finished_after_cancel += o.finished_after_cancel;
        self.unread.extend(o.unread.iter().cloned());
    }
}
