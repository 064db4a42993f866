//! The target's tools, listed once before the load: `tools/list` in the scenario's era,
//! following `nextCursor`, each tool's `inputSchema` kept (the mix's arguments are built from
//! it, `load::schema`).
//!
//! Invariant: a 2025-11-25 session opened here is DELETEd before returning, on success and on
//! error alike (when the target gave it an id); every request is bounded by `timeout`.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use reqwest::header::HeaderMap;
use serde_json::{Value, json};

use super::mcp::{self, Answer};
use crate::scenario::Protocol;

/// At most this many pages (a target whose cursor never ends is a harness error).
const MAX_PAGES: usize = 1000;

/// Tool name → its `inputSchema`, as `url` lists them to a client of `protocol`.
pub async fn list_tools(
    url: &str,
    headers: &HeaderMap,
    protocol: Protocol,
    timeout: Duration,
) -> anyhow::Result<BTreeMap<String, Value>> {
    let client = Lister {
        http: reqwest::Client::builder().timeout(timeout).build()?,
        url,
        headers,
        protocol,
        session: None,
    };
    client.run().await
}

struct Lister<'a> {
    http: reqwest::Client,
    url: &'a str,
    headers: &'a HeaderMap,
    protocol: Protocol,
    session: Option<String>,
}

impl Lister<'_> {
    async fn run(mut self) -> anyhow::Result<BTreeMap<String, Value>> {
        let listed = async {
            if self.protocol == Protocol::V2025_11_25 {
                self.open().await.context("initialize")?;
            }
            self.pages().await
        }
        .await;
        self.close().await;
        listed
    }

    /// `initialize` + `notifications/initialized`; the session id, if the target gives one.
    async fn open(&mut self) -> anyhow::Result<()> {
        let (answer, sid) = self
            .post(&mcp::initialize(1), "initialize", Some(1))
            .await?;
        answer?;
        self.session = sid;
        let (answer, _) = self
            .post(&mcp::initialized(), "notifications/initialized", None)
            .await?;
        answer.map(drop)
    }

    async fn pages(&self) -> anyhow::Result<BTreeMap<String, Value>> {
        let mut tools = BTreeMap::new();
        let mut cursor: Option<String> = None;
        for page in 0..MAX_PAGES {
            let id = 2 + page as u64;
            let params = cursor.as_ref().map(|c| json!({ "cursor": c }));
            let body = mcp::request(self.protocol, id, "tools/list", params);
            let (answer, _) = self.post(&body, "tools/list", Some(id)).await?;
            let result = answer.context("tools/list")?;
            for tool in result
                .get("tools")
                .and_then(Value::as_array)
                .ok_or_else(|| anyhow!("tools/list: the result has no `tools` list"))?
            {
                let name = tool.get("name").and_then(Value::as_str);
                let name = name.ok_or_else(|| anyhow!("tools/list: a tool without a name"))?;
                let schema = tool.get("inputSchema").cloned().unwrap_or(json!({}));
                tools.insert(name.to_string(), schema);
            }
            cursor = result
                .get("nextCursor")
                .and_then(Value::as_str)
                .map(str::to_string);
            if cursor.is_none() {
                return Ok(tools);
            }
        }
        bail!("tools/list: still a `nextCursor` after {MAX_PAGES} pages")
    }

    /// DELETE the session, if there is one (its outcome does not matter here).
    async fn close(&self) {
        let Some(sid) = &self.session else { return };
        let _ = self
            .http
            .delete(self.url)
            .headers(self.headers.clone())
            .header("Mcp-Session-Id", sid)
            .header("MCP-Protocol-Version", self.protocol.as_str())
            .send()
            .await;
    }

    /// Posts `body`; with `id`, the answer to it (a JSON-RPC error is an error), and the
    /// session id the target gave.
    async fn post(
        &self,
        body: &Value,
        method: &str,
        id: Option<u64>,
    ) -> anyhow::Result<(anyhow::Result<Value>, Option<String>)> {
        let mut rb = self
            .http
            .post(self.url)
            .headers(self.headers.clone())
            .header("Accept", "application/json, text/event-stream")
            .header("Content-Type", "application/json")
            .body(body.to_string());
        if method != "initialize" {
            rb = rb.header("MCP-Protocol-Version", self.protocol.as_str());
        }
        if let Some(sid) = &self.session {
            rb = rb.header("Mcp-Session-Id", sid);
        }
        if self.protocol == Protocol::V2026_07_28 {
            rb = rb.header("Mcp-Method", method);
        }
        let response = rb.send().await.with_context(|| method.to_string())?;
        let status = response.status();
        let header = |n: &str| {
            response
                .headers()
                .get(n)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let sid = header("mcp-session-id");
        let content_type = header("content-type").unwrap_or_default();
        let text = response.text().await.with_context(|| method.to_string())?;
        if !status.is_success() {
            let body: String = text.chars().take(200).collect();
            bail!("{method}: HTTP {status}: {body}");
        }
        let Some(id) = id else {
            return Ok((Ok(Value::Null), sid));
        };
        let answer = match mcp::parse_answer(&content_type, &text, id) {
            Ok(Answer::Result(r)) => Ok(r),
            Ok(Answer::Error(code, message)) => Err(anyhow!("JSON-RPC error {code}: {message}")),
            Err(invalid) => Err(anyhow!("{}: {}", invalid.tag(), invalid.detail())),
        };
        Ok((answer, sid))
    }
}

/// The mix tools (`calls`) the target does not list, as the harness error that names them
/// and the tools it offers; `None` when every one is listed.
pub fn missing_tools<'a>(
    calls: impl IntoIterator<Item = &'a str>,
    listed: &BTreeMap<String, Value>,
) -> Option<String> {
    let missing: Vec<&str> = calls
        .into_iter()
        .filter(|t| !listed.contains_key(*t))
        .collect();
    if missing.is_empty() {
        return None;
    }
    let offered: Vec<&str> = listed.keys().map(String::as_str).collect();
    Some(format!(
        "`load.mix` calls {} that the target does not list (tools/list offers: {})",
        missing
            .iter()
            .map(|t| format!("\"{t}\""))
            .collect::<Vec<_>>()
            .join(", "),
        if offered.is_empty() {
            "none".to_string()
        } else {
            offered.join(", ")
        }
    ))
}
