//! The REST transport under `/api/v1`, its OpenAPI document, and the one mapping of
//! service errors to HTTP statuses.

mod directory;

use axum::extract::{FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use serde::Serialize;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

use crate::app::AppState;
use crate::service::{ServiceError, Session};

pub fn router() -> Router<AppState> {
    Router::new()
        .nest(
            "/api/v1",
            directory::router()
                .fallback(|| async { ApiError(ServiceError::NotFound("no such route".into())) }),
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
        description = "Microsoft 365 through one door: directory (users, managers, reports, groups). \
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
    ),
    components(schemas(ErrorBody, ErrorDetail)),
    modifiers(&BearerAuth),
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

/// Every REST error has this body.
#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable code: UNAUTHENTICATED, FORBIDDEN, NOT_FOUND, BAD_USER_INPUT,
    /// UPSTREAM_THROTTLED, UPSTREAM_ERROR, INTERNAL, METHOD_NOT_ALLOWED, PAYLOAD_TOO_LARGE, TIMEOUT.
    code: String,
    message: String,
    /// The `x-request-id` of the request, for support.
    request_id: String,
}

/// A service error on its way out of a handler; [`render_errors`] turns it into the body.
pub struct ApiError(pub ServiceError);

impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> Self {
        ApiError(e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = StatusCode::INTERNAL_SERVER_ERROR.into_response();
        response.extensions_mut().insert(self.0);
        response
    }
}

/// The one place a service error becomes an HTTP status.
fn status_of(error: &ServiceError) -> StatusCode {
    match error {
        ServiceError::Unauthenticated => StatusCode::UNAUTHORIZED,
        ServiceError::Forbidden(_) => StatusCode::FORBIDDEN,
        ServiceError::NotFound(_) => StatusCode::NOT_FOUND,
        ServiceError::BadInput(_) => StatusCode::BAD_REQUEST,
        ServiceError::UpstreamThrottled { .. } => StatusCode::SERVICE_UNAVAILABLE,
        ServiceError::Upstream => StatusCode::BAD_GATEWAY,
        ServiceError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

fn error_response(status: StatusCode, code: &str, message: String, request_id: String) -> Response {
    let body = ErrorBody {
        error: ErrorDetail {
            code: code.to_owned(),
            message,
            request_id,
        },
    };
    (status, Json(body)).into_response()
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
        let mut rendered = error_response(
            status_of(&error),
            error.code(),
            error.to_string(),
            request_id,
        );
        match &error {
            ServiceError::Unauthenticated => {
                rendered
                    .headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            ServiceError::UpstreamThrottled {
                retry_after: Some(after),
            } => {
                let seconds = after.as_secs_f64().ceil() as u64;
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
    error_response(status, code, message, request_id)
}

/// A request from an authenticated caller, as a service session.
pub struct Authenticated(pub Session);

impl FromRequestParts<AppState> for Authenticated {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        match state.auth.authenticate(&parts.headers).await {
            Ok(caller) => Ok(Authenticated(Session::new(&state.services, caller))),
            Err(reason) => {
                tracing::debug!(%reason, "REST request refused");
                Err(ApiError(ServiceError::Unauthenticated))
            }
        }
    }
}
