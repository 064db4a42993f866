//! Contract (issue 20, "memory that recovers"), on the `mcp-proxy` binary over loopback: the
//! memory bound watches the allocator's live bytes, so a burst of sessions and large echoes
//! drives the proxy into shedding (`/ready` 503 `memory_pressure`, a new `initialize` refused
//! with `Retry-After`, open sessions still served), and once every session is deleted the
//! shedding clears within seconds and a new session is accepted, without a restart. And a
//! session is small enough that the default session cap fits the default bound with room.
//!
//! The figures are printed: `cargo test --release -p mcp-proxy --test memory_bound --
//! --nocapture` measures the release binary.

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::sessions::{V, rb};
use common::*;
use futures::StreamExt;
use reqwest::Method;
use serde_json::json;

const MIB: f64 = 1024.0 * 1024.0;

/// The proxy binary in front of an in-process mock `echo`, with `args`; killed on drop.
struct ProxyProcess {
    child: tokio::process::Child,
    _dir: tempfile::TempDir,
    _mock: mock_mcp::MockServer,
    base: String,
}

impl ProxyProcess {
    async fn start(args: &[&str]) -> ProxyProcess {
        let mock = mock_mcp::MockServer::start(Default::default())
            .await
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let seed = dir.path().join("seed.toml");
        let upstreams = [("echo", mock.url(), "shared")];
        let upstreams: Vec<(&str, &str, &str)> = upstreams
            .iter()
            .map(|(n, u, c)| (*n, u.as_str(), *c))
            .collect();
        std::fs::write(&seed, http_seed(&upstreams, "demo", KEY, "auto")).unwrap();
        let port = free_port();
        let child = proxy_serve_command(dir.path(), &seed, port)
            .args(args)
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let base = format!("http://127.0.0.1:{port}");
        let up = eventually(Duration::from_secs(30), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        })
        .await;
        assert!(up, "the proxy never listened");
        ProxyProcess {
            child,
            _dir: dir,
            _mock: mock,
            base,
        }
    }

    /// How many of the process's threads are jemalloc's background purging thread.
    fn purging_threads(&self) -> usize {
        let pid = self.child.id().expect("running");
        std::fs::read_dir(format!("/proc/{pid}/task"))
            .unwrap()
            .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
            .filter(|name| name.trim() == "jemalloc_bg_thd")
            .count()
    }

    fn url(&self) -> String {
        format!("{}/mcp/demo", self.base)
    }

    async fn metric(&self, name: &str) -> f64 {
        let text = reqwest::get(format!("{}/metrics", self.base))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        metric_value(&text, name, &[]).unwrap_or_else(|| panic!("{name} missing:\n{text}"))
    }

    async fn allocated(&self) -> f64 {
        self.metric("mcp_proxy_memory_allocated_bytes").await
    }

    async fn ready(&self) -> (u16, serde_json::Value) {
        let r = reqwest::get(format!("{}/ready", self.base)).await.unwrap();
        (r.status().as_u16(), r.json().await.unwrap())
    }
}

/// initialize + notifications/initialized; the session id, or the refusal.
async fn try_open(http: &reqwest::Client, url: &str) -> Result<String, reqwest::Response> {
    let r = rb(http, Method::POST, url)
        .json(&initialize_body(V))
        .send()
        .await
        .unwrap();
    if r.status() != 200 {
        return Err(r);
    }
    let sid = r.headers()["mcp-session-id"].to_str().unwrap().to_string();
    rpc_json(r).await;
    let r = rb(http, Method::POST, url)
        .header("Mcp-Session-Id", &sid)
        .header("MCP-Protocol-Version", V)
        .json(&json!({ "jsonrpc": "2.0", "method": "notifications/initialized" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    Ok(sid)
}

/// `echo` of `text` in session `sid`; the text that came back.
async fn echo(http: &reqwest::Client, url: &str, sid: &str, text: &str) -> String {
    let r = rb(http, Method::POST, url)
        .header("Mcp-Session-Id", sid)
        .header("MCP-Protocol-Version", V)
        .json(&json!({ "jsonrpc": "2.0", "id": 2, "method": "tools/call",
            "params": { "name": "echo", "arguments": { "text": text } } }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body = rpc_json(r).await;
    body["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_else(|| panic!("no echo: {body}"))
        .to_string()
}

async fn delete_all(http: &reqwest::Client, url: &str, sids: Vec<String>) {
    futures::stream::iter(sids)
        .for_each_concurrent(16, |sid| async move {
            let r = rb(http, Method::DELETE, url)
                .header("Mcp-Session-Id", &sid)
                .header("MCP-Protocol-Version", V)
                .send()
                .await
                .unwrap();
            assert!(r.status().is_success(), "DELETE {sid}: {}", r.status());
        })
        .await;
}

/// Opens `n` sessions, 16 at a time; every one must be accepted.
async fn open_many(http: &reqwest::Client, url: &str, n: usize) -> Vec<String> {
    futures::stream::iter(0..n)
        .map(|_| async move { try_open(http, url).await.map_err(|r| r.status()).unwrap() })
        .buffer_unordered(16)
        .collect()
        .await
}

#[tokio::test]
async fn shedding_after_a_burst_clears_once_every_session_is_deleted() {
    const LIMIT_MIB: f64 = 64.0;
    let proxy =
        ProxyProcess::start(&["--memory-limit-mib", "64", "--max-sessions", "100000"]).await;
    let (url, http) = (proxy.url(), reqwest::Client::new());
    let base = proxy.allocated().await;
    assert!(
        base < 0.6 * LIMIT_MIB * MIB,
        "the idle proxy already holds {:.1} MiB of a {LIMIT_MIB} MiB bound",
        base / MIB
    );
    assert_eq!(proxy.ready().await.0, 200);
    // the allocator's one purging thread is there from the start (before any baseline)
    assert_eq!(proxy.purging_threads(), 1);

    // the burst: sessions, and in some of them a large echo (its answer stays cached in the
    // session for resumption until the session ends), until the proxy sheds
    let big = "x".repeat(1 << 20);
    let mut sids = Vec::new();
    while proxy.ready().await.0 == 200 {
        assert!(sids.len() < 20_000, "20000 sessions and no shedding");
        let batch = open_many(&http, &url, 50).await;
        assert_eq!(echo(&http, &url, &batch[0], &big).await.len(), big.len());
        sids.extend(batch);
    }
    let peak = proxy.allocated().await;
    eprintln!(
        "shedding after {} sessions: allocated {:.1} MiB (idle {:.1} MiB), resident {:.1} MiB",
        sids.len(),
        peak / MIB,
        base / MIB,
        proxy.metric("mcp_proxy_memory_resident_bytes").await / MIB,
    );
    assert!(peak >= 0.8 * LIMIT_MIB * MIB, "{peak}");
    // and the load added none
    assert_eq!(proxy.purging_threads(), 1);

    // while shedding: not ready, no new session, the open ones still served
    let (status, body) = proxy.ready().await;
    assert_eq!((status, &body["error"]), (503, &json!("memory_pressure")));
    let refused = try_open(&http, &url)
        .await
        .expect_err("a new session while shedding");
    assert_eq!(refused.status(), 503);
    assert_eq!(refused.headers()["retry-after"], "5");
    let body: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(body["error"], "memory_pressure", "{body}");
    assert_eq!(
        echo(&http, &url, &sids[1], "still served").await,
        "still served"
    );
    assert_eq!(proxy.metric("mcp_proxy_memory_pressure").await, 1.0);

    // the load goes away: every session deleted
    delete_all(&http, &url, sids).await;
    let mut cleared = false;
    for _ in 0..50 {
        if proxy.ready().await.0 == 200 {
            cleared = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let after = proxy.allocated().await;
    eprintln!(
        "after DELETE of every session: allocated {:.1} MiB, resident {:.1} MiB, rss {:.1} MiB",
        after / MIB,
        proxy.metric("mcp_proxy_memory_resident_bytes").await / MIB,
        proxy.metric("mcp_proxy_rss_bytes").await / MIB,
    );
    assert!(
        cleared,
        "still shedding 5 s after every session was deleted: {after}"
    );
    assert!(after < 0.8 * LIMIT_MIB * MIB, "{after}");
    assert_eq!(proxy.metric("mcp_proxy_memory_pressure").await, 0.0);
    let sid = try_open(&http, &url)
        .await
        .map_err(|r| r.status())
        .expect("a new session once the load is gone");
    assert_eq!(echo(&http, &url, &sid, "back").await, "back");
}

#[tokio::test]
async fn the_default_session_cap_fits_the_default_bound() {
    const N: usize = 2_000;
    let defaults = mcp_proxy::Settings::default();
    let proxy = ProxyProcess::start(&[]).await;
    let (url, http) = (proxy.url(), reqwest::Client::new());
    // one session first, so that what every session shares (the upstream connection, the
    // instance's service, the caches) is there before the measurement
    let first = open_many(&http, &url, 1).await;
    let before = proxy.allocated().await;
    let sids = open_many(&http, &url, N).await;
    let during = proxy.allocated().await;
    let per_session = (during - before) / N as f64;
    let limit = defaults.memory_limit_mib as f64 * MIB;
    let at_cap = before + per_session * defaults.max_sessions as f64;
    eprintln!(
        "{N} sessions: {:.1} → {:.1} MiB allocated, {:.1} KiB a session; \
         {} sessions (the default cap) ≈ {:.0} MiB of the {} MiB bound",
        before / MIB,
        during / MIB,
        per_session / 1024.0,
        defaults.max_sessions,
        at_cap / MIB,
        defaults.memory_limit_mib,
    );
    assert!(per_session > 0.0, "{before} → {during}");
    // room to spare: the cap full is under the 80 % where shedding clears, so a full proxy
    // of idle sessions never sheds
    assert!(
        at_cap < 0.8 * limit,
        "{} sessions at {:.1} KiB each would hold {:.0} MiB of {} MiB",
        defaults.max_sessions,
        per_session / 1024.0,
        at_cap / MIB,
        defaults.memory_limit_mib
    );
    delete_all(&http, &url, sids).await;
    delete_all(&http, &url, first).await;
}
