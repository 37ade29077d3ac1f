//! Use-cases. The only place that decides *whether* a caller may do a thing and *which*
//! Graph identity does it; transports call in here and map [`ServiceError`] once each.

mod batcher;
pub mod directory;
mod paging;

use std::time::Duration;

use serde::de::DeserializeOwned;

use crate::auth::Caller;
use crate::graph::{GraphClient, GraphError, GraphGet, UrlError};
use crate::identity::{GraphIdentity, IdentityError};
use batcher::GraphBatcher;
pub use paging::{Cursor, Page};

/// The one error of the service layer; REST maps it to a status, GraphQL to
/// `extensions.code`, each in one place.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ServiceError {
    #[error("authentication required")]
    Unauthenticated,
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    BadInput(String),
    #[error("Microsoft Graph is throttling requests; retry later")]
    UpstreamThrottled { retry_after: Option<Duration> },
    #[error("Microsoft Graph could not complete the request")]
    Upstream,
    #[error("internal error")]
    Internal,
}

impl ServiceError {
    /// The stable code callers program against (GraphQL `extensions.code`, REST `error.code`).
    pub fn code(&self) -> &'static str {
        match self {
            ServiceError::Unauthenticated => "UNAUTHENTICATED",
            ServiceError::Forbidden(_) => "FORBIDDEN",
            ServiceError::NotFound(_) => "NOT_FOUND",
            ServiceError::BadInput(_) => "BAD_USER_INPUT",
            ServiceError::UpstreamThrottled { .. } => "UPSTREAM_THROTTLED",
            ServiceError::Upstream => "UPSTREAM_ERROR",
            ServiceError::Internal => "INTERNAL",
        }
    }

    /// Maps a Graph failure for a resource the caller named (`what`, e.g. "user 'x'").
    /// Upstream detail is logged here and never returned.
    pub fn from_graph(error: GraphError, what: &str) -> Self {
        match &error {
            GraphError::Api { status: 404, .. } => {
                ServiceError::NotFound(format!("{what} was not found"))
            }
            GraphError::Api {
                status: 400,
                code,
                message,
                ..
            } => {
                tracing::info!(%code, %message, "Graph refused a request as invalid");
                ServiceError::BadInput(format!(
                    "Microsoft Graph refused the request for {what} ({code})"
                ))
            }
            GraphError::Api {
                status: 429 | 503 | 504,
                retry_after,
                request_id,
                ..
            } => {
                tracing::warn!(
                    request_id = request_id.as_deref().unwrap_or(""),
                    ?retry_after,
                    "Graph throttled"
                );
                ServiceError::UpstreamThrottled {
                    retry_after: *retry_after,
                }
            }
            GraphError::Refused(reason) => {
                tracing::warn!(%reason, "refused an upstream URL");
                ServiceError::Upstream
            }
            GraphError::Token(IdentityError::Refused { error, description }) => {
                tracing::error!(%error, %description, "Entra ID refused the gateway's token request");
                ServiceError::Upstream
            }
            other => {
                tracing::warn!(error = %other, "Graph call failed");
                ServiceError::Upstream
            }
        }
    }
}

impl From<UrlError> for ServiceError {
    fn from(e: UrlError) -> Self {
        ServiceError::BadInput(e.0)
    }
}

/// Shared, long-lived service state.
#[derive(Clone)]
pub struct Services {
    pub graph: GraphClient,
}

/// One inbound request's view of the services: who calls, as which Graph identity, with
/// a request-scoped batcher so concurrent resolvers share `$batch` requests.
pub struct Session {
    pub caller: Caller,
    identity: GraphIdentity,
    graph: GraphClient,
    batcher: GraphBatcher,
}

impl Session {
    pub fn new(services: &Services, caller: Caller) -> Self {
        // Only `app` mode exists so far: every caller acts through the gateway's own
        // app-only identity, fenced by its operation policy.
        let identity = services.graph.tokens().app_identity();
        Self {
            caller,
            batcher: GraphBatcher::new(services.graph.clone(), identity.clone()),
            identity,
            graph: services.graph.clone(),
        }
    }

    /// Deny by default: fails unless the caller's policy names `operation`.
    pub fn require(&self, operation: &str) -> Result<(), ServiceError> {
        if self.caller.may(operation) {
            Ok(())
        } else {
            tracing::info!(caller = %self.caller.name, operation, "denied by policy");
            Err(ServiceError::Forbidden(format!(
                "caller '{}' is not allowed to perform '{operation}'",
                self.caller.name
            )))
        }
    }

    /// A GET through the request's batcher (batched with its neighbours, cached).
    async fn get_json<T: DeserializeOwned>(&self, request: GraphGet) -> Result<T, GraphError> {
        let body = self.batcher.load(request).await?;
        serde_json::from_slice(&body).map_err(|e| GraphError::BadResponse(e.to_string()))
    }

    fn graph(&self) -> &GraphClient {
        &self.graph
    }

    pub fn identity(&self) -> &GraphIdentity {
        &self.identity
    }
}
