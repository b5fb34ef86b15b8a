//! The request journal: what clients sent and what they got, for tests to
//! assert on ("did my client resume with `If-Range` and the right `Range`?").
//!
//! Every answered request becomes one [`JournalEntry`] when its response
//! ends (finished, or cut): kept in a bounded ring (`--journal N`, oldest
//! dropped first and counted), and/or appended as one JSON line to a file
//! (`--record FILE`). It is read from the Rust handle
//! ([`crate::ServerHandle::requests`]) or over HTTP at the reserved path
//! [`ENDPOINT`] (`GET` as JSON, `DELETE` to clear), which exists only while
//! the ring is on. Requests for `/_rangeserve/...` themselves are not
//! recorded: reading the journal does not change it.
//!
//! The entry's fields and their JSON names are an interface (README:
//! "Request journal"): add fields, never rename them.

use std::collections::{BTreeMap, VecDeque};
use std::fs::File;
use std::io::{LineWriter, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Mutex, PoisonError};
use std::time::SystemTime;

use axum::http::header::HeaderName;
use axum::http::{HeaderMap, Method, Uri, Version};
use serde::{Serialize, Serializer};

/// The reserved path the journal is read (`GET`) and cleared (`DELETE`) at.
pub const ENDPOINT: &str = "/_rangeserve/requests";

/// The first path segment reserved for the server's own endpoints: never a
/// file path, whatever the served directory holds.
pub const RESERVED_SEGMENT: &str = "_rangeserve";

/// `--journal` without a number, and the Rust builder's default.
pub const DEFAULT_ENTRIES: usize = 4096;

/// Request headers always recorded (when present): the ones that matter for
/// ranges and validators, the quirks header, and who the client is.
pub const RECORDED_HEADERS: &[&str] = &[
    "range",
    "if-range",
    "if-match",
    "if-none-match",
    "if-modified-since",
    "if-unmodified-since",
    "rangeserve-quirks",
    "user-agent",
];

/// One answered request.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JournalEntry {
    /// When the request arrived (JSON: RFC 3339, UTC, milliseconds).
    #[serde(serialize_with = "rfc3339")]
    pub time: SystemTime,
    /// The client's address (JSON: `"127.0.0.1:53210"`).
    pub client: SocketAddr,
    /// The protocol: `HTTP/1.0`, `HTTP/1.1` or `HTTP/2`.
    pub protocol: String,
    /// The method, as sent.
    pub method: String,
    /// The request target's path and query as sent, before
    /// percent-decoding (with quirks, the `/_quirks/SPEC` prefix included).
    pub path: String,
    /// The recorded request headers ([`RECORDED_HEADERS`] and those asked
    /// for with `--journal-header`), lower-case name to value; a repeated
    /// header's values joined with `, `.
    pub headers: BTreeMap<String, String>,
    /// The status code sent.
    pub status: u16,
    /// The quirks applied to the response (quirks mode), in catalogue form
    /// (`drop-at=1000`); empty otherwise.
    pub quirks: Vec<String>,
    /// Body bytes handed to the connection.
    pub bytes_sent: u64,
    /// Whether the body ended before its end: the connection or stream was
    /// cut (by a quirk, the client, or a failure).
    pub aborted: bool,
}

impl JournalEntry {
    /// The value of recorded header `name` (lower-case), if it was sent.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }
}

fn rfc3339<S: Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format_rfc3339(*t))
}

/// `2026-11-30T15:52:49.123Z` (pure).
pub fn format_rfc3339(t: SystemTime) -> String {
    let d = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, day) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        d.subsec_millis()
    )
}

/// Year, month, day of the `days`-th day after 1970-01-01 (the proleptic
/// Gregorian calendar; H. Hinnant's `civil_from_days`).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

/// The ring and the file.
#[derive(Debug)]
pub struct Journal {
    capacity: usize,
    ring: Mutex<Ring>,
    record: Option<Mutex<LineWriter<File>>>,
    extra: Vec<HeaderName>,
}

#[derive(Debug, Default)]
struct Ring {
    entries: VecDeque<JournalEntry>,
    dropped: u64,
}

/// The JSON document at [`ENDPOINT`].
#[derive(Debug, Serialize)]
pub struct Snapshot {
    /// Entries dropped from the ring (oldest first) since it was last cleared.
    pub dropped: u64,
    /// The entries, oldest first.
    pub requests: Vec<JournalEntry>,
}

impl Journal {
    /// A journal keeping `capacity` entries in memory (0: none, the HTTP
    /// endpoint is off) and appending every entry to `record` if given.
    /// `extra` names more request headers to record.
    pub fn new(
        capacity: usize,
        record: Option<&Path>,
        extra: &[String],
    ) -> std::io::Result<Journal> {
        let record = match record {
            Some(path) => Some(Mutex::new(LineWriter::new(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)?,
            ))),
            None => None,
        };
        let extra = extra
            .iter()
            .map(|n| {
                HeaderName::from_bytes(n.to_ascii_lowercase().as_bytes()).map_err(|_| {
                    std::io::Error::new(
                        std::io::ErrorKind::InvalidInput,
                        format!("not a header name: {n:?}"),
                    )
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(Journal {
            capacity,
            ring: Mutex::new(Ring::default()),
            record,
            extra,
        })
    }

    /// Whether the in-memory ring (and so the HTTP endpoint) is on.
    pub fn has_ring(&self) -> bool {
        self.capacity > 0
    }

    /// The start of an entry for this request, or `None` for the server's
    /// own endpoints (not recorded).
    pub fn begin(
        &self,
        client: SocketAddr,
        method: &Method,
        uri: &Uri,
        version: Version,
        headers: &HeaderMap,
    ) -> Option<Box<JournalEntry>> {
        if is_reserved(uri.path()) {
            return None;
        }
        let mut recorded = BTreeMap::new();
        let names = RECORDED_HEADERS
            .iter()
            .map(|n| HeaderName::from_static(n))
            .chain(self.extra.iter().cloned());
        for name in names {
            let mut values = headers
                .get_all(&name)
                .iter()
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
            if let Some(first) = values.next() {
                let joined = values.fold(first, |acc, v| acc + ", " + &v);
                recorded.insert(name.as_str().to_string(), joined);
            }
        }
        Some(Box::new(JournalEntry {
            time: SystemTime::now(),
            client,
            protocol: format!("{version:?}"),
            method: method.as_str().to_string(),
            path: uri
                .path_and_query()
                .map_or_else(|| "/".to_string(), |p| p.as_str().to_string()),
            headers: recorded,
            status: 0,
            quirks: Vec::new(),
            bytes_sent: 0,
            aborted: false,
        }))
    }

    /// Record a finished entry.
    pub fn push(&self, entry: JournalEntry) {
        if let Some(file) = &self.record {
            if let Ok(mut line) = serde_json::to_vec(&entry) {
                line.push(b'\n');
                let mut file = file.lock().unwrap_or_else(PoisonError::into_inner);
                if let Err(e) = file.write_all(&line) {
                    tracing::warn!(error = %e, "cannot append to the --record file");
                }
            }
        }
        if self.capacity == 0 {
            return;
        }
        let mut ring = self.ring.lock().unwrap_or_else(PoisonError::into_inner);
        if ring.entries.len() == self.capacity {
            ring.entries.pop_front();
            ring.dropped += 1;
        }
        ring.entries.push_back(entry);
    }

    /// The entries, oldest first.
    pub fn entries(&self) -> Vec<JournalEntry> {
        let ring = self.ring.lock().unwrap_or_else(PoisonError::into_inner);
        ring.entries.iter().cloned().collect()
    }

    /// The entries and the count of dropped ones.
    pub fn snapshot(&self) -> Snapshot {
        let ring = self.ring.lock().unwrap_or_else(PoisonError::into_inner);
        Snapshot {
            dropped: ring.dropped,
            requests: ring.entries.iter().cloned().collect(),
        }
    }

    /// Forget every entry (and the dropped count).
    pub fn clear(&self) {
        let mut ring = self.ring.lock().unwrap_or_else(PoisonError::into_inner);
        *ring = Ring::default();
    }
}

/// Whether a raw request path is under `/_rangeserve/` (pure).
pub fn is_reserved(path: &str) -> bool {
    path.strip_prefix('/')
        .and_then(|p| p.strip_prefix(RESERVED_SEGMENT))
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn rfc3339_table() {
        let at = |secs: u64, ms: u64| {
            format_rfc3339(SystemTime::UNIX_EPOCH + Duration::from_millis(secs * 1000 + ms))
        };
        assert_eq!(at(0, 0), "1970-01-01T00:00:00.000Z");
        assert_eq!(at(951_782_400, 5), "2000-02-29T00:00:00.005Z"); // leap day
        assert_eq!(at(1_709_164_799, 999), "2024-02-28T23:59:59.999Z");
        assert_eq!(at(1_796_053_969, 123), "2026-11-30T15:52:49.123Z");
        assert_eq!(at(4_102_444_800, 0), "2100-01-01T00:00:00.000Z");
    }

    #[test]
    fn reserved_paths() {
        for p in ["/_rangeserve", "/_rangeserve/", "/_rangeserve/requests"] {
            assert!(is_reserved(p), "{p}");
        }
        for p in [
            "/",
            "/_rangeservex",
            "/a/_rangeserve/requests",
            "/_quirks/x/f",
        ] {
            assert!(!is_reserved(p), "{p}");
        }
    }

    fn entry(path: &str) -> JournalEntry {
        let j = Journal::new(1, None, &[]).unwrap();
        let mut headers = HeaderMap::new();
        headers.append("range", "bytes=0-1".parse().unwrap());
        headers.append("accept", "*/*".parse().unwrap());
        *j.begin(
            "127.0.0.1:1".parse().unwrap(),
            &Method::GET,
            &path.parse().unwrap(),
            Version::HTTP_11,
            &headers,
        )
        .unwrap()
    }

    #[test]
    fn the_ring_keeps_the_newest_and_counts_the_dropped() {
        let j = Journal::new(2, None, &[]).unwrap();
        for p in ["/a", "/b", "/c"] {
            j.push(entry(p));
        }
        let snap = j.snapshot();
        assert_eq!(snap.dropped, 1);
        let paths: Vec<_> = snap.requests.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, ["/b", "/c"]);
        j.clear();
        assert_eq!(j.snapshot().dropped, 0);
        assert!(j.entries().is_empty());
    }

    #[test]
    fn only_the_recorded_headers_and_the_raw_target_are_kept() {
        let e = entry("/dir%20one/f.bin?x=1");
        assert_eq!(e.path, "/dir%20one/f.bin?x=1");
        assert_eq!(e.header("range"), Some("bytes=0-1"));
        assert_eq!(e.header("accept"), None, "not asked for");
        assert_eq!(e.protocol, "HTTP/1.1");
        let json = serde_json::to_value(&e).unwrap();
        for field in [
            "time",
            "client",
            "protocol",
            "method",
            "path",
            "headers",
            "status",
            "quirks",
            "bytes_sent",
            "aborted",
        ] {
            assert!(json.get(field).is_some(), "{field} in {json}");
        }
        assert_eq!(json["client"], "127.0.0.1:1");
    }
}
