//! JSON of drives, driveItems and sites, shaped as the documentation samples
//! (driveitem-get, driveitem-list-children, site-get, site-search) and the driveItem resource.

use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};
use serde_json::{Map, Value, json};

use super::super::errors::GraphError;
use super::invalid_request;
use crate::clock::format_utc_seconds;
use crate::files::{DriveOwner, FileStore, Item, ItemKind, SHAREPOINT_HOSTNAME, Site};

/// What SharePoint percent-encodes in a `webUrl` path segment.
const URL_SEGMENT: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'`')
    .add(b'{')
    .add(b'}')
    .add(b'|')
    .add(b'\\')
    .add(b'^')
    .add(b'[')
    .add(b']')
    .add(b'/');

/// Every property of the driveItem resource (v1.0) and the download URL annotation:
/// `$select` accepts these; the emulator renders those it has data for.
const ITEM_PROPERTIES: &[&str] = &[
    "id",
    "name",
    "size",
    "eTag",
    "cTag",
    "createdBy",
    "createdDateTime",
    "lastModifiedBy",
    "lastModifiedDateTime",
    "webUrl",
    "parentReference",
    "file",
    "folder",
    "root",
    "fileSystemInfo",
    "deleted",
    "description",
    "audio",
    "bundle",
    "content",
    "image",
    "location",
    "malware",
    "package",
    "pendingOperations",
    "photo",
    "publication",
    "remoteItem",
    "searchResult",
    "shared",
    "sharepointIds",
    "specialFolder",
    "video",
    "webDavUrl",
    "children",
    "listItem",
    "permissions",
    "thumbnails",
    "versions",
    "@microsoft.graph.downloadUrl",
];

/// Rendering options of one answer.
pub(crate) struct Render<'a> {
    /// `http://host:port`, where download URLs point.
    pub base_url: &'a str,
    pub select: Option<&'a [String]>,
    pub now: i64,
}

/// `$select` on driveItems: every name must be a driveItem property.
pub(crate) fn check_select(select: Option<&[String]>) -> Result<(), GraphError> {
    for name in select.unwrap_or_default() {
        if !ITEM_PROPERTIES.iter().any(|p| p.eq_ignore_ascii_case(name)) {
            return Err(invalid_request(format!(
                "Could not find a property named '{name}' on type 'microsoft.graph.driveItem'."
            )));
        }
    }
    Ok(())
}

fn selected(select: Option<&[String]>, key: &str) -> bool {
    match select {
        None => true,
        Some(list) => list.iter().any(|s| s.eq_ignore_ascii_case(key)),
    }
}

/// Keeps only the `$select`ed keys (all when there is no `$select`).
fn narrow(mut map: Map<String, Value>, select: Option<&[String]>) -> Map<String, Value> {
    if select.is_some() {
        map.retain(|k, _| selected(select, k));
    }
    map
}

pub(crate) fn encode_segment(name: &str) -> String {
    utf8_percent_encode(name, URL_SEGMENT).to_string()
}

/// The pre-authenticated download URL of a file (valid an hour).
pub(crate) fn download_url(
    store: &FileStore,
    d: usize,
    item: &Item,
    base_url: &str,
    now: i64,
) -> String {
    let token = store.tempauth(d, &item.id, now + super::DOWNLOAD_URL_LIFETIME);
    format!(
        "{base_url}/_layouts/15/download.aspx?UniqueId={}&tempauth={token}",
        item.id
    )
}

/// `parentReference` of an item (the root's has only the drive).
fn parent_reference(store: &FileStore, d: usize, item: &Item) -> Value {
    let drive = &store.drives[d];
    let mut r = Map::new();
    r.insert("driveId".into(), json!(drive.id));
    r.insert("driveType".into(), json!(drive.drive_type()));
    if let Some(parent) = item.parent.as_ref().and_then(|p| drive.item(p)) {
        r.insert("id".into(), json!(parent.id));
        r.insert("name".into(), json!(parent.name));
        r.insert("path".into(), json!(drive.graph_path(&parent.id)));
        if let DriveOwner::Site(s) = drive.owner {
            r.insert("siteId".into(), json!(store.sites[s].id()));
        }
    }
    Value::Object(r)
}

/// A driveItem.
pub(crate) fn item(store: &FileStore, d: usize, item: &Item, r: &Render<'_>) -> Map<String, Value> {
    let drive = &store.drives[d];
    let mut m = Map::new();
    let is_root = item.parent.is_none();
    if item.file().is_some()
        && r.select
            .is_none_or(|s| s.iter().any(|k| k == "@microsoft.graph.downloadUrl"))
    {
        m.insert(
            "@microsoft.graph.downloadUrl".into(),
            json!(download_url(store, d, item, r.base_url, r.now)),
        );
    }
    m.insert("createdBy".into(), item.created_by.json());
    m.insert(
        "createdDateTime".into(),
        json!(format_utc_seconds(item.created)),
    );
    m.insert("eTag".into(), json!(item.etag()));
    // Folders have no cTag, except the root, as the driveitem-get sample shows.
    if item.file().is_some() || is_root {
        m.insert("cTag".into(), json!(item.ctag()));
    }
    m.insert("id".into(), json!(item.id));
    m.insert("lastModifiedBy".into(), item.modified_by.json());
    m.insert(
        "lastModifiedDateTime".into(),
        json!(format_utc_seconds(item.modified)),
    );
    m.insert("name".into(), json!(item.name));
    m.insert("parentReference".into(), parent_reference(store, d, item));
    let mut web_url = drive.web_url.clone();
    for name in drive.path_names(&item.id) {
        web_url.push('/');
        web_url.push_str(&encode_segment(&name));
    }
    m.insert("webUrl".into(), json!(web_url));
    match &item.kind {
        ItemKind::Folder { children } => {
            m.insert("folder".into(), json!({"childCount": children.len()}));
        }
        ItemKind::File(f) => {
            m.insert(
                "file".into(),
                json!({
                    "mimeType": f.mime,
                    "hashes": {
                        "quickXorHash": f.hashes.quick_xor,
                        "sha1Hash": f.hashes.sha1,
                        "sha256Hash": f.hashes.sha256,
                    }
                }),
            );
        }
    }
    m.insert(
        "fileSystemInfo".into(),
        json!({
            "createdDateTime": format_utc_seconds(item.created),
            "lastModifiedDateTime": format_utc_seconds(item.modified),
        }),
    );
    if is_root {
        m.insert("root".into(), json!({}));
    }
    m.insert("size".into(), json!(item.size));
    narrow(m, r.select)
}

/// A drive.
pub(crate) fn drive(store: &FileStore, d: usize, select: Option<&[String]>) -> Map<String, Value> {
    let drive = &store.drives[d];
    let remaining = drive.quota_total.saturating_sub(drive.used);
    let state = if drive.used >= drive.quota_total {
        "exceeded"
    } else if drive.used.saturating_mul(100) >= drive.quota_total.saturating_mul(98) {
        "critical"
    } else if drive.used.saturating_mul(100) >= drive.quota_total.saturating_mul(90) {
        "nearing"
    } else {
        "normal"
    };
    let mut m = Map::new();
    m.insert("id".into(), json!(drive.id));
    m.insert("driveType".into(), json!(drive.drive_type()));
    m.insert("name".into(), json!(drive.name));
    m.insert("description".into(), json!(drive.description));
    m.insert(
        "createdDateTime".into(),
        json!(format_utc_seconds(drive.created)),
    );
    m.insert(
        "lastModifiedDateTime".into(),
        json!(format_utc_seconds(drive.modified())),
    );
    m.insert("webUrl".into(), json!(drive.web_url));
    m.insert("createdBy".into(), drive.created_by.json());
    m.insert("owner".into(), drive.owner_identity.json());
    m.insert(
        "quota".into(),
        json!({
            "deleted": 0,
            "remaining": remaining,
            "state": state,
            "total": drive.quota_total,
            "used": drive.used,
        }),
    );
    narrow(m, select)
}

/// A site.
pub(crate) fn site(site: &Site, select: Option<&[String]>) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("id".into(), json!(site.id()));
    m.insert("name".into(), json!(site.name));
    m.insert("displayName".into(), json!(site.display_name));
    m.insert("description".into(), json!(site.description));
    m.insert("webUrl".into(), json!(site.web_url()));
    m.insert(
        "createdDateTime".into(),
        json!(format_utc_seconds(site.created)),
    );
    m.insert(
        "lastModifiedDateTime".into(),
        json!(format_utc_seconds(site.modified)),
    );
    m.insert(
        "siteCollection".into(),
        json!({"hostname": SHAREPOINT_HOSTNAME}),
    );
    if site.is_root() {
        m.insert("root".into(), json!({}));
    }
    narrow(m, select)
}
