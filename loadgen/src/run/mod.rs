//! `mcp-loadgen run`: start what the scenario needs, warm up, take the baseline, drive the
//! load with its fault phases, settle, decide, write the report, tear everything down.
//!
//! Every exit path goes through [`run`]'s teardown: the processes it started are stopped and
//! reaped whether the run passed, failed, errored or was interrupted.

mod facts;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use nix::sys::signal::Signal;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::load::{self, LoadResult, Plan};
use crate::observe::sampler::{Probe, Sample, Sampler};
use crate::report::{Environment, PhaseMark, ProbeSeries, Report, Shard};
use crate::scenario::{PhaseAction, Scenario};
use crate::target::deployment::{Deployment, DeploymentFacts, ReplicaFigures};
use crate::target::{self, Binaries, Processes};
use crate::verdict::{self, Check, Kind};

/// Exit code of a harness failure (SPEC contract).
pub const HARNESS_ERROR: i32 = 3;

pub struct Options {
    pub scenario: PathBuf,
    pub out: Option<PathBuf>,
    /// Hide the progress bar (it is also hidden when stderr is not a terminal).
    pub quiet: bool,
    /// Binaries to use (default: located, and built when in a checkout).
    pub binaries: Option<Binaries>,
    /// Cancelled on Ctrl-C / SIGTERM.
    pub interrupt: CancellationToken,
    /// Run this shard's share of the load (`--shard I/N`).
    pub shard: Option<Shard>,
    /// An earlier `report.json` to compare with (`--baseline`).
    pub baseline: Option<PathBuf>,
    /// The noise margin for the comparison (default: the scenario's `compare.noise`).
    pub noise: Option<f64>,
}

impl Options {
    /// Options for running `scenario` with the defaults of the CLI.
    pub fn new(scenario: PathBuf, interrupt: CancellationToken) -> Options {
        Options {
            scenario,
            out: None,
            quiet: false,
            binaries: None,
            interrupt,
            shard: None,
            baseline: None,
            noise: None,
        }
    }
}

/// What a finished run decided.
pub struct Outcome {
    pub exit_code: i32,
    pub out_dir: PathBuf,
    pub summary: String,
    pub report: Report,
}

/// What the measured part of a run produced, before the teardown's own checks.
struct Measured {
    checks: Vec<Check>,
    load: LoadResult,
    phases: Vec<PhaseMark>,
    probe: ProbeSeries,
    notes: Vec<String>,
    started_at: String,
    target_version: Option<String>,
    deployment: Option<DeploymentFacts>,
}

/// A harness failure: exit 3, with the message.
#[derive(Debug, thiserror::Error)]
#[error("{0:#}")]
pub struct HarnessError(pub anyhow::Error);

impl From<anyhow::Error> for HarnessError {
    fn from(e: anyhow::Error) -> Self {
        HarnessError(e)
    }
}

pub async fn run(opts: Options) -> Result<Outcome, HarnessError> {
    let mut scenario = Scenario::load(&opts.scenario).map_err(|e| anyhow!(e))?;
    if let Some(s) = opts.shard {
        scenario.shard(s.index, s.count).map_err(|e| anyhow!(e))?;
    }
    // a baseline that cannot be read fails before any load
    let before = match &opts.baseline {
        Some(p) => Some(Report::read(p).context("--baseline")?),
        None => None,
    };
    let noise = opts.noise.unwrap_or(scenario.compare.noise);
    if !(noise.is_finite() && noise >= 0.0) {
        return Err(anyhow!("--noise must be a share ≥ 0 (0.25 = 25 %), got {noise}").into());
    }
    let out_dir = match &opts.out {
        Some(d) => d.clone(),
        None => default_out_dir(&scenario.name),
    };
    std::fs::create_dir_all(&out_dir)
        .with_context(|| format!("cannot create the report folder {}", out_dir.display()))?;
    crate::process::become_subreaper();
    let mut procs = Processes::new(&out_dir);
    let mut deployment = None;
    let result = run_with(&scenario, &opts, &out_dir, &mut procs, &mut deployment).await;
    // teardown, on every path: the proxies first, then what they stand on
    let statuses = procs.stop(Duration::from_secs(12)).await;
    if let Some(d) = deployment.take() {
        d.stop().await;
    }
    let strays = crate::process::stray_processes();
    let described: Vec<String> = strays
        .iter()
        .map(|p| crate::process::describe(*p))
        .collect();
    crate::process::reap_strays(&strays);
    let mut m = result?;
    if !strays.is_empty() {
        m.checks.push(Check {
            name: "orphans".into(),
            kind: Kind::Leak,
            unit: "processes".into(),
            baseline: Some(0.0),
            peak: None,
            value: Some(strays.len() as f64),
            limit: 0.0,
            passed: false,
            skipped: None,
        });
        m.notes
            .extend(described.iter().map(|d| format!("left behind: {d}")));
    }
    for (name, status) in &statuses {
        if let (true, Some(s)) = (name.starts_with("proxy"), status) {
            m.notes.push(format!("{name} exit: {s}"));
        }
    }
    let mut report = facts::report(facts::RunFacts {
        scenario: &scenario,
        shard: opts.shard,
        environment: Environment::current(m.target_version.clone()),
        started_at: m.started_at.clone(),
        load: &m.load,
        phases: m.phases,
        probe: m.probe,
        checks: m.checks,
        notes: m.notes,
        deployment: m.deployment,
    });
    if let (Some(before), Some(path)) = (&before, &opts.baseline) {
        report.compare_with(before, &path.display().to_string(), noise);
    }
    let summary = summarize(&report);
    report.write(&out_dir)?;
    std::fs::write(out_dir.join("summary.txt"), &summary)
        .with_context(|| format!("cannot write {}", out_dir.join("summary.txt").display()))?;
    Ok(Outcome {
        exit_code: report.exit_code,
        out_dir,
        summary,
        report,
    })
}

/// Stops the measured attack when the run leaves before it ended (a phase failed): the
/// goose users would otherwise run on, detached, against a target being torn down.
struct StopAttackOnDrop(bool);

impl StopAttackOnDrop {
    fn disarm(mut self) {
        self.0 = false;
    }
}

impl Drop for StopAttackOnDrop {
    fn drop(&mut self) {
        if self.0 {
            goose::trigger_killswitch("the run ended before the load");
        }
    }
}

/// `reports/<name>-<UTC time>/`.
pub fn default_out_dir(name: &str) -> PathBuf {
    let now = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    let stamp: String = now.chars().filter(|c| *c != ':' && *c != '-').collect();
    PathBuf::from("reports").join(format!("{name}-{stamp}"))
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

fn progress(quiet: bool, duration: Duration) -> ProgressBar {
    let target = if quiet {
        ProgressDrawTarget::hidden()
    } else {
        ProgressDrawTarget::stderr()
    };
    let bar = ProgressBar::with_draw_target(Some(duration.as_secs().max(1)), target);
    bar.set_style(
        ProgressStyle::with_template("{prefix:>9} [{bar:30}] {pos}/{len}s {msg}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar
}

async fn run_with(
    scenario: &Scenario,
    opts: &Options,
    out_dir: &Path,
    procs: &mut Processes,
    deployment: &mut Option<Deployment>,
) -> anyhow::Result<Measured> {
    let interrupted = || opts.interrupt.is_cancelled();
    let tgt = target::start(scenario, opts.binaries.as_ref(), out_dir, procs, deployment).await?;
    let sampler = match deployment.as_ref() {
        Some(d) => Sampler::start_set(d.probes()?),
        None => Sampler::start(Probe::new(tgt.pid, tgt.metrics_url.clone())?),
    };
    let mut facts = deployment.as_ref().map(|d| DeploymentFacts {
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
    let mix: BTreeSet<String> = scenario.ops().iter().map(|(op, _)| op.label()).collect();
    let bar = progress(opts.quiet, scenario.load.duration);

    // warm-up (its figures are not kept)
    if !scenario.load.warmup.is_zero() {
        bar.set_prefix("warm-up");
        let plan = Arc::new(Plan::new(
            scenario,
            &tgt.url,
            &tgt.headers,
            scenario.load.warmup,
        )?);
        load::attack(plan).await?;
    }
    if interrupted() {
        bail!("interrupted");
    }
    bar.set_prefix("baseline");
    let (baseline, stable) =
        stable_baseline(&sampler, scenario.leaks.settle.max(Duration::from_secs(3))).await;
    let who = match (tgt.pid, deployment.as_ref()) {
        (Some(p), _) => format!("the target (PID {p})"),
        (None, Some(d)) => format!("every replica ({})", d.replicas.len()),
        (None, None) => "the target".to_string(),
    };
    if baseline.gone {
        bail!("{who} exited during the warm-up");
    }
    let baseline_sockets = tgt
        .pid
        .and_then(|p| crate::observe::probe::tcp_sockets(p).ok())
        .unwrap_or_default();

    // the measured load, with its phases
    let plan = Arc::new(Plan::new(
        scenario,
        &tgt.url,
        &tgt.headers,
        scenario.load.duration,
    )?);
    let recorder = plan.recorder.clone();
    let eras_at_start = recorder.era_counts();
    let load_start_t_ms = sampler.now_ms();
    let started_at = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    let load_task = tokio::spawn(load::attack(plan));
    let stop_early = StopAttackOnDrop(true);
    let started = Instant::now();
    let mut phases: Vec<_> = scenario.phases.iter().collect();
    phases.sort_by_key(|p| p.at);
    let mut next = 0;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()?;
    let mut phase_log = Vec::new();
    let mut sigterm_at: Option<Instant> = None;
    let mut phase_name = "load".to_string();
    while !load_task.is_finished() {
        let elapsed = started.elapsed();
        while next < phases.len() && phases[next].at <= elapsed {
            let p = phases[next];
            next += 1;
            match p.action {
                PhaseAction::Faults => {
                    let name = p.upstream.as_deref().unwrap_or_default();
                    let url = tgt
                        .controls
                        .get(name)
                        .ok_or_else(|| anyhow!("no control endpoint for upstream \"{name}\""))?;
                    let mut body = serde_json::Map::new();
                    if let Some(f) = &p.faults {
                        body.insert("faults".into(), json!(f));
                    }
                    if let Some(l) = &p.latency {
                        body.insert("latency".into(), json!(l));
                    }
                    let r = http.post(url).json(&body).send().await?;
                    if !r.status().is_success() {
                        let text = r.text().await.unwrap_or_default();
                        bail!(
                            "phase at {}: upstream \"{name}\" refused the switch: {text}",
                            humantime::format_duration(p.at)
                        );
                    }
                }
                PhaseAction::Sigterm => {
                    recorder.mark_stop();
                    sigterm_at = Some(Instant::now());
                    if scenario.bundled() {
                        procs.signal("proxy", Signal::SIGTERM)?;
                    } else {
                        let Some(pid) = tgt.pid else {
                            bail!("a SIGTERM phase needs the target's PID");
                        };
                        nix::sys::signal::kill(
                            nix::unistd::Pid::from_raw(pid as i32),
                            Signal::SIGTERM,
                        )?;
                    }
                }
                PhaseAction::RollingRestart => {
                    let d = deployment
                        .as_mut()
                        .ok_or_else(|| anyhow!("rolling-restart needs the bundled proxy"))?;
                    bar.set_prefix("restart");
                    let before = recorder.era_counts();
                    let steps = d.rolling_restart(procs, &sampler, p.kill_after).await?;
                    let windows =
                        crate::target::deployment::era_windows(&before, &recorder.era_counts());
                    if let Some(f) = facts.as_mut() {
                        f.restarts.extend(steps);
                        f.restart_eras = windows;
                    }
                }
                PhaseAction::DbRestart => {
                    let d = deployment
                        .as_mut()
                        .ok_or_else(|| anyhow!("db-restart needs the bundled proxy"))?;
                    bar.set_prefix("db-restart");
                    let r = d.db_restart().await?;
                    if let Some(f) = facts.as_mut() {
                        f.db_restart = Some(r);
                    }
                }
                PhaseAction::RevokeKey => {
                    let d = deployment
                        .as_ref()
                        .ok_or_else(|| anyhow!("revoke-key needs the bundled proxy"))?;
                    bar.set_prefix("revoke");
                    // past the auth cache's TTL (30 s by default) every replica refuses it
                    // anyway: waiting longer would measure the TTL, not the propagation
                    let r = d.revoke(Duration::from_secs(40)).await?;
                    if let Some(f) = facts.as_mut() {
                        f.revocation = Some(r);
                    }
                }
            }
            phase_name = p.name.clone().unwrap_or_else(|| match p.action {
                PhaseAction::Faults => format!(
                    "{} {:?}",
                    p.upstream.as_deref().unwrap_or(""),
                    p.faults.clone().unwrap_or_default()
                ),
                PhaseAction::Sigterm => "SIGTERM".into(),
                other => other.as_str().into(),
            });
            phase_log.push(PhaseMark {
                at_ms: p.at.as_millis() as u64,
                name: phase_name.clone(),
                action: p.action.as_str().into(),
            });
        }
        if interrupted() {
            goose::trigger_killswitch("interrupted");
        }
        // the target is gone after a SIGTERM phase: nothing more to load
        if sigterm_at.is_some() && sampler.latest().is_some_and(|s| s.gone) {
            goose::trigger_killswitch("target exited after SIGTERM");
        }
        let (ok, failed) = recorder.snapshot_totals();
        let secs = elapsed.as_secs_f64().max(0.001);
        let l = sampler.latest().unwrap_or_default();
        bar.set_prefix(phase_name.chars().take(9).collect::<String>());
        bar.set_position(elapsed.as_secs().min(scenario.load.duration.as_secs()));
        bar.set_message(format!(
            "{:.0} req/s  err {:.2}%  fds {}  tasks {}",
            (ok + failed) as f64 / secs,
            if ok + failed > 0 {
                100.0 * failed as f64 / (ok + failed) as f64
            } else {
                0.0
            },
            l.fds.total(),
            l.metrics
                .and_then(|m| m.tokio_alive_tasks)
                .map(|v| v.to_string())
                .unwrap_or_else(|| "-".into()),
        ));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let result = load_task
        .await
        .map_err(|e| anyhow!("the load task failed: {e}"))??;
    let load_end_t_ms = sampler.now_ms();
    stop_early.disarm();
    if interrupted() {
        bar.finish_and_clear();
        bail!("interrupted");
    }

    // settle
    bar.set_prefix("settle");
    let load_end = sampler.latest().unwrap_or_default();
    let settle_deadline = Instant::now() + scenario.leaks.settle;
    let mut last = load_end;
    let mut checks = Vec::new();
    let mut new_sockets: Vec<String> = Vec::new();
    if let Some(at) = sigterm_at {
        // the target must exit by itself, in time, with 0
        let status = if scenario.bundled() {
            procs.wait_exit("proxy", Duration::from_secs(12)).await
        } else {
            None
        };
        let took = at.elapsed();
        let external = (!scenario.bundled())
            .then(|| "an external target's exit is not ours to see".to_string());
        checks.push(Check::threshold(
            "shutdown.exit_code",
            "",
            status.and_then(|s| s.code()).map(f64::from),
            0.0,
            status.is_some_and(|s| s.success()),
            external.clone(),
        ));
        checks.push(Check::threshold(
            "shutdown.seconds",
            "s",
            Some(took.as_secs_f64()),
            10.0,
            status.is_some() && took <= Duration::from_secs(10),
            external,
        ));
        checks.push(Check::threshold(
            "shutdown.in_flight_failed",
            "requests",
            Some(result.in_flight_failed_at_stop as f64),
            0.0,
            result.in_flight_failed_at_stop == 0,
            None,
        ));
        // the process is gone: its children must be too (checked as orphans by `run`)
    } else {
        loop {
            if let Some(s) = sampler.fresh().await {
                last = s;
            }
            if last.gone {
                bail!("{who} exited during the run");
            }
            if let Some(d) = deployment.as_ref() {
                for (r, part) in d.replicas.iter().zip(sampler.latest_parts().await) {
                    if part.is_some_and(|s| s.gone) {
                        bail!("replica {} (PID {}) exited during the run", r.name, r.pid);
                    }
                }
            }
            if verdict::settled(&baseline, &last, &scenario.leaks)
                || Instant::now() >= settle_deadline
                || interrupted()
            {
                break;
            }
        }
        let during: Vec<Sample> = sampler.since(baseline.t_ms);
        checks.extend(verdict::leak_checks(
            &baseline,
            &during,
            &last,
            &scenario.leaks,
        ));
        // say which sockets are new, so a socket leak can be traced to its peer
        if let Some(pid) = tgt.pid
            && last.fds.socket > baseline.fds.socket
        {
            let before: BTreeSet<_> = baseline_sockets
                .iter()
                .map(|s| (s.local, s.remote))
                .collect();
            new_sockets = crate::observe::probe::tcp_sockets(pid)
                .unwrap_or_default()
                .into_iter()
                .filter(|s| !before.contains(&(s.local, s.remote)))
                .map(|s| s.to_string())
                .collect();
        }
    }
    bar.finish_and_clear();
    if let (Some(d), Some(f)) = (deployment.as_ref(), facts.as_mut())
        && let Some(r) = f.db_restart.as_mut()
    {
        r.connections_end = d.client_connections().await;
        // what the replicas own: their pools, and one invalidation listener each
        r.connections_owned_end = sampler
            .latest_parts()
            .await
            .iter()
            .map(|s| {
                let m = s.and_then(|s| s.metrics)?;
                Some((m.db_pool_size? + m.listener_up.unwrap_or(0.0)) as i64)
            })
            .sum();
    }
    let (samples, slots) = sampler.stop_set().await;
    if let (Some(d), Some(f)) = (deployment.as_ref(), facts.as_mut()) {
        f.replicas = d
            .replicas
            .iter()
            .zip(&slots)
            .map(|(r, slot)| ReplicaFigures::of(&r.name, slot, load_start_t_ms, load_end_t_ms))
            .collect();
        f.eras = crate::target::deployment::era_windows(&eras_at_start, &result.eras);
        checks.extend(deployment_checks(scenario, f));
    } else if tgt.pid.is_some() {
        let peak = samples
            .iter()
            .filter(|s| s.t_ms >= baseline.t_ms && !s.gone)
            .map(|s| s.rss_bytes as f64 / (1024.0 * 1024.0))
            .fold(0.0, f64::max);
        checks.push(Check::threshold(
            "memory.rss_peak_mib",
            "MiB",
            Some(peak),
            scenario.thresholds.rss_limit_mib,
            peak <= scenario.thresholds.rss_limit_mib,
            None,
        ));
    }
    let window: Vec<Sample> = samples
        .iter()
        .filter(|s| s.t_ms >= baseline.t_ms && !s.gone)
        .copied()
        .collect();
    let metrics_end = window.last().copied().unwrap_or(last);
    checks.extend(verdict::threshold_checks(
        &scenario.thresholds,
        &result,
        &mix,
        Some((&baseline, &metrics_end)),
        &window,
        if tgt.db_pool_max > 0.0 {
            tgt.db_pool_max
        } else {
            10.0
        },
    ));
    let mut notes = Vec::new();
    if !stable {
        notes.push(
            "the baseline never stood still for 1 s; it is the last sample of the wait".into(),
        );
    }
    notes.extend(
        new_sockets
            .iter()
            .map(|s| format!("new socket since the baseline: {s}")),
    );
    Ok(Measured {
        checks,
        load: result,
        phases: phase_log,
        probe: ProbeSeries {
            interval_ms: crate::observe::sampler::INTERVAL.as_millis() as u64,
            pid: tgt.pid,
            baseline_t_ms: baseline.t_ms,
            load_start_t_ms,
            load_end_t_ms,
            samples,
        },
        notes,
        started_at,
        target_version: tgt.version,
        deployment: facts,
    })
}

/// The deployment's checks: each replica's peak RSS under the bound, requests failed while
/// replicas were replaced, how long a revoked key kept working, and the database
/// connections after a restart (every one owned by a replica's pool or listener).
fn deployment_checks(scenario: &Scenario, f: &DeploymentFacts) -> Vec<Check> {
    let t = &scenario.thresholds;
    let mut checks = Vec::new();
    for r in &f.replicas {
        checks.push(Check::threshold(
            &format!("memory.rss_peak_mib.{}", r.name),
            "MiB",
            Some(r.rss_peak_mib),
            t.rss_limit_mib,
            r.rss_peak_mib <= t.rss_limit_mib,
            None,
        ));
    }
    if !f.restarts.is_empty() {
        let failed: u64 = f.restart_eras.iter().map(|e| e.failed).sum();
        checks.push(Check::threshold(
            "rolling_restart.failed_requests",
            "requests",
            Some(failed as f64),
            t.restart_failed_requests as f64,
            failed <= t.restart_failed_requests,
            None,
        ));
        let killed = f.restarts.iter().filter(|s| s.killed).count();
        checks.push(Check::threshold(
            "rolling_restart.killed",
            "replicas",
            Some(killed as f64),
            0.0,
            killed == 0,
            None,
        ));
    }
    if let Some(r) = &f.revocation {
        let max = r.max_ms();
        checks.push(Check::threshold(
            "revocation.ms",
            "ms",
            max,
            t.revocation_ms,
            max.is_some_and(|m| m <= t.revocation_ms),
            None,
        ));
    }
    if let Some(r) = &f.db_restart {
        let (end, owned) = (r.connections_end, r.connections_owned_end);
        checks.push(Check::threshold(
            "db_restart.stray_connections",
            "connections",
            end.zip(owned).map(|(e, o)| (e - o) as f64),
            0.0,
            end.zip(owned).is_some_and(|(e, o)| e <= o),
            None,
        ));
    }
    checks
}

/// `summary.txt`, also printed at the end of a run: the load, the latency table, the checks.
fn summarize(r: &Report) -> String {
    let mut s = String::new();
    let l = &r.load;
    s.push_str(&format!(
        "scenario {}: {} requests in {:.1}s ({:.0} req/s), {} failed, {} sessions opened, {} re-initialized{}\n",
        r.name,
        l.requests,
        l.wall_seconds,
        l.throughput_rps,
        l.failed,
        l.sessions_opened,
        l.reinitialized,
        if l.rate.is_some() { format!(", {} late starts", l.late_starts) } else { String::new() },
    ));
    s.push_str(&format!(
        "{:<28} {:>8} {:>8} {:>10} {:>10} {:>10} {:>10}\n",
        "request", "ok", "failed", "p50 ms", "p99 ms", "max ms", "mean ms"
    ));
    for (label, o) in &r.ops {
        let p = &o.percentiles;
        let ms = |v: u64| v as f64 / 1000.0;
        s.push_str(&format!(
            "{:<28} {:>8} {:>8} {:>10.2} {:>10.2} {:>10.2} {:>10.2}{}\n",
            label,
            o.ok,
            o.failed,
            ms(p.p50_us),
            ms(p.p99_us),
            ms(p.max_us),
            p.mean_us / 1000.0,
            if o.in_mix { "" } else { "  (session)" }
        ));
        if o.expected_errors > 0 {
            s.push_str(&format!(
                "    {} of the ok answers are the JSON-RPC error the scenario expects\n",
                o.expected_errors
            ));
        }
        for (tag, n) in &o.failures {
            s.push_str(&format!("    failed: {n} × {tag}\n"));
        }
        if let Some(f) = &o.first_failure {
            s.push_str(&format!("    first failure: {f}\n"));
        }
    }
    if let (Some(t), Some(h)) = (l.target_cpu_percent, l.harness_cpu_percent) {
        s.push_str(&format!(
            "cpu (% of one core, mean over the load): target {t:.0}%, harness {h:.0}%\n"
        ));
    }
    if let Some(per) = r.capacity.per_replica_rps {
        s.push_str(&format!(
            "capacity: one instance ({} vCPU, concurrency {}) serves about {per:.0} req/s ({}-bound)\n",
            r.capacity.model.vcpus,
            r.capacity.model.concurrency,
            r.capacity.bound.as_deref().unwrap_or("?"),
        ));
    }
    for n in &r.notes {
        s.push_str(&format!("note: {n}\n"));
    }
    for c in &r.checks {
        s.push_str(&c.line());
        s.push('\n');
    }
    s
}
