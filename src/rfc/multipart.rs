//! `multipart/byteranges` bodies (RFC 9110 14.6, RFC 2046 5.1): planning one
//! to send, and parsing one received (for `rangeserve probe`).
//!
//! [`plan`] turns ranges into an ordered list of [`Segment`]s — framing bytes
//! held in memory and file slices to be streamed — together with the exact
//! Content-Length. The length is the sum of the very segments the body writer
//! sends, so the header and the body cannot disagree.

use std::collections::VecDeque;

use bytes::Bytes;

use super::range::{ByteRange, ContentRange};

/// One piece of a response body, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    /// Bytes known up front (multipart framing).
    Static(Bytes),
    /// A slice of the representation, streamed from the file.
    Slice(ByteRange),
}

impl Segment {
    /// Number of bytes this segment contributes to the body.
    pub fn len(&self) -> u64 {
        match self {
            Segment::Static(b) => b.len() as u64,
            Segment::Slice(r) => r.len(),
        }
    }

    /// True when the segment contributes no bytes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The segments a body still has to send, in order, none of them empty. A
/// whole representation or a single range is one segment, held inline: most
/// bodies then allocate nothing for it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Segments(Queue);

#[derive(Debug, Clone, PartialEq, Eq)]
enum Queue {
    One(Option<Segment>),
    Many(VecDeque<Segment>),
}

impl Default for Queue {
    fn default() -> Self {
        Queue::One(None)
    }
}

impl Segments {
    /// Just `segment` (nothing, if it is empty).
    pub fn one(segment: Segment) -> Self {
        Segments(Queue::One((!segment.is_empty()).then_some(segment)))
    }

    /// Bytes the segments add up to.
    pub fn len(&self) -> u64 {
        self.iter().map(Segment::len).sum()
    }

    /// True when no segment is left.
    pub fn is_empty(&self) -> bool {
        self.iter().next().is_none()
    }

    /// The segments, first to last.
    pub fn iter(&self) -> impl Iterator<Item = &Segment> {
        let (one, many) = match &self.0 {
            Queue::One(one) => (one.as_ref(), None),
            Queue::Many(many) => (None, Some(many.iter())),
        };
        one.into_iter().chain(many.into_iter().flatten())
    }

    /// Take the first segment.
    pub fn pop_front(&mut self) -> Option<Segment> {
        match &mut self.0 {
            Queue::One(one) => one.take(),
            Queue::Many(many) => many.pop_front(),
        }
    }

    /// Put `segment` back in front (what is left of one partly sent); an
    /// empty one is dropped.
    pub fn push_front(&mut self, segment: Segment) {
        if segment.is_empty() {
            return;
        }
        match &mut self.0 {
            Queue::One(one @ None) => *one = Some(segment),
            Queue::One(Some(_)) => {
                let Queue::One(Some(first)) = std::mem::take(&mut self.0) else {
                    unreachable!("matched above")
                };
                self.0 = Queue::Many(VecDeque::from([segment, first]));
            }
            Queue::Many(many) => many.push_front(segment),
        }
    }

    /// Drop every segment left.
    pub fn clear(&mut self) {
        self.0 = Queue::default();
    }
}

impl From<Vec<Segment>> for Segments {
    fn from(segments: Vec<Segment>) -> Self {
        let mut segments = segments;
        segments.retain(|s| !s.is_empty());
        match segments.len() {
            0 | 1 => Segments(Queue::One(segments.pop())),
            _ => Segments(Queue::Many(segments.into())),
        }
    }
}

/// A planned multipart body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MultipartPlan {
    /// The response's `Content-Type`: `multipart/byteranges; boundary=...`.
    pub content_type: String,
    /// The body, in order.
    pub segments: Vec<Segment>,
    /// Exact body length: the sum of the segments' lengths.
    pub content_length: u64,
}

/// Plan a multipart body for `ranges` (in the order given) of a representation
/// of `length` bytes whose own type is `part_type`.
///
/// `boundary` must be a valid RFC 2046 boundary that does not occur in the
/// content; callers use a fresh random one per response.
pub fn plan(boundary: &str, part_type: &str, ranges: &[ByteRange], length: u64) -> MultipartPlan {
    // All the framing in one buffer, each piece a slice of it.
    let per_part = boundary.len() + part_type.len() + 96;
    let mut framing = Vec::with_capacity(ranges.len() * per_part + boundary.len() + 8);
    let mut ends = Vec::with_capacity(ranges.len() + 1);
    for (i, &range) in ranges.iter().enumerate() {
        // The CRLF before a boundary belongs to the delimiter (RFC 2046 5.1.1).
        if i > 0 {
            framing.extend_from_slice(b"\r\n");
        }
        framing.extend_from_slice(b"--");
        framing.extend_from_slice(boundary.as_bytes());
        framing.extend_from_slice(b"\r\nContent-Type: ");
        framing.extend_from_slice(part_type.as_bytes());
        framing.extend_from_slice(b"\r\nContent-Range: ");
        ContentRange::Bytes { range, length }.write_value(|piece| framing.extend_from_slice(piece));
        framing.extend_from_slice(b"\r\n\r\n");
        ends.push(framing.len());
    }
    framing.extend_from_slice(b"\r\n--");
    framing.extend_from_slice(boundary.as_bytes());
    framing.extend_from_slice(b"--\r\n");
    ends.push(framing.len());
    let framing = Bytes::from(framing);
    let mut segments = Vec::with_capacity(ranges.len() * 2 + 1);
    let mut start = 0;
    for (i, end) in ends.into_iter().enumerate() {
        segments.push(Segment::Static(framing.slice(start..end)));
        if let Some(&range) = ranges.get(i) {
            segments.push(Segment::Slice(range));
        }
        start = end;
    }
    let content_length = segments.iter().map(Segment::len).sum();
    // not `format!`: it grows its buffer a few times for this one
    const TYPE: &str = "multipart/byteranges; boundary=";
    let mut content_type = String::with_capacity(TYPE.len() + boundary.len());
    content_type.push_str(TYPE);
    content_type.push_str(boundary);
    MultipartPlan {
        content_type,
        segments,
        content_length,
    }
}

/// One part of a received `multipart/byteranges` body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    /// The part's `Content-Range` (every part must have one, 14.6).
    pub content_range: ContentRange,
    /// The part's `Content-Type`, if it has one.
    pub content_type: Option<String>,
    /// The part's bytes, exactly as delimited by the boundaries.
    pub body: Vec<u8>,
    /// Where those bytes start in the body parsed.
    pub at: usize,
}

/// Why a received multipart body could not be understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MultipartError {
    /// The Content-Type is not `multipart/byteranges` with a boundary.
    #[error("not multipart/byteranges with a boundary: {0:?}")]
    NotMultipart(String),
    /// No delimiter line opens the body.
    #[error("no boundary delimiter in the body")]
    NoDelimiter,
    /// The close delimiter (`--boundary--`) never comes.
    #[error("the body ends before the close delimiter")]
    Unterminated,
    /// A part's header section is not `name: value` lines ended by a blank line.
    #[error("malformed part headers")]
    PartHeaders,
    /// A part without Content-Range.
    #[error("a part without Content-Range")]
    MissingContentRange,
    /// A part whose Content-Range is malformed.
    #[error("a part's Content-Range: {0}")]
    BadContentRange(#[from] super::range::ContentRangeError),
}

/// The boundary of a `multipart/byteranges` Content-Type (RFC 2046 5.1.1:
/// the `boundary` parameter, token or quoted-string).
pub fn boundary(content_type: &str) -> Result<&str, MultipartError> {
    let not = || MultipartError::NotMultipart(content_type.chars().take(100).collect());
    let mut params = content_type.split(';');
    let media = params.next().unwrap_or("").trim();
    if !media.eq_ignore_ascii_case("multipart/byteranges") {
        return Err(not());
    }
    params
        .filter_map(|p| p.split_once('='))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("boundary"))
        .map(|(_, v)| v.trim().trim_matches('"'))
        .filter(|b| !b.is_empty() && b.len() <= 70)
        .ok_or_else(not)
}

/// Parse a received multipart body delimited by `boundary` (RFC 2046 5.1.1):
/// a preamble, parts separated by `CRLF--boundary`, each with headers, a
/// blank line and bytes, then `CRLF--boundary--` and an epilogue.
pub fn parse(boundary: &str, body: &[u8]) -> Result<Vec<Part>, MultipartError> {
    let dash = format!("--{boundary}");
    let delim = format!("\r\n{dash}");
    // the first delimiter may open the body (no preamble, no CRLF before it)
    let mut rest = if body.starts_with(dash.as_bytes()) {
        &body[dash.len()..]
    } else {
        let at = find(body, delim.as_bytes()).ok_or(MultipartError::NoDelimiter)?;
        &body[at + delim.len()..]
    };
    let mut parts = Vec::new();
    loop {
        if rest.starts_with(b"--") {
            return Ok(parts); // close delimiter; the epilogue is ignored
        }
        // transport padding (LWSP) then CRLF ends the delimiter line
        let line_end = find(rest, b"\r\n").ok_or(MultipartError::Unterminated)?;
        if !rest[..line_end].iter().all(|&b| b == b' ' || b == b'\t') {
            return Err(MultipartError::NoDelimiter);
        }
        rest = &rest[line_end + 2..];
        let next = find(rest, delim.as_bytes()).ok_or(MultipartError::Unterminated)?;
        let part = &rest[..next];
        let part_at = body.len() - rest.len();
        rest = &rest[next + delim.len()..];
        let skip = if part.starts_with(b"\r\n") {
            0
        } else {
            find(part, b"\r\n\r\n").ok_or(MultipartError::PartHeaders)? + 2
        };
        let (headers, bytes) = (&part[..skip.saturating_sub(2)], &part[skip + 2..]);
        let headers = std::str::from_utf8(headers).map_err(|_| MultipartError::PartHeaders)?;
        let mut content_range = None;
        let mut content_type = None;
        for line in headers.split("\r\n").filter(|l| !l.is_empty()) {
            let (name, value) = line.split_once(':').ok_or(MultipartError::PartHeaders)?;
            let value = value.trim_matches([' ', '\t']);
            if name.eq_ignore_ascii_case("content-range") {
                content_range = Some(ContentRange::parse(value)?);
            } else if name.eq_ignore_ascii_case("content-type") {
                content_type = Some(value.to_string());
            }
        }
        parts.push(Part {
            content_range: content_range.ok_or(MultipartError::MissingContentRange)?,
            content_type,
            body: bytes.to_vec(),
            at: part_at + skip + 2,
        });
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rfc::range::{parse, resolve, RangeDecision};
    use proptest::prelude::*;

    /// Serialize a plan against an in-memory representation.
    fn render(plan: &MultipartPlan, data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        for s in &plan.segments {
            match s {
                Segment::Static(b) => out.extend_from_slice(b),
                Segment::Slice(r) => {
                    out.extend_from_slice(&data[r.start as usize..=r.end as usize])
                }
            }
        }
        out
    }

    #[test]
    fn first_and_last_byte_exact_wire_format() {
        // RFC 9110 14.6 example shape, for bytes=0-0,-1 of a 10000-byte file
        let data: Vec<u8> = (0..10000u32).map(|i| (i % 251) as u8).collect();
        let ranges = [
            ByteRange { start: 0, end: 0 },
            ByteRange {
                start: 9999,
                end: 9999,
            },
        ];
        let p = plan("B", "text/plain", &ranges, 10000);
        assert_eq!(p.content_type, "multipart/byteranges; boundary=B");
        let mut want =
            b"--B\r\nContent-Type: text/plain\r\nContent-Range: bytes 0-0/10000\r\n\r\n".to_vec();
        want.push(data[0]);
        want.extend_from_slice(
            b"\r\n--B\r\nContent-Type: text/plain\r\nContent-Range: bytes 9999-9999/10000\r\n\r\n",
        );
        want.push(data[9999]);
        want.extend_from_slice(b"\r\n--B--\r\n");
        assert_eq!(render(&p, &data), want);
        assert_eq!(p.content_length, want.len() as u64);
    }

    #[test]
    fn parse_received_bodies() {
        let data: Vec<u8> = (0..100u8).collect();
        let ranges = [
            ByteRange { start: 0, end: 0 },
            ByteRange { start: 90, end: 99 },
        ];
        let p = plan("B", "text/plain", &ranges, 100);
        assert_eq!(boundary(&p.content_type), Ok("B"));
        let parts = super::parse("B", &render(&p, &data)).unwrap();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].body, vec![0]);
        assert_eq!(render(&p, &data)[parts[1].at..][..10], data[90..]);
        assert_eq!(parts[1].body, (90..100u8).collect::<Vec<_>>());
        assert_eq!(parts[1].content_range.to_string(), "bytes 90-99/100");
        assert_eq!(parts[1].content_type.as_deref(), Some("text/plain"));
        // preamble, quoted boundary, padding after a delimiter, an epilogue
        let body =
            b"preamble\r\n--q\t\r\nContent-Range: bytes 1-2/9\r\n\r\nab\r\n--q--\r\nepilogue";
        assert_eq!(boundary("Multipart/Byteranges; boundary=\"q\""), Ok("q"));
        let parts = super::parse("q", body).unwrap();
        assert_eq!((parts.len(), &parts[0].body[..]), (1, &b"ab"[..]));
        #[rustfmt::skip]
        let bad: &[(&[u8], MultipartError)] = &[
            (b"no delimiter at all", MultipartError::NoDelimiter),
            (b"--q\r\nContent-Range: bytes 1-2/9\r\n\r\nab", MultipartError::Unterminated),
            (b"--q\r\nContent-Type: x\r\n\r\nab\r\n--q--", MultipartError::MissingContentRange),
            (b"--q\r\nContent-Range: bytes 1-2\r\n\r\nab\r\n--q--", MultipartError::BadContentRange(crate::rfc::range::ContentRangeError::Malformed)),
            (b"--q\r\nno colon\r\n\r\nab\r\n--q--", MultipartError::PartHeaders),
            (b"--qx\r\n\r\nab\r\n--q--", MultipartError::NoDelimiter),
        ];
        for (body, want) in bad {
            assert_eq!(
                &super::parse("q", body).unwrap_err(),
                want,
                "{:?}",
                String::from_utf8_lossy(body)
            );
        }
        for ct in [
            "text/plain",
            "multipart/byteranges",
            "multipart/byteranges; boundary=",
        ] {
            assert!(boundary(ct).is_err(), "{ct}");
        }
    }

    #[test]
    fn segments_queue_in_order_without_empties() {
        let slice = |start, end| Segment::Slice(ByteRange { start, end });
        let fixed = |b: &'static [u8]| Segment::Static(Bytes::from_static(b));
        let drain = |mut q: Segments| std::iter::from_fn(move || q.pop_front()).collect::<Vec<_>>();
        // (what the queue is made of, what it gives, its length in bytes)
        let rows: Vec<(Segments, Vec<Segment>, u64)> = vec![
            (Segments::default(), vec![], 0),
            (Segments::one(slice(0, 9)), vec![slice(0, 9)], 10),
            (Segments::one(fixed(b"")), vec![], 0),
            (Segments::from(vec![]), vec![], 0),
            (
                Segments::from(vec![fixed(b""), slice(5, 5)]),
                vec![slice(5, 5)],
                1,
            ),
            (
                Segments::from(vec![fixed(b"ab"), fixed(b""), slice(0, 0), fixed(b"c")]),
                vec![fixed(b"ab"), slice(0, 0), fixed(b"c")],
                4,
            ),
        ];
        for (q, want, len) in rows {
            assert_eq!(q.len(), len, "{q:?}");
            assert_eq!(q.is_empty(), want.is_empty(), "{q:?}");
            assert_eq!(q.iter().cloned().collect::<Vec<_>>(), want, "{q:?}");
            assert_eq!(drain(q), want);
        }
        // what is left of a segment goes back in front, inline or not
        let mut one = Segments::one(slice(0, 99));
        let first = one.pop_front().unwrap();
        one.push_front(slice(50, 99));
        one.push_front(fixed(b""));
        assert_eq!(first, slice(0, 99));
        assert_eq!(drain(one), vec![slice(50, 99)]);
        let mut full = Segments::one(slice(0, 1));
        full.push_front(fixed(b"x"));
        assert_eq!(drain(full.clone()), vec![fixed(b"x"), slice(0, 1)]);
        full.clear();
        assert!(full.is_empty() && full.pop_front().is_none());
        let mut many = Segments::from(vec![fixed(b"a"), slice(0, 1), fixed(b"b")]);
        let a = many.pop_front().unwrap();
        many.push_front(a.clone());
        assert_eq!(drain(many), vec![a, slice(0, 1), fixed(b"b")]);
    }

    /// Extract (content-range, bytes) pairs from a serialized body.
    fn parts(body: &[u8], boundary: &str) -> Vec<(String, Vec<u8>)> {
        let delim = format!("--{boundary}\r\n");
        let mut out = Vec::new();
        let mut rest = body;
        while let Some(pos) = find(rest, delim.as_bytes()) {
            rest = &rest[pos + delim.len()..];
            let hdr_end = find(rest, b"\r\n\r\n").unwrap();
            let headers = std::str::from_utf8(&rest[..hdr_end]).unwrap();
            let cr = headers
                .lines()
                .find_map(|l| l.strip_prefix("Content-Range: "))
                .unwrap()
                .to_string();
            let spec = cr
                .strip_prefix("bytes ")
                .unwrap()
                .split('/')
                .next()
                .unwrap();
            let (a, b) = spec.split_once('-').unwrap();
            let n = b.parse::<usize>().unwrap() - a.parse::<usize>().unwrap() + 1;
            rest = &rest[hdr_end + 4..];
            out.push((cr, rest[..n].to_vec()));
            rest = &rest[n..];
        }
        out
    }

    fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
        hay.windows(needle.len()).position(|w| w == needle)
    }

    fn spec_strategy() -> impl Strategy<Value = String> {
        prop_oneof![
            (0u64..300, 0u64..300).prop_map(|(a, b)| format!("{}-{}", a.min(b), a.max(b))),
            (0u64..300).prop_map(|a| format!("{a}-")),
            (0u64..300).prop_map(|n| format!("-{n}")),
        ]
    }

    proptest! {
        /// Any bytes: parsing never panics, and each part's offset points at its bytes.
        #[test]
        fn parse_never_panics(
            body in proptest::collection::vec(
                prop_oneof![Just(b'-'), Just(b'\r'), Just(b'\n'), Just(b'q'), any::<u8>()], 0..200),
            prefix in "(--q\r\n(Content-Range: bytes [0-9]-[0-9]/[0-9]\r\n)?\r\n)?",
        ) {
            let mut input = prefix.into_bytes();
            input.extend_from_slice(&body);
            if let Ok(parts) = super::parse("q", &input) {
                for p in parts {
                    prop_assert_eq!(&input[p.at..p.at + p.body.len()], &p.body[..]);
                }
            }
        }

        /// The planned parts cover exactly the requested satisfiable bytes, and the
        /// computed Content-Length equals the serialized body.
        #[test]
        fn parts_cover_exactly_the_requested_bytes(
            length in 0u64..256,
            specs in proptest::collection::vec(spec_strategy(), 1..12),
        ) {
            let data: Vec<u8> = (0..length).map(|i| (i * 7 % 256) as u8).collect();
            let header = format!("bytes={}", specs.join(","));
            let parsed = parse(&header).unwrap();
            // the bytes asked for, computed naively from the header
            let mut wanted = vec![false; length as usize];
            for s in &specs {
                let (a, b) = s.split_once('-').unwrap();
                let (start, end) = match (a.parse::<u64>().ok(), b.parse::<u64>().ok()) {
                    (None, Some(n)) => (length.saturating_sub(n), length),
                    (Some(a), None) => (a, length),
                    (Some(a), Some(b)) => (a, (b + 1).min(length)),
                    _ => unreachable!(),
                };
                for i in start..end.max(start) { if i < length { wanted[i as usize] = true; } }
            }
            let mut covered = vec![false; length as usize];
            match resolve(&parsed, length, 64) {
                RangeDecision::Multi(ranges) => {
                    prop_assert!(ranges.len() >= 2);
                    let p = plan("XyZ", "application/octet-stream", &ranges, length);
                    let body = render(&p, &data);
                    prop_assert_eq!(p.content_length, body.len() as u64);
                    let got = parts(&body, "XyZ");
                    prop_assert_eq!(got.len(), ranges.len());
                    for ((cr, bytes), r) in got.iter().zip(&ranges) {
                        prop_assert_eq!(cr, &format!("bytes {}-{}/{}", r.start, r.end, length));
                        prop_assert_eq!(&bytes[..], &data[r.start as usize..=r.end as usize]);
                        for i in r.start..=r.end {
                            prop_assert!(!covered[i as usize], "byte {} sent twice", i);
                            covered[i as usize] = true;
                        }
                    }
                }
                RangeDecision::Single(r) => {
                    for i in r.start..=r.end { covered[i as usize] = true; }
                }
                RangeDecision::Unsatisfiable => {}
                RangeDecision::Full(_) => prop_assert_eq!(length, 0),
            }
            prop_assert_eq!(covered, wanted);
        }
    }
}
