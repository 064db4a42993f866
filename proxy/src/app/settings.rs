//! Every runtime setting of `mcp-proxy serve`, from flags or `MCP_PROXY_*` variables.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::domain::secrets::{Keyring, SecretKey};

/// Settings for a running proxy. `Default` gives the documented defaults, which is what tests
/// start from.
#[derive(Debug, Clone, clap::Args)]
pub struct Settings {
    /// Address to listen on.
    #[arg(long, env = "MCP_PROXY_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Database URL: `sqlite://FILE` (embedded default) or `postgres://…`. Falls back to
    /// `DATABASE_URL`, then to `sqlite://mcp-proxy.db`.
    #[arg(long, env = "MCP_PROXY_DATABASE_URL")]
    pub database_url: Option<String>,
    /// Seed file loaded (idempotently) at start.
    #[arg(long, env = "MCP_PROXY_SEED")]
    pub seed: Option<PathBuf>,
    /// Maximum database connections in the pool.
    #[arg(long, env = "MCP_PROXY_DB_POOL_SIZE", default_value_t = 10)]
    pub db_pool_size: u32,
    /// How long to wait for a free database connection before failing the request.
    #[arg(long, env = "MCP_PROXY_DB_ACQUIRE_TIMEOUT", default_value = "5s", value_parser = humantime::parse_duration)]
    pub db_acquire_timeout: Duration,
    /// Time-to-live of a cached instance config.
    #[arg(long, env = "MCP_PROXY_CONFIG_CACHE_TTL", default_value = "60s", value_parser = humantime::parse_duration)]
    pub config_cache_ttl: Duration,
    /// Maximum number of cached instance configs.
    #[arg(
        long,
        env = "MCP_PROXY_CONFIG_CACHE_CAPACITY",
        default_value_t = 10_000
    )]
    pub config_cache_capacity: u64,
    /// Bypass the config cache: read config from the database on every request (debugging).
    #[arg(long, env = "MCP_PROXY_CONFIG_CACHE_BYPASS")]
    pub config_cache_bypass: bool,
    /// Time-to-live of a cached API-key check (bounds how long a revoked key keeps working).
    #[arg(long, env = "MCP_PROXY_AUTH_CACHE_TTL", default_value = "30s", value_parser = humantime::parse_duration)]
    pub auth_cache_ttl: Duration,
    /// Time-to-live of an instance's merged tool list (also invalidated by `list_changed`).
    #[arg(long, env = "MCP_PROXY_TOOLS_CACHE_TTL", default_value = "60s", value_parser = humantime::parse_duration)]
    pub tools_cache_ttl: Duration,
    /// How often `last_used_at` is written behind, in one batch.
    #[arg(long, env = "MCP_PROXY_USAGE_FLUSH_INTERVAL", default_value = "10s", value_parser = humantime::parse_duration)]
    pub usage_flush_interval: Duration,
    /// Upstream connect (and initialize) timeout.
    #[arg(long, env = "MCP_PROXY_CONNECT_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub connect_timeout: Duration,
    /// Upstream call timeout.
    #[arg(long, env = "MCP_PROXY_CALL_TIMEOUT", default_value = "60s", value_parser = humantime::parse_duration)]
    pub call_timeout: Duration,
    /// Whole-request timeout (config, connect and call together).
    #[arg(long, env = "MCP_PROXY_REQUEST_TIMEOUT", default_value = "120s", value_parser = humantime::parse_duration)]
    pub request_timeout: Duration,
    /// On SIGTERM/SIGINT, how long in-flight requests get to finish.
    #[arg(long, env = "MCP_PROXY_SHUTDOWN_DEADLINE", default_value = "9s", value_parser = humantime::parse_duration)]
    pub shutdown_deadline: Duration,
    /// Downstream sessions idle this long are closed (a client that never sends DELETE).
    #[arg(long, env = "MCP_PROXY_SESSION_IDLE_TIMEOUT", default_value = "30m", value_parser = humantime::parse_duration)]
    pub session_idle_timeout: Duration,
    /// Maximum live downstream sessions; past it a new `initialize` gets 503 + `Retry-After`.
    /// A session holds about 130 KiB of live allocations (most of it rmcp's per-session tasks
    /// and channels), so 4000 hold about 520 MiB: the default fits a 1 GiB instance with
    /// about 400 MiB to spare for requests in flight before shedding starts.
    #[arg(long, env = "MCP_PROXY_MAX_SESSIONS", default_value_t = 4_000)]
    pub max_sessions: usize,
    /// Interval of SSE keep-alive pings on downstream event streams (`0s` disables them).
    #[arg(long, env = "MCP_PROXY_SSE_KEEPALIVE", default_value = "15s", value_parser = humantime::parse_duration)]
    pub sse_keepalive: Duration,
    /// Upstream `tools/list_changed` bursts within this window reach downstream sessions as
    /// one notification.
    #[arg(long, env = "MCP_PROXY_LIST_CHANGED_DEBOUNCE", default_value = "200ms", value_parser = humantime::parse_duration)]
    pub list_changed_debounce: Duration,
    /// Maximum upstream connections open at once (all upstreams and modes together).
    #[arg(long, env = "MCP_PROXY_MAX_UPSTREAM_CONNECTIONS", default_value_t = 50)]
    pub max_upstream_connections: usize,
    /// Shared upstream connections unused this long are closed.
    #[arg(long, env = "MCP_PROXY_UPSTREAM_IDLE_TIMEOUT", default_value = "5m", value_parser = humantime::parse_duration)]
    pub upstream_idle_timeout: Duration,
    /// Idle keep-alive HTTP connections to upstreams are closed after this long.
    #[arg(long, env = "MCP_PROXY_UPSTREAM_HTTP_IDLE_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub upstream_http_idle_timeout: Duration,
    /// Idle keep-alive HTTP connections kept per upstream host.
    #[arg(long, env = "MCP_PROXY_UPSTREAM_HTTP_MAX_IDLE", default_value_t = 32)]
    pub upstream_http_max_idle: usize,
    /// Connect attempts when re-establishing a connection an upstream dropped.
    #[arg(long, env = "MCP_PROXY_RECONNECT_MAX_ATTEMPTS", default_value_t = 4)]
    pub reconnect_max_attempts: u32,
    /// First reconnect delay; doubles per attempt (with jitter) up to the maximum.
    #[arg(long, env = "MCP_PROXY_RECONNECT_BASE_DELAY", default_value = "100ms", value_parser = humantime::parse_duration)]
    pub reconnect_base_delay: Duration,
    /// Cap on one reconnect delay.
    #[arg(long, env = "MCP_PROXY_RECONNECT_MAX_DELAY", default_value = "5s", value_parser = humantime::parse_duration)]
    pub reconnect_max_delay: Duration,
    /// Consecutive connect failures that open an upstream's circuit (0 disables the breaker).
    #[arg(long, env = "MCP_PROXY_BREAKER_THRESHOLD", default_value_t = 5)]
    pub breaker_threshold: u32,
    /// How long an open circuit fails connects fast before one trial connect.
    #[arg(long, env = "MCP_PROXY_BREAKER_COOLDOWN", default_value = "30s", value_parser = humantime::parse_duration)]
    pub breaker_cooldown: Duration,
    /// A client connection's request head must be complete within this long: from the moment
    /// it opens, or on a kept-alive connection from the head's first byte (slowloris).
    #[arg(long, env = "MCP_PROXY_HEADER_READ_TIMEOUT", default_value = "10s", value_parser = positive_duration)]
    pub header_read_timeout: Duration,
    /// A kept-alive client connection with nothing to do (no request in flight, no open
    /// stream) is closed after this long.
    #[arg(long, env = "MCP_PROXY_KEEP_ALIVE_TIMEOUT", default_value = "60s", value_parser = positive_duration)]
    pub keep_alive_timeout: Duration,
    /// Client connections served at once; past it a new one gets one request on /health,
    /// /ready or /metrics only (at most 16 such, the oldest closed for a newer one). Default:
    /// the open-files limit (raised to its hard limit at start) less 128 + the DB pool + 4 per
    /// upstream connection + 16, within 8..=32768.
    #[arg(long, env = "MCP_PROXY_MAX_CONNECTIONS")]
    pub max_connections: Option<std::num::NonZeroUsize>,
    /// Maximum request body in bytes (larger bodies get 413).
    #[arg(long, env = "MCP_PROXY_MAX_BODY_BYTES", default_value_t = 4 * 1024 * 1024)]
    pub max_body_bytes: usize,
    /// The largest message (one line) a stdio upstream may write; a reply over it fails its
    /// call at once with an error naming this limit.
    #[arg(long, env = "MCP_PROXY_STDIO_MAX_REPLY_BYTES", default_value_t = 16 * 1024 * 1024)]
    pub stdio_max_reply_bytes: usize,
    /// Hosts accepted in the `Host` header (DNS-rebinding protection). Loopback by default;
    /// add the public host name of a deployment.
    #[arg(
        long,
        env = "MCP_PROXY_ALLOWED_HOSTS",
        value_delimiter = ',',
        default_value = "localhost,127.0.0.1,::1"
    )]
    pub allowed_hosts: Vec<String>,
    /// Browser origins accepted in the `Origin` header (DNS-rebinding protection; requests
    /// without `Origin`, i.e. not from a browser, pass). `scheme://host:port`, `:*` for any
    /// port, `null` for `Origin: null`. Loopback by default; add a deployment's web origins.
    #[arg(
        long,
        env = "MCP_PROXY_ALLOWED_ORIGINS",
        value_delimiter = ',',
        default_value = "http://localhost:*,http://127.0.0.1:*,http://[::1]:*"
    )]
    pub allowed_origins: Vec<String>,
    /// Items per page of the merged lists (`tools/list`, `resources/list`, …); 0: one page.
    #[arg(long, env = "MCP_PROXY_LIST_PAGE_SIZE", default_value_t = 100)]
    pub list_page_size: usize,
    /// PostgreSQL URL the invalidation listener (`LISTEN`) connects to; default: the database
    /// URL. For deployments whose database URL goes through PgBouncer in transaction mode,
    /// which cannot LISTEN: point this at PostgreSQL itself (or a session-mode pool).
    #[arg(long, env = "MCP_PROXY_NOTIFY_URL", value_parser = crate::domain::invalidation::parse_notify_url)]
    pub notify_url: Option<String>,
    /// PostgreSQL channel for cross-replica cache invalidation (`[a-z_][a-z0-9_]*`, at most
    /// 63 bytes). Replicas of one deployment share it; several deployments can share one
    /// database with one channel each.
    #[arg(
        long,
        env = "MCP_PROXY_NOTIFY_CHANNEL",
        default_value = "mcp_proxy_invalidate",
        value_parser = crate::domain::invalidation::parse_channel
    )]
    pub notify_channel: String,
    /// First delay before the invalidation listener reconnects; doubles per failed attempt
    /// (with jitter) up to the maximum. Attempts are unlimited; meanwhile caches use their TTLs.
    #[arg(long, env = "MCP_PROXY_LISTENER_RECONNECT_BASE_DELAY", default_value = "100ms", value_parser = humantime::parse_duration)]
    pub listener_reconnect_base_delay: Duration,
    /// Cap on one reconnect delay of the invalidation listener.
    #[arg(long, env = "MCP_PROXY_LISTENER_RECONNECT_MAX_DELAY", default_value = "5s", value_parser = humantime::parse_duration)]
    pub listener_reconnect_max_delay: Duration,
    /// How often the invalidation listener checks that its connection still answers (a silent
    /// network partition is noticed within this plus `--db-acquire-timeout`); `0s`: never.
    #[arg(long, env = "MCP_PROXY_LISTENER_PING_INTERVAL", default_value = "30s", value_parser = humantime::parse_duration)]
    pub listener_ping_interval: Duration,
    /// How long a downstream client gets to answer a server→client request an upstream sent
    /// (sampling, elicitation, roots).
    #[arg(long, env = "MCP_PROXY_CLIENT_REQUEST_TIMEOUT", default_value = "60s", value_parser = humantime::parse_duration)]
    pub client_request_timeout: Duration,
    /// The memory bound in MiB (Cloud Run's instance size; 0 disables it), against the
    /// allocator's live bytes. At 90 % of it the proxy sheds load: `/ready` answers 503 (the
    /// balancer sends traffic elsewhere) and new sessions get 503 + `Retry-After`; below 80 %
    /// (once the load is gone) it serves them again.
    #[arg(long, env = "MCP_PROXY_MEMORY_LIMIT_MIB", default_value_t = 1024)]
    pub memory_limit_mib: u64,
    #[command(flatten)]
    pub secret_key: SecretKeyArgs,
}

/// Where the key sealing instance secrets at rest comes from: `MCP_PROXY_SECRET_KEY` (the
/// environment only, never a command line) or `--secret-key-file`; 64 hex digits
/// (`mcp-proxy secrets new-key`).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct SecretKeyArgs {
    /// File holding the key that seals instance secrets (64 hex digits). Or set the key
    /// itself in MCP_PROXY_SECRET_KEY.
    #[arg(long, env = "MCP_PROXY_SECRET_KEY_FILE")]
    pub secret_key_file: Option<PathBuf>,
    /// Files holding keys that sealed secrets before a rotation: still opened, never used to
    /// seal (`secrets rotate-key` re-seals everything with the current key).
    #[arg(
        long,
        env = "MCP_PROXY_PREVIOUS_SECRET_KEY_FILE",
        value_delimiter = ','
    )]
    pub previous_secret_key_file: Vec<PathBuf>,
}

impl SecretKeyArgs {
    /// The keyring, if a key was given; an error names the source that is wrong.
    pub fn keyring(&self) -> anyhow::Result<Option<Keyring>> {
        use anyhow::Context;
        let from_env = std::env::var("MCP_PROXY_SECRET_KEY")
            .ok()
            .filter(|k| !k.trim().is_empty());
        let current = match (&self.secret_key_file, from_env) {
            (Some(_), Some(_)) => anyhow::bail!(
                "both MCP_PROXY_SECRET_KEY and --secret-key-file are set: give the key once"
            ),
            (Some(file), None) => read_key(file)?,
            (None, Some(text)) => SecretKey::parse(&text).context("MCP_PROXY_SECRET_KEY")?,
            (None, None) if self.previous_secret_key_file.is_empty() => return Ok(None),
            (None, None) => anyhow::bail!(
                "--previous-secret-key-file needs the current key too (MCP_PROXY_SECRET_KEY \
                 or --secret-key-file)"
            ),
        };
        let previous = self
            .previous_secret_key_file
            .iter()
            .map(|f| read_key(f))
            .collect::<anyhow::Result<_>>()?;
        Ok(Some(Keyring::new(current, previous)))
    }
}

/// A duration above zero (a zero timeout would close every connection at once).
fn positive_duration(text: &str) -> Result<Duration, String> {
    match humantime::parse_duration(text) {
        Ok(d) if d.is_zero() => Err("must be above zero".into()),
        Ok(d) => Ok(d),
        Err(e) => Err(e.to_string()),
    }
}

fn read_key(file: &std::path::Path) -> anyhow::Result<SecretKey> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| anyhow::anyhow!("cannot read secret key file {}: {e}", file.display()))?;
    SecretKey::parse(&text).map_err(|e| anyhow::anyhow!("secret key file {}: {e}", file.display()))
}

impl Default for Settings {
    fn default() -> Self {
        #[derive(clap::Parser)]
        struct Wrapper {
            #[command(flatten)]
            settings: Settings,
        }
        // Parse an empty command line so `Default` and the CLI can never disagree on a default.
        // (Like the CLI, this honours `MCP_PROXY_*` variables set in the environment.)
        <Wrapper as clap::Parser>::try_parse_from(["mcp-proxy"])
            .expect("the documented defaults always parse")
            .settings
    }
}

impl Settings {
    /// The connection manager's part of the settings.
    pub fn manager_policy(&self) -> crate::upstream::manager::ManagerPolicy {
        use crate::ops::backoff::Backoff;
        use crate::upstream::breaker::BreakerPolicy;
        crate::upstream::manager::ManagerPolicy {
            max_connections: self.max_upstream_connections,
            idle_timeout: self.upstream_idle_timeout,
            reconnect: Backoff {
                base: self.reconnect_base_delay,
                max: self.reconnect_max_delay,
                max_attempts: self.reconnect_max_attempts,
            },
            breaker: BreakerPolicy {
                threshold: self.breaker_threshold,
                cooldown: self.breaker_cooldown,
            },
        }
    }

    /// The HTTP server's limits, for an open-files limit of `nofile`: `--max-connections`, or
    /// what `nofile` leaves once the fds everything else may hold are set aside (128 for the
    /// process itself, the database pool, 4 per upstream connection: a stdio child's pipes and
    /// pidfd or an HTTP upstream's sockets) and the ops reserve.
    pub fn server_config(&self, nofile: u64) -> crate::http::server::ServerConfig {
        use crate::http::server::OPS_RESERVE;
        let reserved = 128
            + u64::from(self.db_pool_size)
            + 4 * self.max_upstream_connections as u64
            + OPS_RESERVE as u64;
        crate::http::server::ServerConfig {
            header_read_timeout: self.header_read_timeout,
            keep_alive_timeout: self.keep_alive_timeout,
            max_connections: self.max_connections.map_or_else(
                || crate::ops::fd_limit::connection_budget(nofile, reserved),
                |n| n.get(),
            ),
        }
    }

    /// The database URL to use: the setting, else `DATABASE_URL`, else the embedded default.
    pub fn resolved_database_url(&self) -> String {
        resolve_database_url(self.database_url.clone())
    }
}

/// `url`, else `DATABASE_URL`, else the embedded default `sqlite://mcp-proxy.db`.
pub fn resolve_database_url(url: Option<String>) -> String {
    url.or_else(|| std::env::var("DATABASE_URL").ok())
        .unwrap_or_else(|| "sqlite://mcp-proxy.db".to_string())
}
