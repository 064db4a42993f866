//! The request ids in flight in each session: rmcp routes a session's response by its request
//! id, so a second request reusing an id still in flight would take over the first one's
//! answer and leave the first hanging. The entry holds an id for the life of the response
//! (the [`HeldId`] rides in the response body) and refuses a request whose id is held.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use rmcp::model::RequestId;

/// `(instance, Mcp-Session-Id)`.
type SessionKey = (String, String);

/// The ids whose response has not ended, per session. A session appears only while one of its
/// requests is in flight, so nothing here outlives the responses it tracks.
#[derive(Debug, Default)]
pub struct InflightIds {
    held: Mutex<HashMap<SessionKey, HashSet<RequestId>>>,
}

impl InflightIds {
    /// Holds `id` for the session until the returned guard drops; `None` if it is held already.
    pub fn hold(self: &Arc<Self>, instance: &str, session: &str, id: &RequestId) -> Option<HeldId> {
        let key = (instance.to_string(), session.to_string());
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        if !held.entry(key.clone()).or_default().insert(id.clone()) {
            return None;
        }
        Some(HeldId {
            ids: self.clone(),
            key,
            id: id.clone(),
        })
    }

    /// How many sessions have a request in flight (for tests).
    pub fn sessions(&self) -> usize {
        self.held.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

/// One request id held in flight; dropping it (the response ended or the client left) frees
/// the id, and the session's entry with its last id.
#[derive(Debug)]
pub struct HeldId {
    ids: Arc<InflightIds>,
    key: SessionKey,
    id: RequestId,
}

impl Drop for HeldId {
    fn drop(&mut self) {
        let mut held = self.ids.held.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(ids) = held.get_mut(&self.key) {
            ids.remove(&self.id);
            if ids.is_empty() {
                held.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_is_held_once_per_session_until_its_guard_drops() {
        let ids = Arc::new(InflightIds::default());
        let one = RequestId::Number(1);
        let first = ids.hold("i", "s", &one).expect("free");
        assert!(ids.hold("i", "s", &one).is_none(), "held twice");
        // the same id elsewhere, and the string "1", are other ids
        let other_session = ids.hold("i", "t", &one).expect("other session");
        let other_instance = ids.hold("j", "s", &one).expect("other instance");
        let string = ids.hold("i", "s", &RequestId::String("1".into()));
        assert!(string.is_some());
        assert_eq!(ids.sessions(), 3);
        drop((first, string));
        assert_eq!(
            ids.sessions(),
            2,
            "a session without ids in flight is forgotten"
        );
        let again = ids
            .hold("i", "s", &one)
            .expect("free again after the first ended");
        drop((again, other_session, other_instance));
        assert_eq!(ids.sessions(), 0);
    }
}
