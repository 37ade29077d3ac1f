//! Reading: message lists (with `$filter`, `$orderby`, `$search`, paging), single messages,
//! MIME (`$value`), folders and attachments.

use axum::body::Bytes;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value};
use time::OffsetDateTime;
use time::macros::format_description;

use super::super::errors::GraphError;
use super::super::filter::{self as odata, Expr};
use super::super::{GraphResponse, Payload};
use super::filter::MailFilter;
use super::query::{self, default_order, next_link};
use super::render::{self, FOLDER_PROPS, View};
use super::search::{MAX_RESULTS, MailSearch};
use super::{Cx, item_not_found};
use crate::mail::{Mailbox, Message, Recipient};

/// `$filter`/`$orderby`/`$top`/`$skip`/`$search` on a single entity.
fn not_a_collection() -> GraphError {
    GraphError::bad_request(
        "The query specified in the URI is not valid. The requested resource is not a collection. Query options $filter, $orderby, $count, $skip, and $top can be applied only on collections.",
    )
}

fn only_on_delta() -> GraphError {
    GraphError::bad_request(
        "$skiptoken and $deltatoken are only valid on /mailFolders/{id}/messages/delta.",
    )
}

fn select_suffix(select: &Option<Vec<&'static str>>) -> String {
    select
        .as_ref()
        .map(|s| format!("({})", s.join(",")))
        .unwrap_or_default()
}

pub(super) fn view(cx: &Cx<'_>) -> Result<View, GraphError> {
    Ok(View {
        select: render::parse_message_select(cx.query.select.as_deref())?,
        body_text: cx.prefer.body_text,
        expand: render::parse_expand(cx.query.expand.as_deref())?,
        with_type: false,
    })
}

/// `GET /messages` (every folder) or `GET /mailFolders/{id}/messages`.
pub(super) fn list_messages(
    cx: &Cx<'_>,
    mb: &Mailbox,
    folder: Option<&str>,
) -> Result<GraphResponse, GraphError> {
    let q = &cx.query;
    if q.skiptoken.is_some() || q.deltatoken.is_some() {
        return Err(only_on_delta());
    }
    let top = q.page_size()?;
    let skip = q.skip()?;
    let view = view(cx)?;
    let scope = mb
        .messages
        .iter()
        .filter(|m| folder.is_none_or(|f| m.folder == f));
    let items: Vec<&Message> = if let Some(raw) = &q.search {
        for (given, name) in [
            (q.filter.is_some(), "$filter"),
            (q.orderby.is_some(), "$orderby"),
        ] {
            if given {
                return Err(GraphError::bad_request(format!(
                    "The query parameter '{name}' is not supported with '$search'."
                )));
            }
        }
        let search = MailSearch::parse(raw)?;
        let mut found: Vec<&Message> = scope.filter(|m| search.matches(m)).collect();
        found.sort_by(|a, b| default_order(a, b));
        found.truncate(MAX_RESULTS);
        found
    } else {
        let filter = q.filter.as_deref().map(MailFilter::parse).transpose()?;
        let order = q
            .orderby
            .as_deref()
            .map(query::parse_orderby)
            .transpose()?
            .unwrap_or_default();
        if let Some(f) = &filter
            && !order.is_empty()
        {
            f.check_order(&order)?;
        }
        let mut found: Vec<&Message> = scope
            .filter(|m| filter.as_ref().is_none_or(|f| f.matches(mb, m)))
            .collect();
        query::sort(&mut found, &order);
        found
    };

    let mut body = Map::new();
    let collection = match folder {
        Some(f) => format!("/mailFolders('{f}')/messages"),
        None => "/messages".to_string(),
    };
    body.insert(
        "@odata.context".into(),
        Value::String(cx.context(&format!("{collection}{}", select_suffix(&view.select)))),
    );
    if q.count == Some(true) {
        body.insert("@odata.count".into(), Value::from(items.len()));
    }
    let page: Vec<Value> = items
        .iter()
        .skip(skip)
        .take(top)
        .map(|m| Value::Object(render::message(mb, m, &view)))
        .collect();
    body.insert("value".into(), Value::Array(page));
    if skip.saturating_add(top) < items.len() {
        body.insert(
            "@odata.nextLink".into(),
            Value::String(next_link(
                &cx.self_url(),
                cx.req.query.as_deref(),
                skip + top,
            )),
        );
    }
    Ok(GraphResponse::json(Value::Object(body)))
}

fn single_entity_only(cx: &Cx<'_>) -> Result<(), GraphError> {
    let q = &cx.query;
    if q.filter.is_some()
        || q.orderby.is_some()
        || q.top.is_some()
        || q.skip.is_some()
        || q.search.is_some()
        || q.count.is_some()
    {
        return Err(not_a_collection());
    }
    if q.skiptoken.is_some() || q.deltatoken.is_some() {
        return Err(only_on_delta());
    }
    Ok(())
}

/// The JSON of one message with `@odata.context`, as a single GET (or a write) returns it.
pub(super) fn entity(cx: &Cx<'_>, mb: &Mailbox, i: usize, view: &View) -> Value {
    let mut body = Map::new();
    body.insert(
        "@odata.context".into(),
        Value::String(cx.context(&format!("/messages{}/$entity", select_suffix(&view.select)))),
    );
    body.extend(render::message(mb, &mb.messages[i], view));
    Value::Object(body)
}

pub(super) fn get_message(
    cx: &Cx<'_>,
    mb: &Mailbox,
    i: usize,
) -> Result<GraphResponse, GraphError> {
    single_entity_only(cx)?;
    let view = view(cx)?;
    Ok(GraphResponse::json(entity(cx, mb, i, &view)))
}

fn rfc2822(unix: i64) -> String {
    let fmt = format_description!(
        "[weekday repr:short], [day padding:none] [month repr:short] [year] [hour]:[minute]:[second] +0000"
    );
    OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| t.format(&fmt).ok())
        .unwrap_or_default()
}

fn address_list(list: &[Recipient]) -> String {
    list.iter()
        .map(|r| format!("{} <{}>", r.name, r.address))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `GET …/messages/{id}/$value`: the message as MIME (`text/plain`, as Graph labels it).
pub(super) fn mime(mb: &Mailbox, i: usize) -> Result<GraphResponse, GraphError> {
    let m = &mb.messages[i];
    let mut out = String::new();
    let mut header = |name: &str, value: &str| {
        out.push_str(name);
        out.push_str(": ");
        out.push_str(value);
        out.push_str("\r\n");
    };
    if let Some(from) = &m.from {
        header("From", &address_list(std::slice::from_ref(from)));
    }
    if let Some(sender) = &m.sender
        && Some(sender) != m.from.as_ref()
    {
        header("Sender", &address_list(std::slice::from_ref(sender)));
    }
    if !m.to.is_empty() {
        header("To", &address_list(&m.to));
    }
    if !m.cc.is_empty() {
        header("CC", &address_list(&m.cc));
    }
    header("Subject", &m.subject);
    header(
        "Thread-Topic",
        m.subject
            .trim_start_matches("RE: ")
            .trim_start_matches("FW: "),
    );
    header("Thread-Index", &STANDARD.encode(&m.conversation_index));
    header("Date", &rfc2822(m.sent));
    header("Message-ID", &m.internet_message_id);
    header("Content-Language", "en-US");
    header(
        "X-MS-Has-Attach",
        if m.has_attachments() { "yes" } else { "" },
    );
    for (name, value) in &m.headers {
        header(name, value);
    }
    header("MIME-Version", "1.0");
    let body_type = if m.body.html {
        "text/html"
    } else {
        "text/plain"
    };
    let boundary = format!("_004_{}_", &m.id.chars().rev().take(24).collect::<String>());
    let boundary: String = boundary
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    if m.attachments.is_empty() {
        out.push_str(&format!(
            "Content-Type: {body_type}; charset=\"utf-8\"\r\nContent-Transfer-Encoding: 8bit\r\n\r\n{}\r\n",
            m.body.content
        ));
    } else {
        out.push_str(&format!(
            "Content-Type: multipart/mixed;\r\n\tboundary=\"{boundary}\"\r\n\r\n--{boundary}\r\nContent-Type: {body_type}; charset=\"utf-8\"\r\nContent-Transfer-Encoding: 8bit\r\n\r\n{}\r\n",
            m.body.content
        ));
        for a in &m.attachments {
            out.push_str(&format!(
                "\r\n--{boundary}\r\nContent-Type: {}; name=\"{}\"\r\nContent-Description: {}\r\nContent-Disposition: {}; filename=\"{}\"; size={}\r\nContent-Transfer-Encoding: base64\r\n\r\n",
                a.content_type,
                a.name,
                a.name,
                if a.is_inline { "inline" } else { "attachment" },
                a.name,
                a.bytes.len()
            ));
            let encoded = STANDARD.encode(&a.bytes);
            for line in encoded.as_bytes().chunks(76) {
                out.push_str(std::str::from_utf8(line).unwrap_or_default());
                out.push_str("\r\n");
            }
        }
        out.push_str(&format!("\r\n--{boundary}--\r\n"));
    }
    Ok(GraphResponse::text(out))
}

/// A `$filter` on folders: comparisons and functions on folder properties only.
fn folder_filter(raw: &str) -> Result<Expr, GraphError> {
    fn check(e: &mut Expr) -> Result<(), GraphError> {
        match e {
            Expr::And(a, b) | Expr::Or(a, b) => {
                check(a)?;
                check(b)
            }
            Expr::Not(inner) => check(inner),
            Expr::Compare { path, .. } | Expr::In { path, .. } | Expr::Func { path, .. } => {
                let joined = path.join("/");
                let canonical = FOLDER_PROPS
                    .iter()
                    .find(|p| p.eq_ignore_ascii_case(&joined))
                    .ok_or_else(|| {
                        GraphError::bad_request(format!(
                            "Invalid filter clause: Could not find a property named '{joined}' on type 'microsoft.graph.mailFolder'."
                        ))
                    })?;
                *path = vec![(*canonical).to_string()];
                Ok(())
            }
            Expr::Lambda { .. } => Err(super::filter::invalid_filter()),
        }
    }
    let mut expr = odata::parse_expr(raw)?;
    check(&mut expr)?;
    Ok(expr)
}

/// `GET /mailFolders` (the children of msgfolderroot) or `…/childFolders`.
pub(super) fn list_folders(
    cx: &Cx<'_>,
    mb: &Mailbox,
    parent: &str,
    child_of: Option<&str>,
) -> Result<GraphResponse, GraphError> {
    let q = &cx.query;
    if q.search.is_some() || q.orderby.is_some() || q.expand.is_some() {
        return Err(GraphError::bad_request(
            "$search, $orderby and $expand are not supported on mail folders here.",
        ));
    }
    let top = q.page_size()?;
    let skip = q.skip()?;
    let select = render::parse_select(q.select.as_deref(), &FOLDER_PROPS, "mailFolder")?;
    let filter = q.filter.as_deref().map(folder_filter).transpose()?;
    let mut folders: Vec<Map<String, Value>> = mb
        .children(parent)
        .filter(|f| q.include_hidden || !f.hidden)
        .map(|f| render::folder(mb, f, None))
        .filter(|f| {
            filter
                .as_ref()
                .is_none_or(|e| odata::eval_expr(e, &|name: &str| f.get(name).cloned()))
        })
        .collect();
    folders.sort_by_key(|f| {
        f.get("displayName")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_lowercase()
    });
    let total = folders.len();
    let page: Vec<Value> = folders
        .into_iter()
        .skip(skip)
        .take(top)
        .map(|mut f| {
            if let Some(select) = &select {
                f.retain(|k, _| k == "id" || select.iter().any(|s| s == k));
            }
            Value::Object(f)
        })
        .collect();
    let mut body = Map::new();
    let collection = match child_of {
        Some(key) => format!("/mailFolders('{key}')/childFolders"),
        None => "/mailFolders".to_string(),
    };
    body.insert(
        "@odata.context".into(),
        Value::String(cx.context(&format!("{collection}{}", select_suffix(&select)))),
    );
    if q.count == Some(true) {
        body.insert("@odata.count".into(), Value::from(total));
    }
    body.insert("value".into(), Value::Array(page));
    if skip.saturating_add(top) < total {
        body.insert(
            "@odata.nextLink".into(),
            Value::String(next_link(
                &cx.self_url(),
                cx.req.query.as_deref(),
                skip + top,
            )),
        );
    }
    Ok(GraphResponse::json(Value::Object(body)))
}

/// The JSON of one folder with its `@odata.context`.
pub(super) fn folder_entity(cx: &Cx<'_>, mb: &Mailbox, id: &str) -> Result<Value, GraphError> {
    let select = render::parse_select(cx.query.select.as_deref(), &FOLDER_PROPS, "mailFolder")?;
    let f = mb
        .folders
        .iter()
        .find(|f| f.id == id)
        .ok_or_else(item_not_found)?;
    let mut body = Map::new();
    body.insert(
        "@odata.context".into(),
        Value::String(cx.context(&format!("/mailFolders{}/$entity", select_suffix(&select)))),
    );
    body.extend(render::folder(mb, f, select.as_deref()));
    Ok(Value::Object(body))
}

pub(super) fn get_folder(cx: &Cx<'_>, mb: &Mailbox, id: &str) -> Result<GraphResponse, GraphError> {
    single_entity_only(cx)?;
    Ok(GraphResponse::json(folder_entity(cx, mb, id)?))
}

pub(super) fn list_attachments(
    cx: &Cx<'_>,
    mb: &Mailbox,
    i: usize,
) -> Result<GraphResponse, GraphError> {
    let select = render::parse_select(
        cx.query.select.as_deref(),
        &render::ATTACHMENT_PROPS,
        "attachment",
    )?;
    let m = &mb.messages[i];
    let mut body = Map::new();
    body.insert(
        "@odata.context".into(),
        Value::String(cx.context(&format!(
            "/messages('{}')/attachments{}",
            m.id,
            select_suffix(&select)
        ))),
    );
    let value = m
        .attachments
        .iter()
        .map(|a| Value::Object(render::attachment(a, select.as_deref())))
        .collect();
    body.insert("value".into(), Value::Array(value));
    Ok(GraphResponse::json(Value::Object(body)))
}

pub(super) fn get_attachment(
    cx: &Cx<'_>,
    mb: &Mailbox,
    i: usize,
    aid: &str,
) -> Result<GraphResponse, GraphError> {
    let select = render::parse_select(
        cx.query.select.as_deref(),
        &render::ATTACHMENT_PROPS,
        "attachment",
    )?;
    let m = &mb.messages[i];
    let a = m
        .attachments
        .iter()
        .find(|a| a.id == aid)
        .ok_or_else(item_not_found)?;
    let mut body = Map::new();
    body.insert(
        "@odata.context".into(),
        Value::String(cx.context(&format!(
            "/messages('{}')/attachments{}/$entity",
            m.id,
            select_suffix(&select)
        ))),
    );
    body.extend(render::attachment(a, select.as_deref()));
    Ok(GraphResponse::json(Value::Object(body)))
}

/// `GET …/attachments/{id}/$value`: the raw bytes with the attachment's content type.
pub(super) fn attachment_value(
    mb: &Mailbox,
    i: usize,
    aid: &str,
) -> Result<GraphResponse, GraphError> {
    let a = mb.messages[i]
        .attachments
        .iter()
        .find(|a| a.id == aid)
        .ok_or_else(item_not_found)?;
    let bytes: Bytes = a.bytes.clone();
    Ok(GraphResponse::with_status(
        axum::http::StatusCode::OK,
        Payload::Bytes {
            content_type: a.content_type.clone(),
            bytes,
        },
    ))
}
