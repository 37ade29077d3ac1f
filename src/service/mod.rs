//! Use-cases. The only place that decides *whether* a caller may do a thing and *which*
//! Graph identity does it; transports call in here and map [`ServiceError`] once each.

mod batcher;
pub mod calendar;
pub mod connect;
pub mod contacts;
pub mod directory;
pub mod files;
pub mod files_transfer;
pub mod links;
pub mod mail;
pub mod mail_send;
mod paging;
pub mod policy;
pub mod subscriptions;
pub mod timezone;
pub mod webhooks;

use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use url::Url;

use crate::auth::Caller;
use crate::config::CallerMode;
use crate::graph::{GraphClient, GraphError, GraphGet, UrlError};
use crate::identity::{Access, GraphIdentity, IdentityError, assertion_hash, graph_scope_string};
use crate::store::Store;
use batcher::GraphBatcher;
pub use paging::{Cursor, Page};
use policy::{Decision, PolicyResolver};

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
    /// Entra ID wants more from the user (MFA, Conditional Access): the caller must get a
    /// new token that satisfies `claims` (base64) at `authorization_uri`.
    #[error("Microsoft Entra ID requires the user to satisfy additional claims (for example MFA)")]
    ClaimsChallenge {
        claims: String,
        authorization_uri: String,
    },
    #[error(
        "the gateway's permissions have not been consented to; an administrator must grant them"
    )]
    ConsentRequired { consent_url: String },
    #[error("the user must connect their account again")]
    ReconnectRequired { connect_url: String },
    #[error("Microsoft Graph is throttling requests; retry later")]
    UpstreamThrottled { retry_after: Option<Duration> },
    #[error("Microsoft Graph could not complete the request")]
    Upstream,
    #[error("Microsoft Graph did not answer in time")]
    UpstreamTimeout,
    /// A write that may act only once (sending mail) got no clear answer: it may or may not
    /// have happened. The gateway does not retry it; the caller decides (check Sent Items).
    #[error(
        "Microsoft Graph did not confirm the operation in time; it may or may not have happened, so it was not retried"
    )]
    UpstreamOutcomeUnknown,
    #[error("{0}")]
    PayloadTooLarge(String),
    /// A delta token Graph no longer knows: the caller must start a full sync again.
    #[error("{0}")]
    SyncReset(String),
    /// The name is taken (conflict behaviour `fail`), or the item changed in a way that
    /// conflicts with the request.
    #[error("{0}")]
    Conflict(String),
    /// `If-Match` named an eTag the item no longer has.
    #[error("{0}")]
    PreconditionFailed(String),
    /// The drive is full (Graph 507).
    #[error("{0}")]
    InsufficientStorage(String),
    /// A byte range outside the file; `size` is the file's length when known.
    #[error("the requested range is outside the file")]
    RangeNotSatisfiable { size: Option<u64> },
    #[error("Microsoft Graph sent an answer the gateway cannot use")]
    UpstreamBadResponse,
    #[error("{0}")]
    Unavailable(String),
    #[error("internal error")]
    Internal,
    /// The caller used up its own rate limit at the gateway (not Graph's).
    #[error("the caller's rate limit is reached; retry later")]
    RateLimited { retry_after: Duration },
}

impl ServiceError {
    /// The stable code callers program against (GraphQL `extensions.code`, REST `error.code`).
    pub fn code(&self) -> &'static str {
        match self {
            ServiceError::Unauthenticated => "UNAUTHENTICATED",
            ServiceError::Forbidden(_) => "FORBIDDEN",
            ServiceError::NotFound(_) => "NOT_FOUND",
            ServiceError::BadInput(_) => "BAD_USER_INPUT",
            ServiceError::ClaimsChallenge { .. } => "CLAIMS_CHALLENGE",
            ServiceError::ConsentRequired { .. } => "CONSENT_REQUIRED",
            ServiceError::ReconnectRequired { .. } => "RECONNECT_REQUIRED",
            ServiceError::UpstreamThrottled { .. } => "UPSTREAM_THROTTLED",
            ServiceError::Upstream => "UPSTREAM_ERROR",
            ServiceError::UpstreamTimeout => "UPSTREAM_TIMEOUT",
            ServiceError::UpstreamOutcomeUnknown => "UPSTREAM_TIMEOUT_UNKNOWN_OUTCOME",
            ServiceError::PayloadTooLarge(_) => "PAYLOAD_TOO_LARGE",
            ServiceError::SyncReset(_) => "SYNC_RESET",
            ServiceError::Conflict(_) => "CONFLICT",
            ServiceError::PreconditionFailed(_) => "PRECONDITION_FAILED",
            ServiceError::InsufficientStorage(_) => "INSUFFICIENT_STORAGE",
            ServiceError::RangeNotSatisfiable { .. } => "RANGE_NOT_SATISFIABLE",
            ServiceError::UpstreamBadResponse => "UPSTREAM_BAD_RESPONSE",
            ServiceError::Unavailable(_) => "UNAVAILABLE",
            ServiceError::Internal => "INTERNAL",
            ServiceError::RateLimited { .. } => "RATE_LIMITED",
        }
    }

    /// Maps a Graph failure for a resource the caller named (`what`, e.g. "user 'x'").
    /// Upstream detail is logged here and never returned. Identity failures that need
    /// the session's context (consent, reconnect) are finished by [`Session::upstream`].
    pub fn from_graph(error: GraphError, what: &str) -> Self {
        match &error {
            GraphError::Api { status: 404, .. } => {
                ServiceError::NotFound(format!("{what} was not found"))
            }
            // Exchange's answer to an id that cannot exist (a folder name that is neither an
            // id nor a well-known name): for the caller, there is no such item.
            GraphError::Api {
                status: 400, code, ..
            } if code == "ErrorInvalidIdMalformed" => {
                ServiceError::NotFound(format!("{what} was not found"))
            }
            GraphError::Api { status: 410, .. } => ServiceError::SyncReset(format!(
                "the sync state of {what} expired; start over without a token"
            )),
            GraphError::Api { status: 409, .. } => {
                ServiceError::Conflict(format!("{what} conflicts with an existing item"))
            }
            GraphError::Api { status: 412, .. } => ServiceError::PreconditionFailed(format!(
                "{what} has changed since the eTag given in If-Match"
            )),
            GraphError::Api { status: 416, .. } => ServiceError::RangeNotSatisfiable { size: None },
            GraphError::Api { status: 507, .. } => ServiceError::InsufficientStorage(format!(
                "there is not enough storage left for {what}"
            )),
            GraphError::Api {
                status: 413, code, ..
            } => {
                tracing::info!(%code, "Graph refused a request as too large");
                ServiceError::PayloadTooLarge(format!("the request for {what} is too large"))
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
            GraphError::CircuitOpen { retry_after } => ServiceError::UpstreamThrottled {
                retry_after: Some(*retry_after),
            },
            GraphError::Saturated => ServiceError::UpstreamThrottled {
                retry_after: Some(Duration::from_secs(1)),
            },
            GraphError::Timeout => {
                tracing::warn!("Graph did not answer in time");
                ServiceError::UpstreamTimeout
            }
            GraphError::OutcomeUnknown(reason) => {
                tracing::warn!(%reason, "a write may or may not have happened");
                ServiceError::UpstreamOutcomeUnknown
            }
            GraphError::BadResponse(reason) => {
                tracing::warn!(%reason, "unusable answer from Graph");
                ServiceError::UpstreamBadResponse
            }
            GraphError::Refused(reason) => {
                // A nextLink pointing elsewhere is Graph (or something posing as it)
                // sending an answer the gateway will not use.
                tracing::warn!(%reason, "refused an upstream URL");
                ServiceError::UpstreamBadResponse
            }
            GraphError::Token(IdentityError::Refused { error, description }) => {
                tracing::error!(%error, %description, "Entra ID refused the gateway's token request");
                ServiceError::Upstream
            }
            GraphError::Token(IdentityError::Store(reason)) => {
                tracing::error!(%reason, "grant store unavailable");
                ServiceError::Unavailable("the gateway's store is unavailable; retry later".into())
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
    pub policy: Arc<PolicyResolver>,
    pub store: Option<Store>,
    /// The gateway's public base URL (connect links).
    pub public_url: Url,
    /// Longest time a request may take; its Graph calls never wait past it.
    pub request_timeout: Duration,
    /// Seals and opens gateway download links.
    pub links: Arc<links::LinkSealer>,
    pub files: files_transfer::FileSettings,
    /// Live change events for GraphQL subscribers (see `webhooks::bus`).
    pub events: crate::webhooks::bus::EventBus,
    /// Change notifications (watches, the receiver, workers); None when turned off.
    pub notifications: Option<Arc<crate::webhooks::manage::Notifications>>,
    /// `notifications.webhooks`: the URL policy of consumer webhooks.
    pub outbound_webhooks: crate::config::OutboundWebhooksConfig,
}

/// One inbound request's view of the services: who calls, as which Graph identity, with
/// a request-scoped batcher so concurrent resolvers share `$batch` requests.
pub struct Session {
    pub caller: Caller,
    access: Access,
    services: Services,
    batcher: GraphBatcher,
    /// No Graph call of this request waits past it.
    deadline: std::time::Instant,
    /// Managers that came expanded with users earlier in this request, by user id, with
    /// the selection they were fetched with (see `directory::Session::adopt`).
    known_managers: std::sync::Mutex<
        std::collections::HashMap<String, (directory::UserSelect, Option<directory::User>)>,
    >,
}

impl Session {
    /// Decides which Graph identity serves this caller. For `connected` callers this
    /// finds the connected user named by the act-as header.
    pub async fn open(services: &Services, caller: Caller) -> Result<Self, ServiceError> {
        Self::open_with_timeout(services, caller, None).await
    }

    /// As [`Session::open`], with the caller's own (shorter) timeout for this request.
    pub async fn open_with_timeout(
        services: &Services,
        caller: Caller,
        timeout: Option<Duration>,
    ) -> Result<Self, ServiceError> {
        let timeout = timeout
            .map(|t| t.min(services.request_timeout))
            .unwrap_or(services.request_timeout);
        Self::open_until(services, caller, timeout).await
    }

    /// As [`Session::open`], for a file upload or download: its Graph calls may take up
    /// to `files.transfer_timeout` instead of the usual request timeout.
    pub async fn open_for_transfer(
        services: &Services,
        caller: Caller,
    ) -> Result<Self, ServiceError> {
        Self::open_until(services, caller, services.files.transfer_timeout).await
    }

    async fn open_until(
        services: &Services,
        caller: Caller,
        timeout: Duration,
    ) -> Result<Self, ServiceError> {
        let deadline = std::time::Instant::now() + timeout;
        let tokens = services.graph.tokens();
        let scopes = graph_scope_string(&caller.scopes);
        let (identity, assertion) = match caller.mode {
            CallerMode::App => (tokens.app_identity(), None),
            CallerMode::Obo => {
                let (Some(assertion), Some(user)) = (caller.assertion.clone(), caller.user.clone())
                else {
                    return Err(ServiceError::Unauthenticated);
                };
                let identity = GraphIdentity::Obo {
                    tenant: caller
                        .tenant
                        .clone()
                        .unwrap_or_else(|| tokens.tenant().to_owned()),
                    user,
                    assertion_hash: assertion_hash(assertion.expose()),
                    scopes,
                };
                (identity, Some(assertion))
            }
            CallerMode::Connected => {
                let named = caller.user.clone().ok_or_else(|| {
                    ServiceError::BadInput(format!(
                        "a connected caller names the user it acts as in the {} header",
                        crate::auth::ACT_AS_HEADER
                    ))
                })?;
                let user = connect::connected_user_id(services, &caller, &named).await?;
                let identity = GraphIdentity::Connected {
                    tenant: tokens.tenant().to_owned(),
                    caller: caller.name.clone(),
                    user,
                    scopes,
                };
                (identity, None)
            }
        };
        let access = Access::new(identity, assertion, caller.policy_version);
        Ok(Self {
            batcher: GraphBatcher::new(services.graph.clone(), access.clone(), deadline),
            deadline,
            caller,
            access,
            services: services.clone(),
            known_managers: Default::default(),
        })
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

    /// Checks that the caller may address user `id` and returns the identifier to use
    /// upstream (the canonical object id when the caller's resources are limited). Runs
    /// before any cache lookup or Graph call.
    pub fn resolve_user(&self, id: &str) -> Result<String, ServiceError> {
        let decision = self
            .services
            .policy
            .check(&self.caller.name, &self.caller.resources, id);
        self.decided(decision, "user outside the caller's resources", || {
            format!("caller '{}' may not access user '{id}'", self.caller.name)
        })
    }

    /// A policy decision as a result: the canonical identifier, or `FORBIDDEN` (logged
    /// with `why`, told to the caller as `denied()`), or `UNAVAILABLE` while the caller's
    /// lists are not resolved yet.
    pub(crate) fn decided(
        &self,
        decision: Decision,
        why: &str,
        denied: impl FnOnce() -> String,
    ) -> Result<String, ServiceError> {
        match decision {
            Decision::Allowed(id) => Ok(id),
            Decision::Denied => {
                tracing::info!(caller = %self.caller.name, "{why}");
                Err(ServiceError::Forbidden(denied()))
            }
            Decision::NotReady => Err(ServiceError::Unavailable(
                "the caller's policy is not resolved yet; retry shortly".into(),
            )),
        }
    }

    /// Fails unless the caller may address every user (listing and searching the directory).
    pub fn require_all_users(&self) -> Result<(), ServiceError> {
        if self.caller.resources.is_all() {
            Ok(())
        } else {
            Err(ServiceError::Forbidden(format!(
                "caller '{}' is limited to specific users and cannot list the directory",
                self.caller.name
            )))
        }
    }

    /// Maps a Graph failure, finishing identity errors with this session's context.
    pub fn upstream(&self, error: GraphError, what: &str) -> ServiceError {
        let app = self.services.graph.tokens().app();
        match error {
            GraphError::Token(IdentityError::ClaimsChallenge { claims }) => {
                ServiceError::ClaimsChallenge {
                    claims,
                    authorization_uri: app
                        .authorize_endpoint()
                        .map(|u| u.to_string())
                        .unwrap_or_default(),
                }
            }
            GraphError::Token(IdentityError::ConsentRequired) => ServiceError::ConsentRequired {
                consent_url: app.admin_consent_url(),
            },
            GraphError::Token(IdentityError::ReconnectRequired) => {
                ServiceError::ReconnectRequired {
                    connect_url: connect::connect_url(
                        &self.services.public_url,
                        &self.caller.name,
                        self.caller.user.as_deref(),
                    ),
                }
            }
            other => ServiceError::from_graph(other, what),
        }
    }

    /// A GET through the request's batcher (batched with its neighbours, cached).
    async fn get_json<T: DeserializeOwned>(&self, request: GraphGet) -> Result<T, GraphError> {
        let body = self.batcher.load(request).await?;
        serde_json::from_slice(&body).map_err(|e| GraphError::BadResponse(e.to_string()))
    }

    fn graph(&self) -> &GraphClient {
        &self.services.graph
    }

    pub fn access(&self) -> &Access {
        &self.access
    }

    /// One write to a mailbox's data (messages, events, contacts). The cached answers
    /// about the mailbox are evicted whatever the outcome: a failed write may have acted.
    pub(crate) async fn write_mailbox(
        &self,
        key: &str,
        request: crate::graph::GraphWrite,
        what: &str,
    ) -> Result<crate::graph::GraphReply, ServiceError> {
        let result = self
            .graph()
            .write(self.access(), &request, self.deadline())
            .await
            .map_err(|e| self.upstream(e, what));
        self.graph().invalidate_mailbox(key).await;
        result
    }

    /// When this request's Graph calls must be done.
    pub fn deadline(&self) -> std::time::Instant {
        self.deadline
    }

    /// True when Graph calls run as the user (`obo`, `connected`), so `/me` is that user.
    pub fn is_delegated(&self) -> bool {
        self.access.identity.is_delegated()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(status: u16, code: &str) -> GraphError {
        GraphError::Api {
            status,
            code: code.into(),
            message: "detail that must not reach callers".into(),
            request_id: Some("rid".into()),
            retry_after: Some(Duration::from_secs(7)),
        }
    }

    /// One row per arm of `from_graph`: the table in docs/architecture.md.
    #[test]
    fn every_graph_error_maps_to_its_documented_service_error() {
        let rows: Vec<(GraphError, &str)> = vec![
            (api(404, "Request_ResourceNotFound"), "NOT_FOUND"),
            (api(400, "Request_UnsupportedQuery"), "BAD_USER_INPUT"),
            (api(400, "ErrorInvalidIdMalformed"), "NOT_FOUND"),
            (api(429, "TooManyRequests"), "UPSTREAM_THROTTLED"),
            (api(503, "serviceNotAvailable"), "UPSTREAM_THROTTLED"),
            (api(504, "UnknownError"), "UPSTREAM_THROTTLED"),
            (
                GraphError::CircuitOpen {
                    retry_after: Duration::from_secs(3),
                },
                "UPSTREAM_THROTTLED",
            ),
            (GraphError::Saturated, "UPSTREAM_THROTTLED"),
            (GraphError::Timeout, "UPSTREAM_TIMEOUT"),
            (
                GraphError::OutcomeUnknown("reset".into()),
                "UPSTREAM_TIMEOUT_UNKNOWN_OUTCOME",
            ),
            (api(410, "syncStateNotFound"), "SYNC_RESET"),
            (api(413, "RequestEntityTooLarge"), "PAYLOAD_TOO_LARGE"),
            (
                GraphError::BadResponse("html".into()),
                "UPSTREAM_BAD_RESPONSE",
            ),
            (
                GraphError::Refused("nextLink elsewhere".into()),
                "UPSTREAM_BAD_RESPONSE",
            ),
            (GraphError::Unreachable("refused".into()), "UPSTREAM_ERROR"),
            (GraphError::Interrupted("reset".into()), "UPSTREAM_ERROR"),
            (api(403, "Authorization_RequestDenied"), "UPSTREAM_ERROR"),
            (api(401, "InvalidAuthenticationToken"), "UPSTREAM_ERROR"),
            (api(409, "nameAlreadyExists"), "CONFLICT"),
            (api(412, "preconditionFailed"), "PRECONDITION_FAILED"),
            (api(416, "invalidRange"), "RANGE_NOT_SATISFIABLE"),
            (api(507, "quotaLimitReached"), "INSUFFICIENT_STORAGE"),
            (api(418, "Teapot"), "UPSTREAM_ERROR"),
            (
                GraphError::Token(IdentityError::Refused {
                    error: "invalid_client".into(),
                    description: "AADSTS7000215".into(),
                }),
                "UPSTREAM_ERROR",
            ),
            (
                GraphError::Token(IdentityError::Store("down".into())),
                "UNAVAILABLE",
            ),
        ];
        for (error, code) in rows {
            let mapped = ServiceError::from_graph(error.clone(), "user 'x'");
            assert_eq!(mapped.code(), code, "{error:?}");
            assert!(!mapped.to_string().contains("must not reach"), "{mapped}");
        }
        match ServiceError::from_graph(api(429, "TooManyRequests"), "x") {
            ServiceError::UpstreamThrottled { retry_after } => {
                assert_eq!(retry_after, Some(Duration::from_secs(7)))
            }
            other => panic!("{other:?}"),
        }
    }
}
