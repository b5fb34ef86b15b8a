//! HTTP/2 with prior knowledge (h2c, RFC 9113 3.3) on the plain port, next
//! to HTTP/1.1: the same ranges, validators, statuses and quirks, checked
//! byte for byte with hyper's HTTP/2 client over real TCP.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use common::{parse_multipart, pattern, TestServer};
use http_body_util::{BodyExt, Empty};
use hyper::{Request, Response, StatusCode, Version};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rangeserve::config::H2Cut;
use rangeserve::Config;

/// An HTTP/2 client connection (prior knowledge) on its own runtime.
struct H2 {
    rt: tokio::runtime::Runtime,
    send: hyper::client::conn::http2::SendRequest<Empty<Bytes>>,
}

/// A whole response: head and body (or the error that ended the body).
struct Got {
    res: Response<()>,
    body: Result<Vec<u8>, String>,
}

impl Got {
    fn header(&self, name: &str) -> Option<&str> {
        self.res.headers().get(name).map(|v| v.to_str().unwrap())
    }

    fn body(&self) -> &[u8] {
        self.body.as_ref().expect("a complete body")
    }
}

impl H2 {
    fn connect(addr: SocketAddr) -> H2 {
        let rt = runtime();
        let send = rt.block_on(async {
            let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
            let (send, conn) =
                hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
                    .await
                    .expect("HTTP/2 handshake with prior knowledge");
            tokio::spawn(conn);
            send
        });
        H2 { rt, send }
    }

    fn request(&mut self, method: &str, path: &str, headers: &[(&str, &str)]) -> Got {
        let mut req = Request::builder()
            .method(method)
            .uri(format!("http://test{path}"))
            .version(Version::HTTP_2);
        for (n, v) in headers {
            req = req.header(*n, *v);
        }
        let req = req.body(Empty::new()).unwrap();
        let send = &mut self.send;
        self.rt.block_on(async move {
            let res = send.send_request(req).await.expect("a response head");
            let (parts, body) = res.into_parts();
            let body = body
                .collect()
                .await
                .map(|b| b.to_bytes().to_vec())
                .map_err(|e| format!("{e:?}"));
            Got {
                res: Response::from_parts(parts, ()),
                body,
            }
        })
    }

    fn get(&mut self, path: &str, headers: &[(&str, &str)]) -> Got {
        self.request("GET", path, headers)
    }
}

/// `data.bin` served with these limits.
fn server_with(data: &[u8], limits: rangeserve::config::Limits) -> TestServer {
    server(
        data,
        Config {
            limits,
            ..Config::default()
        },
    )
}

/// A raw HTTP/2 client (the h2 crate: streams, resets and flow control by
/// hand) and its connection task.
async fn raw_h2(
    addr: SocketAddr,
) -> (
    h2::client::SendRequest<Bytes>,
    tokio::task::JoinHandle<Result<(), h2::Error>>,
) {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (client, conn) = h2::client::handshake(tcp).await.unwrap();
    (client, tokio::spawn(conn))
}

/// A single-threaded runtime for one test's client.
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn server(data: &[u8], config: Config) -> TestServer {
    TestServer::with_files_config(&[("data.bin", data)], config)
}

#[test]
fn every_range_form_over_h2c_is_byte_exact() {
    let data = pattern(100_000);
    let s = server(&data, Config::default());
    let mut h2 = H2::connect(s.addr);
    let full = h2.get("/data.bin", &[]);
    assert_eq!(full.res.status(), StatusCode::OK);
    assert_eq!(full.res.version(), Version::HTTP_2);
    assert_eq!(full.header("content-length"), Some("100000"));
    assert_eq!(full.header("accept-ranges"), Some("bytes"));
    assert_eq!(full.body(), &data[..]);
    let etag = full.header("etag").unwrap().to_string();
    // the same ETag as HTTP/1.1 gives
    assert_eq!(s.get("/data.bin", &[]).header("ETag"), Some(etag.as_str()));

    for (range, start, end) in [
        ("bytes=0-499", 0, 499),
        ("bytes=99000-", 99_000, 99_999),
        ("bytes=-500", 99_500, 99_999),
        ("bytes=5-5", 5, 5),
        ("bytes=99999-200000", 99_999, 99_999),
    ] {
        let got = h2.get("/data.bin", &[("range", range)]);
        assert_eq!(got.res.status(), StatusCode::PARTIAL_CONTENT, "{range}");
        let want_cr = format!("bytes {start}-{end}/100000");
        assert_eq!(got.header("content-range"), Some(want_cr.as_str()));
        assert_eq!(got.body(), &data[start..=end], "{range}");
        assert_eq!(got.header("etag"), Some(etag.as_str()));
    }

    let multi = h2.get("/data.bin", &[("range", "bytes=0-0,-1,500-599")]);
    assert_eq!(multi.res.status(), StatusCode::PARTIAL_CONTENT);
    let ct = multi.header("content-type").unwrap().to_string();
    assert!(ct.starts_with("multipart/byteranges; boundary="), "{ct}");
    let parts = parse_multipart(&ct, multi.body());
    let want: [(usize, usize); 3] = [(0, 0), (99_999, 99_999), (500, 599)];
    assert_eq!(parts.len(), 3);
    for (part, (a, b)) in parts.iter().zip(want) {
        let cr = format!("bytes {a}-{b}/100000");
        assert_eq!(part.header("Content-Range"), Some(cr.as_str()));
        assert_eq!(part.body, &data[a..=b]);
    }
    assert_eq!(
        multi
            .header("content-length")
            .map(|v| v.parse::<usize>().unwrap()),
        Some(multi.body().len())
    );

    let unsat = h2.get("/data.bin", &[("range", "bytes=100000-")]);
    assert_eq!(unsat.res.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(unsat.header("content-range"), Some("bytes */100000"));
}

#[test]
fn validators_over_h2c() {
    let data = pattern(10_000);
    let s = server(&data, Config::default());
    let mut h2 = H2::connect(s.addr);
    let etag = h2.get("/data.bin", &[]).header("etag").unwrap().to_string();
    let not_modified = h2.get("/data.bin", &[("if-none-match", &etag)]);
    assert_eq!(not_modified.res.status(), StatusCode::NOT_MODIFIED);
    assert!(not_modified.body().is_empty());
    let failed = h2.get("/data.bin", &[("if-match", "\"other\"")]);
    assert_eq!(failed.res.status(), StatusCode::PRECONDITION_FAILED);
    let resumed = h2.get(
        "/data.bin",
        &[("range", "bytes=9000-"), ("if-range", &etag)],
    );
    assert_eq!(resumed.res.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(resumed.body(), &data[9000..]);
    let stale = h2.get(
        "/data.bin",
        &[("range", "bytes=9000-"), ("if-range", "\"old\"")],
    );
    assert_eq!(stale.res.status(), StatusCode::OK);
    assert_eq!(stale.body(), &data[..]);
    // Range is defined for GET only (RFC 9110 14.2): HEAD answers 200
    let head = h2.request("HEAD", "/data.bin", &[("range", "bytes=0-9")]);
    assert_eq!(head.res.status(), StatusCode::OK);
    assert_eq!(head.header("content-length"), Some("10000"));
    assert!(head.body().is_empty());
    let missing = h2.get("/nope", &[]);
    assert_eq!(missing.res.status(), StatusCode::NOT_FOUND);
    assert_eq!(h2.get("/.hidden", &[]).res.status(), StatusCode::NOT_FOUND);
}

#[test]
fn many_streams_on_one_connection_and_http1_alongside() {
    let data = pattern(300_000);
    let s = server(&data, Config::default());
    let h2 = H2::connect(s.addr);
    let send = h2.send.clone();
    // 50 concurrent streams, each a different range
    let results = h2.rt.block_on(async move {
        let mut tasks = Vec::new();
        for i in 0..50usize {
            let mut send = send.clone();
            tasks.push(tokio::spawn(async move {
                let (a, b) = (i * 5000, i * 5000 + 4999);
                let req = Request::builder()
                    .uri("http://test/data.bin")
                    .header("range", format!("bytes={a}-{b}"))
                    .body(Empty::<Bytes>::new())
                    .unwrap();
                let res = send.send_request(req).await.unwrap();
                let status = res.status();
                let body = res.into_body().collect().await.unwrap().to_bytes();
                (i, status, body)
            }));
        }
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await.unwrap());
        }
        out
    });
    for (i, status, body) in results {
        assert_eq!(status, StatusCode::PARTIAL_CONTENT);
        assert_eq!(&body[..], &data[i * 5000..i * 5000 + 5000], "stream {i}");
    }
    // HTTP/1.1 on the same port still works
    let h1 = s.get("/data.bin", &[("Range", "bytes=0-3")]);
    assert_eq!(h1.status_line, "HTTP/1.1 206 Partial Content");
    assert_eq!(h1.body, &data[..4]);
}

#[test]
fn quirks_over_h2c_transform_the_same_response() {
    let data = pattern(200_000);
    let s = server(
        &data,
        Config {
            quirks_mode: true,
            ..Config::default()
        },
    );
    let mut h2 = H2::connect(s.addr);
    let no_etag = h2.get("/_quirks/no-etag/data.bin", &[("range", "bytes=0-9")]);
    assert_eq!(no_etag.res.status(), StatusCode::PARTIAL_CONTENT);
    assert!(no_etag.header("etag").is_none());
    assert_eq!(no_etag.header("rangeserve-quirks"), Some("no-etag"));
    assert_eq!(no_etag.body(), &data[..10]);
    let range200 = h2.get("/_quirks/range-200/data.bin", &[("range", "bytes=10-19")]);
    assert_eq!(range200.res.status(), StatusCode::OK);
    assert_eq!(range200.header("content-range"), Some("bytes 10-19/200000"));
    assert_eq!(range200.body(), &data[10..20]);
    // drop-at: the stream is reset after the bytes (RST_STREAM), the
    // connection lives on
    let dropped = h2.get("/_quirks/drop-at=1000/data.bin", &[]);
    assert_eq!(dropped.res.status(), StatusCode::OK);
    assert!(dropped.body.is_err(), "the body ends in a stream error");
    let after = h2.get("/data.bin", &[("range", "bytes=0-1")]);
    assert_eq!(
        after.body(),
        &data[..2],
        "the connection survives a reset stream"
    );
}

#[test]
fn h2_cut_connection_makes_a_quirk_close_every_stream_of_the_connection() {
    let data = pattern(200_000);
    let s = server(
        &data,
        Config {
            quirks_mode: true,
            h2_cut: H2Cut::Connection,
            ..Config::default()
        },
    );
    let rt = runtime();
    rt.block_on(async {
        let tcp = tokio::net::TcpStream::connect(s.addr).await.unwrap();
        let (mut send, conn) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
                .await
                .unwrap();
        let driver = tokio::spawn(conn);
        let get = |path: &str| {
            Request::get(format!("http://test{path}"))
                .body(Empty::<Bytes>::new())
                .unwrap()
        };
        let start = std::time::Instant::now();
        // a response that takes about 3 s (throttled) in flight on one stream
        let slow = send
            .send_request(get("/_quirks/throttle=64k/data.bin"))
            .await
            .unwrap();
        // another stream's quirk cuts it
        let cut = send
            .send_request(get("/_quirks/drop-at=1000/data.bin"))
            .await
            .unwrap();
        assert_eq!(cut.status(), StatusCode::OK);
        assert!(cut.into_body().collect().await.is_err(), "cut short");
        // the slow one ends with it, long before its 3 s: the whole
        // connection was closed, not just the cut stream
        let slow = slow.into_body().collect().await;
        assert!(slow.is_err(), "the other stream ends in an error too");
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "{:?}",
            start.elapsed()
        );
        let ended = tokio::time::timeout(Duration::from_secs(5), driver).await;
        assert!(ended.is_ok(), "the client's connection task ended");
    });
    // the server goes on serving new connections
    let mut h2 = H2::connect(s.addr);
    assert_eq!(
        h2.get("/data.bin", &[("range", "bytes=0-1")]).body(),
        &data[..2]
    );
}

#[test]
fn rapid_reset_is_survived_and_bounded() {
    // CVE-2023-44487: open streams and reset them at once, over and over
    let data = pattern(1 << 20);
    let s = server(&data, Config::default());
    let rt = runtime();
    let (sent, ended) = rt.block_on(async {
        let (mut client, driver) = raw_h2(s.addr).await;
        let mut sent = 0;
        for _ in 0..5000 {
            let req = Request::get("http://test/data.bin").body(()).unwrap();
            let Ok(ready) = client.clone().ready().await else {
                break;
            };
            client = ready;
            let Ok((_res, mut stream)) = client.send_request(req, false) else {
                break;
            };
            stream.send_reset(h2::Reason::CANCEL);
            sent += 1;
        }
        // the server either absorbs them or ends this connection (GOAWAY);
        // it never serves them all nor falls over
        let ended = tokio::time::timeout(std::time::Duration::from_secs(10), driver)
            .await
            .is_ok();
        (sent, ended)
    });
    assert!(sent > 0);
    eprintln!("rapid reset: {sent} streams sent, connection ended by the server: {ended}");
    // the server is fine, over both protocols
    let mut h2 = H2::connect(s.addr);
    assert_eq!(
        h2.get("/data.bin", &[("range", "bytes=0-9")]).body(),
        &data[..10]
    );
    assert_eq!(
        s.get("/data.bin", &[("Range", "bytes=0-9")]).body,
        &data[..10]
    );
}

#[test]
fn stream_and_header_limits_are_advertised_and_enforced() {
    let data = pattern(1000);
    let limits = rangeserve::config::Limits {
        max_streams: 3,
        max_header_bytes: 16 * 1024,
        ..Default::default()
    };
    let s = server_with(&data, limits);
    let rt = runtime();
    rt.block_on(async {
        let (client, _conn) = raw_h2(s.addr).await;
        let mut client = client.ready().await.unwrap();
        // the server's SETTINGS arrive with the first exchange
        let req = Request::get("http://test/data.bin").body(()).unwrap();
        let (res, _) = client.send_request(req, true).unwrap();
        assert_eq!(res.await.unwrap().status(), 200);
        assert_eq!(client.current_max_send_streams(), 3);
        // a header block over the limit is refused, the connection goes on
        let big = "x".repeat(20 * 1024);
        let req = Request::get("http://test/data.bin")
            .header("x-big", big)
            .body(())
            .unwrap();
        let mut client = client.ready().await.unwrap();
        let refused = match client.send_request(req, true) {
            Ok((res, _)) => match res.await {
                Ok(r) => r.status() == 431,
                Err(_) => true,
            },
            Err(_) => true,
        };
        assert!(refused, "a 20 KiB header block is not served");
    });
    let mut h2 = H2::connect(s.addr);
    assert_eq!(h2.get("/data.bin", &[]).body(), &data[..]);
}

#[test]
fn a_stream_whose_client_stopped_reading_is_cut_after_the_send_timeout() {
    // Over HTTP/2 a client that stops reading stops granting flow-control
    // window: the stream stalls without the socket ever blocking.
    let data = pattern(4 << 20);
    let limits = rangeserve::config::Limits {
        timeouts: rangeserve::conn::Timeouts {
            send: std::time::Duration::from_secs(1),
            ..rangeserve::config::Limits::default().timeouts
        },
        ..Default::default()
    };
    let s = server_with(&data, limits);
    let rt = runtime();
    let elapsed = rt.block_on(async {
        let (client, driver) = raw_h2(s.addr).await;
        let mut client = client.ready().await.unwrap();
        let req = Request::get("http://test/data.bin").body(()).unwrap();
        let (res, _) = client.send_request(req, true).unwrap();
        let res = res.await.unwrap();
        assert_eq!(res.status(), 200);
        // hold the body without reading it (no window released)
        let _body = res.into_body();
        let start = std::time::Instant::now();
        let ended = tokio::time::timeout(std::time::Duration::from_secs(10), driver).await;
        assert!(ended.is_ok(), "the server ended the connection");
        start.elapsed()
    });
    assert!(
        elapsed >= std::time::Duration::from_millis(800)
            && elapsed < std::time::Duration::from_secs(4),
        "cut after {elapsed:?}, want ~1 s"
    );
    // a reading client on a new connection is served whole
    let mut h2 = H2::connect(s.addr);
    assert_eq!(h2.get("/data.bin", &[]).body(), &data[..]);
}
