//! Contract (issue 5): when 100 clients vanish mid-stream (event stream and a long call open,
//! connections dropped, no DELETE), the upstream work they started ends within a second, and
//! fds, TCP sockets and tokio tasks return to their baseline once the sessions are reaped.
//! (Own file: it counts process-wide resources.)

mod common;

use std::time::Duration;

use common::sessions::*;
use common::*;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_clients_vanishing_mid_stream_leave_nothing_running() {
    let (mock, proxy) = echo_proxy("shared", |s| {
        // long enough that only the vanishing, not the idle TTL, can stop the calls: opening
        // the 100 sessions takes up to ~4 s on a loaded 2-core machine (4 s was not enough)
        s.session_idle_timeout = Duration::from_secs(10);
        // pooled keep-alive connections to the upstream are not a leak; let them go quickly
        s.upstream_http_idle_timeout = Duration::from_millis(300);
    })
    .await;
    let t0 = std::time::Instant::now();
    let url = proxy.url("demo");
    let state = proxy.proxy.state.clone();
    // warm up: one session with a call, closed
    {
        let http = http();
        let sid = open_session(&http, &url).await;
        let r = rb(&http, reqwest::Method::POST, &url)
            .header("Mcp-Session-Id", &sid)
            .header("MCP-Protocol-Version", V)
            .json(&json!({ "jsonrpc": "2.0", "id": 2, "method": "tools/call",
                "params": { "name": "echo", "arguments": { "text": "warm" } } }))
            .send()
            .await
            .unwrap();
        rpc_json(r).await;
        let r = rb(&http, reqwest::Method::DELETE, &url)
            .header("Mcp-Session-Id", &sid)
            .header("MCP-Protocol-Version", V)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success());
    }
    assert!(eventually(Duration::from_secs(5), || state.sessions.count() == 0).await);
    let baseline = stable_resources().await;

    // 100 clients: each opens its event stream (GET) and starts a 30 s call, reads the first
    // bytes of both streams, then vanishes (connections dropped, no DELETE, no cancel)
    let mut streams = Vec::new();
    for _ in 0..100 {
        let http = http();
        let sid = open_session(&http, &url).await;
        let get = rb(&http, reqwest::Method::GET, &url)
            .header("Mcp-Session-Id", &sid)
            .header("MCP-Protocol-Version", V)
            .send()
            .await
            .unwrap();
        assert_eq!(get.status(), 200);
        let mut post = rb(&http, reqwest::Method::POST, &url)
            .header("Mcp-Session-Id", &sid)
            .header("MCP-Protocol-Version", V)
            .json(&json!({ "jsonrpc": "2.0", "id": 3, "method": "tools/call",
                "params": { "name": "sleep", "arguments": { "ms": 30000 } } }))
            .send()
            .await
            .unwrap();
        assert_eq!(post.status(), 200);
        let _priming = post.chunk().await.unwrap();
        streams.push((http, get, post));
    }
    assert!(
        eventually(Duration::from_secs(10), || mock.in_flight() == 100).await,
        "in flight at the upstream: {}",
        mock.in_flight()
    );
    eprintln!("opened 100 streams in {:?}", t0.elapsed());
    let peak = Resources::now();
    let vanished = std::time::Instant::now();
    drop(streams);
    assert!(
        eventually(Duration::from_secs(1), || mock.in_flight() == 0).await,
        "upstream still working 1 s after the clients vanished: {}",
        mock.in_flight()
    );
    let stopped_after = vanished.elapsed();
    assert!(
        eventually(Duration::from_secs(20), || state.sessions.count() == 0).await,
        "sessions not reaped"
    );
    eprintln!("sessions reaped at {:?}", t0.elapsed());
    let after = settle_within(&baseline, Duration::from_secs(10)).await;
    eprintln!(
        "vanishing clients: upstream work stopped {stopped_after:?} after they went\n  baseline {}\n  peak     {}\n  after    {}",
        baseline.line(),
        peak.line(),
        after.line()
    );
    let grew = after.growth_over(&baseline);
    assert!(grew.is_empty(), "grew over the baseline: {grew:?}");
    proxy.shutdown().await;
}
