//! The whole MCP surface of the mock, observed by one client: every answer it gets and every
//! notification and server request it receives, as one JSON document. The same observation of
//! the mock directly and through the proxy must be equal (the differential test), and each
//! item is also checked against the value the mock is known to give.

#![allow(deprecated)] // logging, sampling and roots: SEP-2577-deprecated, part of 2025-11-25

use std::collections::BTreeMap;
use std::time::Duration;

use mock_mcp::recorder::{Client, Event, Recorder};
use rmcp::model::{
    ArgumentInfo, CallToolRequestParams, CompleteRequestParams, GetPromptRequestParams,
    LoggingLevel, ReadResourceRequestParams, Reference, RequestMetaObject, SetLevelRequestParams,
    SubscribeRequestParams, UnsubscribeRequestParams,
};
use serde_json::{Value, json};

/// Which protocol era the observing client speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Era {
    /// 2025-11-25: `initialize`, a session, server→client requests and notifications.
    Sessions,
    /// 2026-07-28: `server/discover`, stateless.
    Stateless,
}

/// What one observation saw, by item.
pub type Observation = BTreeMap<&'static str, Value>;

fn to_json<T: serde::Serialize>(v: &T) -> Value {
    serde_json::to_value(v).expect("serializable")
}

/// An error as what a client can compare: the JSON-RPC code (messages name the hop).
fn error_code(e: rmcp::ServiceError) -> Value {
    match e {
        rmcp::ServiceError::McpError(e) => json!({ "code": e.code.0 }),
        other => json!({ "transport": other.to_string() }),
    }
}

fn call(name: &str, args: Value) -> CallToolRequestParams {
    CallToolRequestParams::new(name.to_string())
        .with_arguments(args.as_object().cloned().unwrap_or_default())
}

async fn call_json(client: &Client, name: &str, args: Value) -> Value {
    match client.call_tool(call(name, args)).await {
        Ok(r) => to_json(&r),
        Err(e) => error_code(e),
    }
}

/// The tool result's text (all text blocks), or the error.
async fn call_text(client: &Client, name: &str, args: Value) -> Value {
    match client.call_tool(call(name, args)).await {
        Ok(r) => {
            let text: String = r
                .content
                .iter()
                .filter_map(|c| c.as_text().map(|t| t.text.clone()))
                .collect();
            json!({ "text": text, "isError": r.is_error.unwrap_or(false) })
        }
        Err(e) => error_code(e),
    }
}

fn sorted_by<T: serde::Serialize>(items: Vec<T>, key: &str) -> Value {
    let mut v: Vec<Value> = items.iter().map(to_json).collect();
    v.sort_by(|a, b| a[key].as_str().cmp(&b[key].as_str()));
    Value::Array(v)
}

fn read(uri: &str) -> ReadResourceRequestParams {
    ReadResourceRequestParams::new(uri.to_string())
}

/// Observes the whole surface through `client` (whose handler is `recorder`).
pub async fn observe(client: &Client, recorder: &Recorder, era: Era) -> Observation {
    let mut o = observe_requests(client, recorder).await;
    // 2025-11-25: requests to the client inside the call; 2026-07-28: input-required results
    // the client fulfils and retries with (MRTR). The same answers either way.
    observe_client_requests(client, &mut o).await;
    if era == Era::Sessions {
        observe_unsolicited(client, recorder, &mut o).await;
    }
    o
}

/// Everything a client asks and gets answered, with the progress a call reports on its way.
pub async fn observe_requests(client: &Client, recorder: &Recorder) -> Observation {
    let mut o = Observation::new();
    o.insert(
        "tools",
        sorted_by(client.list_all_tools().await.expect("tools/list"), "name"),
    );
    o.insert(
        "resources",
        sorted_by(
            client.list_all_resources().await.expect("resources/list"),
            "uri",
        ),
    );
    o.insert(
        "templates",
        sorted_by(
            client
                .list_all_resource_templates()
                .await
                .expect("resources/templates/list"),
            "uriTemplate",
        ),
    );
    o.insert(
        "prompts",
        sorted_by(
            client.list_all_prompts().await.expect("prompts/list"),
            "name",
        ),
    );
    for (item, uri) in [
        ("read readme", "mock://static/readme"),
        ("read config", "mock://static/config.json"),
        ("read logo", "mock://static/logo.png"),
        ("read template", "mock://items/abc"),
        ("read unknown", "mock://nobody/listed"),
    ] {
        let r = match client.read_resource(read(uri)).await {
            Ok(r) => to_json(&r),
            Err(e) => error_code(e),
        };
        o.insert(item, r);
    }
    let greet = |args: Value| {
        GetPromptRequestParams::new("greet").with_arguments(args.as_object().cloned().unwrap())
    };
    for (item, params) in [
        (
            "prompt greet pirate",
            greet(json!({ "name": "Ada", "style": "pirate" })),
        ),
        ("prompt greet no name", greet(json!({}))),
        ("prompt plain", GetPromptRequestParams::new("plain")),
        ("prompt unknown", GetPromptRequestParams::new("nope")),
    ] {
        let r = match client.get_prompt(params).await {
            Ok(r) => to_json(&r),
            Err(e) => error_code(e),
        };
        o.insert(item, r);
    }
    for (item, reference, arg, prefix) in [
        (
            "complete style",
            Reference::for_prompt("greet"),
            "style",
            "p",
        ),
        ("complete name", Reference::for_prompt("greet"), "name", ""),
        (
            "complete item id",
            Reference::for_resource("mock://items/{id}"),
            "id",
            "ab",
        ),
    ] {
        let params = CompleteRequestParams::new(reference, ArgumentInfo::new(arg, prefix));
        let r = match client.complete(params).await {
            Ok(r) => to_json(&r.completion),
            Err(e) => error_code(e),
        };
        o.insert(item, r);
    }
    o.insert(
        "echo",
        call_json(client, "echo", json!({ "text": "hi" })).await,
    );
    o.insert(
        "structured",
        call_json(client, "structured", json!({ "a": 2, "b": 3.5 })).await,
    );
    o.insert(
        "fail",
        call_json(client, "fail", json!({ "message": "boom" })).await,
    );
    o.insert(
        "unknown tool",
        call_json(client, "no_such_tool", json!({})).await,
    );
    let mut meta = RequestMetaObject::new();
    meta.insert("app/trace".into(), json!({ "id": "t-1" }));
    let mut with_meta = call("meta", json!({}));
    with_meta.meta = Some(meta);
    let echoed = match client.call_tool(with_meta).await {
        Ok(r) => {
            let m = r.meta.as_ref().map(to_json).unwrap_or(Value::Null);
            // the mock echoes what arrived; only the caller's own key is the caller's
            m["mock/echo"]["app/trace"].clone()
        }
        Err(e) => error_code(e),
    };
    o.insert("meta echo", echoed);

    // progress: the caller's token on every report, in order
    recorder.clear();
    o.insert(
        "progress",
        call_text(client, "progress", json!({ "steps": 3, "ms": 5 })).await,
    );
    let events = recorder
        .wait_for("3 progress reports", |e| {
            e.iter()
                .filter(|e| matches!(e, Event::Progress { .. }))
                .count()
                >= 3
        })
        .await;
    let reports: Vec<Value> = events
        .iter()
        .filter_map(|e| match e {
            Event::Progress {
                progress,
                total,
                message,
                ..
            } => Some(json!([progress, total, message])),
            _ => None,
        })
        .collect();
    let tokens: std::collections::HashSet<String> = events
        .iter()
        .filter_map(|e| match e {
            Event::Progress { token, .. } => Some(format!("{token:?}")),
            _ => None,
        })
        .collect();
    o.insert("progress reports", json!(reports));
    o.insert("progress tokens", json!(tokens.len()));
    o
}

/// Server→client requests made inside a call: they ride the call's own stream.
pub async fn observe_client_requests(client: &Client, o: &mut Observation) {
    o.insert(
        "sample",
        call_text(client, "sample", json!({ "prompt": "hello" })).await,
    );
    o.insert(
        "elicit",
        call_text(client, "elicit", json!({ "message": "who are you?" })).await,
    );
    o.insert(
        "elicit decline",
        call_text(client, "elicit", json!({ "message": "please decline" })).await,
    );
    o.insert("roots", call_text(client, "roots", json!({})).await);
}

/// What an upstream sends unasked, outside any call: resource updates, log messages and
/// list_changed (it needs a connection that outlives the request).
async fn observe_unsolicited(client: &Client, recorder: &Recorder, o: &mut Observation) {
    // subscriptions: an update while subscribed, none after
    recorder.clear();
    let counter = "mock://counter";
    let subscribed = client
        .subscribe(SubscribeRequestParams::new(counter))
        .await
        .map(|_| json!("ok"))
        .unwrap_or_else(error_code);
    o.insert("subscribe", subscribed);
    call_text(client, "bump", json!({})).await;
    recorder
        .wait_event(Event::ResourceUpdated(counter.into()))
        .await;
    let unsubscribed = client
        .unsubscribe(UnsubscribeRequestParams::new(counter))
        .await
        .map(|_| json!("ok"))
        .unwrap_or_else(error_code);
    o.insert("unsubscribe", unsubscribed);
    recorder.clear();
    call_text(client, "bump", json!({})).await;
    recorder
        .assert_quiet(Duration::from_millis(300), |e| {
            matches!(e, Event::ResourceUpdated(_))
        })
        .await;
    o.insert(
        "read counter",
        json!(client.read_resource(read(counter)).await.is_ok()),
    );

    // logging: after setLevel(warning) an info message is not delivered, an error one is
    client
        .set_level(SetLevelRequestParams::new(LoggingLevel::Warning))
        .await
        .expect("logging/setLevel");
    recorder.clear();
    call_text(
        client,
        "log",
        json!({ "level": "info", "message": "quiet" }),
    )
    .await;
    call_text(
        client,
        "log",
        json!({ "level": "error", "message": "loud" }),
    )
    .await;
    recorder
        .wait_for("the error log message", |e| {
            e.iter().any(|e| matches!(e, Event::Log { .. }))
        })
        .await;
    // and nothing else comes after it
    tokio::time::sleep(Duration::from_millis(200)).await;
    let logs: Vec<Value> = recorder
        .events()
        .iter()
        .filter_map(|e| match e {
            Event::Log {
                level,
                logger,
                data,
            } => Some(json!([to_json(level), logger, data])),
            _ => None,
        })
        .collect();
    o.insert("logs delivered", json!(logs));

    // list_changed for resources and prompts
    recorder.clear();
    call_text(client, "poke", json!({ "what": "resources" })).await;
    recorder.wait_event(Event::ResourcesChanged).await;
    call_text(client, "poke", json!({ "what": "prompts" })).await;
    recorder.wait_event(Event::PromptsChanged).await;
    o.insert("list_changed", json!(["resources", "prompts"]));
}

/// Asserts the observation holds what the mock is known to answer (so two equal but wrong
/// observations cannot pass the differential test).
pub fn assert_known_answers(o: &Observation, era: Era) {
    let names: Vec<&str> = o["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, mock_mcp::TOOL_NAMES, "tools");
    let uris: Vec<&str> = o["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["uri"].as_str().unwrap())
        .collect();
    assert_eq!(
        uris,
        [
            "mock://counter",
            "mock://static/config.json",
            "mock://static/logo.png",
            "mock://static/readme"
        ]
    );
    assert_eq!(o["templates"][0]["uriTemplate"], "mock://items/{id}");
    assert_eq!(o["prompts"].as_array().unwrap().len(), 3);
    assert_eq!(o["read readme"]["contents"][0]["text"], "mock-mcp readme");
    assert_eq!(
        o["read config"]["contents"][0]["text"],
        r#"{"mode":"mock"}"#
    );
    assert!(
        o["read logo"]["contents"][0]["blob"].is_string(),
        "{}",
        o["read logo"]
    );
    assert_eq!(o["read template"]["contents"][0]["text"], "item abc");
    assert!(o["read unknown"]["code"].is_i64(), "{}", o["read unknown"]);
    assert_eq!(
        o["prompt greet pirate"]["messages"][0]["content"]["text"],
        "Ahoy, Ada!"
    );
    assert_eq!(o["prompt greet no name"]["code"], -32602);
    assert_eq!(
        o["prompt plain"]["messages"][0]["content"]["text"],
        "plain prompt"
    );
    assert!(o["prompt unknown"]["code"].is_i64());
    assert_eq!(o["complete style"]["values"], json!(["pirate"]));
    assert_eq!(
        o["complete name"]["values"],
        json!(["alice", "bob", "carol"])
    );
    assert_eq!(o["complete item id"]["values"], json!(["abc", "abd"]));
    assert_eq!(o["echo"]["content"][0]["text"], "hi");
    assert_eq!(o["structured"]["structuredContent"], json!({ "sum": 5.5 }));
    assert_eq!(
        o["fail"]["isError"], true,
        "a tool error stays a tool error"
    );
    assert_eq!(o["fail"]["content"][0]["text"], "boom");
    assert!(o["unknown tool"]["code"].is_i64() || o["unknown tool"]["isError"] == true);
    assert_eq!(o["meta echo"], json!({ "id": "t-1" }), "_meta passes");
    assert_eq!(o["progress"]["text"], "done 3 steps");
    assert_eq!(
        o["progress reports"],
        json!([
            [1.0, 3.0, "step 1/3"],
            [2.0, 3.0, "step 2/3"],
            [3.0, 3.0, "step 3/3"]
        ])
    );
    assert_eq!(
        o["progress tokens"], 1,
        "every report carries the caller's one token"
    );
    assert_eq!(o["sample"]["text"], "sampled: reply to hello");
    assert_eq!(o["elicit"]["text"], r#"accepted: {"name":"Ferris"}"#);
    assert_eq!(o["elicit decline"]["text"], "declined");
    assert_eq!(o["roots"]["text"], "file:///a,file:///b");
    if era == Era::Sessions && o.contains_key("subscribe") {
        assert_eq!(o["subscribe"], "ok");
        assert_eq!(o["unsubscribe"], "ok");
        assert_eq!(
            o["logs delivered"],
            json!([["error", "mock", "loud"]]),
            "only the message at or above the session's level"
        );
    }
}

/// Asserts two observations are equal item by item, naming the first that differs.
pub fn assert_same(direct: &Observation, proxied: &Observation, what: &str) {
    let keys: Vec<_> = direct.keys().chain(proxied.keys()).collect();
    for key in keys {
        assert_eq!(
            direct.get(key),
            proxied.get(key),
            "{what}: {key:?} differs (left: direct to the mock, right: through the proxy)"
        );
    }
}
