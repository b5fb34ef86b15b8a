//! Files that change under a streaming response: the connection is aborted
//! (the client sees a short body) and every byte sent belongs to the version
//! the headers describe.

mod common;

use common::{pattern, TestServer};
use std::io::{Read, Seek, SeekFrom, Write};

const SIZE: usize = 64 * 1024 * 1024;

/// Start a GET of a 64 MiB file, read 1 MiB, apply `change`, read the rest.
/// Returns (Content-Length, bytes received, original data).
fn download_while(
    change: impl FnOnce(&std::path::Path),
    range: Option<&str>,
) -> (usize, Vec<u8>, Vec<u8>) {
    let data = pattern(SIZE);
    let s = TestServer::with_files(&[("big.bin", &data)]);
    let path = s.root.join("big.bin");
    let mut conn = s.connect();
    let headers: Vec<(&str, &str)> = range.iter().map(|r| ("Range", *r)).collect();
    conn.send("GET", "/big.bin", &headers);
    let (_status, head) = conn.read_head();
    let len: usize = head
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .unwrap()
        .1
        .parse()
        .unwrap();
    let mut first = vec![0u8; 1024 * 1024];
    conn.reader.read_exact(&mut first).unwrap();
    change(&path);
    let mut body = first;
    body.extend(conn.read_to_end());
    (len, body, data)
}

fn assert_aborted_with_true_prefix(len: usize, body: &[u8], original: &[u8]) {
    assert!(
        body.len() < len,
        "expected a short body, got all {len} bytes"
    );
    assert!(
        body == &original[..body.len()],
        "a byte not of the announced version was sent"
    );
}

#[test]
fn shrinking_file_aborts_the_connection() {
    let (len, body, data) = download_while(
        |p| {
            std::fs::OpenOptions::new()
                .write(true)
                .open(p)
                .unwrap()
                .set_len(1000)
                .unwrap()
        },
        None,
    );
    assert_eq!(len, SIZE);
    assert_aborted_with_true_prefix(len, &body, &data);
}

#[test]
fn same_size_rewrite_aborts_the_connection() {
    let (len, body, data) = download_while(
        |p| {
            let mut f = std::fs::OpenOptions::new().write(true).open(p).unwrap();
            f.seek(SeekFrom::Start(0)).unwrap();
            f.write_all(&vec![0u8; SIZE]).unwrap();
        },
        None,
    );
    assert_aborted_with_true_prefix(len, &body, &data);
}

#[test]
fn vanishing_file_aborts_the_connection() {
    let (len, body, data) = download_while(|p| std::fs::remove_file(p).unwrap(), None);
    assert_aborted_with_true_prefix(len, &body, &data);
}

#[test]
fn shrinking_file_aborts_a_range_response_too() {
    let (len, body, data) = download_while(
        |p| {
            std::fs::OpenOptions::new()
                .write(true)
                .open(p)
                .unwrap()
                .set_len(10)
                .unwrap()
        },
        Some("bytes=1000-"),
    );
    assert_eq!(len, SIZE - 1000);
    assert_aborted_with_true_prefix(len, &body, &data[1000..]);
}

#[test]
fn an_unchanged_file_is_sent_whole_and_the_server_stays_up_after_aborts() {
    let data = pattern(SIZE);
    let s = TestServer::with_files(&[("big.bin", &data)]);
    let res = s.get("/big.bin", &[]);
    assert_eq!(res.status(), 200);
    assert!(res.body == data);
    std::fs::remove_file(s.root.join("big.bin")).unwrap();
    assert_eq!(s.get("/big.bin", &[]).status(), 404);
}
