//! The Graph side: `/v1.0/...`. One dispatcher (`execute`) serves direct HTTP calls and
//! `$batch` items alike, so both get the same authentication, permission checks, query
//! validation and error bodies.

mod auth;
mod batch;
mod collection;
mod directory;
mod errors;
mod filter;
mod query;
mod routes;
mod schema;
mod search;

use std::future::Future;
use std::pin::Pin;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use crate::Emulator;
use crate::admin::RecordedRequest;
use auth::Principal;
use errors::GraphError;
use query::QueryOptions;
use routes::Route;

/// The content type Graph sends with JSON bodies (errors included).
pub(crate) const JSON_CONTENT_TYPE: &str = "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8";

const WWW_AUTHENTICATE: &str = "Bearer realm=\"\", authorization_uri=\"https://login.microsoftonline.com/common/oauth2/authorize\", client_id=\"00000003-0000-0000-c000-000000000000\"";

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// A Graph request, from HTTP or from a `$batch` item.
#[derive(Clone, Debug)]
pub(crate) struct GraphRequest {
    pub method: Method,
    /// The raw (still percent-encoded) path below `/v1.0`, e.g. `/users/a%40b.example`.
    pub path: String,
    pub query: Option<String>,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// `http://host:port`, for absolute `@odata.nextLink`s.
    pub base_url: String,
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Payload {
    Json(Value),
    Text(String),
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) struct GraphResponse {
    pub status: StatusCode,
    pub payload: Payload,
}

impl GraphResponse {
    pub fn json(body: Value) -> Self {
        GraphResponse {
            status: StatusCode::OK,
            payload: Payload::Json(body),
        }
    }

    pub fn text(body: String) -> Self {
        GraphResponse {
            status: StatusCode::OK,
            payload: Payload::Text(body),
        }
    }

    fn error(err: &GraphError, request_id: &str, client_request_id: &str) -> Self {
        GraphResponse {
            status: err.status,
            payload: Payload::Json(err.body(request_id, client_request_id)),
        }
    }

    fn content_type(&self) -> &'static str {
        match self.payload {
            Payload::Json(_) => JSON_CONTENT_TYPE,
            Payload::Text(_) => "text/plain",
        }
    }
}

/// The result of executing one Graph request.
pub(crate) struct Outcome {
    pub response: GraphResponse,
    /// `"GET /users/{id}"`, the stats key.
    pub route: String,
    pub request_id: String,
    pub client_request_id: String,
}

/// What a handler sees of the request.
pub(crate) struct Ctx<'a> {
    /// Raw path below `/v1.0`, used for nextLinks and to bind page tokens.
    pub path: &'a str,
    pub opts: QueryOptions,
    /// `ConsistencyLevel: eventual` was sent.
    pub eventual: bool,
    pub base_url: &'a str,
    pub principal: &'a Principal,
}

/// Runs one Graph request end to end. `in_batch` forbids a nested `$batch`.
pub(crate) async fn execute(emulator: Emulator, req: GraphRequest, in_batch: bool) -> Outcome {
    let request_id = uuid::Uuid::new_v4().to_string();
    let client_request_id = req
        .headers
        .get("client-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty() && v.len() <= 256)
        .map(str::to_string)
        .unwrap_or_else(|| request_id.clone());
    let route = routes::resolve(&req.path);
    let route_key = format!(
        "{} {}",
        req.method,
        route
            .as_ref()
            .map_or_else(|_| "(unmatched)".to_string(), Route::template)
    );
    let result = match admit(&emulator, &req, route) {
        Err(err) => Err(err),
        Ok((Route::Batch, _)) if !in_batch => batch_boxed(emulator.clone(), req).await,
        Ok((route, principal)) => dispatch(&emulator, &req, &route, &principal),
    };
    let response =
        result.unwrap_or_else(|err| GraphResponse::error(&err, &request_id, &client_request_id));
    Outcome {
        response,
        route: route_key,
        request_id,
        client_request_id,
    }
}

/// Breaks the type-level recursion execute → batch → execute.
fn batch_boxed(
    emulator: Emulator,
    req: GraphRequest,
) -> BoxFuture<Result<GraphResponse, GraphError>> {
    Box::pin(batch::run(emulator, req))
}

/// Authentication first (Graph answers 401 before looking at the path), then the route,
/// its method, and the permission it needs.
fn admit(
    emulator: &Emulator,
    req: &GraphRequest,
    route: Result<Route, GraphError>,
) -> Result<(Route, Principal), GraphError> {
    let principal = auth::authenticate(emulator.state(), &req.headers)?;
    let route = route?;
    route.check_method(&req.method)?;
    if !principal.allows(route.permission()) && !addresses_self(emulator, &route, &principal) {
        tracing::debug!(app_id = principal.app_id(), route = %route.template(), "insufficient privileges");
        return Err(GraphError::insufficient_privileges());
    }
    Ok((route, principal))
}

/// A delegated caller naming itself by id or UPN (`/users/{own id}`) is held to what the
/// same route needs as `/me`, so `User.Read` reads one's own profile either way.
fn addresses_self(emulator: &Emulator, route: &Route, principal: &Principal) -> bool {
    let (Principal::User { user_id, .. }, Some(key), Some(permission)) =
        (principal, route.user_key(), route.self_permission())
    else {
        return false;
    };
    if !principal.allows(permission) {
        return false;
    }
    let tenant = emulator
        .state()
        .tenant
        .read()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    tenant
        .find_user(key)
        .is_some_and(|u| tenant.users[u].id.eq_ignore_ascii_case(user_id))
}

fn dispatch(
    emulator: &Emulator,
    req: &GraphRequest,
    route: &Route,
    principal: &Principal,
) -> Result<GraphResponse, GraphError> {
    let opts = QueryOptions::parse(req.query.as_deref())?;
    let eventual = req
        .headers
        .get("consistencylevel")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("eventual"));
    let ctx = Ctx {
        path: &req.path,
        opts,
        eventual,
        base_url: &req.base_url,
        principal,
    };
    if let Route::RevokeSessions(subject) = route {
        return revoke_sessions(emulator, &ctx, subject);
    }
    // Never held across an await: handlers are synchronous.
    let tenant = emulator
        .state()
        .tenant
        .read()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    directory::handle(route, &ctx, &tenant)
}

/// `POST /users/{id}/revokeSignInSessions` (and `/me/...`): revokes the user's refresh
/// tokens and answers `{"value": true}` (user-revokesigninsessions.md).
fn revoke_sessions(
    emulator: &Emulator,
    ctx: &Ctx<'_>,
    subject: &routes::Subject,
) -> Result<GraphResponse, GraphError> {
    let user_id = {
        let tenant = emulator
            .state()
            .tenant
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let u = directory::subject_user(ctx, &tenant, subject)?;
        tenant.users[u].id.clone()
    };
    crate::entra::revoke_user_sessions(emulator.state(), &user_id);
    Ok(GraphResponse::json(serde_json::json!({
        "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#Edm.Boolean",
        "value": true,
    })))
}

/// `http://{Host}`: where this emulator was reached, for absolute links. HTTP/2 requests
/// carry the host in the URI's authority instead of a `Host` header.
pub(crate) fn base_url(headers: &HeaderMap, uri: &Uri) -> String {
    let plausible = |h: &&str| {
        !h.is_empty()
            && h.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'))
    };
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .filter(plausible)
        .or_else(|| uri.authority().map(|a| a.as_str()).filter(plausible))
        .unwrap_or("localhost");
    format!("http://{host}")
}

/// Any method on `/v1.0`, `/v1.0/`, `/v1.0/...`.
pub(crate) async fn http_entry(
    State(emulator): State<Emulator>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri
        .path()
        .strip_prefix("/v1.0")
        .unwrap_or_default()
        .to_string();
    let url = uri
        .path_and_query()
        .map_or_else(|| uri.path().to_string(), |pq| pq.as_str().to_string());
    let req = GraphRequest {
        method: method.clone(),
        path,
        query: uri.query().map(str::to_string),
        base_url: base_url(&headers, &uri),
        headers,
        body,
    };
    let outcome = execute(emulator.clone(), req, false).await;
    emulator.state().recorder.graph_request(
        &outcome.route,
        RecordedRequest {
            method: method.to_string(),
            url,
            status: outcome.response.status.as_u16(),
            in_batch: false,
            client_request_id: outcome.client_request_id.clone(),
        },
    );
    into_http(outcome)
}

fn into_http(outcome: Outcome) -> Response {
    let Outcome {
        response,
        request_id,
        client_request_id,
        ..
    } = outcome;
    let content_type = response.content_type();
    let body = match response.payload {
        Payload::Json(v) => Body::from(v.to_string()),
        Payload::Text(t) => Body::from(t),
    };
    let mut http = (response.status, body).into_response();
    let h = http.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert("OData-Version", HeaderValue::from_static("4.0"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        h.insert("request-id", v);
    }
    if let Ok(v) = HeaderValue::from_str(&client_request_id) {
        h.insert("client-request-id", v);
    }
    if response.status == StatusCode::UNAUTHORIZED {
        h.insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static(WWW_AUTHENTICATE),
        );
    }
    http
}

/// Anything outside `/v1.0`, the Entra paths and the admin surface, e.g. `/beta/users`.
pub(crate) async fn unknown_version(uri: Uri) -> Response {
    let version = uri
        .path()
        .trim_start_matches('/')
        .split('/')
        .next()
        .unwrap_or_default();
    let err = GraphError::bad_request(format!("Invalid version: {version}"));
    let request_id = uuid::Uuid::new_v4().to_string();
    into_http(Outcome {
        response: GraphResponse::error(&err, &request_id, &request_id),
        route: String::new(),
        client_request_id: request_id.clone(),
        request_id,
    })
}
