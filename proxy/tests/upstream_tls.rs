//! Contract (hosted upstreams are `https://`): the proxy reaches an `https://` upstream over
//! rustls, trusting a private CA given as the upstream's `ca_file` besides the platform's roots,
//! in every connection mode; an upstream whose certificate it cannot verify (another CA, or no
//! `ca_file` for a private one) is refused with a JSON-RPC error naming the upstream and the
//! certificate problem; and 500 refused TLS connects, or 200 TLS connections opened, used and
//! closed, leave the proxy's fds, sockets, tasks and children where they were. The proxy
//! binary honours `HTTPS_PROXY` (its upstream TLS goes through the forward proxy's `CONNECT`)
//! and `NO_PROXY` (it does not).
//!
//! The upstream is `mock-mcp serve --tls-cert --tls-key` as its own process, with throw-away
//! certificates (`mock_mcp::tls::TestCerts`, rcgen) for `127.0.0.1`.

mod common;

use std::time::Duration;

use common::*;
use mock_mcp::tls::TestCerts;
use serde_json::json;

fn tls_seed(upstreams: &[(&str, &str, &str, Option<&std::path::Path>)]) -> String {
    let mut s = String::new();
    for (name, url, connection, ca) in upstreams {
        s += &format!(
            "[[upstream]]\nname = \"{name}\"\ntransport = \"streamable-http\"\nurl = \"{url}\"\nconnection = \"{connection}\"\n"
        );
        if let Some(ca) = ca {
            s += &format!("ca_file = {:?}\n", ca.display().to_string());
        }
        s += "\n";
    }
    let names: Vec<String> = upstreams.iter().map(|u| format!("\"{}\"", u.0)).collect();
    s + &format!(
        "[[instance]]\nid = \"demo\"\nupstreams = [{}]\napi_keys = [\"{KEY}\"]\nprefix = \"always\"\n",
        names.join(", ")
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_reach_an_https_upstream_that_trusts_its_private_ca() {
    let dir = tempfile::tempdir().unwrap();
    let certs = TestCerts::generate(&dir.path().join("upstream")).unwrap();
    let mock = MockProcess::serve_tls(&certs, &[]).await;
    assert!(
        mock.url().starts_with("https://127.0.0.1:"),
        "{}",
        mock.url()
    );
    let url = mock.url();
    let seed = tls_seed(&[
        ("shared", &url, "shared", Some(&certs.ca)),
        ("each", &url, "per-request", Some(&certs.ca)),
    ]);
    let proxy = start_proxy(&seed, |_| {}).await;
    let client = client(&proxy.url("demo"), KEY).await;
    for tool in ["shared__echo", "each__echo"] {
        for i in 0..3 {
            let said = format!("{tool} over TLS {i}");
            let r = client
                .call_tool(call(tool, json!({ "text": said })))
                .await
                .unwrap_or_else(|e| panic!("{tool}: {e}"));
            assert_eq!(text(&r), said);
        }
    }
    let tools = client.list_all_tools().await.unwrap();
    assert!(tools.iter().any(|t| t.name == "each__add"), "{tools:?}");
    assert!(
        mock.counters().await["calls"].as_u64().unwrap() >= 6,
        "the calls reached the TLS mock"
    );
    client.cancel().await.unwrap();
    proxy.shutdown().await;
    mock.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_the_proxy_cannot_verify_is_refused_and_leaves_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let certs = TestCerts::generate(&dir.path().join("upstream")).unwrap();
    let other = TestCerts::generate(&dir.path().join("other")).unwrap();
    let mock = MockProcess::serve_tls(&certs, &[]).await;
    let url = mock.url();
    let seed = tls_seed(&[
        ("wrongca", &url, "per-request", Some(&other.ca)),
        ("noca", &url, "per-request", None),
        ("good", &url, "per-request", Some(&certs.ca)),
    ]);
    let proxy = start_proxy(&seed, |s| s.breaker_threshold = 0).await;
    let client = unpooled_client(&proxy.url("demo"), KEY).await;

    for tool in ["wrongca__echo", "noca__echo"] {
        let err = rpc_error(
            client
                .call_tool(call(tool, json!({ "text": "x" })))
                .await
                .unwrap_err(),
        );
        eprintln!("{tool}: {}", err.message);
        let upstream = tool.split("__").next().unwrap();
        assert!(
            err.message.contains(&format!("upstream \"{upstream}\""))
                && err.message.contains("connect failed")
                && err
                    .message
                    .contains("invalid peer certificate: UnknownIssuer"),
            "{tool}: the error names the upstream and the certificate problem: {}",
            err.message
        );
        assert!(
            !err.message.contains("rmcp::") && !err.message.contains("Transport ["),
            "{tool}: words for people: {}",
            err.message
        );
    }

    // 500 refused handshakes, then 200 good TLS connections (connect, call, close)
    let baseline = stable_resources().await;
    let (refused, _) = drive(500, 10, |_| {
        let client = &client;
        async move {
            client
                .call_tool(call("wrongca__echo", json!({ "text": "x" })))
                .await
        }
    })
    .await;
    assert!(
        refused.iter().all(|r| r.is_err()),
        "a refused certificate served a call"
    );
    let (served, peak) = drive(200, 10, |i| {
        let client = &client;
        async move {
            client
                .call_tool(call("good__echo", json!({ "text": format!("t{i}") })))
                .await
        }
    })
    .await;
    let failed = served.iter().filter(|r| r.is_err()).count();
    assert_eq!(
        failed,
        0,
        "good TLS calls failed: {:?}",
        served.iter().find(|r| r.is_err())
    );
    mock.close_idle_connections().await;
    let settled = settle_within(&baseline, Duration::from_secs(25)).await;
    eprintln!(
        "baseline {}\npeak     {}\nfinal    {}",
        baseline.line(),
        peak.line(),
        settled.line()
    );
    assert_eq!(settled.tcp.close_wait, 0, "TLS sockets left in CLOSE_WAIT");
    settled.assert_no_growth_over(
        &baseline,
        "500 refused TLS connects and 200 TLS connections",
    );

    client.cancel().await.unwrap();
    proxy.shutdown().await;
    mock.stop().await;
}

/// A forward proxy that answers `CONNECT host:port` and relays bytes; counts the tunnels.
async fn connect_proxy() -> (
    std::net::SocketAddr,
    std::sync::Arc<std::sync::atomic::AtomicUsize>,
) {
    use std::sync::atomic::Ordering;
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let tunnels = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = tunnels.clone();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let counted = counted.clone();
            tokio::spawn(async move {
                let mut client = tokio::io::BufReader::new(client);
                let mut line = String::new();
                client.read_line(&mut line).await.ok()?;
                let target = line
                    .strip_prefix("CONNECT ")?
                    .split(' ')
                    .next()?
                    .to_string();
                loop {
                    let mut header = String::new();
                    client.read_line(&mut header).await.ok()?;
                    if header == "\r\n" || header.is_empty() {
                        break;
                    }
                }
                let mut upstream = tokio::net::TcpStream::connect(target).await.ok()?;
                counted.fetch_add(1, Ordering::SeqCst);
                let mut client = client.into_inner();
                client
                    .write_all(b"HTTP/1.1 200 Connection Established\r\n\r\n")
                    .await
                    .ok()?;
                tokio::io::copy_bidirectional(&mut client, &mut upstream)
                    .await
                    .ok()
            });
        }
    });
    (addr, tunnels)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_proxy_and_no_proxy_from_the_environment_are_honoured() {
    use std::sync::atomic::Ordering;
    let dir = tempfile::tempdir().unwrap();
    let certs = TestCerts::generate(&dir.path().join("upstream")).unwrap();
    let mock = MockProcess::serve_tls(&certs, &[]).await;
    let seed = dir.path().join("seed.toml");
    std::fs::write(
        &seed,
        tls_seed(&[("hosted", &mock.url(), "per-request", Some(&certs.ca))]),
    )
    .unwrap();
    let (forward, tunnels) = connect_proxy().await;
    for (no_proxy, through_proxy) in [("", true), ("127.0.0.1", false)] {
        let port = free_port();
        let _proxy = proxy_serve_command(dir.path(), &seed, port)
            .env("HTTPS_PROXY", format!("http://{forward}"))
            .env("NO_PROXY", no_proxy)
            .env("RUST_LOG", "error")
            .spawn()
            .unwrap();
        let url = format!("http://127.0.0.1:{port}/mcp/demo");
        let mut up = false;
        for _ in 0..200 {
            if reqwest::get(format!("http://127.0.0.1:{port}/ready"))
                .await
                .is_ok()
            {
                up = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(up, "the proxy never answered /ready");
        let before = tunnels.load(Ordering::SeqCst);
        let client = client(&url, KEY).await;
        let r = client
            .call_tool(call("hosted__echo", json!({ "text": "via?" })))
            .await
            .unwrap_or_else(|e| panic!("NO_PROXY={no_proxy:?}: {e}"));
        assert_eq!(text(&r), "via?");
        let opened = tunnels.load(Ordering::SeqCst) - before;
        assert_eq!(
            opened > 0,
            through_proxy,
            "NO_PROXY={no_proxy:?}: {opened} CONNECT tunnels through HTTPS_PROXY"
        );
        client.cancel().await.unwrap();
    }
    mock.stop().await;
}
