//! The quirk transforms, one seam at a time. Each function takes a value of
//! the correct pipeline and returns it bent: the representation (validators
//! and bytes), the request facts, the plan, and the rendered response. The
//! correct values are computed first, always, by the shared code.

use std::io::Read as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::header::{
    HeaderName, HeaderValue, ACCEPT_RANGES, CONTENT_LENGTH, CONTENT_RANGE, ETAG, RETRY_AFTER,
};
use axum::http::{Response, StatusCode};
use axum::response::IntoResponse;
use sha2::{Digest as _, Sha256};

use super::counters::PathCounters;
pub use super::encoded::ENCODED_MAX;
use super::encoded::{GzCache, Plain};
use super::transport::{AfterLimit, Delivery, QuirkBody};
use super::{Quirk, QuirkSet};
use crate::body::Source;
use crate::error::status_text;
use crate::hashcache::{HashCache, HashError};
use crate::origin::state::ObjectStates;
use crate::origin::OriginError;
use crate::plan::{FileMethod, IgnoredRange, RangeHeader, RequestFacts, ResponsePlan};
use crate::render::Representation;
use crate::rfc::etag::EntityTag;
use crate::rfc::range::{self, ByteRange};

/// `Rangeserve-Quirks`: the request header that picks quirks, and the
/// response header that reports the ones applied.
pub static RANGESERVE_QUIRKS: HeaderName = HeaderName::from_static("rangeserve-quirks");

/// The XOR mask that derives replica-flip's second version.
pub const REPLICA_XOR: u8 = 0xff;

/// Per-server quirks state: options and the counters that make quirks
/// deterministic per server (never shared between servers).
#[derive(Debug)]
pub struct QuirkMode {
    /// Quirks applied to every response.
    pub global: QuirkSet,
    /// Seed of every pseudo-random value.
    pub seed: u64,
    /// How long stall-after keeps a connection open, and the longest a
    /// throttled body lasts.
    pub stall_limit: Duration,
    fail_counts: PathCounters,
    flips: PathCounters,
    encodings: Arc<GzCache>,
    responses: AtomicU64,
    boundaries: AtomicU64,
}

impl QuirkMode {
    /// A fresh state.
    pub fn new(global: QuirkSet, seed: u64, stall_limit: Duration) -> Self {
        QuirkMode {
            global,
            seed,
            stall_limit,
            fail_counts: PathCounters::default(),
            flips: PathCounters::default(),
            encodings: Arc::default(),
            responses: AtomicU64::new(0),
            boundaries: AtomicU64::new(0),
        }
    }

    /// Paths whose fail-first requests are counted (at most
    /// [`PATH_COUNTERS_MAX`](super::counters::PATH_COUNTERS_MAX)).
    pub fn fail_first_paths(&self) -> usize {
        self.fail_counts.len()
    }

    /// encoded-range's cache of encodings.
    pub fn encodings(&self) -> &GzCache {
        &self.encodings
    }

    /// A multipart boundary derived from the seed and a counter: fresh for
    /// every response, and the same sequence on every run with the same seed.
    pub fn next_boundary(&self) -> String {
        let n = self.boundaries.fetch_add(1, Ordering::Relaxed);
        let d = Sha256::new()
            .chain_update(b"boundary")
            .chain_update(self.seed.to_be_bytes())
            .chain_update(n.to_be_bytes())
            .finalize();
        hex::encode(&d[..16])
    }

    /// fail-first=N: the first N requests for `path` carrying it get 503.
    /// Counters are kept for at most
    /// [`PATH_COUNTERS_MAX`](super::counters::PATH_COUNTERS_MAX) paths (by
    /// hash), the least recently requested forgotten first.
    pub fn fail_first(&self, set: &QuirkSet, path: &str) -> Option<Response<Body>> {
        let n = set.find(|q| match q {
            Quirk::FailFirst(n) => Some(*n),
            _ => None,
        })?;
        let seen = self.fail_counts.bump(path);
        (seen <= n).then(|| {
            (
                StatusCode::SERVICE_UNAVAILABLE,
                [(RETRY_AFTER, "1")],
                format!(
                    "{}fail-first={n}: request {seen} of {n} refused\n",
                    status_text(StatusCode::SERVICE_UNAVAILABLE)
                ),
            )
                .into_response()
        })
    }

    /// Bend the representation: which version, which bytes, which validators.
    /// `hashes` and `objects` (over a store) hash derived versions.
    pub async fn representation(
        &self,
        set: &QuirkSet,
        path: &str,
        mut repr: Representation,
        hashes: &HashCache,
        objects: Option<&ObjectStates>,
    ) -> Result<Representation, QuirkFailure> {
        if set.has(Quirk::ReplicaFlip) && self.flips.bump(path) % 2 == 0 {
            repr = second_version(repr, hashes, objects).await?;
        }
        if set.has(Quirk::EncodedRange) {
            repr = gzipped(repr, &self.encodings).await?;
        }
        for q in set.iter() {
            match q {
                Quirk::NoEtag => repr.etag = None,
                Quirk::WeakEtag => {
                    if let Some(t) = &mut repr.etag {
                        t.weak = true;
                    }
                }
                Quirk::UnstableEtag => {
                    let n = self.responses.fetch_add(1, Ordering::Relaxed);
                    let d = Sha256::new()
                        .chain_update(self.seed.to_be_bytes())
                        .chain_update(n.to_be_bytes())
                        .chain_update(path.as_bytes())
                        .finalize();
                    repr.etag = Some(EntityTag::strong(format!("u-{}", hex::encode(&d[..16]))));
                }
                Quirk::StaleEtag => {
                    let d = Sha256::digest(path.as_bytes());
                    repr.etag = Some(EntityTag::strong(format!("p-{}", hex::encode(&d[..16]))));
                }
                Quirk::NoLastModified => repr.last_modified = None,
                _ => {}
            }
        }
        Ok(repr)
    }
}

/// Why a quirk could not be applied (answered 503 with the reason).
#[derive(Debug, thiserror::Error)]
pub enum QuirkFailure {
    /// Hashing the derived version failed.
    #[error(transparent)]
    Hash(#[from] HashError),
    /// Reading or compressing failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The file is too large for an in-memory derived version.
    #[error("encoded-range compresses in memory; files over {ENCODED_MAX} bytes are refused")]
    TooLarge,
    /// Reading or hashing an object's derived version failed.
    #[error(transparent)]
    Store(#[from] OriginError),
}

/// replica-flip's other version: every byte XOR 0xff, its own ETag, a day older.
async fn second_version(
    mut repr: Representation,
    hashes: &HashCache,
    objects: Option<&ObjectStates>,
) -> Result<Representation, QuirkFailure> {
    let digest = match (&mut repr.source, objects) {
        (Source::File(src), _) => {
            src.xor ^= REPLICA_XOR;
            let hashed = hashes.digest_xor(&src.path, &src.file, src.stamp, src.xor);
            hashed.await?.digest
        }
        (Source::Object(src), Some(objects)) => {
            src.xor ^= REPLICA_XOR;
            objects.derived_digest(src).await?
        }
        // bytes in memory already derived, or no object states to hash with
        _ => return Ok(repr),
    };
    repr.digest = Some(digest);
    repr.etag = Some(EntityTag::from_sha256(&digest));
    repr.last_modified = repr.last_modified.map(|t| t - Duration::from_secs(86400));
    Ok(repr)
}

/// encoded-range: the gzip of the representation, deterministic, in memory,
/// compressed once per version (see [`super::encoded`]).
async fn gzipped(
    mut repr: Representation,
    cache: &Arc<GzCache>,
) -> Result<Representation, QuirkFailure> {
    let src = match &repr.source {
        Source::File(src) => Plain::File(src.clone()),
        Source::Object(src) => Plain::Object(src.clone()),
        _ => return Ok(repr),
    };
    if repr.length > ENCODED_MAX {
        return Err(QuirkFailure::TooLarge);
    }
    let length = repr.length;
    let enc = match repr.digest {
        Some(digest) => cache.get(src, length, digest).await?,
        None => Arc::new(super::encoded::encode(src, length, None).await?),
    };
    repr.length = enc.gz.len() as u64;
    repr.source = Source::Memory(enc.gz.clone());
    repr.digest = Some(enc.sha256);
    repr.etag = repr.etag.map(|t| EntityTag {
        weak: t.weak,
        ..EntityTag::from_sha256(&enc.sha256)
    });
    repr.content_encoding = Some("gzip");
    Ok(repr)
}

/// Decode a gzip body (used by tests and docs to check encoded-range).
pub fn gunzip(bytes: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes).read_to_end(&mut out)?;
    Ok(out)
}

/// An If-Range value that never matches (a weak tag fails strong comparison).
const NEVER_MATCHES: &str = "W/\"never\"";

/// Bend the request: which of its headers the server pretends to understand.
/// `scratch` holds a rewritten If-Range.
pub fn request<'a>(
    set: &QuirkSet,
    mut facts: RequestFacts<'a>,
    repr: &Representation,
    scratch: &'a mut String,
) -> RequestFacts<'a> {
    let if_range_is_tag = facts
        .conditions
        .if_range
        .is_some_and(|v| v.trim_start().starts_with('"') || v.trim_start().starts_with("W/"));
    if set.has(Quirk::NoRanges) || set.has(Quirk::AcceptRangesNone) {
        facts.range = RangeHeader::Absent;
    }
    if set.has(Quirk::IgnoreIfRange) {
        facts.conditions.if_range = None;
    }
    if set.has(Quirk::WeakEtag) && facts.conditions.if_range.is_some() {
        // a weak validator never satisfies If-Range, in any form (date included)
        facts.conditions.if_range = Some(NEVER_MATCHES);
    }
    if set.has(Quirk::IfRangeEtag200) && if_range_is_tag {
        facts.range = RangeHeader::Absent;
    }
    if set.has(Quirk::MultiRange200) {
        if let RangeHeader::Value(v) = facts.range {
            if range::parse(v).is_ok_and(|specs| specs.len() > 1) {
                facts.range = RangeHeader::Absent;
            }
        }
    }
    if set.has(Quirk::WeakIfRange206) {
        let weak_of_current = facts.conditions.if_range.and_then(|v| {
            let tag = EntityTag::parse(v).ok()?;
            let current = repr.etag.as_ref()?;
            (tag.weak && tag.opaque == current.opaque).then(|| current.to_string())
        });
        if let Some(current) = weak_of_current {
            *scratch = current;
            facts.conditions.if_range = Some(scratch.as_str());
        }
    }
    facts
}

/// Bend the plan: which ranges are sent.
pub fn plan(set: &QuirkSet, mut plan: ResponsePlan) -> ResponsePlan {
    if set.has(Quirk::FirstRangeOnly) {
        if let ResponsePlan::Multipart(ranges) = &plan {
            plan = ResponsePlan::Partial(ranges[0]);
        }
    }
    if set.has(Quirk::IfRange416)
        && plan
            == (ResponsePlan::Full {
                ignored: Some(IgnoredRange::IfRangeMismatch),
            })
    {
        plan = ResponsePlan::Unsatisfiable;
    }
    if let ResponsePlan::Partial(r) = &mut plan {
        if set.has(Quirk::RangeFromZero) {
            *r = ByteRange {
                start: 0,
                end: r.len() - 1,
            };
        }
        if let Some(cap) = set.find(|q| match q {
            Quirk::RangeCapped(n) => Some(*n),
            _ => None,
        }) {
            // a cap past the end of the range (u64::MAX...) does not shorten it
            r.end = r.end.min(r.start.saturating_add(cap.max(1) - 1));
        }
    }
    plan
}

/// Bend the rendered response: headers, status and delivery of the body.
/// `length` is the representation's length.
pub fn response(
    mode: &QuirkMode,
    set: &QuirkSet,
    mut res: Response<Body>,
    method: FileMethod,
    plan: &ResponsePlan,
    length: u64,
) -> Response<Body> {
    let h = res.headers_mut();
    if set.has(Quirk::NoRanges) || set.has(Quirk::NoAcceptRanges) {
        h.remove(ACCEPT_RANGES);
    }
    if set.has(Quirk::AcceptRangesNone) {
        h.insert(ACCEPT_RANGES, HeaderValue::from_static("none"));
    }
    if set.has(Quirk::UnquotedEtag) {
        if let Some(v) = h.get(ETAG).and_then(|v| v.to_str().ok()) {
            let unquoted = v.replace('"', "");
            h.insert(
                ETAG,
                HeaderValue::from_str(&unquoted).expect("was a valid value"),
            );
        }
    }
    if let ResponsePlan::Partial(r) = plan {
        if set.has(Quirk::UnknownLength) {
            let v = format!("bytes {}-{}/*", r.start, r.end);
            h.insert(CONTENT_RANGE, HeaderValue::from_str(&v).expect("ascii"));
        }
        if set.has(Quirk::BadContentRange) {
            let v = format!("bytes {}-{}", r.start, r.end);
            h.insert(CONTENT_RANGE, HeaderValue::from_str(&v).expect("ascii"));
        }
        if set.has(Quirk::NoContentRange) {
            h.remove(CONTENT_RANGE);
        }
        if set.has(Quirk::Range200) {
            *res.status_mut() = StatusCode::OK;
        }
    }
    let h = res.headers_mut();
    if *plan == ResponsePlan::Unsatisfiable && set.has(Quirk::Bare416) {
        h.remove(CONTENT_RANGE);
    }
    if method == FileMethod::Head && set.has(Quirk::HeadLies) {
        h.remove(ACCEPT_RANGES);
        h.remove(CONTENT_LENGTH);
    }
    let delivery = delivery(
        mode,
        set,
        plan,
        length,
        res.headers().contains_key(CONTENT_LENGTH),
    );
    if delivery.hide_length {
        res.headers_mut().remove(CONTENT_LENGTH);
    }
    let removed_length = !res.headers().contains_key(CONTENT_LENGTH);
    if method == FileMethod::Get && !delivery.is_plain() {
        res = res.map(|body| Body::new(QuirkBody::new(body, delivery)));
    } else if method == FileMethod::Head && removed_length {
        // axum's router adds Content-Length: 0 to a HEAD response without
        // one (its body is empty); the server's outermost layer sees this
        // mark and takes it out again (hyper adds none to HEAD answers)
        res.extensions_mut().insert(HideHeadLength);
    }
    res
}

/// Marks a HEAD response that must go out without Content-Length; see
/// [`hide_head_length`].
#[derive(Debug, Clone, Copy)]
pub struct HideHeadLength;

/// Outermost response layer: a [`HideHeadLength`] response leaves without
/// Content-Length.
pub fn hide_head_length(mut res: Response<Body>) -> Response<Body> {
    if res.extensions().get::<HideHeadLength>().is_some() {
        res.headers_mut().remove(CONTENT_LENGTH);
    }
    res
}

/// How the transport quirks bend the body of a response planned as `plan`.
fn delivery(
    mode: &QuirkMode,
    set: &QuirkSet,
    plan: &ResponsePlan,
    length: u64,
    has_length: bool,
) -> Delivery {
    let mut d = Delivery {
        hide_length: set.has(Quirk::Chunked) && has_length,
        ..Delivery::default()
    };
    let mut limit = |n: u64, after: AfterLimit| {
        if d.limit.is_none_or(|(m, _)| n < m) {
            d.limit = Some((n, after));
        }
    };
    for q in set.iter() {
        match *q {
            Quirk::DropAfter(n) => limit(n, AfterLimit::Close),
            Quirk::StallAfter(n) => limit(n, AfterLimit::Stall(mode.stall_limit)),
            Quirk::DropAt(offset) => {
                // bytes of this body before file offset `offset`, if the body
                // starts before it and includes it (multipart bodies are not cut)
                let first = match plan {
                    ResponsePlan::Full { .. } if offset < length => Some(0),
                    ResponsePlan::Partial(r) if offset <= r.end => Some(r.start),
                    _ => None,
                };
                if let Some(first) = first.filter(|&f| f < offset) {
                    limit(offset - first, AfterLimit::Close);
                }
            }
            Quirk::Throttle(rate) => {
                d.rate = Some(rate);
                d.deadline = Some(mode.stall_limit);
            }
            _ => {}
        }
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quirks::Spec;
    use crate::rfc::conditional::Conditions;
    use bytes::Bytes;

    fn set(spec: &str) -> QuirkSet {
        QuirkSet::combine(&QuirkSet::default(), &[Spec::parse(spec).unwrap()])
    }

    fn repr() -> Representation {
        Representation {
            source: Source::Memory(Bytes::from_static(b"0123456789")),
            length: 10,
            content_type: "text/plain".into(),
            content_encoding: None,
            etag: Some(EntityTag {
                weak: true,
                opaque: "abc".into(),
            }),
            last_modified: None,
            digest: Some([0; 32]),
            rendered: None,
        }
    }

    fn facts(if_range: &str) -> RequestFacts<'_> {
        RequestFacts {
            method: FileMethod::Get,
            range: RangeHeader::Value("bytes=0-0,-1"),
            conditions: Conditions {
                if_range: Some(if_range),
                ..Conditions::default()
            },
        }
    }

    #[test]
    fn request_transforms() {
        let r = repr();
        let mut scratch = String::new();
        let date = "Sun, 06 Nov 1994 08:49:37 GMT";
        // weak-etag: If-Range never matches, whatever its form (a date too)
        let f = request(&set("weak-etag"), facts(date), &r, &mut scratch);
        assert_eq!(f.conditions.if_range, Some(NEVER_MATCHES));
        // weak-if-range-206: W/"abc" is taken as the current tag, W/"x" is not
        let mut strong = r.clone();
        strong.etag = Some(EntityTag::strong("abc"));
        let f = request(
            &set("weak-if-range-206"),
            facts("W/\"abc\""),
            &strong,
            &mut scratch,
        );
        assert_eq!(f.conditions.if_range, Some("\"abc\""));
        let mut scratch = String::new();
        let f = request(
            &set("weak-if-range-206"),
            facts("W/\"x\""),
            &strong,
            &mut scratch,
        );
        assert_eq!(f.conditions.if_range, Some("W/\"x\""));
        // multi-range-200 drops a multi-range header; if-range-etag-200 drops
        // Range when If-Range holds a tag, not a date
        let f = request(&set("multi-range-200"), facts(date), &r, &mut scratch);
        assert_eq!(f.range, RangeHeader::Absent);
        let f = request(&set("if-range-etag-200"), facts(date), &r, &mut scratch);
        assert_ne!(f.range, RangeHeader::Absent);
        let f = request(
            &set("if-range-etag-200"),
            facts("\"abc\""),
            &r,
            &mut scratch,
        );
        assert_eq!(f.range, RangeHeader::Absent);
    }

    #[test]
    fn plan_transforms() {
        let r = |start, end| ByteRange { start, end };
        let p = |spec: &str, plan| plan_fn(&set(spec), plan);
        fn plan_fn(s: &QuirkSet, p: ResponsePlan) -> ResponsePlan {
            plan(s, p)
        }
        let multi = ResponsePlan::Multipart(vec![r(50, 59), r(0, 9)]);
        assert_eq!(
            p("first-range-only", multi),
            ResponsePlan::Partial(r(50, 59))
        );
        assert_eq!(
            p("range-from-zero", ResponsePlan::Partial(r(500, 599))),
            ResponsePlan::Partial(r(0, 99))
        );
        assert_eq!(
            p("range-capped=10", ResponsePlan::Partial(r(500, 599))),
            ResponsePlan::Partial(r(500, 509))
        );
        assert_eq!(
            p("range-capped=1000", ResponsePlan::Partial(r(500, 599))),
            ResponsePlan::Partial(r(500, 599))
        );
        // caps at or near u64::MAX never overflow and never shorten the range
        for cap in [u64::MAX, u64::MAX - 1, u64::MAX - 2, u64::MAX - 9, 1 << 63] {
            for range in [r(2, 10), r(u64::MAX - 5, u64::MAX - 1), r(1, 1 << 62)] {
                assert_eq!(
                    p(&format!("range-capped={cap}"), ResponsePlan::Partial(range)),
                    ResponsePlan::Partial(range),
                    "{cap} {range:?}"
                );
            }
        }
        assert_eq!(
            p(
                "range-capped=3",
                ResponsePlan::Partial(r(u64::MAX - 5, u64::MAX - 1))
            ),
            ResponsePlan::Partial(r(u64::MAX - 5, u64::MAX - 3))
        );
        let mismatch = ResponsePlan::Full {
            ignored: Some(IgnoredRange::IfRangeMismatch),
        };
        assert_eq!(p("if-range-416", mismatch), ResponsePlan::Unsatisfiable);
        let plain = ResponsePlan::Full { ignored: None };
        assert_eq!(p("if-range-416", plain.clone()), plain);
    }
}
