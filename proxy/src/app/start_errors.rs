//! How a failed start names what to fix: the setting (flag and variable), its value (a
//! database URL without its password) and the underlying cause, which follows in the error's
//! chain. `main` prints the chain once, as `error: …`.

use std::net::SocketAddr;

use anyhow::Context;
use tokio::net::TcpListener;

use crate::data::url::redact;

/// Binds the `--listen` address; a failure names it (e.g. another process holds the port).
pub async fn bind(listen: SocketAddr) -> anyhow::Result<TcpListener> {
    TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen} (--listen / MCP_PROXY_LISTEN)"))
}

/// What a database error at start is about: the URL (password redacted) and where it came from.
pub fn database(url: &str) -> String {
    format!(
        "cannot open the database {} (--database-url / MCP_PROXY_DATABASE_URL / DATABASE_URL)",
        redact(url)
    )
}

/// What a seed error of `serve` is about (the cause names the file).
pub const SEED: &str = "--seed (MCP_PROXY_SEED)";
