//! stdio upstream transport: the upstream is a child process in its own process group.
//!
//! Ownership: the child is owned by rmcp's `TokioChildProcess`, which is owned by the client's
//! service task. Closing the client runs the transport's graceful shutdown: close stdin, wait,
//! SIGTERM (to the whole group, through process-wrap's `ProcessGroup`), wait, SIGKILL, and the
//! child is always waited on (reaped). If the client is dropped instead, rmcp's drop guard
//! kills and reaps it.

use std::collections::BTreeMap;
use std::process::Stdio;

use process_wrap::tokio::{CommandWrap, ProcessGroup};
use rmcp::transport::TokioChildProcess;

/// Spawns `command args…` with `env` added, in a new process group, stdin/stdout piped for MCP
/// and stderr inherited (the upstream's logs end up in the proxy's).
pub fn spawn(
    command: &str,
    args: &[String],
    env: &BTreeMap<String, String>,
) -> std::io::Result<TokioChildProcess> {
    let mut cmd = tokio::process::Command::new(command);
    cmd.args(args).envs(env);
    let mut wrapped = CommandWrap::from(cmd);
    wrapped.wrap(ProcessGroup::leader());
    let (child, _stderr) = TokioChildProcess::builder(wrapped)
        .stderr(Stdio::inherit())
        .spawn()?;
    Ok(child)
}
