//! `POST /webhooks/graph` and `POST /webhooks/graph/lifecycle`: where Microsoft Graph
//! delivers change notifications and lifecycle events (graph-protocol.md §10.2–10.7,
//! security-catalogue rows 67–79).
//!
//! Outside caller authentication (Graph cannot present a caller token): each item proves
//! itself with its subscription's clientState instead, compared in constant time against
//! the stored hash. The answer is 202 whatever the items were (no oracle for guessing), but
//! only once every accepted item is committed to the outbox; with the store down the
//! answer is 503, so Graph retries rather than dropping what it believes delivered.
//! Processing happens later, in the outbox worker: the answer never waits for Graph.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde::Deserialize;
use serde_json::Value;
use time::OffsetDateTime;

use crate::app::AppState;
use crate::store::{NewNotification, Watch};
use crate::webhooks::manage::{
    LIFECYCLE_PATH, NOTIFICATION_PATH, Notifications, hash_client_state, hex,
};
use crate::webhooks::rich::{EncryptedContent, open_collection};

/// Longest validation token echoed; Graph's are about 150 characters.
pub const MAX_VALIDATION_TOKEN: usize = 1024;

/// How far in the past an item's `subscriptionExpirationDateTime` may be (clock skew):
/// an item of a subscription that had expired when it was sent is a replay.
const EXPIRY_SKEW: time::Duration = time::Duration::minutes(5);

pub fn router() -> Router<AppState> {
    Router::new()
        .route(NOTIFICATION_PATH, post(notifications))
        .route(LIFECYCLE_PATH, post(lifecycle))
        // The size cap is `notifications.max_body_bytes`, applied by the gateway's body
        // limit layer; axum's own 2 MB default would refuse a large but real batch.
        .layer(axum::extract::DefaultBodyLimit::disable())
}

async fn notifications(
    State(state): State<AppState>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    receive(state, query, headers, body, Channel::Changes).await
}

async fn lifecycle(
    State(state): State<AppState>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    receive(state, query, headers, body, Channel::Lifecycle).await
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Channel {
    Changes,
    Lifecycle,
}

fn count(outcome: &'static str, n: u64) {
    if n > 0 {
        metrics::counter!("gateway_webhook_notifications_total", "outcome" => outcome).increment(n);
    }
}

fn plain(status: StatusCode, message: &str) -> Response {
    (
        status,
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        message.to_owned(),
    )
        .into_response()
}

async fn receive(
    state: AppState,
    query: HashMap<String, String>,
    headers: HeaderMap,
    body: Bytes,
    channel: Channel,
) -> Response {
    // The handshake: echo the token, URL-decoded (axum's Query did that), as plain text.
    // `nosniff` and text/plain keep a hostile token from ever being run as a page.
    if let Some(token) = query.get("validationToken") {
        if token.len() > MAX_VALIDATION_TOKEN {
            return plain(StatusCode::BAD_REQUEST, "validationToken is too long");
        }
        return plain(StatusCode::OK, token);
    }
    let Some(notifications) = state.services.notifications.clone() else {
        return plain(StatusCode::NOT_FOUND, "notifications are not enabled");
    };
    if notifications
        .receive_limit
        .check("graph-webhooks", crate::rate_limit::Kind::Requests, 1)
        .await
        .is_err()
    {
        count("rate_limited", 1);
        return (
            StatusCode::TOO_MANY_REQUESTS,
            [(header::RETRY_AFTER, "1")],
            "",
        )
            .into_response();
    }
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
    if !json {
        return plain(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "notifications are application/json",
        );
    }
    let collection: Collection = match serde_json::from_slice(&body) {
        Ok(c) => c,
        Err(_) => {
            count("malformed", 1);
            return plain(
                StatusCode::BAD_REQUEST,
                "the body is not a notification collection",
            );
        }
    };
    let accepted = match accept(&notifications, collection, channel).await {
        Ok(items) => items,
        Err(status) => return plain(status, "the gateway cannot take notifications right now"),
    };
    match notifications.store.enqueue_notifications(&accepted).await {
        Ok(added) => {
            count("accepted", added);
            count("duplicate", accepted.len() as u64 - added);
            if added > 0 {
                notifications.wake_worker.notify_one();
            }
            StatusCode::ACCEPTED.into_response()
        }
        Err(e) => {
            // Nothing was committed: Graph must keep the notifications and retry.
            tracing::error!(error = %e, items = accepted.len(), "notifications not committed; answering 503");
            count("store_unavailable", accepted.len() as u64);
            (
                StatusCode::SERVICE_UNAVAILABLE,
                [(header::RETRY_AFTER, "5")],
                "",
            )
                .into_response()
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Collection {
    value: Vec<Value>,
    #[serde(default)]
    validation_tokens: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Item {
    #[serde(default)]
    id: Option<String>,
    subscription_id: String,
    #[serde(default)]
    subscription_expiration_date_time: Option<String>,
    #[serde(default)]
    client_state: Option<String>,
    #[serde(default)]
    change_type: Option<String>,
    #[serde(default)]
    resource: Option<String>,
    #[serde(default)]
    resource_data: Option<ResourceData>,
    #[serde(default)]
    lifecycle_event: Option<String>,
    #[serde(default)]
    encrypted_content: Option<EncryptedContent>,
    #[serde(default)]
    tenant_id: Option<String>,
}

#[derive(Deserialize)]
struct ResourceData {
    #[serde(default)]
    id: Option<String>,
    #[serde(default, rename = "@odata.etag")]
    etag: Option<String>,
}

/// Checks every item on its own (one forged item does not spoil its neighbours) and
/// returns the ones to commit. Err only when the store cannot be read (→ 503).
async fn accept(
    n: &Arc<Notifications>,
    collection: Collection,
    channel: Channel,
) -> Result<Vec<NewNotification>, StatusCode> {
    let mut watches: HashMap<String, Option<Watch>> = HashMap::new();
    let mut items: Vec<(Item, Watch)> = Vec::new();
    let tenant = n.graph.tokens().tenant().to_owned();
    let now = OffsetDateTime::now_utc();
    for raw in collection.value {
        let Ok(item) = serde_json::from_value::<Item>(raw) else {
            count("malformed", 1);
            continue;
        };
        // Lifecycle events belong on their own URL and changes on theirs.
        if item.lifecycle_event.is_some() != (channel == Channel::Lifecycle) {
            count("malformed", 1);
            continue;
        }
        if !watches.contains_key(&item.subscription_id) {
            let found = n
                .store
                .watch_by_graph_id(&item.subscription_id)
                .await
                .map_err(|e| {
                    tracing::error!(error = %e, "store unavailable while receiving notifications");
                    StatusCode::SERVICE_UNAVAILABLE
                })?;
            watches.insert(item.subscription_id.clone(), found);
        }
        let Some(watch) = watches[&item.subscription_id].clone() else {
            count("unknown_subscription", 1);
            if n.suspect_orphan(&item.subscription_id) {
                n.wake_renewal.notify_one();
            }
            continue;
        };
        let presented = item.client_state.as_deref().unwrap_or_default();
        let presented_hash = hash_client_state(presented);
        if aws_lc_rs::constant_time::verify_slices_are_equal(
            presented_hash.as_bytes(),
            watch.client_state_hash.as_bytes(),
        )
        .is_err()
        {
            tracing::warn!(watch = %watch.id, "notification with a wrong clientState ignored");
            count("client_state_mismatch", 1);
            continue;
        }
        if item
            .tenant_id
            .as_deref()
            .is_some_and(|t| !t.eq_ignore_ascii_case(&tenant))
        {
            count("wrong_tenant", 1);
            continue;
        }
        let expired = item
            .subscription_expiration_date_time
            .as_deref()
            .and_then(|t| {
                OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok()
            })
            .is_some_and(|t| t + EXPIRY_SKEW < now);
        if expired {
            tracing::warn!(watch = %watch.id, "notification of an expired subscription ignored (replay?)");
            count("stale", 1);
            continue;
        }
        items.push((item, watch));
    }
    let opened = open_rich(n, &collection.validation_tokens, &items).await;
    let mut accepted = Vec::with_capacity(items.len());
    for ((item, watch), rich) in items.into_iter().zip(opened) {
        let resource_data = match rich {
            Ok(data) => data,
            Err(()) => {
                count("rich_refused", 1);
                continue;
            }
        };
        accepted.push(to_notification(item, &watch, resource_data));
    }
    Ok(accepted)
}

/// Verifies the validation tokens and decrypts the items that carry resource data.
/// Err(()) for an item refused (forged tokens, tampered content, no key configured).
async fn open_rich(
    n: &Notifications,
    tokens: &Option<Vec<String>>,
    items: &[(Item, Watch)],
) -> Vec<Result<Option<Value>, ()>> {
    if items.iter().all(|(i, _)| i.encrypted_content.is_none()) {
        return items.iter().map(|_| Ok(None)).collect();
    }
    let (Some(keys), Some(checker)) = (&n.rich, &n.tokens) else {
        tracing::warn!("rich notification received but notifications.encryption is not configured");
        return items
            .iter()
            .map(|(i, _)| {
                if i.encrypted_content.is_some() {
                    Err(())
                } else {
                    Ok(None)
                }
            })
            .collect();
    };
    let contents: Vec<Option<&EncryptedContent>> = items
        .iter()
        .map(|(i, _)| i.encrypted_content.as_ref())
        .collect();
    match open_collection(checker, keys, tokens.as_deref(), &contents).await {
        Ok(results) => results
            .into_iter()
            .map(|r| {
                r.map_err(|e| {
                    tracing::warn!(error = %e, "rich notification item refused");
                })
            })
            .collect(),
        Err(e) => {
            tracing::warn!(error = %e, "rich notification collection refused");
            items
                .iter()
                .map(|(i, _)| {
                    if i.encrypted_content.is_some() {
                        Err(())
                    } else {
                        Ok(None)
                    }
                })
                .collect()
        }
    }
}

fn to_notification(item: Item, watch: &Watch, resource_data: Option<Value>) -> NewNotification {
    let resource_id = item
        .resource_data
        .as_ref()
        .and_then(|d| d.id.clone())
        .or_else(|| item_id_from_resource(item.resource.as_deref()));
    let etag = item.resource_data.as_ref().and_then(|d| d.etag.clone());
    // Graph's retries and replays of one notification are one row (catalogue row 73).
    // Items that name no version (drive roots, a `missed` with no expiry) cannot be told
    // apart from the next real change, so they get a key of their own; the worker
    // coalesces them (they trigger an idempotent delta resync).
    let versionless = etag.is_none()
        && item.id.is_none()
        && !(item.lifecycle_event.is_some() && item.subscription_expiration_date_time.is_some());
    let mut parts = vec![
        item.subscription_id.as_str(),
        item.change_type.as_deref().unwrap_or(""),
        item.resource.as_deref().unwrap_or(""),
        resource_id.as_deref().unwrap_or(""),
        etag.as_deref().unwrap_or(""),
        item.lifecycle_event.as_deref().unwrap_or(""),
    ];
    if item.lifecycle_event.is_some() {
        parts.push(
            item.subscription_expiration_date_time
                .as_deref()
                .unwrap_or(""),
        );
    }
    if etag.is_none() {
        parts.push(item.id.as_deref().unwrap_or(""));
    }
    let nonce = uuid::Uuid::new_v4().to_string();
    if versionless {
        parts.push(&nonce);
    }
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, parts.join("\0").as_bytes());
    NewNotification {
        dedupe_key: hex(digest.as_ref()),
        subscription_id: watch.id.clone(),
        graph_id: item.subscription_id,
        change_type: item.change_type,
        lifecycle_event: item.lifecycle_event,
        resource: item.resource,
        resource_id,
        etag,
        resource_data,
    }
}

/// `Users/{id}/Messages/{id}` → the last segment (`users('x')/messages('y')` forms too).
fn item_id_from_resource(resource: Option<&str>) -> Option<String> {
    let last = resource?.trim_end_matches('/').rsplit('/').next()?;
    let last = match (last.find("('"), last.ends_with("')")) {
        (Some(i), true) => &last[i + 2..last.len() - 2],
        _ => last,
    };
    (!last.is_empty()).then(|| last.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_item_id_is_the_last_segment_of_the_resource() {
        assert_eq!(
            item_id_from_resource(Some("Users/u1/Messages/AAMk=")).as_deref(),
            Some("AAMk=")
        );
        assert_eq!(
            item_id_from_resource(Some("users('u1')/messages('m2')")).as_deref(),
            Some("m2")
        );
        assert_eq!(item_id_from_resource(None), None);
    }
}
