//! Helpers for the harness's end-to-end tests: run the `mcp-loadgen` binary on a scenario
//! written to a temp dir, and check that it left no process behind.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Mutex;

/// The CLI runs are serialised: each drives real load on a 2-core machine, and parallel runs
/// would make each other's latency figures meaningless.
pub static SERIAL: Mutex<()> = Mutex::new(());

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub out: PathBuf,
    _dir: tempfile::TempDir,
}

/// Makes this test process a child subreaper, so a process the CLI leaves behind is
/// re-parented here (and seen by [`assert_no_process_left`]) instead of vanishing into init.
pub fn subreaper() {
    nix::sys::prctl::set_child_subreaper(true).unwrap();
}

/// Runs `mcp-loadgen run` on `scenario` (TOML text); reports go to a temp dir.
pub fn run_scenario(scenario: &str) -> Run {
    run_scenario_with(scenario, &[])
}

/// [`run_scenario`] with extra environment variables.
pub fn run_scenario_with(scenario: &str, env: &[(&str, &str)]) -> Run {
    run_scenario_args(scenario, env, &[])
}

/// [`run_scenario`] with extra environment variables and `run` arguments.
pub fn run_scenario_args(scenario: &str, env: &[(&str, &str)], args: &[&str]) -> Run {
    run_scenario_files(scenario, &[], env, args)
}

/// [`run_scenario_args`] with `files` (name, text) written beside the scenario file.
pub fn run_scenario_files(
    scenario: &str,
    files: &[(&str, &str)],
    env: &[(&str, &str)],
    args: &[&str],
) -> Run {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    let path = dir.path().join("scenario.toml");
    std::fs::write(&path, scenario).unwrap();
    let out = dir.path().join("out");
    let Output {
        status,
        stdout,
        stderr,
    } = Command::new(env!("CARGO_BIN_EXE_mcp-loadgen"))
        .arg("run")
        .arg(&path)
        .arg("--out")
        .arg(&out)
        .arg("--quiet")
        .args(args)
        .envs(env.iter().copied())
        .output()
        .expect("mcp-loadgen runs");
    Run {
        code: status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
        out,
        _dir: dir,
    }
}

impl Run {
    pub fn path_of_scenario(&self) -> PathBuf {
        self.out.parent().unwrap().join("scenario.toml")
    }

    pub fn report(&self) -> serde_json::Value {
        let text = std::fs::read_to_string(self.out.join("report.json"))
            .unwrap_or_else(|e| panic!("no report.json ({e}); stderr:\n{}", self.stderr));
        serde_json::from_str(&text).unwrap()
    }

    /// The check named `name` in the report.
    pub fn check(&self, name: &str) -> serde_json::Value {
        self.report()["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no check {name}"))
    }
}

/// No child of this process is alive except `except` (the CLI and everything it started
/// are gone; orphans would have been re-parented here, see [`subreaper`]).
pub fn assert_no_process_left(except: &[u32], what: &str) {
    let me = std::process::id();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
    loop {
        let left: Vec<u32> = mcp_loadgen::observe::probe::child_pids(me)
            .unwrap()
            .into_iter()
            .filter(|p| !except.contains(p))
            .filter(|p| {
                // an orphan that already exited: dead, only not reaped yet (by us, its
                // adoptive parent)
                if mcp_loadgen::observe::probe::process_state(*p) == Some('Z') {
                    let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(*p as i32), None);
                    return false;
                }
                true
            })
            .collect();
        if left.is_empty() {
            return;
        }
        if std::time::Instant::now() > deadline {
            let names: Vec<String> = left
                .iter()
                .map(|p| {
                    std::fs::read_to_string(format!("/proc/{p}/cmdline"))
                        .unwrap_or_default()
                        .replace('\0', " ")
                })
                .collect();
            panic!("{what}: processes left behind: {left:?} {names:?}");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

pub fn workspace() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

/// The `mock-mcp` binary of this build profile (built if missing).
pub fn mock_bin() -> PathBuf {
    workspace_bin("mock-mcp", "mock-mcp")
}

/// The `mcp-proxy` binary of this build profile (built if missing).
pub fn proxy_bin() -> PathBuf {
    workspace_bin("mcp-proxy", "mcp-proxy")
}

/// Binary `bin` of workspace package `package`, built with this build profile.
fn workspace_bin(package: &str, bin: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_BIN_EXE_mcp-loadgen"))
        .parent()
        .unwrap()
        .to_path_buf();
    let status = Command::new(env!("CARGO"))
        .current_dir(workspace())
        .args(["build", "-q", "-p", package, "--bin", bin])
        .args(if dir.ends_with("release") {
            vec!["--release"]
        } else {
            vec![]
        })
        .env("CARGO_TARGET_DIR", dir.parent().unwrap())
        .status()
        .unwrap();
    assert!(status.success());
    dir.join(bin)
}

/// `mock-mcp serve` on a free port, started by a test; `Drop` kills and reaps it (on a
/// failing assertion too).
pub struct MockServe {
    pub child: std::process::Child,
    /// `127.0.0.1:PORT`.
    pub addr: String,
}

impl MockServe {
    pub fn start() -> MockServe {
        use std::io::{BufRead, BufReader};
        let mut child = Command::new(mock_bin())
            .args(["serve", "--listen", "127.0.0.1:0"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let addr = loop {
            let line = lines.next().expect("the mock printed its address").unwrap();
            if let Some(a) = line.trim().strip_prefix("listening on ") {
                break a.to_string();
            }
        };
        // keep draining its stdout so it never blocks on a full pipe
        std::thread::spawn(move || for _ in lines {});
        MockServe { child, addr }
    }

    pub fn url(&self) -> String {
        format!("http://{}/mcp", self.addr)
    }
}

impl Drop for MockServe {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A started target with `target` lines, no mocks, a short load of `tools/list`.
pub fn bare(target: &str) -> String {
    format!(
        r#"
name = "bare"
[target]
{target}
[load]
users = 1
warmup = "1s"
duration = "1s"
mix = {{ "tools/list" = 1 }}
"#
    )
}

/// Runs `scenario`, which must end with exit 3 and a message naming every one of `needles`,
/// leaving no process behind; `what` names the case in a failure.
pub fn fails_with_3(scenario: &str, needles: &[&str], what: &str) -> Run {
    fails_with_3_files(scenario, &[], needles, what)
}

/// [`fails_with_3`] with `files` (name, text) written beside the scenario file.
pub fn fails_with_3_files(
    scenario: &str,
    files: &[(&str, &str)],
    needles: &[&str],
    what: &str,
) -> Run {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    subreaper();
    let run = run_scenario_files(scenario, files, &[], &[]);
    assert_eq!(run.code, 3, "{what}: exit code; stderr:\n{}", run.stderr);
    for n in needles {
        assert!(
            run.stderr.contains(n),
            "{what}: the message names {n:?}:\n{}",
            run.stderr
        );
    }
    assert_no_process_left(&[], what);
    run
}
