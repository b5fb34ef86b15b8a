//! One HTTP/1.1 exchange on a fresh connection, seen exactly as it came:
//! status line, headers in order, the framing (Content-Length, chunked or
//! close-delimited), the first bytes of the body and how the body ended
//! (complete, cut short, stalled, too slow, or left unread on purpose).
//!
//! Every read is bounded: the head by [`MAX_HEAD_BYTES`] and
//! [`MAX_HEADERS`], the body by what the caller wants, and the whole
//! exchange by one deadline, so no answer can make the probe hang or grow.

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::target::{Scheme, Target};

/// Longest response head read (status line and header fields).
pub const MAX_HEAD_BYTES: usize = 64 * 1024;
/// Most header fields read in one response.
pub const MAX_HEADERS: usize = 256;
/// The User-Agent of every probe request.
pub const USER_AGENT: &str = concat!("rangeserve-probe/", env!("CARGO_PKG_VERSION"));

/// GET or HEAD: the only methods the probe sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// GET.
    Get,
    /// HEAD.
    Head,
}

/// One request: method, extra header fields, and how many body bytes to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The method.
    pub method: Method,
    /// Extra fields (Range, If-Range...), after the fixed ones.
    pub headers: Vec<(&'static str, String)>,
    /// Body bytes to read at most; the connection is closed after them.
    pub want: usize,
}

/// How the response says its body ends (RFC 9112 6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body (HEAD, 1xx, 204, 304).
    None,
    /// `Content-Length: N`.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// Neither: the body ends when the connection closes.
    Close,
}

/// How reading the body ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyEnd {
    /// The body ended where its framing said.
    Complete,
    /// The probe stopped after the bytes it wanted; more were announced.
    Unread,
    /// The connection ended before the framing's end.
    Short,
    /// No byte came for the rest of the time allowed.
    Stalled,
    /// The time allowed ran out while bytes were still coming.
    Slow,
    /// The chunked framing was malformed.
    BadChunk,
}

/// When things arrived, from the start of the exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Timing {
    /// Until the end of the head.
    pub head: Duration,
    /// From the first body byte to the last one read.
    pub body: Duration,
    /// Body bytes that came with the first read of the body (a burst).
    pub first_read: usize,
}

/// A response as received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Reason phrase.
    pub reason: String,
    /// Header fields in order (names as sent).
    pub headers: Vec<(String, String)>,
    /// The body's framing.
    pub framing: Framing,
    /// The body bytes read (at most what was wanted), chunked coding removed.
    pub body: Vec<u8>,
    /// How the body ended.
    pub end: BodyEnd,
    /// Timing.
    pub timing: Timing,
}

impl Response {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Why an exchange failed before a response head was complete.
#[derive(Debug, thiserror::Error)]
pub enum ExchangeError {
    /// The host name does not resolve.
    #[error("cannot resolve {host}: {source}")]
    Resolve {
        /// The host.
        host: String,
        /// Why.
        source: std::io::Error,
    },
    /// No address accepted a connection.
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        /// The host and port.
        addr: String,
        /// Why.
        source: std::io::Error,
    },
    /// The TLS handshake failed (certificate not trusted, protocol error).
    #[error("TLS handshake with {host} failed: {reason}")]
    Tls {
        /// The host.
        host: String,
        /// What rustls said.
        reason: String,
    },
    /// Nothing (or not a whole head) came within the time allowed.
    #[error("no response within {0:?}")]
    Timeout(Duration),
    /// The connection failed while sending or reading the head.
    #[error("connection failed: {0}")]
    Io(#[from] std::io::Error),
    /// The connection closed before a whole response head.
    #[error("the connection closed before a complete response head")]
    Closed,
    /// The head is larger than [`MAX_HEAD_BYTES`] or has more than [`MAX_HEADERS`] fields.
    #[error("response head larger than {MAX_HEAD_BYTES} bytes or {MAX_HEADERS} fields")]
    HeadTooLarge,
    /// Not an HTTP/1.x response.
    #[error("not an HTTP/1.x response: {0:?}")]
    Malformed(String),
    /// A response whose body length cannot be known (RFC 9112 6.3).
    #[error("unusable framing: {0}")]
    BadFraming(String),
}

/// Any connection the probe reads and writes.
trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// Opens connections to one target and runs exchanges on them.
#[derive(Clone)]
pub struct Client {
    target: Target,
    tls: Option<tokio_rustls::TlsConnector>,
    timeout: Duration,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("target", &self.target)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// A client for `target`; `tls` is required for https.
    pub fn new(
        target: Target,
        tls: Option<std::sync::Arc<rustls::ClientConfig>>,
        timeout: Duration,
    ) -> Client {
        Client {
            target,
            tls: tls.map(tokio_rustls::TlsConnector::from),
            timeout,
        }
    }

    /// Send `req` on a new connection and read the answer. The whole
    /// exchange gets the client's timeout.
    pub async fn exchange(&self, req: &Request) -> Result<Response, ExchangeError> {
        let start = Instant::now();
        let deadline = start + self.timeout;
        let mut stream = self.connect(deadline).await?;
        let mut head = format!(
            "{} {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: {USER_AGENT}\r\nAccept: */*\r\nAccept-Encoding: identity\r\nConnection: close\r\n",
            match req.method {
                Method::Get => "GET",
                Method::Head => "HEAD",
            },
            self.target.path,
            self.target.host_header()
        );
        for (name, value) in &req.headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        within(deadline, self.timeout, stream.write_all(head.as_bytes())).await??;
        within(deadline, self.timeout, stream.flush()).await??;
        let mut reader = Reader {
            stream,
            buf: Vec::new(),
            pos: 0,
            deadline,
            timeout: self.timeout,
            start,
            last_byte: start,
        };
        read_response(&mut reader, req).await
    }

    async fn connect(&self, deadline: Instant) -> Result<Box<dyn Stream>, ExchangeError> {
        let t = &self.target;
        let addrs = within(
            deadline,
            self.timeout,
            tokio::net::lookup_host((t.host.as_str(), t.port)),
        )
        .await?
        .map_err(|source| ExchangeError::Resolve {
            host: t.host.clone(),
            source,
        })?;
        let mut last = None;
        let mut tcp = None;
        for addr in addrs {
            match within(deadline, self.timeout, TcpStream::connect(addr)).await? {
                Ok(s) => {
                    tcp = Some(s);
                    break;
                }
                Err(e) => last = Some(e),
            }
        }
        let tcp = tcp.ok_or_else(|| ExchangeError::Connect {
            addr: format!("{}:{}", t.host, t.port),
            source: last.unwrap_or_else(|| std::io::Error::other("no address")),
        })?;
        let _ = tcp.set_nodelay(true);
        match (t.scheme, &self.tls) {
            (Scheme::Http, _) => Ok(Box::new(tcp)),
            (Scheme::Https, None) => Err(ExchangeError::Tls {
                host: t.host.clone(),
                reason: "no TLS configuration".into(),
            }),
            (Scheme::Https, Some(tls)) => {
                let name =
                    rustls::pki_types::ServerName::try_from(t.host.clone()).map_err(|e| {
                        ExchangeError::Tls {
                            host: t.host.clone(),
                            reason: e.to_string(),
                        }
                    })?;
                let s = within(deadline, self.timeout, tls.connect(name, tcp))
                    .await?
                    .map_err(|e| ExchangeError::Tls {
                        host: t.host.clone(),
                        reason: e.to_string(),
                    })?;
                Ok(Box::new(s))
            }
        }
    }
}

/// Run `f` until `deadline`; a timeout is reported as the exchange's timeout.
async fn within<F: std::future::Future>(
    deadline: Instant,
    timeout: Duration,
    f: F,
) -> Result<F::Output, ExchangeError> {
    tokio::time::timeout_at(deadline, f)
        .await
        .map_err(|_| ExchangeError::Timeout(timeout))
}

/// A buffered reader with one deadline.
struct Reader {
    stream: Box<dyn Stream>,
    buf: Vec<u8>,
    pos: usize,
    deadline: Instant,
    timeout: Duration,
    start: Instant,
    last_byte: Instant,
}

/// What a read brought.
enum Fill {
    Data,
    Eof,
    TimedOut,
}

impl Reader {
    /// Read more bytes into the buffer (at most 8 KiB at a time: a body the
    /// probe does not want costs at most that much).
    async fn fill(&mut self) -> std::io::Result<Fill> {
        if self.pos > 0 && self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
        }
        let mut chunk = [0u8; 8 * 1024];
        match tokio::time::timeout_at(self.deadline, self.stream.read(&mut chunk)).await {
            Err(_) => Ok(Fill::TimedOut),
            Ok(Ok(0)) => Ok(Fill::Eof),
            // a TLS peer that closes without close_notify: an end like any other
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(Fill::Eof),
            Ok(Err(e)) => Err(e),
            Ok(Ok(n)) => {
                self.buf.extend_from_slice(&chunk[..n]);
                self.last_byte = Instant::now();
                Ok(Fill::Data)
            }
        }
    }

    fn available(&self) -> &[u8] {
        &self.buf[self.pos..]
    }

    /// How a body that did not reach its end stopped.
    fn unfinished(&self, fill: std::io::Result<Fill>) -> BodyEnd {
        match fill {
            Ok(Fill::TimedOut) => {
                // nothing for the second half of the time allowed: a stall;
                // bytes until late: a slow but live transfer
                if Instant::now().duration_since(self.last_byte) >= self.timeout / 2 {
                    BodyEnd::Stalled
                } else {
                    BodyEnd::Slow
                }
            }
            // EOF, reset: the connection ended early
            Ok(Fill::Eof | Fill::Data) | Err(_) => BodyEnd::Short,
        }
    }
}

async fn read_response(r: &mut Reader, req: &Request) -> Result<Response, ExchangeError> {
    // skip interim 1xx answers (a bounded number of them)
    for _ in 0..8 {
        let (status, reason, headers) = read_head(r).await?;
        if (100..200).contains(&status) && status != 101 {
            continue;
        }
        let head_done = r.last_byte;
        let framing = framing(req.method, status, &headers)?;
        let mut res = Response {
            status,
            reason,
            headers,
            framing,
            body: Vec::new(),
            end: BodyEnd::Complete,
            timing: Timing {
                head: head_done.duration_since(r.start),
                ..Timing::default()
            },
        };
        read_body(r, &mut res, req.want).await;
        return Ok(res);
    }
    Err(ExchangeError::Malformed("too many 1xx responses".into()))
}

type Head = (u16, String, Vec<(String, String)>);

async fn read_head(r: &mut Reader) -> Result<Head, ExchangeError> {
    let end = loop {
        if let Some(i) = find(r.available(), b"\r\n\r\n") {
            break r.pos + i;
        }
        if r.available().len() > MAX_HEAD_BYTES {
            return Err(ExchangeError::HeadTooLarge);
        }
        match r.fill().await? {
            Fill::Data => {}
            Fill::Eof => return Err(ExchangeError::Closed),
            Fill::TimedOut => return Err(ExchangeError::Timeout(r.timeout)),
        }
    };
    if end - r.pos > MAX_HEAD_BYTES {
        return Err(ExchangeError::HeadTooLarge);
    }
    let text = String::from_utf8_lossy(&r.buf[r.pos..end]).into_owned();
    r.pos = end + 4;
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let malformed = || ExchangeError::Malformed(status_line.chars().take(100).collect());
    let rest = status_line
        .strip_prefix("HTTP/1.1 ")
        .or_else(|| status_line.strip_prefix("HTTP/1.0 "))
        .ok_or_else(malformed)?;
    let (code, reason) = rest.split_once(' ').unwrap_or((rest, ""));
    let status = match code.parse::<u16>() {
        Ok(s) if code.len() == 3 && (100..600).contains(&s) => s,
        _ => return Err(malformed()),
    };
    let mut headers = Vec::new();
    for line in lines {
        if headers.len() >= MAX_HEADERS {
            return Err(ExchangeError::HeadTooLarge);
        }
        let (name, value) = line
            .split_once(':')
            .filter(|(n, _)| !n.is_empty() && !n.contains([' ', '\t']))
            .ok_or_else(|| ExchangeError::Malformed(line.chars().take(100).collect()))?;
        headers.push((
            name.to_string(),
            value.trim_matches([' ', '\t']).to_string(),
        ));
    }
    Ok((status, reason.to_string(), headers))
}

fn framing(
    method: Method,
    status: u16,
    headers: &[(String, String)],
) -> Result<Framing, ExchangeError> {
    if method == Method::Head || status < 200 || status == 204 || status == 304 {
        return Ok(Framing::None);
    }
    let get = |name: &'static str| {
        headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    };
    if let Some(te) = get("transfer-encoding").next_back() {
        let last = te.rsplit(',').next().unwrap_or("").trim();
        return Ok(if last.eq_ignore_ascii_case("chunked") {
            Framing::Chunked
        } else {
            Framing::Close
        });
    }
    let mut length = None;
    for v in get("content-length").flat_map(|v| v.split(',')) {
        let v = v.trim();
        let n = v
            .parse::<u64>()
            .ok()
            .filter(|_| v.bytes().all(|b| b.is_ascii_digit()))
            .ok_or_else(|| ExchangeError::BadFraming(format!("Content-Length: {v:.40}")))?;
        if length.is_some_and(|l| l != n) {
            return Err(ExchangeError::BadFraming(
                "conflicting Content-Length values".into(),
            ));
        }
        length = Some(n);
    }
    Ok(length.map_or(Framing::Close, Framing::Length))
}

/// Read at most `want` body bytes into `res`, recording how the body ended.
async fn read_body(r: &mut Reader, res: &mut Response, want: usize) {
    let mut first_at = None;
    res.end = match res.framing {
        Framing::None => BodyEnd::Complete,
        Framing::Length(n) => {
            let mut left = n;
            loop {
                let take = (r.available().len() as u64).min(left) as usize;
                let room = want.saturating_sub(res.body.len());
                let start = r.pos;
                res.body
                    .extend_from_slice(&r.buf[start..start + take.min(room)]);
                note_first(&mut first_at, r, &mut res.timing, take);
                r.pos += take;
                left -= take as u64;
                if left == 0 {
                    break BodyEnd::Complete;
                }
                if res.body.len() >= want {
                    break BodyEnd::Unread;
                }
                match r.fill().await {
                    Ok(Fill::Data) => {}
                    other => break r.unfinished(other),
                }
            }
        }
        Framing::Close => loop {
            let take = r.available().len();
            let room = want.saturating_sub(res.body.len());
            let start = r.pos;
            res.body
                .extend_from_slice(&r.buf[start..start + take.min(room)]);
            note_first(&mut first_at, r, &mut res.timing, take);
            r.pos += take;
            if res.body.len() >= want {
                break BodyEnd::Unread;
            }
            match r.fill().await {
                Ok(Fill::Data) => {}
                Ok(Fill::Eof) => break BodyEnd::Complete,
                other => break r.unfinished(other),
            }
        },
        Framing::Chunked => read_chunked(r, res, want, &mut first_at).await,
    };
    if let Some(first) = first_at {
        res.timing.body = r.last_byte.duration_since(first);
    }
}

fn note_first(first_at: &mut Option<Instant>, r: &Reader, timing: &mut Timing, took: usize) {
    if first_at.is_none() && took > 0 {
        *first_at = Some(r.last_byte);
        timing.first_read = took;
    }
}

/// Longest chunk-size line (with extensions) or trailer line accepted.
const MAX_CHUNK_LINE: usize = 4096;

async fn read_chunked(
    r: &mut Reader,
    res: &mut Response,
    want: usize,
    first_at: &mut Option<Instant>,
) -> BodyEnd {
    loop {
        // chunk-size [; ext] CRLF
        let line = match read_line(r).await {
            Ok(l) => l,
            Err(end) => return end,
        };
        let size_hex = line.split(';').next().unwrap_or("").trim();
        let Ok(size) = u64::from_str_radix(size_hex, 16) else {
            return BodyEnd::BadChunk;
        };
        if size_hex.is_empty() || size_hex.starts_with('+') {
            return BodyEnd::BadChunk;
        }
        if size == 0 {
            // trailer fields until an empty line
            loop {
                match read_line(r).await {
                    Ok(l) if l.is_empty() => return BodyEnd::Complete,
                    Ok(_) => {}
                    Err(end) => return end,
                }
            }
        }
        // more data announced than wanted: stop here
        if res.body.len() >= want {
            return BodyEnd::Unread;
        }
        let mut left = size;
        while left > 0 {
            if r.available().is_empty() {
                if res.body.len() >= want {
                    return BodyEnd::Unread;
                }
                match r.fill().await {
                    Ok(Fill::Data) => {}
                    other => return r.unfinished(other),
                }
            }
            let take = (r.available().len() as u64).min(left) as usize;
            let room = want.saturating_sub(res.body.len());
            let start = r.pos;
            res.body
                .extend_from_slice(&r.buf[start..start + take.min(room)]);
            note_first(first_at, r, &mut res.timing, take);
            r.pos += take;
            left -= take as u64;
        }
        match read_line(r).await {
            Ok(l) if l.is_empty() => {}
            Ok(_) => return BodyEnd::BadChunk,
            Err(end) => return end,
        }
    }
}

/// One CRLF-terminated line of the chunked framing, without the CRLF.
async fn read_line(r: &mut Reader) -> Result<String, BodyEnd> {
    loop {
        if let Some(i) = find(r.available(), b"\r\n") {
            let line = String::from_utf8_lossy(&r.available()[..i]).into_owned();
            r.pos += i + 2;
            return Ok(line);
        }
        if r.available().len() > MAX_CHUNK_LINE {
            return Err(BodyEnd::BadChunk);
        }
        match r.fill().await {
            Ok(Fill::Data) => {}
            other => return Err(r.unfinished(other)),
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}
