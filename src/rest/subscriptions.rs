//! `/api/v1/subscriptions`: watches on Microsoft 365 data and their recorded events (the
//! same capabilities as the GraphQL `subscriptions` query and `createSubscription` /
//! `deleteSubscription` mutations).

use axum::extract::{Path, Query};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{ApiError, Authenticated, ErrorBody, JsonBody, json_error};
use crate::app::AppState;
use crate::service::subscriptions::{EventView, WatchRequest, WatchView};

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/subscriptions",
            get(list_subscriptions).post(create_subscription),
        )
        .route(
            "/subscriptions/{id}",
            get(get_subscription).delete(delete_subscription),
        )
        .route("/subscriptions/{id}/events", get(list_events))
}

/// As the other lists of the API: `data`.
#[derive(Serialize, ToSchema)]
pub struct SubscriptionList {
    pub data: Vec<WatchView>,
}

/// As the other lists of the API: `data`, and where to go on (here a position, since
/// events only ever get appended).
#[derive(Serialize, ToSchema)]
pub struct EventList {
    pub data: Vec<EventView>,
    /// Pass as `after` for the next page (absent when this page is empty).
    pub next_after: Option<i64>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventParams {
    /// Only events after this position (`seq`); default 0, from the oldest kept.
    pub after: Option<i64>,
    /// Events per page, 1–500; default 100.
    pub limit: Option<usize>,
}

/// Watches a mailbox folder, calendar, contacts, drive, or the directory's users or groups.
/// The gateway creates the Graph subscription (with its own notification URL), keeps it
/// alive, and records every change as an event; read them here, subscribe to them over
/// GraphQL, or register a webhook.
#[utoipa::path(post, path = "/api/v1/subscriptions", tag = "notifications",
    request_body = WatchRequest,
    responses((status = 201, body = WatchView),
        (status = 400, description = "BAD_USER_INPUT: an invalid resource or change type, or Graph refused the subscription", body = ErrorBody),
        (status = 404, description = "NOT_FOUND: the mailbox, user or drive does not exist", body = ErrorBody),
        (status = 409, description = "CONFLICT: the caller holds the most watches allowed", body = ErrorBody),
        (status = 503, description = "UNAVAILABLE: notifications are off or the store is down", body = ErrorBody)))]
pub async fn create_subscription(
    Authenticated(session): Authenticated,
    body: JsonBody<WatchRequest>,
) -> Result<(StatusCode, Json<WatchView>), ApiError> {
    let Json(body) = body.map_err(json_error)?;
    Ok((StatusCode::CREATED, Json(session.create_watch(body).await?)))
}

/// The caller's watches.
#[utoipa::path(get, path = "/api/v1/subscriptions", tag = "notifications",
    responses((status = 200, body = SubscriptionList),
        (status = 503, description = "UNAVAILABLE", body = ErrorBody)))]
pub async fn list_subscriptions(
    Authenticated(session): Authenticated,
) -> Result<Json<SubscriptionList>, ApiError> {
    Ok(Json(SubscriptionList {
        data: session.watches().await?,
    }))
}

/// One of the caller's watches.
#[utoipa::path(get, path = "/api/v1/subscriptions/{id}", tag = "notifications",
    params(("id" = String, Path, description = "Subscription id")),
    responses((status = 200, body = WatchView),
        (status = 503, description = "UNAVAILABLE", body = ErrorBody)))]
pub async fn get_subscription(
    Authenticated(session): Authenticated,
    Path(id): Path<String>,
) -> Result<Json<WatchView>, ApiError> {
    let watch = session.own_watch(&id).await?;
    Ok(Json(WatchView::from_watch(&watch)))
}

/// Stops watching: deletes the Graph subscription, the recorded events and webhooks.
#[utoipa::path(delete, path = "/api/v1/subscriptions/{id}", tag = "notifications",
    params(("id" = String, Path, description = "Subscription id")),
    responses((status = 204, description = "Deleted"),
        (status = 503, description = "UNAVAILABLE", body = ErrorBody)))]
pub async fn delete_subscription(
    Authenticated(session): Authenticated,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    session.delete_watch(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The watch's recorded change events, oldest first.
#[utoipa::path(get, path = "/api/v1/subscriptions/{id}/events", tag = "notifications",
    operation_id = "list_subscription_events",
    params(("id" = String, Path, description = "Subscription id"), EventParams),
    responses((status = 200, body = EventList),
        (status = 503, description = "UNAVAILABLE", body = ErrorBody)))]
pub async fn list_events(
    Authenticated(session): Authenticated,
    Path(id): Path<String>,
    Query(params): Query<EventParams>,
) -> Result<Json<EventList>, ApiError> {
    let data = session
        .watch_events(&id, params.after.unwrap_or(0), params.limit.unwrap_or(100))
        .await?;
    let next_after = data.last().map(|e| e.seq);
    Ok(Json(EventList { data, next_after }))
}
