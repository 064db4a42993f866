//! The MCP surface through the real `mock-mcp stdio` binary: resources (with `--page-size`),
//! subscriptions, prompts, logging, progress, and client requests in both eras.

// rmcp marks subscribe, logging and sampling deprecated; the mock serves them on purpose.
#![allow(deprecated)]

mod common;

use std::{process::Stdio, time::Duration};

use common::*;
use mock_mcp::resources::COUNTER_URI;
use rmcp::{
    model::{
        CallToolRequest, ClientRequest, GetPromptRequestParams, JsonObject, LoggingLevel,
        PaginatedRequestParams, ReadResourceRequestParams, ResourceContents, ServerNotification,
        ServerResult, SetLevelRequestParams, SubscribeRequestParams, SubscriptionFilter,
    },
    service::{ClientLifecycleMode, PeerRequestOptions, serve_client_with_lifecycle},
    transport::TokioChildProcess,
};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_mock-mcp");

async fn spawn(recorder: &Recorder, lifecycle: ClientLifecycleMode, args: &[&str]) -> Client {
    let mut cmd = Command::new(BIN);
    cmd.arg("stdio").args(args);
    let transport = TokioChildProcess::new(cmd).unwrap();
    serve_client_with_lifecycle(recorder.clone(), transport, lifecycle)
        .await
        .expect("connect to mock-mcp stdio")
}

async fn counter(client: &Client) -> String {
    let r = client
        .read_resource(ReadResourceRequestParams::new(COUNTER_URI))
        .await
        .unwrap();
    match &r.contents[0] {
        ResourceContents::TextResourceContents { text, .. } => text.clone(),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn stdio_session_era_surface() {
    let recorder = Recorder::default();
    let client = spawn(
        &recorder,
        ClientLifecycleMode::Initialize,
        &["--page-size", "3"],
    )
    .await;

    // --page-size 3
    let page = client.list_resources(None).await.unwrap();
    assert_eq!(page.resources.len(), 3);
    assert_eq!(page.next_cursor.as_deref(), Some("3"));
    let rest = client
        .list_resources(Some(
            PaginatedRequestParams::default().with_cursor(Some("3".into())),
        ))
        .await
        .unwrap();
    assert_eq!(rest.resources[0].uri, COUNTER_URI);
    assert_eq!(rest.next_cursor, None);
    assert_eq!(client.list_all_prompts().await.unwrap().len(), 3);
    let greet = client
        .get_prompt(
            GetPromptRequestParams::new("greet")
                .with_arguments(serde_json::from_value(json!({ "name": "Io" })).unwrap()),
        )
        .await
        .unwrap();
    assert_eq!(
        serde_json::to_value(&greet.messages[0].content).unwrap()["text"],
        "Hello, Io!"
    );

    // subscribe → bump → updated
    assert_eq!(counter(&client).await, "0");
    client
        .subscribe(SubscribeRequestParams::new(COUNTER_URI))
        .await
        .unwrap();
    assert_eq!(text(&call(&client, "bump", json!({})).await), "1");
    recorder
        .wait_event(Event::ResourceUpdated(COUNTER_URI.into()))
        .await;
    assert_eq!(counter(&client).await, "1");

    // client requests on the session
    assert_eq!(
        text(&call(&client, "sample", json!({ "prompt": "stdio" })).await),
        "sampled: reply to stdio"
    );
    assert_eq!(
        text(&call(&client, "roots", json!({})).await),
        ROOTS.join(",")
    );

    // logging and progress
    client
        .set_level(SetLevelRequestParams::new(LoggingLevel::Error))
        .await
        .unwrap();
    let log = |level: &str| json!({ "level": level, "message": format!("at {level}") });
    assert_eq!(
        text(&call(&client, "log", log("warning")).await),
        "filtered"
    );
    assert_eq!(text(&call(&client, "log", log("critical")).await), "logged");
    recorder
        .wait_event(Event::Log {
            level: LoggingLevel::Critical,
            logger: Some("mock".into()),
            data: json!("at critical"),
        })
        .await;
    let args: JsonObject = serde_json::from_value(json!({ "steps": 2, "ms": 1 })).unwrap();
    let handle = client
        .send_cancellable_request(
            ClientRequest::CallToolRequest(CallToolRequest::new(
                rmcp::model::CallToolRequestParams::new("progress").with_arguments(args),
            )),
            PeerRequestOptions::no_options(),
        )
        .await
        .unwrap();
    let token = handle.progress_token.clone();
    match handle.await_response().await.unwrap() {
        ServerResult::CallToolResult(r) => assert_eq!(text(&r), "done 2 steps"),
        other => panic!("{other:?}"),
    }
    recorder
        .wait_event(Event::Progress {
            token,
            progress: 2.0,
            total: Some(2.0),
            message: Some("step 2/2".into()),
        })
        .await;

    client.cancel().await.unwrap();
}

#[tokio::test]
async fn stdio_2026_era_mrtr_and_listen() {
    let recorder = Recorder::default();
    let client = spawn(&recorder, discover(), &[]).await;
    assert_eq!(
        client.peer_info().map(|i| i.protocol_version.to_string()),
        Some("2026-07-28".to_string())
    );
    assert_eq!(
        text(&call(&client, "sample", json!({ "prompt": "mrtr" })).await),
        "sampled: reply to mrtr"
    );
    assert_eq!(
        text(&call(&client, "elicit", json!({ "message": "name?" })).await),
        r#"accepted: {"name":"Ferris"}"#
    );

    let mut subscription = client
        .listen(
            SubscriptionFilter::builder()
                .resource_subscriptions([COUNTER_URI])
                .build(),
        )
        .await
        .unwrap();
    // the listen handler registers right after the acknowledgment: bump until it is heard
    let heard = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            call(&client, "bump", json!({})).await;
            if let Ok(n) =
                tokio::time::timeout(Duration::from_millis(200), subscription.next()).await
            {
                break n.unwrap().unwrap();
            }
        }
    })
    .await
    .expect("no resources/updated on the listen stream");
    match heard {
        ServerNotification::ResourceUpdatedNotification(n) => assert_eq!(n.params.uri, COUNTER_URI),
        other => panic!("{other:?}"),
    }
    subscription.cancel().await.unwrap();
    client.cancel().await.unwrap();
}

/// Without a `progressToken` the `progress` tool sends no notification, only its result.
#[tokio::test]
async fn stdio_progress_without_a_token_sends_no_notifications() {
    let mut child = Command::new(BIN)
        .arg("stdio")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut send = async |message: Value| {
        stdin
            .write_all(format!("{message}\n").as_bytes())
            .await
            .unwrap();
    };
    send(
        json!({ "jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {},
        "clientInfo": { "name": "raw", "version": "0" } } }),
    )
    .await;
    send(json!({ "jsonrpc": "2.0", "method": "notifications/initialized" })).await;
    send(json!({ "jsonrpc": "2.0", "id": 2, "method": "tools/call",
        "params": { "name": "progress", "arguments": { "steps": 3, "ms": 1 } } }))
    .await;
    let mut lines = Vec::new();
    loop {
        let line = tokio::time::timeout(Duration::from_secs(5), stdout.next_line())
            .await
            .expect("no answer")
            .unwrap()
            .expect("stdout closed");
        let message: Value = serde_json::from_str(&line).unwrap();
        let done = message["id"] == 2;
        lines.push(message);
        if done {
            break;
        }
    }
    let last = lines.last().unwrap();
    assert_eq!(last["result"]["content"][0]["text"], "done 3 steps");
    assert!(
        !lines
            .iter()
            .any(|m| m["method"] == "notifications/progress"),
        "{lines:?}"
    );
    drop(stdin);
    let status = tokio::time::timeout(Duration::from_secs(5), child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success());
}

/// Closing stdin with a listen stream still open ends the child promptly (the stream's
/// request is cancelled with the connection).
#[tokio::test]
async fn stdio_exits_with_a_listen_stream_open() {
    let mut cmd = Command::new(BIN);
    cmd.arg("stdio");
    let transport = TokioChildProcess::new(cmd).unwrap();
    let pid = transport.id().expect("child pid");
    let client = serve_client_with_lifecycle(Recorder::default(), transport, discover())
        .await
        .unwrap();
    let _subscription = client
        .listen(SubscriptionFilter::builder().tools_list_changed().build())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = std::time::Instant::now();
    client.cancel().await.unwrap();
    // rmcp escalates to SIGTERM after 3 s: a prompt return means a clean exit
    assert!(
        started.elapsed() < Duration::from_millis(2500),
        "child {pid} did not exit promptly ({:?})",
        started.elapsed()
    );
}
