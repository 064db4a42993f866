//! Prompts (pages, `prompts/get` of each prompt, argument errors) and `completion/complete`.

mod common;

use common::*;
use mock_mcp::{MockConfig, MockServer};
use rmcp::model::{
    ArgumentInfo, CompleteRequestParams, CompletionInfo, ErrorCode, GetPromptRequestParams,
    GetPromptResult, JsonObject, PaginatedRequestParams, Reference, Role,
};
use serde_json::{Value, json};

fn args(v: Value) -> JsonObject {
    serde_json::from_value(v).unwrap()
}

async fn get(client: &Client, name: &str, arguments: Option<Value>) -> GetPromptResult {
    let mut params = GetPromptRequestParams::new(name);
    if let Some(a) = arguments {
        params = params.with_arguments(args(a));
    }
    client
        .get_prompt(params)
        .await
        .unwrap_or_else(|e| panic!("prompts/get {name}: {e}"))
}

/// The one user message's text.
fn message(result: &GetPromptResult) -> String {
    assert_eq!(result.messages.len(), 1, "{result:?}");
    assert_eq!(result.messages[0].role, Role::User);
    let v = serde_json::to_value(&result.messages[0].content).unwrap();
    assert_eq!(v["type"], "text", "{v}");
    v["text"].as_str().unwrap().to_string()
}

async fn get_error(client: &Client, name: &str, arguments: Option<Value>) -> rmcp::ErrorData {
    let mut params = GetPromptRequestParams::new(name);
    if let Some(a) = arguments {
        params = params.with_arguments(args(a));
    }
    mcp_error(client.get_prompt(params).await.unwrap_err())
}

async fn complete(client: &Client, r: Reference, name: &str, value: &str) -> CompletionInfo {
    client
        .complete(CompleteRequestParams::new(
            r,
            ArgumentInfo::new(name, value),
        ))
        .await
        .unwrap()
        .completion
}

#[tokio::test]
async fn prompts_come_in_pages() {
    let server = MockServer::start(MockConfig::default()).await.unwrap();
    let client = connect(&server.url(), &Recorder::default()).await;
    let first = client.list_prompts(None).await.unwrap();
    let names: Vec<&str> = first.prompts.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["greet", "summarize"]);
    assert_eq!(first.next_cursor.as_deref(), Some("2"));
    let greet = &first.prompts[0];
    assert_eq!(greet.description.as_deref(), Some("Greet someone"));
    let greet_args: Vec<(&str, Option<bool>)> = greet
        .arguments
        .as_ref()
        .unwrap()
        .iter()
        .map(|a| (a.name.as_str(), a.required))
        .collect();
    assert_eq!(greet_args, [("name", Some(true)), ("style", Some(false))]);
    let summarize = &first.prompts[1];
    let topic = &summarize.arguments.as_ref().unwrap()[0];
    assert_eq!((topic.name.as_str(), topic.required), ("topic", Some(true)));

    let second = client
        .list_prompts(Some(
            PaginatedRequestParams::default().with_cursor(Some("2".into())),
        ))
        .await
        .unwrap();
    let names: Vec<&str> = second.prompts.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["plain"]);
    assert_eq!(second.next_cursor, None);
    assert!(second.prompts[0].arguments.is_none());
    assert_eq!(client.list_all_prompts().await.unwrap().len(), 3);

    let e = mcp_error(
        client
            .list_prompts(Some(
                PaginatedRequestParams::default().with_cursor(Some("nope".into())),
            ))
            .await
            .unwrap_err(),
    );
    assert_eq!(e.code, ErrorCode::INVALID_PARAMS);
    assert!(e.message.contains("nope"), "{}", e.message);
    client.cancel().await.unwrap();
    server.shutdown().await;
}

#[tokio::test]
async fn each_prompt_renders_one_user_message() {
    let server = MockServer::start(MockConfig::default()).await.unwrap();
    let client = connect(&server.url(), &Recorder::default()).await;
    let cases = [
        ("greet", json!({ "name": "Ann" }), "Hello, Ann!"),
        (
            "greet",
            json!({ "name": "Ann", "style": "casual" }),
            "Hi Ann!",
        ),
        (
            "greet",
            json!({ "name": "Ann", "style": "formal" }),
            "Good day, Ann.",
        ),
        (
            "greet",
            json!({ "name": "Ann", "style": "pirate" }),
            "Ahoy, Ann!",
        ),
        ("summarize", json!({ "topic": "MCP" }), "Summarize MCP."),
    ];
    for (name, arguments, expected) in cases {
        let result = get(&client, name, Some(arguments.clone())).await;
        assert_eq!(message(&result), expected, "{name} {arguments}");
    }
    assert_eq!(message(&get(&client, "plain", None).await), "plain prompt");
    client.cancel().await.unwrap();
    server.shutdown().await;
}

#[tokio::test]
async fn prompt_errors_name_what_is_wrong() {
    let server = MockServer::start(MockConfig::default()).await.unwrap();
    let client = connect(&server.url(), &Recorder::default()).await;
    let cases = [
        ("greet", None, "name"),
        ("greet", Some(json!({ "style": "casual" })), "name"),
        (
            "greet",
            Some(json!({ "name": "A", "style": "loud" })),
            "style",
        ),
        ("summarize", Some(json!({})), "topic"),
        ("nope", None, "nope"),
    ];
    for (name, arguments, named) in cases {
        let e = get_error(&client, name, arguments.clone()).await;
        assert_eq!(e.code, ErrorCode::INVALID_PARAMS, "{name} {arguments:?}");
        assert!(
            e.message.contains(named),
            "{name} {arguments:?}: {}",
            e.message
        );
    }
    client.cancel().await.unwrap();
    server.shutdown().await;
}

#[tokio::test]
async fn completions_for_greet_and_the_item_template() {
    let server = MockServer::start(MockConfig::default()).await.unwrap();
    let client = connect(&server.url(), &Recorder::default()).await;
    let greet = || Reference::for_prompt("greet");
    let items = || Reference::for_resource("mock://items/{id}");
    let cases: [(Reference, &str, &str, &[&str]); 9] = [
        (greet(), "style", "", &["formal", "casual", "pirate"]),
        (greet(), "style", "p", &["pirate"]),
        (greet(), "style", "x", &[]),
        (greet(), "name", "", &["alice", "bob", "carol"]),
        (greet(), "name", "c", &["carol"]),
        (items(), "id", "ab", &["abc", "abd"]),
        (items(), "id", "", &["abc", "abd", "xyz"]),
        (Reference::for_prompt("summarize"), "topic", "", &[]),
        (Reference::for_resource("mock://counter"), "id", "", &[]),
    ];
    for (r, name, value, expected) in cases {
        let what = format!("{r:?} {name}={value:?}");
        let completion = complete(&client, r, name, value).await;
        assert_eq!(completion.values, expected, "{what}");
        assert_eq!(completion.total, Some(expected.len() as u32), "{what}");
        assert_eq!(completion.has_more, Some(false), "{what}");
    }
    client.cancel().await.unwrap();
    server.shutdown().await;
}

#[tokio::test]
async fn prompts_and_completions_in_the_2026_era() {
    let server = MockServer::start(MockConfig::default()).await.unwrap();
    let client = connect_with(&server.url(), &Recorder::default(), discover()).await;
    assert_eq!(client.list_all_prompts().await.unwrap().len(), 3);
    let result = get(
        &client,
        "greet",
        Some(json!({ "name": "Bo", "style": "pirate" })),
    )
    .await;
    assert_eq!(message(&result), "Ahoy, Bo!");
    let e = get_error(&client, "greet", None).await;
    assert_eq!(e.code, ErrorCode::INVALID_PARAMS);
    assert!(e.message.contains("name"), "{}", e.message);
    let completion = complete(&client, Reference::for_prompt("greet"), "style", "f").await;
    assert_eq!(completion.values, ["formal"]);
    client.cancel().await.unwrap();
    server.shutdown().await;
}
