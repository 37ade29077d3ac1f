//! `/api/v1` consumer webhook routes: register an internal URL for a watch's change events,
//! list and delete webhooks, inspect and replay deliveries. The use-cases (ownership, URL
//! policy) live in `service::webhooks`; this file only adapts HTTP.
//!
//! Managing webhooks acts as nobody in Microsoft 365, so the routes take the authenticated
//! caller alone, without opening a Graph session (a `connected` caller names no user here).

use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use utoipa::{IntoParams, ToSchema};

use super::{ApiError, ErrorBody, JsonBody, json_error};
use crate::app::AppState;
use crate::auth::Caller;
use crate::service::webhooks;
use crate::store::{ConsumerWebhook, DeliveryInfo, DeliveryState};

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/subscriptions/{id}/webhooks",
            get(list_webhooks).post(create_webhook),
        )
        .route("/webhooks/{id}", delete(delete_webhook))
        .route("/webhooks/{id}/deliveries", get(list_deliveries))
        .route(
            "/webhooks/{id}/deliveries/{seq}/replay",
            post(replay_delivery),
        )
        .route("/webhooks/{id}/replay-dead", post(replay_dead))
}

/// The authenticated caller, rate-limited like every REST request, without a session.
pub struct ApiCaller(Caller);

impl FromRequestParts<AppState> for ApiCaller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        super::caller_of(parts, state).await.map(ApiCaller)
    }
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_default()
}

/// Where a webhook may point is limited by `notifications.webhooks.allowed_url_prefixes`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewWebhook {
    /// An http(s) URL under one of the gateway's allowed prefixes, without user name or
    /// password. Redirects it answers are not followed.
    url: String,
}

/// A webhook just registered, with its signing secret (shown this once).
#[derive(Serialize, ToSchema)]
pub struct CreatedWebhook {
    id: String,
    subscription_id: String,
    url: String,
    #[schema(value_type = String, format = DateTime)]
    created_at: String,
    /// `whsec_` + base64 of the HMAC-SHA256 key: deliveries are signed per Standard
    /// Webhooks (`webhook-id`, `webhook-timestamp`, `webhook-signature: v1,<base64>`).
    /// Store it now: it is never shown again.
    secret: String,
}

/// A registered webhook (no secret).
#[derive(Serialize, ToSchema)]
pub struct Webhook {
    id: String,
    subscription_id: String,
    url: String,
    #[schema(value_type = String, format = DateTime)]
    created_at: String,
}

impl From<ConsumerWebhook> for Webhook {
    fn from(w: ConsumerWebhook) -> Self {
        Webhook {
            id: w.id,
            subscription_id: w.subscription_id,
            url: w.url,
            created_at: rfc3339(w.created_at),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct WebhookList {
    data: Vec<Webhook>,
}

/// `pending`: due at `nextAttemptAt`; `delivered`: a 2xx came back; `dead`: every attempt
/// failed, kept until replayed.
#[derive(Clone, Copy, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryStatus {
    Pending,
    Delivered,
    Dead,
}

impl From<DeliveryState> for DeliveryStatus {
    fn from(s: DeliveryState) -> Self {
        match s {
            DeliveryState::Pending => DeliveryStatus::Pending,
            DeliveryState::Delivered => DeliveryStatus::Delivered,
            DeliveryState::Dead => DeliveryStatus::Dead,
        }
    }
}

impl From<DeliveryStatus> for DeliveryState {
    fn from(s: DeliveryStatus) -> Self {
        match s {
            DeliveryStatus::Pending => DeliveryState::Pending,
            DeliveryStatus::Delivered => DeliveryState::Delivered,
            DeliveryStatus::Dead => DeliveryState::Dead,
        }
    }
}

/// One delivery of one event to one webhook.
#[derive(Serialize, ToSchema)]
pub struct Delivery {
    /// Identifies the delivery within its webhook (for replay).
    seq: i64,
    /// The `webhook-id` header of every attempt: receivers de-duplicate on it.
    event_id: String,
    state: DeliveryStatus,
    /// Attempts since it was created or last replayed.
    attempts: i64,
    /// HTTP status of the last answer, when there was one.
    last_status: Option<i64>,
    /// Why the last attempt failed.
    last_error: Option<String>,
    #[schema(value_type = String, format = DateTime)]
    next_attempt_at: String,
    #[schema(value_type = String, format = DateTime)]
    created_at: String,
    #[schema(value_type = Option<String>, format = DateTime)]
    delivered_at: Option<String>,
}

impl From<DeliveryInfo> for Delivery {
    fn from(d: DeliveryInfo) -> Self {
        Delivery {
            seq: d.seq,
            event_id: d.event_id,
            state: d.state.into(),
            attempts: d.attempts,
            last_status: d.last_status,
            last_error: d.last_error,
            next_attempt_at: rfc3339(d.next_attempt_at),
            created_at: rfc3339(d.created_at),
            delivered_at: d.delivered_at.map(rfc3339),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct DeliveryList {
    data: Vec<Delivery>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeliveryParams {
    /// Only deliveries in this state.
    state: Option<DeliveryStatus>,
    /// At most this many, newest first: 1 to 200 (default 50).
    limit: Option<usize>,
}

#[derive(Serialize, ToSchema)]
pub struct Replayed {
    /// Dead deliveries set pending again.
    replayed: u64,
}

/// Registers a webhook for the caller's subscription; its events are POSTed to it, signed.
#[utoipa::path(post, path = "/api/v1/subscriptions/{id}/webhooks", tag = "webhooks",
    params(("id" = String, Path, description = "Subscription id")),
    request_body = NewWebhook,
    responses(
        (status = 201, body = CreatedWebhook),
        (status = 400, description = "The URL is outside the allowed prefixes, or none are configured (BAD_USER_INPUT)", body = ErrorBody),
        (status = 404, description = "No such subscription of the caller (NOT_FOUND)", body = ErrorBody),
        (status = 503, description = "Store unavailable (UNAVAILABLE)", body = ErrorBody),
    ))]
pub async fn create_webhook(
    State(state): State<AppState>,
    ApiCaller(caller): ApiCaller,
    Path(id): Path<String>,
    body: JsonBody<NewWebhook>,
) -> Result<(StatusCode, Json<CreatedWebhook>), ApiError> {
    let Json(body) = body.map_err(json_error)?;
    let (webhook, secret) = webhooks::create(&state.services, &caller, &id, &body.url).await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedWebhook {
            id: webhook.id,
            subscription_id: webhook.subscription_id,
            url: webhook.url,
            created_at: rfc3339(webhook.created_at),
            secret: secret.to_whsec(),
        }),
    ))
}

/// The webhooks of the caller's subscription (secrets are never shown again).
#[utoipa::path(get, path = "/api/v1/subscriptions/{id}/webhooks", tag = "webhooks",
    params(("id" = String, Path, description = "Subscription id")),
    responses(
        (status = 200, body = WebhookList),
        (status = 404, description = "No such subscription of the caller (NOT_FOUND)", body = ErrorBody),
        (status = 503, description = "Store unavailable (UNAVAILABLE)", body = ErrorBody),
    ))]
pub async fn list_webhooks(
    State(state): State<AppState>,
    ApiCaller(caller): ApiCaller,
    Path(id): Path<String>,
) -> Result<Json<WebhookList>, ApiError> {
    let list = webhooks::list(&state.services, &caller, &id).await?;
    Ok(Json(WebhookList {
        data: list.into_iter().map(Webhook::from).collect(),
    }))
}

/// Deletes one of the caller's webhooks and its deliveries.
#[utoipa::path(delete, path = "/api/v1/webhooks/{id}", tag = "webhooks",
    params(("id" = String, Path, description = "Webhook id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such webhook of the caller (NOT_FOUND)", body = ErrorBody),
        (status = 503, description = "Store unavailable (UNAVAILABLE)", body = ErrorBody),
    ))]
pub async fn delete_webhook(
    State(state): State<AppState>,
    ApiCaller(caller): ApiCaller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    webhooks::delete(&state.services, &caller, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Deliveries of one of the caller's webhooks, newest first.
#[utoipa::path(get, path = "/api/v1/webhooks/{id}/deliveries", tag = "webhooks",
    params(("id" = String, Path, description = "Webhook id"), DeliveryParams),
    responses(
        (status = 200, body = DeliveryList),
        (status = 400, description = "BAD_USER_INPUT", body = ErrorBody),
        (status = 404, description = "No such webhook of the caller (NOT_FOUND)", body = ErrorBody),
        (status = 503, description = "Store unavailable (UNAVAILABLE)", body = ErrorBody),
    ))]
pub async fn list_deliveries(
    State(state): State<AppState>,
    ApiCaller(caller): ApiCaller,
    Path(id): Path<String>,
    Query(params): Query<DeliveryParams>,
) -> Result<Json<DeliveryList>, ApiError> {
    let list = webhooks::deliveries(
        &state.services,
        &caller,
        &id,
        params.state.map(DeliveryState::from),
        params.limit,
    )
    .await?;
    Ok(Json(DeliveryList {
        data: list.into_iter().map(Delivery::from).collect(),
    }))
}

/// Sends a delivered or dead delivery again, now, with the same `webhook-id`.
#[utoipa::path(post, path = "/api/v1/webhooks/{id}/deliveries/{seq}/replay", tag = "webhooks",
    params(("id" = String, Path, description = "Webhook id"), ("seq" = i64, Path, description = "Delivery seq")),
    responses(
        (status = 202, description = "Pending again, due now"),
        (status = 404, description = "No such delivery of the caller's webhook (NOT_FOUND)", body = ErrorBody),
        (status = 409, description = "The delivery is still pending (CONFLICT)", body = ErrorBody),
        (status = 503, description = "Store unavailable (UNAVAILABLE)", body = ErrorBody),
    ))]
pub async fn replay_delivery(
    State(state): State<AppState>,
    ApiCaller(caller): ApiCaller,
    Path((id, seq)): Path<(String, i64)>,
) -> Result<StatusCode, ApiError> {
    webhooks::replay(&state.services, &caller, &id, seq).await?;
    Ok(StatusCode::ACCEPTED)
}

/// Sends every dead delivery of one of the caller's webhooks again.
#[utoipa::path(post, path = "/api/v1/webhooks/{id}/replay-dead", tag = "webhooks",
    params(("id" = String, Path, description = "Webhook id")),
    responses(
        (status = 202, body = Replayed),
        (status = 404, description = "No such webhook of the caller (NOT_FOUND)", body = ErrorBody),
        (status = 503, description = "Store unavailable (UNAVAILABLE)", body = ErrorBody),
    ))]
pub async fn replay_dead(
    State(state): State<AppState>,
    ApiCaller(caller): ApiCaller,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<Replayed>), ApiError> {
    let replayed = webhooks::replay_dead(&state.services, &caller, &id).await?;
    Ok((StatusCode::ACCEPTED, Json(Replayed { replayed })))
}
