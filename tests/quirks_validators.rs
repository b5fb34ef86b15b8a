//! Quirks mode over real TCP: every quirk of the catalogue's "Validators" and
//! "Range handling" groups, selected globally, by URL prefix and by request
//! header; the `Rangeserve-Quirks` response header; `none`; errors for unknown
//! quirks; the `/_quirks/` catalogue page; determinism under `seed`.

mod common;

use std::io::Read as _;
use std::time::{Duration, SystemTime};

use common::{parse_multipart, pattern, RawResponse, TestServer};
use rangeserve::quirks::catalogue::CATALOGUE;
use rangeserve::quirks::{QuirkSet, Spec};
use rangeserve::Config;
use sha2::{Digest, Sha256};

const LEN: usize = 1000;

fn data() -> Vec<u8> {
    pattern(LEN)
}

/// The strong content ETag the correct server sends: `"sha256-hex"`.
fn etag_of(bytes: &[u8]) -> String {
    format!("\"{}\"", hex::encode(Sha256::digest(bytes)))
}

fn quirks(spec: &str) -> Vec<rangeserve::quirks::Quirk> {
    Spec::parse(spec).unwrap().quirks
}

/// What `Rangeserve-Quirks` reports for `spec` alone (no global quirks).
fn applied(spec: &str) -> String {
    QuirkSet::combine(&QuirkSet::default(), &[Spec::parse(spec).unwrap()]).to_string()
}

/// A quirks-mode server with no global quirk.
fn quirks_server(files: &[(&str, &[u8])]) -> TestServer {
    TestServer::with_files_config(
        files,
        Config {
            quirks_mode: true,
            ..Config::default()
        },
    )
}

/// Set a file's mtime an hour back, so Last-Modified is a strong validator
/// (at least a second before Date) and If-Range with it can match.
fn age(s: &TestServer, name: &str) {
    let f = std::fs::File::options()
        .write(true)
        .open(s.root.join(name))
        .unwrap();
    f.set_modified(SystemTime::now() - Duration::from_secs(3600))
        .unwrap();
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_end(&mut out)
        .expect("a valid gzip stream");
    out
}

/// How a quirk is selected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Way {
    /// `Config { quirks }` (the `--quirk` option): quirks mode implied.
    Global,
    /// `/_quirks/SPEC/path`.
    Prefix,
    /// `Rangeserve-Quirks: SPEC`.
    Header,
}

const WAYS: [Way; 3] = [Way::Global, Way::Prefix, Way::Header];

/// A server, and the way `spec` is selected on it.
struct Q<'a> {
    s: &'a TestServer,
    way: Way,
    spec: &'a str,
}

impl Q<'_> {
    /// `method path` with `spec` selected by this way; checks that the
    /// response reports exactly the quirks applied.
    fn req(&self, method: &str, path: &str, headers: &[(&str, &str)]) -> RawResponse {
        let target = match self.way {
            Way::Prefix => format!("/_quirks/{}{path}", self.spec),
            _ => path.to_string(),
        };
        let mut h = headers.to_vec();
        if self.way == Way::Header {
            h.push(("Rangeserve-Quirks", self.spec));
        }
        let res = self.s.request(method, &target, &h);
        assert_eq!(
            res.header("Rangeserve-Quirks"),
            Some(applied(self.spec).as_str()),
            "{:?}: {method} {target} {h:?}: {}",
            self.way,
            res.status_line
        );
        res
    }

    fn get(&self, path: &str, headers: &[(&str, &str)]) -> RawResponse {
        self.req("GET", path, headers)
    }

    fn head(&self, path: &str, headers: &[(&str, &str)]) -> RawResponse {
        self.req("HEAD", path, headers)
    }
}

/// Run `f` once per way of selecting `spec`, each on a fresh server holding `files`.
fn each_way(spec: &str, files: &[(&str, &[u8])], f: impl Fn(&Q<'_>)) {
    for way in WAYS {
        eprintln!("--- {spec} selected by {way:?}");
        let config = match way {
            // quirks_mode stays false: a global quirk turns quirks mode on
            Way::Global => Config {
                quirks: quirks(spec),
                ..Config::default()
            },
            _ => Config {
                quirks_mode: true,
                ..Config::default()
            },
        };
        let s = TestServer::with_files_config(files, config);
        f(&Q { s: &s, way, spec });
    }
}

/// A 200 with the whole `data` and no Content-Range.
fn assert_full(res: &RawResponse, data: &[u8]) {
    assert_eq!(res.status_line, "HTTP/1.1 200 OK");
    assert_eq!(
        res.header("Content-Length"),
        Some(data.len().to_string().as_str())
    );
    assert!(!res.has("Content-Range"), "{:?}", res.headers);
    assert!(res.body == data, "the body is the whole file");
}

/// A single-range 206 carrying `data[first..=last]`.
fn assert_partial(res: &RawResponse, data: &[u8], first: usize, last: usize) {
    assert_eq!(res.status_line, "HTTP/1.1 206 Partial Content");
    let cr = format!("bytes {first}-{last}/{}", data.len());
    assert_eq!(res.header("Content-Range"), Some(cr.as_str()));
    assert_eq!(
        res.header("Content-Length"),
        Some((last - first + 1).to_string().as_str())
    );
    assert!(
        res.body == data[first..=last],
        "the body is bytes {first}-{last} of the file"
    );
}

/// A 416 with `Content-Range: bytes */len`.
fn assert_416(res: &RawResponse, len: usize) {
    assert_eq!(res.status_line, "HTTP/1.1 416 Range Not Satisfiable");
    let cr = format!("bytes */{len}");
    assert_eq!(res.header("Content-Range"), Some(cr.as_str()));
}

// ---------------------------------------------------------------- Validators

#[test]
fn no_etag() {
    let d = data();
    let tag = etag_of(&d);
    each_way("no-etag", &[("a.bin", &d)], |q| {
        let res = q.get("/a.bin", &[]);
        assert_full(&res, &d);
        assert!(!res.has("ETag"));
        assert!(res.has("Last-Modified"));
        assert_eq!(res.header("Accept-Ranges"), Some("bytes"));
        // ranges are still served
        let res = q.get("/a.bin", &[("Range", "bytes=100-199")]);
        assert_partial(&res, &d, 100, 199);
        assert!(!res.has("ETag"));
        let res = q.head("/a.bin", &[]);
        assert_eq!(res.status_line, "HTTP/1.1 200 OK");
        assert!(!res.has("ETag"));
        assert_eq!(res.header("Content-Length"), Some("1000"));
        // there is no tag to match: an If-Range with the content's tag gets 200
        let res = q.get("/a.bin", &[("Range", "bytes=0-9"), ("If-Range", &tag)]);
        assert_full(&res, &d);
        assert!(!res.has("ETag"));
    });
}

#[test]
fn weak_etag() {
    let d = data();
    let strong = etag_of(&d);
    let weak = format!("W/{strong}");
    each_way("weak-etag", &[("a.bin", &d)], |q| {
        let res = q.get("/a.bin", &[]);
        assert_full(&res, &d);
        assert_eq!(res.header("ETag"), Some(weak.as_str()));
        let res = q.get("/a.bin", &[("Range", "bytes=10-19")]);
        assert_partial(&res, &d, 10, 19);
        assert_eq!(res.header("ETag"), Some(weak.as_str()));
        assert_eq!(q.head("/a.bin", &[]).header("ETag"), Some(weak.as_str()));
        // If-Range never matches, in either form of the tag
        for if_range in [&weak, &strong] {
            let res = q.get(
                "/a.bin",
                &[("Range", "bytes=10-19"), ("If-Range", if_range)],
            );
            assert_full(&res, &d);
            assert_eq!(res.header("ETag"), Some(weak.as_str()));
        }
    });
}

#[test]
fn unstable_etag() {
    let d = data();
    let content_tag = etag_of(&d);
    each_way("unstable-etag", &[("a.bin", &d)], |q| {
        let mut seen = Vec::new();
        for _ in 0..3 {
            let res = q.get("/a.bin", &[]);
            assert_full(&res, &d);
            seen.push(res.header("ETag").expect("an ETag").to_string());
        }
        let res = q.head("/a.bin", &[]);
        seen.push(res.header("ETag").expect("an ETag").to_string());
        let res = q.get("/a.bin", &[("Range", "bytes=5-9")]);
        assert_partial(&res, &d, 5, 9);
        seen.push(res.header("ETag").expect("an ETag").to_string());
        for t in &seen {
            assert!(
                t.starts_with('"') && t.ends_with('"') && t.len() > 2,
                "a strong entity-tag: {t}"
            );
        }
        let mut unique = seen.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(
            unique.len(),
            seen.len(),
            "a new tag every response: {seen:?}"
        );
        // If-Range is checked against the tag this response sends: a resume with
        // the tag just received (or the content's tag) always falls back to 200
        let mut last = seen.last().unwrap().clone();
        for _ in 0..3 {
            let res = q.get("/a.bin", &[("Range", "bytes=500-"), ("If-Range", &last)]);
            assert_full(&res, &d);
            let now = res.header("ETag").unwrap().to_string();
            assert_ne!(now, last);
            last = now;
        }
        let res = q.get(
            "/a.bin",
            &[("Range", "bytes=500-"), ("If-Range", &content_tag)],
        );
        assert_full(&res, &d);
    });
}

#[test]
fn unstable_etag_is_deterministic_under_seed() {
    let d = data();
    let run = |seed: u64, global: bool| -> Vec<String> {
        let config = if global {
            Config {
                quirks: quirks("unstable-etag"),
                seed,
                ..Config::default()
            }
        } else {
            Config {
                quirks_mode: true,
                seed,
                ..Config::default()
            }
        };
        let s = TestServer::with_files_config(&[("a.bin", &d), ("b.bin", &d)], config);
        let h = [("Rangeserve-Quirks", "unstable-etag")];
        let mut tags = Vec::new();
        for (method, path, range) in [
            ("GET", "/a.bin", None),
            ("HEAD", "/a.bin", None),
            ("GET", "/b.bin", Some("bytes=0-9")),
            ("GET", "/a.bin", Some("bytes=1-2")),
            ("GET", "/b.bin", None),
        ] {
            let mut headers: Vec<(&str, &str)> = if global { vec![] } else { h.to_vec() };
            if let Some(r) = range {
                headers.push(("Range", r));
            }
            let res = s.request(method, path, &headers);
            assert_eq!(res.header("Rangeserve-Quirks"), Some("unstable-etag"));
            tags.push(res.header("ETag").expect("an ETag").to_string());
        }
        tags
    };
    let a = run(7, true);
    assert_eq!(a, run(7, true), "same seed, same requests: same tags");
    assert_eq!(a, run(7, false), "the way of selecting does not matter");
    let b = run(8, true);
    for (x, y) in a.iter().zip(&b) {
        assert_ne!(x, y, "another seed gives other tags");
    }
    // the default seed is fixed too
    let dflt = |_: ()| {
        let s = TestServer::with_files_config(
            &[("a.bin", &d)],
            Config {
                quirks: quirks("unstable-etag"),
                ..Config::default()
            },
        );
        (0..3)
            .map(|_| s.get("/a.bin", &[]).header("ETag").unwrap().to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(dflt(()), dflt(()));
}

#[test]
fn stale_etag() {
    let d = data();
    let content_tag = etag_of(&d);
    let mut tags = Vec::new();
    each_way("stale-etag", &[("a.bin", &d), ("b.bin", &d)], |q| {
        let res = q.get("/a.bin", &[]);
        assert_full(&res, &d);
        let tag = res.header("ETag").expect("an ETag").to_string();
        assert!(tag.starts_with('"') && tag.ends_with('"'), "strong: {tag}");
        assert_ne!(tag, content_tag, "derived from the path, not the content");
        let other = q.get("/b.bin", &[]);
        assert_full(&other, &d);
        assert_ne!(
            other.header("ETag"),
            Some(tag.as_str()),
            "same content, other path, other tag"
        );
        assert_eq!(q.head("/a.bin", &[]).header("ETag"), Some(tag.as_str()));
        // the content changes (size and bytes); the tag does not
        let new: Vec<u8> = pattern(1200).iter().map(|b| b ^ 0x5a).collect();
        std::fs::write(q.s.root.join("a.bin"), &new).unwrap();
        let res = q.get("/a.bin", &[]);
        assert_full(&res, &new);
        assert_eq!(res.header("ETag"), Some(tag.as_str()));
        // and If-Range "matches": the resume splices old and new bytes
        let res = q.get("/a.bin", &[("Range", "bytes=500-"), ("If-Range", &tag)]);
        assert_partial(&res, &new, 500, 1199);
        assert_eq!(res.header("ETag"), Some(tag.as_str()));
    });
    // the tag depends on the path only: the same on every server and every way
    for way in WAYS {
        let s = if way == Way::Global {
            TestServer::with_files_config(
                &[("a.bin", b"one")],
                Config {
                    quirks: quirks("stale-etag"),
                    ..Config::default()
                },
            )
        } else {
            quirks_server(&[("a.bin", b"two")])
        };
        let q = Q {
            s: &s,
            way,
            spec: "stale-etag",
        };
        tags.push(q.get("/a.bin", &[]).header("ETag").unwrap().to_string());
    }
    assert!(tags.windows(2).all(|w| w[0] == w[1]), "{tags:?}");
}

#[test]
fn no_last_modified() {
    let d = data();
    let tag = etag_of(&d);
    each_way("no-last-modified", &[("a.bin", &d)], |q| {
        age(q.s, "a.bin");
        let mtime = std::fs::metadata(q.s.root.join("a.bin"))
            .unwrap()
            .modified()
            .unwrap();
        let date = httpdate::fmt_http_date(mtime);
        let res = q.get("/a.bin", &[]);
        assert_full(&res, &d);
        assert!(!res.has("Last-Modified"));
        assert_eq!(res.header("ETag"), Some(tag.as_str()));
        let res = q.get("/a.bin", &[("Range", "bytes=0-9")]);
        assert_partial(&res, &d, 0, 9);
        assert!(!res.has("Last-Modified"));
        assert!(!q.head("/a.bin", &[]).has("Last-Modified"));
        // no date to compare with: If-Range with the file's date gets 200
        let res = q.get("/a.bin", &[("Range", "bytes=0-9"), ("If-Range", &date)]);
        assert_full(&res, &d);
        // the ETag still works
        let res = q.get("/a.bin", &[("Range", "bytes=0-9"), ("If-Range", &tag)]);
        assert_partial(&res, &d, 0, 9);
        if q.way != Way::Global {
            // control: without the quirk the same date matches
            let res =
                q.s.get("/a.bin", &[("Range", "bytes=0-9"), ("If-Range", &date)]);
            assert_partial(&res, &d, 0, 9);
            assert_eq!(res.header("Last-Modified"), Some(date.as_str()));
        }
    });
}

#[test]
fn unquoted_etag() {
    let d = data();
    let quoted = etag_of(&d);
    let bare = quoted.trim_matches('"').to_string();
    each_way("unquoted-etag", &[("a.bin", &d)], |q| {
        let res = q.get("/a.bin", &[]);
        assert_full(&res, &d);
        assert_eq!(res.header("ETag"), Some(bare.as_str()));
        let res = q.get("/a.bin", &[("Range", "bytes=0-9")]);
        assert_partial(&res, &d, 0, 9);
        assert_eq!(res.header("ETag"), Some(bare.as_str()));
        assert_eq!(q.head("/a.bin", &[]).header("ETag"), Some(bare.as_str()));
        // echoing the unquoted tag is an invalid If-Range: it does not match
        let res = q.get("/a.bin", &[("Range", "bytes=0-9"), ("If-Range", &bare)]);
        assert_full(&res, &d);
        assert_eq!(res.header("ETag"), Some(bare.as_str()));
        // quoting it first (what a robust client does) matches
        let res = q.get("/a.bin", &[("Range", "bytes=0-9"), ("If-Range", &quoted)]);
        assert_partial(&res, &d, 0, 9);
    });
}

// ------------------------------------------------------------ Range handling

#[test]
fn no_ranges() {
    let d = data();
    each_way("no-ranges", &[("a.bin", &d)], |q| {
        let res = q.get("/a.bin", &[]);
        assert_full(&res, &d);
        assert!(!res.has("Accept-Ranges"));
        for range in ["bytes=0-9", "bytes=-10", "bytes=0-9,20-29", "bytes=5000-"] {
            let res = q.get("/a.bin", &[("Range", range)]);
            assert_full(&res, &d);
            assert!(!res.has("Accept-Ranges"), "{range}");
            assert_eq!(res.header("Content-Type"), Some("application/octet-stream"));
        }
        let res = q.head("/a.bin", &[]);
        assert_eq!(res.status_line, "HTTP/1.1 200 OK");
        assert!(!res.has("Accept-Ranges"));
        assert_eq!(res.header("Content-Length"), Some("1000"));
    });
}

#[test]
fn accept_ranges_none() {
    let d = data();
    each_way("accept-ranges-none", &[("a.bin", &d)], |q| {
        let res = q.get("/a.bin", &[]);
        assert_full(&res, &d);
        assert_eq!(res.header("Accept-Ranges"), Some("none"));
        for range in ["bytes=0-9", "bytes=-10", "bytes=0-9,20-29", "bytes=5000-"] {
            let res = q.get("/a.bin", &[("Range", range)]);
            assert_full(&res, &d);
            assert_eq!(res.header("Accept-Ranges"), Some("none"), "{range}");
        }
        let res = q.head("/a.bin", &[]);
        assert_eq!(res.status_line, "HTTP/1.1 200 OK");
        assert_eq!(res.header("Accept-Ranges"), Some("none"));
        assert_eq!(res.header("Content-Length"), Some("1000"));
    });
}

#[test]
fn no_accept_ranges() {
    let d = data();
    each_way("no-accept-ranges", &[("a.bin", &d)], |q| {
        let res = q.get("/a.bin", &[]);
        assert_full(&res, &d);
        assert!(!res.has("Accept-Ranges"));
        let res = q.get("/a.bin", &[("Range", "bytes=100-")]);
        assert_partial(&res, &d, 100, 999);
        assert!(!res.has("Accept-Ranges"));
        let res = q.get("/a.bin", &[("Range", "bytes=0-9,20-29")]);
        assert_eq!(res.status_line, "HTTP/1.1 206 Partial Content");
        assert!(!res.has("Accept-Ranges"));
        let parts = parse_multipart(res.header("Content-Type").unwrap(), &res.body);
        assert_eq!(parts.len(), 2);
        assert!(parts[0].body == d[0..10] && parts[1].body == d[20..30]);
        let res = q.get("/a.bin", &[("Range", "bytes=5000-")]);
        assert_416(&res, LEN);
        assert!(!res.has("Accept-Ranges"));
        assert!(!q.head("/a.bin", &[]).has("Accept-Ranges"));
    });
}

#[test]
fn range_200() {
    let d = data();
    each_way("range-200", &[("a.bin", &d)], |q| {
        let res = q.get("/a.bin", &[("Range", "bytes=100-199")]);
        assert_eq!(res.status_line, "HTTP/1.1 200 OK");
        assert_eq!(res.header("Content-Range"), Some("bytes 100-199/1000"));
        assert_eq!(res.header("Content-Length"), Some("100"));
        assert!(res.body == d[100..200], "only the partial body");
        let res = q.get("/a.bin", &[("Range", "bytes=-10")]);
        assert_eq!(res.status_line, "HTTP/1.1 200 OK");
        assert_eq!(res.header("Content-Range"), Some("bytes 990-999/1000"));
        assert!(res.body == d[990..]);
        // no Range: an ordinary 200
        assert_full(&q.get("/a.bin", &[]), &d);
        // multi-range and 416 are not single-range 206s: unchanged
        let res = q.get("/a.bin", &[("Range", "bytes=0-9,20-29")]);
        assert_eq!(res.status_line, "HTTP/1.1 206 Partial Content");
        let parts = parse_multipart(res.header("Content-Type").unwrap(), &res.body);
        assert_eq!(parts.len(), 2);
        assert_416(&q.get("/a.bin", &[("Range", "bytes=5000-")]), LEN);
    });
}

#[test]
fn first_range_only() {
    let d = data();
    each_way("first-range-only", &[("a.bin", &d)], |q| {
        for (range, first, last) in [
            ("bytes=0-9,20-29,40-49", 0, 9),
            ("bytes=20-29,0-9", 20, 29),
            ("bytes=5000-6000,300-309,0-0", 300, 309),
            ("bytes=-10,0-9", 990, 999),
        ] {
            let res = q.get("/a.bin", &[("Range", range)]);
            assert_partial(&res, &d, first, last);
            assert_eq!(
                res.header("Content-Type"),
                Some("application/octet-stream"),
                "{range}: a single part, not multipart"
            );
        }
        assert_partial(&q.get("/a.bin", &[("Range", "bytes=7-8")]), &d, 7, 8);
        assert_full(&q.get("/a.bin", &[]), &d);
        assert_416(&q.get("/a.bin", &[("Range", "bytes=5000-,6000-")]), LEN);
    });
}

#[test]
fn multi_range_200() {
    let d = data();
    each_way("multi-range-200", &[("a.bin", &d)], |q| {
        for range in ["bytes=0-9,20-29", "bytes=-10,0-9,500-599"] {
            let res = q.get("/a.bin", &[("Range", range)]);
            assert_full(&res, &d);
            assert_eq!(res.header("Content-Type"), Some("application/octet-stream"));
            assert_eq!(res.header("Accept-Ranges"), Some("bytes"));
        }
        // a single range is still a 206
        assert_partial(&q.get("/a.bin", &[("Range", "bytes=10-19")]), &d, 10, 19);
    });
}

#[test]
fn ignore_if_range() {
    let d = data();
    each_way("ignore-if-range", &[("a.bin", &d)], |q| {
        age(q.s, "a.bin");
        let old_date = httpdate::fmt_http_date(SystemTime::now() - Duration::from_secs(86400));
        for if_range in [
            "\"not-the-tag\"",
            "W/\"weak\"",
            old_date.as_str(),
            etag_of(&d).as_str(),
        ] {
            let res = q.get(
                "/a.bin",
                &[("Range", "bytes=10-19"), ("If-Range", if_range)],
            );
            assert_partial(&res, &d, 10, 19);
            assert_eq!(res.header("ETag"), Some(etag_of(&d).as_str()));
        }
        if q.way != Way::Global {
            // control: without the quirk the mismatch gives 200
            let res = q.s.get(
                "/a.bin",
                &[("Range", "bytes=10-19"), ("If-Range", "\"not-the-tag\"")],
            );
            assert_full(&res, &d);
        }
    });
}

#[test]
fn bare_416() {
    let d = data();
    each_way("bare-416", &[("a.bin", &d)], |q| {
        for range in ["bytes=5000-", "bytes=1000-1001,2000-"] {
            let res = q.get("/a.bin", &[("Range", range)]);
            assert_eq!(res.status_line, "HTTP/1.1 416 Range Not Satisfiable");
            assert!(!res.has("Content-Range"), "{range}: {:?}", res.headers);
            assert_eq!(res.body_str(), "416 Range Not Satisfiable\n");
        }
        assert_partial(&q.get("/a.bin", &[("Range", "bytes=0-0")]), &d, 0, 0);
        if q.way != Way::Global {
            assert_416(&q.s.get("/a.bin", &[("Range", "bytes=5000-")]), LEN);
        }
    });
}

#[test]
fn if_range_416() {
    let d = data();
    let tag = etag_of(&d);
    each_way("if-range-416", &[("a.bin", &d)], |q| {
        for if_range in ["\"not-the-tag\"", "W/\"x\""] {
            let res = q.get("/a.bin", &[("Range", "bytes=0-9"), ("If-Range", if_range)]);
            assert_416(&res, LEN);
            assert!(res.body != d);
        }
        // a matching If-Range still gets its 206; no Range still gets 200
        let res = q.get("/a.bin", &[("Range", "bytes=0-9"), ("If-Range", &tag)]);
        assert_partial(&res, &d, 0, 9);
        assert_partial(&q.get("/a.bin", &[("Range", "bytes=0-9")]), &d, 0, 9);
        assert_full(&q.get("/a.bin", &[("If-Range", "\"not-the-tag\"")]), &d);
        assert_full(&q.get("/a.bin", &[]), &d);
    });
}

#[test]
fn weak_if_range_206() {
    let d = data();
    let tag = etag_of(&d);
    let weak = format!("W/{tag}");
    each_way("weak-if-range-206", &[("a.bin", &d)], |q| {
        let res = q.get("/a.bin", &[]);
        assert_full(&res, &d);
        assert_eq!(
            res.header("ETag"),
            Some(tag.as_str()),
            "the tag stays strong"
        );
        // the bug: a weak tag whose opaque part is the current tag matches
        let res = q.get("/a.bin", &[("Range", "bytes=10-19"), ("If-Range", &weak)]);
        assert_partial(&res, &d, 10, 19);
        // the strong form still matches; another weak tag does not
        let res = q.get("/a.bin", &[("Range", "bytes=10-19"), ("If-Range", &tag)]);
        assert_partial(&res, &d, 10, 19);
        let res = q.get(
            "/a.bin",
            &[("Range", "bytes=10-19"), ("If-Range", "W/\"other\"")],
        );
        assert_full(&res, &d);
        if q.way != Way::Global {
            let res =
                q.s.get("/a.bin", &[("Range", "bytes=10-19"), ("If-Range", &weak)]);
            assert_full(&res, &d);
        }
    });
}

#[test]
fn head_lies() {
    let d = data();
    each_way("head-lies", &[("a.bin", &d)], |q| {
        for headers in [vec![], vec![("Range", "bytes=0-9")]] {
            let res = q.head("/a.bin", &headers);
            assert_eq!(res.status_line, "HTTP/1.1 200 OK");
            assert!(!res.has("Accept-Ranges"), "{:?}", res.headers);
            assert!(!res.has("Transfer-Encoding"), "{:?}", res.headers);
            assert!(!res.has("Content-Range"), "{:?}", res.headers);
            assert_eq!(res.header("ETag"), Some(etag_of(&d).as_str()));
        }
        // GET is correct
        let res = q.get("/a.bin", &[]);
        assert_full(&res, &d);
        assert_eq!(res.header("Accept-Ranges"), Some("bytes"));
        let res = q.get("/a.bin", &[("Range", "bytes=0-9")]);
        assert_partial(&res, &d, 0, 9);
        assert_eq!(res.header("Accept-Ranges"), Some("bytes"));
        // the connection stays usable after the lying HEAD
        let mut conn = q.s.connect();
        let mut h = vec![];
        if q.way == Way::Header {
            h.push(("Rangeserve-Quirks", "head-lies"));
        }
        let target = if q.way == Way::Prefix {
            "/_quirks/head-lies/a.bin"
        } else {
            "/a.bin"
        };
        conn.send("HEAD", target, &h);
        let res = conn.read_response(true);
        assert!(!res.has("Accept-Ranges"));
        conn.send("GET", target, &h);
        assert_full(&conn.read_response(false), &d);
    });
}

#[test]
fn head_lies_head_has_no_content_length() {
    let d = data();
    each_way("head-lies", &[("a.bin", &d)], |q| {
        for headers in [vec![], vec![("Range", "bytes=0-9")]] {
            let res = q.head("/a.bin", &headers);
            assert_eq!(res.status_line, "HTTP/1.1 200 OK");
            assert!(!res.has("Content-Length"), "{:?}", res.headers);
            assert!(!res.has("Accept-Ranges"), "{:?}", res.headers);
        }
        assert_eq!(q.get("/a.bin", &[]).header("Content-Length"), Some("1000"));
    });
}

#[test]
fn encoded_range() {
    let text: Vec<u8> = (0..400)
        .flat_map(|i| format!("line {i:04} of a compressible file\n").into_bytes())
        .collect();
    let len = text.len();
    each_way("encoded-range", &[("t.txt", &text)], |q| {
        // gzip regardless of Accept-Encoding
        let res = q.get("/t.txt", &[("Accept-Encoding", "identity")]);
        assert_eq!(res.status_line, "HTTP/1.1 200 OK");
        assert_eq!(res.header("Content-Encoding"), Some("gzip"));
        assert!(!res.has("Content-Range"));
        let gz = res.body.clone();
        assert!(gz.starts_with(&[0x1f, 0x8b]), "a gzip stream");
        assert!(gz.len() < len / 2, "compressed: {} of {len}", gz.len());
        assert_eq!(
            res.header("Content-Length"),
            Some(gz.len().to_string().as_str())
        );
        assert!(gunzip(&gz) == text, "decodes to the file");
        let gz_tag = etag_of(&gz);
        assert_eq!(res.header("ETag"), Some(gz_tag.as_str()));
        assert_eq!(res.header("Accept-Ranges"), Some("bytes"));
        // deterministic compression
        assert!(q.get("/t.txt", &[]).body == gz);
        // ranges apply to the gzip bytes
        let glen = gz.len();
        let res = q.get("/t.txt", &[("Range", "bytes=0-9")]);
        assert_partial(&res, &gz, 0, 9);
        assert_eq!(res.header("Content-Encoding"), Some("gzip"));
        assert_eq!(res.header("ETag"), Some(gz_tag.as_str()));
        let res = q.get("/t.txt", &[("Range", "bytes=-10")]);
        assert_partial(&res, &gz, glen - 10, glen - 1);
        // a resume in pieces rebuilds the gzip stream, and only that decodes
        let mid = glen / 3;
        let first = q.get("/t.txt", &[("Range", &format!("bytes=0-{}", mid - 1))]);
        assert_partial(&first, &gz, 0, mid - 1);
        let rest = q.get(
            "/t.txt",
            &[("Range", &format!("bytes={mid}-")), ("If-Range", &gz_tag)],
        );
        assert_partial(&rest, &gz, mid, glen - 1);
        let mut joined = first.body.clone();
        joined.extend_from_slice(&rest.body);
        assert!(gunzip(&joined) == text);
        // multipart parts are slices of the gzip bytes too
        let res = q.get("/t.txt", &[("Range", "bytes=0-9,20-29")]);
        assert_eq!(res.status_line, "HTTP/1.1 206 Partial Content");
        assert_eq!(res.header("Content-Encoding"), Some("gzip"));
        let parts = parse_multipart(res.header("Content-Type").unwrap(), &res.body);
        assert_eq!(parts.len(), 2);
        assert_eq!(
            parts[1].header("Content-Range"),
            Some(format!("bytes 20-29/{glen}").as_str())
        );
        assert!(parts[0].body == gz[0..10] && parts[1].body == gz[20..30]);
        // the identity tag does not validate this representation
        let res = q.get(
            "/t.txt",
            &[("Range", "bytes=0-9"), ("If-Range", &etag_of(&text))],
        );
        assert_full(&res, &gz);
        assert_eq!(res.header("Content-Encoding"), Some("gzip"));
        // 416 reports the gzip length, even for a start inside the plain length
        for start in [glen, (glen + len) / 2] {
            let res = q.get("/t.txt", &[("Range", &format!("bytes={start}-"))]);
            assert_416(&res, glen);
            assert_eq!(res.header("Content-Encoding"), Some("gzip"));
        }
        let res = q.head("/t.txt", &[]);
        assert_eq!(res.status_line, "HTTP/1.1 200 OK");
        assert_eq!(res.header("Content-Encoding"), Some("gzip"));
        assert_eq!(
            res.header("Content-Length"),
            Some(glen.to_string().as_str())
        );
        assert_eq!(res.header("ETag"), Some(gz_tag.as_str()));
    });
}

#[test]
fn unknown_length() {
    let d = data();
    each_way("unknown-length", &[("a.bin", &d)], |q| {
        for (range, first, last) in [("bytes=0-499", 0, 499), ("bytes=-10", 990, 999)] {
            let res = q.get("/a.bin", &[("Range", range)]);
            assert_eq!(res.status_line, "HTTP/1.1 206 Partial Content");
            let cr = format!("bytes {first}-{last}/*");
            assert_eq!(res.header("Content-Range"), Some(cr.as_str()));
            assert_eq!(
                res.header("Content-Length"),
                Some((last - first + 1).to_string().as_str())
            );
            assert!(res.body == d[first..=last]);
        }
        // 416 keeps bytes */LEN, 200 has no Content-Range, multipart parts are exact
        assert_416(&q.get("/a.bin", &[("Range", "bytes=5000-")]), LEN);
        assert_full(&q.get("/a.bin", &[]), &d);
        let res = q.get("/a.bin", &[("Range", "bytes=0-9,20-29")]);
        assert_eq!(res.status_line, "HTTP/1.1 206 Partial Content");
        let parts = parse_multipart(res.header("Content-Type").unwrap(), &res.body);
        assert_eq!(parts[1].header("Content-Range"), Some("bytes 20-29/1000"));
    });
}

#[test]
fn if_range_etag_200() {
    let d = data();
    let tag = etag_of(&d);
    each_way("if-range-etag-200", &[("a.bin", &d)], |q| {
        age(q.s, "a.bin");
        let lm = q
            .get("/a.bin", &[])
            .header("Last-Modified")
            .expect("Last-Modified")
            .to_string();
        // an entity-tag in If-Range: 200 full, even when it matches
        for if_range in [tag.as_str(), "\"other\"", &format!("W/{tag}")] {
            let res = q.get(
                "/a.bin",
                &[("Range", "bytes=10-19"), ("If-Range", if_range)],
            );
            assert_full(&res, &d);
            assert_eq!(res.header("ETag"), Some(tag.as_str()));
        }
        // the date form still works
        let res = q.get("/a.bin", &[("Range", "bytes=10-19"), ("If-Range", &lm)]);
        assert_partial(&res, &d, 10, 19);
        assert_partial(&q.get("/a.bin", &[("Range", "bytes=10-19")]), &d, 10, 19);
    });
}

// ------------------------------------------------------- selection, reports

#[test]
fn every_response_reports_the_quirks_applied() {
    let d = data();
    let files: &[(&str, &[u8])] = &[("a.bin", &d), ("dir/x.txt", b"x")];
    // none applied: present and empty, on every kind of response
    let s = quirks_server(files);
    for (method, target) in [
        ("GET", "/a.bin"),
        ("HEAD", "/a.bin"),
        ("GET", "/missing"),
        ("GET", "/"),
        ("GET", "/dir"),
        ("OPTIONS", "/a.bin"),
        ("POST", "/a.bin"),
        ("GET", "/_quirks/"),
        ("GET", "/_quirks/none/a.bin"),
        ("GET", "/_quirks//a.bin"),
    ] {
        let res = s.request(method, target, &[]);
        assert!(res.status() < 500, "{method} {target}: {}", res.status_line);
        assert_eq!(
            res.header("Rangeserve-Quirks"),
            Some(""),
            "{method} {target}: {}",
            res.status_line
        );
    }
    // an empty header spec is valid and applies nothing
    assert_partial(
        &s.get(
            "/a.bin",
            &[("Range", "bytes=0-1"), ("Rangeserve-Quirks", "")],
        ),
        &d,
        0,
        1,
    );
    // a redirect under the prefix keeps the prefix
    let res = s.get("/_quirks/no-etag/dir", &[]);
    assert_eq!(res.status_line, "HTTP/1.1 301 Moved Permanently");
    assert_eq!(res.header("Location"), Some("/_quirks/no-etag/dir/"));
    assert_eq!(res.header("Rangeserve-Quirks"), Some("no-etag"));
    let res = s.get("/_quirks/no-etag/missing", &[]);
    assert_eq!(res.status(), 404);
    assert_eq!(res.header("Rangeserve-Quirks"), Some("no-etag"));
    // prefix and header together
    let res = s.get(
        "/_quirks/no-etag/a.bin",
        &[("Rangeserve-Quirks", "weak-etag,bare-416")],
    );
    assert_eq!(
        res.header("Rangeserve-Quirks"),
        Some("no-etag,weak-etag,bare-416")
    );
    assert!(!res.has("ETag"));
    // repeated header lines add up, in order
    let res = s.get(
        "/a.bin",
        &[
            ("Rangeserve-Quirks", "no-etag"),
            ("Rangeserve-Quirks", "no-accept-ranges"),
        ],
    );
    assert_eq!(
        res.header("Rangeserve-Quirks"),
        Some("no-etag,no-accept-ranges")
    );
    assert!(!res.has("ETag") && !res.has("Accept-Ranges"));

    // global quirks, plus per-request ones, and `none`
    let s = TestServer::with_files_config(
        files,
        Config {
            quirks: quirks("no-last-modified,weak-etag"),
            ..Config::default()
        },
    );
    let weak = format!("W/{}", etag_of(&d));
    for target in ["/a.bin", "/missing", "/_quirks/", "/"] {
        assert_eq!(
            s.get(target, &[]).header("Rangeserve-Quirks"),
            Some("no-last-modified,weak-etag"),
            "{target}"
        );
    }
    let res = s.get("/a.bin", &[]);
    assert_eq!(res.header("ETag"), Some(weak.as_str()));
    assert!(!res.has("Last-Modified"));
    // added to the globals
    let res = s.get("/_quirks/bare-416/a.bin", &[("Range", "bytes=5000-")]);
    assert_eq!(
        res.header("Rangeserve-Quirks"),
        Some("no-last-modified,weak-etag,bare-416")
    );
    assert_eq!(res.status(), 416);
    assert!(!res.has("Content-Range"));
    assert_eq!(res.header("ETag"), Some(weak.as_str()));
    let res = s.get("/a.bin", &[("Rangeserve-Quirks", "no-accept-ranges")]);
    assert_eq!(
        res.header("Rangeserve-Quirks"),
        Some("no-last-modified,weak-etag,no-accept-ranges")
    );
    assert!(!res.has("Accept-Ranges") && !res.has("Last-Modified"));
    // `none` clears the globals, by prefix or by header
    for (target, headers) in [
        ("/_quirks/none/a.bin", vec![]),
        ("/a.bin", vec![("Rangeserve-Quirks", "none")]),
    ] {
        let res = s.get(target, &headers);
        assert_full(&res, &d);
        assert_eq!(res.header("Rangeserve-Quirks"), Some(""), "{target}");
        assert_eq!(res.header("ETag"), Some(etag_of(&d).as_str()));
        assert!(res.has("Last-Modified"));
    }
    let res = s.get("/_quirks/none,no-etag/a.bin", &[]);
    assert_eq!(res.header("Rangeserve-Quirks"), Some("no-etag"));
    assert!(!res.has("ETag") && res.has("Last-Modified"));
    let res = s.get("/_quirks/no-etag/a.bin", &[("Rangeserve-Quirks", "none")]);
    assert_eq!(res.header("Rangeserve-Quirks"), Some("no-etag"));
    assert!(!res.has("ETag") && res.has("Last-Modified"));
    // an empty spec keeps the globals
    let res = s.get("/a.bin", &[("Rangeserve-Quirks", "")]);
    assert_eq!(
        res.header("Rangeserve-Quirks"),
        Some("no-last-modified,weak-etag")
    );
}

#[test]
fn outside_quirks_mode_the_prefix_is_a_path_and_the_header_is_ignored() {
    let d = data();
    let s = TestServer::with_files(&[("a.bin", &d)]);
    let res = s.get("/_quirks/no-etag/a.bin", &[]);
    assert_eq!(res.status_line, "HTTP/1.1 404 Not Found");
    assert!(!res.has("Rangeserve-Quirks"));
    assert_eq!(s.get("/_quirks/", &[]).status(), 404);
    for spec in ["no-etag", "no-ranges", "bogus-quirk", "drop-after=x"] {
        let res = s.get(
            "/a.bin",
            &[("Rangeserve-Quirks", spec), ("Range", "bytes=0-9")],
        );
        assert_partial(&res, &d, 0, 9);
        assert_eq!(res.header("ETag"), Some(etag_of(&d).as_str()), "{spec}");
        assert_eq!(res.header("Accept-Ranges"), Some("bytes"));
        assert!(!res.has("Rangeserve-Quirks"));
    }
    // a real directory called _quirks is served like any other
    let other = b"not a quirk";
    let s = TestServer::with_files(&[("a.bin", &d), ("_quirks/no-etag/a.bin", other)]);
    let res = s.get("/_quirks/no-etag/a.bin", &[]);
    assert_full(&res, other);
    assert_eq!(res.header("ETag"), Some(etag_of(other).as_str()));
    assert!(!res.has("Rangeserve-Quirks"));
    let res = s.get("/_quirks/", &[]);
    assert_eq!(res.status_line, "HTTP/1.1 200 OK");
    assert!(res.body_str().contains("no-etag/"), "a directory listing");
    assert!(!res.body_str().contains("rangeserve quirks"));
}

#[test]
fn unknown_or_bad_quirks_per_request_get_400_with_the_valid_names() {
    let d = data();
    for config in [
        Config {
            quirks_mode: true,
            ..Config::default()
        },
        Config {
            quirks: quirks("no-etag"),
            ..Config::default()
        },
    ] {
        let s = TestServer::with_files_config(&[("a.bin", &d)], config);
        for spec in [
            "bogus",
            "no-etag,bogus",
            "no-etag=1",
            "drop-after",
            "drop-after=x",
            "range-capped=0",
            "NO-ETAG",
        ] {
            for (method, target, headers) in [
                ("GET", format!("/_quirks/{spec}/a.bin"), vec![]),
                ("HEAD", format!("/_quirks/{spec}/a.bin"), vec![]),
                (
                    "GET",
                    "/a.bin".to_string(),
                    vec![("Rangeserve-Quirks", spec)],
                ),
                (
                    "GET",
                    "/_quirks/none/a.bin".to_string(),
                    vec![("Rangeserve-Quirks", spec)],
                ),
                ("GET", format!("/_quirks/{spec}/missing"), vec![]),
            ] {
                let ctx = format!("{method} {target} {headers:?}");
                let res = s.request(method, &target, &headers);
                assert_eq!(res.status_line, "HTTP/1.1 400 Bad Request", "{ctx}");
                assert!(
                    res.header("Content-Type")
                        .is_some_and(|t| t.starts_with("text/plain")),
                    "{ctx}: {:?}",
                    res.headers
                );
                assert_eq!(res.header("Rangeserve-Quirks"), Some(""), "{ctx}");
                if method == "GET" {
                    let body = res.body_str();
                    for q in CATALOGUE {
                        assert!(body.contains(q.name), "{ctx}: {q:?} missing from {body}");
                    }
                }
            }
        }
    }
}

#[test]
fn catalogue_page_html_and_json() {
    let d = data();
    let s = TestServer::with_files_config(
        &[
            ("a.bin", &d),
            ("b c.txt", b"spaced"),
            ("sub/inner.bin", b"inner"),
        ],
        Config {
            quirks_mode: true,
            ..Config::default()
        },
    );
    for target in ["/_quirks/", "/_quirks"] {
        let res = s.get(target, &[("Accept", "text/html")]);
        assert_eq!(res.status_line, "HTTP/1.1 200 OK", "{target}");
        assert!(res
            .header("Content-Type")
            .is_some_and(|t| t.starts_with("text/html")));
        assert_eq!(res.header("Rangeserve-Quirks"), Some(""));
        let html = res.body_str();
        assert!(html.starts_with("<!DOCTYPE html>"));
        for q in CATALOGUE {
            let spec = match q.example {
                Some(v) => format!("{}%3D{v}", q.name),
                None => q.name.to_string(),
            };
            for file in ["a.bin", "b%20c.txt"] {
                let link = format!("href=\"/_quirks/{spec}/{file}\"");
                assert!(html.contains(&link), "{target}: no {link}");
            }
            assert!(html.contains(&format!("id=\"{}\"", q.name)), "{}", q.name);
        }
        // a link per quirk per top-level file, nothing for subdirectories
        assert_eq!(
            html.matches("href=\"/_quirks/").count(),
            2 * CATALOGUE.len(),
            "{target}"
        );
        assert!(!html.contains("inner.bin"));
    }
    // the links work
    let res = s.get("/_quirks/no-etag/a.bin", &[]);
    assert_full(&res, &d);
    assert!(!res.has("ETag"));
    assert_eq!(res.header("Rangeserve-Quirks"), Some("no-etag"));
    let res = s.get("/_quirks/range-capped%3D1000/b%20c.txt", &[]);
    assert_full(&res, b"spaced");
    assert_eq!(res.header("Rangeserve-Quirks"), Some("range-capped=1000"));

    // JSON
    let res = s.get("/_quirks/", &[("Accept", "application/json")]);
    assert_eq!(res.status_line, "HTTP/1.1 200 OK");
    assert!(res
        .header("Content-Type")
        .is_some_and(|t| t.starts_with("application/json")));
    let json = res.body_str().trim();
    assert!(json.starts_with('{') && json.ends_with('}'), "{json}");
    assert!(json.contains("\"global\":\"\""), "{json}");
    assert_eq!(json.matches("\"name\":").count(), CATALOGUE.len());
    for q in CATALOGUE {
        assert!(
            json.contains(&format!("{{\"name\":\"{}\",", q.name)),
            "{}",
            q.name
        );
    }
    assert!(json.contains("\"name\":\"no-etag\",\"arg\":null"));
    assert!(json.contains("\"name\":\"drop-after\",\"arg\":\"N\""));
    assert_eq!(json.matches('{').count(), json.matches('}').count());

    // the page reports the global quirks
    let s = TestServer::with_files_config(
        &[("a.bin", &d)],
        Config {
            quirks: quirks("no-etag,range-200"),
            ..Config::default()
        },
    );
    let res = s.get("/_quirks/", &[("Accept", "application/json")]);
    assert!(res.body_str().contains("\"global\":\"no-etag,range-200\""));
    assert_eq!(res.header("Rangeserve-Quirks"), Some("no-etag,range-200"));
    let res = s.get("/_quirks/", &[]);
    assert!(res.body_str().contains("no-etag,range-200"));
    assert!(res.body_str().contains("href=\"/_quirks/no-etag/a.bin\""));
}

#[test]
fn same_seed_same_bytes_multipart_included() {
    // in quirks mode even multipart boundaries come from the seed: two runs
    // with the same seed and requests produce the same response bytes
    let d = data();
    let run = |seed: u64| -> Vec<Vec<u8>> {
        let config = Config {
            quirks_mode: true,
            seed,
            ..Config::default()
        };
        let s = TestServer::with_files_config(&[("a.bin", &d)], config);
        (0..3)
            .map(|_| {
                let mut conn = s.connect();
                conn.send(
                    "GET",
                    "/_quirks/unstable-etag/a.bin",
                    &[("Range", "bytes=0-9,-10")],
                );
                let res = conn.read_response(false);
                assert_eq!(res.status(), 206);
                let ct = res.header("Content-Type").unwrap().to_string();
                let parts = parse_multipart(&ct, &res.body);
                assert_eq!(parts[0].body, &d[..10]);
                let mut bytes = ct.into_bytes();
                bytes.extend_from_slice(res.header("ETag").unwrap().as_bytes());
                bytes.extend_from_slice(&res.body);
                bytes
            })
            .collect()
    };
    let a = run(11);
    assert_eq!(a, run(11));
    assert_ne!(a[0], a[1], "a fresh boundary and tag per response");
    assert_ne!(a, run(12));
}
