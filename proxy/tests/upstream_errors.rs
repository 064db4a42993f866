//! Contract: an upstream that answers `initialize` with garbage (an HTTP body that is not
//! JSON-RPC, a reply to another id, a stdio line that is not JSON) gives the caller a JSON-RPC
//! error that names the upstream and a plain cause, keeps `data.upstream` and `data.kind`, and
//! carries no Rust type names and none of the bytes the upstream sent.

mod common;

use common::*;
use mock_mcp::{MockConfig, MockServer};
use rmcp::model::ErrorData;
use rmcp::service::ServiceError;
use serde_json::json;

/// What must never reach a caller: rmcp's and serde's type names, `Debug` shapes, and the
/// mock's garbage (`{"jsonrpc": "2.0", "id": ` and the wrong id `not-…`).
const FORBIDDEN: &[&str] = &[
    "ServerJsonRpcMessage",
    "JsonRpc",
    "Transport [",
    "StreamableHttp",
    "reqwest::",
    "Error {",
    "Some(",
    "\"jsonrpc\"",
    "not-",
    "{",
];

async fn call_error(seed: &str) -> ErrorData {
    let proxy = start_proxy(seed, |s| {
        s.connect_timeout = std::time::Duration::from_secs(2);
    })
    .await;
    let client = client(&proxy.url("demo"), KEY).await;
    let outcome = client
        .call_tool(call("echo", json!({ "text": "hi" })))
        .await;
    client.cancel().await.unwrap();
    proxy.shutdown().await;
    match outcome {
        Err(ServiceError::McpError(error)) => error,
        other => panic!("expected a JSON-RPC error, got {other:?}"),
    }
}

fn assert_plain(error: &ErrorData, words: &[&str], kind: &str) {
    for word in words {
        assert!(error.message.contains(word), "{word:?}: {error:?}");
    }
    for bad in FORBIDDEN {
        assert!(
            !error.message.contains(bad),
            "{bad:?} reached the caller: {error:?}"
        );
    }
    let data = error.data.as_ref().expect("data");
    assert_eq!(data["upstream"], "echo", "{error:?}");
    assert_eq!(data["kind"], kind, "{error:?}");
}

#[tokio::test]
async fn an_http_upstream_sending_garbage_is_an_invalid_response_in_plain_words() {
    for fault in ["init-garbage", "init-garbage:wrong-id"] {
        let mock = MockServer::start(MockConfig::with_faults(&[fault]))
            .await
            .unwrap();
        let seed = http_seed(&[("echo", &mock.url(), "shared")], "demo", KEY, "auto");
        let error = call_error(&seed).await;
        assert_plain(
            &error,
            &["upstream \"echo\"", "invalid response"],
            "connect",
        );
    }
}

#[tokio::test]
async fn a_stdio_upstream_printing_garbage_gets_a_plain_error() {
    for fault in ["init-garbage", "init-garbage:wrong-id"] {
        let seed = format!(
            "[[upstream]]\nname = \"echo\"\ntransport = \"stdio\"\ncommand = \"{}\"\n\
             args = [\"stdio\", \"--fault\", \"{fault}\"]\n\n\
             [[instance]]\nid = \"demo\"\nupstreams = [\"echo\"]\napi_keys = [\"{KEY}\"]\n",
            mock_bin().display()
        );
        let error = call_error(&seed).await;
        // rmcp's stdio transport skips a line that is not JSON-RPC: no answer comes
        let kind = error.data.as_ref().unwrap()["kind"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(
            kind == "connect_timeout" || kind == "connect",
            "{fault}: {error:?}"
        );
        assert_plain(&error, &["upstream \"echo\""], &kind);
    }
}
