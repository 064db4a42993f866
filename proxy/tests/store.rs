//! Contract: one store code path over SQLite (always) and PostgreSQL (when
//! `TEST_DATABASE_URL` is set; skipped with a message otherwise): migrations at start, an
//! idempotent seed, an instance config in one flat query, hashed keys, batched usage writes,
//! and a config cache that is single-flight, bounded by TTL, invalidatable and bypassable.

mod common;

use std::sync::Arc;
use std::time::Duration;

use mcp_proxy::data::cache::{AuthCache, ConfigCache, ConfigError};
use mcp_proxy::data::store::{Revoke, RevokedKey, Store, StoreError};
use mcp_proxy::data::usage::UsageRecorder;
use mcp_proxy::domain::keys::hash_key;
use mcp_proxy::domain::model::{ConnectionMode, PrefixMode, UpstreamTransport};
use mcp_proxy::domain::seed::Seed;
use mcp_proxy::ops::metrics::Metrics;

const SEED: &str = r#"
[[upstream]]
name = "zeta"
transport = "streamable-http"
url = "http://127.0.0.1:9001/mcp"

[[upstream]]
name = "alpha"
transport = "stdio"
command = "mock-mcp"
args = ["stdio", "--x"]
env = { A = "1" }
connection = "per-request"

[[instance]]
id = "demo"
upstreams = ["zeta", "alpha"]
api_keys = ["demo-key-0001", "demo-key-0002"]
prefix = "always"

[[instance]]
id = "empty"
upstreams = []
"#;

/// A database for one test: a temp SQLite file, or a fresh schema in the PostgreSQL of
/// `TEST_DATABASE_URL`.
struct TestDb {
    url: String,
    _dir: Option<tempfile::TempDir>,
    label: &'static str,
    /// PostgreSQL: the base URL and the schema to drop when done.
    pg: Option<(String, String)>,
}

impl TestDb {
    async fn cleanup(&self) {
        if let Some((base, schema)) = &self.pg {
            let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(base)
                .await
                .unwrap();
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
                .execute(&mut conn)
                .await
                .unwrap();
        }
    }
}

async fn databases() -> Vec<TestDb> {
    let dir = tempfile::tempdir().unwrap();
    let mut dbs = vec![TestDb {
        url: format!("sqlite://{}", dir.path().join("store.db").display()),
        _dir: Some(dir),
        label: "sqlite",
        pg: None,
    }];
    match std::env::var("TEST_DATABASE_URL") {
        Ok(base) if !base.is_empty() => {
            let schema = format!("t_{}", hex::encode(rand_bytes()));
            sqlx::any::install_default_drivers();
            let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&base)
                .await
                .expect("TEST_DATABASE_URL connects");
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
                .execute(&mut conn)
                .await
                .unwrap();
            let sep = if base.contains('?') { '&' } else { '?' };
            dbs.push(TestDb {
                url: format!("{base}{sep}options=-c%20search_path%3D{schema}"),
                _dir: None,
                label: "postgres",
                pg: Some((base.clone(), schema)),
            });
        }
        _ => eprintln!("TEST_DATABASE_URL is not set: PostgreSQL store tests skipped (SQLite ran)"),
    }
    dbs
}

fn rand_bytes() -> [u8; 6] {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let mut out = [0u8; 6];
    out.copy_from_slice(&(nanos ^ (std::process::id() as u128) << 64).to_le_bytes()[..6]);
    out
}

async fn open(db: &TestDb) -> (Store, Arc<Metrics>) {
    let metrics = Arc::new(Metrics::default());
    let store = Store::connect(&db.url, 5, Duration::from_secs(5), metrics.clone())
        .await
        .unwrap();
    (store, metrics)
}

fn queries(metrics: &Metrics, name: &str) -> u64 {
    metrics
        .db_queries
        .get_or_create(&mcp_proxy::ops::metrics::Query { query: name.into() })
        .get()
}

#[tokio::test]
async fn seed_is_idempotent_and_config_is_one_query() {
    for db in databases().await {
        let (store, metrics) = open(&db).await;
        let seed = Seed::parse(SEED).unwrap();
        let first = store.apply_seed(&seed).await.unwrap();
        assert_eq!(
            (first.upstreams, first.instances, first.keys_added),
            (2, 2, 2),
            "{}",
            db.label
        );
        // reconnecting re-runs migrations harmlessly; re-seeding adds nothing
        store.close().await;
        let (store, metrics2) = open(&db).await;
        let again = store.apply_seed(&seed).await.unwrap();
        assert_eq!(again.keys_added, 0, "{}", db.label);

        let config = store.instance_config("demo").await.unwrap().unwrap();
        assert_eq!(
            queries(&metrics2, "instance_config"),
            1,
            "{}: one query per config",
            db.label
        );
        assert_eq!(config.prefix, PrefixMode::Always);
        let names: Vec<&str> = config.upstreams.iter().map(|u| u.name.as_str()).collect();
        assert_eq!(names, ["zeta", "alpha"], "{}: seed order kept", db.label);
        assert_eq!(config.upstreams[1].connection, ConnectionMode::PerRequest);
        match &config.upstreams[1].transport {
            UpstreamTransport::Stdio { command, args, env } => {
                assert_eq!(command, "mock-mcp");
                assert_eq!(args, &["stdio", "--x"]);
                assert_eq!(env["A"], "1");
            }
            other => panic!("{other:?}"),
        }
        let empty = store.instance_config("empty").await.unwrap().unwrap();
        assert!(empty.upstreams.is_empty());
        assert!(store.instance_config("nope").await.unwrap().is_none());
        drop(metrics);
        store.close().await;
        db.cleanup().await;
    }
}

#[tokio::test]
async fn keys_are_hashed_revocable_and_usage_is_batched() {
    for db in databases().await {
        let (store, metrics) = open(&db).await;
        store.apply_seed(&Seed::parse(SEED).unwrap()).await.unwrap();
        let record = store
            .api_key_by_hash(&hash_key("demo-key-0001"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(record.instance_id, "demo");
        assert!(!record.revoked);
        assert!(
            store
                .api_key_by_hash(&hash_key("not-a-key"))
                .await
                .unwrap()
                .is_none()
        );

        let created = store.create_key("demo").await.unwrap();
        assert!(created.key.starts_with("mcp_") && created.key.len() > 40);
        let found = store
            .api_key_by_hash(&hash_key(&created.key))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(found.id, created.id);
        assert_eq!(
            store.revoke_key(&created.id).await.unwrap(),
            Revoke::Revoked(RevokedKey {
                id: created.id.clone(),
                instance_id: "demo".into(),
                key_hash: hash_key(&created.key),
            }),
            "{}",
            db.label
        );
        assert_eq!(
            store.revoke_key(&created.id).await.unwrap(),
            Revoke::AlreadyRevoked {
                instance_id: "demo".into()
            },
            "revoking twice changes nothing"
        );
        assert_eq!(store.revoke_key("key_nope").await.unwrap(), Revoke::Unknown);
        // listing: every key of the instance, oldest first, revoked ones marked, no hash
        let keys = store.list_keys("demo").await.unwrap();
        assert_eq!(keys.len(), 3, "{}: two seeded, one created", db.label);
        assert_eq!(keys[2].id, created.id);
        assert!(keys[2].revoked_at.is_some());
        assert!(keys[..2].iter().all(|k| k.revoked_at.is_none()));
        assert!(
            keys.iter()
                .all(|k| k.created_at > 0 && k.last_used_at.is_none())
        );
        assert!(store.list_keys("empty").await.unwrap().is_empty());
        assert!(matches!(
            store.list_keys("nope").await,
            Err(StoreError::NoSuchInstance(id)) if id == "nope"
        ));
        assert!(
            store
                .api_key_by_hash(&hash_key(&created.key))
                .await
                .unwrap()
                .unwrap()
                .revoked
        );
        assert!(store.create_key("nope").await.is_err());

        // 1000 noted uses of two keys become one batched write
        let usage = UsageRecorder::default();
        for _ in 0..500 {
            usage.record(&record.id);
            usage.record(&created.id);
        }
        assert_eq!(usage.pending(), 2);
        assert_eq!(usage.flush(&store).await.unwrap(), 2, "{}", db.label);
        assert_eq!(queries(&metrics, "touch_keys"), 1);
        assert!(store.key_last_used(&record.id).await.unwrap().is_some());
        let listed = store.list_keys("demo").await.unwrap();
        let used = listed.iter().find(|k| k.id == record.id).unwrap();
        assert_eq!(
            used.last_used_at,
            store.key_last_used(&record.id).await.unwrap()
        );
        assert_eq!(
            usage.flush(&store).await.unwrap(),
            0,
            "nothing pending, nothing written"
        );
        assert_eq!(queries(&metrics, "touch_keys"), 1);

        // a failed flush keeps the batch for the next one
        usage.record(&record.id);
        store.close().await;
        assert!(usage.flush(&store).await.is_err());
        assert_eq!(usage.pending(), 1, "{}: nothing lost", db.label);
        db.cleanup().await;
    }
}

#[tokio::test]
async fn config_cache_is_single_flight_invalidatable_and_bypassable() {
    for db in databases().await {
        let (store, metrics) = open(&db).await;
        store.apply_seed(&Seed::parse(SEED).unwrap()).await.unwrap();
        let cache = ConfigCache::new(
            store.clone(),
            metrics.clone(),
            Duration::from_secs(60),
            100,
            false,
        );
        // 50 concurrent cold reads: one query
        let reads = (0..50).map(|_| cache.get("demo"));
        let results = futures::future::join_all(reads).await;
        assert!(results.iter().all(|r| r.as_ref().unwrap().id == "demo"));
        assert_eq!(
            queries(&metrics, "instance_config"),
            1,
            "{}: single flight",
            db.label
        );
        for _ in 0..100 {
            cache.get("demo").await.unwrap();
        }
        assert_eq!(queries(&metrics, "instance_config"), 1);
        assert_eq!(metrics.config_cache_misses.get(), 1);
        assert_eq!(metrics.config_cache_hits.get(), 149);
        // an unknown instance is not cached (a newly seeded one must be visible at once)
        assert!(matches!(
            cache.get("later").await.unwrap_err().as_ref(),
            ConfigError::Missing
        ));
        store
            .apply_seed(&Seed::parse("[[instance]]\nid = \"later\"\nupstreams = []\n").unwrap())
            .await
            .unwrap();
        assert_eq!(cache.get("later").await.unwrap().id, "later");
        // explicit invalidation
        cache.invalidate("demo").await;
        let before = queries(&metrics, "instance_config");
        cache.get("demo").await.unwrap();
        assert_eq!(queries(&metrics, "instance_config"), before + 1);
        // TTL
        let short = ConfigCache::new(
            store.clone(),
            metrics.clone(),
            Duration::from_millis(100),
            100,
            false,
        );
        short.get("demo").await.unwrap();
        tokio::time::sleep(Duration::from_millis(250)).await;
        let before = queries(&metrics, "instance_config");
        short.get("demo").await.unwrap();
        assert_eq!(
            queries(&metrics, "instance_config"),
            before + 1,
            "{}: expired after TTL",
            db.label
        );
        // bypass: every read queries
        let bypass = ConfigCache::new(
            store.clone(),
            metrics.clone(),
            Duration::from_secs(60),
            100,
            true,
        );
        let before = queries(&metrics, "instance_config");
        for _ in 0..3 {
            bypass.get("demo").await.unwrap();
        }
        assert_eq!(queries(&metrics, "instance_config"), before + 3);

        let auth = AuthCache::new(store.clone(), metrics.clone(), Duration::from_secs(60), 100);
        for _ in 0..10 {
            assert!(
                auth.lookup(&hash_key("demo-key-0002"))
                    .await
                    .unwrap()
                    .is_some()
            );
            assert!(
                auth.lookup(&hash_key("unknown-key"))
                    .await
                    .unwrap()
                    .is_none()
            );
        }
        assert_eq!(
            queries(&metrics, "api_key"),
            2,
            "{}: unknown keys are cached too",
            db.label
        );
        store.close().await;
        db.cleanup().await;
    }
}

#[tokio::test]
async fn the_proxy_serves_from_each_database() {
    for db in databases().await {
        let mock = mock_mcp::MockServer::start(Default::default())
            .await
            .unwrap();
        let seed = common::http_seed(
            &[("echo", &mock.url(), "shared")],
            "demo",
            "demo-key-0001",
            "auto",
        );
        let url = db.url.clone();
        let proxy = common::start_proxy(&seed, |s| s.database_url = Some(url)).await;
        let client = common::client(&proxy.url("demo"), "demo-key-0001").await;
        let r = client
            .call_tool(common::call(
                "echo",
                serde_json::json!({ "text": db.label }),
            ))
            .await
            .unwrap();
        assert_eq!(common::text(&r), db.label);
        let ready = reqwest::get(format!("{}/ready", proxy.base()))
            .await
            .unwrap();
        assert_eq!(ready.status(), 200, "{}", db.label);
        client.cancel().await.unwrap();
        proxy.shutdown().await;
        db.cleanup().await;
    }
}

#[tokio::test]
async fn an_https_upstream_keeps_its_ca_file_and_a_new_seed_replaces_it() {
    let ca_dir = tempfile::tempdir().unwrap();
    let ca = ca_dir.path().join("ca.pem");
    std::fs::write(
        &ca,
        "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let seed = |ca_line: &str| {
        format!(
            "[[upstream]]\nname = \"hosted\"\ntransport = \"streamable-http\"\nurl = \"https://mcp.example.com/mcp\"\n{ca_line}\n\
             [[instance]]\nid = \"demo\"\nupstreams = [\"hosted\"]\n"
        )
    };
    for db in databases().await {
        let (store, _metrics) = open(&db).await;
        let ca_file = ca.display().to_string();
        let with = Seed::parse(&seed(&format!("ca_file = {ca_file:?}"))).unwrap();
        store.apply_seed(&with).await.unwrap();
        let config = store.instance_config("demo").await.unwrap().unwrap();
        assert_eq!(
            config.upstreams[0].transport,
            UpstreamTransport::StreamableHttp {
                url: "https://mcp.example.com/mcp".into(),
                ca_file: Some(ca_file.clone()),
                headers: Default::default(),
            },
            "{}",
            db.label
        );
        store
            .apply_seed(&Seed::parse(&seed("")).unwrap())
            .await
            .unwrap();
        let config = store.instance_config("demo").await.unwrap().unwrap();
        assert!(
            matches!(
                &config.upstreams[0].transport,
                UpstreamTransport::StreamableHttp { ca_file: None, .. }
            ),
            "{}: {:?}",
            db.label,
            config.upstreams[0].transport
        );
        store.close().await;
        db.cleanup().await;
    }
}

#[tokio::test]
async fn credentials_round_trip_sealed_and_bound_to_their_own_instance() {
    use mcp_proxy::domain::secrets::{Keyring, Secret, SecretKey};
    let seed = |extra_instance: &str| {
        format!(
            r#"
[[upstream]]
name = "gh"
transport = "streamable-http"
url = "https://mcp.example.com/mcp"
connection = "per-session"
headers = {{ Authorization = "Bearer ${{TOKEN}}" }}
forward_headers = {{ X-User = "X-Upstream-User" }}

[[instance]]
id = "a"
upstreams = ["gh"]
secrets = {{ TOKEN = "token-of-a" }}

[[instance]]
id = "b"
upstreams = ["gh"]
secrets = {{ TOKEN = "token-of-b" }}
{extra_instance}"#
        )
    };
    for db in databases().await {
        let (store, metrics) = open(&db).await;
        let keyring = Keyring::new(SecretKey::parse(&SecretKey::generate()).unwrap(), vec![]);
        let store = store.with_keyring(Some(keyring));
        let report = store
            .apply_seed(&Seed::parse(&seed("")).unwrap())
            .await
            .unwrap();
        assert_eq!(report.secrets_set, 2, "{}", db.label);
        let before = queries(&metrics, "instance_config") + queries(&metrics, "instance_secrets");
        for (instance, token) in [("a", "token-of-a"), ("b", "token-of-b")] {
            let config = store.instance_config(instance).await.unwrap().unwrap();
            let gh = &config.upstreams[0];
            assert_eq!(
                gh.forward_headers["X-User"], "X-Upstream-User",
                "{}",
                db.label
            );
            let rendered = gh.rendered().unwrap();
            assert_eq!(
                rendered[0].1.expose(),
                format!("Bearer {token}"),
                "{}",
                db.label
            );
        }
        let after = queries(&metrics, "instance_config") + queries(&metrics, "instance_secrets");
        assert_eq!(
            after - before,
            4,
            "{}: two flat queries per config",
            db.label
        );

        store
            .set_secret("a", "TOKEN", &Secret::new("token-of-a-2"))
            .await
            .unwrap();
        let config = store.instance_config("a").await.unwrap().unwrap();
        assert_eq!(
            config.upstreams[0].rendered().unwrap()[0].1.expose(),
            "Bearer token-of-a-2"
        );
        assert_eq!(
            store
                .list_secrets("a")
                .await
                .unwrap()
                .iter()
                .map(|s| s.name.as_str())
                .collect::<Vec<_>>(),
            ["TOKEN"]
        );

        // an instance without the secret: refused naming all three, and nothing applied
        let e = store
            .apply_seed(
                &Seed::parse(&seed("[[instance]]\nid = \"c\"\nupstreams = [\"gh\"]\n")).unwrap(),
            )
            .await
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("instance \"c\" uses upstream \"gh\"") && e.contains("${TOKEN}"),
            "{}: {e}",
            db.label
        );
        assert!(
            store.instance_config("c").await.unwrap().is_none(),
            "{}: rolled back",
            db.label
        );

        store.check_secret_keys().await.unwrap();
        let keyless = store.clone().with_keyring(None);
        let e = keyless.check_secret_keys().await.unwrap_err().to_string();
        assert!(
            e.contains("holds 2 secret(s)") && e.contains("no secret key"),
            "{e}"
        );
        store.close().await;
        db.cleanup().await;
    }
}
