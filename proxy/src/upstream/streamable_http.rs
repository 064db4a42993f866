//! Streamable HTTP upstream transport: one shared `reqwest::Client` (connection pooling) for
//! every upstream; each connection gets its own rmcp transport and MCP session.

use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;

/// The rmcp transport for `url`. Nothing is opened until the client initializes over it.
pub fn transport(
    http: &reqwest::Client,
    url: &str,
) -> StreamableHttpClientTransport<reqwest::Client> {
    StreamableHttpClientTransport::with_client(
        http.clone(),
        StreamableHttpClientTransportConfig::with_uri(url.to_string()),
    )
}
