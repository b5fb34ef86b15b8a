//! Real download clients against a real server: curl's multi-range and
//! resume (`-C -`), wget's resume (`-c`), and curl recovering from the
//! drop-at quirk. The tools are installed by .ci/run, which sets
//! RANGESERVE_REQUIRE_INTEROP=1 so a missing tool fails CI; elsewhere a
//! missing tool skips the test with a note.

mod common;

use std::path::Path;
use std::process::Command;

use common::{parse_multipart, pattern, TestServer};
use rangeserve::quirks::Spec;
use rangeserve::Config;

use common::tool;

fn run(cmd: &mut Command) -> (i32, Vec<u8>) {
    let out = cmd.output().expect("run client");
    (out.status.code().unwrap_or(-1), out.stdout)
}

fn served(data: &[u8], quirks: &str) -> TestServer {
    let config = Config {
        quirks: Spec::parse(quirks).unwrap().quirks,
        ..Config::default()
    };
    TestServer::with_files_config(&[("file.bin", data)], config)
}

#[test]
fn curl_multi_range_gets_a_correct_multipart_body() {
    if !tool("curl") {
        return;
    }
    let data = pattern(10_000);
    let s = served(&data, "");
    let url = format!("http://{}/file.bin", s.addr);
    let (code, headers) =
        run(Command::new("curl").args(["-s", "-D", "-", "-o", "/dev/null", "-r", "0-0,-1", &url]));
    assert_eq!(code, 0);
    let headers = String::from_utf8(headers).unwrap();
    assert!(
        headers.starts_with("HTTP/1.1 206 Partial Content\r\n"),
        "{headers}"
    );
    let ct = headers
        .lines()
        .find_map(|l| l.strip_prefix("Content-Type: "))
        .expect("Content-Type")
        .to_string();
    let (code, body) = run(Command::new("curl").args(["-s", "-r", "0-0,-1", &url]));
    assert_eq!(code, 0);
    // a fresh boundary per response: take this response's from its own body
    let boundary =
        std::str::from_utf8(&body[2..body.iter().position(|&b| b == b'\r').unwrap()]).unwrap();
    assert!(ct.starts_with("multipart/byteranges; boundary="));
    let parts = parse_multipart(&format!("multipart/byteranges; boundary={boundary}"), &body);
    assert_eq!(parts.len(), 2);
    assert_eq!(parts[0].body, &data[..1]);
    assert_eq!(parts[1].body, &data[9999..]);
}

fn partial_file(dir: &Path, data: &[u8], n: usize) -> std::path::PathBuf {
    let p = dir.join("file.bin");
    std::fs::write(&p, &data[..n]).unwrap();
    p
}

#[test]
fn curl_resumes_with_continue_at() {
    if !tool("curl") {
        return;
    }
    let data = pattern(3_000_000);
    let s = served(&data, "");
    let url = format!("http://{}/file.bin", s.addr);
    let out = tempfile::tempdir().unwrap();
    let p = partial_file(out.path(), &data, 1_234_567);
    let (code, status) = run(Command::new("curl")
        .args(["-s", "-C", "-", "-w", "%{http_code}", "-o"])
        .arg(&p)
        .arg(&url));
    assert_eq!((code, status), (0, b"206".to_vec()));
    assert!(std::fs::read(&p).unwrap() == data, "resumed file differs");
}

#[test]
fn wget_resumes_with_continue() {
    if !tool("wget") {
        return;
    }
    let data = pattern(2_000_000);
    let s = served(&data, "");
    let url = format!("http://{}/file.bin", s.addr);
    let out = tempfile::tempdir().unwrap();
    let p = partial_file(out.path(), &data, 777_777);
    let (code, _) = run(Command::new("wget")
        .args(["-q", "-c", "-O"])
        .arg(&p)
        .arg(&url));
    assert_eq!(code, 0);
    assert!(std::fs::read(&p).unwrap() == data, "resumed file differs");
}

#[test]
fn curl_recovers_from_a_dropped_connection_by_resuming() {
    if !tool("curl") {
        return;
    }
    let data = pattern(500_000);
    let s = served(&data, "drop-at=200000");
    let url = format!("http://{}/file.bin", s.addr);
    let out = tempfile::tempdir().unwrap();
    let p = out.path().join("file.bin");
    // curl: (18) transfer closed with outstanding read data remaining
    let (code, _) = run(Command::new("curl").args(["-s", "-o"]).arg(&p).arg(&url));
    assert_eq!(code, 18);
    assert_eq!(std::fs::read(&p).unwrap(), &data[..200_000]);
    let (code, status) = run(Command::new("curl")
        .args(["-s", "-C", "-", "-w", "%{http_code}", "-o"])
        .arg(&p)
        .arg(&url));
    assert_eq!((code, status), (0, b"206".to_vec()));
    assert!(std::fs::read(&p).unwrap() == data);
}

#[test]
fn curl_refuses_to_resume_when_the_server_ignores_ranges() {
    if !tool("curl") {
        return;
    }
    // no-ranges: the resume gets 200, and curl exits 33 instead of appending
    let data = pattern(100_000);
    let s = served(&data, "no-ranges");
    let url = format!("http://{}/file.bin", s.addr);
    let out = tempfile::tempdir().unwrap();
    let p = partial_file(out.path(), &data, 5_000);
    let (code, _) = run(Command::new("curl")
        .args(["-s", "-C", "-", "-o"])
        .arg(&p)
        .arg(&url));
    assert_eq!(code, 33);
}

#[test]
fn curl_http2_prior_knowledge_ranges_multipart_and_resume() {
    if !tool("curl") {
        return;
    }
    let data = pattern(300_000);
    let s = served(&data, "");
    let url = format!("http://{}/file.bin", s.addr);
    let h2 = "--http2-prior-knowledge";
    // a single range
    let (code, body) = run(Command::new("curl").args(["-s", h2, "-r", "1000-1999", &url]));
    assert_eq!(code, 0);
    assert_eq!(body, &data[1000..2000]);
    // the head says HTTP/2 and 206
    let (code, head) = run(Command::new("curl").args([
        "-s",
        h2,
        "-D",
        "-",
        "-o",
        "/dev/null",
        "-r",
        "0-0,-1",
        &url,
    ]));
    assert_eq!(code, 0);
    let head = String::from_utf8(head).unwrap();
    assert!(head.starts_with("HTTP/2 206"), "{head}");
    // multipart over h2
    let (code, body) = run(Command::new("curl").args(["-s", h2, "-r", "0-0,-1", &url]));
    assert_eq!(code, 0);
    let boundary =
        std::str::from_utf8(&body[2..body.iter().position(|&b| b == b'\r').unwrap()]).unwrap();
    let parts = parse_multipart(&format!("multipart/byteranges; boundary={boundary}"), &body);
    assert_eq!(parts.len(), 2);
    assert_eq!(parts[0].body, &data[..1]);
    assert_eq!(parts[1].body, &data[299_999..]);
    // resume a partial download (-C -) over h2
    let dir = tempfile::tempdir().unwrap();
    let out = partial_file(dir.path(), &data, 123_456);
    let (code, _) = run(Command::new("curl")
        .args(["-s", h2, "-C", "-", "-o"])
        .arg(&out)
        .arg(&url));
    assert_eq!(code, 0);
    assert_eq!(std::fs::read(&out).unwrap(), data);
}

#[test]
fn curl_over_https_http2_and_http1_trusting_the_generated_certificate() {
    if !tool("curl") {
        return;
    }
    let data = pattern(100_000);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("file.bin"), &data).unwrap();
    let ca = dir.path().join("ca.pem");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let server = rt
        .block_on(
            rangeserve::Server::builder()
                .root(dir.path())
                .bind("127.0.0.1:0")
                .tls_self_signed(Some(ca.clone()))
                .spawn(),
        )
        .unwrap();
    let url = format!("https://localhost:{}/file.bin", server.local_addr().port());
    let resolve = format!("localhost:{}:127.0.0.1", server.local_addr().port());
    let thread = std::thread::spawn(move || {
        let mut got = Vec::new();
        for proto in ["--http2", "--http1.1"] {
            let (code, head) = run(Command::new("curl")
                .args(["-s", proto, "--resolve", &resolve, "--cacert"])
                .arg(&ca)
                .args(["-D", "-", "-o", "/dev/null", "-r", "10-19", &url]));
            let (code2, body) = run(Command::new("curl")
                .args(["-s", proto, "--resolve", &resolve, "--cacert"])
                .arg(&ca)
                .args(["-r", "10-19", &url]));
            got.push((code, String::from_utf8(head).unwrap(), code2, body));
        }
        got
    });
    // the server runs on this runtime while curl works
    let got = rt.block_on(async {
        loop {
            if thread.is_finished() {
                break thread.join().unwrap();
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    });
    for ((code, head, code2, body), status) in got.into_iter().zip(["HTTP/2 206", "HTTP/1.1 206"]) {
        assert_eq!((code, code2), (0, 0), "{head}");
        assert!(head.starts_with(status), "{head}");
        assert_eq!(body, &data[10..20]);
    }
    rt.block_on(server.shutdown());
}
