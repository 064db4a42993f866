//! Stage 6, decide: the sampler stopped, the deployment's figures gathered, and every check
//! of the run built by `verdict` (leaks and shutdown from the settle, thresholds, RSS,
//! the deployment's).

use std::collections::BTreeSet;

use super::baseline::Baseline;
use super::settle::Settled;
use super::timeline::Loaded;
use super::{Measured, Stage};
use crate::observe::sampler::Sample;
use crate::report::ProbeSeries;
use crate::report::rounds::Round;
use crate::target::deployment::{self, Deployment, DeploymentFacts, ReplicaFigures};
use crate::verdict;

pub(super) async fn decide(
    s: Stage<'_>,
    deployment: Option<&Deployment>,
    mut facts: Option<DeploymentFacts>,
    base: Baseline,
    loaded: Loaded,
    settled: Settled,
    rounds: Vec<Round>,
) -> Measured {
    let scenario = s.scenario;
    if let (Some(d), Some(f)) = (deployment, facts.as_mut())
        && let Some(r) = f.db_restart.as_mut()
    {
        r.connections_end = d.client_connections().await;
        // what the replicas own: their pools, and one invalidation listener each
        r.connections_owned_end = s
            .sampler
            .latest_parts()
            .await
            .iter()
            .map(|x| {
                let m = x.and_then(|x| x.metrics)?;
                Some((m.db_pool_size? + m.listener_up.unwrap_or(0.0)) as i64)
            })
            .sum();
    }
    let outside = super::outside::count(&s, &loaded, loaded.sigterm_at.is_some()).await;
    let (samples, slots) = s.sampler.stop_set().await;
    let mut checks = settled.checks;
    checks.extend(outside.checks);
    let mut notes = Vec::new();
    if !rounds.is_empty() {
        // in rounds, memory is judged by repetition, not by one reading
        let by_rounds = verdict::cycles::rss_check(&rounds, &scenario.leaks);
        checks.retain(|c| c.name != by_rounds.name);
        checks.push(by_rounds);
        notes.extend(verdict::cycles::notes(&rounds, &scenario.leaks));
    }
    if let (Some(d), Some(f)) = (deployment, facts.as_mut()) {
        f.replicas = d
            .replicas
            .iter()
            .zip(&slots)
            .map(|(r, slot)| {
                ReplicaFigures::of(&r.name, slot, loaded.load_start_t_ms, loaded.load_end_t_ms)
            })
            .collect();
        f.eras = deployment::era_windows(&loaded.eras_at_start, &loaded.result.eras);
        checks.extend(verdict::run::deployment_checks(&scenario.thresholds, f));
    } else if s.tgt.pid.is_some() {
        checks.push(verdict::run::rss_peak_check(
            &samples,
            base.sample.t_ms,
            &scenario.thresholds,
        ));
    }
    let window: Vec<Sample> = samples
        .iter()
        .filter(|x| x.t_ms >= base.sample.t_ms && !x.gone)
        .copied()
        .collect();
    let metrics_end = window.last().copied().unwrap_or(settled.last);
    let mix: BTreeSet<String> = scenario.ops().iter().map(|(op, _)| op.label()).collect();
    checks.extend(verdict::threshold_checks(
        &scenario.thresholds,
        &loaded.result,
        &mix,
        Some((&base.sample, &metrics_end)),
        &window,
        if s.tgt.db_pool_max > 0.0 {
            s.tgt.db_pool_max
        } else {
            10.0
        },
    ));
    notes.extend(base.residue(&scenario.leaks));
    if !base.stable {
        notes.push(
            "the baseline never stood still for 1 s; it is the last sample of the wait".into(),
        );
    }
    notes.extend(verdict::tree::culprits(&checks, &settled.grown));
    notes.extend(verdict::tree::gc_hint(&checks, &settled.grown));
    notes.extend(outside.notes);
    notes.extend(missing_mapped(&scenario.target.metrics, &window));
    notes.extend(
        settled
            .new_sockets
            .iter()
            .map(|x| format!("new socket since the baseline: {x}")),
    );
    Measured {
        checks,
        load: loaded.result,
        phases: loaded.phases,
        probe: ProbeSeries {
            interval_ms: crate::observe::sampler::INTERVAL.as_millis() as u64,
            pid: s.tgt.pid,
            baseline_t_ms: base.sample.t_ms,
            load_start_t_ms: loaded.load_start_t_ms,
            load_end_t_ms: loaded.load_end_t_ms,
            samples,
        },
        notes,
        started_at: loaded.started_at,
        target_version: s.tgt.version,
        deployment: facts,
        rounds,
        grown: settled.grown,
        outside: outside.counts,
    }
}

/// A `[target.metrics]` series the target's `/metrics` never had: a note (its leak check says
/// it is skipped).
fn missing_mapped(names: &crate::scenario::MetricNames, window: &[Sample]) -> Vec<String> {
    type Read = fn(&crate::report::TargetMetrics) -> Option<f64>;
    let fields: [(&str, &Option<String>, Read); 3] = [
        ("sessions", &names.sessions, |m| m.sessions),
        ("tasks", &names.tasks, |m| m.tokio_alive_tasks),
        ("upstream_connections", &names.upstream_connections, |m| {
            m.upstream_active
        }),
    ];
    fields
        .into_iter()
        .filter_map(|(field, name, read)| {
            let name = name.as_ref()?;
            let seen = window
                .iter()
                .any(|x| x.metrics.as_ref().and_then(read).is_some());
            (!seen).then(|| {
                format!(
                    "`target.metrics.{field}` = {name}: no such series on the target's /metrics"
                )
            })
        })
        .collect()
}
