use crate::report::render::charts::MAX_POINTS;
use std::collections::BTreeMap;

use super::*;
use crate::observe::sampler::{Sample, TargetMetrics};
use crate::report::capacity::Capacity;
use crate::report::capacity::CapacityModel;
use crate::report::histogram::new as new_histogram;
use crate::report::{
    Environment, Latency, LoadFigures, Percentiles, PhaseMark, ProbeSeries, SCHEMA_VERSION,
    SecondFigures,
};

fn latency(values_us: &[u64], failed: u64, in_mix: bool) -> Latency {
    let mut h = new_histogram();
    for v in values_us {
        h.record(*v).unwrap();
    }
    let mut failures = BTreeMap::new();
    if failed > 0 {
        failures.insert("http 503".to_string(), failed);
    }
    Latency {
        ok: values_us.len() as u64,
        failed,
        expected_errors: 0,
        failures,
        first_failure: None,
        in_mix,
        percentiles: Percentiles::of(&h),
        histogram: h,
    }
}

fn second(t_s: u64, ok: u64, failed: u64, base_us: u64) -> SecondFigures {
    let mut h = new_histogram();
    for i in 0..ok {
        h.record(base_us + (i % 50) * base_us / 10).unwrap();
    }
    SecondFigures {
        t_s,
        ok,
        failed,
        percentiles: Percentiles::of(&h),
        histogram: h,
    }
}

fn leak(name: &str, unit: &str, baseline: f64, peak: f64, last: f64, limit: f64) -> Check {
    Check {
        name: name.into(),
        kind: Kind::Leak,
        unit: unit.into(),
        baseline: Some(baseline),
        peak: Some(peak),
        value: Some(last),
        limit,
        passed: last - baseline <= limit,
        skipped: None,
    }
}

fn threshold(name: &str, unit: &'static str, v: f64, limit: f64) -> Check {
    Check::threshold(name, unit, Some(v), limit, v <= limit, None)
}

/// An empty report: no seconds, no samples, no checks, no ops.
fn empty() -> Report {
    let load = LoadFigures::default();
    Report {
        schema_version: SCHEMA_VERSION,
        name: "empty".into(),
        description: String::new(),
        scenario: serde_json::Value::Null,
        environment: Environment::default(),
        shard: None,
        merged_from: Vec::new(),
        started_at: "2025-01-01T00:00:00Z".into(),
        capacity: Capacity::plan(&CapacityModel::default(), &load, &BTreeMap::new(), None),
        load,
        ops: BTreeMap::new(),
        methods: BTreeMap::new(),
        seconds: Vec::new(),
        phases: Vec::new(),
        probe: ProbeSeries::default(),
        db: None,
        checks: Vec::new(),
        comparison: None,
        notes: Vec::new(),
        deployment: None,
        rounds: Vec::new(),
        grown: Vec::new(),
        outside: Default::default(),
        exit_code: 0,
    }
}

/// A 30-second run with a fault phase, SIGTERM, a socket leak and a skipped check.
fn sample() -> Report {
    let mut r = empty();
    r.name = "faults <&> sigterm".into();
    r.description = "sockets under faults <script>alert('x')</script>".into();
    r.load = LoadFigures {
        model: "closed".into(),
        users: 20,
        protocol: "2025-11-25".into(),
        wall_seconds: 30.0,
        requests: 30_000,
        ok: 29_900,
        failed: 100,
        throughput_rps: 1000.0,
        sessions_opened: 20,
        target_cpu_percent: Some(80.0),
        ..LoadFigures::default()
    };
    r.seconds = (0..30)
        .map(|t| {
            let fault = (10..20).contains(&t);
            second(
                t,
                if fault { 900 } else { 1000 },
                if fault { 10 } else { 0 },
                if fault { 8000 } else { 2000 },
            )
        })
        .collect();
    r.phases = vec![
        PhaseMark {
            at_ms: 10_000,
            name: "upstream 503s".into(),
            action: "faults".into(),
        },
        PhaseMark {
            at_ms: 20_000,
            name: "healed".into(),
            action: "faults".into(),
        },
        PhaseMark {
            at_ms: 28_000,
            name: "sigterm".into(),
            action: "sigterm".into(),
        },
    ];
    // 250 ms samples: 5 s warm-up, 30 s load, 5 s settle
    let samples = (0..160u64)
        .map(|i| {
            let t_s = i as f64 / 4.0 - 5.0;
            let during = (0.0..30.0).contains(&t_s);
            let mut s = Sample {
                t_ms: i * 250,
                probed: true,
                rss_bytes: (20.0 * 1048576.0 + if during { 4e6 } else { 0.0 }) as u64,
                metrics: Some(TargetMetrics {
                    tokio_alive_tasks: Some(if during { 60.0 } else { 12.0 }),
                    ..TargetMetrics::default()
                }),
                ..Sample::default()
            };
            s.fds.socket = if during {
                40
            } else if t_s < 0.0 {
                12
            } else {
                15
            };
            s.fds.pipe = 4;
            s
        })
        .collect();
    r.probe = ProbeSeries {
        interval_ms: 250,
        pid: Some(42),
        baseline_t_ms: 4_750,
        load_start_t_ms: 5_000,
        load_end_t_ms: 35_000,
        samples,
    };
    let l = latency(&[2000, 2500, 3000, 9000], 100, true);
    r.ops.insert("tools/call echo__echo".into(), l.clone());
    r.ops
        .insert("initialize".into(), latency(&[1500, 1600], 0, false));
    r.methods = crate::report::by_method(&r.ops);
    r.checks = vec![
        threshold("latency.p99", "ms", 12.0, 2000.0),
        threshold("error_rate", "ratio", 0.0033, 0.001),
        Check::threshold(
            "config_cache.hit_rate",
            "ratio",
            None,
            0.95,
            false,
            Some("the target has no config-cache counters on /metrics".into()),
        ),
        leak("fds.socket", "fds", 12.0, 40.0, 15.0, 0.0),
        leak("fds.pipe", "fds", 4.0, 4.0, 4.0, 0.0),
        leak("tokio.alive_tasks", "tasks", 12.0, 60.0, 12.0, 5.0),
        leak("rss", "MiB", 20.0, 23.8, 20.0, 16.0),
        Check {
            name: "sessions".into(),
            kind: Kind::Leak,
            unit: "sessions".into(),
            baseline: None,
            peak: None,
            value: None,
            limit: 0.0,
            passed: true,
            skipped: Some("the target has no /metrics with this figure".into()),
        },
    ];
    r.capacity = Capacity::plan(&CapacityModel::default(), &r.load, &r.methods, None);
    r.notes = vec!["a new socket <kind> appeared".into()];
    r.environment = Environment {
        hostname: "box".into(),
        os: "Debian".into(),
        kernel: "6.1".into(),
        cpu: "Some CPU".into(),
        cores: 8,
        memory_mib: 16_000,
        loadgen_version: "0.1.0".into(),
        git_revision: Some("0123456789abcdef".into()),
        git_dirty: Some(true),
        target_version: Some("mcp-proxy 0.1.0".into()),
    };
    r.decide();
    r
}

/// Writes the page to `$HTML_REPORT_DIR/NAME.html` when set (to look at it in a browser).
fn dump(name: &str, html: &str) {
    if let Ok(dir) = std::env::var("HTML_REPORT_DIR") {
        std::fs::write(
            std::path::Path::new(&dir).join(format!("{name}.html")),
            html,
        )
        .unwrap();
    }
}

/// Charts a report should have: latency, throughput, one per leak check with data.
fn svgs(html: &str) -> usize {
    html.matches("<svg").count()
}

/// No reference to anything outside the file.
fn assert_self_contained(html: &str) {
    let lower = html.to_lowercase();
    for bad in [
        "<script", "<link", "<img", "<iframe", "<object", "@import", "url(",
    ] {
        assert!(!lower.contains(bad), "{bad} in the page");
    }
    for attr in ["src=", "href=", "xlink:href="] {
        for (i, _) in lower.match_indices(attr) {
            let v = lower[i + attr.len()..].trim_start_matches(['"', '\'']);
            assert!(
                !v.starts_with("http:") && !v.starts_with("https:") && !v.starts_with("//"),
                "external {attr} at {i}"
            );
        }
    }
}

#[test]
fn starts_with_a_doctype_and_is_self_contained() {
    let html = render(&sample());
    assert!(html.to_lowercase().starts_with("<!doctype html>"));
    assert!(html.trim_end().ends_with("</html>"));
    assert_self_contained(&html);
    assert!(!html.contains("http://") && !html.contains("https://"));
    assert!(html.contains("<style>") && html.contains("@media print"));
}

#[test]
fn the_verdict_comes_first_with_what_failed() {
    let r = sample();
    assert_eq!(r.exit_code, 2);
    let html = render(&r);
    let banner = html.find("class=\"banner fail\"").expect("a FAIL banner");
    let verdict = html.find(">FAIL<small>").expect("the verdict word");
    assert!(banner < verdict);
    // before any table or chart
    assert!(verdict < html.find("<table").unwrap());
    assert!(verdict < html.find("<svg").unwrap());
    assert!(html.contains(&escape(&format::headline(&r))));
    assert!(html.contains(&escape(&format::load_line(&r))));
    let end = html.find("</section>").unwrap();
    for c in r.checks.iter().filter(|c| !c.passed) {
        let at = html
            .find(&escape(&failure(c)))
            .expect("every failure listed");
        assert!(at < end, "{} in the banner", c.name);
    }
    let pass = render(&empty());
    assert!(pass.contains("class=\"banner pass\"") && pass.contains(">PASS<small>"));
}

#[test]
fn every_check_name_is_there() {
    let r = sample();
    let html = render(&r);
    for c in &r.checks {
        assert!(html.contains(&escape(&c.name)), "{}", c.name);
    }
    assert!(html.contains("SKIP"));
    assert!(html.contains("the target has no /metrics with this figure"));
}

#[test]
fn one_chart_per_leak_checked_resource_with_data() {
    let r = sample();
    let html = render(&r);
    dump("sample", &html);
    let leaks = r.leak_checks().filter(|c| c.skipped.is_none()).count();
    assert_eq!(leaks, 4);
    assert_eq!(svgs(&html), 2 + leaks);
    assert!(!html.contains("NaN") && !html.contains(">inf") && !html.contains("-inf"));
    // phase names label the shading; SIGTERM is a line
    assert!(html.contains("upstream 503s") && html.contains("SIGTERM"));
}

#[test]
fn text_from_the_report_is_escaped() {
    let html = render(&sample());
    assert!(html.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;"));
    assert!(!html.contains("<script>"));
    assert!(html.contains("faults &lt;&amp;&gt; sigterm"));
    assert!(html.contains("a new socket &lt;kind&gt; appeared"));
    assert_eq!(
        escape(r#"<a href="x">&'"#),
        "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
    );
}

#[test]
fn an_empty_report_renders_without_charts() {
    let html = render(&empty());
    assert!(html.to_lowercase().starts_with("<!doctype html>"));
    assert_eq!(svgs(&html), 0);
    assert!(html.contains("no data"));
    assert!(html.contains("no threshold checks") && html.contains("no leak checks"));
    assert!(html.contains("no request completed: nothing to plan from"));
    assert_self_contained(&html);
}

#[test]
fn degenerate_series_still_chart() {
    let mut r = empty();
    r.environment.git_revision = Some("ééééééééééééé".into());
    r.seconds = vec![second(0, 5, 0, 1000)];
    r.load.wall_seconds = 0.0;
    r.probe = ProbeSeries {
        interval_ms: 250,
        pid: Some(1),
        baseline_t_ms: 0,
        load_start_t_ms: 0,
        load_end_t_ms: 0,
        samples: vec![Sample {
            t_ms: 0,
            probed: true,
            ..Sample::default()
        }],
    };
    r.checks = vec![
        leak("fds.socket", "fds", 0.0, 0.0, 0.0, 0.0),
        // all equal, and a resource with no reading in any sample
        leak("tokio.alive_tasks", "tasks", 3.0, 3.0, 3.0, 0.0),
        leak("not.a.resource", "things", 1.0, 1.0, 1.0, 0.0),
    ];
    let html = render(&r);
    assert_eq!(svgs(&html), 3);
    assert_eq!(html.matches("class=\"nodata\"").count(), 2);
    assert!(!html.contains("NaN"));
    assert!(html.contains("<code>éééééééééééé</code>"));
}

#[test]
fn a_gone_target_and_idle_seconds_do_not_break_the_charts() {
    let mut r = sample();
    for s in r.probe.samples.iter_mut().skip(150) {
        s.gone = true;
    }
    r.seconds.push(SecondFigures {
        t_s: 30,
        ok: 0,
        failed: 0,
        percentiles: Percentiles::default(),
        histogram: new_histogram(),
    });
    let html = render(&r);
    assert_eq!(svgs(&html), 6);
}

#[test]
fn a_ten_minute_run_stays_small() {
    let mut r = sample();
    r.load.wall_seconds = 600.0;
    r.seconds = (0..600)
        .map(|t| second(t, 100 + t % 7, t % 3, 1500))
        .collect();
    let base = r.probe.samples[0];
    r.probe.samples = (0..2600u64)
        .map(|i| {
            let mut s = base;
            s.t_ms = i * 250;
            s.fds.socket = 10 + (i % 13) as u32;
            s
        })
        .collect();
    r.probe.load_end_t_ms = 605_000;
    let html = render(&r);
    dump("ten_minutes", &html);
    assert!(html.len() < 2_000_000, "{} bytes", html.len());
    assert_eq!(svgs(&html), 6);
    // no series drawn with more than MAX_POINTS points
    for path in html.split("<polyline").skip(1) {
        let points = path
            .split("points=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap();
        assert!(points.split(' ').count() <= MAX_POINTS + 1);
    }
}

#[test]
fn a_comparison_adds_before_columns() {
    let mut r = sample();
    let before = sample();
    r.compare_with(&before, "prev/<report>.json", 0.1);
    let html = render(&r);
    assert!(html.contains("<th class=\"n\">before</th>"));
    assert!(html.contains("replicas before"));
    assert!(html.contains("Compared with the earlier run"));
    assert!(html.contains("prev/&lt;report&gt;.json"));
}

#[test]
fn the_recorded_fixture_renders() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/report.json");
    let r = Report::read(&path).unwrap();
    let html = render(&r);
    assert!(html.to_lowercase().starts_with("<!doctype html>"));
    assert_self_contained(&html);
    let charted = r.leak_checks().filter(|c| c.skipped.is_none()).count();
    // a chart per leak check, unless its series had no data (then a note)
    assert_eq!(
        svgs(&html) + html.matches("class=\"nodata\"").count(),
        2 + charted
    );
    for c in &r.checks {
        assert!(html.contains(&escape(&c.name)), "{}", c.name);
    }
    assert!(html.contains(if r.exit_code == 0 { ">PASS<" } else { ">FAIL<" }));
    assert!(html.len() < 2_000_000);
    dump("fixture", &html);
}

#[test]
fn processes_that_grew_are_a_table_under_the_leaks_in_html_and_markdown() {
    let mut r = empty();
    assert!(!render(&r).contains("Processes that grew"));
    r.grown = vec![crate::report::tree::GrownProcess {
        pid: 4242,
        ppid: 1,
        command: "sleep (sleep <60>)".into(),
        grew: vec!["new process".into(), "orphan".into()],
    }];
    let html = render(&r);
    let at = html.find("Processes that grew").expect("the table");
    assert!(at > html.find("Leaks (after the settle window)").unwrap());
    assert!(html[at..].contains("<td class=\"n\">4242</td>"), "{html}");
    assert!(html.contains("sleep (sleep &lt;60&gt;)") && html.contains("new process, orphan"));
    let md = super::super::markdown::render(&r);
    assert!(
        md.contains("| 4242 | 1 | sleep (sleep <60>) | new process, orphan |"),
        "{md}"
    );
}
