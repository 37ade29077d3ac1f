//! Per-request batching of Graph GETs: the keys asked for "in the same tick" reach
//! [`GraphClient::get_many`] together, which packs the cache misses into `$batch`es.
//!
//! Written by hand instead of using async-graphql's `DataLoader`: that one closes its batch
//! after a fixed timer (1 ms), so when resolving fifty list items takes longer than the
//! window (debug builds, a busy core) the keys split into several half-empty batches. Here
//! the batch closes when the request's own task has had a chance to poll every sibling
//! resolver: the first key of a round makes its future the *leader*, which yields to the
//! executor before collecting. Every resolver polled in the same pass of the enclosing
//! `join_all` registers its key before the leader runs again, so batches are as full as
//! the query allows and no time is spent waiting.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use bytes::Bytes;
use tokio::sync::oneshot;
use tracing::Instrument;

use crate::graph::{GraphClient, GraphError, GraphGet};
use crate::identity::Access;

/// Executor passes the leader waits; two leave room for a resolver that needs one extra
/// ready `.await` before it asks for its key.
const YIELDS: usize = 2;

type Reply = oneshot::Sender<Result<Bytes, GraphError>>;

#[derive(Default)]
struct Round {
    waiters: Vec<(GraphGet, Reply)>,
    leader: bool,
}

pub struct GraphBatcher {
    graph: GraphClient,
    access: Access,
    /// The request's deadline: no Graph call of this request waits past it.
    deadline: Instant,
    round: Mutex<Round>,
}

impl GraphBatcher {
    pub fn new(graph: GraphClient, access: Access, deadline: Instant) -> Self {
        Self {
            graph,
            access,
            deadline,
            round: Mutex::new(Round::default()),
        }
    }

    /// One GET, batched with whatever else this request asks for in the same tick.
    pub async fn load(&self, key: GraphGet) -> Result<Bytes, GraphError> {
        let (tx, rx) = oneshot::channel();
        let lead = {
            let mut round = self.round.lock().expect("batcher lock");
            round.waiters.push((key, tx));
            !std::mem::replace(&mut round.leader, true)
        };
        if lead {
            // The guard flushes even if this future is dropped while yielding (its
            // request subtree was cancelled): the other waiters must still get answers.
            let guard = Flush(self);
            for _ in 0..YIELDS {
                tokio::task::yield_now().await;
            }
            drop(guard);
        }
        rx.await.unwrap_or_else(|_| {
            Err(GraphError::BadResponse(
                "a batched request was dropped".into(),
            ))
        })
    }

    /// Takes the round's keys and fetches them in a task of its own, so the answers
    /// arrive however the futures that asked are polled or dropped.
    fn flush(&self) {
        let waiters = {
            let mut round = self.round.lock().expect("batcher lock");
            round.leader = false;
            std::mem::take(&mut round.waiters)
        };
        if waiters.is_empty() {
            return;
        }
        let graph = self.graph.clone();
        let access = self.access.clone();
        let deadline = self.deadline;
        // The round's span, a child of the resolver that led it (the task would otherwise
        // lose the request's trace); its Graph calls are children of it.
        let span = tracing::debug_span!(
            "graph.batch",
            graph.batch.keys = waiters.len(),
            graph.batch.unique = tracing::field::Empty,
        );
        let round = async move {
            let mut unique: Vec<GraphGet> = Vec::new();
            let mut index: HashMap<GraphGet, usize> = HashMap::new();
            for (key, _) in &waiters {
                index.entry(key.clone()).or_insert_with(|| {
                    unique.push(key.clone());
                    unique.len() - 1
                });
            }
            tracing::Span::current().record("graph.batch.unique", unique.len());
            let results = graph.get_many(&access, &unique, deadline).await;
            for (key, reply) in waiters {
                let _ = reply.send(results[index[&key]].clone());
            }
        };
        tokio::spawn(round.instrument(span));
    }
}

struct Flush<'a>(&'a GraphBatcher);

impl Drop for Flush<'_> {
    fn drop(&mut self) {
        self.0.flush();
    }
}
