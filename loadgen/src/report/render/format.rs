//! Words and numbers shared by the human formats (Markdown, HTML, JUnit messages).

use crate::report::capacity::Capacity;
use crate::report::{Check, Kind};
use crate::report::{DbFigures, Report, thousands};

/// What a reader calls the figure a check judges.
pub fn label(name: &str) -> String {
    match name {
        "latency.p99" => "p99 latency".into(),
        "latency.mean" => "mean latency".into(),
        "error_rate" => "error rate".into(),
        "config_cache.hit_rate" => "config-cache hit rate".into(),
        "db_pool.utilisation" => "DB pool use (peak)".into(),
        "db.config_queries_per_request" => "config queries per request".into(),
        "db.last_used_writes_per_request" => "lastUsedAt writes per request".into(),
        "shutdown.exit_code" => "exit code after SIGTERM".into(),
        "shutdown.seconds" => "time to exit after SIGTERM".into(),
        "shutdown.in_flight_failed" => "in-flight requests failed at SIGTERM".into(),
        other => other.into(),
    }
}

/// A value in its unit: ratios as percentages, ms with a sensible precision.
pub fn value(unit: &str, v: f64) -> String {
    match unit {
        "ratio" => {
            let p = v * 100.0;
            if p == 0.0 {
                "0 %".into()
            } else if p >= 10.0 {
                format!("{p:.1} %")
            } else if p >= 1.0 {
                format!("{p:.2} %")
            } else {
                format!("{p:.3} %")
            }
        }
        "ms" => format!("{} ms", num(v)),
        "MiB" => format!("{v:.1} MiB"),
        "s" => format!("{v:.2} s"),
        "" => num(v),
        u => format!("{} {u}", num(v)),
    }
}

/// A number: integers with separators, small fractions with enough digits to see.
pub fn num(v: f64) -> String {
    if (v.fract() == 0.0 && v.abs() < 1e15) || v.abs() >= 100.0 {
        thousands(v)
    } else if v.abs() >= 1.0 {
        format!("{v:.2}")
    } else if v == 0.0 {
        "0".into()
    } else {
        format!("{v:.4}")
    }
}

/// The target a threshold check holds the figure to (`≤ 2,000 ms`, `≥ 95.0 %`).
pub fn target(c: &Check) -> String {
    let op = if c.name == "config_cache.hit_rate" {
        "≥"
    } else {
        "≤"
    };
    match c.kind {
        Kind::Leak => format!("+{}", value(&c.unit, c.limit)),
        _ => format!("{op} {}", value(&c.unit, c.limit)),
    }
}

/// `PASS`, `FAIL` or `SKIP`.
pub fn mark(c: &Check) -> &'static str {
    match (c.passed, &c.skipped) {
        (_, Some(_)) => "SKIP",
        (true, None) => "PASS",
        (false, None) => "FAIL",
    }
}

/// The measured figure of a check, or why there is none.
pub fn measured(c: &Check) -> String {
    match (&c.skipped, c.value) {
        (Some(why), _) => format!("— ({why})"),
        (None, Some(v)) => value(&c.unit, v),
        (None, None) => "—".into(),
    }
}

/// One sentence on what failed and by how much (JUnit messages, the verdict line).
pub fn failure(c: &Check) -> String {
    let f = |v: Option<f64>| v.map(|v| value(&c.unit, v)).unwrap_or_else(|| "—".into());
    match c.kind {
        Kind::Leak => {
            let growth = match (c.value, c.baseline) {
                (Some(v), Some(b)) => value(&c.unit, v - b),
                _ => "—".into(),
            };
            format!(
                "{} did not return to its baseline: baseline {}, peak {}, final {} (+{growth}, allowed +{})",
                c.name,
                f(c.baseline),
                f(c.peak),
                f(c.value),
                value(&c.unit, c.limit)
            )
        }
        Kind::Threshold => {
            let by = match c.value {
                Some(v) => format!(", off by {}", value(&c.unit, (v - c.limit).abs())),
                None => String::new(),
            };
            format!(
                "{}: measured {}, target {}{by}",
                label(&c.name),
                f(c.value),
                target(c)
            )
        }
        Kind::Regression => format!(
            "{}: {} now, {} before (worst allowed within the noise margin: {})",
            c.name,
            f(c.value),
            f(c.baseline),
            value(&c.unit, c.limit)
        ),
    }
}

/// The headline: verdict and the first failures.
pub fn headline(r: &Report) -> String {
    let failed: Vec<&Check> = r.checks.iter().filter(|c| !c.passed).collect();
    let mut s = format!(
        "{} — {} (exit {})",
        r.name,
        r.verdict().to_uppercase(),
        r.exit_code
    );
    if !failed.is_empty() {
        let names: Vec<&str> = failed.iter().take(4).map(|c| c.name.as_str()).collect();
        s.push_str(&format!(": {}", names.join(", ")));
        if failed.len() > 4 {
            s.push_str(&format!(" and {} more", failed.len() - 4));
        }
    }
    s
}

/// What the load client did beside its requests (event streams, cancellations), or `None`
/// when it did none of it: `event streams: 80 opened, 0 not offered (405), …`.
pub fn client_line(r: &Report) -> Option<String> {
    let c = &r.load.client;
    let mut parts = Vec::new();
    if c.streams_opened + c.streams_not_offered + c.streams_refused > 0 {
        parts.push(format!(
            "event streams: {} opened, {} not offered (405), {} refused, {} broken early, {} events received",
            c.streams_opened,
            c.streams_not_offered,
            c.streams_refused,
            c.streams_broken,
            c.stream_events
        ));
    }
    if c.cancellations_sent + c.cancellations_failed + c.abandoned_at_stop > 0 {
        parts.push(format!(
            "notifications/cancelled: {} sent, {} unanswered; {} requests given up at the stop",
            c.cancellations_sent, c.cancellations_failed, c.abandoned_at_stop
        ));
    }
    (!parts.is_empty()).then(|| parts.join("; "))
}

/// `12,345 requests in 10.0 s (1,234 req/s), 0 failed; 80 users; protocol 2025-11-25`.
pub fn load_line(r: &Report) -> String {
    let l = &r.load;
    let who = match l.rate {
        Some(rate) => format!("open model at {} req/s", num(rate)),
        None => format!("{} users", l.users),
    };
    format!(
        "{} requests in {:.1} s ({} req/s), {} failed; {who}; protocol {}",
        thousands(l.requests as f64),
        l.wall_seconds,
        thousands(l.throughput_rps),
        thousands(l.failed as f64),
        l.protocol
    )
}

/// Dollars: `$1,234` or `$0.42`.
pub fn usd(v: f64) -> String {
    if v >= 100.0 {
        format!("${}", thousands(v))
    } else {
        format!("${v:.2}")
    }
}

/// The capacity section's explanation: one instance's capacity, which bound set it, and the
/// model's assumptions (None when there is nothing to plan from).
pub fn capacity_sentence(c: &Capacity) -> Option<String> {
    let per = c.per_replica_rps?;
    let m = &c.model;
    let cpu = match (c.cpu_bound_rps, c.measured.target_cpu_cores) {
        (Some(cpu), Some(cores)) => format!(
            "; the CPU allows {} ({} req/s measured on {cores:.2} cores)",
            thousands(cpu),
            thousands(c.measured.throughput_rps),
        ),
        _ => String::new(),
    };
    Some(format!(
        "One instance ({} vCPU, concurrency {}) serves about {} req/s, set by {}: Little's law gives {} at a mean latency of {} ms{cpu}. Planned at {:.0} % of that, min {} / max {} instances; a 30-day month at a constant rate; prices ${}/vCPU-s, ${}/DB read, ${}/DB write.",
        num(m.vcpus),
        m.concurrency,
        thousands(per),
        c.bound.as_deref().unwrap_or("?"),
        c.latency_bound_rps
            .map(thousands)
            .unwrap_or_else(|| "—".into()),
        c.measured
            .mean_latency_ms
            .map(|v| format!("{v:.2}"))
            .unwrap_or_else(|| "—".into()),
        m.utilisation * 100.0,
        m.min_instances,
        m.max_instances,
        m.vcpu_second_usd,
        m.db_read_usd,
        m.db_write_usd,
    ))
}

/// What the target's DB did over the measured window.
pub fn db_sentence(d: &DbFigures) -> String {
    format!(
        "Measured DB use: {} queries for {} requests ({} reads, {} writes; {} config queries, {} lastUsedAt batches).",
        thousands(d.queries),
        thousands(d.requests as f64),
        thousands(d.reads),
        thousands(d.writes),
        thousands(d.config_queries),
        thousands(d.last_used_writes)
    )
}

/// What was counted from outside the target, one line each (empty when nothing was).
pub fn outside_lines(r: &Report) -> Vec<String> {
    let mut lines = Vec::new();
    if let Some(h) = &r.outside.sessions {
        lines.push(format!(
            "sessions asked {:.1} s after the load: {} — held {} ({} DELETEd, {} abandoned), gone {}, unknown {}",
            h.asked_after_ms as f64 / 1000.0,
            h.asked,
            h.held,
            h.held_closed,
            h.held_abandoned,
            h.gone,
            h.unknown
        ));
        if !h.held_ids.is_empty() {
            lines.push(format!("held, e.g.: {}", h.held_ids.join(", ")));
        }
        if !h.unknown_answers.is_empty() {
            lines.push(format!(
                "unknown answers, e.g.: {}",
                h.unknown_answers.join("; ")
            ));
        }
    }
    if let Some(u) = &r.outside.upstream {
        lines.push(format!(
            "upstream (the mocks, {} read): {} calls, {} still in flight; {} cancellations received, {} calls cancelled in flight ({} stopped, {} finished anyway)",
            u.mocks,
            u.calls,
            u.in_flight,
            u.cancels_received,
            u.cancelled,
            u.stopped,
            u.finished_after_cancel
        ));
    }
    lines
}
