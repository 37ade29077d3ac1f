//! Writing: drafts (`POST /messages`), updates (`PATCH`), `move`/`copy`, folders, and
//! attachments on existing messages. Also the parser of message JSON the send paths share.

use axum::body::Bytes;
use axum::http::StatusCode;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value, json};

use super::super::GraphResponse;
use super::super::errors::GraphError;
use super::read::{entity, folder_entity, view};
use super::{Cx, body_read, folder_id, get_ci, invalid_request, item_not_found};
use crate::mail::{Attachment, Body, Mailbox, Message, Recipient};
use crate::tenant::Tenant;

/// Writable on any message.
const ANY_WRITABLE: [&str; 5] = [
    "isRead",
    "categories",
    "flag",
    "importance",
    "inferenceClassification",
];

/// Writable while the message is a draft.
const DRAFT_WRITABLE: [&str; 12] = [
    "subject",
    "body",
    "toRecipients",
    "ccRecipients",
    "bccRecipients",
    "replyTo",
    "from",
    "sender",
    "internetMessageId",
    "isDeliveryReceiptRequested",
    "isReadReceiptRequested",
    "internetMessageHeaders",
];

/// Never writable (ignored on create, refused on update).
const READ_ONLY: [&str; 14] = [
    "id",
    "createdDateTime",
    "lastModifiedDateTime",
    "changeKey",
    "receivedDateTime",
    "sentDateTime",
    "hasAttachments",
    "bodyPreview",
    "parentFolderId",
    "conversationId",
    "conversationIndex",
    "isDraft",
    "webLink",
    "uniqueBody",
];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Mode {
    /// `POST /messages`, `sendMail`'s `message`, a reply's `message`.
    Create,
    /// `PATCH /messages/{id}`.
    Update,
}

/// A new file attachment from JSON (`contentBytes` decoded).
#[derive(Clone, Debug)]
pub(super) struct NewAttachment {
    pub name: String,
    pub content_type: String,
    pub bytes: Bytes,
    pub is_inline: bool,
    pub content_id: Option<String>,
}

impl NewAttachment {
    pub fn into_attachment(self, now: i64) -> Attachment {
        Attachment {
            id: String::new(),
            name: self.name,
            content_type: self.content_type,
            bytes: self.bytes,
            is_inline: self.is_inline,
            content_id: self.content_id,
            modified: now,
        }
    }
}

/// The message properties a JSON body sets.
#[derive(Clone, Debug, Default)]
pub(super) struct Input {
    pub subject: Option<String>,
    pub body: Option<Body>,
    pub importance: Option<&'static str>,
    pub categories: Option<Vec<String>>,
    pub flag: Option<Value>,
    pub is_read: Option<bool>,
    pub inference: Option<&'static str>,
    pub to: Option<Vec<Recipient>>,
    pub cc: Option<Vec<Recipient>>,
    pub bcc: Option<Vec<Recipient>>,
    pub reply_to: Option<Vec<Recipient>>,
    pub from: Option<Option<Recipient>>,
    pub sender: Option<Option<Recipient>>,
    pub internet_message_id: Option<String>,
    pub delivery_receipt: Option<bool>,
    pub read_receipt: Option<bool>,
    pub headers: Option<Vec<(String, String)>>,
    pub attachments: Option<Vec<NewAttachment>>,
    /// The canonical names of the properties present.
    pub keys: Vec<&'static str>,
}

fn expected(name: &str, ty: &str) -> GraphError {
    body_read(format!(
        "Cannot convert the value of property '{name}' to the expected type '{ty}'."
    ))
}

fn string(name: &str, v: &Value) -> Result<String, GraphError> {
    match v {
        Value::String(s) => Ok(s.clone()),
        Value::Null => Ok(String::new()),
        _ => Err(expected(name, "Edm.String")),
    }
}

fn boolean(name: &str, v: &Value) -> Result<bool, GraphError> {
    v.as_bool().ok_or_else(|| expected(name, "Edm.Boolean"))
}

fn enum_value(
    name: &str,
    v: &Value,
    ty: &str,
    allowed: &[&'static str],
) -> Result<&'static str, GraphError> {
    let s = v.as_str().ok_or_else(|| expected(name, ty))?;
    allowed
        .iter()
        .find(|a| a.eq_ignore_ascii_case(s))
        .copied()
        .ok_or_else(|| {
            body_read(format!(
                "Cannot convert the literal '{s}' to the expected type '{ty}'."
            ))
        })
}

/// `{"emailAddress": {"address", "name"}}`.
fn recipient(name: &str, v: &Value) -> Result<Recipient, GraphError> {
    let email = v
        .as_object()
        .and_then(|o| get_ci(o, "emailAddress"))
        .and_then(Value::as_object)
        .ok_or_else(|| expected(name, "microsoft.graph.recipient"))?;
    let field = |f: &str| -> Result<String, GraphError> {
        get_ci(email, f).map_or(Ok(String::new()), |v| string(name, v))
    };
    Ok(Recipient::new(field("name")?, field("address")?.trim()))
}

fn recipients(name: &str, v: &Value) -> Result<Vec<Recipient>, GraphError> {
    match v {
        Value::Null => Ok(Vec::new()),
        Value::Array(items) => items.iter().map(|r| recipient(name, r)).collect(),
        _ => Err(expected(name, "Collection(microsoft.graph.recipient)")),
    }
}

pub(super) fn parse_body(v: &Value) -> Result<Body, GraphError> {
    let obj = v
        .as_object()
        .ok_or_else(|| expected("body", "microsoft.graph.itemBody"))?;
    let html = match get_ci(obj, "contentType") {
        None | Some(Value::Null) => false,
        Some(ct) => {
            enum_value(
                "contentType",
                ct,
                "microsoft.graph.bodyType",
                &["text", "html"],
            )? == "html"
        }
    };
    let content = get_ci(obj, "content").map_or(Ok(String::new()), |c| string("content", c))?;
    Ok(Body { html, content })
}

fn flag(v: &Value) -> Result<Value, GraphError> {
    let obj = v
        .as_object()
        .ok_or_else(|| expected("flag", "microsoft.graph.followupFlag"))?;
    let mut out = Map::new();
    let status = match get_ci(obj, "flagStatus") {
        None | Some(Value::Null) => "notFlagged",
        Some(s) => enum_value(
            "flagStatus",
            s,
            "microsoft.graph.followupFlagStatus",
            &["notFlagged", "complete", "flagged"],
        )?,
    };
    out.insert("flagStatus".into(), json!(status));
    for key in ["startDateTime", "dueDateTime", "completedDateTime"] {
        if let Some(v) = get_ci(obj, key).filter(|v| !v.is_null()) {
            if !v.is_object() {
                return Err(expected(key, "microsoft.graph.dateTimeTimeZone"));
            }
            out.insert(key.into(), v.clone());
        }
    }
    Ok(Value::Object(out))
}

/// A content type from a file name's extension.
pub(super) fn guess_content_type(name: &str) -> &'static str {
    let ext = name.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase());
    match ext.as_deref() {
        Some("pdf") => "application/pdf",
        Some("txt") => "text/plain",
        Some("csv") => "text/csv",
        Some("htm" | "html") => "text/html",
        Some("json") => "application/json",
        Some("xml") => "application/xml",
        Some("png") => "image/png",
        Some("jpg" | "jpeg") => "image/jpeg",
        Some("gif") => "image/gif",
        Some("zip") => "application/zip",
        Some("mp4") => "video/mp4",
        Some("mp3") => "audio/mpeg",
        Some("docx") => "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        Some("xlsx") => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        Some("pptx") => "application/vnd.openxmlformats-officedocument.presentationml.presentation",
        _ => "application/octet-stream",
    }
}

/// A `#microsoft.graph.fileAttachment` (other attachment types are not emulated).
pub(super) fn parse_attachment(obj: &Map<String, Value>) -> Result<NewAttachment, GraphError> {
    let odata_type = get_ci(obj, "@odata.type")
        .and_then(Value::as_str)
        .unwrap_or("#microsoft.graph.fileAttachment");
    if !odata_type
        .trim_start_matches('#')
        .eq_ignore_ascii_case("microsoft.graph.fileAttachment")
    {
        return Err(GraphError::new(
            StatusCode::NOT_IMPLEMENTED,
            "NotImplemented",
            format!(
                "Attachments of type '{odata_type}' are not emulated; use #microsoft.graph.fileAttachment."
            ),
        ));
    }
    let name = get_ci(obj, "name")
        .map_or(Ok(String::new()), |v| string("name", v))?
        .trim()
        .to_string();
    if name.is_empty() {
        return Err(invalid_request("The attachment's name is required."));
    }
    let raw = match get_ci(obj, "contentBytes") {
        Some(Value::String(s)) => s,
        _ => {
            return Err(invalid_request(format!(
                "The attachment '{name}' has no contentBytes."
            )));
        }
    };
    let compact: String = raw.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    let bytes = STANDARD.decode(compact.as_bytes()).map_err(|_| {
        invalid_request(format!(
            "The contentBytes of attachment '{name}' is not valid base64."
        ))
    })?;
    let content_type = match get_ci(obj, "contentType") {
        Some(Value::String(ct)) if !ct.trim().is_empty() => ct.trim().to_string(),
        _ => guess_content_type(&name).to_string(),
    };
    let is_inline = match get_ci(obj, "isInline") {
        None | Some(Value::Null) => false,
        Some(v) => boolean("isInline", v)?,
    };
    let content_id = match get_ci(obj, "contentId") {
        Some(Value::String(s)) => Some(s.clone()),
        _ => None,
    };
    Ok(NewAttachment {
        name,
        content_type,
        bytes: Bytes::from(bytes),
        is_inline,
        content_id,
    })
}

/// Reads the message properties of a JSON object.
pub(super) fn parse_input(obj: &Map<String, Value>, mode: Mode) -> Result<Input, GraphError> {
    let mut input = Input::default();
    for (key, v) in obj {
        if key.contains('@') {
            continue; // OData annotations
        }
        let known = ANY_WRITABLE
            .iter()
            .chain(DRAFT_WRITABLE.iter())
            .chain(READ_ONLY.iter())
            .chain(std::iter::once(&"attachments"))
            .find(|k| k.eq_ignore_ascii_case(key))
            .copied();
        let Some(name) = known else {
            return Err(body_read(format!(
                "The property '{key}' does not exist on type 'microsoft.graph.message'. Make sure to only use property names that are defined by the type or mark the type as open type."
            )));
        };
        if READ_ONLY.contains(&name) {
            if mode == Mode::Update {
                return Err(GraphError::new(
                    StatusCode::BAD_REQUEST,
                    "ErrorInvalidProperty",
                    format!("The property '{name}' is read-only and can't be set."),
                ));
            }
            continue;
        }
        match name {
            "subject" => input.subject = Some(string(name, v)?),
            "body" => input.body = Some(parse_body(v)?),
            "importance" => {
                input.importance = Some(enum_value(
                    name,
                    v,
                    "microsoft.graph.importance",
                    &["low", "normal", "high"],
                )?)
            }
            "inferenceClassification" => {
                input.inference = Some(enum_value(
                    name,
                    v,
                    "microsoft.graph.inferenceClassificationType",
                    &["focused", "other"],
                )?)
            }
            "categories" => {
                let list = match v {
                    Value::Null => Vec::new(),
                    Value::Array(items) => items
                        .iter()
                        .map(|c| {
                            c.as_str()
                                .map(str::to_string)
                                .ok_or_else(|| expected(name, "Collection(Edm.String)"))
                        })
                        .collect::<Result<_, _>>()?,
                    _ => return Err(expected(name, "Collection(Edm.String)")),
                };
                input.categories = Some(list);
            }
            "flag" => input.flag = Some(flag(v)?),
            "isRead" => input.is_read = Some(boolean(name, v)?),
            "toRecipients" => input.to = Some(recipients(name, v)?),
            "ccRecipients" => input.cc = Some(recipients(name, v)?),
            "bccRecipients" => input.bcc = Some(recipients(name, v)?),
            "replyTo" => input.reply_to = Some(recipients(name, v)?),
            "from" | "sender" => {
                let r = if v.is_null() {
                    None
                } else {
                    Some(recipient(name, v)?)
                };
                if name == "from" {
                    input.from = Some(r);
                } else {
                    input.sender = Some(r);
                }
            }
            "internetMessageId" => input.internet_message_id = Some(string(name, v)?),
            "isDeliveryReceiptRequested" => input.delivery_receipt = Some(boolean(name, v)?),
            "isReadReceiptRequested" => input.read_receipt = Some(boolean(name, v)?),
            "internetMessageHeaders" => {
                let items = v.as_array().ok_or_else(|| {
                    expected(name, "Collection(microsoft.graph.internetMessageHeader)")
                })?;
                let mut headers = Vec::new();
                for h in items {
                    let o = h
                        .as_object()
                        .ok_or_else(|| expected(name, "microsoft.graph.internetMessageHeader"))?;
                    let hn = get_ci(o, "name")
                        .and_then(Value::as_str)
                        .unwrap_or_default();
                    let hv = get_ci(o, "value")
                        .and_then(Value::as_str)
                        .unwrap_or_default();
                    if !hn.to_ascii_lowercase().starts_with("x-") {
                        return Err(GraphError::new(
                            StatusCode::BAD_REQUEST,
                            "InvalidInternetMessageHeader",
                            format!(
                                "The internet message header name '{hn}' should start with 'x-' or 'X-'."
                            ),
                        ));
                    }
                    headers.push((hn.to_string(), hv.to_string()));
                }
                input.headers = Some(headers);
            }
            "attachments" => {
                if mode == Mode::Update {
                    return Err(GraphError::new(
                        StatusCode::BAD_REQUEST,
                        "ErrorInvalidProperty",
                        "Attachments can't be changed with PATCH; use POST …/attachments.",
                    ));
                }
                let items = v
                    .as_array()
                    .ok_or_else(|| expected(name, "Collection(microsoft.graph.attachment)"))?;
                let list = items
                    .iter()
                    .map(|a| {
                        a.as_object()
                            .ok_or_else(|| expected(name, "microsoft.graph.attachment"))
                            .and_then(parse_attachment)
                    })
                    .collect::<Result<_, _>>()?;
                input.attachments = Some(list);
            }
            _ => {}
        }
        input.keys.push(name);
    }
    Ok(input)
}

/// Recipients without a name get the tenant user's display name, or their address.
pub(super) fn named(tenant: &Tenant, list: Vec<Recipient>) -> Vec<Recipient> {
    list.into_iter().map(|r| name_one(tenant, r)).collect()
}

pub(super) fn name_one(tenant: &Tenant, mut r: Recipient) -> Recipient {
    if r.name.trim().is_empty() {
        r.name = tenant.find_user_or_address(&r.address).map_or_else(
            || r.address.clone(),
            |u| tenant.users[u].display_name.clone(),
        );
    }
    r
}

/// Applies the properties of `input` to a message (attachments included, without ids).
pub(super) fn apply(tenant: &Tenant, m: &mut Message, input: Input, now: i64) {
    if let Some(v) = input.subject {
        m.subject = v;
    }
    if let Some(v) = input.body {
        m.body = v;
    }
    if let Some(v) = input.importance {
        m.importance = v;
    }
    if let Some(v) = input.categories {
        m.categories = v;
    }
    if let Some(v) = input.flag {
        m.flag = v;
    }
    if let Some(v) = input.is_read {
        m.is_read = v;
    }
    if let Some(v) = input.inference {
        m.inference = v;
    }
    if let Some(v) = input.to {
        m.to = named(tenant, v);
    }
    if let Some(v) = input.cc {
        m.cc = named(tenant, v);
    }
    if let Some(v) = input.bcc {
        m.bcc = named(tenant, v);
    }
    if let Some(v) = input.reply_to {
        m.reply_to = named(tenant, v);
    }
    if let Some(v) = input.from {
        m.from = v.map(|r| name_one(tenant, r));
    }
    if let Some(v) = input.sender {
        m.sender = v.map(|r| name_one(tenant, r));
    }
    if let Some(v) = input.internet_message_id {
        m.internet_message_id = v;
    }
    if let Some(v) = input.delivery_receipt {
        m.delivery_receipt = v;
    }
    if let Some(v) = input.read_receipt {
        m.read_receipt = v;
    }
    if let Some(v) = input.headers {
        m.headers = v;
    }
    if let Some(list) = input.attachments {
        m.attachments
            .extend(list.into_iter().map(|a| a.into_attachment(now)));
    }
}

/// A new draft in `folder` (Drafts by default) of the caller's mailbox, owner as sender.
pub(super) fn new_draft(mb: &mut Mailbox, folder: &str, now: i64) -> Message {
    let mut m = Message::blank(folder, now);
    m.is_draft = true;
    m.is_read = true;
    m.from = Some(mb.owner_recipient());
    m.sender = Some(mb.owner_recipient());
    let (conversation_id, index) = mb.new_conversation(now);
    m.conversation_id = conversation_id;
    m.conversation_index = index;
    m.internet_message_id = mb.new_internet_message_id();
    m
}

/// `POST /messages` or `POST /mailFolders/{id}/messages`: 201 with the draft.
pub(super) fn create_draft(
    cx: &Cx<'_>,
    mb: &mut Mailbox,
    folder: Option<&str>,
) -> Result<GraphResponse, GraphError> {
    let obj = cx.json_body()?;
    let input = parse_input(&obj, Mode::Create)?;
    let folder = folder.map_or_else(|| mb.well_known("drafts"), str::to_string);
    let mut m = new_draft(mb, &folder, cx.now);
    apply(cx.tenant, &mut m, input, cx.now);
    let i = mb.insert(m);
    Ok(GraphResponse::with_status(
        StatusCode::CREATED,
        super::super::Payload::Json(entity(cx, mb, i, &view(cx)?)),
    ))
}

/// `PATCH /messages/{id}`: 200 with the message.
pub(super) fn update(cx: &Cx<'_>, mb: &mut Mailbox, i: usize) -> Result<GraphResponse, GraphError> {
    let obj = cx.json_body()?;
    let input = parse_input(&obj, Mode::Update)?;
    if !mb.messages[i].is_draft
        && let Some(name) = input.keys.iter().find(|k| DRAFT_WRITABLE.contains(k))
    {
        return Err(GraphError::new(
            StatusCode::BAD_REQUEST,
            "ErrorInvalidPropertyUpdateSentMessage",
            format!(
                "Update operation is not allowed for property '{name}' of a message that is not a draft."
            ),
        ));
    }
    apply(cx.tenant, &mut mb.messages[i], input, cx.now);
    mb.touch(i, cx.now);
    Ok(GraphResponse::json(entity(cx, mb, i, &view(cx)?)))
}

/// `POST …/move` and `…/copy` with `{"destinationId": …}`: 201 with the message in its new
/// folder. A moved message gets a new id (no immutable ids here).
pub(super) fn move_or_copy(
    cx: &Cx<'_>,
    mb: &mut Mailbox,
    i: usize,
    is_move: bool,
) -> Result<GraphResponse, GraphError> {
    let obj = cx.json_body()?;
    let destination = match get_ci(&obj, "destinationId") {
        Some(Value::String(s)) if !s.trim().is_empty() => s.trim().to_string(),
        _ => return Err(invalid_request("The destinationId parameter is required.")),
    };
    let folder = folder_id(mb, &destination)?;
    let j = if is_move {
        if mb.messages[i].folder == folder {
            i
        } else {
            mb.relocate(i, &folder, cx.now)
        }
    } else {
        let mut copy = mb.messages[i].clone();
        copy.folder = folder;
        copy.version = 1;
        copy.created = cx.now;
        copy.modified = cx.now;
        mb.insert(copy)
    };
    let mut body = entity(cx, mb, j, &view(cx)?);
    if let Value::Object(map) = &mut body {
        map.insert("@odata.type".into(), json!("#microsoft.graph.message"));
    }
    Ok(GraphResponse::with_status(
        StatusCode::CREATED,
        super::super::Payload::Json(body),
    ))
}

/// `POST /mailFolders` or `…/childFolders` with `{"displayName": …}`: 201 with the folder.
pub(super) fn create_folder(
    cx: &Cx<'_>,
    mb: &mut Mailbox,
    parent: &str,
) -> Result<GraphResponse, GraphError> {
    let obj = cx.json_body()?;
    let name = match get_ci(&obj, "displayName") {
        Some(Value::String(s)) if !s.trim().is_empty() => s.trim().to_string(),
        _ => return Err(invalid_request("The folder's displayName is required.")),
    };
    let hidden = match get_ci(&obj, "isHidden") {
        None | Some(Value::Null) => false,
        Some(v) => boolean("isHidden", v)?,
    };
    let id = mb.add_folder(parent, &name).ok_or_else(|| {
        GraphError::new(
            StatusCode::CONFLICT,
            "ErrorFolderExists",
            "A folder with the specified name already exists.",
        )
    })?;
    if let Some(f) = mb.folders.iter_mut().find(|f| f.id == id) {
        f.hidden = hidden;
    }
    Ok(GraphResponse::with_status(
        StatusCode::CREATED,
        super::super::Payload::Json(folder_entity(cx, mb, &id)?),
    ))
}

/// `POST …/messages/{id}/attachments` with a fileAttachment under 3 MiB: 201.
pub(super) fn add_attachment(
    cx: &Cx<'_>,
    mb: &mut Mailbox,
    i: usize,
) -> Result<GraphResponse, GraphError> {
    let obj = cx.json_body()?;
    let new = parse_attachment(&obj)?;
    let id = mb.new_attachment_id(i);
    let mut a = new.into_attachment(cx.now);
    a.id = id;
    let json = super::render::attachment(&a, None);
    mb.messages[i].attachments.push(a);
    mb.touch(i, cx.now);
    let mut body = Map::new();
    body.insert(
        "@odata.context".into(),
        Value::String(cx.context(&format!(
            "/messages('{}')/attachments/$entity",
            mb.messages[i].id
        ))),
    );
    body.extend(json);
    Ok(GraphResponse::with_status(
        StatusCode::CREATED,
        super::super::Payload::Json(Value::Object(body)),
    ))
}

/// `DELETE …/attachments/{id}`: 204.
pub(super) fn delete_attachment(
    cx: &Cx<'_>,
    mb: &mut Mailbox,
    i: usize,
    aid: &str,
) -> Result<GraphResponse, GraphError> {
    let position = mb.messages[i]
        .attachments
        .iter()
        .position(|a| a.id == aid)
        .ok_or_else(item_not_found)?;
    mb.messages[i].attachments.remove(position);
    mb.touch(i, cx.now);
    Ok(GraphResponse::empty(StatusCode::NO_CONTENT))
}
