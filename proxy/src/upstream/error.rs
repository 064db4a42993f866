//! `UpstreamError`: every way a request to an upstream fails, naming the upstream and the
//! cause in words a caller can act on (its JSON-RPC mapping is the MCP layer's).

use std::time::Duration;

use rmcp::model::ErrorData;
use rmcp::service::{ClientInitializeError, ServiceError};
use rmcp::transport::DynamicTransportError;
use rmcp::transport::streamable_http_client::StreamableHttpError;

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
                cause: concise_cause(upstream, &other),
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

/// Why initializing an upstream failed, in words a caller may see: what was being sent and a
/// plain cause. rmcp's own `Display` names Rust types (`Transport [..] error`, the `Debug` of
/// a message) and quotes what the upstream sent; that detail goes to the log at debug only.
pub(super) fn connect_cause(upstream: &str, e: &ClientInitializeError) -> String {
    tracing::debug!(upstream, error = %describe(e), "upstream initialize failed");
    match e {
        ClientInitializeError::TransportError { error, context } => {
            format!("{context}: {}", transport_cause(error))
        }
        ClientInitializeError::ExpectedInitResponse(_)
        | ClientInitializeError::ExpectedInitResult(_)
        | ClientInitializeError::ConflictInitResponseId(..)
        | ClientInitializeError::UncorrelatedErrorResponse { .. } => {
            "the upstream sent an invalid response to initialize".into()
        }
        ClientInitializeError::ConnectionClosed(context) => {
            format!("the upstream closed the connection ({context})")
        }
        // The upstream's own JSON-RPC error: its message is meant for a client.
        ClientInitializeError::JsonRpcError(error) => {
            format!("the upstream refused initialize: {}", error.message)
        }
        ClientInitializeError::NoCompatibleProtocolVersion {
            client_supported,
            server_supported,
        } => {
            let list = |v: &[rmcp::model::ProtocolVersion]| {
                v.iter()
                    .map(|p| p.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            format!(
                "no protocol version in common (the proxy speaks {}; the upstream {})",
                list(client_supported),
                list(server_supported)
            )
        }
        other => other.to_string(),
    }
}

/// A transport failure in plain words: the Streamable HTTP client's errors by their kind (a
/// body that is not JSON-RPC is "an invalid response", never the body), the others by their
/// innermost cause (an OS or HTTP client error, which names no Rust type).
fn transport_cause(e: &DynamicTransportError) -> String {
    type HttpError = StreamableHttpError<reqwest::Error>;
    match e.error.downcast_ref::<HttpError>() {
        Some(
            HttpError::UnexpectedServerResponse(_)
            | HttpError::Deserialize(_)
            | HttpError::UnexpectedContentType(_),
        ) => "the upstream sent an invalid response".into(),
        Some(HttpError::Sse(_)) => "the upstream sent an invalid event stream".into(),
        Some(HttpError::HttpStatus(status)) => {
            format!("the upstream answered HTTP {}", status.status)
        }
        _ => innermost(e).to_string(),
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

/// A transport failure in words a caller can act on (rmcp's own `Display` of a send error
/// names its Rust transport types); the whole chain goes to the log at debug.
fn concise_cause(upstream: &str, e: &ServiceError) -> String {
    tracing::debug!(upstream, error = %describe(e), "upstream request failed");
    match e {
        ServiceError::TransportClosed => "the connection to the upstream is closed".into(),
        ServiceError::TransportSend(error) => {
            format!(
                "connection to the upstream failed: {}",
                transport_cause(error)
            )
        }
        ServiceError::UnexpectedResponse => "the upstream sent an invalid response".into(),
        other => other.to_string(),
    }
}
