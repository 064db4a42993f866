//! The cross-replica invalidation payload (what a `pg_notify` on the notify channel says) and
//! the checks on channel names and notify URLs. Pure: the store sends these
//! (the data layer's `store`), its invalidation listener applies them.

use std::str::FromStr;

/// The longest channel name PostgreSQL keeps (`NAMEDATALEN - 1`); longer ones are truncated.
const MAX_CHANNEL_LEN: usize = 63;

/// What a notification tells a replica to drop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invalidation {
    /// One API key, by its SHA-256 (revoked, or created: unknown keys are cached as absent).
    Key([u8; 32]),
    /// One instance's config and merged lists.
    Instance(String),
    /// Everything cached (a seed was applied; or the listener (re)connected and may have missed
    /// notifications).
    All,
}

/// A payload that is not one of ours (logged and ignored).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("unknown invalidation payload (expected `all`, `key:HEX64` or `instance:ID`)")]
    Unknown,
    #[error("key payload is not 64 hex digits")]
    BadKey,
    #[error("instance payload without an id")]
    EmptyInstance,
}

impl Invalidation {
    /// The notification payload: `all`, `key:<64 hex digits>` or `instance:<id>`.
    pub fn encode(&self) -> String {
        match self {
            Invalidation::Key(hash) => format!("key:{}", hex::encode(hash)),
            Invalidation::Instance(id) => format!("instance:{id}"),
            Invalidation::All => "all".to_string(),
        }
    }

    /// The `kind` label of `mcp_proxy_invalidations_total`.
    pub fn kind(&self) -> &'static str {
        match self {
            Invalidation::Key(_) => "key",
            Invalidation::Instance(_) => "instance",
            Invalidation::All => "all",
        }
    }
}

impl FromStr for Invalidation {
    type Err = ParseError;

    fn from_str(payload: &str) -> Result<Self, ParseError> {
        if payload == "all" {
            return Ok(Invalidation::All);
        }
        if let Some(hex) = payload.strip_prefix("key:") {
            let mut hash = [0u8; 32];
            hex::decode_to_slice(hex, &mut hash).map_err(|_| ParseError::BadKey)?;
            return Ok(Invalidation::Key(hash));
        }
        if let Some(id) = payload.strip_prefix("instance:") {
            if id.is_empty() {
                return Err(ParseError::EmptyInstance);
            }
            return Ok(Invalidation::Instance(id.to_string()));
        }
        Err(ParseError::Unknown)
    }
}

/// Checks a notify channel name: a plain lower-case identifier `[a-z_][a-z0-9_]*` of at most
/// 63 bytes, so it means the same to `pg_notify` and to `LISTEN` and is never truncated.
pub fn check_channel(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_');
    let rest_ok = chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if !first_ok || !rest_ok {
        return Err(format!(
            "notify channel {name:?} is not a plain identifier [a-z_][a-z0-9_]*"
        ));
    }
    if name.len() > MAX_CHANNEL_LEN {
        return Err(format!(
            "notify channel {name:?} is longer than {MAX_CHANNEL_LEN} bytes"
        ));
    }
    Ok(())
}

/// A clap value parser for `--notify-channel`.
pub fn parse_channel(name: &str) -> Result<String, String> {
    check_channel(name).map(|()| name.to_string())
}

/// A clap value parser for `--notify-url`: it must be a PostgreSQL URL.
pub fn parse_notify_url(url: &str) -> Result<String, String> {
    if is_postgres_url(url) {
        Ok(url.to_string())
    } else {
        Err("the notify URL must be a postgres:// or postgresql:// URL".to_string())
    }
}

/// Whether `url` is a PostgreSQL database URL (the only database with replicas to tell).
pub fn is_postgres_url(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

#[cfg(test)]
#[path = "invalidation_tests.rs"]
mod tests;
