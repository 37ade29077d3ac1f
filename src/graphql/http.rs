//! GraphQL over HTTP (the GraphQL-over-HTTP specification): which requests are accepted,
//! how a document gets from the request to the executor (persisted operations, limits,
//! rate limits on the way), and which status each outcome takes.
//!
//! Written here rather than taken from async-graphql-axum because the status codes depend
//! on the `Accept` header (a document that fails validation is 400 with
//! `application/graphql-response+json` but 200 with `application/json`), mutations must be
//! refused on GET, and the limits must run between parsing and execution.
//!
//! Request errors (nothing executed) never carry a `data` key.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use async_graphql::extensions::{Extension, ExtensionContext, ExtensionFactory, NextExecute};
use async_graphql::http::MultipartOptions;
use async_graphql::parser::types::OperationType;
use async_graphql::{ErrorExtensions, ServerError, Variables};
use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::TryStreamExt;
use serde_json::{Value as Json, json};

use super::GatewaySchema;
use super::limits::{self, LimitError, SchemaIndex};
use super::persisted::{PersistedError, PersistedOperations};
use crate::app::AppState;
use crate::auth::{AuthError, Caller};
use crate::config::{Config, GraphqlConfig};
use crate::rate_limit::Kind;
use crate::service::{ServiceError, Session};

/// Everything the GraphQL endpoint needs besides the services.
pub struct GraphqlRuntime {
    pub schema: GatewaySchema,
    index: SchemaIndex,
    limits: GraphqlConfig,
    persisted: PersistedOperations,
    /// Introspection only for `graphql.introspection_callers`.
    pub(super) production: bool,
    graphiql: bool,
    /// Browser origins whose pages may open the WebSocket (`http.cors_allowed_origins`).
    pub(super) allowed_origins: Vec<String>,
}

impl GraphqlRuntime {
    pub fn new(config: &Config) -> anyhow::Result<GraphqlRuntime> {
        let manifest = match &config.graphql.persisted_operations {
            Some(path) => PersistedOperations::load_manifest(path)?,
            None => HashMap::new(),
        };
        let schema = super::build_schema_for(config);
        Ok(GraphqlRuntime {
            index: SchemaIndex::from_sdl(&schema.sdl()),
            schema,
            limits: config.graphql.clone(),
            persisted: PersistedOperations::new(manifest, config.graphql.apq),
            production: config.production,
            graphiql: config.graphiql_enabled(),
            allowed_origins: config.http.cors_allowed_origins.clone(),
        })
    }
}

/// The response media type the client accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Media {
    GraphqlResponse,
    Json,
}

impl Media {
    fn content_type(self) -> HeaderValue {
        HeaderValue::from_static(match self {
            Media::GraphqlResponse => "application/graphql-response+json; charset=utf-8",
            Media::Json => "application/json; charset=utf-8",
        })
    }

    /// A document that cannot run (parse, validation, limits): the spec's 400 for the new
    /// media type; 200 for legacy `application/json` clients, which read `errors`.
    fn document_error_status(self) -> StatusCode {
        match self {
            Media::GraphqlResponse => StatusCode::BAD_REQUEST,
            Media::Json => StatusCode::OK,
        }
    }
}

enum Accepted {
    Media(Media),
    /// A browser asking for a page.
    Html,
    None,
}

/// Content negotiation: the supported type with the highest `q`, the GraphQL response type
/// winning ties; a page when `text/html` is preferred to both. No `Accept` header means
/// `application/json` (the spec's legacy rule).
fn accepted(headers: &HeaderMap) -> Accepted {
    let values: Vec<&str> = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    if values.is_empty() {
        return Accepted::Media(Media::Json);
    }
    let mut best: Option<(f32, Media)> = None;
    // The `q` of `text/html`: a browser (`text/html,…,*/*;q=0.8`) prefers a page.
    let mut html: Option<f32> = None;
    for range in values.iter().flat_map(|v| v.split(',')) {
        let mut parts = range.split(';');
        let media = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
        let q = parts
            .filter_map(|p| p.trim().strip_prefix("q="))
            .find_map(|q| q.trim().parse::<f32>().ok())
            .unwrap_or(1.0);
        let candidate = match media.as_str() {
            "application/graphql-response+json" => Media::GraphqlResponse,
            "application/json" | "application/*" | "*/*" => Media::Json,
            "text/html" => {
                html = Some(q);
                continue;
            }
            _ => continue,
        };
        if q <= 0.0 {
            continue;
        }
        let better = match best {
            None => true,
            Some((best_q, best_media)) => {
                q > best_q
                    || (q == best_q
                        && candidate == Media::GraphqlResponse
                        && best_media != candidate)
            }
        };
        if better {
            best = Some((q, candidate));
        }
    }
    match (best, html) {
        (Some((q, _)), Some(html_q)) if html_q > q => Accepted::Html,
        (Some((_, media)), _) => Accepted::Media(media),
        (None, Some(q)) if q > 0.0 => Accepted::Html,
        (None, _) => Accepted::None,
    }
}

/// A refusal before anything ran: one error, no `data`.
struct Refusal {
    status: StatusCode,
    error: Json,
    headers: Vec<(header::HeaderName, HeaderValue)>,
}

impl Refusal {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Refusal {
        Refusal {
            status,
            error: json!({ "message": message.into(), "extensions": { "code": code } }),
            headers: Vec::new(),
        }
    }

    /// A service error (the session could not open), with its extensions, at the status
    /// REST gives it.
    fn service(error: &ServiceError) -> Refusal {
        let status = crate::rest::status_of(error);
        let error = error.extend();
        Refusal {
            status,
            error: json!({ "message": error.message, "extensions": error.extensions }),
            headers: Vec::new(),
        }
    }

    /// A document that cannot run: its status depends on the media type.
    fn document(media: Media, code: &'static str, message: impl Into<String>) -> Refusal {
        Refusal::new(media.document_error_status(), code, message)
    }

    fn bad_request(message: impl Into<String>) -> Refusal {
        Refusal::new(StatusCode::BAD_REQUEST, "BAD_USER_INPUT", message)
    }

    fn header(mut self, name: header::HeaderName, value: HeaderValue) -> Refusal {
        self.headers.push((name, value));
        self
    }

    /// The refusal as a GraphQL error, for transports without HTTP statuses: the same
    /// message and extensions, and a `Retry-After` as `retryAfter`.
    fn into_server_error(self) -> ServerError {
        let message = self.error["message"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let mut error = ServerError::new(message, None);
        let extensions = error.extensions.get_or_insert_with(Default::default);
        if let Some(Json::Object(values)) = self.error.get("extensions") {
            for (name, value) in values {
                if let Ok(value) = async_graphql::Value::from_json(value.clone()) {
                    extensions.set(name, value);
                }
            }
        }
        let retry_after = self
            .headers
            .iter()
            .find(|(name, _)| name == header::RETRY_AFTER)
            .and_then(|(_, value)| value.to_str().ok()?.parse::<u64>().ok());
        if let Some(seconds) = retry_after {
            extensions.set("retryAfter", seconds);
        }
        error
    }

    fn into_response(self, media: Media) -> Response {
        let body = json!({ "errors": [self.error] });
        let mut response = (self.status, body.to_string()).into_response();
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, media.content_type());
        for (name, value) in self.headers {
            response.headers_mut().insert(name, value);
        }
        response
    }
}

/// One operation of a request, as received.
struct Operation {
    request: async_graphql::Request,
    /// `extensions.persistedQuery.sha256Hash`, or `documentId`.
    hash: Option<String>,
    /// Whether the request carried the document text.
    has_query: bool,
}

/// `GET`/`POST /graphql`.
pub async fn handler(
    State(state): State<AppState>,
    method: Method,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: Body,
) -> Response {
    let media = match accepted(&headers) {
        Accepted::Media(media) => media,
        Accepted::Html if method == Method::GET => return graphiql_or_not_found(&state),
        Accepted::Html | Accepted::None => {
            return Refusal::new(
                StatusCode::NOT_ACCEPTABLE,
                "NOT_ACCEPTABLE",
                "accept application/graphql-response+json or application/json",
            )
            .into_response(Media::Json);
        }
    };
    match run(&state, &method, &headers, query, body, media).await {
        Ok(response) => response,
        Err(refusal) => {
            // Executed operations are counted by the schema's observer; these never ran.
            crate::telemetry::record_graphql_operation(
                Some(crate::telemetry::UNPARSED_OPERATION),
                crate::telemetry::GraphqlOutcome::Rejected,
            );
            refusal.into_response(media)
        }
    }
}

async fn run(
    state: &AppState,
    method: &Method,
    headers: &HeaderMap,
    query: Option<String>,
    body: Body,
    media: Media,
) -> Result<Response, Refusal> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    let multipart = content_type.starts_with("multipart/form-data");
    if *method == Method::POST {
        check_content_type(&content_type, headers)?;
    }

    // The caller is authenticated before the document is even looked at.
    let caller = authenticate(state, headers).await?;
    let runtime = &state.graphql;

    // `batch`: the body was an array (answered with an array, even of one).
    let (operations, batch) = if *method == Method::GET {
        (
            vec![from_query_string(query.as_deref().unwrap_or_default())?],
            false,
        )
    } else if multipart {
        from_multipart(&content_type, body).await?
    } else {
        from_json_body(body).await?
    };
    if batch && operations.len() > runtime.limits.max_batch {
        return Err(Refusal::document(
            media,
            "BATCH_LIMIT_EXCEEDED",
            match runtime.limits.max_batch {
                0 => "operation batching is off: send one operation per request".to_owned(),
                n => format!("at most {n} operations per batch"),
            },
        ));
    }
    rate_limit(state, &caller, Kind::Requests, operations.len() as u64).await?;

    let via = if *method == Method::GET {
        Via::Get
    } else {
        Via::Post
    };
    let mut prepared = Vec::with_capacity(operations.len());
    let mut total_cost = 0u64;
    for operation in operations {
        let (request, cost, _) = prepare(runtime, &caller, via, operation, media)?;
        total_cost = total_cost.saturating_add(cost);
        prepared.push(request);
    }
    if total_cost > runtime.limits.max_cost {
        return Err(Refusal::document(
            media,
            LimitError::Cost {
                cost: total_cost,
                limit: runtime.limits.max_cost,
            }
            .code(),
            format!(
                "the batch may cost {total_cost}, more than the limit of {}",
                runtime.limits.max_cost
            ),
        ));
    }
    rate_limit(state, &caller, Kind::Cost, total_cost).await?;

    let mut responses = Vec::with_capacity(prepared.len());
    for request in prepared {
        responses.push(execute(state, headers, &caller, request));
    }
    let mut responses = futures::future::join_all(responses).await;
    if batch {
        let body: Vec<Json> = responses
            .into_iter()
            .map(|r| r.map(|(_, body)| body).unwrap_or_else(|e| e.body()))
            .collect();
        return Ok(json_response(
            StatusCode::OK,
            media,
            &Json::Array(body),
            None,
        ));
    }
    match responses.pop().expect("one operation") {
        Ok((response, body)) => Ok(finish(media, response, &body)),
        Err(executed) => Err(executed.into_refusal(media)),
    }
}

/// POST bodies must be JSON (or GraphQL multipart with a header a browser cannot send
/// cross-origin without a preflight): anything a plain HTML form can post is refused, so
/// no page can make a logged-in browser run a mutation (CSRF).
fn check_content_type(content_type: &str, headers: &HeaderMap) -> Result<(), Refusal> {
    let essence = content_type.split(';').next().unwrap_or_default().trim();
    match essence {
        "application/json" | "application/graphql-response+json" => Ok(()),
        "multipart/form-data"
            if [
                "graphql-require-preflight",
                "apollo-require-preflight",
                "x-apollo-operation-name",
            ]
            .iter()
            .any(|h| headers.contains_key(*h)) =>
        {
            Ok(())
        }
        "multipart/form-data" => Err(Refusal::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UNSUPPORTED_MEDIA_TYPE",
            "a multipart (file upload) request needs the header `GraphQL-Require-Preflight: 1`",
        )),
        "" => Err(Refusal::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UNSUPPORTED_MEDIA_TYPE",
            "send Content-Type: application/json",
        )),
        other => Err(Refusal::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UNSUPPORTED_MEDIA_TYPE",
            format!("'{other}' is not accepted; send application/json"),
        )),
    }
}

async fn authenticate(state: &AppState, headers: &HeaderMap) -> Result<Caller, Refusal> {
    let auth = state.auth.load_full();
    match auth.authenticate(headers).await {
        Ok(caller) => {
            crate::telemetry::record_caller(&caller.name);
            Ok(caller)
        }
        Err(AuthError::Duplicate) => Err(Refusal::bad_request(
            "send exactly one Authorization header",
        )),
        Err(reason) => {
            tracing::debug!(%reason, "GraphQL request refused");
            Err(Refusal::service(&ServiceError::Unauthenticated).header(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(reason.www_authenticate()),
            ))
        }
    }
}

async fn rate_limit(state: &AppState, caller: &Caller, kind: Kind, n: u64) -> Result<(), Refusal> {
    state
        .rate
        .check(&caller.name, kind, n)
        .await
        .map_err(|wait| {
            let seconds = wait.as_secs_f64().ceil().max(1.0) as u64;
            Refusal::new(
                StatusCode::TOO_MANY_REQUESTS,
                "RATE_LIMITED",
                format!(
                    "the caller's {} rate limit is reached; retry in {seconds} s",
                    kind.as_str()
                ),
            )
            .header(header::RETRY_AFTER, HeaderValue::from(seconds))
        })
}

fn from_query_string(query: &str) -> Result<Operation, Refusal> {
    let mut params: HashMap<String, String> = HashMap::new();
    for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
        params.insert(key.into_owned(), value.into_owned());
    }
    let json_param = |name: &str| -> Result<Json, Refusal> {
        match params.get(name) {
            None => Ok(Json::Null),
            Some(text) => serde_json::from_str(text)
                .map_err(|_| Refusal::bad_request(format!("`{name}` is not JSON"))),
        }
    };
    let object = json!({
        "query": params.get("query"),
        "operationName": params.get("operationName"),
        "variables": json_param("variables")?,
        "extensions": json_param("extensions")?,
        "documentId": params.get("documentId"),
    });
    operation_from_json(object)
}

async fn read_body(body: Body) -> Result<bytes::Bytes, Refusal> {
    axum::body::to_bytes(body, usize::MAX).await.map_err(|e| {
        if is_too_large(&e) {
            Refusal::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "PAYLOAD_TOO_LARGE",
                "the request body is larger than the gateway accepts",
            )
        } else {
            Refusal::bad_request("the request body could not be read")
        }
    })
}

fn is_too_large(error: &axum::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = source {
        if e.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        source = e.source();
    }
    false
}

async fn from_json_body(body: Body) -> Result<(Vec<Operation>, bool), Refusal> {
    let bytes = read_body(body).await?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(Refusal::bad_request("the request has no body"));
    }
    let value: Json = serde_json::from_slice(&bytes)
        .map_err(|e| Refusal::bad_request(format!("the body is not JSON: {e}")))?;
    match value {
        Json::Array(items) if items.is_empty() => Err(Refusal::bad_request("the batch is empty")),
        Json::Array(items) if items.len() > crate::config::BATCH_CEILING => Err(Refusal::new(
            StatusCode::BAD_REQUEST,
            "BATCH_LIMIT_EXCEEDED",
            format!(
                "at most {} operations per batch",
                crate::config::BATCH_CEILING
            ),
        )),
        Json::Array(items) => Ok((
            items
                .into_iter()
                .map(operation_from_json)
                .collect::<Result<_, _>>()?,
            true,
        )),
        other => Ok((vec![operation_from_json(other)?], false)),
    }
}

/// The request parameters, each with the type the spec gives it.
fn operation_from_json(value: Json) -> Result<Operation, Refusal> {
    let Json::Object(mut map) = value else {
        return Err(Refusal::bad_request("the body must be a JSON object"));
    };
    let query = match map.remove("query") {
        None | Some(Json::Null) => None,
        Some(Json::String(q)) => Some(q),
        Some(_) => return Err(Refusal::bad_request("`query` must be a string")),
    };
    let operation_name = match map.remove("operationName") {
        None | Some(Json::Null) => None,
        Some(Json::String(name)) => Some(name),
        Some(_) => return Err(Refusal::bad_request("`operationName` must be a string")),
    };
    let variables = match map.remove("variables") {
        None | Some(Json::Null) => Variables::default(),
        Some(value @ Json::Object(_)) => Variables::from_json(value),
        Some(_) => return Err(Refusal::bad_request("`variables` must be an object")),
    };
    let extensions = match map.remove("extensions") {
        None | Some(Json::Null) => serde_json::Map::new(),
        Some(Json::Object(ext)) => ext,
        Some(_) => return Err(Refusal::bad_request("`extensions` must be an object")),
    };
    let document_id = match map.remove("documentId") {
        None | Some(Json::Null) => None,
        Some(Json::String(id)) => Some(id.strip_prefix("sha256:").unwrap_or(&id).to_owned()),
        Some(_) => return Err(Refusal::bad_request("`documentId` must be a string")),
    };
    let mut request = async_graphql::Request::new(query.clone().unwrap_or_default());
    request.operation_name = operation_name;
    request.variables = variables;
    for (key, value) in extensions {
        if let Ok(value) = async_graphql::Value::from_json(value) {
            request.extensions.insert(key, value);
        }
    }
    let hash = document_id.or_else(|| persisted_hash(&request));
    if query.is_none() && hash.is_none() {
        return Err(Refusal::bad_request("the request has no `query` string"));
    }
    Ok(Operation {
        request,
        hash,
        has_query: query.is_some(),
    })
}

/// `extensions.persistedQuery.sha256Hash` (Apollo's APQ protocol, version 1).
fn persisted_hash(request: &async_graphql::Request) -> Option<String> {
    let async_graphql::Value::Object(pq) = request.extensions.get("persistedQuery")? else {
        return None;
    };
    match pq.get("sha256Hash")? {
        async_graphql::Value::String(hash) => Some(hash.clone()),
        _ => None,
    }
}

async fn from_multipart(content_type: &str, body: Body) -> Result<(Vec<Operation>, bool), Refusal> {
    let reader = body
        .into_data_stream()
        .map_err(std::io::Error::other)
        .into_async_read();
    let batch = async_graphql::http::receive_batch_body(
        Some(content_type),
        reader,
        MultipartOptions::default(),
    )
    .await
    .map_err(|e| match e {
        async_graphql::ParseRequestError::PayloadTooLarge => Refusal::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "PAYLOAD_TOO_LARGE",
            "the request body is larger than the gateway accepts",
        ),
        other => Refusal::bad_request(format!("the multipart request is invalid: {other}")),
    })?;
    let (requests, is_batch) = match batch {
        async_graphql::BatchRequest::Single(request) => (vec![request], false),
        async_graphql::BatchRequest::Batch(requests) => (requests, true),
    };
    let operations = requests
        .into_iter()
        .map(|request| Operation {
            has_query: !request.query.is_empty(),
            hash: persisted_hash(&request),
            request,
        })
        .collect();
    Ok((operations, is_batch))
}

/// The transport an operation arrived by.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Via {
    Get,
    Post,
    WebSocket,
}

/// From a received operation to one ready to run, with its cost and kind (unknown when
/// the document has no such operation: validation says so): the persisted document looked
/// up, the text scanned, parsed and checked against every limit.
fn prepare(
    runtime: &GraphqlRuntime,
    caller: &Caller,
    via: Via,
    operation: Operation,
    media: Media,
) -> Result<(async_graphql::Request, u64, Option<OperationType>), Refusal> {
    let Operation {
        mut request,
        hash,
        has_query,
    } = operation;
    let persisted_only = runtime.limits.persisted_only_callers.contains(&caller.name);
    let query = has_query.then(|| std::mem::take(&mut request.query));
    let document = runtime
        .persisted
        .resolve(hash.as_deref(), query, persisted_only)
        .map_err(|e| persisted_refusal(media, e))?;
    request.query = document.to_string();

    limits::scan(&request.query, runtime.limits.max_tokens)
        .map_err(|e| Refusal::document(media, e.code(), e.to_string()))?;
    let variables = request.variables.clone();
    let operation_name = request.operation_name.clone();
    let document = match request.parsed_query() {
        Ok(document) => document,
        Err(e) => {
            return Err(Refusal::document(media, "GRAPHQL_PARSE_FAILED", e.message));
        }
    };
    let analysis = limits::analyze(
        &runtime.index,
        &runtime.limits,
        document,
        operation_name.as_deref(),
        &variables,
    )
    .map_err(|e| Refusal::document(media, e.code(), e.to_string()))?;
    let Some(analysis) = analysis else {
        // No such operation: validation says so, in its own words.
        return Ok((request, 0, None));
    };
    if via == Via::Get && analysis.kind != OperationType::Query {
        return Err(Refusal::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "METHOD_NOT_ALLOWED",
            "only queries may be sent with GET; send mutations with POST",
        )
        .header(header::ALLOW, HeaderValue::from_static("POST")));
    }
    if via != Via::WebSocket && analysis.kind == OperationType::Subscription {
        return Err(Refusal::document(
            media,
            "WEBSOCKET_REQUIRED",
            "subscriptions run over WebSocket: open /graphql with the graphql-transport-ws protocol",
        ));
    }
    let may_introspect =
        !runtime.production || runtime.limits.introspection_callers.contains(&caller.name);
    if !may_introspect {
        if analysis.introspection {
            return Err(Refusal::document(
                media,
                "INTROSPECTION_DISABLED",
                "introspection is disabled",
            ));
        }
        request = request.disable_introspection();
    }
    Ok((request, analysis.cost, Some(analysis.kind)))
}

/// An operation the WebSocket transport may run, after [`admit`].
pub(super) struct Admitted {
    pub request: async_graphql::Request,
    /// `None` when the document has no such operation (validation will say so).
    pub kind: Option<OperationType>,
}

/// The checks an operation sent over the WebSocket goes through before it runs, the same
/// as over HTTP and in the same order: the caller's request rate, the persisted-operation
/// rules, the limits (tokens, depth, aliases, root fields, cost…), introspection, then the
/// caller's cost budget. A refusal is the GraphQL error HTTP would answer with (same
/// `extensions.code`, `retryAfter` for rate limits), and counts as a rejected operation.
pub(super) async fn admit(
    state: &AppState,
    caller: &Caller,
    request: async_graphql::Request,
) -> Result<Admitted, ServerError> {
    let result = async {
        rate_limit(state, caller, Kind::Requests, 1).await?;
        let operation = Operation {
            has_query: !request.query.is_empty(),
            hash: persisted_hash(&request),
            request,
        };
        let (request, cost, kind) = prepare(
            &state.graphql,
            caller,
            Via::WebSocket,
            operation,
            Media::GraphqlResponse,
        )?;
        rate_limit(state, caller, Kind::Cost, cost).await?;
        Ok(Admitted { request, kind })
    }
    .await;
    result.map_err(|refusal: Refusal| {
        crate::telemetry::record_graphql_operation(
            Some(crate::telemetry::UNPARSED_OPERATION),
            crate::telemetry::GraphqlOutcome::Rejected,
        );
        refusal.into_server_error()
    })
}

fn persisted_refusal(media: Media, error: PersistedError) -> Refusal {
    match error {
        PersistedError::Required => {
            Refusal::new(StatusCode::FORBIDDEN, error.code(), error.to_string())
        }
        PersistedError::BadInput(_) | PersistedError::HashMismatch => {
            Refusal::new(StatusCode::BAD_REQUEST, error.code(), error.to_string())
        }
        PersistedError::NotFound | PersistedError::NotSupported => {
            Refusal::document(media, error.code(), error.to_string())
        }
    }
}

/// Set by [`ExecutionStarted`] once the executor starts: until then, errors are request
/// errors (parse, validation, variable coercion) and the response has no `data`.
#[derive(Clone, Default)]
struct Started(Arc<AtomicBool>);

/// Records that an operation got past validation into execution.
pub struct ExecutionStarted;

impl ExtensionFactory for ExecutionStarted {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(ExecutionStartedExtension)
    }
}

struct ExecutionStartedExtension;

#[async_trait::async_trait]
impl Extension for ExecutionStartedExtension {
    async fn execute(
        &self,
        ctx: &ExtensionContext<'_>,
        operation_name: Option<&str>,
        next: NextExecute<'_>,
    ) -> async_graphql::Response {
        if let Some(started) = ctx.data_opt::<Started>() {
            started.0.store(true, Ordering::Relaxed);
        }
        next.run(ctx, operation_name).await
    }
}

/// An operation that did not execute: a request error, or its session could not open.
enum NotExecuted {
    Invalid(Vec<ServerError>),
    Session(ServiceError),
}

impl NotExecuted {
    fn body(&self) -> Json {
        match self {
            NotExecuted::Invalid(errors) => json!({ "errors": errors }),
            NotExecuted::Session(error) => json!({ "errors": [Refusal::service(error).error] }),
        }
    }

    fn into_refusal(self, media: Media) -> Refusal {
        match self {
            NotExecuted::Invalid(errors) => {
                let message = errors
                    .first()
                    .map(|e| e.message.clone())
                    .unwrap_or_default();
                Refusal::document(media, "GRAPHQL_VALIDATION_FAILED", message)
            }
            NotExecuted::Session(error) => Refusal::service(&error),
        }
    }
}

async fn execute(
    state: &AppState,
    headers: &HeaderMap,
    caller: &Caller,
    request: async_graphql::Request,
) -> Result<(async_graphql::Response, Json), NotExecuted> {
    // A multipart request carries files (`uploadFile`, attachments): it may take as long
    // as a file transfer may.
    let session = if super::is_upload("/graphql", headers) {
        Session::open_for_transfer(&state.services, caller.clone()).await
    } else {
        let timeout = crate::rest::requested_timeout(headers);
        Session::open_with_timeout(&state.services, caller.clone(), timeout).await
    };
    let session = session.map_err(NotExecuted::Session)?;
    let started = Started::default();
    let response = state
        .graphql
        .schema
        .execute(request.data(session).data(started.clone()))
        .await;
    if !started.0.load(Ordering::Relaxed) && response.is_err() {
        let errors = response
            .errors
            .into_iter()
            .map(|mut e| {
                if e.extensions
                    .as_ref()
                    .is_none_or(|x| x.get("code").is_none())
                {
                    e.extensions
                        .get_or_insert_with(Default::default)
                        .set("code", "GRAPHQL_VALIDATION_FAILED");
                }
                e
            })
            .collect();
        return Err(NotExecuted::Invalid(errors));
    }
    let body = serde_json::to_value(&response).unwrap_or_else(|_| json!({ "data": null }));
    Ok((response, body))
}

fn finish(media: Media, response: async_graphql::Response, body: &Json) -> Response {
    let cache_control = response.cache_control.value();
    let mut out = json_response(StatusCode::OK, media, body, cache_control);
    for (name, value) in response.http_headers.iter() {
        out.headers_mut().append(name, value.clone());
    }
    out
}

fn json_response(
    status: StatusCode,
    media: Media,
    body: &Json,
    cache_control: Option<String>,
) -> Response {
    let mut response = (status, body.to_string()).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, media.content_type());
    // Answers are per caller: shared caches must never keep them.
    let cache_control = cache_control
        .filter(|v| v.contains("private"))
        .unwrap_or_else(|| "no-store".to_owned());
    if let Ok(value) = HeaderValue::from_str(&cache_control) {
        headers.insert(header::CACHE_CONTROL, value);
    }
    response
}

/// A browser opening `/graphql`: GraphiQL where it is served, otherwise nothing to see.
fn graphiql_or_not_found(state: &AppState) -> Response {
    if state.graphql.graphiql {
        return (
            StatusCode::SEE_OTHER,
            [(header::LOCATION, HeaderValue::from_static("/graphiql"))],
        )
            .into_response();
    }
    Refusal::new(StatusCode::NOT_FOUND, "NOT_FOUND", "not found").into_response(Media::Json)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accept(value: &str) -> Option<Media> {
        let mut headers = HeaderMap::new();
        headers.insert(header::ACCEPT, HeaderValue::from_str(value).unwrap());
        match accepted(&headers) {
            Accepted::Media(media) => Some(media),
            _ => None,
        }
    }

    #[test]
    fn the_graphql_response_type_wins_unless_json_is_preferred() {
        assert_eq!(
            accept("application/graphql-response+json, application/json;q=0.9"),
            Some(Media::GraphqlResponse)
        );
        assert_eq!(
            accept("application/graphql-response+json;q=0.5, application/json"),
            Some(Media::Json)
        );
        assert_eq!(accept("*/*"), Some(Media::Json));
        assert_eq!(
            accept("application/json, multipart/mixed"),
            Some(Media::Json)
        );
        assert_eq!(accept("image/png"), None);
        // A browser's navigation asks for a page first; GraphiQL's fetches ask for JSON.
        let mut headers = HeaderMap::new();
        headers.insert(
            header::ACCEPT,
            HeaderValue::from_static(
                "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
            ),
        );
        assert!(matches!(accepted(&headers), Accepted::Html));
    }
}
