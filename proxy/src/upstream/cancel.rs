//! Upstream cancellation that survives the connection being closed right after.
//!
//! When a call's future is dropped (downstream cancelled or went away, timeout), its request
//! id is queued here and a tracked task sends `notifications/cancelled` for it. `close()`
//! flushes the queue and waits for any send in progress *before* closing the transport, so a
//! per-request client never closes with the cancel still unsent (which would leave the
//! upstream working on a request nobody reads).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rmcp::RoleClient;
use rmcp::model::{CancelledNotificationParam, RequestId};
use rmcp::service::Peer;
use tokio_util::task::TaskTracker;

const SEND_TIMEOUT: Duration = Duration::from_secs(1);

pub struct CancelQueue {
    peer: Peer<RoleClient>,
    ids: Mutex<Vec<RequestId>>,
    sending: tokio::sync::Mutex<()>,
}

impl CancelQueue {
    pub fn new(peer: Peer<RoleClient>) -> Arc<Self> {
        Arc::new(Self {
            peer,
            ids: Mutex::default(),
            sending: tokio::sync::Mutex::new(()),
        })
    }

    /// Sends a cancel for every queued id; waits for a concurrent flush to finish first.
    pub async fn flush(&self) {
        let _sending = self.sending.lock().await;
        let ids = std::mem::take(&mut *self.ids.lock().unwrap_or_else(|p| p.into_inner()));
        for id in ids {
            let param = CancelledNotificationParam::new(
                Some(id),
                Some("abandoned by the downstream caller".into()),
            );
            if tokio::time::timeout(SEND_TIMEOUT, self.peer.notify_cancelled(param))
                .await
                .is_err()
            {
                tracing::debug!("cancel notification not sent within {SEND_TIMEOUT:?}");
            }
        }
    }
}

/// Armed while a call awaits its response; dropped armed, it queues the cancel.
pub struct AbandonGuard {
    queue: Arc<CancelQueue>,
    tracker: TaskTracker,
    id: Option<RequestId>,
}

impl AbandonGuard {
    pub fn new(queue: &Arc<CancelQueue>, tracker: &TaskTracker, id: RequestId) -> Self {
        Self {
            queue: queue.clone(),
            tracker: tracker.clone(),
            id: Some(id),
        }
    }

    pub fn disarm(mut self) {
        self.id = None;
    }
}

impl Drop for AbandonGuard {
    fn drop(&mut self) {
        let Some(id) = self.id.take() else { return };
        self.queue
            .ids
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(id);
        let queue = self.queue.clone();
        self.tracker.spawn(async move { queue.flush().await });
    }
}
