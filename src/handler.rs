//! Request glue: method -> path -> resolve -> plan -> render. No HTTP rules
//! live here; they are in [`crate::rfc`] and [`crate::plan`].

use std::ffi::OsString;
use std::sync::Arc;
use std::time::SystemTime;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::header::{ALLOW, CONTENT_LENGTH, CONTENT_TYPE, LOCATION, RANGE};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::config::Config;
use crate::error::{HttpError, ALLOWED_METHODS};
use crate::fs::{decode_path, OpenFile, RequestPath, Resolved, Root};
use crate::listing;
use crate::plan::{self, FileMethod, RangeHeader, RequestFacts, ResponsePlan};
use crate::render::{self, FileResponse};

/// Shared state of one server.
#[derive(Debug)]
pub struct App {
    /// The served directory.
    pub root: Root,
    /// Options.
    pub config: Config,
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
        Ok(Resolved::File(file)) => serve_file(&app, file, method, req.headers()),
        Ok(Resolved::Dir(_)) if !path.trailing_slash => {
            // RFC 9110 15.4.2: the directory's URL ends with '/'; keep the query
            let location = match req.uri().query() {
                Some(q) => format!("{raw_path}/?{q}"),
                None => format!("{raw_path}/"),
            };
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
    if let Ok(Resolved::File(index)) = resolve(app, path).await {
        return serve_file(app, index, method, headers);
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

fn serve_file(app: &App, file: OpenFile, method: FileMethod, headers: &HeaderMap) -> Response {
    let facts = RequestFacts {
        method,
        range: range_header(headers),
    };
    let plan = plan::decide(&facts, file.stamp.size, app.config.max_ranges);
    if let ResponsePlan::Full { ignored: Some(why) } = &plan {
        if why.is_client_error() {
            tracing::warn!(path = %file.path.display(), reason = ?why, "ignoring Range header");
        }
    }
    let content_type = mime_guess::from_path(&file.path)
        .first_or_octet_stream()
        .essence_str()
        .to_string();
    let res = FileResponse {
        file,
        content_type,
        now: SystemTime::now(),
    };
    render::render(&plan, method, res)
}

fn range_header(headers: &HeaderMap) -> RangeHeader<'_> {
    let mut values = headers.get_all(RANGE).iter();
    match (values.next(), values.next()) {
        (None, _) => RangeHeader::Absent,
        (Some(v), None) => v
            .to_str()
            .map_or(RangeHeader::Unreadable, RangeHeader::Value),
        (Some(_), Some(_)) => RangeHeader::Unreadable,
    }
}
