//! `sample`, `elicit` and `roots`: answered by the test's `ClientHandler`, in the 2025-11-25
//! era (server→client requests on the session) and the 2026-07-28 era (MRTR: an
//! `InputRequiredResult`, then the retry with `inputResponses`).

// rmcp marks sampling deprecated (SEP-2577); the mock serves it on purpose.
#![allow(deprecated)]

mod common;

use common::*;
use mock_mcp::{MockConfig, MockServer, elicit_schema};
use rmcp::model::{CallToolRequestParams, CallToolResponse, InputRequest, JsonObject};
use serde_json::{Value, json};

async fn result_text(client: &Client, name: &'static str, args: Value) -> String {
    text(&call(client, name, args).await)
}

/// Every client request tool gives the same answers in both eras.
async fn answered_by_the_client(client: &Client, recorder: &Recorder) {
    assert_eq!(
        result_text(client, "sample", json!({ "prompt": "hello" })).await,
        "sampled: reply to hello"
    );
    assert!(
        recorder
            .events()
            .contains(&Event::Sampled("hello".into(), 100)),
        "{:?}",
        recorder.events()
    );

    assert_eq!(
        result_text(client, "elicit", json!({ "message": "who are you?" })).await,
        r#"accepted: {"name":"Ferris"}"#
    );
    assert!(
        recorder
            .events()
            .contains(&Event::Elicited("who are you?".into(), elicit_schema())),
        "{:?}",
        recorder.events()
    );
    assert_eq!(
        result_text(client, "elicit", json!({ "message": "please decline" })).await,
        "declined"
    );
    assert_eq!(
        result_text(client, "elicit", json!({ "message": "please cancel" })).await,
        "cancelled"
    );

    assert_eq!(
        result_text(client, "roots", json!({})).await,
        ROOTS.join(",")
    );
    assert!(recorder.events().contains(&Event::RootsListed));
}

/// A client without the capabilities gets tool errors saying which one is missing.
async fn refused_without_capabilities(client: &Client) {
    for (name, args, capability) in [
        ("sample", json!({ "prompt": "x" }), "sampling"),
        ("elicit", json!({ "message": "x" }), "elicitation"),
        ("roots", json!({}), "roots"),
    ] {
        let result = call(client, name, args).await;
        assert_eq!(result.is_error, Some(true), "{name}: {result:?}");
        assert!(
            any_text(&result).contains(capability),
            "{name}: {}",
            any_text(&result)
        );
    }
}

#[tokio::test]
async fn session_client_answers_sampling_elicitation_and_roots() {
    let server = MockServer::start(MockConfig::default()).await.unwrap();
    let recorder = Recorder::default();
    let client = connect(&server.url(), &recorder).await;
    answered_by_the_client(&client, &recorder).await;
    client.cancel().await.unwrap();
    server.shutdown().await;
}

#[tokio::test]
async fn session_client_without_capabilities_gets_tool_errors() {
    let server = MockServer::start(MockConfig::default()).await.unwrap();
    let recorder = Recorder::without_capabilities();
    let client = connect(&server.url(), &recorder).await;
    refused_without_capabilities(&client).await;
    assert!(recorder.events().is_empty(), "{:?}", recorder.events());
    client.cancel().await.unwrap();
    server.shutdown().await;
}

/// The rmcp client's `call_tool` fulfils the `InputRequiredResult` through its handler and
/// retries; the final result is the same as in the session era.
#[tokio::test]
async fn mrtr_round_trips_in_the_2026_era() {
    for stateless in [false, true] {
        let server = MockServer::start(MockConfig {
            stateless,
            ..MockConfig::default()
        })
        .await
        .unwrap();
        let recorder = Recorder::default();
        let client = connect_with(&server.url(), &recorder, discover()).await;
        answered_by_the_client(&client, &recorder).await;
        client.cancel().await.unwrap();
        server.shutdown().await;
    }
}

/// The first round on the wire: one input request under a fixed key, and a requestState.
#[tokio::test]
async fn the_first_2026_round_is_an_input_required_result() {
    let server = MockServer::start(MockConfig::default()).await.unwrap();
    let recorder = Recorder::default();
    let client = connect_with(&server.url(), &recorder, discover()).await;
    let args: JsonObject = serde_json::from_value(json!({ "prompt": "once" })).unwrap();
    let first = client
        .call_tool_once(CallToolRequestParams::new("sample").with_arguments(args.clone()))
        .await
        .unwrap();
    let CallToolResponse::InputRequired(input) = first else {
        panic!("expected InputRequiredResult, got {first:?}");
    };
    let state = input.request_state.clone().expect("requestState");
    let requests = input.input_requests.clone().expect("inputRequests");
    assert_eq!(requests.keys().collect::<Vec<_>>(), ["sample"]);
    let InputRequest::CreateMessage(request) = &requests["sample"] else {
        panic!(
            "expected sampling/createMessage, got {:?}",
            requests["sample"]
        );
    };
    assert_eq!(request.params.max_tokens, 100);
    assert!(recorder.events().is_empty(), "nothing asked the client yet");

    // answer by hand and retry
    let answer = json!({
        "role": "assistant",
        "content": { "type": "text", "text": "by hand" },
        "model": "m"
    });
    let retry = CallToolRequestParams::new("sample")
        .with_arguments(args.clone())
        .with_request_state(state.clone())
        .with_input_responses([("sample".to_string(), answer)].into_iter().collect());
    match client.call_tool_once(retry).await.unwrap() {
        CallToolResponse::Complete(result) => assert_eq!(text(&result), "sampled: by hand"),
        other => panic!("expected the final result, got {other:?}"),
    }

    // a retry with a state the mock never issued is invalid params
    let forged = CallToolRequestParams::new("sample")
        .with_arguments(args)
        .with_request_state("forged");
    let e = mcp_error(client.call_tool_once(forged).await.unwrap_err());
    assert_eq!(e.code, rmcp::model::ErrorCode::INVALID_PARAMS, "{e:?}");
    assert!(e.message.contains("forged"), "{}", e.message);
    client.cancel().await.unwrap();
    server.shutdown().await;
}

#[tokio::test]
async fn a_2026_client_without_capabilities_gets_tool_errors() {
    let server = MockServer::start(MockConfig::default()).await.unwrap();
    let recorder = Recorder::without_capabilities();
    let client = connect_with(&server.url(), &recorder, discover()).await;
    refused_without_capabilities(&client).await;
    assert!(recorder.events().is_empty(), "{:?}", recorder.events());
    client.cancel().await.unwrap();
    server.shutdown().await;
}

/// Stateless 2025-11-25 HTTP has no session: rmcp knows no client capabilities and cannot
/// carry a server→client request, so these tools answer with a tool error at once.
#[tokio::test]
async fn stateless_2025_mode_cannot_ask_the_client() {
    let server = MockServer::start(MockConfig {
        stateless: true,
        ..MockConfig::default()
    })
    .await
    .unwrap();
    let recorder = Recorder::default();
    let client = connect(&server.url(), &recorder).await;
    refused_without_capabilities(&client).await;
    client.cancel().await.unwrap();
    server.shutdown().await;
}
