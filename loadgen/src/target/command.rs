//! A target the harness starts from the scenario's `target.command` (anyone's proxy, in any
//! language, reached over HTTP): the scenario's mocks and the placeholders first
//! ([`started`](super::started)), then the command, ready when its URL answers, watched by
//! its PID.
//!
//! Invariant: the started process is a child of [`Processes`] like the bundled proxy, so it
//! is stopped (SIGTERM, SIGKILL after a grace) and reaped on every path.

use std::path::Path;

use anyhow::Context;

use super::started::prepare;
use super::{Binaries, Endpoint, Processes, Ready};
use crate::scenario::Scenario;

/// Starts the scenario's mocks and its `target.command`; the endpoint to measure.
pub async fn start(
    scenario: &Scenario,
    binaries: Option<&Binaries>,
    out_dir: &Path,
    procs: &mut Processes,
) -> anyhow::Result<Endpoint> {
    let t = &scenario.target;
    let p = prepare(scenario, binaries, out_dir, procs).await?;
    let url = p.field("`target.url`", t.url.as_deref().unwrap_or_default())?;
    let argv = t.command.as_deref().context("`target.command`")?;
    let spec = p.command_spec(scenario, "`target.command`", argv)?;
    let ready = Ready {
        url: match &t.ready_url {
            Some(r) => p.field("`target.ready_url`", r)?,
            None => origin(&url)?,
        },
        any_answer: t.ready_url.is_none(),
        timeout: t.ready_timeout,
    };
    let pid = procs.start_command(&spec, &ready).await?;
    let metrics_url = match &t.metrics_url {
        Some(m) => Some(p.field("`target.metrics_url`", m)?),
        None => answering_metrics(&origin(&url)?).await,
    };
    Ok(Endpoint {
        url,
        headers: t.headers.clone(),
        pid: Some(pid),
        version: None,
        process: Some(super::COMMAND_TARGET),
        metrics_url,
        controls: p.controls,
        db_pool_max: 0.0,
        stats_dir: Some(p.stats_dir),
    })
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
