//! Contract (secrets at rest and out of sight), on the `mcp-proxy` binary and a real SQLite
//! file: seeded and `secrets set` (stdin) values are sealed (the database files never hold
//! them), `secrets list` names them without values, a missing secret is refused at seed time
//! naming the instance, the upstream and the name, a store with secrets and no key (or another
//! key) does not start, `secrets rotate-key` re-seals with a new key; and with logging at
//! `trace`, no secret reaches a log line, `/metrics` or an error body, while the upstream gets
//! its header and a stdio child its environment.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use mcp_proxy::domain::secrets::SecretKey;
use serde_json::json;
use tokio::io::AsyncReadExt;

const SEEDED: &str = "seeded-9b1f62c4e";
const SET: &str = "set-on-cli-5d03a7";
const REFUSED: &str = "refused-b-e4a19c";

fn proxy(args: &[&str], key_env: Option<&str>, stdin: Option<&str>) -> (bool, String, String) {
    let mut cmd = Command::new(proxy_bin());
    cmd.args(args)
        .env_remove("MCP_PROXY_SECRET_KEY")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(key) = key_env {
        cmd.env("MCP_PROXY_SECRET_KEY", key);
    }
    let mut child = cmd.spawn().unwrap();
    {
        use std::io::Write;
        let mut input = child.stdin.take().unwrap();
        if let Some(text) = stdin {
            input.write_all(text.as_bytes()).unwrap();
        }
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn seed_text(instance_secrets: &str, other_instance: bool) -> String {
    let mut s = format!(
        r#"
[[upstream]]
name = "gh"
transport = "streamable-http"
url = "http://127.0.0.1:1/mcp"
headers = {{ Authorization = "Bearer ${{TOKEN}}" }}

[[instance]]
id = "demo"
upstreams = ["gh"]
api_keys = ["{KEY}"]
{instance_secrets}
"#
    );
    if other_instance {
        s += "\n[[instance]]\nid = \"other\"\nupstreams = [\"gh\"]\n";
    }
    s
}

/// Every file of the SQLite database (with its WAL) holds none of `secrets`.
fn assert_database_holds_none(dir: &Path, secrets: &[&str]) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if !path
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("p.db")
        {
            continue;
        }
        let bytes = std::fs::read(&path).unwrap();
        for secret in secrets {
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "{} holds a plaintext secret",
                path.display()
            );
        }
    }
}

/// `serve` on this database with `key_args`: the start-up error it exits with.
fn serve_refused(db: &str, key_args: &[&str]) -> String {
    let port = free_port().to_string();
    let mut args = vec!["serve", "--listen"];
    let listen = format!("127.0.0.1:{port}");
    args.push(&listen);
    args.extend(["--database-url", db]);
    args.extend(key_args);
    let (ok, _, stderr) = proxy(&args, None, None);
    assert!(!ok, "serve must refuse: {stderr}");
    stderr
}

#[test]
fn secrets_are_sealed_listed_by_name_checked_at_seed_time_and_rotated() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("p.db").display());
    let (key1, key2) = (dir.path().join("k1"), dir.path().join("k2"));
    std::fs::write(&key1, SecretKey::generate()).unwrap();
    std::fs::write(&key2, SecretKey::generate() + "\n").unwrap();
    let (k1, k2) = (key1.to_str().unwrap(), key2.to_str().unwrap());
    let seed = dir.path().join("seed.toml");
    let seed_arg = seed.to_str().unwrap();
    std::fs::write(
        &seed,
        seed_text(&format!("secrets = {{ TOKEN = \"{SEEDED}\" }}"), false),
    )
    .unwrap();

    let (ok, _, err) = proxy(&["seed", seed_arg, "--database-url", &db], None, None);
    assert!(!ok && err.contains("no secret key was given"), "{err}");
    assert!(
        err.contains("instance \"demo\"") && !err.contains(SEEDED),
        "{err}"
    );

    let seeded = proxy(
        &[
            "seed",
            seed_arg,
            "--database-url",
            &db,
            "--secret-key-file",
            k1,
        ],
        None,
        None,
    );
    assert!(seeded.0, "{}", seeded.2);
    assert!(seeded.1.contains("1 secret(s)") && !seeded.1.contains(SEEDED));

    // a new instance of the template without its secret: refused, naming all three
    std::fs::write(&seed, seed_text("", true)).unwrap();
    let (ok, _, err) = proxy(
        &[
            "seed",
            seed_arg,
            "--database-url",
            &db,
            "--secret-key-file",
            k1,
        ],
        None,
        None,
    );
    assert!(!ok, "{err}");
    assert!(
        err.contains("instance \"other\" uses upstream \"gh\"") && err.contains("${TOKEN}"),
        "{err}"
    );

    let key1_text = std::fs::read_to_string(&key1).unwrap();
    let set = [
        "secrets",
        "set",
        "--instance",
        "demo",
        "EXTRA",
        "--database-url",
        &db,
    ];
    let (ok, out, err) = proxy(&set, Some(&key1_text), Some(&format!("{SET}\n")));
    assert!(ok, "{err}");
    assert!(!out.contains(SET) && !err.contains(SET));
    let (ok, _, err) = proxy(
        &[
            "secrets",
            "set",
            "--instance",
            "demo",
            "1BAD",
            "--database-url",
            &db,
        ],
        Some(&key1_text),
        Some("x\n"),
    );
    assert!(!ok && err.contains("1BAD"), "{err}");

    let list = [
        "secrets",
        "list",
        "--instance",
        "demo",
        "--database-url",
        &db,
    ];
    let (ok, listed, _) = proxy(&list, None, None);
    assert!(
        ok && listed.contains("TOKEN") && listed.contains("EXTRA"),
        "{listed}"
    );
    assert!(
        !listed.contains(SEEDED) && !listed.contains(SET),
        "{listed}"
    );
    assert_database_holds_none(dir.path(), &[SEEDED, SET]);

    // a store holding secrets does not start without its key, or with another one
    let none = serve_refused(&db, &[]);
    assert!(
        none.contains("holds 2 secret(s)") && none.contains("no secret key"),
        "{none}"
    );
    let other = serve_refused(&db, &["--secret-key-file", k2]);
    assert!(other.contains("which this proxy does not hold"), "{other}");

    // rotation: open with the old key, seal with the new one
    let (ok, out, err) = proxy(
        &[
            "secrets",
            "rotate-key",
            "--database-url",
            &db,
            "--secret-key-file",
            k2,
            "--previous-secret-key-file",
            k1,
        ],
        None,
        None,
    );
    assert!(
        ok && out.contains("re-sealed 2 secret(s) with key"),
        "{out}{err}"
    );
    let new_id = out.trim().rsplit(' ').next().unwrap().to_string();
    let (_, listed, _) = proxy(&list, None, None);
    assert_eq!(listed.matches(&new_id).count(), 2, "{listed}");
    let old = serve_refused(&db, &["--secret-key-file", k1]);
    assert!(
        old.contains(&new_id),
        "the old key alone no longer opens: {old}"
    );

    // a secret a template uses is not deleted; another is
    let delete = |name: &'static str| {
        let args = [
            "secrets",
            "delete",
            "--instance",
            "demo",
            name,
            "--database-url",
            &db,
        ];
        proxy(&args, None, None)
    };
    let (ok, _, err) = delete("TOKEN");
    assert!(!ok && err.contains("${TOKEN}"), "{err}");
    assert!(delete("EXTRA").0);
    let (_, listed, _) = proxy(&list, None, None);
    assert!(!listed.contains("EXTRA"), "{listed}");
}

/// The pids of `pid`'s children.
fn children(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let path = task.unwrap().path().join("children");
        let text = std::fs::read_to_string(path).unwrap_or_default();
        out.extend(
            text.split_whitespace()
                .filter_map(|p| p.parse::<u32>().ok()),
        );
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_reaches_a_trace_log_metrics_or_an_error_while_upstreams_get_them() {
    let mock = MockProcess::serve(&[
        "--require-header",
        &format!("Authorization: Bearer {SEEDED}"),
    ])
    .await;
    let dir = tempfile::tempdir().unwrap();
    let seed = dir.path().join("seed.toml");
    std::fs::write(
        &seed,
        format!(
            r#"
[[upstream]]
name = "gh"
transport = "streamable-http"
url = "{url}"
headers = {{ Authorization = "Bearer ${{TOKEN}}" }}

[[upstream]]
name = "local"
transport = "stdio"
command = "{mock}"
args = ["stdio"]
env = {{ MOCK_UPSTREAM_TOKEN = "${{TOKEN}}" }}

[[instance]]
id = "a"
upstreams = ["gh", "local"]
api_keys = ["{KEY}"]
[instance.secrets]
TOKEN = "{SEEDED}"

[[instance]]
id = "b"
upstreams = ["gh"]
api_keys = ["key-b-000000002"]
[instance.secrets]
TOKEN = "{REFUSED}"
"#,
            url = mock.url(),
            mock = mock_bin().display()
        ),
    )
    .unwrap();
    let port = free_port();
    let mut serve = proxy_serve_command(dir.path(), &seed, port);
    serve
        .env("RUST_LOG", "trace")
        .env("MCP_PROXY_SECRET_KEY", SecretKey::generate())
        .stderr(Stdio::piped());
    let mut child = serve.spawn().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let log = tokio::spawn(async move {
        let mut all = Vec::new();
        let _ = stderr.read_to_end(&mut all).await;
        String::from_utf8_lossy(&all).into_owned()
    });
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let mut up = false;
    for _ in 0..200 {
        if http.get(format!("{base}/health")).send().await.is_ok() {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(up, "the proxy started");

    let a = client(&format!("{base}/mcp/a"), KEY).await;
    for tool in ["gh__echo", "local__echo"] {
        let r = a
            .call_tool(call(tool, json!({ "text": tool })))
            .await
            .unwrap();
        assert_eq!(text(&r), tool);
    }
    let pid = child.id().unwrap();
    let envs: Vec<String> = children(pid)
        .into_iter()
        .filter_map(|c| std::fs::read(format!("/proc/{c}/environ")).ok())
        .map(|e| String::from_utf8_lossy(&e).into_owned())
        .collect();
    assert!(
        envs.iter()
            .any(|e| e.contains(&format!("MOCK_UPSTREAM_TOKEN={SEEDED}"))),
        "the stdio child got its secret in its environment"
    );
    let b = client(&format!("{base}/mcp/b"), "key-b-000000002").await;
    let refused = rpc_error(
        b.call_tool(call("echo", json!({ "text": "b" })))
            .await
            .unwrap_err(),
    );
    assert!(
        refused.message.contains("refused the credential"),
        "{}",
        refused.message
    );
    let metrics = http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    a.cancel().await.unwrap();
    b.cancel().await.unwrap();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .unwrap()
            .success()
    );
    tokio::time::timeout(Duration::from_secs(20), child.wait())
        .await
        .expect("the proxy exits")
        .unwrap();
    let log = log.await.unwrap();
    assert!(log.contains("TRACE"), "logging ran at trace level");
    for secret in [SEEDED, REFUSED] {
        for (what, text) in [
            ("the trace log", &log),
            ("/metrics", &metrics),
            ("the error", &refused.message.to_string()),
        ] {
            assert!(!text.contains(secret), "{what} holds a secret");
        }
    }
    assert!(
        metrics.contains("credential_refused"),
        "the refusal is counted"
    );
    mock.stop().await;
}
