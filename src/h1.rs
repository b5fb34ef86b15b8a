//! Our own HTTP/1.1 framing for the plain request that most traffic is: a
//! `GET` or `HEAD` with a short, ordinary head. Such a request is parsed
//! here (httparse, as hyper does), served by the very same service as any
//! other ([`crate::access::serve`]), and its response written here with the
//! bytes hyper would write (title-case names, in map order, `Date` last when
//! the service set none). Skipping hyper's dispatcher, header re-encoding
//! and buffer juggling is what makes a small warm answer cheap.
//!
//! A plain request for a file already served and unchanged (or one whose
//! open and digest need no waiting) goes one step further where the
//! service's frame would add nothing but the access line
//! (no quirks, journal or CORS): [`crate::handler::express`] plans it with
//! the same rules and writes its head from bytes rendered once per file
//! version, and the access line is the frame's ([`crate::access::ExpressLine`]).
//! Such an answer is made from the cache entry before it is revalidated,
//! then waits once behind the tasks already queued, and leaves only once a
//! `stat` begun after it was made finds the entry unchanged: the answers
//! made in one turn of the scheduler share one `stat`, which vouches for
//! their heads and for the bytes they read (see [`crate::filestate`]).
//!
//! A request with `Connection: close` is plain too: its answer says
//! `Connection: close` where hyper's does, and the connection ends with it.
//! So is an HTTP/1.0 request (ApacheBench, a proxy's default upstream
//! version): answered in HTTP/1.0 as hyper answers it ([`fit`]), the
//! connection kept only if it asked `Connection: keep-alive`.
//!
//! Anything else hands the connection over to hyper for good, with the bytes
//! already read: another method, a head with a body or framing
//! headers (`Content-Length`, `Transfer-Encoding`, `Expect`, `Upgrade`), a
//! header outside [`PLAIN_HEADERS`] and [`PLAIN_PREFIXES`], a malformed or
//! oversized head (hyper answers 400 or 431 as it always has). The choice is
//! a pure function of the head ([`classify`]).

use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use axum::http::header::{CONNECTION, CONTENT_LENGTH, DATE, TRANSFER_ENCODING};
use axum::http::response::Parts;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, Request, StatusCode, Uri, Version};
use bytes::{Buf, Bytes, BytesMut};
use futures_util::FutureExt as _;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;

use crate::access::{self, ConnInfo};
use crate::body::Check;
use crate::filestate::{FileState, Ticket};
use crate::handler::{App, Express};
use crate::plan::FileMethod;

/// Most header lines a plain head may have (more: hyper's).
const MAX_PLAIN_HEADERS: usize = 24;

/// The request headers a plain head may carry besides those its answer
/// depends on ([`crate::plan::FACT_HEADERS`]), lower case: what browsers,
/// curl, wget, download clients and the reverse proxies in front of a
/// server send with a request for a file, none of which the service reads.
/// Any other header (CORS `Origin`, quirks, framing, or one not listed)
/// sends the connection to hyper, which answers it alike, only slower.
pub const PLAIN_HEADERS: &[&str] = &[
    "host",
    "user-agent",
    "accept",
    "accept-encoding",
    "accept-language",
    "cache-control",
    "pragma",
    "referer",
    // browsers
    "cookie",
    "dnt",
    "priority",
    "upgrade-insecure-requests",
    // download clients (aria2 asks for a digest; every answer carries one)
    "want-digest",
    "want-repr-digest",
    "want-content-digest",
    // reverse proxies and load balancers
    "forwarded",
    "via",
    "x-forwarded-for",
    "x-forwarded-host",
    "x-forwarded-port",
    "x-forwarded-proto",
    "x-real-ip",
    "x-request-id",
    "traceparent",
    "tracestate",
];

/// Name prefixes a plain head may carry, lower case: a browser's Fetch
/// metadata and client hints (`Sec-Fetch-Mode`, `Sec-CH-UA`...), which it
/// sends with every navigation. (`Sec-WebSocket-*` comes with `Upgrade`,
/// which is not plain.)
pub const PLAIN_PREFIXES: &[&str] = &["sec-"];

/// Whether a header line named `name` may be in a plain head (see
/// [`PLAIN_HEADERS`]; `Connection` only as `keep-alive`, which HTTP/1.1
/// means anyway, or `close`, which [`serve`] honours as hyper does).
fn plain_line(name: &str, value: &[u8]) -> bool {
    // lengths first: most names are told apart without a byte compared
    let known = |n: &&str| n.len() == name.len() && name.eq_ignore_ascii_case(n);
    PLAIN_HEADERS.iter().any(known)
        || crate::plan::FACT_HEADERS.iter().any(known)
        || PLAIN_PREFIXES.iter().any(|p| {
            name.get(..p.len())
                .is_some_and(|n| n.eq_ignore_ascii_case(p))
        })
        || (name.eq_ignore_ascii_case("connection") && connection_value(value).is_some())
}

/// A `Connection` value a plain head may carry: `Some(true)` for `close`,
/// `Some(false)` for `keep-alive`, `None` for anything else (other tokens,
/// lists: hyper's).
fn connection_value(value: &[u8]) -> Option<bool> {
    if value.eq_ignore_ascii_case(b"close") {
        Some(true)
    } else if value.eq_ignore_ascii_case(b"keep-alive") {
        Some(false)
    } else {
        None
    }
}

/// Where a part of a head lies in its buffer: start and end offsets. A head
/// is far below 4 GiB; 32-bit offsets halve a [`PlainHead`], which is moved
/// by value on every request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Span(u32, u32);

impl Span {
    fn range(self) -> std::ops::Range<usize> {
        self.0 as usize..self.1 as usize
    }
}

/// A plain request head, as offsets into the buffer it was parsed from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlainHead {
    /// `GET` or `HEAD`.
    pub method: Method,
    /// The head's length in bytes, to the end of its empty line.
    pub len: usize,
    target: Span,
    lines: [(Span, Span); MAX_PLAIN_HEADERS],
    count: usize,
    /// The connection ends with this request's answer: HTTP/1.1 with
    /// `Connection: close` (RFC 9112 9.6), which the answer repeats as
    /// hyper's does, or HTTP/1.0 without `Connection: keep-alive` (9.3).
    pub close: bool,
    /// An HTTP/1.0 request: answered in HTTP/1.0, as hyper answers it.
    pub http10: bool,
}

/// What a connection's buffered bytes start with (pure).
// one per request, on the stack: boxing the large variant would cost an
// allocation per request to save a copy of a few hundred bytes
#[allow(clippy::large_enum_variant)]
#[derive(Debug, PartialEq, Eq)]
pub enum Head {
    /// A plain request head, served here.
    Plain(PlainHead),
    /// Not a whole head yet, and within the size limit: read more.
    Partial,
    /// Something hyper must handle (see the module doc).
    Other,
}

/// Classify the start of `buf` (RFC 9112 2-3 framing, parsed by httparse),
/// with at most `max_headers` header lines and `max_bytes` of head.
pub fn classify(buf: &[u8], max_headers: usize, max_bytes: usize) -> Head {
    let mut lines = [httparse::EMPTY_HEADER; MAX_PLAIN_HEADERS];
    let mut req = httparse::Request::new(&mut lines);
    let len = match req.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if buf.len() < max_bytes => return Head::Partial,
        // too big, too many lines, malformed: hyper says so
        _ => return Head::Other,
    };
    if len > max_bytes || len > u32::MAX as usize || req.headers.len() > max_headers {
        return Head::Other;
    }
    let method = match req.method {
        Some("GET") => Method::GET,
        Some("HEAD") => Method::HEAD,
        _ => return Head::Other,
    };
    // origin form only
    let Some(path) = req.path.filter(|p| p.starts_with('/')) else {
        return Head::Other;
    };
    let http10 = match req.version {
        Some(1) => false,
        Some(0) => true,
        _ => return Head::Other,
    };
    // within the head, whose length fits 32 bits (checked above)
    let span = |s: &[u8]| {
        let at = s.as_ptr() as usize - buf.as_ptr() as usize;
        Span(at as u32, (at + s.len()) as u32)
    };
    let mut head = PlainHead {
        method,
        len,
        target: span(path.as_bytes()),
        lines: [(Span::default(), Span::default()); MAX_PLAIN_HEADERS],
        count: req.headers.len(),
        close: false,
        http10,
    };
    let mut keep_alive = false;
    for (slot, h) in head.lines.iter_mut().zip(req.headers.iter()) {
        if !plain_line(h.name, h.value) {
            return Head::Other;
        }
        if h.name.eq_ignore_ascii_case("connection") {
            match connection_value(h.value) {
                Some(true) => head.close = true,
                _ => keep_alive = true,
            }
        }
        *slot = (span(h.name.as_bytes()), span(h.value));
    }
    // HTTP/1.0 closes unless asked not to (RFC 9112 9.3)
    head.close |= http10 && !keep_alive;
    Head::Plain(head)
}

/// The request of a plain head, sharing the bytes of `head` (the buffer it
/// was classified from, cut to its length). `None` if the target or a
/// header is not one `http` accepts (then hyper answers it instead).
fn request(head: &Bytes, plain: &PlainHead) -> Option<Request<()>> {
    let uri = Uri::from_maybe_shared(head.slice(plain.target.range())).ok()?;
    let mut headers = HeaderMap::with_capacity(plain.count);
    for (name, value) in &plain.lines[..plain.count] {
        let name = HeaderName::from_bytes(&head[name.range()]).ok()?;
        let value = HeaderValue::from_maybe_shared(head.slice(value.range())).ok()?;
        headers.append(name, value);
    }
    let mut req = Request::new(());
    *req.method_mut() = plain.method.clone();
    *req.uri_mut() = uri;
    *req.version_mut() = match plain.http10 {
        true => Version::HTTP_10,
        false => Version::HTTP_11,
    };
    *req.headers_mut() = headers;
    Some(req)
}

/// How a response's body is framed on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// Exactly this many bytes follow (0: none).
    Length(u64),
    /// Chunked transfer coding (RFC 9112 7.1).
    Chunked,
    /// Until the connection closes (RFC 9112 6.3, item 8): a body of unknown
    /// length to an HTTP/1.0 client, which knows no chunks.
    Close,
}

/// What the body says of its length, as hyper reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyLen {
    /// Already at its end.
    Empty,
    /// Exactly this long.
    Known(u64),
    /// Unknown.
    Unknown,
}

/// Write the head of a response to a `HEAD` (`head_only`) or `GET` into
/// `out`, byte for byte as hyper 1.x does with title-case headers: status
/// line, headers in map order (names title-cased), a `Content-Length` or
/// `Transfer-Encoding` where the body needs one, `Date` last if the map has
/// none. An HTTP/1.0 response (`parts.version`) says so in its status line
/// and frames a body of unknown length by closing, never by chunks. Returns
/// the body's framing and whether the connection must close after it (a
/// `Connection: close` in the map, or such a body). Pure but for `date`.
pub fn encode_head(
    parts: &Parts,
    head_only: bool,
    body: BodyLen,
    date: &HeaderValue,
    out: &mut Vec<u8>,
) -> (Framing, bool) {
    let status = parts.status;
    let http10 = parts.version == Version::HTTP_10;
    if status == StatusCode::OK && !http10 {
        out.extend_from_slice(b"HTTP/1.1 200 OK\r\n");
    } else {
        out.extend_from_slice(match http10 {
            true => b"HTTP/1.0 ",
            false => b"HTTP/1.1 ",
        });
        out.extend_from_slice(status.as_str().as_bytes());
        out.push(b' ');
        out.extend_from_slice(status.canonical_reason().unwrap_or("<none>").as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    // 1xx never comes from our service; 204 and 304 carry no length
    let may_length = !matches!(status, StatusCode::NO_CONTENT | StatusCode::NOT_MODIFIED);
    let may_body = may_length && !head_only;
    let (mut wrote_len, mut wrote_date, mut close) = (false, false, false);
    let mut wrote_connection = false;
    let mut framing = Framing::Length(0);
    for (name, value) in parts.headers.iter() {
        if name == CONTENT_LENGTH {
            match body {
                // hyper drops it and says `Content-Length: 0` at the end
                BodyLen::Empty if !head_only => continue,
                BodyLen::Known(n) => framing = Framing::Length(n),
                BodyLen::Unknown => {
                    let n = std::str::from_utf8(value.as_bytes())
                        .ok()
                        .and_then(|s| s.parse().ok())
                        .unwrap_or(0);
                    framing = Framing::Length(n);
                }
                BodyLen::Empty => {}
            }
            if wrote_len {
                continue;
            }
            wrote_len = true;
        } else if name == TRANSFER_ENCODING {
            if !may_body || http10 {
                continue;
            }
            wrote_len = true;
            framing = Framing::Chunked;
        } else if name == CONNECTION {
            close |= lists(value, b"close");
            // one line, values joined, as hyper writes it (a map yields a
            // name's values one after another, so the line is the last)
            if wrote_connection {
                out.truncate(out.len() - 2);
                out.extend_from_slice(b", ");
                out.extend_from_slice(value.as_bytes());
                out.extend_from_slice(b"\r\n");
                continue;
            }
            wrote_connection = true;
        } else if name == DATE {
            wrote_date = true;
        }
        title_case(out, name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if !wrote_len {
        match body {
            BodyLen::Unknown if may_body && http10 => {
                framing = Framing::Close;
                close = true;
            }
            BodyLen::Unknown if may_body => {
                out.extend_from_slice(b"Transfer-Encoding: chunked\r\n");
                framing = Framing::Chunked;
            }
            BodyLen::Unknown => framing = Framing::Length(0),
            BodyLen::Empty | BodyLen::Known(0) => {
                if may_length && !head_only {
                    out.extend_from_slice(b"Content-Length: 0\r\n");
                }
                framing = Framing::Length(0);
            }
            BodyLen::Known(n) => {
                if may_length {
                    out.extend_from_slice(b"Content-Length: ");
                    out.extend_from_slice(n.to_string().as_bytes());
                    out.extend_from_slice(b"\r\n");
                    framing = Framing::Length(n);
                }
            }
        }
    }
    if !may_body {
        framing = Framing::Length(0);
    }
    if !wrote_date {
        out.extend_from_slice(b"Date: ");
        out.extend_from_slice(date.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    (framing, close)
}

/// `content-length` as `Content-Length`: each letter after a dash (or at the
/// start) upper case, as hyper's `title_case_headers` writes names.
pub(crate) fn title_case(out: &mut Vec<u8>, name: &[u8]) {
    let start = out.len();
    out.extend_from_slice(name);
    let mut prev = b'-';
    for c in &mut out[start..] {
        if prev == b'-' {
            c.make_ascii_uppercase();
        }
        prev = *c;
    }
}

/// How serving a connection here ended.
pub enum End {
    /// The connection is done (closed by either side, or after an error).
    Closed,
    /// The connection goes to hyper, these bytes (already read) first.
    HandOff(Bytes),
}

/// Most bytes gathered from body frames at hand before they are written:
/// a small answer (head, a multipart body's many frames) leaves in one
/// write, as hyper's buffered writes do.
const GATHER_MAX: usize = 64 * 1024;

/// Serve plain requests on `io` until one is not plain (then hand over),
/// the connection ends, or the server shuts down (between requests).
pub async fn serve<I>(
    io: &mut I,
    app: &Arc<App>,
    conn: &ConnInfo,
    shutdown: watch::Receiver<bool>,
) -> io::Result<End>
where
    I: AsyncRead + AsyncWrite + Unpin,
{
    let limits = app.config.limits;
    let max_bytes = limits.max_header_bytes.max(crate::server::MIN_HEADER_BYTES);
    let mut buf = BytesMut::with_capacity(4096);
    let mut out = Vec::with_capacity(1024);
    let express_on = express_allowed(app);
    let logging = access::logging();
    // One wait for a shutdown for the whole connection, rather than one made
    // and dropped on every read; it sees any change since its receiver's
    // last look, and `borrow` below sees one from before it was made.
    let mut watching = shutdown.clone();
    let stopped = watching.changed();
    tokio::pin!(stopped);
    loop {
        let plain = loop {
            if !buf.is_empty() {
                match classify(&buf, limits.max_headers, max_bytes) {
                    Head::Plain(plain) => break plain,
                    Head::Partial => {}
                    Head::Other => return Ok(End::HandOff(buf.freeze())),
                }
            }
            if *shutdown.borrow() {
                return Ok(End::Closed);
            }
            if buf.capacity() - buf.len() < 1024 {
                buf.reserve(4096);
            }
            let n = tokio::select! {
                biased;
                n = io.read_buf(&mut buf) => n?,
                _ = &mut stopped => return Ok(End::Closed),
            };
            if n == 0 {
                return Ok(End::Closed);
            }
        };
        let head_only = plain.method == Method::HEAD;
        if express_on {
            let _in_flight = conn.activity.start();
            let start = logging.then(Instant::now);
            out.clear();
            let mut unconfirmed = None;
            let answer = express(app, &plain, &buf[..plain.len], &mut unconfirmed, &mut out);
            // the access line, as the frame writes it (none for a declined head)
            let line = |status| {
                let start = start?;
                let head = &buf[..plain.len];
                let target = std::str::from_utf8(&head[plain.target.range()]).ok()?;
                let range = plain.lines[..plain.count]
                    .iter()
                    .find(|(name, _)| head[name.range()].eq_ignore_ascii_case(b"range"))
                    .map(|(_, value)| &head[value.range()]);
                let method = (&plain.method, target, range);
                access::ExpressLine::new(app, conn, start, method, status)
            };
            // An answer made from an entry not revalidated yet (its bytes
            // read too, when at hand) leaves only once a `stat` begun after
            // it was made vouches for the entry: the answers made in this
            // turn wait behind each other and share the first one's.
            let confirmed = |made| match &unconfirmed {
                Some(state) => {
                    let key = || target_path(&buf[plain.target.range()]);
                    app.files.confirm(key, state, made)
                }
                None => true,
            };
            match answer {
                Express::Declined => out.clear(),
                Express::Written(status, mut body) => {
                    fit_head(&mut out, &plain);
                    let len = body.as_ref().map_or(0, |b| b.len());
                    // a body at hand goes in the head's write, copied once;
                    // the confirmation below checks its reads
                    let check = match unconfirmed {
                        Some(_) => Check::Later,
                        None => Check::Now,
                    };
                    let gathered = match body.as_mut().and_then(|b| b.gather_into(&mut out, check))
                    {
                        Some(Err(e)) => {
                            // the file changed since its head was made (or
                            // a read failed): nothing is sent yet, so the
                            // full service answers, from a fresh look at
                            // the path
                            tracing::debug!(error = %e, "fast-path body not at hand; answering afresh");
                            None
                        }
                        Some(Ok(())) => Some(true),
                        None => Some(false),
                    };
                    let made = Ticket::draw();
                    answers_leave_together().await;
                    match gathered.filter(|_| confirmed(made)) {
                        None => out.clear(),
                        Some(gathered) => {
                            let mut line = line(status);
                            buf.advance(plain.len);
                            let (written, given) = match (&mut body, gathered) {
                                (_, true) => (write_head(io, &out).await, len),
                                (Some(body), false) => {
                                    match write_body(io, &mut out, body, Framing::Length(len)).await
                                    {
                                        Ok(w) => (Ok(w.whole), w.given),
                                        Err(e) => (Err(e), 0),
                                    }
                                }
                                (None, false) => (write_head(io, &out).await, 0),
                            };
                            if let Some(line) = &mut line {
                                line.sent = given;
                                line.done = matches!(written, Ok(true));
                            }
                            if !written? {
                                return Ok(End::Closed);
                            }
                            if plain.close {
                                let _ = io.shutdown().await;
                                return Ok(End::Closed);
                            }
                            continue;
                        }
                    }
                }
                Express::Response(res) => {
                    let made = Ticket::draw();
                    answers_leave_together().await;
                    if confirmed(made) {
                        let mut line = line(res.status());
                        buf.advance(plain.len);
                        let (mut parts, body) = res.into_parts();
                        fit(&mut parts, &plain);
                        let len = match head_only {
                            true => 0,
                            false => http_body::Body::size_hint(&body).exact().unwrap_or(0),
                        };
                        let sent = send(io, &mut out, &parts, body, head_only, plain.close).await;
                        if let Some(line) = &mut line {
                            (line.done, line.sent) = match &sent {
                                Ok(Sent::KeepOpen | Sent::Close) => (true, len),
                                Ok(Sent::Broken(given)) => (false, *given),
                                Err(_) => (false, 0),
                            };
                        }
                        match sent? {
                            Sent::KeepOpen => continue,
                            Sent::Close | Sent::Broken(_) => return Ok(End::Closed),
                        }
                    }
                }
            }
        }
        let head = buf.split_to(plain.len).freeze();
        let Some(req) = request(&head, &plain) else {
            // `http` refuses what httparse took: hyper answers it
            let mut rest = BytesMut::from(&head[..]);
            rest.extend_from_slice(&buf);
            return Ok(End::HandOff(rest.freeze()));
        };
        drop(head);
        // Watch the socket while the answer is made: a client that leaves
        // cancels it (hashing a big file stops), as it does under hyper. A
        // pipelined next request is kept for later.
        // boxed: the service's state would otherwise size every
        // connection's task, most of whose requests never need it
        let mut serving = Box::pin(access::serve(Arc::clone(app), conn, req));
        let res = loop {
            if buf.capacity() - buf.len() < 1024 {
                buf.reserve(4096);
            }
            tokio::select! {
                biased;
                res = &mut serving => break res,
                n = io.read_buf(&mut buf), if buf.len() < max_bytes => match n {
                    Ok(0) | Err(_) => return Ok(End::Closed),
                    Ok(_) => {}
                },
            }
        };
        let (mut parts, body) = res.into_parts();
        fit(&mut parts, &plain);
        match send(io, &mut out, &parts, body, head_only, plain.close).await? {
            Sent::KeepOpen => {}
            Sent::Close | Sent::Broken(_) => return Ok(End::Closed),
        }
    }
}

/// Whether a `Connection` value lists `option` (RFC 9110 7.6.1).
fn lists(value: &HeaderValue, option: &[u8]) -> bool {
    value
        .as_bytes()
        .split(|b| *b == b',')
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(option))
}

/// The `Connection` option hyper adds to the answer to `plain`, if any:
/// `keep-alive` to HTTP/1.0 that asked for it, `close` to HTTP/1.1 that
/// asked to close.
fn connection_option(plain: &PlainHead) -> Option<&'static str> {
    match (plain.http10, plain.close) {
        (true, false) => Some("keep-alive"),
        (false, true) => Some("close"),
        _ => None,
    }
}

/// An answer fitted to its request as hyper fits it (its `enforce_version`
/// and `fix_keep_alive`): to HTTP/1.0, an HTTP/1.0 answer, with
/// `keep-alive` joined to its `Connection` values if the client asked to
/// keep the connection and none says so; to HTTP/1.1 that asked to close,
/// `close` joined unless one says it already. [`send`] writes it.
fn fit(parts: &mut Parts, plain: &PlainHead) {
    if let Some(option) = connection_option(plain) {
        let said = parts.headers.get_all(CONNECTION).iter();
        if !said.into_iter().any(|v| lists(v, option.as_bytes())) {
            parts
                .headers
                .append(CONNECTION, HeaderValue::from_static(option));
        }
    }
    if plain.http10 {
        parts.version = Version::HTTP_10;
    }
}

/// [`fit`] for a head [`crate::handler::express`] wrote: a file's head,
/// which has no `Connection` line. hyper's goes after the map's last
/// header: before the blank line, or before the `Content-Length: 0` that
/// [`encode_head`] adds after the map for an empty body to a `GET`.
fn fit_head(out: &mut Vec<u8>, plain: &PlainHead) {
    if plain.http10 {
        debug_assert!(out.starts_with(b"HTTP/1.1 "));
        out[7] = b'0';
    }
    if let Some(option) = connection_option(plain) {
        debug_assert!(out.ends_with(b"\r\n\r\n"));
        // what follows the map's last header: the blank line, after the
        // added length if there is one
        const ADDED: &[u8] = b"Content-Length: 0\r\n\r\n";
        let added = plain.method == Method::GET && out.ends_with(ADDED);
        let tail = out.split_off(out.len() - if added { ADDED.len() } else { 2 });
        out.extend_from_slice(b"Connection: ");
        out.extend_from_slice(option.as_bytes());
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&tail);
    }
}

/// Whether [`crate::handler::express`] may answer this server's requests:
/// only where the request frame adds nothing but the access line, which the
/// fast path writes itself (no quirks, journal or CORS; a directory, not a
/// store).
fn express_allowed(app: &App) -> bool {
    app.quirks.is_none()
        && app.journal.is_none()
        && matches!(app.config.cors, crate::cors::Cors::Off)
        && matches!(app.backend, crate::handler::Backend::Dir(_))
}

/// Wait, before writing an answer that is made, until the other tasks
/// ready on this worker have run once (at once when there are none): the
/// answers made in one turn of the scheduler then leave one after another.
/// Each write that finds its client asleep pays for waking it (on a VM, an
/// inter-processor interrupt through the hypervisor: 3 µs of a 4 KiB miss in
/// S7, a third of that in S2); answers written back to back wake it once.
/// Under load the wait is a reordering within the turn, not an added delay
/// (S7's latency percentiles are unchanged or lower, `bench/HISTORY.md`).
async fn answers_leave_together() {
    crate::filestate::behind_the_ready_tasks().await
}

/// Write a head that has no body after it, or a whole answer.
async fn write_head<I: AsyncWrite + Unpin>(io: &mut I, out: &[u8]) -> io::Result<bool> {
    io.write_all(out).await?;
    io.flush().await?;
    Ok(true)
}

/// The path part of a request target, as [`crate::handler::express`] keys
/// the file-state cache with it (the path `PathAndQuery` reads: up to a
/// query or fragment). Only for the key of an entry `express` found, which
/// a target that is not UTF-8 never reaches (it gives "").
fn target_path(target: &[u8]) -> &str {
    let path = target
        .split(|&b| b == b'?' || b == b'#')
        .next()
        .unwrap_or_default();
    std::str::from_utf8(path).unwrap_or_default()
}

/// [`crate::handler::express`] for a plain head (`head`: its bytes).
fn express(
    app: &App,
    plain: &PlainHead,
    head: &[u8],
    unconfirmed: &mut Option<Arc<FileState>>,
    out: &mut Vec<u8>,
) -> Express {
    let Ok(target) = std::str::from_utf8(&head[plain.target.range()]) else {
        return Express::Declined;
    };
    let method = match plain.method {
        Method::HEAD => FileMethod::Head,
        _ => FileMethod::Get,
    };
    let lines = plain.lines[..plain.count]
        .iter()
        .map(|(name, value)| (&head[name.range()], &head[value.range()]));
    // a panic is answered by the full service, which contains it
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        crate::handler::express(app, method, target, !plain.http10, lines, unconfirmed, out)
    }))
    .unwrap_or(Express::Declined)
}

/// What is left of a connection after a response.
enum Sent {
    KeepOpen,
    Close,
    /// The body failed or broke its length after giving this many bytes:
    /// the connection closes.
    Broken(u64),
}

/// What became of a body that [`write_body`] wrote.
struct Delivered {
    /// Bytes the body gave.
    given: u64,
    /// It ended as its framing said.
    whole: bool,
}

/// Frame and write a response to a `GET` or `HEAD` (`head_only`); close the
/// connection after it if the response says so or it is the `last` one.
async fn send<I, B>(
    io: &mut I,
    out: &mut Vec<u8>,
    parts: &Parts,
    mut body: B,
    head_only: bool,
    last: bool,
) -> io::Result<Sent>
where
    I: AsyncWrite + Unpin,
    B: http_body::Body<Data = Bytes> + Unpin,
{
    let len = match body.is_end_stream() {
        true => BodyLen::Empty,
        false => match body.size_hint().exact() {
            Some(n) => BodyLen::Known(n),
            None => BodyLen::Unknown,
        },
    };
    out.clear();
    let date = crate::render::date_value(std::time::SystemTime::now());
    let (framing, close) = encode_head(parts, head_only, len, &date, out);
    let written = write_body(io, out, &mut body, framing).await?;
    if !written.whole {
        // the body failed or broke its length: never send more after it
        return Ok(Sent::Broken(written.given));
    }
    drop(body);
    if close || last {
        let _ = io.shutdown().await;
        return Ok(Sent::Close);
    }
    Ok(Sent::KeepOpen)
}

/// The body's next frame.
async fn next<B>(body: &mut B) -> Option<Result<http_body::Frame<Bytes>, B::Error>>
where
    B: http_body::Body<Data = Bytes> + Unpin,
{
    poll_fn(|cx| Pin::new(&mut *body).poll_frame(cx)).await
}

/// Write the head in `out` and the body as `framing` says, gathering the
/// frames that are at hand into one write. Not `whole`: the body failed or
/// did not match its length; the connection must close.
async fn write_body<I, B>(
    io: &mut I,
    out: &mut Vec<u8>,
    body: &mut B,
    framing: Framing,
) -> io::Result<Delivered>
where
    I: AsyncWrite + Unpin,
    B: http_body::Body<Data = Bytes> + Unpin,
{
    let (want, chunked) = match framing {
        Framing::Length(n) => (n, false),
        Framing::Chunked => (u64::MAX, true),
        Framing::Close => (u64::MAX, false),
    };
    let mut sent = 0u64;
    if want > 0 {
        loop {
            let frame = match next(body).now_or_never() {
                Some(frame) => frame,
                None => {
                    // not at hand: what is gathered goes now
                    if !out.is_empty() {
                        io.write_all(out).await?;
                        out.clear();
                    }
                    next(body).await
                }
            };
            let data = match frame {
                None => break,
                Some(Err(_)) => {
                    return Ok(Delivered {
                        given: sent,
                        whole: false,
                    })
                }
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) if !data.is_empty() => data,
                    _ => continue,
                },
            };
            if sent + data.len() as u64 > want {
                return Ok(Delivered {
                    given: sent,
                    whole: false,
                });
            }
            sent += data.len() as u64;
            if chunked {
                out.extend_from_slice(format!("{:X}\r\n", data.len()).as_bytes());
            }
            if out.len() + data.len() <= GATHER_MAX {
                out.extend_from_slice(&data);
            } else {
                if !out.is_empty() {
                    io.write_all(out).await?;
                    out.clear();
                }
                io.write_all(&data).await?;
            }
            if chunked {
                out.extend_from_slice(b"\r\n");
            }
        }
    }
    if chunked {
        out.extend_from_slice(b"0\r\n\r\n");
    }
    if !out.is_empty() {
        io.write_all(out).await?;
        out.clear();
    }
    io.flush().await?;
    Ok(Delivered {
        given: sent,
        whole: !matches!(framing, Framing::Length(_)) || sent == want,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The key an answer is confirmed under is the one `express` found its
    /// entry under: the path `PathAndQuery` reads from the target.
    #[test]
    fn target_path_is_the_path_the_service_reads() {
        for target in [
            "/a",
            "/a?b=1",
            "/a?",
            "/a#frag",
            "/a?b#c",
            "/%20x/y.txt",
            "/a/?q#f",
        ] {
            let pq = axum::http::uri::PathAndQuery::try_from(target).unwrap();
            assert_eq!(target_path(target.as_bytes()), pq.path(), "{target}");
        }
    }
    use std::task::{Context, Poll};

    /// A body that claims `len` bytes and gives `frames`, then perhaps fails.
    struct Frames {
        len: u64,
        frames: Vec<Result<&'static [u8], ()>>,
    }

    impl http_body::Body for Frames {
        type Data = Bytes;
        type Error = io::Error;
        fn poll_frame(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<http_body::Frame<Bytes>, io::Error>>> {
            if self.frames.is_empty() {
                return Poll::Ready(None);
            }
            Poll::Ready(Some(match self.frames.remove(0) {
                Ok(b) => Ok(http_body::Frame::data(Bytes::from_static(b))),
                Err(()) => Err(io::Error::other("the file changed")),
            }))
        }
        fn size_hint(&self) -> http_body::SizeHint {
            http_body::SizeHint::with_exact(self.len)
        }
    }

    fn outcome(body: Frames) -> (Sent, Vec<u8>) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let (parts, ()) = axum::http::Response::new(()).into_parts();
        let mut wire = Vec::new();
        let sent = rt
            .block_on(send(&mut wire, &mut Vec::new(), &parts, body, false, false))
            .unwrap();
        (sent, wire)
    }

    /// Which header lines keep a head plain: those the answer does not
    /// depend on, and none that frames the message (RFC 9112 6, 9.6) or
    /// that only the full frame reads (CORS, quirks).
    #[test]
    fn plain_lines_table() {
        #[rustfmt::skip]
        let rows: &[(&str, &str, bool)] = &[
            ("Host", "a", true),
            ("user-agent", "curl/8", true),
            ("Range", "bytes=0-0", true),
            ("If-None-Match", "\"x\"", true),
            ("Cookie", "a=b", true),
            ("Sec-Fetch-Mode", "navigate", true),
            ("sec-ch-ua", "\"Chromium\";v=\"131\"", true),
            ("SEC-GPC", "1", true),
            ("Upgrade-Insecure-Requests", "1", true),
            ("Priority", "u=0, i", true),
            ("Want-Digest", "SHA-256;q=1", true),
            ("X-Forwarded-For", "203.0.113.7", true),
            ("x-real-ip", "203.0.113.7", true),
            ("Via", "1.1 proxy", true),
            ("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", true),
            ("Connection", "keep-alive", true),
            ("Connection", "Keep-Alive", true),
            ("Connection", "close", true),
            ("Connection", "Close", true),
            // framing and other connection management: hyper's
            ("Connection", "close, keep-alive", false),
            ("Connection", "keep-alive, Upgrade", false),
            ("Connection", "Upgrade", false),
            ("Upgrade", "websocket", false),
            ("Content-Length", "0", false),
            ("Transfer-Encoding", "chunked", false),
            ("Expect", "100-continue", false),
            ("TE", "trailers", false),
            // read by the full frame only
            ("Origin", "http://a", false),
            (crate::quirks::transform::RANGESERVE_QUIRKS.as_str(), "no-etag", false),
            // anything else
            ("X-Not-Plain", "1", false),
            ("se", "1", false),
            ("sec", "1", false),
            ("X-Forwarded", "1", false),
        ];
        for &(name, value, plain) in rows {
            assert_eq!(plain_line(name, value.as_bytes()), plain, "{name}: {value}");
        }
    }

    /// When the connection ends with a request's answer (RFC 9112 9.3, 9.6).
    #[test]
    fn which_requests_close_the_connection() {
        #[rustfmt::skip]
        let rows: &[(&str, &str, bool, bool)] = &[
            // version, Connection lines, HTTP/1.0, close
            ("1.1", "", false, false),
            ("1.1", "Connection: keep-alive\r\n", false, false),
            ("1.1", "Connection: close\r\n", false, true),
            ("1.1", "Connection: keep-alive\r\nConnection: close\r\n", false, true),
            ("1.0", "", true, true),
            ("1.0", "Connection: Keep-Alive\r\n", true, false),
            ("1.0", "Connection: close\r\n", true, true),
            ("1.0", "Connection: keep-alive\r\nConnection: close\r\n", true, true),
        ];
        for &(version, lines, http10, close) in rows {
            let head = format!("GET / HTTP/{version}\r\nHost: a\r\n{lines}\r\n");
            match classify(head.as_bytes(), 100, 8192) {
                Head::Plain(p) => assert_eq!((p.http10, p.close), (http10, close), "{head:?}"),
                other => panic!("{head:?}: {other:?}"),
            }
        }
        assert_eq!(classify(b"GET / HTTP/2.0\r\n\r\n", 100, 8192), Head::Other);
    }

    /// Heads as hyper 1.12 writes them (`proto/h1/role.rs`): an HTTP/1.0
    /// answer's status line, a body of unknown length framed by closing for
    /// HTTP/1.0 (which knows no chunks) and chunked for HTTP/1.1, a
    /// `Connection` header's values on one line.
    #[test]
    fn encode_head_table() {
        let date = HeaderValue::from_static("D");
        let head = |version, status: u16, headers: &[(&str, &str)], body| {
            let mut parts = axum::http::Response::new(()).into_parts().0;
            parts.version = version;
            parts.status = StatusCode::from_u16(status).unwrap();
            for (n, v) in headers {
                let name = HeaderName::from_bytes(n.as_bytes()).unwrap();
                parts
                    .headers
                    .append(name, HeaderValue::from_str(v).unwrap());
            }
            let mut out = Vec::new();
            let (framing, close) = encode_head(&parts, false, body, &date, &mut out);
            (String::from_utf8(out).unwrap(), framing, close)
        };
        let (h10, h11) = (Version::HTTP_10, Version::HTTP_11);
        #[rustfmt::skip]
        type Encoded = (String, Framing, bool);
        let rows: Vec<(Encoded, (&str, Framing, bool))> = vec![
            (head(h11, 200, &[], BodyLen::Known(3)),
             ("HTTP/1.1 200 OK\r\nContent-Length: 3\r\nDate: D\r\n\r\n", Framing::Length(3), false)),
            (head(h10, 200, &[], BodyLen::Known(3)),
             ("HTTP/1.0 200 OK\r\nContent-Length: 3\r\nDate: D\r\n\r\n", Framing::Length(3), false)),
            (head(h10, 206, &[], BodyLen::Known(3)),
             ("HTTP/1.0 206 Partial Content\r\nContent-Length: 3\r\nDate: D\r\n\r\n", Framing::Length(3), false)),
            (head(h11, 200, &[], BodyLen::Unknown),
             ("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nDate: D\r\n\r\n", Framing::Chunked, false)),
            (head(h10, 200, &[], BodyLen::Unknown),
             ("HTTP/1.0 200 OK\r\nDate: D\r\n\r\n", Framing::Close, true)),
            (head(h10, 200, &[("transfer-encoding", "chunked")], BodyLen::Unknown),
             ("HTTP/1.0 200 OK\r\nDate: D\r\n\r\n", Framing::Close, true)),
            (head(h11, 400, &[("connection", "close"), ("connection", "keep-alive")], BodyLen::Known(1)),
             ("HTTP/1.1 400 Bad Request\r\nConnection: close, keep-alive\r\nContent-Length: 1\r\nDate: D\r\n\r\n", Framing::Length(1), true)),
            (head(h11, 200, &[("connection", "keep-alive"), ("date", "E")], BodyLen::Known(0)),
             ("HTTP/1.1 200 OK\r\nConnection: keep-alive\r\nDate: E\r\nContent-Length: 0\r\n\r\n", Framing::Length(0), false)),
        ];
        for (got, (text, framing, close)) in rows {
            assert_eq!(got, (text.to_string(), framing, close));
        }
    }

    #[test]
    fn a_body_that_breaks_is_reported_with_the_bytes_it_gave() {
        // whole: the connection stays open
        let (sent, wire) = outcome(Frames {
            len: 6,
            frames: vec![Ok(b"abc"), Ok(b"def")],
        });
        assert!(matches!(sent, Sent::KeepOpen));
        assert!(wire.ends_with(b"\r\n\r\nabcdef"));
        // failing after 3 of 6 bytes: broken, and nothing after the failure
        let (sent, wire) = outcome(Frames {
            len: 6,
            frames: vec![Ok(b"abc"), Err(()), Ok(b"def")],
        });
        assert!(matches!(sent, Sent::Broken(3)));
        assert!(!wire.ends_with(b"def"));
        // ending short of its length, or going past it: broken too
        let (sent, _) = outcome(Frames {
            len: 6,
            frames: vec![Ok(b"abc")],
        });
        assert!(matches!(sent, Sent::Broken(3)));
        let (sent, wire) = outcome(Frames {
            len: 4,
            frames: vec![Ok(b"abc"), Ok(b"def")],
        });
        assert!(matches!(sent, Sent::Broken(3)));
        assert!(!wire.ends_with(b"def"));
    }
}
