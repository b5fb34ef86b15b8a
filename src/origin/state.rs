//! The object-state layer: what the server knows about objects between
//! requests (their metadata, content digest, rendered header values and,
//! for a small object, its bytes), so that a warm request costs no store
//! request at all and at most one HEAD per revalidation interval.
//!
//! **Metadata** (a HEAD result) is trusted for `revalidate` after it was
//! fetched; then the next request sends a HEAD, and an unchanged version
//! (same store ETag, version id and size) keeps its entry. Lookups are
//! single-flight per key: requests that find no fresh entry for a key at
//! the same time share one HEAD (and, for a new version, one read or
//! hashing pass) and its answer, errors included.
//!
//! **Absence** is kept the same way: a key the store has no object at
//! (HEAD: not found) gets an entry too, with, once a listing was asked for
//! it, whether keys lie below it (a "directory"). Within the window a
//! request for it costs no store request: an object uploaded there may be
//! answered 404 (or its "directory" redirected) for up to `revalidate`.
//! Listings for that purpose are single-flight per key too. Within the
//! interval a replaced object is still described by its old metadata; no
//! request ever gets mixed bytes for it, because every read is pinned to the
//! version described (see [`super`]): the read made before a response's
//! headers fails, the entry is dropped and the request is answered from a
//! fresh HEAD; a read between parts aborts that response.
//!
//! **Digests** (the SHA-256 of the content, from which the strong ETag and
//! Repr-Digest come, identical to the directory mode's for the same bytes)
//! are computed by streaming the whole object once, on a hash thread,
//! single-flight: concurrent first requests for one version wait for one
//! pass; unless the store keeps a full-object SHA-256 of that version
//! ([`super::Origin::stored_sha256`], S3's checksum), which is taken as it
//! is, without reading the object. They are kept keyed by (key, store version, size), so a HEAD that
//! finds the same version reuses the digest. A small object (up to
//! [`SMALL_MAX`]) is read whole instead, hashed from that buffer and served
//! from it: its bytes and digest agree by construction.
//!
//! Bounded: at most `max_entries` entries and `max_bytes` of small-object
//! bytes, `max_digests` digests; the least recently used go first.
//!
//! With `--etag-cache FILE` the digests survive restarts, in the format and
//! life cycle the directory mode's use too (the `persist` module), under a
//! header naming the store. A file of another store, of the directory mode,
//! corrupt or unreadable costs a warning and a rehash, never a wrong digest:
//! an entry is only used for the same key, store ETag or version id, and
//! size.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::future::Future;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt as _;
use sha2::{Digest as _, Sha256};
use tokio::sync::{OnceCell, Semaphore};

use super::body::ObjectSource;
use super::{Key, ObjectMeta, Origin, OriginError, StoreVersion};
use crate::fs::SMALL_MAX;
use crate::hashcache::{evict_by, Digest};
use crate::persist::{self, CacheFile, Header, Persisted};
use crate::render::Rendered;

/// Default `--store-revalidate`: how long a HEAD result is trusted.
pub const DEFAULT_REVALIDATE: Duration = Duration::from_secs(1);

/// One version of one object, as served.
#[derive(Debug)]
pub struct ObjectState {
    /// Its key.
    pub key: Key,
    /// The version, as the store describes it.
    pub meta: ObjectMeta,
    /// SHA-256 of the content.
    pub digest: Digest,
    /// The Content-Type value (from the key's extension, as for files).
    pub content_type: Arc<str>,
    /// Header values rendered once for this version.
    pub rendered: Arc<Rendered>,
    /// The whole object, when it is small: the bytes `digest` is of.
    pub held: Option<Bytes>,
}

impl ObjectState {
    fn held_bytes(&self) -> u64 {
        self.held.as_ref().map_or(0, |b| b.len() as u64)
    }
}

/// What is known of a key.
#[derive(Clone)]
enum Known {
    /// The object there, one version of it.
    Object(Arc<ObjectState>),
    /// No object there; whether keys lie below it, once a listing said.
    Absent { below: Option<bool> },
}

impl Known {
    fn held_bytes(&self) -> u64 {
        match self {
            Known::Object(state) => state.held_bytes(),
            Known::Absent { .. } => 0,
        }
    }

    /// The answer of a lookup that found this.
    fn answer(self) -> Result<Arc<ObjectState>, OriginError> {
        match self {
            Known::Object(state) => Ok(state),
            Known::Absent { .. } => Err(OriginError::NotFound),
        }
    }
}

struct Entry {
    known: Known,
    checked: Instant,
    last_used: u64,
}

impl Entry {
    fn holds(&self, state: &Arc<ObjectState>) -> bool {
        matches!(&self.known, Known::Object(s) if Arc::ptr_eq(s, state))
    }
}

#[derive(Default)]
struct Entries {
    map: HashMap<Key, Entry>,
    clock: u64,
    bytes: u64,
}

/// Work under way per key, shared by every request that asks for the same
/// key meanwhile (single-flight): the answer, errors included, goes to all.
struct Flights<T>(Mutex<HashMap<Key, Arc<OnceCell<T>>>>);

impl<T> Default for Flights<T> {
    fn default() -> Self {
        Flights(Mutex::default())
    }
}

impl<T: Clone> Flights<T> {
    /// The answer of `work` for `key`: the flight under way, or a new one.
    async fn run<F: Future<Output = T>>(&self, key: &Key, work: impl FnOnce() -> F) -> T {
        let flight = {
            let mut m = self.0.lock().unwrap_or_else(PoisonError::into_inner);
            Arc::clone(m.entry(key.clone()).or_default())
        };
        // If the request running the work leaves, a waiting one runs it.
        let answer = flight.get_or_init(work).await.clone();
        let mut m = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if m.get(key).is_some_and(|x| Arc::ptr_eq(x, &flight)) {
            m.remove(key);
        }
        answer
    }
}

type DigestKey = (Key, StoreVersion, u64);

struct DigestSlot {
    cell: Arc<OnceCell<Digest>>,
    last_used: u64,
}

#[derive(Default)]
struct Digests {
    /// By version and XOR mask (0: the version itself; see
    /// [`ObjectStates::derived_digest`]).
    map: HashMap<(DigestKey, u8), DigestSlot>,
    clock: u64,
}

/// Bounds and timing of an [`ObjectStates`].
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// How long a HEAD result is trusted.
    pub revalidate: Duration,
    /// Entries (object versions) kept.
    pub max_entries: usize,
    /// Bytes of small objects kept.
    pub max_bytes: u64,
    /// Digests kept.
    pub max_digests: usize,
}

/// The object states of one server. See the module docs.
pub struct ObjectStates {
    origin: Arc<dyn Origin>,
    limits: Limits,
    entries: Mutex<Entries>,
    /// Lookups (HEAD, and a new version's digest) under way.
    lookups: Flights<Result<Arc<ObjectState>, OriginError>>,
    /// Listings under way, for [`ObjectStates::has_keys_below`].
    listings: Flights<Result<bool, OriginError>>,
    digests: Mutex<Digests>,
    /// Concurrent whole-object hash passes (one per core).
    jobs: Semaphore,
    persist: Option<CacheFile>,
}

/// The object mode's `--etag-cache` file for the store `describe`d.
fn cache_header(store: String) -> Header {
    Header {
        format: "rangeserve-object-etag-cache",
        store: Some(store),
    }
}

impl ObjectStates {
    /// An empty state layer over `origin`.
    pub fn new(origin: Arc<dyn Origin>, limits: Limits) -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        ObjectStates {
            origin,
            limits,
            entries: Mutex::new(Entries::default()),
            lookups: Flights::default(),
            listings: Flights::default(),
            digests: Mutex::new(Digests::default()),
            jobs: Semaphore::new(cores),
            persist: None,
        }
    }

    /// A state layer whose digests are kept in `path` (loaded from it now;
    /// see the module docs).
    pub fn persistent(origin: Arc<dyn Origin>, limits: Limits, path: &Path) -> Self {
        let mut states = ObjectStates::new(origin, limits);
        let header = cache_header(states.origin.describe());
        let (file, entries) = CacheFile::load(path, header, parse_cache_line);
        {
            let mut d = states
                .digests
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            for (key, digest) in entries.into_iter().take(limits.max_digests) {
                let cell = Arc::new(OnceCell::new_with(Some(digest)));
                d.map.insert((key, 0), DigestSlot { cell, last_used: 0 });
            }
        }
        states.persist = Some(file);
        states
    }

    /// Write the cache file whenever new digests arrive, at most once per
    /// `every`; returns at once if the digests are not persisted.
    pub async fn flush_loop(self: Arc<Self>, every: Duration) {
        persist::flush_loop(self, every).await
    }

    /// Write the cache file now if digests were added since the last write.
    /// Failures are logged, never fatal. Blocking.
    pub fn flush(&self) {
        persist::flush(self);
    }

    /// The store.
    pub fn origin(&self) -> &Arc<dyn Origin> {
        &self.origin
    }

    /// The state of the object at `key`: cached while its metadata is fresh,
    /// else after a HEAD (and, for a new version, its digest), one lookup
    /// for all the requests asking at the same time. A fresh absence is
    /// `NotFound` at once.
    pub async fn get(&self, key: &Key) -> Result<Arc<ObjectState>, OriginError> {
        if let Some((known, true)) = self.cached(key) {
            return known.answer();
        }
        self.lookups.run(key, || self.look_up(key)).await
    }

    /// Whether keys lie below `key` (a "directory"), for a key with no
    /// object: kept with its absence (see the module docs), else listed.
    pub async fn has_keys_below(&self, key: &Key) -> Result<bool, OriginError> {
        match self.known_below(key) {
            Some(below) => Ok(below),
            None => self.listings.run(key, || self.list_below(key)).await,
        }
    }

    /// Whether keys lie below `key`, if a fresh entry says.
    fn known_below(&self, key: &Key) -> Option<bool> {
        match self.cached(key) {
            Some((Known::Absent { below }, true)) => below,
            _ => None,
        }
    }

    /// One listing, unless the one before it has just answered; its answer
    /// kept with the key's absence.
    async fn list_below(&self, key: &Key) -> Result<bool, OriginError> {
        if let Some(below) = self.known_below(key) {
            return Ok(below);
        }
        let below = !self.origin.list(key).await?.is_empty();
        let mut e = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(Entry {
            known: Known::Absent { below: slot },
            ..
        }) = e.map.get_mut(key)
        {
            *slot = Some(below);
        }
        Ok(below)
    }

    /// What is known of `key`, if anything, and whether it is fresh.
    fn cached(&self, key: &Key) -> Option<(Known, bool)> {
        let mut e = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        e.clock += 1;
        let now = e.clock;
        e.map.get_mut(key).map(|entry| {
            entry.last_used = now;
            (
                entry.known.clone(),
                entry.checked.elapsed() < self.limits.revalidate,
            )
        })
    }

    /// One lookup: a HEAD, unless the lookup before it has just made the
    /// entry fresh; then the entry kept or replaced.
    async fn look_up(&self, key: &Key) -> Result<Arc<ObjectState>, OriginError> {
        let stale = match self.cached(key) {
            Some((known, true)) => return known.answer(),
            Some((Known::Object(state), false)) => Some(state),
            _ => None,
        };
        let meta = match self.origin.head(key).await {
            Ok(meta) => meta,
            Err(OriginError::NotFound) => {
                self.insert(key, Known::Absent { below: None });
                return Err(OriginError::NotFound);
            }
            Err(e) => {
                if let Some(state) = &stale {
                    self.forget(state);
                }
                return Err(e);
            }
        };
        if let Some(state) = stale {
            if state.meta.version == meta.version && state.meta.size == meta.size {
                let mut e = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
                if let Some(entry) = e.map.get_mut(key).filter(|x| x.holds(&state)) {
                    entry.checked = Instant::now();
                }
                return Ok(state);
            }
        }
        let state = Arc::new(self.build(key, meta).await?);
        self.insert(key, Known::Object(Arc::clone(&state)));
        Ok(state)
    }

    /// Drop the entry of `stale` (its object turned out to have changed), if
    /// it is still the one kept.
    pub fn forget(&self, stale: &Arc<ObjectState>) {
        let mut e = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if e.map.get(&stale.key).is_some_and(|x| x.holds(stale)) {
            e.map.remove(&stale.key);
            e.bytes -= stale.held_bytes();
        }
    }

    /// Entries and small-object bytes held now.
    pub fn usage(&self) -> (usize, u64) {
        let e = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        (e.map.len(), e.bytes)
    }

    async fn build(&self, key: &Key, meta: ObjectMeta) -> Result<ObjectState, OriginError> {
        let (digest, held) = if meta.size <= SMALL_MAX {
            let bytes = read_all(&*self.origin, key, &meta).await?;
            (Sha256::digest(&bytes).into(), Some(bytes))
        } else {
            (self.digest(key, &meta, 0).await?, None)
        };
        let content_type = crate::handler::content_type(key.as_str());
        let rendered = Arc::new(Rendered::new(
            digest,
            Arc::clone(&content_type),
            crate::handler::whole_seconds(meta.last_modified),
        ));
        Ok(ObjectState {
            key: key.clone(),
            meta,
            digest,
            content_type,
            rendered,
            held,
        })
    }

    /// The digest of a derived version of an object (its bytes XORed with
    /// `src.xor`: replica-flip's): of the held bytes for a small object,
    /// else computed by a pass as for the version itself, and kept beside
    /// it (never in the cache file).
    pub async fn derived_digest(&self, src: &ObjectSource) -> Result<Digest, OriginError> {
        match &src.held {
            Some(bytes) => Ok(Sha256::digest(crate::body::xored(bytes.clone(), src.xor)).into()),
            None => self.digest(&src.key, &src.meta, src.xor).await,
        }
    }

    /// The digest of a large object's version `meta`, XORed with `xor`:
    /// cached, or computed once however many requests ask at the same time.
    async fn digest(&self, key: &Key, meta: &ObjectMeta, xor: u8) -> Result<Digest, OriginError> {
        let cell = {
            let mut d = self.digests.lock().unwrap_or_else(PoisonError::into_inner);
            d.clock += 1;
            let now = d.clock;
            let slot = d
                .map
                .entry(((key.clone(), meta.version.clone(), meta.size), xor))
                .or_insert_with(|| DigestSlot {
                    cell: Arc::new(OnceCell::new()),
                    last_used: now,
                });
            slot.last_used = now;
            let cell = Arc::clone(&slot.cell);
            evict_by(&mut d.map, self.limits.max_digests, |s| s.last_used);
            cell
        };
        // Dropping this future (the client left) stops the pass unless
        // another request waits for it; that one then starts it again.
        let digest = cell
            .get_or_try_init(|| async {
                // a checksum the store keeps of this very version: no read
                let stored = match xor {
                    0 => self.origin.stored_sha256(key, meta).await,
                    _ => None,
                };
                let digest = match stored {
                    Some(digest) => {
                        tracing::debug!(
                            key = key.as_str(),
                            "digest: the store's full-object SHA-256"
                        );
                        digest
                    }
                    None => {
                        let _permit = self.jobs.acquire().await.expect("never closed");
                        hash_object(&*self.origin, key, meta, xor).await?
                    }
                };
                if let (Some(file), 0) = (&self.persist, xor) {
                    file.mark_dirty();
                }
                Ok::<_, OriginError>(digest)
            })
            .await?;
        Ok(*digest)
    }

    /// `--prehash` over a store: walk the prefix (hidden names only if
    /// `hidden`) and hash every large object through the same single-flight
    /// digests requests use; one line on stderr when done. Small objects are
    /// left to their first request (they are hashed from the bytes served).
    pub async fn prehash(&self, hidden: bool) {
        let started = Instant::now();
        let mut dirs = vec![Key(String::new())];
        let (mut objects, mut bytes) = (0u64, 0u64);
        while let Some(dir) = dirs.pop() {
            let listed = match self.origin.list(&dir).await {
                Ok(listed) => listed,
                Err(e) => {
                    tracing::warn!(prefix = %dir, error = %e, "prehash cannot list");
                    continue;
                }
            };
            let at_top = dir.as_str().is_empty();
            for entry in listed {
                if !hidden && crate::fs::is_hidden(entry.name.as_ref(), at_top) {
                    continue;
                }
                let key = dir.child(&entry.name);
                match entry.object {
                    None => dirs.push(key),
                    Some((size, _)) if size > SMALL_MAX => match self.get(&key).await {
                        Ok(_) => {
                            objects += 1;
                            bytes += size;
                        }
                        Err(e) => {
                            tracing::warn!(object = %key, error = %e, "prehash skipped an object")
                        }
                    },
                    Some(_) => {}
                }
            }
        }
        eprintln!(
            "prehash: {objects} objects over {} KiB, {} in {:.1}s",
            SMALL_MAX / 1024,
            crate::listing::human_size(bytes),
            started.elapsed().as_secs_f64()
        );
    }

    fn insert(&self, key: &Key, known: Known) {
        let held = known.held_bytes();
        if self.limits.max_entries == 0 || held > self.limits.max_bytes {
            return;
        }
        let mut e = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        e.clock += 1;
        let entry = Entry {
            checked: Instant::now(),
            last_used: e.clock,
            known,
        };
        e.bytes += held;
        if let Some(old) = e.map.insert(key.clone(), entry) {
            e.bytes -= old.known.held_bytes();
        }
        while e.map.len() > self.limits.max_entries || e.bytes > self.limits.max_bytes {
            // the oldest go first; the entry just inserted is the newest and stays
            let Some(oldest) = e
                .map
                .iter()
                .filter(|(k, _)| *k != key)
                .min_by_key(|(_, x)| x.last_used)
                .map(|(k, _)| k.clone())
            else {
                break;
            };
            if let Some(gone) = e.map.remove(&oldest) {
                e.bytes -= gone.known.held_bytes();
            }
        }
    }
}

impl Persisted for ObjectStates {
    fn cache_file(&self) -> Option<&CacheFile> {
        self.persist.as_ref()
    }

    /// The digests computed (not those still being computed).
    fn entry_lines(&self) -> String {
        let field = |v: &Option<String>| v.as_deref().map_or("-".into(), hex::encode);
        let mut body = String::new();
        let d = self.digests.lock().unwrap_or_else(PoisonError::into_inner);
        for (((key, version, size), xor), slot) in &d.map {
            if let (Some(digest), 0) = (slot.cell.get(), xor) {
                let _ = writeln!(
                    body,
                    "{} {size} {} {} {}",
                    hex::encode(digest),
                    field(&version.etag),
                    field(&version.version),
                    hex::encode(key.as_str())
                );
            }
        }
        body
    }
}

/// One entry of the cache file: digest, size, store ETag and version id
/// (hex, `-` for none), key (hex).
fn parse_cache_line(l: &str) -> Option<(DigestKey, Digest)> {
    let field = |f: &str| -> Option<Option<String>> {
        match f {
            "-" => Some(None),
            f => Some(Some(String::from_utf8(hex::decode(f).ok()?).ok()?)),
        }
    };
    let mut f = l.split(' ');
    let digest: Digest = hex::decode(f.next()?).ok()?.try_into().ok()?;
    let size = f.next()?.parse().ok()?;
    let version = StoreVersion {
        etag: field(f.next()?)?,
        version: field(f.next()?)?,
    };
    let key = Key(String::from_utf8(hex::decode(f.next()?).ok()?).ok()?);
    f.next().is_none().then_some(((key, version, size), digest))
}

/// The whole of a small object's version `meta`, in one pinned read.
pub(crate) async fn read_all(
    origin: &dyn Origin,
    key: &Key,
    meta: &ObjectMeta,
) -> Result<Bytes, OriginError> {
    if meta.size == 0 {
        return Ok(Bytes::new());
    }
    let mut stream = origin.read(key, meta, 0..meta.size).await?;
    let mut buf = BytesMut::with_capacity(meta.size as usize);
    while let Some(chunk) = stream.next().await {
        buf.extend_from_slice(&chunk?);
        if buf.len() as u64 > meta.size {
            break;
        }
    }
    if buf.len() as u64 != meta.size {
        return Err(OriginError::Changed(format!(
            "read {} bytes of a {}-byte object",
            buf.len(),
            meta.size
        )));
    }
    Ok(buf.freeze())
}

/// SHA-256 of a large object's version `meta`, every byte XORed with
/// `xor`: one pinned read streamed to a hash thread (hashing is CPU-bound;
/// the async workers only move chunks).
async fn hash_object(
    origin: &dyn Origin,
    key: &Key,
    meta: &ObjectMeta,
    xor: u8,
) -> Result<Digest, OriginError> {
    let mut stream = origin.read(key, meta, 0..meta.size).await?;
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Bytes>(8);
    let hasher = tokio::spawn(crate::hashcache::on_hash_thread(move || {
        let mut h = Sha256::new();
        let mut n = 0u64;
        while let Some(chunk) = rx.blocking_recv() {
            n += chunk.len() as u64;
            h.update(crate::body::xored(chunk, xor));
        }
        let digest: Digest = h.finalize().into();
        (digest, n)
    }));
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        if tx.send(chunk).await.is_err() {
            break;
        }
    }
    drop(tx);
    let (digest, n) = hasher
        .await
        .map_err(|e| OriginError::Unavailable(e.to_string()))?
        .map_err(|e| OriginError::Unavailable(e.to_string()))?;
    if n != meta.size {
        return Err(OriginError::Changed(format!(
            "hashed {n} bytes of a {}-byte object",
            meta.size
        )));
    }
    Ok(digest)
}

#[cfg(all(test, feature = "object-store"))]
mod tests {
    use super::*;
    use object_store::memory::InMemory;
    use object_store::ObjectStore as _;

    /// `files` objects `f0`, `f1`... of `size` bytes each (byte value = index).
    async fn states(files: usize, size: usize, limits: Limits) -> ObjectStates {
        let store = Arc::new(InMemory::new());
        for i in 0..files {
            let path = object_store::path::Path::parse(format!("f{i}")).unwrap();
            store.put(&path, vec![i as u8; size].into()).await.unwrap();
        }
        let origin = super::super::store::StoreOrigin::new(store, "", "memory");
        ObjectStates::new(Arc::new(origin), limits)
    }

    fn key(i: usize) -> Key {
        Key(format!("f{i}"))
    }

    const LIMITS: Limits = Limits {
        revalidate: Duration::from_secs(60),
        max_entries: 3,
        max_bytes: 1 << 20,
        max_digests: 10,
    };

    #[tokio::test]
    async fn cache_lines_round_trip_computed_digests_only() {
        let s = states(0, 0, LIMITS).await;
        {
            let mut d = s.digests.lock().unwrap();
            for (i, (etag, version)) in [
                (Some("\"e 1\""), None),
                (None, Some("v2")),
                (Some("x"), Some("y")),
            ]
            .into_iter()
            .enumerate()
            {
                let version = StoreVersion {
                    etag: etag.map(String::from),
                    version: version.map(String::from),
                };
                let cell = Arc::new(OnceCell::new_with(Some([i as u8; 32])));
                d.map.insert(
                    ((key(i), version.clone(), 1000 + i as u64), 0),
                    DigestSlot { cell, last_used: 0 },
                );
                // a derived version's digest is not written
                let cell = Arc::new(OnceCell::new_with(Some([9; 32])));
                d.map.insert(
                    ((key(i), version, 1000 + i as u64), 0xff),
                    DigestSlot { cell, last_used: 0 },
                );
            }
            // a digest still being computed is not written
            let pending = (
                key(9),
                StoreVersion {
                    etag: None,
                    version: None,
                },
                1,
            );
            d.map.insert(
                (pending, 0),
                DigestSlot {
                    cell: Arc::new(OnceCell::new()),
                    last_used: 0,
                },
            );
        }
        let header = cache_header("memory".into());
        let text = persist::encode(&header, &s.entry_lines());
        let mut got = persist::decode(text.as_bytes(), &header, parse_cache_line)
            .unwrap()
            .entries;
        got.sort_by_key(|(k, _)| k.2);
        assert_eq!(got.len(), 3);
        assert_eq!(got[0].0 .1.etag.as_deref(), Some("\"e 1\""));
        assert_eq!(got[1].0 .1.version.as_deref(), Some("v2"));
        assert_eq!(got[2].1, [2u8; 32]);
        assert_eq!(got[2].0 .0, key(2));
        assert_eq!(
            persist::decode(
                text.as_bytes(),
                &cache_header("s3://other".into()),
                parse_cache_line
            )
            .unwrap_err(),
            persist::Unusable::OtherStore
        );
        // the rest of the format's checks are the persist module's (tested there)
        assert_eq!(parse_cache_line("00 1 - - 66"), None, "short digest");
    }

    #[tokio::test]
    async fn bounded_in_entries_and_bytes_newest_kept() {
        let s = states(10, 100, LIMITS).await;
        for i in 0..10 {
            let state = s.get(&key(i)).await.unwrap();
            assert_eq!(state.held.as_deref(), Some(&vec![i as u8; 100][..]));
            assert_eq!(
                state.digest,
                <[u8; 32]>::from(Sha256::digest(vec![i as u8; 100]))
            );
        }
        assert_eq!(s.usage(), (3, 300));
        let s = states(
            10,
            1000,
            Limits {
                max_entries: 100,
                max_bytes: 2500,
                ..LIMITS
            },
        )
        .await;
        for i in 0..10 {
            s.get(&key(i)).await.unwrap();
            assert!(s.usage().1 <= 2500, "{:?}", s.usage());
        }
        assert_eq!(s.usage(), (2, 2000));
        // the newest are the ones kept: asking again reads nothing new
        let kept = s.get(&key(9)).await.unwrap();
        assert!(Arc::ptr_eq(&kept, &s.get(&key(9)).await.unwrap()));
        // a budget smaller than one object keeps nothing, and still serves
        let s = states(
            1,
            1000,
            Limits {
                max_bytes: 10,
                ..LIMITS
            },
        )
        .await;
        assert!(s.get(&key(0)).await.is_ok());
        assert_eq!(s.usage(), (0, 0));
        assert!(matches!(s.get(&key(99)).await, Err(OriginError::NotFound)));
    }
}
