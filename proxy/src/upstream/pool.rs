//! Connection management by mode. `shared`: one client per instance × upstream, connected
//! single-flight (concurrent requests wait on one connect) and replaced when it dies.
//! `per-request`: a fresh client that the request's [`Lease`] closes when it ends.
//!
//! Ownership: shared clients are owned by their slot in [`UpstreamPool`]; per-request clients
//! by their `Lease`. `Lease::release` is the normal close path; if a request is cancelled
//! mid-flight (client went away, timeout), `Lease`'s `Drop` hands the close to the tracker, so
//! the client is still closed and shutdown waits for it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio_util::task::TaskTracker;

use super::{ConnectContext, ToolsCache, UpstreamClient, UpstreamError};
use crate::model::{ConnectionMode, UpstreamConfig};

type Slot = Arc<tokio::sync::Mutex<Option<Arc<UpstreamClient>>>>;

pub struct UpstreamPool {
    slots: Mutex<HashMap<(String, String), Slot>>,
    ctx: ConnectContext,
    tools_cache: ToolsCache,
    tracker: TaskTracker,
}

/// A client borrowed for one request.
pub struct Lease {
    client: Arc<UpstreamClient>,
    /// Per-request clients are closed when the lease ends; shared ones stay in their slot.
    owned: bool,
    released: bool,
    tracker: TaskTracker,
}

impl std::ops::Deref for Lease {
    type Target = UpstreamClient;
    fn deref(&self) -> &UpstreamClient {
        &self.client
    }
}

impl Lease {
    /// Ends the lease, closing a per-request client before returning.
    pub async fn release(mut self) {
        self.released = true;
        if self.owned {
            self.client.close().await;
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if self.owned && !self.released {
            let client = self.client.clone();
            self.tracker.spawn(async move { client.close().await });
        }
    }
}

impl UpstreamPool {
    pub fn new(ctx: ConnectContext, tools_cache: ToolsCache, tracker: TaskTracker) -> Self {
        Self {
            slots: Mutex::default(),
            ctx,
            tools_cache,
            tracker,
        }
    }

    /// A client for `upstream` serving `instance_id`, per the upstream's connection mode.
    pub async fn acquire(
        &self,
        instance_id: &str,
        upstream: &UpstreamConfig,
    ) -> Result<Lease, UpstreamError> {
        match upstream.connection {
            ConnectionMode::Shared | ConnectionMode::PerSession => {
                self.shared(instance_id, upstream).await
            }
            ConnectionMode::PerRequest => {
                let client = UpstreamClient::connect(
                    upstream,
                    instance_id,
                    self.tools_cache.clone(),
                    &self.ctx,
                )
                .await?;
                Ok(Lease {
                    client: Arc::new(client),
                    owned: true,
                    released: false,
                    tracker: self.tracker.clone(),
                })
            }
        }
    }

    async fn shared(
        &self,
        instance_id: &str,
        upstream: &UpstreamConfig,
    ) -> Result<Lease, UpstreamError> {
        let slot = {
            let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
            slots
                .entry((instance_id.to_string(), upstream.name.clone()))
                .or_default()
                .clone()
        };
        // Holding the slot lock across connect is the single-flight: concurrent requests for
        // this instance × upstream wait here for the one connect instead of starting their own.
        let mut guard = slot.lock().await;
        if let Some(client) = guard.as_ref() {
            if !client.is_closed() && client.config() == upstream {
                return Ok(self.borrowed(client.clone()));
            }
            // Dead, or its config changed: close it (idempotent) and connect afresh.
            let stale = guard.take().expect("checked above");
            stale.close().await;
        }
        let client = Arc::new(
            UpstreamClient::connect(upstream, instance_id, self.tools_cache.clone(), &self.ctx)
                .await?,
        );
        *guard = Some(client.clone());
        Ok(self.borrowed(client))
    }

    fn borrowed(&self, client: Arc<UpstreamClient>) -> Lease {
        Lease {
            client,
            owned: false,
            released: false,
            tracker: self.tracker.clone(),
        }
    }

    /// Closes every shared client (shutdown). Per-request clients are closed by their leases.
    pub async fn close_all(&self) {
        let slots: Vec<Slot> = {
            let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
            slots.drain().map(|(_, s)| s).collect()
        };
        let closes = slots.into_iter().map(|slot| async move {
            if let Some(client) = slot.lock().await.take() {
                client.close().await;
            }
        });
        futures::future::join_all(closes).await;
    }
}
