//! `mcp-loadgen run`: start what the scenario needs, warm up, take the baseline, drive the
//! load with its fault phases, settle, decide, write the report, tear everything down.
//!
//! The stages, in order, one module each: `start` (the target and its sampler), `warmup`,
//! `baseline`, `rounds` (the measured load, in `leaks.cycles` rounds, each through `timeline`:
//! the load and its phases), `settle`, `outside` (counted from outside after the settle,
//! called from `decide`), `decide` (the checks, through `verdict`); `facts` converts what
//! they measured into the report.
//!
//! Every exit path goes through [`run`]'s teardown: the processes it started are stopped and
//! reaped whether the run passed, failed, errored or was interrupted.

mod baseline;
mod decide;
mod facts;
mod outside;
mod progress;
mod rounds;
mod settle;
mod start;
mod timeline;
mod warmup;

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use tokio_util::sync::CancellationToken;

use crate::load::LoadResult;
use crate::observe::sampler::Sampler;
use crate::report::render::summary;
use crate::report::tree::GrownProcess;
use crate::report::{Environment, PhaseMark, ProbeSeries, Report, Shard};
use crate::scenario::Scenario;
use crate::target::deployment::{Deployment, DeploymentFacts};
use crate::target::{Binaries, Endpoint, Processes};
use crate::verdict::Check;

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
    /// Each round's reading, with `leaks.cycles` ≥ 2.
    rounds: Vec<crate::report::rounds::Round>,
    /// Processes of the target's tree that grew since the baseline.
    grown: Vec<GrownProcess>,
    outside: crate::report::OutsideCounts,
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

/// What every stage of a measured run reads: the scenario, the options, the target, its
/// sampler (stopped by [`decide`]), the progress bar, and the target's tool schemas
/// (listed by [`warmup`]).
struct Stage<'a> {
    scenario: &'a Scenario,
    opts: &'a Options,
    tgt: Endpoint,
    sampler: Sampler,
    bar: indicatif::ProgressBar,
    schemas: std::collections::BTreeMap<String, serde_json::Value>,
}

impl Stage<'_> {
    fn interrupted(&self) -> bool {
        self.opts.interrupt.is_cancelled()
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
    let result = measure(&scenario, &opts, &out_dir, &mut procs, &mut deployment).await;
    let m = teardown(result, procs, deployment).await?;
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
        rounds: m.rounds,
        grown: m.grown,
        outside: m.outside,
    });
    if let (Some(before), Some(path)) = (&before, &opts.baseline) {
        report.compare_with(before, &path.display().to_string(), noise);
    }
    let summary = summary::summary(&report);
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

/// The teardown, on every path: the proxies first, then what they stand on; then what is
/// left behind (an `orphans` leak) and the proxies' exit statuses, added to the run's checks
/// and notes.
async fn teardown(
    result: anyhow::Result<Measured>,
    procs: Processes,
    mut deployment: Option<Deployment>,
) -> anyhow::Result<Measured> {
    let statuses = procs.stop(Duration::from_secs(12)).await;
    if let Some(d) = deployment.take() {
        d.stop().await;
    }
    let (strays, exited, alive) = strays_after(STRAY_GRACE).await;
    let described: Vec<String> = alive.iter().map(|p| crate::process::describe(*p)).collect();
    crate::process::reap_strays(&strays);
    let mut m = result?;
    if !alive.is_empty() {
        m.checks
            .push(crate::verdict::run::left_behind_check(alive.len()));
        m.notes
            .extend(described.iter().map(|d| format!("left behind: {d}")));
    }
    if !exited.is_empty() {
        m.notes.push(format!(
            "{} processes orphaned by the target exited and were reaped by the harness standing in for PID 1; under a PID 1 that does not reap (e.g. node as PID 1 in a container) they would stay zombies",
            exited.len()
        ));
    }
    for (name, status) in &statuses {
        if let (true, Some(s)) = (crate::target::measured(name), status) {
            m.notes.push(format!("{name} exit: {s}"));
        }
    }
    Ok(m)
}

/// How long an orphan gets to exit once its parent has gone: a stdio server sees EOF on its
/// stdin when the proxy that spawned it exits, and ends a moment later.
const STRAY_GRACE: Duration = Duration::from_secs(2);

/// The processes left once the run's own are stopped (re-parented to the harness), after
/// up to `grace` for them to exit: every stray, the exited ones (zombies waiting for their
/// adoptive parent, the harness standing in for PID 1, to reap them: they hold nothing) and
/// the ones still running (left behind).
async fn strays_after(grace: Duration) -> (Vec<u32>, Vec<u32>, Vec<u32>) {
    let deadline = tokio::time::Instant::now() + grace;
    loop {
        let strays = crate::process::stray_processes();
        let (exited, alive): (Vec<u32>, Vec<u32>) = strays
            .iter()
            .partition(|p| crate::process::tree::process_state(**p) == Some('Z'));
        if alive.is_empty() || tokio::time::Instant::now() >= deadline {
            return (strays, exited, alive);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `reports/<name>-<UTC time>/`.
pub fn default_out_dir(name: &str) -> PathBuf {
    let now = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    let stamp: String = now.chars().filter(|c| *c != ':' && *c != '-').collect();
    PathBuf::from("reports").join(format!("{name}-{stamp}"))
}

/// The measured part of a run, stage by stage.
async fn measure(
    scenario: &Scenario,
    opts: &Options,
    out_dir: &Path,
    procs: &mut Processes,
    deployment: &mut Option<Deployment>,
) -> anyhow::Result<Measured> {
    let (tgt, sampler, mut facts) =
        start::start(scenario, opts, out_dir, procs, deployment).await?;
    let mut stage = Stage {
        scenario,
        opts,
        tgt,
        sampler,
        bar: progress::bar(opts.quiet, scenario.load.duration),
        schemas: Default::default(),
    };
    // before any request: what the baseline is checked against
    let before_warmup = stage.sampler.fresh().await.unwrap_or_default();
    stage.schemas = warmup::warm_up(&stage).await?;
    if stage.interrupted() {
        bail!("interrupted");
    }
    let base = baseline::take(&stage, deployment.as_ref(), before_warmup).await?;
    let (loaded, rounds) = rounds::drive(&stage, &base, procs, deployment, &mut facts).await?;
    if stage.interrupted() {
        stage.bar.finish_and_clear();
        bail!("interrupted");
    }
    let last_round = rounds.last().map(|r| r.settled);
    let settled = settle::settle(
        &stage,
        procs,
        deployment.as_ref(),
        &base,
        &loaded,
        last_round,
    )
    .await?;
    stage.bar.finish_and_clear();
    Ok(decide::decide(
        stage,
        deployment.as_ref(),
        facts,
        base,
        loaded,
        settled,
        rounds,
    )
    .await)
}
