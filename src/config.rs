//! Validated server options, shared by the CLI and the library API.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub use crate::conn::Timeouts;

use crate::origin::Origin;
use crate::quirks::Quirk;

/// Everything a server needs to know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The directory to serve (unless `store` is set).
    pub root: PathBuf,
    /// Serve this object store instead of `root`.
    pub store: Option<StoreSpec>,
    /// How long an object's metadata (a HEAD result, or its absence) is
    /// trusted before the store is asked again (see [`crate::origin::state`]).
    pub store_revalidate: Duration,
    /// Address to bind.
    pub bind: IpAddr,
    /// Port to bind; 0 picks a free one.
    pub port: u16,
    /// Whether directories without index.html get an HTML listing.
    pub listing: bool,
    /// Serve and list hidden entries (names starting with `.`); by default
    /// only `/.well-known/` is.
    pub hidden: bool,
    /// Follow symlinks that lead outside the root (unsafe).
    pub follow_symlinks: bool,
    /// Ranges allowed after coalescing; more and the Range header is ignored.
    pub max_ranges: usize,
    /// The Cache-Control value of file responses.
    pub cache_control: String,
    /// Where to persist content hashes across restarts (none: memory only).
    pub etag_cache: Option<PathBuf>,
    /// Hash the whole tree in the background at start-up.
    pub prehash: bool,
    /// Quirks mode: per-request quirks (URL prefix, header) and the catalogue page.
    /// Implied by a non-empty `quirks`.
    pub quirks_mode: bool,
    /// Quirks applied to every response (turns quirks mode on).
    pub quirks: Vec<Quirk>,
    /// Seed of every pseudo-random value in quirks mode.
    pub seed: u64,
    /// How long `stall-after` keeps a stalled connection open.
    pub stall_limit: Duration,
    /// Over HTTP/2, what a quirk that cuts a response ends.
    pub h2_cut: H2Cut,
    /// How long a graceful shutdown waits for in-flight responses.
    pub shutdown_timeout: Duration,
    /// Files whose state (open descriptor, digest, headers) is kept between
    /// requests; 0 disables that cache.
    pub open_file_cache: usize,
    /// Bytes of small files kept in memory by that cache.
    pub small_file_cache: u64,
    /// File versions whose content hash is kept (in memory, and in
    /// `etag_cache` if set).
    pub hash_cache: usize,
    /// Connection and request limits.
    pub limits: Limits,
    /// How access lines are written.
    pub log_format: LogFormat,
    /// Requests kept in the journal's ring (0: off; see [`crate::journal`]).
    pub journal: usize,
    /// Append every journal entry to this file as a JSON line.
    pub record: Option<PathBuf>,
    /// Request headers recorded in the journal besides the standard ones.
    pub journal_headers: Vec<String>,
    /// Which origins' scripts may read responses (CORS).
    pub cors: crate::cors::Cors,
    /// Serve HTTPS with this certificate (None: plain HTTP).
    pub tls: Option<crate::tls::TlsSource>,
    /// How long after a file's last change a hash of it stays racy (see
    /// [`crate::hashcache`]); `None`: the kernel's writeback window + 1 s.
    pub settle_window: Option<Duration>,
}

/// An object store to serve (see [`crate::origin`]).
#[derive(Clone)]
pub enum StoreSpec {
    /// `s3://bucket/prefix`, `gs://bucket/prefix`, `az://container/prefix`:
    /// configured from the environment (`AWS_*`, `GOOGLE_*`, `AZURE_*`).
    Url(String),
    /// A store built by the caller (the library API, tests).
    Origin(Arc<dyn Origin>),
}

impl StoreSpec {
    /// What is served, for messages.
    pub fn describe(&self) -> String {
        match self {
            StoreSpec::Url(url) => url.clone(),
            StoreSpec::Origin(o) => o.describe(),
        }
    }
}

impl fmt::Debug for StoreSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StoreSpec({})", self.describe())
    }
}

/// Two specs are equal when they name the same URL or the very same store.
impl PartialEq for StoreSpec {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (StoreSpec::Url(a), StoreSpec::Url(b)) => a == b,
            (StoreSpec::Origin(a), StoreSpec::Origin(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }
}

impl Eq for StoreSpec {}

/// A size or rate: `65536`, `512k`, `8M`, `1G` (powers of 1024).
pub fn parse_size(v: &str) -> Option<u64> {
    let (digits, mult) = match v.as_bytes().last() {
        Some(b'k' | b'K') => (&v[..v.len() - 1], 1 << 10),
        Some(b'm' | b'M') => (&v[..v.len() - 1], 1 << 20),
        Some(b'g' | b'G') => (&v[..v.len() - 1], 1 << 30),
        _ => (v, 1),
    };
    digits.parse::<u64>().ok()?.checked_mul(mult)
}

/// Cache-Control by default: caches may store files but must revalidate
/// (cheap with our strong ETags), so a test fixture never serves stale bytes.
pub const DEFAULT_CACHE_CONTROL: &str = "no-cache";

impl Default for Config {
    fn default() -> Self {
        Config {
            root: PathBuf::from("."),
            store: None,
            store_revalidate: crate::origin::state::DEFAULT_REVALIDATE,
            bind: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port: 8080,
            listing: true,
            hidden: false,
            follow_symlinks: false,
            max_ranges: 64,
            cache_control: DEFAULT_CACHE_CONTROL.to_string(),
            etag_cache: None,
            prehash: false,
            quirks_mode: false,
            quirks: Vec::new(),
            seed: 0,
            stall_limit: Duration::from_secs(60),
            h2_cut: H2Cut::Stream,
            shutdown_timeout: Duration::from_secs(10),
            open_file_cache: crate::filestate::DEFAULT_MAX_ENTRIES,
            small_file_cache: crate::filestate::DEFAULT_MAX_BYTES,
            hash_cache: crate::hashcache::DEFAULT_MAX_ENTRIES,
            settle_window: None,
            limits: Limits::default(),
            log_format: LogFormat::Text,
            journal: 0,
            record: None,
            journal_headers: Vec::new(),
            tls: None,
            cors: crate::cors::Cors::Off,
        }
    }
}

/// Limits on what one client may hold or send; each has an answer (431, 414,
/// a closed connection) rather than an unbounded cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Connections served at once; more wait in the listen backlog.
    pub max_connections: usize,
    /// Request line plus header fields, in bytes (431 beyond; at least 8 KiB).
    pub max_header_bytes: usize,
    /// Header field lines per request (431 beyond).
    pub max_headers: usize,
    /// Request target length in bytes (414 beyond).
    pub max_uri_bytes: usize,
    /// Concurrent HTTP/2 streams per connection (SETTINGS_MAX_CONCURRENT_STREAMS).
    pub max_streams: u32,
    /// The idle, header and send time limits of a connection.
    pub timeouts: Timeouts,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 1024,
            max_header_bytes: 64 * 1024,
            max_headers: 100,
            max_uri_bytes: 8 * 1024,
            max_streams: 100,
            timeouts: crate::conn::Timeouts {
                idle: Duration::from_secs(60),
                header: Duration::from_secs(10),
                send: Duration::from_secs(30),
            },
        }
    }
}

/// What a quirk that cuts a response short (`drop-after`, `drop-at`,
/// `stall-after`, a `throttle` past `--stall-limit`) ends over HTTP/2, where
/// one connection carries many responses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
pub enum H2Cut {
    /// Reset that response's stream (RST_STREAM); other streams go on.
    #[default]
    Stream,
    /// Close the whole connection, as a failing network or proxy does:
    /// every stream on it ends.
    Connection,
}

/// The shape of log lines on stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line (field names in README).
    Json,
}
