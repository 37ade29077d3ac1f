//! `/subscriptions` (graph-protocol.md §10): create (with the validation handshake), list,
//! get, renew, delete; and change detection: after every write the watched items are
//! compared with what each subscription last saw, and the differences go out as
//! notifications (`crate::subscriptions` delivers them).
//!
//! Changes are found by comparing snapshots (item id → version) rather than by hooks in
//! every write path, so every way data changes (API writes, `sendMail` deliveries, meeting
//! invitations, upload sessions) is covered without touching mail, calendar or files code.

use std::collections::{BTreeMap, HashMap};

use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use serde_json::{Map, Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::auth::{self, Permission, Principal};
use super::errors::GraphError;
use super::routes::{Route, Subject};
use super::{GraphRequest, GraphResponse};
use crate::Emulator;
use crate::subscriptions::{
    self as engine, EncryptionCert, HandshakeError, Snapshot, Subscription, Target, lock,
};

const ENTITY_CONTEXT: &str = "https://graph.microsoft.com/v1.0/$metadata#subscriptions/$entity";
const COLLECTION_CONTEXT: &str = "https://graph.microsoft.com/v1.0/$metadata#subscriptions";

/// Maximum lifetimes in minutes (§10.5, the newer table).
const OUTLOOK_MAX_MINUTES: i64 = 10_080;
const OUTLOOK_RICH_MAX_MINUTES: i64 = 1_440;
const DRIVE_MAX_MINUTES: i64 = 42_300;
const DIRECTORY_MAX_MINUTES: i64 = 41_760;

const DRIVE_READ: Permission = Permission {
    application: &[
        "Files.Read.All",
        "Files.ReadWrite.All",
        "Sites.Read.All",
        "Sites.ReadWrite.All",
    ],
    delegated: &[
        "Files.Read",
        "Files.ReadWrite",
        "Files.Read.All",
        "Files.ReadWrite.All",
        "Sites.Read.All",
        "Sites.ReadWrite.All",
    ],
};

fn invalid_request(message: impl Into<String>) -> GraphError {
    GraphError::new(StatusCode::BAD_REQUEST, "InvalidRequest", message)
}

fn not_found() -> GraphError {
    GraphError::new(
        StatusCode::NOT_FOUND,
        "ResourceNotFound",
        "The object was not found.",
    )
}

fn validation_failed(detail: &str) -> GraphError {
    GraphError::new(
        StatusCode::BAD_REQUEST,
        "ValidationError",
        format!("Subscription validation request failed. {detail}"),
    )
}

fn handshake_error(err: HandshakeError) -> GraphError {
    match err {
        HandshakeError::NotOk => validation_failed(
            "Notification endpoint must respond with 200 OK to validation request.",
        ),
        HandshakeError::Mismatch => {
            validation_failed("Response must exactly match validationToken query parameter.")
        }
        HandshakeError::TimedOut => invalid_request("Subscription validation request timed out."),
    }
}

/// `/subscriptions`, `/subscriptions/{id}`.
pub(crate) async fn handle(
    emulator: &Emulator,
    req: &GraphRequest,
    route: &Route,
    principal: &Principal,
) -> Result<GraphResponse, GraphError> {
    let subs = &emulator.state().subscriptions;
    subs.purge_expired();
    match (route, &req.method) {
        (Route::Subscriptions, &Method::POST) => create(emulator, req, principal).await,
        (Route::Subscriptions, _) => {
            let value: Vec<Value> = lock(&subs.subs)
                .values()
                .filter(|s| visible(s, principal))
                .map(Subscription::json)
                .collect();
            Ok(GraphResponse::json(
                json!({"@odata.context": COLLECTION_CONTEXT, "value": value}),
            ))
        }
        (Route::Subscription(id), method) => {
            let mut all = lock(&subs.subs);
            let sub = all
                .get_mut(id.as_str())
                .filter(|s| visible(s, principal))
                .ok_or_else(not_found)?;
            match *method {
                Method::DELETE => {
                    all.remove(id.as_str());
                    Ok(GraphResponse::empty(StatusCode::NO_CONTENT))
                }
                Method::PATCH => {
                    renew(emulator, sub, &req.body, subs.now())?;
                    Ok(GraphResponse::json(entity(sub)))
                }
                _ => Ok(GraphResponse::json(entity(sub))),
            }
        }
        _ => Err(GraphError::method_not_allowed()),
    }
}

/// An app sees the subscriptions it created; a delegated caller those its app created for it.
fn visible(sub: &Subscription, principal: &Principal) -> bool {
    if !sub.app_id.eq_ignore_ascii_case(principal.app_id()) {
        return false;
    }
    match principal {
        Principal::App { .. } => true,
        Principal::User { user_id, .. } => sub.creator_id.eq_ignore_ascii_case(user_id),
    }
}

fn entity(sub: &Subscription) -> Value {
    let mut out = Map::new();
    out.insert(
        "@odata.context".into(),
        Value::String(ENTITY_CONTEXT.into()),
    );
    if let Value::Object(fields) = sub.json() {
        out.extend(fields);
    }
    Value::Object(out)
}

fn json_object(body: &[u8]) -> Result<Map<String, Value>, GraphError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(invalid_request(
            "Could not process subscription creation payload. Are all property names spelled and camelCased properly?",
        )),
    }
}

fn string_prop<'a>(
    body: &'a Map<String, Value>,
    name: &str,
) -> Result<Option<&'a str>, GraphError> {
    match body.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.as_str())),
        Some(_) => Err(invalid_request(format!(
            "Invalid value for property '{name}': a string is expected."
        ))),
    }
}

fn required<'a>(body: &'a Map<String, Value>, name: &str) -> Result<&'a str, GraphError> {
    string_prop(body, name)?
        .filter(|s| !s.trim().is_empty())
        .ok_or_else(|| {
            invalid_request(format!(
                "{name} is a required property for subscription creation."
            ))
        })
}

/// An ISO 8601 date-time; without an offset it is UTC (as Graph reads it).
fn parse_time(raw: &str) -> Option<OffsetDateTime> {
    let raw = raw.trim();
    OffsetDateTime::parse(raw, &Rfc3339)
        .or_else(|_| OffsetDateTime::parse(&format!("{raw}Z"), &Rfc3339))
        .ok()
}

fn check_expiration(
    raw: &str,
    now: OffsetDateTime,
    max_minutes: i64,
) -> Result<OffsetDateTime, GraphError> {
    let at = parse_time(raw).ok_or_else(|| {
        invalid_request(format!(
            "Invalid value for property 'expirationDateTime': '{raw}' is not a valid date-time."
        ))
    })?;
    if at <= now {
        return Err(invalid_request(
            "Subscription expiration date time cannot be in the past.",
        ));
    }
    if at > now + time::Duration::minutes(max_minutes) {
        return Err(GraphError::new(
            StatusCode::BAD_REQUEST,
            "ExtensionError",
            format!("Subscription expiration can only be {max_minutes} minutes in the future."),
        ));
    }
    Ok(at)
}

/// `https://…` anywhere, or `http://` to a loopback host (tests and local development) or
/// to one of `NotificationSettings::allow_http_hosts` (containers).
fn check_url(emulator: &Emulator, name: &str, raw: &str) -> Result<String, GraphError> {
    let bad = || {
        invalid_request(format!(
            "Invalid {name}: '{raw}'. It must be an absolute https URL (http only on a loopback host)."
        ))
    };
    let url = url::Url::parse(raw.trim()).map_err(|_| bad())?;
    let allowed = &emulator.state().config.notifications.allow_http_hosts;
    let loopback = match url.host() {
        Some(url::Host::Domain(d)) => {
            d.eq_ignore_ascii_case("localhost") || allowed.iter().any(|a| a.eq_ignore_ascii_case(d))
        }
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    };
    match url.scheme() {
        "https" if url.host().is_some() => Ok(url.to_string()),
        "http" if loopback => Ok(url.to_string()),
        _ => Err(bad()),
    }
}

/// The kinds of resource a subscription may name.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Outlook,
    Drive,
    Directory,
}

/// `mailFolders('inbox')` → (`mailFolders`, `inbox`).
fn split_key(segment: &str) -> (&str, Option<&str>) {
    match segment.split_once('(') {
        Some((name, rest)) if rest.ends_with(')') => {
            let key = rest[..rest.len() - 1].trim_matches(|c| c == '\'' || c == '"');
            (name, Some(key))
        }
        _ => (segment, None),
    }
}

enum Parsed {
    Messages(Subject, Option<String>),
    Events(Subject),
    Contacts(Subject),
    DriveOf(Subject),
    Drive(String),
    Users,
    Groups,
}

fn parse_resource(resource: &str) -> Option<Parsed> {
    let path = resource.split('?').next().unwrap_or_default();
    let decoded: Vec<String> = path
        .trim_matches('/')
        .split('/')
        .map(|s| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8_lossy()
                .into_owned()
        })
        .collect();
    let segs: Vec<(&str, Option<&str>)> = decoded.iter().map(|s| split_key(s)).collect();
    let is = |s: &str, name: &str| s.eq_ignore_ascii_case(name);
    let (subject, rest) = match segs.as_slice() {
        [(u, None)] if is(u, "users") => return Some(Parsed::Users),
        [(g, None)] if is(g, "groups") => return Some(Parsed::Groups),
        [(d, None), (id, None), (root, None)] if is(d, "drives") && is(root, "root") => {
            return Some(Parsed::Drive((*id).to_string()));
        }
        [(d, Some(id)), (root, None)] if is(d, "drives") && is(root, "root") => {
            return Some(Parsed::Drive((*id).to_string()));
        }
        [(me, None), rest @ ..] if is(me, "me") => (Subject::Me, rest),
        [(u, None), (id, None), rest @ ..] if is(u, "users") => {
            (Subject::User((*id).to_string()), rest)
        }
        [(u, Some(id)), rest @ ..] if is(u, "users") => (Subject::User((*id).to_string()), rest),
        _ => return None,
    };
    match rest {
        [(m, None)] if is(m, "messages") => Some(Parsed::Messages(subject, None)),
        [(f, Some(folder)), (m, None)] if is(f, "mailFolders") && is(m, "messages") => {
            Some(Parsed::Messages(subject, Some((*folder).to_string())))
        }
        [(f, None), (folder, None), (m, None)] if is(f, "mailFolders") && is(m, "messages") => {
            Some(Parsed::Messages(subject, Some((*folder).to_string())))
        }
        [(e, None)] if is(e, "events") => Some(Parsed::Events(subject)),
        [(c, None), (e, None)] if is(c, "calendar") && is(e, "events") => {
            Some(Parsed::Events(subject))
        }
        [(c, None)] if is(c, "contacts") => Some(Parsed::Contacts(subject)),
        [(d, None), (r, None)] if is(d, "drive") && is(r, "root") => Some(Parsed::DriveOf(subject)),
        _ => None,
    }
}

/// Resolves a resource to what it watches, checking the caller may read it.
fn resolve_target(
    emulator: &Emulator,
    resource: &str,
    principal: &Principal,
) -> Result<(Target, Kind), GraphError> {
    let state = emulator.state();
    let parsed = parse_resource(resource).ok_or_else(|| {
        invalid_request(format!(
            "Resource '{resource}' is not supported for change notifications."
        ))
    })?;
    let tenant = state
        .tenant
        .read()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let is_self = |u: usize| match principal {
        Principal::User { user_id, .. } => tenant.users[u].id.eq_ignore_ascii_case(user_id),
        Principal::App { .. } => false,
    };
    let outlook = |subject: &Subject,
                   own: &'static Permission,
                   shared: &'static Permission|
     -> Result<(usize, String), GraphError> {
        let u = super::mail::owner_of(&tenant, subject, principal)?;
        let needed = if is_self(u) { own } else { shared };
        if !principal.allows(needed) {
            return Err(super::mail::access_denied());
        }
        Ok((u, tenant.users[u].id.clone()))
    };
    match parsed {
        Parsed::Messages(subject, folder) => {
            let (u, user_id) = outlook(&subject, &auth::MAIL_READ, &auth::MAIL_READ_SHARED)?;
            let folder = match folder {
                None => None,
                Some(key) => {
                    let mut store = super::mail::lock_store(state);
                    let mailbox = store.mailbox(&tenant, u);
                    let id = mailbox
                        .folder(&key)
                        .map(|f| f.id.clone())
                        .ok_or_else(|| super::mail::unknown_folder(&key))?;
                    Some(id)
                }
            };
            Ok((Target::Messages { user_id, folder }, Kind::Outlook))
        }
        Parsed::Events(subject) => {
            let (_, user_id) = outlook(
                &subject,
                &auth::CALENDARS_READ,
                &auth::CALENDARS_READ_SHARED,
            )?;
            Ok((Target::Events { user_id }, Kind::Outlook))
        }
        Parsed::Contacts(subject) => {
            let (_, user_id) =
                outlook(&subject, &auth::CONTACTS_READ, &auth::CONTACTS_READ_SHARED)?;
            Ok((Target::Contacts { user_id }, Kind::Outlook))
        }
        Parsed::DriveOf(subject) => {
            if !principal.allows(&DRIVE_READ) {
                return Err(super::files::access_denied());
            }
            let u = match &subject {
                Subject::User(key) => tenant.find_user_or_address(key),
                Subject::Me => match principal {
                    Principal::User { user_id, .. } => tenant.find_user(user_id),
                    Principal::App { .. } => {
                        return Err(GraphError::bad_request(
                            "/me request is only valid with delegated authentication flow.",
                        ));
                    }
                },
            }
            .filter(|&u| crate::files::has_drive(&tenant, u))
            .ok_or_else(drive_not_found)?;
            let drive_id = crate::files::user_drive_id(state.config.seed, &tenant.users[u].id);
            Ok((Target::DriveRoot { drive_id }, Kind::Drive))
        }
        Parsed::Drive(id) => {
            if !principal.allows(&DRIVE_READ) {
                return Err(super::files::access_denied());
            }
            let mut store = crate::lock_files(state);
            let d = store
                .drive_by_id(&tenant, &id)
                .ok_or_else(drive_not_found)?;
            let drive_id = store.drives[d].id.clone();
            Ok((Target::DriveRoot { drive_id }, Kind::Drive))
        }
        Parsed::Users => {
            if !principal.allows(&auth::READ_USERS) {
                return Err(GraphError::insufficient_privileges());
            }
            Ok((Target::Users, Kind::Directory))
        }
        Parsed::Groups => {
            if !principal.allows(&auth::READ_GROUPS) {
                return Err(GraphError::insufficient_privileges());
            }
            Ok((Target::Groups, Kind::Directory))
        }
    }
}

fn drive_not_found() -> GraphError {
    GraphError::new(
        StatusCode::NOT_FOUND,
        "itemNotFound",
        "The resource could not be found.",
    )
}

/// `POST /subscriptions`.
async fn create(
    emulator: &Emulator,
    req: &GraphRequest,
    principal: &Principal,
) -> Result<GraphResponse, GraphError> {
    let state = emulator.state();
    let body = json_object(&req.body)?;
    let change_type = required(&body, "changeType")?.to_string();
    let notification_url = check_url(
        emulator,
        "notificationUrl",
        required(&body, "notificationUrl")?,
    )?;
    let resource = required(&body, "resource")?
        .trim()
        .trim_start_matches('/')
        .to_string();
    let expiration_raw = required(&body, "expirationDateTime")?;
    let lifecycle_url = string_prop(&body, "lifecycleNotificationUrl")?
        .map(|u| check_url(emulator, "lifecycleNotificationUrl", u))
        .transpose()?;
    let client_state = string_prop(&body, "clientState")?.map(str::to_string);
    if client_state
        .as_ref()
        .is_some_and(|s| s.chars().count() > 128)
    {
        return Err(invalid_request(
            "clientState must be at most 128 characters long.",
        ));
    }
    let latest_tls = string_prop(&body, "latestSupportedTlsVersion")?
        .unwrap_or("v1_2")
        .to_string();
    if !["v1_0", "v1_1", "v1_2", "v1_3"].contains(&latest_tls.as_str()) {
        return Err(invalid_request(format!(
            "Invalid latestSupportedTlsVersion '{latest_tls}'."
        )));
    }
    let include_resource_data = match body.get("includeResourceData") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            return Err(invalid_request(
                "Invalid value for property 'includeResourceData': a Boolean is expected.",
            ));
        }
    };

    let mut kinds = (false, false, false);
    for part in change_type.split(',').map(str::trim) {
        match part {
            "created" => kinds.0 = true,
            "updated" => kinds.1 = true,
            "deleted" => kinds.2 = true,
            other => {
                return Err(invalid_request(format!(
                    "Invalid changeType '{other}': use created, updated or deleted, comma-separated."
                )));
            }
        }
    }

    let (target, kind) = resolve_target(emulator, &resource, principal)?;
    let unsupported_change = match kind {
        Kind::Drive => kinds.0 || kinds.2,
        Kind::Directory => kinds.0,
        Kind::Outlook => false,
    };
    if unsupported_change {
        return Err(invalid_request(format!(
            "changeType '{change_type}' is not supported for resource '{resource}'."
        )));
    }

    let mut cert: Option<EncryptionCert> = None;
    let encryption_certificate = string_prop(&body, "encryptionCertificate")?.map(str::to_string);
    let encryption_certificate_id =
        string_prop(&body, "encryptionCertificateId")?.map(str::to_string);
    if include_resource_data {
        if kind != Kind::Outlook {
            return Err(invalid_request(format!(
                "includeResourceData is not supported for resource '{resource}'."
            )));
        }
        let (Some(pem), Some(_)) = (&encryption_certificate, &encryption_certificate_id) else {
            return Err(invalid_request(
                "encryptionCertificate and encryptionCertificateId are required when includeResourceData is true.",
            ));
        };
        cert = Some(
            engine::parse_certificate(pem)
                .map_err(|e| invalid_request(format!("Invalid encryptionCertificate: {e}.")))?,
        );
    }

    let max_minutes = match (kind, include_resource_data) {
        (Kind::Outlook, true) => OUTLOOK_RICH_MAX_MINUTES,
        (Kind::Outlook, false) => OUTLOOK_MAX_MINUTES,
        (Kind::Drive, _) => DRIVE_MAX_MINUTES,
        (Kind::Directory, _) => DIRECTORY_MAX_MINUTES,
    };
    let expiration = check_expiration(expiration_raw, state.subscriptions.now(), max_minutes)?;

    // The handshake comes last, so a request Graph would refuse anyway sends nothing.
    let id = uuid::Uuid::new_v4().to_string();
    engine::handshake(emulator, &notification_url, &id)
        .await
        .map_err(handshake_error)?;
    if let Some(url) = &lifecycle_url {
        engine::handshake(emulator, url, &id)
            .await
            .map_err(handshake_error)?;
    }

    let creator_id = match principal {
        Principal::User { user_id, .. } => user_id.clone(),
        Principal::App { app_id, .. } => {
            crate::entra::service_principal_id(&state.config.tenant_id, app_id)
        }
    };
    let (snapshot, _) = observe(emulator, &target, false, &Snapshot::Nothing);
    let sub = Subscription {
        id: id.clone(),
        resource,
        target,
        change_type,
        created: kinds.0,
        updated: kinds.1,
        deleted: kinds.2,
        notification_url,
        lifecycle_url,
        expiration,
        client_state,
        app_id: principal.app_id().to_string(),
        creator_id,
        latest_tls,
        include_resource_data,
        encryption_certificate,
        encryption_certificate_id,
        cert,
        snapshot,
    };
    let rendered = entity(&sub);
    lock(&state.subscriptions.subs).insert(id, sub);
    Ok(GraphResponse::with_status(
        StatusCode::CREATED,
        super::Payload::Json(rendered),
    ))
}

/// `PATCH /subscriptions/{id}`: a new `expirationDateTime` (and, as Graph allows, a new
/// `notificationUrl`); no new handshake. `lifecycleNotificationUrl` cannot be added.
fn renew(
    emulator: &Emulator,
    sub: &mut Subscription,
    body: &[u8],
    now: OffsetDateTime,
) -> Result<(), GraphError> {
    let body = json_object(body)?;
    if body.contains_key("lifecycleNotificationUrl") {
        return Err(invalid_request(
            "lifecycleNotificationUrl cannot be added or changed on an existing subscription.",
        ));
    }
    let max_minutes = match (&sub.target, sub.include_resource_data) {
        (Target::Messages { .. } | Target::Events { .. } | Target::Contacts { .. }, true) => {
            OUTLOOK_RICH_MAX_MINUTES
        }
        (Target::Messages { .. } | Target::Events { .. } | Target::Contacts { .. }, false) => {
            OUTLOOK_MAX_MINUTES
        }
        (Target::DriveRoot { .. }, _) => DRIVE_MAX_MINUTES,
        (Target::Users | Target::Groups, _) => DIRECTORY_MAX_MINUTES,
    };
    let expiration = string_prop(&body, "expirationDateTime")?
        .map(|raw| check_expiration(raw, now, max_minutes))
        .transpose()?;
    let url = string_prop(&body, "notificationUrl")?
        .map(|u| check_url(emulator, "notificationUrl", u))
        .transpose()?;
    if let Some(at) = expiration {
        sub.expiration = at;
    }
    if let Some(url) = url {
        sub.notification_url = url;
    }
    Ok(())
}

/// One change seen on a watched item.
struct Change {
    kind: &'static str,
    id: String,
    etag: String,
    /// The item's JSON, for rich notifications (created and updated only).
    data: Option<Value>,
}

/// Diffs an item list against the previous snapshot.
fn diff(
    prev: &Snapshot,
    current: Vec<(String, u64, String)>,
    mut render: impl FnMut(&str) -> Option<Value>,
) -> (Snapshot, Vec<Change>) {
    let empty = HashMap::new();
    let before = match prev {
        Snapshot::Items(items) => items,
        _ => &empty,
    };
    let mut changes = Vec::new();
    let mut next = HashMap::with_capacity(current.len());
    for (id, version, etag) in current {
        let kind = match before.get(&id) {
            None => Some("created"),
            Some((v, _)) if *v != version => Some("updated"),
            Some(_) => None,
        };
        if let Some(kind) = kind {
            changes.push(Change {
                kind,
                id: id.clone(),
                etag: etag.clone(),
                data: render(&id),
            });
        }
        next.insert(id, (version, etag));
    }
    for (id, (_, etag)) in before {
        if !next.contains_key(id) {
            changes.push(Change {
                kind: "deleted",
                id: id.clone(),
                etag: etag.clone(),
                data: None,
            });
        }
    }
    (Snapshot::Items(next), changes)
}

/// The watched items now, compared with `prev`. `rich`: render the JSON of what changed.
fn observe(
    emulator: &Emulator,
    target: &Target,
    rich: bool,
    prev: &Snapshot,
) -> (Snapshot, Vec<Change>) {
    let state = emulator.state();
    let tenant = state
        .tenant
        .read()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let unchanged = || (prev.clone(), Vec::new());
    match target {
        Target::Messages { user_id, folder } => {
            let Some(u) = tenant.find_user(user_id) else {
                return unchanged();
            };
            let mut store = super::mail::lock_store(state);
            let mb = store.mailbox(&tenant, u);
            let in_scope =
                |m: &crate::mail::Message| folder.as_ref().is_none_or(|f| *f == m.folder);
            let current = mb
                .messages
                .iter()
                .filter(|m| in_scope(m))
                .map(|m| (m.id.clone(), m.version, super::mail::render::etag(mb, m)))
                .collect();
            let view = super::mail::render::View::default();
            diff(prev, current, |id| {
                let m = mb.messages.iter().find(|m| m.id == id)?;
                rich.then(|| Value::Object(super::mail::render::message(mb, m, &view)))
            })
        }
        Target::Events { user_id } => {
            let Some(u) = tenant.find_user(user_id) else {
                return unchanged();
            };
            let mut store = super::calendar::lock_store(state);
            let b = store.get(&tenant, u);
            let current = b
                .events
                .iter()
                .map(|e| {
                    let key = super::calendar::render::change_key(b, &crate::calendar::whole(e));
                    (e.id.clone(), e.version, format!("W/\"{key}\""))
                })
                .collect();
            let view = super::calendar::render::View {
                zone: jiff::tz::TimeZone::UTC,
                zone_name: "UTC".to_string(),
                body_text: false,
            };
            diff(prev, current, |id| {
                let e = b.events.iter().find(|e| e.id == id)?;
                rich.then(|| {
                    Value::Object(super::calendar::render::event(
                        b,
                        &crate::calendar::whole(e),
                        &view,
                    ))
                })
            })
        }
        Target::Contacts { user_id } => {
            let Some(u) = tenant.find_user(user_id) else {
                return unchanged();
            };
            let mut store = super::calendar::lock_store(state);
            let b = store.get(&tenant, u);
            let current = b
                .contacts
                .iter()
                .map(|c| {
                    let key = crate::mail::ids::change_key(&b.key, c.ordinal, c.version);
                    (c.id.clone(), c.version, format!("W/\"{key}\""))
                })
                .collect();
            diff(prev, current, |id| {
                let c = b.contacts.iter().find(|c| c.id == id)?;
                rich.then(|| Value::Object(super::calendar::render::contact(b, c)))
            })
        }
        Target::DriveRoot { drive_id } => {
            let mut store = crate::lock_files(state);
            let Some(d) = store.drive_by_id(&tenant, drive_id) else {
                return unchanged();
            };
            let seq = store.drives[d].seq();
            match prev {
                Snapshot::Sequence(before) if *before < seq => (
                    Snapshot::Sequence(seq),
                    vec![Change {
                        kind: "updated",
                        id: drive_id.clone(),
                        etag: String::new(),
                        data: None,
                    }],
                ),
                _ => (Snapshot::Sequence(seq), Vec::new()),
            }
        }
        Target::Users | Target::Groups => (Snapshot::Nothing, Vec::new()),
    }
}

/// One `value` entry of a change notification (§10.3).
fn notification(sub: &Subscription, tenant_id: &str, change: &Change) -> Option<Value> {
    let (odata_type, collection, user_id) = match &sub.target {
        Target::Messages { user_id, .. } => ("#Microsoft.Graph.Message", "Messages", user_id),
        Target::Events { user_id } => ("#Microsoft.Graph.Event", "Events", user_id),
        Target::Contacts { user_id } => ("#Microsoft.Graph.Contact", "Contacts", user_id),
        Target::DriveRoot { .. } => {
            return Some(json!({
                "subscriptionId": sub.id,
                "subscriptionExpirationDateTime": engine::graph_time(sub.expiration),
                "changeType": change.kind,
                "resource": sub.resource,
                "clientState": sub.client_state,
                "tenantId": tenant_id,
            }));
        }
        Target::Users | Target::Groups => return None,
    };
    let path = format!("Users/{user_id}/{collection}/{}", change.id);
    let mut item = json!({
        "id": uuid::Uuid::new_v4().simple().to_string()[..13].to_string(),
        "subscriptionId": sub.id,
        "subscriptionExpirationDateTime": engine::graph_time(sub.expiration),
        "changeType": change.kind,
        "resource": path,
        "resourceData": {
            "@odata.type": odata_type,
            "@odata.id": path,
            "@odata.etag": change.etag,
            "id": change.id,
        },
        "clientState": sub.client_state,
        "tenantId": tenant_id,
    });
    if let (Some(cert), Some(data), Some(obj)) = (&sub.cert, &change.data, item.as_object_mut()) {
        let plaintext = data.to_string();
        let cert_id = sub.encryption_certificate_id.clone().unwrap_or_default();
        match engine::encrypt_content(cert, &cert_id, plaintext.as_bytes()) {
            Ok(content) => {
                obj.insert("encryptedContent".into(), content);
            }
            Err(err) => tracing::warn!(%err, "rich notification sent without content"),
        }
    }
    Some(item)
}

/// What one POST to a notification URL carries.
#[derive(Default)]
struct Batch {
    /// The subscriptions with an item in it.
    ids: Vec<String>,
    /// The apps of its rich items: one validation token each.
    rich_apps: Vec<String>,
    items: Vec<Value>,
}

/// Finds what changed for every live subscription and queues the notifications, one POST
/// per notification URL carrying every change of this round.
pub(crate) fn flush(emulator: &Emulator) {
    let state = emulator.state();
    let subs_state = &state.subscriptions;
    subs_state.purge_expired();
    if subs_state.is_empty() {
        return;
    }
    let tenant_id = state.config.tenant_id.clone();
    let mut batches: BTreeMap<String, Batch> = BTreeMap::new();
    {
        // Held while diffing so two concurrent flushes cannot report one change twice.
        let mut subs = lock(&subs_state.subs);
        for sub in subs.values_mut() {
            let (snapshot, changes) = observe(
                emulator,
                &sub.target,
                sub.include_resource_data,
                &sub.snapshot,
            );
            sub.snapshot = snapshot;
            for change in changes.iter().filter(|c| sub.wants(c.kind)) {
                let Some(item) = notification(sub, &tenant_id, change) else {
                    continue;
                };
                let batch = batches.entry(sub.notification_url.clone()).or_default();
                if !batch.ids.contains(&sub.id) {
                    batch.ids.push(sub.id.clone());
                }
                if item.get("encryptedContent").is_some() && !batch.rich_apps.contains(&sub.app_id)
                {
                    batch.rich_apps.push(sub.app_id.clone());
                }
                batch.items.push(item);
            }
        }
    }
    for (
        url,
        Batch {
            ids,
            rich_apps,
            items,
        },
    ) in batches
    {
        let mut body = json!({ "value": items });
        if !rich_apps.is_empty() {
            let tokens: Vec<Value> = rich_apps
                .iter()
                .filter_map(|app| match engine::validation_jwt(emulator, app) {
                    Ok(t) => Some(Value::String(t)),
                    Err(err) => {
                        tracing::warn!(%err, "no validation token");
                        None
                    }
                })
                .collect();
            body["validationTokens"] = Value::Array(tokens);
        }
        engine::deliver(emulator, "notification", url, ids, body);
    }
}

/// Middleware: after any request that may have changed data (anything but GET/HEAD),
/// subscribers are notified. The answer is not held up by delivery (it runs in the
/// background); only the comparison runs here, and only while subscriptions exist.
pub(crate) async fn notify_changes(
    State(emulator): State<Emulator>,
    request: Request,
    next: Next,
) -> Response {
    let writes = !matches!(*request.method(), Method::GET | Method::HEAD);
    let response = next.run(request).await;
    if writes && !emulator.state().subscriptions.is_empty() {
        flush(&emulator);
    }
    response
}
