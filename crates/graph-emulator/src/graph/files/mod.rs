//! OneDrive for Business and SharePoint files as Graph v1.0 serves them (graph-protocol.md
//! §5, §6 "driveItem", §8, §9): drives, sites, driveItems addressed by id or path, children
//! paging, downloads through pre-authenticated URLs, simple and resumable uploads, folders,
//! rename/move, delete, asynchronous copy with a monitor, and delta.
//!
//! Graph routes run under the dispatcher (`graph::execute`), so they work as `$batch` items
//! too; the handlers lock the tenant (read) and the file store (mutex) in that order and never
//! across an `.await`. Only a simple upload's body is read asynchronously, between two locked
//! phases (checks, then commit). The pre-authenticated URLs (`/up/…`,
//! `/_layouts/15/download.aspx`, `/_api/v2.0/monitor/…`) and the admin endpoints live in
//! `wire`.

mod delta;
mod perms;
mod render;
pub(crate) mod routes;
mod upload;
pub(crate) mod wire;

use axum::http::{Method, StatusCode, header};
use serde_json::{Map, Value, json};

use super::auth::Principal;
use super::errors::GraphError;
use super::{GraphRequest, GraphResponse, Payload};
use crate::Emulator;
use crate::files::{Conflict, FileStore, Identity, Item, ItemKind, invalid_name};
use crate::tenant::Tenant;
use perms::Access;
use routes::{DriveBase, DrivesOf, FilesRoute, ItemRef, ItemTail, SiteRef};

/// Graph's limit for a simple upload: 250 MB (262,144,000 bytes; graph-protocol.md §12.1).
pub(crate) const SIMPLE_UPLOAD_LIMIT: u64 = 262_144_000;
/// Default and maximum page sizes of children and delta.
const DEFAULT_PAGE: usize = 200;
const MAX_PAGE: usize = 1000;
/// Download URLs work for an hour.
pub(crate) const DOWNLOAD_URL_LIFETIME: i64 = 3600;

// --- errors -----------------------------------------------------------------------------

pub(crate) fn item_not_found() -> GraphError {
    GraphError::new(
        StatusCode::NOT_FOUND,
        "itemNotFound",
        "The resource could not be found.",
    )
}

pub(crate) fn invalid_request(message: impl Into<String>) -> GraphError {
    GraphError::new(StatusCode::BAD_REQUEST, "invalidRequest", message)
}

pub(crate) fn access_denied() -> GraphError {
    GraphError::new(StatusCode::FORBIDDEN, "accessDenied", "Access denied")
}

pub(crate) fn name_already_exists(name: &str) -> GraphError {
    GraphError::new(
        StatusCode::CONFLICT,
        "nameAlreadyExists",
        format!("The specified item name already exists. Name: {name}"),
    )
}

pub(crate) fn precondition_failed() -> GraphError {
    GraphError::new(
        StatusCode::PRECONDITION_FAILED,
        "preconditionFailed",
        "The resource has changed since the caller last read it; usually an eTag mismatch.",
    )
}

pub(crate) fn quota_limit_reached() -> GraphError {
    GraphError::new(
        StatusCode::INSUFFICIENT_STORAGE,
        "quotaLimitReached",
        "Insufficient Space Available",
    )
}

pub(crate) fn too_large(message: impl Into<String>) -> GraphError {
    GraphError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "requestEntityTooLarge",
        message,
    )
}

fn check_name(name: &str) -> Result<(), GraphError> {
    match invalid_name(name) {
        Some(why) => Err(invalid_request(why)),
        None => Ok(()),
    }
}

// --- query options ----------------------------------------------------------------------

/// The query options drive routes read.
#[derive(Clone, Debug, Default)]
pub(crate) struct FilesQuery {
    pub select: Option<Vec<String>>,
    pub expand: Option<String>,
    pub top: Option<String>,
    pub orderby: Option<String>,
    pub skiptoken: Option<String>,
    pub token: Option<String>,
    pub search: Option<String>,
    pub conflict: Option<Conflict>,
}

pub(crate) fn parse_select(raw: &str) -> Vec<String> {
    raw.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

impl FilesQuery {
    fn parse(raw: Option<&str>) -> Result<FilesQuery, GraphError> {
        let mut q = FilesQuery::default();
        let Some(raw) = raw else { return Ok(q) };
        for (key, value) in url::form_urlencoded::parse(raw.as_bytes()) {
            let lower = key.to_ascii_lowercase();
            match lower.as_str() {
                "$select" => q.select = Some(parse_select(&value)),
                "$expand" => q.expand = Some(value.into_owned()),
                "$top" => q.top = Some(value.into_owned()),
                "$orderby" => q.orderby = Some(value.into_owned()),
                "$skiptoken" => q.skiptoken = Some(value.into_owned()),
                "token" => q.token = Some(value.into_owned()),
                "search" | "$search" => q.search = Some(value.trim_matches('"').to_string()),
                "@microsoft.graph.conflictbehavior" => {
                    q.conflict = Some(Conflict::parse(&value).ok_or_else(|| {
                        invalid_request(format!(
                            "Invalid @microsoft.graph.conflictBehavior '{value}': use fail, replace or rename."
                        ))
                    })?);
                }
                "$format" => {}
                _ if lower.starts_with('$') => {
                    return Err(invalid_request(format!(
                        "The query option '{key}' is not supported here. Supported: $select, $expand, $top, $orderby, $skiptoken."
                    )));
                }
                _ => {}
            }
        }
        Ok(q)
    }

    /// `$top` in 1..=1000, else the default.
    fn page_size(&self, fallback: Option<usize>) -> Result<usize, GraphError> {
        match &self.top {
            None => Ok(fallback.unwrap_or(DEFAULT_PAGE)),
            Some(raw) => match raw.trim().parse::<usize>() {
                Ok(n) if (1..=MAX_PAGE).contains(&n) => Ok(n),
                _ => Err(invalid_request(format!(
                    "Invalid $top value '{raw}': it must be an integer between 1 and {MAX_PAGE}."
                ))),
            },
        }
    }
}

// --- context ----------------------------------------------------------------------------

/// A files request being handled.
pub(crate) struct Fx<'a> {
    pub emulator: &'a Emulator,
    pub req: &'a GraphRequest,
    pub principal: &'a Principal,
    pub q: FilesQuery,
    pub now: i64,
}

impl Fx<'_> {
    /// Runs `f` with the tenant (read) and the file store locked, in that order.
    pub fn sync<R>(&self, f: impl FnOnce(&Tenant, &mut FileStore) -> R) -> R {
        let state = self.emulator.state();
        let tenant = state
            .tenant
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut store = crate::lock_files(state);
        f(&tenant, &mut store)
    }

    /// Who the caller is, for `createdBy`/`lastModifiedBy`: the signed-in user, or the
    /// application of an app-only token.
    pub fn identity(&self, tenant: &Tenant) -> Identity {
        match self.principal {
            Principal::User { user_id, .. } => match tenant.find_user(user_id) {
                Some(u) => Identity::of_user(tenant, u),
                None => Identity::User {
                    id: user_id.clone(),
                    display_name: String::new(),
                    email: String::new(),
                },
            },
            Principal::App { app_id, .. } => Identity::App {
                id: app_id.clone(),
                display_name: self
                    .emulator
                    .state()
                    .apps
                    .get(app_id)
                    .map(|a| a.reg.display_name.clone())
                    .unwrap_or_default(),
            },
        }
    }

    pub fn render(&self) -> render::Render<'_> {
        render::Render {
            base_url: &self.req.base_url,
            select: self.q.select.as_deref(),
            now: self.now,
        }
    }

    /// The JSON object of a POST/PATCH body (an empty body is `{}`).
    pub fn json_body(&self) -> Result<Map<String, Value>, GraphError> {
        let body = &self.req.body;
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(Map::new());
        }
        match serde_json::from_slice(body) {
            Ok(Value::Object(map)) => Ok(map),
            _ => Err(GraphError::bad_request(
                "Unable to read JSON request payload. Please ensure Content-Type header is set and payload is of valid JSON format.",
            )),
        }
    }

    /// The `If-Match` header, if any.
    pub fn if_match(&self) -> Option<String> {
        self.req
            .headers
            .get(header::IF_MATCH)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    }
}

/// Whether an `If-Match` value names the item's current eTag or cTag (or is `*`).
pub(crate) fn if_match_ok(item: &Item, value: &str) -> bool {
    let norm = |s: &str| {
        s.trim()
            .trim_start_matches("W/")
            .trim_matches('"')
            .to_ascii_uppercase()
    };
    let etag = norm(&item.etag());
    let ctag = norm(&item.ctag());
    if value.trim() == "*" {
        return true;
    }
    // Entity tags are quoted and OneDrive's hold commas: `"{GUID},1", W/"{GUID},2"`.
    let mut tags: Vec<&str> = value.split('"').skip(1).step_by(2).collect();
    if tags.is_empty() {
        tags.push(value);
    }
    tags.into_iter().any(|v| {
        let v = norm(v);
        v == etag || (item.file().is_some() && v == ctag)
    })
}

fn get_ci<'v>(map: &'v Map<String, Value>, name: &str) -> Option<&'v Value> {
    map.get(name).or_else(|| {
        map.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    })
}

fn created(body: Value) -> GraphResponse {
    GraphResponse::with_status(StatusCode::CREATED, Payload::Json(body))
}

// --- resolution -------------------------------------------------------------------------

pub(crate) fn resolve_site(store: &FileStore, site: &SiteRef) -> Result<usize, GraphError> {
    let found = match site {
        SiteRef::Root => store.site_by_path("/"),
        SiteRef::Id(id) => store.site_by_id(id),
        SiteRef::Path { host, path } => {
            if host.eq_ignore_ascii_case(crate::files::SHAREPOINT_HOSTNAME) {
                store.site_by_path(path)
            } else {
                None
            }
        }
    };
    found.ok_or_else(item_not_found)
}

fn user_of(tenant: &Tenant, principal: &Principal, key: Option<&str>) -> Result<usize, GraphError> {
    match key {
        Some(key) => tenant.find_user(key).ok_or_else(item_not_found),
        None => match principal {
            Principal::User { user_id, .. } => tenant.find_user(user_id).ok_or_else(item_not_found),
            Principal::App { .. } => Err(GraphError::bad_request(
                "/me request is only valid with delegated authentication flow.",
            )),
        },
    }
}

fn no_mysite() -> GraphError {
    GraphError::new(
        StatusCode::NOT_FOUND,
        "itemNotFound",
        "User's mysite not found.",
    )
}

pub(crate) fn resolve_drive(
    store: &mut FileStore,
    tenant: &Tenant,
    principal: &Principal,
    base: &DriveBase,
) -> Result<usize, GraphError> {
    match base {
        DriveBase::Me | DriveBase::User(_) => {
            let key = match base {
                DriveBase::User(k) => Some(k.as_str()),
                _ => None,
            };
            let u = user_of(tenant, principal, key)?;
            store.user_drive(tenant, u).ok_or_else(no_mysite)
        }
        DriveBase::Drive(id) => store.drive_by_id(tenant, id).ok_or_else(item_not_found),
        DriveBase::SiteDefault(site) => {
            let s = resolve_site(store, site)?;
            store.sites[s]
                .drives
                .first()
                .copied()
                .ok_or_else(item_not_found)
        }
        DriveBase::SiteDrive(site, id) => {
            let s = resolve_site(store, site)?;
            store.sites[s]
                .drives
                .iter()
                .copied()
                .find(|&d| store.drives[d].id == *id)
                .ok_or_else(item_not_found)
        }
    }
}

/// The id of the item an address names (404 `itemNotFound` when there is none; 400 when a
/// path runs through a file).
pub(crate) fn find(store: &FileStore, d: usize, item: &ItemRef) -> Result<String, GraphError> {
    let drive = &store.drives[d];
    let (start, names): (String, &[String]) = match item {
        ItemRef::Root => return Ok(drive.root.clone()),
        ItemRef::Id(id) => {
            return drive
                .item(id)
                .map(|_| id.clone())
                .ok_or_else(item_not_found);
        }
        ItemRef::RootPath(names) => (drive.root.clone(), names),
        ItemRef::IdPath(id, names) => {
            if drive.item(id).is_none() {
                return Err(item_not_found());
            }
            (id.clone(), names)
        }
    };
    let mut cur = start;
    for name in names {
        let folder = drive.item(&cur).is_some_and(Item::is_folder);
        if !folder {
            return Err(invalid_request(format!(
                "'{}' is a file, not a folder.",
                drive
                    .item(&cur)
                    .map(|i| i.name.as_str())
                    .unwrap_or_default()
            )));
        }
        cur = drive
            .child_named(&cur, name)
            .ok_or_else(item_not_found)?
            .to_string();
    }
    Ok(cur)
}

// --- dispatch ---------------------------------------------------------------------------

/// Runs one files request (authenticated; permissions are checked here, per drive).
pub(crate) async fn handle(
    emulator: &Emulator,
    req: &GraphRequest,
    route: &FilesRoute,
    principal: &Principal,
) -> Result<GraphResponse, GraphError> {
    if !perms::any(principal) {
        return Err(access_denied());
    }
    let fx = Fx {
        emulator,
        req,
        principal,
        q: FilesQuery::parse(req.query.as_deref())?,
        now: crate::clock::now_unix(),
    };
    if let (
        FilesRoute::Item {
            base,
            item,
            tail: ItemTail::Content,
            ..
        },
        &Method::PUT,
    ) = (route, &req.method)
    {
        return upload::simple(&fx, base, item).await;
    }
    fx.sync(|tenant, store| dispatch(&fx, tenant, store, route))
}

fn dispatch(
    fx: &Fx<'_>,
    tenant: &Tenant,
    store: &mut FileStore,
    route: &FilesRoute,
) -> Result<GraphResponse, GraphError> {
    let method = &fx.req.method;
    match route {
        FilesRoute::Sites => list_sites(fx, store),
        FilesRoute::Site(site) => {
            let s = resolve_site(store, site)?;
            if !perms::may_read_site(fx.principal, &store.sites[s]) {
                return Err(access_denied());
            }
            let mut body = render::site(&store.sites[s], fx.q.select.as_deref());
            body.insert(
                "@odata.context".into(),
                json!("https://graph.microsoft.com/v1.0/$metadata#sites/$entity"),
            );
            Ok(GraphResponse::json(Value::Object(body)))
        }
        FilesRoute::Drives(of) => list_drives(fx, tenant, store, of),
        FilesRoute::Drive(base) => {
            let d = resolve_drive(store, tenant, fx.principal, base)?;
            perms::check(fx.principal, tenant, store, d, Access::Read)?;
            let mut body = render::drive(store, d, fx.q.select.as_deref());
            body.insert(
                "@odata.context".into(),
                json!("https://graph.microsoft.com/v1.0/$metadata#drives/$entity"),
            );
            Ok(GraphResponse::json(Value::Object(body)))
        }
        FilesRoute::Item {
            base,
            item,
            tail,
            delta_token,
        } => {
            let d = resolve_drive(store, tenant, fx.principal, base)?;
            let access = if *method == Method::GET {
                Access::Read
            } else {
                Access::Write
            };
            // Copy reads here and writes wherever the destination is (checked there).
            let access = if *tail == ItemTail::Copy {
                Access::Read
            } else {
                access
            };
            perms::check(fx.principal, tenant, store, d, access)?;
            match (tail, method) {
                (ItemTail::None, &Method::GET) => get_item(fx, store, d, item),
                (ItemTail::None, &Method::PATCH) => update_item(fx, tenant, store, d, item),
                (ItemTail::None, &Method::DELETE) => delete_item(fx, store, d, item),
                (ItemTail::Children, &Method::GET) => list_children(fx, store, d, item),
                (ItemTail::Children, &Method::POST) => create_folder(fx, tenant, store, d, item),
                (ItemTail::Content, &Method::GET) => download(fx, store, d, item),
                (ItemTail::CreateUploadSession, _) => {
                    upload::create_session(fx, tenant, store, d, item)
                }
                (ItemTail::Copy, _) => copy(fx, tenant, store, d, item),
                (ItemTail::Delta, _) => {
                    if *item != ItemRef::Root {
                        return Err(invalid_request(
                            "Delta is only supported on the root of a drive (…/root/delta).",
                        ));
                    }
                    delta::delta(fx, store, d, delta_token.as_deref())
                }
                _ => Err(GraphError::method_not_allowed()),
            }
        }
    }
}

// --- sites and drives ---------------------------------------------------------------------

fn list_sites(fx: &Fx<'_>, store: &FileStore) -> Result<GraphResponse, GraphError> {
    let query = fx.q.search.clone().unwrap_or_else(|| "*".into());
    let query = query.trim().to_lowercase();
    let value: Vec<Value> = store
        .sites
        .iter()
        .filter(|s| perms::may_read_site(fx.principal, s))
        .filter(|s| {
            query.is_empty()
                || query == "*"
                || [&s.name, &s.display_name, &s.description]
                    .iter()
                    .any(|f| f.to_lowercase().contains(&query))
        })
        .map(|s| Value::Object(render::site(s, fx.q.select.as_deref())))
        .collect();
    // An app that may read no site at all is denied, as Graph does.
    if !perms::may_list_sites(fx.principal) {
        return Err(access_denied());
    }
    Ok(GraphResponse::json(json!({
        "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#sites",
        "value": value,
    })))
}

fn list_drives(
    fx: &Fx<'_>,
    tenant: &Tenant,
    store: &mut FileStore,
    of: &DrivesOf,
) -> Result<GraphResponse, GraphError> {
    let drives: Vec<usize> = match of {
        DrivesOf::Me => vec![resolve_drive(store, tenant, fx.principal, &DriveBase::Me)?],
        DrivesOf::User(u) => vec![resolve_drive(
            store,
            tenant,
            fx.principal,
            &DriveBase::User(u.clone()),
        )?],
        DrivesOf::Site(site) => {
            let s = resolve_site(store, site)?;
            store.sites[s].drives.clone()
        }
    };
    for &d in &drives {
        perms::check(fx.principal, tenant, store, d, Access::Read)?;
    }
    let value: Vec<Value> = drives
        .iter()
        .map(|&d| Value::Object(render::drive(store, d, fx.q.select.as_deref())))
        .collect();
    Ok(GraphResponse::json(json!({
        "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#drives",
        "value": value,
    })))
}

// --- items ------------------------------------------------------------------------------

fn get_item(
    fx: &Fx<'_>,
    store: &FileStore,
    d: usize,
    item: &ItemRef,
) -> Result<GraphResponse, GraphError> {
    let id = find(store, d, item)?;
    render::check_select(fx.q.select.as_deref())?;
    let drive = &store.drives[d];
    let mut body = render::item(store, d, &drive.items[&id], &fx.render());
    if let Some(expand) = &fx.q.expand {
        if !expand.trim().eq_ignore_ascii_case("children") {
            return Err(invalid_request(format!(
                "Only $expand=children is supported on driveItems, not '{expand}'."
            )));
        }
        let children: Vec<Value> = sorted_children(drive, &id, &[])
            .iter()
            .map(|c| Value::Object(render::item(store, d, &drive.items[c], &fx.render())))
            .collect();
        body.insert("children".into(), Value::Array(children));
    }
    body.insert(
        "@odata.context".into(),
        json!(format!(
            "https://graph.microsoft.com/v1.0/$metadata#drives('{}')/items/$entity",
            drive.id
        )),
    );
    Ok(GraphResponse::json(Value::Object(body)))
}

/// `$orderby` keys: (property, descending).
fn parse_orderby(raw: Option<&str>) -> Result<Vec<(String, bool)>, GraphError> {
    let Some(raw) = raw else {
        return Ok(Vec::new());
    };
    let mut keys = Vec::new();
    for part in raw.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let mut words = part.split_whitespace();
        let prop = words.next().unwrap_or_default();
        let desc = match words.next().map(str::to_ascii_lowercase).as_deref() {
            None | Some("asc") => false,
            Some("desc") => true,
            Some(other) => {
                return Err(invalid_request(format!(
                    "Invalid $orderby direction '{other}': use asc or desc."
                )));
            }
        };
        let known = ["name", "lastModifiedDateTime", "size", "createdDateTime"];
        let Some(prop) = known.iter().find(|k| k.eq_ignore_ascii_case(prop)) else {
            return Err(invalid_request(format!(
                "Invalid $orderby property '{prop}': driveItem collections sort by name, lastModifiedDateTime, size or createdDateTime."
            )));
        };
        keys.push(((*prop).to_string(), desc));
    }
    Ok(keys)
}

/// A folder's children in `$orderby` order (then by name, case-insensitively, then id).
fn sorted_children(
    drive: &crate::files::Drive,
    folder: &str,
    keys: &[(String, bool)],
) -> Vec<String> {
    let mut children: Vec<&Item> = drive
        .item(folder)
        .map(|f| f.children().iter().filter_map(|c| drive.item(c)).collect())
        .unwrap_or_default();
    children.sort_by(|a, b| {
        for (key, desc) in keys {
            let ord = match key.as_str() {
                "name" => a.name.to_lowercase().cmp(&b.name.to_lowercase()),
                "lastModifiedDateTime" => a.modified.cmp(&b.modified),
                "createdDateTime" => a.created.cmp(&b.created),
                _ => a.size.cmp(&b.size),
            };
            let ord = if *desc { ord.reverse() } else { ord };
            if ord != std::cmp::Ordering::Equal {
                return ord;
            }
        }
        a.name
            .to_lowercase()
            .cmp(&b.name.to_lowercase())
            .then_with(|| a.id.cmp(&b.id))
    });
    children.into_iter().map(|i| i.id.clone()).collect()
}

/// What a children `$skiptoken` carries: the offset and the original options.
#[derive(serde::Serialize, serde::Deserialize)]
struct PageToken {
    o: usize,
    t: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ob: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    s: Option<Vec<String>>,
}

fn list_children(
    fx: &Fx<'_>,
    store: &FileStore,
    d: usize,
    item: &ItemRef,
) -> Result<GraphResponse, GraphError> {
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let id = find(store, d, item)?;
    let drive = &store.drives[d];
    if !drive.items[&id].is_folder() {
        return Err(invalid_request(
            "The item is a file: only folders have children.",
        ));
    }
    let token: Option<PageToken> = match &fx.q.skiptoken {
        None => None,
        Some(raw) => Some(
            URL_SAFE_NO_PAD
                .decode(raw.trim())
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok())
                .ok_or_else(|| invalid_request("The $skiptoken is not valid."))?,
        ),
    };
    let top = fx.q.page_size(token.as_ref().map(|t| t.t))?;
    let orderby =
        fx.q.orderby
            .clone()
            .or_else(|| token.as_ref().and_then(|t| t.ob.clone()));
    let select =
        fx.q.select
            .clone()
            .or_else(|| token.as_ref().and_then(|t| t.s.clone()));
    render::check_select(select.as_deref())?;
    let keys = parse_orderby(orderby.as_deref())?;
    let offset = token.as_ref().map_or(0, |t| t.o);
    let all = sorted_children(drive, &id, &keys);
    let r = render::Render {
        base_url: &fx.req.base_url,
        select: select.as_deref(),
        now: fx.now,
    };
    let value: Vec<Value> = all
        .iter()
        .skip(offset)
        .take(top)
        .map(|c| Value::Object(render::item(store, d, &drive.items[c], &r)))
        .collect();
    let mut body = Map::new();
    body.insert(
        "@odata.context".into(),
        json!(format!(
            "https://graph.microsoft.com/v1.0/$metadata#drives('{}')/items('{id}')/children",
            drive.id
        )),
    );
    body.insert("value".into(), Value::Array(value));
    if offset + top < all.len() {
        let next = PageToken {
            o: offset + top,
            t: top,
            ob: orderby,
            s: select,
        };
        let token = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&next).unwrap_or_default());
        body.insert(
            "@odata.nextLink".into(),
            json!(format!(
                "{}/v1.0{}?$skiptoken={token}",
                fx.req.base_url, fx.req.path
            )),
        );
    }
    Ok(GraphResponse::json(Value::Object(body)))
}

/// `GET …/content`: 302 to the item's pre-authenticated download URL.
fn download(
    fx: &Fx<'_>,
    store: &FileStore,
    d: usize,
    item: &ItemRef,
) -> Result<GraphResponse, GraphError> {
    let id = find(store, d, item)?;
    let it = &store.drives[d].items[&id];
    if it.is_folder() {
        return Err(invalid_request(
            "The item is a folder: only files have content to download.",
        ));
    }
    let url = render::download_url(store, d, it, fx.req.base_url.as_str(), fx.now);
    let mut response = GraphResponse::empty(StatusCode::FOUND);
    response.headers.push(("Location", url));
    Ok(response)
}

/// Resolves a name clash under `parent`: the name to use, or the existing item to replace.
pub(crate) enum NameChoice {
    Free(String),
    Existing(String),
}

pub(crate) fn choose_name(
    store: &FileStore,
    d: usize,
    parent: &str,
    name: &str,
    conflict: Conflict,
    folder: bool,
    ignore: Option<&str>,
) -> Result<NameChoice, GraphError> {
    let drive = &store.drives[d];
    let existing = drive
        .child_named(parent, name)
        .filter(|e| Some(*e) != ignore);
    let Some(existing) = existing else {
        return Ok(NameChoice::Free(name.to_string()));
    };
    match conflict {
        Conflict::Fail => Err(name_already_exists(name)),
        Conflict::Replace => Ok(NameChoice::Existing(existing.to_string())),
        Conflict::Rename => {
            let mut n = 1;
            loop {
                let candidate = crate::files::numbered_name(name, n, folder);
                if drive.child_named(parent, &candidate).is_none() {
                    return Ok(NameChoice::Free(candidate));
                }
                n += 1;
            }
        }
    }
}

/// A new empty folder item.
pub(crate) fn new_folder(
    store: &mut FileStore,
    parent: &str,
    name: &str,
    who: &Identity,
    now: i64,
) -> Item {
    Item {
        id: store.new_item_id(),
        name: name.to_string(),
        parent: Some(parent.to_string()),
        created: now,
        modified: now,
        created_by: who.clone(),
        modified_by: who.clone(),
        guid: store.new_guid(),
        version: 1,
        content_version: 1,
        seq: 0,
        ord: 0,
        size: 0,
        kind: ItemKind::Folder {
            children: Vec::new(),
        },
    }
}

fn create_folder(
    fx: &Fx<'_>,
    tenant: &Tenant,
    store: &mut FileStore,
    d: usize,
    item: &ItemRef,
) -> Result<GraphResponse, GraphError> {
    let parent = find(store, d, item)?;
    if !store.drives[d].items[&parent].is_folder() {
        return Err(invalid_request("The parent item is a file, not a folder."));
    }
    let body = fx.json_body()?;
    let name = get_ci(&body, "name")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid_request("The folder's name is required."))?
        .to_string();
    if get_ci(&body, "file").is_some() {
        return Err(invalid_request(
            "Files cannot be created with POST …/children: upload them with PUT …/content or an upload session.",
        ));
    }
    if !matches!(get_ci(&body, "folder"), Some(Value::Object(_))) {
        return Err(invalid_request(
            "A new item needs the folder facet: {\"name\": …, \"folder\": {}}.",
        ));
    }
    check_name(&name)?;
    let conflict = match get_ci(&body, "@microsoft.graph.conflictBehavior") {
        Some(Value::String(v)) => Conflict::parse(v).ok_or_else(|| {
            invalid_request(format!("Invalid @microsoft.graph.conflictBehavior '{v}'."))
        })?,
        _ => fx.q.conflict.unwrap_or(Conflict::Fail),
    };
    let who = fx.identity(tenant);
    let name = match choose_name(store, d, &parent, &name, conflict, true, None)? {
        NameChoice::Free(n) => n,
        NameChoice::Existing(existing) => {
            store.drives[d].delete(&existing);
            name
        }
    };
    let folder = new_folder(store, &parent, &name, &who, fx.now);
    let id = store.drives[d].insert(folder);
    let body = render::item(store, d, &store.drives[d].items[&id], &fx.render());
    Ok(created(Value::Object(body)))
}

/// A `parentReference` in a PATCH or copy body: the folder it names in drive `d`.
fn parent_from_reference(
    store: &FileStore,
    d: usize,
    reference: &Map<String, Value>,
) -> Result<Option<String>, GraphError> {
    if let Some(id) = get_ci(reference, "id").and_then(Value::as_str) {
        let Some(target) = store.drives[d].item(id) else {
            return Err(item_not_found());
        };
        if !target.is_folder() {
            return Err(invalid_request("The destination is a file, not a folder."));
        }
        return Ok(Some(id.to_string()));
    }
    if let Some(path) = get_ci(reference, "path").and_then(Value::as_str) {
        // `/drive/root:/X` or `/drives/{id}/root:/X`.
        let decoded = percent_encoding::percent_decode_str(path).decode_utf8_lossy();
        let Some((_, rest)) = decoded.split_once("root:") else {
            return Err(invalid_request(format!(
                "Invalid parentReference.path '{path}': use /drive/root:/folder."
            )));
        };
        let names: Vec<String> = rest
            .split('/')
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect();
        let id = find(store, d, &ItemRef::RootPath(names.clone())).or_else(|e| {
            if names.is_empty() {
                Ok(store.drives[d].root.clone())
            } else {
                Err(e)
            }
        })?;
        if !store.drives[d].items[&id].is_folder() {
            return Err(invalid_request("The destination is a file, not a folder."));
        }
        return Ok(Some(id));
    }
    Ok(None)
}

fn update_item(
    fx: &Fx<'_>,
    tenant: &Tenant,
    store: &mut FileStore,
    d: usize,
    item: &ItemRef,
) -> Result<GraphResponse, GraphError> {
    let id = find(store, d, item)?;
    let body = fx.json_body()?;
    let drive = &store.drives[d];
    if id == drive.root {
        return Err(invalid_request(
            "The root of a drive cannot be renamed or moved.",
        ));
    }
    if let Some(value) = fx.if_match()
        && !if_match_ok(&drive.items[&id], &value)
    {
        return Err(precondition_failed());
    }
    let name = match get_ci(&body, "name") {
        None | Some(Value::Null) => None,
        Some(Value::String(n)) => {
            check_name(n)?;
            Some(n.clone())
        }
        Some(_) => return Err(invalid_request("name must be a string.")),
    };
    let new_parent = match get_ci(&body, "parentReference") {
        None | Some(Value::Null) => None,
        Some(Value::Object(reference)) => {
            if let Some(drive_id) = get_ci(reference, "driveId").and_then(Value::as_str)
                && drive_id != drive.id
            {
                return Err(invalid_request(
                    "Items cannot be moved to another drive with PATCH: copy them instead.",
                ));
            }
            parent_from_reference(store, d, reference)?
        }
        Some(_) => return Err(invalid_request("parentReference must be an object.")),
    };
    let drive = &store.drives[d];
    let current_parent = drive.items[&id].parent.clone().unwrap_or_default();
    if let Some(p) = &new_parent
        && drive.is_within(p, &id)
    {
        return Err(invalid_request(
            "A folder cannot be moved into itself or one of its subfolders.",
        ));
    }
    let target_parent = new_parent.clone().unwrap_or(current_parent);
    let target_name = name
        .clone()
        .unwrap_or_else(|| drive.items[&id].name.clone());
    let conflict = match get_ci(&body, "@microsoft.graph.conflictBehavior") {
        Some(Value::String(v)) => Conflict::parse(v).unwrap_or(Conflict::Fail),
        _ => fx.q.conflict.unwrap_or(Conflict::Fail),
    };
    let folder = drive.items[&id].is_folder();
    let final_name = match choose_name(
        store,
        d,
        &target_parent,
        &target_name,
        conflict,
        folder,
        Some(&id),
    )? {
        NameChoice::Free(n) => n,
        NameChoice::Existing(existing) => {
            if store.drives[d].is_within(&id, &existing) {
                return Err(name_already_exists(&target_name));
            }
            store.drives[d].delete(&existing);
            target_name
        }
    };
    let who = fx.identity(tenant);
    let rename =
        (name.is_some() || final_name != store.drives[d].items[&id].name).then_some(final_name);
    store.drives[d].update(&id, rename.as_deref(), new_parent.as_deref(), &who, fx.now);
    let body = render::item(store, d, &store.drives[d].items[&id], &fx.render());
    Ok(GraphResponse::json(Value::Object(body)))
}

fn delete_item(
    fx: &Fx<'_>,
    store: &mut FileStore,
    d: usize,
    item: &ItemRef,
) -> Result<GraphResponse, GraphError> {
    let id = find(store, d, item)?;
    let drive = &store.drives[d];
    if id == drive.root {
        return Err(invalid_request("The root of a drive cannot be deleted."));
    }
    if let Some(value) = fx.if_match()
        && !if_match_ok(&drive.items[&id], &value)
    {
        return Err(precondition_failed());
    }
    store.drives[d].delete(&id);
    Ok(GraphResponse::empty(StatusCode::NO_CONTENT))
}

/// `POST …/items/{id}/copy`: 202 with the monitor URL; the copy happens at its first poll.
fn copy(
    fx: &Fx<'_>,
    tenant: &Tenant,
    store: &mut FileStore,
    d: usize,
    item: &ItemRef,
) -> Result<GraphResponse, GraphError> {
    let source = find(store, d, item)?;
    if source == store.drives[d].root {
        return Err(invalid_request("The root of a drive cannot be copied."));
    }
    let body = fx.json_body()?;
    let reference = match get_ci(&body, "parentReference") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(r)) => r.clone(),
        Some(_) => return Err(invalid_request("parentReference must be an object.")),
    };
    let dest = match get_ci(&reference, "driveId").and_then(Value::as_str) {
        Some(id) => store.drive_by_id(tenant, id).ok_or_else(item_not_found)?,
        None => d,
    };
    let dest_parent = match parent_from_reference(store, dest, &reference)? {
        Some(p) => p,
        None if dest == d => store.drives[d].items[&source]
            .parent
            .clone()
            .unwrap_or_default(),
        None => store.drives[dest].root.clone(),
    };
    if dest == d && store.drives[d].is_within(&dest_parent, &source) {
        return Err(invalid_request(
            "A folder cannot be copied into itself or one of its subfolders.",
        ));
    }
    let name = match get_ci(&body, "name") {
        None | Some(Value::Null) => None,
        Some(Value::String(n)) => {
            check_name(n)?;
            Some(n.clone())
        }
        Some(_) => return Err(invalid_request("name must be a string.")),
    };
    if dest != d {
        perms::check(fx.principal, tenant, store, dest, Access::Write)?;
    } else {
        perms::check(fx.principal, tenant, store, d, Access::Write)?;
    }
    let conflict = match get_ci(&body, "@microsoft.graph.conflictBehavior") {
        Some(Value::String(v)) => Conflict::parse(v).unwrap_or(Conflict::Fail),
        _ => fx.q.conflict.unwrap_or(Conflict::Fail),
    };
    let job = store.random_token();
    store.jobs.insert(
        job.clone(),
        crate::files::CopyJob {
            source_drive: d,
            source,
            dest_drive: dest,
            dest_parent,
            name,
            conflict,
            who: fx.identity(tenant),
            now: fx.now,
            result: None,
        },
    );
    let mut response = GraphResponse::empty(StatusCode::ACCEPTED);
    response.headers.push((
        "Location",
        format!("{}/_api/v2.0/monitor/{job}", fx.req.base_url),
    ));
    Ok(response)
}

/// Performs a copy job: the new item's id, or the error the monitor reports.
pub(crate) fn perform_copy(
    store: &mut FileStore,
    job: &crate::files::CopyJob,
) -> Result<String, (&'static str, String)> {
    let gone = || {
        (
            "itemNotFound",
            "The source item or the destination folder no longer exists.".to_string(),
        )
    };
    let Some(src) = store.drives[job.source_drive].item(&job.source) else {
        return Err(gone());
    };
    let name = job.name.clone().unwrap_or_else(|| src.name.clone());
    let folder = src.is_folder();
    let size = src.size;
    if !store.drives[job.dest_drive]
        .item(&job.dest_parent)
        .is_some_and(Item::is_folder)
    {
        return Err(gone());
    }
    let choice = choose_name(
        store,
        job.dest_drive,
        &job.dest_parent,
        &name,
        job.conflict,
        folder,
        None,
    )
    .map_err(|e| (e.code, e.message))?;
    let replaced = match &choice {
        NameChoice::Existing(existing) => {
            if job.dest_drive == job.source_drive
                && store.drives[job.source_drive].is_within(&job.source, existing)
            {
                return Err((
                    "nameAlreadyExists",
                    format!("The specified item name already exists. Name: {name}"),
                ));
            }
            Some(existing.clone())
        }
        NameChoice::Free(_) => None,
    };
    // Room for the copy, counting what a replaced item frees (checked before it goes).
    let dest = &store.drives[job.dest_drive];
    let freed = replaced
        .as_ref()
        .and_then(|e| dest.item(e))
        .map_or(0, |e| e.size);
    if dest.used.saturating_sub(freed).saturating_add(size) > dest.quota_total {
        return Err((
            "quotaLimitReached",
            "Insufficient Space Available".to_string(),
        ));
    }
    let name = match choice {
        NameChoice::Free(n) => n,
        NameChoice::Existing(existing) => {
            store.drives[job.dest_drive].delete(&existing);
            name
        }
    };
    // Snapshot the source tree (the destination may be the same drive).
    let src_drive = &store.drives[job.source_drive];
    let tree: Vec<Item> = src_drive
        .subtree(&job.source)
        .iter()
        .filter_map(|id| src_drive.item(id).cloned())
        .collect();
    let mut mapping: std::collections::HashMap<String, String> = std::collections::HashMap::new();
    let mut new_root = String::new();
    for (i, old) in tree.into_iter().enumerate() {
        let new_id = store.new_item_id();
        let guid = store.new_guid();
        let parent = if i == 0 {
            job.dest_parent.clone()
        } else {
            match old.parent.as_ref().and_then(|p| mapping.get(p)) {
                Some(p) => p.clone(),
                None => continue,
            }
        };
        mapping.insert(old.id.clone(), new_id.clone());
        let kind = match &old.kind {
            ItemKind::Folder { .. } => ItemKind::Folder {
                children: Vec::new(),
            },
            ItemKind::File(f) => ItemKind::File(f.clone()),
        };
        let copy = Item {
            id: new_id.clone(),
            name: if i == 0 {
                name.clone()
            } else {
                old.name.clone()
            },
            parent: Some(parent),
            created: job.now,
            modified: job.now,
            created_by: job.who.clone(),
            modified_by: job.who.clone(),
            guid,
            version: 1,
            content_version: 1,
            seq: 0,
            ord: 0,
            size: if old.is_folder() { 0 } else { old.size },
            kind,
        };
        store.drives[job.dest_drive].insert(copy);
        if i == 0 {
            new_root = new_id;
        }
    }
    Ok(new_root)
}
