//! What the proxy advertises: the union of what an instance's upstreams offer.
//!
//! Each upstream's capabilities are learned from its `initialize` answer whenever the proxy
//! connects to it, and kept by upstream name until the config changes (the admin path forgets
//! them). An instance advertises tools always (the merged list exists even when every upstream
//! is down), and resources, prompts, completions and logging when at least one of its upstreams
//! offers them; experimental capabilities and extensions are not carried.

use std::collections::HashMap;
use std::sync::RwLock;

use rmcp::model::{
    ClientCapabilities, JsonObject, PromptsCapability, ResourcesCapability, ServerCapabilities,
    ToolsCapability,
};

#[derive(Default)]
pub struct UpstreamCapabilities {
    known: RwLock<HashMap<String, ServerCapabilities>>,
    /// What each instance last advertised (read where rmcp asks synchronously).
    advertised: RwLock<HashMap<String, ServerCapabilities>>,
}

impl UpstreamCapabilities {
    /// Records what upstream `name` said it offers (at every connect).
    pub fn record(&self, name: &str, caps: ServerCapabilities) {
        let mut known = self.known.write().unwrap_or_else(|p| p.into_inner());
        if known.get(name) != Some(&caps) {
            known.insert(name.to_string(), caps);
        }
    }

    pub fn get(&self, name: &str) -> Option<ServerCapabilities> {
        self.known
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .cloned()
    }

    /// Forgets everything (the config changed; the next connect tells again).
    pub fn forget_all(&self) {
        self.known
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
        self.advertised
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }

    /// Records what `instance` advertised.
    pub fn advertise(&self, instance: &str, caps: &ServerCapabilities) {
        let mut advertised = self.advertised.write().unwrap_or_else(|p| p.into_inner());
        if advertised.get(instance) != Some(caps) {
            advertised.insert(instance.to_string(), caps.clone());
        }
    }

    /// What `instance` last advertised, if it did.
    pub fn advertised(&self, instance: &str) -> Option<ServerCapabilities> {
        self.advertised
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(instance)
            .cloned()
    }
}

/// The proxy's own capabilities over those of its upstreams.
pub fn merged<'a>(
    upstreams: impl IntoIterator<Item = &'a ServerCapabilities>,
) -> ServerCapabilities {
    let mut out = ServerCapabilities::default();
    let mut tools = ToolsCapability::default();
    tools.list_changed = Some(true);
    out.tools = Some(tools);
    for caps in upstreams {
        if let Some(r) = &caps.resources {
            let into = out
                .resources
                .get_or_insert_with(ResourcesCapability::default);
            into.subscribe = or_flag(into.subscribe, r.subscribe);
            into.list_changed = or_flag(into.list_changed, r.list_changed);
        }
        if let Some(p) = &caps.prompts {
            let into = out.prompts.get_or_insert_with(PromptsCapability::default);
            into.list_changed = or_flag(into.list_changed, p.list_changed);
        }
        if caps.completions.is_some() {
            out.completions.get_or_insert_with(JsonObject::new);
        }
        if caps.logging.is_some() {
            out.logging.get_or_insert_with(JsonObject::new);
        }
    }
    out
}

fn or_flag(a: Option<bool>, b: Option<bool>) -> Option<bool> {
    match (a, b) {
        (Some(true), _) | (_, Some(true)) => Some(true),
        (None, None) => None,
        _ => Some(false),
    }
}

/// What the proxy declares to upstreams: it can carry sampling, elicitation and roots
/// requests to its downstream callers (whether a given caller can answer is its own
/// capability, checked when a request arrives).
#[allow(deprecated)] // roots and sampling: deprecated by SEP-2577, part of 2025-11-25
pub fn client_capabilities() -> ClientCapabilities {
    ClientCapabilities::builder()
        .enable_roots()
        .enable_sampling()
        .enable_elicitation()
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn union_of_upstreams() {
        let none = merged([]);
        assert!(none.tools.is_some());
        assert!(none.resources.is_none() && none.prompts.is_none());
        assert!(none.completions.is_none() && none.logging.is_none());

        let mut a = ServerCapabilities::default();
        let mut ra = ResourcesCapability::default();
        ra.subscribe = Some(false);
        a.resources = Some(ra);
        let mut b = ServerCapabilities::default();
        let mut rb = ResourcesCapability::default();
        rb.subscribe = Some(true);
        rb.list_changed = Some(false);
        b.resources = Some(rb);
        let mut pb = PromptsCapability::default();
        pb.list_changed = Some(true);
        b.prompts = Some(pb);
        b.logging = Some(JsonObject::new());
        let m = merged([&a, &b]);
        let r = m.resources.unwrap();
        assert_eq!((r.subscribe, r.list_changed), (Some(true), Some(false)));
        assert_eq!(m.prompts.unwrap().list_changed, Some(true));
        assert!(m.logging.is_some());
        assert!(m.completions.is_none());
    }
}
