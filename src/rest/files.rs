//! `/api/v1` file routes: drives, sites, items, content (streamed both ways) and delta.
//!
//! A `{drive}` is `me`, `user:<id or UPN>`, `site:<site id or host:/path>` (percent-encode
//! the `/` of a path: `site:contoso.sharepoint.com:%2Fsites%2Ffinance`) or a drive id.

use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, Query, Request};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures::TryStreamExt;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use super::{
    ApiError, Authenticated, AuthenticatedTransfer, ErrorBody, JsonBody, PageParams, Paged,
    json_error, paged,
};
use crate::app::AppState;
use crate::service::ServiceError;
use crate::service::files::{
    ConflictBehavior, Destination, Drive, DriveDelta, DriveItem, DriveRef, ItemOrder, ItemRef, Site,
};
use crate::service::files_transfer::{
    Download, UploadSource, UploadTarget, body_error, download_by_link,
};

/// Most of an unread upload body read and dropped before an error answer (larger bodies
/// are cut off: the client may then see the connection close instead of the answer).
const DRAIN_MAX: u64 = 64 * 1024 * 1024;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/sites", get(search_sites))
        .route("/sites/{*site}", get(get_site))
        .route("/drives/{drive}", get(get_drive))
        .route("/drives/{drive}/delta", get(drive_delta))
        .route("/drives/{drive}/root", get(get_root))
        .route(
            "/drives/{drive}/root/children",
            get(list_root_children).post(create_root_folder),
        )
        .route(
            "/drives/{drive}/root:/{*path}",
            get(get_by_path)
                .put(upload)
                // `files.max_upload_bytes` (the app-wide body limit) applies instead.
                .layer(axum::extract::DefaultBodyLimit::disable()),
        )
        .route(
            "/drives/{drive}/items/{item}",
            get(get_item).patch(update_item).delete(delete_item),
        )
        .route(
            "/drives/{drive}/items/{item}/children",
            get(list_children).post(create_folder),
        )
        .route("/drives/{drive}/items/{item}/content", get(download))
        .route("/drives/{drive}/items/{item}/copy", post(copy_item))
        .route("/downloads/{token}", get(download_link))
}

/// True for the upload route, which takes bodies up to `files.max_upload_bytes` and may
/// run for `files.transfer_timeout` (the app-wide layers ask).
pub(crate) fn is_upload(method: &axum::http::Method, path: &str) -> bool {
    method == axum::http::Method::PUT
        && path.starts_with("/api/v1/drives/")
        && path.contains("/root:/")
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SiteSearchParams {
    /// Words of the site's name or description; `*` for every site.
    search: String,
}

/// Sites matching a search (only those the caller may address).
#[utoipa::path(get, path = "/api/v1/sites", tag = "files",
    params(SiteSearchParams, PageParams),
    responses(
        (status = 200, body = Paged<Site>),
        (status = 400, description = "BAD_USER_INPUT", body = ErrorBody),
    ))]
pub async fn search_sites(
    Authenticated(session): Authenticated,
    Query(params): Query<SiteSearchParams>,
    Query(page): Query<PageParams>,
) -> Result<Json<Paged<Site>>, ApiError> {
    let page = session
        .sites(&params.search, page.limit(), page.cursor())
        .await?;
    Ok(Json(paged(page)))
}

/// A site by id or `host:/path`; `…/drives` after it lists the site's document libraries.
#[utoipa::path(get, path = "/api/v1/sites/{site}", tag = "files",
    params(("site" = String, Path, description = "Site id (host,guid,guid) or host:/server-relative-path; append /drives for its libraries")),
    responses(
        (status = 200, description = "The site, or its libraries (`{\"data\": [Drive]}`)", body = Site),
        (status = 403, description = "Site outside the caller's sites (FORBIDDEN)", body = ErrorBody),
        (status = 404, description = "NOT_FOUND", body = ErrorBody),
    ))]
pub async fn get_site(
    Authenticated(session): Authenticated,
    Path(site): Path<String>,
) -> Result<Response, ApiError> {
    if let Some(site) = site.strip_suffix("/drives") {
        let drives = session.site_drives(site).await?;
        return Ok(Json(serde_json::json!({ "data": drives })).into_response());
    }
    Ok(Json(session.site(&site).await?).into_response())
}

/// A drive (OneDrive or document library) with its owner and quota.
#[utoipa::path(get, path = "/api/v1/drives/{drive}", tag = "files",
    params(("drive" = String, Path, description = "me, user:<id or UPN>, site:<site>, or a drive id")),
    responses(
        (status = 200, body = Drive),
        (status = 403, description = "Drive outside the caller's users and sites (FORBIDDEN)", body = ErrorBody),
        (status = 404, description = "NOT_FOUND", body = ErrorBody),
    ))]
pub async fn get_drive(
    Authenticated(session): Authenticated,
    Path(drive): Path<String>,
) -> Result<Json<Drive>, ApiError> {
    Ok(Json(session.drive(&DriveRef::parse(&drive)?).await?))
}

/// The drive's root folder.
#[utoipa::path(get, path = "/api/v1/drives/{drive}/root", tag = "files",
    params(("drive" = String, Path, description = "Drive reference")),
    responses((status = 200, body = DriveItem), (status = 403, description = "FORBIDDEN", body = ErrorBody)))]
pub async fn get_root(
    Authenticated(session): Authenticated,
    Path(drive): Path<String>,
) -> Result<Json<DriveItem>, ApiError> {
    let drive = DriveRef::parse(&drive)?;
    Ok(Json(
        session.drive_item(&drive, &ItemRef::Root, false).await?,
    ))
}

/// An item by id.
#[utoipa::path(get, path = "/api/v1/drives/{drive}/items/{item}", tag = "files",
    params(("drive" = String, Path, description = "Drive reference"), ("item" = String, Path, description = "Item id")),
    responses((status = 200, body = DriveItem), (status = 404, description = "NOT_FOUND", body = ErrorBody)))]
pub async fn get_item(
    Authenticated(session): Authenticated,
    Path((drive, item)): Path<(String, String)>,
) -> Result<Json<DriveItem>, ApiError> {
    let drive = DriveRef::parse(&drive)?;
    Ok(Json(
        session
            .drive_item(&drive, &ItemRef::id(&item)?, false)
            .await?,
    ))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ChildrenParams {
    /// Sort order (default: Graph's, by name).
    order_by: Option<ItemOrder>,
}

/// The root folder's children.
#[utoipa::path(get, path = "/api/v1/drives/{drive}/root/children", tag = "files",
    params(("drive" = String, Path, description = "Drive reference"), ChildrenParams, PageParams),
    responses((status = 200, body = Paged<DriveItem>), (status = 400, description = "BAD_USER_INPUT", body = ErrorBody)))]
pub async fn list_root_children(
    Authenticated(session): Authenticated,
    Path(drive): Path<String>,
    Query(params): Query<ChildrenParams>,
    Query(page): Query<PageParams>,
) -> Result<Json<Paged<DriveItem>>, ApiError> {
    children(session, &drive, ItemRef::Root, params, page).await
}

/// A folder's children.
#[utoipa::path(get, path = "/api/v1/drives/{drive}/items/{item}/children", tag = "files",
    params(("drive" = String, Path, description = "Drive reference"), ("item" = String, Path, description = "Folder id"), ChildrenParams, PageParams),
    responses((status = 200, body = Paged<DriveItem>), (status = 404, description = "NOT_FOUND", body = ErrorBody)))]
pub async fn list_children(
    Authenticated(session): Authenticated,
    Path((drive, item)): Path<(String, String)>,
    Query(params): Query<ChildrenParams>,
    Query(page): Query<PageParams>,
) -> Result<Json<Paged<DriveItem>>, ApiError> {
    children(session, &drive, ItemRef::id(&item)?, params, page).await
}

async fn children(
    session: crate::service::Session,
    drive: &str,
    folder: ItemRef,
    params: ChildrenParams,
    page: PageParams,
) -> Result<Json<Paged<DriveItem>>, ApiError> {
    let drive = DriveRef::parse(drive)?;
    let page = session
        .children(
            &drive,
            &folder,
            params.order_by,
            page.limit(),
            page.cursor(),
            false,
        )
        .await?;
    Ok(Json(paged(page)))
}

/// `root:/a/b.pdf` (a trailing `:` allowed) is the item; `root:/a:/children` its children.
#[utoipa::path(get, path = "/api/v1/drives/{drive}/root:/{path}", tag = "files",
    params(("drive" = String, Path, description = "Drive reference"), ("path" = String, Path, description = "Item path, e.g. Reports/q1.pdf; end with :/children for a folder's children"), ChildrenParams, PageParams),
    responses(
        (status = 200, description = "The item, or `Paged<DriveItem>` for :/children", body = DriveItem),
        (status = 400, description = "A path with .., an illegal character or a reserved name (BAD_USER_INPUT)", body = ErrorBody),
        (status = 404, description = "NOT_FOUND", body = ErrorBody),
    ))]
pub async fn get_by_path(
    Authenticated(session): Authenticated,
    Path((drive, path)): Path<(String, String)>,
    Query(params): Query<ChildrenParams>,
    Query(page): Query<PageParams>,
) -> Result<Response, ApiError> {
    if let Some(folder) = path.strip_suffix(":/children") {
        let listed = children(session, &drive, ItemRef::path(folder)?, params, page).await?;
        return Ok(listed.into_response());
    }
    let item = ItemRef::path(path.strip_suffix(':').unwrap_or(&path))?;
    let drive = DriveRef::parse(&drive)?;
    Ok(Json(session.drive_item(&drive, &item, false).await?).into_response())
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UploadParams {
    /// If the name is taken: `replace` (default, as Graph's PUT), `fail` (409 CONFLICT) or
    /// `rename`.
    conflict_behavior: Option<ConflictBehavior>,
}

/// Uploads a file (the raw body) to `root:/{folder path}/{name}:/content`. Up to 4 MB in
/// one request to Graph, larger in an upload session (resumed after transient failures);
/// memory use does not grow with the size. `If-Match: <eTag>` replaces only that version.
#[utoipa::path(put, path = "/api/v1/drives/{drive}/root:/{path}", tag = "files",
    params(("drive" = String, Path, description = "Drive reference"), ("path" = String, Path, description = "Folder path and file name, ending with :/content, e.g. Invoices/2026/INV-1.pdf:/content"), UploadParams,
        ("If-Match" = Option<String>, Header, description = "Replace only if the file still has this eTag")),
    request_body(content = Vec<u8>, content_type = "application/octet-stream", description = "The file's bytes; its Content-Type is kept"),
    responses(
        (status = 200, description = "Uploaded", body = DriveItem),
        (status = 400, description = "Bad path or name (BAD_USER_INPUT)", body = ErrorBody),
        (status = 403, description = "FORBIDDEN", body = ErrorBody),
        (status = 409, description = "The name is taken and conflict_behavior is fail (CONFLICT)", body = ErrorBody),
        (status = 412, description = "If-Match does not match (PRECONDITION_FAILED)", body = ErrorBody),
        (status = 413, description = "Over files.max_upload_bytes (PAYLOAD_TOO_LARGE)", body = ErrorBody),
        (status = 507, description = "The drive is full (INSUFFICIENT_STORAGE)", body = ErrorBody),
    ))]
pub async fn upload(
    AuthenticatedTransfer(session): AuthenticatedTransfer,
    Path((drive, path)): Path<(String, String)>,
    Query(params): Query<UploadParams>,
    request: Request,
) -> Result<Json<DriveItem>, ApiError> {
    let path = path.strip_suffix(":/content").ok_or_else(|| {
        ServiceError::BadInput("upload to root:/{folder path}/{file name}:/content".into())
    })?;
    let (parent, name) = match path.trim_matches('/').rsplit_once('/') {
        Some((parent, name)) => (ItemRef::path(parent)?, name.to_owned()),
        None => (ItemRef::Root, path.trim_matches('/').to_owned()),
    };
    let drive = DriveRef::parse(&drive)?;
    let headers = request.headers().clone();
    let target = UploadTarget {
        parent,
        name,
        conflict: params
            .conflict_behavior
            .unwrap_or(ConflictBehavior::Replace),
        if_match: header_text(&headers, header::IF_MATCH),
    };
    let content_type = header_text(&headers, header::CONTENT_TYPE);
    let declared =
        header_text(&headers, header::CONTENT_LENGTH).and_then(|v| v.parse::<u64>().ok());
    let stream = request
        .into_body()
        .into_data_stream()
        .map_err(std::io::Error::other);
    let mut source = match declared {
        Some(size) => UploadSource {
            reader: Box::pin(tokio_util::io::StreamReader::new(stream)),
            size,
            content_type,
        },
        None => spool(stream, content_type).await?,
    };
    match session.upload(&drive, &target, &mut source).await {
        Ok(item) => Ok(Json(item)),
        Err(e) => {
            // Refused early (policy, conflict, quota) while the client is still sending.
            source.drain(DRAIN_MAX, Duration::from_secs(5)).await;
            Err(e.into())
        }
    }
}

/// A body without `Content-Length` (chunked) is spooled to a temporary file first: an
/// upload session needs the total size before the first byte.
async fn spool(
    stream: impl futures::Stream<Item = std::io::Result<bytes::Bytes>> + Send + 'static,
    content_type: Option<String>,
) -> Result<UploadSource, ApiError> {
    use tokio::io::{AsyncSeekExt, AsyncWriteExt};
    let file = tempfile::tempfile().map_err(|_| ServiceError::Internal)?;
    let mut file = tokio::fs::File::from_std(file);
    let mut reader = Box::pin(tokio_util::io::StreamReader::new(stream));
    let size = tokio::io::copy(&mut reader, &mut file)
        .await
        .map_err(body_error)?;
    file.flush().await.map_err(|_| ServiceError::Internal)?;
    file.rewind().await.map_err(|_| ServiceError::Internal)?;
    Ok(UploadSource {
        reader: Box::pin(file),
        size,
        content_type,
    })
}

/// An item's content, streamed from Graph (`Range` supported: 206, or 416 outside the
/// file). The caller never sees Graph's pre-authenticated URL.
#[utoipa::path(get, path = "/api/v1/drives/{drive}/items/{item}/content", tag = "files",
    params(("drive" = String, Path, description = "Drive reference"), ("item" = String, Path, description = "File id"),
        ("Range" = Option<String>, Header, description = "One byte range, e.g. bytes=0-1023")),
    responses(
        (status = 200, description = "The file, with Content-Type, Content-Length and ETag", content_type = "*/*"),
        (status = 206, description = "The requested range, with Content-Range", content_type = "*/*"),
        (status = 400, description = "A folder (BAD_USER_INPUT)", body = ErrorBody),
        (status = 404, description = "NOT_FOUND", body = ErrorBody),
        (status = 416, description = "Range outside the file (RANGE_NOT_SATISFIABLE; Content-Range: bytes */size)", body = ErrorBody),
    ))]
pub async fn download(
    Authenticated(session): Authenticated,
    Path((drive, item)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let drive = DriveRef::parse(&drive)?;
    let range = header_text(&headers, header::RANGE);
    let Download {
        response,
        name,
        mime_type,
        e_tag,
    } = session.download(&drive, &item, range.as_deref()).await?;
    Ok(stream_response(
        response,
        name.as_deref().unwrap_or("download"),
        mime_type.as_deref(),
        e_tag.as_deref(),
    ))
}

/// A signed gateway download link (from GraphQL `DriveItem.downloadUrl`): no token
/// needed, valid for `files.link_ttl`; `Range` supported.
#[utoipa::path(get, path = "/api/v1/downloads/{token}", tag = "files", security(()),
    params(("token" = String, Path, description = "The signed link token"),
        ("Range" = Option<String>, Header, description = "One byte range")),
    responses(
        (status = 200, description = "The file", content_type = "*/*"),
        (status = 206, description = "The requested range", content_type = "*/*"),
        (status = 404, description = "Invalid or expired link (NOT_FOUND)", body = ErrorBody),
        (status = 416, description = "RANGE_NOT_SATISFIABLE", body = ErrorBody),
    ))]
pub async fn download_link(
    axum::extract::State(state): axum::extract::State<AppState>,
    Path(token): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let range = header_text(&headers, header::RANGE);
    let (ticket, response) = download_by_link(&state.services, &token, range.as_deref()).await?;
    Ok(stream_response(
        response,
        &ticket.name,
        ticket.mime_type.as_deref(),
        None,
    ))
}

/// Graph's answer streamed on: its status (200/206), length and range, with the file's
/// own type and name; ETag from Graph, else the item's.
fn stream_response(
    upstream: reqwest::Response,
    name: &str,
    mime_type: Option<&str>,
    e_tag: Option<&str>,
) -> Response {
    let status = StatusCode::from_u16(upstream.status().as_u16()).unwrap_or(StatusCode::OK);
    let upstream_headers = upstream.headers().clone();
    let length = upstream.content_length();
    let mut response = Body::from_stream(upstream.bytes_stream()).into_response();
    *response.status_mut() = status;
    let headers = response.headers_mut();
    let content_type = mime_type
        .and_then(|t| HeaderValue::from_str(t).ok())
        .unwrap_or(HeaderValue::from_static("application/octet-stream"));
    headers.insert(header::CONTENT_TYPE, content_type);
    headers.insert(
        header::CONTENT_DISPOSITION,
        super::mail::content_disposition(name),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if let Some(length) = length {
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    }
    if let Some(range) = upstream_headers.get(header::CONTENT_RANGE) {
        headers.insert(header::CONTENT_RANGE, range.clone());
    }
    let etag = upstream_headers
        .get(header::ETAG)
        .cloned()
        .or_else(|| e_tag.and_then(|t| HeaderValue::from_str(t).ok()));
    if let Some(etag) = etag {
        headers.insert(header::ETAG, etag);
    }
    response
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewFolder {
    name: String,
    /// If the name is taken: `fail` (default, 409 CONFLICT), `rename` or `replace`.
    #[serde(default)]
    conflict_behavior: ConflictBehavior,
}

/// Creates a folder in the root folder.
#[utoipa::path(post, path = "/api/v1/drives/{drive}/root/children", tag = "files",
    params(("drive" = String, Path, description = "Drive reference")),
    request_body = NewFolder,
    responses((status = 201, body = DriveItem), (status = 409, description = "CONFLICT", body = ErrorBody)))]
pub async fn create_root_folder(
    Authenticated(session): Authenticated,
    Path(drive): Path<String>,
    body: JsonBody<NewFolder>,
) -> Result<(StatusCode, Json<DriveItem>), ApiError> {
    new_folder(session, &drive, ItemRef::Root, body).await
}

/// Creates a folder in a folder.
#[utoipa::path(post, path = "/api/v1/drives/{drive}/items/{item}/children", tag = "files",
    params(("drive" = String, Path, description = "Drive reference"), ("item" = String, Path, description = "Parent folder id")),
    request_body = NewFolder,
    responses(
        (status = 201, body = DriveItem),
        (status = 400, description = "Illegal or reserved name (BAD_USER_INPUT)", body = ErrorBody),
        (status = 409, description = "The name is taken (CONFLICT)", body = ErrorBody),
    ))]
pub async fn create_folder(
    Authenticated(session): Authenticated,
    Path((drive, item)): Path<(String, String)>,
    body: JsonBody<NewFolder>,
) -> Result<(StatusCode, Json<DriveItem>), ApiError> {
    new_folder(session, &drive, ItemRef::id(&item)?, body).await
}

async fn new_folder(
    session: crate::service::Session,
    drive: &str,
    parent: ItemRef,
    body: JsonBody<NewFolder>,
) -> Result<(StatusCode, Json<DriveItem>), ApiError> {
    let Json(body) = body.map_err(json_error)?;
    let drive = DriveRef::parse(drive)?;
    let folder = session
        .create_folder(&drive, &parent, &body.name, body.conflict_behavior)
        .await?;
    Ok((StatusCode::CREATED, Json(folder)))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ItemPatch {
    /// New name.
    name: Option<String>,
    /// Move into this folder (same drive).
    parent_id: Option<String>,
}

/// Renames and/or moves an item. `If-Match: <eTag>` changes it only if it is still that
/// version.
#[utoipa::path(patch, path = "/api/v1/drives/{drive}/items/{item}", tag = "files",
    params(("drive" = String, Path, description = "Drive reference"), ("item" = String, Path, description = "Item id"),
        ("If-Match" = Option<String>, Header, description = "The item's eTag")),
    request_body = ItemPatch,
    responses(
        (status = 200, body = DriveItem),
        (status = 400, description = "BAD_USER_INPUT", body = ErrorBody),
        (status = 409, description = "CONFLICT", body = ErrorBody),
        (status = 412, description = "PRECONDITION_FAILED", body = ErrorBody),
    ))]
pub async fn update_item(
    Authenticated(session): Authenticated,
    Path((drive, item)): Path<(String, String)>,
    headers: HeaderMap,
    body: JsonBody<ItemPatch>,
) -> Result<Json<DriveItem>, ApiError> {
    let Json(body) = body.map_err(json_error)?;
    let drive = DriveRef::parse(&drive)?;
    let if_match = header_text(&headers, header::IF_MATCH);
    let updated = match (&body.parent_id, &body.name) {
        (Some(parent), name) => {
            session
                .move_item(&drive, &item, parent, name.as_deref(), if_match.as_deref())
                .await?
        }
        (None, Some(name)) => {
            session
                .rename_item(&drive, &item, name, if_match.as_deref())
                .await?
        }
        (None, None) => {
            return Err(ServiceError::BadInput("give a name, a parent_id, or both".into()).into());
        }
    };
    Ok(Json(updated))
}

/// Deletes an item (a folder with its contents). `If-Match` as for PATCH.
#[utoipa::path(delete, path = "/api/v1/drives/{drive}/items/{item}", tag = "files",
    params(("drive" = String, Path, description = "Drive reference"), ("item" = String, Path, description = "Item id"),
        ("If-Match" = Option<String>, Header, description = "The item's eTag")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "NOT_FOUND", body = ErrorBody),
        (status = 412, description = "PRECONDITION_FAILED", body = ErrorBody),
    ))]
pub async fn delete_item(
    Authenticated(session): Authenticated,
    Path((drive, item)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    let drive = DriveRef::parse(&drive)?;
    let if_match = header_text(&headers, header::IF_MATCH);
    session
        .delete_item(&drive, &item, if_match.as_deref())
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CopyRequest {
    /// The destination folder's id.
    parent_id: String,
    /// The destination drive (default: the same drive).
    drive: Option<String>,
    /// The copy's name (default: the original's).
    name: Option<String>,
    /// If the name is taken: `fail` (default), `rename` or `replace`.
    #[serde(default)]
    conflict_behavior: ConflictBehavior,
}

/// Copies an item (a folder with its contents) and answers when Graph's asynchronous copy
/// has finished, with the new item.
#[utoipa::path(post, path = "/api/v1/drives/{drive}/items/{item}/copy", tag = "files",
    params(("drive" = String, Path, description = "Drive reference"), ("item" = String, Path, description = "Item id")),
    request_body = CopyRequest,
    responses(
        (status = 201, body = DriveItem),
        (status = 409, description = "CONFLICT", body = ErrorBody),
        (status = 507, description = "INSUFFICIENT_STORAGE", body = ErrorBody),
    ))]
pub async fn copy_item(
    Authenticated(session): Authenticated,
    Path((drive, item)): Path<(String, String)>,
    body: JsonBody<CopyRequest>,
) -> Result<(StatusCode, Json<DriveItem>), ApiError> {
    let Json(body) = body.map_err(json_error)?;
    let drive = DriveRef::parse(&drive)?;
    let to = Destination {
        drive: body.drive.as_deref().map(DriveRef::parse).transpose()?,
        parent_id: body.parent_id,
        name: body.name,
    };
    let copy = session
        .copy_item(&drive, &item, &to, body.conflict_behavior)
        .await?;
    Ok((StatusCode::CREATED, Json(copy)))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DriveDeltaParams {
    /// `delta_token` of the previous call; omit for the first, full sync.
    delta_token: Option<String>,
    /// Most items per call, 1 to 1000 (default 200).
    limit: Option<usize>,
}

/// Changes to a drive since a delta token; deleted items by id. A stale token answers
/// 410 `SYNC_RESET`: start over without one.
#[utoipa::path(get, path = "/api/v1/drives/{drive}/delta", tag = "files",
    params(("drive" = String, Path, description = "Drive reference"), DriveDeltaParams),
    responses(
        (status = 200, body = DriveDelta),
        (status = 400, description = "BAD_USER_INPUT", body = ErrorBody),
        (status = 410, description = "The token expired (SYNC_RESET)", body = ErrorBody),
    ))]
pub async fn drive_delta(
    Authenticated(session): Authenticated,
    Path(drive): Path<String>,
    Query(params): Query<DriveDeltaParams>,
) -> Result<Json<DriveDelta>, ApiError> {
    let drive = DriveRef::parse(&drive)?;
    Ok(Json(
        session
            .drive_delta(
                &drive,
                params.delta_token.as_deref(),
                params.limit.unwrap_or(200),
            )
            .await?,
    ))
}

fn header_text(headers: &HeaderMap, name: header::HeaderName) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}
