//! The floor under the small-request scenarios (S1, S5): a server that does
//! nothing but read request heads and write one fixed answer from memory,
//! on tokio's current-thread scheduler, as rangeserve runs on one CPU. No
//! parsing beyond the blank line, no file, no clock, no log. What it reaches
//! per CPU-second against nginx, pinned and loaded as the harness does, is
//! the most any tokio server can reach on that machine: a target above it is
//! out of reach however little a request costs.
//!
//! ```text
//! cargo build --release --example floor
//! taskset -c 0 target/release/examples/floor -p 19556 [FILE]
//! taskset -c 1 wrk -t1 -c32 -d6s http://127.0.0.1:19556/small.txt
//! ```
//!
//! With FILE, every answer is a 200 with FILE's bytes (S1); without, a 304
//! with the head rangeserve sends for `/small.txt` (S5).

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
