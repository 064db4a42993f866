//! The report of a run (`report.json`, SPEC "Reports"): one serde model that every format is
//! rendered from, that `mcp-loadgen report` reads back and `mcp-loadgen merge` combines.
//!
//! - [`histogram`]: hdrhistograms serialised losslessly (V2 + deflate, base64), so shards merge
//!   exactly.
//! - [`capacity`]: replicas, DB operations and monthly cost from the measured figures.
//! - [`compare`]: side by side with an earlier run, regressions beyond the noise margin.
//! - [`merge`]: shards from several machines into one report.
//! - [`check`], [`sample`], [`rounds`], [`tree`], [`deployment`]: the verdict's checks, the
//!   probe's samples, the rounds of a run in cycles, the target's processes that grew and the
//!   deployment's figures, as data (built by `verdict`, `observe`, `run` and `target`).
//! - [`render`]: Markdown, HTML (with its charts), JUnit, and the terminal summaries.
//!
//! Invariant: `report` imports nothing else of the crate; the runtime converts into these
//! types (`run::facts`), so a `report.json` is read, merged and re-rendered without it.
//!
//! Pure apart from [`Report::write`], [`Report::read`] and [`Environment::current`].

pub mod capacity;
pub mod check;
pub mod compare;
pub mod deployment;
pub mod gate;
pub mod histogram;
pub mod merge;
pub mod outside;
pub mod render;
pub mod rounds;
pub mod sample;
pub mod selector;
pub mod tree;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

pub use check::{Check, Kind};
pub use deployment::DeploymentFacts;
pub use outside::{OutsideCounts, SessionsHeld, UpstreamCounts};
pub use sample::{Sample, TargetMetrics};

/// `report.json`'s `schema_version`; `loadgen/report.schema.json` describes it.
pub const SCHEMA_VERSION: u32 = 1;

/// The files a report is rendered to, beside `report.json`.
pub const MARKDOWN: &str = "report.md";
pub const HTML: &str = "report.html";
pub const JUNIT: &str = "junit.xml";
pub const JSON: &str = "report.json";

/// Everything a run measured and decided.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    pub schema_version: u32,
    pub name: String,
    pub description: String,
    /// The scenario as run (after `--shard`).
    pub scenario: serde_json::Value,
    pub environment: Environment,
    /// This run's shard (`--shard I/N`).
    pub shard: Option<Shard>,
    /// The reports merged into this one (`mcp-loadgen merge`).
    #[serde(default)]
    pub merged_from: Vec<String>,
    /// When the measured load started (RFC 3339, UTC).
    pub started_at: String,
    pub load: LoadFigures,
    /// Per mix entry (`tools/call NAME` is per tool) and per session step (`initialize`, …).
    pub ops: BTreeMap<String, Latency>,
    /// Per MCP method (every `tools/call …` merged).
    pub methods: BTreeMap<String, Latency>,
    /// One entry per second of the measured load.
    pub seconds: Vec<SecondFigures>,
    /// Fault phases and SIGTERM, at their offset into the measured load.
    pub phases: Vec<PhaseMark>,
    pub probe: ProbeSeries,
    /// DB figures over the measured window (the target's `/metrics`).
    pub db: Option<DbFigures>,
    pub checks: Vec<Check>,
    pub capacity: capacity::Capacity,
    pub comparison: Option<compare::Comparison>,
    /// Things the reader should know (an unsteady baseline, new sockets, orphans).
    #[serde(default)]
    pub notes: Vec<String>,
    /// Replicas behind HAProxy on PostgreSQL: per-replica figures and what the deployment
    /// phases measured.
    #[serde(default)]
    pub deployment: Option<DeploymentFacts>,
    /// The rounds of a run with `leaks.cycles` ≥ 2 (empty, and left out, otherwise).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rounds: Vec<rounds::Round>,
    /// Processes of the target's tree that are new, orphaned or grew since the baseline.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub grown: Vec<tree::GrownProcess>,
    /// Counted from outside the target: sessions still held, upstream work in flight (absent
    /// from a report that counted neither, as in reports made before it existed).
    #[serde(default, skip_serializing_if = "OutsideCounts::is_empty")]
    pub outside: OutsideCounts,
    pub exit_code: i32,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct Shard {
    pub index: u32,
    pub count: u32,
}

/// Where and with what the run was made.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Environment {
    pub hostname: String,
    pub os: String,
    pub kernel: String,
    pub cpu: String,
    pub cores: u32,
    pub memory_mib: u64,
    pub loadgen_version: String,
    /// `git describe`-like revision of the working directory's checkout, if any.
    pub git_revision: Option<String>,
    pub git_dirty: Option<bool>,
    /// `mcp-proxy --version` of the bundled target.
    pub target_version: Option<String>,
}

/// The measured load as a whole.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct LoadFigures {
    /// `closed` (users) or `open` (rate).
    pub model: String,
    pub users: u64,
    pub rate: Option<f64>,
    pub protocol: String,
    pub wall_seconds: f64,
    pub requests: u64,
    pub ok: u64,
    pub failed: u64,
    pub throughput_rps: f64,
    pub sessions_opened: u64,
    pub reinitialized: u64,
    pub late_starts: u64,
    pub in_flight_failed_at_stop: u64,
    pub after_stop: u64,
    /// Mean CPU of the target during the load, % of one core (None: no PID to probe).
    pub target_cpu_percent: Option<f64>,
    pub harness_cpu_percent: Option<f64>,
    /// What the load client did beside its requests: event streams, cancellations.
    #[serde(default)]
    pub client: ClientCounts,
}

/// The load client's own counts: GET event streams and `notifications/cancelled` sent.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct ClientCounts {
    /// GET event streams the target opened (2xx `text/event-stream`).
    pub streams_opened: u64,
    /// GET answered 405: the target offers no stream (not a failure).
    pub streams_not_offered: u64,
    /// GET answered with another error status, or not at all.
    pub streams_refused: u64,
    /// Opened streams that ended before their session did.
    pub streams_broken: u64,
    /// SSE events with data received on the streams.
    pub stream_events: u64,
    /// `notifications/cancelled` the target accepted (2xx) for requests given up on.
    pub cancellations_sent: u64,
    /// `notifications/cancelled` that got no 2xx answer within their short timeout.
    pub cancellations_failed: u64,
    /// Requests in flight when the load stopped, given up on (not measured).
    pub abandoned_at_stop: u64,
}

impl ClientCounts {
    /// Adds `other`'s counts (merging shards).
    pub fn add(&mut self, other: &ClientCounts) {
        self.streams_opened += other.streams_opened;
        self.streams_not_offered += other.streams_not_offered;
        self.streams_refused += other.streams_refused;
        self.streams_broken += other.streams_broken;
        self.stream_events += other.stream_events;
        self.cancellations_sent += other.cancellations_sent;
        self.cancellations_failed += other.cancellations_failed;
        self.abandoned_at_stop += other.abandoned_at_stop;
    }
}

/// Latency and outcome of one label, with its histogram (µs).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Latency {
    pub ok: u64,
    pub failed: u64,
    /// Of `ok`: the JSON-RPC (or tool) error the scenario expects.
    pub expected_errors: u64,
    /// Failure tag → count.
    pub failures: BTreeMap<String, u64>,
    pub first_failure: Option<String>,
    /// Whether the label is an entry of the mix (not a session step).
    pub in_mix: bool,
    #[serde(flatten)]
    pub percentiles: Percentiles,
    #[serde(with = "histogram")]
    pub histogram: Histogram<u64>,
}

/// Figures read off a histogram (µs), kept beside it so readers need not decode it.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq)]
pub struct Percentiles {
    pub count: u64,
    pub min_us: u64,
    pub p50_us: u64,
    pub p90_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    pub max_us: u64,
    pub mean_us: f64,
}

impl Percentiles {
    pub fn of(h: &Histogram<u64>) -> Percentiles {
        if h.is_empty() {
            return Percentiles::default();
        }
        Percentiles {
            count: h.len(),
            min_us: h.min(),
            p50_us: h.value_at_quantile(0.5),
            p90_us: h.value_at_quantile(0.9),
            p99_us: h.value_at_quantile(0.99),
            p999_us: h.value_at_quantile(0.999),
            max_us: h.max(),
            mean_us: h.mean(),
        }
    }
}

impl Latency {
    /// Adds `other`'s counts and histogram (exact).
    pub fn absorb(&mut self, other: &Latency) {
        self.ok += other.ok;
        self.failed += other.failed;
        self.expected_errors += other.expected_errors;
        for (tag, n) in &other.failures {
            *self.failures.entry(tag.clone()).or_default() += n;
        }
        if self.first_failure.is_none() {
            self.first_failure = other.first_failure.clone();
        }
        self.in_mix |= other.in_mix;
        self.histogram
            .add(&other.histogram)
            .expect("histograms of one harness share their bounds");
        self.percentiles = Percentiles::of(&self.histogram);
    }

    fn empty(in_mix: bool) -> Latency {
        Latency {
            ok: 0,
            failed: 0,
            expected_errors: 0,
            failures: BTreeMap::new(),
            first_failure: None,
            in_mix,
            percentiles: Percentiles::default(),
            histogram: histogram::new(),
        }
    }
}

/// Per MCP method: every label's figures merged by its method (`tools/call echo__echo` →
/// `tools/call`).
pub fn by_method(ops: &BTreeMap<String, Latency>) -> BTreeMap<String, Latency> {
    let mut methods: BTreeMap<String, Latency> = BTreeMap::new();
    for (label, l) in ops {
        // `tools/call NAME` → `tools/call`; session steps (`DELETE session`) stay whole
        let method = match label.split_once(' ') {
            Some((m, _)) if m.contains('/') => m.to_string(),
            _ => label.clone(),
        };
        methods
            .entry(method)
            .or_insert_with(|| Latency::empty(l.in_mix))
            .absorb(l);
    }
    methods
}

/// One second of the measured load.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SecondFigures {
    /// Seconds since the measured load started.
    pub t_s: u64,
    pub ok: u64,
    pub failed: u64,
    #[serde(flatten)]
    pub percentiles: Percentiles,
    #[serde(with = "histogram")]
    pub histogram: Histogram<u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PhaseMark {
    /// Offset into the measured load.
    pub at_ms: u64,
    pub name: String,
    /// `faults` or `sigterm`.
    pub action: String,
}

/// The probe's samples with the run's marks on the same clock (ms since the sampler
/// started).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ProbeSeries {
    pub interval_ms: u64,
    /// The probed PID (None: an external target without a PID).
    pub pid: Option<u32>,
    pub baseline_t_ms: u64,
    pub load_start_t_ms: u64,
    pub load_end_t_ms: u64,
    pub samples: Vec<Sample>,
}

/// The target's DB counters over the measured window, and per request.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq)]
pub struct DbFigures {
    pub requests: u64,
    pub queries: f64,
    pub config_queries: f64,
    pub reads: f64,
    pub writes: f64,
    pub last_used_writes: f64,
    pub reads_per_request: f64,
    pub writes_per_request: f64,
    pub config_queries_per_request: f64,
}

impl DbFigures {
    /// From the first and last sample of the window with `/metrics`.
    pub fn of(first: &Sample, last: &Sample, requests: u64) -> Option<DbFigures> {
        let (a, b) = (first.metrics?, last.metrics?);
        let d = |f: fn(&TargetMetrics) -> Option<f64>| -> Option<f64> { Some(f(&b)? - f(&a)?) };
        let queries = d(|m| m.db_queries)?;
        let writes = d(|m| m.db_writes).unwrap_or(0.0);
        let per = |v: f64| {
            if requests > 0 {
                v / requests as f64
            } else {
                0.0
            }
        };
        let config_queries = d(|m| m.db_config_queries).unwrap_or(0.0);
        Some(DbFigures {
            requests,
            queries,
            config_queries,
            reads: queries - writes,
            writes,
            last_used_writes: d(|m| m.db_last_used_writes).unwrap_or(0.0),
            reads_per_request: per(queries - writes),
            writes_per_request: per(writes),
            config_queries_per_request: per(config_queries),
        })
    }
}

impl Report {
    /// Sets `exit_code` from the checks (SPEC: 2 leak > 1 threshold or regression > 0).
    pub fn decide(&mut self) {
        self.exit_code = check::exit_code(&self.checks);
    }

    /// The mix's requests merged (what the latency thresholds judge).
    pub fn mix_latency(&self) -> Percentiles {
        let mut h = histogram::new();
        for l in self.ops.values().filter(|l| l.in_mix) {
            h.add(&l.histogram).expect("same bounds");
        }
        Percentiles::of(&h)
    }

    /// The labels, most requests first (the order the latency tables show).
    pub fn ops_by_requests(&self) -> Vec<(&String, &Latency)> {
        let mut rows: Vec<_> = self.ops.iter().collect();
        rows.sort_by_key(|(_, l)| std::cmp::Reverse(l.requests()));
        rows
    }

    /// `(label: failure tag, count)` over every label.
    pub fn failures_by_kind(&self) -> Vec<(String, u64)> {
        self.ops
            .iter()
            .flat_map(|(n, l)| {
                l.failures
                    .iter()
                    .map(move |(t, c)| (format!("{n}: {t}"), *c))
            })
            .collect()
    }

    pub fn check(&self, name: &str) -> Option<&Check> {
        self.checks.iter().find(|c| c.name == name)
    }

    pub fn leak_checks(&self) -> impl Iterator<Item = &Check> {
        self.checks.iter().filter(|c| c.kind == Kind::Leak)
    }

    /// `pass`, `threshold breached`, `leak found`, as the exit code says.
    pub fn verdict(&self) -> &'static str {
        match self.exit_code {
            0 => "pass",
            1 => "threshold breached",
            2 => "leak found",
            _ => "harness error",
        }
    }

    /// Reads a `report.json`, naming the file on any error.
    pub fn read(path: &Path) -> anyhow::Result<Report> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let v: serde_json::Value =
            serde_json::from_str(&text).with_context(|| format!("{}: not JSON", path.display()))?;
        match v.get("schema_version").and_then(|v| v.as_u64()) {
            Some(n) if n == SCHEMA_VERSION as u64 => {}
            Some(n) => anyhow::bail!(
                "{}: schema_version {n}, this mcp-loadgen reads {SCHEMA_VERSION}",
                path.display()
            ),
            None => anyhow::bail!(
                "{}: no schema_version: not a mcp-loadgen report",
                path.display()
            ),
        }
        serde_json::from_value(v).with_context(|| format!("{}: not a report", path.display()))
    }

    /// Writes `report.json` and renders every other format into `dir`.
    pub fn write(&self, dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create the report folder {}", dir.display()))?;
        let json = dir.join(JSON);
        std::fs::write(&json, serde_json::to_vec_pretty(self)?)
            .with_context(|| format!("cannot write {}", json.display()))?;
        let mut written = vec![json];
        written.extend(self.render(dir)?);
        Ok(written)
    }

    /// Renders the human and CI formats (`report.md`, `report.html`, `junit.xml`) into `dir`.
    pub fn render(&self, dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
        let mut written = Vec::new();
        for (file, text) in [
            (MARKDOWN, render::markdown::render(self)),
            (HTML, render::html::render(self)),
            (JUNIT, render::junit::render(self)?),
        ] {
            let path = dir.join(file);
            std::fs::write(&path, text)
                .with_context(|| format!("cannot write {}", path.display()))?;
            written.push(path);
        }
        Ok(written)
    }
}

impl Environment {
    /// The machine this process runs on, and the checkout in the working directory.
    pub fn current(target_version: Option<String>) -> Environment {
        let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
        let os = read("/etc/os-release")
            .lines()
            .find_map(|l| l.strip_prefix("PRETTY_NAME="))
            .map(|v| v.trim_matches('"').to_string())
            .unwrap_or_else(|| std::env::consts::OS.to_string());
        let cpu = read("/proc/cpuinfo")
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .map(|v| v.trim_start_matches([' ', '\t', ':']).to_string())
            .unwrap_or_default();
        let memory_mib = read("/proc/meminfo")
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map(|kib| kib / 1024)
            .unwrap_or(0);
        let git = |args: &[&str]| {
            std::process::Command::new("git")
                .args(args)
                .stderr(std::process::Stdio::null())
                .output()
                .ok()
                .filter(|o| o.status.success())
                .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        };
        let git_revision = git(&["rev-parse", "HEAD"]);
        let git_dirty = git_revision
            .as_ref()
            .and_then(|_| git(&["status", "--porcelain", "--untracked-files=no"]))
            .map(|s| !s.is_empty());
        Environment {
            hostname: read("/proc/sys/kernel/hostname").trim().to_string(),
            os,
            kernel: read("/proc/sys/kernel/osrelease").trim().to_string(),
            cpu,
            cores: std::thread::available_parallelism()
                .map(|n| n.get() as u32)
                .unwrap_or(1),
            memory_mib,
            loadgen_version: env!("CARGO_PKG_VERSION").to_string(),
            git_revision,
            git_dirty,
            target_version,
        }
    }
}

/// Formats µs as ms with sensible precision.
pub fn ms(us: f64) -> String {
    let v = us / 1000.0;
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// A number with thousands separators (`12,345`), rounded.
pub fn thousands(v: f64) -> String {
    let n = v.round() as i64;
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 { format!("-{out}") } else { out }
}

#[cfg(test)]
#[path = "report_tests.rs"]
mod tests;
