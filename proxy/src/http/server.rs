//! The HTTP/1.1 server: the accept loop and every client connection, each served by hyper on a
//! task this server owns.
//!
//! - Up to `max_connections` connections are served in full. Past that, at most
//!   [`OPS_RESERVE`] more are served one request each, on the ops routes only (`/health`,
//!   `/ready`, `/metrics`; anything else is refused `too_many_connections`), with a 1 s head
//!   timeout; a new one past the reserve cuts the reserve's oldest ([`Reserve`]). So the
//!   probes stay answerable in a flood, and the fds in use stay within the budget the cap was
//!   derived from.
//! - A request head must be complete within `header_read_timeout`; a kept-alive connection with
//!   nothing to do is closed after `keep_alive_timeout` ([`head_timer`](super::head_timer)).
//! - Accept errors (out of fds, aborted handshakes) never end the server: logged at most every
//!   5 s and counted, with a 100 ms pause when the process (or system) is out of fds.
//! - On the shutdown token: no more accepts, each connection ends after its current response
//!   (hyper's graceful shutdown), and `serve` returns when the last one has. Dropping the
//!   `serve` future (the caller aborts it at the deadline) drops the `JoinSet`, which cuts every
//!   connection.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use prometheus_client::metrics::gauge::Gauge;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::head_timer::{ConnTimer, HeadClock, Watched};
use crate::ops::metrics::{Kind, Metrics, Reason};

/// Connections past `max_connections` still served for `/health`, `/ready` and `/metrics`.
pub const OPS_RESERVE: usize = 16;
/// The head timeout of a reserve connection (at most; `header_read_timeout` if shorter).
const OPS_HEADER_TIMEOUT: Duration = Duration::from_secs(1);
/// The pause after an accept error other than an aborted handshake.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
/// At most one log line per this long for accept errors.
const ACCEPT_LOG_EVERY: Duration = Duration::from_secs(5);

/// The server's limits, built by the composition root.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub header_read_timeout: Duration,
    pub keep_alive_timeout: Duration,
    pub max_connections: usize,
}

/// What connections are served with: every route, and the ops routes alone (for the reserve).
#[derive(Clone)]
pub struct Routes {
    pub full: Router,
    pub ops: Router,
}

/// Which slot a connection holds: a place under the cap, or one in the reserve.
enum Slot {
    Full { _permit: OwnedSemaphorePermit },
    Reserve(ReserveSlot),
}

impl Slot {
    fn kind(&self) -> Kind {
        kind(match self {
            Slot::Full { .. } => "full",
            Slot::Reserve(_) => "reserve",
        })
    }
}

/// The reserve's connections, oldest first. A new one past [`OPS_RESERVE`] cuts the oldest, so
/// a flood past the cap cannot keep a probe out: each connection there lives until its one
/// answer, its 1 s head timeout, or [`OPS_RESERVE`] newer connections, whichever comes first.
#[derive(Default)]
struct Reserve {
    held: Mutex<VecDeque<(u64, CancellationToken)>>,
    next_id: AtomicU64,
}

impl Reserve {
    /// A place for a new connection; `true` when the oldest was cut for it.
    fn admit(self: &Arc<Self>) -> (ReserveSlot, bool) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let cut = CancellationToken::new();
        let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        let evicted = held.len() >= OPS_RESERVE;
        if evicted && let Some((_, oldest)) = held.pop_front() {
            oldest.cancel();
        }
        held.push_back((id, cut.clone()));
        let slot = ReserveSlot {
            reserve: self.clone(),
            id,
            cut,
        };
        (slot, evicted)
    }
}

/// A place in the [`Reserve`], given back on drop.
struct ReserveSlot {
    reserve: Arc<Reserve>,
    id: u64,
    cut: CancellationToken,
}

impl Drop for ReserveSlot {
    fn drop(&mut self) {
        let mut held = self
            .reserve
            .held
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        held.retain(|(id, _)| *id != self.id);
    }
}

/// Accepts and serves until `stop` is cancelled and every connection has ended.
pub async fn serve(
    listener: TcpListener,
    routes: Routes,
    config: ServerConfig,
    metrics: Arc<Metrics>,
    stop: CancellationToken,
) {
    let full = Arc::new(Semaphore::new(config.max_connections));
    let reserve = Arc::new(Reserve::default());
    let mut conns = JoinSet::new();
    let mut errors = AcceptErrors::default();
    loop {
        let (tcp, peer) = tokio::select! {
            biased;
            _ = stop.cancelled() => break,
            Some(done) = conns.join_next(), if !conns.is_empty() => {
                if let Err(e) = done {
                    tracing::error!(error = %e, "connection task failed");
                }
                continue;
            }
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    errors.note(&e, &metrics).await;
                    continue;
                }
            },
        };
        let _ = tcp.set_nodelay(true);
        let slot = match full.clone().try_acquire_owned() {
            Ok(permit) => Slot::Full { _permit: permit },
            Err(_) => {
                let (slot, evicted) = reserve.admit();
                if evicted {
                    metrics
                        .connections
                        .refused
                        .get_or_create(&reason("cap"))
                        .inc();
                }
                Slot::Reserve(slot)
            }
        };
        let conn = Connection::open(slot, metrics.clone());
        conns.spawn(conn.serve(tcp, peer, routes.clone(), config.clone(), stop.clone()));
    }
    drop(listener);
    while let Some(done) = conns.join_next().await {
        if let Err(e) = done {
            tracing::error!(error = %e, "connection task failed");
        }
    }
}

fn kind(kind: &'static str) -> Kind {
    Kind { kind }
}

fn reason(reason: &'static str) -> Reason {
    Reason { reason }
}

/// One client connection: its slot and its place in the open-connections gauge, both given
/// back on drop (also when the task is aborted).
struct Connection {
    slot: Slot,
    metrics: Arc<Metrics>,
    open: Gauge,
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.open.dec();
    }
}

impl Connection {
    fn open(slot: Slot, metrics: Arc<Metrics>) -> Connection {
        let open = metrics.connections.open.get_or_create(&slot.kind()).clone();
        open.inc();
        Connection {
            slot,
            metrics,
            open,
        }
    }

    async fn serve(
        self,
        tcp: TcpStream,
        peer: SocketAddr,
        routes: Routes,
        config: ServerConfig,
        stop: CancellationToken,
    ) {
        let clock = Arc::new(HeadClock::default());
        let (router, header, keep_alive, cut) = match &self.slot {
            Slot::Full { .. } => (
                routes.full,
                config.header_read_timeout,
                true,
                CancellationToken::new(),
            ),
            Slot::Reserve(place) => (
                routes.ops,
                config.header_read_timeout.min(OPS_HEADER_TIMEOUT),
                false,
                place.cut.clone(),
            ),
        };
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .timer(ConnTimer {
                clock: clock.clone(),
                header,
                idle: config.keep_alive_timeout,
            })
            .header_read_timeout(header)
            .keep_alive(keep_alive);
        let io = TokioIo::new(Watched {
            io: tcp,
            clock: clock.clone(),
        });
        // each request carries the peer's address (the refused-key log names it)
        let router = router.layer(axum::Extension(ConnectInfo(peer)));
        let conn = builder.serve_connection(io, TowerToHyperService::new(router));
        tokio::pin!(conn);
        let result = tokio::select! {
            result = conn.as_mut() => result,
            // a newer reserve connection took the place: cut
            _ = cut.cancelled() => return,
            _ = stop.cancelled() => {
                conn.as_mut().graceful_shutdown();
                conn.await
            }
        };
        if let Some(phase) = clock.fired() {
            self.metrics
                .connections
                .timeouts
                .get_or_create(&kind(phase.as_str()))
                .inc();
        } else if let Err(e) = result {
            tracing::debug!(error = %e, "client connection ended with an error");
        }
    }
}

/// Accept errors: counted, logged at most every [`ACCEPT_LOG_EVERY`] with the count since.
#[derive(Default)]
struct AcceptErrors {
    last_log: Option<Instant>,
    since_log: u64,
}

impl AcceptErrors {
    async fn note(&mut self, e: &std::io::Error, metrics: &Metrics) {
        use std::io::ErrorKind as K;
        // A handshake the client gave up on: nothing to wait for.
        if matches!(
            e.kind(),
            K::ConnectionAborted | K::ConnectionReset | K::ConnectionRefused
        ) {
            return;
        }
        metrics
            .connections
            .refused
            .get_or_create(&reason("accept_error"))
            .inc();
        self.since_log += 1;
        if self
            .last_log
            .is_none_or(|at| at.elapsed() >= ACCEPT_LOG_EVERY)
        {
            tracing::warn!(
                error = %e,
                errors = self.since_log,
                "accept failed; pausing briefly (out of file descriptors? see --max-connections)"
            );
            self.last_log = Some(Instant::now());
            self.since_log = 0;
        }
        tokio::time::sleep(ACCEPT_BACKOFF).await;
    }
}
