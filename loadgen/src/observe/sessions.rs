//! Sessions held, asked from outside: each 2025-11-25 session the measured load opened is
//! asked once (a JSON-RPC `ping` with its `Mcp-Session-Id`) whether the target still holds it.
//! Works on any target: it needs no metric of the target's own.
//!
//! Invariant: each session is asked at most once (a ping is activity: it would reset an idle
//! timer); at most [`CONCURRENCY`] asks at a time, each bounded by [`TIMEOUT`]; the answers
//! are classified strictly (a result: held; 404, or a 400 that says the session is unknown:
//! gone; anything else is `unknown`, and named).

use std::collections::BTreeMap;
use std::time::Duration;

use futures::StreamExt;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde_json::{Value, json};

use crate::report::SessionsHeld;

/// Asks in flight at once.
pub const CONCURRENCY: usize = 32;
/// How long one ask may take.
pub const TIMEOUT: Duration = Duration::from_secs(3);
/// How many held ids and unknown answers the report names.
const NAMED: usize = 5;

/// A session to ask about.
#[derive(Debug, Clone)]
pub struct Asked {
    pub id: String,
    /// Its DELETE was answered 2xx.
    pub deleted: bool,
}

/// What one answer says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    Held,
    Gone,
    Unknown(String),
}

/// Asks the target at `url` (with `headers`) about each of `sessions`.
pub async fn ask(
    url: &str,
    headers: &BTreeMap<String, String>,
    sessions: &[Asked],
) -> anyhow::Result<SessionsHeld> {
    let mut hm = HeaderMap::new();
    for (k, v) in headers {
        hm.insert(
            HeaderName::from_bytes(k.as_bytes())?,
            HeaderValue::from_str(v)?,
        );
    }
    let http = reqwest::Client::builder()
        .timeout(TIMEOUT)
        .default_headers(hm)
        .build()?;
    let answers: Vec<(usize, Answer)> = futures::stream::iter(sessions.iter().enumerate())
        .map(|(i, s)| {
            let http = http.clone();
            async move { (i, ask_one(&http, url, &s.id).await) }
        })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    let mut held = SessionsHeld {
        asked: sessions.len() as u64,
        ..SessionsHeld::default()
    };
    for (i, answer) in answers {
        let s = &sessions[i];
        match answer {
            Answer::Held => {
                held.held += 1;
                if s.deleted {
                    held.held_closed += 1;
                } else {
                    held.held_abandoned += 1;
                }
                if held.held_ids.len() < NAMED {
                    held.held_ids.push(s.id.clone());
                }
            }
            Answer::Gone => held.gone += 1,
            Answer::Unknown(what) => {
                held.unknown += 1;
                if held.unknown_answers.len() < NAMED {
                    held.unknown_answers.push(what);
                }
            }
        }
    }
    Ok(held)
}

/// One `ping` on session `id`.
async fn ask_one(http: &reqwest::Client, url: &str, id: &str) -> Answer {
    let ping = json!({ "jsonrpc": "2.0", "id": "held?", "method": "ping" });
    let sent = http
        .post(url)
        .header("Accept", "application/json, text/event-stream")
        .header("Content-Type", "application/json")
        .header("Mcp-Session-Id", id)
        .header("MCP-Protocol-Version", "2025-11-25")
        .body(ping.to_string())
        .send()
        .await;
    let response = match sent {
        Ok(r) => r,
        Err(e) if e.is_timeout() => return Answer::Unknown("timeout".into()),
        Err(e) => return Answer::Unknown(format!("no answer: {e}")),
    };
    let status = response.status().as_u16();
    let body = match response.text().await {
        Ok(b) => b,
        Err(e) if e.is_timeout() => return Answer::Unknown(format!("HTTP {status}: timeout")),
        Err(e) => return Answer::Unknown(format!("HTTP {status}: body: {e}")),
    };
    classify(status, &body)
}

/// Classifies an answer to the `ping`: a JSON-RPC result is held; 404, or a 400 whose body
/// says the session is unknown (the TypeScript SDK's "Bad Request: No valid session ID
/// provided", punkpeye/mcp-proxy's "No valid session ID"), is gone.
pub fn classify(status: u16, body: &str) -> Answer {
    let short = || {
        let b: String = body.trim().chars().take(120).collect();
        format!("HTTP {status}: {b}")
    };
    match status {
        200 if messages(body).any(|m| m.get("result").is_some()) => Answer::Held,
        404 => Answer::Gone,
        400 if says_session_unknown(body) => Answer::Gone,
        _ => Answer::Unknown(short()),
    }
}

/// "session" together with a word saying it is not known.
fn says_session_unknown(body: &str) -> bool {
    let b = body.to_ascii_lowercase();
    b.contains("session")
        && [
            "not found",
            "no valid",
            "invalid",
            "unknown",
            "expired",
            "does not exist",
        ]
        .iter()
        .any(|w| b.contains(w))
}

/// The JSON-RPC messages of a body: plain JSON, or the `data:` lines of an event stream.
fn messages(body: &str) -> impl Iterator<Item = Value> + '_ {
    let whole = serde_json::from_str::<Value>(body.trim()).ok();
    let events = body
        .lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .filter_map(|d| serde_json::from_str::<Value>(d.trim()).ok());
    whole.into_iter().chain(events)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_classified_strictly() {
        assert_eq!(
            classify(200, r#"{"jsonrpc":"2.0","id":"held?","result":{}}"#),
            Answer::Held
        );
        assert_eq!(
            classify(
                200,
                "event: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":\"held?\",\"result\":{}}\n\n"
            ),
            Answer::Held
        );
        assert_eq!(classify(404, "Session not found"), Answer::Gone);
        assert_eq!(
            classify(
                400,
                r#"{"error":{"message":"Bad Request: No valid session ID provided"}}"#
            ),
            Answer::Gone
        );
        // a 400 that says something else, an error answer, a 500: unknown, and named
        assert!(matches!(classify(400, "bad JSON"), Answer::Unknown(s) if s.contains("bad JSON")));
        assert!(matches!(
            classify(
                200,
                r#"{"jsonrpc":"2.0","id":"held?","error":{"code":-32601}}"#
            ),
            Answer::Unknown(_)
        ));
        assert!(matches!(classify(500, ""), Answer::Unknown(s) if s.starts_with("HTTP 500")));
    }
}
