//! Stage 3, baseline: the sample the leak checks compare with, once the target stands still
//! and what the warm-up left behind has gone, and a snapshot of the target's process tree then
//! (each process, its sockets), to name what grew after the settle.
//!
//! The baseline is checked against a reading taken before the warm-up: sessions and zombies
//! have a natural zero, so the baseline waits (up to `leaks.settle`) for the warm-up's to be
//! reaped, and the `sessions` check compares with the lower of the two readings. Whatever
//! else the baseline holds above the earlier reading is named in the notes: a leak of that
//! size in the load could hide behind leftovers reaped during it.

use std::time::{Duration, Instant};

use anyhow::bail;

use super::Stage;
use crate::observe::sampler::{Sample, Sampler};
use crate::observe::tree::TreeSnapshot;
use crate::report::sample::RESOURCES;
use crate::scenario::Leaks;
use crate::target::deployment::Deployment;
use crate::verdict;

/// The baseline of a run.
pub(super) struct Baseline {
    pub sample: Sample,
    /// The reading before the warm-up.
    pub before_warmup: Sample,
    /// The leak-relevant counts agreed for a second before the wait ended.
    pub stable: bool,
    /// Whom the run watches, for errors: the target (PID), or every replica.
    pub who: String,
    /// Each sampled slot's process tree at the baseline (`None`: no PID).
    pub tree: Vec<Option<TreeSnapshot>>,
}

impl Baseline {
    /// What the leak checks compare with: the baseline, with the counts that have a natural
    /// zero (sessions) taken from before the warm-up when that was lower.
    pub fn reference(&self) -> Sample {
        let mut r = self.sample;
        if let (Some(m), Some(pre)) = (r.metrics.as_mut(), self.before_warmup.metrics) {
            m.sessions = match (m.sessions, pre.sessions) {
                (Some(b), Some(p)) => Some(b.min(p)),
                (b, _) => b,
            };
        }
        r
    }

    /// What the baseline holds beyond the pre-warm-up reading and its tolerance, one line
    /// per resource.
    pub fn residue(&self, leaks: &Leaks) -> Vec<String> {
        RESOURCES
            .iter()
            .filter(|r| r.name != "rss")
            .filter_map(|r| {
                let (pre, base) = ((r.read)(&self.before_warmup)?, (r.read)(&self.sample)?);
                (base - pre > verdict::tolerance(r, leaks)).then(|| {
                    format!(
                        "the baseline holds {} {} of {} more than before the warm-up ({pre} → {base}): what the warm-up left and the target reaps later could hide a leak of that size",
                        base - pre,
                        r.unit,
                        r.name
                    )
                })
            })
            .collect()
    }
}

pub(super) async fn take(
    s: &Stage<'_>,
    deployment: Option<&Deployment>,
    before_warmup: Sample,
) -> anyhow::Result<Baseline> {
    s.bar.set_prefix("baseline");
    let leaks = &s.scenario.leaks;
    let (sample, stable) = stable_baseline(
        &s.sampler,
        &before_warmup,
        leaks,
        leaks.settle_max().max(Duration::from_secs(3)),
    )
    .await;
    let who = match (s.tgt.pid, deployment) {
        (Some(p), _) => format!("the target (PID {p})"),
        (None, Some(d)) => format!("every replica ({})", d.replicas.len()),
        (None, None) => "the target".to_string(),
    };
    if sample.gone {
        bail!("{who} exited during the warm-up");
    }
    let tree = s.sampler.snapshots().await;
    Ok(Baseline {
        sample,
        before_warmup,
        stable,
        who,
        tree,
    })
}

/// The counts that must not move for a second before the baseline is taken.
fn key(s: &Sample) -> impl PartialEq {
    (
        s.fds,
        s.tcp.close_wait,
        s.children,
        s.metrics
            .and_then(|m| m.tokio_alive_tasks)
            .map(|v| v as i64),
        s.metrics.and_then(|m| m.sessions).map(|v| v as i64),
    )
}

/// Has what the warm-up left with a natural zero (sessions, zombies) gone back to the
/// pre-warm-up reading?
fn drained(pre: &Sample, now: &Sample, leaks: &Leaks) -> bool {
    let sessions = |s: &Sample| s.metrics.and_then(|m| m.sessions);
    let sessions_back = match (sessions(pre), sessions(now)) {
        (Some(p), Some(n)) => n - p <= f64::from(leaks.sessions),
        _ => true,
    };
    sessions_back && now.children.zombies <= pre.children.zombies
}

/// Waits until the leak-relevant counts of the last second of samples agree and the
/// warm-up's sessions and zombies are gone (at most `max`); returns the baseline sample and
/// whether it was stable.
async fn stable_baseline(
    sampler: &Sampler,
    pre: &Sample,
    leaks: &Leaks,
    max: Duration,
) -> (Sample, bool) {
    let deadline = Instant::now() + max;
    let mut last = Vec::new();
    loop {
        if let Some(s) = sampler.fresh().await {
            last.push(s);
        }
        let still = last.len() >= 4 && {
            let tail = &last[last.len() - 4..];
            tail.iter().all(|s| key(s) == key(&tail[0]))
        };
        let now = last.last().copied().unwrap_or_default();
        if (still && drained(pre, &now, leaks)) || Instant::now() >= deadline {
            return (now, still);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::sample::TargetMetrics;

    fn sample(sessions: f64, children: u32, fds: u32) -> Sample {
        let mut s = Sample {
            probed: true,
            metrics: Some(TargetMetrics {
                sessions: Some(sessions),
                ..TargetMetrics::default()
            }),
            ..Sample::default()
        };
        s.children.children = children;
        s.fds.socket = fds;
        s
    }

    fn baseline(before: Sample, at: Sample) -> Baseline {
        Baseline {
            sample: at,
            before_warmup: before,
            stable: true,
            who: "the target".into(),
            tree: Vec::new(),
        }
    }

    #[test]
    fn sessions_left_by_the_warm_up_cannot_hide_sessions_left_by_the_load() {
        // 12 warm-up sessions still held at the baseline, reaped during the load, while the
        // load left 12 of its own: against the baseline that is no growth
        let b = baseline(sample(0.0, 0, 5), sample(12.0, 0, 5));
        let end = sample(12.0, 0, 5);
        let checks = verdict::leak_checks(&b.reference(), &[end], &end, &Leaks::default());
        let sessions = checks.iter().find(|c| c.name == "sessions").unwrap();
        assert!(!sessions.passed, "{sessions:?}");
        assert_eq!(sessions.baseline, Some(0.0));
    }

    #[test]
    fn a_warm_pool_is_judged_against_the_baseline_not_before_the_warm_up() {
        // upstream connections and a shared stdio child opened by the warm-up are the
        // target's steady state
        let b = baseline(sample(0.0, 0, 5), sample(0.0, 1, 9));
        let end = sample(0.0, 1, 9);
        let checks = verdict::leak_checks(&b.reference(), &[end], &end, &Leaks::default());
        assert!(checks.iter().all(|c| c.passed), "{checks:?}");
    }

    #[test]
    fn what_the_baseline_holds_beyond_the_earlier_reading_is_named() {
        let b = baseline(sample(0.0, 0, 5), sample(0.0, 12, 5));
        let notes = b.residue(&Leaks::default());
        assert_eq!(notes.len(), 1, "{notes:?}");
        assert!(notes[0].contains("12 processes of children"), "{notes:?}");
        assert!(
            baseline(sample(0.0, 0, 5), sample(0.0, 0, 5))
                .residue(&Leaks::default())
                .is_empty()
        );
    }

    #[test]
    fn the_warm_up_has_drained_when_its_sessions_and_zombies_are_gone() {
        let pre = sample(0.0, 0, 5);
        assert!(drained(&pre, &sample(0.0, 3, 9), &Leaks::default()));
        assert!(!drained(&pre, &sample(2.0, 0, 5), &Leaks::default()));
        let mut zombie = sample(0.0, 1, 5);
        zombie.children.zombies = 1;
        assert!(!drained(&pre, &zombie, &Leaks::default()));
    }
}
