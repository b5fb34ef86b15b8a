//! Shared test harness: a real server on 127.0.0.1:0 in a background thread,
//! a raw-socket HTTP/1.1 client that keeps every byte, and a strict
//! multipart/byteranges parser.
#![allow(dead_code)] // each test binary uses a different part of the harness

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use rangeserve::{Config, Server};

/// A server running on its own runtime; stopped on drop.
pub struct TestServer {
    pub addr: SocketAddr,
    pub root: PathBuf,
    /// The server's hash cache, to count hash computations.
    pub hashes: std::sync::Arc<rangeserve::hashcache::HashCache>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    _dir: Option<tempfile::TempDir>,
}

impl TestServer {
    /// Serve `root` with `config` (root and port overridden).
    pub fn start_with(root: &Path, config: Config) -> TestServer {
        let config = Config {
            root: root.to_path_buf(),
            port: 0,
            shutdown_timeout: Duration::from_secs(2),
            ..config
        };
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let server = Server::bind(config).await.expect("bind");
                addr_tx
                    .send((server.local_addr(), server.hashes()))
                    .unwrap();
                server
                    .run(async {
                        let _ = stop_rx.await;
                    })
                    .await;
            });
        });
        let (addr, hashes) = addr_rx.recv().expect("server started");
        TestServer {
            addr,
            root: root.to_path_buf(),
            hashes,
            stop: Some(stop),
            thread: Some(thread),
            _dir: None,
        }
    }

    /// Serve the committed `fixtures/` directory with default options.
    pub fn fixtures() -> TestServer {
        Self::start_with(&fixtures_dir(), Config::default())
    }

    /// Serve a fresh temporary directory holding `files` (path, contents).
    pub fn with_files(files: &[(&str, &[u8])]) -> TestServer {
        Self::with_files_config(files, Config::default())
    }

    /// Like [`with_files`], with options.
    pub fn with_files_config(files: &[(&str, &[u8])], config: Config) -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        for (path, data) in files {
            let p = dir.path().join(path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, data).unwrap();
        }
        let mut s = Self::start_with(dir.path(), config);
        s._dir = Some(dir);
        s
    }

    /// GET `target` with extra header lines, on a fresh connection.
    pub fn get(&self, target: &str, headers: &[(&str, &str)]) -> RawResponse {
        self.request("GET", target, headers)
    }

    /// Any method, on a fresh connection.
    pub fn request(&self, method: &str, target: &str, headers: &[(&str, &str)]) -> RawResponse {
        let mut conn = self.connect();
        conn.send(method, target, headers);
        conn.read_response(method == "HEAD")
    }

    pub fn connect(&self) -> Conn {
        Conn::new(self.addr)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

pub fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

pub fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(fixtures_dir().join(name)).unwrap()
}

/// A deterministic, position-revealing test pattern.
pub fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| ((i * 31 + 7) % 251) as u8).collect()
}

/// One HTTP response exactly as received.
#[derive(Debug, Clone)]
pub struct RawResponse {
    pub status_line: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RawResponse {
    pub fn status(&self) -> u16 {
        self.status_line.split(' ').nth(1).unwrap().parse().unwrap()
    }

    /// The one value of header `name` (case-insensitive); panics if repeated.
    pub fn header(&self, name: &str) -> Option<&str> {
        let mut it = self
            .headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name));
        let first = it.next().map(|(_, v)| v.as_str());
        assert!(it.next().is_none(), "header {name} repeated");
        first
    }

    pub fn has(&self, name: &str) -> bool {
        self.header(name).is_some()
    }

    pub fn body_str(&self) -> &str {
        std::str::from_utf8(&self.body).unwrap()
    }
}

/// A raw client connection that can carry several requests (keep-alive).
pub struct Conn {
    pub reader: BufReader<TcpStream>,
}

impl Conn {
    pub fn new(addr: SocketAddr) -> Conn {
        let stream = TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        Conn {
            reader: BufReader::new(stream),
        }
    }

    pub fn send(&mut self, method: &str, target: &str, headers: &[(&str, &str)]) {
        let mut req = format!("{method} {target} HTTP/1.1\r\nHost: test\r\n");
        for (n, v) in headers {
            req.push_str(&format!("{n}: {v}\r\n"));
        }
        req.push_str("\r\n");
        self.send_raw(req.as_bytes());
    }

    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.reader.get_mut().write_all(bytes).unwrap();
    }

    /// Status line and headers.
    pub fn read_head(&mut self) -> (String, Vec<(String, String)>) {
        let mut status_line = String::new();
        self.reader.read_line(&mut status_line).unwrap();
        assert!(
            status_line.ends_with("\r\n"),
            "status line not CRLF-terminated: {status_line:?}"
        );
        let status_line = status_line.trim_end().to_string();
        let mut headers = Vec::new();
        loop {
            let mut line = String::new();
            self.reader.read_line(&mut line).unwrap();
            assert!(
                line.ends_with("\r\n"),
                "header line not CRLF-terminated: {line:?}"
            );
            if line == "\r\n" {
                break;
            }
            let (n, v) = line.trim_end().split_once(':').expect("header has a colon");
            headers.push((n.to_string(), v.trim().to_string()));
        }
        (status_line, headers)
    }

    /// A whole response framed by Content-Length (no body for HEAD, 204, 304).
    pub fn read_response(&mut self, head: bool) -> RawResponse {
        let (status_line, headers) = self.read_head();
        let mut res = RawResponse {
            status_line,
            headers,
            body: Vec::new(),
        };
        assert!(
            res.header("Transfer-Encoding").is_none(),
            "unexpected chunked framing"
        );
        let status = res.status();
        if head || status == 204 || status == 304 {
            return res;
        }
        let len: usize = res
            .header("Content-Length")
            .expect("every response is framed by Content-Length")
            .parse()
            .unwrap();
        let mut body = vec![0; len];
        self.reader.read_exact(&mut body).unwrap();
        res.body = body;
        res
    }

    /// Everything until the server closes the connection (or an error ends it).
    pub fn read_to_end(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        let mut buf = [0u8; 65536];
        loop {
            match self.reader.read(&mut buf) {
                Ok(0) | Err(_) => return out,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
    }

    /// True if the server has closed the connection (reads EOF).
    pub fn is_closed(&mut self) -> bool {
        self.reader
            .get_ref()
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut b = [0u8; 1];
        matches!(self.reader.read(&mut b), Ok(0) | Err(_))
    }
}

/// GET `target` with `Connection: close` on a fresh connection, read to EOF,
/// and check the body length against Content-Length when there is one.
pub fn get_close(addr: SocketAddr, target: &str, headers: &[(&str, &str)]) -> RawResponse {
    let mut conn = Conn::new(addr);
    let mut all = headers.to_vec();
    all.push(("Connection", "close"));
    conn.send("GET", target, &all);
    let (status_line, headers) = conn.read_head();
    let res = RawResponse {
        status_line,
        headers,
        body: conn.read_to_end(),
    };
    if let Some(len) = res.header("Content-Length") {
        assert_eq!(
            res.body.len().to_string(),
            len,
            "body length differs from Content-Length"
        );
    }
    res
}

/// One part of a multipart/byteranges body.
#[derive(Debug, Clone)]
pub struct Part {
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Part {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Parse a multipart/byteranges body strictly (RFC 2046 5.1, RFC 9110 14.6):
/// the body must be exactly `--B CRLF headers CRLF CRLF bytes` parts joined by
/// `CRLF --B`, closed by `CRLF --B-- CRLF`, each part's length from its Content-Range.
pub fn parse_multipart(content_type: &str, body: &[u8]) -> Vec<Part> {
    let boundary = content_type
        .strip_prefix("multipart/byteranges; boundary=")
        .expect("multipart/byteranges content type");
    let mut parts = Vec::new();
    let mut rest = body;
    let open = format!("--{boundary}\r\n");
    let close = format!("\r\n--{boundary}--\r\n");
    let next = format!("\r\n--{boundary}\r\n");
    assert!(
        rest.starts_with(open.as_bytes()),
        "body does not open with the boundary"
    );
    rest = &rest[open.len()..];
    loop {
        let end = rest
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("part headers end");
        let headers: Vec<(String, String)> = std::str::from_utf8(&rest[..end])
            .unwrap()
            .split("\r\n")
            .map(|l| {
                let (n, v) = l.split_once(": ").expect("part header");
                (n.to_string(), v.to_string())
            })
            .collect();
        rest = &rest[end + 4..];
        let cr = headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("Content-Range"))
            .expect("every part has Content-Range")
            .1
            .clone();
        let (first, last, _) = parse_content_range(&cr);
        let n = (last - first + 1) as usize;
        parts.push(Part {
            headers,
            body: rest[..n].to_vec(),
        });
        rest = &rest[n..];
        if rest == close.as_bytes() {
            return parts;
        }
        assert!(
            rest.starts_with(next.as_bytes()),
            "part not followed by a boundary"
        );
        rest = &rest[next.len()..];
    }
}

/// `bytes FIRST-LAST/LEN` -> (first, last, len).
pub fn parse_content_range(v: &str) -> (u64, u64, u64) {
    let spec = v.strip_prefix("bytes ").expect("bytes unit");
    let (range, len) = spec.split_once('/').unwrap();
    let (a, b) = range.split_once('-').unwrap();
    (a.parse().unwrap(), b.parse().unwrap(), len.parse().unwrap())
}

/// The address in the first stdout line of a spawned `rangeserve` (exactly
/// `listening on SCHEME://ADDR/`); its stdout must be piped.
pub fn listening_addr(child: &mut std::process::Child) -> SocketAddr {
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout piped"))
        .read_line(&mut line)
        .unwrap();
    line.trim()
        .strip_prefix("listening on ")
        .and_then(|url| url.split_once("://"))
        .and_then(|(_, rest)| rest.strip_suffix('/'))
        .unwrap_or_else(|| panic!("first line: {line:?}"))
        .parse()
        .unwrap()
}

/// Whether the external client `name` is installed. CI installs them and
/// sets RANGESERVE_REQUIRE_INTEROP=1, so there a missing one fails; elsewhere
/// the caller skips its test with a note.
pub fn tool(name: &str) -> bool {
    let found = std::process::Command::new(name)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            std::env::var_os("RANGESERVE_REQUIRE_INTEROP").is_none(),
            "{name} is required (RANGESERVE_REQUIRE_INTEROP is set)"
        );
        eprintln!("skipping: {name} is not installed");
    }
    found
}
