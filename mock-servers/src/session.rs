//! What the mock keeps per session (log level, the outcome of `--roots-on-initialized`), what
//! all sessions share, and the protocol-era test.
//!
//! A "session" is one handler instance: one stdio connection, one sessionful HTTP session (the
//! HTTP factory makes a fresh one per session), or one request of the stateless modes.

// rmcp marks logging deprecated (SEP-2577); the mock serves it on purpose.
#![allow(deprecated)]

use std::sync::{
    Arc, Mutex,
    atomic::{AtomicU64, Ordering},
};

use rmcp::{
    RoleServer,
    model::{LoggingLevel, ProtocolVersion},
    service::RequestContext,
};

use crate::resources::Subscriptions;

/// The minimum level of a 2025-11-25 session before it sends `logging/setLevel`. The spec
/// leaves what a server sends before `setLevel` to the server; the mock sends `info` and up.
pub const DEFAULT_LOG_LEVEL: LoggingLevel = LoggingLevel::Info;

/// State shared by every session of one mock.
#[derive(Debug, Default)]
pub struct Shared {
    /// The value of `mock://counter`.
    pub counter: AtomicU64,
    /// Resource subscriptions and listen streams.
    pub subscriptions: Subscriptions,
    next_session: AtomicU64,
}

/// What became of the `roots/list` a session's client is asked on `notifications/initialized`
/// (`--roots-on-initialized`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum InitialRoots {
    /// `notifications/initialized` not handled yet (or no session to ask).
    #[default]
    NotAsked,
    /// Sent, no answer yet.
    Pending,
    /// The roots' URIs.
    Answered(Vec<String>),
    /// Why there is no answer.
    Failed(String),
}

/// State of one session. Dropping it drops its resource subscriptions.
#[derive(Debug)]
pub struct Session {
    pub id: u64,
    log_level: Mutex<Option<LoggingLevel>>,
    initial_roots: Mutex<InitialRoots>,
    shared: Arc<Shared>,
}

impl Session {
    /// A new session of `shared`.
    pub fn new(shared: &Arc<Shared>) -> Self {
        Self {
            id: shared.next_session.fetch_add(1, Ordering::Relaxed),
            log_level: Mutex::new(None),
            initial_roots: Mutex::new(InitialRoots::NotAsked),
            shared: shared.clone(),
        }
    }

    /// The level set with `logging/setLevel`, or [`DEFAULT_LOG_LEVEL`].
    pub fn log_level(&self) -> LoggingLevel {
        self.log_level
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .unwrap_or(DEFAULT_LOG_LEVEL)
    }

    /// `logging/setLevel`.
    pub fn set_log_level(&self, level: LoggingLevel) {
        *self.log_level.lock().unwrap_or_else(|p| p.into_inner()) = Some(level);
    }

    /// The outcome of the `roots/list` asked on `notifications/initialized`.
    pub fn initial_roots(&self) -> InitialRoots {
        self.initial_roots
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Records the outcome of the `roots/list` asked on `notifications/initialized`.
    pub fn set_initial_roots(&self, outcome: InitialRoots) {
        *self.initial_roots.lock().unwrap_or_else(|p| p.into_inner()) = outcome;
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.shared.subscriptions.forget_session(self.id);
    }
}

/// RFC 5424 severity rank: `debug` 0 … `emergency` 7.
pub fn severity(level: LoggingLevel) -> u8 {
    match level {
        LoggingLevel::Debug => 0,
        LoggingLevel::Info => 1,
        LoggingLevel::Notice => 2,
        LoggingLevel::Warning => 3,
        LoggingLevel::Error => 4,
        LoggingLevel::Critical => 5,
        LoggingLevel::Alert => 6,
        LoggingLevel::Emergency => 7,
    }
}

/// Whether the request belongs to the 2026-07-28 era (or later): per-request `_meta`
/// protocol version first, else the version the session negotiated at `initialize`
/// (rmcp's [`RequestContext::protocol_version`]). No version at all counts as the old era.
pub fn is_2026_era(context: &RequestContext<RoleServer>) -> bool {
    context
        .protocol_version()
        .is_some_and(|v| v >= ProtocolVersion::V_2026_07_28)
}
