//! Path confinement and names over real TCP: traversal in every spelling,
//! symlinks, FIFOs, encoded and non-UTF-8 names, directory redirects,
//! listings and index.html.

mod common;

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::{Duration, Instant};

use common::{fixture, parse_content_range, RawResponse, TestServer};
use rangeserve::Config;

const SECRET: &[u8] = b"TOP-SECRET-6f1c2d: this file lives outside the served root\n";
const NOT_FOUND_BODY: &[u8] = b"404 Not Found\n";

/// A served root with a secret file and a secret directory beside it:
/// `base/root/` is served, `base/secret.txt` and `base/secret-dir/` are not.
struct Confined {
    server: TestServer,
    // dropped after the server (fields drop in declaration order)
    base: tempfile::TempDir,
}

impl Confined {
    fn new(files: &[(&str, &[u8])], config: Config) -> Confined {
        let base = tempfile::tempdir().unwrap();
        std::fs::write(base.path().join("secret.txt"), SECRET).unwrap();
        std::fs::create_dir(base.path().join("secret-dir")).unwrap();
        std::fs::write(base.path().join("secret-dir/inner.txt"), SECRET).unwrap();
        let root = base.path().join("root");
        std::fs::create_dir(&root).unwrap();
        for (path, data) in files {
            let p = root.join(path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, data).unwrap();
        }
        let server = TestServer::start_with(&root, config);
        Confined { server, base }
    }

    fn root(&self) -> std::path::PathBuf {
        self.base.path().join("root")
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn assert_not_found(res: &RawResponse, what: &str) {
    assert_eq!(res.status_line, "HTTP/1.1 404 Not Found", "{what}");
    assert_eq!(
        res.header("Content-Type"),
        Some("text/plain; charset=utf-8"),
        "{what}"
    );
    assert_eq!(res.header("Content-Length"), Some("14"), "{what}");
    assert_eq!(res.body, NOT_FOUND_BODY, "{what}");
    assert!(!contains(&res.body, SECRET), "{what}: secret leaked");
    assert!(!contains(&res.body, b"root:"), "{what}: /etc/passwd leaked");
}

#[test]
fn traversal_in_every_spelling_is_404_and_never_leaks() {
    let c = Confined::new(
        &[("hello.txt", b"hello\n"), ("sub/nested.txt", b"nested\n")],
        Config::default(),
    );
    let s = &c.server;
    #[rustfmt::skip]
    let lines: &[&[u8]] = &[
        b"GET /../secret.txt HTTP/1.1",
        b"GET /../../etc/passwd HTTP/1.1",
        b"GET /../../../../../../../../etc/passwd HTTP/1.1",
        b"GET /sub/../../secret.txt HTTP/1.1",
        b"GET /./../secret.txt HTTP/1.1",
        b"GET /../secret-dir/inner.txt HTTP/1.1",
        b"GET /../secret-dir/ HTTP/1.1",
        b"GET /.. HTTP/1.1",
        b"GET /../ HTTP/1.1",
        b"GET /%2e%2e/secret.txt HTTP/1.1",
        b"GET /%2e%2e/%2e%2e/etc/passwd HTTP/1.1",
        b"GET /%2E%2E/secret.txt HTTP/1.1",
        b"GET /.%2e/secret.txt HTTP/1.1",
        b"GET /%2e./secret.txt HTTP/1.1",
        b"GET /%2E%2E%2Fsecret.txt HTTP/1.1",
        b"GET /%2E%2E%2Fetc%2Fpasswd HTTP/1.1",
        b"GET /..%2fsecret.txt HTTP/1.1",
        b"GET /sub/..%2f..%2fhello.txt HTTP/1.1",
        b"GET /sub/..%2f..%2fsecret.txt HTTP/1.1",
        b"GET /sub%2f..%2f..%2fsecret.txt HTTP/1.1",
        b"GET /..%5c..%5cetc HTTP/1.1",
        b"GET /..%5csecret.txt HTTP/1.1",
        b"GET /..%5Csecret.txt HTTP/1.1",
        b"GET /..\\secret.txt HTTP/1.1",
        b"GET /..\\..\\etc\\passwd HTTP/1.1",
        b"GET /sub\\..\\..\\secret.txt HTTP/1.1",
        b"GET /hello.txt%00 HTTP/1.1",
        b"GET /hello.txt%00.png HTTP/1.1",
        b"GET /%00/../secret.txt HTTP/1.1",
        b"GET /..%00/secret.txt HTTP/1.1",
        b"GET http://test/../secret.txt HTTP/1.1",
        b"GET http://test/../../etc/passwd HTTP/1.1",
        b"GET http://evil.example/%2e%2e/secret.txt HTTP/1.1",
        b"GET /%252e%252e/secret.txt HTTP/1.1",
        b"GET /%252e%252e%252fsecret.txt HTTP/1.1",
        b"GET /..;/secret.txt HTTP/1.1",
        b"GET /%c0%ae%c0%ae/secret.txt HTTP/1.1",
        b"GET /..%c0%afsecret.txt HTTP/1.1",
        b"GET /secret.txt HTTP/1.1",
        b"GET /secret-dir/inner.txt HTTP/1.1",
        b"HEAD /../secret.txt HTTP/1.1",
    ];
    for line in lines {
        let what = String::from_utf8_lossy(line).into_owned();
        let head = line.starts_with(b"HEAD");
        let mut conn = s.connect();
        let mut req = line.to_vec();
        req.extend_from_slice(b"\r\nHost: test\r\n\r\n");
        conn.send_raw(&req);
        let res = conn.read_response(head);
        if head {
            assert_eq!(res.status_line, "HTTP/1.1 404 Not Found", "{what}");
        } else {
            assert_not_found(&res, &what);
        }
        // the connection stays usable: nothing was half-parsed
        conn.send("GET", "/hello.txt", &[]);
        let ok = conn.read_response(false);
        assert_eq!(ok.status_line, "HTTP/1.1 200 OK", "after {what}");
        assert_eq!(ok.body, b"hello\n", "after {what}");
    }
}

#[test]
fn symlinks_are_followed_only_while_they_stay_inside_the_root() {
    let c = Confined::new(
        &[("inside.txt", b"inside data\n"), ("d/f.txt", b"in d\n")],
        Config::default(),
    );
    let root = c.root();
    let base = c.base.path();
    let link = |target: &Path, name: &str| std::os::unix::fs::symlink(target, root.join(name));
    link(&base.join("secret.txt"), "out-file-abs").unwrap();
    link(Path::new("../secret.txt"), "out-file-rel").unwrap();
    link(&base.join("secret-dir"), "out-dir").unwrap();
    link(Path::new(".."), "parent").unwrap();
    link(Path::new("/etc/passwd"), "passwd").unwrap();
    link(Path::new("inside.txt"), "in-file").unwrap();
    link(&root.join("d"), "in-dir").unwrap();
    link(Path::new("missing.txt"), "dangling").unwrap();
    let s = &c.server;

    for target in [
        "/out-file-abs",
        "/out-file-rel",
        "/out-dir",
        "/out-dir/",
        "/out-dir/inner.txt",
        "/parent",
        "/parent/",
        "/parent/secret.txt",
        "/passwd",
        "/dangling",
    ] {
        assert_not_found(&s.get(target, &[]), target);
        assert_not_found(&s.get(target, &[("Range", "bytes=0-5")]), target);
    }

    // a path through an escaping link whose real target is back inside: served
    let res = s.get("/parent/root/inside.txt", &[]);
    assert_eq!(res.status_line, "HTTP/1.1 200 OK");
    assert_eq!(res.body, b"inside data\n");

    // inside -> inside: served like the target
    let res = s.get("/in-file", &[]);
    assert_eq!(res.status_line, "HTTP/1.1 200 OK");
    assert_eq!(res.body, b"inside data\n");
    assert_eq!(res.header("Accept-Ranges"), Some("bytes"));
    let res = s.get("/in-file", &[("Range", "bytes=0-5")]);
    assert_eq!(res.status_line, "HTTP/1.1 206 Partial Content");
    assert_eq!(res.body, b"inside");
    let res = s.get("/in-dir", &[]);
    assert_eq!(res.status_line, "HTTP/1.1 301 Moved Permanently");
    assert_eq!(res.header("Location"), Some("/in-dir/"));
    let res = s.get("/in-dir/f.txt", &[]);
    assert_eq!(res.status_line, "HTTP/1.1 200 OK");
    assert_eq!(res.body, b"in d\n");

    // the listing shows only what would be served
    let res = s.get("/", &[]);
    assert_eq!(res.status_line, "HTTP/1.1 200 OK");
    let html = res.body_str();
    for hidden in [
        "out-file-abs",
        "out-file-rel",
        "out-dir",
        "parent",
        "passwd",
        "dangling",
    ] {
        assert!(!html.contains(hidden), "listing shows {hidden}:\n{html}");
    }
    assert!(html.contains("<a href=\"in-file\">in-file</a>"), "{html}");
    assert!(html.contains("<a href=\"in-dir/\">in-dir/</a>"), "{html}");
}

#[test]
fn a_fifo_is_404_promptly_and_the_server_keeps_answering() {
    let c = Confined::new(&[("hello.txt", b"hello\n")], Config::default());
    let fifo = c.root().join("pipe");
    let status = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("run mkfifo");
    assert!(status.success(), "mkfifo failed");
    std::os::unix::fs::symlink(&fifo, c.root().join("pipe-link")).unwrap();
    let s = &c.server;
    for target in ["/pipe", "/pipe-link", "/pipe/"] {
        for range in [None, Some("bytes=0-0")] {
            let headers: Vec<(&str, &str)> = range.iter().map(|r| ("Range", *r)).collect();
            let start = Instant::now();
            let res = s.get(target, &headers);
            assert!(
                start.elapsed() < Duration::from_secs(2),
                "{target}: took {:?}",
                start.elapsed()
            );
            assert_not_found(&res, target);
        }
    }
    let mut conn = s.connect();
    conn.send("HEAD", "/pipe", &[]);
    assert_eq!(
        conn.read_response(true).status_line,
        "HTTP/1.1 404 Not Found"
    );
    // several at once: no worker is stuck on the FIFO
    let conns: Vec<_> = (0..8)
        .map(|_| {
            let mut conn = s.connect();
            conn.send("GET", "/pipe", &[]);
            conn
        })
        .collect();
    for mut conn in conns {
        assert_eq!(
            conn.read_response(false).status_line,
            "HTTP/1.1 404 Not Found"
        );
    }
    let res = s.get("/hello.txt", &[]);
    assert_eq!(res.status_line, "HTTP/1.1 200 OK");
    assert_eq!(res.body, b"hello\n");
    // not offered in the listing either
    let html = s.get("/", &[]).body_str().to_string();
    assert!(!html.contains("pipe"), "{html}");
    assert!(html.contains("hello.txt"));
}

#[test]
fn encoded_names_are_served() {
    let s = TestServer::fixtures();
    for (target, name) in [
        ("/with%20space.txt", "with space.txt"),
        ("/caf%C3%A9.txt", "café.txt"),
        ("/caf%c3%a9.txt", "café.txt"),
        ("/%68ello.txt", "hello.txt"),
        ("/sub%2Fnested.txt", ""), // an encoded separator is never a separator
    ] {
        let res = s.get(target, &[]);
        if name.is_empty() {
            assert_not_found(&res, target);
            continue;
        }
        let data = fixture(name);
        assert_eq!(res.status_line, "HTTP/1.1 200 OK", "{target}");
        assert_eq!(res.header("Content-Type"), Some("text/plain"), "{target}");
        assert_eq!(
            res.header("Content-Length"),
            Some(data.len().to_string().as_str())
        );
        assert_eq!(res.body, data, "{target}");
        let res = s.get(target, &[("Range", "bytes=1-3")]);
        assert_eq!(res.status_line, "HTTP/1.1 206 Partial Content");
        assert_eq!(
            res.header("Content-Range"),
            Some(format!("bytes 1-3/{}", data.len()).as_str())
        );
        assert_eq!(res.body, &data[1..4]);
    }
    // a literal space is not a valid request-target
    let mut conn = s.connect();
    conn.send_raw(b"GET /with space.txt HTTP/1.1\r\nHost: test\r\n\r\n");
    let res = conn.read_response(false);
    assert_eq!(res.status(), 400, "{}", res.status_line);
}

#[test]
fn a_non_utf8_file_name_is_served_by_its_encoded_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let name = OsStr::from_bytes(b"bad\xff\xfename.txt");
    std::fs::write(dir.path().join(name), b"latin-1 bytes\n").unwrap();
    let s = TestServer::start_with(dir.path(), Config::default());
    let res = s.get("/bad%FF%FEname.txt", &[]);
    assert_eq!(res.status_line, "HTTP/1.1 200 OK");
    assert_eq!(res.header("Content-Type"), Some("text/plain"));
    assert_eq!(res.body, b"latin-1 bytes\n");
    let res = s.get("/bad%ff%fename.txt", &[("Range", "bytes=-6")]);
    assert_eq!(res.status_line, "HTTP/1.1 206 Partial Content");
    assert_eq!(res.body, b"bytes\n");
    // the lossy UTF-8 spelling names nothing
    assert_not_found(&s.get("/bad%EF%BF%BD%EF%BF%BDname.txt", &[]), "lossy");
    // the listing links to the raw bytes
    let res = s.get("/", &[]);
    let html = res.body_str();
    assert!(
        html.contains("<a href=\"bad%FF%FEname.txt\">bad\u{FFFD}\u{FFFD}name.txt</a>"),
        "{html}"
    );
}

#[test]
fn a_directory_without_slash_redirects_keeping_the_query() {
    let s = TestServer::fixtures();
    for (target, location) in [
        ("/sub", "/sub/"),
        ("/sub?x=1", "/sub/?x=1"),
        ("/sub?a=1&b=%2F", "/sub/?a=1&b=%2F"),
        ("/sub/deeper", "/sub/deeper/"),
        ("/sub/deeper?", "/sub/deeper/?"),
        // rebuilt from the decoded path: an equivalent, normalized Location
        ("/%73ub", "/sub/"),
        ("//sub", "/sub/"),
    ] {
        let res = s.get(target, &[]);
        assert_eq!(
            res.status_line, "HTTP/1.1 301 Moved Permanently",
            "{target}"
        );
        assert_eq!(res.header("Location"), Some(location), "{target}");
        assert_eq!(res.header("Content-Length"), Some("0"), "{target}");
        assert!(res.body.is_empty());
        let mut conn = s.connect();
        conn.send("HEAD", target, &[]);
        let head = conn.read_response(true);
        assert_eq!(head.status(), 301);
        assert_eq!(head.header("Location"), Some(location));
    }
}

#[test]
fn a_redirect_is_never_a_network_path_reference() {
    // `//sub` names the directory sub/ (empty segments are dropped), but a
    // Location of `//sub/` is a network-path reference (RFC 3986 4.2): a
    // browser goes to http://sub/. With a directory named like a host, this
    // is an open redirect.
    let s = TestServer::with_files(&[("evil.example/x.txt", b"x")]);
    for target in ["//evil.example", "///evil.example", "//evil.example?q=1"] {
        let res = s.get(target, &[]);
        assert_eq!(res.status(), 301, "{target}");
        let location = res.header("Location").unwrap();
        assert!(
            location.starts_with('/') && !location.starts_with("//"),
            "{target}: Location {location:?} leaves the origin"
        );
        // and it leads to the listing
        let res = s.get(location, &[]);
        assert_eq!(res.status_line, "HTTP/1.1 200 OK", "{target} -> {location}");
        assert!(res.body_str().contains("<a href=\"x.txt\">x.txt</a>"));
    }
}

#[test]
fn listings_are_html_with_encoded_links_and_escaped_names() {
    let s = TestServer::with_files(&[
        ("<b>&x.txt", b"12345"),
        ("a\"quote'.txt", b""),
        ("dir one/inner.txt", b"inner"),
        ("plain.txt", b"p"),
    ]);
    let res = s.get("/", &[]);
    assert_eq!(res.status_line, "HTTP/1.1 200 OK");
    assert_eq!(res.header("Content-Type"), Some("text/html; charset=utf-8"));
    assert_eq!(
        res.header("Content-Length"),
        Some(res.body.len().to_string().as_str())
    );
    assert!(res.has("Date"));
    // no validator, changes with the directory: never reused unchecked
    assert_eq!(res.header("Cache-Control"), Some("no-cache"));
    let html = res.body_str();
    assert!(html.starts_with("<!DOCTYPE html>"), "{html}");
    assert!(html.contains("<title>Index of /</title>"), "{html}");
    assert!(
        html.contains("<a href=\"%3Cb%3E%26x.txt\">&lt;b&gt;&amp;x.txt</a>"),
        "{html}"
    );
    assert!(
        html.contains("<a href=\"a%22quote%27.txt\">a&quot;quote&#39;.txt</a>"),
        "{html}"
    );
    assert!(
        html.contains("<a href=\"dir%20one/\">dir one/</a>"),
        "{html}"
    );
    assert!(html.contains("<a href=\"plain.txt\">plain.txt</a>"));
    assert!(!html.contains("<b>"), "raw name in the page:\n{html}");
    assert!(!html.contains("../"), "no parent link at the root");
    // directories first, then names in byte order
    let pos = |s: &str| html.find(s).unwrap();
    assert!(pos("dir%20one/") < pos("%3Cb%3E"));
    assert!(pos("%3Cb%3E") < pos("a%22quote"));
    assert!(pos("a%22quote") < pos("plain.txt"));

    // every link works
    let res = s.get("/%3Cb%3E%26x.txt", &[]);
    assert_eq!(res.status_line, "HTTP/1.1 200 OK");
    assert_eq!(res.body, b"12345");
    let res = s.get("/dir%20one/", &[]);
    assert_eq!(res.status_line, "HTTP/1.1 200 OK");
    let html = res.body_str();
    assert!(html.contains("<title>Index of /dir one/</title>"), "{html}");
    assert!(html.contains("<a href=\"../\">../</a>"), "{html}");
    assert!(
        html.contains("<a href=\"inner.txt\">inner.txt</a>"),
        "{html}"
    );

    // HEAD: the same headers, no body
    let get = s.get("/", &[]);
    let mut conn = s.connect();
    conn.send("HEAD", "/", &[]);
    let head = conn.read_response(true);
    assert_eq!(head.status_line, "HTTP/1.1 200 OK");
    assert_eq!(head.header("Content-Type"), get.header("Content-Type"));
    assert_eq!(head.header("Content-Length"), get.header("Content-Length"));
    conn.send("GET", "/plain.txt", &[]);
    assert_eq!(conn.read_response(false).body, b"p");
}

#[test]
fn fixture_listings_link_encoded_names() {
    let s = TestServer::fixtures();
    let res = s.get("/", &[]);
    assert_eq!(res.header("Content-Type"), Some("text/html; charset=utf-8"));
    let html = res.body_str();
    for link in [
        "<a href=\"sub/\">sub/</a>",
        "<a href=\"caf%C3%A9.txt\">café.txt</a>",
        "<a href=\"with%20space.txt\">with space.txt</a>",
        "<a href=\"hello.txt\">hello.txt</a>",
    ] {
        assert!(html.contains(link), "missing {link}:\n{html}");
    }
    let res = s.get("/sub/", &[]);
    assert_eq!(res.status_line, "HTTP/1.1 200 OK");
    assert_eq!(res.header("Content-Type"), Some("text/html; charset=utf-8"));
    let html = res.body_str();
    assert!(html.contains("<title>Index of /sub/</title>"), "{html}");
    assert!(html.contains("<a href=\"deeper/\">deeper/</a>"), "{html}");
    assert!(
        html.contains("<a href=\"nested.txt\">nested.txt</a>"),
        "{html}"
    );
    assert!(html.contains("<a href=\"../\">../</a>"), "{html}");
}

#[test]
fn index_html_is_served_for_its_directory_with_ranges() {
    let index = b"<!DOCTYPE html><title>idx</title><p>index page</p>\n";
    let s = TestServer::with_files(&[("site/index.html", index), ("site/other.txt", b"o")]);
    for target in ["/site/", "/site/index.html", "/site//"] {
        let res = s.get(target, &[]);
        assert_eq!(res.status_line, "HTTP/1.1 200 OK", "{target}");
        assert_eq!(res.header("Content-Type"), Some("text/html"), "{target}");
        assert_eq!(res.header("Accept-Ranges"), Some("bytes"), "{target}");
        assert_eq!(
            res.header("Content-Length"),
            Some(index.len().to_string().as_str())
        );
        assert!(res.has("Last-Modified"));
        assert_eq!(res.body, index, "{target}");
    }
    let res = s.get("/site/", &[("Range", "bytes=2-8")]);
    assert_eq!(res.status_line, "HTTP/1.1 206 Partial Content");
    assert_eq!(
        res.header("Content-Range"),
        Some(format!("bytes 2-8/{}", index.len()).as_str())
    );
    assert_eq!(res.header("Content-Type"), Some("text/html"));
    assert_eq!(res.body, &index[2..=8]);
    let res = s.get("/site/", &[("Range", "bytes=0-0,-1")]);
    assert_eq!(res.status_line, "HTTP/1.1 206 Partial Content");
    let parts = common::parse_multipart(res.header("Content-Type").unwrap(), &res.body);
    assert_eq!(parts.len(), 2);
    assert_eq!(parts[0].body, &index[..1]);
    let (first, _, _) = parse_content_range(parts[1].header("Content-Range").unwrap());
    assert_eq!(first as usize, index.len() - 1);
    let res = s.get("/site/", &[("Range", "bytes=9999-")]);
    assert_eq!(res.status(), 416);
    assert_eq!(
        res.header("Content-Range"),
        Some(format!("bytes */{}", index.len()).as_str())
    );
    // without the slash: redirect, not the index
    let res = s.get("/site", &[]);
    assert_eq!(res.status(), 301);
    assert_eq!(res.header("Location"), Some("/site/"));
}

#[test]
fn no_listing_hides_directories_but_still_serves_index_html() {
    let s = TestServer::with_files_config(
        &[
            ("bare/file.txt", b"file"),
            ("site/index.html", b"<p>hi</p>"),
            ("top.txt", b"top"),
        ],
        Config {
            listing: false,
            ..Default::default()
        },
    );
    for target in ["/", "/bare/"] {
        assert_not_found(&s.get(target, &[]), target);
        let mut conn = s.connect();
        conn.send("HEAD", target, &[]);
        assert_eq!(conn.read_response(true).status(), 404, "HEAD {target}");
    }
    let res = s.get("/site/", &[]);
    assert_eq!(res.status_line, "HTTP/1.1 200 OK");
    assert_eq!(res.header("Content-Type"), Some("text/html"));
    assert_eq!(res.body, b"<p>hi</p>");
    let res = s.get("/bare/file.txt", &[]);
    assert_eq!(res.body, b"file");
    let res = s.get("/top.txt", &[]);
    assert_eq!(res.body, b"top");
    // the redirect still happens (it says nothing the 404 would not)
    let res = s.get("/bare", &[]);
    assert_eq!(res.status(), 301);
    assert_eq!(res.header("Location"), Some("/bare/"));
}

#[test]
fn a_file_with_a_trailing_slash_is_404() {
    let s = TestServer::fixtures();
    for target in [
        "/hello.txt/",
        "/hello.txt//",
        "/sub/nested.txt/",
        "/hello.txt/x",
    ] {
        assert_not_found(&s.get(target, &[]), target);
    }
    let mut conn = s.connect();
    conn.send("GET", "/hello.txt/", &[("Range", "bytes=0-0")]);
    assert_not_found(&conn.read_response(false), "range on /hello.txt/");
    // the plain name still works on the same connection
    conn.send("GET", "/hello.txt", &[]);
    assert_eq!(conn.read_response(false).body, fixture("hello.txt"));
}
