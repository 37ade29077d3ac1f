//! GraphQL types of files: drives, sites, items (Relay children), delta, and the file
//! mutations (upload, folders, rename, move, copy, delete).
//!
//! Every drive and item object remembers the reference it was reached through (`via`),
//! so its fields address Graph the same way and pass the same policy check.

use async_graphql::connection::Connection;
use async_graphql::{Context, Enum, ErrorExtensions, ID, Object, Upload};
use tokio::sync::OnceCell;

use super::GqlResult;
use super::types::{ConnectionFields, connection, first, user_select_of};
use crate::service::directory::User;
use crate::service::files::{
    ConflictBehavior, Destination, Drive, DriveItem, DriveRef, FileInfo, FolderInfo, Hashes,
    Identity, ItemOrder, ItemRef, ParentReference, Quota, Site,
};
use crate::service::files_transfer::{UploadSource, UploadTarget};
use crate::service::{ServiceError, Session};

pub type DriveItemConnection = Connection<String, DriveItemNode, ConnectionFields>;
pub type SiteConnection = Connection<String, SiteNode, ConnectionFields>;

/// What happens when a name is taken.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(name = "ConflictBehavior")]
pub enum ConflictBehaviorInput {
    /// Refuse with `CONFLICT`.
    Fail,
    /// Overwrite (a new version of the file).
    Replace,
    /// Keep both; the new item gets a free name (`report 1.pdf`).
    Rename,
}

impl From<ConflictBehaviorInput> for ConflictBehavior {
    fn from(c: ConflictBehaviorInput) -> Self {
        match c {
            ConflictBehaviorInput::Fail => ConflictBehavior::Fail,
            ConflictBehaviorInput::Replace => ConflictBehavior::Replace,
            ConflictBehaviorInput::Rename => ConflictBehavior::Rename,
        }
    }
}

/// Order of a folder's children.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(name = "DriveItemOrderBy")]
pub enum ItemOrderInput {
    NameAsc,
    NameDesc,
    LastModifiedAsc,
    LastModifiedDesc,
    SizeAsc,
    SizeDesc,
}

impl From<ItemOrderInput> for ItemOrder {
    fn from(o: ItemOrderInput) -> Self {
        match o {
            ItemOrderInput::NameAsc => ItemOrder::NameAsc,
            ItemOrderInput::NameDesc => ItemOrder::NameDesc,
            ItemOrderInput::LastModifiedAsc => ItemOrder::LastModifiedAsc,
            ItemOrderInput::LastModifiedDesc => ItemOrder::LastModifiedDesc,
            ItemOrderInput::SizeAsc => ItemOrder::SizeAsc,
            ItemOrderInput::SizeDesc => ItemOrder::SizeDesc,
        }
    }
}

/// A OneDrive or a SharePoint document library. Its metadata is fetched only when a
/// field needs it: `drive(drive: "me") { itemByPath(…) }` goes straight to the item.
pub struct DriveNode {
    via: DriveRef,
    drive: OnceCell<Drive>,
}

/// A file or folder. Fetched only when a field needs it: `itemByPath(…) { children }`
/// lists the children by path in one Graph request.
pub struct DriveItemNode {
    via: DriveRef,
    item_ref: ItemRef,
    item: OnceCell<DriveItem>,
}

/// A SharePoint site.
pub struct SiteNode(Site);

/// Changes in a drive since a delta token.
pub struct DriveDeltaNode {
    changed: Vec<DriveItemNode>,
    deleted: Vec<String>,
    delta_token: String,
    has_more: bool,
}

fn node(item: DriveItem, via: &DriveRef) -> DriveItemNode {
    DriveItemNode {
        via: via.clone(),
        item_ref: ItemRef::Id(item.id.clone()),
        item: OnceCell::new_with(Some(item)),
    }
}

fn drive_node(via: DriveRef, drive: Option<Drive>) -> DriveNode {
    DriveNode {
        via,
        drive: OnceCell::new_with(drive),
    }
}

/// Whether the selection under the current field holds anything but these fields.
fn selects_other_than(ctx: &Context<'_>, fields: &[&str]) -> bool {
    ctx.field()
        .selection_set()
        .any(|f| f.name() != "__typename" && !fields.contains(&f.name()))
}

/// Whether the selection below the current field (or below its `nodes`/`edges.node`)
/// asks for `downloadUrl`: then Graph's download URLs are fetched with the items, in the
/// same request, instead of one request per item later.
fn wants_download_url(ctx: &Context<'_>) -> bool {
    let here = ctx.look_ahead();
    here.field("downloadUrl").exists()
        || here.field("nodes").field("downloadUrl").exists()
        || here
            .field("edges")
            .field("node")
            .field("downloadUrl")
            .exists()
        || here.field("changed").field("downloadUrl").exists()
}

fn drive_ref(text: &str) -> async_graphql::Result<DriveRef> {
    DriveRef::parse(text).gql()
}

/// `User.drive`: the user's OneDrive.
pub(super) async fn user_drive(
    ctx: &Context<'_>,
    user_id: &str,
) -> async_graphql::Result<DriveNode> {
    open_drive(ctx, DriveRef::User(user_id.to_owned())).await
}

/// A drive node: the policy is checked now (no Graph call); the metadata is fetched now
/// only if a field other than the item entry points is selected.
async fn open_drive(ctx: &Context<'_>, via: DriveRef) -> async_graphql::Result<DriveNode> {
    let session = ctx.data::<Session>()?;
    if selects_other_than(ctx, &["root", "item", "itemByPath"]) {
        let drive = session.drive(&via).await.gql()?;
        return Ok(drive_node(via, Some(drive)));
    }
    session.drive_base(&via).await.gql()?;
    Ok(drive_node(via, None))
}

#[Object(name = "Drive")]
impl DriveNode {
    async fn id(&self, ctx: &Context<'_>) -> async_graphql::Result<ID> {
        if let DriveRef::Id(id) | DriveRef::SiteLibrary { id, .. } = &self.via {
            return Ok(ID(id.clone()));
        }
        Ok(ID(self.meta(ctx).await?.id.clone()))
    }
    async fn name(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<&str>> {
        let drive = self.meta(ctx).await?;
        Ok(drive.name.as_deref())
    }
    async fn description(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<&str>> {
        let drive = self.meta(ctx).await?;
        Ok(drive.description.as_deref())
    }
    /// `business` (a OneDrive), `documentLibrary` or `personal`.
    async fn drive_type(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<&str>> {
        let drive = self.meta(ctx).await?;
        Ok(drive.drive_type.as_deref())
    }
    async fn web_url(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<&str>> {
        let drive = self.meta(ctx).await?;
        Ok(drive.web_url.as_deref())
    }
    async fn owner(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<&Identity>> {
        let drive = self.meta(ctx).await?;
        Ok(drive.owner.as_ref())
    }
    async fn quota(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<&Quota>> {
        let drive = self.meta(ctx).await?;
        Ok(drive.quota.as_ref())
    }
    async fn created_date_time(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<&str>> {
        let drive = self.meta(ctx).await?;
        Ok(drive.created_date_time.as_deref())
    }
    async fn last_modified_date_time(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<Option<&str>> {
        let drive = self.meta(ctx).await?;
        Ok(drive.last_modified_date_time.as_deref())
    }

    /// The root folder.
    async fn root(&self, ctx: &Context<'_>) -> async_graphql::Result<DriveItemNode> {
        self.fetch(ctx, ItemRef::Root).await
    }

    /// An item by id.
    async fn item(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<DriveItemNode> {
        self.fetch(ctx, ItemRef::id(&id).gql()?).await
    }

    /// An item by path from the root, e.g. `Reports/2026/q1.pdf`.
    async fn item_by_path(
        &self,
        ctx: &Context<'_>,
        path: String,
    ) -> async_graphql::Result<DriveItemNode> {
        self.fetch(ctx, ItemRef::path(&path).gql()?).await
    }
}

impl DriveNode {
    /// Items are addressed through the reference the drive was reached by, so they pass
    /// the same policy check. The item itself is fetched now unless only its children
    /// are selected (then they are listed by the item's path or id directly).
    async fn fetch(
        &self,
        ctx: &Context<'_>,
        item: ItemRef,
    ) -> async_graphql::Result<DriveItemNode> {
        let session = ctx.data::<Session>()?;
        if !selects_other_than(ctx, &["children"]) {
            session.drive_base(&self.via).await.gql()?;
            return Ok(DriveItemNode {
                via: self.via.clone(),
                item_ref: item,
                item: OnceCell::new(),
            });
        }
        let found = session
            .drive_item(&self.via, &item, wants_download_url(ctx))
            .await
            .gql()?;
        Ok(node(found, &self.via))
    }

    async fn meta(&self, ctx: &Context<'_>) -> async_graphql::Result<&Drive> {
        self.drive
            .get_or_try_init(|| async {
                let session = ctx.data::<Session>()?;
                session.drive(&self.via).await.gql()
            })
            .await
    }
}

impl DriveItemNode {
    async fn get(&self, ctx: &Context<'_>) -> async_graphql::Result<&DriveItem> {
        self.item
            .get_or_try_init(|| async {
                let session = ctx.data::<Session>()?;
                session
                    .drive_item(&self.via, &self.item_ref, false)
                    .await
                    .gql()
            })
            .await
    }
}

#[Object(name = "DriveItem")]
impl DriveItemNode {
    async fn id(&self, ctx: &Context<'_>) -> async_graphql::Result<ID> {
        if let ItemRef::Id(id) = &self.item_ref {
            return Ok(ID(id.clone()));
        }
        Ok(ID(self.get(ctx).await?.id.clone()))
    }
    async fn name(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<&str>> {
        let item = self.get(ctx).await?;
        Ok(item.name.as_deref())
    }
    /// Bytes (a folder: everything in it).
    async fn size(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<i64>> {
        let item = self.get(ctx).await?;
        Ok(item.size)
    }
    async fn web_url(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<&str>> {
        let item = self.get(ctx).await?;
        Ok(item.web_url.as_deref())
    }
    /// Changes whenever the item changes; pass it as `ifMatch` to write safely.
    async fn e_tag(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<&str>> {
        let item = self.get(ctx).await?;
        Ok(item.e_tag.as_deref())
    }
    /// Changes when the content changes (files only).
    async fn c_tag(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<&str>> {
        let item = self.get(ctx).await?;
        Ok(item.c_tag.as_deref())
    }
    async fn created_date_time(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<&str>> {
        let item = self.get(ctx).await?;
        Ok(item.created_date_time.as_deref())
    }
    async fn last_modified_date_time(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<Option<&str>> {
        let item = self.get(ctx).await?;
        Ok(item.last_modified_date_time.as_deref())
    }
    async fn created_by(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<&Identity>> {
        let item = self.get(ctx).await?;
        Ok(item.created_by.as_ref())
    }
    async fn last_modified_by(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<Option<&Identity>> {
        let item = self.get(ctx).await?;
        Ok(item.last_modified_by.as_ref())
    }
    /// Set on files.
    async fn file(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<&FileInfo>> {
        let item = self.get(ctx).await?;
        Ok(item.file.as_ref())
    }
    /// Set on folders.
    async fn folder(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<&FolderInfo>> {
        let item = self.get(ctx).await?;
        Ok(item.folder.as_ref())
    }
    async fn parent_reference(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<Option<&ParentReference>> {
        let item = self.get(ctx).await?;
        Ok(item.parent_reference.as_ref())
    }
    /// Path in the drive, `/Reports/q1.pdf` (`/` for the root).
    async fn path(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<&str>> {
        let item = self.get(ctx).await?;
        Ok(item.path.as_deref())
    }
    async fn is_root(&self, ctx: &Context<'_>) -> async_graphql::Result<bool> {
        let item = self.get(ctx).await?;
        Ok(item.is_root)
    }

    /// A short-lived, signed gateway link to the file's content (no token needed; see
    /// `files.link_ttl`). Null for folders. Graph's own pre-authenticated URL is never
    /// returned.
    async fn download_url(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<String>> {
        let item = self.get(ctx).await?;
        if item.file.is_none() {
            return Ok(None);
        }
        let session = ctx.data::<Session>()?;
        if item.graph_download_url.is_some() {
            return session.download_link(item).gql();
        }
        let fresh = session
            .drive_item(&self.via, &ItemRef::Id(item.id.clone()), true)
            .await
            .gql()?;
        session.download_link(&fresh).gql()
    }

    /// The folder's children (Relay).
    async fn children(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Page size, 1 to 100.")] first: i32,
        after: Option<String>,
        order_by: Option<ItemOrderInput>,
    ) -> async_graphql::Result<DriveItemConnection> {
        if self.item.get().is_some_and(|item| item.folder.is_none()) {
            return Ok(Connection::with_additional_fields(
                false,
                false,
                ConnectionFields { total_count: None },
            ));
        }
        let session = ctx.data::<Session>()?;
        let has_previous = after.is_some();
        let page = session
            .children(
                &self.via,
                &self.item_ref,
                order_by.map(Into::into),
                self::first(first),
                after.as_deref(),
                wants_download_url(ctx),
            )
            .await
            .gql()?;
        let via = self.via.clone();
        Ok(connection(
            page.map(|item| Ok(node(item, &via)))
                .map_err(|e: ServiceError| e.extend())?,
            has_previous,
        ))
    }
}

/// Who created or changed something.
#[Object]
impl Identity {
    /// `user`, `application` or `device`.
    async fn kind(&self) -> &str {
        &self.kind
    }
    async fn id(&self) -> Option<&str> {
        self.id.as_deref()
    }
    async fn display_name(&self) -> Option<&str> {
        self.display_name.as_deref()
    }
    async fn email(&self) -> Option<&str> {
        self.email.as_deref()
    }
    /// The directory user, for a user; resolved in batches across the whole query. Null
    /// for applications, and for users the caller may not see.
    async fn user(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<User>> {
        let (Some(id), "user") = (&self.id, self.kind.as_str()) else {
            return Ok(None);
        };
        let session = ctx.data::<Session>()?;
        session
            .user_if_visible(id, &user_select_of(ctx))
            .await
            .gql()
    }
}

#[Object]
impl Quota {
    async fn total(&self) -> Option<i64> {
        self.total
    }
    async fn used(&self) -> Option<i64> {
        self.used
    }
    async fn remaining(&self) -> Option<i64> {
        self.remaining
    }
    /// `normal`, `nearing`, `critical` or `exceeded`.
    async fn state(&self) -> Option<&str> {
        self.state.as_deref()
    }
}

#[Object]
impl FileInfo {
    async fn mime_type(&self) -> Option<&str> {
        self.mime_type.as_deref()
    }
    async fn hashes(&self) -> Option<&Hashes> {
        self.hashes.as_ref()
    }
}

#[Object]
impl Hashes {
    async fn quick_xor_hash(&self) -> Option<&str> {
        self.quick_xor_hash.as_deref()
    }
    async fn sha1_hash(&self) -> Option<&str> {
        self.sha1_hash.as_deref()
    }
    async fn sha256_hash(&self) -> Option<&str> {
        self.sha256_hash.as_deref()
    }
}

#[Object]
impl FolderInfo {
    async fn child_count(&self) -> Option<u64> {
        self.child_count
    }
}

#[Object]
impl ParentReference {
    async fn drive_id(&self) -> Option<&str> {
        self.drive_id.as_deref()
    }
    async fn drive_type(&self) -> Option<&str> {
        self.drive_type.as_deref()
    }
    async fn id(&self) -> Option<&str> {
        self.id.as_deref()
    }
    /// `/drive/root:/Reports`.
    async fn path(&self) -> Option<&str> {
        self.path.as_deref()
    }
    async fn site_id(&self) -> Option<&str> {
        self.site_id.as_deref()
    }
}

#[Object(name = "Site")]
impl SiteNode {
    /// `host,site-collection-id,web-id`.
    async fn id(&self) -> ID {
        ID(self.0.id.clone())
    }
    async fn name(&self) -> Option<&str> {
        self.0.name.as_deref()
    }
    async fn display_name(&self) -> Option<&str> {
        self.0.display_name.as_deref()
    }
    async fn description(&self) -> Option<&str> {
        self.0.description.as_deref()
    }
    async fn web_url(&self) -> Option<&str> {
        self.0.web_url.as_deref()
    }
    async fn created_date_time(&self) -> Option<&str> {
        self.0.created_date_time.as_deref()
    }
    async fn last_modified_date_time(&self) -> Option<&str> {
        self.0.last_modified_date_time.as_deref()
    }

    /// The site's default document library.
    async fn drive(&self, ctx: &Context<'_>) -> async_graphql::Result<DriveNode> {
        open_drive(ctx, DriveRef::Site(self.0.id.clone())).await
    }

    /// All of the site's document libraries.
    async fn drives(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<DriveNode>> {
        let session = ctx.data::<Session>()?;
        let drives = session.site_drives(&self.0.id).await.gql()?;
        Ok(drives
            .into_iter()
            .map(|drive| {
                let via = DriveRef::SiteLibrary {
                    site: self.0.id.clone(),
                    id: drive.id.clone(),
                };
                drive_node(via, Some(drive))
            })
            .collect())
    }
}

#[Object(name = "DriveDelta")]
impl DriveDeltaNode {
    /// Items created or changed (their current state).
    async fn changed(&self) -> &[DriveItemNode] {
        &self.changed
    }
    /// Ids of deleted items.
    async fn deleted(&self) -> &[String] {
        &self.deleted
    }
    /// Pass as `token` next time; valid for this drive only.
    async fn delta_token(&self) -> &str {
        &self.delta_token
    }
    /// More changes are ready now: call again with `deltaToken` at once.
    async fn has_more(&self) -> bool {
        self.has_more
    }
}

/// The files part of the root query type.
#[derive(Default)]
pub struct FilesQuery;

#[Object]
impl FilesQuery {
    /// A drive: `me`, `user:<id or UPN>`, `site:<site id or host:/path>` or a drive id.
    async fn drive(&self, ctx: &Context<'_>, drive: String) -> async_graphql::Result<DriveNode> {
        open_drive(ctx, drive_ref(&drive)?).await
    }

    /// A SharePoint site by id (`host,guid,guid`) or `host:/server-relative-path`
    /// (`contoso.sharepoint.com:/sites/finance`).
    async fn site(&self, ctx: &Context<'_>, site: String) -> async_graphql::Result<SiteNode> {
        let session = ctx.data::<Session>()?;
        Ok(SiteNode(session.site(&site).await.gql()?))
    }

    /// Sites whose name or description matches `search` (`*`: all), limited to the
    /// sites the caller may address.
    async fn sites(
        &self,
        ctx: &Context<'_>,
        search: String,
        #[graphql(desc = "Page size, 1 to 100.")] first: i32,
        after: Option<String>,
    ) -> async_graphql::Result<SiteConnection> {
        let session = ctx.data::<Session>()?;
        let has_previous = after.is_some();
        let page = session
            .sites(&search, self::first(first), after.as_deref())
            .await
            .gql()?;
        Ok(connection(
            page.map(|s| Ok(SiteNode(s))).map_err(|e| e.extend())?,
            has_previous,
        ))
    }

    /// Changes in a drive: without `token`, everything (in pages of `first`); with the
    /// `deltaToken` of the previous call, what changed since. A stale token fails with
    /// `SYNC_RESET`: start over without one.
    async fn drive_delta(
        &self,
        ctx: &Context<'_>,
        drive: String,
        token: Option<String>,
        #[graphql(desc = "Most items per call, 1 to 1000 (default 200).")] first: Option<i32>,
    ) -> async_graphql::Result<DriveDeltaNode> {
        let session = ctx.data::<Session>()?;
        let via = drive_ref(&drive)?;
        let max = usize::try_from(first.unwrap_or(200)).unwrap_or(0);
        let delta = session
            .drive_delta(&via, token.as_deref(), max)
            .await
            .gql()?;
        Ok(DriveDeltaNode {
            changed: delta
                .changed
                .into_iter()
                .map(|item| node(item, &via))
                .collect(),
            deleted: delta.deleted,
            delta_token: delta.delta_token,
            has_more: delta.has_more,
        })
    }
}

/// The files part of the root mutation type.
#[derive(Default)]
pub struct FilesMutation;

#[Object]
impl FilesMutation {
    /// Uploads a file (GraphQL multipart request) into the folder at `parentPath`. Up to
    /// 4 MB in one Graph request, larger in an upload session, resumed after transient
    /// failures. `ifMatch` replaces only that version of an existing file.
    #[allow(clippy::too_many_arguments)]
    async fn upload_file(
        &self,
        ctx: &Context<'_>,
        drive: String,
        #[graphql(default = "/")] parent_path: String,
        file: Upload,
        #[graphql(desc = "The file's name (default: the uploaded file's name).")] name: Option<
            String,
        >,
        #[graphql(default_with = "ConflictBehaviorInput::Replace")]
        conflict_behavior: ConflictBehaviorInput,
        if_match: Option<String>,
    ) -> async_graphql::Result<DriveItemNode> {
        let session = ctx.data::<Session>()?;
        let via = drive_ref(&drive)?;
        let value = file.value(ctx)?;
        let size = value
            .content
            .metadata()
            .map_err(|_| ServiceError::Internal.extend())?
            .len();
        let target = UploadTarget {
            parent: ItemRef::path(&parent_path).gql()?,
            name: name.unwrap_or(value.filename),
            conflict: conflict_behavior.into(),
            if_match,
        };
        let mut source = UploadSource {
            reader: Box::pin(tokio::fs::File::from_std(value.content)),
            size,
            content_type: value.content_type,
        };
        let item = session.upload(&via, &target, &mut source).await.gql()?;
        Ok(node(item, &via))
    }

    /// Creates a folder named `name` in the folder at `parentPath`.
    async fn create_folder(
        &self,
        ctx: &Context<'_>,
        drive: String,
        #[graphql(default = "/")] parent_path: String,
        name: String,
        #[graphql(default_with = "ConflictBehaviorInput::Fail")]
        conflict_behavior: ConflictBehaviorInput,
    ) -> async_graphql::Result<DriveItemNode> {
        let session = ctx.data::<Session>()?;
        let via = drive_ref(&drive)?;
        let parent = ItemRef::path(&parent_path).gql()?;
        let item = session
            .create_folder(&via, &parent, &name, conflict_behavior.into())
            .await
            .gql()?;
        Ok(node(item, &via))
    }

    /// Renames an item; with `ifMatch`, only if it is still that version.
    async fn rename_item(
        &self,
        ctx: &Context<'_>,
        drive: String,
        item: ID,
        name: String,
        if_match: Option<String>,
    ) -> async_graphql::Result<DriveItemNode> {
        let session = ctx.data::<Session>()?;
        let via = drive_ref(&drive)?;
        let renamed = session
            .rename_item(&via, &item, &name, if_match.as_deref())
            .await
            .gql()?;
        Ok(node(renamed, &via))
    }

    /// Moves an item into another folder of the same drive, optionally renaming it.
    async fn move_item(
        &self,
        ctx: &Context<'_>,
        drive: String,
        item: ID,
        parent_id: ID,
        name: Option<String>,
        if_match: Option<String>,
    ) -> async_graphql::Result<DriveItemNode> {
        let session = ctx.data::<Session>()?;
        let via = drive_ref(&drive)?;
        let moved = session
            .move_item(
                &via,
                &item,
                &parent_id,
                name.as_deref(),
                if_match.as_deref(),
            )
            .await
            .gql()?;
        Ok(node(moved, &via))
    }

    /// Copies an item (a folder with its contents) into `parentId` of `destinationDrive`
    /// (default: the same drive) and returns the copy once Graph has finished it.
    #[allow(clippy::too_many_arguments)]
    async fn copy_item(
        &self,
        ctx: &Context<'_>,
        drive: String,
        item: ID,
        parent_id: ID,
        destination_drive: Option<String>,
        name: Option<String>,
        #[graphql(default_with = "ConflictBehaviorInput::Fail")]
        conflict_behavior: ConflictBehaviorInput,
    ) -> async_graphql::Result<DriveItemNode> {
        let session = ctx.data::<Session>()?;
        let via = drive_ref(&drive)?;
        let destination = destination_drive.as_deref().map(drive_ref).transpose()?;
        let to = Destination {
            drive: destination.clone(),
            parent_id: parent_id.0,
            name,
        };
        let copy = session
            .copy_item(&via, &item, &to, conflict_behavior.into())
            .await
            .gql()?;
        Ok(node(copy, destination.as_ref().unwrap_or(&via)))
    }

    /// Deletes an item (a folder with its contents); with `ifMatch`, only if it is still
    /// that version. True when deleted.
    async fn delete_item(
        &self,
        ctx: &Context<'_>,
        drive: String,
        item: ID,
        if_match: Option<String>,
    ) -> async_graphql::Result<bool> {
        let session = ctx.data::<Session>()?;
        let via = drive_ref(&drive)?;
        session
            .delete_item(&via, &item, if_match.as_deref())
            .await
            .gql()?;
        Ok(true)
    }
}
