//! Contract (seed incident: stdio upstreams that crash): a `shared` stdio upstream whose child
//! exits mid-session (`mock-mcp stdio --fault crash-after:2`: it answers `initialize` and one
//! call, then exits with status 3 on the next request) fails only the call in progress; the
//! next call starts a new child. After 50 crashes every dead child has been reaped (no zombie
//! lingers: each is gone within a moment of its crash), at most one child is ever alive, and
//! fds by kind, TCP sockets, tokio tasks and children are back at their baseline — while
//! running and again, against the counts from before the proxy started, after shutdown.
//!
//! Alone in its file: it counts child processes of the test process.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::*;
use mcp_loadgen::observe::probe;
use rmcp::model::ErrorCode;
use serde_json::json;

const CRASHES: usize = 50;
/// A dead child must be reaped within this long of its crash being reported.
const REAP: Duration = Duration::from_secs(2);
const SETTLE: Duration = Duration::from_secs(10);

fn seed() -> String {
    format!(
        "[[upstream]]\nname = \"local\"\ntransport = \"stdio\"\ncommand = \"{}\"\n\
         args = [\"stdio\", \"--fault\", \"crash-after:2\"]\nconnection = \"shared\"\n\n\
         [[instance]]\nid = \"demo\"\nupstreams = [\"local\"]\napi_keys = [\"{KEY}\"]\n",
        mock_bin().display()
    )
}

fn child_pids() -> Vec<u32> {
    probe::child_pids(std::process::id()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_crashed_children_are_all_reaped_and_replaced() {
    let seed = seed(); // builds mock-mcp first
    let before_start = Resources::now();
    assert_eq!(
        before_start.children.children, 0,
        "no child before the proxy"
    );
    let proxy = start_proxy(&seed, |s| s.call_timeout = Duration::from_secs(10)).await;
    let client = unpooled_client(&proxy.url("demo"), KEY).await;

    // warm-up: one child, initialized and answering
    let r = client
        .call_tool(call("echo", json!({ "text": "warm" })))
        .await
        .unwrap();
    assert_eq!(text(&r), "warm");
    let baseline = stable_resources().await;
    eprintln!("before start: {}", before_start.line());
    eprintln!("baseline:     {}", baseline.line());
    assert_eq!(baseline.children.children, 1, "one stdio child");

    let mut pids: BTreeSet<u32> = child_pids().into_iter().collect();
    let mut peak = baseline;
    let mut crashes = 0;
    let mut calls = 0;
    let mut zombies_seen_right_after = 0;
    let mut slowest_reap = Duration::ZERO;
    let started = Instant::now();
    while crashes < CRASHES {
        calls += 1;
        assert!(
            calls <= 4 * CRASHES,
            "{crashes} crashes after {calls} calls"
        );
        // sampled every 20 ms while the call runs, and once right after it
        let (mut r, during) = drive(1, 1, |_| {
            let client = &client;
            async move {
                tokio::time::timeout(
                    Duration::from_secs(15),
                    client.call_tool(call("echo", json!({ "text": format!("c{calls}") }))),
                )
                .await
                .expect("a call to a crashing child must not hang")
            }
        })
        .await;
        let r = r.pop().unwrap();
        let now = Resources::now();
        peak = peak.max(during).max(now);
        zombies_seen_right_after = zombies_seen_right_after.max(now.children.zombies);
        match r {
            Ok(r) => assert_eq!(text(&r), format!("c{calls}")),
            Err(e) => {
                crashes += 1;
                let err = rpc_error(e);
                assert_eq!(err.code, ErrorCode::INTERNAL_ERROR, "{err:?}");
                assert!(
                    err.message.contains("upstream \"local\""),
                    "the error names the upstream: {}",
                    err.message
                );
            }
        }
        // every check: no zombie lingers, never more than one child
        let t = Instant::now();
        let reaped = eventually(REAP, || {
            probe::children(std::process::id()).unwrap().zombies == 0
        })
        .await;
        slowest_reap = slowest_reap.max(t.elapsed());
        let kids = probe::children(std::process::id()).unwrap();
        assert!(
            reaped,
            "call {calls} (crash {crashes}): a dead child is still a zombie {REAP:?} later: {kids:?}"
        );
        assert!(
            kids.children <= 1,
            "call {calls}: {} children alive at once",
            kids.children
        );
        pids.extend(child_pids());
    }
    let elapsed = started.elapsed();

    // one more call starts the next child: the same state as the baseline
    let r = client
        .call_tool(call("echo", json!({ "text": "after" })))
        .await
        .unwrap();
    assert_eq!(text(&r), "after");
    pids.extend(child_pids());
    let settled = settle_within(&baseline, SETTLE).await;
    let metrics = metrics_text(&proxy).await;
    let connects = metric_value(
        &metrics,
        "mcp_proxy_upstream_connects_total",
        &[("upstream", "local"), ("outcome", "ok")],
    );
    let active = metric_value(
        &metrics,
        "mcp_proxy_upstream_connections",
        &[("upstream", "local"), ("state", "active")],
    );
    eprintln!(
        "{crashes} crashes in {calls} calls, {elapsed:?}; {} distinct children; connects ok {connects:?}, active connections {active:?}",
        pids.len()
    );
    eprintln!(
        "zombies: max {} while calls ran, max {zombies_seen_right_after} right after a call; slowest back to zero: {slowest_reap:?}",
        peak.children.zombies
    );
    eprintln!("peak:         {}", peak.line());
    eprintln!("final:        {}", settled.line());
    // the warm-up child was the first to crash: 50 crashed children and the live one
    assert_eq!(
        pids.len(),
        CRASHES + 1,
        "each crash is replaced by a new child"
    );
    assert_eq!(
        connects,
        Some((CRASHES + 1) as f64),
        "one successful connect per child"
    );
    assert_eq!(
        active,
        Some(1.0),
        "every dead client was closed (the gauge counts live ones)"
    );
    settled.assert_no_growth_over(&baseline, "after 50 crashes, running");

    client.cancel().await.unwrap();
    proxy.shutdown().await;
    let after = settle_within(&before_start, SETTLE).await;
    eprintln!("after shutdown: {}", after.line());
    for pid in &pids {
        assert_eq!(
            probe::process_state(*pid),
            None,
            "child {pid} outlived the proxy"
        );
    }
    after.assert_no_growth_over(&before_start, "after shutdown");
}
