//! What the probe can tell about each quirk of the catalogue
//! ([`crate::quirks::catalogue::CATALOGUE`], same names, same order): which
//! check detects it and how severe it is for resuming, or why no probe from
//! outside can detect it. README's list of undetectable quirks is this table.

use super::analyze::CheckId;
use crate::quirks::Quirk;

/// How a detected quirk counts in the verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// Resuming still works when the client is careful; the check says WARN.
    Warn,
    /// Resuming with Range + If-Range can fail or corrupt; the check says FAIL.
    Fail,
}

/// Whether and where the probe sees a quirk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reach {
    /// Reported by this check; the text says the limits of detection, if any.
    Check(CheckId, Option<&'static str>),
    /// Invisible from outside, for this reason.
    Undetectable(&'static str),
}

/// One catalogue quirk as the probe sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Coverage {
    /// The catalogue name.
    pub name: &'static str,
    /// Its weight in the verdict.
    pub severity: Severity,
    /// Where it is detected.
    pub reach: Reach,
}

macro_rules! c {
    ($name:literal, $sev:ident, $check:ident) => {
        Coverage {
            name: $name,
            severity: Severity::$sev,
            reach: Reach::Check(CheckId::$check, None),
        }
    };
    ($name:literal, $sev:ident, $check:ident, $limit:literal) => {
        Coverage {
            name: $name,
            severity: Severity::$sev,
            reach: Reach::Check(CheckId::$check, Some($limit)),
        }
    };
}

/// Every catalogue quirk, in catalogue order (a test checks both).
#[rustfmt::skip]
pub const COVERAGE: &[Coverage] = &[
    c!("no-etag", Warn, Etag),
    c!("weak-etag", Fail, Etag),
    c!("unstable-etag", Fail, EtagStable),
    Coverage {
        name: "stale-etag",
        severity: Severity::Fail,
        reach: Reach::Undetectable("the tag is stable and strong and If-Range works; it only goes wrong once the content changes, which a probe cannot cause (verify a digest after stitching)"),
    },
    c!("no-last-modified", Warn, LastModified),
    c!("unquoted-etag", Fail, Etag),
    c!("no-ranges", Fail, SingleRange),
    c!("accept-ranges-none", Fail, AcceptRanges),
    c!("no-accept-ranges", Warn, AcceptRanges),
    c!("range-200", Fail, SingleRange),
    c!("first-range-only", Warn, MultiRange),
    c!("multi-range-200", Warn, MultiRange),
    c!("ignore-if-range", Fail, IfRangeStale),
    c!("bare-416", Warn, Unsatisfiable),
    c!("if-range-416", Fail, IfRangeStale),
    c!("weak-if-range-206", Warn, IfRangeWeak),
    c!("head-lies", Warn, Head),
    c!("encoded-range", Fail, Encoding),
    c!("unknown-length", Warn, SingleRange),
    c!("if-range-etag-200", Fail, IfRangeTag),
    c!("range-from-zero", Fail, SingleRange),
    c!("range-capped", Warn, SingleRange, "caps below the 4 KiB window only"),
    c!("no-content-range", Fail, SingleRange),
    c!("bad-content-range", Fail, SingleRange),
    c!("replica-flip", Fail, EtagStable, "seen as two validators alternating between the probe's requests"),
    c!("chunked", Warn, Framing),
    c!("drop-after", Fail, Framing, "N below the 4 KiB window only"),
    c!("drop-at", Fail, Framing, "OFFSET inside the first 4 KiB only"),
    c!("throttle", Warn, Speed, "only rates at which the 4 KiB window takes over half a second (below about 8k); faster rates send the window in one write"),
    c!("stall-after", Fail, Framing, "N below the 4 KiB window; costs one --timeout per stalled request"),
    c!("fail-first", Warn, Availability, "N up to 5 (the probe's retries)"),
];

/// The coverage of `q` (every quirk has one: `every_quirk_is_covered` checks
/// all variants).
pub fn of(q: &Quirk) -> &'static Coverage {
    COVERAGE
        .iter()
        .find(|c| c.name == q.name())
        .expect("every quirk is in COVERAGE")
}

/// The quirks no probe can detect, with the reason.
pub fn undetectable() -> impl Iterator<Item = (&'static str, &'static str)> {
    COVERAGE.iter().filter_map(|c| match c.reach {
        Reach::Undetectable(why) => Some((c.name, why)),
        Reach::Check(..) => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quirks::catalogue::{self, CATALOGUE};

    /// Every [`Quirk`] variant; the match makes a new variant a compile
    /// error here until it is listed.
    fn every_variant() -> Vec<Quirk> {
        use Quirk::*;
        let all = vec![
            NoEtag,
            WeakEtag,
            UnstableEtag,
            StaleEtag,
            NoLastModified,
            UnquotedEtag,
            NoRanges,
            AcceptRangesNone,
            NoAcceptRanges,
            Range200,
            FirstRangeOnly,
            MultiRange200,
            IgnoreIfRange,
            Bare416,
            IfRange416,
            WeakIfRange206,
            HeadLies,
            EncodedRange,
            UnknownLength,
            IfRangeEtag200,
            RangeFromZero,
            RangeCapped(1),
            NoContentRange,
            BadContentRange,
            ReplicaFlip,
            Chunked,
            DropAfter(1),
            DropAt(1),
            Throttle(1),
            StallAfter(1),
            FailFirst(1),
        ];
        for q in &all {
            match q {
                NoEtag | WeakEtag | UnstableEtag | StaleEtag | NoLastModified | UnquotedEtag
                | NoRanges | AcceptRangesNone | NoAcceptRanges | Range200 | FirstRangeOnly
                | MultiRange200 | IgnoreIfRange | Bare416 | IfRange416 | WeakIfRange206
                | HeadLies | EncodedRange | UnknownLength | IfRangeEtag200 | RangeFromZero
                | RangeCapped(_) | NoContentRange | BadContentRange | ReplicaFlip | Chunked
                | DropAfter(_) | DropAt(_) | Throttle(_) | StallAfter(_) | FailFirst(_) => {}
            }
        }
        all
    }

    /// The probe reports only [`Quirk`] values, so this covers every name it
    /// can print: each is a catalogue name with a coverage entry, and what it
    /// prints (`name=value`) is a spec `--quirk` accepts.
    #[test]
    fn every_quirk_is_covered() {
        let all = every_variant();
        assert_eq!(all.len(), CATALOGUE.len());
        for q in all {
            assert!(catalogue::info(q.name()).is_some(), "{}", q.name());
            assert_eq!(of(&q).name, q.name());
            assert_eq!(Quirk::parse(&q.to_string()), Ok(q));
        }
    }

    /// One source: the probe's table is the catalogue, name for name, and
    /// every name parses as a quirk.
    #[test]
    fn coverage_is_the_catalogue() {
        let names: Vec<_> = COVERAGE.iter().map(|c| c.name).collect();
        let catalogue: Vec<_> = CATALOGUE.iter().map(|q| q.name).collect();
        assert_eq!(names, catalogue);
        for q in CATALOGUE {
            let spec = match q.example {
                Some(v) => format!("{}={v}", q.name),
                None => q.name.to_string(),
            };
            let quirk = Quirk::parse(&spec).unwrap();
            assert_eq!(of(&quirk).name, q.name);
        }
    }
}
