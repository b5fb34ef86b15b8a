//! Issue 12: an ETag never describes other bytes. Each test is one hostile
//! scenario from the issue, run against the real `rangeserve` binary over
//! loopback for a few seconds, counting every response that carries a strong
//! validator (ETag, Repr-Digest) not describing the bytes it carries.
//!
//! Responses cut short (the server aborted the connection) are allowed and
//! counted apart; so are complete responses without any strong validator
//! (the issue lets the server withhold validators it cannot vouch for).
//!
//! `unsafe` is forbidden in every target of this package, so the pieces that
//! need raw syscalls (an mmap writer, `renameat2(RENAME_EXCHANGE)`, inotify)
//! run in small `python3` helper processes: those tests need python3 on PATH.
//!
//! `cargo test --test integrity -- --nocapture` prints each race's counts.

use std::collections::HashSet;
use std::ffi::OsStr;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use sha2::{Digest as _, Sha256};

const BIN: &str = env!("CARGO_BIN_EXE_rangeserve");
/// Longest we wait for the startup line (tests run in parallel on busy CI).
const STARTUP: Duration = Duration::from_secs(20);
/// Socket read/write timeout: a stalled server fails the test, never hangs it.
const IO_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the in-place write races run (their bug shows in about 1 of
/// 2,000 responses, so they need thousands).
const RACE: Duration = Duration::from_secs(10);
/// How long the races whose bug shows at once run.
const SHORT_RACE: Duration = Duration::from_secs(5);
/// How often the in-place writers rewrite the file (the issue's pace).
const WRITE_EVERY: Duration = Duration::from_millis(2);
/// Fewest validated complete responses for a race to mean anything.
const MIN_VALIDATED: u64 = 100;

/// How long a race's clients run: at least `min`, then on (up to four times
/// `min`) while fewer than [`MIN_VALIDATED`] responses were validated
/// against a known version. A busy machine (CI runs these tests side by
/// side) gets a longer race, not a race too short to mean anything.
#[derive(Clone, Copy)]
struct Race {
    start: Instant,
    min: Duration,
    max: Duration,
}

impl Race {
    fn at_least(min: Duration) -> Race {
        Race {
            start: Instant::now(),
            min,
            max: min * 4,
        }
    }

    /// A race of exactly `dur` (its writer's life is fixed in advance).
    fn exactly(dur: Duration) -> Race {
        Race {
            max: dur,
            ..Race::at_least(dur)
        }
    }

    /// Whether the clients go on.
    fn running(&self, tally: &Tally) -> bool {
        let t = self.start.elapsed();
        t < self.min || (t < self.max && tally.known() < MIN_VALIDATED)
    }
}
/// A file size well above the server's small-file threshold (256 KiB when
/// written: smaller files are read whole, hashed from that buffer and never
/// enter the hash cache, its persistence or the prehash).
const BIG: u64 = 1 << 20;

/// A sparse `BIG`-byte file whose content is unique to `label`.
fn write_big(path: &Path, label: &str) -> [u8; 32] {
    let mut f = std::fs::File::create(path).unwrap();
    f.write_all(label.as_bytes()).unwrap();
    f.set_len(BIG).unwrap();
    let mut content = label.as_bytes().to_vec();
    content.resize(BIG as usize, 0);
    sha256(&content)
}

// ---------------------------------------------------------------------------
// The server process
// ---------------------------------------------------------------------------

/// A spawned `rangeserve`, killed and reaped on drop. Stdout and stderr are
/// drained on threads; stderr is kept for inspection.
struct Served {
    child: Child,
    addr: SocketAddr,
    stderr: Arc<Mutex<Vec<u8>>>,
}

impl Served {
    /// Spawn `rangeserve ROOT --port 0 -q ARGS...` and wait for its startup line.
    fn start<S: AsRef<OsStr>>(root: &Path, args: &[S]) -> Served {
        let mut child = Command::new(BIN)
            .arg(root)
            .args(["--port", "0", "-q"])
            .args(args)
            .env_remove("RANGESERVE_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn rangeserve");
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let mut err = child.stderr.take().unwrap();
        let sink = Arc::clone(&stderr);
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n @ 1..) = err.read(&mut buf) {
                sink.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
        let out = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut r = BufReader::new(out);
            let mut line = String::new();
            let _ = tx.send(r.read_line(&mut line).map(|_| line));
            let _ = io::copy(&mut r, &mut io::sink());
        });
        let mut served = Served {
            child,
            addr: "127.0.0.1:0".parse().unwrap(),
            stderr,
        };
        let line = match rx.recv_timeout(STARTUP) {
            Ok(Ok(line)) => line,
            other => panic!(
                "no startup line within {STARTUP:?} ({other:?}); stderr: {}",
                served.stderr_text()
            ),
        };
        served.addr = line
            .trim_end()
            .strip_prefix("listening on http://")
            .and_then(|l| l.strip_suffix('/'))
            .and_then(|l| l.parse().ok())
            .unwrap_or_else(|| panic!("unexpected startup line {line:?}"));
        served
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr.lock().unwrap()).into_owned()
    }

    /// A numeric field of /proc/PID/status (`VmRSS` in kB, `Threads`).
    fn proc_status(&self, key: &str) -> u64 {
        let text = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("read /proc/PID/status");
        text.lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or_else(|| panic!("no {key} in /proc/PID/status"))
    }

    /// User plus system CPU time so far, in clock ticks.
    fn cpu_ticks(&self) -> u64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid()))
            .expect("read /proc/PID/stat");
        // fields after the parenthesized command name; utime, stime are 14, 15
        let rest = &stat[stat.rfind(')').unwrap() + 2..];
        let f: Vec<&str> = rest.split_whitespace().collect();
        f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
    }

    /// SIGTERM (a graceful shutdown flushes the ETag cache) and wait, bounded.
    fn terminate(mut self, timeout: Duration) {
        let ok = Command::new("kill")
            .arg("-TERM")
            .arg(self.pid().to_string())
            .status()
            .expect("run kill(1)")
            .success();
        assert!(ok, "kill -TERM failed");
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.child.try_wait().unwrap().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("rangeserve did not exit within {timeout:?} of SIGTERM");
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `--etag-cache FILE`, plus `--settle-window 0` where the server has that
/// option: it persists only hashes of files unchanged for a while (36 s by
/// default), and these tests' files are seconds old. No writer touches them,
/// so trusting their stamps at once is right here.
fn etag_cache_args(cache: &Path) -> Vec<std::ffi::OsString> {
    static SETTLE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    let settle = *SETTLE.get_or_init(|| {
        let help = Command::new(BIN)
            .arg("--help")
            .output()
            .expect("rangeserve --help");
        String::from_utf8_lossy(&help.stdout).contains("--settle-window")
    });
    let mut args = vec!["--etag-cache".into(), cache.as_os_str().to_owned()];
    if settle {
        args.extend(["--settle-window".into(), "0".into()]);
    }
    args
}

fn clock_ticks_per_second() -> u64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok()?.trim().parse().ok())
        .unwrap_or(100)
}

// ---------------------------------------------------------------------------
// A raw keep-alive HTTP/1.1 client that tolerates cut responses
// ---------------------------------------------------------------------------

struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// One keep-alive connection, reopened after any failure.
struct Client {
    addr: SocketAddr,
    conn: Option<BufReader<TcpStream>>,
}

impl Client {
    fn new(addr: SocketAddr) -> Client {
        Client { addr, conn: None }
    }

    /// A complete response (body length == Content-Length), or `None` if the
    /// exchange failed in any way (connection cut, reset, timeout).
    fn get(&mut self, target: &str, headers: &[(&str, &str)]) -> Option<Resp> {
        self.request("GET", target, headers)
    }

    /// Like [`get`](Self::get), any method (no body is read for HEAD).
    fn request(&mut self, method: &str, target: &str, headers: &[(&str, &str)]) -> Option<Resp> {
        let res = self.exchange(method, target, headers);
        match res {
            Ok(r) => {
                if r.header("Connection")
                    .is_some_and(|v| v.eq_ignore_ascii_case("close"))
                {
                    self.conn = None;
                }
                Some(r)
            }
            Err(_) => {
                self.conn = None;
                None
            }
        }
    }

    fn exchange(
        &mut self,
        method: &str,
        target: &str,
        headers: &[(&str, &str)],
    ) -> io::Result<Resp> {
        if self.conn.is_none() {
            let s = TcpStream::connect_timeout(&self.addr, IO_TIMEOUT)?;
            s.set_read_timeout(Some(IO_TIMEOUT))?;
            s.set_write_timeout(Some(IO_TIMEOUT))?;
            s.set_nodelay(true)?;
            self.conn = Some(BufReader::with_capacity(256 * 1024, s));
        }
        let r = self.conn.as_mut().unwrap();
        let mut req = format!("{method} {target} HTTP/1.1\r\nHost: test\r\n");
        for (n, v) in headers {
            req.push_str(&format!("{n}: {v}\r\n"));
        }
        req.push_str("\r\n");
        r.get_mut().write_all(req.as_bytes())?;
        read_response(r, method == "HEAD")
    }
}

fn bad(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.to_string())
}

fn read_response(r: &mut BufReader<TcpStream>, head: bool) -> io::Result<Resp> {
    let mut line = String::new();
    if r.read_line(&mut line)? == 0 {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    let status: u16 = line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad("status line"))?;
    let mut headers = Vec::new();
    loop {
        let mut l = String::new();
        if r.read_line(&mut l)? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        if l == "\r\n" {
            break;
        }
        let (n, v) = l.trim_end().split_once(':').ok_or_else(|| bad("header"))?;
        headers.push((n.to_string(), v.trim().to_string()));
    }
    let mut res = Resp {
        status,
        headers,
        body: Vec::new(),
    };
    if head || status == 204 || status == 304 {
        return Ok(res);
    }
    let len: usize = res
        .header("Content-Length")
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| bad("no Content-Length"))?;
    let mut body = vec![0u8; len];
    r.read_exact(&mut body)?;
    res.body = body;
    Ok(res)
}

// ---------------------------------------------------------------------------
// Validators
// ---------------------------------------------------------------------------

fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// What a response's strong validators say about `digest` (the SHA-256 of the
/// whole representation the client holds).
#[derive(Debug, PartialEq)]
enum Verdict {
    /// A strong ETag or a Repr-Digest, and every one present matches.
    Match,
    /// Some strong validator describes other bytes.
    Mismatch(String),
    /// Neither a strong ETag nor a Repr-Digest.
    NoValidator,
}

/// The 32 bytes a strong ETag `"<64 hex>"` names (None for weak or absent).
fn strong_etag(res: &Resp) -> Option<Result<[u8; 32], String>> {
    let v = res.header("ETag")?;
    if v.starts_with("W/") {
        return None;
    }
    Some(
        v.strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .and_then(|h| hex::decode(h).ok())
            .and_then(|d| d.try_into().ok())
            .ok_or_else(|| format!("ETag {v:?} is not a quoted SHA-256")),
    )
}

/// The sha-256 member of Repr-Digest, if any.
fn repr_digest(res: &Resp) -> Option<Result<[u8; 32], String>> {
    let v = res.header("Repr-Digest")?;
    let member = v
        .split(',')
        .map(str::trim)
        .find_map(|m| m.strip_prefix("sha-256="))?;
    Some(
        member
            .strip_prefix(':')
            .and_then(|m| m.strip_suffix(':'))
            .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
            .and_then(|d| d.try_into().ok())
            .ok_or_else(|| format!("Repr-Digest {v:?} is malformed")),
    )
}

/// What `res`'s strong validators say about `digest` (the SHA-256 of the
/// whole representation the client holds).
fn verdict(res: &Resp, digest: &[u8; 32]) -> Verdict {
    judged(claimed_digest(res), Some(digest))
}

/// A claim ([`claimed_digest`]) judged against the digest of the bytes
/// received (`None`: bytes that are of no version, which no claim matches).
fn judged(claim: Result<Option<[u8; 32]>, String>, digest: Option<&[u8; 32]>) -> Verdict {
    match claim {
        Ok(None) => Verdict::NoValidator,
        Ok(Some(d)) if Some(&d) == digest => Verdict::Match,
        Ok(Some(d)) => Verdict::Mismatch(format!(
            "the validators name {} but the bytes {}",
            &hex::encode(d)[..12],
            digest.map_or("are of no version".into(), |b| format!(
                "hash to {}",
                &hex::encode(b)[..12]
            ))
        )),
        Err(e) => Verdict::Mismatch(e),
    }
}

/// The digest a response's strong validators (ETag, Repr-Digest) name:
/// `Ok(None)` without any, `Err` when one is malformed or they name two
/// different digests.
fn claimed_digest(res: &Resp) -> Result<Option<[u8; 32]>, String> {
    let mut named = None;
    for claim in [strong_etag(res), repr_digest(res)].into_iter().flatten() {
        let d = claim?;
        if named.is_some_and(|n| n != d) {
            return Err("ETag and Repr-Digest name different digests".into());
        }
        named = Some(d);
    }
    Ok(named)
}

/// Counts over one race.
#[derive(Default)]
struct Tally {
    /// Complete responses whose validators match their bytes.
    matched: AtomicU64,
    /// Of those, responses under a digest of a write in progress (see
    /// [`Snapshots`]), matched against each other only.
    snapshots: AtomicU64,
    /// Complete responses carrying a validator of other bytes.
    mismatched: AtomicU64,
    /// Complete responses with no strong validator.
    unvalidated: AtomicU64,
    /// Exchanges that ended early (cut body, reset, timeout).
    cut: AtomicU64,
    /// Complete responses with a status the check does not cover.
    other: AtomicU64,
    /// The first few mismatches, described.
    examples: Mutex<Vec<String>>,
    /// Statuses counted in `other`.
    other_statuses: Mutex<std::collections::BTreeMap<u16, u64>>,
}

impl Tally {
    fn record(&self, v: Verdict, what: &str) {
        match v {
            Verdict::Match => self.matched.fetch_add(1, Ordering::Relaxed),
            Verdict::NoValidator => self.unvalidated.fetch_add(1, Ordering::Relaxed),
            Verdict::Mismatch(why) => {
                let mut ex = self.examples.lock().unwrap();
                if ex.len() < 5 {
                    ex.push(format!("{what}: {why}"));
                }
                self.mismatched.fetch_add(1, Ordering::Relaxed)
            }
        };
    }

    fn other_status(&self, status: u16) {
        Self::bump(&self.other);
        *self
            .other_statuses
            .lock()
            .unwrap()
            .entry(status)
            .or_default() += 1;
    }

    fn bump(c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }

    fn get(c: &AtomicU64) -> u64 {
        c.load(Ordering::Relaxed)
    }

    /// Complete responses validated against a known version (not only
    /// against each other; see [`Snapshots`]).
    fn known(&self) -> u64 {
        Self::get(&self.matched).saturating_sub(Self::get(&self.snapshots))
    }

    /// Print the counts; assert no mismatch and at least `min` validated
    /// complete responses.
    fn assert_clean(&self, name: &str, min: u64) {
        let (m, x, u, c, o, snap) = (
            Self::get(&self.matched),
            Self::get(&self.mismatched),
            Self::get(&self.unvalidated),
            Self::get(&self.cut),
            Self::get(&self.other),
            Self::get(&self.snapshots),
        );
        eprintln!(
            "{name}: {m} matched ({snap} of them under a digest of a write in progress), \
             {x} MISMATCHED, {u} without strong validator, {c} cut short, \
             {o} other statuses {:?}",
            self.other_statuses.lock().unwrap()
        );
        let ex = self.examples.lock().unwrap();
        for e in ex.iter() {
            eprintln!("  e.g. {e}");
        }
        assert_eq!(
            x,
            0,
            "{name}: {x} complete responses carried a validator of other bytes \
             (of {} complete); e.g. {:?}",
            m + x + u,
            ex.first()
        );
        let known = self.known();
        assert!(
            known >= min,
            "{name}: only {known} complete responses validated against a known \
             version; the race proves nothing"
        );
    }
}

// ---------------------------------------------------------------------------
// Writers and clients
// ---------------------------------------------------------------------------

/// Rewrites `path` in place with one `pwrite` of the whole file every
/// `WRITE_EVERY`, alternating all-0x11 and all-0x22 (same size), until
/// `stop`. With `keep_mtime`, puts the original mtime back after each write.
fn spawn_pwrite_writer(
    path: PathBuf,
    size: usize,
    keep_mtime: bool,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<u64> {
    std::thread::spawn(move || {
        let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        let mtime = f.metadata().unwrap().modified().unwrap();
        let contents = [vec![0x11u8; size], vec![0x22u8; size]];
        let mut n = 0u64;
        while !stop.load(Ordering::Relaxed) {
            n += 1;
            f.write_all_at(&contents[(n % 2) as usize], 0).unwrap();
            if keep_mtime {
                f.set_modified(mtime).unwrap();
            }
            std::thread::sleep(WRITE_EVERY);
        }
        n
    })
}

/// Sets a stop flag when dropped, so a failing test stops its helper threads.
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Every complete 200 for one of `targets`, checked against its validators.
fn check_200(tally: &Tally, res: &Resp, target: &str) {
    if res.status == 200 {
        tally.record(verdict(res, &sha256(&res.body)), target);
    } else {
        tally.other_status(res.status);
    }
}

/// `clients` keep-alive threads GET `targets` in turn while `race` runs,
/// checking every complete 200.
fn hammer_gets(addr: SocketAddr, targets: &[&str], clients: usize, race: Race) -> Arc<Tally> {
    let tally = Arc::new(Tally::default());
    let threads: Vec<_> = (0..clients)
        .map(|i| {
            let tally = Arc::clone(&tally);
            let targets: Vec<String> = targets.iter().map(|t| t.to_string()).collect();
            std::thread::spawn(move || {
                let mut c = Client::new(addr);
                let mut k = i;
                while race.running(&tally) {
                    let t = &targets[k % targets.len()];
                    k += 1;
                    match c.get(t, &[]) {
                        Some(res) => check_200(&tally, &res, t),
                        None => Tally::bump(&tally.cut),
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    tally
}

/// 3 keep-alive clients GET one file of `size` bytes for at least `RACE` while it is
/// rewritten in place; every complete 200 must match its validators.
fn in_place_rewrite(size: usize, name: &str) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f.bin");
    std::fs::write(&path, vec![0x11u8; size]).unwrap();
    let s = Served::start(dir.path(), &[] as &[&str]);
    let stop = Arc::new(AtomicBool::new(false));
    let _stop = StopOnDrop(Arc::clone(&stop));
    let writer = spawn_pwrite_writer(path, size, false, Arc::clone(&stop));
    let tally = hammer_gets(s.addr, &["/f.bin"], 3, Race::at_least(RACE));
    stop.store(true, Ordering::Relaxed);
    let writes = writer.join().unwrap();
    eprintln!("{name}: {writes} writes");
    tally.assert_clean(name, MIN_VALIDATED);
}

/// The parts' bytes of a multipart/byteranges body, or the body itself.
fn content_bytes(res: &Resp) -> Vec<Vec<u8>> {
    let ctype = res.header("Content-Type").unwrap_or("");
    let Some(boundary) = ctype.strip_prefix("multipart/byteranges; boundary=") else {
        return vec![res.body.clone()];
    };
    let delim = format!("--{boundary}");
    let text = &res.body;
    let mut parts = Vec::new();
    let mut at = 0;
    let find = |from: usize, pat: &[u8]| {
        text[from..]
            .windows(pat.len())
            .position(|w| w == pat)
            .map(|i| i + from)
    };
    while let Some(start) = find(at, delim.as_bytes()) {
        let after = start + delim.len();
        if text[after..].starts_with(b"--") {
            break;
        }
        let Some(head_end) = find(after, b"\r\n\r\n") else {
            break;
        };
        let content = head_end + 4;
        let Some(next) = find(content, format!("\r\n{delim}").as_bytes()) else {
            break;
        };
        parts.push(text[content..next].to_vec());
        at = next + 2;
    }
    parts
}

/// Ranges of a file above the small-file size while a writer rewrites it in
/// place: every complete 206 (a single range, an open range, and parts out of
/// file order) carries only bytes of the content its ETag names. The file's
/// versions are uniform (all 0x11 or all 0x22), so under either's digest the
/// bytes must be all that byte. A digest of neither is a write caught in
/// progress ([`Snapshots`]): checked against every other response under it.
#[test]
fn ranges_under_in_place_rewrite_1m() {
    const SIZE: usize = 1024 * 1024;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f.bin");
    std::fs::write(&path, vec![0x11u8; SIZE]).unwrap();
    let s = Served::start(dir.path(), &[] as &[&str]);
    let stop = Arc::new(AtomicBool::new(false));
    let _stop = StopOnDrop(Arc::clone(&stop));
    let writer = spawn_pwrite_writer(path, SIZE, false, Arc::clone(&stop));
    let tally = Arc::new(Tally::default());
    let snapshots = Arc::new(Snapshots::default());
    // the two versions: their byte, and their digest
    let versions = [0x11u8, 0x22].map(|b| (b, sha256(&vec![b; SIZE])));
    let race = Race::at_least(SHORT_RACE);
    let ranges = [
        "bytes=1000-4999",
        "bytes=1000000-",
        "bytes=900000-900999,0-99",
    ];
    let threads: Vec<_> = (0..3)
        .map(|i| {
            let (tally, snapshots, addr) = (Arc::clone(&tally), Arc::clone(&snapshots), s.addr);
            std::thread::spawn(move || {
                let mut c = Client::new(addr);
                let mut k = i;
                while race.running(&tally) {
                    let range = ranges[k % ranges.len()];
                    k += 1;
                    let Some(res) = c.get("/f.bin", &[("Range", range)]) else {
                        Tally::bump(&tally.cut);
                        continue;
                    };
                    if res.status != 206 {
                        tally.other_status(res.status);
                        continue;
                    }
                    let parts = content_bytes(&res);
                    let claim = claimed_digest(&res);
                    match claim {
                        // a digest of a write in progress: its bytes are
                        // checked against the other responses under it
                        Ok(Some(d)) if versions.iter().all(|(_, v)| *v != d) => {
                            let v = snapshots.check(d, range, parts);
                            if v == Verdict::Match {
                                Tally::bump(&tally.snapshots);
                            }
                            tally.record(v, range);
                        }
                        _ => {
                            // the version the bytes are of, if all are one's
                            let byte = parts.first().and_then(|p| p.first()).copied();
                            let uniform = parts
                                .iter()
                                .all(|p| !p.is_empty() && p.iter().all(|&b| Some(b) == byte));
                            let of = versions
                                .iter()
                                .find(|(b, _)| uniform && Some(*b) == byte)
                                .map(|(_, d)| d);
                            tally.record(judged(claim, of), range);
                        }
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    let writes = writer.join().unwrap();
    eprintln!(
        "ranges_under_in_place_rewrite_1m: {writes} writes in {:.1} s; {} digests of a write in progress",
        race.start.elapsed().as_secs_f64(),
        snapshots.digests()
    );
    tally.assert_clean("ranges_under_in_place_rewrite_1m", MIN_VALIDATED);
}

/// The bytes sent under digests of a write in progress. The kernel moves a
/// file's timestamps when a write begins and copies its data after, so a
/// writer stalled mid-copy (preempted on a busy machine, or faulting on its
/// buffer) leaves the file a stable mix of old and new bytes under a stamp
/// that no longer moves: what any reader of the file sees, and what a server
/// that reads it twice alike (its hash, then a verified body) may name. Its
/// bytes are unknown to the client, which checks the one thing it can: every
/// response under such a digest for the same range carried the same bytes.
#[derive(Default)]
struct Snapshots {
    /// The parts first sent, by digest and range.
    seen: Mutex<std::collections::HashMap<SnapshotKey, Vec<Vec<u8>>>>,
}

/// A digest of a write in progress, and a Range header sent under it.
type SnapshotKey = ([u8; 32], String);

impl Snapshots {
    /// Match if `parts` are the bytes sent before under `digest` for `range`
    /// (or the first sent); a mismatch otherwise.
    fn check(&self, digest: [u8; 32], range: &str, parts: Vec<Vec<u8>>) -> Verdict {
        let mut seen = self.seen.lock().unwrap();
        let first = match seen.entry((digest, range.to_string())) {
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert(parts);
                return Verdict::Match;
            }
            std::collections::hash_map::Entry::Occupied(e) => e,
        };
        if *first.get() == parts {
            return Verdict::Match;
        }
        Verdict::Mismatch(format!(
            "two responses under the ETag {} carried different bytes",
            &hex::encode(digest)[..12]
        ))
    }

    /// Distinct digests of a write in progress seen.
    fn digests(&self) -> usize {
        let seen = self.seen.lock().unwrap();
        seen.keys().map(|(d, _)| d).collect::<HashSet<_>>().len()
    }
}

/// A write caught in progress, made deterministic: the kernel moves a file's
/// timestamps when a write begins and copies the data after, so a writer
/// stalled mid-copy leaves a stable mix of old and new bytes under a stamp
/// that no longer moves. Here the stall is a pause between the two halves of
/// the write (what a preempted one-`pwrite` writer looks like to a reader,
/// bar the timestamp its second half moves). Every reader sees that mix; the
/// server names it and sends only its bytes under its digest: a 200 whose
/// body is the mix, and ranges of both halves. Once the write is complete,
/// the new version's digest and bytes.
#[test]
fn write_caught_in_progress() {
    const SIZE: usize = 1024 * 1024;
    const HALF: usize = SIZE / 2;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f.bin");
    std::fs::write(&path, vec![0x22u8; SIZE]).unwrap();
    let s = Served::start(dir.path(), &[] as &[&str]);
    let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    f.write_all_at(&[0x11; HALF], 0).unwrap();
    let mut mix = vec![0x11u8; HALF];
    mix.resize(SIZE, 0x22);
    let mut c = Client::new(s.addr);
    let full = c.get("/f.bin", &[]).expect("a complete 200 of the mix");
    assert_eq!(full.status, 200);
    assert!(full.body == mix, "the 200's body is the file as it is now");
    assert_eq!(claimed_digest(&full), Ok(Some(sha256(&mix))));
    for (range, from, to) in [
        ("bytes=1000-4999", 1000, 5000),
        ("bytes=1000000-", 1_000_000, SIZE),
    ] {
        let res = c
            .get("/f.bin", &[("Range", range)])
            .expect("a complete 206");
        assert_eq!(res.status, 206, "{range}");
        assert_eq!(claimed_digest(&res), Ok(Some(sha256(&mix))), "{range}");
        assert!(res.body == mix[from..to], "{range}: the mix's bytes");
    }
    // past any coarse timestamp tick: the second half moves the stamp
    std::thread::sleep(Duration::from_millis(50));
    f.write_all_at(&[0x11; HALF], HALF as u64).unwrap();
    let done = vec![0x11u8; SIZE];
    let full = c
        .get("/f.bin", &[])
        .expect("a complete 200 of the new version");
    assert_eq!(full.status, 200);
    assert!(full.body == done, "the 200's body is the new version");
    assert_eq!(claimed_digest(&full), Ok(Some(sha256(&done))));
    let res = c
        .get("/f.bin", &[("Range", "bytes=1000000-")])
        .expect("a complete 206 of the new version");
    assert_eq!(res.status, 206);
    assert_eq!(claimed_digest(&res), Ok(Some(sha256(&done))));
    assert!(res.body == done[1_000_000..]);
}

// ---------------------------------------------------------------------------
// 1. In-place rewrites at the same size
// ---------------------------------------------------------------------------

/// A settled file rewritten in place while keep-alive clients read ranges
/// of it. A hit of a settled entry is answered from the entry first, its
/// bytes read, and confirmed by one `stat` begun after the answer was made
/// (shared by the answers made in that turn): a rewrite that lands between
/// an answer's read and that `stat` must turn it into a miss, never send
/// new or mixed bytes under the old version's digest. Each version stands
/// past the settling window (`--settle-window 1`), so its digest settles
/// and its ranges take that path (about one `stat` per four answers here,
/// by `perf stat`), before the next one lands in place under load.
#[test]
fn settled_file_rewritten_in_place_under_ranges() {
    const SIZE: usize = 1024 * 1024;
    let name = "settled_file_rewritten_in_place_under_ranges";
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f.bin");
    let versions = [vec![0x11u8; SIZE], vec![0x22u8; SIZE]];
    let digests = [sha256(&versions[0]), sha256(&versions[1])];
    std::fs::write(&path, &versions[0]).unwrap();
    let s = Served::start(dir.path(), &["--settle-window", "1"]);
    let tally = Arc::new(Tally::default());
    let stop = Arc::new(AtomicBool::new(false));
    let _stop_on_drop = StopOnDrop(Arc::clone(&stop));
    let clients: Vec<_> = (0..4u64)
        .map(|i| {
            let (tally, stop, addr) = (Arc::clone(&tally), Arc::clone(&stop), s.addr);
            std::thread::spawn(move || {
                let mut c = Client::new(addr);
                let mut n = i;
                while !stop.load(Ordering::Relaxed) {
                    n = n
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    let from = (n >> 33) % (SIZE as u64 - 4096);
                    let range = format!("bytes={from}-{}", from + 4095);
                    let Some(res) = c.get("/f.bin", &[("Range", &range)]) else {
                        Tally::bump(&tally.cut);
                        continue;
                    };
                    if res.status != 206 {
                        tally.other_status(res.status);
                        continue;
                    }
                    // the version the bytes are of, if they are all of one
                    let of = [0x11u8, 0x22]
                        .iter()
                        .position(|&b| res.body.len() == 4096 && res.body.iter().all(|&x| x == b));
                    tally.record(
                        judged(claimed_digest(&res), of.map(|v| &digests[v])),
                        &range,
                    );
                }
            })
        })
        .collect();
    let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    for v in 1..=6 {
        std::thread::sleep(Duration::from_millis(1600));
        f.write_all_at(&versions[v % 2], 0).unwrap();
    }
    std::thread::sleep(Duration::from_millis(1600));
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.join().unwrap();
    }
    tally.assert_clean(name, MIN_VALIDATED);
}

#[test]
fn in_place_rewrite_4k() {
    in_place_rewrite(4096, "in_place_rewrite_4k");
}

#[test]
fn in_place_rewrite_200k() {
    in_place_rewrite(200_000, "in_place_rewrite_200k");
}

// ---------------------------------------------------------------------------
// 2. If-Range resumes with the mtime put back after each write
// ---------------------------------------------------------------------------

#[test]
fn if_range_resume_stitch() {
    if_range_resume(&[4096, 200_000], "if_range_resume_stitch");
}

/// Clients GET the first half of one of the files (sizes `sizes`) and its
/// ETag, then the rest with If-Range: that ETag, while writers rewrite the
/// files in place and put their mtime back; every stitched file must hash to
/// the ETag it was resumed under.
fn if_range_resume(sizes: &'static [usize], name: &'static str) {
    let dir = tempfile::tempdir().unwrap();
    for (i, size) in sizes.iter().enumerate() {
        std::fs::write(dir.path().join(format!("f{i}.bin")), vec![0x11u8; *size]).unwrap();
    }
    let s = Served::start(dir.path(), &[] as &[&str]);
    let stop = Arc::new(AtomicBool::new(false));
    let _stop = StopOnDrop(Arc::clone(&stop));
    let writers: Vec<_> = sizes
        .iter()
        .enumerate()
        .map(|(i, size)| {
            let p = dir.path().join(format!("f{i}.bin"));
            spawn_pwrite_writer(p, *size, true, Arc::clone(&stop))
        })
        .collect();
    let tally = Arc::new(Tally::default());
    let stitched = Arc::new(AtomicU64::new(0));
    let race = Race::at_least(RACE);
    let clients: Vec<_> = (0..3)
        .map(|c| {
            let (tally, stitched) = (Arc::clone(&tally), Arc::clone(&stitched));
            let addr = s.addr;
            std::thread::spawn(move || {
                let mut client = Client::new(addr);
                let mut k = c;
                while race.running(&tally) {
                    k += 1;
                    let (i, n) = (k % sizes.len(), sizes[k % sizes.len()]);
                    let target = format!("/f{i}.bin");
                    let first_range = format!("bytes=0-{}", n / 2 - 1);
                    let Some(first) = client.get(&target, &[("Range", &first_range)]) else {
                        Tally::bump(&tally.cut);
                        continue;
                    };
                    if first.status != 206 {
                        check_200(&tally, &first, &target);
                        continue;
                    }
                    let Some(Ok(etag)) = strong_etag(&first) else {
                        Tally::bump(&tally.unvalidated);
                        continue;
                    };
                    // the first half's Repr-Digest must name the same representation
                    if let Some(rd) = repr_digest(&first) {
                        if rd != Ok(etag) {
                            tally.record(
                                Verdict::Mismatch("206 ETag and Repr-Digest differ".into()),
                                &target,
                            );
                            continue;
                        }
                    }
                    let tag = format!("\"{}\"", hex::encode(etag));
                    let rest = format!("bytes={}-", n / 2);
                    let Some(second) = client.get(&target, &[("Range", &rest), ("If-Range", &tag)])
                    else {
                        Tally::bump(&tally.cut);
                        continue;
                    };
                    match second.status {
                        206 => {
                            let want = format!("bytes {}-{}/{n}", n / 2, n - 1);
                            if second.header("Content-Range") != Some(want.as_str()) {
                                tally.record(
                                    Verdict::Mismatch(format!(
                                        "resumed with Content-Range {:?}",
                                        second.header("Content-Range")
                                    )),
                                    &target,
                                );
                                continue;
                            }
                            let mut whole = first.body.clone();
                            whole.extend_from_slice(&second.body);
                            if whole.len() != n {
                                tally.record(
                                    Verdict::Mismatch(format!("stitched {} bytes", whole.len())),
                                    &target,
                                );
                                continue;
                            }
                            stitched.fetch_add(1, Ordering::Relaxed);
                            let d = sha256(&whole);
                            let v = if d == etag {
                                verdict(&second, &d)
                            } else {
                                Verdict::Mismatch(format!(
                                    "stitched file hashes to {}, resumed under {}",
                                    &hex::encode(d)[..12],
                                    &hex::encode(etag)[..12]
                                ))
                            };
                            // a 206 with no validator of its own is fine: If-Range vouched
                            let v = if v == Verdict::NoValidator {
                                Verdict::Match
                            } else {
                                v
                            };
                            tally.record(v, &format!("{target} stitched"));
                        }
                        _ => check_200(&tally, &second, &target),
                    }
                }
            })
        })
        .collect();
    for c in clients {
        c.join().unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.join().unwrap();
    }
    eprintln!(
        "{name}: {} stitched resumes",
        stitched.load(Ordering::Relaxed)
    );
    tally.assert_clean(name, MIN_VALIDATED);
}

// ---------------------------------------------------------------------------
// python3 helpers (raw syscalls without `unsafe` in this crate)
// ---------------------------------------------------------------------------

/// A helper process; killed on drop.
struct Helper {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Helper {
    fn start(script: &str, args: &[&OsStr]) -> Helper {
        let mut child = Command::new("python3")
            .arg("-c")
            .arg(script)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("this test needs python3 on PATH (for raw syscalls without unsafe)");
        let out = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { return };
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Helper { child, lines }
    }

    fn line(&self, timeout: Duration) -> String {
        self.lines
            .recv_timeout(timeout)
            .unwrap_or_else(|e| panic!("python3 helper said nothing within {timeout:?}: {e}"))
    }

    fn finish(mut self, timeout: Duration) -> String {
        let line = self.line(timeout);
        let _ = self.child.wait();
        line
    }
}

impl Drop for Helper {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// argv: path size seconds. Maps the file MAP_SHARED and overwrites the
/// mapping every ~2 ms, alternating all-0x11 and all-0x22: memory stores
/// only, no write() syscalls.
const MMAP_WRITER: &str = r#"
import mmap, os, sys, time
path, size, secs = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
fd = os.open(path, os.O_RDWR)
m = mmap.mmap(fd, size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
os.close(fd)
contents = [b"\x11" * size, b"\x22" * size]
m[:] = contents[0]
print("ready", flush=True)
end = time.monotonic() + secs
n = 0
while time.monotonic() < end:
    n += 1
    m[:] = contents[n % 2]
    time.sleep(0.002)
print(n, flush=True)
"#;

// ---------------------------------------------------------------------------
// 3. mmap writers
// ---------------------------------------------------------------------------

#[test]
fn mmap_writer() {
    let dir = tempfile::tempdir().unwrap();
    let files = [("small.bin", 16 * 1024usize), ("large.bin", 1024 * 1024)];
    for (name, size) in files {
        std::fs::write(dir.path().join(name), vec![0x11u8; size]).unwrap();
    }
    let secs = SHORT_RACE.as_secs_f64() + 2.0;
    let helpers: Vec<Helper> = files
        .iter()
        .map(|(name, size)| {
            let p = dir.path().join(name);
            let size = size.to_string();
            let secs = secs.to_string();
            Helper::start(
                MMAP_WRITER,
                &[p.as_os_str(), OsStr::new(&size), OsStr::new(&secs)],
            )
        })
        .collect();
    for h in &helpers {
        assert_eq!(h.line(Duration::from_secs(20)), "ready");
    }
    let s = Served::start(dir.path(), &[] as &[&str]);
    let tally = hammer_gets(
        s.addr,
        &["/small.bin", "/large.bin"],
        3,
        Race::exactly(SHORT_RACE),
    );
    drop(helpers);
    tally.assert_clean("mmap_writer", MIN_VALIDATED);
}

// ---------------------------------------------------------------------------
// 4. A FIFO swapped with the requested file is never opened
// ---------------------------------------------------------------------------

/// argv: file fifo fifo_link seconds. Watches the FIFO's inode through its
/// hard link outside the root with inotify (IN_OPEN; watching opens
/// nothing), checks the watch sees an open, then swaps file and FIFO with
/// renameat2(RENAME_EXCHANGE) in a loop for `seconds`, leaving them as
/// found. Prints `ready`, then `swaps opens overflows`.
const FIFO_SWAPPER: &str = r#"
import ctypes, os, struct, sys, time
f, p, link, secs = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
libc = ctypes.CDLL(None, use_errno=True)
IN_OPEN, IN_Q_OVERFLOW, IN_NONBLOCK = 0x20, 0x4000, 0o4000
AT_FDCWD, RENAME_EXCHANGE = -100, 2
ifd = libc.inotify_init1(IN_NONBLOCK)
assert ifd >= 0, "inotify_init1"
assert libc.inotify_add_watch(ifd, link.encode(), IN_OPEN) >= 0, "inotify_add_watch"
count = [0, 0]
def drain():
    while True:
        try:
            buf = os.read(ifd, 1 << 16)
        except BlockingIOError:
            return
        i = 0
        while i < len(buf):
            _wd, mask, _cookie, ln = struct.unpack_from("iIII", buf, i)
            if mask & IN_OPEN: count[0] += 1
            if mask & IN_Q_OVERFLOW: count[1] += 1
            i += 16 + ln
# the watch must see an open of the FIFO (a reader that does not block)
os.close(os.open(link, os.O_RDONLY | os.O_NONBLOCK))
time.sleep(0.05)
drain()
assert count == [1, 0], "inotify does not report opens of the FIFO: %r" % count
count[:] = [0, 0]
if hasattr(libc, "renameat2"):
    swap = lambda: libc.renameat2(AT_FDCWD, f.encode(), AT_FDCWD, p.encode(), RENAME_EXCHANGE)
else:
    nr = {"x86_64": 316, "aarch64": 276}[os.uname().machine]
    swap = lambda: libc.syscall(nr, AT_FDCWD, f.encode(), AT_FDCWD, p.encode(), RENAME_EXCHANGE)
print("ready", flush=True)
end = time.monotonic() + secs
swaps = 0
while time.monotonic() < end or swaps % 2:
    assert swap() == 0, "renameat2: errno %d" % ctypes.get_errno()
    swaps += 1
    if swaps % 64 == 0:
        drain()
time.sleep(0.1)
drain()
print(swaps, count[0], count[1], flush=True)
"#;

#[test]
fn fifo_swap_never_opened() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir(&root).unwrap();
    let data = b"regular file contents\n".repeat(100);
    std::fs::write(root.join("f"), &data).unwrap();
    let mkfifo = Command::new("mkfifo")
        .arg(root.join("p"))
        .status()
        .expect("run mkfifo");
    assert!(mkfifo.success());
    let link = dir.path().join("fifo-link");
    std::fs::hard_link(root.join("p"), &link).unwrap();
    let s = Served::start(&root, &[] as &[&str]);
    let secs = SHORT_RACE.as_secs_f64().to_string();
    let helper = Helper::start(
        FIFO_SWAPPER,
        &[
            root.join("f").as_os_str(),
            root.join("p").as_os_str(),
            link.as_os_str(),
            OsStr::new(&secs),
        ],
    );
    assert_eq!(helper.line(Duration::from_secs(20)), "ready");
    let tally = Arc::new(Tally::default());
    let (ok, missing) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let end = Instant::now() + SHORT_RACE;
    let clients: Vec<_> = (0..3)
        .map(|_| {
            let (tally, ok, missing) = (Arc::clone(&tally), Arc::clone(&ok), Arc::clone(&missing));
            let (addr, data) = (s.addr, data.clone());
            std::thread::spawn(move || {
                let mut c = Client::new(addr);
                while Instant::now() < end {
                    match c.get("/f", &[]) {
                        None => Tally::bump(&tally.cut),
                        Some(res) if res.status == 200 => {
                            ok.fetch_add(1, Ordering::Relaxed);
                            let v = if res.body == data {
                                verdict(&res, &sha256(&res.body))
                            } else {
                                Verdict::Mismatch("200 body is not the regular file".into())
                            };
                            tally.record(v, "/f");
                        }
                        Some(res) if res.status == 404 => {
                            missing.fetch_add(1, Ordering::Relaxed);
                        }
                        Some(res) => tally.other_status(res.status),
                    }
                }
            })
        })
        .collect();
    for c in clients {
        c.join().unwrap();
    }
    let report = helper.finish(Duration::from_secs(30));
    let n: Vec<u64> = report
        .split_whitespace()
        .map(|x| x.parse().unwrap())
        .collect();
    let (swaps, opens, overflows) = (n[0], n[1], n[2]);
    eprintln!(
        "fifo_swap_never_opened: {swaps} swaps, {} 200s, {} 404s, FIFO opened {opens} times \
         (+{overflows} inotify queue overflows)",
        ok.load(Ordering::Relaxed),
        missing.load(Ordering::Relaxed)
    );
    assert!(swaps > 1000, "the swap loop barely ran");
    assert_eq!(
        (opens, overflows),
        (0, 0),
        "the server opened the FIFO {opens} times (queue overflowed {overflows} times)"
    );
    // the swap leaves `f` a FIFO half the time: fewer 200s, but some
    tally.assert_clean("fifo_swap_never_opened", 10);
}

// ---------------------------------------------------------------------------
// 5. A symlink planted at the ETag cache's temp path
// ---------------------------------------------------------------------------

#[test]
fn etag_cache_temp_symlink() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir(&root).unwrap();
    let want = hex::encode(write_big(&root.join("a.bin"), "some content to hash"));
    let victim = dir.path().join("victim");
    let original = b"the victim's own bytes\n";
    std::fs::write(&victim, original).unwrap();
    let cache = dir.path().join("cache");
    let s = Served::start(&root, &etag_cache_args(&cache));
    // the server hashes nothing before the first request: plant the links now
    let mut planted = 0;
    for name in [format!("cache.tmp.{}", s.pid()), "cache.tmp".to_string()] {
        std::os::unix::fs::symlink(&victim, dir.path().join(name)).unwrap();
        planted += 1;
    }
    let res = Client::new(s.addr)
        .request("HEAD", "/a.bin", &[])
        .expect("HEAD /a.bin");
    assert_eq!(res.status, 200);
    // the cache is flushed about a second after a new hash: wait for it
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::fs::symlink_metadata(&cache).is_err() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(300));
    let after = std::fs::read(&victim).unwrap();
    eprintln!(
        "etag_cache_temp_symlink: {planted} symlinks planted; victim now {} bytes; cache is {:?}",
        after.len(),
        std::fs::symlink_metadata(&cache).map(|m| m.file_type())
    );
    assert_eq!(
        String::from_utf8_lossy(&after),
        String::from_utf8_lossy(original),
        "the server wrote through a symlink planted at its temp path"
    );
    let meta = std::fs::symlink_metadata(&cache).expect("the ETag cache was never written");
    assert!(meta.is_file(), "the ETag cache is not a regular file");
    let text = std::fs::read_to_string(&cache).unwrap();
    assert!(
        text.contains(&want),
        "the cache lacks the hash it was asked to keep"
    );
}

// ---------------------------------------------------------------------------
// 6. Create/request/delete churn against the hash cache
// ---------------------------------------------------------------------------

#[test]
fn cache_eviction_churn() {
    const CYCLES: u64 = 20_000;
    const BUDGET: Duration = Duration::from_secs(8);
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir(&root).unwrap();
    // one file stays: the cache must still be written, and hold it
    let keep = hex::encode(write_big(&root.join("keep.bin"), "kept"));
    let cache = dir.path().join("cache");
    let s = Served::start(&root, &etag_cache_args(&cache));
    let warm = Client::new(s.addr).request("HEAD", "/keep.bin", &[]);
    assert_eq!(warm.expect("HEAD /keep.bin").status, 200);
    let rss_before = s.proc_status("VmRSS");
    let done = Arc::new(AtomicU64::new(0));
    let end = Instant::now() + BUDGET;
    // long names: every stale entry costs its path in memory and in the file
    let pad = "n".repeat(230);
    let threads: Vec<_> = (0..2u64)
        .map(|t| {
            let (done, root, pad, addr) = (Arc::clone(&done), root.clone(), pad.clone(), s.addr);
            std::thread::spawn(move || {
                let mut c = Client::new(addr);
                let mut i = 0u64;
                while Instant::now() < end && done.load(Ordering::Relaxed) < CYCLES {
                    i += 1;
                    let name = format!("{pad}-{t}-{i}");
                    let digest = write_big(&root.join(&name), &format!("file {t}/{i}"));
                    // HEAD: the ETag needs the hash, no body needs sending
                    let res = c.request("HEAD", &format!("/{name}"), &[]).expect("HEAD");
                    assert_eq!(res.status, 200);
                    assert_eq!(verdict(&res, &digest), Verdict::Match);
                    std::fs::remove_file(root.join(&name)).unwrap();
                    done.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let cycles = done.load(Ordering::Relaxed);
    // let the flusher write (at most once a second), then measure
    std::thread::sleep(Duration::from_millis(1500));
    let rss_after = s.proc_status("VmRSS");
    s.terminate(Duration::from_secs(15)); // a graceful shutdown flushes the cache
    let text = std::fs::read_to_string(&cache).expect("the ETag cache was never written");
    eprintln!(
        "cache_eviction_churn: {cycles} cycles; VmRSS {rss_before} -> {rss_after} kB; \
         cache file {} bytes for a directory of one file",
        text.len()
    );
    assert!(
        text.contains(&keep),
        "the ETag cache lacks the one file left"
    );
    assert!(
        cycles >= 200,
        "only {cycles} cycles ran; the churn proves nothing"
    );
    assert!(
        rss_after < rss_before + 24 * 1024,
        "server RSS grew from {rss_before} to {rss_after} kB over {cycles} \
         create/request/delete cycles"
    );
    // one entry is over 500 bytes (the long name, hex-encoded): 200 stale
    // ones are well over this
    assert!(
        text.len() < 64 * 1024,
        "the ETag cache file holds {} bytes for a directory of one file",
        text.len()
    );
}

// ---------------------------------------------------------------------------
// 7. Hashing stops when nobody waits for it any more
// ---------------------------------------------------------------------------

#[test]
fn hash_cancellation() {
    const FILES: usize = 32;
    const SIZE: u64 = 4 << 30; // sparse: costs no disk, hashing it costs seconds of CPU
    let dir = tempfile::tempdir().unwrap();
    for i in 0..FILES {
        let f = std::fs::File::create(dir.path().join(format!("big{i:02}.bin"))).unwrap();
        f.set_len(SIZE).unwrap();
    }
    std::fs::write(dir.path().join("small.txt"), "small").unwrap();
    let s = Served::start(dir.path(), &[] as &[&str]);
    assert_eq!(
        Client::new(s.addr).get("/small.txt", &[]).unwrap().status,
        200
    );
    std::thread::sleep(Duration::from_millis(300));
    let idle_threads = s.proc_status("Threads");
    let conns: Vec<TcpStream> = (0..FILES)
        .map(|i| {
            let mut c = TcpStream::connect(s.addr).unwrap();
            let req = format!("HEAD /big{i:02}.bin HTTP/1.1\r\nHost: test\r\n\r\n");
            c.write_all(req.as_bytes()).unwrap();
            c
        })
        .collect();
    // let the server read the requests and start hashing, then leave
    std::thread::sleep(Duration::from_millis(300));
    let busy_threads = s.proc_status("Threads");
    for c in conns {
        let _ = c.shutdown(Shutdown::Both);
    }
    std::thread::sleep(Duration::from_secs(2));
    let hz = clock_ticks_per_second();
    let (t0, c0) = (Instant::now(), s.cpu_ticks());
    std::thread::sleep(Duration::from_secs(1));
    let cpu = (s.cpu_ticks() - c0) as f64 / hz as f64 / t0.elapsed().as_secs_f64();
    let threads = s.proc_status("Threads");
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    // idle blocking-pool threads may linger 10 s (one per request at most);
    // a hash job and its reader thread per core may still be winding down
    let thread_bound = idle_threads as usize + FILES + 2 * cores + 4;
    eprintln!(
        "hash_cancellation: threads idle {idle_threads}, with {FILES} hashes {busy_threads}, \
         2 s after the clients left {threads} (bound {thread_bound}); CPU then {cpu:.2} cores"
    );
    assert!(
        cpu < 0.25,
        "the server still burns {cpu:.2} CPU-seconds per second 2 s after every client left"
    );
    assert!(
        threads as usize <= thread_bound,
        "{threads} threads 2 s after every client left (idle: {idle_threads})"
    );
}

// ---------------------------------------------------------------------------
// 8. --prehash never follows a directory swapped for a symlink
// ---------------------------------------------------------------------------

#[test]
fn prehash_walk_swap() {
    const SERVERS: usize = 10;
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().canonicalize().unwrap();
    let root = base.join("root");
    let outside = base.join("outside");
    for d in [&root, &outside, &root.join("d")] {
        std::fs::create_dir(d).unwrap();
    }
    // many entries in the root widen the window between lstat(d) and opendir(d)
    for i in 0..200 {
        std::fs::write(root.join(format!("f{i:03}")), format!("small {i}\n")).unwrap();
    }
    // a file the prehash must record (files it hashes must be big)
    let inside = hex::encode(write_big(&root.join("big.bin"), "inside the root"));
    let mut secret_digests = HashSet::new();
    let mut secret_inodes = HashSet::new();
    let mut secret_paths = Vec::new();
    for i in 0..32 {
        let name = format!("x{i:02}");
        write_big(&root.join("d").join(&name), &format!("inside d {i}"));
        let p = outside.join(&name);
        let secret = write_big(&p, &format!("SECRET outside the root {i}"));
        secret_digests.insert(hex::encode(secret));
        secret_inodes.insert(std::fs::metadata(&p).unwrap().ino());
        secret_paths.push(p);
    }
    // the rename dance: root/d is now the real directory, now a symlink to outside/
    let spare_dir = base.join("spare-dir");
    let spare_link = base.join("spare-link");
    std::os::unix::fs::symlink(&outside, &spare_link).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let _stop = StopOnDrop(Arc::clone(&stop));
    let swapper = {
        let (stop, d) = (Arc::clone(&stop), root.join("d"));
        let (spare_dir, spare_link) = (spare_dir.clone(), spare_link.clone());
        std::thread::spawn(move || {
            let mut swaps = 0u64;
            while !stop.load(Ordering::Relaxed) {
                // d: real directory -> (gone) -> symlink -> (gone) -> real
                // directory, resting a little in the two states that count
                std::fs::rename(&d, &spare_dir).unwrap();
                std::fs::rename(&spare_link, &d).unwrap();
                std::thread::sleep(Duration::from_micros(100));
                std::fs::rename(&d, &spare_link).unwrap();
                std::fs::rename(&spare_dir, &d).unwrap();
                std::thread::sleep(Duration::from_micros(100));
                swaps += 1;
            }
            swaps
        })
    };
    let caches: Vec<PathBuf> = (0..SERVERS)
        .map(|i| base.join(format!("cache{i}")))
        .collect();
    let servers: Vec<Served> = caches
        .iter()
        .map(|c| {
            let s = Served::start(
                &root,
                &[&["--prehash".into()], &etag_cache_args(c)[..]].concat(),
            );
            std::thread::sleep(Duration::from_millis(50));
            s
        })
        .collect();
    // wait (bounded) for every walk to finish, then stop the swapping
    let deadline = Instant::now() + Duration::from_secs(15);
    for s in &servers {
        while !s.stderr_text().contains("done in") && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    stop.store(true, Ordering::Relaxed);
    let swaps = swapper.join().unwrap();
    for s in servers {
        s.terminate(Duration::from_secs(15)); // a graceful shutdown flushes the cache
    }
    let mut leaked = Vec::new();
    for c in &caches {
        let text = std::fs::read_to_string(c)
            .unwrap_or_else(|e| panic!("no ETag cache at {}: {e}", c.display()));
        // an honest run: the prehash did record the file inside
        assert!(
            text.contains(&inside),
            "{}: the prehash did not record big.bin",
            c.display()
        );
        let mut bad = 0;
        for line in text.lines() {
            let f: Vec<&str> = line.split(' ').collect();
            // v1 lines: digest dev ino size mtime ctime hex(path)
            let secret_digest = f.first().is_some_and(|d| secret_digests.contains(*d));
            let secret_inode =
                f.len() == 7 && f[2].parse().is_ok_and(|i| secret_inodes.contains(&i));
            let outside_path = f.len() == 7
                && hex::decode(f[6])
                    .is_ok_and(|p| !p.starts_with(root.as_os_str().as_encoded_bytes()));
            if secret_digest || secret_inode || outside_path {
                bad += 1;
            }
        }
        let named = secret_paths.iter().any(|p| {
            let b = p.as_os_str().as_encoded_bytes();
            text.contains(&hex::encode(b)) || text.contains(p.to_str().unwrap())
        });
        if bad > 0 || named {
            leaked.push(format!("{}: {bad} entries", c.display()));
        }
    }
    eprintln!(
        "prehash_walk_swap: {swaps} swaps, {SERVERS} start-ups, {} recorded a file outside the root {leaked:?}",
        leaked.len()
    );
    assert!(
        leaked.is_empty(),
        "prehash recorded files outside the root: {leaked:?}"
    );
}
