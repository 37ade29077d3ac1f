//! `GET …/root/delta` (graph-protocol.md §9, driveitem-delta): the first round lists every
//! item (the root included), later rounds what was created, changed, moved or deleted since
//! the token, each item once in its current state, deleted ones as
//! `{"id","name","parentReference","deleted":{"state":"deleted"},"file"|"folder":{}}`.
//!
//! Tokens are opaque (base64url) and carry the drive's fingerprint, the expiry epoch, the
//! round `(since, upto]`, the last `ord` sent, `$top` and `$select`. A token of another drive
//! or one that does not decode is 400 `invalidRequest`; any token from before
//! `expire-delta-tokens` is 410 `resyncChangesApplyDifferences` with a `Location` to start
//! over.

use axum::http::StatusCode;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value, json};

use super::super::GraphResponse;
use super::super::errors::GraphError;
use super::{Fx, invalid_request, parse_select, render};
use crate::files::FileStore;

struct Token {
    key: String,
    epoch: u64,
    since: u64,
    /// 0 in a deltaLink: the round ends wherever the drive is when it is used.
    upto: u64,
    cursor: u64,
    top: usize,
    select: Option<Vec<String>>,
}

impl Token {
    fn encode(&self) -> String {
        let select = self
            .select
            .as_ref()
            .map(|s| s.join(","))
            .unwrap_or_else(|| "*".into());
        let raw = format!(
            "d1|{}|{}|{}|{}|{}|{}|{}",
            self.key, self.epoch, self.since, self.upto, self.cursor, self.top, select
        );
        URL_SAFE_NO_PAD.encode(raw)
    }

    fn decode(token: &str) -> Option<Token> {
        let raw = String::from_utf8(URL_SAFE_NO_PAD.decode(token.trim()).ok()?).ok()?;
        let parts: Vec<&str> = raw.split('|').collect();
        let ["d1", key, epoch, since, upto, cursor, top, select] = parts.as_slice() else {
            return None;
        };
        Some(Token {
            key: (*key).to_string(),
            epoch: epoch.parse().ok()?,
            since: since.parse().ok()?,
            upto: upto.parse().ok()?,
            cursor: cursor.parse().ok()?,
            top: top.parse().ok()?,
            select: (*select != "*").then(|| parse_select(select)),
        })
    }
}

/// The request path without its last segment (`delta`, `delta(token=…)`):
/// `/me/drive/root`.
fn prefix(path: &str) -> &str {
    path.trim_end_matches('/')
        .rsplit_once('/')
        .map_or(path, |(head, _)| head)
}

pub(super) fn delta(
    fx: &Fx<'_>,
    store: &FileStore,
    d: usize,
    path_token: Option<&str>,
) -> Result<GraphResponse, GraphError> {
    let drive = &store.drives[d];
    let link = |token: &str| {
        format!(
            "{}/v1.0{}/delta?token={token}",
            fx.req.base_url,
            prefix(&fx.req.path)
        )
    };
    let raw = path_token
        .map(str::to_string)
        .or_else(|| fx.q.token.clone())
        .filter(|t| !t.trim().is_empty());
    let current = drive.seq();
    let key = drive.key();
    let epoch = store.delta_epoch;
    let (since, upto, cursor, top, select) = match raw.as_deref() {
        None => (0, current, 0, fx.q.page_size(None)?, fx.q.select.clone()),
        Some(t) if t.eq_ignore_ascii_case("latest") => {
            let token = Token {
                key,
                epoch,
                since: current,
                upto: 0,
                cursor: 0,
                top: fx.q.page_size(None)?,
                select: fx.q.select.clone(),
            };
            return Ok(GraphResponse::json(json!({
                "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#Collection(driveItem)",
                "value": [],
                "@odata.deltaLink": link(&token.encode()),
            })));
        }
        Some(t) => {
            let token =
                Token::decode(t).ok_or_else(|| invalid_request("The delta token is not valid."))?;
            if token.key != key {
                return Err(invalid_request("The delta token belongs to another drive."));
            }
            if token.epoch != epoch || token.since > current {
                return Err(GraphError::new(
                    StatusCode::GONE,
                    "resyncChangesApplyDifferences",
                    "Resync required. Replace any local items with the server's version (including deletes) if you're sure that the service was up to date with your local changes when you last sync'd. Upload any local changes that the server doesn't know about.",
                )
                .with_header(
                    "Location",
                    format!("{}/v1.0{}/delta", fx.req.base_url, prefix(&fx.req.path)),
                ));
            }
            let top = fx.q.page_size(Some(token.top))?;
            let select = fx.q.select.clone().or(token.select);
            let upto = if token.upto == 0 { current } else { token.upto };
            (token.since, upto, token.cursor, top, select)
        }
    };
    render::check_select(select.as_deref())?;
    let in_round = |seq: u64, ord: u64| seq > since && seq <= upto && ord > cursor;

    // (ord, Some(item id) | None for a tombstone index)
    enum Entry<'a> {
        Item(&'a crate::files::Item),
        Gone(&'a crate::files::Tombstone),
    }
    let mut entries: Vec<(u64, Entry<'_>)> = drive
        .items
        .values()
        .filter(|i| in_round(i.seq, i.ord))
        .map(|i| (i.ord, Entry::Item(i)))
        .chain(
            drive
                .tombstones
                .iter()
                .filter(|t| in_round(t.seq, t.ord))
                .map(|t| (t.ord, Entry::Gone(t))),
        )
        .collect();
    entries.sort_by_key(|(ord, _)| *ord);
    let more = entries.len() > top;
    entries.truncate(top);
    let r = render::Render {
        base_url: &fx.req.base_url,
        select: select.as_deref(),
        now: fx.now,
    };
    let last = entries.last().map(|(ord, _)| *ord);
    let value: Vec<Value> = entries
        .iter()
        .map(|(_, e)| match e {
            Entry::Item(i) => Value::Object(render::item(store, d, i, &r)),
            Entry::Gone(t) => {
                let mut m = Map::new();
                m.insert("id".into(), json!(t.id));
                m.insert("name".into(), json!(t.name));
                m.insert(
                    "parentReference".into(),
                    json!({
                        "driveId": drive.id,
                        "driveType": drive.drive_type(),
                        "id": t.parent_id,
                        "path": t.parent_path,
                    }),
                );
                m.insert("deleted".into(), json!({"state": "deleted"}));
                if t.folder {
                    m.insert("folder".into(), json!({}));
                } else {
                    m.insert("file".into(), json!({}));
                }
                Value::Object(m)
            }
        })
        .collect();
    let mut body = Map::new();
    body.insert(
        "@odata.context".into(),
        json!("https://graph.microsoft.com/v1.0/$metadata#Collection(driveItem)"),
    );
    body.insert("value".into(), Value::Array(value));
    if more {
        let token = Token {
            key,
            epoch,
            since,
            upto,
            cursor: last.unwrap_or(cursor),
            top,
            select,
        };
        body.insert("@odata.nextLink".into(), json!(link(&token.encode())));
    } else {
        let token = Token {
            key,
            epoch,
            since: upto,
            upto: 0,
            cursor: 0,
            top,
            select,
        };
        body.insert("@odata.deltaLink".into(), json!(link(&token.encode())));
    }
    Ok(GraphResponse::json(Value::Object(body)))
}
