//! The HTTP/1.1 fast path (`rangeserve::h1`) against hyper, over real TCP:
//! the same request answered by each must give the same bytes (but for
//! `Date` and multipart boundaries), first or from a file's cached state,
//! and a connection moves from one to the other mid-stream without losing
//! or reordering a byte.

mod common;

use std::io::{BufRead, Read, Write};
use std::time::Duration;

use common::{fixture, Conn, TestServer};
use rangeserve::h1::{classify, Head};

/// One response exactly as sent: its head's bytes and its body.
fn read_one(conn: &mut Conn, head_request: bool) -> (Vec<u8>, Vec<u8>) {
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let n = conn.reader.read_until(b'\n', &mut head).unwrap();
        assert!(
            n > 0,
            "closed mid-head: {:?}",
            String::from_utf8_lossy(&head)
        );
    }
    let text = String::from_utf8(head.clone()).unwrap();
    let status: u16 = text[9..12].parse().unwrap();
    let len = text
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .map_or(0, |v| v.parse().unwrap());
    let mut body = vec![
        0;
        if head_request || status == 304 {
            0
        } else {
            len
        }
    ];
    conn.reader.read_exact(&mut body).unwrap();
    (head, body)
}

/// A head and body with what differs between any two answers blanked:
/// the `Date` value and multipart boundaries (fresh per response).
fn normalized((head, body): (Vec<u8>, Vec<u8>)) -> String {
    let head = String::from_utf8(head).unwrap();
    let mut out = String::new();
    let mut boundary = None;
    for line in head.split_inclusive("\r\n") {
        if line.starts_with("Date: ") {
            out.push_str("Date: -\r\n");
            continue;
        }
        if let Some(b) = line.split("boundary=").nth(1) {
            boundary = Some(b.trim_end().to_string());
        }
        out.push_str(line);
    }
    out.push_str(&String::from_utf8_lossy(&body));
    match boundary {
        Some(b) => out.replace(&b, "BOUNDARY"),
        None => out,
    }
}

/// A request: method, target, extra header lines.
type Row<'a> = (&'a str, &'a str, &'a [(&'a str, &'a str)]);

fn raw(method: &str, target: &str, headers: &[(&str, &str)]) -> Vec<u8> {
    let mut req = format!("{method} {target} HTTP/1.1\r\nHost: test\r\n");
    for (n, v) in headers {
        req.push_str(&format!("{n}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.into_bytes()
}

fn exchange(s: &TestServer, req: &[u8], head_request: bool) -> String {
    let mut conn = s.connect();
    conn.send_raw(req);
    normalized(read_one(&mut conn, head_request))
}

#[test]
fn the_fast_path_answers_byte_for_byte_as_hyper_does() {
    let s = TestServer::fixtures();
    let etag = s.get("/hello.txt", &[]).header("ETag").unwrap().to_string();
    let stale = "\"0000000000000000000000000000000000000000000000000000000000000000\"";
    let lm = s
        .get("/hello.txt", &[])
        .header("Last-Modified")
        .unwrap()
        .to_string();
    #[rustfmt::skip]
    let rows: &[Row] = &[
        ("GET", "/hello.txt", &[]),
        ("HEAD", "/hello.txt", &[]),
        ("GET", "/data.bin", &[("Range", "bytes=0-499")]),
        ("GET", "/data.bin", &[("Range", "bytes=9500-")]),
        ("GET", "/data.bin", &[("Range", "bytes=-500")]),
        ("HEAD", "/data.bin", &[("Range", "bytes=-500")]),
        ("GET", "/data.bin", &[("Range", "bytes=0-0,-1")]),
        ("GET", "/data.bin", &[("Range", "bytes=20000-")]),
        ("GET", "/data.bin", &[("Range", "bytes=x")]),
        ("GET", "/hello.txt", &[("If-None-Match", &etag)]),
        ("HEAD", "/hello.txt", &[("If-None-Match", &etag)]),
        ("GET", "/hello.txt", &[("If-Match", stale)]),
        ("GET", "/hello.txt", &[("If-Modified-Since", &lm)]),
        ("GET", "/hello.txt", &[("Range", "bytes=0-4"), ("If-Range", &etag)]),
        ("GET", "/hello.txt", &[("Range", "bytes=0-4"), ("If-Range", stale)]),
        ("GET", "/empty.txt", &[]),
        ("HEAD", "/empty.txt", &[]),
        ("GET", "/caf%C3%A9.txt", &[]),
        ("GET", "/with%20space.txt?x=1", &[]),
        ("GET", "/missing.txt", &[]),
        ("HEAD", "/missing.txt", &[]),
        ("GET", "/sub", &[]),
        ("GET", "/sub/", &[]),
        ("GET", "/../etc/passwd", &[]),
        ("GET", "/%2e%2e/etc/passwd", &[]),
        ("GET", "/_rangeserve/requests", &[]),
        ("GET", "/hello.txt", &[("Accept", "*/*"), ("User-Agent", "curl/8"), ("Connection", "keep-alive")]),
        // the last request of a connection (answered, then closed)
        ("GET", "/hello.txt", &[("Connection", "close")]),
        ("HEAD", "/hello.txt", &[("Connection", "Close")]),
        ("GET", "/data.bin", &[("Range", "bytes=0-0,-1"), ("Connection", "close")]),
        ("GET", "/empty.txt", &[("Connection", "close")]),
        ("HEAD", "/empty.txt", &[("Connection", "close")]),
        ("GET", "/data.bin", &[("Range", "bytes=20000-"), ("Connection", "close")]),
        ("GET", "/hello.txt", &[("If-None-Match", &etag), ("Connection", "close")]),
        ("GET", "/missing.txt", &[("Connection", "close")]),
        ("GET", "/sub", &[("Connection", "close")]),
        ("GET", "/../etc/passwd", &[("Connection", "close")]),
        // what a browser sends with a navigation, and a reverse proxy adds
        ("GET", "/hello.txt", &[
            ("Connection", "keep-alive"), ("sec-ch-ua", "\"Chromium\";v=\"131\""),
            ("sec-ch-ua-mobile", "?0"), ("Upgrade-Insecure-Requests", "1"),
            ("User-Agent", "Mozilla/5.0"), ("Accept", "text/html,*/*;q=0.8"),
            ("Sec-Fetch-Site", "none"), ("Sec-Fetch-Mode", "navigate"), ("Sec-Fetch-Dest", "document"),
            ("Accept-Encoding", "gzip, deflate, br, zstd"), ("Accept-Language", "en-US,en;q=0.9"),
            ("Cookie", "session=abc"), ("Priority", "u=0, i"),
        ]),
        ("GET", "/data.bin", &[
            ("X-Forwarded-For", "203.0.113.7"), ("X-Forwarded-Proto", "https"), ("X-Real-IP", "203.0.113.7"),
            ("Via", "1.1 edge"), ("Forwarded", "for=203.0.113.7"), ("traceparent", "00-01-02-01"),
            ("Range", "bytes=100-199"), ("Want-Digest", "SHA-256;q=1"),
        ]),
    ];
    for (method, target, headers) in rows {
        let plain = raw(method, target, headers);
        let mut via_hyper = headers.to_vec();
        via_hyper.push(("X-Not-Plain", "1"));
        let other = raw(method, target, &via_hyper);
        // the routing under test: the first goes the fast way, the second to hyper
        assert!(
            matches!(classify(&plain, 100, 8192), Head::Plain(_)),
            "{method} {target} {headers:?} is not plain"
        );
        assert_eq!(classify(&other, 100, 8192), Head::Other);
        let head_request = *method == "HEAD";
        // a file's first answer, then one from its cached state (which
        // skips the request frame for a 200, 206 or 304)
        let fast = exchange(&s, &plain, head_request);
        let slow = exchange(&s, &other, head_request);
        let warm = exchange(&s, &plain, head_request);
        assert_eq!(fast, slow, "{method} {target} {headers:?}");
        assert_eq!(warm, slow, "{method} {target} {headers:?}, cached");
        assert!(fast.starts_with("HTTP/1.1 "), "{fast}");
    }
}

/// A request with `Connection: close` is the connection's last (RFC 9112
/// 9.6): it is answered, with `Connection: close`, then the server closes,
/// and a request pipelined after it gets nothing; alike on the fast path
/// (a cached file, its first open, a 304, a 404) and hyper's.
#[test]
fn a_request_that_asks_to_close_is_the_last_on_both_paths() {
    let s = TestServer::fixtures();
    let etag = s.get("/hello.txt", &[]).header("ETag").unwrap().to_string();
    #[rustfmt::skip]
    let rows: &[&[(&str, &str)]] = &[
        &[("Connection", "close")],
        &[("Connection", "close"), ("If-None-Match", &etag)],
        &[("Connection", "close"), ("Range", "bytes=1-3")],
    ];
    for target in ["/hello.txt", "/data.bin", "/missing.txt"] {
        for headers in rows {
            let mut answers = Vec::new();
            for extra in [None, Some(("X-Not-Plain", "1"))] {
                let mut first = headers.to_vec();
                first.extend(extra);
                let mut both = raw("GET", target, &first);
                both.extend_from_slice(&raw("GET", "/hello.txt", &[]));
                let mut conn = s.connect();
                conn.send_raw(&both);
                let (head, body) = read_one(&mut conn, false);
                let text = String::from_utf8_lossy(&head).into_owned();
                assert!(
                    text.contains("\r\nConnection: close\r\n"),
                    "{target} {first:?}: {text}"
                );
                if text.starts_with("HTTP/1.1 2") {
                    let file = std::fs::read(s.root.join(&target[1..])).unwrap();
                    let want = match text.starts_with("HTTP/1.1 206 ") {
                        true => &file[1..4],
                        false => &file[..],
                    };
                    assert_eq!(body, want, "{target} {first:?}");
                }
                let rest = conn.read_to_end();
                assert!(rest.is_empty(), "{target} {first:?}: after it, {rest:?}");
                answers.push(normalized((head, body)));
            }
            assert_eq!(answers[0], answers[1], "{target} {headers:?}");
        }
    }
}

/// An HTTP/1.0 request (RFC 9112 9.3: the connection closes unless the
/// client asks `Connection: keep-alive`) is answered on the fast path as
/// hyper answers it: an `HTTP/1.0` status line, `Connection: keep-alive`
/// when it was asked, `Host` optional; then the connection is closed, or a
/// request pipelined behind it is answered. Each against its `X-Not-Plain`
/// twin, first and cached answers, with what follows on the connection.
#[test]
fn http10_requests_are_answered_as_hyper_does() {
    let s = TestServer::fixtures();
    let etag = s.get("/hello.txt", &[]).header("ETag").unwrap().to_string();
    #[rustfmt::skip]
    let rows: &[Row] = &[
        ("GET", "/hello.txt", &[]),
        ("GET", "/hello.txt", &[("Connection", "keep-alive")]),
        ("GET", "/hello.txt", &[("Connection", "Keep-Alive"), ("Host", "test")]),
        ("HEAD", "/hello.txt", &[("Connection", "keep-alive")]),
        ("GET", "/data.bin", &[("Range", "bytes=0-499")]),
        ("GET", "/data.bin", &[("Range", "bytes=0-0,-1"), ("Connection", "keep-alive")]),
        ("GET", "/data.bin", &[("Range", "bytes=20000-")]),
        ("GET", "/hello.txt", &[("If-None-Match", &etag), ("Connection", "keep-alive")]),
        ("GET", "/missing.txt", &[("Connection", "keep-alive")]),
        ("GET", "/sub", &[]),
        ("GET", "/sub/", &[("Connection", "keep-alive")]),
        ("GET", "/hello.txt", &[("Connection", "close")]),
        ("GET", "/hello.txt", &[("Host", "a"), ("Host", "b"), ("Connection", "keep-alive")]),
        ("GET", "/empty.txt", &[("Connection", "keep-alive")]),
        ("HEAD", "/empty.txt", &[("Connection", "keep-alive")]),
    ];
    let raw10 = |method: &str, target: &str, headers: &[(&str, &str)]| {
        let mut req = format!("{method} {target} HTTP/1.0\r\n");
        for (n, v) in headers {
            req.push_str(&format!("{n}: {v}\r\n"));
        }
        req.push_str("\r\n");
        req.into_bytes()
    };
    for &(method, target, headers) in rows {
        let plain = raw10(method, target, headers);
        let mut twin = headers.to_vec();
        twin.push(("X-Not-Plain", "1"));
        let other = raw10(method, target, &twin);
        assert!(
            matches!(classify(&plain, 100, 8192), Head::Plain(_)),
            "{target} {headers:?}"
        );
        assert_eq!(classify(&other, 100, 8192), Head::Other);
        let mut answers = Vec::new();
        for req in [&plain, &other, &plain] {
            let mut conn = s.connect();
            let mut both = req.clone();
            both.extend_from_slice(&raw("GET", "/hello.txt", &[("Connection", "close")]));
            conn.send_raw(&both);
            let first = normalized(read_one(&mut conn, method == "HEAD"));
            assert!(first.starts_with("HTTP/1.0 "), "{first}");
            // the pipelined request's answer, if the connection was kept
            let rest: String = String::from_utf8_lossy(&conn.read_to_end())
                .split_inclusive("\r\n")
                .filter(|l| !l.starts_with("Date: "))
                .collect();
            answers.push((first, rest));
        }
        let (fast, slow, warm) = (&answers[0], &answers[1], &answers[2]);
        assert_eq!(fast, slow, "{method} {target} {headers:?}");
        assert_eq!(warm, slow, "{method} {target} {headers:?}, cached");
        let kept = headers
            .iter()
            .any(|(n, v)| *n == "Connection" && v.eq_ignore_ascii_case("keep-alive"));
        assert_eq!(
            slow.1.starts_with("HTTP/1.1 200 OK"),
            kept && !slow.0.starts_with("HTTP/1.0 400"),
            "{slow:?}"
        );
    }
}

#[test]
fn a_missing_host_is_refused_and_closed_on_both_paths() {
    let s = TestServer::fixtures();
    for req in [
        &b"GET /hello.txt HTTP/1.1\r\n\r\n"[..],
        b"GET /hello.txt HTTP/1.1\r\nX-Not-Plain: 1\r\n\r\n",
        b"GET /hello.txt HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
    ] {
        let mut conn = s.connect();
        conn.send_raw(req);
        let res = conn.read_response(false);
        assert_eq!(res.status_line, "HTTP/1.1 400 Bad Request");
        assert_eq!(res.header("Connection"), Some("close"));
        assert!(conn.is_closed(), "{:?}", String::from_utf8_lossy(req));
    }
}

#[test]
fn pipelined_requests_cross_from_the_fast_path_to_hyper_in_order() {
    let s = TestServer::fixtures();
    let data = fixture("data.bin");
    let mut burst = Vec::new();
    burst.extend(raw("GET", "/data.bin", &[("Range", "bytes=0-9")]));
    burst.extend(raw("HEAD", "/hello.txt", &[]));
    // a body this path does not read: hyper takes over from here
    burst.extend(b"POST /hello.txt HTTP/1.1\r\nHost: test\r\nContent-Length: 5\r\n\r\nhello");
    burst.extend(raw("GET", "/data.bin", &[("Range", "bytes=10-19")]));
    burst.extend(raw("GET", "/hello.txt", &[]));
    let mut conn = s.connect();
    conn.send_raw(&burst);
    let a = conn.read_response(false);
    assert_eq!(a.status(), 206);
    assert_eq!(a.body, &data[0..10]);
    let b = conn.read_response(true);
    assert_eq!(b.status(), 200);
    assert_eq!(b.header("Content-Length"), Some("69"));
    let c = conn.read_response(false);
    assert_eq!(c.status(), 405);
    let d = conn.read_response(false);
    assert_eq!(d.status(), 206);
    assert_eq!(d.body, &data[10..20]);
    let e = conn.read_response(false);
    assert_eq!(e.body, fixture("hello.txt"));
    // and the connection is still open for more
    conn.send("GET", "/data.bin", &[("Range", "bytes=-3")]);
    assert_eq!(conn.read_response(false).body, &data[data.len() - 3..]);
}

#[test]
fn a_head_sent_a_byte_at_a_time_is_served() {
    let s = TestServer::fixtures();
    let mut conn = s.connect();
    let req = raw("GET", "/data.bin", &[("Range", "bytes=100-199")]);
    for b in &req {
        conn.reader.get_mut().write_all(&[*b]).unwrap();
        std::thread::sleep(Duration::from_millis(1));
    }
    let res = conn.read_response(false);
    assert_eq!(res.status(), 206);
    assert_eq!(res.body, &fixture("data.bin")[100..200]);
}

#[test]
fn oversized_and_malformed_heads_get_hypers_answers() {
    let s = TestServer::fixtures();
    // a head past the size limit: 431 (RFC 6585 5)
    let mut conn = s.connect();
    let big = format!(
        "GET /hello.txt HTTP/1.1\r\nHost: test\r\nAccept: {}\r\n\r\n",
        "a".repeat(64 * 1024)
    );
    let _ = conn.reader.get_mut().write_all(big.as_bytes());
    let mut line = String::new();
    let _ = conn.reader.read_line(&mut line);
    assert_eq!(line, "HTTP/1.1 431 Request Header Fields Too Large\r\n");
    // whitespace before the colon (RFC 9112 5.1): 400
    let mut conn = s.connect();
    conn.send_raw(b"GET /hello.txt HTTP/1.1\r\nHost : test\r\n\r\n");
    let mut line = String::new();
    conn.reader.read_line(&mut line).unwrap();
    assert_eq!(line, "HTTP/1.1 400 Bad Request\r\n");
}

#[test]
fn every_byte_of_a_large_body_arrives() {
    let big = common::pattern(3 * 1024 * 1024 + 17);
    let s = TestServer::with_files(&[("big.bin", &big)]);
    let mut conn = s.connect();
    for (range, start, end) in [
        ("bytes=0-", 0, big.len()),
        ("bytes=1000000-2999999", 1_000_000, 3_000_000),
    ] {
        conn.send("GET", "/big.bin", &[("Range", range)]);
        let res = conn.read_response(false);
        assert_eq!(res.body.len(), end - start);
        assert!(res.body == big[start..end], "{range}");
    }
    conn.send("GET", "/big.bin", &[]);
    let res = conn.read_response(false);
    assert_eq!(res.status(), 200);
    assert!(res.body == big);
}
