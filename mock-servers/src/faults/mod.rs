//! The fault catalogue and its run-time state, shared by both transports.
//!
//! One [`FaultState`] per mock: the active faults (switchable at run time; watchers are told),
//! the latency, a seeded RNG so probabilistic faults are reproducible with `--seed`, and the
//! counters `GET /control` reports.

mod calls;
mod latency;
mod spec;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde::Serialize;
use tokio::sync::watch;

pub use calls::{CallCounts, CallStats, CallWatch, HungGuard};
pub use latency::{Distribution, Latency};
pub use spec::{FAULT_NAMES, Fault, FaultKind, FaultParseError};

/// Faults, latency and counters of one mock.
#[derive(Debug)]
pub struct FaultState {
    faults: watch::Sender<Vec<Fault>>,
    latency: Mutex<Latency>,
    rng: Mutex<StdRng>,
    requests: AtomicU64,
    authorized: AtomicU64,
    unauthorized: AtomicU64,
    fired: Mutex<BTreeMap<&'static str, u64>>,
    calls: Arc<CallStats>,
}

/// What `GET /control` reports.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Counters {
    /// MCP requests received (HTTP: every request to `/mcp`, and to the legacy `/sse` and
    /// `/messages`, past `--require-header`; stdio: every request message).
    pub requests: u64,
    /// HTTP requests (`/mcp`, `/sse`, `/messages`) that carried every `--require-header` (0
    /// without one).
    pub authorized: u64,
    /// HTTP requests (`/mcp`, `/sse`, `/messages`) refused with 401 by `--require-header` (not
    /// in `requests`).
    pub unauthorized: u64,
    /// `tools/call` requests that reached a tool.
    pub calls: u64,
    /// `tools/call` requests executing now.
    pub in_flight: u64,
    /// Open sessions (HTTP: rmcp's in sessionful mode, plus legacy HTTP+SSE sessions, each
    /// until its event stream is gone).
    pub sessions_open: u64,
    /// How many times each fault fired.
    pub faults_fired: BTreeMap<&'static str, u64>,
    /// The active faults and latency, as specs.
    pub faults: Vec<String>,
    pub latency: Vec<String>,
    /// Cancellations and what became of the cancelled calls; calls held by `hang-call`.
    #[serde(flatten)]
    pub cancels: CallCounts,
}

impl FaultState {
    /// `seed` makes probabilistic faults and latency samples reproducible.
    pub fn new(faults: Vec<Fault>, latency: Latency, seed: Option<u64>) -> Self {
        let rng = match seed {
            Some(seed) => StdRng::seed_from_u64(seed),
            None => StdRng::seed_from_u64(rand::random()),
        };
        Self {
            faults: watch::Sender::new(faults),
            latency: Mutex::new(latency),
            rng: Mutex::new(rng),
            requests: AtomicU64::new(0),
            authorized: AtomicU64::new(0),
            unauthorized: AtomicU64::new(0),
            fired: Mutex::default(),
            calls: Arc::default(),
        }
    }

    /// Replaces the active faults (and the latency, if given); watchers are notified.
    pub fn set(&self, faults: Vec<Fault>, latency: Option<Latency>) {
        if let Some(latency) = latency {
            *self.latency.lock().unwrap_or_else(|p| p.into_inner()) = latency;
        }
        self.faults.send_replace(faults);
    }

    pub fn faults(&self) -> Vec<Fault> {
        self.faults.borrow().clone()
    }

    pub fn latency(&self) -> Latency {
        self.latency
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// A receiver told whenever the faults change.
    pub fn watch(&self) -> watch::Receiver<Vec<Fault>> {
        self.faults.subscribe()
    }

    /// Cancellations received and what became of cancelled calls.
    pub fn calls(&self) -> &Arc<CallStats> {
        &self.calls
    }

    /// Counts one request and returns the new total.
    pub fn count_request(&self) -> u64 {
        self.requests.fetch_add(1, Ordering::Relaxed) + 1
    }

    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// Counts one HTTP request checked against `--require-header`: let through or refused.
    pub fn count_authorization(&self, authorized: bool) {
        let counter = if authorized {
            &self.authorized
        } else {
            &self.unauthorized
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// The first active fault matching `select` that fires now (its probability is rolled),
    /// counted in `faults_fired`.
    pub fn fire(&self, select: impl Fn(&FaultKind) -> bool) -> Option<FaultKind> {
        let faults = self.faults.borrow();
        let fault = faults.iter().find(|f| select(&f.kind))?;
        if fault.probability < 1.0 {
            let roll: f64 = self.rng.lock().unwrap_or_else(|p| p.into_inner()).random();
            if roll >= fault.probability {
                return None;
            }
        }
        self.record_fired(fault.kind.name());
        Some(fault.kind.clone())
    }

    /// Whether `refuse` is active with certainty: the port must be closed.
    pub fn refuses_all(&self) -> bool {
        self.faults
            .borrow()
            .iter()
            .any(|f| f.kind == FaultKind::Refuse && f.probability >= 1.0)
    }

    /// Whether a fault matching `select` is active (no roll, nothing counted).
    pub fn active(&self, select: impl Fn(&FaultKind) -> bool) -> Option<FaultKind> {
        self.faults
            .borrow()
            .iter()
            .find(|f| select(&f.kind))
            .map(|f| f.kind.clone())
    }

    pub fn record_fired(&self, name: &'static str) {
        *self
            .fired
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(name)
            .or_default() += 1;
    }

    /// A latency sample for `tool`, if any latency applies to it.
    pub fn sample_latency(&self, tool: &str) -> Option<Duration> {
        let latency = self.latency.lock().unwrap_or_else(|p| p.into_inner());
        let dist = latency.for_tool(tool)?;
        Some(dist.sample(&mut *self.rng.lock().unwrap_or_else(|p| p.into_inner())))
    }

    /// The counters, with the tool and session figures supplied by the caller.
    pub fn counters(&self, calls: u64, in_flight: u64, sessions_open: u64) -> Counters {
        Counters {
            requests: self.requests(),
            authorized: self.authorized.load(Ordering::Relaxed),
            unauthorized: self.unauthorized.load(Ordering::Relaxed),
            calls,
            in_flight,
            sessions_open,
            faults_fired: self.fired.lock().unwrap_or_else(|p| p.into_inner()).clone(),
            faults: self.faults().iter().map(ToString::to_string).collect(),
            latency: self.latency().specs(),
            cancels: self.calls.snapshot(),
        }
    }
}

impl Default for FaultState {
    fn default() -> Self {
        Self::new(Vec::new(), Latency::default(), None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_fires_the_same_sequence() {
        let run = |seed| {
            let state = FaultState::new(
                vec!["hang-call@0.3".parse().unwrap()],
                Latency::default(),
                Some(seed),
            );
            (0..200)
                .map(|_| state.fire(|k| *k == FaultKind::HangCall).is_some())
                .collect::<Vec<_>>()
        };
        assert_eq!(run(42), run(42));
        assert_ne!(run(42), run(43));
        let fired = run(42).iter().filter(|f| **f).count();
        assert!((30..90).contains(&fired), "about 30% of 200: {fired}");
    }

    #[test]
    fn fire_counts_and_switching_takes_effect() {
        let state = FaultState::default();
        assert!(state.fire(|k| *k == FaultKind::HangCall).is_none());
        state.set(vec!["hang-call".parse().unwrap()], None);
        assert!(state.fire(|k| *k == FaultKind::HangCall).is_some());
        assert_eq!(state.counters(0, 0, 0).faults_fired["hang-call"], 1);
    }
}
