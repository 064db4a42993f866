//! The deployment section (replicas behind HAProxy on PostgreSQL), as tables both the
//! Markdown and the HTML report render: per-replica figures, the rolling restart by
//! protocol era, the key revocation, the database restart.

use crate::report::DeploymentFacts;
use crate::report::deployment::{DbRestart, Revocation};

/// One table of the section.
pub struct Table {
    pub title: String,
    pub header: Vec<&'static str>,
    pub rows: Vec<Vec<String>>,
    /// A sentence under the table.
    pub note: Option<String>,
}

fn num(v: Option<f64>, digits: usize) -> String {
    v.map(|v| format!("{v:.digits$}"))
        .unwrap_or_else(|| "–".into())
}

/// The section's tables, in reading order.
pub fn tables(d: &DeploymentFacts) -> Vec<Table> {
    let mut out = vec![replicas(d)];
    if !d.restarts.is_empty() {
        out.extend(restart(d));
    }
    out.extend(d.revocation.as_ref().map(revocation));
    out.extend(d.db_restart.as_ref().map(db_restart));
    out
}

/// Each replica's figures, and their total.
fn replicas(d: &DeploymentFacts) -> Table {
    let mut total_rss_peak = 0.0;
    let mut rows: Vec<Vec<String>> = d
        .replicas
        .iter()
        .map(|r| {
            total_rss_peak += r.rss_peak_mib;
            vec![
                r.name.clone(),
                r.pids
                    .iter()
                    .map(u32::to_string)
                    .collect::<Vec<_>>()
                    .join(" → "),
                num(r.requests, 0),
                num(r.cpu_percent, 0),
                format!("{:.1}", r.rss_peak_mib),
                format!("{:.1}", r.rss_end_mib),
                r.fds_end.to_string(),
                num(r.tasks_end, 0),
                num(r.sessions_end, 0),
            ]
        })
        .collect();
    let sum = |f: fn(&crate::report::deployment::ReplicaFigures) -> Option<f64>| {
        d.replicas.iter().map(f).sum::<Option<f64>>()
    };
    rows.push(vec![
        "total".into(),
        String::new(),
        num(sum(|r| r.requests), 0),
        num(sum(|r| r.cpu_percent), 0),
        format!("{total_rss_peak:.1} (sum of peaks)"),
        format!(
            "{:.1}",
            d.replicas.iter().map(|r| r.rss_end_mib).sum::<f64>()
        ),
        d.replicas
            .iter()
            .map(|r| r.fds_end)
            .sum::<u32>()
            .to_string(),
        num(sum(|r| r.tasks_end), 0),
        num(sum(|r| r.sessions_end), 0),
    ]);
    Table {
        title: format!(
            "Replicas ({}, balancer: {}, database: {})",
            d.replicas.len(),
            d.balancer,
            d.database
        ),
        header: vec![
            "replica",
            "PIDs",
            "requests",
            "CPU %",
            "RSS peak MiB",
            "RSS end MiB",
            "fds end",
            "tasks end",
            "sessions end",
        ],
        rows,
        note: Some("Requests: what each replica's `/metrics` counted, over every process that held its place; CPU: mean over the measured load, % of one core.".into()),
    }
}

/// The rolling restart: each replacement, and the requests meanwhile by protocol era.
fn restart(d: &DeploymentFacts) -> [Table; 2] {
    [
        Table {
            title: "Rolling restart".into(),
            header: vec!["replica", "PID", "drain ms", "exit", "out of rotation ms"],
            rows: d
                .restarts
                .iter()
                .map(|s| {
                    vec![
                        s.replica.clone(),
                        format!("{} → {}", s.old_pid, s.new_pid),
                        format!("{:.0}", s.drain_ms),
                        if s.killed {
                            format!("SIGKILLed ({})", s.exit)
                        } else {
                            s.exit.clone()
                        },
                        format!("{:.0}", s.out_of_rotation_ms),
                    ]
                })
                .collect(),
            note: None,
        },
        Table {
            title: "Requests while replicas were replaced, by protocol era".into(),
            header: vec!["era", "requests", "failed", "sessions lost (re-initialized)"],
            rows: d
                .restart_eras
                .iter()
                .map(|e| {
                    vec![
                        e.era.clone(),
                        e.requests.to_string(),
                        e.failed.to_string(),
                        e.session_lost.to_string(),
                    ]
                })
                .collect(),
            note: Some("A 2025-11-25 session lives in one replica's memory: when its replica goes, its next request gets 404 and the client re-initializes (the spec's signal). 2026-07-28 requests carry no session.".into()),
        },
    ]
}

/// How long each replica accepted the revoked key.
fn revocation(r: &Revocation) -> Table {
    let mut rows: Vec<Vec<String>> = r
        .per_replica_ms
        .iter()
        .map(|(name, ms)| {
            vec![
                name.clone(),
                ms.map(|v| format!("{v:.0}"))
                    .unwrap_or_else(|| "still accepted".into()),
            ]
        })
        .collect();
    rows.push(vec!["slowest".into(), num(r.max_ms(), 0)]);
    Table {
        title: format!("Key revocation ({})", r.key_id),
        header: vec!["replica", "accepted the revoked key for (ms)"],
        rows,
        note: Some(format!(
            "Revoked with `mcp-proxy keys revoke` ({:.0} ms from start to exit); each replica polled directly every 10 ms from the command's exit until it answered 401.",
            r.command_ms
        )),
    }
}

/// What the database restart did to the connections.
fn db_restart(r: &DbRestart) -> Table {
    Table {
        title: "Database restart".into(),
        header: vec!["figure", "value"],
        rows: vec![
            vec!["PostgreSQL down (ms)".into(), format!("{:.0}", r.down_ms)],
            vec![
                "every replica ready again after (ms)".into(),
                format!("{:.0}", r.recovered_ms),
            ],
            vec![
                "client connections before".into(),
                r.connections_before.to_string(),
            ],
            vec![
                "client connections once ready again".into(),
                r.connections_recovered.to_string(),
            ],
            vec![
                "client connections at the end".into(),
                num(r.connections_end.map(|v| v as f64), 0),
            ],
            vec![
                "… owned by the replicas (pools + listeners)".into(),
                num(r.connections_owned_end.map(|v| v as f64), 0),
            ],
        ],
        note: None,
    }
}
