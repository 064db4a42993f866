//! Shared test helpers: a proxy on a real loopback socket over a temp SQLite file (or the
//! PostgreSQL of `TEST_DATABASE_URL`), rmcp clients, raw HTTP, and the mock binary.
#![allow(dead_code)]

pub mod pg;
pub mod sessions;
pub mod surface;

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

/// A free loopback port (bound, then released for the process under test to take).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `mcp-proxy serve` on `127.0.0.1:port` with `seed` and a SQLite file in `dir`, killed if the
/// test drops it; callers add flags, environment and stdio before spawning.
pub fn proxy_serve_command(
    dir: &std::path::Path,
    seed: &std::path::Path,
    port: u16,
) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(proxy_bin());
    cmd.args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .arg("--seed")
        .arg(seed)
        .arg("--database-url")
        .arg(format!("sqlite://{}", dir.join("p.db").display()))
        .kill_on_drop(true);
    cmd
}

/// Reads the proxy binary's log lines until one contains `needle` (20 s at most); returns it.
pub async fn wait_for_log(
    lines: &mut tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStderr>>,
    needle: &str,
) -> String {
    loop {
        let line = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
            .await
            .unwrap_or_else(|_| panic!("proxy never logged {needle:?}"))
            .unwrap()
            .expect("proxy exited early");
        if line.contains(needle) {
            return line;
        }
    }
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

// ---- Lifecycle proofs: resource snapshots, a mock-mcp process, unpooled clients ----

use mcp_loadgen::observe::probe;

/// What the outside-in probe sees of a process: fds by kind, TCP sockets by state, children
/// and zombies, and alive tokio tasks (of the test runtime for an in-process proxy, or the
/// proxy's `mcp_proxy_tokio_alive_tasks` for a proxy process).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Resources {
    pub fds: probe::FdCounts,
    pub tcp: probe::TcpCounts,
    pub children: probe::ChildCounts,
    pub tasks: usize,
}

impl Resources {
    /// This test process, with the alive tasks of the current tokio runtime (where an
    /// in-process proxy runs).
    pub fn now() -> Resources {
        let me = std::process::id();
        Resources {
            fds: probe::fds(me).unwrap(),
            tcp: probe::tcp_states(me).unwrap(),
            children: probe::children(me).unwrap(),
            tasks: tokio::runtime::Handle::current()
                .metrics()
                .num_alive_tasks(),
        }
    }

    /// Another process (tasks left at 0: read them from its `/metrics`).
    pub fn of(pid: u32) -> std::io::Result<Resources> {
        Ok(Resources {
            fds: probe::fds(pid)?,
            tcp: probe::tcp_states(pid)?,
            children: probe::children(pid)?,
            tasks: 0,
        })
    }

    /// The larger of each count (for peaks).
    pub fn max(self, o: Resources) -> Resources {
        let f = |a: probe::FdCounts, b: probe::FdCounts| probe::FdCounts {
            socket: a.socket.max(b.socket),
            pipe: a.pipe.max(b.pipe),
            anon_inode: a.anon_inode.max(b.anon_inode),
            file: a.file.max(b.file),
            other: a.other.max(b.other),
        };
        let mut tcp = self.tcp;
        tcp.established = tcp.established.max(o.tcp.established);
        tcp.close_wait = tcp.close_wait.max(o.tcp.close_wait);
        tcp.time_wait = tcp.time_wait.max(o.tcp.time_wait);
        tcp.fin_wait1 = tcp.fin_wait1.max(o.tcp.fin_wait1);
        tcp.fin_wait2 = tcp.fin_wait2.max(o.tcp.fin_wait2);
        tcp.last_ack = tcp.last_ack.max(o.tcp.last_ack);
        tcp.syn_sent = tcp.syn_sent.max(o.tcp.syn_sent);
        tcp.listen = tcp.listen.max(o.tcp.listen);
        Resources {
            fds: f(self.fds, o.fds),
            tcp,
            children: probe::ChildCounts {
                children: self.children.children.max(o.children.children),
                zombies: self.children.zombies.max(o.children.zombies),
                orphans: self.children.orphans.max(o.children.orphans),
            },
            tasks: self.tasks.max(o.tasks),
        }
    }

    /// Every count that is above `baseline` (empty: nothing grew). Zombies are compared with
    /// zero, whatever the baseline.
    pub fn growth_over(&self, baseline: &Resources) -> Vec<String> {
        let mut grew = Vec::new();
        let mut check = |name: &str, now: u64, base: u64| {
            if now > base {
                grew.push(format!("{name} {base} -> {now}"));
            }
        };
        let (n, b) = (self.fds, baseline.fds);
        check("socket fds", n.socket.into(), b.socket.into());
        check("pipe fds", n.pipe.into(), b.pipe.into());
        check("anon_inode fds", n.anon_inode.into(), b.anon_inode.into());
        check("file fds", n.file.into(), b.file.into());
        check("other fds", n.other.into(), b.other.into());
        check(
            "tcp established",
            self.tcp.established.into(),
            baseline.tcp.established.into(),
        );
        check(
            "tcp close_wait",
            self.tcp.close_wait.into(),
            baseline.tcp.close_wait.into(),
        );
        check(
            "tcp total",
            self.tcp.total().into(),
            baseline.tcp.total().into(),
        );
        check(
            "children",
            self.children.children.into(),
            baseline.children.children.into(),
        );
        check("zombies", self.children.zombies.into(), 0);
        check("tokio tasks", self.tasks as u64, baseline.tasks as u64);
        grew
    }

    /// Panics if any count is above `baseline` (a leak), naming what grew and both
    /// snapshots. Falling below is not a leak: a baseline may still hold an idle keep-alive
    /// connection of the warm-up that closes meanwhile.
    #[track_caller]
    pub fn assert_no_growth_over(&self, baseline: &Resources, what: &str) {
        let grew = self.growth_over(baseline);
        assert!(
            grew.is_empty(),
            "{what}: not back to baseline; grew: {grew:?}\n  baseline {}\n  now      {}",
            baseline.line(),
            self.line()
        );
    }

    /// One line for the logs: `fds s/p/a/f tcp est/cw children/zombies tasks`.
    pub fn line(&self) -> String {
        format!(
            "fds socket={} pipe={} anon={} file={} | tcp est={} close_wait={} total={} | children={} zombies={} | tasks={}",
            self.fds.socket,
            self.fds.pipe,
            self.fds.anon_inode,
            self.fds.file,
            self.tcp.established,
            self.tcp.close_wait,
            self.tcp.total(),
            self.children.children,
            self.children.zombies,
            self.tasks
        )
    }
}

/// Polls [`Resources::now`] until nothing is above `baseline` (a leak check allows falling
/// below, e.g. when an idle keep-alive connection of the warm-up closed meanwhile) or `timeout`
/// passes; returns the last snapshot.
pub async fn settle_within(baseline: &Resources, timeout: Duration) -> Resources {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let now = Resources::now();
        if now.growth_over(baseline).is_empty() || tokio::time::Instant::now() >= deadline {
            return now;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// [`Resources::now`] once it has stopped moving (two samples 250 ms apart agree; 10 s at
/// most), so a baseline is not taken while the warm-up's connections are still closing.
pub async fn stable_resources() -> Resources {
    let mut last = Resources::now();
    for _ in 0..40 {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let now = Resources::now();
        if now == last {
            return now;
        }
        last = now;
    }
    last
}

/// Runs `f(0..n)` with at most `concurrency` at a time, sampling [`Resources::now`] every
/// 20 ms from this same task (no extra task, so the task count is not disturbed); returns
/// the outputs and the peak.
pub async fn drive<T, F, Fut>(n: usize, concurrency: usize, f: F) -> (Vec<T>, Resources)
where
    F: FnMut(usize) -> Fut,
    Fut: Future<Output = T>,
{
    use futures::StreamExt;
    let mut peak = Resources::now();
    let run = futures::stream::iter(0..n)
        .map(f)
        .buffer_unordered(concurrency)
        .collect::<Vec<T>>();
    tokio::pin!(run);
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    loop {
        tokio::select! {
            out = &mut run => return (out, peak.max(Resources::now())),
            _ = tick.tick() => peak = peak.max(Resources::now()),
        }
    }
}

/// A reqwest client that keeps no idle connection, so a test's own client leaves no socket
/// behind between requests.
pub fn unpooled_http() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap()
}

/// An rmcp client (2025-11-25 era) whose HTTP client keeps no idle connection.
pub async fn unpooled_client(url: &str, key: &str) -> Client {
    ().serve(StreamableHttpClientTransport::with_client(
        unpooled_http(),
        StreamableHttpClientTransportConfig::with_uri(url.to_string()).auth_header(key.to_string()),
    ))
    .await
    .expect("client initializes")
}

/// The JSON-RPC error inside an rmcp client error (panics on any other kind of failure).
pub fn rpc_error(e: rmcp::ServiceError) -> rmcp::model::ErrorData {
    match e {
        rmcp::ServiceError::McpError(data) => data,
        other => panic!("expected a JSON-RPC error, got {other}"),
    }
}

/// `mock-mcp serve` as a child process, so the sockets it holds are not counted with the
/// proxy's (the probe counts per process). Faults switch through its `/control`, served on a
/// separate port so it stays reachable while `refuse` closes the MCP port.
pub struct MockProcess {
    child: tokio::process::Child,
    pub addr: std::net::SocketAddr,
    pub control: std::net::SocketAddr,
    http: reqwest::Client,
    /// Serving `https://` (`--tls-cert`/`--tls-key` among its arguments).
    tls: bool,
}

impl MockProcess {
    /// Starts `mock-mcp serve --listen 127.0.0.1:0 --control-listen … EXTRA…` and waits for
    /// its ready line.
    pub async fn serve(extra: &[&str]) -> MockProcess {
        use tokio::io::AsyncBufReadExt;
        let control = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let mut child = tokio::process::Command::new(mock_bin())
            .args(["serve", "--listen", "127.0.0.1:0"])
            .arg("--control-listen")
            .arg(control.to_string())
            .args(extra)
            .env("RUST_LOG", "error")
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("mock-mcp starts");
        let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
        let line = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
            .await
            .expect("mock-mcp prints its address")
            .unwrap()
            .expect("mock-mcp exited early");
        let addr = line
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .parse()
            .unwrap();
        MockProcess {
            child,
            addr,
            control,
            http: unpooled_http(),
            tls: extra.contains(&"--tls-cert") || extra.contains(&"--tls-self-signed"),
        }
    }

    /// Serving `https://` with `certs`' server certificate (and `extra`).
    pub async fn serve_tls(certs: &mock_mcp::tls::TestCerts, extra: &[&str]) -> MockProcess {
        let (cert, key) = (
            certs.cert.display().to_string(),
            certs.key.display().to_string(),
        );
        let mut args = vec!["--tls-cert", cert.as_str(), "--tls-key", key.as_str()];
        args.extend_from_slice(extra);
        MockProcess::serve(&args).await
    }

    pub fn url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}/mcp", self.addr)
    }

    pub fn pid(&self) -> u32 {
        self.child.id().expect("mock-mcp running")
    }

    /// Replaces the active faults (`POST /control`).
    pub async fn set_faults(&self, faults: &[&str]) {
        let r = self
            .http
            .post(format!("http://{}/control", self.control))
            .json(&serde_json::json!({ "faults": faults }))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "POST /control: {}", r.status());
    }

    /// `GET /control`: requests, calls, in_flight, sessions_open, faults_fired, …
    pub async fn counters(&self) -> serde_json::Value {
        self.http
            .get(format!("http://{}/control", self.control))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    pub async fn in_flight(&self) -> u64 {
        self.counters().await["in_flight"].as_u64().unwrap()
    }

    pub async fn sessions_open(&self) -> u64 {
        self.counters().await["sessions_open"].as_u64().unwrap()
    }

    /// Polls until `sessions_open` is `n` or 5 s pass; returns the last value.
    pub async fn wait_sessions_open(&self, n: u64) -> u64 {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            let now = self.sessions_open().await;
            if now == n || tokio::time::Instant::now() >= deadline {
                return now;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Polls until `in_flight` is `n` or `timeout` passes; returns the last value.
    pub async fn wait_in_flight(&self, n: u64, timeout: Duration) -> u64 {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let now = self.in_flight().await;
            if now == n || tokio::time::Instant::now() >= deadline {
                return now;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Closes the mock's *idle* keep-alive connections, and only those: `refuse` on, then off.
    /// Closing the listener ends its generation with a graceful shutdown, which closes idle
    /// HTTP connections at once and lets every connection with a request in progress (an open
    /// SSE stream, a `hang-call`) run on untouched. A client's connection pool then drops the
    /// closed connections, so socket counts taken after this do not depend on how many idle
    /// connections the pool happened to keep (idle for up to 30–60 s otherwise). Leaves no
    /// fault active.
    pub async fn close_idle_connections(&self) {
        self.set_faults(&["refuse"]).await;
        let mut refused = false;
        for _ in 0..250 {
            if tokio::net::TcpStream::connect(self.addr).await.is_err() {
                refused = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(refused, "mock-mcp never closed its port under `refuse`");
        self.set_faults(&[]).await;
        for _ in 0..250 {
            if tokio::net::TcpStream::connect(self.addr).await.is_ok() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("mock-mcp never re-opened its port");
    }

    /// SIGTERM, then waits for it (reaped).
    pub async fn stop(mut self) {
        if let Some(pid) = self.child.id() {
            let _ = std::process::Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status();
        }
        let _ = tokio::time::timeout(Duration::from_secs(10), self.child.wait()).await;
        let _ = self.child.kill().await;
    }
}

/// The value of the sample of metric `name` whose labels include every `key="value"` of
/// `labels`, from Prometheus text; `None` if there is no such sample.
pub fn metric_value(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines().find_map(|line| {
        let rest = line.strip_prefix(name)?;
        let (label_text, value) = match rest.strip_prefix('{') {
            Some(r) => r.split_once("} ")?,
            None => ("", rest.strip_prefix(' ')?),
        };
        labels
            .iter()
            .all(|(k, v)| label_text.split(',').any(|kv| kv == format!("{k}=\"{v}\"")))
            .then(|| value.trim().parse().ok())
            .flatten()
    })
}
