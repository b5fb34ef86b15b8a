//! Entity-tags and preconditions: `EntityTag::parse`, `TagList::parse`,
//! `conditional::if_range_matches`, `conditional::evaluate` (RFC 9110
//! 13.2.2) and `plan::decide` on arbitrary header values.
//!
//! Input: `[flags][last-modified: 4 bytes LE, seconds; 0 = none]
//! [date - last-modified: 1 byte, signed seconds][length: 2 bytes LE]`
//! then text lines (`\n`): the current entity-tag (invalid = none), then
//! If-Match, If-None-Match, If-Modified-Since, If-Unmodified-Since,
//! If-Range, Range. Flag bits 0-4 say which of the five conditional headers
//! are present, bits 5-6 the method (GET, HEAD, other, GET), bit 7 whether
//! Range is present.
#![no_main]

use std::time::{Duration, UNIX_EPOCH};

use libfuzzer_sys::fuzz_target;
use rangeserve::plan::{decide, FileMethod, IgnoredRange, RangeHeader, RequestFacts, ResponsePlan};
use rangeserve::rfc::conditional::{
    evaluate, if_range_matches, parse_date, secs, CondMethod, Conditions, Outcome, Validators,
};
use rangeserve::rfc::etag::{strong_eq, weak_eq, EntityTag, TagList};
use rangeserve::rfc::range::{self, FullReason, RangeDecision};

fuzz_target!(|data: &[u8]| {
    if data.len() < 8 {
        return;
    }
    let flags = data[0];
    let lm_secs = u32::from_le_bytes(data[1..5].try_into().expect("4 bytes"));
    let delta = i64::from(data[5] as i8);
    let length = u64::from(u16::from_le_bytes([data[6], data[7]]));
    let text = String::from_utf8_lossy(&data[8..]);
    let lines: Vec<&str> = text.split('\n').collect();
    let line = |i: usize| lines.get(i).copied();

    for l in &lines {
        tag_checks(l);
    }

    let current = line(0).and_then(|l| EntityTag::parse(l).ok());
    let last_modified = (lm_secs != 0).then(|| UNIX_EPOCH + Duration::from_secs(lm_secs.into()));
    let base = i64::from(lm_secs);
    let date = UNIX_EPOCH + Duration::from_secs((base + delta).max(0) as u64);
    let v = Validators {
        etag: current.as_ref(),
        last_modified,
        date,
    };
    let present = |bit: u8, i: usize| {
        if flags & (1 << bit) != 0 {
            line(i)
        } else {
            None
        }
    };
    let c = Conditions {
        if_match: present(0, 1),
        if_none_match: present(1, 2),
        if_modified_since: present(2, 3),
        if_unmodified_since: present(3, 4),
        if_range: present(4, 5),
    };
    let method = match (flags >> 5) & 3 {
        1 => CondMethod::Head,
        2 => CondMethod::Other,
        _ => CondMethod::Get,
    };
    let range = (flags & 0x80 != 0).then(|| line(6).unwrap_or(""));

    if let Some(ir) = c.if_range {
        let got = if_range_matches(ir, &v);
        assert_eq!(got, reference_if_range(ir, &v), "If-Range {ir:?}");
        if got {
            // a weak tag never matches (13.1.5)
            let t = ir.trim_matches([' ', '\t']);
            assert!(!t.starts_with("W/"), "weak If-Range matched: {ir:?}");
        }
    }

    let outcome = evaluate(method, range.is_some(), &c, &v);
    assert_eq!(
        outcome,
        reference_evaluate(method, range.is_some(), &c, &v),
        "evaluate({method:?}, {c:?})"
    );
    if method == CondMethod::Other {
        assert_ne!(outcome, Outcome::NotModified, "304 is for GET/HEAD only");
    }
    if outcome == (Outcome::Proceed { use_range: false }) {
        assert!(method == CondMethod::Get && range.is_some() && c.if_range.is_some());
    }

    // the whole decision for a file of `length` bytes
    let file_method = match method {
        CondMethod::Get => FileMethod::Get,
        CondMethod::Head => FileMethod::Head,
        CondMethod::Other => return,
    };
    let facts = RequestFacts {
        method: file_method,
        range: range.map_or(RangeHeader::Absent, RangeHeader::Value),
        conditions: c,
    };
    let plan = decide(&facts, length, &v, 64);
    assert_eq!(
        plan,
        reference_plan(file_method, range, outcome, length),
        "decide({facts:?}, {length})"
    );
});

/// Parsing single tags and lists: what parses prints back to itself.
fn tag_checks(value: &str) {
    if let Ok(t) = EntityTag::parse(value) {
        assert!(
            t.opaque
                .bytes()
                .all(|b| b == 0x21 || (0x23..=0x7e).contains(&b) || b >= 0x80),
            "opaque part {:?} is not etagc",
            t.opaque
        );
        let printed = t.to_string();
        assert_eq!(EntityTag::parse(&printed).as_ref(), Ok(&t), "{printed:?}");
        assert_eq!(TagList::parse(&printed), Ok(TagList::Tags(vec![t.clone()])));
        assert!(weak_eq(&t, &t));
        assert_eq!(strong_eq(&t, &t), !t.weak);
    }
    match TagList::parse(value) {
        Ok(TagList::Any) => assert_eq!(value.trim_matches([' ', '\t']), "*"),
        Ok(TagList::Tags(tags)) => {
            assert!(!tags.is_empty(), "empty list accepted: {value:?}");
            let printed = tags
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ");
            assert_eq!(
                TagList::parse(&printed),
                Ok(TagList::Tags(tags.clone())),
                "{printed:?}"
            );
            for a in &tags {
                for b in &tags {
                    assert_eq!(strong_eq(a, b), strong_eq(b, a));
                    assert_eq!(weak_eq(a, b), weak_eq(b, a));
                    assert!(!strong_eq(a, b) || weak_eq(a, b));
                }
            }
        }
        Err(_) => {}
    }
}

// ---- reference model (RFC 9110 13.1, 13.2.2) -------------------------------

fn reference_if_range(value: &str, v: &Validators<'_>) -> bool {
    let value = value.trim_matches([' ', '\t']);
    if value.starts_with('"') || value.starts_with("W/") {
        return match (EntityTag::parse(value), v.etag) {
            (Ok(t), Some(cur)) => !t.weak && !cur.weak && t.opaque == cur.opaque,
            _ => false,
        };
    }
    match (parse_date(value), v.last_modified) {
        // an exact match with a strong Last-Modified (at least 1 s before Date)
        (Some(d), Some(lm)) => secs(d) == secs(lm) && secs(lm) < secs(v.date),
        _ => false,
    }
}

fn list_matches(value: &str, cur: Option<&EntityTag>, strong: bool) -> bool {
    match TagList::parse(value) {
        Ok(TagList::Any) => true,
        Ok(TagList::Tags(tags)) => cur.is_some_and(|cur| {
            tags.iter()
                .any(|t| t.opaque == cur.opaque && (!strong || (!t.weak && !cur.weak)))
        }),
        Err(_) => false,
    }
}

fn reference_evaluate(
    method: CondMethod,
    has_range: bool,
    c: &Conditions<'_>,
    v: &Validators<'_>,
) -> Outcome {
    let lm = v.last_modified.map(secs);
    if let Some(im) = c.if_match {
        if !list_matches(im, v.etag, true) {
            return Outcome::PreconditionFailed;
        }
    } else if let (Some(d), Some(lm)) = (c.if_unmodified_since.and_then(parse_date), lm) {
        if lm > secs(d) {
            return Outcome::PreconditionFailed;
        }
    }
    if let Some(inm) = c.if_none_match {
        if list_matches(inm, v.etag, false) {
            return if method == CondMethod::Other {
                Outcome::PreconditionFailed
            } else {
                Outcome::NotModified
            };
        }
    } else if method != CondMethod::Other {
        if let (Some(d), Some(lm)) = (c.if_modified_since.and_then(parse_date), lm) {
            if lm <= secs(d) {
                return Outcome::NotModified;
            }
        }
    }
    let use_range = !(method == CondMethod::Get && has_range)
        || c.if_range.is_none_or(|ir| reference_if_range(ir, v));
    Outcome::Proceed { use_range }
}

fn reference_plan(
    method: FileMethod,
    range: Option<&str>,
    outcome: Outcome,
    length: u64,
) -> ResponsePlan {
    let full = |why| ResponsePlan::Full { ignored: Some(why) };
    match outcome {
        Outcome::NotModified => return ResponsePlan::NotModified,
        Outcome::PreconditionFailed => return ResponsePlan::PreconditionFailed,
        Outcome::Proceed { use_range: false } => return full(IgnoredRange::IfRangeMismatch),
        Outcome::Proceed { use_range: true } => {}
    }
    let Some(value) = range else {
        return ResponsePlan::Full { ignored: None };
    };
    if method != FileMethod::Get {
        return full(IgnoredRange::NotGet);
    }
    let specs = match range::parse(value) {
        Ok(s) => s,
        Err(e) => return full(IgnoredRange::Invalid(e)),
    };
    match range::resolve(&specs, length, 64) {
        RangeDecision::Single(r) => ResponsePlan::Partial(r),
        RangeDecision::Multi(rs) => ResponsePlan::Multipart(rs),
        RangeDecision::Unsatisfiable => ResponsePlan::Unsatisfiable,
        RangeDecision::Full(FullReason::TooManyRanges) => full(IgnoredRange::TooMany),
        RangeDecision::Full(FullReason::EmptyRepresentation) => {
            full(IgnoredRange::EmptyRepresentation)
        }
    }
}
