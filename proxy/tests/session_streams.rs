//! Contract (issue 20, item 8): a session has one GET event stream at a time. A newer one
//! ends the previous response at once (its connection and rmcp's stream are released, not
//! kept until the session ends), and the newest still carries what the session is sent
//! unasked. Alone in its process: it counts this process's fds, sockets and tasks.

mod common;

use std::time::Duration;

use common::sessions::*;
use common::*;
use serde_json::json;

async fn get_stream(http: &reqwest::Client, url: &str, sid: &str) -> reqwest::Response {
    let r = rb(http, reqwest::Method::GET, url)
        .header("Mcp-Session-Id", sid)
        .header("MCP-Protocol-Version", V)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r
}

/// Reads `r` until it ends (`Some(body)`) or `within` passes (`None`).
async fn read_to_end(mut r: reqwest::Response, within: Duration) -> Option<String> {
    let until = tokio::time::Instant::now() + within;
    let mut body = String::new();
    loop {
        match tokio::time::timeout_at(until, r.chunk()).await {
            Ok(Ok(Some(chunk))) => body.push_str(&String::from_utf8_lossy(&chunk)),
            Ok(Ok(None)) => return Some(body),
            Ok(Err(e)) => panic!("stream failed instead of ending: {e}"),
            Err(_) => return None,
        }
    }
}

#[tokio::test]
async fn a_newer_get_stream_ends_the_previous_one_and_nothing_piles_up() {
    let (_mock, proxy) = echo_proxy("shared", |s| {
        s.sse_keepalive = Duration::from_millis(200);
    })
    .await;
    let url = proxy.url("demo");
    let http = http();
    let sid = open_session(&http, &url).await;
    let first = get_stream(&http, &url, &sid).await;
    let baseline = stable_resources().await;

    let mut previous = first;
    for _ in 0..30 {
        let next = get_stream(&http, &url, &sid).await;
        assert!(
            read_to_end(previous, Duration::from_secs(5))
                .await
                .is_some(),
            "the replaced stream was not ended"
        );
        previous = next;
    }
    // one stream open, as at the baseline: no connection or task per replaced stream
    let after = settle_within(&baseline, Duration::from_secs(5)).await;
    after.assert_no_growth_over(&baseline, "after 30 replaced GET streams");

    // the newest stream still carries what the session is sent unasked
    let r = rb(&http, reqwest::Method::POST, &url)
        .header("Mcp-Session-Id", &sid)
        .header("MCP-Protocol-Version", V)
        .json(&json!({
            "jsonrpc": "2.0", "id": 2, "method": "tools/call",
            "params": { "name": "poke", "arguments": { "what": "tools" } }
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    rpc_json(r).await;
    let mut newest = previous;
    let until = tokio::time::Instant::now() + Duration::from_secs(5);
    let mut body = String::new();
    while !body.contains("notifications/tools/list_changed") {
        match tokio::time::timeout_at(until, newest.chunk()).await {
            Ok(Ok(Some(chunk))) => body.push_str(&String::from_utf8_lossy(&chunk)),
            other => panic!("no list_changed on the newest stream ({other:?}): {body}"),
        }
    }
    drop(newest);
    proxy.shutdown().await;
}
