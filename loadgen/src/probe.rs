//! Outside-in resource probe over `/proc` (Linux only).
//!
//! Invariant: the probe only reads; it never signals, ptraces or otherwise disturbs the target.

use std::fs;
use std::io;
use std::path::Path;

/// File descriptors of a process grouped by what they point at.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FdCounts {
    pub socket: u32,
    pub pipe: u32,
    pub anon_inode: u32,
    pub file: u32,
    pub other: u32,
}

impl FdCounts {
    pub fn total(&self) -> u32 {
        self.socket + self.pipe + self.anon_inode + self.file + self.other
    }
}

/// Child processes of a process: all direct children, and how many of them are zombies
/// (exited but not yet reaped by the parent).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ChildCounts {
    pub children: u32,
    pub zombies: u32,
}

/// Counts the open file descriptors of `pid` by kind, from `/proc/PID/fd`.
pub fn fds(pid: u32) -> io::Result<FdCounts> {
    let mut counts = FdCounts::default();
    for entry in fs::read_dir(format!("/proc/{pid}/fd"))? {
        let entry = entry?;
        // An fd can close between read_dir and readlink: skip it, it is no longer open.
        let Ok(target) = fs::read_link(entry.path()) else {
            continue;
        };
        let target = target.to_string_lossy();
        if target.starts_with("socket:") {
            counts.socket += 1;
        } else if target.starts_with("pipe:") {
            counts.pipe += 1;
        } else if target.starts_with("anon_inode:") {
            counts.anon_inode += 1;
        } else if target.starts_with('/') {
            counts.file += 1;
        } else {
            counts.other += 1;
        }
    }
    Ok(counts)
}

/// Lists the direct children of `pid` (every thread's `children` file, since a child
/// belongs to the thread that forked it).
pub fn child_pids(pid: u32) -> io::Result<Vec<u32>> {
    let mut pids = Vec::new();
    for task in fs::read_dir(format!("/proc/{pid}/task"))? {
        let task = task?;
        let Ok(text) = fs::read_to_string(task.path().join("children")) else {
            continue;
        };
        pids.extend(
            text.split_whitespace()
                .filter_map(|p| p.parse::<u32>().ok()),
        );
    }
    pids.sort_unstable();
    pids.dedup();
    Ok(pids)
}

/// Counts the children of `pid` and the zombies among them.
pub fn children(pid: u32) -> io::Result<ChildCounts> {
    let mut counts = ChildCounts::default();
    for child in child_pids(pid)? {
        counts.children += 1;
        if process_state(child) == Some('Z') {
            counts.zombies += 1;
        }
    }
    Ok(counts)
}

/// The one-letter state of a process (`R`, `S`, `Z`, …) from `/proc/PID/stat`, or `None` if
/// it is gone.
pub fn process_state(pid: u32) -> Option<char> {
    let stat = fs::read_to_string(Path::new("/proc").join(pid.to_string()).join("stat")).ok()?;
    // The command name is in parentheses and may itself contain spaces or parentheses.
    let after = &stat[stat.rfind(')')? + 1..];
    after.trim_start().chars().next()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::{Command, Stdio};

    #[test]
    fn counts_own_fds_by_kind() {
        let me = std::process::id();
        let before = fds(me).unwrap();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let after = fds(me).unwrap();
        assert!(after.socket > before.socket, "{before:?} -> {after:?}");
        drop(listener);
    }

    #[test]
    fn sees_a_child_and_its_zombie_until_reaped() {
        let me = std::process::id();
        let mut child = Command::new("true").stdout(Stdio::null()).spawn().unwrap();
        let pid = child.id();
        // `true` exits at once; until we wait on it, it is a zombie child of this process.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while process_state(pid) != Some('Z') {
            assert!(
                std::time::Instant::now() < deadline,
                "child never became a zombie"
            );
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert!(child_pids(me).unwrap().contains(&pid));
        assert!(children(me).unwrap().zombies >= 1);
        child.wait().unwrap();
        assert!(!child_pids(me).unwrap().contains(&pid));
        assert_eq!(process_state(pid), None);
    }
}
