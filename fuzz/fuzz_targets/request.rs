//! Whole requests over TCP: two real servers (`Server::builder()`), started
//! once on a dedicated runtime thread over a small tree (see
//! `rangeserve_fuzz::build_tree`): one plain, one in quirks mode that also
//! serves hidden entries. Each input
//! is written to a fresh connection; the first response is read and checked;
//! then the server must still answer a known-good `GET /` on a new
//! connection. A panic in any server thread aborts the process (libFuzzer's
//! panic hook), so a crash inside the server is a finding too.
//!
//! Input, raw mode (first byte < 0x80): the bytes are sent as they are, with
//! a blank line appended if they hold none, to the plain server; or, when
//! the first byte is 0x01, the bytes after it to the quirks-mode server.
//!
//! Input, structured mode (first byte >= 0x80): `[sel][header lines...]`.
//! `sel & 0x0f` picks the path from `PATHS`, `sel & 0x10` the quirks-mode
//! server, `(sel >> 5) & 3` the method (GET, HEAD, GET, POST). The request is
//! `METHOD PATH HTTP/1.1`, `Host: fuzz`, then the rest of the input as header
//! lines, then a blank line; in it `$E` is replaced by the path's current
//! ETag and `$L` by its Last-Modified, so conditional requests can match.
//!
//! Checked on every response: a status line `HTTP/1.1 DDD `, never 500, a
//! valid framing, no byte of a file outside the root. On the plain server:
//! nothing hidden (no hidden file's ETag or bytes, no hidden name in a
//! listing), and for a complete GET response a known ETag, and the body (200), the range
//! (206, single or each multipart part) or `bytes */LEN` (416) agree with
//! the file that ETag names; `Repr-Digest` is the file's SHA-256.
#![no_main]

use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::OnceLock;
use std::time::{Duration, Instant, UNIX_EPOCH};

use base64::Engine as _;
use libfuzzer_sys::fuzz_target;
use rangeserve_fuzz::{build_tree, find, scratch_dir, HIDDEN, MTIME_SECS, SECRET};
use sha2::{Digest, Sha256};

/// Paths of structured mode (the tree is `rangeserve_fuzz::tree_files`).
const PATHS: [&str; 16] = [
    "/",
    "/hello.txt",
    "/data.bin",
    "/big.bin",
    "/empty.txt",
    "/one.txt",
    "/sub/",
    "/sub",
    "/sub/nested.txt",
    "/with%20space.txt",
    "/caf%C3%A9.txt",
    "/link_in",
    "/link_out",
    "/dir_out/secret.txt",
    "/_quirks/",
    "/_quirks/no-etag,weak-etag/data.bin",
];

/// How long the first byte of an answer may take, and the whole answer.
const FIRST_BYTE: Duration = Duration::from_secs(1);
const WHOLE: Duration = Duration::from_secs(5);

struct Fixture {
    plain: SocketAddr,
    quirky: SocketAddr,
    /// `"<sha256 hex>"` -> contents.
    by_etag: HashMap<String, Vec<u8>>,
    /// ETags of hidden files.
    hidden_etags: std::collections::HashSet<String>,
    /// Structured-mode path -> that file's ETag, if it names a file.
    etag_of: HashMap<&'static str, String>,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        rangeserve_fuzz::ignore_sigpipe();
        let tree = build_tree(&scratch_dir("request"));
        let root = tree.root.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("rangeserve-servers".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                    .expect("runtime");
                rt.block_on(async move {
                    let plain = rangeserve::Server::builder()
                        .root(&root)
                        .bind("127.0.0.1:0")
                        .spawn()
                        .await
                        .expect("plain server");
                    let quirky = rangeserve::Server::builder()
                        .root(&root)
                        .bind("127.0.0.1:0")
                        .quirks_mode(true)
                        .hidden(true)
                        .stall_limit(Duration::from_millis(200))
                        .spawn()
                        .await
                        .expect("quirks server");
                    tx.send((plain.local_addr(), quirky.local_addr()))
                        .expect("send addrs");
                    // the handles live (and the servers serve) forever
                    std::future::pending::<()>().await;
                    drop((plain, quirky));
                });
            })
            .expect("server thread");
        let (plain, quirky) = rx.recv().expect("servers started");
        let mut etag_of = HashMap::new();
        for p in PATHS {
            let rel = percent_decode(p.trim_start_matches('/'));
            let Ok(real) = tree.root.join(rel).canonicalize() else {
                continue;
            };
            if let Some(content) = tree.files.get(&real) {
                etag_of.insert(p, format!("\"{}\"", hex::encode(Sha256::digest(content))));
            }
        }
        Fixture {
            plain,
            quirky,
            by_etag: tree.by_etag,
            hidden_etags: tree.hidden_etags,
            etag_of,
        }
    })
}

/// A debug-build test hook of the handler (src/handler.rs): it panics on
/// purpose to prove panics are contained, and this build has debug
/// assertions on. Inputs that ask for it are skipped.
const PANIC_HOOK: &[u8] = b"/_rangeserve/debug/panic";

fuzz_target!(|data: &[u8]| {
    let f = fixture();
    if find(data, PANIC_HOOK).is_some() {
        return;
    }
    let Some(first) = data.first() else { return };
    let (request, addr, quirks, is_head) = if *first >= 0x80 {
        let sel = *first;
        let path = PATHS[usize::from(sel & 0x0f)];
        let quirks = sel & 0x10 != 0;
        let method = ["GET", "HEAD", "GET", "POST"][usize::from((sel >> 5) & 3)];
        let etag = f
            .etag_of
            .get(path)
            .map_or("\"none\"", String::as_str)
            .as_bytes();
        let lm = httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(MTIME_SECS));
        let mut headers = replace(&data[1..], b"$E", etag);
        headers = replace(&headers, b"$L", lm.as_bytes());
        let mut req = format!("{method} {path} HTTP/1.1\r\nHost: fuzz\r\n").into_bytes();
        req.extend_from_slice(&headers);
        if !headers.is_empty() && !headers.ends_with(b"\n") {
            req.extend_from_slice(b"\r\n");
        }
        req.extend_from_slice(b"\r\n");
        let addr = if quirks { f.quirky } else { f.plain };
        (req, addr, quirks, method == "HEAD")
    } else {
        let (quirks, data) = match data.split_first() {
            Some((0x01, rest)) => (true, rest),
            _ => (false, data),
        };
        let start = data
            .iter()
            .position(|b| !b"\r\n".contains(b))
            .unwrap_or(data.len());
        if start == data.len() {
            return; // only blank lines: the server would wait for a request
        }
        let mut req = data.to_vec();
        if find(data, b"\r\n\r\n").is_none() && find(data, b"\n\n").is_none() {
            req.extend_from_slice(b"\r\n\r\n");
        }
        let is_head = data[start..].starts_with(b"HEAD ");
        let addr = if quirks { f.quirky } else { f.plain };
        (req, addr, quirks, is_head)
    };

    let answer = exchange(addr, &request, is_head);
    if trace() {
        // FUZZ_TRACE=1: one line per input, to see what a corpus reaches
        match &answer {
            Some(a) => eprintln!(
                "trace: {} {} {}",
                if quirks { "quirks" } else { "plain" },
                a.status,
                a.header("content-type").unwrap_or("-")
            ),
            None => eprintln!("trace: {} none", if quirks { "quirks" } else { "plain" }),
        }
    }
    if let Some(res) = &answer {
        check(f, res, quirks, is_head, &request);
    }
    alive(addr, &request);
});

fn trace() -> bool {
    static T: OnceLock<bool> = OnceLock::new();
    *T.get_or_init(|| std::env::var_os("FUZZ_TRACE").is_some())
}

/// One response as read from the wire.
struct Answer {
    status: u16,
    /// Header names lower-cased, in order.
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    /// The body is all there (by its framing); false after a timeout.
    complete: bool,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Send `request` on a fresh connection; read the first final response.
fn exchange(addr: SocketAddr, request: &[u8], is_head: bool) -> Option<Answer> {
    let mut tcp = TcpStream::connect(addr).expect("connect");
    tcp.set_nodelay(true).ok();
    // the server may answer (400, 431) and close before it has read it all
    if tcp.write_all(request).is_err() {
        return None;
    }
    let start = Instant::now();
    let mut reader = Reader {
        tcp,
        buf: Vec::new(),
        eof: false,
        first_byte_by: start + FIRST_BYTE,
        done_by: start + WHOLE,
    };
    loop {
        let head_end = reader.until(b"\r\n\r\n")?;
        let head = reader.buf[..head_end].to_vec();
        reader.buf.drain(..head_end + 4);
        let (status, headers) = parse_head(&head, request);
        if (100..200).contains(&status) {
            continue; // an interim answer; the final one follows
        }
        let mut answer = Answer {
            status,
            headers,
            body: Vec::new(),
            complete: false,
        };
        let no_body = is_head || status == 204 || status == 304;
        let chunked = answer
            .header("transfer-encoding")
            .is_some_and(|te| te.to_ascii_lowercase().contains("chunked"));
        if no_body {
            answer.complete = true;
        } else if chunked {
            answer.complete = reader.chunked(&mut answer.body);
        } else if let Some(cl) = answer.header("content-length") {
            let cl: usize = cl
                .trim()
                .parse()
                .unwrap_or_else(|_| panic!("bad Content-Length {cl:?}"));
            answer.complete = reader.exactly(cl);
            let n = cl.min(reader.buf.len());
            answer.body = reader.buf[..n].to_vec();
        } else {
            reader.drain_to_eof();
            answer.complete = reader.eof;
            answer.body = std::mem::take(&mut reader.buf);
        }
        return Some(answer);
    }
}

struct Reader {
    tcp: TcpStream,
    buf: Vec<u8>,
    eof: bool,
    first_byte_by: Instant,
    done_by: Instant,
}

impl Reader {
    /// Read more; false on EOF, timeout or error.
    fn more(&mut self) -> bool {
        if self.eof {
            return false;
        }
        let by = if self.buf.is_empty() {
            self.first_byte_by
        } else {
            self.done_by
        };
        let Some(left) = by.checked_duration_since(Instant::now()) else {
            return false;
        };
        if left.is_zero() {
            return false;
        }
        self.tcp.set_read_timeout(Some(left)).expect("timeout");
        let mut chunk = [0u8; 64 * 1024];
        match self.tcp.read(&mut chunk) {
            Ok(0) => {
                self.eof = true;
                false
            }
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                true
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => true,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => false,
            // reset: the server closed with unread request bytes
            Err(_) => {
                self.eof = true;
                false
            }
        }
    }

    /// Offset of `pat` in the buffer, reading as needed.
    fn until(&mut self, pat: &[u8]) -> Option<usize> {
        loop {
            if let Some(i) = find(&self.buf, pat) {
                return Some(i);
            }
            if !self.more() {
                return None;
            }
        }
    }

    fn exactly(&mut self, n: usize) -> bool {
        while self.buf.len() < n {
            if !self.more() {
                return false;
            }
        }
        true
    }

    fn drain_to_eof(&mut self) {
        while self.more() {}
    }

    /// Decode a chunked body into `out`; true when the last chunk arrived.
    fn chunked(&mut self, out: &mut Vec<u8>) -> bool {
        loop {
            let Some(eol) = self.until(b"\r\n") else {
                return false;
            };
            let line = String::from_utf8_lossy(&self.buf[..eol]).into_owned();
            let size = line.split(';').next().unwrap_or("").trim();
            let size = usize::from_str_radix(size, 16)
                .unwrap_or_else(|_| panic!("bad chunk size line {line:?}"));
            self.buf.drain(..eol + 2);
            if size == 0 {
                // trailers, then a blank line
                return self.until(b"\r\n").is_some();
            }
            if !self.exactly(size + 2) {
                return false;
            }
            out.extend_from_slice(&self.buf[..size]);
            assert_eq!(
                &self.buf[size..size + 2],
                b"\r\n",
                "chunk not followed by CRLF"
            );
            self.buf.drain(..size + 2);
        }
    }
}

fn parse_head(head: &[u8], request: &[u8]) -> (u16, Vec<(String, String)>) {
    let text = String::from_utf8_lossy(head);
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let b = status_line.as_bytes();
    // hyper answers an HTTP/1.0 request in HTTP/1.0 (RFC 9110 6.2 would
    // rather have HTTP/1.1): allowed when the request line says HTTP/1.0
    let request_line = request
        .split(|&c| c == b'\n')
        .find(|l| !l.is_empty() && *l != b"\r")
        .unwrap_or(b"");
    let version_ok = b.starts_with(b"HTTP/1.1 ")
        || (b.starts_with(b"HTTP/1.0 ") && find(request_line, b"HTTP/1.0").is_some());
    assert!(
        b.len() >= 12 && version_ok && b[9..12].iter().all(u8::is_ascii_digit) && b[12] == b' ',
        "bad status line {status_line:?} for request {:?}",
        String::from_utf8_lossy(request)
    );
    let status: u16 = status_line[9..12].parse().expect("digits");
    let headers = lines
        .map(|l| {
            let (n, v) = l
                .split_once(':')
                .unwrap_or_else(|| panic!("bad header line {l:?}"));
            (n.to_ascii_lowercase(), v.trim().to_string())
        })
        .collect();
    (status, headers)
}

fn check(f: &Fixture, res: &Answer, quirks: bool, is_head: bool, request: &[u8]) {
    let req = || String::from_utf8_lossy(request).into_owned();
    assert_ne!(res.status, 500, "500 for {:?}", req());
    assert!(
        find(&res.body, SECRET).is_none(),
        "a file outside the root was served for {:?}",
        req()
    );
    if quirks {
        return; // quirks bend the answer on purpose; the checks below are for the plain server
    }
    let etag = res.header("etag");
    if let Some(t) = etag {
        assert!(
            !f.hidden_etags.contains(t),
            "hidden file served for {:?}",
            req()
        );
    }
    // hidden bytes never show, nor hidden names in a listing (an answer
    // without ETag), unless the request itself holds them
    let markers: &[&[u8]] = if etag.is_none() {
        &[HIDDEN, b".hidn", b".git", b".env"]
    } else {
        &[HIDDEN]
    };
    for &marker in markers {
        if find(request, marker).is_none() {
            let shown = String::from_utf8_lossy(marker);
            assert!(
                find(&res.body, marker).is_none(),
                "{shown:?} in the answer to {:?}",
                req()
            );
        }
    }
    let content = etag.map(|t| {
        f.by_etag
            .get(t)
            .unwrap_or_else(|| panic!("unknown ETag {t:?} for {:?}", req()))
    });
    if let (Some(content), Some(digest)) = (content, res.header("repr-digest")) {
        let want = format!(
            "sha-256=:{}:",
            base64::engine::general_purpose::STANDARD.encode(Sha256::digest(content))
        );
        assert_eq!(digest, want, "Repr-Digest for {:?}", req());
    }
    if res.status == 416 {
        let cr = res
            .header("content-range")
            .expect("416 without Content-Range");
        let len: usize = cr
            .strip_prefix("bytes */")
            .and_then(|l| l.parse().ok())
            .unwrap_or_else(|| panic!("416 Content-Range {cr:?}"));
        if let Some(content) = content {
            assert_eq!(len, content.len(), "416 length for {:?}", req());
        }
    }
    if is_head || !res.complete {
        return;
    }
    let Some(content) = content else {
        assert_ne!(res.status, 206, "206 without ETag for {:?}", req());
        return;
    };
    match res.status {
        200 => assert!(res.body == *content, "200 body differs for {:?}", req()),
        206 => {
            let ct = res.header("content-type").unwrap_or("");
            if let Some(b) = ct.strip_prefix("multipart/byteranges; boundary=") {
                check_multipart(&res.body, b, content, &req());
            } else {
                let cr = res
                    .header("content-range")
                    .expect("206 without Content-Range");
                let slice = range_of(cr, content, &req());
                assert!(res.body == slice, "206 body differs for {:?}", req());
            }
        }
        _ => {}
    }
}

/// `bytes a-b/len` against `content`: the bytes it names.
fn range_of<'a>(cr: &str, content: &'a [u8], req: &str) -> &'a [u8] {
    let parsed = cr.strip_prefix("bytes ").and_then(|r| {
        let (range, len) = r.split_once('/')?;
        let (a, b) = range.split_once('-')?;
        Some((
            a.parse::<usize>().ok()?,
            b.parse::<usize>().ok()?,
            len.parse::<usize>().ok()?,
        ))
    });
    let Some((a, b, len)) = parsed else {
        panic!("bad Content-Range {cr:?} for {req:?}");
    };
    assert_eq!(len, content.len(), "Content-Range length for {req:?}");
    assert!(
        a <= b && b < len,
        "Content-Range {cr:?} out of bounds for {req:?}"
    );
    &content[a..=b]
}

fn check_multipart(body: &[u8], boundary: &str, content: &[u8], req: &str) {
    let mut rest = body;
    let delimiter = format!("--{boundary}");
    let mut parts = 0;
    loop {
        if parts > 0 {
            rest = rest
                .strip_prefix(b"\r\n")
                .unwrap_or_else(|| panic!("no CRLF before a delimiter for {req:?}"));
        }
        rest = rest
            .strip_prefix(delimiter.as_bytes())
            .unwrap_or_else(|| panic!("missing delimiter for {req:?}"));
        if let Some(after) = rest.strip_prefix(b"--") {
            assert!(after.is_empty() || after == b"\r\n", "epilogue for {req:?}");
            break;
        }
        rest = rest.strip_prefix(b"\r\n").expect("CRLF after delimiter");
        let end = find(rest, b"\r\n\r\n").expect("part headers end");
        let head = String::from_utf8_lossy(&rest[..end]).into_owned();
        rest = &rest[end + 4..];
        let cr = head
            .split("\r\n")
            .find_map(|l| l.strip_prefix("Content-Range: "))
            .unwrap_or_else(|| panic!("part without Content-Range for {req:?}"));
        let slice = range_of(cr, content, req);
        assert!(
            rest.len() >= slice.len() && rest[..slice.len()] == *slice,
            "part {cr} differs for {req:?}"
        );
        rest = &rest[slice.len()..];
        parts += 1;
    }
    assert!(parts >= 2, "multipart with {parts} part(s) for {req:?}");
}

/// The server still accepts a connection and answers `GET /`.
fn alive(addr: SocketAddr, after: &[u8]) {
    let probe = b"GET / HTTP/1.1\r\nHost: fuzz\r\nConnection: close\r\n\r\n";
    let mut tcp = TcpStream::connect(addr).unwrap_or_else(|e| {
        panic!(
            "server gone after {:?}: {e}",
            String::from_utf8_lossy(after)
        )
    });
    tcp.set_read_timeout(Some(Duration::from_secs(10))).ok();
    tcp.write_all(probe).expect("write probe");
    let mut head = [0u8; 13];
    tcp.read_exact(&mut head).unwrap_or_else(|e| {
        panic!(
            "no answer to GET / after {:?}: {e}",
            String::from_utf8_lossy(after)
        )
    });
    assert_eq!(
        &head,
        b"HTTP/1.1 200 ",
        "GET / after {:?}",
        String::from_utf8_lossy(after)
    );
}

fn replace(haystack: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(haystack.len());
    let mut rest = haystack;
    while let Some(i) = find(rest, from) {
        out.extend_from_slice(&rest[..i]);
        out.extend_from_slice(to);
        rest = &rest[i + from.len()..];
    }
    out.extend_from_slice(rest);
    out
}

fn percent_decode(s: &str) -> std::path::PathBuf {
    use std::os::unix::ffi::OsStringExt;
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    std::ffi::OsString::from_vec(out).into()
}
