//! An external target (`target.url`): one the harness did not start, found at its URL,
//! probed by its PID (`target.pid`, `target.pid_file`) when it has one, else through its
//! `/metrics` only.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};

use super::Endpoint;

/// Waits for the external target at `url` (within `target.ready_timeout`) and says how to
/// reach and watch it.
pub async fn attach(t: &crate::scenario::Target, url: &str) -> anyhow::Result<Endpoint> {
    let pid = match (t.pid, &t.pid_file) {
        (Some(p), _) => Some(p),
        (None, Some(f)) => Some(
            std::fs::read_to_string(f)
                .with_context(|| format!("`target.pid_file` {}: cannot read", f.display()))?
                .trim()
                .parse()
                .map_err(|e| anyhow!("`target.pid_file` {}: not a PID: {e}", f.display()))?,
        ),
        // another machine's target (a shard on Kubernetes): /metrics only
        (None, None) => None,
    };
    if let Some(pid) = pid
        && !Path::new(&format!("/proc/{pid}")).exists()
    {
        bail!("`target.pid` {pid}: no such process");
    }
    let parsed = reqwest::Url::parse(url).with_context(|| format!("`target.url` {url}"))?;
    let origin = parsed.origin().ascii_serialization();
    // reachable within the ready timeout?
    let http = reqwest::Client::builder()
        .timeout(Duration::from_millis(500))
        .build()?;
    let deadline = Instant::now() + t.ready_timeout;
    loop {
        if http.get(&origin).send().await.is_ok() {
            break;
        }
        if Instant::now() >= deadline {
            bail!(
                "`target.url` {url}: nothing answers at {origin} within {}",
                humantime::format_duration(t.ready_timeout)
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let metrics_url = t
        .metrics_url
        .clone()
        .unwrap_or_else(|| format!("{origin}/metrics"));
    let has_metrics = http
        .get(&metrics_url)
        .send()
        .await
        .is_ok_and(|r| r.status().is_success());
    Ok(Endpoint {
        url: url.to_string(),
        headers: t.headers.clone(),
        pid,
        version: None,
        process: None,
        metrics_url: has_metrics.then_some(metrics_url),
        controls: BTreeMap::new(),
        stats_dir: None,
        db_pool_max: 0.0,
    })
}
