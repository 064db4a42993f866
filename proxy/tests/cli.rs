//! Contract: the CLI (`seed`, `keys create`, `--help` on each) works on a real database file,
//! and a key it prints opens the instance.

mod common;

use std::process::Command;

use common::*;
use mock_mcp::{MockConfig, MockServer};

fn run(args: &[&str]) -> std::process::Output {
    Command::new(proxy_bin()).args(args).output().unwrap()
}

#[tokio::test]
async fn seed_and_keys_create_then_the_key_works() {
    for help in [
        &["--help"][..],
        &["serve", "--help"],
        &["seed", "--help"],
        &["keys", "create", "--help"],
    ] {
        let out = run(help);
        assert!(out.status.success(), "{help:?}");
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("Usage"),
            "{help:?}"
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("cli.db").display());
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    let seed = dir.path().join("seed.toml");
    std::fs::write(
        &seed,
        http_seed(
            &[("echo", &mock.url(), "shared")],
            "demo",
            "demo-key-0001",
            "auto",
        ),
    )
    .unwrap();
    let seed = seed.to_str().unwrap();

    let out = run(&["seed", seed, "--database-url", &db]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("1 new key"));
    let out = run(&["seed", seed, "--database-url", &db]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("0 new key"),
        "idempotent"
    );

    let out = run(&[
        "keys",
        "create",
        "--instance",
        "demo",
        "--database-url",
        &db,
    ]);
    assert!(out.status.success());
    let key = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert!(key.starts_with("mcp_"), "{key}");
    let out = run(&[
        "keys",
        "create",
        "--instance",
        "nope",
        "--database-url",
        &db,
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("\"nope\""));

    // bad seed: non-zero exit, the message names the problem
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "[[upstream]]\nname = \"x\"\ntransport = \"carrier-pigeon\"\n",
    )
    .unwrap();
    let out = run(&["seed", bad.to_str().unwrap(), "--database-url", &db]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("carrier-pigeon"));

    // a proxy on the same database accepts the created key
    let proxy = start_proxy("", |s| s.database_url = Some(db.clone())).await;
    let client = client(&proxy.url("demo"), &key).await;
    let r = client
        .call_tool(call("echo", serde_json::json!({ "text": "cli" })))
        .await
        .unwrap();
    assert_eq!(text(&r), "cli");
    client.cancel().await.unwrap();
    proxy.shutdown().await;
}
