//! Samples the target every 250 ms from outside: the [`probe`](crate::observe::probe) (fds by kind,
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

use crate::observe::probe::{self, ChildCounts, FdCounts, TcpCounts};

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
    /// MCP requests served (`mcp_proxy_requests_total`, every method and outcome).
    #[serde(default)]
    pub requests: Option<f64>,
    /// `mcp_proxy_invalidation_listener_up`: the cross-replica invalidation listener.
    #[serde(default)]
    pub listener_up: Option<f64>,
}

/// `a + b` where either is present.
fn add_opt(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (None, None) => None,
        (a, b) => Some(a.unwrap_or(0.0) + b.unwrap_or(0.0)),
    }
}

impl TargetMetrics {
    /// Field-wise sum (the total over replicas).
    pub fn add(&self, o: &TargetMetrics) -> TargetMetrics {
        TargetMetrics {
            tokio_alive_tasks: add_opt(self.tokio_alive_tasks, o.tokio_alive_tasks),
            sessions: add_opt(self.sessions, o.sessions),
            upstream_active: add_opt(self.upstream_active, o.upstream_active),
            inflight: add_opt(self.inflight, o.inflight),
            config_cache_hits: add_opt(self.config_cache_hits, o.config_cache_hits),
            config_cache_misses: add_opt(self.config_cache_misses, o.config_cache_misses),
            db_pool_size: add_opt(self.db_pool_size, o.db_pool_size),
            db_pool_idle: add_opt(self.db_pool_idle, o.db_pool_idle),
            db_queries: add_opt(self.db_queries, o.db_queries),
            db_config_queries: add_opt(self.db_config_queries, o.db_config_queries),
            db_writes: add_opt(self.db_writes, o.db_writes),
            db_last_used_writes: add_opt(self.db_last_used_writes, o.db_last_used_writes),
            child_processes: add_opt(self.child_processes, o.child_processes),
            requests: add_opt(self.requests, o.requests),
            listener_up: add_opt(self.listener_up, o.listener_up),
        }
    }

    /// Only the counters (which a restarted process starts again from 0), as an offset that
    /// keeps a replica's counters monotonic over its restarts.
    pub fn counters(&self) -> TargetMetrics {
        TargetMetrics {
            config_cache_hits: self.config_cache_hits,
            config_cache_misses: self.config_cache_misses,
            db_queries: self.db_queries,
            db_config_queries: self.db_config_queries,
            db_writes: self.db_writes,
            db_last_used_writes: self.db_last_used_writes,
            requests: self.requests,
            ..TargetMetrics::default()
        }
    }

    /// Adds `offset`'s counters to this sample's (gauges unchanged).
    fn with_offset(&self, offset: &TargetMetrics) -> TargetMetrics {
        let c = self.counters().add(&offset.counters());
        TargetMetrics {
            config_cache_hits: c.config_cache_hits,
            config_cache_misses: c.config_cache_misses,
            db_queries: c.db_queries,
            db_config_queries: c.db_config_queries,
            db_writes: c.db_writes,
            db_last_used_writes: c.db_last_used_writes,
            requests: c.requests,
            ..*self
        }
    }
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
                "mcp_proxy_requests_total" => &mut m.requests,
                "mcp_proxy_invalidation_listener_up" => &mut m.listener_up,
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

impl Sample {
    /// The total of several processes' samples at one instant: counts add up; it is `gone`
    /// only when every one is.
    pub fn sum(parts: &[Sample]) -> Sample {
        let mut total = Sample {
            t_ms: parts.first().map(|s| s.t_ms).unwrap_or_default(),
            gone: parts.iter().all(|s| s.gone),
            ..Sample::default()
        };
        for s in parts {
            total.probed |= s.probed;
            total.fds += s.fds;
            total.tcp += s.tcp;
            total.children += s.children;
            total.threads += s.threads;
            total.rss_bytes += s.rss_bytes;
            total.cpu_percent += s.cpu_percent;
            total.harness_cpu_percent = total.harness_cpu_percent.max(s.harness_cpu_percent);
            total.metrics = match (total.metrics, s.metrics) {
                (None, m) | (m, None) => m,
                (Some(a), Some(b)) => Some(a.add(&b)),
            };
        }
        total
    }
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

/// One process slot of a sampled set (a replica: the processes that held its place in turn).
struct Slot {
    probe: Probe,
    /// Counters of the processes this slot held before (see [`TargetMetrics::counters`]).
    offset: TargetMetrics,
    /// This slot's samples, counters offset.
    samples: Vec<Sample>,
    /// Every PID the slot held, in order.
    pids: Vec<u32>,
}

/// One replica's part of a sampled set, once sampling stopped.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SlotSeries {
    pub pids: Vec<u32>,
    pub samples: Vec<Sample>,
}

/// The sampling task and its series: one process, or a set of them (replicas) whose total
/// is the series and whose parts are kept per slot.
pub struct Sampler {
    started: Instant,
    series: Arc<Mutex<Vec<Sample>>>,
    slots: Arc<tokio::sync::Mutex<Vec<Slot>>>,
    stop: CancellationToken,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Sampler {
    /// Samples `probe` every [`INTERVAL`] until stopped.
    pub fn start(probe: Probe) -> Sampler {
        Sampler::start_set(vec![probe])
    }

    /// Samples every probe every [`INTERVAL`]; the series is their total ([`Sample::sum`]).
    pub fn start_set(probes: Vec<Probe>) -> Sampler {
        let started = Instant::now();
        let series = Arc::new(Mutex::new(Vec::new()));
        let slots = Arc::new(tokio::sync::Mutex::new(
            probes
                .into_iter()
                .map(|probe| Slot {
                    pids: probe.pid.into_iter().collect(),
                    probe,
                    offset: TargetMetrics::default(),
                    samples: Vec::new(),
                })
                .collect::<Vec<_>>(),
        ));
        let stop = CancellationToken::new();
        let task = tokio::spawn({
            let series = series.clone();
            let slots = slots.clone();
            let stop = stop.clone();
            async move {
                let mut tick = tokio::time::interval(INTERVAL);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        _ = tick.tick() => {}
                    }
                    let t_ms = started.elapsed().as_millis() as u64;
                    let mut slots = slots.lock().await;
                    let mut offset_parts = Vec::with_capacity(slots.len());
                    for slot in slots.iter_mut() {
                        let mut s = slot.probe.sample().await;
                        s.t_ms = t_ms;
                        s.metrics = s.metrics.map(|m| m.with_offset(&slot.offset));
                        slot.samples.push(s);
                        offset_parts.push(s);
                    }
                    drop(slots);
                    series.lock().unwrap().push(Sample::sum(&offset_parts));
                }
            }
        });
        Sampler {
            started,
            series,
            slots,
            stop,
            task: Some(task),
        }
    }

    /// Slot `index` now follows `probe` (a replica was replaced by a new process): the old
    /// process's counters are carried over so the slot's stay monotonic.
    pub async fn replace(&self, index: usize, probe: Probe) {
        let mut slots = self.slots.lock().await;
        let Some(slot) = slots.get_mut(index) else {
            return;
        };
        let last = slot
            .samples
            .iter()
            .rev()
            .find_map(|s| s.metrics)
            .unwrap_or_default();
        // the last sample already carries the earlier offset
        slot.offset = last.counters();
        slot.pids.extend(probe.pid);
        slot.probe = probe;
    }

    /// Now, on the samples' clock (ms since sampling started).
    pub fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// The latest sample, if any.
    pub fn latest(&self) -> Option<Sample> {
        self.series.lock().unwrap().last().copied()
    }

    /// The latest sample of each slot (`None` before the first).
    pub async fn latest_parts(&self) -> Vec<Option<Sample>> {
        self.slots
            .lock()
            .await
            .iter()
            .map(|s| s.samples.last().copied())
            .collect()
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
    pub async fn stop(self) -> Vec<Sample> {
        self.stop_set().await.0
    }

    /// Stops sampling; returns the total series and each slot's.
    pub async fn stop_set(mut self) -> (Vec<Sample>, Vec<SlotSeries>) {
        self.stop.cancel();
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
        let total = std::mem::take(&mut *self.series.lock().unwrap());
        let slots = std::mem::take(&mut *self.slots.lock().await)
            .into_iter()
            .map(|s| SlotSeries {
                pids: s.pids,
                samples: s.samples,
            })
            .collect();
        (total, slots)
    }
}

impl Drop for Sampler {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}
