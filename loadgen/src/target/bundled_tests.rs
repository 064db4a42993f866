use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::*;
use crate::target::MockUrls;

const CREDENTIALS: &str = r#"
name = "t"
[target]
secrets = { TOKEN = "s3cret-abc", TENANT = "blue" }
[[upstream]]
name = "locked"
mock = "serve"
require_header = "Authorization: Bearer s3cret-abc"
headers = { Authorization = "Bearer ${TOKEN}", "X-Tenant" = "${TENANT}" }
[[upstream]]
name = "plain"
mock = "serve"
[[upstream]]
name = "child"
mock = "stdio"
[load]
users = 1
warmup = "1s"
duration = "2s"
mix = { "tools/list" = 1 }
"#;

fn mocks() -> BTreeMap<String, MockUrls> {
    ["locked", "plain"]
        .into_iter()
        .enumerate()
        .map(|(i, name)| {
            let urls = MockUrls {
                url: format!("http://127.0.0.1:{}/mcp", 9001 + i),
                control: format!("http://127.0.0.1:{}/control", 9101 + i),
                ca_file: None,
            };
            (name.to_string(), urls)
        })
        .collect()
}

fn seed_of(text: &str) -> toml::Table {
    let scenario = Scenario::parse(text).unwrap();
    let seed = seed_toml(
        &scenario,
        Path::new("/bin/mock-mcp"),
        &mocks(),
        Some(Path::new("/tmp/stats")),
    );
    toml::from_str(&seed).unwrap_or_else(|e| panic!("{e}\n{seed}"))
}

fn upstream<'a>(seed: &'a toml::Table, name: &str) -> &'a toml::Table {
    seed["upstream"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u.as_table().unwrap())
        .find(|u| u["name"].as_str() == Some(name))
        .unwrap_or_else(|| panic!("no upstream {name} in {seed}"))
}

#[test]
fn the_seed_carries_the_header_templates_and_the_instance_secrets() {
    let seed = seed_of(CREDENTIALS);
    let locked = upstream(&seed, "locked");
    assert_eq!(locked["url"].as_str(), Some("http://127.0.0.1:9001/mcp"));
    let headers = locked["headers"].as_table().expect("headers = {…}");
    assert_eq!(headers["Authorization"].as_str(), Some("Bearer ${TOKEN}"));
    assert_eq!(headers["X-Tenant"].as_str(), Some("${TENANT}"));
    assert!(!upstream(&seed, "plain").contains_key("headers"));
    // a stdio upstream keeps only what it had (its stats folder)
    let child = upstream(&seed, "child");
    assert!(!child.contains_key("headers"));
    let env = child["env"].as_table().unwrap();
    assert_eq!(env.keys().collect::<Vec<_>>(), ["MOCK_MCP_STATS_DIR"]);
    // require_header is the mock's, never the seed's
    assert!(!toml::to_string(&seed).unwrap().contains("require_header"));

    let instances = seed["instance"].as_array().unwrap();
    assert_eq!(instances.len(), 1);
    let secrets = instances[0]["secrets"]
        .as_table()
        .expect("[instance.secrets]");
    assert_eq!(secrets["TOKEN"].as_str(), Some("s3cret-abc"));
    assert_eq!(secrets["TENANT"].as_str(), Some("blue"));
    assert_eq!(secrets.len(), 2);
}

#[test]
fn a_seed_without_credentials_has_no_headers_or_secrets() {
    let seed = seed_of(
        &CREDENTIALS
            .replace(
                "[target]\nsecrets = { TOKEN = \"s3cret-abc\", TENANT = \"blue\" }\n",
                "",
            )
            .replace(
                "headers = { Authorization = \"Bearer ${TOKEN}\", \"X-Tenant\" = \"${TENANT}\" }\n",
                "",
            ),
    );
    assert!(!upstream(&seed, "locked").contains_key("headers"));
    assert!(
        !seed["instance"][0]
            .as_table()
            .unwrap()
            .contains_key("secrets")
    );
}

#[test]
fn the_mock_is_asked_for_the_required_header() {
    let scenario = Scenario::parse(CREDENTIALS).unwrap();
    let args = crate::target::mock_args(&scenario.upstreams[0]);
    let at = args.iter().position(|a| a == "--require-header").unwrap();
    assert_eq!(args[at + 1], "Authorization: Bearer s3cret-abc");
    assert!(!crate::target::mock_args(&scenario.upstreams[1]).contains(&"--require-header".into()));
}

#[test]
fn a_secret_key_is_made_only_for_secrets_and_given_to_every_proxy_command() {
    let with = Scenario::parse(CREDENTIALS).unwrap();
    let key = SecretKey::for_scenario(&with).unwrap().expect("a key");
    let hex = key.expose();
    assert_eq!(hex.len(), 64, "{hex}");
    assert!(
        hex.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
        "{hex}"
    );
    assert_ne!(SecretKey::generate().unwrap(), key, "a fresh key each time");
    assert!(!format!("{key:?}").contains(hex));

    let spec = ProxySpec {
        name: "proxy",
        listen: "127.0.0.1:1".parse().unwrap(),
        database_url: "sqlite://x",
        seed: None,
        extra: &[],
        ready_timeout: Duration::from_secs(1),
        secret_key: Some(&key),
    };
    assert_eq!(serve_env(&spec), [(SECRET_KEY_ENV, hex.to_string())]);
    assert!(
        !serve_args(&spec).iter().any(|a| a.contains(hex)),
        "never on the command line"
    );

    let without = Scenario::parse(&CREDENTIALS.replace("secrets = {", "x_secrets = {"));
    assert!(without.is_err(), "unknown field");
    let plain = Scenario::parse(
        &CREDENTIALS
            .replace(
                "[target]\nsecrets = { TOKEN = \"s3cret-abc\", TENANT = \"blue\" }\n",
                "",
            )
            .replace(
                "headers = { Authorization = \"Bearer ${TOKEN}\", \"X-Tenant\" = \"${TENANT}\" }\n",
                "",
            ),
    )
    .unwrap();
    assert!(SecretKey::for_scenario(&plain).unwrap().is_none());
    assert!(proxy_env(None).is_empty());
}

#[test]
fn the_seed_file_is_its_owners_only() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path: PathBuf = dir.path().join("seed.toml");
    std::fs::write(&path, "old").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    write_seed(&path, "[[instance]]\n").unwrap();
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "[[instance]]\n");
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
}

const SSE: &str = r#"
name = "t"
[target]
secrets = { TOKEN = "s3cret-abc" }
[[upstream]]
name = "legacy"
mock = "serve"
transport = "sse"
tls = true
require_header = "Authorization: Bearer s3cret-abc"
headers = { Authorization = "Bearer ${TOKEN}" }
[[upstream]]
name = "plain"
mock = "serve"
[load]
users = 1
warmup = "1s"
duration = "2s"
mix = { "tools/list" = 1 }
"#;

#[test]
fn an_sse_upstream_is_started_with_legacy_sse_and_seeded_at_its_event_stream() {
    let scenario = Scenario::parse(SSE).unwrap();
    let (legacy, plain) = (&scenario.upstreams[0], &scenario.upstreams[1]);
    let args = crate::target::mock_args(legacy);
    assert!(args.contains(&"--legacy-sse".to_string()), "{args:?}");
    assert!(args.contains(&"--require-header".to_string()), "{args:?}");
    assert!(!crate::target::mock_args(plain).contains(&"--legacy-sse".to_string()));
    let url = crate::target::mock_url(legacy, "127.0.0.1:9001");
    assert_eq!(url, "https://127.0.0.1:9001/sse");
    assert_eq!(
        crate::target::mock_url(plain, "127.0.0.1:9002"),
        "http://127.0.0.1:9002/mcp"
    );

    let mocks: BTreeMap<String, MockUrls> = [
        (
            "legacy".to_string(),
            MockUrls {
                url,
                control: "http://127.0.0.1:9101/control".into(),
                ca_file: Some(PathBuf::from("/run/tls/legacy/ca.pem")),
            },
        ),
        (
            "plain".to_string(),
            MockUrls {
                url: "http://127.0.0.1:9002/mcp".into(),
                control: "http://127.0.0.1:9102/control".into(),
                ca_file: None,
            },
        ),
    ]
    .into_iter()
    .collect();
    let seed = seed_toml(&scenario, Path::new("/bin/mock-mcp"), &mocks, None);
    let seed: toml::Table = toml::from_str(&seed).unwrap_or_else(|e| panic!("{e}\n{seed}"));
    let legacy = upstream(&seed, "legacy");
    assert_eq!(legacy["transport"].as_str(), Some("sse"));
    assert_eq!(legacy["url"].as_str(), Some("https://127.0.0.1:9001/sse"));
    assert_eq!(legacy["ca_file"].as_str(), Some("/run/tls/legacy/ca.pem"));
    assert_eq!(
        legacy["headers"]["Authorization"].as_str(),
        Some("Bearer ${TOKEN}")
    );
    assert_eq!(legacy["connection"].as_str(), Some("shared"));
    let plain = upstream(&seed, "plain");
    assert_eq!(plain["transport"].as_str(), Some("streamable-http"));
    assert_eq!(plain["url"].as_str(), Some("http://127.0.0.1:9002/mcp"));
}
