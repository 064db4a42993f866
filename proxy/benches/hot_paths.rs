//! Hot paths of every request, measured with criterion (targets: cached auth check and
//! config-cache hit ≤ 1 µs each). Run: `cargo bench -p mcp-proxy --bench hot_paths`.

use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use mcp_proxy::data::cache::{AuthCache, ConfigCache};
use mcp_proxy::data::store::Store;
use mcp_proxy::domain::router::{ToolIndex, route_by_name};
use mcp_proxy::domain::seed::Seed;
use mcp_proxy::http::auth::{authenticate, extract_key};
use mcp_proxy::ops::metrics::Metrics;
use rmcp::model::Tool;

const SEED: &str = r#"
[[upstream]]
name = "alpha"
transport = "streamable-http"
url = "http://127.0.0.1:9/mcp"
[[upstream]]
name = "beta"
transport = "streamable-http"
url = "http://127.0.0.1:9/mcp"
[[instance]]
id = "demo"
upstreams = ["alpha", "beta"]
api_keys = ["demo-key-0001"]
[[instance]]
id = "flat"
upstreams = ["alpha", "beta"]
prefix = "never"
"#;

fn hot_paths(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let metrics = Arc::new(Metrics::default());
    let (auth, configs) = rt.block_on(async {
        let url = format!("sqlite://{}", dir.path().join("bench.db").display());
        let store = Store::connect(&url, 4, Duration::from_secs(5), metrics.clone())
            .await
            .unwrap();
        store.apply_seed(&Seed::parse(SEED).unwrap()).await.unwrap();
        let auth = AuthCache::new(
            store.clone(),
            metrics.clone(),
            Duration::from_secs(3600),
            10_000,
        );
        let configs = ConfigCache::new(
            store,
            metrics.clone(),
            Duration::from_secs(3600),
            10_000,
            false,
        );
        // warm both caches
        authenticate(&auth, "demo", Some("demo-key-0001"))
            .await
            .unwrap();
        configs.get("demo").await.unwrap();
        (auth, configs)
    });
    let mut headers = axum::http::HeaderMap::new();
    headers.insert("authorization", "Bearer demo-key-0001".parse().unwrap());

    c.bench_function("auth: extract + sha256 + cached check", |b| {
        b.to_async(&rt).iter(|| async {
            let key = extract_key(&headers, None);
            authenticate(&auth, "demo", key.as_deref()).await.unwrap()
        })
    });
    c.bench_function("config cache hit", |b| {
        b.to_async(&rt)
            .iter(|| async { configs.get("demo").await.unwrap() })
    });

    let config = rt.block_on(configs.get("demo")).unwrap();
    c.bench_function("route prefixed name", |b| {
        b.iter(|| route_by_name(&config, std::hint::black_box("beta__echo")).unwrap())
    });
    let tools: Vec<Tool> = (0..50)
        .map(|i| Tool::new(format!("tool_{i}"), "d", Arc::new(serde_json::Map::new())))
        .collect();
    let index = ToolIndex::build(
        false,
        vec![("alpha".into(), tools.clone()), ("beta".into(), tools)],
        vec![],
    );
    c.bench_function("route by merged index (100 tools)", |b| {
        b.iter(|| index.route(std::hint::black_box("tool_42")).unwrap())
    });
    drop(rt);
}

criterion_group!(benches, hot_paths);
criterion_main!(benches);
