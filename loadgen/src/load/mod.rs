//! Load: one goose user per MCP client session, our own timing into hdrhistograms.
//!
//! goose runs the users (closed model: `users`, with ramp; open model: `rate`, each request
//! timed from its intended start, late starts counted). goose's own request times stop at the
//! response headers and are whole milliseconds, so every MCP request is timed here to the end
//! of its body, in µs, into [`Recorder`].
//!
//! The client fits any MCP server: a 2025-11-25 server may answer `initialize` without a
//! session id (then no session header and no DELETE); each kind of request has its own
//! timeout (`[load.timeouts]`), and a request given up on (timed out, or in flight when the
//! load stops) is cancelled with `notifications/cancelled`; sessions may hold the GET event
//! stream (`stream.rs`); tool arguments come from the tools' `inputSchema`s (`schema.rs`),
//! listed before the load (`discover.rs`) unless the scenario gives them.

pub mod discover;
pub mod mcp;
mod recorder;
pub mod schema;
mod session;
mod stream;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use goose::prelude::*;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde_json::{Value, json};

use crate::scenario::{Load, Op, OpKind, Protocol, Scenario as ScenarioFile, SessionEnd};
pub use recorder::{
    ClientCounters, EraCounts, LoadResult, OpStats, Recorder, Second, SessionFate, SessionRecord,
};
use session::{close, run_op};

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
    /// The scenario's `arguments`, by tool.
    pub arguments: BTreeMap<String, Value>,
    /// Tool → `inputSchema` as the target lists it: the arguments of a tool the scenario
    /// gives none for.
    pub schemas: BTreeMap<String, Value>,
    pub expect_errors: BTreeSet<String>,
    pub users: usize,
    pub rate: Option<f64>,
    pub ramp: Duration,
    pub duration: Duration,
    /// `[load]`, for its timeouts.
    pub load: Load,
    /// Each 2025-11-25 session holds the GET event stream.
    pub event_stream: bool,
    pub recorder: Arc<Recorder>,
    /// The last JSON-RPC id handed out: ids are unique across the whole load, not only
    /// within a session, so a stdio target's front can route a user's `notifications/cancelled`
    /// to the one request it names (`target::stdio`).
    ids: AtomicU64,
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
        let hm = header_map(headers)?;
        let arguments = scenario
            .load
            .arguments
            .iter()
            .map(|(k, v)| Ok((k.clone(), serde_json::to_value(v)?)))
            .collect::<anyhow::Result<_>>()?;
        let recorder = Arc::new(Recorder::new());
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
            load: scenario.load.clone(),
            event_stream: scenario.load.event_stream,
            recorder,
            schemas: BTreeMap::new(),
            ids: AtomicU64::new(0),
        })
    }

    /// A JSON-RPC id no other request of this load carries.
    pub fn next_id(&self) -> u64 {
        self.ids.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// The plan with the target's tool schemas (see [`discover`]).
    pub fn with_schemas(mut self, schemas: BTreeMap<String, Value>) -> Plan {
        self.schemas = schemas;
        self
    }

    /// The timeout of a request of `kind`.
    pub fn timeout(&self, kind: OpKind) -> Duration {
        self.load.timeout(kind)
    }

    /// When this round of the load stops (its start + ramp + duration + 1 s of grace): a
    /// request still in flight then is given up on and cancelled.
    pub fn stop_at(&self) -> Instant {
        let ramp = if self.rate.is_some() {
            Duration::ZERO
        } else {
            self.ramp
        };
        self.recorder.round_start() + ramp + self.duration + Duration::from_secs(1)
    }

    /// Resolves once the load is stopping: its end (plus grace) passed, or goose's
    /// killswitch was pulled (interrupt, an early end of the run).
    pub async fn stopping(&self) {
        loop {
            if goose::is_killswitch_triggered() {
                return;
            }
            let now = Instant::now();
            let stop_at = self.stop_at();
            if now >= stop_at {
                return;
            }
            tokio::time::sleep((stop_at - now).min(Duration::from_millis(100))).await;
        }
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
                let args = match (self.arguments.get(name), self.schemas.get(name)) {
                    (Some(given), _) => given.clone(),
                    (None, Some(schema)) => schema::arguments(schema, n),
                    (None, None) => json!({}),
                };
                Some(json!({ "name": name, "arguments": args }))
            }
        }
    }
}

/// The scenario's `[target] headers` as a header map.
pub fn header_map(headers: &BTreeMap<String, String>) -> anyhow::Result<HeaderMap> {
    let mut hm = HeaderMap::new();
    for (k, v) in headers {
        hm.insert(
            HeaderName::from_bytes(k.as_bytes())
                .map_err(|e| anyhow::anyhow!("header name {k:?}: {e}"))?,
            HeaderValue::from_str(v).map_err(|e| anyhow::anyhow!("header {k}: {e}"))?,
        );
    }
    Ok(hm)
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
    // goose's client-wide timeout must not cut a longer per-operation one (each request
    // sets its own, which reqwest lets override the client's)
    let longest = plan.load.longest_timeout().as_secs_f64().ceil() as u64 + 1;
    config.timeout = Some(format!("{longest}"));
    goose::reset_killswitch();
    plan.recorder.begin_round();
    let attacked = GooseAttack::initialize_with_config(config)?
        .register_scenario(scenario)
        .execute()
        .await;
    plan.recorder.end_round();
    attacked.map_err(|e| anyhow::anyhow!("goose: {e:?}"))?;
    Ok(plan.recorder.finish())
}
