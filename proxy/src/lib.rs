//! `mcp-proxy`: one Streamable HTTP MCP endpoint per instance (`/mcp/{instance_id}`) that
//! aggregates the tools of several upstream MCP servers (Streamable HTTP or stdio children),
//! authenticates callers by API key against a SQL store, caches config, and owns every upstream
//! connection so that none can leak. See `ARCHITECTURE.md` for the code map and invariants.
//!
//! Layers, top-down (a module imports only from layers below it, and from `ops`):
//! [`app`] (composition root) → [`http`] (routes, entry, origin) → [`mcp`] (the rmcp
//! `ServerHandler`) → [`sessions`] → [`upstream`] → [`data`] (store, caches, invalidation) →
//! [`domain`] (pure); [`ops`] (metrics, memory, backoff) beside them all.
//! `tests/architecture.rs` keeps these rules.

pub mod app;
pub mod data;
pub mod domain;
pub mod http;
pub mod mcp;
pub mod ops;
pub mod sessions;
pub mod upstream;

pub use app::settings::{self, Settings};
pub use app::start::{RunningProxy, start};
