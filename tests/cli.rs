//! End-to-end tests of the `rangeserve` binary itself: the startup line on
//! stdout, logging on stderr, clean one-line failures, `--help`/`--version`,
//! `--no-listing`, and graceful shutdown on SIGTERM/SIGINT. Every test spawns
//! the real executable and talks to it over TCP with a tiny raw HTTP/1.1
//! client; every child is killed on drop and every wait is bounded.

mod common;

use common::{get_close, Conn, RawResponse};
use std::ffi::OsStr;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_rangeserve");
const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures");
const PREFIX: &str = "listening on http://";

/// Longest we wait for the startup line (tests run in parallel on busy CI).
const STARTUP: Duration = Duration::from_secs(20);
/// Socket read/write timeout: a stalled server fails the test instead of hanging it.
const IO_TIMEOUT: Duration = Duration::from_secs(20);
/// Longest a failing invocation may take to exit.
const EXIT_WAIT: Duration = Duration::from_secs(10);

fn fixtures() -> PathBuf {
    PathBuf::from(FIXTURES)
}

fn hello() -> Vec<u8> {
    std::fs::read(fixtures().join("hello.txt")).unwrap()
}

// ---------------------------------------------------------------------------
// The child process
// ---------------------------------------------------------------------------

/// A spawned `rangeserve`. Stdout and stderr are drained on threads (so the
/// child never blocks on a full pipe); the child is killed and reaped on drop,
/// so a failing assertion never leaks a server.
struct Proc {
    child: Child,
    first_line_rx: Receiver<io::Result<String>>,
    first_line: Option<String>,
    stdout_rest_rx: Receiver<Vec<u8>>,
    stderr_rx: Receiver<Vec<u8>>,
}

/// How a child ended and everything it wrote.
#[derive(Debug)]
struct Finished {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

impl Proc {
    fn spawn<I, S>(args: I) -> Proc
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut child = Command::new(BIN)
            .args(args)
            .env_remove("RANGESERVE_LOG")
            // would make a panic print a backtrace, which the tests then catch
            .env("RUST_BACKTRACE", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn rangeserve");

        let stdout = child.stdout.take().unwrap();
        let (first_tx, first_line_rx) = mpsc::channel();
        let (rest_tx, stdout_rest_rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut line = String::new();
            let res = reader.read_line(&mut line).map(|_| line);
            let _ = first_tx.send(res);
            let mut rest = Vec::new();
            let _ = reader.read_to_end(&mut rest);
            let _ = rest_tx.send(rest);
        });

        let mut stderr = child.stderr.take().unwrap();
        let (err_tx, stderr_rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut all = Vec::new();
            let _ = stderr.read_to_end(&mut all);
            let _ = err_tx.send(all);
        });

        Proc {
            child,
            first_line_rx,
            first_line: None,
            stdout_rest_rx,
            stderr_rx,
        }
    }

    /// Spawn and wait for the startup line; returns the process and the
    /// address parsed from that line.
    fn start<I, S>(args: I) -> (Proc, String, SocketAddr)
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut p = Proc::spawn(args);
        let line = p.first_line();
        let addr = addr_from_line(&line);
        (p, line, addr)
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Stdout's first line, with its newline (waits for it, bounded).
    fn first_line(&mut self) -> String {
        if let Some(l) = &self.first_line {
            return l.clone();
        }
        let line = match self.first_line_rx.recv_timeout(STARTUP) {
            Ok(Ok(line)) => line,
            Ok(Err(e)) => panic!("reading stdout failed: {e}"),
            Err(_) => {
                let _ = self.child.kill();
                let _ = self.child.wait();
                let err = self
                    .stderr_rx
                    .recv_timeout(Duration::from_secs(5))
                    .unwrap_or_default();
                panic!(
                    "no startup line on stdout within {STARTUP:?}; stderr: {}",
                    String::from_utf8_lossy(&err)
                );
            }
        };
        self.first_line = Some(line.clone());
        line
    }

    /// Poll for exit until `timeout`; `None` if still running.
    fn wait_timeout(&mut self, timeout: Duration) -> Option<ExitStatus> {
        wait_deadline(&mut self.child, timeout)
    }

    fn is_running(&mut self) -> bool {
        self.child.try_wait().expect("try_wait").is_none()
    }

    fn signal(&self, sig: &str) {
        let status = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.pid().to_string())
            .status()
            .expect("run kill(1)");
        assert!(status.success(), "kill -{sig} {} failed", self.pid());
    }

    /// Wait (bounded) for the child to exit by itself, then collect its output.
    fn finish(mut self, timeout: Duration) -> Finished {
        let Some(status) = self.wait_timeout(timeout) else {
            panic!("rangeserve did not exit within {timeout:?}");
        };
        self.collect(status)
    }

    /// SIGTERM the child and wait for its graceful exit (every connection's
    /// work done, its lines written), then collect its output.
    fn stop(self) -> Finished {
        self.signal("TERM");
        let out = self.finish(Duration::from_secs(10));
        assert_eq!(out.status.code(), Some(0), "stderr:\n{}", out.stderr);
        out
    }

    /// SIGKILL the child, then collect its output.
    fn kill(mut self) -> Finished {
        let _ = self.child.kill();
        let status = self.child.wait().expect("wait");
        self.collect(status)
    }

    fn collect(&mut self, status: ExitStatus) -> Finished {
        let t = Duration::from_secs(5);
        let mut stdout = match &self.first_line {
            Some(l) => l.clone(),
            None => match self.first_line_rx.recv_timeout(t) {
                Ok(Ok(l)) => l,
                _ => String::new(),
            },
        };
        let rest = self.stdout_rest_rx.recv_timeout(t).unwrap_or_default();
        stdout.push_str(&String::from_utf8_lossy(&rest));
        let stderr = self.stderr_rx.recv_timeout(t).unwrap_or_default();
        Finished {
            status,
            stdout,
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Run an invocation that is expected to exit by itself (bounded).
fn run<I, S>(args: I) -> Finished
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    Proc::spawn(args).finish(EXIT_WAIT)
}

/// `listening on http://ADDR:PORT/\n` -> ADDR:PORT (panics on anything else).
fn addr_from_line(line: &str) -> SocketAddr {
    let hostport = line
        .strip_suffix('\n')
        .and_then(|l| l.strip_prefix(PREFIX))
        .and_then(|l| l.strip_suffix('/'))
        .unwrap_or_else(|| panic!("unexpected startup line {line:?}"));
    hostport
        .parse()
        .unwrap_or_else(|e| panic!("bad address in startup line {line:?}: {e}"))
}

// ---------------------------------------------------------------------------
// A minimal raw HTTP/1.1 client
// ---------------------------------------------------------------------------

fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect_timeout(&addr, IO_TIMEOUT).expect("connect");
    s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    s.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    s
}

fn send_get(stream: &mut TcpStream, path: &str) {
    let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    stream.write_all(req.as_bytes()).expect("send request");
}

fn get(addr: SocketAddr, path: &str) -> RawResponse {
    get_close(addr, path, &[])
}

fn assert_hello(addr: SocketAddr) {
    let res = get(addr, "/hello.txt");
    assert_eq!(res.status_line, "HTTP/1.1 200 OK");
    assert_eq!(res.body, hello());
}

// ---------------------------------------------------------------------------
// Startup line, serving, logging
// ---------------------------------------------------------------------------

#[test]
fn port_zero_prints_exact_first_line_with_real_port_and_serves() {
    let (p, line, addr) = Proc::start([OsStr::new("-p"), OsStr::new("0"), fixtures().as_os_str()]);
    let port = addr.port();
    assert_ne!(port, 0, "printed port 0 instead of the real one");
    assert_eq!(line, format!("listening on http://127.0.0.1:{port}/\n"));
    assert_hello(addr);
    // the port printed is really the one listening: a second request works too
    assert_hello(addr);
    let out = p.kill();
    assert_eq!(
        out.stdout, line,
        "stdout must hold only the startup line (logs go to stderr)"
    );
}

#[test]
fn long_flags_work_like_short_ones() {
    let (p, line, addr) = Proc::start([
        OsStr::new("--bind"),
        OsStr::new("127.0.0.1"),
        OsStr::new("--port"),
        OsStr::new("0"),
        OsStr::new("--quiet"),
        fixtures().as_os_str(),
    ]);
    assert_eq!(
        line,
        format!("listening on http://127.0.0.1:{}/\n", addr.port())
    );
    assert_hello(addr);
    drop(p);
}

/// Lines of `stderr` that are access-log lines for `path`.
fn log_lines_for<'a>(stderr: &'a str, path: &str) -> Vec<&'a str> {
    let needle = format!("GET {path} ");
    stderr.lines().filter(|l| l.contains(&needle)).collect()
}

#[test]
fn default_mode_logs_one_line_per_request_on_stderr() {
    let (p, line, addr) = Proc::start([OsStr::new("-p"), OsStr::new("0"), fixtures().as_os_str()]);
    assert_hello(addr);
    assert_hello(addr);
    let res = get(addr, "/no-such-file.txt");
    assert_eq!(res.status_line, "HTTP/1.1 404 Not Found");
    // a request's line is written once its answer is sent: SIGKILL right
    // after the answer arrived could come first; a graceful stop cannot
    let out = p.stop();
    let hello_lines = log_lines_for(&out.stderr, "/hello.txt");
    assert_eq!(
        hello_lines.len(),
        2,
        "want one log line per request for /hello.txt; stderr:\n{}",
        out.stderr
    );
    assert!(
        hello_lines.iter().all(|l| l.contains(" 200 ")),
        "{hello_lines:?}"
    );
    let missing = log_lines_for(&out.stderr, "/no-such-file.txt");
    assert_eq!(missing.len(), 1, "stderr:\n{}", out.stderr);
    assert!(missing[0].contains(" 404 "), "{missing:?}");
    assert_eq!(out.stdout, line, "logs must not go to stdout");
}

#[test]
fn quiet_suppresses_per_request_log_lines() {
    let (p, line, addr) = Proc::start([
        OsStr::new("-q"),
        OsStr::new("-p"),
        OsStr::new("0"),
        fixtures().as_os_str(),
    ]);
    assert_hello(addr);
    assert_hello(addr);
    let res = get(addr, "/no-such-file.txt");
    assert_eq!(res.status_line, "HTTP/1.1 404 Not Found");
    let out = p.stop();
    assert!(
        !out.stderr.contains("GET /"),
        "-q must not log requests; stderr:\n{}",
        out.stderr
    );
    assert_eq!(out.stdout, line);
}

#[test]
fn ipv6_loopback_is_printed_in_brackets() {
    if TcpListener::bind("[::1]:0").is_err() {
        eprintln!("skipping: IPv6 loopback [::1] is not available here");
        return;
    }
    let (p, line, addr) = Proc::start([
        OsStr::new("-b"),
        OsStr::new("::1"),
        OsStr::new("-p"),
        OsStr::new("0"),
        fixtures().as_os_str(),
    ]);
    let port = addr.port();
    assert_ne!(port, 0);
    assert_eq!(line, format!("listening on http://[::1]:{port}/\n"));
    assert!(addr.is_ipv6());
    assert_hello(addr);
    drop(p);
}

#[test]
fn no_listing_answers_404_for_a_directory() {
    let (p, _, addr) = Proc::start([
        OsStr::new("--no-listing"),
        OsStr::new("-p"),
        OsStr::new("0"),
        fixtures().as_os_str(),
    ]);
    let res = get(addr, "/");
    assert_eq!(res.status_line, "HTTP/1.1 404 Not Found");
    assert!(
        !String::from_utf8_lossy(&res.body).contains("hello.txt"),
        "404 body must not list the directory"
    );
    let res = get(addr, "/sub/");
    assert_eq!(res.status_line, "HTTP/1.1 404 Not Found");
    // files are still served
    assert_hello(addr);
    drop(p);

    // and without the flag the same directory is listed
    let (p, _, addr) = Proc::start([OsStr::new("-p"), OsStr::new("0"), fixtures().as_os_str()]);
    let res = get(addr, "/");
    assert_eq!(res.status_line, "HTTP/1.1 200 OK");
    assert!(String::from_utf8_lossy(&res.body).contains("hello.txt"));
    drop(p);
}

// ---------------------------------------------------------------------------
// Failures: one clear line, non-zero exit, nothing on stdout
// ---------------------------------------------------------------------------

fn assert_no_crash_text(out: &Finished) {
    let lower = out.stderr.to_lowercase();
    assert!(
        !lower.contains("panicked"),
        "stderr shows a panic:\n{}",
        out.stderr
    );
    assert!(
        !lower.contains("backtrace"),
        "stderr shows a backtrace:\n{}",
        out.stderr
    );
}

/// A runtime error: `rangeserve: error: ...`, at most 3 lines, exit non-zero.
fn assert_runtime_error(out: &Finished) {
    assert!(
        out.status.code().is_some_and(|c| c != 0),
        "want a non-zero exit code (not a signal), got {:?}; stderr:\n{}",
        out.status,
        out.stderr
    );
    assert_eq!(out.stdout, "", "stdout must be empty on failure");
    assert_no_crash_text(out);
    let lines: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| !l.trim().is_empty())
        .collect();
    assert!(!lines.is_empty(), "stderr is empty");
    assert!(
        lines.len() <= 3,
        "stderr too long ({} lines):\n{}",
        lines.len(),
        out.stderr
    );
    assert!(
        lines[0].starts_with("rangeserve: error:"),
        "stderr should start with `rangeserve: error:`:\n{}",
        out.stderr
    );
}

/// An argument error reported by clap: non-zero exit, clap's `error:` message.
fn assert_usage_error(out: &Finished, mentions: &str) {
    assert!(
        out.status.code().is_some_and(|c| c != 0),
        "want a non-zero exit code, got {:?}; stderr:\n{}",
        out.status,
        out.stderr
    );
    assert_eq!(out.stdout, "", "stdout must be empty on failure");
    assert_no_crash_text(out);
    assert!(
        out.stderr.starts_with("error:"),
        "want clap's error message:\n{}",
        out.stderr
    );
    assert!(
        out.stderr.contains(mentions),
        "error should mention {mentions:?}:\n{}",
        out.stderr
    );
    assert!(
        out.stderr.lines().count() <= 6,
        "usage error too long:\n{}",
        out.stderr
    );
}

#[test]
fn missing_dir_fails_cleanly() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("does-not-exist");
    let out = run([OsStr::new("-p"), OsStr::new("0"), missing.as_os_str()]);
    assert_runtime_error(&out);
    assert!(
        out.stderr.contains("does-not-exist"),
        "error should name the directory:\n{}",
        out.stderr
    );
}

#[test]
fn dir_that_is_a_file_fails_cleanly() {
    let file = fixtures().join("hello.txt");
    let out = run([OsStr::new("-p"), OsStr::new("0"), file.as_os_str()]);
    assert_runtime_error(&out);
    assert!(
        out.stderr.contains("hello.txt"),
        "error should name the path:\n{}",
        out.stderr
    );
}

#[test]
fn port_in_use_fails_cleanly() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let out = run([
        OsStr::new("-p"),
        OsStr::new(&port.to_string()),
        fixtures().as_os_str(),
    ]);
    assert_runtime_error(&out);
    assert!(
        out.stderr.contains(&port.to_string()),
        "error should name the port:\n{}",
        out.stderr
    );
    drop(taken);
}

#[test]
fn bad_bind_address_is_a_usage_error() {
    let out = run([
        OsStr::new("-b"),
        OsStr::new("nonsense"),
        OsStr::new("-p"),
        OsStr::new("0"),
        fixtures().as_os_str(),
    ]);
    assert_eq!(out.status.code(), Some(2), "stderr:\n{}", out.stderr);
    assert_eq!(out.stdout, "");
    assert_no_crash_text(&out);
    assert_eq!(out.stderr.lines().count(), 1, "one line:\n{}", out.stderr);
    assert!(
        out.stderr
            .starts_with("rangeserve: error: --bind \"nonsense\""),
        "{}",
        out.stderr
    );
}

#[test]
fn max_ranges_zero_is_a_usage_error() {
    let out = run([
        OsStr::new("--max-ranges"),
        OsStr::new("0"),
        OsStr::new("-p"),
        OsStr::new("0"),
        fixtures().as_os_str(),
    ]);
    assert_usage_error(&out, "--max-ranges");
}

// ---------------------------------------------------------------------------
// --help, --version
// ---------------------------------------------------------------------------

#[test]
fn help_lists_the_options() {
    let out = run(["--help"]);
    assert_eq!(out.status.code(), Some(0), "stderr:\n{}", out.stderr);
    for flag in [
        "--port",
        "--bind",
        "--no-listing",
        "--quiet",
        "--max-ranges",
    ] {
        assert!(
            out.stdout.contains(flag),
            "--help does not mention {flag}:\n{}",
            out.stdout
        );
    }
    assert_no_crash_text(&out);
}

#[test]
fn version_prints_name_and_version() {
    let out = run(["--version"]);
    assert_eq!(out.status.code(), Some(0), "stderr:\n{}", out.stderr);
    assert_eq!(
        out.stdout.trim_end(),
        format!("rangeserve {}", env!("CARGO_PKG_VERSION"))
    );
}

// ---------------------------------------------------------------------------
// Graceful shutdown
// ---------------------------------------------------------------------------

fn assert_idle_signal_exits_zero(sig: &str) {
    let (mut p, line, addr) =
        Proc::start([OsStr::new("-p"), OsStr::new("0"), fixtures().as_os_str()]);
    assert_hello(addr);
    assert!(p.is_running());
    p.signal(sig);
    let out = p.finish(Duration::from_secs(5));
    assert_eq!(
        out.status.code(),
        Some(0),
        "want exit 0 after SIG{sig}, got {:?}; stderr:\n{}",
        out.status,
        out.stderr
    );
    assert_eq!(out.stdout, line);
    assert_no_crash_text(&out);
    // and the port is closed
    let refused = TcpStream::connect_timeout(&addr, Duration::from_secs(2));
    assert!(refused.is_err(), "port still open after exit");
}

#[test]
fn sigterm_when_idle_exits_zero() {
    assert_idle_signal_exits_zero("TERM");
}

#[test]
fn sigterm_with_no_traffic_at_all_exits_zero() {
    let (p, _, _) = Proc::start([OsStr::new("-p"), OsStr::new("0"), fixtures().as_os_str()]);
    // A short pause: signalling *immediately* after the startup line is
    // covered by `sigterm_right_after_startup_line_exits_zero`.
    std::thread::sleep(Duration::from_millis(250));
    p.signal("TERM");
    let out = p.finish(Duration::from_secs(5));
    assert_eq!(
        out.status.code(),
        Some(0),
        "got {:?}; stderr:\n{}",
        out.status,
        out.stderr
    );
    assert_no_crash_text(&out);
}

/// The startup line means "ready", so a supervisor may send SIGTERM the
/// moment it reads it. Here `sh` reads the line straight from the server's
/// stdout and signals it at once; repeated, since it is a race.
#[test]
fn sigterm_right_after_startup_line_exits_zero() {
    const ROUNDS: usize = 300;
    let mut failures = Vec::new();
    for round in 0..ROUNDS {
        let mut server = KillOnDrop(
            Command::new(BIN)
                .args([OsStr::new("-q"), OsStr::new("-p"), OsStr::new("0")])
                .arg(fixtures())
                .env_remove("RANGESERVE_LOG")
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn rangeserve"),
        );
        let stdout = server.0.stdout.take().unwrap();
        let mut killer = KillOnDrop(
            Command::new("sh")
                .arg("-c")
                .arg(r#"read -r line && kill -TERM "$1" && printf '%s\n' "$line""#)
                .arg("sh")
                .arg(server.0.id().to_string())
                .stdin(Stdio::from(stdout))
                .stdout(Stdio::piped())
                .spawn()
                .expect("spawn sh"),
        );
        let status = wait_deadline(&mut server.0, Duration::from_secs(5))
            .unwrap_or_else(|| panic!("round {round}: rangeserve did not exit after SIGTERM"));
        wait_deadline(&mut killer.0, Duration::from_secs(5)).expect("sh exits");
        let mut echoed = String::new();
        killer
            .0
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut echoed)
            .unwrap();
        assert!(
            echoed.starts_with(PREFIX),
            "round {round}: sh read {echoed:?}"
        );
        if status.code() != Some(0) {
            failures.push(status);
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {ROUNDS} rounds: SIGTERM right after the startup line ended the process with {:?}, want exit 0",
        failures.len(),
        failures[0]
    );
}

/// Poll `child` for exit until `timeout`; `None` if still running.
fn wait_deadline(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return Some(status);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Any helper child, killed and reaped on drop.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn sigint_when_idle_exits_zero() {
    assert_idle_signal_exits_zero("INT");
}

/// A deterministic pattern whose period (251) does not divide any power of
/// two, so a misplaced or repeated chunk shows up.
fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| ((i * 31 + 7) % 251) as u8).collect()
}

#[test]
fn sigterm_lets_an_in_flight_download_finish_and_refuses_new_connections() {
    const SIZE: usize = 64 * 1024 * 1024;
    let dir = tempfile::tempdir().unwrap();
    let data = pattern(SIZE);
    std::fs::write(dir.path().join("big.bin"), &data).unwrap();

    let (mut p, _, addr) = Proc::start([
        OsStr::new("-q"),
        OsStr::new("-p"),
        OsStr::new("0"),
        dir.path().as_os_str(),
    ]);

    // Start the download; read the head and a few KiB of body, then stall.
    let mut conn = Conn::new(addr);
    conn.send("GET", "/big.bin", &[("Connection", "close")]);
    let (status_line, headers) = conn.read_head();
    let head = RawResponse {
        status_line,
        headers,
        body: Vec::new(),
    };
    assert_eq!(head.status_line, "HTTP/1.1 200 OK");
    assert_eq!(
        head.header("Content-Length"),
        Some(SIZE.to_string().as_str())
    );
    let mut body = vec![0u8; 4096];
    conn.reader.read_exact(&mut body).expect("first body bytes");
    let mut chunk = vec![0u8; 64 * 1024];
    let s = &mut conn.reader;

    // 64 MiB cannot fit in socket buffers: the response is still in flight.
    p.signal("TERM");

    // New connections are refused once the signal is handled.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match TcpStream::connect_timeout(&addr, Duration::from_secs(1)) {
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => break,
            // a connect that raced the listener's close: queued in its backlog,
            // then reset when it closed. Also never served.
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => break,
            Err(e) => panic!("unexpected connect error after SIGTERM: {e}"),
            Ok(_) => {
                assert!(
                    Instant::now() < deadline,
                    "new connections still accepted 5 s after SIGTERM"
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
    assert!(
        p.is_running(),
        "server exited while a response was still in flight"
    );

    // The in-flight response is delivered completely.
    loop {
        let n = s.read(&mut chunk).unwrap_or_else(|e| {
            panic!(
                "reading the in-flight body failed after {} of {SIZE} bytes: {e}",
                body.len()
            )
        });
        if n == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    assert_eq!(
        body.len(),
        SIZE,
        "in-flight response cut short after SIGTERM"
    );
    if let Some(i) = body.iter().zip(&data).position(|(a, b)| a != b) {
        panic!("body differs from the file at byte {i}");
    }

    // ... and then the process exits 0.
    let out = p.finish(Duration::from_secs(10));
    assert_eq!(
        out.status.code(),
        Some(0),
        "got {:?}; stderr:\n{}",
        out.status,
        out.stderr
    );
    assert_no_crash_text(&out);
}

#[test]
fn a_second_signal_exits_at_once_even_with_a_response_in_flight() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("slow.bin"), vec![7u8; 1024 * 1024]).unwrap();
    // 1 MiB at 64 KiB/s: the response would take 16 s
    let (mut p, _, addr) = Proc::start([
        OsStr::new("-q"),
        OsStr::new("--quirk"),
        OsStr::new("throttle=64k"),
        OsStr::new("-p"),
        OsStr::new("0"),
        dir.path().as_os_str(),
    ]);
    let mut stream = connect(addr);
    send_get(&mut stream, "/slow.bin");
    let mut first = [0u8; 1024];
    stream.read_exact(&mut first).unwrap();
    p.signal("TERM");
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        p.is_running(),
        "the first signal waits for the in-flight response"
    );
    let t = Instant::now();
    p.signal("TERM");
    let out = p.finish(Duration::from_secs(3));
    assert!(t.elapsed() < Duration::from_secs(3));
    assert_eq!(out.status.code(), Some(130), "stderr:\n{}", out.stderr);
    assert!(out.stderr.contains("second signal"), "{}", out.stderr);
}

/// The access lines (and others) of a `--log-format json` server, parsed.
fn json_lines(stderr: &str) -> Vec<serde_json::Value> {
    stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l:?}")))
        .collect()
}

/// A server on port 0 for `dir` that logs JSON lines.
fn json_logging_server(dir: &std::path::Path) -> (Proc, String, SocketAddr) {
    Proc::start([
        OsStr::new("--log-format"),
        OsStr::new("json"),
        OsStr::new("-p"),
        OsStr::new("0"),
        dir.as_os_str(),
    ])
}

#[test]
fn json_access_log_has_one_object_per_response_with_bytes_and_cuts() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("hello.txt"), hello()).unwrap();
    std::fs::write(dir.path().join("big.bin"), vec![b'z'; 8 << 20]).unwrap();
    let (p, _line, addr) = json_logging_server(dir.path());
    let res = get_close(addr, "/hello.txt", &[("Range", "bytes=0-4")]);
    assert_eq!(res.status_line, "HTTP/1.1 206 Partial Content");
    // a download cut after its first bytes
    let mut conn = Conn::new(addr);
    conn.send("GET", "/big.bin", &[]);
    let (status, _) = conn.read_head();
    assert_eq!(status, "HTTP/1.1 200 OK");
    let mut first = [0u8; 1000];
    conn.reader.read_exact(&mut first).unwrap();
    drop(conn);
    assert_eq!(get(addr, "/.env").status(), 404);
    let mut raw = TcpStream::connect(addr).unwrap();
    raw.write_all(b"GET /hello.txt HTTP/1.1\r\n\r\n").unwrap();
    let mut answer = String::new();
    let _ = raw.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 400 "), "{answer:?}");
    std::thread::sleep(Duration::from_millis(500));
    let out = p.kill();
    let lines = json_lines(&out.stderr);
    let access: Vec<_> = lines
        .iter()
        .filter(|l| l["target"] == "rangeserve::access")
        .collect();
    assert_eq!(access.len(), 4, "one per response: {}", out.stderr);
    let by_path = |path: &str| {
        access
            .iter()
            .find(|l| l["path"] == path)
            .unwrap_or_else(|| panic!("no line for {path}: {}", out.stderr))
    };
    let ranged = by_path("/hello.txt");
    assert_eq!(ranged["method"], "GET");
    assert_eq!(ranged["status"], 206);
    assert_eq!(ranged["range"], "bytes=0-4");
    assert_eq!(ranged["bytes"], 5);
    assert_eq!(ranged["cut"], false);
    assert!(ranged["duration_ms"].as_f64().unwrap() >= 0.0);
    assert!(ranged["client"].as_str().unwrap().starts_with("127.0.0.1:"));
    assert!(ranged["timestamp"].is_string() && ranged["level"] == "INFO");
    let cut = by_path("/big.bin");
    assert_eq!(cut["status"], 200);
    assert_eq!(cut["cut"], true, "{cut}");
    assert!(cut["bytes"].as_u64().unwrap() < 8 << 20, "{cut}");
    assert!(cut.get("range").is_none() || cut["range"].is_null());
    assert_eq!(by_path("/.env")["status"], 404);
    assert!(
        access.iter().any(|l| l["status"] == 400),
        "the refused request has its line too: {}",
        out.stderr
    );
    // rejections say why, in their own lines
    assert!(
        lines.iter().any(|l| l["reason"] == "hidden entry"),
        "{}",
        out.stderr
    );
    assert!(
        lines.iter().any(|l| l["reason"] == "no Host header"),
        "{}",
        out.stderr
    );
}

/// A warm answer, which the HTTP/1.1 fast path writes without the request
/// frame, gets the access line that the same request got cold, through the
/// frame: every field but the time and the client's port.
#[test]
fn warm_answers_log_the_access_line_cold_ones_do() {
    use sha2::Digest as _;
    let dir = tempfile::tempdir().unwrap();
    let tag = format!("\"{}\"", hex::encode(sha2::Sha256::digest(hello())));
    // method, target, headers, expected status
    type Row<'a> = (&'a str, &'a str, &'a [(&'a str, &'a str)], u16);
    let rows: &[Row] = &[
        ("GET", "/full.txt", &[], 200),
        ("GET", "/range.txt", &[("Range", "bytes=0-4")], 206),
        ("GET", "/multi.txt", &[("Range", "bytes=0-0,-1")], 206),
        ("HEAD", "/head.txt", &[], 200),
        ("GET", "/query.txt?v=1", &[], 200),
        ("GET", "/unsat.txt", &[("Range", "bytes=99999-")], 416),
        ("GET", "/same.txt", &[("If-None-Match", &tag)], 304),
        ("GET", "/failed.txt", &[("If-Match", "\"other\"")], 412),
    ];
    for (_, target, _, _) in rows {
        let name = target.trim_start_matches('/').split('?').next().unwrap();
        std::fs::write(dir.path().join(name), hello()).unwrap();
    }
    let (p, _line, addr) = json_logging_server(dir.path());
    let mut conn = Conn::new(addr);
    for (method, target, headers, status) in rows {
        for _ in 0..2 {
            conn.send(method, target, headers);
            let res = conn.read_response(*method == "HEAD");
            assert_eq!(res.status(), *status, "{method} {target}");
        }
    }
    drop(conn);
    std::thread::sleep(Duration::from_millis(300));
    let out = p.kill();
    let lines = json_lines(&out.stderr);
    let fields = |l: &serde_json::Value| {
        ["method", "path", "range", "status", "bytes", "cut"].map(|k| l.get(k).cloned())
    };
    for (method, target, _, status) in rows {
        let mine: Vec<_> = lines
            .iter()
            .filter(|l| l["target"] == "rangeserve::access" && l["path"] == *target)
            .collect();
        assert_eq!(
            mine.len(),
            2,
            "a line per answer to {target}: {}",
            out.stderr
        );
        assert_eq!(fields(mine[0]), fields(mine[1]), "{method} {target}");
        assert_eq!(mine[1]["status"], *status);
        assert_eq!(mine[1]["cut"], false);
    }
}

#[test]
fn quiet_still_logs_rejections() {
    let (p, _line, addr) = Proc::start([
        OsStr::new("-q"),
        OsStr::new("-p"),
        OsStr::new("0"),
        fixtures().as_os_str(),
    ]);
    let mut raw = TcpStream::connect(addr).unwrap();
    raw.write_all(b"GET /hello.txt HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    let _ = raw.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 400 "), "{answer:?}");
    let long = format!("/../{}", "x".repeat(5000));
    assert_eq!(get(addr, &long).status(), 404);
    std::thread::sleep(Duration::from_millis(300));
    let out = p.kill();
    assert!(
        out.stderr.contains("more than one Host header"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("refused path"), "{}", out.stderr);
    assert!(
        out.stderr.lines().all(|l| l.len() < 600),
        "request data in logs is clipped: {}",
        out.stderr
    );
    assert!(
        !out.stderr.contains("GET /hello.txt"),
        "no access lines with -q"
    );
}

/// CPU seconds (user + system) the process has used so far.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // fields after the ")" of the command name; utime and stime are 14 and 15
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap();
    ticks / 100.0
}

#[test]
fn out_of_descriptors_the_accept_loop_backs_off_logs_once_and_recovers() {
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(format!("ulimit -n 48 && exec {BIN} -q -p 0 {FIXTURES}"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let addr: SocketAddr = line
        .trim()
        .strip_prefix(PREFIX)
        .and_then(|a| a.strip_suffix('/'))
        .unwrap_or_else(|| panic!("{line:?}"))
        .parse()
        .unwrap();
    // more connections than the server has descriptors for
    let held: Vec<TcpStream> = (0..80)
        .filter_map(|_| TcpStream::connect(addr).ok())
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let before = cpu_seconds(child.id());
    std::thread::sleep(Duration::from_secs(2));
    let spent = cpu_seconds(child.id()) - before;
    assert!(spent < 0.3, "accept loop spun: {spent} CPU-s in 2 s");
    drop(held);
    // the connections it did accept see EOF and end; accepting resumes
    let deadline = Instant::now() + Duration::from_secs(10);
    let res = loop {
        let mut c = TcpStream::connect(addr).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        c.write_all(b"GET /hello.txt HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut got = String::new();
        let _ = c.read_to_string(&mut got);
        if got.starts_with("HTTP/1.1 200 OK") || Instant::now() > deadline {
            break got;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(res.starts_with("HTTP/1.1 200 OK"), "{res:?}");
    let _ = child.kill();
    let _ = child.wait();
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    // once per episode, not once per retry (2 s of retries would be 20 lines);
    // the connections leaving can free descriptors a few at a time
    let episodes = stderr.matches("accept failed").count();
    assert!(
        (1..=3).contains(&episodes),
        "logged once per episode: {stderr}"
    );
    assert!(
        stderr.matches("accepting connections again").count() >= episodes - 1,
        "{stderr}"
    );
    assert!(stderr.contains("accepting connections again"), "{stderr}");
}

// ---------------------------------------------------------------------------
// --threads
// ---------------------------------------------------------------------------

/// How many threads of process `pid` carry the name tokio gives its workers.
fn runtime_workers(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .expect("list the server's threads")
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .filter(|comm| comm.trim_end() == "tokio-rt-worker")
        .count()
}

#[test]
fn threads_sets_the_serving_threads() {
    let (p, _, addr) = Proc::start([
        OsStr::new("-q"),
        OsStr::new("-p"),
        OsStr::new("0"),
        OsStr::new("--threads"),
        OsStr::new("3"),
        fixtures().as_os_str(),
    ]);
    // workers name themselves once started, maybe just after the startup line
    let deadline = Instant::now() + Duration::from_secs(10);
    while runtime_workers(p.pid()) < 3 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(runtime_workers(p.pid()), 3, "--threads 3: three workers");
    assert_hello(addr);
    drop(p);

    let out = run(["--threads", "0", FIXTURES]);
    assert_usage_error(&out, "--threads");
}

/// With `--threads 1` the main thread serves every connection (tokio's
/// current-thread scheduler, the default on one CPU): a download the client
/// stops reading must not hold up the others, ranges stay byte-exact, and
/// SIGTERM still lets the stalled download finish.
#[test]
fn one_serving_thread_serves_connections_side_by_side() {
    const SIZE: usize = 16 * 1024 * 1024;
    let dir = tempfile::tempdir().unwrap();
    let data = pattern(SIZE);
    std::fs::write(dir.path().join("big.bin"), &data).unwrap();
    let (p, _, addr) = Proc::start([
        OsStr::new("-q"),
        OsStr::new("-p"),
        OsStr::new("0"),
        OsStr::new("--threads"),
        OsStr::new("1"),
        dir.path().as_os_str(),
    ]);
    assert_eq!(
        runtime_workers(p.pid()),
        0,
        "--threads 1: no worker threads, the main thread serves"
    );

    // a whole download, stalled by its client after the head
    let mut slow = Conn::new(addr);
    slow.send("GET", "/big.bin", &[]);
    let (status_line, _) = slow.read_head();
    assert_eq!(status_line, "HTTP/1.1 200 OK");

    // meanwhile, other connections are answered
    let r = get_close(addr, "/big.bin", &[("Range", "bytes=1000-1999,-10")]);
    assert_eq!(r.status_line, "HTTP/1.1 206 Partial Content");
    let parts = common::parse_multipart(r.header("Content-Type").unwrap(), &r.body);
    assert_eq!(parts.len(), 2);
    assert_eq!(parts[0].body, &data[1000..2000]);
    assert_eq!(parts[1].body, &data[SIZE - 10..]);
    let r = get_close(addr, "/big.bin", &[("Range", "bytes=5000000-5000099")]);
    assert_eq!(r.status_line, "HTTP/1.1 206 Partial Content");
    assert_eq!(r.body, &data[5_000_000..5_000_100]);
    let etag = r.header("ETag").unwrap().to_string();
    let r = get_close(addr, "/big.bin", &[("If-None-Match", &etag)]);
    assert_eq!(r.status_line, "HTTP/1.1 304 Not Modified");

    // the stalled download finishes byte-exact through a graceful shutdown
    p.signal("TERM");
    let mut body = Vec::with_capacity(SIZE);
    slow.reader.read_to_end(&mut body).unwrap();
    assert!(body == data, "the stalled download's bytes differ");
    let out = p.finish(Duration::from_secs(10));
    assert_eq!(out.status.code(), Some(0), "stderr:\n{}", out.stderr);
    assert_no_crash_text(&out);
}
