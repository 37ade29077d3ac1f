//! Outbound webhooks: the worker that delivers change events to consumer webhooks, and the
//! signature scheme consumers verify them with.
//!
//! Signing follows Standard Webhooks (<https://www.standardwebhooks.com>), so receivers can
//! use any of its libraries:
//!
//! - `webhook-id`: the event id. The same across retries and replays, so a receiver
//!   de-duplicates on it (delivery is at least once: a worker that dies after the receiver
//!   answered, before the outcome was stored, sends again when its lease runs out).
//! - `webhook-timestamp`: unix seconds of this attempt; receivers refuse old ones (replay).
//! - `webhook-signature`: `v1,` + base64 of HMAC-SHA256(secret, `{id}.{timestamp}.{body}`);
//!   receivers accept any of several space-separated signatures (key rotation).
//!
//! The worker claims due deliveries from the store under a lease (so replicas share the work
//! and a dead replica's rows are taken over), POSTs them concurrently, and records each
//! outcome: any 2xx within `notifications.webhooks.timeout` is delivered; anything else
//! (another status, a redirect — never followed —, a timeout, a connection error) is retried
//! after `retry_base × 2^(attempt-1)` with full jitter, at most 1 hour, and after
//! `max_attempts` the delivery is dead (kept for inspection and replay).
//!
//! Never logged: secrets, bodies, signatures.

use std::sync::Arc;
use std::time::Duration;

use aws_lc_rs::hmac;
use axum::http::HeaderMap;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use futures::StreamExt as _;
use serde::Serialize;
use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::OutboundWebhooksConfig;
use crate::service::webhooks::check_url;
use crate::store::{ChangeEvent, ClaimedDelivery, Store, WEBHOOK_SECRET_PREFIX};

/// Header carrying the event id.
pub const ID_HEADER: &str = "webhook-id";
/// Header carrying the attempt's unix time in seconds.
pub const TIMESTAMP_HEADER: &str = "webhook-timestamp";
/// Header carrying the signatures.
pub const SIGNATURE_HEADER: &str = "webhook-signature";

/// Longest wait before a retry, whatever the attempt.
pub const MAX_RETRY_DELAY: Duration = Duration::from_secs(3600);
/// How often the worker looks for due deliveries it was not woken for (other replicas'
/// events, leases that ran out).
pub const POLL_INTERVAL: Duration = Duration::from_secs(1);
/// Deliveries claimed at once; all are sent concurrently, so one batch takes at most one
/// `timeout`.
const BATCH: i64 = 16;
/// What a lease adds to the attempt's `timeout`: time to record the outcome.
const LEASE_MARGIN: Duration = Duration::from_secs(30);
/// Shortest sleep between passes: a claim that found nothing although something was due
/// (another replica holds it) must not turn into a busy loop.
const MIN_WAIT: Duration = Duration::from_millis(10);

// ---------------------------------------------------------------------------------------
// Signatures
// ---------------------------------------------------------------------------------------

/// Why a delivery's signature does not verify. Messages name headers, never values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("the {0} header is missing or not text")]
    MissingHeader(&'static str),
    #[error("webhook-timestamp is not a unix time in seconds")]
    BadTimestamp,
    /// Too old or too far in the future: a replayed request, or a clock far off.
    #[error("webhook-timestamp is outside the accepted window")]
    OutsideTolerance,
    #[error("webhook-signature holds no v1 signature")]
    NoSignature,
    #[error("no signature matches")]
    Mismatch,
}

fn hmac_key(secret: &[u8]) -> hmac::Key {
    // HMAC pads keys with zeros to the block size, so the empty key and a single zero byte
    // are the same key; aws-lc refuses a zero-length key pointer, which must not panic.
    let secret = if secret.is_empty() {
        &[0u8][..]
    } else {
        secret
    };
    hmac::Key::new(hmac::HMAC_SHA256, secret)
}

fn signed_content(id: &str, timestamp: i64, body: &[u8]) -> Vec<u8> {
    let timestamp = timestamp.to_string();
    let mut content = Vec::with_capacity(id.len() + timestamp.len() + body.len() + 2);
    content.extend_from_slice(id.as_bytes());
    content.push(b'.');
    content.extend_from_slice(timestamp.as_bytes());
    content.push(b'.');
    content.extend_from_slice(body);
    content
}

/// The `webhook-signature` value for a delivery: `v1,` + base64 of
/// HMAC-SHA256(secret, `{id}.{timestamp}.{body}`).
pub fn sign(secret: &[u8], id: &str, timestamp: i64, body: &[u8]) -> String {
    let tag = hmac::sign(&hmac_key(secret), &signed_content(id, timestamp, body));
    format!("v1,{}", STANDARD.encode(tag.as_ref()))
}

/// Checks a delivery: `headers` are the values of `webhook-id`, `webhook-timestamp` and
/// `webhook-signature`, `body` the raw body as received. The timestamp must lie within
/// `tolerance` of `now` either way (Standard Webhooks suggests 5 minutes), and one of the
/// space-separated `v1,` signatures must match; the comparison takes constant time.
pub fn verify(
    secret: &[u8],
    headers: (&str, &str, &str),
    body: &[u8],
    now: OffsetDateTime,
    tolerance: Duration,
) -> Result<(), VerifyError> {
    let (id, timestamp, signatures) = headers;
    let timestamp: i64 = timestamp
        .trim()
        .parse()
        .map_err(|_| VerifyError::BadTimestamp)?;
    let skew = (i128::from(now.unix_timestamp()) - i128::from(timestamp)).unsigned_abs();
    if skew > u128::from(tolerance.as_secs()) {
        return Err(VerifyError::OutsideTolerance);
    }
    let key = hmac_key(secret);
    let content = signed_content(id, timestamp, body);
    let mut found = false;
    for entry in signatures.split_whitespace() {
        let Some(("v1", encoded)) = entry.split_once(',') else {
            continue;
        };
        found = true;
        if let Ok(tag) = STANDARD.decode(encoded)
            && hmac::verify(&key, &content, &tag).is_ok()
        {
            return Ok(());
        }
    }
    Err(if found {
        VerifyError::Mismatch
    } else {
        VerifyError::NoSignature
    })
}

/// [`verify`] reading the three headers from a request (for axum receivers).
pub fn verify_headers(
    secret: &[u8],
    headers: &HeaderMap,
    body: &[u8],
    now: OffsetDateTime,
    tolerance: Duration,
) -> Result<(), VerifyError> {
    let get = |name: &'static str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .ok_or(VerifyError::MissingHeader(name))
    };
    verify(
        secret,
        (
            get(ID_HEADER)?,
            get(TIMESTAMP_HEADER)?,
            get(SIGNATURE_HEADER)?,
        ),
        body,
        now,
        tolerance,
    )
}

/// The key bytes of a secret as shown at registration (`whsec_` + base64; the prefix is
/// optional). None when it is not base64.
pub fn decode_secret(text: &str) -> Option<Vec<u8>> {
    let text = text.trim();
    let encoded = text.strip_prefix(WEBHOOK_SECRET_PREFIX).unwrap_or(text);
    STANDARD.decode(encoded).ok().filter(|k| !k.is_empty())
}

// ---------------------------------------------------------------------------------------
// The body
// ---------------------------------------------------------------------------------------

/// What a consumer receives for one change event.
#[derive(Serialize)]
struct EventBody<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    subscription_id: &'a str,
    change_type: &'a str,
    resource: &'a str,
    resource_id: Option<&'a str>,
    occurred_at: String,
    /// The item as Graph had it, or null.
    data: Option<&'a Value>,
}

/// The JSON body delivered for `event`.
pub fn event_body(event: &ChangeEvent) -> Vec<u8> {
    let body = EventBody {
        id: &event.id,
        kind: "change",
        subscription_id: &event.subscription_id,
        change_type: &event.change_type,
        resource: &event.resource,
        resource_id: event.resource_id.as_deref(),
        occurred_at: event.occurred_at.format(&Rfc3339).unwrap_or_default(),
        data: event.data.as_ref(),
    };
    // Serialising strings, options and a `Value` cannot fail.
    serde_json::to_vec(&body).unwrap_or_default()
}

// ---------------------------------------------------------------------------------------
// The worker
// ---------------------------------------------------------------------------------------

/// How long to wait before attempt `attempts + 1`, after `attempts` failed ones: uniform in
/// [0, `base` × 2^(`attempts`-1)], the bound capped at [`MAX_RETRY_DELAY`] ("full jitter":
/// receivers that failed together do not all come back at the same instant). `unit` is a
/// random number in [0, 1).
pub fn retry_delay(base: Duration, attempts: i64, unit: f64) -> Duration {
    let doublings = u32::try_from(attempts.saturating_sub(1).clamp(0, 40)).unwrap_or(40);
    let bound = base
        .saturating_mul(2u32.saturating_pow(doublings))
        .min(MAX_RETRY_DELAY);
    let unit = if unit.is_finite() {
        unit.clamp(0.0, 1.0)
    } else {
        0.0
    };
    bound.mul_f64(unit)
}

/// Counts a delivery outcome (`gateway_webhook_deliveries_total{outcome}`).
fn count(outcome: &'static str) {
    metrics::counter!("gateway_webhook_deliveries_total", "outcome" => outcome).increment(1);
}

/// Why an attempt failed.
struct Failure {
    /// The receiver's status, when it answered.
    status: Option<u16>,
    /// For `last_error` and the logs: no body, no secret, no URL query.
    error: String,
    /// Retrying cannot help (the URL is no longer allowed): dead at once.
    permanent: bool,
}

struct Worker {
    store: Store,
    http: reqwest::Client,
    config: OutboundWebhooksConfig,
    /// The lease owner written into claimed rows; unique per replica.
    replica: String,
    lease: Duration,
}

/// Starts the delivery worker. It claims due deliveries (at most 16 at a time, sent
/// concurrently), and between passes waits for `wake` (notify it after committing new
/// deliveries), for the next delivery due, or at most [`POLL_INTERVAL`]. It stops at
/// `shutdown`, after the attempts in flight (each bounded by `config.timeout`).
///
/// `http` should not follow redirects (the gateway's shared client does not): a consumer
/// must not be able to bounce the gateway to an address outside the allowed prefixes.
/// `replica` names this process among replicas (lease owner); two processes must not share it.
pub fn spawn_delivery_worker(
    store: Store,
    http: reqwest::Client,
    config: OutboundWebhooksConfig,
    replica: String,
    wake: Arc<Notify>,
    shutdown: CancellationToken,
) -> JoinHandle<()> {
    let worker = Worker {
        lease: config.timeout + LEASE_MARGIN,
        store,
        http,
        config,
        replica,
    };
    tokio::spawn(async move { worker.run(&wake, &shutdown).await })
}

impl Worker {
    async fn run(&self, wake: &Notify, shutdown: &CancellationToken) {
        tracing::debug!(replica = %self.replica, "webhook delivery worker started");
        while !shutdown.is_cancelled() {
            let claimed = match self
                .store
                .claim_deliveries(&self.replica, self.lease, BATCH)
                .await
            {
                Ok(claimed) => claimed,
                Err(e) => {
                    tracing::warn!(error = %e, "claiming webhook deliveries failed");
                    Vec::new()
                }
            };
            let full = claimed.len() as i64 == BATCH;
            futures::stream::iter(claimed)
                .for_each_concurrent(None, |delivery| self.attempt(delivery))
                .await;
            if full {
                // More may be due right now.
                continue;
            }
            let wait = match self.store.next_delivery_due().await {
                Ok(Some(due)) => {
                    let until = due - OffsetDateTime::now_utc();
                    Duration::try_from(until)
                        .unwrap_or(Duration::ZERO)
                        .clamp(MIN_WAIT, POLL_INTERVAL)
                }
                Ok(None) => POLL_INTERVAL,
                Err(e) => {
                    tracing::warn!(error = %e, "reading the next webhook delivery time failed");
                    POLL_INTERVAL
                }
            };
            tokio::select! {
                () = wake.notified() => {}
                () = tokio::time::sleep(wait) => {}
                () = shutdown.cancelled() => break,
            }
        }
        tracing::debug!(replica = %self.replica, "webhook delivery worker stopped");
    }

    /// One attempt, and its outcome recorded. Store failures are logged: the lease then
    /// runs out and the delivery is attempted again.
    async fn attempt(&self, delivery: ClaimedDelivery) {
        let seq = delivery.seq;
        let recorded = match self.send(&delivery).await {
            Ok(status) => {
                count("delivered");
                tracing::debug!(seq, webhook = %delivery.webhook_id, event = %delivery.event.id, status, "webhook delivered");
                self.store.mark_delivered(seq, &self.replica, status).await
            }
            Err(failure) => {
                let give_up =
                    failure.permanent || delivery.attempts >= i64::from(self.config.max_attempts);
                let retry_at = (!give_up).then(|| {
                    OffsetDateTime::now_utc()
                        + retry_delay(self.config.retry_base, delivery.attempts, fastrand::f64())
                });
                if give_up {
                    count("dead");
                    tracing::warn!(
                        seq,
                        webhook = %delivery.webhook_id,
                        event = %delivery.event.id,
                        attempts = delivery.attempts,
                        status = failure.status,
                        error = %failure.error,
                        "webhook delivery failed for good; dead-lettered"
                    );
                } else {
                    count("retry");
                    tracing::info!(
                        seq,
                        webhook = %delivery.webhook_id,
                        attempts = delivery.attempts,
                        status = failure.status,
                        error = %failure.error,
                        "webhook delivery failed; will retry"
                    );
                }
                self.store
                    .fail_delivery(seq, &self.replica, failure.status, &failure.error, retry_at)
                    .await
            }
        };
        match recorded {
            Ok(true) => {}
            Ok(false) => tracing::info!(
                seq,
                "webhook delivery outcome not recorded: its lease had passed to another worker"
            ),
            Err(e) => {
                tracing::warn!(seq, error = %e, "recording a webhook delivery outcome failed")
            }
        }
    }

    /// POSTs the signed event; the 2xx status, or why not.
    async fn send(&self, delivery: &ClaimedDelivery) -> Result<u16, Failure> {
        // Checked again at every attempt: a prefix removed from the configuration stops
        // deliveries to URLs registered under it.
        let url =
            check_url(&delivery.url, &self.config.allowed_url_prefixes).map_err(|e| Failure {
                status: None,
                error: format!("the URL is no longer allowed: {e}"),
                permanent: true,
            })?;
        let body = event_body(&delivery.event);
        let timestamp = OffsetDateTime::now_utc().unix_timestamp();
        let signature = sign(
            delivery.secret.bytes(),
            &delivery.event.id,
            timestamp,
            &body,
        );
        let result = self
            .http
            .post(url)
            .timeout(self.config.timeout)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(ID_HEADER, &delivery.event.id)
            .header(TIMESTAMP_HEADER, timestamp.to_string())
            .header(SIGNATURE_HEADER, signature)
            .body(body)
            .send()
            .await;
        match result {
            Ok(response) if response.status().is_success() => Ok(response.status().as_u16()),
            Ok(response) => {
                let status = response.status();
                Err(Failure {
                    status: Some(status.as_u16()),
                    error: if status.is_redirection() {
                        format!("HTTP {status} (redirects are not followed)")
                    } else {
                        format!("HTTP {status}")
                    },
                    permanent: false,
                })
            }
            Err(e) => Err(Failure {
                status: None,
                error: describe(e, self.config.timeout),
                permanent: false,
            }),
        }
    }
}

/// A transport failure in a few words, without the URL (its query may carry a token).
fn describe(error: reqwest::Error, timeout: Duration) -> String {
    if error.is_timeout() {
        format!("no answer within {}", humantime::format_duration(timeout))
    } else if error.is_connect() {
        "connection failed".to_owned()
    } else {
        let error = error.without_url();
        match std::error::Error::source(&error) {
            Some(source) => format!("request failed: {error}: {source}"),
            None => format!("request failed: {error}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";
    const WINDOW: Duration = Duration::from_secs(300);

    fn at(unix: i64) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(unix).unwrap()
    }

    #[test]
    fn a_signature_verifies_with_the_same_secret_id_timestamp_and_body() {
        let signature = sign(SECRET, "evt_1", 1_700_000_000, b"{\"a\":1}");
        assert!(signature.starts_with("v1,"));
        assert_eq!(
            verify(
                SECRET,
                ("evt_1", "1700000000", &signature),
                b"{\"a\":1}",
                at(1_700_000_010),
                WINDOW
            ),
            Ok(())
        );
    }

    // The Standard Webhooks reference vector: any library implementing the scheme must
    // produce this signature, so consumers can use one.
    #[test]
    fn signing_matches_the_standard_webhooks_reference_vector() {
        let secret = decode_secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let body = br#"{"test": 2432232314}"#;
        assert_eq!(
            sign(&secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn verify_refuses_a_changed_body_a_wrong_secret_and_a_changed_id() {
        let signature = sign(SECRET, "evt_1", 1_700_000_000, b"body");
        let now = at(1_700_000_000);
        let check = |secret: &[u8], id: &str, body: &[u8]| {
            verify(secret, (id, "1700000000", &signature), body, now, WINDOW)
        };
        assert_eq!(check(SECRET, "evt_1", b"bodY"), Err(VerifyError::Mismatch));
        assert_eq!(
            check(b"another secret", "evt_1", b"body"),
            Err(VerifyError::Mismatch)
        );
        assert_eq!(check(SECRET, "evt_2", b"body"), Err(VerifyError::Mismatch));
        assert_eq!(check(b"", "evt_1", b"body"), Err(VerifyError::Mismatch));
    }

    #[test]
    fn verify_refuses_a_timestamp_outside_the_window_either_way() {
        let signature = sign(SECRET, "evt_1", 1_700_000_000, b"body");
        let check = |now: i64| {
            verify(
                SECRET,
                ("evt_1", "1700000000", &signature),
                b"body",
                at(now),
                WINDOW,
            )
        };
        assert_eq!(check(1_700_000_300), Ok(()));
        assert_eq!(check(1_699_999_700), Ok(()));
        assert_eq!(check(1_700_000_301), Err(VerifyError::OutsideTolerance));
        assert_eq!(check(1_699_999_699), Err(VerifyError::OutsideTolerance));
        // A replayed request re-signed by nobody: the old timestamp gives it away.
        assert_eq!(check(1_700_086_400), Err(VerifyError::OutsideTolerance));
        let bad = verify(
            SECRET,
            ("evt_1", "soon", &signature),
            b"body",
            at(0),
            WINDOW,
        );
        assert_eq!(bad, Err(VerifyError::BadTimestamp));
        let huge = verify(
            SECRET,
            ("evt_1", &i64::MIN.to_string(), &signature),
            b"body",
            at(i64::from(i32::MAX)),
            WINDOW,
        );
        assert_eq!(huge, Err(VerifyError::OutsideTolerance));
    }

    #[test]
    fn verify_needs_a_v1_signature_and_accepts_any_matching_one() {
        let good = sign(SECRET, "evt_1", 1_700_000_000, b"body");
        let now = at(1_700_000_000);
        let check = |header: &str| {
            verify(
                SECRET,
                ("evt_1", "1700000000", header),
                b"body",
                now,
                WINDOW,
            )
        };
        let bare = good.trim_start_matches("v1,").to_owned();
        assert_eq!(check(&bare), Err(VerifyError::NoSignature));
        assert_eq!(check(""), Err(VerifyError::NoSignature));
        assert_eq!(check(&format!("v1a,{bare}")), Err(VerifyError::NoSignature));
        assert_eq!(check("v1,not-base64!"), Err(VerifyError::Mismatch));
        let other = sign(b"old secret", "evt_1", 1_700_000_000, b"body");
        assert_eq!(check(&format!("{other} {good}")), Ok(()));
        assert_eq!(check(&format!("v1a,xyz {good}")), Ok(()));
        assert_eq!(check(&other), Err(VerifyError::Mismatch));
    }

    #[test]
    fn verify_headers_names_a_missing_header() {
        let mut headers = HeaderMap::new();
        headers.insert(ID_HEADER, "evt_1".parse().unwrap());
        headers.insert(SIGNATURE_HEADER, "v1,x".parse().unwrap());
        assert_eq!(
            verify_headers(SECRET, &headers, b"", at(0), WINDOW),
            Err(VerifyError::MissingHeader(TIMESTAMP_HEADER))
        );
    }

    #[test]
    fn secrets_decode_with_or_without_their_prefix() {
        assert_eq!(decode_secret("whsec_AAEC"), Some(vec![0, 1, 2]));
        assert_eq!(decode_secret("AAEC"), Some(vec![0, 1, 2]));
        assert_eq!(decode_secret("whsec_"), None);
        assert_eq!(decode_secret("whsec_%%%"), None);
    }

    #[test]
    fn the_retry_bound_doubles_per_attempt_up_to_an_hour_and_jitter_stays_under_it() {
        let base = Duration::from_secs(2);
        assert_eq!(retry_delay(base, 1, 0.999_999).as_secs(), 1);
        assert_eq!(retry_delay(base, 1, 1.0), Duration::from_secs(2));
        assert_eq!(retry_delay(base, 2, 1.0), Duration::from_secs(4));
        assert_eq!(retry_delay(base, 5, 1.0), Duration::from_secs(32));
        assert_eq!(retry_delay(base, 12, 1.0), MAX_RETRY_DELAY);
        assert_eq!(retry_delay(base, i64::MAX, 1.0), MAX_RETRY_DELAY);
        assert_eq!(retry_delay(base, 0, 1.0), base);
        assert_eq!(retry_delay(base, 3, 0.0), Duration::ZERO);
        assert_eq!(retry_delay(base, 3, f64::NAN), Duration::ZERO);
        for _ in 0..1000 {
            let d = retry_delay(base, 3, fastrand::f64());
            assert!(d <= Duration::from_secs(8), "{d:?}");
        }
    }

    #[test]
    fn the_body_carries_the_event_in_snake_case_with_null_data() {
        let event = ChangeEvent {
            seq: 7,
            id: "evt_1".into(),
            subscription_id: "sub_1".into(),
            change_type: "created".into(),
            resource: "users/u1/mailFolders('inbox')/messages".into(),
            resource_id: Some("AAMk".into()),
            data: None,
            occurred_at: time::macros::datetime!(2026-11-27 10:00:00 UTC),
        };
        let body: Value = serde_json::from_slice(&event_body(&event)).unwrap();
        assert_eq!(
            body,
            serde_json::json!({
                "id": "evt_1", "type": "change", "subscription_id": "sub_1",
                "change_type": "created", "resource": "users/u1/mailFolders('inbox')/messages",
                "resource_id": "AAMk", "occurred_at": "2026-11-27T10:00:00Z", "data": null
            })
        );
    }
}
