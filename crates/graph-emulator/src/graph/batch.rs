//! JSON batching: `POST /v1.0/$batch` (graph-protocol.md §2).
//!
//! Items run through the same `execute` as direct calls. Independent items run
//! concurrently; `dependsOn` sequences them, and an item whose dependency failed gets 424
//! without running. Responses come back in *reverse* request order, so clients that assume
//! request order break here rather than in production.
//!
//! Each item is throttled on its own (a fault rule or Outlook's concurrency limit gives it a
//! 429 with `headers: {"Retry-After": ...}` while the envelope stays 200), and Outlook items
//! run at most `EmulatorConfig::mailbox_concurrency` (4) at a time, whatever their mailbox.
//! Faults that break HTTP itself (reset, hang, malformed or truncated JSON) break the whole
//! envelope when an item draws them; latency on an item delays the envelope.

use std::sync::Arc;

use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value, json};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::errors::GraphError;
use super::{
    GraphRequest, GraphResponse, Outcome, Payload, WWW_AUTHENTICATE, Wire, execute, faults, routes,
};
use crate::Emulator;
use crate::admin::RecordedRequest;

/// "JSON batch requests are currently limited to 20 individual requests."
const MAX_ITEMS: usize = 20;

/// One parsed batch item.
struct Item {
    id: String,
    method: Method,
    url: String,
    headers: HeaderMap,
    body: Option<Value>,
    depends_on: Vec<usize>,
}

fn invalid_payload() -> GraphError {
    GraphError::bad_request("Invalid batch payload format.")
}

fn parse(body: &[u8]) -> Result<Vec<Item>, GraphError> {
    let value: Value = serde_json::from_slice(body).map_err(|_| invalid_payload())?;
    let requests = value
        .get("requests")
        .and_then(Value::as_array)
        .ok_or_else(invalid_payload)?;
    if requests.is_empty() {
        return Err(invalid_payload());
    }
    if requests.len() > MAX_ITEMS {
        return Err(GraphError::bad_request(format!(
            "Batch request exceeds the maximum of {MAX_ITEMS}"
        )));
    }
    let mut items: Vec<Item> = Vec::with_capacity(requests.len());
    for raw in requests {
        let obj = raw.as_object().ok_or_else(invalid_payload)?;
        let field = |name: &str| {
            obj.get(name)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
        };
        let id = field("id").ok_or_else(invalid_payload)?.to_string();
        // Ids are not case-sensitive and must be unique.
        if items.iter().any(|i| i.id.eq_ignore_ascii_case(&id)) {
            return Err(GraphError::bad_request(format!(
                "Request Id {id} has to be unique in a batch."
            )));
        }
        let method = field("method")
            .and_then(|m| Method::from_bytes(m.to_ascii_uppercase().as_bytes()).ok())
            .ok_or_else(invalid_payload)?;
        let url = field("url").ok_or_else(invalid_payload)?.to_string();
        let mut headers = HeaderMap::new();
        match obj.get("headers") {
            None | Some(Value::Null) => {}
            Some(Value::Object(h)) => {
                for (name, value) in h {
                    let value = match value {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    // A header that HTTP could not carry would not reach Graph either.
                    if let (Ok(n), Ok(v)) = (
                        HeaderName::from_bytes(name.as_bytes()),
                        HeaderValue::from_str(&value),
                    ) {
                        headers.insert(n, v);
                    }
                }
            }
            Some(_) => return Err(invalid_payload()),
        }
        let body = obj.get("body").filter(|b| !b.is_null()).cloned();
        if body.is_some() && !headers.contains_key(header::CONTENT_TYPE) {
            return Err(GraphError::bad_request(format!(
                "Write request id : {id} does not contain Content-Type header or body."
            )));
        }
        let mut depends_on = Vec::new();
        match obj.get("dependsOn") {
            None | Some(Value::Null) => {}
            Some(Value::Array(deps)) => {
                for dep in deps {
                    let dep = dep.as_str().ok_or_else(invalid_payload)?;
                    // Only earlier items can be depended on, which also rules out cycles.
                    let index = items
                        .iter()
                        .position(|i| i.id.eq_ignore_ascii_case(dep))
                        .ok_or_else(|| {
                            GraphError::bad_request(format!(
                                "Request Id {id} depends on Id {dep}, which is not an earlier request in the batch."
                            ))
                        })?;
                    depends_on.push(index);
                }
            }
            Some(_) => return Err(invalid_payload()),
        }
        items.push(Item {
            id,
            method,
            url,
            headers,
            body,
            depends_on,
        });
    }
    Ok(items)
}

/// Runs a `$batch` envelope (already authenticated).
pub(crate) async fn run(
    emulator: Emulator,
    envelope: GraphRequest,
) -> Result<GraphResponse, GraphError> {
    let items = parse(&envelope.body)?;
    // "By default, the service executes up to 4 requests in parallel at any point,
    // irrespective of the target mailbox" (Outlook items only).
    let outlook_slots = emulator
        .state()
        .config
        .mailbox_concurrency
        .map(|n| Arc::new(Semaphore::new(n.max(1))));
    let mut outcomes: Vec<Option<Outcome>> = (0..items.len()).map(|_| None).collect();
    let mut pending: Vec<usize> = (0..items.len()).collect();

    while !pending.is_empty() {
        // Items whose dependencies have all finished run together in this wave.
        let (ready, waiting): (Vec<usize>, Vec<usize>) = pending
            .iter()
            .partition(|&&i| items[i].depends_on.iter().all(|&d| outcomes[d].is_some()));
        let mut running = JoinSet::new();
        for i in ready {
            let item = &items[i];
            let failed = item
                .depends_on
                .iter()
                .filter_map(|&d| outcomes[d].as_ref().map(|o| (d, o)))
                .find(|(_, o)| !o.response.status.is_success());
            if let Some((d, _)) = failed {
                let outcome = failed_dependency(item, &items[d].id);
                record(&emulator, item, &outcome);
                outcomes[i] = Some(outcome);
                continue;
            }
            let request = item_request(&envelope, item);
            let slots = outlook_slots
                .clone()
                .filter(|_| faults::is_outlook(emulator.state(), &request.path));
            let emulator = emulator.clone();
            running.spawn(async move {
                let _slot = match slots {
                    Some(slots) => slots.acquire_owned().await.ok(),
                    None => None,
                };
                let mut outcome = execute(emulator, request, true).await;
                // The item is done: its mailbox slot is free for the next one.
                outcome.permit = None;
                (i, outcome)
            });
        }
        while let Some(joined) = running.join_next().await {
            match joined {
                Ok((i, outcome)) => {
                    record(&emulator, &items[i], &outcome);
                    outcomes[i] = Some(outcome);
                }
                // A panicking item must not take the envelope down; it simply has no outcome
                // yet and is answered with a 500 below.
                Err(err) => tracing::error!(%err, "batch item task failed"),
            }
        }
        // Anything still without an outcome after its wave panicked.
        for i in &pending {
            if outcomes[*i].is_none() && items[*i].depends_on.iter().all(|&d| outcomes[d].is_some())
            {
                let err = GraphError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "generalException",
                    "An unexpected error occurred.",
                );
                let outcome = synthetic(&items[*i], &err);
                record(&emulator, &items[*i], &outcome);
                outcomes[*i] = Some(outcome);
            }
        }
        pending = waiting;
    }

    // The worst HTTP-level fault any item drew breaks the envelope.
    let wire = outcomes
        .iter()
        .flatten()
        .filter_map(|o| o.response.wire)
        .min_by_key(|w| match w {
            Wire::Reset => 0,
            Wire::Hang => 1,
            Wire::MalformedJson => 2,
            Wire::TruncatedJson => 3,
        });
    let responses: Vec<Value> = items
        .iter()
        .zip(outcomes)
        .rev()
        .filter_map(|(item, outcome)| outcome.map(|o| item_response(&item.id, &o.response)))
        .collect();
    let mut response = GraphResponse::json(json!({ "responses": responses }));
    response.wire = wire;
    Ok(response)
}

/// Builds the Graph request of an item: its own method, url and headers, the envelope's
/// credentials and host.
fn item_request(envelope: &GraphRequest, item: &Item) -> GraphRequest {
    let mut headers = item.headers.clone();
    if let Some(auth) = envelope.headers.get(header::AUTHORIZATION) {
        headers.insert(header::AUTHORIZATION, auth.clone());
    }
    // Relative urls, with or without the leading slash.
    let relative = item.url.trim_start_matches('/');
    let (path, query) = match relative.split_once('?') {
        Some((p, q)) => (p, Some(q.to_string())),
        None => (relative, None),
    };
    GraphRequest {
        method: item.method.clone(),
        path: format!("/{path}"),
        query,
        headers,
        body: item
            .body
            .as_ref()
            .map(|b| axum::body::Bytes::from(b.to_string()))
            .unwrap_or_default(),
        stream: super::BodySlot::default(),
        base_url: envelope.base_url.clone(),
    }
}

fn failed_dependency(item: &Item, dependency: &str) -> Outcome {
    let err = GraphError::new(
        StatusCode::FAILED_DEPENDENCY,
        "FailedDependency",
        format!(
            "Request Id {} depends on request Id {dependency}, which failed.",
            item.id
        ),
    );
    synthetic(item, &err)
}

/// An outcome for an item that did not run.
fn synthetic(item: &Item, err: &GraphError) -> Outcome {
    let request_id = uuid::Uuid::new_v4().to_string();
    let client_request_id = item
        .headers
        .get("client-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .unwrap_or_else(|| request_id.clone());
    let path = format!("/{}", item.url.trim_start_matches('/'));
    let path = path.split('?').next().unwrap_or_default();
    let template =
        routes::resolve(path).map_or_else(|_| "(unmatched)".to_string(), |r| r.template());
    Outcome {
        response: GraphResponse::error(err, &request_id, &client_request_id),
        route: format!("{} {template}", item.method),
        request_id,
        client_request_id,
        permit: None,
    }
}

fn record(emulator: &Emulator, item: &Item, outcome: &Outcome) {
    emulator.state().recorder.batch_item(
        &outcome.route,
        RecordedRequest {
            method: item.method.to_string(),
            url: item.url.clone(),
            status: outcome.response.recorded_status(),
            in_batch: true,
            client_request_id: outcome.client_request_id.clone(),
        },
    );
}

fn item_response(id: &str, response: &GraphResponse) -> Value {
    let mut headers = Map::new();
    headers.insert("Cache-Control".into(), json!("no-cache"));
    headers.insert("OData-Version".into(), json!("4.0"));
    if let Some(content_type) = response.content_type() {
        headers.insert("Content-Type".into(), json!(content_type));
    }
    if response.status == StatusCode::UNAUTHORIZED {
        headers.insert("WWW-Authenticate".into(), json!(WWW_AUTHENTICATE));
    }
    // `Retry-After` of a throttled item, as Graph puts it in the item's own headers.
    for (name, value) in &response.headers {
        headers.insert((*name).to_string(), json!(value));
    }
    // Non-JSON bodies travel base64-encoded inside the JSON envelope.
    let body = match &response.payload {
        Payload::Json(v) => v.clone(),
        Payload::Text(t) | Payload::Html(t) => Value::String(STANDARD.encode(t)),
        Payload::Bytes { bytes, .. } => Value::String(STANDARD.encode(bytes)),
        Payload::Empty => Value::Null,
    };
    json!({
        "id": id,
        "status": response.status.as_u16(),
        "headers": headers,
        "body": body,
    })
}
