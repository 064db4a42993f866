//! The terminal summary of a run (`summary.txt`), and the one-word verdict line.

use crate::report::Report;

/// `summary.txt`, also printed at the end of a run: the load, the latency table, the checks.
pub fn summary(r: &Report) -> String {
    let mut s = String::new();
    let l = &r.load;
    s.push_str(&format!(
        "scenario {}: {} requests in {:.1}s ({:.0} req/s), {} failed, {} sessions opened, {} re-initialized{}\n",
        r.name,
        l.requests,
        l.wall_seconds,
        l.throughput_rps,
        l.failed,
        l.sessions_opened,
        l.reinitialized,
        if l.rate.is_some() { format!(", {} late starts", l.late_starts) } else { String::new() },
    ));
    if let Some(client) = super::format::client_line(r) {
        s.push_str(&format!("client: {client}\n"));
    }
    s.push_str(&format!(
        "{:<28} {:>8} {:>8} {:>10} {:>10} {:>10} {:>10}\n",
        "request", "ok", "failed", "p50 ms", "p99 ms", "max ms", "mean ms"
    ));
    for (label, o) in &r.ops {
        let p = &o.percentiles;
        let ms = |v: u64| v as f64 / 1000.0;
        s.push_str(&format!(
            "{:<28} {:>8} {:>8} {:>10.2} {:>10.2} {:>10.2} {:>10.2}{}\n",
            label,
            o.ok,
            o.failed,
            ms(p.p50_us),
            ms(p.p99_us),
            ms(p.max_us),
            p.mean_us / 1000.0,
            if o.in_mix { "" } else { "  (session)" }
        ));
        if o.expected_errors > 0 {
            s.push_str(&format!(
                "    {} of the ok answers are the JSON-RPC error the scenario expects\n",
                o.expected_errors
            ));
        }
        for (tag, n) in &o.failures {
            s.push_str(&format!("    failed: {n} × {tag}\n"));
        }
        if let Some(f) = &o.first_failure {
            s.push_str(&format!("    first failure: {f}\n"));
        }
    }
    if let (Some(t), Some(h)) = (l.target_cpu_percent, l.harness_cpu_percent) {
        s.push_str(&format!(
            "cpu (% of one core, mean over the load): target {t:.0}%, harness {h:.0}%\n"
        ));
    }
    if let Some(per) = r.capacity.per_replica_rps {
        s.push_str(&format!(
            "capacity: one instance ({} vCPU, concurrency {}) serves about {per:.0} req/s ({}-bound)\n",
            r.capacity.model.vcpus,
            r.capacity.model.concurrency,
            r.capacity.bound.as_deref().unwrap_or("?"),
        ));
    }
    for n in &r.notes {
        s.push_str(&format!("note: {n}\n"));
    }
    for c in &r.checks {
        s.push_str(&c.line());
        s.push('\n');
    }
    s
}

/// `pass`, or the verdict with its exit code (`leak found (exit 2)`).
pub fn verdict_line(r: &Report) -> String {
    match r.exit_code {
        0 => "pass".into(),
        n => format!("{} (exit {n})", r.verdict()),
    }
}
