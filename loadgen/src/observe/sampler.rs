//! Samples the target every 250 ms from outside: its whole process [`tree`] (fds by kind,
//! TCP by state, Unix sockets, descendants, zombies, orphans, threads, RSS and CPU summed),
//! sysinfo (the harness's own CPU), and the target's `/metrics` when it has one (tokio
//! tasks, sessions, upstream connections, cache and DB).
//!
//! One owner: [`Sampler`] holds the task's token and handle; `stop` ends it and returns the
//! series; dropping it cancels the task.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use sysinfo::{Pid, ProcessRefreshKind, ProcessesToUpdate, System};
use tokio_util::sync::CancellationToken;

use crate::observe::metrics::MetricMap;
use crate::observe::tree::{self, TreeSnapshot};
use crate::process::tree::{ProcId, TreeWalker};
pub use crate::report::sample::{Sample, TargetMetrics};

pub const INTERVAL: Duration = Duration::from_millis(250);

/// Reads one sample of `pid` (and `metrics_url`).
pub struct Probe {
    pid: Option<u32>,
    metrics_url: Option<String>,
    /// The target's own names for sessions, tasks, upstream connections (`[target.metrics]`).
    names: MetricMap,
    http: reqwest::Client,
    sys: System,
    started: Instant,
    /// Follows the tree below `pid` (and its orphans) from sample to sample.
    walker: Option<TreeWalker>,
    /// The previous reading's CPU ticks per process, and when it was taken.
    prev_ticks: Option<(Instant, BTreeMap<ProcId, u64>)>,
}

impl Probe {
    pub fn new(pid: Option<u32>, metrics_url: Option<String>) -> anyhow::Result<Probe> {
        Ok(Probe {
            pid,
            metrics_url,
            names: MetricMap::default(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_millis(800))
                .pool_max_idle_per_host(1)
                .build()?,
            sys: System::new()?,
            started: Instant::now(),
            walker: pid.map(TreeWalker::new),
            prev_ticks: None,
        })
    }

    /// Reads sessions, tasks and upstream connections from the series `names` gives.
    pub fn with_names(mut self, names: MetricMap) -> Probe {
        self.names = names;
        self
    }

    pub fn pid(&self) -> Option<u32> {
        self.pid
    }

    pub async fn sample(&mut self) -> Sample {
        let t_ms = self.started.elapsed().as_millis() as u64;
        if self.pid.is_none() {
            return Sample {
                t_ms,
                metrics: self.metrics().await,
                ..Sample::default()
            };
        };
        let Some(r) = self.read_tree() else {
            return Sample {
                t_ms,
                gone: true,
                ..Sample::default()
            };
        };
        let now = Instant::now();
        let cpu_percent = match &self.prev_ticks {
            Some((at, before)) => {
                tree::cpu_percent(before, &r.ticks, now.duration_since(*at).as_secs_f64())
            }
            None => 0.0,
        };
        self.prev_ticks = Some((now, r.ticks));
        let me = [Pid::from_u32(std::process::id())];
        self.sys.refresh_processes_specifics(
            ProcessesToUpdate::Some(&me),
            true,
            ProcessRefreshKind::nothing().with_cpu(),
        );
        let harness_cpu_percent = self
            .sys
            .process(me[0])
            .map(|p| p.cpu_usage())
            .unwrap_or_default();
        let metrics = self.metrics().await;
        Sample {
            t_ms,
            gone: false,
            probed: true,
            fds: r.fds,
            tcp: r.tcp,
            unix: r.unix,
            children: r.children,
            threads: r.threads,
            rss_bytes: r.rss_bytes,
            cpu_percent,
            harness_cpu_percent,
            metrics,
        }
    }
}

impl Probe {
    /// Walks and reads the tree now (`None`: no PID, or the root is gone).
    fn read_tree(&mut self) -> Option<tree::TreeReading> {
        let walk = self.walker.as_mut()?.walk();
        tree::read(&walk).ok()
    }

    /// Every process of the tree now, and its sockets (`None`: no PID, or it is gone).
    pub fn snapshot(&mut self) -> Option<TreeSnapshot> {
        self.read_tree().map(|r| r.snapshot)
    }

    async fn metrics(&self) -> Option<TargetMetrics> {
        let url = self.metrics_url.as_ref()?;
        match self.http.get(url).send().await {
            Ok(r) if r.status().is_success() => r
                .text()
                .await
                .ok()
                .map(|t| TargetMetrics::parse_mapped(&t, &self.names)),
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

    /// A snapshot of each slot's tree now, in slot order (`None`: no PID, or gone).
    pub async fn snapshots(&self) -> Vec<Option<TreeSnapshot>> {
        let mut slots = self.slots.lock().await;
        slots.iter_mut().map(|s| s.probe.snapshot()).collect()
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
