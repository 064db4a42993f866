//! Counted from outside the target, end to end over real parts: the session asker against a
//! real `mock-mcp serve` (held → a result, after DELETE → 404) and through `mcp-loadgen run`
//! against the real `mcp-proxy` (abandoned sessions reaped by a short idle timeout are gone
//! after `expect_reaped_within`; without it they are held and the run exits 2); the mocks'
//! upstream counts (HTTP `/control` and a stdio mock's stats file) in the report; and
//! `[target.metrics]` read over a real HTTP endpoint serving Prometheus text.

mod common;

use std::collections::BTreeMap;

use common::*;
use mcp_loadgen::observe::metrics::MetricMap;
use mcp_loadgen::observe::sampler::Probe;
use mcp_loadgen::observe::sessions::{Asked, ask};
use serde_json::json;

/// Opens a 2025-11-25 session on the mock at `url`; returns its id.
async fn open_session(http: &reqwest::Client, url: &str) -> String {
    let init = json!({ "jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": { "name": "t", "version": "0" } } });
    let r = http
        .post(url)
        .header("Accept", "application/json, text/event-stream")
        .json(&init)
        .send()
        .await
        .unwrap();
    let sid = r.headers()["mcp-session-id"].to_str().unwrap().to_string();
    r.text().await.unwrap();
    http.post(url)
        .header("Accept", "application/json, text/event-stream")
        .header("mcp-session-id", &sid)
        .json(&json!({ "jsonrpc": "2.0", "method": "notifications/initialized" }))
        .send()
        .await
        .unwrap();
    sid
}

#[test]
fn the_asker_tells_a_held_session_from_a_deleted_one_on_a_real_mock() {
    // serialised with the runs: its `cargo build` of the mock is a child of this process
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let mock = MockServe::start();
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(ask_a_real_mock(&mock.url()));
}

async fn ask_a_real_mock(url: &str) {
    let url = url.to_string();
    let http = reqwest::Client::new();
    let kept = open_session(&http, &url).await;
    let deleted = open_session(&http, &url).await;
    let r = http
        .delete(&url)
        .header("mcp-session-id", &deleted)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    let asked = [
        Asked {
            id: kept.clone(),
            deleted: false,
        },
        Asked {
            id: deleted,
            deleted: true,
        },
        Asked {
            id: "never-opened".into(),
            deleted: false,
        },
    ];
    let h = ask(&url, &BTreeMap::new(), &asked).await.unwrap();
    assert_eq!((h.asked, h.held, h.gone, h.unknown), (3, 1, 2, 0), "{h:?}");
    assert_eq!((h.held_abandoned, h.held_closed), (1, 0));
    assert_eq!(h.held_ids, vec![kept]);
}

const ABANDON: &str = r#"
name = "outside"
[target]
proxy_args = ["--upstream-http-idle-timeout", "2s" IDLE]
[[upstream]]
name = "echo"
mock = "serve"
latency = "fixed:1ms"
[[upstream]]
name = "local"
mock = "stdio"
[load]
users = 4
warmup = "1s"
duration = "3s"
sessions = "abandon"
requests_per_session = 20
mix = { "tools/call echo__echo" = 3, "tools/call local__add" = 1 }
arguments = { "local__add" = { a = 2, b = 3 } }
[leaks]
settle = "SETTLE"
REAPED
"#;

#[test]
fn abandoned_sessions_reaped_by_the_idle_timeout_are_gone_when_asked() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    subreaper();
    let run = run_scenario(
        &ABANDON
            .replace("IDLE", r#", "--session-idle-timeout", "2s""#)
            .replace("SETTLE", "6s")
            .replace("REAPED", r#"expect_reaped_within = "4s""#),
    );
    assert_eq!(
        run.code, 0,
        "stdout:\n{}\nstderr:\n{}",
        run.stdout, run.stderr
    );
    let r = run.report();
    let s = &r["outside"]["sessions"];
    assert!(
        s["asked"].as_u64().unwrap() > 4,
        "several sessions per user: {s}"
    );
    assert_eq!(s["held"], 0, "{s}");
    assert_eq!(s["gone"], s["asked"], "{s}");
    assert!(s["asked_after_ms"].as_u64().unwrap() >= 4000, "{s}");
    let c = run.check("sessions.held");
    assert_eq!(
        (c["passed"].clone(), c["value"].clone()),
        (json!(true), json!(0.0)),
        "{c}"
    );
    // the HTTP mock and the stdio mock (its stats file) were both read
    let u = &r["outside"]["upstream"];
    assert_eq!(u["mocks"], 2, "{u}");
    assert!(u["calls"].as_u64().unwrap() > 10, "{u}");
    assert_eq!(u["in_flight"], 0, "{u}");
    assert!(run.check("upstream.in_flight")["skipped"].is_null());
    assert!(
        std::fs::read_to_string(run.out.join("report.md"))
            .unwrap()
            .contains("sessions asked")
    );
    assert_no_process_left(&[], "after an outside-counts run");
}

#[test]
fn abandoned_sessions_nobody_reaps_are_held_and_fail_with_exit_2() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    subreaper();
    let run = run_scenario(
        &ABANDON
            .replace("IDLE", "")
            .replace("SETTLE", "1s")
            .replace("REAPED", ""),
    );
    assert_eq!(
        run.code, 2,
        "stdout:\n{}\nstderr:\n{}",
        run.stdout, run.stderr
    );
    let s = &run.report()["outside"]["sessions"];
    assert!(s["held"].as_u64().unwrap() > 4, "{s}");
    assert_eq!(s["held"], s["held_abandoned"], "{s}");
    let c = run.check("sessions.held");
    assert_eq!(c["passed"], false, "{c}");
    let notes = run.report()["notes"].to_string();
    assert!(notes.contains("sessions still held"), "{notes}");
    assert_no_process_left(&[], "after a failing outside-counts run");
}

#[tokio::test]
async fn target_metrics_map_a_targets_own_series() {
    let text = "# HELP mcp_sessions_active sessions\n\
        mcp_sessions_active 7\n\
        nodejs_active_handles{type=\"Socket\"} 3\n\
        nodejs_active_handles{type=\"Timer\"} 5\n\
        mcp_proxy_sessions 99\n";
    let app =
        axum::Router::new().route("/metrics", axum::routing::get(move || async move { text }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let url = format!("http://{addr}/metrics");
    let map = MetricMap::parse(
        Some("mcp_sessions_active"),
        Some(r#"nodejs_active_handles{type="Socket"}"#),
        Some("absent_series"),
    )
    .unwrap();
    let mut probe = Probe::new(None, Some(url.clone())).unwrap().with_names(map);
    let m = probe.sample().await.metrics.expect("read /metrics");
    assert_eq!(
        m.sessions,
        Some(7.0),
        "the mapped series, not mcp_proxy_sessions"
    );
    assert_eq!(m.tokio_alive_tasks, Some(3.0), "only the selected label");
    assert_eq!(
        m.upstream_active, None,
        "a missing series is absent, not an error"
    );
    // without a mapping the SPEC names are read
    let mut plain = Probe::new(None, Some(url)).unwrap();
    assert_eq!(plain.sample().await.metrics.unwrap().sessions, Some(99.0));
    server.abort();
}
