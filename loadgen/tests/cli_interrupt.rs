//! Contract: Ctrl-C (SIGINT) or SIGTERM to the harness mid-run stops the load, stops every
//! process the run started (mocks, the proxy, the proxy's stdio child), and exits 3 — no
//! verdict, no stray process.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

fn interrupted_with(signal: Signal) {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    subreaper();
    let dir = tempfile::tempdir().unwrap();
    let scenario = dir.path().join("long.toml");
    std::fs::write(
        &scenario,
        r#"
name = "long"
[[upstream]]
name = "echo"
mock = "serve"
[[upstream]]
name = "local"
mock = "stdio"
[load]
users = 4
warmup = "1s"
duration = "60s"
mix = { "tools/call echo__echo" = 1, "tools/call local__echo" = 1 }
"#,
    )
    .unwrap();
    let out = dir.path().join("out");
    let cli = Command::new(env!("CARGO_BIN_EXE_mcp-loadgen"))
        .arg("run")
        .arg(&scenario)
        .arg("--out")
        .arg(&out)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // wait until the load runs: the proxy and its stdio child exist (3 descendants at least)
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let kids = mcp_loadgen::observe::probe::child_pids(cli.id()).unwrap_or_default();
        let grandkids: usize = kids
            .iter()
            .map(|k| {
                mcp_loadgen::observe::probe::child_pids(*k)
                    .unwrap_or_default()
                    .len()
            })
            .sum();
        if kids.len() >= 2 && grandkids >= 1 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the run never started its processes"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_secs(2));
    let sent = Instant::now();
    kill(Pid::from_raw(cli.id() as i32), signal).unwrap();
    let output = cli.wait_with_output().unwrap();
    let took = sent.elapsed();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        output.status.code(),
        Some(3),
        "{signal}: exit code; stderr:\n{stderr}"
    );
    assert!(stderr.contains("interrupted"), "{stderr}");
    assert!(
        took < Duration::from_secs(20),
        "{signal}: took {took:?} to stop"
    );
    assert_no_process_left(&[], &format!("after {signal}"));
}

#[test]
fn sigint_stops_everything_and_exits_3() {
    interrupted_with(Signal::SIGINT);
}

#[test]
fn sigterm_stops_everything_and_exits_3() {
    interrupted_with(Signal::SIGTERM);
}
