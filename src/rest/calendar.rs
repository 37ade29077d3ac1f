//! `/api/v1` calendar and contact routes: the same capabilities as the GraphQL fields and
//! mutations.

use axum::extract::{Path, Query};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use super::{
    ApiError, Authenticated, ErrorBody, JsonBody, PageParams, Paged, json_error, paged, yes,
};
use crate::app::AppState;
use crate::service::calendar::{
    Calendar, Event, EventInput, MeetingResponse, MeetingSlot, Schedule,
};
use crate::service::contacts::{Contact, ContactFolder, ContactInput};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/users/{id}/calendars", get(list_calendars))
        .route("/users/{id}/calendar", get(get_calendar))
        .route("/users/{id}/events", get(list_events).post(create_event))
        .route(
            "/users/{id}/events/{event}",
            get(get_event).patch(update_event).delete(delete_event),
        )
        .route("/users/{id}/events/{event}/cancel", post(cancel_event))
        .route("/users/{id}/events/{event}/respond", post(respond_to_event))
        .route("/users/{id}/calendar-view", get(calendar_view))
        .route("/schedule", post(schedule))
        .route("/meeting-slots", post(meeting_slots))
        .route(
            "/users/{id}/contacts",
            get(list_contacts).post(create_contact),
        )
        .route(
            "/users/{id}/contacts/{contact}",
            get(get_contact)
                .patch(update_contact)
                .delete(delete_contact),
        )
        .route("/users/{id}/contact-folders", get(list_contact_folders))
}

/// A user's calendars.
#[utoipa::path(get, path = "/api/v1/users/{id}/calendars", tag = "calendar",
    params(("id" = String, Path, description = "Mailbox: object id, UPN, address or `me`"), PageParams),
    responses((status = 200, body = Paged<Calendar>), (status = 403, description = "FORBIDDEN", body = ErrorBody), (status = 404, description = "NOT_FOUND", body = ErrorBody)))]
pub async fn list_calendars(
    Authenticated(session): Authenticated,
    Path(id): Path<String>,
    Query(p): Query<PageParams>,
) -> Result<Json<Paged<Calendar>>, ApiError> {
    let page = session.calendars(&id, p.limit(), p.cursor()).await?;
    Ok(Json(paged(page)))
}

/// A user's default calendar.
#[utoipa::path(get, path = "/api/v1/users/{id}/calendar", tag = "calendar",
    params(("id" = String, Path, description = "Mailbox")),
    responses((status = 200, body = Calendar), (status = 403, description = "FORBIDDEN", body = ErrorBody), (status = 404, description = "NOT_FOUND", body = ErrorBody)))]
pub async fn get_calendar(
    Authenticated(session): Authenticated,
    Path(id): Path<String>,
) -> Result<Json<Calendar>, ApiError> {
    Ok(Json(session.calendar(&id).await?))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventListParams {
    limit: Option<usize>,
    cursor: Option<String>,
    /// Calendar id; default: the default calendar.
    calendar: Option<String>,
    /// Events starting from (ISO 8601 with offset).
    start: Option<String>,
    /// Events ending by (ISO 8601 with offset).
    end: Option<String>,
    subject_contains: Option<String>,
    /// Zone of the times returned (IANA or Windows; default UTC).
    time_zone: Option<String>,
}

/// Events as stored (single events and series masters).
#[utoipa::path(get, path = "/api/v1/users/{id}/events", tag = "calendar",
    params(("id" = String, Path, description = "Mailbox"), EventListParams),
    responses((status = 200, body = Paged<Event>), (status = 400, description = "BAD_USER_INPUT", body = ErrorBody), (status = 403, description = "FORBIDDEN", body = ErrorBody)))]
pub async fn list_events(
    Authenticated(session): Authenticated,
    Path(id): Path<String>,
    Query(p): Query<EventListParams>,
) -> Result<Json<Paged<Event>>, ApiError> {
    let page = session
        .events(
            &id,
            p.calendar.as_deref(),
            p.start.as_deref(),
            p.end.as_deref(),
            p.subject_contains.as_deref(),
            p.time_zone.as_deref(),
            p.limit.unwrap_or(super::DEFAULT_LIMIT),
            p.cursor.as_deref(),
        )
        .await?;
    Ok(Json(paged(page)))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ViewParams {
    /// ISO 8601 with offset.
    start: String,
    /// ISO 8601 with offset; at most 62 days after `start`.
    end: String,
    calendar: Option<String>,
    time_zone: Option<String>,
    limit: Option<usize>,
    cursor: Option<String>,
}

/// The calendar between two instants, recurring series expanded.
#[utoipa::path(get, path = "/api/v1/users/{id}/calendar-view", tag = "calendar",
    params(("id" = String, Path, description = "Mailbox"), ViewParams),
    responses((status = 200, body = Paged<Event>), (status = 400, description = "Bad window or zone (BAD_USER_INPUT)", body = ErrorBody), (status = 403, description = "FORBIDDEN", body = ErrorBody)))]
pub async fn calendar_view(
    Authenticated(session): Authenticated,
    Path(id): Path<String>,
    Query(p): Query<ViewParams>,
) -> Result<Json<Paged<Event>>, ApiError> {
    let page = session
        .calendar_view(
            &id,
            p.calendar.as_deref(),
            &p.start,
            &p.end,
            p.time_zone.as_deref(),
            p.limit.unwrap_or(super::DEFAULT_LIMIT),
            p.cursor.as_deref(),
        )
        .await?;
    Ok(Json(paged(page)))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ZoneParams {
    time_zone: Option<String>,
}

/// One event.
#[utoipa::path(get, path = "/api/v1/users/{id}/events/{event}", tag = "calendar",
    params(("id" = String, Path, description = "Mailbox"), ("event" = String, Path, description = "Event id"), ZoneParams),
    responses((status = 200, body = Event), (status = 404, description = "NOT_FOUND", body = ErrorBody)))]
pub async fn get_event(
    Authenticated(session): Authenticated,
    Path((id, event)): Path<(String, String)>,
    Query(p): Query<ZoneParams>,
) -> Result<Json<Event>, ApiError> {
    Ok(Json(
        session.event(&id, &event, p.time_zone.as_deref()).await?,
    ))
}

/// `POST events` body.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateEventRequest {
    /// Calendar id; default: the default calendar.
    calendar: Option<String>,
    event: EventInput,
}

/// Creates an event; with attendees Exchange sends the invitations.
#[utoipa::path(post, path = "/api/v1/users/{id}/events", tag = "calendar",
    params(("id" = String, Path, description = "Mailbox (the organiser)")),
    request_body = CreateEventRequest,
    responses((status = 201, body = Event), (status = 400, description = "BAD_USER_INPUT", body = ErrorBody), (status = 403, description = "FORBIDDEN", body = ErrorBody)))]
pub async fn create_event(
    Authenticated(session): Authenticated,
    Path(id): Path<String>,
    body: JsonBody<CreateEventRequest>,
) -> Result<(StatusCode, Json<Event>), ApiError> {
    let Json(body) = body.map_err(json_error)?;
    let event = session
        .create_event(&id, body.calendar.as_deref(), &body.event)
        .await?;
    Ok((StatusCode::CREATED, Json(event)))
}

/// Changes an event (only the fields given).
#[utoipa::path(patch, path = "/api/v1/users/{id}/events/{event}", tag = "calendar",
    params(("id" = String, Path, description = "Mailbox"), ("event" = String, Path, description = "Event id")),
    request_body = EventInput,
    responses((status = 200, body = Event), (status = 400, description = "BAD_USER_INPUT", body = ErrorBody), (status = 404, description = "NOT_FOUND", body = ErrorBody)))]
pub async fn update_event(
    Authenticated(session): Authenticated,
    Path((id, event)): Path<(String, String)>,
    body: JsonBody<EventInput>,
) -> Result<Json<Event>, ApiError> {
    let Json(body) = body.map_err(json_error)?;
    Ok(Json(session.update_event(&id, &event, &body).await?))
}

/// Deletes an event.
#[utoipa::path(delete, path = "/api/v1/users/{id}/events/{event}", tag = "calendar",
    params(("id" = String, Path, description = "Mailbox"), ("event" = String, Path, description = "Event id")),
    responses((status = 204, description = "Deleted"), (status = 404, description = "NOT_FOUND", body = ErrorBody)))]
pub async fn delete_event(
    Authenticated(session): Authenticated,
    Path((id, event)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    session.delete_event(&id, &event).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct CancelRequest {
    comment: Option<String>,
}

/// Cancels a meeting the mailbox organises.
#[utoipa::path(post, path = "/api/v1/users/{id}/events/{event}/cancel", tag = "calendar",
    params(("id" = String, Path, description = "Mailbox"), ("event" = String, Path, description = "Event id")),
    request_body = CancelRequest,
    responses((status = 202, description = "Cancelled; attendees are told"), (status = 404, description = "NOT_FOUND", body = ErrorBody)))]
pub async fn cancel_event(
    Authenticated(session): Authenticated,
    Path((id, event)): Path<(String, String)>,
    body: JsonBody<CancelRequest>,
) -> Result<StatusCode, ApiError> {
    let Json(body) = body.map_err(json_error)?;
    session
        .cancel_event(&id, &event, body.comment.as_deref())
        .await?;
    Ok(StatusCode::ACCEPTED)
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RespondRequest {
    response: MeetingResponse,
    comment: Option<String>,
    /// Tell the organiser (default true).
    #[serde(default = "yes")]
    send_response: bool,
}

/// Accepts, tentatively accepts or declines a meeting.
#[utoipa::path(post, path = "/api/v1/users/{id}/events/{event}/respond", tag = "calendar",
    params(("id" = String, Path, description = "Mailbox (the attendee)"), ("event" = String, Path, description = "Event id")),
    request_body = RespondRequest,
    responses((status = 202, description = "Answered"), (status = 400, description = "BAD_USER_INPUT", body = ErrorBody), (status = 404, description = "NOT_FOUND", body = ErrorBody)))]
pub async fn respond_to_event(
    Authenticated(session): Authenticated,
    Path((id, event)): Path<(String, String)>,
    body: JsonBody<RespondRequest>,
) -> Result<StatusCode, ApiError> {
    let Json(body) = body.map_err(json_error)?;
    session
        .respond_to_event(
            &id,
            &event,
            body.response,
            body.comment.as_deref(),
            body.send_response,
        )
        .await?;
    Ok(StatusCode::ACCEPTED)
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScheduleRequest {
    /// Mail addresses (1 to 20).
    users: Vec<String>,
    start: String,
    end: String,
    /// 5 to 1440 (default 30).
    interval_minutes: Option<i32>,
    time_zone: Option<String>,
}

/// Free/busy of up to 20 people.
#[utoipa::path(post, path = "/api/v1/schedule", tag = "calendar",
    request_body = ScheduleRequest,
    responses((status = 200, body = Vec<Schedule>), (status = 400, description = "BAD_USER_INPUT", body = ErrorBody), (status = 403, description = "FORBIDDEN", body = ErrorBody)))]
pub async fn schedule(
    Authenticated(session): Authenticated,
    body: JsonBody<ScheduleRequest>,
) -> Result<Json<Vec<Schedule>>, ApiError> {
    let Json(b) = body.map_err(json_error)?;
    Ok(Json(
        session
            .schedule(
                &b.users,
                &b.start,
                &b.end,
                b.interval_minutes.unwrap_or(30),
                b.time_zone.as_deref(),
            )
            .await?,
    ))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MeetingSlotsRequest {
    attendees: Vec<String>,
    duration_minutes: i32,
    start: String,
    end: String,
    /// Only inside every attendee's working hours (default true).
    #[serde(default = "yes")]
    working_hours_only: bool,
    /// Candidate starts every so many minutes (default 30).
    step_minutes: Option<i32>,
    time_zone: Option<String>,
}

/// Slots in which every attendee is free (and within working hours).
#[utoipa::path(post, path = "/api/v1/meeting-slots", tag = "calendar",
    request_body = MeetingSlotsRequest,
    responses((status = 200, body = Vec<MeetingSlot>), (status = 400, description = "BAD_USER_INPUT", body = ErrorBody), (status = 404, description = "An attendee without free/busy (NOT_FOUND)", body = ErrorBody)))]
pub async fn meeting_slots(
    Authenticated(session): Authenticated,
    body: JsonBody<MeetingSlotsRequest>,
) -> Result<Json<Vec<MeetingSlot>>, ApiError> {
    let Json(b) = body.map_err(json_error)?;
    Ok(Json(
        session
            .find_meeting_slots(
                &b.attendees,
                b.duration_minutes,
                &b.start,
                &b.end,
                b.working_hours_only,
                b.step_minutes.unwrap_or(30),
                b.time_zone.as_deref(),
            )
            .await?,
    ))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ContactListParams {
    limit: Option<usize>,
    cursor: Option<String>,
    /// Contact folder id; default: the default contacts folder.
    folder: Option<String>,
    /// Free text over names, addresses and company.
    search: Option<String>,
}

/// A user's contacts.
#[utoipa::path(get, path = "/api/v1/users/{id}/contacts", tag = "contacts",
    params(("id" = String, Path, description = "Mailbox"), ContactListParams),
    responses((status = 200, body = Paged<Contact>), (status = 403, description = "FORBIDDEN", body = ErrorBody)))]
pub async fn list_contacts(
    Authenticated(session): Authenticated,
    Path(id): Path<String>,
    Query(p): Query<ContactListParams>,
) -> Result<Json<Paged<Contact>>, ApiError> {
    let page = session
        .contacts(
            &id,
            p.folder.as_deref(),
            p.search.as_deref(),
            p.limit.unwrap_or(super::DEFAULT_LIMIT),
            p.cursor.as_deref(),
        )
        .await?;
    Ok(Json(paged(page)))
}

/// One contact.
#[utoipa::path(get, path = "/api/v1/users/{id}/contacts/{contact}", tag = "contacts",
    params(("id" = String, Path, description = "Mailbox"), ("contact" = String, Path, description = "Contact id")),
    responses((status = 200, body = Contact), (status = 404, description = "NOT_FOUND", body = ErrorBody)))]
pub async fn get_contact(
    Authenticated(session): Authenticated,
    Path((id, contact)): Path<(String, String)>,
) -> Result<Json<Contact>, ApiError> {
    Ok(Json(session.contact(&id, &contact).await?))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateContactRequest {
    folder: Option<String>,
    contact: ContactInput,
}

/// Creates a contact.
#[utoipa::path(post, path = "/api/v1/users/{id}/contacts", tag = "contacts",
    params(("id" = String, Path, description = "Mailbox")),
    request_body = CreateContactRequest,
    responses((status = 201, body = Contact), (status = 400, description = "BAD_USER_INPUT", body = ErrorBody)))]
pub async fn create_contact(
    Authenticated(session): Authenticated,
    Path(id): Path<String>,
    body: JsonBody<CreateContactRequest>,
) -> Result<(StatusCode, Json<Contact>), ApiError> {
    let Json(b) = body.map_err(json_error)?;
    let contact = session
        .create_contact(&id, b.folder.as_deref(), &b.contact)
        .await?;
    Ok((StatusCode::CREATED, Json(contact)))
}

/// Changes a contact (only the fields given).
#[utoipa::path(patch, path = "/api/v1/users/{id}/contacts/{contact}", tag = "contacts",
    params(("id" = String, Path, description = "Mailbox"), ("contact" = String, Path, description = "Contact id")),
    request_body = ContactInput,
    responses((status = 200, body = Contact), (status = 400, description = "BAD_USER_INPUT", body = ErrorBody), (status = 404, description = "NOT_FOUND", body = ErrorBody)))]
pub async fn update_contact(
    Authenticated(session): Authenticated,
    Path((id, contact)): Path<(String, String)>,
    body: JsonBody<ContactInput>,
) -> Result<Json<Contact>, ApiError> {
    let Json(b) = body.map_err(json_error)?;
    Ok(Json(session.update_contact(&id, &contact, &b).await?))
}

/// Deletes a contact.
#[utoipa::path(delete, path = "/api/v1/users/{id}/contacts/{contact}", tag = "contacts",
    params(("id" = String, Path, description = "Mailbox"), ("contact" = String, Path, description = "Contact id")),
    responses((status = 204, description = "Deleted"), (status = 404, description = "NOT_FOUND", body = ErrorBody)))]
pub async fn delete_contact(
    Authenticated(session): Authenticated,
    Path((id, contact)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    session.delete_contact(&id, &contact).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A user's contact folders.
#[utoipa::path(get, path = "/api/v1/users/{id}/contact-folders", tag = "contacts",
    params(("id" = String, Path, description = "Mailbox"), PageParams),
    responses((status = 200, body = Paged<ContactFolder>), (status = 403, description = "FORBIDDEN", body = ErrorBody)))]
pub async fn list_contact_folders(
    Authenticated(session): Authenticated,
    Path(id): Path<String>,
    Query(p): Query<PageParams>,
) -> Result<Json<Paged<ContactFolder>>, ApiError> {
    let page = session.contact_folders(&id, p.limit(), p.cursor()).await?;
    Ok(Json(paged(page)))
}
