//! Fault rules and Outlook's concurrency limit, as they apply to Graph requests and `$batch`
//! items (graph-protocol.md §2, §3).
//!
//! Both need to know which mailbox a request addresses, from the raw path rather than the
//! resolved route, so that mailbox routes the emulator does not serve yet (messages,
//! events, ...) are classified the day they land.

use std::collections::HashMap;
use std::sync::Mutex;

use axum::http::StatusCode;
use serde_json::json;

use super::auth::Principal;
use super::errors::GraphError;
use super::{GraphRequest, GraphResponse, Payload, Wire};
use crate::faults::{Decision, Fault, RetryAfter, Target};
use crate::{Emulator, EmulatorState, clock};

/// Path segments after `/users/{id}` or `/me` that Outlook (Exchange Online) serves: the
/// routes its per-mailbox concurrency limit applies to.
const OUTLOOK_SEGMENTS: [&str; 11] = [
    "messages",
    "mailFolders",
    "events",
    "calendar",
    "calendars",
    "calendarGroups",
    "calendarView",
    "contacts",
    "contactFolders",
    "sendMail",
    "mailboxSettings",
];

/// `Retry-After` of an `ApplicationThrottled` answer. Graph does not document a value;
/// concurrency frees up as soon as a request finishes, so one second.
const MAILBOX_CONCURRENCY_RETRY_AFTER: &str = "1";

/// Whom a path addresses: `/users/{id}/...` or `/me/...`.
enum Addressee {
    Me,
    User(String),
}

/// The addressee of a raw path below `/v1.0` and the segment after it (`messages`, ...).
fn addressee(path: &str) -> Option<(Addressee, Option<&str>)> {
    let mut segments = path.trim_start_matches('/').split('/');
    let first = segments.next()?;
    if first.eq_ignore_ascii_case("me") {
        return Some((Addressee::Me, segments.next()));
    }
    if !first.eq_ignore_ascii_case("users") {
        return None;
    }
    let id = segments
        .next()
        .filter(|id| !id.is_empty() && !id.starts_with('$'))?;
    let id = percent_encoding::percent_decode_str(id)
        .decode_utf8_lossy()
        .into_owned();
    Some((Addressee::User(id), segments.next()))
}

/// A user key (object id, UPN or any SMTP address of the user) in the form fault rules and
/// the concurrency limit compare: the object id of a known user, else the key, lower-cased.
pub(crate) fn canonical_mailbox(state: &EmulatorState, key: &str) -> String {
    let key = key.trim();
    let tenant = state
        .tenant
        .read()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    tenant.find_user_or_address(key).map_or_else(
        || key.to_ascii_lowercase(),
        |u| tenant.users[u].id.to_ascii_lowercase(),
    )
}

/// The mailbox a request addresses, canonical: `/me` is the signed-in user of a delegated
/// token (none for app-only tokens or invalid ones).
pub(crate) fn mailbox_of(
    state: &EmulatorState,
    path: &str,
    principal: Option<&Principal>,
) -> Option<String> {
    match addressee(path)?.0 {
        Addressee::User(key) => Some(canonical_mailbox(state, &key)),
        Addressee::Me => match principal? {
            Principal::User { user_id, .. } => Some(user_id.to_ascii_lowercase()),
            Principal::App { .. } => None,
        },
    }
}

/// Whether a path is an Outlook route for the concurrency limits (or, with the test hook
/// `mailbox_concurrency_all_routes`, any route addressing a user).
pub(crate) fn is_outlook(state: &EmulatorState, path: &str) -> bool {
    match addressee(path) {
        None => false,
        Some(_) if state.config.mailbox_concurrency_all_routes => true,
        Some((_, segment)) => {
            segment.is_some_and(|s| OUTLOOK_SEGMENTS.iter().any(|o| o.eq_ignore_ascii_case(s)))
        }
    }
}

/// Requests in flight per (app id, mailbox).
#[derive(Default)]
pub(crate) struct MailboxLimiter {
    in_flight: Mutex<HashMap<(String, String), usize>>,
}

/// One request's slot in its (app, mailbox) budget, given back on drop.
pub(crate) struct MailboxPermit {
    emulator: Emulator,
    key: (String, String),
}

impl Drop for MailboxPermit {
    fn drop(&mut self) {
        let mut in_flight = lock(&self.emulator.state().mailboxes.in_flight);
        if let Some(n) = in_flight.get_mut(&self.key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                in_flight.remove(&self.key);
            }
        }
    }
}

/// Takes a slot of Outlook's concurrency limit (`EmulatorConfig::mailbox_concurrency`) for
/// an Outlook request, or answers 429 `ApplicationThrottled` as Exchange does when the app
/// already has that many requests running against the mailbox.
pub(crate) fn mailbox_permit(
    emulator: &Emulator,
    path: &str,
    principal: Option<&Principal>,
    mailbox: Option<&str>,
) -> Result<Option<MailboxPermit>, GraphError> {
    let state = emulator.state();
    let (Some(limit), Some(principal), Some(mailbox)) =
        (state.config.mailbox_concurrency, principal, mailbox)
    else {
        return Ok(None);
    };
    if !is_outlook(state, path) {
        return Ok(None);
    }
    let key = (principal.app_id().to_ascii_lowercase(), mailbox.to_string());
    let mut in_flight = lock(&state.mailboxes.in_flight);
    let running = in_flight.get(&key).copied().unwrap_or(0);
    if running >= limit {
        tracing::debug!(app_id = %key.0, mailbox = %key.1, "over the mailbox concurrency limit");
        return Err(GraphError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "ApplicationThrottled",
            "Application is over its MailboxConcurrency limit.",
        ));
    }
    in_flight.insert(key.clone(), running + 1);
    Ok(Some(MailboxPermit {
        emulator: emulator.clone(),
        key,
    }))
}

/// The 429 of `mailbox_permit`, rendered with its `Retry-After`.
pub(crate) fn concurrency_answer(
    err: &GraphError,
    request_id: &str,
    client_request_id: &str,
) -> GraphResponse {
    let mut response = GraphResponse::error(err, request_id, client_request_id);
    response
        .headers
        .push(("Retry-After", MAILBOX_CONCURRENCY_RETRY_AFTER.to_string()));
    response
}

/// Runs the fault rules for a Graph request or batch item and counts what fired.
pub(crate) fn decide(
    emulator: &Emulator,
    req: &GraphRequest,
    template: &str,
    in_batch: bool,
    mailbox: Option<&str>,
) -> Decision {
    let state = emulator.state();
    let path = percent_encoding::percent_decode_str(&req.path).decode_utf8_lossy();
    let path = format!("/v1.0{path}");
    let decision = state.faults.decide(&Target {
        method: req.method.as_str(),
        template,
        path: &path,
        graph: true,
        in_batch,
        mailbox,
    });
    if decision.fired > 0 {
        state.recorder.faults_injected(decision.fired);
    }
    decision
}

/// The answer of a fault that replaces Graph's own, or `None` when Graph still answers
/// (`Latency`, `TruncatedJson`).
pub(crate) fn answer(
    fault: &Fault,
    request_id: &str,
    client_request_id: &str,
) -> Option<GraphResponse> {
    let with_retry = |mut response: GraphResponse, retry_after: &Option<RetryAfter>| {
        if let Some(r) = retry_after {
            response.headers.push(("Retry-After", r.header_value()));
        }
        response
    };
    let wire = |wire: Wire| {
        let mut response = GraphResponse::json(serde_json::Value::Null);
        response.wire = Some(wire);
        response
    };
    match fault {
        Fault::Throttle { retry_after } => {
            let body = throttled_body(request_id, client_request_id);
            Some(with_retry(
                GraphResponse::with_status(StatusCode::TOO_MANY_REQUESTS, Payload::Json(body)),
                retry_after,
            ))
        }
        Fault::Unavailable { retry_after } => {
            let err = GraphError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "serviceNotAvailable",
                "The service is not available. Try the request again after a delay. There may be a Retry-After header.",
            );
            Some(with_retry(
                GraphResponse::error(&err, request_id, client_request_id),
                retry_after,
            ))
        }
        Fault::GatewayTimeout { retry_after } => {
            // What Graph answers when a workload times out: `UnknownError`, empty message.
            let err = GraphError::new(StatusCode::GATEWAY_TIMEOUT, "UnknownError", "");
            Some(with_retry(
                GraphResponse::error(&err, request_id, client_request_id),
                retry_after,
            ))
        }
        Fault::HtmlError => Some(GraphResponse::with_status(
            StatusCode::BAD_GATEWAY,
            Payload::Html(crate::net::bad_gateway_page().to_string()),
        )),
        Fault::MalformedJson => Some(wire(Wire::MalformedJson)),
        Fault::Reset => Some(wire(Wire::Reset)),
        Fault::Hang => Some(wire(Wire::Hang)),
        Fault::TruncatedJson | Fault::Latency { .. } => None,
    }
}

/// Graph's throttling body (graph-protocol.md §3.1), with this request's ids.
fn throttled_body(request_id: &str, client_request_id: &str) -> serde_json::Value {
    json!({
        "error": {
            "code": "TooManyRequests",
            "message": "Please retry again later.",
            "innerError": {
                "code": "429",
                "date": clock::graph_error_date(),
                "message": "Please retry after",
                "request-id": request_id,
                "client-request-id": client_request_id,
                "status": "429",
            }
        }
    })
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mailbox_routes_are_classified_from_the_raw_path() {
        let user = |p: &str| match addressee(p) {
            Some((Addressee::User(u), seg)) => Some((u, seg.map(str::to_string))),
            _ => None,
        };
        assert_eq!(
            user("/users/a%40b.example/messages"),
            Some(("a@b.example".to_string(), Some("messages".to_string())))
        );
        assert_eq!(user("/users/x"), Some(("x".to_string(), None)));
        assert!(user("/users/$count").is_none());
        assert!(user("/users").is_none());
        assert!(user("/groups/x/members").is_none());
        assert!(matches!(
            addressee("/me/calendarView"),
            Some((Addressee::Me, Some("calendarView")))
        ));
    }
}
