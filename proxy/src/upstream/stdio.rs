//! stdio upstream transport: the upstream is a child process leading its own process group.
//!
//! Ownership: the child is owned by rmcp's `TokioChildProcess`, which is owned by the client's
//! service task. Closing the client runs the transport's graceful shutdown: close stdin, wait,
//! SIGTERM to the whole group (process-wrap's `ProcessGroup` signals with `killpg`), wait,
//! SIGKILL, and the child is always waited on (reaped). A leader that exits cleanly on stdin
//! EOF can leave members behind (a server's own helpers), so the client then ends the group
//! with [`end_group`]: no orphan survives the connection. If the client is dropped instead,
//! rmcp's drop guard kills and reaps the leader and `Drop` kills the group.

use std::process::Stdio;
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use process_wrap::tokio::{CommandWrap, ProcessGroup};
use rmcp::transport::TokioChildProcess;

use crate::domain::secrets::Secret;

/// How long group members get between SIGTERM and SIGKILL.
pub const GROUP_GRACE: Duration = Duration::from_secs(2);

/// Spawns `command args…` with `env` (rendered from its templates) added, in a new process group, stdin/stdout piped for MCP
/// and stderr inherited (the upstream's logs end up in the proxy's). Returns the transport and
/// the process group id (the child's pid).
pub fn spawn(
    command: &str,
    args: &[String],
    env: &[(&str, Secret)],
) -> std::io::Result<(TokioChildProcess, Option<i32>)> {
    let env = || env.iter().map(|(k, v)| (*k, v.expose()));
    let mut cmd = tokio::process::Command::new(command);
    cmd.args(args).envs(env());
    let mut wrapped = CommandWrap::from(cmd);
    wrapped.wrap(ProcessGroup::leader());
    let (child, _stderr) = TokioChildProcess::builder(wrapped)
        .stderr(Stdio::inherit())
        .spawn()?;
    let group = child.id().map(|pid| pid as i32);
    #[cfg(feature = "planted-leaks")]
    if crate::ops::planted::active(crate::ops::planted::Leak::StdioReap) {
        // a second copy of the child, spawned and never waited on: it exits on stdin EOF
        // and stays a zombie
        let stray = std::process::Command::new(command)
            .args(args)
            .envs(env())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        std::mem::forget(stray);
    }
    Ok((child, group))
}

/// Whether any process is left in the group.
fn group_alive(group: i32) -> bool {
    killpg(Pid::from_raw(group), None).is_ok()
}

/// Ends whatever is left of a process group after its leader was closed: SIGTERM, up to
/// [`GROUP_GRACE`] for the members to exit, then SIGKILL. Members are not our children (they
/// were reparented when the leader exited), so there is nothing for us to reap.
pub async fn end_group(group: i32) {
    if !group_alive(group) {
        return;
    }
    tracing::debug!(
        group,
        "stdio upstream left processes in its group; terminating them"
    );
    let _ = killpg(Pid::from_raw(group), Signal::SIGTERM);
    let deadline = tokio::time::Instant::now() + GROUP_GRACE;
    while group_alive(group) && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    if group_alive(group) {
        tracing::warn!(group, "stdio upstream group ignored SIGTERM; killing it");
        let _ = killpg(Pid::from_raw(group), Signal::SIGKILL);
    }
}

/// Kills the whole group at once (the `Drop` fallback, which cannot wait).
pub fn kill_group(group: i32) {
    let _ = killpg(Pid::from_raw(group), Signal::SIGKILL);
}
