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

/// Runs `mcp-proxy ARGS` to completion; its stdout and stderr, or an error with both.
async fn cli(bin: &Path, args: &[&str]) -> anyhow::Result<(String, String)> {
    let out = crate::process::spawn::command(bin, nix::sys::signal::Signal::SIGTERM, false)
        .args(args)
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

/// `mcp-proxy seed SEED --database-url DB`.
pub async fn seed(bin: &Path, seed: &Path, db: &str) -> anyhow::Result<()> {
    let seed = seed.display().to_string();
    cli(bin, &["seed", &seed, "--database-url", db]).await?;
    Ok(())
}

/// `mcp-proxy keys create --instance INSTANCE`: the new key's id and secret.
pub async fn create_key(bin: &Path, instance: &str, db: &str) -> anyhow::Result<(String, String)> {
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
pub async fn revoke_key(bin: &Path, id: &str, db: &str) -> anyhow::Result<()> {
    cli(bin, &["keys", "revoke", id, "--database-url", db]).await?;
    Ok(())
}

/// A free loopback address for the proxy, or `listen` if it is free.
pub fn proxy_address(listen: Option<SocketAddr>) -> anyhow::Result<SocketAddr> {
    crate::process::port::addr_or_free(listen, "`target.listen`")
}

/// The bundled proxy's seed for `scenario`: one upstream per `[[upstream]]` (HTTP mocks at
/// `mocks`' URLs, trusting their CA when they serve TLS; stdio mocks as the proxy's children,
/// keeping their counters in `stats_dir`) and one instance with its key.
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
                t.insert("transport".into(), Value::String("streamable-http".into()));
                let mock = mocks.get(&u.name);
                t.insert(
                    "url".into(),
                    Value::String(mock.map(|m| m.url.clone()).unwrap_or_default()),
                );
                if let Some(ca) = mock.and_then(|m| m.ca_file.as_ref()) {
                    t.insert("ca_file".into(), Value::String(ca.display().to_string()));
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
    let mut root = Table::new();
    root.insert("upstream".into(), Value::Array(upstreams));
    root.insert(
        "instance".into(),
        Value::Array(vec![Value::Table(instance)]),
    );
    toml::to_string(&root).expect("a table serializes")
}
