//! The pass-through paths leave nothing behind: 60 sessions that each report progress, answer
//! sampling, elicitation and roots relayed from upstreams (shared and per-session), subscribe
//! and get updates, set their log level and hear a log message, then close — and fds, TCP
//! sockets and tokio tasks return to their baseline. (Own file: it counts process-wide
//! resources.)

#![allow(deprecated)] // resources/subscribe and logging: part of 2025-11-25

mod common;

use std::time::Duration;

use common::*;
use mock_mcp::recorder::{Event, Recorder, connect_authorized};
use mock_mcp::{MockConfig, MockServer};
use rmcp::model::{
    CallToolRequestParams, LoggingLevel, SetLevelRequestParams, SubscribeRequestParams,
    UnsubscribeRequestParams,
};
use rmcp::service::ClientLifecycleMode;
use serde_json::json;

fn tool(name: &str, args: serde_json::Value) -> CallToolRequestParams {
    CallToolRequestParams::new(name.to_string()).with_arguments(args.as_object().cloned().unwrap())
}

async fn text(c: &mock_mcp::recorder::Client, name: &str, args: serde_json::Value) -> String {
    let r = c.call_tool(tool(name, args)).await.unwrap();
    assert_ne!(r.is_error, Some(true), "{name}: {r:?}");
    r.content[0].as_text().unwrap().text.clone()
}

/// One session over the whole relayed surface, then closed.
async fn session(url: &str) {
    let recorder = Recorder::default();
    let c = connect_authorized(
        url,
        Some("leak-key-0001"),
        &recorder,
        ClientLifecycleMode::Initialize,
    )
    .await;
    assert_eq!(
        text(&c, "s__progress", json!({ "steps": 3, "ms": 1 })).await,
        "done 3 steps"
    );
    assert_eq!(
        text(&c, "s__sample", json!({ "prompt": "a" })).await,
        "sampled: reply to a"
    );
    assert_eq!(
        text(&c, "p__sample", json!({ "prompt": "b" })).await,
        "sampled: reply to b"
    );
    assert_eq!(
        text(&c, "p__elicit", json!({ "message": "x" })).await,
        r#"accepted: {"name":"Ferris"}"#
    );
    assert_eq!(text(&c, "s__roots", json!({})).await, "file:///a,file:///b");
    c.subscribe(SubscribeRequestParams::new("mock://counter"))
        .await
        .unwrap();
    text(&c, "s__bump", json!({})).await;
    recorder
        .wait_event(Event::ResourceUpdated("mock://counter".into()))
        .await;
    c.unsubscribe(UnsubscribeRequestParams::new("mock://counter"))
        .await
        .unwrap();
    c.set_level(SetLevelRequestParams::new(LoggingLevel::Warning))
        .await
        .unwrap();
    text(&c, "p__log", json!({ "level": "error", "message": "e" })).await;
    recorder
        .wait_for("the log message", |e| {
            e.iter().any(|e| matches!(e, Event::Log { .. }))
        })
        .await;
    c.cancel().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_sessions_over_the_relayed_surface_leave_nothing_behind() {
    let shared = MockServer::start(MockConfig::default()).await.unwrap();
    let own = MockServer::start(MockConfig::default()).await.unwrap();
    let seed = http_seed(
        &[
            ("s", &shared.url(), "shared"),
            ("p", &own.url(), "per-session"),
        ],
        "leak",
        "leak-key-0001",
        "auto",
    );
    let proxy = start_proxy(&seed, |s| {
        // pooled keep-alive connections to the upstreams are not a leak; let them go quickly
        s.upstream_http_idle_timeout = Duration::from_millis(300);
    })
    .await;
    let url = proxy.url("leak");
    let state = proxy.proxy.state.clone();
    session(&url).await; // warm-up: the shared connection, caches, lazily created state
    assert!(eventually(Duration::from_secs(5), || state.sessions.count() == 0).await);
    let baseline = stable_resources().await;

    let (_, peak) = drive(60, 10, |_| session(&url)).await;
    assert!(
        eventually(Duration::from_secs(10), || state.sessions.count() == 0).await,
        "sessions not closed: {}",
        state.sessions.count()
    );
    let after = settle_within(&baseline, Duration::from_secs(10)).await;
    eprintln!(
        "60 sessions over the relayed surface\n  baseline {}\n  peak     {}\n  after    {}",
        baseline.line(),
        peak.line(),
        after.line()
    );
    after.assert_no_growth_over(&baseline, "relayed surface");
    let m = metrics_text(&proxy).await;
    for method in ["sampling/createMessage", "elicitation/create", "roots/list"] {
        let ok = metric_value(
            &m,
            "mcp_proxy_server_requests_total",
            &[("method", method), ("outcome", "ok")],
        );
        assert!(ok.unwrap_or(0.0) >= 61.0, "{method}: {ok:?}\n{m}");
    }
    // the per-session upstream's sessions were all closed with their downstream sessions
    assert!(
        eventually(Duration::from_secs(5), || own.subscriptions().0 == 0).await,
        "per-session upstream sessions left subscribed"
    );
    proxy.shutdown().await;
}
