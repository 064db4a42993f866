//! Contract (the seeds' original leak): when connecting to an upstream fails — refused socket,
//! a child that dies before initialize, a command that does not exist — the client and its
//! transport are released. After 500 failed connects each, the process's fds (by kind) and
//! children are back at their starting values, with no zombie.

mod common;

use std::time::Duration;

use common::*;
use mcp_loadgen::probe;
use serde_json::json;

fn snapshot() -> (probe::FdCounts, probe::ChildCounts) {
    let me = std::process::id();
    (probe::fds(me).unwrap(), probe::children(me).unwrap())
}

const SEED: &str = r#"
[[upstream]]
name = "refused"
transport = "streamable-http"
url = "REFUSED_URL"
connection = "per-request"

[[upstream]]
name = "dies"
transport = "stdio"
command = "false"
connection = "shared"

[[upstream]]
name = "missing"
transport = "stdio"
command = "/nonexistent/mcp-server"
connection = "per-request"

[[instance]]
id = "leaky"
upstreams = ["refused", "dies", "missing"]
api_keys = ["leaky-key-0001"]
"#;

#[tokio::test]
async fn five_hundred_failed_connects_leave_nothing_behind() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let refused = format!("http://{}/mcp", port.local_addr().unwrap());
    drop(port);
    let proxy = start_proxy(&SEED.replace("REFUSED_URL", &refused), |_| {}).await;
    let client = client(&proxy.url("leaky"), "leaky-key-0001").await;

    for tool in ["refused__echo", "dies__echo", "missing__echo"] {
        // warm up (first use allocates lazily-created process-wide state), then baseline
        let err = client
            .call_tool(call(tool, json!({ "text": "x" })))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("connect failed"), "{err}");
        tokio::time::sleep(Duration::from_millis(200)).await;
        let baseline = snapshot();
        for _ in 0..500 {
            let err = client
                .call_tool(call(tool, json!({ "text": "x" })))
                .await
                .unwrap_err();
            assert!(err.to_string().contains("connect failed"), "{err}");
        }
        let settled = eventually(Duration::from_secs(10), || snapshot() == baseline).await;
        assert!(
            settled,
            "{tool}: baseline {baseline:?}, now {:?}",
            snapshot()
        );
        assert_eq!(snapshot().1.zombies, 0);
    }
    let metrics = reqwest::get(format!("{}/metrics", proxy.base()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for upstream in ["refused", "dies", "missing"] {
        let line = format!(
            "mcp_proxy_upstream_connects_total{{upstream=\"{upstream}\",outcome=\"error\"}} 501"
        );
        assert!(metrics.contains(&line), "missing {line:?} in\n{metrics}");
        let active = format!(
            "mcp_proxy_upstream_connections{{upstream=\"{upstream}\",state=\"connecting\"}} 0"
        );
        assert!(metrics.contains(&active), "missing {active:?}");
    }
    client.cancel().await.unwrap();
    proxy.shutdown().await;
}
