//! The event bus: how change events reach GraphQL subscribers on this replica (and, with
//! Redis, on every replica).
//!
//! Events are committed to the store before they are published, so the bus is only the live
//! push: a subscriber that is not connected when an event is published does not get it
//! later (outbound webhooks, which are durable, are the way to never miss one).

use std::sync::Arc;

use tokio::sync::broadcast;

use serde::{Deserialize, Serialize};

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
}

impl Default for EventBus {
    fn default() -> Self {
        Self::new()
    }
}

impl EventBus {
    pub fn new() -> Self {
        let (local, _) = broadcast::channel(CAPACITY);
        Self { local }
    }

    /// Sends committed events to this replica's subscribers.
    pub fn publish_local(&self, events: &[LiveEvent]) {
        for event in events {
            // No receiver is fine: nobody is listening right now.
            let _ = self.local.send(Arc::new(event.clone()));
        }
    }

    /// Sends committed events to every subscriber of every replica.
    pub async fn publish(&self, events: &[LiveEvent]) {
        self.publish_local(events);
    }

    /// A stream of the events published from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<LiveEvent>> {
        self.local.subscribe()
    }
}
