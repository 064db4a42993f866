//! The children of the harness, whoever starts them: how one is spawned ([`spawn`]), the one
//! owned-child type every long-running child is (`owned`), the live list a second
//! Ctrl-C kills ([`kill_all_now`]), strays found after a run, free loopback ports ([`port`]) and
//! the two-signal interrupt handler ([`interrupt`]).
//!
//! Invariant: this module imports nothing else of the crate; every other module that starts
//! or ends a process goes through it.

use std::sync::Mutex;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

pub mod interrupt;
pub(crate) mod owned;
pub mod port;
pub mod spawn;
pub mod tree;

/// PIDs of every live child, for the second Ctrl-C (which exits without unwinding).
static LIVE: Mutex<Vec<u32>> = Mutex::new(Vec::new());

/// SIGKILLs every child still registered (the second-signal path).
pub fn kill_all_now() {
    for pid in LIVE.lock().unwrap().iter() {
        let _ = kill(Pid::from_raw(*pid as i32), Signal::SIGKILL);
    }
}

/// Registers a child (an `OwnedChild` does, from spawn): the second Ctrl-C kills it and
/// [`stray_processes`] does not report it. Its owner calls [`unregister_live`] once it has
/// reaped it.
pub fn register_live(pid: u32) {
    LIVE.lock().unwrap().push(pid);
}

/// Forgets a child registered with [`register_live`] (after its owner reaped it).
pub fn unregister_live(pid: u32) {
    LIVE.lock().unwrap().retain(|p| *p != pid);
}

/// Makes this process a child subreaper: orphaned descendants are re-parented to it.
pub fn become_subreaper() {
    let _ = nix::sys::prctl::set_child_subreaper(true);
}

/// Children of this process that no `OwnedChild` owns (orphans adopted as subreaper, or
/// children that survived their stop).
pub fn stray_processes() -> Vec<u32> {
    let live = LIVE.lock().unwrap().clone();
    tree::child_pids(std::process::id())
        .unwrap_or_default()
        .into_iter()
        .filter(|p| !live.contains(p))
        .collect()
}

/// `PID state command` of a process, for reports.
pub fn describe(pid: u32) -> String {
    let cmd = std::fs::read_to_string(format!("/proc/{pid}/cmdline"))
        .unwrap_or_default()
        .replace('\0', " ");
    let state = tree::process_state(pid).unwrap_or('?');
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
    format!("{pid} {} ({state}) {}", comm.trim(), cmd.trim())
}

/// Kills and reaps `pids` (strays found after a run).
pub fn reap_strays(pids: &[u32]) {
    for pid in pids {
        let _ = kill(Pid::from_raw(*pid as i32), Signal::SIGKILL);
        let _ = nix::sys::wait::waitpid(Pid::from_raw(*pid as i32), None);
    }
}
