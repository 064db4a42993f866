//! Planted leaks: the six failures the merge gate exists to catch, each switched on by
//! `MCP_PROXY_PLANTED_LEAK=<name>` in a binary built with the cargo feature `planted-leaks`
//! (off by default: normal builds do not contain this module or any of its call sites).
//! `ci/planted-leaks.sh` builds such a binary and shows the gate fails on each one.
//!
//! | name | the bug | where | what the gate sees |
//! |---|---|---|---|
//! | `connect-error` | a client not closed when its connect fails: its task lives on | `upstream::UpstreamClient::connect` | `tokio.alive_tasks` grows per failed connect |
//! | `stdio-reap` | a stdio child spawned and never waited on | `upstream::stdio::spawn` | zombies, children |
//! | `sse-task` | a response's work not cancelled when its client goes away | `server` (the `ClientGone` guard) | tasks and upstream sockets outlive their clients |
//! | `timer` | a per-session interval never cleared | `sessions::Sessions::open` | `tokio.alive_tasks` grows per session |
//! | `sessions` | sessions never reaped (no idle TTL) | `state` (the session manager) | `sessions` stays up |
//! | `sse-upstream` | a legacy SSE upstream's event stream read by a task not tied to its connection | `upstream::legacy_sse::connect` | the stream's task and socket outlive every closed connection |

use std::sync::OnceLock;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Leak {
    ConnectError,
    StdioReap,
    SseTask,
    Timer,
    Sessions,
    SseUpstream,
}

impl Leak {
    pub const ALL: [Leak; 6] = [
        Leak::ConnectError,
        Leak::StdioReap,
        Leak::SseTask,
        Leak::Timer,
        Leak::Sessions,
        Leak::SseUpstream,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Leak::ConnectError => "connect-error",
            Leak::StdioReap => "stdio-reap",
            Leak::SseTask => "sse-task",
            Leak::Timer => "timer",
            Leak::Sessions => "sessions",
            Leak::SseUpstream => "sse-upstream",
        }
    }
}

pub const ENV: &str = "MCP_PROXY_PLANTED_LEAK";

/// The leak switched on for this process, read once.
pub fn current() -> Option<Leak> {
    static CURRENT: OnceLock<Option<Leak>> = OnceLock::new();
    *CURRENT.get_or_init(|| {
        let value = std::env::var(ENV).ok()?;
        let leak = Leak::ALL.into_iter().find(|l| l.name() == value);
        match leak {
            Some(l) => tracing::warn!(leak = l.name(), "PLANTED LEAK ACTIVE (a test build)"),
            None => tracing::error!(
                %value,
                "{ENV}: unknown leak; expected one of connect-error, stdio-reap, sse-task, timer, sessions, sse-upstream"
            ),
        }
        leak
    })
}

pub fn active(leak: Leak) -> bool {
    current() == Some(leak)
}
