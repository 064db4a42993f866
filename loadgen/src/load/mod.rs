//! Load: one goose user per MCP client session, our own timing into hdrhistograms.
//!
//! goose runs the users (closed model: `users`, with ramp; open model: `rate`, each request
//! timed from its intended start, late starts counted). goose's own request times stop at the
//! response headers and are whole milliseconds, so every MCP request is timed here to the end
//! of its body, in µs, into [`Recorder`].

pub mod mcp;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use goose::prelude::*;
use hdrhistogram::Histogram;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde_json::{Value, json};

use crate::scenario::{Op, Protocol, Scenario as ScenarioFile, SessionEnd};
use mcp::Answer;

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

/// Where every user records its requests (shared by all users of one attack).
pub struct Recorder {
    pub started: Instant,
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
    pub ops: BTreeMap<String, OpStats>,
    pub seconds: Vec<Second>,
    pub late_starts: u64,
    pub reinitialized: u64,
    pub sessions_opened: u64,
    pub in_flight_failed_at_stop: u64,
    /// Requests started after the target was told to stop (not counted in ops).
    pub after_stop: u64,
    pub eras: BTreeMap<Protocol, EraCounts>,
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
            inner: Mutex::new(Recorded::default()),
            late_starts: AtomicU64::new(0),
            reinitialized: AtomicU64::new(0),
            sessions_opened: AtomicU64::new(0),
            stop_marker: Mutex::new(None),
            eras: Mutex::new(BTreeMap::new()),
        }
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
            ops: r.ops.clone(),
            seconds: r.seconds.clone(),
            late_starts: self.late_starts.load(Ordering::Relaxed),
            reinitialized: self.reinitialized.load(Ordering::Relaxed),
            sessions_opened: self.sessions_opened.load(Ordering::Relaxed),
            in_flight_failed_at_stop: r.in_flight_failed_at_stop,
            after_stop: r.after_stop,
            eras: self.era_counts(),
        }
    }
}

impl Default for Recorder {
    fn default() -> Self {
        Recorder::new()
    }
}

/// Everything a user needs, shared by all users of one attack.
pub struct Plan {
    /// Origin of the target (`http://127.0.0.1:8080`), for goose's `host`.
    pub origin: String,
    /// Path (and query) of the MCP endpoint.
    pub path: String,
    pub headers: HeaderMap,
    /// Each era with its share of the users.
    pub protocols: Vec<(Protocol, u32)>,
    pub sessions: SessionEnd,
    /// End (and re-open) a session after this many requests (0: never).
    pub requests_per_session: u64,
    pub ops: Vec<(Op, u32)>,
    pub arguments: BTreeMap<String, Value>,
    pub expect_errors: BTreeSet<String>,
    pub users: usize,
    pub rate: Option<f64>,
    pub ramp: Duration,
    pub duration: Duration,
    pub request_timeout: Duration,
    pub recorder: Arc<Recorder>,
}

impl Plan {
    /// The plan for `scenario` against the MCP endpoint `url`, running for `duration`.
    pub fn new(
        scenario: &ScenarioFile,
        url: &str,
        headers: &BTreeMap<String, String>,
        duration: Duration,
    ) -> anyhow::Result<Plan> {
        let parsed = reqwest::Url::parse(url)?;
        let origin = parsed.origin().ascii_serialization();
        let mut path = parsed.path().to_string();
        if let Some(q) = parsed.query() {
            path.push('?');
            path.push_str(q);
        }
        let mut hm = HeaderMap::new();
        for (k, v) in headers {
            hm.insert(
                HeaderName::from_bytes(k.as_bytes())
                    .map_err(|e| anyhow::anyhow!("header name {k:?}: {e}"))?,
                HeaderValue::from_str(v).map_err(|e| anyhow::anyhow!("header {k}: {e}"))?,
            );
        }
        let arguments = scenario
            .load
            .arguments
            .iter()
            .map(|(k, v)| Ok((k.clone(), serde_json::to_value(v)?)))
            .collect::<anyhow::Result<_>>()?;
        Ok(Plan {
            origin,
            path,
            headers: hm,
            protocols: if scenario.load.protocols.is_empty() {
                vec![(scenario.load.protocol, 1)]
            } else {
                scenario
                    .load
                    .protocols
                    .iter()
                    .map(|(p, w)| (*p, *w))
                    .collect()
            },
            sessions: scenario.load.sessions,
            requests_per_session: scenario.load.requests_per_session,
            ops: scenario.ops(),
            arguments,
            expect_errors: scenario.load.expect_errors.iter().cloned().collect(),
            users: scenario.users(),
            rate: scenario.load.rate,
            ramp: scenario.load.ramp,
            duration,
            request_timeout: scenario.load.request_timeout,
            recorder: Arc::new(Recorder::new()),
        })
    }

    /// The era of user `index`: users are dealt to eras by their shares, in turn (with
    /// shares 1:1, even users speak the first era and odd ones the second).
    pub fn protocol_of(&self, index: usize) -> Protocol {
        let total: u32 = self.protocols.iter().map(|(_, w)| w).sum();
        let mut slot = (index as u64 % u64::from(total.max(1))) as u32;
        for (p, w) in &self.protocols {
            if slot < *w {
                return *p;
            }
            slot -= w;
        }
        self.protocols[0].0
    }

    fn params(&self, op: &Op, n: u64) -> Option<Value> {
        match op {
            Op::ListTools => None,
            Op::Ping => None,
            Op::Call(name) => {
                let args = self.arguments.get(name).cloned().unwrap_or_else(|| {
                    // Tools named `echo` (any namespace) need `text`.
                    if name == "echo" || name.ends_with("__echo") {
                        json!({ "text": format!("load {n}") })
                    } else {
                        json!({})
                    }
                });
                Some(json!({ "name": name, "arguments": args }))
            }
        }
    }
}

/// A goose user's MCP client state.
#[derive(Clone, Default)]
struct Session {
    /// The user's protocol era (dealt on its first request).
    protocol: Option<Protocol>,
    id: Option<String>,
    open: bool,
    next_id: u64,
    /// Requests since the session opened.
    used: u64,
    /// Open model: this user's requests so far (its k-th intended start).
    k: u64,
}

/// The outcome of one HTTP exchange: status, content type, body, session header.
struct Exchange {
    status: u16,
    content_type: String,
    body: String,
    session_id: Option<String>,
}

#[allow(clippy::too_many_arguments)]
async fn post(
    user: &mut GooseUser,
    plan: &Plan,
    protocol: Protocol,
    name: &str,
    body: &Value,
    session: Option<&str>,
    method_headers: Option<(&str, Option<&str>)>,
) -> Result<Exchange, (String, String)> {
    let mut rb = user
        .get_request_builder(&GooseMethod::Post, &plan.path)
        .map_err(|e| ("request".to_string(), e.to_string()))?
        .headers(plan.headers.clone())
        .header("Accept", "application/json, text/event-stream")
        .header("Content-Type", "application/json")
        .timeout(plan.request_timeout)
        .body(body.to_string());
    match protocol {
        Protocol::V2025_11_25 => {
            if let Some(s) = session {
                rb = rb
                    .header("Mcp-Session-Id", s)
                    .header("MCP-Protocol-Version", "2025-11-25");
            }
        }
        Protocol::V2026_07_28 => {
            rb = rb.header("MCP-Protocol-Version", "2026-07-28");
            if let Some((method, name)) = method_headers {
                rb = rb.header("Mcp-Method", method);
                if let Some(n) = name {
                    rb = rb.header("Mcp-Name", n);
                }
            }
        }
    }
    let req = GooseRequest::builder()
        .method(GooseMethod::Post)
        .path(plan.path.as_str())
        .name(name)
        .set_request_builder(rb)
        .build();
    let mut goose = user
        .request(req)
        .await
        .map_err(|e| ("request".to_string(), e.to_string()))?;
    let response = match goose.response {
        Ok(r) => r,
        Err(e) => {
            let tag = if e.is_timeout() {
                "timeout"
            } else if e.is_connect() {
                "connect"
            } else {
                "http"
            };
            let detail = error_chain(&e);
            let _ = user.set_failure(tag, &mut goose.request, None, None);
            return Err((tag.to_string(), detail));
        }
    };
    let status = response.status().as_u16();
    let header = |n: &str| {
        response
            .headers()
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let content_type = header("content-type").unwrap_or_default();
    let session_id = header("mcp-session-id");
    let body = match response.text().await {
        Ok(b) => b,
        Err(e) => {
            let tag = if e.is_timeout() { "timeout" } else { "body" };
            let _ = user.set_failure(tag, &mut goose.request, None, None);
            return Err((tag.to_string(), error_chain(&e)));
        }
    };
    if !(200..300).contains(&status) {
        let _ = user.set_failure(&format!("http {status}"), &mut goose.request, None, None);
    }
    Ok(Exchange {
        status,
        content_type,
        body,
        session_id,
    })
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        src = inner.source();
    }
    s
}

fn http_failure(x: &Exchange) -> (String, String) {
    let body: String = x.body.chars().take(200).collect();
    (format!("http {}", x.status), body)
}

/// Opens the user's session (2025-11-25: `initialize` + `notifications/initialized`;
/// 2026-07-28: `server/discover`), timed as one request.
async fn open(user: &mut GooseUser, plan: &Plan) -> Result<(), (String, String)> {
    let start = Instant::now();
    let mut s = user
        .get_session_data::<Session>()
        .cloned()
        .unwrap_or_default();
    s.next_id += 1;
    let id = s.next_id;
    let protocol = *s
        .protocol
        .get_or_insert_with(|| plan.protocol_of(user.weighted_users_index));
    let label = match protocol {
        Protocol::V2025_11_25 => "initialize",
        Protocol::V2026_07_28 => "server/discover",
    };
    let outcome = async {
        match protocol {
            Protocol::V2025_11_25 => {
                let x = post(
                    user,
                    plan,
                    protocol,
                    "initialize",
                    &mcp::initialize(id),
                    None,
                    None,
                )
                .await?;
                if x.status != 200 {
                    return Err(http_failure(&x));
                }
                check(mcp::parse_answer(&x.content_type, &x.body, id), false)?;
                let sid = x.session_id.ok_or_else(|| {
                    (
                        "no session".to_string(),
                        "initialize answered without Mcp-Session-Id".to_string(),
                    )
                })?;
                let n = post(
                    user,
                    plan,
                    protocol,
                    "notifications/initialized",
                    &mcp::initialized(),
                    Some(&sid),
                    None,
                )
                .await?;
                if n.status != 202 && n.status != 200 {
                    return Err(http_failure(&n));
                }
                s.id = Some(sid);
            }
            Protocol::V2026_07_28 => {
                let body = mcp::request(protocol, id, "server/discover", None);
                let x = post(
                    user,
                    plan,
                    protocol,
                    "server/discover",
                    &body,
                    None,
                    Some(("server/discover", None)),
                )
                .await?;
                if x.status != 200 {
                    return Err(http_failure(&x));
                }
                check(mcp::parse_answer(&x.content_type, &x.body, id), false)?;
            }
        }
        Ok(())
    }
    .await;
    if outcome.is_ok() {
        s.open = true;
        s.used = 0;
        plan.recorder
            .sessions_opened
            .fetch_add(1, Ordering::Relaxed);
    }
    user.set_session_data(s);
    plan.recorder.record_era(protocol, outcome.is_ok(), false);
    plan.recorder.record(label, start, outcome.clone());
    outcome
}

/// Ends the user's session: DELETE (2025-11-25, `sessions = "close"`), or walks away.
async fn close(user: &mut GooseUser, plan: &Plan) {
    let Some(mut s) = user.get_session_data::<Session>().cloned() else {
        return;
    };
    let sid = s.id.take();
    s.open = false;
    user.set_session_data(s);
    let (Some(sid), SessionEnd::Close) = (sid, plan.sessions) else {
        return;
    };
    let start = Instant::now();
    let outcome = async {
        let rb = user
            .get_request_builder(&GooseMethod::Delete, &plan.path)
            .map_err(|e| ("request".to_string(), e.to_string()))?
            .headers(plan.headers.clone())
            .header("Mcp-Session-Id", &sid)
            .header("MCP-Protocol-Version", "2025-11-25")
            .timeout(plan.request_timeout);
        let req = GooseRequest::builder()
            .method(GooseMethod::Delete)
            .path(plan.path.as_str())
            .name("DELETE session")
            .set_request_builder(rb)
            .build();
        let goose = user
            .request(req)
            .await
            .map_err(|e| ("request".to_string(), e.to_string()))?;
        match goose.response {
            Ok(r) if r.status().is_success() => Ok(()),
            Ok(r) => Err((format!("http {}", r.status().as_u16()), String::new())),
            Err(e) => Err(("http".to_string(), error_chain(&e))),
        }
    }
    .await;
    plan.recorder.record("DELETE session", start, outcome);
}

/// An answer → ok, or the failure tag and detail. `expect_error`: a JSON-RPC error (or a tool
/// error) is the correct answer, a plain result is not.
fn check(answer: Result<Answer, mcp::Invalid>, expect_error: bool) -> Result<(), (String, String)> {
    match answer {
        Err(invalid) => Err((invalid.tag().to_string(), invalid.detail().to_string())),
        Ok(a @ Answer::Error(..)) | Ok(a @ Answer::Result(_)) if expect_error => {
            if matches!(a, Answer::Error(..)) || a.is_tool_error() {
                Ok(())
            } else {
                Err((
                    "expected an error".to_string(),
                    "the call succeeded where the scenario expects an error".to_string(),
                ))
            }
        }
        Ok(Answer::Error(code, message)) => Err((format!("jsonrpc error {code}"), message)),
        Ok(a) if a.is_tool_error() => Err((
            "tool error".to_string(),
            match &a {
                Answer::Result(r) => r.to_string().chars().take(200).collect(),
                Answer::Error(..) => String::new(),
            },
        )),
        Ok(_) => Ok(()),
    }
}

/// One request of the mix (the goose transaction body).
async fn run_op(user: &mut GooseUser, plan: &Plan, op: &Op, label: &str) -> TransactionResult {
    let mut s = user
        .get_session_data::<Session>()
        .cloned()
        .unwrap_or_default();
    // Open model: wait for this request's intended start; time from it.
    let start = match plan.rate {
        Some(rate) => {
            let slot = (user.weighted_users_index as u64 + s.k * plan.users as u64) as f64 / rate;
            s.k += 1;
            let intended = plan.recorder.started + Duration::from_secs_f64(slot);
            let now = Instant::now();
            if intended > now {
                tokio::time::sleep(intended - now).await;
            } else if now - intended > Duration::from_millis(1) {
                plan.recorder.late_starts.fetch_add(1, Ordering::Relaxed);
            }
            intended
        }
        None => Instant::now(),
    };
    if plan.requests_per_session > 0 && s.used >= plan.requests_per_session && s.open {
        user.set_session_data(s.clone());
        close(user, plan).await;
        s = user
            .get_session_data::<Session>()
            .cloned()
            .unwrap_or_default();
    }
    if !s.open {
        user.set_session_data(s);
        if open(user, plan).await.is_err() {
            return Ok(());
        }
        s = user
            .get_session_data::<Session>()
            .cloned()
            .unwrap_or_default();
    }
    s.next_id += 1;
    s.used += 1;
    let id = s.next_id;
    let sid = s.id.clone();
    let protocol = s
        .protocol
        .unwrap_or_else(|| plan.protocol_of(user.weighted_users_index));
    user.set_session_data(s);

    let name = match op {
        Op::Call(n) => Some(n.as_str()),
        _ => None,
    };
    let body = mcp::request(protocol, id, op.method(), plan.params(op, id));
    let expect_error = plan.expect_errors.contains(label);
    let mut session_lost = false;
    let outcome = match post(
        user,
        plan,
        protocol,
        label,
        &body,
        sid.as_deref(),
        Some((op.method(), name)),
    )
    .await
    {
        Err(e) => Err(e),
        Ok(x) if x.status == 404 && sid.is_some() => {
            // The target no longer knows the session (spec: re-initialize).
            session_lost = true;
            plan.recorder.reinitialized.fetch_add(1, Ordering::Relaxed);
            if let Some(mut s) = user.get_session_data::<Session>().cloned() {
                s.open = false;
                s.id = None;
                user.set_session_data(s);
            }
            Err(http_failure(&x))
        }
        Ok(x) if x.status != 200 => Err(http_failure(&x)),
        Ok(x) => check(
            mcp::parse_answer(&x.content_type, &x.body, id),
            expect_error,
        ),
    };
    let expected = expect_error && outcome.is_ok();
    plan.recorder
        .record_era(protocol, outcome.is_ok(), session_lost);
    plan.recorder.record(label, start, outcome);
    if expected {
        plan.recorder.note_expected_error(label);
    }
    Ok(())
}

/// Runs one goose attack of `plan` (closed or open model) to its end.
pub async fn attack(plan: Arc<Plan>) -> anyhow::Result<LoadResult> {
    let mut scenario = Scenario::new("mcp");
    for (op, weight) in &plan.ops {
        let label = op.label();
        let p = plan.clone();
        let op = op.clone();
        let l = label.clone();
        let f: TransactionFunction = Arc::new(move |user| {
            let p = p.clone();
            let op = op.clone();
            let l = l.clone();
            Box::pin(async move { run_op(user, &p, &op, &l).await })
        });
        scenario = scenario.register_transaction(
            Transaction::new(f)
                .set_name(&label)
                .set_weight(*weight as usize)?,
        );
    }
    let p = plan.clone();
    let stop: TransactionFunction = Arc::new(move |user| {
        let p = p.clone();
        Box::pin(async move {
            close(user, &p).await;
            Ok(())
        })
    });
    scenario =
        scenario.register_transaction(Transaction::new(stop).set_name("close").set_on_stop());

    let mut config = goose::config::GooseConfiguration::default();
    config.host = Some(plan.origin.clone());
    config.users = Some(plan.users);
    let hatch = if plan.rate.is_some() || plan.ramp.is_zero() {
        // everyone at once (goose wants a rate: users per second)
        (plan.users as f64 * 1000.0).to_string()
    } else {
        format!("{:.3}", plan.users as f64 / plan.ramp.as_secs_f64())
    };
    config.increase_rate = Some(hatch);
    config.run_time = Some(format!("{}", plan.duration.as_secs().max(1)));
    config.quiet = 1;
    config.no_print_metrics = true;
    config.no_error_summary = true;
    config.no_reset_metrics = true;
    config.no_telnet = true;
    config.no_status_codes = true;
    config.timeout = Some(format!("{}", plan.request_timeout.as_secs().max(1)));
    goose::reset_killswitch();
    GooseAttack::initialize_with_config(config)?
        .register_scenario(scenario)
        .execute()
        .await
        .map_err(|e| anyhow::anyhow!("goose: {e:?}"))?;
    Ok(plan.recorder.finish())
}
