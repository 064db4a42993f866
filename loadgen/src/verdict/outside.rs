//! The checks of what was counted from outside the target (`report::outside`): sessions the
//! target still holds after the settle (`sessions.held`), and upstream work the mocks still
//! run (`upstream.in_flight`). Either is skipped, saying why, when there was nothing to count.

use crate::report::{Check, Kind, SessionsHeld, UpstreamCounts};
use crate::scenario::Leaks;

fn leak(name: &str, unit: &str, value: Option<f64>, limit: f64, skipped: Option<String>) -> Check {
    Check {
        name: name.into(),
        kind: Kind::Leak,
        unit: unit.into(),
        baseline: Some(0.0),
        peak: None,
        value,
        limit,
        passed: skipped.is_some() || value.is_some_and(|v| v <= limit),
        skipped,
    }
}

/// `sessions.held`: the load's sessions the target still holds, within `[leaks] sessions`.
/// A session DELETEd with a 2xx answer and still held counts like an abandoned one.
pub fn sessions_held_check(held: Option<&SessionsHeld>, leaks: &Leaks) -> Check {
    let limit = f64::from(leaks.sessions);
    match held {
        Some(h) if h.asked > 0 => leak(
            "sessions.held",
            "sessions",
            Some(h.held as f64),
            limit,
            None,
        ),
        Some(_) | None => leak(
            "sessions.held",
            "sessions",
            None,
            limit,
            Some("the measured load opened no 2025-11-25 session to ask about".into()),
        ),
    }
}

/// `upstream.in_flight`: calls the mocks still execute (or hold) after the settle; 0 allowed.
pub fn upstream_in_flight_check(up: Option<&UpstreamCounts>) -> Check {
    match up {
        Some(u) if u.mocks > 0 => leak(
            "upstream.in_flight",
            "calls",
            Some(u.in_flight as f64),
            0.0,
            None,
        ),
        _ => leak(
            "upstream.in_flight",
            "calls",
            None,
            0.0,
            Some(
                "no mock of the harness's to read (an external target's upstreams are its own)"
                    .into(),
            ),
        ),
    }
}
