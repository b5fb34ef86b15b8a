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
use crate::rfc::multipart::{self, Segment};
use crate::rfc::range::{ByteRange, ContentRange};

/// The selected representation: its bytes and the metadata sent about them.
#[derive(Debug, Clone)]
pub struct Representation {
    /// Where the bytes come from.
    pub source: Source,
    /// Length in bytes.
    pub length: u64,
    /// Media type.
    pub content_type: String,
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
    content_type: String,
    content_type_value: Option<HeaderValue>,
    last_modified: SystemTime,
    last_modified_value: HeaderValue,
    /// The head of a 200 or 206 about this version, in wire order (Date and
    /// Content-Length placeholders), made on first use with the server's Cache-Control:
    /// cloned per response, which is cheaper than inserting each header
    /// into a fresh map.
    head: OnceLock<(HeaderValue, HeaderMap)>,
}

impl Rendered {
    /// The strong entity-tag these values were rendered for.
    pub fn etag(&self) -> &EntityTag {
        &self.etag
    }

    /// The values for a version with these validators and media type.
    pub fn new(digest: Digest, content_type: &str, last_modified: SystemTime) -> Self {
        let etag = EntityTag::from_sha256(&digest);
        Rendered {
            etag_value: header_value(etag.to_string()),
            digest_value: header_value(repr_digest(&digest)),
            content_type_value: HeaderValue::from_str(content_type).ok(),
            last_modified_value: header_value(httpdate::fmt_http_date(last_modified)),
            etag,
            digest,
            content_type: content_type.to_string(),
            last_modified,
            head: OnceLock::new(),
        }
    }

    /// The head of a 200 or 206 for `repr` (sent with `cache_control`), if
    /// every value in it is this version's as rendered: a quirk that bends
    /// one gets the map built header by header instead.
    fn head_for(&self, repr: &Representation, cache_control: &HeaderValue) -> Option<HeaderMap> {
        let content_type = self.content_type_value.as_ref()?;
        let same = repr.etag.as_ref() == Some(&self.etag)
            && repr.last_modified == Some(self.last_modified)
            && repr.digest == Some(self.digest)
            && repr.content_type == self.content_type
            && repr.content_encoding.is_none();
        if !same {
            return None;
        }
        let (cc, head) = self.head.get_or_init(|| {
            let mut h = HeaderMap::with_capacity(12);
            h.insert(DATE, HeaderValue::from_static("-"));
            h.insert(ETAG, self.etag_value.clone());
            h.insert(LAST_MODIFIED, self.last_modified_value.clone());
            h.insert(CACHE_CONTROL, cache_control.clone());
            h.insert(REPR_DIGEST.clone(), self.digest_value.clone());
            h.insert(ACCEPT_RANGES, HeaderValue::from_static("bytes"));
            h.insert(CONTENT_TYPE, content_type.clone());
            // a placeholder too: a clone has no room to grow into
            h.insert(CONTENT_LENGTH, HeaderValue::from_static("0"));
            (cache_control.clone(), h)
        });
        (cc == cache_control).then(|| head.clone())
    }
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
    let content_type = match pre.filter(|r| r.content_type == repr.content_type) {
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
    let length = repr.length;
    let body_plan = match plan {
        ResponsePlan::Full { .. } => BodyPlan::Whole,
        ResponsePlan::Partial(range) => BodyPlan::Single(*range),
        ResponsePlan::Multipart(ranges) => BodyPlan::Multi(ranges),
        ResponsePlan::Unsatisfiable => BodyPlan::Unsatisfiable,
        ResponsePlan::NotModified | ResponsePlan::PreconditionFailed => {
            unreachable!("answered without a payload")
        }
    };
    let set_type = |h: &mut HeaderMap| {
        if let Some(v) = content_type.clone() {
            h.insert(CONTENT_TYPE, v);
        }
    };
    let (status, segments) = match body_plan {
        BodyPlan::Whole => {
            set_type(&mut h);
            let whole = ByteRange {
                start: 0,
                end: length.saturating_sub(1),
            };
            let segs = if length == 0 {
                vec![]
            } else {
                vec![Segment::Slice(whole)]
            };
            (StatusCode::OK, segs)
        }
        BodyPlan::Single(range) => {
            let content_range = ContentRange::Bytes { range, length };
            set_type(&mut h);
            h.insert(CONTENT_RANGE, header_value(content_range.value()));
            (StatusCode::PARTIAL_CONTENT, vec![Segment::Slice(range)])
        }
        BodyPlan::Multi(ranges) => {
            let boundary = ctx.boundary.clone().unwrap_or_else(new_boundary);
            let mp = multipart::plan(&boundary, &repr.content_type, ranges, length);
            h.insert(CONTENT_TYPE, header_value(mp.content_type));
            (StatusCode::PARTIAL_CONTENT, mp.segments)
        }
        BodyPlan::Unsatisfiable => {
            let content_range = ContentRange::Unsatisfied { length };
            h.insert(CONTENT_RANGE, header_value(content_range.value()));
            return text(h, StatusCode::RANGE_NOT_SATISFIABLE, method);
        }
    };
    let (len, body) = match repr.source {
        // an object's bytes come from pinned store reads, not a descriptor
        Source::Object(src) => {
            let body = ObjectBody::new(src, segments);
            (body.len(), Body::new(body))
        }
        source => {
            let body = FileBody::new(source, segments);
            (body.len(), Body::new(body))
        }
    };
    h.insert(CONTENT_LENGTH, HeaderValue::from(len));
    response(status, h, head_or(method, body))
}

fn response(status: StatusCode, headers: HeaderMap, body: Body) -> Response<Body> {
    let mut res = Response::new(body);
    *res.status_mut() = status;
    *res.headers_mut() = headers;
    res
}

/// What the body of a 200/206/416 holds.
enum BodyPlan<'a> {
    Whole,
    Single(ByteRange),
    Multi(&'a [ByteRange]),
    Unsatisfiable,
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
        out.push_str(&format!("{:016x}", h.finish()));
    }
    out
}
