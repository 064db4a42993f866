//! The mock's handler type, [`MockTools`], and its tools (the ones that ask the client
//! something are in `client_requests.rs`; the `ServerHandler` impl is in `handler.rs`).

// rmcp marks logging deprecated (SEP-2577); the mock serves it on purpose.
#![allow(deprecated)]

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use rmcp::{
    ErrorData as McpError, Json, RoleServer,
    handler::server::{router::tool::ToolRouter, wrapper::Parameters},
    model::{
        CallToolResult, ContentBlock, LoggingLevel, LoggingMessageNotificationParam, MetaObject,
        ProgressNotificationParam,
    },
    service::RequestContext,
    tool, tool_router,
};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use crate::faults::FaultState;
use crate::paging::DEFAULT_PAGE_SIZE;
use crate::resources::{COUNTER_URI, ListKind};
use crate::session::{Session, Shared, is_2026_era, severity};

/// Upper bound for the `sleep` tool, in milliseconds (10 minutes).
pub const MAX_SLEEP_MS: u64 = 600_000;
/// Upper bound for the `progress` tool's `steps`.
pub const MAX_PROGRESS_STEPS: u32 = 10_000;
/// The logger name of the `log` tool's `notifications/message`.
pub const LOGGER: &str = "mock";
/// The `_meta` key under which the `meta` tool echoes the request's `_meta`.
pub const META_ECHO_KEY: &str = "mock/echo";

/// Every tool the mock serves, sorted (as `tools/list` returns them).
pub const TOOL_NAMES: [&str; 14] = [
    "add",
    "bump",
    "echo",
    "elicit",
    "fail",
    "initial_roots",
    "log",
    "meta",
    "poke",
    "progress",
    "roots",
    "sample",
    "sleep",
    "structured",
];

/// Arguments of the `echo` tool.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct EchoArgs {
    /// Text returned verbatim.
    pub text: String,
}

/// Arguments of the `add` tool.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct AddArgs {
    /// First addend.
    pub a: f64,
    /// Second addend.
    pub b: f64,
}

/// Arguments of the `sleep` tool.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct SleepArgs {
    /// How long to sleep, in milliseconds (capped at 600000).
    pub ms: u64,
}

/// Which list the `poke` tool says changed.
#[derive(Debug, Clone, Copy, Default, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum PokeWhat {
    /// `notifications/tools/list_changed` (the default).
    #[default]
    Tools,
    /// `notifications/resources/list_changed`.
    Resources,
    /// `notifications/prompts/list_changed`.
    Prompts,
}

/// Arguments of the `poke` tool.
#[derive(Debug, Default, Deserialize, JsonSchema)]
pub struct PokeArgs {
    /// `tools` (default), `resources` or `prompts`.
    #[serde(default)]
    pub what: Option<PokeWhat>,
}

/// Arguments of the `log` tool.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct LogArgs {
    /// The message's level.
    pub level: LoggingLevel,
    /// The message (sent as `data`).
    pub message: String,
}

/// Arguments of the `progress` tool.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct ProgressArgs {
    /// Number of progress notifications (capped at 10000).
    pub steps: u32,
    /// Pause between two steps, in milliseconds (capped at 600000).
    pub ms: u64,
}

/// Arguments of the `fail` tool.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct FailArgs {
    /// The text of the tool error.
    pub message: String,
}

/// Structured output of the `structured` tool.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct SumOutput {
    /// `a + b`.
    pub sum: f64,
}

/// The mock's [`ServerHandler`](rmcp::ServerHandler): tools, resources, prompts, completions
/// and logging, with the latency and the `list-changed-every` fault of its [`FaultState`].
///
/// Cheap to clone; clones share the counters, the fault state, the router and the session.
/// [`MockTools::new_session`] makes a handler for another session (same shared state, own
/// log level, subscriptions and initial roots). Ownership: the `list-changed-every` ticker of a
/// session and its `--roots-on-initialized` request run on `tasks` and end when the session's
/// transport closes or `stop` is cancelled (the request also after
/// [`INITIAL_ROOTS_TIMEOUT`](crate::INITIAL_ROOTS_TIMEOUT)).
#[derive(Debug, Clone)]
pub struct MockTools {
    calls: Arc<AtomicU64>,
    in_flight: Arc<AtomicU64>,
    pub(crate) tool_router: Arc<ToolRouter<MockTools>>,
    pub(crate) state: Arc<FaultState>,
    pub(crate) tasks: TaskTracker,
    pub(crate) stop: CancellationToken,
    pub(crate) shared: Arc<Shared>,
    pub(crate) session: Arc<Session>,
    pub(crate) page_size: usize,
    pub(crate) roots_on_initialized: bool,
}

impl Default for MockTools {
    fn default() -> Self {
        Self::new(Arc::default(), CancellationToken::new())
    }
}

impl MockTools {
    /// Creates the handler over `state`; background work stops when `stop` is cancelled.
    pub fn new(state: Arc<FaultState>, stop: CancellationToken) -> Self {
        let shared = Arc::new(Shared::default());
        Self {
            calls: Arc::new(AtomicU64::new(0)),
            in_flight: Arc::new(AtomicU64::new(0)),
            tool_router: Arc::new(Self::tool_router() + Self::client_request_router()),
            state,
            tasks: TaskTracker::new(),
            stop,
            session: Arc::new(Session::new(&shared)),
            shared,
            page_size: DEFAULT_PAGE_SIZE,
            roots_on_initialized: false,
        }
    }

    /// Sets the page size of `resources/list`, `resources/templates/list` and `prompts/list`
    /// (`0` = everything in one page).
    pub fn with_page_size(mut self, page_size: usize) -> Self {
        self.page_size = page_size;
        self
    }

    /// Asks each 2025-11-25 session's client for its roots (`roots/list`) on
    /// `notifications/initialized`; the `initial_roots` tool tells what came of it.
    pub fn with_roots_on_initialized(mut self, on: bool) -> Self {
        self.roots_on_initialized = on;
        self
    }

    /// A handler for a new session: shares everything but the session state.
    pub fn new_session(&self) -> Self {
        Self {
            session: Arc::new(Session::new(&self.shared)),
            ..self.clone()
        }
    }

    /// The page size of the paginated lists (`0` = no pagination).
    pub fn page_size(&self) -> usize {
        self.page_size
    }

    /// The fault state this handler reads.
    pub fn state(&self) -> &Arc<FaultState> {
        &self.state
    }

    /// Background tasks (list_changed tickers, `--roots-on-initialized` requests) still
    /// running.
    pub fn background_tasks(&self) -> usize {
        self.tasks.len()
    }

    /// Number of `tools/call` requests received so far (by this handler and its clones).
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    /// Number of `tools/call` requests currently executing (by this handler and its clones).
    pub fn in_flight(&self) -> u64 {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// The current value of `mock://counter`.
    pub fn counter(&self) -> u64 {
        self.shared.counter.load(Ordering::SeqCst)
    }

    /// Sessions with a `resources/subscribe` subscription, and open `subscriptions/listen`
    /// streams.
    pub fn subscriptions(&self) -> (usize, usize) {
        self.shared.subscriptions.counts()
    }

    pub(crate) fn count_call(&self) -> InFlightGuard {
        self.calls.fetch_add(1, Ordering::Relaxed);
        InFlightGuard::enter(&self.in_flight)
    }
}

/// Decrements the in-flight gauge when a call finishes or its future is dropped.
pub(crate) struct InFlightGuard(Arc<AtomicU64>);

impl InFlightGuard {
    fn enter(gauge: &Arc<AtomicU64>) -> Self {
        gauge.fetch_add(1, Ordering::Relaxed);
        Self(gauge.clone())
    }
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Formats a number without a trailing `.0` for integral values (`2 + 3` → `"5"`).
fn format_number(n: f64) -> String {
    // `Display` for f64 already prints integral values without a fraction.
    n.to_string()
}

fn notify_failed(e: impl std::fmt::Display) -> McpError {
    McpError::internal_error(format!("notify failed: {e}"), None)
}

fn cancelled() -> McpError {
    McpError::internal_error("request cancelled", None)
}

#[tool_router]
impl MockTools {
    /// Returns `text` unchanged.
    #[tool(description = "Echo the given text back")]
    async fn echo(&self, Parameters(EchoArgs { text }): Parameters<EchoArgs>) -> String {
        text
    }

    /// Returns the sum of `a` and `b`.
    #[tool(description = "Add two numbers and return the sum as text")]
    async fn add(&self, Parameters(AddArgs { a, b }): Parameters<AddArgs>) -> String {
        format_number(a + b)
    }

    /// Sleeps `ms` milliseconds unless the request is cancelled first.
    #[tool(description = "Sleep for `ms` milliseconds (max 600000), then reply")]
    async fn sleep(
        &self,
        Parameters(SleepArgs { ms }): Parameters<SleepArgs>,
        context: RequestContext<RoleServer>,
    ) -> Result<String, McpError> {
        let ms = ms.min(MAX_SLEEP_MS);
        tokio::select! {
            () = tokio::time::sleep(Duration::from_millis(ms)) => Ok(format!("slept {ms}ms")),
            () = context.ct.cancelled() => {
                tracing::debug!(ms, "sleep cancelled");
                Err(cancelled())
            }
        }
    }

    /// Sends a list_changed notification to the caller (and to listen streams that want it).
    #[tool(
        description = "Send notifications/{what}/list_changed (what: tools (default), resources, prompts)"
    )]
    async fn poke(
        &self,
        Parameters(PokeArgs { what }): Parameters<PokeArgs>,
        context: RequestContext<RoleServer>,
    ) -> Result<String, McpError> {
        let what = what.unwrap_or_default();
        let peer = &context.peer;
        let kind = match what {
            PokeWhat::Tools => {
                peer.notify_tool_list_changed()
                    .await
                    .map_err(notify_failed)?;
                ListKind::Tools
            }
            PokeWhat::Resources => {
                peer.notify_resource_list_changed()
                    .await
                    .map_err(notify_failed)?;
                ListKind::Resources
            }
            PokeWhat::Prompts => {
                peer.notify_prompt_list_changed()
                    .await
                    .map_err(notify_failed)?;
                ListKind::Prompts
            }
        };
        self.shared.subscriptions.list_changed(kind).await;
        Ok("poked".to_string())
    }

    /// Increments `mock://counter` and tells its subscribers.
    #[tool(
        description = "Increment mock://counter and notify its subscribers; returns the new value"
    )]
    async fn bump(&self) -> String {
        let value = self.shared.counter.fetch_add(1, Ordering::SeqCst) + 1;
        self.shared
            .subscriptions
            .resource_updated(COUNTER_URI)
            .await;
        value.to_string()
    }

    /// Sends `notifications/message` if `level` passes the session's (or request's) level.
    #[tool(description = "Send notifications/message at `level` unless filtered out")]
    async fn log(
        &self,
        Parameters(LogArgs { level, message }): Parameters<LogArgs>,
        context: RequestContext<RoleServer>,
    ) -> Result<String, McpError> {
        // 2026-07-28: the level comes with each request (`_meta` logLevel), and a request
        // without one gets no log messages. 2025-11-25: the session's setLevel.
        let threshold = if is_2026_era(&context) {
            context.meta.log_level()
        } else {
            Some(self.session.log_level())
        };
        match threshold {
            Some(min) if severity(level) >= severity(min) => {
                let params = LoggingMessageNotificationParam::new(level, Value::String(message))
                    .with_logger(LOGGER);
                context
                    .peer
                    .notify_logging_message(params)
                    .await
                    .map_err(notify_failed)?;
                Ok("logged".to_string())
            }
            _ => Ok("filtered".to_string()),
        }
    }

    /// Reports `steps` progress notifications, `ms` apart, if the request has a token.
    #[tool(description = "Send `steps` progress notifications `ms` apart, then reply")]
    async fn progress(
        &self,
        Parameters(ProgressArgs { steps, ms }): Parameters<ProgressArgs>,
        context: RequestContext<RoleServer>,
    ) -> Result<String, McpError> {
        let steps = steps.min(MAX_PROGRESS_STEPS);
        let pause = Duration::from_millis(ms.min(MAX_SLEEP_MS));
        let token = context.meta.get_progress_token();
        for step in 1..=steps {
            if step > 1 {
                tokio::select! {
                    () = tokio::time::sleep(pause) => {}
                    () = context.ct.cancelled() => return Err(cancelled()),
                }
            }
            if let Some(token) = &token {
                let params = ProgressNotificationParam::new(token.clone(), f64::from(step))
                    .with_total(f64::from(steps))
                    .with_message(format!("step {step}/{steps}"));
                context
                    .peer
                    .notify_progress(params)
                    .await
                    .map_err(notify_failed)?;
            }
        }
        Ok(format!("done {steps} steps"))
    }

    /// Returns `{ "sum": a + b }` as structured content (and as text).
    #[tool(description = "Add two numbers; structured output { sum }")]
    async fn structured(
        &self,
        Parameters(AddArgs { a, b }): Parameters<AddArgs>,
    ) -> Json<SumOutput> {
        Json(SumOutput { sum: a + b })
    }

    /// Returns a tool error (`isError: true`) with `message`.
    #[tool(description = "Return a tool error with `message`")]
    async fn fail(&self, Parameters(FailArgs { message }): Parameters<FailArgs>) -> CallToolResult {
        CallToolResult::error(vec![ContentBlock::text(message)])
    }

    /// Echoes the request's `_meta` (without `progressToken`) in the result's `_meta`.
    #[tool(description = "Echo the request's _meta in the result's _meta under \"mock/echo\"")]
    async fn meta(&self, context: RequestContext<RoleServer>) -> CallToolResult {
        let mut echoed = context.meta.0.0.clone();
        echoed.remove("progressToken");
        let text = Value::Object(echoed.clone()).to_string();
        let mut meta = MetaObject::default();
        meta.0
            .insert(META_ECHO_KEY.to_string(), Value::Object(echoed));
        CallToolResult::success(vec![ContentBlock::text(text)]).with_meta(Some(meta))
    }
}

#[cfg(test)]
mod tests {
    use super::{MockTools, TOOL_NAMES, format_number};

    #[test]
    fn integral_sums_have_no_fraction() {
        assert_eq!(format_number(2.0 + 3.0), "5");
        assert_eq!(format_number(-4.0), "-4");
        assert_eq!(format_number(0.5 + 2.0), "2.5");
        assert_eq!(format_number(1e21), "1000000000000000000000");
    }

    #[test]
    fn tool_names_match_the_router() {
        let tools = MockTools::default();
        let names: Vec<String> = tools
            .tool_router
            .list_all()
            .into_iter()
            .map(|t| t.name.to_string())
            .collect();
        assert_eq!(names, TOOL_NAMES);
    }
}
