//! One span and one count per GraphQL operation, named after the operation.
//!
//! async-graphql's `Tracing` extension gives the spans inside an operation (parse,
//! validation, execute, one per non-scalar field) but knows neither the operation's name
//! nor how it ended; this extension wraps it with a `graphql.operation` span that does,
//! and counts `gateway_graphql_operations_total{operation, outcome}`.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextParseQuery, NextPrepareRequest, NextRequest,
    NextValidation,
};
use async_graphql::parser::types::{DocumentOperations, ExecutableDocument, OperationType};
use async_graphql::{Request, Response, ServerError, ServerResult, ValidationResult, Variables};
use tracing::Instrument;

use super::{GraphqlOutcome, UNPARSED_OPERATION, operation_label, record_graphql_operation};

/// Register it before `Tracing`, so its span is the parent of the engine's.
pub struct GraphqlObserver;

impl ExtensionFactory for GraphqlObserver {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(Observer::default())
    }
}

/// What one request's hooks learn, read when the response is ready.
#[derive(Default)]
struct Observer {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// The `operationName` the client sent.
    requested: Option<String>,
    /// The operation's name once the document is parsed (`None`: anonymous).
    name: Option<Option<String>>,
    kind: Option<&'static str>,
    /// Refused before execution (parse or validation error, a limit).
    rejected: bool,
}

#[async_trait::async_trait]
impl Extension for Observer {
    async fn request(&self, ctx: &ExtensionContext<'_>, next: NextRequest<'_>) -> Response {
        let span = tracing::info_span!(
            "graphql.operation",
            graphql.operation.name = tracing::field::Empty,
            graphql.operation.type = tracing::field::Empty,
            graphql.outcome = tracing::field::Empty,
            otel.status_code = tracing::field::Empty,
        );
        let started = Instant::now();
        let response = next.run(ctx).instrument(span.clone()).await;
        let (name, kind, rejected) = {
            let state = self.state.lock().expect("observer lock");
            let name = match &state.name {
                Some(parsed) => parsed.clone(),
                // Never parsed: the name the client asked for, if any.
                None => Some(
                    state
                        .requested
                        .clone()
                        .unwrap_or_else(|| UNPARSED_OPERATION.to_owned()),
                ),
            };
            (name, state.kind, state.rejected || state.name.is_none())
        };
        let outcome = if rejected {
            GraphqlOutcome::Rejected
        } else if response.errors.is_empty() {
            GraphqlOutcome::Ok
        } else {
            GraphqlOutcome::Error
        };
        let label = operation_label(name.as_deref());
        let kind = kind.unwrap_or("unknown");
        super::otel::rename(&span, format!("{kind} {label}"));
        span.record("graphql.operation.name", label.as_str());
        span.record("graphql.operation.type", kind);
        span.record("graphql.outcome", outcome.as_str());
        if outcome != GraphqlOutcome::Ok {
            span.record("otel.status_code", "ERROR");
        }
        record_graphql_operation(name.as_deref(), outcome);
        metrics::histogram!(
            "gateway_graphql_operation_duration_seconds",
            "operation" => label,
            "outcome" => outcome.as_str(),
        )
        .record(started.elapsed().as_secs_f64());
        response
    }

    async fn prepare_request(
        &self,
        ctx: &ExtensionContext<'_>,
        request: Request,
        next: NextPrepareRequest<'_>,
    ) -> ServerResult<Request> {
        self.state.lock().expect("observer lock").requested = request.operation_name.clone();
        next.run(ctx, request).await
    }

    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        let parsed = next.run(ctx, query, variables).await;
        let mut state = self.state.lock().expect("observer lock");
        match &parsed {
            Ok(document) => {
                let (name, kind) = operation_of(document, state.requested.as_deref());
                state.name = Some(name);
                state.kind = kind;
            }
            Err(_) => state.rejected = true,
        }
        parsed
    }

    async fn validation(
        &self,
        ctx: &ExtensionContext<'_>,
        next: NextValidation<'_>,
    ) -> Result<ValidationResult, Vec<ServerError>> {
        let validated = next.run(ctx).await;
        if validated.is_err() {
            self.state.lock().expect("observer lock").rejected = true;
        }
        validated
    }
}

/// The name and type of the operation a document runs: the requested one, or its only one.
fn operation_of(
    document: &ExecutableDocument,
    requested: Option<&str>,
) -> (Option<String>, Option<&'static str>) {
    let kind = |ty: OperationType| match ty {
        OperationType::Query => "query",
        OperationType::Mutation => "mutation",
        OperationType::Subscription => "subscription",
    };
    match (&document.operations, requested) {
        (DocumentOperations::Single(op), _) => (None, Some(kind(op.node.ty))),
        (DocumentOperations::Multiple(ops), Some(name)) => match ops.get(name) {
            Some(op) => (Some(name.to_owned()), Some(kind(op.node.ty))),
            None => (Some(name.to_owned()), None),
        },
        (DocumentOperations::Multiple(ops), None) => match ops.iter().next() {
            Some((name, op)) if ops.len() == 1 => {
                (Some(name.as_str().to_owned()), Some(kind(op.node.ty)))
            }
            _ => (None, None),
        },
    }
}
