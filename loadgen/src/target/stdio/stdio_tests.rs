//! The connection and the front over a real child (a small stdio server in Python) and real
//! loopback HTTP: ids re-addressed both ways, a caller's cancel reaching the request it names,
//! the server's own requests answered, stray stdout lines logged, bad input refused, a server
//! that exits failing every request at once, and stdin closed by `close`.

use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use super::front::{self, Front};
use super::wire::Peer;

/// Answers each request with its method and the id it saw; `hold` is never answered (a
/// cancel for it is recorded: `cancels` lists them, and the ids `hold` came with); `ask` first asks the client for `ping` and
/// `roots/list` and answers with what came back; prints a log line on stdout before the first
/// answer; exits on EOF after writing `bye` to stderr.
const SERVER: &str = r#"
import json, sys
held, cancels = [], []
print("starting up (not JSON-RPC)", flush=True)
def send(m):
    sys.stdout.write(json.dumps(m) + "\n"); sys.stdout.flush()
asked = []
for line in sys.stdin:
    m = json.loads(line)
    method, mid = m.get("method"), m.get("id")
    if method is None:
        asked.append(m)
        if len(asked) == 2:
            send({"jsonrpc": "2.0", "id": ask_id, "result": {"answers": asked}})
        continue
    if method == "notifications/cancelled":
        cancels.append(m["params"]["requestId"])
        continue
    if mid is None:
        continue
    if method == "hold":
        held.append(mid)
    elif method == "cancels":
        send({"jsonrpc": "2.0", "id": mid, "result": {"cancels": cancels, "held": held}})
    elif method == "ask":
        ask_id = mid
        send({"jsonrpc": "2.0", "id": "s1", "method": "ping"})
        send({"jsonrpc": "2.0", "id": "s2", "method": "roots/list"})
    else:
        send({"jsonrpc": "2.0", "method": "notifications/progress", "params": {}})
        send({"jsonrpc": "2.0", "id": mid, "result": {"method": method, "seen_id": mid}})
sys.stderr.write("bye\n")
"#;

struct Server {
    child: tokio::process::Child,
    front: Arc<Front>,
    url: String,
    log: tempfile::NamedTempFile,
}

async fn server() -> Server {
    let log = tempfile::NamedTempFile::new().unwrap();
    let mut child = tokio::process::Command::new("python3")
        .args(["-c", SERVER])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(log.reopen().unwrap())
        .kill_on_drop(true)
        .spawn()
        .expect("python3");
    let peer = Peer::start(
        child.stdin.take().unwrap(),
        child.stdout.take().unwrap(),
        log.path(),
    );
    let front = Arc::new(Front {
        peer,
        initialized: Some(json!({ "protocolVersion": "2025-11-25", "capabilities": {} })),
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}{}", listener.local_addr().unwrap(), front::PATH);
    let router = front::router(front.clone());
    tokio::spawn(async move { axum::serve(listener, router).await });
    Server {
        child,
        front,
        url,
        log,
    }
}

async fn post(url: &str, body: impl Into<reqwest::Body>) -> (u16, Value) {
    let r = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

fn request(id: Value, method: &str) -> String {
    json!({ "jsonrpc": "2.0", "id": id, "method": method, "params": {} }).to_string()
}

#[tokio::test]
async fn ids_are_readdressed_both_ways_and_initialize_is_answered_from_the_first() {
    let s = server().await;
    let (status, init) = post(&s.url, request(json!(7), "initialize")).await;
    assert_eq!((status, init["id"].clone()), (200, json!(7)));
    assert_eq!(init["result"]["protocolVersion"], "2025-11-25");
    // two callers with the same id at once each get their own answer, under their own id
    let (a, b) = tokio::join!(
        post(&s.url, request(json!(1), "tools/list")),
        post(&s.url, request(json!(1), "tools/call")),
    );
    assert_eq!((a.0, a.1["id"].clone()), (200, json!(1)));
    assert_eq!(a.1["result"]["method"], "tools/list");
    assert_eq!(b.1["result"]["method"], "tools/call");
    assert_ne!(a.1["result"]["seen_id"], b.1["result"]["seen_id"]);
    let (status, _) = post(
        &s.url,
        r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
    )
    .await;
    assert_eq!(status, 202);
    let log = std::fs::read_to_string(s.log.path()).unwrap();
    assert!(
        log.contains("[mcp-loadgen: not JSON-RPC on stdout] starting up"),
        "{log}"
    );
}

#[tokio::test]
async fn a_cancel_reaches_the_request_it_names_under_the_servers_id() {
    let s = server().await;
    let held = tokio::spawn({
        let url = s.url.clone();
        async move { post(&url, request(json!("abc"), "hold")).await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let cancel = json!({ "jsonrpc": "2.0", "method": "notifications/cancelled",
        "params": { "requestId": "abc", "reason": "timeout" } });
    assert_eq!(post(&s.url, cancel.to_string()).await.0, 202);
    let (status, answer) = tokio::time::timeout(Duration::from_secs(5), held)
        .await
        .expect("a caller still waiting is answered once it cancelled")
        .unwrap();
    assert_eq!((status, answer["id"].clone()), (200, json!("abc")));
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains("cancelled"),
        "{answer}"
    );
    // the server saw the cancel under its own id for the request, not the caller's
    let (_, seen) = post(&s.url, request(json!(5), "cancels")).await;
    let held_ids = seen["result"]["held"].as_array().unwrap();
    assert_eq!(held_ids.len(), 1, "{seen}");
    assert!(held_ids[0].is_u64(), "{seen}");
    assert_eq!(seen["result"]["cancels"], json!(held_ids), "{seen}");
    // a cancel for a request no longer in flight is dropped, not an error
    assert_eq!(post(&s.url, cancel.to_string()).await.0, 202);
}

#[tokio::test]
async fn the_servers_own_requests_are_answered_ping_yes_anything_else_refused() {
    let s = server().await;
    let (status, answer) = post(&s.url, request(json!(3), "ask")).await;
    assert_eq!(status, 200);
    let answers = answer["result"]["answers"].as_array().unwrap();
    assert_eq!(
        answers[0],
        json!({ "jsonrpc": "2.0", "id": "s1", "result": {} })
    );
    assert_eq!(answers[1]["id"], "s2");
    assert_eq!(answers[1]["error"]["code"], -32601);
}

#[tokio::test]
async fn bad_input_is_refused_with_the_json_rpc_error_the_spec_names() {
    let s = server().await;
    let (status, body) = post(&s.url, "{ not json").await;
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (400, json!(-32700))
    );
    let (status, body) = post(&s.url, "[]").await;
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (400, json!(-32600))
    );
    let (status, body) = post(&s.url, "42").await;
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (400, json!(-32600))
    );
    let get = reqwest::get(&s.url).await.unwrap();
    assert_eq!(get.status().as_u16(), 405);
    // a response sent by a client (nothing asked for it) is taken and dropped
    assert_eq!(
        post(&s.url, r#"{"jsonrpc":"2.0","id":9,"result":{}}"#)
            .await
            .0,
        202
    );
}

#[tokio::test]
async fn a_server_that_exits_fails_what_is_in_flight_and_what_comes_after() {
    let mut s = server().await;
    let held = tokio::spawn({
        let url = s.url.clone();
        async move { post(&url, request(json!(1), "hold")).await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    s.child.start_kill().unwrap();
    let (status, answer) = tokio::time::timeout(Duration::from_secs(5), held)
        .await
        .expect("a request in flight fails when the server goes")
        .unwrap();
    assert_eq!(
        (status, answer["error"]["code"].clone()),
        (502, json!(-32603))
    );
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains("closed its stdout")
    );
    let (status, _) = post(&s.url, request(json!(2), "tools/list")).await;
    assert_eq!(status, 502);
}

#[tokio::test]
async fn close_closes_the_servers_stdin_and_it_exits_by_itself() {
    let mut s = server().await;
    assert_eq!(post(&s.url, request(json!(1), "tools/list")).await.0, 200);
    s.front.peer.close().await;
    let status = tokio::time::timeout(Duration::from_secs(5), s.child.wait())
        .await
        .expect("the server exits on EOF")
        .unwrap();
    assert!(status.success());
    let log = std::fs::read_to_string(s.log.path()).unwrap();
    assert!(log.contains("bye"), "{log}");
}
