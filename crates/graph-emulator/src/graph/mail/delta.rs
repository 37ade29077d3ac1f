//! Message delta: `GET /mailFolders/{id}/messages/delta` (graph-protocol.md §9).
//!
//! A per-folder sync over the mailbox change log. The first round lists the folder's
//! messages in creation order (pages of `Prefer: odata.maxpagesize`, default 10; `$top` is
//! ignored), each page linking the next with `$skiptoken`, the last one ending in a
//! `$deltatoken` that remembers the change sequence number the round started at. A later
//! round returns every message of the folder changed since (full objects) and every message
//! that left it (`@removed`, reason `deleted`: deleted, or moved out). Replays are possible,
//! losses are not.
//!
//! Tokens are opaque, bound to the mailbox and folder, and carry `$select`/`$filter`. A token
//! from another folder, a malformed one, or any token from before
//! `POST /_emulator/mail/expire-delta-tokens` is answered 410 `syncStateNotFound`.

use axum::http::StatusCode;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::super::GraphResponse;
use super::super::errors::GraphError;
use super::Cx;
use super::filter::{MailFilter, invalid_filter};
use super::query::DEFAULT_PAGE;
use super::render::{self, View};
use crate::mail::Mailbox;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
enum Kind {
    /// A page of the first round: messages with an ordinal above `cursor`.
    #[serde(rename = "i")]
    Initial,
    /// A page of a later round: changes with `cursor` < seq ≤ `upto`.
    #[serde(rename = "c")]
    Changes,
    /// A deltaLink: changes after `cursor`.
    #[serde(rename = "d")]
    Delta,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Token {
    k: Kind,
    /// Mailbox owner id and folder id the token belongs to.
    u: String,
    f: String,
    c: u64,
    /// Initial: the sequence number the round started at; Changes: the round's end.
    w: u64,
    e: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    s: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    q: Option<String>,
}

impl Token {
    fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(self).unwrap_or_default())
    }

    fn decode(raw: &str) -> Option<Token> {
        let bytes = URL_SAFE_NO_PAD.decode(raw.trim()).ok()?;
        serde_json::from_slice(&bytes).ok()
    }
}

fn sync_state_not_found() -> GraphError {
    GraphError::new(
        StatusCode::GONE,
        "syncStateNotFound",
        "The sync state for this request has expired or is invalid. Start a new synchronization without a token.",
    )
}

pub(super) fn delta(
    cx: &Cx<'_>,
    mb: &Mailbox,
    folder: &str,
    epoch: u64,
) -> Result<GraphResponse, GraphError> {
    let q = &cx.query;
    if q.orderby.is_some() || q.search.is_some() || q.expand.is_some() || q.skip.is_some() {
        return Err(GraphError::bad_request(
            "Message delta supports only $select and $filter=receivedDateTime ge|gt {value}.",
        ));
    }
    let page_size = cx.prefer.max_page_size.unwrap_or(DEFAULT_PAGE);
    let token = match q.skiptoken.as_deref().or(q.deltatoken.as_deref()) {
        Some(raw) => {
            let t = Token::decode(raw).ok_or_else(sync_state_not_found)?;
            if t.e != epoch || t.u != mb.user_id || t.f != folder {
                return Err(sync_state_not_found());
            }
            t
        }
        None => {
            // Validate now; later pages trust what their token carries.
            render::parse_message_select(q.select.as_deref())?;
            if let Some(raw) = &q.filter
                && !MailFilter::parse(raw)?.is_received_lower_bound()
            {
                return Err(invalid_filter());
            }
            Token {
                k: Kind::Initial,
                u: mb.user_id.clone(),
                f: folder.to_string(),
                c: 0,
                w: mb.seq,
                e: epoch,
                s: q.select.clone(),
                q: q.filter.clone(),
            }
        }
    };
    let view = View {
        select: render::parse_message_select(token.s.as_deref())?,
        body_text: cx.prefer.body_text,
        expand: None,
        with_type: true,
    };
    let filter = token.q.as_deref().map(MailFilter::parse).transpose()?;
    let passes = |m: &crate::mail::Message| filter.as_ref().is_none_or(|f| f.matches(mb, m));

    let mut value: Vec<Value> = Vec::new();
    let next = match token.k {
        Kind::Initial => {
            let pending: Vec<&crate::mail::Message> = mb
                .messages
                .iter()
                .filter(|m| m.folder == folder && m.ordinal > token.c && passes(m))
                .collect();
            for m in pending.iter().take(page_size) {
                value.push(Value::Object(render::message(mb, m, &view)));
            }
            if pending.len() > page_size {
                Token {
                    c: pending[page_size - 1].ordinal,
                    ..token.clone()
                }
            } else {
                Token {
                    k: Kind::Delta,
                    c: token.w,
                    ..token.clone()
                }
            }
        }
        Kind::Changes | Kind::Delta => {
            let (from, upto) = if token.k == Kind::Delta {
                (token.c, mb.seq)
            } else {
                (token.c, token.w)
            };
            // (seq, Ok(message index) | Err(the removed id))
            let mut events: Vec<(u64, Result<usize, &str>)> = mb
                .messages
                .iter()
                .enumerate()
                .filter(|(_, m)| m.folder == folder && m.seq > from && m.seq <= upto && passes(m))
                .map(|(i, m)| (m.seq, Ok(i)))
                .collect();
            events.extend(
                mb.tombstones
                    .iter()
                    .filter(|t| t.folder == folder && t.seq > from && t.seq <= upto)
                    .map(|t| (t.seq, Err(t.id.as_str()))),
            );
            events.sort_by_key(|(seq, _)| *seq);
            for (_, event) in events.iter().take(page_size) {
                value.push(match event {
                    Ok(i) => Value::Object(render::message(mb, &mb.messages[*i], &view)),
                    Err(id) => json!({
                        "@odata.type": "#microsoft.graph.message",
                        "id": id,
                        "@removed": {"reason": "deleted"},
                    }),
                });
            }
            if events.len() > page_size {
                Token {
                    k: Kind::Changes,
                    c: events[page_size - 1].0,
                    w: upto,
                    ..token.clone()
                }
            } else {
                Token {
                    k: Kind::Delta,
                    c: upto,
                    ..token.clone()
                }
            }
        }
    };

    let mut body = Map::new();
    body.insert(
        "@odata.context".into(),
        json!("https://graph.microsoft.com/v1.0/$metadata#Collection(message)"),
    );
    let link = if next.k == Kind::Delta {
        (
            "@odata.deltaLink",
            format!("{}?$deltatoken={}", cx.self_url(), next.encode()),
        )
    } else {
        (
            "@odata.nextLink",
            format!("{}?$skiptoken={}", cx.self_url(), next.encode()),
        )
    };
    body.insert(link.0.into(), Value::String(link.1));
    body.insert("value".into(), Value::Array(value));
    let mut response = GraphResponse::json(Value::Object(body));
    if let Some(n) = cx.prefer.max_page_size {
        response
            .headers
            .push(("Preference-Applied", format!("odata.maxpagesize={n}")));
    }
    Ok(response)
}
