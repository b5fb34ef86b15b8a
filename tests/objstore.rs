//! Serving from an object store (issue 10), over object_store's in-memory
//! and local-filesystem stores: every Range form with the bytes checked,
//! preconditions, HEAD, listings by delimiter, the strong ETag equal to the
//! directory mode's, one version per response, the metadata cache, single-
//! flight hashing, and the mapping of store errors.
#![cfg(feature = "object-store")]

mod common;

use std::ops::Range;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use common::{parse_content_range, parse_multipart, pattern, Conn, TestServer};
use futures_util::future::BoxFuture;
use object_store::memory::InMemory;
use object_store::path::Path as StorePath;
use object_store::ObjectStore;
use rangeserve::config::StoreSpec;
use rangeserve::origin::store::StoreOrigin;
use rangeserve::origin::{ByteStream, Key, Listed, ObjectMeta, Origin, OriginError};
use rangeserve::Config;
use sha2::{Digest as _, Sha256};

fn block_on<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

fn put(store: &InMemory, key: &str, data: &[u8]) {
    block_on(store.put(&StorePath::parse(key).unwrap(), data.to_vec().into())).unwrap();
}

/// An in-memory store holding `files` under `pre/`.
fn memory(files: &[(&str, &[u8])]) -> Arc<InMemory> {
    let store = Arc::new(InMemory::new());
    for (key, data) in files {
        put(&store, &format!("pre/{key}"), data);
    }
    store
}

fn serve_origin(origin: Arc<dyn Origin>, config: Config) -> TestServer {
    let config = Config {
        store: Some(StoreSpec::Origin(origin)),
        ..config
    };
    TestServer::start_with(Path::new("/nonexistent-root"), config)
}

/// Serve `pre/` of `store`, metadata trusted for `revalidate`.
fn serve(store: Arc<dyn ObjectStore>, revalidate: Duration) -> TestServer {
    let origin = Arc::new(StoreOrigin::new(store, "pre", "memory://pre"));
    serve_origin(
        origin,
        Config {
            store_revalidate: revalidate,
            ..Config::default()
        },
    )
}

fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

fn repr_digest(data: &[u8]) -> String {
    format!(
        "sha-256=:{}:",
        base64::engine::general_purpose::STANDARD.encode(sha256(data))
    )
}

const SMALL: usize = 1000;
/// Over the 256 KiB "small object" line: hashed by a streaming pass, served
/// by ranged reads.
const LARGE: usize = 1024 * 1024 + 17;

#[test]
fn every_range_form_over_objects_gets_the_right_bytes() {
    let small = pattern(SMALL);
    let large: Vec<u8> = pattern(LARGE).iter().map(|b| b ^ 0x5a).collect();
    let store = memory(&[("small.bin", &small), ("dir/large.bin", &large)]);
    let s = serve(store, Duration::from_secs(1));
    for (target, data) in [("/small.bin", &small), ("/dir/large.bin", &large)] {
        let len = data.len() as u64;
        let full = s.get(target, &[]);
        assert_eq!(full.status_line, "HTTP/1.1 200 OK", "{target}");
        assert!(full.body == *data, "{target}: whole body");
        assert_eq!(full.header("Accept-Ranges"), Some("bytes"));
        assert_eq!(
            full.header("Content-Type"),
            Some("application/octet-stream")
        );
        assert_eq!(full.header("Repr-Digest"), Some(repr_digest(data).as_str()));
        let etag = full.header("ETag").unwrap().to_string();
        assert!(
            etag.starts_with('"') && !etag.starts_with("W/"),
            "strong: {etag}"
        );

        // single ranges, each a ranged read
        for (range, first, last) in [
            ("bytes=0-0", 0, 0),
            ("bytes=-1", len - 1, len - 1),
            ("bytes=10-", 10, len - 1),
            ("bytes=100-299", 100, 299),
            ("bytes=-99999999", 0, len - 1),
            ("bytes=500-99999999", 500, len - 1),
        ] {
            let r = s.get(target, &[("Range", range)]);
            assert_eq!(
                r.status_line, "HTTP/1.1 206 Partial Content",
                "{target} {range}"
            );
            assert_eq!(
                r.header("Content-Range").unwrap(),
                format!("bytes {first}-{last}/{len}"),
                "{target} {range}"
            );
            assert!(
                r.body == data[first as usize..=last as usize],
                "{target} {range}: bytes"
            );
            assert_eq!(r.header("ETag"), Some(etag.as_str()));
        }

        // multi-range: parts assembled from ranged reads, out of order kept
        let r = s.get(target, &[("Range", "bytes=900-949,0-9,-5")]);
        assert_eq!(r.status_line, "HTTP/1.1 206 Partial Content");
        let parts = parse_multipart(r.header("Content-Type").unwrap(), &r.body);
        assert_eq!(parts.len(), 3);
        for part in &parts {
            let (a, b, total) = parse_content_range(part.header("Content-Range").unwrap());
            assert_eq!(total, len);
            assert!(
                part.body == data[a as usize..=b as usize],
                "{target} part {a}-{b}"
            );
        }
        let starts: Vec<u64> = parts
            .iter()
            .map(|p| parse_content_range(p.header("Content-Range").unwrap()).0)
            .collect();
        assert_eq!(starts, [900, 0, len - 5]);

        // unsatisfiable, and syntax errors that fall back to 200
        let r = s.get(target, &[("Range", "bytes=99999999-")]);
        assert_eq!(r.status_line, "HTTP/1.1 416 Range Not Satisfiable");
        assert_eq!(r.header("Content-Range").unwrap(), format!("bytes */{len}"));
        let r = s.get(target, &[("Range", "bytes=5-1")]);
        assert_eq!(r.status(), 200);
        assert!(r.body == *data);

        // HEAD: the GET's headers, no body
        let head = s.request("HEAD", target, &[]);
        assert_eq!(head.status_line, "HTTP/1.1 200 OK");
        assert_eq!(head.header("Content-Length").unwrap(), len.to_string());
        assert_eq!(head.header("ETag"), Some(etag.as_str()));
        assert_eq!(head.header("Repr-Digest"), full.header("Repr-Digest"));
    }
}

#[test]
fn preconditions_over_objects() {
    let data = pattern(LARGE);
    let s = serve(memory(&[("f.bin", &data)]), Duration::from_secs(1));
    let etag = s.get("/f.bin", &[]).header("ETag").unwrap().to_string();
    let lm = s
        .get("/f.bin", &[])
        .header("Last-Modified")
        .unwrap()
        .to_string();
    let r = s.get("/f.bin", &[("If-None-Match", &etag)]);
    assert_eq!(r.status_line, "HTTP/1.1 304 Not Modified");
    assert!(r.body.is_empty());
    let r = s.get(
        "/f.bin",
        &[("If-Match", "\"other\""), ("Range", "bytes=0-0")],
    );
    assert_eq!(r.status_line, "HTTP/1.1 412 Precondition Failed");
    let r = s.get("/f.bin", &[("If-Range", &etag), ("Range", "bytes=10-19")]);
    assert_eq!(r.status(), 206);
    assert!(r.body == data[10..20]);
    let r = s.get(
        "/f.bin",
        &[("If-Range", "\"old\""), ("Range", "bytes=10-19")],
    );
    assert_eq!(r.status(), 200);
    assert!(r.body == data);
    let r = s.get("/f.bin", &[("If-Modified-Since", &lm)]);
    assert_eq!(r.status(), 304);
    let r = s.get(
        "/f.bin",
        &[("If-Unmodified-Since", "Thu, 01 Jan 1970 00:00:00 GMT")],
    );
    assert_eq!(r.status(), 412);
}

#[test]
fn same_bytes_give_the_same_etag_and_repr_digest_from_a_directory_and_a_store() {
    let small = pattern(SMALL);
    let large = pattern(3 * 1024 * 1024 + 5);
    let dir = TestServer::with_files(&[("small.txt", &small), ("sub/large.bin", &large)]);
    let fs_store = object_store::local::LocalFileSystem::new_with_prefix(&dir.root).unwrap();
    let store = serve_origin(
        Arc::new(StoreOrigin::new(Arc::new(fs_store), "", "file")),
        Config::default(),
    );
    for (target, data) in [("/small.txt", &small), ("/sub/large.bin", &large)] {
        let a = dir.get(target, &[]);
        let b = store.get(target, &[]);
        assert_eq!((a.status(), b.status()), (200, 200), "{target}");
        assert!(b.body == *data);
        assert_eq!(a.header("ETag"), b.header("ETag"), "{target}");
        assert_eq!(a.header("Repr-Digest"), b.header("Repr-Digest"), "{target}");
        assert_eq!(
            a.header("Content-Type"),
            b.header("Content-Type"),
            "{target}"
        );
        assert_eq!(b.header("Repr-Digest"), Some(repr_digest(data).as_str()));
        // a download started on one resumes on the other
        let etag = a.header("ETag").unwrap();
        let r = store.get(target, &[("If-Range", etag), ("Range", "bytes=7-")]);
        assert_eq!(r.status(), 206, "{target}");
        assert!(r.body == data[7..]);
    }
}

#[test]
fn listings_by_delimiter_and_directory_urls() {
    let store = memory(&[
        ("a.txt", b"a"),
        ("sub/b.txt", b"bb"),
        ("sub/deeper/c.txt", b"ccc"),
        (".env", b"secret"),
        ("site/index.html", b"<p>home</p>"),
    ]);
    let s = serve(store, Duration::from_secs(1));
    let top = s.get("/", &[]);
    assert_eq!(top.status(), 200);
    assert_eq!(top.header("Content-Type"), Some("text/html; charset=utf-8"));
    let html = top.body_str();
    for link in ["href=\"a.txt\"", "href=\"sub/\"", "href=\"site/\""] {
        assert!(html.contains(link), "{link} in {html}");
    }
    assert!(!html.contains(".env"), "hidden names are not listed");
    assert_eq!(s.get("/.env", &[]).status(), 404, "nor served");
    let sub = s.get("/sub/", &[]);
    assert_eq!(sub.status(), 200);
    assert!(
        sub.body_str().contains("href=\"b.txt\"") && sub.body_str().contains("href=\"deeper/\"")
    );
    assert!(!sub.body_str().contains("a.txt"));
    let head = s.request("HEAD", "/sub/", &[]);
    assert_eq!(
        head.header("Content-Length").unwrap(),
        sub.body.len().to_string()
    );
    let redirect = s.get("/sub?x=1", &[]);
    assert_eq!(redirect.status_line, "HTTP/1.1 301 Moved Permanently");
    assert_eq!(redirect.header("Location"), Some("/sub/?x=1"));
    let index = s.get("/site/", &[]);
    assert_eq!(index.status(), 200);
    assert_eq!(index.body, b"<p>home</p>");
    assert_eq!(index.header("Content-Type"), Some("text/html"));
    for missing in ["/nope", "/nope/", "/a.txt/", "/sub/b.txt/x"] {
        let r = s.get(missing, &[]);
        assert_eq!(r.status_line, "HTTP/1.1 404 Not Found", "{missing}");
        assert_eq!(r.body_str(), "404 Not Found\n");
    }
}

#[test]
fn an_object_replaced_between_parts_aborts_the_response() {
    // the first part is far larger than the socket buffers: the server is
    // still sending it when the object is replaced, and reads the second
    // part only afterwards
    const FIRST: usize = 48 << 20;
    let old = pattern(FIRST + 4096);
    let new: Vec<u8> = old.iter().map(|b| !b).collect();
    let store = memory(&[("big.bin", &old)]);
    let s = serve(store.clone(), Duration::from_secs(3600));
    let mut conn = Conn::new(s.addr);
    let range = format!("bytes=0-{},-100", FIRST - 1);
    conn.send(
        "GET",
        "/big.bin",
        &[("Range", &range), ("Connection", "close")],
    );
    let (status, headers) = conn.read_head();
    assert_eq!(status, "HTTP/1.1 206 Partial Content");
    let header = |n: &str| {
        headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(n))
            .map(|(_, v)| v.clone())
            .unwrap()
    };
    let announced: usize = header("Content-Length").parse().unwrap();
    let mut first = vec![0u8; 1 << 20];
    std::io::Read::read_exact(&mut conn.reader, &mut first).unwrap();
    put(&store, "pre/big.bin", &new);
    let mut body = first;
    body.extend(conn.read_to_end());
    assert!(
        body.len() < announced,
        "aborted: {} of {announced} bytes",
        body.len()
    );
    // what arrived is exactly the start of the old version's body
    let boundary = header("Content-Type")
        .strip_prefix("multipart/byteranges; boundary=")
        .unwrap()
        .to_string();
    let len = old.len();
    let mut want = format!(
        "--{boundary}\r\nContent-Type: application/octet-stream\r\nContent-Range: bytes 0-{}/{len}\r\n\r\n",
        FIRST - 1
    )
    .into_bytes();
    want.extend_from_slice(&old[..FIRST]);
    want.extend_from_slice(
        format!(
            "\r\n--{boundary}\r\nContent-Type: application/octet-stream\r\nContent-Range: bytes {}-{}/{len}\r\n\r\n",
            len - 100,
            len - 1
        )
        .as_bytes(),
    );
    want.extend_from_slice(&old[len - 100..]);
    assert!(body == want[..body.len()], "only old bytes were sent");
    assert!(
        body.len() <= want.len() - 100,
        "no byte of the second part was sent"
    );
    // the next request describes and sends the new version
    let fresh = s.get("/big.bin", &[("Range", "bytes=0-99")]);
    assert_eq!(fresh.status(), 206);
    assert!(fresh.body == new[..100]);
    let whole = s.get("/big.bin", &[]);
    assert_eq!(
        whole.header("Repr-Digest"),
        Some(repr_digest(&new).as_str())
    );
}

#[test]
fn a_large_object_replaced_within_the_revalidation_window_is_answered_fresh() {
    let old = pattern(LARGE);
    let new: Vec<u8> = old.iter().map(|b| b.wrapping_add(1)).collect();
    let store = memory(&[("f.bin", &old)]);
    let s = serve(store.clone(), Duration::from_secs(3600));
    let before = s.get("/f.bin", &[("Range", "bytes=0-9")]);
    assert!(before.body == old[..10]);
    put(&store, "pre/f.bin", &new);
    // the cached metadata is stale, but the read made before the headers
    // fails its precondition: the request starts again from a HEAD
    let after = s.get("/f.bin", &[("Range", "bytes=0-9")]);
    assert_eq!(after.status(), 206);
    assert!(after.body == new[..10]);
    assert_ne!(after.header("ETag"), before.header("ETag"));
    let whole = s.get("/f.bin", &[]);
    assert_eq!(whole.header("ETag"), after.header("ETag"));
    assert_eq!(
        whole.header("Repr-Digest"),
        Some(repr_digest(&new).as_str())
    );
}

#[test]
fn a_small_object_is_one_consistent_version_until_revalidated() {
    let store = memory(&[("s.txt", b"version one")]);
    let s = serve(store.clone(), Duration::from_millis(300));
    let one = s.get("/s.txt", &[]);
    assert_eq!(one.body, b"version one");
    put(&store, "pre/s.txt", b"version two!");
    // within the window: the held bytes and their own ETag, never a mix
    let cached = s.get("/s.txt", &[]);
    assert_eq!(cached.body, b"version one");
    assert_eq!(cached.header("ETag"), one.header("ETag"));
    std::thread::sleep(Duration::from_millis(400));
    let two = s.get("/s.txt", &[]);
    assert_eq!(two.body, b"version two!");
    assert_eq!(
        two.header("Repr-Digest"),
        Some(repr_digest(b"version two!").as_str())
    );
}

/// An [`Origin`] over a real store that counts what is asked of it, can
/// delay HEADs and listings (`meta_delay`) and reads, and can fail some keys.
struct Watched {
    inner: StoreOrigin,
    heads: AtomicU64,
    lists: AtomicU64,
    reads: Mutex<Vec<Range<u64>>>,
    meta_delay: Duration,
    read_delay: Duration,
    fail: fn(&Key) -> Option<OriginError>,
}

impl Watched {
    fn new(
        store: Arc<InMemory>,
        read_delay: Duration,
        fail: fn(&Key) -> Option<OriginError>,
    ) -> Arc<Self> {
        Watched::slow(store, Duration::ZERO, read_delay, fail)
    }

    fn slow(
        store: Arc<InMemory>,
        meta_delay: Duration,
        read_delay: Duration,
        fail: fn(&Key) -> Option<OriginError>,
    ) -> Arc<Self> {
        Arc::new(Watched {
            inner: StoreOrigin::new(store, "pre", "memory://pre"),
            heads: AtomicU64::new(0),
            lists: AtomicU64::new(0),
            reads: Mutex::new(Vec::new()),
            meta_delay,
            read_delay,
            fail,
        })
    }
}

impl Origin for Watched {
    fn head<'a>(&'a self, key: &'a Key) -> BoxFuture<'a, Result<ObjectMeta, OriginError>> {
        Box::pin(async move {
            self.heads.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(self.meta_delay).await;
            if let Some(e) = (self.fail)(key) {
                return Err(e);
            }
            self.inner.head(key).await
        })
    }

    fn read<'a>(
        &'a self,
        key: &'a Key,
        meta: &'a ObjectMeta,
        range: Range<u64>,
    ) -> BoxFuture<'a, Result<ByteStream, OriginError>> {
        Box::pin(async move {
            self.reads.lock().unwrap().push(range.clone());
            tokio::time::sleep(self.read_delay).await;
            self.inner.read(key, meta, range).await
        })
    }

    fn list<'a>(&'a self, dir: &'a Key) -> BoxFuture<'a, Result<Vec<Listed>, OriginError>> {
        Box::pin(async move {
            self.lists.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(self.meta_delay).await;
            if let Some(e) = (self.fail)(dir) {
                return Err(e);
            }
            self.inner.list(dir).await
        })
    }

    fn describe(&self) -> String {
        self.inner.describe()
    }
}

/// Serve `watched`, metadata trusted for `revalidate`.
fn serve_watched(watched: &Arc<Watched>, revalidate: Duration) -> TestServer {
    serve_origin(
        Arc::clone(watched) as Arc<dyn Origin>,
        Config {
            store_revalidate: revalidate,
            ..Config::default()
        },
    )
}

fn never(_: &Key) -> Option<OriginError> {
    None
}

#[test]
fn the_metadata_cache_saves_heads_until_it_revalidates() {
    let store = memory(&[("f.bin", &pattern(LARGE))]);
    let watched = Watched::new(store.clone(), Duration::ZERO, never);
    let s = serve_watched(&watched, Duration::from_secs(3600));
    for _ in 0..5 {
        assert_eq!(s.get("/f.bin", &[("Range", "bytes=0-0")]).status(), 206);
    }
    assert_eq!(
        watched.heads.load(Ordering::SeqCst),
        1,
        "one HEAD for five requests"
    );
    drop(s);

    let watched = Watched::new(store, Duration::ZERO, never);
    let s = serve_watched(&watched, Duration::ZERO);
    for _ in 0..5 {
        assert_eq!(s.get("/f.bin", &[("Range", "bytes=0-0")]).status(), 206);
    }
    assert_eq!(
        watched.heads.load(Ordering::SeqCst),
        5,
        "revalidated every time"
    );
    let whole_reads = watched
        .reads
        .lock()
        .unwrap()
        .iter()
        .filter(|r| **r == (0..LARGE as u64))
        .count();
    assert_eq!(whole_reads, 1, "an unchanged version is hashed once");
}

#[test]
fn concurrent_first_requests_hash_a_large_object_once() {
    let data = pattern(2 * 1024 * 1024);
    let store = memory(&[("f.bin", &data)]);
    // reads are slow, so the first requests overlap while it is hashed
    let watched = Watched::new(store, Duration::from_millis(300), never);
    let s = serve_origin(watched.clone(), Config::default());
    let addr = s.addr;
    let clients: Vec<_> = (0..8)
        .map(|_| {
            std::thread::spawn(move || {
                let mut c = Conn::new(addr);
                c.send("HEAD", "/f.bin", &[]);
                c.read_response(true)
            })
        })
        .collect();
    let etags: Vec<String> = clients
        .into_iter()
        .map(|c| c.join().unwrap().header("ETag").unwrap().to_string())
        .collect();
    assert!(etags.iter().all(|e| *e == etags[0]));
    let reads = watched.reads.lock().unwrap().clone();
    assert_eq!(
        reads,
        vec![0..data.len() as u64],
        "one whole-object pass for 8 requests"
    );
}

/// `n` GETs of `target` with `headers`, sent at the same moment on their
/// own connections; their responses.
fn at_once(
    addr: std::net::SocketAddr,
    n: usize,
    target: &'static str,
    headers: &'static [(&'static str, &'static str)],
) -> Vec<common::RawResponse> {
    let start = Arc::new(std::sync::Barrier::new(n));
    let clients: Vec<_> = (0..n)
        .map(|_| {
            let start = Arc::clone(&start);
            std::thread::spawn(move || {
                let mut c = Conn::new(addr);
                start.wait();
                c.send("GET", target, headers);
                c.read_response(false)
            })
        })
        .collect();
    clients.into_iter().map(|c| c.join().unwrap()).collect()
}

#[test]
fn concurrent_requests_share_one_store_request_per_key() {
    let data = pattern(SMALL);
    let store = memory(&[("f.txt", &data)]);
    // HEADs and listings are slow, so the requests of a burst overlap while
    // one is out
    let watched = Watched::slow(store, Duration::from_millis(400), Duration::ZERO, never);
    let s = serve_watched(&watched, Duration::from_secs(1));
    let heads = || watched.heads.load(Ordering::SeqCst);
    let check = |responses: Vec<common::RawResponse>| {
        for r in responses {
            assert_eq!(r.status_line, "HTTP/1.1 206 Partial Content");
            assert_eq!(r.header("Content-Range"), Some("bytes 10-19/1000"));
            assert!(r.body == data[10..20]);
        }
    };
    // nothing known yet: one HEAD, and one read of the small object
    check(at_once(s.addr, 8, "/f.txt", &[("Range", "bytes=10-19")]));
    assert_eq!(heads(), 1, "one HEAD for 8 first requests");
    assert_eq!(watched.reads.lock().unwrap().clone(), vec![0..SMALL as u64]);
    // past --store-revalidate: the entry is stale, one HEAD revalidates it
    std::thread::sleep(Duration::from_millis(1100));
    check(at_once(s.addr, 8, "/f.txt", &[("Range", "bytes=10-19")]));
    assert_eq!(heads(), 2, "one HEAD for 8 requests after the window");
    assert_eq!(
        watched.reads.lock().unwrap().len(),
        1,
        "the version is unchanged"
    );
    // a missing key: one HEAD, and one listing to tell it from a "directory"
    let listed = watched.lists.load(Ordering::SeqCst);
    for r in at_once(s.addr, 8, "/gone.txt", &[]) {
        assert_eq!(r.status_line, "HTTP/1.1 404 Not Found");
        assert_eq!(r.body_str(), "404 Not Found\n");
    }
    assert_eq!(heads(), 3, "one HEAD for 8 requests for a missing key");
    assert_eq!(
        watched.lists.load(Ordering::SeqCst) - listed,
        1,
        "and one LIST"
    );
}

#[test]
fn a_missing_key_is_remembered_for_the_revalidation_window() {
    let store = memory(&[("sub/b.txt", b"bb")]);
    let watched = Watched::new(store.clone(), Duration::ZERO, never);
    let s = serve_watched(&watched, Duration::from_secs(2));
    // the start-up check listed the prefix once: counted from here
    let listed_at_start = watched.lists.load(Ordering::SeqCst);
    let calls = || {
        (
            watched.heads.load(Ordering::SeqCst),
            watched.lists.load(Ordering::SeqCst) - listed_at_start,
        )
    };
    // a 404 without a trailing slash costs a HEAD and a listing, once
    for _ in 0..5 {
        let r = s.get("/nope", &[]);
        assert_eq!(r.status_line, "HTTP/1.1 404 Not Found");
        assert_eq!(r.body_str(), "404 Not Found\n");
    }
    assert_eq!(calls(), (1, 1), "one HEAD and one LIST for five 404s");
    // so does a "directory" redirect
    for _ in 0..3 {
        let r = s.get("/sub", &[]);
        assert_eq!(r.status_line, "HTTP/1.1 301 Moved Permanently");
        assert_eq!(r.header("Location"), Some("/sub/"));
    }
    assert_eq!(calls(), (2, 2));
    // the staleness allowed: an object uploaded now is still 404 within
    // the window, then found
    put(&store, "pre/nope", b"here");
    assert_eq!(s.get("/nope", &[]).status(), 404);
    assert_eq!(calls(), (2, 2));
    std::thread::sleep(Duration::from_millis(2100));
    let r = s.get("/nope", &[]);
    assert_eq!(r.status_line, "HTTP/1.1 200 OK");
    assert_eq!(r.body, b"here");
    assert_eq!(calls(), (3, 2), "one HEAD after the window, no listing");
}

fn faults(key: &Key) -> Option<OriginError> {
    let k = key.as_str();
    if k.starts_with("denied") {
        Some(OriginError::Denied(
            "AccessDenied: bucket policy xyz".into(),
        ))
    } else if k.starts_with("down") {
        Some(OriginError::Unavailable(
            "SlowDown: please reduce your request rate".into(),
        ))
    } else {
        None
    }
}

#[test]
fn store_errors_are_404_403_and_503_without_detail() {
    let store = memory(&[("ok.txt", b"fine")]);
    let s = serve_origin(
        Watched::new(store, Duration::ZERO, faults),
        Config::default(),
    );
    assert_eq!(s.get("/ok.txt", &[]).body, b"fine");
    let missing = s.get("/missing.txt", &[]);
    assert_eq!(missing.status_line, "HTTP/1.1 404 Not Found");
    let denied = s.get("/denied.txt", &[]);
    assert_eq!(denied.status_line, "HTTP/1.1 403 Forbidden");
    assert_eq!(
        denied.body_str(),
        "403 Forbidden\n",
        "no detail of the store's answer"
    );
    let down = s.get("/down.bin", &[("Range", "bytes=0-0")]);
    assert_eq!(down.status_line, "HTTP/1.1 503 Service Unavailable");
    assert_eq!(down.header("Retry-After"), Some("5"));
    assert_eq!(down.body_str(), "503 Service Unavailable\n");
    let down_dir = s.get("/down/", &[]);
    assert_eq!(down_dir.status(), 503);
}

#[test]
fn quirks_apply_to_objects_too() {
    let data = pattern(LARGE);
    let origin = Arc::new(StoreOrigin::new(
        memory(&[("f.bin", &data)]),
        "pre",
        "memory://pre",
    ));
    let s = serve_origin(
        origin,
        Config {
            quirks_mode: true,
            ..Config::default()
        },
    );
    let mut c = Conn::new(s.addr);
    c.send(
        "GET",
        "/_quirks/drop-after=1000/f.bin",
        &[("Connection", "close")],
    );
    let (status, _) = c.read_head();
    assert_eq!(status, "HTTP/1.1 200 OK");
    let body = c.read_to_end();
    assert!(body == data[..1000], "{} bytes, then closed", body.len());
    let r = s.get("/_quirks/no-etag/f.bin", &[("Range", "bytes=5-9")]);
    assert_eq!(r.status(), 206);
    assert_eq!(r.header("ETag"), None);
    assert!(r.body == data[5..10]);
    let page = s.get("/_quirks/", &[]);
    assert!(
        page.body_str().contains("f.bin"),
        "the catalogue page links the objects"
    );
}

/// The strong content ETag: `"sha256-hex"`, the same as for a file.
fn etag_of(bytes: &[u8]) -> String {
    format!("\"{}\"", hex::encode(sha256(bytes)))
}

#[test]
fn quirks_that_derive_a_second_version_derive_it_from_the_object() {
    let large = pattern(LARGE);
    let small = pattern(SMALL);
    let watched = Watched::new(
        memory(&[("f.bin", &large), ("s.txt", &small)]),
        Duration::ZERO,
        never,
    );
    let s = serve_origin(
        watched.clone(),
        Config {
            quirks_mode: true,
            store_revalidate: Duration::from_secs(3600),
            ..Config::default()
        },
    );
    let date = |r: &common::RawResponse| {
        httpdate::parse_http_date(r.header("Last-Modified").unwrap()).unwrap()
    };
    // replica-flip: the object, then its second version (every byte XOR
    // 0xff) with that version's own validators, a day older; and again
    for (name, data) in [("f.bin", &large), ("s.txt", &small)] {
        let target = format!("/_quirks/replica-flip/{name}");
        let flipped: Vec<u8> = data.iter().map(|b| b ^ 0xff).collect();
        let first = s.get(&target, &[]);
        assert_eq!(first.status_line, "HTTP/1.1 200 OK", "{name}");
        assert!(first.body == *data, "{name}");
        assert_eq!(first.header("ETag"), Some(etag_of(data).as_str()));
        let second = s.get(&target, &[("Range", "bytes=5-9")]);
        assert_eq!(second.status_line, "HTTP/1.1 206 Partial Content", "{name}");
        assert_eq!(second.header("Rangeserve-Quirks"), Some("replica-flip"));
        assert!(second.body == flipped[5..10], "{name}");
        assert_eq!(second.header("ETag"), Some(etag_of(&flipped).as_str()));
        assert_eq!(
            second.header("Repr-Digest"),
            Some(repr_digest(&flipped).as_str())
        );
        assert_eq!(
            date(&first).duration_since(date(&second)).unwrap(),
            Duration::from_secs(86400)
        );
        assert!(s.get(&target, &[]).body == *data, "{name}: third");
        let fourth = s.get(&target, &[]);
        assert!(fourth.body == flipped, "{name}: fourth, whole");
        assert_eq!(fourth.header("ETag"), second.header("ETag"));
    }
    // the large object's version and its flip were hashed once each
    let whole = 0..LARGE as u64;
    let passes = watched
        .reads
        .lock()
        .unwrap()
        .iter()
        .filter(|r| **r == whole)
        .count();
    assert_eq!(passes, 2 + 3, "two hashing passes, three whole bodies");

    // encoded-range: the gzip of the object, ranges of the gzip bytes
    for (name, data) in [("f.bin", &large), ("s.txt", &small)] {
        let target = format!("/_quirks/encoded-range/{name}");
        let whole = s.get(&target, &[]);
        assert_eq!(whole.status_line, "HTTP/1.1 200 OK", "{name}");
        assert_eq!(whole.header("Content-Encoding"), Some("gzip"));
        let plain = rangeserve::quirks::transform::gunzip(&whole.body).unwrap();
        assert!(plain == *data, "{name}: the gzip of the object");
        assert_eq!(whole.header("ETag"), Some(etag_of(&whole.body).as_str()));
        let part = s.get(&target, &[("Range", "bytes=10-19")]);
        assert_eq!(part.status_line, "HTTP/1.1 206 Partial Content", "{name}");
        assert_eq!(
            part.header("Content-Range").unwrap(),
            format!("bytes 10-19/{}", whole.body.len())
        );
        assert!(part.body == whole.body[10..20], "{name}");
    }
}

#[test]
fn an_unreachable_store_stops_the_start_with_one_line_and_exit_2() {
    // a port nobody listens on
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let started = Instant::now();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_rangeserve"))
        .args(["s3://bucket/prefix", "-p", "0"])
        .env_clear()
        .env("AWS_ENDPOINT_URL", format!("http://127.0.0.1:{port}"))
        .env("AWS_ALLOW_HTTP", "true")
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_REGION", "us-east-1")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with(
            "rangeserve: error: cannot serve s3://bucket/prefix: start-up check failed"
        ),
        "{err}"
    );
    assert!(out.stdout.is_empty(), "never said it was listening");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "bounded retries"
    );
}

#[test]
fn two_replicas_over_one_bucket_agree_and_a_download_resumes_across_them() {
    let data = pattern(LARGE);
    let store = memory(&[("f.bin", &data)]);
    let a = serve(store.clone(), Duration::ZERO);
    let b = serve(store.clone(), Duration::ZERO);
    let head_a = a.request("HEAD", "/f.bin", &[]);
    let head_b = b.request("HEAD", "/f.bin", &[]);
    assert_eq!(head_a.header("ETag"), head_b.header("ETag"));
    assert_eq!(head_a.header("Repr-Digest"), head_b.header("Repr-Digest"));
    let etag = head_a.header("ETag").unwrap().to_string();
    // the first 300000 bytes from replica a, the rest from b
    let first = a.get("/f.bin", &[("Range", "bytes=0-299999")]);
    assert_eq!(first.status(), 206);
    let rest = b.get("/f.bin", &[("If-Range", &etag), ("Range", "bytes=300000-")]);
    assert_eq!(rest.status_line, "HTTP/1.1 206 Partial Content");
    let mut stitched = first.body.clone();
    stitched.extend_from_slice(&rest.body);
    assert_eq!(sha256(&stitched), sha256(&data));
    // replaced in the bucket: the same resume now gets the whole new object
    let new: Vec<u8> = data.iter().rev().copied().collect();
    put(&store, "pre/f.bin", &new);
    let again = b.get("/f.bin", &[("If-Range", &etag), ("Range", "bytes=300000-")]);
    assert_eq!(again.status_line, "HTTP/1.1 200 OK");
    assert!(again.body == new);
}

#[test]
fn prehash_hashes_large_objects_before_they_are_asked_for() {
    let data = pattern(LARGE);
    let store = memory(&[("sub/big.bin", &data), ("small.txt", b"tiny")]);
    let watched = Watched::new(store, Duration::ZERO, never);
    let s = serve_origin(
        watched.clone(),
        Config {
            prehash: true,
            store_revalidate: Duration::from_secs(3600),
            ..Config::default()
        },
    );
    let whole = 0..LARGE as u64;
    let deadline = Instant::now() + Duration::from_secs(20);
    while !watched.reads.lock().unwrap().contains(&whole) {
        assert!(
            Instant::now() < deadline,
            "prehash did not hash sub/big.bin"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let r = s.request("HEAD", "/sub/big.bin", &[]);
    assert_eq!(r.header("Repr-Digest"), Some(repr_digest(&data).as_str()));
    let reads = watched.reads.lock().unwrap().clone();
    assert_eq!(
        reads,
        vec![whole],
        "the request reused the prehash's digest"
    );
}

#[test]
fn etag_cache_keeps_object_digests_across_restarts() {
    let data = pattern(LARGE);
    let store = memory(&[("f.bin", &data)]);
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("etags");
    let config = || Config {
        etag_cache: Some(cache.clone()),
        ..Config::default()
    };
    let first = Watched::new(store.clone(), Duration::ZERO, never);
    let s = serve_origin(first.clone(), config());
    let etag = s
        .request("HEAD", "/f.bin", &[])
        .header("ETag")
        .unwrap()
        .to_string();
    drop(s); // a graceful stop writes the file
    assert_eq!(first.reads.lock().unwrap().len(), 1, "hashed once");
    assert!(cache.exists());

    let second = Watched::new(store.clone(), Duration::ZERO, never);
    let s = serve_origin(second.clone(), config());
    let head = s.request("HEAD", "/f.bin", &[]);
    assert_eq!(head.header("ETag"), Some(etag.as_str()));
    assert!(
        second.reads.lock().unwrap().is_empty(),
        "no hashing pass after a restart"
    );
    // a new version is hashed, not taken from the file
    let new: Vec<u8> = data.iter().map(|b| b ^ 1).collect();
    put(&store, "pre/f.bin", &new);
    std::thread::sleep(Duration::from_millis(1100)); // past --store-revalidate
    let head = s.request("HEAD", "/f.bin", &[]);
    assert_eq!(head.header("Repr-Digest"), Some(repr_digest(&new).as_str()));
    assert_eq!(second.reads.lock().unwrap().len(), 1);
}
