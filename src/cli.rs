//! The command line (clap), turned into a [`Config`].

use std::net::{IpAddr, ToSocketAddrs};
use std::path::PathBuf;

use clap::Parser;

use std::time::Duration;

use crate::config::{Config, H2Cut, Limits, LogFormat, StoreSpec};
use crate::cors::Cors;
use crate::quirks::{QuirkError, Spec};
use crate::tls::TlsSource;

/// rangeserve: an HTTP file server that gets byte ranges exactly right.
#[derive(Debug, Parser)]
#[command(
    name = "rangeserve",
    version,
    about,
    long_about = None,
    after_help = "Diagnose another server's range handling: rangeserve probe URL (see rangeserve probe --help).\nA directory named probe is served as: rangeserve ./probe"
)]
pub struct Cli {
    /// Directory to serve, or an object store: s3://bucket/prefix, gs://bucket/prefix, az://container/prefix (credentials and endpoint from the environment: AWS_*, GOOGLE_*, AZURE_*).
    #[arg(default_value = ".")]
    pub dir: PathBuf,
    /// Address to bind: an IP address, or a host name such as localhost.
    #[arg(
        short = 'b',
        long = "bind",
        value_name = "ADDR",
        default_value = "127.0.0.1"
    )]
    pub bind: String,
    /// Port to listen on; 0 picks any free port (the real one is printed).
    #[arg(short = 'p', long = "port", value_name = "N", default_value_t = 8080)]
    pub port: u16,
    /// Answer 404 for directories without index.html instead of listing them.
    #[arg(long)]
    pub no_listing: bool,
    /// Also serve and list hidden files and directories (names starting with '.', such as .git/ and .env); by default only /.well-known/ is served.
    #[arg(long)]
    pub hidden: bool,
    /// Follow symlinks that lead outside the served directory. Unsafe: anything this process can read becomes reachable through such a link.
    #[arg(long)]
    pub follow_symlinks: bool,
    /// Log only warnings and errors (no per-request lines).
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Most ranges served in one response, after coalescing; more and the Range header is ignored (200).
    #[arg(long, value_name = "N", default_value_t = 64, value_parser = clap::value_parser!(u16).range(1..))]
    pub max_ranges: u16,
    /// Cache-Control value sent with files.
    #[arg(long, value_name = "VALUE", default_value = crate::config::DEFAULT_CACHE_CONTROL)]
    pub cache_control: String,
    /// Keep content hashes (ETags) in FILE so they survive restarts.
    #[arg(long, value_name = "FILE")]
    pub etag_cache: Option<PathBuf>,
    /// Hash every file at start-up, in the background, with progress on stderr.
    #[arg(long)]
    pub prehash: bool,
    /// On SIGTERM/SIGINT, wait this many seconds for in-flight responses (a second signal exits at once).
    #[arg(long, value_name = "SECS", default_value_t = 10)]
    pub shutdown_timeout: u64,
    /// Do not serve: GET URL once and exit 0 if the server answers with a status below 500 (a container health check).
    #[arg(long, value_name = "URL")]
    pub healthcheck: Option<String>,
    /// Misbehave on every response: SPEC is `name` or `name=value`, several joined by commas (repeatable; turns quirks mode on).
    #[arg(long = "quirk", value_name = "SPEC")]
    pub quirk: Vec<String>,
    /// Quirks mode with no global quirk: requests pick quirks by /_quirks/SPEC/path or a Rangeserve-Quirks header.
    #[arg(long)]
    pub quirks: bool,
    /// Seed for the pseudo-random values of quirks (same seed, same bytes).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub seed: u64,
    /// Seconds a `stall-after` connection stays open before it is closed; also the longest a `throttle` response lasts.
    #[arg(long, value_name = "SECS", default_value_t = 60)]
    pub stall_limit: u64,
    /// Over HTTP/2, what a quirk that cuts a response (drop-after, drop-at, stall-after, throttle) ends: its stream (RST_STREAM) or the whole connection.
    #[arg(long, value_name = "WHAT", value_enum, default_value_t = H2Cut::Stream)]
    pub h2_cut: H2Cut,
    /// Print the quirk catalogue and exit.
    #[arg(long)]
    pub list_quirks: bool,
    /// Files whose state (open descriptor, ETag, headers) is kept between requests, so a repeat request costs one stat; 0 disables.
    #[arg(long, value_name = "N", default_value_t = crate::filestate::DEFAULT_MAX_ENTRIES)]
    pub open_file_cache: usize,
    /// Memory for the bytes of small files (up to 256 KiB each) in that cache, e.g. 8M or 512k; 0 keeps none.
    #[arg(long, value_name = "BYTES", default_value = "8M", value_parser = parse_size)]
    pub small_file_cache: u64,
    /// File versions whose SHA-256 is kept in memory (and in --etag-cache); least recently used go first.
    #[arg(long, value_name = "N", default_value_t = crate::hashcache::DEFAULT_MAX_ENTRIES as u64, value_parser = clap::value_parser!(u64).range(1..))]
    pub hash_cache: u64,
    /// Seconds after a file's last change during which its hash is not trusted on the stamp alone (whole-file bodies are then verified as sent). Default: the kernel's dirty-page writeback window + 1 s (36 s), which covers writers through shared mappings.
    #[arg(long, value_name = "SECS")]
    pub settle_window: Option<u64>,
    /// Connections served at once; more wait in the listen backlog until one ends.
    #[arg(long, value_name = "N", default_value_t = Limits::default().max_connections, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub max_connections: usize,
    /// Longest request line plus header fields (431 beyond), e.g. 64k; at least 8k.
    #[arg(long, value_name = "BYTES", default_value = "64k", value_parser = parse_size)]
    pub max_header_bytes: u64,
    /// Most header field lines in a request (431 beyond).
    #[arg(long, value_name = "N", default_value_t = Limits::default().max_headers)]
    pub max_headers: usize,
    /// Longest request target (414 beyond), e.g. 8k.
    #[arg(long, value_name = "BYTES", default_value = "8k", value_parser = parse_size)]
    pub max_uri_bytes: u64,
    /// Concurrent HTTP/2 streams per connection.
    #[arg(long, value_name = "N", default_value_t = Limits::default().max_streams, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_streams: u32,
    /// Seconds a keep-alive connection may wait for its next request before it is closed.
    #[arg(long, value_name = "SECS", default_value_t = Limits::default().timeouts.idle.as_secs())]
    pub idle_timeout: u64,
    /// Seconds a client may take to send a request's head once it has begun (a client trickling headers is dropped).
    #[arg(long, value_name = "SECS", default_value_t = Limits::default().timeouts.header.as_secs())]
    pub header_timeout: u64,
    /// Seconds a response may wait for a client that stopped reading before the connection is closed.
    #[arg(long, value_name = "SECS", default_value_t = Limits::default().timeouts.send.as_secs())]
    pub send_timeout: u64,
    /// Let scripts of other origins read responses (CORS): `--cors` for any origin, `--cors ORIGIN` (repeatable) for those only, e.g. https://app.example:8443.
    #[arg(long, value_name = "ORIGIN", num_args = 0..=1, default_missing_value = "*")]
    #[allow(rustdoc::bare_urls)] // the --help text, not a link
    pub cors: Vec<String>,
    /// Serve HTTPS (HTTP/2 and HTTP/1.1 by ALPN) with this PEM certificate chain; needs --tls-key. SIGHUP reloads both files.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Serve HTTPS with a certificate generated now for localhost, 127.0.0.1, ::1 and the --bind name; its SHA-256 fingerprint goes to stderr.
    #[arg(long, conflicts_with = "tls_cert")]
    pub tls_self_signed: bool,
    /// Write the generated certificate (PEM) to FILE, so that a client can trust it.
    #[arg(long, value_name = "FILE", requires = "tls_self_signed")]
    pub tls_cert_out: Option<PathBuf>,
    /// Keep the last N requests (headers that matter for ranges, status, quirks, bytes sent, cut or not) for tests to read at GET /_rangeserve/requests (DELETE clears); N defaults to 4096.
    #[arg(long, value_name = "N", num_args = 0..=1, default_missing_value = "4096")]
    pub journal: Option<usize>,
    /// Append every request's journal entry to FILE as a JSON line.
    #[arg(long, value_name = "FILE")]
    pub record: Option<PathBuf>,
    /// Also record this request header in the journal (repeatable).
    #[arg(long = "journal-header", value_name = "NAME")]
    pub journal_header: Vec<String>,
    /// Log lines as human-readable text or as one JSON object per line.
    #[arg(long, value_name = "FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Seconds an object's metadata (a HEAD result, or its absence) is trusted before the store is asked again; 0 asks on every request. Reads stay pinned to the version described, so a replaced object never yields mixed bytes.
    #[arg(long, value_name = "SECS", default_value_t = crate::origin::state::DEFAULT_REVALIDATE.as_secs())]
    pub store_revalidate: u64,
    /// Threads for blocking file work (opens, reads not in the page cache); default: one per CPU. Raise it for a slow disk.
    #[arg(long, value_name = "N")]
    pub io_threads: Option<usize>,
    /// Threads that serve connections; default: one per CPU this process may run on. With 1, one thread serves every connection: the least work per request on one CPU (blocking file work still goes to --io-threads).
    #[arg(long, value_name = "N")]
    pub threads: Option<std::num::NonZeroUsize>,
}

/// `65536`, `512k`, `8M`, `1G` (powers of 1024).
fn parse_size(v: &str) -> Result<u64, String> {
    crate::config::parse_size(v)
        .ok_or_else(|| format!("{v:?} is not a size like 65536, 512k or 8M"))
}

impl Cli {
    /// The server options this command line asks for; an unknown quirk or an
    /// address that is neither an IP address nor a resolvable name is an error.
    pub fn config(&self) -> Result<Config, CliError> {
        let mut quirks = Vec::new();
        for spec in &self.quirk {
            quirks.extend(Spec::parse(spec)?.quirks);
        }
        let store = self
            .dir
            .to_str()
            .filter(|d| crate::origin::is_store_url(d))
            .map(|url| StoreSpec::Url(url.to_string()));
        Ok(Config {
            root: self.dir.clone(),
            store,
            store_revalidate: Duration::from_secs(self.store_revalidate),
            bind: bind_address(&self.bind)?,
            port: self.port,
            listing: !self.no_listing,
            hidden: self.hidden,
            follow_symlinks: self.follow_symlinks,
            max_ranges: usize::from(self.max_ranges),
            cache_control: self.cache_control.clone(),
            etag_cache: self.etag_cache.clone(),
            prehash: self.prehash,
            quirks_mode: self.quirks || !self.quirk.is_empty(),
            quirks,
            seed: self.seed,
            stall_limit: Duration::from_secs(self.stall_limit),
            h2_cut: self.h2_cut,
            journal: self.journal.unwrap_or(0),
            record: self.record.clone(),
            journal_headers: self.journal_header.clone(),
            shutdown_timeout: Duration::from_secs(self.shutdown_timeout),
            open_file_cache: self.open_file_cache,
            small_file_cache: self.small_file_cache,
            hash_cache: usize::try_from(self.hash_cache).unwrap_or(usize::MAX),
            settle_window: self.settle_window.map(Duration::from_secs),
            limits: Limits {
                max_connections: self.max_connections,
                max_header_bytes: usize::try_from(self.max_header_bytes).unwrap_or(usize::MAX),
                max_headers: self.max_headers,
                max_uri_bytes: usize::try_from(self.max_uri_bytes).unwrap_or(usize::MAX),
                max_streams: self.max_streams,
                timeouts: crate::conn::Timeouts {
                    idle: Duration::from_secs(self.idle_timeout),
                    header: Duration::from_secs(self.header_timeout),
                    send: Duration::from_secs(self.send_timeout),
                },
            },
            log_format: self.log_format,
            tls: self.tls(),
            cors: cors(&self.cors)?,
        })
    }
}

impl Cli {
    fn tls(&self) -> Option<TlsSource> {
        if let (Some(cert), Some(key)) = (&self.tls_cert, &self.tls_key) {
            return Some(TlsSource::Files {
                cert: cert.clone(),
                key: key.clone(),
            });
        }
        self.tls_self_signed.then(|| TlsSource::SelfSigned {
            names: crate::tls::self_signed_names(&self.bind),
            cert_out: self.tls_cert_out.clone(),
        })
    }
}

/// `--cors` values: `*` (a bare `--cors`) for any origin, else the origins.
fn cors(values: &[String]) -> Result<Cors, CliError> {
    if values.is_empty() {
        return Ok(Cors::Off);
    }
    if values.iter().any(|v| v == "*") {
        return Ok(Cors::Any);
    }
    for v in values {
        // an origin is scheme://host[:port]: no path, no trailing slash
        let rest = v
            .strip_prefix("http://")
            .or_else(|| v.strip_prefix("https://"));
        if !rest.is_some_and(|r| !r.is_empty() && !r.contains('/')) {
            return Err(CliError::Cors(v.clone()));
        }
    }
    Ok(Cors::Origins(values.to_vec()))
}

/// A command line that clap accepted but that makes no sense.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CliError {
    /// `--quirk` names an unknown quirk or has a bad value.
    #[error("--quirk: {0}")]
    Quirk(#[from] QuirkError),
    /// `--cors` names something that is not an origin.
    #[error("--cors {0:?} is not an origin like https://app.example:8443")]
    Cors(String),
    /// `--bind` is neither an IP address nor a name that resolves.
    #[error("--bind {0:?} is not an IP address or a resolvable host name")]
    Bind(String),
}

/// An IP address, or the first address a host name resolves to.
fn bind_address(addr: &str) -> Result<IpAddr, CliError> {
    if let Ok(ip) = addr.parse() {
        return Ok(ip);
    }
    (addr, 0)
        .to_socket_addrs()
        .ok()
        .and_then(|mut addrs| addrs.next())
        .map(|a| a.ip())
        .ok_or_else(|| CliError::Bind(addr.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_flags() {
        let cli = Cli::try_parse_from(["rangeserve"]).unwrap();
        assert_eq!(cli.config(), Ok(Config::default()));
        let cli = Cli::try_parse_from([
            "rangeserve",
            "-b",
            "::1",
            "-p",
            "0",
            "--no-listing",
            "-q",
            "--max-ranges",
            "3",
            "dir",
        ])
        .unwrap();
        let c = cli.config().unwrap();
        assert_eq!(
            (c.bind.to_string(), c.port, c.listing, c.max_ranges),
            ("::1".into(), 0, false, 3)
        );
        assert_eq!(c.root, PathBuf::from("dir"));
        assert_eq!(c.store, None);
        let s3 = Cli::try_parse_from(["rangeserve", "s3://bucket/pre", "--store-revalidate", "0"])
            .unwrap()
            .config()
            .unwrap();
        assert_eq!(s3.store, Some(StoreSpec::Url("s3://bucket/pre".into())));
        assert_eq!(s3.store_revalidate, Duration::ZERO);
        assert!(cli.quiet);
        let bad = Cli::try_parse_from(["rangeserve", "-b", "no such host."]).unwrap();
        assert_eq!(bad.config(), Err(CliError::Bind("no such host.".into())));
        let local = Cli::try_parse_from(["rangeserve", "-b", "localhost"]).unwrap();
        assert!(local.config().unwrap().bind.is_loopback());
        assert!(Cli::try_parse_from(["rangeserve", "--max-ranges", "0"]).is_err());
    }
}
