//! Stage 4, load + timeline: the measured load, and the scenario's phases at their offsets
//! into it (upstream faults, SIGTERM, a rolling restart, a database restart, a key
//! revocation), with the progress bar updated every 100 ms.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail};
use nix::sys::signal::Signal;
use serde_json::json;

use super::{Stage, progress};
use crate::load::{self, EraCounts, LoadResult, Plan, Recorder};
use crate::report::PhaseMark;
use crate::scenario::{Phase, PhaseAction, Protocol};
use crate::target::Processes;
use crate::target::deployment::{self, Deployment, DeploymentFacts};

/// What the measured load produced.
pub(super) struct Loaded {
    pub result: LoadResult,
    pub phases: Vec<PhaseMark>,
    /// When a SIGTERM phase signalled the target.
    pub sigterm_at: Option<Instant>,
    pub eras_at_start: BTreeMap<Protocol, EraCounts>,
    pub load_start_t_ms: u64,
    pub load_end_t_ms: u64,
    pub started_at: String,
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

/// What the phases act on.
struct Acts<'a> {
    http: reqwest::Client,
    recorder: &'a Recorder,
    procs: &'a mut Processes,
    deployment: &'a mut Option<Deployment>,
    facts: &'a mut Option<DeploymentFacts>,
    sigterm_at: Option<Instant>,
}

/// Which round of the measured load a [`drive`] is (`leaks.cycles`; one round without).
#[derive(Debug, Clone, Copy)]
pub(super) struct RoundOf {
    /// 1-based.
    pub index: u32,
    pub count: u32,
    /// The load of the rounds before this one.
    pub offset: Duration,
}

impl RoundOf {
    fn label(&self) -> String {
        if self.count == 1 {
            "load".into()
        } else {
            format!("round {}/{}", self.index, self.count)
        }
    }
}

/// The plan of the measured load: every round's users record into its one recorder.
pub(super) fn plan(s: &Stage<'_>) -> anyhow::Result<Arc<Plan>> {
    let scenario = s.scenario;
    let round = scenario.load.duration / scenario.leaks.cycles.max(1);
    Ok(Arc::new(
        Plan::new(scenario, &s.tgt.url, &s.tgt.headers, round)?.with_schemas(s.schemas.clone()),
    ))
}

/// Drives one round of the measured load (`plan`) to its end, each phase at its offset.
pub(super) async fn drive(
    s: &Stage<'_>,
    plan: Arc<Plan>,
    round: RoundOf,
    procs: &mut Processes,
    deployment: &mut Option<Deployment>,
    facts: &mut Option<DeploymentFacts>,
) -> anyhow::Result<Loaded> {
    let scenario = s.scenario;
    let recorder = plan.recorder.clone();
    let eras_at_start = recorder.era_counts();
    let load_start_t_ms = s.sampler.now_ms();
    let started_at = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    let load_task = tokio::spawn(load::attack(plan));
    let stop_early = StopAttackOnDrop(true);
    let started = Instant::now();
    let mut phases: Vec<_> = scenario.phases.iter().collect();
    phases.sort_by_key(|p| p.at);
    let mut next = 0;
    let mut acts = Acts {
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()?,
        recorder: &recorder,
        procs,
        deployment,
        facts,
        sigterm_at: None,
    };
    let mut phase_log = Vec::new();
    let mut phase_name = round.label();
    while !load_task.is_finished() {
        let elapsed = started.elapsed();
        while next < phases.len() && phases[next].at <= elapsed {
            let p = phases[next];
            next += 1;
            apply(s, p, &mut acts).await?;
            phase_name = name_of(p);
            phase_log.push(PhaseMark {
                at_ms: p.at.as_millis() as u64,
                name: phase_name.clone(),
                action: p.action.as_str().into(),
            });
        }
        if s.interrupted() {
            goose::trigger_killswitch("interrupted");
        }
        // the target is gone after a SIGTERM phase: nothing more to load
        if acts.sigterm_at.is_some() && s.sampler.latest().is_some_and(|x| x.gone) {
            goose::trigger_killswitch("target exited after SIGTERM");
        }
        progress::show(s, &recorder, round.offset + elapsed, &phase_name);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let sigterm_at = acts.sigterm_at;
    let result = load_task
        .await
        .map_err(|e| anyhow!("the load task failed: {e}"))??;
    let load_end_t_ms = s.sampler.now_ms();
    stop_early.disarm();
    Ok(Loaded {
        result,
        phases: phase_log,
        sigterm_at,
        eras_at_start,
        load_start_t_ms,
        load_end_t_ms,
        started_at,
    })
}

/// The phase's name in the report: its own, or what it does.
fn name_of(p: &Phase) -> String {
    p.name.clone().unwrap_or_else(|| match p.action {
        PhaseAction::Faults => format!(
            "{} {:?}",
            p.upstream.as_deref().unwrap_or(""),
            p.faults.clone().unwrap_or_default()
        ),
        PhaseAction::Sigterm => "SIGTERM".into(),
        other => other.as_str().into(),
    })
}

/// How long before a SIGTERM phase's signal the load is marked as stopping: requests that
/// start in between are not measured.
const SIGTERM_LEAD: Duration = Duration::from_millis(50);

/// Does what phase `p` says.
async fn apply(s: &Stage<'_>, p: &Phase, a: &mut Acts<'_>) -> anyhow::Result<()> {
    match p.action {
        PhaseAction::Faults => switch_faults(s, p, &a.http).await?,
        PhaseAction::Sigterm => {
            a.recorder.mark_stop();
            // in flight at the signal = sent at least SIGTERM_LEAD before it: a request still
            // unread in the kernel when the target closes an idle keep-alive connection is lost
            // by HTTP/1.1 itself (RFC 9112 §9.3.1), not by the target's drain
            tokio::time::sleep(SIGTERM_LEAD).await;
            a.sigterm_at = Some(Instant::now());
            if let Some(name) = s.tgt.process {
                a.procs.signal(name, Signal::SIGTERM)?;
            } else if s.scenario.bundled() {
                a.procs.signal("proxy", Signal::SIGTERM)?;
            } else {
                let Some(pid) = s.tgt.pid else {
                    bail!("a SIGTERM phase needs the target's PID");
                };
                nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), Signal::SIGTERM)?;
            }
        }
        PhaseAction::RollingRestart => {
            let d = a
                .deployment
                .as_mut()
                .ok_or_else(|| anyhow!("rolling-restart needs the bundled proxy"))?;
            s.bar.set_prefix("restart");
            let before = a.recorder.era_counts();
            let steps = d.rolling_restart(a.procs, &s.sampler, p.kill_after).await?;
            let windows = deployment::era_windows(&before, &a.recorder.era_counts());
            if let Some(f) = a.facts.as_mut() {
                f.restarts.extend(steps);
                f.restart_eras = windows;
            }
        }
        PhaseAction::DbRestart => {
            let d = a
                .deployment
                .as_mut()
                .ok_or_else(|| anyhow!("db-restart needs the bundled proxy"))?;
            s.bar.set_prefix("db-restart");
            let r = d.db_restart().await?;
            if let Some(f) = a.facts.as_mut() {
                f.db_restart = Some(r);
            }
        }
        PhaseAction::RevokeKey => {
            let d = a
                .deployment
                .as_ref()
                .ok_or_else(|| anyhow!("revoke-key needs the bundled proxy"))?;
            s.bar.set_prefix("revoke");
            // past the auth cache's TTL (30 s by default) every replica refuses it
            // anyway: waiting longer would measure the TTL, not the propagation
            let r = d.revoke(Duration::from_secs(40)).await?;
            if let Some(f) = a.facts.as_mut() {
                f.revocation = Some(r);
            }
        }
    }
    Ok(())
}

/// Switches an HTTP mock's faults and latency through its control endpoint.
async fn switch_faults(s: &Stage<'_>, p: &Phase, http: &reqwest::Client) -> anyhow::Result<()> {
    let name = p.upstream.as_deref().unwrap_or_default();
    let url = s
        .tgt
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
    Ok(())
}
