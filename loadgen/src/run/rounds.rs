//! Stage 4 as a whole: the measured load in `leaks.cycles` equal rounds (one round without),
//! each round after the first only once the one before has settled, and the reading after
//! each round's settle, which `verdict::cycles` judges memory by.

use std::sync::atomic::Ordering;

use super::Stage;
use super::baseline::Baseline;
use super::settle;
use super::timeline::{self, Loaded, RoundOf};
use crate::report::rounds::Round;
use crate::target::Processes;
use crate::target::deployment::{Deployment, DeploymentFacts};

/// The measured load of every round, and each round's settled reading (empty with one round,
/// whose settle is the run's).
pub(super) async fn drive(
    s: &Stage<'_>,
    base: &Baseline,
    procs: &mut Processes,
    deployment: &mut Option<Deployment>,
    facts: &mut Option<DeploymentFacts>,
) -> anyhow::Result<(Loaded, Vec<Round>)> {
    let plan = timeline::plan(s)?;
    let count = s.scenario.leaks.cycles.max(1);
    let per_round = s.scenario.load.duration / count;
    let mut rounds = Vec::new();
    let mut all: Option<Loaded> = None;
    for index in 1..=count {
        let opened_before = plan.recorder.sessions_opened.load(Ordering::Relaxed);
        let round = RoundOf {
            index,
            count,
            offset: per_round * (index - 1),
        };
        let loaded = timeline::drive(s, plan.clone(), round, procs, deployment, facts).await?;
        if count > 1 && !s.interrupted() {
            s.bar.set_prefix(format!("settle {index}/{count}"));
            let load_end = s.sampler.latest().unwrap_or_default();
            let settled = settle::watch(s, deployment.as_ref(), base, load_end).await?;
            let rss_low_bytes = s
                .sampler
                .since(loaded.load_start_t_ms)
                .iter()
                .filter(|x| x.probed && !x.gone)
                .map(|x| x.rss_bytes)
                .min()
                .unwrap_or(settled.rss_bytes);
            rounds.push(Round {
                rss_low_bytes,
                index,
                load_start_t_ms: loaded.load_start_t_ms,
                load_end_t_ms: loaded.load_end_t_ms,
                sessions_opened: plan.recorder.sessions_opened.load(Ordering::Relaxed)
                    - opened_before,
                settled,
            });
        }
        // the recorder is the plan's: the last round's result holds every round's
        all = Some(match all {
            None => loaded,
            Some(earlier) => Loaded {
                load_start_t_ms: earlier.load_start_t_ms,
                started_at: earlier.started_at,
                eras_at_start: earlier.eras_at_start,
                ..loaded
            },
        });
        if s.interrupted() {
            break;
        }
    }
    let loaded = all.expect("at least one round");
    Ok((loaded, rounds))
}
