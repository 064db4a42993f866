//! One goose user = one MCP client session: open (`initialize` + `initialized`, or none for
//! 2026-07-28), one transaction per mix entry, close on stop (DELETE or abandon); each request
//! posted, timed and checked the way a client would call it a failure.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use goose::prelude::*;
use serde_json::Value;

use super::Plan;
use super::mcp::{self, Answer};
use super::recorder::SessionFate;
use crate::scenario::{Op, Protocol, SessionEnd};

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
                plan.recorder.session_opened(&sid);
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
pub(super) async fn close(user: &mut GooseUser, plan: &Plan) {
    let Some(mut s) = user.get_session_data::<Session>().cloned() else {
        return;
    };
    let sid = s.id.take();
    s.open = false;
    user.set_session_data(s);
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
            if let Some(sid) = &sid {
                plan.recorder.session_ended(sid, SessionFate::Lost, None);
            }
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
