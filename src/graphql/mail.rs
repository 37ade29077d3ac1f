//! GraphQL types of mail: folders, messages, attachments, delta, and the mail mutations.

use async_graphql::{
    Context, Enum, ErrorExtensions, ID, InputObject, Object, SelectionField, SimpleObject, Upload,
};

use super::GqlResult;
use super::types::{ConnectionFields, connection, first, user_select_of};
use crate::service::directory::User;
use crate::service::mail::{
    Attachment, BodyType, Flag, ItemBody, MailFolder, Message, MessageDelta, MessageFilter,
    MessageOrder, MessageQuery, MessageSelect, Recipient,
};
use crate::service::mail_send::{
    AttachmentContent, MessagePatch, OutgoingAttachment, OutgoingMessage, SendReceipt,
};
use crate::service::{ServiceError, Session};

pub type MessageConnection =
    async_graphql::connection::Connection<String, Message, ConnectionFields>;
pub type MailFolderConnection =
    async_graphql::connection::Connection<String, MailFolder, ConnectionFields>;

/// A body format.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
pub enum BodyFormat {
    Text,
    Html,
}

impl From<BodyFormat> for BodyType {
    fn from(f: BodyFormat) -> Self {
        match f {
            BodyFormat::Text => BodyType::Text,
            BodyFormat::Html => BodyType::Html,
        }
    }
}

impl From<BodyType> for BodyFormat {
    fn from(f: BodyType) -> Self {
        match f {
            BodyType::Text => BodyFormat::Text,
            BodyType::Html => BodyFormat::Html,
        }
    }
}

#[derive(Enum, Copy, Clone, Eq, PartialEq)]
pub enum Importance {
    Low,
    Normal,
    High,
}

impl Importance {
    fn graph(self) -> &'static str {
        match self {
            Importance::Low => "low",
            Importance::Normal => "normal",
            Importance::High => "high",
        }
    }

    fn parse(value: &str) -> Option<Self> {
        match value.to_ascii_lowercase().as_str() {
            "low" => Some(Importance::Low),
            "normal" => Some(Importance::Normal),
            "high" => Some(Importance::High),
            _ => None,
        }
    }
}

#[derive(Enum, Copy, Clone, Eq, PartialEq)]
pub enum FlagStatus {
    NotFlagged,
    Flagged,
    Complete,
}

impl FlagStatus {
    fn graph(self) -> &'static str {
        match self {
            FlagStatus::NotFlagged => "notFlagged",
            FlagStatus::Flagged => "flagged",
            FlagStatus::Complete => "complete",
        }
    }
}

/// Sort orders Exchange serves together with filters.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
pub enum MessageOrderBy {
    ReceivedDesc,
    ReceivedAsc,
    SentDesc,
    SentAsc,
}

impl From<MessageOrderBy> for MessageOrder {
    fn from(o: MessageOrderBy) -> Self {
        match o {
            MessageOrderBy::ReceivedDesc => MessageOrder::ReceivedDesc,
            MessageOrderBy::ReceivedAsc => MessageOrder::ReceivedAsc,
            MessageOrderBy::SentDesc => MessageOrder::SentDesc,
            MessageOrderBy::SentAsc => MessageOrder::SentAsc,
        }
    }
}

/// Conditions on messages; all given conditions must hold.
#[derive(InputObject, Default)]
pub struct MessageFilterInput {
    /// Sender address (exact).
    from: Option<String>,
    /// A `to` recipient address (exact).
    to: Option<String>,
    subject_contains: Option<String>,
    /// ISO 8601 with offset, e.g. `2024-05-01T00:00:00Z`; inclusive.
    received_after: Option<String>,
    /// ISO 8601 with offset; exclusive.
    received_before: Option<String>,
    is_read: Option<bool>,
    has_attachments: Option<bool>,
    importance: Option<Importance>,
    /// Messages carrying every one of these categories.
    categories: Option<Vec<String>>,
    conversation_id: Option<String>,
}

impl From<MessageFilterInput> for MessageFilter {
    fn from(f: MessageFilterInput) -> Self {
        MessageFilter {
            from: f.from,
            to: f.to,
            subject_contains: f.subject_contains,
            received_after: f.received_after,
            received_before: f.received_before,
            is_read: f.is_read,
            has_attachments: f.has_attachments,
            importance: f.importance.map(|i| i.graph().to_owned()),
            categories: f.categories.unwrap_or_default(),
            conversation_id: f.conversation_id,
        }
    }
}

/// A file to attach: `contentBytes` (standard base64, for small files) or `file` (a
/// multipart upload, any size up to 150 MB). Files of 3 MB and more go through Graph
/// upload sessions transparently.
#[derive(InputObject)]
pub struct AttachmentInput {
    name: String,
    content_type: Option<String>,
    content_bytes: Option<String>,
    file: Option<Upload>,
    #[graphql(default)]
    is_inline: bool,
    content_id: Option<String>,
}

/// A message to send or save as a draft.
#[derive(InputObject, Default)]
pub struct OutgoingMessageInput {
    subject: Option<String>,
    body: Option<String>,
    /// Format of `body` (default TEXT).
    body_format: Option<BodyFormat>,
    #[graphql(default)]
    to: Vec<String>,
    #[graphql(default)]
    cc: Vec<String>,
    #[graphql(default)]
    bcc: Vec<String>,
    #[graphql(default)]
    reply_to: Vec<String>,
    /// Send on behalf of this address (needs `send_as` for it too).
    from: Option<String>,
    importance: Option<Importance>,
    #[graphql(default)]
    attachments: Vec<AttachmentInput>,
}

impl OutgoingMessageInput {
    fn into_service(self, ctx: &Context<'_>) -> async_graphql::Result<OutgoingMessage> {
        let mut attachments = Vec::with_capacity(self.attachments.len());
        for a in self.attachments {
            let content = match (a.content_bytes, a.file) {
                (Some(text), None) => AttachmentContent::Base64(text),
                (None, Some(upload)) => {
                    let value = upload.value(ctx)?;
                    let size = value
                        .content
                        .metadata()
                        .map_err(|_| ServiceError::Internal.extend())?
                        .len();
                    AttachmentContent::File {
                        file: value.content,
                        size,
                    }
                }
                _ => {
                    return Err(ServiceError::BadInput(format!(
                        "attachment '{}': give exactly one of contentBytes and file",
                        a.name
                    ))
                    .extend());
                }
            };
            attachments.push(OutgoingAttachment {
                name: a.name,
                content_type: a.content_type,
                is_inline: a.is_inline,
                content_id: a.content_id,
                content,
            });
        }
        Ok(OutgoingMessage {
            subject: self.subject,
            body: self.body,
            body_type: self.body_format.map(Into::into),
            to: self.to,
            cc: self.cc,
            bcc: self.bcc,
            reply_to: self.reply_to,
            from: self.from,
            importance: self.importance.map(|i| i.graph().to_owned()),
            attachments,
        })
    }
}

/// The message properties selected below `fields` (a message object's selections).
pub(super) fn message_select<'a>(
    fields: impl Iterator<Item = SelectionField<'a>>,
) -> MessageSelect {
    let fields: Vec<SelectionField<'a>> = fields.collect();
    let mut select = MessageSelect::from_names(fields.iter().map(|f| f.name()));
    // `body(format: TEXT)` decides the Prefer header of the list request.
    if let Some(format) = fields
        .iter()
        .filter(|f| f.name() == "body")
        .find_map(|f| body_format_argument(f))
    {
        select = select.with_body(format);
    }
    select
}

fn body_format_argument(field: &SelectionField<'_>) -> Option<BodyType> {
    let arguments = field.arguments().ok()?;
    let (_, value) = arguments
        .iter()
        .find(|(name, _)| name.as_str() == "format")?;
    match value {
        async_graphql::Value::Enum(name) if name.as_str() == "TEXT" => Some(BodyType::Text),
        async_graphql::Value::Enum(name) if name.as_str() == "HTML" => Some(BodyType::Html),
        _ => None,
    }
}

fn select_message_nodes(ctx: &Context<'_>) -> MessageSelect {
    let here = ctx.look_ahead();
    let nodes = here.field("nodes").selection_fields();
    let edge_nodes = here.field("edges").field("node").selection_fields();
    message_select(
        nodes
            .into_iter()
            .chain(edge_nodes)
            .flat_map(|f| f.selection_set().collect::<Vec<_>>()),
    )
}

/// Mail fields of `User` (called from its resolvers in `types.rs`).
pub(super) async fn mail_folders(
    ctx: &Context<'_>,
    mailbox: &str,
    first_: i32,
    after: Option<String>,
) -> async_graphql::Result<MailFolderConnection> {
    let session = ctx.data::<Session>()?;
    let has_previous = after.is_some();
    let page = session
        .mail_folders(mailbox, first(first_), after.as_deref())
        .await
        .gql()?;
    Ok(connection(page, has_previous))
}

pub(super) async fn mail_folder(
    ctx: &Context<'_>,
    mailbox: &str,
    id: &str,
) -> async_graphql::Result<MailFolder> {
    let session = ctx.data::<Session>()?;
    session.mail_folder(mailbox, id).await.gql()
}

#[allow(clippy::too_many_arguments)]
pub(super) async fn messages(
    ctx: &Context<'_>,
    mailbox: &str,
    folder: Option<String>,
    filter: Option<MessageFilterInput>,
    search: Option<String>,
    order_by: Option<MessageOrderBy>,
    first_: i32,
    after: Option<String>,
) -> async_graphql::Result<MessageConnection> {
    let session = ctx.data::<Session>()?;
    let has_previous = after.is_some();
    let query = MessageQuery {
        folder,
        filter: filter.map(Into::into).unwrap_or_default(),
        search,
        order: order_by.map(Into::into),
        first: first(first_),
        after,
    };
    let page = session
        .messages(mailbox, &query, &select_message_nodes(ctx))
        .await
        .gql()?;
    Ok(connection(page, has_previous))
}

pub(super) async fn message(
    ctx: &Context<'_>,
    mailbox: &str,
    id: &str,
) -> async_graphql::Result<Message> {
    let session = ctx.data::<Session>()?;
    let select = message_select(ctx.field().selection_set());
    session.message(mailbox, id, &select).await.gql()
}

/// A person or mailbox on a message.
#[Object]
impl Recipient {
    async fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }
    async fn address(&self) -> Option<&str> {
        self.address.as_deref()
    }
    /// The directory user with this address; null for people outside the tenant (or
    /// outside what the caller may see). Resolved in batches across the whole query.
    async fn user(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<User>> {
        let Some(address) = &self.address else {
            return Ok(None);
        };
        let session = ctx.data::<Session>()?;
        let select = user_select_of(ctx);
        session.user_by_address(address, &select).await.gql()
    }
}

#[derive(SimpleObject)]
pub struct MessageBody {
    format: BodyFormat,
    content: String,
}

impl From<&ItemBody> for MessageBody {
    fn from(b: &ItemBody) -> Self {
        MessageBody {
            format: b.content_type.into(),
            content: b.content.clone(),
        }
    }
}

/// A follow-up flag.
#[Object]
impl Flag {
    async fn status(&self) -> FlagStatus {
        match self.status.as_str() {
            "flagged" => FlagStatus::Flagged,
            "complete" => FlagStatus::Complete,
            _ => FlagStatus::NotFlagged,
        }
    }
    /// Due date-time (ISO 8601 without offset, in `dueTimeZone`).
    async fn due(&self) -> Option<&str> {
        self.due.as_deref()
    }
    async fn due_time_zone(&self) -> Option<&str> {
        self.due_time_zone.as_deref()
    }
}

/// Attachment metadata. The content streams through REST:
/// `GET /api/v1/users/{mailbox}/messages/{message}/attachments/{id}/content`.
#[Object]
impl Attachment {
    async fn id(&self) -> ID {
        ID(self.id.clone())
    }
    async fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }
    async fn content_type(&self) -> Option<&str> {
        self.content_type.as_deref()
    }
    /// Size in bytes.
    async fn size(&self) -> Option<u64> {
        self.size
    }
    async fn is_inline(&self) -> bool {
        self.is_inline
    }
    /// `file`, `item` or `reference`.
    async fn kind(&self) -> &str {
        &self.kind
    }
    async fn last_modified_date_time(&self) -> Option<&str> {
        self.last_modified_date_time.as_deref()
    }
}

/// A mail message.
#[Object]
impl Message {
    async fn id(&self) -> ID {
        ID(self.id.clone())
    }
    async fn subject(&self) -> Option<&str> {
        self.subject.as_deref()
    }
    async fn body_preview(&self) -> Option<&str> {
        self.body_preview.as_deref()
    }
    /// The body, HTML unless `format: TEXT` is asked (Exchange converts it).
    async fn body(
        &self,
        ctx: &Context<'_>,
        format: Option<BodyFormat>,
    ) -> async_graphql::Result<Option<MessageBody>> {
        let wanted = format.map_or(BodyType::Html, BodyType::from);
        match &self.body {
            Some(body) if body.content_type == wanted => Ok(Some(body.into())),
            _ => {
                // Another format than the list fetched (aliases): one batched GET.
                let session = ctx.data::<Session>()?;
                let select = MessageSelect::from_names(["body"]).with_body(wanted);
                let message = session
                    .message(&self.mailbox, &self.id, &select)
                    .await
                    .gql()?;
                Ok(message.body.as_ref().map(Into::into))
            }
        }
    }
    async fn from(&self) -> Option<&Recipient> {
        self.from.as_ref()
    }
    async fn sender(&self) -> Option<&Recipient> {
        self.sender.as_ref()
    }
    async fn to_recipients(&self) -> &[Recipient] {
        &self.to_recipients
    }
    async fn cc_recipients(&self) -> &[Recipient] {
        &self.cc_recipients
    }
    async fn bcc_recipients(&self) -> &[Recipient] {
        &self.bcc_recipients
    }
    async fn reply_to(&self) -> &[Recipient] {
        &self.reply_to
    }
    /// ISO 8601 (UTC).
    async fn received_date_time(&self) -> Option<&str> {
        self.received_date_time.as_deref()
    }
    async fn sent_date_time(&self) -> Option<&str> {
        self.sent_date_time.as_deref()
    }
    async fn is_read(&self) -> Option<bool> {
        self.is_read
    }
    async fn is_draft(&self) -> Option<bool> {
        self.is_draft
    }
    async fn importance(&self) -> Option<Importance> {
        self.importance.as_deref().and_then(Importance::parse)
    }
    async fn categories(&self) -> &[String] {
        &self.categories
    }
    async fn flag(&self) -> Option<&Flag> {
        self.flag.as_ref()
    }
    async fn has_attachments(&self) -> Option<bool> {
        self.has_attachments
    }
    /// Attachment metadata (fetched with the list when selected there).
    async fn attachments(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<Attachment>> {
        if let Some(list) = &self.attachments {
            return Ok(list.clone());
        }
        let session = ctx.data::<Session>()?;
        session.attachments(&self.mailbox, &self.id).await.gql()
    }
    async fn conversation_id(&self) -> Option<&str> {
        self.conversation_id.as_deref()
    }
    async fn parent_folder_id(&self) -> Option<&str> {
        self.parent_folder_id.as_deref()
    }
    /// The folder the message is in.
    async fn parent_folder(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<MailFolder>> {
        let Some(folder) = &self.parent_folder_id else {
            return Ok(None);
        };
        let session = ctx.data::<Session>()?;
        session
            .mail_folder(&self.mailbox, folder)
            .await
            .map(Some)
            .gql()
    }
    async fn web_link(&self) -> Option<&str> {
        self.web_link.as_deref()
    }
    async fn internet_message_id(&self) -> Option<&str> {
        self.internet_message_id.as_deref()
    }
}

/// A mail folder.
#[Object]
impl MailFolder {
    async fn id(&self) -> ID {
        ID(self.id.clone())
    }
    async fn display_name(&self) -> Option<&str> {
        self.display_name.as_deref()
    }
    async fn parent_folder_id(&self) -> Option<&str> {
        self.parent_folder_id.as_deref()
    }
    async fn child_folder_count(&self) -> Option<u32> {
        self.child_folder_count
    }
    async fn unread_item_count(&self) -> Option<u32> {
        self.unread_item_count
    }
    async fn total_item_count(&self) -> Option<u32> {
        self.total_item_count
    }
    async fn child_folders(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Page size, 1 to 100.")] first: i32,
        after: Option<String>,
    ) -> async_graphql::Result<MailFolderConnection> {
        let session = ctx.data::<Session>()?;
        let has_previous = after.is_some();
        let page = session
            .child_folders(
                &self.mailbox,
                &self.id,
                self::first(first),
                after.as_deref(),
            )
            .await
            .gql()?;
        Ok(connection(page, has_previous))
    }
    /// Messages of this folder.
    async fn messages(
        &self,
        ctx: &Context<'_>,
        filter: Option<MessageFilterInput>,
        search: Option<String>,
        order_by: Option<MessageOrderBy>,
        #[graphql(desc = "Page size, 1 to 100.")] first: i32,
        after: Option<String>,
    ) -> async_graphql::Result<MessageConnection> {
        messages(
            ctx,
            &self.mailbox,
            Some(self.id.clone()),
            filter,
            search,
            order_by,
            first,
            after,
        )
        .await
    }
}

/// Changes to a folder since a delta token.
#[Object]
impl MessageDelta {
    /// Messages created or changed since the token.
    async fn changed(&self) -> &[Message] {
        &self.changed
    }
    /// Ids of messages deleted or moved out of the folder.
    async fn removed(&self) -> &[String] {
        &self.removed
    }
    /// Pass back as `deltaToken` next time.
    async fn delta_token(&self) -> &str {
        &self.delta_token
    }
    /// More changes are waiting: call again at once with `deltaToken`.
    async fn has_more(&self) -> bool {
        self.has_more
    }
}

/// What sending did.
#[Object]
impl SendReceipt {
    /// Microsoft 365 accepted the message for delivery.
    async fn accepted(&self) -> bool {
        self.accepted
    }
    /// Attachments uploaded through upload sessions (3 MB and more).
    async fn uploaded_attachments(&self) -> usize {
        self.uploaded_attachments
    }
}

/// Mail queries at the root.
#[derive(Default)]
pub struct MailQuery;

#[Object]
impl MailQuery {
    /// Changes to a mail folder since `deltaToken` (omit it for the first, full sync).
    /// A stale token fails with `SYNC_RESET`: start again without one.
    async fn messages_delta(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Object id, user principal name or address; `me` for the caller's user.")]
        mailbox: ID,
        #[graphql(desc = "Folder id or well-known name (`inbox`, …).")] folder: String,
        delta_token: Option<String>,
        #[graphql(desc = "Most messages returned by this call, 1 to 200 (default 50).")]
        first: Option<i32>,
    ) -> async_graphql::Result<MessageDelta> {
        let session = ctx.data::<Session>()?;
        let here = ctx.look_ahead();
        let select = message_select(
            here.field("changed")
                .selection_fields()
                .into_iter()
                .flat_map(|f| f.selection_set().collect::<Vec<_>>()),
        );
        let max = usize::try_from(first.unwrap_or(50)).unwrap_or(0);
        session
            .messages_delta(&mailbox, &folder, delta_token.as_deref(), max, &select)
            .await
            .gql()
    }
}

/// Mail mutations. `mailbox` is an object id, user principal name or address (shared
/// mailboxes too), or `me`.
#[derive(Default)]
pub struct MailMutation;

#[Object]
impl MailMutation {
    /// Sends a message from `mailbox` (needs `mail.send` and `send_as` for the mailbox,
    /// and for `from` when sending on behalf). Attachments up to 150 MB; large ones are
    /// uploaded in chunks transparently. A send that Graph does not confirm in time fails
    /// with `UPSTREAM_TIMEOUT_UNKNOWN_OUTCOME` and is never retried by the gateway.
    async fn send_mail(
        &self,
        ctx: &Context<'_>,
        mailbox: ID,
        message: OutgoingMessageInput,
        #[graphql(default = true)] save_to_sent_items: bool,
    ) -> async_graphql::Result<SendReceipt> {
        let session = ctx.data::<Session>()?;
        let message = message.into_service(ctx)?;
        session
            .send_mail(&mailbox, message, save_to_sent_items)
            .await
            .gql()
    }

    /// Saves a draft (in Drafts, or `folder`).
    async fn create_draft(
        &self,
        ctx: &Context<'_>,
        mailbox: ID,
        message: OutgoingMessageInput,
        folder: Option<String>,
    ) -> async_graphql::Result<Message> {
        let session = ctx.data::<Session>()?;
        let message = message.into_service(ctx)?;
        session
            .create_draft(&mailbox, message, folder.as_deref())
            .await
            .gql()
    }

    /// Changes a draft; only the fields given change.
    async fn update_draft(
        &self,
        ctx: &Context<'_>,
        mailbox: ID,
        id: ID,
        message: OutgoingMessageInput,
    ) -> async_graphql::Result<Message> {
        let session = ctx.data::<Session>()?;
        let message = message.into_service(ctx)?;
        session.update_draft(&mailbox, &id, message).await.gql()
    }

    /// Sends a draft.
    async fn send_draft(
        &self,
        ctx: &Context<'_>,
        mailbox: ID,
        id: ID,
    ) -> async_graphql::Result<SendReceipt> {
        let session = ctx.data::<Session>()?;
        session.send_draft(&mailbox, &id).await.gql()
    }

    /// Replies to the sender, with a comment above the quoted message or a body of its own.
    async fn reply(
        &self,
        ctx: &Context<'_>,
        mailbox: ID,
        id: ID,
        comment: Option<String>,
        body: Option<String>,
        body_format: Option<BodyFormat>,
    ) -> async_graphql::Result<SendReceipt> {
        reply(ctx, &mailbox, &id, false, comment, body, body_format).await
    }

    /// Replies to the sender and every other recipient.
    async fn reply_all(
        &self,
        ctx: &Context<'_>,
        mailbox: ID,
        id: ID,
        comment: Option<String>,
        body: Option<String>,
        body_format: Option<BodyFormat>,
    ) -> async_graphql::Result<SendReceipt> {
        reply(ctx, &mailbox, &id, true, comment, body, body_format).await
    }

    /// Forwards a message.
    async fn forward(
        &self,
        ctx: &Context<'_>,
        mailbox: ID,
        id: ID,
        to: Vec<String>,
        comment: Option<String>,
    ) -> async_graphql::Result<SendReceipt> {
        let session = ctx.data::<Session>()?;
        session.forward(&mailbox, &id, &to, comment).await.gql()
    }

    /// Marks a message read (or unread).
    async fn mark_read(
        &self,
        ctx: &Context<'_>,
        mailbox: ID,
        id: ID,
        #[graphql(default = true)] is_read: bool,
    ) -> async_graphql::Result<Message> {
        let patch = MessagePatch {
            is_read: Some(is_read),
            ..Default::default()
        };
        update(ctx, &mailbox, &id, patch).await
    }

    /// Replaces a message's categories.
    async fn set_categories(
        &self,
        ctx: &Context<'_>,
        mailbox: ID,
        id: ID,
        categories: Vec<String>,
    ) -> async_graphql::Result<Message> {
        let patch = MessagePatch {
            categories: Some(categories),
            ..Default::default()
        };
        update(ctx, &mailbox, &id, patch).await
    }

    /// Sets a message's follow-up flag.
    async fn flag(
        &self,
        ctx: &Context<'_>,
        mailbox: ID,
        id: ID,
        status: FlagStatus,
    ) -> async_graphql::Result<Message> {
        let patch = MessagePatch {
            flag: Some(status.graph().to_owned()),
            ..Default::default()
        };
        update(ctx, &mailbox, &id, patch).await
    }

    /// Moves a message to a folder (id or well-known name: `archive`, `deleteditems`,
    /// `inbox`, `junkemail`, …). Returns the moved message, which has a new id.
    #[graphql(name = "move")]
    async fn move_message(
        &self,
        ctx: &Context<'_>,
        mailbox: ID,
        id: ID,
        destination: String,
    ) -> async_graphql::Result<Message> {
        let session = ctx.data::<Session>()?;
        session
            .move_message(&mailbox, &id, &destination)
            .await
            .gql()
    }

    /// Deletes a message. True when it is gone.
    async fn delete_message(
        &self,
        ctx: &Context<'_>,
        mailbox: ID,
        id: ID,
    ) -> async_graphql::Result<bool> {
        let session = ctx.data::<Session>()?;
        session.delete_message(&mailbox, &id).await.gql()?;
        Ok(true)
    }
}

async fn update(
    ctx: &Context<'_>,
    mailbox: &str,
    id: &str,
    patch: MessagePatch,
) -> async_graphql::Result<Message> {
    let session = ctx.data::<Session>()?;
    session.update_message(mailbox, id, &patch).await.gql()
}

async fn reply(
    ctx: &Context<'_>,
    mailbox: &str,
    id: &str,
    all: bool,
    comment: Option<String>,
    body: Option<String>,
    body_format: Option<BodyFormat>,
) -> async_graphql::Result<SendReceipt> {
    let session = ctx.data::<Session>()?;
    let body = body.map(|b| (b, body_format.map(Into::into).unwrap_or(BodyType::Text)));
    session.reply(mailbox, id, all, comment, body).await.gql()
}
