//! The timer of one client connection while it waits for a request head: hyper's
//! `header_read_timeout`, given a [`ConnTimer`] that tells a connection's first request from a
//! kept-alive one's.
//!
//! hyper starts its header-read timer whenever it waits for a request head: when the connection
//! opens, and again as soon as the previous response is written (so an idle kept-alive
//! connection is covered too, and a connection with a request in flight or a response still
//! streaming, e.g. an SSE stream, is never timed). With the plain `TokioTimer` both waits would
//! get the same duration. [`ConnTimer`] gives:
//! - the first request: its head complete within `header` of the connection opening;
//! - a later request: nothing for up to `idle` after the previous response (kept alive), and
//!   once its first byte arrives ([`Watched`] sees it), the head complete within `header` of
//!   that byte. A trickle of bytes never moves the deadline.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use hyper::rt::{Sleep, Timer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;

/// Which wait a timer cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// A request head not complete in time (the first request, or a later one once begun).
    Header,
    /// Kept alive with no new request.
    Idle,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Header => "header",
            Phase::Idle => "idle",
        }
    }
}

/// What one connection's reads and head waits share. Owned by the connection's task (through
/// its [`Watched`] socket and [`ConnTimer`]).
#[derive(Debug, Default)]
pub struct HeadClock {
    /// Head waits begun; the first is the connection's first request.
    heads: AtomicU64,
    /// When the current head wait saw its first byte.
    first_byte: Mutex<Option<Instant>>,
    /// The wait a timer cut, if one did.
    fired: Mutex<Option<Phase>>,
}

impl HeadClock {
    /// The wait a timer cut, if the connection ended that way.
    pub fn fired(&self) -> Option<Phase> {
        *self.fired.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn note_bytes(&self) {
        let mut first = self
            .first_byte
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if first.is_none() {
            *first = Some(Instant::now());
        }
    }

    fn first_byte(&self) -> Option<Instant> {
        *self
            .first_byte
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn begin_head(&self) -> bool {
        *self
            .first_byte
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = None;
        self.heads.fetch_add(1, Ordering::Relaxed) == 0
    }
}

/// A client socket that tells its [`HeadClock`] when bytes arrive.
pub struct Watched<T> {
    pub io: T,
    pub clock: Arc<HeadClock>,
}

impl<T: AsyncRead + Unpin> AsyncRead for Watched<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let result = ready!(Pin::new(&mut self.io).poll_read(cx, buf));
        if result.is_ok() && buf.filled().len() > before {
            self.clock.note_bytes();
        }
        Poll::Ready(result)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Watched<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// hyper's timer for one connection (see the module doc).
#[derive(Debug, Clone)]
pub struct ConnTimer {
    pub clock: Arc<HeadClock>,
    pub header: Duration,
    pub idle: Duration,
}

impl Timer for ConnTimer {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Sleep>> {
        hyper_util::rt::TokioTimer::new().sleep(duration)
    }

    /// hyper asks for this as a head wait begins (its deadline is now + `header`).
    fn sleep_until(&self, _deadline: std::time::Instant) -> Pin<Box<dyn Sleep>> {
        let first = self.clock.begin_head();
        let started = Instant::now();
        let initial = started + if first { self.header } else { self.idle };
        Box::pin(HeadSleep {
            timer: self.clone(),
            first,
            started,
            sleep: Box::pin(tokio::time::sleep_until(initial)),
        })
    }
}

/// One head wait's deadline, moved from idle to header when the first byte comes.
struct HeadSleep {
    timer: ConnTimer,
    first: bool,
    started: Instant,
    sleep: Pin<Box<tokio::time::Sleep>>,
}

impl HeadSleep {
    fn deadline(&self) -> (Instant, Phase) {
        let t = &self.timer;
        if self.first {
            return (self.started + t.header, Phase::Header);
        }
        match t.clock.first_byte() {
            Some(at) => (at + t.header, Phase::Header),
            None => (self.started + t.idle, Phase::Idle),
        }
    }
}

impl Future for HeadSleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        let (deadline, phase) = this.deadline();
        if this.sleep.deadline() != deadline {
            this.sleep.as_mut().reset(deadline);
        }
        ready!(this.sleep.as_mut().poll(cx));
        *this
            .timer
            .clock
            .fired
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(phase);
        Poll::Ready(())
    }
}

impl Sleep for HeadSleep {}
