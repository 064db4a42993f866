//! Shared test helpers: a proxy on a real loopback socket over a temp SQLite file (or the
//! PostgreSQL of `TEST_DATABASE_URL`), rmcp clients, raw HTTP, and the mock binary.
#![allow(dead_code)]

pub mod sessions;

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use mcp_proxy::{RunningProxy, Settings};
use rmcp::model::{CallToolRequestParams, ProtocolVersion};
use rmcp::service::RunningService;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::{ClientLifecycleMode, ClientServiceExt, RoleClient};

pub struct TestProxy {
    pub proxy: RunningProxy,
    pub dir: tempfile::TempDir,
}

impl TestProxy {
    pub fn url(&self, instance: &str) -> String {
        self.proxy.mcp_url(instance)
    }
    pub fn base(&self) -> String {
        format!("http://{}", self.proxy.addr)
    }
    pub async fn shutdown(self) {
        self.proxy.shutdown().await;
    }
}

/// Starts a proxy with `seed` (TOML) on a fresh SQLite file; `tweak` adjusts settings.
pub async fn start_proxy(seed: &str, tweak: impl FnOnce(&mut Settings)) -> TestProxy {
    let dir = tempfile::tempdir().unwrap();
    let seed_path = dir.path().join("seed.toml");
    std::fs::write(&seed_path, seed).unwrap();
    let mut settings = Settings {
        listen: "127.0.0.1:0".parse().unwrap(),
        database_url: Some(format!(
            "sqlite://{}",
            dir.path().join("proxy.db").display()
        )),
        seed: Some(seed_path),
        connect_timeout: Duration::from_secs(5),
        ..Settings::default()
    };
    tweak(&mut settings);
    let proxy = mcp_proxy::start(settings).await.expect("proxy starts");
    TestProxy { proxy, dir }
}

/// The key of the `demo` instance in [`echo_proxy`].
pub const KEY: &str = "demo-key-0001";

/// A mock upstream `echo` (connection `mode`) behind the instance `demo`, key [`KEY`].
pub async fn echo_proxy(
    mode: &str,
    tweak: impl FnOnce(&mut Settings),
) -> (mock_mcp::MockServer, TestProxy) {
    let mock = mock_mcp::MockServer::start(Default::default())
        .await
        .unwrap();
    let proxy = start_proxy(
        &http_seed(&[("echo", &mock.url(), mode)], "demo", KEY, "auto"),
        tweak,
    )
    .await;
    (mock, proxy)
}

/// The proxy's `/metrics` text.
pub async fn metrics_text(proxy: &TestProxy) -> String {
    reqwest::get(format!("{}/metrics", proxy.base()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// Seed with one HTTP upstream per `(name, url, connection)` and one instance over all of them.
pub fn http_seed(
    upstreams: &[(&str, &str, &str)],
    instance: &str,
    key: &str,
    prefix: &str,
) -> String {
    let mut s = String::new();
    for (name, url, connection) in upstreams {
        s += &format!(
            "[[upstream]]\nname = \"{name}\"\ntransport = \"streamable-http\"\nurl = \"{url}\"\nconnection = \"{connection}\"\n\n"
        );
    }
    let names: Vec<String> = upstreams
        .iter()
        .map(|(n, _, _)| format!("\"{n}\""))
        .collect();
    s += &format!(
        "[[instance]]\nid = \"{instance}\"\nupstreams = [{}]\napi_keys = [\"{key}\"]\nprefix = \"{prefix}\"\n",
        names.join(", ")
    );
    s
}

/// Seed with one stdio upstream running the mock binary.
pub fn stdio_seed(name: &str, connection: &str, instance: &str, key: &str) -> String {
    format!(
        "[[upstream]]\nname = \"{name}\"\ntransport = \"stdio\"\ncommand = \"{}\"\nargs = [\"stdio\"]\nconnection = \"{connection}\"\n\n\
         [[instance]]\nid = \"{instance}\"\nupstreams = [\"{name}\"]\napi_keys = [\"{key}\"]\n",
        mock_bin().display()
    )
}

pub type Client = RunningService<RoleClient, ()>;

fn transport(url: &str, key: &str) -> StreamableHttpClientTransport<reqwest::Client> {
    StreamableHttpClientTransport::with_client(
        reqwest::Client::new(),
        StreamableHttpClientTransportConfig::with_uri(url.to_string()).auth_header(key.to_string()),
    )
}

/// An rmcp client of the 2025-11-25 era (initialize + `Mcp-Session-Id`).
pub async fn client(url: &str, key: &str) -> Client {
    ().serve(transport(url, key))
        .await
        .expect("client initializes")
}

/// An rmcp client that asks for an older protocol `version` in `initialize`.
pub async fn client_of_version(
    url: &str,
    key: &str,
    version: ProtocolVersion,
) -> RunningService<RoleClient, rmcp::model::ClientConfig> {
    use rmcp::model::{ClientCapabilities, ClientConfig, Implementation};
    ClientConfig::new(
        ClientCapabilities::default(),
        Implementation::new("old-client", "0"),
    )
    .with_protocol_version(version)
    .serve(transport(url, key))
    .await
    .expect("client initializes")
}

/// An rmcp client of the 2026-07-28 era (`server/discover`, stateless).
pub async fn discover_client(url: &str, key: &str) -> Client {
    ().serve_with_lifecycle(
        transport(url, key),
        ClientLifecycleMode::Discover {
            preferred_versions: vec![ProtocolVersion::V_2026_07_28],
        },
    )
    .await
    .expect("client discovers")
}

use rmcp::ServiceExt;

pub fn call(name: &str, args: serde_json::Value) -> CallToolRequestParams {
    let mut p = CallToolRequestParams::new(name.to_string());
    p.arguments = args.as_object().cloned();
    p
}

/// The text of the first content block of a tool result.
pub fn text(result: &rmcp::model::CallToolResult) -> String {
    result.content[0]
        .as_text()
        .expect("text content")
        .text
        .clone()
}

/// Path of the `mock-mcp` binary, building it once if this test run did not.
pub fn mock_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        // tests run from target/<profile>/deps/<test>-hash
        let exe = std::env::current_exe().unwrap();
        let profile_dir = exe.parent().unwrap().parent().unwrap().to_path_buf();
        let bin = profile_dir.join("mock-mcp");
        let status = std::process::Command::new(env!("CARGO"))
            .args(["build", "-q", "-p", "mock-mcp", "--bin", "mock-mcp"])
            .args(if profile_dir.ends_with("release") {
                vec!["--release"]
            } else {
                vec![]
            })
            .status()
            .expect("cargo runs");
        assert!(status.success(), "building mock-mcp failed");
        assert!(bin.exists(), "mock-mcp not at {}", bin.display());
        bin
    })
    .clone()
}

/// Path of the `mcp-proxy` binary of this test build.
pub fn proxy_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_mcp-proxy"))
}

/// Raw JSON-RPC POST with the headers a Streamable HTTP client sends.
pub fn post(url: &str, key: Option<&str>) -> reqwest::RequestBuilder {
    let mut rb = reqwest::Client::new()
        .post(url)
        .header("Accept", "application/json, text/event-stream")
        .header("Content-Type", "application/json");
    if let Some(key) = key {
        rb = rb.header("Authorization", format!("Bearer {key}"));
    }
    rb
}

pub fn initialize_body(version: &str) -> serde_json::Value {
    serde_json::json!({
        "jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {
            "protocolVersion": version,
            "capabilities": {},
            "clientInfo": { "name": "raw-test", "version": "0" }
        }
    })
}

/// Extracts the JSON-RPC message from a response that is either JSON or SSE.
pub async fn rpc_json(response: reqwest::Response) -> serde_json::Value {
    let is_sse = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"));
    let body = response.text().await.unwrap();
    if !is_sse {
        return serde_json::from_str(&body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"));
    }
    body.lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .find_map(|d| serde_json::from_str::<serde_json::Value>(d).ok())
        .unwrap_or_else(|| panic!("no JSON-RPC message in SSE body: {body}"))
}

/// Polls `f` until it returns true or `timeout` passes; returns the last value.
pub async fn eventually(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if f() {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
