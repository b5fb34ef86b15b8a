//! Safe defaults and limits (issue 13) over real TCP: hidden entries, Host
//! rules, header and URI limits, timeouts, the connection cap, panics.

mod common;

use std::os::unix::fs::symlink;
use std::time::Duration;

use common::{RawResponse, TestServer};
use rangeserve::Config;

const NOT_FOUND_BODY: &[u8] = b"404 Not Found\n";

fn assert_404(res: &RawResponse, what: &str) {
    assert_eq!(res.status_line, "HTTP/1.1 404 Not Found", "{what}");
    assert_eq!(res.body, NOT_FOUND_BODY, "{what}: no hint in the body");
}

/// A project folder, as `rangeserve .` would see it.
fn project_files() -> Vec<(&'static str, &'static [u8])> {
    vec![
        ("README.md", b"# readme\n"),
        (".env", b"SECRET_KEY=hunter2\n"),
        (".git/config", b"[core]\n\trepositoryformatversion = 0\n"),
        (".git/HEAD", b"ref: refs/heads/main\n"),
        ("src/.secret", b"nested secret\n"),
        ("src/main.rs", b"fn main() {}\n"),
        (".well-known/security.txt", b"Contact: mailto:a@b\n"),
        (".well-known/.hidden", b"still hidden\n"),
        ("sub/.well-known/x", b"not the root one\n"),
    ]
}

#[test]
fn hidden_entries_are_404_and_unlisted_by_default() {
    let s = TestServer::with_files(&project_files());
    for target in [
        "/.env",
        "/.git/config",
        "/.git/HEAD",
        "/.git/",
        "/.git",
        "/src/.secret",
        "/%2Eenv",
        "/%2egit/config",
        "/.well-known/.hidden",
        "/sub/.well-known/x",
    ] {
        assert_404(&s.get(target, &[]), target);
        let head = s.request("HEAD", target, &[]);
        assert_eq!(head.status_line, "HTTP/1.1 404 Not Found", "HEAD {target}");
    }
    let ok = s.get("/.well-known/security.txt", &[]);
    assert_eq!(ok.status_line, "HTTP/1.1 200 OK");
    assert_eq!(ok.body, b"Contact: mailto:a@b\n");
    assert_eq!(s.get("/README.md", &[]).status(), 200);

    let listing = s.get("/", &[]);
    assert_eq!(listing.status(), 200);
    let html = listing.body_str();
    for hidden in [".env", ".git", "href=\"%2Eenv"] {
        assert!(!html.contains(hidden), "listing shows {hidden}: {html}");
    }
    for shown in ["README.md", "src/", ".well-known/"] {
        assert!(html.contains(shown), "listing lacks {shown}: {html}");
    }
    let src = s.get("/src/", &[]).body_str().to_string();
    assert!(src.contains("main.rs") && !src.contains(".secret"), "{src}");
    let wk = s.get("/.well-known/", &[]).body_str().to_string();
    assert!(
        wk.contains("security.txt") && !wk.contains(".hidden"),
        "{wk}"
    );
}

#[test]
fn a_visible_symlink_never_leads_to_a_hidden_entry() {
    let s = TestServer::with_files(&project_files());
    symlink(".env", s.root.join("env-link")).unwrap();
    symlink(".git", s.root.join("gitdir")).unwrap();
    symlink(s.root.join(".git/config"), s.root.join("abs-link")).unwrap();
    symlink("README.md", s.root.join("readme-link")).unwrap();
    for target in ["/env-link", "/gitdir/config", "/gitdir/", "/abs-link"] {
        assert_404(&s.get(target, &[]), target);
    }
    // a symlink to a visible file still works
    let ok = s.get("/readme-link", &[("Range", "bytes=2-5")]);
    assert_eq!(ok.status_line, "HTTP/1.1 206 Partial Content");
    assert_eq!(ok.body, b"read");
    let html = s.get("/", &[]).body_str().to_string();
    assert!(html.contains("readme-link"), "{html}");
    for link in ["env-link", "gitdir", "abs-link"] {
        assert!(!html.contains(link), "listing shows {link}: {html}");
    }
}

#[test]
fn hidden_option_serves_and_lists_them_all() {
    let s = TestServer::with_files_config(
        &project_files(),
        Config {
            hidden: true,
            ..Config::default()
        },
    );
    let env = s.get("/.env", &[("Range", "bytes=0-9")]);
    assert_eq!(env.status_line, "HTTP/1.1 206 Partial Content");
    assert_eq!(env.body, b"SECRET_KEY");
    assert_eq!(s.get("/.git/config", &[]).status(), 200);
    assert_eq!(s.get("/src/.secret", &[]).body, b"nested secret\n");
    symlink(".env", s.root.join("env-link")).unwrap();
    assert_eq!(s.get("/env-link", &[]).body, b"SECRET_KEY=hunter2\n");
    let html = s.get("/", &[]).body_str().to_string();
    assert!(html.contains(".env") && html.contains(".git/"), "{html}");
}

#[test]
fn escaping_symlinks_only_with_follow_symlinks() {
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("shared.txt"), b"outside bytes\n").unwrap();
    let files = [("in.txt", &b"in\n"[..])];
    let strict = TestServer::with_files(&files);
    symlink(outside.path().join("shared.txt"), strict.root.join("out")).unwrap();
    assert_404(&strict.get("/out", &[]), "escaping symlink, default");

    let open = TestServer::with_files_config(
        &files,
        Config {
            follow_symlinks: true,
            ..Config::default()
        },
    );
    symlink(outside.path().join("shared.txt"), open.root.join("out")).unwrap();
    symlink(outside.path(), open.root.join("outdir")).unwrap();
    let res = open.get("/out", &[("Range", "bytes=8-12")]);
    assert_eq!(res.status_line, "HTTP/1.1 206 Partial Content");
    assert_eq!(res.body, b"bytes");
    assert_eq!(open.get("/outdir/shared.txt", &[]).body, b"outside bytes\n");
    // traversal in the URL stays refused whatever the symlink policy
    assert_404(&open.get("/../x", &[]), "dot-dot with --follow-symlinks");
}

#[test]
fn prehash_skips_hidden_files() {
    let big = vec![7u8; 300 * 1024]; // above the small-file size: prehash would hash it
    let s = TestServer::with_files_config(
        &[(".git/objects/pack.bin", &big), ("visible.bin", &big)],
        Config {
            prehash: true,
            ..Config::default()
        },
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while s.hashes.computed() < 1 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(s.hashes.computed(), 1, "only visible.bin is hashed");
}

/// Send raw bytes on a fresh connection and read until the server closes it.
fn exchange(s: &TestServer, bytes: &[u8]) -> String {
    let mut conn = s.connect();
    conn.send_raw(bytes);
    String::from_utf8_lossy(&conn.read_to_end()).into_owned()
}

#[test]
fn host_rules_of_rfc_9112_section_3_2() {
    let s = TestServer::fixtures();
    // each is answered 400 and the connection closes: the second request on
    // the same connection is never answered
    for (what, head) in [
        ("no Host", "GET /hello.txt HTTP/1.1\r\n"),
        (
            "two Host lines",
            "GET /hello.txt HTTP/1.1\r\nHost: a\r\nHost: a\r\n",
        ),
        ("space in Host", "GET /hello.txt HTTP/1.1\r\nHost: a b\r\n"),
        (
            "userinfo in Host",
            "GET /hello.txt HTTP/1.1\r\nHost: u@a\r\n",
        ),
        ("bad port", "GET /hello.txt HTTP/1.1\r\nHost: a:8o\r\n"),
        ("path in Host", "GET /hello.txt HTTP/1.1\r\nHost: a/b\r\n"),
    ] {
        let req = format!("{head}\r\nGET /hello.txt HTTP/1.1\r\nHost: a\r\n\r\n");
        let got = exchange(&s, req.as_bytes());
        assert!(
            got.starts_with("HTTP/1.1 400 Bad Request\r\n"),
            "{what}: {got:?}"
        );
        assert!(got.contains("\r\nConnection: close\r\n"), "{what}: {got:?}");
        assert!(
            got.ends_with("\r\n\r\n400 Bad Request\n"),
            "{what}: {got:?}"
        );
        assert_eq!(got.matches("HTTP/1.1 ").count(), 1, "{what}: {got:?}");
    }
    // legal: HTTP/1.0 without Host, an empty Host, IPv6 literal, absolute form
    for (what, head) in [
        ("HTTP/1.0 without Host", "GET /hello.txt HTTP/1.0\r\n"),
        (
            "empty Host",
            "GET /hello.txt HTTP/1.1\r\nHost:\r\nConnection: close\r\n",
        ),
        (
            "IPv6 Host",
            "GET /hello.txt HTTP/1.1\r\nHost: [::1]:80\r\nConnection: close\r\n",
        ),
        (
            "absolute form",
            "GET http://a/hello.txt HTTP/1.1\r\nHost: a\r\nConnection: close\r\n",
        ),
    ] {
        let got = exchange(&s, format!("{head}\r\n").as_bytes());
        let status = if head.contains("HTTP/1.0") {
            "HTTP/1.0 200 OK\r\n"
        } else {
            "HTTP/1.1 200 OK\r\n"
        };
        assert!(got.starts_with(status), "{what}: {got:?}");
        let hello = String::from_utf8(common::fixture("hello.txt")).unwrap();
        assert!(got.ends_with(&hello), "{what}: {got:?}");
    }
}

fn limits(f: impl FnOnce(&mut rangeserve::config::Limits)) -> Config {
    let mut l = rangeserve::config::Limits::default();
    f(&mut l);
    Config {
        limits: l,
        ..Config::default()
    }
}

#[test]
fn long_targets_get_414_and_many_headers_431() {
    let s = TestServer::with_files_config(
        &[("a.txt", b"abc")],
        limits(|l| {
            l.max_uri_bytes = 1000;
            l.max_headers = 10;
        }),
    );
    let long = format!("/{}", "x".repeat(1000));
    let got = exchange(
        &s,
        format!("GET {long} HTTP/1.1\r\nHost: a\r\n\r\n").as_bytes(),
    );
    assert!(got.starts_with("HTTP/1.1 414 URI Too Long\r\n"), "{got:?}");
    assert!(got.contains("\r\nConnection: close\r\n"), "{got:?}");
    let fits = format!("/{}", "x".repeat(998));
    assert_eq!(
        s.get(&fits, &[]).status(),
        404,
        "999 bytes is within the limit"
    );
    let query = format!("/a.txt?{}", "q".repeat(1000));
    assert_eq!(s.get(&query, &[]).status(), 414, "the query counts");

    let mut req = String::from("GET /a.txt HTTP/1.1\r\nHost: a\r\n");
    for i in 0..10 {
        req.push_str(&format!("X-{i}: v\r\n"));
    }
    let got = exchange(&s, format!("{req}\r\n").as_bytes());
    assert!(got.starts_with("HTTP/1.1 431 "), "11 header lines: {got:?}");
    let nine: Vec<(String, String)> = (0..9).map(|i| (format!("X-{i}"), "v".into())).collect();
    let nine: Vec<(&str, &str)> = nine.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
    assert_eq!(s.get("/a.txt", &nine).body, b"abc", "10 header lines pass");
}

#[test]
fn a_client_trickling_its_head_is_dropped_after_the_header_timeout() {
    let s = TestServer::with_files_config(
        &[("a.txt", b"abc")],
        limits(|l| l.timeouts.header = Duration::from_secs(1)),
    );
    let mut conn = s.connect();
    let start = std::time::Instant::now();
    conn.send_raw(b"GET /a.txt HTTP/1.1\r\n");
    let mut closed_at = None;
    for _ in 0..40 {
        std::thread::sleep(Duration::from_millis(100));
        if std::io::Write::write_all(conn.reader.get_mut(), b"X").is_err() {
            closed_at = Some(start.elapsed());
            break;
        }
    }
    // the server closes; writes fail once the close is seen (an RST after
    // unread bytes), or reads see EOF
    let got = conn.read_to_end();
    let elapsed = closed_at.unwrap_or_else(|| start.elapsed());
    assert!(got.is_empty(), "no response to a partial head: {got:?}");
    assert!(
        elapsed < Duration::from_secs(3),
        "closed after {elapsed:?}, want ~1 s"
    );
    assert_eq!(s.get("/a.txt", &[]).body, b"abc");
}

#[test]
fn a_partial_head_gets_the_header_timeout_even_when_the_idle_one_is_shorter() {
    let s = TestServer::with_files_config(
        &[("a.txt", b"abc")],
        limits(|l| {
            l.timeouts.idle = Duration::from_millis(500);
            l.timeouts.header = Duration::from_secs(2);
        }),
    );
    let mut conn = s.connect();
    conn.send_raw(b"GET /a.txt HTTP/1.1\r\nHost: x\r\n");
    let start = std::time::Instant::now();
    assert!(
        conn.read_to_end().is_empty(),
        "no response to a partial head"
    );
    let elapsed = start.elapsed();
    assert!(
        elapsed >= Duration::from_millis(1800) && elapsed < Duration::from_secs(4),
        "closed after {elapsed:?}, want ~2 s (the header limit, not the idle one)"
    );
}

#[test]
fn idle_keep_alive_connections_close_but_slow_responses_do_not() {
    let data = common::pattern(64 * 1024);
    let s = TestServer::with_files_config(
        &[("a.txt", b"abc"), ("big.bin", &data)],
        Config {
            quirks_mode: true,
            ..limits(|l| l.timeouts.idle = Duration::from_secs(1))
        },
    );
    // silent from the start
    let mut conn = s.connect();
    let start = std::time::Instant::now();
    assert!(conn.read_to_end().is_empty());
    let idle = start.elapsed();
    assert!(
        idle >= Duration::from_millis(900) && idle < Duration::from_secs(3),
        "{idle:?}"
    );
    // silent after a response, cold or warm (a warm one completes within
    // the poll that read its head: the idle limit applies, not the header one)
    for _ in 0..2 {
        let mut conn = s.connect();
        conn.send("GET", "/a.txt", &[]);
        assert_eq!(conn.read_response(false).body, b"abc");
        let start = std::time::Instant::now();
        assert!(conn.is_closed());
        let elapsed = start.elapsed();
        assert!(elapsed < Duration::from_secs(3), "closed after {elapsed:?}");
    }
    // a response that takes 2 s (throttled) is not idle time
    let mut conn = s.connect();
    let start = std::time::Instant::now();
    conn.send("GET", "/_quirks/throttle=32k/big.bin", &[]);
    let res = conn.read_response(false);
    assert!(start.elapsed() >= Duration::from_millis(1500), "throttled");
    assert_eq!(res.body, data, "the whole body, byte for byte");
}

#[test]
fn a_client_that_stops_reading_is_cut_after_the_send_timeout() {
    let data = common::pattern(32 << 20);
    let s = TestServer::with_files_config(
        &[("big.bin", &data)],
        limits(|l| l.timeouts.send = Duration::from_secs(1)),
    );
    let mut conn = s.connect();
    conn.send("GET", "/big.bin", &[]);
    // socket buffers fill, the server's writes stall; after ~1 s it gives up
    std::thread::sleep(Duration::from_secs(3));
    let start = std::time::Instant::now();
    let got = conn.read_to_end();
    assert!(start.elapsed() < Duration::from_secs(5), "already closed");
    assert!(
        got.len() < data.len() / 2,
        "{} bytes arrived: the connection was cut",
        got.len()
    );
    // what did arrive is the file's first bytes after the head
    let head_end = got.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    assert_eq!(&got[head_end..], &data[..got.len() - head_end]);
    assert_eq!(
        s.get("/big.bin", &[("Range", "bytes=0-3")]).body,
        &data[..4]
    );
}

#[test]
fn connections_beyond_the_cap_wait_in_the_backlog() {
    let s = TestServer::with_files_config(&[("a.txt", b"abc")], limits(|l| l.max_connections = 2));
    let mut held: Vec<_> = (0..2)
        .map(|_| {
            let mut c = s.connect();
            c.send("GET", "/a.txt", &[]);
            assert_eq!(c.read_response(false).body, b"abc");
            c
        })
        .collect();
    let mut third = s.connect(); // the kernel completes the handshake
    third.send("GET", "/a.txt", &[]);
    third
        .reader
        .get_ref()
        .set_read_timeout(Some(Duration::from_millis(700)))
        .unwrap();
    let mut b = [0u8; 1];
    let waited = std::io::Read::read(&mut third.reader, &mut b);
    assert!(
        matches!(&waited, Err(e) if e.kind() == std::io::ErrorKind::WouldBlock || e.kind() == std::io::ErrorKind::TimedOut),
        "not served while two connections are open: {waited:?}"
    );
    held.pop(); // one leaves: the third is accepted and answered
    third
        .reader
        .get_ref()
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut rest = Vec::new();
    let _ = std::io::Read::read_to_end(&mut third.reader, &mut rest);
    let text = rest;
    assert!(
        text.starts_with(b"HTTP/1.1 200 OK\r\n"),
        "{:?}",
        String::from_utf8_lossy(&text)
    );
}

#[cfg(debug_assertions)]
#[test]
fn a_panicking_handler_answers_500_and_the_server_stays_up() {
    let s = TestServer::fixtures();
    for _ in 0..3 {
        let res = s.get("/_rangeserve/debug/panic", &[]);
        assert_eq!(res.status_line, "HTTP/1.1 500 Internal Server Error");
        assert_eq!(res.body, b"500 Internal Server Error\n");
    }
    assert_eq!(s.get("/hello.txt", &[]).body, common::fixture("hello.txt"));
}

#[test]
fn a_100k_entry_directory_is_listed_in_bounded_pages() {
    let s = TestServer::with_files(&[("big/.keep", b"")]);
    let big = s.root.join("big");
    for i in 0..100_000 {
        std::fs::File::create(big.join(format!("file-{i:06}.bin"))).unwrap();
    }
    let started = std::time::Instant::now();
    let pages: Vec<RawResponse> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..8)
            .map(|_| scope.spawn(|| s.get("/big/", &[])))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for page in &pages {
        assert_eq!(page.status_line, "HTTP/1.1 200 OK");
        assert!(page.body.len() < 256 * 1024, "{} bytes", page.body.len());
        assert_eq!(page.body, pages[0].body);
    }
    let first = pages[0].body_str();
    assert_eq!(first.matches("<tr><td><a href=\"file-").count(), 1000);
    assert!(first.contains("href=\"file-000000.bin\""));
    assert!(first.contains("href=\"file-000999.bin\""));
    assert!(!first.contains("file-001000.bin"));
    assert!(first.contains("1000 entries on this page"), "{first}");
    // the next page starts right after
    let next = first
        .split("rel=\"next\" href=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("a next link")
        .replace("&amp;", "&");
    let second = s.get(&format!("/big/{next}"), &[]);
    let second = second.body_str();
    assert!(second.contains("href=\"file-001000.bin\""), "{next}");
    assert!(second.contains("href=\"file-001999.bin\""));
    assert!(!second.contains("file-000999.bin"));
    // the last page has no next link
    let last = s.get("/big/?after=f/file-099990.bin", &[]);
    let last = last.body_str();
    assert_eq!(last.matches("<tr><td><a href=\"file-").count(), 9);
    assert!(!last.contains("rel=\"next\""));
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
}
