//! The container image's command lines, tested without a Docker engine.
//!
//! The `Dockerfile` at the repository root is read and its final stage's
//! `ENTRYPOINT`, `CMD`, `HEALTHCHECK`, `EXPOSE`, `USER` and version label are
//! parsed from the file itself (nothing is copied into this test), then the
//! real binary is run with exactly those arguments, talked to over TCP, and
//! stopped the way `docker stop` does. So an edit to the Dockerfile that would
//! give a broken container (a flag the binary refuses, a health check that
//! fails, a port mismatch) fails `cargo test`.
//!
//! Two substitutions are made, always the same and in one place
//! ([`container_args`]): the port `8080` becomes `0` (8080 may be taken on
//! the test machine, and tests run in parallel, so each server picks a free
//! port and the test reads it from the startup line), and `/data` becomes a
//! temporary directory (the image's mount point does not exist here).
//!
//! Every child is killed and reaped on drop, so a failing assertion never
//! leaks a server; every wait is bounded.

mod common;

use common::get_close;
use std::ffi::OsString;
use std::io::{self, BufRead, BufReader, Read};
use std::net::{SocketAddr, TcpListener};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_rangeserve");
const DOCKERFILE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/Dockerfile");
/// The program name the image's command lines start with (on the image's PATH).
const PROGRAM: &str = "rangeserve";
/// The directory the image serves (its mount point).
const DATA: &str = "/data";
const PREFIX: &str = "listening on http://";

/// Longest we wait for the startup line (tests run in parallel on busy CI).
const STARTUP: Duration = Duration::from_secs(20);
/// Longest a command that exits by itself (health check, shutdown) may take.
const EXIT_WAIT: Duration = Duration::from_secs(15);

// ---------------------------------------------------------------------------
// The Dockerfile
// ---------------------------------------------------------------------------

/// One instruction: its keyword (upper case) and the rest of its (joined) line.
#[derive(Debug, Clone)]
struct Instruction {
    keyword: String,
    args: String,
}

/// The Dockerfile's instructions, continuation lines joined and comments
/// dropped, as Docker reads them.
fn instructions(text: &str) -> Vec<Instruction> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        // Comment lines go, also in the middle of a continued instruction.
        if trimmed.starts_with('#') || (trimmed.is_empty() && current.is_empty()) {
            continue;
        }
        if let Some(head) = trimmed.strip_suffix('\\') {
            current.push_str(head);
            current.push(' ');
            continue;
        }
        current.push_str(trimmed);
        let joined = std::mem::take(&mut current);
        let joined = joined.trim();
        if joined.is_empty() {
            continue;
        }
        let (keyword, args) = joined
            .split_once(char::is_whitespace)
            .unwrap_or((joined, ""));
        out.push(Instruction {
            keyword: keyword.to_ascii_uppercase(),
            args: args.trim().to_string(),
        });
    }
    assert!(
        current.trim().is_empty(),
        "Dockerfile ends inside a continued line"
    );
    out
}

/// What the tests need from the final (runtime) stage.
#[derive(Debug)]
struct Image {
    entrypoint: Vec<String>,
    cmd: Vec<String>,
    healthcheck: Vec<String>,
    expose: Vec<String>,
    user: String,
    workdir: String,
    /// `ARG NAME=default` of the final stage.
    args: Vec<(String, String)>,
    labels: String,
    copies: Vec<String>,
}

impl Image {
    fn arg(&self, name: &str) -> Option<&str> {
        self.args
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

fn image() -> Image {
    let text = std::fs::read_to_string(DOCKERFILE).expect("read Dockerfile");
    let all = instructions(&text);
    let last_from = all
        .iter()
        .rposition(|i| i.keyword == "FROM")
        .expect("Dockerfile has a FROM");
    assert!(
        all[..last_from].iter().any(|i| i.keyword == "FROM"),
        "the Dockerfile should be multi-stage (builder + runtime)"
    );
    let stage = &all[last_from + 1..];
    // The last of each of these counts, as in Docker.
    let last = |kw: &str| -> Option<&Instruction> { stage.iter().rev().find(|i| i.keyword == kw) };
    let exec_form = |kw: &str| -> Vec<String> {
        let i = last(kw).unwrap_or_else(|| panic!("no {kw} in the Dockerfile's final stage"));
        json_string_array(&i.args)
            .unwrap_or_else(|e| panic!("{kw} must be a JSON array (exec form): {e}: {:?}", i.args))
    };
    let healthcheck = {
        let i = last("HEALTHCHECK").expect("no HEALTHCHECK in the final stage");
        let mut rest = i.args.as_str();
        while let Some(opt) = rest.strip_prefix("--") {
            let end = opt.find(char::is_whitespace).unwrap_or(opt.len());
            rest = opt[end..].trim_start();
        }
        let json = rest
            .strip_prefix("CMD")
            .unwrap_or_else(|| panic!("HEALTHCHECK without CMD: {:?}", i.args));
        json_string_array(json.trim())
            .unwrap_or_else(|e| panic!("HEALTHCHECK CMD must be a JSON array: {e}: {json:?}"))
    };
    Image {
        entrypoint: exec_form("ENTRYPOINT"),
        cmd: exec_form("CMD"),
        healthcheck,
        expose: stage
            .iter()
            .filter(|i| i.keyword == "EXPOSE")
            .flat_map(|i| i.args.split_whitespace().map(str::to_string))
            .collect(),
        user: last("USER")
            .expect("no USER in the final stage")
            .args
            .clone(),
        workdir: last("WORKDIR").map(|i| i.args.clone()).unwrap_or_default(),
        args: stage
            .iter()
            .filter(|i| i.keyword == "ARG")
            .filter_map(|i| {
                let (n, v) = i.args.split_once('=')?;
                Some((n.trim().to_string(), v.trim().trim_matches('"').to_string()))
            })
            .collect(),
        labels: stage
            .iter()
            .filter(|i| i.keyword == "LABEL")
            .map(|i| i.args.as_str())
            .collect::<Vec<_>>()
            .join(" "),
        copies: stage
            .iter()
            .filter(|i| i.keyword == "COPY")
            .map(|i| i.args.clone())
            .collect(),
    }
}

/// Parse a JSON array of strings (the exec form of ENTRYPOINT, CMD, HEALTHCHECK).
fn json_string_array(s: &str) -> Result<Vec<String>, String> {
    let mut chars = s.trim().chars().peekable();
    let skip_ws = |c: &mut std::iter::Peekable<std::str::Chars>| {
        while c.peek().is_some_and(|ch| ch.is_whitespace()) {
            c.next();
        }
    };
    if chars.next() != Some('[') {
        return Err("does not start with '['".into());
    }
    let mut out = Vec::new();
    skip_ws(&mut chars);
    if chars.peek() == Some(&']') {
        chars.next();
    } else {
        loop {
            skip_ws(&mut chars);
            if chars.next() != Some('"') {
                return Err("expected a string".into());
            }
            let mut item = String::new();
            loop {
                match chars.next().ok_or("unterminated string")? {
                    '"' => break,
                    '\\' => match chars.next().ok_or("unterminated escape")? {
                        '"' => item.push('"'),
                        '\\' => item.push('\\'),
                        '/' => item.push('/'),
                        'n' => item.push('\n'),
                        't' => item.push('\t'),
                        'r' => item.push('\r'),
                        'u' => {
                            let hex: String = (0..4).filter_map(|_| chars.next()).collect();
                            let code = u32::from_str_radix(&hex, 16).map_err(|e| e.to_string())?;
                            item.push(char::from_u32(code).ok_or("bad \\u escape")?);
                        }
                        other => return Err(format!("unknown escape \\{other}")),
                    },
                    c => item.push(c),
                }
            }
            out.push(item);
            skip_ws(&mut chars);
            match chars.next() {
                Some(',') => continue,
                Some(']') => break,
                _ => return Err("expected ',' or ']'".into()),
            }
        }
    }
    skip_ws(&mut chars);
    if chars.next().is_some() {
        return Err("text after the closing ']'".into());
    }
    Ok(out)
}

/// The image's port: the value after `--port`/`-p` in ENTRYPOINT.
fn port_in(args: &[String]) -> Option<&str> {
    args.iter().enumerate().find_map(|(i, a)| match a.as_str() {
        "--port" | "-p" => args.get(i + 1).map(String::as_str),
        _ => a.strip_prefix("--port="),
    })
}

/// Turn one of the image's command lines into arguments for the binary built
/// here: drop the program name (we run `BIN`, not whatever `rangeserve` is on
/// PATH), and make the only two substitutions this file makes:
/// - the port becomes 0: 8080 may be in use here and tests run in parallel,
///   so every server picks a free port and we read it from the startup line;
/// - `/data` becomes `dir`: the image's mount point does not exist outside it.
fn container_args(cmdline: &[String], dir: &Path) -> Vec<OsString> {
    assert_eq!(
        cmdline.first().map(String::as_str),
        Some(PROGRAM),
        "the image's command lines should start with {PROGRAM:?}: {cmdline:?}"
    );
    let mut out = Vec::new();
    let mut port_next = false;
    for a in &cmdline[1..] {
        if port_next {
            out.push(OsString::from("0"));
            port_next = false;
        } else if a == "--port" || a == "-p" {
            out.push(OsString::from(a));
            port_next = true;
        } else if a.starts_with("--port=") {
            out.push(OsString::from("--port=0"));
        } else if a == DATA {
            out.push(dir.as_os_str().to_owned());
        } else {
            out.push(OsString::from(a));
        }
    }
    out
}

// ---------------------------------------------------------------------------
// Children
// ---------------------------------------------------------------------------

/// A spawned process, killed and reaped on drop. Stdout's first line is read
/// on a thread (bounded wait for it); the rest of stdout and stderr are
/// drained so the child never blocks on a full pipe.
struct Proc {
    child: Child,
    first_line_rx: Receiver<io::Result<String>>,
    stderr_rx: Receiver<Vec<u8>>,
}

impl Proc {
    fn spawn(mut cmd: Command) -> Proc {
        let mut child = cmd
            .env_remove("RANGESERVE_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
        let stdout = child.stdout.take().unwrap();
        let (line_tx, first_line_rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut line = String::new();
            let _ = line_tx.send(reader.read_line(&mut line).map(|_| line));
            let _ = io::copy(&mut reader, &mut io::sink());
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
            stderr_rx,
        }
    }

    /// Everything the child wrote on stderr (kills it first if still running).
    fn stderr(&mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let err = self
            .stderr_rx
            .recv_timeout(Duration::from_secs(5))
            .unwrap_or_default();
        String::from_utf8_lossy(&err).into_owned()
    }

    /// Wait (bounded) for stdout's first line.
    fn first_line(&mut self) -> String {
        match self.first_line_rx.recv_timeout(STARTUP) {
            Ok(Ok(line)) if !line.is_empty() => line,
            Ok(Ok(_)) => panic!("stdout closed without a line; stderr: {}", self.stderr()),
            Ok(Err(e)) => panic!("reading stdout: {e}"),
            Err(_) => panic!(
                "no startup line within {STARTUP:?}; stderr: {}",
                self.stderr()
            ),
        }
    }

    /// Wait for the child to exit by itself, at most `timeout`.
    fn wait_timeout(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Wait (bounded) for exit; panics with stderr if it does not come.
    fn exit_status(&mut self, what: &str) -> ExitStatus {
        match self.wait_timeout(EXIT_WAIT) {
            Some(s) => s,
            None => panic!(
                "{what} still running after {EXIT_WAIT:?}; stderr: {}",
                self.stderr()
            ),
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A running server and the loopback address to reach it at.
struct Server {
    proc: Proc,
    addr: SocketAddr,
}

impl Server {
    fn start(cmd: Command) -> Server {
        let mut proc = Proc::spawn(cmd);
        let line = proc.first_line();
        let addr = addr_from_line(&line);
        Server { proc, addr }
    }

    /// Stop it as `docker stop` does (SIGTERM) and expect a clean exit 0.
    fn stop(mut self) {
        let pid = self.proc.child.id().to_string();
        let status = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("run kill(1)");
        assert!(status.success(), "kill -TERM {pid} failed");
        let status = self.proc.exit_status("rangeserve after SIGTERM");
        assert!(status.success(), "exit after SIGTERM: {status}");
    }
}

/// `listening on http://ADDR:PORT/\n` -> the loopback address with that port
/// (the image binds 0.0.0.0, which is reached at 127.0.0.1).
fn addr_from_line(line: &str) -> SocketAddr {
    let hostport = line
        .strip_suffix('\n')
        .and_then(|l| l.strip_prefix(PREFIX))
        .and_then(|l| l.strip_suffix('/'))
        .unwrap_or_else(|| panic!("unexpected startup line {line:?}"));
    let addr: SocketAddr = hostport
        .parse()
        .unwrap_or_else(|e| panic!("bad address in startup line {line:?}: {e}"));
    assert_ne!(addr.port(), 0, "the startup line must show the real port");
    let ip = if addr.ip().is_unspecified() {
        "127.0.0.1".parse().unwrap()
    } else {
        addr.ip()
    };
    SocketAddr::new(ip, addr.port())
}

/// The image's command line as a `Command` for the binary built here.
fn command(cmdline: &[String], dir: &Path) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args(container_args(cmdline, dir));
    cmd
}

/// ENTRYPOINT followed by `rest` (what `docker run IMAGE rest...` runs).
fn entrypoint_plus(image: &Image, rest: &[&str]) -> Vec<String> {
    let mut v = image.entrypoint.clone();
    v.extend(rest.iter().map(|s| s.to_string()));
    v
}

/// The HEALTHCHECK command with the URL's port pointed at `port`.
fn healthcheck_command(image: &Image, port: u16) -> Command {
    let hc = container_args(&image.healthcheck, Path::new(DATA));
    let image_port = port_in(&image.entrypoint).expect("a --port in ENTRYPOINT");
    let mut cmd = Command::new(BIN);
    let mut urls = 0;
    for a in hc {
        let a = a.into_string().expect("UTF-8 argument");
        if a.starts_with("http://") {
            urls += 1;
            let from = format!(":{image_port}/");
            assert!(
                a.contains(&from),
                "health check URL {a:?} is not on port {image_port}"
            );
            cmd.arg(a.replacen(&from, &format!(":{port}/"), 1));
        } else {
            cmd.arg(a);
        }
    }
    assert_eq!(
        urls, 1,
        "one URL in the HEALTHCHECK: {:?}",
        image.healthcheck
    );
    cmd
}

/// A temporary directory holding `hello.txt` and `sub/a.bin`.
fn data_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("hello.txt"), HELLO).unwrap();
    std::fs::create_dir(dir.path().join("sub")).unwrap();
    std::fs::write(
        dir.path().join("sub/a.bin"),
        (0..=255u8).collect::<Vec<_>>(),
    )
    .unwrap();
    dir
}

const HELLO: &[u8] = b"Hello from the container's /data.\n";

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

#[test]
fn dockerfile_final_stage_is_consistent() {
    let image = image();
    assert_eq!(image.cmd, [DATA], "CMD serves the mount point");
    assert_eq!(
        image.workdir, DATA,
        "WORKDIR is the mount point too, so a bare `docker run IMAGE -q` serves it"
    );
    assert_eq!(image.entrypoint.first().map(String::as_str), Some(PROGRAM));
    assert_eq!(image.healthcheck.first().map(String::as_str), Some(PROGRAM));

    let port = port_in(&image.entrypoint).expect("ENTRYPOINT sets --port");
    assert!(
        image
            .expose
            .iter()
            .any(|e| e == port || *e == format!("{port}/tcp")),
        "EXPOSE {:?} should include the ENTRYPOINT's port {port}",
        image.expose
    );
    let url = image
        .healthcheck
        .iter()
        .find(|a| a.starts_with("http://"))
        .expect("the HEALTHCHECK checks a URL");
    assert!(
        url.contains(&format!(":{port}/")),
        "{url} is not on port {port}"
    );
    let bind = image
        .entrypoint
        .iter()
        .position(|a| a == "--bind" || a == "-b")
        .and_then(|i| image.entrypoint.get(i + 1))
        .expect("ENTRYPOINT sets --bind");
    assert!(
        bind == "0.0.0.0" || bind == "::",
        "inside a container the server must bind all addresses, not {bind}"
    );

    // A fixed, numeric, non-root user (Kubernetes' runAsNonRoot can check it).
    let uid = image.user.split(':').next().unwrap();
    let uid: u32 = uid
        .parse()
        .unwrap_or_else(|_| panic!("USER {:?} is not numeric", image.user));
    assert_ne!(uid, 0, "the image must not run as root");

    // The binary is where ENTRYPOINT and HEALTHCHECK find it on PATH.
    assert!(
        image
            .copies
            .iter()
            .any(|c| c.starts_with("--from=") && c.ends_with(" /usr/local/bin/rangeserve")),
        "COPY --from=builder ... /usr/local/bin/rangeserve missing: {:?}",
        image.copies
    );

    // The version label follows Cargo.toml.
    assert!(image
        .labels
        .contains("org.opencontainers.image.version=\"${VERSION}\""));
    assert_eq!(
        image.arg("VERSION"),
        Some(env!("CARGO_PKG_VERSION")),
        "ARG VERSION vs Cargo.toml"
    );
}

/// The builder's dependency step runs on the real manifest with stub sources
/// only: every target Cargo.toml declares must get a stub there, or cargo
/// refuses the manifest and the image does not build (it once failed so on
/// the `[[example]]`). This runs that step's own shell command in an empty
/// directory holding only Cargo.toml and Cargo.lock, with its `cargo build`
/// swapped for `cargo fetch --locked --offline --target HOST`, which parses the manifest
/// and its targets the same way without compiling anything. (The image
/// itself is built and run by tests/container/run.)
#[test]
fn dependency_stub_step_satisfies_every_declared_target() {
    let text = std::fs::read_to_string(DOCKERFILE).expect("read Dockerfile");
    let all = instructions(&text);
    let copy = all
        .iter()
        .position(|i| i.keyword == "COPY" && i.args.starts_with("Cargo.toml Cargo.lock"))
        .expect("the builder copies Cargo.toml and Cargo.lock on their own first");
    let run = all[copy + 1..]
        .iter()
        .find(|i| i.keyword == "RUN")
        .expect("a RUN after the manifest COPY");
    let steps: Vec<String> = run
        .args
        .split("&&")
        .map(|s| s.trim().to_string())
        .map(|s| {
            if s.starts_with("cargo build") {
                // for this platform only: crates for others (windows-sys)
                // were never downloaded by the builds before this test
                "cargo fetch --locked --offline --target \"$(rustc -vV | sed -n 's/^host: //p')\""
                    .to_string()
            } else {
                s
            }
        })
        .collect();
    assert!(
        steps.iter().any(|s| s.starts_with("cargo fetch")),
        "the dependency step should build: {:?}",
        run.args
    );
    let dir = tempfile::tempdir().unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for f in ["Cargo.toml", "Cargo.lock"] {
        std::fs::copy(root.join(f), dir.path().join(f)).unwrap();
    }
    let out = Command::new("sh")
        .arg("-c")
        .arg(steps.join(" && "))
        .current_dir(dir.path())
        .env_remove("CARGO_TARGET_DIR")
        .output()
        .expect("run sh");
    assert!(
        out.status.success(),
        "the Dockerfile's dependency step fails on the real manifest:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn json_arrays_parse_like_docker() {
    assert_eq!(json_string_array("[]").unwrap(), Vec::<String>::new());
    assert_eq!(
        json_string_array(r#"[ "a" ,"b c", "q\"\\\u0041" ]"#).unwrap(),
        ["a", "b c", "q\"\\A"]
    );
    assert!(json_string_array("rangeserve /data").is_err(), "shell form");
    assert!(json_string_array(r#"["a""#).is_err());
    assert!(json_string_array(r#"["a"] x"#).is_err());
    let ins = instructions("# c\nFROM a AS b\nRUN x \\\n  # comment\n  && y\n\ncmd [\"z\"]\n");
    let kw: Vec<_> = ins
        .iter()
        .map(|i| (i.keyword.as_str(), i.args.as_str()))
        .collect();
    assert_eq!(
        kw,
        [("FROM", "a AS b"), ("RUN", "x  && y"), ("CMD", "[\"z\"]")]
    );
}

#[test]
fn entrypoint_and_cmd_serve_the_directory_and_stop_on_sigterm() {
    let image = image();
    let dir = data_dir();
    let mut cmdline = image.entrypoint.clone();
    cmdline.extend(image.cmd.iter().cloned());
    let server = Server::start(command(&cmdline, dir.path()));

    let res = get_close(server.addr, "/hello.txt", &[]);
    assert_eq!(res.status_line, "HTTP/1.1 200 OK");
    assert_eq!(res.body, HELLO);
    // The health check's path answers 200 on a directory without index.html.
    let res = get_close(server.addr, "/", &[]);
    assert_eq!(res.status_line, "HTTP/1.1 200 OK", "listing of /");

    server.stop();
}

#[test]
fn entrypoint_takes_extra_flags_before_the_directory() {
    // `docker run IMAGE --no-listing /data` replaces CMD: the flags are
    // appended to ENTRYPOINT and must still parse.
    let image = image();
    let dir = data_dir();
    let cmdline = entrypoint_plus(&image, &["--no-listing", "-q", DATA]);
    let server = Server::start(command(&cmdline, dir.path()));
    let res = get_close(server.addr, "/sub/a.bin", &[("Range", "bytes=-2")]);
    assert_eq!(res.status_line, "HTTP/1.1 206 Partial Content");
    assert_eq!(res.header("Content-Range"), Some("bytes 254-255/256"));
    assert_eq!(res.body, [254, 255]);
    assert_eq!(
        get_close(server.addr, "/sub/", &[]).status_line,
        "HTTP/1.1 404 Not Found"
    );
    server.stop();
}

#[test]
fn healthcheck_passes_against_the_server_and_fails_on_a_closed_port() {
    let image = image();
    let dir = data_dir();
    let mut cmdline = image.entrypoint.clone();
    cmdline.extend(image.cmd.iter().cloned());
    let server = Server::start(command(&cmdline, dir.path()));

    let mut hc = Proc::spawn(healthcheck_command(&image, server.addr.port()));
    let status = hc.exit_status("the health check");
    assert!(
        status.success(),
        "health check of a running server: {status}; stderr: {}",
        hc.stderr()
    );
    server.stop();

    // A port nobody listens on: bind one, note it, close it.
    let closed = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut hc = Proc::spawn(healthcheck_command(&image, closed));
    let status = hc.exit_status("the health check");
    assert!(!status.success(), "health check of a closed port must fail");
}

/// `Uid:` of /proc/PID/status: (real, effective).
fn uids(pid: &str) -> (u32, u32) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read /proc status");
    let line = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .expect("Uid line");
    let mut it = line.split_whitespace().map(|n| n.parse::<u32>().unwrap());
    (it.next().unwrap(), it.next().unwrap())
}

/// Restores write permission on drop so the temporary directory can be removed.
struct Writable(PathBuf);

impl Drop for Writable {
    fn drop(&mut self) {
        let _ = std::fs::set_permissions(&self.0, std::fs::Permissions::from_mode(0o755));
    }
}

fn find_in_path(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join(name))
            .find(|f| f.is_file())
    })
}

#[test]
fn starts_as_non_root_user_on_a_read_only_directory() {
    let image = image();
    let (uid, gid) = match image.user.split_once(':') {
        Some((u, g)) => (u.to_string(), g.to_string()),
        None => (image.user.clone(), image.user.clone()),
    };

    // The served tree is read-only to everyone: dir 0555, files 0444, as a
    // `-v "$PWD:/data:ro"` mount looks to the image's user. Its parent is
    // 0755 so that user can reach it (tempdir() makes 0700 directories).
    let tmp = tempfile::tempdir().unwrap();
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let data = tmp.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let content: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(data.join("big.bin"), &content).unwrap();
    std::fs::set_permissions(data.join("big.bin"), std::fs::Permissions::from_mode(0o444)).unwrap();
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o555)).unwrap();
    let _writable = Writable(data.clone());

    let mut cmdline = image.entrypoint.clone();
    cmdline.extend(image.cmd.iter().cloned());
    let args = container_args(&cmdline, &data);

    let (me, _) = uids("self");
    let expected_uid: u32;
    let cmd = if me == 0 {
        // As root (as in CI): drop to the image's user, as `USER` does.
        let Some(setpriv) = find_in_path("setpriv") else {
            eprintln!("SKIPPED: running as root and setpriv (util-linux) is not on PATH");
            return;
        };
        let as_user = |prog: &str| {
            let mut c = Command::new(&setpriv);
            c.arg(format!("--reuid={uid}"))
                .arg(format!("--regid={gid}"))
                .arg("--clear-groups")
                .arg(prog);
            c
        };
        // The user must be able to execute the test binary at all (a target
        // directory under a 0700 home would stop it): a precondition of this
        // machine, not a property of rangeserve.
        let mut probe = as_user(BIN);
        probe.arg("--version");
        let mut probe = Proc::spawn(probe);
        if !probe.wait_timeout(EXIT_WAIT).is_some_and(|s| s.success()) {
            eprintln!(
                "SKIPPED: uid {uid} cannot execute {BIN} (directory permissions on its path)"
            );
            return;
        }
        expected_uid = uid.parse().expect("numeric USER");
        let mut c = as_user(BIN);
        c.args(&args);
        c
    } else {
        // Already unprivileged: the read-only tree is the point.
        expected_uid = me;
        let mut c = Command::new(BIN);
        c.args(&args);
        c
    };

    let server = Server::start(cmd);
    // setpriv execs rangeserve, so the child's pid is the server's.
    let pid = server.proc.child.id().to_string();
    assert_eq!(
        uids(&pid),
        (expected_uid, expected_uid),
        "the server's real and effective uid"
    );

    let res = get_close(server.addr, "/big.bin", &[]);
    assert_eq!(res.status_line, "HTTP/1.1 200 OK");
    assert_eq!(res.body, content);
    let etag = res.header("ETag").expect("an ETag").to_string();

    let res = get_close(
        server.addr,
        "/big.bin",
        &[("Range", "bytes=100-199"), ("If-Range", &etag)],
    );
    assert_eq!(res.status_line, "HTTP/1.1 206 Partial Content");
    assert_eq!(res.header("Content-Range"), Some("bytes 100-199/10000"));
    assert_eq!(res.body, &content[100..200]);

    let res = get_close(server.addr, "/", &[]);
    assert_eq!(
        res.status_line, "HTTP/1.1 200 OK",
        "listing a read-only directory"
    );

    server.stop();
}
