//! The proxy's main job end to end on the embedded default (SQLite), with nothing installed:
//! starts a `mock-mcp` server, seeds and starts `mcp-proxy` in front of it, connects an MCP
//! client with an API key, lists the tools and calls one, then shuts everything down.
//!
//! Run: `cargo run --release -p mcp-proxy --example demo`

use mcp_proxy::Settings;
use rmcp::ServiceExt;
use rmcp::model::CallToolRequestParams;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mock = mock_mcp::MockServer::start(Default::default()).await?;
    println!("mock-mcp listening on {}", mock.addr());

    let dir = tempfile::tempdir()?;
    let seed = dir.path().join("seed.toml");
    std::fs::write(
        &seed,
        format!(
            "[[upstream]]\nname = \"echo\"\ntransport = \"streamable-http\"\nurl = \"{}\"\n\n\
             [[instance]]\nid = \"demo\"\nupstreams = [\"echo\"]\napi_keys = [\"demo-key-0001\"]\n",
            mock.url()
        ),
    )?;
    let settings = Settings {
        listen: "127.0.0.1:0".parse()?,
        database_url: Some(format!("sqlite://{}", dir.path().join("demo.db").display())),
        seed: Some(seed),
        ..Settings::default()
    };
    let proxy = mcp_proxy::start(settings).await?;
    let url = proxy.mcp_url("demo");
    println!("mcp-proxy listening on {url}");

    let transport = StreamableHttpClientTransport::with_client(
        reqwest::Client::new(),
        StreamableHttpClientTransportConfig::with_uri(url).auth_header("demo-key-0001".to_string()),
    );
    let client = ().serve(transport).await?;
    let tools = client.list_all_tools().await?;
    println!(
        "tools through the proxy: {:?}",
        tools.iter().map(|t| t.name.as_ref()).collect::<Vec<_>>()
    );
    let mut call = CallToolRequestParams::new("echo");
    call.arguments = serde_json::json!({ "text": "hello through the proxy" })
        .as_object()
        .cloned();
    let result = client.call_tool(call).await?;
    println!(
        "echo answered: {}",
        result.content[0]
            .as_text()
            .map(|t| t.text.as_str())
            .unwrap_or("?")
    );

    client.cancel().await?;
    proxy.shutdown().await;
    mock.shutdown().await;
    println!("all closed");
    Ok(())
}
