//! Request glue for a server over an object store: request path -> object
//! key -> object state ([`super::state`]) -> the plan and render shared with
//! files (`handler::plan_for`, `handler::finish`). A "directory" is a key
//! prefix: its `index.html`, else a listing by delimiter rendered by the
//! `listing` module. Store errors are answered
//! through [`HttpError::from_origin`].

use std::ffi::OsString;
use std::ops::Range;
use std::sync::{Arc, PoisonError};
use std::time::SystemTime;

use axum::http::request::Parts;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};

use super::body::ObjectSource;
use super::state::{ObjectState, ObjectStates};
use super::{Key, OriginError};
use crate::body::Source;
use crate::error::HttpError;
use crate::fs::RequestPath;
use crate::handler::{self, App, Quirks};
use crate::listing::{self, Cursor, Entry};
use crate::plan::{FileMethod, ResponsePlan};
use crate::render::Representation;

/// How many times a request whose object is replaced while it is being
/// looked at (HEAD, hash, first read) starts again from a fresh HEAD.
const ATTEMPTS: usize = 3;

/// Serve the decoded request path `path` from the store.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn serve(
    app: &Arc<App>,
    objects: &Arc<ObjectStates>,
    req: &Parts,
    prefix: &str,
    path: &RequestPath,
    method: FileMethod,
    raw_path: &str,
    quirks: Quirks<'_>,
) -> Response {
    let Some(key) = Key::from_segments(&path.segments().collect::<Vec<_>>()) else {
        return HttpError::NotFound.into_response();
    };
    let headers = &req.headers;
    if !path.trailing_slash {
        let served = serve_key(app, objects, &key, path, method, headers, raw_path, quirks).await;
        return match served {
            Ok(res) => res,
            // not an object: a "directory" gets its slash URL, as on disk
            Err(OriginError::NotFound) => match objects.has_keys_below(&key).await {
                Ok(true) => handler::redirect_to_dir(prefix, path, req.uri.query()),
                Ok(false) => HttpError::NotFound.into_response(),
                Err(e) => store_error(&key, &e),
            },
            Err(e) => store_error(&key, &e),
        };
    }
    let mut index_path = path.clone();
    index_path.push("index.html");
    index_path.trailing_slash = false;
    let index = key.child("index.html");
    match serve_key(
        app,
        objects,
        &index,
        &index_path,
        method,
        headers,
        raw_path,
        quirks,
    )
    .await
    {
        Ok(res) => return res,
        Err(OriginError::NotFound) => {}
        Err(e) => return store_error(&index, &e),
    }
    if !app.config.listing {
        return HttpError::NotFound.into_response();
    }
    let listed = match objects.origin().list(&key).await {
        Ok(listed) => listed,
        Err(e) => return store_error(&key, &e),
    };
    // the prefix itself always lists; any other "directory" exists only
    // while some key is below it
    if listed.is_empty() && !key.as_str().is_empty() {
        return HttpError::NotFound.into_response();
    }
    let entries = entries(app, &key, listed);
    let after = Cursor::from_query(req.uri.query());
    let page = listing::page_of(entries, after.as_ref(), listing::PAGE_ENTRIES);
    let url_path = handler::display_path(path);
    let html = listing::render(&url_path, &page.entries, after.as_ref(), page.next.as_ref());
    handler::listing_response(html, method)
}

/// The listing entries the server shows of `listed` (below `dir`): hidden
/// names only with `--hidden`, as for a directory.
fn entries(app: &App, dir: &Key, listed: Vec<super::Listed>) -> Vec<Entry> {
    let at_top = dir.as_str().is_empty();
    listed
        .into_iter()
        .filter(|l| app.config.hidden || !crate::fs::is_hidden(l.name.as_ref(), at_top))
        .map(|l| Entry {
            is_dir: l.object.is_none(),
            size: l.object.map_or(0, |(size, _)| size),
            modified: l.object.map_or(SystemTime::UNIX_EPOCH, |(_, t)| t),
            name: OsString::from(l.name),
        })
        .collect()
}

/// The top-level objects for the quirks page: the first
/// [`crate::quirks::page::PAGE_FILES`] by name, and how many more.
pub(crate) async fn top_files(app: &App, objects: &ObjectStates) -> (Vec<OsString>, usize) {
    let top = Key::from_segments::<&str>(&[]).expect("the empty key");
    let Ok(listed) = objects.origin().list(&top).await else {
        return (Vec::new(), 0);
    };
    let files_only = Cursor::files_only();
    let page = listing::page_of(
        entries(app, &top, listed),
        Some(&files_only),
        crate::quirks::page::PAGE_FILES,
    );
    (
        page.entries.into_iter().map(|e| e.name).collect(),
        page.more,
    )
}

/// The answer to a store error, logged here (a client never sees its text).
fn store_error(key: &Key, e: &OriginError) -> Response {
    match e {
        OriginError::NotFound => {}
        OriginError::Denied(why) => {
            tracing::warn!(object = %key, error = %why, "the store denied access")
        }
        OriginError::Changed(why) => {
            tracing::warn!(object = %key, error = %why, "object keeps changing; answering 503")
        }
        OriginError::Unavailable(why) => {
            tracing::warn!(object = %key, error = %why, "store unavailable; answering 503")
        }
    }
    HttpError::from_origin(e).into_response()
}

/// Serve the object at `key`, starting again from a fresh HEAD when it
/// turns out to have been replaced before the headers went out.
#[allow(clippy::too_many_arguments)]
async fn serve_key(
    app: &Arc<App>,
    objects: &Arc<ObjectStates>,
    key: &Key,
    path: &RequestPath,
    method: FileMethod,
    headers: &HeaderMap,
    raw_path: &str,
    quirks: Quirks<'_>,
) -> Result<Response, OriginError> {
    let mut attempt = 1;
    loop {
        let result = match objects.get(key).await {
            Ok(state) => {
                let r = respond(
                    app, objects, &state, path, method, headers, raw_path, quirks,
                );
                let r = r.await;
                if matches!(r, Err(OriginError::Changed(_))) {
                    objects.forget(&state);
                }
                r
            }
            Err(e) => Err(e),
        };
        match result {
            Err(OriginError::Changed(why)) if attempt < ATTEMPTS => {
                tracing::info!(object = %key, reason = %why, "object replaced; asking the store again");
                attempt += 1;
            }
            other => return other,
        }
    }
}

/// Plan and render the response for one object version. For a GET that
/// reads the store, the first read is opened before the headers are
/// rendered: a version replaced within the revalidation window fails here
/// (`Err(Changed)`, and the request starts again) instead of mid-body.
#[allow(clippy::too_many_arguments)]
async fn respond(
    app: &Arc<App>,
    objects: &Arc<ObjectStates>,
    state: &Arc<ObjectState>,
    path: &RequestPath,
    method: FileMethod,
    headers: &HeaderMap,
    raw_path: &str,
    quirks: Quirks<'_>,
) -> Result<Response, OriginError> {
    let ctx = handler::response_ctx(app, quirks);
    let on_changed = {
        let (objects, state) = (Arc::clone(objects), Arc::clone(state));
        Arc::new(move || objects.forget(&state))
    };
    let src = ObjectSource {
        origin: Arc::clone(objects.origin()),
        key: state.key.clone(),
        meta: state.meta.clone(),
        held: state.held.clone(),
        xor: 0,
        opened: Arc::default(),
        on_changed,
    };
    let opened = Arc::clone(&src.opened);
    let mut repr = Representation {
        content_type: state.content_type.clone(),
        length: state.meta.size,
        content_encoding: None,
        etag: Some(state.rendered.etag().clone()),
        // never later than Date (RFC 9110 8.8.2.1), whole seconds as sent
        last_modified: Some(handler::whole_seconds(
            state.meta.last_modified.min(ctx.now),
        )),
        digest: Some(state.digest),
        rendered: Some(Arc::clone(&state.rendered)),
        source: Source::Object(src),
    };
    if quirks.is_some() {
        repr = match handler::quirk_representation(app, quirks, path, raw_path, repr).await {
            Ok(r) => r,
            Err(res) => return Ok(res),
        };
    }
    let plan = handler::plan_for(app, &ctx, method, headers, &repr, quirks);
    let reads = matches!(&repr.source, Source::Object(s) if s.held.is_none());
    if method == FileMethod::Get && reads {
        if let Some(first) = first_slice(&plan, repr.length) {
            let stream = objects
                .origin()
                .read(&state.key, &state.meta, first.clone())
                .await?;
            *opened.lock().unwrap_or_else(PoisonError::into_inner) = Some((first, stream));
        }
    }
    Ok(handler::finish(plan, method, repr, &ctx, raw_path, quirks))
}

/// The byte range of the first read a GET answered with `plan` makes.
fn first_slice(plan: &ResponsePlan, length: u64) -> Option<Range<u64>> {
    match plan {
        ResponsePlan::Full { .. } if length > 0 => Some(0..length),
        ResponsePlan::Partial(r) => Some(r.start..r.end + 1),
        ResponsePlan::Multipart(parts) => parts.first().map(|r| r.start..r.end + 1),
        _ => None,
    }
}
