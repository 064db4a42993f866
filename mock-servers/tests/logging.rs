//! Logging: the `log` tool sends `notifications/message` only at or above the threshold: the
//! session's `logging/setLevel` (default `info`) in the 2025-11-25 era, the request's `_meta`
//! `logLevel` (none → nothing) in the 2026-07-28 era.

// rmcp marks logging deprecated (SEP-2577); the mock serves it on purpose.
#![allow(deprecated)]

mod common;

use std::time::Duration;

use common::*;
use mock_mcp::{MockConfig, MockServer};
use rmcp::model::{
    CallToolRequest, CallToolRequestParams, ClientRequest, ErrorCode, JsonObject, LoggingLevel,
    RequestMetaObject, ServerResult, SetLevelRequestParams,
};
use rmcp::service::PeerRequestOptions;
use serde_json::json;

async fn log(client: &Client, level: &str, message: &str) -> String {
    text(&call(client, "log", json!({ "level": level, "message": message })).await)
}

/// Calls `log` with `_meta` logLevel = `level`.
async fn with_level(
    client: &Client,
    level: LoggingLevel,
    msg_level: &str,
    message: &str,
) -> String {
    let mut meta = RequestMetaObject::new();
    meta.set_log_level(level);
    let args: JsonObject =
        serde_json::from_value(json!({ "level": msg_level, "message": message })).unwrap();
    let request = ClientRequest::CallToolRequest(CallToolRequest::new(
        CallToolRequestParams::new("log").with_arguments(args),
    ));
    let handle = client
        .send_request_with_option(request, PeerRequestOptions::no_options().with_meta(meta))
        .await
        .unwrap();
    match handle.await_response().await.unwrap() {
        ServerResult::CallToolResult(r) => text(&r),
        other => panic!("{other:?}"),
    }
}

fn logged(level: LoggingLevel, message: &str) -> Event {
    Event::Log {
        level,
        logger: Some("mock".into()),
        data: json!(message),
    }
}

fn is_log(e: &Event) -> bool {
    matches!(e, Event::Log { .. })
}

#[tokio::test]
async fn set_level_filters_per_session() {
    let server = MockServer::start(MockConfig::default()).await.unwrap();
    let recorder = Recorder::default();
    let client = connect(&server.url(), &recorder).await;

    // before setLevel: info and up
    assert_eq!(log(&client, "debug", "d0").await, "filtered");
    assert_eq!(log(&client, "info", "i0").await, "logged");
    recorder.wait_event(logged(LoggingLevel::Info, "i0")).await;

    client
        .set_level(SetLevelRequestParams::new(LoggingLevel::Warning))
        .await
        .unwrap();
    assert_eq!(log(&client, "info", "i1").await, "filtered");
    assert_eq!(log(&client, "notice", "n1").await, "filtered");
    assert_eq!(log(&client, "warning", "w1").await, "logged");
    assert_eq!(log(&client, "emergency", "e1").await, "logged");
    recorder
        .wait_event(logged(LoggingLevel::Emergency, "e1"))
        .await;

    client
        .set_level(SetLevelRequestParams::new(LoggingLevel::Debug))
        .await
        .unwrap();
    assert_eq!(log(&client, "debug", "d2").await, "logged");
    let events = recorder.wait_event(logged(LoggingLevel::Debug, "d2")).await;
    let logs: Vec<Event> = events.into_iter().filter(is_log).collect();
    assert_eq!(
        logs,
        [
            logged(LoggingLevel::Info, "i0"),
            logged(LoggingLevel::Warning, "w1"),
            logged(LoggingLevel::Emergency, "e1"),
            logged(LoggingLevel::Debug, "d2"),
        ]
    );

    // another session still has the default level
    let other_recorder = Recorder::default();
    let other = connect(&server.url(), &other_recorder).await;
    assert_eq!(log(&other, "debug", "other").await, "filtered");
    other_recorder
        .assert_quiet(Duration::from_millis(200), is_log)
        .await;

    other.cancel().await.unwrap();
    client.cancel().await.unwrap();
    server.shutdown().await;
}

#[tokio::test]
async fn the_2026_era_uses_the_request_log_level() {
    let server = MockServer::start(MockConfig::default()).await.unwrap();
    let recorder = Recorder::default();
    let client = connect_with(&server.url(), &recorder, discover()).await;

    // no logLevel in the request: no log messages at all
    assert_eq!(log(&client, "emergency", "none").await, "filtered");

    assert_eq!(
        with_level(&client, LoggingLevel::Warning, "info", "quiet").await,
        "filtered"
    );
    assert_eq!(
        with_level(&client, LoggingLevel::Warning, "error", "loud").await,
        "logged"
    );
    let events = recorder
        .wait_event(logged(LoggingLevel::Error, "loud"))
        .await;
    assert_eq!(
        events.into_iter().filter(is_log).collect::<Vec<_>>(),
        [logged(LoggingLevel::Error, "loud")]
    );

    // there is no session level in this era
    let e = mcp_error(
        client
            .set_level(SetLevelRequestParams::new(LoggingLevel::Debug))
            .await
            .unwrap_err(),
    );
    assert_eq!(e.code, ErrorCode::METHOD_NOT_FOUND, "{e:?}");
    client.cancel().await.unwrap();
    server.shutdown().await;
}
