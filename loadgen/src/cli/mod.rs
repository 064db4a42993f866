//! `mcp-loadgen run SCENARIO.toml [--out DIR] [--shard I/N] [--baseline REPORT.json]`,
//! `mcp-loadgen merge A.json B.json … --out DIR`, `mcp-loadgen report DIR`, `mcp-loadgen gate
//! [DIR]` ([`gate`]): the command line, parsed and dispatched; [`main`] is the binary's `main`.
//! Nothing else of the crate imports this module.
//!
//! Exit codes (SPEC contract): 0 pass, 1 threshold breached (or a regression against the
//! baseline), 2 leak found, 3 harness error.

pub mod gate;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;

use crate::report::render::summary;
use crate::report::{self, Report, Shard};
use crate::run::{self, HARNESS_ERROR, Options};
use clap::{Parser, Subcommand};
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
    /// Run a scenario: start what it needs, drive the load, check for leaks, decide, report
    Run {
        /// The scenario file (TOML)
        scenario: PathBuf,
        /// Where the reports go (default reports/<scenario>-<UTC time>/)
        #[arg(long)]
        out: Option<PathBuf>,
        /// No progress bar
        #[arg(long, short)]
        quiet: bool,
        /// Run shard I of N (0-based): its share of the users or the rate, for `merge`
        #[arg(long, value_name = "I/N", value_parser = parse_shard)]
        shard: Option<Shard>,
        /// An earlier run's report.json: compare every figure, fail (exit 1) on a regression
        #[arg(long, value_name = "REPORT.json")]
        baseline: Option<PathBuf>,
        /// Noise margin for --baseline, a share (0.25 = 25 %; default the scenario's
        /// `compare.noise`)
        #[arg(long, value_name = "SHARE")]
        noise: Option<f64>,
        /// Exit 0 whatever the verdict once the reports are written (3 still means the harness
        /// failed): for shards, whose verdict is the merge's
        #[arg(long)]
        no_fail: bool,
    },
    /// Merge the report.json of shards run at once (`run --shard I/N`) into one report
    Merge {
        /// The shards' report.json files
        #[arg(required = true)]
        reports: Vec<PathBuf>,
        /// Where the merged report goes
        #[arg(long)]
        out: PathBuf,
        /// An earlier report.json to compare the merged one with
        #[arg(long, value_name = "REPORT.json")]
        baseline: Option<PathBuf>,
        /// Noise margin for --baseline (default 0.25)
        #[arg(long, value_name = "SHARE")]
        noise: Option<f64>,
    },
    /// The merge gate: run every scenario of DIR one after the other, write their reports, one
    /// junit.xml and summary.md (appended to $GITHUB_STEP_SUMMARY when set), exit with the
    /// worst code (2 leak > 3 not judged > 1 threshold > 0)
    Gate {
        /// The folder of scenarios (*.toml)
        #[arg(default_value = "scenarios/gate")]
        dir: PathBuf,
        /// Where the reports go (default reports/gate-<UTC time>/)
        #[arg(long)]
        out: Option<PathBuf>,
        /// No progress lines
        #[arg(long, short)]
        quiet: bool,
    },
    /// Render report.md, report.html and junit.xml again from DIR/report.json
    Report {
        /// A report folder (or its report.json)
        dir: PathBuf,
    },
}

fn parse_shard(text: &str) -> Result<Shard, String> {
    let bad = || format!("expected I/N with 0 ≤ I < N (e.g. 0/3), got \"{text}\"");
    let (i, n) = text.split_once('/').ok_or_else(bad)?;
    let (index, count) = (
        i.trim().parse().map_err(|_| bad())?,
        n.trim().parse().map_err(|_| bad())?,
    );
    if count == 0 || index >= count {
        return Err(bad());
    }
    Ok(Shard { index, count })
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

pub fn main() -> ExitCode {
    let _ = log::set_logger(&Silent);
    log::set_max_level(log::LevelFilter::Off);
    // clap exits 2 on a usage error, which is "leak found" here: a bad command line is a
    // harness error (3)
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() {
                HARNESS_ERROR as u8
            } else {
                0
            });
        }
    };
    let code = match cli.command {
        Cmd::Run {
            scenario,
            out,
            quiet,
            shard,
            baseline,
            noise,
            no_fail,
        } => match run(Options {
            out,
            quiet,
            shard,
            baseline,
            noise,
            ..Options::new(scenario, CancellationToken::new())
        }) {
            1 | 2 if no_fail => {
                println!("exit 0: --no-fail (the verdict is in the reports)");
                0
            }
            code => code,
        },
        Cmd::Merge {
            reports,
            out,
            baseline,
            noise,
        } => finish(merge(&reports, &out, baseline.as_deref(), noise)),
        Cmd::Report { dir } => finish(rerender(&dir).map(|()| 0)),
        Cmd::Gate { dir, out, quiet } => finish(gate(&dir, out, quiet)),
    };
    ExitCode::from(code as u8)
}

fn finish(result: anyhow::Result<i32>) -> i32 {
    result.unwrap_or_else(|e| {
        eprintln!("mcp-loadgen: {e:#}");
        HARNESS_ERROR
    })
}

fn run(opts: Options) -> i32 {
    // First Ctrl-C / SIGTERM: stop the load and tear down; the second: kill children, exit.
    let token = opts.interrupt.clone();
    crate::process::interrupt::on_two_signals(
        HARNESS_ERROR,
        move || {
            eprintln!(
                "interrupted: stopping the load and everything this run started (again to kill at once)"
            );
            goose::trigger_killswitch("interrupted");
            token.cancel();
        },
        crate::process::kill_all_now,
    );
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("mcp-loadgen: {e}");
            return HARNESS_ERROR;
        }
    };
    match runtime.block_on(run::run(opts)) {
        Ok(outcome) => {
            print!("{}", outcome.summary);
            println!("reports: {}", outcome.out_dir.display());
            println!("verdict: {}", summary::verdict_line(&outcome.report));
            outcome.exit_code
        }
        Err(e) => {
            eprintln!("mcp-loadgen: {e}");
            HARNESS_ERROR
        }
    }
}

fn merge(
    paths: &[PathBuf],
    out: &Path,
    baseline: Option<&Path>,
    noise: Option<f64>,
) -> anyhow::Result<i32> {
    let reports = paths
        .iter()
        .map(|p| Ok((p.display().to_string(), Report::read(p)?)))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut merged = crate::verdict::merge::merge(reports)?;
    if let Some(b) = baseline {
        let before = Report::read(b).context("--baseline")?;
        let noise = noise.unwrap_or(crate::scenario::Compare::default().noise);
        merged.compare_with(&before, &b.display().to_string(), noise);
    }
    merged.write(out)?;
    println!(
        "{}: {} requests from {} reports ({} req/s)",
        merged.name,
        merged.load.requests,
        paths.len(),
        merged.load.throughput_rps.round()
    );
    for c in &merged.checks {
        println!("{}", c.line());
    }
    println!("reports: {}", out.display());
    println!("verdict: {}", summary::verdict_line(&merged));
    Ok(merged.exit_code)
}

fn gate(dir: &Path, out: Option<PathBuf>, quiet: bool) -> anyhow::Result<i32> {
    use gate::{CURRENT, INTERRUPTED};
    use std::sync::atomic::Ordering;
    let out = out.unwrap_or_else(|| run::default_out_dir("gate"));
    // First Ctrl-C / SIGTERM: the running scenario tears down (SIGTERM), no other starts;
    // the second: SIGKILL it and exit.
    let signal_child = |sig| {
        let pid = CURRENT.load(Ordering::SeqCst);
        if pid != 0 {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), sig);
        }
    };
    crate::process::interrupt::on_two_signals(
        HARNESS_ERROR,
        move || {
            eprintln!("interrupted: stopping the running scenario (again to kill it at once)");
            INTERRUPTED.store(true, Ordering::SeqCst);
            signal_child(nix::sys::signal::Signal::SIGTERM);
        },
        move || signal_child(nix::sys::signal::Signal::SIGKILL),
    );
    let exe = std::env::current_exe().context("cannot find this mcp-loadgen binary")?;
    let g = gate::run(&exe, dir, &out, quiet)?;
    if INTERRUPTED.load(Ordering::SeqCst) {
        anyhow::bail!("interrupted");
    }
    print!("{}", g.summary(&out));
    Ok(g.exit_code)
}

fn rerender(dir: &Path) -> anyhow::Result<()> {
    let (json, dir) = if dir.is_dir() {
        (dir.join(report::JSON), dir.to_path_buf())
    } else {
        (
            dir.to_path_buf(),
            dir.parent().unwrap_or(Path::new(".")).to_path_buf(),
        )
    };
    let r = Report::read(&json)?;
    for p in r.render(&dir)? {
        println!("{}", p.display());
    }
    Ok(())
}
