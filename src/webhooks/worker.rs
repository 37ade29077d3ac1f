//! The outbox worker: turns committed notifications into change events, at least once.
//!
//! Each replica runs one. It claims a batch of pending rows with a lease (see
//! `store::notifications`), processes them, and commits each row's events, webhook
//! deliveries and "done" in one transaction. A replica killed mid-batch loses nothing: its
//! leases run out and another replica (or itself, restarted) takes the rows again; events
//! have ids derived from what changed, so doing a row twice records its effect once.
//!
//! Processing re-reads the item from Graph rather than trusting the payload (catalogue
//! row 73), except for rich notifications, whose content is signed and was verified on
//! receipt. Lifecycle events and drive notifications ask the renewal job for work instead:
//! it holds the watch's lease, so resyncs of one watch never run twice at once.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use serde_json::Value;
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;

use crate::graph::{GraphError, GraphGet, GraphUrl, UrlError};
use crate::store::{ChangeEvent, NewChangeEvent, OutboxItem, StoreError, Watch};
use crate::webhooks::bus::LiveEvent;
use crate::webhooks::manage::{Notifications, WatchKind, hex};

/// Rows claimed per round, and processed at once.
const BATCH: i64 = 50;
const CONCURRENCY: usize = 8;

pub const MESSAGE_FIELDS: &[&str] = &[
    "id",
    "subject",
    "from",
    "sender",
    "toRecipients",
    "ccRecipients",
    "receivedDateTime",
    "sentDateTime",
    "createdDateTime",
    "lastModifiedDateTime",
    "isRead",
    "hasAttachments",
    "importance",
    "bodyPreview",
    "conversationId",
    "parentFolderId",
    "internetMessageId",
];
const EVENT_FIELDS: &[&str] = &[
    "id",
    "subject",
    "start",
    "end",
    "organizer",
    "location",
    "isCancelled",
    "isAllDay",
    "createdDateTime",
    "lastModifiedDateTime",
];
const CONTACT_FIELDS: &[&str] = &[
    "id",
    "displayName",
    "emailAddresses",
    "companyName",
    "jobTitle",
    "createdDateTime",
    "lastModifiedDateTime",
];
const USER_FIELDS: &[&str] = &["id", "displayName", "userPrincipalName", "mail", "jobTitle"];
const GROUP_FIELDS: &[&str] = &["id", "displayName", "mail", "description"];

pub fn spawn(notifications: Arc<Notifications>, shutdown: CancellationToken) {
    tokio::spawn(async move {
        loop {
            let worked = match round(&notifications).await {
                Ok(n) => n > 0,
                Err(e) => {
                    tracing::warn!(error = %e, "outbox round failed; retrying");
                    false
                }
            };
            if worked {
                // More may be waiting: go again at once (but let shutdown in).
                if shutdown.is_cancelled() {
                    break;
                }
                continue;
            }
            tokio::select! {
                () = notifications.wake_worker.notified() => {}
                () = tokio::time::sleep(notifications.config.poll_interval) => {}
                () = shutdown.cancelled() => break,
            }
        }
    });
}

/// Claims and processes one batch; returns how many rows it claimed.
pub async fn round(n: &Arc<Notifications>) -> Result<usize, StoreError> {
    let items = n
        .store
        .claim_notifications(&n.replica, n.config.lease, BATCH)
        .await?;
    let claimed = items.len();
    futures::stream::iter(items)
        .for_each_concurrent(CONCURRENCY, |item| async move { process(n, item).await })
        .await;
    Ok(claimed)
}

#[derive(Debug, thiserror::Error)]
enum ProcessError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("Graph: {0}")]
    Graph(#[from] GraphError),
    #[error("{0}")]
    Url(String),
}

impl From<UrlError> for ProcessError {
    fn from(e: UrlError) -> Self {
        ProcessError::Url(e.0)
    }
}

async fn process(n: &Arc<Notifications>, item: OutboxItem) {
    let seq = item.seq;
    let attempts = item.attempts;
    let result = handle(n, item).await;
    let outcome = match result {
        Ok(Some((events, watch))) => {
            if let Some(watch) = watch
                && !events.is_empty()
            {
                publish(n, &watch, events).await;
            }
            "processed"
        }
        // Another replica took the row over after our lease ran out; it finishes it.
        Ok(None) => "lease_lost",
        Err(e) => {
            let give_up = attempts >= i64::from(n.config.max_attempts);
            let backoff = Duration::from_secs(1 << attempts.clamp(0, 8) as u64);
            let retry_at = OffsetDateTime::now_utc() + backoff;
            tracing::warn!(seq, attempts, give_up, error = %e, "processing a notification failed");
            if let Err(e) = n
                .store
                .fail_notification(seq, &n.replica, &e.to_string(), retry_at, give_up)
                .await
            {
                tracing::warn!(seq, error = %e, "could not record the failure; the lease will run out");
            }
            if give_up { "failed" } else { "retry" }
        }
    };
    metrics::counter!("gateway_notifications_processed_total", "outcome" => outcome).increment(1);
}

/// Does the work of one row and commits it. `Ok(None)`: the lease was lost.
async fn handle(
    n: &Arc<Notifications>,
    item: OutboxItem,
) -> Result<Option<(Vec<ChangeEvent>, Option<Watch>)>, ProcessError> {
    let Some(watch) = n.store.watch(&item.subscription_id).await? else {
        // Deleted since (its rows go with it); nothing to do.
        return Ok(n
            .store
            .complete_notification(item.seq, &n.replica, &[])
            .await?
            .map(|_| (Vec::new(), None)));
    };
    if let Some(event) = &item.lifecycle_event {
        lifecycle(n, &watch, &item, event).await?;
        return complete(n, &item, &watch, &[]).await;
    }
    let Some(kind) = WatchKind::parse(&watch.kind) else {
        return complete(n, &item, &watch, &[]).await;
    };
    if kind == WatchKind::Drive {
        // A drive notification says only "something changed": the delta resync finds what.
        n.store.request_watch_work(&watch.id, true, false).await?;
        n.wake_renewal.notify_one();
        return complete(n, &item, &watch, &[]).await;
    }
    let change_type = item.change_type.clone().unwrap_or_else(|| "updated".into());
    let resource_id = item.resource_id.clone();
    let data = match (&resource_id, change_type.as_str(), &item.resource_data) {
        (_, "deleted", _) | (None, _, _) => None,
        // Verified on receipt (validation tokens + HMAC): no need to ask Graph again.
        (_, _, Some(rich)) => Some(rich.clone()),
        (Some(id), _, None) => reread(n, kind, &watch, id).await?,
    };
    evict(n, kind, &watch).await;
    let version = if change_type == "deleted" {
        String::new()
    } else {
        item.etag
            .clone()
            .or_else(|| data.as_ref().and_then(etag_of))
            .unwrap_or_else(|| format!("seq:{}", item.seq))
    };
    let event = NewChangeEvent {
        id: event_id(
            &watch.id,
            resource_id.as_deref().unwrap_or(""),
            &version,
            change_type == "deleted",
        ),
        subscription_id: watch.id.clone(),
        change_type,
        resource: item.resource.clone().unwrap_or_default(),
        resource_id,
        data,
        occurred_at: item.received_at,
    };
    complete(n, &item, &watch, &[event]).await
}

async fn complete(
    n: &Notifications,
    item: &OutboxItem,
    watch: &Watch,
    events: &[NewChangeEvent],
) -> Result<Option<(Vec<ChangeEvent>, Option<Watch>)>, ProcessError> {
    Ok(n.store
        .complete_notification(item.seq, &n.replica, events)
        .await?
        .map(|recorded| (recorded, Some(watch.clone()))))
}

/// Lifecycle events (graph-protocol.md §10.6): the renewal job does the work.
async fn lifecycle(
    n: &Notifications,
    watch: &Watch,
    item: &OutboxItem,
    event: &str,
) -> Result<(), StoreError> {
    tracing::info!(watch = %watch.id, graph_id = %item.graph_id, event, "lifecycle event");
    match event {
        // A PATCH both reauthorizes and renews.
        "reauthorizationRequired" => n.store.request_watch_work(&watch.id, false, true).await?,
        "subscriptionRemoved" => {
            // Only if it is still the subscription that was removed (not one re-created since).
            if watch.graph_id.as_deref() == Some(item.graph_id.as_str()) {
                n.store.mark_watch_lost(&watch.id).await?;
            }
        }
        "missed" => n.store.request_watch_work(&watch.id, true, false).await?,
        // Newer documentation mentions other events; they need nothing from us.
        other => tracing::info!(event = other, "unknown lifecycle event ignored"),
    }
    n.wake_renewal.notify_one();
    Ok(())
}

/// The item as Graph has it now; None when it is gone.
async fn reread(
    n: &Notifications,
    kind: WatchKind,
    watch: &Watch,
    id: &str,
) -> Result<Option<Value>, ProcessError> {
    let url = match kind {
        WatchKind::Mail => GraphUrl::root("users")
            .id(&watch.target)?
            .then("messages")
            .id(id)?
            .select(MESSAGE_FIELDS),
        WatchKind::Calendar => GraphUrl::root("users")
            .id(&watch.target)?
            .then("events")
            .id(id)?
            .select(EVENT_FIELDS),
        WatchKind::Contacts => GraphUrl::root("users")
            .id(&watch.target)?
            .then("contacts")
            .id(id)?
            .select(CONTACT_FIELDS),
        WatchKind::Users => GraphUrl::root("users").id(id)?.select(USER_FIELDS),
        WatchKind::Groups => GraphUrl::root("groups").id(id)?.select(GROUP_FIELDS),
        WatchKind::Drive => return Ok(None),
    };
    match n
        .graph
        .get_fresh(
            &n.app_access(),
            &GraphGet::new(url.to_string()),
            Notifications::worker_deadline(),
        )
        .await
    {
        Ok(body) => {
            Ok(Some(serde_json::from_slice(&body).map_err(|e| {
                GraphError::BadResponse(format!("item: {e}"))
            })?))
        }
        Err(GraphError::Api { status: 404, .. }) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Answers cached before the change are stale now, whoever asked for them.
pub(crate) async fn evict(n: &Notifications, kind: WatchKind, watch: &Watch) {
    match kind {
        WatchKind::Mail | WatchKind::Calendar | WatchKind::Contacts => {
            n.graph.invalidate_mailbox(&watch.target).await
        }
        WatchKind::Drive => n.graph.invalidate_files().await,
        // Directory answers expire with the cache TTL; there is no per-user eviction.
        WatchKind::Users | WatchKind::Groups => {}
    }
}

pub(crate) fn etag_of(item: &Value) -> Option<String> {
    item.get("@odata.etag")
        .or_else(|| item.get("eTag"))
        .and_then(Value::as_str)
        .map(str::to_owned)
}

/// The id of an event: one version of one item in one watch (or its deletion). The same
/// change found twice, by a notification and by a resync, or by two replicas, is one
/// event. The change type is left out on purpose: a version is made by exactly one
/// change, but a resync, which sees only the latest version, cannot always tell whether
/// it was a creation or an update.
pub(crate) fn event_id(watch: &str, item: &str, version: &str, deleted: bool) -> String {
    let marker = if deleted { "deleted" } else { "version" };
    let joined = [watch, marker, item, version].join("\0");
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, joined.as_bytes());
    hex(&digest.as_ref()[..16])
}

pub(crate) async fn publish(n: &Notifications, watch: &Watch, events: Vec<ChangeEvent>) {
    let live: Vec<LiveEvent> = events
        .into_iter()
        .map(|event| LiveEvent {
            event,
            caller: watch.caller.clone(),
            kind: watch.kind.clone(),
            target: watch.target.clone(),
            folder: watch.folder.clone(),
        })
        .collect();
    metrics::counter!("gateway_change_events_total").increment(live.len() as u64);
    n.bus.publish(&live).await;
    n.wake_deliveries.notify_one();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_change_found_twice_is_one_event_and_another_version_is_another() {
        let a = event_id("w1", "m1", "W/\"1\"", false);
        assert_eq!(a, event_id("w1", "m1", "W/\"1\"", false));
        assert_ne!(a, event_id("w1", "m1", "W/\"2\"", false));
        assert_ne!(a, event_id("w1", "m1", "", true));
        assert_ne!(a, event_id("w2", "m1", "W/\"1\"", false));
        assert_eq!(a.len(), 32);
    }
}
