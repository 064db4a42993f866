//! Contract: the `mcp-proxy serve` binary exits 0 on SIGTERM and its stdio children are
//! closed and reaped with it, never orphaned. (Own file: it counts child processes, so it must
//! not share a process with other tests that spawn children.)

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::*;
use mcp_loadgen::observe::probe;
use serde_json::json;
use tokio::io::{AsyncBufReadExt, BufReader};

#[tokio::test]
async fn the_binary_exits_0_on_sigterm_and_leaves_no_child() {
    let dir = tempfile::tempdir().unwrap();
    let seed_path = dir.path().join("seed.toml");
    std::fs::write(
        &seed_path,
        stdio_seed("local", "shared", "demo", "demo-key-0001"),
    )
    .unwrap();
    let port = free_port();
    let mut proxy = proxy_serve_command(dir.path(), &seed_path, port)
        .args(["--log-format", "json"])
        .env("RUST_LOG", "mcp_proxy=info")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = proxy.id().unwrap();
    let mut lines = BufReader::new(proxy.stderr.take().unwrap()).lines();
    let line = wait_for_log(&mut lines, "listening").await;
    let entry: serde_json::Value =
        serde_json::from_str(&line).expect("--log-format json logs JSON lines");
    assert_eq!(entry["level"], "INFO");
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    let client = client(
        &format!("http://127.0.0.1:{port}/mcp/demo"),
        "demo-key-0001",
    )
    .await;
    let r = client
        .call_tool(call("echo", json!({ "text": "hi" })))
        .await
        .unwrap();
    assert_eq!(text(&r), "hi");
    let children = probe::child_pids(pid).unwrap();
    assert_eq!(children.len(), 1, "one stdio child");
    let child = children[0];

    // SIGHUP re-reads the seed: a new instance and key work at once
    let seed = stdio_seed("local", "shared", "demo", "demo-key-0001")
        + "\n[[instance]]\nid = \"fresh\"\nupstreams = [\"local\"]\napi_keys = [\"fresh-key-0001\"]\n";
    std::fs::write(&seed_path, seed).unwrap();
    let status = std::process::Command::new("kill")
        .args(["-HUP", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let url = format!("http://127.0.0.1:{port}/mcp/fresh");
    let mut accepted = false;
    for _ in 0..100 {
        let r = post(&url, Some("fresh-key-0001"))
            .json(&initialize_body("2025-11-25"))
            .send()
            .await
            .unwrap();
        if r.status() == 200 {
            accepted = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(accepted, "the reloaded key never worked");

    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = tokio::time::timeout(Duration::from_secs(15), proxy.wait())
        .await
        .expect("exits within 15 s")
        .unwrap();
    assert!(exit.success(), "exit status {exit:?}");
    // not orphaned: an orphan would be re-parented and still exist
    assert!(
        eventually(Duration::from_secs(2), || probe::process_state(child)
            .is_none())
        .await,
        "stdio child {child} outlived the proxy"
    );
    drop(client);
}

/// A second SIGTERM while the first is draining a long call exits at once, status 130.
#[tokio::test]
async fn a_second_signal_exits_at_once() {
    let mock = mock_mcp::MockServer::start(Default::default())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let seed_path = dir.path().join("seed.toml");
    std::fs::write(
        &seed_path,
        http_seed(&[("echo", &mock.url(), "shared")], "demo", KEY, "auto"),
    )
    .unwrap();
    let port = free_port();
    let mut proxy = proxy_serve_command(dir.path(), &seed_path, port)
        .args(["--shutdown-deadline", "30s"])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = proxy.id().unwrap().to_string();
    let url = format!("http://127.0.0.1:{port}/mcp/demo");
    let ready = eventually(Duration::from_secs(20), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    })
    .await;
    assert!(ready, "proxy never listened");
    let client = client(&url, KEY).await;
    let peer = client.peer().clone();
    let call = tokio::spawn(async move {
        peer.call_tool(common::call("sleep", json!({ "ms": 20000 })))
            .await
    });
    assert!(eventually(Duration::from_secs(5), || mock.in_flight() == 1).await);
    let kill = |sig: &str| {
        std::process::Command::new("kill")
            .args([sig, &pid])
            .status()
            .unwrap()
    };
    assert!(kill("-TERM").success());
    // the first signal drains: the 20 s call keeps the proxy alive
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        proxy.try_wait().unwrap().is_none(),
        "exited before the drain"
    );
    let second = std::time::Instant::now();
    assert!(kill("-TERM").success());
    let exit = tokio::time::timeout(Duration::from_secs(2), proxy.wait())
        .await
        .expect("the second signal exits within 2 s")
        .unwrap();
    eprintln!("second signal: exit {exit:?} after {:?}", second.elapsed());
    assert_eq!(exit.code(), Some(130));
    call.abort();
    drop(client);
}
