//! Domain types shared by the seed file, the store, the caches and the handler. No IO here.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// How an upstream is reached.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum UpstreamTransport {
    StreamableHttp {
        url: String,
        /// PEM roots trusted for this `https://` upstream besides the platform's (a private
        /// CA); read where the proxy runs, at each connect.
        ca_file: Option<String>,
    },
    Stdio {
        command: String,
        args: Vec<String>,
        env: BTreeMap<String, String>,
    },
}

/// How upstream clients are shared between downstream requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ConnectionMode {
    /// One pooled client per instance × upstream (default).
    #[default]
    Shared,
    /// Connect, call, close for every request (the Cloud Run model where the original leaks lived).
    PerRequest,
    /// One client per downstream session, closed with it.
    PerSession,
}

impl ConnectionMode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Shared => "shared",
            Self::PerRequest => "per-request",
            Self::PerSession => "per-session",
        }
    }
}

impl FromStr for ConnectionMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "shared" => Ok(Self::Shared),
            "per-request" => Ok(Self::PerRequest),
            "per-session" => Ok(Self::PerSession),
            other => Err(format!(
                "unknown connection mode {other:?} (expected \"shared\", \"per-request\" or \"per-session\")"
            )),
        }
    }
}

/// When tool names are prefixed with `{namespace}__`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PrefixMode {
    /// Prefix only when the instance has more than one upstream.
    #[default]
    Auto,
    Always,
    Never,
}

impl PrefixMode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::Always => "always",
            Self::Never => "never",
        }
    }

    /// Whether names are prefixed for an instance with `upstreams` upstreams.
    pub fn prefixes(self, upstreams: usize) -> bool {
        match self {
            Self::Auto => upstreams > 1,
            Self::Always => true,
            Self::Never => false,
        }
    }
}

impl FromStr for PrefixMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "auto" => Ok(Self::Auto),
            "always" => Ok(Self::Always),
            "never" => Ok(Self::Never),
            other => Err(format!(
                "unknown prefix mode {other:?} (expected \"auto\", \"always\" or \"never\")"
            )),
        }
    }
}

/// One upstream MCP server as configured.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UpstreamConfig {
    /// Namespace slug, `[a-z0-9-]+`.
    pub name: String,
    pub transport: UpstreamTransport,
    pub connection: ConnectionMode,
}

/// Everything the proxy needs to serve one instance, loaded in one query and cached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceConfig {
    pub id: String,
    pub prefix: PrefixMode,
    /// In seed order.
    pub upstreams: Vec<UpstreamConfig>,
}

impl InstanceConfig {
    pub fn upstream(&self, name: &str) -> Option<&UpstreamConfig> {
        self.upstreams.iter().find(|u| u.name == name)
    }

    pub fn prefixed(&self) -> bool {
        self.prefix.prefixes(self.upstreams.len())
    }
}

/// A stored API key. The plaintext is never stored; `key_hash` is its SHA-256.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyRecord {
    pub id: String,
    pub instance_id: String,
    pub key_hash: [u8; 32],
    pub revoked: bool,
}

/// Whether `name` is a valid namespace slug: non-empty `[a-z0-9-]+`.
pub fn is_valid_slug(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

impl fmt::Display for UpstreamTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::StreamableHttp { url, .. } => write!(f, "streamable-http {url}"),
            Self::Stdio { command, args, .. } => write!(f, "stdio {command} {}", args.join(" ")),
        }
    }
}
