//! Consumer webhooks and their deliveries: internal URLs that receive a watch's change
//! events, signed with a per-webhook secret, and one `webhook_deliveries` row per
//! (webhook, event) that carries retries, dead letters and replays.
//!
//! - `consumer_webhooks`: the signing secret (32 random bytes) is sealed, bound to the
//!   webhook id ([`Aad::webhook`]); it is shown once, when the webhook is created.
//! - `webhook_deliveries`: rows are created with their event (`Store::complete_notification`,
//!   `Store::finish_resync`). The delivery worker claims due rows with a lease written in the
//!   row, as the outbox does (see `notifications.rs`): the claim sets `lease_owner`, pushes
//!   `next_attempt_at` past the lease and counts the attempt, in one statement; a worker that
//!   dies lets its lease run out and another takes the row. Marking the outcome only succeeds
//!   while the marker still holds the lease.
//!
//! States: `pending` (due at `next_attempt_at`) → `delivered`, or `dead` after the last
//! attempt. Replaying sets a `delivered` or `dead` row back to `pending`, due now, with its
//! attempts reset; the event id stays the same, so receivers recognise a replay.

use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::Value;
use time::OffsetDateTime;

use super::accounts::Reencrypted;
use super::cipher::Aad;
use super::notifications::ChangeEvent;
use super::timestamp::Ts;
use super::{Db, RowExt, Store, StoreError};

/// Bytes of a webhook signing secret (HMAC-SHA256 takes keys of any length; 32 is its
/// output size, the strength recommended for it).
pub const WEBHOOK_SECRET_LEN: usize = 32;

/// Prefix of a signing secret as shown to consumers (the Standard Webhooks convention).
pub const WEBHOOK_SECRET_PREFIX: &str = "whsec_";

/// A consumer webhook as stored, without its secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsumerWebhook {
    pub id: String,
    /// The watch whose events it receives.
    pub subscription_id: String,
    /// The caller that registered it (the watch's owner).
    pub caller: String,
    pub url: String,
    pub created_at: OffsetDateTime,
}

/// A webhook's signing secret. Keep it in memory only; `Debug` hides it.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookSecret(Vec<u8>);

impl WebhookSecret {
    /// The HMAC key.
    pub fn bytes(&self) -> &[u8] {
        &self.0
    }

    /// As shown to the consumer once: `whsec_` + base64 of the key bytes.
    pub fn to_whsec(&self) -> String {
        format!("{WEBHOOK_SECRET_PREFIX}{}", STANDARD.encode(&self.0))
    }
}

impl fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WebhookSecret(***)")
    }
}

/// Where a delivery is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeliveryState {
    /// Due at `next_attempt_at` (or being attempted, under a lease).
    Pending,
    /// A 2xx answer was received.
    Delivered,
    /// Every attempt failed (or the webhook cannot be signed for): set aside until replayed.
    Dead,
}

impl DeliveryState {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Pending => "pending",
            DeliveryState::Delivered => "delivered",
            DeliveryState::Dead => "dead",
        }
    }
}

impl FromStr for DeliveryState {
    type Err = StoreError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "pending" => Ok(DeliveryState::Pending),
            "delivered" => Ok(DeliveryState::Delivered),
            "dead" => Ok(DeliveryState::Dead),
            other => Err(StoreError::Corrupt(format!(
                "webhook_deliveries.state: unknown state '{other}'"
            ))),
        }
    }
}

/// One delivery as listed for its webhook's owner.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeliveryInfo {
    pub seq: i64,
    pub event_id: String,
    pub state: DeliveryState,
    /// Attempts made since it was created or last replayed.
    pub attempts: i64,
    /// HTTP status of the last answer, when there was one.
    pub last_status: Option<i64>,
    /// Why the last attempt failed (no response bodies, no secrets).
    pub last_error: Option<String>,
    pub next_attempt_at: OffsetDateTime,
    pub created_at: OffsetDateTime,
    pub delivered_at: Option<OffsetDateTime>,
}

/// A claimed delivery with what sending it needs.
#[derive(Clone, Debug)]
pub struct ClaimedDelivery {
    pub seq: i64,
    /// Attempts including this one.
    pub attempts: i64,
    pub webhook_id: String,
    pub url: String,
    pub secret: WebhookSecret,
    pub event: ChangeEvent,
}

/// What [`Store::replay_delivery`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplayOutcome {
    /// Pending again, due now.
    Replayed,
    /// No such delivery for that webhook.
    NotFound,
    /// It is still pending: there is nothing to replay.
    StillPending,
}

/// Names a webhook in error messages (its id is not a secret).
struct Webhook<'a>(&'a str);
impl fmt::Display for Webhook<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "consumer webhook '{}'", self.0)
    }
}

// ---- SQL: one text per statement, `$n` placeholders for both backends ----

const INSERT_WEBHOOK: &str = "INSERT INTO consumer_webhooks \
    (id, subscription_id, caller, url, key_id, secret_enc, created_at) \
    VALUES ($1, $2, $3, $4, $5, $6, $7)";

const SELECT_WEBHOOK: &str = "SELECT id, subscription_id, caller, url, created_at \
    FROM consumer_webhooks WHERE id = $1";

const LIST_WEBHOOKS: &str = "SELECT id, subscription_id, caller, url, created_at \
    FROM consumer_webhooks WHERE subscription_id = $1 ORDER BY created_at, id";

const DELETE_WEBHOOK: &str = "DELETE FROM consumer_webhooks WHERE id = $1";

// The claimed row with its webhook and event. Columns are aliased: both tables have `seq`.
const SELECT_CLAIMED: &str = "SELECT d.seq AS d_seq, d.attempts AS d_attempts, \
    w.id AS w_id, w.url AS w_url, w.key_id AS w_key_id, w.secret_enc AS w_secret_enc, \
    e.seq AS e_seq, e.id AS e_id, e.subscription_id AS e_subscription_id, \
    e.change_type AS e_change_type, e.resource AS e_resource, e.resource_id AS e_resource_id, \
    e.data AS e_data, e.occurred_at AS e_occurred_at \
    FROM webhook_deliveries d \
    JOIN consumer_webhooks w ON w.id = d.webhook_id \
    JOIN change_events e ON e.id = d.event_id \
    WHERE d.seq = $1 AND d.lease_owner = $2 AND d.state = 'pending'";

const MARK_DELIVERED: &str = "UPDATE webhook_deliveries SET state = 'delivered', \
    last_status = $3, last_error = NULL, delivered_at = $4, lease_owner = NULL \
    WHERE seq = $1 AND lease_owner = $2 AND state = 'pending'";

const MARK_FAILED: &str = "UPDATE webhook_deliveries SET state = $3, next_attempt_at = $4, \
    last_status = $5, last_error = $6, lease_owner = NULL \
    WHERE seq = $1 AND lease_owner = $2 AND state = 'pending'";

const LIST_DELIVERIES: &str = "SELECT seq, event_id, state, attempts, last_status, last_error, \
    next_attempt_at, created_at, delivered_at FROM webhook_deliveries \
    WHERE webhook_id = $1 AND ($2 IS NULL OR state = $2) ORDER BY seq DESC LIMIT $3";

const REPLAY_ONE: &str = "UPDATE webhook_deliveries SET state = 'pending', attempts = 0, \
    next_attempt_at = $3, lease_owner = NULL, delivered_at = NULL \
    WHERE seq = $1 AND webhook_id = $2 AND state IN ('delivered', 'dead')";

const REPLAY_DEAD: &str = "UPDATE webhook_deliveries SET state = 'pending', attempts = 0, \
    next_attempt_at = $2, lease_owner = NULL \
    WHERE webhook_id = $1 AND state = 'dead'";

const NEXT_DUE: &str =
    "SELECT MIN(next_attempt_at) AS due FROM webhook_deliveries WHERE state = 'pending'";

// Re-encryption, as in accounts.rs: pages in id order, each swap only if unchanged.
const REENCRYPT_PAGE: i64 = 200;
const STALE_WEBHOOKS_FIRST: &str = "SELECT id, key_id, secret_enc FROM consumer_webhooks \
    WHERE key_id <> $1 ORDER BY id LIMIT $2";
const STALE_WEBHOOKS_AFTER: &str = "SELECT id, key_id, secret_enc FROM consumer_webhooks \
    WHERE key_id <> $1 AND id > $3 ORDER BY id LIMIT $2";
const SWAP_WEBHOOK: &str = "UPDATE consumer_webhooks SET key_id = $2, secret_enc = $3 \
    WHERE id = $1 AND key_id = $4 AND secret_enc = $5";

/// Claims due deliveries, oldest first. PostgreSQL: `SKIP LOCKED`, so two replicas claiming
/// at once take different rows instead of waiting for each other; SQLite has one writer.
fn claim_deliveries_sql(db: &Db) -> String {
    let lock = match db {
        Db::Postgres(_) => " FOR UPDATE SKIP LOCKED",
        Db::Sqlite(_) => "",
    };
    format!(
        "UPDATE webhook_deliveries SET lease_owner = $1, next_attempt_at = $2, \
         attempts = attempts + 1 WHERE seq IN (SELECT seq FROM webhook_deliveries \
         WHERE state = 'pending' AND next_attempt_at <= $3 ORDER BY seq LIMIT $4{lock}) \
         RETURNING seq"
    )
}

fn read_webhook(r: &impl RowExt) -> Result<ConsumerWebhook, StoreError> {
    Ok(ConsumerWebhook {
        id: r.text("id")?,
        subscription_id: r.text("subscription_id")?,
        caller: r.text("caller")?,
        url: r.text("url")?,
        created_at: r.ts("created_at")?,
    })
}

fn read_delivery(r: &impl RowExt) -> Result<DeliveryInfo, StoreError> {
    Ok(DeliveryInfo {
        seq: r.int("seq")?,
        event_id: r.text("event_id")?,
        state: r.text("state")?.parse()?,
        attempts: r.int("attempts")?,
        last_status: r.opt_int("last_status")?,
        last_error: r.opt_text("last_error")?,
        next_attempt_at: r.ts("next_attempt_at")?,
        created_at: r.ts("created_at")?,
        delivered_at: r.opt_ts("delivered_at")?,
    })
}

/// A claimed row before its secret is opened.
struct ClaimedRow {
    seq: i64,
    attempts: i64,
    webhook_id: String,
    url: String,
    key_id: String,
    secret_enc: Vec<u8>,
    event: ChangeEvent,
}

fn read_claimed(r: &impl RowExt) -> Result<ClaimedRow, StoreError> {
    let data = r
        .opt_text("e_data")?
        .map(|t| serde_json::from_str::<Value>(&t))
        .transpose()
        .map_err(|e| StoreError::Corrupt(format!("change_events.data: {e}")))?;
    Ok(ClaimedRow {
        seq: r.int("d_seq")?,
        attempts: r.int("d_attempts")?,
        webhook_id: r.text("w_id")?,
        url: r.text("w_url")?,
        key_id: r.text("w_key_id")?,
        secret_enc: r.bytes("w_secret_enc")?,
        event: ChangeEvent {
            seq: r.int("e_seq")?,
            id: r.text("e_id")?,
            subscription_id: r.text("e_subscription_id")?,
            change_type: r.text("e_change_type")?,
            resource: r.text("e_resource")?,
            resource_id: r.opt_text("e_resource_id")?,
            data,
            occurred_at: r.ts("e_occurred_at")?,
        },
    })
}

/// 32 bytes from the system CSPRNG.
fn random_secret() -> Result<WebhookSecret, StoreError> {
    let mut bytes = vec![0u8; WEBHOOK_SECRET_LEN];
    aws_lc_rs::rand::fill(&mut bytes)
        .map_err(|_| StoreError::Config("the system random generator failed".into()))?;
    Ok(WebhookSecret(bytes))
}

impl Store {
    // ---- consumer webhooks ----

    /// Registers `url` to receive the events of watch `subscription_id`, with a fresh random
    /// signing secret, returned here and never again (it is stored sealed). The watch must
    /// exist; the caller checks ownership and the URL policy first.
    pub async fn create_consumer_webhook(
        &self,
        subscription_id: &str,
        caller: &str,
        url: &str,
    ) -> Result<(ConsumerWebhook, WebhookSecret), StoreError> {
        let id = uuid::Uuid::new_v4().to_string();
        let secret = random_secret()?;
        let (key_id, blob) = self.keys.seal(&Aad::webhook(&id), secret.bytes())?;
        let now = Ts::now();
        with_pool!(&self.db, pool => {
            sqlx::query(INSERT_WEBHOOK)
                .bind(&id)
                .bind(subscription_id)
                .bind(caller)
                .bind(url)
                .bind(&key_id)
                .bind(&blob)
                .bind(now)
                .execute(pool)
                .await?;
        });
        let webhook = ConsumerWebhook {
            id,
            subscription_id: subscription_id.to_owned(),
            caller: caller.to_owned(),
            url: url.to_owned(),
            created_at: now.0,
        };
        Ok((webhook, secret))
    }

    /// One webhook, without its secret.
    pub async fn consumer_webhook(&self, id: &str) -> Result<Option<ConsumerWebhook>, StoreError> {
        Ok(with_pool!(&self.db, pool => {
            match sqlx::query(SELECT_WEBHOOK).bind(id).fetch_optional(pool).await? {
                Some(r) => Some(read_webhook(&r)?),
                None => None,
            }
        }))
    }

    /// A watch's webhooks, oldest first, without secrets.
    pub async fn list_consumer_webhooks(
        &self,
        subscription_id: &str,
    ) -> Result<Vec<ConsumerWebhook>, StoreError> {
        Ok(with_pool!(&self.db, pool => {
            sqlx::query(LIST_WEBHOOKS)
                .bind(subscription_id)
                .fetch_all(pool)
                .await?
                .iter()
                .map(read_webhook)
                .collect::<Result<Vec<_>, _>>()?
        }))
    }

    /// Deletes a webhook with its deliveries. True when it existed.
    pub async fn delete_consumer_webhook(&self, id: &str) -> Result<bool, StoreError> {
        let n = with_pool!(&self.db, pool => {
            sqlx::query(DELETE_WEBHOOK).bind(id).execute(pool).await?.rows_affected()
        });
        Ok(n > 0)
    }

    // ---- deliveries: the worker's side ----

    /// Claims up to `limit` due deliveries, oldest first, for `lease`, counting the attempt,
    /// and returns them with their webhook's URL, opened secret and event. Another owner
    /// cannot claim them until the lease ends; marking the outcome releases them.
    ///
    /// A delivery whose secret cannot be opened (its key was removed from
    /// `store.encryption.keys`, or the row was tampered with) cannot be signed: it is set
    /// `dead` at once with the reason, logged, and can be replayed once the key is back.
    pub async fn claim_deliveries(
        &self,
        owner: &str,
        lease: std::time::Duration,
        limit: i64,
    ) -> Result<Vec<ClaimedDelivery>, StoreError> {
        let now = OffsetDateTime::now_utc();
        let sql = claim_deliveries_sql(&self.db);
        let mut seqs: Vec<i64> = with_pool!(&self.db, pool => {
            sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(sql.clone()))
                .bind(owner)
                .bind(Ts::new(now + lease))
                .bind(Ts::new(now))
                .bind(limit)
                .fetch_all(pool)
                .await?
        });
        seqs.sort_unstable();
        let mut claimed = Vec::with_capacity(seqs.len());
        for seq in seqs {
            let row = with_pool!(&self.db, pool => {
                sqlx::query(SELECT_CLAIMED)
                    .bind(seq)
                    .bind(owner)
                    .fetch_optional(pool)
                    .await?
                    .map(|r| read_claimed(&r))
            });
            // Gone since the claim (its webhook or event was deleted): nothing to send.
            let Some(row) = row else { continue };
            let opened = row.and_then(|row| {
                let secret = self.keys.open(
                    &row.key_id,
                    &row.secret_enc,
                    &Aad::webhook(&row.webhook_id),
                    &Webhook(&row.webhook_id),
                )?;
                Ok(ClaimedDelivery {
                    seq: row.seq,
                    attempts: row.attempts,
                    webhook_id: row.webhook_id,
                    url: row.url,
                    secret: WebhookSecret(secret),
                    event: row.event,
                })
            });
            match opened {
                Ok(delivery) => claimed.push(delivery),
                Err(StoreError::Corrupt(reason)) => {
                    tracing::error!(seq, %reason, "webhook delivery cannot be signed; dead-lettered");
                    self.fail_delivery(seq, owner, None, &reason, None).await?;
                }
                Err(other) => return Err(other),
            }
        }
        Ok(claimed)
    }

    /// The attempt succeeded with HTTP `status`. False when `owner` no longer held the lease
    /// (another worker took the delivery over; nothing was written).
    pub async fn mark_delivered(
        &self,
        seq: i64,
        owner: &str,
        status: u16,
    ) -> Result<bool, StoreError> {
        let n = with_pool!(&self.db, pool => {
            sqlx::query(MARK_DELIVERED)
                .bind(seq)
                .bind(owner)
                .bind(i64::from(status))
                .bind(Ts::now())
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(n == 1)
    }

    /// The attempt failed (`status` when the receiver answered, `error` says why): due again
    /// at `retry_at`, or `dead` when that is `None`. False when `owner` no longer held the
    /// lease.
    pub async fn fail_delivery(
        &self,
        seq: i64,
        owner: &str,
        status: Option<u16>,
        error: &str,
        retry_at: Option<OffsetDateTime>,
    ) -> Result<bool, StoreError> {
        let (state, due) = match retry_at {
            Some(at) => (DeliveryState::Pending, Ts::new(at)),
            None => (DeliveryState::Dead, Ts::now()),
        };
        let n = with_pool!(&self.db, pool => {
            sqlx::query(MARK_FAILED)
                .bind(seq)
                .bind(owner)
                .bind(state.as_str())
                .bind(due)
                .bind(status.map(i64::from))
                .bind(error)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(n == 1)
    }

    /// When the earliest pending delivery is due (a leased one: when its lease ends), so the
    /// worker can sleep exactly until then. None when nothing is pending.
    pub async fn next_delivery_due(&self) -> Result<Option<OffsetDateTime>, StoreError> {
        Ok(with_pool!(&self.db, pool => {
            match sqlx::query(NEXT_DUE).fetch_optional(pool).await? {
                Some(r) => r.opt_ts("due")?,
                None => None,
            }
        }))
    }

    // ---- deliveries: the owner's side ----

    /// A webhook's deliveries, newest first, optionally in one state.
    pub async fn list_deliveries(
        &self,
        webhook_id: &str,
        state: Option<DeliveryState>,
        limit: i64,
    ) -> Result<Vec<DeliveryInfo>, StoreError> {
        Ok(with_pool!(&self.db, pool => {
            sqlx::query(LIST_DELIVERIES)
                .bind(webhook_id)
                .bind(state.map(DeliveryState::as_str))
                .bind(limit)
                .fetch_all(pool)
                .await?
                .iter()
                .map(read_delivery)
                .collect::<Result<Vec<_>, _>>()?
        }))
    }

    /// Sends delivery `seq` of webhook `webhook_id` again: a delivered or dead delivery
    /// becomes pending, due now, with its attempts reset.
    pub async fn replay_delivery(
        &self,
        webhook_id: &str,
        seq: i64,
    ) -> Result<ReplayOutcome, StoreError> {
        let now = Ts::now();
        let (replayed, state) = with_pool!(&self.db, pool => {
            let n = sqlx::query(REPLAY_ONE)
                .bind(seq)
                .bind(webhook_id)
                .bind(now)
                .execute(pool)
                .await?
                .rows_affected();
            if n == 1 {
                (true, None)
            } else {
                let state: Option<String> = sqlx::query_scalar(
                    "SELECT state FROM webhook_deliveries WHERE seq = $1 AND webhook_id = $2",
                )
                .bind(seq)
                .bind(webhook_id)
                .fetch_optional(pool)
                .await?;
                (false, state)
            }
        });
        Ok(match (replayed, state) {
            (true, _) => ReplayOutcome::Replayed,
            (false, None) => ReplayOutcome::NotFound,
            // It exists but the update did not match: it is pending (a dead or delivered
            // state read here changed in between, and asking again replays it).
            (false, Some(_)) => ReplayOutcome::StillPending,
        })
    }

    /// Sends every dead delivery of a webhook again; returns how many.
    pub async fn replay_dead_deliveries(&self, webhook_id: &str) -> Result<u64, StoreError> {
        let now = Ts::now();
        Ok(with_pool!(&self.db, pool => {
            sqlx::query(REPLAY_DEAD)
                .bind(webhook_id)
                .bind(now)
                .execute(pool)
                .await?
                .rows_affected()
        }))
    }

    // ---- key rotation (called by `Store::reencrypt_all`) ----

    pub(crate) async fn reencrypt_consumer_webhooks(
        &self,
        report: &mut Reencrypted,
    ) -> Result<(), StoreError> {
        let active = self.keys.active_key_id().to_owned();
        let mut after: Option<String> = None;
        loop {
            let page: Vec<(String, String, Vec<u8>)> = with_pool!(&self.db, pool => {
                let query = match &after {
                    None => sqlx::query(STALE_WEBHOOKS_FIRST).bind(&active).bind(REENCRYPT_PAGE),
                    Some(id) => sqlx::query(STALE_WEBHOOKS_AFTER).bind(&active).bind(REENCRYPT_PAGE).bind(id),
                };
                query
                    .fetch_all(pool)
                    .await?
                    .iter()
                    .map(|r| Ok((r.text("id")?, r.text("key_id")?, r.bytes("secret_enc")?)))
                    .collect::<Result<Vec<_>, StoreError>>()?
            });
            for (id, old_key, old_blob) in &page {
                let aad = Aad::webhook(id);
                let plain = match self.keys.open(old_key, old_blob, &aad, &Webhook(id)) {
                    Ok(plain) => plain,
                    Err(e) => {
                        report.unreadable.push(e.to_string());
                        continue;
                    }
                };
                let (key_id, blob) = self.keys.seal(&aad, &plain)?;
                report.rewritten += with_pool!(&self.db, pool => {
                    sqlx::query(SWAP_WEBHOOK)
                        .bind(id)
                        .bind(&key_id)
                        .bind(&blob)
                        .bind(old_key)
                        .bind(old_blob)
                        .execute(pool)
                        .await?
                        .rows_affected()
                });
            }
            match page.last() {
                Some((id, _, _)) if page.len() as i64 == REENCRYPT_PAGE => after = Some(id.clone()),
                _ => return Ok(()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_is_shown_as_whsec_and_base64_and_hidden_from_debug() {
        let secret = WebhookSecret((0u8..32).collect());
        let shown = secret.to_whsec();
        let encoded = shown.strip_prefix("whsec_").expect("prefixed");
        assert_eq!(STANDARD.decode(encoded).unwrap(), secret.bytes());
        assert_eq!(format!("{secret:?}"), "WebhookSecret(***)");
    }

    #[test]
    fn delivery_states_round_trip_through_their_column_text() {
        for state in [
            DeliveryState::Pending,
            DeliveryState::Delivered,
            DeliveryState::Dead,
        ] {
            assert_eq!(state.as_str().parse::<DeliveryState>().unwrap(), state);
        }
        assert!(matches!(
            "lost".parse::<DeliveryState>(),
            Err(StoreError::Corrupt(_))
        ));
    }

    #[test]
    fn random_secrets_are_32_bytes_and_differ() {
        let (a, b) = (random_secret().unwrap(), random_secret().unwrap());
        assert_eq!(a.bytes().len(), WEBHOOK_SECRET_LEN);
        assert_ne!(a, b);
    }
}
