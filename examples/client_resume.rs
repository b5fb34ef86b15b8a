//! A download client's test suite, written the way a client author would:
//! start a rangeserve fixture that misbehaves in one named way, run the
//! client against it, check the file it produced.
//!
//! `cargo test --example client_resume` runs the tests (so does `cargo test`);
//! `cargo run --example client_resume` runs one download and prints what happened.

use std::time::Duration;

use sha2::{Digest, Sha256};

/// The client under test: a resumable downloader. It resumes with
/// `Range` + `If-Range` after a short body, restarts when the server
/// answers 200 (the file changed), and retries a few times.
pub async fn download(url: &str) -> Result<(Vec<u8>, usize), String> {
    resume(url, Vec::new(), None).await
}

/// Continue a download that already holds `data`, validated by `etag`.
pub async fn resume(
    url: &str,
    mut data: Vec<u8>,
    mut etag: Option<String>,
) -> Result<(Vec<u8>, usize), String> {
    let client = reqwest::Client::new();
    for attempt in 1..=20 {
        let mut req = client.get(url);
        if !data.is_empty() {
            req = req.header("Range", format!("bytes={}-", data.len()));
            if let Some(tag) = &etag {
                req = req.header("If-Range", tag);
            }
        }
        let Ok(mut res) = req.send().await else {
            continue; // connection refused or reset: try again
        };
        match res.status().as_u16() {
            200 => data.clear(), // a fresh copy: never append it to the old bytes
            206 => {}
            503 => {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
            s => return Err(format!("unexpected status {s}")),
        }
        etag = res
            .headers()
            .get("etag")
            .and_then(|v| v.to_str().ok())
            .map(String::from);
        let expected = res.content_length();
        let before = data.len();
        loop {
            match res.chunk().await {
                Ok(Some(chunk)) => data.extend_from_slice(&chunk),
                Ok(None) => {
                    // a body shorter than announced is a failure, never "done"
                    if expected.is_some_and(|n| (data.len() - before) as u64 == n) {
                        return Ok((data, attempt));
                    }
                    break;
                }
                Err(_) => break, // connection dropped: resume
            }
        }
    }
    Err("gave up after 20 attempts".into())
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let dir = tempfile::tempdir().unwrap();
    let original: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(dir.path().join("file.bin"), &original).unwrap();
    let server = rangeserve::Server::builder()
        .root(dir.path())
        .bind("127.0.0.1:0")
        .quirk("drop-at=40000")
        .spawn()
        .await
        .expect("start rangeserve");
    let (data, attempts) = download(&format!("{}file.bin", server.url()))
        .await
        .unwrap();
    println!(
        "downloaded {} bytes in {attempts} attempts; intact: {}",
        data.len(),
        Sha256::digest(&data) == Sha256::digest(&original)
    );
    server.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fixture directory with one file, and a server over it with `quirks`.
    async fn fixture(quirks: &str) -> (tempfile::TempDir, Vec<u8>, rangeserve::ServerHandle) {
        let dir = tempfile::tempdir().unwrap();
        let original: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 256) as u8).collect();
        std::fs::write(dir.path().join("file.bin"), &original).unwrap();
        let server = rangeserve::Server::builder()
            .root(dir.path())
            .bind("127.0.0.1:0")
            .quirk(quirks)
            .spawn()
            .await
            .unwrap();
        (dir, original, server)
    }

    #[tokio::test]
    async fn resumes_after_a_dropped_connection() {
        let (_dir, original, server) = fixture("drop-at=100000").await;
        let (data, attempts) = download(&format!("{}file.bin", server.url()))
            .await
            .unwrap();
        assert_eq!(attempts, 2, "one drop, one resume");
        assert_eq!(Sha256::digest(&data), Sha256::digest(&original));
    }

    #[tokio::test]
    async fn keeps_resuming_when_every_response_is_cut() {
        let (_dir, original, server) = fixture("drop-after=64000").await;
        let (data, attempts) = download(&format!("{}file.bin", server.url()))
            .await
            .unwrap();
        assert_eq!(attempts, 5);
        assert_eq!(Sha256::digest(&data), Sha256::digest(&original));
    }

    #[tokio::test]
    async fn retries_a_server_that_fails_first() {
        let (_dir, original, server) = fixture("fail-first=2").await;
        let (data, _) = download(&format!("{}file.bin", server.url()))
            .await
            .unwrap();
        assert_eq!(data, original);
    }

    #[tokio::test]
    async fn never_splices_two_versions() {
        // every other response is another version of the file (a CDN with two
        // releases): the resume's If-Range fails, the server sends the whole
        // other version with 200, and the client must start over, not append
        let (_dir, original, server) = fixture("replica-flip").await;
        let url = format!("{}file.bin", server.url());
        let first = reqwest::Client::new()
            .get(&url)
            .header("Range", "bytes=0-99999")
            .send()
            .await
            .unwrap();
        assert_eq!(first.status().as_u16(), 206);
        let etag = first.headers()["etag"].to_str().unwrap().to_string();
        let partial = first.bytes().await.unwrap().to_vec();
        let (data, _) = resume(&url, partial, Some(etag)).await.unwrap();
        let flipped: Vec<u8> = original.iter().map(|b| b ^ 0xff).collect();
        assert!(data == flipped, "one whole version, not a splice");
    }
}
