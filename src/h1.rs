//! Our own HTTP/1.1 framing for the plain request that most traffic is: a
//! `GET` or `HEAD` with a short, ordinary head. Such a request is parsed
//! here (httparse, as hyper does), served by the very same service as any
//! other ([`crate::access::serve`]), and its response written here with the
//! bytes hyper would write (title-case names, in map order, `Date` last when
//! the service set none). Skipping hyper's dispatcher, header re-encoding
//! and buffer juggling is what makes a small warm answer cheap.
//!
//! Anything else hands the connection over to hyper for good, with the bytes
//! already read: another method, HTTP/1.0, a head with a body or framing
//! headers (`Content-Length`, `Transfer-Encoding`, `Expect`, `Upgrade`), a
//! header outside [`PLAIN_HEADERS`], a malformed or oversized head (hyper
//! answers 400 or 431 as it always has). The choice is a pure function of
//! the head ([`classify`]).

use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::sync::Arc;

use axum::http::header::{CONNECTION, CONTENT_LENGTH, DATE, TRANSFER_ENCODING};
use axum::http::response::Parts;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, Request, StatusCode, Uri, Version};
use bytes::{Bytes, BytesMut};
use futures_util::FutureExt as _;
use http_body::Body as _;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;

use crate::access::{self, ConnInfo};
use crate::handler::App;

/// Most header lines a plain head may have (more: hyper's).
const MAX_PLAIN_HEADERS: usize = 24;

/// The request headers a plain head may carry, lower case: what browsers,
/// curl, wget and download clients send for a file. Any other header (CORS
/// `Origin`, quirks, framing) sends the connection to hyper.
pub const PLAIN_HEADERS: &[&str] = &[
    "host",
    "user-agent",
    "accept",
    "accept-encoding",
    "accept-language",
    "range",
    "if-range",
    "if-match",
    "if-none-match",
    "if-modified-since",
    "if-unmodified-since",
    "cache-control",
    "pragma",
    "referer",
];

/// Where a part of a head lies in its buffer: start and end offsets.
type Span = (usize, usize);

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
    if len > max_bytes || req.headers.len() > max_headers {
        return Head::Other;
    }
    let method = match req.method {
        Some("GET") => Method::GET,
        Some("HEAD") => Method::HEAD,
        _ => return Head::Other,
    };
    // HTTP/1.1 only (1.0 has its own keep-alive rules); origin form only
    let Some(path) = req.path.filter(|p| p.starts_with('/')) else {
        return Head::Other;
    };
    if req.version != Some(1) {
        return Head::Other;
    }
    let span = |s: &[u8]| {
        let at = s.as_ptr() as usize - buf.as_ptr() as usize;
        (at, at + s.len())
    };
    let mut head = PlainHead {
        method,
        len,
        target: span(path.as_bytes()),
        lines: [((0, 0), (0, 0)); MAX_PLAIN_HEADERS],
        count: req.headers.len(),
    };
    for (slot, h) in head.lines.iter_mut().zip(req.headers.iter()) {
        let plain = PLAIN_HEADERS.iter().any(|n| h.name.eq_ignore_ascii_case(n))
            // what HTTP/1.1 means anyway
            || (h.name.eq_ignore_ascii_case("connection")
                && h.value.eq_ignore_ascii_case(b"keep-alive"));
        if !plain {
            return Head::Other;
        }
        *slot = (span(h.name.as_bytes()), span(h.value));
    }
    Head::Plain(head)
}

/// The request of a plain head, sharing the bytes of `head` (the buffer it
/// was classified from, cut to its length). `None` if the target or a
/// header is not one `http` accepts (then hyper answers it instead).
fn request(head: &Bytes, plain: &PlainHead) -> Option<Request<()>> {
    let (at, end) = plain.target;
    let uri = Uri::from_maybe_shared(head.slice(at..end)).ok()?;
    let mut headers = HeaderMap::with_capacity(plain.count);
    for ((n0, n1), (v0, v1)) in &plain.lines[..plain.count] {
        let name = HeaderName::from_bytes(&head[*n0..*n1]).ok()?;
        let value = HeaderValue::from_maybe_shared(head.slice(*v0..*v1)).ok()?;
        headers.append(name, value);
    }
    let mut req = Request::new(());
    *req.method_mut() = plain.method.clone();
    *req.uri_mut() = uri;
    *req.version_mut() = Version::HTTP_11;
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
/// none. Returns the body's framing and whether the connection must close
/// after it (a `Connection: close` in the map). Pure but for `date`.
pub fn encode_head(
    parts: &Parts,
    head_only: bool,
    body: BodyLen,
    date: &HeaderValue,
    out: &mut Vec<u8>,
) -> (Framing, bool) {
    let status = parts.status;
    if status == StatusCode::OK {
        out.extend_from_slice(b"HTTP/1.1 200 OK\r\n");
    } else {
        out.extend_from_slice(b"HTTP/1.1 ");
        out.extend_from_slice(status.as_str().as_bytes());
        out.push(b' ');
        out.extend_from_slice(status.canonical_reason().unwrap_or("<none>").as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    // 1xx never comes from our service; 204 and 304 carry no length
    let may_length = !matches!(status, StatusCode::NO_CONTENT | StatusCode::NOT_MODIFIED);
    let may_body = may_length && !head_only;
    let (mut wrote_len, mut wrote_date, mut close) = (false, false, false);
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
            if !may_body {
                continue;
            }
            wrote_len = true;
            framing = Framing::Chunked;
        } else if name == CONNECTION {
            close |= value
                .as_bytes()
                .split(|b| *b == b',')
                .any(|t| t.trim_ascii().eq_ignore_ascii_case(b"close"));
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
fn title_case(out: &mut Vec<u8>, name: &[u8]) {
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

/// Largest body frame copied next to the head so that both leave in one write.
const COALESCE_MAX: usize = 16 * 1024;

/// Serve plain requests on `io` until one is not plain (then hand over),
/// the connection ends, or the server shuts down (between requests).
pub async fn serve<I>(
    io: &mut I,
    app: &Arc<App>,
    conn: &ConnInfo,
    mut shutdown: watch::Receiver<bool>,
) -> io::Result<End>
where
    I: AsyncRead + AsyncWrite + Unpin,
{
    let limits = app.config.limits;
    let max_bytes = limits.max_header_bytes.max(crate::server::MIN_HEADER_BYTES);
    let mut buf = BytesMut::with_capacity(4096);
    let mut out = Vec::with_capacity(1024);
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
                _ = shutdown.changed() => return Ok(End::Closed),
            };
            if n == 0 {
                return Ok(End::Closed);
            }
        };
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
        let serving = access::serve(Arc::clone(app), conn, req);
        tokio::pin!(serving);
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
        let (parts, mut body) = res.into_parts();
        let len = match body.is_end_stream() {
            true => BodyLen::Empty,
            false => match body.size_hint().exact() {
                Some(n) => BodyLen::Known(n),
                None => BodyLen::Unknown,
            },
        };
        out.clear();
        let date = crate::render::date_value(std::time::SystemTime::now());
        let head_only = plain.method == Method::HEAD;
        let (framing, close) = encode_head(&parts, head_only, len, &date, &mut out);
        if !write_body(io, &mut out, &mut body, framing).await? {
            // the body failed or broke its length: never send more after it
            return Ok(End::Closed);
        }
        drop(body);
        if close {
            let _ = io.shutdown().await;
            return Ok(End::Closed);
        }
    }
}

/// The body's next frame.
async fn next<B>(body: &mut B) -> Option<Result<http_body::Frame<Bytes>, B::Error>>
where
    B: http_body::Body<Data = Bytes> + Unpin,
{
    poll_fn(|cx| Pin::new(&mut *body).poll_frame(cx)).await
}

/// Write the head in `out` and the body as `framing` says. `Ok(false)`: the
/// body failed or did not match its length; the connection must close.
async fn write_body<I, B>(
    io: &mut I,
    out: &mut Vec<u8>,
    body: &mut B,
    framing: Framing,
) -> io::Result<bool>
where
    I: AsyncWrite + Unpin,
    B: http_body::Body<Data = Bytes> + Unpin,
{
    match framing {
        Framing::Length(0) => {
            io.write_all(out).await?;
            io.flush().await?;
            Ok(true)
        }
        Framing::Length(want) => {
            let mut sent = 0u64;
            let mut first = true;
            loop {
                // the first frame leaves with the head when it is at hand
                let frame = match first {
                    true => match next(body).now_or_never() {
                        Some(f) => f,
                        None => {
                            io.write_all(out).await?;
                            out.clear();
                            next(body).await
                        }
                    },
                    false => next(body).await,
                };
                let data = match frame {
                    Some(Ok(frame)) => match frame.into_data() {
                        Ok(data) => data,
                        Err(_) => continue,
                    },
                    Some(Err(_)) => return Ok(false),
                    None => break,
                };
                sent += data.len() as u64;
                if sent > want {
                    return Ok(false);
                }
                if first && !out.is_empty() && data.len() <= COALESCE_MAX {
                    out.extend_from_slice(&data);
                    io.write_all(out).await?;
                    out.clear();
                } else {
                    if !out.is_empty() {
                        io.write_all(out).await?;
                        out.clear();
                    }
                    io.write_all(&data).await?;
                }
                first = false;
            }
            if !out.is_empty() {
                io.write_all(out).await?;
            }
            io.flush().await?;
            Ok(sent == want)
        }
        Framing::Chunked => {
            io.write_all(out).await?;
            loop {
                match next(body).await {
                    Some(Ok(frame)) => {
                        if let Ok(data) = frame.into_data() {
                            if data.is_empty() {
                                continue;
                            }
                            let size = format!("{:X}\r\n", data.len());
                            io.write_all(size.as_bytes()).await?;
                            io.write_all(&data).await?;
                            io.write_all(b"\r\n").await?;
                        }
                    }
                    Some(Err(_)) => return Ok(false),
                    None => break,
                }
            }
            io.write_all(b"0\r\n\r\n").await?;
            io.flush().await?;
            Ok(true)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(head: &[u8]) -> &'static str {
        match classify(head, 100, 8192) {
            Head::Plain(p) if p.method == Method::GET => "get",
            Head::Plain(_) => "head",
            Head::Partial => "partial",
            Head::Other => "hyper",
        }
    }

    #[test]
    fn classify_table() {
        #[rustfmt::skip]
        let rows: &[(&[u8], &str)] = &[
            (b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n", "get"),
            (b"HEAD /a HTTP/1.1\r\nHost: x\r\n\r\n", "head"),
            (b"GET /a HTTP/1.1\r\nHost: x\r\nRange: bytes=0-1\r\nIf-Range: \"t\"\r\n\r\n", "get"),
            (b"GET /a HTTP/1.1\r\nhOsT: x\r\nCONNECTION: Keep-Alive\r\n\r\n", "get"),
            // not whole yet (RFC 9112 2.1: a head ends with an empty line)
            (b"GET /a HTTP/1.1\r\nHost: x\r\n", "partial"),
            (b"GET /a HT", "partial"),
            // other methods, versions, forms: hyper's
            (b"POST /a HTTP/1.1\r\nHost: x\r\n\r\n", "hyper"),
            (b"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n", "hyper"),
            (b"get /a HTTP/1.1\r\nHost: x\r\n\r\n", "hyper"),
            (b"GET /a HTTP/1.0\r\nHost: x\r\n\r\n", "hyper"),
            (b"GET http://x/a HTTP/1.1\r\nHost: x\r\n\r\n", "hyper"),
            // framing and connection management (RFC 9112 6, 9.6)
            (b"GET /a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello", "hyper"),
            (b"GET /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n", "hyper"),
            (b"GET /a HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", "hyper"),
            (b"GET /a HTTP/1.1\r\nHost: x\r\nConnection: keep-alive, Upgrade\r\n\r\n", "hyper"),
            (b"GET /a HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n\r\n", "hyper"),
            // what the frame or the handler treats specially
            (b"GET /a HTTP/1.1\r\nHost: x\r\nOrigin: http://y\r\n\r\n", "hyper"),
            (b"GET /a HTTP/1.1\r\nHost: x\r\nRangeserve-Quirks: no-etag\r\n\r\n", "hyper"),
            // malformed: hyper answers 400
            (b"GET /a HTTP/1.1\r\nHost : x\r\n\r\n", "hyper"),
            (b"GET /a HTTP/1.1\r\nHo\x01st: x\r\n\r\n", "hyper"),
            (b"GET  /a HTTP/1.1\r\nHost: x\r\n\r\n", "hyper"),
        ];
        for (head, want) in rows {
            assert_eq!(kind(head), *want, "{:?}", String::from_utf8_lossy(head));
        }
    }

    #[test]
    fn limits_send_heads_to_hyper() {
        let head = b"GET /a HTTP/1.1\r\nHost: x\r\nAccept: */*\r\n\r\n";
        assert!(matches!(classify(head, 2, 8192), Head::Plain(_)));
        // more lines or bytes than allowed: hyper's 431
        assert_eq!(classify(head, 1, 8192), Head::Other);
        assert_eq!(classify(head, 2, 20), Head::Other);
        assert_eq!(classify(b"GET /a HTTP/1.1\r\nHost: x", 2, 20), Head::Other);
        let many = format!("GET / HTTP/1.1\r\n{}\r\n", "Accept: x\r\n".repeat(30));
        assert_eq!(classify(many.as_bytes(), 100, 8192), Head::Other);
    }

    #[test]
    fn a_plain_head_becomes_the_request_hyper_would_make() {
        let buf = b"GET /a%20b?c=d HTTP/1.1\r\nHost: x\r\nRange: bytes=1-2\r\nrange: bytes=3-4\r\n\r\nGET";
        let Head::Plain(plain) = classify(buf, 100, 8192) else {
            panic!("plain")
        };
        assert_eq!(plain.len, buf.len() - 3);
        let head = Bytes::copy_from_slice(&buf[..plain.len]);
        let req = request(&head, &plain).unwrap();
        assert_eq!(req.method(), Method::GET);
        assert_eq!(req.uri().path(), "/a%20b");
        assert_eq!(req.uri().query(), Some("c=d"));
        assert_eq!(req.version(), Version::HTTP_11);
        assert_eq!(req.headers()["host"], "x");
        let ranges: Vec<_> = req.headers().get_all("range").iter().collect();
        assert_eq!(ranges, ["bytes=1-2", "bytes=3-4"]);
    }

    fn head_of(
        status: u16,
        headers: &[(&str, &str)],
        head_only: bool,
        body: BodyLen,
    ) -> (String, Framing, bool) {
        let mut res = axum::http::Response::new(());
        *res.status_mut() = StatusCode::from_u16(status).unwrap();
        for (n, v) in headers {
            res.headers_mut().append(
                HeaderName::from_bytes(n.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        let (parts, ()) = res.into_parts();
        let mut out = Vec::new();
        let date = HeaderValue::from_static("Tue, 01 Dec 2026 00:00:00 GMT");
        let (framing, close) = encode_head(&parts, head_only, body, &date, &mut out);
        (String::from_utf8(out).unwrap(), framing, close)
    }

    #[test]
    fn heads_are_written_as_hyper_writes_them() {
        const D: &str = "Date: Tue, 01 Dec 2026 00:00:00 GMT\r\n";
        // names title-cased in map order; Date last when the map has none
        let (h, f, close) = head_of(
            200,
            &[("etag", "\"x\""), ("content-length", "3")],
            false,
            BodyLen::Known(3),
        );
        assert_eq!(
            h,
            format!("HTTP/1.1 200 OK\r\nEtag: \"x\"\r\nContent-Length: 3\r\n{D}\r\n")
        );
        assert_eq!((f, close), (Framing::Length(3), false));
        // the map's Date is kept where it is
        let (h, _, _) = head_of(
            206,
            &[
                ("date", "then"),
                ("content-range", "bytes 0-0/9"),
                ("content-length", "1"),
            ],
            false,
            BodyLen::Known(1),
        );
        assert_eq!(
            h,
            "HTTP/1.1 206 Partial Content\r\nDate: then\r\nContent-Range: bytes 0-0/9\r\nContent-Length: 1\r\n\r\n"
        );
        // RFC 9110 15.4.5: a 304 has no content; hyper adds no length
        let (h, f, _) = head_of(304, &[("etag", "\"x\"")], false, BodyLen::Empty);
        assert_eq!(
            h,
            format!("HTTP/1.1 304 Not Modified\r\nEtag: \"x\"\r\n{D}\r\n")
        );
        assert_eq!(f, Framing::Length(0));
        // HEAD keeps the GET's Content-Length (RFC 9110 9.3.2) and sends no body
        let (h, f, _) = head_of(200, &[("content-length", "10")], true, BodyLen::Empty);
        assert_eq!(
            h,
            format!("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n{D}\r\n")
        );
        assert_eq!(f, Framing::Length(0));
        // an empty GET body: hyper moves its length to the end
        let (h, f, _) = head_of(
            200,
            &[("content-length", "0"), ("etag", "\"e\"")],
            false,
            BodyLen::Empty,
        );
        assert_eq!(
            h,
            format!("HTTP/1.1 200 OK\r\nEtag: \"e\"\r\nContent-Length: 0\r\n{D}\r\n")
        );
        assert_eq!(f, Framing::Length(0));
        // no length header: the body's, or chunked when unknown (RFC 9112 6.1)
        let (h, f, _) = head_of(404, &[], false, BodyLen::Known(9));
        assert_eq!(
            h,
            format!("HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\n{D}\r\n")
        );
        assert_eq!(f, Framing::Length(9));
        let (h, f, _) = head_of(200, &[], false, BodyLen::Unknown);
        assert_eq!(
            h,
            format!("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n{D}\r\n")
        );
        assert_eq!(f, Framing::Chunked);
        let (h, f, _) = head_of(200, &[], true, BodyLen::Unknown);
        assert_eq!(h, format!("HTTP/1.1 200 OK\r\n{D}\r\n"));
        assert_eq!(f, Framing::Length(0));
        // Connection: close ends the connection after this response
        let (h, _, close) = head_of(
            400,
            &[("connection", "close"), ("content-length", "2")],
            false,
            BodyLen::Known(2),
        );
        assert!(h.starts_with("HTTP/1.1 400 Bad Request\r\nConnection: close\r\n"));
        assert!(close);
        let (_, _, close) = head_of(200, &[("connection", "keep-alive")], false, BodyLen::Empty);
        assert!(!close);
    }

    #[test]
    fn title_case_matches_hypers() {
        for (name, want) in [
            ("content-length", "Content-Length"),
            ("etag", "Etag"),
            ("repr-digest", "Repr-Digest"),
            ("x-a-b", "X-A-B"),
            ("www-authenticate", "Www-Authenticate"),
        ] {
            let mut out = Vec::new();
            title_case(&mut out, name.as_bytes());
            assert_eq!(out, want.as_bytes());
        }
    }
}
