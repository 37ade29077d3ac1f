//! The pre-authenticated URLs of files, outside `/v1.0` as OneDrive's are (on the emulator's
//! own host and port), and the files admin endpoints.
//!
//! - `{base}/up/{token}`: an upload session's `uploadUrl` (`PUT` fragments, `GET` status,
//!   `DELETE` cancel, `POST` commit of a `deferCommit` session).
//! - `{base}/_layouts/15/download.aspx?UniqueId={item id}&tempauth={token}`: downloads
//!   (`Range` supported), valid an hour.
//! - `{base}/_api/v2.0/monitor/{job}`: the progress of a copy.
//!
//! They refuse `Authorization` headers (401; the monitor ignores them), count in the stats as
//! `PUT /up/{id}`, `GET /_layouts/15/download.aspx`, `GET /_api/v2.0/monitor/{id}` (not in
//! `graph_requests`), and fault rules apply to them by those route names, before any body is
//! read: a faulted fragment is never stored.

use std::io::SeekFrom;

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt as _;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncSeekExt as _, AsyncWriteExt as _};

use super::super::errors::GraphError;
use super::super::{GraphResponse, Payload, Side, base_url, graph_http, side_faults};
use super::upload::{SESSION_LIFETIME, commit_session, io_error, session_time};
use super::{invalid_request, item_not_found, perform_copy, render, too_large};
use crate::Emulator;
use crate::admin::RecordedRequest;
use crate::files::FileStore;

/// "Each byte range … must be less than 60 MiB."
pub(crate) const MAX_FRAGMENT: u64 = 60 * 1024 * 1024;
/// "The size of each byte range MUST be a multiple of 320 KiB (327,680 bytes)", but the last.
pub(crate) const FRAGMENT_MULTIPLE: u64 = 327_680;

fn unauthenticated(message: &str) -> GraphError {
    GraphError::new(StatusCode::UNAUTHORIZED, "unauthenticated", message)
}

fn request_ids(headers: &HeaderMap) -> (String, String) {
    let request_id = uuid::Uuid::new_v4().to_string();
    let client = headers
        .get("client-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty() && v.len() <= 256)
        .map(str::to_string)
        .unwrap_or_else(|| request_id.clone());
    (request_id, client)
}

fn record(
    emulator: &Emulator,
    route: &str,
    method: &Method,
    url: String,
    status: u16,
    client: &str,
) {
    emulator.state().recorder.preauthenticated_request(
        route,
        RecordedRequest {
            method: method.to_string(),
            url,
            status,
            in_batch: false,
            client_request_id: client.to_string(),
        },
    );
}

/// Reads and discards what is left of a body (a faulted fragment), at most 64 MiB.
async fn drain(mut body: Body) {
    let mut seen = 0usize;
    while let Some(Ok(frame)) = body.frame().await {
        if let Ok(data) = frame.into_data() {
            seen += data.len();
            if seen > 64 * 1024 * 1024 {
                break;
            }
        }
    }
}

/// Common frame of the three URLs: fault rules, the handler, the stats.
async fn serve<F, Fut>(
    emulator: Emulator,
    request: Request,
    template: &'static str,
    handler: F,
) -> Response
where
    F: FnOnce(Emulator, axum::http::request::Parts, Body, String) -> Fut,
    Fut: std::future::Future<Output = Result<Response, GraphError>>,
{
    let (parts, body) = request.into_parts();
    let method = parts.method.clone();
    let route = format!("{method} {template}");
    let url = parts.uri.path_and_query().map_or_else(
        || parts.uri.path().to_string(),
        |pq| pq.as_str().to_string(),
    );
    let (request_id, client) = request_ids(&parts.headers);
    let base = base_url(&parts.headers, &parts.uri);
    let truncate = match side_faults(
        &emulator,
        &method,
        template,
        parts.uri.path(),
        &request_id,
        &client,
    )
    .await
    {
        Side::Proceed { truncate } => truncate,
        Side::Reset => {
            record(&emulator, &route, &method, url, 0, &client);
            return crate::net::reset(&parts.extensions);
        }
        Side::Hang => {
            record(&emulator, &route, &method, url, 0, &client);
            return crate::net::hang(&parts.extensions).await;
        }
        Side::Answer { response, status } => {
            drain(body).await;
            record(&emulator, &route, &method, url, status, &client);
            return response;
        }
    };
    let response = match handler(emulator.clone(), parts, body, base).await {
        Ok(response) => response,
        Err(err) => graph_http(
            GraphResponse::error(&err, &request_id, &client),
            &request_id,
            &client,
        ),
    };
    record(
        &emulator,
        &route,
        &method,
        url,
        response.status().as_u16(),
        &client,
    );
    if truncate {
        crate::net::truncate(response).await
    } else {
        response
    }
}

fn json_answer(status: StatusCode, body: Value) -> Response {
    let ids = uuid::Uuid::new_v4().to_string();
    graph_http(
        GraphResponse::with_status(status, Payload::Json(body)),
        &ids,
        &ids,
    )
}

fn lock(emulator: &Emulator) -> std::sync::MutexGuard<'_, FileStore> {
    crate::lock_files(emulator.state())
}

// --- upload URLs ------------------------------------------------------------------------

/// Any method on `/up/{token}`.
pub(crate) async fn upload_entry(
    State(emulator): State<Emulator>,
    Path(token): Path<String>,
    request: Request,
) -> Response {
    serve(
        emulator,
        request,
        "/up/{id}",
        move |emulator, parts, body, base| async move {
            upload(
                &emulator,
                &parts.method,
                &token,
                &parts.headers,
                body,
                &base,
            )
            .await
        },
    )
    .await
}

fn session_status(expires: i64, ranges: Vec<String>) -> Value {
    json!({
        "expirationDateTime": session_time(expires),
        "nextExpectedRanges": ranges,
    })
}

async fn upload(
    emulator: &Emulator,
    method: &Method,
    token: &str,
    headers: &HeaderMap,
    body: Body,
    base: &str,
) -> Result<Response, GraphError> {
    if headers.contains_key(header::AUTHORIZATION) {
        return Err(unauthenticated(
            "The upload URL is pre-authenticated: requests to it must not carry an Authorization header.",
        ));
    }
    let now = crate::clock::now_unix();
    let writer = {
        let mut store = lock(emulator);
        let Some(session) = store.sessions.get(token) else {
            return Err(item_not_found());
        };
        if session.expires < now {
            store.sessions.remove(token);
            return Err(item_not_found());
        }
        if *method == Method::GET {
            let ranges = match session.total {
                Some(total) if session.received >= total => Vec::new(),
                _ => vec![format!("{}-", session.received)],
            };
            return Ok(json_answer(
                StatusCode::OK,
                session_status(session.expires, ranges),
            ));
        }
        if *method == Method::DELETE {
            store.sessions.remove(token);
            return Ok(StatusCode::NO_CONTENT.into_response());
        }
        session.writer.clone()
    };
    // One writer at a time; a fragment whose client vanished leaves nothing behind.
    let _writing = writer.lock().await;
    match *method {
        Method::PUT => put_fragment(emulator, token, headers, body, base).await,
        Method::POST => {
            let mut store = lock(emulator);
            let Some(session) = store.sessions.get(token) else {
                return Err(item_not_found());
            };
            if session.total.is_none_or(|t| session.received < t) {
                return Err(invalid_request(
                    "The upload is not complete: send the remaining byte ranges first.",
                ));
            }
            committed(&mut store, token, base, now)
        }
        _ => Err(GraphError::method_not_allowed()),
    }
}

/// Commits a complete session and answers 201 (new file) or 200 (replaced) with the item.
fn committed(
    store: &mut FileStore,
    token: &str,
    base: &str,
    now: i64,
) -> Result<Response, GraphError> {
    let (d, id, new) = commit_session(store, token, now)?;
    let r = render::Render {
        base_url: base,
        select: None,
        now,
    };
    let body = render::item(store, d, &store.drives[d].items[&id], &r);
    let status = if new {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok(json_answer(status, Value::Object(body)))
}

/// `bytes {first}-{last}/{total}`.
fn content_range(headers: &HeaderMap) -> Option<(u64, u64, u64)> {
    let v = headers.get(header::CONTENT_RANGE)?.to_str().ok()?.trim();
    let v = v.strip_prefix("bytes")?.trim_start();
    let (range, total) = v.split_once('/')?;
    let (first, last) = range.trim().split_once('-')?;
    Some((
        first.trim().parse().ok()?,
        last.trim().parse().ok()?,
        total.trim().parse().ok()?,
    ))
}

fn invalid_range(status: StatusCode, message: String) -> GraphError {
    GraphError::new(status, "invalidRange", message)
}

async fn put_fragment(
    emulator: &Emulator,
    token: &str,
    headers: &HeaderMap,
    mut body: Body,
    base: &str,
) -> Result<Response, GraphError> {
    let now = crate::clock::now_unix();
    let (received, known_total, part, mut hasher) = {
        let store = lock(emulator);
        let Some(s) = store.sessions.get(token) else {
            return Err(item_not_found());
        };
        (
            s.received,
            s.total.or(s.file_size),
            s.part.clone(),
            s.hasher.clone(),
        )
    };
    let Some((first, last, total)) = content_range(headers) else {
        return Err(invalid_request(
            "A Content-Range header 'bytes {first}-{last}/{total}' is required.",
        ));
    };
    if last < first || last >= total {
        return Err(invalid_request(format!(
            "Content-Range bytes {first}-{last}/{total} is not a range of the file."
        )));
    }
    let length = last - first + 1;
    if length > MAX_FRAGMENT {
        return Err(too_large(format!(
            "A fragment may carry at most {MAX_FRAGMENT} bytes (60 MiB); this one declares {length}."
        )));
    }
    if let Some(expected) = known_total
        && expected != total
    {
        return Err(invalid_request(format!(
            "The total length in Content-Range ({total}) differs from the file's ({expected})."
        )));
    }
    if first != received {
        let what = if first < received {
            "overlaps bytes already received"
        } else {
            "leaves a gap"
        };
        return Err(invalid_range(
            StatusCode::RANGE_NOT_SATISFIABLE,
            format!(
                "The fragment starting at byte {first} {what}: the next expected byte is {received}."
            ),
        ));
    }
    let is_last = last + 1 == total;
    if !is_last && !length.is_multiple_of(FRAGMENT_MULTIPLE) {
        return Err(invalid_range(
            StatusCode::BAD_REQUEST,
            format!(
                "Every fragment but the last must be a multiple of {FRAGMENT_MULTIPLE} bytes (320 KiB); this one has {length}."
            ),
        ));
    }
    if let Some(declared) = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        && declared != length
    {
        return Err(invalid_request(format!(
            "Content-Length ({declared}) differs from the Content-Range length ({length})."
        )));
    }

    // Bytes past `received` on disk (an earlier fragment that never finished) are cut off;
    // this fragment counts only once it has fully arrived.
    let mut file = tokio::fs::OpenOptions::new()
        .write(true)
        .open(&part.path)
        .await
        .map_err(io_error)?;
    file.set_len(first).await.map_err(io_error)?;
    file.seek(SeekFrom::Start(first)).await.map_err(io_error)?;
    let mut got = 0u64;
    let failure = loop {
        let Some(frame) = body.frame().await else {
            break None;
        };
        let Ok(frame) = frame else {
            break Some(invalid_request("The request body could not be read."));
        };
        let Ok(data) = frame.into_data() else {
            continue;
        };
        got += data.len() as u64;
        if got > length {
            break Some(invalid_request(format!(
                "The body carries more bytes than Content-Range declares ({length})."
            )));
        }
        hasher.update(&data);
        if let Err(err) = file.write_all(&data).await {
            break Some(io_error(err));
        }
    };
    let failure = failure.or_else(|| {
        (got < length).then(|| {
            invalid_request(format!(
                "The body carries {got} bytes; Content-Range declares {length}."
            ))
        })
    });
    if let Some(err) = failure {
        let _ = file.set_len(first).await;
        return Err(err);
    }
    file.flush().await.map_err(io_error)?;
    drop(file);

    let mut store = lock(emulator);
    let Some(session) = store.sessions.get_mut(token) else {
        return Err(item_not_found());
    };
    session.received = last + 1;
    session.total = Some(total);
    session.hasher = hasher;
    session.expires = now + SESSION_LIFETIME;
    let expires = session.expires;
    if !is_last {
        return Ok(json_answer(
            StatusCode::ACCEPTED,
            session_status(expires, vec![format!("{}-", last + 1)]),
        ));
    }
    if session.defer_commit {
        return Ok(json_answer(
            StatusCode::ACCEPTED,
            session_status(expires, Vec::new()),
        ));
    }
    committed(&mut store, token, base, now)
}

// --- downloads --------------------------------------------------------------------------

/// `GET /_layouts/15/download.aspx?UniqueId=…&tempauth=…`.
pub(crate) async fn download_entry(State(emulator): State<Emulator>, request: Request) -> Response {
    serve(
        emulator,
        request,
        "/_layouts/15/download.aspx",
        |emulator, parts, _body, _base| async move { download(&emulator, &parts).await },
    )
    .await
}

/// A `Range` header against a file of `size` bytes.
enum Range {
    Whole,
    Part(u64, u64),
    Unsatisfiable,
}

fn parse_range(headers: &HeaderMap, size: u64) -> Range {
    let Some(value) = headers.get(header::RANGE).and_then(|v| v.to_str().ok()) else {
        return Range::Whole;
    };
    let Some(spec) = value.trim().strip_prefix("bytes=") else {
        return Range::Whole;
    };
    if spec.contains(',') {
        // Several ranges: served whole (RFC 9110 lets a server ignore Range).
        return Range::Whole;
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return Range::Whole;
    };
    let (a, b) = (a.trim(), b.trim());
    if a.is_empty() {
        let Ok(n) = b.parse::<u64>() else {
            return Range::Whole;
        };
        if n == 0 || size == 0 {
            return Range::Unsatisfiable;
        }
        return Range::Part(size - n.min(size), size - 1);
    }
    let Ok(start) = a.parse::<u64>() else {
        return Range::Whole;
    };
    let end = if b.is_empty() {
        u64::MAX
    } else {
        match b.parse::<u64>() {
            Ok(end) if end >= start => end,
            _ => return Range::Whole,
        }
    };
    if start >= size {
        return Range::Unsatisfiable;
    }
    Range::Part(start, end.min(size - 1))
}

async fn download(
    emulator: &Emulator,
    parts: &axum::http::request::Parts,
) -> Result<Response, GraphError> {
    if parts.headers.contains_key(header::AUTHORIZATION) {
        return Err(unauthenticated(
            "The download URL is pre-authenticated: requests to it must not carry an Authorization header.",
        ));
    }
    let mut unique_id = None;
    let mut tempauth = None;
    for (k, v) in url::form_urlencoded::parse(parts.uri.query().unwrap_or_default().as_bytes()) {
        if k.eq_ignore_ascii_case("UniqueId") {
            unique_id = Some(v.into_owned());
        } else if k.eq_ignore_ascii_case("tempauth") {
            tempauth = Some(v.into_owned());
        }
    }
    let (Some(id), Some(tempauth)) = (unique_id, tempauth) else {
        return Err(unauthenticated("The download URL has no valid tempauth."));
    };
    let now = crate::clock::now_unix();
    let (file, size, mime, etag, name) = {
        let mut store = lock(emulator);
        let Some(d) = store.check_tempauth(&tempauth, &id, now) else {
            return Err(unauthenticated(
                "The download URL has expired or is not valid.",
            ));
        };
        let Some(item) = store.drives[d].item(&id) else {
            return Err(item_not_found());
        };
        let Some(f) = item.file() else {
            return Err(invalid_request("The item is a folder."));
        };
        let (size, mime, etag, name) = (item.size, f.mime.clone(), item.etag(), item.name.clone());
        let file = store.disk_file(d, &id).map_err(io_error)?;
        (file, size, mime, etag, name)
    };
    let (status, start, len) = match parse_range(&parts.headers, size) {
        Range::Whole => (StatusCode::OK, 0, size),
        Range::Part(a, b) => (StatusCode::PARTIAL_CONTENT, a, b - a + 1),
        Range::Unsatisfiable => {
            let mut response = (StatusCode::RANGE_NOT_SATISFIABLE, Body::empty()).into_response();
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{size}")) {
                response.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            return Ok(response);
        }
    };
    let mut handle = tokio::fs::File::open(&file.path).await.map_err(io_error)?;
    handle
        .seek(SeekFrom::Start(start))
        .await
        .map_err(io_error)?;
    // The file stays readable while streamed even if the item is deleted meanwhile (the
    // open handle keeps it); `file` is moved into the stream for the same reason elsewhere.
    // The open handle keeps the bytes readable even if the item is deleted meanwhile; the
    // `DiskFile` rides along so the file is not even unlinked before the stream ends.
    let reader = KeepAlive {
        inner: handle.take(len),
        _file: file,
    };
    let body = Body::from_stream(tokio_util::io::ReaderStream::with_capacity(
        reader,
        64 * 1024,
    ));
    let mut response = (status, body).into_response();
    let h = response.headers_mut();
    let mut set = |name: header::HeaderName, value: String| {
        if let Ok(v) = HeaderValue::from_str(&value) {
            h.insert(name, v);
        }
    };
    set(header::CONTENT_TYPE, mime);
    set(header::CONTENT_LENGTH, len.to_string());
    set(header::ETAG, etag);
    set(header::ACCEPT_RANGES, "bytes".into());
    set(
        header::CONTENT_DISPOSITION,
        format!(
            "attachment; filename*=UTF-8''{}",
            percent_encoding::utf8_percent_encode(&name, percent_encoding::NON_ALPHANUMERIC)
        ),
    );
    if status == StatusCode::PARTIAL_CONTENT {
        set(
            header::CONTENT_RANGE,
            format!("bytes {start}-{}/{size}", start + len - 1),
        );
    }
    Ok(response)
}

/// A reader that keeps the file it reads referenced until it is dropped.
struct KeepAlive {
    inner: tokio::io::Take<tokio::fs::File>,
    _file: std::sync::Arc<crate::files::DiskFile>,
}

impl tokio::io::AsyncRead for KeepAlive {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

// --- copy monitor -----------------------------------------------------------------------

/// `GET /_api/v2.0/monitor/{job}`.
pub(crate) async fn monitor_entry(
    State(emulator): State<Emulator>,
    Path(job): Path<String>,
    request: Request,
) -> Response {
    serve(
        emulator,
        request,
        "/_api/v2.0/monitor/{id}",
        move |emulator, _parts, _body, _base| async move { monitor(&emulator, &job) },
    )
    .await
}

fn monitor(emulator: &Emulator, job_id: &str) -> Result<Response, GraphError> {
    let mut store = lock(emulator);
    let Some(job) = store.jobs.get(job_id).cloned() else {
        return Err(item_not_found());
    };
    match &job.result {
        None => {
            let result = perform_copy(&mut store, &job);
            if let Some(j) = store.jobs.get_mut(job_id) {
                j.result = Some(result);
            }
            Ok(json_answer(
                StatusCode::ACCEPTED,
                json!({"operation": "ItemCopy", "percentageComplete": 50.0, "status": "inProgress"}),
            ))
        }
        Some(Ok(id)) => Ok(json_answer(
            StatusCode::OK,
            json!({"operation": "ItemCopy", "percentageComplete": 100.0, "resourceId": id, "status": "completed"}),
        )),
        Some(Err((code, message))) => Ok(json_answer(
            StatusCode::OK,
            json!({"operation": "ItemCopy", "status": "failed", "error": {"code": code, "message": message}}),
        )),
    }
}

// --- admin ------------------------------------------------------------------------------

fn admin_error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({"error": message.into()}))).into_response()
}

/// `POST /_emulator/drives/expire-delta-tokens`: 204.
pub(crate) async fn expire_delta_tokens(State(emulator): State<Emulator>) -> Response {
    emulator.expire_drive_delta_tokens();
    StatusCode::NO_CONTENT.into_response()
}

/// `POST /_emulator/uploads/expire`: 204.
pub(crate) async fn expire_uploads(State(emulator): State<Emulator>) -> Response {
    emulator.expire_upload_sessions();
    StatusCode::NO_CONTENT.into_response()
}

/// `POST /_emulator/drives/{drive-id}/quota` `{"total": bytes}`: 204, 404 for an unknown drive.
pub(crate) async fn set_quota(
    State(emulator): State<Emulator>,
    Path(drive): Path<String>,
    body: Bytes,
) -> Response {
    let total = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v.get("total").and_then(Value::as_u64));
    let Some(total) = total else {
        return admin_error(StatusCode::BAD_REQUEST, "expected {\"total\": bytes}");
    };
    if emulator.set_drive_quota(&drive, total) {
        StatusCode::NO_CONTENT.into_response()
    } else {
        admin_error(StatusCode::NOT_FOUND, format!("no drive '{drive}'"))
    }
}

/// `POST /_emulator/sites/{site-id}/permissions` `{"appId", "roles": ["read"|"write"]}`:
/// a `Sites.Selected` grant. 204; 404 for an unknown site.
pub(crate) async fn grant_site(
    State(emulator): State<Emulator>,
    Path(site): Path<String>,
    body: Bytes,
) -> Response {
    let Ok(value) = serde_json::from_slice::<Value>(&body) else {
        return admin_error(StatusCode::BAD_REQUEST, "invalid JSON");
    };
    let app = value.get("appId").and_then(Value::as_str);
    let roles: Option<Vec<&str>> = value
        .get("roles")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect());
    let (Some(app), Some(roles)) = (app, roles) else {
        return admin_error(
            StatusCode::BAD_REQUEST,
            "expected {\"appId\": \"…\", \"roles\": [\"read\" | \"write\"]}",
        );
    };
    if roles
        .iter()
        .any(|r| !r.eq_ignore_ascii_case("read") && !r.eq_ignore_ascii_case("write"))
        || roles.is_empty()
    {
        return admin_error(StatusCode::BAD_REQUEST, "roles are \"read\" or \"write\"");
    }
    if emulator.grant_site_permission(&site, app, &roles) {
        StatusCode::NO_CONTENT.into_response()
    } else {
        admin_error(StatusCode::NOT_FOUND, format!("no site '{site}'"))
    }
}
