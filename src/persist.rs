//! The `--etag-cache` file: one format and one life cycle for the digests
//! the directory mode ([`crate::hashcache`]) and the object mode
//! ([`crate::origin::state`]) keep across restarts.
//!
//! **Format: an append-only log of checksummed batches.** A header line (a
//! format name and `v2`, then, for the object mode, the hex of the store it
//! was written for), then batches. A batch is lines, each either an entry
//! (the owner's own fields) or `- <id>` (the entry whose [`line_id`] that
//! is leaves), closed by a line `sha256 <hex>` over the batch's lines.
//! Replaying the batches in order gives the live entries. A file whose last
//! batch is cut short or does not match its checksum (a write torn by a
//! crash) loses that batch only; a file with another header, of another
//! store, not UTF-8, with a bad batch before the last or with one malformed
//! live entry is ignored whole with a warning. Either way the caches start
//! without those digests and rehash, never use a wrong one. A `v1` file is
//! the one-batch case and reads the same.
//!
//! **Life cycle.** [`CacheFile::load`] reads it when the cache is made; the
//! cache marks it dirty when an entry worth keeping arrives; [`flush_loop`]
//! writes it at most once per interval after that, and [`flush`] at a
//! graceful stop. A write appends one batch with what changed since the
//! last (entries added, ids of entries gone), synced; so a tree of 100,000
//! hashed files costs its whole file once, not at every flush. The file is
//! rewritten whole (compacted) instead when it would grow past twice the
//! live entries plus [`COMPACT_SLACK`], when it was not cleanly loaded, or
//! when it is no longer the file this process last wrote (another writer,
//! or it was removed): a temp file with a random name created exclusively
//! beside it, synced, then renamed over it. A failure to write is a
//! warning, never fatal.

use std::collections::{HashMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io::{self, Read as _, Write as _};
use std::os::unix::fs::{MetadataExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use sha2::{Digest as _, Sha256};
use tokio::sync::Notify;

/// How far past twice its live entries the file may grow by appends before
/// it is compacted: a few appended batches of a small cache.
pub const COMPACT_SLACK: u64 = 16 * 1024;
/// The version written; [`READ_VERSIONS`] are those read.
const VERSION: &str = "v2";
const READ_VERSIONS: [&str; 2] = ["v1", "v2"];
/// A batch's closing line starts with this (an entry starts with hex, a
/// removal with `- `).
const SUM: &str = "sha256 ";

/// Why a cache file is ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Unusable {
    /// Not text.
    #[error("not UTF-8")]
    NotUtf8,
    /// Another format, or a version of it this build does not read.
    #[error("unknown header")]
    UnknownHeader,
    /// Written by the object mode for another store.
    #[error("written for another store")]
    OtherStore,
    /// A batch before the last is not the one its checksum was made over.
    #[error("checksum mismatch")]
    ChecksumMismatch,
    /// A line its owner cannot read (or a malformed removal).
    #[error("malformed entry")]
    MalformedEntry,
}

/// Which cache file: its format name and, for the object mode, the store it
/// is of (a file is only ever read back for the same format and store).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// The format's name (`rangeserve-etag-cache`); the version follows it.
    pub format: &'static str,
    /// The store's description (`s3://bucket/prefix`), written hex-encoded.
    pub store: Option<String>,
}

impl Header {
    fn line(&self) -> String {
        match &self.store {
            Some(store) => format!("{} {VERSION} {}", self.format, hex::encode(store)),
            None => format!("{} {VERSION}", self.format),
        }
    }

    /// The version of `line` if it is this header in a version this build
    /// reads.
    fn read<'a>(&self, line: &'a str) -> Result<&'a str, Unusable> {
        let rest = line
            .strip_prefix(self.format)
            .and_then(|r| r.strip_prefix(' '))
            .ok_or(Unusable::UnknownHeader)?;
        let (version, store) = match rest.split_once(' ') {
            Some((v, s)) => (v, Some(s)),
            None => (rest, None),
        };
        if !READ_VERSIONS.contains(&version) {
            return Err(Unusable::UnknownHeader);
        }
        match (&self.store, store) {
            (None, None) => Ok(version),
            (Some(want), Some(hexed)) if hexed == hex::encode(want) => Ok(version),
            (Some(_), Some(_)) => Err(Unusable::OtherStore),
            _ => Err(Unusable::UnknownHeader),
        }
    }
}

/// How a removal names an entry line: the first 16 bytes of its SHA-256.
pub type LineId = [u8; 16];

/// The [`LineId`] of an entry line (without its `\n`).
pub fn line_id(line: &str) -> LineId {
    Sha256::digest(line.as_bytes())[..16]
        .try_into()
        .expect("16 of 32 bytes")
}

/// One batch's text: the lines `added`, a removal for each of `gone`, and
/// the checksum line over them.
fn batch(added: &[&str], gone: &[LineId]) -> String {
    let mut text = String::new();
    for line in added {
        text.push_str(line);
        text.push('\n');
    }
    for id in gone {
        text.push_str("- ");
        text.push_str(&hex::encode(id));
        text.push('\n');
    }
    let sum = hex::encode(Sha256::digest(text.as_bytes()));
    text.push_str(SUM);
    text.push_str(&sum);
    text.push('\n');
    text
}

/// A whole file's text for `entries` (one line each, each ending in `\n`):
/// the header and one batch.
pub fn encode(header: &Header, entries: &str) -> String {
    let lines: Vec<&str> = entries.lines().collect();
    format!("{}\n{}", header.line(), batch(&lines, &[]))
}

/// `encode(header, entries).len()` for `entries` of whole lines, each ending
/// in `\n`, reckoned without building (and hashing) the text.
fn encoded_len(header: &Header, entries: &str) -> usize {
    header.line().len() + 1 + entries.len() + SUM.len() + 64 + 1
}

/// A file replayed: its live entry lines in the order they came, and
/// whether it may be appended to as it is.
struct Replayed<'a> {
    lines: Vec<(LineId, &'a str)>,
    /// Written in the current version and not cut short.
    clean: bool,
}

/// Replay the batches of `text` written under `header` (see the module docs).
fn replay<'a>(text: &'a str, header: &Header) -> Result<Replayed<'a>, Unusable> {
    let (first, mut rest) = text.split_once('\n').ok_or(Unusable::UnknownHeader)?;
    let mut clean = header.read(first)? == VERSION;
    let mut order: Vec<Option<(LineId, &str)>> = Vec::new();
    let mut at: HashMap<LineId, usize> = HashMap::new();
    while !rest.is_empty() {
        let sum_at = if rest.starts_with(SUM) {
            Some(0)
        } else {
            rest.find(&format!("\n{SUM}")).map(|i| i + 1)
        };
        let Some(sum_at) = sum_at else {
            clean = false; // a batch cut before its checksum line
            break;
        };
        let (body, after) = rest.split_at(sum_at);
        let (sum_line, next) = after.split_once('\n').unwrap_or((after, ""));
        let whole = after.contains('\n');
        let want = hex::encode(Sha256::digest(body.as_bytes()));
        if !whole || sum_line[SUM.len()..] != want {
            if next.is_empty() {
                clean = false; // the last batch, torn: it alone is lost
                break;
            }
            return Err(Unusable::ChecksumMismatch);
        }
        for line in body.lines() {
            if let Some(id) = line.strip_prefix("- ") {
                let id: LineId = hex::decode(id)
                    .ok()
                    .and_then(|b| b.try_into().ok())
                    .ok_or(Unusable::MalformedEntry)?;
                if let Some(i) = at.remove(&id) {
                    order[i] = None;
                }
            } else {
                let id = line_id(line);
                if let Some(&i) = at.get(&id) {
                    order[i] = Some((id, line));
                } else {
                    at.insert(id, order.len());
                    order.push(Some((id, line)));
                }
            }
        }
        rest = next;
    }
    let lines = order.into_iter().flatten().collect();
    Ok(Replayed { lines, clean })
}

/// A file's live entries, read by their owner.
#[derive(Debug, PartialEq, Eq)]
pub struct Decoded<T> {
    /// The entries, in the order they came.
    pub entries: Vec<T>,
    /// Their lines' ids.
    live: HashSet<LineId>,
    /// Written in the current version and not cut short: it may be
    /// appended to as it is.
    clean: bool,
}

/// The live entries of a file's `bytes` written under `header`, each read
/// by `entry`; all of them or none.
pub fn decode<T>(
    bytes: &[u8],
    header: &Header,
    entry: impl Fn(&str) -> Option<T>,
) -> Result<Decoded<T>, Unusable> {
    let text = std::str::from_utf8(bytes).map_err(|_| Unusable::NotUtf8)?;
    let replayed = replay(text, header)?;
    let entries = replayed
        .lines
        .iter()
        .map(|(_, line)| entry(line))
        .collect::<Option<Vec<_>>>()
        .ok_or(Unusable::MalformedEntry)?;
    Ok(Decoded {
        entries,
        live: replayed.lines.iter().map(|(id, _)| *id).collect(),
        clean: replayed.clean,
    })
}

/// The file as this process last read or wrote it: appended to only while
/// it is still that file, that long, unchanged since (its ctime moves with
/// any write, even one that keeps the length).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Seen {
    dev: u64,
    ino: u64,
    len: u64,
    ctime_ns: i128,
}

impl Seen {
    fn of(meta: &std::fs::Metadata) -> Seen {
        Seen {
            dev: meta.dev(),
            ino: meta.ino(),
            len: meta.len(),
            ctime_ns: i128::from(meta.ctime()) * 1_000_000_000 + i128::from(meta.ctime_nsec()),
        }
    }
}

/// What the file holds, as far as this process knows.
#[derive(Default)]
struct Log {
    /// The live entries' ids.
    live: HashSet<LineId>,
    /// `None`: rewrite it whole at the next write.
    seen: Option<Seen>,
}

/// How a write went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wrote {
    /// Nothing had changed.
    Nothing,
    /// A batch of this many bytes was appended.
    Appended(u64),
    /// The file was written whole, this many bytes.
    Rewritten(u64),
}

/// A cache's file, and whether it needs writing.
pub struct CacheFile {
    path: PathBuf,
    header: Header,
    dirty: AtomicBool,
    wake: Notify,
    log: Mutex<Log>,
}

impl CacheFile {
    /// The file at `path` and the entries it holds (read by `entry`): none
    /// when it is missing or unusable (logged).
    pub fn load<T>(
        path: &Path,
        header: Header,
        entry: impl Fn(&str) -> Option<T>,
    ) -> (CacheFile, Vec<T>) {
        let mut log = Log::default();
        let entries = match read(path) {
            Ok((bytes, seen)) => match decode(&bytes, &header, entry) {
                Ok(Decoded {
                    entries,
                    live,
                    clean,
                }) => {
                    if !clean {
                        tracing::warn!(path = %path.display(), "ETag cache cut short or of an older version; kept what it holds, rewriting it");
                    }
                    tracing::info!(path = %path.display(), entries = entries.len(), "loaded ETag cache");
                    log.live = live;
                    log.seen = clean.then_some(seen);
                    entries
                }
                Err(why) => {
                    tracing::warn!(path = %path.display(), "ignoring ETag cache ({why}); rebuilding");
                    Vec::new()
                }
            },
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                tracing::info!(path = %path.display(), "no ETag cache yet; it will be created");
                Vec::new()
            }
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot read ETag cache; rebuilding");
                Vec::new()
            }
        };
        let file = CacheFile {
            path: path.to_path_buf(),
            header,
            dirty: AtomicBool::new(false),
            wake: Notify::new(),
            log: Mutex::new(log),
        };
        (file, entries)
    }

    /// An entry worth writing arrived: write the file soon.
    pub fn mark_dirty(&self) {
        self.dirty.store(true, Ordering::Release);
        self.wake.notify_one();
    }

    /// Bring the file to hold exactly `entries` (one line each, each ending
    /// in `\n`): append what changed, or rewrite it whole (see the module
    /// docs). Blocking.
    pub fn write(&self, entries: &str) -> io::Result<Wrote> {
        let mut log = self.log.lock().unwrap_or_else(PoisonError::into_inner);
        let now: Vec<(LineId, &str)> = entries.lines().map(|l| (line_id(l), l)).collect();
        let ids: HashSet<LineId> = now.iter().map(|(id, _)| *id).collect();
        let added: Vec<&str> = now
            .iter()
            .filter(|(id, _)| !log.live.contains(id))
            .map(|(_, line)| *line)
            .collect();
        let gone: Vec<LineId> = log
            .live
            .iter()
            .filter(|id| !ids.contains(*id))
            .copied()
            .collect();
        if added.is_empty() && gone.is_empty() && log.seen.is_some() {
            return Ok(Wrote::Nothing);
        }
        // only a rewrite needs the whole text built and hashed
        let whole_len = encoded_len(&self.header, entries);
        let appended = match log.seen {
            Some(seen) => {
                let more = batch(&added, &gone);
                let limit = 2 * whole_len as u64 + COMPACT_SLACK;
                if seen.len + more.len() as u64 <= limit {
                    log.seen = None; // until the append is known whole
                    append(&self.path, seen, more.as_bytes())?
                        .map(|after| (after, after.len - seen.len))
                } else {
                    None
                }
            }
            None => None,
        };
        let wrote = match appended {
            Some((after, grew)) => {
                log.seen = Some(after);
                Wrote::Appended(grew)
            }
            None => {
                log.seen = None;
                let whole = encode(&self.header, entries);
                let seen = write_atomically(&self.path, whole.as_bytes())?;
                log.seen = Some(seen);
                Wrote::Rewritten(seen.len)
            }
        };
        log.live = ids;
        Ok(wrote)
    }
}

/// The file's bytes, and what it was when read.
fn read(path: &Path) -> io::Result<(Vec<u8>, Seen)> {
    let mut file = File::open(path)?;
    let seen = Seen::of(&file.metadata()?);
    let mut bytes = Vec::with_capacity(seen.len as usize);
    file.read_to_end(&mut bytes)?;
    let len = bytes.len() as u64;
    Ok((bytes, Seen { len, ..seen }))
}

/// Append `bytes` to the file at `path` if it is still `seen` (the same
/// regular file, that long; never through a symlink), synced: its new
/// state, or `None` when it is another file now (rewrite it whole).
fn append(path: &Path, seen: Seen, bytes: &[u8]) -> io::Result<Option<Seen>> {
    let Ok(mut file) = OpenOptions::new()
        .append(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
    else {
        return Ok(None);
    };
    let meta = file.metadata()?;
    if !meta.file_type().is_file() || Seen::of(&meta) != seen {
        return Ok(None);
    }
    file.write_all(bytes)?;
    file.sync_data()?;
    Ok(Some(Seen::of(&file.metadata()?)))
}

/// A cache that keeps its entries in a [`CacheFile`].
pub trait Persisted: Send + Sync + 'static {
    /// Its file, if it has one.
    fn cache_file(&self) -> Option<&CacheFile>;
    /// The entries to write, one line each (what its `load` reads back).
    fn entry_lines(&self) -> String;
    /// Drop entries not worth writing any more, just before a write. Blocking.
    fn prune(&self) {}
}

/// Write `cache`'s file whenever it is marked dirty, at most once per
/// `every`; returns at once if it has no file.
pub async fn flush_loop<C: Persisted>(cache: Arc<C>, every: Duration) {
    let Some(file) = cache.cache_file() else {
        return;
    };
    loop {
        file.wake.notified().await;
        tokio::time::sleep(every).await;
        let cache = Arc::clone(&cache);
        // a prune may stat every entry: off the (small) blocking pool
        let _ = crate::hashcache::on_hash_thread(move || flush(&*cache)).await;
    }
}

/// Write `cache`'s file now if it was marked dirty since the last write.
/// Failures are logged, never fatal. Blocking.
pub fn flush<C: Persisted + ?Sized>(cache: &C) -> Option<Wrote> {
    let file = cache.cache_file()?;
    if !file.dirty.swap(false, Ordering::AcqRel) {
        return None;
    }
    cache.prune();
    match file.write(&cache.entry_lines()) {
        Ok(wrote) => {
            tracing::debug!(path = %file.path.display(), ?wrote, "ETag cache written");
            Some(wrote)
        }
        Err(e) => {
            tracing::warn!(path = %file.path.display(), error = %e, "cannot write ETag cache");
            None
        }
    }
}

/// Write `path` whole or not at all: a temp file with a random name, created
/// exclusively (never through a planted symlink) in the same directory,
/// synced, then renamed over `path`. Returns what the file is then.
fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<Seen> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path.file_name().unwrap_or_default();
    let mut prefix = name.to_os_string();
    prefix.push(".tmp.");
    let mut tmp = tempfile::Builder::new().prefix(&prefix).tempfile_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    let file = tmp.persist(path).map_err(|e| e.error)?;
    // after the rename, which moves the ctime
    Ok(Seen::of(&file.metadata()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIR: Header = Header {
        format: "rangeserve-etag-cache",
        store: None,
    };

    fn of_store(store: &str) -> Header {
        Header {
            format: "rangeserve-object-etag-cache",
            store: Some(store.into()),
        }
    }

    fn words(line: &str) -> Option<Vec<String>> {
        let words: Vec<String> = line.split(' ').map(String::from).collect();
        (words.len() == 2).then_some(words)
    }

    fn sum(text: &str) -> String {
        hex::encode(Sha256::digest(text.as_bytes()))
    }

    #[test]
    fn a_whole_file_is_the_header_and_one_checksummed_batch() {
        let text = encode(&DIR, "a b\nc d\n");
        assert_eq!(
            text,
            format!(
                "rangeserve-etag-cache v2\na b\nc d\nsha256 {}\n",
                sum("a b\nc d\n")
            )
        );
        assert_eq!(
            decode(text.as_bytes(), &DIR, words).unwrap().entries,
            [["a", "b"], ["c", "d"]]
        );
        let store = encode(&of_store("s3://b"), "");
        assert_eq!(
            store,
            format!(
                "rangeserve-object-etag-cache v2 {}\nsha256 {}\n",
                hex::encode("s3://b"),
                sum("")
            )
        );
        assert_eq!(
            decode(store.as_bytes(), &of_store("s3://b"), words)
                .unwrap()
                .entries,
            Vec::<Vec<String>>::new()
        );
        // the previous version's files are the one-batch case
        let v1 = format!("rangeserve-etag-cache v1\na b\nsha256 {}\n", sum("a b\n"));
        assert_eq!(
            decode(v1.as_bytes(), &DIR, words).unwrap().entries,
            [["a", "b"]]
        );
    }

    #[test]
    fn batches_replay_in_order_and_removals_name_lines_by_id() {
        let gone = hex::encode(line_id("a b"));
        let text = format!(
            "rangeserve-etag-cache v2\na b\nc d\nsha256 {}\ne f\n- {gone}\nsha256 {}\na b\nsha256 {}\n",
            sum("a b\nc d\n"),
            sum(&format!("e f\n- {gone}\n")),
            sum("a b\n"),
        );
        // a b left and came back: it is live, after the others
        assert_eq!(
            decode(text.as_bytes(), &DIR, words).unwrap().entries,
            [["c", "d"], ["e", "f"], ["a", "b"]]
        );
        assert_eq!(batch(&["x y"], &[line_id("c d")]), {
            let body = format!("x y\n- {}\n", hex::encode(line_id("c d")));
            format!("{body}sha256 {}\n", sum(&body))
        });
    }

    #[test]
    fn a_torn_last_batch_is_lost_alone_and_any_other_damage_refuses_the_file() {
        let first = format!("rangeserve-etag-cache v2\na b\nsha256 {}\n", sum("a b\n"));
        let second = format!("c d\nsha256 {}\n", sum("c d\n"));
        let both = first.clone() + &second;
        assert_eq!(
            decode(both.as_bytes(), &DIR, words).unwrap().entries.len(),
            2
        );
        // the last batch cut anywhere, or damaged: the first batch still holds
        for cut in 1..second.len() {
            let torn = &both[..first.len() + cut];
            assert_eq!(
                decode(torn.as_bytes(), &DIR, words).unwrap().entries,
                [["a", "b"]],
                "cut at {cut}"
            );
        }
        let flipped = both.replace("c d", "c e");
        assert_eq!(
            decode(flipped.as_bytes(), &DIR, words).unwrap().entries,
            [["a", "b"]]
        );
        // damage before the last batch: nothing is used
        let refused =
            |text: &str, header: &Header| decode(text.as_bytes(), header, words).unwrap_err();
        assert_eq!(
            refused(&both.replacen("a b", "a c", 1), &DIR),
            Unusable::ChecksumMismatch
        );
        assert_eq!(
            decode(b"\xff\n", &DIR, words).unwrap_err(),
            Unusable::NotUtf8
        );
        assert_eq!(refused("", &DIR), Unusable::UnknownHeader);
        assert_eq!(
            refused("rangeserve-etag-cache v0\n", &DIR),
            Unusable::UnknownHeader
        );
        assert_eq!(
            refused("rangeserve-etag-cache v3\n", &DIR),
            Unusable::UnknownHeader
        );
        assert_eq!(
            refused("rangeserve-etag-cachex v2\n", &DIR),
            Unusable::UnknownHeader
        );
        assert_eq!(
            refused(&encode(&DIR, "a b c\n"), &DIR),
            Unusable::MalformedEntry
        );
        let bad_removal = format!("rangeserve-etag-cache v2\n- 00\nsha256 {}\n", sum("- 00\n"));
        assert_eq!(refused(&bad_removal, &DIR), Unusable::MalformedEntry);
        // the two modes and two stores never read each other's files
        let store = encode(&of_store("s3://b"), "a b\n");
        assert_eq!(refused(&store, &DIR), Unusable::UnknownHeader);
        assert_eq!(refused(&both, &of_store("s3://b")), Unusable::UnknownHeader);
        assert_eq!(
            refused(&store, &of_store("s3://other")),
            Unusable::OtherStore
        );
    }

    struct Lines(Option<CacheFile>, Mutex<String>);

    impl Persisted for Lines {
        fn cache_file(&self) -> Option<&CacheFile> {
            self.0.as_ref()
        }
        fn entry_lines(&self) -> String {
            self.1.lock().unwrap().clone()
        }
    }

    impl Lines {
        fn load(path: &Path) -> (Lines, Vec<Vec<String>>) {
            let (file, entries) = CacheFile::load(path, DIR, words);
            (Lines(Some(file), Mutex::new(String::new())), entries)
        }
        /// Set the entries and flush.
        fn set(&self, lines: &str) -> Option<Wrote> {
            *self.1.lock().unwrap() = lines.into();
            self.0.as_ref().unwrap().mark_dirty();
            flush(self)
        }
    }

    fn entry(i: usize) -> String {
        format!("k{i:04} {}\n", "v".repeat(60))
    }

    #[test]
    fn a_flush_appends_only_what_changed_and_loads_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("etags");
        let (cache, none) = Lines::load(&path);
        assert!(none.is_empty());
        assert_eq!(flush(&cache), None, "nothing new: nothing written");
        assert!(!path.exists());
        let many: String = (0..1000).map(entry).collect();
        assert_eq!(
            cache.set(&many),
            Some(Wrote::Rewritten(encode(&DIR, &many).len() as u64))
        );
        let ino = std::fs::metadata(&path).unwrap().ino();
        // one more entry, and one gone: one small batch appended in place
        let changed = many.replace(&entry(7), "") + &entry(1000);
        let want = batch(&[entry(1000).trim_end()], &[line_id(entry(7).trim_end())]);
        assert_eq!(
            cache.set(&changed),
            Some(Wrote::Appended(want.len() as u64))
        );
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.ends_with(&want));
        assert_eq!(
            std::fs::metadata(&path).unwrap().ino(),
            ino,
            "appended in place"
        );
        assert_eq!(cache.set(&changed), Some(Wrote::Nothing));
        // a new process reads what the last one left, and appends to it
        let (again, back) = Lines::load(&path);
        let mut want_back: Vec<Vec<String>> = changed.lines().map(|l| words(l).unwrap()).collect();
        let mut back_sorted = back.clone();
        want_back.sort();
        back_sorted.sort();
        assert_eq!(back_sorted, want_back);
        let fewer = changed.replace(&entry(8), "");
        assert!(matches!(again.set(&fewer), Some(Wrote::Appended(_))));
        assert_eq!(
            CacheFile::load(&path, DIR, words).1.len(),
            999,
            "1000 + 1 - 2"
        );
    }

    #[test]
    fn a_rewrite_is_as_long_as_the_limit_reckons() {
        let dir = tempfile::tempdir().unwrap();
        let (cache, _) = Lines::load(&dir.path().join("etags"));
        let many: String = (0..100).map(entry).collect();
        let reckoned = encoded_len(&cache.0.as_ref().unwrap().header, &many);
        assert_eq!(encode(&DIR, &many).len(), reckoned);
        assert_eq!(cache.set(&many), Some(Wrote::Rewritten(reckoned as u64)));
    }

    #[test]
    fn the_file_is_compacted_when_it_grows_past_twice_its_entries() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("etags");
        let (cache, _) = Lines::load(&path);
        cache.set(&entry(0));
        // churn: one entry replaced by another at every flush
        let mut rewrites = 0;
        for i in 1..2000 {
            match cache.set(&entry(i)) {
                Some(Wrote::Rewritten(_)) => rewrites += 1,
                Some(Wrote::Appended(_)) => {}
                other => panic!("{other:?}"),
            }
            let len = std::fs::metadata(&path).unwrap().len();
            let live = encode(&DIR, &entry(i)).len() as u64;
            assert!(len <= 2 * live + COMPACT_SLACK, "{len} bytes at {i}");
        }
        // each batch is ~130 bytes: ~120 fit in the slack before a compaction
        assert!((10..40).contains(&rewrites), "{rewrites} rewrites");
        assert_eq!(
            CacheFile::load(&path, DIR, words).1,
            [words(entry(1999).trim_end()).unwrap()]
        );
    }

    #[test]
    fn another_file_at_the_path_is_rewritten_never_appended_to() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("etags");
        let (cache, _) = Lines::load(&path);
        cache.set(&entry(0));
        // another writer put its own file there: ours replaces it whole
        std::fs::write(&path, encode(&DIR, &entry(5))).unwrap();
        assert!(matches!(
            cache.set(&(entry(0) + &entry(1))),
            Some(Wrote::Rewritten(_))
        ));
        assert_eq!(CacheFile::load(&path, DIR, words).1.len(), 2);
        // a symlink planted at the path is replaced, not written through
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "victim\n").unwrap();
        std::fs::remove_file(&path).unwrap();
        std::os::unix::fs::symlink(&victim, &path).unwrap();
        assert!(matches!(cache.set(&entry(2)), Some(Wrote::Rewritten(_))));
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "victim\n");
        assert!(std::fs::symlink_metadata(&path).unwrap().is_file());
        // removed: written again
        std::fs::remove_file(&path).unwrap();
        assert!(matches!(cache.set(&entry(3)), Some(Wrote::Rewritten(_))));
        assert_eq!(
            CacheFile::load(&path, DIR, words).1,
            [words(entry(3).trim_end()).unwrap()]
        );
    }

    #[test]
    fn a_torn_or_old_file_loads_what_it_can_and_is_rewritten_at_the_next_write() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("etags");
        let whole = encode(&DIR, &entry(0)) + &batch(&[entry(1).trim_end()], &[]);
        std::fs::write(&path, &whole[..whole.len() - 3]).unwrap();
        let (cache, got) = Lines::load(&path);
        assert_eq!(got, [words(entry(0).trim_end()).unwrap()]);
        assert!(matches!(cache.set(&entry(0)), Some(Wrote::Rewritten(_))));
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            encode(&DIR, &entry(0))
        );
        let v1 = encode(&DIR, &entry(0)).replace(" v2\n", " v1\n");
        std::fs::write(&path, v1).unwrap();
        let (cache, got) = Lines::load(&path);
        assert_eq!(got.len(), 1);
        assert!(matches!(cache.set(&entry(0)), Some(Wrote::Rewritten(_))));
        assert!(std::fs::read_to_string(&path)
            .unwrap()
            .starts_with("rangeserve-etag-cache v2\n"));
    }

    #[test]
    fn an_unwritable_place_costs_a_warning_and_no_file() {
        let (file, _) = CacheFile::load(Path::new("/proc/no/such/dir/etags"), DIR, words);
        let cache = Lines(Some(file), Mutex::new("k v\n".into()));
        cache.0.as_ref().unwrap().mark_dirty();
        assert_eq!(flush(&cache), None);
        let (_, other) =
            CacheFile::load(Path::new("/proc/no/such/dir/etags"), of_store("x"), words);
        assert!(other.is_empty());
    }
}
