//! CORS over real TCP (preflights, exposed headers, per-origin answers) and
//! in a real browser: a headless Chromium page from one rangeserve origin
//! `fetch()`es a range from a second one, which works with `--cors` and is
//! refused, as browsers must, without it.

mod common;

use std::process::Command;

use common::{pattern, TestServer};
use rangeserve::cors::{Cors, ALLOW_HEADERS, EXPOSE_HEADERS};
use rangeserve::Config;

fn server(cors: Cors) -> TestServer {
    TestServer::with_files_config(
        &[("data.bin", &pattern(1000))],
        Config {
            cors,
            ..Config::default()
        },
    )
}

const PREFLIGHT: &[(&str, &str)] = &[
    ("Origin", "http://page.test"),
    ("Access-Control-Request-Method", "GET"),
    ("Access-Control-Request-Headers", "range,if-range"),
];

#[test]
fn preflight_and_ranged_response_for_any_origin() {
    let s = server(Cors::Any);
    let pre = s.request("OPTIONS", "/data.bin", PREFLIGHT);
    assert_eq!(pre.status_line, "HTTP/1.1 204 No Content");
    assert_eq!(pre.header("Access-Control-Allow-Origin"), Some("*"));
    assert_eq!(
        pre.header("Access-Control-Allow-Methods"),
        Some("GET, HEAD, OPTIONS")
    );
    assert_eq!(
        pre.header("Access-Control-Allow-Headers"),
        Some(ALLOW_HEADERS)
    );
    assert_eq!(pre.header("Access-Control-Max-Age"), Some("600"));
    assert!(pre.body.is_empty());

    let res = s.get(
        "/data.bin",
        &[("Origin", "http://page.test"), ("Range", "bytes=10-19")],
    );
    assert_eq!(res.status_line, "HTTP/1.1 206 Partial Content");
    assert_eq!(res.header("Access-Control-Allow-Origin"), Some("*"));
    assert_eq!(
        res.header("Access-Control-Expose-Headers"),
        Some(EXPOSE_HEADERS)
    );
    assert_eq!(res.body, &pattern(1000)[10..20]);
    assert!(!res.has("Vary"), "the answer is the same for every origin");
}

#[test]
fn listed_origins_only_and_vary_origin() {
    let s = server(Cors::Origins(vec!["http://page.test".into()]));
    let pre = s.request("OPTIONS", "/data.bin", PREFLIGHT);
    assert_eq!(pre.status_line, "HTTP/1.1 204 No Content");
    assert_eq!(
        pre.header("Access-Control-Allow-Origin"),
        Some("http://page.test")
    );
    assert_eq!(pre.header("Vary"), Some("Origin"));
    let other = s.request(
        "OPTIONS",
        "/data.bin",
        &[
            ("Origin", "http://evil.test"),
            ("Access-Control-Request-Method", "GET"),
        ],
    );
    assert_eq!(other.status_line, "HTTP/1.1 204 No Content");
    assert!(!other.has("Access-Control-Allow-Origin"));
    assert!(!other.has("Access-Control-Allow-Headers"));
    let res = s.get("/data.bin", &[("Origin", "http://evil.test")]);
    assert_eq!(res.status(), 200);
    assert!(!res.has("Access-Control-Allow-Origin"));
    assert_eq!(res.header("Vary"), Some("Origin"));
    let ok = s.get("/data.bin", &[("Origin", "http://page.test")]);
    assert_eq!(
        ok.header("Access-Control-Allow-Origin"),
        Some("http://page.test")
    );
    // errors carry the headers too: a page can read a 404 or 416
    let unsat = s.get(
        "/data.bin",
        &[("Origin", "http://page.test"), ("Range", "bytes=5000-")],
    );
    assert_eq!(unsat.status(), 416);
    assert_eq!(
        unsat.header("Access-Control-Allow-Origin"),
        Some("http://page.test")
    );
}

#[test]
fn without_cors_no_cors_headers() {
    let s = server(Cors::Off);
    let pre = s.request("OPTIONS", "/data.bin", PREFLIGHT);
    assert_eq!(pre.status_line, "HTTP/1.1 204 No Content");
    assert_eq!(pre.header("Allow"), Some("GET, HEAD, OPTIONS"));
    assert!(!pre.has("Access-Control-Allow-Origin"));
    let res = s.get("/data.bin", &[("Origin", "http://page.test")]);
    assert!(!res.has("Access-Control-Allow-Origin"));
}

fn chromium() -> Option<&'static str> {
    for name in ["chromium", "chromium-browser", "google-chrome"] {
        if Command::new(name)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
        {
            return Some(name);
        }
    }
    assert!(
        std::env::var_os("RANGESERVE_REQUIRE_INTEROP").is_none(),
        "chromium is required (RANGESERVE_REQUIRE_INTEROP is set)"
    );
    eprintln!("skipping: chromium is not installed");
    None
}

/// Load `page` in headless Chromium and return the DOM after its script ran.
fn browse(browser: &str, page: &str) -> String {
    let profile = tempfile::tempdir().unwrap();
    let out = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--virtual-time-budget=10000",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(["--dump-dom", page])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A page (served by the first origin) that fetches bytes 2-5 of `data_url`
/// with a Range header and writes what it got.
fn page(data_url: &str) -> String {
    format!(
        r#"<!DOCTYPE html><html><body><pre id="out">pending</pre><script>
fetch("{data_url}", {{headers: {{"Range": "bytes=2-5"}}}})
  .then(async r => {{
    const bytes = new Uint8Array(await r.arrayBuffer());
    const hex = Array.from(bytes, b => b.toString(16).padStart(2, "0")).join("");
    document.getElementById("out").textContent =
      "status=" + r.status + " range=" + r.headers.get("Content-Range") +
      " etag=" + r.headers.get("ETag") + " hex=" + hex;
  }})
  .catch(e => {{ document.getElementById("out").textContent = "error=" + e.name; }});
</script></body></html>"#
    )
}

#[test]
fn a_browser_page_reads_a_range_from_another_origin_only_with_cors() {
    let Some(browser) = chromium() else {
        return;
    };
    let data = pattern(1000);
    let want_hex: String = data[2..6].iter().map(|b| format!("{b:02x}")).collect();
    for (cors, works) in [(Cors::Any, true), (Cors::Off, false)] {
        let files = server(cors.clone());
        let url = format!("http://127.0.0.1:{}/data.bin", files.addr.port());
        let site = TestServer::with_files(&[("page.html", page(&url).as_bytes())]);
        let dom = browse(
            browser,
            &format!("http://127.0.0.1:{}/page.html", site.addr.port()),
        );
        if works {
            let etag = files
                .get("/data.bin", &[])
                .header("ETag")
                .unwrap()
                .to_string();
            let want = format!("status=206 range=bytes 2-5/1000 etag={etag} hex={want_hex}");
            assert!(dom.contains(&want), "{cors:?}: want {want:?} in {dom}");
        } else {
            assert!(dom.contains("error=TypeError"), "{cors:?}: {dom}");
        }
    }
}
