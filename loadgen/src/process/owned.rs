//! The one owned-child type of the harness: every long-running child (the mocks and proxies of
//! a run's `target::Processes`, the throw-away PostgreSQL and the HAProxy of
//! `target::deployment`) is an [`OwnedChild`].
//!
//! Ownership: an [`OwnedChild`] is the only handle on its process. It is registered in
//! the [`process`](super) live list from spawn until it is reaped, so a second Ctrl-C SIGKILLs it and
//! the run's stray check does not report it. Close paths, each of which reaps and unregisters:
//! - [`OwnedChild::stop`]: the child's own graceful signal, a bounded wait, then SIGKILL (to its
//!   process group when it leads one); the normal path (and idempotent).
//! - `Drop` (errors, panics, a future dropped mid-start): the drop signal, a short blocking wait
//!   when that signal lets the child end its own children, then SIGKILL (to the group when it
//!   leads one).
//! - the harness dying: `PR_SET_PDEATHSIG` delivers the death signal (set after any uid change,
//!   which would clear it).
//!
//! PostgreSQL and HAProxy lead their own process group (`spawn::command(.., own_group: true)`),
//! so a terminal's Ctrl-C reaches the harness only and the harness decides the order of the
//! teardown (the database outlives the replicas' drain); a run's mocks and proxies do not.

use std::process::ExitStatus;
use std::time::{Duration, Instant};

use anyhow::Context;
use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;
use tokio::process::{Child, Command};

/// How long `Drop` waits for a child that was asked to end its own children.
const DROP_WAIT: Duration = Duration::from_secs(2);

/// A spawned, registered child; see the module doc for its close paths.
pub(crate) struct OwnedChild {
    child: Child,
    pid: u32,
    /// Sent by `Drop`; SIGKILL means "no wait".
    drop_signal: Signal,
    /// Whether the child leads its own process group (then SIGKILL goes to the whole group).
    leads_group: bool,
}

impl OwnedChild {
    /// Spawns `cmd` (made with [`spawn::command`](super::spawn::command)) and registers it;
    /// `name` is what a spawn error names.
    pub(crate) fn spawn(
        mut cmd: Command,
        name: &str,
        drop_signal: Signal,
    ) -> anyhow::Result<OwnedChild> {
        let child = cmd
            .spawn()
            .with_context(|| format!("cannot start {name}"))?;
        let pid = child.id().context("a just-spawned child has a PID")?;
        super::register_live(pid);
        // the group is set before exec, and spawn returns after exec
        let raw = Pid::from_raw(pid as i32);
        let leads_group = nix::unistd::getpgid(Some(raw)) == Ok(raw);
        Ok(OwnedChild {
            child,
            pid,
            drop_signal,
            leads_group,
        })
    }

    /// The child's piped stdin, once.
    pub(crate) fn take_stdin(&mut self) -> Option<tokio::process::ChildStdin> {
        self.child.stdin.take()
    }

    /// The child's piped stdout, once.
    pub(crate) fn take_stdout(&mut self) -> Option<tokio::process::ChildStdout> {
        self.child.stdout.take()
    }

    /// Sends `signal` to the child; an error once it has been reaped.
    pub(crate) fn signal(&self, signal: Signal) -> anyhow::Result<()> {
        let pid = self.child.id().context("the process has exited")?;
        kill(Pid::from_raw(pid as i32), signal)?;
        Ok(())
    }

    /// SIGKILL to the child, or to its whole group when it leads one (before the leader is
    /// reaped, so the group id cannot have been reused).
    fn kill_now(&self) {
        let pid = Pid::from_raw(self.pid as i32);
        if self.leads_group {
            let _ = killpg(pid, Signal::SIGKILL);
        } else {
            let _ = kill(pid, Signal::SIGKILL);
        }
    }

    pub(crate) fn pid(&self) -> u32 {
        self.pid
    }

    fn reaped(&self) -> bool {
        self.child.id().is_none()
    }

    /// The exit status, if the child has exited (it is then reaped and unregistered).
    pub(crate) fn exited(&mut self) -> Option<ExitStatus> {
        let status = self.child.try_wait().ok().flatten();
        if status.is_some() {
            super::unregister_live(self.pid);
        }
        status
    }

    /// Waits up to `timeout` for the child to exit by itself.
    pub(crate) async fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let status = tokio::time::timeout(timeout, self.child.wait())
            .await
            .ok()
            .and_then(Result::ok);
        if status.is_some() {
            super::unregister_live(self.pid);
        }
        status
    }

    /// `signal`, up to `grace` for the child to exit, then SIGKILL ([`Self::kill_now`]); always
    /// reaped and unregistered. Returns the exit status (None: it had been reaped before).
    pub(crate) async fn stop(&mut self, signal: Signal, grace: Duration) -> Option<ExitStatus> {
        if let Ok(Some(s)) = self.child.try_wait() {
            super::unregister_live(self.pid);
            return Some(s);
        }
        if self.reaped() {
            return None;
        }
        let _ = kill(Pid::from_raw(self.pid as i32), signal);
        let status = match tokio::time::timeout(grace, self.child.wait()).await {
            Ok(Ok(s)) => Some(s),
            _ => {
                self.kill_now();
                self.child.wait().await.ok()
            }
        };
        super::unregister_live(self.pid);
        status
    }
}

impl Drop for OwnedChild {
    fn drop(&mut self) {
        if !self.reaped() && !matches!(self.child.try_wait(), Ok(Some(_))) {
            let pid = Pid::from_raw(self.pid as i32);
            let _ = kill(pid, self.drop_signal);
            if self.drop_signal != Signal::SIGKILL {
                // a blocking wait, on the error path only: the child ends (and reaps) its own
                // children, which would otherwise be re-parented to the harness
                let deadline = Instant::now() + DROP_WAIT;
                while Instant::now() < deadline && !matches!(self.child.try_wait(), Ok(Some(_))) {
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
            if !matches!(self.child.try_wait(), Ok(Some(_))) {
                self.kill_now();
                // kill_on_drop hands a child still unreaped to tokio's orphan reaper
            }
        }
        super::unregister_live(self.pid);
    }
}
