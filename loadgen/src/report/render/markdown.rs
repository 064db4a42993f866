//! `report.md`: fits a GitHub step summary as it is. Every table is bounded (at most
//! [`MAX_ROWS`] rows), so the file stays far under GitHub's 1 MiB limit whatever the run.

use std::fmt::Write;

use super::format::{self, failure, label, mark, measured, target, usd, value};
use crate::report::Kind;
use crate::report::{Report, ms, thousands};

/// Rows per table, at most.
pub const MAX_ROWS: usize = 40;
/// GitHub's limit for one step summary.
pub const LIMIT_BYTES: usize = 1024 * 1024;

fn icon(m: &str) -> &'static str {
    match m {
        "PASS" => "✅",
        "FAIL" => "❌",
        _ => "➖",
    }
}

/// Characters of one cell or list item, at most.
const MAX_CELL: usize = 400;

/// Escapes what would break a table cell, and cuts what is too long to read.
fn cell(s: &str) -> String {
    let mut out: String = s.chars().take(MAX_CELL).collect();
    if out.len() < s.len() {
        out.push('…');
    }
    out.replace('|', "\\|").replace('\n', " ")
}

pub fn render(r: &Report) -> String {
    let mut s = String::new();
    header(&mut s, r);
    failed(&mut s, r);
    kpis(&mut s, r);
    leaks(&mut s, r);
    grown(&mut s, r);
    outside(&mut s, r);
    latency(&mut s, r);
    deployment(&mut s, r);
    capacity(&mut s, r);
    comparison(&mut s, r);
    notes(&mut s, r);
    footer(&mut s, r);
    s
}

/// The headline, the run's circumstances, its phases and merged shards.
fn header(s: &mut String, r: &Report) {
    let _ = writeln!(
        s,
        "## {} {}\n",
        icon(if r.exit_code == 0 { "PASS" } else { "FAIL" }),
        cell(&format::headline(r))
    );
    if !r.description.is_empty() {
        let _ = writeln!(s, "> {}\n", cell(&r.description));
    }
    let _ = writeln!(s, "{}.  ", format::load_line(r));
    if let Some(client) = format::client_line(r) {
        let _ = writeln!(s, "Client: {}.  ", cell(&client));
    }
    let _ = writeln!(
        s,
        "Started {} on `{}` ({} cores){}{}.\n",
        r.started_at,
        cell(&r.environment.hostname),
        r.environment.cores,
        r.environment
            .git_revision
            .as_ref()
            .map(|g| format!(
                ", revision `{}`{}",
                g.chars().take(12).collect::<String>(),
                if r.environment.git_dirty == Some(true) {
                    " (dirty)"
                } else {
                    ""
                }
            ))
            .unwrap_or_default(),
        r.shard
            .map(|x| format!(", shard {}/{}", x.index, x.count))
            .unwrap_or_default()
    );
    if !r.phases.is_empty() {
        let phases: Vec<String> = r
            .phases
            .iter()
            .take(MAX_ROWS)
            .map(|p| format!("at {:.1} s: {}", p.at_ms as f64 / 1000.0, cell(&p.name)))
            .collect();
        let _ = writeln!(s, "Phases: {}.\n", phases.join("; "));
    }
    if !r.merged_from.is_empty() {
        let _ = writeln!(s, "Merged from {} shards:", r.merged_from.len());
        for m in r.merged_from.iter().take(MAX_ROWS) {
            let _ = writeln!(s, "- {}", cell(m));
        }
        s.push('\n');
    }
}

/// What failed, one line each.
fn failed(s: &mut String, r: &Report) {
    let failed: Vec<_> = r.checks.iter().filter(|c| !c.passed).collect();
    if !failed.is_empty() {
        let _ = writeln!(s, "**What failed**\n");
        for c in failed.iter().take(MAX_ROWS) {
            let _ = writeln!(s, "- {}", cell(&failure(c)));
        }
        s.push('\n');
    }
}

/// The thresholds against their targets (and the earlier run's figures).
fn kpis(s: &mut String, r: &Report) {
    let before = |name: &str| {
        r.comparison.as_ref().and_then(|c| {
            c.rows
                .iter()
                .find(|row| row.figure == name)
                .map(|row| (row.before, row.regression))
        })
    };
    let compared = r.comparison.is_some();
    let _ = writeln!(s, "### KPIs against the documented targets\n");
    if compared {
        let _ = writeln!(
            s,
            "| KPI | measured | target | | before |\n|---|---:|---:|:-:|---:|"
        );
    } else {
        let _ = writeln!(s, "| KPI | measured | target | |\n|---|---:|---:|:-:|");
    }
    for c in r
        .checks
        .iter()
        .filter(|c| c.kind == Kind::Threshold)
        .take(MAX_ROWS)
    {
        let _ = write!(
            s,
            "| {} | {} | {} | {} |",
            cell(&label(&c.name)),
            cell(&measured(c)),
            target(c),
            icon(mark(c))
        );
        if compared {
            let b = before(&c.name)
                .map(|(v, reg)| {
                    format!(
                        "{}{}",
                        value(&c.unit, v),
                        if reg { " ⚠️ regression" } else { "" }
                    )
                })
                .unwrap_or_else(|| "—".into());
            let _ = write!(s, " {b} |");
        }
        s.push('\n');
    }
}

/// Each resource: baseline, peak, final, allowed growth.
fn leaks(s: &mut String, r: &Report) {
    let _ = writeln!(s, "\n### Leaks (after the settle window)\n");
    let _ = writeln!(
        s,
        "| resource | baseline | peak | final | allowed growth | |\n|---|---:|---:|---:|---:|:-:|"
    );
    let f = |u: &str, v: Option<f64>| v.map(|v| value(u, v)).unwrap_or_else(|| "—".into());
    for c in r.leak_checks().take(MAX_ROWS) {
        if let Some(why) = &c.skipped {
            let _ = writeln!(
                s,
                "| {} | — | — | — | — | ➖ {} |",
                cell(&c.name),
                cell(why)
            );
            continue;
        }
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | +{} | {} |",
            cell(&c.name),
            f(&c.unit, c.baseline),
            f(&c.unit, c.peak),
            f(&c.unit, c.value),
            value(&c.unit, c.limit),
            icon(mark(c))
        );
    }
}

/// The processes of the target's tree that grew since the baseline, under the leak checks.
fn grown(s: &mut String, r: &Report) {
    if r.grown.is_empty() {
        return;
    }
    let _ = writeln!(
        s,
        "\n#### Processes that grew\n\n| PID | parent | command | what grew |\n|---:|---:|---|---|"
    );
    for g in r.grown.iter().take(MAX_ROWS) {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} |",
            g.pid,
            g.ppid,
            cell(&g.command),
            cell(&g.grew.join(", "))
        );
    }
    if r.grown.len() > MAX_ROWS {
        let _ = writeln!(
            s,
            "\n… and {} more in `report.json`.",
            r.grown.len() - MAX_ROWS
        );
    }
}

/// What was counted from outside the target (sessions asked, the mocks' counts).
fn outside(s: &mut String, r: &Report) {
    let lines = super::format::outside_lines(r);
    if lines.is_empty() {
        return;
    }
    let _ = writeln!(s, "\n### Counted from outside\n");
    for l in lines {
        let _ = writeln!(s, "- {}", cell(&l));
    }
}

/// Latency by request label, and failures by kind.
fn latency(s: &mut String, r: &Report) {
    let _ = writeln!(s, "\n### Latency by request\n");
    let _ = writeln!(
        s,
        "| request | ok | failed | p50 ms | p90 ms | p99 ms | max ms | mean ms |\n|---|---:|---:|---:|---:|---:|---:|---:|"
    );
    let rows = r.ops_by_requests();
    for (name, l) in rows.iter().take(MAX_ROWS) {
        let p = &l.percentiles;
        let _ = writeln!(
            s,
            "| `{}`{} | {} | {} | {} | {} | {} | {} | {} |",
            cell(name),
            if l.in_mix { "" } else { " (session)" },
            thousands(l.ok as f64),
            thousands(l.failed as f64),
            ms(p.p50_us as f64),
            ms(p.p90_us as f64),
            ms(p.p99_us as f64),
            ms(p.max_us as f64),
            ms(p.mean_us)
        );
    }
    if rows.len() > MAX_ROWS {
        let _ = writeln!(
            s,
            "\n… and {} more in `report.json`.",
            rows.len() - MAX_ROWS
        );
    }
    let failures = r.failures_by_kind();
    if !failures.is_empty() {
        let _ = writeln!(s, "\nFailures by kind:");
        for (t, c) in failures.iter().take(MAX_ROWS) {
            let _ = writeln!(s, "- {} × {}", thousands(*c as f64), cell(t));
        }
    }
}

/// The deployment's tables (replicas, restart, revocation, database).
fn deployment(s: &mut String, r: &Report) {
    if let Some(d) = &r.deployment {
        for t in super::deployment::tables(d) {
            let _ = writeln!(s, "\n### {}\n", cell(&t.title));
            let _ = writeln!(s, "| {} |", t.header.join(" | "));
            let _ = writeln!(s, "|{}", "---|".repeat(t.header.len()));
            for row in &t.rows {
                let cells: Vec<String> = row.iter().map(|c| cell(c)).collect();
                let _ = writeln!(s, "| {} |", cells.join(" | "));
            }
            if let Some(n) = &t.note {
                let _ = writeln!(s, "\n{n}");
            }
        }
    }
}

/// The comparison with the earlier run.
fn comparison(s: &mut String, r: &Report) {
    if let Some(c) = &r.comparison {
        let _ = writeln!(
            s,
            "\n### Compared with the earlier run\n\n`{}` (started {}{}), noise margin {:.0} %.\n",
            cell(&c.baseline),
            c.baseline_started_at,
            c.baseline_git_revision
                .as_ref()
                .map(|g| format!(", revision `{}`", g.chars().take(12).collect::<String>()))
                .unwrap_or_default(),
            c.noise * 100.0
        );
        let _ = writeln!(
            s,
            "| figure | before | now | change | worst allowed | |\n|---|---:|---:|---:|---:|:-:|"
        );
        let rows = c.rows_regressions_first();
        for row in rows.iter().take(MAX_ROWS) {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {} |",
                cell(&label(&row.figure)),
                value(&row.unit, row.before),
                value(&row.unit, row.after),
                row.change
                    .map(|c| format!("{:+.1} %", c * 100.0))
                    .unwrap_or_else(|| "—".into()),
                value(&row.unit, row.allowed),
                if row.regression {
                    "❌ regression"
                } else {
                    "✅"
                }
            );
        }
        if rows.len() > MAX_ROWS {
            let _ = writeln!(
                s,
                "\n… and {} more in `report.json`.",
                rows.len() - MAX_ROWS
            );
        }
    }
}

/// The notes.
fn notes(s: &mut String, r: &Report) {
    if !r.notes.is_empty() {
        let _ = writeln!(s, "\n### Notes\n");
        for n in r.notes.iter().take(MAX_ROWS) {
            let _ = writeln!(s, "- {}", cell(n));
        }
    }
}

/// The environment line.
fn footer(s: &mut String, r: &Report) {
    let e = &r.environment;
    let _ = writeln!(
        s,
        "\n<sub>mcp-loadgen {} · {} · {} · {} · {} MiB{}</sub>",
        e.loadgen_version,
        cell(&e.os),
        cell(&e.kernel),
        cell(&e.cpu),
        thousands(e.memory_mib as f64),
        e.target_version
            .as_ref()
            .map(|v| format!(" · target {}", cell(v)))
            .unwrap_or_default()
    );
}

fn capacity(s: &mut String, r: &Report) {
    let c = &r.capacity;
    let m = &c.model;
    let _ = writeln!(s, "\n### Capacity planning\n");
    if c.per_replica_rps.is_none() {
        let _ = writeln!(s, "{}", c.note.as_deref().unwrap_or("nothing to plan from"));
        return;
    };
    if let Some(text) = format::capacity_sentence(c) {
        let _ = writeln!(s, "{text}\n");
    }
    if let Some(n) = &c.note {
        let _ = writeln!(s, "{}\n", cell(n));
    }
    if let Some(d) = &r.db {
        let _ = writeln!(s, "{}\n", format::db_sentence(d));
    }
    let before = r.comparison.as_ref().map(|x| &x.capacity_before);
    let _ = write!(
        s,
        "| rate | replicas | compute / month | DB reads / month | DB writes / month | DB / month | total / month |"
    );
    if before.is_some() {
        let _ = write!(s, " replicas before | total before |");
    }
    let _ = write!(s, "\n|---:|---:|---:|---:|---:|---:|---:|");
    if before.is_some() {
        let _ = write!(s, "---:|---:|");
    }
    s.push('\n');
    let opt = |v: Option<f64>, f: &dyn Fn(f64) -> String| v.map(f).unwrap_or_else(|| "—".into());
    for (i, p) in c.plans.iter().enumerate() {
        let target = i == 0 && m.target_rate.is_some();
        let _ = write!(
            s,
            "| {}{} req/s | {}{} | {} | {} | {} | {} | **{}** |",
            if target { "**target** " } else { "" },
            thousands(p.rate_rps),
            p.replicas,
            if p.over_max { " ⚠️ over max" } else { "" },
            usd(p.compute_usd_month),
            opt(p.db_reads_month, &thousands),
            opt(p.db_writes_month, &thousands),
            opt(p.db_usd_month, &usd),
            usd(p.total_usd_month)
        );
        if let Some(b) = before {
            match b.plans.iter().find(|x| x.rate_rps == p.rate_rps) {
                Some(x) => {
                    let _ = write!(s, " {} | {} |", x.replicas, usd(x.total_usd_month));
                }
                None => {
                    let _ = write!(s, " — | — |");
                }
            }
        }
        s.push('\n');
    }
}
