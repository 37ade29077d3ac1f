//! Fault rules on the Entra side (token endpoint, `/authorize`, discovery, JWKS): a
//! middleware in front of those handlers. Graph requests apply their rules in
//! `graph::execute` instead, where batch items and mailboxes are known.

use axum::body::Body;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::{EntraError, Form, TOKEN_ROUTE, grant_label};
use crate::faults::{Fault, RetryAfter, Target};
use crate::{Emulator, net};

/// The largest token request body read to count a faulted request's grant type.
const MAX_FORM: usize = 1 << 20;

/// Runs the fault rules for Entra routes; everything else passes through untouched.
pub(crate) async fn inject_faults(
    State(emulator): State<Emulator>,
    request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path();
    // Graph and the pre-authenticated file URLs run their rules themselves.
    if path.starts_with("/_emulator/")
        || path == "/v1.0"
        || path.starts_with("/v1.0/")
        || path.starts_with("/up/")
        || path.starts_with("/_layouts/")
        || path.starts_with("/_api/")
    {
        return next.run(request).await;
    }
    let Some(template) = request
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_string())
    else {
        return next.run(request).await;
    };
    let state = emulator.state();
    let method = request.method().clone();
    let decoded = percent_encoding::percent_decode_str(path)
        .decode_utf8_lossy()
        .into_owned();
    let decision = state.faults.decide(&Target {
        method: method.as_str(),
        template: &template,
        path: &decoded,
        graph: false,
        in_batch: false,
        mailbox: None,
    });
    if decision.fired > 0 {
        state.recorder.faults_injected(decision.fired);
    }
    if !decision.latency.is_zero() {
        tokio::time::sleep(decision.latency).await;
    }
    let fault = match decision.fault {
        None | Some(Fault::Latency { .. }) => return next.run(request).await,
        Some(Fault::TruncatedJson) => return net::truncate(next.run(request).await).await,
        Some(fault) => fault,
    };

    // The handler does not run: count the request as it would have.
    let route_key = format!("{method} {template}");
    let (parts, body) = request.into_parts();
    if route_key == TOKEN_ROUTE {
        let body = axum::body::to_bytes(body, MAX_FORM)
            .await
            .unwrap_or_default();
        state
            .recorder
            .token_request(TOKEN_ROUTE, grant_label(&Form::parse(&body)));
    } else {
        state.recorder.other_request(&route_key);
    }

    match fault {
        // Entra answers a throttled client-credentials request with a bare 429
        // "Too Many Requests" and `Retry-After` (MSAL.NET issue #2855 shows the body).
        Fault::Throttle { retry_after } => {
            state.recorder.throttled();
            let mut response = (StatusCode::TOO_MANY_REQUESTS, "Too Many Requests").into_response();
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; charset=utf-8"),
            );
            with_retry_after(response, retry_after.as_ref())
        }
        Fault::Unavailable { retry_after } => with_retry_after(
            transient(StatusCode::SERVICE_UNAVAILABLE, &parts.headers),
            retry_after.as_ref(),
        ),
        Fault::GatewayTimeout { retry_after } => with_retry_after(
            transient(StatusCode::GATEWAY_TIMEOUT, &parts.headers),
            retry_after.as_ref(),
        ),
        Fault::HtmlError => net::html_error(),
        Fault::MalformedJson => {
            let mut response = Response::new(Body::empty());
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json; charset=utf-8"),
            );
            net::malformed_json(response)
        }
        Fault::Reset => net::reset(&parts.extensions),
        Fault::Hang => net::hang(&parts.extensions).await,
        Fault::Latency { .. } | Fault::TruncatedJson => unreachable!("handled above"),
    }
}

/// Entra's transient-failure error: `temporarily_unavailable` AADSTS90033 (as captured in
/// Azure/azure-sdk-for-python issue #14241, a 503 from the token endpoint).
fn transient(status: StatusCode, request_headers: &HeaderMap) -> Response {
    EntraError::new(
        "temporarily_unavailable",
        90033,
        "A transient error has occurred. Please try again.",
    )
    .with_status(status)
    .into_response(request_headers)
}

fn with_retry_after(mut response: Response, retry_after: Option<&RetryAfter>) -> Response {
    if let Some(value) = retry_after.and_then(|r| HeaderValue::from_str(&r.header_value()).ok()) {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    response
}
