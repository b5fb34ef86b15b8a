//! Over the real S3 protocol: a moto S3 server on loopback (`python3 -m
//! moto.server`, moto from PyPI; `.ci/run` installs it), a bucket with a simple upload and a
//! multipart upload, and the rangeserve binary serving `s3://bucket/pre`
//! from the environment (AWS_ENDPOINT_URL, AWS_ALLOW_HTTP): the range
//! matrix byte-for-byte, ETags equal to the directory mode's, an object
//! replaced mid-response aborting it, 404, and 503 once the store is gone;
//! and, with moto enforcing IAM, 403 for an object the credentials may not
//! read and for a refused listing; an object uploaded with a SHA-256
//! checksum served without being read; two rangeserve processes over one
//! bucket, a download resumed across them.
//!
//! Without moto the test says so and passes, unless RANGESERVE_REQUIRE_MOTO
//! is set (CI sets it): then it fails.
#![cfg(feature = "object-store")]

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use common::{parse_content_range, parse_multipart, pattern, Conn, RawResponse, TestServer};
use object_store::aws::AmazonS3Builder;
use object_store::path::Path as StorePath;
use object_store::{ObjectStore, WriteMultipart};
use sha2::Digest as _;

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn block_on<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

/// moto on a free loopback port, once it answers; `None` (the test is
/// skipped) when moto is not installed and not required.
fn start_moto() -> Option<(Killed, u16)> {
    start_moto_logging(Stdio::null())
}

/// [`start_moto`], its request log (one line per request) going to `log`.
fn start_moto_logging(log: Stdio) -> Option<(Killed, u16)> {
    let installed = Command::new("python3")
        .args(["-c", "import moto.server"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !installed {
        assert!(
            std::env::var_os("RANGESERVE_REQUIRE_MOTO").is_none(),
            "moto is required: pip install 'moto[server]'"
        );
        eprintln!("moto is not installed; skipping the S3-protocol test");
        return None;
    }
    let port = free_port();
    let mut child = Killed(
        Command::new("python3")
            .args([
                "-m",
                "moto.server",
                "-H",
                "127.0.0.1",
                "-p",
                &port.to_string(),
            ])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(child.0.try_wait().unwrap().is_none(), "moto exited");
        assert!(Instant::now() < deadline, "moto did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    Some((child, port))
}

/// moto's request log: one line per request (`"GET /bucket/key HTTP/1.1" 200`).
struct MotoLog {
    _dir: tempfile::TempDir,
    path: std::path::PathBuf,
}

impl MotoLog {
    /// moto, as [`start_moto`], logging its requests.
    fn start() -> Option<(Killed, u16, MotoLog)> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("moto.log");
        let file = std::fs::File::create(&path).unwrap();
        let (moto, port) = start_moto_logging(Stdio::from(file))?;
        Some((moto, port, MotoLog { _dir: dir, path }))
    }

    /// The requests for `key` in the bucket, other than PUTs.
    fn asked(&self, key: &str) -> Vec<String> {
        let text = std::fs::read_to_string(&self.path).unwrap();
        text.lines()
            .filter(|l| l.contains(&format!(" /bucket/{key} ")) && !l.contains("\"PUT "))
            .map(String::from)
            .collect()
    }
}

/// moto accepts unsigned requests: a bare PUT creates the bucket.
fn create_bucket(port: u16, bucket: &str) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        s,
        "PUT /{bucket} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

const ENV: [(&str, &str); 4] = [
    ("AWS_ACCESS_KEY_ID", "test"),
    ("AWS_SECRET_ACCESS_KEY", "test"),
    ("AWS_REGION", "us-east-1"),
    ("AWS_ALLOW_HTTP", "true"),
];

fn client(port: u16) -> Arc<dyn ObjectStore> {
    let mut b = AmazonS3Builder::new()
        .with_bucket_name("bucket")
        .with_endpoint(format!("http://127.0.0.1:{port}"));
    for (k, v) in ENV {
        b = b.with_config(k.to_ascii_lowercase().parse().unwrap(), v);
    }
    Arc::new(b.build().unwrap())
}

fn put(store: &Arc<dyn ObjectStore>, key: &str, data: &[u8]) {
    block_on(store.put(&StorePath::parse(key).unwrap(), data.to_vec().into())).unwrap();
}

fn put_multipart(store: &Arc<dyn ObjectStore>, key: &str, data: &[u8]) {
    block_on(async {
        let upload = store
            .put_multipart(&StorePath::parse(key).unwrap())
            .await
            .unwrap();
        let mut w = WriteMultipart::new_with_chunk_size(upload, 5 << 20);
        w.write(data);
        w.finish().await.unwrap();
    });
}

/// The rangeserve binary over `s3://bucket/pre`, and its address.
fn rangeserve(port: u16) -> (Killed, SocketAddr) {
    rangeserve_as(port, "test", "test")
}

/// The same, with the access key `key` and its `secret`.
fn rangeserve_as(port: u16, key: &str, secret: &str) -> (Killed, SocketAddr) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_rangeserve"));
    cmd.args([
        "s3://bucket/pre",
        "-p",
        "0",
        "-q",
        "--store-revalidate",
        "0",
    ])
    .env("AWS_ENDPOINT_URL", format!("http://127.0.0.1:{port}"))
    .stdout(Stdio::piped())
    .stderr(Stdio::null());
    for (k, v) in ENV {
        cmd.env(k, v);
    }
    cmd.env("AWS_ACCESS_KEY_ID", key)
        .env("AWS_SECRET_ACCESS_KEY", secret);
    let mut child = cmd.spawn().unwrap();
    let addr = common::listening_addr(&mut child);
    (Killed(child), addr)
}

fn get(addr: SocketAddr, target: &str, headers: &[(&str, &str)]) -> RawResponse {
    let mut c = Conn::new(addr);
    c.send("GET", target, headers);
    c.read_response(false)
}

#[test]
fn ranges_validators_and_errors_over_the_s3_protocol() {
    let Some((moto, port)) = start_moto() else {
        return;
    };
    create_bucket(port, "bucket");
    let store = client(port);
    let small = pattern(5000);
    let large: Vec<u8> = pattern(12 << 20).iter().map(|b| b ^ 0x33).collect();
    put(&store, "pre/small.txt", &small);
    put_multipart(&store, "pre/dir/large.bin", &large);
    let meta = block_on(store.head(&StorePath::parse("pre/dir/large.bin").unwrap())).unwrap();
    assert!(
        meta.e_tag.as_deref().unwrap().contains('-'),
        "a multipart upload's S3 ETag: {:?}",
        meta.e_tag
    );
    let dir = TestServer::with_files(&[("small.txt", &small), ("dir/large.bin", &large)]);
    let (_server, addr) = rangeserve(port);

    for (target, data) in [("/small.txt", &small), ("/dir/large.bin", &large)] {
        let len = data.len() as u64;
        let full = get(addr, target, &[]);
        assert_eq!(full.status_line, "HTTP/1.1 200 OK", "{target}");
        assert!(full.body == *data, "{target}");
        let local = dir.get(target, &[("Range", "bytes=0-0")]);
        assert_eq!(
            full.header("ETag"),
            local.header("ETag"),
            "{target}: same ETag as a directory"
        );
        assert_eq!(full.header("Repr-Digest"), local.header("Repr-Digest"));
        for (range, a, b) in [
            ("bytes=0-0", 0, 0),
            ("bytes=-7", len - 7, len - 1),
            ("bytes=1000-", 1000, len - 1),
        ] {
            let r = get(addr, target, &[("Range", range)]);
            assert_eq!(r.status(), 206, "{target} {range}");
            assert_eq!(
                r.header("Content-Range").unwrap(),
                format!("bytes {a}-{b}/{len}")
            );
            assert!(r.body == data[a as usize..=b as usize], "{target} {range}");
        }
        let r = get(addr, target, &[("Range", "bytes=4000-4099,0-9,-3")]);
        assert_eq!(r.status(), 206);
        let parts = parse_multipart(r.header("Content-Type").unwrap(), &r.body);
        assert_eq!(parts.len(), 3);
        for p in &parts {
            let (a, b, _) = parse_content_range(p.header("Content-Range").unwrap());
            assert!(
                p.body == data[a as usize..=b as usize],
                "{target} part {a}-{b}"
            );
        }
        let r = get(addr, target, &[("Range", "bytes=99999999-")]);
        assert_eq!(r.status(), 416);
        let etag = full.header("ETag").unwrap();
        let r = get(
            addr,
            target,
            &[("If-Range", etag), ("Range", "bytes=10-19")],
        );
        assert_eq!(r.status(), 206);
        let r = get(addr, target, &[("If-None-Match", etag)]);
        assert_eq!(r.status(), 304);
    }
    assert_eq!(get(addr, "/missing.bin", &[]).status(), 404);
    assert!(get(addr, "/", &[]).body_str().contains("href=\"dir/\""));

    // replaced between the parts of a multipart response: aborted, old bytes only
    let first = 40 << 20;
    let old = pattern(first + 1000);
    put(&store, "pre/big.bin", &old);
    let mut c = Conn::new(addr);
    let range = format!("bytes=0-{},-100", first - 1);
    c.send(
        "GET",
        "/big.bin",
        &[("Range", &range), ("Connection", "close")],
    );
    let (status, headers) = c.read_head();
    assert_eq!(status, "HTTP/1.1 206 Partial Content");
    let announced: usize = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("Content-Length"))
        .unwrap()
        .1
        .parse()
        .unwrap();
    let mut body = vec![0u8; 1 << 20];
    c.reader.read_exact(&mut body).unwrap();
    let new: Vec<u8> = old.iter().map(|b| !b).collect();
    put(&store, "pre/big.bin", &new);
    body.extend(c.read_to_end());
    assert!(
        body.len() < announced,
        "aborted: {} of {announced}",
        body.len()
    );
    let head_end = body.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let sent = &body[head_end..(head_end + first).min(body.len())];
    assert!(sent == &old[..sent.len()], "only the old version's bytes");
    assert!(
        !body[head_end..]
            .windows(100)
            .any(|w| w == &new[new.len() - 100..]),
        "no byte of the new version's second part"
    );

    // the store goes away: an object not yet known gets 503 + Retry-After
    drop(moto);
    let r = get(addr, "/small-unknown.txt", &[]);
    assert_eq!(r.status_line, "HTTP/1.1 503 Service Unavailable");
    assert_eq!(r.header("Retry-After"), Some("5"));
}

/// One call of moto's IAM query API (`Action=...`), before moto enforces
/// IAM: unsigned, routed to IAM by the credential scope alone. Its answer.
fn iam(port: u16, params: &[(&str, &str)]) -> String {
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params)
        .append_pair("Version", "2010-05-08")
        .finish();
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        s,
        "POST / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\
         Authorization: AWS4-HMAC-SHA256 Credential=test/20250101/us-east-1/iam/aws4_request, SignedHeaders=host, Signature=0\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{params:?}: {answer}");
    answer
}

/// The text between `open` and `close` in `xml`.
fn element<'a>(xml: &'a str, open: &str, close: &str) -> &'a str {
    let from = xml.find(open).unwrap_or_else(|| panic!("{open} in {xml}")) + open.len();
    &xml[from..from + xml[from..].find(close).unwrap()]
}

/// From now on moto checks every request's signature and IAM permissions
/// (its `reset-auth`: no more unauthenticated requests).
fn enforce_iam(port: u16) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        s,
        "POST /moto-api/reset-auth HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\
         Content-Type: text/plain\r\nContent-Length: 1\r\nConnection: close\r\n\r\n0"
    )
    .unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

/// Read the bucket, except `pre/secret.txt`.
const POLICY: &str = r#"{"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Action": "s3:ListBucket", "Resource": "arn:aws:s3:::bucket"},
    {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::bucket/pre/*"},
    {"Effect": "Deny", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::bucket/pre/secret.txt"}
]}"#;

#[test]
fn an_object_the_credentials_may_not_read_is_403_over_the_s3_protocol() {
    let Some((_moto, port, log)) = MotoLog::start() else {
        return;
    };
    create_bucket(port, "bucket");
    let store = client(port);
    put(&store, "pre/open.txt", b"open");
    put(&store, "pre/secret.txt", b"secret");
    put(&store, "pre/sub/inner.txt", b"inner");
    // a checksummed object: the HEAD that asks for its checksum is signed
    // too, and passes moto's signature and IAM checks (else it would be read)
    let sum = put_with_sha256(port, "pre/summed.bin", &pattern(300_000));
    iam(port, &[("Action", "CreateUser"), ("UserName", "reader")]);
    iam(
        port,
        &[
            ("Action", "PutUserPolicy"),
            ("UserName", "reader"),
            ("PolicyName", "all-but-secret"),
            ("PolicyDocument", POLICY),
        ],
    );
    let created = iam(
        port,
        &[("Action", "CreateAccessKey"), ("UserName", "reader")],
    );
    let key = element(&created, "<AccessKeyId>", "</AccessKeyId>");
    let secret = element(&created, "<SecretAccessKey>", "</SecretAccessKey>");
    // rangeserve's start-up listing is made before moto enforces IAM: moto
    // 5 rejects the signature of every ListObjectsV2 with a delimiter once it
    // does (boto3's as well as object_store's), with 403; that stands in
    // here for a listing the credentials may not make
    let (_server, addr) = rangeserve_as(port, key, secret);
    enforce_iam(port);
    let mut c = Conn::new(addr);
    c.send("HEAD", "/summed.bin", &[]);
    let res = c.read_response(true);
    assert_eq!(res.status_line, "HTTP/1.1 200 OK");
    let want = format!("\"{}\"", hex::encode(sum));
    assert_eq!(res.header("ETag"), Some(want.as_str()));
    let asked = log.asked("pre/summed.bin");
    // the metadata HEAD and the checksum HEAD
    let all_heads = asked
        .iter()
        .all(|l| l.contains("\"HEAD ") && l.contains("\" 200 "));
    assert!(
        asked.len() >= 2 && all_heads,
        "only HEADs, all let through: {asked:?}"
    );
    let refused = get(addr, "/sub/", &[]);
    assert_eq!(refused.status_line, "HTTP/1.1 403 Forbidden");
    assert_eq!(
        refused.body_str(),
        "403 Forbidden\n",
        "no detail of the store's answer"
    );

    let open = get(addr, "/open.txt", &[("Range", "bytes=1-2")]);
    assert_eq!(open.status_line, "HTTP/1.1 206 Partial Content");
    assert_eq!(open.body, b"pe");
    for headers in [&[][..], &[("Range", "bytes=0-0")][..]] {
        let denied = get(addr, "/secret.txt", headers);
        assert_eq!(denied.status_line, "HTTP/1.1 403 Forbidden", "{headers:?}");
        assert_eq!(
            denied.body_str(),
            "403 Forbidden\n",
            "no detail of the store's answer"
        );
    }
}

/// A raw PUT (moto takes unsigned requests until IAM is enforced) with
/// `headers`; boto3's way of asking for a SHA-256 checksum included.
fn raw_put(port: u16, key: &str, data: &[u8], headers: &[(&str, &str)]) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut head = format!(
        "PUT /bucket/{key} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: {}\r\nConnection: close\r\n",
        data.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(data).unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

/// PUT `data` at `key` with a SHA-256 checksum, as boto3 asks for one; the
/// digest.
fn put_with_sha256(port: u16, key: &str, data: &[u8]) -> [u8; 32] {
    let sum: [u8; 32] = sha2::Sha256::digest(data).into();
    let b64 = base64::engine::general_purpose::STANDARD.encode(sum);
    let checksum = [
        ("x-amz-sdk-checksum-algorithm", "SHA256"),
        ("x-amz-checksum-sha256", b64.as_str()),
    ];
    raw_put(port, key, data, &checksum);
    sum
}

/// An object uploaded with a SHA-256 checksum of its content is not read to
/// learn its digest: the store's checksum is the ETag (one signed HEAD with
/// checksum mode, pinned by If-Match). One uploaded without is read once.
#[test]
fn a_stored_full_object_sha256_is_the_etag_without_a_read() {
    let Some((_moto, port, log)) = MotoLog::start() else {
        return;
    };
    create_bucket(port, "bucket");
    let summed = pattern(700_000);
    let plain: Vec<u8> = summed.iter().map(|b| b ^ 0x5a).collect();
    let sha = |d: &[u8]| -> [u8; 32] { sha2::Sha256::digest(d).into() };
    put_with_sha256(port, "pre/summed.bin", &summed);
    raw_put(port, "pre/plain.bin", &plain, &[]);
    let (_server, addr) = rangeserve(port);
    let reads = |key: &str| {
        let asked = log.asked(&format!("pre/{key}"));
        asked.iter().filter(|l| l.contains("\"GET ")).count()
    };
    for (name, data) in [("summed.bin", &summed), ("plain.bin", &plain)] {
        let mut c = Conn::new(addr);
        c.send("HEAD", &format!("/{name}"), &[]);
        let res = c.read_response(true);
        assert_eq!(res.status_line, "HTTP/1.1 200 OK", "{name}");
        let want = format!("\"{}\"", hex::encode(sha(data)));
        assert_eq!(res.header("ETag"), Some(want.as_str()), "{name}");
    }
    assert_eq!(reads("summed.bin"), 0, "the checksum made a read needless");
    assert_eq!(
        reads("plain.bin"),
        1,
        "without one, the object is read once"
    );
    // and the bytes served under that ETag are the object's
    let res = get(addr, "/summed.bin", &[("Range", "bytes=600000-600099")]);
    assert_eq!(res.status_line, "HTTP/1.1 206 Partial Content");
    assert_eq!(res.body, &summed[600_000..600_100]);
}

/// Two rangeserve processes over one bucket (an object uploaded in parts,
/// whose S3 ETag is an md5-of-md5s) answer alike, a download started on one
/// resumes with If-Range on the other, and once the object is replaced the
/// same resume gets the whole new object.
#[test]
fn two_replica_processes_over_one_bucket_agree_and_a_download_resumes_across_them() {
    let Some((_moto, port)) = start_moto() else {
        return;
    };
    create_bucket(port, "bucket");
    let store = client(port);
    let data: Vec<u8> = pattern(11 << 20).iter().map(|b| b ^ 0x77).collect();
    put_multipart(&store, "pre/f.bin", &data);
    let (_a, a) = rangeserve(port);
    let (_b, b) = rangeserve(port);
    let head = |addr| {
        let mut c = Conn::new(addr);
        c.send("HEAD", "/f.bin", &[]);
        c.read_response(true)
    };
    let (head_a, head_b) = (head(a), head(b));
    let etag = head_a.header("ETag").unwrap().to_string();
    let sha: [u8; 32] = sha2::Sha256::digest(&data).into();
    assert_eq!(etag, format!("\"{}\"", hex::encode(sha)));
    assert_eq!(head_b.header("ETag"), Some(etag.as_str()));
    assert_eq!(head_a.header("Repr-Digest"), head_b.header("Repr-Digest"));
    // the first 4 MB from replica a, the rest from b
    let first = get(a, "/f.bin", &[("Range", "bytes=0-3999999")]);
    assert_eq!(first.status_line, "HTTP/1.1 206 Partial Content");
    let rest = get(
        b,
        "/f.bin",
        &[("If-Range", &etag), ("Range", "bytes=4000000-")],
    );
    assert_eq!(rest.status_line, "HTTP/1.1 206 Partial Content");
    let mut stitched = first.body.clone();
    stitched.extend_from_slice(&rest.body);
    assert_eq!(<[u8; 32]>::from(sha2::Sha256::digest(&stitched)), sha);
    // replaced in the bucket: the same resume now gets the whole new object
    let new: Vec<u8> = data.iter().rev().copied().collect();
    put(&store, "pre/f.bin", &new);
    let again = get(
        b,
        "/f.bin",
        &[("If-Range", &etag), ("Range", "bytes=4000000-")],
    );
    assert_eq!(again.status_line, "HTTP/1.1 200 OK");
    assert!(again.body == new);
    assert_ne!(again.header("ETag"), Some(etag.as_str()));
}
