//! `[target] replicas = N` with `database = "postgres"`: Cloud Run in a box. PostgreSQL (a
//! throw-away cluster, or the server `database_url` names), N `mcp-proxy serve` replicas on
//! it, and HAProxy in front (sticky on `Mcp-Session-Id`, health checks on `/ready`,
//! `maxconn` = the platform's concurrency per replica, a queue beyond). And the phases that
//! act on it: a rolling restart, a database restart, a key revocation.
//!
//! Ownership: the replicas are [`Processes`] children (named `proxy-1` … `proxy-N`), stopped
//! with the rest by the run's teardown; [`Deployment`] owns PostgreSQL and HAProxy and its
//! `stop` ends them after the replicas (a replica flushes `last_used_at` to the database on
//! its way out). Dropping it kills both.

pub mod haproxy;
pub mod postgres;

pub use crate::report::deployment::{
    DbRestart, DeploymentFacts, EraWindow, ReplicaFigures, RestartStep, Revocation,
};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use nix::sys::signal::Signal;

use crate::observe::sampler::{Probe, Sampler};
use crate::scenario::{Database, PhaseAction, Protocol, Scenario};
use crate::target::{Binaries, Processes, ProxySpec, SecretKey, bundled};
use haproxy::{AdminState, Haproxy, HaproxyOptions};
use postgres::Postgres;

/// One replica's place: its name (HAProxy's server name and its log's), address, and the
/// process holding it now.
#[derive(Debug, Clone)]
pub struct Replica {
    pub name: String,
    pub addr: SocketAddr,
    pub pid: u32,
}

impl Replica {
    pub fn metrics_url(&self) -> String {
        bundled::metrics_url(self.addr)
    }
}

/// A key the harness created for the `revoke-key` phase (never used by the load).
#[derive(Debug, Clone)]
pub struct RevocableKey {
    pub id: String,
    pub key: String,
}

/// The deployment's part of a run.
pub struct Deployment {
    pub replicas: Vec<Replica>,
    pub database_url: String,
    /// Where the load goes: HAProxy's frontend (or the one replica without HAProxy).
    pub frontend: SocketAddr,
    pub revocable: Option<RevocableKey>,
    pg: Option<Postgres>,
    haproxy: Option<Haproxy>,
    proxy_bin: PathBuf,
    extra: Vec<String>,
    ready_timeout: Duration,
    instance: String,
    /// The run's key for the instance secrets: every replica and `mcp-proxy` command gets it.
    secret_key: Option<SecretKey>,
}

/// Status of one authenticated 2026-07-28 `server/discover` at `addr` with `key` (a request
/// that needs no session, so it can go to any replica directly).
async fn discover_status(
    http: &reqwest::Client,
    addr: SocketAddr,
    instance: &str,
    key: &str,
) -> anyhow::Result<u16> {
    let body = crate::load::mcp::request(Protocol::V2026_07_28, 1, "server/discover", None);
    let r = http
        .post(bundled::mcp_url(addr, instance))
        .header("Accept", "application/json, text/event-stream")
        .header("Content-Type", "application/json")
        .header("MCP-Protocol-Version", "2026-07-28")
        .header("Mcp-Method", "server/discover")
        .header("Authorization", format!("Bearer {key}"))
        .body(body.to_string())
        .send()
        .await?;
    Ok(r.status().as_u16())
}

impl Deployment {
    /// Does the scenario ask for this (several replicas, or PostgreSQL)?
    pub fn wanted(scenario: &Scenario) -> bool {
        scenario.bundled()
            && (scenario.target.replicas > 1 || scenario.target.database == Database::Postgres)
    }

    /// Starts PostgreSQL, seeds it, starts every replica and HAProxy in front. A missing
    /// PostgreSQL or HAProxy, or a replica that never becomes ready, is an error naming it
    /// (exit 3); what was started before is stopped by the caller's teardown.
    pub async fn start(
        scenario: &Scenario,
        bins: &Binaries,
        out_dir: &Path,
        procs: &mut Processes,
        seed: &Path,
        secret_key: Option<SecretKey>,
    ) -> anyhow::Result<Deployment> {
        let t = &scenario.target;
        // everything that can be missing is looked for before anything starts
        if t.database_url.is_none() {
            Postgres::locate()?;
        }
        if t.replicas > 1 {
            Haproxy::locate()?;
        }
        let mut deployment = Deployment {
            replicas: Vec::new(),
            database_url: String::new(),
            frontend: crate::process::port::free_addr()?,
            revocable: None,
            pg: None,
            haproxy: None,
            proxy_bin: bins.proxy.clone(),
            extra: t.proxy_args.clone(),
            ready_timeout: t.ready_timeout,
            instance: t.instance.clone(),
            secret_key,
        };
        deployment.database_url = match &t.database_url {
            Some(url) => url.clone(),
            None => {
                let pg = Postgres::start(out_dir)
                    .await
                    .context("starting the harness's PostgreSQL")?;
                let url = pg.url();
                deployment.pg = Some(pg);
                url
            }
        };
        let db = deployment.database_url.clone();
        let key = deployment.secret_key.clone();
        bundled::seed(&bins.proxy, seed, &db, key.as_ref())
            .await
            .context("seeding the shared database")?;
        if scenario
            .phases
            .iter()
            .any(|p| p.action == PhaseAction::RevokeKey)
        {
            let (id, key) =
                bundled::create_key(&bins.proxy, &t.instance, &db, key.as_ref()).await?;
            deployment.revocable = Some(RevocableKey { id, key });
        }
        for i in 1..=t.replicas {
            let name = format!("proxy-{i}");
            let listen = if t.replicas == 1 {
                crate::target::proxy_address(t.listen)?
            } else {
                crate::process::port::free_addr()?
            };
            let pid = deployment.start_replica(procs, &name, listen).await?;
            deployment.replicas.push(Replica {
                name,
                addr: listen,
                pid,
            });
        }
        if t.replicas == 1 {
            deployment.frontend = deployment.replicas[0].addr;
        } else {
            let frontend = crate::target::proxy_address(t.listen)?;
            let servers: Vec<(String, SocketAddr)> = deployment
                .replicas
                .iter()
                .map(|r| (r.name.clone(), r.addr))
                .collect();
            let opts = HaproxyOptions {
                maxconn_per_server: scenario.capacity.concurrency,
                // a replica is out after 2 s of failed checks: a database restart (every
                // replica's /ready fails while PostgreSQL is down) must not empty the backend
                check_interval: Duration::from_millis(500),
                fall: 4,
                rise: 1,
                ..HaproxyOptions::default()
            };
            let haproxy = Haproxy::start(out_dir, frontend, &servers, &opts).await?;
            for r in &deployment.replicas {
                haproxy
                    .wait_up(&r.name, t.ready_timeout)
                    .await
                    .with_context(|| format!("HAProxy never saw {} UP", r.name))?;
            }
            deployment.haproxy = Some(haproxy);
            deployment.frontend = frontend;
        }
        Ok(deployment)
    }

    async fn start_replica(
        &self,
        procs: &mut Processes,
        name: &str,
        listen: SocketAddr,
    ) -> anyhow::Result<u32> {
        let spec = ProxySpec {
            name,
            listen,
            database_url: &self.database_url,
            seed: None,
            extra: &self.extra,
            ready_timeout: self.ready_timeout,
            secret_key: self.secret_key.as_ref(),
        };
        // its errors name it
        let (_, pid) = procs.start_proxy_as(&self.proxy_bin, &spec).await?;
        Ok(pid)
    }

    /// One probe per replica, for [`Sampler::start_set`].
    pub fn probes(&self) -> anyhow::Result<Vec<Probe>> {
        self.replicas
            .iter()
            .map(|r| Probe::new(Some(r.pid), Some(r.metrics_url())))
            .collect()
    }

    /// Replaces every replica, one at a time, as a platform's rolling update does: out of the
    /// balancer (HAProxy `maint`: no new requests, sticky ones go elsewhere), SIGTERM,
    /// SIGKILL after `kill_after`, a fresh process on the same port, back in once `/ready`
    /// passes and HAProxy's health check says UP. The sampler follows the new PIDs.
    pub async fn rolling_restart(
        &mut self,
        procs: &mut Processes,
        sampler: &Sampler,
        kill_after: Duration,
    ) -> anyhow::Result<Vec<RestartStep>> {
        let mut steps = Vec::new();
        for i in 0..self.replicas.len() {
            let r = self.replicas[i].clone();
            let out = Instant::now();
            if let Some(h) = &self.haproxy {
                h.set_state(&r.name, AdminState::Maint).await?;
            }
            procs.signal(&r.name, Signal::SIGTERM)?;
            let term = Instant::now();
            let (exit, killed) = match procs.wait_exit(&r.name, kill_after).await {
                Some(status) => {
                    procs.forget_exited(&r.name);
                    (status.to_string(), false)
                }
                None => {
                    let status = procs.kill(&r.name).await;
                    (status.map(|s| s.to_string()).unwrap_or_default(), true)
                }
            };
            let drain_ms = term.elapsed().as_secs_f64() * 1000.0;
            let pid = self.start_replica(procs, &r.name, r.addr).await?;
            self.replicas[i].pid = pid;
            sampler
                .replace(i, Probe::new(Some(pid), Some(r.metrics_url()))?)
                .await;
            if let Some(h) = &self.haproxy {
                h.set_state(&r.name, AdminState::Ready).await?;
                h.wait_up(&r.name, self.ready_timeout)
                    .await
                    .with_context(|| format!("HAProxy never saw the new {} UP", r.name))?;
            }
            steps.push(RestartStep {
                replica: r.name.clone(),
                old_pid: r.pid,
                new_pid: pid,
                drain_ms,
                killed,
                exit,
                out_of_rotation_ms: out.elapsed().as_secs_f64() * 1000.0,
            });
        }
        Ok(steps)
    }

    /// Warms the revocable key on every replica (each caches it), revokes it with
    /// `mcp-proxy keys revoke`, and polls every replica directly until it refuses the key
    /// (at most `wait`).
    pub async fn revoke(&self, wait: Duration) -> anyhow::Result<Revocation> {
        let key = self
            .revocable
            .clone()
            .ok_or_else(|| anyhow!("no key was created for a revoke-key phase"))?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()?;
        for r in &self.replicas {
            let status = discover_status(&http, r.addr, &self.instance, &key.key).await?;
            if status != 200 {
                bail!(
                    "revoke-key: {} refused the key before it was revoked (HTTP {status})",
                    r.name
                );
            }
        }
        let db = self.database_url.clone();
        let started = Instant::now();
        bundled::revoke_key(&self.proxy_bin, &key.id, &db, self.secret_key.as_ref()).await?;
        let revoked = Instant::now();
        let command_ms = revoked.duration_since(started).as_secs_f64() * 1000.0;
        let mut polls = tokio::task::JoinSet::new();
        for r in self.replicas.clone() {
            let http = http.clone();
            let instance = self.instance.clone();
            let k = key.key.clone();
            polls.spawn(async move {
                loop {
                    if let Ok(401) = discover_status(&http, r.addr, &instance, &k).await {
                        return (r.name, Some(revoked.elapsed().as_secs_f64() * 1000.0));
                    }
                    if revoked.elapsed() >= wait {
                        return (r.name, None);
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            });
        }
        let mut per_replica_ms = Vec::new();
        while let Some(done) = polls.join_next().await {
            per_replica_ms.push(done.map_err(|e| anyhow!("revocation poll failed: {e}"))?);
        }
        per_replica_ms.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(Revocation {
            key_id: key.id,
            command_ms,
            per_replica_ms,
        })
    }

    /// Restarts PostgreSQL and waits until every replica is ready again.
    pub async fn db_restart(&mut self) -> anyhow::Result<DbRestart> {
        let pg = self
            .pg
            .as_mut()
            .ok_or_else(|| anyhow!("db-restart needs the harness's own PostgreSQL"))?;
        let connections_before = pg.client_connections().await?;
        let down = pg.restart().await?;
        let back = Instant::now();
        let http = reqwest::Client::builder()
            .timeout(Duration::from_millis(500))
            .build()?;
        for r in &self.replicas {
            loop {
                let ok = http
                    .get(format!("http://{}/ready", r.addr))
                    .send()
                    .await
                    .is_ok_and(|x| x.status().is_success());
                if ok {
                    break;
                }
                if back.elapsed() > Duration::from_secs(30) {
                    bail!(
                        "db-restart: {} was not ready 30 s after PostgreSQL came back",
                        r.name
                    );
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        let recovered_ms = back.elapsed().as_secs_f64() * 1000.0;
        let connections_recovered = self
            .pg
            .as_ref()
            .expect("checked above")
            .client_connections()
            .await?;
        Ok(DbRestart {
            connections_before,
            connections_recovered,
            connections_end: None,
            connections_owned_end: None,
            down_ms: down.as_secs_f64() * 1000.0,
            recovered_ms,
        })
    }

    /// Client connections of the harness's PostgreSQL now (`None` with an external server).
    pub async fn client_connections(&self) -> Option<i64> {
        match &self.pg {
            Some(pg) => pg.client_connections().await.ok(),
            None => None,
        }
    }

    /// Stops HAProxy, then PostgreSQL (after the replicas: the caller stops them first).
    pub async fn stop(mut self) {
        if let Some(h) = self.haproxy.take() {
            h.stop().await;
        }
        if let Some(pg) = self.pg.take()
            && let Err(e) = pg.stop().await
        {
            eprintln!("mcp-loadgen: stopping PostgreSQL: {e:#}");
        }
    }
}

impl ReplicaFigures {
    /// The figures of `name` from its slot's samples (`from_ms..=to_ms`: the measured load,
    /// for CPU).
    pub fn of(
        name: &str,
        slot: &crate::observe::sampler::SlotSeries,
        from_ms: u64,
        to_ms: u64,
    ) -> ReplicaFigures {
        let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
        let live: Vec<&crate::observe::sampler::Sample> =
            slot.samples.iter().filter(|s| !s.gone).collect();
        let end = live.last();
        let during: Vec<f64> = live
            .iter()
            .filter(|s| s.t_ms >= from_ms && s.t_ms <= to_ms)
            .map(|s| s.cpu_percent as f64)
            .collect();
        ReplicaFigures {
            name: name.to_string(),
            pids: slot.pids.clone(),
            rss_peak_mib: live.iter().map(|s| mib(s.rss_bytes)).fold(0.0, f64::max),
            rss_end_mib: end.map(|s| mib(s.rss_bytes)).unwrap_or_default(),
            fds_end: end.map(|s| s.fds.total()).unwrap_or_default(),
            tasks_end: end.and_then(|s| s.metrics?.tokio_alive_tasks),
            sessions_end: end.and_then(|s| s.metrics?.sessions),
            requests: live.iter().rev().find_map(|s| s.metrics?.requests),
            cpu_percent: (!during.is_empty())
                .then(|| during.iter().sum::<f64>() / during.len() as f64),
        }
    }
}

/// `EraWindow`s of `now − before`, by era.
pub fn era_windows(
    before: &std::collections::BTreeMap<Protocol, crate::load::EraCounts>,
    now: &std::collections::BTreeMap<Protocol, crate::load::EraCounts>,
) -> Vec<EraWindow> {
    now.iter()
        .map(|(era, c)| {
            let d = c.since(&before.get(era).copied().unwrap_or_default());
            EraWindow {
                era: era.as_str().to_string(),
                requests: d.requests,
                failed: d.failed,
                session_lost: d.session_lost,
            }
        })
        .collect()
}
