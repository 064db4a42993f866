//! Contract: a key is accepted from Bearer, X-API-Key or ?api_key=; missing, wrong and revoked
//! keys get 401 with a JSON body; a key never opens another instance (404, like an unknown
//! instance, so instance ids cannot be probed).

mod common;

use common::*;
use mock_mcp::{MockConfig, MockServer};
use reqwest::StatusCode;

const SEED_EXTRA: &str = r#"
[[instance]]
id = "other"
upstreams = ["echo"]
api_keys = ["other-key-0001"]
"#;

async fn setup() -> (MockServer, TestProxy) {
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    let seed = http_seed(
        &[("echo", &mock.url(), "shared")],
        "demo",
        "demo-key-0001",
        "auto",
    ) + SEED_EXTRA;
    let proxy = start_proxy(&seed, |_| {}).await;
    (mock, proxy)
}

async fn status_and_body(rb: reqwest::RequestBuilder) -> (StatusCode, serde_json::Value) {
    let r = rb
        .json(&initialize_body("2025-11-25"))
        .send()
        .await
        .unwrap();
    let status = r.status();
    let body = if status.is_success() {
        rpc_json(r).await
    } else {
        r.json().await.unwrap_or(serde_json::Value::Null)
    };
    (status, body)
}

#[tokio::test]
async fn key_is_accepted_from_each_place() {
    let (_mock, proxy) = setup().await;
    let url = proxy.url("demo");
    let (s, body) = status_and_body(post(&url, Some("demo-key-0001"))).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(body["result"]["serverInfo"]["name"], "mcp-proxy");
    let (s, _) = status_and_body(post(&url, None).header("X-API-Key", "demo-key-0001")).await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = status_and_body(post(&format!("{url}?api_key=demo-key-0001"), None)).await;
    assert_eq!(s, StatusCode::OK);
    proxy.shutdown().await;
}

#[tokio::test]
async fn bad_keys_get_401_and_foreign_keys_404() {
    let (_mock, proxy) = setup().await;
    let url = proxy.url("demo");
    let (s, body) = status_and_body(post(&url, None)).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"], "missing_api_key");
    let (s, body) = status_and_body(post(&url, Some("wrong-key-0001"))).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"], "invalid_api_key");
    // a valid key of another instance: 404, exactly as for an instance that does not exist
    let (s, body) = status_and_body(post(&url, Some("other-key-0001"))).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(body["error"], "not_found");
    let (s2, body2) = status_and_body(post(&proxy.url("nope"), Some("other-key-0001"))).await;
    assert_eq!((s2, body2), (s, body));
    // an unknown instance without a key reveals nothing either: 401
    let (s, _) = status_and_body(post(&proxy.url("nope"), None)).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    proxy.shutdown().await;
}

#[tokio::test]
async fn revoked_key_gets_401_once_the_cache_entry_expires() {
    let (_mock, proxy) = echo_proxy("shared", |s| {
        s.auth_cache_ttl = std::time::Duration::from_millis(200)
    })
    .await;
    let url = proxy.url("demo");
    let store = &proxy.proxy.state.store;
    let created = store.create_key("demo").await.unwrap();
    let (s, _) = status_and_body(post(&url, Some(&created.key))).await;
    assert_eq!(s, StatusCode::OK);
    assert!(matches!(
        store.revoke_key(&created.id).await.unwrap(),
        mcp_proxy::data::store::Revoke::Revoked(_)
    ));
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let (s, body) = status_and_body(post(&url, Some(&created.key))).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"], "revoked_api_key");
    proxy.shutdown().await;
}

#[tokio::test]
async fn auth_is_cached_and_usage_is_written_behind() {
    let (_mock, proxy) = echo_proxy("shared", |s| {
        s.usage_flush_interval = std::time::Duration::from_millis(200)
    })
    .await;
    let created = proxy.proxy.state.store.create_key("demo").await.unwrap();
    let started = tokio::time::Instant::now();
    for _ in 0..20 {
        let (s, _) = status_and_body(post(&proxy.url("demo"), Some(&created.key))).await;
        assert_eq!(s, StatusCode::OK);
    }
    let m = &proxy.proxy.state.metrics;
    assert_eq!(
        m.auth_cache_misses.get(),
        1,
        "one key lookup for 20 requests"
    );
    assert_eq!(m.auth_cache_hits.get(), 19);
    let store = proxy.proxy.state.store.clone();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
    while store.key_last_used(&created.id).await.unwrap().is_none() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "last_used_at never written"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let text = metrics_text(&proxy).await;
    let touches = text
        .lines()
        .find(|l| l.starts_with("mcp_proxy_db_queries_total{query=\"touch_keys\"}"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(0.0);
    // written behind: at most one write per flush interval that saw a request (plus the one
    // in flight), however long the 20 requests took on a loaded machine; never one per request
    let intervals = (started.elapsed().as_millis() / 200) as f64;
    assert!(
        touches >= 1.0 && touches <= intervals + 2.0 && touches < 20.0,
        "20 requests in {} flush intervals must not mean 20 writes: {touches}",
        intervals
    );
    proxy.shutdown().await;
}
