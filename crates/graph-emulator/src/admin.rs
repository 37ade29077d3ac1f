//! Request accounting and the unauthenticated `/_emulator/...` admin surface.
//!
//! Tests use it to assert how many Graph calls a gateway operation cost, so every HTTP
//! request to `/v1.0/...` is counted once (a `$batch` envelope too) and every batch item
//! is counted separately.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::{Deserialize, Serialize};

use crate::Emulator;
use crate::faults::FaultRule;

/// How many requests the request log keeps.
const REQUEST_LOG_CAPACITY: usize = 10_000;

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// HTTP requests to `/v1.0/...` (a `$batch` envelope counts once).
    pub graph_requests: u64,
    /// Items inside `$batch` envelopes.
    pub batch_items: u64,
    /// Calls to the token endpoint.
    pub token_requests: u64,
    /// HTTP requests by route template, e.g. `"GET /users/{id}/manager"`.
    pub routes: BTreeMap<String, u64>,
    /// Batch items by route template.
    pub batch_item_routes: BTreeMap<String, u64>,
    /// Token-endpoint calls by `grant_type`: `client_credentials`, `authorization_code`,
    /// `refresh_token`, `urn:ietf:params:oauth:grant-type:jwt-bearer` (on-behalf-of);
    /// `(missing)` and `(unsupported)` for the rest.
    #[serde(default)]
    pub token_requests_by_grant: BTreeMap<String, u64>,
    /// Faults injected by fault rules (one per rule that fired; latency included), on Graph
    /// requests, batch items and Entra requests alike.
    #[serde(default)]
    pub faults_injected: u64,
    /// 429 answers: throttle faults (Graph and the token endpoint) and Outlook's mailbox
    /// concurrency limit (batch items counted one by one).
    #[serde(default)]
    pub throttled: u64,
    /// Change-notification and lifecycle POSTs to subscribers, retries included
    /// (validation handshakes are not counted).
    #[serde(default)]
    pub notification_attempts: u64,
    /// Of those, the ones answered with a 2xx.
    #[serde(default)]
    pub notifications_delivered: u64,
    /// Notification POSTs given up after the last retry.
    #[serde(default)]
    pub notifications_dropped: u64,
}

/// One recorded Graph request (a direct call or a batch item).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct RecordedRequest {
    pub method: String,
    /// Path and query as received: `/v1.0/users?$top=5`, or a batch item's relative url.
    pub url: String,
    pub status: u16,
    pub in_batch: bool,
    pub client_request_id: String,
}

#[derive(Default)]
pub(crate) struct Recorder {
    graph_requests: AtomicU64,
    batch_items: AtomicU64,
    token_requests: AtomicU64,
    faults_injected: AtomicU64,
    throttled: AtomicU64,
    notification_attempts: AtomicU64,
    notifications_delivered: AtomicU64,
    notifications_dropped: AtomicU64,
    token_grants: Mutex<BTreeMap<String, u64>>,
    routes: Mutex<BTreeMap<String, u64>>,
    batch_item_routes: Mutex<BTreeMap<String, u64>>,
    log: Mutex<VecDeque<RecordedRequest>>,
}

impl Recorder {
    /// Counts an HTTP request to `/v1.0/...`.
    pub(crate) fn graph_request(&self, route: &str, record: RecordedRequest) {
        self.graph_requests.fetch_add(1, Ordering::Relaxed);
        bump(&self.routes, route);
        self.push(record);
    }

    /// Counts one item of a `$batch`.
    pub(crate) fn batch_item(&self, route: &str, record: RecordedRequest) {
        self.batch_items.fetch_add(1, Ordering::Relaxed);
        bump(&self.batch_item_routes, route);
        self.push(record);
    }

    /// Counts a request to Outlook's own surface (`/api/v2.0/...` upload URLs): by route and
    /// in the request log, not in `graph_requests`.
    pub(crate) fn outlook_request(&self, route: &str, record: RecordedRequest) {
        bump(&self.routes, route);
        self.push(record);
    }

    /// Counts a request to a drive's pre-authenticated URLs (`/up/…`, downloads, the copy
    /// monitor): by route and in the request log, not in `graph_requests`.
    pub(crate) fn preauthenticated_request(&self, route: &str, record: RecordedRequest) {
        bump(&self.routes, route);
        self.push(record);
    }

    /// Counts faults injected by fault rules.
    pub(crate) fn faults_injected(&self, n: u64) {
        self.faults_injected.fetch_add(n, Ordering::Relaxed);
    }

    /// Counts one notification POST to a subscriber.
    pub(crate) fn notification_attempt(&self, delivered: bool) {
        self.notification_attempts.fetch_add(1, Ordering::Relaxed);
        if delivered {
            self.notifications_delivered.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Counts a notification given up after its last retry.
    pub(crate) fn notification_dropped(&self) {
        self.notifications_dropped.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a 429 that is not in the request log (the token endpoint's).
    pub(crate) fn throttled(&self) {
        self.throttled.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a token-endpoint call and its grant type.
    pub(crate) fn token_request(&self, route: &str, grant: &str) {
        self.token_requests.fetch_add(1, Ordering::Relaxed);
        bump(&self.routes, route);
        bump(&self.token_grants, grant);
    }

    /// Counts any other Entra request (discovery, keys).
    pub(crate) fn other_request(&self, route: &str) {
        bump(&self.routes, route);
    }

    pub(crate) fn stats(&self) -> Stats {
        Stats {
            graph_requests: self.graph_requests.load(Ordering::Relaxed),
            batch_items: self.batch_items.load(Ordering::Relaxed),
            token_requests: self.token_requests.load(Ordering::Relaxed),
            routes: lock(&self.routes).clone(),
            batch_item_routes: lock(&self.batch_item_routes).clone(),
            token_requests_by_grant: lock(&self.token_grants).clone(),
            faults_injected: self.faults_injected.load(Ordering::Relaxed),
            throttled: self.throttled.load(Ordering::Relaxed),
            notification_attempts: self.notification_attempts.load(Ordering::Relaxed),
            notifications_delivered: self.notifications_delivered.load(Ordering::Relaxed),
            notifications_dropped: self.notifications_dropped.load(Ordering::Relaxed),
        }
    }

    pub(crate) fn reset(&self) {
        self.graph_requests.store(0, Ordering::Relaxed);
        self.batch_items.store(0, Ordering::Relaxed);
        self.token_requests.store(0, Ordering::Relaxed);
        self.faults_injected.store(0, Ordering::Relaxed);
        self.throttled.store(0, Ordering::Relaxed);
        self.notification_attempts.store(0, Ordering::Relaxed);
        self.notifications_delivered.store(0, Ordering::Relaxed);
        self.notifications_dropped.store(0, Ordering::Relaxed);
        lock(&self.routes).clear();
        lock(&self.token_grants).clear();
        lock(&self.batch_item_routes).clear();
        lock(&self.log).clear();
    }

    pub(crate) fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.log).iter().cloned().collect()
    }

    fn push(&self, record: RecordedRequest) {
        if record.status == 429 {
            self.throttled.fetch_add(1, Ordering::Relaxed);
        }
        let mut log = lock(&self.log);
        if log.len() == REQUEST_LOG_CAPACITY {
            log.pop_front();
        }
        log.push_back(record);
    }
}

fn bump(map: &Mutex<BTreeMap<String, u64>>, route: &str) {
    *lock(map).entry(route.to_string()).or_insert(0) += 1;
}

/// A poisoned lock only means another request panicked mid-update of a counter map;
/// the data is still usable, and the emulator must keep serving.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

pub(crate) async fn get_stats(State(emulator): State<Emulator>) -> Json<Stats> {
    Json(emulator.stats())
}

pub(crate) async fn reset_stats(State(emulator): State<Emulator>) -> impl IntoResponse {
    emulator.reset_stats();
    StatusCode::NO_CONTENT
}

pub(crate) async fn get_requests(State(emulator): State<Emulator>) -> Json<Vec<RecordedRequest>> {
    Json(emulator.requests())
}

#[derive(Deserialize, Default)]
struct RotateRequest {
    #[serde(default)]
    retire_previous: bool,
}

/// `POST /_emulator/keys/rotate` with `{"retire_previous": bool}` (an empty body means
/// `false`): a new signing key becomes active. Answers `{"kid": "<new kid>"}`.
pub(crate) async fn rotate_keys(
    State(emulator): State<Emulator>,
    body: Bytes,
) -> impl IntoResponse {
    let request: RotateRequest = if body.iter().all(u8::is_ascii_whitespace) {
        RotateRequest::default()
    } else {
        match serde_json::from_slice(&body) {
            Ok(r) => r,
            Err(err) => {
                return (
                    StatusCode::BAD_REQUEST,
                    Json(serde_json::json!({"error": format!("invalid body: {err}")})),
                );
            }
        }
    };
    let kid = emulator.rotate_signing_key(request.retire_previous);
    (StatusCode::OK, Json(serde_json::json!({"kid": kid})))
}

/// `POST /_emulator/users/{upn or id}/revoke`: revokes the user's refresh tokens.
/// Answers `{"value": true}`, or 404 for an unknown user.
pub(crate) async fn revoke_user(
    State(emulator): State<Emulator>,
    Path(user): Path<String>,
) -> impl IntoResponse {
    if emulator.revoke_user_sessions(&user) {
        (StatusCode::OK, Json(serde_json::json!({"value": true})))
    } else {
        (
            StatusCode::NOT_FOUND,
            Json(serde_json::json!({"error": format!("no user '{user}'")})),
        )
    }
}

/// `GET /_emulator/faults`: `{"rules": [{"id", "matched", "hits", "rule"}]}`.
pub(crate) async fn list_faults(State(emulator): State<Emulator>) -> impl IntoResponse {
    Json(serde_json::json!({ "rules": emulator.faults() }))
}

/// `POST /_emulator/faults` with one rule, `{"rules": [...]}` or `[...]`: appends them (all
/// or none) and answers `{"ids": [...]}`; 400 with `{"error": ...}` for a bad rule.
pub(crate) async fn add_faults(State(emulator): State<Emulator>, body: Bytes) -> impl IntoResponse {
    let bad = |message: String| {
        (
            StatusCode::BAD_REQUEST,
            Json(serde_json::json!({ "error": message })),
        )
    };
    let value: serde_json::Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(err) => return bad(format!("invalid body: {err}")),
    };
    let rules = match value {
        serde_json::Value::Object(mut o) if o.contains_key("rules") => {
            serde_json::from_value::<Vec<FaultRule>>(o.remove("rules").unwrap_or_default())
        }
        v @ serde_json::Value::Array(_) => serde_json::from_value::<Vec<FaultRule>>(v),
        v => serde_json::from_value::<FaultRule>(v).map(|r| vec![r]),
    };
    let rules = match rules {
        Ok(rules) => rules,
        Err(err) => return bad(format!("invalid fault rule: {err}")),
    };
    if let Some(err) = rules.iter().find_map(|r| r.validate().err()) {
        return bad(format!("invalid fault rule: {err}"));
    }
    let ids: Vec<u64> = rules
        .into_iter()
        .filter_map(|r| emulator.try_add_fault(r).ok())
        .collect();
    (StatusCode::OK, Json(serde_json::json!({ "ids": ids })))
}

/// `DELETE /_emulator/faults`: removes every rule.
pub(crate) async fn clear_faults(State(emulator): State<Emulator>) -> impl IntoResponse {
    emulator.clear_faults();
    StatusCode::NO_CONTENT
}

/// `DELETE /_emulator/faults/{id}`: 204, or 404 for an unknown id.
pub(crate) async fn remove_fault(
    State(emulator): State<Emulator>,
    Path(id): Path<String>,
) -> impl IntoResponse {
    match id.parse::<u64>() {
        Ok(id) if emulator.remove_fault(id) => StatusCode::NO_CONTENT,
        _ => StatusCode::NOT_FOUND,
    }
}

/// `GET /_emulator/subscriptions`: every live subscription as Graph renders it.
pub(crate) async fn list_subscriptions(State(emulator): State<Emulator>) -> impl IntoResponse {
    Json(serde_json::json!({ "value": emulator.subscriptions() }))
}

/// `GET /_emulator/subscriptions/deliveries`: every outbound POST (handshakes,
/// notifications, lifecycle notifications, retries), oldest first.
pub(crate) async fn list_deliveries(State(emulator): State<Emulator>) -> impl IntoResponse {
    Json(serde_json::json!({ "value": emulator.notification_attempts() }))
}

#[derive(Deserialize)]
struct LifecycleRequest {
    event: String,
}

/// `POST /_emulator/subscriptions/{id}/lifecycle` with `{"event": …}`: 202 once the
/// lifecycle notification is queued; 404 for an unknown subscription, 400 otherwise.
pub(crate) async fn trigger_lifecycle(
    State(emulator): State<Emulator>,
    Path(id): Path<String>,
    body: Bytes,
) -> impl IntoResponse {
    let request: LifecycleRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(err) => {
            return (
                StatusCode::BAD_REQUEST,
                Json(serde_json::json!({"error": format!("invalid body: {err}")})),
            );
        }
    };
    if !emulator
        .subscriptions()
        .iter()
        .any(|s| s["id"].as_str() == Some(id.as_str()))
    {
        return (
            StatusCode::NOT_FOUND,
            Json(serde_json::json!({"error": format!("no subscription '{id}'")})),
        );
    }
    match emulator.trigger_lifecycle(&id, &request.event) {
        Ok(()) => (StatusCode::ACCEPTED, Json(serde_json::json!({}))),
        Err(err) => (
            StatusCode::BAD_REQUEST,
            Json(serde_json::json!({ "error": err })),
        ),
    }
}

#[derive(Deserialize)]
struct AdvanceRequest {
    seconds: i64,
}

/// `POST /_emulator/clock/advance` with `{"seconds": n}`: moves the subscription clock.
pub(crate) async fn advance_clock(
    State(emulator): State<Emulator>,
    body: Bytes,
) -> impl IntoResponse {
    match serde_json::from_slice::<AdvanceRequest>(&body) {
        Ok(r) => {
            emulator.advance_clock(std::time::Duration::from_secs(
                r.seconds.max(0).unsigned_abs(),
            ));
            (StatusCode::NO_CONTENT, Json(serde_json::json!(null))).into_response()
        }
        Err(err) => (
            StatusCode::BAD_REQUEST,
            Json(serde_json::json!({"error": format!("invalid body: {err}")})),
        )
            .into_response(),
    }
}
