//! Watches (change subscriptions) in GraphQL: create, list, delete. The events themselves
//! stream through the `Subscription` root (`mailboxChanges`, `changes`).

use async_graphql::{Context, ID, InputObject, Object, SimpleObject};

use super::GqlResult;
use crate::service::Session;
use crate::service::subscriptions::{WatchRequest, WatchResource, WatchView};

/// A watch on Microsoft 365 data: the gateway keeps the Graph subscription behind it alive
/// and records every change as an event.
#[derive(SimpleObject)]
pub struct ChangeSubscription {
    pub id: ID,
    /// mail | calendar | contacts | drive | users | groups
    pub kind: String,
    /// The watched user's object id or drive id ("" for users and groups).
    pub target: String,
    pub folder: Option<String>,
    /// The Graph resource path.
    pub resource: String,
    pub change_types: Vec<String>,
    pub include_resource_data: bool,
    /// RFC 3339; the gateway renews before then.
    pub expires_at: Option<String>,
    /// `active`, or `pending` while the Graph subscription is being (re)created.
    pub status: String,
    pub last_error: Option<String>,
    pub created_at: String,
}

fn rfc3339(t: time::OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

impl From<WatchView> for ChangeSubscription {
    fn from(w: WatchView) -> Self {
        ChangeSubscription {
            id: ID(w.id),
            kind: w.kind,
            target: w.target,
            folder: w.folder,
            resource: w.resource,
            change_types: w.change_types,
            include_resource_data: w.include_resource_data,
            expires_at: w.expires_at.map(rfc3339),
            status: w.status,
            last_error: w.last_error,
            created_at: rfc3339(w.created_at),
        }
    }
}

/// What to watch: exactly one of `mailbox` (with `folder`), `calendar`, `contacts`,
/// `drive`, `directory`.
#[derive(InputObject)]
pub struct WatchResourceInput {
    /// A mailbox (user id or address) whose folder to watch.
    pub mailbox: Option<String>,
    /// With `mailbox`: `inbox` (default) or another well-known name or folder id.
    pub folder: Option<String>,
    /// A user whose calendar events to watch.
    pub calendar: Option<String>,
    /// A user whose contacts to watch.
    pub contacts: Option<String>,
    /// A drive: `me`, `user:<id>`, `site:<site>` or a drive id.
    pub drive: Option<String>,
    /// `users` or `groups`.
    pub directory: Option<String>,
}

#[derive(InputObject)]
pub struct CreateChangeSubscriptionInput {
    pub resource: WatchResourceInput,
    /// `created`, `updated`, `deleted`; default: all the resource allows.
    pub change_types: Option<Vec<String>>,
    /// Graph sends the changed item encrypted (needs `notifications.encryption`).
    pub include_resource_data: Option<bool>,
}

#[derive(Default)]
pub struct WatchQuery;

#[Object]
impl WatchQuery {
    /// The caller's watches.
    async fn change_subscriptions(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<Vec<ChangeSubscription>> {
        let session = ctx.data::<Session>()?;
        Ok(session
            .watches()
            .await
            .gql()?
            .into_iter()
            .map(ChangeSubscription::from)
            .collect())
    }
}

#[derive(Default)]
pub struct WatchMutation;

#[Object]
impl WatchMutation {
    /// Starts watching; the gateway creates the Graph subscription with its own
    /// notification URL.
    async fn create_change_subscription(
        &self,
        ctx: &Context<'_>,
        input: CreateChangeSubscriptionInput,
    ) -> async_graphql::Result<ChangeSubscription> {
        let session = ctx.data::<Session>()?;
        let r = input.resource;
        let request = WatchRequest {
            resource: WatchResource {
                mailbox: r.mailbox,
                folder: r.folder,
                calendar: r.calendar,
                contacts: r.contacts,
                drive: r.drive,
                directory: r.directory,
            },
            change_types: input.change_types.unwrap_or_default(),
            include_resource_data: input.include_resource_data.unwrap_or(false),
        };
        Ok(session.create_watch(request).await.gql()?.into())
    }

    /// Stops watching and deletes the recorded events.
    async fn delete_change_subscription(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> async_graphql::Result<bool> {
        let session = ctx.data::<Session>()?;
        session.delete_watch(&id).await.gql()?;
        Ok(true)
    }
}
