//! encoded-range's gzip encodings: one per file or object version,
//! compressed once (an object's bytes are read whole, in one pinned read,
//! then compressed as a file's are).
//!
//! An encoding is keyed by the version's content digest (the SHA-256 its
//! ETag is made of) and checked against it as it is made, so a cached
//! encoding is always the gzip of exactly that content. Requests for a
//! version being compressed wait for that one compression (single-flight);
//! the compression runs to its end even if they all leave, and its result
//! is kept. The cache holds at most [`ENCODED_CACHE_BYTES`] of encodings,
//! least recently used forgotten first; at most [`COMPRESSIONS`] files are
//! compressed at once; files over [`ENCODED_MAX`] are refused. Memory is thus
//! about the cache plus one encoding per compression running, and never
//! grows with the number of requests.

use std::collections::{BTreeMap, HashMap};
use std::io::{self, Write as _};
use std::os::unix::fs::FileExt;
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use sha2::{Digest as _, Sha256};
use tokio::sync::{watch, Semaphore};

use crate::body::FileSource;
use crate::origin::body::ObjectSource;

/// The bytes an encoding is made of: a file's or an object version's, each
/// byte XORed with the source's mask.
#[derive(Debug, Clone)]
pub enum Plain {
    /// An open file.
    File(FileSource),
    /// One version of an object.
    Object(ObjectSource),
}

/// What [`compress`] reads: a file, or bytes already in memory.
enum Input {
    File(FileSource),
    Held { bytes: Bytes, xor: u8 },
}

/// The largest file encoded-range compresses (in memory); larger ones get 503.
pub const ENCODED_MAX: u64 = 32 * 1024 * 1024;
/// Most bytes of encodings kept (per server): twice [`ENCODED_MAX`], so the
/// encoding of any file that is compressed at all can be kept.
pub const ENCODED_CACHE_BYTES: u64 = 2 * ENCODED_MAX;
/// Most compressions running at once (per server).
pub const COMPRESSIONS: usize = 2;

/// Bytes read, hashed and compressed at a time.
const READ_CHUNK: usize = 256 * 1024;

/// The gzip of one version.
#[derive(Debug)]
pub struct Encoded {
    /// The gzip bytes (no name, mtime 0: the same on every run and machine).
    pub gz: Bytes,
    /// Their SHA-256.
    pub sha256: [u8; 32],
}

/// What waiters of a compression get: the encoding, or why it failed.
type Outcome = Result<Arc<Encoded>, Arc<str>>;

/// Per-server cache of encodings (see the module docs).
#[derive(Debug)]
pub struct GzCache {
    budget: u64,
    permits: Arc<Semaphore>,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// digest -> (encoding, tick of last use)
    ready: HashMap<[u8; 32], (Arc<Encoded>, u64)>,
    /// tick of last use -> digest: the oldest first
    by_use: BTreeMap<u64, [u8; 32]>,
    /// Bytes of the encodings in `ready`.
    bytes: u64,
    tick: u64,
    /// Compressions under way, by digest.
    pending: HashMap<[u8; 32], watch::Receiver<Option<Outcome>>>,
    /// Compressions started, ever (for tests).
    started: u64,
}

impl Default for GzCache {
    fn default() -> Self {
        GzCache::with_budget(ENCODED_CACHE_BYTES)
    }
}

impl GzCache {
    /// A cache that keeps at most `budget` bytes of encodings.
    pub fn with_budget(budget: u64) -> Self {
        GzCache {
            budget,
            permits: Arc::new(Semaphore::new(COMPRESSIONS)),
            inner: Mutex::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Bytes of encodings kept.
    pub fn bytes(&self) -> u64 {
        self.lock().bytes
    }

    /// Encodings kept.
    pub fn len(&self) -> usize {
        self.lock().ready.len()
    }

    /// True when no encoding is kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Compressions started since the cache was made.
    pub fn compressions(&self) -> u64 {
        self.lock().started
    }

    /// The gzip of the `length` bytes of `src` (XORed with its mask), whose
    /// SHA-256 is `digest`: from the cache, from the compression of it under
    /// way, or from a new one. Needs a tokio runtime.
    pub async fn get(
        self: &Arc<Self>,
        src: Plain,
        length: u64,
        digest: [u8; 32],
    ) -> io::Result<Arc<Encoded>> {
        let mut rx = {
            let mut inner = self.lock();
            inner.tick += 1;
            let tick = inner.tick;
            let hit = inner.ready.get_mut(&digest).map(|(enc, used)| {
                let old = std::mem::replace(used, tick);
                (Arc::clone(enc), old)
            });
            if let Some((enc, old)) = hit {
                inner.by_use.remove(&old);
                inner.by_use.insert(tick, digest);
                return Ok(enc);
            }
            match inner.pending.get(&digest) {
                Some(rx) => rx.clone(),
                None => {
                    let (tx, rx) = watch::channel(None);
                    inner.pending.insert(digest, rx.clone());
                    inner.started += 1;
                    drop(inner);
                    self.start(src, length, digest, tx);
                    rx
                }
            }
        };
        let outcome = rx
            .wait_for(Option::is_some)
            .await
            .map_err(|_| io::Error::other("compression failed"))?
            .clone()
            .expect("waited for it");
        outcome.map_err(|why| io::Error::other(why.to_string()))
    }

    /// Compress in the background (bounded by the permits), keep the result,
    /// and tell the waiters.
    fn start(
        self: &Arc<Self>,
        src: Plain,
        length: u64,
        digest: [u8; 32],
        tx: watch::Sender<Option<Outcome>>,
    ) {
        let cache = Arc::clone(self);
        tokio::spawn(async move {
            // forgets the pending entry however this task ends
            let mut guard = Pending {
                cache: &cache,
                digest,
                done: false,
            };
            let permit = Arc::clone(&cache.permits).acquire_owned().await;
            let outcome = match encode(src, length, Some(digest)).await {
                Ok(enc) => Ok(Arc::new(enc)),
                Err(e) => Err(Arc::from(e.to_string())),
            };
            drop(permit);
            cache.finish(digest, &outcome);
            guard.done = true;
            let _ = tx.send(Some(outcome));
        });
    }

    /// A compression ended: keep its encoding if it fits, forgetting the
    /// least recently used ones to make room.
    fn finish(&self, digest: [u8; 32], outcome: &Outcome) {
        let mut inner = self.lock();
        inner.pending.remove(&digest);
        let Ok(enc) = outcome else { return };
        let size = enc.gz.len() as u64;
        if size > self.budget {
            return;
        }
        while inner.bytes + size > self.budget {
            let Some((_, oldest)) = inner.by_use.pop_first() else {
                break;
            };
            if let Some((old, _)) = inner.ready.remove(&oldest) {
                inner.bytes -= old.gz.len() as u64;
            }
        }
        inner.tick += 1;
        let tick = inner.tick;
        inner.by_use.insert(tick, digest);
        inner.ready.insert(digest, (Arc::clone(enc), tick));
        inner.bytes += size;
    }
}

/// Removes a compression's pending entry if its task ends without finishing
/// (a panic, or the runtime shutting down).
struct Pending<'a> {
    cache: &'a GzCache,
    digest: [u8; 32],
    done: bool,
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.cache.lock().pending.remove(&self.digest);
        }
    }
}

/// Gzip the `length` bytes of `src` (see `compress`); an object's are
/// read whole first, pinned to its version.
pub async fn encode(src: Plain, length: u64, expect: Option<[u8; 32]>) -> io::Result<Encoded> {
    if length > ENCODED_MAX {
        return Err(io::Error::other("file too large to compress"));
    }
    let input = match src {
        Plain::File(file) => Input::File(file),
        Plain::Object(object) => Input::Held {
            bytes: object.read_whole().await.map_err(io::Error::other)?,
            xor: object.xor,
        },
    };
    tokio::task::spawn_blocking(move || compress(&input, length, expect))
        .await
        .map_err(|_| io::Error::other("compression failed"))?
}

/// Gzip the `length` bytes of `src`, XORed with its mask, reading them in
/// chunks. With `expect`, the bytes must hash to it and a file must still
/// be the version of its stamp, else it fails ("file changed"). Blocking.
fn compress(src: &Input, length: u64, expect: Option<[u8; 32]>) -> io::Result<Encoded> {
    let changed = || io::Error::other("file changed while being compressed");
    // a small file's bytes were read whole when it was opened (and an
    // object's just now): the digest is of that buffer; only a file read
    // here is checked against its stamp afterwards
    let (held, file, xor) = match src {
        Input::File(f) => match f.prefetched.as_ref().and_then(|p| p.slice(0, length)) {
            Some(bytes) => (bytes, None, f.xor),
            None => (Bytes::new(), Some(f), f.xor),
        },
        Input::Held { bytes, xor } if bytes.len() as u64 == length => (bytes.clone(), None, *xor),
        Input::Held { .. } => return Err(changed()),
    };
    // no name, mtime 0: the same bytes on every run and machine
    let mut enc = flate2::GzBuilder::new()
        .mtime(0)
        .write(Vec::new(), flate2::Compression::new(6));
    let mut hash = Sha256::new();
    let mut buf = vec![0u8; READ_CHUNK.min(length as usize)];
    let mut pos = 0u64;
    while pos < length {
        let n = (length - pos).min(READ_CHUNK as u64) as usize;
        let chunk = &mut buf[..n];
        match file {
            Some(f) => f.file.read_exact_at(chunk, pos)?,
            None => chunk.copy_from_slice(&held[pos as usize..pos as usize + n]),
        }
        chunk.iter_mut().for_each(|b| *b ^= xor);
        hash.update(&*chunk);
        enc.write_all(chunk)?;
        pos += n as u64;
    }
    if let Some(f) = file {
        if crate::fs::FileStamp::of(&f.file.metadata()?) != f.stamp {
            return Err(changed());
        }
    }
    if expect.is_some_and(|d| d != <[u8; 32]>::from(hash.finalize())) {
        return Err(changed());
    }
    let mut gz = enc.finish()?;
    gz.shrink_to_fit();
    let sha256 = Sha256::digest(&gz).into();
    Ok(Encoded {
        gz: Bytes::from(gz),
        sha256,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::FileStamp;
    use std::path::PathBuf;

    fn source(data: &[u8]) -> (tempfile::NamedTempFile, FileSource, [u8; 32]) {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(data).unwrap();
        f.flush().unwrap();
        let file = f.reopen().unwrap();
        let stamp = FileStamp::of(&file.metadata().unwrap());
        let src = FileSource {
            file: Arc::new(file),
            path: Arc::new(PathBuf::from("t")),
            stamp,
            xor: 0,
            prefetched: None,
            verify: None,
        };
        (f, src, Sha256::digest(data).into())
    }

    fn text(n: usize, salt: u8) -> Vec<u8> {
        (0..n)
            .map(|i| b"abcdefgh"[(i / 7 + usize::from(salt)) % 8])
            .collect()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_requests_share_one_compression() {
        let data = text(3 << 20, 0);
        let (_f, src, digest) = source(&data);
        let cache = Arc::new(GzCache::default());
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let (cache, src) = (Arc::clone(&cache), src.clone());
                tokio::spawn(
                    async move { cache.get(Plain::File(src), 3 << 20, digest).await.unwrap() },
                )
            })
            .collect();
        let mut all = Vec::new();
        for t in tasks {
            all.push(t.await.unwrap());
        }
        assert_eq!(cache.compressions(), 1);
        assert!(all.iter().all(|e| Arc::ptr_eq(e, &all[0])), "one encoding");
        assert_eq!(crate::quirks::transform::gunzip(&all[0].gz).unwrap(), data);
        assert_eq!(all[0].sha256, <[u8; 32]>::from(Sha256::digest(&all[0].gz)));
        // later requests are served from the cache
        cache.get(Plain::File(src), 3 << 20, digest).await.unwrap();
        assert_eq!(cache.compressions(), 1);
        assert_eq!(cache.len(), 1);
        assert_eq!(cache.bytes(), all[0].gz.len() as u64);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_cache_is_bounded_in_bytes() {
        let cache = Arc::new(GzCache::with_budget(2000));
        let mut sizes = Vec::new();
        let mut keep = Vec::new();
        for salt in 0..6u8 {
            // not compressible: ~620 bytes of gzip each
            let data: Vec<u8> = (0..20u8)
                .flat_map(|i| Sha256::digest([salt, i]))
                .take(600)
                .collect();
            let (f, src, digest) = source(&data);
            let enc = cache.get(Plain::File(src), 600, digest).await.unwrap();
            sizes.push(enc.gz.len() as u64);
            assert!(cache.bytes() <= 2000, "{}", cache.bytes());
            keep.push((f, digest));
        }
        assert!(cache.len() < 6, "some were forgotten");
        assert_eq!(cache.compressions(), 6);
        // too large for the budget: served, not kept
        let big = text(100_000, 1);
        let small_budget = Arc::new(GzCache::with_budget(10));
        let (_f, src, digest) = source(&big);
        let enc = small_budget
            .get(Plain::File(src), big.len() as u64, digest)
            .await
            .unwrap();
        assert_eq!(crate::quirks::transform::gunzip(&enc.gz).unwrap(), big);
        assert_eq!(small_budget.bytes(), 0);
        assert!(small_budget.is_empty());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_digest_that_is_not_of_the_bytes_is_refused_and_not_kept() {
        let data = text(10_000, 2);
        let (_f, src, _) = source(&data);
        let cache = Arc::new(GzCache::default());
        let e = cache
            .get(Plain::File(src.clone()), 10_000, [7; 32])
            .await
            .unwrap_err();
        assert!(e.to_string().contains("changed"), "{e}");
        assert!(cache.is_empty());
        assert!(cache.lock().pending.is_empty());
        // xor: the digest is of the XORed bytes
        let mut flipped = src;
        flipped.xor = 0xff;
        let x: Vec<u8> = data.iter().map(|b| b ^ 0xff).collect();
        let enc = cache
            .get(Plain::File(flipped), 10_000, Sha256::digest(&x).into())
            .await
            .unwrap();
        assert_eq!(crate::quirks::transform::gunzip(&enc.gz).unwrap(), x);
    }
}
