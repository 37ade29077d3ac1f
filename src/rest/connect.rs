//! The connect flow in the browser (`/auth/connect`, `/auth/callback`) and the API a
//! `connected` caller uses to manage its users (`/api/v1/connections`).

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{delete, get};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{ApiError, ErrorBody};
use crate::app::AppState;
use crate::config::CallerMode;
use crate::service::{ServiceError, connect};

/// Cookie that binds the callback to the browser that started the flow (login CSRF).
const STATE_COOKIE: &str = "m365gw_connect";

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/auth/connect", get(start))
        .route("/auth/callback", get(callback))
}

pub fn api_router() -> Router<AppState> {
    Router::new()
        .route(
            "/connections",
            get(list_connections).post(create_connect_link),
        )
        .route("/connections/{user}", delete(revoke_connection))
}

#[derive(Deserialize)]
struct StartParams {
    caller: String,
    login_hint: Option<String>,
}

/// Sends the browser to Entra ID's sign-in with PKCE and a fresh `state`.
async fn start(State(state): State<AppState>, Query(params): Query<StartParams>) -> Response {
    let caller = state.auth.load().configured_caller(&params.caller);
    let Some(caller) = caller.filter(|c| c.mode == CallerMode::Connected) else {
        return page(
            StatusCode::BAD_REQUEST,
            "Unknown connection",
            "This link does not belong to an application that accepts connected accounts.",
        );
    };
    match connect::start(
        &state.services,
        &caller.name,
        &caller.scopes,
        params.login_hint,
    )
    .await
    {
        Ok((authorize_url, flow_state)) => {
            let secure = if state.services.public_url.scheme() == "https" {
                "; Secure"
            } else {
                ""
            };
            let cookie = format!(
                "{STATE_COOKIE}={flow_state}; Path=/auth; Max-Age={}; HttpOnly; SameSite=Lax{secure}",
                connect::CONNECT_LIFETIME.as_secs()
            );
            let mut response = StatusCode::FOUND.into_response();
            let headers = response.headers_mut();
            if let (Ok(location), Ok(cookie)) = (
                HeaderValue::from_str(&authorize_url),
                HeaderValue::from_str(&cookie),
            ) {
                headers.insert(header::LOCATION, location);
                headers.insert(header::SET_COOKIE, cookie);
                headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
                response
            } else {
                page(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Cannot connect",
                    "The sign-in link could not be built.",
                )
            }
        }
        Err(e) => service_page(&e),
    }
}

#[derive(Deserialize)]
struct CallbackParams {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

/// Entra ID's redirect back: redeems the code and stores the grant.
async fn callback(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(params): Query<CallbackParams>,
) -> Response {
    if let Some(error) = params.error {
        tracing::info!(%error, description = params.error_description.as_deref().unwrap_or(""), "connect flow ended with an error");
        let message = match error.as_str() {
            "consent_required" => {
                "Your administrator must first grant this application's permissions."
            }
            "interaction_required" => {
                "Microsoft Entra ID needs you to complete an extra sign-in step (for example MFA). Start again."
            }
            "access_denied" => "You declined the request. Nothing was connected.",
            _ => "Microsoft Entra ID did not complete the sign-in. Start again.",
        };
        return page(StatusCode::BAD_REQUEST, "Not connected", message);
    }
    let (Some(code), Some(flow_state)) = (params.code, params.state) else {
        return page(
            StatusCode::BAD_REQUEST,
            "Not connected",
            "The sign-in answer is incomplete. Start again.",
        );
    };
    if cookie(&headers, STATE_COOKIE).as_deref() != Some(flow_state.as_str()) {
        return page(
            StatusCode::BAD_REQUEST,
            "Not connected",
            "This sign-in was not started in this browser. Start again from the link you were given.",
        );
    }
    let auth = state.auth.load_full();
    match connect::finish(&state.services, &flow_state, &code, |name| {
        auth.configured_caller(name)
    })
    .await
    {
        Ok((caller, user)) => {
            tracing::info!(%caller, user = %user.user_id, "user connected");
            page(
                StatusCode::OK,
                "Connected",
                &format!(
                    "{} is now connected to {}. You can close this window.",
                    html_escape(&user.user_principal_name),
                    html_escape(&caller)
                ),
            )
        }
        Err(e) => service_page(&e),
    }
}

fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.to_owned())
}

fn service_page(error: &ServiceError) -> Response {
    let status = super::status_of(error);
    page(status, "Not connected", &html_escape(&error.to_string()))
}

/// A minimal self-contained page (the user lands here in a browser).
fn page(status: StatusCode, title: &str, message: &str) -> Response {
    let body = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{title}</title></head>\
         <body style=\"font-family:sans-serif;max-width:40em;margin:4em auto\"><h1>{title}</h1><p>{message}</p></body></html>"
    );
    let mut response = (status, Html(body)).into_response();
    response.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'"),
    );
    response
}

fn html_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A user connected to the calling application (no secrets).
#[derive(Serialize, ToSchema)]
pub struct Connection {
    user_id: String,
    user_principal_name: String,
    scopes: Vec<String>,
    #[schema(value_type = String, format = DateTime)]
    created_at: String,
    #[schema(value_type = String, format = DateTime)]
    updated_at: String,
    revoked: bool,
}

#[derive(Serialize, ToSchema)]
pub struct ConnectionList {
    data: Vec<Connection>,
}

fn rfc3339(t: time::OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// An authenticated `connected` caller, without opening a session for a user (connection
/// management is about the caller's users, not on behalf of one).
pub struct ConnectedCaller(crate::auth::Caller);

impl axum::extract::FromRequestParts<AppState> for ConnectedCaller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let auth = state.auth.load_full();
        let caller = auth.authenticate(&parts.headers).await.map_err(|reason| {
            tracing::debug!(%reason, "REST request refused");
            ApiError::unauthenticated(&reason)
        })?;
        if caller.mode != CallerMode::Connected {
            return Err(ServiceError::Forbidden(
                "only callers in 'connected' mode have connections".into(),
            )
            .into());
        }
        Ok(ConnectedCaller(caller))
    }
}

/// The users connected to the calling application.
#[utoipa::path(get, path = "/api/v1/connections", tag = "connections",
    responses(
        (status = 200, body = ConnectionList),
        (status = 401, description = "UNAUTHENTICATED", body = ErrorBody),
        (status = 403, description = "Not a connected-mode caller (FORBIDDEN)", body = ErrorBody),
        (status = 503, description = "Store unavailable (UNAVAILABLE)", body = ErrorBody),
    ))]
pub async fn list_connections(
    State(state): State<AppState>,
    ConnectedCaller(caller): ConnectedCaller,
) -> Result<Json<ConnectionList>, ApiError> {
    let accounts = connect::list(&state.services, &caller.name).await?;
    Ok(Json(ConnectionList {
        data: accounts
            .into_iter()
            .map(|a| Connection {
                user_id: a.user_id,
                user_principal_name: a.user_principal_name,
                scopes: a.scopes,
                created_at: rfc3339(a.created_at),
                updated_at: rfc3339(a.updated_at),
                revoked: a.revoked,
            })
            .collect(),
    }))
}

#[derive(Deserialize, ToSchema, IntoParams, Default)]
pub struct ConnectLinkRequest {
    /// UPN of the user expected to sign in (pre-fills Entra ID's sign-in).
    login_hint: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct ConnectLink {
    /// Give this link to the user; it starts the sign-in in their browser.
    connect_url: String,
}

/// A link a user opens to connect their account to the calling application.
#[utoipa::path(post, path = "/api/v1/connections", tag = "connections",
    request_body(content = ConnectLinkRequest, description = "Optional login hint"),
    responses(
        (status = 200, body = ConnectLink),
        (status = 401, description = "UNAUTHENTICATED", body = ErrorBody),
        (status = 403, description = "Not a connected-mode caller (FORBIDDEN)", body = ErrorBody),
    ))]
pub async fn create_connect_link(
    State(state): State<AppState>,
    ConnectedCaller(caller): ConnectedCaller,
    body: Option<Json<ConnectLinkRequest>>,
) -> Json<ConnectLink> {
    let hint = body.and_then(|Json(b)| b.login_hint);
    Json(ConnectLink {
        connect_url: connect::connect_url(
            &state.services.public_url,
            &caller.name,
            hint.as_deref(),
        ),
    })
}

/// Revokes a connected user's grant (the stored refresh token is dropped).
#[utoipa::path(delete, path = "/api/v1/connections/{user}", tag = "connections",
    params(("user" = String, Path, description = "Object id or user principal name")),
    responses(
        (status = 204, description = "Revoked"),
        (status = 404, description = "No such connection (NOT_FOUND)", body = ErrorBody),
        (status = 401, description = "UNAUTHENTICATED", body = ErrorBody),
        (status = 403, description = "FORBIDDEN", body = ErrorBody),
    ))]
pub async fn revoke_connection(
    State(state): State<AppState>,
    ConnectedCaller(caller): ConnectedCaller,
    Path(user): Path<String>,
) -> Result<StatusCode, ApiError> {
    if connect::revoke(&state.services, &caller.name, &user).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ServiceError::NotFound(format!("no connection for user '{user}'")).into())
    }
}
