//! Domain types shared by the seed file, the store, the caches and the handler. No IO here.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::domain::secrets::Secret;
use crate::domain::template;

/// How an upstream is reached.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum UpstreamTransport {
    StreamableHttp {
        url: String,
        /// PEM roots trusted for this `https://` upstream besides the platform's (a private
        /// CA); read where the proxy runs, at each connect.
        ca_file: Option<String>,
        /// Sent with every request to the upstream; values are `${NAME}` templates.
        headers: BTreeMap<String, String>,
    },
    /// The 2024-11-05 HTTP+SSE transport: `GET url` is the event stream, whose `endpoint`
    /// event names where messages are POSTed. Same TLS and headers as Streamable HTTP.
    Sse {
        url: String,
        ca_file: Option<String>,
        headers: BTreeMap<String, String>,
    },
    Stdio {
        command: String,
        args: Vec<String>,
        /// The child's environment besides the proxy's; values are `${NAME}` templates.
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
    /// A caller's header (key) sent to the upstream as another (value); `per-session` and
    /// `per-request` upstreams only.
    pub forward_headers: BTreeMap<String, String>,
    /// What fills the templates for one instance and caller; empty as seeded.
    pub credentials: Credentials,
}

/// What fills an upstream's templates for one instance (its secrets) and, on a `per-session`
/// or `per-request` upstream, for one caller (the headers it forwards). Never stored with the
/// upstream. Part of the config a connection was made with, so a connection is only reused
/// for the same credentials, and a changed secret replaces it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Credentials {
    /// The instance's secrets this upstream's templates name.
    pub secrets: BTreeMap<String, Secret>,
    /// Upstream header name → the caller's value.
    pub forwarded: BTreeMap<String, Secret>,
}

/// A template names a secret its instance does not have.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("upstream {upstream:?} needs the secret ${{{name}}}, which this instance does not have")]
pub struct MissingSecret {
    pub upstream: String,
    pub name: String,
}

impl UpstreamConfig {
    /// The templates: header values (HTTP) or env values (stdio).
    fn templates(&self) -> &BTreeMap<String, String> {
        match &self.transport {
            UpstreamTransport::StreamableHttp { headers, .. }
            | UpstreamTransport::Sse { headers, .. } => headers,
            UpstreamTransport::Stdio { env, .. } => env,
        }
    }

    /// Every secret name the templates use (a malformed stored template names none; it fails
    /// when rendered).
    pub fn secret_names(&self) -> BTreeSet<&str> {
        self.templates()
            .values()
            .flat_map(|t| template::names(t).unwrap_or_default())
            .collect()
    }

    /// The templates rendered with [`Credentials::secrets`], then the forwarded headers: the
    /// upstream's headers (HTTP) or the child's extra environment (stdio).
    pub fn rendered(&self) -> Result<Vec<(&str, Secret)>, MissingSecret> {
        let mut out = Vec::with_capacity(self.templates().len() + self.credentials.forwarded.len());
        for (key, value) in self.templates() {
            let value = template::render(value, &self.credentials.secrets).map_err(|name| {
                MissingSecret {
                    upstream: self.name.clone(),
                    name,
                }
            })?;
            out.push((key.as_str(), value));
        }
        out.extend(
            self.credentials
                .forwarded
                .iter()
                .map(|(k, v)| (k.as_str(), v.clone())),
        );
        Ok(out)
    }
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

impl UpstreamTransport {
    /// The seed's (and the store's) name of the transport.
    pub fn wire(&self) -> &'static str {
        match self {
            Self::StreamableHttp { .. } => "streamable-http",
            Self::Sse { .. } => "sse",
            Self::Stdio { .. } => "stdio",
        }
    }
}

impl fmt::Display for UpstreamTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::StreamableHttp { url, .. } => write!(f, "streamable-http {url}"),
            Self::Sse { url, .. } => write!(f, "sse {url}"),
            Self::Stdio { command, args, .. } => write!(f, "stdio {command} {}", args.join(" ")),
        }
    }
}
