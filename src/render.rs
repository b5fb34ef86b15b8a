//! The one place that turns a [`ResponsePlan`] into status, headers and body.
//!
//! Every file response gets the same header set here (Date, ETag,
//! Repr-Digest, Last-Modified, Cache-Control, Accept-Ranges, Content-Type,
//! Content-Length); HEAD gets exactly the headers of the matching GET and no
//! body; 304 gets the validators and Cache-Control only (RFC 9110 15.4.5).

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use axum::body::Body;
use axum::http::header::{
    HeaderName, HeaderValue, ACCEPT_RANGES, CACHE_CONTROL, CONTENT_LENGTH, CONTENT_RANGE,
    CONTENT_TYPE, DATE, ETAG, LAST_MODIFIED,
};
use axum::http::{Response, StatusCode};
use base64::Engine as _;

use crate::body::FileBody;
use crate::fs::OpenFile;
use crate::hashcache::Digest;
use crate::plan::{FileMethod, ResponsePlan};
use crate::rfc::etag::EntityTag;
use crate::rfc::multipart::{self, Segment};
use crate::rfc::range::{ByteRange, ContentRange};

/// Everything about the file that the response describes.
pub struct FileResponse {
    /// The open file.
    pub file: OpenFile,
    /// Its media type.
    pub content_type: String,
    /// The clock reading this response is made at (sent as `Date`).
    pub now: SystemTime,
    /// SHA-256 of the file's content.
    pub digest: Digest,
    /// The Cache-Control value.
    pub cache_control: HeaderValue,
}

/// `Repr-Digest` (RFC 9530).
pub static REPR_DIGEST: HeaderName = HeaderName::from_static("repr-digest");

impl FileResponse {
    /// Last-Modified: the file's mtime, never later than `Date` (RFC 9110 8.8.2.1).
    pub fn last_modified(&self) -> SystemTime {
        self.file.modified.min(self.now)
    }

    /// The strong, content-derived entity-tag.
    pub fn etag(&self) -> EntityTag {
        EntityTag::from_sha256(&self.digest)
    }
}

/// `sha-256=:BASE64:`, the Repr-Digest value of a SHA-256 digest (RFC 9530 3).
pub fn repr_digest(digest: &Digest) -> String {
    format!(
        "sha-256=:{}:",
        base64::engine::general_purpose::STANDARD.encode(digest)
    )
}

/// Render `plan` for `method`.
pub fn render(plan: &ResponsePlan, method: FileMethod, res: FileResponse) -> Response<Body> {
    let length = res.file.stamp.size;
    let mut builder = Response::builder()
        .header(DATE, httpdate::fmt_http_date(res.now))
        .header(ETAG, res.etag().to_string())
        .header(LAST_MODIFIED, httpdate::fmt_http_date(res.last_modified()))
        .header(CACHE_CONTROL, res.cache_control.clone());
    match plan {
        ResponsePlan::NotModified => {
            return builder
                .status(StatusCode::NOT_MODIFIED)
                .body(Body::empty())
                .expect("valid response parts");
        }
        ResponsePlan::PreconditionFailed => {
            return text(builder, StatusCode::PRECONDITION_FAILED, method, "");
        }
        _ => {}
    }
    builder = builder
        .header(&REPR_DIGEST, repr_digest(&res.digest))
        .header(ACCEPT_RANGES, "bytes");
    let whole = ByteRange {
        start: 0,
        end: length.saturating_sub(1),
    };
    let (status, segments): (StatusCode, Vec<Segment>) = match plan {
        ResponsePlan::NotModified | ResponsePlan::PreconditionFailed => {
            unreachable!("answered without a body above")
        }
        ResponsePlan::Full { .. } => {
            builder = builder.header(CONTENT_TYPE, &res.content_type);
            let segs = if length == 0 {
                vec![]
            } else {
                vec![Segment::Slice(whole)]
            };
            (StatusCode::OK, segs)
        }
        ResponsePlan::Partial(range) => {
            let content_range = ContentRange::Bytes {
                range: *range,
                length,
            };
            builder = builder
                .header(CONTENT_TYPE, &res.content_type)
                .header(CONTENT_RANGE, content_range.to_string());
            (StatusCode::PARTIAL_CONTENT, vec![Segment::Slice(*range)])
        }
        ResponsePlan::Multipart(ranges) => {
            let mp = multipart::plan(&new_boundary(), &res.content_type, ranges, length);
            builder = builder.header(CONTENT_TYPE, mp.content_type);
            (StatusCode::PARTIAL_CONTENT, mp.segments)
        }
        ResponsePlan::Unsatisfiable => {
            let content_range = ContentRange::Unsatisfied { length };
            let builder = builder.header(CONTENT_RANGE, content_range.to_string());
            return text(builder, StatusCode::RANGE_NOT_SATISFIABLE, method, "");
        }
    };
    let body = FileBody::new(res.file.file, res.file.path, res.file.stamp, segments);
    builder
        .status(status)
        .header(CONTENT_LENGTH, HeaderValue::from(body.len()))
        .body(head_or(method, Body::new(body)))
        .expect("valid response parts")
}

/// A short plain-text answer: the status line's text plus `detail`.
fn text(
    builder: axum::http::response::Builder,
    status: StatusCode,
    method: FileMethod,
    detail: &str,
) -> Response<Body> {
    let msg = format!(
        "{} {}\n{detail}",
        status.as_u16(),
        status.canonical_reason().unwrap_or("")
    );
    builder
        .status(status)
        .header(CONTENT_TYPE, "text/plain; charset=utf-8")
        .header(CONTENT_LENGTH, msg.len())
        .body(head_or(method, Body::from(msg)))
        .expect("valid response parts")
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
