//! The request journal, read back the three ways a test can: from the Rust
//! handle, over HTTP at `/_rangeserve/requests`, and from a `--record` file,
//! after real clients (reqwest, curl) resumed downloads.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::pattern;
use rangeserve::{JournalEntry, Server, ServerHandle};
use serde_json::Value;

/// A server on a fresh directory holding `file.bin`, started by the builder
/// (journal on by default) with `configure` applied.
async fn server(
    data: &[u8],
    configure: impl FnOnce(rangeserve::ServerBuilder) -> rangeserve::ServerBuilder,
) -> (tempfile::TempDir, ServerHandle) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("file.bin"), data).unwrap();
    let builder = Server::builder().root(dir.path()).bind("127.0.0.1:0");
    let handle = configure(builder).spawn().await.unwrap();
    (dir, handle)
}

/// The journal once it holds `n` entries: an entry is recorded when its
/// response ends on the server, which can be just after the client is done.
async fn wait_for(handle: &ServerHandle, n: usize) -> Vec<JournalEntry> {
    for _ in 0..100 {
        let got = handle.requests();
        if got.len() >= n {
            return got;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("journal has {:?}", handle.requests());
}

fn headers(e: &JournalEntry) -> Vec<(&str, &str)> {
    e.headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reqwest_resume_after_a_cut_reads_back_in_order_with_exact_headers() {
    let data = pattern(100_000);
    let (_dir, server) = server(&data, |b| b.quirks_mode(true)).await;
    let client = reqwest::Client::new();
    // the first attempt is cut after 30,000 bytes by the drop-after quirk
    let url = format!("{}_quirks/drop-after=30000/file.bin", server.url());
    let first = client.get(&url).send().await.unwrap();
    assert_eq!(first.status().as_u16(), 200);
    let etag = first.headers()["etag"].to_str().unwrap().to_string();
    let mut got = Vec::new();
    let mut body = first;
    while let Ok(Some(chunk)) = body.chunk().await {
        got.extend_from_slice(&chunk);
    }
    assert_eq!(got.len(), 30_000, "cut short");
    // the resume: the rest, if the file is still the one the tag names
    let rest = client
        .get(format!("{}file.bin", server.url()))
        .header("Range", format!("bytes={}-", got.len()))
        .header("If-Range", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(rest.status().as_u16(), 206);
    got.extend_from_slice(&rest.bytes().await.unwrap());
    assert!(got == data, "resumed byte for byte");

    let journal = wait_for(&server, 2).await;
    assert_eq!(journal.len(), 2, "{journal:?}");
    let (cut, resumed) = (&journal[0], &journal[1]);
    assert_eq!(cut.method, "GET");
    assert_eq!(cut.path, "/_quirks/drop-after=30000/file.bin");
    assert_eq!(cut.protocol, "HTTP/1.1");
    assert!(headers(cut).is_empty(), "reqwest sends none of them");
    assert_eq!(cut.status, 200);
    assert_eq!(cut.quirks, ["drop-after=30000"]);
    assert_eq!(cut.bytes_sent, 30_000);
    assert!(cut.aborted);
    assert_eq!(resumed.path, "/file.bin");
    assert_eq!(
        headers(resumed),
        [("if-range", etag.as_str()), ("range", "bytes=30000-")]
    );
    assert_eq!(resumed.status, 206);
    assert!(resumed.quirks.is_empty());
    assert_eq!(resumed.bytes_sent, 70_000);
    assert!(!resumed.aborted);
    assert!(cut.time <= resumed.time);
    assert!(cut.client.ip().is_loopback());

    server.clear_requests();
    assert!(server.requests().is_empty());
}

fn curl_json(args: &[&str]) -> (String, Value) {
    let out = Command::new("curl")
        .args(["-sS", "-w", "\n%{http_code}"])
        .args(args)
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let (body, code) = text.rsplit_once('\n').unwrap();
    let json = match code {
        "200" => serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}")),
        _ => Value::Null,
    };
    (code.to_string(), json)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_c_resume_read_back_over_http_then_cleared() {
    if !common::tool("curl") {
        return;
    }
    let data = pattern(50_000);
    let (dir, server) = server(&data, |b| b).await;
    let out = dir.path().join("download.part");
    std::fs::write(&out, &data[..1000]).unwrap();
    let url = format!("{}file.bin", server.url());
    let resume = {
        let out = out.clone();
        move || {
            Command::new("curl")
                .args(["-sS", "-C", "-", "-o"])
                .arg(&out)
                .arg(&url)
                .status()
                .unwrap()
        }
    };
    let status = tokio::task::spawn_blocking(resume).await.unwrap();
    assert!(status.success());
    assert!(std::fs::read(&out).unwrap() == data, "curl resumed exactly");
    wait_for(&server, 1).await;

    let endpoint = format!("{}_rangeserve/requests", server.url());
    let (code, doc) = curl_json(&[&endpoint]);
    assert_eq!(code, "200");
    assert_eq!(doc["dropped"], 0);
    let requests = doc["requests"].as_array().unwrap();
    assert_eq!(
        requests.len(),
        1,
        "reading the journal is not recorded: {doc}"
    );
    let e = &requests[0];
    assert_eq!(e["method"], "GET");
    assert_eq!(e["path"], "/file.bin");
    assert_eq!(e["headers"]["range"], "bytes=1000-");
    assert!(e["headers"]["user-agent"]
        .as_str()
        .unwrap()
        .starts_with("curl/"));
    assert_eq!(e["status"], 206);
    assert_eq!(e["bytes_sent"], 49_000);
    assert_eq!(e["aborted"], false);
    assert_eq!(e["quirks"], Value::Array(vec![]));
    let time = e["time"].as_str().unwrap();
    assert!(time.len() == 24 && time.ends_with('Z'), "{time}");
    assert!(e["client"].as_str().unwrap().starts_with("127.0.0.1:"));

    let (code, _) = curl_json(&["-X", "DELETE", &endpoint]);
    assert_eq!(code, "204");
    let (_, doc) = curl_json(&[&endpoint]);
    assert_eq!(doc["requests"], Value::Array(vec![]));
    let (code, _) = curl_json(&["-X", "POST", &endpoint]);
    assert_eq!(code, "405");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ring_keeps_the_newest_entries_and_counts_the_dropped() {
    let data = pattern(10);
    let (_dir, server) = server(&data, |b| b.journal(3)).await;
    for i in 0..5 {
        let r = common::get_close(
            server.local_addr(),
            "/file.bin",
            &[("Range", &format!("bytes={i}-{i}"))],
        );
        assert_eq!(r.status(), 206);
    }
    let journal = wait_for(&server, 3).await;
    let ranges: Vec<_> = journal.iter().map(|e| e.header("range").unwrap()).collect();
    assert_eq!(ranges, ["bytes=2-2", "bytes=3-3", "bytes=4-4"]);
    let r = common::get_close(server.local_addr(), "/_rangeserve/requests", &[]);
    let doc: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(doc["dropped"], 2);
    assert_eq!(doc["requests"].as_array().unwrap().len(), 3);
    assert_eq!(r.header("content-type"), Some("application/json"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reserved_path_is_never_a_file_and_is_refused_when_the_journal_is_off() {
    let data = pattern(10);
    let (dir, off) = server(&data, |b| b.journal(0)).await;
    std::fs::create_dir(dir.path().join("_rangeserve")).unwrap();
    std::fs::write(dir.path().join("_rangeserve/requests"), b"a file").unwrap();
    for target in [
        "/_rangeserve/requests",
        "/_rangeserve/",
        "/%5Frangeserve/requests",
    ] {
        let r = common::get_close(off.local_addr(), target, &[]);
        assert_eq!(r.status(), 404, "{target}");
        assert!(r.body != b"a file");
    }
    assert!(off.requests().is_empty(), "off: nothing kept");
    // on: the endpoint answers, the file is still never served
    let (dir, on) = server(&data, |b| b.quirks_mode(true)).await;
    std::fs::create_dir(dir.path().join("_rangeserve")).unwrap();
    std::fs::write(dir.path().join("_rangeserve/x"), b"a file").unwrap();
    for target in ["/_rangeserve/x", "/_quirks/no-etag/_rangeserve/x"] {
        let r = common::get_close(on.local_addr(), target, &[]);
        assert_eq!(r.status(), 404, "{target}");
    }
    let r = common::get_close(on.local_addr(), "/_rangeserve/requests", &[]);
    assert_eq!(r.status(), 200);
    // the server's own paths are not recorded; a /_quirks/ one is, refused
    let doc: Value = serde_json::from_slice(&r.body).unwrap();
    let statuses: Vec<_> = doc["requests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["path"].as_str().unwrap().to_string(), e["status"].clone()))
        .collect();
    assert_eq!(
        statuses,
        [(
            "/_quirks/no-etag/_rangeserve/x".to_string(),
            Value::from(404)
        )]
    );
}

/// `rangeserve --record FILE --journal-header X-Test`: every request as a
/// JSON line in FILE, with the extra header.
#[test]
fn the_command_records_json_lines_with_extra_headers() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("file.bin"), pattern(5000)).unwrap();
    let record = dir.path().join("requests.jsonl");
    let mut child = Command::new(env!("CARGO_BIN_EXE_rangeserve"))
        .args(["-q", "-p", "0", "--journal-header", "X-Test", "--record"])
        .arg(&record)
        .arg(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let addr = common::listening_addr(&mut child);
    let r = common::get_close(
        addr,
        "/file.bin",
        &[("Range", "bytes=-100"), ("X-Test", "one")],
    );
    assert_eq!(r.status(), 206);
    // --record without --journal: no ring, so no endpoint (and the
    // server's own paths are not recorded)
    assert_eq!(
        common::get_close(addr, "/_rangeserve/requests", &[]).status(),
        404
    );
    assert_eq!(common::get_close(addr, "/file.bin", &[]).status(), 200);
    let lines = wait_for_lines(&record, 2);
    let _ = child.kill();
    let _ = child.wait();
    let first: Value = serde_json::from_str(&lines[0]).unwrap();
    assert_eq!(first["path"], "/file.bin");
    assert_eq!(first["headers"]["range"], "bytes=-100");
    assert_eq!(first["headers"]["x-test"], "one");
    assert_eq!(first["status"], 206);
    assert_eq!(first["bytes_sent"], 100);
    assert_eq!(lines.len(), 2, "{lines:?}");
    let second: Value = serde_json::from_str(&lines[1]).unwrap();
    assert_eq!(second["path"], "/file.bin");
    assert_eq!(second["status"], 200);
    assert_eq!(second["bytes_sent"], 5000);
    assert_eq!(second["headers"], serde_json::json!({}));
}

fn wait_for_lines(path: &Path, n: usize) -> Vec<String> {
    for _ in 0..100 {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let lines: Vec<String> = text.lines().map(str::to_string).collect();
        if lines.len() >= n {
            return lines;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("{} has fewer than {n} lines", path.display());
}
