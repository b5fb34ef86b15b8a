//! Per-path counters of quirks mode (fail-first, replica-flip), bounded
//! whatever the request stream: a path is kept as a 128-bit hash of it, never
//! as the path itself, and the table holds at most [`PATH_COUNTERS_MAX`]
//! paths, forgetting the least recently counted one to make room.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use sha2::{Digest as _, Sha256};

/// Most paths a counter table remembers. A forgotten path starts from zero
/// again (fail-first refuses it anew, replica-flip starts with the real file).
pub const PATH_COUNTERS_MAX: usize = 10_000;

/// A path's key: the first 128 bits of its SHA-256.
type Key = [u8; 16];

/// Counts per path, least recently used forgotten first.
#[derive(Debug)]
pub struct PathCounters {
    cap: usize,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// key -> (count, tick of its last use)
    counts: HashMap<Key, (u64, u64)>,
    /// tick of last use -> key: the oldest first
    by_use: BTreeMap<u64, Key>,
    tick: u64,
}

impl Default for PathCounters {
    fn default() -> Self {
        PathCounters::with_cap(PATH_COUNTERS_MAX)
    }
}

impl PathCounters {
    /// A table that remembers at most `cap` paths (at least one).
    pub fn with_cap(cap: usize) -> Self {
        PathCounters {
            cap: cap.max(1),
            inner: Mutex::default(),
        }
    }

    /// Add one to `path`'s count and return the new count (1 the first time).
    pub fn bump(&self, path: &str) -> u64 {
        let key: Key = Sha256::digest(path.as_bytes())[..16]
            .try_into()
            .expect("16 bytes");
        let mut guard = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let inner = &mut *guard;
        inner.tick += 1;
        let tick = inner.tick;
        let count = match inner.counts.get_mut(&key) {
            Some((count, used)) => {
                inner.by_use.remove(used);
                *used = tick;
                *count = count.saturating_add(1);
                *count
            }
            None => {
                while inner.counts.len() >= self.cap {
                    let Some((_, oldest)) = inner.by_use.pop_first() else {
                        break;
                    };
                    inner.counts.remove(&oldest);
                }
                inner.counts.insert(key, (1, tick));
                1
            }
        };
        inner.by_use.insert(tick, key);
        count
    }

    /// How many paths are remembered.
    pub fn len(&self) -> usize {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .counts
            .len()
    }

    /// True when no path is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_per_path() {
        let c = PathCounters::default();
        assert!(c.is_empty());
        assert_eq!(c.bump("/a"), 1);
        assert_eq!(c.bump("/a"), 2);
        assert_eq!(c.bump("/b"), 1);
        assert_eq!(c.bump("/a"), 3);
        assert_eq!(c.len(), 2);
    }

    #[test]
    fn bounded_and_least_recently_used_goes_first() {
        let c = PathCounters::with_cap(3);
        c.bump("/a");
        c.bump("/b");
        c.bump("/c");
        c.bump("/a"); // /b is now the least recently used
        c.bump("/d");
        assert_eq!(c.len(), 3);
        assert_eq!(c.bump("/a"), 3, "/a kept");
        assert_eq!(c.bump("/b"), 1, "/b forgotten");
        assert_eq!(c.len(), 3);
    }

    #[test]
    fn many_long_distinct_paths_stay_within_the_cap() {
        let c = PathCounters::with_cap(1000);
        let long = "x".repeat(8192);
        for i in 0..5000 {
            assert_eq!(c.bump(&format!("/{i}{long}")), 1);
            assert!(c.len() <= 1000);
        }
        assert_eq!(c.len(), 1000);
        assert_eq!(c.bump(&format!("/4999{long}")), 2, "recent ones kept");
    }
}
