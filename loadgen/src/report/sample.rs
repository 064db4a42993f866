//! What the probe saw of the target, as `report.json` keeps it: one [`Sample`] every 250 ms
//! (summed over the target's whole process tree: fds by kind, TCP by state, Unix sockets,
//! descendants, zombies, orphans, threads, RSS, CPU; and the target's `/metrics`), and the
//! [`RESOURCES`] the leak checks follow, read from a sample.
//!
//! The data only: `observe` fills it in, `verdict` judges it, `render` draws it.

use serde::{Deserialize, Serialize};

/// File descriptors of a process grouped by what they point at.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FdCounts {
    pub socket: u32,
    pub pipe: u32,
    pub anon_inode: u32,
    pub file: u32,
    pub other: u32,
}

impl FdCounts {
    pub fn total(&self) -> u32 {
        self.socket + self.pipe + self.anon_inode + self.file + self.other
    }
}

/// The processes of a tree: every process below the root (`children`: children,
/// grandchildren, …), the zombies anywhere in the tree (exited but not yet reaped), and the
/// orphans (processes of the tree whose parent exited, re-parented outside it, still alive).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ChildCounts {
    pub children: u32,
    pub zombies: u32,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub orphans: u32,
}

/// Figures a report written before they existed lacks are left out when zero, so such a
/// report reads and writes back unchanged.
fn is_zero<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}

/// Unix sockets of a tree by type (each socket inode counted once, however many fds and
/// processes share it).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct UnixCounts {
    pub stream: u32,
    pub dgram: u32,
    pub seqpacket: u32,
}

impl UnixCounts {
    pub fn total(&self) -> u32 {
        self.stream + self.dgram + self.seqpacket
    }
}

/// TCP sockets of a process grouped by connection state (the kernel's `TCP_*` states).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TcpCounts {
    pub established: u32,
    pub syn_sent: u32,
    pub syn_recv: u32,
    pub fin_wait1: u32,
    pub fin_wait2: u32,
    pub time_wait: u32,
    pub close: u32,
    pub close_wait: u32,
    pub last_ack: u32,
    pub listen: u32,
    pub closing: u32,
}

impl TcpCounts {
    pub fn total(&self) -> u32 {
        self.established
            + self.syn_sent
            + self.syn_recv
            + self.fin_wait1
            + self.fin_wait2
            + self.time_wait
            + self.close
            + self.close_wait
            + self.last_ack
            + self.listen
            + self.closing
    }
}

/// Field-wise sums, for the total over several replicas.
macro_rules! add_assign {
    ($t:ty { $($f:ident),* }) => {
        impl std::ops::AddAssign for $t {
            fn add_assign(&mut self, o: $t) {
                $(self.$f += o.$f;)*
            }
        }
    };
}
add_assign!(FdCounts {
    socket,
    pipe,
    anon_inode,
    file,
    other
});
add_assign!(ChildCounts {
    children,
    zombies,
    orphans
});
add_assign!(UnixCounts {
    stream,
    dgram,
    seqpacket
});
add_assign!(TcpCounts {
    established,
    syn_sent,
    syn_recv,
    fin_wait1,
    fin_wait2,
    time_wait,
    close,
    close_wait,
    last_ack,
    listen,
    closing
});

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
    pub(crate) fn with_offset(&self, offset: &TargetMetrics) -> TargetMetrics {
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
    /// Unix sockets of the tree (`/proc/net/unix` of each process's namespace).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub unix: UnixCounts,
    pub children: ChildCounts,
    pub threads: u32,
    pub rss_bytes: u64,
    /// CPU of the target's tree since the previous sample (utime + stime), % of one core.
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
            total.unix += s.unix;
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

/// A resource the leak checks follow, read from a sample (its tolerance is the verdict's).
pub struct Resource {
    pub name: &'static str,
    pub unit: &'static str,
    pub read: fn(&Sample) -> Option<f64>,
    /// Compared with zero, whatever the baseline (zombies, orphans).
    pub absolute: bool,
}

const MIB: f64 = 1024.0 * 1024.0;

/// Every resource a leak check follows.
pub const RESOURCES: &[Resource] = &[
    Resource {
        name: "fds.socket",
        unit: "fds",
        read: |s| s.probed.then(|| s.fds.socket.into()),
        absolute: false,
    },
    Resource {
        name: "fds.pipe",
        unit: "fds",
        read: |s| s.probed.then(|| s.fds.pipe.into()),
        absolute: false,
    },
    Resource {
        name: "fds.anon_inode",
        unit: "fds",
        read: |s| s.probed.then(|| s.fds.anon_inode.into()),
        absolute: false,
    },
    Resource {
        name: "fds.file",
        unit: "fds",
        read: |s| s.probed.then(|| s.fds.file.into()),
        absolute: false,
    },
    Resource {
        name: "tcp.close_wait",
        unit: "sockets",
        read: |s| s.probed.then(|| s.tcp.close_wait.into()),
        absolute: false,
    },
    Resource {
        name: "children",
        unit: "processes",
        read: |s| s.probed.then(|| s.children.children.into()),
        absolute: false,
    },
    Resource {
        name: "zombies",
        unit: "processes",
        read: |s| s.probed.then(|| s.children.zombies.into()),
        absolute: true,
    },
    Resource {
        name: "orphans",
        unit: "processes",
        read: |s| s.probed.then(|| s.children.orphans.into()),
        absolute: true,
    },
    Resource {
        name: "threads",
        unit: "threads",
        read: |s| s.probed.then(|| s.threads.into()),
        absolute: false,
    },
    Resource {
        name: "sockets.unix",
        unit: "sockets",
        read: |s| s.probed.then(|| s.unix.total().into()),
        absolute: false,
    },
    Resource {
        name: "tokio.alive_tasks",
        unit: "tasks",
        read: |s| s.metrics.and_then(|m| m.tokio_alive_tasks),
        absolute: false,
    },
    Resource {
        name: "sessions",
        unit: "sessions",
        read: |s| s.metrics.and_then(|m| m.sessions),
        absolute: false,
    },
    Resource {
        name: "rss",
        unit: "MiB",
        read: |s| s.probed.then(|| s.rss_bytes as f64 / MIB),
        absolute: false,
    },
];
