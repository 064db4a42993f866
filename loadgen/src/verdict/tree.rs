//! Which processes of the target's tree grew between the baseline and the end of the settle,
//! by identity (PID and start time): new processes alive at the end, orphans, and processes
//! whose fds, threads, RSS or Unix sockets grew beyond their resource's tolerance; the
//! `children` check judged by identity; the failed checks' culprits named.
//!
//! Pure: two snapshots in, a list out. A process present at the baseline and gone at the end
//! never hides a new one (counts could stay level while processes were replaced).

use std::collections::BTreeMap;

use crate::report::check::Check;
use crate::report::sample::FdCounts;
use crate::report::tree::{GrownProcess, ProcessInfo, TreeSnapshot};
use crate::scenario::Leaks;

const MIB: f64 = 1024.0 * 1024.0;

/// The processes of `end` that are new since `base`, orphaned, or grew beyond `l`.
pub fn grown(base: &TreeSnapshot, end: &TreeSnapshot, l: &Leaks) -> Vec<GrownProcess> {
    // a slot now following another process (a replica the harness replaced) has nothing to
    // compare by identity: every process of the new tree would look new
    let root = |t: &TreeSnapshot| t.procs.first().map(|p| (p.pid, p.start));
    if let (Some(b), Some(e)) = (root(base), root(end))
        && b != e
    {
        return Vec::new();
    }
    let before: BTreeMap<(u32, u64), &ProcessInfo> =
        base.procs.iter().map(|p| ((p.pid, p.start), p)).collect();
    end.procs
        .iter()
        .filter_map(|p| {
            let mut grew = Vec::new();
            match before.get(&(p.pid, p.start)) {
                None if p.state == 'Z' => grew.push("new process (zombie)".to_string()),
                None => grew.push("new process".to_string()),
                Some(b) => grew.extend(growth(b, p, l)),
            }
            if p.orphan {
                grew.push("orphan".to_string());
            }
            (!grew.is_empty()).then(|| GrownProcess {
                pid: p.pid,
                ppid: p.ppid,
                command: p.command(),
                grew,
            })
        })
        .collect()
}

/// What grew beyond its tolerance in one process present at both ends.
fn growth(b: &ProcessInfo, p: &ProcessInfo, l: &Leaks) -> Vec<String> {
    let mut out = Vec::new();
    let kinds = fd_growth(&b.fds, &p.fds);
    if kinds.iter().any(|(_, d)| *d > i64::from(l.fds)) {
        let total = i64::from(p.fds.total()) - i64::from(b.fds.total());
        let parts: Vec<String> = kinds
            .iter()
            .filter(|(_, d)| *d > 0)
            .map(|(k, d)| format!("{k} +{d}"))
            .collect();
        out.push(format!("fds {total:+} ({})", parts.join(", ")));
    }
    let threads = i64::from(p.threads) - i64::from(b.threads);
    if threads > i64::from(l.threads) {
        out.push(format!("threads +{threads}"));
    }
    let unix = i64::from(p.unix) - i64::from(b.unix);
    if unix > i64::from(l.sockets_unix) {
        out.push(format!("unix sockets +{unix}"));
    }
    let rss = (p.rss_bytes as f64 - b.rss_bytes as f64) / MIB;
    if rss > l.rss_mib {
        out.push(format!("rss +{rss:.0} MiB"));
    }
    out
}

fn fd_growth(b: &FdCounts, p: &FdCounts) -> [(&'static str, i64); 5] {
    let d = |a: u32, b: u32| i64::from(a) - i64::from(b);
    [
        ("socket", d(p.socket, b.socket)),
        ("pipe", d(p.pipe, b.pipe)),
        ("anon_inode", d(p.anon_inode, b.anon_inode)),
        ("file", d(p.file, b.file)),
        ("other", d(p.other, b.other)),
    ]
}

/// New processes alive at the end (not zombies), by identity.
pub fn new_alive(grown: &[GrownProcess]) -> usize {
    grown
        .iter()
        .filter(|g| g.grew.iter().any(|x| x == "new process"))
        .count()
}

/// `first` with its new processes kept only when `again` (the same diff a moment later) has
/// them too: a process that came and went between two readings (a periodic helper, a poll
/// loop's `sleep`) is churn, not something the load left behind.
pub fn lasting(first: Vec<GrownProcess>, again: &[GrownProcess]) -> Vec<GrownProcess> {
    first
        .into_iter()
        .filter(|g| {
            !g.is_new()
                || again
                    .iter()
                    .any(|a| a.is_new() && a.pid == g.pid && a.command == g.command)
        })
        .collect()
}

/// The `children` check fails when more new processes are alive at the end than its
/// tolerance allows, even if the count did not grow (processes of the baseline went away).
pub fn judge_children_by_identity(checks: &mut [Check], grown: &[GrownProcess], l: &Leaks) {
    let new = new_alive(grown);
    for c in checks.iter_mut() {
        if c.name == "children" && c.skipped.is_none() && new as f64 > f64::from(l.children) {
            c.passed = false;
        }
    }
}

/// Is `g` one of the processes responsible for the leak check `check`?
fn responsible(check: &str, g: &GrownProcess) -> bool {
    let has = |s: &str| g.grew.iter().any(|x| x.starts_with(s));
    match check {
        "children" => has("new process"),
        "orphans" => g.is_orphan(),
        "zombies" => has("new process (zombie)"),
        "threads" => has("threads") || g.is_new(),
        "sockets.unix" => has("unix") || g.is_new(),
        "rss" => has("rss") || g.is_new(),
        c if c.starts_with("fds.") || c.starts_with("tcp.") => has("fds") || g.is_new(),
        _ => false,
    }
}

/// One note per failed leak check naming the processes responsible (at most 10 each).
pub fn culprits(checks: &[Check], grown: &[GrownProcess]) -> Vec<String> {
    let mut notes = Vec::new();
    for c in checks.iter().filter(|c| !c.passed && c.skipped.is_none()) {
        let who: Vec<&GrownProcess> = grown.iter().filter(|g| responsible(&c.name, g)).collect();
        if who.is_empty() {
            continue;
        }
        let mut names: Vec<String> = who.iter().take(10).map(|g| g.line()).collect();
        if who.len() > 10 {
            names.push(format!("and {} more", who.len() - 10));
        }
        notes.push(format!("{} grew in: {}", c.name, names.join("; ")));
    }
    notes
}

/// When `rss` failed on growth in a Node process, what that reading can and cannot say: V8
/// collects its old space only as it nears its limit, so on a short run its RSS climbs on
/// garbage (supergateway: heap 43 → 150 MB without one full collection in 85 s, 46 MB live
/// after each one under a 96 MiB limit). A limit near the production one makes it collect.
pub fn gc_hint(checks: &[Check], grown: &[GrownProcess]) -> Option<String> {
    let failed = checks
        .iter()
        .any(|c| c.name == "rss" && !c.passed && c.skipped.is_none());
    let node = grown
        .iter()
        .find(|g| g.command.starts_with("node ") && g.grew.iter().any(|x| x.starts_with("rss")))?;
    failed.then(|| {
        format!(
            "rss: PID {} is Node, whose V8 heap is collected only near its limit, so its RSS can climb for minutes on garbage; to judge live memory give it a limit near production's: [target] env = {{ NODE_OPTIONS = \"--max-old-space-size=<MiB>\" }}",
            node.pid
        )
    })
}

#[cfg(test)]
#[path = "tree_tests.rs"]
mod tests;
