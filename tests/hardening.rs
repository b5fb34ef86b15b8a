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
