//! Response bodies over an object: a [`Segment`] list played from pinned
//! ranged reads of one version ([`ObjectSource`]).
//!
//! Each slice of the body (the whole object, the one range, or one part of
//! a multipart body) is one ranged read, conditional on the version the
//! headers describe. A read that fails, a store that sends more or fewer
//! bytes than asked, or an object replaced before a later part is read,
//! ends the body with an error: hyper then aborts the response (the client
//! sees a short body), and no byte of another version is ever sent. A
//! small object's bytes are held in memory and need no read. A derived
//! version (replica-flip's) is the version's bytes XORed as they are played.

use std::io;
use std::ops::Range;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use futures_util::future::BoxFuture;
use futures_util::StreamExt as _;
use http_body::{Frame, SizeHint};

use super::{ByteStream, Key, ObjectMeta, Origin, OriginError};
use crate::rfc::multipart::{Segment, Segments};

/// A read opened before the response was rendered (see
/// [`ObjectSource::opened`]): its byte range and stream.
pub type Opened = (Range<u64>, ByteStream);

/// One version of an object as a byte source.
#[derive(Clone)]
pub struct ObjectSource {
    /// The store.
    pub origin: Arc<dyn Origin>,
    /// The object.
    pub key: Key,
    /// The version the response describes; every read is pinned to it.
    pub meta: ObjectMeta,
    /// The whole object, when it is small (the bytes its digest is of).
    pub held: Option<Bytes>,
    /// Every byte is XORed with this (0: the object as it is), as a file
    /// source's `xor` is (`body` module).
    pub xor: u8,
    /// A read opened already (before the headers went out, so that a
    /// replaced object is noticed while the request can still be answered
    /// from a fresh HEAD); used if the body's first slice is its range.
    pub opened: Arc<Mutex<Option<Opened>>>,
    /// Called when a read finds the object changed (forget its state).
    pub on_changed: Arc<dyn Fn() + Send + Sync>,
}

impl std::fmt::Debug for ObjectSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectSource")
            .field("origin", &self.origin.describe())
            .field("key", &self.key)
            .field("meta", &self.meta)
            .finish_non_exhaustive()
    }
}

impl ObjectSource {
    /// Bytes `offset..offset + len` (XORed) if they are held in memory.
    pub fn held(&self, offset: u64, len: u64) -> Option<Bytes> {
        let bytes = self.held.as_ref()?;
        let end = offset.checked_add(len)?;
        (end <= bytes.len() as u64)
            .then(|| crate::body::xored(bytes.slice(offset as usize..end as usize), self.xor))
    }

    /// The whole version, as stored (not XORed): held, or one pinned read.
    pub async fn read_whole(&self) -> Result<Bytes, OriginError> {
        match &self.held {
            Some(bytes) => Ok(bytes.clone()),
            None => super::state::read_all(&*self.origin, &self.key, &self.meta).await,
        }
    }

    /// Open the pinned read of `range`, owning what it needs.
    fn open(&self, range: Range<u64>) -> BoxFuture<'static, Result<ByteStream, OriginError>> {
        let (origin, key, meta) = (
            Arc::clone(&self.origin),
            self.key.clone(),
            self.meta.clone(),
        );
        Box::pin(async move { origin.read(&key, &meta, range).await })
    }

    /// The read opened beforehand, if it is of `range`.
    fn take_opened(&self, range: &Range<u64>) -> Option<ByteStream> {
        let mut slot = self.opened.lock().unwrap_or_else(PoisonError::into_inner);
        match slot.take() {
            Some((r, stream)) if r == *range => Some(stream),
            _ => None, // another range (a quirk changed the plan): read afresh
        }
    }
}

/// A streaming body over segments of one object version. See the module docs.
pub struct ObjectBody {
    src: ObjectSource,
    segments: Segments,
    remaining: u64,
    /// A read being opened, and the length of its slice.
    opening: Option<(BoxFuture<'static, Result<ByteStream, OriginError>>, u64)>,
    /// The read being played, and the bytes of its slice still to come.
    reading: Option<(ByteStream, u64)>,
}

impl ObjectBody {
    /// A body playing `segments` from `src`.
    pub fn new(src: ObjectSource, segments: impl Into<Segments>) -> Self {
        let segments = segments.into();
        let remaining = segments.len();
        ObjectBody {
            src,
            segments,
            remaining,
            opening: None,
            reading: None,
        }
    }

    /// Exact number of bytes the body will yield.
    pub fn len(&self) -> u64 {
        self.remaining
    }

    /// True if the body yields nothing.
    pub fn is_empty(&self) -> bool {
        self.remaining == 0
    }

    /// End the body with `e`: nothing more is sent, and hyper aborts the response.
    fn abort(&mut self, e: OriginError) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        tracing::warn!(object = %self.src.key, error = %e, "aborting response");
        if matches!(e, OriginError::Changed(_)) {
            (self.src.on_changed)();
        }
        self.segments.clear();
        self.remaining = 0;
        self.opening = None;
        self.reading = None;
        Poll::Ready(Some(Err(io::Error::other(e))))
    }

    fn data(&mut self, chunk: Bytes) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        self.remaining -= chunk.len() as u64;
        Poll::Ready(Some(Ok(Frame::data(chunk))))
    }
}

impl http_body::Body for ObjectBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let this = &mut *self;
        loop {
            if let Some((open, len)) = this.opening.as_mut() {
                let opened = ready!(open.as_mut().poll(cx));
                let len = *len;
                this.opening = None;
                match opened {
                    Ok(stream) => this.reading = Some((stream, len)),
                    Err(e) => return this.abort(e),
                }
            }
            if let Some((stream, left)) = this.reading.as_mut() {
                match ready!(stream.poll_next_unpin(cx)) {
                    Some(Ok(chunk)) if chunk.len() as u64 > *left => {
                        return this.abort(OriginError::Unavailable(
                            "the store sent more bytes than asked for".into(),
                        ));
                    }
                    Some(Ok(chunk)) => {
                        *left -= chunk.len() as u64;
                        if *left == 0 {
                            this.reading = None;
                        }
                        if chunk.is_empty() {
                            continue;
                        }
                        let chunk = crate::body::xored(chunk, this.src.xor);
                        return this.data(chunk);
                    }
                    Some(Err(e)) => return this.abort(e),
                    None => {
                        return this.abort(OriginError::Unavailable(
                            "the store ended a range early".into(),
                        ));
                    }
                }
            }
            let Some(segment) = this.segments.pop_front() else {
                return Poll::Ready(None);
            };
            match segment {
                Segment::Static(bytes) => return this.data(bytes),
                Segment::Slice(r) => {
                    if let Some(chunk) = this.src.held(r.start, r.len()) {
                        return this.data(chunk);
                    }
                    let range = r.start..r.end + 1;
                    match this.src.take_opened(&range) {
                        Some(stream) => this.reading = Some((stream, r.len())),
                        None => this.opening = Some((this.src.open(range), r.len())),
                    }
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rfc::range::ByteRange;
    use futures_util::stream;
    use http_body_util::BodyExt as _;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::SystemTime;

    /// A store whose reads answer with `extra` more (or, negative, fewer)
    /// bytes than asked, or with `Changed` for ranges starting at `changed_at`.
    struct Faulty {
        data: Vec<u8>,
        extra: i64,
        changed_at: Option<u64>,
    }

    impl Origin for Faulty {
        fn head<'a>(&'a self, _: &'a Key) -> BoxFuture<'a, Result<ObjectMeta, OriginError>> {
            unreachable!("bodies never HEAD")
        }

        fn read<'a>(
            &'a self,
            _: &'a Key,
            _: &'a ObjectMeta,
            range: Range<u64>,
        ) -> BoxFuture<'a, Result<ByteStream, OriginError>> {
            Box::pin(async move {
                if Some(range.start) == self.changed_at {
                    return Err(OriginError::Changed("replaced".into()));
                }
                let end = (range.end as i64 + self.extra) as usize;
                let bytes = Bytes::copy_from_slice(&self.data[range.start as usize..end]);
                // in two chunks, as a network stream would
                let half = bytes.len() / 2;
                let chunks = vec![Ok(bytes.slice(..half)), Ok(bytes.slice(half..))];
                Ok(stream::iter(chunks).boxed())
            })
        }

        fn list<'a>(
            &'a self,
            _: &'a Key,
        ) -> BoxFuture<'a, Result<Vec<super::super::Listed>, OriginError>> {
            unreachable!()
        }

        fn describe(&self) -> String {
            "faulty".into()
        }
    }

    fn body(origin: Faulty, segments: Vec<Segment>, changed: Arc<AtomicUsize>) -> ObjectBody {
        let size = origin.data.len() as u64;
        let src = ObjectSource {
            origin: Arc::new(origin),
            key: Key::from_segments(&["k"]).unwrap(),
            meta: ObjectMeta {
                size,
                last_modified: SystemTime::UNIX_EPOCH,
                version: super::super::StoreVersion {
                    etag: Some("\"e\"".into()),
                    version: None,
                },
            },
            held: None,
            xor: 0,
            opened: Arc::default(),
            on_changed: Arc::new(move || {
                changed.fetch_add(1, Ordering::SeqCst);
            }),
        };
        ObjectBody::new(src, segments)
    }

    fn slices(ranges: &[(u64, u64)]) -> Vec<Segment> {
        ranges
            .iter()
            .flat_map(|&(start, end)| {
                [
                    Segment::Static(Bytes::from_static(b"|")),
                    Segment::Slice(ByteRange { start, end }),
                ]
            })
            .collect()
    }

    #[tokio::test]
    async fn plays_each_slice_from_one_read() {
        let data: Vec<u8> = (0..=255).collect();
        let changed = Arc::new(AtomicUsize::new(0));
        let faulty = Faulty {
            data: data.clone(),
            extra: 0,
            changed_at: None,
        };
        let b = body(faulty, slices(&[(10, 19), (0, 3)]), changed.clone());
        assert_eq!(b.len(), 16);
        let got = b.collect().await.unwrap().to_bytes();
        let mut want = b"|".to_vec();
        want.extend_from_slice(&data[10..20]);
        want.push(b'|');
        want.extend_from_slice(&data[..4]);
        assert_eq!(&got[..], &want[..]);
        assert_eq!(changed.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn a_store_sending_too_few_or_too_many_bytes_aborts() {
        for extra in [-3, 2] {
            let faulty = Faulty {
                data: vec![7; 100],
                extra,
                changed_at: None,
            };
            let b = body(faulty, slices(&[(10, 49)]), Arc::default());
            assert!(b.collect().await.is_err(), "extra {extra}");
        }
    }

    #[tokio::test]
    async fn a_replaced_object_aborts_before_the_next_part_and_is_forgotten() {
        let changed = Arc::new(AtomicUsize::new(0));
        let faulty = Faulty {
            data: vec![1; 100],
            extra: 0,
            changed_at: Some(50),
        };
        let mut b = body(faulty, slices(&[(0, 9), (50, 59)]), changed.clone());
        let mut sent = Vec::new();
        let err = loop {
            match b.frame().await {
                Some(Ok(frame)) => sent.extend_from_slice(&frame.into_data().unwrap()),
                Some(Err(e)) => break e,
                None => panic!("the body ended without an error"),
            }
        };
        assert!(err.to_string().contains("changed"), "{err}");
        // the first part and the second part's boundary, not a byte more
        assert_eq!(sent.len(), 1 + 10 + 1);
        assert_eq!(changed.load(Ordering::SeqCst), 1);
        assert!(b.frame().await.is_none(), "nothing after the error");
    }
}
