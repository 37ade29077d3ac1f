//! Change-notification subscriptions: the store, the outbound HTTP side (validation
//! handshakes, notification delivery with retries, lifecycle notifications), the emulator's
//! own clock offset for expiry, and the encryption of rich notifications
//! (graph-protocol.md §10).
//!
//! What a subscription watches and how a change is detected live in
//! `graph::subscriptions`; this module never looks at mail, calendars or drives.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use aws_lc_rs::cipher::{AES_256, EncryptionContext, PaddedBlockEncryptingKey, UnboundCipherKey};
use aws_lc_rs::iv::FixedLength;
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use aws_lc_rs::rsa::{OAEP_SHA1_MGF1SHA1, OaepPublicEncryptingKey, PublicEncryptingKey};
use aws_lc_rs::{digest, hmac};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::Serialize;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::macros::format_description;

use crate::{Emulator, clock};

/// The app id Graph's change-notification publisher signs `validationTokens` as (`azp`,
/// `appid`), graph-protocol.md §10.7.
pub const CHANGE_TRACKING_APP_ID: &str = "0bf30f3b-4a52-48df-9a82-234910c4a086";

/// How the emulator talks to notification endpoints. The defaults follow Graph where it
/// documents a number (3 s acknowledgement, 10 s validation window); retries are much
/// shorter than Graph's four hours so tests finish.
#[derive(Clone, Debug)]
pub struct NotificationSettings {
    /// How long a notification POST may take before it counts as failed and is retried
    /// (Graph: 3 s). Default 3 s.
    pub timeout: Duration,
    /// The wait before the first retry; every further retry waits twice as long.
    /// Default 1 s.
    pub retry_base: Duration,
    /// Attempts per notification POST, the first included; after the last failure the
    /// notification is dropped. Default 4.
    pub max_attempts: u32,
    /// How long the endpoint has to answer the validation handshake (Graph: 10 s).
    pub validation_timeout: Duration,
    /// Hosts (exact names) to which a plain `http://` notification URL is accepted besides
    /// loopback ones: containers reaching each other by service name, where Graph would
    /// require https. Default: none.
    pub allow_http_hosts: Vec<String>,
}

impl Default for NotificationSettings {
    fn default() -> Self {
        NotificationSettings {
            timeout: Duration::from_secs(3),
            retry_base: Duration::from_secs(1),
            max_attempts: 4,
            validation_timeout: Duration::from_secs(10),
            allow_http_hosts: Vec::new(),
        }
    }
}

/// One outbound POST the emulator made to a subscriber (what
/// `GET /_emulator/subscriptions/deliveries` lists).
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct NotificationAttempt {
    /// `validation`, `notification` or `lifecycle`.
    pub kind: String,
    /// The URL posted to (with `validationToken` for a handshake).
    pub url: String,
    #[serde(rename = "subscriptionIds")]
    pub subscription_ids: Vec<String>,
    /// 1 for the first try, 2 for the first retry, ...
    pub attempt: u32,
    /// The HTTP status, `None` when no answer came (timeout, connection refused).
    pub status: Option<u16>,
    /// Why the attempt failed, if it did.
    pub error: Option<String>,
    /// Whether this attempt succeeded (a 2xx; for a handshake, the right echo).
    pub ok: bool,
    /// The JSON body sent (`None` for a handshake, which has no body).
    pub body: Option<Value>,
}

/// What a subscription's encryption certificate gives: the key that wraps the symmetric
/// key, and the thumbprint notifications name it by.
#[derive(Clone)]
pub(crate) struct EncryptionCert {
    /// X.509 SubjectPublicKeyInfo DER.
    pub spki: Vec<u8>,
    /// Upper-case hex SHA-1 of the certificate DER.
    pub thumbprint: String,
}

impl std::fmt::Debug for EncryptionCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EncryptionCert")
            .field("thumbprint", &self.thumbprint)
            .finish()
    }
}

/// What a subscription watches, resolved at creation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Target {
    /// Messages of a mailbox (object id), in one folder (id) or anywhere.
    Messages {
        user_id: String,
        folder: Option<String>,
    },
    Events {
        user_id: String,
    },
    Contacts {
        user_id: String,
    },
    DriveRoot {
        drive_id: String,
    },
    Users,
    Groups,
}

/// What was last seen of the watched items, to tell created, updated and deleted apart.
#[derive(Clone, Debug, Default)]
pub(crate) enum Snapshot {
    /// Items by id: (version, etag).
    Items(HashMap<String, (u64, String)>),
    /// A drive's change sequence number.
    Sequence(u64),
    /// Nothing is tracked (directory subscriptions: the emulator has no directory writes).
    #[default]
    Nothing,
}

#[derive(Clone, Debug)]
pub(crate) struct Subscription {
    pub id: String,
    /// As the client sent it, without a leading `/`.
    pub resource: String,
    pub target: Target,
    /// As the client sent it (`created,updated`).
    pub change_type: String,
    pub created: bool,
    pub updated: bool,
    pub deleted: bool,
    pub notification_url: String,
    pub lifecycle_url: Option<String>,
    pub expiration: OffsetDateTime,
    pub client_state: Option<String>,
    pub app_id: String,
    pub creator_id: String,
    pub latest_tls: String,
    pub include_resource_data: bool,
    pub encryption_certificate: Option<String>,
    pub encryption_certificate_id: Option<String>,
    pub cert: Option<EncryptionCert>,
    pub snapshot: Snapshot,
}

impl Subscription {
    /// The subscription resource as Graph renders it (subscription-update.md's shape).
    pub fn json(&self) -> Value {
        json!({
            "id": self.id,
            "resource": self.resource,
            "applicationId": self.app_id,
            "changeType": self.change_type,
            "clientState": self.client_state,
            "notificationUrl": self.notification_url,
            "notificationQueryOptions": null,
            "lifecycleNotificationUrl": self.lifecycle_url,
            "expirationDateTime": graph_time(self.expiration),
            "creatorId": self.creator_id,
            "includeResourceData": self.include_resource_data,
            "latestSupportedTlsVersion": self.latest_tls,
            "encryptionCertificate": self.encryption_certificate.clone().unwrap_or_default(),
            "encryptionCertificateId": self.encryption_certificate_id.clone().unwrap_or_default(),
            "notificationUrlAppId": null,
            "notificationContentType": "application/json",
        })
    }

    pub fn wants(&self, change: &str) -> bool {
        match change {
            "created" => self.created,
            "updated" => self.updated,
            "deleted" => self.deleted,
            _ => false,
        }
    }
}

/// `2016-11-20T18:23:45.9356913Z`: seven fractional digits, as Graph echoes expiry times.
pub(crate) fn graph_time(t: OffsetDateTime) -> String {
    let fmt =
        format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:7]Z");
    t.to_offset(time::UtcOffset::UTC)
        .format(&fmt)
        .unwrap_or_else(|_| "1970-01-01T00:00:00.0000000Z".to_string())
}

/// Every subscription and every outbound attempt.
pub(crate) struct Subscriptions {
    pub subs: Mutex<BTreeMap<String, Subscription>>,
    attempts: Mutex<Vec<NotificationAttempt>>,
    /// Seconds added to the wall clock for subscription expiry (`advance_clock`).
    skew: AtomicI64,
    client: reqwest::Client,
}

impl Default for Subscriptions {
    fn default() -> Self {
        // Redirects are not followed: Graph posts to the URL it was given.
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_default();
        Subscriptions {
            subs: Mutex::new(BTreeMap::new()),
            attempts: Mutex::new(Vec::new()),
            skew: AtomicI64::new(0),
            client,
        }
    }
}

/// A poisoned lock only means a panic elsewhere mid-update; the data is still usable.
pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Subscriptions {
    /// The subscription clock: wall time plus whatever `advance_clock` added.
    pub fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc() + time::Duration::seconds(self.skew.load(Ordering::Relaxed))
    }

    pub fn advance(&self, seconds: i64) {
        self.skew.fetch_add(seconds, Ordering::Relaxed);
    }

    /// Drops expired subscriptions (they send nothing and are gone from `GET`).
    pub fn purge_expired(&self) {
        let now = self.now();
        lock(&self.subs).retain(|_, s| s.expiration > now);
    }

    pub fn is_empty(&self) -> bool {
        lock(&self.subs).is_empty()
    }

    pub fn attempts(&self) -> Vec<NotificationAttempt> {
        lock(&self.attempts).clone()
    }

    fn record(&self, attempt: NotificationAttempt) {
        lock(&self.attempts).push(attempt);
    }
}

/// Why a handshake failed: Graph's 400 (or, for a timeout, its `InvalidRequest`).
pub(crate) enum HandshakeError {
    /// No 200, or no answer at all.
    NotOk,
    /// A 200 whose body (or content type) is not the token.
    Mismatch,
    TimedOut,
}

/// Graph's validation token: opaque text that must be URL-decoded by the receiver (it holds
/// spaces and colons, as Graph's does).
fn validation_token() -> String {
    format!(
        "Validation: Testing client application reachability for subscription Request-Id: {}",
        uuid::Uuid::new_v4()
    )
}

/// `url` with `name=value` appended to its query (the client's own query is kept).
fn with_query(url: &str, name: &str, value: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) => {
            u.query_pairs_mut().append_pair(name, value);
            u.to_string()
        }
        Err(_) => url.to_string(),
    }
}

/// The validation handshake (§10.2): `POST {url}?validationToken=…` with an empty
/// `text/plain` body; the endpoint must answer 200 `text/plain` with the decoded token
/// within the validation timeout.
pub(crate) async fn handshake(
    emulator: &Emulator,
    url: &str,
    subscription_id: &str,
) -> Result<(), HandshakeError> {
    let state = emulator.state();
    let subs = &state.subscriptions;
    let token = validation_token();
    let target = with_query(url, "validationToken", &token);
    let request = subs
        .client
        .post(&target)
        .header("Content-Type", "text/plain; charset=utf-8")
        .body("")
        .send();
    let settings = &state.config.notifications;
    let mut attempt = NotificationAttempt {
        kind: "validation".to_string(),
        url: target.clone(),
        subscription_ids: vec![subscription_id.to_string()],
        attempt: 1,
        status: None,
        error: None,
        ok: false,
        body: None,
    };
    let result = async {
        let response = tokio::time::timeout(settings.validation_timeout, async {
            let response = request.await.map_err(|_| HandshakeError::NotOk)?;
            let status = response.status();
            let text_plain = response
                .headers()
                .get(reqwest::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.trim().to_ascii_lowercase().starts_with("text/plain"));
            let body = response.text().await.map_err(|_| HandshakeError::NotOk)?;
            Ok::<_, HandshakeError>((status, text_plain, body))
        })
        .await
        .map_err(|_| HandshakeError::TimedOut)??;
        Ok::<_, HandshakeError>(response)
    }
    .await;
    let outcome = match result {
        Ok((status, text_plain, body)) => {
            attempt.status = Some(status.as_u16());
            if status != reqwest::StatusCode::OK {
                Err(HandshakeError::NotOk)
            } else if !text_plain || body != token {
                Err(HandshakeError::Mismatch)
            } else {
                Ok(())
            }
        }
        Err(e) => Err(e),
    };
    attempt.ok = outcome.is_ok();
    attempt.error = match &outcome {
        Ok(()) => None,
        Err(HandshakeError::NotOk) => Some("no 200 answer".to_string()),
        Err(HandshakeError::Mismatch) => Some("the body is not the validation token".to_string()),
        Err(HandshakeError::TimedOut) => Some("timed out".to_string()),
    };
    subs.record(attempt);
    outcome
}

/// POSTs `body` to `url` in a background task, retrying a non-2xx answer or a timeout with
/// exponential backoff; every attempt is logged and counted. Never blocks the caller.
pub(crate) fn deliver(emulator: &Emulator, kind: &str, url: String, ids: Vec<String>, body: Value) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        tracing::warn!("no tokio runtime: notification not sent");
        return;
    };
    let emulator = emulator.clone();
    let kind = kind.to_string();
    runtime.spawn(async move {
        let state = emulator.state();
        let settings = state.config.notifications.clone();
        let max = settings.max_attempts.max(1);
        for n in 1..=max {
            let send = state
                .subscriptions
                .client
                .post(&url)
                .header("Content-Type", "application/json; charset=utf-8")
                .body(body.to_string())
                .send();
            let (status, error) = match tokio::time::timeout(settings.timeout, send).await {
                Ok(Ok(response)) => (Some(response.status().as_u16()), None),
                Ok(Err(err)) => (None, Some(format!("no answer: {err}"))),
                Err(_) => (None, Some("timed out".to_string())),
            };
            let ok = status.is_some_and(|s| (200..300).contains(&s));
            state.recorder.notification_attempt(ok);
            state.subscriptions.record(NotificationAttempt {
                kind: kind.clone(),
                url: url.clone(),
                subscription_ids: ids.clone(),
                attempt: n,
                status,
                error: error.or_else(|| (!ok).then(|| "not a 2xx answer".to_string())),
                ok,
                body: Some(body.clone()),
            });
            if ok {
                return;
            }
            if n < max {
                let factor = 1u32.checked_shl(n - 1).unwrap_or(u32::MAX);
                tokio::time::sleep(settings.retry_base.saturating_mul(factor)).await;
            }
        }
        state.recorder.notification_dropped();
        tracing::debug!(%url, "notification dropped after {max} attempts");
    });
}

/// Lifecycle events the admin surface can trigger (§10.6).
pub const LIFECYCLE_EVENTS: [&str; 3] =
    ["reauthorizationRequired", "subscriptionRemoved", "missed"];

/// Sends a lifecycle notification for subscription `id`; `subscriptionRemoved` also deletes
/// it. `Err` names what is wrong (unknown subscription or event, no lifecycle URL).
pub(crate) fn trigger_lifecycle(emulator: &Emulator, id: &str, event: &str) -> Result<(), String> {
    let Some(event) = LIFECYCLE_EVENTS
        .iter()
        .find(|e| e.eq_ignore_ascii_case(event))
    else {
        return Err(format!(
            "unknown lifecycle event '{event}' (reauthorizationRequired, subscriptionRemoved, missed)"
        ));
    };
    let state = emulator.state();
    state.subscriptions.purge_expired();
    let sub = {
        let mut subs = lock(&state.subscriptions.subs);
        let Some(sub) = subs.get(id).cloned() else {
            return Err(format!("no subscription '{id}'"));
        };
        if *event == "subscriptionRemoved" {
            subs.remove(id);
        }
        sub
    };
    let Some(url) = sub.lifecycle_url.clone() else {
        return Err(format!(
            "subscription '{id}' has no lifecycleNotificationUrl"
        ));
    };
    let body = json!({"value": [{
        "subscriptionId": sub.id,
        "subscriptionExpirationDateTime": graph_time(sub.expiration),
        "tenantId": state.config.tenant_id,
        "clientState": sub.client_state,
        "lifecycleEvent": event,
    }]});
    deliver(emulator, "lifecycle", url, vec![sub.id], body);
    Ok(())
}

/// `encryptedContent` of a rich notification (§10.7): a fresh 32-byte key; the resource JSON
/// AES-256-CBC (PKCS7) encrypted with IV = the key's first 16 bytes; HMAC-SHA256 (keyed with
/// the symmetric key) over the encrypted bytes; the key RSA-OAEP (SHA-1) encrypted with the
/// certificate's public key.
pub(crate) fn encrypt_content(
    cert: &EncryptionCert,
    certificate_id: &str,
    plaintext: &[u8],
) -> Result<Value, String> {
    let fail = |what: &str| format!("cannot encrypt the notification: {what}");
    let mut key = [0u8; 32];
    SystemRandom::new()
        .fill(&mut key)
        .map_err(|_| fail("no randomness"))?;
    let mut iv = [0u8; 16];
    iv.copy_from_slice(&key[..16]);
    let aes = UnboundCipherKey::new(&AES_256, &key).map_err(|_| fail("AES key"))?;
    let aes = PaddedBlockEncryptingKey::cbc_pkcs7(aes).map_err(|_| fail("AES-CBC"))?;
    let mut data = plaintext.to_vec();
    aes.less_safe_encrypt(&mut data, EncryptionContext::Iv128(FixedLength::from(iv)))
        .map_err(|_| fail("AES-CBC encryption"))?;
    let mac_key = hmac::Key::new(hmac::HMAC_SHA256, &key);
    let signature = hmac::sign(&mac_key, &data);
    let public = PublicEncryptingKey::from_der(&cert.spki).map_err(|_| fail("RSA key"))?;
    let oaep = OaepPublicEncryptingKey::new(public).map_err(|_| fail("RSA-OAEP"))?;
    let mut wrapped = vec![0u8; oaep.ciphertext_size()];
    let wrapped = oaep
        .encrypt(&OAEP_SHA1_MGF1SHA1, &key, &mut wrapped, None)
        .map_err(|_| fail("RSA-OAEP encryption"))?;
    Ok(json!({
        "data": STANDARD.encode(&data),
        "dataSignature": STANDARD.encode(signature.as_ref()),
        "dataKey": STANDARD.encode(wrapped),
        "encryptionCertificateId": certificate_id,
        "encryptionCertificateThumbprint": cert.thumbprint,
    }))
}

/// Parses a subscription's `encryptionCertificate` (base64 DER X.509, or PEM).
pub(crate) fn parse_certificate(text: &str) -> Result<EncryptionCert, String> {
    let b64: String = text
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .flat_map(|l| l.chars())
        .filter(|c| !c.is_whitespace())
        .collect();
    let der = STANDARD
        .decode(b64)
        .map_err(|_| "the certificate is not base64".to_string())?;
    let spki = crate::entra::subject_public_key_info(&der)?.to_vec();
    PublicEncryptingKey::from_der(&spki).map_err(|_| "the certificate's key is not usable")?;
    let sha1 = digest::digest(&digest::SHA1_FOR_LEGACY_USE_ONLY, &der);
    Ok(EncryptionCert {
        spki,
        thumbprint: crate::entra::hex_upper(sha1.as_ref()),
    })
}

/// A `validationTokens` entry (§10.7): a JWT from the tenant's token issuer, signed with the
/// emulator's active key, for the subscribing app, as Graph's change-tracking app.
pub(crate) fn validation_jwt(emulator: &Emulator, audience_app: &str) -> Result<String, String> {
    let state = emulator.state();
    let tid = &state.config.tenant_id;
    let now = clock::now_unix();
    let issuer = format!("https://sts.windows.net/{tid}/");
    let claims = json!({
        "aud": audience_app,
        "iss": issuer,
        "iat": now,
        "nbf": now,
        "exp": now + 3600,
        "aio": "E2ZgYJj+cn5w8Z3vkWt9k0WtwU0A",
        "appid": CHANGE_TRACKING_APP_ID,
        "appidacr": "2",
        "azp": CHANGE_TRACKING_APP_ID,
        "azpacr": "2",
        "idp": issuer,
        "oid": crate::entra::service_principal_id(tid, CHANGE_TRACKING_APP_ID),
        "sub": crate::entra::service_principal_id(tid, CHANGE_TRACKING_APP_ID),
        "tid": tid,
        "uti": uuid::Uuid::new_v4().simple().to_string(),
        "ver": "1.0",
    });
    state
        .keys
        .active()
        .sign_v1(&claims)
        .map_err(|e| format!("cannot sign a validation token: {e}"))
}
