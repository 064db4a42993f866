//! Which processes are whose children, read from `/proc`: direct children (the live list's
//! strays), and the whole tree below a root for the probe ([`TreeWalker`]: descendants,
//! detached or not, and the orphans it saw below the root once and that outlived their
//! parent).
//!
//! Invariant: a process is known by its identity ([`ProcId`]: PID and start time), never by
//! its PID alone, so a reused PID is never taken for the process that held it before.

use std::collections::BTreeSet;
use std::io;

use procfs::process::Process;

pub(crate) fn io_err(e: procfs::ProcError) -> io::Error {
    match e {
        procfs::ProcError::NotFound(p) => io::Error::new(
            io::ErrorKind::NotFound,
            format!(
                "{} not found",
                p.map(|p| p.display().to_string()).unwrap_or_default()
            ),
        ),
        other => io::Error::other(other),
    }
}

pub(crate) fn process(pid: u32) -> io::Result<Process> {
    Process::new(pid as i32).map_err(io_err)
}

/// Lists the direct children of `pid` (every thread's `children` file, since a child
/// belongs to the thread that forked it).
pub fn child_pids(pid: u32) -> io::Result<Vec<u32>> {
    let mut pids = Vec::new();
    for task in process(pid)?.tasks().map_err(io_err)? {
        let Ok(task) = task else { continue };
        if let Ok(children) = task.children() {
            pids.extend(children);
        }
    }
    pids.sort_unstable();
    pids.dedup();
    Ok(pids)
}

/// The one-letter state of a process (`R`, `S`, `Z`, …), or `None` if it is gone.
pub fn process_state(pid: u32) -> Option<char> {
    process(pid).ok()?.stat().ok().map(|s| s.state)
}

/// A process by identity: its PID and its start time (clock ticks after boot, from
/// `/proc/PID/stat`), which a later process reusing the PID does not share.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ProcId {
    pub pid: u32,
    pub start: u64,
}

impl ProcId {
    /// The identity of `pid` now, or `None` if it is gone.
    pub fn of(pid: u32) -> Option<ProcId> {
        let stat = process(pid).ok()?.stat().ok()?;
        Some(ProcId {
            pid,
            start: stat.starttime,
        })
    }

    /// Is this very process still there (not gone, PID not reused; a zombie is there)?
    pub fn alive(&self) -> bool {
        ProcId::of(self.pid) == Some(*self)
    }
}

/// Every process below `root` (children, grandchildren, …, detached ones too: a new session
/// or process group does not change the parent), by identity, root excluded.
pub fn descendants(root: u32) -> Vec<ProcId> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    let mut stack = child_pids(root).unwrap_or_default();
    while let Some(pid) = stack.pop() {
        if pid == root || !seen.insert(pid) {
            continue;
        }
        let Some(id) = ProcId::of(pid) else { continue };
        out.push(id);
        stack.extend(child_pids(pid).unwrap_or_default());
    }
    out.sort_unstable();
    out
}

/// The process group of `pid`, if it is there.
fn pgrp(pid: u32) -> Option<u32> {
    Some(process(pid).ok()?.stat().ok()?.pgrp as u32)
}

/// Processes of the process group `pgid` (a full `/proc` scan).
fn group_members(pgid: u32) -> Vec<u32> {
    let Ok(all) = procfs::process::all_processes() else {
        return Vec::new();
    };
    all.filter_map(Result::ok)
        .filter_map(|p| p.stat().ok())
        .filter(|s| s.pgrp as u32 == pgid)
        .map(|s| s.pid as u32)
        .collect()
}

/// One walk of a tree: the processes below the root and the orphans still alive.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TreeWalk {
    pub root: Option<ProcId>,
    pub below: Vec<ProcId>,
    /// Processes of the tree no longer below the root (their parent exited and they were
    /// re-parented to a subreaper or PID 1), and their own descendants.
    pub orphans: Vec<ProcId>,
}

/// Follows the tree below one root over successive walks. It remembers every process it
/// ever saw below the root; those still alive but no longer below it are orphans. When the
/// root leads its own process group, members of that group outside the tree are orphans too
/// (a double fork orphans its grandchild faster than any walk sees it).
#[derive(Debug, Clone, Default)]
pub struct TreeWalker {
    root: u32,
    /// Every process seen in the tree and still alive at the last walk.
    known: BTreeSet<ProcId>,
}

impl TreeWalker {
    pub fn new(root: u32) -> TreeWalker {
        TreeWalker {
            root,
            known: BTreeSet::new(),
        }
    }

    pub fn root(&self) -> u32 {
        self.root
    }

    /// Walks the tree now. `root` is `None` when the root is gone.
    pub fn walk(&mut self) -> TreeWalk {
        let root = ProcId::of(self.root);
        let below = if root.is_some() {
            descendants(self.root)
        } else {
            Vec::new()
        };
        let below_set: BTreeSet<ProcId> = below.iter().copied().collect();
        let mut candidates = self.known.clone();
        if pgrp(self.root) == Some(self.root) {
            candidates.extend(group_members(self.root).into_iter().filter_map(ProcId::of));
        }
        let mut orphans = BTreeSet::new();
        for c in candidates {
            if Some(c) == root || below_set.contains(&c) || orphans.contains(&c) || !c.alive() {
                continue;
            }
            // a dead orphan waiting for its (new) parent to reap it is no longer running
            if process_state(c.pid) == Some('Z') {
                continue;
            }
            orphans.insert(c);
            orphans.extend(descendants(c.pid));
        }
        // forget the dead; remember everything seen now
        self.known.retain(ProcId::alive);
        self.known.extend(below.iter().chain(&orphans).copied());
        TreeWalk {
            root,
            below,
            orphans: orphans.into_iter().collect(),
        }
    }
}
