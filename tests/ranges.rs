//! Range requests over real TCP: every form of RFC 9110 14.1, 206/416/200,
//! multipart/byteranges parsed back, and the abuse guards of 14.2.

mod common;

use common::{fixture, parse_content_range, parse_multipart, TestServer};
use rangeserve::Config;
use std::time::{Duration, Instant};

/// Assert a single-range 206 carries exactly bytes `first..=last` of `data`.
fn assert_partial(res: &common::RawResponse, data: &[u8], first: u64, last: u64) {
    assert_eq!(res.status_line, "HTTP/1.1 206 Partial Content");
    assert_eq!(
        res.header("Content-Range").unwrap(),
        format!("bytes {first}-{last}/{}", data.len())
    );
    assert_eq!(
        res.header("Content-Length").unwrap(),
        (last - first + 1).to_string()
    );
    assert_eq!(res.header("Accept-Ranges"), Some("bytes"));
    assert_eq!(res.body, &data[first as usize..=last as usize]);
}

#[test]
fn every_single_range_form_of_rfc_9110_14_1_2() {
    let s = TestServer::fixtures();
    let data = fixture("data.bin");
    assert_eq!(data.len(), 10000);
    #[rustfmt::skip]
    let rows: &[(&str, u64, u64)] = &[
        ("bytes=0-499", 0, 499),        // first 500 bytes
        ("bytes=500-999", 500, 999),    // second 500 bytes
        ("bytes=-500", 9500, 9999),     // final 500 bytes
        ("bytes=9500-", 9500, 9999),    // final 500 bytes, open-ended
        ("bytes=500-", 500, 9999),      // the seed's "most common format"
        ("bytes=0-0", 0, 0),
        ("bytes=9999-9999", 9999, 9999),
        ("bytes=9000-20000", 9000, 9999),               // last-pos clamped
        ("bytes=-20000", 0, 9999),                      // suffix longer than the file
        ("BYTES=1-2", 1, 2),                            // unit is case-insensitive
        ("bytes= 3-4 ,", 3, 4),                         // OWS, empty element
        ("bytes=500-600,601-999", 500, 999),            // adjacent: coalesced
        ("bytes=500-700,601-999", 500, 999),            // overlapping: coalesced
        ("bytes=0-99999999999999999999999", 0, 9999),   // huge last-pos
        ("bytes=20000-,5-6", 5, 6),                     // unsatisfiable part dropped
    ];
    for (range, first, last) in rows {
        let res = s.get("/data.bin", &[("Range", range)]);
        assert_eq!(
            res.header("Content-Type"),
            Some("application/octet-stream"),
            "{range}"
        );
        assert_partial(&res, &data, *first, *last);
    }
}

#[test]
fn first_and_last_byte_is_multipart_verified_byte_for_byte() {
    let s = TestServer::fixtures();
    let data = fixture("data.bin");
    let res = s.get("/data.bin", &[("Range", "bytes=0-0,-1")]);
    assert_eq!(res.status_line, "HTTP/1.1 206 Partial Content");
    assert!(
        !res.has("Content-Range"),
        "no top-level Content-Range on multipart (14.6)"
    );
    assert_eq!(
        res.header("Content-Length").unwrap(),
        res.body.len().to_string()
    );
    let ct = res.header("Content-Type").unwrap();
    let parts = parse_multipart(ct, &res.body);
    assert_eq!(parts.len(), 2);
    assert_eq!(
        parts[0].header("Content-Type"),
        Some("application/octet-stream")
    );
    assert_eq!(parts[0].header("Content-Range"), Some("bytes 0-0/10000"));
    assert_eq!(parts[0].body, &data[..1]);
    assert_eq!(
        parts[1].header("Content-Range"),
        Some("bytes 9999-9999/10000")
    );
    assert_eq!(parts[1].body, &data[9999..]);
}

#[test]
fn multipart_keeps_request_order_and_type_and_fresh_boundaries() {
    let s = TestServer::fixtures();
    let data = fixture("hello.txt");
    let header = "bytes=50-59, 0-4,20-29,-3";
    let res = s.get("/hello.txt", &[("Range", header)]);
    assert_eq!(res.status(), 206);
    let ct = res.header("Content-Type").unwrap().to_string();
    let parts = parse_multipart(&ct, &res.body);
    let want = [(50, 59), (0, 4), (20, 29), (66, 68)];
    assert_eq!(parts.len(), want.len());
    for (part, (a, b)) in parts.iter().zip(want) {
        assert_eq!(part.header("Content-Type"), Some("text/plain"));
        let (first, last, len) = parse_content_range(part.header("Content-Range").unwrap());
        assert_eq!((first, last, len), (a, b, data.len() as u64));
        assert_eq!(part.body, &data[a as usize..=b as usize]);
    }
    let again = s.get("/hello.txt", &[("Range", header)]);
    assert_ne!(
        again.header("Content-Type").unwrap(),
        ct,
        "a fresh boundary per response"
    );
    assert_eq!(
        parse_multipart(again.header("Content-Type").unwrap(), &again.body).len(),
        4
    );
}

#[test]
fn many_ranges_of_a_large_file_stream_correctly() {
    // parts larger than one read chunk, several chunks each
    let data = common::pattern(3 * 1024 * 1024 + 17);
    let s = TestServer::with_files(&[("big.bin", &data)]);
    let res = s.get(
        "/big.bin",
        &[("Range", "bytes=2000000-,0-300000,1000000-1000000")],
    );
    let parts = parse_multipart(res.header("Content-Type").unwrap(), &res.body);
    let want: [(usize, usize); 3] = [(2000000, data.len() - 1), (0, 300000), (1000000, 1000000)];
    for (part, (a, b)) in parts.iter().zip(want) {
        assert_eq!(part.body, &data[a..=b]);
    }
    let full = s.get("/big.bin", &[]);
    assert_eq!(full.status(), 200);
    assert!(full.body == data, "full body differs");
}

#[test]
fn unsatisfiable_ranges_get_416_with_the_length() {
    let s = TestServer::fixtures();
    for range in [
        "bytes=10000-",
        "bytes=10000-10005",
        "bytes=-0",
        "bytes=99999999999999999999999-",
        "bytes=20000-30000,10000-",
    ] {
        let res = s.get("/data.bin", &[("Range", range)]);
        assert_eq!(
            res.status_line, "HTTP/1.1 416 Range Not Satisfiable",
            "{range}"
        );
        assert_eq!(
            res.header("Content-Range"),
            Some("bytes */10000"),
            "{range}"
        );
        assert_eq!(res.header("Accept-Ranges"), Some("bytes"));
    }
}

#[test]
fn invalid_or_unknown_ranges_are_ignored_with_200() {
    let s = TestServer::fixtures();
    let data = fixture("data.bin");
    for range in [
        "items=0-1",
        "bytes=5-1",
        "bytes=abc",
        "bytes=",
        "bytes 0-1",
        "bytes=1-2-3",
        "bytes=0-1,x",
    ] {
        let res = s.get("/data.bin", &[("Range", range)]);
        assert_eq!(res.status_line, "HTTP/1.1 200 OK", "{range}");
        assert!(!res.has("Content-Range"), "{range}");
        assert_eq!(res.header("Content-Length"), Some("10000"));
        assert!(res.body == data);
    }
    // two Range headers: ambiguous, ignored
    let res = s.get(
        "/data.bin",
        &[("Range", "bytes=0-1"), ("Range", "bytes=2-3")],
    );
    assert_eq!(res.status(), 200);
}

#[test]
fn empty_file() {
    let s = TestServer::fixtures();
    let res = s.get("/empty.txt", &[]);
    assert_eq!(res.status_line, "HTTP/1.1 200 OK");
    assert_eq!(res.header("Content-Length"), Some("0"));
    assert!(res.body.is_empty());
    // no int-range is satisfiable on an empty representation
    let res = s.get("/empty.txt", &[("Range", "bytes=0-")]);
    assert_eq!(res.status(), 416);
    assert_eq!(res.header("Content-Range"), Some("bytes */0"));
    // a suffix-range is satisfiable but a 206 cannot describe zero bytes: 200
    let res = s.get("/empty.txt", &[("Range", "bytes=-5")]);
    assert_eq!(res.status_line, "HTTP/1.1 200 OK");
    assert_eq!(res.header("Content-Length"), Some("0"));
    assert!(!res.has("Content-Range"));
}

#[test]
fn head_with_range_gets_the_200_headers_and_no_body() {
    let s = TestServer::fixtures();
    let get = s.get("/data.bin", &[]);
    for range in [
        None,
        Some("bytes=0-0"),
        Some("bytes=0-0,-1"),
        Some("bytes=50000-"),
    ] {
        let headers: Vec<(&str, &str)> = range.iter().map(|r| ("Range", *r)).collect();
        let mut conn = s.connect();
        conn.send("HEAD", "/data.bin", &headers);
        let head = conn.read_response(true);
        assert_eq!(head.status_line, "HTTP/1.1 200 OK", "{range:?}");
        for h in [
            "Content-Length",
            "Content-Type",
            "Accept-Ranges",
            "Last-Modified",
        ] {
            assert_eq!(head.header(h), get.header(h), "{h}");
        }
        assert!(!head.has("Content-Range"));
        // nothing follows the headers: the next request on the connection is answered cleanly
        conn.send("GET", "/hello.txt", &[("Range", "bytes=0-4")]);
        assert_eq!(conn.read_response(false).body, b"Hello");
    }
}

#[test]
fn range_is_ignored_on_methods_other_than_get() {
    let s = TestServer::fixtures();
    let res = s.request("OPTIONS", "/data.bin", &[("Range", "bytes=0-0")]);
    assert_eq!(res.status_line, "HTTP/1.1 204 No Content");
    let res = s.request(
        "POST",
        "/data.bin",
        &[("Range", "bytes=0-0"), ("Content-Length", "0")],
    );
    assert_eq!(res.status(), 405);
    assert!(!res.has("Content-Range"));
}

#[test]
fn the_overlapping_range_attack_costs_nothing() {
    // 2011 "Apache Killer": thousands of overlapping ranges
    let data = common::pattern(1024 * 1024);
    let s = TestServer::with_files(&[("f.bin", &data)]);
    let attack = format!("bytes={}", vec!["0-"; 4000].join(","));
    let start = Instant::now();
    let res = s.get("/f.bin", &[("Range", &attack)]);
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "took {:?}",
        start.elapsed()
    );
    // coalesced into one range: the file once, never more
    assert_partial(&res, &data, 0, data.len() as u64 - 1);
    let attack2 = format!(
        "bytes={}",
        (0..2000)
            .map(|i| format!("{}-{}", i, i + 5000))
            .collect::<Vec<_>>()
            .join(",")
    );
    let res = s.get("/f.bin", &[("Range", &attack2)]);
    assert_partial(&res, &data, 0, 6999);
}

#[test]
fn more_than_max_ranges_after_coalescing_is_ignored() {
    let data = common::pattern(10000);
    let s = TestServer::with_files_config(
        &[("f.bin", &data)],
        Config {
            max_ranges: 4,
            ..Config::default()
        },
    );
    let five = "bytes=0-0,10-10,20-20,30-30,40-40";
    let res = s.get("/f.bin", &[("Range", five)]);
    assert_eq!(res.status(), 200);
    assert!(res.body == data);
    let four = "bytes=0-0,10-10,20-20,30-30";
    let res = s.get("/f.bin", &[("Range", four)]);
    assert_eq!(res.status(), 206);
    // five ranges, two of them adjacent: four after coalescing, served
    let res = s.get("/f.bin", &[("Range", "bytes=0-0,1-1,20-20,30-30,40-40")]);
    assert_eq!(
        parse_multipart(res.header("Content-Type").unwrap(), &res.body).len(),
        4
    );
    // multipart overhead stays bounded: the body is never larger than the
    // file plus a few hundred bytes per part
    let tiny = format!(
        "bytes={}",
        (0..4)
            .map(|i| format!("{}-{}", i * 100, i * 100))
            .collect::<Vec<_>>()
            .join(",")
    );
    let res = s.get("/f.bin", &[("Range", &tiny)]);
    assert!(res.body.len() < 4 * 200);
}
