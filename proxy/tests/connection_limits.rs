//! Contract: nobody can hold the proxy's client connections without sending requests. Against
//! the real `mcp-proxy` binary, with a good client (an MCP session calling a tool, plus
//! `/health`) served throughout every flood:
//! - connections that send nothing are closed at the header-read timeout, and the proxy's
//!   sockets return to the baseline;
//! - connections that trickle a header byte at a time are cut at the header-read timeout
//!   counted from the head's start (also on a kept-alive connection), not per byte;
//! - a kept-alive connection with nothing to do is closed at the keep-alive timeout (not the
//!   shorter header timeout), while an open GET event stream and a long call are not idle;
//! - past `--max-connections` (plus the ops reserve) new connections are closed at once,
//!   `/health`, `/ready` and `/metrics` still answer on new connections, and once the flood
//!   ends new connections are served;
//! - the soft open-files limit is raised to the hard limit at start, the cap is derived from
//!   it, and a flood beyond the fd limit never makes `accept` fail.

mod common;

use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use common::*;
use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// The binary, serving the instance `demo` over an in-process mock, with its log lines.
struct Proxy {
    child: tokio::process::Child,
    pid: u32,
    port: u16,
    log: Arc<std::sync::Mutex<Vec<String>>>,
    _dir: tempfile::TempDir,
    _mock: mock_mcp::MockServer,
}

impl Proxy {
    /// `nofile`: the (soft, hard) open-files limit the binary is started with.
    async fn start(args: &[&str], nofile: Option<(u64, u64)>) -> Proxy {
        let mock = mock_mcp::MockServer::start(Default::default())
            .await
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let seed = dir.path().join("seed.toml");
        let text = http_seed(&[("echo", &mock.url(), "shared")], "demo", KEY, "auto");
        std::fs::write(&seed, text).unwrap();
        let port = free_port();
        let mut cmd = proxy_serve_command(dir.path(), &seed, port);
        cmd.args(args)
            .args(["--log-format", "json"])
            .env("RUST_LOG", "mcp_proxy=info")
            .stderr(Stdio::piped());
        if let Some((soft, hard)) = nofile {
            // SAFETY: setrlimit is async-signal-safe; nothing else runs between fork and exec.
            unsafe {
                cmd.pre_exec(move || {
                    use nix::sys::resource::{Resource, setrlimit};
                    setrlimit(Resource::RLIMIT_NOFILE, soft, hard).map_err(std::io::Error::from)
                });
            }
        }
        let mut child = cmd.spawn().unwrap();
        let pid = child.id().unwrap();
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let log = Arc::new(std::sync::Mutex::new(Vec::new()));
        let kept = log.clone();
        loop {
            let line = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
                .await
                .expect("the proxy logs `listening` within 20 s")
                .unwrap()
                .expect("the proxy exited before listening");
            let listening = line.contains("listening");
            log.lock().unwrap().push(line);
            if listening {
                break;
            }
        }
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                kept.lock().unwrap().push(line);
            }
        });
        Proxy {
            child,
            pid,
            port,
            log,
            _dir: dir,
            _mock: mock,
        }
    }

    fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Sockets the proxy process holds (`/proc/PID/fd`).
    fn sockets(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid))
            .unwrap()
            .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
            .filter(|l| l.to_string_lossy().starts_with("socket:"))
            .count()
    }

    /// `GET path` on a connection of its own.
    async fn get_fresh(&self, path: &str) -> reqwest::Result<reqwest::Response> {
        unpooled_http()
            .get(format!("{}{path}", self.base()))
            .send()
            .await
    }

    async fn metric(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let text = self
            .get_fresh("/metrics")
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        metric_value(&text, name, labels).unwrap_or(0.0)
    }

    async fn stop(mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.pid as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let exit = tokio::time::timeout(Duration::from_secs(15), self.child.wait())
            .await
            .expect("exits within 15 s")
            .unwrap();
        assert!(exit.success(), "exit status {exit:?}");
    }
}

/// An MCP session calling `echo` and a `/health` check, every 100 ms, until stopped; every
/// failure is kept.
struct GoodClient {
    stop: CancellationToken,
    task: tokio::task::JoinHandle<(usize, Vec<String>)>,
    /// Set: the client finishes its round and waits (`parked` says it is waiting).
    pause: Arc<AtomicBool>,
    parked: Arc<AtomicBool>,
}

impl GoodClient {
    async fn start(proxy: &Proxy) -> GoodClient {
        let client = client(&format!("{}/mcp/demo", proxy.base()), KEY).await;
        let health = format!("{}/health", proxy.base());
        let http = reqwest::Client::new();
        let stop = CancellationToken::new();
        let until = stop.clone();
        let done = Arc::new(AtomicUsize::new(0));
        let counted = done.clone();
        let (pause, parked) = (
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicBool::new(false)),
        );
        let (paused, parking) = (pause.clone(), parked.clone());
        let task = tokio::spawn(async move {
            let (mut rounds, mut failures) = (0, Vec::new());
            while !until.is_cancelled() {
                parking.store(paused.load(Ordering::SeqCst), Ordering::SeqCst);
                if paused.load(Ordering::SeqCst) {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
                counted.store(rounds, Ordering::SeqCst);
                let said = format!("round {rounds}");
                match client
                    .call_tool(call("echo", json!({ "text": said })))
                    .await
                {
                    Ok(r) if text(&r) == said => {}
                    other => failures.push(format!("round {rounds}: tools/call: {other:?}")),
                }
                match http.get(&health).send().await {
                    Ok(r) if r.status() == 200 => {}
                    other => failures.push(format!("round {rounds}: /health: {other:?}")),
                }
                rounds += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            drop(client);
            (rounds, failures)
        });
        // its connections are open before any flood
        let warm = eventually(Duration::from_secs(10), || done.load(Ordering::SeqCst) >= 2).await;
        assert!(warm, "the good client never completed two rounds");
        GoodClient {
            stop,
            task,
            pause,
            parked,
        }
    }

    /// Holds the client between rounds (its connections stay open, none opens or closes)
    /// until [`resume`](GoodClient::resume), so a test can count connections exactly.
    async fn pause(&self) {
        self.pause.store(true, Ordering::SeqCst);
        let parked = eventually(Duration::from_secs(10), || {
            self.parked.load(Ordering::SeqCst)
        })
        .await;
        assert!(parked, "the good client did not finish its round");
    }

    fn resume(&self) {
        self.pause.store(false, Ordering::SeqCst);
    }

    /// Stops it; panics if any round failed.
    async fn finish(self) {
        self.stop.cancel();
        let (rounds, failures) = self.task.await.unwrap();
        assert!(failures.is_empty(), "the good client failed: {failures:?}");
        assert!(rounds > 3, "the good client ran only {rounds} rounds");
    }
}

/// Opens `n` connections that send nothing; each task gives how long its connection stayed
/// open (`None`: still open after `wait`). `opened` counts connections made.
fn idle_flood(
    addr: &str,
    n: usize,
    wait: Duration,
    opened: &Arc<AtomicUsize>,
) -> JoinSet<Option<Duration>> {
    let mut flood = JoinSet::new();
    for _ in 0..n {
        let (addr, opened) = (addr.to_string(), opened.clone());
        flood.spawn(async move {
            let mut tcp = TcpStream::connect(&addr).await.ok()?;
            let t0 = Instant::now();
            opened.fetch_add(1, Ordering::SeqCst);
            let mut buf = [0u8; 64];
            match tokio::time::timeout(wait, tcp.read(&mut buf)).await {
                Ok(_) => Some(t0.elapsed()),
                Err(_) => None,
            }
        });
    }
    flood
}

async fn all(mut set: JoinSet<Option<Duration>>) -> Vec<Option<Duration>> {
    let mut out = Vec::new();
    while let Some(r) = set.join_next().await {
        out.push(r.unwrap());
    }
    out
}

/// Sends a complete `GET /health` and reads its answer, leaving the connection kept alive.
async fn health_over(tcp: &mut TcpStream) {
    tcp.write_all(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .await
        .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 512];
    while !String::from_utf8_lossy(&got).contains("\"ok\"}") {
        let n = tokio::time::timeout(Duration::from_secs(5), tcp.read(&mut buf))
            .await
            .expect("health answers")
            .unwrap();
        assert!(
            n > 0,
            "closed before the answer: {}",
            String::from_utf8_lossy(&got)
        );
        got.extend_from_slice(&buf[..n]);
    }
}

/// Trickles one header byte every 300 ms; gives how long since `t0` the proxy took to close
/// the connection and how many bytes it let in (`None`: open after `wait`).
async fn trickle(tcp: &mut TcpStream, wait: Duration) -> Option<(Duration, usize)> {
    let t0 = Instant::now();
    tcp.write_all(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        .await
        .ok()?;
    let mut sent = 0;
    let mut buf = [0u8; 256];
    while t0.elapsed() < wait {
        tokio::select! {
            r = tcp.read(&mut buf) => match r {
                Ok(0) | Err(_) => return Some((t0.elapsed(), sent)),
                Ok(_) => continue, // a 408 answer, if any, before the close
            },
            _ = tokio::time::sleep(Duration::from_millis(300)) => {
                if tcp.write_all(b"x").await.is_err() {
                    return Some((t0.elapsed(), sent));
                }
                sent += 1;
            }
        }
    }
    None
}

#[tokio::test]
async fn an_idle_flood_is_closed_at_the_header_timeout() {
    let proxy = Proxy::start(&["--header-read-timeout", "3s"], None).await;
    let good = GoodClient::start(&proxy).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let baseline = proxy.sockets();
    let opened = Arc::new(AtomicUsize::new(0));
    let flood = idle_flood(&proxy.addr(), 300, Duration::from_secs(10), &opened);
    assert!(
        eventually(Duration::from_secs(5), || proxy.sockets() >= baseline + 300).await,
        "the flood was not accepted: {} sockets over a baseline of {baseline}",
        proxy.sockets()
    );
    let lived = all(flood).await;
    assert_eq!(opened.load(Ordering::SeqCst), 300);
    for life in &lived {
        let life = life.expect("an idle connection outlived the header timeout by 7 s");
        assert!(
            life >= Duration::from_secs(2),
            "closed before its timeout: {life:?}"
        );
    }
    assert!(
        eventually(Duration::from_secs(2), || proxy.sockets() <= baseline + 2).await,
        "sockets stayed at {} (baseline {baseline})",
        proxy.sockets()
    );
    let timeouts = proxy
        .metric(
            "mcp_proxy_http_connection_timeouts_total",
            &[("kind", "header")],
        )
        .await;
    assert!(timeouts >= 300.0, "header timeouts counted: {timeouts}");
    good.finish().await;
    proxy.stop().await;
}

#[tokio::test]
async fn slowloris_is_cut_at_the_header_timeout_not_per_byte() {
    let proxy = Proxy::start(&["--header-read-timeout", "2s"], None).await;
    let good = GoodClient::start(&proxy).await;
    let addr = proxy.addr();
    let mut slow = JoinSet::new();
    for _ in 0..20 {
        let addr = addr.clone();
        slow.spawn(async move {
            let mut tcp = TcpStream::connect(&addr).await.unwrap();
            trickle(&mut tcp, Duration::from_secs(8)).await
        });
    }
    // the same after a complete request on a kept-alive connection (keep-alive 60 s)
    let mut kept = TcpStream::connect(&addr).await.unwrap();
    health_over(&mut kept).await;
    let after_request = trickle(&mut kept, Duration::from_secs(8)).await;
    while let Some(r) = slow.join_next().await {
        let (took, sent) = r.unwrap().expect("a slowloris connection lived 8 s");
        assert!(
            took >= Duration::from_millis(1500),
            "cut too early: {took:?}"
        );
        assert!(sent >= 4, "only {sent} bytes trickled before the cut");
    }
    let (took, sent) = after_request.expect("a kept-alive slowloris lived 8 s");
    assert!(
        took >= Duration::from_millis(1500) && sent >= 4,
        "{took:?}, {sent} bytes"
    );
    good.finish().await;
    proxy.stop().await;
}

#[tokio::test]
async fn a_kept_alive_connection_is_closed_when_idle_but_not_while_streaming() {
    let proxy = Proxy::start(
        &[
            "--header-read-timeout",
            "1s",
            "--keep-alive-timeout",
            "3s",
            "--sse-keepalive",
            "0s",
        ],
        None,
    )
    .await;
    let good = GoodClient::start(&proxy).await;
    // a GET event stream of a session, on its own connection
    let http = unpooled_http();
    let url = format!("{}/mcp/demo", proxy.base());
    let init = post(&url, Some(KEY))
        .json(&initialize_body("2025-11-25"))
        .send()
        .await
        .unwrap();
    let session = init.headers()["mcp-session-id"]
        .to_str()
        .unwrap()
        .to_string();
    let initialized = json!({ "jsonrpc": "2.0", "method": "notifications/initialized" });
    let r = post(&url, Some(KEY))
        .header("Mcp-Session-Id", &session)
        .header("MCP-Protocol-Version", "2025-11-25")
        .json(&initialized)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let mut stream = http
        .get(&url)
        .header("Accept", "text/event-stream")
        .header("Authorization", format!("Bearer {KEY}"))
        .header("Mcp-Session-Id", &session)
        .header("MCP-Protocol-Version", "2025-11-25")
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    // a call in flight longer than both timeouts, on a connection of its own
    let long = client(&url, KEY).await;
    let call = tokio::spawn(async move {
        let r = long.call_tool(call("sleep", json!({ "ms": 4500 }))).await;
        drop(long);
        r
    });
    // a connection kept alive after one request
    let mut idle = TcpStream::connect(proxy.addr()).await.unwrap();
    health_over(&mut idle).await;
    let t0 = Instant::now();
    let mut buf = [0u8; 64];
    let early = tokio::time::timeout(Duration::from_millis(2000), idle.read(&mut buf)).await;
    assert!(
        early.is_err(),
        "closed at {:?}, before the keep-alive timeout",
        t0.elapsed()
    );
    let closed = tokio::time::timeout(Duration::from_secs(5), idle.read(&mut buf)).await;
    assert!(
        matches!(closed, Ok(Ok(0)) | Ok(Err(_))),
        "idle connection not closed: {closed:?}"
    );
    // the stream stays open past the keep-alive timeout
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        match tokio::time::timeout_at(deadline, stream.chunk()).await {
            Err(_) => break,
            Ok(Ok(Some(_))) => continue,
            Ok(end) => panic!("the event stream ended: {end:?}"),
        }
    }
    let r = call.await.unwrap().expect("the long call completes");
    assert!(!r.is_error.unwrap_or(false), "{r:?}");
    let idle_timeouts = proxy
        .metric(
            "mcp_proxy_http_connection_timeouts_total",
            &[("kind", "idle")],
        )
        .await;
    assert!(
        idle_timeouts >= 1.0,
        "idle timeouts counted: {idle_timeouts}"
    );
    drop(stream);
    good.finish().await;
    proxy.stop().await;
}

/// Flood sockets the proxy closed within `within` of the flood (read 0 or reset).
fn closed_within(lived: &[Option<Duration>], within: Duration) -> usize {
    lived
        .iter()
        .filter(|l| l.is_some_and(|d| d <= within))
        .count()
}

#[tokio::test]
async fn past_the_cap_new_connections_are_closed_and_the_probes_still_answer() {
    const CAP: usize = 8;
    let proxy = Proxy::start(&["--max-connections", "8"], None).await;
    let good = GoodClient::start(&proxy).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    // less the connection that asks
    let held = proxy
        .metric("mcp_proxy_http_connections", &[("kind", "full")])
        .await as usize
        - 1;
    assert!(
        (1..CAP).contains(&held),
        "the good client holds {held} connections"
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    let opened = Arc::new(AtomicUsize::new(0));
    let mut flood = idle_flood(&proxy.addr(), 60, Duration::from_millis(800), &opened);
    let mut lived = Vec::new();
    while let Some(r) = flood.join_next().await {
        lived.push(r.unwrap());
    }
    // 800 ms: under the reserve's 1 s head timeout, so only cap refusals are closed by now
    let refused = closed_within(&lived, Duration::from_millis(800));
    let expected = 60 - (CAP - held) - 16;
    assert_eq!(
        refused, expected,
        "closed at once (cap {CAP}, {held} held, reserve 16)"
    );
    // The good client's own connections can come and go between its rounds (a response body
    // dropped before its end closes its connection, and the next round opens another): hold
    // it while the cap is checked, so the flood below takes every full slot and keeps it.
    good.pause().await;
    // the flood holds every full slot; the probes answer on new connections
    let mut flood = idle_flood(&proxy.addr(), 40, Duration::from_secs(8), &opened);
    let mut answered = false;
    for _ in 0..50 {
        if let Ok(r) = proxy.get_fresh("/health").await
            && r.status() == 200
        {
            answered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(answered, "/health never answered past the cap");
    for path in ["/ready", "/metrics"] {
        let r = proxy.get_fresh(path).await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
    }
    let r = unpooled_http()
        .post(format!("{}/mcp/demo", proxy.base()))
        .header("Authorization", format!("Bearer {KEY}"))
        .json(&initialize_body("2025-11-25"))
        .send()
        .await
        .unwrap();
    good.resume();
    assert_eq!(r.status(), 503);
    assert_eq!(r.headers()["retry-after"], "1");
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"], "too_many_connections");
    let full = proxy
        .metric("mcp_proxy_http_connections", &[("kind", "full")])
        .await;
    assert_eq!(full, CAP as f64);
    let cap_refusals = proxy
        .metric(
            "mcp_proxy_http_connections_refused_total",
            &[("reason", "cap")],
        )
        .await;
    assert!(
        cap_refusals >= expected as f64,
        "refusals counted: {cap_refusals}"
    );
    // the flood ends: new connections are served in full again
    flood.abort_all();
    drop(flood);
    assert!(
        eventually(Duration::from_secs(15), || proxy.sockets() < 30).await,
        "the flood's sockets were not released"
    );
    let fresh = client(&format!("{}/mcp/demo", proxy.base()), KEY).await;
    let r = fresh
        .call_tool(call("echo", json!({ "text": "after" })))
        .await
        .unwrap();
    assert_eq!(text(&r), "after");
    drop(fresh);
    good.finish().await;
    proxy.stop().await;
}

#[tokio::test]
async fn the_fd_limit_is_raised_and_a_flood_past_it_never_fails_accept() {
    // this test's own flood needs more fds than the proxy may have
    mcp_proxy::ops::fd_limit::raise_nofile().unwrap();
    let proxy = Proxy::start(&[], Some((256, 512))).await;
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", proxy.pid)).unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    let nums: Vec<&str> = line.split_whitespace().skip(3).take(2).collect();
    assert_eq!(nums, ["512", "512"], "{line}");
    // the cap the log names: 512 less 128 + DB pool 10 + 4 × 50 upstream connections + 16
    let expected_cap = 512 - (128 + 10 + 4 * 50 + 16);
    let logged = proxy.log.lock().unwrap().join("\n");
    assert!(logged.contains("\"soft_before\":256"), "{logged}");
    assert!(
        logged.contains(&format!("\"max_connections\":{expected_cap}")),
        "{logged}"
    );
    let good = GoodClient::start(&proxy).await;
    let opened = Arc::new(AtomicUsize::new(0));
    let flood = idle_flood(&proxy.addr(), 600, Duration::from_secs(3), &opened);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut answered = false;
    for _ in 0..50 {
        if let Ok(r) = proxy.get_fresh("/health").await
            && r.status() == 200
        {
            answered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        answered,
        "/health never answered during a flood past the fd limit"
    );
    let full = proxy
        .metric("mcp_proxy_http_connections", &[("kind", "full")])
        .await;
    assert_eq!(full, expected_cap as f64, "the derived cap is full");
    let accept_errors = proxy
        .metric(
            "mcp_proxy_http_connections_refused_total",
            &[("reason", "accept_error")],
        )
        .await;
    assert_eq!(accept_errors, 0.0, "accept failed (EMFILE?)");
    drop(all(flood).await);
    assert!(proxy.sockets() < 512);
    good.finish().await;
    let log = proxy.log.lock().unwrap().join("\n");
    assert!(!log.contains("accept failed"), "{log}");
    proxy.stop().await;
}
