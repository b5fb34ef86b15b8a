//! The floor under the small-request scenarios (S1, S5): a server that does
//! nothing but read request heads and write one fixed answer from memory,
//! on tokio's current-thread scheduler, as rangeserve runs on one CPU. No
//! parsing beyond the blank line, no file, no clock, no log. What it reaches
//! per CPU-second against nginx, pinned and loaded as the harness does, is
//! the most any tokio server can reach on that machine: a target above it is
//! out of reach however little a request costs. (`examples/ceiling.rs` is
//! the same with no runtime: a bare `epoll` loop.)
//!
//! ```text
//! cargo build --release --example floor
//! taskset -c 0 target/release/examples/floor -p 19556 [FILE]
//! taskset -c 1 wrk -t1 -c32 -d6s http://127.0.0.1:19556/small.txt
//! ```
//!
//! With FILE, every answer is a 200 with FILE's bytes (S1); without, a 304
//! with the head rangeserve sends for `/small.txt` (S5).
//!
//! With a directory, it is the copying floor (see `serve_dir`): what a
//! server reaches that answers GETs, ranges and `If-None-Match` with
//! nothing else, and copies every byte it sends out of the page cache
//! through a buffer and checks the file is unchanged before it sends them,
//! as rangeserve does to send only bytes it has checked.
//! Files below the top level (S7's 10,000) it opens for each request, with
//! no cache at all: `open`, `fstat`, `pread`, `fstat`, `close`.
//! It passes the harnesses' byte-exact checks, so it runs there beside
//! rangeserve and nginx, in the same rounds:
//!
//! ```text
//! cargo build --release --example floor
//! python3 ../shared/bench/bench.py --peer nginx --server "rangeserve=..." \
//!   --server "floor=target/release/examples/floor -p {port} {dir}"
//! python3 bench/bench.py --scenarios S7 --s7-server "rangeserve=..." \
//!   --s7-server "floor=target/release/examples/floor -p {port} {dir}"
//! ```

use std::os::unix::fs::{FileExt, MetadataExt};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let (mut port, mut file) = (19556u16, None);
    while let Some(a) = args.next() {
        match a.as_str() {
            "-p" => port = args.next().and_then(|p| p.parse().ok()).expect("-p PORT"),
            _ => file = Some(a),
        }
    }
    if let Some(dir) = file
        .as_deref()
        .map(std::path::Path::new)
        .filter(|p| p.is_dir())
    {
        return serve_dir(port, dir).await;
    }
    let answer: &'static [u8] = match file {
        Some(path) => {
            let body = std::fs::read(path)?;
            let mut a = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\
                 Date: Tue, 01 Dec 2026 21:41:17 GMT\r\n\r\n",
                body.len()
            )
            .into_bytes();
            a.extend_from_slice(&body);
            a.leak()
        }
        None => {
            b"HTTP/1.1 304 Not Modified\r\nDate: Tue, 01 Dec 2026 21:41:17 GMT\r\n\
              Etag: \"bb85b3db29e7a66bb22e7caa1e8ad01d95d6c4bacb1a0d61140144b12382106f\"\r\n\
              Last-Modified: Tue, 01 Dec 2026 19:17:06 GMT\r\nCache-Control: no-cache\r\n\r\n"
        }
    };
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    loop {
        let (mut conn, _) = listener.accept().await?;
        conn.set_nodelay(true)?;
        tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            let mut have = 0;
            loop {
                match conn.read(&mut buf[have..]).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => have += n,
                }
                while let Some(end) = buf[..have].windows(4).position(|w| w == b"\r\n\r\n") {
                    if conn.write_all(answer).await.is_err() {
                        return;
                    }
                    buf.copy_within(end + 4..have, 0);
                    have -= end + 4;
                }
                if have == buf.len() {
                    return; // a head this floor does not take
                }
            }
        });
    }
}

/// Files of at most this size are held in memory; larger ones are read from
/// their descriptor for every answer.
const HELD_MAX: u64 = 64 * 1024;
/// The chunk a whole large file is copied in (rangeserve's bulk read size).
const CHUNK: usize = 256 * 1024;
const DATE: &str = "Tue, 01 Dec 2026 21:41:17 GMT";
const BOUNDARY: &str = "e0f79dbafc9dd59126ad01fa59d8a229";

/// One file of the served directory, found once at start.
struct Served {
    held: Option<Vec<u8>>,
    file: std::fs::File,
    size: u64,
    /// Size, mtime and ctime (nanoseconds) when found.
    stamp: (u64, i64, i64),
    etag: String,
    /// The header fields rangeserve sends with this file (a stand-in digest
    /// of the same length: the same bytes go out), after the status line and
    /// `Date`.
    fields: String,
}

/// The directory mode: a server that does the least a server must that
/// sends only bytes it has checked, as rangeserve does: top-level files
/// found once at start, small ones held in memory, others read with `pread`
/// into a buffer, then `fstat` to see the file is still the version found
/// (rangeserve's check, here of size and times), then written with the head
/// in one write. Ranges single (206) and multiple (multipart/byteranges),
/// `If-None-Match` (304). No stat, no clock, no validation of the request
/// beyond what these need, no log. Blocking reads on the async thread: the
/// benchmark's files are in the page cache.
async fn serve_dir(port: u16, dir: &std::path::Path) -> std::io::Result<()> {
    use std::collections::HashMap;
    let mut files = HashMap::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let meta = entry.metadata()?;
        if !meta.is_file() {
            continue;
        }
        let name = format!("/{}", entry.file_name().to_string_lossy());
        let served = found(std::fs::File::open(entry.path())?, &meta, &name)?;
        files.insert(name, served);
    }
    let files: &'static HashMap<String, Served> = Box::leak(Box::new(files));
    let dir: &'static std::path::Path = Box::leak(dir.to_path_buf().into_boxed_path());
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    loop {
        let (mut conn, _) = listener.accept().await?;
        conn.set_nodelay(true)?;
        tokio::spawn(async move {
            let mut buf = vec![0u8; 8192];
            let mut have = 0;
            let mut out = Vec::with_capacity(CHUNK + 1024);
            loop {
                match conn.read(&mut buf[have..]).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => have += n,
                }
                while let Some(end) = buf[..have].windows(4).position(|w| w == b"\r\n\r\n") {
                    out.clear();
                    let Some(rest) = answer(files, dir, &buf[..end], &mut out) else {
                        return;
                    };
                    if conn.write_all(&out).await.is_err() {
                        return;
                    }
                    if let Some((served, mut at, end)) = rest {
                        // a whole large file, chunk by chunk
                        let mut chunk = vec![0u8; CHUNK];
                        while at < end {
                            let n = CHUNK.min((end - at) as usize);
                            if served.file.read_exact_at(&mut chunk[..n], at).is_err()
                                || conn.write_all(&chunk[..n]).await.is_err()
                            {
                                return;
                            }
                            at += n as u64;
                        }
                    }
                    buf.copy_within(end + 4..have, 0);
                    have -= end + 4;
                }
                if have == buf.len() {
                    return; // a head this floor does not take
                }
            }
        });
    }
}

/// `Served` for `file`, opened from `name`, whose metadata is `meta`: small
/// files read whole.
fn found(file: std::fs::File, meta: &std::fs::Metadata, name: &str) -> std::io::Result<Served> {
    let held = (meta.len() <= HELD_MAX)
        .then(|| {
            let mut bytes = vec![0u8; meta.len() as usize];
            file.read_exact_at(&mut bytes, 0).map(|_| bytes)
        })
        .transpose()?;
    let etag = format!("\"{:064x}\"", meta.ino());
    let kind = match name.ends_with(".txt") {
        true => "text/plain",
        false => "application/octet-stream",
    };
    let fields = format!(
        "Etag: {etag}\r\nLast-Modified: {DATE}\r\nCache-Control: no-cache\r\n\
         Repr-Digest: sha-256=:{}=:\r\nAccept-Ranges: bytes\r\nContent-Type: {kind}\r\n",
        "A".repeat(43)
    );
    let size = meta.len();
    Ok(Served {
        held,
        file,
        size,
        stamp: (size, meta.mtime_nsec(), meta.ctime_nsec()),
        etag,
        fields,
    })
}

/// A file below the top level (S7's many small files), opened for this
/// request only: no cache at all. Opened as nginx opens (`O_NONBLOCK`, then
/// `fstat`), read whole if small, checked unchanged after the read; closed
/// when the answer is written. `None` for what is not a small regular file
/// or a path with an empty, `.` or `..` segment.
fn open_fresh(dir: &std::path::Path, path: &str) -> Option<Served> {
    use std::os::unix::fs::OpenOptionsExt;
    let rel = path.strip_prefix('/')?;
    if rel
        .split('/')
        .any(|s| s.is_empty() || s == "." || s == "..")
    {
        return None;
    }
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(dir.join(rel))
        .ok()?;
    let meta = file.metadata().ok()?;
    if !meta.is_file() || meta.len() > HELD_MAX {
        return None;
    }
    let served = found(file, &meta, path).ok()?;
    let now = served.file.metadata().ok()?;
    (now.len(), now.mtime_nsec(), now.ctime_nsec())
        .eq(&served.stamp)
        .then_some(served)
}

/// A large file's bytes `at..end` still to send after the head.
type Rest<'a> = Option<(&'a Served, u64, u64)>;

/// Write into `out` the answer to the request `head` (without its blank
/// line); `None` when the floor cannot answer it.
fn answer<'a>(
    files: &'a std::collections::HashMap<String, Served>,
    dir: &std::path::Path,
    head: &[u8],
    out: &mut Vec<u8>,
) -> Option<Rest<'a>> {
    use std::io::Write;
    let head = std::str::from_utf8(head).ok()?;
    let mut lines = head.split("\r\n");
    let mut request = lines.next()?.split(' ');
    let (method, target) = (request.next()?, request.next()?);
    if method != "GET" {
        return None;
    }
    let (mut range, mut inm) = (None, None);
    for line in lines {
        let (name, value) = line.split_once(':')?;
        if name.eq_ignore_ascii_case("range") {
            range = Some(value.trim());
        } else if name.eq_ignore_ascii_case("if-none-match") {
            inm = Some(value.trim());
        }
    }
    let path = target.split('?').next()?;
    let opened;
    let served = match files.get(path) {
        Some(served) => served,
        None => match open_fresh(dir, path) {
            Some(served) => {
                opened = served;
                &opened
            }
            None => {
                out.extend_from_slice(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
                return Some(None);
            }
        },
    };
    if inm == Some(served.etag.as_str()) {
        let _ = write!(
            out,
            "HTTP/1.1 304 Not Modified\r\nDate: {DATE}\r\nEtag: {}\r\n\
             Last-Modified: {DATE}\r\nCache-Control: no-cache\r\n\r\n",
            served.etag
        );
        return Some(None);
    }
    let pieces: Option<Vec<(u64, u64)>> = range.and_then(|r| r.strip_prefix("bytes=")).map(|r| {
        r.split(',')
            .filter_map(|spec| {
                let (a, b) = spec.trim().split_once('-')?;
                let a: u64 = a.parse().ok()?;
                let b: u64 = b.parse::<u64>().ok()?.min(served.size.checked_sub(1)?);
                (a <= b).then_some((a, b))
            })
            .collect()
    });
    let read = |out: &mut Vec<u8>, a: u64, b: u64| -> Option<()> {
        let len = (b - a + 1) as usize;
        match &served.held {
            Some(bytes) => out.extend_from_slice(&bytes[a as usize..=b as usize]),
            None => {
                let at = out.len();
                out.resize(at + len, 0);
                served.file.read_exact_at(&mut out[at..], a).ok()?;
                // the check rangeserve makes before it sends bytes it read:
                // the file is still the version the head describes
                let now = served.file.metadata().ok()?;
                if (now.len(), now.mtime_nsec(), now.ctime_nsec()) != served.stamp {
                    return None;
                }
            }
        }
        Some(())
    };
    match pieces.as_deref() {
        Some([(a, b)]) => {
            let _ = write!(
                out,
                "HTTP/1.1 206 Partial Content\r\nDate: {DATE}\r\n{}\
                 Content-Length: {}\r\nContent-Range: bytes {a}-{b}/{}\r\n\r\n",
                served.fields,
                b - a + 1,
                served.size,
            );
            read(out, *a, *b)?;
            Some(None)
        }
        Some(many) if many.len() > 1 => {
            let mut body = Vec::new();
            for (a, b) in many {
                let _ = write!(
                    body,
                    "\r\n--{BOUNDARY}\r\nContent-Type: application/octet-stream\r\n\
                     Content-Range: bytes {a}-{b}/{}\r\n\r\n",
                    served.size
                );
                read(&mut body, *a, *b)?;
            }
            let _ = write!(body, "\r\n--{BOUNDARY}--\r\n");
            let _ = write!(
                out,
                "HTTP/1.1 206 Partial Content\r\nDate: {DATE}\r\n{}\
                 Content-Type: multipart/byteranges; boundary={BOUNDARY}\r\n\
                 Content-Length: {}\r\n\r\n",
                served
                    .fields
                    .rsplit_once("Content-Type")
                    .map_or("", |(f, _)| f),
                body.len()
            );
            out.extend_from_slice(&body);
            Some(None)
        }
        _ => {
            let _ = write!(
                out,
                "HTTP/1.1 200 OK\r\nDate: {DATE}\r\n{}Content-Length: {}\r\n\r\n",
                served.fields, served.size
            );
            if let Some(bytes) = &served.held {
                out.extend_from_slice(bytes);
                return Some(None);
            }
            // not held: one of the files found at start
            Some(Some((files.get(path)?, 0, served.size)))
        }
    }
}
