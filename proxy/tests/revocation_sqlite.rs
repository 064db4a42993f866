//! Contract (issue 20, item 4): on SQLite, a change written by another process (the
//! `mcp-proxy` CLI beside a running `serve`) reaches the server's caches within a second,
//! although the auth cache keeps entries for 30 s: a revoked key is refused (401) and the
//! sessions it opened end (their per-session upstream sessions closed); a key added by the CLI
//! is accepted at once, also after it was refused as unknown. The server's own writes (the
//! `last_used_at` flush, the admin path) move SQLite's `data_version` too but invalidate
//! nothing more than the admin path did at once, and the watcher stops at shutdown.

mod common;

use std::time::Duration;

use common::sessions::V;
use common::*;
use reqwest::StatusCode;
use tokio::time::Instant;

/// A change written elsewhere must be served within this.
const WITHIN: Duration = Duration::from_secs(1);

/// Runs the `mcp-proxy` CLI on `db`; stdout and stderr.
async fn cli(args: &[&str], db: &str) -> (String, String) {
    let out = tokio::process::Command::new(proxy_bin())
        .args(args)
        .args(["--database-url", db])
        .output()
        .await
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert!(out.status.success(), "{args:?}: {stderr}");
    (stdout, stderr)
}

/// `keys create` by the CLI: (key, key id).
async fn cli_create_key(db: &str) -> (String, String) {
    let (stdout, stderr) = cli(&["keys", "create", "--instance", "demo"], db).await;
    let id = stderr
        .split_whitespace()
        .find(|w| w.starts_with("key_"))
        .expect("keys create names the key id")
        .trim_end_matches([',', ';', '.'])
        .to_string();
    (stdout.trim().to_string(), id)
}

/// The status an `initialize` with `key` gets.
async fn initialize_status(url: &str, key: &str) -> StatusCode {
    post(url, Some(key))
        .json(&initialize_body(V))
        .send()
        .await
        .unwrap()
        .status()
}

/// Polls `check` every 50 ms from `since` until it holds or [`WITHIN`] has passed since then;
/// how long it took.
async fn within_a_second<F, Fut>(since: Instant, mut check: F) -> Option<Duration>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    loop {
        if check().await {
            return Some(since.elapsed());
        }
        if since.elapsed() >= WITHIN {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn db_url(proxy: &TestProxy) -> String {
    format!("sqlite://{}", proxy.dir.path().join("proxy.db").display())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_revoked_by_the_cli_is_refused_within_a_second_and_its_sessions_end() {
    let mock = mock_mcp::MockServer::start(Default::default())
        .await
        .unwrap();
    let seed = http_seed(&[("echo", &mock.url(), "per-session")], "demo", KEY, "auto");
    // the default auth TTL (30 s): only the change watcher explains a refusal within a second
    let proxy = start_proxy(&seed, |_| {}).await;
    assert_eq!(
        proxy.proxy.state.settings.auth_cache_ttl,
        Duration::from_secs(30)
    );
    let (db, url, state) = (db_url(&proxy), proxy.url("demo"), proxy.proxy.state.clone());
    let (key, id) = cli_create_key(&db).await;
    let session = client(&url, &key).await;
    session
        .call_tool(call("echo", serde_json::json!({ "text": "hi" })))
        .await
        .unwrap();
    let kept = client(&url, KEY).await;
    kept.call_tool(call("echo", serde_json::json!({ "text": "hi" })))
        .await
        .unwrap();
    assert_eq!(state.session_count().await, 2);
    assert_eq!(mock.counters().await.sessions_open, 2);
    assert_eq!(
        initialize_status(&url, &key).await,
        StatusCode::OK,
        "cached as valid"
    );

    let (stdout, _) = cli(&["keys", "revoke", &id], &db).await;
    assert!(stdout.contains("revoked"), "{stdout}");
    let revoked_at = Instant::now();
    let refused = within_a_second(revoked_at, || async {
        initialize_status(&url, &key).await == StatusCode::UNAUTHORIZED
    })
    .await;
    assert!(
        refused.is_some(),
        "the revoked key still opens sessions after 1 s"
    );
    let ended = within_a_second(revoked_at, || async {
        state.session_count().await == 1 && mock.counters().await.sessions_open == 1
    })
    .await;
    assert!(
        ended.is_some(),
        "the revoked key's session still open after 1 s: sessions {}, upstream sessions {}",
        state.session_count().await,
        mock.counters().await.sessions_open
    );
    eprintln!("refused after {refused:?}, session ended after {ended:?}");
    assert!(
        session
            .call_tool(call("echo", serde_json::json!({ "text": "hi" })))
            .await
            .is_err(),
        "a revoked key's session is gone"
    );
    // the other key's session is untouched
    kept.call_tool(call("echo", serde_json::json!({ "text": "still" })))
        .await
        .unwrap();
    drop(session);
    kept.cancel().await.unwrap();
    proxy.shutdown().await;
    mock.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_added_by_the_cli_are_accepted_at_once_even_after_a_refusal() {
    let (_mock, proxy) = echo_proxy("shared", |_| {}).await;
    let (db, url) = (db_url(&proxy), proxy.url("demo"));
    // a key the server has just refused is cached as unknown (for 30 s) ...
    let late = "late-key-0002";
    assert_eq!(
        initialize_status(&url, late).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        initialize_status(&url, late).await,
        StatusCode::UNAUTHORIZED
    );
    // ... until the CLI seeds it
    let seed = proxy.dir.path().join("late.toml");
    let text = std::fs::read_to_string(proxy.dir.path().join("seed.toml")).unwrap();
    std::fs::write(&seed, text.replace(KEY, late)).unwrap();
    cli(&["seed", seed.to_str().unwrap()], &db).await;
    let seeded_at = Instant::now();
    let accepted = within_a_second(seeded_at, || async {
        initialize_status(&url, late).await == StatusCode::OK
    })
    .await;
    assert!(
        accepted.is_some(),
        "a seeded key refused 1 s after the seed"
    );
    // a key created by the CLI works on its first request
    let (key, _) = cli_create_key(&db).await;
    assert_eq!(initialize_status(&url, &key).await, StatusCode::OK);
    proxy.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_own_writes_are_not_applied_again_and_the_watcher_stops_at_shutdown() {
    let (_mock, proxy) = echo_proxy("shared", |s| {
        s.usage_flush_interval = Duration::from_millis(100);
    })
    .await;
    let url = proxy.url("demo");
    let state = proxy.proxy.state.clone();
    let m = state.metrics.clone();
    let query = |name: &str| {
        m.db_queries
            .get_or_create(&mcp_proxy::ops::metrics::Query { query: name.into() })
            .get()
    };
    let text = metrics_text(&proxy).await;
    let invalidations = |text: &str| {
        ["key", "instance", "all"]
            .iter()
            .map(|k| {
                metric_value(text, "mcp_proxy_invalidations_total", &[("kind", k)]).unwrap_or(0.0)
            })
            .sum::<f64>()
    };
    let before = invalidations(&text);
    assert_eq!(initialize_status(&url, KEY).await, StatusCode::OK);
    let misses = m.config_cache_misses.get();
    let (touches, reads) = (query("touch_keys"), query("changes"));
    // requests for 1.5 s: each flush interval that saw one writes last_used_at
    let until = Instant::now() + Duration::from_millis(1500);
    let mut requests = 0;
    while Instant::now() < until {
        assert_eq!(initialize_status(&url, KEY).await, StatusCode::OK);
        requests += 1;
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        query("touch_keys") >= touches + 2,
        "last_used_at was flushed"
    );
    assert!(
        query("changes") > reads,
        "the watcher saw data_version move with the flushes and read the change log"
    );
    assert_eq!(
        m.config_cache_misses.get(),
        misses,
        "no config reload across {requests} requests and the flushes"
    );
    assert_eq!(
        invalidations(&metrics_text(&proxy).await),
        before,
        "nothing invalidated"
    );
    // a key created on the admin path is applied once, when written, not again when read back
    state.create_key("demo").await.unwrap();
    let reads = query("changes");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(query("changes") > reads, "the watcher read its own row");
    assert_eq!(
        invalidations(&metrics_text(&proxy).await),
        before + 1.0,
        "our own change applied once"
    );
    proxy.shutdown().await;
    assert_eq!(
        state.tracker.len(),
        0,
        "every background task ended, the watcher too"
    );
    let polls = query("data_version");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(query("data_version"), polls, "no poll after shutdown");
}
