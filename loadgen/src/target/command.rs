//! A target the harness starts from the scenario's `target.command` (anyone's proxy, in any
//! language): the scenario's mocks first, then the placeholders rendered (the config
//! template into the run's folder), then the command, watched by its PID.
//!
//! Invariant: every placeholder is checked before anything starts (the inline texts by the
//! scenario's validation, the template here, first); the started process is a child of
//! [`Processes`] like the bundled proxy, so it is stopped (SIGTERM, SIGKILL after a grace)
//! and reaped on every path.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, anyhow};

use super::{Binaries, CommandSpec, Endpoint, Processes, Ready, mock_args};
use crate::scenario::placeholders::{self, render, shell_quote};
use crate::scenario::{MockKind, Scenario};

/// Starts the scenario's mocks and its `target.command`; the endpoint to measure.
pub async fn start(
    scenario: &Scenario,
    binaries: Option<&Binaries>,
    out_dir: &Path,
    procs: &mut Processes,
) -> anyhow::Result<Endpoint> {
    let t = &scenario.target;
    let template = read_template(scenario)?;
    let bins = match (binaries, scenario.upstreams.is_empty()) {
        (Some(b), _) => Some(b.clone()),
        (None, false) => Some(Binaries::locate(true)?),
        (None, true) => None,
    };
    let mut vars = BTreeMap::new();
    let mut controls = BTreeMap::new();
    // the stdio mocks the target starts keep their counters here (`observe::upstream`)
    let stats_dir = out_dir.join("mock-stats");
    for u in &scenario.upstreams {
        let bins = bins.as_ref().context("the mocks' binary")?;
        match u.mock {
            MockKind::Serve => {
                let (url, control) = procs.start_mock(&bins.mock, u).await?;
                vars.insert(format!("upstream.{}.url", u.name), url);
                controls.insert(u.name.clone(), control);
            }
            MockKind::Stdio => {
                let mut args = vec!["stdio".to_string()];
                args.extend(mock_args(u));
                args.extend(["--stats-dir".to_string(), stats_dir.display().to_string()]);
                let line: Vec<String> = args.iter().map(|a| shell_quote(a)).collect();
                let name = &u.name;
                vars.insert(
                    format!("upstream.{name}.command"),
                    bins.mock.display().to_string(),
                );
                vars.insert(
                    format!("upstream.{name}.args"),
                    serde_json::to_string(&args)?,
                );
                vars.insert(format!("upstream.{name}.args_line"), line.join(" "));
            }
        }
    }
    let port = crate::process::port::free_port()?;
    vars.insert("port".into(), port.to_string());
    vars.insert("out_dir".into(), out_dir.display().to_string());
    if let Some((path, text)) = &template {
        let rendered = out_dir.join(rendered_name(path));
        let body = render(text, &vars).map_err(|e| anyhow!("{}: {e}", path.display()))?;
        std::fs::write(&rendered, body)
            .with_context(|| format!("cannot write {}", rendered.display()))?;
        vars.insert("config".into(), rendered.display().to_string());
    }
    let field = |what: &str, text: &str| render(text, &vars).map_err(|e| anyhow!("{what}: {e}"));
    let url = field("`target.url`", t.url.as_deref().unwrap_or_default())?;
    let spec = command_spec(scenario, &field)?;
    let ready = Ready {
        url: match &t.ready_url {
            Some(r) => field("`target.ready_url`", r)?,
            None => origin(&url)?,
        },
        any_answer: t.ready_url.is_none(),
        timeout: t.ready_timeout,
    };
    let pid = procs.start_command(&spec, &ready).await?;
    let metrics_url = match &t.metrics_url {
        Some(m) => Some(field("`target.metrics_url`", m)?),
        None => answering_metrics(&origin(&url)?).await,
    };
    Ok(Endpoint {
        url,
        headers: t.headers.clone(),
        pid: Some(pid),
        version: None,
        process: Some(super::COMMAND_TARGET),
        metrics_url,
        controls,
        db_pool_max: 0.0,
        stats_dir: scenario
            .upstreams
            .iter()
            .any(|u| u.mock == MockKind::Stdio)
            .then_some(stats_dir),
    })
}

/// The rendered argv, environment and working directory; a relative program path with a `/`
/// (`node_modules/.bin/x`) is taken from the working directory.
fn command_spec(
    scenario: &Scenario,
    field: &dyn Fn(&str, &str) -> anyhow::Result<String>,
) -> anyhow::Result<CommandSpec> {
    let t = &scenario.target;
    let cwd = t.cwd.clone().unwrap_or_else(|| PathBuf::from("."));
    let mut argv = Vec::new();
    for (i, a) in t.command.iter().flatten().enumerate() {
        argv.push(field(&format!("`target.command[{i}]`"), a)?);
    }
    if let Some(program) = argv.first_mut()
        && program.contains('/')
        && Path::new(program.as_str()).is_relative()
    {
        *program = cwd.join(program.as_str()).display().to_string();
    }
    let mut env = BTreeMap::new();
    for (k, v) in &t.env {
        env.insert(k.clone(), field(&format!("`target.env.{k}`"), v)?);
    }
    Ok(CommandSpec { argv, env, cwd })
}

/// The config template's path and text, its placeholders checked (before anything starts).
fn read_template(scenario: &Scenario) -> anyhow::Result<Option<(PathBuf, String)>> {
    let Some(path) = &scenario.target.config_template else {
        return Ok(None);
    };
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("`target.config_template` {}: cannot read", path.display()))?;
    placeholders::check(
        scenario,
        &format!("`target.config_template` {}", path.display()),
        &text,
    )
    .map_err(|e| anyhow!(e))?;
    Ok(Some((path.clone(), text)))
}

/// The rendered template's file name: the template's, without a `.tmpl` suffix.
fn rendered_name(template: &Path) -> String {
    let name = template
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_else(|| "config".into());
    name.strip_suffix(".tmpl").unwrap_or(&name).to_string()
}

/// `scheme://host:port` of `url`.
fn origin(url: &str) -> anyhow::Result<String> {
    let parsed = reqwest::Url::parse(url).with_context(|| format!("`target.url` {url}"))?;
    Ok(parsed.origin().ascii_serialization())
}

/// `/metrics` at `origin`, if it answers 2xx.
async fn answering_metrics(origin: &str) -> Option<String> {
    let url = format!("{origin}/metrics");
    let http = reqwest::Client::builder()
        .timeout(std::time::Duration::from_millis(500))
        .build()
        .ok()?;
    let r = http.get(&url).send().await.ok()?;
    r.status().is_success().then_some(url)
}
