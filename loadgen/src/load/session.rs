//! One goose user = one MCP client session: open (`initialize` + `initialized`, a session id
//! only if the server gives one, the GET event stream if asked; `server/discover` for
//! 2026-07-28), one transaction per mix entry, close on stop (stream closed, then DELETE or
//! abandon); each request posted with its kind's timeout, timed and checked the way a client
//! would call it a failure, and cancelled (`notifications/cancelled`) when given up on.
//!
//! Invariant: the event stream is owned by the session state alone and closed whenever the
//! session ends (DELETE, abandon, rotation, a 404, the user's end).

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use goose::prelude::*;
use serde_json::Value;

use super::Plan;
use super::mcp::{self, Answer};
use super::recorder::{ClientCounters, SessionFate};
use super::stream::EventStream;
use crate::scenario::{Op, OpKind, Protocol, SessionEnd};

/// A goose user's MCP client state.
#[derive(Clone, Default)]
struct Session {
    /// The user's protocol era (dealt on its first request).
    protocol: Option<Protocol>,
    /// The 2025-11-25 session id (none: not open, or a sessionless server).
    id: Option<String>,
    open: bool,
    /// Requests since the session opened.
    used: u64,
    /// Open model: this user's requests so far (its k-th intended start).
    k: u64,
    /// The session's GET event stream (`[load] event_stream`), owned here only.
    stream: Option<EventStream>,
}

/// The outcome of one HTTP exchange: status, content type, body, session header.
struct Exchange {
    status: u16,
    content_type: String,
    body: String,
    session_id: Option<String>,
}

/// One POST of a JSON-RPC message.
struct Post<'a> {
    protocol: Protocol,
    /// The label it is recorded (and named in goose) under.
    label: &'a str,
    body: &'a Value,
    session: Option<&'a str>,
    /// The JSON-RPC method and tool name (2026-07-28 `Mcp-Method`/`Mcp-Name` headers).
    method: &'a str,
    name: Option<&'a str>,
    timeout: Duration,
    /// The id to cancel when the harness gives up on it (none for `initialize`, which the
    /// spec forbids cancelling, and for notifications); such a request is also given up
    /// when the load stops.
    cancellable: Option<u64>,
}

/// The failure tag of a request given up because the load stopped (not measured).
pub(super) const STOPPED: &str = "stopped";
/// How long a `notifications/cancelled` may take.
const CANCEL_TIMEOUT: Duration = Duration::from_secs(1);
/// The GET event stream's request timeout (it lives as long as its session).
const STREAM_TIMEOUT: Duration = Duration::from_secs(24 * 3600);

/// Posts `p`; gives it up (and cancels it) when it times out or the load stops first.
async fn post(
    user: &mut GooseUser,
    plan: &Plan,
    p: &Post<'_>,
) -> Result<Exchange, (String, String)> {
    let outcome = {
        let exchange = exchange(user, plan, p);
        tokio::select! {
            biased;
            r = exchange => Some(r),
            () = plan.stopping(), if p.cancellable.is_some() => None,
        }
    };
    match outcome {
        None => {
            ClientCounters::bump(&plan.recorder.client.abandoned_at_stop);
            cancel(user, plan, p, "the client stopped").await;
            Err((
                STOPPED.to_string(),
                "in flight when the load stopped".to_string(),
            ))
        }
        Some(Err((tag, detail))) if tag == "timeout" => {
            cancel(user, plan, p, "timeout").await;
            Err((tag, detail))
        }
        Some(r) => r,
    }
}

/// Sends `notifications/cancelled` for `p` (if it has an id), with its session header, and
/// counts whether the target took it.
async fn cancel(user: &GooseUser, plan: &Plan, p: &Post<'_>, reason: &str) {
    let Some(id) = p.cancellable.filter(|_| plan.load.cancel) else {
        return;
    };
    let body = mcp::cancelled(p.protocol, id, reason);
    let c = &plan.recorder.client;
    let Ok(rb) = user.get_request_builder(&GooseMethod::Post, &plan.path) else {
        ClientCounters::bump(&c.cancellations_failed);
        return;
    };
    let rb = with_mcp_headers(
        rb,
        plan,
        p.protocol,
        p.session,
        "notifications/cancelled",
        None,
    )
    .timeout(CANCEL_TIMEOUT)
    .body(body.to_string());
    match rb.send().await {
        Ok(r) if r.status().is_success() => ClientCounters::bump(&c.cancellations_sent),
        _ => ClientCounters::bump(&c.cancellations_failed),
    }
}

/// The headers of a POST after `initialize`: the scenario's, content negotiation, the
/// session and protocol version (2025-11-25), or the version and method (2026-07-28).
fn with_mcp_headers(
    rb: reqwest::RequestBuilder,
    plan: &Plan,
    protocol: Protocol,
    session: Option<&str>,
    method: &str,
    name: Option<&str>,
) -> reqwest::RequestBuilder {
    let mut rb = rb
        .headers(plan.headers.clone())
        .header("Accept", "application/json, text/event-stream")
        .header("Content-Type", "application/json");
    if method != "initialize" {
        rb = rb.header("MCP-Protocol-Version", protocol.as_str());
    }
    if let Some(s) = session {
        rb = rb.header("Mcp-Session-Id", s);
    }
    if protocol == Protocol::V2026_07_28 {
        rb = rb.header("Mcp-Method", method);
        if let Some(n) = name {
            rb = rb.header("Mcp-Name", n);
        }
    }
    rb
}

/// The HTTP exchange of `p`, timed out after `p.timeout`.
async fn exchange(
    user: &mut GooseUser,
    plan: &Plan,
    p: &Post<'_>,
) -> Result<Exchange, (String, String)> {
    let rb = user
        .get_request_builder(&GooseMethod::Post, &plan.path)
        .map_err(|e| ("request".to_string(), e.to_string()))?;
    let rb = with_mcp_headers(rb, plan, p.protocol, p.session, p.method, p.name)
        .timeout(p.timeout)
        .body(p.body.to_string());
    let req = GooseRequest::builder()
        .method(GooseMethod::Post)
        .path(plan.path.as_str())
        .name(p.label)
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

/// Opens the user's session (2025-11-25: `initialize` + `notifications/initialized`, then
/// the GET event stream when asked; 2026-07-28: `server/discover`), timed as one request.
async fn open(user: &mut GooseUser, plan: &Plan) -> Result<(), (String, String)> {
    let start = Instant::now();
    let mut s = user
        .get_session_data::<Session>()
        .cloned()
        .unwrap_or_default();
    let id = plan.next_id();
    let protocol = *s
        .protocol
        .get_or_insert_with(|| plan.protocol_of(user.weighted_users_index));
    let label = match protocol {
        Protocol::V2025_11_25 => "initialize",
        Protocol::V2026_07_28 => "server/discover",
    };
    let timeout = plan.timeout(OpKind::Initialize);
    let outcome = async {
        let body = match protocol {
            Protocol::V2025_11_25 => mcp::initialize(id),
            Protocol::V2026_07_28 => mcp::request(protocol, id, "server/discover", None),
        };
        let first = Post {
            protocol,
            label,
            body: &body,
            session: None,
            method: label,
            name: None,
            timeout,
            cancellable: None,
        };
        let x = post(user, plan, &first).await?;
        if x.status != 200 {
            return Err(http_failure(&x));
        }
        check(mcp::parse_answer(&x.content_type, &x.body, id), false)?;
        if protocol == Protocol::V2026_07_28 {
            return Ok(None);
        }
        // a sessionless server gives no id: then none is sent, and nothing is DELETEd
        let sid = x.session_id;
        let initialized = Post {
            label: "notifications/initialized",
            body: &mcp::initialized(),
            session: sid.as_deref(),
            method: "notifications/initialized",
            ..first
        };
        let n = post(user, plan, &initialized).await?;
        if n.status != 202 && n.status != 200 {
            return Err(http_failure(&n));
        }
        Ok(sid)
    }
    .await;
    if let Ok(sid) = &outcome {
        if let Some(id) = sid {
            plan.recorder.session_opened(id);
        }
        s.id = sid.clone();
        s.open = true;
        s.used = 0;
        plan.recorder
            .sessions_opened
            .fetch_add(1, Ordering::Relaxed);
        if plan.event_stream && protocol == Protocol::V2025_11_25 {
            s.stream = open_stream(user, plan, sid.as_deref());
        }
    }
    user.set_session_data(s);
    let outcome = outcome.map(|_| ());
    plan.recorder.record_era(protocol, outcome.is_ok(), false);
    plan.recorder.record(label, start, outcome.clone());
    outcome
}

/// The session's GET event stream, read by its own task (see [`EventStream`]).
fn open_stream(user: &GooseUser, plan: &Plan, sid: Option<&str>) -> Option<EventStream> {
    let mut rb = user
        .get_request_builder(&GooseMethod::Get, &plan.path)
        .ok()?
        .headers(plan.headers.clone())
        .header("Accept", "text/event-stream")
        .header("MCP-Protocol-Version", Protocol::V2025_11_25.as_str())
        .timeout(STREAM_TIMEOUT);
    if let Some(sid) = sid {
        rb = rb.header("Mcp-Session-Id", sid);
    }
    Some(EventStream::open(rb, plan.recorder.clone()))
}

/// Ends the user's session: its event stream is closed first (as a client going away
/// does, whether it then DELETEs or abandons the session); then DELETE (2025-11-25 with a
/// session id, `sessions = "close"`), or walk away.
pub(super) async fn close(user: &mut GooseUser, plan: &Plan) {
    let Some(mut s) = user.get_session_data::<Session>().cloned() else {
        return;
    };
    let sid = s.id.take();
    let stream = s.stream.take();
    let protocol = s.protocol.unwrap_or_default();
    s.open = false;
    user.set_session_data(s);
    if let Some(stream) = stream {
        stream.close().await;
    }
    let Some(sid) = sid else {
        return;
    };
    if plan.sessions == SessionEnd::Abandon {
        plan.recorder
            .session_ended(&sid, SessionFate::Abandoned, None);
        return;
    }
    let start = Instant::now();
    let outcome = async {
        let rb = user
            .get_request_builder(&GooseMethod::Delete, &plan.path)
            .map_err(|e| ("request".to_string(), e.to_string()))?
            .headers(plan.headers.clone())
            .header("Mcp-Session-Id", &sid)
            .header("MCP-Protocol-Version", protocol.as_str())
            .timeout(plan.timeout(OpKind::Delete));
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
        let status = goose.response.as_ref().ok().map(|r| r.status().as_u16());
        plan.recorder
            .session_ended(&sid, SessionFate::Closed, status);
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
pub(super) async fn run_op(
    user: &mut GooseUser,
    plan: &Plan,
    op: &Op,
    label: &str,
) -> TransactionResult {
    let mut s = user
        .get_session_data::<Session>()
        .cloned()
        .unwrap_or_default();
    // Open model: wait for this request's intended start; time from it.
    let start = match plan.rate {
        Some(rate) => {
            let slot = (user.weighted_users_index as u64 + s.k * plan.users as u64) as f64 / rate;
            s.k += 1;
            let intended = plan.recorder.round_start() + Duration::from_secs_f64(slot);
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
    s.used += 1;
    let id = plan.next_id();
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
    let request = Post {
        protocol,
        label,
        body: &body,
        session: sid.as_deref(),
        method: op.method(),
        name,
        timeout: plan.timeout(op.kind()),
        cancellable: Some(id),
    };
    let outcome = match post(user, plan, &request).await {
        // given up because the load stopped: not a figure of the target
        Err((tag, _)) if tag == STOPPED => return Ok(()),
        Err(e) => Err(e),
        Ok(x) if x.status == 404 && sid.is_some() => {
            // The target no longer knows the session (spec: re-initialize).
            session_lost = true;
            plan.recorder.reinitialized.fetch_add(1, Ordering::Relaxed);
            if let Some(sid) = &sid {
                plan.recorder.session_ended(sid, SessionFate::Lost, None);
            }
            if let Some(mut s) = user.get_session_data::<Session>().cloned() {
                s.open = false;
                s.id = None;
                let stream = s.stream.take();
                user.set_session_data(s);
                if let Some(stream) = stream {
                    stream.close().await;
                }
            }
            Err(http_failure(&x))
        }
        Ok(x) if x.status != 200 => Err(http_failure(&x)),
        Ok(x) => check(
            mcp::parse_answer(&x.content_type, &x.body, id),
            expect_error,
        ),
    };
    if let (Some(sid), false) = (&sid, session_lost) {
        plan.recorder.session_used(sid);
    }
    let expected = expect_error && outcome.is_ok();
    plan.recorder
        .record_era(protocol, outcome.is_ok(), session_lost);
    plan.recorder.record(label, start, outcome);
    if expected {
        plan.recorder.note_expected_error(label);
    }
    Ok(())
}
