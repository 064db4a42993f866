//! Host and Origin are checked as the MCP transport spec requires against DNS rebinding: a
//! request outside the allowed hosts or origins gets 403 before its key is looked at, valid
//! key or not; requests without `Origin` (not from a browser) pass; both lists are settings.

mod common;

use common::*;
use reqwest::StatusCode;
use serde_json::Value;

async fn initialize(url: &str, headers: &[(&str, &str)]) -> (StatusCode, Value) {
    let mut rb = post(url, Some(KEY)).json(&initialize_body("2025-11-25"));
    for (k, v) in headers {
        rb = rb.header(*k, *v);
    }
    let r = rb.send().await.unwrap();
    let status = r.status();
    let body = if status.is_success() {
        rpc_json(r).await
    } else {
        r.json().await.unwrap_or(Value::Null)
    };
    (status, body)
}

#[tokio::test]
async fn loopback_by_default_and_403_outside_even_with_a_valid_key() {
    let (_mock, proxy) = echo_proxy("shared", |_| {}).await;
    let url = proxy.url("demo");
    let port = proxy.proxy.addr.port();

    let (status, body) = initialize(&url, &[]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["result"]["capabilities"]["tools"].is_object());
    let localhost = format!("localhost:{port}");
    let (status, _) = initialize(&url, &[("Host", &localhost)]).await;
    assert_eq!(status, StatusCode::OK, "localhost is loopback");

    let (status, body) = initialize(&url, &[("Host", "evil.example")]).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["error"], "forbidden_host");
    assert!(
        body["message"].as_str().unwrap().contains("evil.example"),
        "{body}"
    );
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("--allowed-hosts"),
        "{body}"
    );

    let (status, body) = initialize(&url, &[("Origin", "http://evil.example")]).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["error"], "forbidden_origin");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("--allowed-origins"),
        "{body}"
    );
    let (status, _) = initialize(&url, &[("Origin", "null")]).await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "an opaque origin is not loopback"
    );
    let (status, _) = initialize(&url, &[("Origin", "http://localhost:5173")]).await;
    assert_eq!(status, StatusCode::OK, "a local web client");

    // refused before authentication: no key lookup, the same 403 without a key
    let r = reqwest::Client::new()
        .post(&url)
        .header("Host", "evil.example")
        .header("Accept", "application/json, text/event-stream")
        .json(&initialize_body("2025-11-25"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let m = metrics_text(&proxy).await;
    assert_eq!(
        metric_value(
            &m,
            "mcp_proxy_requests_total",
            &[("method", "origin"), ("outcome", "refused")]
        ),
        Some(4.0),
        "{m}"
    );
    proxy.shutdown().await;
}

#[tokio::test]
async fn a_public_deployment_lists_its_host_and_web_origins() {
    let (_mock, proxy) = echo_proxy("shared", |s| {
        s.allowed_hosts = vec!["mcp.example.com".into()];
        s.allowed_origins = vec!["https://app.example.com".into()];
    })
    .await;
    let url = proxy.url("demo");
    let (status, body) = initialize(&url, &[("Host", "mcp.example.com")]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _) = initialize(
        &url,
        &[
            ("Host", "mcp.example.com"),
            ("Origin", "https://app.example.com"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = initialize(
        &url,
        &[
            ("Host", "mcp.example.com"),
            ("Origin", "https://app.example.com:8443"),
        ],
    )
    .await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "another port is another origin"
    );
    let (status, body) = initialize(&url, &[]).await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "loopback is no longer listed: {body}"
    );
    proxy.shutdown().await;
}
