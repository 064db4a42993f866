//! The target a run measures and the processes it starts for it.
//!
//! - [`start`]: a target started from its own `target.command` (`command`: anyone's proxy
//!   behind the scenario's mocks, placeholders rendered), an external target ([`external`]:
//!   `target.url`, probed by PID or `/metrics`), or the bundled proxy with its mocks: one `mcp-proxy serve` on SQLite, or the
//!   [`deployment`] (replicas behind HAProxy on PostgreSQL). Either way an [`Endpoint`].
//! - [`bundled`]: everything the harness knows of `mcp-proxy`'s command line, paths and seed.
//! - [`Binaries`]: where `mcp-proxy` and `mock-mcp` are; [`Processes`]: the run's children.
//!
//! Ownership: [`Processes`] owns every child; `stop` ends them (SIGTERM, then SIGKILL after a
//! grace) and reaps them; dropping it SIGKILLs what is left. Each child also gets
//! `PR_SET_PDEATHSIG` so it dies with the harness even if the harness is SIGKILLed, and the
//! harness is a child subreaper, so a grandchild orphaned by the proxy is re-parented to us
//! and shows up in `process::stray_processes`.

pub mod bundled;
mod command;
pub mod deployment;
pub mod external;
mod start;
mod started;
mod stdio;

pub use bundled::{ProxySpec, SecretKey, proxy_address, seed_toml};
pub use start::start;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use nix::sys::signal::Signal;
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::process::owned::OwnedChild;
use crate::process::spawn;

/// The measured target: where to send MCP requests and whom to probe.
pub struct Endpoint {
    pub url: String,
    pub headers: BTreeMap<String, String>,
    /// None: an external target without a PID (only its `/metrics` can be watched).
    pub pid: Option<u32>,
    /// `--version` of the bundled proxy.
    pub version: Option<String>,
    /// The measured process's name in [`Processes`] when the harness started it alone
    /// (`proxy`, or [`COMMAND_TARGET`]): the one a SIGTERM phase signals and judges.
    pub process: Option<&'static str>,
    pub metrics_url: Option<String>,
    /// Control endpoints of the HTTP mocks, by upstream name.
    pub controls: BTreeMap<String, String>,
    /// Where the stdio mocks keep their counters (`MOCK_MCP_STATS_DIR`), if any.
    pub stats_dir: Option<PathBuf>,
    pub db_pool_max: f64,
}

/// Where a started `mock-mcp serve` answers.
#[derive(Debug, Clone)]
pub struct MockUrls {
    /// The MCP endpoint (`https://` with the upstream's `tls`): `/mcp`, or with
    /// `transport = "sse"` the legacy event stream `/sse`.
    pub url: String,
    /// Its `/control`, always plain HTTP.
    pub control: String,
    /// The throw-away CA a client must trust (`tls` only).
    pub ca_file: Option<PathBuf>,
}

/// The `mcp-proxy` and `mock-mcp` binaries.
#[derive(Debug, Clone)]
pub struct Binaries {
    pub proxy: PathBuf,
    pub mock: PathBuf,
}

impl Binaries {
    /// `MCP_LOADGEN_PROXY_BIN` / `MCP_LOADGEN_MOCK_BIN` (each on its own), else next to this
    /// executable, built first with cargo (same profile, same target dir) when this runs from
    /// a checkout, so they are never stale.
    pub fn locate(build: bool) -> anyhow::Result<Binaries> {
        let proxy = std::env::var_os("MCP_LOADGEN_PROXY_BIN").map(PathBuf::from);
        let mock = std::env::var_os("MCP_LOADGEN_MOCK_BIN").map(PathBuf::from);
        let b = match (proxy, mock) {
            (Some(proxy), Some(mock)) => Binaries { proxy, mock },
            (proxy, mock) => {
                let next_to_us = Binaries::next_to_us(build)?;
                Binaries {
                    proxy: proxy.unwrap_or(next_to_us.proxy),
                    mock: mock.unwrap_or(next_to_us.mock),
                }
            }
        };
        for p in [&b.proxy, &b.mock] {
            if !p.exists() {
                bail!(
                    "{} not found; build it with `cargo build --release -p mcp-proxy -p mock-mcp`, or set MCP_LOADGEN_PROXY_BIN and MCP_LOADGEN_MOCK_BIN",
                    p.display()
                );
            }
        }
        Ok(b)
    }

    fn next_to_us(build: bool) -> anyhow::Result<Binaries> {
        let exe = std::env::current_exe().context("cannot find the harness's own path")?;
        let mut dir = exe.parent().map(Path::to_path_buf).unwrap_or_default();
        if dir.ends_with("deps") {
            dir.pop();
        }
        let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        if build && workspace.join("Cargo.toml").exists() {
            let profile = dir.file_name().and_then(|n| n.to_str()).unwrap_or("debug");
            let target_dir = dir.parent().map(Path::to_path_buf).unwrap_or_default();
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let mut cmd = std::process::Command::new(&cargo);
            cmd.current_dir(&workspace)
                .args(["build", "-p", "mcp-proxy", "-p", "mock-mcp", "--bins"])
                .env("CARGO_TARGET_DIR", &target_dir);
            if profile == "release" {
                cmd.arg("--release");
            } else if profile != "debug" {
                cmd.args(["--profile", profile]);
            }
            // cargo's own progress shows on a cold build; up to date, it says one line
            eprintln!("mcp-loadgen: building mcp-proxy and mock-mcp ({profile}) if they changed");
            match cmd.status() {
                Ok(s) if s.success() => {}
                Ok(s) => bail!("building mcp-proxy and mock-mcp failed ({s})"),
                // no cargo here: use what is next to us
                Err(_) => {}
            }
        }
        Ok(Binaries {
            proxy: dir.join("mcp-proxy"),
            mock: dir.join("mock-mcp"),
        })
    }
}

struct Proc {
    name: String,
    child: OwnedChild,
    /// Kept open so a late write by the child never meets a closed pipe.
    _stdout: Option<tokio::process::ChildStdout>,
    /// A stdio server's close of its input (its stdin), the first step of its stop.
    close_input: Option<InputCloser>,
}

/// Closes a child's input (a stdio target's stdin, and what feeds it) when awaited; dropped,
/// it closes it too.
pub type InputCloser = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

/// A stdio server just started: its PID, pipes, and log (its stderr).
pub struct StdioChild {
    pub pid: u32,
    pub stdin: tokio::process::ChildStdin,
    pub stdout: tokio::process::ChildStdout,
    pub log: PathBuf,
}

/// Every process the run started, in start order, each an [`OwnedChild`] (so dropping the
/// list kills them all, and `stop` ends them with the same close path as PostgreSQL and HAProxy).
pub struct Processes {
    procs: Vec<Proc>,
    dir: PathBuf,
}

impl Processes {
    /// Processes whose logs go to `dir`.
    pub fn new(dir: &Path) -> Processes {
        Processes {
            procs: Vec::new(),
            dir: dir.to_path_buf(),
        }
    }

    fn add(&mut self, name: &str, child: OwnedChild, stdout: Option<tokio::process::ChildStdout>) {
        self.procs.push(Proc {
            name: name.to_string(),
            child,
            _stdout: stdout,
            close_input: None,
        });
    }

    fn log_file(&self, name: &str) -> anyhow::Result<(PathBuf, std::fs::File)> {
        let path = self.dir.join(format!("{name}.log"));
        let f = std::fs::File::create(&path)
            .with_context(|| format!("cannot create {}", path.display()))?;
        Ok((path, f))
    }

    /// Starts `mock-mcp serve` for `upstream` (with `tls`, on a throw-away CA made in
    /// `tls/NAME/` of the run's directory; with `transport = "sse"`, `--legacy-sse` and the
    /// URL of its `/sse`).
    pub async fn start_mock(
        &mut self,
        bin: &Path,
        upstream: &crate::scenario::Upstream,
    ) -> anyhow::Result<MockUrls> {
        let name = format!("mock-{}", upstream.name);
        let (log, f) = self.log_file(&name)?;
        let tls_dir = upstream
            .tls
            .then(|| self.dir.join("tls").join(&upstream.name));
        let mut cmd = spawn::command(bin, Signal::SIGTERM, false);
        cmd.args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--control-listen",
            "127.0.0.1:0",
        ])
        .args(mock_args(upstream))
        .stdout(Stdio::piped())
        .stderr(f);
        if let Some(dir) = &tls_dir {
            cmd.arg("--tls-self-signed").arg(dir);
        }
        let mut child = OwnedChild::spawn(cmd, &bin.display().to_string(), Signal::SIGKILL)?;
        let mut stdout = BufReader::new(child.take_stdout().expect("piped"));
        let mut addr = None;
        let mut control = None;
        let mut line = String::new();
        let read = async {
            while addr.is_none() || control.is_none() {
                line.clear();
                if stdout.read_line(&mut line).await? == 0 {
                    break;
                }
                if let Some(a) = line.trim().strip_prefix("listening on ") {
                    addr = Some(a.to_string());
                } else if let Some(c) = line.trim().strip_prefix("control on ") {
                    control = Some(c.to_string());
                }
            }
            anyhow::Ok(())
        };
        let read = tokio::time::timeout(Duration::from_secs(10), read).await;
        let stdout = stdout.into_inner();
        let (Ok(Ok(())), Some(addr), Some(control)) = (read, addr, control) else {
            child.stop(Signal::SIGKILL, Duration::ZERO).await;
            bail!(
                "upstream \"{}\": mock-mcp did not start: {}",
                upstream.name,
                spawn::tail(&log, 8)
            );
        };
        self.add(&name, child, Some(stdout));
        Ok(MockUrls {
            url: mock_url(upstream, &addr),
            control: format!("http://{control}/control"),
            ca_file: tls_dir.map(|d| d.join("ca.pem")),
        })
    }

    /// Starts `mcp-proxy serve` (with the run's `secret_key`, if any) and waits for `/ready`;
    /// returns its address and PID.
    pub async fn start_proxy(
        &mut self,
        bin: &Path,
        listen: SocketAddr,
        seed: &Path,
        extra: &[String],
        ready_timeout: Duration,
        secret_key: Option<&SecretKey>,
    ) -> anyhow::Result<(SocketAddr, u32)> {
        let db = self.dir.join("proxy.db");
        let spec = ProxySpec {
            name: "proxy",
            listen,
            database_url: &bundled::sqlite_url(&db),
            seed: Some(seed),
            extra,
            ready_timeout,
            secret_key,
        };
        self.start_proxy_as(bin, &spec).await
    }

    /// Starts `mcp-proxy serve` as `spec.name` (its log is `NAME.log`) and waits for
    /// `/ready`; returns its address and PID. A replica that never becomes ready is an
    /// error naming it.
    pub async fn start_proxy_as(
        &mut self,
        bin: &Path,
        spec: &ProxySpec<'_>,
    ) -> anyhow::Result<(SocketAddr, u32)> {
        let (name, listen, ready_timeout) = (spec.name, spec.listen, spec.ready_timeout);
        let (log, f) = self.log_file(name)?;
        let mut cmd = spawn::command(bin, Signal::SIGTERM, false);
        cmd.args(bundled::serve_args(spec))
            .envs(bundled::serve_env(spec))
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdout(f.try_clone()?)
            .stderr(f);
        let child = OwnedChild::spawn(cmd, &bin.display().to_string(), Signal::SIGKILL)?;
        let pid = child.pid();
        self.add(name, child, None);
        let ready = Ready {
            url: bundled::ready_url(listen),
            any_answer: false,
            timeout: ready_timeout,
        };
        self.wait_ready(name, &log, &ready).await?;
        Ok((listen, pid))
    }

    /// Starts a target's own `command` as `target` (its stdout and stderr in `target.log`)
    /// and waits until it is ready; returns its PID. A target that exits first or never
    /// gets ready is an error naming it, with its log's tail.
    pub async fn start_command(
        &mut self,
        spec: &CommandSpec,
        ready: &Ready,
    ) -> anyhow::Result<u32> {
        let name = COMMAND_TARGET;
        let (log, f) = self.log_file(name)?;
        let (program, args) = spec
            .argv
            .split_first()
            .context("`target.command` is empty")?;
        let mut cmd = spawn::command(Path::new(program), Signal::SIGTERM, false);
        cmd.args(args)
            .envs(&spec.env)
            .current_dir(&spec.cwd)
            .stdout(f.try_clone()?)
            .stderr(f);
        let child =
            OwnedChild::spawn(cmd, &format!("`target.command` {program}"), Signal::SIGKILL)?;
        let pid = child.pid();
        self.add(name, child, None);
        self.wait_ready(name, &log, ready).await?;
        Ok(pid)
    }

    /// Starts a stdio server's `spec` as `target`, stdin and stdout piped to the harness,
    /// stderr in `target.log`.
    pub fn start_stdio(&mut self, spec: &CommandSpec) -> anyhow::Result<StdioChild> {
        let name = COMMAND_TARGET;
        let (log, f) = self.log_file(name)?;
        let (program, args) = spec.argv.split_first().context("`target.stdio` is empty")?;
        let mut cmd = spawn::command(Path::new(program), Signal::SIGTERM, false);
        cmd.args(args)
            .envs(&spec.env)
            .current_dir(&spec.cwd)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(f);
        let mut child =
            OwnedChild::spawn(cmd, &format!("`target.stdio` {program}"), Signal::SIGKILL)?;
        let pid = child.pid();
        let stdin = child.take_stdin().context("piped stdin")?;
        let stdout = child.take_stdout().context("piped stdout")?;
        self.add(name, child, None);
        Ok(StdioChild {
            pid,
            stdin,
            stdout,
            log,
        })
    }

    /// Makes `close` the first step of `name`'s stop (a stdio server's stdin closed, then its
    /// grace to exit by itself); owned with the child from now on.
    pub fn set_input_closer(&mut self, name: &str, close: InputCloser) {
        if let Some(p) = self.procs.iter_mut().find(|p| p.name == name) {
            p.close_input = Some(close);
        }
    }

    /// Polls `ready.url` until it answers (any HTTP answer, or 2xx) while `name` runs; on a
    /// timeout `name` is killed. Either failure is an error with `log`'s tail.
    async fn wait_ready(&mut self, name: &str, log: &Path, ready: &Ready) -> anyhow::Result<()> {
        let url = &ready.url;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_millis(500))
            .build()?;
        let deadline = Instant::now() + ready.timeout;
        let mut last;
        loop {
            if let Some(status) = self.exited(name) {
                bail!(
                    "{name} exited before it was ready ({status}); its log ({}):\n{}",
                    log.display(),
                    spawn::tail(log, 8)
                );
            }
            match http.get(url).send().await {
                Ok(r) if ready.any_answer || r.status().is_success() => return Ok(()),
                Ok(r) => {
                    let status = r.status();
                    let body: String = r
                        .text()
                        .await
                        .unwrap_or_default()
                        .chars()
                        .take(200)
                        .collect();
                    last = format!("HTTP {status}: {}", body.trim());
                }
                Err(e) => last = e.to_string(),
            }
            if Instant::now() >= deadline {
                let _ = self.kill(name).await;
                bail!(
                    "{name} never became ready at {url} within {} (last: {last}); its log ({}):\n{}",
                    humantime::format_duration(ready.timeout),
                    log.display(),
                    spawn::tail(log, 8)
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGKILLs `name`, reaps it and forgets it (its name can be started again).
    pub async fn kill(&mut self, name: &str) -> Option<ExitStatus> {
        let i = self.procs.iter().position(|p| p.name == name)?;
        let mut p = self.procs.remove(i);
        p.child.stop(Signal::SIGKILL, Duration::ZERO).await
    }

    /// Forgets `name` once it has exited (reaped), so its name can be started again.
    pub fn forget_exited(&mut self, name: &str) -> bool {
        let Some(i) = self.procs.iter().position(|p| p.name == name) else {
            return false;
        };
        if self.procs[i].child.exited().is_none() {
            return false;
        }
        self.procs.remove(i);
        true
    }

    /// The exit status of `name`, if it has exited.
    pub fn exited(&mut self, name: &str) -> Option<ExitStatus> {
        let p = self.procs.iter_mut().find(|p| p.name == name)?;
        p.child.exited()
    }

    /// Waits up to `timeout` for `name` to exit by itself.
    pub async fn wait_exit(&mut self, name: &str, timeout: Duration) -> Option<ExitStatus> {
        let p = self.procs.iter_mut().find(|p| p.name == name)?;
        p.child.wait_exit(timeout).await
    }

    /// Sends `signal` to `name`.
    pub fn signal(&self, name: &str, signal: Signal) -> anyhow::Result<()> {
        let p = self
            .procs
            .iter()
            .find(|p| p.name == name)
            .ok_or_else(|| anyhow!("no process {name}"))?;
        p.child.signal(signal).with_context(|| name.to_string())
    }

    /// Stops every process, the proxy first: a stdio server's stdin closed and `grace` to
    /// exit, then SIGTERM, then SIGKILL after `grace`; each is reaped. Returns each one's exit status.
    pub async fn stop(mut self, grace: Duration) -> BTreeMap<String, Option<ExitStatus>> {
        let mut out = BTreeMap::new();
        // the proxies before their upstreams, so they close them cleanly
        self.procs
            .sort_by_key(|p| if measured(&p.name) { 0 } else { 1 });
        for p in &mut self.procs {
            let mut status = None;
            if let Some(close) = p.close_input.take() {
                close.await;
                status = p.child.wait_exit(grace).await;
            }
            if status.is_none() {
                status = p.child.stop(Signal::SIGTERM, grace).await;
            }
            out.insert(p.name.clone(), status);
        }
        self.procs.clear();
        out
    }
}

/// The process name of a target started from `target.command` (its log: `target.log`).
pub const COMMAND_TARGET: &str = "target";

/// Is `name` a measured process (a proxy or a started target), stopped before its upstreams?
pub fn measured(name: &str) -> bool {
    name.starts_with("proxy") || name == COMMAND_TARGET
}

/// A target's own command, rendered: argv, extra environment, working directory.
pub struct CommandSpec {
    pub argv: Vec<String>,
    pub env: BTreeMap<String, String>,
    pub cwd: PathBuf,
}

/// When a started process is ready: `url` answers (any HTTP answer with `any_answer`, else
/// 2xx) within `timeout`.
pub struct Ready {
    pub url: String,
    pub any_answer: bool,
    pub timeout: Duration,
}

/// `mock-mcp` flags for an upstream's faults, latency and seed.
/// The MCP URL of `u`'s `mock-mcp serve` listening on `addr`: `https://` with `tls`; its `/sse`
/// with `transport = "sse"`, else `/mcp`.
pub(crate) fn mock_url(u: &crate::scenario::Upstream, addr: &str) -> String {
    let scheme = if u.tls { "https" } else { "http" };
    let path = if u.sse() { "sse" } else { "mcp" };
    format!("{scheme}://{addr}/{path}")
}

pub(crate) fn mock_args(u: &crate::scenario::Upstream) -> Vec<String> {
    let mut args = Vec::new();
    if u.stateless {
        args.push("--stateless".into());
    }
    if u.sse() {
        args.push("--legacy-sse".into());
    }
    for f in &u.faults {
        args.push("--fault".into());
        args.push(f.clone());
    }
    if let Some(l) = &u.latency {
        args.push("--latency".into());
        args.push(l.clone());
    }
    if let Some(s) = u.seed {
        args.push("--seed".into());
        args.push(s.to_string());
    }
    if let Some(h) = &u.require_header {
        args.push("--require-header".into());
        args.push(h.expose().to_string());
    }
    args
}
