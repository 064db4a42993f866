//! `AppState`: every part of a running proxy, built once at start ([`AppState::build`]) and
//! shared by `Arc`; the owner of each part the shutdown closes. The admin path (apply a seed,
//! create or revoke a key) lives here because it writes the store and drops the caches.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::app::settings::Settings;
use crate::data::cache::{AuthCache, Caches, CatalogCache, ConfigCache, ToolsCache};
use crate::data::invalidation::{Invalidator, KeySessions, ListenerConfig};
use crate::data::store::{CreatedKey, Revoke, SeedReport, Store, StoreError};
use crate::data::usage::UsageRecorder;
use crate::domain::capabilities::UpstreamCapabilities;
use crate::domain::invalidation::Invalidation;
use crate::domain::secrets::Secret;
use crate::domain::seed::Seed;
use crate::http::{Gateway, HttpLimits};
use crate::mcp::instances::{Instances, ServiceSettings};
use crate::mcp::{McpSettings, McpState};
use crate::ops::log_limit::LogLimiter;
use crate::ops::memory::MemoryGuard;
use crate::ops::metrics::Metrics;
use crate::sessions::Sessions;
use crate::upstream::ConnectContext;
use crate::upstream::http_clients::{HttpClients, PoolSettings};
use crate::upstream::manager::ConnectionManager;

pub struct AppState {
    pub settings: Settings,
    pub metrics: Arc<Metrics>,
    pub store: Store,
    /// Every cache of this replica (config, keys, merged lists, capabilities).
    pub caches: Arc<Caches>,
    pub pool: Arc<ConnectionManager>,
    pub sessions: Arc<Sessions>,
    pub usage: Arc<UsageRecorder>,
    /// Allocated memory against `--memory-limit-mib`: load shedding near the bound.
    pub memory: Arc<MemoryGuard>,
    /// The per-instance rmcp services.
    pub instances: Arc<Instances>,
    /// Where every invalidation is applied (admin path, PostgreSQL listener, SQLite change
    /// watcher): the caches, then the sessions of a key that is now revoked or gone.
    pub invalidator: Arc<Invalidator>,
    /// What the HTTP routes work with.
    pub gateway: Arc<Gateway>,
    /// Every background task and every deferred close runs here; shutdown waits for it.
    pub tracker: TaskTracker,
    /// Cancelled when shutdown starts: stop accepting, `/ready` turns 503.
    pub shutdown: CancellationToken,
    /// Cancelled after the drain: ends every downstream session and SSE stream.
    pub sessions_ct: CancellationToken,
    /// Stops the background tasks (usage flusher, idle sweep, debounce timers, SIGHUP,
    /// invalidation listener, memory watcher).
    pub background_stop: CancellationToken,
}

impl AppState {
    /// Builds every part over a connected `store` and wires them together; starts nothing.
    pub fn build(settings: Settings, store: Store, metrics: Arc<Metrics>) -> anyhow::Result<Self> {
        let caches = Arc::new(caches(&settings, &store, &metrics));
        let tracker = TaskTracker::new();
        let background_stop = CancellationToken::new();
        let sessions = Arc::new(Sessions::new(
            settings.max_sessions,
            settings.list_changed_debounce,
            caches.tools.clone(),
            caches.catalogs.clone(),
            tracker.clone(),
            background_stop.clone(),
        ));
        let connect = ConnectContext {
            http: Arc::new(HttpClients::new(PoolSettings {
                idle_timeout: settings.upstream_http_idle_timeout,
                max_idle_per_host: settings.upstream_http_max_idle,
            })?),
            connect_timeout: settings.connect_timeout,
            metrics: metrics.clone(),
            tracker: tracker.clone(),
            sessions: sessions.clone(),
            capabilities: caches.capabilities.clone(),
            server_request_timeout: settings.client_request_timeout,
            stdio_max_reply: settings.stdio_max_reply_bytes,
        };
        let pool = Arc::new(ConnectionManager::new(
            connect,
            settings.manager_policy(),
            tracker.clone(),
        ));
        let sessions_ct = CancellationToken::new();
        let mcp = Arc::new(McpState {
            settings: McpSettings {
                request_timeout: settings.request_timeout,
                call_timeout: settings.call_timeout,
                list_page_size: settings.list_page_size,
            },
            metrics: metrics.clone(),
            caches: caches.clone(),
            pool: pool.clone(),
            sessions: sessions.clone(),
            tracker: tracker.clone(),
            sessions_ct: sessions_ct.clone(),
        });
        let instances = Arc::new(Instances::new(mcp, service_settings(&settings)));
        let key_sessions: Arc<dyn KeySessions> = instances.clone();
        let invalidator = Arc::new(Invalidator::new(caches.clone(), Some(key_sessions)));
        let memory = MemoryGuard::new(settings.memory_limit_mib, metrics.clone());
        let usage = Arc::new(UsageRecorder::default());
        let shutdown = CancellationToken::new();
        let gateway = Arc::new(Gateway {
            limits: HttpLimits {
                max_body_bytes: settings.max_body_bytes,
                allowed_hosts: settings.allowed_hosts.clone(),
                allowed_origins: settings.allowed_origins.clone(),
            },
            metrics: metrics.clone(),
            store: store.clone(),
            caches: caches.clone(),
            usage: usage.clone(),
            sessions: sessions.clone(),
            memory: memory.clone(),
            instances: instances.clone(),
            inflight: Default::default(),
            streams: Arc::default(),
            refused_keys: LogLimiter::new(std::time::Duration::from_secs(1)),
            shutdown: shutdown.clone(),
        });
        Ok(Self {
            settings,
            metrics,
            store,
            caches,
            pool,
            sessions,
            usage,
            memory,
            instances,
            invalidator,
            gateway,
            tracker,
            shutdown,
            sessions_ct,
            background_stop,
        })
    }

    /// Where the invalidation listener listens (the `--notify-*` and `--listener-*` settings).
    pub fn listener_config(&self) -> ListenerConfig {
        let s = &self.settings;
        ListenerConfig {
            database_url: s.resolved_database_url(),
            notify_url: s.notify_url.clone(),
            channel: s.notify_channel.clone(),
            connect_timeout: s.db_acquire_timeout,
            ping_interval: s.listener_ping_interval,
            reconnect_base_delay: s.listener_reconnect_base_delay,
            reconnect_max_delay: s.listener_reconnect_max_delay,
        }
    }

    /// Applies a seed and drops every cached config, key and tool list, so the change is served
    /// at once (the admin path: `serve --seed` at start, and SIGHUP to re-read it). Other
    /// replicas on the same PostgreSQL hear of it through the store's notification.
    pub async fn apply_seed(&self, seed: &Seed) -> Result<SeedReport, StoreError> {
        let report = self.store.apply_seed(seed).await?;
        self.invalidator.apply(&Invalidation::All).await;
        Ok(report)
    }

    /// Creates a key and makes this replica accept it at once (it may have cached the key as
    /// unknown); other replicas hear of it through the store's notification.
    pub async fn create_key(&self, instance_id: &str) -> Result<CreatedKey, StoreError> {
        let created = self.store.create_key(instance_id).await?;
        let hash = crate::domain::keys::hash_key(&created.key);
        self.invalidator.apply(&Invalidation::Key(hash)).await;
        Ok(created)
    }

    /// Revokes a key and makes this replica refuse it at once and end its sessions; other
    /// replicas hear of it through the store's notification (and fall back to their auth TTL
    /// if they cannot).
    pub async fn revoke_key(&self, key_id: &str) -> Result<Revoke, StoreError> {
        let outcome = self.store.revoke_key(key_id).await?;
        if let Revoke::Revoked(key) = &outcome {
            self.invalidator
                .apply(&Invalidation::Key(key.key_hash))
                .await;
        }
        Ok(outcome)
    }

    /// Sets an instance's secret and drops its cached config here, so its next request
    /// connects with the new value (the slot replaces, and closes, the connection made with
    /// the old one); other replicas hear of it through the store's notification.
    pub async fn set_secret(
        &self,
        instance_id: &str,
        name: &str,
        value: &Secret,
    ) -> Result<(), StoreError> {
        self.store.set_secret(instance_id, name, value).await?;
        let changed = Invalidation::Instance(instance_id.to_string());
        self.invalidator.apply(&changed).await;
        Ok(())
    }

    /// Re-reads the `--seed` file and applies it (SIGHUP). Without one, does nothing.
    pub async fn reload_seed(&self) -> anyhow::Result<Option<SeedReport>> {
        let Some(path) = &self.settings.seed else {
            return Ok(None);
        };
        let seed = Seed::load(path)?;
        Ok(Some(self.apply_seed(&seed).await?))
    }

    /// Open downstream sessions over all instances, as rmcp's session managers hold them.
    pub async fn session_count(&self) -> usize {
        self.instances.session_count().await
    }
}

fn caches(settings: &Settings, store: &Store, metrics: &Arc<Metrics>) -> Caches {
    Caches {
        configs: ConfigCache::new(
            store.clone(),
            metrics.clone(),
            settings.config_cache_ttl,
            settings.config_cache_capacity,
            settings.config_cache_bypass,
        ),
        auth: AuthCache::new(
            store.clone(),
            metrics.clone(),
            settings.auth_cache_ttl,
            100_000,
        ),
        tools: ToolsCache::new(settings.tools_cache_ttl, settings.config_cache_capacity),
        catalogs: CatalogCache::new(settings.tools_cache_ttl, settings.config_cache_capacity),
        capabilities: Arc::new(UpstreamCapabilities::default()),
        metrics: metrics.clone(),
    }
}

fn service_settings(settings: &Settings) -> ServiceSettings {
    ServiceSettings {
        session_idle_timeout: settings.session_idle_timeout,
        allowed_hosts: settings.allowed_hosts.clone(),
        allowed_origins: settings.allowed_origins.clone(),
        max_body_bytes: settings.max_body_bytes,
        sse_keepalive: settings.sse_keepalive,
    }
}
