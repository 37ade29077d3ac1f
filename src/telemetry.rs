//! Logs, traces and metrics.
//!
//! - Logs: `RUST_LOG` wins over the configured level so an operator can turn on debug
//!   output without editing config.
//! - Traces: OpenTelemetry over OTLP/HTTP when `telemetry.otlp_endpoint` is set
//!   ([`otel`]); every span of this crate is exported, so span fields never hold bodies,
//!   tokens, query strings or user ids (route templates instead).
//! - Metrics: one process-wide Prometheus registry rendered at `/metrics`; the names are
//!   listed in `docs/architecture.md` ("Operations") and must stay stable.

mod graphql;
pub mod otel;

use std::collections::HashSet;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use axum::extract::MatchedPath;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry};

use crate::config::{LogConfig, LogFormat, TelemetryConfig};

pub use graphql::GraphqlObserver;

/// What [`init`] installed; [`Telemetry::shutdown`] flushes the spans still buffered.
#[must_use = "dropping it without shutdown() loses the last spans"]
pub struct Telemetry {
    tracer: Option<opentelemetry_sdk::trace::SdkTracerProvider>,
}

impl Telemetry {
    /// Exports what is buffered and stops the exporter. Blocking (the exporter has its own
    /// thread and a blocking HTTP client): call it outside the async runtime, at exit.
    pub fn shutdown(self) {
        if let Some(provider) = self.tracer
            && let Err(e) = provider.shutdown_with_timeout(Duration::from_secs(5))
        {
            eprintln!("warning: the last traces could not be exported: {e}");
        }
    }
}

/// Installs the global subscriber: logs to stderr, plus the OpenTelemetry layer when an
/// OTLP endpoint is configured. A second call (tests) installs nothing.
pub fn init(log: &LogConfig, telemetry: &TelemetryConfig) -> Telemetry {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(log_directives(&log.level)))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    // Filtered per layer, so debug spans the log level hides can still be exported.
    let logs: Box<dyn Layer<Registry> + Send + Sync> = match log.format {
        LogFormat::Json => logs.json().with_filter(filter).boxed(),
        LogFormat::Pretty => logs.compact().with_filter(filter).boxed(),
    };
    let provider = otel::provider(telemetry);
    let traces = provider.as_ref().map(otel::layer);
    let installed = tracing_subscriber::registry()
        .with(logs)
        .with(traces)
        .try_init()
        .is_ok();
    match provider {
        Some(provider) if installed => {
            otel::install_propagator();
            Telemetry {
                tracer: Some(provider),
            }
        }
        Some(provider) => {
            let _ = provider.shutdown();
            Telemetry { tracer: None }
        }
        None => Telemetry { tracer: None },
    }
}

/// The configured level, with the GraphQL engine's per-field spans and events kept out of
/// the logs unless the directive names `async_graphql` itself: they are for traces, and at
/// `info` they would add a line per failed field.
fn log_directives(level: &str) -> String {
    if level.contains("async_graphql") {
        level.to_owned()
    } else {
        format!("{level},async_graphql=warn")
    }
}

/// Upper bounds (seconds) of the latency histograms: 5 ms to 60 s.
const LATENCY_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// The process-wide Prometheus recorder, installed on first use. Every `App` in the
/// process (tests start many) renders the same registry.
pub fn metrics() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        // Latencies as histograms (buckets), not summaries: buckets add up across
        // replicas, quantiles do not.
        let handle = PrometheusBuilder::new()
            .set_buckets_for_metric(
                Matcher::Suffix("_duration_seconds".to_owned()),
                LATENCY_BUCKETS,
            )
            .expect("non-empty buckets")
            .install_recorder()
            .expect("the only metrics recorder");
        // The exporter has no listener of its own here, so histogram upkeep is ours.
        let upkeep = handle.clone();
        std::thread::Builder::new()
            .name("metrics-upkeep".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(Duration::from_secs(5));
                    upkeep.run_upkeep();
                }
            })
            .expect("a thread");
        handle
    })
}

/// Counts and times every inbound request by method, route template (`/api/v1/users/{id}`,
/// never the raw path, which holds ids) and status, and records the status on the request
/// span. The time runs to the response head: a streamed download's body is not in it.
pub async fn http_metrics(
    route: Option<MatchedPath>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let started = Instant::now();
    let method = request.method().as_str().to_owned();
    let route = route.map_or_else(|| "unmatched".to_owned(), |r| r.as_str().to_owned());
    let response = next.run(request).await;
    let status = response.status().as_u16();
    tracing::Span::current().record("http.response.status_code", status);
    let labels = [
        ("method", method),
        ("route", route),
        ("status", status.to_string()),
    ];
    metrics::counter!("gateway_http_requests_total", &labels).increment(1);
    metrics::histogram!("gateway_http_request_duration_seconds", &labels)
        .record(started.elapsed().as_secs_f64());
    response
}

/// How a GraphQL operation ended, for `gateway_graphql_operations_total{outcome}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GraphqlOutcome {
    /// Executed with no error.
    Ok,
    /// Executed, with at least one error in the response (a field failed).
    Error,
    /// Refused before any resolver ran: unauthenticated, unparsable, invalid, over a limit.
    Rejected,
}

impl GraphqlOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            GraphqlOutcome::Ok => "ok",
            GraphqlOutcome::Error => "error",
            GraphqlOutcome::Rejected => "rejected",
        }
    }
}

/// Operation label of a request refused before its document was read.
pub const UNPARSED_OPERATION: &str = "(unparsed)";
/// Operation label of an operation without a name.
pub const ANONYMOUS_OPERATION: &str = "(anonymous)";
/// Operation label once [`MAX_OPERATION_NAMES`] distinct names have been seen.
pub const OTHER_OPERATION: &str = "(other)";
/// Distinct operation names that get a series of their own. Clients choose the names, so
/// the label is capped to keep the registry bounded.
pub const MAX_OPERATION_NAMES: usize = 200;

/// Counts one GraphQL operation by name and outcome (`gateway_graphql_operations_total`).
/// `name` is `None` for an anonymous operation; names are capped (see
/// [`MAX_OPERATION_NAMES`]). The parentheses of the special labels cannot occur in a
/// GraphQL name, so they never collide with a real one.
pub fn record_graphql_operation(name: Option<&str>, outcome: GraphqlOutcome) {
    metrics::counter!(
        "gateway_graphql_operations_total",
        "operation" => operation_label(name),
        "outcome" => outcome.as_str(),
    )
    .increment(1);
}

/// The label for an operation name: itself while few names have been seen.
pub(crate) fn operation_label(name: Option<&str>) -> String {
    static SEEN: OnceLock<Mutex<HashSet<String>>> = OnceLock::new();
    let Some(name) = name else {
        return ANONYMOUS_OPERATION.to_owned();
    };
    if [UNPARSED_OPERATION, ANONYMOUS_OPERATION, OTHER_OPERATION].contains(&name) {
        return name.to_owned();
    }
    let valid = !name.is_empty()
        && name.len() <= 128
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !valid {
        return OTHER_OPERATION.to_owned();
    }
    let mut seen = SEEN
        .get_or_init(Default::default)
        .lock()
        .expect("operation names lock");
    if seen.contains(name) || seen.len() < MAX_OPERATION_NAMES {
        seen.insert(name.to_owned());
        name.to_owned()
    } else {
        OTHER_OPERATION.to_owned()
    }
}

/// Names the authenticated caller on the request's span, so its log lines say who called.
pub fn record_caller(name: &str) {
    tracing::Span::current().record("caller", name);
}

/// Counts one request refused by the rate limiter (`gateway_rate_limited_total`): `caller`
/// is the caller's configured name (or `anonymous`), `kind` which limit it hit.
pub fn record_rate_limited(caller: &str, kind: &str) {
    metrics::counter!(
        "gateway_rate_limited_total",
        "caller" => caller.to_owned(),
        "kind" => kind.to_owned(),
    )
    .increment(1);
}

/// A low-cardinality label for a Graph URL: ids become `{id}`, the query is dropped.
/// `/users/ann@contoso.com/directReports?$top=5` → `/users/{id}/directReports`.
pub fn graph_route(url: &str) -> String {
    const COLLECTIONS: &[&str] = &[
        "users",
        "groups",
        "messages",
        "mailFolders",
        "events",
        "calendars",
        "contacts",
        "contactFolders",
        "drives",
        "items",
        "sites",
        "subscriptions",
        "attachments",
        "directoryRoles",
        "lists",
    ];
    let path = hide_item_paths(url.split('?').next().unwrap_or_default());
    let path = path.as_str();
    let mut out = String::new();
    let mut previous = "";
    for segment in path.split('/').filter(|s| !s.is_empty()) {
        out.push('/');
        if COLLECTIONS.contains(&previous) && !segment.starts_with('$') {
            out.push_str("{id}");
        } else {
            out.push_str(segment);
        }
        previous = segment;
    }
    if out.is_empty() { "/".to_owned() } else { out }
}

/// Path-based addressing (`root:/Q1/report.pdf:`, a site's `host:/sites/x:`) names files
/// and sites: each such path becomes `{path}` so labels stay few and say nothing private.
fn hide_item_paths(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    let mut rest = path;
    while let Some(start) = rest.find(":/") {
        out.push_str(&rest[..start]);
        out.push_str(":{path}");
        let after = &rest[start + 2..];
        match after.find(':') {
            Some(end) => {
                out.push(':');
                rest = &after[end + 1..];
            }
            None => return out,
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::graph_route;

    #[test]
    fn graph_routes_hide_ids_and_queries() {
        assert_eq!(
            graph_route("/users/ann@contoso.com/directReports/microsoft.graph.user?$top=5"),
            "/users/{id}/directReports/microsoft.graph.user"
        );
        assert_eq!(graph_route("/users?$select=id"), "/users");
        assert_eq!(graph_route("/users/$count"), "/users/$count");
        assert_eq!(graph_route("/$batch"), "/$batch");
        assert_eq!(
            graph_route("/drives/b!x/root:/Q1 secret/report.pdf:/content"),
            "/drives/{id}/root:{path}:/content"
        );
        assert_eq!(
            graph_route("/sites/contoso.sharepoint.com:/sites/finance:/drives"),
            "/sites/{id}/drives"
        );
    }
}
