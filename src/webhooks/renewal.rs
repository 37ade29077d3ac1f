//! The renewal job: keeps every watch's Graph subscription alive and its data in step.
//!
//! Each replica runs one; a watch is claimed with a lease, so across replicas each due
//! watch is renewed once. For a claimed watch it:
//! - creates the Graph subscription when there is none (a new watch whose creator died, a
//!   `subscriptionRemoved`, one that expired while the gateway was down);
//! - renews it at about two-thirds of its lifetime, or at once after
//!   `reauthorizationRequired` (a PATCH both reauthorizes and renews); a 404 means Graph
//!   dropped it: re-create, then resync;
//! - runs a pending resync: from the stored delta link (changes since), a full one when
//!   Graph says the link expired (410), or a baseline for a new watch (records where the
//!   data is, announces nothing). The new delta link and the events are committed
//!   together, after the whole page chain, so a crash mid-chain resumes from the old link.
//!   Kinds without delta (calendar, contacts, users, groups) get one `resyncRequired`
//!   event telling consumers to re-read.
//!
//! At start (`App::build` makes every watch due, its expiry unknown) it renews every
//! watch once, so a subscription Graph dropped while the gateway was down is re-created. It also purges processed notifications past the dedupe window and old events.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;

use crate::graph::{GraphError, GraphGet, GraphUrl};
use crate::store::{NewChangeEvent, StoreError, Watch, WatchGraphState};
use crate::webhooks::manage::{Notifications, WatchKind};
use crate::webhooks::worker::{MESSAGE_FIELDS, etag_of, event_id, evict, publish};

/// Watches claimed per round.
const BATCH: i64 = 20;
/// How long a replica owns a claimed watch (a Graph subscription POST alone may take the
/// 10-second handshake; a resync many pages).
const LEASE: Duration = Duration::from_secs(300);
/// After a failure, the next attempt.
const RETRY: Duration = Duration::from_secs(60);
/// Most delta pages followed in one resync: a nextLink loop must end.
const MAX_PAGES: usize = 2_000;
/// Items per delta page asked of Graph.
const PAGE_SIZE: &str = "odata.maxpagesize=200";

pub fn spawn(notifications: Arc<Notifications>, shutdown: CancellationToken) {
    tokio::spawn(async move {
        let mut last_purge = std::time::Instant::now() - Duration::from_secs(3600);
        loop {
            match round(&notifications).await {
                Ok(n) if n > 0 && !shutdown.is_cancelled() => continue,
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "renewal round failed; retrying"),
            }
            notifications.delete_orphans().await;
            if last_purge.elapsed() > Duration::from_secs(600) {
                last_purge = std::time::Instant::now();
                let now = OffsetDateTime::now_utc();
                let c = &notifications.config;
                if let Err(e) = notifications
                    .store
                    .purge_notifications(now - c.dedupe_window, now - c.event_retention)
                    .await
                {
                    tracing::warn!(error = %e, "purging old notifications failed");
                }
            }
            tokio::select! {
                () = notifications.wake_renewal.notified() => {}
                () = tokio::time::sleep(notifications.config.renewal_interval) => {}
                () = shutdown.cancelled() => break,
            }
        }
    });
}

/// Claims the watches that are due and does their work; returns how many it claimed.
pub async fn round(n: &Arc<Notifications>) -> Result<usize, StoreError> {
    let watches = n.store.claim_due_watches(&n.replica, LEASE, BATCH).await?;
    let claimed = watches.len();
    for watch in watches {
        let id = watch.id.clone();
        let (renew_after, error) = match tend(n, watch).await {
            Ok(renew_after) => (renew_after, None),
            Err(e) => {
                tracing::warn!(watch = %id, error = %e, "watch upkeep failed; will retry");
                metrics::counter!("gateway_subscription_upkeep_total", "outcome" => "failed")
                    .increment(1);
                (OffsetDateTime::now_utc() + RETRY, Some(e.to_string()))
            }
        };
        n.store
            .release_watch(&id, &n.replica, renew_after, error.as_deref(), false)
            .await?;
    }
    Ok(claimed)
}

#[derive(Debug, thiserror::Error)]
pub enum UpkeepError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("Graph: {0}")]
    Graph(#[from] GraphError),
}

/// Renews or re-creates the watch's subscription and runs its pending resync; returns
/// when it is next due.
async fn tend(n: &Arc<Notifications>, mut watch: Watch) -> Result<OffsetDateTime, UpkeepError> {
    let now = OffsetDateTime::now_utc();
    let expired = watch.expires_at.is_some_and(|e| e <= now);
    if watch.graph_id.is_some() && expired {
        // Graph forgot it while nobody renewed it: changes in between come from the resync.
        tracing::warn!(watch = %watch.id, "subscription expired while not renewed; re-creating");
        n.store.mark_watch_lost(&watch.id).await?;
        watch.graph_id = None;
        watch.resync.get_or_insert_with(|| "delta".to_owned());
    }
    let state = match watch.graph_id.clone() {
        None => {
            let state = n.create_graph_subscription(&watch).await?;
            metrics::counter!("gateway_subscription_upkeep_total", "outcome" => "created")
                .increment(1);
            state
        }
        // Due only for a resync (a new watch's baseline, `missed`): the subscription has
        // most of its life left and stays as it is.
        Some(graph_id) if !needs_renewal(n, &watch, now) => WatchGraphState {
            graph_id,
            client_state_hash: watch.client_state_hash.clone(),
            expires_at: watch.expires_at.unwrap_or(now),
            renew_after: next_renewal(n, &watch, now),
        },
        // Due: renew (this also answers `reauthorizationRequired`).
        Some(graph_id) => match n.renew_graph_subscription(&watch, &graph_id).await? {
            Some(state) => {
                metrics::counter!("gateway_subscription_upkeep_total", "outcome" => "renewed")
                    .increment(1);
                state
            }
            None => {
                tracing::warn!(watch = %watch.id, "Graph no longer knows the subscription; re-creating");
                n.store.mark_watch_lost(&watch.id).await?;
                watch.resync.get_or_insert_with(|| "delta".to_owned());
                let state = n.create_graph_subscription(&watch).await?;
                metrics::counter!("gateway_subscription_upkeep_total", "outcome" => "recreated")
                    .increment(1);
                state
            }
        },
    };
    n.store.set_watch_graph_state(&watch.id, &state).await?;
    if let Some(mode) = watch.resync.clone() {
        resync(n, &watch, &mode).await?;
    }
    Ok(state.renew_after)
}

/// A watch needs its subscription renewed unless it was made due only for a resync and
/// more than a third of the lifetime is left.
fn needs_renewal(n: &Notifications, watch: &Watch, now: OffsetDateTime) -> bool {
    let Some(expires) = watch.expires_at else {
        return true;
    };
    watch.resync.is_none() || now >= next_renewal(n, watch, now) || expires <= now
}

/// Two-thirds into the subscription's lifetime: `expires - lifetime / 3`.
fn next_renewal(n: &Notifications, watch: &Watch, now: OffsetDateTime) -> OffsetDateTime {
    let lifetime = WatchKind::parse(&watch.kind)
        .map(|k| n.lifetime(k, watch.include_resource_data))
        .unwrap_or(Duration::from_secs(3600));
    match watch.expires_at {
        Some(expires) => (expires - lifetime / 3).max(now),
        None => now,
    }
}

/// Runs a resync of `mode` (`baseline`, `delta`, `full`) and commits its events and the
/// new delta link together.
pub async fn resync(n: &Arc<Notifications>, watch: &Watch, mode: &str) -> Result<(), UpkeepError> {
    let Some(kind) = WatchKind::parse(&watch.kind) else {
        return Ok(());
    };
    if !kind.has_delta() {
        let events = if mode == "baseline" {
            Vec::new()
        } else {
            let now = OffsetDateTime::now_utc();
            vec![NewChangeEvent {
                id: event_id(
                    &watch.id,
                    "resyncRequired",
                    &now.unix_timestamp_nanos().to_string(),
                    false,
                ),
                subscription_id: watch.id.clone(),
                change_type: "resyncRequired".into(),
                resource: watch.resource.clone(),
                resource_id: None,
                data: None,
                occurred_at: now,
            }]
        };
        let recorded = n.store.finish_resync(&watch.id, None, &events).await?;
        publish(n, watch, recorded).await;
        return Ok(());
    }
    let started = OffsetDateTime::now_utc();
    let stored = if mode == "delta" {
        watch.delta_link.as_deref()
    } else {
        None
    };
    // A stored link that `relative_link` refuses is never followed (the token is not sent
    // outside the configured Graph root): typically the root changed since it was stored
    // (another emulator port, or a move from the emulator to Microsoft's cloud). Start over.
    let link = match stored.map(|l| n.graph.relative_link(l)) {
        Some(Ok(url)) => Some(url),
        Some(Err(e)) => {
            tracing::warn!(watch = %watch.id, error = %e, "stored delta link cannot be followed; full resync");
            None
        }
        None => None,
    };
    let announce = mode != "baseline";
    // After a delta sync on record, items created since it are told apart as new, even
    // when its link can no longer be followed; otherwise every present item is an update.
    let all_updates = mode != "delta" || watch.delta_link.is_none();
    let pages = match walk(n, kind, watch, link.as_deref()).await {
        Err(GraphError::Api { status: 410, .. }) if link.is_some() => {
            // The delta link expired: start over from the whole folder.
            tracing::warn!(watch = %watch.id, "delta link expired (410); full resync");
            walk(n, kind, watch, None).await?
        }
        other => other?,
    };
    let (items, delta_link) = pages;
    let events: Vec<NewChangeEvent> = if announce {
        items
            .iter()
            .filter_map(|item| to_event(watch, kind, item, watch.synced_at, all_updates))
            .collect()
    } else {
        Vec::new()
    };
    evict(n, kind, watch).await;
    let recorded = n
        .store
        .finish_resync(&watch.id, Some(&delta_link), &events)
        .await?;
    tracing::info!(
        watch = %watch.id,
        mode,
        items = items.len(),
        new_events = recorded.len(),
        took_ms = (OffsetDateTime::now_utc() - started).whole_milliseconds() as i64,
        "resync finished"
    );
    publish(n, watch, recorded).await;
    Ok(())
}

/// Follows a delta chain to its end, from `from` (a stored link, already made relative to
/// the Graph root) or from the start: every item, and the final delta link.
async fn walk(
    n: &Notifications,
    kind: WatchKind,
    watch: &Watch,
    from: Option<&str>,
) -> Result<(Vec<Value>, String), GraphError> {
    let mut url = match from {
        Some(url) => url.to_owned(),
        None => first_delta_url(kind, watch).map_err(|e| GraphError::Refused(e.0))?,
    };
    let mut items = Vec::new();
    for _ in 0..MAX_PAGES {
        let body = n
            .graph
            .get_fresh(
                &n.app_access(),
                &GraphGet::new(&url).prefer(Some(PAGE_SIZE)),
                Notifications::worker_deadline(),
            )
            .await?;
        let page: Value = serde_json::from_slice(&body)
            .map_err(|e| GraphError::BadResponse(format!("delta page: {e}")))?;
        if let Some(values) = page.get("value").and_then(Value::as_array) {
            items.extend(values.iter().cloned());
        }
        if let Some(next) = page.get("@odata.nextLink").and_then(Value::as_str) {
            url = n.graph.relative_link(next)?;
            continue;
        }
        if let Some(delta) = page.get("@odata.deltaLink").and_then(Value::as_str) {
            return Ok((items, delta.to_owned()));
        }
        return Err(GraphError::BadResponse(
            "a delta page with neither nextLink nor deltaLink".into(),
        ));
    }
    Err(GraphError::BadResponse(format!(
        "a delta chain longer than {MAX_PAGES} pages"
    )))
}

fn first_delta_url(kind: WatchKind, watch: &Watch) -> Result<String, crate::graph::UrlError> {
    Ok(match kind {
        WatchKind::Mail => GraphUrl::root("users")
            .id(&watch.target)?
            .then("mailFolders")
            .id(&watch.folder)?
            .then("messages")
            .then("delta")
            .select(MESSAGE_FIELDS)
            .to_string(),
        _ => GraphUrl::root("drives")
            .id(&watch.target)?
            .then("root")
            .then("delta")
            .to_string(),
    })
}

/// An item of a delta page as an event. Items created after the previous sync are
/// `created`; others `updated`; removed ones `deleted`. With `all_updates` (a full sync:
/// nothing is known about before) every present item is an update.
fn to_event(
    watch: &Watch,
    kind: WatchKind,
    item: &Value,
    synced_at: Option<OffsetDateTime>,
    all_updates: bool,
) -> Option<NewChangeEvent> {
    let id = item.get("id")?.as_str()?.to_owned();
    let removed = item.get("@removed").is_some() || item.get("deleted").is_some();
    let created_at = item
        .get("createdDateTime")
        .and_then(Value::as_str)
        .and_then(|t| {
            OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok()
        });
    let change_type = if removed {
        "deleted"
    } else if !all_updates
        // Graph's times have whole seconds: compare with the second the sync ended in.
        && matches!((created_at, synced_at), (Some(c), Some(s)) if c >= s.replace_nanosecond(0).unwrap_or(s))
    {
        "created"
    } else {
        "updated"
    };
    let version = if removed {
        String::new()
    } else {
        etag_of(item).unwrap_or_default()
    };
    let resource = match kind {
        WatchKind::Mail => format!("Users/{}/Messages/{id}", watch.target),
        _ => format!("drives/{}/items/{id}", watch.target),
    };
    Some(NewChangeEvent {
        id: event_id(&watch.id, &id, &version, removed),
        subscription_id: watch.id.clone(),
        change_type: change_type.to_owned(),
        resource,
        resource_id: Some(id),
        data: (!removed).then(|| item.clone()),
        occurred_at: OffsetDateTime::now_utc(),
    })
}
