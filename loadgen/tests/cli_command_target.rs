//! Contract: a target started from `[target] command` (anyone's proxy; here our own
//! `mcp-proxy` binary, treated as a stranger's) runs behind the scenario's mocks — a config
//! template rendered with `{{upstream.NAME.url}}` and a stdio mock's `{{upstream.NAME.command}}`
//! and `{{upstream.NAME.args}}`, fault phases switched on the HTTP mock — and is judged like
//! the bundled proxy: its log in `target.log`, a SIGTERM phase judged by its own exit, stopped
//! and reaped at the end. A command that exits at once or never gets ready, and an unknown
//! placeholder (inline or in the template), exit 3 naming the cause; nothing is left behind.

mod common;

use common::*;

/// Our proxy's seed, as another team's config template.
const SEED_TEMPLATE: &str = r#"
[[upstream]]
name = "echo"
transport = "streamable-http"
url = "{{upstream.echo.url}}"

[[upstream]]
name = "local"
transport = "stdio"
command = "{{upstream.local.command}}"
args = {{upstream.local.args}}

[[instance]]
id = "own"
upstreams = ["echo", "local"]
api_keys = ["own-key-0001"]
"#;

/// A scenario starting `mcp-proxy` through `command`, with `phases` appended.
fn own_proxy(phases: &str) -> String {
    let proxy = proxy_bin();
    format!(
        r#"
name = "own-proxy"
[target]
command = ["{proxy}", "serve", "--listen", "127.0.0.1:{{{{port}}}}", "--seed", "{{{{config}}}}",
           "--database-url", "sqlite://{{{{out_dir}}}}/p.db?mode=rwc",
           "--upstream-http-idle-timeout", "2s"]
env = {{ RUST_LOG = "info" }}
config_template = "seed.toml.tmpl"
url = "http://127.0.0.1:{{{{port}}}}/mcp/own"
ready_url = "http://127.0.0.1:{{{{port}}}}/ready"
headers = {{ Authorization = "Bearer own-key-0001" }}
[[upstream]]
name = "echo"
mock = "serve"
[[upstream]]
name = "local"
mock = "stdio"
[load]
users = 4
warmup = "1s"
duration = "4s"
mix = {{ "tools/call echo__echo" = 2, "tools/call local__echo" = 1 }}
[thresholds]
error_rate = 1.0
[leaks]
settle = "10s"
{phases}"#,
        proxy = proxy.display()
    )
}

fn run_own(phases: &str) -> Run {
    run_scenario_files(
        &own_proxy(phases),
        &[("seed.toml.tmpl", SEED_TEMPLATE)],
        &[],
        &[],
    )
}

#[test]
fn our_proxy_started_through_command_passes_with_a_fault_phase() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    subreaper();
    let run = run_own(
        r#"
[[phase]]
at = "1s"
upstream = "echo"
faults = ["disconnect-mid-call"]
[[phase]]
at = "2s"
upstream = "echo"
faults = []
"#,
    );
    assert_eq!(
        run.code, 0,
        "stdout:\n{}\nstderr:\n{}",
        run.stdout, run.stderr
    );
    // the template was rendered into the run's folder with the mocks' addresses
    let seed = std::fs::read_to_string(run.out.join("seed.toml")).unwrap();
    assert!(seed.contains("url = \"http://127.0.0.1:"), "{seed}");
    // the stdio mock keeps its counters where the harness reads them
    assert!(
        seed.contains("args = [\"stdio\",\"--stats-dir\","),
        "{seed}"
    );
    assert!(!seed.contains("{{"), "{seed}");
    // its log is the run's target.log, and its database where `{{out_dir}}` said
    let log = std::fs::read_to_string(run.out.join("target.log")).unwrap();
    assert!(!log.is_empty(), "target.log is empty");
    assert!(run.out.join("p.db").exists());
    let report = run.report();
    let echo = &report["ops"]["tools/call echo__echo"];
    assert!(
        echo["failed"].as_u64().unwrap() > 0,
        "the fault phase on the HTTP mock cut calls: {echo}"
    );
    let local = &report["ops"]["tools/call local__echo"];
    assert_eq!(
        local["failed"], 0,
        "the stdio upstream is untouched: {local}"
    );
    assert!(local["ok"].as_u64().unwrap() > 0);
    // probed by its PID and its /metrics, like the bundled proxy
    assert!(report["probe"]["pid"].as_u64().is_some());
    assert_eq!(run.check("tcp.close_wait")["passed"], true);
    assert_eq!(
        run.check("tokio.alive_tasks")["skipped"],
        serde_json::Value::Null
    );
    assert!(
        run.stdout.contains("target exit: exit status: 0"),
        "{}",
        run.stdout
    );
    assert_no_process_left(&[], "own proxy");
}

#[test]
fn a_sigterm_phase_is_judged_by_the_started_targets_exit() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    subreaper();
    let run = run_own("[[phase]]\nat = \"2s\"\naction = \"sigterm\"\n");
    assert_eq!(
        run.code, 0,
        "stdout:\n{}\nstderr:\n{}",
        run.stdout, run.stderr
    );
    let exit = run.check("shutdown.exit_code");
    assert_eq!(exit["passed"], true, "{exit}");
    assert_eq!(exit["value"], 0.0, "{exit}");
    assert_eq!(exit["skipped"], serde_json::Value::Null, "{exit}");
    assert_eq!(run.check("shutdown.seconds")["passed"], true);
    assert_no_process_left(&[], "own proxy after SIGTERM");
}

#[test]
fn a_command_that_exits_at_once_is_named_with_its_log() {
    fails_with_3_files(
        &bare(
            r#"command = ["sh", "-c", "echo no-config-given >&2; exit 7"]
url = "http://127.0.0.1:{{port}}/mcp""#,
        ),
        &[],
        &[
            "target exited before it was ready",
            "exit status: 7",
            "target.log",
            "no-config-given",
        ],
        "exits at once",
    );
}

#[test]
fn a_command_that_never_gets_ready_is_stopped_and_named() {
    fails_with_3_files(
        &bare(
            r#"command = ["sh", "-c", "echo still-starting; exec sleep 60"]
url = "http://127.0.0.1:{{port}}/mcp"
ready_timeout = "1s""#,
        ),
        &[],
        &["target never became ready", "within 1s", "still-starting"],
        "never ready",
    );
}

#[test]
fn a_ready_url_must_answer_2xx() {
    // something answers at the port, but 404 on the readiness path
    fails_with_3_files(
        &bare(
            r#"command = ["python3", "-m", "http.server", "--bind", "127.0.0.1", "{{port}}"]
url = "http://127.0.0.1:{{port}}/mcp"
ready_url = "http://127.0.0.1:{{port}}/no-such-path"
ready_timeout = "2s""#,
        ),
        &[],
        &["target never became ready", "HTTP 404"],
        "ready_url 404",
    );
}

#[test]
fn an_unknown_placeholder_is_named_before_anything_starts() {
    fails_with_3_files(
        &bare(
            r#"command = ["sh", "-c", "sleep 60", "{{prot}}"]
url = "http://127.0.0.1:{{port}}/mcp""#,
        ),
        &[],
        &["`target.command[3]`: unknown placeholder `{{prot}}`"],
        "unknown inline placeholder",
    );
    let run = fails_with_3_files(
        &bare(
            r#"command = ["sh", "-c", "sleep 60"]
config_template = "c.tmpl"
url = "http://127.0.0.1:{{port}}/mcp""#,
        )
        .replace(
            "[load]",
            "[[upstream]]\nname = \"echo\"\nmock = \"serve\"\n[load]",
        ),
        &[(
            "c.tmpl",
            "upstream = \"{{upstream.echo.url}}\"\nx = {{upstream.ehco.url}}\n",
        )],
        &[
            "c.tmpl",
            "unknown placeholder `{{upstream.ehco.url}}`",
            "no `[[upstream]]` is named \"ehco\"",
        ],
        "unknown template placeholder",
    );
    // checked before the mocks started
    assert!(!run.out.join("mock-echo.log").exists());
}

#[test]
fn started_target_validation_names_the_field() {
    fails_with_3_files(
        &bare(r#"command = ["sh", "-c", "sleep 60"]"#),
        &[],
        &["`target.command` needs `target.url`"],
        "no url",
    );
    fails_with_3_files(
        &bare(
            r#"command = ["sh", "-c", "sleep 60"]
url = "http://127.0.0.1:{{port}}/mcp"
pid_file = "x.pid""#,
        ),
        &[],
        &["`target.pid`/`target.pid_file` cannot be set with `target.command`"],
        "pid_file",
    );
}

/// `scenarios/external/supergateway.toml`, shortened, against the pinned npm packages
/// (`npm ci --prefix scenarios/external`): the harness drives a real third-party gateway.
/// Skipped, saying so, when they are not installed; with `CI=true` that is a failure.
#[test]
fn the_supergateway_scenario_runs_against_the_real_gateway() {
    let dir = workspace().join("scenarios/external");
    if !dir.join("node_modules/.bin/supergateway").exists() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true: scenarios/external/node_modules is missing (npm ci --prefix scenarios/external)"
        );
        eprintln!(
            "skipped: scenarios/external/node_modules is missing (npm ci --prefix scenarios/external)"
        );
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    subreaper();
    let dir = dir.canonicalize().unwrap();
    let text = std::fs::read_to_string(dir.join("supergateway.toml"))
        .unwrap()
        .replacen(
            "[target]",
            &format!("[target]\ncwd = {:?}", dir.display().to_string()),
            1,
        )
        .replace("users = 10", "users = 4")
        .replace("warmup = \"3s\"", "warmup = \"1s\"")
        .replace("duration = \"20s\"", "duration = \"5s\"")
        .replace("settle = \"10s\"", "settle = \"3s\"");
    let run = run_scenario(&text);
    // a verdict (pass, or a finding about the gateway), not a harness failure
    assert!(
        run.code == 0 || run.code == 1 || run.code == 2,
        "exit {}; stderr:\n{}",
        run.code,
        run.stderr
    );
    let report = run.report();
    let echo = &report["ops"]["tools/call echo"];
    assert!(echo["ok"].as_u64().unwrap() > 0, "{echo}");
    assert_eq!(
        echo["failed"], 0,
        "the everything server echoes `message`: {echo}"
    );
    assert!(report["probe"]["pid"].as_u64().is_some());
    assert!(run.out.join("target.log").exists());
    assert_no_process_left(&[], "supergateway");
}
