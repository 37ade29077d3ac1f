//! GraphQL over WebSocket (`graphql-transport-ws`, and the legacy `graphql-ws` that
//! async-graphql speaks as well) on `GET /graphql` with `Upgrade: websocket`.
//!
//! The protocol itself (messages, `connection_init`/`ack`, `subscribe`/`next`/`complete`,
//! ping/pong) is async-graphql's `http::WebSocket`. What async-graphql-axum adds around it
//! is about 100 lines: pick the subprotocol, upgrade with axum's `WebSocketUpgrade`, pump
//! frames between the socket and that stream. It is written out here (the crate is not in
//! the build, as for HTTP: see `http.rs`) because the gateway needs more around the pump:
//!
//! - **Origin** (cross-site WebSocket hijacking): an upgrade with an `Origin` header must
//!   come from `http.cors_allowed_origins` or the gateway's own origin, else 403 before
//!   upgrading.
//! - **Authentication**: `connection_init`'s payload carries `{"Authorization": "Bearer
//!   <jwt>"}` (any case; `X-M365-Act-As` for connected callers) and is checked by the same
//!   `Authenticator` as HTTP; a non-browser client may instead send the header with the
//!   upgrade request. No valid token: the socket closes with 4403 and nothing runs. The
//!   connection's `Caller` and the services go into the connection data, where resolvers
//!   (and the per-event Session of `subscriptions.rs`) find them. The connection ends when
//!   the token expires (4403 again: reconnect with a fresh one).
//! - **Every operation** (`subscribe` message) passes the HTTP transport's checks
//!   (`http::admit`: rate limits, persisted operations, depth/alias/cost limits,
//!   introspection) before it runs; refusals arrive as a `next` with the error's code,
//!   then `complete`. Queries and mutations are allowed too and get a Session as over HTTP.
//! - **Bounds**: at most [`MAX_OPERATIONS`] operations at once per connection, messages of
//!   at most [`MAX_MESSAGE_BYTES`], `connection_init` within [`INIT_TIMEOUT`] (else 4408),
//!   a WebSocket ping every [`PING_EVERY`] to keep proxies from dropping quiet connections,
//!   and a 1001 close when the gateway shuts down.
//!
//! async-graphql answers some protocol violations with codes of its own; they are mapped to
//! graphql-transport-ws's: a refused `connection_init` 4403 (not 1002), `subscribe` before
//! the acknowledgement 4401 (not 1011), an unreadable message 4400 (not 1002).

use std::any::TypeId;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_graphql::http::{WebSocket as ProtocolStream, WebSocketProtocols, WsMessage};
use async_graphql::parser::types::OperationType;
use async_graphql::{Data, ErrorExtensions, Executor, Pos, Request, Response};
use axum::body::Body;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{FromRequestParts, RawQuery, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response as HttpResponse};
use base64::Engine;
use bytes::Bytes;
use futures::stream::{BoxStream, SplitSink};
use futures::{FutureExt, SinkExt, StreamExt};
use serde_json::{Value as Json, json};
use tokio::time::Instant;

use crate::app::AppState;
use crate::auth::{ACT_AS_HEADER, Caller};
use crate::service::{ServiceError, Session};

/// Operations (subscriptions, and queries or mutations in flight) one connection may run
/// at once.
pub const MAX_OPERATIONS: usize = 20;

/// Largest message (and frame) a client may send; a document this size is far past the
/// token limit anyway.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;

/// Time from the upgrade to `connection_init`.
pub const INIT_TIMEOUT: Duration = Duration::from_secs(10);

/// Interval of the server's WebSocket pings.
pub const PING_EVERY: Duration = Duration::from_secs(30);

/// `GET /graphql`: a WebSocket upgrade becomes a GraphQL-over-WebSocket connection; any
/// other GET is GraphQL over HTTP, as before.
pub async fn get_handler(
    State(state): State<AppState>,
    request: axum::extract::Request,
) -> HttpResponse {
    let (mut parts, body) = request.into_parts();
    if !wants_websocket(&parts.headers) {
        let query = parts.uri.query().map(str::to_owned);
        return super::handler(
            State(state),
            parts.method,
            parts.headers,
            RawQuery(query),
            body,
        )
        .await;
    }
    drop::<Body>(body);
    let Some(protocol) = subprotocol(&parts.headers) else {
        return refusal(
            StatusCode::BAD_REQUEST,
            "BAD_USER_INPUT",
            "ask for the graphql-transport-ws subprotocol (Sec-WebSocket-Protocol)",
        );
    };
    if !origin_allowed(&state, &parts.headers) {
        tracing::info!("GraphQL WebSocket refused: foreign Origin");
        return refusal(
            StatusCode::FORBIDDEN,
            "FORBIDDEN",
            "pages of this origin may not open the GraphQL WebSocket",
        );
    }
    // A token on the upgrade request itself (non-browser clients) is checked now, so a
    // bad one is a plain 401 rather than an upgrade that closes at once.
    let upgraded_as = if parts.headers.contains_key(header::AUTHORIZATION) {
        match authenticate(&state, &parts.headers).await {
            Some(authenticated) => Some(authenticated),
            None => {
                let mut response = refusal(
                    StatusCode::UNAUTHORIZED,
                    "UNAUTHENTICATED",
                    "authentication required",
                );
                response.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer error=\"invalid_token\""),
                );
                return response;
            }
        }
    } else {
        None
    };
    let upgrade = match WebSocketUpgrade::from_request_parts(&mut parts, &state).await {
        Ok(upgrade) => upgrade,
        Err(rejection) => return rejection.into_response(),
    };
    upgrade
        .protocols([protocol.sec_websocket_protocol()])
        .max_message_size(MAX_MESSAGE_BYTES)
        .max_frame_size(MAX_MESSAGE_BYTES)
        .on_upgrade(move |socket| serve(socket, state, protocol, upgraded_as))
}

fn wants_websocket(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::UPGRADE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| {
            v.split(',')
                .any(|p| p.trim().eq_ignore_ascii_case("websocket"))
        })
}

/// The client's subprotocol: graphql-transport-ws when offered, else the legacy one.
fn subprotocol(headers: &HeaderMap) -> Option<WebSocketProtocols> {
    let offered: Vec<WebSocketProtocols> = headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|p| p.trim().parse().ok())
        .collect();
    [
        WebSocketProtocols::GraphQLWS,
        WebSocketProtocols::SubscriptionsTransportWS,
    ]
    .into_iter()
    .find(|p| offered.contains(p))
}

/// A browser page may open the socket only from an allowed origin. A WebSocket is not
/// subject to CORS, so without this check any site could make a visitor's browser talk to
/// the gateway. Clients that are not browsers send no `Origin` and pass.
fn origin_allowed(state: &AppState, headers: &HeaderMap) -> bool {
    let mut origins = headers.get_all(header::ORIGIN).iter();
    let (Some(origin), None) = (origins.next(), origins.next()) else {
        return headers.get(header::ORIGIN).is_none();
    };
    let Ok(origin) = origin.to_str() else {
        return false;
    };
    if state.graphql.allowed_origins.iter().any(|o| o == origin)
        || state.services.public_url.origin().ascii_serialization() == origin
    {
        return true;
    }
    // In development the gateway is reached as localhost as often as 127.0.0.1 (its
    // public URL): a page of the very host the request was sent to is its own.
    if state.graphql.production {
        return false;
    }
    let (Ok(url), Some(host)) = (
        url::Url::parse(origin),
        headers.get(header::HOST).and_then(|h| h.to_str().ok()),
    ) else {
        return false;
    };
    let authority = match (url.host_str(), url.port()) {
        (Some(name), Some(port)) => format!("{name}:{port}"),
        (Some(name), None) => name.to_owned(),
        (None, _) => return false,
    };
    matches!(url.scheme(), "http" | "https") && authority.eq_ignore_ascii_case(host)
}

/// The JSON error body of the GraphQL transport, before any upgrade.
fn refusal(status: StatusCode, code: &str, message: &str) -> HttpResponse {
    let body = json!({ "errors": [{ "message": message, "extensions": { "code": code } }] });
    let mut response = (status, body.to_string()).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    response
}

/// A caller and when its token expires.
#[derive(Clone)]
struct Authenticated {
    caller: Caller,
    expires: Option<Instant>,
}

/// Checks `Authorization` (and the act-as header) as the HTTP transport does. The reason
/// of a refusal goes to debug logs only.
async fn authenticate(state: &AppState, headers: &HeaderMap) -> Option<Authenticated> {
    let auth = state.auth.load_full();
    match auth.authenticate(headers).await {
        Ok(caller) => {
            let expires = headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(expiry);
            Some(Authenticated { caller, expires })
        }
        Err(reason) => {
            tracing::debug!(%reason, "GraphQL WebSocket authentication refused");
            None
        }
    }
}

/// When a token that has just been validated expires (its `exp`, read without checking
/// anything again: `authenticate` did).
fn expiry(authorization: &str) -> Option<Instant> {
    let token = authorization.split_once(' ')?.1.trim();
    let claims = token.split('.').nth(1)?;
    let claims = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(claims)
        .ok()?;
    let exp = serde_json::from_slice::<Json>(&claims)
        .ok()?
        .get("exp")?
        .as_i64()?;
    let left = exp.saturating_sub(time::OffsetDateTime::now_utc().unix_timestamp());
    Some(Instant::now() + Duration::from_secs(u64::try_from(left).unwrap_or(0)))
}

/// The headers a `connection_init` payload stands for: `Authorization` and the act-as
/// header, whatever the case of their names.
fn payload_headers(payload: &Json) -> HeaderMap {
    let mut headers = HeaderMap::new();
    let Some(fields) = payload.as_object() else {
        return headers;
    };
    for (name, value) in fields {
        let header = if name.eq_ignore_ascii_case("authorization") {
            header::AUTHORIZATION
        } else if name.eq_ignore_ascii_case(ACT_AS_HEADER) {
            HeaderName::from_static(ACT_AS_HEADER)
        } else {
            continue;
        };
        if let Some(value) = value.as_str().and_then(|v| HeaderValue::from_str(v).ok()) {
            // `append`: two spellings of Authorization are refused as a duplicate.
            headers.append(header, value);
        }
    }
    headers
}

/// What the pump and the protocol's callbacks share about one connection.
#[derive(Default)]
struct Connection {
    /// `connection_init` was accepted.
    initialised: AtomicBool,
    /// `connection_init` was refused: the close is 4403.
    refused: AtomicBool,
    /// The token's expiry, once authenticated.
    expires: Mutex<Option<Instant>>,
    /// Why the client's side ended, when it was not a plain close.
    input_error: Mutex<Option<(u16, &'static str)>>,
}

type Sink = SplitSink<WebSocket, Message>;

/// Runs one connection: frames in → async-graphql's protocol stream → frames out, with
/// the timers around it.
async fn serve(
    socket: WebSocket,
    state: AppState,
    protocol: WebSocketProtocols,
    upgraded_as: Option<Authenticated>,
) {
    let connection = Arc::new(Connection::default());
    let (mut sink, source) = socket.split();
    let input = incoming(source, connection.clone());
    let init = {
        let state = state.clone();
        let connection = connection.clone();
        move |payload: Json| async move {
            let headers = payload_headers(&payload);
            let authenticated = if headers.contains_key(header::AUTHORIZATION) {
                authenticate(&state, &headers).await
            } else {
                upgraded_as
            };
            let Some(Authenticated { caller, expires }) = authenticated else {
                connection.refused.store(true, Ordering::SeqCst);
                return Err(async_graphql::Error::new("Forbidden"));
            };
            tracing::debug!(caller = %caller.name, "GraphQL WebSocket connection initialised");
            *connection.expires.lock().unwrap_or_else(|e| e.into_inner()) = expires;
            connection.initialised.store(true, Ordering::SeqCst);
            let mut data = Data::default();
            data.insert(caller);
            data.insert(state.services.clone());
            Ok(data)
        }
    };
    let gate = Gate {
        state: state.clone(),
        running: Arc::new(AtomicUsize::new(0)),
    };
    let mut graphql = ProtocolStream::new(gate, input, protocol).on_connection_init(init);

    let opened = Instant::now();
    let mut ping = tokio::time::interval(PING_EVERY);
    ping.tick().await;
    let close = loop {
        let initialised = connection.initialised.load(Ordering::SeqCst);
        let expires = *connection.expires.lock().unwrap_or_else(|e| e.into_inner());
        tokio::select! {
            out = graphql.next() => match out {
                Some(WsMessage::Text(text)) => {
                    if sink.send(Message::text(text)).await.is_err() {
                        break None;
                    }
                }
                Some(WsMessage::Close(code, reason)) => {
                    break Some(close_code(protocol, &connection, code, reason));
                }
                None if connection.refused.load(Ordering::SeqCst) => {
                    break Some((4403, "Forbidden".to_owned()));
                }
                None => {
                    let error = *connection.input_error.lock().unwrap_or_else(|e| e.into_inner());
                    break error.map(|(code, reason)| (code, reason.to_owned()));
                }
            },
            () = tokio::time::sleep_until(opened + INIT_TIMEOUT), if !initialised => {
                break Some((4408, "Connection initialisation timeout".to_owned()));
            }
            () = until(expires) => {
                break Some((4403, "Forbidden: the token expired".to_owned()));
            }
            _ = ping.tick() => {
                if sink.send(Message::Ping(Bytes::new())).await.is_err() {
                    break None;
                }
            }
            () = state.shutdown.cancelled() => {
                break Some((1001, "the gateway is shutting down".to_owned()));
            }
        }
    };
    finish(&mut sink, close).await;
}

/// Sleeps until `at`, or forever.
async fn until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

async fn finish(sink: &mut Sink, close: Option<(u16, String)>) {
    if let Some((code, mut reason)) = close {
        // A close frame's reason has at most 123 bytes.
        while reason.len() > 120 {
            reason.pop();
        }
        let frame = CloseFrame {
            code,
            reason: reason.into(),
        };
        let _ = sink.send(Message::Close(Some(frame))).await;
    }
    let _ = sink.close().await;
}

/// The graphql-transport-ws close code for one async-graphql chose.
fn close_code(
    protocol: WebSocketProtocols,
    connection: &Connection,
    code: u16,
    reason: String,
) -> (u16, String) {
    if protocol != WebSocketProtocols::GraphQLWS {
        return (code, reason);
    }
    match code {
        1002 if connection.refused.load(Ordering::SeqCst) => (4403, "Forbidden".to_owned()),
        1002 => (4400, reason),
        1011 if !connection.initialised.load(Ordering::SeqCst) => (4401, "Unauthorized".to_owned()),
        _ => (code, reason),
    }
}

/// The client's messages, as bytes for the protocol; ends at the client's close, or at a
/// read error (an oversized message: 1009), which it records.
fn incoming(
    source: futures::stream::SplitStream<WebSocket>,
    connection: Arc<Connection>,
) -> BoxStream<'static, Bytes> {
    futures::stream::unfold(
        (source, connection),
        |(mut source, connection)| async move {
            loop {
                match source.next().await {
                    Some(Ok(Message::Text(text))) => {
                        return Some((Message::Text(text).into_data(), (source, connection)));
                    }
                    Some(Ok(Message::Binary(bytes))) => return Some((bytes, (source, connection))),
                    // tungstenite answers pings itself.
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                    Some(Ok(Message::Close(_))) | None => return None,
                    Some(Err(e)) => {
                        // axum's error hides tungstenite's kind; its text names it.
                        let error = if e.to_string().contains("Space limit exceeded") {
                            (1009, "message too big")
                        } else {
                            (1002, "unreadable frame")
                        };
                        tracing::debug!(error = %e, "GraphQL WebSocket read failed");
                        *connection
                            .input_error
                            .lock()
                            .unwrap_or_else(|e| e.into_inner()) = Some(error);
                        return None;
                    }
                }
            }
        },
    )
    .boxed()
}

/// What runs each `subscribe` message: the HTTP transport's checks, a Session for
/// queries and mutations, and the per-connection limit on operations.
#[derive(Clone)]
struct Gate {
    state: AppState,
    /// Operations of this connection running now.
    running: Arc<AtomicUsize>,
}

/// One of a connection's [`MAX_OPERATIONS`], given back when the operation's stream is
/// dropped (it completed, the client sent `complete`, or the connection ended).
struct Slot(Arc<AtomicUsize>);

impl Slot {
    fn take(running: &Arc<AtomicUsize>) -> Option<Slot> {
        if running.fetch_add(1, Ordering::SeqCst) >= MAX_OPERATIONS {
            running.fetch_sub(1, Ordering::SeqCst);
            return None;
        }
        Some(Slot(running.clone()))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Executor for Gate {
    async fn execute(&self, request: Request) -> Response {
        // The protocol stream only ever calls `execute_stream`.
        self.execute_stream(request, None)
            .next()
            .await
            .unwrap_or_default()
    }

    fn execute_stream(
        &self,
        request: Request,
        session_data: Option<Arc<Data>>,
    ) -> BoxStream<'static, Response> {
        self.clone()
            .run(request, session_data)
            .flatten_stream()
            .boxed()
    }
}

impl Gate {
    async fn run(self, request: Request, data: Option<Arc<Data>>) -> BoxStream<'static, Response> {
        let caller = data
            .as_deref()
            .and_then(|d| d.get(&TypeId::of::<Caller>()))
            .and_then(|c| c.downcast_ref::<Caller>())
            .cloned();
        let Some(caller) = caller else {
            return one(failure(&ServiceError::Unauthenticated));
        };
        let Some(slot) = Slot::take(&self.running) else {
            let error = async_graphql::Error::new(format!(
                "a connection runs at most {MAX_OPERATIONS} operations at once"
            ))
            .extend_with(|_, e| e.set("code", "MAX_OPERATIONS_EXCEEDED"));
            return one(Response::from_errors(vec![
                error.into_server_error(Pos::default()),
            ]));
        };
        let admitted = match super::http::admit(&self.state, &caller, request).await {
            Ok(admitted) => admitted,
            Err(error) => return one(Response::from_errors(vec![error])),
        };
        let mut request = admitted.request;
        // Queries and mutations read through a Session as over HTTP; a subscription's
        // events each get their own (`subscriptions::EventSession`).
        if matches!(
            admitted.kind,
            Some(OperationType::Query | OperationType::Mutation)
        ) {
            match Session::open(&self.state.services, caller).await {
                Ok(session) => request = request.data(session),
                Err(error) => return one(failure(&error)),
            }
        }
        let stream = self
            .state
            .graphql
            .schema
            .execute_stream_with_session_data(request, data.unwrap_or_default());
        stream
            .map(move |response| {
                let _running = &slot;
                response
            })
            .boxed()
    }
}

fn one(response: Response) -> BoxStream<'static, Response> {
    futures::stream::once(async { response }).boxed()
}

fn failure(error: &ServiceError) -> Response {
    Response::from_errors(vec![error.extend().into_server_error(Pos::default())])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_can_come_in_any_case_and_other_payload_fields_are_ignored() {
        let headers = payload_headers(&json!({
            "authorization": "Bearer abc", "X-M365-Act-As": "someone", "other": 1
        }));
        assert_eq!(headers[header::AUTHORIZATION], "Bearer abc");
        assert_eq!(headers[ACT_AS_HEADER], "someone");
        assert_eq!(headers.len(), 2);
        let both =
            payload_headers(&json!({ "authorization": "Bearer a", "Authorization": "Bearer b" }));
        assert_eq!(both.get_all(header::AUTHORIZATION).iter().count(), 2);
        assert!(payload_headers(&json!("Bearer abc")).is_empty());
    }

    #[test]
    fn the_new_protocol_is_preferred_and_unknown_ones_are_refused() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_static("graphql-ws, graphql-transport-ws"),
        );
        assert_eq!(subprotocol(&headers), Some(WebSocketProtocols::GraphQLWS));
        headers.insert(
            header::SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_static("graphql-ws"),
        );
        assert_eq!(
            subprotocol(&headers),
            Some(WebSocketProtocols::SubscriptionsTransportWS)
        );
        headers.insert(
            header::SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_static("mqtt"),
        );
        assert_eq!(subprotocol(&headers), None);
    }

    #[test]
    fn async_graphql_close_codes_become_graphql_transport_ws_ones() {
        let connection = Connection::default();
        let ws = WebSocketProtocols::GraphQLWS;
        assert_eq!(close_code(ws, &connection, 1011, "x".into()).0, 4401);
        assert_eq!(
            close_code(ws, &connection, 1002, "bad".into()),
            (4400, "bad".into())
        );
        connection.refused.store(true, Ordering::SeqCst);
        assert_eq!(close_code(ws, &connection, 1002, "x".into()).0, 4403);
        assert_eq!(close_code(ws, &connection, 4429, "x".into()).0, 4429);
    }
}
