//! Exchange Online's side of mail: one mailbox per member user, with folders, messages,
//! attachments, and the per-mailbox change log that message delta reads.
//!
//! Everything lives in one `MailStore` behind a mutex next to the tenant; Graph handlers
//! (`graph::mail`) lock it synchronously and never across an `.await`. Mailboxes are created
//! (and their seeded history generated) on first access, so a 10,000-user tenant allocates
//! nothing for the mailboxes nobody reads. Seeded history is a pure function of
//! `(tenant seed, mailbox owner, anchor day)`.

pub(crate) mod ids;
mod seed;
pub(crate) mod text;

use std::collections::HashMap;

use axum::body::Bytes;
use serde::Serialize;
use serde_json::Value;

use crate::tenant::{SplitMix64, Tenant};

/// Exchange's well-known folders (lower-case names, as Graph accepts them wherever a folder
/// id goes) and their display names. `msgfolderroot` is the parent of the others.
pub(crate) const WELL_KNOWN_FOLDERS: [(&str, &str); 8] = [
    ("msgfolderroot", "Top of Information Store"),
    ("inbox", "Inbox"),
    ("sentitems", "Sent Items"),
    ("drafts", "Drafts"),
    ("deleteditems", "Deleted Items"),
    ("junkemail", "Junk Email"),
    ("archive", "Archive"),
    ("outbox", "Outbox"),
];

/// `{"emailAddress": {"name", "address"}}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Recipient {
    pub name: String,
    pub address: String,
}

impl Recipient {
    pub fn new(name: impl Into<String>, address: impl Into<String>) -> Recipient {
        Recipient {
            name: name.into(),
            address: address.into(),
        }
    }

    pub fn same_address(&self, other: &str) -> bool {
        self.address.eq_ignore_ascii_case(other)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Body {
    pub html: bool,
    pub content: String,
}

/// A file attachment. The bytes are shared (`Bytes`): copies delivered to many mailboxes
/// point at one buffer.
#[derive(Clone, Debug)]
pub(crate) struct Attachment {
    pub id: String,
    pub name: String,
    pub content_type: String,
    pub bytes: Bytes,
    pub is_inline: bool,
    pub content_id: Option<String>,
    pub modified: i64,
}

#[derive(Clone, Debug)]
pub(crate) struct Message {
    pub id: String,
    /// Creation order within the mailbox; a moved message is a new item with a new ordinal.
    pub ordinal: u64,
    /// The mailbox change sequence number of the last change (delta reads it).
    pub seq: u64,
    /// Bumped on every change: `changeKey`, `@odata.etag`.
    pub version: u64,
    pub folder: String,
    pub created: i64,
    pub modified: i64,
    pub received: i64,
    pub sent: i64,
    pub internet_message_id: String,
    pub subject: String,
    pub body: Body,
    /// `low`, `normal` or `high`.
    pub importance: &'static str,
    pub categories: Vec<String>,
    /// A followupFlag object: `{"flagStatus": …, …}`.
    pub flag: Value,
    pub is_read: bool,
    pub is_draft: bool,
    pub conversation_id: String,
    pub conversation_index: Vec<u8>,
    pub from: Option<Recipient>,
    pub sender: Option<Recipient>,
    pub to: Vec<Recipient>,
    pub cc: Vec<Recipient>,
    pub bcc: Vec<Recipient>,
    pub reply_to: Vec<Recipient>,
    pub attachments: Vec<Attachment>,
    /// `focused` or `other`.
    pub inference: &'static str,
    pub delivery_receipt: bool,
    pub read_receipt: bool,
    pub headers: Vec<(String, String)>,
    /// `@odata.type` when the message is a subtype (`#microsoft.graph.eventMessageRequest`
    /// for meeting requests); `None` for plain messages.
    pub odata_type: Option<&'static str>,
}

impl Message {
    /// A blank message; `Mailbox::insert` assigns its id, ordinal and sequence number.
    pub fn blank(folder: &str, now: i64) -> Message {
        Message {
            id: String::new(),
            ordinal: 0,
            seq: 0,
            version: 1,
            folder: folder.to_string(),
            created: now,
            modified: now,
            received: now,
            sent: now,
            internet_message_id: String::new(),
            subject: String::new(),
            body: Body {
                html: false,
                content: String::new(),
            },
            importance: "normal",
            categories: Vec::new(),
            flag: serde_json::json!({"flagStatus": "notFlagged"}),
            is_read: true,
            is_draft: false,
            conversation_id: String::new(),
            conversation_index: Vec::new(),
            from: None,
            sender: None,
            to: Vec::new(),
            cc: Vec::new(),
            bcc: Vec::new(),
            reply_to: Vec::new(),
            attachments: Vec::new(),
            inference: "focused",
            delivery_receipt: false,
            read_receipt: false,
            headers: Vec::new(),
            odata_type: None,
        }
    }

    /// `hasAttachments`: inline attachments do not count, as in Outlook.
    pub fn has_attachments(&self) -> bool {
        self.attachments.iter().any(|a| !a.is_inline)
    }

    /// Approximate size in bytes (folder `sizeInBytes`).
    pub fn size(&self) -> u64 {
        let attachments: usize = self.attachments.iter().map(|a| a.bytes.len()).sum();
        (1024 + self.subject.len() + self.body.content.len() + attachments) as u64
    }
}

#[derive(Clone, Debug)]
pub(crate) struct Folder {
    pub id: String,
    pub name: String,
    /// `None` only for `msgfolderroot`.
    pub parent: Option<String>,
    pub well_known: Option<&'static str>,
    pub hidden: bool,
}

/// A message that left a folder (deleted or moved out), for delta's `@removed`.
#[derive(Clone, Debug)]
pub(crate) struct Tombstone {
    pub id: String,
    pub folder: String,
    pub seq: u64,
}

pub(crate) struct Mailbox {
    /// The owner's index in the tenant.
    pub owner: usize,
    pub user_id: String,
    pub user_principal_name: String,
    pub owner_name: String,
    /// The owner's primary SMTP address.
    pub owner_address: String,
    pub key: [u8; 16],
    pub folders: Vec<Folder>,
    /// In insertion order (ordinal ascending).
    pub messages: Vec<Message>,
    pub tombstones: Vec<Tombstone>,
    /// The change sequence: every change to a message takes the next number.
    pub seq: u64,
    next_ordinal: u64,
    next_folder: u16,
    rng: SplitMix64,
}

impl Mailbox {
    fn new(tenant: &Tenant, owner: usize, seed: u64) -> Mailbox {
        let user = &tenant.users[owner];
        let key = ids::mailbox_key(&user.id);
        let mut mailbox = Mailbox {
            owner,
            user_id: user.id.clone(),
            user_principal_name: user.user_principal_name.clone(),
            owner_name: user.display_name.clone(),
            owner_address: user
                .mail
                .clone()
                .unwrap_or_else(|| user.user_principal_name.clone()),
            key,
            folders: Vec::new(),
            messages: Vec::new(),
            tombstones: Vec::new(),
            seq: 0,
            next_ordinal: 1,
            next_folder: 1,
            rng: SplitMix64::new(seed ^ ids::fnv(user.id.as_bytes()) ^ 0x6d61_696c_6964_7321),
        };
        let root = mailbox.new_folder_id();
        mailbox.folders.push(Folder {
            id: root.clone(),
            name: WELL_KNOWN_FOLDERS[0].1.to_string(),
            parent: None,
            well_known: Some(WELL_KNOWN_FOLDERS[0].0),
            hidden: false,
        });
        for &(wk, name) in &WELL_KNOWN_FOLDERS[1..] {
            let id = mailbox.new_folder_id();
            mailbox.folders.push(Folder {
                id,
                name: name.to_string(),
                parent: Some(root.clone()),
                well_known: Some(wk),
                hidden: false,
            });
        }
        mailbox
    }

    pub fn owner_recipient(&self) -> Recipient {
        Recipient::new(self.owner_name.clone(), self.owner_address.clone())
    }

    fn new_folder_id(&mut self) -> String {
        let id = ids::folder_id(&self.key, self.next_folder);
        self.next_folder += 1;
        id
    }

    /// A random number from the mailbox's own stream (ids, salts).
    pub fn draw(&mut self) -> u64 {
        self.rng.next_u64()
    }

    /// A folder by id or well-known name (case-insensitive).
    pub fn folder(&self, key: &str) -> Option<&Folder> {
        let key = key.trim();
        self.folders
            .iter()
            .find(|f| f.id == key || f.well_known.is_some_and(|wk| wk.eq_ignore_ascii_case(key)))
    }

    /// The id of a well-known folder.
    pub fn well_known(&self, name: &str) -> String {
        self.folder(name).map(|f| f.id.clone()).unwrap_or_default()
    }

    pub fn root_id(&self) -> String {
        self.well_known("msgfolderroot")
    }

    pub fn children(&self, parent: &str) -> impl Iterator<Item = &Folder> {
        self.folders
            .iter()
            .filter(move |f| f.parent.as_deref() == Some(parent))
    }

    /// Adds a folder under `parent`; `None` when the parent already has one by that name
    /// (case-insensitive, as Exchange compares folder names).
    pub fn add_folder(&mut self, parent: &str, name: &str) -> Option<String> {
        if self
            .children(parent)
            .any(|f| f.name.eq_ignore_ascii_case(name))
        {
            return None;
        }
        let id = self.new_folder_id();
        self.folders.push(Folder {
            id: id.clone(),
            name: name.to_string(),
            parent: Some(parent.to_string()),
            well_known: None,
            hidden: false,
        });
        Some(id)
    }

    pub fn find(&self, id: &str) -> Option<usize> {
        self.messages.iter().position(|m| m.id == id)
    }

    fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    /// Stores a new item: a fresh id, ordinal and sequence number; attachment ids too.
    pub fn insert(&mut self, mut m: Message) -> usize {
        let ordinal = self.next_ordinal;
        self.next_ordinal += 1;
        let salt = self.draw();
        m.id = ids::message_id(&self.key, ordinal, salt);
        m.ordinal = ordinal;
        m.seq = self.next_seq();
        for (n, a) in m.attachments.iter_mut().enumerate() {
            a.id = ids::attachment_id(&m.id, salt, n as u32);
        }
        self.messages.push(m);
        self.messages.len() - 1
    }

    /// Records a change to message `i`: new sequence number, version and modification time.
    pub fn touch(&mut self, i: usize, now: i64) {
        let seq = self.next_seq();
        let m = &mut self.messages[i];
        m.seq = seq;
        m.version += 1;
        m.modified = now;
    }

    /// Removes message `i` for good, leaving a tombstone in its folder.
    pub fn remove(&mut self, i: usize) -> Message {
        let m = self.messages.remove(i);
        let seq = self.next_seq();
        self.tombstones.push(Tombstone {
            id: m.id.clone(),
            folder: m.folder.clone(),
            seq,
        });
        m
    }

    /// Moves message `i` to `folder`: Exchange gives the moved item a new id. Returns its
    /// new index.
    pub fn relocate(&mut self, i: usize, folder: &str, now: i64) -> usize {
        let mut m = self.remove(i);
        m.folder = folder.to_string();
        m.version += 1;
        m.modified = now;
        self.insert(m)
    }

    /// A new attachment id for message `i`.
    pub fn new_attachment_id(&mut self, i: usize) -> String {
        let salt = self.draw();
        let n = self.messages[i].attachments.len() as u32;
        ids::attachment_id(&self.messages[i].id, salt, n)
    }

    /// `(totalItemCount, unreadItemCount, sizeInBytes)` of a folder.
    pub fn folder_counts(&self, folder: &str) -> (usize, usize, u64) {
        self.messages
            .iter()
            .filter(|m| m.folder == folder)
            .fold((0, 0, 0), |(t, u, s), m| {
                (t + 1, u + usize::from(!m.is_read), s + m.size())
            })
    }

    /// A new conversation: `(conversationId, conversationIndex)`.
    pub fn new_conversation(&mut self, now: i64) -> (String, Vec<u8>) {
        let (a, b) = (self.draw(), self.draw());
        (
            ids::conversation_id(&self.key, a, b),
            ids::conversation_index_header(now, a, b),
        )
    }

    /// A reply's `conversationIndex`: the parent's plus a 5-byte child block.
    pub fn child_index(&mut self, parent: &[u8]) -> Vec<u8> {
        let mut index = parent.to_vec();
        index.extend_from_slice(&ids::conversation_index_child(self.draw()));
        index
    }

    /// A new `internetMessageId` for mail this mailbox sends.
    pub fn new_internet_message_id(&mut self) -> String {
        let (a, b) = (self.draw(), self.draw());
        ids::internet_message_id(
            a,
            b,
            &format!("KR1PR08MB{:04}.namprd08.prod.outlook.com", b % 10_000),
        )
    }
}

/// One message as sent: what `GET /_emulator/mail/sent` lists.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct SentMail {
    /// The UPN of the mailbox that sent it.
    pub mailbox: String,
    pub from: String,
    pub sender: String,
    pub to: Vec<String>,
    pub cc: Vec<String>,
    pub bcc: Vec<String>,
    pub subject: String,
    #[serde(rename = "internetMessageId")]
    pub internet_message_id: String,
    #[serde(rename = "conversationId")]
    pub conversation_id: String,
    pub attachments: Vec<SentAttachment>,
    /// `sendMail`, `send`, `reply`, `replyAll` or `forward`.
    pub via: String,
    /// The UPNs of the tenant mailboxes a copy was delivered to.
    pub delivered: Vec<String>,
    /// Whether a copy was kept in the sender's Sent Items.
    #[serde(rename = "savedToSentItems")]
    pub saved_to_sent_items: bool,
}

#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct SentAttachment {
    pub name: String,
    #[serde(rename = "contentType")]
    pub content_type: String,
    pub size: usize,
    /// Lower-case hex SHA-256 of the bytes.
    pub sha256: String,
}

/// A large-attachment upload session (`createUploadSession`).
pub(crate) struct UploadSession {
    pub user_id: String,
    pub message_id: String,
    pub authtoken: String,
    pub name: String,
    pub content_type: String,
    pub size: u64,
    pub is_inline: bool,
    pub content_id: Option<String>,
    pub received: Vec<u8>,
    pub expires: i64,
    /// The app that created it, for Outlook's per-(app, mailbox) concurrency limit.
    pub app_id: String,
}

/// All mailboxes and mail-wide state.
pub(crate) struct MailStore {
    seed: u64,
    /// Seeded history ends at this instant (the start of the UTC day the emulator started),
    /// so two emulators with the same seed started the same day seed identical mailboxes.
    pub anchor: i64,
    mailboxes: HashMap<String, Mailbox>,
    pub sent: Vec<SentMail>,
    pub sessions: HashMap<String, UploadSession>,
    /// Delta and sync tokens carry this; `expire-delta-tokens` bumps it.
    pub delta_epoch: u64,
}

impl MailStore {
    pub fn new(seed: u64, now: i64) -> MailStore {
        MailStore {
            seed,
            anchor: now - now.rem_euclid(86_400),
            mailboxes: HashMap::new(),
            sent: Vec::new(),
            sessions: HashMap::new(),
            delta_epoch: 1,
        }
    }

    /// The mailbox of tenant user `owner`, created and seeded on first access.
    pub fn mailbox(&mut self, tenant: &Tenant, owner: usize) -> &mut Mailbox {
        let key = tenant.users[owner].id.to_ascii_lowercase();
        let (seed, anchor) = (self.seed, self.anchor);
        self.mailboxes.entry(key).or_insert_with(|| {
            let mut mailbox = Mailbox::new(tenant, owner, seed);
            seed::seed(&mut mailbox, tenant, seed, anchor);
            mailbox
        })
    }

    /// A mailbox by owner object id, if it was created already.
    pub fn existing(&mut self, user_id: &str) -> Option<&mut Mailbox> {
        self.mailboxes.get_mut(&user_id.to_ascii_lowercase())
    }
}

/// Whether tenant user `u` has an Exchange Online mailbox: members do, B2B guests do not.
pub(crate) fn has_mailbox(tenant: &Tenant, u: usize) -> bool {
    tenant.users[u].user_type == "Member"
}
