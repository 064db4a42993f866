//! `mcp-proxy` command line: parses settings and wires the library together.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use mcp_proxy::settings::resolve_database_url;
use mcp_proxy::{Settings, seed::Seed, store::Store};

#[derive(Parser)]
#[command(
    name = "mcp-proxy",
    version,
    about = "MCP proxy: one endpoint per instance over many upstream MCP servers"
)]
struct Cli {
    /// Log format.
    #[arg(
        long,
        global = true,
        env = "MCP_PROXY_LOG_FORMAT",
        default_value = "text"
    )]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(clap::Args)]
struct DbArgs {
    /// Database URL (`sqlite://FILE` or `postgres://…`); falls back to `DATABASE_URL`, then
    /// `sqlite://mcp-proxy.db`.
    #[arg(long, env = "MCP_PROXY_DATABASE_URL")]
    database_url: Option<String>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the MCP endpoint `/mcp/{instance_id}` plus /health, /ready and /metrics.
    Serve(Box<Settings>),
    /// Load a seed file (upstreams, instances, API keys) idempotently.
    Seed {
        /// The seed TOML file.
        file: PathBuf,
        #[command(flatten)]
        db: DbArgs,
    },
    /// Manage API keys.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Create a key for an instance and print it (it is shown only this once).
    Create {
        #[arg(long)]
        instance: String,
        #[command(flatten)]
        db: DbArgs,
    },
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("mcp_proxy=info,warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

async fn open_store(db: DbArgs) -> anyhow::Result<Store> {
    let url = resolve_database_url(db.database_url);
    Store::connect(
        &url,
        2,
        std::time::Duration::from_secs(5),
        Default::default(),
    )
    .await
    .with_context(|| format!("cannot open database {}", redact(&url)))
}

/// Hides a password in a database URL before it is printed.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}://***@{}", &url[..scheme], &url[at + 1..])
        }
        _ => url.to_string(),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    match cli.command {
        Command::Serve(settings) => {
            let proxy = mcp_proxy::start(*settings).await?;
            let stop = proxy.shutdown_token();
            tokio::spawn(async move {
                mcp_proxy::shutdown::signal().await;
                stop.cancel();
                mcp_proxy::shutdown::signal().await;
                eprintln!("second signal: exiting at once");
                std::process::exit(130);
            });
            proxy.wait().await;
        }
        Command::Seed { file, db } => {
            let seed = Seed::load(&file)?;
            let store = open_store(db).await?;
            let report = store.apply_seed(&seed).await?;
            store.close().await;
            println!(
                "seeded {} upstream(s), {} instance(s), {} new key(s)",
                report.upstreams, report.instances, report.keys_added
            );
        }
        Command::Keys {
            command: KeysCommand::Create { instance, db },
        } => {
            let store = open_store(db).await?;
            let created = store.create_key(&instance).await?;
            store.close().await;
            eprintln!(
                "created key {} for instance {}; it is shown only once:",
                created.id, created.instance_id
            );
            println!("{}", created.key);
        }
    }
    Ok(())
}
