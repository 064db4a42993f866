//! Contract (issue 20, item 5): a session belongs to the key whose `initialize` opened it. Any
//! other key of the same instance gets 404 for it on POST, GET and DELETE, with the very answer
//! an unknown session gets (so sessions cannot be probed), and the owner's session goes on
//! untouched; after the owner is revoked its sessions end and stay closed to every other key.
//! On SQLite always, and on PostgreSQL too when `TEST_DATABASE_URL` is set.

mod common;

use std::time::Duration;

use common::sessions::{V, http};
use common::*;
use mcp_proxy::data::store::Revoke;
use reqwest::Method;
use serde_json::json;

/// A request with `key` (and `session`, if any) and the headers a 2025-11-25 client sends.
fn keyed(
    http: &reqwest::Client,
    method: Method,
    url: &str,
    key: &str,
    session: Option<&str>,
) -> reqwest::RequestBuilder {
    let mut rb = http
        .request(method, url)
        .header("Accept", "application/json, text/event-stream")
        .header("Content-Type", "application/json")
        .header("MCP-Protocol-Version", V)
        .header("Authorization", format!("Bearer {key}"));
    if let Some(session) = session {
        rb = rb.header("Mcp-Session-Id", session);
    }
    rb
}

fn echo_call(id: u64, text: &str) -> serde_json::Value {
    json!({ "jsonrpc": "2.0", "id": id, "method": "tools/call",
        "params": { "name": "echo", "arguments": { "text": text } } })
}

/// initialize + notifications/initialized with `key`; the session id.
async fn open_session(http: &reqwest::Client, url: &str, key: &str) -> String {
    let r = keyed(http, Method::POST, url, key, None)
        .json(&initialize_body(V))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let sid = r.headers()["mcp-session-id"].to_str().unwrap().to_string();
    rpc_json(r).await;
    let r = keyed(http, Method::POST, url, key, Some(&sid))
        .json(&json!({ "jsonrpc": "2.0", "method": "notifications/initialized" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    sid
}

/// `tools/call echo` on `session` with `key`: the echoed text.
async fn echo_on(
    http: &reqwest::Client,
    url: &str,
    key: &str,
    session: &str,
    text: &str,
) -> String {
    let r = keyed(http, Method::POST, url, key, Some(session))
        .json(&echo_call(7, text))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "the owner's call on its session");
    let answer = rpc_json(r).await;
    answer["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_else(|| panic!("no text in {answer}"))
        .to_string()
}

/// Status and body of a request with `key` on `session` (POST: a tool call).
async fn try_on(
    http: &reqwest::Client,
    method: Method,
    url: &str,
    key: &str,
    session: &str,
) -> (u16, String) {
    let rb = keyed(http, method.clone(), url, key, Some(session));
    let rb = if method == Method::POST {
        rb.json(&echo_call(9, "not yours"))
    } else {
        rb
    };
    let r = tokio::time::timeout(Duration::from_secs(10), rb.send())
        .await
        .expect("answered")
        .unwrap();
    let status = r.status().as_u16();
    // a GET that were let through would be an endless event stream: the status is enough
    let body = if status == 200 {
        String::new()
    } else {
        r.text().await.unwrap()
    };
    (status, body)
}

/// Where the tests run: SQLite always, PostgreSQL (a schema of its own) when configured.
async fn databases() -> Vec<(String, Option<common::pg::Schema>)> {
    let mut dbs = vec![("sqlite".to_string(), None)];
    if let Some(schema) = common::pg::Schema::new("k").await {
        dbs.push(("postgres".to_string(), Some(schema)));
    }
    dbs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_keys_requests_on_a_session_get_404_and_the_owner_goes_on() {
    for (label, schema) in databases().await {
        let url_db = schema.as_ref().map(|s| s.url.clone());
        let (_mock, proxy) = echo_proxy("shared", |s| {
            if let Some(url) = url_db {
                s.database_url = Some(url);
            }
        })
        .await;
        let url = proxy.url("demo");
        let other = proxy.proxy.state.create_key("demo").await.unwrap().key;
        let http = http();
        let mine = open_session(&http, &url, KEY).await;
        assert_eq!(
            echo_on(&http, &url, KEY, &mine, "one").await,
            "one",
            "{label}"
        );
        let unknown = "00000000-0000-0000-0000-000000000000";
        for method in [Method::POST, Method::GET, Method::DELETE] {
            let foreign = try_on(&http, method.clone(), &url, &other, &mine).await;
            let made_up = try_on(&http, method.clone(), &url, &other, unknown).await;
            assert_eq!(foreign.0, 404, "{label} {method}: {foreign:?}");
            assert_eq!(
                foreign, made_up,
                "{label} {method}: another key's session answers as an unknown one"
            );
            assert!(foreign.1.contains("Session not found"), "{foreign:?}");
            // the owner's session was neither used nor ended by it
            assert_eq!(
                echo_on(&http, &url, KEY, &mine, method.as_str()).await,
                method.as_str(),
                "{label}"
            );
        }
        // the other key's own session is its own, and closed to the first key
        let theirs = open_session(&http, &url, &other).await;
        assert_eq!(echo_on(&http, &url, &other, &theirs, "two").await, "two");
        let (status, _) = try_on(&http, Method::DELETE, &url, KEY, &theirs).await;
        assert_eq!(status, 404, "{label}");
        assert_eq!(
            echo_on(&http, &url, &other, &theirs, "three").await,
            "three"
        );
        // and its owner may end it
        let (status, _) = try_on(&http, Method::DELETE, &url, &other, &theirs).await;
        assert!(status == 200 || status == 202, "{label}: {status}");
        let (status, _) = try_on(&http, Method::POST, &url, &other, &theirs).await;
        assert_eq!(status, 404, "{label}: a deleted session is gone");
        proxy.shutdown().await;
        if let Some(schema) = schema {
            schema.cleanup().await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_keys_sessions_end_and_stay_closed_to_other_keys() {
    for (label, schema) in databases().await {
        let url_db = schema.as_ref().map(|s| s.url.clone());
        let mock = mock_mcp::MockServer::start(Default::default())
            .await
            .unwrap();
        let seed = http_seed(&[("echo", &mock.url(), "per-session")], "demo", KEY, "auto");
        let proxy = start_proxy(&seed, |s| {
            if let Some(url) = url_db {
                s.database_url = Some(url);
            }
        })
        .await;
        let url = proxy.url("demo");
        let state = proxy.proxy.state.clone();
        let revoked = state.create_key("demo").await.unwrap();
        let other = state.create_key("demo").await.unwrap().key;
        let http = http();
        let kept = open_session(&http, &url, &other).await;
        let first = open_session(&http, &url, &revoked.key).await;
        let second = open_session(&http, &url, &revoked.key).await;
        for s in [&first, &second] {
            assert_eq!(echo_on(&http, &url, &revoked.key, s, "up").await, "up");
        }
        assert_eq!(echo_on(&http, &url, &other, &kept, "up").await, "up");
        assert_eq!(state.session_count().await, 3, "{label}");
        assert_eq!(
            mock.counters().await.sessions_open,
            3,
            "{label}: one upstream session each"
        );

        assert!(matches!(
            state.revoke_key(&revoked.id).await.unwrap(),
            Revoke::Revoked(_)
        ));
        // the revoked key's two sessions end (their per-session upstream sessions with them)
        assert!(
            wait_for(Duration::from_secs(1), || async {
                state.session_count().await == 1 && mock.counters().await.sessions_open == 1
            })
            .await,
            "{label}: sessions {} upstream sessions {}",
            state.session_count().await,
            mock.counters().await.sessions_open
        );
        for s in [&first, &second] {
            for method in [Method::POST, Method::GET, Method::DELETE] {
                let (status, body) = try_on(&http, method.clone(), &url, &other, s).await;
                assert_eq!(status, 404, "{label} {method}: {body}");
                let (status, body) = try_on(&http, method.clone(), &url, &revoked.key, s).await;
                assert_eq!(status, 401, "{label} {method}: {body}");
                assert!(body.contains("revoked_api_key"), "{body}");
            }
        }
        assert_eq!(echo_on(&http, &url, &other, &kept, "still").await, "still");
        proxy.shutdown().await;
        mock.shutdown().await;
        if let Some(schema) = schema {
            schema.cleanup().await;
        }
    }
}

/// Polls `check` every 50 ms until it holds or `within` passes.
async fn wait_for<F, Fut>(within: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if check().await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
