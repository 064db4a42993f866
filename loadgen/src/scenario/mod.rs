//! Scenario files (SPEC "Scenario file", **contract**): parsing and validation.
//!
//! Every error names the file and the field or entry at fault; unknown fields are errors
//! (a typo must not silently fall back to a default). No IO beyond reading the file.

pub use crate::report::capacity::CapacityModel;
pub mod placeholders;
mod validate;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize};

/// A whole scenario file.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    pub name: String,
    /// What question this scenario answers (shown in reports).
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub target: Target,
    #[serde(default, rename = "upstream")]
    pub upstreams: Vec<Upstream>,
    pub load: Load,
    #[serde(default, rename = "phase")]
    pub phases: Vec<Phase>,
    #[serde(default)]
    pub thresholds: Thresholds,
    #[serde(default)]
    pub leaks: Leaks,
    #[serde(default)]
    pub capacity: CapacityModel,
    #[serde(default)]
    pub compare: Compare,
}

/// What is measured: the bundled proxy (no `url`) or an external endpoint.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Target {
    /// The MCP endpoint of an external target (`http://HOST:PORT/mcp/ID`); omit to start the
    /// bundled proxy.
    pub url: Option<String>,
    /// PID of the external target, for the probe.
    pub pid: Option<u32>,
    /// File holding the external target's PID.
    pub pid_file: Option<PathBuf>,
    /// Extra headers on every MCP request (e.g. `Authorization` for an external target).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Prometheus endpoint; default `/metrics` at the target's origin (absent is fine).
    pub metrics_url: Option<String>,
    /// Extra `mcp-proxy serve` arguments (bundled proxy only).
    #[serde(default)]
    pub proxy_args: Vec<String>,
    /// Where the bundled proxy listens; default a free loopback port.
    pub listen: Option<SocketAddr>,
    /// Instance id and key of the bundled proxy's seed.
    #[serde(default = "default_instance")]
    pub instance: String,
    #[serde(default = "default_api_key")]
    pub api_key: String,
    /// The seed's `prefix` rule for the instance (`auto`, `always`, `never`).
    #[serde(default = "default_prefix")]
    pub prefix: String,
    /// How long the target may take to answer `/ready` (bundled) or its first request.
    #[serde(default = "d10s", deserialize_with = "duration")]
    pub ready_timeout: Duration,
    /// Bundled proxies to start, behind HAProxy when more than one (like Cloud Run
    /// instances behind its front end): sticky on `Mcp-Session-Id`, health checks on
    /// `/ready`, `maxconn` = `capacity.concurrency` per replica with a queue beyond.
    #[serde(default = "one_replica")]
    pub replicas: usize,
    /// The bundled proxies' store: `sqlite` (a file, one replica) or `postgres` (shared by
    /// every replica; a throw-away cluster unless `database_url` names a server).
    #[serde(default)]
    pub database: Database,
    /// With `database = "postgres"`: use this server instead of a throw-away cluster.
    pub database_url: Option<String>,
    /// A target the harness starts itself (anyone's proxy): its argv, `{{placeholders}}`
    /// rendered (see [`placeholders`]); `url` is then its MCP endpoint.
    pub command: Option<Vec<String>>,
    /// A stdio MCP server the harness starts and measures directly, being its client: its
    /// argv, `{{placeholders}}` rendered like `command`'s. The load reaches it through the
    /// harness's own HTTP front (`target::stdio`); there is no `url`.
    pub stdio: Option<Vec<String>>,
    /// Environment of `command` or `stdio` (values may hold placeholders), on top of the
    /// harness's.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Working directory of `command` or `stdio`; relative to the scenario file's folder, which is
    /// also the default.
    pub cwd: Option<PathBuf>,
    /// A file (relative to the scenario file's folder) rendered into the run's folder;
    /// `{{config}}` is the rendered file's path.
    pub config_template: Option<PathBuf>,
    /// Readiness of `command`: this URL answers 2xx. Default: any HTTP answer at `url`'s origin.
    pub ready_url: Option<String>,
    /// The target's own Prometheus series for what the leak checks follow (a target that is
    /// not `mcp-proxy`); each unset one keeps the bundled proxy's name.
    #[serde(default)]
    pub metrics: MetricNames,
    /// The bundled proxy's instance secrets (`[instance.secrets]` in its seed), which the
    /// upstreams' `headers` templates name as `${NAME}`; with any, the proxy gets a throw-away
    /// `MCP_PROXY_SECRET_KEY`. Never shown: serialized (the report's scenario) as `***`.
    #[serde(default)]
    pub secrets: Secrets,
}

/// `[target] secrets = { NAME = "value" }`: values that must not reach a report. `Debug` and
/// `Serialize` show each value as `***`; [`Secrets::expose`] is the one way to the values.
#[derive(Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secrets(BTreeMap<String, String>);

/// What a secret's value is shown as.
pub const REDACTED: &str = "***";

impl Secrets {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The names, in order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }

    /// The values, for the one place that must write them (the bundled proxy's seed).
    pub fn expose(&self) -> &BTreeMap<String, String> {
        &self.0
    }
}

impl Serialize for Secrets {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.0.keys().map(|k| (k, REDACTED)))
    }
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map()
            .entries(self.0.keys().map(|k| (k, REDACTED)))
            .finish()
    }
}

/// `[target.metrics]`: series of the target's `/metrics`, each `name` or
/// `name{label="value",…}` (summed over the series that carry those labels).
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct MetricNames {
    /// Sessions the target holds (→ the `sessions` leak check).
    pub sessions: Option<String>,
    /// Tasks, handles or goroutines alive (→ the `tokio.alive_tasks` leak check).
    pub tasks: Option<String>,
    /// Open upstream connections.
    pub upstream_connections: Option<String>,
}

/// The bundled proxies' store.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum Database {
    #[default]
    Sqlite,
    Postgres,
}

impl Default for Target {
    fn default() -> Self {
        Target {
            url: None,
            pid: None,
            pid_file: None,
            headers: BTreeMap::new(),
            metrics_url: None,
            proxy_args: Vec::new(),
            listen: None,
            instance: default_instance(),
            api_key: default_api_key(),
            prefix: default_prefix(),
            ready_timeout: d10s(),
            replicas: 1,
            database: Database::Sqlite,
            database_url: None,
            command: None,
            stdio: None,
            env: BTreeMap::new(),
            cwd: None,
            config_template: None,
            ready_url: None,
            metrics: MetricNames::default(),
            secrets: Secrets::default(),
        }
    }
}

fn one_replica() -> usize {
    1
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum MockKind {
    /// `mock-mcp serve` (Streamable HTTP, faults switchable at run time).
    Serve,
    /// `mock-mcp stdio`, started by the proxy as its child.
    Stdio,
}

/// A `mock-mcp` upstream for the bundled proxy.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Upstream {
    pub name: String,
    pub mock: MockKind,
    #[serde(default)]
    pub faults: Vec<String>,
    pub latency: Option<String>,
    /// The seed's `connection` mode: `shared` (default), `per-request`, `per-session`.
    #[serde(default = "default_connection")]
    pub connection: String,
    /// `mock-mcp serve --stateless`.
    #[serde(default)]
    pub stateless: bool,
    /// How the proxy reaches an HTTP mock: `"streamable-http"` (the default: `/mcp`) or
    /// `"sse"` (the 2024-11-05 HTTP+SSE transport: `mock-mcp serve --legacy-sse`, the seed's
    /// `transport = "sse"` at `/sse`). [`Upstream::sse`] tells which.
    #[serde(default)]
    pub transport: Option<String>,
    /// `https://`: `mock-mcp serve --tls-self-signed` (a throw-away CA the proxy is given as
    /// the upstream's `ca_file`).
    #[serde(default)]
    pub tls: bool,
    /// `mock-mcp --seed` (reproducible random faults).
    pub seed: Option<u64>,
    /// `mock-mcp serve --require-header "Name: value"`: the mock answers 401 to a request
    /// without it. Serialized (the report's scenario) as `Name: ***`.
    #[serde(default)]
    pub require_header: Option<RequireHeader>,
    /// Headers the bundled proxy sends this HTTP upstream (the seed's `headers`): templates
    /// whose `${NAME}` are `target.secrets`, rendered by the proxy (`$$` is a `$`).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

/// `[[upstream]] transport = "sse"`: the 2024-11-05 HTTP+SSE transport.
pub const TRANSPORT_SSE: &str = "sse";
/// `[[upstream]] transport = "streamable-http"` (the default of `mock = "serve"`).
pub const TRANSPORT_STREAMABLE_HTTP: &str = "streamable-http";

impl Upstream {
    /// Whether the proxy reaches this mock over the legacy HTTP+SSE transport.
    pub fn sse(&self) -> bool {
        self.transport.as_deref() == Some(TRANSPORT_SSE)
    }
}

/// `[[upstream]] require_header = "Name: value"`: a credential, so `Debug` and `Serialize`
/// show `Name: ***`; [`RequireHeader::expose`] is the one way to the value.
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct RequireHeader(String);

impl RequireHeader {
    /// The whole `Name: value`, for the one place that must pass it (the mock's argv).
    pub fn expose(&self) -> &str {
        &self.0
    }

    fn shown(&self) -> String {
        let name = self.0.split_once(':').map_or("", |(n, _)| n.trim());
        format!("{name}: {REDACTED}")
    }
}

impl Serialize for RequireHeader {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.shown())
    }
}

impl std::fmt::Debug for RequireHeader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.shown())
    }
}

/// The MCP protocol era each goose user speaks.
#[derive(
    Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, PartialOrd, Ord, Hash, Default,
)]
pub enum Protocol {
    /// `initialize` + `Mcp-Session-Id`, DELETE at the end.
    #[default]
    #[serde(rename = "2025-11-25")]
    V2025_11_25,
    /// `server/discover`, stateless requests.
    #[serde(rename = "2026-07-28")]
    V2026_07_28,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::V2025_11_25 => "2025-11-25",
            Protocol::V2026_07_28 => "2026-07-28",
        }
    }
}

/// What users do with their session at the end.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum SessionEnd {
    /// DELETE the session.
    #[default]
    Close,
    /// Walk away (the target must reap it).
    Abandon,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Load {
    /// Closed model: this many concurrent users (Cloud Run's concurrency is 80).
    pub users: Option<usize>,
    /// Open model: requests per second, each timed from its intended start. `users` is then the
    /// most requests in flight (default 80).
    pub rate: Option<f64>,
    /// Time to start every user (closed model).
    #[serde(default, deserialize_with = "duration")]
    pub ramp: Duration,
    /// Load before the baseline is taken (not measured).
    #[serde(deserialize_with = "duration")]
    pub warmup: Duration,
    #[serde(deserialize_with = "duration")]
    pub duration: Duration,
    /// `"tools/list"`, `"tools/call NAME"` or `"ping"` → weight.
    pub mix: BTreeMap<String, u32>,
    /// Tool name → `arguments` of its calls (default: built from the tool's `inputSchema`,
    /// as the target lists it before the load).
    #[serde(default)]
    pub arguments: BTreeMap<String, toml::Value>,
    /// Mix entries whose JSON-RPC error is the expected answer (e.g. calls to an upstream
    /// that refuses): an error there counts as a correct answer, a result as a failure.
    #[serde(default)]
    pub expect_errors: Vec<String>,
    #[serde(default)]
    pub protocol: Protocol,
    /// Several eras at once: era → share of the users (instead of `protocol`).
    #[serde(default)]
    pub protocols: BTreeMap<Protocol, u32>,
    #[serde(default)]
    pub sessions: SessionEnd,
    /// End the session (per `sessions`) and open a new one after this many requests
    /// (0: one session per user for the whole run).
    #[serde(default)]
    pub requests_per_session: u64,
    /// Per-request timeout of the harness's HTTP client (the default of every
    /// `[load.timeouts]` entry).
    #[serde(default = "d30s", deserialize_with = "duration")]
    pub request_timeout: Duration,
    /// Per-operation timeouts (each defaults to `request_timeout`).
    #[serde(default)]
    pub timeouts: Timeouts,
    /// Each 2025-11-25 session opens the GET event stream after `notifications/initialized`
    /// and keeps it until the session ends.
    #[serde(default)]
    pub event_stream: bool,
    /// A request the client gives up on (its timeout, or in flight when the load stops) is
    /// cancelled with `notifications/cancelled`, as the spec asks of a client; `false`: the
    /// client just goes away (a crashed or killed client; the proxy must notice alone).
    #[serde(default = "yes")]
    pub cancel: bool,
}

fn yes() -> bool {
    true
}

/// `[load.timeouts]`: how long the harness waits for each kind of request before it gives
/// up (and sends `notifications/cancelled`); an absent entry is `load.request_timeout`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Timeouts {
    /// `initialize` + `notifications/initialized`, or `server/discover`.
    #[serde(default, deserialize_with = "opt_duration")]
    pub initialize: Option<Duration>,
    /// `tools/call`.
    #[serde(default, deserialize_with = "opt_duration")]
    pub call: Option<Duration>,
    /// `tools/list` (and any other list).
    #[serde(default, deserialize_with = "opt_duration")]
    pub list: Option<Duration>,
    #[serde(default, deserialize_with = "opt_duration")]
    pub ping: Option<Duration>,
    /// The session's DELETE.
    #[serde(default, deserialize_with = "opt_duration")]
    pub delete: Option<Duration>,
}

/// What a request is, for its timeout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpKind {
    Initialize,
    Call,
    List,
    Ping,
    Delete,
}

impl Load {
    /// The timeout of a request of `kind`: its `[load.timeouts]` entry, else `request_timeout`.
    pub fn timeout(&self, kind: OpKind) -> Duration {
        let t = &self.timeouts;
        match kind {
            OpKind::Initialize => t.initialize,
            OpKind::Call => t.call,
            OpKind::List => t.list,
            OpKind::Ping => t.ping,
            OpKind::Delete => t.delete,
        }
        .unwrap_or(self.request_timeout)
    }

    /// The longest timeout of any request (goose's own client timeout must not cut it).
    pub fn longest_timeout(&self) -> Duration {
        [
            OpKind::Initialize,
            OpKind::Call,
            OpKind::List,
            OpKind::Ping,
            OpKind::Delete,
        ]
        .into_iter()
        .map(|k| self.timeout(k))
        .max()
        .unwrap_or(self.request_timeout)
    }
}

/// One operation of the mix.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub enum Op {
    ListTools,
    Call(String),
    Ping,
}

impl Op {
    pub fn parse(key: &str) -> Option<Op> {
        match key.trim() {
            "tools/list" => Some(Op::ListTools),
            "ping" => Some(Op::Ping),
            other => {
                let name = other.strip_prefix("tools/call ")?.trim();
                (!name.is_empty() && !name.contains(char::is_whitespace))
                    .then(|| Op::Call(name.to_string()))
            }
        }
    }

    /// The JSON-RPC method.
    pub fn method(&self) -> &'static str {
        match self {
            Op::ListTools => "tools/list",
            Op::Call(_) => "tools/call",
            Op::Ping => "ping",
        }
    }

    /// What the request is, for its timeout.
    pub fn kind(&self) -> OpKind {
        match self {
            Op::ListTools => OpKind::List,
            Op::Call(_) => OpKind::Call,
            Op::Ping => OpKind::Ping,
        }
    }

    /// The mix key (`tools/call NAME`).
    pub fn label(&self) -> String {
        match self {
            Op::Call(name) => format!("tools/call {name}"),
            other => other.method().to_string(),
        }
    }
}

/// What a phase does at `at` (measured from the start of the measured load).
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, Default)]
#[serde(rename_all = "kebab-case")]
pub enum PhaseAction {
    /// Switch the faults/latency of `upstream` through its control endpoint.
    #[default]
    Faults,
    /// SIGTERM the target: in-flight requests must complete, and the target must exit 0.
    Sigterm,
    /// Replace every bundled replica, one at a time: out of the balancer, SIGTERM, SIGKILL
    /// after `kill_after`, a fresh one on the same port, in again once `/ready` passes.
    RollingRestart,
    /// Restart the PostgreSQL server: the pools must recover and their connections
    /// return to what they were.
    DbRestart,
    /// Revoke an API key (one the harness created and warmed on every replica) through
    /// `mcp-proxy keys revoke`, and measure how long each replica keeps accepting it.
    RevokeKey,
}

impl PhaseAction {
    pub fn as_str(self) -> &'static str {
        match self {
            PhaseAction::Faults => "faults",
            PhaseAction::Sigterm => "sigterm",
            PhaseAction::RollingRestart => "rolling-restart",
            PhaseAction::DbRestart => "db-restart",
            PhaseAction::RevokeKey => "revoke-key",
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Phase {
    #[serde(deserialize_with = "duration")]
    pub at: Duration,
    #[serde(default)]
    pub action: PhaseAction,
    pub upstream: Option<String>,
    pub faults: Option<Vec<String>>,
    pub latency: Option<String>,
    /// A label for reports (default: derived from the action).
    pub name: Option<String>,
    /// `rolling-restart`: SIGKILL a replica still running this long after its SIGTERM
    /// (Cloud Run: 10 s).
    #[serde(default = "d10s", deserialize_with = "duration")]
    pub kill_after: Duration,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Thresholds {
    #[serde(default = "p99")]
    pub p99_ms: f64,
    #[serde(default = "mean")]
    pub mean_ms: f64,
    #[serde(default = "err")]
    pub error_rate: f64,
    /// Config-cache hit rate, from the target's `/metrics` (skipped when it has none).
    #[serde(default = "hit")]
    pub cache_hit_rate: f64,
    /// Peak DB pool use (in use / size), from `/metrics` (skipped when it has none).
    #[serde(default = "pool")]
    pub db_pool_utilisation: f64,
    /// Config queries (instance config + API key lookups) per request, from `/metrics`.
    #[serde(default = "one")]
    pub config_queries_per_request: f64,
    /// `last_used_at` writes per request (batched writes make this ≈ 0), from `/metrics`.
    #[serde(default = "writes")]
    pub last_used_writes_per_request: f64,
    /// Peak resident memory of each proxy process (the platform's memory size; the proxy's
    /// own `--memory-limit-mib` default).
    #[serde(default = "rss_limit")]
    pub rss_limit_mib: f64,
    /// `revoke-key`: how long any replica may keep accepting a revoked key.
    #[serde(default = "revocation")]
    pub revocation_ms: f64,
    /// `rolling-restart`: requests that may fail while replicas are replaced (a 2025-11-25
    /// request answered 404 because its session died with its replica is counted as a
    /// re-initialization, not here: the spec's signal to open a new session).
    #[serde(default)]
    pub restart_failed_requests: u64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            p99_ms: p99(),
            mean_ms: mean(),
            error_rate: err(),
            cache_hit_rate: hit(),
            db_pool_utilisation: pool(),
            config_queries_per_request: one(),
            last_used_writes_per_request: writes(),
            rss_limit_mib: rss_limit(),
            revocation_ms: revocation(),
            restart_failed_requests: 0,
        }
    }
}

/// Allowed growth over the baseline once the load stopped and the settle window passed.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Leaks {
    /// The longest the settle watches after the load (and the longest the baseline waits for
    /// the warm-up's leftovers to go).
    #[serde(default = "d10s", deserialize_with = "duration")]
    pub settle: Duration,
    /// The shortest the settle watches after the load, even when every count is back at once:
    /// reapers that fire later and abandoned work that finishes later are seen (default 3 s,
    /// or `settle` when shorter; see [`Leaks::settle_min`]).
    #[serde(default, deserialize_with = "opt_duration")]
    pub settle_min: Option<Duration>,
    /// The measured load runs in this many equal rounds, each followed by a settle; memory is
    /// a leak when it grows round after round (a garbage-collected heap or a JIT warms in
    /// the first round and then holds), not by one reading.
    #[serde(default = "one_cycle")]
    pub cycles: u32,
    /// With `cycles` ≥ 2: how much RSS may grow in one round and still be noise.
    #[serde(default = "rss_noise")]
    pub rss_noise_mib: f64,
    #[serde(default)]
    pub fds: u32,
    #[serde(default)]
    pub sockets_close_wait: u32,
    #[serde(default)]
    pub tasks: u32,
    #[serde(default)]
    pub children: u32,
    #[serde(default)]
    pub sessions: u32,
    #[serde(default = "rss")]
    pub rss_mib: f64,
    /// Threads the whole tree may gain (idle runtime pools linger: tokio's blocking pool
    /// keeps an idle thread 10 s).
    #[serde(default = "threads")]
    pub threads: u32,
    /// Unix sockets the whole tree may gain (also counted in `fds.socket`).
    #[serde(default)]
    pub sockets_unix: u32,
    /// A target that reaps abandoned sessions on a timer: the sessions the load opened are
    /// asked whether they are still held this long after the load's end (not before the
    /// settle ends).
    #[serde(default, deserialize_with = "opt_duration")]
    pub expect_reaped_within: Option<Duration>,
}

impl Default for Leaks {
    fn default() -> Self {
        Leaks {
            settle: d10s(),
            settle_min: None,
            cycles: one_cycle(),
            rss_noise_mib: rss_noise(),
            fds: 0,
            sockets_close_wait: 0,
            tasks: 0,
            children: 0,
            sessions: 0,
            rss_mib: rss(),
            threads: threads(),
            sockets_unix: 0,
            expect_reaped_within: None,
        }
    }
}

impl Leaks {
    /// The shortest settle: `settle_min`, else 3 s or `settle` when that is shorter; never
    /// shorter than `expect_reaped_within` (what a reaper frees must be seen gone).
    pub fn settle_min(&self) -> Duration {
        let min = self
            .settle_min
            .unwrap_or_else(|| Duration::from_secs(3).min(self.settle));
        min.max(self.expect_reaped_within.unwrap_or_default())
    }

    /// The longest settle: `settle`, or the shortest when that is longer.
    pub fn settle_max(&self) -> Duration {
        self.settle.max(self.settle_min())
    }
}

fn default_instance() -> String {
    "load".into()
}
fn default_api_key() -> String {
    "load-key-0001".into()
}
fn default_prefix() -> String {
    "auto".into()
}
fn default_connection() -> String {
    "shared".into()
}
fn one_cycle() -> u32 {
    1
}
fn rss_noise() -> f64 {
    2.0
}
fn threads() -> u32 {
    THREADS_DEFAULT
}
/// `[leaks] threads` when the scenario does not say (see `scenarios/README.md`).
pub const THREADS_DEFAULT: u32 = 16;
fn d10s() -> Duration {
    Duration::from_secs(10)
}
fn d30s() -> Duration {
    Duration::from_secs(30)
}
fn p99() -> f64 {
    2000.0
}
fn mean() -> f64 {
    1000.0
}
fn err() -> f64 {
    0.01
}
fn hit() -> f64 {
    0.95
}
fn pool() -> f64 {
    0.70
}
fn rss() -> f64 {
    16.0
}
fn rss_limit() -> f64 {
    1024.0
}
fn revocation() -> f64 {
    1000.0
}
fn one() -> f64 {
    1.0
}
fn writes() -> f64 {
    0.01
}

/// Comparing with an earlier run (`--baseline PREV/report.json`).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Compare {
    /// A figure worse than the earlier run's by more than this share is a regression
    /// (exit 1); `--noise` overrides it.
    pub noise: f64,
}

impl Default for Compare {
    fn default() -> Self {
        Compare { noise: 0.25 }
    }
}

fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(d)?;
    humantime::parse_duration(&text).map_err(|e| {
        serde::de::Error::custom(format!(
            "invalid duration \"{text}\": {e} (write e.g. \"500ms\", \"30s\", \"2m\")"
        ))
    })
}

fn opt_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    duration(d).map(Some)
}

/// A scenario file that cannot be used, with the file and the reason.
#[derive(Debug, thiserror::Error)]
#[error("{}: {message}", path.display())]
pub struct ScenarioError {
    pub path: PathBuf,
    pub message: String,
}

impl Scenario {
    /// Reads, parses and validates `path`.
    pub fn load(path: &Path) -> Result<Scenario, ScenarioError> {
        let fail = |message: String| ScenarioError {
            path: path.to_path_buf(),
            message,
        };
        let text = std::fs::read_to_string(path).map_err(|e| fail(format!("cannot read: {e}")))?;
        let mut scenario = Scenario::parse(&text).map_err(fail)?;
        let dir = path.parent().unwrap_or(Path::new("."));
        let dir = std::path::absolute(if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        })
        .map_err(|e| fail(format!("cannot resolve its folder: {e}")))?;
        scenario.resolve_paths(&dir);
        Ok(scenario)
    }

    /// A started target's paths, relative to the scenario file's folder `dir`: `cwd` (which
    /// defaults to `dir`) and `config_template`.
    pub fn resolve_paths(&mut self, dir: &Path) {
        if !self.started() {
            return;
        }
        let t = &mut self.target;
        t.cwd = Some(dir.join(t.cwd.take().unwrap_or_default()));
        if let Some(c) = t.config_template.take() {
            t.config_template = Some(dir.join(c));
        }
    }

    /// Parses and validates a scenario's text.
    pub fn parse(text: &str) -> Result<Scenario, String> {
        let scenario: Scenario = toml::from_str(text).map_err(|e| e.to_string())?;
        scenario.validate()?;
        Ok(scenario)
    }

    /// The mix, parsed: `(op, weight)` in the file's (sorted) order.
    pub fn ops(&self) -> Vec<(Op, u32)> {
        self.load
            .mix
            .iter()
            .filter_map(|(k, w)| Op::parse(k).map(|op| (op, *w)))
            .collect()
    }

    /// Is the bundled proxy started (no external `url`, no `command`, no `stdio`)?
    pub fn bundled(&self) -> bool {
        self.target.url.is_none() && !self.started()
    }

    /// Does the harness start the target itself, from `target.command` or `target.stdio`?
    pub fn started(&self) -> bool {
        self.target.command.is_some() || self.target.stdio.is_some()
    }

    /// Keeps shard `index` of `count` (0-based): its share of the users (the remainder goes
    /// to the first shards) or of the rate.
    pub fn shard(&mut self, index: u32, count: u32) -> Result<(), String> {
        if count == 0 || index >= count {
            return Err(format!(
                "--shard {index}/{count}: expected I/N with 0 ≤ I < N (e.g. 0/3)"
            ));
        }
        let (i, n) = (index as usize, count as usize);
        if let Some(rate) = self.load.rate {
            self.load.rate = Some(rate / n as f64);
            if let Some(users) = self.load.users {
                self.load.users = Some((users / n).max(1));
            }
        } else {
            let users = self.users();
            if users < n {
                return Err(format!(
                    "--shard {index}/{count}: the scenario has {users} users, fewer than {count} shards"
                ));
            }
            self.load.users = Some(users / n + usize::from(i < users % n));
        }
        Ok(())
    }

    /// Users (closed model) or the in-flight cap (open model).
    pub fn users(&self) -> usize {
        self.load.users.unwrap_or(80)
    }
}

#[cfg(test)]
#[path = "scenario_tests.rs"]
mod tests;
