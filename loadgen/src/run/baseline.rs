//! Stage 3, baseline: the sample the leak checks compare with, once the target stands still,
//! and a snapshot of the target's process tree then (each process, its sockets), to name
//! what grew after the settle.

use std::time::{Duration, Instant};

use anyhow::bail;

use super::Stage;
use crate::observe::sampler::{Sample, Sampler};
use crate::observe::tree::TreeSnapshot;
use crate::target::deployment::Deployment;

/// The baseline of a run.
pub(super) struct Baseline {
    pub sample: Sample,
    /// The leak-relevant counts agreed for a second before the wait ended.
    pub stable: bool,
    /// Whom the run watches, for errors: the target (PID), or every replica.
    pub who: String,
    /// Each sampled slot's process tree at the baseline (`None`: no PID).
    pub tree: Vec<Option<TreeSnapshot>>,
}

pub(super) async fn take(
    s: &Stage<'_>,
    deployment: Option<&Deployment>,
) -> anyhow::Result<Baseline> {
    s.bar.set_prefix("baseline");
    let (sample, stable) = stable_baseline(
        &s.sampler,
        s.scenario.leaks.settle.max(Duration::from_secs(3)),
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
        stable,
        who,
        tree,
    })
}

/// Waits until the leak-relevant counts of the last second of samples agree (at most
/// `max`); returns the baseline sample and whether it was stable.
async fn stable_baseline(sampler: &Sampler, max: Duration) -> (Sample, bool) {
    let deadline = Instant::now() + max;
    let key = |s: &Sample| {
        (
            s.fds,
            s.tcp.close_wait,
            s.children,
            s.metrics
                .and_then(|m| m.tokio_alive_tasks)
                .map(|v| v as i64),
            s.metrics.and_then(|m| m.sessions).map(|v| v as i64),
        )
    };
    let mut last = Vec::new();
    loop {
        if let Some(s) = sampler.fresh().await {
            last.push(s);
        }
        if last.len() >= 4 {
            let tail = &last[last.len() - 4..];
            if tail.iter().all(|s| key(s) == key(&tail[0])) {
                return (*tail.last().unwrap(), true);
            }
        }
        if Instant::now() >= deadline {
            return (last.last().copied().unwrap_or_default(), false);
        }
    }
}
