//! The tools beyond echo/add/sleep: progress, structured, fail, meta, and poke's `what`.

mod common;

use std::time::Duration;

use common::*;
use mock_mcp::{MockConfig, MockServer};
use rmcp::model::{
    CallToolRequest, CallToolRequestParams, ClientRequest, JsonObject, RequestMetaObject,
    ServerResult,
};
use rmcp::service::PeerRequestOptions;
use serde_json::{Value, json};

fn params(name: &'static str, args: Value) -> CallToolRequestParams {
    let args: JsonObject = serde_json::from_value(args).unwrap();
    CallToolRequestParams::new(name).with_arguments(args)
}

#[tokio::test]
async fn progress_notifications_arrive_in_order_with_the_token() {
    let server = MockServer::start(MockConfig::default()).await.unwrap();
    let recorder = Recorder::default();
    let client = connect(&server.url(), &recorder).await;
    let handle = client
        .send_cancellable_request(
            ClientRequest::CallToolRequest(CallToolRequest::new(params(
                "progress",
                json!({ "steps": 3, "ms": 20 }),
            ))),
            PeerRequestOptions::no_options(),
        )
        .await
        .unwrap();
    let token = handle.progress_token.clone();
    let result = match handle.await_response().await.unwrap() {
        ServerResult::CallToolResult(r) => r,
        other => panic!("{other:?}"),
    };
    assert_eq!(text(&result), "done 3 steps");
    let events = recorder
        .wait_for("3 progress notifications", |e| {
            e.iter()
                .filter(|e| matches!(e, Event::Progress { .. }))
                .count()
                == 3
        })
        .await;
    let progress: Vec<Event> = events
        .into_iter()
        .filter(|e| matches!(e, Event::Progress { .. }))
        .collect();
    let expected: Vec<Event> = (1..=3)
        .map(|i| Event::Progress {
            token: token.clone(),
            progress: f64::from(i),
            total: Some(3.0),
            message: Some(format!("step {i}/3")),
        })
        .collect();
    assert_eq!(progress, expected);
    client.cancel().await.unwrap();
    server.shutdown().await;
}

#[tokio::test]
async fn a_cancelled_progress_call_stops() {
    let server = MockServer::start(MockConfig::default()).await.unwrap();
    let recorder = Recorder::default();
    let client = connect(&server.url(), &recorder).await;
    let handle = client
        .send_cancellable_request(
            ClientRequest::CallToolRequest(CallToolRequest::new(params(
                "progress",
                json!({ "steps": 1000, "ms": 50 }),
            ))),
            PeerRequestOptions::no_options(),
        )
        .await
        .unwrap();
    recorder
        .wait_for("a first progress notification", |e| {
            e.iter().any(|e| matches!(e, Event::Progress { .. }))
        })
        .await;
    assert_eq!(server.in_flight(), 1);
    handle.cancel(Some("test".into())).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while server.in_flight() != 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "progress kept going"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let seen = recorder.events().len();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        recorder.events().len(),
        seen,
        "no progress after the cancel"
    );
    client.cancel().await.unwrap();
    server.shutdown().await;
}

#[tokio::test]
async fn structured_output_has_a_schema_and_structured_content() {
    let server = MockServer::start(MockConfig::default()).await.unwrap();
    let client = connect(&server.url(), &Recorder::default()).await;
    let tools = client.list_all_tools().await.unwrap();
    let tool = tools.iter().find(|t| t.name == "structured").unwrap();
    let schema = Value::Object(
        tool.output_schema
            .as_ref()
            .expect("outputSchema")
            .as_ref()
            .clone(),
    );
    assert_eq!(schema["type"], "object", "{schema}");
    assert_eq!(schema["properties"]["sum"]["type"], "number", "{schema}");
    assert_eq!(schema["required"], json!(["sum"]), "{schema}");

    let result = call(&client, "structured", json!({ "a": 2, "b": 3.5 })).await;
    assert_eq!(result.is_error, Some(false));
    assert_eq!(result.structured_content, Some(json!({ "sum": 5.5 })));
    let text: Value = serde_json::from_str(&text(&result)).unwrap();
    assert_eq!(text, json!({ "sum": 5.5 }));
    client.cancel().await.unwrap();
    server.shutdown().await;
}

#[tokio::test]
async fn fail_is_a_tool_error_not_a_json_rpc_error() {
    let server = MockServer::start(MockConfig::default()).await.unwrap();
    let client = connect(&server.url(), &Recorder::default()).await;
    let result = call(&client, "fail", json!({ "message": "it broke" })).await;
    assert_eq!(result.is_error, Some(true));
    assert_eq!(any_text(&result), "it broke");
    client.cancel().await.unwrap();
    server.shutdown().await;
}

#[tokio::test]
async fn meta_echoes_the_request_meta_without_the_progress_token() {
    let server = MockServer::start(MockConfig::default()).await.unwrap();
    let client = connect(&server.url(), &Recorder::default()).await;
    let mut meta = RequestMetaObject::new();
    meta.0
        .0
        .insert("mock/trace".into(), json!({ "id": "abc", "n": 1 }));
    meta.0.0.insert("other".into(), json!("x"));
    let handle = client
        .send_request_with_option(
            ClientRequest::CallToolRequest(CallToolRequest::new(params("meta", json!({})))),
            PeerRequestOptions::no_options().with_meta(meta),
        )
        .await
        .unwrap();
    let result = match handle.await_response().await.unwrap() {
        ServerResult::CallToolResult(r) => r,
        other => panic!("{other:?}"),
    };
    let echoed = result.meta.as_ref().expect("result _meta").0["mock/echo"].clone();
    assert_eq!(
        echoed,
        json!({ "mock/trace": { "id": "abc", "n": 1 }, "other": "x" })
    );
    let text: Value = serde_json::from_str(&text(&result)).unwrap();
    assert_eq!(text, echoed);

    // rmcp puts a progressToken on every request: it is left out of the echo
    let plain = call(&client, "meta", json!({})).await;
    assert_eq!(plain.meta.as_ref().unwrap().0["mock/echo"], json!({}));
    client.cancel().await.unwrap();
    server.shutdown().await;
}

#[tokio::test]
async fn meta_in_the_2026_era_shows_the_per_request_fields() {
    let server = MockServer::start(MockConfig::default()).await.unwrap();
    let client = connect_with(&server.url(), &Recorder::default(), discover()).await;
    let result = call(&client, "meta", json!({})).await;
    let echoed = &result.meta.as_ref().unwrap().0["mock/echo"];
    assert_eq!(
        echoed["io.modelcontextprotocol/protocolVersion"], "2026-07-28",
        "{echoed}"
    );
    assert!(echoed.get("progressToken").is_none(), "{echoed}");
    client.cancel().await.unwrap();
    server.shutdown().await;
}

#[tokio::test]
async fn poke_chooses_which_list_changed() {
    let server = MockServer::start(MockConfig::default()).await.unwrap();
    let recorder = Recorder::default();
    let client = connect(&server.url(), &recorder).await;
    for (args, event) in [
        (json!({}), Event::ToolsChanged),
        (json!({ "what": "tools" }), Event::ToolsChanged),
        (json!({ "what": "resources" }), Event::ResourcesChanged),
        (json!({ "what": "prompts" }), Event::PromptsChanged),
    ] {
        recorder.clear();
        let poked = call(&client, "poke", args.clone()).await;
        assert_eq!(text(&poked), "poked");
        let events = recorder.wait_event(event.clone()).await;
        assert_eq!(events, [event], "{args}");
    }
    // rmcp reports arguments that do not deserialize as a tool error
    let bad = call(&client, "poke", json!({ "what": "everything" })).await;
    assert_eq!(bad.is_error, Some(true));
    assert!(any_text(&bad).contains("everything"), "{bad:?}");
    client.cancel().await.unwrap();
    server.shutdown().await;
}
