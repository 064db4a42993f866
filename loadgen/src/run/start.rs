//! Stage 1, start: the target (external, bundled or a deployment), its sampler, and the
//! deployment's facts as far as they are known before any load.

use std::path::Path;

use super::Options;
use crate::observe::metrics::MetricMap;
use crate::observe::sampler::{Probe, Sampler};
use crate::scenario::Scenario;
use crate::target::deployment::{Deployment, DeploymentFacts};
use crate::target::{self, Endpoint, Processes};

/// Starts the target and samples it (every replica, with a deployment).
pub(super) async fn start(
    scenario: &Scenario,
    opts: &Options,
    out_dir: &Path,
    procs: &mut Processes,
    deployment: &mut Option<Deployment>,
) -> anyhow::Result<(Endpoint, Sampler, Option<DeploymentFacts>)> {
    let tgt = target::start(scenario, opts.binaries.as_ref(), out_dir, procs, deployment).await?;
    let sampler = match deployment.as_ref() {
        Some(d) => Sampler::start_set(d.probes()?),
        None => {
            let m = &scenario.target.metrics;
            let names = MetricMap::parse(
                m.sessions.as_deref(),
                m.tasks.as_deref(),
                m.upstream_connections.as_deref(),
            )
            .map_err(|e| anyhow::anyhow!("`target.metrics`: {e}"))?;
            Sampler::start(Probe::new(tgt.pid, tgt.metrics_url.clone())?.with_names(names))
        }
    };
    let facts = deployment.as_ref().map(|d| DeploymentFacts {
        balancer: if d.replicas.len() > 1 {
            "haproxy"
        } else {
            "none"
        }
        .into(),
        database: if scenario.target.database_url.is_some() {
            "external server"
        } else {
            "throw-away cluster"
        }
        .into(),
        ..DeploymentFacts::default()
    });
    Ok((tgt, sampler, facts))
}
