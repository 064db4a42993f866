//! [`Recorder`]: every MCP request's latency, timed here to the end of its body in µs, into
//! hdrhistograms per label and per second, with failure tags, eras and the SIGTERM stop
//! marker; [`LoadResult`] is what an attack recorded.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use crate::report::ClientCounts;
use crate::scenario::Protocol;

/// Counts and latencies of one label (an op of the mix, or `initialize`, `delete`, …).
#[derive(Clone)]
pub struct OpStats {
    pub histogram: Histogram<u64>,
    pub ok: u64,
    pub failed: u64,
    /// Failure tag → count (e.g. `jsonrpc error -32603`, `http 503`, `timeout`).
    pub failures: BTreeMap<String, u64>,
    /// The first failure's detail, for the report.
    pub first_failure: Option<String>,
    /// Answers that were the JSON-RPC (or tool) error the scenario expects (counted in `ok`).
    pub expected_errors: u64,
}

impl Default for OpStats {
    fn default() -> Self {
        OpStats {
            histogram: crate::report::histogram::new(),
            ok: 0,
            failed: 0,
            failures: BTreeMap::new(),
            first_failure: None,
            expected_errors: 0,
        }
    }
}

/// One second of the measured load.
#[derive(Clone)]
pub struct Second {
    pub ok: u64,
    pub failed: u64,
    pub histogram: Histogram<u64>,
}

/// How a 2025-11-25 session the load opened ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionFate {
    /// Still open when the load stopped (its user's close did not run).
    Open,
    /// DELETEd; `delete_status` is the answer (None: the DELETE got none).
    Closed,
    /// Walked away from (`sessions = "abandon"`).
    Abandoned,
    /// The target answered 404 on it (it was already gone).
    Lost,
}

/// A 2025-11-25 session the load opened, for asking the target afterwards whether it still
/// holds it.
#[derive(Debug, Clone)]
pub struct SessionRecord {
    pub id: String,
    pub fate: SessionFate,
    pub delete_status: Option<u16>,
    pub last_used: Instant,
}

/// Where every user records its requests (shared by all users of one attack).
pub struct Recorder {
    pub started: Instant,
    /// The current round's start (the attack's: the open model's intended starts count from it).
    round_started: Mutex<Instant>,
    /// The time spent loading, over every round (the settles between rounds not counted).
    active: Mutex<Duration>,
    inner: Mutex<Recorded>,
    /// Open model: requests that started later than intended.
    pub late_starts: AtomicU64,
    /// 2025-11-25 sessions re-initialized after the target answered 404 on them.
    pub reinitialized: AtomicU64,
    /// Sessions opened (initialize/discover that succeeded).
    pub sessions_opened: AtomicU64,
    /// Requests whose failure came after `stop_marker` (the target was told to stop).
    stop_marker: Mutex<Option<Instant>>,
    /// Requests of the mix and session opens, by protocol era.
    eras: Mutex<BTreeMap<Protocol, EraCounts>>,
    /// Event streams and cancellations.
    pub client: ClientCounters,
    /// Every 2025-11-25 session opened, by id.
    sessions: Mutex<HashMap<String, SessionRecord>>,
}

/// [`ClientCounts`] as they are counted, by every user at once.
#[derive(Default)]
pub struct ClientCounters {
    pub streams_opened: AtomicU64,
    pub streams_not_offered: AtomicU64,
    pub streams_refused: AtomicU64,
    pub streams_broken: AtomicU64,
    pub stream_events: AtomicU64,
    pub cancellations_sent: AtomicU64,
    pub cancellations_failed: AtomicU64,
    pub abandoned_at_stop: AtomicU64,
}

impl ClientCounters {
    /// Adds one to `counter`.
    pub fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> ClientCounts {
        let v = |c: &AtomicU64| c.load(Ordering::Relaxed);
        ClientCounts {
            streams_opened: v(&self.streams_opened),
            streams_not_offered: v(&self.streams_not_offered),
            streams_refused: v(&self.streams_refused),
            streams_broken: v(&self.streams_broken),
            stream_events: v(&self.stream_events),
            cancellations_sent: v(&self.cancellations_sent),
            cancellations_failed: v(&self.cancellations_failed),
            abandoned_at_stop: v(&self.abandoned_at_stop),
        }
    }
}

/// Requests of one protocol era: mix requests and session opens.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct EraCounts {
    pub requests: u64,
    /// Failed, not counting `session_lost`.
    pub failed: u64,
    /// 2025-11-25 requests answered 404 because the target no longer knew their session
    /// (the user re-initialized).
    pub session_lost: u64,
}

impl EraCounts {
    /// What happened between `earlier` and `self`.
    pub fn since(&self, earlier: &EraCounts) -> EraCounts {
        EraCounts {
            requests: self.requests.saturating_sub(earlier.requests),
            failed: self.failed.saturating_sub(earlier.failed),
            session_lost: self.session_lost.saturating_sub(earlier.session_lost),
        }
    }
}

#[derive(Default)]
struct Recorded {
    ops: BTreeMap<String, OpStats>,
    seconds: Vec<Second>,
    /// Failures of requests that started before the stop marker but ended after it.
    in_flight_failed_at_stop: u64,
    after_stop: u64,
}

/// What an attack recorded, once it ended.
pub struct LoadResult {
    pub wall: Duration,
    /// The time spent loading (`wall` less the settles between rounds).
    pub active: Duration,
    pub ops: BTreeMap<String, OpStats>,
    pub seconds: Vec<Second>,
    pub late_starts: u64,
    pub reinitialized: u64,
    pub sessions_opened: u64,
    pub in_flight_failed_at_stop: u64,
    /// Requests started after the target was told to stop (not counted in ops).
    pub after_stop: u64,
    pub eras: BTreeMap<Protocol, EraCounts>,
    pub client: ClientCounts,
    /// Every 2025-11-25 session this attack opened.
    pub sessions: Vec<SessionRecord>,
}

impl LoadResult {
    /// All measured requests of the mix (not session set-up or close), merged.
    pub fn mix_histogram(&self, mix: &BTreeSet<String>) -> Histogram<u64> {
        let mut all = crate::report::histogram::new();
        for (label, s) in &self.ops {
            if mix.contains(label) {
                all.add(&s.histogram).expect("same bounds");
            }
        }
        all
    }

    pub fn totals(&self) -> (u64, u64) {
        self.ops
            .values()
            .fold((0, 0), |(ok, f), s| (ok + s.ok, f + s.failed))
    }
}

impl Recorder {
    pub fn new() -> Recorder {
        Recorder {
            started: Instant::now(),
            round_started: Mutex::new(Instant::now()),
            active: Mutex::new(Duration::ZERO),
            inner: Mutex::new(Recorded::default()),
            late_starts: AtomicU64::new(0),
            reinitialized: AtomicU64::new(0),
            sessions_opened: AtomicU64::new(0),
            stop_marker: Mutex::new(None),
            eras: Mutex::new(BTreeMap::new()),
            client: ClientCounters::default(),
            sessions: Mutex::new(HashMap::new()),
        }
    }

    /// A 2025-11-25 session was opened.
    pub fn session_opened(&self, id: &str) {
        let record = SessionRecord {
            id: id.to_string(),
            fate: SessionFate::Open,
            delete_status: None,
            last_used: Instant::now(),
        };
        self.sessions.lock().unwrap().insert(id.to_string(), record);
    }

    /// A request was sent on session `id`.
    pub fn session_used(&self, id: &str) {
        if let Some(r) = self.sessions.lock().unwrap().get_mut(id) {
            r.last_used = Instant::now();
        }
    }

    /// Session `id` ended as `fate` (`delete_status`: the DELETE's answer).
    pub fn session_ended(&self, id: &str, fate: SessionFate, delete_status: Option<u16>) {
        if let Some(r) = self.sessions.lock().unwrap().get_mut(id) {
            r.fate = fate;
            r.delete_status = delete_status;
            r.last_used = Instant::now();
        }
    }

    /// A round of load (an attack) starts now.
    pub fn begin_round(&self) {
        *self.round_started.lock().unwrap() = Instant::now();
    }

    /// The round that began last ended now: its time counts as load.
    pub fn end_round(&self) {
        let began = *self.round_started.lock().unwrap();
        *self.active.lock().unwrap() += began.elapsed();
    }

    /// When the current round began.
    pub fn round_start(&self) -> Instant {
        *self.round_started.lock().unwrap()
    }

    /// From now on the target is stopping: requests that start after this are not measured.
    pub fn mark_stop(&self) {
        *self.stop_marker.lock().unwrap() = Some(Instant::now());
    }

    fn stopped_before(&self, t: Instant) -> Option<bool> {
        self.stop_marker.lock().unwrap().map(|m| m <= t)
    }

    /// Records one request of `label` that started (or was meant to start) at `start`.
    pub fn record(&self, label: &str, start: Instant, outcome: Result<(), (String, String)>) {
        let end = Instant::now();
        let us = end.duration_since(start).as_micros().max(1) as u64;
        let stop = self.stopped_before(start);
        let mut r = self.inner.lock().unwrap();
        if stop == Some(true) {
            r.after_stop += 1;
            return;
        }
        if outcome.is_err() && stop == Some(false) {
            r.in_flight_failed_at_stop += 1;
        }
        let s = r.ops.entry(label.to_string()).or_default();
        let _ = s.histogram.record(us);
        match &outcome {
            Ok(()) => s.ok += 1,
            Err((tag, detail)) => {
                s.failed += 1;
                *s.failures.entry(tag.clone()).or_default() += 1;
                s.first_failure
                    .get_or_insert_with(|| format!("{tag}: {detail}"));
            }
        }
        let sec = end.duration_since(self.started).as_secs() as usize;
        while r.seconds.len() <= sec {
            r.seconds.push(Second {
                ok: 0,
                failed: 0,
                histogram: crate::report::histogram::new(),
            });
        }
        let b = &mut r.seconds[sec];
        let _ = b.histogram.record(us);
        if outcome.is_ok() {
            b.ok += 1;
        } else {
            b.failed += 1;
        }
    }

    /// Counts one request of `era`: ok, failed, or its session was lost (404).
    pub fn record_era(&self, era: Protocol, ok: bool, session_lost: bool) {
        let mut eras = self.eras.lock().unwrap();
        let c = eras.entry(era).or_default();
        c.requests += 1;
        if session_lost {
            c.session_lost += 1;
        } else if !ok {
            c.failed += 1;
        }
    }

    /// The counts by era so far.
    pub fn era_counts(&self) -> BTreeMap<Protocol, EraCounts> {
        self.eras.lock().unwrap().clone()
    }

    /// Counts an expected error answer of `label` (already recorded as ok).
    pub fn note_expected_error(&self, label: &str) {
        let mut r = self.inner.lock().unwrap();
        if let Some(s) = r.ops.get_mut(label) {
            s.expected_errors += 1;
        }
    }

    pub fn snapshot_totals(&self) -> (u64, u64) {
        let r = self.inner.lock().unwrap();
        r.ops
            .values()
            .fold((0, 0), |(ok, f), s| (ok + s.ok, f + s.failed))
    }

    pub fn finish(&self) -> LoadResult {
        let r = self.inner.lock().unwrap();
        LoadResult {
            wall: self.started.elapsed(),
            active: *self.active.lock().unwrap(),
            ops: r.ops.clone(),
            seconds: r.seconds.clone(),
            late_starts: self.late_starts.load(Ordering::Relaxed),
            reinitialized: self.reinitialized.load(Ordering::Relaxed),
            sessions_opened: self.sessions_opened.load(Ordering::Relaxed),
            in_flight_failed_at_stop: r.in_flight_failed_at_stop,
            after_stop: r.after_stop,
            eras: self.era_counts(),
            client: self.client.snapshot(),
            sessions: self.sessions.lock().unwrap().values().cloned().collect(),
        }
    }
}

impl Default for Recorder {
    fn default() -> Self {
        Recorder::new()
    }
}
