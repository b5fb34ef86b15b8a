//! The decision for one file request, as a value: [`decide`] maps the facts of
//! a request and a file to a [`ResponsePlan`], which `render` turns
//! into a response. Pure: no I/O, no clock, no axum types. The order is
//! RFC 9110's: preconditions (13.2.2), then If-Range, then Range (14.2).

use crate::rfc::conditional::{self, CondMethod, Conditions, Outcome, Validators};
use crate::rfc::range::{self, ByteRange, FullReason, RangeDecision, RangeParseError};

/// The request method, as far as file serving cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileMethod {
    /// GET: the only method with range semantics (RFC 9110 14.2).
    Get,
    /// HEAD: the headers of the same GET without its Range.
    Head,
}

/// The request's `Range` header, as received.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeHeader<'a> {
    /// No Range header.
    Absent,
    /// Exactly one Range header with a visible-ASCII value.
    Value(&'a str),
    /// Several Range headers, or a value that is not visible ASCII.
    Unreadable,
}

/// The request headers a file's answer depends on (what [`RequestFacts`]
/// holds), lower case: Range and the conditionals (RFC 9110 13-14).
pub const FACT_HEADERS: [&str; 6] = [
    "range",
    "if-match",
    "if-none-match",
    "if-modified-since",
    "if-unmodified-since",
    "if-range",
];

/// The facts of a request that decide a file response.
#[derive(Debug, Clone, Copy)]
pub struct RequestFacts<'a> {
    /// GET or HEAD.
    pub method: FileMethod,
    /// The Range header.
    pub range: RangeHeader<'a>,
    /// The conditional headers.
    pub conditions: Conditions<'a>,
}

/// Why a present Range header did not shape the response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IgnoredRange {
    /// Range only applies to GET (RFC 9110 14.2).
    NotGet,
    /// Unknown unit or invalid syntax (14.2: ignore).
    Invalid(RangeParseError),
    /// Repeated header or non-ASCII value.
    Unreadable,
    /// More ranges than `--max-ranges` after coalescing (14.2 DoS guard).
    TooMany,
    /// A suffix-range of an empty file: the (empty) whole is the answer.
    EmptyRepresentation,
    /// If-Range did not match (13.1.5): the representation changed.
    IfRangeMismatch,
    /// Parts out of file order of a file whose digest is racy: only bytes
    /// sent in file order can be verified as they go (14.2: a server MAY
    /// ignore Range).
    Unverifiable,
}

impl IgnoredRange {
    /// True when the client sent something wrong or abusive (worth a log line).
    pub fn is_client_error(&self) -> bool {
        matches!(
            self,
            IgnoredRange::Invalid(_) | IgnoredRange::Unreadable | IgnoredRange::TooMany
        )
    }
}

/// What to send for a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResponsePlan {
    /// 200 with the whole file; `ignored` says why a Range header, if any, was not used.
    Full {
        /// Why the Range header was ignored, if one was sent.
        ignored: Option<IgnoredRange>,
    },
    /// 206 with one range.
    Partial(ByteRange),
    /// 206 multipart/byteranges, parts in this order.
    Multipart(Vec<ByteRange>),
    /// 416 with `Content-Range: bytes */LEN`.
    Unsatisfiable,
    /// 304: If-None-Match or If-Modified-Since says the client's copy is current.
    NotModified,
    /// 412: If-Match or If-Unmodified-Since failed.
    PreconditionFailed,
}

/// Decide the response for a file of `length` bytes with validators `v`
/// (RFC 9110 13.2.2, then 14.2).
pub fn decide(
    req: &RequestFacts<'_>,
    length: u64,
    v: &Validators<'_>,
    max_ranges: usize,
) -> ResponsePlan {
    let full = |why| ResponsePlan::Full { ignored: Some(why) };
    let method = match req.method {
        FileMethod::Get => CondMethod::Get,
        FileMethod::Head => CondMethod::Head,
    };
    let has_range = req.range != RangeHeader::Absent;
    match conditional::evaluate(method, has_range, &req.conditions, v) {
        Outcome::NotModified => return ResponsePlan::NotModified,
        Outcome::PreconditionFailed => return ResponsePlan::PreconditionFailed,
        Outcome::Proceed { use_range: false } => return full(IgnoredRange::IfRangeMismatch),
        Outcome::Proceed { use_range: true } => {}
    }
    let value = match req.range {
        RangeHeader::Absent => return ResponsePlan::Full { ignored: None },
        _ if req.method != FileMethod::Get => return full(IgnoredRange::NotGet),
        RangeHeader::Unreadable => return full(IgnoredRange::Unreadable),
        RangeHeader::Value(v) => v,
    };
    let specs = match range::parse(value) {
        Ok(specs) => specs,
        Err(e) => return full(IgnoredRange::Invalid(e)),
    };
    match range::resolve(&specs, length, max_ranges) {
        RangeDecision::Full(FullReason::TooManyRanges) => full(IgnoredRange::TooMany),
        RangeDecision::Full(FullReason::EmptyRepresentation) => {
            full(IgnoredRange::EmptyRepresentation)
        }
        RangeDecision::Unsatisfiable => ResponsePlan::Unsatisfiable,
        RangeDecision::Single(r) => ResponsePlan::Partial(r),
        RangeDecision::Multi(rs) => ResponsePlan::Multipart(rs),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use FileMethod::*;
    use RangeHeader::*;

    use crate::rfc::etag::EntityTag;
    use std::time::UNIX_EPOCH;

    #[test]
    fn decide_table() {
        let r = |start, end| ByteRange { start, end };
        let tag = EntityTag::strong("t");
        let v = Validators {
            etag: Some(&tag),
            last_modified: Some(UNIX_EPOCH),
            date: UNIX_EPOCH,
        };
        #[rustfmt::skip]
        let rows: &[(&str, FileMethod, RangeHeader, ResponsePlan)] = &[
            ("no Range: 200", Get, Absent, ResponsePlan::Full { ignored: None }),
            ("HEAD no Range: 200", Head, Absent, ResponsePlan::Full { ignored: None }),
            ("14.2 HEAD ignores Range", Head, Value("bytes=0-0"), ResponsePlan::Full { ignored: Some(IgnoredRange::NotGet) }),
            ("14.2 HEAD ignores even a bad Range", Head, Value("junk"), ResponsePlan::Full { ignored: Some(IgnoredRange::NotGet) }),
            ("14.2 unknown unit ignored", Get, Value("lines=0-1"), ResponsePlan::Full { ignored: Some(IgnoredRange::Invalid(RangeParseError::UnknownUnit)) }),
            ("14.2 invalid syntax ignored", Get, Value("bytes=5-1"), ResponsePlan::Full { ignored: Some(IgnoredRange::Invalid(RangeParseError::Backwards)) }),
            ("repeated Range header ignored", Get, Unreadable, ResponsePlan::Full { ignored: Some(IgnoredRange::Unreadable) }),
            ("15.3.7 single range", Get, Value("bytes=0-9"), ResponsePlan::Partial(r(0, 9))),
            ("14.6 multi range", Get, Value("bytes=0-0,-1"), ResponsePlan::Multipart(vec![r(0, 0), r(99, 99)])),
            ("15.5.17 unsatisfiable", Get, Value("bytes=100-"), ResponsePlan::Unsatisfiable),
        ];
        for (name, method, range, want) in rows {
            let req = RequestFacts {
                method: *method,
                range: *range,
                conditions: Conditions::default(),
            };
            assert_eq!(&decide(&req, 100, &v, 64), want, "{name}");
        }
    }

    #[test]
    fn preconditions_come_before_range() {
        let tag = EntityTag::strong("t");
        let v = Validators {
            etag: Some(&tag),
            last_modified: Some(UNIX_EPOCH),
            date: UNIX_EPOCH,
        };
        let with = |conditions| RequestFacts {
            method: Get,
            range: Value("bytes=0-0"),
            conditions,
        };
        let c = Conditions::default();
        #[rustfmt::skip]
        let rows = [
            ("13.2.2 If-Match mismatch + Range -> 412", 100, Conditions { if_match: Some("\"x\""), ..c }, ResponsePlan::PreconditionFailed),
            ("13.2.2 If-None-Match match + Range -> 304", 100, Conditions { if_none_match: Some("\"t\""), ..c }, ResponsePlan::NotModified),
            ("13.1.5 If-Range mismatch -> 200 full", 100, Conditions { if_range: Some("\"x\""), ..c }, ResponsePlan::Full { ignored: Some(IgnoredRange::IfRangeMismatch) }),
            ("13.1.5 If-Range match -> 206", 100, Conditions { if_range: Some("\"t\""), ..c }, ResponsePlan::Partial(ByteRange { start: 0, end: 0 })),
            // an If-Range mismatch beats an unsatisfiable range: the client gets the new file
            ("If-Range mismatch beats 416", 0, Conditions { if_range: Some("\"x\""), ..c }, ResponsePlan::Full { ignored: Some(IgnoredRange::IfRangeMismatch) }),
        ];
        for (name, len, c, want) in rows {
            assert_eq!(decide(&with(c), len, &v, 64), want, "{name}");
        }
    }
}
