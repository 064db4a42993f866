//! Raw-HTTP downstream sessions (2025-11-25 era) and the outside-in resource counts of the
//! test process (fds by kind, TCP sockets by state, tokio alive tasks) that the session tests
//! compare with their baselines.
#![allow(dead_code)]

use std::time::Duration;

use mcp_loadgen::probe;
use serde_json::json;

use super::{KEY, initialize_body, rpc_json};

pub const V: &str = "2025-11-25";

pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap()
}

pub fn rb(http: &reqwest::Client, method: reqwest::Method, url: &str) -> reqwest::RequestBuilder {
    http.request(method, url)
        .header("Accept", "application/json, text/event-stream")
        .header("Content-Type", "application/json")
        .header("Authorization", format!("Bearer {KEY}"))
}

/// initialize + notifications/initialized over raw HTTP; returns the session id.
pub async fn open_session(http: &reqwest::Client, url: &str) -> String {
    let r = rb(http, reqwest::Method::POST, url)
        .json(&initialize_body(V))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let sid = r.headers()["mcp-session-id"].to_str().unwrap().to_string();
    rpc_json(r).await;
    let r = rb(http, reqwest::Method::POST, url)
        .header("Mcp-Session-Id", &sid)
        .header("MCP-Protocol-Version", V)
        .json(&json!({ "jsonrpc": "2.0", "method": "notifications/initialized" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    sid
}

#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub struct Counts {
    pub fds: probe::FdCounts,
    pub close_wait: u32,
    pub established: u32,
    pub tasks: usize,
}

pub fn counts() -> Counts {
    let me = std::process::id();
    let tcp = probe::tcp_states(me).unwrap();
    Counts {
        fds: probe::fds(me).unwrap(),
        close_wait: tcp.close_wait,
        established: tcp.established,
        tasks: tokio::runtime::Handle::current()
            .metrics()
            .num_alive_tasks(),
    }
}

impl Counts {
    /// No count above `baseline`: nothing grew (a leak check allows falling below, e.g. when
    /// an idle keep-alive connection of the warm-up closed in the meantime).
    pub fn within(&self, baseline: &Counts) -> bool {
        let (f, b) = (&self.fds, &baseline.fds);
        f.socket <= b.socket
            && f.pipe <= b.pipe
            && f.anon_inode <= b.anon_inode
            && f.file <= b.file
            && f.other <= b.other
            && self.close_wait <= baseline.close_wait
            && self.established <= baseline.established
            && self.tasks <= baseline.tasks
    }
}

/// Polls until no count is above `baseline` (10 s at most); returns the last counts.
pub async fn settle(baseline: Counts) -> Counts {
    let mut now = counts();
    for _ in 0..500 {
        if now.within(&baseline) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        now = counts();
    }
    now
}

/// Counts once they have stopped moving (two samples 250 ms apart agree; 10 s at most), so a
/// baseline is not taken while connections of the warm-up are still closing.
pub async fn stable_counts() -> Counts {
    let mut last = counts();
    for _ in 0..40 {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let now = counts();
        if now == last {
            return now;
        }
        last = now;
    }
    last
}
