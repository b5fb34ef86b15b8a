//! The `Range` request header (RFC 9110 section 14): parsing it into typed
//! range specs, resolving those against a representation length, and
//! formatting `Content-Range` (section 14.4), the one formatter used by
//! single-range responses, multipart part headers and 416 answers, and
//! parsing it back (for clients such as `rangeserve probe`).
//!
//! Everything here is pure: values in, values out. The two steps are kept
//! apart on purpose (parse, then resolve against the length): a syntax error
//! means "ignore the header and send 200", an unsatisfiable range means 416.

use std::fmt;

/// One `range-spec` of a `Range: bytes=...` header (RFC 9110 14.1.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeSpec {
    /// `first-` or `first-last`: an int-range. `last` is inclusive.
    /// Numbers too large for `u64` saturate to `u64::MAX`, which keeps their
    /// meaning: such a first-pos is beyond any file, such a last-pos means "to the end".
    FromTo {
        /// first-pos
        first: u64,
        /// last-pos, absent in the open-ended form `first-`
        last: Option<u64>,
    },
    /// `-n`: the last `n` bytes (a suffix-range).
    Suffix(u64),
}

/// Why a `Range` header was not understood. Every variant means the same thing
/// to the server (RFC 9110 14.2: ignore the header, send 200); the variant says why, for the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RangeParseError {
    /// The unit is not `bytes` (compared case-insensitively).
    #[error("unknown range unit")]
    UnknownUnit,
    /// No `=` after the unit.
    #[error("missing '=' after the range unit")]
    MissingEquals,
    /// The range-set holds no range-spec at all (`bytes=`, `bytes=,`).
    #[error("empty range set")]
    Empty,
    /// A range-spec that is not `a-b`, `a-` or `-n` with decimal digits.
    #[error("malformed range-spec")]
    Malformed,
    /// An int-range whose last-pos is before its first-pos (`5-4`).
    #[error("last-pos before first-pos")]
    Backwards,
}

/// Parse a `Range` header value (RFC 9110 14.1.1).
///
/// Accepts `bytes=` in any case, comma lists with optional whitespace around
/// elements, and empty list elements (RFC 9110 5.6.1.2). Whitespace around the
/// `=` is tolerated too (a lenient recipient; it changes no meaning).
///
/// ```
/// use rangeserve::rfc::range::{parse, RangeSpec};
/// assert_eq!(parse("bytes=0-0,-1"), Ok(vec![
///     RangeSpec::FromTo { first: 0, last: Some(0) },
///     RangeSpec::Suffix(1),
/// ]));
/// ```
pub fn parse(value: &str) -> Result<Vec<RangeSpec>, RangeParseError> {
    let set = byte_range_set(value)?;
    let mut specs = Vec::new();
    for element in elements(set) {
        specs.push(parse_spec(element)?);
    }
    if specs.is_empty() {
        return Err(RangeParseError::Empty);
    }
    Ok(specs)
}

/// The range-spec of a Range value that holds exactly one, if it parses:
/// a hint for what to read ahead with a lookup or an open ([`parse`]
/// decides what is served). `None` for several: a multipart body reads all
/// its parts at once and checks them with one `fstat` after
/// (`FileBody::gather_cached`), where a part read ahead would need a check
/// of its own. No allocation.
pub fn lone_spec(value: &str) -> Option<RangeSpec> {
    let mut elements = elements(byte_range_set(value).ok()?);
    let element = elements.next()?;
    if elements.next().is_some() {
        return None;
    }
    parse_spec(element).ok()
}

// The grammar is ASCII: it is parsed as bytes (no UTF-8 decoding, and a
// delimiter found by a plain loop: these values are a few dozen bytes).

/// What follows `bytes=` in a Range value.
fn byte_range_set(value: &str) -> Result<&[u8], RangeParseError> {
    let (unit, set) =
        split_at_byte(value.as_bytes(), b'=').ok_or(RangeParseError::MissingEquals)?;
    match trim_ows(unit).eq_ignore_ascii_case(b"bytes") {
        true => Ok(set),
        false => Err(RangeParseError::UnknownUnit),
    }
}

/// The list's elements, without their optional whitespace; empty elements
/// are legal and ignored (RFC 9110 5.6.1.2).
fn elements(set: &[u8]) -> impl Iterator<Item = &[u8]> {
    set.split(|&b| b == b',')
        .map(trim_ows)
        .filter(|e| !e.is_empty())
}

fn split_at_byte(s: &[u8], delimiter: u8) -> Option<(&[u8], &[u8])> {
    let at = s.iter().position(|&b| b == delimiter)?;
    Some((&s[..at], &s[at + 1..]))
}

/// Optional whitespace (RFC 9110 5.6.3): SP and HTAB.
const OWS: [char; 2] = [' ', '\t'];

fn trim_ows(s: &[u8]) -> &[u8] {
    let is_ows = |b: &u8| OWS.contains(&char::from(*b));
    let start = s.iter().position(|b| !is_ows(b)).unwrap_or(s.len());
    let end = s.iter().rposition(|b| !is_ows(b)).map_or(start, |i| i + 1);
    &s[start..end]
}

fn parse_spec(s: &[u8]) -> Result<RangeSpec, RangeParseError> {
    let (first, last) = split_at_byte(s, b'-').ok_or(RangeParseError::Malformed)?;
    if first.is_empty() {
        return Ok(RangeSpec::Suffix(parse_digits(last)?));
    }
    let first = parse_digits(first)?;
    let last = if last.is_empty() {
        None
    } else {
        Some(parse_digits(last)?)
    };
    if matches!(last, Some(l) if l < first) {
        return Err(RangeParseError::Backwards);
    }
    Ok(RangeSpec::FromTo { first, last })
}

/// `1*DIGIT`, saturating at `u64::MAX` (the grammar puts no bound on digits).
fn parse_digits(s: &[u8]) -> Result<u64, RangeParseError> {
    if s.is_empty() {
        return Err(RangeParseError::Malformed);
    }
    // one pass; 19 digits always fit a u64, so only longer ones saturate
    let mut n = 0u64;
    for (i, &b) in s.iter().enumerate() {
        let digit = b.wrapping_sub(b'0');
        if digit > 9 {
            return Err(RangeParseError::Malformed);
        }
        n = match i < 19 {
            true => n * 10 + u64::from(digit),
            false => n.saturating_mul(10).saturating_add(u64::from(digit)),
        };
    }
    Ok(n)
}

/// A satisfiable byte range, resolved against a length: `start..=end`, never empty.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ByteRange {
    /// First byte offset.
    pub start: u64,
    /// Last byte offset, inclusive (`start <= end < length`).
    pub end: u64,
}

impl ByteRange {
    /// Number of bytes in the range (at least 1).
    pub fn len(&self) -> u64 {
        self.end - self.start + 1
    }

    /// Always false: a `ByteRange` holds at least one byte. Present for clippy's sake.
    pub fn is_empty(&self) -> bool {
        false
    }
}

/// What to do with a request's ranges, once they are resolved against the length.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RangeDecision {
    /// Send the whole representation with 200 (the header is ignored; see [`FullReason`]).
    Full(FullReason),
    /// 416: no range is satisfiable (RFC 9110 15.5.17).
    Unsatisfiable,
    /// 206 with one `Content-Range` (15.3.7.1).
    Single(ByteRange),
    /// 206 `multipart/byteranges`, parts in this order (14.6). Always two or more.
    Multi(Vec<ByteRange>),
}

/// Why a range request is answered with the full representation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FullReason {
    /// A suffix-range on an empty representation: satisfiable, yet a 206 cannot
    /// describe zero bytes, so the (empty) whole is sent.
    EmptyRepresentation,
    /// More ranges than the limit, after coalescing (a DoS guard, 14.2).
    TooManyRanges,
}

/// Resolve parsed specs against `length` (RFC 9110 14.1.1, 14.2).
///
/// Unsatisfiable specs are dropped; overlapping and adjacent ranges are
/// coalesced, so a response body can never exceed the representation (plus
/// multipart framing) however the request repeats itself; the survivors keep
/// the order in which the client first asked for them. More than `max_ranges`
/// ranges after that means the header is ignored.
pub fn resolve(specs: &[RangeSpec], length: u64, max_ranges: usize) -> RangeDecision {
    match specs {
        // the common case, without the lists: nothing to coalesce or order
        [spec] if max_ranges >= 1 => resolve_one(*spec, length),
        _ => resolve_many(specs, length, max_ranges),
    }
}

/// [`resolve`] of a single spec (what `resolve_many` gives for it).
fn resolve_one(spec: RangeSpec, length: u64) -> RangeDecision {
    match spec {
        RangeSpec::FromTo { first, last } if first < length => RangeDecision::Single(ByteRange {
            start: first,
            end: last.map_or(length - 1, |l| l.min(length - 1)),
        }),
        RangeSpec::Suffix(n) if n > 0 && length == 0 => {
            RangeDecision::Full(FullReason::EmptyRepresentation)
        }
        RangeSpec::Suffix(n) if n > 0 => RangeDecision::Single(ByteRange {
            start: length - n.min(length),
            end: length - 1,
        }),
        _ => RangeDecision::Unsatisfiable,
    }
}

fn resolve_many(specs: &[RangeSpec], length: u64, max_ranges: usize) -> RangeDecision {
    let mut satisfiable_but_empty = false;
    // (range, index of the first request that asked for it)
    let mut ranges: Vec<(ByteRange, usize)> = Vec::new();
    for (i, spec) in specs.iter().enumerate() {
        match *spec {
            RangeSpec::FromTo { first, last } => {
                if first < length {
                    let end = last.map_or(length - 1, |l| l.min(length - 1));
                    ranges.push((ByteRange { start: first, end }, i));
                }
            }
            RangeSpec::Suffix(0) => {}
            RangeSpec::Suffix(n) => {
                if length == 0 {
                    satisfiable_but_empty = true;
                } else {
                    let start = length - n.min(length);
                    ranges.push((
                        ByteRange {
                            start,
                            end: length - 1,
                        },
                        i,
                    ));
                }
            }
        }
    }
    if ranges.is_empty() {
        return if satisfiable_but_empty {
            RangeDecision::Full(FullReason::EmptyRepresentation)
        } else {
            RangeDecision::Unsatisfiable
        };
    }
    let mut merged = coalesce(ranges);
    if merged.len() > max_ranges {
        return RangeDecision::Full(FullReason::TooManyRanges);
    }
    if merged.len() == 1 {
        return RangeDecision::Single(merged.remove(0));
    }
    RangeDecision::Multi(merged)
}

/// Merge overlapping and adjacent ranges; order the result by first request.
fn coalesce(mut ranges: Vec<(ByteRange, usize)>) -> Vec<ByteRange> {
    ranges.sort_unstable();
    let mut merged: Vec<(ByteRange, usize)> = Vec::with_capacity(ranges.len());
    for (r, order) in ranges {
        match merged.last_mut() {
            // adjacent (end + 1 == start) or overlapping; end < u64::MAX as end < length
            Some((m, first_asked)) if r.start <= m.end + 1 => {
                m.end = m.end.max(r.end);
                *first_asked = (*first_asked).min(order);
            }
            _ => merged.push((r, order)),
        }
    }
    merged.sort_unstable_by_key(|&(_, order)| order);
    merged.into_iter().map(|(r, _)| r).collect()
}

/// A `Content-Range` value (RFC 9110 14.4), formatted by its `Display`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentRange {
    /// `bytes FIRST-LAST/LENGTH`
    Bytes {
        /// The range sent.
        range: ByteRange,
        /// The complete length.
        length: u64,
    },
    /// `bytes */LENGTH`, for 416.
    Unsatisfied {
        /// The complete length.
        length: u64,
    },
    /// `bytes FIRST-LAST/*`: a range of a representation whose complete
    /// length the sender does not know (14.4 allows it; this server never
    /// sends it outside quirks mode).
    BytesOfUnknownLength {
        /// The range sent.
        range: ByteRange,
    },
}

/// Why a `Content-Range` value was not understood.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ContentRangeError {
    /// The unit is not `bytes`.
    #[error("unknown range unit")]
    UnknownUnit,
    /// Not `bytes F-L/LEN`, `bytes F-L/*` or `bytes */LEN`.
    #[error("malformed Content-Range")]
    Malformed,
    /// last-pos before first-pos (14.4: invalid).
    #[error("last-pos before first-pos")]
    Backwards,
    /// last-pos at or past the complete length (14.4: invalid).
    #[error("range beyond the complete length")]
    BeyondLength,
}

impl ContentRange {
    /// Parse a `Content-Range` value (RFC 9110 14.4):
    /// `range-unit SP (incl-range "/" (complete-length / "*") / "*/" complete-length)`.
    ///
    /// ```
    /// use rangeserve::rfc::range::{ByteRange, ContentRange};
    /// assert_eq!(
    ///     ContentRange::parse("bytes 42-1233/1234"),
    ///     Ok(ContentRange::Bytes { range: ByteRange { start: 42, end: 1233 }, length: 1234 })
    /// );
    /// assert!(ContentRange::parse("bytes 42-1233").is_err());
    /// ```
    pub fn parse(value: &str) -> Result<ContentRange, ContentRangeError> {
        use ContentRangeError::*;
        let value = value.trim_matches(OWS);
        let (unit, rest) = value.split_once(' ').ok_or(Malformed)?;
        if !unit.eq_ignore_ascii_case("bytes") {
            return Err(UnknownUnit);
        }
        let (range, length) = rest.split_once('/').ok_or(Malformed)?;
        // exact numbers only: a saturated value would place bytes wrongly
        let digits = |s: &str| {
            s.bytes()
                .all(|b| b.is_ascii_digit())
                .then(|| s.parse::<u64>().ok())
                .flatten()
                .ok_or(Malformed)
        };
        if range == "*" {
            return Ok(ContentRange::Unsatisfied {
                length: digits(length)?,
            });
        }
        let (first, last) = range.split_once('-').ok_or(Malformed)?;
        let (start, end) = (digits(first)?, digits(last)?);
        if end < start {
            return Err(Backwards);
        }
        let range = ByteRange { start, end };
        if length == "*" {
            // a range ending at u64::MAX would hold 2^64 bytes
            if end == u64::MAX {
                return Err(BeyondLength);
            }
            return Ok(ContentRange::BytesOfUnknownLength { range });
        }
        let length = digits(length)?;
        if end >= length {
            return Err(BeyondLength);
        }
        Ok(ContentRange::Bytes { range, length })
    }
}

impl ContentRange {
    /// The field value, built directly (it goes on every 206 and each part
    /// of a multipart body: cheaper than the formatting machinery).
    pub fn value(&self) -> String {
        let mut s = Vec::with_capacity(64);
        self.write_value(|piece| s.extend_from_slice(piece));
        String::from_utf8(s).expect("ASCII")
    }

    /// Give the field value (ASCII) to `push`, piece by piece, straight
    /// into a response's bytes: no allocation, and no UTF-8 check per piece.
    pub fn write_value(&self, mut push: impl FnMut(&[u8])) {
        push(b"bytes ");
        match self {
            ContentRange::Bytes { range, length } => {
                push(Decimal::of(range.start).as_bytes());
                push(b"-");
                push(Decimal::of(range.end).as_bytes());
                push(b"/");
                push(Decimal::of(*length).as_bytes());
            }
            ContentRange::Unsatisfied { length } => {
                push(b"*/");
                push(Decimal::of(*length).as_bytes());
            }
            ContentRange::BytesOfUnknownLength { range } => {
                push(Decimal::of(range.start).as_bytes());
                push(b"-");
                push(Decimal::of(range.end).as_bytes());
                push(b"/*");
            }
        }
    }
}

/// A `u64` in decimal, on the stack: for headers written per response.
pub struct Decimal {
    digits: [u8; 20],
    at: usize,
}

impl Decimal {
    /// The digits of `n`.
    pub fn of(mut n: u64) -> Decimal {
        // two digits per division: offsets in big files have ten or more
        const PAIRS: &[u8; 200] = b"0001020304050607080910111213141516171819\
            2021222324252627282930313233343536373839\
            4041424344454647484950515253545556575859\
            6061626364656667686970717273747576777879\
            8081828384858687888990919293949596979899";
        let mut d = Decimal {
            digits: [0; 20],
            at: 20,
        };
        while n >= 100 {
            let pair = (n % 100) as usize * 2;
            n /= 100;
            d.at -= 2;
            d.digits[d.at..d.at + 2].copy_from_slice(&PAIRS[pair..pair + 2]);
        }
        if n >= 10 {
            let pair = n as usize * 2;
            d.at -= 2;
            d.digits[d.at..d.at + 2].copy_from_slice(&PAIRS[pair..pair + 2]);
        } else {
            d.at -= 1;
            d.digits[d.at] = b'0' + n as u8;
        }
        d
    }

    /// The digits.
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(self.as_bytes()).expect("ASCII digits")
    }

    /// The digits, as bytes (no UTF-8 check: for a head's bytes).
    pub fn as_bytes(&self) -> &[u8] {
        &self.digits[self.at..]
    }
}

impl fmt::Display for ContentRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.value())
    }
}

#[cfg(test)]
mod tests {
    use super::RangeSpec::{FromTo, Suffix};
    use super::*;

    #[test]
    fn decimals_are_written_as_to_string_writes_them() {
        let mut values = vec![
            0,
            1,
            9,
            10,
            11,
            99,
            100,
            101,
            999,
            1000,
            1_073_741_823,
            u64::MAX,
        ];
        values.extend((1..20).flat_map(|k| {
            let p = 10u64.pow(k);
            [p - 1, p, p + 1]
        }));
        for n in values {
            assert_eq!(Decimal::of(n).as_str(), n.to_string());
            assert_eq!(Decimal::of(n).as_bytes(), n.to_string().as_bytes());
        }
    }

    #[test]
    fn one_spec_resolves_as_a_list_of_one_for_every_small_case() {
        // every spec over 0..6 against every length 0..6 (RFC 9110 14.1.1:
        // satisfiable or not, suffixes longer than the representation, the
        // empty one); the proptest covers large numbers
        let mut specs = vec![];
        for first in 0..6 {
            specs.push(Suffix(first));
            specs.push(FromTo { first, last: None });
            specs.extend((first..6).map(|last| ft(first, last)));
        }
        for spec in specs {
            for len in 0..6 {
                for max in 1..3 {
                    assert_eq!(
                        resolve(&[spec], len, max),
                        resolve_many(&[spec], len, max),
                        "{spec:?} of {len}"
                    );
                }
            }
        }
    }

    fn ft(first: u64, last: u64) -> RangeSpec {
        FromTo {
            first,
            last: Some(last),
        }
    }
    fn from(first: u64) -> RangeSpec {
        FromTo { first, last: None }
    }

    type ParseResult = Result<Vec<RangeSpec>, RangeParseError>;

    #[test]
    fn lone_spec_is_the_one_element_that_parse_gives() {
        #[rustfmt::skip]
        let rows: &[(&str, Option<RangeSpec>)] = &[
            ("bytes=0-499", Some(ft(0, 499))),
            ("bytes=500-", Some(from(500))),
            ("bytes=-500", Some(Suffix(500))),
            ("bytes= , 5-9, ", Some(ft(5, 9))),
            ("BYTES=1-2", Some(ft(1, 2))),
            ("bytes= , 5-9,0-0", None),
            ("bytes=0-0,-1", None),
            ("bytes=9-5", None),
            ("bytes=", None),
            ("items=0-1", None),
            ("0-1", None),
            ("bytes=x-1", None),
        ];
        for (value, want) in rows {
            assert_eq!(lone_spec(value), *want, "{value}");
            if let Ok(specs) = parse(value) {
                let lone = (specs.len() == 1).then(|| specs[0]);
                assert_eq!(lone, *want, "{value}: parse agrees");
            }
        }
    }

    #[test]
    fn parse_table() {
        use RangeParseError::*;
        #[rustfmt::skip]
        let rows: &[(&str, &str, ParseResult)] = &[
            // RFC 9110 14.1.2 examples
            ("14.1.2 first 500 bytes", "bytes=0-499", Ok(vec![ft(0, 499)])),
            ("14.1.2 second 500 bytes", "bytes=500-999", Ok(vec![ft(500, 999)])),
            ("14.1.2 final 500 (suffix)", "bytes=-500", Ok(vec![Suffix(500)])),
            ("14.1.2 final 500 (open)", "bytes=9500-", Ok(vec![from(9500)])),
            ("14.1.2 first and last only", "bytes=0-0,-1", Ok(vec![ft(0, 0), Suffix(1)])),
            ("14.1.2 non-canonical second 500 a", "bytes=500-600,601-999", Ok(vec![ft(500, 600), ft(601, 999)])),
            ("14.1.2 non-canonical second 500 b", "bytes=500-700,601-999", Ok(vec![ft(500, 700), ft(601, 999)])),
            // the seed's five forms
            ("seed 0-499", "bytes=0-499", Ok(vec![ft(0, 499)])),
            ("seed 500-999", "bytes=500-999", Ok(vec![ft(500, 999)])),
            ("seed -500", "bytes=-500", Ok(vec![Suffix(500)])),
            ("seed 500-", "bytes=500-", Ok(vec![from(500)])),
            ("seed 0-0,-1", "bytes=0-0,-1", Ok(vec![ft(0, 0), Suffix(1)])),
            ("seed as written, spaces around =", "bytes = 0-499", Ok(vec![ft(0, 499)])),
            // 14.1: unit is case-insensitive
            ("unit upper case", "BYTES=1-2", Ok(vec![ft(1, 2)])),
            ("unit mixed case", "Bytes=1-2", Ok(vec![ft(1, 2)])),
            // 5.6.1.2: OWS around commas, empty elements
            ("OWS around commas", "bytes=0-1 , 3-4,\t-5", Ok(vec![ft(0, 1), ft(3, 4), Suffix(5)])),
            ("trailing comma", "bytes=0-1,", Ok(vec![ft(0, 1)])),
            ("leading and double commas", "bytes=,0-1,,4-5", Ok(vec![ft(0, 1), ft(4, 5)])),
            ("zero-length suffix is syntax-valid", "bytes=-0", Ok(vec![Suffix(0)])),
            ("single byte", "bytes=7-7", Ok(vec![ft(7, 7)])),
            // overflow saturates instead of failing
            ("overflow first-pos", "bytes=99999999999999999999999-", Ok(vec![from(u64::MAX)])),
            ("overflow last-pos", "bytes=0-99999999999999999999999", Ok(vec![ft(0, u64::MAX)])),
            ("overflow suffix", "bytes=-99999999999999999999999", Ok(vec![Suffix(u64::MAX)])),
            ("u64::MAX exactly", "bytes=18446744073709551615-", Ok(vec![from(u64::MAX)])),
            ("u64::MAX + 1 saturates", "bytes=18446744073709551616-", Ok(vec![from(u64::MAX)])),
            ("19 nines fit", "bytes=9999999999999999999-", Ok(vec![from(9_999_999_999_999_999_999)])),
            ("leading zeros", "bytes=000000000000000000000000042-", Ok(vec![from(42)])),
            ("leading zeros", "bytes=007-010", Ok(vec![ft(7, 10)])),
            // invalid: 14.2 says ignore (200)
            ("other unit", "items=0-1", Err(UnknownUnit)),
            ("unit prefix only", "byte=0-1", Err(UnknownUnit)),
            ("no equals", "bytes 0-1", Err(MissingEquals)),
            ("empty header", "", Err(MissingEquals)),
            ("empty set", "bytes=", Err(Empty)),
            ("only commas", "bytes=, ,", Err(Empty)),
            ("lone dash", "bytes=-", Err(Malformed)),
            ("no dash", "bytes=5", Err(Malformed)),
            ("two dashes", "bytes=1-2-3", Err(Malformed)),
            ("plus sign", "bytes=+1-2", Err(Malformed)),
            ("negative last", "bytes=1--2", Err(Malformed)),
            ("hex digits", "bytes=0x1-2", Err(Malformed)),
            ("inner space", "bytes=1 -2", Err(Malformed)),
            ("non-ASCII digit", "bytes=١-2", Err(Malformed)),
            ("backwards int-range", "bytes=5-4", Err(Backwards)),
            ("one bad element spoils the set", "bytes=0-1,x", Err(Malformed)),
            ("one backwards element spoils the set", "bytes=0-1,9-3", Err(Backwards)),
        ];
        for (name, input, want) in rows {
            assert_eq!(&parse(input), want, "{name}: {input:?}");
        }
    }

    fn r(start: u64, end: u64) -> ByteRange {
        ByteRange { start, end }
    }

    #[test]
    fn resolve_table() {
        use RangeDecision::*;
        #[rustfmt::skip]
        let rows: &[(&str, &str, u64, RangeDecision)] = &[
            // 14.1.1: clamping and satisfiability, 10000-byte representation
            ("14.1.2 first 500", "bytes=0-499", 10000, Single(r(0, 499))),
            ("14.1.2 suffix 500", "bytes=-500", 10000, Single(r(9500, 9999))),
            ("14.1.2 open 9500-", "bytes=9500-", 10000, Single(r(9500, 9999))),
            ("14.1.2 first and last", "bytes=0-0,-1", 10000, Multi(vec![r(0, 0), r(9999, 9999)])),
            ("14.1.2 non-canonical adjacent merge", "bytes=500-600,601-999", 10000, Single(r(500, 999))),
            ("14.1.2 non-canonical overlap merge", "bytes=500-700,601-999", 10000, Single(r(500, 999))),
            ("14.1.1 last-pos clamped to length-1", "bytes=9000-20000", 10000, Single(r(9000, 9999))),
            ("14.1.1 suffix longer than the file = whole", "bytes=-20000", 10000, Single(r(0, 9999))),
            ("14.1.1 first-pos = length unsatisfiable", "bytes=10000-", 10000, Unsatisfiable),
            ("14.1.1 suffix 0 unsatisfiable", "bytes=-0", 10000, Unsatisfiable),
            ("overflowed first-pos unsatisfiable", "bytes=99999999999999999999999-", 10000, Unsatisfiable),
            ("overflowed last-pos clamps", "bytes=5-99999999999999999999999", 10000, Single(r(5, 9999))),
            ("unsatisfiable dropped, rest kept", "bytes=20000-30000,0-4", 10000, Single(r(0, 4))),
            ("all unsatisfiable", "bytes=20000-30000,-0", 10000, Unsatisfiable),
            ("whole file as a range stays 206", "bytes=0-", 10000, Single(r(0, 9999))),
            // 14.6: request order kept
            ("request order kept", "bytes=-1,0-0", 10000, Multi(vec![r(9999, 9999), r(0, 0)])),
            ("three parts in order", "bytes=50-59,0-9,20-29", 100, Multi(vec![r(50, 59), r(0, 9), r(20, 29)])),
            ("merged part sits where first asked", "bytes=50-59,0-9,5-20", 100, Multi(vec![r(50, 59), r(0, 20)])),
            // 14.2 abuse: the 2011 overlapping-range attack collapses to one range
            ("overlap attack", "bytes=0-,0-,0-,0-,0-", 10000, Single(r(0, 9999))),
            ("overlapping suffixes", "bytes=-10,-20,-30", 100, Single(r(70, 99))),
            ("contained range", "bytes=0-99,10-20", 100, Single(r(0, 99))),
            // empty representation
            ("empty file int-range", "bytes=0-0", 0, Unsatisfiable),
            ("empty file open range", "bytes=0-", 0, Unsatisfiable),
            ("empty file suffix = 200 with empty body", "bytes=-5", 0, Full(FullReason::EmptyRepresentation)),
            ("one-byte file", "bytes=0-0,-1", 1, Single(r(0, 0))),
        ];
        for (name, header, len, want) in rows {
            let specs = parse(header).unwrap();
            assert_eq!(
                &resolve(&specs, *len, 64),
                want,
                "{name}: {header:?} len {len}"
            );
        }
    }

    #[test]
    fn too_many_ranges_after_coalescing_is_ignored() {
        let many: String = (0..65).map(|i| format!("{}-{},", i * 10, i * 10)).collect();
        let specs = parse(&format!("bytes={many}")).unwrap();
        assert_eq!(
            resolve(&specs, 10_000, 64),
            RangeDecision::Full(FullReason::TooManyRanges)
        );
        assert!(matches!(resolve(&specs, 10_000, 65), RangeDecision::Multi(v) if v.len() == 65));
        // 1000 overlapping specs coalesce to one: not "too many"
        let overlapping = vec![
            RangeSpec::FromTo {
                first: 0,
                last: None
            };
            1000
        ];
        assert_eq!(
            resolve(&overlapping, 10, 64),
            RangeDecision::Single(r(0, 9))
        );
    }

    #[test]
    fn content_range_parse_table() {
        use ContentRangeError::*;
        let b = |start, end, length| ContentRange::Bytes {
            range: r(start, end),
            length,
        };
        #[rustfmt::skip]
        let rows: &[(&str, Result<ContentRange, ContentRangeError>)] = &[
            // RFC 9110 14.4 examples
            ("bytes 42-1233/1234", Ok(b(42, 1233, 1234))),
            ("bytes 42-1233/*", Ok(ContentRange::BytesOfUnknownLength { range: r(42, 1233) })),
            ("bytes */1234", Ok(ContentRange::Unsatisfied { length: 1234 })),
            ("BYTES 0-0/1", Ok(b(0, 0, 1))),
            (" bytes 0-0/1 ", Ok(b(0, 0, 1))),
            ("bytes 0-9/0", Err(BeyondLength)),
            ("bytes 0-10/10", Err(BeyondLength)),
            ("bytes 5-4/10", Err(Backwards)),
            // the shapes bad-content-range and friends send
            ("bytes 0-9", Err(Malformed)),
            ("bytes=0-9/10", Err(Malformed)),
            ("items 0-9/10", Err(UnknownUnit)),
            ("bytes 0-/10", Err(Malformed)),
            ("bytes -9/10", Err(Malformed)),
            ("bytes */*", Err(Malformed)),
            ("bytes  0-9/10", Err(Malformed)),
            ("bytes 0x1-9/10", Err(Malformed)),
            ("", Err(Malformed)),
            ("bytes +1-2/9", Err(Malformed)),
            ("bytes 0-99999999999999999999/*", Err(Malformed)),
            ("bytes 0-18446744073709551615/*", Err(BeyondLength)),
            ("bytes 18446744073709551613-18446744073709551614/18446744073709551615",
             Ok(b(u64::MAX - 2, u64::MAX - 1, u64::MAX))),
        ];
        for (input, want) in rows {
            assert_eq!(&ContentRange::parse(input), want, "{input:?}");
            if let Ok(cr) = want {
                assert_eq!(ContentRange::parse(&cr.to_string()), Ok(*cr));
            }
        }
    }

    #[test]
    fn content_range_format() {
        // RFC 9110 14.4 examples
        let cr = ContentRange::Bytes {
            range: r(42, 1233),
            length: 1234,
        };
        assert_eq!(cr.to_string(), "bytes 42-1233/1234");
        assert_eq!(
            ContentRange::Unsatisfied { length: 1234 }.to_string(),
            "bytes */1234"
        );
        let unknown = ContentRange::BytesOfUnknownLength { range: r(0, 9) };
        assert_eq!(unknown.value(), "bytes 0-9/*");
        // every value formats back to what parses to it, up to u64::MAX
        for (start, end, length) in [(0, 0, 1), (9, 10, 11), (0, u64::MAX - 1, u64::MAX)] {
            let cr = ContentRange::Bytes {
                range: r(start, end),
                length,
            };
            assert_eq!(cr.value(), format!("bytes {start}-{end}/{length}"));
            assert_eq!(ContentRange::parse(&cr.value()), Ok(cr));
        }
    }
}

#[cfg(test)]
mod props {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Any header value: parsing and resolving never panic, and what
        /// resolves is within the representation and never larger than it.
        #[test]
        fn never_panics_and_stays_in_bounds(value in "\\PC{0,40}", len in 0u64..1000) {
            if let Ok(specs) = parse(&value) {
                match resolve(&specs, len, 64) {
                    RangeDecision::Single(r) => prop_assert!(r.start <= r.end && r.end < len),
                    RangeDecision::Multi(rs) => {
                        prop_assert!(rs.iter().all(|r| r.start <= r.end && r.end < len));
                        prop_assert!(rs.iter().map(ByteRange::len).sum::<u64>() <= len);
                    }
                    _ => {}
                }
            }
        }

        /// One spec resolves as the general algorithm (drop, coalesce,
        /// order) resolves it, whatever the length (RFC 9110 14.1.1).
        #[test]
        fn one_spec_resolves_as_a_list_of_one(
            first in prop_oneof![3 => 0u64..4, 1 => any::<u64>()],
            span in prop_oneof![3 => 0u64..4, 1 => any::<u64>()],
            open in any::<bool>(),
            suffix in any::<bool>(),
            len in prop_oneof![3 => 0u64..4, 1 => any::<u64>()],
            max in 1usize..4,
        ) {
            let spec = match (suffix, open) {
                (true, _) => RangeSpec::Suffix(first),
                (false, true) => RangeSpec::FromTo { first, last: None },
                (false, false) => RangeSpec::FromTo { first, last: Some(first.saturating_add(span)) },
            };
            prop_assert_eq!(resolve(&[spec], len, max), resolve_many(&[spec], len, max));
        }

        /// Well-formed headers built from numbers always parse, to those numbers.
        #[test]
        fn well_formed_headers_parse(a in 0u64..u64::MAX / 2, n in 0u64..1 << 40, ws in "[ \t]{0,2}") {
            let header = format!("bytes={a}-{},{ws}-{n}{ws},{a}-", a + n);
            let want = vec![
                RangeSpec::FromTo { first: a, last: Some(a + n) },
                RangeSpec::Suffix(n),
                RangeSpec::FromTo { first: a, last: None },
            ];
            prop_assert_eq!(parse(&header), Ok(want));
        }

        /// Any Content-Range value: parsing never panics, what parses is a
        /// non-empty range within its length, and it prints back to itself.
        #[test]
        fn content_range_never_panics_and_round_trips(value in "(bytes )?[0-9*/ -]{0,30}|\\PC{0,30}") {
            if let Ok(cr) = ContentRange::parse(&value) {
                match cr {
                    ContentRange::Bytes { range, length } => prop_assert!(range.start <= range.end && range.end < length),
                    ContentRange::BytesOfUnknownLength { range } => prop_assert!(range.start <= range.end && range.end < u64::MAX),
                    ContentRange::Unsatisfied { .. } => {}
                }
                prop_assert_eq!(ContentRange::parse(&cr.to_string()), Ok(cr));
            }
        }
    }
}
