//! Routing of the non-tool surface over several upstreams (prompt names by the prefix rule,
//! URIs by who listed them, templates, completions), the proxy's own pagination, the
//! capabilities it advertises, stdio upstreams, and server→client requests that cannot be
//! tied to a caller.

#![allow(deprecated)] // sampling: SEP-2577-deprecated, part of 2025-11-25

mod common;

use std::time::Duration;

use common::surface::{Era, assert_known_answers, assert_same, observe};
use common::*;
use mock_mcp::recorder::{Recorder, connect_authorized};
use mock_mcp::{MockConfig, MockServer};
use rmcp::model::{
    ArgumentInfo, CallToolRequestParams, CompleteRequestParams, GetPromptRequestParams,
    PaginatedRequestParams, ReadResourceRequestParams, Reference,
};
use rmcp::service::ClientLifecycleMode;
use serde_json::json;

fn tool(name: &str, args: serde_json::Value) -> CallToolRequestParams {
    CallToolRequestParams::new(name.to_string()).with_arguments(args.as_object().cloned().unwrap())
}

fn first_text(r: &rmcp::model::ReadResourceResult) -> String {
    serde_json::to_value(r).unwrap()["contents"][0]["text"]
        .as_str()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn several_upstreams_route_prompts_uris_templates_and_completions() {
    let a = MockServer::start(MockConfig::default()).await.unwrap();
    let b = MockServer::start(MockConfig::default()).await.unwrap();
    let seed = http_seed(
        &[("a", &a.url(), "shared"), ("b", &b.url(), "per-session")],
        "multi",
        "multi-key-0001",
        "auto",
    );
    let proxy = start_proxy(&seed, |_| {}).await;
    let recorder = Recorder::default();
    let c = connect_authorized(
        &proxy.url("multi"),
        Some("multi-key-0001"),
        &recorder,
        ClientLifecycleMode::Initialize,
    )
    .await;

    // what the instance advertises: the union of what its upstreams offer
    let caps = serde_json::to_value(&c.peer_info().unwrap().capabilities).unwrap();
    assert_eq!(
        caps["resources"],
        json!({ "subscribe": true, "listChanged": true }),
        "{caps}"
    );
    assert_eq!(caps["prompts"]["listChanged"], true, "{caps}");
    assert!(
        caps["completions"].is_object() && caps["logging"].is_object(),
        "{caps}"
    );

    // prompts follow the tool prefix rule
    let mut prompts: Vec<String> = c
        .list_all_prompts()
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.name)
        .collect();
    prompts.sort();
    assert_eq!(
        prompts,
        [
            "a__greet",
            "a__plain",
            "a__summarize",
            "b__greet",
            "b__plain",
            "b__summarize"
        ]
    );
    let greeting = c
        .get_prompt(
            GetPromptRequestParams::new("b__greet").with_arguments(
                json!({ "name": "Ada", "style": "formal" })
                    .as_object()
                    .cloned()
                    .unwrap(),
            ),
        )
        .await
        .unwrap();
    let greeting = serde_json::to_value(&greeting).unwrap();
    assert_eq!(greeting["messages"][0]["content"]["text"], "Good day, Ada.");
    let unknown = rpc_error(
        c.get_prompt(GetPromptRequestParams::new("c__greet"))
            .await
            .unwrap_err(),
    );
    assert!(unknown.message.contains("c__greet"), "{}", unknown.message);

    // both list the same URIs: listed once, the first upstream owns them
    let resources = c.list_all_resources().await.unwrap();
    assert_eq!(resources.len(), 4, "{resources:?}");
    assert_eq!(c.list_all_resource_templates().await.unwrap().len(), 1);
    c.call_tool(tool("b__bump", json!({}))).await.unwrap();
    assert_eq!((a.counter(), b.counter()), (0, 1));
    let counter = c
        .read_resource(ReadResourceRequestParams::new("mock://counter"))
        .await
        .unwrap();
    assert_eq!(
        first_text(&counter),
        "0",
        "read from a, which listed it first"
    );
    let item = c
        .read_resource(ReadResourceRequestParams::new("mock://items/xyz"))
        .await
        .unwrap();
    assert_eq!(
        first_text(&item),
        "item xyz",
        "a template that matches routes it"
    );
    let nobody = rpc_error(
        c.read_resource(ReadResourceRequestParams::new("mock://nobody/listed"))
            .await
            .unwrap_err(),
    );
    assert_eq!(nobody.code.0, -32002, "resource not found");
    assert!(
        nobody.message.contains("mock://nobody/listed") && nobody.message.contains("no upstream"),
        "{}",
        nobody.message
    );

    // completions: a prompt argument by the prompt's route, a template's by its owner
    let styles = c
        .complete(CompleteRequestParams::new(
            Reference::for_prompt("b__greet"),
            ArgumentInfo::new("style", "c"),
        ))
        .await
        .unwrap();
    assert_eq!(styles.completion.values, ["casual"]);
    let ids = c
        .complete(CompleteRequestParams::new(
            Reference::for_resource("mock://items/{id}"),
            ArgumentInfo::new("id", "x"),
        ))
        .await
        .unwrap();
    assert_eq!(ids.completion.values, ["xyz"]);
    c.cancel().await.unwrap();
    proxy.shutdown().await;
}

#[tokio::test]
async fn merged_lists_come_in_the_proxys_own_pages() {
    let (_mock, proxy) = echo_proxy("shared", |s| s.list_page_size = 5).await;
    let recorder = Recorder::default();
    let c = connect_authorized(
        &proxy.url("demo"),
        Some(KEY),
        &recorder,
        ClientLifecycleMode::Initialize,
    )
    .await;
    let first = c.list_tools(None).await.unwrap();
    assert_eq!(first.tools.len(), 5);
    let cursor = first.next_cursor.clone().expect("more pages");
    let second = c
        .list_tools(Some(
            PaginatedRequestParams::default().with_cursor(Some(cursor)),
        ))
        .await
        .unwrap();
    assert_eq!(second.tools.len(), 5);
    assert_ne!(first.tools[0].name, second.tools[0].name);
    // every page together is the whole list, once
    let all = c.list_all_tools().await.unwrap();
    assert_eq!(all.len(), mock_mcp::TOOL_NAMES.len());
    // the mock pages by 2; the proxy fetched every page of it and re-pages by 5
    assert_eq!(c.list_all_prompts().await.unwrap().len(), 3);
    let bad = rpc_error(
        c.list_resources(Some(
            PaginatedRequestParams::default().with_cursor(Some("not-ours".into())),
        ))
        .await
        .unwrap_err(),
    );
    assert_eq!(bad.code.0, -32602);
    assert!(bad.message.contains("\"not-ours\""), "{}", bad.message);
    c.cancel().await.unwrap();
    proxy.shutdown().await;
}

/// A stdio upstream has no event streams: a server request is tied to its caller because it
/// is the only call in flight on the connection.
#[tokio::test]
async fn a_stdio_upstream_carries_the_whole_surface() {
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    let recorder = Recorder::default();
    let direct = connect_authorized(
        &mock.url(),
        None,
        &recorder,
        ClientLifecycleMode::Initialize,
    )
    .await;
    let seen_direct = observe(&direct, &recorder, Era::Sessions).await;
    direct.cancel().await.unwrap();
    for mode in ["shared", "per-session"] {
        let proxy = start_proxy(&stdio_seed("mock", mode, "demo", KEY), |_| {}).await;
        let recorder = Recorder::default();
        let c = connect_authorized(
            &proxy.url("demo"),
            Some(KEY),
            &recorder,
            ClientLifecycleMode::Initialize,
        )
        .await;
        let seen = observe(&c, &recorder, Era::Sessions).await;
        assert_known_answers(&seen, Era::Sessions);
        assert_same(&seen_direct, &seen, &format!("stdio {mode}"));
        c.cancel().await.unwrap();
        proxy.shutdown().await;
    }
}

/// On a shared stdio connection with two calls in flight, a sampling request cannot be tied
/// to either caller: it is refused with an error (counted), never sent to the wrong client.
#[tokio::test]
async fn a_server_request_that_cannot_be_tied_to_a_caller_is_refused_and_counted() {
    let proxy = start_proxy(&stdio_seed("mock", "shared", "demo", KEY), |_| {}).await;
    let (ra, rb) = (Recorder::default(), Recorder::default());
    let a = connect_authorized(
        &proxy.url("demo"),
        Some(KEY),
        &ra,
        ClientLifecycleMode::Initialize,
    )
    .await;
    let b = connect_authorized(
        &proxy.url("demo"),
        Some(KEY),
        &rb,
        ClientLifecycleMode::Initialize,
    )
    .await;
    let busy = tokio::spawn({
        let peer = a.peer().clone();
        async move { peer.call_tool(tool("sleep", json!({ "ms": 1500 }))).await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let refused = b
        .call_tool(tool("sample", json!({ "prompt": "hi" })))
        .await
        .unwrap();
    assert_eq!(refused.is_error, Some(true), "{refused:?}");
    let text = serde_json::to_value(&refused).unwrap()["content"][0]["text"].to_string();
    assert!(text.contains("not tied to a request in flight"), "{text}");
    assert!(
        ra.events().is_empty() && rb.events().is_empty(),
        "nobody was asked"
    );
    let m = metrics_text(&proxy).await;
    assert_eq!(
        metric_value(
            &m,
            "mcp_proxy_server_requests_total",
            &[
                ("method", "sampling/createMessage"),
                ("outcome", "unroutable")
            ]
        ),
        Some(1.0),
        "{m}"
    );
    busy.await.unwrap().unwrap();
    // alone on the connection, the same call is tied to its caller again
    let answered = b
        .call_tool(tool("sample", json!({ "prompt": "hi" })))
        .await
        .unwrap();
    assert_eq!(
        answered.content[0].as_text().unwrap().text,
        "sampled: reply to hi"
    );
    a.cancel().await.unwrap();
    b.cancel().await.unwrap();
    proxy.shutdown().await;
}

/// 2026-07-28 has no session: a client hears `list_changed` and `resources/updated` on a
/// `subscriptions/listen` stream. Through the proxy it hears them from upstreams that speak
/// either era; the URIs it watches are subscribed upstream while it listens, and no longer
/// once it stops.
#[tokio::test]
async fn a_listen_stream_through_the_proxy_hears_updates_and_list_changes() {
    use rmcp::model::{ServerNotification, SubscriptionFilter};
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    let proxy = start_proxy(
        &http_seed(&[("mock", &mock.url(), "shared")], "demo", KEY, "auto"),
        |_| {},
    )
    .await;
    let listener = connect_authorized(
        &proxy.url("demo"),
        Some(KEY),
        &Recorder::default(),
        mock_mcp::recorder::discover(),
    )
    .await;
    let filter = SubscriptionFilter::builder()
        .tools_list_changed()
        .resources_list_changed()
        .prompts_list_changed()
        .resource_subscriptions(["mock://counter"])
        .build();
    let mut subscription = listener.listen(filter).await.unwrap();
    let accepted = subscription.acknowledged().clone();
    assert_eq!(accepted.resources_list_changed, Some(true), "{accepted:?}");
    assert_eq!(
        accepted.resource_subscriptions,
        Some(vec!["mock://counter".to_string()])
    );
    async fn next(s: &mut rmcp::service::Subscription) -> ServerNotification {
        tokio::time::timeout(Duration::from_secs(5), s.next())
            .await
            .expect("no notification on the listen stream")
            .unwrap()
            .expect("the listen stream ended")
    }
    // the upstream subscription is in place once the mock counts it
    assert!(
        eventually_async(|| async { mock.subscriptions().0 == 1 }).await,
        "upstream subscriptions: {:?}",
        mock.subscriptions()
    );
    // a session of the older era bumps and pokes through the proxy
    let session = connect_authorized(
        &proxy.url("demo"),
        Some(KEY),
        &Recorder::default(),
        ClientLifecycleMode::Initialize,
    )
    .await;
    session.call_tool(tool("bump", json!({}))).await.unwrap();
    match next(&mut subscription).await {
        ServerNotification::ResourceUpdatedNotification(n) => {
            assert_eq!(n.params.uri, "mock://counter")
        }
        other => panic!("expected resources/updated, got {other:?}"),
    }
    session
        .call_tool(tool("poke", json!({ "what": "prompts" })))
        .await
        .unwrap();
    assert!(matches!(
        next(&mut subscription).await,
        ServerNotification::PromptListChangedNotification(_)
    ));
    session.call_tool(tool("poke", json!({}))).await.unwrap();
    assert!(matches!(
        next(&mut subscription).await,
        ServerNotification::ToolListChangedNotification(_)
    ));
    // stopping the stream ends the upstream subscription it needed
    subscription.cancel().await.unwrap();
    assert!(
        eventually_async(|| async { mock.subscriptions().0 == 0 }).await,
        "upstream subscriptions after the stream ended: {:?}",
        mock.subscriptions()
    );
    session.cancel().await.unwrap();
    listener.cancel().await.unwrap();
    proxy.shutdown().await;
}

async fn eventually_async<F, Fut>(mut f: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    for _ in 0..250 {
        if f().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}
