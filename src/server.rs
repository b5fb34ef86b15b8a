//! Binding, the connection loop (HTTP/1.1 through [`crate::h1`], then hyper;
//! HTTP/2 through hyper), and graceful shutdown.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use std::convert::Infallible;

use axum::http::{HeaderValue, Request, Response};
use bytes::Bytes;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tower::BoxError;

use crate::access::{self, ConnInfo};
use crate::coalesce::Coalesce;
use crate::config::Config;
use crate::conn::{Activity, TimedIo};
use crate::filestate::FileStates;
use crate::fs::Root;
use crate::handler::{App, Backend};
use crate::hashcache::HashCache;
use crate::origin::state::{self, ObjectStates};
use crate::quirks::transform::QuirkMode;
use crate::quirks::QuirkSet;
use crate::tls::{CertStore, TlsSource};
use crate::transport::{self, Protocol, Rewind};

/// Answer plaintext HTTP on a TLS port with a 400 and close. The request is
/// drained briefly after the answer: closing with unread bytes would reset
/// the connection, and the client might never see the answer.
async fn plain_on_tls<I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(mut io: I) {
    if io
        .write_all(transport::PLAIN_ON_TLS_RESPONSE)
        .await
        .is_err()
    {
        return;
    }
    let _ = io.shutdown().await;
    let drain = async {
        let mut sink = [0u8; 4096];
        let mut left = 64 * 1024;
        while left > 0 {
            match io.read(&mut sink).await {
                Ok(0) | Err(_) => break,
                Ok(n) => left -= n.min(left),
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), drain).await;
}

/// hyper's smallest read buffer.
pub(crate) const MIN_HEADER_BYTES: usize = 8 * 1024;

/// The header count hyper allows when none is set (`DEFAULT_MAX_HEADERS`
/// in hyper's h1 role); `Limits::max_headers` defaults to the same.
const HYPER_DEFAULT_MAX_HEADERS: usize = 100;

/// HTTP/2 streams a client may open and reset before the server accepts
/// them, at once, before the connection is closed (the h2 crate's default).
const MAX_PENDING_RESETS: usize = 20;
/// HTTP/2 streams the server may reset for a client's errors, per connection.
const MAX_ERROR_RESETS: usize = 1024;

/// Why a server could not start. Each says what to fix in one line.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The directory to serve does not exist or cannot be read.
    #[error("cannot serve {}: {source}", path.display())]
    Root {
        /// The directory given.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// The object store cannot be served: a bad URL or environment, or the
    /// start-up check (one listing of the prefix) failed.
    #[error("cannot serve {store}: {reason}")]
    Store {
        /// The store URL (or the caller's description of its store).
        store: String,
        /// Why.
        reason: String,
    },
    /// An option has an invalid value.
    #[error("invalid {option}: {reason}")]
    Config {
        /// The option.
        option: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// The TLS certificate or key cannot be used.
    #[error("{0}")]
    Tls(#[from] crate::tls::TlsError),
    /// The address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// Why (in use, not local, permission).
        source: io::Error,
    },
}

/// The open-file cache holds a descriptor per entry: at most a quarter of
/// the process's soft `RLIMIT_NOFILE`, so connections and cold opens never
/// run out (read from /proc/self/limits; unknown: as asked).
fn descriptor_budget(asked: usize) -> usize {
    let soft = std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|text| {
            let line = text.lines().find(|l| l.starts_with("Max open files"))?;
            line.split_whitespace().nth(3)?.parse::<usize>().ok()
        });
    match soft {
        Some(soft) if asked > soft / 4 => {
            tracing::warn!(
                asked,
                soft_limit = soft,
                "--open-file-cache lowered to a quarter of the open-file limit"
            );
            soft / 4
        }
        _ => asked,
    }
}

/// The object store of `spec`, checked reachable: one listing of the
/// prefix must succeed (a wrong bucket, missing credentials or an
/// unreachable endpoint stop the start with one clear line).
async fn open_store(
    spec: &crate::config::StoreSpec,
    config: &Config,
) -> Result<ObjectStates, StartError> {
    use crate::config::StoreSpec;
    // one line whatever the store's error text holds
    let fail = |reason: String| StartError::Store {
        store: spec.describe(),
        reason: reason.split_whitespace().collect::<Vec<_>>().join(" "),
    };
    let origin: Arc<dyn crate::origin::Origin> = match spec {
        StoreSpec::Origin(o) => Arc::clone(o),
        #[cfg(feature = "object-store")]
        StoreSpec::Url(url) => Arc::new(
            crate::origin::store::StoreOrigin::from_url(url).map_err(|e| fail(e.to_string()))?,
        ),
        #[cfg(not(feature = "object-store"))]
        StoreSpec::Url(_) => {
            return Err(fail(
                "this build has no object storage (cargo feature object-store)".into(),
            ))
        }
    };
    let top = crate::origin::Key::from_segments::<&str>(&[]).expect("the empty key");
    origin
        .list(&top)
        .await
        .map_err(|e| fail(format!("start-up check failed: {e}")))?;
    let limits = state::Limits {
        revalidate: config.store_revalidate,
        max_entries: config.open_file_cache,
        max_bytes: config.small_file_cache,
        max_digests: config.hash_cache,
    };
    Ok(match &config.etag_cache {
        Some(path) => ObjectStates::persistent(origin, limits, path),
        None => ObjectStates::new(origin, limits),
    })
}

/// Bind `addr` with a listen backlog that holds the connections waiting for
/// a free slot (`--max-connections`): at least 1024, so that a burst of
/// clients waits in the kernel's queue instead of having its SYNs dropped
/// (tokio's default backlog is 128). The kernel caps it at `somaxconn`.
fn listen(addr: SocketAddr, max_connections: usize) -> io::Result<TcpListener> {
    let socket = match addr {
        SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    let backlog = u32::try_from(max_connections)
        .unwrap_or(u32::MAX)
        .clamp(1024, 65_535);
    socket.listen(backlog)
}

/// A bound server, not yet serving.
pub struct Server {
    listener: TcpListener,
    local_addr: SocketAddr,
    app: Arc<App>,
    tls: Option<Tls>,
}

/// A server's TLS state: what it presents and where that came from.
#[derive(Clone)]
struct Tls {
    acceptor: tokio_rustls::TlsAcceptor,
    store: Arc<CertStore>,
    source: TlsSource,
    fingerprint: String,
}

/// Reloads a server's certificate files (on SIGHUP, say): new handshakes
/// get the new certificate, connections already open keep theirs.
#[derive(Clone)]
pub struct TlsReloader {
    store: Arc<CertStore>,
    source: TlsSource,
}

impl TlsReloader {
    /// Load the files again; on error the current certificate stays.
    /// Returns the new certificate's SHA-256 fingerprint.
    pub fn reload(&self) -> Result<String, crate::tls::TlsError> {
        let loaded = crate::tls::load(&self.source)?;
        self.store.replace(loaded.key);
        Ok(loaded.fingerprint)
    }
}

impl Server {
    /// Check the root and bind the listener.
    pub async fn bind(config: Config) -> Result<Server, StartError> {
        let access = crate::fs::Access {
            hidden: config.hidden,
            follow_symlinks: config.follow_symlinks,
        };
        let backend = match &config.store {
            None => Backend::Dir(Root::with_access(&config.root, access).map_err(|source| {
                StartError::Root {
                    path: config.root.clone(),
                    source,
                }
            })?),
            Some(spec) => Backend::Store(Arc::new(open_store(spec, &config).await?)),
        };
        let cache_control =
            HeaderValue::from_str(&config.cache_control).map_err(|e| StartError::Config {
                option: "--cache-control",
                reason: e.to_string(),
            })?;
        let hashes = Arc::new(match &config.etag_cache {
            Some(path) => HashCache::persistent(path, config.hash_cache, config.settle_window),
            None => HashCache::bounded(config.hash_cache, config.settle_window),
        });
        let addr = SocketAddr::new(config.bind, config.port);
        let listener = listen(addr, config.limits.max_connections)
            .map_err(|source| StartError::Bind { addr, source })?;
        let local_addr = listener
            .local_addr()
            .map_err(|source| StartError::Bind { addr, source })?;
        let quirks = (config.quirks_mode || !config.quirks.is_empty()).then(|| {
            let mut global = QuirkSet::default();
            config.quirks.iter().for_each(|q| global.add(*q));
            QuirkMode::new(global, config.seed, config.stall_limit)
        });
        let journal = if config.journal > 0 || config.record.is_some() {
            let journal = crate::journal::Journal::new(
                config.journal,
                config.record.as_deref(),
                &config.journal_headers,
            )
            .map_err(|e| StartError::Config {
                option: "--record/--journal-header",
                reason: e.to_string(),
            })?;
            Some(Arc::new(journal))
        } else {
            None
        };
        let (open_file_cache, small_file_cache) = (
            descriptor_budget(config.open_file_cache),
            config.small_file_cache,
        );
        let app = Arc::new(App {
            backend,
            config,
            cache_control,
            hashes,
            quirks,
            files: FileStates::new(open_file_cache, small_file_cache),
            journal,
        });
        let tls = match &app.config.tls {
            Some(source) => Some(tls_state(source)?),
            None => None,
        };
        Ok(Server {
            listener,
            local_addr,
            app,
            tls,
        })
    }

    /// The address actually bound (the real port when 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// `http://ADDR:PORT/` (`https` with TLS), IPv6 addresses in brackets.
    pub fn url(&self) -> String {
        format!("{}://{}/", self.scheme(), self.local_addr)
    }

    /// `http` or `https`.
    pub fn scheme(&self) -> &'static str {
        if self.tls.is_some() {
            "https"
        } else {
            "http"
        }
    }

    /// The SHA-256 fingerprint of the certificate presented, with TLS.
    pub fn tls_fingerprint(&self) -> Option<&str> {
        self.tls.as_ref().map(|t| t.fingerprint.as_str())
    }

    /// What reloads the certificate files (TLS from files only).
    pub fn tls_reloader(&self) -> Option<TlsReloader> {
        let tls = self.tls.as_ref()?;
        matches!(tls.source, TlsSource::Files { .. }).then(|| TlsReloader {
            store: Arc::clone(&tls.store),
            source: tls.source.clone(),
        })
    }

    /// The server's content-hash cache (for statistics: hashes computed).
    pub fn hashes(&self) -> Arc<HashCache> {
        Arc::clone(&self.app.hashes)
    }

    /// Serve until `shutdown` completes, then stop accepting and wait up to
    /// the configured shutdown timeout for in-flight responses.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let grace = self.app.config.shutdown_timeout;
        let graceful = GracefulShutdown::new();
        let mut shutdown = std::pin::pin!(shutdown);
        let hashes = Arc::clone(&self.app.hashes);
        let flusher = tokio::spawn(Arc::clone(&hashes).flush_loop(Duration::from_secs(1)));
        let objects = match &self.app.backend {
            Backend::Store(objects) => Some(Arc::clone(objects)),
            Backend::Dir(_) => None,
        };
        let object_flusher = objects
            .clone()
            .map(|o| tokio::spawn(o.flush_loop(Duration::from_secs(1))));
        let prehash = match &self.app.backend {
            Backend::Dir(root) if self.app.config.prehash => Some(tokio::spawn(
                crate::prehash::run(root.clone(), Arc::clone(&hashes)),
            )),
            Backend::Store(objects) if self.app.config.prehash => {
                let (objects, hidden) = (Arc::clone(objects), self.app.config.hidden);
                Some(tokio::spawn(async move { objects.prehash(hidden).await }))
            }
            _ => None,
        };
        let limits = self.app.config.limits;
        // Beyond the cap, connections wait in the kernel's listen backlog:
        // nothing is accepted (no task, no buffer) until one ends.
        let slots = Arc::new(tokio::sync::Semaphore::new(limits.max_connections.max(1)));
        let mut accept_failing = false;
        // tells connections served by crate::h1 to close between requests
        let (stop, stopping) = tokio::sync::watch::channel(false);
        loop {
            let slot = tokio::select! {
                slot = Arc::clone(&slots).acquire_owned() => slot.expect("never closed"),
                () = &mut shutdown => break,
            };
            let (stream, peer) = tokio::select! {
                accepted = self.listener.accept() => match accepted {
                    Ok(conn) => conn,
                    Err(e) => {
                        // EMFILE and the like: back off instead of spinning,
                        // say so once per episode
                        if !accept_failing {
                            tracing::error!(error = %e, "accept failed; retrying every 100 ms");
                            accept_failing = true;
                        }
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
                () = &mut shutdown => break,
            };
            if accept_failing {
                tracing::warn!("accepting connections again");
                accept_failing = false;
            }
            let _ = stream.set_nodelay(true);
            let info = ConnInfo {
                peer,
                activity: Arc::new(Activity::default()),
            };
            let app = Arc::clone(&self.app);
            let watcher = graceful.watcher();
            let tls = self.tls.as_ref().map(|t| t.acceptor.clone());
            let stopping = stopping.clone();
            tokio::spawn(async move {
                let _slot = slot;
                let mut io = TimedIo::new(stream, limits.timeouts, Arc::clone(&info.activity));
                if let Some(acceptor) = tls {
                    // boxed: a TLS connection's state (the handshake's,
                    // rustls') would otherwise size every connection's task
                    return Box::pin(serve_tls(io, acceptor, app, info, watcher, stopping)).await;
                }
                let (protocol, prefix) = match transport::sniff(&mut io).await {
                    Ok(Some(first)) => first,
                    Ok(None) => return,
                    Err(e) => return log_end(peer, &e),
                };
                if protocol == Protocol::Http2 {
                    info.activity.set_multiplexed();
                }
                let io = Rewind::new(prefix, io);
                if let Err(e) = serve_http(io, protocol, app, info, watcher, stopping).await {
                    log_end(peer, &*e);
                }
            });
        }
        drop(self.listener);
        let _ = stop.send(true);
        if let Some(p) = prehash {
            p.abort();
        }
        if tokio::time::timeout(grace, graceful.shutdown())
            .await
            .is_err()
        {
            tracing::warn!("in-flight responses still running after {grace:?}; stopping anyway");
        }
        flusher.abort();
        let _ = tokio::task::spawn_blocking(move || hashes.flush()).await;
        if let (Some(f), Some(objects)) = (object_flusher, objects) {
            f.abort();
            let _ = tokio::task::spawn_blocking(move || objects.flush()).await;
        }
    }

    /// Serve on a background task until the handle is shut down or dropped.
    pub fn spawn(self) -> ServerHandle {
        let (tx, rx) = oneshot::channel::<()>();
        let local_addr = self.local_addr;
        let scheme = self.scheme();
        let journal = self.app.journal.clone();
        let task = tokio::spawn(self.run(async {
            let _ = rx.await;
        }));
        ServerHandle {
            local_addr,
            scheme,
            journal,
            stop: Some(tx),
            task: Some(task),
        }
    }
}

/// A server running on a background task. Dropping it stops the server.
pub struct ServerHandle {
    local_addr: SocketAddr,
    scheme: &'static str,
    journal: Option<Arc<crate::journal::Journal>>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl ServerHandle {
    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// `http://ADDR:PORT/` or `https://ADDR:PORT/`.
    pub fn url(&self) -> String {
        format!("{}://{}/", self.scheme, self.local_addr)
    }

    /// `http` or `https`.
    pub fn scheme(&self) -> &'static str {
        self.scheme
    }

    /// The requests answered so far, oldest first, as the journal holds them
    /// (its last [`ServerBuilder::journal`](crate::ServerBuilder::journal)
    /// entries; empty when it is off). A request is recorded when its
    /// response ends, so read after the client has the whole response.
    pub fn requests(&self) -> Vec<crate::journal::JournalEntry> {
        self.journal
            .as_ref()
            .map(|j| j.entries())
            .unwrap_or_default()
    }

    /// Forget the requests recorded so far.
    pub fn clear_requests(&self) {
        if let Some(j) = &self.journal {
            j.clear();
        }
    }

    /// Stop accepting, let in-flight responses finish, and wait for that.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Load (or generate) the certificate, write a generated one where asked,
/// and build the acceptor.
fn tls_state(source: &TlsSource) -> Result<Tls, StartError> {
    let loaded = crate::tls::load(source)?;
    if let (
        TlsSource::SelfSigned {
            cert_out: Some(path),
            ..
        },
        Some(pem),
    ) = (source, &loaded.generated_pem)
    {
        std::fs::write(path, pem).map_err(|e| {
            StartError::Tls(crate::tls::TlsError::Write {
                path: path.clone(),
                source: e,
            })
        })?;
    }
    let store = CertStore::new(loaded.key);
    let config = crate::tls::server_config(Arc::clone(&store))?;
    Ok(Tls {
        acceptor: tokio_rustls::TlsAcceptor::from(config),
        store,
        source: source.clone(),
        fingerprint: loaded.fingerprint,
    })
}

/// Serve a connection on the TLS port: its handshake, then HTTP as ALPN
/// chose (a plain-HTTP request there is answered 400).
async fn serve_tls(
    mut io: TimedIo<tokio::net::TcpStream>,
    acceptor: tokio_rustls::TlsAcceptor,
    app: Arc<App>,
    info: ConnInfo,
    watcher: Watcher,
    stopping: tokio::sync::watch::Receiver<bool>,
) {
    let peer = info.peer;
    let mut first = [0u8; 1];
    match io.read(&mut first).await {
        Ok(0) => return,
        Ok(_) => {}
        Err(e) => return log_end(peer, &e),
    }
    if transport::is_plain_http_on_tls(first[0]) {
        tracing::info!(%peer, "plain HTTP on the TLS port; answered 400");
        return plain_on_tls(io).await;
    }
    let io = Rewind::new(Bytes::copy_from_slice(&first), io);
    let stream = match acceptor.accept(io).await {
        Ok(s) => s,
        Err(e) => {
            // a plain-HTTP client, a scanner, an untrusting client
            return tracing::info!(%peer, error = %e, "TLS handshake failed");
        }
    };
    let protocol = match stream.get_ref().1.alpn_protocol() {
        Some(b"h2") => Protocol::Http2,
        _ => Protocol::Http1,
    };
    if protocol == Protocol::Http2 {
        info.activity.set_multiplexed();
    }
    if let Err(e) = serve_http(stream, protocol, app, info, watcher, stopping).await {
        log_end(peer, &*e);
    }
}

/// Serve HTTP on a connection whose protocol is known, until it ends or a
/// graceful shutdown closes it. HTTP/1.1 starts in [`crate::h1`], which
/// hands the connection to hyper at its first request that is not plain.
async fn serve_http<I>(
    mut io: I,
    protocol: Protocol,
    app: Arc<App>,
    info: ConnInfo,
    watcher: Watcher,
    stopping: tokio::sync::watch::Receiver<bool>,
) -> Result<(), BoxError>
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    match protocol {
        // quirks bend framing (chunked, cuts, stalls): hyper's, as tested
        Protocol::Http1 if app.quirks.is_none() => {
            match crate::h1::serve(&mut io, &app, &info, stopping).await? {
                crate::h1::End::Closed => Ok(()),
                crate::h1::End::HandOff(read) => {
                    let io = Rewind::new(read, io);
                    // boxed, as below: only a connection handed over pays
                    // for hyper's state
                    Ok(Box::pin(serve_hyper(io, protocol, app, info, watcher)).await?)
                }
            }
        }
        _ => Ok(Box::pin(serve_hyper(io, protocol, app, info, watcher)).await?),
    }
}

/// Serve a connection with hyper until it ends or a graceful shutdown closes it.
async fn serve_hyper<I>(
    io: I,
    protocol: Protocol,
    app: Arc<App>,
    info: ConnInfo,
    watcher: Watcher,
) -> Result<(), hyper::Error>
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let limits = app.config.limits;
    let service = TowerToHyperService::new(service(app, info));
    let header_bytes = limits.max_header_bytes.max(MIN_HEADER_BYTES);
    match protocol {
        Protocol::Http1 => {
            let mut builder = hyper::server::conn::http1::Builder::new();
            // hyper's default is 100 on the stack; setting any value (even
            // 100) makes it fill a vector of that many slots per request
            if limits.max_headers != HYPER_DEFAULT_MAX_HEADERS {
                builder.max_headers(limits.max_headers);
            }
            let conn = builder
                .timer(TokioTimer::new())
                // TimedIo enforces the idle and header limits (hyper's timer
                // would count idle keep-alive time as header time)
                .header_read_timeout(None)
                .title_case_headers(true)
                // half_close stays off: a client's FIN means it is gone, so
                // work for it (hashing a big file) stops; one that shuts
                // down its side after a request is treated as gone too
                .max_buf_size(header_bytes)
                .max_header_size(header_bytes)
                .serve_connection(TokioIo::new(io), service);
            watcher.watch(conn).await
        }
        Protocol::Http2 => {
            let conn = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                .timer(TokioTimer::new())
                .max_concurrent_streams(limits.max_streams)
                .max_header_list_size(u32::try_from(header_bytes).unwrap_or(u32::MAX))
                // rapid reset (CVE-2023-44487): streams a client opens and
                // resets before they are served count against this
                .max_pending_accept_reset_streams(Some(MAX_PENDING_RESETS))
                .max_local_error_reset_streams(Some(MAX_ERROR_RESETS))
                // one write for the responses that are ready together
                .serve_connection(TokioIo::new(Coalesce::new(io)), service);
            watcher.watch(conn).await
        }
    }
}

/// Say how a connection ended, when that is worth a line.
fn log_end(peer: SocketAddr, e: &(dyn std::error::Error + 'static)) {
    if let Some(h) = e.downcast_ref::<hyper::Error>() {
        // hyper has answered 400 or 431 and closed: say so
        if h.is_parse() || h.is_parse_too_large() {
            return tracing::warn!(%peer, error = %h, "malformed request");
        }
        if h.is_timeout() {
            return tracing::info!(%peer, "connection timed out; closed");
        }
    }
    // TimedIo's limits surface as I/O errors
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = source {
        if let Some(io) = err.downcast_ref::<io::Error>() {
            if io.kind() == io::ErrorKind::TimedOut {
                return tracing::info!(%peer, reason = %io, "connection closed");
            }
        }
        source = err.source();
    }
    // resets, aborted bodies (already logged where they happen)
    tracing::debug!(%peer, error = %e, "connection ended with an error");
}

/// The service of one connection: the request frame of `access` module
/// (message rules, panic containment, access log) around the handler.
pub fn service(
    app: Arc<App>,
    conn: ConnInfo,
) -> impl tower::Service<
    Request<Incoming>,
    Response = Response<impl http_body::Body<Data = Bytes, Error = BoxError> + Send + 'static>,
    Error = Infallible,
    Future = impl Future + Send + 'static,
> + Clone
       + Send
       + 'static {
    tower::service_fn(move |req: Request<Incoming>| {
        let app = Arc::clone(&app);
        let conn = conn.clone();
        // boxed: hyper moves the future it is given a few times (into an
        // HTTP/2 stream's task, for one), and the handler's state machine
        // is large; a box moves as one pointer (h2load -m10 over TLS: +6 %
        // requests per server CPU-second; the copies were 4 % of the CPU)
        async move { Ok::<_, Infallible>(Box::pin(access::serve(app, &conn, req)).await) }
    })
}
