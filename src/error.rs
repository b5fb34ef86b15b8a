//! Errors that end a request before a file response, and the one place that
//! maps them to HTTP. Bodies are short fixed texts: no I/O error text and no
//! hint of what exists on disk reaches a client. (Quirk errors name quirks,
//! which is their point.)

use axum::http::header::{HeaderValue, ALLOW, CONTENT_TYPE, RETRY_AFTER};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::origin::OriginError;
use crate::quirks::transform::QuirkFailure;
use crate::quirks::QuirkError;

/// Methods the server supports, as sent in `Allow`.
pub const ALLOWED_METHODS: &str = "GET, HEAD, OPTIONS";

/// A request that gets an error status instead of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HttpError {
    /// Nothing servable at this path (also: refused paths, with no hint why).
    #[error("not found")]
    NotFound,
    /// A method other than GET, HEAD or OPTIONS.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// The server failed (an I/O error other than not-found, a panic).
    #[error("internal error")]
    Internal,
    /// The file kept changing while we tried to hash it; try again shortly.
    #[error("file is changing")]
    Changing,
    /// The object store refused us access (logged; no detail to the client).
    #[error("forbidden")]
    Forbidden,
    /// The object store is unreachable or throttling; try again shortly.
    #[error("storage unavailable")]
    Unavailable,
}

impl HttpError {
    /// The status this error is answered with.
    pub fn status(self) -> StatusCode {
        match self {
            HttpError::NotFound => StatusCode::NOT_FOUND,
            HttpError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            HttpError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            HttpError::Changing => StatusCode::SERVICE_UNAVAILABLE,
            HttpError::Forbidden => StatusCode::FORBIDDEN,
            HttpError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The answer to a store error: missing 404, denied 403, replaced
    /// while being read (again and again) or unreachable/throttling 503.
    pub fn from_origin(e: &OriginError) -> HttpError {
        match e {
            OriginError::NotFound => HttpError::NotFound,
            OriginError::Denied(_) => HttpError::Forbidden,
            OriginError::Changed(_) => HttpError::Changing,
            OriginError::Unavailable(_) => HttpError::Unavailable,
        }
    }
}

/// Seconds a client is asked to wait when the store is unavailable: a
/// throttling store needs a moment, not an immediate retry.
pub const STORE_RETRY_AFTER: &str = "5";

/// The body of every plain-text status answer: `CODE Reason` and a newline.
pub fn status_text(status: StatusCode) -> String {
    format!(
        "{} {}\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or("")
    )
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        let status = self.status();
        let body = status_text(status);
        let mut res = (status, [(CONTENT_TYPE, "text/plain; charset=utf-8")], body).into_response();
        let headers = res.headers_mut();
        match self {
            HttpError::MethodNotAllowed => {
                headers.insert(ALLOW, HeaderValue::from_static(ALLOWED_METHODS));
            }
            HttpError::Changing => {
                headers.insert(RETRY_AFTER, HeaderValue::from_static("1"));
            }
            HttpError::Unavailable => {
                headers.insert(RETRY_AFTER, HeaderValue::from_static(STORE_RETRY_AFTER));
            }
            _ => {}
        }
        res
    }
}

/// A per-request quirk spec that does not parse: 400, listing the valid names.
impl IntoResponse for QuirkError {
    fn into_response(self) -> Response {
        let body = format!("{}{self}\n", status_text(StatusCode::BAD_REQUEST));
        (
            StatusCode::BAD_REQUEST,
            [(CONTENT_TYPE, "text/plain; charset=utf-8")],
            body,
        )
            .into_response()
    }
}

/// A quirk that could not be applied (e.g. encoded-range on a huge file): 503.
impl IntoResponse for QuirkFailure {
    fn into_response(self) -> Response {
        let body = format!(
            "{}quirk failed: {self}\n",
            status_text(StatusCode::SERVICE_UNAVAILABLE)
        );
        (
            StatusCode::SERVICE_UNAVAILABLE,
            [(CONTENT_TYPE, "text/plain; charset=utf-8")],
            body,
        )
            .into_response()
    }
}
