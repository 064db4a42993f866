//! Contract: a refused key leaves a log line (instance, reason, the key's fingerprint, the
//! client's address; never the key), at most one a second per reason, and every refusal is
//! accounted for (logged, or counted in the next line's `held_back`). An unknown key is cached:
//! repeating it costs one database query; a key added later is accepted at once.

mod common;

use common::*;
use reqwest::StatusCode;
use tokio::io::AsyncBufReadExt;

async fn status(url: &str, key: Option<&str>) -> StatusCode {
    post(url, key)
        .json(&initialize_body("2025-11-25"))
        .send()
        .await
        .unwrap()
        .status()
}

fn fingerprint(key: &str) -> String {
    hex::encode(&mcp_proxy::domain::keys::hash_key(key)[..4])
}

/// The JSON log line's fields if it is a refusal.
fn refusal(line: &str) -> Option<serde_json::Value> {
    let json: serde_json::Value = serde_json::from_str(line).ok()?;
    let fields = json.get("fields")?;
    fields["reason"].is_string().then(|| fields.clone())
}

#[tokio::test]
async fn refused_keys_are_logged_without_the_key_at_most_once_a_second() {
    let dir = tempfile::tempdir().unwrap();
    let mock = mock_mcp::MockServer::start(Default::default())
        .await
        .unwrap();
    let seed = dir.path().join("seed.toml");
    std::fs::write(
        &seed,
        http_seed(&[("echo", &mock.url(), "shared")], "demo", KEY, "auto"),
    )
    .unwrap();
    let port = free_port();
    let mut child = proxy_serve_command(dir.path(), &seed, port)
        .args(["--log-format", "json"])
        .env_remove("RUST_LOG")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
    wait_for_log(&mut lines, "listening").await;
    let url = format!("http://127.0.0.1:{port}/mcp/demo");

    let wrong = "wrong-key-do-not-log-0001";
    let sent = 50;
    let started = std::time::Instant::now();
    for _ in 0..sent {
        assert_eq!(status(&url, Some(wrong)).await, StatusCode::UNAUTHORIZED);
    }
    let took = started.elapsed();
    // once the second is over, one more refusal reports the ones held back
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let last = "last-wrong-key-0002";
    assert_eq!(status(&url, Some(last)).await, StatusCode::UNAUTHORIZED);
    assert_eq!(status(&url, None).await, StatusCode::UNAUTHORIZED);

    let mut seen = Vec::new();
    let mut missing = None;
    while missing.is_none()
        || !seen
            .iter()
            .any(|f: &serde_json::Value| f["key"] == fingerprint(last))
    {
        let line = wait_for_log(&mut lines, "\"reason\"").await;
        assert!(
            !line.contains(wrong) && !line.contains(last),
            "a key in the log: {line}"
        );
        let fields = refusal(&line).expect("a refusal line");
        match fields["reason"].as_str().unwrap() {
            "invalid_api_key" => seen.push(fields),
            "missing_api_key" => missing = Some(fields),
            other => panic!("unexpected reason {other}: {line}"),
        }
    }
    for fields in &seen {
        assert_eq!(fields["instance"], "demo", "{fields}");
        assert_eq!(fields["client"], "127.0.0.1", "{fields}");
    }
    assert_eq!(seen[0]["key"], fingerprint(wrong));
    assert_eq!(seen[0]["held_back"], 0);
    // every refusal accounted for: logged, or held back and counted in a later line
    let accounted: u64 = seen
        .iter()
        .map(|f| 1 + f["held_back"].as_u64().unwrap())
        .sum();
    assert_eq!(accounted, sent + 1, "{seen:?}");
    // one line per started second of the burst, plus the last one's
    assert!(
        seen.len() as u64 <= took.as_secs() + 2,
        "{} lines for {sent} refusals in {took:?}",
        seen.len()
    );
    let missing = missing.unwrap();
    assert_eq!(missing["key"], "-");
    assert_eq!(missing["held_back"], 0);

    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id().unwrap() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    assert!(child.wait().await.unwrap().success());
}

fn queries(text: &str, query: &str) -> u64 {
    let prefix = format!("mcp_proxy_db_queries_total{{query=\"{query}\"}}");
    text.lines()
        .find(|l| l.starts_with(&prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(0.0) as u64
}

#[tokio::test]
async fn an_unknown_key_costs_one_query_and_a_key_added_later_is_seen_at_once() {
    let (mock, proxy) = echo_proxy("shared", |_| {}).await;
    let url = proxy.url("demo");
    let before = queries(&metrics_text(&proxy).await, "api_key");
    let later = "added-later-key-0001";
    for _ in 0..10 {
        assert_eq!(status(&url, Some(later)).await, StatusCode::UNAUTHORIZED);
    }
    let after = queries(&metrics_text(&proxy).await, "api_key");
    assert_eq!(after - before, 1, "ten requests with one unknown key");

    // the key is added (the admin path: a seed applied by this replica): accepted at once,
    // within the auth cache's 30 s TTL
    let seed = http_seed(&[("echo", &mock.url(), "shared")], "demo", KEY, "auto").replace(
        &format!("[\"{KEY}\"]"),
        &format!("[\"{KEY}\", \"{later}\"]"),
    );
    let seed = mcp_proxy::domain::seed::Seed::parse(&seed).unwrap();
    proxy.proxy.state.apply_seed(&seed).await.unwrap();
    assert_eq!(status(&url, Some(later)).await, StatusCode::OK);
    proxy.shutdown().await;
}
