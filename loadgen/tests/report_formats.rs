//! The report formats, rendered from a recorded `report.json` (tests/fixtures/report.json,
//! recorded from tests/fixtures/fixture.toml by a real run): the JSON against its schema,
//! the JUnit parsed as XML, the Markdown's size bound, shards merged with a known result,
//! a comparison with an earlier run, and the `report` and `merge` subcommands.

use std::path::{Path, PathBuf};
use std::process::Command;

use mcp_loadgen::report::histogram::new as new_histogram;
use mcp_loadgen::report::render::markdown;
use mcp_loadgen::report::{self, Latency, Percentiles, Report, Shard};
use mcp_loadgen::verdict::Kind;
use mcp_loadgen::verdict::merge;
use quick_xml::events::Event;

fn fixture_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/report.json")
}

fn fixture() -> Report {
    Report::read(&fixture_path()).expect("the fixture reads")
}

fn schema() -> jsonschema::Validator {
    let text =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("report.schema.json"))
            .unwrap();
    jsonschema::validator_for(&serde_json::from_str(&text).unwrap()).expect("the schema compiles")
}

fn schema_errors(v: &serde_json::Value) -> Vec<String> {
    schema()
        .iter_errors(v)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect()
}

/// The path of the first place where `a` and `b` differ.
fn first_difference(a: &serde_json::Value, b: &serde_json::Value, at: String) -> Option<String> {
    use serde_json::Value::{Array, Object};
    match (a, b) {
        (Object(x), Object(y)) => {
            let keys: std::collections::BTreeSet<_> = x.keys().chain(y.keys()).collect();
            keys.into_iter().find_map(|k| match (x.get(k), y.get(k)) {
                (Some(p), Some(q)) => first_difference(p, q, format!("{at}/{k}")),
                _ => Some(format!("{at}/{k} only on one side")),
            })
        }
        (Array(x), Array(y)) if x.len() == y.len() => x
            .iter()
            .zip(y)
            .enumerate()
            .find_map(|(i, (p, q))| first_difference(p, q, format!("{at}/{i}"))),
        _ if a == b => None,
        _ => Some(format!("{at}: {a} ≠ {b}")),
    }
}

#[test]
fn the_recorded_report_and_a_fresh_serialisation_match_the_schema() {
    let recorded: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture_path()).unwrap()).unwrap();
    assert_eq!(schema_errors(&recorded), Vec::<String>::new());
    let again: serde_json::Value =
        serde_json::from_str(&serde_json::to_string(&fixture()).unwrap()).unwrap();
    assert_eq!(schema_errors(&again), Vec::<String>::new());
    // the round trip through the model loses nothing
    assert_eq!(first_difference(&again, &recorded, String::new()), None);
    // and the schema is not vacuous: drift in any direction is caught
    let mut extra = recorded.clone();
    extra["surprise"] = 1.into();
    assert!(!schema_errors(&extra).is_empty(), "an unknown field passed");
    let mut missing = recorded.clone();
    missing["load"]
        .as_object_mut()
        .unwrap()
        .remove("throughput_rps");
    assert!(
        !schema_errors(&missing).is_empty(),
        "a missing field passed"
    );
    let mut bad = recorded.clone();
    bad["ops"]["tools/list"]["histogram"] = "not a histogram".into();
    assert!(!schema_errors(&bad).is_empty(), "a bad histogram passed");
    let mut kind = recorded;
    kind["checks"][0]["kind"] = "vibe".into();
    assert!(
        !schema_errors(&kind).is_empty(),
        "an unknown check kind passed"
    );
}

#[test]
fn histograms_round_trip_losslessly() {
    let r = fixture();
    let calls = &r.ops["tools/call echo__echo"];
    assert!(calls.histogram.len() > 1000, "the fixture has a real load");
    let text = report::histogram::encode(&calls.histogram);
    assert!(text.starts_with("HISTFAAA"), "{}", &text[..16]);
    let back = report::histogram::decode(&text).unwrap();
    assert_eq!(back, calls.histogram);
    assert_eq!(Percentiles::of(&back), calls.percentiles);
    assert_eq!(calls.percentiles.count, calls.ok + calls.failed);
}

#[test]
fn markdown_has_the_kpis_the_leaks_and_the_capacity_and_stays_small() {
    let r = fixture();
    let md = markdown::render(&r);
    // the fixture's run breached its error-rate threshold (a 30 % disconnect phase)
    assert_eq!(r.exit_code, 1);
    assert!(
        md.starts_with("## ❌ fixture — THRESHOLD BREACHED (exit 1): error_rate"),
        "{md}"
    );
    for kpi in [
        "p99 latency",
        "mean latency",
        "error rate",
        "config-cache hit rate",
        "DB pool use (peak)",
        "config queries per request",
        "lastUsedAt writes per request",
    ] {
        let row = md
            .lines()
            .find(|l| l.starts_with(&format!("| {kpi} |")))
            .unwrap_or_else(|| panic!("no KPI row {kpi}:\n{md}"));
        assert!(row.ends_with("✅ |") || row.ends_with("❌ |"), "{row}");
    }
    assert!(
        md.contains("| error rate | 6.36 % | ≤ 5.00 % | ❌ |"),
        "{md}"
    );
    for c in r.leak_checks() {
        assert!(
            md.contains(&format!("| {} |", c.name)),
            "no leak row {}",
            c.name
        );
    }
    assert!(md.contains("### Capacity planning"));
    assert!(md.contains("| **target** 2,500 req/s |"), "{md}");
    for rate in [
        "| 10 req/s",
        "| 100 req/s",
        "| 1,000 req/s",
        "| 10,000 req/s",
    ] {
        assert!(md.contains(rate), "no {rate} row");
    }
    assert!(md.contains("Phases: at 4.0 s: echo drops 30 %; at 8.0 s: echo healed."));
    assert!(md.contains("jsonrpc error -32603"), "the failures by kind");
    assert!(md.len() < markdown::LIMIT_BYTES);
}

#[test]
fn markdown_stays_under_a_mebibyte_however_large_the_run() {
    let mut r = fixture();
    let template = r.ops["tools/list"].clone();
    for i in 0..20_000 {
        let mut l = template.clone();
        l.failures
            .insert(format!("tag {i} {}", "x".repeat(2000)), 1);
        r.ops.insert(format!("tools/call tool-{i}"), l);
        r.notes.push(format!("note {i}: {}", "y".repeat(5000)));
        let mut c = r.checks[0].clone();
        c.name = format!("check-{i}");
        c.passed = false;
        r.checks.push(c);
    }
    let md = markdown::render(&r);
    assert!(md.len() < markdown::LIMIT_BYTES, "{} bytes", md.len());
    assert!(
        md.contains("more in `report.json`"),
        "says what it left out"
    );
}

#[test]
fn junit_has_one_testcase_per_check_with_failures_that_say_by_how_much() {
    let r = fixture();
    let xml = report::render::junit::render(&r).unwrap();
    let mut reader = quick_xml::Reader::from_str(&xml);
    let (mut cases, mut failures, mut suites) = (Vec::new(), Vec::new(), 0);
    let mut current = String::new();
    loop {
        match reader.read_event().expect("junit.xml is well-formed XML") {
            Event::Start(e) | Event::Empty(e) => {
                let attr = |name: &[u8]| {
                    e.attributes()
                        .flatten()
                        .find(|a| a.key.as_ref() == name)
                        .map(|a| {
                            quick_xml::escape::unescape(&String::from_utf8_lossy(&a.value))
                                .unwrap()
                                .to_string()
                        })
                };
                match e.name().as_ref() {
                    b"testsuite" => suites += 1,
                    b"testcase" => {
                        current = attr(b"name").unwrap();
                        cases.push(current.clone());
                    }
                    b"failure" => failures.push((current.clone(), attr(b"message").unwrap())),
                    _ => {}
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    assert_eq!(suites, 2, "thresholds and leaks");
    // thresholds first, then leaks, each in the report's order
    let names: Vec<String> = [Kind::Threshold, Kind::Leak]
        .iter()
        .flat_map(|k| r.checks.iter().filter(move |c| c.kind == *k))
        .map(|c| c.name.clone())
        .collect();
    assert_eq!(cases, names);
    let failed: Vec<&str> = r
        .checks
        .iter()
        .filter(|c| !c.passed)
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(
        failures.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(),
        failed
    );
    let (_, message) = &failures[0];
    assert!(
        message == "error rate: measured 6.36 %, target ≤ 5.00 %, off by 1.36 %",
        "{message}"
    );
}

/// A report with one mix label whose histogram holds `values`, and `seconds` per-second
/// entries of 10 ok each.
fn shard(index: u32, values: std::ops::RangeInclusive<u64>, seconds: usize, leak: bool) -> Report {
    let mut r = fixture();
    r.shard = Some(Shard { index, count: 2 });
    let mut h = new_histogram();
    for v in values.clone() {
        h.record(v).unwrap();
    }
    let mut l: Latency = r.ops["tools/list"].clone();
    l.ok = h.len();
    l.failed = 0;
    l.failures.clear();
    l.histogram = h.clone();
    l.percentiles = Percentiles::of(&h);
    r.ops = [("tools/list".to_string(), l)].into();
    r.methods = report::by_method(&r.ops);
    r.load.requests = h.len();
    r.load.ok = h.len();
    r.load.failed = 0;
    r.load.users = 10;
    r.load.throughput_rps = 100.0;
    r.seconds.truncate(seconds);
    for s in &mut r.seconds {
        s.ok = 10;
        s.failed = 0;
        s.histogram = h.clone();
    }
    let fds = r
        .checks
        .iter_mut()
        .find(|c| c.name == "fds.socket")
        .unwrap();
    fds.passed = !leak;
    fds.value = Some(fds.baseline.unwrap() + if leak { 3.0 } else { 0.0 });
    r
}

#[test]
fn two_shards_merge_exactly() {
    let a = shard(0, 1..=1000, 5, false);
    let b = shard(1, 1001..=2000, 8, true);
    let merged = merge::merge(vec![("a.json".into(), a), ("b.json".into(), b)]).unwrap();
    // histograms merged, not averaged: the union of 1..=2000
    let mut union = new_histogram();
    for v in 1..=2000 {
        union.record(v).unwrap();
    }
    let l = &merged.ops["tools/list"];
    assert_eq!(l.histogram, union);
    assert_eq!(l.percentiles, Percentiles::of(&union));
    assert_eq!(l.ok, 2000);
    assert_eq!(merged.methods["tools/list"].percentiles.count, 2000);
    // counts summed, series aligned on the second
    assert_eq!(merged.load.requests, 2000);
    assert_eq!(merged.load.users, 20);
    assert_eq!(merged.load.throughput_rps, 200.0);
    assert_eq!(merged.seconds.len(), 8);
    assert_eq!(merged.seconds[0].ok, 20);
    assert_eq!(merged.seconds[0].histogram.len(), 2000);
    assert_eq!(merged.seconds[7].ok, 10);
    // thresholds decided again on the merged figures; a shard's leak stays a leak
    let p99 = merged.check("latency.p99").unwrap();
    assert_eq!(
        p99.value,
        Some(union.value_at_quantile(0.99) as f64 / 1000.0)
    );
    assert_eq!(merged.check("error_rate").unwrap().value, Some(0.0));
    assert!(merged.check("error_rate").unwrap().passed);
    assert!(!merged.check("fds.socket").unwrap().passed);
    assert_eq!(merged.exit_code, 2);
    assert_eq!(merged.shard, None);
    assert_eq!(merged.merged_from.len(), 2);
    assert!(merged.merged_from[1].starts_with("b.json (shard 1/2 on "));
    // the merged report is a report like any other
    assert_eq!(
        schema_errors(&serde_json::to_value(&merged).unwrap()),
        Vec::<String>::new()
    );
}

#[test]
fn merging_refuses_a_shard_twice_and_other_scenarios() {
    let a = shard(0, 1..=10, 2, false);
    let twice = merge::merge(vec![
        ("a.json".into(), a.clone()),
        ("b.json".into(), a.clone()),
    ]);
    assert!(twice.unwrap_err().to_string().contains("both shard 0/2"));
    let mut other = shard(1, 1..=10, 2, false);
    other.name = "other".into();
    let e = merge::merge(vec![("a.json".into(), a.clone()), ("o.json".into(), other)]);
    assert!(
        e.unwrap_err()
            .to_string()
            .contains("only shards of one scenario merge")
    );
    let alone = merge::merge(vec![("a.json".into(), a)]).unwrap();
    assert!(
        alone.notes.iter().any(|n| n.contains("not complete")),
        "{:?}",
        alone.notes
    );
}

#[test]
fn a_comparison_flags_regressions_beyond_the_noise_margin_only() {
    let before = fixture();
    let mut same = fixture();
    same.compare_with(&before, "before.json", 0.25);
    let c = same.comparison.as_ref().unwrap();
    assert!(c.rows.len() > 10, "{:?}", c.rows);
    assert!(c.rows.iter().all(|r| !r.regression));
    assert_eq!(
        same.exit_code, before.exit_code,
        "no regression against itself"
    );

    // a slower, leakier run
    let mut worse = fixture();
    worse.load.throughput_rps = before.load.throughput_rps * 0.5;
    let p99 = worse
        .checks
        .iter_mut()
        .find(|c| c.name == "latency.p99")
        .unwrap();
    p99.value = p99.value.map(|v| v * 1.2); // within 25 %
    let rss = worse.checks.iter_mut().find(|c| c.name == "rss").unwrap();
    rss.value = rss.value.map(|v| v + 12.0); // within the leak tolerance, but 12 MiB more
    worse.compare_with(&before, "before.json", 0.25);
    let regressed: Vec<&str> = worse
        .checks
        .iter()
        .filter(|c| c.kind == Kind::Regression && !c.passed)
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(
        regressed,
        ["regression.throughput", "regression.rss.growth"]
    );
    assert!(worse.exit_code >= 1);
    let md = markdown::render(&worse);
    assert!(md.contains("### Compared with the earlier run"));
    assert!(md.contains("❌ regression"));
    // a leak still wins over a regression
    let mut leaky = fixture();
    leaky
        .checks
        .iter_mut()
        .find(|c| c.name == "fds.socket")
        .unwrap()
        .passed = false;
    leaky.compare_with(&before, "before.json", 0.25);
    assert_eq!(leaky.exit_code, 2);
}

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_mcp-loadgen"))
}

#[test]
fn the_report_subcommand_renders_every_format_again() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(fixture_path(), dir.path().join("report.json")).unwrap();
    let out = bin().arg("report").arg(dir.path()).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r = fixture();
    let read = |f: &str| std::fs::read_to_string(dir.path().join(f)).unwrap();
    assert_eq!(read("report.md"), markdown::render(&r));
    assert_eq!(
        read("junit.xml"),
        report::render::junit::render(&r).unwrap()
    );
    assert_eq!(read("report.html"), report::render::html::render(&r));
    // report.json itself is left as it was
    assert_eq!(
        read("report.json"),
        std::fs::read_to_string(fixture_path()).unwrap()
    );

    // bad input: exit 3, naming the file
    std::fs::write(dir.path().join("report.json"), "{\"schema_version\": 99}").unwrap();
    let out = bin().arg("report").arg(dir.path()).output().unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("schema_version 99"));
    let out = bin()
        .arg("report")
        .arg("/nonexistent/dir")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
}

#[test]
fn the_merge_subcommand_writes_the_merged_report_and_exits_with_its_verdict() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, r: &Report| {
        let p = dir.path().join(name);
        std::fs::write(&p, serde_json::to_vec(r).unwrap()).unwrap();
        p
    };
    let a = write("a.json", &shard(0, 1..=1000, 5, false));
    let b = write("b.json", &shard(1, 1001..=2000, 8, false));
    let out_dir = dir.path().join("merged");
    let out = bin()
        .arg("merge")
        .arg(&a)
        .arg(&b)
        .arg("--out")
        .arg(&out_dir)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    // the shards' error-rate breach is gone once merged (0 failed of 2,000)
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("2000 requests from 2 reports"), "{stdout}");
    for f in ["report.json", "report.md", "report.html", "junit.xml"] {
        assert!(out_dir.join(f).exists(), "no {f}");
    }
    let merged = Report::read(&out_dir.join("report.json")).unwrap();
    assert_eq!(merged.ops["tools/list"].percentiles.count, 2000);

    // with a leak in one shard: exit 2
    let b = write("b.json", &shard(1, 1001..=2000, 8, true));
    let out = bin()
        .arg("merge")
        .arg(&a)
        .arg(&b)
        .arg("--out")
        .arg(&out_dir)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));

    // bad input: exit 3
    let out = bin()
        .arg("merge")
        .arg(&a)
        .arg(dir.path().join("missing.json"))
        .arg("--out")
        .arg(&out_dir)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing.json"));
    let out = bin()
        .arg("merge")
        .arg("--out")
        .arg(&out_dir)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(3),
        "a usage error is a harness error, not a leak"
    );
}
