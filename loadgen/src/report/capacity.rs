//! Capacity planning from the measured figures (SPEC cost model).
//!
//! One instance's capacity at the platform's shape is the lower of two bounds:
//! - latency: at `concurrency` requests in flight, Little's law gives `concurrency / mean
//!   latency` requests per second;
//! - CPU: the measured throughput per core the target burnt, times the instance's vCPUs.
//!
//! Replicas for a rate = ⌈rate / (capacity × utilisation)⌉, at least `min_instances`; more
//! than `max_instances` is flagged. Cost is for a 30-day month at a constant rate, instances
//! billed for every second they run, DB operations at the measured per-request counts.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{DbFigures, Latency, LoadFigures};

pub const SECONDS_PER_MONTH: f64 = 30.0 * 24.0 * 3600.0;

/// Capacity planning: the platform's shape and prices (SPEC cost model; Cloud Run defaults).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct CapacityModel {
    /// The rate to plan for, requests per second (the 10 / 100 / 1,000 / 10,000 table is
    /// always there).
    pub target_rate: Option<f64>,
    /// Requests one instance serves at once.
    pub concurrency: u32,
    pub vcpus: f64,
    pub min_instances: u32,
    pub max_instances: u32,
    /// Share of an instance's measured capacity to plan at (Cloud Run scales out at 60 % CPU).
    pub utilisation: f64,
    pub vcpu_second_usd: f64,
    pub db_read_usd: f64,
    pub db_write_usd: f64,
}

impl Default for CapacityModel {
    fn default() -> Self {
        CapacityModel {
            target_rate: None,
            concurrency: 80,
            vcpus: 1.0,
            min_instances: 1,
            max_instances: 100,
            utilisation: 0.6,
            vcpu_second_usd: 0.000024,
            db_read_usd: 0.0001,
            db_write_usd: 0.001,
        }
    }
}

/// The rates every report plans for (beside the scenario's `target_rate`).
pub const TABLE_RATES: [f64; 4] = [10.0, 100.0, 1_000.0, 10_000.0];

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Capacity {
    pub model: CapacityModel,
    pub measured: Measured,
    pub latency_bound_rps: Option<f64>,
    pub cpu_bound_rps: Option<f64>,
    /// One instance's capacity (the lower bound).
    pub per_replica_rps: Option<f64>,
    /// `latency` or `cpu`: which bound set it.
    pub bound: Option<String>,
    /// The scenario's `target_rate` first (when set), then [`TABLE_RATES`].
    pub plans: Vec<RatePlan>,
    /// Why there is no plan, or what limits it.
    pub note: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Measured {
    pub throughput_rps: f64,
    /// Requests in flight during the measurement (closed model: users; open: Little's law).
    pub concurrency: f64,
    pub mean_latency_ms: Option<f64>,
    /// Cores the target used on average (None: no PID to probe).
    pub target_cpu_cores: Option<f64>,
    pub reads_per_request: Option<f64>,
    pub writes_per_request: Option<f64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RatePlan {
    pub rate_rps: f64,
    pub replicas: u32,
    /// More replicas than `max_instances` would be needed (`replicas` is the need, not the
    /// cap).
    pub over_max: bool,
    pub compute_usd_month: f64,
    pub db_reads_month: Option<f64>,
    pub db_writes_month: Option<f64>,
    pub db_usd_month: Option<f64>,
    pub total_usd_month: f64,
}

impl Capacity {
    pub fn plan(
        model: &CapacityModel,
        load: &LoadFigures,
        methods: &BTreeMap<String, Latency>,
        db: Option<&DbFigures>,
    ) -> Capacity {
        let (n, sum) = methods.values().fold((0u64, 0.0), |(n, s), l| {
            let c = l.percentiles.count;
            (n + c, s + l.percentiles.mean_us * c as f64)
        });
        let mean_latency_ms = (n > 0).then(|| sum / n as f64 / 1000.0);
        let concurrency = match (load.model.as_str(), mean_latency_ms) {
            ("open", Some(m)) => load.throughput_rps * m / 1000.0,
            _ => load.users as f64,
        };
        let target_cpu_cores = load.target_cpu_percent.map(|p| p / 100.0);
        let measured = Measured {
            throughput_rps: load.throughput_rps,
            concurrency,
            mean_latency_ms,
            target_cpu_cores,
            reads_per_request: db.map(|d| d.reads_per_request),
            writes_per_request: db.map(|d| d.writes_per_request),
        };
        let latency_bound_rps = mean_latency_ms
            .filter(|m| *m > 0.0)
            .map(|m| model.concurrency as f64 / (m / 1000.0));
        // below 5 % of a core the CPU figure is mostly sampling noise
        let cpu_bound_rps = target_cpu_cores
            .filter(|c| *c >= 0.05 && load.throughput_rps > 0.0)
            .map(|c| load.throughput_rps / c * model.vcpus);
        let (per_replica_rps, bound) = match (latency_bound_rps, cpu_bound_rps) {
            (Some(l), Some(c)) if c < l => (Some(c), Some("cpu")),
            (Some(l), _) => (Some(l), Some("latency")),
            (None, Some(c)) => (Some(c), Some("cpu")),
            (None, None) => (None, None),
        };
        let mut notes = Vec::new();
        if per_replica_rps.is_none() {
            notes.push("no request completed: nothing to plan from".to_string());
        } else if cpu_bound_rps.is_none() {
            notes.push(
                "no CPU figure for the target (no PID, or it idled): planned from latency alone"
                    .to_string(),
            );
        }
        let planned = model.concurrency as f64;
        if per_replica_rps.is_some() && (concurrency - planned).abs() > 0.2 * planned {
            notes.push(format!(
                "measured at concurrency {concurrency:.0}, planned at {planned:.0}: latency at {planned:.0} in flight may differ; plan from a run at {planned:.0} (scenarios/steady-80.toml)"
            ));
        }
        let note = (!notes.is_empty()).then(|| notes.join("; "));
        let rates: Vec<f64> = model.target_rate.into_iter().chain(TABLE_RATES).collect();
        let plans = match per_replica_rps {
            Some(cap) => rates
                .iter()
                .map(|&rate| RatePlan::at(model, rate, cap, &measured))
                .collect(),
            None => Vec::new(),
        };
        Capacity {
            model: model.clone(),
            measured,
            latency_bound_rps,
            cpu_bound_rps,
            per_replica_rps,
            bound: bound.map(str::to_string),
            plans,
            note,
        }
    }
}

impl RatePlan {
    fn at(model: &CapacityModel, rate: f64, per_replica: f64, m: &Measured) -> RatePlan {
        let need = (rate / (per_replica * model.utilisation)).ceil() as u32;
        let replicas = need.max(model.min_instances);
        let compute = replicas as f64 * model.vcpus * SECONDS_PER_MONTH * model.vcpu_second_usd;
        let requests = rate * SECONDS_PER_MONTH;
        let reads = m.reads_per_request.map(|r| r * requests);
        let writes = m.writes_per_request.map(|w| w * requests);
        let db = match (reads, writes) {
            (Some(r), Some(w)) => Some(r * model.db_read_usd + w * model.db_write_usd),
            _ => None,
        };
        RatePlan {
            rate_rps: rate,
            replicas,
            over_max: replicas > model.max_instances,
            compute_usd_month: compute,
            db_reads_month: reads,
            db_writes_month: writes,
            db_usd_month: db,
            total_usd_month: compute + db.unwrap_or(0.0),
        }
    }
}
