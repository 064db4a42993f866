//! stdio transport: serves [`MockTools`] over stdin/stdout.

use std::sync::Arc;

use rmcp::{ServiceExt, service::ServerInitializeError};
use tokio_util::sync::CancellationToken;

use crate::MockTools;
use crate::faults::FaultState;

/// Serves the mock tools over stdin/stdout until stdin is closed (or the
/// peer otherwise ends the session). Nothing but MCP messages is written to
/// stdout. Stdin closing is a clean exit even before any `initialize` (e.g. a
/// 2026-07-28 client that only used `server/discover`-style requests).
pub async fn serve_stdio(state: Arc<FaultState>) -> anyhow::Result<()> {
    let stop = CancellationToken::new();
    let _stop = stop.clone().drop_guard();
    let service = match MockTools::new(state, stop)
        .serve(rmcp::transport::stdio_pipes())
        .await
    {
        Ok(service) => service,
        Err(ServerInitializeError::ConnectionClosed(context)) => {
            tracing::debug!(%context, "stdin closed before initialization");
            return Ok(());
        }
        Err(e) => return Err(e.into()),
    };
    let reason = service.waiting().await?;
    tracing::debug!(?reason, "stdio session ended");
    Ok(())
}
