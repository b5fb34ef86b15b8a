//! The library API for using rangeserve as a test fixture: a builder with the
//! CLI's options, typed, that spawns a server on a background task and hands
//! back a [`ServerHandle`].
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), rangeserve::StartError> {
//! let dir = std::env::temp_dir().join(format!("rangeserve-doc-{}", std::process::id()));
//! std::fs::create_dir_all(&dir).unwrap();
//! std::fs::write(dir.join("hello.txt"), "Hello, world!").unwrap();
//!
//! let server = rangeserve::Server::builder()
//!     .root(&dir)
//!     .bind("127.0.0.1:0")
//!     .quirk("drop-after=5")
//!     .spawn()
//!     .await?;
//! assert!(server.url().starts_with("http://127.0.0.1:"));
//!
//! // a bad quirk is an error, not a panic
//! let err = rangeserve::Server::builder().root(&dir).bind("127.0.0.1:0").quirk("nope").spawn().await;
//! assert!(err.is_err());
//!
//! server.shutdown().await; // graceful: waits for in-flight responses
//! # std::fs::remove_dir_all(&dir).unwrap();
//! # Ok(()) }
//! ```

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::config::Config;
use crate::quirks::Spec;
use crate::server::{Server, ServerHandle, StartError};

/// Builds a [`Server`]; start from [`Server::builder`]. Every option has the
/// CLI's default.
#[derive(Debug, Clone)]
pub struct ServerBuilder {
    config: Config,
    bind: Option<String>,
    quirk_specs: Vec<String>,
}

impl Default for ServerBuilder {
    /// The CLI's defaults, except that the request journal is on
    /// ([`crate::journal::DEFAULT_ENTRIES`]): a fixture's test reads it with
    /// [`ServerHandle::requests`].
    fn default() -> Self {
        ServerBuilder {
            config: Config {
                journal: crate::journal::DEFAULT_ENTRIES,
                ..Config::default()
            },
            bind: None,
            quirk_specs: Vec::new(),
        }
    }
}

impl Server {
    /// A builder with the CLI's defaults (`.` on 127.0.0.1:8080; tests want
    /// `.bind("127.0.0.1:0")`) and the request journal on.
    pub fn builder() -> ServerBuilder {
        ServerBuilder::default()
    }
}

impl ServerBuilder {
    /// The directory to serve.
    pub fn root(mut self, dir: impl Into<PathBuf>) -> Self {
        self.config.root = dir.into();
        self
    }

    /// Serve an object store (`s3://bucket/prefix`, `gs://…`, `az://…`)
    /// instead of a directory, configured from the environment.
    pub fn store_url(mut self, url: impl Into<String>) -> Self {
        self.config.store = Some(crate::config::StoreSpec::Url(url.into()));
        self
    }

    /// Serve `prefix` of an `object_store` store (in-memory, local file
    /// system, or any other) instead of a directory.
    #[cfg(feature = "object-store")]
    pub fn object_store(
        self,
        store: std::sync::Arc<dyn object_store::ObjectStore>,
        prefix: &str,
    ) -> Self {
        let describe = format!("{store}/{}", prefix.trim_matches('/'));
        let origin = crate::origin::store::StoreOrigin::new(store, prefix, describe);
        self.origin(std::sync::Arc::new(origin))
    }

    /// Serve any [`crate::origin::Origin`] instead of a directory.
    pub fn origin(mut self, origin: std::sync::Arc<dyn crate::origin::Origin>) -> Self {
        self.config.store = Some(crate::config::StoreSpec::Origin(origin));
        self
    }

    /// How long an object's metadata, or its absence, is trusted before the
    /// store is asked again (default 1 s; zero asks on every request).
    pub fn store_revalidate(mut self, interval: Duration) -> Self {
        self.config.store_revalidate = interval;
        self
    }

    /// `ADDR:PORT` to listen on; port 0 picks a free one (see [`ServerHandle::url`]).
    pub fn bind(mut self, addr: impl Into<String>) -> Self {
        self.bind = Some(addr.into());
        self
    }

    /// Add global quirks: `name`, `name=value`, several joined by commas.
    /// Turns quirks mode on. A bad spec makes [`spawn`](Self::spawn) fail.
    pub fn quirk(mut self, spec: impl Into<String>) -> Self {
        self.quirk_specs.push(spec.into());
        self
    }

    /// Quirks mode without global quirks (per-request quirks by URL or header).
    pub fn quirks_mode(mut self, on: bool) -> Self {
        self.config.quirks_mode = on;
        self
    }

    /// Seed of quirks' pseudo-random values.
    pub fn seed(mut self, seed: u64) -> Self {
        self.config.seed = seed;
        self
    }

    /// How long `stall-after` keeps a stalled connection open.
    pub fn stall_limit(mut self, limit: Duration) -> Self {
        self.config.stall_limit = limit;
        self
    }

    /// Requests kept in the journal (default
    /// [`crate::journal::DEFAULT_ENTRIES`]; 0 turns it and its HTTP endpoint
    /// off).
    pub fn journal(mut self, entries: usize) -> Self {
        self.config.journal = entries;
        self
    }

    /// Append every journal entry to `file` as a JSON line.
    pub fn record(mut self, file: impl Into<PathBuf>) -> Self {
        self.config.record = Some(file.into());
        self
    }

    /// Also record request header `name` in the journal.
    pub fn journal_header(mut self, name: impl Into<String>) -> Self {
        self.config.journal_headers.push(name.into());
        self
    }

    /// Over HTTP/2, what a quirk that cuts a response ends (default: its
    /// stream).
    pub fn h2_cut(mut self, cut: crate::config::H2Cut) -> Self {
        self.config.h2_cut = cut;
        self
    }

    /// Serve and list hidden entries (names starting with `.`; default off:
    /// only `/.well-known/` is served).
    pub fn hidden(mut self, on: bool) -> Self {
        self.config.hidden = on;
        self
    }

    /// Follow symlinks that lead outside the root (default off; unsafe).
    pub fn follow_symlinks(mut self, on: bool) -> Self {
        self.config.follow_symlinks = on;
        self
    }

    /// Connection and request limits (see [`crate::config::Limits`] for the defaults).
    pub fn limits(mut self, limits: crate::config::Limits) -> Self {
        self.config.limits = limits;
        self
    }

    /// How access lines are written (text by default).
    pub fn log_format(mut self, format: crate::config::LogFormat) -> Self {
        self.config.log_format = format;
        self
    }

    /// Serve HTTPS with a PEM certificate chain and key (checked at start).
    pub fn tls_files(mut self, cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Self {
        self.config.tls = Some(crate::tls::TlsSource::Files {
            cert: cert.into(),
            key: key.into(),
        });
        self
    }

    /// Serve HTTPS with a certificate generated at start for localhost,
    /// 127.0.0.1, ::1 and the bind address; written as PEM to `cert_out`, if
    /// given, for a client to trust.
    pub fn tls_self_signed(mut self, cert_out: Option<PathBuf>) -> Self {
        // names completed with the bind address in config()
        self.config.tls = Some(crate::tls::TlsSource::SelfSigned {
            names: Vec::new(),
            cert_out,
        });
        self
    }

    /// Which origins' scripts may read responses (CORS; off by default).
    pub fn cors(mut self, cors: crate::cors::Cors) -> Self {
        self.config.cors = cors;
        self
    }

    /// HTML listings for directories without index.html (default on).
    pub fn listing(mut self, on: bool) -> Self {
        self.config.listing = on;
        self
    }

    /// Most ranges per response after coalescing (default 64).
    pub fn max_ranges(mut self, n: usize) -> Self {
        self.config.max_ranges = n;
        self
    }

    /// The Cache-Control value of file responses (default `no-cache`).
    pub fn cache_control(mut self, value: impl Into<String>) -> Self {
        self.config.cache_control = value.into();
        self
    }

    /// Persist content hashes in this file.
    pub fn etag_cache(mut self, file: impl Into<PathBuf>) -> Self {
        self.config.etag_cache = Some(file.into());
        self
    }

    /// Hash the whole tree in the background at start-up.
    pub fn prehash(mut self, on: bool) -> Self {
        self.config.prehash = on;
        self
    }

    /// How long a graceful shutdown waits for in-flight responses (default 10 s).
    pub fn shutdown_timeout(mut self, t: Duration) -> Self {
        self.config.shutdown_timeout = t;
        self
    }

    /// How many files' state is kept between requests (0 disables; see
    /// README, "Performance").
    pub fn open_file_cache(mut self, entries: usize) -> Self {
        self.config.open_file_cache = entries;
        self
    }

    /// Bytes of small files kept in memory by that cache.
    pub fn small_file_cache(mut self, bytes: u64) -> Self {
        self.config.small_file_cache = bytes;
        self
    }

    /// How long after a file's last change its hash stays racy (default: the
    /// kernel's writeback window + 1 s; see [`crate::hashcache`]).
    pub fn settle_window(mut self, window: Duration) -> Self {
        self.config.settle_window = Some(window);
        self
    }

    /// How many file versions' content hashes are kept (at least 1).
    pub fn hash_cache(mut self, entries: usize) -> Self {
        self.config.hash_cache = entries.max(1);
        self
    }

    /// The validated options.
    pub fn config(self) -> Result<Config, StartError> {
        let mut config = self.config;
        if let Some(addr) = self.bind {
            let addr: SocketAddr = addr.parse().map_err(|_| StartError::Config {
                option: "bind",
                reason: format!("{addr:?} is not ADDR:PORT"),
            })?;
            config.bind = addr.ip();
            config.port = addr.port();
        }
        if let Some(crate::tls::TlsSource::SelfSigned { names, .. }) = &mut config.tls {
            *names = crate::tls::self_signed_names(&config.bind.to_string());
        }
        for spec in &self.quirk_specs {
            let parsed = Spec::parse(spec).map_err(|e| StartError::Config {
                option: "quirk",
                reason: e.to_string(),
            })?;
            config.quirks.extend(parsed.quirks);
        }
        Ok(config)
    }

    /// Bind and start serving on a background task of the current runtime.
    pub async fn spawn(self) -> Result<ServerHandle, StartError> {
        Ok(Server::bind(self.config()?).await?.spawn())
    }
}
