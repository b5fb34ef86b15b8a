//! A dependent's view: a download-client test written only against the
//! documented API (no `#[doc(hidden)]` module, no test harness of ours), as
//! a crate with `rangeserve` in its `[dev-dependencies]` would write it.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};

use rangeserve::rfc::range::{self, RangeSpec};
use rangeserve::{JournalEntry, Server};

/// A minimal client: one GET with extra headers, the raw answer.
fn get(addr: SocketAddr, path: &str, headers: &str) -> Vec<u8> {
    let mut tcp = TcpStream::connect(addr).unwrap();
    write!(
        tcp,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{headers}\r\n"
    )
    .unwrap();
    let mut raw = Vec::new();
    tcp.read_to_end(&mut raw).unwrap();
    raw
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fixture_resume_test_with_the_public_api_only() {
    let dir = tempfile::tempdir().unwrap();
    let data: Vec<u8> = (0..10_000u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(dir.path().join("file.bin"), &data).unwrap();
    let server = Server::builder()
        .root(dir.path())
        .bind("127.0.0.1:0")
        .quirk("drop-after=4000")
        .spawn()
        .await
        .unwrap();
    let addr = server.local_addr();
    let raw = tokio::task::spawn_blocking(move || {
        let first = get(addr, "/file.bin", "");
        let second = get(addr, "/file.bin", "Range: bytes=4000-4999\r\n");
        (first, second)
    })
    .await
    .unwrap();
    let (first, second) = raw;
    let body =
        |raw: &[u8]| raw[raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4..].to_vec();
    assert!(first.starts_with(b"HTTP/1.1 200 OK\r\n"));
    assert_eq!(body(&first), &data[..4000], "cut after 4000 bytes");
    assert!(second.starts_with(b"HTTP/1.1 206 Partial Content\r\n"));
    assert_eq!(body(&second), &data[4000..5000]);

    // what was sent, from the journal
    let mut sent: Vec<JournalEntry> = server.requests();
    for _ in 0..100 {
        if sent.len() == 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        sent = server.requests();
    }
    assert_eq!(sent.len(), 2);
    assert!(sent[0].aborted && sent[0].bytes_sent == 4000);
    assert_eq!(sent[1].header("range"), Some("bytes=4000-4999"));
    // the pure parsers are public too
    let specs = range::parse(sent[1].header("range").unwrap()).unwrap();
    assert_eq!(
        specs,
        [RangeSpec::FromTo {
            first: 4000,
            last: Some(4999)
        }]
    );
    server.shutdown().await;
}
