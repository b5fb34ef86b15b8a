//! The storage seam for object stores: the small [`Origin`] trait that the
//! object-serving path ([`serve`]) asks for metadata, pinned byte ranges and
//! one level of listing, and the types it answers with.
//!
//! The local directory does not go through this trait: its path
//! (the `fs`, `filestate` and `body` modules) is tuned for descriptors and
//! the page cache, and stays as it is. What both paths share is everything
//! above storage: the `plan` and `render` modules,
//! the listing renderer and the quirks' transforms.
//!
//! **One version per response.** [`ObjectMeta::version`] names the version
//! a response's headers describe; [`Origin::read`] must only ever return
//! bytes of that version and fail with [`OriginError::Changed`] otherwise.
//! The object_store adapter ([`store`]) makes each read conditional on the
//! store's ETag (and version id, where the store has one) and checks what
//! comes back against it.

pub mod body;
#[cfg(feature = "object-store")]
pub mod checksum;
pub mod serve;
pub mod state;
#[cfg(feature = "object-store")]
pub mod store;

use std::fmt;
use std::ops::Range;
use std::time::SystemTime;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use futures_util::stream::BoxStream;

/// The key of an object below the origin's prefix: `/`-separated,
/// non-empty UTF-8 segments, none of them `.` or `..` (the decoded request
/// path, as [`crate::fs::decode_path`] leaves it). Empty: the prefix itself.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key(String);

impl Key {
    /// The key of the decoded request segments; `None` when a segment is not
    /// UTF-8 or holds a control character (no object key can match it).
    pub fn from_segments<S: AsRef<std::ffi::OsStr>>(segments: &[S]) -> Option<Key> {
        let mut key = String::new();
        for seg in segments {
            let s = seg.as_ref().to_str()?;
            if s.is_empty() || s == "." || s == ".." || s.contains('/') {
                return None;
            }
            if s.chars().any(|c| c.is_control()) {
                return None;
            }
            if !key.is_empty() {
                key.push('/');
            }
            key.push_str(s);
        }
        Some(Key(key))
    }

    /// The key as text (`a/b.txt`; empty for the prefix itself).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The key of `name` inside this "directory".
    pub fn child(&self, name: &str) -> Key {
        if self.0.is_empty() {
            Key(name.to_string())
        } else {
            Key(format!("{}/{name}", self.0))
        }
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Which version of an object: what the store tags it with. Two metas with
/// equal `StoreVersion`s and sizes describe the same bytes (the store's
/// promise; the content digest is cached under it).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct StoreVersion {
    /// The store's entity tag (an MD5 for a simple S3 upload, opaque otherwise).
    pub etag: Option<String>,
    /// The store's version id, where the bucket keeps versions.
    pub version: Option<String>,
}

impl StoreVersion {
    /// True when reads can be pinned to this version (an ETag or a version id).
    pub fn is_pinnable(&self) -> bool {
        self.etag.is_some() || self.version.is_some()
    }
}

/// What the store says about one version of an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectMeta {
    /// Size in bytes.
    pub size: u64,
    /// When the store last wrote it.
    pub last_modified: SystemTime,
    /// Which version.
    pub version: StoreVersion,
}

/// One entry of a listing: a "directory" (a common prefix) or an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    /// The last segment of its key.
    pub name: String,
    /// Size and modification time, for objects; `None` for a common prefix.
    pub object: Option<(u64, SystemTime)>,
}

/// Why the store did not answer as asked. Mapped to HTTP in one place
/// ([`crate::error::HttpError::from_origin`]); the text is for logs only.
/// Clone: one store answer is shared by the requests waiting for it.
#[derive(Debug, Clone, thiserror::Error)]
pub enum OriginError {
    /// No such object.
    #[error("not found")]
    NotFound,
    /// The store refused our credentials for it.
    #[error("access denied: {0}")]
    Denied(String),
    /// The object is no longer the version pinned (replaced or removed).
    #[error("object changed: {0}")]
    Changed(String),
    /// The store is unreachable, throttling, or failed.
    #[error("store unavailable: {0}")]
    Unavailable(String),
}

/// Whether `arg` names an object store rather than a local directory (its
/// scheme is one the object_store crate serves: S3, GCS, Azure).
pub fn is_store_url(arg: &str) -> bool {
    [
        "s3://", "s3a://", "gs://", "az://", "azure://", "abfs://", "abfss://", "adl://",
    ]
    .iter()
    .any(|scheme| arg.starts_with(scheme))
}

/// Bytes as the store streams them.
pub type ByteStream = BoxStream<'static, Result<Bytes, OriginError>>;

/// A store of objects, as the object-serving path needs it. Implemented over
/// the `object_store` crate by [`store::StoreOrigin`]; tests may implement it
/// to inject faults.
pub trait Origin: Send + Sync + 'static {
    /// The metadata of the object at `key`.
    fn head<'a>(&'a self, key: &'a Key) -> BoxFuture<'a, Result<ObjectMeta, OriginError>>;

    /// Bytes `range` (non-empty, inside the object) of the version `meta`
    /// describes. Must fail with [`OriginError::Changed`], before or while
    /// streaming, rather than yield a byte of another version.
    fn read<'a>(
        &'a self,
        key: &'a Key,
        meta: &'a ObjectMeta,
        range: Range<u64>,
    ) -> BoxFuture<'a, Result<ByteStream, OriginError>>;

    /// The entries directly below the "directory" `dir` (every one of them:
    /// the store pages through its listing).
    fn list<'a>(&'a self, dir: &'a Key) -> BoxFuture<'a, Result<Vec<Listed>, OriginError>>;

    /// What is served, for log lines and errors (`s3://bucket/prefix`).
    fn describe(&self) -> String;

    /// The SHA-256 of the whole of version `meta`, if the store keeps one
    /// it vouches for (S3's full-object checksum), learnt without reading
    /// the object; `None` when it keeps none or cannot say (the object is
    /// then hashed by reading it). None by default.
    fn stored_sha256<'a>(
        &'a self,
        _key: &'a Key,
        _meta: &'a ObjectMeta,
    ) -> BoxFuture<'a, Option<crate::hashcache::Digest>> {
        Box::pin(async { None })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_from_segments() {
        assert_eq!(
            Key::from_segments(&["a", "b.txt"]).unwrap().as_str(),
            "a/b.txt"
        );
        assert_eq!(Key::from_segments::<&str>(&[]).unwrap().as_str(), "");
        assert_eq!(Key::from_segments(&["a\u{1}b"]), None);
        assert_eq!(Key::from_segments(&[".."]), None);
        use std::os::unix::ffi::OsStringExt as _;
        let not_utf8 = std::ffi::OsString::from_vec(vec![0xff]);
        assert_eq!(Key::from_segments(&[not_utf8]), None);
        assert_eq!(
            Key::from_segments::<&str>(&[]).unwrap().child("x").as_str(),
            "x"
        );
        assert_eq!(
            Key::from_segments(&["d"]).unwrap().child("x").as_str(),
            "d/x"
        );
    }

    #[test]
    fn store_urls_are_recognised() {
        for url in [
            "s3://b/p",
            "gs://b",
            "az://c/p",
            "abfss://c@a.dfs.core.windows.net/p",
        ] {
            assert!(is_store_url(url), "{url}");
        }
        for path in [
            ".",
            "/srv/files",
            "s3",
            "file:///x",
            "http://x/",
            "./s3://x",
        ] {
            assert!(!is_store_url(path), "{path}");
        }
    }
}
