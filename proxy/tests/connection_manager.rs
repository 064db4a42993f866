//! Contract (SPEC "Upstream lifecycle"): single-flight connects, a connection limit with a
//! clear error, idle reaping, reconnect with backoff and a give-up, re-initialize on an
//! upstream's 404, a per-upstream circuit breaker, and `per-session` connections that close
//! with their session. Each is driven through `mock-mcp` over real sockets or real children.

mod common;

use std::time::{Duration, Instant};

use common::*;
use mock_mcp::{MockConfig, MockServer};
use serde_json::json;

fn gauge(proxy: &TestProxy, upstream: &str, state: &str) -> i64 {
    proxy
        .proxy
        .state
        .metrics
        .upstream_state(upstream, state)
        .get()
}

fn connects(metrics: &str, upstream: &str, outcome: &str) -> u64 {
    let prefix = format!(
        "mcp_proxy_upstream_connects_total{{upstream=\"{upstream}\",outcome=\"{outcome}\"}} "
    );
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .map_or(0, |v| v.trim().parse().unwrap())
}

/// Polls the mock's open-session count until it is `n` (2 s at most).
async fn upstream_sessions_reach(mock: &MockServer, n: u64) -> bool {
    for _ in 0..100 {
        if mock.counters().await.sessions_open == n {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

#[tokio::test]
async fn concurrent_requests_share_one_connect() {
    // 40 callers hit a proxy that has no upstream connection yet, all at once
    let mock = MockServer::start(MockConfig::with_faults(&[]))
        .await
        .unwrap();
    let proxy = start_proxy(
        &http_seed(&[("echo", &mock.url(), "shared")], "demo", KEY, "auto"),
        |_| {},
    )
    .await;
    let url = proxy.url("demo");
    let clients = futures::future::join_all((0..40).map(|_| client(&url, KEY))).await;
    let calls = clients.iter().enumerate().map(|(i, c)| async move {
        let r = c
            .call_tool(call("echo", json!({ "text": format!("c{i}") })))
            .await
            .unwrap();
        assert_eq!(text(&r), format!("c{i}"));
    });
    futures::future::join_all(calls).await;
    let m = metrics_text(&proxy).await;
    assert_eq!(
        connects(&m, "echo", "ok"),
        1,
        "one connect for 40 concurrent callers"
    );
    assert_eq!(
        mock.counters().await.sessions_open,
        1,
        "one upstream session"
    );
    assert_eq!(gauge(&proxy, "echo", "active"), 1);
    for c in clients {
        c.cancel().await.unwrap();
    }
    proxy.shutdown().await;
}

#[tokio::test]
async fn past_the_connection_limit_requests_get_a_clear_error() {
    let (mock, proxy) = echo_proxy("per-request", |s| s.max_upstream_connections = 2).await;
    let c = client(&proxy.url("demo"), KEY).await;
    let slow = |ms: u64| {
        let c = c.peer().clone();
        async move { c.call_tool(call("sleep", json!({ "ms": ms }))).await }
    };
    let a = tokio::spawn(slow(1500));
    let b = tokio::spawn(slow(1500));
    assert!(eventually(Duration::from_secs(5), || mock.in_flight() == 2).await);
    assert_eq!(proxy.proxy.state.pool.open_connections(), 2);
    let err = c
        .call_tool(call("echo", json!({ "text": "third" })))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("\"echo\"") && err.contains("upstream connection limit (2) reached"),
        "{err}"
    );
    a.await.unwrap().unwrap();
    b.await.unwrap().unwrap();
    // the limit frees with the connections
    assert!(
        eventually(Duration::from_secs(2), || proxy
            .proxy
            .state
            .pool
            .open_connections()
            == 0)
        .await
    );
    let r = c
        .call_tool(call("echo", json!({ "text": "after" })))
        .await
        .unwrap();
    assert_eq!(text(&r), "after");
    c.cancel().await.unwrap();
    proxy.shutdown().await;
}

#[tokio::test]
async fn idle_shared_connections_are_reaped_and_reopened_on_demand() {
    let (mock, proxy) = echo_proxy("shared", |s| {
        s.upstream_idle_timeout = Duration::from_millis(300)
    })
    .await;
    let c = client(&proxy.url("demo"), KEY).await;
    c.call_tool(call("echo", json!({ "text": "1" })))
        .await
        .unwrap();
    assert_eq!(gauge(&proxy, "echo", "active"), 1);
    assert!(
        eventually(Duration::from_secs(3), || gauge(&proxy, "echo", "active")
            == 0)
        .await,
        "idle connection not reaped"
    );
    assert!(
        upstream_sessions_reach(&mock, 0).await,
        "reaping must end the upstream session (DELETE)"
    );
    // a busy connection is not idle: a call longer than the idle timeout keeps it
    let r = c
        .call_tool(call("sleep", json!({ "ms": 700 })))
        .await
        .unwrap();
    assert_eq!(text(&r), "slept 700ms");
    let m = metrics_text(&proxy).await;
    assert_eq!(
        connects(&m, "echo", "ok"),
        2,
        "reopened once, kept while busy"
    );
    c.cancel().await.unwrap();
    let tracker = proxy.proxy.state.tracker.clone();
    proxy.shutdown().await;
    assert_eq!(tracker.len(), 0, "the sweep stopped with the proxy");
}

#[tokio::test]
async fn an_expired_upstream_session_is_reinitialized_and_the_call_retried() {
    let mock = MockServer::start(MockConfig::with_faults(&["expire-session-after:3"]))
        .await
        .unwrap();
    let proxy = start_proxy(
        &http_seed(&[("echo", &mock.url(), "shared")], "demo", KEY, "auto"),
        |_| {},
    )
    .await;
    let c = client(&proxy.url("demo"), KEY).await;
    for i in 0..12 {
        let r = c
            .call_tool(call("echo", json!({ "text": format!("n{i}") })))
            .await
            .unwrap_or_else(|e| panic!("call {i} failed: {e}"));
        assert_eq!(text(&r), format!("n{i}"));
    }
    let fired = mock.counters().await.faults_fired;
    assert!(
        fired.get("expire-session-after").copied().unwrap_or(0) >= 2,
        "the upstream expired the session: {fired:?}"
    );
    c.cancel().await.unwrap();
    proxy.shutdown().await;
}

#[tokio::test]
async fn the_circuit_opens_after_repeated_connect_failures_and_half_opens() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let refused = format!("http://{}/mcp", port.local_addr().unwrap());
    drop(port);
    let proxy = start_proxy(
        &http_seed(&[("down", &refused, "per-request")], "demo", KEY, "auto"),
        |s| {
            s.breaker_threshold = 3;
            s.breaker_cooldown = Duration::from_millis(500);
        },
    )
    .await;
    let c = client(&proxy.url("demo"), KEY).await;
    let attempt = || async {
        c.call_tool(call("echo", json!({ "text": "x" })))
            .await
            .unwrap_err()
            .to_string()
    };
    // the client's `initialize` made the first failed connect (learning capabilities)
    for _ in 0..2 {
        let err = attempt().await;
        assert!(err.contains("connect failed"), "{err}");
    }
    for _ in 0..20 {
        let err = attempt().await;
        assert!(err.contains("\"down\": circuit open"), "{err}");
    }
    let m = metrics_text(&proxy).await;
    assert_eq!(connects(&m, "down", "error"), 3, "no connect while open");
    assert_eq!(connects(&m, "down", "circuit_open"), 20);
    tokio::time::sleep(Duration::from_millis(600)).await;
    // one trial after the cool-down; it fails, and the circuit opens again at once
    let trial = attempt().await;
    assert!(trial.contains("connect failed"), "{trial}");
    let again = attempt().await;
    assert!(again.contains("circuit open"), "{again}");
    assert_eq!(connects(&metrics_text(&proxy).await, "down", "error"), 4);
    c.cancel().await.unwrap();
    proxy.shutdown().await;
}

#[tokio::test]
async fn a_dropped_stdio_connection_is_reconnected_with_backoff() {
    // crash-after:2: the child exits on its 2nd tools/call; the next call must reconnect
    let seed = format!(
        "[[upstream]]\nname = \"local\"\ntransport = \"stdio\"\ncommand = \"{}\"\nargs = [\"stdio\", \"--fault\", \"crash-after:2\"]\nconnection = \"shared\"\n\n\
         [[instance]]\nid = \"demo\"\nupstreams = [\"local\"]\napi_keys = [\"{KEY}\"]\n",
        mock_bin().display()
    );
    let proxy = start_proxy(&seed, |_| {}).await;
    let c = client(&proxy.url("demo"), KEY).await;
    let mut ok = 0;
    for _ in 0..6 {
        if c.call_tool(call("echo", json!({ "text": "x" })))
            .await
            .is_ok()
        {
            ok += 1;
        }
    }
    let m = metrics_text(&proxy).await;
    assert!(connects(&m, "local", "reconnected") >= 2, "{m}");
    assert!(
        ok >= 3,
        "calls after each crash succeed on a new child ({ok} of 6)"
    );
    c.cancel().await.unwrap();
    proxy.shutdown().await;
}

#[tokio::test]
async fn reconnecting_gives_up_after_the_maximum_attempts() {
    // works once, then every restart fails: the reconnect must back off, then give up
    let dir = tempfile::tempdir().unwrap();
    let flag = dir.path().join("started");
    let script = format!(
        "if [ -e '{flag}' ]; then exit 1; fi; touch '{flag}'; exec '{bin}' stdio --fault crash-after:1",
        flag = flag.display(),
        bin = mock_bin().display()
    );
    let seed = format!(
        "[[upstream]]\nname = \"flaky\"\ntransport = \"stdio\"\ncommand = \"sh\"\nargs = [\"-c\", {script:?}]\nconnection = \"shared\"\n\n\
         [[instance]]\nid = \"demo\"\nupstreams = [\"flaky\"]\napi_keys = [\"{KEY}\"]\n"
    );
    let proxy = start_proxy(&seed, |s| {
        s.reconnect_max_attempts = 3;
        s.reconnect_base_delay = Duration::from_millis(200);
        s.breaker_threshold = 0;
    })
    .await;
    let c = client(&proxy.url("demo"), KEY).await;
    // the first call crashes the child
    let _ = c.call_tool(call("echo", json!({ "text": "x" }))).await;
    let started = Instant::now();
    let err = c
        .call_tool(call("echo", json!({ "text": "x" })))
        .await
        .unwrap_err()
        .to_string();
    let took = started.elapsed();
    assert!(
        err.contains("\"flaky\": gave up reconnecting after 3 attempts"),
        "{err}"
    );
    // delays: [100, 200] ms then [200, 400] ms (equal jitter) before attempts 2 and 3
    assert!(
        took >= Duration::from_millis(300),
        "backed off only {took:?}"
    );
    let m = metrics_text(&proxy).await;
    assert_eq!(connects(&m, "flaky", "gave_up"), 1);
    assert_eq!(connects(&m, "flaky", "error"), 3);
    c.cancel().await.unwrap();
    proxy.shutdown().await;
}

#[tokio::test]
async fn per_session_connections_belong_to_their_session() {
    let (mock, proxy) = echo_proxy("per-session", |_| {}).await;
    let a = client(&proxy.url("demo"), KEY).await;
    let b = client(&proxy.url("demo"), KEY).await;
    for c in [&a, &b] {
        for _ in 0..3 {
            c.call_tool(call("echo", json!({ "text": "x" })))
                .await
                .unwrap();
        }
    }
    assert_eq!(
        gauge(&proxy, "echo", "active"),
        2,
        "one upstream client per session"
    );
    assert_eq!(mock.counters().await.sessions_open, 2);
    a.cancel().await.unwrap(); // DELETE: the session ends, and its upstream client with it
    assert!(
        eventually(Duration::from_secs(2), || gauge(&proxy, "echo", "active")
            == 1)
        .await,
        "the session's upstream client outlived it"
    );
    // a 2026-07-28 client has no session: per-session acts per request
    let d = discover_client(&proxy.url("demo"), KEY).await;
    d.call_tool(call("echo", json!({ "text": "y" })))
        .await
        .unwrap();
    assert!(
        eventually(Duration::from_secs(2), || gauge(&proxy, "echo", "active")
            == 1)
        .await
    );
    b.cancel().await.unwrap();
    assert!(
        eventually(Duration::from_secs(2), || gauge(&proxy, "echo", "active")
            == 0)
        .await
    );
    assert!(upstream_sessions_reach(&mock, 0).await);
    drop(d);
    proxy.shutdown().await;
}

#[tokio::test]
async fn an_http_upstream_that_restarts_is_served_again() {
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    let addr = mock.addr();
    let proxy = start_proxy(
        &http_seed(&[("echo", &mock.url(), "shared")], "demo", KEY, "auto"),
        |s| s.breaker_threshold = 0,
    )
    .await;
    let c = client(&proxy.url("demo"), KEY).await;
    c.call_tool(call("echo", json!({ "text": "before" })))
        .await
        .unwrap();
    // the upstream goes away with our session, and comes back empty on the same port
    mock.shutdown().await;
    let restarted = MockServer::start(MockConfig {
        listen: addr,
        ..MockConfig::default()
    })
    .await
    .unwrap();
    let mut outcomes = Vec::new();
    for i in 0..5 {
        let r = c
            .call_tool(call("echo", json!({ "text": format!("after{i}") })))
            .await;
        outcomes.push(r.map(|r| text(&r)).map_err(|e| e.to_string()));
    }
    assert!(
        outcomes[1..].iter().all(|o| o.is_ok()),
        "at most the first call after the restart may fail: {outcomes:?}"
    );
    assert!(restarted.calls() >= 4);
    assert_eq!(gauge(&proxy, "echo", "active"), 1, "one live connection");
    c.cancel().await.unwrap();
    proxy.shutdown().await;
}
