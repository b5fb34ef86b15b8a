//! Request paths: `fs::decode_path` on arbitrary strings, then
//! `fs::Root::resolve` against a small tree built once (files, a large
//! file, names needing percent-encoding, hidden entries, symlinks that stay
//! inside, lead outside, lead to hidden entries, loop or dangle, a FIFO),
//! with three policies: the default, `hidden`, and `follow_symlinks`.
//! Unless `follow_symlinks`, a resolved file or directory must be inside the
//! root; by default it must not be hidden; a file's bytes must always be the
//! ones on disk.
//!
//! Input: `PATH` or `PATH\nRANGE`: the optional second line is a Range
//! header value whose first spec is passed as the read-ahead hint.
#![no_main]

use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileExt;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use rangeserve::fs::{decode_path, Access, PathError, RequestPath, Resolved, Root};
use rangeserve::rfc::range;
use rangeserve_fuzz::{build_tree, find, is_hidden, scratch_dir, Tree, HIDDEN, SECRET};

struct Fixture {
    tree: Tree,
    /// The default policy, `hidden`, `follow_symlinks`.
    roots: [Root; 3],
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let tree = build_tree(&scratch_dir("path"));
        let root = |access| Root::with_access(&tree.root, access).expect("Root");
        let roots = [
            Root::new(&tree.root).expect("Root::new"),
            root(Access {
                hidden: true,
                follow_symlinks: false,
            }),
            root(Access {
                hidden: false,
                follow_symlinks: true,
            }),
        ];
        assert_eq!(roots[0].path(), tree.root);
        assert_eq!(roots[0].access(), Access::default());
        Fixture { tree, roots }
    })
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (raw, range) = match text.split_once('\n') {
        Some((p, r)) => (p, Some(r)),
        None => (&*text, None),
    };
    let decoded = decode_path(raw);
    let Ok(path) = decoded else {
        if !raw.starts_with('/') {
            assert_eq!(decoded, Err(PathError::NotAbsolute));
        }
        return;
    };
    assert!(raw.starts_with('/'));
    for seg in &path.segments {
        let b = seg.as_bytes();
        assert!(
            !b.is_empty() && b != b"." && b != b"..",
            "segment {seg:?} from {raw:?}"
        );
        assert!(
            !b.iter().any(|&c| c == b'/' || c == b'\\' || c == 0),
            "separator or NUL in segment {seg:?} from {raw:?}"
        );
    }
    // a path names a directory only when it ends in "/" or "/." (encoded or not)
    let last = raw.rsplit('/').next().unwrap_or("");
    let last = percent_decode(last);
    assert_eq!(
        path.trailing_slash,
        last.is_empty() || last == b".",
        "trailing_slash of {raw:?}"
    );
    // re-encoding the segments gives the same path back
    let mut again = String::new();
    for seg in &path.segments {
        again.push('/');
        for &b in seg.as_bytes() {
            if b.is_ascii_alphanumeric() || b"-_~".contains(&b) {
                again.push(b as char);
            } else {
                again.push_str(&format!("%{b:02X}"));
            }
        }
    }
    if again.is_empty() {
        again.push('/');
    }
    let redecoded = decode_path(&again).expect("re-encoded path decodes");
    assert_eq!(redecoded.segments, path.segments, "{again:?} from {raw:?}");

    let f = fixture();
    let want = range.and_then(|r| range::parse(r).ok()).map(|s| s[0]);
    for root in &f.roots {
        check_resolved(f, root, &path, want, raw);
    }
});

fn check_resolved(
    f: &Fixture,
    root: &Root,
    path: &RequestPath,
    want: Option<range::RangeSpec>,
    raw: &str,
) {
    let access = root.access();
    let confined = !access.follow_symlinks;
    let real = match root.resolve(path, want) {
        Resolved::File(file) => {
            let real = file.path.canonicalize().expect("resolved file exists");
            let fd_path = std::fs::read_link(format!("/proc/self/fd/{}", file.file.as_raw_fd()))
                .expect("fd link");
            assert_eq!(fd_path, real, "{raw:?}: descriptor and path disagree");
            assert!(file.file.metadata().expect("metadata").is_file());
            let read;
            let content: &[u8] = match f.tree.files.get(&real) {
                Some(c) => c,
                None if !confined => {
                    read = std::fs::read(&real).expect("read");
                    &read
                }
                None => panic!(
                    "{raw:?} resolved to a file outside the tree: {}",
                    real.display()
                ),
            };
            assert_eq!(file.stamp.size, content.len() as u64);
            // the descriptor reads the file's bytes (its head and tail: enough
            // to tell the files of the tree apart, and quick)
            for (at, len) in [(0, 4096), (content.len().saturating_sub(4096), 4096)] {
                let len = len.min(content.len() - at);
                let mut buf = vec![0u8; len];
                file.file.read_exact_at(&mut buf, at as u64).expect("read");
                assert!(buf == content[at..at + len], "{raw:?}: wrong bytes");
            }
            if confined {
                assert!(find(content, SECRET).is_none(), "{raw:?}: secret read");
            }
            if !access.hidden {
                assert!(find(content, HIDDEN).is_none(), "{raw:?}: hidden file read");
            }
            if let Some(p) = &file.prefetched {
                let start = usize::try_from(p.offset).expect("offset");
                let end = start + p.bytes.len();
                assert!(end <= content.len(), "prefetched beyond the end");
                assert!(
                    p.bytes[..] == content[start..end],
                    "prefetched bytes differ"
                );
            }
            // a small file is read whole at open: its digest is made from these bytes
            if file.whole {
                let p = file.prefetched.as_ref().expect("a whole file without its buffer");
                assert_eq!((p.offset, p.bytes.len()), (0, content.len()));
            }
            real
        }
        Resolved::Dir(dir) => {
            assert!(dir.is_dir());
            assert_eq!(
                dir.canonicalize().ok().as_ref(),
                Some(&dir),
                "not canonical"
            );
            dir
        }
        Resolved::NotFound => return,
    };
    if confined {
        assert!(
            real.starts_with(&f.tree.root),
            "{raw:?} resolved to {} outside the root ({access:?})",
            real.display()
        );
    }
    if !access.hidden {
        assert!(!path.is_hidden(), "{raw:?}: hidden path resolved");
        if let Ok(rel) = real.strip_prefix(&f.tree.root) {
            let rel = rel.to_string_lossy();
            assert!(!is_hidden(&rel), "{raw:?} resolved to hidden {rel:?}");
        }
    }
}

fn percent_decode(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && b[i + 1].is_ascii_hexdigit()
            && b[i + 2].is_ascii_hexdigit()
        {
            let hex = std::str::from_utf8(&b[i + 1..i + 3]).expect("ascii");
            out.push(u8::from_str_radix(hex, 16).expect("hex"));
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    out
}
