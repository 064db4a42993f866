//! `OwnedSessions`: an instance's rmcp session manager (rmcp's `LocalSessionManager`) that
//! also knows which key opened each session, so the HTTP entry can refuse a session to every
//! other key and a revoked key's sessions can be ended.
//!
//! The owner is recorded when rmcp hands the session its `initialize` (whose request carries
//! the HTTP parts, where the entry put the [`AdmittedKey`]), before the client can learn the
//! session's id, and forgotten in `close_session`, which rmcp calls on every end of a
//! session: a DELETE, the idle timeout, the sessions token at shutdown, a failed handshake,
//! and [`OwnedSessions::end_sessions_of`].

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use axum::http::request::Parts;
use futures::Stream;
use rmcp::model::{ClientJsonRpcMessage, GetExtensions, ServerJsonRpcMessage};
use rmcp::transport::streamable_http_server::session::local::{
    LocalSessionManager, LocalSessionManagerError,
};
use rmcp::transport::streamable_http_server::session::{
    ServerSseMessage, SessionId, SessionManager,
};

use super::AdmittedKey;

/// rmcp's in-memory sessions of one instance, each bound to the key that opened it.
pub struct OwnedSessions {
    pub inner: LocalSessionManager,
    /// Session id → SHA-256 of the key whose `initialize` opened it.
    owners: Mutex<HashMap<SessionId, [u8; 32]>>,
}

impl OwnedSessions {
    pub fn new(inner: LocalSessionManager) -> Self {
        Self {
            inner,
            owners: Mutex::default(),
        }
    }

    fn owners(&self) -> std::sync::MutexGuard<'_, HashMap<SessionId, [u8; 32]>> {
        self.owners.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The key that opened session `id`, if this manager holds it.
    pub fn owner(&self, id: &str) -> Option<[u8; 32]> {
        self.owners().get(id).copied()
    }

    /// Every key that owns at least one session here.
    pub fn owner_keys(&self) -> HashSet<[u8; 32]> {
        self.owners().values().copied().collect()
    }

    /// Ends every session `key` opened, through the same close rmcp runs for a DELETE; how
    /// many.
    pub async fn end_sessions_of(&self, key: &[u8; 32]) -> usize {
        let ids: Vec<SessionId> = self
            .owners()
            .iter()
            .filter(|(_, owner)| *owner == key)
            .map(|(id, _)| id.clone())
            .collect();
        for id in &ids {
            if let Err(e) = self.close_session(id).await {
                tracing::debug!(error = %e, "closing a revoked key's session");
            }
        }
        ids.len()
    }
}

/// The key the HTTP entry admitted the `initialize` with (in the HTTP parts rmcp puts into the
/// request's extensions).
fn admitted_key(message: &ClientJsonRpcMessage) -> Option<[u8; 32]> {
    let ClientJsonRpcMessage::Request(request) = message else {
        return None;
    };
    let parts = request.request.extensions().get::<Parts>()?;
    parts.extensions.get::<AdmittedKey>().map(|k| k.0)
}

impl SessionManager for OwnedSessions {
    type Error = LocalSessionManagerError;
    type Transport = <LocalSessionManager as SessionManager>::Transport;

    async fn create_session(&self) -> Result<(SessionId, Self::Transport), Self::Error> {
        self.inner.create_session().await
    }

    async fn initialize_session(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<ServerJsonRpcMessage, Self::Error> {
        // Without a key (never from the entry) the session has no owner: every request on it
        // is refused, so it idles out.
        if let Some(key) = admitted_key(&message) {
            self.owners().insert(id.clone(), key);
        }
        let answer = self.inner.initialize_session(id, message).await;
        if answer.is_err() {
            self.owners().remove(id);
        }
        answer
    }

    async fn has_session(&self, id: &SessionId) -> Result<bool, Self::Error> {
        self.inner.has_session(id).await
    }

    async fn close_session(&self, id: &SessionId) -> Result<(), Self::Error> {
        self.owners().remove(id);
        self.inner.close_session(id).await
    }

    async fn create_stream(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        self.inner.create_stream(id, message).await
    }

    async fn accept_message(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<(), Self::Error> {
        self.inner.accept_message(id, message).await
    }

    async fn create_standalone_stream(
        &self,
        id: &SessionId,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        self.inner.create_standalone_stream(id).await
    }

    async fn resume(
        &self,
        id: &SessionId,
        last_event_id: String,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        self.inner.resume(id, last_event_id).await
    }
}
