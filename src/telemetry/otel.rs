//! OpenTelemetry traces: the OTLP/HTTP exporter, the W3C trace-context propagation of
//! inbound requests, and the trace id the gateway sends Graph as `client-request-id`.
//!
//! Off unless `telemetry.otlp_endpoint` is set: then no layer is installed, every span of
//! the crate stays a plain `tracing` span, and nothing here costs more than a lookup.

use axum::http::HeaderMap;
use opentelemetry::propagation::Extractor;
use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use tracing::Subscriber;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::Layer;
use tracing_subscriber::filter::FilterFn;
use tracing_subscriber::registry::LookupSpan;

use crate::config::TelemetryConfig;

/// The exporter and tracer provider for `config`, or `None` when tracing is off or the
/// exporter cannot be built (reported on stderr: logging is not set up yet).
pub(super) fn provider(config: &TelemetryConfig) -> Option<SdkTracerProvider> {
    let base = config.otlp_endpoint.as_ref()?;
    let endpoint = format!("{}/v1/traces", base.as_str().trim_end_matches('/'));
    let exporter = match opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(endpoint)
        .with_timeout(std::time::Duration::from_secs(5))
        .build()
    {
        Ok(exporter) => exporter,
        Err(e) => {
            eprintln!("warning: telemetry.otlp_endpoint: traces are off: {e}");
            return None;
        }
    };
    // Parent-based: a caller that sampled its trace gets the gateway's spans in it (and one
    // that did not, none), whatever the local ratio.
    let sampler = Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(config.sample_ratio)));
    Some(
        SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_sampler(sampler)
            .with_resource(
                Resource::builder()
                    .with_service_name(config.service_name.clone())
                    .build(),
            )
            .build(),
    )
}

/// The layer that turns spans into OpenTelemetry spans. Only spans are exported, not log
/// events (their messages may name users); and not async-graphql's `parse` span, whose
/// `source` field is the whole document with its variables (ids, message bodies).
pub(super) fn layer<S>(provider: &SdkTracerProvider) -> impl Layer<S> + use<S>
where
    S: Subscriber + for<'span> LookupSpan<'span>,
{
    let exported = FilterFn::new(|meta| {
        meta.is_span()
            && (meta.target().starts_with("m365_gateway")
                || (meta.target() == "async_graphql::graphql" && meta.name() != "parse"))
    });
    tracing_opentelemetry::layer()
        .with_tracer(provider.tracer("m365-gateway"))
        .with_location(false)
        .with_threads(false)
        .with_tracked_inactivity(false)
        .with_filter(exported)
}

pub(super) fn install_propagator() {
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
}

/// Makes `span` (an inbound request's) a child of the caller's trace when the request
/// carries a W3C `traceparent`. Does nothing when tracing is off or the header is absent or
/// malformed (the span then starts a trace of its own).
pub fn adopt_remote_parent(span: &tracing::Span, headers: &HeaderMap) {
    if !headers.contains_key("traceparent") {
        return;
    }
    let parent = opentelemetry::global::get_text_map_propagator(|propagator| {
        propagator.extract(&HeaderExtractor(headers))
    });
    if parent.span().span_context().is_valid() {
        // Fails only when tracing is off or the span is filtered out: nothing to join then.
        let _ = span.set_parent(parent);
    }
}

/// The trace id of `span` as a GUID (`8-4-4-4-12` hex, the form Graph documents for
/// `client-request-id`), or `None` when the span is not traced.
pub fn trace_guid(span: &tracing::Span) -> Option<String> {
    if span.is_disabled() {
        return None;
    }
    let context = span.context();
    let span_context = context.span().span_context().clone();
    if !span_context.is_valid() {
        return None;
    }
    let hex = span_context.trace_id().to_string();
    Some(format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    ))
}

/// Renames the OpenTelemetry span of `span`, once it has started (recording `otel.name`
/// then no longer does): the GraphQL operation span learns its name only after parsing.
pub(crate) fn rename(span: &tracing::Span, name: String) {
    if !span.is_disabled() {
        span.context().span().update_name(name);
    }
}

struct HeaderExtractor<'a>(&'a HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}
