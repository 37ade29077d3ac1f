//! Errors at the Graph boundary.

use std::time::Duration;

use serde::Deserialize;

use crate::identity::IdentityError;

/// What went wrong talking to Graph. Mapped once into the service error.
#[derive(Debug, Clone, thiserror::Error)]
pub enum GraphError {
    /// Graph answered with an error status and (usually) its error body.
    #[error("Graph answered {status} {code}: {message}")]
    Api {
        status: u16,
        code: String,
        message: String,
        request_id: Option<String>,
        retry_after: Option<Duration>,
    },
    /// No connection: refused, DNS, TLS failure. The request never reached Graph.
    #[error("Graph unreachable: {0}")]
    Unreachable(String),
    /// The connection broke during the exchange (reset, closed early).
    #[error("connection to Graph interrupted: {0}")]
    Interrupted(String),
    /// No answer in time.
    #[error("Graph did not answer in time")]
    Timeout,
    /// A call that may act only once (send a mail) failed in a way that leaves open
    /// whether Graph acted (timeout, reset, 504). Never retried.
    #[error("unknown whether Graph acted: {0}")]
    OutcomeUnknown(String),
    /// The circuit breaker is open: Graph has been failing; calls fail fast for a while.
    #[error("Graph calls are paused after repeated failures")]
    CircuitOpen { retry_after: Duration },
    /// No concurrency slot (the mailbox or the gateway is at its limit) before the deadline.
    #[error("too many concurrent Graph calls")]
    Saturated,
    /// An answer that is not what Graph sends (HTML, truncated JSON, wrong shape).
    #[error("Graph sent an unexpected response: {0}")]
    BadResponse(String),
    /// A URL or link the gateway will not follow or send.
    #[error("refused to build or follow a Graph URL: {0}")]
    Refused(String),
    #[error("no Graph token: {0}")]
    Token(#[from] IdentityError),
    /// Graph answered with a redirect (a file's `…/content`): `location` is where it points,
    /// often a pre-authenticated URL, so it is never part of the message.
    #[error("Graph answered with a redirect")]
    Redirected { location: String },
}

impl GraphError {
    pub fn status(&self) -> Option<u16> {
        match self {
            GraphError::Api { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The same error, remembering how long the gateway would have waited (for the
    /// caller's `Retry-After` when it fails fast instead).
    pub fn with_retry_after(self, delay: Duration) -> Self {
        match self {
            GraphError::Api {
                status,
                code,
                message,
                request_id,
                retry_after: None,
            } => GraphError::Api {
                status,
                code,
                message,
                request_id,
                retry_after: Some(delay),
            },
            other => other,
        }
    }

    pub fn is_not_found(&self) -> bool {
        self.status() == Some(404)
    }

    /// Builds the typed error from a non-2xx answer. Odd bodies (empty, HTML, truncated
    /// JSON, nested `innererror`) still give a usable error; `code` falls back to the status.
    pub fn from_response(
        status: u16,
        body: &[u8],
        request_id: Option<String>,
        retry_after: Option<Duration>,
    ) -> Self {
        #[derive(Deserialize)]
        struct Envelope {
            error: Detail,
        }
        #[derive(Deserialize)]
        struct Detail {
            #[serde(default)]
            code: String,
            #[serde(default)]
            message: String,
        }
        let (code, message) = match serde_json::from_slice::<Envelope>(body) {
            Ok(e) if !e.error.code.is_empty() => (e.error.code, e.error.message),
            // A server error without Graph's error body (an HTML page from a proxy, a
            // truncated answer) is not Graph speaking; throttling statuses stay retryable.
            _ if status >= 500 && !matches!(status, 503 | 504) => {
                return GraphError::BadResponse(format!(
                    "status {status} without a Graph error body"
                ));
            }
            _ => (format!("HTTP{status}"), String::new()),
        };
        GraphError::Api {
            status,
            code,
            message,
            request_id,
            retry_after,
        }
    }
}

/// Parses `Retry-After`: integer or fractional seconds (`2.128`), or an HTTP date.
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<f64>() {
        return (seconds.is_finite() && seconds >= 0.0).then(|| Duration::from_secs_f64(seconds));
    }
    let when =
        time::OffsetDateTime::parse(value, &time::format_description::well_known::Rfc2822).ok()?;
    let now = time::OffsetDateTime::now_utc();
    Some(Duration::try_from(when - now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_accepts_integers_fractions_and_dates() {
        assert_eq!(parse_retry_after("3"), Some(Duration::from_secs(3)));
        assert_eq!(
            parse_retry_after("2.128"),
            Some(Duration::from_millis(2128))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon"), None);
        assert_eq!(parse_retry_after("-1"), None);
    }

    #[test]
    fn odd_error_bodies_still_give_a_typed_error() {
        for body in [
            &b""[..],
            b"<html>oops</html>",
            b"{\"error\":{\"code\":\"X\"",
            b"[]",
        ] {
            let e = GraphError::from_response(502, body, None, None);
            assert!(matches!(e, GraphError::BadResponse(_)), "{e:?}");
            let e = GraphError::from_response(503, body, None, None);
            assert!(
                matches!(e, GraphError::Api { status: 503, ref code, .. } if code == "HTTP503")
            );
            let e = GraphError::from_response(404, body, None, None);
            assert!(
                matches!(e, GraphError::Api { status: 404, ref code, .. } if code == "HTTP404")
            );
        }
        let e = GraphError::from_response(
            404,
            br#"{"error":{"code":"Request_ResourceNotFound","message":"gone","innerError":{"innererror":{"code":"deep"}}}}"#,
            Some("rid".into()),
            None,
        );
        assert!(
            matches!(e, GraphError::Api { ref code, .. } if code == "Request_ResourceNotFound")
        );
    }
}
