//! The GraphQL transport: schema, HTTP handler and the one mapping of service errors to
//! `extensions.code`.

mod calendar;
mod files;
pub mod graphiql;
mod mail;
mod types;

use async_graphql::{EmptySubscription, ErrorExtensions, MergedObject, Schema};
use async_graphql_axum::{GraphQLRequest, GraphQLResponse};
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::app::AppState;
use crate::auth::AuthError;
use crate::service::{ServiceError, Session};
/// The root query type: each area contributes its fields.
#[derive(MergedObject, Default)]
pub struct Query(
    types::DirectoryQuery,
    mail::MailQuery,
    calendar::CalendarQuery,
    files::FilesQuery,
);

/// The root mutation type.
#[derive(MergedObject, Default)]
pub struct Mutation(
    mail::MailMutation,
    calendar::CalendarMutation,
    files::FilesMutation,
);

pub type GatewaySchema = Schema<Query, Mutation, EmptySubscription>;

/// Deepest query accepted; deeper ones are refused before any resolver runs.
pub const MAX_DEPTH: usize = 12;

pub fn build_schema() -> GatewaySchema {
    Schema::build(Query::default(), Mutation::default(), EmptySubscription)
        // The observer first: its operation span is the parent of the engine's spans.
        .extension(crate::telemetry::GraphqlObserver)
        .extension(async_graphql::extensions::Tracing)
        .limit_depth(MAX_DEPTH)
        .limit_recursive_depth(32)
        .finish()
}

/// The SDL checked in as `schema/schema.graphql`.
pub fn sdl() -> String {
    build_schema().sdl()
}

/// `GET`/`POST /graphql`. The caller is authenticated before the document is even
/// looked at; a failure is the same 401 as on REST, in GraphQL's response shape.
pub async fn handler(
    State(state): State<AppState>,
    headers: HeaderMap,
    request: GraphQLRequest,
) -> Response {
    let auth = state.auth.load_full();
    let caller = match auth.authenticate(&headers).await {
        Ok(caller) => caller,
        Err(AuthError::Duplicate) => {
            return request_error(
                StatusCode::BAD_REQUEST,
                ServiceError::BadInput("send exactly one Authorization header".into()),
            );
        }
        Err(reason) => {
            tracing::debug!(%reason, "GraphQL request refused");
            return unauthenticated(&reason);
        }
    };
    // A multipart request carries files (`uploadFile`, attachments): it may take as long
    // as a file transfer may.
    let session = if is_upload("/graphql", &headers) {
        Session::open_for_transfer(&state.services, caller).await
    } else {
        let timeout = crate::rest::requested_timeout(&headers);
        Session::open_with_timeout(&state.services, caller, timeout).await
    };
    let session = match session {
        Ok(session) => session,
        // A request-level failure (before any field runs) takes the same HTTP status as
        // on REST.
        Err(e) => return request_error(crate::rest::status_of(&e), e),
    };
    let response: GraphQLResponse = state
        .schema
        .execute(request.into_inner().data(session))
        .await
        .into();
    response.into_response()
}

/// A GraphQL multipart request (files attached), which gets `files.transfer_timeout`.
pub(crate) fn is_upload(path: &str, headers: &HeaderMap) -> bool {
    path == "/graphql"
        && headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("multipart/form-data"))
}

fn unauthenticated(reason: &AuthError) -> Response {
    let mut response = request_error(StatusCode::UNAUTHORIZED, ServiceError::Unauthenticated);
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static(reason.www_authenticate()),
    );
    response
}

/// A request-level error: no `data` key, one error with its code and extensions.
fn request_error(status: StatusCode, error: ServiceError) -> Response {
    crate::telemetry::record_graphql_operation(
        Some(crate::telemetry::UNPARSED_OPERATION),
        crate::telemetry::GraphqlOutcome::Rejected,
    );
    let error = error.extend();
    let body = json!({ "errors": [{ "message": error.message, "extensions": error.extensions }] });
    (status, Json(body)).into_response()
}

/// The one place a service error becomes a GraphQL error.
impl ErrorExtensions for ServiceError {
    fn extend(&self) -> async_graphql::Error {
        async_graphql::Error::new(self.to_string()).extend_with(|_, ext| {
            ext.set("code", self.code());
            match self {
                ServiceError::UpstreamThrottled {
                    retry_after: Some(after),
                } => ext.set("retryAfter", after.as_secs_f64().ceil() as u64),
                ServiceError::ClaimsChallenge {
                    claims,
                    authorization_uri,
                } => {
                    ext.set("claims", claims.as_str());
                    ext.set("authorizationUri", authorization_uri.as_str());
                }
                ServiceError::ConsentRequired { consent_url } => {
                    ext.set("consentUrl", consent_url.as_str())
                }
                ServiceError::ReconnectRequired { connect_url } => {
                    ext.set("connectUrl", connect_url.as_str())
                }
                _ => {}
            }
        })
    }
}

/// `result.gql()?` in resolvers: a service result as a GraphQL result.
pub(crate) trait GqlResult<T> {
    fn gql(self) -> async_graphql::Result<T>;
}

impl<T> GqlResult<T> for Result<T, ServiceError> {
    fn gql(self) -> async_graphql::Result<T> {
        self.map_err(|e| e.extend())
    }
}
