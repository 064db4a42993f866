//! Stage 5, settle: after the load, wait (up to `leaks.settle`) for every resource to come
//! back within its tolerance of the baseline, then judge the leaks; after a SIGTERM phase,
//! judge the target's own exit instead.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use anyhow::bail;

use super::Stage;
use super::baseline::Baseline;
use super::timeline::Loaded;
use crate::observe::probe;
use crate::observe::sampler::Sample;
use crate::target::Processes;
use crate::target::deployment::Deployment;
use crate::verdict::{self, Check};

/// What the settle saw.
pub(super) struct Settled {
    /// The last sample of the settle (the load's last after a SIGTERM phase).
    pub last: Sample,
    /// The leak checks, or the shutdown checks after a SIGTERM phase.
    pub checks: Vec<Check>,
    /// TCP sockets the target opened since the baseline, when its socket count grew.
    pub new_sockets: Vec<String>,
}

pub(super) async fn settle(
    s: &Stage<'_>,
    procs: &mut Processes,
    deployment: Option<&Deployment>,
    base: &Baseline,
    loaded: &Loaded,
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
        });
    }
    let last = wait(s, deployment, base, load_end).await?;
    let during: Vec<Sample> = s.sampler.since(base.sample.t_ms);
    Ok(Settled {
        checks: verdict::leak_checks(&base.sample, &during, &last, &s.scenario.leaks),
        new_sockets: new_sockets(s.tgt.pid, base, &last),
        last,
    })
}

/// Samples until every resource is back within its tolerance, the settle window ends or the
/// run is interrupted; a target (or replica) that exits meanwhile is an error.
async fn wait(
    s: &Stage<'_>,
    deployment: Option<&Deployment>,
    base: &Baseline,
    mut last: Sample,
) -> anyhow::Result<Sample> {
    let deadline = Instant::now() + s.scenario.leaks.settle;
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
        if verdict::settled(&base.sample, &last, &s.scenario.leaks)
            || Instant::now() >= deadline
            || s.interrupted()
        {
            return Ok(last);
        }
    }
}

/// Which sockets are new since the baseline, so a socket leak can be traced to its peer.
fn new_sockets(pid: Option<u32>, base: &Baseline, last: &Sample) -> Vec<String> {
    let Some(pid) = pid else {
        return Vec::new();
    };
    if last.fds.socket <= base.sample.fds.socket {
        return Vec::new();
    }
    let before: BTreeSet<_> = base.sockets.iter().map(|x| (x.local, x.remote)).collect();
    probe::tcp_sockets(pid)
        .unwrap_or_default()
        .into_iter()
        .filter(|x| !before.contains(&(x.local, x.remote)))
        .map(|x| x.to_string())
        .collect()
}
