//! The file system edge: turning a request path into a file or directory
//! confined to the served root, opening files safely, and the [`FileStamp`]
//! that identifies one version of a file.
//!
//! Confinement is layered: [`decode_path`] (pure) refuses `..`, encoded
//! separators, backslashes and NUL before anything touches the disk; then
//! [`Root::resolve`] canonicalizes (following symlinks) and refuses anything
//! whose real path is outside the root; then the path is opened with
//! `O_PATH` (which has no side effects on any file type), that descriptor is
//! checked, and only a regular file is reopened for reading through
//! `/proc/self/fd/N`: the same inode, so a FIFO or device swapped in at the
//! last moment is never opened, not even for an instant.
//!
//! What is visible is a policy ([`Access`]): by default names starting with
//! `.` (`.git/`, `.env`) are neither served nor listed, at any depth, except
//! `/.well-known/`; and a symlink is followed only while it stays inside the
//! root. Both rules apply to the path asked for and to the real path it
//! resolves to, so a visible symlink cannot lead to a hidden file.
//!
//! A small file (up to [`SMALL_MAX`]) is read whole with the open and served
//! from that one buffer; its digest is that buffer's, or a settled digest of
//! the version seen at open when it is unchanged after the read (see
//! [`OpenFile::whole`]).
//!
//! Opening runs inline on the async worker when the kernel can do it from
//! its caches ([`Root::resolve_cached`]: `openat2(RESOLVE_CACHED)`, reads
//! with `RWF_NOWAIT`, on a local file system); anything that would wait for
//! a disk or a network goes to the blocking pool ([`Root::resolve`]).

use std::ffi::{OsStr, OsString};
use std::fs::{File, Metadata};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use percent_encoding::percent_decode_str;

use crate::rfc::range::{self, RangeDecision, RangeSpec};

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
///
/// The segments are kept joined by `/` in one buffer (a path relative to the
/// root): no segment holds a `/` (`decode_path` refuses one), so the join is
/// unambiguous, and decoding a path costs one allocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestPath {
    /// Decoded segments, without empty and `.` segments, joined by `/`.
    rel: OsString,
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
    // decoding never lengthens a segment
    let mut rel = Vec::with_capacity(rest.len());
    // a path that ends in "/" or "/." names a directory, never a file
    let mut trailing_slash = true;
    for raw_seg in rest.split('/') {
        let bytes = std::borrow::Cow::from(percent_decode_str(raw_seg));
        if bytes.iter().any(|&b| b == b'/' || b == b'\\' || b == 0) {
            return Err(PathError::ForbiddenByte);
        }
        match &*bytes {
            b"" | b"." => trailing_slash = true,
            b".." => return Err(PathError::DotDot),
            seg => {
                trailing_slash = false;
                if !rel.is_empty() {
                    rel.push(b'/');
                }
                rel.extend_from_slice(seg);
            }
        }
    }
    Ok(RequestPath {
        rel: OsString::from_vec(rel),
        trailing_slash,
    })
}

impl RequestPath {
    /// The decoded segments, in order.
    pub fn segments(&self) -> impl Iterator<Item = &OsStr> + Clone {
        let rel = self.rel.as_bytes();
        rel.split(|&b| b == b'/')
            .filter(move |_| !rel.is_empty())
            .map(OsStr::from_bytes)
    }

    /// Whether it names the root itself (no segment).
    pub fn is_root(&self) -> bool {
        self.rel.is_empty()
    }

    /// Add a segment at the end; `name` holds no `/`.
    pub fn push(&mut self, name: &str) {
        debug_assert!(!name.contains('/') && !name.is_empty() && name != "." && name != "..");
        if !self.rel.is_empty() {
            self.rel.push("/");
        }
        self.rel.push(name);
    }

    /// The segments as a path relative to the root.
    pub fn relative(&self) -> &Path {
        Path::new(&self.rel)
    }

    /// Whether a segment names a hidden entry (see [`is_hidden`]).
    pub fn is_hidden(&self) -> bool {
        self.segments()
            .enumerate()
            .any(|(i, seg)| is_hidden(seg, i == 0))
    }

    /// `base` with the segments appended, in one allocation with room for
    /// a terminating NUL (a `CString` made of it does not grow it).
    pub fn joined_to(&self, base: &Path) -> PathBuf {
        let mut joined = PathBuf::with_capacity(base.as_os_str().len() + self.rel.len() + 2);
        joined.push(base);
        if !self.rel.is_empty() {
            joined.push(&self.rel);
        }
        joined
    }
}

/// Whether an entry called `name` is hidden: its name starts with `.`, except
/// `.well-known` directly under the root (RFC 8615: it exists to be served).
/// `at_top`: the entry is directly under the root. Pure.
pub fn is_hidden(name: &OsStr, at_top: bool) -> bool {
    name.as_bytes().first() == Some(&b'.') && !(at_top && name == ".well-known")
}

/// Whether any component of `rel` (a path relative to the root) is hidden.
pub fn has_hidden_component(rel: &Path) -> bool {
    rel.components()
        .enumerate()
        .any(|(i, c)| is_hidden(c.as_os_str(), i == 0))
}

/// What the server may show of the tree under its root.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Access {
    /// Serve and list hidden entries (names starting with `.`) too.
    pub hidden: bool,
    /// Follow symlinks that lead outside the root (unsafe: anything the
    /// process can read becomes reachable through such a link).
    pub follow_symlinks: bool,
}

/// The served directory.
#[derive(Debug, Clone)]
pub struct Root {
    canonical: PathBuf,
    /// An `O_PATH` descriptor of it, for `openat2(RESOLVE_BENEATH)`.
    dir: Arc<File>,
    access: Access,
    /// Whether [`Root::resolve_cached`] may try an open on an async worker:
    /// only where the root is on a local file system (see [`is_local_fs`]).
    inline: bool,
}

/// What `openat2(RESOLVE_BENEATH)` found for a request path.
enum Beneath {
    /// A regular file: its `O_PATH` handle and metadata.
    File(File, Metadata),
    /// Anything else that exists (a directory, a FIFO...), or a path the
    /// kernel would not resolve beneath the root by itself (an absolute
    /// symlink, one that leaves and comes back): the slow path decides.
    Other,
    /// Nothing there.
    Missing,
    /// Not all of the path is in the kernel's caches ([`Walk::Cached`]).
    WouldBlock,
}

/// How far an open may go: anywhere (in the blocking pool), or only as far
/// as the kernel's caches reach (inline on an async worker: `EAGAIN` rather
/// than I/O, `EXDEV` rather than crossing into another mount).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Walk {
    Blocking,
    Cached,
}

/// What an open reads with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadWithOpen {
    /// What [`prefetch_window`] says for this range-spec: a small file
    /// whole (it is held, and served from those bytes), or a large one's
    /// small first range.
    Window(Option<RangeSpec>),
    /// Nothing: the body reads what it sends, after the head (a file whose
    /// state the file-state cache will not keep, whose digest is known).
    Nothing,
}

/// Files up to this size may be opened, read whole and hashed inline on an
/// async worker by [`Root::resolve_cached`]: hashing 64 KiB takes tens of
/// microseconds, a blocking-pool round trip about as long plus two context
/// switches. Larger small files go to the pool.
pub const INLINE_SMALL_MAX: u64 = 64 * 1024;

/// Whether the file system with this `statfs` magic is local and keeps its
/// lookups and opens in memory once cached (no network round trip on open,
/// as NFS or FUSE may do even when the dentry is cached).
fn is_local_fs(magic: i64) -> bool {
    const EXT4: i64 = 0xEF53;
    const XFS: i64 = 0x5846_5342;
    const BTRFS: i64 = 0x9123_683E;
    const TMPFS: i64 = 0x0102_1994;
    const OVERLAYFS: i64 = 0x794C_7630;
    const F2FS: i64 = 0xF2F5_2010;
    const ZFS: i64 = 0x2FC1_2FC1;
    matches!(magic, EXT4 | XFS | BTRFS | TMPFS | OVERLAYFS | F2FS | ZFS)
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
    /// Canonicalize `dir`, which must be an existing directory; the default
    /// [`Access`] (no hidden entries, symlinks confined).
    pub fn new(dir: &Path) -> io::Result<Root> {
        Root::with_access(dir, Access::default())
    }

    /// [`Root::new`] with the given visibility policy.
    pub fn with_access(dir: &Path, access: Access) -> io::Result<Root> {
        let canonical = dir.canonicalize()?;
        if !canonical.is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::NotADirectory,
                "not a directory",
            ));
        }
        let dir = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC)
            .open(&canonical)?;
        // f_type's integer type varies by architecture
        #[allow(clippy::unnecessary_cast)]
        let inline = rustix::fs::fstatfs(&dir).is_ok_and(|st| is_local_fs(st.f_type as i64));
        Ok(Root {
            canonical,
            dir: Arc::new(dir),
            access,
            inline,
        })
    }

    /// The visibility policy.
    pub fn access(&self) -> Access {
        self.access
    }

    /// Whether an entry at `real` (a canonical path) may be served or
    /// listed: inside the root (or anywhere with `follow_symlinks`), and not
    /// hidden below the root unless `hidden`.
    pub fn admits(&self, real: &Path) -> bool {
        match real.strip_prefix(&self.canonical) {
            Ok(rel) => self.access.hidden || !has_hidden_component(rel),
            Err(_) => self.access.follow_symlinks,
        }
    }

    /// Open the request path with `O_PATH` and `RESOLVE_BENEATH`: the kernel
    /// itself refuses any step (`..`, a symlink) that would leave the root,
    /// in one call, with no window for a swap. Unless hidden entries are
    /// served, symlinks are not followed here either (`ELOOP`): the slow path
    /// checks where they lead. Blocking unless `walk` is [`Walk::Cached`].
    fn open_beneath(&self, path: &RequestPath, walk: Walk) -> Beneath {
        use rustix::fs::{Mode, OFlags, ResolveFlags};
        let rel = path.relative();
        let mut how = ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS;
        if !self.access.hidden {
            // the real path is then the requested one, already checked
            how |= ResolveFlags::NO_SYMLINKS;
        }
        if walk == Walk::Cached {
            how |= ResolveFlags::CACHED | ResolveFlags::NO_XDEV;
        }
        let opened = rustix::fs::openat2(
            &*self.dir,
            rel,
            OFlags::PATH | OFlags::CLOEXEC,
            Mode::empty(),
            how,
        );
        let handle = match opened {
            Ok(fd) => File::from(fd),
            Err(
                rustix::io::Errno::NOENT | rustix::io::Errno::NOTDIR | rustix::io::Errno::ACCESS,
            ) => return Beneath::Missing,
            Err(rustix::io::Errno::AGAIN) if walk == Walk::Cached => return Beneath::WouldBlock,
            // EXDEV (a step would leave the root), ENOSYS (no openat2), ...
            Err(_) => return Beneath::Other,
        };
        match handle.metadata() {
            Ok(m) if m.is_file() => Beneath::File(handle, m),
            Ok(_) => Beneath::Other,
            Err(_) => Beneath::Missing,
        }
    }

    /// The canonical path of the root.
    pub fn path(&self) -> &Path {
        &self.canonical
    }

    /// Whether the open file really is inside the root. A component swapped
    /// for a symlink between `canonicalize` and `open` would have led the open
    /// elsewhere; the kernel's view of the descriptor settles it. (Where
    /// /proc is not mounted the canonical path check above stands alone.)
    fn still_inside(&self, file: &File) -> bool {
        let fd_path = format!("/proc/self/fd/{}", file.as_raw_fd());
        match std::fs::read_link(fd_path) {
            Ok(real) => self.admits(&real),
            Err(e) => e.kind() == io::ErrorKind::NotFound,
        }
    }

    /// Find what `path` names, following symlinks only while they stay inside
    /// the root. Blocking: call from a blocking context.
    /// `want` is the request's range-spec if it has exactly one
    /// ([`range::lone_spec`]): a hint for what to read along with the open.
    pub fn resolve(&self, path: &RequestPath, want: Option<RangeSpec>) -> Resolved {
        if !self.access.hidden && path.is_hidden() {
            return Resolved::NotFound;
        }
        if !path.is_root() {
            match self.open_beneath(path, Walk::Blocking) {
                Beneath::File(handle, meta) => {
                    let joined = path.joined_to(&self.canonical);
                    return match OpenFile::from_handle(
                        handle,
                        meta,
                        joined,
                        ReadWithOpen::Window(want),
                        Walk::Blocking,
                    ) {
                        Ok(Some(f)) => Resolved::File(f),
                        _ => Resolved::NotFound,
                    };
                }
                Beneath::Missing => return Resolved::NotFound,
                Beneath::Other | Beneath::WouldBlock => {}
            }
        }
        self.resolve_canonical(path, want)
    }

    /// [`resolve`](Self::resolve) without blocking, for an async worker: it
    /// answers only when everything it needs is in the kernel's caches (the
    /// path's dentries, a small file's pages) on a local file system, and
    /// returns `None` for the blocking pool otherwise (something not cached,
    /// a mount crossed, a symlink, a directory, a file larger than
    /// [`INLINE_SMALL_MAX`] without a small first range). The same kernel
    /// confinement as the blocking path (`RESOLVE_BENEATH`, no symlinks
    /// unless hidden entries are served) applies.
    pub fn resolve_cached(&self, path: &RequestPath, read: ReadWithOpen) -> Option<Resolved> {
        if !self.access.hidden && path.is_hidden() {
            return Some(Resolved::NotFound);
        }
        if !self.inline || path.is_root() {
            return None;
        }
        match self.open_beneath(path, Walk::Cached) {
            Beneath::File(handle, meta) => {
                let joined = path.joined_to(&self.canonical);
                match OpenFile::from_handle(handle, meta, joined, read, Walk::Cached) {
                    Ok(Some(f)) => Some(Resolved::File(f)),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => None,
                    _ => Some(Resolved::NotFound),
                }
            }
            Beneath::Missing => Some(Resolved::NotFound),
            Beneath::Other | Beneath::WouldBlock => None,
        }
    }

    /// [`resolve`](Self::resolve) by canonicalizing (directories, absolute
    /// symlinks that lead back inside, kernels without `openat2`).
    fn resolve_canonical(&self, path: &RequestPath, want: Option<RangeSpec>) -> Resolved {
        let joined = path.joined_to(&self.canonical);
        let Ok(real) = joined.canonicalize() else {
            return Resolved::NotFound;
        };
        if !self.admits(&real) {
            return Resolved::NotFound;
        }
        match std::fs::metadata(&real) {
            Ok(m) if m.is_dir() => Resolved::Dir(real),
            Ok(m) if m.is_file() => self
                .open_inside(&real, want)
                .map_or(Resolved::NotFound, Resolved::File),
            _ => Resolved::NotFound,
        }
    }

    /// Open the regular file at `real` (a canonical path inside the root) if
    /// the descriptor really is inside the root. Blocking.
    fn open_inside(&self, real: &Path, want: Option<RangeSpec>) -> Option<OpenFile> {
        match OpenFile::open(real, want) {
            Ok(Some(f)) if self.still_inside(&f.file) => Some(f),
            _ => None,
        }
    }

    /// Open `path` (found by walking the tree) with the same confinement as a
    /// request: canonicalized, inside the root, a regular file, and the open
    /// descriptor inside the root. A directory swapped for a symlink that
    /// leads out while a walk is under way yields `None`. Blocking.
    pub fn open_walked(&self, path: &Path) -> Option<OpenFile> {
        let real = path.canonicalize().ok()?;
        if !self.admits(&real) {
            return None;
        }
        self.open_inside(&real, None)
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
    /// The stamp of the regular file `path` leads to (symlinks followed), if
    /// it leads to one. One `statx` of the fields a stamp holds, with no
    /// conversion of the path (it is a C string already).
    pub fn of_path(path: &std::ffi::CStr) -> Option<FileStamp> {
        use rustix::fs::{AtFlags, FileType, StatxFlags, CWD};
        let wanted = StatxFlags::TYPE
            | StatxFlags::INO
            | StatxFlags::SIZE
            | StatxFlags::MTIME
            | StatxFlags::CTIME;
        let x = rustix::fs::statx(CWD, path, AtFlags::empty(), wanted).ok()?;
        if FileType::from_raw_mode(x.stx_mode.into()) != FileType::RegularFile {
            return None;
        }
        let ns = |t: rustix::fs::StatxTimestamp| {
            i128::from(t.tv_sec) * 1_000_000_000 + i128::from(t.tv_nsec)
        };
        Some(FileStamp {
            // as std's `MetadataExt::dev` (glibc's `makedev`)
            dev: rustix::fs::makedev(x.stx_dev_major, x.stx_dev_minor),
            ino: x.stx_ino,
            size: x.stx_size,
            mtime_ns: ns(x.stx_mtime),
            ctime_ns: ns(x.stx_ctime),
        })
    }

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
    /// Bytes read with the open (see [`prefetch_window`]), checked against `stamp`.
    pub prefetched: Option<Prefetched>,
    /// `prefetched` holds the whole file (a small one), read after `stamp`
    /// was taken. Its digest is that of these bytes: hashed from them, or
    /// a settled digest of `stamp` when a stamp taken after the read still
    /// equals it.
    pub whole: bool,
}

/// A slice of a file read when it was opened.
#[derive(Debug, Clone)]
pub struct Prefetched {
    /// File offset of the first byte.
    pub offset: u64,
    /// The bytes.
    pub bytes: Bytes,
}

impl Prefetched {
    /// The bytes at `offset..offset + len`, if held.
    pub fn slice(&self, offset: u64, len: u64) -> Option<Bytes> {
        let start = offset.checked_sub(self.offset)?;
        let end = start.checked_add(len)?;
        (end <= self.bytes.len() as u64).then(|| self.bytes.slice(start as usize..end as usize))
    }
}

/// Files up to this size are read whole when opened, hashed from that
/// buffer and served from it (see the module docs).
pub const SMALL_MAX: u64 = 256 * 1024;

/// Of a larger file, a first range up to this size is read with the open,
/// which saves a second trip to the blocking pool for a small range.
pub const PREFETCH_MAX: u64 = 64 * 1024;

/// Which bytes to read when opening a file of `size` bytes for a request
/// whose one range-spec is `want` (pure): the whole of a small file, or a
/// small range of a large one. `(offset, len)`.
pub fn prefetch_window(size: u64, want: Option<RangeSpec>) -> Option<(u64, u64)> {
    if size <= SMALL_MAX {
        return Some((0, size));
    }
    match range::resolve(&[want?], size, 1) {
        RangeDecision::Single(r) if r.len() <= PREFETCH_MAX => Some((r.start, r.len())),
        _ => None,
    }
}

impl OpenFile {
    /// Open `path` if it is a regular file; `Ok(None)` otherwise, without
    /// ever opening anything else for reading (see the module docs).
    pub fn open(path: &Path, want: Option<RangeSpec>) -> io::Result<Option<OpenFile>> {
        let handle = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_PATH | libc::O_CLOEXEC)
            .open(path)?;
        let meta = handle.metadata()?;
        OpenFile::from_handle(
            handle,
            meta,
            path.to_path_buf(),
            ReadWithOpen::Window(want),
            Walk::Blocking,
        )
    }

    /// Open for reading the file behind an `O_PATH` `handle` whose metadata
    /// is `checked`, if it is a regular file (see [`reopen_regular`]).
    /// With [`Walk::Cached`], a read that would wait for the disk, or a
    /// small file too big to hash inline, is an `ErrorKind::WouldBlock` error.
    fn from_handle(
        handle: File,
        checked: Metadata,
        path: PathBuf,
        read: ReadWithOpen,
        walk: Walk,
    ) -> io::Result<Option<OpenFile>> {
        if walk == Walk::Cached && checked.size() > INLINE_SMALL_MAX && checked.size() <= SMALL_MAX
        {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let Some((file, meta)) = reopen_regular(&handle, &checked, &path)? else {
            return Ok(None);
        };
        drop(handle);
        let mut opened = OpenFile {
            stamp: FileStamp::of(&meta),
            modified: meta.modified()?,
            file: Arc::new(file),
            path,
            prefetched: None,
            whole: false,
        };
        if let ReadWithOpen::Window(want) = read {
            opened.read_ahead(want, walk)?;
        }
        Ok(Some(opened))
    }

    /// Read what [`prefetch_window`] says for `want`, as an open with
    /// [`ReadWithOpen::Window`] does: for a file opened with
    /// [`ReadWithOpen::Nothing`] that turns out to need its bytes after
    /// all (a small file whose digest is not known). From the page cache
    /// only: an `ErrorKind::WouldBlock` error when some page is not cached.
    pub fn read_ahead_cached(&mut self, want: Option<RangeSpec>) -> io::Result<()> {
        self.read_ahead(want, Walk::Cached)
    }

    fn read_ahead(&mut self, want: Option<RangeSpec>, walk: Walk) -> io::Result<()> {
        let Some((offset, len)) = prefetch_window(self.stamp.size, want) else {
            return Ok(());
        };
        let mut buf = vec![0u8; len as usize];
        match walk {
            Walk::Blocking => self.file.read_exact_at(&mut buf, offset)?,
            Walk::Cached => read_exact_cached(&self.file, &mut buf, offset)?,
        }
        if offset == 0 && len == self.stamp.size {
            // A small file read whole: it is served from this buffer
            // (whose length the headers announce); the caller takes
            // its digest from these very bytes, or from the hash
            // cache after checking the stamp (see `OpenFile::whole`).
            self.whole = true;
            self.prefetched = Some(Prefetched {
                offset,
                bytes: Bytes::from(buf),
            });
        } else if FileStamp::of(&self.file.metadata()?) == self.stamp {
            // unchanged since the open: the bytes are this stamp's version
            self.prefetched = Some(Prefetched {
                offset,
                bytes: Bytes::from(buf),
            });
        }
        Ok(())
    }
}

/// Of a large file of `size` bytes, the small first range `want` asks for,
/// read from the page cache only; `None` when there is none, or it is not
/// all cached. The caller proves the bytes are of its version (a stat after).
pub fn read_window_cached(file: &File, size: u64, want: RangeSpec) -> Option<Prefetched> {
    if size <= SMALL_MAX {
        return None; // a small file is held whole, or read whole at open
    }
    let (offset, len) = prefetch_window(size, Some(want))?;
    let mut buf = vec![0u8; len as usize];
    read_exact_cached(file, &mut buf, offset).ok()?;
    Some(Prefetched {
        offset,
        bytes: Bytes::from(buf),
    })
}

/// `read_exact_at` from the page cache only (`preadv2(RWF_NOWAIT)`): an
/// `ErrorKind::WouldBlock` error when some page is not cached (or the
/// kernel cannot tell), rather than waiting for the disk.
pub(crate) fn read_exact_cached(file: &File, buf: &mut [u8], offset: u64) -> io::Result<()> {
    use rustix::io::{Errno, ReadWriteFlags};
    let mut done = 0;
    while done < buf.len() {
        let mut slices = [io::IoSliceMut::new(&mut buf[done..])];
        match rustix::io::preadv2(
            file,
            &mut slices,
            offset + done as u64,
            ReadWriteFlags::NOWAIT,
        ) {
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => done += n,
            Err(Errno::INTR) => {}
            Err(Errno::AGAIN | Errno::OPNOTSUPP | Errno::NOSYS | Errno::INVAL) => {
                return Err(io::ErrorKind::WouldBlock.into())
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Open for reading what `handle` is open on, by its `/proc/self/fd/N`
/// link. The directory is opened once per process: the walk to it (`/proc`,
/// `self`, `fd`) was most of the cost of a miss's second open. `NotFound`
/// where /proc is not mounted.
fn reopen_by_proc(handle: &File) -> io::Result<File> {
    use rustix::fs::{Mode, OFlags};
    static FDS: std::sync::OnceLock<Option<rustix::fd::OwnedFd>> = std::sync::OnceLock::new();
    let fds = FDS.get_or_init(|| {
        let how = OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC;
        rustix::fs::open("/proc/self/fd", how, Mode::empty()).ok()
    });
    let Some(fds) = fds else {
        return Err(io::ErrorKind::NotFound.into());
    };
    let name = rustix::path::DecInt::from_fd(handle);
    let how = OFlags::RDONLY | OFlags::CLOEXEC;
    Ok(File::from(rustix::fs::openat(
        fds,
        name,
        how,
        Mode::empty(),
    )?))
}

/// Reopen for reading the file behind the `O_PATH` `handle` (opened from
/// `path`, with metadata `checked`) only if it is a regular file. `O_PATH`
/// has no side effects on a FIFO or device (nothing is really opened), and
/// `/proc/self/fd/N` names that same inode: a FIFO renamed over the path in
/// between cannot be reached. Where /proc is not mounted, the type check and
/// the (non-blocking) open of `path` are two steps again, and a type check
/// after the open catches most swaps. Returns the file and its metadata.
fn reopen_regular(
    handle: &File,
    checked: &Metadata,
    path: &Path,
) -> io::Result<Option<(File, Metadata)>> {
    if !checked.is_file() {
        return Ok(None);
    }
    let file = match reopen_by_proc(handle) {
        // The very inode `checked` describes (a descriptor's magic link
        // cannot name another): `checked` stands for it. A change since
        // shows in the stamp check after the read that every caller makes.
        Ok(f) => return Ok(Some((f, checked.clone()))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(path)?,
        Err(e) => return Err(e),
    };
    // without /proc: still a regular file, and the same inode as checked
    let meta = file.metadata()?;
    if !meta.is_file() || meta.ino() != checked.ino() || meta.dev() != checked.dev() {
        return Ok(None);
    }
    Ok(Some((file, meta)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segs(raw: &str) -> Result<Vec<String>, PathError> {
        decode_path(raw).map(|p| {
            p.segments()
                .map(|s| s.to_str().unwrap().to_string())
                .collect()
        })
    }

    #[test]
    fn a_stamp_by_path_is_the_stamp_by_metadata() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, "abc").unwrap();
        std::os::unix::fs::symlink("f", dir.path().join("link")).unwrap();
        std::fs::create_dir(dir.path().join("d")).unwrap();
        let c = |p: &Path| std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap();
        let by_meta = FileStamp::of(&std::fs::metadata(&file).unwrap());
        assert_eq!(FileStamp::of_path(&c(&file)), Some(by_meta));
        // a symlink is followed, as a request's path is
        assert_eq!(
            FileStamp::of_path(&c(&dir.path().join("link"))),
            Some(by_meta)
        );
        // only regular files have a stamp
        assert_eq!(FileStamp::of_path(&c(&dir.path().join("d"))), None);
        assert_eq!(FileStamp::of_path(&c(&dir.path().join("gone"))), None);
        std::fs::write(&file, "abcd").unwrap();
        assert_ne!(FileStamp::of_path(&c(&file)), Some(by_meta));
    }

    #[test]
    fn an_open_descriptor_outside_the_root_is_refused() {
        let outer = tempfile::tempdir().unwrap();
        std::fs::create_dir(outer.path().join("root")).unwrap();
        std::fs::write(outer.path().join("root/in.txt"), "in").unwrap();
        std::fs::write(outer.path().join("secret.txt"), "out").unwrap();
        let root = Root::new(&outer.path().join("root")).unwrap();
        let inside = File::open(outer.path().join("root/in.txt")).unwrap();
        let outside = File::open(outer.path().join("secret.txt")).unwrap();
        assert!(root.still_inside(&inside));
        // what a symlink swapped in after canonicalize() would have opened
        assert!(!root.still_inside(&outside));
    }

    /// `resolve_cached` answers only what `resolve` would, and leaves to the
    /// blocking path what it cannot do from the caches.
    #[test]
    fn inline_resolution_agrees_with_the_blocking_path() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("small.txt"), b"hello").unwrap();
        std::fs::write(dir.path().join("mid.bin"), vec![7u8; 100 * 1024]).unwrap();
        std::fs::write(dir.path().join(".env"), b"secret").unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::os::unix::fs::symlink("small.txt", dir.path().join("link")).unwrap();
        let root = Root::new(dir.path()).unwrap();
        let req = |p: &str| decode_path(p).unwrap();
        // warm the dentries: the inline walk only uses what is cached
        for p in ["/small.txt", "/mid.bin", "/nope", "/sub", "/link"] {
            let _ = root.resolve(&req(p), None);
        }
        if !root.inline {
            // e.g. a temp dir on NFS: everything goes to the pool
            assert!(root
                .resolve_cached(&req("/small.txt"), ReadWithOpen::Window(None))
                .is_none());
            return;
        }
        match root.resolve_cached(&req("/small.txt"), ReadWithOpen::Window(None)) {
            Some(Resolved::File(f)) => {
                let Resolved::File(slow) = root.resolve(&req("/small.txt"), None) else {
                    panic!("the blocking path finds it too")
                };
                assert_eq!(f.stamp, slow.stamp);
                assert!(f.whole && slow.whole);
                assert_eq!(slow.prefetched.unwrap().bytes, &b"hello"[..]);
                assert_eq!(f.prefetched.unwrap().bytes, &b"hello"[..]);
            }
            other => panic!("a cached small file is opened inline: {other:?}"),
        }
        assert!(matches!(
            root.resolve_cached(&req("/nope"), ReadWithOpen::Window(None)),
            Some(Resolved::NotFound)
        ));
        assert!(matches!(
            root.resolve_cached(&req("/.env"), ReadWithOpen::Window(None)),
            Some(Resolved::NotFound)
        ));
        // too big to hash inline; a directory; a symlink (the slow path
        // checks where it leads): all left to the pool
        assert!(root
            .resolve_cached(&req("/mid.bin"), ReadWithOpen::Window(None))
            .is_none());
        assert!(root
            .resolve_cached(&req("/sub"), ReadWithOpen::Window(None))
            .is_none());
        assert!(root
            .resolve_cached(&req("/link"), ReadWithOpen::Window(None))
            .is_none());
    }

    #[test]
    fn hidden_table() {
        // (request path, hidden) -- issue 13: dot-names at any depth, except
        // /.well-known/ at the top (RFC 8615 section 3)
        #[rustfmt::skip]
        let rows: &[(&str, bool)] = &[
            ("/a.txt", false),
            ("/.env", true),
            ("/.git/config", true),
            ("/sub/.htpasswd", true),
            ("/sub/.git/", true),
            ("/%2Egit/config", true),
            ("/a./b", false),
            ("/.well-known/security.txt", false),
            ("/.well-known/.secret", true),
            ("/sub/.well-known/x", true),
            ("/./a.txt", false),
            ("/", false),
        ];
        for (raw, hidden) in rows {
            assert_eq!(decode_path(raw).unwrap().is_hidden(), *hidden, "{raw}");
        }
        assert!(has_hidden_component(Path::new("a/.b/c")));
        assert!(!has_hidden_component(Path::new(".well-known/c")));
        assert!(has_hidden_component(Path::new("x/.well-known/c")));
    }

    #[test]
    fn admits_follows_the_access_policy() {
        let outer = tempfile::tempdir().unwrap();
        let dir = outer.path().join("root");
        std::fs::create_dir(&dir).unwrap();
        let dir = dir.canonicalize().unwrap();
        let strict = Root::new(&dir).unwrap();
        let open = Root::with_access(
            &dir,
            Access {
                hidden: true,
                follow_symlinks: true,
            },
        )
        .unwrap();
        let outside = outer.path().canonicalize().unwrap().join("x");
        for (path, strict_ok, open_ok) in [
            (dir.join("a"), true, true),
            (dir.join(".git/config"), false, true),
            (dir.join(".well-known/a"), true, true),
            (outside, false, true),
        ] {
            assert_eq!(strict.admits(&path), strict_ok, "{path:?}");
            assert_eq!(open.admits(&path), open_ok, "{path:?}");
        }
    }

    #[test]
    fn prefetch_windows() {
        let spec = |s: &str| range::parse(s).unwrap()[0];
        let big = 1 << 30;
        assert_eq!(prefetch_window(0, None), Some((0, 0)));
        assert_eq!(prefetch_window(SMALL_MAX, None), Some((0, SMALL_MAX)));
        assert_eq!(prefetch_window(SMALL_MAX + 1, None), None);
        assert_eq!(prefetch_window(big, None), None);
        assert_eq!(
            prefetch_window(big, Some(spec("bytes=500-999"))),
            Some((500, 500))
        );
        assert_eq!(
            prefetch_window(big, Some(spec("bytes=-100"))),
            Some((big - 100, 100))
        );
        assert_eq!(prefetch_window(big, Some(spec("bytes=0-"))), None);
        assert_eq!(prefetch_window(big, Some(spec("bytes=99999999999-"))), None);
        let p = Prefetched {
            offset: 10,
            bytes: Bytes::from_static(b"abcdef"),
        };
        assert_eq!(p.slice(12, 2).as_deref(), Some(&b"cd"[..]));
        assert_eq!(p.slice(9, 2), None);
        assert_eq!(p.slice(15, 2), None);
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

    #[test]
    fn a_decoded_path_is_relative_to_the_root_and_joins_it() {
        // (target, relative path, joined to /srv, is the root itself)
        let rows = [
            ("/", "", "/srv", true),
            ("//./", "", "/srv", true),
            ("/a.txt", "a.txt", "/srv/a.txt", false),
            ("//a//./b/", "a/b", "/srv/a/b", false),
            ("/caf%C3%A9/%20x", "café/ x", "/srv/café/ x", false),
        ];
        for (raw, rel, joined, root) in rows {
            let p = decode_path(raw).unwrap();
            assert_eq!(p.relative(), Path::new(rel), "{raw:?}");
            assert_eq!(p.joined_to(Path::new("/srv")), Path::new(joined), "{raw:?}");
            assert_eq!(p.is_root(), root, "{raw:?}");
        }
        // a directory's index: one more segment
        let mut p = decode_path("/docs/").unwrap();
        p.push("index.html");
        assert_eq!(p.segments().collect::<Vec<_>>(), ["docs", "index.html"]);
        assert_eq!(p.relative(), Path::new("docs/index.html"));
        let mut top = decode_path("/").unwrap();
        top.push("index.html");
        assert_eq!(top.relative(), Path::new("index.html"));
        assert!(!top.is_root());
    }
}

#[cfg(test)]
mod props {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Any request path: decoding never panics and never yields a segment
        /// that could leave the root.
        #[test]
        fn decoded_segments_are_always_safe(raw in "/[a-zA-Z0-9%./\\\\]{0,40}") {
            if let Ok(p) = decode_path(&raw) {
                for seg in p.segments() {
                    let b = seg.as_encoded_bytes();
                    prop_assert!(b != b".." && b != b"." && !b.is_empty());
                    prop_assert!(!b.iter().any(|&c| c == b'/' || c == b'\\' || c == 0));
                }
            }
        }
    }
}
