//! Content hashes: the SHA-256 of each served file, from which its strong
//! ETag and its Repr-Digest both come.
//!
//! Hashes are computed once per file version and cached in memory, keyed by
//! the file's device and inode and holding the [`FileStamp`] (device, inode,
//! size, mtime, ctime) they are of, so any rewrite, even same-size with the
//! mtime put back, misses the cache. (The key is the inode, not the path: a
//! lookup then copies no path and compares no bytes behind a pointer, and
//! hard links, the same bytes, share one hash. Each slot keeps the real path
//! it was last reached by, for the persistence file and its pruning.)
//! Hashing runs on the blocking pool, at most one job per core at a time;
//! concurrent first requests for one version share one computation (a
//! per-version `OnceCell`), and requests for other files never wait on it. A
//! hash whose file changed while it was being read fails with
//! [`HashError::Changed`] and is never cached; a hash nobody waits for any
//! more stops ([`HashError::Cancelled`]).
//!
//! **Settled and racy hashes** (as git's racy index entries): the stamp only
//! proves a file unchanged if every change moves it. Two writes within one
//! timestamp tick, and writes through a shared mapping to a page that is
//! already dirty, do not. A page stays dirty until writeback, which the
//! kernel does within `vm.dirty_expire_centisecs + vm.dirty_writeback_centisecs`
//! (35 s by default); after that the next write faults and moves the stamp.
//! So a hash whose reading began at least that window (plus a second) after
//! the file's last mtime/ctime is *settled*: the stamp alone vouches for it.
//! Any other hash is *racy*: it is used only where the bytes sent are checked
//! against it (see the `body` module), is never persisted, and is computed
//! again once the file has been still for the window.
//!
//! Bounded: at most `max_entries` versions are kept (least recently used go
//! first), and each flush of the persistence file drops entries whose file
//! is gone or changed.
//!
//! With a persistence file, the cache survives restarts: settled entries
//! are written in the `--etag-cache` format and life cycle shared with the
//! object mode (the `persist` module); a missing, corrupt or unwritable file
//! costs a warning and a rehash, never a wrong hash.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::fs::File;
use std::hash::Hash;
use std::io;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex, OnceLock, PoisonError, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sha2::{Digest as _, Sha256};
use tokio::sync::{OnceCell, Semaphore};

use crate::fs::FileStamp;
use crate::persist::{self, CacheFile, Header, Persisted};

/// A SHA-256 digest.
pub type Digest = [u8; 32];

/// Why a hash could not be produced.
#[derive(Debug, thiserror::Error)]
pub enum HashError {
    /// The file is no longer the version asked for.
    #[error("file changed while being hashed")]
    Changed,
    /// Nobody waits for this hash any more.
    #[error("hash cancelled")]
    Cancelled,
    /// Reading failed.
    #[error("cannot read file: {0}")]
    Io(#[from] io::Error),
}

/// Bytes read per hashing step; also how often the file's stamp is re-checked.
const HASH_CHUNK: usize = 256 * 1024;
const STAMP_CHECK_EVERY: u64 = 64 * 1024 * 1024;
/// The directory mode's `--etag-cache` file.
const CACHE_HEADER: Header = Header {
    format: "rangeserve-etag-cache",
    store: None,
};

/// A digest, and whether it is settled (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hashed {
    /// SHA-256 of the content.
    pub digest: Digest,
    /// The stamp alone vouches for it.
    pub settled: bool,
}

/// A slot's key: device, inode and XOR mask (0 = the file itself; see
/// [`crate::body::FileSource`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Key {
    dev: u64,
    ino: u64,
    xor: u8,
}

impl Key {
    fn of(stamp: &FileStamp, xor: u8) -> Key {
        Key {
            dev: stamp.dev,
            ino: stamp.ino,
            xor,
        }
    }
}

struct Slot {
    /// The real path the file was last reached by.
    path: PathBuf,
    stamp: FileStamp,
    digest: Arc<OnceCell<Hashed>>,
    last_used: u64,
}

/// Default bound on the versions the hash cache keeps.
pub const DEFAULT_MAX_ENTRIES: usize = 50_000;

/// The hash cache of one server. See the module docs.
pub struct HashCache {
    /// Keyed by inode and XOR mask.
    slots: Mutex<Slots>,
    computed: AtomicU64,
    bytes_hashed: Arc<AtomicU64>,
    persist: Option<CacheFile>,
    /// Concurrent hash jobs (one per core).
    jobs: Semaphore,
    window: Duration,
    max_entries: usize,
}

#[derive(Default)]
struct Slots {
    map: HashMap<Key, Slot>,
    clock: u64,
}

/// How long after a file's last stamp change a hash must start to be
/// settled: the kernel's dirty-page writeback window plus a second (see the
/// module docs). `None` when periodic writeback is off: nothing settles.
pub fn racy_window() -> Option<Duration> {
    static WINDOW: OnceLock<Option<Duration>> = OnceLock::new();
    *WINDOW.get_or_init(|| {
        let read = |name: &str| -> Option<u64> {
            std::fs::read_to_string(format!("/proc/sys/vm/{name}"))
                .ok()?
                .trim()
                .parse()
                .ok()
        };
        // the kernel's defaults where /proc/sys is not readable
        let expire = read("dirty_expire_centisecs").unwrap_or(3000);
        let writeback = read("dirty_writeback_centisecs").unwrap_or(500);
        (writeback != 0).then(|| Duration::from_millis((expire + writeback) * 10 + 1000))
    })
}

/// Run `work` (a whole-file pass: long and CPU-bound) on a thread of its
/// own, not on the blocking pool, which stays free for the short blocking
/// work of requests (opens, reads): a hash never makes a request wait for a
/// pool thread. Callers bound how many run at once.
pub async fn on_hash_thread<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> io::Result<T> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("rangeserve-hash".into())
        .spawn(move || {
            let _ = tx.send(work());
        })?;
    rx.await
        .map_err(|_| io::Error::other("hash thread panicked"))
}

/// Whether a hash of `stamp` whose reading began at `started` is settled.
pub fn settled(stamp: &FileStamp, started: SystemTime, window: Option<Duration>) -> bool {
    let Some(window) = window else { return false };
    let started = match started.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_nanos() as i128,
        Err(_) => return false,
    };
    started >= stamp.mtime_ns.max(stamp.ctime_ns) + window.as_nanos() as i128
}

impl Default for HashCache {
    fn default() -> Self {
        HashCache::new()
    }
}

impl HashCache {
    /// An empty, in-memory cache.
    pub fn new() -> Self {
        HashCache::bounded(DEFAULT_MAX_ENTRIES, None)
    }

    /// An empty, in-memory cache of at most `max_entries` versions, whose
    /// hashes settle after `window` (`None`: [`racy_window`]).
    pub fn bounded(max_entries: usize, window: Option<Duration>) -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        HashCache {
            slots: Mutex::new(Slots::default()),
            computed: AtomicU64::new(0),
            bytes_hashed: Arc::new(AtomicU64::new(0)),
            persist: None,
            jobs: Semaphore::new(cores),
            window: window.or_else(racy_window).unwrap_or(Duration::MAX),
            max_entries: max_entries.max(1),
        }
    }

    /// A cache persisted in `path`, loaded from it now. A missing, unreadable
    /// or corrupt file is logged and the cache starts empty. Only settled
    /// hashes are ever written there.
    pub fn persistent(path: &Path, max_entries: usize, window: Option<Duration>) -> Self {
        let mut cache = HashCache::bounded(max_entries, window);
        let (file, entries) = CacheFile::load(path, CACHE_HEADER, parse_cache_line);
        {
            let mut slots = cache.slots.lock().unwrap_or_else(PoisonError::into_inner);
            for (p, stamp, digest) in entries.into_iter().take(cache.max_entries) {
                let hashed = Hashed {
                    digest,
                    settled: true,
                };
                let cell = Arc::new(OnceCell::new_with(Some(hashed)));
                slots.map.insert(
                    Key::of(&stamp, 0),
                    Slot {
                        path: p,
                        stamp,
                        digest: cell,
                        last_used: 0,
                    },
                );
            }
        }
        cache.persist = Some(file);
        cache
    }

    /// The settling window in force (see [`racy_window`]).
    pub fn window(&self) -> Duration {
        self.window
    }

    /// Forget what is known of the file of `stamp` (its hash proved wrong
    /// for its stamp), in every XOR version.
    pub fn forget(&self, stamp: FileStamp) {
        let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        slots
            .map
            .retain(|k, _| (k.dev, k.ino) != (stamp.dev, stamp.ino));
    }

    /// Versions held now.
    pub fn len(&self) -> usize {
        self.slots
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .map
            .len()
    }

    /// True when nothing is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many hashes this cache has computed (not counting cache hits).
    pub fn computed(&self) -> u64 {
        self.computed.load(Ordering::Relaxed)
    }

    /// Count a hash computed outside the cache (a small file hashed from the
    /// buffer it is served from; see [`crate::fs`]).
    pub fn count_computed(&self, bytes: u64) {
        self.computed.fetch_add(1, Ordering::Relaxed);
        self.bytes_hashed.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Bytes read by hashing so far.
    pub fn bytes_hashed(&self) -> u64 {
        self.bytes_hashed.load(Ordering::Relaxed)
    }

    /// The settled digest of the file in version `stamp`, if one is known: a
    /// lookup, no hashing and no waiting.
    pub fn known_settled(&self, stamp: FileStamp) -> Option<Digest> {
        let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        slots.clock += 1;
        let clock = slots.clock;
        let slot = slots.map.get_mut(&Key::of(&stamp, 0))?;
        let hashed = slot
            .digest
            .get()
            .filter(|h| slot.stamp == stamp && h.settled)?;
        slot.last_used = clock;
        Some(hashed.digest)
    }

    /// Keep `hashed`, computed from bytes of `path` read in version `stamp`
    /// (a small file hashed from its own buffer), if it is settled: a racy
    /// one vouches only for the bytes it was computed from.
    pub fn remember(&self, path: &Path, stamp: FileStamp, hashed: Hashed) {
        if !hashed.settled {
            return;
        }
        {
            let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
            slots.clock += 1;
            let slot = Slot {
                path: path.to_path_buf(),
                stamp,
                digest: Arc::new(OnceCell::new_with(Some(hashed))),
                last_used: slots.clock,
            };
            slots.map.insert(Key::of(&stamp, 0), slot);
            evict(&mut slots.map, self.max_entries);
        }
        self.mark_dirty();
    }

    /// The digest of `file` (at `path`), which must be the version `stamp`.
    /// Computes it at most once per version, off the async workers.
    pub async fn digest(
        &self,
        path: &Path,
        file: &Arc<File>,
        stamp: FileStamp,
    ) -> Result<Hashed, HashError> {
        self.digest_xor(path, file, stamp, 0).await
    }

    /// Like [`digest`](Self::digest), of the file's bytes each XORed with `xor`.
    /// Dropping the returned future before it completes stops the hashing if
    /// nobody else waits for it.
    pub async fn digest_xor(
        &self,
        path: &Path,
        file: &Arc<File>,
        stamp: FileStamp,
        xor: u8,
    ) -> Result<Hashed, HashError> {
        let key = Key::of(&stamp, xor);
        let now = SystemTime::now();
        let window = Some(self.window).filter(|w| *w != Duration::MAX);
        let cell = {
            let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
            slots.clock += 1;
            let clock = slots.clock;
            let reuse = slots.map.get_mut(&key).and_then(|slot| {
                let current = slot.stamp == stamp
                    // a racy hash is redone once the file has been still long enough
                    && !slot
                        .digest
                        .get()
                        .is_some_and(|h| !h.settled && settled(&stamp, now, window));
                current.then(|| {
                    slot.last_used = clock;
                    Arc::clone(&slot.digest)
                })
            });
            match reuse {
                Some(cell) => cell,
                None => {
                    let cell = Arc::new(OnceCell::new());
                    let slot = Slot {
                        path: path.to_path_buf(),
                        stamp,
                        digest: Arc::clone(&cell),
                        last_used: clock,
                    };
                    slots.map.insert(key, slot);
                    evict(&mut slots.map, self.max_entries);
                    cell
                }
            }
        };
        let hashed = cell
            .get_or_try_init(|| async {
                // held while someone waits: the job stops when it is dropped
                let interest = Arc::new(());
                let watch = Arc::downgrade(&interest);
                let _permit = self.jobs.acquire().await.expect("never closed");
                let file = Arc::clone(file);
                let counter = Arc::clone(&self.bytes_hashed);
                let started = SystemTime::now();
                let digest = on_hash_thread(move || hash_file(&file, stamp, xor, &counter, &watch))
                    .await
                    .map_err(|e| HashError::Io(io::Error::other(e)))??;
                drop(interest);
                self.computed.fetch_add(1, Ordering::Relaxed);
                let hashed = Hashed {
                    digest,
                    settled: settled(&stamp, started, window),
                };
                if hashed.settled {
                    self.mark_dirty();
                }
                Ok::<_, HashError>(hashed)
            })
            .await?;
        Ok(*hashed)
    }

    fn mark_dirty(&self) {
        if let Some(file) = &self.persist {
            file.mark_dirty();
        }
    }

    /// Write the cache file whenever new hashes arrive, at most once per
    /// `every`; returns only if the cache is not persistent.
    pub async fn flush_loop(self: Arc<Self>, every: Duration) {
        persist::flush_loop(self, every).await
    }

    /// Write the cache file now if anything changed since the last write,
    /// dropping entries whose file is gone or changed. Failures are logged,
    /// never fatal. Blocking.
    pub fn flush(&self) {
        persist::flush(self);
    }
}

impl Persisted for HashCache {
    fn cache_file(&self) -> Option<&CacheFile> {
        self.persist.as_ref()
    }

    /// Drop the entries whose file no longer has the entry's stamp. One stat
    /// per entry, outside the lock.
    fn prune(&self) {
        let keys: Vec<(Key, PathBuf, FileStamp)> = {
            let slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
            slots
                .map
                .iter()
                .map(|(k, s)| (*k, s.path.clone(), s.stamp))
                .collect()
        };
        let dead: Vec<(Key, FileStamp)> = keys
            .into_iter()
            .filter(|(_, path, stamp)| {
                std::fs::metadata(path).map(|m| FileStamp::of(&m)).ok() != Some(*stamp)
            })
            .map(|(k, _, stamp)| (k, stamp))
            .collect();
        if !dead.is_empty() {
            let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
            for (k, stamp) in dead {
                // unless hashed again meanwhile
                if slots.map.get(&k).is_some_and(|s| s.stamp == stamp) {
                    slots.map.remove(&k);
                }
            }
        }
    }

    /// The settled hashes of the files themselves (not their XOR versions).
    fn entry_lines(&self) -> String {
        let slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        let mut body = String::new();
        for (key, slot) in slots.map.iter() {
            if let (0, Some(h)) = (key.xor, slot.digest.get()) {
                if !h.settled {
                    continue;
                }
                let s = slot.stamp;
                let _ = writeln!(
                    body,
                    "{} {} {} {} {} {} {}",
                    hex::encode(h.digest),
                    s.dev,
                    s.ino,
                    s.size,
                    s.mtime_ns,
                    s.ctime_ns,
                    hex::encode(slot.path.as_os_str().as_bytes())
                );
            }
        }
        body
    }
}

/// [`evict_by`] for the hash slots.
fn evict(map: &mut HashMap<Key, Slot>, max: usize) {
    evict_by(map, max, |s| s.last_used)
}

/// Drop the least recently used eighth (at least what is over) of a map
/// holding more than `max` entries, `used` telling when each was last used:
/// one scan per many inserts. Shared with the object mode's digests.
pub(crate) fn evict_by<K: Eq + Hash, V>(
    map: &mut HashMap<K, V>,
    max: usize,
    used: impl Fn(&V) -> u64,
) {
    if map.len() <= max.max(1) {
        return;
    }
    let batch = (max / 8).max(map.len() - max).max(1);
    let mut ages: Vec<u64> = map.values().map(&used).collect();
    let cut = batch.min(ages.len()) - 1;
    let (_, &mut limit, _) = ages.select_nth_unstable(cut);
    map.retain(|_, v| used(v) > limit);
}

/// Hash `file`, checking it stays the version `stamp` throughout. Blocking.
/// Adds the bytes read to `progress` as it goes.
///
/// A scoped reader thread fills buffers while this thread hashes, so the
/// reads overlap the hashing (SHA-256 itself cannot be split across cores).
pub fn hash_file(
    file: &File,
    stamp: FileStamp,
    xor: u8,
    progress: &AtomicU64,
    interest: &Weak<()>,
) -> Result<Digest, HashError> {
    const BUFFERS: usize = 3;
    let check = || -> Result<(), HashError> {
        if FileStamp::of(&file.metadata()?) == stamp {
            Ok(())
        } else {
            Err(HashError::Changed)
        }
    };
    check()?;
    let (full_tx, full_rx) = mpsc::sync_channel::<io::Result<(Vec<u8>, usize)>>(BUFFERS);
    let (free_tx, free_rx) = mpsc::sync_channel::<Vec<u8>>(BUFFERS);
    for _ in 0..BUFFERS {
        free_tx
            .send(vec![0u8; HASH_CHUNK])
            .expect("room for every buffer");
    }
    let mut hasher = Sha256::new();
    std::thread::scope(|scope| {
        scope.spawn(move || {
            let mut offset = 0u64;
            while offset < stamp.size {
                let Ok(mut buf) = free_rx.recv() else { return }; // the hasher gave up
                let want = (stamp.size - offset).min(HASH_CHUNK as u64) as usize;
                let read = match file.read_at(&mut buf[..want], offset) {
                    Ok(0) => Err(io::ErrorKind::UnexpectedEof.into()), // shrank
                    other => other,
                };
                let failed = read.is_err();
                let msg = read.map(|n| {
                    if xor != 0 {
                        buf[..n].iter_mut().for_each(|b| *b ^= xor);
                    }
                    offset += n as u64;
                    (buf, n)
                });
                if full_tx.send(msg).is_err() || failed {
                    return;
                }
            }
        });
        // moved in, so an early return drops them and unblocks the reader
        let (full_rx, free_tx) = (full_rx, free_tx);
        let mut done = 0u64;
        let mut since_check = 0u64;
        while done < stamp.size {
            let (buf, n) = match full_rx.recv() {
                Ok(Ok(chunk)) => chunk,
                Ok(Err(e)) if e.kind() == io::ErrorKind::UnexpectedEof => {
                    return Err(HashError::Changed)
                }
                Ok(Err(e)) => return Err(HashError::Io(e)),
                Err(_) => return Err(HashError::Io(io::Error::other("hash reader stopped"))),
            };
            if interest.strong_count() == 0 {
                return Err(HashError::Cancelled);
            }
            hasher.update(&buf[..n]);
            progress.fetch_add(n as u64, Ordering::Relaxed);
            done += n as u64;
            since_check += n as u64;
            if since_check >= STAMP_CHECK_EVERY {
                since_check = 0;
                check()?;
            }
            let _ = free_tx.send(buf);
        }
        Ok(())
    })?;
    check()?;
    Ok(hasher.finalize().into())
}

type CacheEntry = (PathBuf, FileStamp, Digest);

fn parse_cache_line(line: &str) -> Option<CacheEntry> {
    let mut f = line.split(' ');
    let digest: Digest = hex::decode(f.next()?).ok()?.try_into().ok()?;
    let stamp = FileStamp {
        dev: f.next()?.parse().ok()?,
        ino: f.next()?.parse().ok()?,
        size: f.next()?.parse().ok()?,
        mtime_ns: f.next()?.parse().ok()?,
        ctime_ns: f.next()?.parse().ok()?,
    };
    let path = PathBuf::from(std::ffi::OsString::from_vec(hex::decode(f.next()?).ok()?));
    if f.next().is_some() {
        return None;
    }
    Some((path, stamp, digest))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stamp(size: u64) -> FileStamp {
        FileStamp {
            dev: 1,
            ino: 2,
            size,
            mtime_ns: 3,
            ctime_ns: -4,
        }
    }

    #[test]
    fn cache_lines_round_trip_settled_file_hashes_only() {
        let cache = HashCache::new();
        {
            let mut slots = cache.slots.lock().unwrap();
            for (ino, name, d) in [(2, "/a b/é.txt", [1u8; 32]), (3, "/x", [2u8; 32])] {
                let cell = Arc::new(OnceCell::new_with(Some(Hashed {
                    digest: d,
                    settled: true,
                })));
                let stamp = FileStamp { ino, ..stamp(9) };
                slots.map.insert(
                    Key::of(&stamp, 0),
                    Slot {
                        path: PathBuf::from(name),
                        stamp,
                        digest: cell,
                        last_used: 0,
                    },
                );
            }
            // an in-flight (uninitialized) slot is not written
            let pending = FileStamp { ino: 4, ..stamp(1) };
            slots.map.insert(
                Key::of(&pending, 0),
                Slot {
                    path: PathBuf::from("/pending"),
                    stamp: pending,
                    digest: Arc::new(OnceCell::new()),
                    last_used: 0,
                },
            );
            // derived (XOR) versions are not persisted
            let cell = Arc::new(OnceCell::new_with(Some(Hashed {
                digest: [3u8; 32],
                settled: true,
            })));
            let x = FileStamp { ino: 3, ..stamp(9) };
            slots.map.insert(
                Key::of(&x, 0xff),
                Slot {
                    path: PathBuf::from("/x"),
                    stamp: x,
                    digest: cell,
                    last_used: 0,
                },
            );
        }
        let text = persist::encode(&CACHE_HEADER, &cache.entry_lines());
        let mut entries = persist::decode(text.as_bytes(), &CACHE_HEADER, parse_cache_line)
            .unwrap()
            .entries;
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(entries.len(), 2);
        assert_eq!(
            entries[0],
            (
                PathBuf::from("/a b/é.txt"),
                FileStamp { ino: 2, ..stamp(9) },
                [1u8; 32]
            )
        );
        assert_eq!(
            entries[1],
            (
                PathBuf::from("/x"),
                FileStamp { ino: 3, ..stamp(9) },
                [2u8; 32]
            )
        );
        // the format and its checks are the persist module's (tested there)
        assert!(text.starts_with("rangeserve-etag-cache v2\n"));
        assert_eq!(parse_cache_line("00 1 2 3 4 5 2f"), None, "short digest");
        assert_eq!(
            parse_cache_line(&format!("{} 1 2 3 4 5 2f 6", hex::encode([0u8; 32]))),
            None,
            "a field too many"
        );
    }

    /// A hash is found by its file's version (the inode's, whatever path
    /// reached it), only in that version, and only if settled.
    #[test]
    fn hashes_are_kept_per_inode_and_version() {
        let cache = HashCache::new();
        let settled = |d: u8| Hashed {
            digest: [d; 32],
            settled: true,
        };
        cache.remember(Path::new("/a"), stamp(9), settled(1));
        assert_eq!(cache.known_settled(stamp(9)), Some([1; 32]));
        // another version of the same inode: not this hash
        assert_eq!(cache.known_settled(stamp(10)), None);
        // a hard link: the same inode, the same bytes, one slot
        cache.remember(Path::new("/b"), stamp(9), settled(1));
        assert_eq!(cache.len(), 1);
        // another inode of the same size and times
        let other = FileStamp { ino: 7, ..stamp(9) };
        assert_eq!(cache.known_settled(other), None);
        // racy hashes are not remembered
        cache.remember(
            Path::new("/c"),
            other,
            Hashed {
                digest: [2; 32],
                settled: false,
            },
        );
        assert_eq!(cache.known_settled(other), None);
        cache.remember(Path::new("/c"), other, settled(2));
        // forgetting a file drops its slots, not another's
        cache.forget(stamp(9));
        assert_eq!(cache.known_settled(stamp(9)), None);
        assert_eq!(cache.known_settled(other), Some([2; 32]));
    }

    #[test]
    fn eviction_keeps_the_most_recently_used() {
        let mut map: HashMap<u32, u64> = (0..16).map(|i| (i, u64::from(i))).collect();
        evict_by(&mut map, 10, |used| *used);
        let mut kept: Vec<u32> = map.into_keys().collect();
        kept.sort();
        assert_eq!(kept, (6..16).collect::<Vec<_>>(), "what is over goes");
        // one eighth at a time once over: one scan per many inserts
        let mut map: HashMap<u32, u64> = (0..81).map(|i| (i, u64::from(i))).collect();
        evict_by(&mut map, 80, |used| *used);
        assert_eq!(map.len(), 71);
        assert!(map.contains_key(&10) && !map.contains_key(&9));
        let mut map: HashMap<u32, u64> = (0..5).map(|i| (i, 0)).collect();
        evict_by(&mut map, 5, |used| *used);
        assert_eq!(map.len(), 5, "not over: nothing goes");
    }

    #[test]
    fn hash_matches_an_independent_sha256_and_detects_changes() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        let data: Vec<u8> = (0..3_000_000u32).map(|i| i as u8).collect();
        std::fs::write(&p, &data).unwrap();
        let f = File::open(&p).unwrap();
        let st = FileStamp::of(&f.metadata().unwrap());
        let n = AtomicU64::new(0);
        let keep = Arc::new(());
        let w = Arc::downgrade(&keep);
        let d = hash_file(&f, st, 0, &n, &w).unwrap();
        let flipped: Vec<u8> = data.iter().map(|b| b ^ 0xff).collect();
        let dx = hash_file(&f, st, 0xff, &n, &w).unwrap();
        assert_eq!(hex::encode(dx), hex::encode(Sha256::digest(&flipped)));
        assert_eq!(n.load(Ordering::Relaxed), 2 * data.len() as u64);
        assert_eq!(hex::encode(d), hex::encode(Sha256::digest(&data)));
        let mut other = st;
        other.ctime_ns += 1;
        assert!(matches!(
            hash_file(&f, other, 0, &n, &w),
            Err(HashError::Changed)
        ));
    }
}
