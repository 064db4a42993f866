//! Raw-HTTP downstream sessions (2025-11-25 era) for the session tests.
#![allow(dead_code)]

use serde_json::json;

use super::{KEY, initialize_body, rpc_json};

pub const V: &str = "2025-11-25";

pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap()
}

pub fn rb(http: &reqwest::Client, method: reqwest::Method, url: &str) -> reqwest::RequestBuilder {
    http.request(method, url)
        .header("Accept", "application/json, text/event-stream")
        .header("Content-Type", "application/json")
        .header("Authorization", format!("Bearer {KEY}"))
}

/// initialize + notifications/initialized over raw HTTP; returns the session id.
pub async fn open_session(http: &reqwest::Client, url: &str) -> String {
    let r = rb(http, reqwest::Method::POST, url)
        .json(&initialize_body(V))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let sid = r.headers()["mcp-session-id"].to_str().unwrap().to_string();
    rpc_json(r).await;
    let r = rb(http, reqwest::Method::POST, url)
        .header("Mcp-Session-Id", &sid)
        .header("MCP-Protocol-Version", V)
        .json(&json!({ "jsonrpc": "2.0", "method": "notifications/initialized" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    sid
}
