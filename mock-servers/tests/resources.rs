//! Resources: pages and cursors, reads of every resource and the template, errors, and
//! change notifications: `resources/subscribe` (2025-11-25) and `subscriptions/listen`
//! (2026-07-28), both fed by the `bump` tool.

// resources/subscribe is deprecated in rmcp (legacy-only); the mock serves it on purpose.
#![allow(deprecated)]

mod common;

use std::time::Duration;

use common::*;
use mock_mcp::resources::{CONFIG_TEXT, COUNTER_URI, LOGO_PNG_BASE64, README_TEXT};
use mock_mcp::{MockConfig, MockServer};
use rmcp::model::{
    ErrorCode, PaginatedRequestParams, ReadResourceRequestParams, ResourceContents,
    ServerNotification, SubscribeRequestParams, SubscriptionFilter, UnsubscribeRequestParams,
};
use serde_json::json;

fn cursor(c: &str) -> Option<PaginatedRequestParams> {
    Some(PaginatedRequestParams::default().with_cursor(Some(c.to_string())))
}

async fn read(client: &Client, uri: &str) -> ResourceContents {
    let mut result = client
        .read_resource(ReadResourceRequestParams::new(uri))
        .await
        .unwrap_or_else(|e| panic!("read {uri}: {e}"));
    assert_eq!(result.contents.len(), 1);
    result.contents.remove(0)
}

async fn next(subscription: &mut rmcp::service::Subscription) -> ServerNotification {
    tokio::time::timeout(Duration::from_secs(5), subscription.next())
        .await
        .expect("no notification on the listen stream")
        .unwrap()
        .expect("the listen stream ended")
}

async fn wait_subscriptions(server: &MockServer, expected: (usize, usize)) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while server.subscriptions() != expected {
        assert!(
            tokio::time::Instant::now() < deadline,
            "subscriptions {:?}, expected {expected:?}",
            server.subscriptions()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn resources_come_in_pages_of_two_with_cursors() {
    let server = MockServer::start(MockConfig::default()).await.unwrap();
    let client = connect(&server.url(), &Recorder::default()).await;

    let first = client.list_resources(None).await.unwrap();
    let uris: Vec<&str> = first.resources.iter().map(|r| r.uri.as_str()).collect();
    assert_eq!(uris, ["mock://static/readme", "mock://static/config.json"]);
    assert_eq!(first.next_cursor.as_deref(), Some("2"));
    let names: Vec<&str> = first.resources.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["readme", "config"]);

    let second = client.list_resources(cursor("2")).await.unwrap();
    let uris: Vec<&str> = second.resources.iter().map(|r| r.uri.as_str()).collect();
    assert_eq!(uris, ["mock://static/logo.png", "mock://counter"]);
    assert_eq!(second.next_cursor, None);
    let mimes: Vec<Option<&str>> = second
        .resources
        .iter()
        .map(|r| r.mime_type.as_deref())
        .collect();
    assert_eq!(mimes, [Some("image/png"), Some("text/plain")]);

    assert_eq!(client.list_all_resources().await.unwrap().len(), 4);

    let templates = client.list_resource_templates(None).await.unwrap();
    assert_eq!(templates.next_cursor, None);
    assert_eq!(templates.resource_templates.len(), 1);
    let template = &templates.resource_templates[0];
    assert_eq!(
        (template.uri_template.as_str(), template.name.as_str()),
        ("mock://items/{id}", "item")
    );
    assert_eq!(template.mime_type.as_deref(), Some("text/plain"));

    client.cancel().await.unwrap();
    server.shutdown().await;
}

#[tokio::test]
async fn a_bad_cursor_is_invalid_params_naming_it() {
    let server = MockServer::start(MockConfig::default()).await.unwrap();
    let client = connect(&server.url(), &Recorder::default()).await;
    for bad in ["bogus", "99", "-1"] {
        let e = mcp_error(client.list_resources(cursor(bad)).await.unwrap_err());
        assert_eq!(e.code, ErrorCode::INVALID_PARAMS, "{bad}: {e:?}");
        assert!(e.message.contains(bad), "{bad}: {}", e.message);
        let e = mcp_error(
            client
                .list_resource_templates(cursor(bad))
                .await
                .unwrap_err(),
        );
        assert_eq!(e.code, ErrorCode::INVALID_PARAMS, "{bad}: {e:?}");
        assert!(e.message.contains(bad), "{bad}: {}", e.message);
    }
    client.cancel().await.unwrap();
    server.shutdown().await;
}

#[tokio::test]
async fn the_page_size_is_a_setting() {
    for (page_size, first_page, cursor) in [(0, 4, None), (3, 3, Some("3")), (1, 1, Some("1"))] {
        let server = MockServer::start(MockConfig {
            page_size,
            ..MockConfig::default()
        })
        .await
        .unwrap();
        let client = connect(&server.url(), &Recorder::default()).await;
        let page = client.list_resources(None).await.unwrap();
        assert_eq!(page.resources.len(), first_page, "page size {page_size}");
        assert_eq!(page.next_cursor.as_deref(), cursor, "page size {page_size}");
        assert_eq!(client.list_all_resources().await.unwrap().len(), 4);
        client.cancel().await.unwrap();
        server.shutdown().await;
    }
}

#[tokio::test]
async fn every_resource_and_the_template_can_be_read() {
    let server = MockServer::start(MockConfig::default()).await.unwrap();
    let client = connect(&server.url(), &Recorder::default()).await;

    let text_of = |c: &ResourceContents| match c {
        ResourceContents::TextResourceContents {
            text, mime_type, ..
        } => (text.clone(), mime_type.clone()),
        other => panic!("expected text, got {other:?}"),
    };
    let readme = read(&client, "mock://static/readme").await;
    assert_eq!(
        text_of(&readme),
        (README_TEXT.to_string(), Some("text/plain".into()))
    );
    assert_eq!(README_TEXT, "mock-mcp readme");
    let config = read(&client, "mock://static/config.json").await;
    assert_eq!(
        text_of(&config),
        (CONFIG_TEXT.to_string(), Some("application/json".into()))
    );
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(CONFIG_TEXT).unwrap(),
        json!({ "mode": "mock" })
    );
    match read(&client, "mock://static/logo.png").await {
        ResourceContents::BlobResourceContents {
            blob,
            mime_type,
            uri,
            ..
        } => {
            assert_eq!(uri, "mock://static/logo.png");
            assert_eq!(blob, LOGO_PNG_BASE64);
            assert_eq!(mime_type.as_deref(), Some("image/png"));
        }
        other => panic!("expected a blob, got {other:?}"),
    }
    assert_eq!(text_of(&read(&client, COUNTER_URI).await).0, "0");
    let item = read(&client, "mock://items/abc").await;
    assert_eq!(
        text_of(&item),
        ("item abc".to_string(), Some("text/plain".into()))
    );

    for unknown in ["mock://nope", "mock://items/", "mock://static/other"] {
        let e = mcp_error(
            client
                .read_resource(ReadResourceRequestParams::new(unknown))
                .await
                .unwrap_err(),
        );
        assert_eq!(e.code, ErrorCode::RESOURCE_NOT_FOUND, "{unknown}: {e:?}");
        assert!(e.message.contains(unknown), "{unknown}: {}", e.message);
    }
    client.cancel().await.unwrap();
    server.shutdown().await;
}

/// rmcp reports resource-not-found as invalid-params to 2026-07-28 peers; reads and pages work
/// the same in that era.
#[tokio::test]
async fn resources_in_the_2026_era() {
    let server = MockServer::start(MockConfig::default()).await.unwrap();
    let client = connect_with(&server.url(), &Recorder::default(), discover()).await;
    let first = client.list_resources(None).await.unwrap();
    assert_eq!(first.resources.len(), 2);
    assert_eq!(first.next_cursor.as_deref(), Some("2"));
    assert_eq!(client.list_all_resources().await.unwrap().len(), 4);
    match read(&client, "mock://items/xyz").await {
        ResourceContents::TextResourceContents { text, .. } => assert_eq!(text, "item xyz"),
        other => panic!("{other:?}"),
    }
    let e = mcp_error(
        client
            .read_resource(ReadResourceRequestParams::new("mock://nope"))
            .await
            .unwrap_err(),
    );
    assert_eq!(e.code, ErrorCode::INVALID_PARAMS, "{e:?}");
    assert!(e.message.contains("mock://nope"), "{}", e.message);
    client.cancel().await.unwrap();
    server.shutdown().await;
}

#[tokio::test]
async fn subscribe_bump_updated_unsubscribe_bump_nothing() {
    let server = MockServer::start(MockConfig::default()).await.unwrap();
    let subscriber = Recorder::default();
    let a = connect(&server.url(), &subscriber).await;
    let bystander = Recorder::default();
    let b = connect(&server.url(), &bystander).await;

    a.subscribe(SubscribeRequestParams::new(COUNTER_URI))
        .await
        .unwrap();
    assert_eq!(server.subscriptions(), (1, 0));

    // the other session bumps: only the subscriber hears of it
    let bumped = call(&b, "bump", json!({})).await;
    assert_eq!(text(&bumped), "1");
    subscriber
        .wait_event(Event::ResourceUpdated(COUNTER_URI.into()))
        .await;
    match read(&a, COUNTER_URI).await {
        ResourceContents::TextResourceContents { text, .. } => assert_eq!(text, "1"),
        other => panic!("{other:?}"),
    }
    assert_eq!(server.counter(), 1);
    bystander
        .assert_quiet(Duration::from_millis(200), |e| {
            matches!(e, Event::ResourceUpdated(_))
        })
        .await;

    a.unsubscribe(UnsubscribeRequestParams::new(COUNTER_URI))
        .await
        .unwrap();
    assert_eq!(server.subscriptions(), (0, 0));
    subscriber.clear();
    let bumped = call(&a, "bump", json!({})).await;
    assert_eq!(text(&bumped), "2");
    subscriber
        .assert_quiet(Duration::from_millis(300), |e| {
            matches!(e, Event::ResourceUpdated(_))
        })
        .await;

    a.cancel().await.unwrap();
    b.cancel().await.unwrap();
    server.shutdown().await;
}

#[tokio::test]
async fn a_closed_session_loses_its_subscriptions() {
    let server = MockServer::start(MockConfig::default()).await.unwrap();
    let a = connect(&server.url(), &Recorder::default()).await;
    a.subscribe(SubscribeRequestParams::new(COUNTER_URI))
        .await
        .unwrap();
    a.subscribe(SubscribeRequestParams::new("mock://items/abc"))
        .await
        .unwrap();
    assert_eq!(server.subscriptions(), (1, 0));
    a.cancel().await.unwrap(); // DELETE: the session and its handler go away
    wait_subscriptions(&server, (0, 0)).await;

    let b = connect(&server.url(), &Recorder::default()).await;
    assert_eq!(text(&call(&b, "bump", json!({})).await), "1");
    b.cancel().await.unwrap();
    server.shutdown().await;
}

#[tokio::test]
async fn subscribing_to_an_unknown_uri_is_not_found() {
    let server = MockServer::start(MockConfig::default()).await.unwrap();
    let a = connect(&server.url(), &Recorder::default()).await;
    let e = mcp_error(
        a.subscribe(SubscribeRequestParams::new("mock://nope"))
            .await
            .unwrap_err(),
    );
    assert_eq!(e.code, ErrorCode::RESOURCE_NOT_FOUND, "{e:?}");
    assert!(e.message.contains("mock://nope"), "{}", e.message);
    assert_eq!(server.subscriptions(), (0, 0));
    a.cancel().await.unwrap();
    server.shutdown().await;
}

/// 2026-07-28: a `subscriptions/listen` stream gets `resources/updated` for the URIs it asked
/// for (unknown ones are not acknowledged) and the list_changed kinds it asked for, from any
/// session of either era; closing the stream unregisters it.
#[tokio::test]
async fn listen_streams_get_updates_and_list_changes() {
    let server = MockServer::start(MockConfig::default()).await.unwrap();
    let listener = connect_with(&server.url(), &Recorder::default(), discover()).await;
    let filter = SubscriptionFilter::builder()
        .tools_list_changed()
        .resources_list_changed()
        .prompts_list_changed()
        .resource_subscriptions([COUNTER_URI, "mock://nope"])
        .build();
    let mut subscription = listener.listen(filter).await.unwrap();
    let accepted = subscription.acknowledged().clone();
    assert_eq!(
        accepted.resource_subscriptions,
        Some(vec![COUNTER_URI.to_string()])
    );
    assert_eq!(accepted.tools_list_changed, Some(true));
    assert_eq!(accepted.resources_list_changed, Some(true));
    assert_eq!(accepted.prompts_list_changed, Some(true));
    wait_subscriptions(&server, (0, 1)).await;

    // a 2025-11-25 session bumps and pokes
    let old = connect(&server.url(), &Recorder::default()).await;
    assert_eq!(text(&call(&old, "bump", json!({})).await), "1");
    match next(&mut subscription).await {
        ServerNotification::ResourceUpdatedNotification(n) => {
            assert_eq!(n.params.uri, COUNTER_URI)
        }
        other => panic!("expected resources/updated, got {other:?}"),
    }
    call(&old, "poke", json!({ "what": "resources" })).await;
    assert!(matches!(
        next(&mut subscription).await,
        ServerNotification::ResourceListChangedNotification(_)
    ));
    // a 2026-07-28 client pokes
    let new = connect_with(&server.url(), &Recorder::default(), discover()).await;
    call(&new, "poke", json!({ "what": "prompts" })).await;
    assert!(matches!(
        next(&mut subscription).await,
        ServerNotification::PromptListChangedNotification(_)
    ));
    call(&new, "poke", json!({})).await;
    assert!(matches!(
        next(&mut subscription).await,
        ServerNotification::ToolListChangedNotification(_)
    ));

    subscription.cancel().await.unwrap();
    wait_subscriptions(&server, (0, 0)).await;
    old.cancel().await.unwrap();
    new.cancel().await.unwrap();
    listener.cancel().await.unwrap();
    server.shutdown().await;
}

/// A listen stream that asked only for tools hears nothing of the counter or other lists.
#[tokio::test]
async fn a_listen_stream_gets_only_what_it_asked_for() {
    let server = MockServer::start(MockConfig::default()).await.unwrap();
    let listener = connect_with(&server.url(), &Recorder::default(), discover()).await;
    let mut subscription = listener
        .listen(SubscriptionFilter::builder().tools_list_changed().build())
        .await
        .unwrap();
    wait_subscriptions(&server, (0, 1)).await;
    let other = connect(&server.url(), &Recorder::default()).await;
    call(&other, "bump", json!({})).await;
    call(&other, "poke", json!({ "what": "prompts" })).await;
    call(&other, "poke", json!({ "what": "tools" })).await;
    let first = next(&mut subscription).await;
    assert!(
        matches!(first, ServerNotification::ToolListChangedNotification(_)),
        "{first:?}"
    );
    subscription.cancel().await.unwrap();
    other.cancel().await.unwrap();
    listener.cancel().await.unwrap();
    server.shutdown().await;
}

/// Shutting the server down ends open listen streams (the listen handler watches the stop
/// token), so shutdown stays prompt.
#[tokio::test]
async fn shutdown_ends_open_listen_streams() {
    let server = MockServer::start(MockConfig::default()).await.unwrap();
    let listener = connect_with(&server.url(), &Recorder::default(), discover()).await;
    let _subscription = listener
        .listen(
            SubscriptionFilter::builder()
                .resource_subscriptions([COUNTER_URI])
                .build(),
        )
        .await
        .unwrap();
    wait_subscriptions(&server, (0, 1)).await;
    let open = server.subscriptions();
    let started = std::time::Instant::now();
    server.shutdown().await;
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "shutdown took {:?} with {open:?} open",
        started.elapsed()
    );
    drop(listener);
}

/// A 2026-07-28 client that goes away with its listen stream open is unregistered.
#[tokio::test]
async fn a_vanished_listener_is_unregistered() {
    let server = MockServer::start(MockConfig::default()).await.unwrap();
    let listener = connect_with(&server.url(), &Recorder::default(), discover()).await;
    let subscription = listener
        .listen(SubscriptionFilter::builder().tools_list_changed().build())
        .await
        .unwrap();
    wait_subscriptions(&server, (0, 1)).await;
    drop(subscription);
    listener.cancel().await.unwrap();
    wait_subscriptions(&server, (0, 0)).await;
    server.shutdown().await;
}
