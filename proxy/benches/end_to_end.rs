//! One `tools/call` through the proxy over loopback (client → proxy → shared HTTP upstream →
//! back), alone and as a burst of 80 concurrent calls (Cloud Run's concurrency), against the
//! same call made to the upstream directly. Run:
//! `cargo bench -p mcp-proxy --bench end_to_end`.

use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use mcp_proxy::Settings;
use rmcp::ServiceExt;
use rmcp::model::CallToolRequestParams;
use rmcp::service::RunningService;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;

type Client = RunningService<rmcp::RoleClient, ()>;

async fn connect(url: String, key: Option<&str>) -> Client {
    let mut config = StreamableHttpClientTransportConfig::with_uri(url);
    if let Some(key) = key {
        config = config.auth_header(key.to_string());
    }
    let transport = StreamableHttpClientTransport::with_client(reqwest::Client::new(), config);
    ().serve(transport).await.unwrap()
}

fn echo() -> CallToolRequestParams {
    let mut p = CallToolRequestParams::new("echo");
    p.arguments = serde_json::json!({ "text": "bench" }).as_object().cloned();
    p
}

fn end_to_end(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (mock, proxy, direct, proxied) = rt.block_on(async {
        let mock = mock_mcp::MockServer::start(Default::default()).await.unwrap();
        let seed = dir.path().join("seed.toml");
        std::fs::write(
            &seed,
            format!(
                "[[upstream]]\nname = \"echo\"\ntransport = \"streamable-http\"\nurl = \"{}\"\n\n\
                 [[instance]]\nid = \"demo\"\nupstreams = [\"echo\"]\napi_keys = [\"demo-key-0001\"]\n",
                mock.url()
            ),
        )
        .unwrap();
        let proxy = mcp_proxy::start(Settings {
            listen: "127.0.0.1:0".parse().unwrap(),
            database_url: Some(format!("sqlite://{}", dir.path().join("b.db").display())),
            seed: Some(seed),
            ..Settings::default()
        })
        .await
        .unwrap();
        let direct = connect(mock.url(), None).await;
        let proxied = connect(proxy.mcp_url("demo"), Some("demo-key-0001")).await;
        (mock, proxy, direct, proxied)
    });
    let mut group = c.benchmark_group("tools/call echo");
    group.measurement_time(Duration::from_secs(5));
    group.bench_function("direct to upstream", |b| {
        b.to_async(&rt)
            .iter(|| async { direct.call_tool(echo()).await.unwrap() })
    });
    group.bench_function("through the proxy", |b| {
        b.to_async(&rt)
            .iter(|| async { proxied.call_tool(echo()).await.unwrap() })
    });
    group.bench_function("through the proxy, 80 concurrent", |b| {
        b.to_async(&rt).iter(|| async {
            let calls = (0..80).map(|_| proxied.call_tool(echo()));
            for r in futures::future::join_all(calls).await {
                r.unwrap();
            }
        })
    });
    group.finish();
    rt.block_on(async {
        direct.cancel().await.unwrap();
        proxied.cancel().await.unwrap();
        proxy.shutdown().await;
        mock.shutdown().await;
    });
}

criterion_group!(benches, end_to_end);
criterion_main!(benches);
