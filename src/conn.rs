//! One client connection's time limits, enforced on its socket: how long it
//! may sit idle between requests, take to send a request head once it has
//! started one, and leave a response unread. A limit that passes fails the
//! pending read or write with `TimedOut`, and hyper closes the connection.
//!
//! The socket cannot tell "between requests" from "serving one" by itself:
//! the service marks each request in flight ([`Activity::start`]) until its
//! response body is finished or dropped. Only a connection with nothing in
//! flight is subject to the idle and header limits, so a stalled or
//! throttled response (quirks) is never mistaken for an idle client.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::task::AtomicWaker;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// The time limits of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// With no request in flight, how long to wait for the first byte of the next one.
    pub idle: Duration,
    /// From the first byte of a request head to its end.
    pub header: Duration,
    /// How long a write may make no progress (a client that stopped reading).
    pub send: Duration,
}

/// Requests in flight on one connection, shared by its socket and its service.
#[derive(Debug, Default)]
pub struct Activity {
    in_flight: AtomicUsize,
    started: AtomicU64,
    /// Several requests at once (HTTP/2): no request heads to time.
    multiplexed: AtomicBool,
    /// HTTP/2: response bodies under way, and when one last asked for data
    /// (milliseconds since [`epoch`]). A stream whose client stopped reading
    /// is held by flow control, not by the socket: its body is simply not
    /// asked for more, which is what the send timeout watches there.
    bodies: AtomicUsize,
    body_polled_ms: AtomicU64,
    /// The socket's reader, waiting while busy: woken when the connection
    /// becomes idle so that its idle limit starts.
    idle_waker: AtomicWaker,
    /// When the last request in flight ended (ms since [`epoch`]; 0: none yet).
    last_done_ms: AtomicU64,
    /// The connection is to be closed now (see [`Activity::abort`]).
    aborted: AtomicBool,
}

impl Activity {
    /// Mark a request in flight until the returned guard is dropped.
    pub fn start(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.started.fetch_add(1, Ordering::AcqRel);
        InFlight(Arc::clone(self))
    }

    /// The connection speaks HTTP/2: bytes that arrive while nothing is in
    /// flight are frames (pings, settings), not the start of a request head;
    /// only the idle limit applies between streams.
    pub fn set_multiplexed(&self) {
        self.multiplexed.store(true, Ordering::Release);
    }

    fn busy(&self) -> bool {
        self.in_flight.load(Ordering::Acquire) > 0
    }

    /// Whether the connection speaks HTTP/2.
    pub fn is_multiplexed(&self) -> bool {
        self.multiplexed.load(Ordering::Acquire)
    }

    /// An HTTP/2 response body starts: watched until [`Activity::body_done`].
    pub fn body_open(&self) {
        self.body_polled();
        self.bodies.fetch_add(1, Ordering::AcqRel);
    }

    /// An HTTP/2 response body was asked for data.
    pub fn body_polled(&self) {
        self.body_polled_ms
            .store(millis(Instant::now()), Ordering::Release);
    }

    /// Close the connection at its next read or write, whatever streams it
    /// carries (the `--h2-cut connection` quirk). The connection is busy
    /// (this is called from a response), so its reader is waiting on
    /// `idle_waker` and is woken to see it.
    pub fn abort(&self) {
        self.aborted.store(true, Ordering::Release);
        self.idle_waker.wake();
    }

    fn aborted(&self) -> io::Result<()> {
        match self.aborted.load(Ordering::Acquire) {
            false => Ok(()),
            true => Err(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "quirk: closing the connection",
            )),
        }
    }

    /// An HTTP/2 response body ended (finished or dropped).
    pub fn body_done(&self) {
        self.bodies.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A process-wide time origin for the atomics above.
fn epoch() -> Instant {
    static EPOCH: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

fn millis(t: Instant) -> u64 {
    u64::try_from(t.saturating_duration_since(epoch()).as_millis()).unwrap_or(u64::MAX)
}

/// A request in flight (see [`Activity::start`]).
#[derive(Debug)]
pub struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        if self.0.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0
                .last_done_ms
                .store(millis(Instant::now()).max(1), Ordering::Release);
            self.0.idle_waker.wake();
        }
    }
}

/// A socket with the [`Timeouts`] applied.
pub struct TimedIo<T> {
    inner: T,
    limits: Timeouts,
    activity: Arc<Activity>,
    /// Requests started when the current idle period began.
    seen: u64,
    /// A request was in flight at the last read.
    was_busy: bool,
    idle_since: Instant,
    head_started: Option<Instant>,
    read_timer: Pin<Box<Sleep>>,
    read_deadline: Option<Instant>,
    write_stalled_since: Option<Instant>,
    write_timer: Pin<Box<Sleep>>,
    write_deadline: Option<Instant>,
}

impl<T> TimedIo<T> {
    /// Wrap a freshly accepted socket.
    pub fn new(inner: T, limits: Timeouts, activity: Arc<Activity>) -> Self {
        let now = Instant::now();
        TimedIo {
            inner,
            limits,
            activity,
            seen: 0,
            was_busy: false,
            idle_since: now,
            head_started: None,
            read_timer: Box::pin(tokio::time::sleep_until(now)),
            read_deadline: None,
            write_stalled_since: None,
            write_timer: Box::pin(tokio::time::sleep_until(now)),
            write_deadline: None,
        }
    }

    /// Whether `deadline` has passed (it is `now`), arming `timer` for it
    /// otherwise. A timer armed for an earlier instant still to come is
    /// left as it is: when it fires, the caller is polled, sees the
    /// deadline not yet passed, and it is armed for the deadline then.
    /// (Deadlines move on with every request, and a reset is a trip into
    /// the timer wheel: this makes it one per time limit, not per request.)
    fn expired(
        timer: &mut Pin<Box<Sleep>>,
        armed: &mut Option<Instant>,
        deadline: Instant,
        now: Instant,
        cx: &mut Context<'_>,
    ) -> bool {
        if now >= deadline {
            return true;
        }
        let earlier = matches!(*armed, Some(a) if now < a && a <= deadline);
        if !earlier && *armed != Some(deadline) {
            timer.as_mut().reset(deadline);
            *armed = Some(deadline);
        }
        if timer.as_mut().poll(cx).is_pending() {
            return false;
        }
        if *armed == Some(deadline) {
            return true;
        }
        // the earlier instant passed since `now` was read: arm the deadline
        timer.as_mut().reset(deadline);
        *armed = Some(deadline);
        timer.as_mut().poll(cx).is_ready()
    }

    fn write_pending(&mut self, cx: &mut Context<'_>) -> Option<io::Error> {
        let now = Instant::now();
        let since = *self.write_stalled_since.get_or_insert(now);
        let deadline = since + self.limits.send;
        Self::expired(
            &mut self.write_timer,
            &mut self.write_deadline,
            deadline,
            now,
            cx,
        )
        .then(|| {
            io::Error::new(
                io::ErrorKind::TimedOut,
                "send timeout: the client stopped reading",
            )
        })
    }

    fn write_result<R>(
        &mut self,
        cx: &mut Context<'_>,
        r: Poll<io::Result<R>>,
    ) -> Poll<io::Result<R>> {
        match r {
            Poll::Pending => match self.write_pending(cx) {
                Some(e) => Poll::Ready(Err(e)),
                None => Poll::Pending,
            },
            ready => {
                self.write_stalled_since = None;
                ready
            }
        }
    }
}

use std::future::Future as _;

impl<T: AsyncRead + Unpin> AsyncRead for TimedIo<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        this.activity.aborted()?;
        if this.activity.busy() {
            this.activity.idle_waker.register(cx.waker());
        }
        let busy = this.activity.busy();
        let started = this.activity.started.load(Ordering::Acquire);
        if busy {
            this.was_busy = true;
        } else if this.was_busy || started != this.seen {
            // a request was served since: the next idle period starts now
            this.seen = started;
            this.was_busy = false;
            // idle since the last request ended, which can be a while ago: a
            // request may start and end within one poll of the connection,
            // between two reads, without this seeing it busy
            let done = this.activity.last_done_ms.load(Ordering::Acquire);
            this.idle_since = if done == 0 {
                Instant::now()
            } else {
                epoch() + Duration::from_millis(done)
            };
            this.head_started = None;
        }
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if !busy
                    && this.head_started.is_none()
                    && buf.filled().len() > before
                    && !this.activity.multiplexed.load(Ordering::Acquire)
                {
                    this.head_started = Some(Instant::now());
                }
                Poll::Ready(Ok(()))
            }
            Poll::Pending if busy && this.activity.bodies.load(Ordering::Acquire) > 0 => {
                // HTTP/2 (the only protocol that counts bodies): its reader
                // is always pending, so it is where a stalled stream is seen
                let last = this.activity.body_polled_ms.load(Ordering::Acquire);
                let deadline = epoch() + Duration::from_millis(last) + this.limits.send;
                let now = Instant::now();
                if Self::expired(
                    &mut this.read_timer,
                    &mut this.read_deadline,
                    deadline,
                    now,
                    cx,
                ) {
                    Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "send timeout: no HTTP/2 stream made progress",
                    )))
                } else {
                    Poll::Pending
                }
            }
            Poll::Pending if !busy => {
                let now = Instant::now();
                let (deadline, what) = match this.head_started {
                    Some(t) => (t + this.limits.header, "request head not received in time"),
                    None => (this.idle_since + this.limits.idle, "idle timeout"),
                };
                if now >= deadline {
                    return Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, what)));
                }
                // A head received in full may be answered within this same
                // poll of the connection (nothing yields), so this read comes
                // before the request is seen: check back by the earliest time
                // its idle limit could run out, to re-evaluate then.
                let check = match this.head_started {
                    Some(t) if now < t + this.limits.idle => deadline.min(t + this.limits.idle),
                    _ => deadline,
                };
                if Self::expired(
                    &mut this.read_timer,
                    &mut this.read_deadline,
                    check,
                    now,
                    cx,
                ) {
                    cx.waker().wake_by_ref();
                }
                Poll::Pending
            }
            other => other,
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for TimedIo<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.activity.aborted()?;
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.write_result(cx, r)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.activity.aborted()?;
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.write_result(cx, r)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let r = Pin::new(&mut self.inner).poll_flush(cx);
        self.write_result(cx, r)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let r = Pin::new(&mut self.inner).poll_shutdown(cx);
        self.write_result(cx, r)
    }
}
