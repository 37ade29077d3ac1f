//! Outlook mail as Graph v1.0 serves it (graph-protocol.md §5–§7, §9): messages, folders,
//! attachments, sending, replies, large-attachment upload sessions and message delta.
//!
//! Every handler runs under the dispatcher (`graph::execute`), so direct calls and `$batch`
//! items behave alike. Handlers are synchronous: they take the tenant (read) and the mail
//! store (mutex) in that order and release both before returning.

mod delta;
mod filter;
pub(crate) mod query;
mod read;
pub(crate) mod render;
pub(crate) mod routes;
mod search;
mod send;
mod upload;
mod write;

use std::sync::MutexGuard;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::IntoResponse;
use serde_json::{Map, Value};

use super::auth::Principal;
use super::errors::GraphError;
use super::routes::Subject;
use super::{GraphRequest, GraphResponse};
use crate::mail::{self as store, MailStore, Mailbox};
use crate::tenant::Tenant;
use crate::{Emulator, EmulatorState};
use query::MailQuery;
use routes::{MailRoute, MessageTail};

pub(crate) use upload::upload_entry;

/// Graph's request size limit for Outlook writes ("4 MB"; 4 MiB here, the lenient reading).
pub(crate) const MAX_REQUEST_BYTES: usize = 4 * 1024 * 1024;
/// Attachments added inline or with `POST …/attachments` must be under 3 MB (3 MiB here).
pub(crate) const MAX_SIMPLE_ATTACHMENT: usize = 3 * 1024 * 1024;

// --- errors -----------------------------------------------------------------------------

/// 403 `ErrorAccessDenied`: a token without the Mail permission the route needs.
pub(crate) fn access_denied() -> GraphError {
    GraphError::new(
        StatusCode::FORBIDDEN,
        "ErrorAccessDenied",
        "Access is denied. Check credentials and try again.",
    )
}

pub(crate) fn item_not_found() -> GraphError {
    GraphError::new(
        StatusCode::NOT_FOUND,
        "ErrorItemNotFound",
        "The specified object was not found in the store.",
    )
}

pub(crate) fn id_malformed() -> GraphError {
    GraphError::new(
        StatusCode::BAD_REQUEST,
        "ErrorInvalidIdMalformed",
        "Id is malformed.",
    )
}

pub(crate) fn invalid_request(message: impl Into<String>) -> GraphError {
    GraphError::new(StatusCode::BAD_REQUEST, "ErrorInvalidRequest", message)
}

/// 400 `RequestBodyRead`: the OData layer could not map the JSON onto the type.
pub(crate) fn body_read(message: impl Into<String>) -> GraphError {
    GraphError::new(StatusCode::BAD_REQUEST, "RequestBodyRead", message)
}

fn mailbox_not_enabled() -> GraphError {
    GraphError::new(
        StatusCode::NOT_FOUND,
        "MailboxNotEnabledForRESTAPI",
        "The mailbox is either inactive, soft-deleted, or is hosted on-premise.",
    )
}

fn invalid_user(key: &str) -> GraphError {
    GraphError::new(
        StatusCode::NOT_FOUND,
        "ErrorInvalidUser",
        format!("The requested user '{key}' is invalid."),
    )
}

/// A folder key (path segment or `destinationId`) that names no folder: an id-shaped key is
/// a folder that is not there (404), anything else (a display name, a typo) is malformed.
pub(crate) fn unknown_folder(key: &str) -> GraphError {
    use base64::Engine as _;
    use base64::engine::general_purpose::{STANDARD, URL_SAFE};
    let decoded = URL_SAFE
        .decode(key)
        .or_else(|_| STANDARD.decode(key))
        .map(|b| b.len())
        .unwrap_or(0);
    if decoded >= 16 {
        item_not_found()
    } else {
        id_malformed()
    }
}

// --- context ----------------------------------------------------------------------------

/// What `Prefer` asked for.
#[derive(Clone, Debug, Default)]
pub(crate) struct Prefer {
    /// `outlook.body-content-type`: `Some(true)` text, `Some(false)` html.
    pub body_text: Option<bool>,
    pub max_page_size: Option<usize>,
}

impl Prefer {
    fn parse(headers: &HeaderMap) -> Prefer {
        let mut prefer = Prefer::default();
        for value in headers.get_all("prefer") {
            let Ok(value) = value.to_str() else { continue };
            for pref in value.split(',') {
                let Some((name, v)) = pref.split_once('=') else {
                    continue;
                };
                let v = v.trim().trim_matches('"');
                match name.trim().to_ascii_lowercase().as_str() {
                    "outlook.body-content-type" => {
                        if v.eq_ignore_ascii_case("text") {
                            prefer.body_text = Some(true);
                        } else if v.eq_ignore_ascii_case("html") {
                            prefer.body_text = Some(false);
                        }
                    }
                    "odata.maxpagesize" => {
                        prefer.max_page_size = v.parse::<usize>().ok().filter(|n| *n > 0);
                    }
                    _ => {}
                }
            }
        }
        prefer
    }
}

/// A mail request being handled.
pub(crate) struct Cx<'a> {
    pub req: &'a GraphRequest,
    pub query: MailQuery,
    pub prefer: Prefer,
    pub tenant: &'a Tenant,
    /// The mailbox owner's index in the tenant.
    pub owner: usize,
    pub principal: &'a Principal,
    pub now: i64,
}

impl Cx<'_> {
    /// `{base}/v1.0{path}`: the request's own URL without query.
    pub fn self_url(&self) -> String {
        format!("{}/v1.0{}", self.req.base_url, self.req.path)
    }

    pub fn user_id(&self) -> &str {
        &self.tenant.users[self.owner].id
    }

    /// `https://graph.microsoft.com/v1.0/$metadata#users('{id}')/…`.
    pub fn context(&self, tail: &str) -> String {
        format!(
            "https://graph.microsoft.com/v1.0/$metadata#users('{}'){tail}",
            self.user_id()
        )
    }

    /// The JSON object of a POST/PATCH body (an empty body is `{}`), with Graph's size limits:
    /// a simple attachment of 3 MiB or more, then a body over 4 MiB, are 413s.
    pub fn json_body(&self) -> Result<Map<String, Value>, GraphError> {
        let body = &self.req.body;
        let value: Value = if body.iter().all(u8::is_ascii_whitespace) {
            Value::Object(Map::new())
        } else {
            serde_json::from_slice(body).map_err(|_| unreadable_body())?
        };
        let Value::Object(map) = value else {
            return Err(unreadable_body());
        };
        check_simple_attachments(&map)?;
        if body.len() > MAX_REQUEST_BYTES {
            return Err(GraphError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "RequestEntityTooLarge",
                format!(
                    "The request body is {} bytes; Graph accepts at most {MAX_REQUEST_BYTES}. Use an upload session for large attachments.",
                    body.len()
                ),
            ));
        }
        Ok(map)
    }
}

fn unreadable_body() -> GraphError {
    GraphError::bad_request(
        "Unable to read JSON request payload. Please ensure Content-Type header is set and payload is of valid JSON format.",
    )
}

/// 413 for any inline attachment (`attachments`, `message.attachments`, or the body itself
/// being one) whose decoded `contentBytes` would be 3 MiB or more.
fn check_simple_attachments(map: &Map<String, Value>) -> Result<(), GraphError> {
    let mut candidates: Vec<&Map<String, Value>> = vec![map];
    if let Some(Value::Array(list)) = get_ci(map, "attachments") {
        candidates.extend(list.iter().filter_map(Value::as_object));
    }
    if let Some(Value::Object(message)) = get_ci(map, "message")
        && let Some(Value::Array(list)) = get_ci(message, "attachments")
    {
        candidates.extend(list.iter().filter_map(Value::as_object));
    }
    for a in candidates {
        let Some(Value::String(b64)) = get_ci(a, "contentBytes") else {
            continue;
        };
        let len = b64.bytes().filter(|c| !c.is_ascii_whitespace()).count();
        let padding = b64
            .trim_end()
            .bytes()
            .rev()
            .take_while(|c| *c == b'=')
            .count();
        let size = (len / 4 * 3).saturating_sub(padding);
        if size >= MAX_SIMPLE_ATTACHMENT {
            let name = get_ci(a, "name")
                .and_then(Value::as_str)
                .unwrap_or_default();
            return Err(GraphError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "ErrorRequestEntityTooLarge",
                format!(
                    "The attachment '{name}' is {size} bytes; attachments of {MAX_SIMPLE_ATTACHMENT} bytes or more need an upload session (attachments/createUploadSession)."
                ),
            ));
        }
    }
    Ok(())
}

/// An `itemBody` from JSON (`contentType` text/html in any case), as messages take it.
pub(crate) fn write_body(v: &Value) -> Result<crate::mail::Body, GraphError> {
    write::parse_body(v)
}

/// A property of a JSON object by case-insensitive name (Graph accepts `AttachmentItem` and
/// `attachmentItem` alike).
pub(crate) fn get_ci<'v>(map: &'v Map<String, Value>, name: &str) -> Option<&'v Value> {
    map.get(name).or_else(|| {
        map.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    })
}

pub(crate) fn lock_store(state: &EmulatorState) -> MutexGuard<'_, MailStore> {
    state
        .mail
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The tenant user whose mailbox a path names.
pub(crate) fn owner_of(
    tenant: &Tenant,
    subject: &Subject,
    principal: &Principal,
) -> Result<usize, GraphError> {
    let u = match subject {
        Subject::User(key) => tenant
            .find_user_or_address(key)
            .ok_or_else(|| invalid_user(key))?,
        Subject::Me => match principal {
            Principal::User { user_id, .. } => tenant
                .find_user(user_id)
                .ok_or_else(|| invalid_user(user_id))?,
            Principal::App { .. } => {
                return Err(GraphError::bad_request(
                    "/me request is only valid with delegated authentication flow.",
                ));
            }
        },
    };
    if !store::has_mailbox(tenant, u) {
        return Err(mailbox_not_enabled());
    }
    Ok(u)
}

/// Runs one mail request (already authenticated and authorised).
pub(crate) fn handle(
    emulator: &Emulator,
    req: &GraphRequest,
    subject: &Subject,
    route: &MailRoute,
    principal: &Principal,
) -> Result<GraphResponse, GraphError> {
    let state = emulator.state();
    let tenant = state
        .tenant
        .read()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let owner = owner_of(&tenant, subject, principal)?;
    let query = MailQuery::parse(req.query.as_deref())?;
    let prefer = Prefer::parse(&req.headers);
    let cx = Cx {
        req,
        query,
        prefer,
        tenant: &tenant,
        owner,
        principal,
        now: crate::clock::now_unix(),
    };
    let mut store = lock_store(state);
    let mut response = route_request(&cx, &mut store, route)?;
    if let Some(text) = cx.prefer.body_text
        && matches!(response.payload, super::Payload::Json(_))
    {
        response.headers.push((
            "Preference-Applied",
            format!(
                "outlook.body-content-type=\"{}\"",
                if text { "text" } else { "html" }
            ),
        ));
    }
    Ok(response)
}

fn route_request(
    cx: &Cx<'_>,
    store: &mut MailStore,
    route: &MailRoute,
) -> Result<GraphResponse, GraphError> {
    let method = &cx.req.method;
    match route {
        MailRoute::SendMail => send::send_mail(cx, store),
        MailRoute::Folders => {
            let root = store.mailbox(cx.tenant, cx.owner).root_id();
            if *method == Method::POST {
                write::create_folder(cx, store.mailbox(cx.tenant, cx.owner), &root)
            } else {
                read::list_folders(cx, store.mailbox(cx.tenant, cx.owner), &root, None)
            }
        }
        MailRoute::Folder(path) => {
            let mb = store.mailbox(cx.tenant, cx.owner);
            let folder = folder_id(mb, path.id())?;
            read::get_folder(cx, mb, &folder)
        }
        MailRoute::ChildFolders(path) => {
            let mb = store.mailbox(cx.tenant, cx.owner);
            let folder = folder_id(mb, path.id())?;
            if *method == Method::POST {
                write::create_folder(cx, mb, &folder)
            } else {
                read::list_folders(cx, mb, &folder, Some(&folder))
            }
        }
        MailRoute::Messages { folder } => {
            let mb = store.mailbox(cx.tenant, cx.owner);
            let folder = folder.as_ref().map(|f| folder_id(mb, f.id())).transpose()?;
            if *method == Method::POST {
                write::create_draft(cx, mb, folder.as_deref())
            } else {
                read::list_messages(cx, mb, folder.as_deref())
            }
        }
        MailRoute::Delta { folder } => {
            let epoch = store.delta_epoch;
            let mb = store.mailbox(cx.tenant, cx.owner);
            let folder = folder_id(mb, folder.id())?;
            delta::delta(cx, mb, &folder, epoch)
        }
        MailRoute::Message { folder, id, tail } => {
            {
                let mb = store.mailbox(cx.tenant, cx.owner);
                if let Some(f) = folder {
                    folder_id(mb, f.id())?;
                }
                mb.find(id).ok_or_else(item_not_found)?;
            }
            message_route(cx, store, id, tail)
        }
    }
}

fn message_route(
    cx: &Cx<'_>,
    store: &mut MailStore,
    id: &str,
    tail: &MessageTail,
) -> Result<GraphResponse, GraphError> {
    use routes::Action;
    let method = &cx.req.method;
    match tail {
        MessageTail::Action(Action::Send) => send::send_draft(cx, store, id),
        MessageTail::Action(
            action @ (Action::Reply
            | Action::ReplyAll
            | Action::Forward
            | Action::CreateReply
            | Action::CreateReplyAll
            | Action::CreateForward),
        ) => send::respond(cx, store, id, *action),
        MessageTail::CreateUploadSession => upload::create_session(cx, store, id),
        _ => {
            let mb = store.mailbox(cx.tenant, cx.owner);
            let i = mb.find(id).ok_or_else(item_not_found)?;
            match tail {
                MessageTail::None if *method == Method::PATCH => write::update(cx, mb, i),
                MessageTail::None if *method == Method::DELETE => {
                    mb.remove(i);
                    Ok(GraphResponse::empty(StatusCode::NO_CONTENT))
                }
                MessageTail::None => read::get_message(cx, mb, i),
                MessageTail::Value => read::mime(mb, i),
                MessageTail::Attachments if *method == Method::POST => {
                    write::add_attachment(cx, mb, i)
                }
                MessageTail::Attachments => read::list_attachments(cx, mb, i),
                MessageTail::Attachment(aid) if *method == Method::DELETE => {
                    write::delete_attachment(cx, mb, i, aid)
                }
                MessageTail::Attachment(aid) => read::get_attachment(cx, mb, i, aid),
                MessageTail::AttachmentValue(aid) => read::attachment_value(mb, i, aid),
                MessageTail::Action(action @ (Action::Move | Action::Copy)) => {
                    write::move_or_copy(cx, mb, i, *action == Action::Move)
                }
                // Handled above.
                MessageTail::Action(_) | MessageTail::CreateUploadSession => {
                    Err(GraphError::method_not_allowed())
                }
            }
        }
    }
}

/// The id of the folder a path segment names (id or well-known name).
pub(crate) fn folder_id(mb: &Mailbox, key: &str) -> Result<String, GraphError> {
    mb.folder(key)
        .map(|f| f.id.clone())
        .ok_or_else(|| unknown_folder(key))
}

// --- admin surface ----------------------------------------------------------------------

/// Every message sent so far, oldest first.
pub(crate) fn sent_messages(state: &EmulatorState) -> Vec<store::SentMail> {
    lock_store(state).sent.clone()
}

/// Invalidates every outstanding delta (and delta paging) token.
pub(crate) fn expire_tokens(state: &EmulatorState) {
    lock_store(state).delta_epoch += 1;
}

/// `GET /_emulator/mail/sent`.
pub(crate) async fn sent_mail(State(emulator): State<Emulator>) -> impl IntoResponse {
    Json(sent_messages(emulator.state()))
}

/// `POST /_emulator/mail/expire-delta-tokens`: 204; later delta calls with an earlier token
/// get 410 `syncStateNotFound`.
pub(crate) async fn expire_delta_tokens(State(emulator): State<Emulator>) -> impl IntoResponse {
    expire_tokens(emulator.state());
    StatusCode::NO_CONTENT
}
