//! HTTP-level faults that need no MCP logic, on wiremock: an "upstream" that answers every
//! request with a status, a wrong content type, or a slow response. Used by the proxy's tests
//! where a real MCP server would only get in the way.

use std::time::Duration;

use wiremock::matchers::any;
use wiremock::{Mock, MockServer, ResponseTemplate};

/// An HTTP server; its MCP URL is `format!("{}/mcp", server.uri())`.
pub use wiremock::MockServer as WireServer;

async fn serving(template: ResponseTemplate) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(any())
        .respond_with(template)
        .mount(&server)
        .await;
    server
}

/// Answers every request with `status` and a short text body.
pub async fn status(status: u16) -> MockServer {
    serving(
        ResponseTemplate::new(status)
            .set_body_string(format!("wiremock: injected status {status}")),
    )
    .await
}

/// Answers every request with 200 and a body of the wrong content type (`text/html`).
pub async fn wrong_content_type() -> MockServer {
    serving(
        ResponseTemplate::new(200)
            .insert_header("content-type", "text/html")
            .set_body_string("<html>not MCP</html>"),
    )
    .await
}

/// Answers every request with `status`, but only after `delay`.
pub async fn slow(status: u16, delay: Duration) -> MockServer {
    serving(ResponseTemplate::new(status).set_delay(delay)).await
}

/// The MCP endpoint URL of a wiremock server.
pub fn mcp_url(server: &MockServer) -> String {
    format!("{}/mcp", server.uri())
}
