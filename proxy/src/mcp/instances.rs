//! The per-instance rmcp services: one `StreamableHttpService` and one session manager
//! ([`OwnedSessions`]: rmcp's `LocalSessionManager`, each session bound to the key that opened
//! it) per instance, created after authentication, so a session of one instance can never be
//! used on another. `Instances` tells the invalidation path which keys own sessions and ends
//! a revoked key's sessions ([`KeySessions`]).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use futures::future::BoxFuture;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};

use super::owned_sessions::OwnedSessions;
use super::{McpState, ProxyHandler};
use crate::data::invalidation::KeySessions;

pub type InstanceService = StreamableHttpService<ProxyHandler, OwnedSessions>;

/// How each instance's service is configured (from the proxy's settings).
#[derive(Clone, Debug)]
pub struct ServiceSettings {
    /// Idle sessions are closed after this (`--session-idle-timeout`).
    pub session_idle_timeout: Duration,
    pub allowed_hosts: Vec<String>,
    pub allowed_origins: Vec<String>,
    pub max_body_bytes: usize,
    /// SSE keep-alive interval; zero turns it off.
    pub sse_keepalive: Duration,
}

struct InstanceEntry {
    service: Arc<InstanceService>,
    sessions: Arc<OwnedSessions>,
}

/// Owns every instance's service and session manager until [`Instances::clear`].
pub struct Instances {
    state: Arc<McpState>,
    settings: ServiceSettings,
    map: RwLock<HashMap<String, InstanceEntry>>,
}

impl Instances {
    pub fn new(state: Arc<McpState>, settings: ServiceSettings) -> Self {
        Self {
            state,
            settings,
            map: RwLock::default(),
        }
    }

    /// The rmcp service of an instance, created on first use. Only called after the caller
    /// was authenticated for `instance_id`, so the map is bounded by real instances.
    pub fn service(&self, instance_id: &str) -> Arc<InstanceService> {
        if let Some(entry) = self
            .map
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(instance_id)
        {
            return entry.service.clone();
        }
        let mut map = self.map.write().unwrap_or_else(|p| p.into_inner());
        map.entry(instance_id.to_string())
            .or_insert_with(|| self.entry(instance_id))
            .service
            .clone()
    }

    fn entry(&self, instance_id: &str) -> InstanceEntry {
        let settings = &self.settings;
        let mut manager = LocalSessionManager::default();
        manager.session_config.keep_alive = Some(settings.session_idle_timeout);
        #[cfg(feature = "planted-leaks")]
        if crate::ops::planted::active(crate::ops::planted::Leak::Sessions) {
            // no idle TTL: an abandoned session lives until shutdown
            manager.session_config.keep_alive = None;
        }
        let sessions = Arc::new(OwnedSessions::new(manager));
        let config = StreamableHttpServerConfig::default()
            .with_allowed_hosts(settings.allowed_hosts.clone())
            .with_allowed_origins(settings.allowed_origins.clone())
            .with_max_request_body_bytes(settings.max_body_bytes)
            .with_sse_keep_alive(Some(settings.sse_keepalive).filter(|d| !d.is_zero()))
            .with_cancellation_token(self.state.sessions_ct.child_token());
        let state = self.state.clone();
        let id: Arc<str> = Arc::from(instance_id);
        let service = StreamableHttpService::new(
            move || Ok(ProxyHandler::new(state.clone(), id.clone())),
            sessions.clone(),
            config,
        );
        InstanceEntry {
            service: Arc::new(service),
            sessions,
        }
    }

    /// The key (SHA-256) that opened session `id` of `instance_id`, if this replica holds it
    /// (`None` before the instance's service exists: nothing of it was opened here).
    pub fn session_owner(&self, instance_id: &str, id: &str) -> Option<[u8; 32]> {
        self.map
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(instance_id)?
            .sessions
            .owner(id)
    }

    fn managers(&self) -> Vec<Arc<OwnedSessions>> {
        self.map
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .map(|e| e.sessions.clone())
            .collect()
    }

    /// Open downstream sessions over all instances, as rmcp's session managers hold them.
    pub async fn session_count(&self) -> usize {
        let mut total = 0;
        for m in self.managers() {
            total += m.inner.sessions.read().await.len();
        }
        total
    }

    /// Drops every per-instance service (after the sessions token was cancelled), so what
    /// their handlers hold can be freed.
    pub fn clear(&self) {
        self.map.write().unwrap_or_else(|p| p.into_inner()).clear();
    }
}

impl KeySessions for Instances {
    fn owners(&self) -> Vec<[u8; 32]> {
        let mut keys = std::collections::HashSet::new();
        for m in self.managers() {
            keys.extend(m.owner_keys());
        }
        keys.into_iter().collect()
    }

    fn end_sessions(&self, key: [u8; 32]) -> BoxFuture<'_, usize> {
        Box::pin(async move {
            let mut ended = 0;
            for m in self.managers() {
                ended += m.end_sessions_of(&key).await;
            }
            ended
        })
    }
}
