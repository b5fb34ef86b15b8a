//! `--prehash`: hash the whole tree in the background at start-up, through
//! the same [`HashCache`] requests use, with progress on stderr (a live line
//! on a terminal, plain lines otherwise). The server accepts connections at
//! once; a request for a file not yet hashed hashes (only) that file itself,
//! or joins the prehash's computation if it is that file's turn.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::fs::{Root, SMALL_MAX};
use crate::hashcache::HashCache;
use crate::listing::human_size;

/// Hash every regular file under `root` (symlinks are not followed; what
/// they point to inside the root is reached directly).
///
/// Files up to [`SMALL_MAX`] are counted but not hashed: they are hashed from
/// the buffer they are served from whenever they are opened (see
/// [`crate::fs`]), never from a stored hash. Every file is opened with the
/// same confinement as a request ([`Root::open_walked`]), so a directory
/// swapped for a symlink mid-walk leads nowhere outside the root.
pub async fn run(root: Root, hashes: Arc<HashCache>) {
    let walked = root.clone();
    let files = match tokio::task::spawn_blocking(move || walk(&walked)).await {
        Ok(files) => files,
        Err(_) => return,
    };
    let total_bytes: u64 = files.iter().map(|(_, size)| size).sum();
    let progress = Arc::new(Progress {
        total_files: files.len() as u64,
        total_bytes,
        files_done: AtomicU64::new(0),
        hashed_at_start: hashes.bytes_hashed(),
        already_known: AtomicU64::new(0),
        start: Instant::now(),
    });
    let tty = std::io::stderr().is_terminal();
    let ticker = tokio::spawn({
        let (progress, hashes) = (Arc::clone(&progress), Arc::clone(&hashes));
        async move {
            let every = if tty {
                Duration::from_millis(250)
            } else {
                Duration::from_secs(5)
            };
            loop {
                tokio::time::sleep(every).await;
                progress.report(&hashes, tty, false);
            }
        }
    });
    let root = Arc::new(root);
    for (path, size) in files {
        if size <= SMALL_MAX {
            progress.already_known.fetch_add(size, Ordering::Relaxed);
            progress.files_done.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        let confined = Arc::clone(&root);
        let opened = tokio::task::spawn_blocking(move || confined.open_walked(&path)).await;
        if let Ok(Some(f)) = opened {
            let before = hashes.computed();
            if let Err(e) = hashes.digest(&f.path, &f.file, f.stamp).await {
                tracing::warn!(path = %f.path.display(), error = %e, "prehash skipped a file");
            } else if hashes.computed() == before {
                progress.already_known.fetch_add(size, Ordering::Relaxed);
            }
        }
        progress.files_done.fetch_add(1, Ordering::Relaxed);
    }
    ticker.abort();
    progress.report(&hashes, tty, true);
}

/// Every regular file under the root that a request could reach (hidden
/// entries only if the root's policy serves them), without following symlinks.
fn walk(root: &Root) -> Vec<(PathBuf, u64)> {
    let mut out = Vec::new();
    let mut dirs = vec![root.path().to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        let at_top = dir == root.path();
        for entry in entries.flatten() {
            if !root.access().hidden && crate::fs::is_hidden(&entry.file_name(), at_top) {
                continue;
            }
            let Ok(meta) = entry.metadata() else { continue }; // does not follow symlinks
            if meta.is_dir() {
                dirs.push(entry.path());
            } else if meta.is_file() {
                out.push((entry.path(), meta.len()));
            }
        }
    }
    out.sort();
    out
}

struct Progress {
    total_files: u64,
    total_bytes: u64,
    files_done: AtomicU64,
    hashed_at_start: u64,
    already_known: AtomicU64,
    start: Instant,
}

impl Progress {
    fn report(&self, hashes: &HashCache, tty: bool, last: bool) {
        let hashed = hashes.bytes_hashed().saturating_sub(self.hashed_at_start);
        let done = (hashed + self.already_known.load(Ordering::Relaxed)).min(self.total_bytes);
        let elapsed = self.start.elapsed().as_secs_f64().max(1e-3);
        let rate = hashed as f64 / elapsed;
        let eta = if rate > 0.0 {
            format!("{:.0}s", (self.total_bytes - done) as f64 / rate)
        } else {
            "?".into()
        };
        let line = format!(
            "prehash: {}/{} files, {}/{}, {}/s, {}",
            self.files_done.load(Ordering::Relaxed),
            self.total_files,
            human_size(done),
            human_size(self.total_bytes),
            human_size(rate as u64),
            if last {
                format!("done in {elapsed:.1}s")
            } else {
                format!("ETA {eta}")
            },
        );
        let mut err = std::io::stderr().lock();
        let _ = if tty {
            write!(err, "\r\x1b[2K{line}{}", if last { "\n" } else { "" })
        } else {
            writeln!(err, "{line}")
        };
        let _ = err.flush();
    }
}
