//! `mcp-proxy`: one Streamable HTTP MCP endpoint per instance (`/mcp/{instance_id}`) that
//! aggregates the tools of several upstream MCP servers (Streamable HTTP or stdio children),
//! authenticates callers by API key against a SQL store, caches config, and owns every upstream
//! connection so that none can leak. See `ARCHITECTURE.md` for the code map and invariants.

pub mod auth;
pub mod cache;
pub mod capabilities;
pub mod catalog;
pub mod error;
pub mod handler;
pub mod invalidation;
pub mod memory;
pub mod metrics;
pub mod model;
pub mod origin;
#[cfg(feature = "planted-leaks")]
pub mod planted;
pub mod router;
pub mod seed;
pub mod server;
pub mod sessions;
pub mod settings;
pub mod shutdown;
pub mod state;
pub mod store;
pub mod upstream;
pub mod usage;

pub use server::{RunningProxy, start};
pub use settings::Settings;
