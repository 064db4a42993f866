//! Contract: `[leaks] cycles = N` judges memory by repetition, both ways, end to end through
//! the `mcp-loadgen` binary against a real server.
//!
//! The target is `mock-mcp serve` itself, attached by URL and PID: a stateful server that
//! keeps every session until it is DELETEd. Users who abandon their sessions make it hold
//! more memory in every round (a session leak, as a proxy that never reaps would); users who
//! DELETE them leave a heap that warms in the first round and then holds.

mod common;

use common::*;

fn scenario(addr: &str, pid: u32, sessions: &str) -> String {
    format!(
        r#"
name = "cycles"
[target]
url = "http://{addr}/mcp"
pid = {pid}
[load]
users = 16
warmup = "1s"
duration = "8s"
sessions = "{sessions}"
requests_per_session = 1
mix = {{ "tools/call echo" = 1 }}
[leaks]
cycles = 4
settle = "4s"
settle_min = "1s"
rss_mib = 8
rss_noise_mib = 1
"#
    )
}

fn run_against_mock(sessions: &str) -> Run {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let target = MockServe::start();
    run_scenario(&scenario(&target.addr, target.child.id(), sessions))
}

fn rounds_of(run: &Run) -> Vec<serde_json::Value> {
    run.report()["rounds"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[test]
fn sessions_kept_round_after_round_fail_on_memory_by_repetition() {
    let run = run_against_mock("abandon");
    let rss = run.check("rss");
    assert_eq!(
        run.code, 2,
        "{rss}\nstdout:\n{}\nstderr:\n{}",
        run.stdout, run.stderr
    );
    assert_eq!(rss["passed"], false, "{rss}");
    let rounds = rounds_of(&run);
    assert_eq!(rounds.len(), 4, "{rounds:?}");
    for r in &rounds {
        assert!(r["sessions_opened"].as_u64().unwrap() > 50, "{r}");
        assert!(
            r["load_end_t_ms"].as_u64() > r["load_start_t_ms"].as_u64(),
            "{r}"
        );
    }
    let notes = run.report()["notes"].to_string();
    eprintln!("notes: {notes}");
    assert!(notes.contains("a round after the first"), "{notes}");
    assert!(notes.contains("KiB per session"), "{notes}");
}

#[test]
fn sessions_deleted_every_round_pass_on_memory() {
    let run = run_against_mock("close");
    let rss = run.check("rss");
    assert_eq!(
        rss["passed"],
        true,
        "{rss}\nnotes: {}",
        run.report()["notes"]
    );
    assert!(rss["skipped"].is_null(), "{rss}");
    assert_eq!(rounds_of(&run).len(), 4);
    eprintln!("notes: {}", run.report()["notes"]);
    // a round's settle is not load: the throughput counts the rounds only
    let load = &run.report()["load"];
    let rps = load["throughput_rps"].as_f64().unwrap();
    let over_wall = load["requests"].as_f64().unwrap() / load["wall_seconds"].as_f64().unwrap();
    assert!(rps > over_wall, "{load}");
    // each round runs to its own end: at most one request per user is in flight when a
    // round stops (a round that began past the first one's end gave up every request)
    let given_up = load["client"]["abandoned_at_stop"].as_u64().unwrap();
    assert!(
        given_up <= 16 * 4,
        "{given_up} requests given up at the stops: {load}"
    );
}
