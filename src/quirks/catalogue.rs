//! The quirk catalogue: every quirk's name, argument, behaviour, the
//! real-world server it emulates and what a robust client should do. The
//! README table, `--list-quirks` and the `/_quirks/` page are all generated
//! from [`CATALOGUE`]; names are a contract with client test suites.

/// Documentation of one quirk.
#[derive(Debug, Clone, Copy)]
pub struct QuirkInfo {
    /// The name used in `--quirk`, URLs and headers.
    pub name: &'static str,
    /// The argument's placeholder (`N`, `RATE`...), if the quirk takes one.
    pub arg: Option<&'static str>,
    /// An example argument, for links and docs.
    pub example: Option<&'static str>,
    /// Catalogue section.
    pub group: &'static str,
    /// What the server does.
    pub behaviour: &'static str,
    /// The real-world case it emulates.
    pub emulates: &'static str,
    /// What a robust client does about it.
    pub client: &'static str,
}

macro_rules! q {
    ($group:literal, $name:literal, $arg:expr, $ex:expr, $b:literal, $e:literal, $c:literal) => {
        QuirkInfo {
            name: $name,
            arg: $arg,
            example: $ex,
            group: $group,
            behaviour: $b,
            emulates: $e,
            client: $c,
        }
    };
}

/// Every quirk, in catalogue order.
#[rustfmt::skip]
pub const CATALOGUE: &[QuirkInfo] = &[
    q!("Validators", "no-etag", None, None,
       "No ETag header; ranges are still served.",
       "Servers and CDNs that strip ETags (some S3-compatible stores, misconfigured proxies).",
       "Resume with If-Range: <Last-Modified> or accept the risk knowingly; Android's DownloadManager refuses to resume without an ETag."),
    q!("Validators", "weak-etag", None, None,
       "ETag sent as W/\"...\"; an If-Range carrying it never matches, so resumes get 200.",
       "nginx with gzip on, and frameworks that weaken tags they cannot vouch for byte-for-byte.",
       "Never use a weak tag in If-Range (RFC 9110 13.1.5); fall back to Last-Modified or restart the download."),
    q!("Validators", "unstable-etag", None, None,
       "A different ETag on every response though the file is unchanged; If-Range is checked against the tag this response sends, so resumes always fall back to 200.",
       "Load-balanced replicas that derive ETags from inode numbers or per-host state (Apache's default FileETag INode).",
       "Detect the 200 and restart (or keep the new body) instead of appending; curl exits 33 when a resume gets 200."),
    q!("Validators", "stale-etag", None, None,
       "The ETag is derived from the path only, so it does not change when the content does, and If-Range matches it.",
       "Caches and app servers that tag by URL or by release number, not by content.",
       "Nothing in HTTP can detect this; verify the result (Repr-Digest, a published checksum) after stitching ranges."),
    q!("Validators", "no-last-modified", None, None,
       "No Last-Modified header.",
       "Dynamic handlers and object stores that serve files without dates.",
       "Use the ETag for If-Range; without either validator, resuming is a gamble."),
    q!("Validators", "unquoted-etag", None, None,
       "The ETag is sent without its quotes (an invalid entity-tag); an If-Range carrying the unquoted tag is invalid and gets 200.",
       "Hand-written servers and test fixtures that forget the quotes.",
       "Quote the tag before echoing it in If-Range, or treat it as absent."),
    q!("Range handling", "no-ranges", None, None,
       "Range is ignored: 200 with the full body, and no Accept-Ranges header.",
       "Servers and proxies without range support (many dynamic endpoints).",
       "Notice the 200 (no Content-Range) and restart from byte 0 instead of appending."),
    q!("Range handling", "accept-ranges-none", None, None,
       "Accept-Ranges: none, and Range is ignored.",
       "Servers that explicitly opt out of ranges (RFC 9110 14.3).",
       "Do not send Range at all; download in one go."),
    q!("Range handling", "no-accept-ranges", None, None,
       "No Accept-Ranges header, but ranges are served.",
       "Accept-Ranges is optional; many servers never send it.",
       "Try a Range request anyway and look at the status; don't treat a missing Accept-Ranges as 'no'."),
    q!("Range handling", "range-200", None, None,
       "A satisfiable single range is answered 200 OK with the correct Content-Range and only the partial body.",
       "Old or broken servers seen by Android's download stack (the seed's case).",
       "Trust Content-Range over the status code when it is present and matches the request."),
    q!("Range handling", "first-range-only", None, None,
       "A multi-range request gets a single 206 for its first satisfiable range.",
       "Servers and CDNs that don't implement multipart/byteranges.",
       "Check Content-Type and Content-Range of the answer; request the missing ranges again."),
    q!("Range handling", "multi-range-200", None, None,
       "A multi-range request gets 200 with the full body.",
       "nginx with max_ranges 1 and similar configurations.",
       "Accept the full body; take the ranges from it."),
    q!("Range handling", "ignore-if-range", None, None,
       "The range is served even when If-Range does not match.",
       "Servers and proxies that don't implement If-Range.",
       "Compare the ETag of the 206 with the one you resume from; abort on mismatch."),
    q!("Range handling", "bare-416", None, None,
       "416 without Content-Range.",
       "Servers that omit the optional length on 416.",
       "Learn the length with a HEAD instead of parsing the 416."),
    q!("Range handling", "if-range-416", None, None,
       "An If-Range that does not match gets 416 (with bytes */LEN) instead of the full 200.",
       "Buggy precondition code in app servers.",
       "On 416 after a resume, restart the download from scratch."),
    q!("Range handling", "weak-if-range-206", None, None,
       "A weak entity-tag in If-Range whose opaque part equals the current tag is accepted as a match.",
       "A known server bug: weak comparison where strong is required (RFC 9110 13.1.5).",
       "Never send a weak tag in If-Range; a 206 to one proves nothing."),
    q!("Range handling", "head-lies", None, None,
       "HEAD answers lack Accept-Ranges and Content-Length (GET is correct).",
       "Servers whose HEAD handler differs from GET (common in frameworks).",
       "Don't decide range support from HEAD alone; probe with a small Range GET."),
    q!("Range handling", "encoded-range", None, None,
       "Content-Encoding: gzip on every response, with ranges applied to the gzip bytes; the ETag is the gzip's SHA-256. The gzip is made in memory once per file version (64 MiB of them kept); files over 32 MiB get 503.",
       "Servers that compress on the fly (gzip_static, dynamic compression) and honour ranges on the compressed bytes.",
       "Resume the encoded bytes and decode once at the end; clients that decode each piece and append corrupt the file."),
    q!("Range handling", "unknown-length", None, None,
       "Content-Range reports the complete length as * (bytes 0-499/*).",
       "Streaming origins that don't know the total size.",
       "Don't require the total length; keep requesting until a short or 416 answer."),
    q!("Range handling", "if-range-etag-200", None, None,
       "A request whose If-Range carries an entity-tag gets 200 with the full body, even when it matches; the date form still works.",
       "A CDN behaviour that breaks clients preferring ETags.",
       "On a 200 to an If-Range resume, retry once with the Last-Modified date or restart."),
    q!("Lying about the range", "range-from-zero", None, None,
       "A 206 whose body and Content-Range start at byte 0, whatever start was asked (same length).",
       "Broken range code that ignores first-pos.",
       "Check that Content-Range starts where you asked; abort or restart otherwise."),
    q!("Lying about the range", "range-capped", Some("N"), Some("1000"),
       "A 206 never carries more than N bytes; Content-Range honestly reports the shorter range.",
       "CDNs and object stores that cap chunk sizes.",
       "Loop: request the rest from the end of what Content-Range says you got."),
    q!("Lying about the range", "no-content-range", None, None,
       "A 206 without Content-Range.",
       "Broken proxies.",
       "Treat a 206 without Content-Range as an error; don't guess where the bytes belong."),
    q!("Lying about the range", "bad-content-range", None, None,
       "A 206 whose Content-Range is malformed: bytes FIRST-LAST with no length.",
       "Hand-rolled servers.",
       "Reject a malformed Content-Range rather than assuming it matches the request."),
    q!("Versions", "replica-flip", None, None,
       "Successive responses for a path alternate between the real file and a second version (every byte XOR 0xFF, same size), with its own ETag and Last-Modified; the first response is the real file (turns are kept for the 10000 most recently requested paths).",
       "A CDN whose edges hold two releases.",
       "Resume with If-Range so a version change yields 200; verify the result."),
    q!("Transport", "chunked", None, None,
       "No Content-Length; the body is sent with chunked transfer coding.",
       "Servers and proxies that stream without knowing the length.",
       "Use Content-Range (206) or the end of the chunked body to know where you are; a truncated chunked body has no final chunk."),
    q!("Transport", "drop-after", Some("N"), Some("1000"),
       "The connection is closed after N body bytes of each response; the headers announce the full length.",
       "Flaky networks, proxies with idle timeouts.",
       "Treat a short body as a failure, never as complete (Chrome treats a truncated download as complete when there is no strong validator), and resume with Range + If-Range."),
    q!("Transport", "drop-at", Some("OFFSET"), Some("1000"),
       "A response whose range starts before file offset OFFSET and includes it sends the bytes before OFFSET and closes; one starting at OFFSET or later is served in full (multipart answers are not cut).",
       "A network failure mid-download, then recovery.",
       "Resume from the bytes you have with Range + If-Range; the resume completes."),
    q!("Transport", "throttle", Some("RATE"), Some("256k"),
       "At most RATE bytes/s per response (k = 1024, M = 1024^2), no burst beyond one 16 KiB write. A response that would take longer than --stall-limit (default 60 s) is cut there: the connection is closed.",
       "Slow links and rate-limited hosts.",
       "Show progress, use read timeouts that tolerate slow but steady transfers."),
    q!("Transport", "stall-after", Some("N"), Some("1000"),
       "N body bytes are sent, then nothing; the connection is closed after --stall-limit (default 60 s).",
       "Stuck servers and black-holed connections.",
       "Use a read timeout, then resume with Range + If-Range."),
    q!("Transport", "fail-first", Some("N"), Some("2"),
       "The first N requests for each path get 503 with Retry-After: 1, then normal answers. Counted per server and per path (after any /_quirks/ prefix), HEAD included; counts are kept for the 10000 most recently requested paths.",
       "Overloaded origins and rolling restarts.",
       "Retry with backoff, honouring Retry-After."),
];

/// Look up a quirk's documentation by name.
pub fn info(name: &str) -> Option<&'static QuirkInfo> {
    CATALOGUE.iter().find(|q| q.name == name)
}

/// All names, comma-separated (for error messages).
pub fn names() -> String {
    CATALOGUE
        .iter()
        .map(|q| q.name)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The catalogue as a Markdown table (the README's quirk table).
pub fn markdown_table() -> String {
    let mut out =
        String::from("| quirk | behaviour | emulates | a robust client |\n|---|---|---|---|\n");
    for q in CATALOGUE {
        let name = match q.arg {
            Some(a) => format!("`{}={a}`", q.name),
            None => format!("`{}`", q.name),
        };
        out.push_str(&format!(
            "| {name} | {} | {} | {} |\n",
            q.behaviour.replace('|', "\\|"),
            q.emulates.replace('|', "\\|"),
            q.client.replace('|', "\\|")
        ));
    }
    out
}

/// The catalogue as plain text (`--list-quirks`).
pub fn text() -> String {
    let mut out = String::new();
    let mut group = "";
    for q in CATALOGUE {
        if q.group != group {
            group = q.group;
            out.push_str(&format!("\n{group}\n"));
        }
        let name = match q.arg {
            Some(a) => format!("{}={a}", q.name),
            None => q.name.to_string(),
        };
        out.push_str(&format!(
            "  {name}\n      {}\n      emulates: {}\n      client:   {}\n",
            q.behaviour, q.emulates, q.client
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The limits the catalogue states are the ones in the code.
    #[test]
    fn stated_limits_are_the_code_s() {
        use crate::quirks::counters::PATH_COUNTERS_MAX;
        use crate::quirks::encoded::{ENCODED_CACHE_BYTES, ENCODED_MAX};
        let b = |name| info(name).unwrap().behaviour;
        assert!(b("encoded-range").contains(&format!("over {} MiB get 503", ENCODED_MAX >> 20)));
        assert!(b("encoded-range")
            .contains(&format!("({} MiB of them kept)", ENCODED_CACHE_BYTES >> 20)));
        for name in ["fail-first", "replica-flip"] {
            assert!(
                b(name).contains(&format!("the {PATH_COUNTERS_MAX} most recently")),
                "{name}"
            );
        }
        assert!(b("throttle").contains("--stall-limit (default 60 s)"));
        assert!(b("stall-after").contains("--stall-limit (default 60 s)"));
        assert_eq!(
            crate::Config::default().stall_limit,
            std::time::Duration::from_secs(60)
        );
    }
}
