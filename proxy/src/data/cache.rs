//! The two read-through caches in front of the store (moka): instance config and API keys.
//! Both are bounded, expire by TTL, load single-flight on a miss (concurrent misses for one
//! key run one query), and can be invalidated explicitly when the seed/admin path changes data.
//!
//! Invalidation is race-free: a load that started before an invalidation (and so may have read
//! the old rows) can finish after it, so every entry carries the generation at which its load
//! began, and an entry whose load may have been in flight during an invalidation (the
//! generation moved before it was checked once after insertion) is discarded and loaded again.
//! An entry checked clean is kept: invalidating one key does not reload every other key.

use std::hash::Hash;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use moka::future::Cache;
use prometheus_client::metrics::counter::Counter;

use crate::data::store::{Store, StoreError};
use crate::domain::capabilities::UpstreamCapabilities;
use crate::domain::catalog::Catalog;
use crate::domain::model::{ApiKeyRecord, InstanceConfig};
use crate::domain::router::ToolIndex;
use crate::ops::metrics::Metrics;

/// Why a config could not be produced. A missing instance is not cached, so a newly seeded
/// instance is visible at once.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("no such instance")]
    Missing,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A moka cache whose invalidation also discards loads that were in flight when it happened.
struct Generational<K, V> {
    cache: Cache<K, Arc<Stamped<V>>>,
    /// Bumped by every invalidation, before the entries are dropped.
    generation: AtomicU64,
}

/// A cached value and the generation at which its load began.
struct Stamped<V> {
    started: u64,
    /// Set once the generation was seen unchanged since `started` after the entry was in the
    /// cache: no invalidation overlapped its load, and later ones remove it themselves.
    clean: AtomicBool,
    value: V,
}

impl<K, V> Generational<K, V>
where
    K: Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    fn new(ttl: Duration, capacity: u64) -> Self {
        Self {
            cache: Cache::builder()
                .max_capacity(capacity)
                .time_to_live(ttl)
                .build(),
            generation: AtomicU64::new(0),
        }
    }

    /// The cached value, or `load()`'s (one load for concurrent callers). The flag is true when
    /// this call loaded it (a miss).
    async fn get<Q, E, F>(&self, key: &Q, load: impl Fn() -> F) -> Result<(V, bool), Arc<E>>
    where
        K: std::borrow::Borrow<Q>,
        Q: ToOwned<Owned = K> + Hash + Eq + ?Sized,
        E: Send + Sync + 'static,
        F: Future<Output = Result<V, E>>,
    {
        for _ in 0..2 {
            let started = self.generation.load(Ordering::Acquire);
            let entry = self
                .cache
                .entry_by_ref(key)
                .or_try_insert_with(async {
                    load().await.map(|value| {
                        Arc::new(Stamped {
                            started,
                            clean: AtomicBool::new(false),
                            value,
                        })
                    })
                })
                .await?;
            let fresh = entry.is_fresh();
            let stamped = entry.into_value();
            if stamped.clean.load(Ordering::Acquire) {
                return Ok((stamped.value.clone(), fresh));
            }
            // In the cache now: if no invalidation happened since its load began, none can have
            // overlapped it, and any later one removes the entry.
            if self.generation.load(Ordering::Acquire) == stamped.started {
                stamped.clean.store(true, Ordering::Release);
                return Ok((stamped.value.clone(), fresh));
            }
            // An invalidation may have overlapped the load: possibly stale.
            self.cache.invalidate(key).await;
        }
        // Invalidations keep racing this key: answer from the store without caching.
        load().await.map(|v| (v, true)).map_err(Arc::new)
    }

    async fn invalidate<Q>(&self, key: &Q)
    where
        K: std::borrow::Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.cache.invalidate(key).await;
    }

    fn invalidate_all(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.cache.invalidate_all();
    }
}

/// Instance config, keyed by instance id.
#[derive(Clone)]
pub struct ConfigCache {
    cache: Arc<Generational<String, Arc<InstanceConfig>>>,
    store: Store,
    metrics: Arc<Metrics>,
    bypass: bool,
}

impl ConfigCache {
    pub fn new(
        store: Store,
        metrics: Arc<Metrics>,
        ttl: Duration,
        capacity: u64,
        bypass: bool,
    ) -> Self {
        Self {
            cache: Arc::new(Generational::new(ttl, capacity)),
            store,
            metrics,
            bypass,
        }
    }

    async fn load(&self, id: &str) -> Result<Arc<InstanceConfig>, ConfigError> {
        match self.store.instance_config(id).await {
            Ok(Some(config)) => Ok(Arc::new(config)),
            Ok(None) => Err(ConfigError::Missing),
            Err(e) => Err(ConfigError::Store(e)),
        }
    }

    /// The config of `id`: from the cache, else one query (shared by concurrent callers).
    pub async fn get(&self, id: &str) -> Result<Arc<InstanceConfig>, Arc<ConfigError>> {
        if self.bypass {
            self.metrics.config_cache_misses.inc();
            return self.load(id).await.map_err(Arc::new);
        }
        let (config, fresh) = self.cache.get(id, || self.load(id)).await?;
        count_lookup(
            fresh,
            &self.metrics.config_cache_hits,
            &self.metrics.config_cache_misses,
        );
        Ok(config)
    }

    pub async fn invalidate(&self, id: &str) {
        self.cache.invalidate(id).await;
    }

    pub fn invalidate_all(&self) {
        self.cache.invalidate_all();
    }
}

/// API-key records keyed by the key's SHA-256. Unknown keys are cached too (as `None`), so a
/// client retrying a wrong key cannot turn every request into a query.
#[derive(Clone)]
pub struct AuthCache {
    cache: Arc<Generational<[u8; 32], Option<Arc<ApiKeyRecord>>>>,
    store: Store,
    metrics: Arc<Metrics>,
}

impl AuthCache {
    pub fn new(store: Store, metrics: Arc<Metrics>, ttl: Duration, capacity: u64) -> Self {
        Self {
            cache: Arc::new(Generational::new(ttl, capacity)),
            store,
            metrics,
        }
    }

    pub async fn lookup(
        &self,
        hash: &[u8; 32],
    ) -> Result<Option<Arc<ApiKeyRecord>>, Arc<StoreError>> {
        let load = || async {
            self.store
                .api_key_by_hash(hash)
                .await
                .map(|r| r.map(Arc::new))
        };
        let (record, fresh) = self.cache.get(hash, load).await?;
        count_lookup(
            fresh,
            &self.metrics.auth_cache_hits,
            &self.metrics.auth_cache_misses,
        );
        Ok(record)
    }

    /// Drops one key's entry (it was revoked, or created after being cached as unknown).
    pub async fn invalidate(&self, hash: &[u8; 32]) {
        self.cache.invalidate(hash).await;
    }

    pub fn invalidate_all(&self) {
        self.cache.invalidate_all();
    }
}

/// A merged list that may be partial (an upstream failed); only complete ones are cached.
pub trait Merged: Send + Sync + 'static {
    fn is_complete(&self) -> bool;
}

impl Merged for ToolIndex {
    fn is_complete(&self) -> bool {
        ToolIndex::is_complete(self)
    }
}

impl Merged for Catalog {
    fn is_complete(&self) -> bool {
        Catalog::is_complete(self)
    }
}

/// Merged lists per instance (tools; resources, templates and prompts), dropped when an
/// upstream reports `list_changed`. Only complete lists are cached; a partial one (an upstream
/// failed) is returned uncached.
pub struct ListCache<T> {
    cache: Arc<Generational<String, Arc<T>>>,
}

impl<T> Clone for ListCache<T> {
    fn clone(&self) -> Self {
        Self {
            cache: self.cache.clone(),
        }
    }
}

/// The merged tool list of each instance.
pub type ToolsCache = ListCache<ToolIndex>;
/// The merged resources, templates and prompts of each instance.
pub type CatalogCache = ListCache<Catalog>;

impl<T: Merged> ListCache<T> {
    pub fn new(ttl: Duration, capacity: u64) -> Self {
        Self {
            cache: Arc::new(Generational::new(ttl, capacity)),
        }
    }

    /// The cached list of `instance_id`, or `build()`'s (one build for concurrent callers).
    pub async fn get_or_build<F>(&self, instance_id: &str, build: impl Fn() -> F) -> Arc<T>
    where
        F: Future<Output = T>,
    {
        let build = || async {
            let index = Arc::new(build().await);
            if index.is_complete() {
                Ok(index)
            } else {
                Err(index)
            }
        };
        match self.cache.get(instance_id, build).await {
            Ok((index, _)) => index,
            Err(partial) => partial.as_ref().clone(),
        }
    }

    pub async fn invalidate(&self, instance_id: &str) {
        self.cache.invalidate(instance_id).await;
    }

    pub fn invalidate_all(&self) {
        self.cache.invalidate_all();
    }

    pub fn contains_key(&self, instance_id: &str) -> bool {
        self.cache.cache.contains_key(instance_id)
    }
}

/// A freshly inserted entry means the value was loaded: a miss.
fn count_lookup(fresh: bool, hits: &Counter, misses: &Counter) {
    let counter = if fresh { misses } else { hits };
    counter.inc();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_load_in_flight_during_invalidation_is_not_served_afterwards() {
        let cache: Generational<String, u32> = Generational::new(Duration::from_secs(60), 10);
        let value = std::sync::atomic::AtomicU32::new(1);
        let (entered_tx, entered_rx) = tokio::sync::oneshot::channel::<()>();
        let (release_tx, release_rx) = tokio::sync::oneshot::channel::<()>();
        let entered_tx = std::sync::Mutex::new(Some(entered_tx));
        let release_rx = tokio::sync::Mutex::new(Some(release_rx));
        let load = || async {
            let v = value.load(Ordering::SeqCst);
            // the first load reads the old value, then waits while the data changes
            let first = entered_tx.lock().unwrap().take();
            if let Some(tx) = first {
                let _ = tx.send(());
                let rx = release_rx.lock().await.take().unwrap();
                let _ = rx.await;
            }
            Ok::<u32, ()>(v)
        };
        let slow = cache.get("k", load);
        let change = async {
            entered_rx.await.unwrap();
            value.store(2, Ordering::SeqCst);
            cache.invalidate_all();
            release_tx.send(()).unwrap();
        };
        let (first, ()) = tokio::join!(slow, change);
        // the racing call may get either value, but the cache must not keep the stale one
        assert!(matches!(first, Ok((1, true)) | Ok((2, true))), "{first:?}");
        let (after, _) = cache.get("k", load).await.unwrap();
        assert_eq!(after, 2);
    }

    #[tokio::test]
    async fn a_load_in_flight_during_its_keys_invalidation_is_not_served_afterwards() {
        let cache: Generational<String, u32> = Generational::new(Duration::from_secs(60), 10);
        let value = std::sync::atomic::AtomicU32::new(1);
        let (entered_tx, entered_rx) = tokio::sync::oneshot::channel::<()>();
        let (release_tx, release_rx) = tokio::sync::oneshot::channel::<()>();
        let entered_tx = std::sync::Mutex::new(Some(entered_tx));
        let release_rx = tokio::sync::Mutex::new(Some(release_rx));
        let load = || async {
            let v = value.load(Ordering::SeqCst);
            let first = entered_tx.lock().unwrap().take();
            if let Some(tx) = first {
                let _ = tx.send(());
                let rx = release_rx.lock().await.take().unwrap();
                let _ = rx.await;
            }
            Ok::<u32, ()>(v)
        };
        let slow = cache.get("k", load);
        let change = async {
            entered_rx.await.unwrap();
            value.store(2, Ordering::SeqCst);
            cache.invalidate("k").await;
            release_tx.send(()).unwrap();
        };
        let (first, ()) = tokio::join!(slow, change);
        assert!(matches!(first, Ok((1, true)) | Ok((2, true))), "{first:?}");
        let (after, _) = cache.get("k", load).await.unwrap();
        assert_eq!(after, 2);
    }

    #[tokio::test]
    async fn invalidating_one_key_keeps_the_others() {
        let cache: Generational<String, u32> = Generational::new(Duration::from_secs(60), 10);
        let loads = std::sync::atomic::AtomicU32::new(0);
        let load = || async {
            loads.fetch_add(1, Ordering::SeqCst);
            Ok::<u32, ()>(7)
        };
        for key in ["a", "b"] {
            assert_eq!(cache.get(key, load).await.unwrap(), (7, true));
        }
        cache.invalidate("a").await;
        assert_eq!(cache.get("b", load).await.unwrap(), (7, false), "b kept");
        assert_eq!(cache.get("a", load).await.unwrap(), (7, true), "a reloaded");
        assert_eq!(loads.load(Ordering::SeqCst), 3);
        cache.invalidate_all();
        assert_eq!(cache.get("b", load).await.unwrap(), (7, true));
        assert_eq!(loads.load(Ordering::SeqCst), 4);
    }

    #[tokio::test]
    async fn unknown_keys_are_cached_within_the_bound() {
        let metrics = Arc::new(Metrics::default());
        let store = Store::connect(
            "sqlite::memory:",
            1,
            Duration::from_secs(5),
            metrics.clone(),
        )
        .await
        .unwrap();
        let auth = AuthCache::new(store, metrics.clone(), Duration::from_secs(60), 50);
        for _ in 0..3 {
            assert!(auth.lookup(&[7; 32]).await.unwrap().is_none());
        }
        assert_eq!(
            metrics.auth_cache_misses.get(),
            1,
            "one query for a repeated unknown key"
        );
        for i in 0..500u32 {
            let mut hash = [0u8; 32];
            hash[..4].copy_from_slice(&i.to_be_bytes());
            assert!(auth.lookup(&hash).await.unwrap().is_none());
        }
        auth.cache.cache.run_pending_tasks().await;
        let held = auth.cache.cache.entry_count();
        assert!(held <= 50, "{held} entries held past a bound of 50");
    }
}

/// Every cache of this replica: what the admin path and cross-replica invalidation drop
/// ([`crate::data::invalidation::apply`]), and the metrics that count it.
#[derive(Clone)]
pub struct Caches {
    pub configs: ConfigCache,
    pub auth: AuthCache,
    pub tools: ToolsCache,
    pub catalogs: CatalogCache,
    /// What each upstream offers, learned at connect.
    pub capabilities: Arc<UpstreamCapabilities>,
    pub metrics: Arc<Metrics>,
}
