//! Load and fault tests (issue 13, item 6, and the bounded part of item 8),
//! over loopback TCP against an in-process server, each bounded in count and
//! time:
//!
//! - 1,000 concurrent keep-alive connections, each sending several requests
//!   (200, single-range 206, multipart/byteranges, 416), every answer checked
//!   exactly: status line, Content-Range, ETag, bytes against the file;
//! - 50 slowloris connections trickling a request head (a fifth of them the
//!   HTTP/2 preface) are closed at the header timeout, while normal requests
//!   keep being served in under a second;
//! - 50 clients that leave mid-body leave no descriptors behind in the server
//!   (`/proc/self/fd` returns to its baseline);
//! - a file rewritten in place, truncated, rewritten again and deleted while
//!   20 clients stream it: every complete body is exactly the version whose
//!   ETag it carries, anything else is cut short;
//! - clients that never read are cut after the send timeout while the server
//!   stays responsive, and a connection cap holds however many there are;
//! - clients beyond the cap wait in the listen backlog (at least 1024 deep),
//!   not in SYN retransmits.
//!
//! The tests run one at a time (a lock): they count the process's descriptors
//! and sockets, and measure latencies that a neighbour would disturb.

mod common;

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use base64::Engine as _;
use common::{parse_content_range, parse_multipart, pattern, Conn, RawResponse, TestServer};
use rangeserve::config::Limits;
use rangeserve::Config;
use sha2::{Digest as _, Sha256};

static SERIAL: Mutex<()> = Mutex::new(());

/// One test at a time (see the module doc).
fn serial() -> MutexGuard<'static, ()> {
    SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Default options with `f` applied to the limits. Hashes are settled at
/// once (window 0) unless a test wants the racy, verified path.
fn config(f: impl FnOnce(&mut Limits)) -> Config {
    let mut limits = Limits::default();
    f(&mut limits);
    Config {
        limits,
        settle_window: Some(Duration::ZERO),
        ..Config::default()
    }
}

/// `"<hex SHA-256>"`, the ETag the server gives these bytes.
fn etag_of(bytes: &[u8]) -> String {
    format!("\"{}\"", hex::encode(Sha256::digest(bytes)))
}

/// `sha-256=:<base64>:`, the Repr-Digest the server gives these bytes.
fn repr_digest_of(bytes: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(bytes));
    format!("sha-256=:{b64}:")
}

/// Pseudo-random bytes (xorshift), different for each seed.
fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// A well-mixed number from two small ones.
fn mix(a: usize, b: usize) -> u64 {
    let mut x = ((a as u64) << 16 | b as u64).wrapping_add(0x2545_F491_4F6C_DD1D);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// Entries of `/proc/self/fd` (the directory's own descriptor included,
/// the same in every count).
fn fd_count() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// A field of `/proc/self/status` in KiB (VmRSS, VmHWM).
fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn report(test: &str, what: std::fmt::Arguments<'_>) {
    eprintln!(
        "[load] {test}: {what}; test process VmRSS {} KiB, VmHWM {} KiB",
        status_kib("VmRSS"),
        status_kib("VmHWM")
    );
}

/// Soft and hard RLIMIT_NOFILE of this process (u64::MAX: unlimited).
fn fd_limits() -> (u64, u64) {
    let text = std::fs::read_to_string("/proc/self/limits").unwrap();
    let line = text
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    let f: Vec<&str> = line.split_whitespace().collect();
    let num = |s: &str| s.parse::<u64>().unwrap_or(u64::MAX);
    (num(f[3]), num(f[4]))
}

/// Make sure this process may open `need` descriptors. `unsafe_code` is
/// forbidden crate-wide (no `libc::setrlimit`) and rustix is built without
/// its `process` feature, so the soft limit is raised with prlimit(1).
fn ensure_fd_limit(need: u64) {
    let (soft, hard) = fd_limits();
    if soft >= need {
        return;
    }
    let want = hard.min(need.max(8192));
    let hard_text = if hard == u64::MAX {
        "unlimited".to_string()
    } else {
        hard.to_string()
    };
    let ran = std::process::Command::new("prlimit")
        .arg(format!("--pid={}", std::process::id()))
        .arg(format!("--nofile={want}:{hard_text}"))
        .status();
    let (soft, _) = fd_limits();
    assert!(
        soft >= need,
        "this test needs {need} descriptors; the soft RLIMIT_NOFILE is {soft} and \
         prlimit could not raise it ({ran:?}): run `ulimit -n {need}` first"
    );
}

/// Accepted connections of the in-process server listening on `port`: the
/// peer port of every TCP socket this process holds whose local port is
/// `port` (the listener excluded; connections still in the accept queue
/// belong to no descriptor and are not counted).
fn server_peers(port: u16) -> Vec<u16> {
    let mut inodes = HashSet::new();
    for entry in std::fs::read_dir("/proc/self/fd").unwrap().flatten() {
        if let Ok(target) = std::fs::read_link(entry.path()) {
            let inode = target
                .to_str()
                .and_then(|t| t.strip_prefix("socket:["))
                .and_then(|t| t.strip_suffix(']'))
                .and_then(|t| t.parse::<u64>().ok());
            inodes.extend(inode);
        }
    }
    let port_of = |addr: &str| u16::from_str_radix(addr.rsplit(':').next().unwrap(), 16).unwrap();
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let mine = f.len() > 9
                && port_of(f[1]) == port
                && f[3] != "0A" // LISTEN
                && f[9].parse::<u64>().is_ok_and(|i| inodes.contains(&i));
            mine.then(|| port_of(f[2]))
        })
        .collect()
}

/// Poll `f` every 20 ms until it holds or `limit` has passed; whether it held.
fn wait_for(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A meeting point for worker threads that cannot hang the test: a thread
/// that panics marks `failed`, and everyone waiting gives up.
struct Gate {
    arrived: AtomicUsize,
    open: AtomicBool,
}

impl Gate {
    const fn new() -> Gate {
        Gate {
            arrived: AtomicUsize::new(0),
            open: AtomicBool::new(false),
        }
    }

    /// A worker arrives and waits until the gate opens.
    fn pass(&self, failed: &AtomicBool) {
        self.arrived.fetch_add(1, Ordering::AcqRel);
        while !self.open.load(Ordering::Acquire) {
            assert!(!failed.load(Ordering::Acquire), "another thread failed");
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// The coordinator waits for `n` workers (60 s at most).
    fn wait_all(&self, n: usize, failed: &AtomicBool) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.arrived.load(Ordering::Acquire) < n {
            if failed.load(Ordering::Acquire) || Instant::now() > deadline {
                failed.store(true, Ordering::Release);
                panic!("a worker thread failed or hung; see its panic above");
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    fn open(&self) {
        self.open.store(true, Ordering::Release);
    }
}

/// Sets the flag if the thread that holds it panics.
struct FailOnPanic<'a>(&'a AtomicBool);

impl Drop for FailOnPanic<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.store(true, Ordering::Release);
        }
    }
}

/// One requested range: `a-b` or `-n`.
#[derive(Debug, Clone, Copy)]
enum Spec {
    FromTo(u64, u64),
    Suffix(u64),
}

impl Spec {
    /// The range it selects in a representation of `len` bytes, if satisfiable.
    fn resolve(self, len: u64) -> Option<(u64, u64)> {
        match self {
            Spec::FromTo(a, _) if a >= len => None,
            Spec::FromTo(a, b) => Some((a, b.min(len - 1))),
            Spec::Suffix(0) => None,
            Spec::Suffix(_) if len == 0 => None,
            Spec::Suffix(n) => Some((len - n.min(len), len - 1)),
        }
    }

    fn text(self) -> String {
        match self {
            Spec::FromTo(a, b) => format!("{a}-{b}"),
            Spec::Suffix(n) => format!("-{n}"),
        }
    }
}

/// The `Range` header value of `specs` (none: no header).
fn range_header(specs: &[Spec]) -> Option<String> {
    (!specs.is_empty()).then(|| {
        let list: Vec<String> = specs.iter().map(|s| s.text()).collect();
        format!("bytes={}", list.join(", "))
    })
}

/// Check a complete response to a GET with `specs` (none: no Range) against
/// the representation `file`. The ranges must not overlap or touch. Returns
/// what is wrong, if anything.
fn check_answer(
    status_line: &str,
    header: &dyn Fn(&str) -> Option<String>,
    body: &[u8],
    specs: &[Spec],
    file: &[u8],
) -> Result<(), String> {
    let len = file.len() as u64;
    let expect = |cond: bool, what: String| if cond { Ok(()) } else { Err(what) };
    let ranges: Vec<(u64, u64)> = specs.iter().filter_map(|s| s.resolve(len)).collect();
    if specs.is_empty() {
        expect(status_line == "HTTP/1.1 200 OK", status_line.to_string())?;
        expect(
            header("Content-Range").is_none(),
            "Content-Range on 200".into(),
        )?;
        return expect(
            body == file,
            format!("200 body differs ({} bytes)", body.len()),
        );
    }
    if ranges.is_empty() {
        expect(
            status_line == "HTTP/1.1 416 Range Not Satisfiable",
            format!("{status_line} for unsatisfiable {specs:?} of {len}"),
        )?;
        let cr = header("Content-Range");
        return expect(
            cr.as_deref() == Some(&format!("bytes */{len}")),
            format!("416 Content-Range {cr:?}, want bytes */{len}"),
        );
    }
    expect(
        status_line == "HTTP/1.1 206 Partial Content",
        format!("{status_line} for {specs:?} of {len}"),
    )?;
    let slice = |(a, b): (u64, u64)| &file[a as usize..=b as usize];
    if let [(a, b)] = ranges[..] {
        let cr = header("Content-Range");
        expect(
            cr.as_deref() == Some(&format!("bytes {a}-{b}/{len}")),
            format!("Content-Range {cr:?}, want bytes {a}-{b}/{len}"),
        )?;
        return expect(
            body == slice((a, b)),
            format!("206 body of {a}-{b} differs"),
        );
    }
    expect(
        header("Content-Range").is_none(),
        "Content-Range on multipart".into(),
    )?;
    let ct = header("Content-Type").unwrap_or_default();
    expect(
        ct.starts_with("multipart/byteranges; boundary="),
        format!("Content-Type {ct}"),
    )?;
    let parts = parse_multipart(&ct, body);
    expect(
        parts.len() == ranges.len(),
        format!("{} parts for {ranges:?}", parts.len()),
    )?;
    for (part, &(a, b)) in parts.iter().zip(&ranges) {
        let cr = part.header("Content-Range").unwrap_or_default();
        expect(
            parse_content_range(cr) == (a, b, len),
            format!("part Content-Range {cr}, want bytes {a}-{b}/{len}"),
        )?;
        expect(part.body == slice((a, b)), format!("part {a}-{b} differs"))?;
    }
    Ok(())
}

/// The request connection `i` sends in `round`, and what it asks.
fn mixed_request(i: usize, round: usize, mid_len: u64) -> (&'static str, Vec<Spec>) {
    let r = mix(i, round);
    match (i + round) % 5 {
        0 => ("/small.txt", vec![]),
        1 if r & 1 == 0 => {
            let a = r % (mid_len - 70_000);
            ("/mid.bin", vec![Spec::FromTo(a, a + (r >> 20) % 65_536)])
        }
        1 => ("/mid.bin", vec![Spec::Suffix(1 + (r >> 20) % 65_536)]),
        2 => {
            let a1 = r % 100_000;
            let a2 = 150_000 + (r >> 17) % 100_000;
            (
                "/mid.bin",
                vec![
                    Spec::FromTo(a1, a1 + (r >> 34) % 5_000),
                    Spec::FromTo(a2, a2 + (r >> 40) % 20_000),
                    Spec::Suffix(100),
                ],
            )
        }
        3 => (
            "/mid.bin",
            vec![Spec::FromTo(mid_len + r % 1000, u64::MAX / 2)],
        ),
        _ => ("/mid.bin", vec![]),
    }
}

#[test]
fn a_thousand_concurrent_keep_alive_connections_get_exact_answers() {
    const CONNS: usize = 1000;
    const THREADS: usize = 25;
    const ROUNDS: usize = 4;
    let _serial = serial();
    ensure_fd_limit(3 * CONNS as u64 + 500);
    let small = pattern(3_000);
    let mid = noise(1, 300_007); // above the small-file size: streamed from disk
    let s =
        TestServer::with_files_config(&[("small.txt", &small), ("mid.bin", &mid)], config(|_| {}));
    let (addr, port, mid_len) = (s.addr, s.addr.port(), mid.len() as u64);
    let etags = HashMap::from([("/small.txt", etag_of(&small)), ("/mid.bin", etag_of(&mid))]);
    let files = HashMap::from([("/small.txt", &small), ("/mid.bin", &mid)]);
    let failed = AtomicBool::new(false);
    let (connected, answered) = (Gate::new(), Gate::new());
    let by_status: Mutex<HashMap<u16, usize>> = Mutex::default();
    let start = Instant::now();
    std::thread::scope(|scope| {
        for t in 0..THREADS {
            let (failed, connected, answered) = (&failed, &connected, &answered);
            let (etags, files, by_status) = (&etags, &files, &by_status);
            scope.spawn(move || {
                let _flag = FailOnPanic(failed);
                let per = CONNS / THREADS;
                let mut conns: Vec<Conn> = (0..per).map(|_| Conn::new(addr)).collect();
                connected.pass(failed);
                let mut seen: HashMap<u16, usize> = HashMap::new();
                for round in 0..ROUNDS {
                    // one request in flight on every connection of this thread
                    let asks: Vec<_> = (0..per)
                        .map(|k| mixed_request(t * per + k, round, mid_len))
                        .collect();
                    for (conn, (path, specs)) in conns.iter_mut().zip(&asks) {
                        let range = range_header(specs);
                        let headers: Vec<(&str, &str)> =
                            range.iter().map(|r| ("Range", r.as_str())).collect();
                        conn.send("GET", path, &headers);
                    }
                    for (k, (conn, (path, specs))) in conns.iter_mut().zip(&asks).enumerate() {
                        let res = conn.read_response(false);
                        let header = |n: &str| res.header(n).map(str::to_string);
                        let what =
                            format!("conn {} round {round}: GET {path} {specs:?}", t * per + k);
                        if let Err(e) =
                            check_answer(&res.status_line, &header, &res.body, specs, files[path])
                        {
                            panic!("{what}: {e}");
                        }
                        if res.status() != 416 {
                            assert_eq!(res.header("ETag"), Some(etags[path].as_str()), "{what}");
                        }
                        assert_eq!(res.header("Connection"), None, "{what}: kept alive");
                        *seen.entry(res.status()).or_default() += 1;
                    }
                    if round == 0 {
                        answered.pass(failed);
                    }
                }
                let mut all = by_status.lock().unwrap();
                for (status, n) in seen {
                    *all.entry(status).or_default() += n;
                }
            });
        }
        connected.wait_all(THREADS, &failed);
        connected.open();
        answered.wait_all(THREADS, &failed);
        // every connection has had an answer and is still open: the server
        // holds all of them at once
        let held = server_peers(port).len();
        if held != CONNS {
            failed.store(true, Ordering::Release);
            panic!("the server holds {held} connections, want {CONNS}");
        }
        answered.open();
    });
    let elapsed = start.elapsed();
    let by_status = by_status.into_inner().unwrap();
    assert_eq!(by_status.values().sum::<usize>(), CONNS * ROUNDS);
    for status in [200, 206, 416] {
        assert!(
            by_status.get(&status).is_some_and(|&n| n >= CONNS / 5),
            "{by_status:?}"
        );
    }
    report(
        "1000 keep-alive connections",
        format_args!(
            "{} requests in {elapsed:?}, by status {by_status:?}",
            CONNS * ROUNDS
        ),
    );
}

/// The HTTP/2 connection preface (RFC 9113 3.4).
const H2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// What a slowloris client sends first: a request head without its end.
const HEAD: &[u8] = b"GET /a.txt HTTP/1.1\r\nHost: slow\r\nX-Slow: ";

/// A slowloris client.
struct Slow {
    c: TcpStream,
    /// When its first bytes were sent.
    began: Instant,
    /// Trickling the HTTP/2 preface rather than an HTTP/1.1 head.
    h2: bool,
    sent: usize,
    /// How long after `began` the server closed the connection.
    closed: Option<Duration>,
    /// Bytes received.
    got: Vec<u8>,
}

#[test]
fn slowloris_connections_are_cut_at_the_header_timeout_while_others_are_served() {
    const SLOW: usize = 50;
    let _serial = serial();
    let header_limit = Duration::from_secs(2);
    let small = pattern(5_000);
    let mid = noise(2, 300_007);
    let s = TestServer::with_files_config(
        &[("a.txt", &small), ("mid.bin", &mid)],
        config(|l| l.timeouts.header = header_limit),
    );
    let addr = s.addr;
    let slow_done = AtomicBool::new(false);
    let (slow, latencies) = std::thread::scope(|scope| {
        let slow_done = &slow_done;
        let slow = scope.spawn(move || {
            let _done = FailOnPanic(slow_done);
            // every fifth trickles the HTTP/2 connection preface instead
            // (never completing it): the protocol sniffing is bounded too
            let mut conns: Vec<Slow> = (0..SLOW)
                .map(|i| {
                    let mut c = TcpStream::connect(addr).unwrap();
                    let h2 = i % 5 == 0;
                    let first: &[u8] = if h2 { &H2_PREFACE[..1] } else { HEAD };
                    c.write_all(first).unwrap();
                    let began = Instant::now();
                    c.set_nonblocking(true).unwrap();
                    Slow {
                        c,
                        began,
                        h2,
                        sent: first.len(),
                        closed: None,
                        got: Vec::new(),
                    }
                })
                .collect();
            let deadline = Instant::now() + header_limit + Duration::from_secs(4);
            while conns.iter().any(|c| c.closed.is_none()) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(200));
                for slow in conns.iter_mut().filter(|c| c.closed.is_none()) {
                    let mut buf = [0u8; 4096];
                    let gone = loop {
                        match slow.c.read(&mut buf) {
                            Ok(0) => break true,
                            Ok(n) => slow.got.extend_from_slice(&buf[..n]),
                            Err(e) if e.kind() == ErrorKind::WouldBlock => break false,
                            Err(_) => break true,
                        }
                    };
                    let next: &[u8] = match slow.h2 {
                        // one byte short of the whole preface at most
                        true if slow.sent + 1 < H2_PREFACE.len() => {
                            &H2_PREFACE[slow.sent..=slow.sent]
                        }
                        true => b"",
                        false => b"a",
                    };
                    let gone = gone
                        || matches!(slow.c.write(next), Err(e) if e.kind() != ErrorKind::WouldBlock);
                    slow.sent += next.len();
                    if gone {
                        slow.closed = Some(slow.began.elapsed());
                    }
                }
            }
            slow_done.store(true, Ordering::Release);
            conns
                .into_iter()
                .map(|slow| (slow.closed, slow.got, slow.h2))
                .collect::<Vec<_>>()
        });
        // normal traffic while they trickle (fresh connections and one
        // kept alive), and half a second more
        let mut latencies: Vec<(Duration, bool)> = Vec::new();
        let mut kept = Conn::new(addr);
        let mut after = None;
        for i in 0.. {
            let during = !slow_done.load(Ordering::Acquire);
            if !during
                && *after.get_or_insert_with(Instant::now) + Duration::from_millis(500)
                    < Instant::now()
            {
                break;
            }
            let a = mix(i, 7) % 200_000;
            let specs = [Spec::FromTo(a, a + 50_000)];
            let range = range_header(&specs).unwrap();
            let t = Instant::now();
            let (res, file, specs): (RawResponse, &[u8], &[Spec]) = match i % 3 {
                0 => (s.get("/a.txt", &[]), small.as_slice(), &[][..]),
                1 => (
                    s.get("/mid.bin", &[("Range", &range)]),
                    mid.as_slice(),
                    &specs[..],
                ),
                _ => {
                    kept.send("GET", "/mid.bin", &[("Range", &range)]);
                    (kept.read_response(false), mid.as_slice(), &specs[..])
                }
            };
            latencies.push((t.elapsed(), during));
            let header = |n: &str| res.header(n).map(str::to_string);
            if let Err(e) = check_answer(&res.status_line, &header, &res.body, specs, file) {
                panic!("normal request {i}: {e}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        (slow.join().unwrap(), latencies)
    });
    let during: Vec<Duration> = latencies.iter().filter(|l| l.1).map(|l| l.0).collect();
    let max = latencies.iter().map(|l| l.0).max().unwrap();
    assert!(
        during.len() >= 20,
        "only {} normal requests while the slow clients trickled",
        during.len()
    );
    assert!(
        max < Duration::from_secs(1),
        "a normal request took {max:?}"
    );
    let mut closed_after = Vec::new();
    for (n, (closed, got, h2)) in slow.iter().enumerate() {
        let closed =
            closed.unwrap_or_else(|| panic!("slow client {n} (h2: {h2}) still open after 6 s"));
        assert!(
            closed >= header_limit - Duration::from_millis(100)
                && closed < header_limit + Duration::from_millis(1500),
            "slow client {n} (h2: {h2}) closed after {closed:?}, want {header_limit:?} + 200 ms polling"
        );
        assert!(
            !got.starts_with(b"HTTP/1.1 2"),
            "slow client {n} was answered: {:?}",
            String::from_utf8_lossy(got)
        );
        closed_after.push(closed);
    }
    closed_after.sort();
    report(
        "50 slowloris",
        format_args!(
            "cut after {:?}..{:?}; {} normal requests during, {} in all, max latency {max:?}",
            closed_after[0],
            closed_after[SLOW - 1],
            during.len(),
            latencies.len()
        ),
    );
}

#[test]
fn clients_leaving_mid_body_leave_no_descriptors_behind() {
    const CLIENTS: usize = 50;
    let _serial = serial();
    let big = noise(3, 8 << 20);
    // the default settling window: the file was just written, so every body
    // is verified, a whole-file hash running alongside it
    let s = TestServer::with_files_config(
        &[("big.bin", &big)],
        Config {
            settle_window: None,
            ..config(|_| {})
        },
    );
    let port = s.addr.port();
    // warm up: the file's state (one cached descriptor) and hash exist
    let res = common::get_close(s.addr, "/big.bin", &[]);
    assert_eq!(res.body, big);
    assert_eq!(res.header("ETag"), Some(etag_of(&big).as_str()));
    assert!(wait_for(Duration::from_secs(5), || server_peers(port).is_empty()));
    let baseline = fd_count();

    let started = Instant::now();
    let clients: Vec<TcpStream> = (0..CLIENTS)
        .map(|i| {
            let mut c = TcpStream::connect(s.addr).unwrap();
            c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            let range = match i % 4 {
                0 | 1 => String::new(),
                2 => "Range: bytes=1000000-\r\n".to_string(),
                _ => "Range: bytes=0-99,4000000-7999999\r\n".to_string(),
            };
            write!(c, "GET /big.bin HTTP/1.1\r\nHost: load\r\n{range}\r\n").unwrap();
            c
        })
        .collect();
    // most read part of the body; every fifth leaves before any answer
    let mut partial = 0;
    for (i, c) in clients.iter().enumerate().filter(|(i, _)| i % 5 != 0) {
        let want = 100_000 + i * 20_000;
        let mut got = 0;
        let mut buf = vec![0u8; 65_536];
        while got < want {
            match (&*c).read(&mut buf) {
                Ok(0) | Err(_) => panic!("client {i} cut after {got} bytes"),
                Ok(n) => got += n,
            }
        }
        partial += 1;
    }
    assert!(
        wait_for(Duration::from_secs(5), || server_peers(port).len()
            == CLIENTS),
        "the server holds {} of the {CLIENTS} connections",
        server_peers(port).len()
    );
    let busy = fd_count();
    assert!(
        busy >= baseline + 2 * CLIENTS,
        "{busy} descriptors with {CLIENTS} connections open, baseline {baseline}"
    );
    drop(clients);
    let after_drop = fd_count();
    let settled = wait_for(Duration::from_secs(5), || fd_count() <= baseline);
    let left = fd_count();
    assert!(
        settled,
        "{left} descriptors 5 s after the clients left, baseline {baseline}; \
         server connections still open: {}",
        server_peers(port).len()
    );
    assert!(server_peers(port).is_empty());
    let returned = started.elapsed();
    // and the server still serves the file, exactly
    let res = common::get_close(s.addr, "/big.bin", &[("Range", "bytes=8000000-")]);
    assert_eq!(res.status_line, "HTTP/1.1 206 Partial Content");
    assert_eq!(res.body, &big[8_000_000..]);
    report(
        "50 clients leaving mid-body",
        format_args!(
            "descriptors: baseline {baseline}, {busy} with the clients connected \
             ({partial} of them mid-body), {after_drop} right after they left, {left} \
             within {returned:?} of the first request"
        ),
    );
}

/// What one client of the changing-file test got.
enum Got {
    /// The connection ended before a complete head.
    NoHead,
    Answer {
        status_line: String,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
        /// Content-Length bytes arrived.
        complete: bool,
        /// The read timed out (the server neither sent nor closed).
        stalled: bool,
    },
}

/// GET on a fresh connection, reading the body 64 KiB at a time with a
/// pause after each piece (the file changes under a body in flight).
fn get_slowly(addr: SocketAddr, path: &str, range: Option<&str>, pause: Duration) -> Got {
    let Ok(stream) = TcpStream::connect(addr) else {
        panic!("connect failed")
    };
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut req = format!("GET {path} HTTP/1.1\r\nHost: load\r\nConnection: close\r\n");
    if let Some(r) = range {
        req.push_str(&format!("Range: {r}\r\n"));
    }
    req.push_str("\r\n");
    if (&stream).write_all(req.as_bytes()).is_err() {
        return Got::NoHead;
    }
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    let mut read_line = |line: &mut String| {
        line.clear();
        matches!(reader.read_line(line), Ok(n) if n > 0) && line.ends_with("\r\n")
    };
    if !read_line(&mut line) {
        return Got::NoHead;
    }
    let status_line = line.trim_end().to_string();
    let mut headers = Vec::new();
    loop {
        if !read_line(&mut line) {
            return Got::NoHead;
        }
        if line == "\r\n" {
            break;
        }
        let (n, v) = line.trim_end().split_once(':').expect("header has a colon");
        headers.push((n.to_string(), v.trim().to_string()));
    }
    let len: usize = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("Content-Length"))
        .expect("Content-Length")
        .1
        .parse()
        .unwrap();
    let mut body = Vec::with_capacity(len);
    let mut buf = vec![0u8; 65_536];
    let mut stalled = false;
    while body.len() < len {
        let want = buf.len().min(len - body.len());
        match reader.read(&mut buf[..want]) {
            Ok(0) => break,
            Ok(n) => body.extend_from_slice(&buf[..n]),
            Err(e) => {
                stalled = matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut);
                break;
            }
        }
        std::thread::sleep(pause);
    }
    Got::Answer {
        status_line,
        headers,
        complete: body.len() == len,
        body,
        stalled,
    }
}

#[test]
fn a_file_changed_under_twenty_streams_never_mixes_versions() {
    const CLIENTS: usize = 20;
    // more than the socket buffers hold: the server is still sending when the file changes
    const LEN: usize = 6 << 20;
    const PHASE: Duration = Duration::from_millis(700);
    let _serial = serial();
    // versions: written, rewritten in place (same size), truncated,
    // rewritten in place to full size, deleted
    let v0 = noise(10, LEN);
    let v1 = noise(11, LEN);
    let v2 = v1[..LEN * 5 / 8].to_vec();
    let v3 = noise(13, LEN);
    // the default settling window: every hash is racy, every body verified
    let s = TestServer::with_files_config(
        &[("live.bin", &v0)],
        Config {
            settle_window: None,
            ..config(|_| {})
        },
    );
    let path = s.root.join("live.bin");
    let versions: Mutex<HashMap<String, (usize, Vec<u8>)>> =
        Mutex::new(HashMap::from([(etag_of(&v0), (0, v0.clone()))]));
    let asks: [&[Spec]; 5] = [
        &[],
        &[Spec::FromTo(100_000, 5_999_999)],
        &[Spec::Suffix(3_000_000)],
        &[Spec::FromTo(0, 65_535), Spec::FromTo(4_000_000, 4_100_000)],
        &[Spec::FromTo(5_000_000, 5_100_000)],
    ];
    let stop = AtomicBool::new(false);
    let deleted = Mutex::new(None::<Instant>);
    let failed = AtomicBool::new(false);
    #[derive(Default, Debug)]
    struct Tally {
        complete: [usize; 4],
        unsatisfiable: usize,
        cut: usize,
        no_head: usize,
        not_found: usize,
        retry_later: usize,
        problems: Vec<String>,
    }
    let tally = Mutex::new(Tally::default());
    std::thread::scope(|scope| {
        for t in 0..CLIENTS {
            let (stop, deleted, failed, versions, tally) =
                (&stop, &deleted, &failed, &versions, &tally);
            let addr = s.addr;
            scope.spawn(move || {
                let _flag = FailOnPanic(failed);
                for i in (t..).step_by(3) {
                    if stop.load(Ordering::Acquire) || failed.load(Ordering::Acquire) {
                        break;
                    }
                    let specs = asks[i % asks.len()];
                    let range = range_header(specs);
                    let got = get_slowly(
                        addr,
                        "/live.bin",
                        range.as_deref(),
                        Duration::from_millis(3),
                    );
                    let mut tally = tally.lock().unwrap();
                    let Got::Answer {
                        status_line,
                        headers,
                        body,
                        complete,
                        stalled,
                    } = got
                    else {
                        tally.no_head += 1;
                        continue;
                    };
                    let header = |n: &str| {
                        headers
                            .iter()
                            .find(|(h, _)| h.eq_ignore_ascii_case(n))
                            .map(|(_, v)| v.clone())
                    };
                    let what = format!("GET {range:?}: {status_line}");
                    if stalled {
                        tally.problems.push(format!("{what}: stalled 10 s"));
                        continue;
                    }
                    if !complete {
                        tally.cut += 1;
                        continue;
                    }
                    match status_line.as_str() {
                        "HTTP/1.1 404 Not Found" => {
                            if deleted.lock().unwrap().is_none() {
                                tally.problems.push(format!("{what} before the delete"));
                            }
                            tally.not_found += 1;
                            continue;
                        }
                        "HTTP/1.1 503 Service Unavailable" => {
                            if header("Retry-After").as_deref() != Some("1") {
                                tally
                                    .problems
                                    .push(format!("{what} without Retry-After: 1"));
                            }
                            tally.retry_later += 1;
                            continue;
                        }
                        "HTTP/1.1 416 Range Not Satisfiable" => {
                            // of a version we wrote, and unsatisfiable for it
                            let cr = header("Content-Range").unwrap_or_default();
                            let total = cr
                                .strip_prefix("bytes */")
                                .and_then(|n| n.parse::<u64>().ok());
                            let fits = versions.lock().unwrap().values().any(|(_, v)| {
                                Some(v.len() as u64) == total
                                    && specs.iter().all(|s| s.resolve(v.len() as u64).is_none())
                            });
                            if !fits {
                                tally.problems.push(format!("{what}: Content-Range {cr}"));
                            }
                            tally.unsatisfiable += 1;
                            continue;
                        }
                        _ => {}
                    }
                    let etag = header("ETag").unwrap_or_default();
                    let versions = versions.lock().unwrap();
                    let Some((n, file)) = versions.get(&etag) else {
                        tally.problems.push(format!(
                            "{what}: complete body under ETag {etag}, no version we wrote"
                        ));
                        continue;
                    };
                    if header("Repr-Digest") != Some(repr_digest_of(file)) {
                        tally
                            .problems
                            .push(format!("{what}: Repr-Digest differs from ETag {etag}"));
                    }
                    match check_answer(&status_line, &header, &body, specs, file) {
                        Ok(()) => tally.complete[*n] += 1,
                        Err(e) => tally.problems.push(format!("{what}: version {n}: {e}")),
                    }
                }
            });
        }
        let change = |n: usize, bytes: &[u8], how: &dyn Fn()| {
            std::thread::sleep(PHASE);
            versions
                .lock()
                .unwrap()
                .insert(etag_of(bytes), (n, bytes.to_vec()));
            how();
        };
        let in_place = |bytes: &[u8]| {
            let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
            f.write_all_at(bytes, 0).unwrap();
        };
        change(1, &v1, &|| in_place(&v1));
        change(2, &v2, &|| {
            let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
            f.set_len(v2.len() as u64).unwrap();
        });
        change(3, &v3, &|| in_place(&v3));
        std::thread::sleep(PHASE);
        *deleted.lock().unwrap() = Some(Instant::now());
        std::fs::remove_file(&path).unwrap();
        std::thread::sleep(PHASE);
        stop.store(true, Ordering::Release);
    });
    let tally = tally.into_inner().unwrap();
    assert!(
        tally.problems.is_empty(),
        "{} problems, first ones: {:#?}",
        tally.problems.len(),
        &tally.problems[..tally.problems.len().min(10)]
    );
    assert!(
        tally.complete.iter().all(|&n| n > 0),
        "every version was served whole at least once: {tally:?}"
    );
    assert!(tally.cut > 0, "a change cut a body in flight: {tally:?}");
    assert!(tally.not_found > 0, "the deleted file is gone: {tally:?}");
    report("changing file under 20 streams", format_args!("{tally:?}"));
}

/// `n` clients that each ask for `path` and never read a byte.
fn never_readers(addr: SocketAddr, path: &str, n: usize) -> Vec<TcpStream> {
    (0..n)
        .map(|_| {
            let mut c = TcpStream::connect(addr).unwrap();
            write!(c, "GET {path} HTTP/1.1\r\nHost: load\r\n\r\n").unwrap();
            c
        })
        .collect()
}

/// Read what a never-reader was sent, now that the server has given up on
/// it: the head of a 200 and fewer body bytes than announced, then the end.
fn drain_cut_response(c: &mut TcpStream, full: usize) -> usize {
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut head = [0u8; 17];
    c.read_exact(&mut head).unwrap();
    assert_eq!(&head, b"HTTP/1.1 200 OK\r\n");
    let mut total = head.len();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        match c.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => total += n,
            Err(e) if e.kind() == ErrorKind::ConnectionReset => break,
            Err(e) => panic!("after {total} bytes: {e}"),
        }
    }
    assert!(total < full, "{total} bytes: the body was cut");
    total
}

/// Samples of a server's connections from `peers`: (time, how many).
fn sample_until(
    port: u16,
    peers: &HashSet<u16>,
    limit: Duration,
    mut done: impl FnMut(usize) -> bool,
) -> Vec<(Instant, usize)> {
    let deadline = Instant::now() + limit;
    let mut samples = Vec::new();
    loop {
        let n = server_peers(port)
            .into_iter()
            .filter(|p| peers.contains(p))
            .count();
        samples.push((Instant::now(), n));
        if done(n) || Instant::now() > deadline {
            return samples;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn clients_that_never_read_are_cut_after_the_send_timeout() {
    const CLIENTS: usize = 100;
    let _serial = serial();
    let big = noise(4, 16 << 20); // far more than the socket buffers hold
    let small = pattern(4_000);
    let s = TestServer::with_files_config(
        &[("big.bin", &big), ("small.txt", &small)],
        config(|l| l.timeouts.send = Duration::from_secs(1)),
    );
    let port = s.addr.port();
    let first_sent = Instant::now();
    let mut clients = never_readers(s.addr, "/big.bin", CLIENTS);
    let all_sent = Instant::now();
    let peers: HashSet<u16> = clients
        .iter()
        .map(|c| c.local_addr().unwrap().port())
        .collect();
    let (samples, latencies) = std::thread::scope(|scope| {
        let sampler = scope.spawn(|| {
            let mut full = false;
            sample_until(port, &peers, Duration::from_secs(6), |n| {
                full |= n == CLIENTS;
                full && n == 0
            })
        });
        // normal requests on fresh connections meanwhile
        let mut latencies = Vec::new();
        while !sampler.is_finished() {
            let t = Instant::now();
            let res = s.get("/small.txt", &[("Range", "bytes=-1000")]);
            latencies.push(t.elapsed());
            assert_eq!(res.status_line, "HTTP/1.1 206 Partial Content");
            assert_eq!(res.body, &small[3_000..]);
            std::thread::sleep(Duration::from_millis(50));
        }
        (sampler.join().unwrap(), latencies)
    });
    let full_at = samples.iter().find(|s| s.1 == CLIENTS).map(|s| s.0);
    let full_at = full_at.expect("the server held every never-reader at once");
    let first_cut = samples
        .iter()
        .find(|s| s.0 > full_at && s.1 < CLIENTS)
        .expect("never-readers cut within 6 s")
        .0;
    let (last_at, last_n) = *samples.last().unwrap();
    assert_eq!(
        last_n,
        0,
        "all cut within 6 s: {:?}",
        &samples[samples.len().saturating_sub(5)..]
    );
    let (first_cut, all_cut) = (first_cut - first_sent, last_at - all_sent);
    assert!(
        first_cut >= Duration::from_millis(900),
        "a never-reader was cut after {first_cut:?}, before the 1 s send timeout"
    );
    assert!(
        all_cut < Duration::from_secs(3),
        "all cut after {all_cut:?}"
    );
    let max = *latencies.iter().max().unwrap();
    assert!(
        latencies.len() >= 10 && max < Duration::from_secs(1),
        "{latencies:?}"
    );
    let received: Vec<usize> = clients
        .iter_mut()
        .map(|c| drain_cut_response(c, big.len()))
        .collect();
    report(
        "100 never-readers, send timeout 1 s",
        format_args!(
            "first cut {first_cut:?} after the first request, all cut {all_cut:?} after the last; \
             {} normal requests meanwhile, max latency {max:?}; each got {}..{} bytes",
            latencies.len(),
            received.iter().min().unwrap(),
            received.iter().max().unwrap()
        ),
    );
}

#[test]
fn a_connection_cap_holds_however_many_clients_never_read() {
    const CAP: usize = 100;
    const CLIENTS: usize = 150;
    let _serial = serial();
    let big = noise(5, 16 << 20);
    let s = TestServer::with_files_config(
        &[("big.bin", &big)],
        config(|l| {
            l.timeouts.send = Duration::from_secs(1);
            l.max_connections = CAP;
        }),
    );
    let port = s.addr.port();
    let start = Instant::now();
    let mut clients = never_readers(s.addr, "/big.bin", CLIENTS);
    let peers: HashSet<u16> = clients
        .iter()
        .map(|c| c.local_addr().unwrap().port())
        .collect();
    let mut seen = HashSet::new();
    let samples = sample_until(port, &peers, Duration::from_secs(8), |n| {
        seen.extend(server_peers(port).into_iter().filter(|p| peers.contains(p)));
        seen.len() == CLIENTS && n == 0
    });
    let elapsed = start.elapsed();
    let max = samples.iter().map(|s| s.1).max().unwrap();
    assert_eq!(max, CAP, "the server held at most {CAP}, and that many");
    assert_eq!(seen.len(), CLIENTS, "every client was served in turn");
    assert_eq!(samples.last().unwrap().1, 0, "and cut after {elapsed:?}");
    for c in &mut clients {
        drain_cut_response(c, big.len());
    }
    let res = s.get("/big.bin", &[("Range", "bytes=0-9")]);
    assert_eq!(res.body, &big[..10]);
    report(
        "150 never-readers, cap 100",
        format_args!("at most {max} held, all {CLIENTS} served and cut within {elapsed:?}"),
    );
}

#[test]
fn clients_beyond_the_cap_wait_in_the_listen_backlog() {
    const WAITING: usize = 300;
    let _serial = serial();
    let small = pattern(1_000);
    let s = TestServer::with_files_config(&[("a.txt", &small)], config(|l| l.max_connections = 1));
    // the only slot, held by an idle keep-alive connection
    let mut held = s.connect();
    held.send("GET", "/a.txt", &[]);
    assert_eq!(held.read_response(false).body, small);
    let mut waiting = Vec::new();
    for n in 0..WAITING {
        match TcpStream::connect_timeout(&s.addr, Duration::from_millis(500)) {
            Ok(c) => waiting.push(c),
            Err(e) => panic!(
                "connection {n} beyond the cap not established within 500 ms ({e}): \
                 the listen backlog is full"
            ),
        }
    }
    for c in &mut waiting {
        c.write_all(b"GET /a.txt HTTP/1.1\r\nHost: load\r\nConnection: close\r\n\r\n")
            .unwrap();
    }
    let start = Instant::now();
    drop(held); // the slot frees: they are served one at a time, in order
    for (n, c) in waiting.iter_mut().enumerate() {
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut got = Vec::new();
        c.read_to_end(&mut got).unwrap();
        assert!(got.starts_with(b"HTTP/1.1 200 OK\r\n"), "client {n}");
        assert!(got.ends_with(&small), "client {n}");
    }
    let elapsed = start.elapsed();
    assert!(elapsed < Duration::from_secs(10), "{elapsed:?}");
    report(
        "clients beyond a cap of 1",
        format_args!("{WAITING} connected at once and served in turn within {elapsed:?}"),
    );
}
