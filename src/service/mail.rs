//! Mail use-cases: folders, messages (list, filter, search, read), attachments and delta.
//! Writes (send, drafts, reply, forward, organise) are in `mail_send.rs`.
//!
//! Every mailbox is addressed like a user (object id, user principal name or address, so
//! shared mailboxes work the same way) and checked against the caller's resources before
//! any cache lookup or Graph call.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::paging::{check_first, decode_delta_token};
use super::{Page, ServiceError, Session};
use crate::graph::models;
use crate::graph::{GraphGet, GraphUrl, odata_string};

/// Longest `search` text.
const MAX_SEARCH: usize = 500;

/// The body format asked of Graph (`Prefer: outlook.body-content-type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum BodyType {
    Text,
    Html,
}

impl BodyType {
    pub(crate) fn prefer(self) -> &'static str {
        match self {
            BodyType::Text => "outlook.body-content-type=\"text\"",
            BodyType::Html => "outlook.body-content-type=\"html\"",
        }
    }

    pub(crate) fn graph_name(self) -> &'static str {
        match self {
            BodyType::Text => "text",
            BodyType::Html => "html",
        }
    }

    fn parse(value: Option<&str>) -> BodyType {
        match value {
            Some(v) if v.eq_ignore_ascii_case("text") => BodyType::Text,
            _ => BodyType::Html,
        }
    }
}

/// A mail address with its display name.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Recipient {
    pub name: Option<String>,
    pub address: Option<String>,
}

impl Recipient {
    fn from_graph(r: models::Recipient) -> Option<Self> {
        let e = r.email_address?;
        Some(Recipient {
            name: e.name,
            address: e.address,
        })
    }

    fn list(list: Option<Vec<models::Recipient>>) -> Vec<Recipient> {
        list.unwrap_or_default()
            .into_iter()
            .filter_map(Recipient::from_graph)
            .collect()
    }
}

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct ItemBody {
    pub content_type: BodyType,
    pub content: String,
}

/// A follow-up flag.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Flag {
    /// `notFlagged`, `flagged` or `complete`.
    pub status: String,
    /// Due date (ISO 8601, in `due_time_zone`).
    pub due: Option<String>,
    pub due_time_zone: Option<String>,
}

/// Attachment metadata (never its content; that streams through REST).
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Attachment {
    pub id: String,
    pub name: Option<String>,
    pub content_type: Option<String>,
    pub size: Option<u64>,
    pub is_inline: bool,
    /// `file`, `item` (an attached Outlook item) or `reference` (a link to a file).
    pub kind: String,
    pub last_modified_date_time: Option<String>,
}

impl Attachment {
    fn from_graph(a: models::Attachment) -> Result<Self, ServiceError> {
        let kind = match a.odata_type.as_deref() {
            Some("#microsoft.graph.itemAttachment") => "item",
            Some("#microsoft.graph.referenceAttachment") => "reference",
            _ => "file",
        };
        Ok(Attachment {
            id: a.id.ok_or(ServiceError::UpstreamBadResponse)?,
            name: a.name,
            content_type: a.content_type,
            size: a.size,
            is_inline: a.is_inline.unwrap_or(false),
            kind: kind.to_owned(),
            last_modified_date_time: a.last_modified_date_time,
        })
    }
}

/// A message as the gateway returns it. Fields not selected are empty.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Message {
    pub id: String,
    /// The mailbox (as addressed) the message was read from.
    pub mailbox: String,
    pub subject: Option<String>,
    pub body_preview: Option<String>,
    pub body: Option<ItemBody>,
    pub from: Option<Recipient>,
    pub sender: Option<Recipient>,
    pub to_recipients: Vec<Recipient>,
    pub cc_recipients: Vec<Recipient>,
    pub bcc_recipients: Vec<Recipient>,
    pub reply_to: Vec<Recipient>,
    pub received_date_time: Option<String>,
    pub sent_date_time: Option<String>,
    pub is_read: Option<bool>,
    pub is_draft: Option<bool>,
    /// `low`, `normal` or `high`.
    pub importance: Option<String>,
    pub categories: Vec<String>,
    pub flag: Option<Flag>,
    pub has_attachments: Option<bool>,
    /// Present when asked for (GraphQL `attachments`, REST `expand=attachments`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attachments: Option<Vec<Attachment>>,
    pub conversation_id: Option<String>,
    pub parent_folder_id: Option<String>,
    pub web_link: Option<String>,
    pub internet_message_id: Option<String>,
}

impl Message {
    pub(crate) fn from_graph(m: models::Message, mailbox: &str) -> Result<Self, ServiceError> {
        Ok(Message {
            id: m.id.ok_or(ServiceError::UpstreamBadResponse)?,
            mailbox: mailbox.to_owned(),
            subject: m.subject,
            body_preview: m.body_preview,
            body: m.body.map(|b| ItemBody {
                content_type: BodyType::parse(b.content_type.as_deref()),
                content: b.content.unwrap_or_default(),
            }),
            from: m.from.and_then(Recipient::from_graph),
            sender: m.sender.and_then(Recipient::from_graph),
            to_recipients: Recipient::list(m.to_recipients),
            cc_recipients: Recipient::list(m.cc_recipients),
            bcc_recipients: Recipient::list(m.bcc_recipients),
            reply_to: Recipient::list(m.reply_to),
            received_date_time: m.received_date_time,
            sent_date_time: m.sent_date_time,
            is_read: m.is_read,
            is_draft: m.is_draft,
            importance: m.importance,
            categories: m.categories.unwrap_or_default(),
            flag: m.flag.map(|f| Flag {
                status: f.flag_status.unwrap_or_else(|| "notFlagged".into()),
                due: f.due_date_time.as_ref().and_then(|d| d.date_time.clone()),
                due_time_zone: f.due_date_time.and_then(|d| d.time_zone),
            }),
            has_attachments: m.has_attachments,
            attachments: m
                .attachments
                .map(|list| list.into_iter().map(Attachment::from_graph).collect())
                .transpose()?,
            conversation_id: m.conversation_id,
            parent_folder_id: m.parent_folder_id,
            web_link: m.web_link,
            internet_message_id: m.internet_message_id,
        })
    }
}

/// A mail folder with its counts.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct MailFolder {
    pub id: String,
    pub mailbox: String,
    pub display_name: Option<String>,
    pub parent_folder_id: Option<String>,
    pub child_folder_count: Option<u32>,
    pub unread_item_count: Option<u32>,
    pub total_item_count: Option<u32>,
}

impl MailFolder {
    fn from_graph(f: models::MailFolder, mailbox: &str) -> Result<Self, ServiceError> {
        Ok(MailFolder {
            id: f.id.ok_or(ServiceError::UpstreamBadResponse)?,
            mailbox: mailbox.to_owned(),
            display_name: f.display_name,
            parent_folder_id: f.parent_folder_id,
            child_folder_count: f.child_folder_count,
            unread_item_count: f.unread_item_count,
            total_item_count: f.total_item_count,
        })
    }
}

const FOLDER_FIELDS: &[&str] = &[
    "id",
    "displayName",
    "parentFolderId",
    "childFolderCount",
    "unreadItemCount",
    "totalItemCount",
];

/// Message properties the gateway exposes; GraphQL field name → Graph property.
const MESSAGE_FIELDS: &[(&str, &str)] = &[
    ("id", "id"),
    ("subject", "subject"),
    ("bodyPreview", "bodyPreview"),
    ("body", "body"),
    ("from", "from"),
    ("sender", "sender"),
    ("toRecipients", "toRecipients"),
    ("ccRecipients", "ccRecipients"),
    ("bccRecipients", "bccRecipients"),
    ("replyTo", "replyTo"),
    ("receivedDateTime", "receivedDateTime"),
    ("sentDateTime", "sentDateTime"),
    ("isRead", "isRead"),
    ("isDraft", "isDraft"),
    ("importance", "importance"),
    ("categories", "categories"),
    ("flag", "flag"),
    ("hasAttachments", "hasAttachments"),
    ("conversationId", "conversationId"),
    ("parentFolder", "parentFolderId"),
    ("parentFolderId", "parentFolderId"),
    ("webLink", "webLink"),
    ("internetMessageId", "internetMessageId"),
];

/// The attachment properties fetched with `$expand=attachments` (no content).
const ATTACHMENT_SELECT: &str =
    "attachments($select=id,name,contentType,size,isInline,lastModifiedDateTime)";

/// Which message properties to fetch. Built from the GraphQL selection set so Graph sends
/// only what was asked; REST asks for everything.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MessageSelect {
    fields: Vec<&'static str>,
    /// The body format, when the body is selected.
    body: Option<BodyType>,
    attachments: bool,
}

impl MessageSelect {
    /// Every exposed property, the body in `body` format.
    pub fn all(body: BodyType, attachments: bool) -> Self {
        let mut select = Self::from_names(MESSAGE_FIELDS.iter().map(|(name, _)| *name));
        select.body = Some(body);
        select.attachments = attachments;
        select
    }

    /// The properties among `names` (GraphQL field names); `id` always.
    pub fn from_names<'a>(names: impl IntoIterator<Item = &'a str>) -> Self {
        let mut select = MessageSelect {
            fields: vec!["id"],
            body: None,
            attachments: false,
        };
        for name in names {
            if name == "attachments" {
                select.attachments = true;
                continue;
            }
            if let Some((_, graph)) = MESSAGE_FIELDS.iter().find(|(n, _)| *n == name)
                && !select.fields.contains(graph)
            {
                select.fields.push(graph);
                if *graph == "body" {
                    select.body = Some(BodyType::Html);
                }
            }
        }
        select
    }

    /// The body is wanted in `format`.
    pub fn with_body(mut self, format: BodyType) -> Self {
        if !self.fields.contains(&"body") {
            self.fields.push("body");
        }
        self.body = Some(format);
        self
    }

    fn apply(&self, url: GraphUrl) -> GraphUrl {
        let url = url.select(&self.fields);
        if self.attachments {
            url.expand(ATTACHMENT_SELECT)
        } else {
            url
        }
    }

    fn get(&self, url: GraphUrl) -> GraphGet {
        GraphGet::new(self.apply(url)).prefer(self.body.map(BodyType::prefer))
    }
}

/// Sort orders Exchange can serve together with a filter.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MessageOrder {
    /// Newest first (Exchange's default).
    #[default]
    ReceivedDesc,
    ReceivedAsc,
    SentDesc,
    SentAsc,
}

impl MessageOrder {
    fn property(self) -> &'static str {
        match self {
            MessageOrder::ReceivedDesc | MessageOrder::ReceivedAsc => "receivedDateTime",
            MessageOrder::SentDesc | MessageOrder::SentAsc => "sentDateTime",
        }
    }

    fn odata(self) -> String {
        let direction = match self {
            MessageOrder::ReceivedDesc | MessageOrder::SentDesc => "desc",
            MessageOrder::ReceivedAsc | MessageOrder::SentAsc => "asc",
        };
        format!("{} {direction}", self.property())
    }
}

/// Conditions on messages; all given conditions must hold.
#[derive(Clone, Debug, Default)]
pub struct MessageFilter {
    /// Sender address, exact (case-insensitive).
    pub from: Option<String>,
    /// A `to` recipient address, exact.
    pub to: Option<String>,
    pub subject_contains: Option<String>,
    /// ISO 8601 instants.
    pub received_after: Option<String>,
    pub received_before: Option<String>,
    pub is_read: Option<bool>,
    pub has_attachments: Option<bool>,
    /// `low`, `normal` or `high`.
    pub importance: Option<String>,
    /// Every one of these categories.
    pub categories: Vec<String>,
    pub conversation_id: Option<String>,
}

/// A normalised instant for `$filter` (`2024-05-01T10:00:00Z`: UTC, whole seconds), or a
/// clear error naming the field.
fn instant(name: &str, value: &str) -> Result<String, ServiceError> {
    let at = super::timezone::parse_instant(name, value)?;
    jiff::Timestamp::from_second(at.as_second())
        .map(|t| t.to_string())
        .map_err(|_| ServiceError::BadInput(format!("{name} is out of range")))
}

fn check_address(name: &str, value: &str) -> Result<(), ServiceError> {
    if crate::service::mail_send::is_address(value) {
        Ok(())
    } else {
        Err(ServiceError::BadInput(format!(
            "{name} must be a mail address, got '{value}'"
        )))
    }
}

impl MessageFilter {
    fn is_empty(&self) -> bool {
        self.from.is_none()
            && self.to.is_none()
            && self.subject_contains.is_none()
            && self.received_after.is_none()
            && self.received_before.is_none()
            && self.is_read.is_none()
            && self.has_attachments.is_none()
            && self.importance.is_none()
            && self.categories.is_empty()
            && self.conversation_id.is_none()
    }

    /// The `$filter`, ordered as Exchange requires when `$orderby` is sent too: the sort
    /// property first (with a condition that holds for every message when the caller gave
    /// none), then the rest. Otherwise Exchange answers `InefficientFilter`.
    pub fn to_odata(&self, order: Option<MessageOrder>) -> Result<Option<String>, ServiceError> {
        if self.is_empty() {
            return Ok(None);
        }
        let mut received = Vec::new();
        if let Some(v) = &self.received_after {
            received.push(format!(
                "receivedDateTime ge {}",
                instant("receivedAfter", v)?
            ));
        }
        if let Some(v) = &self.received_before {
            received.push(format!(
                "receivedDateTime lt {}",
                instant("receivedBefore", v)?
            ));
        }
        let mut others = Vec::new();
        if let Some(v) = &self.from {
            check_address("from", v)?;
            others.push(format!("from/emailAddress/address eq {}", odata_string(v)?));
        }
        if let Some(v) = &self.to {
            check_address("to", v)?;
            others.push(format!(
                "toRecipients/any(r:r/emailAddress/address eq {})",
                odata_string(v)?
            ));
        }
        if let Some(v) = &self.subject_contains {
            if v.is_empty() || v.len() > 255 {
                return Err(ServiceError::BadInput(
                    "subjectContains must be 1 to 255 characters".into(),
                ));
            }
            others.push(format!("contains(subject,{})", odata_string(v)?));
        }
        if let Some(v) = self.is_read {
            others.push(format!("isRead eq {v}"));
        }
        if let Some(v) = self.has_attachments {
            others.push(format!("hasAttachments eq {v}"));
        }
        if let Some(v) = &self.importance {
            let v = v.to_ascii_lowercase();
            if !["low", "normal", "high"].contains(&v.as_str()) {
                return Err(ServiceError::BadInput(
                    "importance must be low, normal or high".into(),
                ));
            }
            others.push(format!("importance eq '{v}'"));
        }
        if self.categories.len() > 20 {
            return Err(ServiceError::BadInput(
                "at most 20 categories can be filtered on".into(),
            ));
        }
        for c in &self.categories {
            others.push(format!("categories/any(c:c eq {})", odata_string(c)?));
        }
        if let Some(v) = &self.conversation_id {
            others.push(format!("conversationId eq {}", odata_string(v)?));
        }
        let mut clauses = Vec::new();
        match order.map(MessageOrder::property) {
            Some("sentDateTime") => {
                clauses.push("sentDateTime ge 1900-01-01T00:00:00Z".to_owned());
                others.splice(0..0, received);
            }
            Some(_) if received.is_empty() => {
                clauses.push("receivedDateTime ge 1900-01-01T00:00:00Z".to_owned());
            }
            _ => clauses.append(&mut received),
        }
        clauses.append(&mut others);
        Ok(Some(clauses.join(" and ")))
    }
}

/// A request for a page of messages.
#[derive(Clone, Debug, Default)]
pub struct MessageQuery {
    /// A folder id or well-known name (`inbox`, `sentitems`, …); none: every folder.
    pub folder: Option<String>,
    pub filter: MessageFilter,
    /// KQL: words, `from:`, `subject:`, … Cannot be combined with `filter` or `order`.
    pub search: Option<String>,
    pub order: Option<MessageOrder>,
    pub first: usize,
    pub after: Option<String>,
}

/// `$search` for messages: the caller's KQL inside one pair of double quotes, with `"` and
/// `\` escaped so the text can neither end the quoted value nor add parameters.
pub fn message_search(text: &str) -> Result<String, ServiceError> {
    let text = text.trim();
    if text.is_empty() || text.len() > MAX_SEARCH {
        return Err(ServiceError::BadInput(format!(
            "search must be 1 to {MAX_SEARCH} characters"
        )));
    }
    if text.chars().any(char::is_control) {
        return Err(ServiceError::BadInput(
            "search contains a control character".into(),
        ));
    }
    Ok(format!(
        "\"{}\"",
        text.replace('\\', "\\\\").replace('"', "\\\"")
    ))
}

/// Changes to a folder since a delta token.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct MessageDelta {
    /// Messages created or changed (all properties of `MessageSelect`).
    pub changed: Vec<Message>,
    /// Ids of messages deleted or moved out of the folder.
    pub removed: Vec<String>,
    /// Pass back as `delta_token` for the next call.
    pub delta_token: String,
    /// More changes are waiting now: call again at once with `delta_token`.
    pub has_more: bool,
}

/// Largest delta page asked of Graph.
pub const MAX_DELTA_PAGE: usize = 200;

impl Session {
    /// The mailbox path `/users/{id}` after the policy check, and its canonical key.
    /// `me` is the user the caller acts for.
    pub(crate) fn mailbox(&self, mailbox: &str) -> Result<(GraphUrl, String), ServiceError> {
        let named = if mailbox.eq_ignore_ascii_case("me") {
            self.caller.user.clone().ok_or_else(|| {
                ServiceError::Forbidden(format!(
                    "caller '{}' acts as an application, not for a user, so it has no 'me' mailbox",
                    self.caller.name
                ))
            })?
        } else {
            mailbox.to_owned()
        };
        let target = self.resolve_user(&named)?;
        Ok((GraphUrl::root("users").id(&target)?, target))
    }

    /// The top-level folders of a mailbox.
    pub async fn mail_folders(
        &self,
        mailbox: &str,
        first: usize,
        after: Option<&str>,
    ) -> Result<Page<MailFolder>, ServiceError> {
        self.require("mail.read")?;
        let (user, key) = self.mailbox(mailbox)?;
        let what = format!("mail folders of '{mailbox}'");
        self.folder_page(user.then("mailFolders"), &key, first, after, &what)
            .await
    }

    /// A page of the folders at `base` (a `mailFolders` or `childFolders` collection).
    async fn folder_page(
        &self,
        base: GraphUrl,
        key: &str,
        first: usize,
        after: Option<&str>,
        what: &str,
    ) -> Result<Page<MailFolder>, ServiceError> {
        let top = check_first(first)?;
        let path = base.path().to_owned();
        let url = base.select(FOLDER_FIELDS).top(top);
        self.page::<models::MailFolder>(GraphGet::new(url), &path, first, after, what)
            .await?
            .map(|f| MailFolder::from_graph(f, key))
    }

    /// One folder by id or well-known name.
    pub async fn mail_folder(
        &self,
        mailbox: &str,
        folder: &str,
    ) -> Result<MailFolder, ServiceError> {
        self.require("mail.read")?;
        let (user, key) = self.mailbox(mailbox)?;
        let url = user.then("mailFolders").id(folder)?.select(FOLDER_FIELDS);
        let found: models::MailFolder = self
            .get_json(GraphGet::new(url))
            .await
            .map_err(|e| self.upstream(e, &format!("mail folder '{folder}'")))?;
        MailFolder::from_graph(found, &key)
    }

    /// The child folders of a folder.
    pub async fn child_folders(
        &self,
        mailbox: &str,
        folder: &str,
        first: usize,
        after: Option<&str>,
    ) -> Result<Page<MailFolder>, ServiceError> {
        self.require("mail.read")?;
        let (user, key) = self.mailbox(mailbox)?;
        let base = user.then("mailFolders").id(folder)?.then("childFolders");
        let what = format!("child folders of '{folder}'");
        self.folder_page(base, &key, first, after, &what).await
    }

    /// A page of messages of a mailbox (or one of its folders), filtered or searched.
    pub async fn messages(
        &self,
        mailbox: &str,
        query: &MessageQuery,
        select: &MessageSelect,
    ) -> Result<Page<Message>, ServiceError> {
        self.require("mail.read")?;
        let top = check_first(query.first)?;
        let search = query.search.as_deref().map(message_search).transpose()?;
        if search.is_some() && (!query.filter.is_empty() || query.order.is_some()) {
            return Err(ServiceError::BadInput(
                "search cannot be combined with filter or orderBy (Exchange does not support it)"
                    .into(),
            ));
        }
        let filter = query.filter.to_odata(query.order)?;
        let (user, key) = self.mailbox(mailbox)?;
        let base = match &query.folder {
            Some(folder) => user.then("mailFolders").id(folder)?.then("messages"),
            None => user.then("messages"),
        };
        let path = base.path().to_owned();
        let mut url = select.apply(base).top(top);
        if let Some(filter) = &filter {
            url = url.filter(filter);
        }
        if let Some(order) = query.order {
            url = url.orderby(&order.odata());
        }
        if let Some(search) = &search {
            url = url.search(search);
        }
        let what = match &query.folder {
            Some(folder) => format!("messages of folder '{folder}'"),
            None => format!("messages of '{mailbox}'"),
        };
        let start = GraphGet::new(url).prefer(select.body.map(BodyType::prefer));
        self.page::<models::Message>(start, &path, query.first, query.after.as_deref(), &what)
            .await?
            .map(|m| Message::from_graph(m, &key))
    }

    /// One message by id.
    pub async fn message(
        &self,
        mailbox: &str,
        id: &str,
        select: &MessageSelect,
    ) -> Result<Message, ServiceError> {
        self.require("mail.read")?;
        let (user, key) = self.mailbox(mailbox)?;
        let url = user.then("messages").id(id)?;
        let found: models::Message = self
            .get_json(select.get(url))
            .await
            .map_err(|e| self.upstream(e, &format!("message '{id}'")))?;
        Message::from_graph(found, &key)
    }

    /// The attachments of a message (metadata only).
    pub async fn attachments(
        &self,
        mailbox: &str,
        message_id: &str,
    ) -> Result<Vec<Attachment>, ServiceError> {
        self.require("mail.read")?;
        let (user, _) = self.mailbox(mailbox)?;
        let url = user
            .then("messages")
            .id(message_id)?
            .then("attachments")
            .select(&[
                "id",
                "name",
                "contentType",
                "size",
                "isInline",
                "lastModifiedDateTime",
            ]);
        let page: models::Collection<models::Attachment> = self
            .get_json(GraphGet::new(url))
            .await
            .map_err(|e| self.upstream(e, &format!("attachments of message '{message_id}'")))?;
        page.value.into_iter().map(Attachment::from_graph).collect()
    }

    /// One attachment's metadata and its content as a stream from Graph (`$value`).
    pub async fn attachment_content(
        &self,
        mailbox: &str,
        message_id: &str,
        attachment_id: &str,
    ) -> Result<(Attachment, reqwest::Response), ServiceError> {
        self.require("mail.read")?;
        let (user, _) = self.mailbox(mailbox)?;
        let item = user
            .then("messages")
            .id(message_id)?
            .then("attachments")
            .id(attachment_id)?;
        let what = format!("attachment '{attachment_id}'");
        let meta: models::Attachment = self
            .get_json(GraphGet::new(item.clone().select(&[
                "id",
                "name",
                "contentType",
                "size",
                "isInline",
                "lastModifiedDateTime",
            ])))
            .await
            .map_err(|e| self.upstream(e, &what))?;
        let meta = Attachment::from_graph(meta)?;
        if meta.kind != "file" {
            return Err(ServiceError::BadInput(format!(
                "attachment '{attachment_id}' is an {} attachment and has no file content",
                meta.kind
            )));
        }
        let stream = self
            .graph()
            .get_stream(
                self.access(),
                &GraphGet::new(item.then("$value")),
                self.deadline(),
            )
            .await
            .map_err(|e| self.upstream(e, &what))?;
        Ok((meta, stream))
    }

    /// Changes to a folder since `token` (none: everything, as the first sync). One Graph
    /// page per call, at most `max` messages; `has_more` says to call again at once.
    pub async fn messages_delta(
        &self,
        mailbox: &str,
        folder: &str,
        token: Option<&str>,
        max: usize,
        select: &MessageSelect,
    ) -> Result<MessageDelta, ServiceError> {
        self.require("mail.read")?;
        if !(1..=MAX_DELTA_PAGE).contains(&max) {
            return Err(ServiceError::BadInput(format!(
                "first must be between 1 and {MAX_DELTA_PAGE}, got {max}"
            )));
        }
        let (user, key) = self.mailbox(mailbox)?;
        let base = user
            .then("mailFolders")
            .id(folder)?
            .then("messages")
            .then("delta");
        let path = base.path().to_owned();
        let url = match token {
            None => select.apply(base).to_string(),
            Some(token) => decode_delta_token(token, &path, "folder")?,
        };
        let what = format!("changes of folder '{folder}'");
        let prefer = format!(
            "odata.maxpagesize={max}, {}",
            select.body.unwrap_or(BodyType::Html).prefer()
        );
        let body = self
            .graph()
            .get_fresh(
                self.access(),
                &GraphGet::new(url).prefer(Some(&prefer)),
                self.deadline(),
            )
            .await
            .map_err(|e| self.upstream(e, &what))?;
        let page: models::DeltaPage<models::Message> =
            serde_json::from_slice(&body).map_err(|e| {
                tracing::warn!(error = %e, "unusable delta page");
                ServiceError::UpstreamBadResponse
            })?;
        let delta_token = self.next_delta_token(
            page.next_link.as_deref(),
            page.delta_link.as_deref(),
            &path,
            &what,
        )?;
        let mut changed = Vec::new();
        let mut removed = Vec::new();
        for m in page.value {
            if m.removed.is_some() {
                removed.extend(m.id);
            } else {
                changed.push(Message::from_graph(m, &key)?);
            }
        }
        Ok(MessageDelta {
            changed,
            removed,
            delta_token,
            has_more: page.next_link.is_some(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter() -> MessageFilter {
        MessageFilter::default()
    }

    #[test]
    fn a_filter_with_a_sort_puts_the_sort_property_first() {
        let f = MessageFilter {
            is_read: Some(false),
            received_after: Some("2024-05-01T12:00:00+02:00".into()),
            ..filter()
        };
        assert_eq!(
            f.to_odata(Some(MessageOrder::ReceivedDesc))
                .unwrap()
                .unwrap(),
            "receivedDateTime ge 2024-05-01T10:00:00Z and isRead eq false"
        );
        let f = MessageFilter {
            has_attachments: Some(true),
            ..filter()
        };
        assert_eq!(
            f.to_odata(Some(MessageOrder::ReceivedAsc))
                .unwrap()
                .unwrap(),
            "receivedDateTime ge 1900-01-01T00:00:00Z and hasAttachments eq true"
        );
        let f = MessageFilter {
            received_before: Some("2024-06-01T00:00:00Z".into()),
            importance: Some("High".into()),
            ..filter()
        };
        assert_eq!(
            f.to_odata(Some(MessageOrder::SentDesc)).unwrap().unwrap(),
            "sentDateTime ge 1900-01-01T00:00:00Z and receivedDateTime lt 2024-06-01T00:00:00Z and importance eq 'high'"
        );
        assert_eq!(
            filter().to_odata(Some(MessageOrder::SentDesc)).unwrap(),
            None
        );
    }

    #[test]
    fn filter_values_stay_literals() {
        let f = MessageFilter {
            subject_contains: Some("a') or startswith(subject,'".into()),
            categories: vec!["O'Brien".into()],
            from: Some("o'neil@example.com".into()),
            ..filter()
        };
        assert_eq!(
            f.to_odata(None).unwrap().unwrap(),
            "from/emailAddress/address eq 'o''neil@example.com' and contains(subject,'a'') or startswith(subject,''') and categories/any(c:c eq 'O''Brien')"
        );
    }

    #[test]
    fn bad_filter_values_are_bad_input() {
        for f in [
            MessageFilter {
                from: Some("not an address".into()),
                ..filter()
            },
            MessageFilter {
                received_after: Some("yesterday".into()),
                ..filter()
            },
            MessageFilter {
                importance: Some("urgent".into()),
                ..filter()
            },
            MessageFilter {
                subject_contains: Some(String::new()),
                ..filter()
            },
        ] {
            assert!(matches!(f.to_odata(None), Err(ServiceError::BadInput(_))));
        }
    }

    #[test]
    fn search_text_is_quoted_and_escaped() {
        assert_eq!(
            message_search(r#"from:ana subject:"Q3" \x"#).unwrap(),
            r#""from:ana subject:\"Q3\" \\x""#
        );
        assert!(message_search("  ").is_err());
        assert!(message_search("a\nb").is_err());
    }
}
