//! The checks: [`Observations`] in, [`Findings`] out, no I/O. Each check
//! judges some of the probe's exchanges and says PASS, WARN, FAIL or SKIP
//! with a short reason, naming the catalogued [`Quirk`] the behaviour is,
//! when it is one. Severity comes from [`super::coverage`].
//!
//! A behaviour is named once, by the check that owns it; other checks that
//! see its consequences say SKIP (e.g. when Range is ignored, the open,
//! suffix and If-Range checks are not judged again). A deviation no quirk
//! names fails when it touches resuming (ranges, 416, If-Range, framing,
//! bytes, validators) and warns otherwise (HEAD, multipart, If-None-Match).

use std::collections::HashSet;
use std::fmt;

use super::coverage::{self, Severity};
use super::http::{BodyEnd, Framing, Response};
use super::observe::{Exchange, Observations, Step};
use crate::quirks::Quirk;
use crate::rfc::etag::EntityTag;
use crate::rfc::multipart;
use crate::rfc::range::{self, ByteRange, ContentRange, RangeDecision, RangeSpec};

/// The checks, in the order they are reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CheckId {
    /// Answers without 503s.
    Availability,
    /// HEAD agrees with GET.
    Head,
    /// Accept-Ranges says what the server does.
    AcceptRanges,
    /// Single ranges (`0-4095` and 16 bytes mid-window): 206, exact Content-Range.
    SingleRange,
    /// An open range `N-`.
    OpenRange,
    /// A suffix range `-16`.
    SuffixRange,
    /// Two ranges: multipart/byteranges, parts verified.
    MultiRange,
    /// An unsatisfiable range: 416 with `bytes */LEN`.
    Unsatisfiable,
    /// The ETag: present, strong, well-formed.
    Etag,
    /// Last-Modified present.
    LastModified,
    /// The same validators on every response.
    EtagStable,
    /// If-Range with the current ETag: 206.
    IfRangeTag,
    /// If-Range with the Last-Modified date: 206.
    IfRangeDate,
    /// If-Range with a tag never sent: 200.
    IfRangeStale,
    /// If-Range with the weak form of the current tag: 200.
    IfRangeWeak,
    /// If-None-Match with the current ETag: 304.
    IfNoneMatch,
    /// Bodies end where their framing says (Content-Length).
    Framing,
    /// Overlapping bytes agree across responses.
    Overlap,
    /// No content coding the probe did not ask for.
    Encoding,
    /// Bytes come at a normal pace.
    Speed,
}

impl CheckId {
    /// Every check, in report order.
    pub const ALL: [CheckId; 20] = [
        CheckId::Availability,
        CheckId::Head,
        CheckId::AcceptRanges,
        CheckId::SingleRange,
        CheckId::OpenRange,
        CheckId::SuffixRange,
        CheckId::MultiRange,
        CheckId::Unsatisfiable,
        CheckId::Etag,
        CheckId::LastModified,
        CheckId::EtagStable,
        CheckId::IfRangeTag,
        CheckId::IfRangeDate,
        CheckId::IfRangeStale,
        CheckId::IfRangeWeak,
        CheckId::IfNoneMatch,
        CheckId::Framing,
        CheckId::Overlap,
        CheckId::Encoding,
        CheckId::Speed,
    ];

    /// The stable name (text output and JSON `id`).
    pub fn name(self) -> &'static str {
        match self {
            CheckId::Availability => "availability",
            CheckId::Head => "head",
            CheckId::AcceptRanges => "accept-ranges",
            CheckId::SingleRange => "single-range",
            CheckId::OpenRange => "open-range",
            CheckId::SuffixRange => "suffix-range",
            CheckId::MultiRange => "multi-range",
            CheckId::Unsatisfiable => "unsatisfiable",
            CheckId::Etag => "etag",
            CheckId::LastModified => "last-modified",
            CheckId::EtagStable => "etag-stable",
            CheckId::IfRangeTag => "if-range-tag",
            CheckId::IfRangeDate => "if-range-date",
            CheckId::IfRangeStale => "if-range-stale",
            CheckId::IfRangeWeak => "if-range-weak",
            CheckId::IfNoneMatch => "if-none-match",
            CheckId::Framing => "framing",
            CheckId::Overlap => "overlap",
            CheckId::Encoding => "encoding",
            CheckId::Speed => "speed",
        }
    }
}

/// A check's result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// As RFC 9110 says.
    Pass,
    /// Deviates, but resuming still works for a careful client.
    Warn,
    /// Resuming can fail or corrupt data.
    Fail,
    /// Not applicable (or already judged by another check).
    Skip,
}

impl Status {
    /// `PASS`, `WARN`, `FAIL`, `SKIP`.
    pub fn name(self) -> &'static str {
        match self {
            Status::Pass => "PASS",
            Status::Warn => "WARN",
            Status::Fail => "FAIL",
            Status::Skip => "SKIP",
        }
    }
}

/// One check's finding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// Which check.
    pub id: CheckId,
    /// Its result.
    pub status: Status,
    /// A short reason.
    pub detail: String,
    /// The catalogued quirk this behaviour is, if it is one.
    pub quirk: Option<Quirk>,
}

/// All checks and the quirks they named.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Findings {
    /// One per [`CheckId::ALL`], in that order.
    pub checks: Vec<Check>,
    /// The quirks named, once each, in catalogue order.
    pub quirks: Vec<Quirk>,
}

impl Findings {
    /// Resuming is safe when no check fails.
    pub fn safe(&self) -> bool {
        self.checks.iter().all(|c| c.status != Status::Fail)
    }
}

/// A judgement inside a check.
enum Judged {
    Pass(String),
    Skip(String),
    Warn(String),
    Fail(String),
    Quirk(Quirk, String),
}

impl Judged {
    fn into_check(self, id: CheckId) -> Check {
        let (status, detail, quirk) = match self {
            Judged::Pass(d) => (Status::Pass, d, None),
            Judged::Skip(d) => (Status::Skip, d, None),
            Judged::Warn(d) => (Status::Warn, d, None),
            Judged::Fail(d) => (Status::Fail, d, None),
            Judged::Quirk(q, d) => {
                let status = match coverage::of(&q).severity {
                    Severity::Warn => Status::Warn,
                    Severity::Fail => Status::Fail,
                };
                (status, d, Some(q))
            }
        };
        Check {
            id,
            status,
            detail,
            quirk,
        }
    }
}

/// The ETag as first seen on the plain GET.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Tag {
    Absent,
    Strong(EntityTag),
    Weak(EntityTag),
    Unquoted(String),
    Malformed(String),
}

fn classify_tag(raw: Option<&str>) -> Tag {
    let Some(raw) = raw else { return Tag::Absent };
    match EntityTag::parse(raw) {
        Ok(t) if t.weak => Tag::Weak(t),
        Ok(t) => Tag::Strong(t),
        Err(_) if EntityTag::parse(&format!("\"{raw}\"")).is_ok() => Tag::Unquoted(raw.into()),
        Err(_) => Tag::Malformed(raw.into()),
    }
}

/// What a response served.
enum Served<'a> {
    /// 206, or 200 with a Content-Range.
    Partial { status_200: bool, cr: Cr<'a> },
    /// 200 without Content-Range.
    Full,
    /// 416.
    Unsatisfiable(Cr<'a>),
    /// Anything else.
    Other(u16),
}

enum Cr<'a> {
    Missing,
    Bad(&'a str),
    Ok(ContentRange),
}

fn content_range(r: &Response) -> Cr<'_> {
    match r.header("content-range") {
        None => Cr::Missing,
        Some(v) => ContentRange::parse(v).map_or(Cr::Bad(v), Cr::Ok),
    }
}

fn served(r: &Response) -> Served<'_> {
    match r.status {
        206 => Served::Partial {
            status_200: false,
            cr: content_range(r),
        },
        200 if r.header("content-range").is_some() => Served::Partial {
            status_200: true,
            cr: content_range(r),
        },
        200 => Served::Full,
        416 => Served::Unsatisfiable(content_range(r)),
        s => Served::Other(s),
    }
}

/// Facts shared by the checks.
struct Ctx<'a> {
    obs: &'a Observations,
    length: Option<u64>,
    /// The window got a whole 200: Range is ignored.
    ranges_ignored: bool,
    /// The name for that: `accept-ranges-none` or `no-ranges`.
    ignored_as: Quirk,
    tag: Tag,
    /// ETag or Last-Modified differ between responses.
    versions_vary: bool,
}

/// Judge everything the probe saw.
pub fn analyze(obs: &Observations) -> Findings {
    let get = obs.response(Step::Get);
    let ranges_ignored = obs
        .response(Step::Window)
        .is_some_and(|r| matches!(served(r), Served::Full));
    let ignored_as = match get.and_then(|r| r.header("accept-ranges")) {
        Some(v) if v.eq_ignore_ascii_case("none") => Quirk::AcceptRangesNone,
        _ => Quirk::NoRanges,
    };
    let (stable, versions_vary) = etag_stable(obs);
    let ctx = Ctx {
        obs,
        length: obs.length,
        ranges_ignored,
        ignored_as,
        tag: classify_tag(get.and_then(|r| r.header("etag"))),
        versions_vary,
    };
    let checks: Vec<Check> = CheckId::ALL
        .iter()
        .map(|&id| {
            let judged = match id {
                CheckId::Availability => availability(&ctx),
                CheckId::Head => head(&ctx),
                CheckId::AcceptRanges => accept_ranges(&ctx),
                CheckId::SingleRange => single_range(&ctx),
                CheckId::OpenRange => one_range(&ctx, Step::Open),
                CheckId::SuffixRange => one_range(&ctx, Step::Suffix),
                CheckId::MultiRange => multi_range(&ctx),
                CheckId::Unsatisfiable => unsatisfiable(&ctx),
                CheckId::Etag => etag(&ctx),
                CheckId::LastModified => last_modified(&ctx),
                CheckId::EtagStable => stable_to_judged(&stable),
                CheckId::IfRangeTag => if_range_tag(&ctx),
                CheckId::IfRangeDate => if_range_date(&ctx),
                CheckId::IfRangeStale => if_range_stale(&ctx),
                CheckId::IfRangeWeak => if_range_weak(&ctx),
                CheckId::IfNoneMatch => if_none_match(&ctx),
                CheckId::Framing => framing(&ctx),
                CheckId::Overlap => overlap(&ctx),
                CheckId::Encoding => encoding(&ctx),
                CheckId::Speed => speed(&ctx),
            };
            judged.into_check(id)
        })
        .collect();
    let mut quirks: Vec<Quirk> = Vec::new();
    for q in checks.iter().filter_map(|c| c.quirk) {
        if !quirks.iter().any(|have| have.name() == q.name()) {
            quirks.push(q);
        }
    }
    let order = |q: &Quirk| {
        coverage::COVERAGE
            .iter()
            .position(|c| c.name == q.name())
            .unwrap_or(usize::MAX)
    };
    quirks.sort_by_key(order);
    Findings { checks, quirks }
}

fn range_of(ex: &Exchange) -> &str {
    ex.range.as_deref().unwrap_or("no Range")
}

/// The range a correct server sends for `ex`'s Range header (the crate's
/// own resolver), or just its first-pos when the length is unknown.
fn expected(ex: &Exchange, length: Option<u64>) -> Option<ByteRange> {
    let specs = range::parse(ex.range.as_deref()?).ok()?;
    match length {
        Some(len) => match range::resolve(&specs, len, 64) {
            RangeDecision::Single(r) => Some(r),
            _ => None,
        },
        None => match specs.first()? {
            RangeSpec::FromTo { first, last } => Some(ByteRange {
                start: *first,
                end: last.unwrap_or(u64::MAX),
            }),
            RangeSpec::Suffix(_) => None,
        },
    }
}

fn show(r: &ByteRange) -> String {
    format!("{}-{}", r.start, r.end)
}

fn failed(ex: &Exchange) -> Option<Judged> {
    match &ex.outcome {
        Err(e) => Some(Judged::Fail(format!("{}: no answer ({e})", range_of(ex)))),
        Ok(_) => None,
    }
}

/// One satisfiable single range, judged.
fn judge_single(ctx: &Ctx, ex: &Exchange) -> Judged {
    if let Some(f) = failed(ex) {
        return f;
    }
    let r = ex.response().expect("answered");
    let asked = range_of(ex);
    let (status_200, cr) = match served(r) {
        Served::Full if ctx.ranges_ignored => {
            return Judged::Quirk(
                ctx.ignored_as,
                format!("{asked}: 200 with the whole body (Range ignored)"),
            )
        }
        Served::Full => {
            return Judged::Fail(format!(
                "{asked}: 200 with the whole body, though other ranges were served"
            ))
        }
        Served::Unsatisfiable(_) => {
            return Judged::Fail(format!("{asked}: 416 for a satisfiable range"))
        }
        Served::Other(s) => return Judged::Fail(format!("{asked}: answered {s}")),
        Served::Partial { status_200, cr } => (status_200, cr),
    };
    let (got, complete) = match cr {
        Cr::Missing => {
            return Judged::Quirk(
                Quirk::NoContentRange,
                format!("{asked}: 206 without Content-Range"),
            )
        }
        Cr::Bad(v) => {
            return Judged::Quirk(
                Quirk::BadContentRange,
                format!("{asked}: malformed Content-Range {v:?}"),
            )
        }
        Cr::Ok(ContentRange::Unsatisfied { .. }) => {
            return Judged::Fail(format!("{asked}: 206 with Content-Range bytes */LEN"))
        }
        Cr::Ok(ContentRange::Bytes { range, length }) => (range, Some(length)),
        Cr::Ok(ContentRange::BytesOfUnknownLength { range }) => (range, None),
    };
    if let (Some(len), Some(total)) = (ctx.length, complete) {
        if len != total {
            return Judged::Fail(format!(
                "{asked}: Content-Range says the length is {total}, not {len}"
            ));
        }
    }
    if let Some(want) = expected(ex, ctx.length) {
        if got.start != want.start {
            return if got.start == 0 {
                Judged::Quirk(
                    Quirk::RangeFromZero,
                    format!(
                        "{asked}: got bytes {} (from 0, not {})",
                        show(&got),
                        want.start
                    ),
                )
            } else {
                Judged::Fail(format!("{asked}: got bytes {}", show(&got)))
            };
        }
        if got.end < want.end {
            return Judged::Quirk(
                Quirk::RangeCapped(got.len()),
                format!(
                    "{asked}: {} bytes asked, {} served (Content-Range {})",
                    want.len(),
                    got.len(),
                    show(&got)
                ),
            );
        }
        if got.end > want.end {
            return Judged::Fail(format!("{asked}: more than asked: {}", show(&got)));
        }
    }
    if complete.is_none() {
        return Judged::Quirk(
            Quirk::UnknownLength,
            format!(
                "{asked}: Content-Range bytes {}/* (length unknown)",
                show(&got)
            ),
        );
    }
    if status_200 {
        return Judged::Quirk(
            Quirk::Range200,
            format!("{asked}: 200 with Content-Range bytes {}", show(&got)),
        );
    }
    if r.end == BodyEnd::Complete && r.body.len() as u64 != got.len() {
        return Judged::Fail(format!(
            "{asked}: {} body bytes for a {}-byte range",
            r.body.len(),
            got.len()
        ));
    }
    Judged::Pass(format!(
        "{asked}: 206, Content-Range {}",
        r.header("content-range").unwrap_or("")
    ))
}

fn first_problem(judged: Vec<Judged>) -> Judged {
    let mut passes = Vec::new();
    for j in judged {
        match j {
            Judged::Pass(d) => passes.push(d),
            other => return other,
        }
    }
    Judged::Pass(passes.join("; "))
}

fn single_range(ctx: &Ctx) -> Judged {
    let steps: Vec<&Exchange> = [Step::Window, Step::Mid]
        .iter()
        .filter_map(|&s| ctx.obs.get(s))
        .collect();
    if steps.is_empty() {
        return Judged::Skip(not_taken(ctx));
    }
    first_problem(steps.into_iter().map(|ex| judge_single(ctx, ex)).collect())
}

fn not_taken(ctx: &Ctx) -> String {
    match ctx.length {
        Some(0) => "the representation is empty: no range is satisfiable".into(),
        Some(_) => "the representation is too short for this request".into(),
        None => "the length is unknown".into(),
    }
}

fn one_range(ctx: &Ctx, step: Step) -> Judged {
    let Some(ex) = ctx.obs.get(step) else {
        return Judged::Skip(not_taken(ctx));
    };
    if ctx.ranges_ignored {
        return Judged::Skip("Range is ignored (see single-range)".into());
    }
    judge_single(ctx, ex)
}

fn multi_range(ctx: &Ctx) -> Judged {
    let Some(ex) = ctx.obs.get(Step::Multi) else {
        return Judged::Skip(match ctx.length {
            Some(n) if (1..3).contains(&n) => "fewer than 3 bytes: two ranges would touch".into(),
            _ => not_taken(ctx),
        });
    };
    if ctx.ranges_ignored {
        return Judged::Skip("Range is ignored (see single-range)".into());
    }
    if let Some(f) = failed(ex) {
        return f;
    }
    let r = ex.response().expect("answered");
    let asked = range_of(ex);
    let Some(len) = ctx.length.filter(|&l| l >= 3) else {
        return Judged::Skip("the length is unknown or under 3 bytes".into());
    };
    let want = [
        ByteRange { start: 0, end: 0 },
        ByteRange {
            start: len - 1,
            end: len - 1,
        },
    ];
    match served(r) {
        Served::Full => Judged::Quirk(
            Quirk::MultiRange200,
            format!("{asked}: 200 with the whole body"),
        ),
        Served::Partial { .. } if !is_multipart(r) => match content_range(r) {
            Cr::Ok(ContentRange::Bytes { range, .. }) if range == want[0] => Judged::Quirk(
                Quirk::FirstRangeOnly,
                format!(
                    "{asked}: one part, bytes {} (the first range only)",
                    show(&range)
                ),
            ),
            _ => Judged::Warn(format!(
                "{asked}: {} {:?} is not multipart/byteranges",
                r.status,
                r.header("content-type").unwrap_or("")
            )),
        },
        Served::Partial { .. } => {
            if matches!(r.end, BodyEnd::Short | BodyEnd::Stalled) {
                return Judged::Skip(format!("{asked}: the body was cut short (see framing)"));
            }
            if r.end != BodyEnd::Complete {
                return Judged::Warn(format!("{asked}: the multipart body did not arrive whole"));
            }
            let parts = multipart::boundary(r.header("content-type").unwrap_or(""))
                .and_then(|b| multipart::parse(b, &r.body));
            let parts = match parts {
                Ok(p) => p,
                Err(e) => return Judged::Warn(format!("{asked}: {e}")),
            };
            let got: Vec<Option<ByteRange>> = parts
                .iter()
                .map(|p| match p.content_range {
                    ContentRange::Bytes { range, length } if length == len => Some(range),
                    _ => None,
                })
                .collect();
            if got != want.map(Some) {
                let shown: Vec<String> =
                    parts.iter().map(|p| p.content_range.to_string()).collect();
                return Judged::Warn(format!("{asked}: parts {}", shown.join(", ")));
            }
            if let Some(p) = parts.iter().find(|p| p.body.len() != 1) {
                return Judged::Warn(format!(
                    "{asked}: part {} has {} bytes",
                    p.content_range,
                    p.body.len()
                ));
            }
            Judged::Pass(format!(
                "{asked}: 206 multipart/byteranges, parts {} and {}",
                show(&want[0]),
                show(&want[1])
            ))
        }
        Served::Unsatisfiable(_) => Judged::Warn(format!("{asked}: 416 for satisfiable ranges")),
        Served::Other(s) => Judged::Warn(format!("{asked}: answered {s}")),
    }
}

fn is_multipart(r: &Response) -> bool {
    r.header("content-type").is_some_and(|ct| {
        ct.trim_start()
            .to_ascii_lowercase()
            .starts_with("multipart/byteranges")
    })
}

fn unsatisfiable(ctx: &Ctx) -> Judged {
    let Some(ex) = ctx.obs.get(Step::Unsatisfiable) else {
        return Judged::Skip(not_taken(ctx));
    };
    if ctx.ranges_ignored {
        return Judged::Skip("Range is ignored (see single-range)".into());
    }
    if let Some(f) = failed(ex) {
        return f;
    }
    let r = ex.response().expect("answered");
    let asked = range_of(ex);
    let len = ctx.length.unwrap_or(0);
    match served(r) {
        Served::Unsatisfiable(Cr::Ok(ContentRange::Unsatisfied { length })) if length == len => {
            Judged::Pass(format!("{asked}: 416, Content-Range bytes */{len}"))
        }
        Served::Unsatisfiable(Cr::Missing) => Judged::Quirk(
            Quirk::Bare416,
            format!("{asked}: 416 without Content-Range"),
        ),
        Served::Unsatisfiable(_) => Judged::Fail(format!(
            "{asked}: 416 with Content-Range {:?}, not bytes */{len}",
            r.header("content-range").unwrap_or("")
        )),
        _ => Judged::Fail(format!("{asked}: answered {} instead of 416", r.status)),
    }
}

fn availability(ctx: &Ctx) -> Judged {
    let (lead, later) = (ctx.obs.leading_503, ctx.obs.later_503);
    if lead > 0 {
        return Judged::Quirk(
            Quirk::FailFirst(u64::from(lead)),
            format!("the first {lead} request(s) got 503 with Retry-After, then answers"),
        );
    }
    if later > 0 {
        return Judged::Warn(format!(
            "{later} request(s) got 503 with Retry-After mid-probe (retried)"
        ));
    }
    Judged::Pass("no 503".into())
}

fn head(ctx: &Ctx) -> Judged {
    let (Some(ex), Some(get)) = (ctx.obs.get(Step::Head), ctx.obs.response(Step::Get)) else {
        return Judged::Skip("no HEAD".into());
    };
    let h = match &ex.outcome {
        Ok(h) => h,
        Err(e) => return Judged::Warn(format!("HEAD: no answer ({e})")),
    };
    if h.status != get.status {
        return Judged::Warn(format!("HEAD {} but GET {}", h.status, get.status));
    }
    let missing: Vec<&str> = ["Content-Length", "Accept-Ranges"]
        .into_iter()
        .filter(|n| get.header(n).is_some() && h.header(n).is_none())
        .collect();
    if !missing.is_empty() {
        return Judged::Quirk(
            Quirk::HeadLies,
            format!("HEAD lacks {} that GET sends", missing.join(" and ")),
        );
    }
    let mut compared = vec!["Content-Length", "Accept-Ranges", "Content-Type"];
    if !ctx.versions_vary {
        compared.push("ETag");
    }
    for n in &compared {
        if let (Some(a), Some(b)) = (h.header(n), get.header(n)) {
            if a != b {
                return Judged::Warn(format!("HEAD says {n}: {a}, GET says {b}"));
            }
        }
    }
    Judged::Pass(format!("HEAD agrees with GET ({})", compared.join(", ")))
}

fn accept_ranges(ctx: &Ctx) -> Judged {
    let Some(get) = ctx.obs.response(Step::Get) else {
        return Judged::Skip("no GET".into());
    };
    let served = !ctx.ranges_ignored && ctx.obs.get(Step::Window).is_some();
    match get.header("accept-ranges") {
        Some(v) if v.eq_ignore_ascii_case("bytes") => {
            if ctx.ranges_ignored {
                Judged::Fail("Accept-Ranges: bytes, yet Range is ignored".into())
            } else {
                Judged::Pass("Accept-Ranges: bytes".into())
            }
        }
        Some(v) if v.eq_ignore_ascii_case("none") => {
            if served {
                Judged::Warn("Accept-Ranges: none, yet ranges are served".into())
            } else {
                Judged::Quirk(
                    Quirk::AcceptRangesNone,
                    "Accept-Ranges: none, and Range is ignored".into(),
                )
            }
        }
        Some(v) => Judged::Warn(format!("Accept-Ranges: {v} (unknown unit)")),
        None if ctx.ranges_ignored => Judged::Quirk(
            Quirk::NoRanges,
            "no Accept-Ranges, and Range is ignored".into(),
        ),
        None if served => Judged::Quirk(
            Quirk::NoAcceptRanges,
            "no Accept-Ranges, though ranges are served".into(),
        ),
        None => Judged::Warn("no Accept-Ranges".into()),
    }
}

fn etag(ctx: &Ctx) -> Judged {
    match &ctx.tag {
        Tag::Strong(t) => Judged::Pass(format!("strong ETag {t}")),
        Tag::Absent => Judged::Quirk(Quirk::NoEtag, "no ETag".into()),
        Tag::Weak(t) => Judged::Quirk(
            Quirk::WeakEtag,
            format!("weak ETag {t}: If-Range cannot use it"),
        ),
        Tag::Unquoted(v) => Judged::Quirk(
            Quirk::UnquotedEtag,
            format!("ETag {v} has no quotes (not an entity-tag)"),
        ),
        Tag::Malformed(v) => Judged::Fail(format!("malformed ETag {v:?}")),
    }
}

fn last_modified(ctx: &Ctx) -> Judged {
    match ctx
        .obs
        .response(Step::Get)
        .and_then(|r| r.header("last-modified"))
    {
        None => Judged::Quirk(Quirk::NoLastModified, "no Last-Modified".into()),
        Some(v) if httpdate::parse_http_date(v).is_err() => {
            Judged::Warn(format!("malformed Last-Modified {v:?}"))
        }
        Some(v) => Judged::Pass(format!("Last-Modified: {v}")),
    }
}

/// The validators of every 2xx answer, in order: are they stable?
enum Stability {
    NoValidators,
    Stable(usize, &'static str),
    Alternating(Vec<String>),
    EveryTime(usize),
    Changed(&'static str),
}

fn etag_stable(obs: &Observations) -> (Stability, bool) {
    let answers: Vec<&Response> = obs
        .exchanges
        .iter()
        .filter_map(Exchange::response)
        .filter(|r| (200..300).contains(&r.status))
        .collect();
    let tags = header_values(&answers, "etag");
    let dates = header_values(&answers, "last-modified");
    let distinct = |v: &[&str]| v.iter().collect::<HashSet<_>>().len();
    let vary = distinct(&tags) > 1 || distinct(&dates) > 1;
    let (values, what) = if tags.is_empty() {
        (dates, "Last-Modified")
    } else {
        (tags, "ETag")
    };
    let n = distinct(&values);
    // how often the value changed from one answer to the next: once is a
    // file that changed during the probe; back and forth is two versions
    let changes = values.windows(2).filter(|w| w[0] != w[1]).count();
    let s = match n {
        0 => Stability::NoValidators,
        1 => Stability::Stable(values.len(), what),
        2 if changes >= 2 => {
            Stability::Alternating(values.iter().take(3).map(|s| s.to_string()).collect())
        }
        _ if n == values.len() && what == "ETag" => Stability::EveryTime(values.len()),
        _ => Stability::Changed(what),
    };
    (s, vary)
}

fn header_values<'a>(answers: &[&'a Response], name: &str) -> Vec<&'a str> {
    answers.iter().filter_map(|r| r.header(name)).collect()
}

fn stable_to_judged(s: &Stability) -> Judged {
    match s {
        Stability::NoValidators => Judged::Skip("neither ETag nor Last-Modified".into()),
        Stability::Stable(n, what) => Judged::Pass(format!("the same {what} on all {n} answers")),
        Stability::Alternating(v) => Judged::Quirk(
            Quirk::ReplicaFlip,
            format!(
                "two versions alternate between requests: {}, ...",
                v.join(", ")
            ),
        ),
        Stability::EveryTime(n) => Judged::Quirk(
            Quirk::UnstableEtag,
            format!("a different ETag on each of {n} answers"),
        ),
        Stability::Changed(what) => Judged::Warn(format!(
            "the {what} changed during the probe (did the file change?)"
        )),
    }
}

/// The common preamble of the If-Range checks.
fn if_range_answer<'a>(
    ctx: &'a Ctx,
    step: Step,
    needs: &str,
) -> Result<(&'a Response, &'a str), Judged> {
    if ctx.length == Some(0) {
        return Err(Judged::Skip("the representation is empty".into()));
    }
    let Some(ex) = ctx.obs.get(step) else {
        return Err(Judged::Skip(needs.into()));
    };
    if ctx.ranges_ignored {
        return Err(Judged::Skip("Range is ignored (see single-range)".into()));
    }
    if let Some(f) = failed(ex) {
        return Err(f);
    }
    let cond = ex.condition.as_ref().map_or("", |(_, v)| v.as_str());
    Ok((ex.response().expect("answered"), cond))
}

fn if_range_tag(ctx: &Ctx) -> Judged {
    let (r, tag) = match if_range_answer(ctx, Step::IfRangeTag, "no strong ETag to send") {
        Ok(x) => x,
        Err(j) => return j,
    };
    match served(r) {
        Served::Partial { .. } => Judged::Pass(format!("If-Range: {tag} -> {} partial", r.status)),
        Served::Full if ctx.versions_vary => {
            Judged::Skip("the ETag changed in between (see etag-stable)".into())
        }
        Served::Full => Judged::Quirk(
            Quirk::IfRangeEtag200,
            format!("If-Range: {tag} (the current ETag) -> 200 with the whole body"),
        ),
        _ => Judged::Fail(format!("If-Range: {tag} -> {}", r.status)),
    }
}

fn if_range_date(ctx: &Ctx) -> Judged {
    let (r, date) = match if_range_answer(ctx, Step::IfRangeDate, "no Last-Modified to send") {
        Ok(x) => x,
        Err(j) => {
            return match (&j, &ctx.tag) {
                (Judged::Skip(_), Tag::Absent) if !ctx.ranges_ignored && ctx.length != Some(0) => {
                    Judged::Fail(
                        "neither ETag nor Last-Modified: no resume can be made safe".into(),
                    )
                }
                _ => j,
            }
        }
    };
    match served(r) {
        Served::Partial { .. } => Judged::Pass(format!("If-Range: {date} -> {} partial", r.status)),
        Served::Full if ctx.versions_vary => {
            Judged::Skip("Last-Modified changed in between (see etag-stable)".into())
        }
        Served::Full => match ctx.tag {
            Tag::Strong(_) => Judged::Warn(format!(
                "If-Range: {date} -> 200 (the server deems its date weak; the ETag works)"
            )),
            Tag::Weak(_) => Judged::Pass(format!(
                "If-Range: {date} -> 200 (the server deems its validators weak)"
            )),
            _ => Judged::Fail(format!(
                "If-Range: {date} -> 200, and no usable ETag: no resume is possible"
            )),
        },
        _ => Judged::Fail(format!("If-Range: {date} -> {}", r.status)),
    }
}

fn if_range_stale(ctx: &Ctx) -> Judged {
    let (r, tag) = match if_range_answer(ctx, Step::IfRangeStale, "not taken") {
        Ok(x) => x,
        Err(j) => return j,
    };
    match served(r) {
        Served::Full => Judged::Pass(format!("If-Range: {tag} -> 200 with the whole body")),
        Served::Partial { .. } => Judged::Quirk(
            Quirk::IgnoreIfRange,
            format!("If-Range: {tag} (never sent) -> {} partial", r.status),
        ),
        Served::Unsatisfiable(_) => Judged::Quirk(
            Quirk::IfRange416,
            format!("If-Range: {tag} (never sent) -> 416"),
        ),
        Served::Other(s) => Judged::Fail(format!("If-Range: {tag} -> {s}")),
    }
}

fn if_range_weak(ctx: &Ctx) -> Judged {
    let (r, tag) = match if_range_answer(ctx, Step::IfRangeWeak, "no strong ETag to weaken") {
        Ok(x) => x,
        Err(j) => return j,
    };
    let stale = ctx.obs.response(Step::IfRangeStale).map(served);
    match served(r) {
        Served::Full => Judged::Pass(format!("If-Range: {tag} -> 200 (weak never matches)")),
        Served::Partial { .. } if matches!(stale, Some(Served::Partial { .. })) => {
            Judged::Skip("If-Range is ignored altogether (see if-range-stale)".into())
        }
        Served::Partial { .. } => Judged::Quirk(
            Quirk::WeakIfRange206,
            format!("If-Range: {tag} -> {} partial (weak comparison)", r.status),
        ),
        Served::Unsatisfiable(_) if matches!(stale, Some(Served::Unsatisfiable(_))) => {
            Judged::Skip("a failed If-Range gets 416 (see if-range-stale)".into())
        }
        _ => Judged::Fail(format!("If-Range: {tag} -> {}", r.status)),
    }
}

fn if_none_match(ctx: &Ctx) -> Judged {
    let Some(ex) = ctx.obs.get(Step::IfNoneMatch) else {
        return Judged::Skip("no ETag to send".into());
    };
    if let Some(f) = failed(ex) {
        return f;
    }
    let r = ex.response().expect("answered");
    let tag = ex.condition.as_ref().map_or("", |(_, v)| v.as_str());
    match r.status {
        304 => Judged::Pass(format!("If-None-Match: {tag} -> 304")),
        200 if ctx.versions_vary => {
            Judged::Skip("the ETag changed in between (see etag-stable)".into())
        }
        s => Judged::Warn(format!("If-None-Match: {tag} (the current ETag) -> {s}")),
    }
}

fn framing(ctx: &Ctx) -> Judged {
    let get = ctx.obs.response(Step::Get);
    let win = ctx.obs.response(Step::Window);
    for (name, r) in [("GET", get), (range_of_step(ctx, Step::Window), win)] {
        if let Some(r) = r.filter(|r| r.end == BodyEnd::Stalled) {
            return Judged::Quirk(
                Quirk::StallAfter(r.body.len() as u64),
                format!("{name}: nothing more after {} body bytes", r.body.len()),
            );
        }
        if r.is_some_and(|r| r.end == BodyEnd::BadChunk) {
            return Judged::Fail(format!("{name}: malformed chunked coding"));
        }
    }
    if let Some(w) = win.filter(|r| r.end == BodyEnd::Short) {
        let k = w.body.len() as u64;
        let second = ctx.obs.get(Step::Window2).and_then(|ex| {
            let start = expected(ex, ctx.length)?.start;
            Some((start, ex.response()?))
        });
        return match second {
            Some((_, r2)) if r2.end == BodyEnd::Short && r2.body.len() as u64 == k => {
                Judged::Quirk(
                    Quirk::DropAfter(k),
                    format!("connections close after {k} body bytes, wherever the range starts"),
                )
            }
            Some((s, r2))
                if (r2.end == BodyEnd::Short && s + r2.body.len() as u64 == k)
                    || (r2.end == BodyEnd::Complete && s == k) =>
            {
                Judged::Quirk(
                    Quirk::DropAt(k),
                    format!("connections close at file offset {k}"),
                )
            }
            Some((s, r2)) => Judged::Fail(format!(
                "cut after {k} body bytes from 0, after {} from {s}",
                r2.body.len()
            )),
            None => Judged::Quirk(
                Quirk::DropAfter(k),
                format!("the connection closed after {k} body bytes"),
            ),
        };
    }
    if let Some(g) = get.filter(|r| r.end == BodyEnd::Short) {
        return Judged::Fail(format!(
            "GET: the connection closed after {} body bytes",
            g.body.len()
        ));
    }
    let chunked = [get, win]
        .into_iter()
        .flatten()
        .any(|r| r.framing == Framing::Chunked);
    if chunked {
        return Judged::Quirk(
            Quirk::Chunked,
            "no Content-Length: chunked transfer coding".into(),
        );
    }
    if get.is_some_and(|r| r.framing == Framing::Close) {
        return Judged::Warn(
            "no Content-Length, no chunked coding: the end of a body cannot be told from a cut"
                .into(),
        );
    }
    Judged::Pass("bodies end where Content-Length says".into())
}

fn range_of_step<'a>(ctx: &'a Ctx, step: Step) -> &'a str {
    ctx.obs.get(step).map_or("", range_of)
}

/// A piece of the representation seen in some answer.
struct Piece<'a> {
    step: Step,
    start: u64,
    bytes: &'a [u8],
    version: Option<&'a str>,
}

fn pieces<'a>(ctx: &Ctx<'a>) -> Vec<Piece<'a>> {
    let mut out = Vec::new();
    for ex in &ctx.obs.exchanges {
        let Some(r) = ex.response() else { continue };
        if r.framing == Framing::None {
            continue;
        }
        let version = r.header("etag").or_else(|| r.header("last-modified"));
        match served(r) {
            Served::Full => out.push(Piece {
                step: ex.step,
                start: 0,
                bytes: &r.body,
                version,
            }),
            Served::Partial { .. } if is_multipart(r) => {
                let Ok(b) = multipart::boundary(r.header("content-type").unwrap_or("")) else {
                    continue;
                };
                for p in multipart::parse(b, &r.body).unwrap_or_default() {
                    if let ContentRange::Bytes { range, .. } = p.content_range {
                        let n = p.body.len().min(range.len() as usize);
                        out.push(Piece {
                            step: ex.step,
                            start: range.start,
                            bytes: &r.body[p.at..p.at + n],
                            version,
                        });
                    }
                }
            }
            Served::Partial {
                cr:
                    Cr::Ok(
                        ContentRange::Bytes { range, .. }
                        | ContentRange::BytesOfUnknownLength { range },
                    ),
                ..
            } => {
                let n = r.body.len().min(range.len() as usize);
                out.push(Piece {
                    step: ex.step,
                    start: range.start,
                    bytes: &r.body[..n],
                    version,
                });
            }
            _ => {}
        }
    }
    out
}

fn overlap(ctx: &Ctx) -> Judged {
    let pieces = pieces(ctx);
    let mut compared = 0;
    for (i, a) in pieces.iter().enumerate() {
        for b in &pieces[i + 1..] {
            if a.version != b.version {
                continue; // another version: a difference is expected
            }
            let from = a.start.max(b.start);
            let end = |p: &Piece| p.start.saturating_add(p.bytes.len() as u64);
            let to = end(a).min(end(b));
            if from >= to {
                continue;
            }
            compared += 1;
            let sa = &a.bytes[(from - a.start) as usize..(to - a.start) as usize];
            let sb = &b.bytes[(from - b.start) as usize..(to - b.start) as usize];
            if let Some(i) = sa.iter().zip(sb).position(|(x, y)| x != y) {
                return Judged::Fail(format!(
                    "byte {} differs between {} and {} (same validator)",
                    from + i as u64,
                    StepName(a.step),
                    StepName(b.step)
                ));
            }
        }
    }
    if compared == 0 {
        return Judged::Skip("no overlapping bytes to compare".into());
    }
    Judged::Pass(format!("{compared} overlapping pairs agree byte for byte"))
}

fn encoding(ctx: &Ctx) -> Judged {
    let coded = ctx.obs.exchanges.iter().find_map(|ex| {
        let r = ex.response()?;
        let v = r.header("content-encoding")?;
        (!v.eq_ignore_ascii_case("identity")).then_some(v)
    });
    match coded {
        Some(v) => Judged::Quirk(
            Quirk::EncodedRange,
            format!("Content-Encoding: {v}, though the probe asked for identity; ranges count encoded bytes"),
        ),
        None => Judged::Pass("no Content-Encoding".into()),
    }
}

/// The smallest body whose pace is judged, and the time it must take to be
/// called slow (a whole 4 KiB window in one TCP burst is normal anywhere).
const PACED_MIN_BYTES: usize = 2048;
const SLOW_AFTER: std::time::Duration = std::time::Duration::from_millis(500);

fn speed(ctx: &Ctx) -> Judged {
    let Some(r) = ctx
        .obs
        .response(Step::Window)
        .or(ctx.obs.response(Step::Get))
    else {
        return Judged::Skip("no body read".into());
    };
    if r.end == BodyEnd::Stalled {
        return Judged::Skip("stalled (see framing)".into());
    }
    let n = r.body.len();
    let secs = r.timing.body.as_secs_f64();
    let paced = n.saturating_sub(r.timing.first_read) as f64;
    let slow = r.end == BodyEnd::Slow || (n >= PACED_MIN_BYTES && r.timing.body >= SLOW_AFTER);
    if slow && secs > 0.0 {
        let rate = paced / secs;
        // a whole number of KiB/s when above 1 KiB/s: a measure, not a census
        let rate = if rate >= 1024.0 {
            (rate / 1024.0).round() as u64 * 1024
        } else {
            rate.round().max(1.0) as u64
        };
        return Judged::Quirk(
            Quirk::Throttle(rate),
            format!(
                "{n} body bytes in {} ms: about {rate} bytes/s",
                r.timing.body.as_millis()
            ),
        );
    }
    if n < PACED_MIN_BYTES {
        return Judged::Pass(format!("{n} body bytes: too few to judge the pace"));
    }
    Judged::Pass(format!(
        "{n} body bytes in under {} ms",
        SLOW_AFTER.as_millis()
    ))
}

/// A step's name in reasons.
struct StepName(Step);

impl fmt::Display for StepName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.0 {
            Step::Head => "HEAD",
            Step::Get => "GET",
            Step::Window => "the 4 KiB window",
            Step::Window2 => "the second window",
            Step::Mid => "the mid range",
            Step::Open => "the open range",
            Step::Suffix => "the suffix range",
            Step::Multi => "the multipart answer",
            Step::Unsatisfiable => "the 416 request",
            Step::IfRangeTag => "If-Range (ETag)",
            Step::IfRangeDate => "If-Range (date)",
            Step::IfRangeStale => "If-Range (stale)",
            Step::IfRangeWeak => "If-Range (weak)",
            Step::IfNoneMatch => "If-None-Match",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::http::Timing;

    const LEN: u64 = 100;
    const TAG: &str = "\"abc\"";
    const LM: &str = "Sun, 06 Nov 1994 08:49:37 GMT";

    fn data() -> Vec<u8> {
        (0..LEN as u8).map(|b| b.wrapping_mul(7)).collect()
    }

    fn response(status: u16, extra: &[(&str, String)], body: Vec<u8>, head: bool) -> Response {
        let mut headers: Vec<(String, String)> = vec![
            ("ETag".into(), TAG.into()),
            ("Last-Modified".into(), LM.into()),
            ("Accept-Ranges".into(), "bytes".into()),
            ("Content-Length".into(), body.len().to_string()),
        ];
        headers.extend(extra.iter().map(|(n, v)| (n.to_string(), v.clone())));
        Response {
            status,
            reason: String::new(),
            headers,
            framing: if head || status == 304 {
                Framing::None
            } else {
                Framing::Length(body.len() as u64)
            },
            body: if head { Vec::new() } else { body },
            end: BodyEnd::Complete,
            timing: Timing::default(),
        }
    }

    fn partial(a: u64, b: u64) -> Response {
        let cr = ContentRange::Bytes {
            range: ByteRange { start: a, end: b },
            length: LEN,
        };
        let body = data()[a as usize..=b as usize].to_vec();
        response(206, &[("Content-Range", cr.to_string())], body, false)
    }

    fn full() -> Response {
        response(200, &[], data(), false)
    }

    fn ex(
        step: Step,
        range: Option<&str>,
        cond: Option<(&'static str, &str)>,
        r: Response,
    ) -> Exchange {
        Exchange {
            step,
            range: range.map(str::to_string),
            condition: cond.map(|(n, v)| (n, v.to_string())),
            outcome: Ok(r),
        }
    }

    /// What a correct server answers to the probe's steps for `data()`.
    fn correct() -> Observations {
        let ranges = [
            ByteRange { start: 0, end: 0 },
            ByteRange { start: 99, end: 99 },
        ];
        let plan = multipart::plan("B", "application/octet-stream", &ranges, LEN);
        let mut body = Vec::new();
        for s in &plan.segments {
            match s {
                multipart::Segment::Static(b) => body.extend_from_slice(b),
                multipart::Segment::Slice(r) => {
                    body.extend_from_slice(&data()[r.start as usize..=r.end as usize])
                }
            }
        }
        let multi = response(
            206,
            &[("Content-Type", plan.content_type.clone())],
            body,
            false,
        );
        let mut unsat = response(
            416,
            &[("Content-Range", "bytes */100".into())],
            Vec::new(),
            false,
        );
        unsat
            .headers
            .retain(|(n, _)| n != "ETag" && n != "Last-Modified");
        let mid = Some("bytes=50-65");
        Observations {
            exchanges: vec![
                ex(Step::Head, None, None, response(200, &[], data(), true)),
                ex(Step::Get, None, None, full()),
                ex(Step::Window, Some("bytes=0-4095"), None, partial(0, 99)),
                ex(Step::Mid, mid, None, partial(50, 65)),
                ex(Step::Open, Some("bytes=84-"), None, partial(84, 99)),
                ex(Step::Suffix, Some("bytes=-16"), None, partial(84, 99)),
                ex(Step::Multi, Some("bytes=0-0,-1"), None, multi),
                ex(Step::Unsatisfiable, Some("bytes=100-"), None, unsat),
                ex(
                    Step::IfRangeTag,
                    mid,
                    Some(("If-Range", TAG)),
                    partial(50, 65),
                ),
                ex(
                    Step::IfRangeDate,
                    mid,
                    Some(("If-Range", LM)),
                    partial(50, 65),
                ),
                ex(
                    Step::IfRangeStale,
                    mid,
                    Some(("If-Range", "\"stale\"")),
                    full(),
                ),
                ex(
                    Step::IfRangeWeak,
                    mid,
                    Some(("If-Range", "W/\"abc\"")),
                    full(),
                ),
                ex(
                    Step::IfNoneMatch,
                    None,
                    Some(("If-None-Match", TAG)),
                    response(304, &[], Vec::new(), false),
                ),
            ],
            leading_503: 0,
            later_503: 0,
            length: Some(LEN),
        }
    }

    fn resp(o: &mut Observations, step: Step) -> &mut Response {
        o.exchanges
            .iter_mut()
            .find(|e| e.step == step)
            .and_then(|e| e.outcome.as_mut().ok())
            .unwrap()
    }

    fn set_header(r: &mut Response, name: &str, value: Option<&str>) {
        r.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        if let Some(v) = value {
            r.headers.push((name.into(), v.into()));
        }
    }

    fn drop_steps(o: &mut Observations, steps: &[Step]) {
        o.exchanges.retain(|e| !steps.contains(&e.step));
    }

    type Mutation = fn(&mut Observations);

    #[test]
    fn findings_table() {
        #[rustfmt::skip]
        let rows: &[(&str, Mutation, &[&str], bool)] = &[
            ("correct", |_| {}, &[], true),
            ("200 to a range, with Content-Range", |o| resp(o, Step::Mid).status = 200, &["range-200"], false),
            ("416 without Content-Range", |o| set_header(resp(o, Step::Unsatisfiable), "Content-Range", None), &["bare-416"], true),
            ("a stale If-Range gets 416", |o| {
                let r = resp(o, Step::IfRangeStale);
                r.status = 416;
                set_header(r, "Content-Range", Some("bytes */100"));
            }, &["if-range-416"], false),
            ("weak ETag everywhere", |o| {
                for e in &mut o.exchanges {
                    if let Ok(r) = &mut e.outcome {
                        if r.header("etag").is_some() {
                            set_header(r, "ETag", Some("W/\"abc\""));
                        }
                    }
                }
                drop_steps(o, &[Step::IfRangeTag, Step::IfRangeWeak]);
                let date = resp(o, Step::IfRangeDate);
                *date = full();
                set_header(date, "ETag", Some("W/\"abc\""));
            }, &["weak-etag"], false),
            ("cut after 10 bytes, wherever the range starts", |o| {
                let w = resp(o, Step::Window);
                w.body.truncate(10);
                w.end = BodyEnd::Short;
                let mut w2 = partial(5, 99);
                w2.body.truncate(10);
                w2.end = BodyEnd::Short;
                o.exchanges.insert(3, ex(Step::Window2, Some("bytes=5-4100"), None, w2));
            }, &["drop-after=10"], false),
            ("cut at offset 10", |o| {
                let w = resp(o, Step::Window);
                w.body.truncate(10);
                w.end = BodyEnd::Short;
                let mut w2 = partial(5, 99);
                w2.body.truncate(5);
                w2.end = BodyEnd::Short;
                o.exchanges.insert(3, ex(Step::Window2, Some("bytes=5-4100"), None, w2));
            }, &["drop-at=10"], false),
            ("two versions alternate", |o| {
                let mut flip = false;
                for e in &mut o.exchanges {
                    if let Ok(r) = &mut e.outcome {
                        if (200..300).contains(&r.status) {
                            set_header(r, "ETag", Some(if flip { "\"two\"" } else { TAG }));
                            flip = !flip;
                        }
                    }
                }
            }, &["replica-flip"], false),
            ("no validators at all", |o| {
                for e in &mut o.exchanges {
                    if let Ok(r) = &mut e.outcome {
                        set_header(r, "ETag", None);
                        set_header(r, "Last-Modified", None);
                    }
                }
                drop_steps(o, &[Step::IfRangeTag, Step::IfRangeDate, Step::IfRangeWeak, Step::IfNoneMatch]);
            }, &["no-etag", "no-last-modified"], false),
            ("the mid range answered from byte 0", |o| *resp(o, Step::Mid) = partial(0, 15), &["range-from-zero"], false),
            ("a byte differs between two answers", |o| resp(o, Step::Mid).body[0] ^= 1, &[], false),
            ("HEAD answered 405", |o| resp(o, Step::Head).status = 405, &[], true),
            ("If-None-Match ignored", |o| *resp(o, Step::IfNoneMatch) = full(), &[], true),
            ("a malformed multipart body", |o| resp(o, Step::Multi).body.truncate(20), &[], true),
            ("a Content-Range at the end of u64", |o| {
                let r = resp(o, Step::Mid);
                set_header(r, "Content-Range", Some("bytes 18446744073709551599-18446744073709551614/18446744073709551615"));
            }, &[], false),
        ];
        for (name, mutate, want, safe) in rows {
            let mut obs = correct();
            mutate(&mut obs);
            let f = analyze(&obs);
            let got: Vec<String> = f.quirks.iter().map(Quirk::to_string).collect();
            assert_eq!(&got, want, "{name}: {:#?}", f.checks);
            assert_eq!(f.safe(), *safe, "{name}: {:#?}", f.checks);
            if *name == "correct" {
                for c in &f.checks {
                    assert_eq!(c.status, Status::Pass, "{}: {}", c.id.name(), c.detail);
                }
            }
        }
    }

    /// Observations that contradict each other (a length of 0 or none, yet
    /// ranges answered) are judged without panicking.
    #[test]
    fn contradictory_observations_do_not_panic() {
        for length in [Some(0), Some(1), Some(u64::MAX), None] {
            let mut obs = correct();
            obs.length = length;
            let f = analyze(&obs);
            assert_eq!(f.checks.len(), CheckId::ALL.len());
        }
    }

    #[test]
    fn overlap_names_the_bytes_that_differ() {
        let mut obs = correct();
        resp(&mut obs, Step::Mid).body[0] ^= 1;
        let f = analyze(&obs);
        let c = f.checks.iter().find(|c| c.id == CheckId::Overlap).unwrap();
        assert_eq!(
            (c.status, c.detail.as_str()),
            (
                Status::Fail,
                "byte 50 differs between GET and the mid range (same validator)"
            )
        );
    }
}
