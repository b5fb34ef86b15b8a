//! Quirks mode is bounded too (issue 13): fail-first's counters, the
//! encodings of encoded-range, the `/_quirks/` page, arithmetic on values
//! from specs, throttle's duration and the echo of a bad spec, each over
//! real TCP with a raw socket.

mod common;

use std::time::{Duration, Instant};

use common::{Conn, RawResponse, TestServer};
use rangeserve::config::Limits;
use rangeserve::quirks::catalogue::CATALOGUE;
use rangeserve::quirks::counters::PATH_COUNTERS_MAX;
use rangeserve::quirks::encoded::ENCODED_MAX;
use rangeserve::quirks::page::PAGE_FILES;
use rangeserve::quirks::transform::gunzip;
use rangeserve::Config;
use sha2::{Digest as _, Sha256};

/// Quirks mode with no global quirk; long request targets allowed (the
/// tests send 8 KB paths and 60 KB specs).
fn config() -> Config {
    Config {
        quirks_mode: true,
        limits: Limits {
            max_uri_bytes: 128 * 1024,
            ..Limits::default()
        },
        ..Config::default()
    }
}

fn server(files: &[(&str, &[u8])]) -> TestServer {
    TestServer::with_files_config(files, config())
}

/// How a response ended, and when.
struct Exchange {
    res: RawResponse,
    elapsed: Duration,
}

/// One request on a fresh connection (`Connection: close`); the head, then
/// every byte until the server closes the connection (or 20 s pass).
fn exchange(s: &TestServer, target: &str, headers: &[(&str, &str)]) -> Exchange {
    let mut conn = Conn::new(s.addr);
    let mut all = headers.to_vec();
    all.push(("Connection", "close"));
    let start = Instant::now();
    conn.send("GET", target, &all);
    let (status_line, headers) = conn.read_head();
    let body = conn.read_to_end();
    Exchange {
        res: RawResponse {
            status_line,
            headers,
            body,
        },
        elapsed: start.elapsed(),
    }
}

// ---------------------------------------------------------------------------
// 1. fail-first: counters bounded whatever the paths
// ---------------------------------------------------------------------------

#[test]
fn fail_first_counters_are_bounded_and_the_least_recent_path_goes_first() {
    let a = common::pattern(1000);
    let s = server(&[("a.bin", &a), ("b.bin", &a)]);
    let on = |conn: &mut Conn, path: &str| {
        conn.send("GET", &format!("/_quirks/fail-first=1{path}"), &[]);
        conn.read_response(false).status()
    };
    let mut conn = s.connect();
    // the documented behaviour: the first N requests for a path fail
    assert_eq!(on(&mut conn, "/a.bin"), 503);
    assert_eq!(on(&mut conn, "/a.bin"), 200);
    assert_eq!(on(&mut conn, "/b.bin"), 503);
    assert_eq!(on(&mut conn, "/b.bin"), 200);
    // a flood of distinct 8 KB paths that exist nowhere: each is refused
    // once (counted), and the oldest counters are forgotten to make room;
    // /b.bin, requested along the way, stays remembered
    let long = "x".repeat(8000);
    let start = Instant::now();
    for i in 0..PATH_COUNTERS_MAX {
        assert_eq!(on(&mut conn, &format!("/{i}{long}")), 503, "path {i}");
        if i % 1000 == 0 {
            assert_eq!(on(&mut conn, "/b.bin"), 200);
        }
    }
    eprintln!("{PATH_COUNTERS_MAX} long paths in {:?}", start.elapsed());
    // /a.bin was the least recently counted: forgotten, it is refused anew
    assert_eq!(on(&mut conn, "/a.bin"), 503);
    assert_eq!(on(&mut conn, "/a.bin"), 200);
    assert_eq!(on(&mut conn, "/b.bin"), 200, "kept: recently used");
    // the most recent of the flood are still counted
    let last = format!("/{}{long}", PATH_COUNTERS_MAX - 1);
    assert_eq!(on(&mut conn, &last), 404, "counted: served (404) this time");
}

// ---------------------------------------------------------------------------
// 2. encoded-range: one compression per version, shared
// ---------------------------------------------------------------------------

fn text(len: usize) -> Vec<u8> {
    (0..)
        .flat_map(|i: u32| format!("line {i:07} of a compressible file\n").into_bytes())
        .take(len)
        .collect()
}

#[test]
fn encoded_range_concurrent_requests_get_the_same_correct_gzip() {
    let t = text(3 << 20);
    let s = server(&[("t.txt", &t)]);
    let addr = s.addr;
    let threads: Vec<_> = (0..12)
        .map(|i| {
            std::thread::spawn(move || {
                // half ask for the whole gzip, half for one byte of it
                let range = format!("bytes={}-{}", i * 100, i * 100);
                let headers: &[(&str, &str)] = if i % 2 == 0 {
                    &[]
                } else {
                    &[("Range", range.as_str())]
                };
                let mut conn = Conn::new(addr);
                conn.send("GET", "/_quirks/encoded-range/t.txt", headers);
                (i, conn.read_response(false))
            })
        })
        .collect();
    let results: Vec<(usize, RawResponse)> =
        threads.into_iter().map(|t| t.join().unwrap()).collect();
    let full = &results[0].1;
    assert_eq!(full.status_line, "HTTP/1.1 200 OK");
    let gz = full.body.clone();
    assert!(gunzip(&gz).unwrap() == t, "decodes to the file");
    let etag = format!("\"{}\"", hex::encode(Sha256::digest(&gz)));
    assert_eq!(full.header("ETag"), Some(etag.as_str()));
    for (i, res) in &results {
        assert_eq!(res.header("Content-Encoding"), Some("gzip"), "{i}");
        assert_eq!(res.header("ETag"), Some(etag.as_str()), "{i}");
        if i % 2 == 0 {
            assert_eq!(res.status(), 200, "{i}");
            assert!(res.body == gz, "{i}: the same gzip bytes");
        } else {
            let at = i * 100;
            assert_eq!(res.status(), 206, "{i}");
            assert_eq!(
                res.header("Content-Range"),
                Some(format!("bytes {at}-{at}/{}", gz.len()).as_str())
            );
            assert_eq!(res.body, &gz[at..=at], "{i}");
        }
    }
    // later requests: the same bytes again
    let again = s.get("/_quirks/encoded-range/t.txt", &[]);
    assert!(again.body == gz);
}

#[test]
fn encoded_range_refuses_files_over_its_limit() {
    let dir = tempfile::tempdir().unwrap();
    let f = std::fs::File::create(dir.path().join("big.bin")).unwrap();
    f.set_len(ENCODED_MAX + 1).unwrap(); // sparse
    std::fs::write(dir.path().join("small.bin"), b"small").unwrap();
    let s = TestServer::start_with(dir.path(), config());
    let res = s.get("/_quirks/encoded-range/big.bin", &[("Range", "bytes=0-0")]);
    assert_eq!(res.status_line, "HTTP/1.1 503 Service Unavailable");
    assert!(res
        .body_str()
        .contains(&format!("over {ENCODED_MAX} bytes")));
    // without the quirk it is served as always
    let res = s.get("/big.bin", &[("Range", "bytes=0-0")]);
    assert_eq!(res.status(), 206);
    let res = s.get("/_quirks/encoded-range/small.bin", &[]);
    assert_eq!(gunzip(&res.body).unwrap(), b"small");
}

// ---------------------------------------------------------------------------
// 3. The /_quirks/ page: bounded whatever the directory
// ---------------------------------------------------------------------------

#[test]
fn quirks_page_of_a_directory_of_20k_files_is_bounded() {
    let dir = tempfile::tempdir().unwrap();
    for i in 0..20_000 {
        std::fs::File::create(dir.path().join(format!("file-{i:05}.bin"))).unwrap();
    }
    let s = TestServer::start_with(dir.path(), config());
    let res = s.get("/_quirks/", &[]);
    assert_eq!(res.status_line, "HTTP/1.1 200 OK");
    let html = res.body_str();
    eprintln!("page for 20k files: {} bytes", html.len());
    assert!(html.len() < 100_000, "{} bytes", html.len());
    assert_eq!(
        html.matches("href=\"/_quirks/").count(),
        PAGE_FILES * CATALOGUE.len()
    );
    assert!(html.contains(&format!("{} more not shown", 20_000 - PAGE_FILES)));
    // the first files by name, as a listing orders them
    assert!(html.contains("href=\"/_quirks/no-etag/file-00000.bin\""));
    let last = format!("file-{:05}.bin", PAGE_FILES - 1);
    assert!(html.contains(&last) && !html.contains(&format!("file-{PAGE_FILES:05}.bin")));
    // and the links work
    assert_eq!(s.get("/_quirks/no-etag/file-19999.bin", &[]).status(), 200);
}

// ---------------------------------------------------------------------------
// 4. Values from specs: no overflow (this is a debug build: it would panic)
// ---------------------------------------------------------------------------

#[test]
fn huge_values_in_specs_never_overflow() {
    let hello = b"Hello, world!"; // 13 bytes
    let s = server(&[("h.txt", hello)]);
    let max = u64::MAX;
    let check_range = |spec: &str| {
        let res = s.get(
            &format!("/_quirks/{spec}/h.txt"),
            &[("Range", "bytes=2-10")],
        );
        assert_eq!(res.status_line, "HTTP/1.1 206 Partial Content", "{spec}");
        assert_eq!(res.header("Content-Range"), Some("bytes 2-10/13"), "{spec}");
        assert_eq!(res.header("Content-Length"), Some("9"), "{spec}");
        assert_eq!(res.body, &hello[2..=10], "{spec}");
        assert_eq!(res.header("Rangeserve-Quirks"), Some(spec));
    };
    // range-capped: a cap past the range's end does not shorten it
    for cap in [
        max,
        max - 1,
        max - 2,
        max - 8,
        max - 9,
        max - 10,
        1 << 63,
        9,
    ] {
        check_range(&format!("range-capped={cap}"));
    }
    let res = s.get("/_quirks/range-capped=8/h.txt", &[("Range", "bytes=2-10")]);
    assert_eq!(res.header("Content-Range"), Some("bytes 2-9/13"));
    // every quirk that takes a number, at and near u64::MAX
    for n in [max, max - 1, max - 13, 1 << 63] {
        for spec in [
            format!("drop-after={n}"),
            format!("drop-at={n}"),
            format!("stall-after={n}"),
            format!("throttle={n}"),
            format!("drop-after={n},drop-at={n},stall-after={n},throttle={n},range-capped={n}"),
        ] {
            check_range(&spec);
            let x = exchange(&s, &format!("/_quirks/{spec}/h.txt"), &[]);
            assert_eq!(x.res.status(), 200, "{spec}");
            assert_eq!(x.res.body, hello, "{spec}");
            assert!(
                x.elapsed < Duration::from_secs(5),
                "{spec}: {:?}",
                x.elapsed
            );
        }
        let x = exchange(&s, &format!("/_quirks/fail-first={n}/h.txt"), &[]);
        assert_eq!(x.res.status(), 503);
    }
    // values that are not u64 are refused, not wrapped
    for spec in [
        "range-capped=18446744073709551616",
        "throttle=18014398509481984k",
        "throttle=17592186044416M",
    ] {
        let res = s.get(&format!("/_quirks/{spec}/h.txt"), &[]);
        assert_eq!(res.status(), 400, "{spec}");
    }
    // the server is up and correct
    let res = s.get("/h.txt", &[("Range", "bytes=2-10")]);
    assert_eq!(res.status(), 206);
    assert_eq!(res.body, &hello[2..=10]);
}

// ---------------------------------------------------------------------------
// 5. throttle: a response lasts at most the stall limit
// ---------------------------------------------------------------------------

#[test]
fn throttle_is_cut_at_the_stall_limit() {
    let data = common::pattern(100);
    let small = common::pattern(1500);
    let s = TestServer::with_files_config(
        &[("f.bin", &data), ("small.bin", &small)],
        Config {
            stall_limit: Duration::from_secs(2),
            ..config()
        },
    );
    // 1 byte/s: 100 s of body; cut after 2 s (bytes at 0, 1 and 2 s)
    let x = exchange(&s, "/_quirks/throttle=1/f.bin", &[]);
    assert_eq!(x.res.status_line, "HTTP/1.1 200 OK");
    assert_eq!(x.res.header("Content-Length"), Some("100"));
    assert!(
        x.elapsed >= Duration::from_millis(1900) && x.elapsed < Duration::from_secs(4),
        "{:?}",
        x.elapsed
    );
    let got = x.res.body.len();
    assert!((2..=4).contains(&got), "{got} bytes");
    assert_eq!(x.res.body, &data[..got], "the right bytes, then closed");
    // ranges too
    let x = exchange(&s, "/_quirks/throttle=1/f.bin", &[("Range", "bytes=50-")]);
    assert_eq!(x.res.status(), 206);
    assert!(x.elapsed < Duration::from_secs(4), "{:?}", x.elapsed);
    assert!(x.res.body.len() < 50);
    assert_eq!(x.res.body, &data[50..50 + x.res.body.len()]);
    // a body that fits in the limit is paced and complete
    let x = exchange(&s, "/_quirks/throttle=1k/small.bin", &[]);
    assert_eq!(x.res.body, small);
    assert!(x.elapsed >= Duration::from_millis(1300), "{:?}", x.elapsed);
}

// ---------------------------------------------------------------------------
// 6. A bad spec is not echoed whole
// ---------------------------------------------------------------------------

#[test]
fn a_60k_bad_spec_gets_a_short_400() {
    let s = server(&[("a.bin", b"a")]);
    let long = "q".repeat(60_000);
    let digits = "9".repeat(60_000);
    let check = |res: RawResponse, what: &str| {
        assert_eq!(res.status_line, "HTTP/1.1 400 Bad Request", "{what}");
        assert!(res.body.len() < 1024, "{what}: {} bytes", res.body.len());
        let body = res.body_str();
        assert!(
            body.contains('…') && body.contains("valid quirks: no-etag,"),
            "{what}: {body}"
        );
        assert_eq!(res.header("Rangeserve-Quirks"), Some(""));
    };
    check(
        s.get(&format!("/_quirks/{long}/a.bin"), &[]),
        "unknown name, URL",
    );
    check(
        s.get(&format!("/_quirks/drop-after={digits}/a.bin"), &[]),
        "bad value, URL",
    );
    let spec = format!("no-etag,{long}");
    check(
        s.get("/a.bin", &[("Rangeserve-Quirks", spec.as_str())]),
        "unknown name, header",
    );
    let spec = format!("throttle={long}");
    check(
        s.get("/a.bin", &[("Rangeserve-Quirks", spec.as_str())]),
        "bad value, header",
    );
    // the connection stays usable
    let mut conn = s.connect();
    conn.send_raw(format!("GET /_quirks/{long}/a.bin HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes());
    check(conn.read_response(false), "keep-alive");
    conn.send("GET", "/a.bin", &[]);
    assert_eq!(conn.read_response(false).body, b"a");
}
