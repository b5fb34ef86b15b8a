//! Request glue: method -> path -> resolve -> hash -> plan -> render. No HTTP
//! rules live here; they are in [`crate::rfc`] and [`crate::plan`].

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::http::header::{
    HeaderValue, ACCEPT, ALLOW, CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE, LOCATION,
};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use percent_encoding::percent_decode_str;

use crate::body::{self, FileBody, FileSource, Source, Verify};
use crate::config::Config;
use crate::error::{HttpError, ALLOWED_METHODS};
use crate::filestate::{FileState, FileStates, Hit};
use crate::fs::FileStamp;
use crate::fs::{decode_path, OpenFile, Prefetched, ReadWithOpen, RequestPath, Resolved, Root};
use crate::hashcache::{Digest, HashCache, HashError, Hashed};
use crate::listing;
use crate::origin::state::ObjectStates;
use crate::plan::{self, FileMethod, RangeHeader, RequestFacts, ResponsePlan};
use crate::quirks::transform::{self, QuirkMode, RANGESERVE_QUIRKS};
use crate::quirks::{page, QuirkError, QuirkSet, Spec};
use crate::render::{self, Rendered, Representation, ResponseCtx};
use crate::rfc::conditional::{Conditions, Validators};
use crate::rfc::range::{self, ByteRange, RangeSpec};

/// How many times a file that changes while being hashed is re-opened and re-hashed.
const HASH_ATTEMPTS: usize = 3;

/// Where a server's files come from.
pub enum Backend {
    /// A local directory: the tuned descriptor and page-cache path.
    Dir(Root),
    /// An object store, through the storage seam ([`crate::origin`]).
    Store(Arc<ObjectStates>),
}

/// Shared state of one server.
pub struct App {
    /// The served directory or store.
    pub backend: Backend,
    /// Options.
    pub config: Config,
    /// Cache-Control, validated.
    pub cache_control: HeaderValue,
    /// Content hashes.
    pub hashes: Arc<HashCache>,
    /// Quirks mode state; None when quirks mode is off.
    pub quirks: Option<QuirkMode>,
    /// What is known of files already served.
    pub files: FileStates,
    /// The request journal, when on (`--journal`, `--record`).
    pub journal: Option<Arc<crate::journal::Journal>>,
}

/// Serve any request (the connection's service).
pub async fn handle<B>(app: Arc<App>, req: Request<B>) -> Response {
    // only the head matters: GET and HEAD bodies are ignored
    let (req, _body) = req.into_parts();
    // debug builds only: proves a handler panic is contained (tests/hardening.rs)
    #[cfg(debug_assertions)]
    if req.uri.path() == "/_rangeserve/debug/panic" {
        panic!("test hook: /_rangeserve/debug/panic");
    }
    let Some(mode) = &app.quirks else {
        return serve(&app, &req, "", req.uri.path(), None).await;
    };
    // quirks mode: pick this request's quirks, report them on every response
    let (prefix, path, set) = match select_quirks(mode, &req) {
        Ok(selected) => selected,
        Err(e) => {
            tracing::warn!(error = %e, "bad quirk spec");
            let mut res = e.into_response();
            // no quirk was applied to this answer
            res.headers_mut()
                .insert(&RANGESERVE_QUIRKS, HeaderValue::from_static(""));
            return res;
        }
    };
    let mut res = if prefix.is_empty() && matches!(path.as_str(), "/_quirks" | "/_quirks/") {
        quirks_page(&app, mode, &req).await
    } else if let Some(refused) = mode.fail_first(&set, &path) {
        refused
    } else {
        serve(&app, &req, &prefix, &path, Some((mode, &set))).await
    };
    let applied = HeaderValue::from_str(&set.to_string()).expect("quirk names are ASCII");
    res.headers_mut().insert(&RANGESERVE_QUIRKS, applied);
    res
}

/// Split `/_quirks/SPEC/rest` into its prefix and path, and combine the
/// global quirks with the URL's and the `Rangeserve-Quirks` header's.
fn select_quirks(mode: &QuirkMode, req: &Parts) -> Result<(String, String, QuirkSet), QuirkError> {
    let raw = req.uri.path();
    let mut specs = Vec::new();
    let (prefix, path) = match raw.strip_prefix("/_quirks/") {
        Some(rest) if !rest.is_empty() => {
            let (spec, tail) = rest.split_once('/').unwrap_or((rest, ""));
            specs.push(Spec::parse(&percent_decode_str(spec).decode_utf8_lossy())?);
            (format!("/_quirks/{spec}"), format!("/{tail}"))
        }
        _ => (String::new(), raw.to_string()),
    };
    for v in req.headers.get_all(&RANGESERVE_QUIRKS) {
        specs.push(Spec::parse(&String::from_utf8_lossy(v.as_bytes()))?);
    }
    Ok((prefix, path, QuirkSet::combine(&mode.global, &specs)))
}

async fn quirks_page(app: &Arc<App>, mode: &QuirkMode, req: &Parts) -> Response {
    let global = mode.global.to_string();
    let wants_json = req
        .headers
        .get(ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/json"));
    if wants_json {
        return ([(CONTENT_TYPE, "application/json")], page::json(&global)).into_response();
    }
    let (files, more) = match &app.backend {
        Backend::Dir(root) => {
            let root = root.clone();
            tokio::task::spawn_blocking(move || page::top_files(&root))
                .await
                .unwrap_or_default()
        }
        Backend::Store(objects) => crate::origin::serve::top_files(app, objects).await,
    };
    let html = page::html_with_more(&files, more, &global);
    ([(CONTENT_TYPE, "text/html; charset=utf-8")], html).into_response()
}

/// Quirks for one response: the server's state and the set chosen.
pub(crate) type Quirks<'a> = Option<(&'a QuirkMode, &'a QuirkSet)>;

/// Serve `raw_path` (under the URL prefix `prefix`, empty outside `/_quirks/`).
async fn serve(
    app: &Arc<App>,
    req: &Parts,
    prefix: &str,
    raw_path: &str,
    quirks: Quirks<'_>,
) -> Response {
    let method = match req.method {
        Method::GET => FileMethod::Get,
        Method::HEAD => FileMethod::Head,
        Method::OPTIONS => {
            return (StatusCode::NO_CONTENT, [(ALLOW, ALLOWED_METHODS)]).into_response();
        }
        _ => return HttpError::MethodNotAllowed.into_response(),
    };
    // A path cached as a file passed the checks below when it was opened,
    // and they depend on nothing else: a hit skips decoding it again.
    if quirks.is_none() {
        // a hint of what to read with the hit; the plan decides what is sent
        let want = || lone_range_spec(method, &req.headers);
        // as on the HTTP/1.1 fast path: requests read together share one
        // revalidation (HTTP/2 streams, and what that path leaves to us)
        let seen = app.files.read_ticket(raw_path).await;
        if let Some((state, first_range)) = app.files.get_reading(raw_path, want, Some(seen)) {
            let headers = &req.headers;
            return serve_file(
                app,
                None,
                state,
                first_range,
                method,
                headers,
                raw_path,
                None,
            )
            .await;
        }
    }
    let path = match decode_path(raw_path) {
        Ok(p) => match refused(app, &p) {
            Some(reason) => {
                tracing::info!(path = %Clipped(raw_path), reason, "refused path");
                return HttpError::NotFound.into_response();
            }
            None => p,
        },
        Err(e) => {
            tracing::warn!(path = %Clipped(raw_path), reason = %e, "refused path");
            return HttpError::NotFound.into_response();
        }
    };
    let headers = &req.headers;
    if let Backend::Store(objects) = &app.backend {
        return crate::origin::serve::serve(
            app, objects, req, prefix, &path, method, raw_path, quirks,
        )
        .await;
    }
    if quirks.is_some() && !path.trailing_slash {
        if let Some(state) = app.files.get(raw_path) {
            let path = Some(&path);
            return serve_file(app, path, state, None, method, headers, raw_path, quirks).await;
        }
    }
    let want = lone_range_spec(method, headers);
    match resolve(app, path.clone(), want).await {
        Ok(Resolved::File(_)) if path.trailing_slash => HttpError::NotFound.into_response(),
        Ok(Resolved::File(file)) => {
            let cache = Some(raw_path);
            serve_opened(app, &path, file, cache, method, headers, raw_path, quirks).await
        }
        Ok(Resolved::Dir(_)) if !path.trailing_slash => {
            redirect_to_dir(prefix, &path, req.uri.query())
        }
        Ok(Resolved::Dir(dir)) => {
            serve_dir(
                app,
                path,
                dir,
                method,
                headers,
                raw_path,
                req.uri.query(),
                quirks,
            )
            .await
        }
        Ok(Resolved::NotFound) => HttpError::NotFound.into_response(),
        Err(e) => e.into_response(),
    }
}

/// 301 to a directory's URL, which ends with '/'. The Location is rebuilt
/// from the decoded segments: echoing the raw path would turn `//host` into
/// a protocol-relative redirect to another site.
pub(crate) fn redirect_to_dir(prefix: &str, path: &RequestPath, query: Option<&str>) -> Response {
    let mut location = prefix.to_string();
    for seg in path.segments() {
        location.push('/');
        location.push_str(&listing::encode_link(seg));
    }
    location.push('/');
    if let Some(q) = query {
        location.push('?');
        location.push_str(q);
    }
    (StatusCode::MOVED_PERMANENTLY, [(LOCATION, location)]).into_response()
}

async fn resolve(
    app: &Arc<App>,
    path: RequestPath,
    want: Option<RangeSpec>,
) -> Result<Resolved, HttpError> {
    // Most opens find everything in the kernel's caches: done inline, they
    // save a blocking-pool round trip and its two context switches.
    if let Backend::Dir(root) = &app.backend {
        if let Some(resolved) = root.resolve_cached(&path, ReadWithOpen::Window(want)) {
            return Ok(resolved);
        }
    }
    let app = Arc::clone(app);
    tokio::task::spawn_blocking(move || match &app.backend {
        Backend::Dir(root) => root.resolve(&path, want),
        Backend::Store(_) => Resolved::NotFound,
    })
    .await
    .map_err(|_| HttpError::Internal)
}

#[allow(clippy::too_many_arguments)]
async fn serve_dir(
    app: &Arc<App>,
    mut path: RequestPath,
    dir: std::path::PathBuf,
    method: FileMethod,
    headers: &HeaderMap,
    raw_path: &str,
    query: Option<&str>,
    quirks: Quirks<'_>,
) -> Response {
    let url_path = display_path(&path);
    path.push("index.html");
    path.trailing_slash = false;
    let want = lone_range_spec(method, headers);
    if let Ok(Resolved::File(index)) = resolve(app, path.clone(), want).await {
        // not cached: the key would be the directory's URL
        return serve_opened(app, &path, index, None, method, headers, raw_path, quirks).await;
    }
    let Backend::Dir(root) = &app.backend else {
        return HttpError::NotFound.into_response();
    };
    if !app.config.listing {
        return HttpError::NotFound.into_response();
    }
    let root = root.clone();
    let after = listing::Cursor::from_query(query);
    let start = after.clone();
    let page = move || listing::read_page(&dir, &root, start.as_ref(), listing::PAGE_ENTRIES);
    let page = match tokio::task::spawn_blocking(page).await {
        Ok(Ok(page)) => page,
        Ok(Err(e)) => {
            tracing::warn!(dir = url_path, error = %e, "cannot list directory");
            return HttpError::NotFound.into_response();
        }
        Err(_) => return HttpError::Internal.into_response(),
    };
    let html = listing::render(&url_path, &page.entries, after.as_ref(), page.next.as_ref());
    listing_response(html, method)
}

/// A listing page's answer (HEAD: its headers only). `no-cache` whatever
/// `--cache-control` says for files: a listing has no validator and
/// changes with any entry of its directory, so a cache must not reuse it
/// on a guessed freshness (RFC 9111 4.2.2).
pub(crate) fn listing_response(html: String, method: FileMethod) -> Response {
    let len = html.len();
    let body = match method {
        FileMethod::Get => Body::from(html),
        FileMethod::Head => Body::empty(),
    };
    (
        [
            (CONTENT_TYPE, "text/html; charset=utf-8".to_string()),
            (CONTENT_LENGTH, len.to_string()),
            (CACHE_CONTROL, "no-cache".to_string()),
        ],
        body,
    )
        .into_response()
}

/// Request data in a log line, cut to a readable length: a client can send
/// a 64 KiB path, and the log must not repeat it.
pub struct Clipped<'a>(pub &'a str);

impl std::fmt::Display for Clipped<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        const MAX: usize = 200;
        if self.0.len() <= MAX {
            return f.write_str(self.0);
        }
        let mut end = MAX;
        while !self.0.is_char_boundary(end) {
            end -= 1;
        }
        write!(f, "{}... ({} bytes)", &self.0[..end], self.0.len())
    }
}

/// The decoded URL path of a directory, for display.
pub(crate) fn display_path(path: &RequestPath) -> String {
    let mut s = String::from("/");
    for seg in path.segments() {
        s.push_str(&seg.to_string_lossy());
        s.push('/');
    }
    s
}

fn sha256(bytes: &[u8]) -> crate::hashcache::Digest {
    use sha2::Digest as _;
    sha2::Sha256::digest(bytes).into()
}

/// The digest of an opened file when it needs no waiting: a small file's
/// (whole in `prefetched`) from its own bytes or, when a stamp taken after
/// the read still equals the one taken before, a settled digest of that
/// version; a large file's settled digest from the hash cache. `Err`: the
/// bytes of a small file must be hashed off the async worker (`true`: a
/// digest made from them may be kept for the version). `Ok(None)`: a large
/// file's digest must be asked of the hash cache.
fn digest_now(app: &App, file: &OpenFile) -> Result<Option<Hashed>, bool> {
    let Some(bytes) = file.prefetched.as_ref().filter(|_| file.whole) else {
        return Ok(app.hashes.known_settled(file.stamp).map(|digest| Hashed {
            digest,
            settled: true,
        }));
    };
    // A stamp taken after the read that still equals the one taken before
    // says the bytes are of that version (the same trust as any large
    // file's reads): then a settled digest of the version vouches for them,
    // and one made from them may be kept for it.
    let unchanged = file
        .file
        .metadata()
        .is_ok_and(|m| FileStamp::of(&m) == file.stamp);
    if let Some(digest) = app.hashes.known_settled(file.stamp).filter(|_| unchanged) {
        return Ok(Some(Hashed {
            digest,
            settled: true,
        }));
    }
    if bytes.bytes.len() as u64 > crate::fs::INLINE_SMALL_MAX {
        // hundreds of microseconds: not on an async worker
        return Err(unchanged);
    }
    let read_at = read_at();
    Ok(Some(small_digest(
        app,
        file,
        unchanged,
        read_at,
        sha256(&bytes.bytes),
    )))
}

/// When a small file's bytes, read at its open, were read: a second before
/// now, to be safe.
fn read_at() -> SystemTime {
    SystemTime::now() - Duration::from_secs(1)
}

/// The [`Hashed`] of a small file's own bytes (`digest`, hashing begun
/// after `read_at`), remembered for its version when `unchanged`. Of the
/// very bytes held and served: they always agree. Still, a read within the
/// window may have seen a version that a writer replaced without moving the
/// stamp: such an entry is read again once the window has passed (its
/// bodies need no verifying).
fn small_digest(
    app: &App,
    file: &OpenFile,
    unchanged: bool,
    read_at: SystemTime,
    digest: Digest,
) -> Hashed {
    app.hashes.count_computed(file.stamp.size);
    let window = Some(app.hashes.window()).filter(|w| *w != Duration::MAX);
    let hashed = Hashed {
        digest,
        settled: crate::hashcache::settled(&file.stamp, read_at, window),
    };
    if unchanged {
        app.hashes.remember(&file.path, file.stamp, hashed);
    }
    hashed
}

/// The state of an opened file: its digest (from the small file's own
/// buffer, or the hash cache), rendered values and bytes held. A file that
/// changes while being hashed is re-opened and hashed again, a few times.
/// Also returns the first range read with the open of a large file.
async fn file_state(
    app: &Arc<App>,
    path: &RequestPath,
    mut file: OpenFile,
) -> Result<(FileState, Option<Prefetched>), Response> {
    let mut attempt = 1;
    let hashed = loop {
        match digest_now(app, &file) {
            Ok(Some(hashed)) => break hashed,
            Err(unchanged) => {
                let held = match &file.prefetched {
                    Some(bytes) => bytes.bytes.clone(),
                    None => return Err(HttpError::Internal.into_response()),
                };
                let read_at = read_at();
                let digest = tokio::task::spawn_blocking(move || sha256(&held))
                    .await
                    .map_err(|_| HttpError::Internal.into_response())?;
                break small_digest(app, &file, unchanged, read_at, digest);
            }
            Ok(None) => {}
        }
        match app.hashes.digest(&file.path, &file.file, file.stamp).await {
            Ok(h) => break h,
            Err(HashError::Changed) if attempt < HASH_ATTEMPTS => {
                attempt += 1;
                match resolve(app, path.clone(), None).await {
                    Ok(Resolved::File(f)) => file = f,
                    _ => return Err(HttpError::NotFound.into_response()),
                }
            }
            Err(HashError::Changed) => {
                tracing::warn!(path = %file.path.display(), "file keeps changing; answering 503");
                return Err(HttpError::Changing.into_response());
            }
            Err(e @ (HashError::Io(_) | HashError::Cancelled)) => {
                tracing::error!(path = %file.path.display(), error = %e, "cannot hash file");
                return Err(HttpError::Internal.into_response());
            }
        }
    };
    state_of(app, path, file, hashed).ok_or_else(|| HttpError::Internal.into_response())
}

/// The [`FileState`] of an opened file whose digest is `hashed`, and the
/// first range read with the open of a large file (`None` for a store).
fn state_of(
    app: &App,
    path: &RequestPath,
    file: OpenFile,
    hashed: Hashed,
) -> Option<(FileState, Option<Prefetched>)> {
    let digest = hashed.digest;
    let racy_until = (!hashed.settled).then(|| {
        let changed = file.stamp.mtime_ns.max(file.stamp.ctime_ns).max(0) as u128;
        let changed = UNIX_EPOCH + Duration::from_nanos(changed.min(u64::MAX as u128) as u64);
        changed
            .checked_add(app.hashes.window())
            .unwrap_or(UNIX_EPOCH + Duration::from_secs(u64::from(u32::MAX)))
    });
    // a small file's digest is of its buffer, which must go with it
    let (held, first_range) = match file.whole {
        true => (file.prefetched, None),
        false => (None, file.prefetched),
    };
    let Backend::Dir(root) = &app.backend else {
        return None;
    };
    let joined = path.joined_to(root.path());
    // segments never hold NUL (`decode_path` refuses it)
    let joined = std::ffi::CString::new(joined.into_os_string().into_encoded_bytes()).ok()?;
    let content_type = content_type(&file.path);
    let state = FileState {
        joined,
        rendered: Arc::new(Rendered::new(
            digest,
            Arc::clone(&content_type),
            whole_seconds(file.modified),
        )),
        content_type,
        real: Arc::new(file.path),
        file: file.file,
        stamp: file.stamp,
        modified: file.modified,
        digest,
        racy_until,
        prefetched: held,
        checked: Default::default(),
    };
    Some((state, first_range))
}

/// Serve a file just opened; its state is kept under `cache_key`, if any,
/// for the next request.
#[allow(clippy::too_many_arguments)]
async fn serve_opened(
    app: &Arc<App>,
    path: &RequestPath,
    file: OpenFile,
    cache_key: Option<&str>,
    method: FileMethod,
    headers: &HeaderMap,
    raw_path: &str,
    quirks: Quirks<'_>,
) -> Response {
    let (state, first_range) = match file_state(app, path, file).await {
        Ok(opened) => opened,
        Err(res) => return res,
    };
    let state = match cache_key {
        Some(key) => app.files.insert(key, state),
        None => Arc::new(state),
    };
    serve_file(
        app,
        Some(path),
        state,
        first_range,
        method,
        headers,
        raw_path,
        quirks,
    )
    .await
}

/// Plan and render the response for one file version. Quirks, if any, bend
/// the correct values at each step.
#[allow(clippy::too_many_arguments)]
async fn serve_file(
    app: &Arc<App>,
    path: Option<&RequestPath>,
    file: Arc<FileState>,
    first_range: Option<Prefetched>,
    method: FileMethod,
    headers: &HeaderMap,
    raw_path: &str,
    quirks: Quirks<'_>,
) -> Response {
    let ctx = response_ctx(app, quirks);
    let mut repr = file_repr(&file, first_range, &ctx);
    // A racy digest (see crate::hashcache) may not be of the bytes on disk:
    // every body is checked against it as it goes.
    let racy = file.racy_until.is_some() && file.prefetched.is_none();
    if quirks.is_some() {
        // (a request with quirks always comes with its decoded path)
        let decoded;
        let path = match path {
            Some(p) => p,
            None => match decode_path(raw_path) {
                Ok(p) => {
                    decoded = p;
                    &decoded
                }
                Err(_) => return HttpError::NotFound.into_response(),
            },
        };
        repr = match quirk_representation(app, quirks, path, raw_path, repr).await {
            Ok(r) => r,
            Err(res) => return res,
        };
    }
    let mut plan = plan_for(app, &ctx, method, headers, &repr, quirks);
    if racy {
        match &plan {
            ResponsePlan::Multipart(parts) if !parts.windows(2).all(|w| w[0].end < w[1].start) => {
                // parts out of file order: read them all with one verified pass
                if let Err(res) =
                    capture_parts(app, raw_path, &file, parts, method, &mut repr).await
                {
                    return res;
                }
                if !matches!(repr.source, Source::Pieces(_)) {
                    plan = ResponsePlan::Full {
                        ignored: Some(plan::IgnoredRange::Unverifiable),
                    };
                }
            }
            _ => {}
        }
        verify_bodies(app, raw_path, &file, &mut repr);
    }
    finish(plan, method, repr, &ctx, raw_path, quirks)
}

/// The representation of a file version, with the bytes read for this
/// request if any.
fn file_repr(
    file: &FileState,
    first_range: Option<Prefetched>,
    ctx: &ResponseCtx,
) -> Representation {
    let source = FileSource {
        file: Arc::clone(&file.file),
        path: Arc::clone(&file.real),
        stamp: file.stamp,
        xor: 0,
        prefetched: file.prefetched.clone().or(first_range),
        verify: None,
    };
    let etag = file.rendered.etag().clone();
    let rendered = Some(Arc::clone(&file.rendered));
    let content_type = file.content_type.clone();
    representation(
        source,
        content_type,
        file.modified,
        file.digest,
        etag,
        rendered,
        ctx,
    )
}

/// [`file_repr`] of a file opened for one answer, whose state is not kept:
/// no values rendered ahead ([`render::wire`] writes its head from these).
fn passing_repr(file: OpenFile, digest: Digest, ctx: &ResponseCtx) -> Representation {
    let content_type = content_type(&file.path);
    let source = FileSource {
        file: file.file,
        path: Arc::new(file.path),
        stamp: file.stamp,
        xor: 0,
        prefetched: file.prefetched,
        verify: None,
    };
    let etag = crate::rfc::etag::EntityTag::from_sha256(&digest);
    representation(source, content_type, file.modified, digest, etag, None, ctx)
}

/// A file's representation as the fast path answers it.
fn representation(
    source: FileSource,
    content_type: Arc<str>,
    modified: SystemTime,
    digest: Digest,
    etag: crate::rfc::etag::EntityTag,
    rendered: Option<Arc<Rendered>>,
    ctx: &ResponseCtx,
) -> Representation {
    Representation {
        content_type,
        length: source.stamp.size,
        content_encoding: None,
        etag: Some(etag),
        // never later than Date (RFC 9110 8.8.2.1), whole seconds as sent
        last_modified: Some(whole_seconds(modified.min(ctx.now))),
        digest: Some(digest),
        rendered,
        source: Source::File(source),
    }
}

/// What [`express`] made of a request.
// once per request, by value: boxing the body would cost an allocation
#[allow(clippy::large_enum_variant)]
pub(crate) enum Express {
    /// Not a request it answers: the full service must.
    Declined,
    /// The head (of this status) is written; the body (none for HEAD and
    /// 304) follows it.
    Written(StatusCode, Option<FileBody>),
    /// An answer to be framed like any other.
    Response(Response),
}

/// The answer to a plain request (see [`crate::h1`]) for a file already
/// served and still the same version, or one that opens with all it takes
/// at hand ([`open_now`]), without the request frame's maps: the same plan
/// ([`plan::decide`]) and values as [`serve_file`], with a 200 or 206 head
/// written straight into `out` from the bytes rendered once for the
/// version ([`render::wire`]). Declines whatever needs more: a refused
/// head, a path [`open_now`] leaves to [`serve`], a racy digest (its bodies
/// are verified). An answer made from a cache entry not revalidated yet
/// names it in `unconfirmed`: the caller sends none of that answer unless
/// [`FileStates::confirm`] holds for it (see [`crate::filestate`]).
/// Only for servers without quirks, journal or CORS (the caller writes the
/// access line). `http11`: the request is HTTP/1.1 (else 1.0, where `Host`
/// may be absent).
pub(crate) fn express<'a>(
    app: &App,
    method: FileMethod,
    target: &'a str,
    http11: bool,
    headers: impl Iterator<Item = (&'a [u8], &'a [u8])> + Clone,
    unconfirmed: &mut Option<Arc<FileState>>,
    out: &mut Vec<u8>,
) -> Express {
    // what the frame refuses, it answers itself
    let hosts = headers
        .clone()
        .filter(|(n, _)| n.eq_ignore_ascii_case(b"host"))
        .map(|(_, v)| v);
    if crate::access::refused_h1(app, http11, hosts, target.len()).is_some() {
        return Express::Declined;
    }
    // the path as the full service reads it from the target
    let pq;
    let path = match plain_path(target) {
        true => target,
        false => match axum::http::uri::PathAndQuery::try_from(target) {
            Ok(parsed) => {
                pq = parsed;
                pq.path()
            }
            Err(_) => return Express::Declined,
        },
    };
    let facts = facts_of(method, headers);
    let want = || match (method, facts.range) {
        (FileMethod::Get, RangeHeader::Value(v)) => range::lone_spec(v),
        _ => None,
    };
    let opened = match app.files.get_later(path, want) {
        Some(Hit::Later(state)) => {
            *unconfirmed = Some(Arc::clone(&state));
            Ok((state, None))
        }
        Some(Hit::Now(state, read)) => Ok((state, read)),
        None => match open_now(app, path, want()) {
            OpenNow::File(file, first_range) => Ok((file, first_range)),
            OpenNow::Passing(file, digest) => Err((file, digest)),
            // what `serve` answers a path that names nothing it serves
            OpenNow::NotFound => return Express::Response(HttpError::NotFound.into_response()),
            OpenNow::Declined => return Express::Declined,
        },
    };
    let ctx = response_ctx(app, None);
    let repr = match opened {
        Ok((file, _)) if file.racy_until.is_some() && file.prefetched.is_none() => {
            return Express::Declined;
        }
        Ok((file, first_range)) => file_repr(&file, first_range, &ctx),
        Err((file, digest)) => passing_repr(file, digest, &ctx),
    };
    let plan = decide(app, &ctx, &facts, &repr);
    log_ignored(&plan, path);
    match render::wire(&plan, method, repr, &ctx, out) {
        Ok((status, body)) => Express::Written(status, body),
        Err(repr) => Express::Response(render::render(&plan, method, repr, &ctx)),
    }
}

/// Whether a request target is a path alone, of characters that
/// `PathAndQuery` takes as they are (RFC 3986 `pchar`s and `/`, no query):
/// then it is its own path, with no parse and no copy. Any other target is
/// parsed as the full service parses it.
fn plain_path(target: &str) -> bool {
    target.starts_with('/')
        && target
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/-._~!$&'()*+,;=:@%".contains(&b))
}

/// Why a decoded path is never served as a file, if it is not: a hidden
/// entry (unless served), or the server's own endpoints' namespace (never a
/// file, even if the directory has one there, and with a /_quirks/ prefix
/// too).
fn refused(app: &App, path: &RequestPath) -> Option<&'static str> {
    if !app.config.hidden && path.is_hidden() {
        return Some("hidden entry");
    }
    path.segments()
        .next()
        .is_some_and(|s| s == crate::journal::RESERVED_SEGMENT)
        .then_some("reserved path")
}

/// A file not in the file-state cache, opened and its state made and kept
/// as [`serve`] would, when all it takes is at hand: the kernel's caches
/// for the open ([`Root::resolve_cached`]) and a digest that needs no
/// waiting ([`digest_now`]).
fn open_now(app: &App, raw_path: &str, want: Option<RangeSpec>) -> OpenNow {
    let Backend::Dir(root) = &app.backend else {
        return OpenNow::Declined;
    };
    let Ok(path) = decode_path(raw_path) else {
        return OpenNow::Declined;
    };
    if refused(app, &path).is_some() || path.trailing_slash {
        return OpenNow::Declined;
    }
    // A state the cache will not keep needs no bytes read with the open
    // when its digest is known: the body reads them after the head,
    // straight into the answer, checked as any body read is.
    let read = match app.files.turns_away(raw_path) {
        true => ReadWithOpen::Nothing,
        false => ReadWithOpen::Window(want),
    };
    let mut file = match root.resolve_cached(&path, read) {
        Some(Resolved::File(file)) => file,
        Some(Resolved::NotFound) => return OpenNow::NotFound,
        _ => return OpenNow::Declined,
    };
    let hashed = match digest_now(app, &file) {
        Ok(Some(hashed)) => hashed,
        // a small file's digest is made from its bytes: read them now
        Ok(None) if read == ReadWithOpen::Nothing && file.stamp.size <= crate::fs::SMALL_MAX => {
            if file.read_ahead_cached(want).is_err() {
                return OpenNow::Declined;
            }
            match digest_now(app, &file) {
                Ok(Some(hashed)) => hashed,
                _ => return OpenNow::Declined,
            }
        }
        _ => return OpenNow::Declined,
    };
    // A version the cache turns away needs no state: its answer is made
    // from the open file and its digest (a racy digest needs the state's
    // window, unless it is of the very bytes held).
    let passing = read == ReadWithOpen::Nothing && (hashed.settled || file.whole);
    if passing && app.files.turn_away(raw_path) {
        return OpenNow::Passing(file, hashed.digest);
    }
    match state_of(app, &path, file, hashed) {
        Some((state, first_range)) => OpenNow::File(app.files.insert(raw_path, state), first_range),
        None => OpenNow::Declined,
    }
}

/// What [`open_now`] made of a path.
enum OpenNow {
    /// Opened and its state inserted; the first range read with the open.
    File(Arc<FileState>, Option<Prefetched>),
    /// Opened, with this digest, for this answer only: the cache turned
    /// its state away.
    Passing(OpenFile, Digest),
    /// Missing, or not a regular file: [`serve`] answers it 404 too.
    NotFound,
    /// Anything else (a refused path, a directory, an open or a digest that
    /// must wait): [`serve`] does it.
    Declined,
}

/// The response-wide values of a response made now.
pub(crate) fn response_ctx(app: &App, quirks: Quirks<'_>) -> ResponseCtx {
    ResponseCtx {
        now: SystemTime::now(),
        cache_control: app.cache_control.clone(),
        boundary: quirks.map(|(mode, _)| mode.next_boundary()),
    }
}

/// Quirks' transform of the representation (which version, bytes and
/// validators); `Err` is the answer when a quirk cannot be applied.
pub(crate) async fn quirk_representation(
    app: &App,
    quirks: Quirks<'_>,
    path: &RequestPath,
    raw_path: &str,
    repr: Representation,
) -> Result<Representation, Response> {
    let Some((mode, set)) = quirks else {
        return Ok(repr);
    };
    // per-path quirk state is keyed by the decoded path: /a%2Ebin is /a.bin
    let key = display_path(path);
    let key = key.trim_end_matches('/');
    let objects = match &app.backend {
        Backend::Store(objects) => Some(&**objects),
        Backend::Dir(_) => None,
    };
    mode.representation(set, key, repr, &app.hashes, objects)
        .await
        .map_err(|e| {
            tracing::warn!(path = raw_path, error = %e, "quirk failed");
            e.into_response()
        })
}

/// The plan for `repr`: the request's facts (bent by quirks), decided by
/// [`plan::decide`]. Shared by files and objects.
pub(crate) fn plan_for(
    app: &App,
    ctx: &ResponseCtx,
    method: FileMethod,
    headers: &HeaderMap,
    repr: &Representation,
    quirks: Quirks<'_>,
) -> ResponsePlan {
    let mut facts = request_facts(method, headers);
    let mut scratch = String::new();
    if let Some((_, set)) = quirks {
        facts = transform::request(set, facts, repr, &mut scratch);
    }
    decide(app, ctx, &facts, repr)
}

/// [`plan::decide`] for `repr` with the server's limits.
fn decide(
    app: &App,
    ctx: &ResponseCtx,
    facts: &RequestFacts,
    repr: &Representation,
) -> ResponsePlan {
    let validators = Validators {
        etag: repr.etag.as_ref(),
        last_modified: repr.last_modified,
        date: ctx.now,
    };
    plan::decide(facts, repr.length, &validators, app.config.max_ranges)
}

/// Say why a Range header was ignored, when the client erred.
fn log_ignored(plan: &ResponsePlan, raw_path: &str) {
    if let ResponsePlan::Full { ignored: Some(why) } = plan {
        if why.is_client_error() {
            tracing::warn!(path = raw_path, reason = ?why, "ignoring Range header");
        }
    }
}

/// Render `plan` (bent by quirks, if any) for `repr`. Shared by files and objects.
pub(crate) fn finish(
    mut plan: ResponsePlan,
    method: FileMethod,
    repr: Representation,
    ctx: &ResponseCtx,
    raw_path: &str,
    quirks: Quirks<'_>,
) -> Response {
    log_ignored(&plan, raw_path);
    if let Some((_, set)) = quirks {
        plan = transform::plan(set, plan);
    }
    let length = repr.length;
    let res = render::render(&plan, method, repr, ctx);
    match quirks {
        Some((mode, set)) => transform::response(mode, set, res, method, &plan, length),
        None => res,
    }
}

/// Most bytes of parts out of file order that are read beforehand for one
/// verified pass; larger requests of a racy file get the whole file instead.
const CAPTURE_MAX: u64 = 16 * 1024 * 1024;

/// Parts out of file order of a racy file: one pass over the whole file
/// keeps their bytes and hashes it, and they are served from memory only if
/// the file hashes to the digest announced (else 503, the digest forgotten).
/// Over [`CAPTURE_MAX`] (or for HEAD) the source is left as it is.
async fn capture_parts(
    app: &Arc<App>,
    key: &str,
    file: &Arc<FileState>,
    parts: &[ByteRange],
    method: FileMethod,
    repr: &mut Representation,
) -> Result<(), Response> {
    let total: u64 = parts.iter().map(ByteRange::len).sum();
    let Source::File(src) = &repr.source else {
        return Ok(());
    };
    if total > CAPTURE_MAX || method == FileMethod::Head || src.xor != 0 {
        return Ok(());
    }
    let (handle, size, ranges) = (Arc::clone(&src.file), src.stamp.size, parts.to_vec());
    // held while this request waits: the pass stops if the client leaves
    let interest = Arc::new(());
    let watch = Arc::downgrade(&interest);
    let captured =
        crate::hashcache::on_hash_thread(move || body::capture(&handle, size, &ranges, &watch))
            .await;
    drop(interest);
    match captured {
        Ok(Ok((digest, pieces))) if digest == file.digest => {
            repr.source = Source::Pieces(pieces.into());
            Ok(())
        }
        Ok(Ok(_)) => {
            tracing::warn!(path = %file.real.display(), "bytes changed under an unchanged stamp; forgetting its digest");
            app.files.forget(key, file);
            app.hashes.forget(file.stamp);
            Err(HttpError::Changing.into_response())
        }
        _ => Err(HttpError::Changing.into_response()),
    }
}

/// For a racy file: the body (whole file, a range, or parts in file order)
/// is verified as it is sent: the whole file is hashed in order alongside,
/// the last chunk withheld and the cached digest forgotten if the file's
/// bytes are not the digest's (see [`crate::body`]).
fn verify_bodies(app: &Arc<App>, key: &str, file: &Arc<FileState>, repr: &mut Representation) {
    match &mut repr.source {
        Source::File(src) if repr.digest == Some(file.digest) => {
            let (app, key, state) = (Arc::clone(app), key.to_string(), Arc::clone(file));
            src.verify = Some(Verify {
                digest: repr.digest.expect("checked"),
                on_mismatch: Arc::new(move || {
                    tracing::warn!(path = %state.real.display(), "bytes changed under an unchanged stamp; forgetting its digest");
                    app.files.forget(&key, &state);
                    app.hashes.forget(state.stamp);
                }),
            });
        }
        _ => {}
    }
}

/// The Content-Type of a file or object, from its name's extension (the
/// same for the same name, wherever the bytes are stored).
pub(crate) fn content_type(path: impl AsRef<std::path::Path>) -> Arc<str> {
    // mime_guess's table gives a `&'static str` without parsing; the value
    // sent (its essence, as `Mime` parses it: for a dozen types that is not
    // the table's spelling, e.g. .docm's "macroEnabled" is lowercased) is
    // made once per type and thread, and shared: a miss then allocates
    // nothing for its type. The last extensions seen are remembered with
    // theirs: a miss then searches no table either.
    thread_local! {
        static MADE: std::cell::RefCell<Vec<(&'static str, Arc<str>)>> =
            const { std::cell::RefCell::new(Vec::new()) };
        static BY_EXT: std::cell::RefCell<Vec<TypeOfExtension>> =
            const { std::cell::RefCell::new(Vec::new()) };
    }
    let path = path.as_ref();
    let ext = path.extension().map_or(&b""[..], |e| e.as_encoded_bytes());
    let known = BY_EXT.with_borrow(|seen| {
        let found = seen.iter().find(|(e, _)| **e == *ext);
        found.map(|(_, t)| Arc::clone(t))
    });
    if let Some(t) = known {
        return t;
    }
    let raw = mime_guess::from_path(path)
        .first_raw()
        .unwrap_or("application/octet-stream");
    let made = MADE.with_borrow_mut(|made| {
        if let Some((_, t)) = made.iter().find(|(r, _)| std::ptr::eq(*r, raw)) {
            return Arc::clone(t);
        }
        let essence: Arc<str> = match raw.parse::<mime_guess::mime::Mime>() {
            Ok(m) => m.essence_str().into(),
            Err(_) => "application/octet-stream".into(),
        };
        if made.len() < 64 {
            made.push((raw, Arc::clone(&essence)));
        }
        essence
    });
    BY_EXT.with_borrow_mut(|seen| {
        if seen.len() >= 16 {
            seen.remove(0);
        }
        seen.push((ext.into(), Arc::clone(&made)));
    });
    made
}

/// An extension's bytes and the Content-Type [`content_type`] gave it.
type TypeOfExtension = (Box<[u8]>, Arc<str>);

/// `t` truncated to whole seconds (what HTTP dates can carry).
pub(crate) fn whole_seconds(t: SystemTime) -> SystemTime {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs();
    UNIX_EPOCH + Duration::from_secs(secs)
}

/// The range-spec of a GET's Range header that holds exactly one: what to
/// read along with the open (a hint; the plan decides what is sent).
fn lone_range_spec(method: FileMethod, headers: &HeaderMap) -> Option<RangeSpec> {
    match (method, range_header(headers)) {
        (FileMethod::Get, RangeHeader::Value(v)) => range::lone_spec(v),
        _ => None,
    }
}

fn range_header(headers: &HeaderMap) -> RangeHeader<'_> {
    request_facts(FileMethod::Get, headers).range
}

enum Single<'a> {
    Absent,
    Value(&'a str),
    Invalid,
}

impl<'a> Single<'a> {
    /// One more occurrence of a header that must occur at most once, with a
    /// visible-ASCII value (what `HeaderValue::to_str` accepts).
    fn add(self, value: &'a [u8]) -> Self {
        // no short circuit: the fold is vectorized (a value is read whole anyway)
        let visible = value
            .iter()
            .fold(true, |ok, &b| ok & ((b == b'\t') | (32..127).contains(&b)));
        match self {
            Single::Absent if visible => {
                std::str::from_utf8(value).map_or(Single::Invalid, Single::Value)
            }
            _ => Single::Invalid,
        }
    }

    /// A conditional header: a repeated or non-ASCII value becomes one that
    /// never parses (a malformed list never matches, a bad date is ignored).
    fn condition(self) -> Option<&'a str> {
        match self {
            Single::Absent => None,
            Single::Value(v) => Some(v),
            Single::Invalid => Some("\u{0}invalid"),
        }
    }
}

/// What a `method` request with `headers` asks for: its Range and
/// conditional headers, read in one pass over its few headers (cheaper than
/// a hashed lookup per name).
fn request_facts(method: FileMethod, headers: &HeaderMap) -> RequestFacts<'_> {
    facts_of(
        method,
        headers
            .iter()
            .map(|(n, v)| (n.as_str().as_bytes(), v.as_bytes())),
    )
}

/// [`request_facts`] of header lines as sent (names in any case).
pub(crate) fn facts_of<'a>(
    method: FileMethod,
    headers: impl Iterator<Item = (&'a [u8], &'a [u8])>,
) -> RequestFacts<'a> {
    // in the order of plan::FACT_HEADERS
    let mut seen = [const { Single::Absent }; 6];
    for (name, value) in headers {
        let mut known = plan::FACT_HEADERS.iter();
        // lengths first: most names are told apart without a byte compared
        let same = |n: &&str| n.len() == name.len() && name.eq_ignore_ascii_case(n.as_bytes());
        if let Some(i) = known.position(same) {
            let prev = std::mem::replace(&mut seen[i], Single::Absent);
            seen[i] = prev.add(value);
        }
    }
    let [range, if_match, if_none_match, if_modified_since, if_unmodified_since, if_range] = seen;
    RequestFacts {
        method,
        range: match range {
            Single::Absent => RangeHeader::Absent,
            Single::Value(v) => RangeHeader::Value(v),
            Single::Invalid => RangeHeader::Unreadable,
        },
        conditions: Conditions {
            if_match: if_match.condition(),
            if_none_match: if_none_match.condition(),
            if_modified_since: if_modified_since.condition(),
            if_unmodified_since: if_unmodified_since.condition(),
            if_range: if_range.condition(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plain_target_is_the_path_that_path_and_query_reads() {
        let plain = [
            "/",
            "/small.txt",
            "/many/d42/f04242.bin",
            "/a%20b/c%2Fd",
            "/-._~!$&'()*+,;=:@",
            "//double//slashes/",
            "/caf%C3%A9",
        ];
        for target in plain {
            assert!(plain_path(target), "{target}");
            let pq = axum::http::uri::PathAndQuery::try_from(target).unwrap();
            assert_eq!(pq.path(), target);
        }
        // a query, a fragment, other characters or no leading slash: parsed
        for target in [
            "/a?b=1", "/a?", "/a#frag", "*", "a/b", "/a\"b", "/a{b}", "/a|b", "/\u{e9}", "",
        ] {
            assert!(!plain_path(target), "{target}");
        }
    }

    #[test]
    fn content_types_are_mime_guess_essences_made_once() {
        let names = [
            "l.docm",
            "m.psc1",
            "a.txt",
            "b.TXT",
            "c.html",
            "d.tar.gz",
            "e.json",
            "f.svg",
            "g",
            "h.unknownext",
            "i.docx",
            "j.mp4",
            "k.txt",
        ];
        for _ in 0..2 {
            for name in names {
                let expected = mime_guess::from_path(name).first_or_octet_stream();
                assert_eq!(&*content_type(name), expected.essence_str(), "{name}");
            }
        }
        // one shared value per type: the second .txt is the first one's
        assert!(Arc::ptr_eq(&content_type("x.txt"), &content_type("y.txt")));
        // more extensions than are remembered, in turn, and names whose
        // extension is empty or absent
        let exts = [
            "png", "jpg", "gif", "css", "js", "wasm", "pdf", "zip", "gz", "xz", "mp3", "ogg",
            "webm", "csv", "xml", "ico", "woff2", "iso", "bin", "md", "TXT", "",
        ];
        for round in 0..3 {
            for ext in exts {
                let name = format!("dir.d/n{round}.{ext}");
                let expected = mime_guess::from_path(&name).first_or_octet_stream();
                assert_eq!(&*content_type(&name), expected.essence_str(), "{name}");
            }
            for name in ["dir.d/plain", ".hidden", "a.b/c", "x."] {
                assert_eq!(&*content_type(name), "application/octet-stream", "{name}");
            }
        }
    }
}
