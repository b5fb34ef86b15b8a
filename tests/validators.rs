//! Strong content ETags, Repr-Digest and RFC 9110 13.2.2 preconditions over
//! real TCP.

mod common;

use base64::Engine as _;
use common::{pattern, RawResponse, TestServer};
use rangeserve::Config;
use sha2::{Digest, Sha256};
use std::time::{Duration, SystemTime};

fn etag_of(data: &[u8]) -> String {
    format!("\"{}\"", hex::encode(Sha256::digest(data)))
}

fn assert_validators(res: &RawResponse, data: &[u8]) {
    assert_eq!(
        res.header("ETag"),
        Some(etag_of(data).as_str()),
        "{}",
        res.status_line
    );
    let rd = res.header("Repr-Digest").expect("Repr-Digest");
    let b64 = rd
        .strip_prefix("sha-256=:")
        .and_then(|s| s.strip_suffix(':'))
        .expect("sha-256=:...:");
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap();
    assert_eq!(
        decoded,
        Sha256::digest(data).to_vec(),
        "Repr-Digest is the SHA-256 of the whole file"
    );
}

#[test]
fn etag_and_repr_digest_on_200_206_multipart_and_head() {
    let s = TestServer::fixtures();
    let data = common::fixture("data.bin");
    assert_validators(&s.get("/data.bin", &[]), &data);
    let partial = s.get("/data.bin", &[("Range", "bytes=10-20")]);
    assert_eq!(partial.status(), 206);
    assert_validators(&partial, &data);
    let multi = s.get("/data.bin", &[("Range", "bytes=0-0,-1")]);
    assert_validators(&multi, &data);
    assert_validators(&s.request("HEAD", "/data.bin", &[]), &data);
    assert_validators(&s.get("/empty.txt", &[]), b"");
    assert_eq!(
        s.get("/data.bin", &[]).header("Cache-Control"),
        Some("no-cache")
    );
}

#[test]
fn if_none_match_gives_a_bare_304() {
    let s = TestServer::fixtures();
    let data = common::fixture("hello.txt");
    let tag = etag_of(&data);
    for (method, inm) in [
        ("GET", tag.clone()),
        ("HEAD", tag.clone()),
        ("GET", "*".into()),
        ("GET", format!("\"x\", W/{tag}")),
    ] {
        let res = s.request(
            method,
            "/hello.txt",
            &[("If-None-Match", &inm), ("Range", "bytes=0-1")],
        );
        assert_eq!(
            res.status_line, "HTTP/1.1 304 Not Modified",
            "{method} {inm}"
        );
        assert_eq!(res.header("ETag"), Some(tag.as_str()));
        assert_eq!(res.header("Cache-Control"), Some("no-cache"));
        assert!(res.has("Date") && res.has("Last-Modified"));
        for absent in [
            "Content-Range",
            "Content-Type",
            "Transfer-Encoding",
            "Repr-Digest",
        ] {
            assert!(!res.has(absent), "304 carries no {absent}");
        }
        assert!(res.body.is_empty());
    }
    // a 304 is framed correctly: the connection carries on
    let mut conn = s.connect();
    conn.send("GET", "/hello.txt", &[("If-None-Match", &tag)]);
    assert_eq!(conn.read_response(false).status(), 304);
    conn.send("GET", "/hello.txt", &[]);
    assert_eq!(conn.read_response(false).body, data);
    // other tag -> 200
    let res = s.get("/hello.txt", &[("If-None-Match", "\"other\"")]);
    assert_eq!(res.status(), 200);
    // malformed list -> no match -> 200, never 500
    let res = s.get("/hello.txt", &[("If-None-Match", "not-a-tag")]);
    assert_eq!(res.status(), 200);
}

#[test]
fn if_match_and_if_unmodified_since() {
    let s = TestServer::fixtures();
    let data = common::fixture("data.bin");
    let tag = etag_of(&data);
    let ok = s.get("/data.bin", &[("If-Match", &tag)]);
    assert_eq!(ok.status(), 200);
    let ok = s.get("/data.bin", &[("If-Match", "*")]);
    assert_eq!(ok.status(), 200);
    let ok = s.get(
        "/data.bin",
        &[
            ("If-Match", &format!("\"a\", {tag}")),
            ("Range", "bytes=0-0"),
        ],
    );
    assert_eq!(ok.status(), 206);
    for bad in ["\"nope\"", &format!("W/{tag}"), "garbage"] {
        let res = s.get("/data.bin", &[("If-Match", bad), ("Range", "bytes=0-0")]);
        assert_eq!(
            res.status_line, "HTTP/1.1 412 Precondition Failed",
            "If-Match {bad}"
        );
        assert!(!res.has("Content-Range"));
    }
    let lm = s
        .get("/data.bin", &[])
        .header("Last-Modified")
        .unwrap()
        .to_string();
    let lm_time = httpdate::parse_http_date(&lm).unwrap();
    let before = httpdate::fmt_http_date(lm_time - Duration::from_secs(1));
    assert_eq!(
        s.get("/data.bin", &[("If-Unmodified-Since", &lm)]).status(),
        200
    );
    assert_eq!(
        s.get("/data.bin", &[("If-Unmodified-Since", &before)])
            .status(),
        412
    );
    assert_eq!(
        s.get("/data.bin", &[("If-Unmodified-Since", "bogus")])
            .status(),
        200
    );
    // If-Match present: If-Unmodified-Since is not evaluated
    assert_eq!(
        s.get(
            "/data.bin",
            &[("If-Match", &tag), ("If-Unmodified-Since", &before)]
        )
        .status(),
        200
    );
}

#[test]
fn if_modified_since() {
    let s = TestServer::fixtures();
    let lm = s
        .get("/hello.txt", &[])
        .header("Last-Modified")
        .unwrap()
        .to_string();
    let t = httpdate::parse_http_date(&lm).unwrap();
    let before = httpdate::fmt_http_date(t - Duration::from_secs(1));
    assert_eq!(
        s.get("/hello.txt", &[("If-Modified-Since", &lm)]).status(),
        304
    );
    assert_eq!(
        s.request("HEAD", "/hello.txt", &[("If-Modified-Since", &lm)])
            .status(),
        304
    );
    assert_eq!(
        s.get("/hello.txt", &[("If-Modified-Since", &before)])
            .status(),
        200
    );
    assert_eq!(
        s.get("/hello.txt", &[("If-Modified-Since", "yesterday")])
            .status(),
        200
    );
    // ignored when If-None-Match is present
    let res = s.get(
        "/hello.txt",
        &[("If-None-Match", "\"other\""), ("If-Modified-Since", &lm)],
    );
    assert_eq!(res.status(), 200);
}

#[test]
fn if_range_with_tags_and_dates() {
    let data = pattern(5000);
    let s = TestServer::with_files(&[("f.bin", &data)]);
    // an mtime safely in the past, so Last-Modified is a strong validator
    let old = SystemTime::now() - Duration::from_secs(3600);
    std::fs::File::options()
        .write(true)
        .open(s.root.join("f.bin"))
        .unwrap()
        .set_modified(old)
        .unwrap();
    let tag = etag_of(&data);
    let lm = s
        .get("/f.bin", &[])
        .header("Last-Modified")
        .unwrap()
        .to_string();
    let range = ("Range", "bytes=100-199");
    let res = s.get("/f.bin", &[range, ("If-Range", &tag)]);
    assert_eq!(res.status(), 206);
    assert_eq!(res.body, &data[100..200]);
    let res = s.get("/f.bin", &[range, ("If-Range", &lm)]);
    assert_eq!(res.status(), 206);
    for stale in [
        etag_of(b"old"),
        format!("W/{tag}"),
        httpdate::fmt_http_date(old + Duration::from_secs(7)),
        "junk".into(),
    ] {
        let res = s.get("/f.bin", &[range, ("If-Range", &stale)]);
        assert_eq!(res.status_line, "HTTP/1.1 200 OK", "If-Range {stale}");
        assert!(!res.has("Content-Range"));
        assert!(res.body == data);
    }
    // If-Range without Range is ignored
    assert_eq!(s.get("/f.bin", &[("If-Range", "\"old\"")]).status(), 200);
}

#[test]
fn if_range_date_is_not_trusted_when_last_modified_equals_date() {
    // A future mtime is sent as Last-Modified = Date, which is not a strong
    // validator (8.8.2.2): an If-Range carrying that exact date must not match.
    let data = pattern(100);
    let s = TestServer::with_files(&[("f.bin", &data)]);
    let future = SystemTime::now() + Duration::from_secs(3600);
    std::fs::File::options()
        .write(true)
        .open(s.root.join("f.bin"))
        .unwrap()
        .set_modified(future)
        .unwrap();
    let mut checked = 0;
    for _ in 0..20 {
        let now = httpdate::fmt_http_date(SystemTime::now());
        let res = s.get("/f.bin", &[("Range", "bytes=0-0"), ("If-Range", &now)]);
        assert_eq!(
            res.header("Last-Modified"),
            res.header("Date"),
            "Last-Modified clamped to Date"
        );
        if res.header("Last-Modified") == Some(now.as_str()) {
            assert_eq!(res.status(), 200, "an If-Range date equal to Date is weak");
            checked += 1;
        }
    }
    assert!(
        checked > 0,
        "no request landed in the same second as its If-Range date"
    );
}

#[test]
fn same_size_rewrite_with_mtime_restored_changes_the_etag() {
    let a = pattern(4096);
    let mut b = a.clone();
    b[2000] ^= 0xff;
    let s = TestServer::with_files(&[("f.bin", &a)]);
    let path = s.root.join("f.bin");
    let mtime = std::fs::metadata(&path).unwrap().modified().unwrap();
    let first = s.get("/f.bin", &[]);
    assert_validators(&first, &a);
    std::fs::write(&path, &b).unwrap();
    std::fs::File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_modified(mtime)
        .unwrap();
    assert_eq!(std::fs::metadata(&path).unwrap().modified().unwrap(), mtime);
    let second = s.get("/f.bin", &[]);
    assert_validators(&second, &b);
    assert_eq!(
        first.header("Last-Modified"),
        second.header("Last-Modified")
    );
    // resuming with the old tag is refused: the whole new file comes back
    let res = s.get(
        "/f.bin",
        &[
            ("Range", "bytes=1000-"),
            ("If-Range", first.header("ETag").unwrap()),
        ],
    );
    assert_eq!(res.status(), 200);
    assert!(res.body == b);
}

#[test]
fn appending_changes_etag_and_length() {
    let a = pattern(1000);
    let s = TestServer::with_files(&[("f.bin", &a)]);
    let first = s.get("/f.bin", &[]);
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(s.root.join("f.bin"))
        .unwrap();
    std::io::Write::write_all(&mut f, b"more").unwrap();
    let mut b = a.clone();
    b.extend_from_slice(b"more");
    let second = s.get("/f.bin", &[]);
    assert_ne!(first.header("ETag"), second.header("ETag"));
    assert_eq!(second.header("Content-Length"), Some("1004"));
    assert_validators(&second, &b);
}

#[test]
fn two_servers_over_two_copies_agree_on_etag_and_digest() {
    let data = pattern(100_000);
    let s1 = TestServer::with_files(&[("f.bin", &data)]);
    let s2 = TestServer::with_files(&[("f.bin", &data)]);
    let past = SystemTime::now() - Duration::from_secs(86400 * 3);
    std::fs::File::options()
        .write(true)
        .open(s2.root.join("f.bin"))
        .unwrap()
        .set_modified(past)
        .unwrap();
    let (r1, r2) = (s1.get("/f.bin", &[]), s2.get("/f.bin", &[]));
    assert_ne!(r1.header("Last-Modified"), r2.header("Last-Modified"));
    assert_eq!(r1.header("ETag"), r2.header("ETag"));
    assert_eq!(r1.header("Repr-Digest"), r2.header("Repr-Digest"));
    // a resume started on one replica completes on the other
    let tag = r1.header("ETag").unwrap();
    let res = s2.get("/f.bin", &[("Range", "bytes=50000-"), ("If-Range", tag)]);
    assert_eq!(res.status(), 206);
    assert_eq!(res.body, &data[50000..]);
}

#[test]
fn concurrent_first_requests_hash_once() {
    let data = pattern(48 * 1024 * 1024);
    let s = TestServer::with_files(&[("big.bin", &data), ("small.txt", b"small")]);
    let addr = s.addr;
    let threads: Vec<_> = (0..32)
        .map(|i| {
            std::thread::spawn(move || {
                let mut conn = common::Conn::new(addr);
                let r = format!("bytes={}-{}", i * 1000, i * 1000 + 9);
                conn.send("GET", "/big.bin", &[("Range", &r)]);
                conn.read_response(false)
            })
        })
        .collect();
    let tag = etag_of(&data);
    for (i, t) in threads.into_iter().enumerate() {
        let res = t.join().unwrap();
        assert_eq!(res.status(), 206);
        assert_eq!(res.header("ETag"), Some(tag.as_str()));
        assert_eq!(res.body, &data[i * 1000..i * 1000 + 10]);
    }
    assert_eq!(
        s.hashes.computed(),
        1,
        "32 concurrent first requests share one hash"
    );
    s.get("/big.bin", &[]);
    assert_eq!(s.hashes.computed(), 1, "warm requests never hash");
    s.get("/small.txt", &[]);
    assert_eq!(s.hashes.computed(), 2);
}

#[test]
fn small_files_reopened_take_a_settled_digest_and_never_a_stale_one() {
    // no file-state cache: every request opens and reads the file again
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.txt");
    std::fs::write(&path, b"first version").unwrap();
    // a read that starts within a second of the last change is never
    // settled (timestamp granularity), whatever the window
    let settle = || std::thread::sleep(Duration::from_millis(1100));
    settle();
    let config = |window| Config {
        open_file_cache: 0,
        settle_window: Some(window),
        ..Config::default()
    };
    let s = TestServer::start_with(dir.path(), config(Duration::ZERO));
    assert_validators(&s.get("/s.txt", &[]), b"first version");
    assert_eq!(s.hashes.computed(), 1);
    for _ in 0..3 {
        assert_validators(&s.get("/s.txt", &[]), b"first version");
    }
    assert_eq!(
        s.hashes.computed(),
        1,
        "a settled digest of the same stamp is reused"
    );
    // same size, new bytes: a new stamp, hashed again, never the old tag
    std::fs::write(&path, b"other version").unwrap();
    assert_validators(&s.get("/s.txt", &[]), b"other version");
    assert_eq!(s.hashes.computed(), 2);
    settle();
    assert_validators(&s.get("/s.txt", &[]), b"other version");
    assert_eq!(
        s.hashes.computed(),
        3,
        "the hash made within a second was racy"
    );
    assert_validators(&s.get("/s.txt", &[]), b"other version");
    assert_eq!(s.hashes.computed(), 3);
    drop(s);

    // a racy digest (file changed within the window) vouches for nothing
    // but its own bytes: every open hashes again
    let s = TestServer::start_with(dir.path(), config(Duration::from_secs(3600)));
    for n in 1..=3 {
        assert_validators(&s.get("/s.txt", &[]), b"other version");
        assert_eq!(s.hashes.computed(), n);
    }
}

/// A server keeping its digests in `cache`. Only settled hashes are
/// persisted: a hash settles at once here (a racy one is never written;
/// see racy_hashes_are_not_persisted).
fn persisted_in(cache: &std::path::Path) -> Config {
    Config {
        etag_cache: Some(cache.to_path_buf()),
        settle_window: Some(Duration::ZERO),
        ..Config::default()
    }
}

#[test]
fn persistent_cache_survives_restart_and_corruption() {
    // larger than fs::SMALL_MAX: a small file is hashed from the buffer it
    // is served from (see small_files_reopened_take_a_settled_digest...)
    let data = pattern(1_000_000);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("f.bin"), &data).unwrap();
    let cache_dir = tempfile::tempdir().unwrap();
    let cache = cache_dir.path().join("etags");
    let config = || persisted_in(&cache);

    let s = TestServer::start_with(dir.path(), config());
    assert_validators(&s.get("/f.bin", &[]), &data);
    assert_eq!(s.hashes.computed(), 1);
    drop(s); // graceful stop flushes the cache
    assert!(cache.exists(), "cache file written");

    let s = TestServer::start_with(dir.path(), config());
    assert_validators(&s.get("/f.bin", &[]), &data);
    assert_eq!(s.hashes.computed(), 0, "hash came from the cache file");
    drop(s);

    // corrupt one hex digit of the stored digest: detected, rehashed, right ETag
    let mut text = std::fs::read(&cache).unwrap();
    let at = text.iter().position(|&b| b == b'\n').unwrap() + 1;
    text[at] = if text[at] == b'a' { b'b' } else { b'a' };
    std::fs::write(&cache, &text).unwrap();
    let s = TestServer::start_with(dir.path(), config());
    assert_validators(&s.get("/f.bin", &[]), &data);
    assert_eq!(s.hashes.computed(), 1);
    drop(s);

    // garbage file: same
    std::fs::write(&cache, b"\x00\xffnot a cache").unwrap();
    let s = TestServer::start_with(dir.path(), config());
    assert_validators(&s.get("/f.bin", &[]), &data);
    assert_eq!(s.hashes.computed(), 1);
    drop(s);

    // a changed file is rehashed even though the cache knows its path
    let s = TestServer::start_with(dir.path(), config());
    let mut other = data.clone();
    other[0] ^= 1;
    std::fs::write(dir.path().join("f.bin"), &other).unwrap();
    assert_validators(&s.get("/f.bin", &[]), &other);
    drop(s);

    // an unwritable cache location: a warning, never a failure
    let s = TestServer::start_with(
        dir.path(),
        Config {
            etag_cache: Some("/proc/no/such/dir/etags".into()),
            ..Config::default()
        },
    );
    assert_validators(&s.get("/f.bin", &[]), &other);
}

/// A warm small range of a large file is read before the one `stat` that
/// revalidates the cached file state: each answer is of the version its
/// ETag names, through same-size rewrites in place and renames over it.
#[test]
fn warm_ranges_of_a_large_file_follow_every_rewrite() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.bin");
    let mut data = pattern(2_000_000);
    std::fs::write(&path, &data).unwrap();
    let s = TestServer::start_with(
        dir.path(),
        Config {
            settle_window: Some(Duration::ZERO),
            ..Config::default()
        },
    );
    let range = "bytes=1000000-1004095";
    for round in 0..6u8 {
        for _ in 0..3 {
            let res = s.get("/big.bin", &[("Range", range)]);
            assert_eq!(
                res.status_line, "HTTP/1.1 206 Partial Content",
                "round {round}"
            );
            assert_eq!(res.body, &data[1_000_000..1_004_096], "round {round}");
            assert_validators(&res, &data);
        }
        data[1_000_000 + usize::from(round)] ^= 0xff;
        if round % 2 == 0 {
            std::fs::write(&path, &data).unwrap(); // in place, same size
        } else {
            let tmp = dir.path().join("big.tmp");
            std::fs::write(&tmp, &data).unwrap();
            std::fs::rename(&tmp, &path).unwrap();
        }
    }
}

/// `--etag-cache` is an append-only log: once written, each flush appends
/// what changed since the last (a new digest; a replaced one and the removal
/// of the old), in place, and a restart reads the replayed state back.
#[test]
fn the_persistent_cache_appends_only_what_changed() {
    let (a, b) = (pattern(1_000_000), pattern(1_100_000));
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.bin"), &a).unwrap();
    std::fs::write(dir.path().join("b.bin"), &b).unwrap();
    let cache_dir = tempfile::tempdir().unwrap();
    let cache = cache_dir.path().join("etags");
    let config = || persisted_in(&cache);
    let hex = |bytes: &[u8]| hex::encode(Sha256::digest(bytes));
    // the flusher writes about a second after a new digest
    let grown_past = |len: usize| {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let text = std::fs::read_to_string(&cache).unwrap_or_default();
            if text.len() > len {
                // let a flush in progress finish
                std::thread::sleep(Duration::from_millis(200));
                return std::fs::read_to_string(&cache).unwrap();
            }
            assert!(std::time::Instant::now() < deadline, "cache not written");
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    let inode = || std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(&cache).unwrap());

    let s = TestServer::start_with(dir.path(), config());
    assert_validators(&s.get("/a.bin", &[]), &a);
    let first = grown_past(0);
    assert!(first.starts_with("rangeserve-etag-cache v2\n"), "{first}");
    assert!(first.contains(&hex(&a)));
    let ino = inode();

    assert_validators(&s.get("/b.bin", &[]), &b);
    let second = grown_past(first.len());
    let added = second
        .strip_prefix(first.as_str())
        .expect("appended, not rewritten");
    assert_eq!(inode(), ino, "the same file, in place");
    assert!(
        added.contains(&hex(&b)) && !added.contains(&hex(&a)),
        "{added}"
    );
    assert_eq!(
        added.lines().count(),
        2,
        "one entry and its checksum: {added}"
    );

    let mut a2 = a.clone();
    a2[0] ^= 1;
    std::fs::write(dir.path().join("a.bin"), &a2).unwrap();
    assert_validators(&s.get("/a.bin", &[]), &a2);
    let third = grown_past(second.len());
    let added = third
        .strip_prefix(second.as_str())
        .expect("appended, not rewritten");
    assert!(added.contains(&hex(&a2)), "{added}");
    assert!(
        !added.contains(&hex(&b)),
        "an unchanged entry is not written again"
    );
    assert_eq!(
        added.lines().filter(|l| l.starts_with("- ")).count(),
        1,
        "the old digest of a.bin is removed: {added}"
    );
    assert_eq!(inode(), ino);
    drop(s);

    // a new server reads the replayed log: both digests known, none stale
    let s = TestServer::start_with(dir.path(), config());
    assert_validators(&s.get("/a.bin", &[]), &a2);
    assert_validators(&s.get("/b.bin", &[]), &b);
    assert_eq!(s.hashes.computed(), 0, "both digests came from the log");
}

/// A hash computed within the settling window of the file's last change
/// may be of bytes that a writer changed without moving the stamp: it is
/// used (with the whole-file body verified as it is sent) but never written
/// to the cache file, and is computed again once the file has been still.
#[test]
fn racy_hashes_are_not_persisted() {
    let data = pattern(1_000_000);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("f.bin"), &data).unwrap();
    let cache_dir = tempfile::tempdir().unwrap();
    let cache = cache_dir.path().join("etags");
    let config = |window| Config {
        etag_cache: Some(cache.clone()),
        settle_window: Some(window),
        ..Config::default()
    };
    let s = TestServer::start_with(dir.path(), config(Duration::from_secs(3600)));
    assert_validators(&s.get("/f.bin", &[]), &data);
    assert_eq!(s.hashes.computed(), 1);
    drop(s);
    let s = TestServer::start_with(dir.path(), config(Duration::from_secs(3600)));
    assert_validators(&s.get("/f.bin", &[]), &data);
    assert_eq!(
        s.hashes.computed(),
        1,
        "a racy hash is not taken from the file"
    );
    drop(s);
    // once settled (window 0: at once), the next server hashes it again and keeps it
    let s = TestServer::start_with(dir.path(), config(Duration::ZERO));
    assert_validators(&s.get("/f.bin", &[]), &data);
    assert_eq!(s.hashes.computed(), 1);
    drop(s);
    let s = TestServer::start_with(dir.path(), config(Duration::ZERO));
    assert_validators(&s.get("/f.bin", &[]), &data);
    assert_eq!(s.hashes.computed(), 0, "a settled hash comes from the file");
}

#[test]
fn cache_control_is_configurable() {
    let s = TestServer::with_files_config(
        &[("f", b"x")],
        Config {
            cache_control: "public, max-age=60".into(),
            ..Config::default()
        },
    );
    assert_eq!(
        s.get("/f", &[]).header("Cache-Control"),
        Some("public, max-age=60")
    );
    let tag = etag_of(b"x");
    assert_eq!(
        s.get("/f", &[("If-None-Match", &tag)])
            .header("Cache-Control"),
        Some("public, max-age=60")
    );
}

/// Requests answered together on the HTTP/1.1 fast path share revalidating
/// `stat`s (one made after they were read). Such sharing must never cover a
/// request sent after a change completed: each client notes the version
/// published before it sends, and no answer (200, or 304 to If-None-Match
/// of the tag it holds) may be of an older one. Renames over the file, with
/// sizes that differ from one version to the next. Only settled digests are
/// shared: with a settle window of zero, a file still for a second has one,
/// so each version stands 1.3 s.
#[test]
fn concurrent_warm_requests_never_miss_a_completed_change() {
    never_miss_a_completed_change(Config::default());
}

/// The same through the request frame, which the journal's servers take
/// (the service's hit shares revalidations too).
#[test]
fn concurrent_warm_requests_through_the_frame_never_miss_a_completed_change() {
    never_miss_a_completed_change(Config {
        journal: 64,
        ..Config::default()
    });
}

fn never_miss_a_completed_change(config: Config) {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::sync::Arc;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f.txt");
    let body = |v: u64| format!("version {v} {}\n", ".".repeat((v % 7) as usize)).into_bytes();
    let version_of = |bytes: &[u8]| -> u64 {
        let text = std::str::from_utf8(bytes).unwrap();
        text.split(' ').nth(1).unwrap().parse().unwrap()
    };
    std::fs::write(&path, body(0)).unwrap();
    let s = TestServer::start_with(
        dir.path(),
        Config {
            settle_window: Some(Duration::ZERO),
            ..config
        },
    );
    let published = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..8)
        .map(|i| {
            let (published, stop, addr) = (Arc::clone(&published), Arc::clone(&stop), s.addr);
            std::thread::spawn(move || {
                let mut c = common::Conn::new(addr);
                // the tag last seen and the version it names
                let mut held: Option<(String, u64)> = None;
                let (mut answers, mut not_modified) = (0u64, 0u64);
                while !stop.load(Ordering::SeqCst) {
                    let floor = published.load(Ordering::SeqCst);
                    let conditional = i % 2 == 0 && held.is_some();
                    match (&held, conditional) {
                        (Some((tag, _)), true) => c.send("GET", "/f.txt", &[("If-None-Match", tag)]),
                        _ => c.send("GET", "/f.txt", &[]),
                    }
                    let res = c.read_response(false);
                    answers += 1;
                    let version = match res.status() {
                        200 => {
                            let tag = res.header("ETag").expect("ETag").to_string();
                            assert_eq!(tag, etag_of(&res.body), "the tag names the bytes sent");
                            let v = version_of(&res.body);
                            held = Some((tag, v));
                            v
                        }
                        304 if conditional => {
                            not_modified += 1;
                            held.as_ref().unwrap().1
                        }
                        other => panic!("client {i}: status {other}"),
                    };
                    assert!(
                        version >= floor,
                        "client {i}: version {version} answered to a request sent after version {floor} was written"
                    );
                }
                (answers, not_modified)
            })
        })
        .collect();
    for v in 1..=5u64 {
        std::thread::sleep(Duration::from_millis(1300));
        let tmp = dir.path().join("f.tmp");
        std::fs::write(&tmp, body(v)).unwrap();
        std::fs::rename(&tmp, &path).unwrap();
        published.store(v, Ordering::SeqCst);
    }
    std::thread::sleep(Duration::from_millis(1300));
    stop.store(true, Ordering::SeqCst);
    let (mut answers, mut not_modified) = (0, 0);
    for c in clients {
        let (a, n) = c.join().unwrap();
        answers += a;
        not_modified += n;
    }
    // enough traffic for requests to have shared revalidations
    assert!(
        answers > 1000 && not_modified > 100,
        "{answers} answers, {not_modified} 304s"
    );
}

/// Hashes settle once a file has been still for a second, so that the hash
/// cache serves the digests of files reopened (see
/// small_files_reopened_take_a_settled_digest_and_never_a_stale_one).
const SETTLE: Duration = Duration::from_millis(1100);

/// A server over `root` (once its files have settled) whose file-state
/// cache holds 8 entries: full after 7.
fn settled_with_an_8_entry_cache(root: &std::path::Path) -> TestServer {
    std::thread::sleep(SETTLE);
    let config = Config {
        open_file_cache: 8,
        small_file_cache: 64 * 1024,
        settle_window: Some(Duration::ZERO),
        ..Config::default()
    };
    TestServer::start_with(root, config)
}

/// A full cache turns a new path away the first time it is asked for: that
/// answer is made without a kept state (its head written straight from the
/// file's values). The second asking is kept, the third a hit. All three
/// answers are the same, header for header in the same order (but Date),
/// and byte for byte, for a whole GET, a range, several ranges and a HEAD.
#[test]
fn an_answer_the_cache_turns_away_is_the_kept_answer() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    for i in 0..7 {
        std::fs::write(root.join(format!("k{i}")), pattern(100 + i)).unwrap();
    }
    let data = pattern(5000);
    type Headers<'a> = &'a [(&'a str, &'a str)];
    let asks: [(&str, &str, Headers); 4] = [
        ("full.bin", "GET", &[]),
        ("range.bin", "GET", &[("Range", "bytes=1-5")]),
        ("multi.txt", "GET", &[("Range", "bytes=0-0,-1")]),
        ("head.html", "HEAD", &[]),
    ];
    for (name, _, _) in asks {
        std::fs::write(root.join(name), &data).unwrap();
    }
    let s = settled_with_an_8_entry_cache(root);
    let mut conn = s.connect();
    // 7 kept: the cache is full (an eviction leaves 7 of 8)
    for i in 0..7 {
        conn.send("GET", &format!("/k{i}"), &[]);
        assert_eq!(conn.read_response(false).status(), 200);
    }
    for (name, method, headers) in asks {
        let answers: Vec<RawResponse> = (0..3)
            .map(|_| {
                conn.send(method, &format!("/{name}"), headers);
                conn.read_response(method == "HEAD")
            })
            .collect();
        let first = &answers[0];
        assert_validators(first, &data);
        let without_date = |r: &RawResponse| {
            let headers = r.headers.iter().filter(|(n, _)| n != "Date");
            let headers: Vec<_> = headers.cloned().collect();
            (r.status_line.clone(), headers)
        };
        for (k, other) in answers.iter().enumerate().skip(1) {
            let (line, mut headers) = without_date(other);
            let (first_line, mut first_headers) = without_date(first);
            if headers
                .iter()
                .any(|(_, v)| v.starts_with("multipart/byteranges"))
            {
                // the boundary is fresh in every answer
                for h in [&mut headers, &mut first_headers] {
                    for (n, v) in h.iter_mut() {
                        if n == "Content-Type" {
                            *v = v.split("; boundary=").next().unwrap().to_string();
                        }
                    }
                }
            }
            assert_eq!(
                (&line, &headers),
                (&first_line, &first_headers),
                "/{name}, answer {k}"
            );
        }
        for res in &answers {
            let type_of = res.header("Content-Type").unwrap();
            match (method, headers) {
                ("HEAD", _) => assert!(res.body.is_empty()),
                (_, []) => assert_eq!(res.body, data, "/{name}"),
                (_, [(_, "bytes=1-5")]) => {
                    assert_eq!(res.status(), 206);
                    assert_eq!(res.header("Content-Range"), Some("bytes 1-5/5000"));
                    assert_eq!(res.body, &data[1..6], "/{name}");
                }
                _ => {
                    assert_eq!(res.status(), 206);
                    let parts = common::parse_multipart(type_of, &res.body);
                    assert_eq!(parts.len(), 2);
                    assert_eq!(parts[0].header("Content-Range"), Some("bytes 0-0/5000"));
                    assert_eq!(parts[0].body, &data[..1]);
                    assert_eq!(
                        parts[1].header("Content-Range"),
                        Some("bytes 4999-4999/5000")
                    );
                    assert_eq!(parts[1].body, &data[4999..]);
                }
            }
        }
    }
}

/// A file-state cache far smaller than the tree (8 entries, 40 files): once
/// it is full, a file asked for once is served and not kept, one asked for
/// again is kept, and entries are evicted; files are renamed over, rewritten
/// in place and reached by a hard link between rounds. Every answer, whole
/// or ranged, carries the current bytes and their ETag.
#[test]
fn a_full_file_state_cache_serves_every_version_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let content = |i: usize, round: usize| -> Vec<u8> {
        let len = 100 + (i * 137 + round * 61) % 3000;
        (0..len)
            .map(|k| ((k * 7 + i * 13 + round * 29) % 251) as u8)
            .collect()
    };
    let mut current: Vec<Vec<u8>> = (0..40).map(|i| content(i, 0)).collect();
    for (i, data) in current.iter().enumerate() {
        std::fs::write(root.join(format!("f{i:02}")), data).unwrap();
    }
    // a second name for f00's inode
    std::fs::hard_link(root.join("f00"), root.join("link")).unwrap();
    let s = settled_with_an_8_entry_cache(root);
    let settle = || std::thread::sleep(SETTLE);
    let mut conn = s.connect();
    let mut check = |name: &str, data: &[u8]| {
        conn.send("GET", &format!("/{name}"), &[]);
        let res = conn.read_response(false);
        assert_eq!(res.status(), 200, "/{name}");
        assert_eq!(res.body, data, "/{name}: bytes of another version");
        assert_validators(&res, data);
        conn.send("GET", &format!("/{name}"), &[("Range", "bytes=1-5")]);
        let res = conn.read_response(false);
        assert_eq!(res.status(), 206, "/{name}");
        assert_eq!(res.body, &data[1..6], "/{name}: range of another version");
        assert_eq!(res.header("ETag"), Some(etag_of(data).as_str()));
    };
    for round in 1..=4 {
        for (i, data) in current.iter().enumerate() {
            check(&format!("f{i:02}"), data);
            // every third file is asked for twice more: kept once full
            if i % 3 == 0 {
                check(&format!("f{i:02}"), data);
                check(&format!("f{i:02}"), data);
            }
        }
        check("link", &current[0]);
        // change a third of the files, alternating how
        for i in (round % 3..40).step_by(3) {
            let new = content(i, round);
            let path = root.join(format!("f{i:02}"));
            if (i + round) % 2 == 0 {
                // renamed over: another inode
                let tmp = root.join(format!(".tmp{i}"));
                std::fs::write(&tmp, &new).unwrap();
                std::fs::rename(&tmp, &path).unwrap();
            } else {
                // rewritten in place (another size): the same inode
                std::fs::write(&path, &new).unwrap();
            }
            current[i] = new;
        }
        settle();
        // the hard link follows f00's inode until f00 is renamed over
        let linked = std::fs::read(root.join("link")).unwrap();
        check("link", &linked);
    }
}
