//! The event bus: how change events reach GraphQL subscribers on this replica (and, with
//! Redis, on every replica).
//!
//! Events are committed to the store before they are published, so the bus is only the live
//! push: a subscriber that is not connected when an event is published does not get it
//! later (outbound webhooks, which are durable, are the way to never miss one).

use std::sync::Arc;

use tokio::sync::broadcast;

use crate::store::ChangeEvent;

/// How many events a slow subscriber may fall behind before it misses some (it is told:
/// the stream ends with a `LAGGED` error).
const CAPACITY: usize = 4096;

#[derive(Clone)]
pub struct EventBus {
    local: broadcast::Sender<Arc<ChangeEvent>>,
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
    pub fn publish_local(&self, events: &[ChangeEvent]) {
        for event in events {
            // No receiver is fine: nobody is listening right now.
            let _ = self.local.send(Arc::new(event.clone()));
        }
    }

    /// Sends committed events to every subscriber of every replica.
    pub async fn publish(&self, events: &[ChangeEvent]) {
        self.publish_local(events);
    }

    /// A stream of the events published from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<ChangeEvent>> {
        self.local.subscribe()
    }
}
