//! Contract: a client sees the merged tools of an instance's HTTP upstreams under the SPEC's
//! prefix rule and can call them, in both protocol eras and both connection modes.

mod common;

use common::*;
use mock_mcp::{MockConfig, MockServer};
use serde_json::json;

async fn names(client: &Client) -> Vec<String> {
    let mut names: Vec<String> = client
        .list_all_tools()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.name.to_string())
        .collect();
    names.sort();
    names
}

#[tokio::test]
async fn single_upstream_is_transparent_in_both_modes() {
    for mode in ["shared", "per-request"] {
        let (mock, proxy) = echo_proxy(mode, |_| {}).await;
        let client = client(&proxy.url("demo"), "demo-key-0001").await;
        assert_eq!(names(&client).await, mock_mcp::TOOL_NAMES, "mode {mode}");
        let r = client
            .call_tool(call("echo", json!({ "text": "hi" })))
            .await
            .unwrap();
        assert_eq!(text(&r), "hi");
        let r = client
            .call_tool(call("add", json!({ "a": 2, "b": 3 })))
            .await
            .unwrap();
        assert_eq!(text(&r), "5");
        client
            .peer()
            .send_request(rmcp::model::ClientRequest::PingRequest(Default::default()))
            .await
            .unwrap();
        assert_eq!(mock.calls(), 2);
        client.cancel().await.unwrap();
        proxy.shutdown().await;
        mock.shutdown().await;
    }
}

#[tokio::test]
async fn two_upstreams_are_prefixed_and_routed() {
    let a = MockServer::start(MockConfig::default()).await.unwrap();
    let b = MockServer::start(MockConfig::default()).await.unwrap();
    let seed = http_seed(
        &[
            ("alpha", &a.url(), "shared"),
            ("beta-2", &b.url(), "per-request"),
        ],
        "multi",
        "multi-key-0001",
        "auto",
    );
    let proxy = start_proxy(&seed, |_| {}).await;
    let client = client(&proxy.url("multi"), "multi-key-0001").await;
    let names = names(&client).await;
    let expected: Vec<String> = ["alpha", "beta-2"]
        .iter()
        .flat_map(|ns| {
            mock_mcp::TOOL_NAMES
                .iter()
                .map(move |t| format!("{ns}__{t}"))
        })
        .collect();
    assert_eq!(names, expected);
    let r = client
        .call_tool(call("beta-2__echo", json!({ "text": "to b" })))
        .await
        .unwrap();
    assert_eq!(text(&r), "to b");
    assert_eq!((a.calls(), b.calls()), (0, 1));
    let r = client
        .call_tool(call("alpha__add", json!({ "a": 1, "b": 1 })))
        .await
        .unwrap();
    assert_eq!(text(&r), "2");
    assert_eq!((a.calls(), b.calls()), (1, 1));
    client.cancel().await.unwrap();
    proxy.shutdown().await;
}

#[tokio::test]
async fn never_prefix_routes_by_the_merged_index() {
    let a = MockServer::start(MockConfig::default()).await.unwrap();
    let b = MockServer::start(MockConfig::default()).await.unwrap();
    let seed = http_seed(
        &[("alpha", &a.url(), "shared"), ("beta", &b.url(), "shared")],
        "flat",
        "flat-key-0001",
        "never",
    );
    let proxy = start_proxy(&seed, |_| {}).await;
    let client = client(&proxy.url("flat"), "flat-key-0001").await;
    // same tool names on both: the first upstream wins, names unchanged
    assert_eq!(names(&client).await, mock_mcp::TOOL_NAMES);
    client
        .call_tool(call("echo", json!({ "text": "x" })))
        .await
        .unwrap();
    assert_eq!((a.calls(), b.calls()), (1, 0));
    client.cancel().await.unwrap();
    proxy.shutdown().await;
}

#[tokio::test]
async fn the_2026_era_client_discovers_lists_and_calls() {
    let (_mock, proxy) = echo_proxy("shared", |_| {}).await;
    let client = discover_client(&proxy.url("demo"), "demo-key-0001").await;
    assert_eq!(names(&client).await, mock_mcp::TOOL_NAMES);
    let r = client
        .call_tool(call("echo", json!({ "text": "new era" })))
        .await
        .unwrap();
    assert_eq!(text(&r), "new era");
    client.cancel().await.unwrap();
    proxy.shutdown().await;
}

#[tokio::test]
async fn one_failing_upstream_does_not_fail_tools_list() {
    let good = MockServer::start(MockConfig::default()).await.unwrap();
    // a port nothing listens on
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_url = format!("http://{}/mcp", dead.local_addr().unwrap());
    drop(dead);
    let seed = http_seed(
        &[
            ("good", &good.url(), "shared"),
            ("dead", &dead_url, "shared"),
        ],
        "mix",
        "mix-key-00001",
        "auto",
    );
    let proxy = start_proxy(&seed, |_| {}).await;
    let client = client(&proxy.url("mix"), "mix-key-00001").await;
    let expected: Vec<String> = mock_mcp::TOOL_NAMES
        .iter()
        .map(|t| format!("good__{t}"))
        .collect();
    assert_eq!(names(&client).await, expected);
    let err = client
        .call_tool(call("dead__echo", json!({ "text": "x" })))
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("dead") && msg.contains("connect"), "{msg}");
    let metrics = metrics_text(&proxy).await;
    assert!(
        metrics.contains("mcp_proxy_upstream_errors_total{upstream=\"dead\""),
        "{metrics}"
    );
    client.cancel().await.unwrap();
    proxy.shutdown().await;
}

#[tokio::test]
async fn upstream_list_changed_invalidates_the_cached_tool_list() {
    let (_mock, proxy) = echo_proxy("shared", |_| {}).await;
    let client = client(&proxy.url("demo"), "demo-key-0001").await;
    names(&client).await;
    let tools = proxy.proxy.state.caches.tools.clone();
    assert!(
        tools.contains_key("demo"),
        "merged list cached after tools/list"
    );
    // `poke` makes the upstream emit notifications/tools/list_changed to the proxy's client
    client.call_tool(call("poke", json!({}))).await.unwrap();
    let mut dropped = false;
    for _ in 0..100 {
        if !tools.contains_key("demo") {
            dropped = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(
        dropped,
        "list_changed from the upstream must drop the cached list"
    );
    assert_eq!(names(&client).await, mock_mcp::TOOL_NAMES);
    client.cancel().await.unwrap();
    proxy.shutdown().await;
}

/// One request, one config lookup: the HTTP entry loads the instance's config to admit the
/// request and hands it to the handler, which does not look it up again.
#[tokio::test]
async fn a_request_looks_its_config_up_once() {
    let (_mock, proxy) = echo_proxy("shared", |_| {}).await;
    // 2026-07-28: each call is exactly one HTTP request (no session, no GET stream)
    let client = discover_client(&proxy.url("demo"), "demo-key-0001").await;
    assert_eq!(names(&client).await, mock_mcp::TOOL_NAMES);
    let m = proxy.proxy.state.metrics.clone();
    let lookups = || m.config_cache_hits.get() + m.config_cache_misses.get();
    let before = lookups();
    for i in 0..10 {
        let r = client
            .call_tool(call("echo", json!({ "text": format!("{i}") })))
            .await
            .unwrap();
        assert_eq!(text(&r), format!("{i}"));
    }
    assert_eq!(lookups() - before, 10, "config lookups for 10 calls");
    client.cancel().await.unwrap();
    proxy.shutdown().await;
}
