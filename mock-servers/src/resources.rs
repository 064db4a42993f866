//! The mock's resources: three static ones, a counter bumped by the `bump` tool, the template
//! `mock://items/{id}`, and the registry of who is told when the counter changes
//! (`resources/subscribe` sessions of the 2025-11-25 era, `subscriptions/listen` streams of
//! the 2026-07-28 era).
//!
//! Ownership: the registry holds peers and sinks only; a session's entry is removed when its
//! session state drops (or its transport is found closed), a stream's when its `listen` ends.

use std::{
    collections::{BTreeSet, HashMap},
    sync::{
        Mutex,
        atomic::{AtomicU64, Ordering},
    },
};

use rmcp::{
    ErrorData as McpError, RoleServer,
    model::{ReadResourceResult, Resource, ResourceContents, ResourceTemplate},
    service::{Peer, SubscriptionSink},
};
use serde_json::json;

/// `mock://static/readme` (text/plain).
pub const README_URI: &str = "mock://static/readme";
/// `mock://static/config.json` (application/json).
pub const CONFIG_URI: &str = "mock://static/config.json";
/// `mock://static/logo.png` (image/png, a blob).
pub const LOGO_URI: &str = "mock://static/logo.png";
/// `mock://counter`: the counter as decimal text; `bump` increments it.
pub const COUNTER_URI: &str = "mock://counter";
/// The one resource template.
pub const ITEM_TEMPLATE: &str = "mock://items/{id}";
/// Text of `mock://static/readme`.
pub const README_TEXT: &str = "mock-mcp readme";
/// Text of `mock://static/config.json`.
pub const CONFIG_TEXT: &str = r#"{"mode":"mock"}"#;
/// Base64 blob of `mock://static/logo.png` (a 1×1 PNG).
pub const LOGO_PNG_BASE64: &str = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==";

const ITEM_PREFIX: &str = "mock://items/";

/// Every concrete resource, in list order.
pub fn list() -> Vec<Resource> {
    vec![
        Resource::new(README_URI, "readme").with_mime_type("text/plain"),
        Resource::new(CONFIG_URI, "config").with_mime_type("application/json"),
        Resource::new(LOGO_URI, "logo").with_mime_type("image/png"),
        Resource::new(COUNTER_URI, "counter").with_mime_type("text/plain"),
    ]
}

/// Every resource template, in list order.
pub fn templates() -> Vec<ResourceTemplate> {
    vec![ResourceTemplate::new(ITEM_TEMPLATE, "item").with_mime_type("text/plain")]
}

/// The `id` of a `mock://items/{id}` URI (one non-empty path segment).
fn item_id(uri: &str) -> Option<&str> {
    uri.strip_prefix(ITEM_PREFIX)
        .filter(|id| !id.is_empty() && !id.contains('/'))
}

/// Whether `uri` can be read (a listed resource or a match of the template).
pub fn exists(uri: &str) -> bool {
    [README_URI, CONFIG_URI, LOGO_URI, COUNTER_URI].contains(&uri) || item_id(uri).is_some()
}

/// The resource-not-found error for `uri` (rmcp turns the code into invalid-params for
/// 2026-07-28 peers).
pub fn not_found(uri: &str) -> McpError {
    McpError::resource_not_found(
        format!("unknown resource {uri}"),
        Some(json!({ "uri": uri })),
    )
}

/// Reads `uri`; `counter` is the counter's current value.
pub fn read(uri: &str, counter: u64) -> Result<ReadResourceResult, McpError> {
    let contents = match uri {
        README_URI => ResourceContents::text(README_TEXT, uri),
        CONFIG_URI => ResourceContents::text(CONFIG_TEXT, uri).with_mime_type("application/json"),
        LOGO_URI => ResourceContents::blob(LOGO_PNG_BASE64, uri).with_mime_type("image/png"),
        COUNTER_URI => ResourceContents::text(counter.to_string(), uri),
        _ => match item_id(uri) {
            Some(id) => ResourceContents::text(format!("item {id}"), uri),
            None => return Err(not_found(uri)),
        },
    };
    Ok(ReadResourceResult::new(vec![contents]))
}

/// One session's `resources/subscribe` entries.
#[derive(Debug)]
struct Subscriber {
    peer: Peer<RoleServer>,
    uris: BTreeSet<String>,
}

/// Who hears about resource updates and list changes: sessions that subscribed to URIs
/// (2025-11-25) and open `subscriptions/listen` streams (2026-07-28). Shared by all sessions.
#[derive(Debug, Default)]
pub struct Subscriptions {
    sessions: Mutex<HashMap<u64, Subscriber>>,
    listeners: Mutex<HashMap<u64, SubscriptionSink>>,
    next_listener: AtomicU64,
}

impl Subscriptions {
    /// Session `session` (reached through `peer`) subscribes to `uri`.
    pub fn subscribe(&self, session: u64, peer: &Peer<RoleServer>, uri: &str) {
        let mut sessions = lock(&self.sessions);
        let entry = sessions.entry(session).or_insert_with(|| Subscriber {
            peer: peer.clone(),
            uris: BTreeSet::new(),
        });
        entry.uris.insert(uri.to_string());
    }

    /// Session `session` unsubscribes from `uri` (nothing happens if it was not subscribed).
    pub fn unsubscribe(&self, session: u64, uri: &str) {
        let mut sessions = lock(&self.sessions);
        if let Some(entry) = sessions.get_mut(&session) {
            entry.uris.remove(uri);
            if entry.uris.is_empty() {
                sessions.remove(&session);
            }
        }
    }

    /// Drops every subscription of a session that ended.
    pub fn forget_session(&self, session: u64) {
        lock(&self.sessions).remove(&session);
    }

    /// Registers an open `subscriptions/listen` stream until the guard drops.
    pub fn listen(&self, sink: SubscriptionSink) -> ListenerGuard<'_> {
        let id = self.next_listener.fetch_add(1, Ordering::Relaxed);
        lock(&self.listeners).insert(id, sink);
        ListenerGuard { owner: self, id }
    }

    /// Sessions with at least one subscription, and open listen streams.
    pub fn counts(&self) -> (usize, usize) {
        (lock(&self.sessions).len(), lock(&self.listeners).len())
    }

    /// Sends `notifications/resources/updated {uri}` to every session subscribed to `uri` and
    /// every listen stream that asked for it. Sessions whose transport closed are pruned.
    pub async fn resource_updated(&self, uri: &str) {
        let peers: Vec<Peer<RoleServer>> = {
            let mut sessions = lock(&self.sessions);
            sessions.retain(|_, s| !s.peer.is_transport_closed());
            sessions
                .values()
                .filter(|s| s.uris.contains(uri))
                .map(|s| s.peer.clone())
                .collect()
        };
        for peer in peers {
            let params = rmcp::model::ResourceUpdatedNotificationParam::new(uri);
            if let Err(e) = peer.notify_resource_updated(params).await {
                tracing::debug!(uri, "resources/updated not delivered: {e}");
            }
        }
        for sink in self.accepting(|f| {
            f.resource_subscriptions
                .as_ref()
                .is_some_and(|uris| uris.iter().any(|u| u == uri))
        }) {
            if let Err(e) = sink.notify_resource_updated(uri).await {
                tracing::debug!(uri, "resources/updated not delivered to a listener: {e}");
            }
        }
    }

    /// Sends a list_changed notification of `kind` to every listen stream that accepted it.
    pub async fn list_changed(&self, kind: ListKind) {
        let accepted = |f: &rmcp::model::SubscriptionFilter| {
            let flag = match kind {
                ListKind::Tools => f.tools_list_changed,
                ListKind::Resources => f.resources_list_changed,
                ListKind::Prompts => f.prompts_list_changed,
            };
            flag == Some(true)
        };
        for sink in self.accepting(accepted) {
            let sent = match kind {
                ListKind::Tools => sink.notify_tool_list_changed().await,
                ListKind::Resources => sink.notify_resource_list_changed().await,
                ListKind::Prompts => sink.notify_prompt_list_changed().await,
            };
            if let Err(e) = sent {
                tracing::debug!(?kind, "list_changed not delivered to a listener: {e}");
            }
        }
    }

    fn accepting(
        &self,
        wants: impl Fn(&rmcp::model::SubscriptionFilter) -> bool,
    ) -> Vec<SubscriptionSink> {
        lock(&self.listeners)
            .values()
            .filter(|sink| wants(sink.accepted()))
            .cloned()
            .collect()
    }
}

/// Which list changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListKind {
    /// `notifications/tools/list_changed`.
    Tools,
    /// `notifications/resources/list_changed`.
    Resources,
    /// `notifications/prompts/list_changed`.
    Prompts,
}

/// Unregisters a listen stream when dropped.
#[derive(Debug)]
pub struct ListenerGuard<'a> {
    owner: &'a Subscriptions,
    id: u64,
}

impl Drop for ListenerGuard<'_> {
    fn drop(&mut self) {
        lock(&self.owner.listeners).remove(&self.id);
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_and_unknown_uris() {
        assert!(exists("mock://items/abc"));
        assert!(!exists("mock://items/"));
        assert!(!exists("mock://items/a/b"));
        assert!(!exists("mock://nope"));
        let r = read("mock://items/abc", 0).unwrap();
        assert_eq!(
            r.contents,
            vec![ResourceContents::text("item abc", "mock://items/abc")]
        );
        let e = read("mock://nope", 0).unwrap_err();
        assert_eq!(e.code, rmcp::model::ErrorCode::RESOURCE_NOT_FOUND);
        assert!(e.message.contains("mock://nope"));
        assert_eq!(
            read(COUNTER_URI, 7).unwrap().contents,
            vec![ResourceContents::text("7", COUNTER_URI)]
        );
    }
}
