//! The probe sees the target's whole process tree, with real processes (`sh`, `python3`):
//! grandchildren, a detached (setsid) grandchild, orphans re-parented to this test process
//! (a child subreaper) followed by identity, a grandchild zombie, Unix socketpairs of a
//! child named with its PID, a child's threads, a busy grandchild's CPU; and the verdict on
//! two snapshots: a clean tree passes, a tree that gained processes by identity fails and
//! names them.
//!
//! Every test holds its tree in a [`Tree`] guard whose `Drop` kills and reaps everything it
//! spawned, on failure too.

use std::io::Write;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use mcp_loadgen::observe::tree::{self, TreeReading};
use mcp_loadgen::process::tree::TreeWalker;
use mcp_loadgen::report::sample::Sample;
use mcp_loadgen::scenario::Leaks;
use mcp_loadgen::verdict::tree::{culprits, grown, judge_children_by_identity};
use mcp_loadgen::verdict::{RESOURCES, leak_checks};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// A spawned tree and its walker; `Drop` kills every process of it (and its group) and reaps.
struct Tree {
    child: Child,
    walker: TreeWalker,
}

impl Tree {
    /// `sh -c script`; `own_group`: the root leads its own process group.
    fn sh(script: &str, own_group: bool) -> Tree {
        mcp_loadgen::process::become_subreaper();
        let mut cmd = Command::new("sh");
        cmd.args(["-c", script])
            .stdin(Stdio::piped())
            .stdout(Stdio::null());
        if own_group {
            cmd.process_group(0);
        }
        let child = cmd.spawn().expect("sh");
        let walker = TreeWalker::new(child.id());
        Tree { child, walker }
    }

    fn read(&mut self) -> TreeReading {
        tree::read(&self.walker.walk()).expect("the root is there")
    }

    /// Reads until `ok` holds (at most 10 s; the processes need a moment to start).
    fn until(&mut self, what: &str, ok: impl Fn(&TreeReading) -> bool) -> TreeReading {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let r = self.read();
            if ok(&r) {
                return r;
            }
            assert!(Instant::now() < deadline, "never {what}: {r:#?}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Tree {
    fn drop(&mut self) {
        let walk = self.walker.walk();
        let root = self.child.id() as i32;
        let _ = kill(Pid::from_raw(-root), Signal::SIGKILL);
        for id in walk.below.iter().chain(&walk.orphans) {
            let _ = kill(Pid::from_raw(id.pid as i32), Signal::SIGKILL);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        // orphans were re-parented to this process (a subreaper): reap them
        for id in walk.below.iter().chain(&walk.orphans) {
            let _ = nix::sys::wait::waitpid(Pid::from_raw(id.pid as i32), None);
        }
    }
}

fn comms(r: &TreeReading) -> Vec<String> {
    r.snapshot.procs.iter().map(|p| p.comm.clone()).collect()
}

#[test]
fn grandchildren_are_descendants() {
    let mut t = Tree::sh("sh -c 'sleep 60 & sleep 60 & wait' & wait", false);
    let r = t.until("3 descendants", |r| r.children.children == 3);
    let root = t.child.id();
    let sleeps: Vec<_> = r
        .snapshot
        .procs
        .iter()
        .filter(|p| p.comm == "sleep")
        .collect();
    assert_eq!(sleeps.len(), 2, "{:?}", comms(&r));
    assert!(
        sleeps.iter().all(|p| p.ppid != root && !p.orphan),
        "{sleeps:?}"
    );
    assert_eq!(r.children.orphans, 0);
}

#[test]
fn a_detached_grandchild_is_still_a_descendant() {
    let mut t = Tree::sh("setsid sleep 60 & wait", false);
    let r = t.until("the setsid sleep", |r| comms(r).contains(&"sleep".into()));
    let sleep = r.snapshot.procs.iter().find(|p| p.comm == "sleep").unwrap();
    let sid = |pid: u32| {
        procfs::process::Process::new(pid as i32)
            .unwrap()
            .stat()
            .unwrap()
            .session
    };
    assert_ne!(
        sid(sleep.pid),
        sid(t.child.id()),
        "setsid did not detach it"
    );
    assert_eq!(r.children.children, 1);
}

#[test]
fn a_double_forked_orphan_of_the_root_group_is_counted_and_named() {
    // the subshell forks `sleep` and exits at once: no walk sees it below the root, but it
    // stays in the root's process group
    let mut t = Tree::sh("(sleep 61 &); sleep 60", true);
    let r = t.until("an orphan", |r| r.children.orphans == 1);
    let orphan = r.snapshot.procs.iter().find(|p| p.orphan).unwrap();
    assert_eq!(orphan.comm, "sleep");
    assert_eq!(orphan.cmdline, "sleep 61");
    assert_ne!(orphan.ppid, t.child.id());
    let base = mcp_loadgen::report::tree::TreeSnapshot::default();
    let g = grown(&base, &r.snapshot, &Leaks::default());
    let line = g.iter().find(|g| g.pid == orphan.pid).unwrap().line();
    assert!(
        line.contains("orphan") && line.contains("sleep 61"),
        "{line}"
    );
}

#[test]
fn an_orphan_seen_below_the_root_is_followed_after_its_parent_exits() {
    // not its own group: only the walker's memory of (PID, start time) finds it again
    let mut t = Tree::sh("sh -c 'sleep 62 & sleep 0.5'; sleep 60", false);
    t.until("the grandchild below the root", |r| {
        r.snapshot
            .procs
            .iter()
            .any(|p| p.cmdline == "sleep 62" && !p.orphan)
    });
    let r = t.until("the grandchild orphaned", |r| r.children.orphans == 1);
    let orphan = r.snapshot.procs.iter().find(|p| p.orphan).unwrap();
    assert_eq!(orphan.cmdline, "sleep 62");
    assert_eq!(
        orphan.ppid,
        std::process::id(),
        "re-parented to this subreaper"
    );
}

#[test]
fn a_grandchild_zombie_is_counted() {
    let py = "import os,time\nif os.fork() == 0: os._exit(0)\ntime.sleep(60)";
    let mut t = Tree::sh(&format!("python3 -c '{py}' & wait"), false);
    let r = t.until("a zombie", |r| r.children.zombies == 1);
    let z = r.snapshot.procs.iter().find(|p| p.state == 'Z').unwrap();
    assert_ne!(z.ppid, t.child.id(), "the zombie is a grandchild");
}

#[test]
fn unix_socketpairs_of_a_child_are_counted_and_named() {
    let py = "import socket,time; s=[socket.socketpair() for _ in range(10)]; time.sleep(60)";
    let mut t = Tree::sh(&format!("python3 -c '{py}' & wait"), false);
    let r = t.until("20 unix sockets", |r| r.unix.stream >= 20);
    let python = r
        .snapshot
        .procs
        .iter()
        .find(|p| p.comm == "python3")
        .unwrap();
    assert_eq!(python.unix, 20);
    let named = r
        .snapshot
        .sockets
        .iter()
        .filter(|s| s.pid == python.pid && s.what == "unix stream unnamed")
        .count();
    assert_eq!(named, 20, "{:?}", r.snapshot.sockets);
    assert!(r.fds.socket >= 20);
}

#[test]
fn threads_of_a_child_are_summed() {
    let py = "import threading,time\nfor _ in range(8): threading.Thread(target=time.sleep, args=(60,), daemon=True).start()\ntime.sleep(60)";
    let mut t = Tree::sh(&format!("python3 -c '{py}' & wait"), false);
    let r = t.until("python's 9 threads", |r| {
        r.snapshot
            .procs
            .iter()
            .any(|p| p.comm == "python3" && p.threads == 9)
    });
    assert_eq!(r.threads, 10, "sh's one and python's nine");
}

#[test]
fn cpu_of_a_busy_grandchild_is_summed() {
    let mut t = Tree::sh("sh -c 'while :; do :; done' & wait", false);
    let first = t.until("the busy grandchild", |r| r.children.children == 1);
    let at = Instant::now();
    std::thread::sleep(Duration::from_millis(1000));
    let second = t.read();
    let cpu = tree::cpu_percent(&first.ticks, &second.ticks, at.elapsed().as_secs_f64());
    // a spinning shell takes a whole core; other builds on this machine may take some
    assert!(cpu > 20.0, "{cpu}% of one core");
}

fn probed(r: &TreeReading) -> Sample {
    Sample {
        probed: true,
        fds: r.fds,
        tcp: r.tcp,
        unix: r.unix,
        children: r.children,
        threads: r.threads,
        rss_bytes: r.rss_bytes,
        ..Sample::default()
    }
}

#[test]
fn a_clean_tree_passes_and_processes_gained_by_identity_fail_named() {
    // one sleep at the baseline; on a line from stdin it is replaced by another: the count
    // stays at 1, the process is new
    let mut t = Tree::sh("sleep 63 & read x; kill $!; wait; sleep 64 & wait", false);
    // once `sleep 63` runs: before its exec the forked shell is still moving its stdin to
    // /dev/null, and a pipe turning into a file would be growth by kind
    let base = t.until("the first sleep", |r| {
        r.children.children == 1 && r.snapshot.procs.iter().any(|p| p.cmdline == "sleep 63")
    });
    let leaks = Leaks::default();
    let again = t.read();
    assert!(
        grown(&base.snapshot, &again.snapshot, &leaks).is_empty(),
        "a clean tree"
    );
    t.child.stdin.as_mut().unwrap().write_all(b"go\n").unwrap();
    let end = t.until("the second sleep", |r| {
        r.snapshot.procs.iter().any(|p| p.cmdline == "sleep 64")
    });
    let g = grown(&base.snapshot, &end.snapshot, &leaks);
    assert_eq!(g.len(), 1, "{g:?}");
    assert_eq!(g[0].grew, ["new process"]);
    let (b, e) = (probed(&base), probed(&end));
    let mut checks = leak_checks(&b, &[b, e], &e, &leaks);
    let children =
        |c: &[mcp_loadgen::verdict::Check]| c.iter().find(|c| c.name == "children").unwrap().passed;
    assert!(children(&checks), "the count did not grow");
    judge_children_by_identity(&mut checks, &g, &leaks);
    assert!(!children(&checks), "a new process by identity");
    let notes = culprits(&checks, &g);
    assert!(
        notes.iter().any(|n| n.starts_with("children")
            && n.contains("sleep 64")
            && n.contains(&g[0].pid.to_string())),
        "{notes:?}"
    );
    assert!(RESOURCES.iter().any(|r| r.name == "orphans"));
}
