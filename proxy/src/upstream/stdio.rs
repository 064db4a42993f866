//! stdio upstream transport: the upstream is a child process leading its own process group.
//!
//! Ownership: the child is owned by the [`StdioTransport`], which is owned by the client's
//! service task. Closing the client runs the transport's graceful shutdown (the MCP stdio
//! shutdown): close stdin, wait, SIGTERM to the whole group (process-wrap's `ProcessGroup`
//! signals with `killpg`), wait, SIGKILL, and the child is always waited on (reaped). A leader
//! that exits cleanly on stdin EOF can leave members behind (a server's own helpers), so the
//! client then ends the group with [`end_group`]: no orphan survives the connection. If the
//! transport is dropped instead, tokio's kill-on-drop kills the leader and reaps it, and the
//! client's `Drop` kills the group.
//!
//! The child's stdout reaches rmcp's line reader through [`ReplyLimit`]: a message over
//! `--stdio-max-reply-bytes` fails its call at once, naming the limit.

use std::process::Stdio;
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use process_wrap::tokio::{ChildWrapper, CommandWrap, ProcessGroup};
use rmcp::RoleClient;
use rmcp::transport::Transport;
use rmcp::transport::async_rw::AsyncRwTransport;
use tokio::process::{ChildStdin, ChildStdout};

use super::reply_limit::ReplyLimit;
use crate::domain::secrets::Secret;

/// How long group members get between SIGTERM and SIGKILL.
pub const GROUP_GRACE: Duration = Duration::from_secs(2);

/// How long the child gets to exit after stdin is closed, and again after SIGTERM.
const EXIT_GRACE: Duration = Duration::from_secs(3);

/// A stdio upstream: the child process and the MCP transport over its stdin and stdout.
pub struct StdioTransport {
    /// `None` once the child has exited and was reaped (or was killed by the shutdown).
    child: Option<Box<dyn ChildWrapper>>,
    transport: AsyncRwTransport<RoleClient, ReplyLimit<ChildStdout>, ChildStdin>,
}

/// Spawns `command args…` with `env` (rendered from its templates) added, in a new process
/// group, stdin/stdout piped for MCP and stderr inherited (the upstream's logs end up in the
/// proxy's); one stdout line (message) may hold at most `max_reply` bytes. Returns the
/// transport and the process group id (the child's pid).
pub fn spawn(
    command: &str,
    args: &[String],
    env: &[(&str, Secret)],
    max_reply: usize,
) -> std::io::Result<(StdioTransport, Option<i32>)> {
    let env = || env.iter().map(|(k, v)| (*k, v.expose()));
    let mut cmd = tokio::process::Command::new(command);
    cmd.args(args)
        .envs(env())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true);
    let mut wrapped = CommandWrap::from(cmd);
    wrapped.wrap(ProcessGroup::leader());
    let mut child = wrapped.spawn()?;
    let (Some(stdin), Some(stdout)) = (
        child.inner_mut().stdin().take(),
        child.inner_mut().stdout().take(),
    ) else {
        return Err(std::io::Error::other(
            "the child's stdin or stdout is not piped",
        ));
    };
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
    // rmcp's own bound sits just above ours, so ours always decides.
    let transport = AsyncRwTransport::new(ReplyLimit::new(stdout, max_reply), stdin)
        .with_max_line_length(max_reply.saturating_add(1));
    Ok((
        StdioTransport {
            child: Some(child),
            transport,
        },
        group,
    ))
}

impl StdioTransport {
    /// The MCP stdio shutdown: stdin closed, [`EXIT_GRACE`] to exit, SIGTERM, the same again,
    /// SIGKILL; the child is reaped on every path that gets it to exit.
    async fn shutdown(&mut self) -> std::io::Result<()> {
        let Some(child) = self.child.as_mut() else {
            return Ok(());
        };
        self.transport.close().await?;
        if exited_within(child, EXIT_GRACE).await? {
            self.child = None;
            return Ok(());
        }
        if let Err(e) = child.signal(Signal::SIGTERM as i32) {
            tracing::warn!(error = %e, "cannot send SIGTERM to a stdio upstream");
        } else if exited_within(child, EXIT_GRACE).await? {
            self.child = None;
            return Ok(());
        }
        let killed = Box::into_pin(child.kill()).await;
        self.child = None;
        killed
    }
}

/// Whether the child exited (and was reaped) within `grace`.
async fn exited_within(
    child: &mut Box<dyn ChildWrapper>,
    grace: Duration,
) -> std::io::Result<bool> {
    match tokio::time::timeout(grace, child.wait()).await {
        Ok(Ok(_)) => Ok(true),
        Ok(Err(e)) => Err(e),
        Err(_) => Ok(false),
    }
}

impl Transport<RoleClient> for StdioTransport {
    type Error = std::io::Error;

    fn send(
        &mut self,
        item: rmcp::service::TxJsonRpcMessage<RoleClient>,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send + 'static {
        self.transport.send(item)
    }

    fn receive(
        &mut self,
    ) -> impl Future<Output = Option<rmcp::service::RxJsonRpcMessage<RoleClient>>> + Send {
        self.transport.receive()
    }

    fn close(&mut self) -> impl Future<Output = Result<(), Self::Error>> + Send {
        self.shutdown()
    }
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
