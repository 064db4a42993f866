use super::capacity::{Capacity, SECONDS_PER_MONTH};
use super::render::format;
use super::*;
use crate::report::capacity::CapacityModel;

fn methods_with_mean(mean_us: u64, count: u64) -> BTreeMap<String, Latency> {
    let mut l = Latency::empty(true);
    for _ in 0..count {
        l.histogram.record(mean_us).unwrap();
    }
    l.ok = count;
    l.percentiles = Percentiles::of(&l.histogram);
    [("tools/call".to_string(), l)].into()
}

fn load(throughput: f64, cpu_percent: Option<f64>, users: u64) -> LoadFigures {
    LoadFigures {
        model: "closed".into(),
        users,
        throughput_rps: throughput,
        target_cpu_percent: cpu_percent,
        ..LoadFigures::default()
    }
}

#[test]
fn capacity_is_the_lower_bound_and_costs_follow_the_price_model() {
    // 1,000 req/s on half a core: the CPU allows 2,000 per vCPU; 10 ms mean latency at
    // concurrency 80 allows 8,000: the CPU bound wins
    let db = DbFigures {
        reads_per_request: 0.5,
        writes_per_request: 0.01,
        ..DbFigures::default()
    };
    let c = Capacity::plan(
        &CapacityModel {
            target_rate: Some(3_000.0),
            ..CapacityModel::default()
        },
        &load(1_000.0, Some(50.0), 80),
        &methods_with_mean(10_000, 100),
        Some(&db),
    );
    assert_eq!(c.bound.as_deref(), Some("cpu"));
    assert!((c.cpu_bound_rps.unwrap() - 2_000.0).abs() < 1e-9);
    // the histogram keeps 3 significant figures
    assert!(
        (c.latency_bound_rps.unwrap() - 8_000.0).abs() < 8.0,
        "{c:?}"
    );
    assert_eq!(c.note, None, "measured at the planned concurrency");
    let rates: Vec<f64> = c.plans.iter().map(|p| p.rate_rps).collect();
    assert_eq!(rates, [3_000.0, 10.0, 100.0, 1_000.0, 10_000.0]);
    // 3,000 req/s at 60 % of 2,000 per instance: ⌈2.5⌉ = 3 instances
    let p = &c.plans[0];
    assert_eq!(p.replicas, 3);
    assert!((p.compute_usd_month - 3.0 * SECONDS_PER_MONTH * 0.000024).abs() < 1e-6);
    let requests = 3_000.0 * SECONDS_PER_MONTH;
    assert_eq!(p.db_reads_month, Some(0.5 * requests));
    assert_eq!(p.db_writes_month, Some(0.01 * requests));
    let db_usd = 0.5 * requests * 0.0001 + 0.01 * requests * 0.001;
    assert!((p.db_usd_month.unwrap() - db_usd).abs() < 1e-3);
    assert!((p.total_usd_month - p.compute_usd_month - db_usd).abs() < 1e-3);
    // at least min_instances, however small the rate
    assert_eq!(c.plans[1].replicas, 1);
    // 10,000 req/s: ⌈8.33⌉ = 9
    assert_eq!(c.plans[4].replicas, 9);
    assert!(!c.plans[4].over_max);
}

#[test]
fn capacity_says_when_it_plans_from_less() {
    // no PID: latency alone; measured at 10 users: said so; more than max_instances: flagged
    let c = Capacity::plan(
        &CapacityModel {
            max_instances: 2,
            ..CapacityModel::default()
        },
        &load(500.0, None, 10),
        &methods_with_mean(20_000, 50),
        None,
    );
    assert_eq!(c.bound.as_deref(), Some("latency"));
    let note = c.note.as_deref().unwrap();
    assert!(note.contains("latency alone"), "{note}");
    assert!(
        note.contains("measured at concurrency 10, planned at 80"),
        "{note}"
    );
    let big = c.plans.last().unwrap();
    assert!(big.over_max && big.replicas > 2, "{big:?}");
    assert_eq!(big.db_usd_month, None, "no DB figures: no DB cost");
    // nothing completed: nothing to plan
    let none = Capacity::plan(
        &CapacityModel::default(),
        &load(0.0, None, 10),
        &BTreeMap::new(),
        None,
    );
    assert!(none.plans.is_empty());
    assert!(none.note.unwrap().contains("nothing to plan from"));
}

#[test]
fn methods_merge_tools_but_keep_session_steps_whole() {
    let one = methods_with_mean(1_000, 3).remove("tools/call").unwrap();
    let ops: BTreeMap<String, Latency> = [
        ("tools/call a__x".to_string(), one.clone()),
        ("tools/call b__y".to_string(), one.clone()),
        ("DELETE session".to_string(), one.clone()),
        ("tools/list".to_string(), one),
    ]
    .into();
    let m = by_method(&ops);
    assert_eq!(
        m.keys().map(String::as_str).collect::<Vec<_>>(),
        ["DELETE session", "tools/call", "tools/list"]
    );
    assert_eq!(m["tools/call"].percentiles.count, 6);
    assert_eq!(m["tools/call"].ok, 6);
}

#[test]
fn numbers_read_well() {
    assert_eq!(thousands(1234567.4), "1,234,567");
    assert_eq!(thousands(-1000.0), "-1,000");
    assert_eq!(thousands(999.0), "999");
    assert_eq!(ms(12_345.0), "12.3");
    assert_eq!(ms(1_234.0), "1.23");
    assert_eq!(ms(123_456.0), "123");
    assert_eq!(format::value("ratio", 0.0636), "6.36 %");
    assert_eq!(format::value("ratio", 0.0), "0 %");
    assert_eq!(format::value("ratio", 0.95), "95.0 %");
    assert_eq!(format::value("ratio", 0.000_4), "0.040 %");
}
