//! The Graph side: `/v1.0/...`. One dispatcher (`execute`) serves direct HTTP calls and
//! `$batch` items alike, so both get the same authentication, permission checks, query
//! validation and error bodies.

mod auth;
mod batch;
mod calendar;
mod collection;
mod directory;
mod errors;
mod faults;
mod files;
mod filter;
mod mail;
mod query;
mod routes;
mod schema;
mod search;
mod subscriptions;

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use crate::Emulator;
use crate::admin::RecordedRequest;
use crate::faults::{Fault, Target};
use auth::Principal;
use errors::GraphError;
use query::QueryOptions;
use routes::Route;

pub(crate) use faults::{MailboxLimiter, canonical_mailbox};
pub(crate) use files::wire as files_wire;
pub(crate) use mail::{expire_delta_tokens, expire_tokens, sent_mail, sent_messages, upload_entry};
pub(crate) use subscriptions::notify_changes;

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
    /// The body still unread, for the routes that stream it (`PUT …/content` of a file);
    /// `body` is then empty.
    pub stream: BodySlot,
    /// `http://host:port`, for absolute `@odata.nextLink`s.
    pub base_url: String,
}

/// A request body that a handler takes once and reads as it arrives.
#[derive(Clone, Default)]
pub(crate) struct BodySlot(Arc<Mutex<Option<Body>>>);

impl BodySlot {
    fn new(body: Body) -> BodySlot {
        BodySlot(Arc::new(Mutex::new(Some(body))))
    }

    /// The body, the first time (`None` when the request had none to stream).
    pub fn take(&self) -> Option<Body> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take()
    }
}

impl std::fmt::Debug for BodySlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BodySlot")
    }
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Payload {
    Json(Value),
    Text(String),
    /// A proxy's HTML page (an `HtmlError` fault), sent without Graph's headers.
    Html(String),
    /// Raw bytes with their own content type (an attachment's `$value`). In a `$batch` the
    /// item's body is their base64, with this content type in the item's headers.
    Bytes {
        content_type: String,
        bytes: Bytes,
    },
    /// No body at all (202 Accepted, 204 No Content).
    Empty,
}

/// A fault that breaks the HTTP exchange itself rather than answering with a status. In a
/// `$batch` it breaks the whole envelope.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Wire {
    Reset,
    Hang,
    MalformedJson,
    TruncatedJson,
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) struct GraphResponse {
    pub status: StatusCode,
    pub payload: Payload,
    /// Extra response headers (`Retry-After`); inside a batch they go to the item's `headers`.
    pub headers: Vec<(&'static str, String)>,
    pub wire: Option<Wire>,
}

impl GraphResponse {
    pub fn json(body: Value) -> Self {
        Self::with_status(StatusCode::OK, Payload::Json(body))
    }

    pub fn text(body: String) -> Self {
        Self::with_status(StatusCode::OK, Payload::Text(body))
    }

    pub fn with_status(status: StatusCode, payload: Payload) -> Self {
        GraphResponse {
            status,
            payload,
            headers: Vec::new(),
            wire: None,
        }
    }

    pub(crate) fn error(err: &GraphError, request_id: &str, client_request_id: &str) -> Self {
        let mut response = Self::with_status(
            err.status,
            Payload::Json(err.body(request_id, client_request_id)),
        );
        response.headers.extend(err.headers.iter().cloned());
        response
    }

    /// An empty answer with this status (202 Accepted, 204 No Content).
    pub fn empty(status: StatusCode) -> Self {
        Self::with_status(status, Payload::Empty)
    }

    fn content_type(&self) -> Option<&str> {
        match &self.payload {
            Payload::Json(_) => Some(JSON_CONTENT_TYPE),
            Payload::Text(_) => Some("text/plain"),
            Payload::Html(_) => Some("text/html"),
            Payload::Bytes { content_type, .. } => Some(content_type),
            Payload::Empty => None,
        }
    }

    /// The status the request log shows: 0 when no HTTP answer is sent.
    fn recorded_status(&self) -> u16 {
        match self.wire {
            Some(Wire::Reset | Wire::Hang) => 0,
            Some(Wire::MalformedJson) => 200,
            _ => self.status.as_u16(),
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
    /// The request's slot in Outlook's per-(app, mailbox) concurrency limit, held until the
    /// answer is sent (or, in a batch, until the item finished).
    pub permit: Option<faults::MailboxPermit>,
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
///
/// Order: the route and the caller's token are read first, so Outlook's concurrency limit
/// can count per (app, mailbox); then the fault rules decide (a `Latency` fault waits while
/// holding the concurrency slot); then Graph authenticates, authorizes and answers.
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
    let template = route
        .as_ref()
        .map_or_else(|_| "(unmatched)".to_string(), Route::template);
    let route_key = format!("{} {template}", req.method);
    let principal = auth::authenticate(emulator.state(), &req.headers);
    let mailbox = faults::mailbox_of(emulator.state(), &req.path, principal.as_ref().ok());

    let permit = match faults::mailbox_permit(
        &emulator,
        &req.path,
        principal.as_ref().ok(),
        mailbox.as_deref(),
    ) {
        Ok(permit) => permit,
        Err(err) => {
            return Outcome {
                response: faults::concurrency_answer(&err, &request_id, &client_request_id),
                route: route_key,
                request_id,
                client_request_id,
                permit: None,
            };
        }
    };
    let decision = faults::decide(&emulator, &req, &template, in_batch, mailbox.as_deref());
    if !decision.latency.is_zero() {
        tokio::time::sleep(decision.latency).await;
    }
    let faulted = decision
        .fault
        .as_ref()
        .and_then(|f| faults::answer(f, &request_id, &client_request_id));
    let response = match faulted {
        Some(response) => response,
        None => {
            let result = match admit(&emulator, &req, route, principal) {
                Err(err) => Err(err),
                Ok((Route::Batch, _)) if !in_batch => batch_boxed(emulator.clone(), req).await,
                Ok((Route::Files(route), principal)) => {
                    files::handle(&emulator, &req, &route, &principal).await
                }
                Ok((route @ (Route::Subscriptions | Route::Subscription(_)), principal)) => {
                    subscriptions::handle(&emulator, &req, &route, &principal).await
                }
                Ok((route, principal)) => dispatch(&emulator, &req, &route, &principal),
            };
            let mut response = result
                .unwrap_or_else(|err| GraphResponse::error(&err, &request_id, &client_request_id));
            if decision.fault == Some(Fault::TruncatedJson) {
                response.wire = Some(Wire::TruncatedJson);
            }
            response
        }
    };
    Outcome {
        response,
        route: route_key,
        request_id,
        client_request_id,
        permit,
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
    principal: Result<Principal, GraphError>,
) -> Result<(Route, Principal), GraphError> {
    let principal = principal?;
    let route = route?;
    route.check_method(&req.method)?;
    if !principal.allows(route.permission_for(&req.method))
        && !addresses_self(emulator, &route, &principal, &req.method)
    {
        tracing::debug!(app_id = principal.app_id(), route = %route.template(), "insufficient privileges");
        return Err(route.access_denied());
    }
    Ok((route, principal))
}

/// A delegated caller naming itself by id or UPN (`/users/{own id}`) is held to what the
/// same route needs as `/me`, so `User.Read` reads one's own profile either way.
fn addresses_self(
    emulator: &Emulator,
    route: &Route,
    principal: &Principal,
    method: &Method,
) -> bool {
    let (Principal::User { user_id, .. }, Some(key), Some(permission)) =
        (principal, route.user_key(), route.self_permission(method))
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
        .find_user_or_address(key)
        .is_some_and(|u| tenant.users[u].id.eq_ignore_ascii_case(user_id))
}

fn dispatch(
    emulator: &Emulator,
    req: &GraphRequest,
    route: &Route,
    principal: &Principal,
) -> Result<GraphResponse, GraphError> {
    // Outlook reads its own query options ($skip, $deltatoken, ...) and bodies.
    if let Route::Mail {
        subject,
        route: mail_route,
    } = route
    {
        return mail::handle(emulator, req, subject, mail_route, principal);
    }
    if let Route::Calendar {
        subject,
        route: calendar_route,
    } = route
    {
        return calendar::handle(emulator, req, subject, calendar_route, principal);
    }
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

/// Whether a request's body is streamed to its handler rather than buffered: file content
/// uploads (`PUT …/content`), which may be far larger than what `/v1.0` buffers.
fn streams_body(method: &Method, path: &str) -> bool {
    *method == Method::PUT
        && path
            .rsplit('/')
            .next()
            .is_some_and(|last| last.eq_ignore_ascii_case("content"))
}

/// Any method on `/v1.0`, `/v1.0/`, `/v1.0/...`.
pub(crate) async fn http_entry(State(emulator): State<Emulator>, request: Request) -> Response {
    let method = request.method().clone();
    let uri = request.uri().clone();
    let headers = request.headers().clone();
    let extensions = request.extensions().clone();
    let (body, stream) = if streams_body(&method, uri.path()) {
        (Bytes::new(), BodySlot::new(request.into_body()))
    } else {
        // Buffered within `DefaultBodyLimit`, which answers 413 itself.
        match Bytes::from_request(request, &emulator).await {
            Ok(bytes) => (bytes, BodySlot::default()),
            Err(rejection) => return rejection.into_response(),
        }
    };
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
        stream,
    };
    let mut outcome = execute(emulator.clone(), req, false).await;
    emulator.state().recorder.graph_request(
        &outcome.route,
        RecordedRequest {
            method: method.to_string(),
            url,
            status: outcome.response.recorded_status(),
            in_batch: false,
            client_request_id: outcome.client_request_id.clone(),
        },
    );
    // Held until the answer is on its way (or the hang ends).
    let _permit = outcome.permit.take();
    match outcome.response.wire {
        None => into_http(outcome),
        Some(Wire::Reset) => crate::net::reset(&extensions),
        Some(Wire::Hang) => crate::net::hang(&extensions).await,
        Some(Wire::MalformedJson) => crate::net::malformed_json(into_http(outcome)),
        Some(Wire::TruncatedJson) => crate::net::truncate(into_http(outcome)).await,
    }
}

fn into_http(outcome: Outcome) -> Response {
    let Outcome {
        response,
        request_id,
        client_request_id,
        ..
    } = outcome;
    let content_type = response
        .content_type()
        .and_then(|ct| HeaderValue::from_str(ct).ok());
    let (body, graph) = match response.payload {
        Payload::Json(v) => (Body::from(v.to_string()), true),
        Payload::Text(t) => (Body::from(t), true),
        Payload::Bytes { bytes, .. } => (Body::from(bytes), true),
        Payload::Empty => (Body::empty(), true),
        // A proxy's page carries none of Graph's headers.
        Payload::Html(h) => (Body::from(h), false),
    };
    let mut http = (response.status, body).into_response();
    let h = http.headers_mut();
    if let Some(content_type) = content_type {
        h.insert(header::CONTENT_TYPE, content_type);
    }
    for (name, value) in &response.headers {
        if let Ok(v) = HeaderValue::from_str(value) {
            h.insert(*name, v);
        }
    }
    if !graph {
        return http;
    }
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

/// A Graph answer as HTTP, with Graph's headers and these request ids.
pub(crate) fn graph_http(
    response: GraphResponse,
    request_id: &str,
    client_request_id: &str,
) -> Response {
    into_http(Outcome {
        response,
        route: String::new(),
        request_id: request_id.to_string(),
        client_request_id: client_request_id.to_string(),
        permit: None,
    })
}

/// What the fault rules decided for a request to a pre-authenticated URL.
pub(crate) enum Side {
    /// Answer normally (cutting the body in half when `truncate`).
    Proceed {
        truncate: bool,
    },
    Reset,
    Hang,
    /// This answer instead (status as recorded).
    Answer {
        response: Response,
        status: u16,
    },
}

/// Runs the fault rules for a pre-authenticated URL (upload, download, copy monitor), whose
/// answers look like Graph's. Rules match these by route (`"PUT /up/{id}"`) or path prefix
/// only: a rule without `route` applies to Graph requests, not to them.
pub(crate) async fn side_faults(
    emulator: &Emulator,
    method: &Method,
    template: &str,
    path: &str,
    request_id: &str,
    client_request_id: &str,
) -> Side {
    let state = emulator.state();
    let decoded = percent_encoding::percent_decode_str(path).decode_utf8_lossy();
    let decision = state.faults.decide(&Target {
        method: method.as_str(),
        template,
        path: &decoded,
        graph: false,
        in_batch: false,
        mailbox: None,
    });
    if decision.fired > 0 {
        state.recorder.faults_injected(decision.fired);
    }
    if !decision.latency.is_zero() {
        tokio::time::sleep(decision.latency).await;
    }
    match decision.fault {
        None | Some(Fault::Latency { .. }) => Side::Proceed { truncate: false },
        Some(Fault::TruncatedJson) => Side::Proceed { truncate: true },
        Some(Fault::Reset) => Side::Reset,
        Some(Fault::Hang) => Side::Hang,
        Some(fault) => match faults::answer(&fault, request_id, client_request_id) {
            Some(response) if response.wire == Some(Wire::MalformedJson) => {
                let http = graph_http(
                    GraphResponse::json(Value::Null),
                    request_id,
                    client_request_id,
                );
                Side::Answer {
                    response: crate::net::malformed_json(http),
                    status: 200,
                }
            }
            Some(response) => {
                let status = response.status.as_u16();
                Side::Answer {
                    response: graph_http(response, request_id, client_request_id),
                    status,
                }
            }
            None => Side::Proceed { truncate: false },
        },
    }
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
        permit: None,
    })
}
