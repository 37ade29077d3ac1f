//! Large attachments (graph-protocol.md §7, outlook-large-attachments):
//! `POST …/messages/{id}/attachments/createUploadSession`, then `PUT`s of byte ranges to the
//! pre-authenticated `uploadUrl`, which lives outside `/v1.0` as Outlook's does:
//! `{base}/api/v2.0/Users('{user id}')/Messages('{message id}')/AttachmentSessions('{id}')?authtoken=…`.
//!
//! - The session accepts a declared size of 1 byte to 150 MiB (Graph documents 3–150 MB
//!   for sessions; smaller ones are accepted here).
//! - Each PUT carries `Content-Range: bytes {first}-{last}/{total}`: ranges must come in
//!   order (`first` = the next expected byte), at most 4 MiB each, `total` = the session size.
//! - An intermediate PUT answers 200 with Outlook's PascalCase session; the last one 201 with
//!   `Location: …/Attachments('{id}')` and no body; the attachment is then on the message.
//! - A PUT with an `Authorization` header is refused (401): the URL carries its own token.
//! - `DELETE uploadUrl` cancels (204). `GET uploadUrl` shows the session (200).
//! - Counted in the stats as `PUT /api/v2.0/AttachmentSessions` (and `DELETE`, `GET`), and
//!   under Outlook's per-(app, mailbox) concurrency limit like Graph's mail routes.

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

use super::super::GraphResponse;
use super::super::auth::Principal;
use super::super::errors::GraphError;
use super::super::faults::mailbox_permit;
use super::write::guess_content_type;
use super::{Cx, get_ci, invalid_request, lock_store};
use crate::Emulator;
use crate::admin::RecordedRequest;
use crate::mail::{Attachment, MailStore, UploadSession};

/// Outlook's upper bound for attachments uploaded in a session.
pub(crate) const MAX_SESSION_BYTES: u64 = 150 * 1024 * 1024;
/// "Keep each byte range less than 4 MB."
pub(crate) const MAX_CHUNK_BYTES: usize = 4 * 1024 * 1024;
/// How long an upload session lives.
const SESSION_LIFETIME: i64 = 6 * 3600;

/// `2019-09-25T01:09:30.0000000Z`.
fn outlook_time(unix: i64) -> String {
    let s = crate::clock::format_utc_seconds(unix);
    format!("{}.0000000Z", s.trim_end_matches('Z'))
}

/// `POST …/messages/{id}/attachments/createUploadSession`: 201 with the session.
pub(super) fn create_session(
    cx: &Cx<'_>,
    store: &mut MailStore,
    message_id: &str,
) -> Result<GraphResponse, GraphError> {
    let obj = cx.json_body()?;
    let item = match get_ci(&obj, "AttachmentItem") {
        Some(Value::Object(item)) => item,
        _ => return Err(invalid_request("The AttachmentItem parameter is required.")),
    };
    match get_ci(item, "attachmentType") {
        None | Some(Value::Null) => {}
        Some(Value::String(t)) if t.eq_ignore_ascii_case("file") => {}
        Some(other) => {
            return Err(invalid_request(format!(
                "attachmentType {other} is not supported: only 'file' attachments can be uploaded in a session."
            )));
        }
    }
    let name = get_ci(item, "name")
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .ok_or_else(|| invalid_request("The AttachmentItem's name is required."))?
        .to_string();
    let size = get_ci(item, "size")
        .and_then(Value::as_u64)
        .filter(|s| *s > 0)
        .ok_or_else(|| {
            invalid_request("The AttachmentItem's size is required: a positive number of bytes.")
        })?;
    if size > MAX_SESSION_BYTES {
        return Err(GraphError::new(
            StatusCode::BAD_REQUEST,
            "ErrorAttachmentSizeShouldNotBeMoreThanMaximumSize",
            format!(
                "The attachment is {size} bytes; attachments can be at most {MAX_SESSION_BYTES} bytes (150 MB)."
            ),
        ));
    }
    let content_type = match get_ci(item, "contentType") {
        Some(Value::String(ct)) if !ct.trim().is_empty() => ct.trim().to_string(),
        _ => guess_content_type(&name).to_string(),
    };
    let is_inline = get_ci(item, "isInline")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let content_id = get_ci(item, "contentId")
        .and_then(Value::as_str)
        .map(str::to_string);

    let mb = store.mailbox(cx.tenant, cx.owner);
    let mut sid_bytes = Vec::with_capacity(24);
    sid_bytes.extend_from_slice(&mb.key[..8]);
    sid_bytes.extend_from_slice(&mb.draw().to_be_bytes());
    sid_bytes.extend_from_slice(&mb.draw().to_be_bytes());
    let sid = format!("AAMkAD{}", URL_SAFE_NO_PAD.encode(sid_bytes));
    let authtoken = format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    let user_id = mb.user_id.clone();
    let expires = cx.now + SESSION_LIFETIME;
    store.sessions.insert(
        sid.clone(),
        UploadSession {
            user_id: user_id.clone(),
            message_id: message_id.to_string(),
            authtoken: authtoken.clone(),
            name,
            content_type,
            size,
            is_inline,
            content_id,
            received: Vec::new(),
            expires,
            app_id: cx.principal.app_id().to_string(),
        },
    );
    let upload_url = format!(
        "{}/api/v2.0/Users('{user_id}')/Messages('{message_id}')/AttachmentSessions('{sid}')?authtoken={authtoken}",
        cx.req.base_url
    );
    Ok(GraphResponse::with_status(
        StatusCode::CREATED,
        super::super::Payload::Json(json!({
            "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#microsoft.graph.uploadSession",
            "uploadUrl": upload_url,
            "expirationDateTime": outlook_time(expires),
            "nextExpectedRanges": ["0-"],
        })),
    ))
}

/// An answer of the upload URL, in Outlook's v2.0 error shape.
struct Answer {
    status: StatusCode,
    body: Option<Value>,
    headers: Vec<(&'static str, String)>,
}

impl Answer {
    fn error(status: StatusCode, code: &str, message: impl Into<String>) -> Answer {
        Answer {
            status,
            body: Some(json!({"error": {"code": code, "message": message.into()}})),
            headers: Vec::new(),
        }
    }

    fn into_response(self) -> Response {
        let mut response = match self.body {
            Some(body) => {
                let mut r = (self.status, body.to_string()).into_response();
                r.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static(super::super::JSON_CONTENT_TYPE),
                );
                r
            }
            None => (self.status, Body::empty()).into_response(),
        };
        for (name, value) in self.headers {
            if let Ok(v) = HeaderValue::from_str(&value) {
                response.headers_mut().insert(name, v);
            }
        }
        response
    }
}

fn session_state(s: &UploadSession) -> Value {
    json!({
        "@odata.context": "https://outlook.office.com/api/v2.0/$metadata#Microsoft.OutlookServices.UploadSession",
        "ExpirationDateTime": outlook_time(s.expires),
        "NextExpectedRanges": [s.received.len().to_string()],
    })
}

/// `Users('a')/Messages('b')/AttachmentSessions('c')` → `(a, b, c)`.
fn parse_path(path: &str) -> Option<(String, String, String)> {
    let decoded = percent_encoding::percent_decode_str(path).decode_utf8_lossy();
    let rest = decoded.strip_prefix("/api/v2.0/")?;
    let mut parts = Vec::new();
    for segment in rest.split('/') {
        let (name, value) = segment.split_once("('")?;
        let value = value.strip_suffix("')")?;
        parts.push((name.to_string(), value.to_string()));
    }
    match parts.as_slice() {
        [(u, user), (m, message), (s, session)]
            if u.eq_ignore_ascii_case("Users")
                && m.eq_ignore_ascii_case("Messages")
                && s.eq_ignore_ascii_case("AttachmentSessions") =>
        {
            Some((user.clone(), message.clone(), session.clone()))
        }
        _ => None,
    }
}

/// `bytes {first}-{last}/{total}`.
fn content_range(headers: &HeaderMap) -> Option<(u64, u64, u64)> {
    let v = headers.get(header::CONTENT_RANGE)?.to_str().ok()?.trim();
    let v = v.strip_prefix("bytes")?.trim();
    let (range, total) = v.split_once('/')?;
    let (first, last) = range.trim().split_once('-')?;
    Some((
        first.trim().parse().ok()?,
        last.trim().parse().ok()?,
        total.trim().parse().ok()?,
    ))
}

fn not_found() -> Answer {
    Answer::error(
        StatusCode::NOT_FOUND,
        "ErrorItemNotFound",
        "The upload session was not found: it expired, was cancelled, or completed.",
    )
}

fn invalid_range(message: String) -> Answer {
    Answer::error(StatusCode::BAD_REQUEST, "ErrorInvalidContentRange", message)
}

/// Handles one request to an upload URL (synchronously, under the mail lock).
fn upload(
    emulator: &Emulator,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: Bytes,
) -> Answer {
    if headers.contains_key(header::AUTHORIZATION) {
        return Answer::error(
            StatusCode::UNAUTHORIZED,
            "InvalidAuthenticationToken",
            "The upload URL is pre-authenticated: requests to it must not carry an Authorization header.",
        );
    }
    let Some((user, message, sid)) = parse_path(uri.path()) else {
        return not_found();
    };
    let token = uri.query().and_then(|q| {
        url::form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k.eq_ignore_ascii_case("authtoken"))
            .map(|(_, v)| v.into_owned())
    });
    let state = emulator.state();
    let now = crate::clock::now_unix();
    let mut store = lock_store(state);
    let Some(session) = store.sessions.get(&sid) else {
        return not_found();
    };
    if !session.user_id.eq_ignore_ascii_case(&user) || session.message_id != message {
        return not_found();
    }
    if token.as_deref() != Some(session.authtoken.as_str()) {
        return Answer::error(
            StatusCode::UNAUTHORIZED,
            "InvalidAuthenticationToken",
            "The authtoken of the upload URL is missing or invalid.",
        );
    }
    if now > session.expires {
        store.sessions.remove(&sid);
        return not_found();
    }
    // Outlook's concurrency limit counts the upload against the app and the mailbox.
    let principal = Principal::App {
        app_id: session.app_id.clone(),
        roles: Vec::new(),
    };
    let mailbox = session.user_id.to_ascii_lowercase();
    let _permit = match mailbox_permit(
        emulator,
        &format!("/users/{mailbox}/messages"),
        Some(&principal),
        Some(&mailbox),
    ) {
        Ok(permit) => permit,
        Err(err) => {
            let mut answer = Answer::error(err.status, err.code, err.message);
            answer.headers.push(("Retry-After", "1".to_string()));
            return answer;
        }
    };
    match *method {
        Method::GET => Answer {
            status: StatusCode::OK,
            body: Some(session_state(session)),
            headers: Vec::new(),
        },
        Method::DELETE => {
            store.sessions.remove(&sid);
            Answer {
                status: StatusCode::NO_CONTENT,
                body: None,
                headers: Vec::new(),
            }
        }
        Method::PUT => put(&mut store, &sid, headers, body, uri, now),
        _ => Answer::error(
            StatusCode::METHOD_NOT_ALLOWED,
            "ErrorInvalidRequest",
            "Upload URLs take PUT, GET and DELETE.",
        ),
    }
}

fn put(
    store: &mut MailStore,
    sid: &str,
    headers: &HeaderMap,
    body: Bytes,
    uri: &Uri,
    now: i64,
) -> Answer {
    let Some(session) = store.sessions.get_mut(sid) else {
        return not_found();
    };
    let Some((first, last, total)) = content_range(headers) else {
        return invalid_range(
            "A Content-Range header 'bytes {first}-{last}/{total}' is required.".into(),
        );
    };
    if total != session.size {
        return invalid_range(format!(
            "The total length in Content-Range ({total}) differs from the session's size ({}).",
            session.size
        ));
    }
    if body.len() > MAX_CHUNK_BYTES {
        return Answer::error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "ErrorRequestEntityTooLarge",
            format!(
                "Each upload request may carry at most {MAX_CHUNK_BYTES} bytes; this one has {}.",
                body.len()
            ),
        );
    }
    if last < first || last >= total || last - first + 1 != body.len() as u64 {
        return invalid_range(format!(
            "Content-Range bytes {first}-{last}/{total} does not describe the {} bytes sent.",
            body.len()
        ));
    }
    let expected = session.received.len() as u64;
    if first != expected {
        return Answer::error(
            StatusCode::RANGE_NOT_SATISFIABLE,
            "ErrorInvalidRange",
            format!(
                "The range starting at byte {first} is out of order: the next expected range starts at byte {expected}."
            ),
        );
    }
    if session.received.is_empty() {
        // Reserve once: a 40 MB upload does not reallocate per chunk.
        session
            .received
            .reserve_exact(usize::try_from(session.size).unwrap_or(0));
    }
    session.received.extend_from_slice(&body);
    session.expires = now + SESSION_LIFETIME;
    if (session.received.len() as u64) < session.size {
        return Answer {
            status: StatusCode::OK,
            body: Some(session_state(session)),
            headers: Vec::new(),
        };
    }
    let Some(session) = store.sessions.remove(sid) else {
        return not_found();
    };
    let Some(mb) = store.existing(&session.user_id) else {
        return not_found();
    };
    let Some(i) = mb.find(&session.message_id) else {
        return not_found();
    };
    let id = mb.new_attachment_id(i);
    mb.messages[i].attachments.push(Attachment {
        id: id.clone(),
        name: session.name,
        content_type: session.content_type,
        bytes: Bytes::from(session.received),
        is_inline: session.is_inline,
        content_id: session.content_id,
        modified: now,
    });
    mb.touch(i, now);
    let base = super::super::base_url(headers, uri);
    Answer {
        status: StatusCode::CREATED,
        body: None,
        headers: vec![(
            "Location",
            format!(
                "{base}/api/v2.0/Users('{}')/Messages('{}')/Attachments('{id}')",
                session.user_id, session.message_id
            ),
        )],
    }
}

/// Any method on `/api/v2.0/...` (upload URLs).
pub(crate) async fn upload_entry(
    State(emulator): State<Emulator>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let client_request_id = headers
        .get("client-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let answer = upload(&emulator, &method, &uri, &headers, body);
    emulator.state().recorder.outlook_request(
        &format!("{method} /api/v2.0/AttachmentSessions"),
        RecordedRequest {
            method: method.to_string(),
            url: uri
                .path_and_query()
                .map_or_else(|| uri.path().to_string(), |pq| pq.as_str().to_string()),
            status: answer.status.as_u16(),
            in_batch: false,
            client_request_id,
        },
    );
    answer.into_response()
}
