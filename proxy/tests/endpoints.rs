//! Contract: `/health`, `/ready` and `/metrics` (SPEC metric names), protocol version
//! negotiation for older clients, and the session gauge following real sessions.

mod common;

use common::*;
use reqwest::StatusCode;
use rmcp::model::ProtocolVersion;

fn sample(text: &str, name: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no sample {name}"))
}

#[tokio::test]
async fn health_ready_and_metrics() {
    let (_mock, proxy) = echo_proxy("shared", |_| {}).await;
    let health = reqwest::get(format!("{}/health", proxy.base()))
        .await
        .unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    let ready = reqwest::get(format!("{}/ready", proxy.base()))
        .await
        .unwrap();
    assert_eq!(ready.status(), StatusCode::OK);

    let c1 = client(&proxy.url("demo"), "demo-key-0001").await;
    let c2 = client(&proxy.url("demo"), "demo-key-0001").await;
    c1.call_tool(call("echo", serde_json::json!({ "text": "x" })))
        .await
        .unwrap();
    let text = metrics_text(&proxy).await;
    for name in [
        "mcp_proxy_requests_total",
        "mcp_proxy_request_duration_seconds",
        "mcp_proxy_inflight_requests",
        "mcp_proxy_sessions",
        "mcp_proxy_upstream_connections",
        "mcp_proxy_upstream_connects_total",
        "mcp_proxy_config_cache_hits_total",
        "mcp_proxy_config_cache_misses_total",
        "mcp_proxy_auth_cache_hits_total",
        "mcp_proxy_auth_cache_misses_total",
        "mcp_proxy_db_queries_total",
        "mcp_proxy_db_pool_size",
        "mcp_proxy_db_pool_idle",
        "mcp_proxy_tokio_alive_tasks",
        "mcp_proxy_open_fds",
        "mcp_proxy_child_processes",
        // beyond the SPEC's list, read by the harness and by operators
        "mcp_proxy_invalidation_listener_up",
        "mcp_proxy_rss_bytes",
        "mcp_proxy_memory_limit_bytes",
        "mcp_proxy_memory_pressure",
    ] {
        assert!(text.contains(name), "{name} missing from /metrics:\n{text}");
    }
    assert_eq!(sample(&text, "mcp_proxy_sessions"), 2.0);
    assert!(
        text.contains("mcp_proxy_requests_total{method=\"initialize\",outcome=\"ok\"} 2"),
        "{text}"
    );
    assert!(
        text.contains("mcp_proxy_requests_total{method=\"tools/call\",outcome=\"ok\"} 1"),
        "{text}"
    );
    assert!(text.contains("mcp_proxy_upstream_connections{upstream=\"echo\",state=\"active\"} 1"));
    assert!(sample(&text, "mcp_proxy_open_fds") > 0.0);
    assert!(sample(&text, "mcp_proxy_tokio_alive_tasks") > 0.0);
    c1.cancel().await.unwrap();
    c2.cancel().await.unwrap();
    let ok = async {
        for _ in 0..100 {
            if sample(&metrics_text(&proxy).await, "mcp_proxy_sessions") == 0.0 {
                return true;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        false
    };
    assert!(ok.await, "DELETE ends the sessions");
    proxy.shutdown().await;
}

#[tokio::test]
async fn older_clients_get_their_protocol_version() {
    let (_mock, proxy) = echo_proxy("shared", |_| {}).await;
    for version in ["2025-11-25", "2025-06-18", "2025-03-26"] {
        let r = post(&proxy.url("demo"), Some("demo-key-0001"))
            .json(&initialize_body(version))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let body = rpc_json(r).await;
        assert_eq!(body["result"]["protocolVersion"], version, "{body}");
        assert!(body["result"]["capabilities"]["tools"].is_object());
    }
    // and they work end to end: list and call through the proxy
    for version in [ProtocolVersion::V_2025_06_18, ProtocolVersion::V_2025_03_26] {
        let old = client_of_version(&proxy.url("demo"), KEY, version.clone()).await;
        assert_eq!(old.peer_info().unwrap().protocol_version, version);
        assert_eq!(
            old.list_all_tools().await.unwrap().len(),
            mock_mcp::TOOL_NAMES.len()
        );
        let r = old
            .call_tool(call("echo", serde_json::json!({ "text": "old" })))
            .await
            .unwrap();
        assert_eq!(text(&r), "old");
        old.cancel().await.unwrap();
    }
    // a version the proxy does not know: it answers with one it supports (the client decides)
    let r = post(&proxy.url("demo"), Some("demo-key-0001"))
        .json(&initialize_body("1999-01-01"))
        .send()
        .await
        .unwrap();
    let body = rpc_json(r).await;
    let got = body["result"]["protocolVersion"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(got.starts_with("20"), "{body}");
    proxy.shutdown().await;
}
