//! `mcp-loadgen gate [DIR] [--out DIR]`: the merge gate. Runs every scenario of `DIR`
//! (default `scenarios/gate/`), one after the other, each as its own `mcp-loadgen run` child
//! process (one goose attack per process; a run that crashes cannot take the gate with it);
//! writes each run's reports into `OUT/<scenario file>/`, one combined `junit.xml` and
//! `summary.md` into `OUT`, appends the summary to `$GITHUB_STEP_SUMMARY` when set, and
//! exits with the worst code.
//!
//! Worst first: 2 (a leak) > 3 (a scenario could not be judged) > 1 (a threshold or a
//! regression) > 0. A leak is the gate's reason to exist, so it is what a failed gate says
//! when there is one; a scenario that could not run leaves the merge unverified, which is worse
//! than a threshold.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Instant;

use anyhow::{Context, bail};
use nix::sys::signal::Signal;

use crate::process::spawn;
pub use crate::report::gate::{Gate, Ran};
use crate::report::render::format;
use crate::report::{self, Report};

/// The child `mcp-loadgen run` now running (0: none), for the interrupt handler.
pub static CURRENT: AtomicU32 = AtomicU32::new(0);
/// Set by the interrupt handler: no further scenario starts.
pub static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Rank of an exit code in the gate's verdict (higher is worse).
fn severity(code: i32) -> u8 {
    match code {
        0 => 0,
        1 => 1,
        2 => 3,
        _ => 2,
    }
}

/// The worst of `codes` (0 when empty).
pub fn worst(codes: impl IntoIterator<Item = i32>) -> i32 {
    codes.into_iter().max_by_key(|c| severity(*c)).unwrap_or(0)
}

/// The scenario files of `dir`, in name order.
pub fn scenarios(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("the gate's scenario folder {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    if files.is_empty() {
        bail!("{}: no *.toml scenario to run", dir.display());
    }
    Ok(files)
}

/// Runs every scenario of `dir` with the `mcp-loadgen` binary `exe`, reports into `out`.
pub fn run(exe: &Path, dir: &Path, out: &Path, quiet: bool) -> anyhow::Result<Gate> {
    let files = scenarios(dir)?;
    std::fs::create_dir_all(out)
        .with_context(|| format!("cannot create the report folder {}", out.display()))?;
    let started = Instant::now();
    let mut ran = Vec::new();
    for (i, file) in files.iter().enumerate() {
        if INTERRUPTED.load(Ordering::SeqCst) {
            bail!("interrupted");
        }
        let id = file
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let dest = out.join(&id);
        if !quiet {
            eprintln!("gate [{}/{}] {}", i + 1, files.len(), file.display());
        }
        let t = Instant::now();
        let mut cmd = spawn::sync_command(exe, Signal::SIGTERM);
        cmd.arg("run")
            .arg(file)
            .arg("--out")
            .arg(&dest)
            .arg("--quiet")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let child = cmd
            .spawn()
            .with_context(|| format!("cannot start {}", exe.display()))?;
        let pid = child.id();
        CURRENT.store(pid, Ordering::SeqCst);
        let output = child.wait_with_output();
        CURRENT.store(0, Ordering::SeqCst);
        let output = match output {
            Ok(o) => o,
            Err(e) => {
                // reading its output failed: the run may still be going; end it, reap it
                let pid = nix::unistd::Pid::from_raw(pid as i32);
                let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
                let _ = nix::sys::wait::waitpid(pid, None);
                return Err(
                    anyhow::Error::new(e).context(format!("{}: the run was lost", file.display()))
                );
            }
        };
        let code = output.status.code().unwrap_or(crate::run::HARNESS_ERROR);
        std::fs::create_dir_all(&dest)?;
        std::fs::write(dest.join("stdout.txt"), &output.stdout)?;
        std::fs::write(dest.join("stderr.txt"), &output.stderr)?;
        let report = Report::read(&dest.join(report::JSON)).ok();
        let stderr = String::from_utf8_lossy(&output.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(12).collect();
        let stderr_tail = tail.into_iter().rev().collect::<Vec<_>>().join("\n");
        if !quiet {
            eprintln!(
                "      exit {code} in {:.1} s{}",
                t.elapsed().as_secs_f64(),
                report
                    .as_ref()
                    .map(|r| format!(": {}", format::headline(r)))
                    .unwrap_or_else(|| format!(": {}", stderr_tail.lines().last().unwrap_or(""))),
            );
        }
        ran.push(Ran {
            id,
            file: file.clone(),
            code,
            seconds: t.elapsed().as_secs_f64(),
            report,
            stderr_tail,
        });
    }
    let gate = Gate {
        exit_code: worst(ran.iter().map(|r| r.code)),
        ran,
        seconds: started.elapsed().as_secs_f64(),
    };
    std::fs::write(out.join(report::JUNIT), gate.junit()?)?;
    let summary = gate.summary(out);
    std::fs::write(out.join("summary.md"), &summary)?;
    if let Some(path) = std::env::var_os("GITHUB_STEP_SUMMARY") {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .with_context(|| format!("$GITHUB_STEP_SUMMARY {}", Path::new(&path).display()))?;
        f.write_all(summary.as_bytes())?;
    }
    Ok(gate)
}

#[cfg(test)]
#[path = "gate_tests.rs"]
mod tests;
