//! Contract: stdio faults observed on a real child process: `crash-after:N` exits with status 3
//! after N requests, `init-error` answers initialize with a JSON-RPC error, `hang-call` never
//! answers a call while the rest works.

use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

struct Stdio3 {
    child: Child,
    stdin: ChildStdin,
    stdout: Lines<BufReader<ChildStdout>>,
}

fn spawn(faults: &[&str]) -> Stdio3 {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mock-mcp"));
    cmd.arg("stdio");
    for f in faults {
        cmd.args(["--fault", f]);
    }
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let stdin = child.stdin.take().unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap()).lines();
    Stdio3 {
        child,
        stdin,
        stdout,
    }
}

impl Stdio3 {
    async fn send(&mut self, message: Value) {
        self.stdin
            .write_all(format!("{message}\n").as_bytes())
            .await
            .unwrap();
        self.stdin.flush().await.unwrap();
    }

    async fn recv(&mut self, within: Duration) -> Option<Value> {
        let line = tokio::time::timeout(within, self.stdout.next_line())
            .await
            .ok()?
            .ok()??;
        Some(serde_json::from_str(&line).expect("stdout carries JSON-RPC only"))
    }

    async fn handshake(&mut self) {
        self.send(json!({ "jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": { "name": "t", "version": "0" } } }))
            .await;
        let reply = self
            .recv(Duration::from_secs(5))
            .await
            .expect("initialize answered");
        assert!(reply["result"].is_object(), "{reply}");
        self.send(json!({ "jsonrpc": "2.0", "method": "notifications/initialized" }))
            .await;
    }
}

fn echo(id: u64) -> Value {
    json!({ "jsonrpc": "2.0", "id": id, "method": "tools/call", "params": { "name": "echo", "arguments": { "text": "x" } } })
}

#[tokio::test]
async fn crash_after_n_requests_exits_with_status_3() {
    let mut p = spawn(&["crash-after:3"]);
    p.handshake().await; // request 1
    p.send(echo(2)).await;
    assert!(p.recv(Duration::from_secs(5)).await.unwrap()["result"].is_object());
    p.send(echo(3)).await;
    assert!(p.recv(Duration::from_secs(5)).await.unwrap()["result"].is_object());
    p.send(echo(4)).await; // the 4th request: crash
    assert!(
        p.recv(Duration::from_secs(5)).await.is_none(),
        "no answer after the crash"
    );
    let status = tokio::time::timeout(Duration::from_secs(5), p.child.wait())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status.code(), Some(3));
}

#[tokio::test]
async fn init_error_is_a_jsonrpc_error() {
    let mut p = spawn(&["init-error"]);
    p.send(json!({ "jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": { "name": "t", "version": "0" } } }))
        .await;
    let reply = p.recv(Duration::from_secs(5)).await.unwrap();
    assert_eq!(reply["id"], 1);
    assert!(
        reply["error"]["message"]
            .as_str()
            .unwrap()
            .contains("init-error"),
        "{reply}"
    );
    drop(p.stdin);
    let status = tokio::time::timeout(Duration::from_secs(5), p.child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "stdin closed: clean exit");
}

#[tokio::test]
async fn hang_call_never_answers_but_the_rest_works() {
    let mut p = spawn(&["hang-call"]);
    p.handshake().await;
    p.send(echo(2)).await;
    assert!(
        p.recv(Duration::from_millis(300)).await.is_none(),
        "the call hangs"
    );
    p.send(json!({ "jsonrpc": "2.0", "id": 3, "method": "tools/list" }))
        .await;
    let reply = p.recv(Duration::from_secs(5)).await.unwrap();
    assert_eq!(reply["id"], 3);
    assert_eq!(
        reply["result"]["tools"].as_array().unwrap().len(),
        mock_mcp::TOOL_NAMES.len()
    );
    drop(p.stdin);
    let status = tokio::time::timeout(Duration::from_secs(5), p.child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success());
}

#[tokio::test]
async fn init_garbage_and_slow_drip_over_stdio() {
    let mut p = spawn(&["init-garbage"]);
    p.send(json!({ "jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": { "name": "t", "version": "0" } } }))
        .await;
    let line = tokio::time::timeout(Duration::from_secs(5), p.stdout.next_line())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(
        serde_json::from_str::<Value>(&line).is_err(),
        "invalid JSON: {line}"
    );

    let mut p = spawn(&["slow-drip:2ms"]);
    let started = std::time::Instant::now();
    p.handshake().await;
    p.send(echo(2)).await;
    let reply = p.recv(Duration::from_secs(10)).await.unwrap();
    assert_eq!(reply["result"]["content"][0]["text"], "x");
    // two replies of well over 100 bytes each, 2 ms per byte
    assert!(
        started.elapsed() >= Duration::from_millis(400),
        "{:?}",
        started.elapsed()
    );
}
