//! The store: the only module that knows SQL. sqlx's `Any` driver gives one code path over
//! SQLite (embedded default) and PostgreSQL (replicas). Every query is counted in
//! `mcp_proxy_db_queries_total{query}`.
//!
//! On PostgreSQL, every write that changes what a replica caches also sends a notification
//! (`pg_notify` on the notify channel) in the same transaction, so other replicas drop their
//! copies ([`crate::data::invalidation`]); a rolled-back write notifies nobody. On SQLite the
//! same writes append the payload to the `changes` table instead, in the same transaction, and
//! a running `serve` reads it through a [`ChangeFeed`] when SQLite's `data_version` moves
//! ([`crate::data::changes`]), so a key revoked by the CLI in another process is heard too.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::postgres::PgListener;
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use sqlx::{Any, AnyPool, ConnectOptions, Connection, Executor, Row, Transaction};

use crate::domain::invalidation::{self, Invalidation};
use crate::domain::keys::hash_key;
use crate::domain::model::{
    ApiKeyRecord, Credentials, InstanceConfig, UpstreamConfig, UpstreamTransport,
};
use crate::domain::secrets::{Keyring, SealError, Secret};
use crate::domain::seed::{Seed, first_missing_secret};
use crate::ops::metrics::Metrics;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// How long a row of the SQLite change log is kept (the newest row always stays, so ids never
/// go back). A reader that missed pruned rows sees a gap in the ids and drops every cache.
const CHANGE_LOG_KEEP: Duration = Duration::from_secs(600);

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
    /// The URL is not one the store speaks (the message lists the accepted forms).
    #[error("{0}")]
    BadUrl(String),
    /// The first connection failed; the cause is the connect error itself, not the pool's
    /// timeout that retrying it ran into.
    #[error("cannot connect: {0}")]
    Connect(sqlx::Error),
    /// Neither the pool nor a direct connection got an answer in time.
    #[error("no answer from the database server within {0:?}")]
    NoAnswer(Duration),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("corrupt row in {table}: {message}")]
    Corrupt {
        table: &'static str,
        message: String,
    },
    #[error("instance {0:?} does not exist")]
    NoSuchInstance(String),
    #[error("{0}")]
    BadChannel(String),
    #[error(
        "{what}, but no secret key was given: set MCP_PROXY_SECRET_KEY or --secret-key-file \
         (64 hex digits; `mcp-proxy secrets new-key` makes one)"
    )]
    NoSecretKey { what: String },
    #[error(
        "{count} secret(s) are sealed with key {key_id}, which this proxy does not hold \
         (its key is {current}; while a rotation rolls out, give the old key with \
         --previous-secret-key-file)"
    )]
    ForeignKey {
        key_id: String,
        count: i64,
        current: String,
    },
    #[error("secret {name:?} of instance {instance:?}: {source}")]
    Sealed {
        instance: String,
        name: String,
        source: SealError,
    },
    #[error(
        "instance {instance:?} uses upstream {upstream:?}, whose templates need ${{{name}}}: \
         give it in the seed's [instance.secrets] or with \
         `mcp-proxy secrets set --instance {instance} {name}`"
    )]
    MissingSecret {
        instance: String,
        upstream: String,
        name: String,
    },
    #[error("instance {instance:?} has no secret {name:?}")]
    NoSuchSecret { instance: String, name: String },
}

/// Connection pool plus the metrics it reports to.
#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    metrics: Arc<Metrics>,
    /// Whether the database is PostgreSQL (the only one with other replicas to notify).
    postgres: bool,
    /// Where cache-changing writes are announced (PostgreSQL only; see [`Store::with_notify_channel`]).
    notify_channel: Option<Arc<str>>,
    /// The SQLite file's URL, when cache-changing writes are logged in `changes` for other
    /// processes ([`Store::change_feed`]); `None` on PostgreSQL and in-memory SQLite.
    change_log: Option<Arc<str>>,
    /// This store's (so this process's) name in the change log's `writer` column: its own
    /// feed skips the rows it wrote (the admin path applied them already).
    writer: Arc<str>,
    /// Seals and opens instance secrets; without it, secrets can be neither written nor read.
    keyring: Option<Arc<Keyring>>,
}

/// What applying a seed changed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SeedReport {
    pub upstreams: usize,
    pub instances: usize,
    pub keys_added: usize,
    pub secrets_set: usize,
}

/// A secret as `secrets list` shows it: its name, never its value.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SecretInfo {
    pub name: String,
    /// The key it is sealed with.
    pub key_id: String,
    pub updated_at: i64,
}

/// A key that was just revoked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevokedKey {
    pub id: String,
    pub instance_id: String,
    pub key_hash: [u8; 32],
}

/// What `revoke_key` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Revoke {
    /// The key was active and is now revoked.
    Revoked(RevokedKey),
    /// The key had been revoked before; nothing changed.
    AlreadyRevoked { instance_id: String },
    /// No key has this id.
    Unknown,
}

/// A key as `keys list` shows it: never the key or its hash. Times are unix milliseconds.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct KeyInfo {
    pub id: String,
    pub created_at: i64,
    /// Written behind in batches (`--usage-flush-interval`), so it lags real use a little.
    pub last_used_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

/// A newly created key: the plaintext is returned once and never stored.
#[derive(Debug, Clone)]
pub struct CreatedKey {
    pub id: String,
    pub instance_id: String,
    pub key: String,
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Normalises a database URL: a SQLite file is created if missing.
fn normalise_url(url: &str) -> String {
    if url.starts_with("sqlite:") && !url.contains("mode=") && !url.contains(":memory:") {
        let sep = if url.contains('?') { '&' } else { '?' };
        format!("{url}{sep}mode=rwc")
    } else {
        url.to_string()
    }
}

/// Why the first connection failed. The pool retries a refused connection until its acquire
/// timeout and then reports only that it timed out; one direct attempt recovers the cause
/// (connection refused, authentication failed, unknown host, ...).
async fn first_connect_error(e: sqlx::Error, url: &str, timeout: Duration) -> StoreError {
    if !matches!(e, sqlx::Error::PoolTimedOut) {
        return StoreError::Connect(e);
    }
    use sqlx::Connection;
    match tokio::time::timeout(timeout, sqlx::AnyConnection::connect(url)).await {
        Ok(Err(cause)) => StoreError::Connect(cause),
        Ok(Ok(conn)) => {
            let _ = conn.close().await;
            StoreError::Connect(e)
        }
        Err(_) => StoreError::NoAnswer(timeout),
    }
}

impl Store {
    /// Connects, configures SQLite for concurrent use, and runs the migrations.
    pub async fn connect(
        url: &str,
        pool_size: u32,
        acquire_timeout: Duration,
        metrics: Arc<Metrics>,
    ) -> Result<Store, StoreError> {
        sqlx::any::install_default_drivers();
        super::url::check(url).map_err(StoreError::BadUrl)?;
        let url = normalise_url(url);
        let is_sqlite = url.starts_with("sqlite:");
        let pool = AnyPoolOptions::new()
            .max_connections(pool_size.max(1))
            .acquire_timeout(acquire_timeout)
            .after_connect(move |conn, _meta| {
                Box::pin(async move {
                    if is_sqlite {
                        conn.execute(
                            "PRAGMA journal_mode = WAL; PRAGMA busy_timeout = 5000; \
                             PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL;",
                        )
                        .await?;
                    }
                    Ok(())
                })
            })
            .connect(&url)
            .await;
        let pool = match pool {
            Ok(pool) => pool,
            Err(e) => return Err(first_connect_error(e, &url, acquire_timeout).await),
        };
        MIGRATOR.run(&pool).await?;
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        Ok(Store {
            pool,
            metrics,
            postgres: invalidation::is_postgres_url(&url),
            notify_channel: None,
            change_log: (is_sqlite && !in_memory).then(|| Arc::from(url.as_str())),
            writer: Arc::from(hex::encode(rand::random::<[u8; 8]>())),
            keyring: None,
        })
    }

    /// Seals and opens instance secrets with `keyring`.
    pub fn with_keyring(mut self, keyring: Option<Keyring>) -> Store {
        self.keyring = keyring.map(Arc::new);
        self
    }

    fn keyring(&self, what: impl FnOnce() -> String) -> Result<&Keyring, StoreError> {
        self.keyring
            .as_deref()
            .ok_or_else(|| StoreError::NoSecretKey { what: what() })
    }

    /// Announces cache-changing writes on `channel` (PostgreSQL only; on SQLite it is checked
    /// and otherwise ignored). Without it the store notifies nobody. The channel must be a
    /// plain identifier (`[a-z_][a-z0-9_]*`, at most 63 bytes).
    pub fn with_notify_channel(mut self, channel: &str) -> Result<Store, StoreError> {
        invalidation::check_channel(channel).map_err(StoreError::BadChannel)?;
        self.notify_channel = self.postgres.then(|| Arc::from(channel));
        Ok(self)
    }

    /// The channel writes are announced on, if any (PostgreSQL with a channel set).
    pub fn notify_channel(&self) -> Option<&str> {
        self.notify_channel.as_deref()
    }

    /// Queues `what` for the other replicas (PostgreSQL) or processes (SQLite: a row of the
    /// change log); delivered when `tx` commits, dropped if it rolls back.
    async fn notify(
        &self,
        tx: &mut Transaction<'static, Any>,
        what: &Invalidation,
    ) -> Result<(), StoreError> {
        if self.change_log.is_some() {
            return self.log_change(tx, what).await;
        }
        let Some(channel) = &self.notify_channel else {
            return Ok(());
        };
        self.metrics.db_query("notify");
        // `pg_notify` returns `void`, which the `Any` driver cannot decode: select a constant.
        sqlx::query("SELECT 1 AS queued FROM pg_notify($1, $2)")
            .bind(channel.as_ref())
            .bind(what.encode())
            .execute(&mut **tx)
            .await?;
        Ok(())
    }

    /// Appends `what` to the SQLite change log inside `tx` (ids contiguous: the writer holds
    /// SQLite's write lock until it commits) and prunes rows older than [`CHANGE_LOG_KEEP`],
    /// keeping the newest.
    async fn log_change(
        &self,
        tx: &mut Transaction<'static, Any>,
        what: &Invalidation,
    ) -> Result<(), StoreError> {
        self.metrics.db_query("change_log");
        let now = now_ms();
        sqlx::query(
            "INSERT INTO changes (id, payload, writer, at_ms) \
             SELECT COALESCE(MAX(id), 0) + 1, $1, $2, $3 FROM changes",
        )
        .bind(what.encode())
        .bind(self.writer.as_ref())
        .bind(now)
        .execute(&mut **tx)
        .await?;
        sqlx::query("DELETE FROM changes WHERE at_ms < $1 AND id < (SELECT MAX(id) FROM changes)")
            .bind(now - CHANGE_LOG_KEEP.as_millis() as i64)
            .execute(&mut **tx)
            .await?;
        Ok(())
    }

    /// A connection of its own that reads the SQLite change log (for the change watcher),
    /// positioned after the newest row, skipping this store's own rows; `None` where there is
    /// no log (PostgreSQL, in-memory).
    pub async fn change_feed(&self) -> Result<Option<ChangeFeed>, StoreError> {
        let Some(url) = &self.change_log else {
            return Ok(None);
        };
        let options: SqliteConnectOptions = url.parse()?;
        let mut conn = options
            .busy_timeout(Duration::from_secs(5))
            .disable_statement_logging()
            .connect()
            .await?;
        self.metrics.db_query("changes");
        let last: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(id), 0) FROM changes")
            .fetch_one(&mut conn)
            .await?;
        Ok(Some(ChangeFeed {
            conn,
            metrics: self.metrics.clone(),
            writer: self.writer.clone(),
            last,
        }))
    }

    pub fn pool_size(&self) -> u32 {
        self.pool.size()
    }

    pub fn pool_idle(&self) -> usize {
        self.pool.num_idle()
    }

    /// Whether the database answers (for `/ready`).
    pub async fn ping(&self) -> bool {
        self.metrics.db_query("ping");
        sqlx::query("SELECT 1").execute(&self.pool).await.is_ok()
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Loads an instance and its upstreams in one flat query, and the secrets their templates
    /// name in a second (only when a template names one), opened and bound to each upstream.
    pub async fn instance_config(&self, id: &str) -> Result<Option<InstanceConfig>, StoreError> {
        self.metrics.db_query("instance_config");
        let rows = sqlx::query(
            "SELECT i.id, i.prefix, u.name, u.transport, u.url, u.ca_file, u.command, u.args, u.env, \
             u.connection, u.headers, u.forward_headers \
             FROM instances i \
             LEFT JOIN instance_upstreams iu ON iu.instance_id = i.id \
             LEFT JOIN upstreams u ON u.name = iu.upstream_name \
             WHERE i.id = $1 \
             ORDER BY iu.position, u.name",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        let Some(first) = rows.first() else {
            return Ok(None);
        };
        let prefix: String = first.try_get("prefix")?;
        let prefix = prefix.parse().map_err(|message| StoreError::Corrupt {
            table: "instances",
            message,
        })?;
        let mut upstreams = Vec::with_capacity(rows.len());
        for row in &rows {
            if let Some(upstream) = upstream_from_row(row)? {
                upstreams.push(upstream);
            }
        }
        if upstreams.iter().any(|u| !u.secret_names().is_empty()) {
            let secrets = self.open_secrets(id).await?;
            for upstream in &mut upstreams {
                upstream.credentials = Credentials {
                    secrets: upstream
                        .secret_names()
                        .into_iter()
                        .filter_map(|n| Some((n.to_string(), secrets.get(n)?.clone())))
                        .collect(),
                    forwarded: BTreeMap::new(),
                };
            }
        }
        Ok(Some(InstanceConfig {
            id: first.try_get("id")?,
            prefix,
            upstreams,
        }))
    }

    /// Every secret of an instance, opened.
    async fn open_secrets(&self, instance: &str) -> Result<BTreeMap<String, Secret>, StoreError> {
        self.metrics.db_query("instance_secrets");
        let rows = sqlx::query("SELECT name, sealed FROM instance_secrets WHERE instance_id = $1")
            .bind(instance)
            .fetch_all(&self.pool)
            .await?;
        let mut out = BTreeMap::new();
        for row in &rows {
            let name: String = row.try_get("name")?;
            let keyring = self.keyring(|| format!("instance {instance:?} has sealed secrets"))?;
            let sealed: String = row.try_get("sealed")?;
            let secret =
                keyring
                    .open(instance, &name, &sealed)
                    .map_err(|source| StoreError::Sealed {
                        instance: instance.to_string(),
                        name: name.clone(),
                        source,
                    })?;
            out.insert(name, secret);
        }
        Ok(out)
    }

    /// Refuses a store whose sealed secrets this proxy cannot open: some and no key, or some
    /// sealed with a key it does not hold (a start-up check, so the first request does not
    /// find out).
    pub async fn check_secret_keys(&self) -> Result<(), StoreError> {
        self.metrics.db_query("secret_keys");
        let rows = sqlx::query(
            "SELECT key_id, COUNT(*) AS n FROM instance_secrets GROUP BY key_id ORDER BY key_id",
        )
        .fetch_all(&self.pool)
        .await?;
        for row in &rows {
            let key_id: String = row.try_get("key_id")?;
            let count: i64 = row.try_get("n")?;
            let keyring = self.keyring(|| {
                format!("the store holds {count} secret(s) sealed with key {key_id}")
            })?;
            if !keyring.holds(&key_id) {
                return Err(StoreError::ForeignKey {
                    key_id,
                    count,
                    current: keyring.key_id().to_string(),
                });
            }
        }
        Ok(())
    }

    /// Sets (adds or replaces) one secret of an instance, sealed, and announces the instance
    /// so every replica reloads its config (and replaces connections made with the old value).
    pub async fn set_secret(
        &self,
        instance: &str,
        name: &str,
        value: &Secret,
    ) -> Result<(), StoreError> {
        let keyring = self.keyring(|| format!("cannot seal secret {name:?}"))?;
        self.metrics.db_query("set_secret");
        let mut tx = self.pool.begin().await?;
        let exists = sqlx::query("SELECT id FROM instances WHERE id = $1")
            .bind(instance)
            .fetch_optional(&mut *tx)
            .await?;
        if exists.is_none() {
            return Err(StoreError::NoSuchInstance(instance.to_string()));
        }
        upsert_secret(&mut tx, keyring, instance, name, value).await?;
        self.notify(&mut tx, &Invalidation::Instance(instance.to_string()))
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Deletes one secret, unless a template of the instance's upstreams still needs it.
    pub async fn delete_secret(&self, instance: &str, name: &str) -> Result<(), StoreError> {
        self.metrics.db_query("delete_secret");
        let mut tx = self.pool.begin().await?;
        let result =
            sqlx::query("DELETE FROM instance_secrets WHERE instance_id = $1 AND name = $2")
                .bind(instance)
                .bind(name)
                .execute(&mut *tx)
                .await?;
        if result.rows_affected() == 0 {
            return Err(StoreError::NoSuchSecret {
                instance: instance.to_string(),
                name: name.to_string(),
            });
        }
        check_no_missing_secret(&mut tx).await?;
        self.notify(&mut tx, &Invalidation::Instance(instance.to_string()))
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// An instance's secrets by name (never a value), in name order.
    pub async fn list_secrets(&self, instance: &str) -> Result<Vec<SecretInfo>, StoreError> {
        self.metrics.db_query("list_secrets");
        let rows = sqlx::query(
            "SELECT s.name, s.key_id, s.updated_at FROM instances i \
             LEFT JOIN instance_secrets s ON s.instance_id = i.id \
             WHERE i.id = $1 ORDER BY s.name",
        )
        .bind(instance)
        .fetch_all(&self.pool)
        .await?;
        if rows.is_empty() {
            return Err(StoreError::NoSuchInstance(instance.to_string()));
        }
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            let Some(name) = row.try_get::<Option<String>, _>("name")? else {
                continue;
            };
            out.push(SecretInfo {
                name,
                key_id: row.try_get("key_id")?,
                updated_at: row.try_get("updated_at")?,
            });
        }
        Ok(out)
    }

    /// Re-seals every secret with the keyring's current key (opening each with whichever key
    /// it names), in one transaction; how many were re-sealed. The key rotation.
    pub async fn reseal_secrets(&self) -> Result<usize, StoreError> {
        let keyring = self.keyring(|| "cannot rotate".to_string())?;
        self.metrics.db_query("reseal_secrets");
        let mut tx = self.pool.begin().await?;
        let rows = sqlx::query("SELECT instance_id, name, sealed FROM instance_secrets")
            .fetch_all(&mut *tx)
            .await?;
        let mut resealed = 0;
        for row in &rows {
            let instance: String = row.try_get("instance_id")?;
            let name: String = row.try_get("name")?;
            let sealed: String = row.try_get("sealed")?;
            let value =
                keyring
                    .open(&instance, &name, &sealed)
                    .map_err(|source| StoreError::Sealed {
                        instance: instance.clone(),
                        name: name.clone(),
                        source,
                    })?;
            upsert_secret(&mut tx, keyring, &instance, &name, &value).await?;
            resealed += 1;
        }
        self.notify(&mut tx, &Invalidation::All).await?;
        tx.commit().await?;
        Ok(resealed)
    }

    /// Looks up an API key by the SHA-256 of its plaintext.
    pub async fn api_key_by_hash(
        &self,
        hash: &[u8; 32],
    ) -> Result<Option<ApiKeyRecord>, StoreError> {
        self.metrics.db_query("api_key");
        let row = sqlx::query(
            "SELECT id, instance_id, key_hash, revoked_at FROM api_keys WHERE key_hash = $1",
        )
        .bind(hex::encode(hash))
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let key_hash = decode_hash(&row.try_get::<String, _>("key_hash")?)?;
        Ok(Some(ApiKeyRecord {
            id: row.try_get("id")?,
            instance_id: row.try_get("instance_id")?,
            key_hash,
            revoked: row.try_get::<Option<i64>, _>("revoked_at")?.is_some(),
        }))
    }

    /// Writes `last_used_at` for many keys in one transaction.
    pub async fn touch_keys(&self, used: &[(String, i64)]) -> Result<(), StoreError> {
        if used.is_empty() {
            return Ok(());
        }
        self.metrics.db_query("touch_keys");
        let mut tx = self.pool.begin().await?;
        for (id, at) in used {
            sqlx::query(
                "UPDATE api_keys SET last_used_at = $1 \
                 WHERE id = $2 AND (last_used_at IS NULL OR last_used_at < $1)",
            )
            .bind(*at)
            .bind(id.as_str())
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// `last_used_at` of a key, if it has been used.
    pub async fn key_last_used(&self, key_id: &str) -> Result<Option<i64>, StoreError> {
        self.metrics.db_query("key_last_used");
        let row = sqlx::query("SELECT last_used_at FROM api_keys WHERE id = $1")
            .bind(key_id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(match row {
            Some(row) => row.try_get::<Option<i64>, _>("last_used_at")?,
            None => None,
        })
    }

    /// Applies a seed in one transaction: upstreams and instances are upserted, each seeded
    /// instance's upstream list is replaced, keys are added if absent (never removed).
    /// Secrets are sealed and upserted (others the instance has stay); afterwards every
    /// template of every instance must find its secrets, or nothing is applied.
    pub async fn apply_seed(&self, seed: &Seed) -> Result<SeedReport, StoreError> {
        let keyring = match seed.instances.iter().find(|i| !i.secrets.is_empty()) {
            Some(i) => {
                Some(self.keyring(|| format!("the seed sets secrets of instance {:?}", i.id))?)
            }
            None => None,
        };
        self.metrics.db_query("apply_seed");
        let now = now_ms();
        let mut report = SeedReport::default();
        let mut tx = self.pool.begin().await?;
        for u in &seed.upstreams {
            upsert_upstream(&mut tx, u, now).await?;
            report.upstreams += 1;
        }
        for i in &seed.instances {
            sqlx::query(
                "INSERT INTO instances (id, prefix, updated_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (id) DO UPDATE SET prefix = excluded.prefix, updated_at = excluded.updated_at",
            )
            .bind(i.id.as_str())
            .bind(i.prefix.as_str())
            .bind(now)
            .execute(&mut *tx)
            .await?;
            sqlx::query("DELETE FROM instance_upstreams WHERE instance_id = $1")
                .bind(i.id.as_str())
                .execute(&mut *tx)
                .await?;
            for (position, name) in i.upstreams.iter().enumerate() {
                sqlx::query(
                    "INSERT INTO instance_upstreams (instance_id, upstream_name, position) VALUES ($1, $2, $3)",
                )
                .bind(i.id.as_str())
                .bind(name.as_str())
                .bind(position as i64)
                .execute(&mut *tx)
                .await?;
            }
            for key in &i.api_keys {
                let result = sqlx::query(
                    "INSERT INTO api_keys (id, instance_id, key_hash, created_at) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (key_hash) DO NOTHING",
                )
                .bind(new_key_id())
                .bind(i.id.as_str())
                .bind(hex::encode(hash_key(key)))
                .bind(now)
                .execute(&mut *tx)
                .await?;
                report.keys_added += result.rows_affected() as usize;
            }
            for (name, value) in &i.secrets {
                let keyring = keyring.expect("checked before the transaction");
                upsert_secret(&mut tx, keyring, &i.id, name, value).await?;
                report.secrets_set += 1;
            }
            report.instances += 1;
        }
        check_no_missing_secret(&mut tx).await?;
        // One `all` rather than one payload per seeded instance and key: an upserted upstream
        // is shared by every instance that lists it, seeded here or not, so only `all` is
        // right without reading back who uses it; seeds are rare admin writes, and refilling
        // the caches once costs one query per instance and key in use.
        self.notify(&mut tx, &Invalidation::All).await?;
        tx.commit().await?;
        Ok(report)
    }

    /// Creates a random key for an instance; the plaintext is only in the returned value.
    /// Announced by its hash: replicas cache unknown keys as absent, and would refuse it for
    /// an auth-cache TTL otherwise.
    pub async fn create_key(&self, instance_id: &str) -> Result<CreatedKey, StoreError> {
        self.metrics.db_query("create_key");
        let mut tx = self.pool.begin().await?;
        let exists = sqlx::query("SELECT id FROM instances WHERE id = $1")
            .bind(instance_id)
            .fetch_optional(&mut *tx)
            .await?;
        if exists.is_none() {
            return Err(StoreError::NoSuchInstance(instance_id.to_string()));
        }
        let key = format!("mcp_{}", hex::encode(rand::random::<[u8; 24]>()));
        let hash = hash_key(&key);
        let id = new_key_id();
        sqlx::query(
            "INSERT INTO api_keys (id, instance_id, key_hash, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(id.as_str())
        .bind(instance_id)
        .bind(hex::encode(hash))
        .bind(now_ms())
        .execute(&mut *tx)
        .await?;
        self.notify(&mut tx, &Invalidation::Key(hash)).await?;
        tx.commit().await?;
        Ok(CreatedKey {
            id,
            instance_id: instance_id.to_string(),
            key,
        })
    }

    /// Marks a key revoked and announces it by its hash, in one transaction. This process's
    /// own auth cache is not touched here: see `AppState::revoke_key`.
    pub async fn revoke_key(&self, key_id: &str) -> Result<Revoke, StoreError> {
        self.metrics.db_query("revoke_key");
        let mut tx = self.pool.begin().await?;
        let row = sqlx::query(
            "UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL \
             RETURNING id, instance_id, key_hash",
        )
        .bind(now_ms())
        .bind(key_id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            let existing = sqlx::query("SELECT instance_id FROM api_keys WHERE id = $1")
                .bind(key_id)
                .fetch_optional(&mut *tx)
                .await?;
            tx.rollback().await?;
            return Ok(match existing {
                Some(row) => Revoke::AlreadyRevoked {
                    instance_id: row.try_get("instance_id")?,
                },
                None => Revoke::Unknown,
            });
        };
        let revoked = RevokedKey {
            id: row.try_get("id")?,
            instance_id: row.try_get("instance_id")?,
            key_hash: decode_hash(&row.try_get::<String, _>("key_hash")?)?,
        };
        self.notify(&mut tx, &Invalidation::Key(revoked.key_hash))
            .await?;
        tx.commit().await?;
        Ok(Revoke::Revoked(revoked))
    }

    /// The keys of an instance, oldest first (one query; never a key or its hash).
    pub async fn list_keys(&self, instance_id: &str) -> Result<Vec<KeyInfo>, StoreError> {
        self.metrics.db_query("list_keys");
        let rows = sqlx::query(
            "SELECT k.id, k.created_at, k.last_used_at, k.revoked_at \
             FROM instances i LEFT JOIN api_keys k ON k.instance_id = i.id \
             WHERE i.id = $1 ORDER BY k.created_at, k.id",
        )
        .bind(instance_id)
        .fetch_all(&self.pool)
        .await?;
        if rows.is_empty() {
            return Err(StoreError::NoSuchInstance(instance_id.to_string()));
        }
        let mut keys = Vec::with_capacity(rows.len());
        for row in &rows {
            // the instance's own row when it has no key
            let Some(id) = row.try_get::<Option<String>, _>("id")? else {
                continue;
            };
            keys.push(KeyInfo {
                id,
                created_at: row.try_get("created_at")?,
                last_used_at: row.try_get("last_used_at")?,
                revoked_at: row.try_get("revoked_at")?,
            });
        }
        Ok(keys)
    }
}

/// A reader of the SQLite change log over a connection of its own (not the pool's): what
/// other connections and processes committed since it last looked.
pub struct ChangeFeed {
    conn: SqliteConnection,
    metrics: Arc<Metrics>,
    /// Rows by this writer are skipped: its process applied them when it wrote them.
    writer: Arc<str>,
    /// The id of the last row read.
    last: i64,
}

/// What the change log held after the last row read.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Changes {
    /// Other processes' payloads, oldest first (not yet parsed: a foreign one is the caller's
    /// to log).
    pub payloads: Vec<String>,
    /// Rows were pruned before this feed read them: what they said is lost.
    pub missed: bool,
    /// Rows read, own ones included (fewer than asked for: none left).
    pub read: usize,
}

impl ChangeFeed {
    /// SQLite's `PRAGMA data_version`: moves when another connection (of this process or any
    /// other) committed a change to the file; reads no table.
    pub async fn data_version(&mut self) -> Result<i64, StoreError> {
        self.metrics.db_query("data_version");
        Ok(sqlx::query_scalar("PRAGMA data_version")
            .fetch_one(&mut self.conn)
            .await?)
    }

    /// The rows after the last one read, at most `limit` of them (call again while it returns
    /// `limit`).
    pub async fn read(&mut self, limit: usize) -> Result<Changes, StoreError> {
        self.metrics.db_query("changes");
        let rows: Vec<(i64, String, String)> = sqlx::query_as(
            "SELECT id, payload, writer FROM changes WHERE id > $1 ORDER BY id LIMIT $2",
        )
        .bind(self.last)
        .bind(limit as i64)
        .fetch_all(&mut self.conn)
        .await?;
        let missed = rows.first().is_some_and(|(id, _, _)| *id != self.last + 1);
        if let Some((id, _, _)) = rows.last() {
            self.last = *id;
        }
        Ok(Changes {
            read: rows.len(),
            payloads: rows
                .into_iter()
                .filter(|(_, _, writer)| *writer != *self.writer)
                .map(|(_, payload, _)| payload)
                .collect(),
            missed,
        })
    }

    /// Closes the connection.
    pub async fn close(self) {
        let _ = self.conn.close().await;
    }
}

/// `SELECT 1` over a notification listener's own connection: its liveness check (a silent
/// network partition never ends `recv` on its own).
pub async fn ping_listener(
    listener: &mut PgListener,
    metrics: &Metrics,
) -> Result<(), sqlx::Error> {
    metrics.db_query("listener_ping");
    sqlx::query("SELECT 1").execute(listener).await?;
    Ok(())
}

fn decode_hash(stored: &str) -> Result<[u8; 32], StoreError> {
    let mut key_hash = [0u8; 32];
    hex::decode_to_slice(stored, &mut key_hash).map_err(|e| StoreError::Corrupt {
        table: "api_keys",
        message: e.to_string(),
    })?;
    Ok(key_hash)
}

fn new_key_id() -> String {
    format!("key_{}", hex::encode(rand::random::<[u8; 8]>()))
}

async fn upsert_upstream(
    tx: &mut Transaction<'static, Any>,
    u: &UpstreamConfig,
    now: i64,
) -> Result<(), StoreError> {
    let json = |v: &BTreeMap<String, String>| serde_json::to_string(v).expect("strings serialise");
    let (transport, url, ca_file, command, args, env, headers) = match &u.transport {
        UpstreamTransport::StreamableHttp {
            url,
            ca_file,
            headers,
        }
        | UpstreamTransport::Sse {
            url,
            ca_file,
            headers,
        } => (
            u.transport.wire(),
            Some(url.clone()),
            ca_file.clone(),
            None,
            "[]".to_string(),
            "{}".to_string(),
            json(headers),
        ),
        UpstreamTransport::Stdio { command, args, env } => (
            "stdio",
            None,
            None,
            Some(command.clone()),
            serde_json::to_string(args).expect("strings serialise"),
            json(env),
            "{}".to_string(),
        ),
    };
    sqlx::query(
        "INSERT INTO upstreams (name, transport, url, ca_file, command, args, env, headers, \
         forward_headers, connection, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
         ON CONFLICT (name) DO UPDATE SET transport = excluded.transport, url = excluded.url, \
         ca_file = excluded.ca_file, command = excluded.command, args = excluded.args, env = excluded.env, \
         headers = excluded.headers, forward_headers = excluded.forward_headers, \
         connection = excluded.connection, updated_at = excluded.updated_at",
    )
    .bind(u.name.as_str())
    .bind(transport)
    .bind(url)
    .bind(ca_file)
    .bind(command)
    .bind(args)
    .bind(env)
    .bind(headers)
    .bind(json(&u.forward_headers))
    .bind(u.connection.as_str())
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

async fn upsert_secret(
    tx: &mut Transaction<'static, Any>,
    keyring: &Keyring,
    instance: &str,
    name: &str,
    value: &Secret,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO instance_secrets (instance_id, name, sealed, key_id, updated_at) \
         VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (instance_id, name) DO UPDATE SET sealed = excluded.sealed, \
         key_id = excluded.key_id, updated_at = excluded.updated_at",
    )
    .bind(instance)
    .bind(name)
    .bind(keyring.seal(instance, name, value))
    .bind(keyring.key_id())
    .bind(now_ms())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Every instance's upstream templates find their secrets (checked inside the writing
/// transaction, which the caller rolls back on an error).
async fn check_no_missing_secret(tx: &mut Transaction<'static, Any>) -> Result<(), StoreError> {
    let rows = sqlx::query(
        "SELECT iu.instance_id, u.name, u.transport, u.url, u.ca_file, u.command, u.args, u.env, \
         u.connection, u.headers, u.forward_headers \
         FROM instance_upstreams iu JOIN upstreams u ON u.name = iu.upstream_name \
         ORDER BY iu.instance_id, iu.position",
    )
    .fetch_all(&mut **tx)
    .await?;
    let mut uses = Vec::with_capacity(rows.len());
    for row in &rows {
        if let Some(upstream) = upstream_from_row(row)?
            && !upstream.secret_names().is_empty()
        {
            uses.push((row.try_get::<String, _>("instance_id")?, upstream));
        }
    }
    if uses.is_empty() {
        return Ok(());
    }
    let mut have = std::collections::BTreeSet::new();
    for row in sqlx::query("SELECT instance_id, name FROM instance_secrets")
        .fetch_all(&mut **tx)
        .await?
    {
        have.insert((
            row.try_get::<String, _>("instance_id")?,
            row.try_get::<String, _>("name")?,
        ));
    }
    let missing = first_missing_secret(
        uses.iter().map(|(i, u)| (i.as_str(), u)),
        |instance, name| have.contains(&(instance.to_string(), name.to_string())),
    );
    match missing {
        Some((instance, upstream, name)) => Err(StoreError::MissingSecret {
            instance,
            upstream,
            name,
        }),
        None => Ok(()),
    }
}

fn upstream_from_row(row: &AnyRow) -> Result<Option<UpstreamConfig>, StoreError> {
    let Some(name) = row.try_get::<Option<String>, _>("name")? else {
        return Ok(None);
    };
    let corrupt = |message: String| StoreError::Corrupt {
        table: "upstreams",
        message: format!("{name}: {message}"),
    };
    let transport: String = row.try_get("transport")?;
    let transport = match transport.as_str() {
        wire @ ("streamable-http" | "sse") => {
            let url = row
                .try_get::<Option<String>, _>("url")?
                .ok_or_else(|| corrupt(format!("{wire} upstream without url")))?;
            let ca_file = row.try_get::<Option<String>, _>("ca_file")?;
            let headers = json_map(row, "headers").map_err(corrupt)?;
            match wire {
                "sse" => UpstreamTransport::Sse {
                    url,
                    ca_file,
                    headers,
                },
                _ => UpstreamTransport::StreamableHttp {
                    url,
                    ca_file,
                    headers,
                },
            }
        }
        "stdio" => {
            let args: String = row.try_get("args")?;
            let env: String = row.try_get("env")?;
            UpstreamTransport::Stdio {
                command: row
                    .try_get::<Option<String>, _>("command")?
                    .ok_or_else(|| corrupt("stdio upstream without command".into()))?,
                args: serde_json::from_str::<Vec<String>>(&args)
                    .map_err(|e| corrupt(e.to_string()))?,
                env: serde_json::from_str::<BTreeMap<String, String>>(&env)
                    .map_err(|e| corrupt(e.to_string()))?,
            }
        }
        other => return Err(corrupt(format!("unknown transport {other:?}"))),
    };
    let connection: String = row.try_get("connection")?;
    let connection = connection.parse().map_err(corrupt)?;
    Ok(Some(UpstreamConfig {
        forward_headers: json_map(row, "forward_headers").map_err(corrupt)?,
        name,
        transport,
        connection,
        credentials: Credentials::default(),
    }))
}

/// A JSON object of strings stored in `column`.
fn json_map(row: &AnyRow, column: &str) -> Result<BTreeMap<String, String>, String> {
    let text: String = row.try_get(column).map_err(|e| e.to_string())?;
    serde_json::from_str(&text).map_err(|e| format!("{column}: {e}"))
}
