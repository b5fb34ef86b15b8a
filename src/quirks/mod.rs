//! Quirks mode: misbehaving on purpose, one named way at a time, so download
//! clients can be tested against the servers they meet in the wild.
//!
//! Quirks never fork the serving path. The correct pipeline (validators ->
//! [`crate::plan::decide`] -> `render`) runs as always; each quirk
//! is a small transform at one of its seams (see [`transform`]): the
//! representation's validators and bytes, the request facts, the plan, the
//! rendered headers, or the body stream ([`transport`]).
//!
//! [`catalogue::CATALOGUE`] documents every quirk; this module parses specs
//! (`name` or `name=value`, comma-separated) into a [`QuirkSet`].

pub mod catalogue;
// how quirks are applied: internals (`pub` for the tests' bounds)
#[doc(hidden)]
pub mod counters;
#[doc(hidden)]
pub mod encoded;
#[doc(hidden)]
pub mod page;
#[doc(hidden)]
pub mod transform;
#[doc(hidden)]
pub mod transport;

use std::fmt;

/// One quirk, with its argument. Full behaviour, the case it emulates and
/// what a client should do: [`catalogue::CATALOGUE`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quirk {
    /// `no-etag`: no ETag header.
    NoEtag,
    /// `weak-etag`: the ETag is sent weak.
    WeakEtag,
    /// `unstable-etag`: a new ETag on every response.
    UnstableEtag,
    /// `stale-etag`: an ETag derived from the path only.
    StaleEtag,
    /// `no-last-modified`: no Last-Modified header.
    NoLastModified,
    /// `unquoted-etag`: the ETag without its quotes.
    UnquotedEtag,
    /// `no-ranges`: Range ignored, no Accept-Ranges.
    NoRanges,
    /// `accept-ranges-none`: `Accept-Ranges: none`, Range ignored.
    AcceptRangesNone,
    /// `no-accept-ranges`: no Accept-Ranges, ranges served.
    NoAcceptRanges,
    /// `range-200`: a single-range answer with status 200.
    Range200,
    /// `first-range-only`: multi-range answered with its first range.
    FirstRangeOnly,
    /// `multi-range-200`: multi-range answered with the full 200.
    MultiRange200,
    /// `ignore-if-range`: If-Range is not evaluated.
    IgnoreIfRange,
    /// `bare-416`: 416 without Content-Range.
    Bare416,
    /// `if-range-416`: a failed If-Range gets 416.
    IfRange416,
    /// `weak-if-range-206`: a weak If-Range tag can match.
    WeakIfRange206,
    /// `head-lies`: HEAD lacks Accept-Ranges and Content-Length.
    HeadLies,
    /// `encoded-range`: gzip on the fly, ranges of the gzip bytes.
    EncodedRange,
    /// `unknown-length`: Content-Range length `*`.
    UnknownLength,
    /// `if-range-etag-200`: an entity-tag If-Range always gets 200.
    IfRangeEtag200,
    /// `range-from-zero`: a 206 that starts at byte 0.
    RangeFromZero,
    /// `range-capped=N`: a 206 carries at most N bytes.
    RangeCapped(u64),
    /// `no-content-range`: a 206 without Content-Range.
    NoContentRange,
    /// `bad-content-range`: a 206 with a malformed Content-Range.
    BadContentRange,
    /// `replica-flip`: responses alternate between two versions.
    ReplicaFlip,
    /// `chunked`: chunked transfer coding, no Content-Length.
    Chunked,
    /// `drop-after=N`: close after N body bytes.
    DropAfter(u64),
    /// `drop-at=OFFSET`: close at file offset OFFSET.
    DropAt(u64),
    /// `throttle=RATE`: at most RATE bytes/s.
    Throttle(u64),
    /// `stall-after=N`: N bytes, then silence.
    StallAfter(u64),
    /// `fail-first=N`: the first N requests per path get 503.
    FailFirst(u64),
}

/// A quirk spec that could not be parsed. The message lists the valid names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuirkError {
    /// No such quirk.
    #[error("unknown quirk {0:?}; valid quirks: {names}", names = catalogue::names())]
    Unknown(String),
    /// The quirk needs an argument, takes none, or the value is invalid.
    #[error("bad value for quirk {name:?}: {why}; valid quirks: {names}", names = catalogue::names())]
    BadValue {
        /// The quirk.
        name: String,
        /// What is wrong.
        why: String,
    },
}

/// The one table of names: `Variant => "name"`, with `(n)` for quirks that
/// take a number. It generates both directions, so they cannot disagree.
macro_rules! names {
    ($($variant:ident $(($n:ident))? => $name:literal),* $(,)?) => {
        impl Quirk {
            /// The catalogue name.
            pub fn name(&self) -> &'static str {
                match self {
                    $(Quirk::$variant { .. } => $name,)*
                }
            }

            /// The quirk called `name`, with argument `n` where it takes one.
            fn from_name(name: &str, n: u64) -> Option<Quirk> {
                match name {
                    $($name => Some(Quirk::$variant $(({ let $n = n; $n }))?),)*
                    _ => None,
                }
            }
        }
    };
}

names! {
    NoEtag => "no-etag",
    WeakEtag => "weak-etag",
    UnstableEtag => "unstable-etag",
    StaleEtag => "stale-etag",
    NoLastModified => "no-last-modified",
    UnquotedEtag => "unquoted-etag",
    NoRanges => "no-ranges",
    AcceptRangesNone => "accept-ranges-none",
    NoAcceptRanges => "no-accept-ranges",
    Range200 => "range-200",
    FirstRangeOnly => "first-range-only",
    MultiRange200 => "multi-range-200",
    IgnoreIfRange => "ignore-if-range",
    Bare416 => "bare-416",
    IfRange416 => "if-range-416",
    WeakIfRange206 => "weak-if-range-206",
    HeadLies => "head-lies",
    EncodedRange => "encoded-range",
    UnknownLength => "unknown-length",
    IfRangeEtag200 => "if-range-etag-200",
    RangeFromZero => "range-from-zero",
    RangeCapped(n) => "range-capped",
    NoContentRange => "no-content-range",
    BadContentRange => "bad-content-range",
    ReplicaFlip => "replica-flip",
    Chunked => "chunked",
    DropAfter(n) => "drop-after",
    DropAt(n) => "drop-at",
    Throttle(n) => "throttle",
    StallAfter(n) => "stall-after",
    FailFirst(n) => "fail-first",
}

impl Quirk {
    /// Parse `name` or `name=value`.
    pub fn parse(item: &str) -> Result<Quirk, QuirkError> {
        let (name, value) = match item.split_once('=') {
            Some((n, v)) => (n.trim(), Some(v.trim())),
            None => (item.trim(), None),
        };
        let info = catalogue::info(name).ok_or_else(|| QuirkError::Unknown(clip(name)))?;
        let bad = |why: String| QuirkError::BadValue {
            name: name.to_string(),
            why,
        };
        let n = match (info.arg, value) {
            (Some(placeholder), None) => {
                return Err(bad(format!("needs a value: {name}={placeholder}")))
            }
            (None, Some(_)) => return Err(bad("takes no value".into())),
            (Some(_), Some(v)) if name == "throttle" => parse_rate(v).map_err(bad)?,
            (Some(_), Some(v)) => parse_count(v).map_err(bad)?,
            (None, None) => 0,
        };
        if n == 0 && matches!(name, "range-capped" | "throttle") {
            return Err(bad("must be at least 1".into()));
        }
        // every catalogue name is in the table (a test checks it)
        Quirk::from_name(name, n).ok_or_else(|| QuirkError::Unknown(clip(name)))
    }
}

impl fmt::Display for Quirk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Quirk::RangeCapped(n)
            | Quirk::DropAfter(n)
            | Quirk::DropAt(n)
            | Quirk::Throttle(n)
            | Quirk::StallAfter(n)
            | Quirk::FailFirst(n) => write!(f, "{}={n}", self.name()),
            q => f.write_str(q.name()),
        }
    }
}

/// Most bytes of a client's text echoed in an error (escaped as `{:?}`
/// escapes it): the 400 for a bad spec and its log line stay short however
/// long the spec.
pub const ECHO_MAX: usize = 100;

/// `s`, cut so that its `{:?}` form holds at most [`ECHO_MAX`] bytes between
/// the quotes, with `…` appended when something was cut.
pub fn clip(s: &str) -> String {
    let mut used = 0;
    for (i, c) in s.char_indices() {
        used += c.escape_debug().map(char::len_utf8).sum::<usize>();
        if used > ECHO_MAX {
            return format!("{}…", &s[..i]);
        }
    }
    s.to_string()
}

fn parse_count(v: &str) -> Result<u64, String> {
    v.parse::<u64>()
        .map_err(|_| format!("{:?} is not a whole number", clip(v)))
}

/// `RATE`: bytes per second, with `k` (1024) or `M` (1024²) suffixes.
fn parse_rate(v: &str) -> Result<u64, String> {
    let (digits, mult) = match v.as_bytes().last() {
        Some(b'k' | b'K') => (&v[..v.len() - 1], 1024),
        Some(b'M' | b'm') => (&v[..v.len() - 1], 1024 * 1024),
        _ => (v, 1),
    };
    digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(mult))
        .ok_or_else(|| format!("{:?} is not a rate like 65536, 256k or 2M", clip(v)))
}

/// The quirks applied to one response: at most one of each name (a later
/// spec overrides an earlier one of the same name), in the order given.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QuirkSet(Vec<Quirk>);

/// A parsed spec: its quirks, and whether it said `none`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Spec {
    /// The quirks named.
    pub quirks: Vec<Quirk>,
    /// `none` was given: clear the global quirks for this request.
    pub none: bool,
}

impl Spec {
    /// Parse `SPEC`: quirks separated by commas; empty and `none` are valid.
    pub fn parse(spec: &str) -> Result<Spec, QuirkError> {
        let mut out = Spec::default();
        for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            if item == "none" {
                out.none = true;
            } else {
                out.quirks.push(Quirk::parse(item)?);
            }
        }
        Ok(out)
    }
}

impl QuirkSet {
    /// Global quirks, then each per-request spec in turn (`none` clears what came before).
    pub fn combine(global: &QuirkSet, specs: &[Spec]) -> QuirkSet {
        let mut set = if specs.iter().any(|s| s.none) {
            QuirkSet::default()
        } else {
            global.clone()
        };
        for q in specs.iter().flat_map(|s| &s.quirks) {
            set.add(*q);
        }
        set
    }

    /// Add `q`, replacing a quirk of the same name.
    pub fn add(&mut self, q: Quirk) {
        self.0.retain(|have| have.name() != q.name());
        self.0.push(q);
    }

    /// True when no quirk applies.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `q` (argument-less) is in the set.
    pub fn has(&self, q: Quirk) -> bool {
        self.0.contains(&q)
    }

    /// The first quirk for which `f` returns a value.
    pub fn find<T>(&self, f: impl Fn(&Quirk) -> Option<T>) -> Option<T> {
        self.0.iter().find_map(f)
    }

    /// The quirks, in order.
    pub fn iter(&self) -> impl Iterator<Item = &Quirk> {
        self.0.iter()
    }
}

impl fmt::Display for QuirkSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, q) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{q}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_catalogue_entry_parses_and_round_trips() {
        for info in catalogue::CATALOGUE {
            let spec = match info.example {
                Some(v) => format!("{}={v}", info.name),
                None => info.name.to_string(),
            };
            let q = Quirk::parse(&spec).unwrap_or_else(|e| panic!("{spec}: {e}"));
            assert_eq!(q.name(), info.name);
            assert_eq!(Quirk::parse(&q.to_string()), Ok(q));
        }
    }

    #[test]
    fn specs() {
        assert_eq!(Spec::parse(""), Ok(Spec::default()));
        assert_eq!(
            Spec::parse("none"),
            Ok(Spec {
                quirks: vec![],
                none: true
            })
        );
        let s = Spec::parse("no-etag, drop-after=1000,throttle=256k").unwrap();
        assert_eq!(
            s.quirks,
            vec![
                Quirk::NoEtag,
                Quirk::DropAfter(1000),
                Quirk::Throttle(256 * 1024)
            ]
        );
        assert_eq!(Quirk::parse("throttle=2M"), Ok(Quirk::Throttle(2 << 20)));
        for bad in [
            "nope",
            "no-etag=1",
            "drop-after",
            "drop-after=x",
            "throttle=0",
            "range-capped=0",
            "throttle=5G",
        ] {
            let e = Spec::parse(bad).unwrap_err().to_string();
            assert!(e.contains("valid quirks: no-etag, weak-etag"), "{bad}: {e}");
        }
    }

    #[test]
    fn errors_echo_at_most_a_clipped_spec() {
        assert_eq!(clip("short"), "short");
        let exact = "x".repeat(ECHO_MAX);
        assert_eq!(clip(&exact), exact);
        assert_eq!(clip(&"x".repeat(ECHO_MAX + 1)), format!("{exact}…"));
        // the bound is on the escaped form, as error messages show it
        let clipped = clip(&"\u{1}é\"".repeat(10_000));
        assert!(format!("{clipped:?}").len() <= ECHO_MAX + 2 + '…'.len_utf8());
        let long = "y".repeat(60_000);
        for spec in [
            long.clone(),
            format!("no-etag,{long}=1"),
            format!("drop-after={long}"),
            format!("drop-after={}", "9".repeat(60_000)),
            format!("throttle={long}k"),
            format!("range-capped= {long} "),
        ] {
            let e = Spec::parse(&spec).unwrap_err().to_string();
            assert!(e.len() < 900, "{} bytes: {e}", e.len());
            assert!(e.contains("yyyy…\"") || e.contains("9999…\""), "{e}");
            assert!(e.contains("valid quirks: no-etag,"), "{e}");
        }
    }

    #[test]
    fn combining_global_and_request_quirks() {
        let global = QuirkSet::combine(
            &QuirkSet::default(),
            &[Spec::parse("no-etag,drop-after=5").unwrap()],
        );
        let req = Spec::parse("drop-after=9,chunked").unwrap();
        assert_eq!(
            QuirkSet::combine(&global, &[req]).to_string(),
            "no-etag,drop-after=9,chunked"
        );
        let cleared = Spec::parse("none,chunked").unwrap();
        assert_eq!(
            QuirkSet::combine(&global, &[cleared]).to_string(),
            "chunked"
        );
        assert_eq!(
            QuirkSet::combine(&global, &[Spec::parse("").unwrap()]),
            global
        );
    }
}
