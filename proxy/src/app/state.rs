//! `AppState`: everything a request needs, built once at start and shared by `Arc`.
//! It also owns the per-instance rmcp services (one session manager per instance, so a
//! session of one instance can never be used on another).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::cache::{AuthCache, CatalogCache, ConfigCache};
use crate::capabilities::UpstreamCapabilities;
use crate::handler::ProxyHandler;
use crate::invalidation::{self, Invalidation};
use crate::memory::MemoryGuard;
use crate::metrics::Metrics;
use crate::seed::Seed;
use crate::sessions::Sessions;
use crate::settings::Settings;
use crate::store::{CreatedKey, Revoke, SeedReport, Store, StoreError};
use crate::upstream::ToolsCache;
use crate::upstream::manager::ConnectionManager;
use crate::usage::UsageRecorder;

pub type InstanceService = StreamableHttpService<ProxyHandler, LocalSessionManager>;

struct InstanceEntry {
    service: Arc<InstanceService>,
    sessions: Arc<LocalSessionManager>,
}

pub struct AppState {
    pub settings: Settings,
    pub metrics: Arc<Metrics>,
    pub store: Store,
    pub configs: ConfigCache,
    pub auth: AuthCache,
    pub tools: ToolsCache,
    pub catalogs: CatalogCache,
    /// What each upstream offers, learned at connect.
    pub capabilities: Arc<UpstreamCapabilities>,
    pub pool: Arc<ConnectionManager>,
    pub sessions: Arc<Sessions>,
    pub usage: Arc<UsageRecorder>,
    /// Resident memory against `--memory-limit-mib`: load shedding near the bound.
    pub memory: Arc<MemoryGuard>,
    /// Every background task and every deferred close runs here; shutdown waits for it.
    pub tracker: TaskTracker,
    /// Cancelled when shutdown starts: stop accepting, `/ready` turns 503.
    pub shutdown: CancellationToken,
    /// Cancelled after the drain: ends every downstream session and SSE stream.
    pub sessions_ct: CancellationToken,
    instances: RwLock<HashMap<String, InstanceEntry>>,
}

impl AppState {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        settings: Settings,
        metrics: Arc<Metrics>,
        store: Store,
        configs: ConfigCache,
        auth: AuthCache,
        tools: ToolsCache,
        catalogs: CatalogCache,
        capabilities: Arc<UpstreamCapabilities>,
        pool: Arc<ConnectionManager>,
        sessions: Arc<Sessions>,
        tracker: TaskTracker,
        shutdown: CancellationToken,
    ) -> Self {
        let sessions_ct = CancellationToken::new();
        let memory = MemoryGuard::new(settings.memory_limit_mib, metrics.clone());
        Self {
            settings,
            metrics,
            store,
            configs,
            auth,
            tools,
            catalogs,
            capabilities,
            pool,
            sessions,
            usage: Arc::default(),
            memory,
            tracker,
            shutdown,
            sessions_ct,
            instances: RwLock::default(),
        }
    }

    /// The rmcp service of an instance, created on first use. Only called after the caller
    /// was authenticated for `instance_id`, so the map is bounded by real instances.
    pub fn instance_service(self: &Arc<Self>, instance_id: &str) -> Arc<InstanceService> {
        if let Some(entry) = self
            .instances
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(instance_id)
        {
            return entry.service.clone();
        }
        let mut map = self.instances.write().unwrap_or_else(|p| p.into_inner());
        map.entry(instance_id.to_string())
            .or_insert_with(|| {
                let mut manager = LocalSessionManager::default();
                manager.session_config.keep_alive = Some(self.settings.session_idle_timeout);
                #[cfg(feature = "planted-leaks")]
                if crate::planted::active(crate::planted::Leak::Sessions) {
                    // no idle TTL: an abandoned session lives until shutdown
                    manager.session_config.keep_alive = None;
                }
                let sessions = Arc::new(manager);
                let config = StreamableHttpServerConfig::default()
                    .with_allowed_hosts(self.settings.allowed_hosts.clone())
                    .with_allowed_origins(self.settings.allowed_origins.clone())
                    .with_max_request_body_bytes(self.settings.max_body_bytes)
                    .with_sse_keep_alive(Some(self.settings.sse_keepalive).filter(|d| !d.is_zero()))
                    .with_cancellation_token(self.sessions_ct.child_token());
                let state = self.clone();
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
            })
            .service
            .clone()
    }

    /// Applies a seed and drops every cached config, key and tool list, so the change is served
    /// at once (the admin path: `serve --seed` at start, and SIGHUP to re-read it). Other
    /// replicas on the same PostgreSQL hear of it through the store's notification.
    pub async fn apply_seed(&self, seed: &Seed) -> Result<SeedReport, StoreError> {
        let report = self.store.apply_seed(seed).await?;
        invalidation::apply(self, &Invalidation::All).await;
        Ok(report)
    }

    /// Creates a key and makes this replica accept it at once (it may have cached the key as
    /// unknown); other replicas hear of it through the store's notification.
    pub async fn create_key(&self, instance_id: &str) -> Result<CreatedKey, StoreError> {
        let created = self.store.create_key(instance_id).await?;
        let hash = crate::auth::hash_key(&created.key);
        invalidation::apply(self, &Invalidation::Key(hash)).await;
        Ok(created)
    }

    /// Revokes a key and makes this replica refuse it at once; other replicas hear of it
    /// through the store's notification (and fall back to their auth TTL if they cannot).
    pub async fn revoke_key(&self, key_id: &str) -> Result<Revoke, StoreError> {
        let outcome = self.store.revoke_key(key_id).await?;
        if let Revoke::Revoked(key) = &outcome {
            invalidation::apply(self, &Invalidation::Key(key.key_hash)).await;
        }
        Ok(outcome)
    }

    /// Re-reads the `--seed` file and applies it (SIGHUP). Without one, does nothing.
    pub async fn reload_seed(&self) -> anyhow::Result<Option<SeedReport>> {
        let Some(path) = &self.settings.seed else {
            return Ok(None);
        };
        let seed = Seed::load(path)?;
        Ok(Some(self.apply_seed(&seed).await?))
    }

    /// Whether this replica holds session `id` of `instance_id` (false before the instance's
    /// service exists: nothing of it was opened here).
    pub async fn knows_session(&self, instance_id: &str, id: &str) -> bool {
        let manager = self
            .instances
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(instance_id)
            .map(|e| e.sessions.clone());
        match manager {
            Some(m) => m.sessions.read().await.contains_key(id),
            None => false,
        }
    }

    /// Open downstream sessions over all instances, as rmcp's session managers hold them.
    pub async fn session_count(&self) -> usize {
        let managers: Vec<Arc<LocalSessionManager>> = self
            .instances
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .map(|e| e.sessions.clone())
            .collect();
        let mut total = 0;
        for m in managers {
            total += m.sessions.read().await.len();
        }
        total
    }

    /// Drops every per-instance service (after the sessions token was cancelled). Breaks the
    /// `AppState` → service → handler → `AppState` cycle so the state can be freed.
    pub fn clear_instances(&self) {
        self.instances
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }
}
