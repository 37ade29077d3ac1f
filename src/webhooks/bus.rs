//! The event bus: how change events reach GraphQL subscribers on this replica (and, with
//! Redis, on every replica).
//!
//! Events are committed to the store before they are published, so the bus is only the live
//! push: a subscriber that is not connected when an event is published does not get it
//! later (outbound webhooks, which are durable, are the way to never miss one).
//!
//! With Redis ([`EventBus::with_redis`]) every replica has a random replica id. `publish`
//! sends locally, then `PUBLISH {key_prefix}:events` a JSON envelope
//! `{"replica": id, "event": LiveEvent}`; a background task of each replica `SUBSCRIBE`s to
//! that channel and re-publishes locally what other replicas sent (its own envelopes come
//! back too and are skipped: local subscribers already had them). Redis pub/sub keeps
//! nothing, which is the same promise as the local bus: events published while a replica is
//! cut off from Redis are not seen by its subscribers. Whichever replica processed a
//! notification, every replica's subscribers see the event once.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use crate::redis_pubsub;
use crate::store::ChangeEvent;

/// A committed event with what subscribers filter on: the watch it came from.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct LiveEvent {
    pub event: ChangeEvent,
    /// The caller that owns the watch.
    pub caller: String,
    /// mail | calendar | contacts | drive | users | groups
    pub kind: String,
    /// The watched user's object id, the drive id, or "" (users, groups).
    pub target: String,
    /// The mail folder as the watch named it ("" for other kinds).
    pub folder: String,
}

/// How many events a slow subscriber may fall behind before it misses some (it is told:
/// the stream ends with a `LAGGED` error).
const CAPACITY: usize = 4096;

#[derive(Clone)]
pub struct EventBus {
    local: broadcast::Sender<Arc<LiveEvent>>,
    /// The other replicas, when Redis is configured.
    redis: Option<Arc<RedisLink>>,
}

/// This replica's side of the Redis channel.
struct RedisLink {
    /// Random per process: tells this replica's own envelopes from the others'.
    replica: String,
    /// `{key_prefix}:events`
    channel: String,
    /// For `PUBLISH`; reconnects by itself (subscribing needs a connection of its own).
    connection: redis::aio::ConnectionManager,
    /// Set while publishing fails, so an outage is logged once rather than per batch.
    failing: AtomicBool,
}

/// What goes over the Redis channel.
#[derive(Serialize)]
struct Outgoing<'a> {
    replica: &'a str,
    event: &'a LiveEvent,
}

#[derive(Deserialize)]
struct Incoming {
    replica: String,
    event: LiveEvent,
}

impl Default for EventBus {
    fn default() -> Self {
        Self::new()
    }
}

impl EventBus {
    /// A bus for this replica alone.
    pub fn new() -> Self {
        let (local, _) = broadcast::channel(CAPACITY);
        Self { local, redis: None }
    }

    /// A bus shared with every replica using the same Redis and `key_prefix`. The
    /// subscription to the channel is in place when this returns, so nothing another
    /// replica publishes after the gateway has started is missed; afterwards the listener
    /// reconnects with backoff whenever Redis drops (logging once per outage) and stops on
    /// `shutdown`.
    ///
    /// # Errors
    ///
    /// The URL is invalid, or Redis does not answer within 5 s (as for the rate limiter,
    /// a configured Redis that is not there stops the start).
    pub async fn with_redis(
        url: &str,
        key_prefix: &str,
        shutdown: CancellationToken,
    ) -> anyhow::Result<EventBus> {
        let client = redis::Client::open(url).map_err(|e| anyhow::anyhow!("redis.url: {e}"))?;
        let connection = crate::rate_limit::RateLimiter::connect_redis(url).await?;
        let link = Arc::new(RedisLink {
            replica: uuid::Uuid::new_v4().to_string(),
            channel: format!("{key_prefix}:events"),
            connection,
            failing: AtomicBool::new(false),
        });
        let pubsub = redis_pubsub::subscribe(&client, &link.channel)
            .await
            .map_err(|e| anyhow::anyhow!("redis.url: cannot subscribe to live events: {e}"))?;
        let bus = EventBus {
            local: broadcast::channel(CAPACITY).0,
            redis: Some(link.clone()),
        };
        let local = bus.local.clone();
        let channel = link.channel.clone();
        tokio::spawn(redis_pubsub::listen(
            client,
            channel,
            Some(pubsub),
            "live events",
            move |payload| relay(&link.replica, &local, payload),
            shutdown,
        ));
        Ok(bus)
    }

    /// Sends committed events to this replica's subscribers.
    pub fn publish_local(&self, events: &[LiveEvent]) {
        for event in events {
            // No receiver is fine: nobody is listening right now.
            let _ = self.local.send(Arc::new(event.clone()));
        }
    }

    /// Sends committed events to every subscriber of every replica. Never fails: the
    /// events are committed already, and a Redis failure only means other replicas'
    /// subscribers miss them (logged once per outage, counted in
    /// `gateway_live_events_publish_failures_total`).
    pub async fn publish(&self, events: &[LiveEvent]) {
        self.publish_local(events);
        let Some(link) = &self.redis else {
            return;
        };
        if events.is_empty() {
            return;
        }
        // One round trip for the batch; the order of the events is kept.
        let mut pipe = redis::pipe();
        for event in events {
            let envelope = Outgoing {
                replica: &link.replica,
                event,
            };
            match serde_json::to_string(&envelope) {
                Ok(payload) => {
                    pipe.cmd("PUBLISH").arg(&link.channel).arg(payload).ignore();
                }
                Err(e) => tracing::error!(error = %e, "a live event could not be serialised"),
            }
        }
        let mut connection = link.connection.clone();
        match pipe.query_async::<()>(&mut connection).await {
            Ok(()) => {
                if link.failing.swap(false, Ordering::Relaxed) {
                    tracing::info!("live events reach the other replicas through Redis again");
                }
            }
            Err(e) => {
                metrics::counter!("gateway_live_events_publish_failures_total")
                    .increment(events.len() as u64);
                if !link.failing.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        error = %e,
                        "live events cannot be published to Redis; subscribers on other replicas miss them until it is back"
                    );
                }
            }
        }
    }

    /// A stream of the events published from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<LiveEvent>> {
        self.local.subscribe()
    }

    /// How many subscribers listen on this replica now.
    pub fn subscribers(&self) -> usize {
        self.local.receiver_count()
    }
}

/// One envelope from the channel: another replica's event goes to local subscribers.
fn relay(replica: &str, local: &broadcast::Sender<Arc<LiveEvent>>, payload: &[u8]) {
    match serde_json::from_slice::<Incoming>(payload) {
        Ok(incoming) if incoming.replica == replica => {}
        Ok(incoming) => {
            let _ = local.send(Arc::new(incoming.event));
        }
        Err(e) => tracing::debug!(error = %e, "ignored a message on the live events channel"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(id: &str) -> LiveEvent {
        LiveEvent {
            event: ChangeEvent {
                seq: 1,
                id: id.into(),
                subscription_id: "w1".into(),
                change_type: "created".into(),
                resource: "Users/u/Messages/m".into(),
                resource_id: Some("m".into()),
                data: None,
                occurred_at: time::OffsetDateTime::UNIX_EPOCH,
            },
            caller: "c".into(),
            kind: "mail".into(),
            target: "u".into(),
            folder: "inbox".into(),
        }
    }

    #[test]
    fn an_envelope_from_another_replica_is_relayed_and_one_of_our_own_is_not() {
        let (local, mut rx) = broadcast::channel(8);
        let own = Outgoing {
            replica: "me",
            event: &event("mine"),
        };
        let other = Outgoing {
            replica: "other",
            event: &event("theirs"),
        };
        for envelope in [&own, &other] {
            relay("me", &local, &serde_json::to_vec(envelope).unwrap());
        }
        relay("me", &local, b"not json");
        assert_eq!(rx.try_recv().unwrap().event.id, "theirs");
        assert!(rx.try_recv().is_err());
    }
}
