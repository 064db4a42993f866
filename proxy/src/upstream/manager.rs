//! The connection manager: which client serves a request, who owns it, and when it closes.
//!
//! Modes (per upstream): `shared` — one client per instance × upstream, owned by its slot here,
//! connected single-flight, reconnected with backoff when the upstream drops it, reaped when
//! idle; `per-session` — the same slot logic, but the slots belong to one downstream session
//! ([`SessionUpstreams`]) and close with it; `per-request` — a fresh client owned by the
//! request's [`Lease`], closed when the lease ends (also when the request is cancelled).
//!
//! Every connect goes through [`ConnectionManager::connect_once`]: refused while shutting
//! down, failed fast while the upstream's circuit is open, refused past the connection limit
//! (the client holds its permit until it is closed), then counted by the breaker.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::breaker::{Breaker, BreakerPolicy};
use super::{ConnectContext, Era, SessionLink, UpstreamClient, UpstreamError};
use crate::domain::model::{ConnectionMode, UpstreamConfig};
use crate::ops::backoff::Backoff;

/// Limits and timings of the manager (from `Settings`).
#[derive(Debug, Clone, Copy)]
pub struct ManagerPolicy {
    /// Upstream connections open at once, all modes together.
    pub max_connections: usize,
    /// Shared clients unused this long are closed by the sweep.
    pub idle_timeout: Duration,
    pub reconnect: Backoff,
    pub breaker: BreakerPolicy,
}

/// A client slot: empty, or holding the client that serves its key. Its async lock is held
/// across connect, which is the single-flight.
#[derive(Default)]
struct Slot {
    client: tokio::sync::Mutex<Option<Arc<UpstreamClient>>>,
}

pub struct ConnectionManager {
    slots: Mutex<HashMap<(String, String, Era), Arc<Slot>>>,
    breakers: Mutex<HashMap<String, Breaker>>,
    permits: Arc<Semaphore>,
    policy: ManagerPolicy,
    ctx: ConnectContext,
    tracker: TaskTracker,
    shutting_down: AtomicBool,
}

/// A client borrowed for one request.
pub struct Lease {
    client: Arc<UpstreamClient>,
    /// Per-request clients are closed when the lease ends; slot clients stay in their slot.
    owned: bool,
    released: bool,
    tracker: TaskTracker,
}

impl std::ops::Deref for Lease {
    type Target = UpstreamClient;
    fn deref(&self) -> &UpstreamClient {
        &self.client
    }
}

impl Lease {
    /// Ends the lease, closing a per-request client before returning.
    pub async fn release(mut self) {
        self.released = true;
        self.client.touch();
        if self.owned {
            self.client.close().await;
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if self.owned && !self.released {
            let client = self.client.clone();
            self.tracker.spawn(async move { client.close().await });
        }
    }
}

/// The upstream clients of one downstream session (`per-session` mode), keyed by upstream.
/// Owned by the session's scope; dropping it closes every client it holds.
pub struct SessionUpstreams {
    slots: Mutex<HashMap<String, Arc<Slot>>>,
    tracker: TaskTracker,
    /// The session its clients serve (their server requests and notifications go there).
    link: Option<SessionLink>,
}

impl SessionUpstreams {
    pub fn new(tracker: TaskTracker, link: Option<SessionLink>) -> Self {
        Self {
            slots: Mutex::default(),
            tracker,
            link,
        }
    }

    fn slot(&self, upstream: &str) -> Arc<Slot> {
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        slots.entry(upstream.to_string()).or_default().clone()
    }
}

impl Drop for SessionUpstreams {
    fn drop(&mut self) {
        let slots: Vec<Arc<Slot>> = self
            .slots
            .get_mut()
            .unwrap_or_else(|p| p.into_inner())
            .drain()
            .map(|(_, s)| s)
            .collect();
        if slots.is_empty() {
            return;
        }
        self.tracker.spawn(async move {
            for slot in slots {
                if let Some(client) = slot.client.lock().await.take() {
                    client.close().await;
                }
            }
        });
    }
}

impl ConnectionManager {
    pub fn new(ctx: ConnectContext, policy: ManagerPolicy, tracker: TaskTracker) -> Self {
        Self {
            slots: Mutex::default(),
            breakers: Mutex::default(),
            permits: Arc::new(Semaphore::new(policy.max_connections)),
            policy,
            ctx,
            tracker,
            shutting_down: AtomicBool::new(false),
        }
    }

    /// A client for `upstream` serving `instance_id`, per the upstream's connection mode.
    /// `session` is the downstream session's own clients; without one (a 2026-07-28 request,
    /// which has no session) `per-session` behaves as `per-request`. `era` is the caller's: a
    /// shared slot per era (a session's own clients are of the session era).
    pub async fn acquire(
        &self,
        instance_id: &str,
        upstream: &UpstreamConfig,
        session: Option<&SessionUpstreams>,
        era: Era,
    ) -> Result<Lease, UpstreamError> {
        let era = if session.is_some() && upstream.connection == ConnectionMode::PerSession {
            Era::Sessions
        } else {
            era
        };
        let slot = match (upstream.connection, session) {
            (ConnectionMode::Shared, _) => Some(self.shared_slot(instance_id, &upstream.name, era)),
            (ConnectionMode::PerSession, Some(session)) => Some(session.slot(&upstream.name)),
            (ConnectionMode::PerSession, None) | (ConnectionMode::PerRequest, _) => None,
        };
        let link = match upstream.connection {
            ConnectionMode::PerSession => session.and_then(|s| s.link.as_ref()),
            _ => None,
        };
        let (client, owned) = match slot {
            Some(slot) => (
                self.slot_client(&slot, instance_id, upstream, link, era)
                    .await?,
                false,
            ),
            None => (
                Arc::new(self.connect_once(instance_id, upstream, link, era).await?),
                true,
            ),
        };
        client.touch();
        Ok(Lease {
            client,
            owned,
            released: false,
            tracker: self.tracker.clone(),
        })
    }

    fn shared_slot(&self, instance_id: &str, upstream: &str, era: Era) -> Arc<Slot> {
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        slots
            .entry((instance_id.to_string(), upstream.to_string(), era))
            .or_default()
            .clone()
    }

    /// The slot's client if it is alive and current; otherwise closes what is there and
    /// connects (with backoff if the upstream dropped a live connection). Concurrent callers
    /// wait on the slot's lock for the one connect.
    async fn slot_client(
        &self,
        slot: &Slot,
        instance_id: &str,
        upstream: &UpstreamConfig,
        link: Option<&SessionLink>,
        era: Era,
    ) -> Result<Arc<UpstreamClient>, UpstreamError> {
        let mut guard = slot.client.lock().await;
        let mut dropped = false;
        if let Some(client) = guard.as_ref() {
            if !client.is_closed() && client.config() == upstream {
                return Ok(client.clone());
            }
            dropped = client.dropped_by_upstream();
            if dropped {
                tracing::warn!(upstream = %upstream.name, "upstream dropped the connection; reconnecting");
            }
            // Dead, or its config changed: close it (idempotent) off the request's path.
            let stale = guard.take().expect("checked above");
            self.tracker.spawn(async move { stale.close().await });
        }
        let client = if dropped {
            self.reconnect(instance_id, upstream, link, era).await?
        } else {
            Arc::new(self.connect_once(instance_id, upstream, link, era).await?)
        };
        *guard = Some(client.clone());
        Ok(client)
    }

    /// Reconnects after the upstream dropped a live connection: up to `max_attempts`
    /// connects with exponential backoff and jitter between them; then gives up and reports.
    async fn reconnect(
        &self,
        instance_id: &str,
        upstream: &UpstreamConfig,
        link: Option<&SessionLink>,
        era: Era,
    ) -> Result<Arc<UpstreamClient>, UpstreamError> {
        let backoff = self.policy.reconnect;
        let attempts = backoff.max_attempts.max(1);
        let mut last = String::new();
        for attempt in 0..attempts {
            if attempt > 0 {
                tokio::time::sleep(backoff.delay(attempt - 1)).await;
            }
            match self.connect_once(instance_id, upstream, link, era).await {
                Ok(client) => {
                    self.ctx
                        .metrics
                        .upstream_connect(&upstream.name, "reconnected");
                    return Ok(Arc::new(client));
                }
                Err(
                    // waiting does not change a refused credential: no loop of refusals
                    e @ (UpstreamError::CircuitOpen { .. }
                    | UpstreamError::TooManyConnections { .. }
                    | UpstreamError::ShuttingDown { .. }
                    | UpstreamError::CredentialRefused { .. }),
                ) => return Err(e),
                Err(e) => last = e.to_string(),
            }
        }
        tracing::error!(upstream = %upstream.name, attempts, last = %last, "gave up reconnecting");
        self.ctx.metrics.upstream_connect(&upstream.name, "gave_up");
        Err(UpstreamError::GaveUp {
            upstream: upstream.name.clone(),
            attempts,
            last,
        })
    }

    /// One connect attempt, through the shutdown flag, the breaker and the connection limit.
    async fn connect_once(
        &self,
        instance_id: &str,
        upstream: &UpstreamConfig,
        link: Option<&SessionLink>,
        era: Era,
    ) -> Result<UpstreamClient, UpstreamError> {
        let name = &upstream.name;
        if self.shutting_down.load(Ordering::Acquire) {
            return Err(UpstreamError::ShuttingDown {
                upstream: name.clone(),
            });
        }
        let now = tokio::time::Instant::now();
        if let Err(retry_in) = self.breaker(name, |b, p| b.admit(p, now)) {
            self.ctx.metrics.upstream_connect(name, "circuit_open");
            return Err(UpstreamError::CircuitOpen {
                upstream: name.clone(),
                retry_in,
            });
        }
        let Ok(permit) = self.permits.clone().try_acquire_owned() else {
            self.ctx.metrics.upstream_connect(name, "connection_limit");
            return Err(UpstreamError::TooManyConnections {
                upstream: name.clone(),
                max: self.policy.max_connections,
            });
        };
        let result =
            UpstreamClient::connect(upstream, instance_id, &self.ctx, permit, link.cloned(), era)
                .await;
        match &result {
            Ok(_) => self.breaker(name, |b, _| b.success()),
            Err(_) => {
                let now = tokio::time::Instant::now();
                if self.breaker(name, |b, p| b.failure(p, now)) {
                    tracing::warn!(upstream = %name, cooldown = ?self.policy.breaker.cooldown,
                        "circuit opened after repeated connect failures");
                }
            }
        }
        result
    }

    fn breaker<T>(&self, upstream: &str, f: impl FnOnce(&mut Breaker, &BreakerPolicy) -> T) -> T {
        let mut breakers = self.breakers.lock().unwrap_or_else(|p| p.into_inner());
        let breaker = match breakers.get_mut(upstream) {
            Some(b) => b,
            None => breakers.entry(upstream.to_string()).or_default(),
        };
        f(breaker, &self.policy.breaker)
    }

    /// Whether `upstream`'s circuit is open now.
    pub fn circuit_open(&self, upstream: &str) -> bool {
        let now = tokio::time::Instant::now();
        self.breakers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(upstream)
            .is_some_and(|b| b.is_open(now))
    }

    /// Upstream connections open now (all modes), as counted by the limit.
    pub fn open_connections(&self) -> usize {
        self.policy.max_connections - self.permits.available_permits()
    }

    /// Closes shared clients that are idle past the timeout and not leased, and clients whose
    /// upstream went away. Returns how many it closed.
    pub async fn sweep(&self) -> usize {
        let slots: Vec<Arc<Slot>> = self
            .slots
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect();
        let mut closed = 0;
        for slot in slots {
            // A slot being connected or used for a connect is not idle: skip it.
            let Ok(mut guard) = slot.client.try_lock() else {
                continue;
            };
            let reap = guard.as_ref().is_some_and(|c| {
                let leased = Arc::strong_count(c) > 1;
                c.is_closed() || (!leased && c.idle_for() >= self.policy.idle_timeout)
            });
            if reap {
                let client = guard.take().expect("checked above");
                drop(guard);
                tracing::debug!(upstream = %client.name(), idle = ?client.idle_for(), "closing idle upstream connection");
                client.close().await;
                closed += 1;
            }
        }
        closed
    }

    /// Runs [`Self::sweep`] periodically on the tracker until `stop` is cancelled.
    pub fn spawn_sweeper(self: &Arc<Self>, stop: CancellationToken) {
        let period = (self.policy.idle_timeout / 2)
            .clamp(Duration::from_millis(10), Duration::from_secs(30));
        let this = self.clone();
        self.tracker.spawn(async move {
            let mut tick = tokio::time::interval(period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tick.tick() => {
                        let n = this.sweep().await;
                        if n > 0 {
                            tracing::debug!(closed = n, "idle sweep");
                        }
                    }
                }
            }
        });
    }

    /// Refuses new connects, then closes every shared client (shutdown). Per-session clients
    /// close with their sessions, per-request clients with their leases.
    pub async fn close_all(&self) {
        self.shutting_down.store(true, Ordering::Release);
        let slots: Vec<Arc<Slot>> = {
            let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
            slots.drain().map(|(_, s)| s).collect()
        };
        let closes = slots.into_iter().map(|slot| async move {
            if let Some(client) = slot.client.lock().await.take() {
                client.close().await;
            }
        });
        futures::future::join_all(closes).await;
    }
}
