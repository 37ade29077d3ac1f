//! Change notifications: watches (the Graph subscriptions behind them), the notification
//! outbox, change events, and the rows consumer webhooks hang from.
//!
//! Work is shared between replicas by leases written in the rows themselves: a claim sets
//! `lease_owner` and moves the row's due time past the lease, in one statement, so two
//! replicas never hold the same row and a replica that dies simply lets its lease run out.
//! On PostgreSQL the claim's sub-select takes `FOR UPDATE SKIP LOCKED`, so concurrent claims
//! pass each other instead of queueing; SQLite has one writer at a time anyway.
//!
//! Exactly-once effects: processing a notification inserts its events (ids derived from
//! what changed, `ON CONFLICT DO NOTHING`), their webhook deliveries, and marks the outbox
//! row done, in one transaction that commits only while the worker still holds the lease.

use serde::Serialize;
use serde_json::Value;
use time::OffsetDateTime;

use super::timestamp::Ts;
// Statements built with `format!` below only ever join this file's constant column lists
// and a backend-specific locking clause: no input reaches them (hence `AssertSqlSafe`).
use super::{Db, RowExt, Store, StoreError};

/// A new watch, before its Graph subscription exists.
#[derive(Clone, Debug)]
pub struct NewWatch {
    pub id: String,
    pub caller: String,
    pub kind: String,
    pub target: String,
    pub folder: String,
    pub resource: String,
    pub change_types: String,
    pub include_resource_data: bool,
    /// The first resync to run (`baseline` for kinds with delta), see [`Watch::resync`].
    pub resync: Option<String>,
}

/// The Graph subscription behind a watch, as last created or renewed.
#[derive(Clone, Debug)]
pub struct WatchGraphState {
    pub graph_id: String,
    /// Hex SHA-256 of the clientState given to Graph (the value itself is never stored).
    pub client_state_hash: String,
    pub expires_at: OffsetDateTime,
    /// When the renewal job should next renew it (about two-thirds into its lifetime).
    pub renew_after: OffsetDateTime,
}

/// A watch as stored.
#[derive(Clone, Debug, Serialize)]
pub struct Watch {
    pub id: String,
    pub caller: String,
    pub kind: String,
    pub target: String,
    pub folder: String,
    pub resource: String,
    pub change_types: String,
    pub include_resource_data: bool,
    pub graph_id: Option<String>,
    #[serde(skip)]
    pub client_state_hash: String,
    #[serde(with = "time::serde::rfc3339::option")]
    pub expires_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339")]
    pub renew_after: OffsetDateTime,
    /// A resync to run at the next renewal pass: `baseline` (a new watch: record where
    /// the data is, emit nothing), `delta` (from the stored delta link), `full` (the delta
    /// link expired: everything, as updates).
    pub resync: Option<String>,
    #[serde(skip)]
    pub delta_link: Option<String>,
    /// When the last resync ended (items created since are announced as `created`).
    #[serde(with = "time::serde::rfc3339::option")]
    pub synced_at: Option<OffsetDateTime>,
    pub state: String,
    pub last_error: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

/// One accepted notification item, to commit before Graph gets its 202.
#[derive(Clone, Debug)]
pub struct NewNotification {
    pub dedupe_key: String,
    pub subscription_id: String,
    pub graph_id: String,
    pub change_type: Option<String>,
    pub lifecycle_event: Option<String>,
    pub resource: Option<String>,
    pub resource_id: Option<String>,
    pub etag: Option<String>,
    pub resource_data: Option<Value>,
}

/// A claimed outbox row.
#[derive(Clone, Debug)]
pub struct OutboxItem {
    pub seq: i64,
    pub subscription_id: String,
    pub graph_id: String,
    pub change_type: Option<String>,
    pub lifecycle_event: Option<String>,
    pub resource: Option<String>,
    pub resource_id: Option<String>,
    pub etag: Option<String>,
    pub resource_data: Option<Value>,
    pub received_at: OffsetDateTime,
    /// Including this one.
    pub attempts: i64,
}

/// An event to record.
#[derive(Clone, Debug)]
pub struct NewChangeEvent {
    pub id: String,
    pub subscription_id: String,
    pub change_type: String,
    pub resource: String,
    pub resource_id: Option<String>,
    pub data: Option<Value>,
    pub occurred_at: OffsetDateTime,
}

/// A recorded event.
#[derive(Clone, Debug, Serialize, serde::Deserialize, PartialEq)]
pub struct ChangeEvent {
    pub seq: i64,
    pub id: String,
    pub subscription_id: String,
    pub change_type: String,
    pub resource: String,
    pub resource_id: Option<String>,
    pub data: Option<Value>,
    #[serde(with = "time::serde::rfc3339")]
    pub occurred_at: OffsetDateTime,
}

const WATCH_COLUMNS: &str = "id, caller, kind, target, folder, resource, change_types, \
    include_resource_data, graph_id, client_state_hash, expires_at, renew_after, resync, \
    delta_link, synced_at, state, last_error, created_at, updated_at";

const OUTBOX_COLUMNS: &str = "seq, subscription_id, graph_id, change_type, lifecycle_event, \
    resource, resource_id, etag, resource_data, received_at, attempts";

const INSERT_WATCH: &str = "INSERT INTO watch_subscriptions \
    (id, caller, kind, target, folder, resource, change_types, include_resource_data, graph_id, \
     client_state_hash, expires_at, renew_after, resync, delta_link, synced_at, state, \
     lease_owner, lease_until, last_error, created_at, updated_at) \
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, NULL, '', NULL, $11, $10, NULL, NULL, 'active', NULL, \
     NULL, NULL, $9, $9)";

const SET_GRAPH_STATE: &str = "UPDATE watch_subscriptions SET graph_id = $2, \
    client_state_hash = $3, expires_at = $4, renew_after = $5, state = 'active', \
    last_error = NULL, updated_at = $6 WHERE id = $1";

const INSERT_NOTIFICATION: &str = "INSERT INTO notification_outbox \
    (dedupe_key, subscription_id, graph_id, change_type, lifecycle_event, resource, resource_id, \
     etag, resource_data, received_at, state, attempts, available_at) \
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 'pending', 0, $10) \
    ON CONFLICT (dedupe_key) DO NOTHING";

const INSERT_EVENT: &str = "INSERT INTO change_events \
    (id, subscription_id, change_type, resource, resource_id, data, occurred_at) \
    VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (id) DO NOTHING RETURNING seq";

// `WHERE` before `ON CONFLICT`: SQLite needs it to parse an upsert over a SELECT.
const INSERT_DELIVERIES: &str = "INSERT INTO webhook_deliveries \
    (webhook_id, event_id, state, attempts, next_attempt_at, created_at) \
    SELECT id, $1, 'pending', 0, $2, $2 FROM consumer_webhooks WHERE subscription_id = $3 \
    ON CONFLICT (webhook_id, event_id) DO NOTHING";

const FINISH_NOTIFICATION: &str = "UPDATE notification_outbox SET state = 'done', \
    processed_at = $3, lease_owner = NULL, last_error = NULL \
    WHERE seq = $1 AND lease_owner = $2 AND state = 'pending'";

fn claim_outbox_sql(db: &Db) -> String {
    let lock = match db {
        Db::Postgres(_) => " FOR UPDATE SKIP LOCKED",
        Db::Sqlite(_) => "",
    };
    format!(
        "UPDATE notification_outbox SET lease_owner = $1, available_at = $2, \
         attempts = attempts + 1 WHERE seq IN (SELECT seq FROM notification_outbox \
         WHERE state = 'pending' AND available_at <= $3 ORDER BY seq LIMIT $4{lock}) \
         RETURNING {OUTBOX_COLUMNS}"
    )
}

fn claim_watches_sql(db: &Db) -> String {
    let lock = match db {
        Db::Postgres(_) => " FOR UPDATE SKIP LOCKED",
        Db::Sqlite(_) => "",
    };
    format!(
        "UPDATE watch_subscriptions SET lease_owner = $1, lease_until = $2 \
         WHERE id IN (SELECT id FROM watch_subscriptions WHERE renew_after <= $3 \
         AND (lease_until IS NULL OR lease_until <= $3) ORDER BY renew_after LIMIT $4{lock}) \
         RETURNING {WATCH_COLUMNS}"
    )
}

fn read_watch(r: &impl RowExt) -> Result<Watch, StoreError> {
    Ok(Watch {
        id: r.text("id")?,
        caller: r.text("caller")?,
        kind: r.text("kind")?,
        target: r.text("target")?,
        folder: r.text("folder")?,
        resource: r.text("resource")?,
        change_types: r.text("change_types")?,
        include_resource_data: r.flag("include_resource_data")?,
        graph_id: r.opt_text("graph_id")?,
        client_state_hash: r.text("client_state_hash")?,
        expires_at: r.opt_ts("expires_at")?,
        renew_after: r.ts("renew_after")?,
        resync: r.opt_text("resync")?,
        delta_link: r.opt_text("delta_link")?,
        synced_at: r.opt_ts("synced_at")?,
        state: r.text("state")?,
        last_error: r.opt_text("last_error")?,
        created_at: r.ts("created_at")?,
        updated_at: r.ts("updated_at")?,
    })
}

fn json_column(text: Option<String>, what: &str) -> Result<Option<Value>, StoreError> {
    text.map(|t| serde_json::from_str(&t))
        .transpose()
        .map_err(|e| StoreError::Corrupt(format!("{what}: {e}")))
}

fn read_outbox(r: &impl RowExt) -> Result<OutboxItem, StoreError> {
    Ok(OutboxItem {
        seq: r.int("seq")?,
        subscription_id: r.text("subscription_id")?,
        graph_id: r.text("graph_id")?,
        change_type: r.opt_text("change_type")?,
        lifecycle_event: r.opt_text("lifecycle_event")?,
        resource: r.opt_text("resource")?,
        resource_id: r.opt_text("resource_id")?,
        etag: r.opt_text("etag")?,
        resource_data: json_column(
            r.opt_text("resource_data")?,
            "notification_outbox.resource_data",
        )?,
        received_at: r.ts("received_at")?,
        attempts: r.int("attempts")?,
    })
}

fn read_event(r: &impl RowExt) -> Result<ChangeEvent, StoreError> {
    Ok(ChangeEvent {
        seq: r.int("seq")?,
        id: r.text("id")?,
        subscription_id: r.text("subscription_id")?,
        change_type: r.text("change_type")?,
        resource: r.text("resource")?,
        resource_id: r.opt_text("resource_id")?,
        data: json_column(r.opt_text("data")?, "change_events.data")?,
        occurred_at: r.ts("occurred_at")?,
    })
}

fn to_json(value: &Option<Value>) -> Option<String> {
    value.as_ref().map(Value::to_string)
}

/// Inserts `events` (skipping ids already recorded) and, for each new one, a delivery per
/// consumer webhook of its watch, inside transaction `tx`; evaluates to the new events.
/// A macro because the transaction's type differs per backend (see `with_pool!`).
macro_rules! insert_events {
    ($tx:ident, $events:expr, $now:expr) => {{
        let mut inserted = Vec::new();
        for e in $events {
            if let Some(seq) = sqlx::query_scalar::<_, i64>(INSERT_EVENT)
                .bind(&e.id)
                .bind(&e.subscription_id)
                .bind(&e.change_type)
                .bind(&e.resource)
                .bind(&e.resource_id)
                .bind(to_json(&e.data))
                .bind(Ts::new(e.occurred_at))
                .fetch_optional(&mut *$tx)
                .await?
            {
                sqlx::query(INSERT_DELIVERIES)
                    .bind(&e.id)
                    .bind($now)
                    .bind(&e.subscription_id)
                    .execute(&mut *$tx)
                    .await?;
                inserted.push(recorded(seq, e));
            }
        }
        inserted
    }};
}

impl Store {
    // ---- watches ----

    /// Records a watch whose Graph subscription is yet to be created (`graph_id` NULL).
    /// The renewal job leaves it to its creator for two minutes, then creates the Graph
    /// subscription itself: a crash in between is repaired, not lost.
    pub async fn insert_watch(&self, w: &NewWatch) -> Result<(), StoreError> {
        let now = Ts::now();
        let due = Ts::new(now.0 + std::time::Duration::from_secs(120));
        with_pool!(&self.db, pool => {
            sqlx::query(INSERT_WATCH)
                .bind(&w.id)
                .bind(&w.caller)
                .bind(&w.kind)
                .bind(&w.target)
                .bind(&w.folder)
                .bind(&w.resource)
                .bind(&w.change_types)
                .bind(w.include_resource_data)
                .bind(now)
                .bind(&w.resync)
                .bind(due)
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    /// Stores the Graph subscription now serving watch `id` (after a create, re-create or
    /// renewal). A lease on it stays until [`Store::release_watch`].
    pub async fn set_watch_graph_state(
        &self,
        id: &str,
        g: &WatchGraphState,
    ) -> Result<(), StoreError> {
        with_pool!(&self.db, pool => {
            sqlx::query(SET_GRAPH_STATE)
                .bind(id)
                .bind(&g.graph_id)
                .bind(&g.client_state_hash)
                .bind(Ts::new(g.expires_at))
                .bind(Ts::new(g.renew_after))
                .bind(Ts::now())
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    pub async fn watch(&self, id: &str) -> Result<Option<Watch>, StoreError> {
        let sql = format!("SELECT {WATCH_COLUMNS} FROM watch_subscriptions WHERE id = $1");
        Ok(with_pool!(&self.db, pool => {
            match sqlx::query(sqlx::AssertSqlSafe(sql.clone())).bind(id).fetch_optional(pool).await? {
                Some(r) => Some(read_watch(&r)?),
                None => None,
            }
        }))
    }

    /// The watch a Graph subscription id belongs to (the receiver's lookup).
    pub async fn watch_by_graph_id(&self, graph_id: &str) -> Result<Option<Watch>, StoreError> {
        let sql = format!("SELECT {WATCH_COLUMNS} FROM watch_subscriptions WHERE graph_id = $1");
        Ok(with_pool!(&self.db, pool => {
            match sqlx::query(sqlx::AssertSqlSafe(sql.clone())).bind(graph_id).fetch_optional(pool).await? {
                Some(r) => Some(read_watch(&r)?),
                None => None,
            }
        }))
    }

    /// A caller's watches, oldest first; `None` lists every caller's.
    pub async fn list_watches(&self, caller: Option<&str>) -> Result<Vec<Watch>, StoreError> {
        let sql = format!(
            "SELECT {WATCH_COLUMNS} FROM watch_subscriptions WHERE ($1 IS NULL OR caller = $1) \
             ORDER BY created_at, id"
        );
        let rows = with_pool!(&self.db, pool => {
            sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
                .bind(caller)
                .fetch_all(pool)
                .await?
                .iter()
                .map(read_watch)
                .collect::<Result<Vec<_>, _>>()?
        });
        Ok(rows)
    }

    /// Deletes a watch with its outbox rows, events, webhooks and deliveries. True when it
    /// existed.
    pub async fn delete_watch(&self, id: &str) -> Result<bool, StoreError> {
        let n = with_pool!(&self.db, pool => {
            sqlx::query("DELETE FROM watch_subscriptions WHERE id = $1")
                .bind(id)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(n > 0)
    }

    /// Claims up to `limit` watches due for renewal (or re-creation, or resync) for
    /// `lease`; another replica cannot claim them until the lease ends or is released.
    pub async fn claim_due_watches(
        &self,
        owner: &str,
        lease: std::time::Duration,
        limit: i64,
    ) -> Result<Vec<Watch>, StoreError> {
        let now = OffsetDateTime::now_utc();
        let sql = claim_watches_sql(&self.db);
        let mut rows = with_pool!(&self.db, pool => {
            sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
                .bind(owner)
                .bind(Ts::new(now + lease))
                .bind(Ts::new(now))
                .bind(limit)
                .fetch_all(pool)
                .await?
                .iter()
                .map(read_watch)
                .collect::<Result<Vec<_>, _>>()?
        });
        rows.sort_by_key(|w| w.renew_after);
        Ok(rows)
    }

    /// Releases a claimed watch, due again at `renew_after`, recording the outcome.
    pub async fn release_watch(
        &self,
        id: &str,
        owner: &str,
        renew_after: OffsetDateTime,
        last_error: Option<&str>,
        failed: bool,
    ) -> Result<(), StoreError> {
        with_pool!(&self.db, pool => {
            sqlx::query(
                "UPDATE watch_subscriptions SET lease_owner = NULL, lease_until = NULL, \
                 renew_after = $3, last_error = $4, state = $5, updated_at = $6 \
                 WHERE id = $1 AND lease_owner = $2",
            )
            .bind(id)
            .bind(owner)
            .bind(Ts::new(renew_after))
            .bind(last_error)
            .bind(if failed { "failed" } else { "active" })
            .bind(Ts::now())
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// The Graph subscription behind a watch is gone (removed, expired): forget its id, so
    /// its notifications are no longer accepted, and have the renewal job re-create it and
    /// resync at once.
    pub async fn mark_watch_lost(&self, id: &str) -> Result<(), StoreError> {
        with_pool!(&self.db, pool => {
            sqlx::query(
                "UPDATE watch_subscriptions SET graph_id = NULL, \
                 resync = COALESCE(resync, 'delta'), renew_after = $2, updated_at = $2 \
                 WHERE id = $1",
            )
            .bind(id)
            .bind(Ts::now())
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// Makes every watch due now with its expiry unknown: at start, the renewal job then
    /// renews each Graph subscription, which answers 404 for one Graph dropped while the
    /// gateway was away (it is then re-created and resynced).
    pub async fn make_all_watches_due(&self) -> Result<u64, StoreError> {
        let n = with_pool!(&self.db, pool => {
            sqlx::query("UPDATE watch_subscriptions SET renew_after = $1, expires_at = NULL WHERE graph_id IS NOT NULL")
                .bind(Ts::now())
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(n)
    }

    /// Asks for a resync (lifecycle `missed`) and, with `renew`, a renewal
    /// (`reauthorizationRequired`), at the renewal job's next pass.
    pub async fn request_watch_work(
        &self,
        id: &str,
        resync: bool,
        renew: bool,
    ) -> Result<(), StoreError> {
        let now = Ts::now();
        with_pool!(&self.db, pool => {
            if resync {
                sqlx::query("UPDATE watch_subscriptions SET resync = COALESCE(resync, 'delta'), renew_after = $2 WHERE id = $1")
                    .bind(id)
                    .bind(now)
                    .execute(pool)
                    .await?;
            }
            if renew {
                sqlx::query("UPDATE watch_subscriptions SET renew_after = $2 WHERE id = $1")
                    .bind(id)
                    .bind(now)
                    .execute(pool)
                    .await?;
            }
        });
        Ok(())
    }

    /// Commits the end of a resync: its events (and their deliveries), the delta link to
    /// continue from, and `resync` cleared, together; or nothing.
    pub async fn finish_resync(
        &self,
        id: &str,
        delta_link: Option<&str>,
        events: &[NewChangeEvent],
    ) -> Result<Vec<ChangeEvent>, StoreError> {
        let now = Ts::now();
        let inserted = with_pool!(&self.db, pool => {
            let mut tx = pool.begin().await?;
            let inserted = insert_events!(tx, events, now);
            sqlx::query("UPDATE watch_subscriptions SET delta_link = $2, resync = NULL, synced_at = $3, updated_at = $3 WHERE id = $1")
                .bind(id)
                .bind(delta_link)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            inserted
        });
        Ok(inserted)
    }

    // ---- the outbox ----

    /// Commits accepted notification items in one transaction; items already there (Graph's
    /// retries, replays within the dedupe window) are skipped. Returns how many were new.
    pub async fn enqueue_notifications(
        &self,
        items: &[NewNotification],
    ) -> Result<u64, StoreError> {
        if items.is_empty() {
            return Ok(0);
        }
        let now = Ts::now();
        let added = with_pool!(&self.db, pool => {
            let mut tx = pool.begin().await?;
            let mut added = 0;
            for n in items {
                added += sqlx::query(INSERT_NOTIFICATION)
                    .bind(&n.dedupe_key)
                    .bind(&n.subscription_id)
                    .bind(&n.graph_id)
                    .bind(&n.change_type)
                    .bind(&n.lifecycle_event)
                    .bind(&n.resource)
                    .bind(&n.resource_id)
                    .bind(&n.etag)
                    .bind(to_json(&n.resource_data))
                    .bind(now)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
            }
            tx.commit().await?;
            added
        });
        Ok(added)
    }

    /// Claims up to `limit` pending notifications, oldest first, for `lease`.
    pub async fn claim_notifications(
        &self,
        owner: &str,
        lease: std::time::Duration,
        limit: i64,
    ) -> Result<Vec<OutboxItem>, StoreError> {
        let now = OffsetDateTime::now_utc();
        let sql = claim_outbox_sql(&self.db);
        let mut rows = with_pool!(&self.db, pool => {
            sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
                .bind(owner)
                .bind(Ts::new(now + lease))
                .bind(Ts::new(now))
                .bind(limit)
                .fetch_all(pool)
                .await?
                .iter()
                .map(read_outbox)
                .collect::<Result<Vec<_>, _>>()?
        });
        rows.sort_by_key(|r| r.seq);
        Ok(rows)
    }

    /// Records what processing notification `seq` produced and marks it done, in one
    /// transaction, only while `owner` still holds it. Returns the events that were new
    /// (an event found before, by another notification or a resync, is not repeated);
    /// `None` when the lease was lost (another replica took over: nothing was written).
    pub async fn complete_notification(
        &self,
        seq: i64,
        owner: &str,
        events: &[NewChangeEvent],
    ) -> Result<Option<Vec<ChangeEvent>>, StoreError> {
        let now = Ts::now();
        let inserted = with_pool!(&self.db, pool => {
            let mut tx = pool.begin().await?;
            // Marking first takes the row's write lock, so a replica that claimed it after
            // our lease ran out cannot finish it at the same time.
            let held = sqlx::query(FINISH_NOTIFICATION)
                .bind(seq)
                .bind(owner)
                .bind(now)
                .execute(&mut *tx)
                .await?
                .rows_affected()
                == 1;
            if !held {
                tx.rollback().await?;
                None
            } else {
                let inserted = insert_events!(tx, events, now);
                tx.commit().await?;
                Some(inserted)
            }
        });
        Ok(inserted)
    }

    /// Processing failed: retry at `retry_at`, or set it aside as `failed` when `give_up`.
    pub async fn fail_notification(
        &self,
        seq: i64,
        owner: &str,
        error: &str,
        retry_at: OffsetDateTime,
        give_up: bool,
    ) -> Result<(), StoreError> {
        with_pool!(&self.db, pool => {
            sqlx::query(
                "UPDATE notification_outbox SET state = $3, available_at = $4, last_error = $5, \
                 lease_owner = NULL WHERE seq = $1 AND lease_owner = $2 AND state = 'pending'",
            )
            .bind(seq)
            .bind(owner)
            .bind(if give_up { "failed" } else { "pending" })
            .bind(Ts::new(retry_at))
            .bind(error)
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// Outbox counts by state (`pending`, `done`, `failed`), for metrics and tests.
    pub async fn outbox_counts(&self) -> Result<Vec<(String, i64)>, StoreError> {
        let rows = with_pool!(&self.db, pool => {
            sqlx::query("SELECT state, COUNT(*) AS n FROM notification_outbox GROUP BY state ORDER BY state")
                .fetch_all(pool)
                .await?
                .iter()
                .map(|r| Ok((r.text("state")?, r.int("n")?)))
                .collect::<Result<Vec<_>, StoreError>>()?
        });
        Ok(rows)
    }

    /// Events of a watch after `after` (a `seq`), oldest first.
    pub async fn events_after(
        &self,
        subscription_id: &str,
        after: i64,
        limit: i64,
    ) -> Result<Vec<ChangeEvent>, StoreError> {
        let rows = with_pool!(&self.db, pool => {
            sqlx::query(
                "SELECT seq, id, subscription_id, change_type, resource, resource_id, data, occurred_at \
                 FROM change_events WHERE subscription_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
            )
            .bind(subscription_id)
            .bind(after)
            .bind(limit)
            .fetch_all(pool)
            .await?
            .iter()
            .map(read_event)
            .collect::<Result<Vec<_>, _>>()?
        });
        Ok(rows)
    }

    /// One event by id.
    pub async fn event(&self, id: &str) -> Result<Option<ChangeEvent>, StoreError> {
        Ok(with_pool!(&self.db, pool => {
            match sqlx::query(
                "SELECT seq, id, subscription_id, change_type, resource, resource_id, data, occurred_at \
                 FROM change_events WHERE id = $1",
            )
            .bind(id)
            .fetch_optional(pool)
            .await?
            {
                Some(r) => Some(read_event(&r)?),
                None => None,
            }
        }))
    }

    /// Forgets processed notifications older than `dedupe_before` and events older than
    /// `events_before` (with their deliveries). Pending and failed rows stay.
    pub async fn purge_notifications(
        &self,
        dedupe_before: OffsetDateTime,
        events_before: OffsetDateTime,
    ) -> Result<(), StoreError> {
        with_pool!(&self.db, pool => {
            sqlx::query("DELETE FROM notification_outbox WHERE state = 'done' AND received_at < $1")
                .bind(Ts::new(dedupe_before))
                .execute(pool)
                .await?;
            sqlx::query("DELETE FROM change_events WHERE occurred_at < $1")
                .bind(Ts::new(events_before))
                .execute(pool)
                .await?;
        });
        Ok(())
    }
}

fn recorded(seq: i64, e: &NewChangeEvent) -> ChangeEvent {
    ChangeEvent {
        seq,
        id: e.id.clone(),
        subscription_id: e.subscription_id.clone(),
        change_type: e.change_type.clone(),
        resource: e.resource.clone(),
        resource_id: e.resource_id.clone(),
        data: e.data.clone(),
        occurred_at: Ts::new(e.occurred_at).0,
    }
}
