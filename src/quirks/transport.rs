//! Transport quirks: a body wrapper that hides the length (chunked), cuts the
//! connection after some bytes (drop-after, drop-at), stalls (stall-after) or
//! paces the bytes (throttle). It sits on top of the correct body: the bytes
//! it lets through are always the right ones.

use std::future::Future as _;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;
use http_body::{Frame, SizeHint};
use tokio::time::{Instant, Sleep};

/// How long a closing body waits before it fails, so hyper flushes the bytes
/// it already took (it writes buffered data while the body is pending, and
/// drops it when the body fails).
const FLUSH_GRACE: Duration = Duration::from_millis(50);

/// Largest single write when throttling (the only burst allowed).
pub const THROTTLE_BURST: u64 = 16 * 1024;

/// What happens once the byte limit is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterLimit {
    /// Close the connection at once.
    Close,
    /// Send nothing more, keep the connection open for this long, then close.
    Stall(Duration),
}

/// How to bend a body's delivery.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Delivery {
    /// Hide the length, so hyper uses chunked transfer coding.
    pub hide_length: bool,
    /// Stop after this many payload bytes.
    pub limit: Option<(u64, AfterLimit)>,
    /// At most this many bytes per second.
    pub rate: Option<u64>,
    /// With `rate`: the longest the body may take. A write that pacing would
    /// send later than this after the body started is not sent: the
    /// connection is closed at this point instead (the body is cut short).
    pub deadline: Option<Duration>,
}

impl Delivery {
    /// True when delivery is unchanged.
    pub fn is_plain(&self) -> bool {
        *self == Delivery::default()
    }
}

/// The wrapped body.
pub struct QuirkBody {
    inner: Body,
    how: Delivery,
    sent: u64,
    pending: Option<Bytes>,
    start: Instant,
    sleep: Option<Pin<Box<Sleep>>>,
    stalled: bool,
    done: bool,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// How a quirk body ends when it cuts the response: hyper then closes an
/// HTTP/1 connection or resets an HTTP/2 stream; with `--h2-cut connection`
/// the access layer has the whole HTTP/2 connection closed.
#[derive(Debug, thiserror::Error)]
#[error("quirk: closing the connection mid-body")]
pub struct Cut;

impl QuirkBody {
    /// Wrap `inner`.
    pub fn new(inner: Body, how: Delivery) -> Self {
        QuirkBody {
            inner,
            how,
            sent: 0,
            pending: None,
            start: Instant::now(),
            sleep: None,
            stalled: false,
            done: false,
        }
    }
}

impl http_body::Body for QuirkBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        loop {
            if this.done {
                return Poll::Ready(None);
            }
            if let Some(sleep) = this.sleep.as_mut() {
                if sleep.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                this.sleep = None;
                if this.stalled {
                    this.done = true;
                    return Poll::Ready(Some(Err(Box::new(Cut))));
                }
            }
            if let Some((limit, after)) = this.how.limit {
                if this.sent >= limit {
                    match after {
                        AfterLimit::Close => {
                            this.stalled = true;
                            this.sleep = Some(Box::pin(tokio::time::sleep(FLUSH_GRACE)));
                            continue;
                        }
                        AfterLimit::Stall(d) => {
                            this.stalled = true;
                            this.sleep = Some(Box::pin(tokio::time::sleep(d)));
                            continue;
                        }
                    }
                }
            }
            let data = match this.pending.take() {
                Some(d) if !d.is_empty() => d,
                _ => match Pin::new(&mut this.inner).poll_frame(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(None) => {
                        this.done = true;
                        return Poll::Ready(None);
                    }
                    Poll::Ready(Some(Err(e))) => {
                        this.done = true;
                        return Poll::Ready(Some(Err(e.into())));
                    }
                    Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                        Ok(d) => d,
                        Err(frame) => return Poll::Ready(Some(Ok(frame))), // trailers
                    },
                },
            };
            let mut n = data.len() as u64;
            if let Some((limit, _)) = this.how.limit {
                n = n.min(limit - this.sent);
            }
            if let Some(rate) = this.how.rate {
                // writes of at most 16 KiB (smaller at low rates); the write that
                // starts at byte `sent` leaves at start + sent/rate, so after
                // t seconds at most one write + t*rate bytes have gone out
                n = n.min((rate / 8).clamp(1, THROTTLE_BURST));
                // None: later than the clock can tell
                let at = Duration::try_from_secs_f64(this.sent as f64 / rate as f64)
                    .ok()
                    .and_then(|d| this.start.checked_add(d));
                let end = this.how.deadline.and_then(|d| this.start.checked_add(d));
                if at.is_none() || matches!((at, end), (Some(at), Some(end)) if at > end) {
                    // this write would go out after the deadline: send nothing
                    // more and close at the deadline
                    let close = end
                        .unwrap_or_else(Instant::now)
                        .max(Instant::now() + FLUSH_GRACE);
                    this.stalled = true;
                    this.sleep = Some(Box::pin(tokio::time::sleep_until(close)));
                    continue;
                }
                if let Some(at) = at.filter(|&at| Instant::now() < at) {
                    this.pending = Some(data);
                    this.sleep = Some(Box::pin(tokio::time::sleep_until(at)));
                    continue;
                }
            }
            let mut data = data;
            let chunk = data.split_to(n as usize);
            this.pending = Some(data);
            this.sent += n;
            return Poll::Ready(Some(Ok(Frame::data(chunk))));
        }
    }

    fn size_hint(&self) -> SizeHint {
        if self.how.hide_length {
            SizeHint::default()
        } else {
            self.inner.size_hint()
        }
    }
}
