//! Contract: on shutdown (SIGTERM for the binary) the proxy stops accepting, lets in-flight
//! requests finish within the deadline, then closes every upstream client and child (reaped,
//! none orphaned), flushes `last_used_at`, and stops. (The binary and SIGTERM: sigterm_binary.rs.)

mod common;

use std::time::Duration;

use common::*;
use mcp_loadgen::observe::probe;
use mock_mcp::{MockConfig, MockServer};
use serde_json::json;

#[tokio::test]
async fn in_flight_requests_finish_then_everything_is_released() {
    mock_bin();
    let me = std::process::id();
    let baseline_children = probe::children(me).unwrap();
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    let seed = format!(
        "{}\n{}",
        http_seed(
            &[("web", &mock.url(), "shared")],
            "a",
            "a-key-00001",
            "auto"
        ),
        stdio_seed("local", "shared", "b", "b-key-00001")
    );
    let proxy = start_proxy(&seed, |s| {
        s.usage_flush_interval = Duration::from_secs(3600)
    })
    .await;
    let a = client(&proxy.url("a"), "a-key-00001").await;
    let b = client(&proxy.url("b"), "b-key-00001").await;
    b.call_tool(call("echo", json!({ "text": "warm" })))
        .await
        .unwrap();
    assert_eq!(
        probe::children(me).unwrap().children,
        baseline_children.children + 1
    );

    // a slow call is in flight when shutdown starts: it must complete
    let slow = tokio::spawn(async move {
        let r = a.call_tool(call("sleep", json!({ "ms": 700 }))).await;
        (a, r)
    });
    assert!(eventually(Duration::from_secs(5), || mock.in_flight() == 1).await);
    let state = proxy.proxy.state.clone();
    let addr = proxy.proxy.addr;
    let started = std::time::Instant::now();
    proxy.proxy.shutdown_token().cancel();
    // new connections are refused or answered 503 while draining
    tokio::time::sleep(Duration::from_millis(100)).await;
    let during = reqwest::Client::new()
        .get(format!("http://{addr}/ready"))
        .timeout(Duration::from_secs(2))
        .send()
        .await;
    assert!(
        during.map(|r| r.status() == 503).unwrap_or(true),
        "not accepting while draining"
    );

    let (a, result) = slow.await.unwrap();
    let result = result.expect("the in-flight call completes during the drain");
    assert_eq!(text(&result), "slept 700ms");
    proxy.proxy.wait().await;
    eprintln!("drained and closed in {:?}", started.elapsed());
    drop(a);
    drop(b);

    assert_eq!(state.metrics.upstream_state("web", "active").get(), 0);
    assert_eq!(state.metrics.upstream_state("local", "active").get(), 0);
    assert_eq!(state.tracker.len(), 0, "no background task left");
    let kids = probe::children(me).unwrap();
    assert_eq!(kids, baseline_children, "stdio child reaped");
    // usage noted during the run was flushed on shutdown even though the interval never passed
    assert_eq!(state.usage.pending(), 0);
    assert!(
        reqwest::get(format!("http://{addr}/health")).await.is_err(),
        "listener closed"
    );
}
