//! The runtime's figures converted into the report's types (the only place that knows both
//! `load`'s [`LoadResult`] and the [`Report`] model).

use std::collections::BTreeMap;

use crate::load::{LoadResult, OpStats, Second};
use crate::report::{
    DbFigures, DeploymentFacts, Environment, Latency, LoadFigures, Percentiles, PhaseMark,
    ProbeSeries, Report, SCHEMA_VERSION, Sample, SecondFigures, Shard, by_method, capacity,
};
use crate::scenario::Scenario;
use crate::verdict::Check;

/// What [`report`] needs besides the load's figures.
pub struct RunFacts<'a> {
    pub scenario: &'a Scenario,
    pub shard: Option<Shard>,
    pub environment: Environment,
    pub started_at: String,
    pub load: &'a LoadResult,
    pub phases: Vec<PhaseMark>,
    pub probe: ProbeSeries,
    pub checks: Vec<Check>,
    pub notes: Vec<String>,
    pub deployment: Option<DeploymentFacts>,
    pub rounds: Vec<crate::report::rounds::Round>,
    pub grown: Vec<crate::report::tree::GrownProcess>,
    pub outside: crate::report::OutsideCounts,
}

/// The report of a finished run: the load's figures converted into the report's.
pub fn report(f: RunFacts<'_>) -> Report {
    let s = f.scenario;
    let mix: std::collections::BTreeSet<String> =
        s.ops().iter().map(|(op, _)| op.label()).collect();
    let ops: BTreeMap<String, Latency> = f
        .load
        .ops
        .iter()
        .map(|(k, v)| (k.clone(), latency(v, mix.contains(k))))
        .collect();
    let load = load_figures(s, f.load, &f.probe, &f.rounds);
    let (ok, failed) = f.load.totals();
    let window: Vec<&Sample> = f
        .probe
        .samples
        .iter()
        .filter(|x| !x.gone && x.t_ms >= f.probe.baseline_t_ms && x.metrics.is_some())
        .collect();
    let db = match (window.first(), window.last()) {
        (Some(a), Some(b)) => DbFigures::of(a, b, ok + failed),
        _ => None,
    };
    let methods = by_method(&ops);
    let capacity = capacity::Capacity::plan(&s.capacity, &load, &methods, db.as_ref());
    let mut report = Report {
        schema_version: SCHEMA_VERSION,
        name: s.name.clone(),
        description: s.description.clone(),
        scenario: serde_json::to_value(s).unwrap_or_default(),
        environment: f.environment,
        shard: f.shard,
        merged_from: Vec::new(),
        started_at: f.started_at,
        load,
        ops,
        methods,
        seconds: f
            .load
            .seconds
            .iter()
            .enumerate()
            .map(|(i, x)| second(i as u64, x))
            .collect(),
        phases: f.phases,
        probe: f.probe,
        db,
        checks: f.checks,
        capacity,
        comparison: None,
        notes: f.notes,
        deployment: f.deployment,
        rounds: f.rounds,
        grown: f.grown,
        outside: f.outside,
        exit_code: 0,
    };
    report.decide();
    report
}

fn latency(s: &OpStats, in_mix: bool) -> Latency {
    Latency {
        ok: s.ok,
        failed: s.failed,
        expected_errors: s.expected_errors,
        failures: s.failures.clone(),
        first_failure: s.first_failure.clone(),
        in_mix,
        percentiles: Percentiles::of(&s.histogram),
        histogram: s.histogram.clone(),
    }
}

fn second(t_s: u64, s: &Second) -> SecondFigures {
    SecondFigures {
        t_s,
        ok: s.ok,
        failed: s.failed,
        percentiles: Percentiles::of(&s.histogram),
        histogram: s.histogram.clone(),
    }
}

/// The load's figures: its model, totals and throughput, and the mean CPU of the target and
/// of the harness over the measured load.
fn load_figures(
    s: &Scenario,
    load: &LoadResult,
    probe: &ProbeSeries,
    rounds: &[crate::report::rounds::Round],
) -> LoadFigures {
    let (ok, failed) = load.totals();
    let wall = load.wall.as_secs_f64();
    // the settles between rounds (`leaks.cycles`) are not load
    let active = if load.active.is_zero() {
        wall
    } else {
        load.active.as_secs_f64()
    };
    let during: Vec<&Sample> = probe
        .samples
        .iter()
        .filter(|x| !x.gone && x.t_ms >= probe.load_start_t_ms && x.t_ms <= probe.load_end_t_ms)
        // in rounds, the settles between them are not load
        .filter(|x| rounds.is_empty() || rounds.iter().any(|r| r.loading_at(x.t_ms)))
        .collect();
    let mean = |v: Vec<f64>| (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64);
    LoadFigures {
        model: if s.load.rate.is_some() {
            "open"
        } else {
            "closed"
        }
        .into(),
        users: s.users() as u64,
        rate: s.load.rate,
        protocol: if s.load.protocols.is_empty() {
            s.load.protocol.as_str().into()
        } else {
            s.load
                .protocols
                .iter()
                .map(|(p, w)| format!("{} ×{w}", p.as_str()))
                .collect::<Vec<_>>()
                .join(" + ")
        },
        wall_seconds: wall,
        requests: ok + failed,
        ok,
        failed,
        throughput_rps: (ok + failed) as f64 / active.max(0.001),
        sessions_opened: load.sessions_opened,
        reinitialized: load.reinitialized,
        late_starts: load.late_starts,
        in_flight_failed_at_stop: load.in_flight_failed_at_stop,
        after_stop: load.after_stop,
        client: load.client,
        target_cpu_percent: probe
            .pid
            .and_then(|_| mean(during.iter().map(|x| x.cpu_percent as f64).collect())),
        harness_cpu_percent: mean(
            during
                .iter()
                .map(|x| x.harness_cpu_percent as f64)
                .collect(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_report_format_holds_a_secret_of_the_scenario() {
        let scenario = Scenario::parse(
            r#"
name = "creds"
[target]
secrets = { TOKEN = "s3cret-abc" }
[[upstream]]
name = "echo"
mock = "serve"
require_header = "Authorization: Bearer s3cret-abc"
headers = { Authorization = "Bearer ${TOKEN}" }
[load]
users = 1
warmup = "1s"
duration = "2s"
mix = { "tools/call echo" = 1 }
"#,
        )
        .unwrap();
        let load = LoadResult {
            wall: std::time::Duration::from_secs(2),
            active: std::time::Duration::ZERO,
            ops: BTreeMap::new(),
            seconds: Vec::new(),
            late_starts: 0,
            reinitialized: 0,
            sessions_opened: 0,
            in_flight_failed_at_stop: 0,
            after_stop: 0,
            eras: BTreeMap::new(),
            client: Default::default(),
            sessions: Vec::new(),
        };
        let report = report(RunFacts {
            scenario: &scenario,
            shard: None,
            environment: Environment::default(),
            started_at: "2026-01-01T00:00:00Z".into(),
            load: &load,
            phases: Vec::new(),
            probe: ProbeSeries::default(),
            checks: Vec::new(),
            notes: Vec::new(),
            deployment: None,
            rounds: Vec::new(),
            grown: Vec::new(),
            outside: Default::default(),
        });
        assert_eq!(report.scenario["target"]["secrets"]["TOKEN"], "***");
        let dir = tempfile::tempdir().unwrap();
        let files = report.write(dir.path()).unwrap();
        assert!(files.len() >= 4, "{files:?}");
        let summary = crate::report::render::summary::summary(&report)
            + &crate::report::render::summary::verdict_line(&report);
        for (name, text) in files
            .iter()
            .map(|f| (f.display().to_string(), std::fs::read_to_string(f).unwrap()))
            .chain([("the terminal summary".to_string(), summary)])
        {
            assert!(!text.contains("s3cret"), "{name} holds a secret");
        }
    }
}
