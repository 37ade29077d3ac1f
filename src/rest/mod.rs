//! The REST transport under `/api/v1`, its OpenAPI document, and the one mapping of
//! service errors to HTTP statuses.

mod calendar;
pub mod connect;
mod directory;
pub(crate) mod files;
mod mail;
mod subscriptions;
mod webhooks;

use axum::extract::{FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::openapi::path::{Operation, PathItem};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
use utoipa::{IntoParams, Modify, OpenApi, ToSchema};

use crate::app::AppState;
use crate::auth::AuthError;
use crate::service::files::ItemOrder;
use crate::service::mail::MessageOrder;
use crate::service::{Page, ServiceError, Session};

pub fn router() -> Router<AppState> {
    Router::new()
        .nest(
            "/api/v1",
            directory::router()
                .merge(mail::router())
                .merge(calendar::router())
                .merge(files::router())
                .merge(connect::api_router())
                .merge(subscriptions::router())
                .merge(webhooks::router())
                .fallback(|| async {
                    ApiError::from(ServiceError::NotFound("no such route".into()))
                }),
        )
        .layer(axum::middleware::from_fn(render_errors))
}

/// The OpenAPI document checked in as `openapi.yaml`.
pub fn openapi_yaml() -> String {
    ApiDoc::openapi()
        .to_yaml()
        .expect("the OpenAPI document serializes")
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "m365-gateway REST API",
        description = "Microsoft 365 through one door: directory (users, managers, reports, groups), mail, calendar, contacts and files (OneDrive, SharePoint). \
                       Every route needs `Authorization: Bearer <token>`; errors share one body shape.",
        version = "1"
    ),
    paths(
        directory::list_users,
        directory::get_user,
        directory::get_manager,
        directory::list_direct_reports,
        directory::list_member_of,
        directory::get_group,
        directory::list_group_members,
        mail::list_mail_folders,
        mail::get_mail_folder,
        mail::list_child_folders,
        mail::list_messages,
        mail::get_message,
        mail::list_attachments,
        mail::attachment_content,
        mail::messages_delta,
        mail::send_mail,
        mail::create_draft,
        mail::update_draft,
        mail::send_draft,
        mail::update_message,
        mail::delete_message,
        mail::reply,
        mail::reply_all,
        mail::forward,
        mail::move_message,
        calendar::list_calendars,
        calendar::get_calendar,
        calendar::list_events,
        calendar::calendar_view,
        calendar::get_event,
        calendar::create_event,
        calendar::update_event,
        calendar::delete_event,
        calendar::cancel_event,
        calendar::respond_to_event,
        calendar::schedule,
        calendar::meeting_slots,
        calendar::list_contacts,
        calendar::get_contact,
        calendar::create_contact,
        calendar::update_contact,
        calendar::delete_contact,
        calendar::list_contact_folders,
        files::search_sites,
        files::get_site,
        files::get_drive,
        files::get_root,
        files::get_item,
        files::list_root_children,
        files::list_children,
        files::get_by_path,
        files::upload,
        files::download,
        files::download_link,
        files::create_root_folder,
        files::create_folder,
        files::update_item,
        files::delete_item,
        files::copy_item,
        files::drive_delta,
        connect::list_connections,
        connect::create_connect_link,
        connect::revoke_connection,
        subscriptions::create_subscription,
        subscriptions::list_subscriptions,
        subscriptions::get_subscription,
        subscriptions::delete_subscription,
        subscriptions::list_events,
        webhooks::create_webhook,
        webhooks::list_webhooks,
        webhooks::delete_webhook,
        webhooks::list_deliveries,
        webhooks::replay_delivery,
        webhooks::replay_dead,
    ),
    // Enums used only as query parameters are referred to by name but not collected by
    // utoipa; without them here the references point nowhere.
    components(schemas(ErrorBody, ErrorDetail, ItemOrder, MessageOrder)),
    modifiers(&BearerAuth, &CommonResponses),
    security(("bearer" = []))
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

/// What every route answers or OpenAPI requires, added to each operation once rather than
/// repeated in every annotation (an annotation's own entry for a status is kept):
///
/// - 400 `BAD_USER_INPUT`: a malformed path segment, query string, header or body is refused
///   before the handler runs (`render_errors` gives axum's rejections the error body).
/// - 401 `UNAUTHENTICATED` and 403 `FORBIDDEN` on every route that takes a bearer token:
///   no or a bad token, and an operation or resource outside the caller's policy; and 429
///   `RATE_LIMITED` there too: the caller's own rate limit.
/// - 404 `NOT_FOUND` on every route that names something in its path.
/// - A description on every response: OpenAPI requires one, and utoipa leaves it out when
///   the annotation gives none, so the status's reason phrase stands in.
struct CommonResponses;

impl Modify for CommonResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for (path, item) in openapi.paths.paths.iter_mut() {
            let names_something = path.contains('{');
            for operation in operations_mut(item) {
                // `security(())` in an annotation, one empty requirement: no token taken.
                let takes_token = !operation
                    .security
                    .as_ref()
                    .is_some_and(|s| s.contains(&SecurityRequirement::default()));
                let mut common = vec![(StatusCode::BAD_REQUEST, "BAD_USER_INPUT")];
                if takes_token {
                    common.push((StatusCode::UNAUTHORIZED, "UNAUTHENTICATED"));
                    common.push((StatusCode::FORBIDDEN, "FORBIDDEN"));
                    common.push((StatusCode::TOO_MANY_REQUESTS, "RATE_LIMITED"));
                }
                if names_something {
                    common.push((StatusCode::NOT_FOUND, "NOT_FOUND"));
                }
                let responses = &mut operation.responses.responses;
                for (status, code) in common {
                    responses
                        .entry(status.as_str().to_owned())
                        .or_insert_with(|| error_response_doc(code));
                }
                for (status, response) in responses.iter_mut() {
                    if let RefOr::T(response) = response
                        && response.description.is_empty()
                    {
                        response.description = status
                            .parse::<u16>()
                            .ok()
                            .and_then(|s| StatusCode::from_u16(s).ok())
                            .and_then(|s| s.canonical_reason())
                            .unwrap_or("Response")
                            .to_owned();
                    }
                }
            }
        }
    }
}

/// Every operation of a path, whatever its method.
fn operations_mut(item: &mut PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        &mut item.get,
        &mut item.put,
        &mut item.post,
        &mut item.delete,
        &mut item.options,
        &mut item.head,
        &mut item.patch,
        &mut item.trace,
        &mut item.query,
    ]
    .into_iter()
    .flatten()
    .chain(item.additional_operations.values_mut())
}

/// A documented error answer: the code as its description, the error body as JSON.
fn error_response_doc(code: &str) -> RefOr<utoipa::openapi::Response> {
    ResponseBuilder::new()
        .description(code)
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("ErrorBody")))
                .build(),
        )
        .build()
        .into()
}

/// Page size of lists when `limit` is not given.
const DEFAULT_LIMIT: usize = 25;

/// Paging of list routes.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageParams {
    /// Page size, 1 to 100 (default 25).
    limit: Option<usize>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
}

impl PageParams {
    fn limit(&self) -> usize {
        self.limit.unwrap_or(DEFAULT_LIMIT)
    }

    fn cursor(&self) -> Option<&str> {
        self.cursor.as_deref()
    }
}

/// A page of items with the cursor of the next one.
#[derive(Serialize, ToSchema)]
pub struct Paged<T> {
    data: Vec<T>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    next_cursor: Option<String>,
}

fn paged<T>(page: Page<T>) -> Paged<T> {
    let next_cursor = page.has_next.then(|| page.end_cursor()).flatten();
    Paged {
        data: page.items.into_iter().map(|(item, _)| item).collect(),
        next_cursor,
    }
}

/// A JSON body, or axum's reason for refusing it (turned into `BAD_USER_INPUT`).
type JsonBody<T> = Result<Json<T>, axum::extract::rejection::JsonRejection>;

fn json_error(e: impl std::fmt::Display) -> ApiError {
    ServiceError::BadInput(format!("invalid JSON body: {e}")).into()
}

/// serde default for flags that are on unless the caller says otherwise.
fn yes() -> bool {
    true
}

/// Every REST error has this body.
#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Serialize, ToSchema, Default)]
pub struct ErrorDetail {
    /// Stable code: UNAUTHENTICATED, FORBIDDEN, NOT_FOUND, BAD_USER_INPUT, CLAIMS_CHALLENGE,
    /// CONSENT_REQUIRED, RECONNECT_REQUIRED, UPSTREAM_THROTTLED, UPSTREAM_ERROR,
    /// UPSTREAM_TIMEOUT, UPSTREAM_TIMEOUT_UNKNOWN_OUTCOME, UPSTREAM_BAD_RESPONSE, SYNC_RESET,
    /// UNAVAILABLE, INTERNAL, METHOD_NOT_ALLOWED, PAYLOAD_TOO_LARGE, TIMEOUT, CONFLICT,
    /// PRECONDITION_FAILED, INSUFFICIENT_STORAGE, RANGE_NOT_SATISFIABLE.
    code: String,
    message: String,
    /// The `x-request-id` of the request, for support.
    request_id: String,
    /// CLAIMS_CHALLENGE: base64 claims request to pass to Entra ID's authorize endpoint.
    #[serde(skip_serializing_if = "Option::is_none")]
    claims: Option<String>,
    /// CONSENT_REQUIRED: where an administrator grants the gateway's permissions.
    #[serde(skip_serializing_if = "Option::is_none")]
    consent_url: Option<String>,
    /// RECONNECT_REQUIRED: the browser link that connects the user again.
    #[serde(skip_serializing_if = "Option::is_none")]
    connect_url: Option<String>,
}

/// A service error on its way out of a handler; [`render_errors`] turns it into the body.
pub struct ApiError {
    error: ServiceError,
    /// `WWW-Authenticate` for a 401 (RFC 6750 distinguishes "no token" from "bad token").
    challenge: Option<&'static str>,
}

impl From<ServiceError> for ApiError {
    fn from(error: ServiceError) -> Self {
        ApiError {
            error,
            challenge: None,
        }
    }
}

impl ApiError {
    /// 401 with the RFC 6750 header that fits the failure.
    fn unauthenticated(reason: &AuthError) -> Self {
        ApiError {
            error: ServiceError::Unauthenticated,
            challenge: Some(reason.www_authenticate()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = StatusCode::INTERNAL_SERVER_ERROR.into_response();
        if let Some(challenge) = self.challenge {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(challenge),
            );
        }
        response.extensions_mut().insert(self.error);
        response
    }
}

/// The one place a service error becomes an HTTP status.
pub(crate) fn status_of(error: &ServiceError) -> StatusCode {
    match error {
        ServiceError::Unauthenticated => StatusCode::UNAUTHORIZED,
        ServiceError::Forbidden(_) => StatusCode::FORBIDDEN,
        ServiceError::NotFound(_) => StatusCode::NOT_FOUND,
        ServiceError::BadInput(_) => StatusCode::BAD_REQUEST,
        ServiceError::ClaimsChallenge { .. } => StatusCode::UNAUTHORIZED,
        ServiceError::ConsentRequired { .. } => StatusCode::FORBIDDEN,
        ServiceError::ReconnectRequired { .. } => StatusCode::FORBIDDEN,
        ServiceError::UpstreamThrottled { .. } => StatusCode::SERVICE_UNAVAILABLE,
        ServiceError::Upstream => StatusCode::BAD_GATEWAY,
        ServiceError::UpstreamTimeout => StatusCode::GATEWAY_TIMEOUT,
        ServiceError::UpstreamOutcomeUnknown => StatusCode::GATEWAY_TIMEOUT,
        ServiceError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
        ServiceError::SyncReset(_) => StatusCode::GONE,
        ServiceError::Conflict(_) => StatusCode::CONFLICT,
        ServiceError::PreconditionFailed(_) => StatusCode::PRECONDITION_FAILED,
        ServiceError::InsufficientStorage(_) => StatusCode::INSUFFICIENT_STORAGE,
        ServiceError::RangeNotSatisfiable { .. } => StatusCode::RANGE_NOT_SATISFIABLE,
        ServiceError::UpstreamBadResponse => StatusCode::BAD_GATEWAY,
        ServiceError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        ServiceError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        ServiceError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
    }
}

fn error_response(status: StatusCode, detail: ErrorDetail) -> Response {
    (status, Json(ErrorBody { error: detail })).into_response()
}

/// Renders every error of the REST routes in the one body shape, with the request id:
/// service errors, and axum's own plain-text rejections (bad query string, unknown route,
/// wrong method) so a caller never has to parse two formats.
async fn render_errors(request: Request, next: Next) -> Response {
    let request_id = request
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let response = next.run(request).await;
    if let Some(error) = response.extensions().get::<ServiceError>().cloned() {
        let www_authenticate = response.headers().get(header::WWW_AUTHENTICATE).cloned();
        let mut detail = ErrorDetail {
            code: error.code().to_owned(),
            message: error.to_string(),
            request_id,
            ..Default::default()
        };
        match &error {
            ServiceError::ClaimsChallenge { claims, .. } => detail.claims = Some(claims.clone()),
            ServiceError::ConsentRequired { consent_url } => {
                detail.consent_url = Some(consent_url.clone())
            }
            ServiceError::ReconnectRequired { connect_url } => {
                detail.connect_url = Some(connect_url.clone())
            }
            _ => {}
        }
        let mut rendered = error_response(status_of(&error), detail);
        match &error {
            ServiceError::Unauthenticated => {
                rendered.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    www_authenticate.unwrap_or(HeaderValue::from_static("Bearer")),
                );
            }
            ServiceError::ClaimsChallenge {
                claims,
                authorization_uri,
            } => {
                // One header with every parameter, as the claims-challenge protocol requires.
                let value = format!(
                    "Bearer realm=\"\", authorization_uri=\"{authorization_uri}\", error=\"insufficient_claims\", claims=\"{claims}\""
                );
                if let Ok(value) = HeaderValue::from_str(&value) {
                    rendered
                        .headers_mut()
                        .insert(header::WWW_AUTHENTICATE, value);
                }
            }
            ServiceError::RangeNotSatisfiable { size: Some(size) } => {
                if let Ok(value) = HeaderValue::from_str(&format!("bytes */{size}")) {
                    rendered.headers_mut().insert(header::CONTENT_RANGE, value);
                }
            }
            ServiceError::UpstreamThrottled {
                retry_after: Some(after),
            }
            | ServiceError::RateLimited { retry_after: after } => {
                let seconds = after.as_secs_f64().ceil().max(1.0) as u64;
                if let Ok(value) = HeaderValue::from_str(&seconds.to_string()) {
                    rendered.headers_mut().insert(header::RETRY_AFTER, value);
                }
            }
            _ => {}
        }
        return rendered;
    }
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if status.is_success() || is_json || !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let (code, fallback) = match status {
        StatusCode::NOT_FOUND => ("NOT_FOUND", "no such route"),
        StatusCode::METHOD_NOT_ALLOWED => {
            ("METHOD_NOT_ALLOWED", "method not allowed on this route")
        }
        StatusCode::PAYLOAD_TOO_LARGE => ("PAYLOAD_TOO_LARGE", "request body too large"),
        StatusCode::REQUEST_TIMEOUT => ("TIMEOUT", "the request took too long"),
        s if s.is_client_error() => ("BAD_USER_INPUT", "invalid request"),
        _ => ("INTERNAL", "internal error"),
    };
    // axum's rejection texts describe the caller's input (e.g. which query parameter
    // failed to parse); 5xx texts are never passed on.
    let message = if status.is_client_error() {
        let bytes = axum::body::to_bytes(response.into_body(), 4096)
            .await
            .unwrap_or_default();
        let text = String::from_utf8_lossy(&bytes).trim().to_owned();
        if text.is_empty() {
            fallback.to_owned()
        } else {
            text
        }
    } else {
        fallback.to_owned()
    };
    error_response(
        status,
        ErrorDetail {
            code: code.to_owned(),
            message,
            request_id,
            ..Default::default()
        },
    )
}

/// A request from an authenticated caller, as a service session.
pub struct Authenticated(pub Session);

impl FromRequestParts<AppState> for Authenticated {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let caller = caller_of(parts, state).await?;
        Ok(Authenticated(
            Session::open_with_timeout(&state.services, caller, requested_timeout(&parts.headers))
                .await?,
        ))
    }
}

/// As [`Authenticated`], for a file upload: the session may last `files.transfer_timeout`.
pub struct AuthenticatedTransfer(pub Session);

impl FromRequestParts<AppState> for AuthenticatedTransfer {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let caller = caller_of(parts, state).await?;
        Ok(AuthenticatedTransfer(
            Session::open_for_transfer(&state.services, caller).await?,
        ))
    }
}

async fn caller_of(parts: &Parts, state: &AppState) -> Result<crate::auth::Caller, ApiError> {
    let auth = state.auth.load_full();
    match auth.authenticate(&parts.headers).await {
        Ok(caller) => {
            crate::telemetry::record_caller(&caller.name);
            state
                .rate
                .check(&caller.name, crate::rate_limit::Kind::Requests, 1)
                .await
                .map_err(|retry_after| ServiceError::RateLimited { retry_after })?;
            Ok(caller)
        }
        Err(AuthError::Duplicate) => {
            Err(ServiceError::BadInput("send exactly one Authorization header".into()).into())
        }
        Err(reason) => {
            tracing::debug!(%reason, "REST request refused");
            Err(ApiError::unauthenticated(&reason))
        }
    }
}

/// Header with which a caller asks for a shorter deadline than the configured one, in
/// seconds (e.g. `X-Request-Timeout: 2.5`); it can only shorten, never lengthen.
pub const REQUEST_TIMEOUT_HEADER: &str = "x-request-timeout";

/// The caller's requested timeout, when the header holds a sane number of seconds.
pub(crate) fn requested_timeout(headers: &axum::http::HeaderMap) -> Option<std::time::Duration> {
    let seconds: f64 = headers
        .get(REQUEST_TIMEOUT_HEADER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    (seconds.is_finite() && seconds > 0.0)
        .then(|| std::time::Duration::from_secs_f64(seconds.min(3600.0)))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// One row per service error: the REST column of the table in docs/architecture.md.
    #[test]
    fn every_service_error_has_its_documented_status() {
        let rows = [
            (ServiceError::Unauthenticated, 401),
            (ServiceError::Forbidden("x".into()), 403),
            (ServiceError::NotFound("x".into()), 404),
            (ServiceError::BadInput("x".into()), 400),
            (
                ServiceError::ClaimsChallenge {
                    claims: "e30=".into(),
                    authorization_uri: "u".into(),
                },
                401,
            ),
            (
                ServiceError::ConsentRequired {
                    consent_url: "u".into(),
                },
                403,
            ),
            (
                ServiceError::ReconnectRequired {
                    connect_url: "u".into(),
                },
                403,
            ),
            (
                ServiceError::UpstreamThrottled {
                    retry_after: Some(Duration::from_secs(2)),
                },
                503,
            ),
            (ServiceError::Upstream, 502),
            (
                ServiceError::RateLimited {
                    retry_after: Duration::from_secs(1),
                },
                429,
            ),
            (ServiceError::UpstreamTimeout, 504),
            (ServiceError::UpstreamOutcomeUnknown, 504),
            (ServiceError::PayloadTooLarge("x".into()), 413),
            (ServiceError::SyncReset("x".into()), 410),
            (ServiceError::Conflict("x".into()), 409),
            (ServiceError::PreconditionFailed("x".into()), 412),
            (ServiceError::InsufficientStorage("x".into()), 507),
            (ServiceError::RangeNotSatisfiable { size: None }, 416),
            (ServiceError::UpstreamBadResponse, 502),
            (ServiceError::Unavailable("x".into()), 503),
            (ServiceError::Internal, 500),
        ];
        for (error, status) in rows {
            assert_eq!(status_of(&error).as_u16(), status, "{error:?}");
        }
    }
}
