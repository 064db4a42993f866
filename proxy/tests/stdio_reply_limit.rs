//! Contract (issue 20, item 8): a stdio upstream's reply over `--stdio-max-reply-bytes` fails
//! its call at once with an error naming the limit (rmcp alone drops the line and the caller
//! waits for the call timeout); the connection stays usable and the child is not replaced.

mod common;

use std::time::Duration;

use common::*;
use serde_json::json;

#[tokio::test]
async fn a_reply_over_the_limit_fails_its_call_at_once_naming_the_limit() {
    mock_bin();
    let proxy = start_proxy(&stdio_seed("local", "shared", "demo", KEY), |s| {
        s.stdio_max_reply_bytes = 64 * 1024;
        // were the reply dropped, the call would wait this long: the test's bound below is
        // far shorter
        s.call_timeout = Duration::from_secs(120);
        s.request_timeout = Duration::from_secs(120);
    })
    .await;
    let client = common::client(&proxy.url("demo"), KEY).await;
    let before = probe_children();

    let big = "x".repeat(100 * 1024);
    let answer = tokio::time::timeout(
        Duration::from_secs(20),
        client.call_tool(call("echo", json!({ "text": big }))),
    )
    .await
    .expect("the call failed at once instead of waiting for the call timeout");
    let error = rpc_error(answer.expect_err("an oversized reply is an error"));
    assert!(
        error.message.contains("65536 byte limit")
            && error.message.contains("--stdio-max-reply-bytes"),
        "the error names the limit and the setting: {error:?}"
    );

    // the same child serves the next calls, within the limit
    let small = "y".repeat(1024);
    let r = client
        .call_tool(call("echo", json!({ "text": small.clone() })))
        .await
        .unwrap();
    assert_eq!(text(&r), small);
    assert_eq!(probe_children(), before, "the child was not replaced");
    client.cancel().await.unwrap();
    proxy.shutdown().await;
}

fn probe_children() -> u32 {
    mcp_loadgen::observe::probe::children(std::process::id())
        .unwrap()
        .children
}
