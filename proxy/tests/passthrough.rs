//! The whole MCP surface passes through: a client through the proxy sees what a client
//! connected directly to the mock sees (a differential test over every item of
//! `common::surface`), and each item is what the mock is known to answer — in both protocol
//! eras, for each connection mode.

#![allow(deprecated)] // resources/subscribe: legacy-only in rmcp, part of 2025-11-25

mod common;

use common::surface::{
    Era, assert_known_answers, assert_same, observe, observe_client_requests, observe_requests,
};
use common::*;
use mock_mcp::recorder::{Recorder, connect_authorized, discover};
use mock_mcp::{MockConfig, MockServer};
use rmcp::service::ClientLifecycleMode;

fn lifecycle(era: Era) -> ClientLifecycleMode {
    match era {
        Era::Sessions => ClientLifecycleMode::Initialize,
        Era::Stateless => discover(),
    }
}

async fn direct_and_proxied(era: Era, mode: &str) {
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    let recorder = Recorder::default();
    let direct = connect_authorized(&mock.url(), None, &recorder, lifecycle(era)).await;
    let seen_direct = observe(&direct, &recorder, era).await;
    direct.cancel().await.unwrap();
    assert_known_answers(&seen_direct, era);

    let proxy = start_proxy(
        &http_seed(&[("mock", &mock.url(), mode)], "demo", KEY, "auto"),
        |_| {},
    )
    .await;
    let recorder = Recorder::default();
    let through =
        connect_authorized(&proxy.url("demo"), Some(KEY), &recorder, lifecycle(era)).await;
    let seen_proxied = observe(&through, &recorder, era).await;
    through.cancel().await.unwrap();
    assert_known_answers(&seen_proxied, era);
    assert_same(&seen_direct, &seen_proxied, &format!("{era:?} era, {mode}"));
    proxy.shutdown().await;
}

#[tokio::test]
async fn session_era_shared() {
    direct_and_proxied(Era::Sessions, "shared").await;
}

#[tokio::test]
async fn session_era_per_session() {
    direct_and_proxied(Era::Sessions, "per-session").await;
}

/// A per-request connection lives for one request: what rides the request's own stream
/// (answers, progress, server→client requests) passes; a subscription is refused, saying why.
#[tokio::test]
async fn session_era_per_request() {
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    let recorder = Recorder::default();
    let direct = connect_authorized(&mock.url(), None, &recorder, lifecycle(Era::Sessions)).await;
    let mut seen_direct = observe_requests(&direct, &recorder).await;
    observe_client_requests(&direct, &mut seen_direct).await;
    direct.cancel().await.unwrap();

    let proxy = start_proxy(
        &http_seed(&[("mock", &mock.url(), "per-request")], "demo", KEY, "auto"),
        |_| {},
    )
    .await;
    let recorder = Recorder::default();
    let through = connect_authorized(
        &proxy.url("demo"),
        Some(KEY),
        &recorder,
        lifecycle(Era::Sessions),
    )
    .await;
    let mut seen_proxied = observe_requests(&through, &recorder).await;
    observe_client_requests(&through, &mut seen_proxied).await;
    assert_known_answers(&seen_proxied, Era::Sessions);
    assert_same(&seen_direct, &seen_proxied, "per-request");
    let refused = through
        .subscribe(rmcp::model::SubscribeRequestParams::new("mock://counter"))
        .await
        .unwrap_err();
    let refused = rpc_error(refused);
    assert!(
        refused.message.contains("connected per request"),
        "{}",
        refused.message
    );
    through.cancel().await.unwrap();
    proxy.shutdown().await;
}

#[tokio::test]
async fn stateless_era_shared() {
    direct_and_proxied(Era::Stateless, "shared").await;
}

#[tokio::test]
async fn stateless_era_per_session() {
    direct_and_proxied(Era::Stateless, "per-session").await;
}
