//! Upstream work seen by the mocks: every HTTP mock's `GET /control` and every stdio mock's
//! stats file (`mock-mcp stdio --stats-dir DIR` / `MOCK_MCP_STATS_DIR`: `DIR/<pid>.json`),
//! summed into [`UpstreamCounts`].
//!
//! Invariant: only reads (a GET, files); a stdio mock whose process is gone has nothing in
//! flight, whatever its last file says.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use crate::report::UpstreamCounts;

/// The counts a mock reports (`GET /control`, or its stats file).
#[derive(Debug, Default, Deserialize)]
struct MockCounts {
    #[serde(default)]
    calls: u64,
    #[serde(default)]
    in_flight: u64,
    #[serde(default)]
    hung: u64,
    #[serde(default)]
    cancels_received: u64,
    #[serde(default)]
    cancelled: u64,
    #[serde(default)]
    stopped: u64,
    #[serde(default)]
    finished_after_cancel: u64,
    /// Stats files only.
    #[serde(default)]
    pid: Option<u32>,
    #[serde(default)]
    exited: bool,
}

impl MockCounts {
    fn into_counts(self, running: bool) -> UpstreamCounts {
        UpstreamCounts {
            mocks: 1,
            calls: self.calls,
            in_flight: if running {
                self.in_flight + self.hung
            } else {
                0
            },
            cancels_received: self.cancels_received,
            cancelled: self.cancelled,
            stopped: self.stopped,
            finished_after_cancel: self.finished_after_cancel,
            unread: Vec::new(),
        }
    }
}

/// Reads the HTTP mocks at `controls` (name → `/control` URL) and the stats files in
/// `stats_dir`; None when there is nothing to read.
pub async fn read(
    controls: &BTreeMap<String, String>,
    stats_dir: Option<&Path>,
) -> Option<UpstreamCounts> {
    let files = stats_dir.map(stats_files).unwrap_or_default();
    if controls.is_empty() && files.is_empty() {
        return None;
    }
    let mut total = UpstreamCounts::default();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .ok()?;
    for (name, url) in controls {
        let got = async {
            let r = http.get(url).send().await?.error_for_status()?;
            anyhow::Ok(r.json::<MockCounts>().await?)
        };
        match got.await {
            Ok(c) => total.add(&c.into_counts(true)),
            Err(e) => total.unread.push(format!("{name}: {e}")),
        }
    }
    for (file, parsed) in files {
        match parsed {
            Ok(c) => {
                let running = !c.exited && c.pid.is_some_and(alive);
                total.add(&c.into_counts(running));
            }
            Err(e) => total.unread.push(format!("{file}: {e}")),
        }
    }
    Some(total)
}

/// Every `*.json` in `dir`, parsed.
fn stats_files(dir: &Path) -> Vec<(String, anyhow::Result<MockCounts>)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .map(|p| {
            let parsed = std::fs::read(&p)
                .map_err(anyhow::Error::from)
                .and_then(|b| Ok(serde_json::from_slice(&b)?));
            (p.display().to_string(), parsed)
        })
        .collect()
}

/// Is `pid` a live process (not gone, not a zombie)?
fn alive(pid: u32) -> bool {
    procfs::process::Process::new(pid as i32)
        .and_then(|p| p.stat())
        .is_ok_and(|s| s.state != 'Z' && s.state != 'X')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_stats_file_of_a_gone_process_has_nothing_in_flight() {
        let dir = tempfile::tempdir().unwrap();
        let me = std::process::id();
        let body = |pid: u32, exited: bool| {
            format!(
                r#"{{"pid":{pid},"exited":{exited},"calls":3,"in_flight":2,"hung":0,"cancels_received":1,"cancelled":1,"stopped":1,"finished_after_cancel":0}}"#
            )
        };
        std::fs::write(dir.path().join("a.json"), body(me, false)).unwrap();
        // a PID above the kernel's limit is never alive
        std::fs::write(dir.path().join("b.json"), body(u32::MAX / 2, false)).unwrap();
        std::fs::write(dir.path().join("c.json"), body(me, true)).unwrap();
        std::fs::write(dir.path().join("d.json"), "{ half").unwrap();
        let c = read(&BTreeMap::new(), Some(dir.path())).await.unwrap();
        assert_eq!((c.mocks, c.calls, c.in_flight, c.cancelled), (3, 9, 2, 3));
        assert_eq!(c.unread.len(), 1, "{:?}", c.unread);
        assert!(read(&BTreeMap::new(), None).await.is_none());
    }
}
