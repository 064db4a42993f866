//! Contract: a stdio upstream is a real child process; in `shared` mode one child serves every
//! call, in `per-request` mode each call gets its own child that is closed and reaped; after
//! shutdown no child and no zombie is left.

mod common;

use std::time::Duration;

use common::*;
use mcp_loadgen::observe::probe;
use serde_json::json;

fn kids() -> probe::ChildCounts {
    probe::children(std::process::id()).unwrap()
}

#[tokio::test]
async fn stdio_children_are_shared_or_per_request_and_always_reaped() {
    mock_bin();
    let baseline = kids();
    assert_eq!(baseline.zombies, 0);

    // shared: one child for many calls
    let proxy = start_proxy(
        &stdio_seed("local", "shared", "demo", "demo-key-0001"),
        |_| {},
    )
    .await;
    let client = common::client(&proxy.url("demo"), "demo-key-0001").await;
    let tools = client.list_all_tools().await.unwrap();
    assert_eq!(tools.len(), mock_mcp::TOOL_NAMES.len());
    for i in 0..5 {
        let r = client
            .call_tool(call("add", json!({ "a": i, "b": 1 })))
            .await
            .unwrap();
        assert_eq!(text(&r), (i + 1).to_string());
    }
    assert_eq!(kids().children, baseline.children + 1, "one shared child");
    client.cancel().await.unwrap();
    proxy.shutdown().await;
    assert!(
        eventually(Duration::from_secs(5), || kids() == baseline).await,
        "after shutdown: {:?}",
        kids()
    );

    // per-request: a child per call, gone after each call
    let proxy = start_proxy(
        &stdio_seed("local", "per-request", "demo", "demo-key-0001"),
        |_| {},
    )
    .await;
    let client = common::client(&proxy.url("demo"), "demo-key-0001").await;
    for i in 0..5 {
        let r = client
            .call_tool(call("echo", json!({ "text": format!("n{i}") })))
            .await
            .unwrap();
        assert_eq!(text(&r), format!("n{i}"));
        assert!(
            eventually(Duration::from_secs(5), || kids() == baseline).await,
            "per-request child not reaped: {:?}",
            kids()
        );
    }
    client.cancel().await.unwrap();
    proxy.shutdown().await;
    assert_eq!(kids(), baseline);
}
