//! What every target the harness starts itself shares (`target.command`, an HTTP server, and
//! `target.stdio`, a stdio server): the scenario's mocks first, then the placeholders offered
//! to its texts, its config template rendered into the run's folder, and its argv,
//! environment and working directory rendered.
//!
//! Invariant: every placeholder is checked before anything starts (the inline texts by the
//! scenario's validation, the template here, first).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, anyhow};

use super::{Binaries, CommandSpec, Processes, mock_args};
use crate::scenario::placeholders::{self, render, shell_quote};
use crate::scenario::{MockKind, Scenario};

/// Where the stdio mocks of a started target keep their counters: set for the target (and
/// so inherited by any `mock-mcp` below it) unless the scenario sets it.
const STATS_DIR_ENV: &str = "MOCK_MCP_STATS_DIR";

/// A started target's mocks running and its texts' values known.
pub struct Prepared {
    /// Placeholder name → value.
    pub vars: BTreeMap<String, String>,
    /// The HTTP mocks' control endpoints, by upstream name.
    pub controls: BTreeMap<String, String>,
    /// Where the stdio mocks keep their counters (`observe::upstream`).
    pub stats_dir: PathBuf,
}

impl Prepared {
    /// `text` (found in `what`) with its placeholders rendered.
    pub fn field(&self, what: &str, text: &str) -> anyhow::Result<String> {
        render(text, &self.vars).map_err(|e| anyhow!("{what}: {e}"))
    }

    /// `argv` (found in `what`, e.g. "`target.command`") rendered, with the scenario's
    /// environment and working directory; a relative program path with a `/`
    /// (`node_modules/.bin/x`) is taken from the working directory.
    pub fn command_spec(
        &self,
        scenario: &Scenario,
        what: &str,
        argv: &[String],
    ) -> anyhow::Result<CommandSpec> {
        let t = &scenario.target;
        let cwd = t.cwd.clone().unwrap_or_else(|| PathBuf::from("."));
        let mut rendered = Vec::new();
        for (i, a) in argv.iter().enumerate() {
            rendered.push(self.field(&format!("{what}[{i}]"), a)?);
        }
        if let Some(program) = rendered.first_mut()
            && program.contains('/')
            && Path::new(program.as_str()).is_relative()
        {
            *program = cwd.join(program.as_str()).display().to_string();
        }
        let mut env = BTreeMap::new();
        env.insert(
            STATS_DIR_ENV.to_string(),
            self.stats_dir.display().to_string(),
        );
        for (k, v) in &t.env {
            env.insert(k.clone(), self.field(&format!("`target.env.{k}`"), v)?);
        }
        Ok(CommandSpec {
            argv: rendered,
            env,
            cwd,
        })
    }
}

/// Starts the scenario's mocks and renders its config template; the values its texts may use.
pub async fn prepare(
    scenario: &Scenario,
    binaries: Option<&Binaries>,
    out_dir: &Path,
    procs: &mut Processes,
) -> anyhow::Result<Prepared> {
    let template = read_template(scenario)?;
    // the target runs in its own working directory: every path it is given is absolute
    let out_dir = &std::path::absolute(out_dir)
        .with_context(|| format!("cannot resolve {}", out_dir.display()))?;
    let bins = match (binaries, scenario.upstreams.is_empty()) {
        (Some(b), _) => Some(b.clone()),
        (None, false) => Some(Binaries::locate(true)?),
        (None, true) => None,
    };
    let mut vars = BTreeMap::new();
    let mut controls = BTreeMap::new();
    let stats_dir = out_dir.join("mock-stats");
    for u in &scenario.upstreams {
        let bins = bins.as_ref().context("the mocks' binary")?;
        match u.mock {
            MockKind::Serve => {
                let mock = procs.start_mock(&bins.mock, u).await?;
                vars.insert(format!("upstream.{}.url", u.name), mock.url);
                if let Some(ca) = mock.ca_file {
                    vars.insert(
                        format!("upstream.{}.ca_file", u.name),
                        ca.display().to_string(),
                    );
                }
                controls.insert(u.name.clone(), mock.control);
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
    Ok(Prepared {
        vars,
        controls,
        stats_dir,
    })
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
