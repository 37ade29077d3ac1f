//! The GraphQL transport: schema, HTTP handler and the one mapping of service errors to
//! `extensions.code`.

mod calendar;
mod files;
pub mod graphiql;
mod http;
pub mod limits;
mod mail;
pub mod persisted;
mod subscriptions;
mod types;
mod watches;
pub mod ws;

use async_graphql::{ErrorExtensions, MergedObject, Schema};
use axum::http::{HeaderMap, header};

pub use http::{GraphqlRuntime, handler};
pub use subscriptions::Subscription;

use crate::config::Config;
use crate::service::ServiceError;
/// The root query type: each area contributes its fields.
#[derive(MergedObject, Default)]
pub struct Query(
    types::DirectoryQuery,
    mail::MailQuery,
    calendar::CalendarQuery,
    files::FilesQuery,
    watches::WatchQuery,
);

/// The root mutation type.
#[derive(MergedObject, Default)]
pub struct Mutation(
    mail::MailMutation,
    calendar::CalendarMutation,
    files::FilesMutation,
    watches::WatchMutation,
);

pub type GatewaySchema = Schema<Query, Mutation, Subscription>;

/// The schema as development runs it (and as `schema/schema.graphql` shows it).
pub fn build_schema() -> GatewaySchema {
    build_schema_for(&Config::default())
}

/// The schema for a configuration. The limits module refuses what is too deep before
/// execution with its own code; async-graphql's depth limit stays as a second line.
pub fn build_schema_for(config: &Config) -> GatewaySchema {
    let builder = Schema::build(Query::default(), Mutation::default(), Subscription)
        // The observer first: its operation span is the parent of the engine's spans.
        .extension(crate::telemetry::GraphqlObserver)
        .extension(async_graphql::extensions::Tracing)
        .extension(http::ExecutionStarted)
        // A Session per subscription event (see `subscriptions`).
        .extension(subscriptions::EventSession)
        .limit_depth(config.graphql.max_depth)
        .limit_recursive_depth(32);
    // In production an error never hints at field names the caller did not know.
    let builder = if config.production {
        builder.disable_suggestions()
    } else {
        builder
    };
    builder.finish()
}

/// The SDL checked in as `schema/schema.graphql`.
pub fn sdl() -> String {
    build_schema().sdl()
}

/// A GraphQL multipart request (files attached), which gets `files.transfer_timeout`.
pub(crate) fn is_upload(path: &str, headers: &HeaderMap) -> bool {
    path == "/graphql"
        && headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("multipart/form-data"))
}

/// The one place a service error becomes a GraphQL error.
impl ErrorExtensions for ServiceError {
    fn extend(&self) -> async_graphql::Error {
        async_graphql::Error::new(self.to_string()).extend_with(|_, ext| {
            ext.set("code", self.code());
            match self {
                ServiceError::UpstreamThrottled {
                    retry_after: Some(after),
                }
                | ServiceError::RateLimited { retry_after: after } => {
                    ext.set("retryAfter", after.as_secs_f64().ceil().max(1.0) as u64)
                }
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
