//! Message, folder and attachment JSON exactly as Graph shapes it (message-get,
//! user-list-mailfolders, message-post-attachments), with `$select`, `$expand=attachments`
//! and `Prefer: outlook.body-content-type`.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::{Map, Value, json};

use super::super::errors::GraphError;
use crate::clock::format_utc_seconds;
use crate::mail::text::{html_to_text, preview, text_to_html};
use crate::mail::{Attachment, Folder, Mailbox, Message, Recipient, ids};

/// A message's properties without `$select`, in Graph's order.
pub(crate) const MESSAGE_DEFAULT: [&str; 29] = [
    "id",
    "createdDateTime",
    "lastModifiedDateTime",
    "changeKey",
    "categories",
    "receivedDateTime",
    "sentDateTime",
    "hasAttachments",
    "internetMessageId",
    "subject",
    "bodyPreview",
    "importance",
    "parentFolderId",
    "conversationId",
    "conversationIndex",
    "isDeliveryReceiptRequested",
    "isReadReceiptRequested",
    "isRead",
    "isDraft",
    "webLink",
    "inferenceClassification",
    "body",
    "sender",
    "from",
    "toRecipients",
    "ccRecipients",
    "bccRecipients",
    "replyTo",
    "flag",
];

/// Returned only when `$select` names them.
const MESSAGE_SELECT_ONLY: [&str; 2] = ["uniqueBody", "internetMessageHeaders"];

pub(crate) const ATTACHMENT_PROPS: [&str; 9] = [
    "id",
    "lastModifiedDateTime",
    "name",
    "contentType",
    "size",
    "isInline",
    "contentId",
    "contentLocation",
    "contentBytes",
];

pub(crate) const FOLDER_PROPS: [&str; 8] = [
    "id",
    "displayName",
    "parentFolderId",
    "childFolderCount",
    "unreadItemCount",
    "totalItemCount",
    "sizeInBytes",
    "isHidden",
];

fn unknown_property(name: &str, type_name: &str) -> GraphError {
    GraphError::bad_request(format!(
        "Could not find a property named '{name}' on type 'microsoft.graph.{type_name}'."
    ))
}

/// Reads a `$select` list against `allowed` (case-insensitive), canonically spelled.
pub(crate) fn parse_select(
    raw: Option<&str>,
    allowed: &[&'static str],
    type_name: &str,
) -> Result<Option<Vec<&'static str>>, GraphError> {
    let Some(raw) = raw else { return Ok(None) };
    let mut out: Vec<&'static str> = Vec::new();
    for item in raw.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        if item == "*" {
            return Ok(None);
        }
        let canonical = allowed
            .iter()
            .find(|a| a.eq_ignore_ascii_case(item))
            .ok_or_else(|| unknown_property(item, type_name))?;
        if !out.contains(canonical) {
            out.push(canonical);
        }
    }
    Ok(if out.is_empty() { None } else { Some(out) })
}

/// `$select` for messages.
pub(crate) fn parse_message_select(
    raw: Option<&str>,
) -> Result<Option<Vec<&'static str>>, GraphError> {
    let allowed: Vec<&'static str> = MESSAGE_DEFAULT
        .iter()
        .chain(MESSAGE_SELECT_ONLY.iter())
        .copied()
        .collect();
    parse_select(raw, &allowed, "message")
}

/// `$expand=attachments` or `attachments($select=…)`: the attachment properties, if any.
#[derive(Clone, Debug, Default)]
pub(crate) struct AttachmentExpand {
    pub select: Option<Vec<&'static str>>,
}

pub(crate) fn parse_expand(raw: Option<&str>) -> Result<Option<AttachmentExpand>, GraphError> {
    let Some(raw) = raw.map(str::trim).filter(|r| !r.is_empty()) else {
        return Ok(None);
    };
    let (name, options) = match raw.find('(') {
        Some(open) if raw.ends_with(')') => {
            (raw[..open].trim(), Some(&raw[open + 1..raw.len() - 1]))
        }
        Some(_) => {
            return Err(GraphError::bad_request(format!(
                "Syntax error in $expand '{raw}'."
            )));
        }
        None => (raw, None),
    };
    if !name.eq_ignore_ascii_case("attachments") {
        let known = MESSAGE_DEFAULT
            .iter()
            .chain(MESSAGE_SELECT_ONLY.iter())
            .any(|p| p.eq_ignore_ascii_case(name));
        return Err(GraphError::bad_request(if known {
            format!(
                "Property '{name}' on type 'microsoft.graph.message' is not a navigation property or complex property. Only navigation properties can be expanded."
            )
        } else if name.contains(',') {
            format!("Only $expand=attachments is supported on messages here; got '{name}'.")
        } else {
            format!(
                "Parsing OData Select and Expand failed: Could not find a property named '{name}' on type 'microsoft.graph.message'."
            )
        }));
    }
    let mut expand = AttachmentExpand::default();
    for option in options.unwrap_or_default().split(';') {
        let option = option.trim();
        if option.is_empty() {
            continue;
        }
        let (key, value) = option
            .split_once('=')
            .ok_or_else(|| GraphError::bad_request(format!("Syntax error in $expand '{raw}'.")))?;
        if key.trim().eq_ignore_ascii_case("$select") {
            expand.select = parse_select(Some(value), &ATTACHMENT_PROPS, "attachment")?;
        } else {
            return Err(GraphError::bad_request(format!(
                "Query option '{}' is not supported inside $expand.",
                key.trim()
            )));
        }
    }
    Ok(Some(expand))
}

/// How a message is rendered.
#[derive(Clone, Debug, Default)]
pub(crate) struct View {
    /// `$select` (None: the default set).
    pub select: Option<Vec<&'static str>>,
    /// `Prefer: outlook.body-content-type`: `Some(true)` text; default HTML.
    pub body_text: Option<bool>,
    pub expand: Option<AttachmentExpand>,
    /// Collections of delta carry `@odata.type` on each item.
    pub with_type: bool,
}

pub(crate) fn recipient(r: &Recipient) -> Value {
    json!({"emailAddress": {"name": r.name, "address": r.address}})
}

fn recipients(list: &[Recipient]) -> Value {
    Value::Array(list.iter().map(recipient).collect())
}

pub(crate) fn etag(mb: &Mailbox, m: &Message) -> String {
    format!("W/\"{}\"", ids::change_key(&mb.key, m.ordinal, m.version))
}

/// `https://outlook.office365.com/owa/?ItemID=…`: OWA takes the standard-base64 id.
fn web_link(id: &str) -> String {
    let standard = id.replace('-', "+").replace('_', "/");
    format!(
        "https://outlook.office365.com/owa/?ItemID={}&exvsurl=1&viewmodel=ReadMessageItem",
        utf8_percent_encode(&standard, NON_ALPHANUMERIC)
    )
}

/// The body as requested: HTML by default, text with `Prefer: …="text"`.
fn body(m: &Message, text: bool) -> Value {
    let content = match (m.body.html, text) {
        (true, true) => html_to_text(&m.body.content),
        (false, false) => text_to_html(&m.body.content),
        _ => m.body.content.clone(),
    };
    json!({"contentType": if text { "text" } else { "html" }, "content": content})
}

/// The Internet headers a received message shows (`$select=internetMessageHeaders`).
fn internet_headers(m: &Message) -> Value {
    let mut headers: Vec<(String, String)> = Vec::new();
    if !m.is_draft {
        let addr = |r: &Recipient| format!("{} <{}>", r.name, r.address);
        headers.push(("MIME-Version".into(), "1.0".into()));
        headers.push((
            "Content-Type".into(),
            if m.has_attachments() {
                "multipart/mixed".into()
            } else if m.body.html {
                "text/html; charset=\"utf-8\"".into()
            } else {
                "text/plain; charset=\"utf-8\"".into()
            },
        ));
        if let Some(from) = &m.from {
            headers.push(("From".into(), addr(from)));
        }
        if !m.to.is_empty() {
            headers.push((
                "To".into(),
                m.to.iter().map(addr).collect::<Vec<_>>().join(", "),
            ));
        }
        headers.push(("Subject".into(), m.subject.clone()));
        headers.push(("Message-ID".into(), m.internet_message_id.clone()));
        headers.push(("Date".into(), crate::clock::http_date(m.sent)));
    }
    headers.extend(m.headers.iter().cloned());
    Value::Array(
        headers
            .into_iter()
            .map(|(name, value)| json!({"name": name, "value": value}))
            .collect(),
    )
}

/// One property of a message.
pub(crate) fn property(mb: &Mailbox, m: &Message, name: &str, body_text: bool) -> Value {
    let date = |t: i64| Value::String(format_utc_seconds(t));
    let opt = |r: &Option<Recipient>| r.as_ref().map_or(Value::Null, recipient);
    match name {
        "id" => Value::String(m.id.clone()),
        "createdDateTime" => date(m.created),
        "lastModifiedDateTime" => date(m.modified),
        "changeKey" => Value::String(ids::change_key(&mb.key, m.ordinal, m.version)),
        "categories" => json!(m.categories),
        "receivedDateTime" => date(m.received),
        "sentDateTime" => date(m.sent),
        "hasAttachments" => Value::Bool(m.has_attachments()),
        "internetMessageId" => Value::String(m.internet_message_id.clone()),
        "subject" => Value::String(m.subject.clone()),
        "bodyPreview" => Value::String(preview(m.body.html, &m.body.content)),
        "importance" => Value::String(m.importance.to_string()),
        "parentFolderId" => Value::String(m.folder.clone()),
        "conversationId" => Value::String(m.conversation_id.clone()),
        "conversationIndex" => Value::String(STANDARD.encode(&m.conversation_index)),
        "isDeliveryReceiptRequested" => Value::Bool(m.delivery_receipt),
        "isReadReceiptRequested" => Value::Bool(m.read_receipt),
        "isRead" => Value::Bool(m.is_read),
        "isDraft" => Value::Bool(m.is_draft),
        "webLink" => Value::String(web_link(&m.id)),
        "inferenceClassification" => Value::String(m.inference.to_string()),
        "body" | "uniqueBody" => body(m, body_text),
        "sender" => opt(&m.sender),
        "from" => opt(&m.from),
        "toRecipients" => recipients(&m.to),
        "ccRecipients" => recipients(&m.cc),
        "bccRecipients" => recipients(&m.bcc),
        "replyTo" => recipients(&m.reply_to),
        "flag" => m.flag.clone(),
        "internetMessageHeaders" => internet_headers(m),
        _ => Value::Null,
    }
}

pub(crate) fn message(mb: &Mailbox, m: &Message, view: &View) -> Map<String, Value> {
    let mut out = Map::new();
    if view.with_type || m.odata_type.is_some() {
        let odata_type = m.odata_type.unwrap_or("#microsoft.graph.message");
        out.insert("@odata.type".into(), json!(odata_type));
    }
    out.insert("@odata.etag".into(), Value::String(etag(mb, m)));
    let text = view.body_text == Some(true);
    match &view.select {
        None => {
            for name in MESSAGE_DEFAULT {
                out.insert(name.into(), property(mb, m, name, text));
            }
        }
        Some(props) => {
            out.insert("id".into(), Value::String(m.id.clone()));
            for name in props {
                out.insert((*name).into(), property(mb, m, name, text));
            }
        }
    }
    if let Some(expand) = &view.expand {
        let list = m
            .attachments
            .iter()
            .map(|a| Value::Object(attachment(a, expand.select.as_deref())))
            .collect();
        out.insert("attachments".into(), Value::Array(list));
    }
    out
}

/// A fileAttachment; `select` limits the properties (id always).
pub(crate) fn attachment(a: &Attachment, select: Option<&[&'static str]>) -> Map<String, Value> {
    let mut out = Map::new();
    out.insert(
        "@odata.type".into(),
        json!("#microsoft.graph.fileAttachment"),
    );
    out.insert(
        "@odata.mediaContentType".into(),
        Value::String(a.content_type.clone()),
    );
    let props: Vec<&str> = match select {
        None => ATTACHMENT_PROPS.to_vec(),
        Some(s) => std::iter::once("id")
            .chain(s.iter().copied().filter(|p| *p != "id"))
            .collect(),
    };
    for p in props {
        let v = match p {
            "id" => Value::String(a.id.clone()),
            "lastModifiedDateTime" => Value::String(format_utc_seconds(a.modified)),
            "name" => Value::String(a.name.clone()),
            "contentType" => Value::String(a.content_type.clone()),
            "size" => json!(a.bytes.len()),
            "isInline" => Value::Bool(a.is_inline),
            "contentId" => a.content_id.clone().map_or(Value::Null, Value::String),
            "contentLocation" => Value::Null,
            "contentBytes" => Value::String(STANDARD.encode(&a.bytes)),
            _ => Value::Null,
        };
        out.insert(p.into(), v);
    }
    out
}

pub(crate) fn folder(
    mb: &Mailbox,
    f: &Folder,
    select: Option<&[&'static str]>,
) -> Map<String, Value> {
    let (total, unread, size) = mb.folder_counts(&f.id);
    let children = mb.children(&f.id).count();
    let props: Vec<&str> = match select {
        None => FOLDER_PROPS.to_vec(),
        Some(s) => std::iter::once("id")
            .chain(s.iter().copied().filter(|p| *p != "id"))
            .collect(),
    };
    let mut out = Map::new();
    for p in props {
        let v = match p {
            "id" => Value::String(f.id.clone()),
            "displayName" => Value::String(f.name.clone()),
            "parentFolderId" => f.parent.clone().map_or(Value::Null, Value::String),
            "childFolderCount" => json!(children),
            "unreadItemCount" => json!(unread),
            "totalItemCount" => json!(total),
            "sizeInBytes" => json!(size),
            "isHidden" => Value::Bool(f.hidden),
            _ => Value::Null,
        };
        out.insert(p.into(), v);
    }
    out
}
