//! A throw-away PostgreSQL cluster for a run with replicas (`database = "postgres"`): its own
//! `initdb`, its own server on a free loopback port, trust authentication, gone after the run.
//!
//! Ownership: a [`Postgres`] owns the server process (an `OwnedChild`, see `process::owned`) and the
//! cluster's folder (a [`tempfile::TempDir`]: data and Unix socket, never the report folder,
//! which keeps only `postgres.log`). Close paths:
//! - [`Postgres::stop`] (the normal path): SIGINT (fast shutdown: clients disconnected, a
//!   checkpoint), up to 10 s, SIGKILL to the server's process group; reaped, unregistered;
//!   then the cluster's folder is deleted.
//! - `Drop` (errors, panics): SIGQUIT (immediate shutdown: the postmaster ends and reaps its
//!   backends), a short wait, SIGKILL to the group; then the folder is deleted (fields drop in
//!   order: the server before the folder).
//! - the harness dying: `PR_SET_PDEATHSIG` = SIGQUIT; only then does the folder stay behind
//!   (`$TMPDIR/mcp-loadgen-pg-*`).
//!
//! The server runs in the foreground as our child, never through `pg_ctl` (which daemonizes:
//! the harness is a child subreaper and would report the daemon as an orphan). PostgreSQL
//! refuses to run as root; as root, `initdb` and the server run as the `postgres` user, which
//! then owns the cluster's folder.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use nix::sys::signal::Signal;
use nix::unistd::{Gid, Uid, User};
use sqlx::Connection;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgSslMode};

use crate::process::owned::OwnedChild;
use crate::process::spawn;

/// Overrides where `initdb` and `postgres` are looked for (a folder holding both).
pub const BINDIR_ENV: &str = "MCP_LOADGEN_PG_BINDIR";
/// How to install PostgreSQL where it is missing (named in the errors).
pub const INSTALL: &str = "apt-get install -y postgresql";
/// The database the replicas use.
pub const DATABASE: &str = "mcp";

/// How long the server may take to accept connections (start and restart).
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a fast shutdown may take before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(10);
/// How long `initdb` may take.
const INITDB_TIMEOUT: Duration = Duration::from_secs(120);
/// Lines of `postgres.log` quoted in errors.
const LOG_TAIL: usize = 12;

/// Where PostgreSQL's server binaries are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgBinaries {
    pub bindir: PathBuf,
}

impl PgBinaries {
    pub fn initdb(&self) -> PathBuf {
        self.bindir.join("initdb")
    }

    pub fn postgres(&self) -> PathBuf {
        self.bindir.join("postgres")
    }

    fn complete(dir: &Path) -> bool {
        ["initdb", "postgres"]
            .iter()
            .all(|b| executable(&dir.join(b)))
    }
}

fn executable(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// The user the cluster runs as when the harness is root.
#[derive(Debug, Clone, Copy)]
struct RunAs {
    uid: Uid,
    gid: Gid,
}

/// A running throw-away cluster; see the module doc for who owns what.
pub struct Postgres {
    bin: PgBinaries,
    port: u16,
    log: PathBuf,
    run_as: Option<RunAs>,
    /// Declared before `cluster`: dropped (killed) before the folder is deleted.
    server: Option<OwnedChild>,
    cluster: tempfile::TempDir,
}

impl Postgres {
    /// Finds `initdb` and `postgres`: `$MCP_LOADGEN_PG_BINDIR` (only it, when set), else
    /// `pg_config --bindir`, else the highest `/usr/lib/postgresql/<version>/bin`, else `PATH`.
    /// The error names the install command.
    pub fn locate() -> anyhow::Result<PgBinaries> {
        if let Some(dir) = std::env::var_os(BINDIR_ENV) {
            let dir = PathBuf::from(dir);
            if PgBinaries::complete(&dir) {
                return Ok(PgBinaries { bindir: dir });
            }
            bail!(
                "{BINDIR_ENV}={}: no executable initdb and postgres there; point it at the folder \
                 holding PostgreSQL's server binaries, or unset it after installing PostgreSQL \
                 (`{INSTALL}`)",
                dir.display()
            );
        }
        let mut tried = Vec::new();
        let mut candidates = Vec::new();
        if let Ok(out) = std::process::Command::new("pg_config")
            .arg("--bindir")
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
            && out.status.success()
        {
            candidates.push(PathBuf::from(
                String::from_utf8_lossy(&out.stdout).trim().to_string(),
            ));
        } else {
            tried.push("pg_config --bindir".to_string());
        }
        if let Some(dir) = highest_debian_bindir(Path::new("/usr/lib/postgresql")) {
            candidates.push(dir);
        } else {
            tried.push("/usr/lib/postgresql/<version>/bin".to_string());
        }
        if let Some(path) = std::env::var_os("PATH") {
            candidates.extend(std::env::split_paths(&path));
        }
        tried.push("PATH".to_string());
        for dir in candidates {
            if PgBinaries::complete(&dir) {
                return Ok(PgBinaries { bindir: dir });
            }
        }
        bail!(
            "PostgreSQL's initdb and postgres were not found (looked at: {}); install them with \
             `{INSTALL}`, or set {BINDIR_ENV} to the folder holding them",
            tried.join(", ")
        )
    }

    /// `initdb` a new cluster (in a fresh temp folder), start its server on a free loopback
    /// port, wait until it accepts connections, create the database `mcp`. The server's log
    /// (and initdb's output) go to `dir/postgres.log`.
    pub async fn start(dir: &Path) -> anyhow::Result<Postgres> {
        let bin = Postgres::locate()?;
        let run_as = run_as()?;
        let cluster = tempfile::Builder::new()
            .prefix("mcp-loadgen-pg-")
            .tempdir()
            .context("cannot create a temp folder for the PostgreSQL cluster")?;
        if let Some(u) = run_as {
            std::os::unix::fs::chown(cluster.path(), Some(u.uid.as_raw()), Some(u.gid.as_raw()))
                .with_context(|| {
                    format!(
                        "cannot give {} to the postgres user",
                        cluster.path().display()
                    )
                })?;
        }
        let log = dir.join("postgres.log");
        File::create(&log).with_context(|| format!("cannot create {}", log.display()))?;
        let mut pg = Postgres {
            bin,
            port: 0,
            log,
            run_as,
            server: None,
            cluster,
        };
        pg.initdb().await?;
        pg.port = crate::process::port::free_port()?;
        pg.server = Some(pg.spawn_server()?);
        pg.wait_ready().await?;
        let mut conn = pg.connect("postgres").await?;
        sqlx::query("CREATE DATABASE mcp")
            .execute(&mut conn)
            .await
            .context("PostgreSQL: CREATE DATABASE mcp")?;
        let _ = conn.close().await;
        Ok(pg)
    }

    /// `postgres://postgres@127.0.0.1:PORT/mcp` (trust authentication: no password).
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{DATABASE}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The postmaster's PID (None after a failed restart).
    pub fn pid(&self) -> Option<u32> {
        self.server.as_ref().map(OwnedChild::pid)
    }

    /// `postgres.log` in the folder given to [`Postgres::start`].
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// The cluster's folder (data and socket), deleted by `stop` and `Drop`.
    pub fn cluster_dir(&self) -> &Path {
        self.cluster.path()
    }

    /// A real restart on the same port and data: fast shutdown (SIGINT; SIGKILL after 10 s),
    /// start again, wait until it accepts connections. Returns how long the server was down
    /// (from the signal to the first accepted connection).
    pub async fn restart(&mut self) -> anyhow::Result<Duration> {
        let down = Instant::now();
        if let Some(mut old) = self.server.take() {
            old.stop(Signal::SIGINT, STOP_GRACE).await;
        }
        self.server = Some(self.spawn_server()?);
        self.wait_ready().await?;
        Ok(down.elapsed())
    }

    /// Client backends connected to `mcp`, not counting the connection that asks (opened for
    /// this question and closed after it).
    pub async fn client_connections(&self) -> anyhow::Result<i64> {
        let mut conn = self.connect(DATABASE).await?;
        let n: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity \
             WHERE backend_type = 'client backend' AND datname = 'mcp' AND pid <> pg_backend_pid()",
        )
        .fetch_one(&mut conn)
        .await
        .context("PostgreSQL: counting client connections in pg_stat_activity")?;
        let _ = conn.close().await;
        Ok(n)
    }

    /// Fast shutdown (SIGINT; SIGKILL to the group after 10 s), reaped and unregistered, then
    /// the cluster's folder deleted. Returns the server's exit status (None: it had already
    /// been reaped, after a failed restart).
    pub async fn stop(mut self) -> anyhow::Result<Option<ExitStatus>> {
        let status = match self.server.take() {
            Some(mut s) => s.stop(Signal::SIGINT, STOP_GRACE).await,
            None => None,
        };
        let path = self.cluster.path().to_path_buf();
        self.cluster
            .close()
            .with_context(|| format!("cannot delete the PostgreSQL cluster {}", path.display()))?;
        Ok(status)
    }

    async fn initdb(&self) -> anyhow::Result<()> {
        let mut cmd = self.command(&self.bin.initdb(), Signal::SIGKILL)?;
        cmd.arg("-D").arg(self.pgdata()).args([
            "--auth=trust",
            "-U",
            "postgres",
            "--no-sync",
            "-E",
            "UTF8",
            "--locale=C",
        ]);
        let started = Instant::now();
        let mut child = OwnedChild::spawn(cmd, "initdb", Signal::SIGKILL)?;
        match child.wait_exit(INITDB_TIMEOUT).await {
            Some(s) if s.success() => Ok(()),
            Some(s) => bail!(
                "initdb failed ({s}); its output ({}):\n{}",
                self.log.display(),
                spawn::tail(&self.log, LOG_TAIL)
            ),
            None => bail!(
                "initdb did not finish within {:?}; its output ({}):\n{}",
                started.elapsed(),
                self.log.display(),
                spawn::tail(&self.log, LOG_TAIL)
            ),
        }
    }

    fn spawn_server(&self) -> anyhow::Result<OwnedChild> {
        let mut cmd = self.command(&self.bin.postgres(), Signal::SIGQUIT)?;
        cmd.arg("-D")
            .arg(self.pgdata())
            .arg("-p")
            .arg(self.port.to_string())
            .arg("-k")
            .arg(self.cluster.path())
            .args([
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "fsync=off",
                "-c",
                "max_connections=200",
            ]);
        OwnedChild::spawn(cmd, "postgres", Signal::SIGQUIT)
    }

    /// A command run as the cluster's user, in the cluster's folder, output appended to the log.
    fn command(&self, bin: &Path, death_signal: Signal) -> anyhow::Result<tokio::process::Command> {
        let log = OpenOptions::new()
            .append(true)
            .open(&self.log)
            .with_context(|| format!("cannot open {}", self.log.display()))?;
        let mut cmd = spawn::command(bin, death_signal, true);
        cmd.current_dir(self.cluster.path())
            .stdout(log.try_clone()?)
            .stderr(log);
        if let Some(u) = self.run_as {
            cmd.uid(u.uid.as_raw()).gid(u.gid.as_raw());
        }
        Ok(cmd)
    }

    fn pgdata(&self) -> PathBuf {
        self.cluster.path().join("pgdata")
    }

    fn options(&self, database: &str) -> PgConnectOptions {
        PgConnectOptions::new_without_pgpass()
            .host("127.0.0.1")
            .port(self.port)
            .username("postgres")
            .database(database)
            .ssl_mode(PgSslMode::Disable)
            .application_name("mcp-loadgen")
    }

    async fn connect(&self, database: &str) -> anyhow::Result<PgConnection> {
        match tokio::time::timeout(
            Duration::from_secs(5),
            PgConnection::connect_with(&self.options(database)),
        )
        .await
        {
            Ok(Ok(c)) => Ok(c),
            Ok(Err(e)) => Err(e).with_context(|| {
                format!("cannot connect to PostgreSQL at 127.0.0.1:{}", self.port)
            }),
            Err(_) => bail!(
                "connecting to PostgreSQL at 127.0.0.1:{} took over 5 s",
                self.port
            ),
        }
    }

    /// Polls until the server accepts a connection; on a timeout or an exit the server is
    /// killed and reaped and the error quotes its log.
    async fn wait_ready(&mut self) -> anyhow::Result<()> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let server = self.server.as_mut().context("no PostgreSQL server")?;
            if let Some(status) = server.exited() {
                self.server = None;
                bail!(
                    "PostgreSQL exited at start ({status}); its log ({}):\n{}",
                    self.log.display(),
                    spawn::tail(&self.log, LOG_TAIL)
                );
            }
            let last = match self.connect("postgres").await {
                Ok(c) => {
                    let _ = c.close().await;
                    return Ok(());
                }
                Err(e) => format!("{e:#}"),
            };
            if Instant::now() >= deadline {
                if let Some(mut s) = self.server.take() {
                    s.stop(Signal::SIGKILL, Duration::from_secs(1)).await;
                }
                bail!(
                    "PostgreSQL did not accept connections within {} (last: {last}); its log ({}):\n{}",
                    humantime::format_duration(READY_TIMEOUT),
                    self.log.display(),
                    spawn::tail(&self.log, LOG_TAIL)
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// As root, the `postgres` user (PostgreSQL refuses root); otherwise ourselves.
fn run_as() -> anyhow::Result<Option<RunAs>> {
    if !nix::unistd::geteuid().is_root() {
        return Ok(None);
    }
    match User::from_name("postgres") {
        Ok(Some(u)) => Ok(Some(RunAs {
            uid: u.uid,
            gid: u.gid,
        })),
        Ok(None) => bail!(
            "the harness runs as root and PostgreSQL refuses to run as root, but there is no \
             `postgres` user to run it as; create one (`{INSTALL}` does) or run the harness as \
             another user"
        ),
        Err(e) => bail!("cannot look up the `postgres` user: {e}"),
    }
}

/// `/usr/lib/postgresql/<highest version>/bin` (Debian's layout), if it exists.
fn highest_debian_bindir(root: &Path) -> Option<PathBuf> {
    let mut versions: Vec<(Vec<u32>, PathBuf)> = std::fs::read_dir(root)
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let version: Option<Vec<u32>> = name.split('.').map(|p| p.parse().ok()).collect();
            Some((version?, e.path().join("bin")))
        })
        .filter(|(_, bin)| PgBinaries::complete(bin))
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_highest_numeric_version_wins() {
        let root = tempfile::tempdir().unwrap();
        for v in ["9.6", "13", "15", "notaversion"] {
            let bin = root.path().join(v).join("bin");
            std::fs::create_dir_all(&bin).unwrap();
            for b in ["initdb", "postgres"] {
                let p = bin.join(b);
                std::fs::write(&p, "#!/bin/sh\n").unwrap();
                std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
            }
        }
        // a newer version without the server binaries is skipped
        std::fs::create_dir_all(root.path().join("16").join("bin")).unwrap();
        assert_eq!(
            highest_debian_bindir(root.path()),
            Some(root.path().join("15").join("bin"))
        );
    }
}
