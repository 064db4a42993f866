//! Stage 5b, counted from outside (after the settle, before the decision): the measured
//! load's 2025-11-25 sessions asked once each whether the target still holds them (after
//! `[leaks] expect_reaped_within` from the load's end, if set), and the mocks' upstream
//! counts; their checks (`sessions.held`, `upstream.in_flight`) and notes.

use std::time::Duration;

use super::Stage;
use super::timeline::Loaded;
use crate::load::{SessionFate, SessionRecord};
use crate::observe::sessions::{self, Asked};
use crate::observe::upstream;
use crate::report::OutsideCounts;
use crate::verdict::Check;
use crate::verdict::outside::{sessions_held_check, upstream_in_flight_check};

/// What was counted, its checks and its notes.
pub(super) struct Outside {
    pub counts: OutsideCounts,
    pub checks: Vec<Check>,
    pub notes: Vec<String>,
}

/// Counts from outside; `sigterm`: the target was told to stop (its sessions are not asked).
pub(super) async fn count(s: &Stage<'_>, loaded: &Loaded, sigterm: bool) -> Outside {
    let mut notes = Vec::new();
    let asked = to_ask(&loaded.result.sessions);
    let sessions = if sigterm || asked.is_empty() || s.interrupted() {
        None
    } else {
        wait_for_reaping(s, loaded).await;
        let after = s.sampler.now_ms().saturating_sub(loaded.load_end_t_ms);
        match sessions::ask(&s.tgt.url, &s.tgt.headers, &asked).await {
            Ok(mut h) => {
                h.asked_after_ms = after;
                Some(h)
            }
            Err(e) => {
                notes.push(format!("sessions could not be asked: {e:#}"));
                None
            }
        }
    };
    let upstream = upstream::read(&s.tgt.controls, s.tgt.stats_dir.as_deref()).await;
    let mut checks = Vec::new();
    if !sigterm {
        checks.push(sessions_held_check(sessions.as_ref(), &s.scenario.leaks));
    }
    checks.push(upstream_in_flight_check(upstream.as_ref()));
    if let Some(h) = &sessions {
        if h.held > 0 {
            notes.push(format!(
                "sessions still held {} s after the load: {} ({} DELETEd, {} abandoned), e.g. {}",
                h.asked_after_ms / 1000,
                h.held,
                h.held_closed,
                h.held_abandoned,
                h.held_ids.join(", ")
            ));
        }
        if h.unknown > 0 {
            notes.push(format!(
                "sessions with an unknown answer: {} ({})",
                h.unknown,
                h.unknown_answers.join("; ")
            ));
        }
    }
    if let Some(u) = &upstream {
        notes.extend(u.unread.iter().map(|x| format!("mock not read: {x}")));
    }
    Outside {
        counts: OutsideCounts { sessions, upstream },
        checks,
        notes,
    }
}

/// The sessions to ask: every one the target did not already answer 404 on.
fn to_ask(records: &[SessionRecord]) -> Vec<Asked> {
    let mut v: Vec<Asked> = records
        .iter()
        .filter(|r| r.fate != SessionFate::Lost)
        .map(|r| Asked {
            id: r.id.clone(),
            deleted: r.fate == SessionFate::Closed
                && r.delete_status.is_some_and(|c| (200..300).contains(&c)),
        })
        .collect();
    v.sort_by(|a, b| a.id.cmp(&b.id));
    v
}

/// With `expect_reaped_within`, waits until that long after the load's end (the bar says so).
async fn wait_for_reaping(s: &Stage<'_>, loaded: &Loaded) {
    let Some(within) = s.scenario.leaks.expect_reaped_within else {
        return;
    };
    let due = loaded.load_end_t_ms + within.as_millis() as u64;
    s.bar.set_prefix("reaping");
    while !s.interrupted() {
        let now = s.sampler.now_ms();
        if now >= due {
            break;
        }
        s.bar.set_message(format!(
            "asking the sessions in {} s (expect_reaped_within)",
            (due - now).div_ceil(1000)
        ));
        tokio::time::sleep(Duration::from_millis(250).min(Duration::from_millis(due - now))).await;
    }
}
