//! The subscription root: live change events from the event bus (`webhooks::bus`) for
//! callers connected over the WebSocket transport (`ws.rs`).
//!
//! A subscription starts like a query: the caller's [`Session`] is opened and the policy
//! checked before any event flows. Each event is then resolved like a request of its own: a
//! fresh Session for the subscriber is opened per event ([`EventSession`]), so nested fields
//! (`message { from { user { … } } }`) get the same policy checks, batcher and deadline as
//! over HTTP, and an event that arrives an hour later is not bound by the first one's
//! deadline.
//!
//! The bus keeps nothing: events published while nobody listens are not replayed here (the
//! store and outbound webhooks are the durable path). A subscriber too slow for the bus's
//! buffer is not silently skipped ahead: its stream ends with a `LAGGED` error.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_graphql::extensions::{Extension, ExtensionContext, ExtensionFactory, NextExecute};
use async_graphql::{Context, Data, ErrorExtensions, ID, Json, Object};
use futures::StreamExt;
use futures::stream::BoxStream;
use tokio::sync::broadcast::{self, error::RecvError};

use super::GqlResult;
use crate::auth::Caller;
use crate::service::mail::Message;
use crate::service::{ServiceError, Services, Session};
use crate::store::Store;
use crate::webhooks::bus::LiveEvent;

/// `extensions.code` of the error that ends a stream whose subscriber fell behind.
pub const LAGGED: &str = "LAGGED";

/// Two watches on the same folder (two callers each made one) turn one change into two
/// events. `mailboxChanges` is about the mailbox, not the watches: the same change of the
/// same message from another watch within this window is dropped.
const DUPLICATE_WINDOW: Duration = Duration::from_secs(10);

/// How many recent changes the duplicate check remembers.
const DUPLICATE_MEMORY: usize = 256;

/// The root subscription type.
#[derive(Default)]
pub struct Subscription;

type Live<T> = BoxStream<'static, async_graphql::Result<T>>;

#[async_graphql::Subscription]
impl Subscription {
    /// Changes to a mail folder as they happen: created, updated and deleted messages,
    /// each with the message resolved like a query (null when deleted or gone). Needs
    /// `mail.read` and the mailbox among the caller's resources, and a watch on the folder
    /// (create one with the subscriptions API first; `NOT_FOUND` otherwise). A subscriber
    /// that falls too far behind gets one error with code `LAGGED` and the stream ends:
    /// subscribe again.
    async fn mailbox_changes(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Object id, user principal name or address; `me` for the caller's user.")]
        mailbox: String,
        #[graphql(
            default = "inbox",
            desc = "The folder as the watch names it (ASCII case aside), e.g. `inbox`."
        )]
        folder: String,
    ) -> async_graphql::Result<Live<MailboxChange>> {
        let (services, caller) = subscriber(ctx)?;
        let session = Session::open(services, caller.clone()).await.gql()?;
        session.require("mail.read").gql()?;
        // The policy check, then the object id, exactly as the subscriptions API named the
        // watch's target.
        let target = session.watched_user(&mailbox).await.gql()?;
        let store = store(services).gql()?;
        // Listening before looking for the watch: nothing published after the check is lost.
        let receiver = services.events.subscribe();
        let watched = store
            .list_watches(None)
            .await
            .map_err(store_error)
            .gql()?
            .iter()
            .any(|w| {
                w.kind == "mail"
                    && w.target.eq_ignore_ascii_case(&target)
                    && w.folder.eq_ignore_ascii_case(&folder)
            });
        if !watched {
            return Err(ServiceError::NotFound(format!(
                "mailbox '{mailbox}' has no watch on folder '{folder}': create one first (createChangeSubscription, or POST /api/v1/subscriptions)"
            ))
            .extend());
        }
        let mut recent = Recent::default();
        Ok(live(receiver, move |event| {
            let wanted = event.kind == "mail"
                && event.target.eq_ignore_ascii_case(&target)
                && event.folder.eq_ignore_ascii_case(&folder)
                && recent.first_time(event);
            wanted.then(|| MailboxChange {
                event: event.clone(),
                mailbox: target.clone(),
            })
        }))
    }

    /// Every event of one of the caller's watches (subscriptions API), as recorded.
    /// Another caller's watch is `NOT_FOUND`. Ends with a `LAGGED` error when the
    /// subscriber falls too far behind.
    async fn changes(
        &self,
        ctx: &Context<'_>,
        subscription_id: ID,
    ) -> async_graphql::Result<Live<ChangeEvent>> {
        let (services, caller) = subscriber(ctx)?;
        let store = store(services).gql()?;
        let receiver = services.events.subscribe();
        let watch = store
            .watch(&subscription_id)
            .await
            .map_err(store_error)
            .gql()?;
        // Someone else's watch is as absent as one that does not exist.
        if watch.is_none_or(|w| w.caller != caller.name) {
            return Err(ServiceError::NotFound(format!(
                "subscription '{}' was not found",
                subscription_id.as_str()
            ))
            .extend());
        }
        let id = subscription_id.0;
        Ok(live(receiver, move |event| {
            (event.event.subscription_id == id).then(|| ChangeEvent(event.clone()))
        }))
    }
}

pub struct MailboxChange {
    event: Arc<LiveEvent>,
    /// The mailbox owner's object id (the message is read from there).
    mailbox: String,
}

/// A change to a message of a watched mail folder.
#[Object]
impl MailboxChange {
    /// The event's id (the same in the store and in outbound webhooks).
    async fn id(&self) -> ID {
        ID(self.event.event.id.clone())
    }
    /// The watch the event came from.
    async fn subscription_id(&self) -> ID {
        ID(self.event.event.subscription_id.clone())
    }
    /// `created`, `updated` or `deleted`.
    async fn change_type(&self) -> &str {
        &self.event.event.change_type
    }
    async fn message_id(&self) -> Option<ID> {
        self.event.event.resource_id.clone().map(ID)
    }
    /// When the change was recorded, ISO 8601 (UTC).
    async fn occurred_at(&self) -> String {
        rfc3339(self.event.event.occurred_at)
    }
    /// The message as it is now, read for the subscriber like any query; null for
    /// `deleted` or when the message is gone.
    async fn message(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Message>> {
        if self.event.event.change_type.eq_ignore_ascii_case("deleted") {
            return Ok(None);
        }
        let Some(id) = &self.event.event.resource_id else {
            return Ok(None);
        };
        let session = event_session(ctx)?;
        let select = super::mail::message_select(ctx.field().selection_set());
        match session.message(&self.mailbox, id, &select).await {
            Ok(message) => Ok(Some(message)),
            Err(ServiceError::NotFound(_)) => Ok(None),
            Err(e) => Err(e.extend()),
        }
    }
}

pub struct ChangeEvent(Arc<LiveEvent>);

/// A change event of a watch, as recorded (and as outbound webhooks deliver it).
#[Object]
impl ChangeEvent {
    async fn id(&self) -> ID {
        ID(self.0.event.id.clone())
    }
    async fn subscription_id(&self) -> ID {
        ID(self.0.event.subscription_id.clone())
    }
    /// `created`, `updated`, `deleted` (or a lifecycle event's name).
    async fn change_type(&self) -> &str {
        &self.0.event.change_type
    }
    /// The Graph resource that changed, e.g. `Users/{id}/Messages/{id}`.
    async fn resource(&self) -> &str {
        &self.0.event.resource
    }
    async fn resource_id(&self) -> Option<ID> {
        self.0.event.resource_id.clone().map(ID)
    }
    /// When the change was recorded, ISO 8601 (UTC).
    async fn occurred_at(&self) -> String {
        rfc3339(self.0.event.occurred_at)
    }
    /// What the gateway recorded about the change (for example the resource's properties
    /// from a rich notification); null when nothing was recorded.
    async fn data(&self) -> Option<Json<serde_json::Value>> {
        self.0.event.data.clone().map(Json)
    }
}

/// The bus's events that `pick` turns into items, until the bus closes. A receiver that
/// lagged ends the stream with a `LAGGED` error rather than skipping ahead in silence.
fn live<T: Send + 'static>(
    receiver: broadcast::Receiver<Arc<LiveEvent>>,
    pick: impl FnMut(&Arc<LiveEvent>) -> Option<T> + Send + 'static,
) -> Live<T> {
    futures::stream::unfold(Some((receiver, pick)), |state| async move {
        let (mut receiver, mut pick) = state?;
        loop {
            match receiver.recv().await {
                Ok(event) => {
                    if let Some(item) = pick(&event) {
                        return Some((Ok(item), Some((receiver, pick))));
                    }
                }
                Err(RecvError::Lagged(missed)) => return Some((Err(lagged(missed)), None)),
                Err(RecvError::Closed) => return None,
            }
        }
    })
    .boxed()
}

fn lagged(missed: u64) -> async_graphql::Error {
    async_graphql::Error::new(format!(
        "this subscriber fell behind and {missed} events were dropped; subscribe again"
    ))
    .extend_with(|_, e| {
        e.set("code", LAGGED);
        e.set("missed", missed);
    })
}

/// The changes `mailboxChanges` delivered lately, to drop the same change seen through
/// another watch.
#[derive(Default)]
struct Recent(VecDeque<(Instant, String, String, Option<String>)>);

impl Recent {
    fn first_time(&mut self, event: &LiveEvent) -> bool {
        let now = Instant::now();
        while self
            .0
            .front()
            .is_some_and(|(at, ..)| now.duration_since(*at) > DUPLICATE_WINDOW)
            || self.0.len() >= DUPLICATE_MEMORY
        {
            self.0.pop_front();
        }
        let e = &event.event;
        let seen = self.0.iter().any(|(_, watch, change, resource)| {
            *watch != e.subscription_id && *change == e.change_type && *resource == e.resource_id
        });
        if !seen {
            self.0.push_back((
                now,
                e.subscription_id.clone(),
                e.change_type.clone(),
                e.resource_id.clone(),
            ));
        }
        !seen
    }
}

fn rfc3339(at: time::OffsetDateTime) -> String {
    at.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// The connection's caller and the services, put in the connection data by `ws.rs`.
fn subscriber<'a>(ctx: &Context<'a>) -> async_graphql::Result<(&'a Services, &'a Caller)> {
    match (ctx.data_opt::<Services>(), ctx.data_opt::<Caller>()) {
        (Some(services), Some(caller)) => Ok((services, caller)),
        // Subscriptions only run over the WebSocket transport, which always sets both.
        _ => Err(ServiceError::Unauthenticated.extend()),
    }
}

fn store(services: &Services) -> Result<&Store, ServiceError> {
    services.store.as_ref().ok_or_else(|| {
        ServiceError::Unavailable(
            "change notifications are off on this gateway (notifications.enabled)".into(),
        )
    })
}

fn store_error(e: crate::store::StoreError) -> ServiceError {
    tracing::error!(error = %e, "store failure");
    ServiceError::Unavailable("the gateway's store is unavailable; retry later".into())
}

/// Why the event's Session could not be opened (a connected user disconnected, the
/// store is down): the fields that need it report this.
struct NoSession(ServiceError);

/// The Session [`EventSession`] opened for this event.
fn event_session<'a>(ctx: &Context<'a>) -> async_graphql::Result<&'a Session> {
    if let Some(session) = ctx.data_opt::<Session>() {
        return Ok(session);
    }
    Err(match ctx.data_opt::<NoSession>() {
        Some(NoSession(error)) => error.extend(),
        None => ServiceError::Internal.extend(),
    })
}

/// Opens the subscriber's Session for each event of a subscription (async-graphql runs
/// the `execute` hook once per event, and passes the data on to that event's resolvers).
/// Requests that carry a Session already (HTTP, WebSocket queries and mutations) are left
/// alone.
pub struct EventSession;

impl ExtensionFactory for EventSession {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(EventSessionExtension)
    }
}

struct EventSessionExtension;

#[async_trait::async_trait]
impl Extension for EventSessionExtension {
    async fn execute(
        &self,
        ctx: &ExtensionContext<'_>,
        operation_name: Option<&str>,
        next: NextExecute<'_>,
    ) -> async_graphql::Response {
        if ctx.data_opt::<Session>().is_some() {
            return next.run(ctx, operation_name).await;
        }
        let (Some(services), Some(caller)) = (ctx.data_opt::<Services>(), ctx.data_opt::<Caller>())
        else {
            return next.run(ctx, operation_name).await;
        };
        let mut data = Data::default();
        match Session::open(services, caller.clone()).await {
            Ok(session) => data.insert(session),
            Err(error) => data.insert(NoSession(error)),
        }
        next.run_with_data(ctx, operation_name, data).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::ChangeEvent as Recorded;

    fn event(watch: &str, change: &str, message: &str) -> Arc<LiveEvent> {
        Arc::new(LiveEvent {
            event: Recorded {
                seq: 1,
                id: format!("{watch}-{change}-{message}"),
                subscription_id: watch.into(),
                change_type: change.into(),
                resource: format!("Users/u/Messages/{message}"),
                resource_id: Some(message.into()),
                data: None,
                occurred_at: time::OffsetDateTime::UNIX_EPOCH,
            },
            caller: "c".into(),
            kind: "mail".into(),
            target: "u".into(),
            folder: "Inbox".into(),
        })
    }

    #[test]
    fn the_same_change_through_a_second_watch_is_dropped_but_not_a_later_change_of_one_watch() {
        let mut recent = Recent::default();
        assert!(recent.first_time(&event("w1", "created", "m1")));
        assert!(!recent.first_time(&event("w2", "created", "m1")));
        // The same watch reporting again is a new change (a second update).
        assert!(recent.first_time(&event("w1", "created", "m1")));
        assert!(recent.first_time(&event("w2", "updated", "m1")));
        assert!(recent.first_time(&event("w2", "created", "m2")));
    }

    #[tokio::test]
    async fn a_lagging_subscriber_gets_one_lagged_error_and_the_stream_ends() {
        let (sender, receiver) = broadcast::channel(2);
        let mut stream = live(receiver, |e| Some(e.event.id.clone()));
        for i in 0..5 {
            sender.send(event("w", "created", &i.to_string())).unwrap();
        }
        let error = stream.next().await.unwrap().unwrap_err();
        let code = error
            .extensions
            .as_ref()
            .and_then(|e| e.get("code"))
            .cloned();
        assert_eq!(code, Some(async_graphql::Value::from(LAGGED)));
        assert!(stream.next().await.is_none());
    }

    #[tokio::test]
    async fn events_the_filter_refuses_are_skipped_and_the_stream_ends_with_the_bus() {
        let (sender, receiver) = broadcast::channel(8);
        let mut stream = live(receiver, |e| {
            (e.event.subscription_id == "mine").then(|| e.event.id.clone())
        });
        sender.send(event("other", "created", "1")).unwrap();
        sender.send(event("mine", "created", "2")).unwrap();
        drop(sender);
        assert_eq!(stream.next().await.unwrap().unwrap(), "mine-created-2");
        assert!(stream.next().await.is_none());
    }
}
