//! `mcp-proxy` command line: parses settings and wires the library together.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use mcp_proxy::Settings;
use mcp_proxy::data::store::{KeyInfo, Revoke, SecretInfo};
use mcp_proxy::domain::secrets::{Secret, SecretKey};
use mcp_proxy::settings::{SecretKeyArgs, resolve_database_url};
use mcp_proxy::{data::store::Store, domain::seed::Seed};

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
    /// PostgreSQL channel on which the change is announced to running replicas (the same as
    /// their `serve --notify-channel`).
    #[arg(
        long,
        env = "MCP_PROXY_NOTIFY_CHANNEL",
        default_value = "mcp_proxy_invalidate",
        value_parser = mcp_proxy::domain::invalidation::parse_channel
    )]
    notify_channel: String,
}

#[derive(Clone, Copy, ValueEnum)]
enum ListFormat {
    Text,
    Json,
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
        #[command(flatten)]
        key: SecretKeyArgs,
    },
    /// Manage instance secrets (the `${NAME}` values of upstream header and env templates),
    /// sealed at rest with the secret key.
    Secrets {
        #[command(subcommand)]
        command: SecretsCommand,
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
    /// Revoke a key by its id (as `keys create` and `keys list` print it). Running replicas
    /// on the same PostgreSQL refuse it at once (within their auth-cache TTL at worst).
    Revoke {
        /// The key's id (`key_…`).
        key_id: String,
        #[command(flatten)]
        db: DbArgs,
    },
    /// List an instance's keys: id, created, last used, revoked (never a key or its hash).
    List {
        #[arg(long)]
        instance: String,
        /// Output format.
        #[arg(long, default_value = "text")]
        format: ListFormat,
        #[command(flatten)]
        db: DbArgs,
    },
}

#[derive(Subcommand)]
enum SecretsCommand {
    /// Set (add or replace) an instance's secret; the value is read from stdin (one line),
    /// never from the command line. Running replicas on the same PostgreSQL reconnect their
    /// upstreams with the new value at once.
    Set {
        #[arg(long)]
        instance: String,
        /// The secret's name, as templates write it (`${NAME}`).
        name: String,
        #[command(flatten)]
        db: DbArgs,
        #[command(flatten)]
        key: SecretKeyArgs,
    },
    /// Delete an instance's secret (refused while a template of its upstreams uses it).
    Delete {
        #[arg(long)]
        instance: String,
        name: String,
        #[command(flatten)]
        db: DbArgs,
    },
    /// List an instance's secrets: name, the key that sealed it, updated (never a value).
    List {
        #[arg(long)]
        instance: String,
        #[arg(long, default_value = "text")]
        format: ListFormat,
        #[command(flatten)]
        db: DbArgs,
    },
    /// Re-seal every secret with the current key (`MCP_PROXY_SECRET_KEY` / `--secret-key-file`),
    /// opening each with the current or a `--previous-secret-key-file` key.
    RotateKey {
        #[command(flatten)]
        db: DbArgs,
        #[command(flatten)]
        key: SecretKeyArgs,
    },
    /// Print a new random secret key (64 hex digits) for MCP_PROXY_SECRET_KEY or a key file.
    NewKey,
}

/// One line of stdin, without its line ending: a secret's value.
fn read_secret_value() -> anyhow::Result<Secret> {
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .context("cannot read the secret's value from stdin")?;
    let value = line.strip_suffix('\n').unwrap_or(&line);
    let value = value.strip_suffix('\r').unwrap_or(value);
    if value.is_empty() || value.chars().any(|c| c.is_control()) {
        anyhow::bail!("the secret's value (stdin) must be one non-empty line");
    }
    Ok(Secret::new(value))
}

/// `secrets list` output: an aligned table, or a JSON array.
fn render_secrets(secrets: &[SecretInfo], format: ListFormat) -> String {
    match format {
        ListFormat::Json => serde_json::to_string_pretty(secrets).expect("JSON values serialise"),
        ListFormat::Text => {
            let mut out = format!("{:<32} {:<10} {}", "NAME", "KEY", "UPDATED");
            for s in secrets {
                out += &format!(
                    "\n{:<32} {:<10} {}",
                    s.name,
                    s.key_id,
                    rfc3339(s.updated_at)
                );
            }
            out
        }
    }
}

async fn secrets(command: SecretsCommand) -> anyhow::Result<()> {
    match command {
        SecretsCommand::Set {
            instance,
            name,
            db,
            key,
        } => {
            if !mcp_proxy::domain::template::is_valid_name(&name) {
                anyhow::bail!("secret name {name:?} must be [A-Za-z_][A-Za-z0-9_]*");
            }
            let value = read_secret_value()?;
            let store = open_store(db).await?.with_keyring(key.keyring()?);
            let outcome = store.set_secret(&instance, &name, &value).await;
            store.close().await;
            outcome?;
            println!("set secret {name} of instance {instance}");
        }
        SecretsCommand::Delete { instance, name, db } => {
            let store = open_store(db).await?;
            let outcome = store.delete_secret(&instance, &name).await;
            store.close().await;
            outcome?;
            println!("deleted secret {name} of instance {instance}");
        }
        SecretsCommand::List {
            instance,
            format,
            db,
        } => {
            let store = open_store(db).await?;
            let secrets = store.list_secrets(&instance).await;
            store.close().await;
            println!("{}", render_secrets(&secrets?, format));
        }
        SecretsCommand::RotateKey { db, key } => {
            let Some(keyring) = key.keyring()? else {
                anyhow::bail!(
                    "rotate-key needs the new key (MCP_PROXY_SECRET_KEY or --secret-key-file) \
                     and the old one (--previous-secret-key-file)"
                );
            };
            let key_id = keyring.key_id().to_string();
            let store = open_store(db).await?.with_keyring(Some(keyring));
            let outcome = store.reseal_secrets().await;
            store.close().await;
            println!("re-sealed {} secret(s) with key {key_id}", outcome?);
        }
        SecretsCommand::NewKey => println!("{}", SecretKey::generate()),
    }
    Ok(())
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
    let store = Store::connect(
        &url,
        2,
        std::time::Duration::from_secs(5),
        Default::default(),
    )
    .await
    .with_context(|| mcp_proxy::app::start_errors::database(&url))?;
    Ok(store.with_notify_channel(&db.notify_channel)?)
}

/// A unix-ms time as RFC 3339 (UTC, seconds).
fn rfc3339(ms: i64) -> String {
    let at = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms.max(0) as u64);
    humantime::format_rfc3339_seconds(at).to_string()
}

/// `keys list` output: an aligned table, or a JSON array.
fn render_keys(keys: &[KeyInfo], format: ListFormat) -> String {
    match format {
        ListFormat::Json => {
            #[derive(serde::Serialize)]
            struct Row<'a> {
                id: &'a str,
                created_at: String,
                last_used_at: Option<String>,
                revoked_at: Option<String>,
            }
            let rows: Vec<Row> = keys
                .iter()
                .map(|k| Row {
                    id: &k.id,
                    created_at: rfc3339(k.created_at),
                    last_used_at: k.last_used_at.map(rfc3339),
                    revoked_at: k.revoked_at.map(rfc3339),
                })
                .collect();
            serde_json::to_string_pretty(&rows).expect("JSON values serialise")
        }
        ListFormat::Text => {
            let mut out = format!(
                "{:<24} {:<20} {:<20} {}",
                "ID", "CREATED", "LAST USED", "REVOKED"
            );
            for k in keys {
                out += &format!(
                    "\n{:<24} {:<20} {:<20} {}",
                    k.id,
                    rfc3339(k.created_at),
                    k.last_used_at.map(rfc3339).as_deref().unwrap_or("never"),
                    k.revoked_at.map(rfc3339).as_deref().unwrap_or("-"),
                );
            }
            out
        }
    }
}

/// Runs the command; an error is printed once, as `error: ` and its cause chain (never
/// anyhow's `Debug`, which adds a backtrace when `RUST_BACKTRACE` is set), and exits 1.
/// clap's usage errors exit before this, as clap words them (code 2).
#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    match run(cli.command).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Serve(settings) => {
            let proxy = mcp_proxy::start(*settings).await?;
            let stop = proxy.shutdown_token();
            tokio::spawn(async move {
                mcp_proxy::app::shutdown::signal().await;
                stop.cancel();
                mcp_proxy::app::shutdown::signal().await;
                eprintln!("second signal: exiting at once");
                std::process::exit(130);
            });
            proxy.wait().await;
        }
        Command::Seed { file, db, key } => {
            let seed = Seed::load(&file)?;
            let store = open_store(db).await?.with_keyring(key.keyring()?);
            let report = store.apply_seed(&seed).await;
            store.close().await;
            let report = report?;
            println!(
                "seeded {} upstream(s), {} instance(s), {} new key(s), {} secret(s)",
                report.upstreams, report.instances, report.keys_added, report.secrets_set
            );
        }
        Command::Secrets { command } => secrets(command).await?,
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
        Command::Keys {
            command: KeysCommand::Revoke { key_id, db },
        } => {
            let store = open_store(db).await?;
            let outcome = store.revoke_key(&key_id).await;
            store.close().await;
            match outcome? {
                Revoke::Revoked(key) => {
                    println!("revoked key {} of instance {}", key.id, key.instance_id)
                }
                Revoke::AlreadyRevoked { instance_id } => {
                    println!("key {key_id} of instance {instance_id} was already revoked")
                }
                Revoke::Unknown => anyhow::bail!("no API key with id {key_id:?}"),
            }
        }
        Command::Keys {
            command:
                KeysCommand::List {
                    instance,
                    format,
                    db,
                },
        } => {
            let store = open_store(db).await?;
            let keys = store.list_keys(&instance).await;
            store.close().await;
            println!("{}", render_keys(&keys?, format));
        }
    }
    Ok(())
}
