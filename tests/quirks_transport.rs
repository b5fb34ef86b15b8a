//! Quirks mode over real TCP: the quirks that lie about the range
//! (range-from-zero, range-capped, no-content-range, bad-content-range),
//! replica-flip, and the transport quirks (chunked, drop-after, drop-at,
//! throttle, stall-after, fail-first). Each is checked byte for byte with a
//! raw socket, and each transport quirk is shown usable by a small resuming
//! client whose result hashes to the original file.

mod common;

use std::io::{ErrorKind, Read};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::{parse_content_range, parse_multipart, pattern, Conn, RawResponse, TestServer};
use rangeserve::quirks::{Quirk, Spec};
use rangeserve::Config;
use sha2::{Digest as _, Sha256};

/// Size of `a.bin` and `b.bin`.
const LEN: usize = 10_000;
/// Size of `big.bin` (throttle tests).
const BIG: usize = 64 * 1024;

fn file_a() -> Vec<u8> {
    pattern(LEN)
}

fn file_b() -> Vec<u8> {
    pattern(LEN).iter().map(|b| b.wrapping_add(1)).collect()
}

fn file_big() -> Vec<u8> {
    pattern(BIG)
}

/// replica-flip's second version: every byte XOR 0xFF.
fn flipped(data: &[u8]) -> Vec<u8> {
    data.iter().map(|b| b ^ 0xff).collect()
}

fn sha(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// The strong ETag rangeserve derives from content: the quoted SHA-256.
fn etag_of(data: &[u8]) -> String {
    format!("\"{}\"", sha(data))
}

fn quirks(spec: &str) -> Vec<Quirk> {
    Spec::parse(spec).unwrap().quirks
}

/// A server in quirks mode (no global quirk) with `a.bin`, `b.bin`, `big.bin`.
fn server() -> TestServer {
    server_with(Config {
        quirks_mode: true,
        ..Config::default()
    })
}

fn server_with(config: Config) -> TestServer {
    let (a, b, big) = (file_a(), file_b(), file_big());
    TestServer::with_files_config(&[("a.bin", &a), ("b.bin", &b), ("big.bin", &big)], config)
}

/// How reading a response body ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// The server closed the connection (EOF or reset).
    Closed,
    /// Nothing arrived within the read timeout; the connection is still open.
    TimedOut,
}

/// One exchange: the head, every byte after it until the connection ended
/// (undecoded: chunked framing included), and how it ended.
#[derive(Debug)]
struct Exchange {
    res: RawResponse,
    end: End,
    /// When each read returned data, since the request was sent, with the
    /// running count of body bytes.
    arrivals: Vec<(Duration, usize)>,
    /// From the request to the end of the connection (or the timeout).
    elapsed: Duration,
}

impl Exchange {
    fn header(&self, name: &str) -> Option<&str> {
        self.res.header(name)
    }

    fn status_line(&self) -> &str {
        &self.res.status_line
    }

    fn body(&self) -> &[u8] {
        &self.res.body
    }

    /// Assert the connection was closed by the server, not left open.
    fn assert_closed(&self) {
        assert_eq!(self.end, End::Closed, "connection not closed: {self:?}");
    }
}

/// Send one request on a fresh connection and read the head, then every
/// byte until the server closes the connection or `timeout` passes with
/// nothing received.
fn exchange(
    addr: SocketAddr,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    timeout: Duration,
) -> Exchange {
    let mut conn = Conn::new(addr);
    conn.reader
        .get_ref()
        .set_read_timeout(Some(timeout))
        .unwrap();
    let start = Instant::now();
    conn.send(method, target, headers);
    let (status_line, headers) = conn.read_head();
    let (body, end, arrivals) = read_until_end(&mut conn, start, None);
    Exchange {
        res: RawResponse {
            status_line,
            headers,
            body,
        },
        end,
        arrivals,
        elapsed: start.elapsed(),
    }
}

/// A request that the server answers and then closes (`Connection: close`).
fn fetch(addr: SocketAddr, method: &str, target: &str, headers: &[(&str, &str)]) -> Exchange {
    let mut h = headers.to_vec();
    h.push(("Connection", "close"));
    let x = exchange(addr, method, target, &h, Duration::from_secs(5));
    x.assert_closed();
    x
}

/// Read until EOF, an error, a read timeout, or `deadline` (since `start`).
fn read_until_end(
    conn: &mut Conn,
    start: Instant,
    deadline: Option<Duration>,
) -> (Vec<u8>, End, Vec<(Duration, usize)>) {
    let mut out = Vec::new();
    let mut arrivals = Vec::new();
    let mut buf = [0u8; 65536];
    loop {
        if deadline.is_some_and(|d| start.elapsed() >= d) {
            return (out, End::TimedOut, arrivals);
        }
        match conn.reader.read(&mut buf) {
            Ok(0) => return (out, End::Closed, arrivals),
            Ok(n) => {
                out.extend_from_slice(&buf[..n]);
                arrivals.push((start.elapsed(), out.len()));
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                if deadline.is_some_and(|d| start.elapsed() < d) {
                    continue;
                }
                return (out, End::TimedOut, arrivals);
            }
            Err(_) => return (out, End::Closed, arrivals),
        }
    }
}

/// Decode chunked transfer coding (RFC 9112 7.1) strictly from raw bytes:
/// the payload, and whether the stream was complete (last chunk and final
/// CRLF seen, nothing after). A truncated stream yields the payload so far.
fn dechunk(raw: &[u8]) -> (Vec<u8>, bool) {
    let mut payload = Vec::new();
    let mut rest = raw;
    loop {
        let Some(eol) = rest.windows(2).position(|w| w == b"\r\n") else {
            return (payload, false);
        };
        let line = std::str::from_utf8(&rest[..eol]).expect("chunk size line is ASCII");
        assert!(
            !line.is_empty() && line.bytes().all(|b| b.is_ascii_hexdigit()),
            "bad chunk-size line {line:?}"
        );
        let size = usize::from_str_radix(line, 16).unwrap();
        rest = &rest[eol + 2..];
        if size == 0 {
            // no trailers: the final CRLF ends the message
            if rest.len() < 2 {
                assert!(b"\r\n".starts_with(rest), "bad end of chunked body");
                return (payload, false);
            }
            assert_eq!(rest, b"\r\n", "bytes after the chunked body's end");
            return (payload, true);
        }
        if rest.len() < size {
            payload.extend_from_slice(rest);
            return (payload, false);
        }
        payload.extend_from_slice(&rest[..size]);
        rest = &rest[size..];
        if rest.len() < 2 {
            assert!(b"\r\n".starts_with(rest), "chunk data not followed by CRLF");
            return (payload, false);
        }
        assert_eq!(&rest[..2], b"\r\n", "chunk data not followed by CRLF");
        rest = &rest[2..];
    }
}

fn assert_absent(x: &Exchange, names: &[&str]) {
    for n in names {
        assert!(x.header(n).is_none(), "{n} present: {:?}", x.res.headers);
    }
}

// ---------------------------------------------------------------------------
// Responses that lie about the range
// ---------------------------------------------------------------------------

/// Quirks that bend Content-Range act on single-range 206 only: a 200, a
/// multipart 206 and a 416 are the correct ones.
fn assert_only_single_range_206_is_bent(spec: &str) {
    let s = server();
    let a = file_a();
    let target = format!("/_quirks/{spec}/a.bin");

    let full = fetch(s.addr, "GET", &target, &[]);
    assert_eq!(full.status_line(), "HTTP/1.1 200 OK", "{spec}");
    assert_eq!(full.header("Content-Length"), Some("10000"));
    assert_eq!(full.header("Rangeserve-Quirks"), Some(spec));
    assert_absent(&full, &["Content-Range", "Transfer-Encoding"]);
    assert!(full.body() == a, "{spec}: 200 body differs");

    let multi = fetch(
        s.addr,
        "GET",
        &target,
        &[("Range", "bytes=0-1999,5000-6999")],
    );
    assert_eq!(
        multi.status_line(),
        "HTTP/1.1 206 Partial Content",
        "{spec}"
    );
    assert_absent(&multi, &["Content-Range"]);
    let ct = multi.header("Content-Type").unwrap();
    let parts = parse_multipart(ct, multi.body());
    assert_eq!(parts.len(), 2, "{spec}");
    assert_eq!(parts[0].header("Content-Range"), Some("bytes 0-1999/10000"));
    assert!(parts[0].body == a[..2000]);
    assert_eq!(
        parts[1].header("Content-Range"),
        Some("bytes 5000-6999/10000")
    );
    assert!(parts[1].body == a[5000..7000]);
    assert_eq!(
        multi.header("Content-Length"),
        Some(multi.body().len().to_string().as_str())
    );

    let unsat = fetch(s.addr, "GET", &target, &[("Range", "bytes=20000-")]);
    assert_eq!(
        unsat.status_line(),
        "HTTP/1.1 416 Range Not Satisfiable",
        "{spec}"
    );
    assert_eq!(
        unsat.header("Content-Range"),
        Some("bytes */10000"),
        "{spec}"
    );
}

#[test]
fn range_from_zero_starts_body_and_content_range_at_zero_keeping_length() {
    let s = server();
    let a = file_a();
    for (range, want_cr, n) in [
        ("bytes=1000-1499", "bytes 0-499/10000", 500),
        ("bytes=9000-", "bytes 0-999/10000", 1000),
        ("bytes=-300", "bytes 0-299/10000", 300),
        ("bytes=0-99", "bytes 0-99/10000", 100),
        ("bytes=9999-9999", "bytes 0-0/10000", 1),
    ] {
        let x = fetch(
            s.addr,
            "GET",
            "/_quirks/range-from-zero/a.bin",
            &[("Range", range)],
        );
        assert_eq!(x.status_line(), "HTTP/1.1 206 Partial Content", "{range}");
        assert_eq!(x.header("Content-Range"), Some(want_cr), "{range}");
        assert_eq!(
            x.header("Content-Length"),
            Some(n.to_string().as_str()),
            "{range}"
        );
        assert_eq!(x.header("Accept-Ranges"), Some("bytes"));
        assert_eq!(x.header("ETag"), Some(etag_of(&a).as_str()));
        assert_eq!(x.header("Rangeserve-Quirks"), Some("range-from-zero"));
        assert_absent(&x, &["Transfer-Encoding", "Content-Encoding"]);
        assert!(x.body() == &a[..n], "{range}: body is not bytes 0..{n}");
    }
    // selected by header, same answer
    let x = fetch(
        s.addr,
        "GET",
        "/a.bin",
        &[
            ("Rangeserve-Quirks", "range-from-zero"),
            ("Range", "bytes=5000-5099"),
        ],
    );
    assert_eq!(x.status_line(), "HTTP/1.1 206 Partial Content");
    assert_eq!(x.header("Content-Range"), Some("bytes 0-99/10000"));
    assert!(x.body() == &a[..100]);
}

#[test]
fn range_from_zero_leaves_200_multipart_and_416_alone() {
    assert_only_single_range_206_is_bent("range-from-zero");
}

#[test]
fn range_capped_never_sends_more_than_n_and_reports_the_shorter_range() {
    let s = server();
    let a = file_a();
    for (spec, range, want_cr, from, to) in [
        (
            "range-capped=1000",
            "bytes=0-4999",
            "bytes 0-999/10000",
            0,
            1000,
        ),
        (
            "range-capped=1000",
            "bytes=0-",
            "bytes 0-999/10000",
            0,
            1000,
        ),
        (
            "range-capped=1000",
            "bytes=-3000",
            "bytes 7000-7999/10000",
            7000,
            8000,
        ),
        (
            "range-capped=1000",
            "bytes=2000-2999",
            "bytes 2000-2999/10000",
            2000,
            3000,
        ),
        (
            "range-capped=1000",
            "bytes=9500-",
            "bytes 9500-9999/10000",
            9500,
            10000,
        ),
        ("range-capped=1", "bytes=42-", "bytes 42-42/10000", 42, 43),
    ] {
        let x = fetch(
            s.addr,
            "GET",
            &format!("/_quirks/{spec}/a.bin"),
            &[("Range", range)],
        );
        let what = format!("{spec} {range}");
        assert_eq!(x.status_line(), "HTTP/1.1 206 Partial Content", "{what}");
        assert_eq!(x.header("Content-Range"), Some(want_cr), "{what}");
        assert_eq!(
            x.header("Content-Length"),
            Some((to - from).to_string().as_str()),
            "{what}"
        );
        assert_eq!(x.header("Rangeserve-Quirks"), Some(spec));
        assert_eq!(x.header("ETag"), Some(etag_of(&a).as_str()));
        assert_absent(&x, &["Transfer-Encoding"]);
        assert!(x.body() == &a[from..to], "{what}: body differs");
    }
}

#[test]
fn range_capped_leaves_200_multipart_and_416_alone() {
    // parts of 2000 bytes are not capped to 1000
    assert_only_single_range_206_is_bent("range-capped=1000");
}

#[test]
fn no_content_range_sends_206_without_content_range() {
    let s = server();
    let a = file_a();
    for target in ["/_quirks/no-content-range/a.bin", "/a.bin"] {
        let x = fetch(
            s.addr,
            "GET",
            target,
            &[
                ("Range", "bytes=1000-1499"),
                ("Rangeserve-Quirks", "no-content-range"),
            ],
        );
        assert_eq!(x.status_line(), "HTTP/1.1 206 Partial Content");
        assert_absent(&x, &["Content-Range", "Transfer-Encoding"]);
        assert_eq!(x.header("Content-Length"), Some("500"));
        assert_eq!(x.header("Accept-Ranges"), Some("bytes"));
        assert_eq!(x.header("ETag"), Some(etag_of(&a).as_str()));
        assert_eq!(x.header("Rangeserve-Quirks"), Some("no-content-range"));
        assert!(x.body() == &a[1000..1500]);
    }
}

#[test]
fn no_content_range_leaves_200_multipart_and_416_alone() {
    assert_only_single_range_206_is_bent("no-content-range");
}

#[test]
fn bad_content_range_sends_a_content_range_without_length() {
    let s = server();
    let a = file_a();
    for (range, want, from, to) in [
        ("bytes=1000-1499", "bytes 1000-1499", 1000, 1500),
        ("bytes=-10", "bytes 9990-9999", 9990, 10000),
        ("bytes=0-0", "bytes 0-0", 0, 1),
    ] {
        let x = fetch(
            s.addr,
            "GET",
            "/_quirks/bad-content-range/a.bin",
            &[("Range", range)],
        );
        assert_eq!(x.status_line(), "HTTP/1.1 206 Partial Content", "{range}");
        assert_eq!(x.header("Content-Range"), Some(want), "{range}");
        assert_eq!(
            x.header("Content-Length"),
            Some((to - from).to_string().as_str())
        );
        assert_eq!(x.header("Rangeserve-Quirks"), Some("bad-content-range"));
        assert!(x.body() == &a[from..to], "{range}");
    }
}

#[test]
fn bad_content_range_leaves_200_multipart_and_416_alone() {
    assert_only_single_range_206_is_bent("bad-content-range");
}

// ---------------------------------------------------------------------------
// Versions: replica-flip
// ---------------------------------------------------------------------------

#[test]
fn replica_flip_alternates_real_and_xor_version_per_path_get_and_head() {
    let s = server();
    let a = file_a();
    let a2 = flipped(&a);
    let t = "/_quirks/replica-flip/a.bin";

    // 1st: the real file
    let r1 = fetch(s.addr, "GET", t, &[]);
    assert_eq!(r1.status_line(), "HTTP/1.1 200 OK");
    assert_eq!(r1.header("Content-Length"), Some("10000"));
    assert_eq!(r1.header("ETag"), Some(etag_of(&a).as_str()));
    assert_eq!(r1.header("Rangeserve-Quirks"), Some("replica-flip"));
    assert!(r1.body() == a, "first response is not the real file");
    let lm1 = r1.header("Last-Modified").unwrap().to_string();

    // 2nd: every byte XOR 0xFF, same size, its own ETag and Last-Modified
    let r2 = fetch(s.addr, "GET", t, &[]);
    assert_eq!(r2.status_line(), "HTTP/1.1 200 OK");
    assert_eq!(r2.header("Content-Length"), Some("10000"));
    assert_eq!(r2.header("ETag"), Some(etag_of(&a2).as_str()));
    assert!(r2.body() == a2, "second response is not the XOR version");
    let lm2 = r2.header("Last-Modified").unwrap().to_string();
    assert_ne!(lm1, lm2, "second version has the same Last-Modified");
    assert!(httpdate::parse_http_date(&lm2).is_ok(), "{lm2}");

    // 3rd: a HEAD advances too (real file), no body
    let r3 = fetch(s.addr, "HEAD", t, &[]);
    assert_eq!(r3.status_line(), "HTTP/1.1 200 OK");
    assert_eq!(r3.header("ETag"), Some(etag_of(&a).as_str()));
    assert_eq!(r3.header("Last-Modified"), Some(lm1.as_str()));
    assert_eq!(r3.header("Content-Length"), Some("10000"));
    assert!(r3.body().is_empty());

    // 4th: HEAD again -> second version
    let r4 = fetch(s.addr, "HEAD", t, &[]);
    assert_eq!(r4.header("ETag"), Some(etag_of(&a2).as_str()));
    assert_eq!(r4.header("Last-Modified"), Some(lm2.as_str()));

    // 5th: a range of the real file; 6th: the same range of the second version
    let r5 = fetch(s.addr, "GET", t, &[("Range", "bytes=100-199")]);
    assert_eq!(r5.status_line(), "HTTP/1.1 206 Partial Content");
    assert_eq!(r5.header("Content-Range"), Some("bytes 100-199/10000"));
    assert_eq!(r5.header("ETag"), Some(etag_of(&a).as_str()));
    assert!(r5.body() == &a[100..200]);
    let r6 = fetch(s.addr, "GET", t, &[("Range", "bytes=100-199")]);
    assert_eq!(r6.status_line(), "HTTP/1.1 206 Partial Content");
    assert_eq!(r6.header("Content-Range"), Some("bytes 100-199/10000"));
    assert_eq!(r6.header("ETag"), Some(etag_of(&a2).as_str()));
    assert!(r6.body() == &a2[100..200]);

    // per path: b.bin starts with its real file, whatever a.bin did
    let b = file_b();
    let b1 = fetch(s.addr, "GET", "/_quirks/replica-flip/b.bin", &[]);
    assert_eq!(b1.header("ETag"), Some(etag_of(&b).as_str()));
    assert!(b1.body() == b);
    let b2 = fetch(s.addr, "GET", "/_quirks/replica-flip/b.bin", &[]);
    assert!(b2.body() == flipped(&b));

    // and a.bin carries on where it was (7th: real)
    let r7 = fetch(s.addr, "GET", t, &[]);
    assert!(r7.body() == a);

    // a separate server has its own counters: the first response is real
    let other = server();
    let o1 = fetch(other.addr, "GET", t, &[]);
    assert!(o1.body() == a);
}

#[test]
fn replica_flip_as_a_global_quirk() {
    let s = server_with(Config {
        quirks: quirks("replica-flip"),
        ..Config::default()
    });
    let a = file_a();
    let r1 = fetch(s.addr, "GET", "/a.bin", &[]);
    assert_eq!(r1.header("Rangeserve-Quirks"), Some("replica-flip"));
    assert!(r1.body() == a);
    let r2 = fetch(s.addr, "GET", "/a.bin", &[]);
    assert_eq!(r2.header("ETag"), Some(etag_of(&flipped(&a)).as_str()));
    assert!(r2.body() == flipped(&a));
}

#[test]
fn replica_flip_if_range_mismatch_gets_the_other_version_in_full() {
    let s = server();
    let a = file_a();
    let t = "/_quirks/replica-flip/a.bin";
    let r1 = fetch(s.addr, "GET", t, &[("Range", "bytes=0-3999")]);
    assert_eq!(r1.status_line(), "HTTP/1.1 206 Partial Content");
    let tag1 = r1.header("ETag").unwrap().to_string();
    // the version changed: If-Range does not match, 200 with the new version
    let r2 = fetch(
        s.addr,
        "GET",
        t,
        &[("Range", "bytes=4000-"), ("If-Range", &tag1)],
    );
    assert_eq!(r2.status_line(), "HTTP/1.1 200 OK");
    assert_absent(&r2, &["Content-Range"]);
    assert!(r2.body() == flipped(&a));
    // back on the first version: If-Range with its tag matches
    let r3 = fetch(
        s.addr,
        "GET",
        t,
        &[("Range", "bytes=4000-"), ("If-Range", &tag1)],
    );
    assert_eq!(r3.status_line(), "HTTP/1.1 206 Partial Content");
    assert_eq!(r3.header("Content-Range"), Some("bytes 4000-9999/10000"));
    assert!(r3.body() == &a[4000..]);
}

// ---------------------------------------------------------------------------
// Transport: chunked
// ---------------------------------------------------------------------------

#[test]
fn chunked_sends_no_content_length_and_a_valid_chunked_body() {
    let s = server();
    let a = file_a();

    let x = fetch(s.addr, "GET", "/_quirks/chunked/a.bin", &[]);
    assert_eq!(x.status_line(), "HTTP/1.1 200 OK");
    assert_eq!(x.header("Transfer-Encoding"), Some("chunked"));
    assert_absent(&x, &["Content-Length", "Content-Range"]);
    assert_eq!(x.header("ETag"), Some(etag_of(&a).as_str()));
    assert_eq!(x.header("Rangeserve-Quirks"), Some("chunked"));
    let (payload, complete) = dechunk(x.body());
    assert!(complete, "chunked body has no last chunk");
    assert!(payload == a, "chunked payload differs from the file");

    // a single range: 206 with Content-Range, body chunked
    let x = fetch(
        s.addr,
        "GET",
        "/a.bin",
        &[
            ("Rangeserve-Quirks", "chunked"),
            ("Range", "bytes=100-2099"),
        ],
    );
    assert_eq!(x.status_line(), "HTTP/1.1 206 Partial Content");
    assert_eq!(x.header("Transfer-Encoding"), Some("chunked"));
    assert_eq!(x.header("Content-Range"), Some("bytes 100-2099/10000"));
    assert_absent(&x, &["Content-Length"]);
    let (payload, complete) = dechunk(x.body());
    assert!(complete);
    assert!(payload == a[100..2100]);

    // multipart: also chunked, and the decoded body is a valid multipart body
    let x = fetch(
        s.addr,
        "GET",
        "/_quirks/chunked/a.bin",
        &[("Range", "bytes=0-9,500-509")],
    );
    assert_eq!(x.status_line(), "HTTP/1.1 206 Partial Content");
    assert_eq!(x.header("Transfer-Encoding"), Some("chunked"));
    assert_absent(&x, &["Content-Length"]);
    let (payload, complete) = dechunk(x.body());
    assert!(complete);
    let parts = parse_multipart(x.header("Content-Type").unwrap(), &payload);
    assert!(parts[0].body == a[..10] && parts[1].body == a[500..510]);
}

#[test]
fn chunked_head_has_no_content_length() {
    let s = server();
    // HEAD answers like GET: no Content-Length (and surely not a false 0)
    let x = fetch(s.addr, "HEAD", "/_quirks/chunked/a.bin", &[]);
    assert_eq!(x.status_line(), "HTTP/1.1 200 OK");
    assert_absent(&x, &["Content-Length"]);
    assert!(x.body().is_empty());
}

#[test]
fn chunked_keeps_the_connection_usable() {
    let s = server();
    let a = file_a();
    let mut conn = s.connect();
    for _ in 0..2 {
        conn.send("GET", "/_quirks/chunked/a.bin", &[]);
        let (status, headers) = conn.read_head();
        assert_eq!(status, "HTTP/1.1 200 OK");
        assert!(headers
            .iter()
            .any(|(n, v)| n.eq_ignore_ascii_case("transfer-encoding") && v == "chunked"));
        // read exactly one chunked body from the stream
        let mut raw = Vec::new();
        loop {
            let mut b = [0u8; 1];
            conn.reader.read_exact(&mut b).unwrap();
            raw.push(b[0]);
            if raw.ends_with(b"\r\n0\r\n\r\n") || raw == b"0\r\n\r\n" {
                let (payload, complete) = dechunk(&raw);
                if complete {
                    assert!(payload == a);
                    break;
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Transport: drop-after
// ---------------------------------------------------------------------------

/// Keep-alive request (no `Connection: close`): the end of the connection
/// proves the server closed it.
fn keepalive(addr: SocketAddr, target: &str, headers: &[(&str, &str)]) -> Exchange {
    exchange(addr, "GET", target, headers, Duration::from_secs(3))
}

#[test]
fn drop_after_closes_after_exactly_n_body_bytes() {
    let s = server();
    let a = file_a();

    let x = keepalive(s.addr, "/_quirks/drop-after=1000/a.bin", &[]);
    assert_eq!(x.status_line(), "HTTP/1.1 200 OK");
    assert_eq!(
        x.header("Content-Length"),
        Some("10000"),
        "full length announced"
    );
    assert_eq!(x.header("ETag"), Some(etag_of(&a).as_str()));
    assert_eq!(x.header("Rangeserve-Quirks"), Some("drop-after=1000"));
    assert_absent(&x, &["Transfer-Encoding"]);
    x.assert_closed();
    assert_eq!(x.body().len(), 1000);
    assert!(x.body() == &a[..1000]);

    // a range: the 206 announces the range, N bytes of it arrive
    let x = keepalive(
        s.addr,
        "/a.bin",
        &[
            ("Rangeserve-Quirks", "drop-after=1000"),
            ("Range", "bytes=5000-7999"),
        ],
    );
    assert_eq!(x.status_line(), "HTTP/1.1 206 Partial Content");
    assert_eq!(x.header("Content-Range"), Some("bytes 5000-7999/10000"));
    assert_eq!(x.header("Content-Length"), Some("3000"));
    x.assert_closed();
    assert_eq!(x.body().len(), 1000);
    assert!(x.body() == &a[5000..6000]);

    // drop-after=0: headers only, then the close
    let x = keepalive(s.addr, "/_quirks/drop-after=0/a.bin", &[]);
    assert_eq!(x.status_line(), "HTTP/1.1 200 OK");
    assert_eq!(x.header("Content-Length"), Some("10000"));
    x.assert_closed();
    assert_eq!(x.body().len(), 0);

    // every response is cut, not only the first
    let x = keepalive(s.addr, "/_quirks/drop-after=1000/a.bin", &[]);
    x.assert_closed();
    assert_eq!(x.body().len(), 1000);
}

#[test]
fn drop_after_beyond_the_body_changes_nothing() {
    let s = server();
    let a = file_a();
    let mut conn = s.connect();
    for n in ["10000", "99999"] {
        // the whole body, and the connection stays usable
        conn.send("GET", &format!("/_quirks/drop-after={n}/a.bin"), &[]);
        let r = conn.read_response(false);
        assert_eq!(r.status_line, "HTTP/1.1 200 OK");
        assert!(r.body == a);
    }
    conn.send(
        "GET",
        "/_quirks/drop-after=1000/a.bin",
        &[("Range", "bytes=0-999")],
    );
    let r = conn.read_response(false);
    assert_eq!(r.status_line, "HTTP/1.1 206 Partial Content");
    assert!(r.body == a[..1000]);
    // HEAD has no body to cut
    conn.send("HEAD", "/_quirks/drop-after=0/a.bin", &[]);
    let r = conn.read_response(true);
    assert_eq!(r.status_line, "HTTP/1.1 200 OK");
    assert_eq!(r.header("Content-Length"), Some("10000"));
    conn.send("GET", "/a.bin", &[]);
    assert!(conn.read_response(false).body == a);
}

#[test]
fn drop_after_with_chunked_counts_payload_bytes_not_framing() {
    let s = server();
    let a = file_a();
    for n in [1usize, 1000, 4096] {
        let x = keepalive(
            s.addr,
            &format!("/_quirks/chunked,drop-after={n}/a.bin"),
            &[],
        );
        assert_eq!(x.status_line(), "HTTP/1.1 200 OK");
        assert_eq!(x.header("Transfer-Encoding"), Some("chunked"));
        assert_absent(&x, &["Content-Length"]);
        x.assert_closed();
        let (payload, complete) = dechunk(x.body());
        assert!(
            !complete,
            "a dropped chunked body must not end with the last chunk"
        );
        assert_eq!(payload.len(), n, "payload bytes before the close");
        assert!(payload == a[..n]);
    }
}

// ---------------------------------------------------------------------------
// Transport: drop-at
// ---------------------------------------------------------------------------

#[test]
fn drop_at_cuts_responses_that_start_before_offset_and_include_it() {
    let s = server();
    let a = file_a();
    let t = "/_quirks/drop-at=4000/a.bin";

    // whole file: bytes 0..4000, then the close
    let x = keepalive(s.addr, t, &[]);
    assert_eq!(x.status_line(), "HTTP/1.1 200 OK");
    assert_eq!(x.header("Content-Length"), Some("10000"));
    assert_eq!(x.header("Rangeserve-Quirks"), Some("drop-at=4000"));
    x.assert_closed();
    assert_eq!(x.body().len(), 4000);
    assert!(x.body() == &a[..4000]);

    for (range, cr, from) in [
        ("bytes=1000-", "bytes 1000-9999/10000", 1000),
        ("bytes=1000-4000", "bytes 1000-4000/10000", 1000),
        ("bytes=3999-4000", "bytes 3999-4000/10000", 3999),
        ("bytes=0-", "bytes 0-9999/10000", 0),
    ] {
        let x = keepalive(s.addr, t, &[("Range", range)]);
        assert_eq!(x.status_line(), "HTTP/1.1 206 Partial Content", "{range}");
        assert_eq!(x.header("Content-Range"), Some(cr), "{range}");
        x.assert_closed();
        assert_eq!(
            x.body().len(),
            4000 - from,
            "{range}: bytes before the close"
        );
        assert!(x.body() == &a[from..4000], "{range}");
    }
}

#[test]
fn drop_at_serves_responses_starting_at_or_after_offset_or_ending_before_it() {
    let s = server();
    let a = file_a();
    let mut conn = s.connect();
    for (range, from, to) in [
        ("bytes=4000-", 4000, 10000),    // starts at OFFSET
        ("bytes=4001-", 4001, 10000),    // after
        ("bytes=5000-5999", 5000, 6000), // after
        ("bytes=-100", 9900, 10000),     // suffix, after
        ("bytes=1000-3999", 1000, 4000), // before, but does not include OFFSET
        ("bytes=0-0", 0, 1),
    ] {
        // served in full, on a connection that stays open
        conn.send("GET", "/_quirks/drop-at=4000/a.bin", &[("Range", range)]);
        let r = conn.read_response(false);
        assert_eq!(r.status_line, "HTTP/1.1 206 Partial Content", "{range}");
        assert!(r.body == a[from..to], "{range}");
    }
    // OFFSET at or beyond the end: the whole file is served
    for offset in [10000, 20000] {
        conn.send("GET", &format!("/_quirks/drop-at={offset}/a.bin"), &[]);
        let r = conn.read_response(false);
        assert_eq!(r.status_line, "HTTP/1.1 200 OK");
        assert!(r.body == a);
    }
    // drop-at=0: nothing starts before it
    conn.send("GET", "/_quirks/drop-at=0/a.bin", &[]);
    assert!(conn.read_response(false).body == a);
}

// ---------------------------------------------------------------------------
// Transport: throttle
// ---------------------------------------------------------------------------

#[test]
fn throttle_paces_the_body_without_a_burst() {
    let s = server();
    let big = file_big();
    let rate = 64.0 * 1024.0;
    let x = fetch(s.addr, "GET", "/_quirks/throttle=64k/big.bin", &[]);
    assert_eq!(x.status_line(), "HTTP/1.1 200 OK");
    assert_eq!(x.header("Content-Length"), Some("65536"));
    assert!(x
        .header("Rangeserve-Quirks")
        .unwrap()
        .starts_with("throttle="));
    assert_absent(&x, &["Transfer-Encoding"]);
    assert!(x.body() == big, "throttled body differs");
    // the first bytes come at once
    let (first_at, _) = x.arrivals[0];
    assert!(
        // loose: a loaded CI machine runs debug builds of many tests at once
        first_at < Duration::from_secs(1),
        "first bytes after {first_at:?}"
    );
    // 64 KiB at 64 KiB/s: the last write leaves at 56/64 s
    assert!(
        x.elapsed >= Duration::from_millis(700),
        "64 KiB at 64k took only {:?}",
        x.elapsed
    );
    assert!(x.elapsed < Duration::from_secs(5), "took {:?}", x.elapsed);
    // at no time more than one 16 KiB write ahead of the rate (arrival times
    // are taken after the bytes came, so the bound is a loose one)
    for &(t, n) in &x.arrivals {
        let allowed = 16384.0 + rate * t.as_secs_f64();
        assert!(
            (n as f64) <= allowed,
            "{n} bytes received after {t:?}: more than the rate allows"
        );
    }
}

#[test]
fn throttle_applies_to_ranges_too() {
    let s = server();
    let big = file_big();
    let x = fetch(
        s.addr,
        "GET",
        "/big.bin",
        &[
            ("Rangeserve-Quirks", "throttle=32k"),
            ("Range", "bytes=1000-25575"),
        ],
    );
    assert_eq!(x.status_line(), "HTTP/1.1 206 Partial Content");
    assert_eq!(x.header("Content-Range"), Some("bytes 1000-25575/65536"));
    assert!(x.body() == &big[1000..25576]);
    // 24 KiB at 32 KiB/s in 4 KiB writes: the last leaves at 20/32 s
    assert!(x.elapsed >= Duration::from_millis(500), "{:?}", x.elapsed);
}

// ---------------------------------------------------------------------------
// Transport: stall-after
// ---------------------------------------------------------------------------

fn stall_server() -> TestServer {
    server_with(Config {
        quirks_mode: true,
        stall_limit: Duration::from_secs(1),
        ..Config::default()
    })
}

#[test]
fn stall_after_sends_n_bytes_then_silence_then_closes_at_the_stall_limit() {
    let s = stall_server();
    let a = file_a();
    let x = keepalive(s.addr, "/_quirks/stall-after=3000/a.bin", &[]);
    assert_eq!(x.status_line(), "HTTP/1.1 200 OK");
    assert_eq!(x.header("Content-Length"), Some("10000"));
    assert_eq!(x.header("Rangeserve-Quirks"), Some("stall-after=3000"));
    x.assert_closed();
    assert_eq!(x.body().len(), 3000);
    assert!(x.body() == &a[..3000]);
    // the last byte came at once, then nothing for the stall limit
    let (last_at, _) = *x.arrivals.last().unwrap();
    assert!(
        last_at < Duration::from_millis(1500),
        "bytes late: {last_at:?}"
    );
    let silence = x.elapsed - last_at;
    assert!(
        silence >= Duration::from_millis(800),
        "closed after only {silence:?} of silence"
    );
    assert!(
        x.elapsed < last_at + Duration::from_secs(3),
        "closed after {:?}",
        x.elapsed
    );
}

#[test]
fn stall_after_on_a_range_and_silence_seen_by_a_read_timeout() {
    let s = stall_server();
    let a = file_a();
    // a client with a 300 ms read timeout sees N bytes, then times out with
    // the connection still open
    let x = exchange(
        s.addr,
        "GET",
        "/_quirks/stall-after=3000/a.bin",
        &[("Range", "bytes=2000-")],
        Duration::from_millis(300),
    );
    assert_eq!(x.status_line(), "HTTP/1.1 206 Partial Content");
    assert_eq!(x.header("Content-Range"), Some("bytes 2000-9999/10000"));
    assert_eq!(x.header("Content-Length"), Some("8000"));
    assert_eq!(
        x.end,
        End::TimedOut,
        "connection closed before the stall limit"
    );
    assert_eq!(x.body().len(), 3000);
    assert!(x.body() == &a[2000..5000]);

    // stall-after beyond the body: served in full at once
    let x = fetch(s.addr, "GET", "/_quirks/stall-after=10000/a.bin", &[]);
    // a stall would have closed the connection before the whole body
    assert!(x.body() == a);
    assert!(x.elapsed < Duration::from_secs(2), "{:?}", x.elapsed);
}

// ---------------------------------------------------------------------------
// Transport: fail-first
// ---------------------------------------------------------------------------

fn assert_503(x: &Exchange, spec: &str) {
    assert_eq!(x.status_line(), "HTTP/1.1 503 Service Unavailable");
    assert_eq!(x.header("Retry-After"), Some("1"));
    assert_eq!(x.header("Rangeserve-Quirks"), Some(spec));
    assert_absent(
        x,
        &["ETag", "Content-Range", "Accept-Ranges", "Last-Modified"],
    );
}

#[test]
fn fail_first_refuses_the_first_n_requests_per_path_head_included() {
    let s = server();
    let a = file_a();
    let spec = "fail-first=2";
    let t = "/_quirks/fail-first=2/a.bin";
    // 1: GET refused
    assert_503(&fetch(s.addr, "GET", t, &[]), spec);
    // 2: HEAD counts too
    let x = fetch(s.addr, "HEAD", t, &[]);
    assert_503(&x, spec);
    assert!(x.body().is_empty());
    // 3: served; the counter is per path after the prefix, so the header form
    //    on /a.bin shares it
    let x = fetch(s.addr, "GET", "/a.bin", &[("Rangeserve-Quirks", spec)]);
    assert_eq!(x.status_line(), "HTTP/1.1 200 OK");
    assert_eq!(x.header("Rangeserve-Quirks"), Some(spec));
    assert_eq!(x.header("ETag"), Some(etag_of(&a).as_str()));
    assert_absent(&x, &["Retry-After"]);
    assert!(x.body() == a);
    // 4: still served, ranges too
    let x = fetch(s.addr, "GET", t, &[("Range", "bytes=10-19")]);
    assert_eq!(x.status_line(), "HTTP/1.1 206 Partial Content");
    assert_eq!(x.header("Content-Range"), Some("bytes 10-19/10000"));
    assert!(x.body() == &a[10..20]);
    let x = fetch(s.addr, "HEAD", t, &[]);
    assert_eq!(x.status_line(), "HTTP/1.1 200 OK");

    // another path has its own counter
    let x = fetch(s.addr, "GET", "/_quirks/fail-first=2/b.bin", &[]);
    assert_503(&x, spec);

    // a separate server has its own counters
    let other = server();
    assert_503(&fetch(other.addr, "GET", t, &[]), spec);
}

#[test]
fn fail_first_counts_only_requests_that_carry_it() {
    let s = server();
    let a = file_a();
    // requests without fail-first do not use up the refusals
    for _ in 0..3 {
        assert!(fetch(s.addr, "GET", "/a.bin", &[]).body() == a);
    }
    // fail-first combined with another quirk, same path, same counter
    let x = fetch(s.addr, "GET", "/_quirks/fail-first=2,chunked/a.bin", &[]);
    assert_503(&x, "fail-first=2,chunked");
    assert_503(
        &fetch(s.addr, "GET", "/_quirks/fail-first=2/a.bin", &[]),
        "fail-first=2",
    );
    let x = fetch(s.addr, "GET", "/_quirks/fail-first=2,chunked/a.bin", &[]);
    assert_eq!(x.status_line(), "HTTP/1.1 200 OK");
    assert!(dechunk(x.body()).0 == a);
    // fail-first=0 never refuses
    let x = fetch(s.addr, "GET", "/_quirks/fail-first=0/b.bin", &[]);
    assert_eq!(x.status_line(), "HTTP/1.1 200 OK");
}

#[test]
fn fail_first_as_a_global_quirk() {
    let s = server_with(Config {
        quirks: quirks("fail-first=1"),
        ..Config::default()
    });
    assert_503(&fetch(s.addr, "GET", "/a.bin", &[]), "fail-first=1");
    let x = fetch(s.addr, "GET", "/a.bin", &[]);
    assert_eq!(x.status_line(), "HTTP/1.1 200 OK");
    assert!(x.body() == file_a());
    // `none` clears it for one request, which then does not count either
    let x = fetch(s.addr, "GET", "/_quirks/none/b.bin", &[]);
    assert_eq!(x.status_line(), "HTTP/1.1 200 OK");
    assert_eq!(x.header("Rangeserve-Quirks"), Some(""));
    assert_503(&fetch(s.addr, "GET", "/b.bin", &[]), "fail-first=1");
}

// ---------------------------------------------------------------------------
// Resume scenarios: a simple client loop per transport quirk
// ---------------------------------------------------------------------------

/// How the resuming client behaves.
#[derive(Debug, Clone, Copy)]
struct Client {
    /// Send `If-Range: <ETag>` when resuming.
    if_range: bool,
    /// Socket read timeout (a stalled response is abandoned after it).
    read_timeout: Duration,
    /// Give up on a response after this long, and resume.
    attempt_deadline: Option<Duration>,
    max_requests: usize,
}

impl Default for Client {
    fn default() -> Self {
        Client {
            if_range: true,
            read_timeout: Duration::from_secs(5),
            attempt_deadline: None,
            max_requests: 20,
        }
    }
}

/// The result of a download.
#[derive(Debug)]
struct Download {
    data: Vec<u8>,
    statuses: Vec<u16>,
    /// The ETag of the last response that delivered bytes.
    etag: Option<String>,
}

/// Download `target`: a range request from the bytes we have, resumed after
/// every short body with `Range: bytes=HAVE-` (+ `If-Range: <ETag>`); a 200
/// restarts from its body, a 503 is retried, a shorter 206 is continued
/// from its Content-Range.
fn download(addr: SocketAddr, target: &str, extra: &[(&str, &str)], client: Client) -> Download {
    let mut data: Vec<u8> = Vec::new();
    let mut etag: Option<String> = None;
    let mut statuses = Vec::new();
    for _ in 0..client.max_requests {
        let range = format!("bytes={}-", data.len());
        let mut headers: Vec<(&str, &str)> = vec![("Range", &range), ("Connection", "close")];
        if client.if_range && !data.is_empty() {
            if let Some(t) = &etag {
                headers.push(("If-Range", t));
            }
        }
        headers.extend_from_slice(extra);
        let mut conn = Conn::new(addr);
        // with a deadline, wake up often to check it; without one, a read
        // timeout ends the attempt (a stalled response is abandoned)
        let socket_timeout = match client.attempt_deadline {
            Some(_) => Duration::from_millis(20),
            None => client.read_timeout,
        };
        conn.reader
            .get_ref()
            .set_read_timeout(Some(socket_timeout))
            .unwrap();
        let start = Instant::now();
        conn.send("GET", target, &headers);
        let (status_line, head) = conn.read_head();
        let res = RawResponse {
            status_line,
            headers: head,
            body: Vec::new(),
        };
        let status = res.status();
        statuses.push(status);
        if status == 503 {
            assert_eq!(res.header("Retry-After"), Some("1"));
            // honoured loosely, to keep the test quick
            std::thread::sleep(Duration::from_millis(20));
            continue;
        }
        let (raw, _end, _) = read_until_end(&mut conn, start, client.attempt_deadline);
        let payload = if res.header("Transfer-Encoding") == Some("chunked") {
            dechunk(&raw).0
        } else {
            let n: usize = res.header("Content-Length").unwrap().parse().unwrap();
            raw[..raw.len().min(n)].to_vec()
        };
        let total = match status {
            200 => {
                data = payload;
                res.header("Content-Length")
                    .map(|v| v.parse().unwrap())
                    .or_else(|| dechunk(&raw).1.then_some(data.len()))
            }
            206 => {
                let (first, last, len) = parse_content_range(
                    res.header("Content-Range")
                        .expect("a 206 without Content-Range"),
                );
                assert_eq!(first as usize, data.len(), "206 starts elsewhere");
                let want = (last - first + 1) as usize;
                assert!(payload.len() <= want, "more bytes than the Content-Range");
                data.extend_from_slice(&payload);
                Some(len as usize)
            }
            other => panic!("unexpected status {other}"),
        };
        etag = res.header("ETag").map(str::to_string);
        if total == Some(data.len()) {
            return Download {
                data,
                statuses,
                etag,
            };
        }
    }
    panic!("download of {target} not complete after {statuses:?}");
}

fn assert_complete(d: &Download, want: &[u8]) {
    assert_eq!(d.data.len(), want.len());
    assert_eq!(sha(&d.data), sha(want), "resumed file differs");
}

#[test]
fn resume_after_drop_after() {
    let s = server();
    let a = file_a();
    let d = download(
        s.addr,
        "/_quirks/drop-after=3000/a.bin",
        &[],
        Client::default(),
    );
    assert_complete(&d, &a);
    assert_eq!(d.statuses, [206, 206, 206, 206]);
    // the same with the header form
    let d = download(
        s.addr,
        "/a.bin",
        &[("Rangeserve-Quirks", "drop-after=2500")],
        Client::default(),
    );
    assert_complete(&d, &a);
    assert_eq!(d.statuses, [206, 206, 206, 206]);
}

#[test]
fn resume_after_drop_at() {
    let s = server();
    let a = file_a();
    let d = download(
        s.addr,
        "/_quirks/drop-at=4000/a.bin",
        &[],
        Client::default(),
    );
    assert_complete(&d, &a);
    assert_eq!(
        d.statuses,
        [206, 206],
        "one drop, then the resume completes"
    );
}

#[test]
fn resume_after_stall_after() {
    let s = stall_server();
    let a = file_a();
    let started = Instant::now();
    let d = download(
        s.addr,
        "/_quirks/stall-after=4000/a.bin",
        &[],
        Client {
            read_timeout: Duration::from_millis(250),
            ..Client::default()
        },
    );
    assert_complete(&d, &a);
    assert_eq!(d.statuses, [206, 206, 206]);
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn resume_under_throttle() {
    let s = server();
    let big = file_big();
    // a client that abandons a slow response after 250 ms and resumes
    let d = download(
        s.addr,
        "/_quirks/throttle=64k/big.bin",
        &[],
        Client {
            attempt_deadline: Some(Duration::from_millis(250)),
            ..Client::default()
        },
    );
    assert_complete(&d, &big);
    assert!(d.statuses.len() >= 2, "{:?}", d.statuses);
    assert!(d.statuses.iter().all(|&s| s == 206));
    // and a patient client gets it in one response
    let d = download(
        s.addr,
        "/_quirks/throttle=256k/big.bin",
        &[],
        Client::default(),
    );
    assert_complete(&d, &big);
    assert_eq!(d.statuses, [206]);
}

#[test]
fn resume_with_chunked() {
    let s = server();
    let a = file_a();
    let d = download(s.addr, "/_quirks/chunked/a.bin", &[], Client::default());
    assert_complete(&d, &a);
    assert_eq!(d.statuses, [206]);
    // truncated chunked bodies, resumed from the payload received
    let d = download(
        s.addr,
        "/_quirks/chunked,drop-after=3000/a.bin",
        &[],
        Client::default(),
    );
    assert_complete(&d, &a);
    assert_eq!(d.statuses, [206, 206, 206, 206]);
}

#[test]
fn resume_after_fail_first() {
    let s = server();
    let a = file_a();
    let d = download(
        s.addr,
        "/_quirks/fail-first=2/a.bin",
        &[],
        Client::default(),
    );
    assert_complete(&d, &a);
    assert_eq!(d.statuses, [503, 503, 206]);
    // combined with a drop: the retries are spent, the resume completes
    let d = download(
        s.addr,
        "/_quirks/fail-first=1,drop-after=6000/b.bin",
        &[],
        Client::default(),
    );
    assert_complete(&d, &file_b());
    assert_eq!(d.statuses, [503, 206, 206]);
}

#[test]
fn resume_across_range_capped() {
    let s = server();
    let a = file_a();
    let d = download(
        s.addr,
        "/_quirks/range-capped=3000/a.bin",
        &[],
        Client::default(),
    );
    assert_complete(&d, &a);
    assert_eq!(d.statuses, [206, 206, 206, 206]);
}

#[test]
fn replica_flip_resume_with_if_range_never_splices_but_a_naive_one_does() {
    let s = server();
    let a = file_a();
    let a2 = flipped(&a);
    let target = "/_quirks/replica-flip,range-capped=4000/a.bin";

    // with If-Range: the second response is the other version, If-Range does
    // not match, so it comes whole (200) and the client starts over from it
    let d = download(s.addr, target, &[], Client::default());
    assert_eq!(d.statuses, [206, 200]);
    assert_complete(&d, &a2);
    assert_eq!(d.etag.as_deref(), Some(etag_of(&d.data).as_str()));

    // without If-Range, on a fresh path counter (another server): bytes of
    // the two versions are spliced, and the hash matches neither
    let s = server();
    let d = download(
        s.addr,
        target,
        &[],
        Client {
            if_range: false,
            ..Client::default()
        },
    );
    assert_eq!(d.statuses, [206, 206, 206]);
    let mut spliced = a[..4000].to_vec();
    spliced.extend_from_slice(&a2[4000..8000]);
    spliced.extend_from_slice(&a[8000..]);
    assert!(d.data == spliced, "expected v1, v2, v1 spliced");
    assert_ne!(sha(&d.data), sha(&a));
    assert_ne!(sha(&d.data), sha(&a2));
}

#[test]
fn replica_flip_with_drops_if_range_keeps_every_buffer_one_version() {
    // drops on every response and a flip on every response: a validating
    // client never completes, but never holds bytes of two versions either
    let s = server();
    let a = file_a();
    let a2 = flipped(&a);
    let t = "/_quirks/replica-flip,drop-after=3000/a.bin";
    let mut data: Vec<u8> = Vec::new();
    let mut etag = String::new();
    for i in 0..6 {
        let range = format!("bytes={}-", data.len());
        let mut h: Vec<(&str, &str)> = vec![("Range", &range)];
        if i > 0 {
            h.push(("If-Range", &etag));
        }
        let x = keepalive(s.addr, t, &h);
        x.assert_closed();
        assert_eq!(x.body().len(), 3000);
        if i == 0 {
            assert_eq!(x.status_line(), "HTTP/1.1 206 Partial Content");
            data = x.body().to_vec();
        } else {
            assert_eq!(x.status_line(), "HTTP/1.1 200 OK", "request {i} spliced");
            data = x.body().to_vec();
        }
        etag = x.header("ETag").unwrap().to_string();
        let version = if i % 2 == 0 { &a } else { &a2 };
        assert_eq!(etag, etag_of(version));
        assert!(data == version[..data.len()], "request {i}: mixed versions");
    }
}
