//! Two MCP clients nobody here wrote — the official Python SDK (`mcp` on PyPI) and the official
//! TypeScript SDK (`@modelcontextprotocol/sdk` on npm) — work through the proxy against the mock,
//! over the mock's whole surface, in the 2025-11-25 era (initialize + `Mcp-Session-Id`), for the
//! connection modes `shared` and `per-session`.
//!
//! Each test runs its script (`tests/sdk/python_client.py`, `tests/sdk/ts_client.mjs`: one line
//! per check, exit 1 on the first failure) twice: directly against the mock (so a failure there
//! is the script's, the SDK's or the mock's, not the proxy's) and then through the proxy.
//!
//! The SDKs are installed by `.ci/run`; on a machine without them a test prints `SKIPPED: …`
//! with the install command and passes, except under `CI=true`, where a missing SDK fails.
//! - Python: the interpreter of `MCP_TEST_PYTHON`, else `target/sdk/venv/bin/python` (from the
//!   workspace root), if it can `import mcp`.
//! - TypeScript: `node` from `PATH`, with `proxy/tests/sdk/node_modules` (`npm ci` there).

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::*;

/// The exact `mcp` release `.ci/run` installs (keep the two in step).
const PYTHON_SDK: &str = "mcp==2.3.0";
/// A script run gets this long (each run takes about a second).
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(120);

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("proxy/ has a parent")
        .to_path_buf()
}

fn sdk_dir() -> PathBuf {
    workspace_root().join("proxy/tests/sdk")
}

#[derive(Clone, Copy, Debug)]
enum Sdk {
    Python,
    TypeScript,
}

/// A ready client: the program and the script to give it.
struct Runner {
    program: PathBuf,
    script: PathBuf,
}

impl Sdk {
    fn install_command(self) -> String {
        match self {
            Sdk::Python => format!(
                "python3 -m venv target/sdk/venv && target/sdk/venv/bin/pip install -q {PYTHON_SDK}  \
                 (from the workspace root; or point MCP_TEST_PYTHON at an interpreter that has it)"
            ),
            Sdk::TypeScript => "(cd proxy/tests/sdk && npm ci)  (from the workspace root)".into(),
        }
    }

    fn what(self) -> &'static str {
        match self {
            Sdk::Python => "python mcp SDK",
            Sdk::TypeScript => "typescript @modelcontextprotocol/sdk",
        }
    }

    /// The runner, or why there is none.
    async fn runner(self) -> Result<Runner, String> {
        match self {
            Sdk::Python => {
                let python = match std::env::var_os("MCP_TEST_PYTHON") {
                    Some(p) => PathBuf::from(p),
                    None => {
                        let venv = workspace_root().join("target/sdk/venv/bin/python");
                        if !venv.exists() {
                            return Err(format!("{} does not exist", venv.display()));
                        }
                        venv
                    }
                };
                let probe = tokio::process::Command::new(&python)
                    .args(["-c", "import mcp.client.session"])
                    .output()
                    .await
                    .map_err(|e| format!("{} does not run: {e}", python.display()))?;
                if !probe.status.success() {
                    return Err(format!(
                        "{} cannot import mcp: {}",
                        python.display(),
                        String::from_utf8_lossy(&probe.stderr).trim()
                    ));
                }
                Ok(Runner {
                    program: python,
                    script: sdk_dir().join("python_client.py"),
                })
            }
            Sdk::TypeScript => {
                let modules = sdk_dir().join("node_modules/@modelcontextprotocol/sdk");
                if !modules.exists() {
                    return Err(format!("{} does not exist", modules.display()));
                }
                let probe = tokio::process::Command::new("node")
                    .arg("--version")
                    .output()
                    .await
                    .map_err(|e| format!("node is not on PATH: {e}"))?;
                if !probe.status.success() {
                    return Err("node --version failed".into());
                }
                Ok(Runner {
                    program: "node".into(),
                    script: sdk_dir().join("ts_client.mjs"),
                })
            }
        }
    }
}

/// Runs `runner` against `url` with `key`; panics with the script's whole output unless it
/// exited 0. Returns its stdout.
async fn run_script(sdk: Sdk, runner: &Runner, url: &str, key: &str, what: &str) -> String {
    let started = Instant::now();
    let child = tokio::process::Command::new(&runner.program)
        .arg(&runner.script)
        .args([url, key])
        .current_dir(sdk_dir())
        .env("PYTHONUNBUFFERED", "1")
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "{sdk:?} {what}: cannot start {}: {e}",
                runner.program.display()
            )
        });
    let output = tokio::time::timeout(SCRIPT_TIMEOUT, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("{sdk:?} {what}: the script ran past {SCRIPT_TIMEOUT:?}"))
        .expect("wait for the script");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    let elapsed = started.elapsed();
    println!(
        "--- {} {what}: {} in {elapsed:.2?}\n{stdout}{}",
        sdk.what(),
        output.status,
        if stderr.is_empty() {
            String::new()
        } else {
            format!("[stderr]\n{stderr}")
        }
    );
    assert!(
        output.status.success(),
        "{} {what} ({url}) failed: {}\n--- stdout ---\n{stdout}--- stderr ---\n{stderr}",
        sdk.what(),
        output.status,
    );
    assert!(
        stdout.lines().any(|l| l.starts_with("passed ")),
        "{} {what}: the script exited 0 without its closing line\n--- stdout ---\n{stdout}--- stderr ---\n{stderr}",
        sdk.what()
    );
    stdout
}

/// The SDK's runner, or `None` after saying why it is skipped (a failure under `CI=true`).
async fn runner_or_skip(sdk: Sdk) -> Option<Runner> {
    match sdk.runner().await {
        Ok(runner) => Some(runner),
        Err(why) => {
            let message = format!(
                "{} not installed ({why}) (run: {})",
                sdk.what(),
                sdk.install_command()
            );
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("CI=true and the {message}");
            }
            // Straight to stderr, past the test harness's capture, so a plain `cargo test`
            // shows what did not run.
            let _ = writeln!(std::io::stderr(), "SKIPPED: {message}");
            None
        }
    }
}

async fn sdk_through_proxy(sdk: Sdk, mode: &str) {
    let Some(runner) = runner_or_skip(sdk).await else {
        return;
    };
    let mock = mock_mcp::MockServer::start(Default::default())
        .await
        .unwrap();
    let direct = run_script(
        sdk,
        &runner,
        &mock.url(),
        "unused",
        "directly against the mock",
    )
    .await;
    let proxy = start_proxy(
        &http_seed(&[("mock", &mock.url(), mode)], "demo", KEY, "auto"),
        |_| {},
    )
    .await;
    let through = run_script(
        sdk,
        &runner,
        &proxy.url("demo"),
        KEY,
        &format!("through the proxy ({mode})"),
    )
    .await;
    // Same checks both ways (the lines differ only where a value is run-specific).
    let checks = |out: &str| -> Vec<String> {
        out.lines()
            .filter_map(|l| l.strip_prefix("ok   "))
            .map(|l| l.split(':').next().unwrap_or_default().to_string())
            .collect()
    };
    assert_eq!(
        checks(&direct),
        checks(&through),
        "{} ran other checks through the proxy ({mode}) than directly",
        sdk.what()
    );
    proxy.shutdown().await;
    mock.shutdown().await;
}

#[tokio::test]
async fn python_sdk_shared() {
    sdk_through_proxy(Sdk::Python, "shared").await;
}

#[tokio::test]
async fn python_sdk_per_session() {
    sdk_through_proxy(Sdk::Python, "per-session").await;
}

#[tokio::test]
async fn typescript_sdk_shared() {
    sdk_through_proxy(Sdk::TypeScript, "shared").await;
}

#[tokio::test]
async fn typescript_sdk_per_session() {
    sdk_through_proxy(Sdk::TypeScript, "per-session").await;
}
