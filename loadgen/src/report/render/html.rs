//! `report.html`: one self-contained page (inline CSS, inline SVG charts, no script, nothing
//! fetched) that a browser shows and prints. Top to bottom: the verdict, the KPIs, the leak
//! checks, the charts (latency and throughput per second with the fault phases shaded; one
//! small chart per leak-checked resource with its tolerance band), latency by request,
//! capacity, the comparison with an earlier run, notes and the environment.
//!
//! The same facts as `report.md` ([`super::markdown`]), in the same words ([`super::format`]).
//! Tables are bounded like the Markdown's; the charts are drawn by `charts`.

use std::fmt::Write;

use super::format::{self, failure, label, mark, measured, target, usd, value};
use super::markdown::MAX_ROWS;
use crate::report::{Check, Kind};
use crate::report::{Report, ms, thousands};

const CSS: &str = r#"
:root{--pass:#1a7f37;--fail:#cf222e;--skip:#6e7781;--line:#d0d7de;--muted:#57606a}
*{box-sizing:border-box}
body{margin:0;color:#1f2328;background:#fff;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif}
main{max-width:920px;margin:0 auto;padding:16px 20px 40px}
h2{font-size:17px;margin:26px 0 8px;padding-bottom:3px;border-bottom:1px solid var(--line)}
p{margin:4px 0}
.banner{border:3px solid;border-radius:8px;padding:12px 18px 14px;margin:0 0 12px}
.banner.pass{border-color:var(--pass);background:#dafbe1}
.banner.fail{border-color:var(--fail);background:#ffebe9}
.verdict{font-size:46px;font-weight:800;letter-spacing:.04em;line-height:1.05}
.verdict small{font-size:18px;font-weight:600;letter-spacing:0;margin-left:10px}
.pass .verdict{color:var(--pass)}.fail .verdict{color:var(--fail)}
.headline{font-size:17px;font-weight:600;margin:6px 0 2px}
.banner ul{margin:6px 0 0;padding-left:22px}
.banner li{margin:2px 0}
table{border-collapse:collapse;width:100%;margin:6px 0 10px;font-size:13px}
th,td{border:1px solid var(--line);padding:3px 7px;text-align:left;vertical-align:top}
th{background:#f6f8fa;font-weight:600}
.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.c{text-align:center}
tr.bad td{background:#fff1f0}
.mark{font-weight:700;font-size:12px;white-space:nowrap}
.PASS{color:var(--pass)}.FAIL{color:var(--fail)}.SKIP{color:var(--skip)}
code{font:12px ui-monospace,SFMono-Regular,Menlo,Consolas,monospace}
.muted{color:var(--muted)}
.name{display:block;color:var(--muted);font-size:11px}
figure{margin:6px 0 12px;break-inside:avoid;page-break-inside:avoid}
figcaption{font-weight:600;margin:0 0 2px}
figcaption .muted{font-weight:400;font-size:12px}
.key{font-weight:400;font-size:12px;margin-left:12px;white-space:nowrap}
.key i{display:inline-block;width:18px;border-top:3px solid;vertical-align:middle;margin-right:4px}
svg{display:block;max-width:100%;height:auto}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(400px,1fr));gap:0 16px}
.nodata{color:var(--muted);font-style:italic;border:1px dashed var(--line);padding:8px 10px;margin:4px 0}
dl{display:grid;grid-template-columns:max-content 1fr;gap:2px 14px;margin:6px 0;font-size:13px}
dt{color:var(--muted)}dd{margin:0}
@page{margin:12mm}
@media print{
body{font-size:10pt}
main{max-width:none;padding:0}
.banner,.banner.pass,.banner.fail,th,tr.bad td{background:none}
.banner,figure,table.keep,dl{break-inside:avoid;page-break-inside:avoid}
tr{break-inside:avoid;page-break-inside:avoid}
h2{break-after:avoid;page-break-after:avoid}
.grid{grid-template-columns:1fr 1fr}
}
"#;

/// Escapes text for HTML content and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A revision's first 12 characters (whatever it holds: it is read back from JSON).
fn short(rev: &str) -> String {
    rev.chars().take(12).collect()
}

pub(super) fn mark_span(m: &str) -> String {
    format!(r#"<span class="mark {m}">{m}</span>"#)
}

pub(super) fn opt(unit: &str, v: Option<f64>) -> String {
    v.map(|v| value(unit, v)).unwrap_or_else(|| "—".into())
}

pub fn render(r: &Report) -> String {
    let mut s = String::with_capacity(256 * 1024);
    let _ = write!(
        s,
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{}</title>\n<style>{CSS}</style>\n</head>\n<body>\n<main>\n",
        escape(&format::headline(r))
    );
    banner(&mut s, r);
    kpis(&mut s, r);
    leaks(&mut s, r);
    grown(&mut s, r);
    outside(&mut s, r);
    super::charts::charts(&mut s, r);
    requests(&mut s, r);
    deployment(&mut s, r);
    capacity(&mut s, r);
    comparison(&mut s, r);
    notes(&mut s, r);
    environment(&mut s, r);
    s.push_str("</main>\n</body>\n</html>\n");
    s
}

fn banner(s: &mut String, r: &Report) {
    let (class, word) = if r.exit_code == 0 {
        ("pass", "PASS")
    } else {
        ("fail", "FAIL")
    };
    let _ = writeln!(
        s,
        "<section class=\"banner {class}\">\n<div class=\"verdict\">{word}<small>{} · exit {}</small></div>\n\
         <p class=\"headline\">{}</p>\n<p>{}.</p>",
        escape(r.verdict()),
        r.exit_code,
        escape(&format::headline(r)),
        escape(&format::load_line(r))
    );
    let failed: Vec<&Check> = r.checks.iter().filter(|c| !c.passed).collect();
    if !failed.is_empty() {
        let _ = writeln!(s, "<p><strong>What failed</strong></p>\n<ul>");
        for c in failed {
            let _ = writeln!(s, "<li>{}</li>", escape(&failure(c)));
        }
        s.push_str("</ul>\n");
    }
    s.push_str("</section>\n");
    if !r.description.is_empty() {
        let _ = writeln!(s, "<p>{}</p>", escape(&r.description));
    }
    let e = &r.environment;
    let _ = writeln!(
        s,
        "<p class=\"muted\">Started {} on <code>{}</code> ({} cores){}{}.</p>",
        escape(&r.started_at),
        escape(&e.hostname),
        e.cores,
        e.git_revision
            .as_ref()
            .map(|g| format!(
                ", revision <code>{}</code>{}",
                escape(&short(g)),
                if e.git_dirty == Some(true) {
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
}

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
    let _ = writeln!(
        s,
        "<h2>KPIs against the documented targets</h2>\n<table class=\"keep\">\n<tr><th>KPI</th>\
         <th class=\"n\">measured</th><th class=\"n\">target</th><th class=\"c\"></th>{}</tr>",
        if compared {
            "<th class=\"n\">before</th>"
        } else {
            ""
        }
    );
    let mut any = false;
    for c in r.checks.iter().filter(|c| c.kind == Kind::Threshold) {
        any = true;
        let m = mark(c);
        let _ = write!(
            s,
            "<tr{}><td>{}<code class=\"name\">{}</code></td><td class=\"n\">{}</td>\
             <td class=\"n\">{}</td><td class=\"c\">{}</td>",
            if m == "FAIL" { " class=\"bad\"" } else { "" },
            escape(&label(&c.name)),
            escape(&c.name),
            escape(&measured(c)),
            escape(&target(c)),
            mark_span(m)
        );
        if compared {
            let b = before(&c.name)
                .map(|(v, reg)| {
                    format!(
                        "{}{}",
                        escape(&value(&c.unit, v)),
                        if reg {
                            " <span class=\"FAIL\">⚠ regression</span>"
                        } else {
                            ""
                        }
                    )
                })
                .unwrap_or_else(|| "—".into());
            let _ = write!(s, "<td class=\"n\">{b}</td>");
        }
        s.push_str("</tr>\n");
    }
    if !any {
        let cols = if compared { 5 } else { 4 };
        let _ = writeln!(
            s,
            "<tr><td colspan=\"{cols}\" class=\"muted\">no threshold checks</td></tr>"
        );
    }
    s.push_str("</table>\n");
}

fn leaks(s: &mut String, r: &Report) {
    let _ = writeln!(
        s,
        "<h2>Leaks (after the settle window)</h2>\n<table class=\"keep\">\n<tr><th>resource</th>\
         <th class=\"n\">baseline</th><th class=\"n\">peak</th><th class=\"n\">final</th>\
         <th class=\"n\">allowed growth</th><th class=\"c\"></th></tr>"
    );
    let mut any = false;
    for c in r.leak_checks() {
        any = true;
        if let Some(why) = &c.skipped {
            let _ = writeln!(
                s,
                "<tr><td><code>{}</code></td><td class=\"n\">—</td><td class=\"n\">—</td>\
                 <td class=\"n\">—</td><td class=\"n\">—</td><td>{} <span class=\"muted\">{}</span></td></tr>",
                escape(&c.name),
                mark_span("SKIP"),
                escape(why)
            );
            continue;
        }
        let m = mark(c);
        let _ = writeln!(
            s,
            "<tr{}><td><code>{}</code></td><td class=\"n\">{}</td><td class=\"n\">{}</td>\
             <td class=\"n\">{}</td><td class=\"n\">+{}</td><td class=\"c\">{}</td></tr>",
            if m == "FAIL" { " class=\"bad\"" } else { "" },
            escape(&c.name),
            escape(&opt(&c.unit, c.baseline)),
            escape(&opt(&c.unit, c.peak)),
            escape(&opt(&c.unit, c.value)),
            escape(&value(&c.unit, c.limit)),
            mark_span(m)
        );
    }
    if !any {
        let _ = writeln!(
            s,
            "<tr><td colspan=\"6\" class=\"muted\">no leak checks</td></tr>"
        );
    }
    s.push_str("</table>\n");
}

/// The processes of the target's tree that grew since the baseline, under the leak checks.
fn grown(s: &mut String, r: &Report) {
    if r.grown.is_empty() {
        return;
    }
    s.push_str(
        "<h3>Processes that grew</h3>\n<table class=\"keep\">\n<tr><th class=\"n\">PID</th>\
         <th class=\"n\">parent</th><th>command</th><th>what grew</th></tr>\n",
    );
    for g in r.grown.iter().take(MAX_ROWS) {
        let _ = writeln!(
            s,
            "<tr class=\"bad\"><td class=\"n\">{}</td><td class=\"n\">{}</td><td><code>{}</code></td><td>{}</td></tr>",
            g.pid,
            g.ppid,
            escape(&g.command),
            escape(&g.grew.join(", "))
        );
    }
    s.push_str("</table>\n");
}

/// What was counted from outside the target (sessions asked, the mocks' counts).
fn outside(s: &mut String, r: &Report) {
    let lines = super::format::outside_lines(r);
    if lines.is_empty() {
        return;
    }
    s.push_str("<h2>Counted from outside</h2>\n<ul>\n");
    for l in lines {
        let _ = writeln!(s, "<li>{}</li>", escape(&l));
    }
    s.push_str("</ul>\n");
}

fn requests(s: &mut String, r: &Report) {
    let _ = writeln!(
        s,
        "<h2>Latency by request</h2>\n<table>\n<tr><th>request</th><th class=\"n\">ok</th>\
         <th class=\"n\">failed</th><th class=\"n\">p50 ms</th><th class=\"n\">p90 ms</th>\
         <th class=\"n\">p99 ms</th><th class=\"n\">max ms</th><th class=\"n\">mean ms</th></tr>"
    );
    let rows = r.ops_by_requests();
    for (name, l) in rows.iter().take(MAX_ROWS) {
        let p = &l.percentiles;
        let _ = writeln!(
            s,
            "<tr{}><td><code>{}</code>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td>\
             <td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td>\
             <td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
            if l.failed > 0 { " class=\"bad\"" } else { "" },
            escape(name),
            if l.in_mix {
                ""
            } else {
                " <span class=\"muted\">(session)</span>"
            },
            thousands(l.ok as f64),
            thousands(l.failed as f64),
            ms(p.p50_us as f64),
            ms(p.p90_us as f64),
            ms(p.p99_us as f64),
            ms(p.max_us as f64),
            ms(p.mean_us)
        );
    }
    if rows.is_empty() {
        let _ = writeln!(
            s,
            "<tr><td colspan=\"8\" class=\"muted\">no requests</td></tr>"
        );
    }
    s.push_str("</table>\n");
    if rows.len() > MAX_ROWS {
        let _ = writeln!(
            s,
            "<p class=\"muted\">… and {} more in <code>report.json</code>.</p>",
            rows.len() - MAX_ROWS
        );
    }
    let failures = r.failures_by_kind();
    if !failures.is_empty() {
        let _ = writeln!(s, "<p><strong>Failures by kind</strong></p>\n<ul>");
        for (t, c) in failures.iter().take(MAX_ROWS) {
            let _ = writeln!(
                s,
                "<li>{} × <code>{}</code></li>",
                thousands(*c as f64),
                escape(t)
            );
        }
        s.push_str("</ul>\n");
    }
}

fn capacity(s: &mut String, r: &Report) {
    let c = &r.capacity;
    let m = &c.model;
    s.push_str("<h2>Capacity planning</h2>\n");
    if c.per_replica_rps.is_none() {
        let _ = writeln!(
            s,
            "<p>{}</p>",
            escape(c.note.as_deref().unwrap_or("nothing to plan from"))
        );
        return;
    };
    if let Some(text) = format::capacity_sentence(c) {
        let _ = writeln!(s, "<p>{}</p>", escape(&text));
    }
    if let Some(n) = &c.note {
        let _ = writeln!(s, "<p class=\"muted\">{}</p>", escape(n));
    }
    if let Some(d) = &r.db {
        let _ = writeln!(s, "<p>{}</p>", escape(&format::db_sentence(d)));
    }
    let before = r.comparison.as_ref().map(|x| &x.capacity_before);
    let _ = write!(
        s,
        "<table class=\"keep\">\n<tr><th class=\"n\">rate</th><th class=\"n\">replicas</th>\
         <th class=\"n\">compute / month</th><th class=\"n\">DB reads / month</th>\
         <th class=\"n\">DB writes / month</th><th class=\"n\">DB / month</th>\
         <th class=\"n\">total / month</th>"
    );
    if before.is_some() {
        s.push_str("<th class=\"n\">replicas before</th><th class=\"n\">total before</th>");
    }
    s.push_str("</tr>\n");
    let o = |v: Option<f64>, f: &dyn Fn(f64) -> String| v.map(f).unwrap_or_else(|| "—".into());
    for (i, p) in c.plans.iter().enumerate() {
        let is_target = i == 0 && m.target_rate.is_some();
        let _ = write!(
            s,
            "<tr><td class=\"n\">{}{} req/s</td><td class=\"n\">{}{}</td><td class=\"n\">{}</td>\
             <td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td>\
             <td class=\"n\"><strong>{}</strong></td>",
            if is_target {
                "<strong>target</strong> "
            } else {
                ""
            },
            thousands(p.rate_rps),
            p.replicas,
            if p.over_max {
                " <span class=\"FAIL\">⚠ over max</span>"
            } else {
                ""
            },
            usd(p.compute_usd_month),
            o(p.db_reads_month, &thousands),
            o(p.db_writes_month, &thousands),
            o(p.db_usd_month, &usd),
            usd(p.total_usd_month)
        );
        if let Some(b) = before {
            match b.plans.iter().find(|x| x.rate_rps == p.rate_rps) {
                Some(x) => {
                    let _ = write!(
                        s,
                        "<td class=\"n\">{}</td><td class=\"n\">{}</td>",
                        x.replicas,
                        usd(x.total_usd_month)
                    );
                }
                None => s.push_str("<td class=\"n\">—</td><td class=\"n\">—</td>"),
            }
        }
        s.push_str("</tr>\n");
    }
    s.push_str("</table>\n");
}

fn comparison(s: &mut String, r: &Report) {
    let Some(c) = &r.comparison else {
        return;
    };
    let _ = writeln!(
        s,
        "<h2>Compared with the earlier run</h2>\n<p><code>{}</code> (started {}{}), noise margin {:.0} %.</p>",
        escape(&c.baseline),
        escape(&c.baseline_started_at),
        c.baseline_git_revision
            .as_ref()
            .map(|g| format!(", revision <code>{}</code>", escape(&short(g))))
            .unwrap_or_default(),
        c.noise * 100.0
    );
    s.push_str(
        "<table>\n<tr><th>figure</th><th class=\"n\">before</th><th class=\"n\">now</th>\
         <th class=\"n\">change</th><th class=\"n\">worst allowed</th><th class=\"c\"></th></tr>\n",
    );
    let rows = c.rows_regressions_first();
    for row in rows.iter().take(MAX_ROWS) {
        let _ = writeln!(
            s,
            "<tr{}><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td>\
             <td class=\"n\">{}</td><td class=\"c\">{}</td></tr>",
            if row.regression { " class=\"bad\"" } else { "" },
            escape(&label(&row.figure)),
            escape(&value(&row.unit, row.before)),
            escape(&value(&row.unit, row.after)),
            row.change
                .map(|c| format!("{:+.1} %", c * 100.0))
                .unwrap_or_else(|| "—".into()),
            escape(&value(&row.unit, row.allowed)),
            if row.regression {
                "<span class=\"mark FAIL\">regression</span>"
            } else {
                "<span class=\"mark PASS\">ok</span>"
            }
        );
    }
    s.push_str("</table>\n");
    if rows.len() > MAX_ROWS {
        let _ = writeln!(
            s,
            "<p class=\"muted\">… and {} more in <code>report.json</code>.</p>",
            rows.len() - MAX_ROWS
        );
    }
}

fn deployment(s: &mut String, r: &Report) {
    let Some(d) = &r.deployment else { return };
    for t in super::deployment::tables(d) {
        let _ = write!(s, "<h2>{}</h2>\n<table>\n<tr>", escape(&t.title));
        for h in &t.header {
            let _ = write!(s, "<th>{}</th>", escape(h));
        }
        s.push_str("</tr>\n");
        for row in &t.rows {
            s.push_str("<tr>");
            for c in row {
                let _ = write!(s, "<td>{}</td>", escape(c));
            }
            s.push_str("</tr>\n");
        }
        s.push_str("</table>\n");
        if let Some(n) = &t.note {
            let _ = writeln!(s, "<p>{}</p>", escape(n));
        }
    }
}

fn notes(s: &mut String, r: &Report) {
    if r.notes.is_empty() {
        return;
    }
    s.push_str("<h2>Notes</h2>\n<ul>\n");
    for n in r.notes.iter().take(MAX_ROWS) {
        let _ = writeln!(s, "<li>{}</li>", escape(n));
    }
    s.push_str("</ul>\n");
}

fn environment(s: &mut String, r: &Report) {
    let e = &r.environment;
    s.push_str("<h2>Environment</h2>\n<dl>\n");
    let mut row = |k: &str, v: String| {
        let _ = writeln!(s, "<dt>{k}</dt><dd>{v}</dd>");
    };
    row("host", format!("<code>{}</code>", escape(&e.hostname)));
    row("OS", escape(&e.os));
    row("kernel", escape(&e.kernel));
    row("CPU", escape(&e.cpu));
    row("cores", e.cores.to_string());
    row("memory", format!("{} MiB", thousands(e.memory_mib as f64)));
    row("mcp-loadgen", escape(&e.loadgen_version));
    if let Some(v) = &e.target_version {
        row("target", escape(v));
    }
    if let Some(g) = &e.git_revision {
        row(
            "git revision",
            format!(
                "<code>{}</code>{}",
                escape(g),
                if e.git_dirty == Some(true) {
                    " (dirty)"
                } else {
                    ""
                }
            ),
        );
    }
    row("started", escape(&r.started_at));
    if let Some(x) = r.shard {
        row("shard", format!("{}/{}", x.index, x.count));
    }
    s.push_str("</dl>\n");
    if !r.merged_from.is_empty() {
        let _ = writeln!(
            s,
            "<p>Merged from {} shards:</p>\n<ul>",
            r.merged_from.len()
        );
        for m in r.merged_from.iter().take(MAX_ROWS) {
            let _ = writeln!(s, "<li><code>{}</code></li>", escape(m));
        }
        s.push_str("</ul>\n");
    }
}

#[cfg(test)]
#[path = "html_tests.rs"]
mod tests;
