//! Sending: `sendMail`, sending drafts, `reply`/`replyAll`/`forward` and their `create…`
//! draft forms, and delivery to the tenant's mailboxes (graph-protocol.md §7).
//!
//! Delivery: every tenant recipient (to, cc and bcc, matched by mail, UPN or proxy address,
//! case-insensitively; members only) gets a copy in their Inbox, with a new id, the same
//! `internetMessageId` and `conversationId`, and no `bccRecipients`. The sender keeps a copy
//! in Sent Items (unless `saveToSentItems` is false). External recipients are recorded only.
//! Attachment bytes are shared between copies, never duplicated.

use axum::http::StatusCode;
use serde_json::{Map, Value};
use sha2::Digest;

use super::super::errors::GraphError;
use super::super::{GraphResponse, Payload};
use super::read::{entity, view};
use super::routes::Action;
use super::write::{Input, Mode, apply, name_one, named, new_draft, parse_input};
use super::{Cx, body_read, get_ci, invalid_request, item_not_found};
use crate::mail::text::{escape_html, html_to_text, text_to_html};
use crate::mail::{Body, MailStore, Message, Recipient, SentAttachment, SentMail, has_mailbox};

fn invalid_recipients(detail: &str) -> GraphError {
    GraphError::new(
        StatusCode::BAD_REQUEST,
        "ErrorInvalidRecipients",
        format!("At least one recipient is not valid., {detail}"),
    )
}

/// `local@domain.tld`, no spaces or angle brackets.
fn valid_address(address: &str) -> bool {
    let Some((local, domain)) = address.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && !domain.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains('@')
        && !address
            .chars()
            .any(|c| c.is_whitespace() || matches!(c, '<' | '>' | ',' | ';' | '"'))
}

/// Refuses a message without recipients, or with an address that cannot be resolved.
fn check_recipients(m: &Message) -> Result<(), GraphError> {
    let all: Vec<&Recipient> = m.to.iter().chain(&m.cc).chain(&m.bcc).collect();
    if all.is_empty() {
        return Err(invalid_recipients(
            "A message can't be sent because it contains no recipients.",
        ));
    }
    if let Some(bad) = all.iter().find(|r| !valid_address(&r.address)) {
        return Err(invalid_recipients(&format!(
            "Recipient '{}' is not resolved. All recipients must be resolved before a message can be submitted.",
            bad.address
        )));
    }
    Ok(())
}

fn sha256_hex(bytes: &[u8]) -> String {
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Sends `m` from the caller's mailbox: Sent Items copy, Inbox copies, the sent log.
fn deliver(cx: &Cx<'_>, store: &mut MailStore, mut m: Message, save: bool, via: &str) {
    let now = cx.now;
    let tenant = cx.tenant;
    let (owner, owner_upn) = {
        let mb = store.mailbox(tenant, cx.owner);
        (mb.owner_recipient(), mb.user_principal_name.clone())
    };
    m.is_draft = false;
    m.is_read = true;
    m.created = now;
    m.modified = now;
    m.received = now;
    m.sent = now;
    m.version = 1;
    m.from = Some(
        m.from
            .map_or_else(|| owner.clone(), |r| name_one(tenant, r)),
    );
    m.sender = Some(owner.clone());
    m.to = named(tenant, m.to);
    m.cc = named(tenant, m.cc);
    m.bcc = named(tenant, m.bcc);

    // Each tenant mailbox once, in recipient order.
    let mut targets: Vec<usize> = Vec::new();
    for r in m.to.iter().chain(&m.cc).chain(&m.bcc) {
        if let Some(u) = tenant.find_user_or_address(&r.address)
            && has_mailbox(tenant, u)
            && !targets.contains(&u)
        {
            targets.push(u);
        }
    }
    if save {
        let mb = store.mailbox(tenant, cx.owner);
        let mut copy = m.clone();
        copy.folder = mb.well_known("sentitems");
        mb.insert(copy);
    }
    let mut delivered = Vec::new();
    for &u in &targets {
        let mb = store.mailbox(tenant, u);
        let mut copy = m.clone();
        copy.folder = mb.well_known("inbox");
        copy.bcc = Vec::new();
        copy.is_read = false;
        copy.categories = Vec::new();
        copy.flag = serde_json::json!({"flagStatus": "notFlagged"});
        copy.inference = "focused";
        mb.insert(copy);
        delivered.push(mb.user_principal_name.clone());
    }
    let addresses = |list: &[Recipient]| list.iter().map(|r| r.address.clone()).collect();
    let record = SentMail {
        mailbox: owner_upn,
        from: m
            .from
            .as_ref()
            .map(|r| r.address.clone())
            .unwrap_or_default(),
        sender: owner.address,
        to: addresses(&m.to),
        cc: addresses(&m.cc),
        bcc: addresses(&m.bcc),
        subject: m.subject.clone(),
        internet_message_id: m.internet_message_id.clone(),
        conversation_id: m.conversation_id.clone(),
        attachments: m
            .attachments
            .iter()
            .map(|a| SentAttachment {
                name: a.name.clone(),
                content_type: a.content_type.clone(),
                size: a.bytes.len(),
                sha256: sha256_hex(&a.bytes),
            })
            .collect(),
        via: via.to_string(),
        delivered,
        saved_to_sent_items: save,
    };
    tracing::debug!(mailbox = %record.mailbox, via, to = record.to.len(), "mail sent");
    store.sent.push(record);
}

fn accepted() -> GraphResponse {
    GraphResponse::empty(StatusCode::ACCEPTED)
}

/// `POST /users/{id}/sendMail` `{"message": {…}, "saveToSentItems": …}`: 202.
pub(super) fn send_mail(cx: &Cx<'_>, store: &mut MailStore) -> Result<GraphResponse, GraphError> {
    let obj = cx.json_body()?;
    let message = match get_ci(&obj, "message") {
        Some(Value::Object(m)) => m,
        _ => return Err(invalid_request("The message parameter is required.")),
    };
    // The documentation's own example sends the string "false".
    let save = match get_ci(&obj, "saveToSentItems") {
        None | Some(Value::Null) => true,
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) if s.eq_ignore_ascii_case("true") => true,
        Some(Value::String(s)) if s.eq_ignore_ascii_case("false") => false,
        Some(_) => {
            return Err(body_read(
                "Cannot convert the value of parameter 'saveToSentItems' to the expected type 'Edm.Boolean'.",
            ));
        }
    };
    for key in obj.keys() {
        if !key.eq_ignore_ascii_case("message")
            && !key.eq_ignore_ascii_case("saveToSentItems")
            && !key.contains('@')
        {
            return Err(body_read(format!(
                "The parameter '{key}' in the request payload is not a valid parameter for the operation 'sendMail'."
            )));
        }
    }
    let input = parse_input(message, Mode::Create)?;
    let mb = store.mailbox(cx.tenant, cx.owner);
    let folder = mb.well_known("sentitems");
    let mut m = new_draft(mb, &folder, cx.now);
    m.from = None;
    apply(cx.tenant, &mut m, input, cx.now);
    check_recipients(&m)?;
    deliver(cx, store, m, save, "sendMail");
    Ok(accepted())
}

/// `POST …/messages/{id}/send`: drafts only; 202. The draft leaves Drafts for Sent Items.
pub(super) fn send_draft(
    cx: &Cx<'_>,
    store: &mut MailStore,
    id: &str,
) -> Result<GraphResponse, GraphError> {
    let mb = store.mailbox(cx.tenant, cx.owner);
    let i = mb.find(id).ok_or_else(item_not_found)?;
    if !mb.messages[i].is_draft {
        return Err(GraphError::new(
            StatusCode::BAD_REQUEST,
            "ErrorInvalidOperation",
            "Only a draft message can be sent; this message was sent already.",
        ));
    }
    check_recipients(&mb.messages[i])?;
    let draft = mb.remove(i);
    deliver(cx, store, draft, true, "send");
    Ok(accepted())
}

fn subject_prefix(subject: &str, prefix: &str) -> String {
    let upper = subject.trim_start().to_ascii_uppercase();
    let already = match prefix {
        "RE:" => upper.starts_with("RE:"),
        _ => upper.starts_with("FW:") || upper.starts_with("FWD:"),
    };
    if already {
        subject.to_string()
    } else {
        format!("{prefix} {subject}")
    }
}

fn dedupe_without(list: Vec<Recipient>, excluded: &[&str]) -> Vec<Recipient> {
    let mut out: Vec<Recipient> = Vec::new();
    for r in list {
        if excluded.iter().any(|e| r.same_address(e))
            || out.iter().any(|o| o.same_address(&r.address))
        {
            continue;
        }
        out.push(r);
    }
    out
}

/// The inside of `<body>…</body>` of an HTML document (or the whole text).
fn body_inner(html: &str) -> &str {
    let lower = html.to_ascii_lowercase();
    let start = lower
        .find("<body")
        .and_then(|b| lower[b..].find('>').map(|e| b + e + 1))
        .unwrap_or(0);
    let end = lower
        .rfind("</body>")
        .filter(|e| *e >= start)
        .unwrap_or(html.len());
    &html[start..end]
}

/// The reply or forward body: the new text, then Outlook's header block and the original.
fn quoted_body(original: &Message, new_part: Option<&Body>) -> Body {
    let names = |list: &[Recipient]| {
        list.iter()
            .map(|r| r.name.clone())
            .collect::<Vec<_>>()
            .join("; ")
    };
    let from = original
        .from
        .as_ref()
        .map(|r| format!("{} <{}>", r.name, r.address))
        .unwrap_or_default();
    let sent = crate::clock::http_date(original.sent);
    if original.body.html {
        let new_html = match new_part {
            Some(b) if b.html => body_inner(&b.content).to_string(),
            Some(b) => escape_html(&b.content).replace('\n', "<br>\n"),
            None => String::new(),
        };
        let mut header = format!(
            "<b>From:</b> {}<br>\r\n<b>Sent:</b> {}<br>\r\n<b>To:</b> {}<br>\r\n",
            escape_html(&from),
            escape_html(&sent),
            escape_html(&names(&original.to))
        );
        if !original.cc.is_empty() {
            header.push_str(&format!(
                "<b>Cc:</b> {}<br>\r\n",
                escape_html(&names(&original.cc))
            ));
        }
        header.push_str(&format!(
            "<b>Subject:</b> {}",
            escape_html(&original.subject)
        ));
        Body {
            html: true,
            content: format!(
                "<html><head>\r\n<meta http-equiv=\"Content-Type\" content=\"text/html; charset=utf-8\">\r\n</head>\r\n<body>\r\n<div>{new_html}</div>\r\n<hr style=\"display:inline-block;width:98%\" tabindex=\"-1\">\r\n<div id=\"divRplyFwdMsg\" dir=\"ltr\">{header}</div>\r\n<div>{}</div>\r\n</body>\r\n</html>\r\n",
                body_inner(&original.body.content)
            ),
        }
    } else {
        let new_text = match new_part {
            Some(b) if b.html => html_to_text(&b.content),
            Some(b) => b.content.clone(),
            None => String::new(),
        };
        let mut header = format!(
            "From: {from}\r\nSent: {sent}\r\nTo: {}\r\n",
            names(&original.to)
        );
        if !original.cc.is_empty() {
            header.push_str(&format!("Cc: {}\r\n", names(&original.cc)));
        }
        header.push_str(&format!("Subject: {}\r\n", original.subject));
        Body {
            html: false,
            content: format!(
                "{new_text}\r\n\r\n________________________________\r\n{header}\r\n{}",
                original.body.content
            ),
        }
    }
}

/// `reply`, `replyAll`, `forward` (202) and `createReply`, `createReplyAll`,
/// `createForward` (201 with the draft), with `{comment, message}` (forward also
/// `toRecipients`).
pub(super) fn respond(
    cx: &Cx<'_>,
    store: &mut MailStore,
    id: &str,
    action: Action,
) -> Result<GraphResponse, GraphError> {
    let forward = matches!(action, Action::Forward | Action::CreateForward);
    let all = matches!(action, Action::ReplyAll | Action::CreateReplyAll);
    let obj = cx.json_body()?;
    for key in obj.keys() {
        let allowed = key.eq_ignore_ascii_case("comment")
            || key.eq_ignore_ascii_case("message")
            || (forward && key.eq_ignore_ascii_case("toRecipients"))
            || key.contains('@');
        if !allowed {
            return Err(body_read(format!(
                "The parameter '{key}' in the request payload is not a valid parameter for the operation '{}'.",
                action.name()
            )));
        }
    }
    let comment = match get_ci(&obj, "comment") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => {
            return Err(body_read(
                "Cannot convert the value of parameter 'comment' to the expected type 'Edm.String'.",
            ));
        }
    };
    let input: Input = match get_ci(&obj, "message") {
        None | Some(Value::Null) => Input::default(),
        Some(Value::Object(m)) => parse_input(m, Mode::Create)?,
        Some(_) => {
            return Err(body_read(
                "Cannot convert the value of parameter 'message' to the expected type 'microsoft.graph.message'.",
            ));
        }
    };
    if comment.is_some() && input.body.is_some() {
        return Err(invalid_request(
            "Specify either a comment or the body property of the message parameter, not both.",
        ));
    }
    let to_param = match get_ci(&obj, "toRecipients") {
        None | Some(Value::Null) => None,
        Some(v) => {
            let mut wrapper = Map::new();
            wrapper.insert("toRecipients".into(), v.clone());
            parse_input(&wrapper, Mode::Create)?.to
        }
    };

    let mb = store.mailbox(cx.tenant, cx.owner);
    let i = mb.find(id).ok_or_else(item_not_found)?;
    let original = mb.messages[i].clone();
    let me = mb.owner_address.clone();
    let from_me = original.from.as_ref().is_some_and(|f| f.same_address(&me));
    let target: Vec<Recipient> = if !original.reply_to.is_empty() {
        original.reply_to.clone()
    } else if from_me {
        original.to.clone()
    } else {
        original.from.clone().into_iter().collect()
    };
    let (mut to, mut cc) = if forward {
        (to_param.unwrap_or_default(), Vec::new())
    } else if all {
        let to = dedupe_without(
            target
                .into_iter()
                .chain(original.to.iter().cloned())
                .collect(),
            &[&me],
        );
        let taken: Vec<&str> = to.iter().map(|r| r.address.as_str()).collect();
        let mut excluded = taken.clone();
        excluded.push(&me);
        let cc = dedupe_without(original.cc.clone(), &excluded);
        (to, cc)
    } else {
        (dedupe_without(target, &[]), Vec::new())
    };
    let new_part = comment
        .map(|c| Body {
            html: false,
            content: c,
        })
        .or_else(|| input.body.clone());
    let drafts = mb.well_known("drafts");
    let mut m = new_draft(mb, &drafts, cx.now);
    m.subject = subject_prefix(&original.subject, if forward { "FW:" } else { "RE:" });
    m.body = quoted_body(&original, new_part.as_ref());
    m.conversation_id = original.conversation_id.clone();
    m.conversation_index = mb.child_index(&original.conversation_index);
    if forward {
        m.attachments = original.attachments.clone();
    }
    // The `message` parameter's own properties win (recipients included), body aside.
    if let Some(v) = input.to.clone() {
        to = v;
    }
    if let Some(v) = input.cc.clone() {
        cc = v;
    }
    let mut input = input;
    input.body = None;
    input.to = None;
    input.cc = None;
    m.to = named(cx.tenant, to);
    m.cc = named(cx.tenant, cc);
    apply(cx.tenant, &mut m, input, cx.now);
    // Outlook keeps the reply in the original's format.
    if m.body.html != original.body.html {
        m.body = if original.body.html {
            Body {
                html: true,
                content: text_to_html(&m.body.content),
            }
        } else {
            Body {
                html: false,
                content: html_to_text(&m.body.content),
            }
        };
    }

    match action {
        Action::CreateReply | Action::CreateReplyAll | Action::CreateForward => {
            let i = mb.insert(m);
            Ok(GraphResponse::with_status(
                StatusCode::CREATED,
                Payload::Json(entity(cx, mb, i, &view(cx)?)),
            ))
        }
        _ => {
            if forward && m.to.is_empty() && m.cc.is_empty() && m.bcc.is_empty() {
                return Err(invalid_recipients(
                    "A forward needs toRecipients, in the request or in its message.",
                ));
            }
            check_recipients(&m)?;
            deliver(cx, store, m, true, action.name());
            Ok(accepted())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_and_prefixes() {
        assert!(valid_address("a.b@c.example"));
        for bad in [
            "",
            "a",
            "a@",
            "@b.example",
            "a@b",
            "a b@c.example",
            "a@@b.example",
            "<a@b.example>",
        ] {
            assert!(!valid_address(bad), "{bad}");
        }
        assert_eq!(subject_prefix("Hello", "RE:"), "RE: Hello");
        assert_eq!(subject_prefix("re: Hello", "RE:"), "re: Hello");
        assert_eq!(subject_prefix("RE: Hello", "FW:"), "FW: RE: Hello");
        assert_eq!(subject_prefix("Fwd: x", "FW:"), "Fwd: x");
        assert_eq!(body_inner("<html><body class=x>hi</body></html>"), "hi");
    }
}
