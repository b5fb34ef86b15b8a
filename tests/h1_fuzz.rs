//! Differential fuzzing of the HTTP/1.1 fast path (`rangeserve::h1`,
//! `handler::express`, `render::wire`) against hyper, over real TCP: random
//! but plausible `GET`/`HEAD` requests (odd targets, ranges, conditionals,
//! header case and whitespace, HTTP/1.0 in one of five, `Connection:
//! keep-alive` or `close`) are each sent plain (the fast path), with an
//! extra `X-Not-Plain: 1` line (hyper), and plain again (from the file's
//! cached state); the three answers must be the same bytes but for `Date`
//! and multipart boundaries, and must leave the connection alike (open for
//! a next request, or closed).
//!
//! `PROPTEST_CASES=N` runs N cases instead of 300; `H1_FUZZ_ALL=1` runs
//! them all and lists every divergence found instead of stopping (and
//! shrinking) at the first.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, Read, Write};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use common::TestServer;
use proptest::prelude::*;
use proptest::sample::{select, Index};
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config as ProptestConfig, TestCaseError, TestError, TestRunner};
use rangeserve::h1::{classify, Head};

/// The fixture files, as paths under the root (decoded).
const FILES: [&str; 7] = [
    "hello.txt",
    "data.bin",
    "empty.txt",
    "café.txt",
    "with space.txt",
    "sub/nested.txt",
    "sub/deeper/deep.json",
];

/// Request paths (decoded, without the leading `/`) and the file whose
/// validators their conditional headers use (an index into [`FILES`]).
const BASES: &[(&[u8], usize)] = &[
    (b"", 0),
    (b"sub", 5),
    (b"sub/deeper", 6),
    (b"missing.txt", 0),
    (b"sub/missing.json", 6),
    (b"hello.txt/x", 0),
    (b"HELLO.TXT", 0),
    (b"hello.txt.", 0),
    (b".hidden", 0),
    (b".well-known/x", 0),
    (b"sub/.hidden/nested.txt", 5),
    (b"_rangeserve/requests", 0),
    (b"_rangeserve/debug", 0),
    (b"_rangeserve", 0),
    (b"caf\xe9.txt", 3),
    (b"hello.txt\0", 0),
    (b"sub\\nested.txt", 5),
    (b"data.bin;x", 1),
    (b"sub/deeper/../nested.txt", 5),
];

/// A validator no file has.
const STALE: &str = "\"0000000000000000000000000000000000000000000000000000000000000000\"";

/// What a file's conditional headers are made of.
#[derive(Debug, Clone)]
struct Facts {
    /// The `ETag` as sent (quoted).
    etag: String,
    /// `Last-Modified`.
    modified: SystemTime,
    /// Length in bytes.
    len: u64,
}

// ---------------------------------------------------------------------------
// The generated request, before its placeholders are filled in

/// Where a header line's name comes from, and its value template.
#[derive(Debug, Clone)]
struct LineSpec {
    name: &'static str,
    /// 0: as written, 1: lower, 2: upper, 3: mixed by `bits`.
    case: u8,
    bits: u32,
    /// Whitespace before and after the value.
    pre: &'static str,
    post: &'static str,
    /// A bare LF ends the line instead of CRLF.
    lf: bool,
    value: String,
}

#[derive(Debug, Clone)]
struct TargetSpec {
    base: usize,
    /// How each byte of the path is written (see [`encode`]).
    modes: Vec<u8>,
    /// Segments inserted (position, segment).
    junk: Vec<(Index, &'static str)>,
    /// A long run put in front: (kind, length).
    pad: Option<(u8, usize)>,
    suffix: &'static str,
}

#[derive(Debug, Clone)]
struct Spec {
    head: bool,
    /// HTTP/1.0 rather than 1.1.
    http10: bool,
    target: TargetSpec,
    lines: Vec<LineSpec>,
    host: Option<LineSpec>,
    host_at: Index,
    other_at: Index,
    other_name: &'static str,
}

/// One generated case: the plain request and its `X-Not-Plain` twin.
#[derive(Clone)]
struct Case {
    plain: Vec<u8>,
    other: Vec<u8>,
    head: bool,
}

impl std::fmt::Debug for Case {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "b\"{}\"", self.plain.escape_ascii())
    }
}

// ---------------------------------------------------------------------------
// Strategies

fn target() -> BoxedStrategy<TargetSpec> {
    let base = prop_oneof![
        // the files, most of all the one long enough for interesting ranges
        6 => Just(1usize),
        6 => 0..FILES.len(),
        2 => 0..BASES.len() + FILES.len(),
    ];
    let mode = prop_oneof![16 => Just(0u8), 2 => Just(1u8), 2 => Just(2u8), 1 => Just(3u8)];
    // segments that leave the path naming the same thing, and others
    let same = select(vec!["", ".", "%2e", "%2E", "./.", "/"]);
    let other = select(vec![
        "..",
        "%2e%2e",
        ".%2e",
        "%2E.",
        "x/..",
        "sub/..",
        "~",
        "!$&'()*+,;=:@",
        "%00",
        "%FF",
        "%C3%A9",
        "%41",
        "%2F",
        "%2f",
        "%5C",
        "%25",
        "%",
        "%zz",
        "%4",
        "a%2Fb",
    ]);
    let junk = prop_oneof![
        6 => Just(vec![]),
        3 => prop::collection::vec((any::<Index>(), same.clone()), 1..3),
        1 => prop::collection::vec((any::<Index>(), prop_oneof![same, other]), 1..3),
    ];
    let pad = prop_oneof![
        9 => Just(None),
        1 => (0u8..4, select(vec![64usize, 255, 256, 1024, 4096, 7000])).prop_map(Some),
    ];
    let suffix = prop_oneof![
        12 => Just(""),
        4 => select(vec![
            "?", "?a=1", "?a=%FF&b", "??", "?#", "#", "#frag", "?x#y", "?/../", "?%00", "#/../x",
            "?a=b;c", "?a=\"{}|^`\"", "#\"x\"",
        ]),
        1 => select(vec!["/", "/.", "/..", ";p", "%3F", "%23x", "%20", "%00"]),
    ];
    (base, prop::collection::vec(mode, 0..40), junk, pad, suffix)
        .prop_map(|(base, modes, junk, pad, suffix)| TargetSpec {
            base,
            modes,
            junk,
            pad,
            suffix,
        })
        .boxed()
}

/// A number in a range spec: near the file's length (placeholders), small,
/// anywhere, or something that is not a plain `u64`.
fn num() -> BoxedStrategy<String> {
    prop_oneof![
        4 => (0u64..120).prop_map(|n| n.to_string()),
        3 => (0u64..12_000).prop_map(|n| n.to_string()),
        3 => select(vec!["{L}", "{L-1}", "{L+1}", "{L/2}", "0", "1"]).prop_map(String::from),
        1 => select(vec![
            "18446744073709551615", "18446744073709551616", "18446744073709551614",
            "99999999999999999999999999", "00000000000000000005", "+5", "0x5", "", "1.0",
            "\u{661}", "9223372036854775807", "9223372036854775808",
        ]).prop_map(String::from),
    ]
    .boxed()
}

fn range_spec() -> BoxedStrategy<String> {
    prop_oneof![
        // first <= last, mostly within the file
        6 => (0u64..120, 0u64..120).prop_map(|(a, n)| format!("{a}-{}", a + n)),
        3 => (0u64..10_000, 0u64..12_000).prop_map(|(a, n)| format!("{a}-{}", a + n)),
        3 => num().prop_map(|a| format!("{a}-")),
        3 => num().prop_map(|a| format!("-{a}")),
        2 => (num(), num()).prop_map(|(a, b)| format!("{a}-{b}")),
        1 => select(vec![
            "-", "", "--1", "1--2", "a-b", "1-2-3", " ", "0-0", "*", "5-2", "0 -1", "0- 1", "-0",
        ]).prop_map(String::from),
    ]
    .boxed()
}

fn range_value() -> BoxedStrategy<String> {
    let unit = prop_oneof![
        12 => Just("bytes"),
        1 => select(vec!["Bytes", "BYTES", "bytes ", " bytes", "items", "byte", "bytes\t", "none", ""]),
    ];
    let eq = prop_oneof![8 => Just("="), 1 => select(vec![" =", "= ", " = ", "=\t", "=="])];
    let sep = prop_oneof![
        6 => Just(","),
        3 => Just(", "),
        1 => select(vec![" ,", " , ", ",\t", ",,", ", ,", " "]),
    ];
    let edge = prop_oneof![8 => Just(""), 1 => select(vec![",", ", ", " ", ",,"])];
    prop_oneof![
        12 => (unit.clone(), eq.clone(), range_spec(), edge.clone(), edge.clone())
            .prop_map(|(u, e, spec, lead, trail)| format!("{u}{e}{lead}{spec}{trail}")),
        6 => (unit.clone(), eq.clone(), prop::collection::vec(range_spec(), 2..6), sep.clone(), edge.clone(), edge)
            .prop_map(|(u, e, specs, s, lead, trail)| format!("{u}{e}{lead}{}{trail}", specs.join(s))),
        1 => (unit, eq, prop::collection::vec(range_spec(), 55..75), sep)
            .prop_map(|(u, e, specs, s)| format!("{u}{e}{}", specs.join(s))),
        2 => select(vec![
            "", "bytes", "bytes=", "=0-1", "bytes=,0-1", "bytes=0-1,", "bytes=,", "bytes=5-2",
            "bytes=0-0,-1", "bytes 0-1", "bytes:0-1", "bytes=0-1;x", "bytes=0-1{X80}",
            "bytes=0-\t1", "bytes=0-1, 1-2, 2-3", "bytes=-{L}", "bytes={L}-", "bytes=-{L+1}",
            "bytes=0-{L}", "bytes={L-1}-{L-1}", "bytes=0-0,0-0,0-0", "bytes=0-10,5-15,20-",
            "bytes=0-1,bytes=2-3",
        ]).prop_map(String::from),
    ]
    .boxed()
}

fn one_tag() -> BoxedStrategy<&'static str> {
    prop_oneof![
        6 => select(vec!["{E}", "W/{E}", "{S}", "*"]),
        2 => select(vec!["W/{S}", "{E2}", "W/{E2}", "{Ec}", "{Eu}"]),
        1 => select(vec![
            "\"\"", "w/{E}", "W/ {E}", "\"{Eu}", "{Eu}\"", "{E}x", "x{E}", "\"a\\\"b\"", "W/\"\"",
            "\"{X80}\"", "W/W/{E}", "W/", "\"", "**", "{E}*",
        ]),
    ]
    .boxed()
}

fn etag_list() -> BoxedStrategy<String> {
    let sep = select(vec![", ", ",", " , ", ",,", ", ,", ";", " ", ",\t"]);
    prop_oneof![
        6 => one_tag().prop_map(String::from),
        3 => (prop::collection::vec(one_tag(), 2..5), sep, select(vec!["", "", "", ",", ", "]))
            .prop_map(|(tags, s, edge)| format!("{edge}{}{edge}", tags.join(s))),
        1 => select(vec!["", ",", ", ,", "{E}, *", "*, {E}", "*, *"]).prop_map(String::from),
        1 => "[ -~]{0,16}",
    ]
    .boxed()
}

fn date() -> BoxedStrategy<String> {
    prop_oneof![
        6 => select(vec!["{LM}", "{LMm1}", "{LMp1}", "{LMm1y}", "{LMp1y}"]).prop_map(String::from),
        3 => select(vec!["{LM850}", "{LMasc}", "{LMlow}", "{LMnogmt}", "{LMutc}", "{LMsecs}", "{LM} ", "{LM}, {LM}", "{LMm1}, {LMp1}"])
            .prop_map(String::from),
        2 => select(vec![
            "Sun, 06 Nov 1994 08:49:37 GMT",
            "Sunday, 06-Nov-94 08:49:37 GMT",
            "Sun Nov  6 08:49:37 1994",
            "Fri, 01 Jan 2100 00:00:00 GMT",
            "Mon, 01 Jan 2100 00:00:00 GMT",
            "Thu, 01 Jan 1970 00:00:00 GMT",
            "Wed, 31 Dec 1969 23:59:59 GMT",
            "Fri, 31 Dec 9999 23:59:59 GMT",
            "Sat, 01 Jan 10000 00:00:00 GMT",
            "Sun, 06 Nov 1994 08:49:60 GMT",
            "Sun, 31 Feb 1994 08:49:37 GMT",
            "Sun, 6 Nov 1994 08:49:37 GMT",
            "0", "-1", "yesterday", "", "now",
        ]).prop_map(String::from),
        1 => "[ -~]{0,30}",
    ]
    .boxed()
}

fn if_range() -> BoxedStrategy<String> {
    prop_oneof![
        6 => select(vec!["{E}", "{LM}", "{S}", "W/{E}"]).prop_map(String::from),
        3 => select(vec![
            "{E2}", "{Ec}", "{Eu}", "*", "{LMm1}", "{LMp1}", "{LM850}", "{LMasc}", "{LMlow}",
            "{E}, {E}", "{LM} ", "", "garbage", "Sun, 06 Nov 1994 08:49:37 GMT",
            "Fri, 01 Jan 2100 00:00:00 GMT", "\"\"", "W/\"\"", "{E} {LM}",
        ]).prop_map(String::from),
        1 => "[ -~]{0,16}",
    ]
    .boxed()
}

/// Headers the fast path takes that its answer does not depend on.
fn plain_header() -> BoxedStrategy<(&'static str, String)> {
    let v = |vs: Vec<&'static str>| select(vs).prop_map(String::from);
    prop_oneof![
        (
            Just("User-Agent"),
            v(vec![
                "curl/8.5.0",
                "Mozilla/5.0 (X11; Linux x86_64)",
                "",
                "x{XFF}"
            ])
        ),
        (
            Just("Accept"),
            v(vec!["*/*", "text/html,*/*;q=0.8", "", "application/json"])
        ),
        (
            Just("Accept-Encoding"),
            v(vec!["gzip", "gzip, deflate, br", "identity", "*", "br;q=0"])
        ),
        (Just("Accept-Language"), v(vec!["en-US,en;q=0.5", "*"])),
        (
            Just("Cache-Control"),
            v(vec!["no-cache", "max-age=0", "no-store", "only-if-cached"])
        ),
        (Just("Pragma"), v(vec!["no-cache", ""])),
        (Just("Referer"), v(vec!["http://test/", "", "/sub/"])),
        (
            Just("Connection"),
            v(vec![
                "keep-alive",
                "Keep-Alive",
                "KEEP-ALIVE",
                "close",
                "Close"
            ])
        ),
        (
            Just("Cookie"),
            v(vec!["a=b", "session=abc; theme=dark", ""])
        ),
        (
            Just("Sec-Fetch-Mode"),
            v(vec!["navigate", "no-cors", "cors"])
        ),
        (Just("sec-ch-ua-mobile"), v(vec!["?0", "?1"])),
        (Just("Priority"), v(vec!["u=0, i", "u=4"])),
        (
            Just("X-Forwarded-For"),
            v(vec!["203.0.113.7", "203.0.113.7, 10.0.0.1", ""])
        ),
        (Just("Via"), v(vec!["1.1 edge", "HTTP/1.1 a, 1.0 b"])),
        (
            Just("Want-Digest"),
            v(vec!["SHA-256;q=1", "sha-512;q=0.3, sha-256"])
        ),
    ]
    .boxed()
}

/// Any header line this test sends (`Host` only as a second one).
fn any_named() -> BoxedStrategy<(&'static str, String)> {
    prop_oneof![
        5 => range_value().prop_map(|v| ("Range", v)),
        3 => etag_list().prop_map(|v| ("If-None-Match", v)),
        2 => etag_list().prop_map(|v| ("If-Match", v)),
        3 => date().prop_map(|v| ("If-Modified-Since", v)),
        2 => date().prop_map(|v| ("If-Unmodified-Since", v)),
        3 => if_range().prop_map(|v| ("If-Range", v)),
        2 => plain_header(),
        // a second Host line
        1 => select(vec!["test", "other"]).prop_map(|v| ("Host", v.to_string())),
    ]
    .boxed()
}

/// A header line of `named`, its name's case and whitespace varied.
fn line(named: BoxedStrategy<(&'static str, String)>) -> BoxedStrategy<LineSpec> {
    let case = prop_oneof![6 => Just(0u8), 1 => Just(1u8), 1 => Just(2u8), 1 => Just(3u8)];
    let pre = prop_oneof![8 => Just(" "), 1 => select(vec!["", "  ", "\t", " \t"])];
    let post = prop_oneof![8 => Just(""), 1 => select(vec![" ", "\t", " \t "])];
    let lf = prop::bool::weighted(0.05);
    (named, case, any::<u32>(), pre, post, lf)
        .prop_map(|((name, value), case, bits, pre, post, lf)| LineSpec {
            name,
            case,
            bits,
            pre,
            post,
            lf,
            value,
        })
        .boxed()
}

/// The header lines but the first `Host`: each conditional header and
/// `Range` at most once (what clients send), now and then a repeated or
/// extra one, in any order.
fn headers() -> BoxedStrategy<Vec<LineSpec>> {
    let once = |p: f64, named: BoxedStrategy<(&'static str, String)>| {
        prop::option::weighted(p, line(named))
    };
    (
        once(0.6, range_value().prop_map(|v| ("Range", v)).boxed()),
        once(0.25, etag_list().prop_map(|v| ("If-None-Match", v)).boxed()),
        once(0.1, etag_list().prop_map(|v| ("If-Match", v)).boxed()),
        once(0.2, date().prop_map(|v| ("If-Modified-Since", v)).boxed()),
        once(0.1, date().prop_map(|v| ("If-Unmodified-Since", v)).boxed()),
        once(0.25, if_range().prop_map(|v| ("If-Range", v)).boxed()),
        prop::collection::vec(line(plain_header().boxed()), 0..3),
        prop_oneof![
            4 => Just(vec![]),
            1 => prop::collection::vec(line(any_named()), 1..4),
        ],
    )
        .prop_map(|(a, b, c, d, e, f, plain, extra)| {
            let mut lines: Vec<LineSpec> = [a, b, c, d, e, f].into_iter().flatten().collect();
            lines.extend(plain);
            lines.extend(extra);
            lines
        })
        .prop_shuffle()
        .boxed()
}

fn host_line() -> BoxedStrategy<Option<LineSpec>> {
    let value = prop_oneof![
        20 => Just("test"),
        1 => select(vec![
            "127.0.0.1:1", "[::1]:80", "", "a b", "test:abc", "xn--caf-dma", "test.", "TEST",
            "user@test", "test:65536", "t\u{e9}st", "t{XFF}st", "test, test", "[::1", "test:",
        ]),
    ];
    let case = prop_oneof![6 => Just(0u8), 1 => Just(1u8), 1 => Just(2u8)];
    let line = (value, case).prop_map(|(value, case)| {
        Some(LineSpec {
            name: "Host",
            case,
            bits: 0,
            pre: " ",
            post: "",
            lf: false,
            value: value.to_string(),
        })
    });
    prop_oneof![40 => line, 1 => Just(None)].boxed()
}

fn spec() -> impl Strategy<Value = Spec> {
    (
        prop::bool::weighted(0.3),
        prop::bool::weighted(0.2),
        target(),
        headers(),
        host_line(),
        any::<Index>(),
        any::<Index>(),
        select(vec!["X-Not-Plain", "x-not-plain"]),
    )
        .prop_map(
            |(head, http10, target, lines, host, host_at, other_at, other_name)| Spec {
                head,
                http10,
                target,
                lines,
                host,
                host_at,
                other_at,
                other_name,
            },
        )
}

// ---------------------------------------------------------------------------
// Rendering a spec into request bytes

/// A byte a target may carry as it is (RFC 3986 pchar, but `%`).
fn safe(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@/".contains(&b)
}

/// The path written byte by byte: mode 0 as is where that is safe (else
/// `%XX`), 1 `%XX`, 2 `%xx`, 3 as is whatever it is. `/` is always as is
/// (encoded slashes come from the junk segments).
fn encode(path: &[u8], modes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, &b) in path.iter().enumerate() {
        let mode = modes.get(i).copied().unwrap_or(0);
        match mode {
            _ if b == b'/' => out.push(b),
            0 if safe(b) => out.push(b),
            3 => out.push(b),
            2 => out.extend(format!("%{b:02x}").bytes()),
            _ => out.extend(format!("%{b:02X}").bytes()),
        }
    }
    out
}

fn base_of(i: usize) -> (Vec<u8>, usize) {
    match FILES.get(i) {
        Some(f) => (f.as_bytes().to_vec(), i),
        None => {
            let (p, f) = BASES[i - FILES.len()];
            (p.to_vec(), f)
        }
    }
}

fn target_bytes(t: &TargetSpec) -> (Vec<u8>, usize) {
    let (path, file) = base_of(t.base);
    let encoded = encode(&path, &t.modes);
    let mut segs: Vec<Vec<u8>> = encoded.split(|&b| b == b'/').map(<[u8]>::to_vec).collect();
    for (at, junk) in &t.junk {
        // before the last segment: after it, the path would name a directory
        let at = at.index(segs.len());
        segs.insert(at, junk.as_bytes().to_vec());
    }
    let mut out = Vec::new();
    if let Some((kind, len)) = t.pad {
        match kind {
            // one long name (past NAME_MAX at 256)
            0 => {
                out.push(b'/');
                out.extend(std::iter::repeat_n(b'a', len));
            }
            // a long way to the same place
            1 => out.extend(std::iter::repeat_n(b"/.".as_slice(), len / 2).flatten()),
            2 => out.extend(std::iter::repeat_n(b"/x/..".as_slice(), len / 5).flatten()),
            // many empty segments
            _ => out.extend(std::iter::repeat_n(b'/', len)),
        }
    }
    out.push(b'/');
    out.extend(segs.join(&b'/'));
    out.extend(t.suffix.as_bytes());
    (out, file)
}

/// IMF-fixdate, RFC 850 and asctime forms of `t` (RFC 9110 5.6.7).
fn date_forms(t: SystemTime) -> (String, String, String) {
    let imf = httpdate::fmt_http_date(t);
    // "Sun, 06 Nov 1994 08:49:37 GMT"
    let p: Vec<&str> = imf.split([' ', ',']).filter(|s| !s.is_empty()).collect();
    let (wd, day, mon, year, time) = (p[0], p[1], p[2], p[3], p[4]);
    let long = match wd {
        "Mon" => "Monday",
        "Tue" => "Tuesday",
        "Wed" => "Wednesday",
        "Thu" => "Thursday",
        "Fri" => "Friday",
        "Sat" => "Saturday",
        _ => "Sunday",
    };
    let rfc850 = format!("{long}, {day}-{mon}-{} {time} GMT", &year[2..]);
    let asctime = format!(
        "{wd} {mon} {:>2} {time} {year}",
        day.trim_start_matches('0')
    );
    (imf, rfc850, asctime)
}

fn fill(template: &str, facts: &[Facts], file: usize) -> Vec<u8> {
    if !template.contains('{') {
        return template.as_bytes().to_vec();
    }
    let f = &facts[file];
    let other = &facts[(file + 1) % facts.len()];
    let secs = Duration::from_secs(1);
    let year = Duration::from_secs(365 * 86_400);
    let (imf, rfc850, asctime) = date_forms(f.modified);
    let inner = f.etag.trim_start_matches("W/").trim_matches('"');
    let since_epoch = f
        .modified
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let len = f.len;
    let s = template
        .replace("{Ec}", &format!("\"{}\"", inner.to_uppercase()))
        .replace("{Eu}", inner)
        .replace("{E2}", &other.etag)
        .replace("{E}", &f.etag)
        .replace("{S}", STALE)
        .replace("{LMm1y}", &httpdate::fmt_http_date(f.modified - year))
        .replace("{LMp1y}", &httpdate::fmt_http_date(f.modified + year))
        .replace("{LMm1}", &httpdate::fmt_http_date(f.modified - secs))
        .replace("{LMp1}", &httpdate::fmt_http_date(f.modified + secs))
        .replace("{LM850}", &rfc850)
        .replace("{LMasc}", &asctime)
        .replace("{LMlow}", &imf.to_lowercase())
        .replace("{LMnogmt}", imf.trim_end_matches(" GMT"))
        .replace("{LMutc}", &imf.replace("GMT", "UTC"))
        .replace("{LMsecs}", &since_epoch.to_string())
        .replace("{LM}", &imf)
        .replace("{L}", &len.to_string())
        .replace("{L-1}", &len.saturating_sub(1).to_string())
        .replace("{L+1}", &(len + 1).to_string())
        .replace("{L/2}", &(len / 2).to_string());
    // `{Xhh}`: the byte hh (not UTF-8 on its own)
    let mut out = Vec::new();
    let mut rest = s.as_bytes();
    while !rest.is_empty() {
        let byte = match rest {
            [b'{', b'X', h, l, b'}', ..] => std::str::from_utf8(&[*h, *l])
                .ok()
                .and_then(|hex| u8::from_str_radix(hex, 16).ok()),
            _ => None,
        };
        match byte {
            Some(b) => {
                out.push(b);
                rest = &rest[5..];
            }
            None => {
                out.push(rest[0]);
                rest = &rest[1..];
            }
        }
    }
    out
}

fn name_bytes(l: &LineSpec) -> String {
    match l.case {
        0 => l.name.to_string(),
        1 => l.name.to_ascii_lowercase(),
        2 => l.name.to_ascii_uppercase(),
        _ => l
            .name
            .chars()
            .enumerate()
            .map(|(i, c)| match l.bits >> (i % 32) & 1 {
                1 => c.to_ascii_uppercase(),
                _ => c.to_ascii_lowercase(),
            })
            .collect(),
    }
}

fn line_bytes(l: &LineSpec, facts: &[Facts], file: usize) -> Vec<u8> {
    let mut out = name_bytes(l).into_bytes();
    out.push(b':');
    out.extend(l.pre.as_bytes());
    out.extend(fill(&l.value, facts, file));
    out.extend(l.post.as_bytes());
    out.extend(if l.lf { &b"\n"[..] } else { b"\r\n" });
    out
}

fn build(spec: &Spec, facts: &[Facts]) -> Case {
    let (target, file) = target_bytes(&spec.target);
    let method = if spec.head { "HEAD" } else { "GET" };
    let mut lines: Vec<Vec<u8>> = spec
        .lines
        .iter()
        .map(|l| line_bytes(l, facts, file))
        .collect();
    if let Some(host) = &spec.host {
        let at = spec.host_at.index(lines.len() + 1);
        lines.insert(at, line_bytes(host, facts, file));
    }
    let mut start = format!("{method} ").into_bytes();
    start.extend(&target);
    start.extend(match spec.http10 {
        true => &b" HTTP/1.0\r\n"[..],
        false => b" HTTP/1.1\r\n",
    });
    let join = |lines: &[Vec<u8>]| {
        let mut req = start.clone();
        req.extend(lines.concat());
        req.extend(b"\r\n");
        req
    };
    let plain = join(&lines);
    let at = spec.other_at.index(lines.len() + 1);
    lines.insert(at, format!("{}: 1\r\n", spec.other_name).into_bytes());
    let other = join(&lines);
    Case {
        plain,
        other,
        head: spec.head,
    }
}

// ---------------------------------------------------------------------------
// Exchanges

/// One response exactly as sent (head, body), and what followed it: the
/// connection closed, or open with the status line of a next request's
/// answer. Errors are reported, not panicked on (a stuck read times out).
fn exchange(s: &TestServer, req: &[u8], head_request: bool) -> Result<Vec<u8>, String> {
    let mut conn = s.connect();
    conn.reader
        .get_ref()
        .set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    conn.reader
        .get_mut()
        .write_all(req)
        .map_err(|e| format!("send: {e}"))?;
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let n = conn.reader.read_until(b'\n', &mut head).map_err(|e| {
            format!(
                "reading head: {e}; got {:?}",
                head.escape_ascii().to_string()
            )
        })?;
        if n == 0 {
            return Err(format!(
                "closed mid-head: {:?}",
                head.escape_ascii().to_string()
            ));
        }
    }
    let text = String::from_utf8_lossy(&head).into_owned();
    let status: u16 = text
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("no status: {text:?}"))?;
    let field = |name: &str| {
        text.split("\r\n").find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
        })
    };
    let mut out = head.clone();
    let bodiless = head_request || status == 304 || status == 204 || status < 200;
    if !bodiless {
        let chunked = field("transfer-encoding").is_some_and(|v| v.contains("chunked"));
        if chunked {
            out.extend(b"[chunked]");
            loop {
                let mut line = Vec::new();
                conn.reader
                    .read_until(b'\n', &mut line)
                    .map_err(|e| format!("chunk size: {e}"))?;
                out.extend(&line);
                let size = std::str::from_utf8(&line)
                    .ok()
                    .and_then(|l| usize::from_str_radix(l.trim(), 16).ok())
                    .ok_or_else(|| format!("bad chunk size {line:?}"))?;
                let mut chunk = vec![0; size + 2];
                conn.reader
                    .read_exact(&mut chunk)
                    .map_err(|e| format!("chunk: {e}"))?;
                out.extend(&chunk);
                if size == 0 {
                    break;
                }
            }
        } else {
            let len: usize = match field("content-length") {
                Some(v) => v.parse().map_err(|_| format!("Content-Length {v:?}"))?,
                None => return Err(format!("no framing: {text:?}")),
            };
            let mut body = vec![0; len];
            conn.reader
                .read_exact(&mut body)
                .map_err(|e| format!("body of {len}: {e}"))?;
            out.extend(body);
        }
    }
    // what follows: a close, or a connection that serves a next request
    let closing = field("connection").is_some_and(|v| v.eq_ignore_ascii_case("close"));
    out.extend(b"\r\n[then] ");
    if closing {
        let mut rest = Vec::new();
        match conn.reader.read_to_end(&mut rest) {
            Ok(_) if rest.is_empty() => out.extend(b"closed"),
            Ok(_) => {
                out.extend(b"extra bytes then closed: ");
                out.extend(rest);
            }
            Err(e) if !rest.is_empty() => {
                out.extend(format!("extra bytes then {:?}: ", e.kind()).bytes());
                out.extend(rest);
            }
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => out.extend(b"closed"),
            Err(e) => out.extend(format!("not closed ({:?})", e.kind()).bytes()),
        }
    } else {
        let probe = b"HEAD /empty.txt HTTP/1.1\r\nHost: test\r\n\r\n";
        let _ = conn.reader.get_mut().write_all(probe);
        let mut line = Vec::new();
        match conn.reader.read_until(b'\n', &mut line) {
            Ok(0) => out.extend(b"closed without saying so"),
            Ok(_) => out.extend(line),
            Err(e) => out.extend(format!("no answer to a next request ({:?})", e.kind()).bytes()),
        }
    }
    Ok(normalized(out))
}

/// A response with what differs between any two answers blanked: the
/// `Date` value and multipart boundaries (fresh per response).
fn normalized(raw: Vec<u8>) -> Vec<u8> {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(raw.len(), |i| i + 4);
    let (head, rest) = raw.split_at(end);
    let mut out = Vec::new();
    let mut boundary = None;
    for line in head.split_inclusive(|&b| b == b'\n') {
        if line.len() >= 5 && line[..5].eq_ignore_ascii_case(b"date:") {
            out.extend(b"Date: -\r\n");
            continue;
        }
        let text = String::from_utf8_lossy(line);
        if let Some(b) = text.split("boundary=").nth(1) {
            boundary = Some(b.trim_end().to_string());
        }
        out.extend(line);
    }
    out.extend(rest);
    match boundary.filter(|b| !b.is_empty()) {
        Some(b) => replace(&out, b.as_bytes(), b"BOUNDARY"),
        None => out,
    }
}

fn replace(hay: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(hay.len());
    let mut i = 0;
    while i < hay.len() {
        if hay[i..].starts_with(from) {
            out.extend(to);
            i += from.len();
        } else {
            out.push(hay[i]);
            i += 1;
        }
    }
    out
}

/// An answer for a report: the head as text, the rest escaped and clipped.
fn show(answer: &Result<Vec<u8>, String>) -> String {
    let bytes = match answer {
        Ok(bytes) => bytes,
        Err(e) => return format!("<error: {e}>"),
    };
    let end = bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(bytes.len(), |i| i + 4);
    let (head, rest) = bytes.split_at(end);
    let mut out = String::from_utf8_lossy(head).replace("\r\n", "\n    ");
    let clip = rest.len().min(200);
    out.push_str(&format!("{}", rest[..clip].escape_ascii()));
    if rest.len() > clip {
        out.push_str(&format!("... ({} bytes in all)", rest.len()));
    }
    format!("    {out}")
}

/// Fetch the validators of every fixture file.
fn facts_of(s: &TestServer) -> Vec<Facts> {
    FILES
        .iter()
        .map(|f| {
            let target = format!("/{}", String::from_utf8(encode(f.as_bytes(), &[])).unwrap());
            let res = s.get(&target, &[]);
            assert_eq!(res.status(), 200, "{target}");
            Facts {
                etag: res.header("ETag").unwrap_or(STALE).to_string(),
                modified: res
                    .header("Last-Modified")
                    .and_then(|v| httpdate::parse_http_date(v).ok())
                    .expect("Last-Modified"),
                len: res.body.len() as u64,
            }
        })
        .collect()
}

/// Check one case: `Ok` with the status line if the three answers agree
/// (`None`: the case is not one this test is about), else the divergence,
/// described in full.
fn check(s: &TestServer, case: &Case) -> Result<Option<String>, String> {
    match classify(&case.plain, 100, 8192) {
        Head::Plain(_) => {}
        _ => return Ok(None),
    }
    if classify(&case.other, 100, 8192) != Head::Other {
        return Err("the X-Not-Plain twin is not Head::Other".into());
    }
    let fast = exchange(s, &case.plain, case.head);
    let slow = exchange(s, &case.other, case.head);
    let warm = exchange(s, &case.plain, case.head);
    if let (Ok(answer), true) = (&slow, fast == slow && warm == slow) {
        // the status line, to tell what was compared
        let line = answer.split(|&b| b == b'\r').next().unwrap_or_default();
        let mut line = String::from_utf8_lossy(line).into_owned();
        if answer.windows(10).any(|w| w == b"multipart/") {
            line.push_str(" (multipart)");
        }
        return Ok(Some(line));
    }
    Err(format!(
        "the fast path and hyper differ\nrequest (plain):\n    b\"{}\"\nhyper twin:\n    b\"{}\"\n\
         fast path, first{}:\n{}\nhyper:\n{}\nfast path, warm{}:\n{}",
        case.plain.escape_ascii(),
        case.other.escape_ascii(),
        if fast == slow { " (= hyper)" } else { "" },
        show(&fast),
        show(&slow),
        if warm == slow { " (= hyper)" } else { "" },
        show(&warm),
    ))
}

#[test]
fn random_requests_get_the_same_bytes_from_the_fast_path_and_hyper() {
    let s = TestServer::fixtures();
    let facts = Arc::new(facts_of(&s));
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    let keep_going = std::env::var_os("H1_FUZZ_ALL").is_some();
    let config = ProptestConfig {
        cases,
        // a skipped case (not plain) is cheap, but should stay rare
        max_global_rejects: cases * 4,
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    let mut runner = TestRunner::new(config);
    let strategy = {
        let facts = Arc::clone(&facts);
        spec().prop_map(move |spec| build(&spec, &facts))
    };
    let found = Mutex::new(Vec::new());
    let (statuses, skipped) = (Mutex::new(BTreeMap::new()), Mutex::new(0u32));
    let started = Instant::now();
    let result = runner.run(&strategy, |case| match check(&s, &case) {
        Ok(Some(status)) => {
            *statuses.lock().unwrap().entry(status).or_insert(0u32) += 1;
            Ok(())
        }
        Ok(None) => {
            *skipped.lock().unwrap() += 1;
            Err(TestCaseError::reject("not a plain head"))
        }
        Err(divergence) if keep_going => {
            found.lock().unwrap().push(divergence);
            Ok(())
        }
        Err(divergence) => Err(TestCaseError::fail(divergence)),
    });
    let statuses = statuses.into_inner().unwrap();
    eprintln!(
        "{} requests compared ({} not plain, skipped) in {:.1?}: {statuses:?}",
        statuses.values().sum::<u32>(),
        skipped.into_inner().unwrap(),
        started.elapsed()
    );
    let found = found.into_inner().unwrap();
    for (i, d) in found.iter().enumerate() {
        eprintln!("--- divergence {} of {}\n{d}\n", i + 1, found.len());
    }
    match result {
        Ok(()) => assert!(found.is_empty(), "{} divergences (above)", found.len()),
        Err(TestError::Fail(why, case)) => panic!("{why}\nminimal request: {case:?}"),
        Err(e) => panic!("{e}"),
    }
}

/// The generator's own sanity: most generated requests are plain heads
/// (else the test above compares little), and the twin never is.
#[test]
fn most_generated_requests_are_plain_heads() {
    let facts: Vec<Facts> = FILES
        .iter()
        .map(|_| Facts {
            etag: STALE.into(),
            modified: SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000),
            len: 10_000,
        })
        .collect();
    let mut runner = TestRunner::deterministic();
    let strategy = spec();
    let (mut plain, n) = (0, 500);
    for _ in 0..n {
        let spec = strategy.new_tree(&mut runner).unwrap().current();
        let case = build(&spec, &facts);
        if matches!(classify(&case.plain, 100, 8192), Head::Plain(_)) {
            plain += 1;
            assert_eq!(classify(&case.other, 100, 8192), Head::Other, "{case:?}");
        }
    }
    assert!(plain * 10 > n * 8, "only {plain} of {n} are plain heads");
}
