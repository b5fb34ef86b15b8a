//! The one place that turns a [`ResponsePlan`] into status, headers and body.
//!
//! Every file response gets the same header set here (Date, ETag,
//! Repr-Digest, Last-Modified, Cache-Control, Accept-Ranges, Content-Type,
//! Content-Length); HEAD gets exactly the headers of the matching GET and no
//! body; 304 gets the validators and Cache-Control only (RFC 9110 15.4.5).

use std::cell::RefCell;
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::SystemTime;

use axum::body::Body;
use axum::http::header::{
    HeaderName, HeaderValue, ACCEPT_RANGES, CACHE_CONTROL, CONTENT_ENCODING, CONTENT_LENGTH,
    CONTENT_RANGE, CONTENT_TYPE, DATE, ETAG, LAST_MODIFIED,
};
use axum::http::{HeaderMap, Response, StatusCode};
use base64::Engine as _;

use crate::body::{FileBody, Source};
use crate::error::status_text;
use crate::hashcache::Digest;
use crate::origin::body::ObjectBody;
use crate::plan::{FileMethod, ResponsePlan};
use crate::rfc::etag::EntityTag;
use crate::rfc::multipart::{self, Segment, Segments};
use crate::rfc::range::{ByteRange, ContentRange, Decimal};

/// The selected representation: its bytes and the metadata sent about them.
#[derive(Debug, Clone)]
pub struct Representation {
    /// Where the bytes come from.
    pub source: Source,
    /// Length in bytes.
    pub length: u64,
    /// Media type (shared: cloned into every answer about a file).
    pub content_type: Arc<str>,
    /// Content-Encoding, if the bytes are encoded.
    pub content_encoding: Option<&'static str>,
    /// The entity-tag sent, if any.
    pub etag: Option<EntityTag>,
    /// Last-Modified sent, if any (never later than Date).
    pub last_modified: Option<SystemTime>,
    /// SHA-256 of the bytes (Repr-Digest), if it is sent.
    pub digest: Option<Digest>,
    /// Header values rendered once per file version; each is used only
    /// while the value above it still equals what it was rendered from (a
    /// quirk that changes one gets it rendered afresh).
    pub rendered: Option<Arc<Rendered>>,
}

/// Header values of one file version, rendered once and reused by every
/// response about it (a `HeaderValue` clone is a reference count).
#[derive(Debug)]
pub struct Rendered {
    etag: EntityTag,
    etag_value: HeaderValue,
    digest: Digest,
    digest_value: HeaderValue,
    content_type: Arc<str>,
    content_type_value: Option<HeaderValue>,
    last_modified: SystemTime,
    last_modified_value: HeaderValue,
    /// The head of a 200 or 206 about this version, in wire order (Date and
    /// Content-Length placeholders), made on first use with the server's Cache-Control:
    /// cloned per response, which is cheaper than inserting each header
    /// into a fresh map.
    head: OnceLock<(HeaderValue, HeaderMap)>,
    /// That head as HTTP/1.1 writes it ([`crate::h1`]): made from the map
    /// above, so the two cannot differ.
    wire: OnceLock<(HeaderValue, WireHead)>,
    /// The lines of a 304 about this version, made by [`render`] once.
    not_modified: OnceLock<(HeaderValue, Option<WireHead>)>,
}

/// A response head's header lines as bytes, with the places where each
/// response's own values go.
#[derive(Debug)]
struct WireHead {
    lines: Vec<u8>,
    /// In line order.
    holes: Vec<(usize, Hole)>,
}

/// A value a [`WireHead`] leaves to each response.
#[derive(Debug, Clone, Copy)]
enum Hole {
    /// The `Date` value.
    Date,
    /// The `Content-Length` value.
    Length,
    /// The `Content-Type` value, which ends here: kept, or replaced (multipart).
    Type(usize),
}

/// What an answer fills in when its head is written from a version's lines.
#[derive(Debug, Clone, Copy)]
enum Fill {
    Date,
    Length,
    /// The version's Content-Type (given), unless replaced (multipart).
    Type,
}

/// Write header lines as [`crate::h1::encode_head`] writes them, except
/// each answer's own values: `fill` writes (or marks the place of) the
/// `Date`, `Content-Length` and `Content-Type` values. The one writer of
/// header lines from a version's fields, whether kept ([`WireHead`]) or
/// written straight into an answer.
fn write_lines<'a, V: AsRef<[u8]>>(
    fields: impl IntoIterator<Item = (&'a HeaderName, V)>,
    out: &mut Vec<u8>,
    mut fill: impl FnMut(&mut Vec<u8>, Fill, &[u8]),
) {
    for (name, value) in fields {
        crate::h1::title_case(out, name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        if name == DATE {
            fill(out, Fill::Date, b"");
        } else if name == CONTENT_LENGTH {
            fill(out, Fill::Length, b"");
        } else if name == CONTENT_TYPE {
            fill(out, Fill::Type, value.as_ref());
        } else {
            out.extend_from_slice(value.as_ref());
        }
        out.extend_from_slice(b"\r\n");
    }
}

impl WireHead {
    /// The lines of `map` as [`crate::h1::encode_head`] writes them, with
    /// holes for `Date`, `Content-Type` and `Content-Length` (`None` without
    /// a `Date`: the answer would carry a stale one).
    fn of<'a>(fields: impl IntoIterator<Item = (&'a HeaderName, &'a HeaderValue)>) -> Option<Self> {
        let mut lines = Vec::with_capacity(512);
        let mut holes = Vec::with_capacity(3);
        write_lines(fields, &mut lines, |lines, fill, value| {
            let at = lines.len();
            holes.push(match fill {
                Fill::Date => (at, Hole::Date),
                Fill::Length => (at, Hole::Length),
                Fill::Type => {
                    lines.extend_from_slice(value);
                    (at, Hole::Type(lines.len()))
                }
            });
        });
        holes
            .iter()
            .any(|(_, h)| matches!(h, Hole::Date))
            .then_some(WireHead { lines, holes })
    }

    /// Append the lines with these values (`content_type`: a replacement).
    fn write(
        &self,
        date: &HeaderValue,
        content_type: Option<&str>,
        length: u64,
        out: &mut Vec<u8>,
    ) {
        let mut from = 0;
        for &(at, hole) in &self.holes {
            out.extend_from_slice(&self.lines[from..at]);
            from = at;
            match hole {
                Hole::Date => out.extend_from_slice(date.as_bytes()),
                Hole::Length => out.extend_from_slice(Decimal::of(length).as_bytes()),
                Hole::Type(end) => {
                    if let Some(t) = content_type {
                        out.extend_from_slice(t.as_bytes());
                        from = end;
                    }
                }
            }
        }
        out.extend_from_slice(&self.lines[from..]);
    }
}

impl Rendered {
    /// The strong entity-tag these values were rendered for.
    pub fn etag(&self) -> &EntityTag {
        &self.etag
    }

    /// The values for a version with these validators and media type.
    ///
    /// Every value is written into one buffer and each header value is a
    /// slice of it: a file version costs a handful of allocations however
    /// many values it has (a miss the file-state cache keeps makes one; one it
    /// turns away makes none: its head is written from [`Values`]).
    pub fn new(digest: Digest, content_type: Arc<str>, last_modified: SystemTime) -> Self {
        let etag = EntityTag::from_sha256(&digest);
        let values = Values::of(&etag, last_modified, &digest).expect("room for a SHA-256 tag");
        let mut buf = Vec::with_capacity(values.len + content_type.len());
        buf.extend_from_slice(&values.buf[..values.len]);
        buf.extend_from_slice(content_type.as_bytes());
        let buf = bytes::Bytes::from(buf);
        let slice = |at: std::ops::Range<usize>| HeaderValue::from_maybe_shared(buf.slice(at));
        Rendered {
            etag_value: slice(values.etag.clone()).expect("a quoted hex tag"),
            digest_value: slice(values.digest.clone()).expect("ASCII"),
            content_type_value: slice(values.len..buf.len()).ok(),
            last_modified_value: slice(values.modified.clone()).expect("an HTTP date"),
            etag,
            digest,
            content_type,
            last_modified,
            head: OnceLock::new(),
            wire: OnceLock::new(),
            not_modified: OnceLock::new(),
        }
    }

    /// Whether every value of `repr` its head shows is this version's as rendered.
    fn same(&self, repr: &Representation) -> bool {
        self.content_type_value.is_some()
            && repr.etag.as_ref() == Some(&self.etag)
            && repr.last_modified == Some(self.last_modified)
            && repr.digest == Some(self.digest)
            && *repr.content_type == *self.content_type
            && repr.content_encoding.is_none()
    }

    /// The head of a 200 or 206 for `repr` (sent with `cache_control`), if
    /// every value in it is this version's as rendered: a quirk that bends
    /// one gets the map built header by header instead.
    fn head_for(&self, repr: &Representation, cache_control: &HeaderValue) -> Option<HeaderMap> {
        let fields = self.head_fields(repr, cache_control)?;
        let (cc, head) = self.head.get_or_init(|| {
            let mut h = HeaderMap::with_capacity(12);
            h.extend(fields);
            (cache_control.clone(), h)
        });
        (cc == cache_control).then(|| head.clone())
    }

    /// The fields of [`head_for`](Self::head_for)'s head, in the order sent.
    fn head_fields(
        &self,
        repr: &Representation,
        cache_control: &HeaderValue,
    ) -> Option<[(HeaderName, HeaderValue); 8]> {
        let content_type = self.content_type_value.as_ref()?;
        if !self.same(repr) {
            return None;
        }
        Some(head_fields(
            [
                self.etag_value.clone(),
                self.last_modified_value.clone(),
                cache_control.clone(),
                self.digest_value.clone(),
                content_type.clone(),
            ],
            HeaderValue::from_static,
        ))
    }
}

/// The fields of a 200 or 206 head about one version, in the order sent,
/// from its ETag, Last-Modified, Cache-Control, Repr-Digest and
/// Content-Type values: the one list that the head map (hyper's path), the
/// wire lines kept with a version and the lines written straight for a
/// version not kept are all made from. `fixed` makes the rest: Date and
/// Content-Length are placeholders, filled per answer (a clone has no room
/// to grow into).
fn head_fields<V>(values: [V; 5], fixed: impl Fn(&'static str) -> V) -> [(HeaderName, V); 8] {
    let [etag, last_modified, cache_control, digest, content_type] = values;
    [
        (DATE, fixed("-")),
        (ETAG, etag),
        (LAST_MODIFIED, last_modified),
        (CACHE_CONTROL, cache_control),
        (REPR_DIGEST.clone(), digest),
        (ACCEPT_RANGES, fixed("bytes")),
        (CONTENT_TYPE, content_type),
        (CONTENT_LENGTH, fixed("0")),
    ]
}

/// The values rendered from one version (ETag, Last-Modified and
/// Repr-Digest), side by side in one buffer: what [`Rendered`] keeps, and
/// what a version that is not kept writes its head from, without
/// allocating.
struct Values {
    buf: [u8; 192],
    len: usize,
    etag: std::ops::Range<usize>,
    modified: std::ops::Range<usize>,
    digest: std::ops::Range<usize>,
}

impl Values {
    /// `None`: a tag too long for the buffer (a SHA-256 tag always fits).
    fn of(etag: &EntityTag, last_modified: SystemTime, digest: &Digest) -> Option<Self> {
        use std::io::Write as _;
        let mut buf = [0u8; 192];
        let room = buf.len();
        let mut w = &mut buf[..];
        let at = |w: &mut &mut [u8],
                  write: &mut dyn FnMut(&mut &mut [u8]) -> std::io::Result<()>| {
            let start = room - w.len();
            write(w).ok().map(|()| start..room - w.len())
        };
        let etag = at(&mut w, &mut |w| {
            if etag.weak {
                w.write_all(b"W/")?;
            }
            w.write_all(b"\"")?;
            w.write_all(etag.opaque.as_bytes())?;
            w.write_all(b"\"")
        })?;
        let digest = at(&mut w, &mut |w| {
            let mut text = [0u8; 44];
            let n = base64::engine::general_purpose::STANDARD
                .encode_slice(digest, &mut text)
                .expect("44 characters for 32 bytes");
            w.write_all(b"sha-256=:")?;
            w.write_all(&text[..n])?;
            w.write_all(b":")
        })?;
        let modified = at(&mut w, &mut |w| {
            write!(w, "{}", httpdate::HttpDate::from(last_modified))
        })?;
        let len = room - w.len();
        Some(Values {
            buf,
            len,
            etag,
            modified,
            digest,
        })
    }
}

impl Rendered {
    /// [`Rendered::head_for`] as HTTP/1.1 header lines.
    fn wire_for(&self, repr: &Representation, cache_control: &HeaderValue) -> Option<&WireHead> {
        if let Some((cc, wire)) = self.wire.get() {
            // the head map's checks, without cloning the map
            return (cc == cache_control && self.same(repr)).then_some(wire);
        }
        let fields = self.head_fields(repr, cache_control)?;
        let (cc, wire) = self.wire.get_or_init(|| {
            let fields = fields.iter().map(|(name, value)| (name, value));
            (
                cache_control.clone(),
                WireHead::of(fields).expect("Date first, Content-Length last"),
            )
        });
        (cc == cache_control).then_some(wire)
    }

    /// The lines of a 304 for `repr`, as [`render`] makes them.
    fn not_modified_for(&self, repr: &Representation, ctx: &ResponseCtx) -> Option<&WireHead> {
        if !self.same(repr) {
            return None;
        }
        let (cc, wire) = self.not_modified.get_or_init(|| {
            let plan = ResponsePlan::NotModified;
            let res = render(&plan, FileMethod::Get, repr.clone(), ctx);
            (ctx.cache_control.clone(), WireHead::of(res.headers()))
        });
        (cc == ctx.cache_control).then_some(wire.as_ref()?)
    }
}

/// A 200, 206 (one range or multipart) or 304 for HTTP/1.1
/// ([`crate::h1`]): its head written into `out` from the version's
/// [`WireHead`], with the body to follow it (`None` for HEAD and 304). The same values, in the same order, as [`render`] gives hyper.
/// Any other plan, or values a quirk changed, give `repr` back: [`render`]
/// makes that answer.
// the representation comes back by value, once per request: no allocation
#[allow(clippy::result_large_err)]
pub(crate) fn wire(
    plan: &ResponsePlan,
    method: FileMethod,
    repr: Representation,
    ctx: &ResponseCtx,
    out: &mut Vec<u8>,
) -> Result<(StatusCode, Option<FileBody>), Representation> {
    if matches!(repr.source, Source::Object(_)) {
        return Err(repr);
    }
    let pre = repr.rendered.clone();
    if let ResponsePlan::NotModified = plan {
        let Some(head) = pre
            .as_deref()
            .and_then(|pre| pre.not_modified_for(&repr, ctx))
        else {
            return Err(repr);
        };
        out.extend_from_slice(b"HTTP/1.1 304 Not Modified\r\n");
        head.write(&date_value(ctx.now), None, 0, out);
        out.extend_from_slice(b"\r\n");
        return Ok((StatusCode::NOT_MODIFIED, None));
    }
    let Some(payload) = payload(plan, &repr, ctx) else {
        return Err(repr);
    };
    // the version's lines as kept, or (a version not kept) its values
    let lines = match &pre {
        Some(pre) => match pre.wire_for(&repr, &ctx.cache_control) {
            Some(head) => Ok(head),
            None => return Err(repr),
        },
        None => match straight_values(&repr) {
            Some(values) => Err(values),
            None => return Err(repr),
        },
    };
    let content_type = repr.content_type;
    let body = FileBody::new(repr.source, payload.segments);
    out.extend_from_slice(match payload.status {
        StatusCode::OK => b"HTTP/1.1 200 OK\r\n".as_slice(),
        _ => b"HTTP/1.1 206 Partial Content\r\n",
    });
    let date = date_value(ctx.now);
    let multipart_type = payload.multipart_type.as_deref();
    match lines {
        Ok(head) => head.write(&date, multipart_type, body.len(), out),
        Err(v) => {
            let values = [
                &v.buf[v.etag.clone()],
                &v.buf[v.modified.clone()],
                ctx.cache_control.as_bytes(),
                &v.buf[v.digest.clone()],
                content_type.as_bytes(),
            ];
            let fields = head_fields::<&[u8]>(values, |s| s.as_bytes());
            let fields = fields.iter().map(|(name, value)| (name, *value));
            write_lines(fields, out, |out, fill, value| match fill {
                Fill::Date => out.extend_from_slice(date.as_bytes()),
                Fill::Length => out.extend_from_slice(Decimal::of(body.len()).as_bytes()),
                Fill::Type => match multipart_type {
                    Some(t) => out.extend_from_slice(t.as_bytes()),
                    None => out.extend_from_slice(value),
                },
            });
        }
    }
    if let Some(content_range) = payload.content_range {
        out.extend_from_slice(b"Content-Range: ");
        content_range.write_value(|piece| out.extend_from_slice(piece));
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    let body = match method {
        FileMethod::Get => Some(body),
        FileMethod::Head => None,
    };
    Ok((payload.status, body))
}

/// The values of a version with no [`Rendered`] (one that is not kept),
/// if its head is the plain one: every validator sent, no encoding, a
/// Content-Type that is a valid header value.
fn straight_values(repr: &Representation) -> Option<Values> {
    let plain_type = repr
        .content_type
        .bytes()
        .all(|b| b == b'\t' || (32..127).contains(&b));
    if !plain_type || repr.content_encoding.is_some() {
        return None;
    }
    Values::of(
        repr.etag.as_ref()?,
        repr.last_modified?,
        repr.digest.as_ref()?,
    )
}

fn header_value(s: String) -> HeaderValue {
    HeaderValue::from_str(&s).expect("rendered from ASCII")
}

/// The `Date` value for `now`, formatted once per second per thread.
pub(crate) fn date_value(now: SystemTime) -> HeaderValue {
    thread_local! {
        static LAST: RefCell<Option<(u64, HeaderValue)>> = const { RefCell::new(None) };
    }
    let secs = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    LAST.with(|last| {
        let mut last = last.borrow_mut();
        match &*last {
            Some((s, v)) if *s == secs => v.clone(),
            _ => {
                let v = header_value(httpdate::fmt_http_date(now));
                *last = Some((secs, v.clone()));
                v
            }
        }
    })
}

/// Response-wide values.
#[derive(Debug, Clone)]
pub struct ResponseCtx {
    /// The clock reading this response is made at (sent as `Date`).
    pub now: SystemTime,
    /// The Cache-Control value.
    pub cache_control: HeaderValue,
    /// The multipart boundary to use, if it must be reproducible (quirks
    /// mode derives it from the seed); otherwise a fresh random one.
    pub boundary: Option<String>,
}

/// `Repr-Digest` (RFC 9530).
pub static REPR_DIGEST: HeaderName = HeaderName::from_static("repr-digest");

/// `sha-256=:BASE64:`, the Repr-Digest value of a SHA-256 digest (RFC 9530 3).
pub fn repr_digest(digest: &Digest) -> String {
    format!(
        "sha-256=:{}:",
        base64::engine::general_purpose::STANDARD.encode(digest)
    )
}

/// Render `plan` for `method`.
pub fn render(
    plan: &ResponsePlan,
    method: FileMethod,
    repr: Representation,
    ctx: &ResponseCtx,
) -> Response<Body> {
    let pre = repr.rendered.as_deref();
    let with_body = matches!(
        plan,
        ResponsePlan::Full { .. } | ResponsePlan::Partial(_) | ResponsePlan::Multipart(_)
    );
    // the warm path: this version's head, cloned (Date set, the rest added)
    if let Some(mut h) = pre
        .filter(|_| with_body)
        .and_then(|r| r.head_for(&repr, &ctx.cache_control))
    {
        h.insert(DATE, date_value(ctx.now));
        return with_payload(plan, method, repr, ctx, h, None);
    }
    // One map sized for the whole header set, filled in place: cheaper on
    // the warm path than `Response::builder()`, which re-validates and moves
    // its parts on every `.header()`.
    let mut h = HeaderMap::with_capacity(12);
    h.insert(DATE, date_value(ctx.now));
    if let Some(tag) = &repr.etag {
        h.insert(
            ETAG,
            match pre.filter(|r| r.etag == *tag) {
                Some(r) => r.etag_value.clone(),
                None => header_value(tag.to_string()),
            },
        );
    }
    if let Some(lm) = repr.last_modified {
        h.insert(
            LAST_MODIFIED,
            match pre.filter(|r| r.last_modified == lm) {
                Some(r) => r.last_modified_value.clone(),
                None => header_value(httpdate::fmt_http_date(lm)),
            },
        );
    }
    h.insert(CACHE_CONTROL, ctx.cache_control.clone());
    match plan {
        ResponsePlan::NotModified => {
            return response(StatusCode::NOT_MODIFIED, h, Body::empty());
        }
        ResponsePlan::PreconditionFailed => {
            return text(h, StatusCode::PRECONDITION_FAILED, method);
        }
        _ => {}
    }
    if let Some(digest) = &repr.digest {
        h.insert(
            REPR_DIGEST.clone(),
            match pre.filter(|r| r.digest == *digest) {
                Some(r) => r.digest_value.clone(),
                None => header_value(repr_digest(digest)),
            },
        );
    }
    h.insert(ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    let content_type = match pre.filter(|r| *r.content_type == *repr.content_type) {
        Some(Rendered {
            content_type_value: Some(v),
            ..
        }) => v.clone(),
        _ => match HeaderValue::from_str(&repr.content_type) {
            Ok(v) => v,
            Err(_) => HeaderValue::from_static("application/octet-stream"),
        },
    };
    if let Some(enc) = repr.content_encoding {
        h.insert(CONTENT_ENCODING, HeaderValue::from_static(enc));
    }
    with_payload(plan, method, repr, ctx, h, Some(content_type))
}

/// The rest of a response with a payload (200, 206, 416) whose head `h`
/// holds everything up to Content-Type, which is `content_type` if not
/// already in `h`.
fn with_payload(
    plan: &ResponsePlan,
    method: FileMethod,
    repr: Representation,
    ctx: &ResponseCtx,
    mut h: HeaderMap,
    content_type: Option<HeaderValue>,
) -> Response<Body> {
    let Some(payload) = payload(plan, &repr, ctx) else {
        match plan {
            ResponsePlan::Unsatisfiable => {
                let content_range = ContentRange::Unsatisfied {
                    length: repr.length,
                };
                h.insert(CONTENT_RANGE, header_value(content_range.value()));
                return text(h, StatusCode::RANGE_NOT_SATISFIABLE, method);
            }
            _ => unreachable!("answered without a payload"),
        }
    };
    match payload.multipart_type {
        Some(t) => {
            h.insert(CONTENT_TYPE, header_value(t));
        }
        None => {
            if let Some(v) = content_type {
                h.insert(CONTENT_TYPE, v);
            }
        }
    }
    if let Some(content_range) = payload.content_range {
        h.insert(CONTENT_RANGE, header_value(content_range.value()));
    }
    let (len, body) = match repr.source {
        // an object's bytes come from pinned store reads, not a descriptor
        Source::Object(src) => {
            let body = ObjectBody::new(src, payload.segments);
            (body.len(), Body::new(body))
        }
        source => {
            let body = FileBody::new(source, payload.segments);
            (body.len(), Body::new(body))
        }
    };
    h.insert(CONTENT_LENGTH, HeaderValue::from(len));
    response(payload.status, h, head_or(method, body))
}

/// What a 200 or 206 sends besides the version's head: its status, the
/// body's segments, and the one header that differs by plan (Content-Range
/// of a single range, or the multipart Content-Type). `None` for other plans.
fn payload(plan: &ResponsePlan, repr: &Representation, ctx: &ResponseCtx) -> Option<Payload> {
    let length = repr.length;
    Some(match plan {
        ResponsePlan::Full { .. } => Payload {
            status: StatusCode::OK,
            segments: match length {
                0 => Segments::default(),
                _ => Segments::one(Segment::Slice(ByteRange {
                    start: 0,
                    end: length - 1,
                })),
            },
            content_range: None,
            multipart_type: None,
        },
        ResponsePlan::Partial(range) => Payload {
            status: StatusCode::PARTIAL_CONTENT,
            segments: Segments::one(Segment::Slice(*range)),
            content_range: Some(ContentRange::Bytes {
                range: *range,
                length,
            }),
            multipart_type: None,
        },
        ResponsePlan::Multipart(ranges) => {
            let boundary = ctx.boundary.clone().unwrap_or_else(new_boundary);
            let mp = multipart::plan(&boundary, &repr.content_type, ranges, length);
            Payload {
                status: StatusCode::PARTIAL_CONTENT,
                segments: mp.segments.into(),
                content_range: None,
                multipart_type: Some(mp.content_type),
            }
        }
        _ => return None,
    })
}

/// See [`payload`].
struct Payload {
    status: StatusCode,
    segments: Segments,
    content_range: Option<ContentRange>,
    multipart_type: Option<String>,
}

fn response(status: StatusCode, headers: HeaderMap, body: Body) -> Response<Body> {
    let mut res = Response::new(body);
    *res.status_mut() = status;
    *res.headers_mut() = headers;
    res
}

/// A short plain-text answer: the status code and reason.
fn text(mut h: HeaderMap, status: StatusCode, method: FileMethod) -> Response<Body> {
    let msg = status_text(status);
    h.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    h.insert(CONTENT_LENGTH, HeaderValue::from(msg.len()));
    response(status, h, head_or(method, Body::from(msg)))
}

/// HEAD sends no body; the headers stay those of the GET.
fn head_or(method: FileMethod, body: Body) -> Body {
    match method {
        FileMethod::Get => body,
        FileMethod::Head => Body::empty(),
    }
}

/// A fresh multipart boundary: 32 hex digits from a per-process random key
/// and a counter, so it differs on every response and cannot be predicted.
pub fn new_boundary() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut out = String::with_capacity(32);
    for salt in 0..2u64 {
        let mut h = RandomState::new().build_hasher();
        h.write_u64(n);
        h.write_u64(salt);
        let bits = h.finish();
        // 16 hex digits, most significant first (no `format!` per response)
        const HEX: &[u8; 16] = b"0123456789abcdef";
        for i in (0..16).rev() {
            out.push(char::from(HEX[((bits >> (i * 4)) & 0xf) as usize]));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::h1::{encode_head, BodyLen};
    use bytes::Bytes;
    use http_body_util::BodyExt as _;

    /// A boundary is 32 lowercase hex digits (a valid RFC 2046 boundary
    /// that cannot occur by chance), fresh for each response.
    #[test]
    fn boundaries_are_32_hex_digits_and_fresh() {
        let seen: std::collections::HashSet<String> = (0..1000)
            .map(|_| {
                let b = new_boundary();
                assert_eq!(b.len(), 32, "{b}");
                assert!(
                    b.bytes()
                        .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c)),
                    "{b}"
                );
                b
            })
            .collect();
        assert_eq!(seen.len(), 1000);
    }

    fn repr(bytes: &'static [u8], rendered: &Arc<Rendered>) -> Representation {
        Representation {
            source: Source::Memory(Bytes::from_static(bytes)),
            length: bytes.len() as u64,
            content_type: "text/plain".into(),
            content_encoding: None,
            etag: Some(rendered.etag().clone()),
            last_modified: Some(rendered.last_modified),
            digest: Some(rendered.digest),
            rendered: Some(Arc::clone(rendered)),
        }
    }

    /// What hyper would be given for `plan`, framed by `crate::h1`.
    async fn via_map(
        plan: &ResponsePlan,
        method: FileMethod,
        r: Representation,
        ctx: &ResponseCtx,
    ) -> Vec<u8> {
        let res = render(plan, method, r, ctx);
        let (parts, body) = res.into_parts();
        let len = match http_body::Body::is_end_stream(&body) {
            true => BodyLen::Empty,
            false => BodyLen::Known(http_body::Body::size_hint(&body).exact().unwrap()),
        };
        let mut out = Vec::new();
        let head_only = method == FileMethod::Head;
        encode_head(&parts, head_only, len, &date_value(ctx.now), &mut out);
        out.extend(body.collect().await.unwrap().to_bytes());
        out
    }

    #[test]
    fn rendered_values_are_the_values_rendered_one_by_one() {
        // each value is a slice of one buffer: each must be exactly its own
        let digest: Digest = std::array::from_fn(|i| (i * 37) as u8);
        let lm = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_123);
        for ct in [
            "text/plain",
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
            "",
        ] {
            let r = Rendered::new(digest, ct.into(), lm);
            let tag = EntityTag::from_sha256(&digest);
            assert_eq!(r.etag_value, tag.to_string().as_str());
            assert_eq!(r.etag, tag);
            assert_eq!(r.digest_value, repr_digest(&digest).as_str());
            assert_eq!(r.last_modified_value, httpdate::fmt_http_date(lm).as_str());
            assert_eq!(
                r.content_type_value.as_ref().map(|v| v.as_bytes()),
                Some(ct.as_bytes())
            );
            assert_eq!(&*r.content_type, ct);
        }
        // a value no header may carry is not rendered (render falls back)
        let r = Rendered::new(digest, "text/plain\r\nX: y".into(), lm);
        assert!(r.content_type_value.is_none());
    }

    fn other_cc(ctx: &ResponseCtx) -> ResponseCtx {
        ResponseCtx {
            cache_control: HeaderValue::from_static("max-age=60"),
            ..ctx.clone()
        }
    }

    #[tokio::test]
    async fn the_wire_head_is_the_maps_head() {
        const BYTES: &[u8] = b"0123456789abcdef";
        let digest = [7u8; 32];
        let lm = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000);
        let rendered = Arc::new(Rendered::new(digest, "text/plain".into(), lm));
        let ctx = ResponseCtx {
            now: SystemTime::now(),
            cache_control: HeaderValue::from_static("no-cache"),
            // fixed, so that both answers can be compared byte for byte
            boundary: Some("0123456789abcdef0123456789abcdef".into()),
        };
        // RFC 9110 15.3.1 (200), 15.3.7 and 14.6 (206), 15.4.5 (304); HEAD: 9.3.2
        let plans = [
            ResponsePlan::Full { ignored: None },
            ResponsePlan::Partial(ByteRange { start: 3, end: 9 }),
            ResponsePlan::Partial(ByteRange { start: 15, end: 15 }),
            ResponsePlan::Multipart(vec![
                ByteRange { start: 0, end: 0 },
                ByteRange { start: 15, end: 15 },
                ByteRange { start: 4, end: 7 },
            ]),
            ResponsePlan::NotModified,
        ];
        for plan in &plans {
            for method in [FileMethod::Get, FileMethod::Head] {
                let mut wired = Vec::new();
                let (status, body) = wire(plan, method, repr(BYTES, &rendered), &ctx, &mut wired)
                    .unwrap_or_else(|_| panic!("{plan:?} has a wire head"));
                // the status it reports is the one it wrote
                let line = format!("HTTP/1.1 {} ", status.as_u16());
                assert!(wired.starts_with(line.as_bytes()), "{plan:?} {status}");
                if let Some(body) = body {
                    wired.extend(body.collect().await.unwrap().to_bytes());
                }
                let mapped = via_map(plan, method, repr(BYTES, &rendered), &ctx).await;
                assert_eq!(
                    String::from_utf8_lossy(&wired),
                    String::from_utf8_lossy(&mapped),
                    "{plan:?} {method:?}"
                );
                // a version not kept has no rendered values: its head is
                // written straight from its values, the same bytes (and
                // whatever the Cache-Control); a 304 is left to render
                for ctx in [&ctx, &other_cc(&ctx)] {
                    // (values rendered afresh for the other Cache-Control)
                    let rendered = match ctx.cache_control == "no-cache" {
                        true => Arc::clone(&rendered),
                        false => Arc::new(Rendered::new(digest, "text/plain".into(), lm)),
                    };
                    let mut passing = repr(BYTES, &rendered);
                    passing.rendered = None;
                    let mut straight = Vec::new();
                    let wrote = wire(plan, method, passing, ctx, &mut straight);
                    if matches!(plan, ResponsePlan::NotModified) {
                        assert!(wrote.is_err() && straight.is_empty());
                        continue;
                    }
                    let (_, body) =
                        wrote.unwrap_or_else(|_| panic!("{plan:?} is written straight"));
                    if let Some(body) = body {
                        straight.extend(body.collect().await.unwrap().to_bytes());
                    }
                    let mapped = via_map(plan, method, repr(BYTES, &rendered), ctx).await;
                    assert_eq!(
                        String::from_utf8_lossy(&straight),
                        String::from_utf8_lossy(&mapped),
                        "{plan:?} {method:?} straight"
                    );
                }
            }
        }
        // without a validator, with an encoding or a type no header may
        // carry, a head is not written straight either
        let full = ResponsePlan::Full { ignored: None };
        let bends: [fn(&mut Representation); 4] = [
            |r| r.etag = None,
            |r| r.last_modified = None,
            |r| r.content_encoding = Some("gzip"),
            |r| r.content_type = "text/plain\r\nX: y".into(),
        ];
        for bend in bends {
            let mut passing = repr(BYTES, &rendered);
            passing.rendered = None;
            bend(&mut passing);
            let mut out = Vec::new();
            assert!(wire(&full, FileMethod::Get, passing, &ctx, &mut out).is_err());
            assert!(out.is_empty());
        }
        // what it does not write, render does
        for plan in [
            ResponsePlan::PreconditionFailed,
            ResponsePlan::Unsatisfiable,
        ] {
            let mut out = Vec::new();
            assert!(wire(
                &plan,
                FileMethod::Get,
                repr(BYTES, &rendered),
                &ctx,
                &mut out
            )
            .is_err());
            assert!(out.is_empty());
        }
        // a value a quirk bent is not this version's: no ready head
        let mut bent = repr(BYTES, &rendered);
        bent.etag = None;
        let mut out = Vec::new();
        assert!(wire(&full, FileMethod::Get, bent, &ctx, &mut out).is_err());
        let other = other_cc(&ctx);
        assert!(wire(
            &full,
            FileMethod::Get,
            repr(BYTES, &rendered),
            &other,
            &mut out
        )
        .is_err());
    }
}
