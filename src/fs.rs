//! The file system edge: turning a request path into a file or directory
//! confined to the served root, opening files safely, and the [`FileStamp`]
//! that identifies one version of a file.
//!
//! Confinement is layered: [`decode_path`] (pure) refuses `..`, encoded
//! separators, backslashes and NUL before anything touches the disk; then
//! [`Root::resolve`] canonicalizes (following symlinks) and refuses anything
//! whose real path is outside the root; then only regular files are opened,
//! non-blocking, so a FIFO swapped in at the last moment cannot hang a thread.

use std::ffi::OsString;
use std::fs::{File, Metadata};
use std::io;
use std::os::unix::ffi::OsStringExt;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use percent_encoding::percent_decode_str;

/// Why a request path was refused before touching the disk. Answered with 404, no hint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// The path does not start with `/`.
    #[error("path is not absolute")]
    NotAbsolute,
    /// A `..` segment, literal or percent-encoded.
    #[error("parent-directory segment")]
    DotDot,
    /// A segment that decodes to `/`, `\` or NUL.
    #[error("forbidden byte in a path segment")]
    ForbiddenByte,
}

/// A request path decoded into file-name segments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestPath {
    /// Decoded segments, without empty and `.` segments.
    pub segments: Vec<OsString>,
    /// Whether the path ended with `/` or `/.` (directories are served only then).
    pub trailing_slash: bool,
}

/// Decode the path part of a request target (pure).
///
/// Each `/`-separated segment is percent-decoded on its own, so `%2f` can
/// never introduce a separator; segments that are or decode to `..`, or
/// contain `/`, `\` or NUL, are refused.
pub fn decode_path(raw: &str) -> Result<RequestPath, PathError> {
    let rest = raw.strip_prefix('/').ok_or(PathError::NotAbsolute)?;
    let mut segments = Vec::new();
    // a path that ends in "/" or "/." names a directory, never a file
    let mut trailing_slash = true;
    for raw_seg in rest.split('/') {
        let bytes: Vec<u8> = percent_decode_str(raw_seg).collect();
        if bytes.iter().any(|&b| b == b'/' || b == b'\\' || b == 0) {
            return Err(PathError::ForbiddenByte);
        }
        match bytes.as_slice() {
            b"" | b"." => trailing_slash = true,
            b".." => return Err(PathError::DotDot),
            _ => {
                trailing_slash = false;
                segments.push(OsString::from_vec(bytes));
            }
        }
    }
    Ok(RequestPath {
        segments,
        trailing_slash,
    })
}

/// The served directory.
#[derive(Debug, Clone)]
pub struct Root {
    canonical: PathBuf,
}

/// What a request path names inside the root.
#[derive(Debug)]
pub enum Resolved {
    /// A regular file, opened.
    File(OpenFile),
    /// A directory (its canonical path).
    Dir(PathBuf),
    /// Nothing servable: missing, outside the root, or not a regular file or directory.
    NotFound,
}

impl Root {
    /// Canonicalize `dir`, which must be an existing directory.
    pub fn new(dir: &Path) -> io::Result<Root> {
        let canonical = dir.canonicalize()?;
        if !canonical.is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::NotADirectory,
                "not a directory",
            ));
        }
        Ok(Root { canonical })
    }

    /// The canonical path of the root.
    pub fn path(&self) -> &Path {
        &self.canonical
    }

    /// Find what `path` names, following symlinks only while they stay inside
    /// the root. Blocking: call from a blocking context.
    pub fn resolve(&self, path: &RequestPath) -> Resolved {
        let mut joined = self.canonical.clone();
        joined.extend(&path.segments);
        let Ok(real) = joined.canonicalize() else {
            return Resolved::NotFound;
        };
        if !real.starts_with(&self.canonical) {
            return Resolved::NotFound;
        }
        match std::fs::metadata(&real) {
            Ok(m) if m.is_dir() => Resolved::Dir(real),
            Ok(m) if m.is_file() => match OpenFile::open(&real) {
                Ok(Some(f)) => Resolved::File(f),
                _ => Resolved::NotFound,
            },
            _ => Resolved::NotFound,
        }
    }
}

/// One version of a file: if any of these change, the content may have.
///
/// ctime is included because it moves on every write and cannot be set back
/// by `touch`, unlike mtime.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FileStamp {
    /// Device number.
    pub dev: u64,
    /// Inode number.
    pub ino: u64,
    /// Size in bytes.
    pub size: u64,
    /// Modification time, nanoseconds since the epoch.
    pub mtime_ns: i128,
    /// Status-change time, nanoseconds since the epoch.
    pub ctime_ns: i128,
}

impl FileStamp {
    /// The stamp of `m`.
    pub fn of(m: &Metadata) -> FileStamp {
        FileStamp {
            dev: m.dev(),
            ino: m.ino(),
            size: m.size(),
            mtime_ns: i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec()),
            ctime_ns: i128::from(m.ctime()) * 1_000_000_000 + i128::from(m.ctime_nsec()),
        }
    }
}

/// An open regular file with the metadata read from the open descriptor.
#[derive(Debug)]
pub struct OpenFile {
    /// The open file (shared with the body that streams it and the hasher).
    pub file: Arc<File>,
    /// Its real path.
    pub path: PathBuf,
    /// Identity and version at open time.
    pub stamp: FileStamp,
    /// Modification time.
    pub modified: SystemTime,
    /// The whole content of a small file, read with the open (see [`PREFETCH_MAX`]).
    pub prefetched: Option<Bytes>,
}

/// Files up to this size are read in the same blocking call that opens them,
/// which saves a second trip to the blocking pool per request (a third of the
/// time of a small-file request). Checked against the stamp like any read.
pub const PREFETCH_MAX: u64 = 64 * 1024;

impl OpenFile {
    /// Open `path` if, once open, it is a regular file; `Ok(None)` otherwise.
    /// `O_NONBLOCK` keeps a FIFO from blocking the open.
    pub fn open(path: &Path) -> io::Result<Option<OpenFile>> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(path)?;
        let meta = file.metadata()?;
        if !meta.is_file() {
            return Ok(None);
        }
        let stamp = FileStamp::of(&meta);
        let prefetched = if stamp.size <= PREFETCH_MAX {
            let mut buf = vec![0u8; stamp.size as usize];
            file.read_exact_at(&mut buf, 0)?;
            // unchanged since the open: the bytes are this stamp's version
            (FileStamp::of(&file.metadata()?) == stamp).then(|| Bytes::from(buf))
        } else {
            None
        };
        Ok(Some(OpenFile {
            stamp,
            modified: meta.modified()?,
            file: Arc::new(file),
            path: path.to_path_buf(),
            prefetched,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segs(raw: &str) -> Result<Vec<String>, PathError> {
        decode_path(raw).map(|p| {
            p.segments
                .into_iter()
                .map(|s| s.into_string().unwrap())
                .collect()
        })
    }

    #[test]
    fn decode_table() {
        use PathError::*;
        #[rustfmt::skip]
        let rows: &[(&str, Result<Vec<&str>, PathError>)] = &[
            ("/", Ok(vec![])),
            ("/a.txt", Ok(vec!["a.txt"])),
            ("/sub/b.bin", Ok(vec!["sub", "b.bin"])),
            ("/with%20space.txt", Ok(vec!["with space.txt"])),
            ("/caf%C3%A9.txt", Ok(vec!["café.txt"])),
            ("//a//./b/", Ok(vec!["a", "b"])),
            ("/%2e/a", Ok(vec!["a"])),
            ("/..", Err(DotDot)),
            ("/a/../b", Err(DotDot)),
            ("/%2e%2e/etc/passwd", Err(DotDot)),
            ("/%2E%2E/x", Err(DotDot)),
            ("/.%2e/x", Err(DotDot)),
            ("/a%2f..%2fb", Err(ForbiddenByte)),
            ("/a%2Fb", Err(ForbiddenByte)),
            ("/..%5c..%5cx", Err(ForbiddenByte)),
            ("/a\\b", Err(ForbiddenByte)),
            ("/a%00.txt", Err(ForbiddenByte)),
            ("a.txt", Err(NotAbsolute)),
            ("", Err(NotAbsolute)),
        ];
        for (raw, want) in rows {
            let want = want
                .clone()
                .map(|v| v.into_iter().map(String::from).collect::<Vec<_>>());
            assert_eq!(segs(raw), want, "{raw:?}");
        }
        assert!(decode_path("/sub/").unwrap().trailing_slash);
        assert!(decode_path("/sub/.").unwrap().trailing_slash);
        assert!(decode_path("/").unwrap().trailing_slash);
        assert!(!decode_path("/sub").unwrap().trailing_slash);
        assert!(!decode_path("/a/./b").unwrap().trailing_slash);
    }
}
