//! Contract: a start-up or CLI error names the setting (flag and variable), its value (a
//! database URL with its password replaced by `***`) and the underlying cause, printed once as
//! `error: …` with exit code 1 and no backtrace even with `RUST_BACKTRACE=1`; a seed file is
//! validated before the database is touched. clap's usage errors stay clap's (exit 2).

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::*;

/// Runs the built `mcp-proxy` with `RUST_BACKTRACE=1` and without any database variable.
fn run(args: &[&str]) -> Output {
    Command::new(proxy_bin())
        .args(args)
        .env("RUST_BACKTRACE", "1")
        .env_remove("DATABASE_URL")
        .env_remove("MCP_PROXY_DATABASE_URL")
        .output()
        .unwrap()
}

/// Exit 1 and one `error: ` line naming every one of `words`, and no backtrace.
fn assert_user_error(out: &Output, words: &[&str]) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("error: "))
        .collect();
    assert_eq!(errors.len(), 1, "one error line: {stderr}");
    for word in words {
        assert!(errors[0].contains(word), "{word:?} missing: {stderr}");
    }
    let lower = stderr.to_lowercase();
    assert!(!lower.contains("backtrace"), "{stderr}");
    assert!(!stderr.contains("Caused by"), "anyhow's Debug: {stderr}");
    errors[0].to_string()
}

fn sqlite(dir: &Path, file: &str) -> String {
    format!("sqlite://{}", dir.join(file).display())
}

#[test]
fn a_taken_listen_address_is_named_with_its_setting() {
    let dir = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let db = sqlite(dir.path(), "p.db");
    let out = run(&["serve", "--listen", &addr, "--database-url", &db]);
    let line = assert_user_error(&out, &[&addr, "--listen", "MCP_PROXY_LISTEN"]);
    assert!(
        line.to_lowercase().contains("address already in use"),
        "{line}"
    );
}

#[test]
fn an_unreachable_postgres_is_named_without_its_password_and_with_the_cause() {
    // nothing listens on this port: the connection is refused
    let port = free_port();
    let url = format!("postgres://u:secretpw@127.0.0.1:{port}/db");
    let shown = format!("postgres://u:***@127.0.0.1:{port}/db");
    let serve = run(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--database-url",
        &url,
        "--db-acquire-timeout",
        "1s",
    ]);
    let keys = run(&["keys", "list", "--instance", "demo", "--database-url", &url]);
    for out in [serve, keys] {
        let line = assert_user_error(&out, &[&shown, "--database-url", "DATABASE_URL"]);
        assert!(line.to_lowercase().contains("connection refused"), "{line}");
        assert!(!line.contains("pool timed out"), "{line}");
        assert!(!String::from_utf8_lossy(&out.stderr).contains("secretpw"));
    }
}

#[test]
fn a_database_value_that_is_not_a_url_lists_the_accepted_forms() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bare.db");
    let bare = path.to_str().unwrap();
    for args in [
        &["serve", "--listen", "127.0.0.1:0", "--database-url", bare][..],
        &[
            "keys",
            "create",
            "--instance",
            "demo",
            "--database-url",
            bare,
        ],
    ] {
        let out = run(args);
        let line = assert_user_error(
            &out,
            &[
                bare,
                "--database-url",
                "sqlite://PATH",
                "sqlite::memory:",
                "postgres://",
                &format!("sqlite://{bare}"),
            ],
        );
        assert!(!line.contains("relative URL"), "{line}");
    }
    assert!(!path.exists());
}

#[test]
fn a_bad_seed_is_refused_before_the_database_file_exists() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "[[upstream]]\nname = \"x\"\ntransport = \"carrier-pigeon\"\n",
    )
    .unwrap();
    let bad = bad.to_str().unwrap();
    let db = dir.path().join("fresh.db");
    let url = format!("sqlite://{}", db.display());
    let serve = run(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--seed",
        bad,
        "--database-url",
        &url,
    ]);
    assert_user_error(&serve, &["--seed", "MCP_PROXY_SEED", bad, "carrier-pigeon"]);
    let seed = run(&["seed", bad, "--database-url", &url]);
    assert_user_error(&seed, &[bad, "carrier-pigeon"]);
    // a seed that parses but is invalid names its file too
    let invalid = dir.path().join("invalid.toml");
    std::fs::write(
        &invalid,
        "[[instance]]\nid = \"demo\"\nupstreams = [\"missing\"]\n",
    )
    .unwrap();
    let invalid = invalid.to_str().unwrap();
    let serve = run(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--seed",
        invalid,
        "--database-url",
        &url,
    ]);
    assert_user_error(&serve, &["--seed", invalid, "missing"]);
    let missing = dir.path().join("nope.toml");
    let serve = run(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--seed",
        missing.to_str().unwrap(),
        "--database-url",
        &url,
    ]);
    assert_user_error(&serve, &["--seed", missing.to_str().unwrap()]);
    let files: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("fresh"))
        .collect();
    assert!(files.is_empty(), "the database was touched: {files:?}");
}

#[test]
fn usage_errors_stay_clap_s() {
    let out = run(&["serve", "--listen", "nowhere"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("invalid value 'nowhere'"), "{stderr}");
    assert!(stderr.contains("--listen"), "{stderr}");
}
