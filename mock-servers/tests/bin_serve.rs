//! `mock-mcp serve`: prints the ready line, serves HTTP, exits 0 on SIGTERM.

mod common;

use std::{process::Stdio, time::Duration};

use common::{call, text};
use rmcp::{ServiceExt, transport::StreamableHttpClientTransport};
use serde_json::json;
use tokio::{
    io::{AsyncBufReadExt, BufReader},
    process::Command,
};

const BIN: &str = env!("CARGO_BIN_EXE_mock-mcp");

async fn serve_then_signal(extra: &[&str], signal: &str) {
    let mut child = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .args(extra)
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    tokio::time::timeout(Duration::from_secs(10), stdout.read_line(&mut line))
        .await
        .expect("no ready line")
        .unwrap();
    let addr: std::net::SocketAddr = line
        .trim_end()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected ready line {line:?}"))
        .parse()
        .unwrap();
    assert_ne!(addr.port(), 0);

    let client = ()
        .serve(StreamableHttpClientTransport::from_uri(format!(
            "http://{addr}/mcp"
        )))
        .await
        .unwrap();
    let echoed = call(&client, "echo", json!({ "text": "from binary" })).await;
    assert_eq!(text(&echoed), "from binary");
    client.cancel().await.unwrap();

    let pid = child.id().expect("child pid").to_string();
    let status = std::process::Command::new("kill")
        .args([signal, &pid])
        .status()
        .unwrap();
    assert!(status.success());
    let status = tokio::time::timeout(Duration::from_secs(5), child.wait())
        .await
        .expect("mock-mcp serve did not exit within 5 s of the signal")
        .unwrap();
    assert!(status.success(), "exit status {status}");

    // Nothing else was printed to stdout.
    let mut rest = String::new();
    tokio::io::AsyncReadExt::read_to_string(&mut stdout, &mut rest)
        .await
        .unwrap();
    assert_eq!(rest, "");
}

#[tokio::test]
async fn serve_exits_zero_on_sigterm() {
    serve_then_signal(&[], "-TERM").await;
}

#[tokio::test]
async fn serve_stateless_exits_zero_on_sigint() {
    serve_then_signal(&["--stateless"], "-INT").await;
}

#[tokio::test]
async fn unknown_flag_is_rejected() {
    let output = Command::new(BIN)
        .args(["serve", "--bogus"])
        .output()
        .await
        .unwrap();
    assert!(!output.status.success());
    assert!(output.stdout.is_empty());
}

#[tokio::test]
async fn bad_fault_and_latency_flags_are_rejected_naming_the_value() {
    for (args, needle) in [
        (&["serve", "--fault", "explode"][..], "unknown fault"),
        (&["stdio", "--fault", "hang-call@1.5"][..], "probability"),
        (&["serve", "--latency", "fixed:soon"][..], "duration"),
    ] {
        let output = Command::new(BIN).args(args).output().await.unwrap();
        assert!(!output.status.success(), "{args:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
    }
}

#[tokio::test]
async fn serve_exits_3_when_crash_after_stops_it() {
    let mut child = Command::new(BIN)
        .args(["serve", "--fault", "crash-after:1"])
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let ready = lines.next_line().await.unwrap().unwrap();
    let addr = ready.strip_prefix("listening on ").unwrap().to_string();
    for _ in 0..2 {
        let _ = reqwest::Client::new()
            .post(format!("http://{addr}/mcp"))
            .body("{}")
            .send()
            .await;
    }
    let status = tokio::time::timeout(std::time::Duration::from_secs(10), child.wait())
        .await
        .expect("exits")
        .unwrap();
    assert_eq!(status.code(), Some(3));
}

#[tokio::test]
async fn serve_page_size_flag_sets_the_page_size() {
    for (flag, first_page, next) in [("1", 1, Some("1")), ("0", 4, None)] {
        let mut child = Command::new(BIN)
            .args(["serve", "--page-size", flag])
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let ready = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
            .await
            .expect("no ready line")
            .unwrap()
            .unwrap();
        let addr = ready.strip_prefix("listening on ").unwrap().to_string();
        let client = ()
            .serve(StreamableHttpClientTransport::from_uri(format!(
                "http://{addr}/mcp"
            )))
            .await
            .unwrap();
        let page = client.list_resources(None).await.unwrap();
        assert_eq!(page.resources.len(), first_page, "--page-size {flag}");
        assert_eq!(page.next_cursor.as_deref(), next, "--page-size {flag}");
        let prompts = client.list_prompts(None).await.unwrap();
        assert_eq!(
            prompts.prompts.len(),
            first_page.min(3),
            "--page-size {flag}"
        );
        client.cancel().await.unwrap();
        child.kill().await.unwrap();
    }
}

#[tokio::test]
async fn a_bad_page_size_is_rejected() {
    for sub in ["serve", "stdio"] {
        let output = Command::new(BIN)
            .args([sub, "--page-size", "lots"])
            .output()
            .await
            .unwrap();
        assert!(!output.status.success(), "{sub}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("--page-size"), "{sub}: {stderr}");
    }
}
