//! The deployment's part of a report (replicas behind HAProxy on PostgreSQL): what each
//! replica did, the rolling restart, the key revocation and the database restart, as
//! `target::deployment` measured them.

use serde::{Deserialize, Serialize};

/// What replacing one replica took.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct RestartStep {
    pub replica: String,
    pub old_pid: u32,
    pub new_pid: u32,
    /// From SIGTERM to the old process's exit.
    pub drain_ms: f64,
    /// The old process outlived `kill_after` and was SIGKILLed.
    pub killed: bool,
    /// Its exit status, as the OS said it.
    pub exit: String,
    /// From taking it out of the balancer to HAProxy seeing the new one UP.
    pub out_of_rotation_ms: f64,
}

/// How long each replica kept accepting a revoked key.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Revocation {
    pub key_id: String,
    /// `mcp-proxy keys revoke` from start to exit (the change is committed when it exits).
    pub command_ms: f64,
    /// Replica → ms from the command's exit to its first 401 (`None`: still accepted it at
    /// the end of the wait).
    pub per_replica_ms: Vec<(String, Option<f64>)>,
}

impl Revocation {
    /// The slowest replica (`None` if one never refused the key).
    pub fn max_ms(&self) -> Option<f64> {
        self.per_replica_ms
            .iter()
            .try_fold(0.0f64, |m, (_, v)| v.map(|v| m.max(v)))
    }
}

/// What a database restart did to the replicas' connections.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct DbRestart {
    /// Client connections in `pg_stat_activity` just before the restart.
    pub connections_before: i64,
    /// … once every replica was ready again.
    pub connections_recovered: i64,
    /// … at the end of the run (after the settle).
    pub connections_end: Option<i64>,
    /// … that the replicas own at the end: their pools' connections plus one listener each
    /// (from their `/metrics`).
    pub connections_owned_end: Option<i64>,
    /// The server was down for this long.
    pub down_ms: f64,
    /// From the server's return to every replica answering `/ready` 200 again.
    pub recovered_ms: f64,
}

/// Requests by protocol era during one window of the run (a rolling restart).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct EraWindow {
    pub era: String,
    pub requests: u64,
    pub failed: u64,
    /// 2025-11-25 requests answered 404 because their session died with its replica: each
    /// made its user re-initialize.
    pub session_lost: u64,
}

/// One replica's figures over the run (every process that held its place).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ReplicaFigures {
    pub name: String,
    pub pids: Vec<u32>,
    pub rss_peak_mib: f64,
    pub rss_end_mib: f64,
    pub fds_end: u32,
    pub tasks_end: Option<f64>,
    pub sessions_end: Option<f64>,
    /// MCP requests it served (its `mcp_proxy_requests_total`, over its processes).
    pub requests: Option<f64>,
    /// Mean CPU over the measured load, % of one core.
    pub cpu_percent: Option<f64>,
}

/// The deployment's facts for the report.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct DeploymentFacts {
    pub replicas: Vec<ReplicaFigures>,
    /// `haproxy` in front, or `none` (one replica).
    pub balancer: String,
    /// `throw-away cluster` or `external server`.
    pub database: String,
    pub restarts: Vec<RestartStep>,
    /// Requests by era while replicas were being replaced.
    pub restart_eras: Vec<EraWindow>,
    /// Requests by era over the whole measured load.
    pub eras: Vec<EraWindow>,
    pub revocation: Option<Revocation>,
    pub db_restart: Option<DbRestart>,
}
