use super::*;

const MINIMAL: &str = r#"
name = "t"
[[upstream]]
name = "echo"
mock = "serve"
[load]
users = 2
warmup = "1s"
duration = "2s"
mix = { "tools/call echo" = 1 }
"#;

fn err(text: &str) -> String {
    Scenario::parse(text).expect_err("should be rejected")
}

#[test]
fn a_minimal_scenario_gets_the_documented_defaults() {
    let s = Scenario::parse(MINIMAL).unwrap();
    assert_eq!(s.thresholds.p99_ms, 2000.0);
    assert_eq!(s.thresholds.mean_ms, 1000.0);
    assert_eq!(s.thresholds.error_rate, 0.01);
    assert_eq!(s.thresholds.cache_hit_rate, 0.95);
    assert_eq!(s.thresholds.db_pool_utilisation, 0.70);
    assert_eq!(s.leaks.fds, 0);
    assert_eq!(s.leaks.rss_mib, 16.0);
    assert_eq!(s.leaks.threads, 16);
    assert_eq!(s.leaks.sockets_unix, 0);
    let s = Scenario::parse(&format!(
        "{MINIMAL}\n[leaks]\nthreads = 4\nsockets_unix = 2\n"
    ))
    .unwrap();
    assert_eq!((s.leaks.threads, s.leaks.sockets_unix), (4, 2));
    let s = Scenario::parse(MINIMAL).unwrap();
    assert_eq!(s.leaks.settle, Duration::from_secs(10));
    assert_eq!(s.leaks.settle_min(), Duration::from_secs(3));
    assert_eq!(s.leaks.cycles, 1);
    assert_eq!(s.leaks.rss_noise_mib, 2.0);
    assert_eq!(s.load.protocol, Protocol::V2025_11_25);
    assert_eq!(s.ops(), vec![(Op::Call("echo".into()), 1)]);
    assert!(s.bundled());
}

#[test]
fn every_scenario_in_the_repository_parses() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    for (dir, at_least) in [
        ("scenarios", 11),
        ("scenarios/gate", 7),
        ("scenarios/external", 3),
    ] {
        let dir = root.join(dir);
        let mut n = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "toml") {
                Scenario::load(&path).unwrap_or_else(|e| panic!("{e}"));
                n += 1;
            }
        }
        assert!(n >= at_least, "{n} scenarios in {}", dir.display());
    }
}

#[test]
fn the_gate_scenarios_settle_within_their_window_and_stay_short() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/gate");
    let mut total = Duration::ZERO;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let s = Scenario::load(&path).unwrap();
        // a pooled upstream connection closes after the idle timeout and is reaped within
        // twice that: the settle window must cover it, or the gate reports pooled
        // connections as leaks
        let idle = s
            .target
            .proxy_args
            .iter()
            .position(|a| a == "--upstream-http-idle-timeout")
            .map(|i| humantime::parse_duration(&s.target.proxy_args[i + 1]).unwrap())
            .unwrap_or(Duration::from_secs(10));
        let http = s.upstreams.iter().any(|u| u.mock == MockKind::Serve);
        let sigterm = s.phases.iter().any(|p| p.action == PhaseAction::Sigterm);
        assert!(
            !http || sigterm || s.leaks.settle >= 2 * idle,
            "{}: settle {:?} < 2 × idle {idle:?}",
            path.display(),
            s.leaks.settle
        );
        total += s.load.warmup + s.load.duration + s.leaks.settle;
    }
    // the issue's budget: the whole gate within 3 minutes of run time
    assert!(total <= Duration::from_secs(180), "{total:?}");
}

#[test]
fn unknown_fields_are_errors_that_name_the_field() {
    let e = err(&MINIMAL.replace("users = 2", "users = 2\nuser = 3"));
    assert!(e.contains("unknown field `user`"), "{e}");
    let e = err(&format!("{MINIMAL}\n[leaks]\nfd = 1\n"));
    assert!(e.contains("unknown field `fd`"), "{e}");
}

#[test]
fn bad_durations_name_the_value_and_the_line() {
    let e = err(&MINIMAL.replace("\"2s\"", "\"2 parsecs\""));
    assert!(e.contains("invalid duration \"2 parsecs\""), "{e}");
    assert!(e.contains("duration = "), "the snippet shows the key: {e}");
}

#[test]
fn tls_is_for_http_mocks_only() {
    let tls = MINIMAL.replace("mock = \"serve\"", "mock = \"serve\"\ntls = true");
    assert!(Scenario::parse(&tls).unwrap().upstreams[0].tls);
    let stdio = MINIMAL.replace("mock = \"serve\"", "mock = \"stdio\"\ntls = true");
    let e = err(&stdio);
    assert!(e.contains("`tls` apply to `mock = \"serve\"` only"), "{e}");
}

#[test]
fn transport_sse_is_for_http_mocks_only_and_named_when_wrong() {
    let s = Scenario::parse(MINIMAL).unwrap();
    assert!(s.upstreams[0].transport.is_none() && !s.upstreams[0].sse());
    let sse = MINIMAL.replace("mock = \"serve\"", "mock = \"serve\"\ntransport = \"sse\"");
    assert!(Scenario::parse(&sse).unwrap().upstreams[0].sse());
    // with tls, require_header, headers and a phase switching its faults
    let full = sse.replace(
        "transport = \"sse\"",
        "transport = \"sse\"\ntls = true\nconnection = \"per-request\"\nrequire_header = \"Authorization: Bearer t\"\nheaders = { Authorization = \"Bearer ${T}\" }",
    );
    let full = format!(
        "{}\n[[phase]]\nat = \"1s\"\nupstream = \"echo\"\nfaults = [\"hang-call\"]\n",
        full.replace(
            "name = \"t\"\n",
            "name = \"t\"\n[target]\nsecrets = { T = \"t\" }\n"
        )
    );
    let u = &Scenario::parse(&full).unwrap().upstreams[0];
    assert!(u.sse() && u.tls && u.require_header.is_some() && !u.headers.is_empty());
    let explicit = MINIMAL.replace(
        "mock = \"serve\"",
        "mock = \"serve\"\ntransport = \"streamable-http\"",
    );
    assert!(!Scenario::parse(&explicit).unwrap().upstreams[0].sse());

    let stdio = MINIMAL.replace("mock = \"serve\"", "mock = \"stdio\"\ntransport = \"sse\"");
    let e = err(&stdio);
    assert!(
        e.contains("upstream \"echo\": `transport = \"sse\"` applies to `mock = \"serve\"` only"),
        "{e}"
    );
    for other in ["websocket", "stdio", "SSE", ""] {
        let e = err(&MINIMAL.replace(
            "mock = \"serve\"",
            &format!("mock = \"serve\"\ntransport = \"{other}\""),
        ));
        assert!(
            e.contains(&format!(
                "upstream \"echo\": `transport` \"{other}\": expected \"streamable-http\" or \"sse\""
            )),
            "{e}"
        );
    }
    let e = err(&sse.replace(
        "transport = \"sse\"",
        "transport = \"sse\"\nstateless = true",
    ));
    assert!(
        e.contains("upstream \"echo\": `stateless` does not apply to `transport = \"sse\"`"),
        "{e}"
    );
}

#[test]
fn phases_must_name_a_defined_http_upstream() {
    let e = err(&format!(
        "{MINIMAL}\n[[phase]]\nat = \"1s\"\nupstream = \"nope\"\nfaults = [\"hang-call\"]\n"
    ));
    assert!(e.contains("upstream \"nope\" is not defined"), "{e}");
    let stdio = MINIMAL.replace("mock = \"serve\"", "mock = \"stdio\"");
    let e = err(&format!(
        "{stdio}\n[[phase]]\nat = \"1s\"\nupstream = \"echo\"\nfaults = [\"hang-call\"]\n"
    ));
    assert!(e.contains("stdio mock"), "{e}");
    let e = err(&format!(
        "{MINIMAL}\n[[phase]]\nat = \"5s\"\nupstream = \"echo\"\nfaults = []\n"
    ));
    assert!(e.contains("starts after the load ends"), "{e}");
}

#[test]
fn calls_to_an_undefined_namespace_are_errors() {
    let two = format!(
        "{}\n[[upstream]]\nname = \"other\"\nmock = \"serve\"\n",
        MINIMAL.replace("\"tools/call echo\"", "\"tools/call ghost__echo\"")
    );
    let e = err(&two);
    assert!(e.contains("names upstream \"ghost\""), "{e}");
    let e = err(&two.replace("ghost__echo", "echo"));
    assert!(e.contains("UPSTREAM__TOOL"), "{e}");
    Scenario::parse(&two.replace("ghost__echo", "other__echo")).unwrap();
}

#[test]
fn load_needs_a_model_and_a_valid_mix() {
    let e = err(&MINIMAL.replace("users = 2", ""));
    assert!(e.contains("`users = N`"), "{e}");
    let e = err(&MINIMAL.replace("users = 2", "users = 0"));
    assert!(e.contains("at least 1"), "{e}");
    let e = err(&MINIMAL.replace("users = 2", "rate = -5.0"));
    assert!(e.contains("positive"), "{e}");
    let e = err(&MINIMAL.replace("\"tools/call echo\" = 1", "\"tools/frobnicate\" = 1"));
    assert!(e.contains("\"tools/frobnicate\""), "{e}");
    let e = err(&MINIMAL.replace("\"tools/call echo\" = 1", "\"tools/call echo\" = 0"));
    assert!(e.contains("weight"), "{e}");
    let e = err(&MINIMAL.replace("users = 2", "users = 2\nexpect_errors = [\"tools/list\"]"));
    assert!(e.contains("not in `load.mix`"), "{e}");
}

#[test]
fn no_upstream_and_no_url_is_an_error() {
    let e = err(&MINIMAL.replace("[[upstream]]\nname = \"echo\"\nmock = \"serve\"\n", ""));
    assert!(e.contains("no `[[upstream]]`"), "{e}");
}

#[test]
fn external_targets_bring_their_own_upstreams() {
    let ext = MINIMAL.replace(
        "[[upstream]]\nname = \"echo\"\nmock = \"serve\"\n",
        "[target]\nurl = \"http://127.0.0.1:9/mcp\"\npid = 1\nheaders = { \"X-API-Key\" = \"k\" }\n",
    );
    let s = Scenario::parse(&ext).unwrap();
    assert!(!s.bundled());
    assert_eq!(s.target.headers["X-API-Key"], "k");
    let e = err(&format!(
        "{ext}\n[[upstream]]\nname = \"x\"\nmock = \"serve\"\n"
    ));
    assert!(e.contains("only started for the bundled proxy"), "{e}");
    let e = err(&ext.replace("http://", "ftp://"));
    assert!(e.contains("not an http(s) URL"), "{e}");
}

#[test]
fn load_errors_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("broken.toml");
    std::fs::write(&path, MINIMAL.replace("users = 2", "users = \"many\"")).unwrap();
    let e = Scenario::load(&path).unwrap_err().to_string();
    assert!(e.starts_with(&path.display().to_string()), "{e}");
    let e = Scenario::load(&dir.path().join("missing.toml"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("missing.toml: cannot read"), "{e}");
}

#[test]
fn ops_parse_and_label() {
    assert_eq!(Op::parse("tools/list"), Some(Op::ListTools));
    assert_eq!(Op::parse("ping"), Some(Op::Ping));
    assert_eq!(Op::parse("tools/call a__b"), Some(Op::Call("a__b".into())));
    assert_eq!(Op::parse("tools/call "), None);
    assert_eq!(Op::parse("tools/call a b"), None);
    assert_eq!(Op::Call("x".into()).label(), "tools/call x");
}

/// `MINIMAL` with `target` lines and extra phases.
fn with(target: &str, phases: &str) -> String {
    MINIMAL.replacen(
        "[[upstream]]",
        &format!("[target]\n{target}\n[[upstream]]"),
        1,
    ) + phases
}

#[test]
fn replicas_share_a_postgres_store_and_take_deployment_phases() {
    let s = Scenario::parse(&with(
        "replicas = 3\ndatabase = \"postgres\"",
        "[[phase]]\nat = \"1s\"\naction = \"rolling-restart\"\nkill_after = \"5s\"\n\
         [[phase]]\nat = \"1s\"\naction = \"db-restart\"\n\
         [[phase]]\nat = \"1s\"\naction = \"revoke-key\"\n",
    ))
    .unwrap();
    assert_eq!(s.target.replicas, 3);
    assert_eq!(s.target.database, Database::Postgres);
    assert_eq!(s.phases[0].kill_after, Duration::from_secs(5));
    assert_eq!(s.phases[1].kill_after, Duration::from_secs(10));
    assert_eq!(s.thresholds.rss_limit_mib, 1024.0);
    assert_eq!(s.thresholds.revocation_ms, 1000.0);
    assert_eq!(s.thresholds.restart_failed_requests, 0);
    // defaults: one replica on SQLite
    let s = Scenario::parse(MINIMAL).unwrap();
    assert_eq!(
        (s.target.replicas, s.target.database),
        (1, Database::Sqlite)
    );
}

#[test]
fn deployment_settings_that_cannot_work_are_errors_that_say_why() {
    let e = err(&with("replicas = 2", ""));
    assert!(e.contains("needs `database = \"postgres\"`"), "{e}");
    let e = err(&with("replicas = 0", ""));
    assert!(e.contains("at least 1"), "{e}");
    let e = err(&with("database = \"mysql\"", ""));
    assert!(e.contains("mysql"), "{e}");
    let e = err(&with("database_url = \"postgres://x/y\"", ""));
    assert!(e.contains("needs `database = \"postgres\"`"), "{e}");
    let e = err(&with(
        "database = \"postgres\"\ndatabase_url = \"mysql://x/y\"",
        "",
    ));
    assert!(e.contains("not a postgres:// URL"), "{e}");
    // a database restart needs the harness's own server
    let e = err(&with(
        "database = \"postgres\"\ndatabase_url = \"postgres://x/y\"",
        "[[phase]]\nat = \"1s\"\naction = \"db-restart\"\n",
    ));
    assert!(e.contains("without `database_url`"), "{e}");
    let e = err(&with(
        "",
        "[[phase]]\nat = \"1s\"\naction = \"db-restart\"\n",
    ));
    assert!(e.contains("db-restart"), "{e}");
    // SIGTERM stops one target; replicas restart instead
    let e = err(&with(
        "replicas = 2\ndatabase = \"postgres\"",
        "[[phase]]\nat = \"1s\"\naction = \"sigterm\"\n",
    ));
    assert!(e.contains("rolling-restart"), "{e}");
    // deployment phases take no upstream
    let e = err(&with(
        "",
        "[[phase]]\nat = \"1s\"\naction = \"revoke-key\"\nupstream = \"echo\"\n",
    ));
    assert!(e.contains("takes no upstream"), "{e}");
    // external targets bring their own deployment
    let e = err(
        "name = \"t\"\n[target]\nurl = \"http://127.0.0.1:1/mcp/x\"\nreplicas = 2\n\
         [load]\nusers = 1\nwarmup = \"1s\"\nduration = \"2s\"\nmix = { \"tools/list\" = 1 }\n",
    );
    assert!(e.contains("bundled proxy only"), "{e}");
}

#[test]
fn protocols_deal_users_to_eras_by_share() {
    let text = MINIMAL.replace(
        "users = 2",
        "users = 2\nprotocols = { \"2025-11-25\" = 1, \"2026-07-28\" = 3 }",
    );
    let s = Scenario::parse(&text).unwrap();
    assert_eq!(
        s.load.protocols.iter().collect::<Vec<_>>(),
        vec![(&Protocol::V2025_11_25, &1), (&Protocol::V2026_07_28, &3)]
    );
    let plan = crate::load::Plan::new(
        &s,
        "http://127.0.0.1:1/mcp/x",
        &BTreeMap::new(),
        Duration::from_secs(1),
    )
    .unwrap();
    let eras: Vec<Protocol> = (0..8).map(|i| plan.protocol_of(i)).collect();
    use Protocol::{V2025_11_25 as A, V2026_07_28 as B};
    assert_eq!(eras, vec![A, B, B, B, A, B, B, B]);
    let e = err(&MINIMAL.replace("users = 2", "users = 2\nprotocols = { \"2025-11-25\" = 0 }"));
    assert!(e.contains("at least 1"), "{e}");
    let e = err(&MINIMAL.replace("users = 2", "users = 2\nprotocols = { \"2024\" = 1 }"));
    assert!(e.contains("2024"), "{e}");
}

#[test]
fn settle_and_cycles_that_cannot_work_are_errors_that_say_why() {
    let with = |leaks: &str, extra: &str| format!("{MINIMAL}{extra}\n[leaks]\n{leaks}\n");
    let e = err(&with("settle = \"2s\"\nsettle_min = \"5s\"", ""));
    assert!(
        e.contains("`leaks.settle_min` (5s) is longer than `leaks.settle` (2s)"),
        "{e}"
    );
    let e = err(&with("cycles = 0", ""));
    assert!(e.contains("`leaks.cycles` must be at least 1"), "{e}");
    // MINIMAL's load lasts 2s: three rounds would be shorter than a second each
    let e = err(&with("cycles = 3", ""));
    assert!(e.contains("a round must last at least 1s"), "{e}");
    let phase = "[[phase]]\nat = \"1s\"\nupstream = \"echo\"\nfaults = []";
    let e = err(&with("cycles = 2", phase));
    assert!(e.contains("cannot be combined with `[[phase]]`"), "{e}");
    let e = err(&with("rss_noise_mib = -1", ""));
    assert!(
        e.contains("`leaks.rss_noise_mib` must be a number ≥ 0"),
        "{e}"
    );
    let ok = Scenario::parse(&with("cycles = 2\nsettle_min = \"0s\"", "")).unwrap();
    assert_eq!(ok.leaks.cycles, 2);
    assert_eq!(ok.leaks.settle_min(), Duration::ZERO);
    // a settle shorter than the default minimum is the minimum too (scenarios keep working)
    let short = Scenario::parse(&with("settle = \"2s\"", "")).unwrap();
    assert_eq!(short.leaks.settle_min(), Duration::from_secs(2));
}

#[test]
fn per_operation_timeouts_default_to_request_timeout() {
    let s = Scenario::parse(&MINIMAL.replace("users = 2", "users = 2\nrequest_timeout = \"7s\""))
        .unwrap();
    assert!(!s.load.event_stream);
    assert_eq!(s.load.timeout(OpKind::Call), Duration::from_secs(7));
    assert_eq!(s.load.timeout(OpKind::Delete), Duration::from_secs(7));
    let s = Scenario::parse(&format!(
        "{MINIMAL}event_stream = true\n[load.timeouts]\ncall = \"500ms\"\nlist = \"45s\"\n"
    ))
    .unwrap();
    assert!(s.load.event_stream);
    assert!(
        s.load.cancel,
        "a client cancels what it gives up on by default"
    );
    let quiet = Scenario::parse(&format!("{MINIMAL}cancel = false\n")).unwrap();
    assert!(!quiet.load.cancel);
    assert_eq!(s.load.timeout(OpKind::Call), Duration::from_millis(500));
    assert_eq!(s.load.timeout(OpKind::List), Duration::from_secs(45));
    assert_eq!(s.load.timeout(OpKind::Ping), Duration::from_secs(30));
    assert_eq!(s.load.longest_timeout(), Duration::from_secs(45));
}

#[test]
fn bad_timeouts_name_the_field() {
    let e = err(&format!("{MINIMAL}[load.timeouts]\ncall = \"0s\"\n"));
    assert!(e.contains("`load.timeouts.call`"), "{e}");
    let e = err(&format!("{MINIMAL}[load.timeouts]\ncal = \"1s\"\n"));
    assert!(e.contains("cal"), "{e}");
    let e = err(&format!("{MINIMAL}[load.timeouts]\nping = \"soon\"\n"));
    assert!(e.contains("soon"), "{e}");
    let e = err(&MINIMAL.replace("users = 2", "users = 2\nrequest_timeout = \"0s\""));
    assert!(e.contains("`load.request_timeout`"), "{e}");
}

const STARTED: &str = r#"command = ["proxy", "--port", "{{port}}", "--seed", "{{config}}", "--up", "{{upstream.echo.url}}"]
url = "http://127.0.0.1:{{port}}/mcp"
config_template = "seed.toml.tmpl"
env = { LOG = "{{out_dir}}/x" }"#;

#[test]
fn a_started_target_takes_the_mocks_and_its_own_phases() {
    let s = Scenario::parse(&with(
        STARTED,
        "[[phase]]\nat = \"1s\"\nupstream = \"echo\"\nfaults = [\"hang-call\"]\n[[phase]]\nat = \"1s\"\naction = \"sigterm\"\n",
    ))
    .unwrap();
    assert!(s.started());
    assert!(!s.bundled());
    // relative paths are the scenario file's folder's, and so is the default cwd
    let mut s = s;
    s.resolve_paths(Path::new("/scen"));
    assert_eq!(s.target.cwd.as_deref(), Some(Path::new("/scen/")));
    assert_eq!(
        s.target.config_template.as_deref(),
        Some(Path::new("/scen/seed.toml.tmpl"))
    );
}

#[test]
fn started_target_settings_that_cannot_work_are_errors_that_say_why() {
    let cases = [
        (
            "command = [\"p\"]".to_string(),
            "`target.command` needs `target.url`",
        ),
        (
            format!("{STARTED}\npid = 1"),
            "`target.pid`/`target.pid_file` cannot be set",
        ),
        (
            format!("{STARTED}\nproxy_args = [\"--x\"]"),
            "`target.proxy_args`/`target.listen` apply to the bundled proxy only",
        ),
        (
            format!("{STARTED}\nreplicas = 2\ndatabase = \"postgres\""),
            "apply to the bundled proxy only",
        ),
        (
            "command = []\nurl = \"http://127.0.0.1:1/mcp\"".into(),
            "`target.command` is empty",
        ),
        (
            "env = { A = \"1\" }".into(),
            "apply to a started target (`target.command` or `target.stdio`) only",
        ),
        (
            STARTED.replace("{{port}}/mcp", "{{prot}}/mcp"),
            "`target.url`: unknown placeholder `{{prot}}`",
        ),
        (
            STARTED.replace("{{out_dir}}", "{{upstream.ghost.url}}"),
            "no `[[upstream]]` is named \"ghost\"",
        ),
        (
            STARTED.replace("config_template = \"seed.toml.tmpl\"", ""),
            "`{{config}}` (it needs `target.config_template`)",
        ),
        (
            STARTED.replace("{{upstream.echo.url}}", "{{upstream.echo.command}}"),
            "is an HTTP mock: it offers `url`",
        ),
    ];
    for (target, needle) in cases {
        let e = err(&with(&target, ""));
        assert!(e.contains(needle), "{target}: {e}");
    }
}

#[test]
fn metric_names_and_the_reaping_wait_are_read_and_checked() {
    let s = Scenario::parse(&format!(
        "{MINIMAL}\n[leaks]\nexpect_reaped_within = \"40s\"\n"
    ))
    .unwrap();
    assert_eq!(s.leaks.expect_reaped_within, Some(Duration::from_secs(40)));
    assert_eq!(
        Scenario::parse(MINIMAL).unwrap().leaks.expect_reaped_within,
        None
    );
    let with_metrics = |m: &str| {
        MINIMAL.replace(
            "name = \"t\"\n",
            &format!("name = \"t\"\n[target.metrics]\n{m}\n"),
        )
    };
    let s = Scenario::parse(&with_metrics(
        r#"sessions = "mcp_sessions_active"
tasks = 'nodejs_active_handles{type="Socket"}'"#,
    ))
    .unwrap();
    assert_eq!(
        s.target.metrics.sessions.as_deref(),
        Some("mcp_sessions_active")
    );
    let e = err(&with_metrics(r#"tasks = "not a name""#));
    assert!(e.contains("`target.metrics.tasks`"), "{e}");
    let e = err(&with_metrics(r#"session = "x""#));
    assert!(e.contains("session"), "{e}");
    let e = err(&format!(
        "{MINIMAL}\n[leaks]\nexpect_reaped_within = \"0s\"\n"
    ));
    assert!(e.contains("`leaks.expect_reaped_within`"), "{e}");
}

/// `MINIMAL` whose upstream wants credentials the bundled proxy is given.
const CREDENTIALS: &str = r#"
name = "t"
[target]
secrets = { TOKEN = "s3cret-abc" }
[[upstream]]
name = "echo"
mock = "serve"
require_header = "Authorization: Bearer s3cret-abc"
headers = { Authorization = "Bearer ${TOKEN}" }
[load]
users = 2
warmup = "1s"
duration = "2s"
mix = { "tools/call echo" = 1 }
"#;

#[test]
fn upstream_credentials_are_read() {
    let s = Scenario::parse(CREDENTIALS).unwrap();
    let u = &s.upstreams[0];
    assert_eq!(
        u.require_header.as_ref().map(RequireHeader::expose),
        Some("Authorization: Bearer s3cret-abc")
    );
    assert_eq!(u.headers["Authorization"], "Bearer ${TOKEN}");
    assert_eq!(s.target.secrets.expose()["TOKEN"], "s3cret-abc");
    assert_eq!(s.target.secrets.names().collect::<Vec<_>>(), ["TOKEN"]);
    // none of it by default
    let s = Scenario::parse(MINIMAL).unwrap();
    assert!(s.target.secrets.is_empty());
    assert!(s.upstreams[0].require_header.is_none() && s.upstreams[0].headers.is_empty());
    // `$$` is a literal `$`, and a header need not be a template
    let literal = CREDENTIALS.replace("Bearer ${TOKEN}", "Bearer $$5 ${TOKEN}");
    Scenario::parse(&literal).unwrap();
}

#[test]
fn the_scenario_echo_never_holds_a_secret() {
    let s = Scenario::parse(CREDENTIALS).unwrap();
    // what run/facts.rs writes as report.json's `scenario`
    let echo = serde_json::to_value(&s).unwrap();
    let text = echo.to_string();
    assert!(!text.contains("s3cret-abc"), "{text}");
    assert_eq!(
        echo["target"]["secrets"],
        serde_json::json!({ "TOKEN": "***" })
    );
    assert_eq!(
        echo["upstream"][0]["require_header"], "Authorization: ***",
        "the mock's credential is the same secret"
    );
    // the template names the secret, it does not hold it
    assert_eq!(
        echo["upstream"][0]["headers"]["Authorization"],
        "Bearer ${TOKEN}"
    );
    assert!(!format!("{s:?}").contains("s3cret-abc"));
    assert!(!toml::to_string(&s).unwrap().contains("s3cret-abc"));
}

#[test]
fn credential_settings_that_cannot_work_are_errors_naming_the_entry() {
    let cases = [
        (
            CREDENTIALS
                .replace("mock = \"serve\"", "mock = \"stdio\"")
                .replace("headers = { Authorization = \"Bearer ${TOKEN}\" }\n", ""),
            "upstream \"echo\": `require_header` applies to `mock = \"serve\"` only",
        ),
        (
            CREDENTIALS
                .replace("mock = \"serve\"", "mock = \"stdio\"")
                .replace(
                    "require_header = \"Authorization: Bearer s3cret-abc\"\n",
                    "",
                ),
            "upstream \"echo\": `headers` apply to HTTP upstreams (`mock = \"serve\"`) only",
        ),
        (
            CREDENTIALS.replace("Authorization: Bearer s3cret-abc", "Bearer s3cret-abc"),
            "upstream \"echo\": `require_header` expects \"Name: value\"",
        ),
        (
            CREDENTIALS.replace("Authorization: Bearer s3cret-abc", "Auth orization: x"),
            "`Auth orization` is not a header name",
        ),
        (
            CREDENTIALS.replace("Authorization: Bearer s3cret-abc", "Authorization:  "),
            "the value is empty",
        ),
        (
            CREDENTIALS.replace("${TOKEN}", "${TOKEM}"),
            "upstream \"echo\": `headers.Authorization` uses `${TOKEM}`, which `target.secrets` does not define",
        ),
        (
            CREDENTIALS.replace("${TOKEN}", "${TOKEN"),
            "upstream \"echo\": `headers.Authorization`: unclosed `${`",
        ),
        (
            CREDENTIALS.replace("${TOKEN}", "${1X}"),
            "`${1X}`: a name is [A-Za-z_]",
        ),
        (
            CREDENTIALS.replace("headers = { Authorization", "headers = { \"Bad Name\""),
            "`headers.Bad Name`: `Bad Name` is not a header name",
        ),
        (
            CREDENTIALS.replace("s3cret-abc\" }", "s3cret\\nabc\" }"),
            "`headers.Authorization`: its value (with `target.secrets`) holds a character a header cannot carry",
        ),
        (
            CREDENTIALS.replace("{ TOKEN = \"s3cret-abc\" }", "{ TOKEN = \"\" }"),
            "`target.secrets.TOKEN` is empty",
        ),
        (
            CREDENTIALS.replace("{ TOKEN = ", "{ \"MY-TOKEN\" = "),
            "`target.secrets.MY-TOKEN`: a secret's name is [A-Za-z_][A-Za-z0-9_]*",
        ),
        (
            CREDENTIALS.replace(
                "[target]\n",
                "[target]\nurl = \"http://127.0.0.1:1/mcp/x\"\n",
            ),
            "`target.secrets` go into the bundled proxy's seed",
        ),
    ];
    for (text, needle) in cases {
        let e = err(&text);
        assert!(e.contains(needle), "{needle}\n{text}\n→ {e}");
        assert!(!e.contains("s3cret"), "an error never repeats a value: {e}");
    }
    // headers on a started target's upstream go nowhere
    let started = with(STARTED, "").replace(
        "mock = \"serve\"",
        "mock = \"serve\"\nheaders = { A = \"b\" }",
    );
    let e = err(&started);
    assert!(
        e.contains("upstream \"echo\": `headers` go into the bundled proxy's seed"),
        "{e}"
    );
    // ... but its mock may still ask for a header (the target's own config sends it)
    let started = with(STARTED, "").replace(
        "mock = \"serve\"",
        "mock = \"serve\"\nrequire_header = \"X-Key: k\"",
    );
    Scenario::parse(&started).unwrap();
}

#[test]
fn credential_errors_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("creds.toml");
    std::fs::write(&path, CREDENTIALS.replace("${TOKEN}", "${NOPE}")).unwrap();
    let e = Scenario::load(&path).unwrap_err().to_string();
    assert!(e.starts_with(&path.display().to_string()), "{e}");
    assert!(e.contains("`headers.Authorization` uses `${NOPE}`"), "{e}");
}
