//! `Range` header values: `rfc::range::parse`, then `resolve` against a
//! length taken from the input, `ContentRange` formatting and
//! `fs::prefetch_window`.
//!
//! Input: `[sel: 1 byte][length: 8 bytes LE][header value...]`.
//! `sel & 3` picks how the length is read (0: `% 2048`, 1: `% 2^40`,
//! 2: any u64, 3: `u64::MAX - (x % 2048)`); `sel >> 2` is `max_ranges`
//! (0 means the default, 64; 63 means unlimited).
#![no_main]

use libfuzzer_sys::fuzz_target;
use rangeserve::fs::{prefetch_window, PREFETCH_MAX, SMALL_MAX};
use rangeserve::rfc::range::{
    parse, resolve, ByteRange, ContentRange, FullReason, RangeDecision, RangeSpec,
};

fuzz_target!(|data: &[u8]| {
    if data.len() < 9 {
        return;
    }
    let sel = data[0];
    let raw = u64::from_le_bytes(data[1..9].try_into().expect("8 bytes"));
    let length = match sel & 3 {
        0 => raw % 2048,
        1 => raw % (1 << 40),
        2 => raw,
        _ => u64::MAX - raw % 2048,
    };
    let max_ranges = match sel >> 2 {
        0 => 64,
        63 => usize::MAX,
        n => usize::from(n),
    };
    let header = String::from_utf8_lossy(&data[9..]);
    check(&header, length, max_ranges);
});

fn check(header: &str, length: u64, max_ranges: usize) {
    let parsed = parse(header);
    // an independent reading of the grammar (RFC 9110 14.1.1 with the
    // leniencies the module documents) must agree on what parses, and to what
    assert_eq!(
        parsed.as_ref().ok(),
        reference_parse(header).as_ref(),
        "parse disagrees with the grammar for {header:?}: {parsed:?}"
    );
    prefetch_checks(length, None);
    let Ok(specs) = parsed else { return };
    assert!(!specs.is_empty(), "Ok with no specs: {header:?}");
    for s in &specs {
        if let RangeSpec::FromTo {
            first,
            last: Some(last),
        } = *s
        {
            assert!(first <= last, "backwards spec accepted: {header:?}");
        }
    }
    // canonical form round-trips
    let canonical = format!(
        "bytes={}",
        specs.iter().map(spec_str).collect::<Vec<_>>().join(",")
    );
    assert_eq!(
        parse(&canonical).as_ref(),
        Ok(&specs),
        "{canonical:?} from {header:?}"
    );
    prefetch_checks(length, Some(specs[0]));

    let decision = resolve(&specs, length, max_ranges);
    let want = reference_resolve(&specs, length, max_ranges);
    assert_eq!(
        decision, want,
        "resolve({header:?}, {length}, {max_ranges})"
    );
    // what the types promise, checked on their own
    match &decision {
        RangeDecision::Single(r) => {
            in_bounds(r, length);
            assert_eq!(
                ContentRange::Bytes { range: *r, length }.to_string(),
                format!("bytes {}-{}/{length}", r.start, r.end)
            );
        }
        RangeDecision::Multi(rs) => {
            assert!(rs.len() >= 2, "Multi with {} parts", rs.len());
            assert!(rs.len() <= max_ranges);
            rs.iter().for_each(|r| in_bounds(r, length));
            let mut sorted = rs.clone();
            sorted.sort();
            for w in sorted.windows(2) {
                // coalesced: neither overlapping nor adjacent
                assert!(w[1].start > w[0].end + 1, "uncoalesced parts {w:?}");
            }
            let total: u64 = rs.iter().map(ByteRange::len).sum();
            assert!(total <= length, "parts longer than the representation");
        }
        RangeDecision::Unsatisfiable => assert_eq!(
            ContentRange::Unsatisfied { length }.to_string(),
            format!("bytes */{length}")
        ),
        RangeDecision::Full(FullReason::EmptyRepresentation) => assert_eq!(length, 0),
        RangeDecision::Full(FullReason::TooManyRanges) => {}
    }
}

fn in_bounds(r: &ByteRange, length: u64) {
    assert!(r.start <= r.end, "empty range {r:?}");
    assert!(r.end < length, "range {r:?} beyond length {length}");
    assert_eq!(r.len(), r.end - r.start + 1);
    assert!(!r.is_empty());
}

fn prefetch_checks(size: u64, want: Option<RangeSpec>) {
    if let Some((offset, len)) = prefetch_window(size, want) {
        let end = offset.checked_add(len).expect("window overflows");
        assert!(end <= size, "prefetch window {offset}+{len} beyond {size}");
        if size > SMALL_MAX {
            assert!((1..=PREFETCH_MAX).contains(&len), "window of {len} bytes");
        } else {
            assert_eq!((offset, len), (0, size), "small files are read whole");
        }
    } else {
        assert!(size > SMALL_MAX, "a small file must be read whole");
    }
}

fn spec_str(s: &RangeSpec) -> String {
    match *s {
        RangeSpec::FromTo { first, last: None } => format!("{first}-"),
        RangeSpec::FromTo {
            first,
            last: Some(l),
        } => format!("{first}-{l}"),
        RangeSpec::Suffix(n) => format!("-{n}"),
    }
}

// ---- reference model -------------------------------------------------------

/// `bytes-unit "=" range-set`, unit case-insensitive, OWS (SP / HTAB) around
/// the unit, the `=` and every list element, empty elements skipped, numbers
/// saturating at u64::MAX, and a backwards int-range spoiling the header.
fn reference_parse(value: &str) -> Option<Vec<RangeSpec>> {
    let b = value.as_bytes();
    let eq = b.iter().position(|&c| c == b'=')?;
    let unit = trim_ows(&b[..eq]);
    if !unit.eq_ignore_ascii_case(b"bytes") {
        return None;
    }
    let mut out = Vec::new();
    for element in b[eq + 1..].split(|&c| c == b',') {
        let e = trim_ows(element);
        if e.is_empty() {
            continue;
        }
        let dash = e.iter().position(|&c| c == b'-')?;
        let (first, last) = (&e[..dash], &e[dash + 1..]);
        let spec = if first.is_empty() {
            RangeSpec::Suffix(number(last)?)
        } else {
            let first = number(first)?;
            let last = if last.is_empty() {
                None
            } else {
                Some(number(last)?)
            };
            if last.is_some_and(|l| l < first) {
                return None;
            }
            RangeSpec::FromTo { first, last }
        };
        out.push(spec);
    }
    (!out.is_empty()).then_some(out)
}

fn trim_ows(mut b: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = b {
        b = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = b {
        b = rest;
    }
    b
}

fn number(b: &[u8]) -> Option<u64> {
    if b.is_empty() || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut n: u128 = 0;
    for &d in b {
        n = (n * 10 + u128::from(d - b'0')).min(u128::from(u64::MAX) + 1);
    }
    Some(u64::try_from(n).unwrap_or(u64::MAX))
}

/// RFC 9110 14.1.1 satisfiability and clamping, coalescing of overlapping
/// and adjacent ranges, parts in the order of the first spec that asked for
/// any of their bytes.
fn reference_resolve(specs: &[RangeSpec], length: u64, max_ranges: usize) -> RangeDecision {
    // (start, end inclusive, index of the spec)
    let mut intervals: Vec<(u64, u64, usize)> = Vec::new();
    let mut suffix_of_empty = false;
    for (i, s) in specs.iter().enumerate() {
        match *s {
            RangeSpec::FromTo { first, last } if first < length => {
                let end = last.unwrap_or(u64::MAX).min(length - 1);
                intervals.push((first, end, i));
            }
            RangeSpec::FromTo { .. } => {}
            RangeSpec::Suffix(0) => {}
            RangeSpec::Suffix(_) if length == 0 => suffix_of_empty = true,
            RangeSpec::Suffix(n) => intervals.push((length.saturating_sub(n), length - 1, i)),
        }
    }
    if intervals.is_empty() {
        return if suffix_of_empty {
            RangeDecision::Full(FullReason::EmptyRepresentation)
        } else {
            RangeDecision::Unsatisfiable
        };
    }
    intervals.sort_by_key(|&(s, e, _)| (s, e));
    let mut merged: Vec<(u64, u64, usize)> = Vec::new();
    for (s, e, i) in intervals {
        match merged.last_mut() {
            Some(m) if u128::from(s) <= u128::from(m.1) + 1 => {
                m.1 = m.1.max(e);
                m.2 = m.2.min(i);
            }
            _ => merged.push((s, e, i)),
        }
    }
    merged.sort_by_key(|&(_, _, i)| i);
    let ranges: Vec<ByteRange> = merged
        .into_iter()
        .map(|(start, end, _)| ByteRange { start, end })
        .collect();
    match ranges.len() {
        n if n > max_ranges => RangeDecision::Full(FullReason::TooManyRanges),
        1 => RangeDecision::Single(ranges[0]),
        _ => RangeDecision::Multi(ranges),
    }
}
