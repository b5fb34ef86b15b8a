//! HTTPS over real TLS (rustls on both ends), with a client that trusts only
//! the certificate the server generated or was given: ranges byte for byte
//! over HTTP/1.1 and HTTP/2 (chosen by ALPN), certificate reload on SIGHUP
//! without dropping a connection, and every kind of bad material refused at
//! start with one line and exit 2.

mod common;

use std::io::Read;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::{parse_multipart, pattern};
use http_body_util::{BodyExt, Empty};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const BIN: &str = env!("CARGO_BIN_EXE_rangeserve");

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// A client configuration trusting only the PEM certificate at `ca`.
fn client_config(ca: &Path, alpn: &[u8]) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![alpn.to_vec()];
    Arc::new(config)
}

type Tls = tokio_rustls::client::TlsStream<tokio::net::TcpStream>;

async fn connect(addr: SocketAddr, ca: &Path, alpn: &[u8]) -> std::io::Result<Tls> {
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let connector = tokio_rustls::TlsConnector::from(client_config(ca, alpn));
    connector
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
}

/// One HTTP/1.1 exchange over TLS, read to the end (Connection: close).
async fn h1_exchange(addr: SocketAddr, ca: &Path, request: &str) -> Vec<u8> {
    let mut tls = connect(addr, ca, b"http/1.1").await.expect("TLS handshake");
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    tls.write_all(request.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    let _ = tls.read_to_end(&mut out).await;
    out
}

fn split(raw: &[u8]) -> (String, Vec<u8>) {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a head")
        + 4;
    (
        String::from_utf8(raw[..end].to_vec()).unwrap(),
        raw[end..].to_vec(),
    )
}

#[test]
fn self_signed_https_serves_ranges_over_http1_and_http2() {
    let dir = tempfile::tempdir().unwrap();
    let data = pattern(200_000);
    std::fs::write(dir.path().join("data.bin"), &data).unwrap();
    let ca = dir.path().join("ca.pem");
    let rt = rt();
    rt.block_on(async {
        let server = rangeserve::Server::builder()
            .root(dir.path())
            .bind("127.0.0.1:0")
            .tls_self_signed(Some(ca.clone()))
            .spawn()
            .await
            .unwrap();
        assert_eq!(server.scheme(), "https");
        assert!(server.url().starts_with("https://127.0.0.1:"));
        let addr = server.local_addr();

        // HTTP/1.1 by ALPN, exact bytes
        let raw = h1_exchange(
            addr,
            &ca,
            "GET /data.bin HTTP/1.1\r\nHost: localhost\r\nRange: bytes=1000-1999\r\nConnection: close\r\n\r\n",
        )
        .await;
        let (head, body) = split(&raw);
        assert!(head.starts_with("HTTP/1.1 206 Partial Content\r\n"), "{head}");
        assert!(head.contains("\r\nContent-Range: bytes 1000-1999/200000\r\n"), "{head}");
        assert_eq!(body, &data[1000..2000]);
        let raw = h1_exchange(
            addr,
            &ca,
            "GET /data.bin HTTP/1.1\r\nHost: localhost\r\nRange: bytes=0-0,-1\r\nConnection: close\r\n\r\n",
        )
        .await;
        let (head, body) = split(&raw);
        let ct = head
            .lines()
            .find_map(|l| l.strip_prefix("Content-Type: "))
            .unwrap();
        let parts = parse_multipart(ct, &body);
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].body, &data[..1]);
        assert_eq!(parts[1].body, &data[199_999..]);

        // HTTP/2 by ALPN
        let tls = connect(addr, &ca, b"h2").await.unwrap();
        assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
        let (mut send, conn) = hyper::client::conn::http2::handshake(
            hyper_util::rt::TokioExecutor::new(),
            hyper_util::rt::TokioIo::new(tls),
        )
        .await
        .unwrap();
        tokio::spawn(conn);
        for (range, a, b) in [
            ("bytes=0-499", 0, 499),
            ("bytes=-100", 199_900, 199_999),
            ("bytes=150000-", 150_000, 199_999),
        ] {
            let req = hyper::Request::builder()
                .uri("https://localhost/data.bin")
                .header("range", range)
                .body(Empty::<Bytes>::new())
                .unwrap();
            let res = send.send_request(req).await.unwrap();
            assert_eq!(res.status(), 206, "{range}");
            assert_eq!(res.version(), hyper::Version::HTTP_2);
            let want = format!("bytes {a}-{b}/200000");
            assert_eq!(res.headers()["content-range"].to_str().unwrap(), want);
            let body = res.into_body().collect().await.unwrap().to_bytes();
            assert_eq!(&body[..], &data[a..=b], "{range}");
        }
        server.shutdown().await;
    });
}

/// Write a certificate for localhost and its key as PEM; returns their paths.
fn write_cert(dir: &Path, stem: &str) -> (PathBuf, PathBuf) {
    let g = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let (cert, key) = (
        dir.join(format!("{stem}.pem")),
        dir.join(format!("{stem}.key")),
    );
    std::fs::write(&cert, g.cert.pem()).unwrap();
    std::fs::write(&key, g.key_pair.serialize_pem()).unwrap();
    (cert, key)
}

struct Proc {
    child: Child,
    addr: SocketAddr,
}

impl Proc {
    fn start(args: &[&std::ffi::OsStr]) -> Proc {
        let mut child = Command::new(BIN)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let addr = common::listening_addr(&mut child);
        Proc { child, addr }
    }

    fn stderr(mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let mut err = String::new();
        self.child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut err)
            .unwrap();
        err
    }
}

/// The SHA-256 fingerprint of the certificate a server presents now.
async fn presented(addr: SocketAddr, ca: &Path) -> String {
    let tls = connect(addr, ca, b"http/1.1").await.unwrap();
    let cert = &tls.get_ref().1.peer_certificates().unwrap()[0];
    rangeserve::tls::fingerprint(cert)
}

#[test]
fn sighup_reloads_the_certificate_and_open_connections_live_on() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.txt"), b"abc").unwrap();
    let (cert, key) = write_cert(dir.path(), "live");
    let first = std::fs::read(&cert).unwrap();
    let old_ca = dir.path().join("old-ca.pem");
    std::fs::write(&old_ca, &first).unwrap();
    let p = Proc::start(&[
        "--tls-cert".as_ref(),
        cert.as_os_str(),
        "--tls-key".as_ref(),
        key.as_os_str(),
        "-p".as_ref(),
        "0".as_ref(),
        dir.path().as_os_str(),
    ]);
    let rt = rt();
    let addr = p.addr;
    let (before, mut open) = rt.block_on(async {
        let fp = presented(addr, &old_ca).await;
        let open = connect(addr, &old_ca, b"http/1.1").await.unwrap();
        (fp, open)
    });
    // new material in place, then SIGHUP
    let (new_cert, new_key) = write_cert(dir.path(), "next");
    std::fs::rename(&new_cert, &cert).unwrap();
    std::fs::rename(&new_key, &key).unwrap();
    let new_ca = dir.path().join("new-ca.pem");
    std::fs::copy(&cert, &new_ca).unwrap();
    let pid = p.child.id() as i32;
    assert_eq!(unsafe_free_kill(pid, "HUP"), 0);
    std::thread::sleep(Duration::from_millis(500));
    rt.block_on(async {
        let after = presented(addr, &new_ca).await;
        assert_ne!(after, before, "new handshakes get the new certificate");
        // the connection opened before the reload still works
        open.write_all(b"GET /a.txt HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut out = Vec::new();
        let _ = open.read_to_end(&mut out).await;
        let (head, body) = split(&out);
        assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
        assert_eq!(body, b"abc");
        // a client trusting only the old certificate is refused now
        assert!(connect(addr, &old_ca, b"http/1.1").await.is_err());
    });
    // a bad file on reload keeps the current certificate
    std::fs::write(&key, b"not a key").unwrap();
    assert_eq!(unsafe_free_kill(pid, "HUP"), 0);
    std::thread::sleep(Duration::from_millis(500));
    rt.block_on(async {
        let still = presented(addr, &new_ca).await;
        assert_ne!(still, before);
    });
    let err = p.stderr();
    assert!(err.contains("TLS certificate reloaded"), "{err}");
    assert!(
        err.contains("TLS reload failed; keeping the current certificate"),
        "{err}"
    );
}

/// `kill -SIG pid` through the kill(1) command (no unsafe code in tests).
fn unsafe_free_kill(pid: i32, sig: &str) -> i32 {
    Command::new("kill")
        .args([format!("-{sig}"), pid.to_string()])
        .status()
        .unwrap()
        .code()
        .unwrap_or(-1)
}

#[test]
fn bad_material_is_one_line_and_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = write_cert(dir.path(), "a");
    let (_, other_key) = write_cert(dir.path(), "b");
    let mut params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    params.not_before = rcgen::date_time_ymd(2000, 1, 1);
    params.not_after = rcgen::date_time_ymd(2001, 1, 1);
    let kp = rcgen::KeyPair::generate().unwrap();
    let expired = dir.path().join("expired.pem");
    let expired_key = dir.path().join("expired.key");
    std::fs::write(&expired, params.self_signed(&kp).unwrap().pem()).unwrap();
    std::fs::write(&expired_key, kp.serialize_pem()).unwrap();
    let missing = dir.path().join("missing.pem");
    for (what, c, k, want) in [
        ("expired", &expired, &expired_key, "certificate expired"),
        (
            "mismatched",
            &cert,
            &other_key,
            "does not match the certificate",
        ),
        ("unreadable", &missing, &key, "cannot read"),
        ("key as certificate", &key, &key, "no certificate found"),
        ("certificate as key", &cert, &cert, "no private key found"),
    ] {
        let out = Command::new(BIN)
            .args(["--tls-cert".as_ref(), c.as_os_str()])
            .args(["--tls-key".as_ref(), k.as_os_str()])
            .args(["-p", "0"])
            .arg(dir.path())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{what}");
        assert!(out.stdout.is_empty(), "{what}: nothing on stdout");
        let err = String::from_utf8(out.stderr).unwrap();
        assert_eq!(err.lines().count(), 1, "{what}: one line: {err}");
        assert!(err.starts_with("rangeserve: error: "), "{what}: {err}");
        assert!(err.contains(want), "{what}: {err}");
    }
}

#[test]
fn a_plain_http_client_on_the_tls_port_gets_a_400_and_is_logged() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.txt"), b"abc").unwrap();
    let ca = dir.path().join("ca.pem");
    let p = Proc::start(&[
        "--tls-self-signed".as_ref(),
        "--tls-cert-out".as_ref(),
        ca.as_os_str(),
        "-p".as_ref(),
        "0".as_ref(),
        dir.path().as_os_str(),
    ]);
    for _ in 0..3 {
        let mut plain = std::net::TcpStream::connect(p.addr).unwrap();
        std::io::Write::write_all(&mut plain, b"GET /a.txt HTTP/1.1\r\nHost: a\r\n\r\n").unwrap();
        plain
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut got = Vec::new();
        plain.read_to_end(&mut got).unwrap();
        // a clear refusal in plaintext (never the file), then a clean close
        assert_eq!(
            String::from_utf8_lossy(&got),
            "HTTP/1.1 400 Bad Request\r\n\
             Content-Type: text/plain; charset=utf-8\r\n\
             Content-Length: 47\r\n\
             Connection: close\r\n\
             \r\n\
             400 Bad Request: this port speaks HTTPS (TLS)\r\n"
        );
    }
    // `--healthcheck http://...` of a TLS port: up (a 400 is below 500)
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_rangeserve"))
        .args(["--healthcheck", &format!("http://{}/", p.addr)])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let addr = p.addr;
    let raw = rt().block_on(h1_exchange(
        addr,
        &ca,
        "GET /a.txt HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    ));
    assert!(raw.ends_with(b"\r\n\r\nabc"), "still serving over TLS");
    let err = p.stderr();
    assert!(
        err.contains("TLS certificate SHA-256 fingerprint "),
        "{err}"
    );
    assert_eq!(
        err.matches("plain HTTP on the TLS port; answered 400")
            .count(),
        4,
        "{err}"
    );
}
