//! `mock-mcp`: a small, well-behaved MCP server used as the upstream in load
//! tests and in the proxy's integration tests. It serves the whole MCP surface, in both
//! protocol eras (2025-11-25 sessions via `initialize`, 2026-07-28 via `server/discover`).
//!
//! Tools ([`MockTools`], [`TOOL_NAMES`]):
//! - `echo { text }` → returns `text`;
//! - `add { a, b }` → returns the sum as text (`"5"` for `2 + 3`);
//! - `sleep { ms }` → sleeps (capped at 600 000 ms, aborted on request
//!   cancellation) and returns `"slept {ms}ms"`;
//! - `poke { what? }` → sends `notifications/{tools|resources|prompts}/list_changed`
//!   (`what`: `tools` by default) to the caller, and to every `subscriptions/listen` stream
//!   that accepted it; returns `"poked"`;
//! - `bump {}` → increments `mock://counter`, sends `notifications/resources/updated` to
//!   every session subscribed to it and every listen stream that asked for it; returns the
//!   new value;
//! - `log { level, message }` → sends `notifications/message` (logger `"mock"`, `data` =
//!   message) if `level` is at or above the threshold, returns `"logged"` or `"filtered"`.
//!   2025-11-25: the session's `logging/setLevel`, [`DEFAULT_LOG_LEVEL`] (`info`) before one
//!   (the spec leaves that to the server). 2026-07-28: the request's `_meta`
//!   `io.modelcontextprotocol/logLevel`; without one nothing is sent (and `logging/setLevel`
//!   is method-not-found in that era);
//! - `progress { steps, ms }` → with a `progressToken`, sends progress `1..=steps` (total
//!   `steps`, message `"step i/N"`), `ms` apart; returns `"done {steps} steps"`;
//! - `sample { prompt }`, `elicit { message }`, `roots {}` → ask the client
//!   (`sampling/createMessage` with maxTokens 100, an `elicitation/create` form for
//!   `{name: string}`, `roots/list`) and return `"sampled: {reply}"`,
//!   `"accepted: {content}"`/`"declined"`/`"cancelled"`, or the roots' URIs joined by `,`.
//!   2025-11-25: a server→client request in the call; 2026-07-28: an `InputRequiredResult`
//!   and the answer on the retry (MRTR). A client without the capability gets a tool error;
//! - `initial_roots {}` → with [`MockConfig::roots_on_initialized`]
//!   (`--roots-on-initialized`), the mock sends `roots/list` to each 2025-11-25 session's
//!   client on `notifications/initialized`, outside any request (so on the session's GET
//!   stream), and waits for the answer (at most [`INITIAL_ROOTS_TIMEOUT`], 30 s, or until the
//!   session or the mock ends); this tool returns the calling session's outcome: the roots'
//!   URIs joined by `,`, `"pending"` while waiting, `"error: ..."` if the request failed (or
//!   the client has no roots capability), `"off"` without the flag;
//! - `structured { a, b }` → structured content `{ "sum": a + b }` (with an output schema);
//! - `fail { message }` → a tool error (`isError: true`) with `message`;
//! - `meta {}` → the result's `_meta` is `{ "mock/echo": <the request's _meta without
//!   progressToken> }`.
//!
//! Resources (pages of `page_size` items, [`DEFAULT_PAGE_SIZE`] = 2, cursor = decimal
//! offset; a bad cursor is invalid-params naming it): `mock://static/readme`,
//! `mock://static/config.json`, `mock://static/logo.png` (blob), `mock://counter`
//! (subscribable: `resources/subscribe` in 2025-11-25, `subscriptions/listen` in 2026-07-28),
//! and the template `mock://items/{id}` (`"item {id}"`); any other URI is resource-not-found.
//! Prompts (paginated the same way): `greet { name, style? }`, `summarize { topic }`,
//! `plain`. Completions for `greet`'s `style` and `name` and the template's `id`.
//!
//! Two transports are available: Streamable HTTP at `/mcp` via
//! [`MockServer`] (sessionful by default, or stateless with
//! [`MockConfig::stateless`]), and stdio via [`serve_stdio`]. The
//! `mock-mcp` binary wraps both (`mock-mcp serve`, `mock-mcp stdio`, each with
//! `--page-size N` and `--roots-on-initialized`). The HTTP mock serves `https://` with
//! [`MockConfig::tls`] (`--tls-cert`/`--tls-key`; [`tls`]), and asks for credentials with
//! [`MockConfig::require_headers`] (`--require-header "Name: value"`, repeatable: a request
//! without them gets 401, counted in `GET /control`'s `unauthorized`). With
//! [`MockConfig::legacy_sse`] (`--legacy-sse`) it also serves the 2024-11-05 HTTP+SSE
//! transport: `GET /sse` ([`MockServer::sse_url`]) and `POST /messages?session_id=ID`, with
//! the same faults, header check and TLS.

mod client_requests;
mod control;
pub mod faults;
mod handler;
mod http;
mod http_faults;
mod legacy_sse;
mod paging;
pub mod prompts;
#[cfg(feature = "test-support")]
pub mod recorder;
mod require_header;
pub mod resources;
mod session;
mod stats_file;
mod stdio;
pub mod tls;
mod tools;
#[cfg(feature = "test-support")]
pub mod wire;

pub use client_requests::{
    ElicitArgs, INITIAL_ROOTS_TIMEOUT, SAMPLE_MAX_TOKENS, SampleArgs, elicit_schema,
};
pub use http::{MockConfig, MockServer};
pub use paging::DEFAULT_PAGE_SIZE;
pub use require_header::RequiredHeader;
pub use session::DEFAULT_LOG_LEVEL;
pub use stats_file::{STATS_DIR_ENV, stats_dir};
pub use stdio::{CRASH_EXIT_CODE, serve_stdio};
pub use tools::{
    AddArgs, EchoArgs, FailArgs, LOGGER, LogArgs, MAX_PROGRESS_STEPS, MAX_SLEEP_MS, META_ECHO_KEY,
    MockTools, PokeArgs, PokeWhat, ProgressArgs, SleepArgs, SumOutput, TOOL_NAMES,
};
