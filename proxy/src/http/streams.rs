//! One GET event stream per session: the newest wins.
//!
//! rmcp sends what a session receives unasked only on its newest standalone GET stream and
//! forgets the older ones, but their responses stay open (keep-alives and all) until the
//! session ends, each holding a connection and a task: a client that reconnects its stream
//! every few seconds would pile them up. [`StreamSlots`] gives each session one slot: a new
//! GET stream that opened ends the previous one's response at once (its body finishes, so the
//! connection and rmcp's stream are released), and a stream's slot is freed when its body is
//! dropped.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use axum::body::{Body, Bytes, HttpBody};
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

type SlotKey = (String, String);

/// The open GET stream of each session (instance id, session id).
#[derive(Default)]
pub struct StreamSlots {
    slots: Mutex<HashMap<SlotKey, Slot>>,
    next: std::sync::atomic::AtomicU64,
}

struct Slot {
    generation: u64,
    cut: CancellationToken,
}

impl StreamSlots {
    /// Makes `body` (a GET stream that opened for the session) the session's stream: the
    /// previous one is ended. The returned body frees the slot when dropped.
    pub fn claim(self: &Arc<Self>, instance_id: &str, session_id: &str, body: Body) -> Body {
        let key = (instance_id.to_string(), session_id.to_string());
        let generation = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let cut = CancellationToken::new();
        let previous = self.lock().insert(
            key.clone(),
            Slot {
                generation,
                cut: cut.clone(),
            },
        );
        if let Some(previous) = previous {
            tracing::debug!(
                instance = %key.0,
                "a newer GET stream opened for the session; ending the previous one"
            );
            previous.cut.cancel();
        }
        Body::new(SlotBody {
            inner: body,
            cut: Box::pin(cut.cancelled_owned()),
            _release: Release {
                slots: self.clone(),
                key,
                generation,
            },
        })
    }

    /// Open streams (all sessions).
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<SlotKey, Slot>> {
        self.slots.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Frees a stream's slot, unless a newer stream has taken it since.
struct Release {
    slots: Arc<StreamSlots>,
    key: SlotKey,
    generation: u64,
}

impl Drop for Release {
    fn drop(&mut self) {
        let mut slots = self.slots.lock();
        if slots
            .get(&self.key)
            .is_some_and(|s| s.generation == self.generation)
        {
            slots.remove(&self.key);
        }
    }
}

/// A stream's body that ends (cleanly, as if the server finished it) once cut.
struct SlotBody {
    inner: Body,
    cut: Pin<Box<WaitForCancellationFutureOwned>>,
    _release: Release,
}

impl HttpBody for SlotBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        if self.cut.as_mut().poll(cx).is_ready() {
            return Poll::Ready(None);
        }
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endless() -> Body {
        Body::from_stream(futures::stream::pending::<Result<Bytes, std::io::Error>>())
    }

    #[tokio::test]
    async fn a_newer_stream_ends_the_previous_one_of_the_same_session() {
        let slots = Arc::new(StreamSlots::default());
        let first = slots.claim("demo", "s1", endless());
        let other = slots.claim("demo", "s2", endless());
        let second = slots.claim("demo", "s1", endless());
        assert_eq!(slots.len(), 2);
        // the first one is over: collecting it finishes
        let collected = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            axum::body::to_bytes(first, usize::MAX),
        )
        .await
        .expect("the replaced stream ended");
        assert!(collected.is_ok());
        // its end did not free the newer stream's slot
        assert_eq!(slots.len(), 2);
        drop(second);
        drop(other);
        assert!(slots.is_empty());
        // the same session id on another instance is another slot
        let _a = slots.claim("other", "s1", endless());
        let _b = slots.claim("demo", "s1", endless());
        assert_eq!(slots.len(), 2);
    }
}
