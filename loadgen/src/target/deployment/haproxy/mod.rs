//! HAProxy in front of the proxy's replicas (like N Cloud Run instances behind Google's front
//! end): one HTTP frontend, one backend of replicas, sticky on `Mcp-Session-Id`, health-checked
//! on `/ready`, at most `maxconn` requests per replica with a queue beyond.
//!
//! Ownership: a [`Haproxy`] owns the `haproxy -db` process (an `OwnedChild`, see `process::owned`;
//! in the foreground, never daemonized) and the files it wrote (`haproxy.cfg`, `haproxy.log`
//! and the stats socket, in the folder given to [`Haproxy::start`]). Close paths:
//! - [`Haproxy::stop`] (the normal path): SIGUSR1 (soft stop: listeners closed, requests in
//!   flight finish), up to 10 s, then SIGKILL; reaped and unregistered.
//! - `Drop` (errors, panics): SIGKILL (HAProxy has no children to end first); reaped by tokio.
//! - the harness dying: `PR_SET_PDEATHSIG` = SIGTERM (HAProxy's immediate stop).
//!
//! The runtime API ([`Haproxy::set_state`], [`Haproxy::servers`]) goes through the stats
//! socket, one command per connection.

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use nix::sys::signal::Signal;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

mod config;

use crate::process::owned::OwnedChild;
use crate::process::spawn;
pub use config::{AdminState, BACKEND, HaproxyOptions, ServerState, config, parse_show_stat};

/// Overrides where the `haproxy` binary is.
pub const BIN_ENV: &str = "MCP_LOADGEN_HAPROXY_BIN";
/// How to install HAProxy where it is missing (named in the errors).
pub const INSTALL: &str = "apt-get install -y haproxy";
/// How long HAProxy may take to accept TCP on its frontend.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a soft stop may take before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(10);
/// How long one runtime API command may take.
const API_TIMEOUT: Duration = Duration::from_secs(5);
/// A Unix socket path must fit `sun_path` (108 bytes with the NUL).
const MAX_SOCKET_PATH: usize = 107;

/// A running HAProxy; see the module doc for who owns what.
pub struct Haproxy {
    listen: SocketAddr,
    socket: PathBuf,
    log: PathBuf,
    config_path: PathBuf,
    child: Option<OwnedChild>,
    /// Holds the stats socket when the report folder's path is too long for one.
    _socket_dir: Option<tempfile::TempDir>,
}

impl Haproxy {
    /// `$MCP_LOADGEN_HAPROXY_BIN` (only it, when set), else `haproxy` on `PATH`, else
    /// `/usr/sbin/haproxy`. The error names the install command.
    pub fn locate() -> anyhow::Result<PathBuf> {
        let runnable = |p: &Path| {
            std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        };
        if let Some(bin) = std::env::var_os(BIN_ENV) {
            let bin = PathBuf::from(bin);
            if runnable(&bin) {
                return Ok(bin);
            }
            bail!(
                "{BIN_ENV}={}: not an executable file; point it at HAProxy, or unset it after \
                 installing HAProxy (`{INSTALL}`)",
                bin.display()
            );
        }
        let on_path = std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
            .unwrap_or_default()
            .into_iter()
            .map(|d| d.join("haproxy"));
        for bin in on_path.chain([PathBuf::from("/usr/sbin/haproxy")]) {
            if runnable(&bin) {
                return Ok(bin);
            }
        }
        bail!(
            "haproxy was not found (on PATH or at /usr/sbin/haproxy); install it with \
             `{INSTALL}`, or set {BIN_ENV} to its path"
        )
    }

    /// Writes `dir/haproxy.cfg`, checks it with `haproxy -c`, runs `haproxy -db` as our child
    /// (log: `dir/haproxy.log`) and waits until the frontend accepts TCP.
    pub async fn start(
        dir: &Path,
        listen: SocketAddr,
        replicas: &[(String, SocketAddr)],
        opts: &HaproxyOptions,
    ) -> anyhow::Result<Haproxy> {
        let bin = Haproxy::locate()?;
        if listen.port() == 0 {
            bail!("HAProxy needs a fixed listen port, not {listen}");
        }
        if replicas.is_empty() {
            bail!("HAProxy needs at least one replica");
        }
        for (i, (name, _)) in replicas.iter().enumerate() {
            if name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_.:-".contains(c))
            {
                bail!("replica name {name:?}: HAProxy allows only letters, digits and _.:-");
            }
            if replicas[..i].iter().any(|(n, _)| n == name) {
                bail!("replica name {name:?} is used twice");
            }
        }
        let mut opts = opts.clone();
        let mut socket_dir = None;
        let socket = match opts.stats_socket.clone() {
            Some(s) => s,
            None => {
                let s = std::path::absolute(dir.join("haproxy.sock"))?;
                if s.as_os_str().len() <= MAX_SOCKET_PATH {
                    s
                } else {
                    let d = tempfile::Builder::new()
                        .prefix("mcp-loadgen-haproxy-")
                        .tempdir()?;
                    let s = d.path().join("haproxy.sock");
                    socket_dir = Some(d);
                    s
                }
            }
        };
        if socket.as_os_str().len() > MAX_SOCKET_PATH {
            bail!(
                "the stats socket path {} is longer than a Unix socket allows ({MAX_SOCKET_PATH} bytes)",
                socket.display()
            );
        }
        opts.stats_socket = Some(socket.clone());
        let config_path = dir.join("haproxy.cfg");
        std::fs::write(&config_path, config(listen, replicas, &opts))
            .with_context(|| format!("cannot write {}", config_path.display()))?;
        let check = tokio::process::Command::new(&bin)
            .arg("-c")
            .arg("-f")
            .arg(&config_path)
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true)
            .output()
            .await
            .with_context(|| format!("cannot run {}", bin.display()))?;
        if !check.status.success() {
            bail!(
                "haproxy -c refused {}:\n{}{}",
                config_path.display(),
                String::from_utf8_lossy(&check.stdout),
                String::from_utf8_lossy(&check.stderr)
            );
        }
        let log = dir.join("haproxy.log");
        let f = std::fs::File::create(&log)
            .with_context(|| format!("cannot create {}", log.display()))?;
        let mut cmd = spawn::command(&bin, Signal::SIGTERM, true);
        cmd.arg("-db")
            .arg("-f")
            .arg(&config_path)
            .stdout(f.try_clone()?)
            .stderr(f);
        let child = OwnedChild::spawn(cmd, "haproxy", Signal::SIGKILL)?;
        let mut h = Haproxy {
            listen,
            socket,
            log,
            config_path,
            child: Some(child),
            _socket_dir: socket_dir,
        };
        h.wait_listening().await?;
        Ok(h)
    }

    /// The frontend's address.
    pub fn listen(&self) -> SocketAddr {
        self.listen
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(OwnedChild::pid)
    }

    pub fn log_path(&self) -> &Path {
        &self.log
    }

    pub fn config_path(&self) -> &Path {
        &self.config_path
    }

    pub fn stats_socket(&self) -> &Path {
        &self.socket
    }

    /// One runtime API command; returns HAProxy's answer.
    pub async fn command(&self, command: &str) -> anyhow::Result<String> {
        let exchange = async {
            let mut s = tokio::net::UnixStream::connect(&self.socket).await?;
            s.write_all(format!("{command}\n").as_bytes()).await?;
            let mut out = String::new();
            s.read_to_string(&mut out).await?;
            anyhow::Ok(out)
        };
        match tokio::time::timeout(API_TIMEOUT, exchange).await {
            Ok(r) => r.with_context(|| {
                format!(
                    "HAProxy runtime API `{command}` at {}",
                    self.socket.display()
                )
            }),
            Err(_) => bail!("HAProxy runtime API `{command}`: no answer within 5 s"),
        }
    }

    /// `set server replicas/NAME state ready|drain|maint`.
    pub async fn set_state(&self, server: &str, state: AdminState) -> anyhow::Result<()> {
        let answer = self
            .command(&format!(
                "set server {BACKEND}/{server} state {}",
                state.keyword()
            ))
            .await?;
        if !answer.trim().is_empty() {
            bail!(
                "HAProxy refused to set {server} to {}: {}",
                state.keyword(),
                answer.trim()
            );
        }
        Ok(())
    }

    /// The backend's servers, from `show stat`.
    pub async fn servers(&self) -> anyhow::Result<Vec<ServerState>> {
        parse_show_stat(&self.command("show stat").await?, BACKEND)
    }

    /// Polls until HAProxy's health check says `name` is UP.
    pub async fn wait_up(&self, name: &str, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            let status = self
                .servers()
                .await?
                .into_iter()
                .find(|s| s.name == name)
                .map(|s| s.status)
                .with_context(|| format!("HAProxy has no server {name}"))?;
            if status == "UP" {
                return Ok(());
            }
            if Instant::now() >= deadline {
                bail!(
                    "replica {name} was not UP in HAProxy within {} (status: {status}); HAProxy's log ({}):\n{}",
                    humantime::format_duration(timeout),
                    self.log.display(),
                    spawn::tail(&self.log, 8)
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Soft stop (SIGUSR1; SIGKILL after 10 s), reaped and unregistered. Returns the exit status.
    pub async fn stop(mut self) -> Option<ExitStatus> {
        match self.child.take() {
            Some(mut c) => c.stop(Signal::SIGUSR1, STOP_GRACE).await,
            None => None,
        }
    }

    async fn wait_listening(&mut self) -> anyhow::Result<()> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let child = self.child.as_mut().context("no HAProxy process")?;
            if let Some(status) = child.exited() {
                self.child = None;
                bail!(
                    "HAProxy exited at start ({status}); its log ({}):\n{}",
                    self.log.display(),
                    spawn::tail(&self.log, 12)
                );
            }
            if tokio::net::TcpStream::connect(self.listen).await.is_ok() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                if let Some(mut c) = self.child.take() {
                    c.stop(Signal::SIGKILL, Duration::from_secs(1)).await;
                }
                bail!(
                    "HAProxy did not accept connections on {} within {}; its log ({}):\n{}",
                    self.listen,
                    humantime::format_duration(START_TIMEOUT),
                    self.log.display(),
                    spawn::tail(&self.log, 12)
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
