//! The outer frame of every request: the message rules checked before any
//! file work (`Host`, target length), panic containment, and the access log
//! line written when the response body is finished or abandoned, so that it
//! can say how many bytes were sent and whether the connection was cut.

use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::header::{
    ACCESS_CONTROL_REQUEST_METHOD, ALLOW, CACHE_CONTROL, CONNECTION, CONTENT_LENGTH, CONTENT_TYPE,
    HOST, ORIGIN, RANGE,
};
use axum::http::{HeaderValue, Method, Request, Response, StatusCode, Uri, Version};
use axum::response::IntoResponse;
use bytes::Bytes;
use futures_util::FutureExt as _;
use http_body::{Frame, SizeHint};
use tower::BoxError;

use crate::config::{H2Cut, LogFormat};
use crate::conn::{Activity, InFlight};
use crate::cors::Cors;
use crate::error::status_text;
use crate::handler::{self, App, Clipped};
use crate::journal::{self, Journal, JournalEntry};
use crate::quirks::transport::Cut;
use crate::rfc::host;

/// What the frame knows of the connection a request came on.
#[derive(Debug, Clone)]
pub struct ConnInfo {
    /// The client's address.
    pub peer: SocketAddr,
    /// Requests in flight on the connection (for its idle limits).
    pub activity: Arc<Activity>,
}

/// Serve one request inside the frame.
pub async fn serve<B>(app: Arc<App>, conn: &ConnInfo, req: Request<B>) -> Response<LoggedBody> {
    let in_flight = conn.activity.start();
    let journal = app.journal.as_ref().and_then(|j| {
        let entry = j.begin(
            conn.peer,
            req.method(),
            req.uri(),
            req.version(),
            req.headers(),
        )?;
        Some((Arc::clone(j), entry))
    });
    let log = logging().then(|| {
        Box::new(Record {
            start: Instant::now(),
            method: req.method().clone(),
            target: req.uri().clone(),
            range: req
                .headers()
                .get(RANGE)
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned()),
            client: conn.peer,
            status: 0,
            format: app.config.log_format,
        })
    });
    let cors = &app.config.cors;
    let origin = match cors {
        Cors::Off => None,
        _ => req.headers().get(ORIGIN).map(|v| v.as_bytes().to_vec()),
    };
    let mut preflight = cors.preflight(
        req.method() == Method::OPTIONS,
        origin.as_deref(),
        req.headers()
            .get(ACCESS_CONTROL_REQUEST_METHOD)
            .map(|v| v.as_bytes()),
    );
    let is_preflight = preflight.is_some();
    let res = match refusal(&app, &req) {
        Some((status, reason)) => {
            tracing::warn!(
                target: "rangeserve::server",
                client = %conn.peer,
                path = %Clipped(&req.uri().to_string()),
                reason,
                "request refused with {}",
                status.as_u16()
            );
            let mut res = (
                status,
                [(CONTENT_TYPE, "text/plain; charset=utf-8")],
                status_text(status),
            )
                .into_response();
            // the message may be framed wrongly too: do not read another one
            // (HTTP/2 has no such header; its framing is the stream's)
            if req.version() < Version::HTTP_2 {
                res.headers_mut()
                    .insert(CONNECTION, HeaderValue::from_static("close"));
            }
            res
        }
        None if req.uri().path() == journal::ENDPOINT
            && app.journal.as_ref().is_some_and(|j| j.has_ring()) =>
        {
            journal_endpoint(&app, req.method())
        }
        None if is_preflight => {
            let mut res = StatusCode::NO_CONTENT.into_response();
            for (name, value) in preflight.take().unwrap_or_default() {
                res.headers_mut().append(name, value);
            }
            res
        }
        None => {
            let (method, target) = (req.method().clone(), req.uri().clone());
            match AssertUnwindSafe(handler::handle(Arc::clone(&app), req))
                .catch_unwind()
                .await
            {
                Ok(res) => res,
                Err(panic) => {
                    let what = panic
                        .downcast_ref::<&str>()
                        .map(|s| s.to_string())
                        .or_else(|| panic.downcast_ref::<String>().cloned())
                        .unwrap_or_default();
                    tracing::error!(
                        target: "rangeserve::server",
                        client = %conn.peer,
                        %method,
                        path = %Clipped(&target.to_string()),
                        panic = %Clipped(&what),
                        "handler panicked; answered 500"
                    );
                    crate::error::HttpError::Internal.into_response()
                }
            }
        }
    };
    let mut res = crate::quirks::transform::hide_head_length(res);
    if !matches!(cors, Cors::Off) && !is_preflight {
        for (name, value) in cors.response_headers(origin.as_deref()) {
            res.headers_mut().append(name, value);
        }
    }
    let (parts, body) = res.into_parts();
    let log = log.map(|mut r| {
        r.status = parts.status.as_u16();
        r
    });
    let journal = journal.map(|(j, mut entry)| {
        entry.status = parts.status.as_u16();
        if let Some(applied) = parts
            .headers
            .get(&crate::quirks::transform::RANGESERVE_QUIRKS)
        {
            entry.quirks = String::from_utf8_lossy(applied.as_bytes())
                .split(',')
                .filter(|q| !q.is_empty())
                .map(str::to_string)
                .collect();
        }
        (j, entry)
    });
    let done = http_body::Body::is_end_stream(&body);
    let watched = !done && conn.activity.is_multiplexed();
    if watched {
        conn.activity.body_open();
    }
    Response::from_parts(
        parts,
        LoggedBody {
            inner: body,
            sent: 0,
            done,
            log,
            watched: watched.then(|| Arc::clone(&conn.activity)),
            cut_connection: (app.config.h2_cut == H2Cut::Connection
                && conn.activity.is_multiplexed())
            .then(|| Arc::clone(&conn.activity)),
            journal,
            _in_flight: in_flight,
        },
    )
}

/// `GET` (or `HEAD`) the journal as JSON, or `DELETE` to clear it.
fn journal_endpoint(app: &App, method: &Method) -> Response<Body> {
    let Some(journal) = &app.journal else {
        return crate::error::HttpError::NotFound.into_response();
    };
    let json = [
        (CONTENT_TYPE, "application/json"),
        (CACHE_CONTROL, "no-store"),
    ];
    match *method {
        Method::GET => {
            let body = serde_json::to_vec(&journal.snapshot()).unwrap_or_default();
            (json, body).into_response()
        }
        Method::HEAD => {
            let len = serde_json::to_vec(&journal.snapshot()).map_or(0, |b| b.len());
            let mut res = (json, Body::empty()).into_response();
            res.headers_mut()
                .insert(CONTENT_LENGTH, HeaderValue::from(len));
            res
        }
        Method::DELETE => {
            journal.clear();
            StatusCode::NO_CONTENT.into_response()
        }
        _ => (
            StatusCode::METHOD_NOT_ALLOWED,
            [(ALLOW, "GET, HEAD, DELETE")],
            status_text(StatusCode::METHOD_NOT_ALLOWED),
        )
            .into_response(),
    }
}

/// Rules checked before any file work: a status and the reason to log.
fn refusal<B>(app: &App, req: &Request<B>) -> Option<(StatusCode, &'static str)> {
    // HTTP/2 carries the authority in its own pseudo-header (RFC 9113 8.3.1)
    if req.version() >= Version::HTTP_2 {
        return (target_len(req.uri()) > app.config.limits.max_uri_bytes)
            .then_some((StatusCode::URI_TOO_LONG, "request target too long"));
    }
    let hosts = req
        .headers()
        .get_all(HOST)
        .into_iter()
        .map(|v| v.as_bytes());
    refused_h1(
        app,
        req.version() >= Version::HTTP_11,
        hosts,
        target_len(req.uri()),
    )
}

/// [`refusal`] of an HTTP/1 request with these `Host` values and a target
/// of `target_len` bytes.
pub(crate) fn refused_h1<'a>(
    app: &App,
    http11: bool,
    hosts: impl Iterator<Item = &'a [u8]>,
    target_len: usize,
) -> Option<(StatusCode, &'static str)> {
    let mut first = [&b""[..]; 2];
    let mut n = 0;
    for v in hosts {
        if n < 2 {
            first[n] = v;
        }
        n += 1;
    }
    if let Err(e) = host::check(http11, &first[..n.min(2)]) {
        return Some((
            StatusCode::BAD_REQUEST,
            match e {
                host::HostError::Missing => "no Host header",
                host::HostError::Repeated => "more than one Host header",
                host::HostError::Invalid => "invalid Host value",
            },
        ));
    }
    if target_len > app.config.limits.max_uri_bytes {
        return Some((StatusCode::URI_TOO_LONG, "request target too long"));
    }
    None
}

/// Length of the request target as sent (origin or absolute form).
fn target_len(uri: &Uri) -> usize {
    let pq = uri.path_and_query().map_or(0, |p| p.as_str().len());
    let authority = uri.authority().map_or(0, |a| a.as_str().len());
    let scheme = uri.scheme_str().map_or(0, |s| s.len() + 3);
    pq + authority + scheme
}

/// Whether access lines are written (off with `-q`).
pub(crate) fn logging() -> bool {
    tracing::enabled!(target: "rangeserve::access", tracing::Level::INFO)
}

/// The access line of an answer that the HTTP/1.1 fast path wrote without
/// the frame ([`crate::h1`]): the line [`serve`] writes, with the body bytes
/// the answer gave and whether it was cut. It is written when this is
/// dropped, so an answer abandoned midway still gets its line.
pub(crate) struct ExpressLine {
    record: Record,
    /// Body bytes given so far.
    pub sent: u64,
    /// The whole answer was written.
    pub done: bool,
}

impl ExpressLine {
    /// The line of a `method` request for `target` (its first Range field
    /// `range`), begun at `start` and answered with `status`. `None` for a
    /// target the frame's `Uri` would not hold (never one the fast path
    /// answers: it took the same `http` parse).
    pub(crate) fn new(
        app: &App,
        conn: &ConnInfo,
        start: Instant,
        (method, target, range): (&Method, &str, Option<&[u8]>),
        status: StatusCode,
    ) -> Option<Self> {
        Some(ExpressLine {
            record: Record {
                start,
                method: method.clone(),
                target: Uri::try_from(target).ok()?,
                range: range.map(|v| String::from_utf8_lossy(v).into_owned()),
                client: conn.peer,
                status: status.as_u16(),
                format: app.config.log_format,
            },
            sent: 0,
            done: false,
        })
    }
}

impl Drop for ExpressLine {
    fn drop(&mut self) {
        self.record.write(self.sent, !self.done);
    }
}

/// What the access line says about one request.
struct Record {
    start: Instant,
    method: Method,
    target: Uri,
    range: Option<String>,
    client: SocketAddr,
    status: u16,
    format: LogFormat,
}

impl Record {
    fn write(&self, sent: u64, cut: bool) {
        let elapsed = self.start.elapsed();
        // as requested: HTTP/2 and absolute-form targets also carry an authority
        let path = self.target.path_and_query().map_or("/", |p| p.as_str());
        let path = Clipped(path);
        let range = self.range.as_deref().map(Clipped);
        match self.format {
            LogFormat::Text => tracing::info!(
                target: "rangeserve::access",
                "{} {} {path} {} range={} bytes={sent} {}{}",
                self.client,
                self.method,
                self.status,
                range.map_or_else(|| "-".to_string(), |r| r.to_string()),
                Millis(elapsed),
                if cut { " cut" } else { "" },
            ),
            LogFormat::Json => tracing::info!(
                target: "rangeserve::access",
                client = %self.client,
                method = %self.method,
                path = %path,
                range = range.map(tracing::field::display),
                status = self.status,
                bytes = sent,
                duration_ms = elapsed.as_secs_f64() * 1000.0,
                cut,
                "access"
            ),
        }
    }
}

/// A duration as milliseconds with three decimals.
struct Millis(Duration);

impl std::fmt::Display for Millis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:.3}ms", self.0.as_secs_f64() * 1000.0)
    }
}

/// A response body that counts what it hands to the connection, keeps its
/// request in flight, and writes the access line when finished or dropped
/// (dropped unfinished: the connection was cut or the body failed).
pub struct LoggedBody {
    inner: Body,
    sent: u64,
    done: bool,
    log: Option<Box<Record>>,
    /// HTTP/2: the connection watching this body's progress (send timeout).
    watched: Option<Arc<Activity>>,
    /// HTTP/2 with `--h2-cut connection`: the connection a quirk's cut closes.
    cut_connection: Option<Arc<Activity>>,
    /// The journal and this request's entry, finished when the body ends.
    journal: Option<(Arc<Journal>, Box<JournalEntry>)>,
    _in_flight: InFlight,
}

impl http_body::Body for LoggedBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        if let Some(activity) = &this.watched {
            activity.body_polled();
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.sent += data.len() as u64;
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(None) => {
                this.done = true;
                Poll::Ready(None)
            }
            Poll::Ready(Some(Err(e))) => {
                let e: BoxError = e.into();
                if let Some(activity) = &this.cut_connection {
                    if is_quirk_cut(&*e) {
                        activity.abort();
                    }
                }
                Poll::Ready(Some(Err(e)))
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Whether `e` (or what it wraps) is a quirk cutting the response.
fn is_quirk_cut(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if err.is::<Cut>() {
            return true;
        }
        cur = err.source();
    }
    false
}

impl Drop for LoggedBody {
    fn drop(&mut self) {
        if let Some(activity) = &self.watched {
            activity.body_done();
        }
        let cut = !self.done && !http_body::Body::is_end_stream(&self.inner);
        if let Some(log) = &self.log {
            log.write(self.sent, cut);
        }
        if let Some((journal, mut entry)) = self.journal.take() {
            entry.bytes_sent = self.sent;
            entry.aborted = cut;
            journal.push(*entry);
        }
    }
}
