//! HAProxy's configuration for the replicas (pure, unit-tested): one HTTP frontend, one
//! backend sticky on `Mcp-Session-Id`, health checks on the proxy's `/ready`, `maxconn` per
//! replica with a queue, redispatch and retries; and the runtime API's `show stat` parsed.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;

/// The backend's name in the config and in the runtime API.
pub const BACKEND: &str = "replicas";

/// What the config leaves settable; the defaults are Cloud Run's shape.
#[derive(Debug, Clone, PartialEq)]
pub struct HaproxyOptions {
    /// Requests in service per replica (`maxconn`, Cloud Run's concurrency); more wait in
    /// the queue.
    pub maxconn_per_server: u32,
    /// Health check interval (`inter`), failures to mark DOWN (`fall`), successes to mark UP
    /// (`rise`).
    pub check_interval: Duration,
    pub fall: u32,
    pub rise: u32,
    /// How long a request may wait in the queue for a place on a replica.
    pub timeout_queue: Duration,
    pub timeout_connect: Duration,
    pub timeout_client: Duration,
    pub timeout_server: Duration,
    /// Retries of a request a replica refused, answered empty or answered 503 (each one on
    /// another replica: `option redispatch`).
    pub retries: u32,
    /// The stats socket; None: `haproxy.sock` in the folder given to [`Haproxy::start`](super::Haproxy::start).
    pub stats_socket: Option<PathBuf>,
}

impl Default for HaproxyOptions {
    fn default() -> Self {
        HaproxyOptions {
            maxconn_per_server: 80,
            check_interval: Duration::from_millis(250),
            fall: 2,
            rise: 1,
            timeout_queue: Duration::from_secs(30),
            timeout_connect: Duration::from_secs(2),
            timeout_client: Duration::from_secs(60),
            timeout_server: Duration::from_secs(60),
            retries: 3,
            stats_socket: None,
        }
    }
}

/// An administrative state of a server (`set server … state …`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdminState {
    /// In service (health checks decide UP/DOWN).
    Ready,
    /// No new balanced requests; its sticky sessions still reach it.
    Drain,
    /// Out of service: nothing reaches it, its sticky sessions are redispatched.
    Maint,
}

impl AdminState {
    pub(super) fn keyword(self) -> &'static str {
        match self {
            AdminState::Ready => "ready",
            AdminState::Drain => "drain",
            AdminState::Maint => "maint",
        }
    }
}

/// One server of the backend, from `show stat`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerState {
    pub name: String,
    /// HAProxy's words: `UP`, `DOWN`, `MAINT`, `DRAIN`, `NOLB`, `UP 1/2` (going down), …
    pub status: String,
    /// Requests in service now (`scur`).
    pub current_sessions: u64,
    /// Requests waiting for it in the queue (`qcur`).
    pub queue: u64,
    /// Requests it has served since the start (`stot`).
    pub total_sessions: u64,
}

/// `ip:port` as HAProxy reads it (IPv6 without brackets: the last colon separates the port).
fn haproxy_addr(a: SocketAddr) -> String {
    format!("{}:{}", a.ip(), a.port())
}

fn ms(d: Duration) -> String {
    format!("{}ms", d.as_millis())
}

fn quoted(p: &Path) -> String {
    let s = p.display().to_string();
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// The whole `haproxy.cfg` (pure). Choices:
/// - `balance leastconn`: requests differ a lot in cost (a `tools/call` that sleeps, an SSE
///   stream held open), so the replica with the fewest requests in service gets the next one;
///   among equals HAProxy rotates, so an idle cluster is spread evenly like round robin.
/// - keep-alive to the replicas with `http-reuse safe` (HAProxy's default, written out):
///   fewer connects on the replicas whose sockets the harness counts, like a front end that
///   pools its connections; `option http-no-delay` so each SSE event is sent as it arrives.
/// - sticky on `Mcp-Session-Id` (2025-11-25 sessions live in one replica's memory); requests
///   without one (2026-07-28, `initialize`) are balanced freely.
pub fn config(
    listen: SocketAddr,
    replicas: &[(String, SocketAddr)],
    opts: &HaproxyOptions,
) -> String {
    let mut c = String::new();
    let _ = writeln!(
        c,
        "# written by mcp-loadgen: HAProxy in front of the proxy's replicas"
    );
    c.push_str("global\n");
    c.push_str("    log stdout format raw local0 info\n");
    if let Some(sock) = &opts.stats_socket {
        let _ = writeln!(c, "    stats socket {} mode 600 level admin", quoted(sock));
    }
    c.push_str("    stats timeout 10s\n");
    c.push('\n');
    c.push_str("defaults\n");
    c.push_str("    mode http\n");
    c.push_str("    log global\n");
    // only errors and retries are logged: a log line per request would fill the report folder
    c.push_str("    option httplog\n");
    c.push_str("    option dontlog-normal\n");
    c.push_str("    option http-no-delay\n");
    c.push_str("    option redispatch\n");
    let _ = writeln!(c, "    retries {}", opts.retries);
    // a replica that refused the connection or answered 503 (draining) did not process it
    c.push_str("    retry-on conn-failure empty-response 503\n");
    let _ = writeln!(c, "    timeout connect {}", ms(opts.timeout_connect));
    let _ = writeln!(c, "    timeout client {}", ms(opts.timeout_client));
    let _ = writeln!(c, "    timeout server {}", ms(opts.timeout_server));
    let _ = writeln!(c, "    timeout queue {}", ms(opts.timeout_queue));
    c.push('\n');
    c.push_str("frontend mcp\n");
    let _ = writeln!(c, "    bind {}", haproxy_addr(listen));
    let _ = writeln!(c, "    default_backend {BACKEND}");
    c.push('\n');
    let _ = writeln!(c, "backend {BACKEND}");
    c.push_str("    balance leastconn\n");
    c.push_str("    http-reuse safe\n");
    c.push_str("    stick-table type string len 128 size 1m expire 30m\n");
    c.push_str("    stick match req.hdr(mcp-session-id)\n");
    c.push_str("    stick store-response res.hdr(mcp-session-id)\n");
    c.push_str(&format!(
        "    option httpchk GET {}\n",
        crate::target::bundled::READY_PATH
    ));
    c.push_str("    http-check expect status 200\n");
    let _ = writeln!(
        c,
        "    default-server check inter {} fall {} rise {} maxconn {}",
        ms(opts.check_interval),
        opts.fall,
        opts.rise,
        opts.maxconn_per_server
    );
    for (name, addr) in replicas {
        let _ = writeln!(c, "    server {name} {}", haproxy_addr(*addr));
    }
    c
}

/// The servers of `backend` in `show stat` CSV (the header line names the columns).
pub fn parse_show_stat(csv: &str, backend: &str) -> anyhow::Result<Vec<ServerState>> {
    let mut lines = csv.lines().filter(|l| !l.trim().is_empty());
    let header = lines
        .next()
        .and_then(|h| h.strip_prefix("# "))
        .context("show stat: no `# pxname,svname,…` header line")?;
    let cols: Vec<&str> = header.split(',').collect();
    let col = |name: &str| {
        cols.iter()
            .position(|c| *c == name)
            .with_context(|| format!("show stat: no `{name}` column"))
    };
    let (px, sv, status, scur, qcur, stot) = (
        col("pxname")?,
        col("svname")?,
        col("status")?,
        col("scur")?,
        col("qcur")?,
        col("stot")?,
    );
    let num = |fields: &[&str], i: usize| -> u64 {
        fields
            .get(i)
            .and_then(|v| v.parse().ok())
            .unwrap_or_default()
    };
    let mut out = Vec::new();
    for line in lines {
        let f: Vec<&str> = line.split(',').collect();
        if f.get(px) != Some(&backend) {
            continue;
        }
        let name = f.get(sv).copied().unwrap_or_default();
        if name == "FRONTEND" || name == "BACKEND" {
            continue;
        }
        out.push(ServerState {
            name: name.to_string(),
            status: f.get(status).copied().unwrap_or_default().to_string(),
            current_sessions: num(&f, scur),
            queue: num(&f, qcur),
            total_sessions: num(&f, stot),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn replicas() -> Vec<(String, SocketAddr)> {
        vec![
            ("r1".into(), "127.0.0.1:8081".parse().unwrap()),
            ("r2".into(), "127.0.0.1:8082".parse().unwrap()),
        ]
    }

    fn lines(cfg: &str) -> Vec<&str> {
        cfg.lines().map(str::trim).collect()
    }

    #[test]
    fn the_config_is_sticky_health_checked_and_bounded() {
        let opts = HaproxyOptions {
            stats_socket: Some("/tmp/x/haproxy.sock".into()),
            ..HaproxyOptions::default()
        };
        let cfg = config("127.0.0.1:8080".parse().unwrap(), &replicas(), &opts);
        let l = lines(&cfg);
        for want in [
            "mode http",
            "bind 127.0.0.1:8080",
            "default_backend replicas",
            "backend replicas",
            "balance leastconn",
            "stick match req.hdr(mcp-session-id)",
            "stick store-response res.hdr(mcp-session-id)",
            "option httpchk GET /ready",
            "http-check expect status 200",
            "default-server check inter 250ms fall 2 rise 1 maxconn 80",
            "timeout queue 30000ms",
            "timeout connect 2000ms",
            "timeout client 60000ms",
            "timeout server 60000ms",
            "option redispatch",
            "retries 3",
            "retry-on conn-failure empty-response 503",
            "option http-no-delay",
            "http-reuse safe",
            "stats socket \"/tmp/x/haproxy.sock\" mode 600 level admin",
            "server r1 127.0.0.1:8081",
            "server r2 127.0.0.1:8082",
        ] {
            assert!(l.contains(&want), "missing `{want}` in:\n{cfg}");
        }
        assert!(
            l.iter().any(|x| x.starts_with("stick-table type string")),
            "{cfg}"
        );
        assert!(!cfg.contains("daemon"), "{cfg}");
    }

    #[test]
    fn the_options_reach_the_config() {
        let opts = HaproxyOptions {
            maxconn_per_server: 5,
            check_interval: Duration::from_millis(100),
            fall: 3,
            rise: 2,
            timeout_queue: Duration::from_secs(1),
            retries: 0,
            stats_socket: None,
            ..HaproxyOptions::default()
        };
        let cfg = config("[::1]:9000".parse().unwrap(), &replicas(), &opts);
        let l = lines(&cfg);
        assert!(
            l.contains(&"default-server check inter 100ms fall 3 rise 2 maxconn 5"),
            "{cfg}"
        );
        assert!(l.contains(&"timeout queue 1000ms"), "{cfg}");
        assert!(l.contains(&"retries 0"), "{cfg}");
        assert!(l.contains(&"bind ::1:9000"), "{cfg}");
        assert!(!cfg.contains("stats socket"), "{cfg}");
    }

    const SHOW_STAT: &str = "\
# pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,ereq,econ,eresp,wretr,wredis,status,weight,act,bck,chkfail,chkdown,lastchg,downtime,qlimit,pid,iid,sid,throttle,lbtot,tracked,type,rate,rate_lim,rate_max,check_status,
mcp,FRONTEND,,,1,2,262119,10,1000,2000,0,0,0,,,,,OPEN,,,,,,,,,1,2,0,,,,0,0,0,3,,
replicas,r1,0,0,1,2,80,7,500,900,,0,,0,0,0,0,UP,1,1,0,0,0,12,0,,1,3,1,,7,,2,0,,2,L7OK,
replicas,r2,3,4,80,80,80,3,500,900,,0,,0,0,0,0,DOWN 1/2,1,1,0,1,1,1,1,,1,3,2,,3,,2,0,,1,L7STS,
replicas,r3,0,0,0,0,80,0,0,0,,0,,0,0,0,0,MAINT,1,1,0,0,0,1,1,,1,3,3,,0,,2,0,,0,,
replicas,BACKEND,3,4,81,82,8,10,1000,2000,0,0,,0,0,0,0,UP,2,2,0,,0,12,0,,1,3,0,,10,,1,0,,3,,
other,r1,0,0,9,9,80,9,0,0,,0,,0,0,0,0,UP,1,1,0,0,0,1,0,,1,4,1,,9,,2,0,,0,L7OK,
";

    #[test]
    fn show_stat_gives_the_backends_servers() {
        let s = parse_show_stat(SHOW_STAT, "replicas").unwrap();
        assert_eq!(
            s,
            vec![
                ServerState {
                    name: "r1".into(),
                    status: "UP".into(),
                    current_sessions: 1,
                    queue: 0,
                    total_sessions: 7
                },
                ServerState {
                    name: "r2".into(),
                    status: "DOWN 1/2".into(),
                    current_sessions: 80,
                    queue: 3,
                    total_sessions: 3
                },
                ServerState {
                    name: "r3".into(),
                    status: "MAINT".into(),
                    current_sessions: 0,
                    queue: 0,
                    total_sessions: 0
                },
            ]
        );
    }

    #[test]
    fn show_stat_without_a_header_is_an_error() {
        let e = parse_show_stat("replicas,r1,0\n", "replicas").unwrap_err();
        assert!(e.to_string().contains("header"), "{e}");
        let e = parse_show_stat("# pxname,svname\n", "replicas").unwrap_err();
        assert!(e.to_string().contains("status"), "{e}");
    }
}
