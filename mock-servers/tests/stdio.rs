//! `mock-mcp stdio`: served through rmcp's child-process transport, and the
//! process exits 0 as soon as its stdin is closed.

mod common;

use std::{
    process::Stdio,
    time::{Duration, Instant},
};

use common::{call, text};
use rmcp::{
    ServiceExt,
    model::ProtocolVersion,
    service::{ClientLifecycleMode, serve_client_with_lifecycle},
    transport::TokioChildProcess,
};
use serde_json::json;
use tokio::{
    io::{AsyncBufReadExt, AsyncWriteExt, BufReader},
    process::Command,
};

const BIN: &str = env!("CARGO_BIN_EXE_mock-mcp");

fn pid_alive(pid: u32) -> bool {
    std::process::Command::new("kill")
        .args(["-0", &pid.to_string()])
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

#[tokio::test]
async fn stdio_via_rmcp_child_process() {
    let mut cmd = Command::new(BIN);
    cmd.arg("stdio");
    let transport = TokioChildProcess::new(cmd).unwrap();
    let pid = transport.id().expect("child pid");
    let client = ().serve(transport).await.unwrap();

    let tools = client.list_all_tools().await.unwrap();
    assert_eq!(tools.len(), mock_mcp::TOOL_NAMES.len());
    let sum = call(&client, "add", json!({ "a": 40, "b": 2 })).await;
    assert_eq!(text(&sum), "42");

    // cancel() closes the child's stdin and waits for it to exit; rmcp only
    // escalates to SIGTERM after 3 s, so a prompt return means a clean exit.
    let started = Instant::now();
    client.cancel().await.unwrap();
    assert!(
        started.elapsed() < Duration::from_millis(2500),
        "child did not exit promptly after stdin closed ({:?})",
        started.elapsed()
    );
    assert!(!pid_alive(pid), "child {pid} still running");
}

/// A 2026-07-28 client (`server/discover`, no `initialize`) works too.
#[tokio::test]
async fn stdio_discover_lifecycle() {
    let mut cmd = Command::new(BIN);
    cmd.arg("stdio");
    let transport = TokioChildProcess::new(cmd).unwrap();
    let pid = transport.id().expect("child pid");
    let lifecycle = ClientLifecycleMode::Discover {
        preferred_versions: vec![ProtocolVersion::V_2026_07_28],
    };
    let client = serve_client_with_lifecycle((), transport, lifecycle)
        .await
        .unwrap();
    assert_eq!(
        client.peer_info().map(|i| i.protocol_version.clone()),
        Some(ProtocolVersion::V_2026_07_28)
    );
    let echoed = call(&client, "echo", json!({ "text": "discovered" })).await;
    assert_eq!(text(&echoed), "discovered");

    let started = Instant::now();
    client.cancel().await.unwrap();
    assert!(
        started.elapsed() < Duration::from_millis(2500),
        "child did not exit promptly after stdin closed ({:?})",
        started.elapsed()
    );
    assert!(!pid_alive(pid), "child {pid} still running");
}

/// Closing stdin without sending anything is a clean exit.
#[tokio::test]
async fn stdio_exits_zero_on_immediate_eof() {
    let output = Command::new(BIN)
        .arg("stdio")
        .stdin(Stdio::null())
        .output()
        .await
        .unwrap();
    assert!(output.status.success(), "exit status {}", output.status);
    assert!(output.stdout.is_empty());
}

#[tokio::test]
async fn stdio_exits_zero_when_stdin_closes() {
    let mut child = Command::new(BIN)
        .arg("stdio")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());

    let init = json!({
        "jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": { "name": "raw", "version": "0" }
        }
    });
    stdin
        .write_all(format!("{init}\n").as_bytes())
        .await
        .unwrap();
    let mut line = String::new();
    tokio::time::timeout(Duration::from_secs(5), stdout.read_line(&mut line))
        .await
        .expect("initialize response timed out")
        .unwrap();
    let resp: serde_json::Value = serde_json::from_str(&line).expect("stdout must be JSON-RPC");
    assert_eq!(resp["id"], 1);
    assert_eq!(resp["result"]["protocolVersion"], "2025-06-18");
    assert_eq!(resp["result"]["serverInfo"]["name"], "mock-mcp");

    drop(stdin);
    let status = tokio::time::timeout(Duration::from_secs(5), child.wait())
        .await
        .expect("mock-mcp stdio did not exit after stdin closed")
        .unwrap();
    assert!(status.success(), "exit status {status}");
}
