//! The file-state cache: what the server knows about a request path that
//! names a regular file, kept between requests so that a warm request costs
//! one `stat` on the async worker and no trip to the blocking pool.
//!
//! An entry holds the open descriptor, the [`FileStamp`] seen at open, the
//! digest, the values rendered once per version (content type, ETag,
//! Repr-Digest) and, for a small file, its bytes (read whole at open: the
//! bytes its digest is of). It is keyed by the request path as received.
//!
//! Revalidation: every hit `stat`s the path exactly as a fresh request would
//! reach it (root joined with the request's segments, following symlinks)
//! and compares the stamp (device, inode, size, mtime, ctime) with the
//! entry's. Any difference (a rewrite, a rename over the path, a symlink
//! swapped into a directory of the path so that it now leads elsewhere) is a
//! miss, and the request takes the full path (canonicalize, confine, open).
//! A hit therefore only ever serves the inode that the full path confined
//! and opened, in the version it was seen in. A request for a small range
//! of a large file reads it (page cache only) before that `stat`, which
//! then vouches for the bytes too: one `stat` per hit, no `fstat` after
//! (unless the `stat` is shared, below).
//!
//! **Shared revalidations.** What a hit needs is a `stat` that began after
//! its request was read: a change that completed before the request was
//! sent shows in it. Such a `stat` made for another request serves as well.
//! [`Ticket`]s order the two: one is drawn when a request has been read and
//! one when a revalidating `stat` begins, from one counter; a `stat` that
//! found the entry unchanged vouches for every request whose ticket is
//! older than its own (a hit that read bytes of a large file checks them
//! with an `fstat` of its descriptor after the read). Under load, a
//! request of the service's hit for an entry revalidated within the last
//! [`SHARE_WINDOW`] waits once behind the tasks already queued
//! ([`FileStates::read_ticket`]), so the requests read in the same turn of
//! the scheduler share the next `stat` instead of making one each
//! ([`FileStates::hot`]).
//!
//! **Confirmed after the answer is made.** The HTTP/1.1 fast path turns
//! this around ([`FileStates::get_later`]): it makes its answer from a
//! settled entry first (head, and body bytes read from the entry's
//! descriptor), draws its ticket then, waits behind the tasks already
//! queued, and sends the answer only once a `stat` that began after that
//! ticket found the entry unchanged ([`FileStates::confirm`]): the first
//! answer of a turn to be confirmed makes it, and it serves the rest. One
//! `stat` then vouches for the path, the head and the bytes of every answer
//! made in that turn, with no `fstat` after a read and no second wait.
//!
//! Bounded: at most `max_entries` entries (each holds one descriptor) and
//! `max_bytes` of small-file bytes; the least recently used entries go first.
//! 0 entries disables the cache.
//!
//! **Admission.** While the cache has room, every file opened is kept. Once
//! it is full, a path is kept only when it is asked for a second time since
//! it last went uncached (a [`Doorkeeper`] remembers the paths turned away,
//! as nginx's `open_file_cache_min_uses` or TinyLFU's doorkeeper do): over a
//! tree larger than the cache, a file asked for once would otherwise evict
//! one that is asked for again, and pay for an entry, its eviction and
//! its cold frees on top of the open every miss makes anyway. An entry not
//! kept is served all the same, then dropped with its request; a caller
//! that asks beforehand ([`FileStates::turns_away`]) can open such a file
//! without reading it (its body reads the bytes after the head), and one
//! that asks once it has the file ([`FileStates::turn_away`], which
//! remembers the path as `insert` would) need not make the state at all:
//! the fast path answers such a file from its open descriptor and digest.

use std::collections::HashMap;
use std::ffi::CString;
use std::fs::File;
use std::hash::BuildHasher as _;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use crate::fs::{read_window_cached, FileStamp, Prefetched};
use crate::hashcache::Digest;
use crate::render::Rendered;
use crate::rfc::range::RangeSpec;

/// Default `--open-file-cache`: entries (open descriptors) kept.
pub const DEFAULT_MAX_ENTRIES: usize = 1000;
/// Default `--small-file-cache`: bytes of small files kept in memory.
pub const DEFAULT_MAX_BYTES: u64 = 8 * 1024 * 1024;

/// How recently an entry must have been revalidated for a request to wait
/// for the next shared revalidation ([`FileStates::hot`]): below the gap
/// between one client's requests (a loopback round trip is about 50 µs),
/// above that between concurrent clients' requests under load.
pub const SHARE_WINDOW: Duration = Duration::from_micros(20);

/// A hit of [`FileStates::get_later`].
pub enum Hit {
    /// A settled entry, not revalidated yet and nothing read: the caller
    /// makes its answer from it, reading what it sends from the entry's
    /// descriptor, then draws a [`Ticket`] and sends the answer only if
    /// [`FileStates::confirm`] holds.
    Later(Arc<FileState>),
    /// An entry revalidated now, as [`FileStates::get_reading`] does, with
    /// the range asked for if it read one.
    Now(Arc<FileState>, Option<Prefetched>),
}

/// Tickets, drawn from one counter by requests (once read) and by
/// revalidating `stat`s (before they begin). See the module docs.
static TICKETS: AtomicU64 = AtomicU64::new(1);

/// The zero of [`Checked::at_ns`].
static EPOCH: LazyLock<Instant> = LazyLock::new(Instant::now);

fn since_epoch_ns() -> u64 {
    u64::try_from(EPOCH.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// Wait until the tasks already queued on this worker have run once. A task
/// that wakes itself and returns pending is queued behind them (tokio
/// treats it as a yield), without the driver poll that `yield_now` adds:
/// alone on the worker, it runs again at once. (Also how the HTTP/1.1 fast
/// path lets the answers made in one turn leave together.)
pub(crate) async fn behind_the_ready_tasks() {
    let mut woken = false;
    std::future::poll_fn(|cx| {
        if std::mem::replace(&mut woken, true) {
            return std::task::Poll::Ready(());
        }
        cx.waker().wake_by_ref();
        std::task::Poll::Pending
    })
    .await
}

/// A place in the order of requests read and revalidations begun.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Ticket(u64);

impl Ticket {
    /// A new ticket, later than every ticket drawn before it. A request
    /// draws one after its bytes were read; a revalidation, before its
    /// `stat`. (Read-modify-writes of one atomic, acquire and release: a
    /// revalidation whose ticket is later than a request's synchronizes with
    /// that request's draw, so its `stat` happens after the request's read.)
    pub fn draw() -> Ticket {
        Ticket(TICKETS.fetch_add(1, Ordering::AcqRel))
    }
}

/// The last revalidation of an entry that found its file unchanged.
#[derive(Debug, Default)]
pub struct Checked {
    /// Its ticket (0: none yet).
    ticket: AtomicU64,
    /// When it was made, in nanoseconds since [`EPOCH`].
    at_ns: AtomicU64,
}

impl Checked {
    /// Record a revalidation that drew `ticket` and found the file unchanged.
    fn record(&self, ticket: Ticket) {
        self.ticket.fetch_max(ticket.0, Ordering::AcqRel);
        self.at_ns.fetch_max(since_epoch_ns(), Ordering::Relaxed);
    }

    /// Whether a revalidation that began after the request holding `seen`
    /// was read found the file unchanged.
    fn vouches_for(&self, seen: Ticket) -> bool {
        self.ticket.load(Ordering::Acquire) > seen.0
    }

    /// Whether the last one was made within `window`.
    fn recent(&self, window: Duration) -> bool {
        let at = self.at_ns.load(Ordering::Relaxed);
        at != 0 && u128::from(since_epoch_ns().saturating_sub(at)) < window.as_nanos()
    }
}

/// One version of one file, as served.
#[derive(Debug)]
pub struct FileState {
    /// The path a request reaches it by (root + request segments): what a
    /// hit `stat`s; kept as the C string the system call takes.
    pub joined: CString,
    /// The real (canonical) path.
    pub real: Arc<PathBuf>,
    /// The open file.
    pub file: Arc<File>,
    /// The version seen at open.
    pub stamp: FileStamp,
    /// Modification time.
    pub modified: SystemTime,
    /// SHA-256 of the content.
    pub digest: Digest,
    /// When the digest is racy (see [`crate::hashcache`]): the time from
    /// which a fresh hash would be settled, after which this entry is not
    /// used any more. `None`: settled, or a small file whose digest is of
    /// its held bytes.
    pub racy_until: Option<SystemTime>,
    /// The Content-Type value.
    pub content_type: Arc<str>,
    /// Header values rendered once for this version.
    pub rendered: Arc<Rendered>,
    /// The whole file, when it is small: the bytes `digest` is of.
    pub prefetched: Option<Prefetched>,
    /// Its last revalidation that found it unchanged.
    pub checked: Checked,
}

impl FileState {
    /// Bytes of memory this entry holds.
    fn held_bytes(&self) -> u64 {
        self.prefetched.as_ref().map_or(0, |p| p.bytes.len() as u64)
    }
}

struct Entry {
    state: Arc<FileState>,
    last_used: u64,
}

struct Inner {
    map: HashMap<Box<str>, Entry>,
    clock: u64,
    bytes: u64,
    doorkeeper: Doorkeeper,
}

/// The paths recently turned away by a full cache, by hash: a direct-mapped
/// table of as many slots as the cache has entries (bounded; a collision
/// only costs one admission decision, never a wrong answer).
struct Doorkeeper {
    slots: Box<[u64]>,
}

impl Doorkeeper {
    fn new(entries: usize) -> Self {
        Doorkeeper {
            slots: vec![0; entries.max(1).next_power_of_two()].into_boxed_slice(),
        }
    }

    /// Whether `hash` was turned away since its slot last changed; if not,
    /// it is remembered now (and whatever held its slot forgotten).
    fn seen_again(&mut self, hash: u64) -> bool {
        let hash = hash | 1; // 0 is an empty slot
        let slot = &mut self.slots[Self::slot_of(hash, self.slots.len())];
        if *slot == hash {
            *slot = 0;
            return true;
        }
        *slot = hash;
        false
    }

    /// What [`seen_again`](Self::seen_again) would say, remembering nothing.
    fn would_see_again(&self, hash: u64) -> bool {
        let hash = hash | 1;
        self.slots[Self::slot_of(hash, self.slots.len())] == hash
    }

    fn slot_of(hash: u64, slots: usize) -> usize {
        (hash >> 1) as usize & (slots - 1)
    }
}

/// The cache of one server. See the module docs.
pub struct FileStates {
    inner: Mutex<Inner>,
    max_entries: usize,
    max_bytes: u64,
    /// Revalidating `stat`s of a path made so far.
    stats: AtomicU64,
}

impl FileStates {
    /// A cache of at most `max_entries` entries and `max_bytes` of file bytes.
    pub fn new(max_entries: usize, max_bytes: u64) -> Self {
        FileStates {
            inner: Mutex::new(Inner {
                map: HashMap::new(),
                clock: 0,
                bytes: 0,
                doorkeeper: Doorkeeper::new(max_entries),
            }),
            max_entries,
            max_bytes,
            stats: AtomicU64::new(0),
        }
    }

    /// The entry for `key` if its file is still the version it describes.
    /// One `stat` (cheap for a path whose dentries are cached; it runs on the
    /// caller's thread).
    pub fn get(&self, key: &str) -> Option<Arc<FileState>> {
        self.get_reading(key, || None, None).map(|(state, _)| state)
    }

    /// [`get`](Self::get) for a request whose one range-spec is `want()`
    /// (asked only of a large file): a small range of a large file is
    /// read from the page cache *before* the revalidating `stat`, so that
    /// one `stat` proves both that the path still leads to this version and
    /// that the bytes read are of it (a read then a stamp check, as every
    /// body read is; instead of a `stat` before and an `fstat` after).
    /// Not for a racy entry, whose bodies are verified against the digest.
    ///
    /// `seen`: the ticket the request drew once read, if it drew one. A hit
    /// needs no `stat` of the path when another request's revalidation that
    /// began after `seen` found the entry unchanged; if it read bytes, an
    /// `fstat` after the read then vouches for them.
    pub fn get_reading(
        &self,
        key: &str,
        want: impl FnOnce() -> Option<RangeSpec>,
        seen: Option<Ticket>,
    ) -> Option<(Arc<FileState>, Option<Prefetched>)> {
        let state = self.lookup(key)?;
        self.check_reading(key, state, want, seen)
    }

    /// The entry for `key` with its revalidation left to the caller when it
    /// is settled ([`Hit::Later`]): one `stat` made once the answer is,
    /// and shared by every answer made before it began (the HTTP/1.1 fast
    /// path makes its answers, then waits a turn of the scheduler, then
    /// confirms them: the answers made in one turn share one `stat`, and a
    /// range read needs no `fstat` after it). A racy entry is revalidated
    /// now ([`Hit::Now`]), as [`get_reading`](Self::get_reading) does.
    pub fn get_later(&self, key: &str, want: impl FnOnce() -> Option<RangeSpec>) -> Option<Hit> {
        let state = self.lookup(key)?;
        if state.racy_until.is_none() {
            return Some(Hit::Later(state));
        }
        let (state, read) = self.check_reading(key, state, want, None)?;
        Some(Hit::Now(state, read))
    }

    /// Whether a [`Hit::Later`] still is what `key` leads to, for an answer
    /// made from it (every read it sends done) before `made` was drawn: a
    /// revalidation that began after `made` found it unchanged, or (if none
    /// has yet) one made now does. The path then led to this version after
    /// the request was read, and the bytes read from its descriptor before
    /// that `stat` are of this version (its stamp had not moved). `false`:
    /// the entry is dropped; send nothing made from it. `key()` is asked
    /// only for a revalidation made here (to drop a stale entry).
    pub fn confirm<'k>(
        &self,
        key: impl FnOnce() -> &'k str,
        state: &Arc<FileState>,
        made: Ticket,
    ) -> bool {
        state.checked.vouches_for(made) || self.revalidate(key(), state)
    }

    /// The entry for `key`, not revalidated, marked as just used.
    fn lookup(&self, key: &str) -> Option<Arc<FileState>> {
        if self.max_entries == 0 {
            return None;
        }
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        inner.clock += 1;
        let now = inner.clock;
        let entry = inner.map.get_mut(key)?;
        entry.last_used = now;
        Some(Arc::clone(&entry.state))
    }

    /// [`get_reading`](Self::get_reading) of an entry looked up.
    fn check_reading(
        &self,
        key: &str,
        state: Arc<FileState>,
        want: impl FnOnce() -> Option<RangeSpec>,
        seen: Option<Ticket>,
    ) -> Option<(Arc<FileState>, Option<Prefetched>)> {
        let settled = state.racy_until.is_none();
        let vouched_for = settled && seen.is_some_and(|seen| state.checked.vouches_for(seen));
        let read = match (&state.prefetched, state.racy_until) {
            (None, None) => {
                want().and_then(|want| read_window_cached(&state.file, state.stamp.size, want))
            }
            _ => None,
        };
        if vouched_for {
            // The path still led to this version after the request was read.
            // Bytes read just now are of it if the descriptor's stamp still
            // is (an `fstat`: no path walk).
            let unchanged = || {
                state
                    .file
                    .metadata()
                    .is_ok_and(|m| FileStamp::of(&m) == state.stamp)
            };
            if read.is_none() || unchanged() {
                return Some((state, read));
            }
        }
        self.revalidate(key, &state).then_some((state, read))
    }

    /// Whether `key` still leads to `state`'s version, by a `stat` of the
    /// path made now (recorded for the requests it vouches for, if settled;
    /// a racy entry also expires); a stale entry is dropped.
    fn revalidate(&self, key: &str, state: &Arc<FileState>) -> bool {
        let ticket = Ticket::draw();
        self.stats.fetch_add(1, Ordering::Relaxed);
        let current = FileStamp::of_path(&state.joined);
        if current == Some(state.stamp) && state.racy_until.is_none_or(|t| SystemTime::now() < t) {
            if state.racy_until.is_none() {
                state.checked.record(ticket);
            }
            return true;
        }
        self.forget(key, state);
        false
    }

    /// Whether a state for `key` inserted now would not be kept: the cache
    /// is full (by entries, or by bytes before the state's own) and `key`
    /// was not turned away before. A hint that changes nothing (the next
    /// [`insert`](Self::insert) decides, and remembers `key`): a caller may
    /// then skip what only a kept state needs (a small file's bytes).
    pub fn turns_away(&self, key: &str) -> bool {
        if self.max_entries == 0 {
            return true;
        }
        let inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        self.full(&inner, 0) && !inner.map.contains_key(key) && {
            let hash = inner.map.hasher().hash_one(key);
            !inner.doorkeeper.would_see_again(hash)
        }
    }

    /// What [`insert`](Self::insert) would do with a state for `key` that
    /// holds no bytes, without the state: `true` if it would be turned away,
    /// and then `key` is remembered as insert remembers it. `false`: insert
    /// would keep it (the caller makes the state and inserts it).
    pub fn turn_away(&self, key: &str) -> bool {
        if self.max_entries == 0 {
            return true;
        }
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        if !self.full(&inner, 0) || inner.map.contains_key(key) {
            return false;
        }
        let hash = inner.map.hasher().hash_one(key);
        if inner.doorkeeper.would_see_again(hash) {
            // seen again: insert keeps it (and clears its slot then)
            return false;
        }
        inner.doorkeeper.seen_again(hash);
        true
    }

    /// Whether the cache is full for a new state holding `held` bytes: at
    /// or above the level an eviction leaves (7/8 of a bound), in entries or
    /// in bytes.
    fn full(&self, inner: &Inner, held: u64) -> bool {
        inner.map.len() >= self.max_entries - self.max_entries / 8
            || inner.bytes + held > self.max_bytes - self.max_bytes / 8
    }

    /// Remember `state` for `key`, evicting the least recently used entries
    /// beyond the bounds; once the cache is full, only for a `key` turned
    /// away before (see Admission in the module docs). A state holding more
    /// bytes than the whole byte budget is not kept (its bytes are what its
    /// digest describes).
    pub fn insert(&self, key: &str, state: FileState) -> Arc<FileState> {
        let state = Arc::new(state);
        if self.max_entries == 0 || state.held_bytes() > self.max_bytes {
            return state;
        }
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        if self.full(&inner, state.held_bytes()) && !inner.map.contains_key(key) {
            let hash = inner.map.hasher().hash_one(key);
            if !inner.doorkeeper.seen_again(hash) {
                return state;
            }
        }
        inner.clock += 1;
        let entry = Entry {
            state: Arc::clone(&state),
            last_used: inner.clock,
        };
        inner.bytes += state.held_bytes();
        if let Some(old) = inner.map.insert(key.into(), entry) {
            inner.bytes -= old.state.held_bytes();
        }
        while inner.map.len() > self.max_entries || inner.bytes > self.max_bytes {
            // Evict in batches of the oldest eighth: one scan per many inserts;
            // never the whole map (the entry just inserted is the newest and
            // stays: it alone fits the byte budget, or it was not inserted).
            let over = inner.map.len().saturating_sub(self.max_entries);
            let batch = if over > 0 {
                (self.max_entries / 8).max(over)
            } else {
                inner.map.len() / 8
            };
            let batch = batch.min(inner.map.len() - 1).max(1);
            let mut ages: Vec<u64> = inner.map.values().map(|e| e.last_used).collect();
            let cut = batch.min(ages.len()) - 1;
            let (_, &mut limit, _) = ages.select_nth_unstable(cut);
            let mut freed = 0;
            inner.map.retain(|_, e| {
                let keep = e.last_used > limit;
                if !keep {
                    freed += e.state.held_bytes();
                }
                keep
            });
            inner.bytes -= freed;
        }
        state
    }

    /// The ticket of a request for `key` that was just read, drawn now; if
    /// the entry is [`hot`](Self::hot), after a wait behind the tasks
    /// already queued, so that the requests read in this turn share one
    /// revalidation. How the service's hit begins a lookup
    /// ([`get_reading`](Self::get_reading)).
    pub async fn read_ticket(&self, key: &str) -> Ticket {
        let seen = Ticket::draw();
        if self.hot(key) {
            behind_the_ready_tasks().await;
        }
        seen
    }

    /// Whether `key` has a settled entry that was revalidated within
    /// [`SHARE_WINDOW`]: requests for it come faster than one `stat` apiece
    /// is worth, and one that waits a turn of the scheduler will likely
    /// share a revalidation (see the module docs). A hint only: what a hit
    /// may skip is decided by [`get_reading`](Self::get_reading).
    pub fn hot(&self, key: &str) -> bool {
        self.hot_within(key, SHARE_WINDOW)
    }

    fn hot_within(&self, key: &str, window: Duration) -> bool {
        if self.max_entries == 0 {
            return false;
        }
        let inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        inner
            .map
            .get(key)
            .is_some_and(|e| e.state.racy_until.is_none() && e.state.checked.recent(window))
    }

    /// Drop the entry for `key` if it still is `stale`.
    pub fn forget(&self, key: &str, stale: &Arc<FileState>) {
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        // only if nobody replaced it meanwhile
        if inner
            .map
            .get(key)
            .is_some_and(|e| Arc::ptr_eq(&e.state, stale))
        {
            inner.map.remove(key);
            inner.bytes -= stale.held_bytes();
        }
    }

    /// Revalidating `stat`s of a path made so far (hits that shared one
    /// made none).
    pub fn stats_made(&self) -> u64 {
        self.stats.load(Ordering::Relaxed)
    }

    /// Entries and bytes held now.
    pub fn usage(&self) -> (usize, u64) {
        let inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        (inner.map.len(), inner.bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write as _;

    fn state(dir: &std::path::Path, name: &str, len: usize) -> FileState {
        let p = dir.join(name);
        std::fs::write(&p, vec![7u8; len]).unwrap();
        let file = File::open(&p).unwrap();
        let meta = file.metadata().unwrap();
        FileState {
            joined: CString::new(p.as_os_str().as_encoded_bytes()).unwrap(),
            real: Arc::new(p),
            stamp: FileStamp::of(&meta),
            modified: meta.modified().unwrap(),
            digest: [0; 32],
            racy_until: None,
            content_type: "text/plain".into(),
            rendered: Arc::new(Rendered::new(
                [0; 32],
                "text/plain".into(),
                meta.modified().unwrap(),
            )),
            prefetched: Some(Prefetched {
                offset: 0,
                bytes: bytes::Bytes::from(vec![7u8; len]),
            }),
            file: Arc::new(file),
            checked: Checked::default(),
        }
    }

    #[test]
    fn hits_until_the_file_changes() {
        let dir = tempfile::tempdir().unwrap();
        let cache = FileStates::new(10, 1 << 20);
        cache.insert("/a", state(dir.path(), "a", 10));
        assert!(cache.get("/a").is_some());
        assert!(cache.get("/b").is_none());
        // a rename over the path: another inode
        std::fs::write(dir.path().join("a2"), b"0123456789").unwrap();
        std::fs::rename(dir.path().join("a2"), dir.path().join("a")).unwrap();
        assert!(cache.get("/a").is_none());
        assert_eq!(cache.usage(), (0, 0));
    }

    #[test]
    fn a_hit_reads_a_small_first_range_of_a_large_file_before_its_stat() {
        use crate::rfc::range::RangeSpec;
        let dir = tempfile::tempdir().unwrap();
        let big: Vec<u8> = (0..600_000u32).map(|i| (i % 251) as u8).collect();
        let mut large = state(dir.path(), "big", 0);
        let path = std::path::Path::new(
            <std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(large.joined.as_bytes()),
        );
        std::fs::write(path, &big).unwrap();
        let file = File::open(path).unwrap();
        large.stamp = FileStamp::of(&file.metadata().unwrap());
        large.file = Arc::new(file);
        large.prefetched = None;
        let cache = FileStates::new(10, 1 << 20);
        cache.insert("/big", large);
        let range = RangeSpec::FromTo {
            first: 300_000,
            last: Some(300_009),
        };
        let (_, read) = cache.get_reading("/big", || Some(range), None).unwrap();
        let read = read.expect("a cached small range is read with the hit");
        assert_eq!(
            (read.offset, &read.bytes[..]),
            (300_000, &big[300_000..300_010])
        );
        // no range, or one too large to read inline: the body reads it
        assert!(cache
            .get_reading("/big", || None, None)
            .unwrap()
            .1
            .is_none());
        let wide = RangeSpec::FromTo {
            first: 0,
            last: Some(100_000),
        };
        assert!(cache
            .get_reading("/big", || Some(wide), None)
            .unwrap()
            .1
            .is_none());
        // rewritten (same size): the stat after the read refuses the hit
        let mut other = big.clone();
        other[300_000] ^= 1;
        std::fs::write(dir.path().join("big2"), &other).unwrap();
        std::fs::rename(dir.path().join("big2"), dir.path().join("big")).unwrap();
        assert!(cache.get_reading("/big", || Some(range), None).is_none());
        // a small file is held whole: nothing is read, nor the range asked
        cache.insert("/a", state(dir.path(), "a", 10));
        let (hit, read) = cache
            .get_reading("/a", || panic!("not asked of a small file"), None)
            .unwrap();
        assert!(read.is_none() && hit.prefetched.is_some());
    }

    /// A revalidation that found the file unchanged serves the requests read
    /// before it began, and only those; a hit that read bytes also checks
    /// its descriptor's stamp after the read.
    #[test]
    fn a_revalidation_vouches_only_for_requests_read_before_it_began() {
        let dir = tempfile::tempdir().unwrap();
        let cache = FileStates::new(10, 1 << 20);
        cache.insert("/a", state(dir.path(), "a", 10));
        let before = Ticket::draw();
        // no revalidation yet: its own `stat`
        assert!(cache.get_reading("/a", || None, Some(before)).is_some());
        let read_then = Ticket::draw();
        assert!(cache.get_reading("/a", || None, None).is_some());
        // renamed over (another inode, another size)
        std::fs::write(dir.path().join("a2"), b"0123456789a").unwrap();
        std::fs::rename(dir.path().join("a2"), dir.path().join("a")).unwrap();
        // read before the last revalidation began, and so before the change:
        // that revalidation answers for it, and no `stat` is made
        let made = cache.stats_made();
        assert!(cache.get_reading("/a", || None, Some(read_then)).is_some());
        assert_eq!(cache.stats_made(), made, "the revalidation is shared");
        // read after the change: its own `stat` sees it, and the entry goes
        let read_now = Ticket::draw();
        assert!(cache.get_reading("/a", || None, Some(read_now)).is_none());
        assert_eq!(cache.stats_made(), made + 1);
        assert!(cache.get_reading("/a", || None, Some(read_then)).is_none());

        // a hit that reads a range of a large file: the bytes need a stamp
        // check after them, which sees a rewrite in place even where the
        // path's revalidation is shared
        let big = vec![5u8; 2 * crate::fs::SMALL_MAX as usize];
        std::fs::write(dir.path().join("big"), &big).unwrap();
        let mut large = state(dir.path(), "b", 0);
        let file = File::open(dir.path().join("big")).unwrap();
        large.joined =
            CString::new(dir.path().join("big").into_os_string().into_encoded_bytes()).unwrap();
        large.stamp = FileStamp::of(&file.metadata().unwrap());
        large.file = Arc::new(file);
        large.prefetched = None;
        cache.insert("/big", large);
        let range = RangeSpec::FromTo {
            first: 0,
            last: Some(9),
        };
        let read_then = Ticket::draw();
        assert!(cache.get_reading("/big", || None, None).is_some());
        let made = cache.stats_made();
        let (_, read) = cache
            .get_reading("/big", || Some(range), Some(read_then))
            .unwrap();
        assert_eq!(read.expect("read with the hit").bytes, &big[..10]);
        assert_eq!(cache.stats_made(), made, "an fstat, not a path stat");
        // not vouched for (drawn after the last revalidation began): its
        // own path stat, with the range read before it
        let read_now = Ticket::draw();
        let (_, read) = cache
            .get_reading("/big", || Some(range), Some(read_now))
            .unwrap();
        assert_eq!(read.expect("read with the hit").bytes, &big[..10]);
        assert_eq!(cache.stats_made(), made + 1, "a path stat");
        // rewritten in place (same inode): the descriptor's stamp moves
        std::fs::OpenOptions::new()
            .append(true)
            .open(dir.path().join("big"))
            .unwrap()
            .write_all(b"more")
            .unwrap();
        assert!(cache
            .get_reading("/big", || Some(range), Some(read_then))
            .is_none());
    }

    /// A settled hit taken with `get_later` is confirmed by a `stat` made
    /// after its answer was: one shared by the answers made before it
    /// began, never by one made after. A change (a rename over the path, a
    /// write in place) is never confirmed, and the entry goes; a racy entry
    /// is revalidated at once instead.
    #[test]
    fn answers_made_then_confirmed_share_one_stat() {
        let dir = tempfile::tempdir().unwrap();
        let cache = FileStates::new(10, 1 << 20);
        cache.insert("/a", state(dir.path(), "a", 10));
        let later = |key| match cache.get_later(key, || None) {
            Some(Hit::Later(state)) => Some(state),
            Some(Hit::Now(..)) => panic!("{key}: a settled entry is left to confirm"),
            None => None,
        };
        let made = cache.stats_made();
        let (first, second) = (later("/a").unwrap(), later("/a").unwrap());
        assert_eq!(cache.stats_made(), made, "no stat before the answers");
        let (first_made, second_made) = (Ticket::draw(), Ticket::draw());
        assert!(cache.confirm(|| "/a", &first, first_made));
        assert_eq!(cache.stats_made(), made + 1, "the first confirmation stats");
        assert!(cache.confirm(|| "/a", &second, second_made));
        assert_eq!(
            cache.stats_made(),
            made + 1,
            "and serves the answer made before"
        );
        // an answer made after that stat began waits for one of its own
        assert!(cache.confirm(|| "/a", &first, Ticket::draw()));
        assert_eq!(cache.stats_made(), made + 2);

        // renamed over after the answer was made: not confirmed, and gone
        let stale = later("/a").unwrap();
        std::fs::write(dir.path().join("a2"), b"0123456789").unwrap();
        std::fs::rename(dir.path().join("a2"), dir.path().join("a")).unwrap();
        assert!(!cache.confirm(|| "/a", &stale, Ticket::draw()));
        assert!(later("/a").is_none(), "the stale entry is dropped");

        // written in place (same inode, same size): the stamp moves
        cache.insert("/b", state(dir.path(), "b", 10));
        let stale = later("/b").unwrap();
        assert!(cache.confirm(|| "/b", &stale, Ticket::draw()));
        std::thread::sleep(Duration::from_millis(10));
        std::fs::OpenOptions::new()
            .write(true)
            .open(dir.path().join("b"))
            .unwrap()
            .write_all(b"x")
            .unwrap();
        let made_after = Ticket::draw();
        assert!(!cache.confirm(|| "/b", &stale, made_after));
        assert!(later("/b").is_none());

        // racy: revalidated now, a stat per lookup
        let mut racy = state(dir.path(), "c", 10);
        racy.racy_until = Some(SystemTime::now() + Duration::from_secs(3600));
        cache.insert("/c", racy);
        let made = cache.stats_made();
        assert!(matches!(cache.get_later("/c", || None), Some(Hit::Now(..))));
        assert_eq!(cache.stats_made(), made + 1);
    }

    /// `hot` says an entry was revalidated a moment ago, and only that.
    #[test]
    fn hot_just_after_a_revalidation() {
        let dir = tempfile::tempdir().unwrap();
        let cache = FileStates::new(10, 1 << 20);
        cache.insert("/a", state(dir.path(), "a", 10));
        // a window of a minute where the test needs "just now" (a loaded
        // machine may pause it longer than SHARE_WINDOW), and one of a
        // millisecond, slept past, for "too long ago"
        let (long, short) = (Duration::from_secs(60), Duration::from_millis(1));
        assert!(!cache.hot_within("/a", long), "never revalidated");
        assert!(!cache.hot_within("/b", long), "no entry");
        assert!(cache.get("/a").is_some());
        assert!(cache.hot_within("/a", long));
        std::thread::sleep(short * 3);
        assert!(!cache.hot_within("/a", short), "revalidated too long ago");
        // a racy entry's revalidations are its own
        let mut racy = state(dir.path(), "r", 10);
        racy.racy_until = Some(SystemTime::now() + Duration::from_secs(60));
        cache.insert("/r", racy);
        assert!(cache.get("/r").is_some());
        assert!(!cache.hot_within("/r", long));
    }

    /// Insert `key` as a new 10-byte file, twice if the first was turned
    /// away by a full cache (the second asking admits it).
    fn admit(cache: &FileStates, dir: &std::path::Path, key: &str) {
        cache.insert(key, state(dir, &key[1..], 10));
        if cache.get(key).is_none() {
            cache.insert(key, state(dir, &key[1..], 10));
        }
    }

    #[test]
    fn bounded_in_entries_and_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let cache = FileStates::new(4, 100);
        for i in 0..10 {
            admit(&cache, dir.path(), &format!("/{i}"));
            let (n, bytes) = cache.usage();
            assert!(n <= 4 && bytes <= 100, "{n} entries, {bytes} bytes");
        }
        // the newest survives
        assert!(cache.get("/9").is_some());
        // the byte budget evicts the oldest, never everything
        let cache = FileStates::new(1000, 100);
        for i in 0..20 {
            admit(&cache, dir.path(), &format!("/{i}"));
            let (n, bytes) = cache.usage();
            assert!(n >= 1 && bytes <= 100, "{n} entries, {bytes} bytes");
        }
        assert!(cache.usage().0 >= 5, "{:?}", cache.usage());
        assert!(cache.get("/19").is_some());
        let cache = FileStates::new(100, 25);
        for i in 0..10 {
            admit(&cache, dir.path(), &format!("/{i}"));
        }
        assert!(cache.usage().1 <= 25);
        // larger than the whole budget: not kept, however often asked
        cache.insert("/big", state(dir.path(), "big", 30));
        cache.insert("/big", state(dir.path(), "big", 30));
        assert!(cache.get("/big").is_none());
        let off = FileStates::new(0, 0);
        off.insert("/a", state(dir.path(), "a", 1));
        off.insert("/a", state(dir.path(), "a", 1));
        assert!(off.get("/a").is_none());
    }

    /// While there is room every file is kept; once full, a path is kept
    /// only when asked for again after being turned away.
    #[test]
    fn a_full_cache_keeps_a_path_asked_for_twice() {
        let dir = tempfile::tempdir().unwrap();
        let cache = FileStates::new(8, 1 << 20);
        // room for 7 (an eviction leaves 7/8 of the bound): kept at once
        for i in 0..7 {
            assert!(!cache.turns_away(&format!("/{i}")), "room for /{i}");
            cache.insert(&format!("/{i}"), state(dir.path(), &i.to_string(), 10));
            assert!(cache.get(&format!("/{i}")).is_some(), "/{i} kept");
        }
        // full: the first asking is served, not kept; nothing is evicted
        // (`turns_away` says so beforehand, and changes nothing)
        assert!(cache.turns_away("/new"));
        assert!(cache.turns_away("/new"), "asking is not being turned away");
        assert!(!cache.turns_away("/3"), "a kept path is replaced");
        let served = cache.insert("/new", state(dir.path(), "new", 10));
        assert_eq!(&served.prefetched.as_ref().unwrap().bytes[..], &[7u8; 10]);
        assert!(cache.get("/new").is_none());
        assert_eq!(cache.usage().0, 7);
        for i in 0..7 {
            assert!(cache.get(&format!("/{i}")).is_some(), "/{i} still kept");
        }
        // the second is kept, within the bound
        assert!(!cache.turns_away("/new"), "turned away once: kept next");
        cache.insert("/new", state(dir.path(), "new", 10));
        assert!(cache.get("/new").is_some());
        assert!(cache.usage().0 <= 8);
        // a path already kept is replaced whenever it is inserted
        let fresh = cache.insert("/new", state(dir.path(), "new", 10));
        assert!(Arc::ptr_eq(&fresh, &cache.get("/new").unwrap()));
        // the byte budget counts as full too
        let cache = FileStates::new(1000, 80);
        for i in 0..7 {
            cache.insert(&format!("/{i}"), state(dir.path(), &i.to_string(), 10));
        }
        // (a state holding no bytes would still fit: the hint says so)
        assert!(!cache.turns_away("/b"), "70 bytes: at 7/8 of 80, not above");
        cache.insert("/b", state(dir.path(), "b", 10));
        assert!(
            cache.get("/b").is_none(),
            "70 + 10 bytes is above 7/8 of 80"
        );
        cache.insert("/b", state(dir.path(), "b", 10));
        assert!(cache.get("/b").is_some());
        assert!(cache.usage().1 <= 80);
        // above 7/8 of the bytes: a new path is turned away whatever it holds
        assert_eq!(cache.usage().1, 80);
        assert!(cache.turns_away("/c"));
    }

    #[test]
    fn turning_away_without_a_state_is_what_insert_does() {
        let dir = tempfile::tempdir().unwrap();
        let cache = FileStates::new(8, 1 << 20);
        for i in 0..7 {
            // room: insert would keep it
            assert!(!cache.turn_away(&format!("/{i}")), "room for /{i}");
            cache.insert(&format!("/{i}"), state(dir.path(), &i.to_string(), 0));
        }
        assert!(!cache.turn_away("/3"), "a kept path is replaced");
        // full: turned away, and remembered as insert remembers it
        assert!(cache.turn_away("/new"));
        assert!(cache.get("/new").is_none());
        assert_eq!(cache.usage().0, 7);
        assert!(!cache.turns_away("/new"), "remembered");
        // told it would be kept, insert keeps it
        assert!(!cache.turn_away("/new"));
        cache.insert("/new", state(dir.path(), "new", 0));
        assert!(cache.get("/new").is_some());
        // turned away by insert, then not by turn_away: the same memory
        let cache = FileStates::new(8, 1 << 20);
        for i in 0..7 {
            cache.insert(&format!("/{i}"), state(dir.path(), &i.to_string(), 0));
        }
        cache.insert("/x", state(dir.path(), "x", 0));
        assert!(cache.get("/x").is_none());
        assert!(!cache.turn_away("/x"));
        // a disabled cache turns everything away
        assert!(FileStates::new(0, 0).turn_away("/a"));
    }
}
