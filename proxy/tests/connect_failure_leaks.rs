//! Contract (the seeds' original leak): when connecting to an upstream fails — refused socket,
//! HTTP 500 on initialize (wiremock), a 200 that is not MCP (wiremock), an upstream that accepts
//! and never answers (connect timeout), a child that dies before initialize, a command that does
//! not exist — the client and its transport are released. After 1,000 refused connects and 300
//! of each other kind (5 for the slow timeout case), the process's fds (by kind), TCP sockets
//! (by state: no CLOSE_WAIT), tokio alive tasks and children are back at their starting values,
//! with no zombie.

mod common;

use std::time::Duration;

use common::*;
use serde_json::json;

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

[[upstream]]
name = "error500"
transport = "streamable-http"
url = "ERROR_URL"
connection = "per-request"

[[upstream]]
name = "html"
transport = "streamable-http"
url = "HTML_URL"
connection = "per-request"

[[upstream]]
name = "hangs"
transport = "streamable-http"
url = "HANG_URL"
connection = "shared"

[[instance]]
id = "leaky"
upstreams = ["refused", "dies", "missing", "error500", "html", "hangs"]
api_keys = ["leaky-key-0001"]
"#;

#[tokio::test]
async fn a_thousand_failed_connects_leave_nothing_behind() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let refused = format!("http://{}/mcp", port.local_addr().unwrap());
    drop(port);
    let error_500 = mock_mcp::wire::status(500).await;
    let error_url = mock_mcp::wire::mcp_url(&error_500);
    let wrong_type = mock_mcp::wire::wrong_content_type().await;
    let hang_url = format!("http://{}/mcp", hanging_server().await);
    let seed = SEED
        .replace("REFUSED_URL", &refused)
        .replace("ERROR_URL", &error_url)
        .replace("HTML_URL", &mock_mcp::wire::mcp_url(&wrong_type))
        .replace("HANG_URL", &hang_url);
    let proxy = start_proxy(&seed, |s| {
        // long enough for `false` to be spawned and seen to exit on a loaded CI machine (it
        // must fail as a failed connect, not as a timeout: 400 ms was not always enough), short
        // enough for the timeouts of `hangs` in 10 s
        s.connect_timeout = Duration::from_secs(2);
        // every attempt must really connect (the breaker has its own test)
        s.breaker_threshold = 0;
    })
    .await;
    let client = client(&proxy.url("leaky"), "leaky-key-0001").await;

    for (tool, attempts, expect) in [
        ("refused__echo", 1000, "connect failed"),
        ("dies__echo", 300, "connect failed"),
        ("missing__echo", 300, "connect failed"),
        ("error500__echo", 300, "connect failed"),
        ("html__echo", 300, "connect failed"),
        ("hangs__echo", 5, "no answer to initialize"),
    ] {
        // warm up (first use allocates lazily-created process-wide state), then baseline
        let err = client
            .call_tool(call(tool, json!({ "text": "x" })))
            .await
            .unwrap_err();
        assert!(err.to_string().contains(expect), "{err}");
        let baseline = stable_resources().await;
        for _ in 0..attempts {
            let err = client
                .call_tool(call(tool, json!({ "text": "x" })))
                .await
                .unwrap_err();
            assert!(err.to_string().contains(expect), "{err}");
        }
        let after = settle_within(&baseline, Duration::from_secs(10)).await;
        after.assert_no_growth_over(&baseline, tool);
        assert_eq!(after.children.zombies, 0);
        assert_eq!(after.tcp.close_wait, 0);
        eprintln!(
            "{tool}: {attempts} failed connects; baseline = after: {}",
            after.line()
        );
    }
    let metrics = metrics_text(&proxy).await;
    // each: the client's `initialize` (learning the upstream's capabilities), the warm-up
    // call, then the measured attempts
    for (upstream, failed) in [("refused", 1002), ("dies", 302), ("missing", 302)] {
        let line = format!(
            "mcp_proxy_upstream_connects_total{{upstream=\"{upstream}\",outcome=\"error\"}} {failed}"
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

/// Accepts connections and never answers; closes its end once the client closes its own, so
/// any socket left open afterwards is the proxy's.
async fn hanging_server() -> std::net::SocketAddr {
    use tokio::io::AsyncReadExt;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (mut socket, _) = listener.accept().await.unwrap();
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                while matches!(socket.read(&mut buf).await, Ok(n) if n > 0) {}
            });
        }
    });
    addr
}
