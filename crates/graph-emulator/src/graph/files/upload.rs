//! Uploads (graph-protocol.md §8): simple `PUT …/content` (up to 250 MB, streamed to disk),
//! and `createUploadSession` (the session's `uploadUrl` is served by `wire`). Both end in
//! the same commit: name conflicts per `@microsoft.graph.conflictBehavior`, `If-Match`,
//! quota, missing folders created, then the file created (201) or replaced (200).

use std::path::Path;
use std::sync::Arc;

use axum::http::{StatusCode, header};
use http_body_util::BodyExt as _;
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt as _;

use super::super::errors::GraphError;
use super::super::{GraphRequest, GraphResponse, Payload};
use super::perms::{self, Access};
use super::routes::{DriveBase, ItemRef};
use super::{
    Fx, NameChoice, SIMPLE_UPLOAD_LIMIT, check_name, choose_name, get_ci, if_match_ok,
    invalid_request, item_not_found, name_already_exists, new_folder, precondition_failed,
    quota_limit_reached, render, resolve_drive, too_large,
};
use crate::files::{
    Blob, Conflict, DiskFile, FileData, FileStore, Hasher, Hashes, Identity, Item, ItemKind,
    SessionTarget, UploadSession, guess_mime,
};
use crate::tenant::Tenant;

/// Upload sessions live an hour (of the emulator's clock) after their last fragment.
pub(crate) const SESSION_LIFETIME: i64 = 3600;

pub(crate) fn io_error(err: std::io::Error) -> GraphError {
    tracing::error!(%err, "file store I/O failed");
    GraphError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "generalException",
        "An unexpected error occurred while storing the file.",
    )
}

/// `2015-01-29T09:21:55.000Z`, as upload sessions show their expiry.
pub(crate) fn session_time(unix: i64) -> String {
    let s = crate::clock::format_utc_seconds(unix);
    format!("{}.000Z", s.trim_end_matches('Z'))
}

/// Where a `PUT …/content` or `createUploadSession` puts the file.
pub(crate) fn plan_target(
    store: &FileStore,
    d: usize,
    item: &ItemRef,
) -> Result<SessionTarget, GraphError> {
    let drive = &store.drives[d];
    let (start, names) = match item {
        ItemRef::Root => {
            return Err(invalid_request(
                "The root of a drive is a folder: upload to root:/{name}: or items/{parent-id}:/{name}:.",
            ));
        }
        ItemRef::Id(id) => {
            let it = drive.item(id).ok_or_else(item_not_found)?;
            if it.is_folder() {
                return Err(invalid_request(
                    "The item is a folder: upload to items/{parent-id}:/{name}: instead.",
                ));
            }
            return Ok(SessionTarget::Replace { item: id.clone() });
        }
        ItemRef::RootPath(names) => (drive.root.clone(), names.clone()),
        ItemRef::IdPath(id, names) => {
            let it = drive.item(id).ok_or_else(item_not_found)?;
            if !it.is_folder() {
                return Err(invalid_request("The parent item is a file, not a folder."));
            }
            (id.clone(), names.clone())
        }
    };
    for name in &names {
        check_name(name)?;
    }
    Ok(SessionTarget::New {
        parent: start,
        path: names,
    })
}

/// What a commit will do.
pub(crate) enum Decision {
    Replace(String),
    Create {
        parent: String,
        folders: Vec<String>,
        name: String,
    },
}

impl Decision {
    pub(crate) fn name<'a>(&'a self, store: &'a FileStore, d: usize) -> &'a str {
        match self {
            Decision::Replace(id) => store.drives[d]
                .item(id)
                .map(|i| i.name.as_str())
                .unwrap_or_default(),
            Decision::Create { name, .. } => name,
        }
    }
}

fn check_quota(store: &FileStore, d: usize, add: u64, free: u64) -> Result<(), GraphError> {
    let drive = &store.drives[d];
    let after = drive.used.saturating_sub(free).saturating_add(add);
    if after > drive.quota_total {
        return Err(quota_limit_reached());
    }
    Ok(())
}

/// Decides a commit of `size` bytes without changing anything (also the checks made before
/// a body is read and when a session is created).
pub(crate) fn decide(
    store: &FileStore,
    d: usize,
    target: &SessionTarget,
    conflict: Conflict,
    if_match: Option<&str>,
    size: u64,
) -> Result<Decision, GraphError> {
    let drive = &store.drives[d];
    let replace = |id: &str| -> Result<Decision, GraphError> {
        let it = drive.item(id).ok_or_else(item_not_found)?;
        if it.is_folder() {
            return Err(name_already_exists(&it.name));
        }
        if let Some(v) = if_match
            && !if_match_ok(it, v)
        {
            return Err(precondition_failed());
        }
        check_quota(store, d, size, it.size)?;
        Ok(Decision::Replace(id.to_string()))
    };
    match target {
        SessionTarget::Replace { item } => replace(item),
        SessionTarget::New { parent, path } => {
            if drive.item(parent).is_none() {
                return Err(item_not_found());
            }
            let Some((name, folders)) = path.split_last() else {
                return Err(invalid_request("The file name is missing."));
            };
            let mut cur = parent.clone();
            let mut i = 0;
            while i < folders.len() {
                match drive.child_named(&cur, &folders[i]) {
                    Some(c) if drive.items[c].is_folder() => {
                        cur = c.to_string();
                        i += 1;
                    }
                    Some(_) => {
                        return Err(invalid_request(format!(
                            "'{}' is a file, not a folder.",
                            folders[i]
                        )));
                    }
                    None => break,
                }
            }
            let missing = folders[i..].to_vec();
            let existing = if missing.is_empty() {
                drive.child_named(&cur, name)
            } else {
                None
            };
            match existing {
                Some(existing) => match choose_name(store, d, &cur, name, conflict, false, None)? {
                    NameChoice::Existing(_) => replace(existing),
                    NameChoice::Free(free) => {
                        check_quota(store, d, size, 0)?;
                        Ok(Decision::Create {
                            parent: cur,
                            folders: missing,
                            name: free,
                        })
                    }
                },
                None => {
                    if if_match.is_some() {
                        return Err(precondition_failed());
                    }
                    check_quota(store, d, size, 0)?;
                    Ok(Decision::Create {
                        parent: cur,
                        folders: missing,
                        name: name.clone(),
                    })
                }
            }
        }
    }
}

/// Applies a decision: the file's id and whether it is new.
pub(crate) fn apply(
    store: &mut FileStore,
    d: usize,
    decision: Decision,
    data: FileData,
    size: u64,
    who: &Identity,
    now: i64,
) -> (String, bool) {
    match decision {
        Decision::Replace(id) => {
            store.drives[d].replace_content(&id, data, size, who, now);
            (id, false)
        }
        Decision::Create {
            mut parent,
            folders,
            name,
        } => {
            for folder in folders {
                let item = new_folder(store, &parent, &folder, who, now);
                parent = store.drives[d].insert(item);
            }
            let item = Item {
                id: store.new_item_id(),
                name,
                parent: Some(parent),
                created: now,
                modified: now,
                created_by: who.clone(),
                modified_by: who.clone(),
                guid: store.new_guid(),
                version: 1,
                content_version: 1,
                seq: 0,
                ord: 0,
                size,
                kind: ItemKind::File(data),
            };
            (store.drives[d].insert(item), true)
        }
    }
}

/// Reads a request body into `path` (hashing it on the way), refusing more than `limit`
/// bytes with 413 as soon as they arrive.
async fn receive(req: &GraphRequest, path: &Path, limit: u64) -> Result<(u64, Hashes), GraphError> {
    let mut file = tokio::fs::File::create(path).await.map_err(io_error)?;
    let mut hasher = Hasher::default();
    let mut size = 0u64;
    let over = || {
        too_large(format!(
            "A simple upload carries at most {SIMPLE_UPLOAD_LIMIT} bytes (250 MB): use an upload session."
        ))
    };
    match req.stream.take() {
        Some(mut body) => {
            while let Some(frame) = body.frame().await {
                let frame =
                    frame.map_err(|_| invalid_request("The request body could not be read."))?;
                let Ok(data) = frame.into_data() else {
                    continue;
                };
                size += data.len() as u64;
                if size > limit {
                    return Err(over());
                }
                hasher.update(&data);
                file.write_all(&data).await.map_err(io_error)?;
            }
        }
        None => {
            let data = &req.body;
            size = data.len() as u64;
            if size > limit {
                return Err(over());
            }
            hasher.update(data);
            file.write_all(data).await.map_err(io_error)?;
        }
    }
    file.flush().await.map_err(io_error)?;
    Ok((size, hasher.finish()))
}

/// The media type of the request's `Content-Type`, if one was sent.
fn request_mime(req: &GraphRequest) -> Option<String> {
    req.headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or_default().trim().to_string())
        .filter(|v| !v.is_empty())
}

/// `PUT …/content`.
pub(super) async fn simple(
    fx: &Fx<'_>,
    base: &DriveBase,
    item: &ItemRef,
) -> Result<GraphResponse, GraphError> {
    let conflict = fx.q.conflict.unwrap_or(Conflict::Replace);
    let if_match = fx.if_match();
    let declared = fx
        .req
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    // Checks first, so nothing is read for a request that cannot succeed.
    let (d, target, part) = fx.sync(|tenant, store| -> Result<_, GraphError> {
        let d = resolve_drive(store, tenant, fx.principal, base)?;
        perms::check(fx.principal, tenant, store, d, Access::Write)?;
        let target = plan_target(store, d, item)?;
        if declared.is_some_and(|n| n > SIMPLE_UPLOAD_LIMIT) {
            return Err(too_large(format!(
                "A simple upload carries at most {SIMPLE_UPLOAD_LIMIT} bytes (250 MB): use an upload session."
            )));
        }
        decide(store, d, &target, conflict, if_match.as_deref(), declared.unwrap_or(0))?;
        let part = Arc::new(DiskFile {
            path: store.new_path("upload"),
        });
        Ok((d, target, part))
    })?;
    let (size, hashes) = receive(fx.req, &part.path, SIMPLE_UPLOAD_LIMIT).await?;
    let mime = request_mime(fx.req);
    fx.sync(|tenant, store| {
        let decision = decide(store, d, &target, conflict, if_match.as_deref(), size)?;
        let mime = mime.unwrap_or_else(|| guess_mime(decision.name(store, d)).to_string());
        let data = FileData {
            mime,
            hashes,
            blob: Blob::Disk(part),
        };
        let who = fx.identity(tenant);
        let (id, new) = apply(store, d, decision, data, size, &who, fx.now);
        let body = render::item(store, d, &store.drives[d].items[&id], &fx.render());
        let status = if new {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        };
        Ok(GraphResponse::with_status(
            status,
            Payload::Json(Value::Object(body)),
        ))
    })
}

/// `POST …/createUploadSession`: 200 with the session's `uploadUrl`.
pub(super) fn create_session(
    fx: &Fx<'_>,
    tenant: &Tenant,
    store: &mut FileStore,
    d: usize,
    item: &ItemRef,
) -> Result<GraphResponse, GraphError> {
    let body = fx.json_body()?;
    let props = match get_ci(&body, "item") {
        None | Some(Value::Null) => serde_json::Map::new(),
        Some(Value::Object(o)) => o.clone(),
        Some(_) => return Err(invalid_request("item must be an object.")),
    };
    let conflict = match get_ci(&props, "@microsoft.graph.conflictBehavior") {
        Some(Value::String(v)) => Conflict::parse(v).ok_or_else(|| {
            invalid_request(format!("Invalid @microsoft.graph.conflictBehavior '{v}'."))
        })?,
        _ => fx.q.conflict.unwrap_or(Conflict::Fail),
    };
    let file_size = match get_ci(&props, "fileSize") {
        None | Some(Value::Null) => None,
        Some(v) => Some(
            v.as_u64()
                .ok_or_else(|| invalid_request("fileSize must be a non-negative integer."))?,
        ),
    };
    let defer_commit = match get_ci(&body, "deferCommit") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(invalid_request("deferCommit must be a Boolean.")),
    };
    let target = plan_target(store, d, item)?;
    decide(
        store,
        d,
        &target,
        conflict,
        fx.if_match().as_deref(),
        file_size.unwrap_or(0),
    )?;
    store.sweep_sessions(fx.now);
    let path = store.new_path("session");
    std::fs::File::create(&path).map_err(io_error)?;
    let token = store.random_token();
    let expires = fx.now + SESSION_LIFETIME;
    store.sessions.insert(
        token.clone(),
        UploadSession {
            drive: d,
            target,
            conflict,
            defer_commit,
            file_size,
            total: None,
            received: 0,
            part: Arc::new(DiskFile { path }),
            hasher: Hasher::default(),
            expires,
            who: fx.identity(tenant),
            writer: Arc::new(tokio::sync::Mutex::new(())),
        },
    );
    Ok(GraphResponse::json(json!({
        "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#microsoft.graph.uploadSession",
        "uploadUrl": format!("{}/up/{token}", fx.req.base_url),
        "expirationDateTime": session_time(expires),
        "nextExpectedRanges": ["0-"],
    })))
}

/// Commits a session whose bytes are all in: the file's id and whether it is new. The
/// session is gone afterwards; on an error it stays (all bytes received), so the client
/// may `DELETE` it or commit again.
pub(crate) fn commit_session(
    store: &mut FileStore,
    token: &str,
    now: i64,
) -> Result<(usize, String, bool), GraphError> {
    let Some(session) = store.sessions.get(token).cloned() else {
        return Err(item_not_found());
    };
    let size = session.received;
    let d = session.drive;
    let decision = decide(store, d, &session.target, session.conflict, None, size)?;
    let mime = match &decision {
        Decision::Replace(id) => store.drives[d]
            .item(id)
            .and_then(|i| i.file().map(|f| f.mime.clone()))
            .unwrap_or_else(|| "application/octet-stream".into()),
        Decision::Create { name, .. } => guess_mime(name).to_string(),
    };
    let data = FileData {
        mime,
        hashes: session.hasher.clone().finish(),
        blob: Blob::Disk(Arc::clone(&session.part)),
    };
    let (id, new) = apply(store, d, decision, data, size, &session.who, now);
    store.sessions.remove(token);
    Ok((d, id, new))
}
