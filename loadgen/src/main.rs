//! `mcp-loadgen run SCENARIO.toml [--out DIR]`: exit 0 pass, 1 threshold breached, 2 leak
//! found, 3 harness error (SPEC contract).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use mcp_loadgen::run::{self, HARNESS_ERROR, Options};
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
#[command(
    name = "mcp-loadgen",
    version,
    about = "Load and leak harness for MCP proxies"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run a scenario: start what it needs, drive the load, check for leaks, decide
    Run {
        /// The scenario file (TOML)
        scenario: PathBuf,
        /// Where the reports go (default reports/<scenario>-<UTC time>/)
        #[arg(long)]
        out: Option<PathBuf>,
        /// No progress bar
        #[arg(long, short)]
        quiet: bool,
    },
}

/// goose logs a warning line per failed request (thousands once a target stops); the
/// harness counts and reports failures itself. Installed before goose's own logger, which
/// then finds the slot taken and stays silent.
struct Silent;

impl log::Log for Silent {
    fn enabled(&self, _: &log::Metadata) -> bool {
        false
    }
    fn log(&self, _: &log::Record) {}
    fn flush(&self) {}
}

fn main() -> ExitCode {
    let _ = log::set_logger(&Silent);
    log::set_max_level(log::LevelFilter::Off);
    let cli = Cli::parse();
    let Cmd::Run {
        scenario,
        out,
        quiet,
    } = cli.command;
    let interrupt = CancellationToken::new();
    // First Ctrl-C / SIGTERM: stop the load and tear down; the second: kill children, exit.
    let token = interrupt.clone();
    let first = std::sync::atomic::AtomicBool::new(false);
    if let Err(e) = ctrlc::set_handler(move || {
        if first.swap(true, std::sync::atomic::Ordering::SeqCst) {
            mcp_loadgen::target::kill_all_now();
            std::process::exit(HARNESS_ERROR);
        }
        eprintln!(
            "interrupted: stopping the load and everything this run started (again to kill at once)"
        );
        goose::trigger_killswitch("interrupted");
        token.cancel();
    }) {
        eprintln!("mcp-loadgen: cannot install the Ctrl-C handler: {e}");
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("mcp-loadgen: {e}");
            return ExitCode::from(HARNESS_ERROR as u8);
        }
    };
    let result = runtime.block_on(run::run(Options {
        scenario,
        out,
        quiet,
        binaries: None,
        interrupt,
    }));
    match result {
        Ok(outcome) => {
            print!("{}", outcome.summary);
            println!("reports: {}", outcome.out_dir.display());
            println!(
                "verdict: {}",
                match outcome.exit_code {
                    0 => "pass",
                    1 => "threshold breached (exit 1)",
                    _ => "leak found (exit 2)",
                }
            );
            ExitCode::from(outcome.exit_code as u8)
        }
        Err(e) => {
            eprintln!("mcp-loadgen: {e}");
            ExitCode::from(HARNESS_ERROR as u8)
        }
    }
}
