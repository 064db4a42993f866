//! Contract: replicas on one PostgreSQL (`TEST_DATABASE_URL`; skipped, saying so, when unset,
//! and a failure under `CI=true`) see each other's changes through `LISTEN/NOTIFY` long before
//! their cache TTLs: a key revoked or added on one replica, an upstream added to an instance.
//! While a replica cannot listen it falls back to its TTLs, and it reconnects by itself with
//! backoff. Every test has its own schema and its own notify channel; caches have TTLs of 60 s
//! (unless a test says otherwise), so only an invalidation explains a change within a second.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::*;
use mcp_proxy::Settings;
use mcp_proxy::data::store::{Revoke, Store};
use mcp_proxy::domain::seed::Seed;
use mock_mcp::MockServer;
use reqwest::StatusCode;
use sqlx::postgres::PgListener;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// A propagation must be faster than this.
const PROPAGATION: Duration = Duration::from_secs(1);
const LONG_TTL: Duration = Duration::from_secs(60);

/// One test's own schema (through `search_path`) and notify channel on the test PostgreSQL.
struct Pg {
    base: String,
    schema: String,
    /// The database URL of this test's schema.
    url: String,
    channel: String,
}

impl Pg {
    /// `None` (after saying so) when `TEST_DATABASE_URL` is unset; under `CI=true` that fails.
    async fn new() -> Option<Pg> {
        let base = match std::env::var("TEST_DATABASE_URL") {
            Ok(base) if !base.is_empty() => base,
            _ => {
                assert!(
                    std::env::var("CI").as_deref() != Ok("true"),
                    "CI=true but TEST_DATABASE_URL is not set: the replica tests must run there"
                );
                eprintln!(
                    "TEST_DATABASE_URL is not set: replica (PostgreSQL LISTEN/NOTIFY) tests skipped"
                );
                return None;
            }
        };
        let id = hex::encode(rand::random::<[u8; 6]>());
        let schema = format!("r_{id}");
        sqlx::any::install_default_drivers();
        let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&base)
            .await
            .expect("TEST_DATABASE_URL connects");
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
            .execute(&mut conn)
            .await
            .unwrap();
        let sep = if base.contains('?') { '&' } else { '?' };
        Some(Pg {
            url: format!("{base}{sep}options=-c%20search_path%3D{schema}"),
            base,
            schema,
            channel: format!("t_invalidate_{id}"),
        })
    }

    /// The PostgreSQL server's address.
    fn addr(&self) -> SocketAddr {
        let url = reqwest::Url::parse(&self.base).unwrap();
        let host = url.host_str().unwrap();
        let host = if host == "localhost" {
            "127.0.0.1"
        } else {
            host
        };
        format!("{host}:{}", url.port().unwrap_or(5432))
            .parse()
            .expect("TEST_DATABASE_URL names an IP address or localhost")
    }

    /// The base URL with its host and port replaced by `via`.
    fn url_via(&self, via: SocketAddr) -> String {
        let mut url = reqwest::Url::parse(&self.base).unwrap();
        url.set_host(Some(&via.ip().to_string())).unwrap();
        url.set_port(Some(via.port())).unwrap();
        url.to_string()
    }

    /// A store on this test's schema that announces its writes on this test's channel.
    async fn store(&self) -> Store {
        Store::connect(&self.url, 2, Duration::from_secs(5), Default::default())
            .await
            .unwrap()
            .with_notify_channel(&self.channel)
            .unwrap()
    }

    /// Sends a raw notification on this test's channel.
    async fn notify(&self, payload: &str) {
        let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&self.base)
            .await
            .unwrap();
        sqlx::query("SELECT 1 AS sent FROM pg_notify($1, $2)")
            .bind(&self.channel)
            .bind(payload)
            .execute(&mut conn)
            .await
            .unwrap();
    }

    async fn cleanup(self) {
        let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&self.base)
            .await
            .unwrap();
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "DROP SCHEMA {} CASCADE",
            self.schema
        )))
        .execute(&mut conn)
        .await
        .unwrap();
    }
}

/// A replica on `pg` with long cache TTLs; `tweak` adjusts the rest.
async fn replica(pg: &Pg, seed: &str, tweak: impl FnOnce(&mut Settings)) -> TestProxy {
    let proxy = start_proxy(seed, |s| {
        s.database_url = Some(pg.url.clone());
        s.notify_channel = pg.channel.clone();
        s.auth_cache_ttl = LONG_TTL;
        s.config_cache_ttl = LONG_TTL;
        s.tools_cache_ttl = LONG_TTL;
        tweak(s);
    })
    .await;
    assert!(
        wait_listener(&proxy, 1, Duration::from_secs(10)).await,
        "the replica's invalidation listener never came up"
    );
    proxy
}

/// A sample from the replica's `/metrics` (0 if absent).
async fn metric(proxy: &TestProxy, name: &str, labels: &[(&str, &str)]) -> f64 {
    metric_value(&metrics_text(proxy).await, name, labels).unwrap_or(0.0)
}

async fn listener_up(proxy: &TestProxy) -> f64 {
    metric(proxy, "mcp_proxy_invalidation_listener_up", &[]).await
}

async fn connects(proxy: &TestProxy, outcome: &str) -> f64 {
    metric(
        proxy,
        "mcp_proxy_invalidation_listener_connects_total",
        &[("outcome", outcome)],
    )
    .await
}

async fn invalidations(proxy: &TestProxy, kind: &str) -> f64 {
    metric(proxy, "mcp_proxy_invalidations_total", &[("kind", kind)]).await
}

/// Polls `/metrics` until the listener gauge is `up` (true) or `timeout` passes.
async fn wait_listener(proxy: &TestProxy, up: i64, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if listener_up(proxy).await == up as f64 {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// What the replica answers to an `initialize` with `key`; the session it opens is closed.
async fn auth_status(proxy: &TestProxy, key: &str) -> StatusCode {
    let url = proxy.url("demo");
    let r = post(&url, Some(key))
        .json(&initialize_body("2025-11-25"))
        .send()
        .await
        .unwrap();
    let status = r.status();
    let session = r.headers().get("mcp-session-id").cloned();
    let body = r.text().await.unwrap_or_default();
    if status == StatusCode::UNAUTHORIZED {
        assert!(
            body.contains("_api_key"),
            "401 without an auth error: {body}"
        );
    }
    if let Some(session) = session {
        let _ = reqwest::Client::new()
            .delete(&url)
            .bearer_auth(key)
            .header("mcp-session-id", session)
            .send()
            .await;
    }
    status
}

/// When a poll saw the change: it happened after the previous poll began and before this one
/// ended (a poll is an `initialize`, which may connect an upstream).
#[derive(Debug, Clone, Copy)]
struct Seen {
    /// The end of the first poll that saw it: an upper bound.
    by: Duration,
    /// The start of that poll.
    poll_began: Duration,
}

impl std::fmt::Display for Seen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:?} (the poll that saw it began at {:?})",
            self.by, self.poll_began
        )
    }
}

/// Polls every 20 ms until `key` gets `want` from the replica; when it did, or `None` after
/// `timeout`.
async fn time_until(
    proxy: &TestProxy,
    key: &str,
    want: StatusCode,
    timeout: Duration,
) -> Option<Seen> {
    let started = Instant::now();
    loop {
        let poll_began = started.elapsed();
        if auth_status(proxy, key).await == want {
            let by = started.elapsed();
            return (by <= timeout).then_some(Seen { by, poll_began });
        }
        if started.elapsed() >= timeout {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The tool names the replica lists on a fresh session.
async fn tool_names(proxy: &TestProxy) -> Vec<String> {
    let client = client(&proxy.url("demo"), KEY).await;
    let tools = client.list_all_tools().await.unwrap();
    client.cancel().await.unwrap();
    let mut names: Vec<String> = tools.into_iter().map(|t| t.name.to_string()).collect();
    names.sort();
    names
}

fn one_upstream_seed(mock: &MockServer) -> String {
    http_seed(&[("echo", &mock.url(), "shared")], "demo", KEY, "auto")
}

fn two_upstream_seed(mock: &MockServer, second: &MockServer) -> String {
    http_seed(
        &[
            ("echo", &mock.url(), "shared"),
            ("second", &second.url(), "shared"),
        ],
        "demo",
        KEY,
        "auto",
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_revoked_on_one_replica_is_refused_by_the_other_within_a_second() {
    let Some(pg) = Pg::new().await else { return };
    let mock = MockServer::start(Default::default()).await.unwrap();
    let a = replica(&pg, &one_upstream_seed(&mock), |_| {}).await;
    let b = replica(&pg, "", |_| {}).await;

    // through the state (the in-process admin path)
    let created = a.proxy.state.create_key("demo").await.unwrap();
    assert_eq!(auth_status(&a, &created.key).await, StatusCode::OK);
    assert_eq!(auth_status(&b, &created.key).await, StatusCode::OK);
    let hits = b.proxy.state.metrics.auth_cache_hits.get();
    assert_eq!(auth_status(&b, &created.key).await, StatusCode::OK);
    assert!(
        b.proxy.state.metrics.auth_cache_hits.get() > hits,
        "B serves the key from its cache"
    );
    let (keys_before, all_before) = (
        invalidations(&b, "key").await,
        invalidations(&b, "all").await,
    );
    let applied = |p: &TestProxy| {
        p.proxy
            .state
            .metrics
            .invalidations
            .get_or_create(&mcp_proxy::ops::metrics::Kind { kind: "key" })
            .get()
    };
    let applied_before = applied(&b);
    let called = Instant::now();
    let revoked = a.proxy.state.revoke_key(&created.id).await.unwrap();
    let committed = Instant::now();
    let call_took = called.elapsed();
    assert!(matches!(revoked, Revoke::Revoked(ref k) if k.id == created.id));
    // the notification itself, seen in B's counter (polled every 1 ms, in process)
    while applied(&b) == applied_before && committed.elapsed() < PROPAGATION {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    eprintln!(
        "B applied the revocation's notification {:?} after A's revoke_key returned ({:?} after it was called; the call took {call_took:?})",
        committed.elapsed(),
        called.elapsed()
    );
    let took = time_until(&b, &created.key, StatusCode::UNAUTHORIZED, PROPAGATION)
        .await
        .expect("B still accepts the key revoked on A after 1 s");
    eprintln!("revocation through A's state reached B by {took}");
    // the revoking replica refuses it at once, without waiting for its own notification
    assert_eq!(
        auth_status(&a, &created.key).await,
        StatusCode::UNAUTHORIZED
    );
    assert!(invalidations(&b, "key").await > keys_before);
    assert_eq!(
        invalidations(&b, "all").await,
        all_before,
        "the key's own notification did it, not a flush"
    );

    // through the CLI, a separate process on the same channel
    let created = a.proxy.state.create_key("demo").await.unwrap();
    assert_eq!(auth_status(&b, &created.key).await, StatusCode::OK);
    let out = std::process::Command::new(proxy_bin())
        .args(["keys", "revoke", &created.id, "--database-url", &pg.url])
        .args(["--notify-channel", &pg.channel])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("revoked key {} of instance demo", created.id)
    );
    let took = time_until(&b, &created.key, StatusCode::UNAUTHORIZED, PROPAGATION)
        .await
        .expect("B still accepts the key revoked by the CLI after 1 s");
    eprintln!("revocation through the CLI reached B by {took} (from the CLI's exit)");
    let took_a = time_until(&a, &created.key, StatusCode::UNAUTHORIZED, PROPAGATION)
        .await
        .expect("A still accepts the key revoked by the CLI after 1 s");
    eprintln!("revocation through the CLI reached A by {took_a}");

    a.shutdown().await;
    b.shutdown().await;
    pg.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_added_on_one_replica_is_accepted_by_the_other_within_a_second() {
    let Some(pg) = Pg::new().await else { return };
    let mock = MockServer::start(Default::default()).await.unwrap();
    let seed = one_upstream_seed(&mock);
    let a = replica(&pg, &seed, |_| {}).await;
    let b = replica(&pg, "", |_| {}).await;

    // B caches the key as unknown
    let later = "later-key-0001";
    assert_eq!(auth_status(&b, later).await, StatusCode::UNAUTHORIZED);
    let misses = b.proxy.state.metrics.auth_cache_misses.get();
    assert_eq!(auth_status(&b, later).await, StatusCode::UNAUTHORIZED);
    assert_eq!(
        b.proxy.state.metrics.auth_cache_misses.get(),
        misses,
        "B serves 'unknown' from its cache"
    );
    // A adds it (a seed that lists it for the instance)
    let with_key = seed.replace(
        &format!("api_keys = [\"{KEY}\"]"),
        &format!("api_keys = [\"{KEY}\", \"{later}\"]"),
    );
    let report = a
        .proxy
        .state
        .apply_seed(&Seed::parse(&with_key).unwrap())
        .await
        .unwrap();
    assert_eq!(report.keys_added, 1);
    let took = time_until(&b, later, StatusCode::OK, PROPAGATION)
        .await
        .expect("B still refuses the key added on A after 1 s");
    eprintln!("a key seeded on A was accepted by B by {took}");

    // `keys create` announces the new key's hash; a refused create announces nothing
    let mut listener = PgListener::connect(&pg.base).await.unwrap();
    listener.listen(&pg.channel).await.unwrap();
    let store = pg.store().await;
    assert!(store.create_key("nope").await.is_err());
    let created = store.create_key("demo").await.unwrap();
    let heard = tokio::time::timeout(Duration::from_secs(5), listener.recv())
        .await
        .expect("a notification for the created key")
        .unwrap();
    assert_eq!(
        heard.payload(),
        format!(
            "key:{}",
            hex::encode(mcp_proxy::domain::keys::hash_key(&created.key))
        ),
        "the first notification is the created key's (the failed create sent none)"
    );
    assert_eq!(auth_status(&b, &created.key).await, StatusCode::OK);
    store.close().await;
    drop(listener);

    a.shutdown().await;
    b.shutdown().await;
    pg.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_added_on_one_replica_appears_in_the_others_tools_within_a_second() {
    let Some(pg) = Pg::new().await else { return };
    let mock = MockServer::start(Default::default()).await.unwrap();
    let second = MockServer::start(Default::default()).await.unwrap();
    let a = replica(&pg, &one_upstream_seed(&mock), |_| {}).await;
    let b = replica(&pg, "", |_| {}).await;

    let before = tool_names(&b).await;
    assert!(before.contains(&"echo".to_string()), "{before:?}");
    assert_eq!(tool_names(&a).await, before);
    a.proxy
        .state
        .apply_seed(&Seed::parse(&two_upstream_seed(&mock, &second)).unwrap())
        .await
        .unwrap();
    let client = client(&b.url("demo"), KEY).await;
    let started = Instant::now();
    let mut names = Vec::new();
    while started.elapsed() < PROPAGATION {
        names = client
            .list_all_tools()
            .await
            .unwrap()
            .into_iter()
            .map(|t| t.name.to_string())
            .collect();
        if names.iter().any(|n| n == "second__echo") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let took = started.elapsed();
    assert!(
        names.iter().any(|n| n == "second__echo") && names.iter().any(|n| n == "echo__echo"),
        "B still lists {names:?} 1 s after A added an upstream"
    );
    eprintln!("an upstream added on A appeared in B's tools/list after {took:?}");
    client.cancel().await.unwrap();

    a.shutdown().await;
    b.shutdown().await;
    pg.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_notification_a_replica_keeps_its_cache_and_an_instance_payload_drops_it() {
    let Some(pg) = Pg::new().await else { return };
    let mock = MockServer::start(Default::default()).await.unwrap();
    let second = MockServer::start(Default::default()).await.unwrap();
    let b = replica(&pg, &one_upstream_seed(&mock), |_| {}).await;
    assert!(tool_names(&b).await.contains(&"echo".to_string()));

    // a write by a store with no notify channel: nobody is told
    let silent = Store::connect(&pg.url, 2, Duration::from_secs(5), Default::default())
        .await
        .unwrap();
    assert_eq!(silent.notify_channel(), None);
    silent
        .apply_seed(&Seed::parse(&two_upstream_seed(&mock, &second)).unwrap())
        .await
        .unwrap();
    silent.close().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !tool_names(&b).await.iter().any(|n| n.contains("__")),
        "B's cached list changed without a notification: the test proves nothing"
    );
    // garbage is ignored (and the listener stays up)
    pg.notify("garbage").await;
    pg.notify("key:nothex").await;
    pg.notify(&format!("instance:{}", "other")).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(listener_up(&b).await, 1.0);
    assert!(!tool_names(&b).await.iter().any(|n| n.contains("__")));
    // the instance's own payload
    let instance_before = invalidations(&b, "instance").await;
    pg.notify("instance:demo").await;
    let started = Instant::now();
    let mut names = Vec::new();
    while started.elapsed() < PROPAGATION {
        names = tool_names(&b).await;
        if names.iter().any(|n| n == "second__echo") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        names.iter().any(|n| n == "second__echo"),
        "B still lists {names:?} 1 s after instance:demo"
    );
    eprintln!(
        "instance:demo dropped B's cached config and tools after {:?}",
        started.elapsed()
    );
    assert_eq!(invalidations(&b, "instance").await, instance_before + 1.0);

    b.shutdown().await;
    pg.cleanup().await;
}

/// A TCP forwarder the test owns, between a replica's listener and PostgreSQL: it can cut
/// every connection (and refuse new ones), or stall them (bytes stop flowing, nothing closes).
struct Forwarder {
    addr: SocketAddr,
    shared: Arc<ForwarderShared>,
    accept: tokio::task::JoinHandle<()>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Open,
    Cut,
    Stall,
}

struct ForwarderShared {
    mode: tokio::sync::watch::Sender<Mode>,
    /// Cancelled to close every live connection.
    cut: std::sync::Mutex<CancellationToken>,
    live: AtomicUsize,
}

impl Forwarder {
    async fn start(target: SocketAddr) -> Forwarder {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(ForwarderShared {
            mode: tokio::sync::watch::channel(Mode::Open).0,
            cut: std::sync::Mutex::new(CancellationToken::new()),
            live: AtomicUsize::new(0),
        });
        let s = shared.clone();
        let accept = tokio::spawn(async move {
            while let Ok((downstream, _)) = listener.accept().await {
                if *s.mode.borrow() == Mode::Cut {
                    drop(downstream); // refused: closed at once
                    continue;
                }
                let s = s.clone();
                tokio::spawn(async move {
                    let Ok(upstream) = tokio::net::TcpStream::connect(target).await else {
                        return;
                    };
                    s.live.fetch_add(1, Ordering::SeqCst);
                    let cut = s.cut.lock().unwrap().clone();
                    let (dr, dw) = downstream.into_split();
                    let (ur, uw) = upstream.into_split();
                    tokio::select! {
                        _ = pipe(dr, uw, &s) => {}
                        _ = pipe(ur, dw, &s) => {}
                        _ = cut.cancelled() => {}
                    }
                    s.live.fetch_sub(1, Ordering::SeqCst);
                });
            }
        });
        Forwarder {
            addr,
            shared,
            accept,
        }
    }

    /// Closes every live connection and refuses new ones.
    fn cut(&self) {
        self.shared.mode.send_replace(Mode::Cut);
        let old = std::mem::take(&mut *self.shared.cut.lock().unwrap());
        old.cancel();
    }

    /// Bytes stop flowing both ways; connections stay open.
    fn stall(&self) {
        self.shared.mode.send_replace(Mode::Stall);
    }

    fn restore(&self) {
        self.shared.mode.send_replace(Mode::Open);
    }

    fn live(&self) -> usize {
        self.shared.live.load(Ordering::SeqCst)
    }

    fn stop(self) {
        self.cut();
        self.accept.abort();
    }
}

/// Copies bytes from `from` to `to`, holding them while the forwarder is stalled.
async fn pipe(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    shared: &ForwarderShared,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = vec![0u8; 16 * 1024];
    let mut mode = shared.mode.subscribe();
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if mode.wait_for(|m| *m != Mode::Stall).await.is_err() {
            return;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deaf_replica_falls_back_to_its_ttl_and_reconnects_with_backoff() {
    let Some(pg) = Pg::new().await else { return };
    let mock = MockServer::start(Default::default()).await.unwrap();
    let forwarder = Forwarder::start(pg.addr()).await;
    let ttl = Duration::from_secs(2);
    let a = replica(&pg, &one_upstream_seed(&mock), |_| {}).await;
    let notify_url = pg.url_via(forwarder.addr);
    let b = replica(&pg, "", |s| {
        s.notify_url = Some(notify_url);
        s.auth_cache_ttl = ttl;
        s.listener_reconnect_base_delay = Duration::from_millis(100);
        s.listener_reconnect_max_delay = Duration::from_secs(1);
    })
    .await;
    assert_eq!(forwarder.live(), 1, "B listens through the forwarder");

    // the listener goes deaf
    let created = a.proxy.state.create_key("demo").await.unwrap();
    let errors_at_cut = connects(&b, "error").await;
    let (ok_at_cut, all_at_cut) = (connects(&b, "ok").await, invalidations(&b, "all").await);
    let cut_at = Instant::now();
    forwarder.cut();
    assert!(
        wait_listener(&b, 0, Duration::from_secs(2)).await,
        "B's gauge still says it listens after the cut"
    );
    eprintln!("B noticed the cut after {:?}", cut_at.elapsed());

    // B caches the key while deaf; A revokes it: B keeps it until its TTL
    let cached_at = Instant::now();
    assert_eq!(auth_status(&b, &created.key).await, StatusCode::OK);
    assert!(matches!(
        a.proxy.state.revoke_key(&created.id).await.unwrap(),
        Revoke::Revoked(_)
    ));
    let revoked_at = Instant::now();
    tokio::time::sleep_until(revoked_at + Duration::from_millis(500)).await;
    assert_eq!(
        auth_status(&b, &created.key).await,
        StatusCode::OK,
        "no notification reached B, so it still accepts the key"
    );
    let took = time_until(
        &b,
        &created.key,
        StatusCode::UNAUTHORIZED,
        ttl + PROPAGATION - Duration::from_millis(500),
    )
    .await
    .expect("B accepted the revoked key beyond its TTL + 1 s");
    let after_caching = cached_at.elapsed();
    eprintln!(
        "deaf B refused the revoked key {:?} after the revocation, {after_caching:?} after caching it (TTL {ttl:?})",
        took.by + Duration::from_millis(500)
    );
    assert!(
        after_caching >= ttl - Duration::from_millis(100),
        "refused after {after_caching:?}, before the TTL: something else invalidated it"
    );

    // the forwarder comes back: B reconnects by itself
    let outage_errors_before = connects(&b, "error").await;
    assert!(
        outage_errors_before > errors_at_cut,
        "B tried to reconnect during the outage"
    );
    forwarder.restore();
    let restored_at = Instant::now();
    assert!(
        wait_listener(&b, 1, Duration::from_secs(5)).await,
        "B's listener did not come back within 5 s of the forwarder"
    );
    let outage = cut_at.elapsed();
    eprintln!(
        "B listened again {:?} after the forwarder was restored",
        restored_at.elapsed()
    );
    let errors = connects(&b, "error").await - errors_at_cut;
    let hot_loop = outage.as_millis() as f64 / 20.0;
    eprintln!("{errors} failed connects in an outage of {outage:?} (a 20 ms loop: {hot_loop:.0})");
    assert!(errors >= 1.0);
    assert!(
        errors <= hot_loop / 5.0,
        "{errors} failed connects in {outage:?}: not backing off"
    );
    assert_eq!(connects(&b, "ok").await, ok_at_cut + 1.0);
    assert_eq!(
        invalidations(&b, "all").await,
        all_at_cut + 1.0,
        "a reconnect drops every cache entry"
    );
    assert_eq!(forwarder.live(), 1);

    // and propagates again
    let created = a.proxy.state.create_key("demo").await.unwrap();
    assert_eq!(auth_status(&b, &created.key).await, StatusCode::OK);
    a.proxy.state.revoke_key(&created.id).await.unwrap();
    let took = time_until(&b, &created.key, StatusCode::UNAUTHORIZED, PROPAGATION)
        .await
        .expect("after the reconnect B still accepts a revoked key after 1 s");
    eprintln!("after the reconnect a revocation reached B by {took}");

    a.shutdown().await;
    b.shutdown().await;
    // shutdown closed B's listening connection
    let mut closed = false;
    for _ in 0..100 {
        if forwarder.live() == 0 {
            closed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        closed,
        "B's listener connection is still open after shutdown"
    );
    forwarder.stop();
    pg.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_partition_is_noticed_by_the_liveness_check() {
    let Some(pg) = Pg::new().await else { return };
    let forwarder = Forwarder::start(pg.addr()).await;
    let notify_url = pg.url_via(forwarder.addr);
    let b = replica(&pg, "", |s| {
        s.notify_url = Some(notify_url);
        s.listener_ping_interval = Duration::from_millis(200);
        s.db_acquire_timeout = Duration::from_secs(1);
        s.listener_reconnect_max_delay = Duration::from_millis(500);
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(listener_up(&b).await, 1.0, "pings pass while bytes flow");
    let stalled_at = Instant::now();
    forwarder.stall();
    assert!(
        wait_listener(&b, 0, Duration::from_secs(3)).await,
        "B's gauge still says it listens 3 s into a silent partition"
    );
    eprintln!(
        "B noticed the silent partition after {:?}",
        stalled_at.elapsed()
    );
    forwarder.restore();
    assert!(
        wait_listener(&b, 1, Duration::from_secs(5)).await,
        "B did not listen again after the partition"
    );
    b.shutdown().await;
    forwarder.stop();
    pg.cleanup().await;
}

/// Runs without PostgreSQL: dropping every cache (what a listener does at each (re)connect)
/// must not make an instance stop advertising what its live upstream connections offer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_every_cache_keeps_the_advertised_capabilities() {
    let (_mock, proxy) = echo_proxy("shared", |_| {}).await;
    let caps = |c: &Client| serde_json::to_value(&c.peer_info().unwrap().capabilities).unwrap();
    let first = client(&proxy.url("demo"), KEY).await;
    let before = caps(&first);
    assert!(before.get("resources").is_some(), "{before}");
    first.cancel().await.unwrap();
    mcp_proxy::data::invalidation::apply(
        &proxy.proxy.state.caches,
        &mcp_proxy::domain::invalidation::Invalidation::All,
    )
    .await;
    let second = client(&proxy.url("demo"), KEY).await;
    assert_eq!(
        caps(&second),
        before,
        "the shared connection still offers the same"
    );
    second.cancel().await.unwrap();
    proxy.shutdown().await;
}

/// Contract: a secret changed through the store (as `mcp-proxy secrets set` does) reaches every
/// replica within a second, and each closes the pooled connection it made with the old value.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_secret_replaces_every_replicas_pooled_connection() {
    use mcp_proxy::domain::secrets::{Keyring, Secret, SecretKey};
    use serde_json::json;
    let Some(pg) = Pg::new().await else { return };
    let mock = MockProcess::serve(&["--require-header", "Authorization: Bearer before-1"]).await;
    let dir = tempfile::tempdir().unwrap();
    let key_text = SecretKey::generate();
    let key = dir.path().join("secret.key");
    std::fs::write(&key, &key_text).unwrap();
    let seed = format!(
        "[[upstream]]\nname = \"gh\"\ntransport = \"streamable-http\"\nurl = \"{}\"\n\
         headers = {{ Authorization = \"Bearer ${{TOKEN}}\" }}\n\n\
         [[instance]]\nid = \"demo\"\nupstreams = [\"gh\"]\napi_keys = [\"{KEY}\"]\n\
         secrets = {{ TOKEN = \"before-1\" }}\n",
        mock.url()
    );
    let with_key = |s: &mut Settings| s.secret_key.secret_key_file = Some(key.clone());
    let a = replica(&pg, &seed, with_key).await;
    let b = replica(&pg, &seed, with_key).await;
    let clients = [
        client(&a.url("demo"), KEY).await,
        client(&b.url("demo"), KEY).await,
    ];
    for c in &clients {
        let r = c
            .call_tool(call("echo", json!({ "text": "before" })))
            .await
            .unwrap();
        assert_eq!(text(&r), "before");
    }
    assert_eq!(
        mock.sessions_open().await,
        2,
        "a pooled connection per replica"
    );

    let store = pg.store().await.with_keyring(Some(Keyring::new(
        SecretKey::parse(&key_text).unwrap(),
        vec![],
    )));
    store
        .set_secret("demo", "TOKEN", &Secret::new("after-2"))
        .await
        .unwrap();
    let changed = Instant::now();
    for (name, c) in ["a", "b"].iter().zip(&clients) {
        let mut refused = None;
        while changed.elapsed() < PROPAGATION * 5 {
            match c.call_tool(call("echo", json!({ "text": "after" }))).await {
                Ok(_) => tokio::time::sleep(Duration::from_millis(20)).await,
                Err(e) => {
                    refused = Some(rpc_error(e));
                    break;
                }
            }
        }
        let refused = refused.unwrap_or_else(|| panic!("replica {name} kept the old secret"));
        assert!(
            refused.message.contains("refused the credential"),
            "{}",
            refused.message
        );
        eprintln!(
            "replica {name} used the new secret after {:?}",
            changed.elapsed()
        );
        assert!(
            changed.elapsed() < PROPAGATION,
            "replica {name}: {:?}",
            changed.elapsed()
        );
    }
    let open = mock.wait_sessions_open(0).await;
    assert_eq!(
        open, 0,
        "both connections made with the old secret were closed"
    );
    for c in clients {
        c.cancel().await.unwrap();
    }
    store.close().await;
    a.shutdown().await;
    b.shutdown().await;
    mock.stop().await;
    pg.cleanup().await;
}
