//! `/api/v1` mail routes: the same capabilities as the GraphQL mail fields and mutations.

use std::io::{Seek, Write};

use axum::body::Body;
use axum::extract::{FromRequest, Multipart, Path, Query, Request};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post};
use axum::{Json, Router};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use super::{
    ApiError, Authenticated, DEFAULT_LIMIT, ErrorBody, JsonBody, PageParams, Paged, json_error,
    paged, yes,
};
use crate::app::AppState;
use crate::service::ServiceError;
use crate::service::mail::{
    Attachment, BodyType, MailFolder, Message, MessageDelta, MessageFilter, MessageOrder,
    MessageQuery, MessageSelect,
};
use crate::service::mail_send::{
    AttachmentContent, MAX_ATTACHMENT_BYTES, MessagePatch, OutgoingAttachment, OutgoingMessage,
    SendReceipt,
};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/users/{id}/mail-folders", get(list_mail_folders))
        .route("/users/{id}/mail-folders/{folder}", get(get_mail_folder))
        .route(
            "/users/{id}/mail-folders/{folder}/child-folders",
            get(list_child_folders),
        )
        .route(
            "/users/{id}/mail-folders/{folder}/messages/delta",
            get(messages_delta),
        )
        .route(
            "/users/{id}/messages",
            get(list_messages).post(create_draft),
        )
        .route(
            "/users/{id}/messages/{message}",
            get(get_message)
                .patch(update_message)
                .delete(delete_message),
        )
        .route(
            "/users/{id}/messages/{message}/attachments",
            get(list_attachments),
        )
        .route(
            "/users/{id}/messages/{message}/attachments/{attachment}/content",
            get(attachment_content),
        )
        .route("/users/{id}/messages/{message}/reply", post(reply))
        .route("/users/{id}/messages/{message}/reply-all", post(reply_all))
        .route("/users/{id}/messages/{message}/forward", post(forward))
        .route("/users/{id}/messages/{message}/move", post(move_message))
        .route("/users/{id}/drafts/{message}", patch(update_draft))
        .route("/users/{id}/drafts/{message}/send", post(send_draft))
        // The app-wide limit (`http.upload_limit_bytes` for multipart) applies instead of
        // axum's 2 MB default for extractors.
        .route(
            "/users/{id}/send-mail",
            post(send_mail).layer(axum::extract::DefaultBodyLimit::disable()),
        )
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MessageListParams {
    /// Page size, 1 to 100 (default 25).
    limit: Option<usize>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
    /// Folder id or well-known name (`inbox`, `sentitems`, `drafts`, `deleteditems`,
    /// `junkemail`, `archive`); default: every folder.
    folder: Option<String>,
    /// KQL search (`from:`, `subject:`, words); not combinable with filters or `order_by`.
    search: Option<String>,
    /// `received_desc` (default), `received_asc`, `sent_desc`, `sent_asc`.
    order_by: Option<MessageOrder>,
    /// Sender address.
    from: Option<String>,
    /// A `to` recipient address.
    to: Option<String>,
    subject_contains: Option<String>,
    /// ISO 8601 with offset; inclusive.
    received_after: Option<String>,
    /// ISO 8601 with offset; exclusive.
    received_before: Option<String>,
    is_read: Option<bool>,
    has_attachments: Option<bool>,
    /// `low`, `normal` or `high`.
    importance: Option<String>,
    /// Comma-separated categories; messages must carry every one.
    categories: Option<String>,
    conversation_id: Option<String>,
    /// `html` (default) or `text`.
    body_format: Option<BodyType>,
    /// `attachments`: include attachment metadata.
    expand: Option<String>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MessageParams {
    /// `html` (default) or `text`.
    body_format: Option<BodyType>,
    /// `attachments`: include attachment metadata.
    expand: Option<String>,
}

fn expand_attachments(expand: Option<&str>) -> Result<bool, ApiError> {
    match expand {
        None | Some("") => Ok(false),
        Some("attachments") => Ok(true),
        Some(other) => Err(ServiceError::BadInput(format!(
            "expand: only 'attachments' is supported, got '{other}'"
        ))
        .into()),
    }
}

/// The top-level mail folders of a mailbox (user or shared mailbox).
#[utoipa::path(get, path = "/api/v1/users/{id}/mail-folders", tag = "mail",
    params(("id" = String, Path, description = "Mailbox: object id, user principal name or address, or `me`"), PageParams),
    responses(
        (status = 200, body = Paged<MailFolder>),
        (status = 400, description = "BAD_USER_INPUT", body = ErrorBody),
        (status = 403, description = "FORBIDDEN", body = ErrorBody),
        (status = 404, description = "NOT_FOUND", body = ErrorBody),
    ))]
pub async fn list_mail_folders(
    Authenticated(session): Authenticated,
    Path(id): Path<String>,
    Query(page): Query<PageParams>,
) -> Result<Json<Paged<MailFolder>>, ApiError> {
    let result = session
        .mail_folders(&id, page.limit(), page.cursor())
        .await?;
    Ok(Json(paged(result)))
}

/// One mail folder by id or well-known name.
#[utoipa::path(get, path = "/api/v1/users/{id}/mail-folders/{folder}", tag = "mail",
    params(("id" = String, Path, description = "Mailbox"), ("folder" = String, Path, description = "Folder id or well-known name")),
    responses(
        (status = 200, body = MailFolder),
        (status = 403, description = "FORBIDDEN", body = ErrorBody),
        (status = 404, description = "NOT_FOUND", body = ErrorBody),
    ))]
pub async fn get_mail_folder(
    Authenticated(session): Authenticated,
    Path((id, folder)): Path<(String, String)>,
) -> Result<Json<MailFolder>, ApiError> {
    Ok(Json(session.mail_folder(&id, &folder).await?))
}

/// The child folders of a folder.
#[utoipa::path(get, path = "/api/v1/users/{id}/mail-folders/{folder}/child-folders", tag = "mail",
    params(("id" = String, Path, description = "Mailbox"), ("folder" = String, Path, description = "Folder id or well-known name"), PageParams),
    responses(
        (status = 200, body = Paged<MailFolder>),
        (status = 403, description = "FORBIDDEN", body = ErrorBody),
        (status = 404, description = "NOT_FOUND", body = ErrorBody),
    ))]
pub async fn list_child_folders(
    Authenticated(session): Authenticated,
    Path((id, folder)): Path<(String, String)>,
    Query(page): Query<PageParams>,
) -> Result<Json<Paged<MailFolder>>, ApiError> {
    let result = session
        .child_folders(&id, &folder, page.limit(), page.cursor())
        .await?;
    Ok(Json(paged(result)))
}

/// Messages of a mailbox, filtered or searched, newest first.
#[utoipa::path(get, path = "/api/v1/users/{id}/messages", tag = "mail",
    params(("id" = String, Path, description = "Mailbox"), MessageListParams),
    responses(
        (status = 200, body = Paged<Message>),
        (status = 400, description = "Invalid filter, search, limit or cursor (BAD_USER_INPUT)", body = ErrorBody),
        (status = 403, description = "FORBIDDEN", body = ErrorBody),
        (status = 404, description = "Unknown mailbox or folder (NOT_FOUND)", body = ErrorBody),
    ))]
pub async fn list_messages(
    Authenticated(session): Authenticated,
    Path(id): Path<String>,
    Query(params): Query<MessageListParams>,
) -> Result<Json<Paged<Message>>, ApiError> {
    let select = MessageSelect::all(
        params.body_format.unwrap_or(BodyType::Html),
        expand_attachments(params.expand.as_deref())?,
    );
    let query = MessageQuery {
        folder: params.folder,
        filter: MessageFilter {
            from: params.from,
            to: params.to,
            subject_contains: params.subject_contains,
            received_after: params.received_after,
            received_before: params.received_before,
            is_read: params.is_read,
            has_attachments: params.has_attachments,
            importance: params.importance,
            categories: params
                .categories
                .map(|c| c.split(',').map(|s| s.trim().to_owned()).collect())
                .unwrap_or_default(),
            conversation_id: params.conversation_id,
        },
        search: params.search,
        order: params.order_by,
        first: params.limit.unwrap_or(DEFAULT_LIMIT),
        after: params.cursor,
    };
    let result = session.messages(&id, &query, &select).await?;
    Ok(Json(paged(result)))
}

/// One message.
#[utoipa::path(get, path = "/api/v1/users/{id}/messages/{message}", tag = "mail",
    params(("id" = String, Path, description = "Mailbox"), ("message" = String, Path, description = "Message id"), MessageParams),
    responses(
        (status = 200, body = Message),
        (status = 403, description = "FORBIDDEN", body = ErrorBody),
        (status = 404, description = "NOT_FOUND", body = ErrorBody),
    ))]
pub async fn get_message(
    Authenticated(session): Authenticated,
    Path((id, message)): Path<(String, String)>,
    Query(params): Query<MessageParams>,
) -> Result<Json<Message>, ApiError> {
    let select = MessageSelect::all(
        params.body_format.unwrap_or(BodyType::Html),
        expand_attachments(params.expand.as_deref())?,
    );
    Ok(Json(session.message(&id, &message, &select).await?))
}

/// Attachment metadata of a message.
#[utoipa::path(get, path = "/api/v1/users/{id}/messages/{message}/attachments", tag = "mail",
    params(("id" = String, Path, description = "Mailbox"), ("message" = String, Path, description = "Message id")),
    responses(
        (status = 200, body = Vec<Attachment>),
        (status = 403, description = "FORBIDDEN", body = ErrorBody),
        (status = 404, description = "NOT_FOUND", body = ErrorBody),
    ))]
pub async fn list_attachments(
    Authenticated(session): Authenticated,
    Path((id, message)): Path<(String, String)>,
) -> Result<Json<Vec<Attachment>>, ApiError> {
    Ok(Json(session.attachments(&id, &message).await?))
}

/// `Content-Disposition: attachment` with the name as RFC 6266 / RFC 5987 `filename*`, so
/// a hostile name (quotes, CR/LF) can never break out of the header.
pub(super) fn content_disposition(name: &str) -> HeaderValue {
    // RFC 5987 `attr-char`: letters, digits and `!#$&+-.^_`|~` stay as they are.
    const NOT_ATTR_CHAR: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'!')
        .remove(b'#')
        .remove(b'$')
        .remove(b'&')
        .remove(b'+')
        .remove(b'-')
        .remove(b'.')
        .remove(b'^')
        .remove(b'_')
        .remove(b'`')
        .remove(b'|')
        .remove(b'~');
    let encoded = percent_encoding::utf8_percent_encode(name, NOT_ATTR_CHAR).to_string();
    HeaderValue::from_str(&format!("attachment; filename*=UTF-8''{encoded}"))
        .unwrap_or_else(|_| HeaderValue::from_static("attachment"))
}

/// An attachment's bytes, streamed from Graph through the gateway.
#[utoipa::path(get, path = "/api/v1/users/{id}/messages/{message}/attachments/{attachment}/content", tag = "mail",
    params(("id" = String, Path, description = "Mailbox"), ("message" = String, Path, description = "Message id"), ("attachment" = String, Path, description = "Attachment id")),
    responses(
        (status = 200, description = "The file, with its Content-Type and Content-Length", content_type = "*/*"),
        (status = 400, description = "Not a file attachment (BAD_USER_INPUT)", body = ErrorBody),
        (status = 403, description = "FORBIDDEN", body = ErrorBody),
        (status = 404, description = "NOT_FOUND", body = ErrorBody),
    ))]
pub async fn attachment_content(
    Authenticated(session): Authenticated,
    Path((id, message, attachment)): Path<(String, String, String)>,
) -> Result<Response, ApiError> {
    let (meta, upstream) = session
        .attachment_content(&id, &message, &attachment)
        .await?;
    let content_type = meta
        .content_type
        .as_deref()
        .and_then(|t| HeaderValue::from_str(t).ok())
        .unwrap_or(HeaderValue::from_static("application/octet-stream"));
    let length = upstream.content_length();
    let mut response = Body::from_stream(upstream.bytes_stream()).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, content_type);
    headers.insert(
        header::CONTENT_DISPOSITION,
        content_disposition(meta.name.as_deref().unwrap_or("attachment")),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if let Some(length) = length {
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    }
    Ok(response)
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeltaParams {
    /// `delta_token` of the previous call; omit for the first, full sync.
    delta_token: Option<String>,
    /// Most messages returned by this call, 1 to 200 (default 50).
    limit: Option<usize>,
}

/// Changes to a mail folder since a delta token. A stale token answers 410 `SYNC_RESET`:
/// start over without one.
#[utoipa::path(get, path = "/api/v1/users/{id}/mail-folders/{folder}/messages/delta", tag = "mail",
    params(("id" = String, Path, description = "Mailbox"), ("folder" = String, Path, description = "Folder id or well-known name"), DeltaParams),
    responses(
        (status = 200, body = MessageDelta),
        (status = 400, description = "BAD_USER_INPUT", body = ErrorBody),
        (status = 403, description = "FORBIDDEN", body = ErrorBody),
        (status = 410, description = "The token expired (SYNC_RESET)", body = ErrorBody),
    ))]
pub async fn messages_delta(
    Authenticated(session): Authenticated,
    Path((id, folder)): Path<(String, String)>,
    Query(params): Query<DeltaParams>,
) -> Result<Json<MessageDelta>, ApiError> {
    let select = MessageSelect::all(BodyType::Html, false);
    Ok(Json(
        session
            .messages_delta(
                &id,
                &folder,
                params.delta_token.as_deref(),
                params.limit.unwrap_or(50),
                &select,
            )
            .await?,
    ))
}

/// An attachment in JSON (small files; larger ones go as multipart/form-data parts).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AttachmentJson {
    name: String,
    content_type: Option<String>,
    /// Standard base64 with padding.
    content_bytes: String,
    #[serde(default)]
    is_inline: bool,
    content_id: Option<String>,
}

/// A message to send or save as a draft.
#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct MessageJson {
    subject: Option<String>,
    body: Option<String>,
    /// `text` (default) or `html`.
    body_format: Option<BodyType>,
    #[serde(default)]
    to: Vec<String>,
    #[serde(default)]
    cc: Vec<String>,
    #[serde(default)]
    bcc: Vec<String>,
    #[serde(default)]
    reply_to: Vec<String>,
    /// Send on behalf of this address (needs `send_as` for it).
    from: Option<String>,
    /// `low`, `normal` or `high`.
    importance: Option<String>,
    #[serde(default)]
    attachments: Vec<AttachmentJson>,
}

impl From<MessageJson> for OutgoingMessage {
    fn from(m: MessageJson) -> Self {
        OutgoingMessage {
            subject: m.subject,
            body: m.body,
            body_type: m.body_format,
            to: m.to,
            cc: m.cc,
            bcc: m.bcc,
            reply_to: m.reply_to,
            from: m.from,
            importance: m.importance,
            attachments: m
                .attachments
                .into_iter()
                .map(|a| OutgoingAttachment {
                    name: a.name,
                    content_type: a.content_type,
                    is_inline: a.is_inline,
                    content_id: a.content_id,
                    content: AttachmentContent::Base64(a.content_bytes),
                })
                .collect(),
        }
    }
}

/// `POST send-mail` body (JSON, or the `message` part of multipart/form-data).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SendMailRequest {
    message: MessageJson,
    /// Keep a copy in Sent Items (default true).
    #[serde(default = "yes")]
    save_to_sent_items: bool,
}

/// Reads a send-mail request: JSON, or multipart/form-data with a `message` part (the
/// JSON above) and one part per file. Files are spooled to temporary files as they arrive,
/// so memory use does not grow with their size; one over 150 MB is refused at once.
async fn read_send_request(
    request: Request,
    state: &AppState,
) -> Result<(OutgoingMessage, bool), ApiError> {
    let is_multipart = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("multipart/form-data"));
    if !is_multipart {
        let Json(body) = Json::<SendMailRequest>::from_request(request, state)
            .await
            .map_err(json_error)?;
        return Ok((body.message.into(), body.save_to_sent_items));
    }
    let mut multipart = Multipart::from_request(request, state)
        .await
        .map_err(|e| ServiceError::BadInput(format!("invalid multipart body: {e}")))?;
    let mut request: Option<SendMailRequest> = None;
    let mut files = Vec::new();
    while let Some(mut field) = multipart.next_field().await.map_err(multipart_error)? {
        let name = field.name().unwrap_or_default().to_owned();
        match field.file_name().map(str::to_owned) {
            None if name == "message" => {
                let text = field.text().await.map_err(multipart_error)?;
                request = Some(serde_json::from_str(&text).map_err(json_error)?);
            }
            None => {
                return Err(ServiceError::BadInput(format!(
                    "unexpected form field '{name}' (expected 'message' and file parts)"
                ))
                .into());
            }
            Some(file_name) => {
                let content_type = field.content_type().map(str::to_owned);
                let mut file = tempfile::tempfile().map_err(|_| ServiceError::Internal)?;
                let mut size = 0u64;
                while let Some(chunk) = field.chunk().await.map_err(multipart_error)? {
                    size += chunk.len() as u64;
                    if size > MAX_ATTACHMENT_BYTES {
                        // Read (and drop) the rest, bounded by the upload limit, so the
                        // client gets to see the answer instead of a broken connection.
                        while let Ok(Some(_)) = field.chunk().await {}
                        while let Ok(Some(mut rest)) = multipart.next_field().await {
                            while let Ok(Some(_)) = rest.chunk().await {}
                        }
                        return Err(ServiceError::PayloadTooLarge(format!(
                            "attachment '{file_name}' is over {MAX_ATTACHMENT_BYTES} bytes (150 MB)"
                        ))
                        .into());
                    }
                    file.write_all(&chunk).map_err(|_| ServiceError::Internal)?;
                }
                file.rewind().map_err(|_| ServiceError::Internal)?;
                files.push(OutgoingAttachment {
                    name: file_name,
                    content_type,
                    is_inline: false,
                    content_id: None,
                    content: AttachmentContent::File { file, size },
                });
            }
        }
    }
    let request = request.ok_or_else(|| {
        ServiceError::BadInput("a multipart send needs a 'message' part with the JSON".into())
    })?;
    let mut message: OutgoingMessage = request.message.into();
    message.attachments.extend(files);
    Ok((message, request.save_to_sent_items))
}

fn multipart_error(e: axum::extract::multipart::MultipartError) -> ApiError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ServiceError::PayloadTooLarge("the request body is too large".into()).into()
    } else {
        ServiceError::BadInput(format!("invalid multipart body: {}", e.body_text())).into()
    }
}

/// Sends mail from a mailbox: JSON (attachments as base64), or multipart/form-data with a
/// `message` part and file parts (any size up to 150 MB each; uploaded to Graph in chunks).
#[utoipa::path(post, path = "/api/v1/users/{id}/send-mail", tag = "mail",
    params(("id" = String, Path, description = "Mailbox to send from")),
    request_body(content = SendMailRequest, description = "JSON, or multipart/form-data with a `message` part holding this JSON plus one part per file"),
    responses(
        (status = 202, body = SendReceipt),
        (status = 400, description = "No or malformed recipients, bad base64 (BAD_USER_INPUT)", body = ErrorBody),
        (status = 403, description = "Mailbox or send-as outside policy (FORBIDDEN)", body = ErrorBody),
        (status = 413, description = "An attachment over 150 MB (PAYLOAD_TOO_LARGE)", body = ErrorBody),
        (status = 504, description = "Graph did not confirm the send; not retried (UPSTREAM_TIMEOUT_UNKNOWN_OUTCOME)", body = ErrorBody),
    ))]
pub async fn send_mail(
    axum::extract::State(state): axum::extract::State<AppState>,
    Authenticated(session): Authenticated,
    Path(id): Path<String>,
    request: Request,
) -> Result<(StatusCode, Json<SendReceipt>), ApiError> {
    let (message, save) = read_send_request(request, &state).await?;
    let receipt = session.send_mail(&id, message, save).await?;
    Ok((StatusCode::ACCEPTED, Json(receipt)))
}

/// `POST messages` body.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DraftRequest {
    message: MessageJson,
    /// Folder id or well-known name; default Drafts.
    folder: Option<String>,
}

/// Saves a draft.
#[utoipa::path(post, path = "/api/v1/users/{id}/messages", tag = "mail",
    params(("id" = String, Path, description = "Mailbox")),
    request_body = DraftRequest,
    responses(
        (status = 201, body = Message),
        (status = 400, description = "BAD_USER_INPUT", body = ErrorBody),
        (status = 403, description = "FORBIDDEN", body = ErrorBody),
    ))]
pub async fn create_draft(
    Authenticated(session): Authenticated,
    Path(id): Path<String>,
    body: JsonBody<DraftRequest>,
) -> Result<(StatusCode, Json<Message>), ApiError> {
    let Json(body) = body.map_err(json_error)?;
    let draft = session
        .create_draft(&id, body.message.into(), body.folder.as_deref())
        .await?;
    Ok((StatusCode::CREATED, Json(draft)))
}

/// Changes a draft (only the fields given).
#[utoipa::path(patch, path = "/api/v1/users/{id}/drafts/{message}", tag = "mail",
    params(("id" = String, Path, description = "Mailbox"), ("message" = String, Path, description = "Draft id")),
    request_body = MessageJson,
    responses(
        (status = 200, body = Message),
        (status = 400, description = "BAD_USER_INPUT", body = ErrorBody),
        (status = 404, description = "NOT_FOUND", body = ErrorBody),
    ))]
pub async fn update_draft(
    Authenticated(session): Authenticated,
    Path((id, message)): Path<(String, String)>,
    body: JsonBody<MessageJson>,
) -> Result<Json<Message>, ApiError> {
    let Json(body) = body.map_err(json_error)?;
    Ok(Json(
        session.update_draft(&id, &message, body.into()).await?,
    ))
}

/// Sends a draft.
#[utoipa::path(post, path = "/api/v1/users/{id}/drafts/{message}/send", tag = "mail",
    params(("id" = String, Path, description = "Mailbox"), ("message" = String, Path, description = "Draft id")),
    responses(
        (status = 202, body = SendReceipt),
        (status = 403, description = "FORBIDDEN", body = ErrorBody),
        (status = 404, description = "NOT_FOUND", body = ErrorBody),
    ))]
pub async fn send_draft(
    Authenticated(session): Authenticated,
    Path((id, message)): Path<(String, String)>,
) -> Result<(StatusCode, Json<SendReceipt>), ApiError> {
    Ok((
        StatusCode::ACCEPTED,
        Json(session.send_draft(&id, &message).await?),
    ))
}

/// Read state, categories, flag, importance.
#[utoipa::path(patch, path = "/api/v1/users/{id}/messages/{message}", tag = "mail",
    params(("id" = String, Path, description = "Mailbox"), ("message" = String, Path, description = "Message id")),
    request_body = MessagePatch,
    responses(
        (status = 200, body = Message),
        (status = 400, description = "BAD_USER_INPUT", body = ErrorBody),
        (status = 404, description = "NOT_FOUND", body = ErrorBody),
    ))]
pub async fn update_message(
    Authenticated(session): Authenticated,
    Path((id, message)): Path<(String, String)>,
    body: JsonBody<MessagePatch>,
) -> Result<Json<Message>, ApiError> {
    let Json(patch) = body.map_err(json_error)?;
    Ok(Json(session.update_message(&id, &message, &patch).await?))
}

/// Deletes a message.
#[utoipa::path(delete, path = "/api/v1/users/{id}/messages/{message}", tag = "mail",
    params(("id" = String, Path, description = "Mailbox"), ("message" = String, Path, description = "Message id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 403, description = "FORBIDDEN", body = ErrorBody),
        (status = 404, description = "NOT_FOUND", body = ErrorBody),
    ))]
pub async fn delete_message(
    Authenticated(session): Authenticated,
    Path((id, message)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    session.delete_message(&id, &message).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `reply` / `reply-all` body: a comment above the quoted message, or a body of its own.
#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct ReplyRequest {
    comment: Option<String>,
    body: Option<String>,
    /// `text` (default) or `html`.
    body_format: Option<BodyType>,
}

async fn do_reply(
    session: crate::service::Session,
    id: &str,
    message: &str,
    all: bool,
    body: ReplyRequest,
) -> Result<(StatusCode, Json<SendReceipt>), ApiError> {
    let text = body
        .body
        .map(|b| (b, body.body_format.unwrap_or(BodyType::Text)));
    let receipt = session.reply(id, message, all, body.comment, text).await?;
    Ok((StatusCode::ACCEPTED, Json(receipt)))
}

/// Replies to the sender.
#[utoipa::path(post, path = "/api/v1/users/{id}/messages/{message}/reply", tag = "mail",
    params(("id" = String, Path, description = "Mailbox"), ("message" = String, Path, description = "Message id")),
    request_body = ReplyRequest,
    responses(
        (status = 202, body = SendReceipt),
        (status = 400, description = "BAD_USER_INPUT", body = ErrorBody),
        (status = 404, description = "NOT_FOUND", body = ErrorBody),
    ))]
pub async fn reply(
    Authenticated(session): Authenticated,
    Path((id, message)): Path<(String, String)>,
    body: JsonBody<ReplyRequest>,
) -> Result<(StatusCode, Json<SendReceipt>), ApiError> {
    let Json(body) = body.map_err(json_error)?;
    do_reply(session, &id, &message, false, body).await
}

/// Replies to the sender and every other recipient.
#[utoipa::path(post, path = "/api/v1/users/{id}/messages/{message}/reply-all", tag = "mail",
    params(("id" = String, Path, description = "Mailbox"), ("message" = String, Path, description = "Message id")),
    request_body = ReplyRequest,
    responses(
        (status = 202, body = SendReceipt),
        (status = 400, description = "BAD_USER_INPUT", body = ErrorBody),
        (status = 404, description = "NOT_FOUND", body = ErrorBody),
    ))]
pub async fn reply_all(
    Authenticated(session): Authenticated,
    Path((id, message)): Path<(String, String)>,
    body: JsonBody<ReplyRequest>,
) -> Result<(StatusCode, Json<SendReceipt>), ApiError> {
    let Json(body) = body.map_err(json_error)?;
    do_reply(session, &id, &message, true, body).await
}

/// `forward` body.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ForwardRequest {
    to: Vec<String>,
    comment: Option<String>,
}

/// Forwards a message.
#[utoipa::path(post, path = "/api/v1/users/{id}/messages/{message}/forward", tag = "mail",
    params(("id" = String, Path, description = "Mailbox"), ("message" = String, Path, description = "Message id")),
    request_body = ForwardRequest,
    responses(
        (status = 202, body = SendReceipt),
        (status = 400, description = "BAD_USER_INPUT", body = ErrorBody),
        (status = 404, description = "NOT_FOUND", body = ErrorBody),
    ))]
pub async fn forward(
    Authenticated(session): Authenticated,
    Path((id, message)): Path<(String, String)>,
    body: JsonBody<ForwardRequest>,
) -> Result<(StatusCode, Json<SendReceipt>), ApiError> {
    let Json(body) = body.map_err(json_error)?;
    let receipt = session
        .forward(&id, &message, &body.to, body.comment)
        .await?;
    Ok((StatusCode::ACCEPTED, Json(receipt)))
}

/// `move` body.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MoveRequest {
    /// Folder id or well-known name (`archive`, `deleteditems`, `inbox`, …).
    destination: String,
}

/// Moves a message; the answer is the moved message, which has a new id.
#[utoipa::path(post, path = "/api/v1/users/{id}/messages/{message}/move", tag = "mail",
    params(("id" = String, Path, description = "Mailbox"), ("message" = String, Path, description = "Message id")),
    request_body = MoveRequest,
    responses(
        (status = 201, body = Message),
        (status = 400, description = "BAD_USER_INPUT", body = ErrorBody),
        (status = 404, description = "NOT_FOUND", body = ErrorBody),
    ))]
pub async fn move_message(
    Authenticated(session): Authenticated,
    Path((id, message)): Path<(String, String)>,
    body: JsonBody<MoveRequest>,
) -> Result<(StatusCode, Json<Message>), ApiError> {
    let Json(body) = body.map_err(json_error)?;
    let moved = session
        .move_message(&id, &message, &body.destination)
        .await?;
    Ok((StatusCode::CREATED, Json(moved)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_attachment_names_cannot_break_the_header() {
        let value = content_disposition("a\r\nSet-Cookie: x=1; \"b\".pdf");
        let text = value.to_str().unwrap();
        assert!(text.starts_with("attachment; filename*=UTF-8''"));
        assert!(!text.contains('\r') && !text.contains('\n') && !text.contains('"'));
    }
}
