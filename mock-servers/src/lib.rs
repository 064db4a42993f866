//! `mock-mcp`: a small, well-behaved MCP server used as the upstream in load
//! tests and in the proxy's integration tests.
//!
//! It serves four tools ([`MockTools`]):
//! - `echo { text }` → returns `text`;
//! - `add { a, b }` → returns the sum as text (`"5"` for `2 + 3`);
//! - `sleep { ms }` → sleeps (capped at 600 000 ms, aborted on request
//!   cancellation) and returns `"slept {ms}ms"`;
//! - `poke {}` → sends `notifications/tools/list_changed` to the caller and
//!   returns `"poked"`.
//!
//! Two transports are available: Streamable HTTP at `/mcp` via
//! [`MockServer`] (sessionful by default, or stateless with
//! [`MockConfig::stateless`]), and stdio via [`serve_stdio`]. The
//! `mock-mcp` binary wraps both (`mock-mcp serve`, `mock-mcp stdio`).

mod control;
pub mod faults;
mod http;
mod http_faults;
mod stdio;
mod tools;
pub mod wire;

pub use http::{MockConfig, MockServer};
pub use stdio::{CRASH_EXIT_CODE, serve_stdio};
pub use tools::{AddArgs, EchoArgs, MAX_SLEEP_MS, MockTools, SleepArgs};
