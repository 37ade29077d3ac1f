//! OneDrive for Business and SharePoint document libraries: drives, driveItems, sites,
//! upload sessions, copy jobs and the per-drive change log that delta reads.
//!
//! Everything lives in one `FileStore` behind a mutex next to the tenant (lock order: tenant,
//! then files); Graph handlers (`graph::files`) lock it synchronously and never across an
//! `.await`. File bytes live on disk in a temp dir the store owns (removed when the emulator
//! is dropped): request bodies stream into it and downloads stream out of it, so multi-GB
//! files never sit in memory. Seeded files are generated on demand from their seed (only
//! their hashes are kept) and written to disk the first time someone downloads or copies
//! them.
//!
//! Seeded data is a pure function of `(users, seed)`, drawn from streams of its own (hashes
//! of the seed and a label), so it never disturbs the directory, mail or calendar seeding.
//! A user's OneDrive is created (and seeded) the first time anything touches it, so a
//! 10,000-user tenant allocates nothing for drives nobody opens.
//!
//! Delta: every change takes the drive's next sequence number (`seq`); an item's `ord` is
//! fixed at creation and renumbered only when a move puts it under a folder created after it,
//! so a parent's `ord` is always below its children's. A delta round lists the items and
//! tombstones whose `seq` lies in `(since, upto]`, ordered by `ord` (parents before children),
//! paged by the last `ord` sent.

pub(crate) mod quickxor;
mod seed;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::tenant::{SplitMix64, Tenant};

/// The SharePoint Online hostname of the tenant's sites.
pub const SHAREPOINT_HOSTNAME: &str = "kestrelridge.sharepoint.com";
/// The hostname of the tenant's OneDrive for Business sites ("my sites").
pub const ONEDRIVE_HOSTNAME: &str = "kestrelridge-my.sharepoint.com";
/// Server-relative paths of the seeded sites.
pub const ROOT_SITE_PATH: &str = "/";
pub const FINANCE_SITE_PATH: &str = "/sites/finance";
pub const CONTRACTS_SITE_PATH: &str = "/sites/contracts";
pub const ENGINEERING_SITE_PATH: &str = "/sites/engineering";
pub const MARKETING_SITE_PATH: &str = "/sites/marketing";
/// Every drive's quota until changed (`Emulator::set_drive_quota`): 1 TiB.
pub const DEFAULT_DRIVE_QUOTA: u64 = 1 << 40;
/// The demo user's folder of generated reports and how many files it holds (plus the
/// `Archive` subfolder).
pub const DEMO_REPORTS_FOLDER: &str = "Reports";
pub const DEMO_REPORT_COUNT: usize = 100;
/// How many distinct tenant members author the demo user's reports.
pub const DEMO_REPORT_AUTHORS: usize = 25;

/// Who created or changed an item: `{"user": …}` or `{"application": …}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Identity {
    User {
        id: String,
        display_name: String,
        email: String,
    },
    App {
        id: String,
        display_name: String,
    },
    /// SharePoint's "System Account" (library drives' owner and creator).
    System,
}

impl Identity {
    pub(crate) fn of_user(tenant: &Tenant, u: usize) -> Identity {
        let user = &tenant.users[u];
        Identity::User {
            id: user.id.clone(),
            display_name: user.display_name.clone(),
            email: user
                .mail
                .clone()
                .unwrap_or_else(|| user.user_principal_name.clone()),
        }
    }

    pub(crate) fn json(&self) -> Value {
        match self {
            Identity::User {
                id,
                display_name,
                email,
            } => json!({"user": {"id": id, "displayName": display_name, "email": email}}),
            Identity::App { id, display_name } => {
                json!({"application": {"id": id, "displayName": display_name}})
            }
            Identity::System => json!({"user": {"displayName": "System Account"}}),
        }
    }
}

/// A file on disk in the store's directory, removed when the last item (or download) that
/// uses it lets go.
#[derive(Debug)]
pub(crate) struct DiskFile {
    pub path: PathBuf,
}

impl Drop for DiskFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// What generated content looks like, by the extension it was seeded with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Style {
    Text,
    Pdf,
    Office,
    Png,
    Binary,
}

/// Where a file's bytes are.
#[derive(Clone, Debug)]
pub(crate) enum Blob {
    /// Generated from this seed on demand (`seed::content`).
    Seeded {
        source: u64,
        style: Style,
    },
    Disk(Arc<DiskFile>),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Hashes {
    pub quick_xor: String,
    pub sha1: String,
    pub sha256: String,
}

/// The three hashes Graph reports, computed as bytes stream through.
#[derive(Clone)]
pub(crate) struct Hasher {
    quick_xor: quickxor::QuickXor,
    sha1: aws_lc_rs::digest::Context,
    sha256: aws_lc_rs::digest::Context,
}

impl Default for Hasher {
    fn default() -> Self {
        Hasher {
            quick_xor: quickxor::QuickXor::new(),
            sha1: aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY),
            sha256: aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256),
        }
    }
}

impl Hasher {
    pub(crate) fn update(&mut self, data: &[u8]) {
        self.quick_xor.update(data);
        self.sha1.update(data);
        self.sha256.update(data);
    }

    pub(crate) fn finish(self) -> Hashes {
        let hex = |d: aws_lc_rs::digest::Digest| {
            d.as_ref()
                .iter()
                .map(|b| format!("{b:02X}"))
                .collect::<String>()
        };
        Hashes {
            quick_xor: self.quick_xor.base64(),
            sha1: hex(self.sha1.finish()),
            sha256: hex(self.sha256.finish()),
        }
    }

    pub(crate) fn of(data: &[u8]) -> Hashes {
        let mut h = Hasher::default();
        h.update(data);
        h.finish()
    }
}

#[derive(Clone, Debug)]
pub(crate) struct FileData {
    pub mime: String,
    pub hashes: Hashes,
    pub blob: Blob,
}

#[derive(Clone, Debug)]
pub(crate) enum ItemKind {
    Folder { children: Vec<String> },
    File(FileData),
}

#[derive(Clone, Debug)]
pub(crate) struct Item {
    pub id: String,
    pub name: String,
    /// `None` for the root.
    pub parent: Option<String>,
    pub created: i64,
    pub modified: i64,
    pub created_by: Identity,
    pub modified_by: Identity,
    /// The GUID of `eTag`/`cTag` (upper case, with braces added when rendered).
    pub guid: String,
    /// `eTag`'s counter: every change of the item, and of a folder's contents.
    pub version: u64,
    /// `cTag`'s counter: content changes only.
    pub content_version: u64,
    /// The drive sequence number of the last change (delta).
    pub seq: u64,
    /// Delta order: below every descendant's.
    pub ord: u64,
    /// Files: their length; folders: the total of everything below them.
    pub size: u64,
    pub kind: ItemKind,
}

impl Item {
    pub fn is_folder(&self) -> bool {
        matches!(self.kind, ItemKind::Folder { .. })
    }

    pub fn children(&self) -> &[String] {
        match &self.kind {
            ItemKind::Folder { children } => children,
            ItemKind::File(_) => &[],
        }
    }

    pub fn file(&self) -> Option<&FileData> {
        match &self.kind {
            ItemKind::File(f) => Some(f),
            ItemKind::Folder { .. } => None,
        }
    }

    pub fn etag(&self) -> String {
        format!("\"{{{}}},{}\"", self.guid, self.version)
    }

    pub fn ctag(&self) -> String {
        format!("\"c:{{{}}},{}\"", self.guid, self.content_version)
    }
}

/// What delta reports for a deleted item.
#[derive(Clone, Debug)]
pub(crate) struct Tombstone {
    pub id: String,
    pub name: String,
    pub parent_id: String,
    /// `/drive/root:` + the parent's path at deletion time.
    pub parent_path: String,
    pub folder: bool,
    pub seq: u64,
    pub ord: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum DriveOwner {
    /// A user's OneDrive (the user's index in the tenant).
    User(usize),
    /// A document library of a site.
    Site(usize),
}

#[derive(Debug)]
pub(crate) struct Drive {
    pub id: String,
    pub owner: DriveOwner,
    pub name: String,
    pub description: String,
    pub web_url: String,
    pub created: i64,
    pub created_by: Identity,
    pub quota_total: u64,
    /// Bytes of all files.
    pub used: u64,
    pub root: String,
    pub items: HashMap<String, Item>,
    pub next_seq: u64,
    pub next_ord: u64,
    pub tombstones: Vec<Tombstone>,
    /// The owner's identity (`owner`).
    pub owner_identity: Identity,
}

impl Drive {
    pub fn drive_type(&self) -> &'static str {
        match self.owner {
            DriveOwner::User(_) => "business",
            DriveOwner::Site(_) => "documentLibrary",
        }
    }

    /// A short, stable fingerprint of the drive id that delta tokens carry.
    pub fn key(&self) -> String {
        let digest = Sha256::digest(self.id.as_bytes());
        digest[..6].iter().map(|b| format!("{b:02x}")).collect()
    }

    pub fn item(&self, id: &str) -> Option<&Item> {
        self.items.get(id)
    }

    /// The last change: the root's `lastModifiedDateTime` is the drive's.
    pub fn modified(&self) -> i64 {
        self.items
            .get(&self.root)
            .map_or(self.created, |r| r.modified.max(self.created))
    }

    fn bump(&mut self) -> u64 {
        self.next_seq += 1;
        self.next_seq
    }

    fn new_ord(&mut self) -> u64 {
        self.next_ord += 1;
        self.next_ord
    }

    /// The current change number (what a delta round reads up to).
    pub fn seq(&self) -> u64 {
        self.next_seq
    }

    /// A child of `parent` by name, case-insensitively (as OneDrive compares names).
    pub fn child_named(&self, parent: &str, name: &str) -> Option<&str> {
        self.items.get(parent)?.children().iter().find_map(|c| {
            self.items
                .get(c)
                .filter(|i| i.name.eq_ignore_ascii_case(name))
                .map(|i| i.id.as_str())
        })
    }

    /// The names from below the root down to `id` (empty for the root).
    pub fn path_names(&self, id: &str) -> Vec<String> {
        let mut names = Vec::new();
        let mut cur = self.items.get(id);
        while let Some(item) = cur {
            let Some(parent) = &item.parent else { break };
            names.push(item.name.clone());
            cur = self.items.get(parent);
        }
        names.reverse();
        names
    }

    /// `/drive/root:` + `/a/b` for the folder `id` (what its children's
    /// `parentReference.path` says).
    pub fn graph_path(&self, id: &str) -> String {
        let mut path = "/drive/root:".to_string();
        for name in self.path_names(id) {
            path.push('/');
            path.push_str(&name);
        }
        path
    }

    /// Whether `id` is `ancestor` or below it.
    pub fn is_within(&self, id: &str, ancestor: &str) -> bool {
        let mut cur = Some(id.to_string());
        while let Some(c) = cur {
            if c == ancestor {
                return true;
            }
            cur = self.items.get(&c).and_then(|i| i.parent.clone());
        }
        false
    }

    /// `id` and everything below it, parents before children.
    pub fn subtree(&self, id: &str) -> Vec<String> {
        let mut out = Vec::new();
        let mut stack = vec![id.to_string()];
        while let Some(c) = stack.pop() {
            if let Some(item) = self.items.get(&c) {
                for child in item.children().iter().rev() {
                    stack.push(child.clone());
                }
            }
            out.push(c);
        }
        out
    }

    /// A new change on every folder from the root down to `folder`: their `eTag`s move
    /// (their contents changed) and delta reports them again.
    fn touch_chain(&mut self, folder: &str) {
        let mut chain = Vec::new();
        let mut cur = Some(folder.to_string());
        while let Some(c) = cur {
            cur = self.items.get(&c).and_then(|i| i.parent.clone());
            chain.push(c);
        }
        for id in chain.into_iter().rev() {
            let seq = self.bump();
            if let Some(item) = self.items.get_mut(&id) {
                item.version += 1;
                item.seq = seq;
            }
        }
    }

    /// Adds `delta` bytes to `folder` and every folder above it.
    fn add_size(&mut self, folder: &str, delta: i128) {
        let mut cur = Some(folder.to_string());
        while let Some(c) = cur {
            cur = match self.items.get_mut(&c) {
                Some(item) => {
                    item.size = clamp(i128::from(item.size) + delta);
                    item.parent.clone()
                }
                None => None,
            };
        }
    }

    /// Inserts a new item under its parent (which must exist and be a folder): sizes,
    /// quota use, change numbers.
    pub(crate) fn insert(&mut self, mut item: Item) -> String {
        let parent = item.parent.clone().expect("only the root has no parent");
        self.touch_chain(&parent);
        item.seq = self.bump();
        item.ord = self.new_ord();
        let id = item.id.clone();
        let size = item.size;
        if item.file().is_some() {
            self.used += size;
        }
        if let Some(ItemKind::Folder { children }) =
            self.items.get_mut(&parent).map(|p| &mut p.kind)
        {
            children.push(id.clone());
        }
        self.items.insert(id.clone(), item);
        self.add_size(&parent, i128::from(size));
        id
    }

    /// Replaces a file's bytes.
    pub(crate) fn replace_content(
        &mut self,
        id: &str,
        data: FileData,
        size: u64,
        who: &Identity,
        now: i64,
    ) {
        let Some(item) = self.items.get(id) else {
            return;
        };
        let old = item.size;
        let parent = item.parent.clone();
        if let Some(parent) = &parent {
            self.touch_chain(parent);
            self.add_size(parent, i128::from(size) - i128::from(old));
        }
        self.used = clamp(i128::from(self.used) + i128::from(size) - i128::from(old));
        let seq = self.bump();
        if let Some(item) = self.items.get_mut(id) {
            item.kind = ItemKind::File(data);
            item.size = size;
            item.version += 1;
            item.content_version += 1;
            item.seq = seq;
            item.modified = now;
            item.modified_by = who.clone();
        }
    }

    /// Renames and/or moves an item (checks are the caller's).
    pub(crate) fn update(
        &mut self,
        id: &str,
        name: Option<&str>,
        new_parent: Option<&str>,
        who: &Identity,
        now: i64,
    ) {
        let Some(item) = self.items.get(id) else {
            return;
        };
        let old_parent = item.parent.clone().unwrap_or_default();
        let size = item.size;
        let moving = new_parent.is_some_and(|p| p != old_parent);
        if moving {
            let new_parent = new_parent.unwrap_or_default().to_string();
            // Out of the old folder.
            if let Some(ItemKind::Folder { children }) =
                self.items.get_mut(&old_parent).map(|p| &mut p.kind)
            {
                children.retain(|c| c != id);
            }
            self.add_size(&old_parent, -i128::from(size));
            self.touch_chain(&old_parent);
            // Into the new one.
            if let Some(ItemKind::Folder { children }) =
                self.items.get_mut(&new_parent).map(|p| &mut p.kind)
            {
                children.push(id.to_string());
            }
            self.add_size(&new_parent, i128::from(size));
            self.touch_chain(&new_parent);
            let parent_ord = self.items.get(&new_parent).map_or(0, |p| p.ord);
            let renumber = self.items.get(id).is_some_and(|i| i.ord < parent_ord);
            if let Some(item) = self.items.get_mut(id) {
                item.parent = Some(new_parent);
            }
            // Everything below changed path: report it again, keeping parents first.
            for sub in self.subtree(id) {
                let seq = self.bump();
                let ord = if renumber { Some(self.new_ord()) } else { None };
                if let Some(item) = self.items.get_mut(&sub) {
                    item.seq = seq;
                    if let Some(ord) = ord {
                        item.ord = ord;
                    }
                }
            }
        } else {
            self.touch_chain(&old_parent);
        }
        let seq = self.bump();
        if let Some(item) = self.items.get_mut(id) {
            if let Some(name) = name {
                item.name = name.to_string();
            }
            item.version += 1;
            item.seq = seq;
            item.modified = now;
            item.modified_by = who.clone();
        }
    }

    /// Deletes an item and everything below it, leaving tombstones for delta.
    pub(crate) fn delete(&mut self, id: &str) {
        let Some(item) = self.items.get(id) else {
            return;
        };
        let Some(parent) = item.parent.clone() else {
            return;
        };
        let size = item.size;
        let subtree = self.subtree(id);
        for sub in &subtree {
            let seq = self.bump();
            let parent_path = self
                .items
                .get(sub)
                .and_then(|i| i.parent.clone())
                .map(|p| self.graph_path(&p))
                .unwrap_or_default();
            if let Some(i) = self.items.get(sub) {
                self.tombstones.push(Tombstone {
                    id: i.id.clone(),
                    name: i.name.clone(),
                    parent_id: i.parent.clone().unwrap_or_default(),
                    parent_path,
                    folder: i.is_folder(),
                    seq,
                    ord: i.ord,
                });
            }
        }
        let mut freed = 0u64;
        for sub in &subtree {
            if let Some(i) = self.items.remove(sub)
                && i.file().is_some()
            {
                freed += i.size;
            }
        }
        self.used = self.used.saturating_sub(freed);
        if let Some(ItemKind::Folder { children }) =
            self.items.get_mut(&parent).map(|p| &mut p.kind)
        {
            children.retain(|c| c != id);
        }
        self.add_size(&parent, -i128::from(size));
        self.touch_chain(&parent);
    }
}

fn clamp(v: i128) -> u64 {
    u64::try_from(v.max(0)).unwrap_or(u64::MAX)
}

/// A site (site collection with its root web).
#[derive(Debug)]
pub(crate) struct Site {
    /// Server-relative: `/` or `/sites/finance`.
    pub path: String,
    pub name: String,
    pub display_name: String,
    pub description: String,
    pub collection_guid: String,
    pub web_guid: String,
    pub created: i64,
    pub modified: i64,
    /// Its document libraries, the default ("Documents") first.
    pub drives: Vec<usize>,
    /// `Sites.Selected` grants: (app id lower-case, may write).
    pub grants: Vec<(String, bool)>,
}

impl Site {
    pub fn id(&self) -> String {
        format!(
            "{SHAREPOINT_HOSTNAME},{},{}",
            self.collection_guid, self.web_guid
        )
    }

    pub fn web_url(&self) -> String {
        if self.path == "/" {
            format!("https://{SHAREPOINT_HOSTNAME}")
        } else {
            format!("https://{SHAREPOINT_HOSTNAME}{}", self.path)
        }
    }

    pub fn is_root(&self) -> bool {
        self.path == "/"
    }

    /// What `Sites.Selected` grants `app_id` here: `None`, `Some(false)` read,
    /// `Some(true)` write.
    pub fn grant_of(&self, app_id: &str) -> Option<bool> {
        self.grants
            .iter()
            .filter(|(a, _)| a.eq_ignore_ascii_case(app_id))
            .map(|(_, w)| *w)
            .reduce(|a, b| a || b)
    }
}

/// `@microsoft.graph.conflictBehavior`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Conflict {
    Fail,
    Replace,
    Rename,
}

impl Conflict {
    pub(crate) fn parse(v: &str) -> Option<Conflict> {
        match v.trim().to_ascii_lowercase().as_str() {
            "fail" => Some(Conflict::Fail),
            "replace" => Some(Conflict::Replace),
            "rename" => Some(Conflict::Rename),
            _ => None,
        }
    }
}

/// Where an upload session's file goes.
#[derive(Clone, Debug)]
pub(crate) enum SessionTarget {
    /// `items/{item-id}/createUploadSession`: new bytes for this file.
    Replace { item: String },
    /// Under `parent`, through `path` (missing folders are created; the last name is the
    /// file's).
    New { parent: String, path: Vec<String> },
}

#[derive(Clone)]
pub(crate) struct UploadSession {
    pub drive: usize,
    pub target: SessionTarget,
    pub conflict: Conflict,
    pub defer_commit: bool,
    /// `item.fileSize` at creation.
    pub file_size: Option<u64>,
    /// The total of the first fragment's `Content-Range`.
    pub total: Option<u64>,
    /// Bytes received in order (the next expected byte).
    pub received: u64,
    pub part: Arc<DiskFile>,
    /// Hashes of the `received` bytes.
    pub hasher: Hasher,
    pub expires: i64,
    pub who: Identity,
    /// One request at a time writes a session.
    pub writer: Arc<tokio::sync::Mutex<()>>,
}

/// A copy started by `POST …/copy`, performed at the monitor's first poll.
#[derive(Clone, Debug)]
pub(crate) struct CopyJob {
    pub source_drive: usize,
    pub source: String,
    pub dest_drive: usize,
    pub dest_parent: String,
    pub name: Option<String>,
    pub conflict: Conflict,
    pub who: Identity,
    pub now: i64,
    /// `None` until performed: then the new item id or the error (code, message).
    pub result: Option<Result<String, (&'static str, String)>>,
}

pub(crate) struct FileStore {
    seed: u64,
    dir: tempfile::TempDir,
    next_file: u64,
    rng: SplitMix64,
    pub drives: Vec<Drive>,
    drive_by_id: HashMap<String, usize>,
    /// Drive id → user index for every member's (possibly not yet created) OneDrive; built
    /// on the first lookup of an unknown drive id.
    user_drive_ids: Option<HashMap<String, usize>>,
    user_drives: HashMap<usize, usize>,
    pub sites: Vec<Site>,
    pub sessions: HashMap<String, UploadSession>,
    pub jobs: HashMap<String, CopyJob>,
    /// Bumped by `expire-delta-tokens`: tokens of an older epoch get 410.
    pub delta_epoch: u64,
    /// Key of the download URLs' `tempauth` MACs.
    secret: [u8; 32],
}

/// Bytes of a hash of the seed and labels: the seeding streams.
pub(crate) fn digest(seed: u64, parts: &[&str]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"graph-emulator/files");
    h.update(seed.to_le_bytes());
    for p in parts {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p.as_bytes());
    }
    h.finalize().into()
}

/// A drive id: `b!` + 64 URL-safe characters, as SharePoint's look.
pub(crate) fn drive_id(seed: u64, parts: &[&str]) -> String {
    let a = digest(seed, parts);
    let mut more = parts.to_vec();
    more.push("more");
    let b = digest(seed, &more);
    let mut bytes = a.to_vec();
    bytes.extend_from_slice(&b[..16]);
    format!("b!{}", URL_SAFE_NO_PAD.encode(bytes))
}

/// `01` + 32 upper-case base32 characters, as OneDrive for Business item ids look.
pub(crate) fn item_id(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::from("01");
    let mut buffer = 0u32;
    let mut bits = 0;
    for &b in bytes.iter().take(20) {
        buffer = (buffer << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(ALPHABET[((buffer >> bits) & 31) as usize] as char);
        }
    }
    out
}

/// A GUID from 16 bytes, lower-case.
pub(crate) fn guid(bytes: &[u8]) -> String {
    let mut b = [0u8; 16];
    b.copy_from_slice(&bytes[..16]);
    uuid::Builder::from_random_bytes(b).into_uuid().to_string()
}

/// The OneDrive id of a user (deterministic, whether or not the drive exists yet).
pub(crate) fn user_drive_id(seed: u64, user_id: &str) -> String {
    drive_id(seed, &["personal", &user_id.to_ascii_lowercase()])
}

/// A user's OneDrive URL: `https://kestrelridge-my.sharepoint.com/personal/<upn with . and @
/// as _>/Documents`.
pub(crate) fn personal_web_url(upn: &str) -> String {
    let mangled: String = upn
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c == '.' || c == '@' { '_' } else { c })
        .collect();
    format!("https://{ONEDRIVE_HOSTNAME}/personal/{mangled}/Documents")
}

/// Whether a tenant user has a OneDrive: members do, B2B guests do not.
pub(crate) fn has_drive(tenant: &Tenant, u: usize) -> bool {
    tenant
        .users
        .get(u)
        .is_some_and(|user| user.user_type == "Member")
}

/// Why a name is refused, or `None` when OneDrive and SharePoint take it.
pub(crate) fn invalid_name(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("The name is empty.".into());
    }
    if let Some(c) = name.chars().find(|c| {
        matches!(c, '"' | '*' | ':' | '<' | '>' | '?' | '/' | '\\' | '|') || c.is_control()
    }) {
        return Some(format!(
            "The name '{name}' contains the character '{c}', which is not allowed."
        ));
    }
    if name.starts_with(' ') || name.ends_with(' ') {
        return Some(format!("The name '{name}' begins or ends with a space."));
    }
    if name.ends_with('.') {
        return Some(format!("The name '{name}' ends with a period."));
    }
    let lower = name.to_ascii_lowercase();
    let stem = lower.split('.').next().unwrap_or_default();
    let reserved = matches!(stem, "con" | "prn" | "aux" | "nul")
        || ((stem.starts_with("com") || stem.starts_with("lpt"))
            && stem.len() == 4
            && stem.as_bytes()[3].is_ascii_digit());
    if reserved || lower == ".lock" || lower == "desktop.ini" {
        return Some(format!("The name '{name}' is reserved."));
    }
    if lower.contains("_vti_") {
        return Some(format!(
            "The name '{name}' contains '_vti_', which is not allowed."
        ));
    }
    if name.starts_with("~$") {
        return Some(format!(
            "The name '{name}' begins with '~$', which is not allowed."
        ));
    }
    None
}

/// `report.pdf` → `report 1.pdf`, `report 2.pdf`, … (folders: `Reports 1`).
pub(crate) fn numbered_name(name: &str, n: u64, folder: bool) -> String {
    let split = if folder {
        None
    } else {
        name.rfind('.').filter(|&i| i > 0)
    };
    match split {
        Some(i) => format!("{} {n}{}", &name[..i], &name[i..]),
        None => format!("{name} {n}"),
    }
}

/// The content type of a file by its extension.
pub(crate) fn guess_mime(name: &str) -> &'static str {
    let ext = name
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    match ext.as_str() {
        "pdf" => "application/pdf",
        "txt" | "log" | "md" => "text/plain",
        "csv" => "text/csv",
        "json" => "application/json",
        "html" | "htm" => "text/html",
        "xml" => "application/xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "zip" => "application/zip",
        "docx" => "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "xlsx" => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "pptx" => "application/vnd.openxmlformats-officedocument.presentationml.presentation",
        _ => "application/octet-stream",
    }
}

impl FileStore {
    /// The store with its sites and libraries seeded; OneDrives come on first access.
    pub(crate) fn new(seed: u64, tenant: &Tenant) -> std::io::Result<FileStore> {
        let dir = tempfile::Builder::new()
            .prefix("graph-emulator-files-")
            .tempdir()?;
        let mut secret = [0u8; 32];
        secret[..16].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
        secret[16..].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
        let mut store = FileStore {
            seed,
            dir,
            next_file: 0,
            rng: SplitMix64::new(seed ^ 0x0F11_E5D2_17E5_0001),
            drives: Vec::new(),
            drive_by_id: HashMap::new(),
            user_drive_ids: None,
            user_drives: HashMap::new(),
            sites: Vec::new(),
            sessions: HashMap::new(),
            jobs: HashMap::new(),
            delta_epoch: 0,
            secret,
        };
        seed::sites(&mut store, tenant);
        Ok(store)
    }

    pub(crate) fn seed(&self) -> u64 {
        self.seed
    }

    pub(crate) fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// A fresh path in the store's directory.
    pub(crate) fn new_path(&mut self, kind: &str) -> PathBuf {
        self.next_file += 1;
        self.dir.path().join(format!("{kind}-{}", self.next_file))
    }

    /// A new id for an item created at runtime.
    pub(crate) fn new_item_id(&mut self) -> String {
        let mut bytes = [0u8; 24];
        for chunk in bytes.chunks_mut(8) {
            chunk.copy_from_slice(&self.rng.next_u64().to_le_bytes());
        }
        item_id(&bytes)
    }

    /// A new upper-case GUID for an item's tags.
    pub(crate) fn new_guid(&mut self) -> String {
        let mut bytes = [0u8; 16];
        bytes[..8].copy_from_slice(&self.rng.next_u64().to_le_bytes());
        bytes[8..].copy_from_slice(&self.rng.next_u64().to_le_bytes());
        guid(&bytes).to_ascii_uppercase()
    }

    /// An opaque random token (upload sessions, copy jobs).
    pub(crate) fn random_token(&mut self) -> String {
        let mut bytes = Vec::with_capacity(32);
        bytes.extend_from_slice(uuid::Uuid::new_v4().as_bytes());
        bytes.extend_from_slice(uuid::Uuid::new_v4().as_bytes());
        URL_SAFE_NO_PAD.encode(bytes)
    }

    pub(crate) fn add_drive(&mut self, drive: Drive) -> usize {
        let index = self.drives.len();
        self.drive_by_id.insert(drive.id.clone(), index);
        self.drives.push(drive);
        index
    }

    /// The user's OneDrive, created and seeded on first use. `None` for guests.
    pub(crate) fn user_drive(&mut self, tenant: &Tenant, u: usize) -> Option<usize> {
        if !has_drive(tenant, u) {
            return None;
        }
        if let Some(&d) = self.user_drives.get(&u) {
            return Some(d);
        }
        let d = seed::personal_drive(self, tenant, u);
        self.user_drives.insert(u, d);
        Some(d)
    }

    /// A drive by id (a user's OneDrive is created on demand).
    pub(crate) fn drive_by_id(&mut self, tenant: &Tenant, id: &str) -> Option<usize> {
        if let Some(&d) = self.drive_by_id.get(id) {
            return Some(d);
        }
        if !id.starts_with("b!") {
            return None;
        }
        let seed = self.seed;
        let index = self.user_drive_ids.get_or_insert_with(|| {
            (0..tenant.users.len())
                .filter(|&u| has_drive(tenant, u))
                .map(|u| (user_drive_id(seed, &tenant.users[u].id), u))
                .collect()
        });
        let u = *index.get(id)?;
        self.user_drive(tenant, u)
    }

    /// A site by its server-relative path (`/`, `/sites/finance`; case-insensitive,
    /// trailing slash ignored).
    pub(crate) fn site_by_path(&self, path: &str) -> Option<usize> {
        let trimmed = path.trim();
        let trimmed = if trimmed.len() > 1 {
            trimmed.trim_end_matches('/')
        } else {
            trimmed
        };
        let wanted = if trimmed.is_empty() { "/" } else { trimmed };
        self.sites
            .iter()
            .position(|s| s.path.eq_ignore_ascii_case(wanted))
    }

    /// A site by `{hostname},{collection},{web}`, the hostname alone (the root site), or
    /// `{collection},{web}`.
    pub(crate) fn site_by_id(&self, id: &str) -> Option<usize> {
        let id = id.trim();
        if id.eq_ignore_ascii_case(SHAREPOINT_HOSTNAME) {
            return self.site_by_path("/");
        }
        let parts: Vec<&str> = id.split(',').map(str::trim).collect();
        let (collection, web) = match parts.as_slice() {
            [host, c, w] if host.eq_ignore_ascii_case(SHAREPOINT_HOSTNAME) => (*c, *w),
            [c, w] => (*c, *w),
            _ => return None,
        };
        self.sites.iter().position(|s| {
            s.collection_guid.eq_ignore_ascii_case(collection)
                && s.web_guid.eq_ignore_ascii_case(web)
        })
    }

    /// A library of a site by name (`Documents`, `Invoices`), case-insensitive.
    pub(crate) fn site_library(&self, site: usize, name: &str) -> Option<usize> {
        self.sites.get(site)?.drives.iter().copied().find(|&d| {
            self.drives[d].name.eq_ignore_ascii_case(name)
                || (name.eq_ignore_ascii_case("Shared Documents")
                    && self.drives[d].name == "Documents")
        })
    }

    /// The file's bytes on disk, writing seeded content out first.
    pub(crate) fn disk_file(&mut self, d: usize, id: &str) -> std::io::Result<Arc<DiskFile>> {
        let (source, style, size) = match self.drives[d].items.get(id).map(|i| (&i.kind, i.size)) {
            Some((ItemKind::File(f), size)) => match &f.blob {
                Blob::Disk(file) => return Ok(Arc::clone(file)),
                Blob::Seeded { source, style } => (*source, *style, size),
            },
            _ => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "no such file",
                ));
            }
        };
        let bytes = seed::content(source, style, usize::try_from(size).unwrap_or(0));
        let path = self.new_path("blob");
        std::fs::write(&path, &bytes)?;
        let file = Arc::new(DiskFile { path });
        if let Some(ItemKind::File(f)) = self.drives[d].items.get_mut(id).map(|i| &mut i.kind) {
            f.blob = Blob::Disk(Arc::clone(&file));
        }
        Ok(file)
    }

    /// The `tempauth` of a download URL: a nonce, the expiry, the drive and a MAC binding
    /// them to the item id.
    pub(crate) fn tempauth(&self, d: usize, id: &str, expires: i64) -> String {
        let mut payload = Vec::with_capacity(40);
        payload.extend_from_slice(&uuid::Uuid::new_v4().as_bytes()[..8]);
        payload.extend_from_slice(&expires.to_be_bytes());
        payload.extend_from_slice(&(d as u32).to_be_bytes());
        let mac = self.mac(&payload, id);
        payload.extend_from_slice(&mac);
        URL_SAFE_NO_PAD.encode(payload)
    }

    /// Checks a `tempauth` for an item id: the drive index, if valid and unexpired.
    pub(crate) fn check_tempauth(&self, token: &str, id: &str, now: i64) -> Option<usize> {
        let bytes = URL_SAFE_NO_PAD.decode(token.trim()).ok()?;
        if bytes.len() != 8 + 8 + 4 + 16 {
            return None;
        }
        let (payload, mac) = bytes.split_at(20);
        if self.mac(payload, id) != mac {
            return None;
        }
        let expires = i64::from_be_bytes(payload[8..16].try_into().ok()?);
        let d = u32::from_be_bytes(payload[16..20].try_into().ok()?) as usize;
        (now <= expires && d < self.drives.len()).then_some(d)
    }

    fn mac(&self, payload: &[u8], id: &str) -> [u8; 16] {
        let mut h = Sha256::new();
        h.update(self.secret);
        h.update(payload);
        h.update(id.as_bytes());
        let digest = h.finalize();
        let mut out = [0u8; 16];
        out.copy_from_slice(&digest[..16]);
        out
    }

    /// Sessions past their expiry are dropped (with their partial files).
    pub(crate) fn sweep_sessions(&mut self, now: i64) {
        self.sessions.retain(|_, s| s.expires >= now);
    }
}
