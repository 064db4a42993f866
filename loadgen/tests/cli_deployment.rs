//! Contract (issue 10, "Harness" and "Bad input"): `[target] replicas = N` with
//! `database = "postgres"` starts a throw-away PostgreSQL, N proxies on it and HAProxy in
//! front; `rolling-restart`, `db-restart` and `revoke-key` phases act on it under load, and
//! the report carries per-replica and total figures. HAProxy or PostgreSQL missing: exit 3
//! with the command that installs it. A replica that never becomes ready: exit 3 naming it,
//! and nothing it started is left running.
//!
//! Needs PostgreSQL's binaries and HAProxy (`.ci/run` installs both); without them the
//! end-to-end test says SKIPPED (and fails under `CI=true`).

mod common;

use common::*;

const DEPLOYMENT: &str = r#"
name = "deployment"
[target]
replicas = 2
database = "postgres"
ready_timeout = "20s"
proxy_args = ["--upstream-http-idle-timeout", "2s"]
[[upstream]]
name = "echo"
mock = "serve"
latency = "fixed:2ms"
[load]
users = 12
warmup = "2s"
duration = "16s"
protocols = { "2025-11-25" = 1, "2026-07-28" = 1 }
mix = { "tools/call echo" = 9, "tools/list" = 1 }
[[phase]]
at = "2s"
action = "revoke-key"
[[phase]]
at = "4s"
action = "rolling-restart"
[[phase]]
at = "11s"
action = "db-restart"
[leaks]
settle = "12s"
"#;

/// Whether PostgreSQL's server binaries and HAProxy are here; says SKIPPED (or panics under
/// `CI=true`) when not.
fn deployment_tools_present(test: &str) -> bool {
    let pg = mcp_loadgen::target::deployment::postgres::Postgres::locate();
    let haproxy = mcp_loadgen::target::deployment::haproxy::Haproxy::locate();
    match (pg, haproxy) {
        (Ok(_), Ok(_)) => true,
        (pg, haproxy) => {
            let why: Vec<String> = [pg.err(), haproxy.err()]
                .into_iter()
                .flatten()
                .map(|e| format!("{e:#}"))
                .collect();
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("{test}: {}", why.join("; "));
            }
            eprintln!("SKIPPED {test}: {}", why.join("; "));
            false
        }
    }
}

#[test]
fn replicas_behind_haproxy_survive_a_rolling_restart_a_revocation_and_a_db_restart() {
    if !deployment_tools_present("replicas_behind_haproxy_…") {
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    subreaper();
    let run = run_scenario(DEPLOYMENT);
    assert_eq!(
        run.code, 0,
        "stdout:\n{}\nstderr:\n{}",
        run.stdout, run.stderr
    );
    let r = run.report();
    // a deployment report is a valid report.json
    let schema: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(workspace().join("loadgen/report.schema.json")).unwrap(),
    )
    .unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let errors: Vec<String> = validator
        .iter_errors(&r)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{errors:?}");
    let d = &r["deployment"];
    assert_eq!(d["balancer"], "haproxy");
    // every replica was replaced once, cleanly, and the probe followed it
    let replicas = d["replicas"].as_array().unwrap();
    assert_eq!(replicas.len(), 2);
    for rep in replicas {
        let pids = rep["pids"].as_array().unwrap();
        assert_eq!(pids.len(), 2, "{rep}");
        assert_ne!(pids[0], pids[1]);
        assert!(rep["requests"].as_f64().unwrap() > 0.0, "{rep}");
        assert!(rep["rss_peak_mib"].as_f64().unwrap() > 1.0, "{rep}");
    }
    let restarts = d["restarts"].as_array().unwrap();
    assert_eq!(restarts.len(), 2);
    assert!(
        restarts.iter().all(|s| s["killed"] == false),
        "{restarts:?}"
    );
    // no request failed while replicas were replaced; only 2025-11-25 sessions were lost
    for era in d["restart_eras"].as_array().unwrap() {
        assert_eq!(era["failed"], 0, "{era}");
        if era["era"] == "2026-07-28" {
            assert_eq!(era["session_lost"], 0, "{era}");
        }
        assert!(era["requests"].as_u64().unwrap() > 0, "{era}");
    }
    // the revoked key was refused by every replica within a second
    let rev = &d["revocation"];
    for (name, ms) in rev["per_replica_ms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p[0].as_str().unwrap(), p[1].as_f64()))
    {
        let ms = ms.unwrap_or_else(|| panic!("{name} kept accepting the revoked key"));
        assert!(ms < 1000.0, "{name}: {ms} ms");
    }
    // the pools came back, and every connection left is one a replica owns
    let db = &d["db_restart"];
    assert!(db["connections_before"].as_i64().unwrap() > 0, "{db}");
    assert_eq!(db["connections_end"], db["connections_owned_end"], "{db}");
    for name in [
        "revocation.ms",
        "rolling_restart.failed_requests",
        "db_restart.stray_connections",
        "memory.rss_peak_mib.proxy-1",
        "memory.rss_peak_mib.proxy-2",
    ] {
        assert_eq!(run.check(name)["passed"], true, "{name}");
    }
    let md = std::fs::read_to_string(run.out.join("report.md")).unwrap();
    for section in [
        "### Replicas (2",
        "### Rolling restart",
        "### Key revocation",
        "### Database restart",
    ] {
        assert!(md.contains(section), "{section} missing from report.md");
    }
    // the cluster's data dir is gone with the run; no process is left
    assert_no_process_left(&[], "after the run");
}

#[test]
fn a_replica_that_never_becomes_ready_is_exit_3_naming_it_and_nothing_is_left() {
    if !deployment_tools_present("a_replica_that_never_becomes_ready_…") {
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    subreaper();
    // a 1 MiB memory bound: the replica is under pressure from its first breath, so its
    // /ready is 503 for ever
    let scenario = DEPLOYMENT
        .replace(
            "proxy_args = [\"--upstream-http-idle-timeout\", \"2s\"]",
            "proxy_args = [\"--memory-limit-mib\", \"1\"]",
        )
        .replace("ready_timeout = \"20s\"", "ready_timeout = \"2s\"");
    let run = run_scenario(&scenario);
    assert_eq!(
        run.code, 3,
        "stdout:\n{}\nstderr:\n{}",
        run.stdout, run.stderr
    );
    assert!(
        run.stderr.contains("proxy-1 never became ready"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("memory_pressure"), "{}", run.stderr);
    assert_no_process_left(&[], "after the failed start");
}

#[test]
fn missing_haproxy_or_postgres_is_exit_3_with_the_install_command() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    subreaper();
    let run = run_scenario_with(
        DEPLOYMENT,
        &[("MCP_LOADGEN_HAPROXY_BIN", "/nonexistent/haproxy")],
    );
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert!(
        run.stderr.contains("apt-get install -y haproxy"),
        "{}",
        run.stderr
    );
    let run = run_scenario_with(DEPLOYMENT, &[("MCP_LOADGEN_PG_BINDIR", "/nonexistent")]);
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert!(
        run.stderr.contains("apt-get install -y postgresql"),
        "{}",
        run.stderr
    );
    assert_no_process_left(&[], "after the refused runs");
}

#[test]
fn an_interrupted_deployment_run_stops_replicas_haproxy_and_postgres_and_exits_3() {
    if !deployment_tools_present("an_interrupted_deployment_run_…") {
        return;
    }
    use nix::sys::signal::{Signal, kill};
    use std::time::{Duration, Instant};
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    subreaper();
    let dir = tempfile::tempdir().unwrap();
    let scenario = dir.path().join("long.toml");
    std::fs::write(
        &scenario,
        DEPLOYMENT.replace("duration = \"16s\"", "duration = \"60s\""),
    )
    .unwrap();
    let cli = std::process::Command::new(env!("CARGO_BIN_EXE_mcp-loadgen"))
        .arg("run")
        .arg(&scenario)
        .arg("--out")
        .arg(dir.path().join("out"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // wait for the whole deployment: the mock, two replicas, HAProxy and PostgreSQL
    let cmdline = |p: u32| {
        std::fs::read_to_string(format!("/proc/{p}/cmdline"))
            .unwrap_or_default()
            .replace('\0', " ")
    };
    let deadline = Instant::now() + Duration::from_secs(90);
    let pgdata = loop {
        let kids = mcp_loadgen::observe::probe::child_pids(cli.id()).unwrap_or_default();
        let lines: Vec<String> = kids.iter().map(|k| cmdline(*k)).collect();
        let pg = lines.iter().find_map(|l| {
            let mut words = l.split_whitespace();
            words.find(|w| *w == "-D")?;
            words.next().map(str::to_string)
        });
        if kids.len() >= 5
            && lines.iter().any(|l| l.contains("haproxy"))
            && let Some(pg) = pg
        {
            break std::path::PathBuf::from(pg);
        }
        assert!(
            Instant::now() < deadline,
            "the deployment never started: {lines:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    std::thread::sleep(Duration::from_secs(4));
    assert!(pgdata.exists(), "{}", pgdata.display());
    kill(nix::unistd::Pid::from_raw(cli.id() as i32), Signal::SIGINT).unwrap();
    let output = cli.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("interrupted"), "{stderr}");
    assert_no_process_left(&[], "after SIGINT");
    assert!(
        !pgdata.exists(),
        "the cluster's data dir outlived the run: {}",
        pgdata.display()
    );
}
