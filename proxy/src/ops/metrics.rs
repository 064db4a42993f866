//! Prometheus metrics (SPEC contract names) and the `/metrics` exposition.
//!
//! Counters are updated where things happen; gauges that describe the process (fds, children,
//! tasks, pool, sessions) are sampled at scrape time so they can never drift.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MethodOutcome {
    pub method: &'static str,
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct UpstreamState {
    pub upstream: String,
    pub state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct UpstreamOutcome {
    pub upstream: String,
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ServerRequest {
    pub upstream: String,
    pub method: &'static str,
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Query {
    pub query: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Kind {
    pub kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Reason {
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Outcome {
    pub outcome: &'static str,
}

/// All of the proxy's metrics. Cloning a metric handle shares the underlying value.
pub struct Metrics {
    registry: Registry,
    pub requests: Family<MethodOutcome, Counter>,
    pub request_duration: Histogram,
    pub inflight: Gauge,
    pub sessions: Gauge,
    pub upstream_connections: Family<UpstreamState, Gauge>,
    pub upstream_connects: Family<UpstreamOutcome, Counter>,
    pub upstream_errors: Family<UpstreamOutcome, Counter>,
    pub server_requests: Family<ServerRequest, Counter>,
    pub config_cache_hits: Counter,
    pub config_cache_misses: Counter,
    pub auth_cache_hits: Counter,
    pub auth_cache_misses: Counter,
    pub db_queries: Family<Query, Counter>,
    /// Cache invalidations applied, by kind (`key`, `instance`, `all`).
    pub invalidations: Family<Kind, Counter>,
    /// 1 while the PostgreSQL invalidation listener is listening (0 on SQLite).
    pub invalidation_listener_up: Gauge,
    pub invalidation_listener_connects: Family<Outcome, Counter>,
    pub db_pool_size: Gauge,
    pub db_pool_idle: Gauge,
    pub tokio_alive_tasks: Gauge,
    pub open_fds: Gauge,
    pub child_processes: Gauge,
    pub rss_bytes: Gauge,
    pub memory_allocated_bytes: Gauge,
    pub memory_resident_bytes: Gauge,
    pub memory_limit_bytes: Gauge,
    pub memory_pressure: Gauge,
    pub connections: ConnectionMetrics,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::default();
        let m = Metrics {
            requests: Family::default(),
            request_duration: Histogram::new(exponential_buckets(0.000_5, 2.0, 16)),
            inflight: Gauge::default(),
            sessions: Gauge::default(),
            upstream_connections: Family::default(),
            upstream_connects: Family::default(),
            upstream_errors: Family::default(),
            server_requests: Family::default(),
            config_cache_hits: Counter::default(),
            config_cache_misses: Counter::default(),
            auth_cache_hits: Counter::default(),
            auth_cache_misses: Counter::default(),
            db_queries: Family::default(),
            invalidations: Family::default(),
            invalidation_listener_up: Gauge::default(),
            invalidation_listener_connects: Family::default(),
            db_pool_size: Gauge::default(),
            db_pool_idle: Gauge::default(),
            tokio_alive_tasks: Gauge::default(),
            open_fds: Gauge::default(),
            child_processes: Gauge::default(),
            rss_bytes: Gauge::default(),
            memory_allocated_bytes: Gauge::default(),
            memory_resident_bytes: Gauge::default(),
            memory_limit_bytes: Gauge::default(),
            memory_pressure: Gauge::default(),
            connections: ConnectionMetrics::default(),
            registry: Registry::default(),
        };
        // prometheus-client appends `_total` to counters.
        m.register_traffic(&mut registry);
        m.register_state(&mut registry);
        m.connections.register(&mut registry);
        Metrics { registry, ..m }
    }
}

impl Metrics {
    /// Requests, sessions and upstream traffic (SPEC names).
    fn register_traffic(&self, r: &mut Registry) {
        r.register(
            "mcp_proxy_requests",
            "MCP requests by method and outcome",
            self.requests.clone(),
        );
        r.register(
            "mcp_proxy_request_duration_seconds",
            "Time to handle one MCP request",
            self.request_duration.clone(),
        );
        r.register(
            "mcp_proxy_inflight_requests",
            "MCP requests being handled",
            self.inflight.clone(),
        );
        r.register(
            "mcp_proxy_sessions",
            "Open downstream MCP sessions",
            self.sessions.clone(),
        );
        r.register(
            "mcp_proxy_upstream_connections",
            "Upstream MCP connections by state",
            self.upstream_connections.clone(),
        );
        r.register(
            "mcp_proxy_upstream_connects",
            "Upstream connect attempts by outcome",
            self.upstream_connects.clone(),
        );
        r.register(
            "mcp_proxy_upstream_errors",
            "Upstream request failures by kind",
            self.upstream_errors.clone(),
        );
        r.register(
            "mcp_proxy_server_requests",
            "Server-to-client requests from upstreams (sampling, elicitation, roots) by outcome",
            self.server_requests.clone(),
        );
    }

    /// Caches, store, invalidation, and the process (SPEC names).
    fn register_state(&self, r: &mut Registry) {
        r.register(
            "mcp_proxy_config_cache_hits",
            "Config cache hits",
            self.config_cache_hits.clone(),
        );
        r.register(
            "mcp_proxy_config_cache_misses",
            "Config cache misses (database reads)",
            self.config_cache_misses.clone(),
        );
        r.register(
            "mcp_proxy_auth_cache_hits",
            "API-key cache hits",
            self.auth_cache_hits.clone(),
        );
        r.register(
            "mcp_proxy_auth_cache_misses",
            "API-key cache misses (database reads)",
            self.auth_cache_misses.clone(),
        );
        r.register(
            "mcp_proxy_db_queries",
            "Database queries by name",
            self.db_queries.clone(),
        );
        r.register(
            "mcp_proxy_db_pool_size",
            "Database pool connections",
            self.db_pool_size.clone(),
        );
        r.register(
            "mcp_proxy_db_pool_idle",
            "Idle database pool connections",
            self.db_pool_idle.clone(),
        );
        r.register(
            "mcp_proxy_invalidations",
            "Cache invalidations applied (own writes and other replicas' notifications) by kind",
            self.invalidations.clone(),
        );
        r.register(
            "mcp_proxy_invalidation_listener_up",
            "1 while the PostgreSQL LISTEN connection for cross-replica invalidation is up; while 0, caches fall back to their TTLs",
            self.invalidation_listener_up.clone(),
        );
        r.register(
            "mcp_proxy_invalidation_listener_connects",
            "Invalidation listener connect attempts by outcome",
            self.invalidation_listener_connects.clone(),
        );
        r.register(
            "mcp_proxy_tokio_alive_tasks",
            "Tokio tasks alive in the runtime",
            self.tokio_alive_tasks.clone(),
        );
        r.register(
            "mcp_proxy_open_fds",
            "Open file descriptors of the process",
            self.open_fds.clone(),
        );
        r.register(
            "mcp_proxy_child_processes",
            "Child processes of the proxy (stdio upstreams)",
            self.child_processes.clone(),
        );
        r.register(
            "mcp_proxy_rss_bytes",
            "Resident memory of the process",
            self.rss_bytes.clone(),
        );
        r.register(
            "mcp_proxy_memory_allocated_bytes",
            "Live bytes the allocator handed out (jemalloc stats.allocated): the memory bound's signal",
            self.memory_allocated_bytes.clone(),
        );
        r.register(
            "mcp_proxy_memory_resident_bytes",
            "Resident bytes in the allocator's pages (jemalloc stats.resident)",
            self.memory_resident_bytes.clone(),
        );
        r.register(
            "mcp_proxy_memory_limit_bytes",
            "The memory bound (--memory-limit-mib)",
            self.memory_limit_bytes.clone(),
        );
        r.register(
            "mcp_proxy_memory_pressure",
            "1 while allocated memory is near the bound: /ready is 503 and new sessions are refused",
            self.memory_pressure.clone(),
        );
    }

    pub fn db_query(&self, name: &str) {
        self.db_queries
            .get_or_create(&Query {
                query: name.to_string(),
            })
            .inc();
    }

    /// Counts one applied cache invalidation.
    pub fn invalidation(&self, kind: &'static str) {
        self.invalidations.get_or_create(&Kind { kind }).inc();
    }

    /// Counts one connect attempt of the invalidation listener (`ok` or `error`).
    pub fn invalidation_listener_connect(&self, outcome: &'static str) {
        self.invalidation_listener_connects
            .get_or_create(&Outcome { outcome })
            .inc();
    }

    /// Counts one request; labels are static so the hot path allocates nothing.
    pub fn request(&self, method: &'static str, outcome: &'static str) {
        self.requests
            .get_or_create(&MethodOutcome { method, outcome })
            .inc();
    }

    pub fn upstream_connect(&self, upstream: &str, outcome: &str) {
        self.upstream_connects
            .get_or_create(&UpstreamOutcome {
                upstream: upstream.to_string(),
                outcome: outcome.to_string(),
            })
            .inc();
    }

    /// A server→client request from `upstream` was relayed (`ok`, `error`: the client said
    /// no) or not (`unroutable`, `unsupported`, `closed`, `failed`).
    pub fn server_request(&self, upstream: &str, method: &'static str, outcome: &'static str) {
        self.server_requests
            .get_or_create(&ServerRequest {
                upstream: upstream.to_string(),
                method,
                outcome,
            })
            .inc();
    }

    pub fn upstream_error(&self, upstream: &str, kind: &str) {
        self.upstream_errors
            .get_or_create(&UpstreamOutcome {
                upstream: upstream.to_string(),
                outcome: kind.to_string(),
            })
            .inc();
    }

    pub fn upstream_state(&self, upstream: &str, state: &str) -> Gauge {
        self.upstream_connections
            .get_or_create(&UpstreamState {
                upstream: upstream.to_string(),
                state: state.to_string(),
            })
            .clone()
    }

    /// Samples the process gauges and renders the text exposition format.
    pub fn render(&self) -> String {
        self.open_fds.set(count_dir("/proc/self/fd"));
        self.child_processes.set(count_children());
        self.tokio_alive_tasks.set(
            tokio::runtime::Handle::try_current()
                .map(|h| h.metrics().num_alive_tasks() as i64)
                .unwrap_or(0),
        );
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }
}

fn count_dir(path: &str) -> i64 {
    std::fs::read_dir(path)
        .map(|d| d.count() as i64)
        .unwrap_or(-1)
}

/// Direct children of this process, over all its threads.
fn count_children() -> i64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return -1;
    };
    tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("children")).ok())
        .map(|c| c.split_whitespace().count() as i64)
        .sum()
}

/// Times one MCP request: in flight from `start` until `finish`; dropped without `finish`
/// (the client went away, the future was cancelled) it is counted as `cancelled`.
pub struct RequestTimer<'a> {
    metrics: &'a Metrics,
    method: &'static str,
    started: std::time::Instant,
    done: bool,
}

impl<'a> RequestTimer<'a> {
    pub fn start(metrics: &'a Metrics, method: &'static str) -> Self {
        metrics.inflight.inc();
        Self {
            metrics,
            method,
            started: std::time::Instant::now(),
            done: false,
        }
    }

    pub fn finish<T, E>(mut self, result: &Result<T, E>) {
        self.record(if result.is_ok() { "ok" } else { "error" });
    }

    fn record(&mut self, outcome: &'static str) {
        if std::mem::replace(&mut self.done, true) {
            return;
        }
        self.metrics.inflight.dec();
        self.metrics
            .request_duration
            .observe(self.started.elapsed().as_secs_f64());
        self.metrics.request(self.method, outcome);
    }
}

impl Drop for RequestTimer<'_> {
    fn drop(&mut self) {
        self.record("cancelled");
    }
}

/// Client (downstream) HTTP connections: open ones by slot, those closed before a request, those
/// a timeout cut.
#[derive(Default)]
pub struct ConnectionMetrics {
    /// Open client connections by `kind`: `full` (under `--max-connections`) or `reserve`
    /// (past it: `/health`, `/ready`, `/metrics` only).
    pub open: Family<Kind, Gauge>,
    /// Connections closed without being served, by `reason`: `cap` (past the cap, cut from
    /// the reserve by a newer one) or `accept_error` (accept failed, e.g. out of fds).
    pub refused: Family<Reason, Counter>,
    /// Connections a timer closed, by `kind`: `header` (no complete request head in time) or
    /// `idle` (kept alive with nothing to do).
    pub timeouts: Family<Kind, Counter>,
}

impl ConnectionMetrics {
    fn register(&self, r: &mut Registry) {
        r.register(
            "mcp_proxy_http_connections",
            "Open client connections by slot (full, or reserve: health, readiness and metrics only)",
            self.open.clone(),
        );
        r.register(
            "mcp_proxy_http_connections_refused",
            "Client connections closed unserved, by reason (cap, accept_error)",
            self.refused.clone(),
        );
        r.register(
            "mcp_proxy_http_connection_timeouts",
            "Client connections closed by a timer (header: no complete request head; idle: kept alive unused)",
            self.timeouts.clone(),
        );
    }
}
