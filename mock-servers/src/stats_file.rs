//! The stats file of a stdio mock (`--stats-dir DIR` or `MOCK_MCP_STATS_DIR`): `DIR/<pid>.json`
//! holds the mock's counters (what `GET /control` says of an HTTP mock), so a harness can
//! read the counts of stdio mocks it did not start itself (a proxy's children).
//!
//! Invariant: the file is only ever replaced whole (written to a temp file, then renamed), so
//! a reader never sees half of it; it is rewritten at most every [`DEBOUNCE`] when the counts
//! changed, and once more at exit with `exited: true`. One owner: [`StatsWriter`] holds the
//! task; `finish` stops it and writes the last state.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::faults::{Counters, FaultState};

/// The environment variable naming the stats folder (reaches a mock started by someone
/// else's proxy that passes its environment on).
pub const STATS_DIR_ENV: &str = "MOCK_MCP_STATS_DIR";

/// How often, at most, the file is rewritten.
pub const DEBOUNCE: Duration = Duration::from_millis(200);

/// What the file holds.
#[derive(Debug, Serialize)]
struct StatsFile<'a> {
    pid: u32,
    /// The mock has ended (its counts are final; nothing of it is in flight).
    exited: bool,
    #[serde(flatten)]
    counters: &'a Counters,
}

/// Counters of the mock: calls, tool calls in flight, and the fault state's own.
pub type Read = Box<dyn Fn() -> Counters + Send + Sync>;

/// Keeps `DIR/<pid>.json` up to date while the mock runs.
pub struct StatsWriter {
    stop: CancellationToken,
    task: JoinHandle<()>,
    path: PathBuf,
    read: Arc<Read>,
}

impl StatsWriter {
    /// Starts writing to `dir` (created if missing).
    pub fn start(dir: &Path, read: Read) -> std::io::Result<StatsWriter> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join(format!("{}.json", std::process::id()));
        let read = Arc::new(read);
        write(&path, &read(), false)?;
        let stop = CancellationToken::new();
        let task = tokio::spawn(refresh(path.clone(), read.clone(), stop.clone()));
        Ok(StatsWriter {
            stop,
            task,
            path,
            read,
        })
    }

    /// Stops the refresh and writes the final counts (`exited: true`).
    pub async fn finish(self) {
        self.stop.cancel();
        let _ = self.task.await;
        if let Err(e) = write(&self.path, &(self.read)(), true) {
            tracing::warn!(path = %self.path.display(), "cannot write the stats file: {e}");
        }
    }
}

/// Rewrites the file whenever the counts changed, at most every [`DEBOUNCE`].
async fn refresh(path: PathBuf, read: Arc<Read>, stop: CancellationToken) {
    let mut last = read();
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(DEBOUNCE) => {}
        }
        let now = read();
        if now != last {
            if let Err(e) = write(&path, &now, false) {
                tracing::warn!(path = %path.display(), "cannot write the stats file: {e}");
            }
            last = now;
        }
    }
}

/// Replaces the file whole: a temp file beside it, then a rename.
fn write(path: &Path, counters: &Counters, exited: bool) -> std::io::Result<()> {
    let body = serde_json::to_vec(&StatsFile {
        pid: std::process::id(),
        exited,
        counters,
    })
    .map_err(std::io::Error::other)?;
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, body)?;
    std::fs::rename(&tmp, path)
}

/// The stats folder: `--stats-dir`, else `MOCK_MCP_STATS_DIR` (empty means none).
pub fn stats_dir(flag: Option<PathBuf>) -> Option<PathBuf> {
    flag.or_else(|| std::env::var_os(STATS_DIR_ENV).map(PathBuf::from))
        .filter(|d| !d.as_os_str().is_empty())
}

/// Counters of a stdio mock over `state` (no sessions over stdio beyond the one connection).
pub fn stdio_reader(
    state: Arc<FaultState>,
    calls: impl Fn() -> (u64, u64) + Send + Sync + 'static,
) -> Read {
    Box::new(move || {
        let (n, in_flight) = calls();
        state.counters(n, in_flight, 0)
    })
}
