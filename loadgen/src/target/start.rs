//! Starting the measured target: a stdio server the harness talks to
//! ([`stdio`](super::stdio)), one started from its own command ([`command`](super::command)), an external one ([`external`](super::external)), or the
//! bundled proxy with its mocks — one `mcp-proxy serve` on SQLite, or the
//! [`deployment`](super::deployment) — using what [`bundled`](super::bundled) knows of the
//! proxy.

use std::collections::BTreeMap;
use std::path::Path;

use super::bundled::{
    SecretKey, db_pool_size, mcp_url, metrics_url, proxy_address, seed_toml, version, write_seed,
};
use super::deployment::{self, Deployment};
use super::{Binaries, Endpoint, Processes, command, external, stdio};
use crate::scenario::{MockKind, Scenario};

/// Starts (or finds) the scenario's target: its `target.stdio` server or its own
/// `target.command` after its mocks, an
/// external one at `target.url`, else the bundled proxy (or deployment) with its mocks,
/// children of `procs`.
pub async fn start(
    scenario: &Scenario,
    binaries: Option<&Binaries>,
    out_dir: &Path,
    procs: &mut Processes,
    deployment: &mut Option<deployment::Deployment>,
) -> anyhow::Result<Endpoint> {
    if scenario.target.stdio.is_some() {
        return stdio::start(scenario, binaries, out_dir, procs).await;
    }
    if scenario.started() {
        return command::start(scenario, binaries, out_dir, procs).await;
    }
    match &scenario.target.url {
        Some(url) => external::attach(&scenario.target, url).await,
        None => start_bundled(scenario, binaries, out_dir, procs, deployment).await,
    }
}

/// Starts the bundled target: the scenario's HTTP mocks, then one proxy on its own SQLite
/// file, or the deployment (replicas behind HAProxy on PostgreSQL).
async fn start_bundled(
    scenario: &Scenario,
    binaries: Option<&Binaries>,
    out_dir: &Path,
    procs: &mut Processes,
    deployment: &mut Option<Deployment>,
) -> anyhow::Result<Endpoint> {
    let t = &scenario.target;
    let bins = match binaries {
        Some(b) => b.clone(),
        None => Binaries::locate(true)?,
    };
    let mut mocks = BTreeMap::new();
    let mut controls = BTreeMap::new();
    for u in scenario
        .upstreams
        .iter()
        .filter(|u| u.mock == MockKind::Serve)
    {
        let mock = procs.start_mock(&bins.mock, u).await?;
        controls.insert(u.name.clone(), mock.control.clone());
        mocks.insert(u.name.clone(), mock);
    }
    let seed = out_dir.join("seed.toml");
    let stats_dir = out_dir.join("mock-stats");
    write_seed(
        &seed,
        &seed_toml(scenario, &bins.mock, &mocks, Some(&stats_dir)),
    )?;
    // one throw-away key for every mcp-proxy of the run, when the seed holds secrets
    let key = SecretKey::for_scenario(scenario)?;
    let (addr, pid) = if Deployment::wanted(scenario) {
        let d = deployment
            .insert(Deployment::start(scenario, &bins, out_dir, procs, &seed, key).await?);
        (d.frontend, None)
    } else {
        let listen = proxy_address(t.listen)?;
        let (addr, pid) = procs
            .start_proxy(
                &bins.proxy,
                listen,
                &seed,
                &t.proxy_args,
                t.ready_timeout,
                key.as_ref(),
            )
            .await?;
        (addr, Some(pid))
    };
    let mut headers = t.headers.clone();
    headers
        .entry("Authorization".into())
        .or_insert_with(|| format!("Bearer {}", t.api_key));
    let db_pool_max = db_pool_size(&t.proxy_args);
    let version = version(&bins.proxy);
    let replicas = deployment.as_ref().map_or(1, |d| d.replicas.len());
    Ok(Endpoint {
        url: mcp_url(addr, &t.instance),
        headers,
        pid,
        version,
        process: pid.map(|_| "proxy"),
        // replicas are sampled one by one; HAProxy's frontend has no /metrics
        metrics_url: pid.map(|_| metrics_url(addr)),
        controls,
        stats_dir: Some(stats_dir),
        db_pool_max: db_pool_max * replicas as f64,
    })
}
