//! The library API as a test fixture: the builder, independent servers in one
//! process, graceful shutdown, and --prehash.

mod common;

use std::time::{Duration, Instant};

use common::{pattern, Conn, TestServer};
use rangeserve::{Config, Server};

fn dir_with(files: &[(&str, &[u8])]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (name, data) in files {
        std::fs::write(dir.path().join(name), data).unwrap();
    }
    dir
}

fn status_of(addr: std::net::SocketAddr, target: &str) -> u16 {
    let mut conn = Conn::new(addr);
    conn.send("GET", target, &[]);
    conn.read_response(false).status()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn servers_in_one_process_do_not_share_quirk_counters() {
    let dir = dir_with(&[("f.txt", b"hello")]);
    let a = Server::builder()
        .root(dir.path())
        .bind("127.0.0.1:0")
        .quirk("fail-first=1")
        .spawn()
        .await
        .unwrap();
    let b = Server::builder()
        .root(dir.path())
        .bind("127.0.0.1:0")
        .quirk("fail-first=1")
        .spawn()
        .await
        .unwrap();
    assert_ne!(a.local_addr(), b.local_addr());
    let (aa, ba) = (a.local_addr(), b.local_addr());
    let statuses = tokio::task::spawn_blocking(move || {
        [
            status_of(aa, "/f.txt"),
            status_of(aa, "/f.txt"),
            status_of(ba, "/f.txt"),
            status_of(ba, "/f.txt"),
        ]
    })
    .await
    .unwrap();
    assert_eq!(statuses, [503, 200, 503, 200]);
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn builder_errors_are_values_not_panics() {
    let dir = dir_with(&[]);
    let bad_quirk = Server::builder()
        .root(dir.path())
        .bind("127.0.0.1:0")
        .quirk("drop-after=x")
        .spawn()
        .await;
    let e = bad_quirk.err().expect("bad quirk is an Err").to_string();
    assert!(
        e.contains("drop-after") && e.contains("valid quirks"),
        "{e}"
    );
    let bad_addr = Server::builder()
        .root(dir.path())
        .bind("localhost")
        .spawn()
        .await;
    assert!(bad_addr.is_err());
    let missing = Server::builder()
        .root(dir.path().join("nope"))
        .bind("127.0.0.1:0")
        .spawn()
        .await;
    assert!(missing.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_waits_for_in_flight_responses_and_drop_stops_the_server() {
    let data = pattern(256 * 1024);
    let dir = dir_with(&[("f.bin", &data)]);
    // throttled to ~0.5 s per response so the shutdown lands mid-body
    let server = Server::builder()
        .root(dir.path())
        .bind("127.0.0.1:0")
        .quirk("throttle=512k")
        .spawn()
        .await
        .unwrap();
    let addr = server.local_addr();
    let download = tokio::task::spawn_blocking(move || {
        let mut conn = Conn::new(addr);
        conn.send("GET", "/f.bin", &[]);
        conn.read_response(false)
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = Instant::now();
    server.shutdown().await;
    let res = download.await.unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.body == data, "the in-flight body completed");
    assert!(
        started.elapsed() > Duration::from_millis(100),
        "shutdown waited for it"
    );
    assert!(
        std::net::TcpStream::connect(addr).is_err(),
        "no longer listening"
    );

    let dropped = Server::builder()
        .root(dir.path())
        .bind("127.0.0.1:0")
        .spawn()
        .await
        .unwrap();
    let addr = dropped.local_addr();
    drop(dropped);
    let deadline = Instant::now() + Duration::from_secs(5);
    while std::net::TcpStream::connect(addr).is_ok() {
        assert!(
            Instant::now() < deadline,
            "dropping the handle stops the server"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[test]
fn prehash_hashes_every_file_in_the_background() {
    let big = pattern(32 * 1024 * 1024);
    let s = TestServer::with_files_config(
        &[("a.bin", &big), ("sub/b.txt", b"bee"), ("c.txt", b"sea")],
        Config {
            prehash: true,
            ..Config::default()
        },
    );
    // connections are accepted at once, whatever the prehash is doing
    let mut conn = s.connect();
    conn.send("GET", "/c.txt", &[]);
    assert_eq!(conn.read_response(false).body, b"sea");
    drop(conn);
    // c.txt by that request, a.bin by the prehash (small files are hashed
    // when opened, from the bytes they are served from, never prehashed)
    let deadline = Instant::now() + Duration::from_secs(30);
    while s.hashes.computed() < 2 {
        assert!(Instant::now() < deadline, "prehash did not finish");
        std::thread::sleep(Duration::from_millis(20));
    }
    for target in ["/a.bin", "/sub/b.txt", "/c.txt"] {
        let mut c = s.connect();
        c.send("GET", target, &[("Range", "bytes=0-0")]);
        assert_eq!(c.read_response(false).status(), 206);
    }
    assert_eq!(
        s.hashes.computed(),
        3,
        "every file was hashed once, by the prehash or a request"
    );
}
