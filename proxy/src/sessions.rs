//! Downstream sessions (2025-11-25 era, `Mcp-Session-Id`): how many are live, the cap on
//! them, and what reaches them unasked: the debounced `list_changed` fan-out (tools,
//! resources, prompts) to every session of an instance, `notifications/resources/updated` to
//! the sessions subscribed to the URI, and upstream log messages at or above each session's
//! `logging/setLevel`.
//!
//! Ownership: rmcp's session manager owns each session (and reaps it after the idle TTL);
//! the session's handler owns its [`SessionScope`], so the scope lives exactly as long as the
//! session. Dropping the scope unregisters its peer, releases its slot in the count and closes
//! the session's own upstream clients (`per-session` mode). Debounce timers run on the state's
//! tracker and stop on shutdown.

// Logging is deprecated by SEP-2577 but is part of 2025-11-25, which this proxy carries.
#![allow(deprecated)]

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rmcp::RoleServer;
use rmcp::model::{
    LoggingLevel, LoggingMessageNotificationParam, ResourceUpdatedNotificationParam,
};
use rmcp::model::{
    PromptListChangedNotification, ResourceListChangedNotification, ResourceUpdatedNotification,
    ServerNotification, ToolListChangedNotification,
};
use rmcp::service::{Peer, SubscriptionSink};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tokio_util::task::task_tracker::TaskTrackerToken;

use crate::data::cache::{CatalogCache, ToolsCache};
use crate::upstream::SessionLink;
pub use crate::upstream::events::ListKind;
use crate::upstream::events::SessionEvents;
use crate::upstream::manager::SessionUpstreams;
use futures::future::BoxFuture;

/// How long one notification send to one session may take before it is given up.
const NOTIFY_TIMEOUT: Duration = Duration::from_secs(1);

/// The level a session gets upstream log messages at until it sends `logging/setLevel`.
pub const DEFAULT_LOG_LEVEL: LoggingLevel = LoggingLevel::Info;

/// Severity order of RFC 5424 levels (rmcp's enum has none).
fn rank(level: LoggingLevel) -> u8 {
    level as u8
}

pub struct Sessions {
    /// One token per live session: `len()` is the count, `wait()` waits for all to end.
    live: TaskTracker,
    max: usize,
    debounce: Duration,
    tools: ToolsCache,
    catalogs: CatalogCache,
    peers: Mutex<HashMap<Arc<str>, InstancePeers>>,
    next_id: AtomicU64,
    /// Debounce timers run here (the state's tracker), and stop when `stop` is cancelled.
    background: TaskTracker,
    stop: CancellationToken,
}

#[derive(Default)]
struct InstancePeers {
    peers: HashMap<u64, SessionEntry>,
    /// 2026-07-28 `subscriptions/listen` streams (no session): each sink enforces its own
    /// accepted filter.
    listeners: HashMap<u64, SubscriptionSink>,
    /// Broadcasts scheduled; notifications until one fires are folded into it.
    pending: HashSet<ListKind>,
}

struct SessionEntry {
    peer: Peer<RoleServer>,
    log_level: LoggingLevel,
    /// Resource URIs this session subscribed to.
    subscriptions: HashSet<String>,
}

impl Sessions {
    pub fn new(
        max: usize,
        debounce: Duration,
        tools: ToolsCache,
        catalogs: CatalogCache,
        background: TaskTracker,
        stop: CancellationToken,
    ) -> Self {
        Self {
            live: TaskTracker::new(),
            max,
            debounce,
            tools,
            catalogs,
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

    /// Registers a session of `instance` reachable through `peer`; its `per-session`
    /// upstream clients (run on `tracker`) serve it.
    pub fn open(
        self: &Arc<Self>,
        instance: Arc<str>,
        peer: Peer<RoleServer>,
        tracker: TaskTracker,
    ) -> SessionScope {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let upstreams = SessionUpstreams::new(
            tracker,
            Some(SessionLink {
                id,
                peer: peer.clone(),
            }),
        );
        #[cfg(feature = "planted-leaks")]
        if crate::ops::planted::active(crate::ops::planted::Leak::Timer) {
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
            .insert(
                id,
                SessionEntry {
                    peer,
                    log_level: DEFAULT_LOG_LEVEL,
                    subscriptions: HashSet::new(),
                },
            );
        SessionScope {
            id,
            instance,
            sessions: self.clone(),
            _live: self.live.token(),
            upstreams,
        }
    }

    /// An upstream of `instance` changed one of its lists: drop the cached merged list now,
    /// and tell every session of the instance once the burst is over (one notification per
    /// kind per debounce window, however many upstream notifications arrived in it).
    pub async fn list_changed(self: &Arc<Self>, instance: &str, kind: ListKind) {
        self.invalidate(instance, kind).await;
        {
            let mut peers = self.lock();
            let Some(entry) = peers.get_mut(instance) else {
                return;
            };
            if !entry.pending.insert(kind) {
                return;
            }
        }
        let this = self.clone();
        let instance: Arc<str> = Arc::from(instance);
        self.background.spawn(async move {
            tokio::select! {
                _ = tokio::time::sleep(this.debounce) => {}
                _ = this.stop.cancelled() => return,
            }
            // The list may have been rebuilt during the window from a half-updated upstream.
            this.invalidate(&instance, kind).await;
            let (targets, sinks) = {
                let mut peers = this.lock();
                let Some(entry) = peers.get_mut(&instance) else {
                    return;
                };
                entry.pending.remove(&kind);
                let targets: Vec<Peer<RoleServer>> =
                    entry.peers.values().map(|e| e.peer.clone()).collect();
                let sinks: Vec<SubscriptionSink> = entry.listeners.values().cloned().collect();
                if entry.is_empty() {
                    peers.remove(&instance);
                }
                (targets, sinks)
            };
            let notification = || match kind {
                ListKind::Tools => ServerNotification::ToolListChangedNotification(
                    ToolListChangedNotification::default(),
                ),
                ListKind::Resources => ServerNotification::ResourceListChangedNotification(
                    ResourceListChangedNotification::default(),
                ),
                ListKind::Prompts => ServerNotification::PromptListChangedNotification(
                    PromptListChangedNotification::default(),
                ),
            };
            // a listener that did not ask for this kind refuses it: nothing to do
            let listens = sinks.iter().map(|sink| {
                let n = notification();
                async move {
                    let _ = tokio::time::timeout(NOTIFY_TIMEOUT, sink.send(n)).await;
                }
            });
            futures::future::join_all(listens).await;
            let sends = targets.iter().map(|peer| async move {
                let send = async {
                    match kind {
                        ListKind::Tools => peer.notify_tool_list_changed().await,
                        ListKind::Resources => peer.notify_resource_list_changed().await,
                        ListKind::Prompts => peer.notify_prompt_list_changed().await,
                    }
                };
                if !matches!(tokio::time::timeout(NOTIFY_TIMEOUT, send).await, Ok(Ok(()))) {
                    tracing::debug!(
                        ?kind,
                        "list_changed not delivered to a session (closing or slow)"
                    );
                }
            });
            futures::future::join_all(sends).await;
            tracing::debug!(%instance, ?kind, sessions = targets.len(), "list_changed forwarded");
        });
    }

    async fn invalidate(&self, instance: &str, kind: ListKind) {
        match kind {
            ListKind::Tools => self.tools.invalidate(instance).await,
            ListKind::Resources | ListKind::Prompts => self.catalogs.invalidate(instance).await,
        }
    }

    /// Session `id` of `instance` wants upstream log messages at `level` and above.
    pub fn set_log_level(&self, instance: &str, id: u64, level: LoggingLevel) {
        self.session_mut(instance, id, |e| e.log_level = level);
    }

    /// The most verbose level any session of `instance` wants: what a connection they share
    /// must send at (each session is then filtered at its own).
    pub fn most_verbose_level(&self, instance: &str) -> LoggingLevel {
        let peers = self.lock();
        peers
            .get(instance)
            .into_iter()
            .flat_map(|e| e.peers.values())
            .map(|e| e.log_level)
            .min_by_key(|l| rank(*l))
            .unwrap_or(DEFAULT_LOG_LEVEL)
    }

    /// A 2026-07-28 `subscriptions/listen` stream of `instance` opens: it hears `list_changed`
    /// and `resources/updated` as its sink's accepted filter allows, until the guard drops.
    pub fn listen(self: &Arc<Self>, instance: Arc<str>, sink: SubscriptionSink) -> ListenGuard {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.lock()
            .entry(instance.clone())
            .or_default()
            .listeners
            .insert(id, sink);
        ListenGuard {
            id,
            instance,
            sessions: self.clone(),
        }
    }

    /// Whether any session or listener of `instance` wants updates of `uri`.
    pub fn anyone_subscribed(&self, instance: &str, uri: &str) -> bool {
        let peers = self.lock();
        peers.get(instance).is_some_and(|e| {
            e.peers.values().any(|s| s.subscriptions.contains(uri))
                || e.listeners.values().any(|l| {
                    l.accepted()
                        .resource_subscriptions
                        .as_ref()
                        .is_some_and(|u| u.iter().any(|u| u == uri))
                })
        })
    }

    /// Session `id` subscribes to `uri`.
    pub fn subscribe(&self, instance: &str, id: u64, uri: &str) {
        self.session_mut(instance, id, |e| e.subscriptions.insert(uri.to_string()));
    }

    /// Session `id` unsubscribes from `uri`.
    pub fn unsubscribe(&self, instance: &str, id: u64, uri: &str) {
        self.session_mut(instance, id, |e| e.subscriptions.remove(uri));
    }

    /// An upstream reported `notifications/resources/updated`: every session of the instance
    /// subscribed to the URI hears it (only session `only`, for a connection that session
    /// owns).
    pub async fn resource_updated(
        &self,
        instance: &str,
        only: Option<u64>,
        params: ResourceUpdatedNotificationParam,
    ) {
        let targets = self.targets(instance, only, |e| e.subscriptions.contains(&params.uri));
        let sends = targets.iter().map(|peer| {
            let params = params.clone();
            async move {
                let _ = tokio::time::timeout(NOTIFY_TIMEOUT, peer.notify_resource_updated(params))
                    .await;
            }
        });
        futures::future::join_all(sends).await;
        if only.is_some() {
            return; // a session's own connection: no listener shares it
        }
        let sinks: Vec<SubscriptionSink> = {
            let peers = self.lock();
            peers
                .get(instance)
                .map(|e| e.listeners.values().cloned().collect())
                .unwrap_or_default()
        };
        // each sink delivers only the URIs its listener asked for
        let listens = sinks.iter().map(|sink| {
            let n = ServerNotification::ResourceUpdatedNotification(
                ResourceUpdatedNotification::new(params.clone()),
            );
            async move {
                let _ = tokio::time::timeout(NOTIFY_TIMEOUT, sink.send(n)).await;
            }
        });
        futures::future::join_all(listens).await;
    }

    /// An upstream logged: every session of the instance whose level admits the message
    /// hears it (only session `only`, for a connection that session owns).
    pub async fn log(
        &self,
        instance: &str,
        only: Option<u64>,
        params: LoggingMessageNotificationParam,
    ) {
        let targets = self.targets(instance, only, |e| rank(params.level) >= rank(e.log_level));
        let sends = targets.iter().map(|peer| {
            let params = params.clone();
            async move {
                let _ =
                    tokio::time::timeout(NOTIFY_TIMEOUT, peer.notify_logging_message(params)).await;
            }
        });
        futures::future::join_all(sends).await;
    }

    fn targets(
        &self,
        instance: &str,
        only: Option<u64>,
        wants: impl Fn(&SessionEntry) -> bool,
    ) -> Vec<Peer<RoleServer>> {
        let peers = self.lock();
        let Some(entry) = peers.get(instance) else {
            return Vec::new();
        };
        entry
            .peers
            .iter()
            .filter(|(id, e)| only.is_none_or(|o| o == **id) && wants(e))
            .map(|(_, e)| e.peer.clone())
            .collect()
    }

    fn session_mut<T>(
        &self,
        instance: &str,
        id: u64,
        f: impl FnOnce(&mut SessionEntry) -> T,
    ) -> Option<T> {
        let mut peers = self.lock();
        let entry = peers.get_mut(instance)?.peers.get_mut(&id)?;
        Some(f(entry))
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

impl SessionEvents for Sessions {
    fn list_changed<'a>(self: Arc<Self>, instance: &'a str, kind: ListKind) -> BoxFuture<'a, ()> {
        Box::pin(async move { Sessions::list_changed(&self, instance, kind).await })
    }

    fn resource_updated<'a>(
        &'a self,
        instance: &'a str,
        only: Option<u64>,
        params: ResourceUpdatedNotificationParam,
    ) -> BoxFuture<'a, ()> {
        Box::pin(Sessions::resource_updated(self, instance, only, params))
    }

    fn log<'a>(
        &'a self,
        instance: &'a str,
        only: Option<u64>,
        params: LoggingMessageNotificationParam,
    ) -> BoxFuture<'a, ()> {
        Box::pin(Sessions::log(self, instance, only, params))
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

impl InstancePeers {
    fn is_empty(&self) -> bool {
        self.peers.is_empty() && self.listeners.is_empty() && self.pending.is_empty()
    }
}

/// One open `subscriptions/listen` stream's place in [`Sessions`]; dropping it (the stream
/// ended) removes it.
pub struct ListenGuard {
    id: u64,
    instance: Arc<str>,
    sessions: Arc<Sessions>,
}

impl Drop for ListenGuard {
    fn drop(&mut self) {
        let mut peers = self.sessions.lock();
        if let Some(entry) = peers.get_mut(&self.instance) {
            entry.listeners.remove(&self.id);
            if entry.is_empty() {
                peers.remove(&self.instance);
            }
        }
    }
}

impl SessionScope {
    /// This session's id in [`Sessions`] (not rmcp's `Mcp-Session-Id`).
    pub fn id(&self) -> u64 {
        self.id
    }
}

impl Drop for SessionScope {
    fn drop(&mut self) {
        let mut peers = self.sessions.lock();
        if let Some(entry) = peers.get_mut(&self.instance) {
            entry.peers.remove(&self.id);
            if entry.is_empty() {
                peers.remove(&self.instance);
            }
        }
    }
}
