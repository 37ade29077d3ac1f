//! Watches: a caller's standing request to hear about changes to a mailbox folder, a
//! calendar, contacts, a drive, or the directory's users or groups.
//!
//! Deny by default, twice: the caller needs `subscriptions.manage` and the right to read
//! what it watches (the kind's read operation, and the mailbox, user or drive within its
//! resources), decided here exactly as a read would be. The Graph subscription behind a
//! watch is the gateway's own (see `webhooks::manage`); its notification URLs are the
//! gateway's, never the caller's.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::files::DriveRef;
use super::{ServiceError, Session};
use crate::graph::GraphError;
use crate::store::{ChangeEvent, NewWatch, StoreError, Watch};
use crate::webhooks::manage::{Notifications, WatchKind};

/// Most watches one caller may hold (Graph allows 1,000 per mailbox; this keeps one
/// caller from using them all).
pub const MAX_WATCHES_PER_CALLER: usize = 100;

/// What to watch: exactly one of the fields.
#[derive(Clone, Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WatchResource {
    /// A mailbox (user id or address) whose `folder` to watch (messages).
    pub mailbox: Option<String>,
    /// With `mailbox`: a well-known folder name (`inbox`, …) or a folder id. Default `inbox`.
    pub folder: Option<String>,
    /// A user whose calendar events to watch.
    pub calendar: Option<String>,
    /// A user whose contacts to watch.
    pub contacts: Option<String>,
    /// A drive: `me`, `user:<id or UPN>`, `site:<site>` or a drive id.
    pub drive: Option<String>,
    /// `users` or `groups`: the directory.
    pub directory: Option<String>,
}

/// A new watch.
#[derive(Clone, Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WatchRequest {
    pub resource: WatchResource,
    /// `created`, `updated`, `deleted`; default: all the resource allows.
    #[serde(default)]
    pub change_types: Vec<String>,
    /// Graph sends the changed item encrypted with each notification (messages, events,
    /// contacts; needs `notifications.encryption`), so no read-back is needed.
    #[serde(default)]
    pub include_resource_data: bool,
}

/// A watch as callers see it.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct WatchView {
    pub id: String,
    /// mail | calendar | contacts | drive | users | groups
    pub kind: String,
    /// The watched user's object id or drive id ("" for users and groups).
    pub target: String,
    /// The mail folder, for mail watches.
    pub folder: Option<String>,
    /// The Graph resource path of the subscription.
    pub resource: String,
    pub change_types: Vec<String>,
    pub include_resource_data: bool,
    /// When Graph's subscription expires unless renewed (the gateway renews it).
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub expires_at: Option<OffsetDateTime>,
    /// `active`, or `pending` while the Graph subscription is being (re)created.
    pub status: String,
    /// The last upkeep error, if the last attempt failed.
    pub last_error: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
}

impl WatchView {
    pub fn from_watch(w: &Watch) -> Self {
        WatchView {
            id: w.id.clone(),
            kind: w.kind.clone(),
            target: w.target.clone(),
            folder: (!w.folder.is_empty()).then(|| w.folder.clone()),
            resource: w.resource.clone(),
            change_types: w.change_types.split(',').map(str::to_owned).collect(),
            include_resource_data: w.include_resource_data,
            expires_at: w.expires_at,
            status: if w.graph_id.is_some() {
                w.state.clone()
            } else {
                "pending".into()
            },
            last_error: w.last_error.clone(),
            created_at: w.created_at,
        }
    }
}

/// An event as callers see it.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct EventView {
    pub id: String,
    /// Position in the watch's event stream: pass it as `after` to page on.
    pub seq: i64,
    pub subscription_id: String,
    /// created | updated | deleted | resyncRequired
    pub change_type: String,
    pub resource: String,
    pub resource_id: Option<String>,
    /// The item as Graph had it when the change was processed (null for deletions).
    #[schema(value_type = Option<Object>)]
    pub data: Option<serde_json::Value>,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub occurred_at: OffsetDateTime,
}

impl EventView {
    pub fn from_event(e: &ChangeEvent) -> Self {
        EventView {
            id: e.id.clone(),
            seq: e.seq,
            subscription_id: e.subscription_id.clone(),
            change_type: e.change_type.clone(),
            resource: e.resource.clone(),
            resource_id: e.resource_id.clone(),
            data: e.data.clone(),
            occurred_at: e.occurred_at,
        }
    }
}

fn store_error(e: StoreError) -> ServiceError {
    tracing::error!(error = %e, "store failure in the subscription API");
    ServiceError::Unavailable("the gateway's store is unavailable; retry later".into())
}

impl Session {
    fn notifications(&self) -> Result<&std::sync::Arc<Notifications>, ServiceError> {
        self.services.notifications.as_ref().ok_or_else(|| {
            ServiceError::Unavailable("change notifications are not enabled on this gateway".into())
        })
    }

    /// Creates a watch and its Graph subscription (Graph checks the gateway's webhook
    /// before answering, so this takes a round trip to Graph and back).
    pub async fn create_watch(&self, request: WatchRequest) -> Result<WatchView, ServiceError> {
        self.require("subscriptions.manage")?;
        let n = self.notifications()?.clone();
        let (kind, target, folder, resource) = self.watch_target(&request.resource).await?;
        let change_types = change_types(kind, &request.change_types)?;
        if request.include_resource_data {
            if !matches!(
                kind,
                WatchKind::Mail | WatchKind::Calendar | WatchKind::Contacts
            ) {
                return Err(ServiceError::BadInput(
                    "includeResourceData is available for mail, calendar and contacts watches only"
                        .into(),
                ));
            }
            if n.rich.is_none() {
                return Err(ServiceError::BadInput(
                    "includeResourceData needs notifications.encryption (a certificate) in the gateway's configuration".into(),
                ));
            }
        }
        let existing = n
            .store
            .list_watches(Some(&self.caller.name))
            .await
            .map_err(store_error)?;
        if existing.len() >= MAX_WATCHES_PER_CALLER {
            return Err(ServiceError::Conflict(format!(
                "caller '{}' already has {MAX_WATCHES_PER_CALLER} watches; delete some first",
                self.caller.name
            )));
        }
        let new = NewWatch {
            id: uuid::Uuid::new_v4().to_string(),
            caller: self.caller.name.clone(),
            kind: kind.as_str().to_owned(),
            target,
            folder,
            resource,
            change_types,
            include_resource_data: request.include_resource_data,
            resync: kind.has_delta().then(|| "baseline".to_owned()),
        };
        n.store.insert_watch(&new).await.map_err(store_error)?;
        let watch = n
            .store
            .watch(&new.id)
            .await
            .map_err(store_error)?
            .ok_or(ServiceError::Internal)?;
        match n.create_graph_subscription(&watch).await {
            Ok(state) => {
                n.store
                    .set_watch_graph_state(&watch.id, &state)
                    .await
                    .map_err(store_error)?;
                // The baseline (where the data is now) is the renewal job's to take.
                if watch.resync.is_some() {
                    n.store
                        .request_watch_work(&watch.id, false, true)
                        .await
                        .map_err(store_error)?;
                    n.wake_renewal.notify_one();
                }
            }
            Err(e) => {
                // Nothing to keep: Graph did not create it.
                let _ = n.store.delete_watch(&watch.id).await;
                return Err(subscription_error(e, &watch.resource));
            }
        }
        let watch = n
            .store
            .watch(&new.id)
            .await
            .map_err(store_error)?
            .ok_or(ServiceError::Internal)?;
        tracing::info!(caller = %self.caller.name, watch = %watch.id, resource = %watch.resource, "watch created");
        Ok(WatchView::from_watch(&watch))
    }

    /// The caller's watches.
    pub async fn watches(&self) -> Result<Vec<WatchView>, ServiceError> {
        self.require("subscriptions.manage")?;
        let n = self.notifications()?;
        Ok(n.store
            .list_watches(Some(&self.caller.name))
            .await
            .map_err(store_error)?
            .iter()
            .map(WatchView::from_watch)
            .collect())
    }

    /// One of the caller's watches; another caller's is NOT_FOUND, as if absent.
    pub async fn own_watch(&self, id: &str) -> Result<Watch, ServiceError> {
        self.require("subscriptions.manage")?;
        let n = self.notifications()?;
        match n.store.watch(id).await.map_err(store_error)? {
            Some(w) if w.caller == self.caller.name => Ok(w),
            _ => Err(ServiceError::NotFound(format!(
                "subscription '{id}' was not found"
            ))),
        }
    }

    /// Deletes the watch and its Graph subscription.
    pub async fn delete_watch(&self, id: &str) -> Result<(), ServiceError> {
        let watch = self.own_watch(id).await?;
        let n = self.notifications()?;
        if let Some(graph_id) = &watch.graph_id
            && let Err(e) = n.delete_graph_subscription(graph_id).await
        {
            // Deleting our side anyway stops everything: its notifications no longer
            // match a watch, and Graph lets it expire.
            tracing::warn!(watch = %watch.id, error = %e, "Graph subscription not deleted; it will expire");
        }
        n.store.delete_watch(&watch.id).await.map_err(store_error)?;
        tracing::info!(caller = %self.caller.name, watch = %watch.id, "watch deleted");
        Ok(())
    }

    /// The watch's recorded events after `after` (a `seq`), oldest first.
    pub async fn watch_events(
        &self,
        id: &str,
        after: i64,
        limit: usize,
    ) -> Result<Vec<EventView>, ServiceError> {
        if !(1..=500).contains(&limit) {
            return Err(ServiceError::BadInput(format!(
                "limit must be between 1 and 500, got {limit}"
            )));
        }
        let watch = self.own_watch(id).await?;
        let n = self.notifications()?;
        Ok(n.store
            .events_after(&watch.id, after, limit as i64)
            .await
            .map_err(store_error)?
            .iter()
            .map(EventView::from_event)
            .collect())
    }

    /// The object id of a mailbox the caller may read: Graph advises ids over UPNs in
    /// subscription resources, and notifications name users by id.
    pub(crate) async fn watched_user(&self, mailbox: &str) -> Result<String, ServiceError> {
        let (url, _) = self.mailbox(mailbox)?;
        #[derive(serde::Deserialize)]
        struct Id {
            id: String,
        }
        let found: Id = self
            .get_json(crate::graph::GraphGet::new(url.select(&["id"]).to_string()))
            .await
            .map_err(|e| self.upstream(e, &format!("mailbox '{mailbox}'")))?;
        Ok(found.id)
    }

    /// Decides what the caller may watch: the kind, the canonical target, the folder and
    /// the Graph resource path.
    async fn watch_target(
        &self,
        r: &WatchResource,
    ) -> Result<(WatchKind, String, String, String), ServiceError> {
        let given = [
            r.mailbox.is_some(),
            r.calendar.is_some(),
            r.contacts.is_some(),
            r.drive.is_some(),
            r.directory.is_some(),
        ]
        .iter()
        .filter(|g| **g)
        .count();
        if given != 1 {
            return Err(ServiceError::BadInput(
                "name exactly one of resource.mailbox, calendar, contacts, drive, directory".into(),
            ));
        }
        if r.folder.is_some() && r.mailbox.is_none() {
            return Err(ServiceError::BadInput(
                "resource.folder goes with resource.mailbox".into(),
            ));
        }
        if let Some(mailbox) = &r.mailbox {
            self.require("mail.read")?;
            let folder = r.folder.clone().unwrap_or_else(|| "inbox".into());
            if folder.trim().is_empty() || folder.len() > 512 || folder.contains(['\'', '/']) {
                return Err(ServiceError::BadInput(format!(
                    "'{folder}' is not a folder name or id"
                )));
            }
            let target = self.watched_user(mailbox).await?;
            let resource = format!("users/{target}/mailFolders('{folder}')/messages");
            return Ok((WatchKind::Mail, target, folder, resource));
        }
        if let Some(user) = &r.calendar {
            self.require("calendar.read")?;
            let target = self.watched_user(user).await?;
            let resource = format!("users/{target}/events");
            return Ok((WatchKind::Calendar, target, String::new(), resource));
        }
        if let Some(user) = &r.contacts {
            self.require("contacts.read")?;
            let target = self.watched_user(user).await?;
            let resource = format!("users/{target}/contacts");
            return Ok((WatchKind::Contacts, target, String::new(), resource));
        }
        if let Some(drive) = &r.drive {
            self.require("files.read")?;
            let id = self.drive_id(&DriveRef::parse(drive)?).await?;
            if id.contains(['/', '\'', '?', '#']) {
                return Err(ServiceError::BadInput(format!("'{id}' is not a drive id")));
            }
            let resource = format!("drives/{id}/root");
            return Ok((WatchKind::Drive, id, String::new(), resource));
        }
        match r.directory.as_deref() {
            Some("users") => {
                self.require("users.read")?;
                self.require_all_users()?;
                Ok((
                    WatchKind::Users,
                    String::new(),
                    String::new(),
                    "users".into(),
                ))
            }
            Some("groups") => {
                self.require("groups.read")?;
                self.require_all_users()?;
                Ok((
                    WatchKind::Groups,
                    String::new(),
                    String::new(),
                    "groups".into(),
                ))
            }
            other => Err(ServiceError::BadInput(format!(
                "resource.directory must be 'users' or 'groups', got '{}'",
                other.unwrap_or_default()
            ))),
        }
    }
}

/// The change types to ask for, checked against what Graph allows for the resource.
fn change_types(kind: WatchKind, asked: &[String]) -> Result<String, ServiceError> {
    let allowed = kind.allowed_changes();
    if asked.is_empty() {
        return Ok(allowed.join(","));
    }
    let mut chosen: Vec<&str> = Vec::new();
    for c in asked {
        let Some(found) = allowed.iter().find(|a| a.eq_ignore_ascii_case(c.trim())) else {
            return Err(ServiceError::BadInput(format!(
                "change type '{c}' is not available for {} watches (allowed: {})",
                kind.as_str(),
                allowed.join(", ")
            )));
        };
        if !chosen.contains(found) {
            chosen.push(found);
        }
    }
    Ok(chosen.join(","))
}

/// Graph's refusal to create a subscription, for the caller.
fn subscription_error(e: GraphError, resource: &str) -> ServiceError {
    match &e {
        GraphError::Api {
            status: 400,
            code,
            message,
            ..
        } => {
            tracing::warn!(%code, %message, resource, "Graph refused the subscription");
            ServiceError::BadInput(format!(
                "Microsoft Graph refused the subscription ({code}): {}",
                if code == "ValidationError" || message.contains("validation") {
                    "it could not reach the gateway's notification URL; check public_url"
                } else {
                    "see the gateway's log"
                }
            ))
        }
        _ => ServiceError::from_graph(e, &format!("subscription on '{resource}'")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn change_types_default_to_what_the_resource_allows_and_refuse_the_rest() {
        assert_eq!(
            change_types(WatchKind::Mail, &[]).unwrap(),
            "created,updated,deleted"
        );
        assert_eq!(
            change_types(WatchKind::Mail, &["Created".into(), "created".into()]).unwrap(),
            "created"
        );
        assert_eq!(change_types(WatchKind::Drive, &[]).unwrap(), "updated");
        assert!(change_types(WatchKind::Drive, &["created".into()]).is_err());
        assert!(change_types(WatchKind::Users, &["moved".into()]).is_err());
    }
}
