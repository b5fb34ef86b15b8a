//! Writes of a multiplexed (HTTP/2) connection gathered into fewer system
//! calls.
//!
//! hyper serves each HTTP/2 stream in a task of its own, and the h2 codec
//! writes and flushes a response's frames as soon as they are queued: one
//! `writev` (and one TLS record, one wake-up of the client) per response,
//! although the client sent ten requests at once and their responses are
//! ready within microseconds of each other. Measured under strace for
//! 20,000 requests of `h2load -c32 -m10` over TLS: 20,160 `writev` without
//! this, 4,160 with it (as many as the socket reads), and 1.5x the
//! requests per server CPU-second.
//!
//! [`Coalesce`] keeps what the codec writes in a buffer, and the first
//! flush after new bytes waits one turn of the scheduler: it wakes its own
//! task and reports success without writing. tokio queues a task that woke
//! itself behind the tasks already waiting, so the other streams queue
//! their responses first. The h2 codec reads until the socket has nothing
//! more, then flushes, on every poll of the connection: the flushes after
//! that read write everything held at once. (Flushes before it, in the
//! poll that deferred, only keep gathering.) A full buffer, a large write
//! and a shutdown write at once, so the bytes held are bounded and are
//! never left behind.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Bytes held at most before they are written without waiting.
const HOLD_BYTES: usize = 64 * 1024;
/// A write at least this large, with nothing held, goes through unbuffered
/// (bulk bodies: batching would only add a copy).
const DIRECT_BYTES: usize = 16 * 1024;
/// A buffer that grew beyond this is given back once drained, so that an
/// idle connection keeps at most this much.
const KEEP_BYTES: usize = 16 * 1024;

/// An I/O object whose writes are gathered per scheduler turn (see the
/// module docs).
#[derive(Debug)]
pub struct Coalesce<I> {
    inner: I,
    /// Written by the codec, not yet passed on.
    held: Vec<u8>,
    /// How much of `held` has been passed on.
    sent: usize,
    /// A flush has reported success without writing, and this task has
    /// been woken to write for real.
    deferred: bool,
    /// The connection has read since then: this is a later poll, and the
    /// other tasks have had their turn.
    read_since: bool,
}

impl<I> Coalesce<I> {
    /// Wrap `inner`.
    pub fn new(inner: I) -> Self {
        Coalesce {
            inner,
            held: Vec::new(),
            sent: 0,
            deferred: false,
            read_since: false,
        }
    }
}

impl<I: AsyncWrite + Unpin> Coalesce<I> {
    /// Pass everything held on to `inner`.
    fn drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.sent < self.held.len() {
            match Pin::new(&mut self.inner).poll_write(cx, &self.held[self.sent..]) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => self.sent += n,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
        self.held.clear();
        if self.held.capacity() > KEEP_BYTES {
            self.held = Vec::new();
        }
        self.sent = 0;
        Poll::Ready(Ok(()))
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for Coalesce<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.read_since = true;
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Coalesce<I> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_write_vectored(cx, &[io::IoSlice::new(buf)])
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let len: usize = bufs.iter().map(|b| b.len()).sum();
        if this.held.len() + len > HOLD_BYTES {
            std::task::ready!(this.drain(cx))?;
        }
        if this.held.is_empty() && len >= DIRECT_BYTES {
            return Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        }
        for b in bufs {
            this.held.extend_from_slice(b);
        }
        Poll::Ready(Ok(len))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if !this.held.is_empty() {
            if !this.deferred {
                // let the streams that are ready queue theirs first
                this.deferred = true;
                this.read_since = false;
                cx.waker().wake_by_ref();
                return Poll::Ready(Ok(()));
            }
            if !this.read_since {
                // the poll that deferred: keep gathering
                return Poll::Ready(Ok(()));
            }
        }
        std::task::ready!(this.drain(cx))?;
        std::task::ready!(Pin::new(&mut this.inner).poll_flush(cx))?;
        this.deferred = false;
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        std::task::ready!(this.drain(cx))?;
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::task::{Wake, Waker};

    #[derive(Default)]
    struct Count(AtomicUsize);
    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
        fn wake_by_ref(self: &Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// A socket that records each write call and has nothing to read yet.
    #[derive(Default)]
    struct Sink(Vec<Vec<u8>>);
    impl AsyncWrite for Sink {
        fn poll_write(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            self.0.push(buf.to_vec());
            Poll::Ready(Ok(buf.len()))
        }
        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }
    impl AsyncRead for Sink {
        fn poll_read(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            _: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            Poll::Pending
        }
    }

    fn written(io: &Coalesce<Sink>) -> Vec<Vec<u8>> {
        io.inner.0.clone()
    }

    /// One poll of a connection as the h2 codec makes it: read until
    /// nothing is left, then write what is queued and flush.
    fn poll_once(io: &mut Pin<&mut Coalesce<Sink>>, cx: &mut Context<'_>, queued: &[&[u8]]) {
        let mut space = [0u8; 16];
        assert!(io
            .as_mut()
            .poll_read(cx, &mut ReadBuf::new(&mut space))
            .is_pending());
        for q in queued {
            assert!(matches!(io.as_mut().poll_write(cx, q), Poll::Ready(Ok(n)) if n == q.len()));
            assert!(io.as_mut().poll_flush(cx).is_ready());
        }
        assert!(io.as_mut().poll_flush(cx).is_ready());
    }

    #[test]
    fn writes_wait_one_turn_and_go_out_together() {
        let count = Arc::new(Count::default());
        let waker = Waker::from(Arc::clone(&count));
        let mut cx = Context::from_waker(&waker);
        let mut io = Coalesce::new(Sink::default());
        let mut io = Pin::new(&mut io);
        let woken = || count.0.load(Ordering::SeqCst);

        // the poll that queues the first response: held, task woken once,
        // however many flushes follow
        poll_once(&mut io, &mut cx, &[b"one", b"two"]);
        assert_eq!((woken(), written(&io).len()), (1, 0));
        // the next poll (after the other tasks' turn) writes all in one call
        poll_once(&mut io, &mut cx, &[b"three"]);
        assert_eq!(written(&io), vec![b"onetwothree".to_vec()]);
        assert_eq!(woken(), 1);
        // a poll with nothing queued writes nothing and wakes no one
        poll_once(&mut io, &mut cx, &[]);
        assert_eq!((woken(), written(&io).len()), (1, 1));
        // and the next response waits its turn again
        poll_once(&mut io, &mut cx, &[b"four"]);
        assert_eq!((woken(), written(&io).len()), (2, 1));
        poll_once(&mut io, &mut cx, &[]);
        assert_eq!(written(&io)[1], b"four".to_vec());
    }

    #[test]
    fn a_shutdown_a_full_buffer_and_a_large_write_do_not_wait() {
        let waker = Waker::from(Arc::new(Count::default()));
        let mut cx = Context::from_waker(&waker);
        let mut io = Coalesce::new(Sink::default());
        let mut io = Pin::new(&mut io);
        // held bytes are written before the shutdown
        poll_once(&mut io, &mut cx, &[b"last"]);
        assert!(written(&io).is_empty());
        assert!(io.as_mut().poll_shutdown(&mut cx).is_ready());
        assert_eq!(written(&io), vec![b"last".to_vec()]);
        // a large write with nothing held goes straight through
        let big = vec![7u8; DIRECT_BYTES];
        assert!(
            matches!(io.as_mut().poll_write(&mut cx, &big), Poll::Ready(Ok(n)) if n == big.len())
        );
        assert_eq!(written(&io).len(), 2);
        // bytes beyond the bound push what is held out first
        let small = vec![1u8; DIRECT_BYTES - 1];
        for _ in 0..HOLD_BYTES / small.len() {
            assert!(io.as_mut().poll_write(&mut cx, &small).is_ready());
        }
        assert_eq!(written(&io).len(), 2);
        assert!(io.as_mut().poll_write(&mut cx, &small).is_ready());
        assert_eq!(written(&io).len(), 3);
        assert_eq!(
            written(&io)[2].len(),
            small.len() * (HOLD_BYTES / small.len())
        );
        // the drained 64 KiB buffer was given back: only the last write is
        // held, in a buffer of its own size
        assert!(io.held.capacity() <= KEEP_BYTES);
        poll_once(&mut io, &mut cx, &[]);
        poll_once(&mut io, &mut cx, &[]);
        assert_eq!(written(&io).len(), 4);
    }
}
