//! How the harness spawns a child: one [`command`] for the proxy, the mocks, PostgreSQL and
//! HAProxy alike.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Stdio;

use nix::sys::signal::Signal;
use tokio::process::Command;

/// A command for a child of the harness: stdin from /dev/null, killed when its handle is
/// dropped, `death_signal` when the harness (the spawning thread) dies, and, with
/// `own_group`, its own process group (so a terminal's Ctrl-C reaches the harness only and
/// the harness decides the order of the teardown).
pub fn command(bin: &Path, death_signal: Signal, own_group: bool) -> Command {
    let mut std = sync_command(bin, death_signal);
    std.stdin(Stdio::null());
    if own_group {
        std.process_group(0);
    }
    let mut cmd = Command::from(std);
    cmd.kill_on_drop(true);
    cmd
}

/// A blocking command for a child of the harness that gets `death_signal` when the harness
/// (the spawning thread) dies; [`command`] is this and more.
pub fn sync_command(bin: &Path, death_signal: Signal) -> std::process::Command {
    let mut cmd = std::process::Command::new(bin);
    // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec. std runs
    // this after its uid/gid changes, which would otherwise clear the setting.
    unsafe {
        cmd.pre_exec(move || {
            nix::sys::prctl::set_pdeathsig(death_signal).map_err(std::io::Error::from)
        });
    }
    cmd
}

/// The last `n` lines of a log file, for error messages.
pub fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
