//! What every [`super::ProxyHandler`] works with (shared by all handlers of all instances), and
//! what the HTTP entry hands each request ([`ClientGone`], [`AdmittedConfig`], [`AdmittedKey`]).

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::data::cache::Caches;
use crate::domain::model::InstanceConfig;
use crate::ops::metrics::Metrics;
use crate::sessions::Sessions;
use crate::upstream::manager::ConnectionManager;

/// The bounds a handler applies (from the proxy's settings).
#[derive(Clone, Debug)]
pub struct McpSettings {
    /// Whole-request timeout.
    pub request_timeout: Duration,
    /// One upstream call's timeout.
    pub call_timeout: Duration,
    /// Items per page of the proxy's own merged lists.
    pub list_page_size: usize,
}

/// The parts of the proxy a handler uses; built once by the composition root.
pub struct McpState {
    pub settings: McpSettings,
    pub metrics: Arc<Metrics>,
    /// Config, merged lists, and what each upstream offers and each instance advertised.
    pub caches: Arc<Caches>,
    pub pool: Arc<ConnectionManager>,
    pub sessions: Arc<Sessions>,
    /// Where deferred work runs; shutdown waits for it.
    pub tracker: TaskTracker,
    /// Cancelled after the drain: ends every downstream session and stream.
    pub sessions_ct: CancellationToken,
}

/// Cancelled when the HTTP exchange that carried a request ends: its response body was
/// dropped, finished or not (the client went away mid-stream, or the answer was sent), or the
/// exchange was dropped before a response existed. The HTTP entry puts it in the request;
/// handlers stop upstream work on it.
#[derive(Clone, Default)]
pub struct ClientGone(pub CancellationToken);

/// The instance config the HTTP entry loaded to admit a request, handed to the handler in the
/// request's extensions so one request loads its config once.
#[derive(Clone)]
pub struct AdmittedConfig(pub Arc<InstanceConfig>);

/// The SHA-256 of the key the HTTP entry authenticated a request with; the session manager
/// binds a session to the key whose `initialize` opened it.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct AdmittedKey(pub [u8; 32]);
