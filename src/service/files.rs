//! Files: OneDrive and SharePoint document libraries — drives, sites, items, paging,
//! delta, and the writes that do not move file content (folders, rename, move, copy,
//! delete). Content transfer (downloads, uploads) is in `files_transfer.rs`.
//!
//! A drive is named by a reference the caller understands and the policy can check
//! before any Graph call: `me`, `user:<id or UPN>` (that user's OneDrive, checked against
//! `resources`), `site:<site id or host:/path>` (the site's default library, checked
//! against `sites`), or a Graph drive id (checked against the drives of the caller's
//! users and sites, or allowed when both lists are `"*"`). After the check every Graph URL
//! is built on `/drives/{id}`, which is also how writes evict what they made stale.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::ToSchema;

use super::paging::{check_first, decode_delta_token};
use super::policy::{Decision, site_url};
use super::{Page, ServiceError, Session};
use crate::graph::models;
use crate::graph::{GraphGet, GraphUrl, GraphWrite};

/// Drive properties fetched (one list, so every lookup of a drive shares a cache entry).
const DRIVE_FIELDS: &[&str] = &[
    "id",
    "name",
    "description",
    "driveType",
    "webUrl",
    "owner",
    "quota",
    "createdDateTime",
    "lastModifiedDateTime",
];
const SITE_FIELDS: &[&str] = &[
    "id",
    "name",
    "displayName",
    "description",
    "webUrl",
    "createdDateTime",
    "lastModifiedDateTime",
];
/// Item properties fetched (the same for every item request, so they share cache entries).
const ITEM_FIELDS: &[&str] = &[
    "id",
    "name",
    "size",
    "eTag",
    "cTag",
    "webUrl",
    "createdDateTime",
    "lastModifiedDateTime",
    "createdBy",
    "lastModifiedBy",
    "parentReference",
    "file",
    "folder",
    "root",
];
/// Selected besides [`ITEM_FIELDS`] when a gateway download link is wanted; such answers
/// hold a credential and bypass the cache.
const DOWNLOAD_URL_FIELD: &str = "@microsoft.graph.downloadUrl";
/// Longest item path (SharePoint's limit for a decoded path).
const MAX_PATH: usize = 400;
/// Longest item name.
const MAX_NAME: usize = 255;
/// Largest delta page a caller may ask for.
const MAX_DELTA_PAGE: usize = 1000;
/// How long a copy's monitor is polled at most, within the request's deadline.
const COPY_POLL_MAX: Duration = Duration::from_secs(2);

/// A drive as the caller names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DriveRef {
    /// The OneDrive of the user the caller acts for.
    Me,
    /// A user's OneDrive, by object id or user principal name.
    User(String),
    /// A site's default document library, by site id or `host:/path`.
    Site(String),
    /// A drive by its Graph id.
    Id(String),
    /// One of a site's libraries (as listed by `Site.drives`): allowed when the site is,
    /// and the id is one of the site's drives.
    SiteLibrary { site: String, id: String },
}

impl DriveRef {
    pub fn parse(text: &str) -> Result<Self, ServiceError> {
        let bad = |why: &str| ServiceError::BadInput(format!("drive '{text}': {why}"));
        if text.is_empty() || text.len() > 512 || text.chars().any(char::is_control) {
            return Err(bad(
                "name a drive as me, user:<id or UPN>, site:<site id or host:/path>, or a drive id",
            ));
        }
        if text.eq_ignore_ascii_case("me") {
            return Ok(DriveRef::Me);
        }
        if let Some(user) = text.strip_prefix("user:") {
            return if user.is_empty() {
                Err(bad("user: needs an id or user principal name"))
            } else {
                Ok(DriveRef::User(user.to_owned()))
            };
        }
        if let Some(site) = text.strip_prefix("site:") {
            return if crate::auth::SiteResources::is_site_ref(site) {
                Ok(DriveRef::Site(site.to_owned()))
            } else {
                Err(bad(
                    "site: needs a site id (host,guid,guid) or host:/server-relative-path",
                ))
            };
        }
        if text
            .chars()
            .any(|c| c.is_whitespace() || matches!(c, '/' | '\\' | '?' | '#' | '%'))
        {
            return Err(bad("not a drive id"));
        }
        Ok(DriveRef::Id(text.to_owned()))
    }
}

/// An item within a drive.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ItemRef {
    Root,
    Id(String),
    /// Path segments below the root, each a checked name.
    Path(Vec<String>),
}

impl ItemRef {
    /// A path such as `/Reports/2026/q1.pdf` (leading and trailing `/` optional; `/` or
    /// empty is the root). Each segment must be a valid name: `..`, reserved names and
    /// illegal characters are refused here, before any Graph call.
    pub fn path(path: &str) -> Result<Self, ServiceError> {
        if path.chars().count() > MAX_PATH {
            return Err(ServiceError::BadInput(format!(
                "a path may have at most {MAX_PATH} characters"
            )));
        }
        let trimmed = path.trim_matches('/');
        if trimmed.is_empty() {
            return Ok(ItemRef::Root);
        }
        let segments: Vec<String> = trimmed.split('/').map(str::to_owned).collect();
        for segment in &segments {
            check_name(segment)
                .map_err(|why| ServiceError::BadInput(format!("path '{path}': {why}")))?;
        }
        Ok(ItemRef::Path(segments))
    }

    pub fn id(id: &str) -> Result<Self, ServiceError> {
        if id.is_empty()
            || id.len() > 256
            || id
                .chars()
                .any(|c| c.is_control() || c.is_whitespace() || matches!(c, '/' | '\\' | ':'))
        {
            return Err(ServiceError::BadInput(format!("'{id}' is not an item id")));
        }
        Ok(ItemRef::Id(id.to_owned()))
    }

    /// The item's URL under a drive base.
    fn url(&self, base: &GraphUrl) -> Result<GraphUrl, ServiceError> {
        Ok(match self {
            ItemRef::Root => base.clone().then("root"),
            ItemRef::Id(id) => base.clone().then("items").id(id)?,
            ItemRef::Path(segments) => {
                let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
                base.clone().item_path("root", &segments)?
            }
        })
    }

    /// The URL of a child named `name` of this item (path addressing under it).
    pub(super) fn child_url(&self, base: &GraphUrl, name: &str) -> Result<GraphUrl, ServiceError> {
        Ok(match self {
            ItemRef::Root => base.clone().item_path("root", &[name])?,
            ItemRef::Id(id) => base.clone().then("items").item_path(id, &[name])?,
            ItemRef::Path(segments) => {
                let mut all: Vec<&str> = segments.iter().map(String::as_str).collect();
                all.push(name);
                base.clone().item_path("root", &all)?
            }
        })
    }
}

/// Checks a file or folder name against OneDrive's and SharePoint's rules, so a bad name
/// is refused with a clear message before any Graph call.
pub fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("a name cannot be empty (no empty path segments)".into());
    }
    if name == "." || name == ".." {
        return Err(format!("'{name}' is not allowed (no relative paths)"));
    }
    if name.chars().count() > MAX_NAME {
        return Err(format!("a name may have at most {MAX_NAME} characters"));
    }
    if let Some(c) = name.chars().find(|c| {
        c.is_control() || matches!(c, '"' | '*' | ':' | '<' | '>' | '?' | '/' | '\\' | '|')
    }) {
        return Err(format!(
            "'{}' contains {}, which names cannot contain (\" * : < > ? / \\ | or control characters)",
            name.escape_debug(),
            if c.is_control() {
                "a control character".to_owned()
            } else {
                format!("'{c}'")
            }
        ));
    }
    if name.starts_with(char::is_whitespace) || name.ends_with(char::is_whitespace) {
        return Err(format!("'{name}' begins or ends with a space"));
    }
    if name.ends_with('.') {
        return Err(format!("'{name}' ends with a dot"));
    }
    let lower = name.to_ascii_lowercase();
    let stem = lower.split('.').next().unwrap_or_default();
    let reserved_device = matches!(stem, "con" | "prn" | "aux" | "nul")
        || ((stem.starts_with("com") || stem.starts_with("lpt"))
            && stem.len() == 4
            && stem.as_bytes()[3].is_ascii_digit());
    if reserved_device || lower == ".lock" || lower == "desktop.ini" {
        return Err(format!("'{name}' is a reserved name"));
    }
    if lower.contains("_vti_") || name.starts_with("~$") {
        return Err(format!(
            "'{name}' is not allowed ('_vti_' anywhere, '~$' at the start)"
        ));
    }
    Ok(())
}

/// What happens when the name is taken.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ConflictBehavior {
    /// Refuse with `CONFLICT`.
    #[default]
    Fail,
    /// Overwrite (a new version of the file).
    Replace,
    /// Keep both: the new item gets a free name (`report 1.pdf`).
    Rename,
}

impl ConflictBehavior {
    pub(crate) fn graph_name(self) -> &'static str {
        match self {
            ConflictBehavior::Fail => "fail",
            ConflictBehavior::Replace => "replace",
            ConflictBehavior::Rename => "rename",
        }
    }
}

/// Order of a folder's children.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ItemOrder {
    NameAsc,
    NameDesc,
    LastModifiedAsc,
    LastModifiedDesc,
    SizeAsc,
    SizeDesc,
}

impl ItemOrder {
    fn odata(self) -> &'static str {
        match self {
            ItemOrder::NameAsc => "name asc",
            ItemOrder::NameDesc => "name desc",
            ItemOrder::LastModifiedAsc => "lastModifiedDateTime asc",
            ItemOrder::LastModifiedDesc => "lastModifiedDateTime desc",
            ItemOrder::SizeAsc => "size asc",
            ItemOrder::SizeDesc => "size desc",
        }
    }
}

/// Who created or changed something: a user, an application or a device.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Identity {
    /// `user`, `application` or `device`.
    pub kind: String,
    pub id: Option<String>,
    pub display_name: Option<String>,
    pub email: Option<String>,
}

impl Identity {
    fn from_graph(set: Option<models::IdentitySet>) -> Option<Self> {
        let set = set?;
        let (kind, who) = if let Some(user) = set.user {
            ("user", user)
        } else if let Some(app) = set.application {
            ("application", app)
        } else {
            ("device", set.device?)
        };
        Some(Identity {
            kind: kind.to_owned(),
            id: who.id,
            display_name: who.display_name,
            email: who.email,
        })
    }
}

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Quota {
    pub total: Option<i64>,
    pub used: Option<i64>,
    pub remaining: Option<i64>,
    /// `normal`, `nearing`, `critical` or `exceeded`.
    pub state: Option<String>,
}

/// A OneDrive or a document library.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Drive {
    pub id: String,
    pub name: Option<String>,
    pub description: Option<String>,
    /// `business`, `documentLibrary` or `personal`.
    pub drive_type: Option<String>,
    pub web_url: Option<String>,
    pub owner: Option<Identity>,
    pub quota: Option<Quota>,
    pub created_date_time: Option<String>,
    pub last_modified_date_time: Option<String>,
}

impl Drive {
    fn from_graph(d: models::Drive) -> Result<Self, ServiceError> {
        Ok(Drive {
            id: d.id.ok_or(ServiceError::UpstreamBadResponse)?,
            name: d.name,
            description: d.description,
            drive_type: d.drive_type,
            web_url: d.web_url,
            owner: Identity::from_graph(d.owner),
            quota: d.quota.map(|q| Quota {
                total: q.total,
                used: q.used,
                remaining: q.remaining,
                state: q.state,
            }),
            created_date_time: d.created_date_time,
            last_modified_date_time: d.last_modified_date_time,
        })
    }
}

/// A SharePoint site.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Site {
    /// `host,site-collection-id,web-id`.
    pub id: String,
    pub name: Option<String>,
    pub display_name: Option<String>,
    pub description: Option<String>,
    pub web_url: Option<String>,
    pub created_date_time: Option<String>,
    pub last_modified_date_time: Option<String>,
}

impl Site {
    fn from_graph(s: models::Site) -> Result<Self, ServiceError> {
        Ok(Site {
            id: s.id.ok_or(ServiceError::UpstreamBadResponse)?,
            name: s.name,
            display_name: s.display_name,
            description: s.description,
            web_url: s.web_url,
            created_date_time: s.created_date_time,
            last_modified_date_time: s.last_modified_date_time,
        })
    }
}

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Hashes {
    pub quick_xor_hash: Option<String>,
    pub sha1_hash: Option<String>,
    pub sha256_hash: Option<String>,
}

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct FileInfo {
    pub mime_type: Option<String>,
    pub hashes: Option<Hashes>,
}

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct FolderInfo {
    pub child_count: Option<u64>,
}

/// Where an item lives.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct ParentReference {
    pub drive_id: Option<String>,
    pub drive_type: Option<String>,
    /// The parent folder's id (absent on the root).
    pub id: Option<String>,
    /// The parent folder's path, `/drive/root:/Reports`.
    pub path: Option<String>,
    pub site_id: Option<String>,
}

/// A file or folder.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct DriveItem {
    pub id: String,
    pub name: Option<String>,
    pub size: Option<i64>,
    pub web_url: Option<String>,
    /// Changes whenever the item changes; give it as `If-Match` to write safely.
    pub e_tag: Option<String>,
    /// Changes when the content changes (files only).
    pub c_tag: Option<String>,
    pub created_date_time: Option<String>,
    pub last_modified_date_time: Option<String>,
    pub created_by: Option<Identity>,
    pub last_modified_by: Option<Identity>,
    pub parent_reference: Option<ParentReference>,
    /// The item's path in its drive, `/Reports/q1.pdf` (`/` for the root).
    pub path: Option<String>,
    pub file: Option<FileInfo>,
    pub folder: Option<FolderInfo>,
    pub is_root: bool,
    /// A signed gateway link to the content (GraphQL `downloadUrl` only); never Graph's.
    #[serde(skip)]
    pub(crate) graph_download_url: Option<String>,
}

impl DriveItem {
    pub(crate) fn from_graph(i: models::DriveItem) -> Result<Self, ServiceError> {
        let is_root = i.root.is_some();
        let path = if is_root {
            Some("/".to_owned())
        } else {
            match (
                i.parent_reference.as_ref().and_then(|p| p.path.as_deref()),
                i.name.as_deref(),
            ) {
                (Some(parent), Some(name)) => {
                    // `/drive/root:` or `/drives/{id}/root:/Reports` → `/Reports`.
                    let below = parent
                        .split_once("root:")
                        .map(|(_, rest)| rest)
                        .unwrap_or_default();
                    let below = percent_encoding::percent_decode_str(below).decode_utf8_lossy();
                    Some(format!("{}/{name}", below.trim_end_matches('/')))
                }
                _ => None,
            }
        };
        Ok(DriveItem {
            id: i.id.ok_or(ServiceError::UpstreamBadResponse)?,
            name: i.name,
            size: i.size,
            web_url: i.web_url,
            e_tag: i.e_tag,
            c_tag: i.c_tag,
            created_date_time: i.created_date_time,
            last_modified_date_time: i.last_modified_date_time,
            created_by: Identity::from_graph(i.created_by),
            last_modified_by: Identity::from_graph(i.last_modified_by),
            parent_reference: i.parent_reference.map(|p| ParentReference {
                drive_id: p.drive_id,
                drive_type: p.drive_type,
                id: p.id,
                path: p.path,
                site_id: p.site_id,
            }),
            path,
            file: i.file.map(|f| FileInfo {
                mime_type: f.mime_type,
                hashes: f.hashes.map(|h| Hashes {
                    quick_xor_hash: h.quick_xor_hash,
                    sha1_hash: h.sha1_hash,
                    sha256_hash: h.sha256_hash,
                }),
            }),
            folder: i.folder.map(|f| FolderInfo {
                child_count: f.child_count,
            }),
            is_root,
            graph_download_url: i.download_url,
        })
    }

    /// The drive the item is in (from its parent reference).
    pub fn drive_id(&self) -> Option<&str> {
        self.parent_reference.as_ref()?.drive_id.as_deref()
    }
}

/// Changes in a drive since a delta token.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct DriveDelta {
    /// Items created or changed (their current state).
    pub changed: Vec<DriveItem>,
    /// Ids of items deleted.
    pub deleted: Vec<String>,
    /// Pass back to get what changed next; valid for this drive only.
    pub delta_token: String,
    /// More changes are ready now: call again with `delta_token` at once.
    pub has_more: bool,
}

/// Where a moved or copied item goes.
#[derive(Clone, Debug)]
pub struct Destination {
    /// The destination drive (default: the source's).
    pub drive: Option<DriveRef>,
    /// The destination folder's id (default for rename: unchanged).
    pub parent_id: String,
    pub name: Option<String>,
}

impl Session {
    /// Checks the caller may address `drive` and returns the URL its items are addressed
    /// under: `/users/{id}/drive`, `/sites/{site}/drive` or `/drives/{id}`. The check costs
    /// no Graph call (a library reached through `Site.drives` is checked against the site's
    /// library list, which that field fetched and the cache holds).
    pub(crate) async fn drive_base(&self, drive: &DriveRef) -> Result<GraphUrl, ServiceError> {
        Ok(match drive {
            DriveRef::Me => {
                let (user, _) = self.mailbox("me")?;
                user.then("drive")
            }
            DriveRef::User(user) => {
                let target = self.resolve_user(user)?;
                GraphUrl::root("users").id(&target)?.then("drive")
            }
            DriveRef::Site(site) => site_url(&self.check_site(site)?)?.then("drive"),
            DriveRef::Id(id) => GraphUrl::root("drives").id(&self.check_drive_id(id)?)?,
            DriveRef::SiteLibrary { site, id } => {
                let libraries = self.site_drives(site).await?;
                if !libraries.iter().any(|d| d.id.eq_ignore_ascii_case(id)) {
                    return Err(ServiceError::Forbidden(format!(
                        "drive '{id}' is not a library of site '{site}'"
                    )));
                }
                GraphUrl::root("drives").id(id)?
            }
        })
    }

    /// The drive's Graph id: one (cached) lookup unless the reference is an id.
    pub(crate) async fn drive_id(&self, drive: &DriveRef) -> Result<String, ServiceError> {
        match drive {
            DriveRef::Id(id) => self.check_drive_id(id),
            DriveRef::SiteLibrary { id, .. } => {
                self.drive_base(drive).await?;
                Ok(id.clone())
            }
            _ => Ok(self.drive_meta(drive).await?.id),
        }
    }

    fn check_drive_id(&self, id: &str) -> Result<String, ServiceError> {
        let decision = self.services.policy.check_drive(
            &self.caller.name,
            &self.caller.resources,
            &self.caller.sites,
            id,
        );
        self.decided(decision, "drive outside the caller's users and sites", || {
            format!(
                "caller '{}' may not access drive '{id}' (callers limited to some users or sites address drives as me, user:<id>, site:<site> or by the ids of those drives)",
                self.caller.name
            )
        })
    }

    /// The canonical site id (or `host:/path`) to use upstream, if the caller may.
    fn check_site(&self, site: &str) -> Result<String, ServiceError> {
        if !crate::auth::SiteResources::is_site_ref(site) {
            return Err(ServiceError::BadInput(format!(
                "'{site}' is not a site id (host,guid,guid) or host:/server-relative-path"
            )));
        }
        let decision = self
            .services
            .policy
            .check_site(&self.caller.name, &self.caller.sites, site);
        self.decided(decision, "site outside the caller's sites", || {
            format!("caller '{}' may not access site '{site}'", self.caller.name)
        })
    }

    async fn drive_meta(&self, drive: &DriveRef) -> Result<Drive, ServiceError> {
        self.require("files.read")?;
        let url = self.drive_base(drive).await?.select(DRIVE_FIELDS);
        let what = "the drive";
        let found: models::Drive = self
            .get_json(GraphGet::new(url))
            .await
            .map_err(|e| self.upstream(e, what))?;
        Drive::from_graph(found)
    }

    /// A drive by reference.
    pub async fn drive(&self, drive: &DriveRef) -> Result<Drive, ServiceError> {
        self.drive_meta(drive).await
    }

    /// A site by id or `host:/path`.
    pub async fn site(&self, site: &str) -> Result<Site, ServiceError> {
        self.require("files.read")?;
        let target = self.check_site(site)?;
        let what = format!("site '{site}'");
        let found: models::Site = self
            .get_json(GraphGet::new(site_url(&target)?.select(SITE_FIELDS)))
            .await
            .map_err(|e| self.upstream(e, &what))?;
        Site::from_graph(found)
    }

    /// Sites whose name or description matches `search`; only the sites the caller may
    /// address are returned.
    pub async fn sites(
        &self,
        search: &str,
        first: usize,
        after: Option<&str>,
    ) -> Result<Page<Site>, ServiceError> {
        self.require("files.read")?;
        let search = search.trim();
        if search.is_empty() || search.len() > 200 || search.chars().any(char::is_control) {
            return Err(ServiceError::BadInput(
                "search must be 1 to 200 characters (use * for every site)".into(),
            ));
        }
        let top = check_first(first)?;
        let base = GraphUrl::root("sites");
        let url = base
            .clone()
            .param("search", search.to_owned())
            .select(SITE_FIELDS)
            .top(top);
        let page: Page<models::Site> = self
            .page(GraphGet::new(url), base.path(), first, after, "sites")
            .await?;
        let mut page = page.map(Site::from_graph)?;
        page.items.retain(|(site, _)| {
            self.caller.sites.is_all()
                || matches!(
                    self.services.policy.check_site(
                        &self.caller.name,
                        &self.caller.sites,
                        &site.id
                    ),
                    Decision::Allowed(_)
                )
        });
        Ok(page)
    }

    /// A site's document libraries.
    pub async fn site_drives(&self, site: &str) -> Result<Vec<Drive>, ServiceError> {
        self.require("files.read")?;
        let target = self.check_site(site)?;
        let what = format!("the libraries of site '{site}'");
        let found: models::Collection<models::Drive> = self
            .get_json(GraphGet::new(
                site_url(&target)?.then("drives").select(DRIVE_FIELDS),
            ))
            .await
            .map_err(|e| self.upstream(e, &what))?;
        found.value.into_iter().map(Drive::from_graph).collect()
    }

    /// One item (file or folder). `download_url` also fetches Graph's download URL for a
    /// gateway link (that answer is never cached).
    pub async fn drive_item(
        &self,
        drive: &DriveRef,
        item: &ItemRef,
        download_url: bool,
    ) -> Result<DriveItem, ServiceError> {
        self.require("files.read")?;
        let base = self.drive_base(drive).await?;
        self.item_at(&base, item, download_url).await
    }

    /// An item under a drive base already checked by [`Session::drive_base`].
    pub(crate) async fn item_at(
        &self,
        base: &GraphUrl,
        item: &ItemRef,
        download_url: bool,
    ) -> Result<DriveItem, ServiceError> {
        let url = item.url(base)?.select(&item_fields(download_url));
        let what = describe(item);
        let found: models::DriveItem = self
            .get_json(GraphGet::new(url).no_store(download_url))
            .await
            .map_err(|e| self.upstream(e, &what))?;
        DriveItem::from_graph(found)
    }

    /// A page of a folder's children.
    pub async fn children(
        &self,
        drive: &DriveRef,
        folder: &ItemRef,
        order: Option<ItemOrder>,
        first: usize,
        after: Option<&str>,
        download_url: bool,
    ) -> Result<Page<DriveItem>, ServiceError> {
        self.require("files.read")?;
        let top = check_first(first)?;
        let base = self.drive_base(drive).await?;
        let list = folder.url(&base)?.then("children");
        let path = list.path().to_owned();
        let mut url = list.select(&item_fields(download_url)).top(top);
        if let Some(order) = order {
            url = url.orderby(order.odata());
        }
        let what = format!("the children of {}", describe(folder));
        let page: Page<models::DriveItem> = self
            .page(
                GraphGet::new(url).no_store(download_url),
                &path,
                first,
                after,
                &what,
            )
            .await?;
        page.map(DriveItem::from_graph)
    }

    /// Creates a folder named `name` in `parent`.
    pub async fn create_folder(
        &self,
        drive: &DriveRef,
        parent: &ItemRef,
        name: &str,
        conflict: ConflictBehavior,
    ) -> Result<DriveItem, ServiceError> {
        self.require("files.write")?;
        check_name(name).map_err(ServiceError::BadInput)?;
        let base = self.drive_base(drive).await?;
        let url = parent.url(&base)?.then("children");
        let body = json!({
            "name": name,
            "folder": {},
            "@microsoft.graph.conflictBehavior": conflict.graph_name(),
        });
        let reply = self
            .write_drive(GraphWrite::post(url, body), &format!("folder '{name}'"))
            .await?;
        item_reply(&reply.body)
    }

    /// Renames an item; with `if_match`, only if it is still that version.
    pub async fn rename_item(
        &self,
        drive: &DriveRef,
        item: &str,
        name: &str,
        if_match: Option<&str>,
    ) -> Result<DriveItem, ServiceError> {
        self.require("files.write")?;
        check_name(name).map_err(ServiceError::BadInput)?;
        let base = self.drive_base(drive).await?;
        let url = ItemRef::id(item)?.url(&base)?;
        let request = GraphWrite::patch(url, json!({ "name": name })).if_match(if_match);
        let reply = self.write_drive(request, &format!("item '{item}'")).await?;
        item_reply(&reply.body)
    }

    /// Moves an item into another folder of the same drive (optionally renaming it).
    pub async fn move_item(
        &self,
        drive: &DriveRef,
        item: &str,
        parent_id: &str,
        name: Option<&str>,
        if_match: Option<&str>,
    ) -> Result<DriveItem, ServiceError> {
        self.require("files.write")?;
        if let Some(name) = name {
            check_name(name).map_err(ServiceError::BadInput)?;
        }
        ItemRef::id(parent_id)?;
        let base = self.drive_base(drive).await?;
        let url = ItemRef::id(item)?.url(&base)?;
        let mut body = json!({ "parentReference": { "id": parent_id } });
        if let Some(name) = name {
            body["name"] = json!(name);
        }
        let request = GraphWrite::patch(url, body).if_match(if_match);
        let reply = self.write_drive(request, &format!("item '{item}'")).await?;
        item_reply(&reply.body)
    }

    /// Deletes an item (a folder with everything in it); with `if_match`, only if it is
    /// still that version.
    pub async fn delete_item(
        &self,
        drive: &DriveRef,
        item: &str,
        if_match: Option<&str>,
    ) -> Result<(), ServiceError> {
        self.require("files.write")?;
        let base = self.drive_base(drive).await?;
        let url = ItemRef::id(item)?.url(&base)?;
        self.write_drive(
            GraphWrite::delete(url).if_match(if_match),
            &format!("item '{item}'"),
        )
        .await?;
        Ok(())
    }

    /// Copies an item (a folder with its contents) and waits for Graph's asynchronous
    /// copy to finish, following its monitor URL (without the Graph token, only to
    /// allowed hosts), then returns the copy.
    pub async fn copy_item(
        &self,
        drive: &DriveRef,
        item: &str,
        to: &Destination,
        conflict: ConflictBehavior,
    ) -> Result<DriveItem, ServiceError> {
        self.require("files.write")?;
        if let Some(name) = &to.name {
            check_name(name).map_err(ServiceError::BadInput)?;
        }
        ItemRef::id(&to.parent_id)?;
        let base = self.drive_base(drive).await?;
        let dest = to.drive.as_ref().unwrap_or(drive);
        let dest_base = self.drive_base(dest).await?;
        let dest_drive = self.drive_id(dest).await?;
        let url = ItemRef::id(item)?.url(&base)?.then("copy").param(
            "@microsoft.graph.conflictBehavior",
            conflict.graph_name().to_owned(),
        );
        let mut body = json!({ "parentReference": { "driveId": dest_drive, "id": to.parent_id } });
        if let Some(name) = &to.name {
            body["name"] = json!(name);
        }
        let what = format!("the copy of item '{item}'");
        let reply = self.write_drive(GraphWrite::post(url, body), &what).await?;
        let monitor = reply.location.ok_or_else(|| {
            tracing::warn!("copy accepted without a monitor URL");
            ServiceError::UpstreamBadResponse
        })?;
        let new_id = self.await_copy(&monitor, &what).await?;
        self.graph().invalidate_files().await;
        let url = dest_base
            .then("items")
            .id(&new_id)?
            .select(&item_fields(false));
        let copied = self
            .graph()
            .get_fresh(self.access(), &GraphGet::new(url), self.deadline())
            .await
            .map_err(|e| self.upstream(e, &what))?;
        item_reply(&copied)
    }

    /// Polls a copy's monitor until it completes (the new item's id) or fails.
    async fn await_copy(&self, monitor: &str, what: &str) -> Result<String, ServiceError> {
        let mut wait = Duration::from_millis(50);
        loop {
            let reply = self
                .graph()
                .transfer(reqwest::Method::GET, monitor, self.deadline())
                .await
                .map_err(|e| self.upstream(e, what))?;
            if reply.status == 404 {
                return Err(ServiceError::NotFound(format!("{what} was not found")));
            }
            let status: models::AsyncJobStatus = serde_json::from_slice(&reply.body)
                .map_err(|_| ServiceError::UpstreamBadResponse)?;
            match status.status.as_deref() {
                Some("completed") => {
                    return status.resource_id.ok_or(ServiceError::UpstreamBadResponse);
                }
                Some("failed") | Some("cancelled") | Some("deleteFailed") => {
                    let code = status
                        .error
                        .as_ref()
                        .and_then(|e| e.get("code"))
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned();
                    tracing::info!(%code, "Graph reports the copy failed");
                    return Err(match code.as_str() {
                        "nameAlreadyExists" => ServiceError::Conflict(format!(
                            "{what}: an item with that name already exists"
                        )),
                        "quotaLimitReached" => ServiceError::InsufficientStorage(format!(
                            "there is not enough storage left for {what}"
                        )),
                        "itemNotFound" => ServiceError::NotFound(format!("{what} was not found")),
                        _ => ServiceError::Upstream,
                    });
                }
                _ => {}
            }
            if std::time::Instant::now() + wait >= self.deadline() {
                return Err(ServiceError::UpstreamOutcomeUnknown);
            }
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(COPY_POLL_MAX);
        }
    }

    /// Changes in a drive: without a token, a full enumeration (in pages); with the
    /// token of the previous call, what changed since. `SYNC_RESET` when Graph forgot it.
    pub async fn drive_delta(
        &self,
        drive: &DriveRef,
        token: Option<&str>,
        max: usize,
    ) -> Result<DriveDelta, ServiceError> {
        self.require("files.read")?;
        if !(1..=MAX_DELTA_PAGE).contains(&max) {
            return Err(ServiceError::BadInput(format!(
                "first must be between 1 and {MAX_DELTA_PAGE}, got {max}"
            )));
        }
        // Tokens are bound to the drive's id, however the drive was named.
        let base = GraphUrl::root("drives").id(&self.drive_id(drive).await?)?;
        let delta = base.then("root").then("delta");
        let path = delta.path().to_owned();
        let url = match token {
            None => delta
                .select(&item_fields(false))
                .top(max as u32)
                .to_string(),
            Some(token) => decode_delta_token(token, &path, "drive")?,
        };
        let what = "the changes of the drive";
        let body = self
            .graph()
            .get_fresh(self.access(), &GraphGet::new(url), self.deadline())
            .await
            .map_err(|e| self.upstream(e, what))?;
        let page: models::DeltaPage<models::DriveItem> =
            serde_json::from_slice(&body).map_err(|e| {
                tracing::warn!(error = %e, "unusable drive delta page");
                ServiceError::UpstreamBadResponse
            })?;
        let delta_token = self.next_delta_token(
            page.next_link.as_deref(),
            page.delta_link.as_deref(),
            &path,
            what,
        )?;
        let mut changed = Vec::new();
        let mut deleted = Vec::new();
        for item in page.value {
            if item.deleted.is_some() {
                deleted.extend(item.id);
            } else {
                changed.push(DriveItem::from_graph(item)?);
            }
        }
        Ok(DriveDelta {
            changed,
            deleted,
            delta_token,
            has_more: page.next_link.is_some(),
        })
    }

    /// One write to a drive; cached file answers are evicted whatever the outcome (a failed
    /// write may have acted).
    pub(crate) async fn write_drive(
        &self,
        request: GraphWrite,
        what: &str,
    ) -> Result<crate::graph::GraphReply, ServiceError> {
        let result = self
            .graph()
            .write(self.access(), &request, self.deadline())
            .await
            .map_err(|e| self.upstream(e, what));
        self.graph().invalidate_files().await;
        result
    }
}

fn item_fields(download_url: bool) -> Vec<&'static str> {
    let mut fields = ITEM_FIELDS.to_vec();
    if download_url {
        fields.push(DOWNLOAD_URL_FIELD);
    }
    fields
}

fn describe(item: &ItemRef) -> String {
    match item {
        ItemRef::Root => "the root folder".to_owned(),
        ItemRef::Id(id) => format!("item '{id}'"),
        ItemRef::Path(segments) => format!("'/{}'", segments.join("/")),
    }
}

pub(crate) fn item_reply(body: &[u8]) -> Result<DriveItem, ServiceError> {
    let item: models::DriveItem =
        serde_json::from_slice(body).map_err(|_| ServiceError::UpstreamBadResponse)?;
    DriveItem::from_graph(item)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_onedrive_refuses_are_refused_here() {
        for bad in [
            "",
            ".",
            "..",
            "a/b",
            "a\\b",
            "what?",
            "a*b",
            "a:b",
            "a<b",
            "a>b",
            "a|b",
            "say \"hi\"",
            "tab\tname",
            " leading",
            "trailing ",
            "trailing.",
            "CON",
            "con.txt",
            "LPT1",
            "com9.pdf",
            "NUL",
            ".lock",
            "Desktop.ini",
            "my_vti_file",
            "~$draft.docx",
        ] {
            assert!(check_name(bad).is_err(), "{bad:?} should be refused");
        }
        for good in [
            "report.pdf",
            "Q1 2026 – résumé.docx",
            ".gitignore",
            "COM10.txt",
            "console.log",
            "a..b",
            "O'Brien's notes",
            "数据.xlsx",
        ] {
            assert!(check_name(good).is_ok(), "{good:?} should be accepted");
        }
        assert!(check_name(&"x".repeat(256)).is_err());
    }

    #[test]
    fn paths_are_checked_segment_by_segment() {
        assert_eq!(ItemRef::path("/").unwrap(), ItemRef::Root);
        assert_eq!(
            ItemRef::path("/Reports/q1.pdf").unwrap(),
            ItemRef::Path(vec!["Reports".into(), "q1.pdf".into()])
        );
        for bad in [
            "/a/../b",
            "a//b",
            "/a/./b",
            "/x/CON",
            "/a/b:c",
            &"a/".repeat(201),
        ] {
            assert!(
                matches!(ItemRef::path(bad), Err(ServiceError::BadInput(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn drive_references_parse_to_their_kind() {
        assert_eq!(DriveRef::parse("me").unwrap(), DriveRef::Me);
        assert_eq!(
            DriveRef::parse("user:ann@contoso.com").unwrap(),
            DriveRef::User("ann@contoso.com".into())
        );
        assert_eq!(
            DriveRef::parse("site:contoso.sharepoint.com:/sites/finance").unwrap(),
            DriveRef::Site("contoso.sharepoint.com:/sites/finance".into())
        );
        assert_eq!(
            DriveRef::parse("b!AbC-123_x").unwrap(),
            DriveRef::Id("b!AbC-123_x".into())
        );
        for bad in [
            "",
            "user:",
            "site:*",
            "site:/etc/passwd",
            "a/b",
            "a b",
            "x\n",
        ] {
            assert!(DriveRef::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn an_item_path_comes_from_its_parent_reference() {
        let item: models::DriveItem = serde_json::from_value(json!({
            "id": "1", "name": "q1.pdf",
            "parentReference": { "driveId": "d", "path": "/drive/root:/Reports%20Q1" }
        }))
        .unwrap();
        assert_eq!(
            DriveItem::from_graph(item).unwrap().path.as_deref(),
            Some("/Reports Q1/q1.pdf")
        );
        let item: models::DriveItem = serde_json::from_value(json!({
            "id": "2", "name": "a.txt", "parentReference": { "path": "/drives/d/root:" }
        }))
        .unwrap();
        assert_eq!(
            DriveItem::from_graph(item).unwrap().path.as_deref(),
            Some("/a.txt")
        );
    }
}
