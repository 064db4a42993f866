//! `mock-mcp` binary: `mock-mcp serve --listen ADDR [--stateless]` or `mock-mcp stdio`.

use std::{io::Write, net::SocketAddr};

use clap::{Parser, Subcommand};
use mock_mcp::{MockConfig, MockServer};
use tokio::signal::unix::{SignalKind, signal};
use tracing_subscriber::EnvFilter;

#[derive(Debug, Parser)]
#[command(name = "mock-mcp", version, about = "Mock MCP server for load tests")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve Streamable HTTP at http://ADDR/mcp until SIGTERM/SIGINT.
    Serve {
        /// Address to listen on (port 0 picks a free port).
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: SocketAddr,
        /// Stateless mode: no sessions, JSON responses.
        #[arg(long)]
        stateless: bool,
    },
    /// Serve over stdin/stdout until stdin closes.
    Stdio,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn")),
        )
        .init();

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let result = runtime.block_on(async {
        match cli.command {
            Command::Serve { listen, stateless } => serve(listen, stateless).await,
            Command::Stdio => mock_mcp::serve_stdio().await,
        }
    });
    // Do not let a stray blocking task (e.g. a stdin read) delay exit.
    runtime.shutdown_timeout(std::time::Duration::from_millis(100));
    result
}

async fn serve(listen: SocketAddr, stateless: bool) -> anyhow::Result<()> {
    // Install the handlers before announcing readiness, so a signal sent right
    // after the ready line is never fatal.
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let server = MockServer::start(MockConfig { listen, stateless }).await?;
    {
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "listening on {}", server.addr())?;
        stdout.flush()?;
    }
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received, shutting down"),
        _ = int.recv() => tracing::info!("SIGINT received, shutting down"),
    }
    server.shutdown().await;
    Ok(())
}
