//! The two read-through caches in front of the store (moka): instance config and API keys.
//! Both are bounded, expire by TTL, load single-flight on a miss (concurrent misses for one
//! key run one query), and can be invalidated explicitly when the seed/admin path changes data.

use std::sync::Arc;
use std::time::Duration;

use moka::future::Cache;
use prometheus_client::metrics::counter::Counter;

use crate::metrics::Metrics;
use crate::model::{ApiKeyRecord, InstanceConfig};
use crate::store::{Store, StoreError};

/// Why a config could not be produced. A missing instance is not cached, so a newly seeded
/// instance is visible at once.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("no such instance")]
    Missing,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Instance config, keyed by instance id.
#[derive(Clone)]
pub struct ConfigCache {
    cache: Cache<String, Arc<InstanceConfig>>,
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
            cache: Cache::builder()
                .max_capacity(capacity)
                .time_to_live(ttl)
                .build(),
            store,
            metrics,
            bypass,
        }
    }

    /// The config of `id`: from the cache, else one query (shared by concurrent callers).
    pub async fn get(&self, id: &str) -> Result<Arc<InstanceConfig>, Arc<ConfigError>> {
        if self.bypass {
            self.metrics.config_cache_misses.inc();
            return match self.store.instance_config(id).await {
                Ok(Some(config)) => Ok(Arc::new(config)),
                Ok(None) => Err(Arc::new(ConfigError::Missing)),
                Err(e) => Err(Arc::new(e.into())),
            };
        }
        let entry = self
            .cache
            .entry_by_ref(id)
            .or_try_insert_with(async {
                match self.store.instance_config(id).await {
                    Ok(Some(config)) => Ok(Arc::new(config)),
                    Ok(None) => Err(ConfigError::Missing),
                    Err(e) => Err(ConfigError::Store(e)),
                }
            })
            .await?;
        count_lookup(
            entry.is_fresh(),
            &self.metrics.config_cache_hits,
            &self.metrics.config_cache_misses,
        );
        Ok(entry.into_value())
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
    cache: Cache<[u8; 32], Option<Arc<ApiKeyRecord>>>,
    store: Store,
    metrics: Arc<Metrics>,
}

impl AuthCache {
    pub fn new(store: Store, metrics: Arc<Metrics>, ttl: Duration, capacity: u64) -> Self {
        Self {
            cache: Cache::builder()
                .max_capacity(capacity)
                .time_to_live(ttl)
                .build(),
            store,
            metrics,
        }
    }

    pub async fn lookup(
        &self,
        hash: &[u8; 32],
    ) -> Result<Option<Arc<ApiKeyRecord>>, Arc<StoreError>> {
        let entry = self
            .cache
            .entry_by_ref(hash)
            .or_try_insert_with(async {
                self.store
                    .api_key_by_hash(hash)
                    .await
                    .map(|r| r.map(Arc::new))
            })
            .await?;
        count_lookup(
            entry.is_fresh(),
            &self.metrics.auth_cache_hits,
            &self.metrics.auth_cache_misses,
        );
        Ok(entry.into_value())
    }

    pub fn invalidate_all(&self) {
        self.cache.invalidate_all();
    }
}

/// A freshly inserted entry means the value was loaded: a miss.
fn count_lookup(fresh: bool, hits: &Counter, misses: &Counter) {
    let counter = if fresh { misses } else { hits };
    counter.inc();
}
