//! Helpers shared by the fuzz targets in `fuzz_targets/`: scratch
//! directories, deterministic file contents, and the small trees the `path`
//! and `request` targets serve. See docs/fuzzing.md.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};

/// The Last-Modified of every file in the trees: 2020-01-01T00:00:00Z, long
/// before any Date, so `If-Range: <date>` can match.
pub const MTIME_SECS: u64 = 1_577_836_800;

/// A marker that lives only in files outside the served root: no response
/// body and no resolved file may ever contain it.
pub const SECRET: &[u8] = b"SECRET-OUTSIDE-THE-ROOT-5b1f0c";

/// A marker in every hidden file (a name starting with `.`, below the root,
/// other than the top-level `.well-known/`): served only with `hidden(true)`.
pub const HIDDEN: &[u8] = b"HIDDEN-CONTENT-91c2e7";

/// Whether `rel` (relative to the root, `/`-separated) is hidden by the
/// default policy.
pub fn is_hidden(rel: &str) -> bool {
    rel.split('/')
        .enumerate()
        .any(|(i, c)| c.starts_with('.') && !(i == 0 && c == ".well-known"))
}

/// A fresh directory `$TMPDIR/rangeserve-fuzz/<name>-<pid>`. Directories
/// left behind by earlier fuzzing processes that are gone are removed first
/// (a fuzzing process is usually killed, so it cannot clean up itself).
pub fn scratch_dir(name: &str) -> PathBuf {
    let base = std::env::temp_dir().join("rangeserve-fuzz");
    if let Ok(entries) = std::fs::read_dir(&base) {
        for e in entries.flatten() {
            let file_name = e.file_name().to_string_lossy().into_owned();
            let pid = file_name
                .rsplit('-')
                .next()
                .and_then(|p| p.parse::<u32>().ok());
            if let Some(pid) = pid {
                if !Path::new(&format!("/proc/{pid}")).exists() {
                    let _ = std::fs::remove_dir_all(e.path());
                }
            }
        }
    }
    let dir = base.join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create scratch dir");
    dir
}

/// `len` deterministic pseudo-random bytes (xorshift64*, seeded by `seed`).
pub fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 56) as u8
        })
        .collect()
}

/// One served tree: the root and what each regular file in it holds.
pub struct Tree {
    /// The served directory, canonical.
    pub root: PathBuf,
    /// Canonical path -> contents, for every regular file inside the root.
    pub files: HashMap<PathBuf, Vec<u8>>,
    /// `"<sha256 hex>"` (the server's ETag, quotes included) -> contents.
    pub by_etag: HashMap<String, Vec<u8>>,
    /// The ETags of hidden files.
    pub hidden_etags: HashSet<String>,
}

/// Files of the trees (relative path, contents). Every file has its own
/// length and contents, so an ETag or a complete length names one file.
pub fn tree_files() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        (
            "hello.txt",
            b"Hello, world! This is a small text file served by rangeserve.\n".to_vec(),
        ),
        ("empty.txt", Vec::new()),
        ("one.txt", b"1".to_vec()),
        ("data.bin", pseudo_random(10_000, 1)),
        // over fs::SMALL_MAX: hashed by the hash cache, streamed from disk
        ("big.bin", pseudo_random(300 * 1024 + 7, 2)),
        ("with space.txt", b"a name with a space\n".to_vec()),
        ("caf\u{e9}.txt", b"caf\xc3\xa9 au lait\n".to_vec()),
        ("%41.txt", b"a literal percent sign in the name\n".to_vec()),
        (".hidn-file", b"dot file HIDDEN-CONTENT-91c2e7\n".to_vec()),
        (".git/config", b"[core] HIDDEN-CONTENT-91c2e7\n".to_vec()),
        ("sub/.env", b"TOKEN=HIDDEN-CONTENT-91c2e7\n".to_vec()),
        (
            ".well-known/security.txt",
            b"Contact: mailto:fuzz@example.org\n".to_vec(),
        ),
        (
            "sub/index.html",
            b"<!doctype html><title>sub</title>\n".to_vec(),
        ),
        ("sub/nested.txt", b"nested file, one level down\n".to_vec()),
        ("sub/deeper/c.json", b"{\"deep\": true}\n".to_vec()),
        ("list/x.txt", b"x\n".to_vec()),
    ]
}

/// Build the tree under `dir`: `dir/root` (served) and `dir/outside` (not),
/// with symlinks that stay inside, lead outside, loop or dangle, and a FIFO.
pub fn build_tree(dir: &Path) -> Tree {
    let root = dir.join("root");
    let outside = dir.join("outside");
    std::fs::create_dir_all(&outside).expect("outside dir");
    let mut secret = SECRET.to_vec();
    secret.push(b'\n');
    std::fs::write(outside.join("secret.txt"), &secret).expect("secret");
    let mtime = UNIX_EPOCH + Duration::from_secs(MTIME_SECS);
    for (rel, data) in tree_files() {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("dirs");
        std::fs::write(&p, &data).expect("write file");
        set_mtime(&p, mtime);
    }
    let links: &[(&str, PathBuf)] = &[
        ("link_in", PathBuf::from("hello.txt")),
        ("sub/link_up", PathBuf::from("../hello.txt")),
        ("dir_in", PathBuf::from("sub")),
        ("abs_in", root.join("data.bin")),
        ("link_out", PathBuf::from("../outside/secret.txt")),
        ("sub/link_out2", PathBuf::from("../../outside/secret.txt")),
        ("abs_out", outside.join("secret.txt")),
        ("dir_out", PathBuf::from("../outside")),
        ("abs_dir_out", outside.clone()),
        ("loop", PathBuf::from("loop")),
        ("dangling", PathBuf::from("no-such-file")),
        ("etc", PathBuf::from("/etc")),
        ("to_hidden", PathBuf::from(".git/config")),
        ("to_hidden_dir", PathBuf::from(".git")),
        ("sub/to_env", PathBuf::from(".env")),
        (".hidn-link", PathBuf::from("hello.txt")),
    ];
    for (name, target) in links {
        std::os::unix::fs::symlink(target, root.join(name)).expect("symlink");
    }
    // a FIFO must never be opened (it would block); best effort
    let _ = std::process::Command::new("mkfifo")
        .arg(root.join("fifo"))
        .status();
    let root = root.canonicalize().expect("canonical root");
    let mut files = HashMap::new();
    let mut by_etag = HashMap::new();
    let mut hidden_etags = HashSet::new();
    for (rel, data) in tree_files() {
        let p = root.join(rel).canonicalize().expect("canonical file");
        let etag = format!("\"{}\"", hex::encode(Sha256::digest(&data)));
        assert_eq!(is_hidden(rel), find(&data, HIDDEN).is_some(), "{rel}");
        if is_hidden(rel) {
            hidden_etags.insert(etag.clone());
        }
        by_etag.insert(etag, data.clone());
        files.insert(p, data);
    }
    Tree {
        root,
        files,
        by_etag,
        hidden_etags,
    }
}

fn set_mtime(p: &Path, t: SystemTime) {
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(p)
        .expect("open for mtime");
    f.set_modified(t).expect("set mtime");
}

/// Find `needle` in `haystack`.
pub fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return Some(0);
    }
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Ignore SIGPIPE, as the `main` of every Rust program does. A fuzz target's
/// `main` is libFuzzer's (C), so without this a write to a connection the
/// peer has closed (hyper's `writev`, which has no `MSG_NOSIGNAL`) would kill
/// the fuzzing process; the `rangeserve` binary never sees that signal.
pub fn ignore_sigpipe() {
    // SAFETY: setting a signal's disposition to SIG_IGN has no preconditions.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
    }
}
