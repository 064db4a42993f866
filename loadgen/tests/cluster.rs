//! The harness's own PostgreSQL and HAProxy as real child processes (`postgres.rs`,
//! `haproxy.rs`): they start, do their job, survive what they must (a PostgreSQL restart, a
//! replica in maintenance or failing its health check), and leave no process behind.
//!
//! Needs PostgreSQL's server binaries and HAProxy (`apt-get install -y postgresql haproxy`);
//! where one is missing its tests print `SKIPPED …` with the install command and pass, except
//! under `CI=true`, where they fail. The tests are serialised: each checks this process's
//! children, which another test's processes would disturb. This process is a child subreaper,
//! so a PostgreSQL backend orphaned by its postmaster would be re-parented here and seen.

mod common;

use std::collections::BTreeMap;
use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures::StreamExt;
use mcp_loadgen::target::deployment::haproxy::{AdminState, Haproxy, HaproxyOptions};
use mcp_loadgen::target::deployment::postgres::Postgres;
use sqlx::Connection;
use sqlx::postgres::PgConnection;

static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The located thing, or `None` after saying why the test is skipped (a failure under `CI=true`).
fn available<T>(located: anyhow::Result<T>, install: &str) -> Option<T> {
    match located {
        Ok(v) => Some(v),
        Err(e) => {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("CI=true and {e:#}");
            }
            // straight to stderr, past the test harness's capture, so a plain `cargo test`
            // shows what did not run
            let _ = writeln!(std::io::stderr(), "SKIPPED: {e:#} (install: {install})");
            None
        }
    }
}

/// Children of this process (zombies included: an orphan that died is still one).
fn my_children() -> Vec<String> {
    mcp_loadgen::observe::probe::child_pids(std::process::id())
        .unwrap()
        .into_iter()
        .map(mcp_loadgen::process::describe)
        .collect()
}

/// Waits (up to 3 s) until this process has no children.
async fn assert_no_children(what: &str) {
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let left = my_children();
        if left.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: processes left: {left:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn port_closed(addr: SocketAddr) -> bool {
    std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_err()
}

fn free_addr() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_starts_counts_restarts_and_stops_without_a_trace() {
    let _serial = SERIAL.lock().await;
    common::subreaper();
    let Some(_) = available(Postgres::locate(), "apt-get install -y postgresql") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let t = Instant::now();
    let mut pg = Postgres::start(dir.path()).await.unwrap();
    eprintln!(
        "timing: PostgreSQL initdb + start + CREATE DATABASE: {:?}",
        t.elapsed()
    );
    assert_eq!(
        pg.url(),
        format!("postgres://postgres@127.0.0.1:{}/mcp", pg.port())
    );
    let first_pid = pg.pid().unwrap();
    // the postmaster is registered: not a stray of the harness
    assert!(
        mcp_loadgen::process::stray_processes().is_empty(),
        "{:?}",
        my_children()
    );

    // connect and query
    let mut conn = PgConnection::connect(&pg.url()).await.unwrap();
    sqlx::query("CREATE TABLE kept (v TEXT)")
        .execute(&mut conn)
        .await
        .unwrap();
    sqlx::query("INSERT INTO kept VALUES ('across the restart')")
        .execute(&mut conn)
        .await
        .unwrap();
    assert_eq!(pg.client_connections().await.unwrap(), 1);
    conn.close().await.unwrap();
    // a backend ends shortly after its client said goodbye
    let deadline = Instant::now() + Duration::from_secs(5);
    while pg.client_connections().await.unwrap() != 0 {
        assert!(
            Instant::now() < deadline,
            "the closed connection is still counted"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // a real restart: same port and data, a new postmaster, held connections broken
    let mut held = PgConnection::connect(&pg.url()).await.unwrap();
    let down = pg.restart().await.unwrap();
    eprintln!("timing: PostgreSQL restart down time: {down:?}");
    assert!(down > Duration::ZERO);
    assert_ne!(pg.pid(), Some(first_pid), "the server was not restarted");
    assert!(!std::path::Path::new(&format!("/proc/{first_pid}")).exists());
    assert!(
        sqlx::query("SELECT 1").execute(&mut held).await.is_err(),
        "a connection held across the restart still works: the server did not restart"
    );
    drop(held);
    let mut fresh = PgConnection::connect(&pg.url()).await.unwrap();
    let v: String = sqlx::query_scalar("SELECT v FROM kept")
        .fetch_one(&mut fresh)
        .await
        .unwrap();
    assert_eq!(v, "across the restart");
    fresh.close().await.unwrap();

    // stop: port closed, no process, the cluster's folder gone, the log kept
    let port = pg.port();
    let pid = pg.pid().unwrap();
    let cluster = pg.cluster_dir().to_path_buf();
    let log = pg.log_path().to_path_buf();
    let t = Instant::now();
    let status = pg.stop().await.unwrap();
    eprintln!("timing: PostgreSQL stop: {:?}", t.elapsed());
    assert!(status.is_some_and(|s| s.success()), "{status:?}");
    assert!(port_closed(([127, 0, 0, 1], port).into()));
    assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists());
    assert!(!cluster.exists(), "{} was not deleted", cluster.display());
    assert!(log.exists());
    assert_no_children("after Postgres::stop").await;
    assert!(mcp_loadgen::process::stray_processes().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_postgres_leaves_no_process_and_no_folder() {
    let _serial = SERIAL.lock().await;
    common::subreaper();
    let Some(_) = available(Postgres::locate(), "apt-get install -y postgresql") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let pg = Postgres::start(dir.path()).await.unwrap();
    let port = pg.port();
    let cluster = pg.cluster_dir().to_path_buf();
    drop(pg);
    assert!(port_closed(([127, 0, 0, 1], port).into()));
    assert!(!cluster.exists(), "{} was not deleted", cluster.display());
    assert_no_children("after dropping a Postgres").await;
}

/// A tiny backend standing in for a replica: `/ready` (switchable), `POST /mcp` answering
/// with its name and issuing `Mcp-Session-Id` to a request without one (or 503 while
/// "draining"), `GET /sse` sending one event, then a second when the test says so.
#[derive(Clone)]
struct Backend {
    name: &'static str,
    ready: Arc<AtomicBool>,
    draining: Arc<AtomicBool>,
    hits: Arc<AtomicU64>,
    next_event: Arc<tokio::sync::Notify>,
}

impl Backend {
    async fn start(
        name: &'static str,
        next_event: Arc<tokio::sync::Notify>,
    ) -> (Backend, SocketAddr) {
        let b = Backend {
            name,
            ready: Arc::new(AtomicBool::new(true)),
            draining: Arc::new(AtomicBool::new(false)),
            hits: Arc::new(AtomicU64::new(0)),
            next_event,
        };
        let app = Router::new()
            .route("/ready", get(ready))
            .route("/mcp", post(mcp))
            .route("/sse", get(sse))
            .with_state(b.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        (b, addr)
    }
}

async fn ready(State(b): State<Backend>) -> StatusCode {
    if b.ready.load(Ordering::SeqCst) {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    }
}

async fn mcp(State(b): State<Backend>, headers: HeaderMap) -> Response {
    if b.draining.load(Ordering::SeqCst) {
        return (StatusCode::SERVICE_UNAVAILABLE, "draining").into_response();
    }
    let n = b.hits.fetch_add(1, Ordering::SeqCst);
    let session = match headers.get("mcp-session-id") {
        Some(s) => s.to_str().unwrap().to_string(),
        None => format!("{}-{n}", b.name),
    };
    ([("mcp-session-id", session)], b.name).into_response()
}

async fn sse(State(b): State<Backend>) -> Response {
    let next = b.next_event.clone();
    let name = b.name;
    let events = futures::stream::unfold(0, move |i| {
        let next = next.clone();
        async move {
            match i {
                0 => Some((
                    Ok::<_, std::io::Error>(format!("data: one from {name}\n\n")),
                    1,
                )),
                1 => {
                    next.notified().await;
                    Some((Ok(format!("data: two from {name}\n\n")), 2))
                }
                _ => None,
            }
        }
    });
    (
        [("content-type", "text/event-stream")],
        Body::from_stream(events),
    )
        .into_response()
}

struct Cluster {
    haproxy: Haproxy,
    http: reqwest::Client,
    backends: BTreeMap<&'static str, Backend>,
    next_event: Arc<tokio::sync::Notify>,
    _dir: tempfile::TempDir,
}

impl Cluster {
    async fn start() -> Option<Cluster> {
        available(Haproxy::locate(), "apt-get install -y haproxy")?;
        let next_event = Arc::new(tokio::sync::Notify::new());
        let mut backends = BTreeMap::new();
        let mut replicas = Vec::new();
        for name in ["b1", "b2"] {
            let (b, addr) = Backend::start(name, next_event.clone()).await;
            backends.insert(name, b);
            replicas.push((name.to_string(), addr));
        }
        let dir = tempfile::tempdir().unwrap();
        let t = Instant::now();
        let haproxy = Haproxy::start(
            dir.path(),
            free_addr(),
            &replicas,
            &HaproxyOptions::default(),
        )
        .await
        .unwrap();
        eprintln!(
            "timing: HAProxy check + start until it accepts TCP: {:?}",
            t.elapsed()
        );
        for name in ["b1", "b2"] {
            haproxy.wait_up(name, Duration::from_secs(5)).await.unwrap();
        }
        Some(Cluster {
            haproxy,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap(),
            backends,
            next_event,
            _dir: dir,
        })
    }

    /// POST /mcp through HAProxy; (which backend answered, its session id).
    async fn post(&self, session: Option<&str>) -> (String, String) {
        let mut req = self
            .http
            .post(format!("http://{}/mcp", self.haproxy.listen()))
            .body("{}");
        if let Some(s) = session {
            req = req.header("mcp-session-id", s);
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.status(), 200, "through HAProxy");
        let session = r.headers()["mcp-session-id"].to_str().unwrap().to_string();
        (r.text().await.unwrap(), session)
    }

    /// Which backends answered `n` requests without a session, and how many each.
    async fn spread(&self, n: usize) -> BTreeMap<String, usize> {
        let mut seen = BTreeMap::new();
        for _ in 0..n {
            *seen.entry(self.post(None).await.0).or_default() += 1;
        }
        seen
    }

    async fn wait_status(&self, name: &str, prefix: &str) {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let servers = self.haproxy.servers().await.unwrap();
            let s = servers.iter().find(|s| s.name == name).unwrap();
            if s.status.starts_with(prefix) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{name} is {} in HAProxy, not {prefix}",
                s.status
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn stop(self) {
        let pid = self.haproxy.pid().unwrap();
        let listen = self.haproxy.listen();
        let t = Instant::now();
        let status = self.haproxy.stop().await;
        eprintln!("timing: HAProxy stop: {:?} ({status:?})", t.elapsed());
        assert!(status.is_some());
        assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists());
        assert!(port_closed(listen));
        assert_no_children("after Haproxy::stop").await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn haproxy_balances_sticks_and_follows_admin_states_and_health_checks() {
    let _serial = SERIAL.lock().await;
    common::subreaper();
    let Some(c) = Cluster::start().await else {
        return;
    };
    assert!(mcp_loadgen::process::stray_processes().is_empty());

    // without a session, requests spread over both
    let seen = c.spread(20).await;
    assert!(
        seen.get("b1").is_some_and(|n| *n >= 5) && seen.get("b2").is_some_and(|n| *n >= 5),
        "{seen:?}"
    );

    // a session sticks to the backend that issued it
    let (owner, session) = c.post(None).await;
    assert!(session.starts_with(&owner), "{session} issued by {owner}");
    let other = if owner == "b1" { "b2" } else { "b1" };
    for _ in 0..10 {
        assert_eq!(c.post(Some(&session)).await.0, owner, "session {session}");
    }

    // drain: no new requests, but its sessions still reach it
    c.haproxy
        .set_state(&owner, AdminState::Drain)
        .await
        .unwrap();
    c.wait_status(&owner, "DRAIN").await;
    assert_eq!(c.spread(6).await, BTreeMap::from([(other.to_string(), 6)]));
    assert_eq!(c.post(Some(&session)).await.0, owner);

    // maintenance: nothing reaches it, its session goes to the other one
    c.haproxy
        .set_state(&owner, AdminState::Maint)
        .await
        .unwrap();
    c.wait_status(&owner, "MAINT").await;
    assert_eq!(c.spread(6).await, BTreeMap::from([(other.to_string(), 6)]));
    assert_eq!(c.post(Some(&session)).await.0, other, "session {session}");

    // back in service
    c.haproxy
        .set_state(&owner, AdminState::Ready)
        .await
        .unwrap();
    c.haproxy
        .wait_up(&owner, Duration::from_secs(5))
        .await
        .unwrap();
    let seen = c.spread(10).await;
    assert_eq!(seen.len(), 2, "{seen:?}");

    // a failing health check takes b1 out; passing again brings it back
    c.backends["b1"].ready.store(false, Ordering::SeqCst);
    let t = Instant::now();
    c.wait_status("b1", "DOWN").await;
    eprintln!(
        "timing: b1 seen DOWN {:?} after /ready turned 503",
        t.elapsed()
    );
    let b1_before = c.backends["b1"].hits.load(Ordering::SeqCst);
    assert_eq!(c.spread(6).await, BTreeMap::from([("b2".to_string(), 6)]));
    assert_eq!(c.backends["b1"].hits.load(Ordering::SeqCst), b1_before);
    c.backends["b1"].ready.store(true, Ordering::SeqCst);
    let t = Instant::now();
    c.haproxy
        .wait_up("b1", Duration::from_secs(5))
        .await
        .unwrap();
    eprintln!(
        "timing: b1 seen UP {:?} after /ready turned 200",
        t.elapsed()
    );
    assert_eq!(c.spread(10).await.len(), 2);

    let servers = c.haproxy.servers().await.unwrap();
    assert_eq!(
        servers.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
        ["b1", "b2"]
    );
    assert!(servers.iter().all(|s| s.total_sessions > 0), "{servers:?}");
    assert!(
        c.haproxy
            .set_state("nope", AdminState::Maint)
            .await
            .is_err()
    );
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn haproxy_retries_a_draining_replica_and_streams_sse() {
    let _serial = SERIAL.lock().await;
    common::subreaper();
    let Some(c) = Cluster::start().await else {
        return;
    };
    // b1 answers 503 "draining" (it did not process the request): each is retried on b2
    c.backends["b1"].draining.store(true, Ordering::SeqCst);
    assert_eq!(c.spread(10).await, BTreeMap::from([("b2".to_string(), 10)]));
    c.backends["b1"].draining.store(false, Ordering::SeqCst);

    // an SSE answer streams: the first event arrives while the backend holds the second
    let r = c
        .http
        .get(format!("http://{}/sse", c.haproxy.listen()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let mut body = r.bytes_stream();
    let first = tokio::time::timeout(Duration::from_secs(5), body.next())
        .await
        .expect("the first event was held back by HAProxy")
        .unwrap()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&first).contains("data: one"),
        "{first:?}"
    );
    c.next_event.notify_one();
    let mut rest = Vec::new();
    while let Some(chunk) = tokio::time::timeout(Duration::from_secs(5), body.next())
        .await
        .unwrap()
    {
        rest.extend_from_slice(&chunk.unwrap());
    }
    assert!(
        String::from_utf8_lossy(&rest).contains("data: two"),
        "{rest:?}"
    );
    c.stop().await;
}
