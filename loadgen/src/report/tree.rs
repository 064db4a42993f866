//! The target's process tree as data: a per-process [`TreeSnapshot`] (taken at the baseline
//! and at the end of the settle), the sockets it held, and the [`GrownProcess`] list the
//! report keeps (`report.json`'s `grown`): which processes are new, orphaned or grew, and what.
//!
//! The data only: `observe::tree` reads it, `verdict::tree` diffs it, `render` shows it.

use serde::{Deserialize, Serialize};

use super::sample::FdCounts;

/// One process of the tree at one instant.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessInfo {
    pub pid: u32,
    pub ppid: u32,
    /// Start time (clock ticks after boot): with the PID, the process's identity.
    pub start: u64,
    pub comm: String,
    /// The command line, truncated.
    pub cmdline: String,
    /// `R`, `S`, `Z`, …
    pub state: char,
    /// No longer below the root (its parent exited).
    pub orphan: bool,
    pub fds: FdCounts,
    pub tcp: u32,
    pub unix: u32,
    pub threads: u32,
    pub rss_bytes: u64,
}

impl ProcessInfo {
    /// `comm` and the command line, for reports: `python3 (python3 -c import socket…)`.
    pub fn command(&self) -> String {
        if self.cmdline.is_empty() {
            self.comm.clone()
        } else {
            format!("{} ({})", self.comm, self.cmdline)
        }
    }
}

/// One socket of the tree, with the process that holds it (the first one found).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SocketInfo {
    pub inode: u64,
    pub pid: u32,
    pub comm: String,
    /// `tcp 127.0.0.1:1 -> 127.0.0.1:2 Established`, `unix stream unnamed`, `unix dgram /run/x`.
    pub what: String,
}

impl std::fmt::Display for SocketInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} inode {} (PID {} {})",
            self.what, self.inode, self.pid, self.comm
        )
    }
}

/// The whole tree (root, descendants, orphans) at one instant.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TreeSnapshot {
    pub procs: Vec<ProcessInfo>,
    /// TCP and Unix sockets of the tree, each inode once.
    pub sockets: Vec<SocketInfo>,
}

/// A process that grew between the baseline and the end of the settle: new, orphaned, or
/// holding more fds / threads / RSS / Unix sockets than the tolerance allows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrownProcess {
    pub pid: u32,
    pub ppid: u32,
    pub command: String,
    /// What grew: `new process`, `orphan`, `fds +12 (socket +12)`, `threads +3`, `rss +40 MiB`.
    pub grew: Vec<String>,
}

impl GrownProcess {
    pub fn is_new(&self) -> bool {
        self.grew.iter().any(|g| g.starts_with("new process"))
    }

    pub fn is_orphan(&self) -> bool {
        self.grew.iter().any(|g| g == "orphan")
    }

    /// `PID 123 sleep (sleep 60): new process, orphan`.
    pub fn line(&self) -> String {
        format!(
            "PID {} {}: {}",
            self.pid,
            self.command,
            self.grew.join(", ")
        )
    }
}
