//! `UpstreamError`: every way a request to an upstream fails, naming the upstream and the
//! cause in words a caller can act on (its JSON-RPC mapping is the MCP layer's).

use std::time::Duration;

use rmcp::model::ErrorData;
use rmcp::service::{ClientInitializeError, ServiceError};

/// An upstream failure, naming the upstream and the cause.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("upstream {upstream:?}: connect failed: {cause}")]
    Connect { upstream: String, cause: String },
    #[error("upstream {upstream:?}: no answer to initialize within {after:?}")]
    ConnectTimeout { upstream: String, after: Duration },
    #[error("upstream {upstream:?}: {cause}")]
    Transport { upstream: String, cause: String },
    #[error("upstream {upstream:?}: no answer within {after:?}")]
    CallTimeout { upstream: String, after: Duration },
    #[error("upstream {upstream:?}: {}", error.message)]
    Rpc { upstream: String, error: ErrorData },
    #[error(
        "upstream {upstream:?}: circuit open after repeated connect failures; retry in {}s",
        retry_in.as_secs().max(1)
    )]
    CircuitOpen {
        upstream: String,
        retry_in: Duration,
    },
    #[error("upstream {upstream:?}: upstream connection limit ({max}) reached")]
    TooManyConnections { upstream: String, max: usize },
    #[error("upstream {upstream:?}: gave up reconnecting after {attempts} attempts: {last}")]
    GaveUp {
        upstream: String,
        attempts: u32,
        last: String,
    },
    #[error("upstream {upstream:?}: the proxy is shutting down")]
    ShuttingDown { upstream: String },
    #[error(
        "upstream {upstream:?} refused the credential (HTTP {status}): check the instance's \
         secrets for this upstream's headers"
    )]
    CredentialRefused { upstream: String, status: u16 },
}

impl UpstreamError {
    /// Short label for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Connect { .. } => "connect",
            Self::ConnectTimeout { .. } => "connect_timeout",
            Self::Transport { .. } => "transport",
            Self::CallTimeout { .. } => "timeout",
            Self::Rpc { .. } => "rpc",
            Self::CircuitOpen { .. } => "circuit_open",
            Self::TooManyConnections { .. } => "connection_limit",
            Self::GaveUp { .. } => "gave_up",
            Self::ShuttingDown { .. } => "shutting_down",
            Self::CredentialRefused { .. } => "credential_refused",
        }
    }

    pub(super) fn from_service(upstream: &str, e: ServiceError) -> Self {
        match e {
            ServiceError::McpError(error) => Self::Rpc {
                upstream: upstream.to_string(),
                error,
            },
            other => Self::Transport {
                upstream: upstream.to_string(),
                cause: concise_cause(&other),
            },
        }
    }
}

/// `e` and every distinct cause under it, joined by `: `.
pub(super) fn describe(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut next = e.source();
    while let Some(cause) = next {
        let words = cause.to_string();
        if !out.contains(&words) {
            out.push_str(": ");
            out.push_str(&words);
        }
        next = cause.source();
    }
    out
}

/// Why initializing an upstream failed, without rmcp's transport type names: what was being
/// sent and the innermost cause (its `Display` of a transport error names Rust types).
pub(super) fn connect_cause(e: &ClientInitializeError) -> String {
    match e {
        ClientInitializeError::TransportError { error, context } => {
            format!("{context}: {}", innermost(error))
        }
        other => other.to_string(),
    }
}

/// The last error in `e`'s source chain (`e` itself when it has none).
fn innermost<'e>(
    e: &'e (dyn std::error::Error + 'static),
) -> &'e (dyn std::error::Error + 'static) {
    let mut cause = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause
}

/// A transport failure in words a caller can act on. rmcp's own `Display` of a send error
/// names its Rust transport types; the innermost cause in the source chain is the actual
/// reason (e.g. `connection closed before message completed`).
fn concise_cause(e: &ServiceError) -> String {
    match e {
        ServiceError::TransportClosed => "the connection to the upstream is closed".into(),
        ServiceError::TransportSend(_) => {
            format!("connection to the upstream failed: {}", innermost(e))
        }
        other => other.to_string(),
    }
}
