//! Response bodies streamed from a representation's [`Source`].
//!
//! A [`FileBody`] plays a list of [`Segment`]s (framing bytes and slices of
//! the representation) in order. File slices are read in bounded chunks on
//! the blocking pool, so memory stays the same whatever the file or range
//! size. It announces its exact length (hyper frames the response with it),
//! and it checks after every read that the file is still the version the
//! headers describe: if the file shrank, was rewritten or was removed, it
//! fails, and hyper aborts the connection instead of sending bytes that do
//! not match the headers.

use std::fs::File;
use std::future::Future as _;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Weak};
use std::task::{ready, Context, Poll};

use bytes::{Bytes, BytesMut};
use http_body::{Frame, SizeHint};
use sha2::{Digest as _, Sha256};
use tokio::task::JoinHandle;

use crate::fs::{FileStamp, Prefetched};
use crate::rfc::multipart::{Segment, Segments};
use crate::rfc::range::ByteRange;

/// Bytes read from the file per chunk.
pub const CHUNK: usize = 256 * 1024;

type ReadResult = io::Result<Bytes>;

/// Where a representation's bytes come from.
#[derive(Debug, Clone)]
pub enum Source {
    /// An open file, streamed.
    File(FileSource),
    /// Bytes held in memory (a derived representation, e.g. a gzip of the file).
    Memory(Bytes),
    /// Slices of a file read beforehand, each with its file offset (see
    /// [`capture`]); a body over them may only ask for bytes they hold.
    Pieces(Arc<[(u64, Bytes)]>),
    /// One version of an object in a store, played by
    /// [`crate::origin::body::ObjectBody`] (never by a [`FileBody`]).
    Object(crate::origin::body::ObjectSource),
}

/// An open file as a byte source.
#[derive(Debug, Clone)]
pub struct FileSource {
    /// The open file.
    pub file: Arc<File>,
    /// Its path, for log lines.
    pub path: Arc<PathBuf>,
    /// The version the response describes.
    pub stamp: FileStamp,
    /// Every byte is XORed with this (0: the file as it is). Quirks use it to
    /// derive a second version of a file of the same size.
    pub xor: u8,
    /// Bytes read when the file was opened (already checked against `stamp`).
    pub prefetched: Option<Prefetched>,
    /// Check the bytes sent against a digest (a racy one; see
    /// [`crate::hashcache`]): the whole file is hashed in order as the body
    /// is sent (the bytes between and after the slices sent are read for it
    /// too), and the last slice chunk is withheld, the response aborted, if
    /// the file's bytes are not the digest's. See [`verifiable`].
    pub verify: Option<Verify>,
}

/// What [`FileSource::verify`] checks against, and whom to tell when the
/// bytes turn out to be other ones.
#[derive(Clone)]
pub struct Verify {
    /// The digest the headers announced.
    pub digest: [u8; 32],
    /// Called once when the bytes did not match (forget the cached digest).
    pub on_mismatch: Arc<dyn Fn() + Send + Sync>,
}

impl std::fmt::Debug for Verify {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verify")
            .field("digest", &hex::encode(self.digest))
            .finish_non_exhaustive()
    }
}

impl Source {
    /// Bytes `offset..offset + len` if they are already in memory (a memory
    /// source, or a file's prefetched slice), XOR mask applied.
    fn held(&self, offset: u64, len: u64) -> Option<Bytes> {
        match self {
            Source::Memory(bytes) => {
                let end = offset.checked_add(len)?;
                (end <= bytes.len() as u64).then(|| bytes.slice(offset as usize..end as usize))
            }
            Source::Pieces(pieces) => pieces.iter().find_map(|(start, bytes)| {
                let from = offset.checked_sub(*start)?;
                let to = from.checked_add(len)?;
                (to <= bytes.len() as u64).then(|| bytes.slice(from as usize..to as usize))
            }),
            Source::File(f) => {
                let chunk = f.prefetched.as_ref()?.slice(offset, len)?;
                Some(xored(chunk, f.xor))
            }
            Source::Object(o) => o.held(offset, len),
        }
    }
}

/// `bytes` with every byte XORed with `xor` (a derived version's; see
/// [`FileSource::xor`]).
pub(crate) fn xored(bytes: Bytes, xor: u8) -> Bytes {
    match xor {
        0 => bytes,
        x => bytes.iter().map(|b| b ^ x).collect(),
    }
}

/// A streaming body over segments of one [`Source`]. See the module docs.
pub struct FileBody {
    source: Source,
    segments: Segments,
    remaining: u64,
    pending: Option<JoinHandle<PendingRead>>,
    /// The running hash of the file, when the body is verified (`None`
    /// inside while a read holds it).
    verifying: Option<(Option<Hashing>, Verify)>,
    /// Held while the body lives: a verifying pass stops when it is gone.
    /// Made when the first such pass starts: most bodies never verify.
    interest: Option<Arc<()>>,
    /// Whether reading it whole at once ([`FileBody::gather_cached`]) was tried.
    gather_tried: bool,
    /// The last chunk read on the async worker, kept to read the next one
    /// into once the writer has let go of it ([`chunk_buffer`]).
    spare: Option<Bytes>,
}

/// A read in flight: the chunk, and the running hash when verifying.
type PendingRead = io::Result<(Bytes, Option<Hashing>)>;

/// Slices of a file with their file offsets.
pub type Pieces = Vec<(u64, Bytes)>;

/// A hash of a file's bytes from offset 0 up to `pos`.
struct Hashing {
    hasher: Sha256,
    pos: u64,
}

/// Whether a body of these segments can be verified as it is sent: its
/// slices are in file order and do not overlap.
pub fn verifiable(segments: &Segments) -> bool {
    let mut pos = 0;
    segments.iter().all(|s| match s {
        Segment::Static(_) => true,
        Segment::Slice(r) => {
            let ok = r.start >= pos;
            pos = r.end + 1;
            ok
        }
    })
}

impl FileBody {
    /// A body playing `segments` from `source`; a file source must still
    /// match its stamp while it is read.
    pub fn new(source: Source, segments: impl Into<Segments>) -> Self {
        let segments = segments.into();
        let remaining = segments.len();
        let verifying = match &source {
            Source::File(f) if f.xor == 0 && verifiable(&segments) => f.verify.clone().map(|v| {
                let start = Hashing {
                    hasher: Sha256::new(),
                    pos: 0,
                };
                (Some(start), v)
            }),
            _ => None,
        };
        FileBody {
            source,
            segments,
            remaining,
            pending: None,
            verifying,
            interest: None,
            gather_tried: false,
            spare: None,
        }
    }

    /// Exact number of bytes the body will yield.
    pub fn len(&self) -> u64 {
        self.remaining
    }
}

/// A body of several slices up to this size is read whole in one go
/// ([`FileBody::gather_cached`]).
pub const INLINE_MAX: u64 = 64 * 1024;

/// Read `len` bytes at `offset` if they are all in the page cache, without
/// blocking; `None` when they are not (or the kernel cannot say). The
/// buffer is the previous chunk's, `spare`, when it can be had back
/// ([`chunk_buffer`]); the chunk read is kept there in turn.
fn read_cached(
    src: &FileSource,
    offset: u64,
    len: usize,
    spare: &mut Option<Bytes>,
) -> Option<ReadResult> {
    let mut buf = chunk_buffer(spare, len);
    if let Err(e) = read_into_cached(src, &mut buf, offset)? {
        return Some(Err(e));
    }
    Some(checked(src, &mut buf).map(|()| {
        let chunk = buf.freeze();
        *spare = Some(chunk.clone());
        chunk
    }))
}

/// A buffer of `len` bytes to read a chunk into: the previous chunk's own,
/// `spare`, if nothing else holds it any more (the writer has sent it and
/// let go), else a new one. `preadv2` needs initialized memory, so a new
/// buffer is zeroed, and in a bulk download that memset was 3.6 % of the
/// server's CPU (S4x4, `perf record`); the reused one already is.
fn chunk_buffer(spare: &mut Option<Bytes>, len: usize) -> BytesMut {
    match spare.take().map(Bytes::try_into_mut) {
        Some(Ok(mut buf)) => {
            // zeroes only what the previous chunk did not cover
            buf.resize(len, 0);
            buf
        }
        _ => BytesMut::zeroed(len),
    }
}

/// Fill `buf` from `offset` out of the page cache only (no stamp check);
/// `None` when some of it is not cached.
fn read_into_cached(src: &FileSource, buf: &mut [u8], offset: u64) -> Option<io::Result<()>> {
    match crate::fs::read_exact_cached(&src.file, buf, offset) {
        Ok(()) => Some(Ok(())),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => None,
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Some(Err(shrank())),
        Err(e) => Some(Err(e)),
    }
}

fn shrank() -> io::Error {
    io::Error::new(io::ErrorKind::UnexpectedEof, "file shrank while being sent")
}

/// Read `len` bytes at `offset` and check the file is still the source's version.
fn read_chunk(src: &FileSource, offset: u64, len: usize) -> ReadResult {
    // Positioned reads only: one descriptor serves every request for a file
    // (the file-state cache), so nothing may move its position. pread into
    // the buffer's spare capacity: no 256 KiB memset per chunk.
    let mut buf = Vec::with_capacity(len);
    while buf.len() < len {
        let at = offset + buf.len() as u64;
        match rustix::io::pread(&*src.file, rustix::buffer::spare_capacity(&mut buf), at) {
            Ok(0) => return Err(shrank()),
            Ok(_) => {}
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    checked(src, &mut buf)?;
    Ok(Bytes::from(buf))
}

/// Check that the file is still the source's version now that `buf` has
/// been read from it, and apply the source's XOR mask to `buf`.
fn checked(src: &FileSource, buf: &mut [u8]) -> io::Result<()> {
    unchanged(src)?;
    if src.xor != 0 {
        buf.iter_mut().for_each(|b| *b ^= src.xor);
    }
    Ok(())
}

/// Whether the file is still the source's version, after a read: a change
/// that happened before or during the read shows up in this `fstat`.
fn unchanged(src: &FileSource) -> io::Result<()> {
    match FileStamp::of(&src.file.metadata()?) == src.stamp {
        true => Ok(()),
        false => Err(io::Error::other("file changed while being sent")),
    }
}

/// Add the file's bytes `from..to` to `hashing` (which must be at `from`);
/// stops when nobody holds `interest` any more.
fn hash_span(file: &File, hashing: &mut Hashing, to: u64, interest: &Weak<()>) -> io::Result<()> {
    let mut buf = vec![0u8; CHUNK];
    while hashing.pos < to {
        if interest.strong_count() == 0 {
            return Err(io::Error::other("nobody waits for this body any more"));
        }
        let want = (to - hashing.pos).min(CHUNK as u64) as usize;
        let n = file.read_at(&mut buf[..want], hashing.pos)?;
        if n == 0 {
            return Err(shrank());
        }
        hashing.hasher.update(&buf[..n]);
        hashing.pos += n as u64;
    }
    Ok(())
}

/// A verified read (blocking): hash up to `offset`, read and hash the chunk,
/// and when it is the last slice chunk, hash the rest of the file and
/// compare; the chunk comes back only if it may be sent.
fn read_verified(
    src: &FileSource,
    offset: u64,
    len: usize,
    mut hashing: Hashing,
    last: bool,
    digest: [u8; 32],
    interest: &Weak<()>,
) -> io::Result<(Bytes, Hashing)> {
    hash_span(&src.file, &mut hashing, offset, interest)?;
    let chunk = read_chunk(src, offset, len)?;
    hashing.hasher.update(&chunk);
    hashing.pos += chunk.len() as u64;
    if last {
        hash_span(&src.file, &mut hashing, src.stamp.size, interest)?;
        let got: [u8; 32] = hashing.hasher.clone().finalize().into();
        if got != digest {
            return Err(io::Error::other(Mismatch));
        }
    }
    Ok((chunk, hashing))
}

/// Read the whole file once, in order, hashing it and keeping the bytes of
/// `ranges`: the bytes and the digest come from the same reads, so they agree
/// whatever a writer does. Blocking.
pub fn capture(
    file: &File,
    size: u64,
    ranges: &[ByteRange],
    interest: &Weak<()>,
) -> io::Result<([u8; 32], Pieces)> {
    let mut pieces: Vec<Vec<u8>> = ranges
        .iter()
        .map(|r| Vec::with_capacity(r.len() as usize))
        .collect();
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; CHUNK];
    let mut pos = 0u64;
    while pos < size {
        if interest.strong_count() == 0 {
            return Err(io::Error::other("nobody waits for these parts any more"));
        }
        let want = (size - pos).min(CHUNK as u64) as usize;
        let n = file.read_at(&mut buf[..want], pos)?;
        if n == 0 {
            return Err(shrank());
        }
        let chunk = &buf[..n];
        hasher.update(chunk);
        let end = pos + n as u64; // exclusive
        for (r, piece) in ranges.iter().zip(pieces.iter_mut()) {
            let (from, to) = (r.start.max(pos), (r.end + 1).min(end));
            if from < to {
                piece.extend_from_slice(&chunk[(from - pos) as usize..(to - pos) as usize]);
            }
        }
        pos = end;
    }
    let pieces = ranges
        .iter()
        .zip(pieces)
        .map(|(r, p)| (r.start, Bytes::from(p)))
        .collect();
    Ok((hasher.finalize().into(), pieces))
}

/// A verified body's file did not hash to the announced digest.
#[derive(Debug, thiserror::Error)]
#[error("file changed under its stamp (its bytes are not those of the ETag)")]
struct Mismatch;

/// Who checks that bytes read for [`FileBody::gather_into`] are of the
/// body's version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Check {
    /// It does, with an `fstat` after its reads.
    Now,
    /// The caller does, with a `stat` begun after the reads
    /// ([`crate::filestate::FileStates::confirm`]), before it sends them.
    Later,
}

impl FileBody {
    /// Append the whole body to `out` when all its bytes are at hand (held,
    /// or in the page cache) with one stamp check for all its reads: the
    /// fast path's answer then leaves in one write, with no buffer of its
    /// own. `None`: some bytes are not at hand, or the body must be read
    /// chunk by chunk (verified, a quirk's XORed bytes, over
    /// [`INLINE_MAX`]); `out` is as it was and the body untouched. An error
    /// (the file changed since the head was made, or could not be read):
    /// `out` as it was, the body spent, nothing logged (the caller, which
    /// has sent nothing yet, answers afresh).
    ///
    /// `check`: whether the reads are checked here (an `fstat` after
    /// them), or by the caller ([`Check::Later`]).
    pub(crate) fn gather_into(
        &mut self,
        out: &mut Vec<u8>,
        check: Check,
    ) -> Option<io::Result<()>> {
        let result = self.gather(out, 1, check)?;
        self.segments.clear();
        self.remaining = 0;
        Some(result)
    }

    /// A small body of several slices (a multipart answer) read whole, as
    /// [`FileBody::gather_into`] reads it, and sent as one frame. `None`:
    /// read it slice by slice.
    fn gather_cached(&mut self) -> Option<ReadResult> {
        let mut buf = Vec::new();
        Some(
            self.gather(&mut buf, 2, Check::Now)?
                .map(|()| Bytes::from(buf)),
        )
    }

    /// Append the body's bytes to `buf` if they are all at hand and it has
    /// at least `min_slices` slices (see [`FileBody::gather_into`]); the
    /// segments are spent unless it returns `None`.
    fn gather(
        &mut self,
        buf: &mut Vec<u8>,
        min_slices: usize,
        check: Check,
    ) -> Option<io::Result<()>> {
        let Source::File(src) = &self.source else {
            return None;
        };
        let slices = self
            .segments
            .iter()
            .filter(|s| matches!(s, Segment::Slice(_)));
        if self.verifying.is_some()
            || src.xor != 0
            || self.remaining > INLINE_MAX
            || slices.count() < min_slices
        {
            return None;
        }
        let start = buf.len();
        buf.reserve(self.remaining as usize);
        let mut read = false;
        for segment in self.segments.iter() {
            match segment {
                Segment::Static(bytes) => buf.extend_from_slice(bytes),
                Segment::Slice(range) => {
                    if let Some(held) = self.source.held(range.start, range.len()) {
                        buf.extend_from_slice(&held);
                        continue;
                    }
                    let at = buf.len();
                    buf.resize(at + range.len() as usize, 0);
                    match read_into_cached(src, &mut buf[at..], range.start) {
                        Some(Ok(())) => read = true,
                        failed => {
                            buf.truncate(start);
                            return failed;
                        }
                    }
                }
            }
        }
        self.segments.clear();
        // held bytes were checked when read; one check covers the reads here
        let result = match (read, check) {
            (true, Check::Now) => unchanged(src),
            _ => Ok(()),
        };
        if result.is_err() {
            buf.truncate(start);
        }
        Some(result)
    }

    /// The frame for a finished read: its bytes, or the error that aborts
    /// the response (nothing more is sent).
    fn finish_read(&mut self, result: ReadResult) -> Result<Frame<Bytes>, io::Error> {
        match result {
            Ok(chunk) => {
                self.remaining -= chunk.len() as u64;
                Ok(Frame::data(chunk))
            }
            Err(e) => {
                if let Source::File(f) = &self.source {
                    tracing::warn!(path = %f.path.display(), error = %e, "aborting response");
                }
                self.segments.clear();
                self.remaining = 0;
                Err(e)
            }
        }
    }
}

impl http_body::Body for FileBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let this = &mut *self;
        if !this.gather_tried {
            this.gather_tried = true;
            if let Some(read) = this.gather_cached() {
                return Poll::Ready(Some(this.finish_read(read)));
            }
        }
        loop {
            if let Some(task) = this.pending.as_mut() {
                let joined = ready!(Pin::new(task).poll(cx));
                this.pending = None;
                let result = joined.unwrap_or_else(|e| Err(io::Error::other(e)));
                let result = result.map(|(chunk, hashing)| {
                    if let (Some((slot, _)), Some(h)) = (this.verifying.as_mut(), hashing) {
                        *slot = Some(h);
                    }
                    chunk
                });
                if let (Err(e), Some((_, verify))) = (&result, &this.verifying) {
                    if e.get_ref().is_some_and(|inner| inner.is::<Mismatch>()) {
                        (verify.on_mismatch)();
                    }
                }
                return Poll::Ready(Some(this.finish_read(result)));
            }
            let Some(segment) = this.segments.pop_front() else {
                return Poll::Ready(None);
            };
            match segment {
                Segment::Static(bytes) => {
                    this.remaining -= bytes.len() as u64;
                    return Poll::Ready(Some(Ok(Frame::data(bytes))));
                }
                Segment::Slice(range) => {
                    let len = range.len().min(CHUNK as u64);
                    if len < range.len() {
                        let mut rest = range;
                        rest.start += len;
                        this.segments.push_front(Segment::Slice(rest));
                    }
                    let offset = range.start;
                    if let (Some((hashing, verify)), Source::File(src)) =
                        (this.verifying.as_mut(), &this.source)
                    {
                        // verified: every read goes through the pool, in order
                        let last = !this.segments.iter().any(|s| matches!(s, Segment::Slice(_)));
                        let hashing = hashing.take().expect("one read at a time");
                        let (src, digest) = (src.clone(), verify.digest);
                        let interest = Arc::downgrade(this.interest.get_or_insert_default());
                        // it may hash the whole file: off the blocking pool
                        this.pending = Some(tokio::spawn(async move {
                            crate::hashcache::on_hash_thread(move || {
                                read_verified(
                                    &src,
                                    offset,
                                    len as usize,
                                    hashing,
                                    last,
                                    digest,
                                    &interest,
                                )
                                .map(|(chunk, h)| (chunk, Some(h)))
                            })
                            .await?
                        }));
                        continue;
                    }
                    if let Some(chunk) = this.source.held(offset, len) {
                        return Poll::Ready(Some(this.finish_read(Ok(chunk))));
                    }
                    if let Source::File(src) = &this.source {
                        // On the async worker when the page cache holds the
                        // chunk (`preadv2` with `RWF_NOWAIT` never waits for
                        // the disk): a pool trip per 256 KiB halved what four
                        // bulk downloads got from one core. The pool reads
                        // anything else.
                        if let Some(read) = read_cached(src, offset, len as usize, &mut this.spare)
                        {
                            return Poll::Ready(Some(this.finish_read(read)));
                        }
                        let src = src.clone();
                        this.pending = Some(tokio::task::spawn_blocking(move || {
                            read_chunk(&src, offset, len as usize).map(|c| (c, None))
                        }));
                    } else {
                        // bytes neither held nor in a file: never skip them silently
                        let missing =
                            io::Error::other("the body's source does not hold these bytes");
                        return Poll::Ready(Some(this.finish_read(Err(missing))));
                    }
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0 && self.pending.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
}

impl Drop for FileBody {
    fn drop(&mut self) {
        // A client that hung up leaves a read in flight; it is harmless, but don't wait on it.
        if let Some(task) = self.pending.take() {
            task.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rfc::range::ByteRange;
    use http_body_util::BodyExt as _;
    use std::path::Path;

    fn multipart(parts: &[(u64, u64)]) -> Vec<Segment> {
        let mut segments = Vec::new();
        for &(start, end) in parts {
            segments.push(Segment::Static(Bytes::from_static(b"--b\r\n\r\n")));
            segments.push(Segment::Slice(ByteRange { start, end }));
        }
        segments.push(Segment::Static(Bytes::from_static(b"\r\n--b--\r\n")));
        segments
    }

    fn body(file: &Arc<File>, path: &Path, stamp: FileStamp, parts: &[(u64, u64)]) -> FileBody {
        let source = FileSource {
            file: Arc::clone(file),
            path: Arc::new(path.to_path_buf()),
            stamp,
            xor: 0,
            prefetched: None,
            verify: None,
        };
        FileBody::new(Source::File(source), multipart(parts))
    }

    /// A file of 300,000 known bytes, open, with its stamp.
    fn test_file() -> (
        tempfile::TempDir,
        std::path::PathBuf,
        Vec<u8>,
        Arc<File>,
        FileStamp,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &data).unwrap();
        let file = Arc::new(File::open(&path).unwrap());
        let stamp = FileStamp::of(&file.metadata().unwrap());
        (dir, path, data, file, stamp)
    }

    /// `prefix`, then the multipart body of `parts` of `data` as
    /// [`multipart`] frames it.
    fn framed(prefix: &[u8], data: &[u8], parts: &[(u64, u64)]) -> Vec<u8> {
        let mut want = prefix.to_vec();
        for &(start, end) in parts {
            want.extend_from_slice(b"--b\r\n\r\n");
            want.extend_from_slice(&data[start as usize..=end as usize]);
        }
        want.extend_from_slice(b"\r\n--b--\r\n");
        want
    }

    /// Rewrite `path` in place, same size, after the headers were made: a
    /// stamp that cannot equal the old one (coarse clocks aside).
    fn rewrite_in_place(path: &Path) {
        let writer = std::fs::OpenOptions::new().write(true).open(path).unwrap();
        writer.write_all_at(b"other bytes", 200_010).unwrap();
        writer
            .set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_secs(1))
            .unwrap();
    }

    /// A multipart body's parts are read together and sent only if one
    /// `fstat` after the reads finds the version the headers name: no part is
    /// read ahead with a check of its own (`range::lone_spec`), so that check
    /// is all that stands between a rewrite and wrong bytes.
    #[tokio::test]
    async fn parts_read_together_are_sent_only_if_still_the_version() {
        let (_dir, path, data, file, stamp) = test_file();
        let parts = [(0, 99), (200_000, 200_099)];
        let mut unchanged = body(&file, &path, stamp, &parts);
        let frame = unchanged.frame().await.unwrap().unwrap();
        let want = framed(b"", &data, &parts);
        assert_eq!(frame.into_data().unwrap(), want, "one frame, every part");
        assert!(unchanged.frame().await.is_none());

        rewrite_in_place(&path);
        let mut changed = body(&file, &path, stamp, &parts);
        let err = changed.frame().await.unwrap().unwrap_err();
        assert!(err.to_string().contains("changed"), "{err}");
        assert!(changed.frame().await.is_none(), "nothing after the error");
    }

    /// A chunk read on the async worker goes into the previous chunk's
    /// buffer once the writer has let go of it (no allocation, no memset),
    /// and into a new one while the writer still holds it: every chunk is
    /// the file's bytes either way, XORed where the source says so.
    #[tokio::test]
    async fn a_chunk_reuses_the_previous_one_s_buffer_only_when_released() {
        let (_dir, path, _, file, stamp) = test_file();
        // 700,000 bytes, three chunks (the last one shorter)
        let data: Vec<u8> = (0..700_000u32).map(|i| (i % 253) as u8).collect();
        std::fs::write(&path, &data).unwrap();
        let stamp2 = FileStamp::of(&file.metadata().unwrap());
        assert_ne!(stamp2, stamp);
        for xor in [0u8, 0x5a] {
            let source = FileSource {
                file: Arc::clone(&file),
                path: Arc::new(path.clone()),
                stamp: stamp2,
                xor,
                prefetched: None,
                verify: None,
            };
            let whole = ByteRange {
                start: 0,
                end: data.len() as u64 - 1,
            };
            let want: Vec<u8> = data.iter().map(|b| b ^ xor).collect();

            // released before the next read: the same buffer every time
            let mut released =
                FileBody::new(Source::File(source.clone()), vec![Segment::Slice(whole)]);
            let mut got = Vec::new();
            let mut buffers = Vec::new();
            while let Some(frame) = released.frame().await {
                let chunk = frame.unwrap().into_data().unwrap();
                buffers.push(chunk.as_ptr());
                got.extend_from_slice(&chunk);
            }
            assert_eq!(got, want, "xor {xor:#x}");
            assert_eq!(buffers.len(), 3);
            assert!(buffers.iter().all(|&b| b == buffers[0]), "{buffers:?}");

            // held while the next is read: a buffer of its own each
            let mut held = FileBody::new(Source::File(source), vec![Segment::Slice(whole)]);
            let mut chunks = Vec::new();
            while let Some(frame) = held.frame().await {
                chunks.push(frame.unwrap().into_data().unwrap());
            }
            assert_eq!(chunks.concat(), want, "xor {xor:#x}");
            assert_ne!(chunks[0].as_ptr(), chunks[1].as_ptr());
            assert_ne!(chunks[1].as_ptr(), chunks[2].as_ptr());
        }
    }

    /// The fast path's `gather_into` appends the whole body after what the
    /// buffer holds (the head) only if the version is still the one the
    /// head names; else the buffer is left as it was (nothing of the body
    /// goes out) and the body is spent with an error.
    #[test]
    fn a_body_gathered_into_the_head_s_buffer_is_checked() {
        let (_dir, path, data, file, stamp) = test_file();
        // one part, as a single-range answer reads it, and several
        for parts in [&[(5, 4100)][..], &[(0, 99), (200_000, 200_099)][..]] {
            let mut out = b"HEAD\r\n\r\n".to_vec();
            let mut gathered = body(&file, &path, stamp, parts);
            assert!(matches!(
                gathered.gather_into(&mut out, Check::Now),
                Some(Ok(()))
            ));
            assert_eq!(out, framed(b"HEAD\r\n\r\n", &data, parts), "{parts:?}");
            assert_eq!(gathered.len(), 0, "spent");
        }

        // a body over INLINE_MAX is read chunk by chunk: untouched
        let mut out = b"HEAD".to_vec();
        let mut big = body(&file, &path, stamp, &[(0, 100_000)]);
        assert!(big.gather_into(&mut out, Check::Now).is_none());
        assert_eq!(out, b"HEAD");
        assert_eq!(big.len(), 100_001 + 7 + 9, "untouched");

        rewrite_in_place(&path);
        let mut out = b"HEAD".to_vec();
        let mut changed = body(&file, &path, stamp, &[(0, 99), (200_000, 200_099)]);
        let err = changed
            .gather_into(&mut out, Check::Now)
            .unwrap()
            .unwrap_err();
        assert!(err.to_string().contains("changed"), "{err}");
        assert_eq!(out, b"HEAD", "no byte of the body");
        assert_eq!(changed.len(), 0, "spent");

        // left to the caller's check (`FileStates::confirm`, a `stat` of
        // the path after the reads, which sees the change): no `fstat` here
        let mut out = b"HEAD".to_vec();
        let mut unchecked = body(&file, &path, stamp, &[(0, 99)]);
        assert!(matches!(
            unchecked.gather_into(&mut out, Check::Later),
            Some(Ok(()))
        ));
        let framed_len = framed(b"HEAD", &data, &[(0, 99)]).len();
        assert_eq!(out.len(), framed_len, "read, not checked");
    }
}
