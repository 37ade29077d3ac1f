//! Mail writes: send (with attachments of any size up to 150 MB), drafts, reply, forward,
//! mark read, categories, flags, move, delete.
//!
//! Sending is checked twice before anything reaches Graph: the caller's operations
//! (`mail.send`, `mail.write`) and its `send_as` list (the mailbox it sends from, and any
//! `from` it sends on behalf of). Calls that could act twice (send, create, move) are never
//! retried blindly: a timeout becomes `UPSTREAM_TIMEOUT_UNKNOWN_OUTCOME`.

use std::io::Read;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::ToSchema;

use super::mail::{BodyType, Message};
use super::policy::Decision;
use super::{ServiceError, Session};
use crate::auth::send_as_key;
use crate::graph::{GraphUrl, GraphWrite, Idempotency, models};

/// Graph's limit for one attachment sent through an upload session.
pub const MAX_ATTACHMENT_BYTES: u64 = 150 * 1024 * 1024;
/// Attachments below this go inline (base64 in the JSON); Graph refuses 3 MB and more there.
pub const INLINE_ATTACHMENT_LIMIT: u64 = 3 * 1024 * 1024;
/// The inline attachments of one request stay under this, so the JSON stays under Graph's
/// 4 MB request limit once base64 has grown them by a third.
const INLINE_TOTAL_LIMIT: u64 = 2_900_000;
/// Bytes per upload-session PUT: Graph wants each range under 4 MB.
pub const UPLOAD_CHUNK: usize = 3 * 1024 * 1024;
/// Recipients of one message (to + cc + bcc); Exchange's default limit is 500.
const MAX_RECIPIENTS: usize = 500;

/// Where an attachment's bytes are.
#[derive(Debug)]
pub enum AttachmentContent {
    /// Base64 as the caller sent it (checked and decoded by the service).
    Base64(String),
    /// Already decoded bytes.
    Bytes(Bytes),
    /// A spooled upload (GraphQL multipart, REST multipart/form-data), read chunk by chunk
    /// so a 150 MB file never sits in memory.
    File { file: std::fs::File, size: u64 },
}

#[derive(Debug)]
pub struct OutgoingAttachment {
    pub name: String,
    pub content_type: Option<String>,
    pub is_inline: bool,
    pub content_id: Option<String>,
    pub content: AttachmentContent,
}

/// A message to send or to save as a draft.
#[derive(Debug, Default)]
pub struct OutgoingMessage {
    pub subject: Option<String>,
    pub body: Option<String>,
    pub body_type: Option<BodyType>,
    pub to: Vec<String>,
    pub cc: Vec<String>,
    pub bcc: Vec<String>,
    pub reply_to: Vec<String>,
    /// Send on behalf of this address (the mailbox sending is the `sender`).
    pub from: Option<String>,
    /// `low`, `normal` or `high`.
    pub importance: Option<String>,
    pub attachments: Vec<OutgoingAttachment>,
}

/// Changes to any message (read state, categories, flag, importance).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MessagePatch {
    pub is_read: Option<bool>,
    pub categories: Option<Vec<String>>,
    /// `notFlagged`, `flagged` or `complete`.
    pub flag: Option<String>,
    pub importance: Option<String>,
}

/// What the gateway did to send a message.
#[derive(Debug, Clone, serde::Serialize, ToSchema)]
pub struct SendReceipt {
    /// Graph accepted the message for delivery.
    pub accepted: bool,
    /// Attachments that went through upload sessions (3 MB and more).
    pub uploaded_attachments: usize,
    /// The draft the message was sent from, when one was needed for large attachments
    /// (its id is no longer valid once sent).
    pub draft_id: Option<String>,
}

/// A plausible mail address: one `@`, a non-empty local part and a dotted domain, no
/// spaces, quotes, angle brackets or control characters, at most 254 characters.
pub fn is_address(value: &str) -> bool {
    let Some((local, domain)) = value.split_once('@') else {
        return false;
    };
    value.len() <= 254
        && !local.is_empty()
        && local.len() <= 64
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains('@')
        && value
            .chars()
            .all(|c| !c.is_control() && !c.is_whitespace() && !"<>\"(),;:[]\\".contains(c))
}

fn recipients(name: &str, list: &[String]) -> Result<Value, ServiceError> {
    for address in list {
        if !is_address(address) {
            return Err(ServiceError::BadInput(format!(
                "{name}: '{address}' is not a valid mail address"
            )));
        }
    }
    Ok(Value::Array(
        list.iter()
            .map(|a| json!({ "emailAddress": { "address": a } }))
            .collect(),
    ))
}

fn importance(value: &str) -> Result<&'static str, ServiceError> {
    match value.to_ascii_lowercase().as_str() {
        "low" => Ok("low"),
        "normal" => Ok("normal"),
        "high" => Ok("high"),
        _ => Err(ServiceError::BadInput(
            "importance must be low, normal or high".into(),
        )),
    }
}

/// The decoded size of strictly-padded standard base64, computed before decoding.
fn base64_size(text: &str) -> Option<u64> {
    if text.is_empty() || !text.len().is_multiple_of(4) {
        return None;
    }
    let padding = text.bytes().rev().take_while(|b| *b == b'=').count() as u64;
    Some(text.len() as u64 / 4 * 3 - padding)
}

impl OutgoingAttachment {
    fn size(&self) -> Result<u64, ServiceError> {
        match &self.content {
            AttachmentContent::Base64(text) => base64_size(text).ok_or_else(|| {
                ServiceError::BadInput(format!(
                    "attachment '{}': contentBytes is not valid base64",
                    self.name
                ))
            }),
            AttachmentContent::Bytes(bytes) => Ok(bytes.len() as u64),
            AttachmentContent::File { size, .. } => Ok(*size),
        }
    }

    /// Checks name and size; decodes base64 (strict standard alphabet with padding, so
    /// `data:` prefixes, URL-safe alphabets and stray newlines are refused).
    fn validate(&mut self) -> Result<u64, ServiceError> {
        if self.name.trim().is_empty()
            || self.name.len() > 255
            || self.name.chars().any(char::is_control)
        {
            return Err(ServiceError::BadInput(
                "an attachment name must be 1 to 255 characters without control characters".into(),
            ));
        }
        let size = self.size()?;
        if size > MAX_ATTACHMENT_BYTES {
            return Err(ServiceError::PayloadTooLarge(format!(
                "attachment '{}' is {size} bytes; the limit is {MAX_ATTACHMENT_BYTES} bytes (150 MB)",
                self.name
            )));
        }
        if size == 0 {
            return Err(ServiceError::BadInput(format!(
                "attachment '{}' is empty",
                self.name
            )));
        }
        if let AttachmentContent::Base64(text) = &self.content {
            let bytes = STANDARD.decode(text).map_err(|_| {
                ServiceError::BadInput(format!(
                    "attachment '{}': contentBytes is not valid base64",
                    self.name
                ))
            })?;
            self.content = AttachmentContent::Bytes(Bytes::from(bytes));
        }
        Ok(size)
    }

    /// The inline JSON form (small attachments only).
    fn inline_json(&mut self) -> Result<Value, ServiceError> {
        let bytes = match &mut self.content {
            AttachmentContent::Bytes(bytes) => bytes.to_vec(),
            AttachmentContent::File { file, .. } => {
                let mut buffer = Vec::new();
                file.read_to_end(&mut buffer)
                    .map_err(|_| ServiceError::Internal)?;
                buffer
            }
            AttachmentContent::Base64(_) => return Err(ServiceError::Internal),
        };
        let mut value = json!({
            "@odata.type": "#microsoft.graph.fileAttachment",
            "name": self.name,
            "contentType": self.content_type.as_deref().unwrap_or("application/octet-stream"),
            "contentBytes": STANDARD.encode(bytes),
            "isInline": self.is_inline,
        });
        if let Some(id) = &self.content_id {
            value["contentId"] = json!(id);
        }
        Ok(value)
    }

    /// The next chunk of at most `UPLOAD_CHUNK` bytes from `offset`.
    fn chunk(&mut self, offset: u64) -> Result<Bytes, ServiceError> {
        match &mut self.content {
            AttachmentContent::Bytes(bytes) => {
                let start = offset as usize;
                let end = (start + UPLOAD_CHUNK).min(bytes.len());
                Ok(bytes.slice(start..end))
            }
            AttachmentContent::File { file, size } => {
                let len = (*size - offset).min(UPLOAD_CHUNK as u64) as usize;
                let mut buffer = vec![0; len];
                file.read_exact(&mut buffer).map_err(|e| {
                    tracing::error!(error = %e, "cannot read a spooled upload");
                    ServiceError::Internal
                })?;
                Ok(Bytes::from(buffer))
            }
            AttachmentContent::Base64(_) => Err(ServiceError::Internal),
        }
    }
}

impl OutgoingMessage {
    /// Checks recipients and attachments (nothing reaches Graph if anything is wrong) and
    /// returns the sizes of the attachments.
    fn validate(&mut self, needs_recipients: bool) -> Result<Vec<u64>, ServiceError> {
        let count = self.to.len() + self.cc.len() + self.bcc.len();
        if needs_recipients && count == 0 {
            return Err(ServiceError::BadInput(
                "a message needs at least one recipient (to, cc or bcc)".into(),
            ));
        }
        if count > MAX_RECIPIENTS {
            return Err(ServiceError::BadInput(format!(
                "a message may have at most {MAX_RECIPIENTS} recipients"
            )));
        }
        if let Some(from) = &self.from
            && !is_address(from)
        {
            return Err(ServiceError::BadInput(format!(
                "from: '{from}' is not a valid mail address"
            )));
        }
        if self.attachments.len() > 100 {
            return Err(ServiceError::BadInput(
                "a message may have at most 100 attachments".into(),
            ));
        }
        // Sizes first (cheap, and a too-large file must be refused before any work).
        let sizes = self
            .attachments
            .iter()
            .map(OutgoingAttachment::size)
            .collect::<Result<Vec<_>, _>>()?;
        if let Some((a, size)) = self
            .attachments
            .iter()
            .zip(&sizes)
            .find(|(_, s)| **s > MAX_ATTACHMENT_BYTES)
        {
            return Err(ServiceError::PayloadTooLarge(format!(
                "attachment '{}' is {size} bytes; the limit is {MAX_ATTACHMENT_BYTES} bytes (150 MB)",
                a.name
            )));
        }
        self.attachments
            .iter_mut()
            .map(OutgoingAttachment::validate)
            .collect()
    }

    /// The Graph message JSON, without attachments.
    fn graph_json(&self) -> Result<Value, ServiceError> {
        let mut message = json!({
            "toRecipients": recipients("to", &self.to)?,
            "ccRecipients": recipients("cc", &self.cc)?,
            "bccRecipients": recipients("bcc", &self.bcc)?,
        });
        if !self.reply_to.is_empty() {
            message["replyTo"] = recipients("replyTo", &self.reply_to)?;
        }
        if let Some(subject) = &self.subject {
            message["subject"] = json!(subject);
        }
        if let Some(body) = &self.body {
            message["body"] = json!({
                "contentType": match self.body_type.unwrap_or(BodyType::Text) {
                    BodyType::Text => "Text",
                    BodyType::Html => "HTML",
                },
                "content": body,
            });
        }
        if let Some(from) = &self.from {
            message["from"] = json!({ "emailAddress": { "address": from } });
        }
        if let Some(value) = &self.importance {
            message["importance"] = json!(importance(value)?);
        }
        Ok(message)
    }

    fn all_recipients(&self) -> impl Iterator<Item = &String> {
        self.to.iter().chain(&self.cc).chain(&self.bcc)
    }
}

/// Which attachments go inline (in the JSON) and which through upload sessions.
fn split_attachments(sizes: &[u64]) -> (Vec<usize>, Vec<usize>) {
    let mut inline = Vec::new();
    let mut large = Vec::new();
    let mut inline_total = 0;
    for (i, &size) in sizes.iter().enumerate() {
        if size < INLINE_ATTACHMENT_LIMIT && inline_total + size < INLINE_TOTAL_LIMIT {
            inline_total += size;
            inline.push(i);
        } else {
            large.push(i);
        }
    }
    (inline, large)
}

impl Session {
    /// Fails unless the caller may send as `identifier` (policy `send_as`).
    fn require_send_as(&self, identifier: &str) -> Result<(), ServiceError> {
        match self.services.policy.check(
            &send_as_key(&self.caller.name),
            &self.caller.send_as,
            identifier,
        ) {
            Decision::Allowed(_) => Ok(()),
            Decision::Denied => {
                tracing::info!(caller = %self.caller.name, "send-as outside the caller's policy");
                Err(ServiceError::Forbidden(format!(
                    "caller '{}' may not send as '{identifier}'",
                    self.caller.name
                )))
            }
            Decision::NotReady => Err(ServiceError::Unavailable(
                "the caller's policy is not resolved yet; retry shortly".into(),
            )),
        }
    }

    /// Policy for sending from `mailbox` (and on behalf of `from`): operation, mailbox
    /// resources, send-as. Returns the mailbox path and key.
    fn sending_mailbox(
        &self,
        mailbox: &str,
        from: Option<&str>,
    ) -> Result<(GraphUrl, String), ServiceError> {
        self.require("mail.send")?;
        let (user, key) = self.mailbox(mailbox)?;
        self.require_send_as(&key)?;
        if let Some(from) = from {
            self.require_send_as(from)?;
        }
        Ok((user, key))
    }

    fn message_reply(
        &self,
        reply: &crate::graph::GraphReply,
        key: &str,
    ) -> Result<Message, ServiceError> {
        let message: models::Message = serde_json::from_slice(&reply.body).map_err(|e| {
            tracing::warn!(error = %e, "unusable message in a write answer");
            ServiceError::UpstreamBadResponse
        })?;
        Message::from_graph(message, key)
    }

    /// Evicts cached answers about the tenant recipients' mailboxes a sent message lands
    /// in (the sender's own are evicted by `write_mailbox`).
    async fn evict_recipients<'a>(&self, recipients: impl IntoIterator<Item = &'a String>) {
        for r in recipients {
            self.graph().invalidate_mailbox(r).await;
        }
    }

    /// Sends a message from `mailbox`. Small attachments go inline in one `sendMail`;
    /// with any attachment of 3 MB or more the message is created as a draft, the large
    /// attachments are uploaded through upload sessions in chunks, and the draft is sent.
    /// Nothing is sent when any step before the final send fails (the draft is deleted).
    pub async fn send_mail(
        &self,
        mailbox: &str,
        mut message: OutgoingMessage,
        save_to_sent_items: bool,
    ) -> Result<SendReceipt, ServiceError> {
        let (user, key) = self.sending_mailbox(mailbox, message.from.as_deref())?;
        let sizes = message.validate(true)?;
        let (inline, large) = split_attachments(&sizes);
        let mut json_message = message.graph_json()?;
        let mut attachments = Vec::new();
        for &i in &inline {
            attachments.push(message.attachments[i].inline_json()?);
        }
        if !attachments.is_empty() {
            json_message["attachments"] = Value::Array(attachments);
        }
        if large.is_empty() {
            let sent = self
                .write_mailbox(
                    &key,
                    GraphWrite::post(
                        user.then("sendMail"),
                        json!({ "message": json_message, "saveToSentItems": save_to_sent_items }),
                    ),
                    &format!("sending mail from '{mailbox}'"),
                )
                .await;
            self.evict_recipients(message.all_recipients()).await;
            sent?;
            return Ok(SendReceipt {
                accepted: true,
                uploaded_attachments: 0,
                draft_id: None,
            });
        }
        let draft = self
            .write_mailbox(
                &key,
                GraphWrite::post(user.clone().then("messages"), json_message),
                &format!("creating a draft in '{mailbox}'"),
            )
            .await?;
        let draft = self.message_reply(&draft, &key)?;
        let uploaded = async {
            for &i in &large {
                self.upload_attachment(
                    &user,
                    &key,
                    &draft.id,
                    &mut message.attachments[i],
                    sizes[i],
                )
                .await?;
            }
            Ok::<_, ServiceError>(())
        }
        .await;
        if let Err(e) = uploaded {
            self.discard_draft(&user, &draft.id).await;
            return Err(e);
        }
        let sent = self
            .write_mailbox(
                &key,
                GraphWrite::post(
                    user.clone().then("messages").id(&draft.id)?.then("send"),
                    json!({}),
                ),
                &format!("sending a draft from '{mailbox}'"),
            )
            .await;
        self.evict_recipients(message.all_recipients()).await;
        sent?;
        Ok(SendReceipt {
            accepted: true,
            uploaded_attachments: large.len(),
            draft_id: Some(draft.id),
        })
    }

    /// Best effort: a draft that will not be sent should not linger in Drafts.
    async fn discard_draft(&self, user: &GraphUrl, id: &str) {
        let Ok(url) = user.clone().then("messages").id(id) else {
            return;
        };
        if let Err(e) = self
            .graph()
            .write(self.access(), &GraphWrite::delete(url), self.deadline())
            .await
        {
            tracing::warn!(error = %e, "could not delete an unsent draft");
        }
    }

    /// One attachment through an upload session: create it, then PUT the bytes in chunks
    /// under 4 MB to the pre-authenticated URL (without the Graph token).
    async fn upload_attachment(
        &self,
        user: &GraphUrl,
        key: &str,
        message_id: &str,
        attachment: &mut OutgoingAttachment,
        size: u64,
    ) -> Result<(), ServiceError> {
        let what = format!("uploading attachment '{}'", attachment.name);
        let mut item = json!({
            "attachmentType": "file",
            "name": attachment.name,
            "size": size,
            "contentType": attachment.content_type.as_deref().unwrap_or("application/octet-stream"),
        });
        if attachment.is_inline {
            item["isInline"] = json!(true);
        }
        if let Some(id) = &attachment.content_id {
            item["contentId"] = json!(id);
        }
        let url = user
            .clone()
            .then("messages")
            .id(message_id)?
            .then("attachments")
            .then("createUploadSession");
        let reply = self
            .write_mailbox(
                key,
                GraphWrite {
                    idempotency: Idempotency::Idempotent,
                    ..GraphWrite::post(url, json!({ "AttachmentItem": item }))
                },
                &what,
            )
            .await?;
        let session: models::UploadSession =
            serde_json::from_slice(&reply.body).map_err(|_| ServiceError::UpstreamBadResponse)?;
        let upload_url = session
            .upload_url
            .ok_or(ServiceError::UpstreamBadResponse)?;
        let mut offset = 0u64;
        while offset < size {
            let chunk = attachment.chunk(offset)?;
            if chunk.is_empty() {
                return Err(ServiceError::Internal);
            }
            let end = offset + chunk.len() as u64 - 1;
            let reply = self
                .graph()
                .put_chunk(&upload_url, (offset, end, size), chunk, self.deadline())
                .await
                .map_err(|e| self.upstream(e, &what))?;
            offset = end + 1;
            if offset < size && reply.status == 201 {
                tracing::warn!("upload session completed before the last chunk");
                return Err(ServiceError::UpstreamBadResponse);
            }
        }
        metrics::counter!("mail_attachments_uploaded_total").increment(1);
        Ok(())
    }

    /// Saves a draft in Drafts (or `folder`), attachments of any size included.
    pub async fn create_draft(
        &self,
        mailbox: &str,
        mut message: OutgoingMessage,
        folder: Option<&str>,
    ) -> Result<Message, ServiceError> {
        self.require("mail.write")?;
        let (user, key) = self.mailbox(mailbox)?;
        if let Some(from) = &message.from {
            self.require_send_as(from)?;
        }
        let sizes = message.validate(false)?;
        let (inline, large) = split_attachments(&sizes);
        let mut json_message = message.graph_json()?;
        let mut attachments = Vec::new();
        for &i in &inline {
            attachments.push(message.attachments[i].inline_json()?);
        }
        if !attachments.is_empty() {
            json_message["attachments"] = Value::Array(attachments);
        }
        let url = match folder {
            Some(f) => user.clone().then("mailFolders").id(f)?.then("messages"),
            None => user.clone().then("messages"),
        };
        let reply = self
            .write_mailbox(
                &key,
                GraphWrite::post(url, json_message),
                &format!("creating a draft in '{mailbox}'"),
            )
            .await?;
        let draft = self.message_reply(&reply, &key)?;
        for &i in &large {
            if let Err(e) = self
                .upload_attachment(
                    &user,
                    &key,
                    &draft.id,
                    &mut message.attachments[i],
                    sizes[i],
                )
                .await
            {
                self.discard_draft(&user, &draft.id).await;
                return Err(e);
            }
        }
        if large.is_empty() {
            Ok(draft)
        } else {
            let select = super::mail::MessageSelect::all(BodyType::Html, true);
            self.message(mailbox, &draft.id, &select).await
        }
    }

    /// Changes a draft's subject, body, recipients or importance (Graph refuses these on
    /// messages already sent).
    pub async fn update_draft(
        &self,
        mailbox: &str,
        id: &str,
        message: OutgoingMessage,
    ) -> Result<Message, ServiceError> {
        self.require("mail.write")?;
        let (user, key) = self.mailbox(mailbox)?;
        if !message.attachments.is_empty() {
            return Err(ServiceError::BadInput(
                "updateDraft does not change attachments".into(),
            ));
        }
        let mut patch = serde_json::Map::new();
        let full = message.graph_json()?;
        for (field, given) in [
            ("toRecipients", !message.to.is_empty()),
            ("ccRecipients", !message.cc.is_empty()),
            ("bccRecipients", !message.bcc.is_empty()),
            ("replyTo", !message.reply_to.is_empty()),
            ("subject", message.subject.is_some()),
            ("body", message.body.is_some()),
            ("importance", message.importance.is_some()),
            ("from", message.from.is_some()),
        ] {
            if given && let Some(value) = full.get(field) {
                patch.insert(field.to_owned(), value.clone());
            }
        }
        if let Some(from) = &message.from {
            self.require_send_as(from)?;
        }
        if patch.is_empty() {
            return Err(ServiceError::BadInput("nothing to update".into()));
        }
        let reply = self
            .write_mailbox(
                &key,
                GraphWrite::patch(user.then("messages").id(id)?, Value::Object(patch)),
                &format!("draft '{id}'"),
            )
            .await?;
        self.message_reply(&reply, &key)
    }

    /// Sends an existing draft.
    pub async fn send_draft(&self, mailbox: &str, id: &str) -> Result<SendReceipt, ServiceError> {
        let (user, key) = self.sending_mailbox(mailbox, None)?;
        self.write_mailbox(
            &key,
            GraphWrite::post(user.then("messages").id(id)?.then("send"), json!({})),
            &format!("draft '{id}'"),
        )
        .await?;
        Ok(SendReceipt {
            accepted: true,
            uploaded_attachments: 0,
            draft_id: Some(id.to_owned()),
        })
    }

    /// Replies to the sender (`all`: and every other recipient), with a comment above the
    /// quoted message or with a body of its own (not both, as Graph requires).
    pub async fn reply(
        &self,
        mailbox: &str,
        id: &str,
        all: bool,
        comment: Option<String>,
        body: Option<(String, BodyType)>,
    ) -> Result<SendReceipt, ServiceError> {
        let (user, key) = self.sending_mailbox(mailbox, None)?;
        let payload = match (comment, body) {
            (Some(_), Some(_)) => {
                return Err(ServiceError::BadInput(
                    "give either a comment or a body, not both".into(),
                ));
            }
            (Some(comment), None) => json!({ "comment": comment }),
            (None, Some((content, kind))) => json!({
                "message": { "body": { "contentType": kind.graph_name(), "content": content } }
            }),
            (None, None) => json!({ "comment": "" }),
        };
        let action = if all { "replyAll" } else { "reply" };
        self.write_mailbox(
            &key,
            GraphWrite::post(user.then("messages").id(id)?.then(action), payload),
            &format!("message '{id}'"),
        )
        .await?;
        Ok(SendReceipt {
            accepted: true,
            uploaded_attachments: 0,
            draft_id: None,
        })
    }

    /// Forwards a message to `to` with an optional comment.
    pub async fn forward(
        &self,
        mailbox: &str,
        id: &str,
        to: &[String],
        comment: Option<String>,
    ) -> Result<SendReceipt, ServiceError> {
        let (user, key) = self.sending_mailbox(mailbox, None)?;
        if to.is_empty() {
            return Err(ServiceError::BadInput(
                "forward needs at least one recipient".into(),
            ));
        }
        if to.len() > MAX_RECIPIENTS {
            return Err(ServiceError::BadInput(format!(
                "a message may have at most {MAX_RECIPIENTS} recipients"
            )));
        }
        let payload = json!({
            "comment": comment.unwrap_or_default(),
            "toRecipients": recipients("to", to)?,
        });
        let sent = self
            .write_mailbox(
                &key,
                GraphWrite::post(user.then("messages").id(id)?.then("forward"), payload),
                &format!("message '{id}'"),
            )
            .await;
        self.evict_recipients(to).await;
        sent?;
        Ok(SendReceipt {
            accepted: true,
            uploaded_attachments: 0,
            draft_id: None,
        })
    }

    /// Read state, categories, flag, importance.
    pub async fn update_message(
        &self,
        mailbox: &str,
        id: &str,
        patch: &MessagePatch,
    ) -> Result<Message, ServiceError> {
        self.require("mail.write")?;
        let (user, key) = self.mailbox(mailbox)?;
        let mut body = serde_json::Map::new();
        if let Some(v) = patch.is_read {
            body.insert("isRead".into(), json!(v));
        }
        if let Some(categories) = &patch.categories {
            if categories.len() > 25 || categories.iter().any(|c| c.is_empty() || c.len() > 255) {
                return Err(ServiceError::BadInput(
                    "categories: at most 25 names of 1 to 255 characters".into(),
                ));
            }
            body.insert("categories".into(), json!(categories));
        }
        if let Some(flag) = &patch.flag {
            let status = match flag.to_ascii_lowercase().as_str() {
                "notflagged" | "not_flagged" => "notFlagged",
                "flagged" => "flagged",
                "complete" => "complete",
                _ => {
                    return Err(ServiceError::BadInput(
                        "flag must be notFlagged, flagged or complete".into(),
                    ));
                }
            };
            body.insert("flag".into(), json!({ "flagStatus": status }));
        }
        if let Some(v) = &patch.importance {
            body.insert("importance".into(), json!(importance(v)?));
        }
        if body.is_empty() {
            return Err(ServiceError::BadInput("nothing to update".into()));
        }
        let reply = self
            .write_mailbox(
                &key,
                GraphWrite::patch(user.then("messages").id(id)?, Value::Object(body)),
                &format!("message '{id}'"),
            )
            .await?;
        self.message_reply(&reply, &key)
    }

    /// Moves a message to a folder (id or well-known name); the message gets a new id.
    pub async fn move_message(
        &self,
        mailbox: &str,
        id: &str,
        destination: &str,
    ) -> Result<Message, ServiceError> {
        self.require("mail.write")?;
        let (user, key) = self.mailbox(mailbox)?;
        if destination.is_empty() || destination.len() > 1024 {
            return Err(ServiceError::BadInput(
                "destination must be a folder id or well-known name".into(),
            ));
        }
        let reply = self
            .write_mailbox(
                &key,
                GraphWrite::post(
                    user.then("messages").id(id)?.then("move"),
                    json!({ "destinationId": destination }),
                ),
                &format!("message '{id}' or folder '{destination}'"),
            )
            .await?;
        self.message_reply(&reply, &key)
    }

    /// Deletes a message.
    pub async fn delete_message(&self, mailbox: &str, id: &str) -> Result<(), ServiceError> {
        self.require("mail.write")?;
        let (user, key) = self.mailbox(mailbox)?;
        self.write_mailbox(
            &key,
            GraphWrite::delete(user.then("messages").id(id)?),
            &format!("message '{id}'"),
        )
        .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_checked_plainly() {
        for good in ["a@b.example", "first.last+tag@sub.example.com"] {
            assert!(is_address(good), "{good}");
        }
        for bad in [
            "",
            "a",
            "a@b",
            "@b.example",
            "a@@b.example",
            "a b@c.example",
            "a@b.example\r\nBcc: x@y.example",
            "<a@b.example>",
            "a@.example",
        ] {
            assert!(!is_address(bad), "{bad}");
        }
    }

    #[test]
    fn base64_sizes_are_known_before_decoding() {
        assert_eq!(base64_size("SGVsbG8gV29ybGQh"), Some(12));
        assert_eq!(base64_size("SGVsbG8="), Some(5));
        assert_eq!(base64_size("SGVsbG8"), None);
        assert_eq!(base64_size(""), None);
    }

    fn attachment(content: &str) -> OutgoingAttachment {
        OutgoingAttachment {
            name: "a.pdf".into(),
            content_type: None,
            is_inline: false,
            content_id: None,
            content: AttachmentContent::Base64(content.into()),
        }
    }

    #[test]
    fn malformed_base64_is_refused_and_names_the_attachment() {
        for bad in [
            "!!!notbase64",
            "SGVsbG8",
            "data:application/pdf;base64,SGVsbG8=",
            "SGVs\nbG8=",
            "SGVsbG8-_w==",
        ] {
            let err = attachment(bad).validate().unwrap_err();
            assert!(
                matches!(&err, ServiceError::BadInput(m) if m.contains("a.pdf")),
                "{bad}: {err:?}"
            );
        }
        assert_eq!(attachment("SGVsbG8=").validate().unwrap(), 5);
    }

    #[test]
    fn an_attachment_over_150_mb_is_too_large_before_decoding() {
        let huge = "A".repeat(((MAX_ATTACHMENT_BYTES + 3) / 3 * 4) as usize);
        let mut message = OutgoingMessage {
            to: vec!["a@b.example".into()],
            attachments: vec![attachment(&huge)],
            ..Default::default()
        };
        assert!(matches!(
            message.validate(true),
            Err(ServiceError::PayloadTooLarge(_))
        ));
    }

    #[test]
    fn a_message_needs_valid_recipients() {
        let mut empty = OutgoingMessage::default();
        assert!(matches!(
            empty.validate(true),
            Err(ServiceError::BadInput(_))
        ));
        let bad = OutgoingMessage {
            to: vec!["not-an-address".into()],
            ..Default::default()
        };
        assert!(matches!(bad.graph_json(), Err(ServiceError::BadInput(_))));
    }

    #[test]
    fn small_attachments_go_inline_and_large_ones_through_sessions() {
        let mb = 1024 * 1024;
        assert_eq!(split_attachments(&[10, 20]), (vec![0, 1], vec![]));
        assert_eq!(split_attachments(&[3 * mb, 10]), (vec![1], vec![0]));
        // Two inline-sized files that together would overflow the JSON limit.
        assert_eq!(split_attachments(&[2 * mb, 2 * mb]), (vec![0], vec![1]));
    }
}
