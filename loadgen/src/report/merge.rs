//! `mcp-loadgen merge`: shards run on several machines (`run --shard I/N`) combined into one
//! report. Histograms are merged exactly (not averaged), counts summed, per-second series
//! aligned on the second since each shard's load started (the shards start together).
//!
//! The shards measure one target: its probe series, CPU and DB counters are the target's, so
//! they come from the first shard that has them (DB per-request figures are re-divided by
//! every shard's requests). Latency and error thresholds are decided again on the merged
//! figures by `verdict::merge`; every other check keeps its worst shard.

use std::collections::BTreeMap;

use anyhow::bail;

use super::{DbFigures, Latency, Percentiles, Report, SecondFigures, by_method};

/// Merges the figures of `reports` (with the paths they came from) into one report, without
/// its checks: `verdict::merge` decides them again on the merged figures.
pub fn figures(reports: &[(String, Report)]) -> anyhow::Result<Report> {
    let Some((_, first)) = reports.first() else {
        bail!("merge needs at least one report");
    };
    for (path, r) in reports {
        if r.name != first.name {
            bail!(
                "{path} is scenario \"{}\", the first report is \"{}\": only shards of one scenario merge",
                r.name,
                first.name
            );
        }
    }
    let mut seen = BTreeMap::new();
    for (path, r) in reports {
        if let Some(s) = r.shard
            && let Some(other) = seen.insert(s.index, path.clone())
        {
            bail!(
                "{path} and {other} are both shard {}/{}: a shard given twice would count its load twice",
                s.index,
                s.count
            );
        }
    }
    let mut notes = shard_notes(reports);

    let mut out = first.clone();
    out.shard = None;
    out.comparison = None;
    out.merged_from = reports
        .iter()
        .map(|(p, r)| match r.shard {
            Some(s) => format!(
                "{p} (shard {}/{} on {})",
                s.index, s.count, r.environment.hostname
            ),
            None => format!("{p} (on {})", r.environment.hostname),
        })
        .collect();
    out.started_at = reports
        .iter()
        .map(|(_, r)| r.started_at.clone())
        .min()
        .unwrap_or_default();

    sum_load(reports, &mut out);
    merge_histograms(reports, &mut out);

    // the one target's series and counters
    if let Some((_, r)) = reports.iter().find(|(_, r)| !r.probe.samples.is_empty()) {
        out.probe = r.probe.clone();
    }
    out.db = reports.iter().find_map(|(_, r)| r.db).map(|d| DbFigures {
        requests: out.load.requests,
        reads_per_request: per(d.reads, out.load.requests),
        writes_per_request: per(d.writes, out.load.requests),
        config_queries_per_request: per(d.config_queries, out.load.requests),
        ..d
    });

    out.capacity = super::capacity::Capacity::plan(
        &first.capacity.model,
        &out.load,
        &out.methods,
        out.db.as_ref(),
    );
    for (path, r) in reports {
        notes.extend(r.notes.iter().map(|n| format!("{path}: {n}")));
    }
    out.notes = notes;
    Ok(out)
}

/// A note when the shards do not add up to their count (the load is not complete).
fn shard_notes(reports: &[(String, Report)]) -> Vec<String> {
    let mut notes = Vec::new();
    let counts: Vec<u32> = reports
        .iter()
        .filter_map(|(_, r)| r.shard)
        .map(|s| s.count)
        .collect();
    if let Some(&n) = counts.first()
        && (counts.iter().any(|c| *c != n) || reports.len() != n as usize)
    {
        notes.push(format!(
            "{} reports merged, but the shards say they are {}/{n}: the load is not complete",
            reports.len(),
            counts
                .iter()
                .map(|c| c.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    notes
}

/// The load figures, summed (the shards ran at once).
fn sum_load(reports: &[(String, Report)], out: &mut Report) {
    // load figures: summed (the shards ran at once)
    let load = &mut out.load;
    load.users = 0;
    load.rate = None;
    load.wall_seconds = 0.0;
    load.requests = 0;
    load.ok = 0;
    load.failed = 0;
    load.throughput_rps = 0.0;
    load.sessions_opened = 0;
    load.reinitialized = 0;
    load.late_starts = 0;
    load.in_flight_failed_at_stop = 0;
    load.after_stop = 0;
    load.client = Default::default();
    load.harness_cpu_percent = None;
    load.target_cpu_percent = reports.iter().find_map(|(_, r)| r.load.target_cpu_percent);
    for (_, r) in reports {
        let l = &r.load;
        load.users += l.users;
        load.rate = match (load.rate, l.rate) {
            (Some(a), Some(b)) => Some(a + b),
            (a, b) => a.or(b),
        };
        load.wall_seconds = load.wall_seconds.max(l.wall_seconds);
        load.requests += l.requests;
        load.ok += l.ok;
        load.failed += l.failed;
        load.throughput_rps += l.throughput_rps;
        load.sessions_opened += l.sessions_opened;
        load.reinitialized += l.reinitialized;
        load.late_starts += l.late_starts;
        load.in_flight_failed_at_stop += l.in_flight_failed_at_stop;
        load.after_stop += l.after_stop;
        load.client.add(&l.client);
        if let Some(c) = l.harness_cpu_percent {
            load.harness_cpu_percent = Some(load.harness_cpu_percent.unwrap_or(0.0) + c);
        }
    }
    if let Some(load) = out.scenario.get_mut("load") {
        load["users"] = out.load.users.into();
        if let Some(rate) = out.load.rate {
            load["rate"] = rate.into();
        }
    }
}

/// Every label's and every second's histogram, merged exactly.
fn merge_histograms(reports: &[(String, Report)], out: &mut Report) {
    // histograms, exactly
    out.ops = BTreeMap::new();
    for (_, r) in reports {
        for (label, l) in &r.ops {
            match out.ops.get_mut(label) {
                Some(m) => m.absorb(l),
                None => {
                    out.ops.insert(label.clone(), l.clone());
                }
            }
        }
    }
    out.methods = by_method(&out.ops);
    let len = reports
        .iter()
        .map(|(_, r)| r.seconds.len())
        .max()
        .unwrap_or(0);
    out.seconds = (0..len as u64)
        .map(|t_s| {
            let mut s = SecondFigures {
                t_s,
                ok: 0,
                failed: 0,
                percentiles: Percentiles::default(),
                histogram: crate::report::histogram::new(),
            };
            for (_, r) in reports {
                if let Some(x) = r.seconds.iter().find(|x| x.t_s == t_s) {
                    s.ok += x.ok;
                    s.failed += x.failed;
                    s.histogram.add(&x.histogram).expect("same bounds");
                }
            }
            s.percentiles = Percentiles::of(&s.histogram);
            s
        })
        .collect();
}

pub fn per(v: f64, requests: u64) -> f64 {
    if requests > 0 {
        v / requests as f64
    } else {
        0.0
    }
}

impl Latency {
    /// Total requests of this label.
    pub fn requests(&self) -> u64 {
        self.ok + self.failed
    }
}
