//! The ceiling over the small-request scenarios (S1, S5): a server that
//! does less than any HTTP server can, on the event loop every Linux server
//! here is built on (`epoll`, through mio, with no runtime above it). It
//! holds one file, `small.txt`, read at start, and answers every request
//! head it receives with that file (a 200) or, when the head carries
//! `If-None-Match`, with a 304. No parsing beyond that, no path, no stat,
//! no clock, no log, no timeouts, no task scheduler.
//!
//! The floor (`examples/floor.rs`) is what a tokio server doing the same
//! reaches. What this reaches per CPU-second against nginx, pinned and
//! loaded as the harness does, bounds what any server reaches on that
//! machine: a target above it is out of reach however little a request
//! costs, and a target near it asks a real server to cost no more than
//! the kernel's share of a request.
//!
//! ```text
//! cargo build --release --example ceiling
//! python3 ../shared/bench/bench.py --peer nginx --scenarios S1,S5 \
//!   --server "ceiling=target/release/examples/ceiling -p {port} {dir}"
//! ```

use std::io::{ErrorKind, Read, Write};

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};

const LISTENER: Token = Token(usize::MAX);
/// rangeserve's validators for the harness's `small.txt`, so that the heads
/// are as long as rangeserve's.
const FIELDS: &str = "Date: Tue, 01 Dec 2026 21:41:17 GMT\r\n\
    Etag: \"bb85b3db29e7a66bb22e7caa1e8ad01d95d6c4bacb1a0d61140144b12382106f\"\r\n\
    Last-Modified: Tue, 01 Dec 2026 19:17:06 GMT\r\nCache-Control: no-cache\r\n";

struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
    have: usize,
}

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let (mut port, mut dir) = (19556u16, String::from("."));
    while let Some(a) = args.next() {
        match a.as_str() {
            "-p" => port = args.next().and_then(|p| p.parse().ok()).expect("-p PORT"),
            _ => dir = a,
        }
    }
    let body = std::fs::read(std::path::Path::new(&dir).join("small.txt"))?;
    let mut ok = format!(
        "HTTP/1.1 200 OK\r\n{FIELDS}Accept-Ranges: bytes\r\nContent-Type: text/plain\r\n\
         Content-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    ok.extend_from_slice(&body);
    let not_modified = format!("HTTP/1.1 304 Not Modified\r\n{FIELDS}\r\n").into_bytes();

    let mut listener = TcpListener::bind(([127, 0, 0, 1], port).into())?;
    println!("listening on http://127.0.0.1:{port}/");
    let mut poll = Poll::new()?;
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)?;
    let mut conns: Vec<Option<Conn>> = Vec::new();
    let mut events = Events::with_capacity(256);
    let mut out = Vec::with_capacity(64 * 1024);
    loop {
        poll.poll(&mut events, None)?;
        for event in &events {
            if event.token() == LISTENER {
                while let Ok((mut stream, _)) = listener.accept() {
                    stream.set_nodelay(true)?;
                    let slot = conns.iter().position(Option::is_none).unwrap_or_else(|| {
                        conns.push(None);
                        conns.len() - 1
                    });
                    poll.registry()
                        .register(&mut stream, Token(slot), Interest::READABLE)?;
                    conns[slot] = Some(Conn {
                        stream,
                        buf: vec![0; 8192],
                        have: 0,
                    });
                }
                continue;
            }
            let slot = event.token().0;
            let Some(conn) = conns[slot].as_mut() else {
                continue;
            };
            if !serve(conn, &ok, &not_modified, &mut out) {
                let mut gone = conns[slot].take().expect("the connection just served");
                poll.registry().deregister(&mut gone.stream)?;
            }
        }
    }
}

/// Read what `conn` has and answer every complete head in one write; false
/// when the connection is done with. Edge-triggered, and a read shorter
/// than the room it had is taken to have drained the socket (as tokio
/// takes it): data that comes later raises a new edge, so the read that
/// would only say "would block" is not made.
fn serve(conn: &mut Conn, ok: &[u8], not_modified: &[u8], out: &mut Vec<u8>) -> bool {
    loop {
        let room = conn.buf.len() - conn.have;
        let drained = match conn.stream.read(&mut conn.buf[conn.have..]) {
            Ok(0) => return false,
            Ok(n) => {
                conn.have += n;
                n < room
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => return true,
            Err(e) if e.kind() == ErrorKind::Interrupted => false,
            Err(_) => return false,
        };
        out.clear();
        let mut start = 0;
        while let Some(end) = conn.buf[start..conn.have]
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
        {
            let head = &conn.buf[start..start + end];
            let conditional = head
                .windows(b"if-none-match:".len())
                .any(|w| w.eq_ignore_ascii_case(b"if-none-match:"));
            out.extend_from_slice(if conditional { not_modified } else { ok });
            start += end + 4;
        }
        conn.buf.copy_within(start..conn.have, 0);
        conn.have -= start;
        // A full socket buffer ends the connection too: the small answers
        // this sends to a client that reads them never fill it.
        if conn.have == conn.buf.len() || conn.stream.write_all(out).is_err() {
            return false; // a head this ceiling does not take, or a write it could not make
        }
        if drained {
            return true;
        }
    }
}
