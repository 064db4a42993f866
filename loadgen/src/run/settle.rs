//! Stage 5, settle: after the load, watch the target for at least `leaks.settle_min` and
//! until every resource has been back within its tolerance of the baseline for a second (at
//! most `leaks.settle`), then judge the leaks; after a SIGTERM phase, judge the target's own
//! exit instead. [`watch`] is also the settle after each round of a run in cycles.
//!
//! The minimum is what makes the settle watch rather than glance: a reaper on a timer and
//! abandoned work that finishes late are seen before the verdict.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use anyhow::bail;

use super::Stage;
use super::baseline::Baseline;
use super::timeline::Loaded;
use crate::observe::sampler::Sample;
use crate::observe::tree::TreeSnapshot;
use crate::report::tree::GrownProcess;
use crate::target::Processes;
use crate::target::deployment::Deployment;
use crate::verdict::{self, Check};

/// How long a process new since the baseline must live on to count as left by the load.
const CHURN_WINDOW: Duration = Duration::from_secs(1);

/// What the settle saw.
pub(super) struct Settled {
    /// The last sample of the settle (the load's last after a SIGTERM phase).
    pub last: Sample,
    /// The leak checks, or the shutdown checks after a SIGTERM phase.
    pub checks: Vec<Check>,
    /// TCP and Unix sockets the target's tree opened since the baseline, when its socket
    /// count grew.
    pub new_sockets: Vec<String>,
    /// Processes of the tree new, orphaned or grown since the baseline.
    pub grown: Vec<GrownProcess>,
}

pub(super) async fn settle(
    s: &Stage<'_>,
    procs: &mut Processes,
    deployment: Option<&Deployment>,
    base: &Baseline,
    loaded: &Loaded,
    last_round: Option<Sample>,
) -> anyhow::Result<Settled> {
    s.bar.set_prefix("settle");
    let load_end = s.sampler.latest().unwrap_or_default();
    if let Some(at) = loaded.sigterm_at {
        // the target must exit by itself, in time, with 0
        let own = s.tgt.process.or(s.scenario.bundled().then_some("proxy"));
        let status = match own {
            Some(name) => procs.wait_exit(name, Duration::from_secs(12)).await,
            None => None,
        };
        let checks = verdict::run::shutdown_checks(
            status,
            at.elapsed(),
            own.is_none(),
            loaded.result.in_flight_failed_at_stop,
        );
        // the process is gone: its children must be too (checked as orphans by `run`)
        return Ok(Settled {
            last: load_end,
            checks,
            new_sockets: Vec::new(),
            grown: Vec::new(),
        });
    }
    // in cycles, the last round's settle was the run's
    let last = match last_round {
        Some(x) => x,
        None => watch(s, deployment, base, load_end).await?,
    };
    let during: Vec<Sample> = s.sampler.since(base.sample.t_ms);
    let leaks = &s.scenario.leaks;
    let end = s.sampler.snapshots().await;
    let diff = |end: &[Option<TreeSnapshot>]| -> Vec<GrownProcess> {
        base.tree
            .iter()
            .zip(end)
            .filter_map(|(b, e)| Some(verdict::tree::grown(b.as_ref()?, e.as_ref()?, leaks)))
            .flatten()
            .collect()
    };
    let mut grown = diff(&end);
    if grown.iter().any(GrownProcess::is_new) {
        // a new process must still be there a moment later to count
        tokio::time::sleep(CHURN_WINDOW).await;
        grown = verdict::tree::lasting(grown, &diff(&s.sampler.snapshots().await));
    }
    let mut checks = verdict::leak_checks(&base.reference(), &during, &last, leaks);
    verdict::tree::judge_children_by_identity(&mut checks, &grown, leaks);
    Ok(Settled {
        checks,
        new_sockets: new_sockets(base, &end, &last),
        grown,
        last,
    })
}

/// Samples for at least `leaks.settle_min`, then until every resource has been within its
/// tolerance for the last second, the settle window (`leaks.settle`) ends or the run is
/// interrupted; returns the last sample. A target (or replica) that exits meanwhile is an
/// error.
pub(super) async fn watch(
    s: &Stage<'_>,
    deployment: Option<&Deployment>,
    base: &Baseline,
    mut last: Sample,
) -> anyhow::Result<Sample> {
    let leaks = &s.scenario.leaks;
    let reference = base.reference();
    let started = Instant::now();
    let deadline = started + leaks.settle_max();
    // consecutive samples within tolerance (4 = a second)
    let mut within = 0;
    loop {
        if let Some(x) = s.sampler.fresh().await {
            last = x;
        }
        if last.gone {
            bail!("{} exited during the run", base.who);
        }
        if let Some(d) = deployment {
            for (r, part) in d.replicas.iter().zip(s.sampler.latest_parts().await) {
                if part.is_some_and(|x| x.gone) {
                    bail!("replica {} (PID {}) exited during the run", r.name, r.pid);
                }
            }
        }
        within = if verdict::settled(&reference, &last, leaks) {
            within + 1
        } else {
            0
        };
        let watched_enough = started.elapsed() >= leaks.settle_min() && within >= 4;
        if watched_enough || Instant::now() >= deadline || s.interrupted() {
            return Ok(last);
        }
    }
}

/// Which TCP and Unix sockets of the tree are new since the baseline (by inode), with the
/// process holding each, so a socket leak can be traced to its owner and peer.
fn new_sockets(base: &Baseline, end: &[Option<TreeSnapshot>], last: &Sample) -> Vec<String> {
    if last.fds.socket <= base.sample.fds.socket {
        return Vec::new();
    }
    let before: BTreeSet<u64> = base
        .tree
        .iter()
        .flatten()
        .flat_map(|t| t.sockets.iter().map(|x| x.inode))
        .collect();
    end.iter()
        .flatten()
        .flat_map(|t| t.sockets.iter())
        .filter(|x| !before.contains(&x.inode))
        .map(|x| x.to_string())
        .collect()
}
