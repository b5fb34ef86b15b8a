//! Request glue: method -> path -> resolve -> hash -> plan -> render. No HTTP
//! rules live here; they are in [`crate::rfc`] and [`crate::plan`].

use std::ffi::OsString;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::header::{
    HeaderName, HeaderValue, ALLOW, CONTENT_LENGTH, CONTENT_TYPE, IF_MATCH, IF_MODIFIED_SINCE,
    IF_NONE_MATCH, IF_RANGE, IF_UNMODIFIED_SINCE, LOCATION, RANGE,
};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::config::Config;
use crate::error::{HttpError, ALLOWED_METHODS};
use crate::fs::{decode_path, OpenFile, RequestPath, Resolved, Root};
use crate::hashcache::{HashCache, HashError};
use crate::listing;
use crate::plan::{self, FileMethod, RangeHeader, RequestFacts, ResponsePlan};
use crate::render::{self, FileResponse};
use crate::rfc::conditional::{Conditions, Validators};

/// How many times a file that changes while being hashed is re-opened and re-hashed.
const HASH_ATTEMPTS: usize = 3;

/// Shared state of one server.
pub struct App {
    /// The served directory.
    pub root: Root,
    /// Options.
    pub config: Config,
    /// Cache-Control, validated.
    pub cache_control: HeaderValue,
    /// Content hashes.
    pub hashes: Arc<HashCache>,
}

/// Serve any request (the router's only handler).
pub async fn handle(State(app): State<Arc<App>>, req: Request) -> Response {
    let method = match *req.method() {
        Method::GET => FileMethod::Get,
        Method::HEAD => FileMethod::Head,
        Method::OPTIONS => {
            return (StatusCode::NO_CONTENT, [(ALLOW, ALLOWED_METHODS)]).into_response();
        }
        _ => return HttpError::MethodNotAllowed.into_response(),
    };
    let raw_path = req.uri().path();
    let path = match decode_path(raw_path) {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!(path = raw_path, reason = %e, "refused path");
            return HttpError::NotFound.into_response();
        }
    };
    match resolve(&app, path.clone()).await {
        Ok(Resolved::File(_)) if path.trailing_slash => HttpError::NotFound.into_response(),
        Ok(Resolved::File(file)) => serve_file(&app, path, file, method, req.headers()).await,
        Ok(Resolved::Dir(_)) if !path.trailing_slash => {
            // The directory's URL ends with '/'. The Location is rebuilt from the
            // decoded segments: echoing the raw path would turn `//host` into a
            // protocol-relative redirect to another site.
            let mut location = String::new();
            for seg in &path.segments {
                location.push('/');
                location.push_str(&listing::encode_link(seg));
            }
            location.push('/');
            if let Some(q) = req.uri().query() {
                location.push('?');
                location.push_str(q);
            }
            (StatusCode::MOVED_PERMANENTLY, [(LOCATION, location)]).into_response()
        }
        Ok(Resolved::Dir(dir)) => serve_dir(&app, path, dir, method, req.headers()).await,
        Ok(Resolved::NotFound) => HttpError::NotFound.into_response(),
        Err(e) => e.into_response(),
    }
}

async fn resolve(app: &Arc<App>, path: RequestPath) -> Result<Resolved, HttpError> {
    let app = Arc::clone(app);
    tokio::task::spawn_blocking(move || app.root.resolve(&path))
        .await
        .map_err(|_| HttpError::Internal)
}

async fn serve_dir(
    app: &Arc<App>,
    mut path: RequestPath,
    dir: std::path::PathBuf,
    method: FileMethod,
    headers: &HeaderMap,
) -> Response {
    let url_path = display_path(&path);
    path.segments.push(OsString::from("index.html"));
    path.trailing_slash = false;
    if let Ok(Resolved::File(index)) = resolve(app, path.clone()).await {
        return serve_file(app, path, index, method, headers).await;
    }
    if !app.config.listing {
        return HttpError::NotFound.into_response();
    }
    let root = app.root.path().to_path_buf();
    let entries =
        match tokio::task::spawn_blocking(move || listing::read_entries(&dir, &root)).await {
            Ok(Ok(entries)) => entries,
            Ok(Err(e)) => {
                tracing::warn!(dir = url_path, error = %e, "cannot list directory");
                return HttpError::NotFound.into_response();
            }
            Err(_) => return HttpError::Internal.into_response(),
        };
    let html = listing::render(&url_path, &entries);
    let len = html.len();
    let body = match method {
        FileMethod::Get => Body::from(html),
        FileMethod::Head => Body::empty(),
    };
    (
        [
            (CONTENT_TYPE, "text/html; charset=utf-8".to_string()),
            (CONTENT_LENGTH, len.to_string()),
        ],
        body,
    )
        .into_response()
}

/// The decoded URL path of a directory, for display.
fn display_path(path: &RequestPath) -> String {
    let mut s = String::from("/");
    for seg in &path.segments {
        s.push_str(&seg.to_string_lossy());
        s.push('/');
    }
    s
}

/// Hash (or look up) `file`, then plan and render its response. A file that
/// changes while being hashed is re-opened and hashed again, a few times.
async fn serve_file(
    app: &Arc<App>,
    path: RequestPath,
    mut file: OpenFile,
    method: FileMethod,
    headers: &HeaderMap,
) -> Response {
    let mut attempt = 1;
    let digest = loop {
        match app.hashes.digest(&file.path, &file.file, file.stamp).await {
            Ok(d) => break d,
            Err(HashError::Changed) if attempt < HASH_ATTEMPTS => {
                attempt += 1;
                match resolve(app, path.clone()).await {
                    Ok(Resolved::File(f)) => file = f,
                    _ => return HttpError::NotFound.into_response(),
                }
            }
            Err(HashError::Changed) => {
                tracing::warn!(path = %file.path.display(), "file keeps changing; answering 503");
                return HttpError::Changing.into_response();
            }
            Err(HashError::Io(e)) => {
                tracing::error!(path = %file.path.display(), error = %e, "cannot hash file");
                return HttpError::Internal.into_response();
            }
        }
    };
    let now = SystemTime::now();
    let res = FileResponse {
        content_type: content_type(&file.path),
        file,
        now,
        digest,
        cache_control: app.cache_control.clone(),
    };
    let etag = res.etag();
    let validators = Validators {
        etag: Some(&etag),
        last_modified: Some(whole_seconds(res.last_modified())),
        date: now,
    };
    let facts = RequestFacts {
        method,
        range: range_header(headers),
        conditions: conditions(headers),
    };
    let plan = plan::decide(
        &facts,
        res.file.stamp.size,
        &validators,
        app.config.max_ranges,
    );
    if let ResponsePlan::Full { ignored: Some(why) } = &plan {
        if why.is_client_error() {
            tracing::warn!(path = %res.file.path.display(), reason = ?why, "ignoring Range header");
        }
    }
    render::render(&plan, method, res)
}

fn content_type(path: &std::path::Path) -> String {
    mime_guess::from_path(path)
        .first_or_octet_stream()
        .essence_str()
        .to_string()
}

fn whole_seconds(t: SystemTime) -> SystemTime {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs();
    UNIX_EPOCH + Duration::from_secs(secs)
}

fn range_header(headers: &HeaderMap) -> RangeHeader<'_> {
    match single(headers, &RANGE) {
        Single::Absent => RangeHeader::Absent,
        Single::Value(v) => RangeHeader::Value(v),
        Single::Invalid => RangeHeader::Unreadable,
    }
}

enum Single<'a> {
    Absent,
    Value(&'a str),
    Invalid,
}

/// A header that must occur at most once, with a visible-ASCII value.
fn single<'a>(headers: &'a HeaderMap, name: &HeaderName) -> Single<'a> {
    let mut values = headers.get_all(name).iter();
    match (values.next(), values.next()) {
        (None, _) => Single::Absent,
        (Some(v), None) => v.to_str().map_or(Single::Invalid, Single::Value),
        (Some(_), Some(_)) => Single::Invalid,
    }
}

/// The conditional headers. A repeated or non-ASCII value becomes one that
/// never parses: a malformed list never matches and a bad date is ignored.
fn conditions(headers: &HeaderMap) -> Conditions<'_> {
    let get = |name: &HeaderName| match single(headers, name) {
        Single::Absent => None,
        Single::Value(v) => Some(v),
        Single::Invalid => Some("\u{0}invalid"),
    };
    Conditions {
        if_match: get(&IF_MATCH),
        if_none_match: get(&IF_NONE_MATCH),
        if_modified_since: get(&IF_MODIFIED_SINCE),
        if_unmodified_since: get(&IF_UNMODIFIED_SINCE),
        if_range: get(&IF_RANGE),
    }
}
