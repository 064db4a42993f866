//! `mock-mcp` binary: `mock-mcp serve --listen ADDR [--stateless] [--legacy-sse]
//! [--require-header "N: V"]…`
//! or `mock-mcp stdio`, both with `--fault`, `--latency`, `--seed`, `--page-size` and
//! `--roots-on-initialized`.

use std::{io::Write, net::SocketAddr, sync::Arc};

use clap::{Parser, Subcommand};
use mock_mcp::faults::{Fault, FaultState, Latency};
use mock_mcp::{CRASH_EXIT_CODE, MockConfig, MockServer};
use tokio::signal::unix::{SignalKind, signal};
use tracing_subscriber::EnvFilter;

#[derive(Debug, Parser)]
#[command(name = "mock-mcp", version, about = "Mock MCP server for load tests")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Faults, latency, seed, page size and the roots request at start, common to both transports.
#[derive(Debug, clap::Args)]
struct FaultArgs {
    /// A fault to inject: NAME[:ARG][@PROBABILITY], repeatable (e.g. hang-call@0.2,
    /// crash-after:5, list-changed-every:500ms).
    #[arg(long = "fault", value_name = "SPEC")]
    faults: Vec<Fault>,
    /// Tool latency: fixed:5ms, uniform:1ms..20ms or lognormal:median=20ms,p99=200ms, for every
    /// tool or as TOOL=SPEC for one; repeatable.
    #[arg(long = "latency", value_name = "SPEC")]
    latency: Vec<String>,
    /// Seed for probabilistic faults and latency samples (reproducible runs).
    #[arg(long)]
    seed: Option<u64>,
    /// Items per page of resources/list, resources/templates/list and prompts/list
    /// (0 = no pagination).
    #[arg(long, value_name = "N", default_value_t = mock_mcp::DEFAULT_PAGE_SIZE)]
    page_size: usize,
    /// On notifications/initialized of a 2025-11-25 session, ask the client for its roots
    /// (roots/list, outside any request); the initial_roots tool tells what came of it.
    #[arg(long)]
    roots_on_initialized: bool,
}

impl FaultArgs {
    fn state(self) -> anyhow::Result<Arc<FaultState>> {
        let latency = Latency::parse(&self.latency).map_err(anyhow::Error::msg)?;
        Ok(Arc::new(FaultState::new(self.faults, latency, self.seed)))
    }
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve Streamable HTTP at http://ADDR/mcp (https:// with --tls-cert/--tls-key; and
    /// /control) until SIGTERM/SIGINT.
    Serve {
        /// Address to listen on (port 0 picks a free port).
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: SocketAddr,
        /// Stateless mode: no sessions, JSON responses.
        #[arg(long)]
        stateless: bool,
        /// Also serve /control on this address (reachable while `refuse` closes the main port).
        #[arg(long)]
        control_listen: Option<SocketAddr>,
        /// Serve https:// with this PEM certificate chain (with --tls-key).
        #[arg(long, value_name = "PEM", requires = "tls_key")]
        tls_cert: Option<std::path::PathBuf>,
        /// The PEM private key of --tls-cert.
        #[arg(long, value_name = "PEM", requires = "tls_cert")]
        tls_key: Option<std::path::PathBuf>,
        /// Serve https:// with a throw-away CA and certificate for localhost/127.0.0.1, made in
        /// DIR (ca.pem: what a client trusts; cert.pem, key.pem).
        #[arg(long, value_name = "DIR", conflicts_with = "tls_cert")]
        tls_self_signed: Option<std::path::PathBuf>,
        /// Refuse (401, WWW-Authenticate: Bearer) every request to /mcp without this header at
        /// exactly this value: "Name: value" (e.g. "Authorization: Bearer abc"); repeatable.
        /// /control needs none.
        #[arg(long = "require-header", value_name = "NAME: VALUE")]
        require_headers: Vec<mock_mcp::RequiredHeader>,
        /// Also serve the 2024-11-05 HTTP+SSE transport: GET /sse (an event stream whose first
        /// event, `endpoint`, names /messages?session_id=ID) and POST /messages?session_id=ID
        /// (202; the answer comes on the stream), with the same faults, headers and TLS.
        #[arg(long)]
        legacy_sse: bool,
        #[command(flatten)]
        faults: FaultArgs,
    },
    /// Serve over stdin/stdout until stdin closes.
    Stdio {
        /// Keep the counters (what GET /control says of an HTTP mock) in DIR/<pid>.json,
        /// replaced whole when they change and at exit (default: $MOCK_MCP_STATS_DIR).
        #[arg(long, value_name = "DIR")]
        stats_dir: Option<std::path::PathBuf>,
        #[command(flatten)]
        faults: FaultArgs,
    },
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
            Command::Serve {
                listen,
                stateless,
                control_listen,
                tls_cert,
                tls_key,
                tls_self_signed,
                require_headers,
                legacy_sse,
                faults,
            } => {
                let files = match (tls_cert, tls_key, tls_self_signed) {
                    (Some(cert), Some(key), _) => Some((cert, key)),
                    (_, _, Some(dir)) => {
                        let certs = mock_mcp::tls::TestCerts::generate(&dir)?;
                        Some((certs.cert, certs.key))
                    }
                    _ => None,
                };
                let tls = match files {
                    Some((cert, key)) => Some(mock_mcp::tls::server_config(&cert, &key)?),
                    None => None,
                };
                let config = MockConfig {
                    tls,
                    listen,
                    stateless,
                    control_listen,
                    page_size: faults.page_size,
                    roots_on_initialized: faults.roots_on_initialized,
                    state: faults.state()?,
                    require_headers,
                    legacy_sse,
                };
                serve(config).await
            }
            Command::Stdio { stats_dir, faults } => {
                let (page_size, roots) = (faults.page_size, faults.roots_on_initialized);
                let dir = mock_mcp::stats_dir(stats_dir);
                mock_mcp::serve_stdio(faults.state()?, page_size, roots, dir.as_deref()).await
            }
        }
    });
    // Do not let a stray blocking task (e.g. a stdin read) delay exit.
    runtime.shutdown_timeout(std::time::Duration::from_millis(100));
    result
}

async fn serve(config: MockConfig) -> anyhow::Result<()> {
    // Install the handlers before announcing readiness, so a signal sent right
    // after the ready line is never fatal.
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let server = MockServer::start(config).await?;
    {
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "listening on {}", server.addr())?;
        if let Some(control) = server.control_addr() {
            writeln!(stdout, "control on {control}")?;
        }
        stdout.flush()?;
    }
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received, shutting down"),
        _ = int.recv() => tracing::info!("SIGINT received, shutting down"),
        () = server.stopped() => {}
    }
    if server.crashed() {
        tracing::warn!("crash-after: the server stopped; exiting with status {CRASH_EXIT_CODE}");
        server.shutdown().await;
        std::process::exit(CRASH_EXIT_CODE);
    }
    server.shutdown().await;
    Ok(())
}
