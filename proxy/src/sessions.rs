//! Downstream sessions (2025-11-25 era, `Mcp-Session-Id`): how many are live, the cap on
//! them, and fan-out of `notifications/tools/list_changed` to every session of an instance.
//!
//! Ownership: rmcp's session manager owns each session (and reaps it after the idle TTL);
//! the session's handler owns its [`SessionScope`], so the scope lives exactly as long as the
//! session. Dropping the scope unregisters its peer, releases its slot in the count and closes
//! the session's own upstream clients (`per-session` mode). Debounce timers run on the state's
//! tracker and stop on shutdown.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rmcp::RoleServer;
use rmcp::service::Peer;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tokio_util::task::task_tracker::TaskTrackerToken;

use crate::cache::ToolsCache;
use crate::upstream::manager::SessionUpstreams;

/// How long one `list_changed` send to one session may take before it is given up.
const NOTIFY_TIMEOUT: Duration = Duration::from_secs(1);

pub struct Sessions {
    /// One token per live session: `len()` is the count, `wait()` waits for all to end.
    live: TaskTracker,
    max: usize,
    debounce: Duration,
    tools: ToolsCache,
    peers: Mutex<HashMap<Arc<str>, InstancePeers>>,
    next_id: AtomicU64,
    /// Debounce timers run here (the state's tracker), and stop when `stop` is cancelled.
    background: TaskTracker,
    stop: CancellationToken,
}

#[derive(Default)]
struct InstancePeers {
    peers: HashMap<u64, Peer<RoleServer>>,
    /// A broadcast is scheduled; notifications until it fires are folded into it.
    pending: bool,
}

impl Sessions {
    pub fn new(
        max: usize,
        debounce: Duration,
        tools: ToolsCache,
        background: TaskTracker,
        stop: CancellationToken,
    ) -> Self {
        Self {
            live: TaskTracker::new(),
            max,
            debounce,
            tools,
            peers: Mutex::default(),
            next_id: AtomicU64::new(0),
            background,
            stop,
        }
    }

    /// Live downstream sessions (all instances).
    pub fn count(&self) -> usize {
        self.live.len()
    }

    /// True when a new session would exceed the cap.
    pub fn at_capacity(&self) -> bool {
        self.count() >= self.max
    }

    /// Registers a session of `instance` reachable through `peer`.
    pub fn open(
        self: &Arc<Self>,
        instance: Arc<str>,
        peer: Peer<RoleServer>,
        upstreams: SessionUpstreams,
    ) -> SessionScope {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        #[cfg(feature = "planted-leaks")]
        if crate::planted::active(crate::planted::Leak::Timer) {
            // a per-session heartbeat nobody clears: it outlives its session
            tokio::spawn(async {
                let mut tick = tokio::time::interval(Duration::from_secs(1));
                loop {
                    tick.tick().await;
                }
            });
        }
        self.lock()
            .entry(instance.clone())
            .or_default()
            .peers
            .insert(id, peer);
        SessionScope {
            id,
            instance,
            sessions: self.clone(),
            _live: self.live.token(),
            upstreams,
        }
    }

    /// An upstream of `instance` changed its tools: drop the cached merged list now, and tell
    /// every session of the instance once the burst is over (one notification per debounce
    /// window, however many upstream notifications arrived in it).
    pub async fn tools_changed(self: &Arc<Self>, instance: &str) {
        self.tools.invalidate(instance).await;
        {
            let mut peers = self.lock();
            let Some(entry) = peers.get_mut(instance) else {
                return;
            };
            if entry.pending {
                return;
            }
            entry.pending = true;
        }
        let this = self.clone();
        let instance: Arc<str> = Arc::from(instance);
        self.background.spawn(async move {
            tokio::select! {
                _ = tokio::time::sleep(this.debounce) => {}
                _ = this.stop.cancelled() => return,
            }
            // The list may have been rebuilt during the window from a half-updated upstream.
            this.tools.invalidate(&instance).await;
            let targets: Vec<Peer<RoleServer>> = {
                let mut peers = this.lock();
                let Some(entry) = peers.get_mut(&instance) else {
                    return;
                };
                entry.pending = false;
                let targets: Vec<Peer<RoleServer>> = entry.peers.values().cloned().collect();
                if targets.is_empty() {
                    peers.remove(&instance);
                }
                targets
            };
            let sends = targets.iter().map(|peer| async move {
                let sent = tokio::time::timeout(NOTIFY_TIMEOUT, peer.notify_tool_list_changed());
                if !matches!(sent.await, Ok(Ok(()))) {
                    tracing::debug!("list_changed not delivered to a session (closing or slow)");
                }
            });
            futures::future::join_all(sends).await;
            tracing::debug!(%instance, sessions = targets.len(), "tools/list_changed forwarded");
        });
    }

    /// Waits up to `timeout` for every session to end (after the sessions token was
    /// cancelled); returns how many are still live.
    pub async fn wait_closed(&self, timeout: Duration) -> usize {
        self.live.close();
        let _ = tokio::time::timeout(timeout, self.live.wait()).await;
        self.count()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Arc<str>, InstancePeers>> {
        self.peers.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Everything one downstream session owns besides rmcp's own state. Dropped with the session.
pub struct SessionScope {
    id: u64,
    instance: Arc<str>,
    sessions: Arc<Sessions>,
    _live: TaskTrackerToken,
    /// The session's own upstream clients (`per-session` mode); closed when it drops.
    pub upstreams: SessionUpstreams,
}

impl Drop for SessionScope {
    fn drop(&mut self) {
        let mut peers = self.sessions.lock();
        if let Some(entry) = peers.get_mut(&self.instance) {
            entry.peers.remove(&self.id);
            if entry.peers.is_empty() && !entry.pending {
                peers.remove(&self.instance);
            }
        }
    }
}
