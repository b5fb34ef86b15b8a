//! General serving over real TCP: the exact header set, dates, media types,
//! methods, keep-alive and pipelining, absurd requests, and clients that
//! vanish mid-response.

mod common;

use std::io::{Read, Write};
use std::time::{Duration, SystemTime};

use common::{fixture, parse_multipart, Conn, RawResponse, TestServer};

fn date(res: &RawResponse, name: &str) -> SystemTime {
    let v = res.header(name).unwrap_or_else(|| panic!("{name} missing"));
    let t = httpdate::parse_http_date(v).unwrap_or_else(|e| panic!("{name}: {v:?}: {e}"));
    // IMF-fixdate exactly, e.g. "Sun, 06 Nov 1994 08:49:37 GMT" (RFC 9110 5.6.7)
    assert_eq!(v.len(), 29, "{name}: {v:?} is not an IMF-fixdate");
    assert!(v.ends_with(" GMT"), "{name}: {v:?}");
    assert_eq!(httpdate::fmt_http_date(t), v, "{name}: {v:?} not canonical");
    t
}

fn header_names(res: &RawResponse) -> Vec<String> {
    let mut names: Vec<String> = res.headers.iter().map(|(n, _)| n.clone()).collect();
    names.sort();
    names
}

/// A normal request on a new connection gets a normal answer.
fn assert_alive(s: &TestServer) {
    let res = s.get("/hello.txt", &[]);
    assert_eq!(res.status_line, "HTTP/1.1 200 OK");
    assert_eq!(res.body, fixture("hello.txt"));
}

#[test]
fn a_200_has_exactly_the_documented_headers() {
    let s = TestServer::fixtures();
    let data = fixture("hello.txt");
    let before = SystemTime::now() - Duration::from_secs(1);
    let res = s.get("/hello.txt", &[]);
    let after = SystemTime::now() + Duration::from_secs(1);
    assert_eq!(res.status_line, "HTTP/1.1 200 OK");
    assert_eq!(
        header_names(&res),
        [
            "Accept-Ranges",
            "Cache-Control",
            "Content-Length",
            "Content-Type",
            "Date",
            "Etag",
            "Last-Modified",
            "Repr-Digest"
        ]
    );
    assert_eq!(res.header("Accept-Ranges"), Some("bytes"));
    assert_eq!(res.header("Content-Type"), Some("text/plain"));
    assert_eq!(res.header("Content-Length"), Some("69"));
    assert_eq!(data.len(), 69);
    assert_eq!(res.body, data);
    let d = date(&res, "Date");
    let lm = date(&res, "Last-Modified");
    assert!(lm <= d, "Last-Modified after Date");
    assert!(before <= d && d <= after, "Date is not now");
    let mtime = std::fs::metadata(common::fixtures_dir().join("hello.txt"))
        .unwrap()
        .modified()
        .unwrap();
    assert_eq!(
        httpdate::fmt_http_date(mtime),
        res.header("Last-Modified").unwrap(),
        "Last-Modified is the file's mtime"
    );

    // HEAD: the very same headers, no body; the next response follows at once
    let mut conn = s.connect();
    conn.send("HEAD", "/hello.txt", &[]);
    let head = conn.read_response(true);
    assert_eq!(head.status_line, "HTTP/1.1 200 OK");
    assert_eq!(header_names(&head), header_names(&res));
    for h in [
        "Accept-Ranges",
        "Content-Length",
        "Content-Type",
        "Last-Modified",
    ] {
        assert_eq!(head.header(h), res.header(h), "{h}");
    }
    conn.send("GET", "/empty.txt", &[]);
    let empty = conn.read_response(false);
    assert_eq!(empty.status_line, "HTTP/1.1 200 OK");
    assert_eq!(empty.header("Content-Length"), Some("0"));
}

#[test]
fn content_type_follows_the_extension() {
    let s = TestServer::with_files(&[
        ("a.json", b"{ }"),
        ("b.bin", b"\x00\x01\x02"),
        ("c.unknownext", b"???"),
        ("noext", b"nnn"),
        ("d.html", b"<p>"),
        ("e.css", b"p{}"),
        ("f.png", b"\x89PNG"),
        ("g.TXT", b"upper"),
        ("h.tar.gz", b"gzz"),
    ]);
    for (target, ct) in [
        ("/a.json", "application/json"),
        ("/b.bin", "application/octet-stream"),
        ("/c.unknownext", "application/octet-stream"),
        ("/noext", "application/octet-stream"),
        ("/d.html", "text/html"),
        ("/e.css", "text/css"),
        ("/f.png", "image/png"),
        ("/g.TXT", "text/plain"),
        ("/h.tar.gz", "application/gzip"),
    ] {
        let res = s.get(target, &[]);
        assert_eq!(res.status_line, "HTTP/1.1 200 OK", "{target}");
        assert_eq!(res.header("Content-Type"), Some(ct), "{target}");
        // a single range keeps the type; multipart parts carry it
        let res = s.get(target, &[("Range", "bytes=0-0")]);
        assert_eq!(res.status(), 206, "{target}");
        assert_eq!(res.header("Content-Type"), Some(ct), "{target}");
        let res = s.get(target, &[("Range", "bytes=0-0,-1")]);
        assert_eq!(res.status(), 206, "{target}");
        let parts = parse_multipart(res.header("Content-Type").unwrap(), &res.body);
        assert!(parts.iter().all(|p| p.header("Content-Type") == Some(ct)));
    }
    let f = TestServer::fixtures();
    assert_eq!(
        f.get("/sub/deeper/deep.json", &[]).header("Content-Type"),
        Some("application/json")
    );
    assert_eq!(
        f.get("/data.bin", &[]).header("Content-Type"),
        Some("application/octet-stream")
    );
}

#[test]
fn a_future_mtime_is_never_sent_as_later_than_date() {
    let s = TestServer::with_files(&[("future.txt", b"from the future\n")]);
    let future = SystemTime::now() + Duration::from_secs(10 * 365 * 24 * 3600);
    let f = std::fs::File::options()
        .write(true)
        .open(s.root.join("future.txt"))
        .unwrap();
    f.set_modified(future).unwrap();
    drop(f);
    for range in [None, Some("bytes=0-3"), Some("bytes=0-0,-1")] {
        let headers: Vec<(&str, &str)> = range.iter().map(|r| ("Range", *r)).collect();
        let res = s.get("/future.txt", &headers);
        let d = date(&res, "Date");
        let lm = date(&res, "Last-Modified");
        assert!(
            lm <= d,
            "{range:?}: Last-Modified {:?} after Date {:?}",
            res.header("Last-Modified"),
            res.header("Date")
        );
    }
}

#[test]
fn methods_other_than_get_head_options_are_405_with_allow() {
    let s = TestServer::fixtures();
    for method in ["POST", "PUT", "DELETE", "PATCH"] {
        for target in ["/hello.txt", "/missing.txt", "/sub/", "/"] {
            let res = s.request(method, target, &[("Content-Length", "0")]);
            assert_eq!(
                res.status_line, "HTTP/1.1 405 Method Not Allowed",
                "{method} {target}"
            );
            assert_eq!(res.header("Allow"), Some("GET, HEAD, OPTIONS"));
            assert_eq!(
                res.header("Content-Type"),
                Some("text/plain; charset=utf-8")
            );
            assert_eq!(res.body, b"405 Method Not Allowed\n");
        }
    }
    // a request body is consumed, not taken for the next request
    let mut conn = s.connect();
    conn.send_raw(b"PUT /hello.txt HTTP/1.1\r\nHost: test\r\nContent-Length: 5\r\n\r\nGET /");
    let res = conn.read_response(false);
    assert_eq!(res.status(), 405);
    conn.send("GET", "/hello.txt", &[]);
    let res = conn.read_response(false);
    assert_eq!(res.status_line, "HTTP/1.1 200 OK");
    assert_eq!(res.body, fixture("hello.txt"));
}

#[test]
fn options_is_204_with_allow() {
    let s = TestServer::fixtures();
    for target in ["/hello.txt", "/", "/missing"] {
        let mut conn = s.connect();
        conn.send("OPTIONS", target, &[]);
        let res = conn.read_response(false);
        assert_eq!(res.status_line, "HTTP/1.1 204 No Content", "{target}");
        assert_eq!(res.header("Allow"), Some("GET, HEAD, OPTIONS"));
        assert!(!res.has("Content-Length"), "204 has no Content-Length");
        // no body follows: the next response is read cleanly
        conn.send("GET", "/hello.txt", &[("Range", "bytes=0-4")]);
        assert_eq!(conn.read_response(false).body, b"Hello");
    }
    let mut conn = s.connect();
    conn.send_raw(b"OPTIONS * HTTP/1.1\r\nHost: test\r\n\r\n");
    let res = conn.read_response(false);
    assert_eq!(res.status_line, "HTTP/1.1 204 No Content");
    assert_eq!(res.header("Allow"), Some("GET, HEAD, OPTIONS"));
}

#[test]
fn a_missing_file_is_404() {
    let s = TestServer::fixtures();
    for target in ["/missing.txt", "/sub/missing.txt", "/missing/", "/nope/x"] {
        let res = s.get(target, &[("Range", "bytes=0-0")]);
        assert_eq!(res.status_line, "HTTP/1.1 404 Not Found", "{target}");
        assert_eq!(
            res.header("Content-Type"),
            Some("text/plain; charset=utf-8")
        );
        assert_eq!(res.header("Content-Length"), Some("14"));
        assert_eq!(res.body, b"404 Not Found\n");
        assert!(!res.has("Content-Range"));
        assert!(!res.has("Accept-Ranges"));
    }
}

#[test]
fn one_keep_alive_connection_carries_every_kind_of_response() {
    let s = TestServer::fixtures();
    let data = fixture("data.bin");
    let mut conn = s.connect();
    for round in 0..2 {
        conn.send("GET", "/data.bin", &[]);
        let res = conn.read_response(false);
        assert_eq!(res.status_line, "HTTP/1.1 200 OK", "round {round}");
        assert!(res.body == data);

        conn.send("GET", "/data.bin", &[("Range", "bytes=10000-")]);
        let res = conn.read_response(false);
        assert_eq!(res.status_line, "HTTP/1.1 416 Range Not Satisfiable");
        assert_eq!(res.header("Content-Range"), Some("bytes */10000"));
        assert_eq!(res.body, b"416 Range Not Satisfiable\n");

        conn.send("GET", "/data.bin", &[("Range", "bytes=0-9,100-199,-5")]);
        let res = conn.read_response(false);
        assert_eq!(res.status_line, "HTTP/1.1 206 Partial Content");
        let parts = parse_multipart(res.header("Content-Type").unwrap(), &res.body);
        assert_eq!(parts.len(), 3);
        assert_eq!(parts[0].body, &data[0..10]);
        assert_eq!(parts[1].body, &data[100..200]);
        assert_eq!(parts[2].body, &data[9995..]);

        conn.send("HEAD", "/data.bin", &[("Range", "bytes=0-0")]);
        let res = conn.read_response(true);
        assert_eq!(res.status_line, "HTTP/1.1 200 OK");
        assert_eq!(res.header("Content-Length"), Some("10000"));

        conn.send("GET", "/missing.bin", &[]);
        let res = conn.read_response(false);
        assert_eq!(res.status_line, "HTTP/1.1 404 Not Found");

        conn.send("GET", "/data.bin", &[("Range", "bytes=9990-")]);
        let res = conn.read_response(false);
        assert_eq!(res.status_line, "HTTP/1.1 206 Partial Content");
        assert_eq!(res.header("Content-Range"), Some("bytes 9990-9999/10000"));
        assert_eq!(res.body, &data[9990..]);

        // listing and redirect too
        conn.send("GET", "/sub", &[]);
        assert_eq!(conn.read_response(false).status(), 301);
        conn.send("GET", "/sub/", &[]);
        assert_eq!(conn.read_response(false).status(), 200);
    }
    // still open: nothing stray arrived, and a further request is answered
    conn.reader
        .get_ref()
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut b = [0u8; 1];
    match conn.reader.read(&mut b) {
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) => {}
        other => panic!("expected silence on an idle keep-alive connection, got {other:?}"),
    }
    conn.reader
        .get_ref()
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    conn.send("GET", "/hello.txt", &[]);
    assert_eq!(conn.read_response(false).body, fixture("hello.txt"));
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let s = TestServer::fixtures();
    let data = fixture("data.bin");
    let mut conn = s.connect();
    conn.send_raw(
        b"GET /hello.txt HTTP/1.1\r\nHost: test\r\n\r\n\
          GET /data.bin HTTP/1.1\r\nHost: test\r\nRange: bytes=0-0,-1\r\n\r\n\
          HEAD /data.bin HTTP/1.1\r\nHost: test\r\n\r\n\
          GET /data.bin HTTP/1.1\r\nHost: test\r\nRange: bytes=5-9\r\n\r\n",
    );
    let a = conn.read_response(false);
    assert_eq!(a.status_line, "HTTP/1.1 200 OK");
    assert_eq!(a.body, fixture("hello.txt"));
    let b = conn.read_response(false);
    assert_eq!(b.status_line, "HTTP/1.1 206 Partial Content");
    let parts = parse_multipart(b.header("Content-Type").unwrap(), &b.body);
    assert_eq!(parts.len(), 2);
    assert_eq!(parts[0].body, &data[..1]);
    assert_eq!(parts[1].body, &data[9999..]);
    let c = conn.read_response(true);
    assert_eq!(c.status_line, "HTTP/1.1 200 OK");
    assert_eq!(c.header("Content-Length"), Some("10000"));
    let d = conn.read_response(false);
    assert_eq!(d.status_line, "HTTP/1.1 206 Partial Content");
    assert_eq!(d.body, &data[5..10]);
    // Connection: close ends it after the response
    conn.send("GET", "/hello.txt", &[("Connection", "close")]);
    let e = conn.read_response(false);
    assert_eq!(e.status(), 200);
    assert!(conn.is_closed());
}

/// Send `bytes` on a fresh connection, tolerating the server closing early,
/// and return what comes back until it closes.
fn send_abuse(s: &TestServer, bytes: &[u8]) -> Vec<u8> {
    let mut conn = Conn::new(s.addr);
    conn.reader
        .get_ref()
        .set_write_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let _ = conn.reader.get_mut().write_all(bytes);
    conn.read_to_end()
}

fn status_of(raw: &[u8]) -> u16 {
    let text = String::from_utf8_lossy(raw);
    let line = text.lines().next().unwrap_or("");
    assert!(line.starts_with("HTTP/1.1 "), "no response: {text:?}");
    line[9..12].parse().unwrap()
}

#[test]
fn far_oversized_headers_get_431_and_the_server_keeps_going() {
    let s = TestServer::fixtures();
    for size in [200 * 1024, 1024 * 1024] {
        let req = format!(
            "GET /hello.txt HTTP/1.1\r\nHost: test\r\nConnection: close\r\nX-Big: {}\r\n\r\n",
            "a".repeat(size)
        );
        let got = send_abuse(&s, req.as_bytes());
        assert_eq!(status_of(&got), 431, "{size}");
        assert_alive(&s);
    }
    // many medium headers adding up to 160 KB
    let mut req = String::from("GET /hello.txt HTTP/1.1\r\nHost: test\r\nConnection: close\r\n");
    for i in 0..80 {
        req.push_str(&format!("X-H{i}: {}\r\n", "b".repeat(2000)));
    }
    req.push_str("\r\n");
    let got = send_abuse(&s, req.as_bytes());
    assert_eq!(status_of(&got), 431);
    assert_alive(&s);
}

#[test]
fn headers_just_over_64_kib_get_431() {
    // server.rs: "Request line plus headers above this size [64 KiB] get 431".
    // It only sets hyper's max_buf_size, which is checked after a read that
    // may overshoot it; hyper's max_header_size is the exact limit.
    let s = TestServer::fixtures();
    for size in [65 * 1024, 70 * 1024, 100 * 1024] {
        let req = format!(
            "GET /hello.txt HTTP/1.1\r\nHost: test\r\nConnection: close\r\nX-Big: {}\r\n\r\n",
            "a".repeat(size)
        );
        let got = send_abuse(&s, req.as_bytes());
        assert_eq!(status_of(&got), 431, "{size} bytes of one header");
        assert_alive(&s);
    }
    let mut req = String::from("GET /hello.txt HTTP/1.1\r\nHost: test\r\nConnection: close\r\n");
    for i in 0..70 {
        req.push_str(&format!("X-H{i}: {}\r\n", "b".repeat(1000)));
    }
    req.push_str("\r\n");
    assert!(req.len() > 64 * 1024);
    let got = send_abuse(&s, req.as_bytes());
    assert_eq!(status_of(&got), 431, "70 headers of 1000 bytes");
    assert_alive(&s);
}

#[test]
fn a_one_mib_range_header_gets_431() {
    let s = TestServer::fixtures();
    let range = format!("bytes={}", "0-0,".repeat(256 * 1024));
    let req = format!(
        "GET /data.bin HTTP/1.1\r\nHost: test\r\nConnection: close\r\nRange: {range}\r\n\r\n"
    );
    assert!(req.len() > 1024 * 1024);
    let got = send_abuse(&s, req.as_bytes());
    assert_eq!(status_of(&got), 431);
    assert_alive(&s);
}

#[test]
fn two_hundred_headers_get_a_4xx() {
    let s = TestServer::fixtures();
    let mut req = String::from("GET /hello.txt HTTP/1.1\r\nHost: test\r\nConnection: close\r\n");
    for i in 0..200 {
        req.push_str(&format!("X-H{i}: v\r\n"));
    }
    req.push_str("\r\n");
    let got = send_abuse(&s, req.as_bytes());
    let status = status_of(&got);
    assert!((400..500).contains(&status), "{status}");
    assert_eq!(status, 431);
    assert_alive(&s);
}

#[test]
fn a_garbage_request_line_gets_400() {
    let s = TestServer::fixtures();
    for garbage in [
        &b"THIS IS NOT HTTP\r\n\r\n"[..],
        b"GET\r\n\r\n",
        b"GET /hello.txt HTTP/9.9\r\nHost: test\r\n\r\n",
        b"GET /hello.txt\r\n\r\n",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n", // a TLS ClientHello
        b"GET /hello.txt HTTP/1.1\r\nBad Header Name: x\r\n\r\n",
        b"G\x00T / HTTP/1.1\r\n\r\n",
    ] {
        let got = send_abuse(&s, garbage);
        assert_eq!(
            status_of(&got),
            400,
            "{:?} -> {:?}",
            String::from_utf8_lossy(garbage),
            String::from_utf8_lossy(&got)
        );
        assert_alive(&s);
    }
}

#[test]
fn a_client_that_vanishes_mid_response_does_not_hurt_the_server() {
    let data = common::pattern(3 * 1024 * 1024);
    let s = TestServer::with_files(&[("big.bin", &data)]);
    for range in [None, Some("bytes=0-0,1000-2999999"), Some("bytes=100-")] {
        for _ in 0..5 {
            let headers: Vec<(&str, &str)> = range.iter().map(|r| ("Range", *r)).collect();
            let mut conn = s.connect();
            conn.send("GET", "/big.bin", &headers);
            let (status_line, _) = conn.read_head();
            assert!(status_line.starts_with("HTTP/1.1 20"), "{status_line}");
            let mut ten = [0u8; 10];
            conn.reader.read_exact(&mut ten).unwrap();
            drop(conn);
        }
    }
    // also: a client that sends a request and closes before reading anything
    for _ in 0..5 {
        let mut conn = s.connect();
        conn.send("GET", "/big.bin", &[]);
        drop(conn);
    }
    let res = s.get("/big.bin", &[]);
    assert_eq!(res.status_line, "HTTP/1.1 200 OK");
    assert!(res.body == data, "full body differs");
    let res = s.get("/big.bin", &[("Range", "bytes=-10")]);
    assert_eq!(res.body, &data[data.len() - 10..]);
}

/// Many clients downloading the same large file at once share its cached
/// descriptor: every body, whole or ranged, is still byte-exact (reads are
/// positioned; a shared file position would hand one client another's bytes).
#[test]
fn concurrent_downloads_of_one_file_are_byte_exact() {
    let data = common::pattern(3 * 1024 * 1024 + 5);
    let s = TestServer::with_files(&[("big.bin", &data)]);
    let addr = s.addr;
    let data = std::sync::Arc::new(data);
    let threads: Vec<_> = (0..6)
        .map(|i| {
            let data = std::sync::Arc::clone(&data);
            std::thread::spawn(move || {
                let mut conn = Conn::new(addr);
                for round in 0..4 {
                    let start = (i * 97_531 + round * 13_579) % (data.len() / 2);
                    let range = format!("bytes={start}-");
                    let ranged = i % 2 == 1;
                    let headers: Vec<(&str, &str)> = if ranged {
                        vec![("Range", range.as_str())]
                    } else {
                        vec![]
                    };
                    conn.send("GET", "/big.bin", &headers);
                    let res = conn.read_response(false);
                    let want = if ranged { &data[start..] } else { &data[..] };
                    assert!(
                        res.body == want,
                        "client {i} round {round}: body differs from the file"
                    );
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}
