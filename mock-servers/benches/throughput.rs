//! How many `tools/call echo` a healthy `mock-mcp` answers when its server runs on one core
//! (a current-thread runtime on its own thread), driven by 8 sessions × 8 concurrent calls
//! from a separate runtime. Requests per second = 64 / time per batch.
//! Run: `cargo bench -p mock-mcp --bench throughput`.

use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use mock_mcp::{MockConfig, MockServer};
use rmcp::ServiceExt;
use rmcp::model::CallToolRequestParams;
use rmcp::transport::StreamableHttpClientTransport;

fn throughput(c: &mut Criterion) {
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let server = MockServer::start(MockConfig::default()).await.unwrap();
            addr_tx.send(server.url()).unwrap();
            let _ = stop_rx.await;
            server.shutdown().await;
        });
    });
    let url = addr_rx.recv().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let clients = rt.block_on(async {
        let mut clients = Vec::new();
        for _ in 0..8 {
            clients.push(
                ().serve(StreamableHttpClientTransport::from_uri(url.clone()))
                    .await
                    .unwrap(),
            );
        }
        clients
    });
    let echo = || {
        let mut p = CallToolRequestParams::new("echo");
        p.arguments = serde_json::json!({ "text": "x" }).as_object().cloned();
        p
    };
    let mut group = c.benchmark_group("mock-mcp serve, one core");
    group.measurement_time(Duration::from_secs(8));
    group.throughput(criterion::Throughput::Elements(64));
    group.bench_function("64 concurrent echo calls (8 sessions)", |b| {
        b.to_async(&rt).iter(|| async {
            let calls = clients
                .iter()
                .flat_map(|c| (0..8).map(move |_| c.call_tool(echo())));
            for r in futures::future::join_all(calls).await {
                r.unwrap();
            }
        })
    });
    group.finish();
    rt.block_on(async {
        for c in clients {
            c.cancel().await.unwrap();
        }
    });
    let _ = stop_tx.send(());
    server.join().unwrap();
}

criterion_group!(benches, throughput);
criterion_main!(benches);
