//! The GET event stream of one 2025-11-25 session (`[load] event_stream = true`): opened
//! after `notifications/initialized`, read in a task, closed when the session ends.
//!
//! Invariant: the reading task is owned by one [`EventStream`], held (through an `Arc`, goose
//! session data must be `Clone`) by the user's session state only. `close` stops it and waits
//! for it (bounded); dropping the last handle without `close` aborts it. Either way the
//! response, and with it the connection, is dropped: no stream outlives its session.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::recorder::{ClientCounters, Recorder};

/// How long `close` waits for the reading task to end.
const CLOSE_WAIT: Duration = Duration::from_secs(1);

/// A session's event stream; clones share the one reading task.
#[derive(Clone)]
pub(super) struct EventStream(Arc<Owner>);

struct Owner {
    stop: CancellationToken,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl Drop for Owner {
    fn drop(&mut self) {
        self.stop.cancel();
        if let Some(task) = self.task.lock().unwrap_or_else(|p| p.into_inner()).take() {
            task.abort();
        }
    }
}

impl EventStream {
    /// Sends `request` (a GET with `Accept: text/event-stream`) in a task that reads the
    /// stream until [`close`](Self::close), counting into `recorder`.
    pub fn open(request: reqwest::RequestBuilder, recorder: Arc<Recorder>) -> EventStream {
        let stop = CancellationToken::new();
        let task = tokio::spawn(read(request, recorder, stop.clone()));
        EventStream(Arc::new(Owner {
            stop,
            task: Mutex::new(Some(task)),
        }))
    }

    /// Closes the stream (the client side hangs up) and waits for its task, at most 1 s
    /// (then aborts it).
    pub async fn close(&self) {
        self.0.stop.cancel();
        let task = self.0.task.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(mut task) = task
            && tokio::time::timeout(CLOSE_WAIT, &mut task).await.is_err()
        {
            task.abort();
        }
    }
}

/// The stream's task: the request, then every chunk until `stop` or the end.
async fn read(request: reqwest::RequestBuilder, recorder: Arc<Recorder>, stop: CancellationToken) {
    let c = &recorder.client;
    let sent = tokio::select! {
        biased;
        () = stop.cancelled() => return,
        r = request.send() => r,
    };
    let mut response = match sent {
        Ok(r) if r.status().as_u16() == 405 => {
            ClientCounters::bump(&c.streams_not_offered);
            return;
        }
        Ok(r) if r.status().is_success() => r,
        Ok(_) | Err(_) => {
            ClientCounters::bump(&c.streams_refused);
            return;
        }
    };
    ClientCounters::bump(&c.streams_opened);
    let mut events = SseCounter::default();
    loop {
        let chunk = tokio::select! {
            biased;
            () = stop.cancelled() => return,
            chunk = response.chunk() => chunk,
        };
        match chunk {
            Ok(Some(bytes)) => {
                let n = events.push(&String::from_utf8_lossy(&bytes));
                c.stream_events
                    .fetch_add(n, std::sync::atomic::Ordering::Relaxed);
            }
            Ok(None) | Err(_) => {
                ClientCounters::bump(&c.streams_broken);
                return;
            }
        }
    }
}

/// Counts complete SSE events that carry data (the empty priming event is not one).
#[derive(Default)]
pub(super) struct SseCounter {
    pending: String,
}

impl SseCounter {
    /// Takes the next chunk of the stream; returns how many events it completed.
    pub fn push(&mut self, chunk: &str) -> u64 {
        self.pending.push_str(&chunk.replace('\r', ""));
        let mut n = 0;
        while let Some(end) = self.pending.find("\n\n") {
            let has_data = self.pending[..end].lines().any(|l| {
                l.strip_prefix("data:")
                    .is_some_and(|d| !d.trim().is_empty())
            });
            n += u64::from(has_data);
            self.pending.drain(..end + 2);
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::SseCounter;

    #[test]
    fn events_are_counted_when_complete_and_the_priming_event_is_not() {
        let mut c = SseCounter::default();
        assert_eq!(c.push("data: \nid: 0\nretry: 3000\n\n"), 0);
        assert_eq!(c.push("data: {\"jsonrpc\":\"2.0\",\"method\":\"x\"}\n"), 0);
        assert_eq!(c.push("id: 1\n\ndata: {}\r\n\r\ndata: "), 2);
        assert_eq!(c.push("{}\n\n"), 1);
    }
}
