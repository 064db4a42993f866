//! The bundled `mcp-proxy`: everything the harness knows about its command line (`serve`,
//! `seed`, `keys create`, `keys revoke`, `--version`, `--db-pool-size`), its HTTP paths
//! (`/mcp/INSTANCE`, `/ready`, `/metrics`) and its seed file.
//!
//! Invariant: no other file spells an `mcp-proxy` flag or path; a change to the proxy's CLI
//! is a change here.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};

use super::{MockUrls, mock_args};
use crate::scenario::{MockKind, Scenario};

/// How to start one `mcp-proxy serve`.
pub struct ProxySpec<'a> {
    /// Process name: `proxy`, or `proxy-N` for replica N.
    pub name: &'a str,
    pub listen: SocketAddr,
    pub database_url: &'a str,
    pub seed: Option<&'a Path>,
    pub extra: &'a [String],
    pub ready_timeout: Duration,
    /// The run's throw-away key for the instance secrets (see [`SecretKey::for_scenario`]).
    pub secret_key: Option<&'a SecretKey>,
}

/// The variable `mcp-proxy` reads its key for sealing instance secrets from.
pub const SECRET_KEY_ENV: &str = "MCP_PROXY_SECRET_KEY";

/// A throw-away key for the proxy's instance secrets: 32 random bytes as 64 lowercase hex
/// digits, made once per run and given to every `mcp-proxy` of it (the replicas share the
/// store, so they share the key). `Debug` hides it; it is never written to a file.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretKey(String);

impl SecretKey {
    /// A fresh key from the system's random source.
    pub fn generate() -> anyhow::Result<SecretKey> {
        use std::io::Read;
        let mut bytes = [0u8; 32];
        std::fs::File::open("/dev/urandom")
            .and_then(|mut f| f.read_exact(&mut bytes))
            .context("cannot read 32 random bytes for MCP_PROXY_SECRET_KEY from /dev/urandom")?;
        Ok(SecretKey(
            bytes.iter().map(|b| format!("{b:02x}")).collect(),
        ))
    }

    /// A key when the scenario gives the proxy secrets (`target.secrets`), else none (the
    /// proxy then inherits the harness's environment unchanged).
    pub fn for_scenario(scenario: &Scenario) -> anyhow::Result<Option<SecretKey>> {
        if scenario.target.secrets.is_empty() {
            return Ok(None);
        }
        SecretKey::generate().map(Some)
    }

    /// The hex digits.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretKey(***)")
    }
}

/// The environment an `mcp-proxy` of this run gets on top of the harness's: the secret key,
/// when there is one.
pub fn proxy_env(key: Option<&SecretKey>) -> Vec<(&'static str, String)> {
    key.map(|k| (SECRET_KEY_ENV, k.expose().to_string()))
        .into_iter()
        .collect()
}

/// The environment of `mcp-proxy serve` for `spec` (see [`proxy_env`]).
pub fn serve_env(spec: &ProxySpec<'_>) -> Vec<(&'static str, String)> {
    proxy_env(spec.secret_key)
}

/// `mcp-proxy serve` for `spec`: its address, database, seed, and the scenario's extra flags.
pub fn serve_args(spec: &ProxySpec<'_>) -> Vec<String> {
    let mut args = vec![
        "serve".to_string(),
        "--listen".into(),
        spec.listen.to_string(),
        "--database-url".into(),
        spec.database_url.to_string(),
    ];
    if let Some(seed) = spec.seed {
        args.push("--seed".into());
        args.push(seed.display().to_string());
    }
    args.extend(spec.extra.iter().cloned());
    args
}

/// The database URL of a proxy on its own SQLite file.
pub fn sqlite_url(db: &Path) -> String {
    format!("sqlite://{}?mode=rwc", db.display())
}

/// The proxy's readiness path (also HAProxy's health check).
pub const READY_PATH: &str = "/ready";

/// The proxy's readiness probe at `addr`.
pub fn ready_url(addr: SocketAddr) -> String {
    format!("http://{addr}{READY_PATH}")
}

/// The proxy's Prometheus metrics at `addr`.
pub fn metrics_url(addr: SocketAddr) -> String {
    format!("http://{addr}/metrics")
}

/// The MCP endpoint of `instance` at `addr`.
pub fn mcp_url(addr: SocketAddr, instance: &str) -> String {
    format!("http://{addr}/mcp/{instance}")
}

/// The proxy's database pool size from the scenario's `proxy_args` (its default: 10).
pub fn db_pool_size(proxy_args: &[String]) -> f64 {
    proxy_args
        .iter()
        .position(|a| a == "--db-pool-size")
        .and_then(|i| proxy_args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(10.0)
}

/// `mcp-proxy --version`, if it answers.
pub fn version(bin: &Path) -> Option<String> {
    std::process::Command::new(bin)
        .arg("--version")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
}

/// Runs `mcp-proxy ARGS` (with the run's secret key, if any) to completion; its stdout and
/// stderr, or an error with both.
async fn cli(
    bin: &Path,
    args: &[&str],
    key: Option<&SecretKey>,
) -> anyhow::Result<(String, String)> {
    let out = crate::process::spawn::command(bin, nix::sys::signal::Signal::SIGTERM, false)
        .args(args)
        .envs(proxy_env(key))
        .output()
        .await
        .with_context(|| format!("cannot run {}", bin.display()))?;
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    if !out.status.success() {
        bail!(
            "`mcp-proxy {}` failed ({}): {}",
            args.first().copied().unwrap_or_default(),
            out.status,
            stderr.trim()
        );
    }
    Ok((stdout, stderr))
}

/// `mcp-proxy seed SEED --database-url DB` (with the key that seals the seed's secrets).
pub async fn seed(
    bin: &Path,
    seed: &Path,
    db: &str,
    key: Option<&SecretKey>,
) -> anyhow::Result<()> {
    let seed = seed.display().to_string();
    cli(bin, &["seed", &seed, "--database-url", db], key).await?;
    Ok(())
}

/// `mcp-proxy keys create --instance INSTANCE`: the new key's id and secret.
pub async fn create_key(
    bin: &Path,
    instance: &str,
    db: &str,
    key: Option<&SecretKey>,
) -> anyhow::Result<(String, String)> {
    let (stdout, stderr) = cli(
        bin,
        &[
            "keys",
            "create",
            "--instance",
            instance,
            "--database-url",
            db,
        ],
        key,
    )
    .await?;
    let id = stderr
        .split_whitespace()
        .skip_while(|w| *w != "key")
        .nth(1)
        .ok_or_else(|| anyhow!("`mcp-proxy keys create` did not name the key: {stderr}"))?
        .to_string();
    Ok((id, stdout.trim().to_string()))
}

/// `mcp-proxy keys revoke KEY_ID` (the change is committed when it exits).
pub async fn revoke_key(
    bin: &Path,
    id: &str,
    db: &str,
    key: Option<&SecretKey>,
) -> anyhow::Result<()> {
    cli(bin, &["keys", "revoke", id, "--database-url", db], key).await?;
    Ok(())
}

/// A free loopback address for the proxy, or `listen` if it is free.
pub fn proxy_address(listen: Option<SocketAddr>) -> anyhow::Result<SocketAddr> {
    crate::process::port::addr_or_free(listen, "`target.listen`")
}

/// The bundled proxy's seed for `scenario`: one upstream per `[[upstream]]` (HTTP mocks at
/// `mocks`' URLs, over `streamable-http` or `sse` (their `/sse`) as the upstream's `transport`
/// says, trusting their CA when they serve TLS, with their `headers` templates; stdio
/// mocks as the proxy's children, keeping their counters in `stats_dir`) and one instance with
/// its key and `target.secrets` (`[instance.secrets]`, the only place their values are
/// written: see [`write_seed`]).
pub fn seed_toml(
    scenario: &Scenario,
    mock_bin: &Path,
    mocks: &BTreeMap<String, MockUrls>,
    stats_dir: Option<&Path>,
) -> String {
    use toml::{Table, Value};
    let mut upstreams = Vec::new();
    for u in &scenario.upstreams {
        let mut t = Table::new();
        t.insert("name".into(), Value::String(u.name.clone()));
        match u.mock {
            MockKind::Serve => {
                let transport = if u.sse() { "sse" } else { "streamable-http" };
                t.insert("transport".into(), Value::String(transport.into()));
                let mock = mocks.get(&u.name);
                t.insert(
                    "url".into(),
                    Value::String(mock.map(|m| m.url.clone()).unwrap_or_default()),
                );
                if let Some(ca) = mock.and_then(|m| m.ca_file.as_ref()) {
                    t.insert("ca_file".into(), Value::String(ca.display().to_string()));
                }
                if !u.headers.is_empty() {
                    let headers = u
                        .headers
                        .iter()
                        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                        .collect();
                    t.insert("headers".into(), Value::Table(headers));
                }
            }
            MockKind::Stdio => {
                t.insert("transport".into(), Value::String("stdio".into()));
                t.insert(
                    "command".into(),
                    Value::String(mock_bin.display().to_string()),
                );
                let mut args = vec![Value::String("stdio".into())];
                args.extend(mock_args(u).into_iter().map(Value::String));
                t.insert("args".into(), Value::Array(args));
                if let Some(dir) = stats_dir {
                    let mut env = Table::new();
                    env.insert(
                        "MOCK_MCP_STATS_DIR".into(),
                        Value::String(dir.display().to_string()),
                    );
                    t.insert("env".into(), Value::Table(env));
                }
            }
        }
        t.insert("connection".into(), Value::String(u.connection.clone()));
        upstreams.push(Value::Table(t));
    }
    let mut instance = Table::new();
    instance.insert("id".into(), Value::String(scenario.target.instance.clone()));
    instance.insert(
        "upstreams".into(),
        Value::Array(
            scenario
                .upstreams
                .iter()
                .map(|u| Value::String(u.name.clone()))
                .collect(),
        ),
    );
    instance.insert(
        "api_keys".into(),
        Value::Array(vec![Value::String(scenario.target.api_key.clone())]),
    );
    instance.insert(
        "prefix".into(),
        Value::String(scenario.target.prefix.clone()),
    );
    let secrets = scenario.target.secrets.expose();
    if !secrets.is_empty() {
        let secrets = secrets
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect();
        instance.insert("secrets".into(), Value::Table(secrets));
    }
    let mut root = Table::new();
    root.insert("upstream".into(), Value::Array(upstreams));
    root.insert(
        "instance".into(),
        Value::Array(vec![Value::Table(instance)]),
    );
    toml::to_string(&root).expect("a table serializes")
}

/// Writes `seed` (from [`seed_toml`]) to `path`, readable by its owner only: it holds the
/// instance secrets.
pub fn write_seed(path: &Path, seed: &str) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    // an existing file keeps its mode on open
    f.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .with_context(|| format!("cannot restrict {}", path.display()))?;
    f.write_all(seed.as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))
}

#[cfg(test)]
#[path = "bundled_tests.rs"]
mod tests;
