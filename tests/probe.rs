//! `rangeserve probe` closed loop, over real TCP on 127.0.0.1: rangeserve
//! serves a file in quirks mode and the probe must name exactly the quirk
//! of `/_quirks/Q/file` for every quirk Q of the catalogue (or, for the ones
//! no probe can see, nothing), with the right verdict; a correct rangeserve
//! passes every check. Edge cases: empty and 1-byte files, a server answering
//! 500, a closed port, redirects, HTTPS with a self-signed certificate, and
//! hostile peers (endless head, endless body) that must not hang the probe.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime};

use rangeserve::probe::coverage::{self, Reach};
use rangeserve::probe::tls::Trust;
use rangeserve::probe::{probe, CheckId, Options, ProbeError, Report, Status};
use rangeserve::quirks::catalogue::CATALOGUE;
use rangeserve::{Server, ServerHandle};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const BIN: &str = env!("CARGO_BIN_EXE_rangeserve");
const FILE_LEN: usize = 10_000;

/// A deterministic, position-revealing pattern.
fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| ((i * 31 + 7) % 251) as u8).collect()
}

/// A directory with `files`, each last modified a day ago (a date If-Range
/// is honoured only for a Last-Modified at least a second old).
fn dir_with(files: &[(&str, &[u8])]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let day_ago = SystemTime::now() - Duration::from_secs(86_400);
    for (name, data) in files {
        let p = dir.path().join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, data).unwrap();
        std::fs::File::options()
            .write(true)
            .open(&p)
            .unwrap()
            .set_modified(day_ago)
            .unwrap();
    }
    dir
}

async fn serve(root: &Path) -> ServerHandle {
    Server::builder()
        .root(root)
        .bind("127.0.0.1:0")
        .quirks_mode(true)
        .stall_limit(Duration::from_secs(30))
        .shutdown_timeout(Duration::from_secs(1))
        .spawn()
        .await
        .unwrap()
}

fn opts(timeout: Duration) -> Options {
    Options {
        timeout,
        trust: Trust::System,
    }
}

/// The checks that are neither PASS nor SKIP.
fn flagged(r: &Report) -> Vec<(CheckId, Status, Option<String>)> {
    r.findings
        .checks
        .iter()
        .filter(|c| !matches!(c.status, Status::Pass | Status::Skip))
        .map(|c| (c.id, c.status, c.quirk.map(|q| q.name().to_string())))
        .collect()
}

/// Probe `/_quirks/SPEC/file.bin`; the probe must report exactly `want`
/// (quirk specs as `--quirk` takes them), every flagged check must name one
/// of them, and the verdict must be `safe`.
async fn quirk_case(spec: &str, want: &[&str], safe: bool) {
    let data = pattern(FILE_LEN);
    let dir = dir_with(&[("file.bin", &data)]);
    let server = serve(dir.path()).await;
    // stall-after costs one timeout per stalled request: keep it short
    let timeout = if spec.starts_with("stall-after") {
        1
    } else {
        5
    };
    let url = format!("{}_quirks/{spec}/file.bin", server.url());
    let report = probe(&url, &opts(Duration::from_secs(timeout)))
        .await
        .unwrap_or_else(|e| panic!("{spec}: {e}"));
    let text = report.text();
    let got: Vec<String> = report.quirks().iter().map(|q| q.to_string()).collect();
    if want.iter().any(|w| w.starts_with("throttle=")) {
        // a measured rate: the name, and the value within 25%
        assert_eq!(report.quirks().len(), 1, "{text}");
        let q = report.quirks()[0];
        assert_eq!(q.name(), "throttle", "{text}");
        let rate: f64 = q.to_string()["throttle=".len()..].parse().unwrap();
        assert!((1536.0..=2560.0).contains(&rate), "{rate}\n{text}");
    } else {
        assert_eq!(got, want, "{spec}\n{text}");
    }
    for (id, status, quirk) in flagged(&report) {
        assert!(
            quirk
                .as_deref()
                .is_some_and(|q| want.iter().any(|w| w.starts_with(q))),
            "{spec}: check {} is {} without naming the quirk\n{text}",
            id.name(),
            status.name()
        );
    }
    assert_eq!(report.safe(), safe, "{spec}\n{text}");
    assert!(report.requests <= 24, "{}", report.requests);
    if !want.is_empty() {
        assert_eq!(
            report.reproduce(),
            format!("rangeserve --quirk {} DIR", got.join(",")),
            "{text}"
        );
    }
    server.shutdown().await;
}

macro_rules! quirk_cases {
    ($($test:ident: $spec:literal => [$($want:literal),*], safe: $safe:expr;)*) => {
        /// Every case's spec, to check that the catalogue is covered.
        const CASES: &[&str] = &[$($spec),*];
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $test() {
                quirk_case($spec, &[$($want),*], $safe).await
            }
        )*
    };
}

quirk_cases! {
    q_no_etag: "no-etag" => ["no-etag"], safe: true;
    q_weak_etag: "weak-etag" => ["weak-etag"], safe: false;
    q_unstable_etag: "unstable-etag" => ["unstable-etag"], safe: false;
    q_stale_etag: "stale-etag" => [], safe: true;
    q_no_last_modified: "no-last-modified" => ["no-last-modified"], safe: true;
    q_unquoted_etag: "unquoted-etag" => ["unquoted-etag"], safe: false;
    q_no_ranges: "no-ranges" => ["no-ranges"], safe: false;
    q_accept_ranges_none: "accept-ranges-none" => ["accept-ranges-none"], safe: false;
    q_no_accept_ranges: "no-accept-ranges" => ["no-accept-ranges"], safe: true;
    q_range_200: "range-200" => ["range-200"], safe: false;
    q_first_range_only: "first-range-only" => ["first-range-only"], safe: true;
    q_multi_range_200: "multi-range-200" => ["multi-range-200"], safe: true;
    q_ignore_if_range: "ignore-if-range" => ["ignore-if-range"], safe: false;
    q_bare_416: "bare-416" => ["bare-416"], safe: true;
    q_if_range_416: "if-range-416" => ["if-range-416"], safe: false;
    q_weak_if_range_206: "weak-if-range-206" => ["weak-if-range-206"], safe: true;
    q_head_lies: "head-lies" => ["head-lies"], safe: true;
    q_encoded_range: "encoded-range" => ["encoded-range"], safe: false;
    q_unknown_length: "unknown-length" => ["unknown-length"], safe: true;
    q_if_range_etag_200: "if-range-etag-200" => ["if-range-etag-200"], safe: false;
    q_range_from_zero: "range-from-zero" => ["range-from-zero"], safe: false;
    q_range_capped: "range-capped=1000" => ["range-capped=1000"], safe: true;
    q_no_content_range: "no-content-range" => ["no-content-range"], safe: false;
    q_bad_content_range: "bad-content-range" => ["bad-content-range"], safe: false;
    q_replica_flip: "replica-flip" => ["replica-flip"], safe: false;
    q_chunked: "chunked" => ["chunked"], safe: true;
    q_drop_after: "drop-after=1000" => ["drop-after=1000"], safe: false;
    q_drop_at: "drop-at=1000" => ["drop-at=1000"], safe: false;
    q_throttle: "throttle=2k" => ["throttle=2048"], safe: true;
    q_stall_after: "stall-after=1000" => ["stall-after=1000"], safe: false;
    q_fail_first: "fail-first=2" => ["fail-first=2"], safe: true;
    // beyond the probe's reach (README: the limits), reported as nothing
    q_throttle_fast: "throttle=256k" => [], safe: true;
    q_drop_after_beyond_window: "drop-after=5000" => [], safe: true;
    q_range_capped_beyond_window: "range-capped=5000" => [], safe: true;
    // a quirk with a value the catalogue example does not use
    q_drop_after_small: "drop-after=10" => ["drop-after=10"], safe: false;
    q_range_capped_small: "range-capped=7" => ["range-capped=7"], safe: true;
}

/// Every catalogue quirk has a case, and the ones expected to be reported
/// as nothing are exactly those the probe declares undetectable.
#[test]
fn the_cases_cover_the_catalogue() {
    for q in CATALOGUE {
        assert!(
            CASES.iter().any(|c| c.split('=').next() == Some(q.name)),
            "no probe case for {}",
            q.name
        );
    }
    let undetectable: Vec<&str> = coverage::undetectable().map(|(n, _)| n).collect();
    assert_eq!(undetectable, ["stale-etag"]);
    for c in coverage::COVERAGE {
        if let Reach::Check(..) = c.reach {
            assert!(CATALOGUE.iter().any(|q| q.name == c.name));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_correct_rangeserve_passes_every_check() {
    let data = pattern(FILE_LEN);
    let dir = dir_with(&[("file.bin", &data)]);
    let server = serve(dir.path()).await;
    for url in [
        format!("{}file.bin", server.url()),
        format!("{}_quirks/none/file.bin", server.url()),
    ] {
        let report = probe(&url, &opts(Duration::from_secs(5))).await.unwrap();
        let text = report.text();
        for c in &report.findings.checks {
            assert_eq!(
                c.status,
                Status::Pass,
                "{}: {}\n{text}",
                c.id.name(),
                c.detail
            );
        }
        assert!(report.quirks().is_empty(), "{text}");
        assert!(report.safe());
        assert_eq!(report.exit_code(), 0);
        assert_eq!(report.length, Some(FILE_LEN as u64));
        assert_eq!(report.reproduce(), "rangeserve DIR");
        assert_eq!(report.requests, 13, "{text}");
    }
    server.shutdown().await;
}

/// The whole text report of a correct server, line for line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_text_report_of_a_correct_server() {
    use base64::Engine as _;
    use sha2::Digest as _;
    let data = pattern(FILE_LEN);
    let dir = dir_with(&[("file.bin", &data)]);
    let server = serve(dir.path()).await;
    let url = format!("{}file.bin", server.url());
    let report = probe(&url, &opts(Duration::from_secs(5))).await.unwrap();
    let digest = sha2::Sha256::digest(&data);
    let tag = format!("\"{}\"", hex(&digest));
    let b64 = base64::engine::general_purpose::STANDARD.encode(digest);
    let mtime = std::fs::metadata(dir.path().join("file.bin"))
        .unwrap()
        .modified()
        .unwrap();
    let lm = httpdate::fmt_http_date(mtime);
    let want = format!(
        "probe {url}
  status           200 OK
  content-length   10000
  accept-ranges    bytes
  etag             {tag} (strong)
  last-modified    {lm}
  repr-digest      sha-256=:{b64}:
  content-type     application/octet-stream
  server           (none)
checks
  PASS availability   no 503
  PASS head           HEAD agrees with GET (Content-Length, Accept-Ranges, Content-Type, ETag)
  PASS accept-ranges  Accept-Ranges: bytes
  PASS single-range   bytes=0-4095: 206, Content-Range bytes 0-4095/10000; bytes=2048-2063: 206, Content-Range bytes 2048-2063/10000
  PASS open-range     bytes=9984-: 206, Content-Range bytes 9984-9999/10000
  PASS suffix-range   bytes=-16: 206, Content-Range bytes 9984-9999/10000
  PASS multi-range    bytes=0-0,-1: 206 multipart/byteranges, parts 0-0 and 9999-9999
  PASS unsatisfiable  bytes=10000-: 416, Content-Range bytes */10000
  PASS etag           strong ETag {tag}
  PASS last-modified  Last-Modified: {lm}
  PASS etag-stable    the same ETag on all 11 answers
  PASS if-range-tag   If-Range: {tag} -> 206 partial
  PASS if-range-date  If-Range: {lm} -> 206 partial
  PASS if-range-stale If-Range: \"rangeserve-probe-stale\" -> 200 with the whole body
  PASS if-range-weak  If-Range: W/{tag} -> 200 (weak never matches)
  PASS if-none-match  If-None-Match: {tag} -> 304
  PASS framing        bodies end where Content-Length says
  PASS overlap        22 overlapping pairs agree byte for byte
  PASS encoding       no Content-Encoding
  PASS speed          4096 body bytes in under 500 ms
quirks: none detected
verdict: SAFE: resuming with Range + If-Range works as RFC 9110 says
reproduce: rangeserve DIR
requests: 13
"
    );
    assert_eq!(report.text(), want);
    server.shutdown().await;
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_and_one_byte_files() {
    let dir = dir_with(&[("empty", b""), ("one", b"x")]);
    let server = serve(dir.path()).await;
    let empty = probe(
        &format!("{}empty", server.url()),
        &opts(Duration::from_secs(5)),
    )
    .await
    .unwrap();
    let text = empty.text();
    assert!(empty.safe() && empty.quirks().is_empty(), "{text}");
    assert_eq!(empty.length, Some(0));
    assert_eq!(flagged(&empty), vec![], "{text}");
    assert_eq!(
        empty.check(CheckId::SingleRange).status,
        Status::Skip,
        "{text}"
    );
    let unsat = empty.check(CheckId::Unsatisfiable);
    assert_eq!(
        (unsat.status, unsat.detail.as_str()),
        (Status::Pass, "bytes=0-: 416, Content-Range bytes */0"),
        "{text}"
    );
    let one = probe(
        &format!("{}one", server.url()),
        &opts(Duration::from_secs(5)),
    )
    .await
    .unwrap();
    let text = one.text();
    assert!(one.safe() && one.quirks().is_empty(), "{text}");
    assert_eq!(one.length, Some(1));
    assert_eq!(flagged(&one), vec![], "{text}");
    assert_eq!(
        one.check(CheckId::SingleRange).status,
        Status::Pass,
        "{text}"
    );
    assert_eq!(
        one.check(CheckId::MultiRange).status,
        Status::Skip,
        "{text}"
    );
    server.shutdown().await;
}

/// A one-shot raw HTTP peer on 127.0.0.1:0: each connection reads the
/// request head and gets `answer` (then the connection closes, unless `hold`).
async fn raw_peer(answer: &'static [u8], endless: Option<u8>) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                let mut got = Vec::new();
                while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => got.extend_from_slice(&buf[..n]),
                    }
                }
                if s.write_all(answer).await.is_err() {
                    return;
                }
                // endless: the same byte forever, until the peer goes away
                if let Some(b) = endless {
                    let chunk = vec![b; 16 * 1024];
                    while s.write_all(&chunk).await.is_ok() {}
                }
            });
        }
    });
    addr
}

#[tokio::test]
async fn a_server_answering_500_cannot_be_probed() {
    let addr = raw_peer(
        b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 5\r\n\r\noops!",
        None,
    )
    .await;
    let err = probe(&format!("http://{addr}/f"), &opts(Duration::from_secs(5)))
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("http://{addr}/f: GET answered 500 Internal Server Error; nothing to probe")
    );
}

/// What the probe sends: a recognisable User-Agent, no content coding, one
/// request per connection; a redirect stops it after the first request.
#[tokio::test]
async fn requests_say_who_sends_them() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let peer = tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let mut head = Vec::new();
        let mut buf = [0u8; 4096];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = s.read(&mut buf).await.unwrap();
            assert!(n > 0);
            head.extend_from_slice(&buf[..n]);
        }
        s.write_all(b"HTTP/1.1 302 Found\r\nLocation: /elsewhere\r\nContent-Length: 0\r\n\r\n")
            .await
            .unwrap();
        String::from_utf8(head).unwrap()
    });
    let err = probe(
        &format!("http://{addr}/f?x=1"),
        &opts(Duration::from_secs(5)),
    )
    .await
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("http://{addr}/f?x=1: 302 redirect to /elsewhere; probe that URL instead")
    );
    assert_eq!(
        peer.await.unwrap(),
        format!(
            "HEAD /f?x=1 HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: rangeserve-probe/{}\r\nAccept: */*\r\nAccept-Encoding: identity\r\nConnection: close\r\n\r\n",
            env!("CARGO_PKG_VERSION")
        )
    );
}

#[tokio::test]
async fn a_closed_port_is_unreachable() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let err = probe(
        &format!("http://127.0.0.1:{port}/f"),
        &opts(Duration::from_secs(5)),
    )
    .await
    .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.starts_with(&format!(
            "http://127.0.0.1:{port}/f: cannot connect to 127.0.0.1:{port}: "
        )),
        "{msg}"
    );
    assert!(matches!(err, ProbeError::Run { .. }));
}

#[tokio::test]
async fn an_endless_head_is_refused_and_an_endless_body_is_not_read() {
    // a head that never ends: bounded, one clear error
    let addr = raw_peer(b"HTTP/1.1 200 OK\r\nX-A: b\r\n", Some(b'a')).await;
    let started = std::time::Instant::now();
    let err = probe(&format!("http://{addr}/f"), &opts(Duration::from_secs(5)))
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .ends_with("response head larger than 65536 bytes or 256 fields"),
        "{err}"
    );
    // a body that never ends (no length): 4 KiB read, then the probe closes
    let addr = raw_peer(b"HTTP/1.1 200 OK\r\nContent-Type: x/y\r\n\r\n", Some(b'z')).await;
    let report = probe(&format!("http://{addr}/f"), &opts(Duration::from_secs(5)))
        .await
        .unwrap();
    let text = report.text();
    assert_eq!(report.length, None, "{text}");
    assert_eq!(
        report
            .quirks()
            .iter()
            .map(|q| q.to_string())
            .collect::<Vec<_>>(),
        ["no-etag", "no-last-modified", "no-ranges"],
        "{text}"
    );
    assert_eq!(report.requests, 3, "{text}");
    assert_eq!(
        report.check(CheckId::Framing).status,
        Status::Warn,
        "{text}"
    );
    assert!(!report.safe());
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
}

/// Malformed answers, each from a real peer answering every request the
/// same way: a clear error (exit 2), or a report that names the problem;
/// never a panic or a hang.
#[tokio::test]
async fn malformed_answers_are_reported() {
    let rows: &[(&'static [u8], &str)] = &[
        (b"SSH-2.0-OpenSSH_9.2\r\n\r\n", "not an HTTP/1.x response: \"SSH-2.0-OpenSSH_9.2\""),
        (b"HTTP/1.1 2000 OK\r\n\r\n", "not an HTTP/1.x response: \"HTTP/1.1 2000 OK\""),
        (b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n", "not an HTTP/1.x response: \"no colon here\""),
        (b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", "unusable framing: Content-Length: -1"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello", "unusable framing: conflicting Content-Length values"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 5", "the connection closed before a complete response head"),
        (b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 100 Continue\r\n\r\n", "not an HTTP/1.x response: \"too many 1xx responses\""),
    ];
    for (answer, want) in rows {
        let addr = raw_peer(answer, None).await;
        let url = format!("http://{addr}/f");
        let err = probe(&url, &opts(Duration::from_secs(5)))
            .await
            .unwrap_err();
        assert_eq!(err.to_string(), format!("{url}: {want}"));
    }
    // malformed chunked coding (a bad size; a size beyond u64): reported, not fatal
    for answer in [
        &b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"[..],
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffffffffff\r\nx",
    ] {
        let addr = raw_peer(answer, None).await;
        let report = probe(&format!("http://{addr}/f"), &opts(Duration::from_secs(5)))
            .await
            .unwrap();
        let framing = report.check(CheckId::Framing);
        assert_eq!(
            (framing.status, framing.detail.as_str()),
            (Status::Fail, "GET: malformed chunked coding"),
            "{}",
            report.text()
        );
        assert_eq!(report.exit_code(), 1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirects_are_reported_not_followed() {
    let dir = dir_with(&[("sub/f", b"x")]);
    let server = serve(dir.path()).await;
    let err = probe(
        &format!("{}sub", server.url()),
        &opts(Duration::from_secs(5)),
    )
    .await
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "{}sub: 301 redirect to /sub/; probe that URL instead",
            server.url()
        )
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_with_a_self_signed_certificate() {
    let data = pattern(FILE_LEN);
    let dir = dir_with(&[("file.bin", &data)]);
    let ca = dir.path().join("ca.pem");
    let server = Server::builder()
        .root(dir.path())
        .bind("127.0.0.1:0")
        .tls_self_signed(Some(ca.clone()))
        .spawn()
        .await
        .unwrap();
    let url = format!("{}file.bin", server.url());
    assert!(url.starts_with("https://127.0.0.1:"));
    // the system's roots do not know it: one clear error
    let err = probe(&url, &opts(Duration::from_secs(5)))
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("TLS handshake with 127.0.0.1 failed"), "{msg}");
    assert!(msg.contains("UnknownIssuer"), "{msg}");
    // trusting exactly that certificate, and --insecure: a full probe
    for trust in [Trust::File(ca.clone()), Trust::Anything] {
        let report = probe(
            &url,
            &Options {
                timeout: Duration::from_secs(5),
                trust: trust.clone(),
            },
        )
        .await
        .unwrap_or_else(|e| panic!("{trust:?}: {e}"));
        let text = report.text();
        assert!(report.safe() && report.quirks().is_empty(), "{text}");
        assert_eq!(flagged(&report), vec![], "{text}");
    }
    server.shutdown().await;
}

/// The command line: exit statuses, stdout and one stderr line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_command_line() {
    let data = pattern(FILE_LEN);
    let dir = dir_with(&[("file.bin", &data)]);
    let server = serve(dir.path()).await;
    let run = |args: Vec<String>| {
        tokio::task::spawn_blocking(move || Command::new(BIN).args(args).output().unwrap())
    };
    let ok = run(vec!["probe".into(), format!("{}file.bin", server.url())])
        .await
        .unwrap();
    let stdout = String::from_utf8(ok.stdout).unwrap();
    assert_eq!(ok.status.code(), Some(0), "{stdout}");
    assert!(ok.stderr.is_empty());
    assert!(stdout.contains("\nquirks: none detected\nverdict: SAFE: resuming with Range + If-Range works as RFC 9110 says\nreproduce: rangeserve DIR\nrequests: 13\n"), "{stdout}");
    let bad = run(vec![
        "probe".into(),
        "--json".into(),
        format!("{}_quirks/range-200/file.bin", server.url()),
    ])
    .await
    .unwrap();
    assert_eq!(bad.status.code(), Some(1));
    let doc: serde_json::Value = serde_json::from_slice(&bad.stdout).unwrap();
    assert_eq!(doc["version"], 1);
    assert_eq!(doc["safe"], false);
    assert_eq!(doc["quirks"][0]["name"], "range-200");
    assert_eq!(doc["quirks"][0]["severity"], "fail");
    assert_eq!(doc["reproduce"], "rangeserve --quirk range-200 DIR");
    assert_eq!(doc["basics"]["content_length"], FILE_LEN);
    assert_eq!(doc["basics"]["etag_kind"], "strong");
    assert_eq!(doc["length"], FILE_LEN);
    let checks = doc["checks"].as_array().unwrap();
    assert_eq!(checks.len(), CheckId::ALL.len());
    let single = checks.iter().find(|c| c["id"] == "single-range").unwrap();
    assert_eq!(
        (&single["status"], &single["quirk"]),
        (&"fail".into(), &"range-200".into())
    );
    for (args, want) in [
        (vec!["probe".to_string(), "ftp://x/".into()], "rangeserve probe: error: bad URL \"ftp://x/\": expected http://HOST[:PORT]/PATH or https://...\n".to_string()),
        (vec!["probe".into(), format!("{}nope", server.url())], format!("rangeserve probe: error: {}nope: GET answered 404 Not Found; nothing to probe\n", server.url())),
    ] {
        let out = run(args).await.unwrap();
        assert_eq!(out.status.code(), Some(2));
        assert_eq!(String::from_utf8(out.stderr).unwrap(), want);
        assert!(out.stdout.is_empty());
    }
    server.shutdown().await;
}

/// `rangeserve probe` is a subcommand only as the first argument: a
/// directory named probe is still served as `./probe`.
#[test]
fn a_directory_named_probe_is_still_served() {
    use std::io::BufRead;
    let dir = dir_with(&[("probe/hello.txt", b"hi")]);
    /// Kills the server however the test ends.
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut child = Kill(
        Command::new(BIN)
            .args(["./probe", "-p", "0", "-q"])
            .current_dir(dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let mut line = String::new();
    std::io::BufReader::new(child.0.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap()
        .to_string();
    let addr = url
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();
    let mut tcp = std::net::TcpStream::connect(addr).unwrap();
    use std::io::{Read, Write};
    tcp.write_all(b"GET /hello.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut res = String::new();
    tcp.read_to_string(&mut res).unwrap();
    drop(child);
    assert!(
        res.starts_with("HTTP/1.1 200 OK\r\n") && res.ends_with("\r\n\r\nhi"),
        "{res}"
    );
}
