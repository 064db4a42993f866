//! Samples the target every 250 ms from outside: the [`probe`](crate::probe) (fds by kind,
//! TCP by state, children, zombies, threads), sysinfo (RSS, CPU), and the target's
//! `/metrics` when it has one (tokio tasks, sessions, upstream connections, cache and DB).
//!
//! One owner: [`Sampler`] holds the task's token and handle; `stop` ends it and returns the
//! series; dropping it cancels the task.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use sysinfo::{Pid, ProcessRefreshKind, ProcessesToUpdate, System};
use tokio_util::sync::CancellationToken;

use crate::probe::{self, ChildCounts, FdCounts, TcpCounts};

pub const INTERVAL: Duration = Duration::from_millis(250);

/// What the target's `/metrics` said (SPEC metric names); absent ones are `None`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct TargetMetrics {
    pub tokio_alive_tasks: Option<f64>,
    pub sessions: Option<f64>,
    pub upstream_active: Option<f64>,
    pub inflight: Option<f64>,
    pub config_cache_hits: Option<f64>,
    pub config_cache_misses: Option<f64>,
    pub db_pool_size: Option<f64>,
    pub db_pool_idle: Option<f64>,
    pub db_queries: Option<f64>,
    /// Of `db_queries`: instance-config and API-key lookups.
    pub db_config_queries: Option<f64>,
    /// Of `db_queries`: writes (`last_used_at` batches, seeds, key changes).
    pub db_writes: Option<f64>,
    /// Of `db_writes`: `last_used_at` batches.
    pub db_last_used_writes: Option<f64>,
    pub child_processes: Option<f64>,
}

/// The proxy's query names (`mcp_proxy_db_queries_total{query}`) that write.
const WRITE_QUERIES: &[&str] = &["touch_keys", "apply_seed", "create_key", "revoke_key"];
/// The query names that read config (an instance's upstreams, an API key).
const CONFIG_QUERIES: &[&str] = &["instance_config", "api_key"];

impl TargetMetrics {
    /// Parses Prometheus text exposition: sums each SPEC family over its labels (upstream
    /// connections: `state="active"` only).
    pub fn parse(text: &str) -> TargetMetrics {
        let mut m = TargetMetrics::default();
        for line in text.lines() {
            if line.starts_with('#') || line.trim().is_empty() {
                continue;
            }
            let (series, value) = match line.rsplit_once(' ') {
                Some((s, v)) => (s.trim(), v.trim()),
                None => continue,
            };
            let Ok(value) = value.parse::<f64>() else {
                continue;
            };
            let (name, labels) = match series.split_once('{') {
                Some((n, l)) => (n, l.trim_end_matches('}')),
                None => (series, ""),
            };
            let slot = match name {
                "mcp_proxy_tokio_alive_tasks" => &mut m.tokio_alive_tasks,
                "mcp_proxy_sessions" => &mut m.sessions,
                "mcp_proxy_upstream_connections" if labels.contains("state=\"active\"") => {
                    &mut m.upstream_active
                }
                "mcp_proxy_inflight_requests" => &mut m.inflight,
                "mcp_proxy_config_cache_hits_total" => &mut m.config_cache_hits,
                "mcp_proxy_config_cache_misses_total" => &mut m.config_cache_misses,
                "mcp_proxy_db_pool_size" => &mut m.db_pool_size,
                "mcp_proxy_db_pool_idle" => &mut m.db_pool_idle,
                "mcp_proxy_db_queries_total" => {
                    let query = label_value(labels, "query").unwrap_or_default();
                    let add = |slot: &mut Option<f64>| *slot = Some(slot.unwrap_or(0.0) + value);
                    if CONFIG_QUERIES.contains(&query) {
                        add(&mut m.db_config_queries);
                    }
                    if WRITE_QUERIES.contains(&query) {
                        add(&mut m.db_writes);
                    }
                    if query == "touch_keys" {
                        add(&mut m.db_last_used_writes);
                    }
                    // present (as 0) whenever the family is, so a window's delta is defined
                    m.db_config_queries.get_or_insert(0.0);
                    m.db_writes.get_or_insert(0.0);
                    m.db_last_used_writes.get_or_insert(0.0);
                    &mut m.db_queries
                }
                "mcp_proxy_child_processes" => &mut m.child_processes,
                _ => continue,
            };
            *slot = Some(slot.unwrap_or(0.0) + value);
        }
        m
    }
}

/// `name="value"` out of a Prometheus label set.
fn label_value<'a>(labels: &'a str, name: &str) -> Option<&'a str> {
    labels.split(',').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k.trim() == name).then(|| v.trim().trim_matches('"'))
    })
}

/// One sample of the target.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct Sample {
    /// Milliseconds since the sampler started.
    pub t_ms: u64,
    /// The target process was gone at this sample.
    pub gone: bool,
    /// The /proc figures (fds, TCP, children, threads, RSS, CPU) were read: false for an
    /// external target without a PID, whose sample has `/metrics` alone.
    #[serde(default)]
    pub probed: bool,
    pub fds: FdCounts,
    pub tcp: TcpCounts,
    pub children: ChildCounts,
    pub threads: u32,
    pub rss_bytes: u64,
    /// CPU of the target since the previous sample, % of one core.
    pub cpu_percent: f32,
    /// CPU of this harness process, % of one core.
    pub harness_cpu_percent: f32,
    pub metrics: Option<TargetMetrics>,
}

/// Reads one sample of `pid` (and `metrics_url`).
pub struct Probe {
    pid: Option<u32>,
    metrics_url: Option<String>,
    http: reqwest::Client,
    sys: System,
    started: Instant,
}

impl Probe {
    pub fn new(pid: Option<u32>, metrics_url: Option<String>) -> anyhow::Result<Probe> {
        Ok(Probe {
            pid,
            metrics_url,
            http: reqwest::Client::builder()
                .timeout(Duration::from_millis(800))
                .pool_max_idle_per_host(1)
                .build()?,
            sys: System::new()?,
            started: Instant::now(),
        })
    }

    pub fn pid(&self) -> Option<u32> {
        self.pid
    }

    pub async fn sample(&mut self) -> Sample {
        let t_ms = self.started.elapsed().as_millis() as u64;
        let Some(pid) = self.pid else {
            return Sample {
                t_ms,
                metrics: self.metrics().await,
                ..Sample::default()
            };
        };
        let me = std::process::id();
        let (Ok(fds), Ok(tcp), Ok(children), Ok(threads)) = (
            probe::fds(pid),
            probe::tcp_states(pid),
            probe::children(pid),
            probe::threads(pid),
        ) else {
            return Sample {
                t_ms,
                gone: true,
                ..Sample::default()
            };
        };
        let pids = [Pid::from_u32(pid), Pid::from_u32(me)];
        self.sys.refresh_processes_specifics(
            ProcessesToUpdate::Some(&pids),
            true,
            ProcessRefreshKind::nothing().with_cpu().with_memory(),
        );
        let (rss_bytes, cpu_percent) = self
            .sys
            .process(pids[0])
            .map(|p| (p.memory(), p.cpu_usage()))
            .unwrap_or_default();
        let harness_cpu_percent = self
            .sys
            .process(pids[1])
            .map(|p| p.cpu_usage())
            .unwrap_or_default();
        let metrics = self.metrics().await;
        Sample {
            t_ms,
            gone: false,
            probed: true,
            fds,
            tcp,
            children,
            threads,
            rss_bytes,
            cpu_percent,
            harness_cpu_percent,
            metrics,
        }
    }
}

impl Probe {
    async fn metrics(&self) -> Option<TargetMetrics> {
        let url = self.metrics_url.as_ref()?;
        match self.http.get(url).send().await {
            Ok(r) if r.status().is_success() => {
                r.text().await.ok().map(|t| TargetMetrics::parse(&t))
            }
            _ => None,
        }
    }
}

/// The sampling task and its series.
pub struct Sampler {
    started: Instant,
    series: Arc<Mutex<Vec<Sample>>>,
    stop: CancellationToken,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Sampler {
    /// Samples `probe` every [`INTERVAL`] until stopped.
    pub fn start(mut probe: Probe) -> Sampler {
        let started = probe.started;
        let series = Arc::new(Mutex::new(Vec::new()));
        let stop = CancellationToken::new();
        let task = tokio::spawn({
            let series = series.clone();
            let stop = stop.clone();
            async move {
                let mut tick = tokio::time::interval(INTERVAL);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        _ = tick.tick() => {}
                    }
                    let s = probe.sample().await;
                    series.lock().unwrap().push(s);
                }
            }
        });
        Sampler {
            started,
            series,
            stop,
            task: Some(task),
        }
    }

    /// Now, on the samples' clock (ms since sampling started).
    pub fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// The latest sample, if any.
    pub fn latest(&self) -> Option<Sample> {
        self.series.lock().unwrap().last().copied()
    }

    /// The samples taken after `t_ms`.
    pub fn since(&self, t_ms: u64) -> Vec<Sample> {
        self.series
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.t_ms > t_ms)
            .copied()
            .collect()
    }

    /// Waits for a sample taken after the call (at most two intervals).
    pub async fn fresh(&self) -> Option<Sample> {
        let after = self.latest().map(|s| s.t_ms);
        for _ in 0..20 {
            tokio::time::sleep(INTERVAL / 4).await;
            let l = self.latest();
            if l.map(|s| s.t_ms) != after {
                return l;
            }
        }
        self.latest()
    }

    /// Stops sampling; returns every sample.
    pub async fn stop(mut self) -> Vec<Sample> {
        self.stop.cancel();
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
        std::mem::take(&mut *self.series.lock().unwrap())
    }
}

impl Drop for Sampler {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}
