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

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[tokio::test]
async fn keys_list_and_revoke() {
    for help in [
        &["keys", "revoke", "--help"][..],
        &["keys", "list", "--help"],
    ] {
        let out = run(help);
        assert!(out.status.success(), "{help:?}");
        assert!(stdout(&out).contains("Usage"), "{help:?}");
        assert!(stdout(&out).contains("--notify-channel"), "{help:?}");
    }
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("keys.db").display());
    let seed = dir.path().join("seed.toml");
    let mock = MockServer::start(MockConfig::default()).await.unwrap();
    std::fs::write(
        &seed,
        http_seed(
            &[("echo", &mock.url(), "shared")],
            "demo",
            "demo-key-0001",
            "auto",
        ) + "\n[[instance]]\nid = \"bare\"\nupstreams = []\n",
    )
    .unwrap();
    assert!(
        run(&["seed", seed.to_str().unwrap(), "--database-url", &db])
            .status
            .success()
    );
    let out = run(&[
        "keys",
        "create",
        "--instance",
        "demo",
        "--database-url",
        &db,
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let key = stdout(&out).trim().to_string();
    // "created key key_… for instance demo; …"
    let id = stderr(&out)
        .split_whitespace()
        .find(|w| w.starts_with("key_"))
        .expect("keys create names the key id")
        .to_string();
    let hash = hex::encode(mcp_proxy::domain::keys::hash_key(&key));

    // list: both keys, neither the key nor its hash
    let out = run(&["keys", "list", "--instance", "demo", "--database-url", &db]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.starts_with("ID"), "{text}");
    assert_eq!(text.lines().count(), 3, "header and two keys: {text}");
    assert!(text.contains(&id), "{text}");
    assert!(!text.contains(&key) && !text.contains(&hash), "{text}");
    assert!(!text.contains("demo-key-0001"));
    let out = run(&[
        "keys",
        "list",
        "--instance",
        "demo",
        "--format",
        "json",
        "--database-url",
        &db,
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let rows = json.as_array().unwrap();
    assert_eq!(rows.len(), 2);
    let row = rows.iter().find(|r| r["id"] == id.as_str()).unwrap();
    assert!(row["created_at"].as_str().unwrap().ends_with('Z'), "{row}");
    assert!(
        row["last_used_at"].is_null() && row["revoked_at"].is_null(),
        "{row}"
    );
    assert!(!stdout(&out).contains(&hash));
    // an instance without keys: just the header
    let out = run(&["keys", "list", "--instance", "bare", "--database-url", &db]);
    assert!(out.status.success());
    assert_eq!(stdout(&out).lines().count(), 1);

    // a proxy on the database accepts the key, until it is revoked
    let proxy = start_proxy("", |s| {
        s.database_url = Some(db.clone());
        s.auth_cache_ttl = std::time::Duration::from_millis(100);
    })
    .await;
    let status = |k: String| {
        let url = proxy.url("demo");
        async move {
            post(&url, Some(&k))
                .json(&initialize_body("2025-11-25"))
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    assert_eq!(status(key.clone()).await, reqwest::StatusCode::OK);
    let out = run(&["keys", "revoke", &id, "--database-url", &db]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out).trim(),
        format!("revoked key {id} of instance demo")
    );
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert_eq!(status(key.clone()).await, reqwest::StatusCode::UNAUTHORIZED);
    proxy.shutdown().await;

    // again: said so, success
    let out = run(&["keys", "revoke", &id, "--database-url", &db]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("already revoked"), "{}", stdout(&out));
    let out = run(&[
        "keys",
        "list",
        "--instance",
        "demo",
        "--format",
        "json",
        "--database-url",
        &db,
    ]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let row = json
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == id.as_str())
        .unwrap()
        .clone();
    assert!(row["revoked_at"].is_string(), "{row}");
    assert!(
        row["last_used_at"].is_string(),
        "the proxy flushed its use at shutdown: {row}"
    );

    // bad inputs: non-zero exit, the message names the problem
    let out = run(&["keys", "revoke", "key_nope", "--database-url", &db]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("\"key_nope\""), "{}", stderr(&out));
    let out = run(&["keys", "list", "--instance", "nope", "--database-url", &db]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("\"nope\""), "{}", stderr(&out));
    let out = run(&["keys", "list", "--database-url", &db]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("--instance"), "{}", stderr(&out));
    let out = run(&[
        "keys",
        "list",
        "--instance",
        "demo",
        "--format",
        "yaml",
        "--database-url",
        &db,
    ]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("yaml"), "{}", stderr(&out));
    let out = run(&["keys", "revoke", "--database-url", &db]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("KEY_ID"), "{}", stderr(&out));
    let out = run(&[
        "keys",
        "revoke",
        &id,
        "--notify-channel",
        "Bad-Channel",
        "--database-url",
        &db,
    ]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("not a plain identifier"),
        "{}",
        stderr(&out)
    );
    let out = run(&["serve", "--notify-channel", "x;drop", "--database-url", &db]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("not a plain identifier"),
        "{}",
        stderr(&out)
    );
    let out = run(&[
        "serve",
        "--notify-url",
        "sqlite://x.db",
        "--database-url",
        &db,
    ]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("postgres://"), "{}", stderr(&out));
}
