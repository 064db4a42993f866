//! Contract (legacy upstreams): an upstream that speaks only the 2024-11-05 HTTP+SSE transport
//! (`transport = "sse"`: `GET` the event stream, its `endpoint` event, `POST` there) is reached
//! in every connection mode and by callers of both eras; with a token in a header template
//! (a wrong one is a refused credential); a stream cut mid-call fails that call and the next
//! one reconnects; and 500 failed connects, or 200 connections opened, used and closed, leave
//! the proxy's fds, sockets and tasks where they were: the event stream's socket and task end
//! with their connection.
//!
//! The upstream is `mock-mcp serve --legacy-sse` as its own process.

mod common;

use std::time::Duration;

use common::*;
use serde_json::json;

fn sse_url(mock: &MockProcess) -> String {
    format!("http://{}/sse", mock.addr)
}

fn sse_seed(upstreams: &[(&str, &str, &str)], extra: &str) -> String {
    let mut s = String::new();
    for (name, url, connection) in upstreams {
        s += &format!(
            "[[upstream]]\nname = \"{name}\"\ntransport = \"sse\"\nurl = \"{url}\"\nconnection = \"{connection}\"\n{extra}\n"
        );
    }
    let names: Vec<String> = upstreams.iter().map(|u| format!("\"{}\"", u.0)).collect();
    s + &format!(
        "[[instance]]\nid = \"demo\"\nupstreams = [{}]\napi_keys = [\"{KEY}\"]\nprefix = \"always\"\n",
        names.join(", ")
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_reach_a_legacy_sse_upstream_in_every_mode_and_era() {
    let mock = MockProcess::serve(&["--legacy-sse"]).await;
    let url = sse_url(&mock);
    let seed = sse_seed(
        &[
            ("shared", &url, "shared"),
            ("session", &url, "per-session"),
            ("each", &url, "per-request"),
        ],
        "",
    );
    let proxy = start_proxy(&seed, |_| {}).await;
    let sessions = client(&proxy.url("demo"), KEY).await;
    let stateless = discover_client(&proxy.url("demo"), KEY).await;
    for (era, c) in [("2025-11-25", &sessions), ("2026-07-28", &stateless)] {
        for tool in ["shared__echo", "session__echo", "each__echo"] {
            let said = format!("{tool} over legacy SSE, {era}");
            let r = c
                .call_tool(call(tool, json!({ "text": said })))
                .await
                .unwrap_or_else(|e| panic!("{era} {tool}: {e}"));
            assert_eq!(text(&r), said);
        }
        let r = c
            .call_tool(call("shared__add", json!({ "a": 2, "b": 3 })))
            .await
            .unwrap();
        assert_eq!(text(&r), "5", "{era}");
    }
    let tools = sessions.list_all_tools().await.unwrap();
    assert!(tools.iter().any(|t| t.name == "each__sleep"), "{tools:?}");
    assert!(mock.counters().await["calls"].as_u64().unwrap() >= 8);
    sessions.cancel().await.unwrap();
    stateless.cancel().await.unwrap();
    proxy.shutdown().await;
    // the proxy's shutdown closed every stream it held
    let open = mock.wait_sessions_open(0).await;
    assert_eq!(open, 0, "every legacy SSE session ended with the proxy");
    mock.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_in_a_header_template_reaches_a_legacy_sse_upstream() {
    let mock = MockProcess::serve(&[
        "--legacy-sse",
        "--require-header",
        "Authorization: Bearer sse-tok",
    ])
    .await;
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("k");
    std::fs::write(&key, mcp_proxy::domain::secrets::SecretKey::generate()).unwrap();
    let url = sse_url(&mock);
    let seed = format!(
        "[[upstream]]\nname = \"old\"\ntransport = \"sse\"\nurl = \"{url}\"\n\
         headers = {{ Authorization = \"Bearer ${{TOKEN}}\" }}\n\n\
         [[instance]]\nid = \"good\"\nupstreams = [\"old\"]\napi_keys = [\"{KEY}\"]\n\
         secrets = {{ TOKEN = \"sse-tok\" }}\n\n\
         [[instance]]\nid = \"bad\"\nupstreams = [\"old\"]\napi_keys = [\"key-bad-0000001\"]\n\
         secrets = {{ TOKEN = \"wrong\" }}\n"
    );
    let proxy = start_proxy(&seed, |s| s.secret_key.secret_key_file = Some(key)).await;
    let good = client(&proxy.url("good"), KEY).await;
    let r = good
        .call_tool(call("echo", json!({ "text": "authorized" })))
        .await
        .unwrap();
    assert_eq!(text(&r), "authorized");
    let bad = client(&proxy.url("bad"), "key-bad-0000001").await;
    let e = rpc_error(
        bad.call_tool(call("echo", json!({ "text": "x" })))
            .await
            .unwrap_err(),
    );
    assert!(
        e.message
            .contains("upstream \"old\" refused the credential (HTTP 401)"),
        "{}",
        e.message
    );
    good.cancel().await.unwrap();
    bad.cancel().await.unwrap();
    proxy.shutdown().await;
    mock.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_cut_mid_call_fails_that_call_and_the_next_reconnects() {
    let mock = MockProcess::serve(&["--legacy-sse"]).await;
    let seed = sse_seed(&[("old", &sse_url(&mock), "shared")], "");
    let proxy = start_proxy(&seed, |s| s.call_timeout = Duration::from_secs(5)).await;
    let c = client(&proxy.url("demo"), KEY).await;
    assert_eq!(
        text(
            &c.call_tool(call("old__echo", json!({ "text": "a" })))
                .await
                .unwrap()
        ),
        "a"
    );
    mock.set_faults(&["disconnect-mid-call"]).await;
    let e = rpc_error(
        c.call_tool(call("old__echo", json!({ "text": "cut" })))
            .await
            .unwrap_err(),
    );
    assert!(e.message.contains("upstream \"old\""), "{}", e.message);
    mock.set_faults(&[]).await;
    let r = c
        .call_tool(call("old__echo", json!({ "text": "again" })))
        .await
        .unwrap();
    assert_eq!(text(&r), "again");
    c.cancel().await.unwrap();
    proxy.shutdown().await;
    mock.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_and_finished_sse_connections_leave_nothing_behind() {
    let mock = MockProcess::serve(&["--legacy-sse"]).await;
    let url = sse_url(&mock);
    let seed = sse_seed(&[("old", &url, "per-request")], "");
    let proxy = start_proxy(&seed, |s| s.breaker_threshold = 0).await;
    let c = unpooled_client(&proxy.url("demo"), KEY).await;
    assert_eq!(
        text(
            &c.call_tool(call("old__echo", json!({ "text": "warm" })))
                .await
                .unwrap()
        ),
        "warm"
    );
    let baseline = stable_resources().await;

    mock.set_faults(&["init-error"]).await;
    let (failed, peak) = drive(500, 10, |_| {
        let c = &c;
        async move {
            c.call_tool(call("old__echo", json!({ "text": "x" })))
                .await
                .unwrap_err()
        }
    })
    .await;
    let first = rpc_error(failed.into_iter().next().unwrap());
    assert!(
        first.message.contains("upstream \"old\": connect failed"),
        "{}",
        first.message
    );
    eprintln!("peak during 500 failed SSE connects: {}", peak.line());

    mock.set_faults(&[]).await;
    let (done, peak) = drive(200, 10, |i| {
        let c = &c;
        async move {
            let said = format!("sse {i}");
            let r = c
                .call_tool(call("old__echo", json!({ "text": said })))
                .await
                .unwrap();
            text(&r) == said
        }
    })
    .await;
    assert!(done.into_iter().all(|ok| ok));
    eprintln!("peak during 200 SSE connections: {}", peak.line());
    let settled = settle_within(&baseline, Duration::from_secs(25)).await;
    settled.assert_no_growth_over(
        &baseline,
        "after 500 failed and 200 finished SSE connections",
    );
    c.cancel().await.unwrap();
    proxy.shutdown().await;
    mock.stop().await;
}
