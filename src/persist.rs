//! The `--etag-cache` file: one format and one life cycle for the digests
//! the directory mode ([`crate::hashcache`]) and the object mode
//! ([`crate::origin::state`]) keep across restarts.
//!
//! **Format.** A header line (a format name and version, then, for the
//! object mode, the hex of the store it was written for), one line per
//! entry (the owner's own fields), and a last line `sha256 <hex>` over the
//! entry lines. A file with another header, of another store, not UTF-8,
//! with a wrong checksum or one malformed entry is ignored whole with a
//! warning: the caches start empty and rehash, never use a wrong digest.
//!
//! **Life cycle.** [`CacheFile::load`] reads it when the cache is made; the
//! cache marks it dirty when an entry worth keeping arrives; [`flush_loop`]
//! writes it at most once per interval after that, and [`flush`] at a
//! graceful stop. Writes are atomic (a temp file with a random name created
//! exclusively beside it, synced, then renamed), and a failure to write is
//! a warning, never fatal.

use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest as _, Sha256};
use tokio::sync::Notify;

/// Why a cache file is ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Unusable {
    /// Not text.
    #[error("not UTF-8")]
    NotUtf8,
    /// Another format, or another version of it.
    #[error("unknown header")]
    UnknownHeader,
    /// Written by the object mode for another store.
    #[error("written for another store")]
    OtherStore,
    /// No checksum line (cut short).
    #[error("no checksum")]
    NoChecksum,
    /// The entries are not the ones the checksum was made over.
    #[error("checksum mismatch")]
    ChecksumMismatch,
    /// An entry line its owner cannot read.
    #[error("malformed entry")]
    MalformedEntry,
}

/// Which cache file: its format name and, for the object mode, the store it
/// is of (a file is only ever read back for the same format and store).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// The format and its version (`rangeserve-etag-cache v1`).
    pub format: &'static str,
    /// The store's description (`s3://bucket/prefix`), written hex-encoded.
    pub store: Option<String>,
}

impl Header {
    fn line(&self) -> String {
        match &self.store {
            Some(store) => format!("{} {}", self.format, hex::encode(store)),
            None => self.format.to_string(),
        }
    }
}

/// The file's text for `entries` (one line each, each ending in `\n`).
pub fn encode(header: &Header, entries: &str) -> String {
    let sum = hex::encode(Sha256::digest(entries.as_bytes()));
    format!("{}\n{entries}sha256 {sum}\n", header.line())
}

/// The entries of a file's `bytes` written under `header`, each read by
/// `entry`; all of them or none.
pub fn decode<T>(
    bytes: &[u8],
    header: &Header,
    entry: impl Fn(&str) -> Option<T>,
) -> Result<Vec<T>, Unusable> {
    let text = std::str::from_utf8(bytes).map_err(|_| Unusable::NotUtf8)?;
    let (first, rest) = text.split_once('\n').ok_or(Unusable::UnknownHeader)?;
    let named = first
        .strip_prefix(header.format)
        .ok_or(Unusable::UnknownHeader)?;
    match (&header.store, named.strip_prefix(' ')) {
        (None, _) if named.is_empty() => {}
        (Some(store), Some(hexed)) if hexed == hex::encode(store) => {}
        (Some(_), Some(_)) => return Err(Unusable::OtherStore),
        _ => return Err(Unusable::UnknownHeader),
    }
    let sum_at = rest.rfind("sha256 ").ok_or(Unusable::NoChecksum)?;
    let (body, sum_line) = rest.split_at(sum_at);
    let want = sum_line
        .strip_prefix("sha256 ")
        .and_then(|s| s.strip_suffix('\n'));
    if want != Some(hex::encode(Sha256::digest(body.as_bytes())).as_str()) {
        return Err(Unusable::ChecksumMismatch);
    }
    body.lines()
        .map(entry)
        .collect::<Option<Vec<_>>>()
        .ok_or(Unusable::MalformedEntry)
}

/// A cache's file, and whether it needs writing.
pub struct CacheFile {
    path: PathBuf,
    header: Header,
    dirty: AtomicBool,
    wake: Notify,
}

impl CacheFile {
    /// The file at `path` and the entries it holds (read by `entry`): none
    /// when it is missing or unusable (logged).
    pub fn load<T>(
        path: &Path,
        header: Header,
        entry: impl Fn(&str) -> Option<T>,
    ) -> (CacheFile, Vec<T>) {
        let entries = match std::fs::read(path) {
            Ok(bytes) => match decode(&bytes, &header, entry) {
                Ok(entries) => {
                    tracing::info!(path = %path.display(), entries = entries.len(), "loaded ETag cache");
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
        };
        (file, entries)
    }

    /// An entry worth writing arrived: write the file soon.
    pub fn mark_dirty(&self) {
        self.dirty.store(true, Ordering::Release);
        self.wake.notify_one();
    }
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
pub fn flush<C: Persisted + ?Sized>(cache: &C) {
    let Some(file) = cache.cache_file() else {
        return;
    };
    if !file.dirty.swap(false, Ordering::AcqRel) {
        return;
    }
    cache.prune();
    let text = encode(&file.header, &cache.entry_lines());
    if let Err(e) = write_atomically(&file.path, text.as_bytes()) {
        tracing::warn!(path = %file.path.display(), error = %e, "cannot write ETag cache");
    }
}

/// Write `path` whole or not at all: a temp file with a random name, created
/// exclusively (never through a planted symlink) in the same directory,
/// synced, then renamed over `path`.
fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
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
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIR: Header = Header {
        format: "rangeserve-etag-cache v1",
        store: None,
    };

    fn of_store(store: &str) -> Header {
        Header {
            format: "rangeserve-object-etag-cache v1",
            store: Some(store.into()),
        }
    }

    fn words(line: &str) -> Option<Vec<String>> {
        let words: Vec<String> = line.split(' ').map(String::from).collect();
        (words.len() == 2).then_some(words)
    }

    #[test]
    fn the_format_is_header_entries_and_a_checksum_of_the_entries() {
        let text = encode(&DIR, "a b\nc d\n");
        let sum = hex::encode(Sha256::digest(b"a b\nc d\n"));
        assert_eq!(
            text,
            format!("rangeserve-etag-cache v1\na b\nc d\nsha256 {sum}\n")
        );
        assert_eq!(
            decode(text.as_bytes(), &DIR, words).unwrap(),
            [["a", "b"], ["c", "d"]]
        );
        let store = encode(&of_store("s3://b"), "");
        assert!(store.starts_with(&format!(
            "rangeserve-object-etag-cache v1 {}\nsha256 ",
            hex::encode("s3://b")
        )));
        assert_eq!(
            decode(store.as_bytes(), &of_store("s3://b"), words),
            Ok(vec![])
        );
    }

    #[test]
    fn any_other_file_is_refused_whole() {
        let text = encode(&DIR, "a b\nc d\n");
        let refused = |bytes: &[u8], header: &Header| decode(bytes, header, words).unwrap_err();
        let mut flipped = text.clone().into_bytes();
        flipped[text.find('\n').unwrap() + 1] = b'x';
        assert_eq!(refused(&flipped, &DIR), Unusable::ChecksumMismatch);
        assert_eq!(
            refused(&text.as_bytes()[..text.len() - 5], &DIR),
            Unusable::ChecksumMismatch
        );
        let cut = &text[..text.find("sha256").unwrap()];
        assert_eq!(refused(cut.as_bytes(), &DIR), Unusable::NoChecksum);
        assert_eq!(refused(b"", &DIR), Unusable::UnknownHeader);
        assert_eq!(refused(b"\xff\n", &DIR), Unusable::NotUtf8);
        assert_eq!(
            refused(b"rangeserve-etag-cache v0\n", &DIR),
            Unusable::UnknownHeader
        );
        let odd = encode(&DIR, "a b c\n");
        assert_eq!(refused(odd.as_bytes(), &DIR), Unusable::MalformedEntry);
        // the two modes and two stores never read each other's files
        let store = encode(&of_store("s3://b"), "a b\n");
        assert_eq!(refused(store.as_bytes(), &DIR), Unusable::UnknownHeader);
        assert_eq!(
            refused(text.as_bytes(), &of_store("s3://b")),
            Unusable::UnknownHeader
        );
        assert_eq!(
            refused(store.as_bytes(), &of_store("s3://other")),
            Unusable::OtherStore
        );
        let longer = DIR.format.to_string() + "0\nsha256 x\n";
        assert_eq!(refused(longer.as_bytes(), &DIR), Unusable::UnknownHeader);
    }

    struct Lines(Option<CacheFile>, &'static str);

    impl Persisted for Lines {
        fn cache_file(&self) -> Option<&CacheFile> {
            self.0.as_ref()
        }
        fn entry_lines(&self) -> String {
            self.1.into()
        }
    }

    #[test]
    fn a_flush_writes_only_when_dirty_and_loads_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("etags");
        let (file, none) = CacheFile::load(&path, DIR, words);
        assert!(none.is_empty());
        let cache = Lines(Some(file), "k v\n");
        flush(&cache);
        assert!(!path.exists(), "nothing new: nothing written");
        cache.0.as_ref().unwrap().mark_dirty();
        flush(&cache);
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            encode(&DIR, "k v\n")
        );
        let (_, back) = CacheFile::load(&path, DIR, words);
        assert_eq!(back, [["k", "v"]]);
        let (_, other) = CacheFile::load(&path, of_store("x"), words);
        assert!(other.is_empty(), "another format's file loads nothing");
        // an unwritable place costs a warning, and no file
        let (file, _) = CacheFile::load(Path::new("/proc/no/such/dir/etags"), DIR, words);
        let cache = Lines(Some(file), "k v\n");
        cache.0.as_ref().unwrap().mark_dirty();
        flush(&cache);
    }
}
