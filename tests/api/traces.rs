//! OpenTelemetry: a request that arrives inside a caller's trace (W3C `traceparent`) is
//! exported into that trace — request, GraphQL operation, resolvers, `$batch` rounds and
//! Graph calls — and Graph sees the trace id as `client-request-id`.
//!
//! The gateway runs as its own process (the trace exporter is process-wide) and exports to
//! a fake OTLP/HTTP collector in this test; the spans are flushed when it stops.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::routing::post;
use graph_emulator::DEMO_USER_UPN;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{loopback, test_token};
use crate::process::GatewayProcess;

/// Collects every export it is sent.
async fn fake_collector() -> (String, Arc<Mutex<Vec<Bytes>>>) {
    let received: Arc<Mutex<Vec<Bytes>>> = Arc::default();
    let app = Router::new()
        .route(
            "/v1/traces",
            post(
                async |State(received): State<Arc<Mutex<Vec<Bytes>>>>, body: Bytes| {
                    received.lock().unwrap().push(body);
                    // An empty ExportTraceServiceResponse: everything accepted.
                    ([("content-type", "application/x-protobuf")], Bytes::new())
                },
            ),
        )
        .with_state(received.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}"), received)
}

fn spans(exports: &[Bytes]) -> Vec<Span> {
    exports
        .iter()
        .flat_map(|body| {
            ExportTraceServiceRequest::decode(body.as_ref())
                .expect("OTLP protobuf")
                .resource_spans
        })
        .flat_map(|r| r.scope_spans)
        .flat_map(|s| s.spans)
        .collect()
}

fn attribute(span: &Span, key: &str) -> Option<String> {
    let value = span.attributes.iter().find(|kv| kv.key == key)?;
    Some(match value.value.as_ref()?.value.as_ref()? {
        AnyValue::StringValue(s) => s.clone(),
        AnyValue::IntValue(i) => i.to_string(),
        AnyValue::BoolValue(b) => b.to_string(),
        AnyValue::DoubleValue(d) => d.to_string(),
        other => format!("{other:?}"),
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test]
async fn a_request_with_a_traceparent_is_exported_into_the_callers_trace() {
    let emulator = graph_emulator::Emulator::spawn(Default::default(), loopback())
        .await
        .unwrap();
    let (collector, received) = fake_collector().await;
    let mut gateway = GatewayProcess::start_with(
        &emulator,
        r#"
[callers.reader]
issuer = "tests"
client_id = "reader"
mode = "app"
user_claim = "upn"
operations = ["users.read"]
resources = ["*"]
"#,
        &format!(
            "[telemetry]\notlp_endpoint = \"{collector}\"\nservice_name = \"gateway-under-test\"\n"
        ),
    )
    .await;

    let trace_id = uuid::Uuid::new_v4().simple().to_string();
    let parent_id = &uuid::Uuid::new_v4().simple().to_string()[..16];
    emulator.emulator.reset_stats();
    let token = test_token("reader", Some(DEMO_USER_UPN));
    let response = reqwest::Client::new()
        .post(format!("{}/graphql", gateway.base))
        .bearer_auth(&token)
        .header("traceparent", format!("00-{trace_id}-{parent_id}-01"))
        .json(&json!({ "query": format!(
            "query TraceProbe {{ user(id: \"{DEMO_USER_UPN}\") {{ displayName }} \
             users(first: 3) {{ nodes {{ directReports(first: 2) {{ nodes {{ id }} }} }} }} }}"
        ) }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert!(body.get("errors").is_none(), "{body}");

    // Graph saw the trace id (as a GUID) on every call of the request.
    let guid = format!(
        "{}-{}-{}-{}-{}",
        &trace_id[..8],
        &trace_id[8..12],
        &trace_id[12..16],
        &trace_id[16..20],
        &trace_id[20..]
    );
    let calls: Vec<_> = emulator
        .emulator
        .requests()
        .into_iter()
        .filter(|r| !r.in_batch)
        .collect();
    assert!(calls.len() >= 2, "{calls:?}");
    for call in &calls {
        assert_eq!(call.client_request_id, guid, "{call:?}");
    }

    // The spans are flushed when the gateway stops.
    gateway.terminate();
    let exit = gateway.wait_exit(Duration::from_secs(10)).await;
    assert!(
        exit.is_some_and(|e| e.success()),
        "{exit:?}\n{}",
        gateway.stderr()
    );
    let exports = received.lock().unwrap().clone();
    let resource_names: Vec<String> = exports
        .iter()
        .flat_map(|b| {
            ExportTraceServiceRequest::decode(b.as_ref())
                .unwrap()
                .resource_spans
        })
        .filter_map(|r| r.resource)
        .flat_map(|r| r.attributes)
        .filter(|kv| kv.key == "service.name")
        .filter_map(|kv| match kv.value?.value? {
            AnyValue::StringValue(s) => Some(s),
            _ => None,
        })
        .collect();
    assert!(
        resource_names.iter().all(|n| n == "gateway-under-test") && !resource_names.is_empty(),
        "{resource_names:?}"
    );
    let all = spans(&exports);
    let ours: Vec<&Span> = all
        .iter()
        .filter(|s| hex(&s.trace_id) == trace_id)
        .collect();
    let names: Vec<&str> = ours.iter().map(|s| s.name.as_str()).collect();

    let request = ours
        .iter()
        .find(|s| s.name == "POST /graphql")
        .unwrap_or_else(|| panic!("no request span in {names:?}"));
    assert_eq!(
        hex(&request.parent_span_id),
        parent_id,
        "a child of the caller's span"
    );
    assert_eq!(
        attribute(request, "http.route").as_deref(),
        Some("/graphql")
    );
    assert_eq!(
        attribute(request, "http.response.status_code").as_deref(),
        Some("200")
    );
    let operation = ours
        .iter()
        .find(|s| attribute(s, "graphql.operation.name").as_deref() == Some("TraceProbe"))
        .unwrap_or_else(|| panic!("no operation span in {names:?}"));
    assert_eq!(operation.name, "query TraceProbe");
    assert_eq!(operation.parent_span_id, request.span_id);
    assert_eq!(
        attribute(operation, "graphql.outcome").as_deref(),
        Some("ok")
    );
    assert!(
        ours.iter()
            .any(|s| s.name == "field" && attribute(s, "path").as_deref() == Some("users")),
        "no resolver span in {names:?}"
    );
    assert!(names.contains(&"graph.batch"), "no batch span in {names:?}");
    let graph_calls: Vec<&&Span> = ours
        .iter()
        .filter(|s| attribute(s, "graph.route").is_some())
        .collect();
    // The first round (the user and the list) and the direct reports go as `$batch`es.
    assert!(
        graph_calls.iter().any(|s| s.name == "POST /$batch"),
        "Graph call spans: {names:?}"
    );
    for call in &graph_calls {
        assert_eq!(
            attribute(call, "graph.client_request_id").as_deref(),
            Some(guid.as_str())
        );
        assert!(attribute(call, "graph.request_id").is_some_and(|id| !id.is_empty()));
        assert_eq!(
            attribute(call, "http.response.status_code").as_deref(),
            Some("200")
        );
    }

    // Nothing exported names the user, carries the token, or quotes a URL's query.
    let text: String = all
        .iter()
        .map(|s| {
            let attributes: Vec<String> = s
                .attributes
                .iter()
                .map(|kv| format!("{}={:?}", kv.key, kv.value))
                .collect();
            format!("{} {}\n", s.name, attributes.join(" "))
        })
        .collect();
    for secret in [
        DEMO_USER_UPN,
        token.as_str(),
        "$select",
        "$top",
        "displayName",
    ] {
        assert!(!text.contains(secret), "{secret} exported:\n{text}");
    }
}
