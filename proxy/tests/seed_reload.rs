//! Contract: the admin path (re-applying the seed: SIGHUP to `serve --seed`) drops the config,
//! key and tool caches, so a changed upstream, a new instance and a new key are served at once,
//! not after the 60 s TTL; the shared client of a re-configured upstream is replaced.

mod common;

use common::*;
use mock_mcp::{MockConfig, MockServer};
use serde_json::json;

#[tokio::test]
async fn reloading_the_seed_takes_effect_at_once() {
    let first = MockServer::start(MockConfig::default()).await.unwrap();
    let second = MockServer::start(MockConfig::default()).await.unwrap();
    let proxy = start_proxy(
        &http_seed(
            &[("echo", &first.url(), "shared")],
            "demo",
            "demo-key-0001",
            "auto",
        ),
        |_| {},
    )
    .await;
    let client = client(&proxy.url("demo"), "demo-key-0001").await;
    client
        .call_tool(call("echo", json!({ "text": "a" })))
        .await
        .unwrap();
    assert_eq!((first.calls(), second.calls()), (1, 0));

    // same upstream name, new URL; a second instance with its own key
    let seed = http_seed(
        &[("echo", &second.url(), "shared")],
        "demo",
        "demo-key-0001",
        "auto",
    ) + "\n[[instance]]\nid = \"fresh\"\nupstreams = [\"echo\"]\napi_keys = [\"fresh-key-0001\"]\n";
    std::fs::write(proxy.proxy.state.settings.seed.as_ref().unwrap(), seed).unwrap();
    let report = proxy.proxy.state.reload_seed().await.unwrap().unwrap();
    assert_eq!(report.keys_added, 1);

    client
        .call_tool(call("echo", json!({ "text": "b" })))
        .await
        .unwrap();
    assert_eq!(
        (first.calls(), second.calls()),
        (1, 1),
        "the new URL is used at once"
    );
    let fresh = common::client(&proxy.url("fresh"), "fresh-key-0001").await;
    fresh
        .call_tool(call("echo", json!({ "text": "c" })))
        .await
        .unwrap();
    assert_eq!(second.calls(), 2);
    assert_eq!(
        proxy
            .proxy
            .state
            .metrics
            .upstream_state("echo", "active")
            .get(),
        2,
        "one shared client per instance"
    );

    // a broken seed is refused and changes nothing
    std::fs::write(
        proxy.proxy.state.settings.seed.as_ref().unwrap(),
        "[[instance]]\nid = 1\n",
    )
    .unwrap();
    assert!(proxy.proxy.state.reload_seed().await.is_err());
    client
        .call_tool(call("echo", json!({ "text": "d" })))
        .await
        .unwrap();
    assert_eq!(second.calls(), 3);

    client.cancel().await.unwrap();
    fresh.cancel().await.unwrap();
    proxy.shutdown().await;
}
