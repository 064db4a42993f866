//! Contract: SIGTERM to an *idle* proxy (no client connection open, so the HTTP server's
//! graceful shutdown finishes at once) still runs the whole close path: its stdio child is
//! closed and reaped by the proxy itself before it exits 0, and nothing panics.
//!
//! Found by `mcp-loadgen` (an orphaned `mock-mcp` zombie re-parented to the harness): the
//! serve task raced the shutdown token, and when the server's branch won, the drain polled its
//! finished `JoinHandle` again, panicked, and skipped closing upstreams. The race is a coin
//! toss per shutdown, so the test shuts down several times.
//!
//! This test process is a child subreaper: a child the proxy failed to reap before exiting
//! is re-parented here and seen. Own file: it counts this process's children.

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::*;
use mcp_loadgen::observe::probe;
use serde_json::json;
use tokio::io::{AsyncBufReadExt, BufReader};

const ROUNDS: usize = 8;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_proxy_reaps_its_stdio_child_before_exiting() {
    nix::sys::prctl::set_child_subreaper(true).unwrap();
    let me = std::process::id();
    let dir = tempfile::tempdir().unwrap();
    let seed_path = dir.path().join("seed.toml");
    std::fs::write(&seed_path, stdio_seed("local", "shared", "demo", KEY)).unwrap();
    for round in 0..ROUNDS {
        let port = free_port();
        let mut proxy = proxy_serve_command(dir.path(), &seed_path, port)
            .env("RUST_LOG", "mcp_proxy=info")
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let pid = proxy.id().unwrap();
        let mut lines = BufReader::new(proxy.stderr.take().unwrap()).lines();
        wait_for_log(&mut lines, "listening").await;
        let log = tokio::spawn(async move {
            let mut all = String::new();
            while let Ok(Some(l)) = lines.next_line().await {
                all.push_str(&l);
                all.push('\n');
            }
            all
        });
        let client = unpooled_client(&format!("http://127.0.0.1:{port}/mcp/demo"), KEY).await;
        let r = client
            .call_tool(call("echo", json!({ "text": "hi" })))
            .await
            .unwrap();
        assert_eq!(text(&r), "hi");
        client.cancel().await.unwrap();
        let child = probe::child_pids(pid).unwrap();
        assert_eq!(child.len(), 1, "round {round}: one stdio child");
        // idle: no connection of ours left open to the proxy
        tokio::time::sleep(Duration::from_millis(200)).await;

        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGTERM,
        )
        .unwrap();
        let exit = tokio::time::timeout(Duration::from_secs(15), proxy.wait())
            .await
            .expect("exits within 15 s")
            .unwrap();
        let log = log.await.unwrap();
        assert!(exit.success(), "round {round}: exit status {exit:?}\n{log}");
        assert!(
            !log.contains("panicked"),
            "round {round}: the proxy panicked:\n{log}"
        );
        assert!(
            log.contains("shutdown complete"),
            "round {round}: the close path did not finish:\n{log}"
        );
        let left = probe::child_pids(me).unwrap();
        assert!(
            left.is_empty(),
            "round {round}: the proxy exited without reaping its stdio child {child:?}: re-parented here: {left:?} (states {:?})",
            left.iter()
                .map(|p| probe::process_state(*p))
                .collect::<Vec<_>>()
        );
    }
}
