//! Contract (issue 10, "Proxy"): behind a balancer, a request can reach a replica that does
//! not know its session (another replica opened it, or this one restarted). It gets 404, the
//! spec's signal to re-initialize, never a 5xx; the client re-initializes on this replica and
//! goes on. 2026-07-28 requests carry no session and are served by any replica. Near the
//! memory bound (`--memory-limit-mib`) a replica sheds load: `/ready` is 503 and new sessions
//! get 503 + `Retry-After`, while sessionless requests are still served.

mod common;

use common::sessions::*;
use common::*;
use serde_json::json;

fn tool_call(id: u64, text: &str) -> serde_json::Value {
    json!({ "jsonrpc": "2.0", "id": id, "method": "tools/call",
        "params": { "name": "echo", "arguments": { "text": text } } })
}

#[tokio::test]
async fn a_session_this_replica_does_not_know_gets_404_and_re_initializes_here() {
    // two replicas of one deployment: same upstream, same instance and key
    let mock = mock_mcp::MockServer::start(Default::default())
        .await
        .unwrap();
    let seed = http_seed(&[("echo", &mock.url(), "shared")], "demo", KEY, "auto");
    let a = start_proxy(&seed, |_| {}).await;
    let b = start_proxy(&seed, |_| {}).await;
    let http = http();
    let on_a = open_session(&http, &a.url("demo")).await;
    let url_b = b.url("demo");
    // POST, GET and DELETE with A's session at B: 404 each, with a body that says why
    let r = rb(&http, reqwest::Method::POST, &url_b)
        .header("Mcp-Session-Id", &on_a)
        .header("MCP-Protocol-Version", V)
        .json(&tool_call(2, "lost"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert!(r.text().await.unwrap().contains("Session not found"));
    for method in [reqwest::Method::GET, reqwest::Method::DELETE] {
        let r = rb(&http, method.clone(), &url_b)
            .header("Mcp-Session-Id", &on_a)
            .header("MCP-Protocol-Version", V)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404, "{method}");
    }
    // a made-up session id, and one with bytes no session id has: 404 (or 400), never 5xx
    for sid in ["no-such-session", "x".repeat(300).as_str(), "\u{7f}"] {
        let r = rb(&http, reqwest::Method::POST, &url_b)
            .header("Mcp-Session-Id", sid)
            .header("MCP-Protocol-Version", V)
            .json(&tool_call(3, "made up"))
            .send()
            .await;
        let Ok(r) = r else { continue }; // reqwest refuses to send an invalid header value
        assert!(
            r.status() == 404 || r.status() == 400,
            "{sid:?}: {}",
            r.status()
        );
    }
    // re-initialize on B and carry on; A's session still works on A
    let on_b = open_session(&http, &url_b).await;
    assert_ne!(on_a, on_b);
    let r = rb(&http, reqwest::Method::POST, &url_b)
        .header("Mcp-Session-Id", &on_b)
        .header("MCP-Protocol-Version", V)
        .json(&tool_call(4, "on b"))
        .send()
        .await
        .unwrap();
    assert_eq!(rpc_json(r).await["result"]["content"][0]["text"], "on b");
    let r = rb(&http, reqwest::Method::POST, &a.url("demo"))
        .header("Mcp-Session-Id", &on_a)
        .header("MCP-Protocol-Version", V)
        .json(&tool_call(5, "on a"))
        .send()
        .await
        .unwrap();
    assert_eq!(rpc_json(r).await["result"]["content"][0]["text"], "on a");
    // 2026-07-28: no session, no stickiness: either replica answers the same request
    for p in [&a, &b] {
        let d = discover_client(&p.url("demo"), KEY).await;
        let r = d
            .call_tool(call("echo", json!({ "text": "anywhere" })))
            .await
            .unwrap();
        assert_eq!(text(&r), "anywhere");
    }
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn near_the_memory_bound_a_replica_is_not_ready_and_refuses_new_sessions() {
    // a 1 MiB bound: the process is over 90 % of it from the start
    let (_mock, proxy) = echo_proxy("shared", |s| s.memory_limit_mib = 1).await;
    let http = http();
    let ready = http
        .get(format!("{}/ready", proxy.base()))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 503);
    let body: serde_json::Value = ready.json().await.unwrap();
    assert_eq!(body["error"], "memory_pressure", "{body}");
    let url = proxy.url("demo");
    let r = rb(&http, reqwest::Method::POST, &url)
        .json(&initialize_body(V))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    assert_eq!(r.headers()["retry-after"], "5");
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"], "memory_pressure", "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("--memory-limit-mib")
    );
    // sessionless requests are still served
    let d = discover_client(&url, KEY).await;
    let r = d
        .call_tool(call("echo", json!({ "text": "still served" })))
        .await
        .unwrap();
    assert_eq!(text(&r), "still served");
    let m = metrics_text(&proxy).await;
    assert!(m.contains("mcp_proxy_memory_pressure 1"), "{m}");
    assert!(m.contains("mcp_proxy_memory_limit_bytes 1048576"), "{m}");
    let rss: f64 = m
        .lines()
        .find_map(|l| l.strip_prefix("mcp_proxy_rss_bytes "))
        .expect("rss gauge")
        .parse()
        .unwrap();
    assert!(rss > 1048576.0, "{rss}");
    proxy.shutdown().await;
}

#[tokio::test]
async fn under_the_default_bound_a_replica_is_ready_and_reports_its_memory() {
    let (_mock, proxy) = echo_proxy("shared", |_| {}).await;
    let r = http()
        .get(format!("{}/ready", proxy.base()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let m = metrics_text(&proxy).await;
    assert!(m.contains("mcp_proxy_memory_pressure 0"), "{m}");
    assert!(
        m.contains(&format!("mcp_proxy_memory_limit_bytes {}", 1024u64 << 20)),
        "{m}"
    );
    let http = http();
    open_session(&http, &proxy.url("demo")).await;
    proxy.shutdown().await;
}
