//! GraphQL subscriptions over WebSocket (graphql-transport-ws): authentication, policy,
//! limits, resolution of each event, and fan-out between replicas through Redis.
//!
//! Events are published on the gateway's own bus, as the outbox worker does once it has
//! committed them; watches are written straight into the store. The Redis test reads
//! `TEST_REDIS_URL` (e.g. `redis://127.0.0.1:6379`); without it that test is skipped with a
//! note, except under `CI=true`, where that is a failure.

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use graph_emulator::DEMO_USER_UPN;
use m365_gateway::config::{CallerMode, DEMO_CALLER};
use m365_gateway::store::{ChangeEvent, NewWatch, WatchGraphState};
use m365_gateway::webhooks::bus::LiveEvent;
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::helpers::{
    TestApp, real_mode_config_from, spawn_app, spawn_app_with, test_config, test_token,
};

/// Longest wait for anything the gateway should send.
const WAIT: Duration = Duration::from_secs(5);

/// A graphql-transport-ws client.
pub(crate) struct Client {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

/// What the server said next.
#[derive(Debug)]
pub(crate) enum Said {
    Json(Value),
    Closed(Option<u16>),
}

impl Client {
    pub(crate) async fn connect(app: &TestApp) -> Client {
        Client::connect_with(app, &[]).await.expect("upgraded")
    }

    pub(crate) async fn connect_with(
        app: &TestApp,
        headers: &[(&str, &str)],
    ) -> Result<Client, tokio_tungstenite::tungstenite::Error> {
        let url = format!("{}/graphql", app.base.replacen("http://", "ws://", 1));
        let mut request = url.into_client_request().unwrap();
        request.headers_mut().insert(
            "sec-websocket-protocol",
            "graphql-transport-ws".parse().unwrap(),
        );
        for (name, value) in headers {
            let name =
                tokio_tungstenite::tungstenite::http::HeaderName::from_bytes(name.as_bytes())
                    .unwrap();
            request.headers_mut().insert(name, value.parse().unwrap());
        }
        let (ws, _) = tokio_tungstenite::connect_async(request).await?;
        Ok(Client { ws })
    }

    /// A client that has sent `connection_init` with `token` and got the acknowledgement.
    pub(crate) async fn ready(app: &TestApp, token: &str) -> Client {
        let mut client = Client::connect(app).await;
        client
            .send(json!({ "type": "connection_init", "payload": { "Authorization": format!("Bearer {token}") } }))
            .await;
        match client.next().await {
            Said::Json(ack) => assert_eq!(ack["type"], "connection_ack", "{ack}"),
            other => panic!("no acknowledgement: {other:?}"),
        }
        client
    }

    pub(crate) async fn send(&mut self, message: Value) {
        self.ws
            .send(Message::text(message.to_string()))
            .await
            .unwrap();
    }

    pub(crate) async fn subscribe(&mut self, id: &str, query: &str) {
        self.send(json!({ "id": id, "type": "subscribe", "payload": { "query": query } }))
            .await;
    }

    /// The next protocol message or the close, skipping WebSocket pings.
    pub(crate) async fn next(&mut self) -> Said {
        self.next_within(WAIT)
            .await
            .expect("the gateway said something in time")
    }

    pub(crate) async fn next_within(&mut self, wait: Duration) -> Option<Said> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let message = tokio::time::timeout_at(deadline, self.ws.next())
                .await
                .ok()?;
            return Some(match message {
                Some(Ok(Message::Text(text))) => Said::Json(serde_json::from_str(&text).unwrap()),
                Some(Ok(Message::Close(frame))) => Said::Closed(frame.map(|f| u16::from(f.code))),
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => Said::Closed(None),
            });
        }
    }

    /// The payload of the next `next` message for operation `id`.
    pub(crate) async fn payload(&mut self, id: &str) -> Value {
        match self.next().await {
            Said::Json(message) if message["type"] == "next" && message["id"] == id => {
                message["payload"].clone()
            }
            other => panic!("expected `next` for {id}, got {other:?}"),
        }
    }

    /// The first error of operation `id`, which then completes.
    pub(crate) async fn refused(&mut self, id: &str) -> Value {
        let payload = self.payload(id).await;
        let error = payload["errors"][0].clone();
        assert!(!error.is_null(), "no error: {payload}");
        match self.next().await {
            Said::Json(message) => {
                assert_eq!(message["type"], "complete", "{message}");
                assert_eq!(message["id"], id);
            }
            other => panic!("expected `complete`, got {other:?}"),
        }
        error
    }
}

fn code(error: &Value) -> &str {
    error["extensions"]["code"].as_str().unwrap_or("<none>")
}

/// The demo user's object id.
async fn demo_user_id(app: &TestApp) -> String {
    app.graphql_data("{ me { id } }").await["me"]["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// A watch row, as the subscriptions API would leave it after creating it in Graph.
async fn watch(app: &TestApp, caller: &str, target: &str, folder: &str) -> String {
    let id = format!("watch-{}", uuid::Uuid::new_v4());
    let store = app.store.as_ref().expect("notifications open the store");
    store
        .insert_watch(&NewWatch {
            id: id.clone(),
            caller: caller.into(),
            kind: "mail".into(),
            target: target.into(),
            folder: folder.into(),
            resource: format!("/users/{target}/mailFolders('{folder}')/messages"),
            change_types: "created,updated,deleted".into(),
            include_resource_data: false,
            resync: None,
        })
        .await
        .unwrap();
    let now = time::OffsetDateTime::now_utc();
    store
        .set_watch_graph_state(
            &id,
            &WatchGraphState {
                graph_id: uuid::Uuid::new_v4().to_string(),
                client_state_hash: "0".repeat(64),
                expires_at: now + time::Duration::days(2),
                renew_after: now + time::Duration::days(1),
            },
        )
        .await
        .unwrap();
    id
}

fn event(watch: &str, caller: &str, target: &str, change: &str, message: &str) -> LiveEvent {
    LiveEvent {
        event: ChangeEvent {
            seq: 1,
            id: format!("event-{}", uuid::Uuid::new_v4()),
            subscription_id: watch.into(),
            change_type: change.into(),
            resource: format!("Users/{target}/Messages/{message}"),
            resource_id: Some(message.into()),
            data: Some(json!({ "note": "test" })),
            occurred_at: time::OffsetDateTime::now_utc(),
        },
        caller: caller.into(),
        kind: "mail".into(),
        target: target.into(),
        folder: "inbox".into(),
    }
}

/// Waits until `n` subscribers listen on the app's bus (the subscription is set up).
pub(crate) async fn listening(app: &TestApp, n: usize) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while app.events.subscribers() < n {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the subscription never started listening"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Sends a message to the demo user's own inbox and returns its id.
async fn delivered_message(app: &TestApp, subject: &str) -> String {
    let (_, body) = app
        .graphql_as(
            Some(&app.token),
            "mutation($msg: OutgoingMessageInput!) { sendMail(mailbox: \"me\", message: $msg) { accepted } }",
            json!({ "msg": { "subject": subject, "body": "live", "to": [DEMO_USER_UPN] } }),
        )
        .await;
    assert_eq!(body["data"]["sendMail"]["accepted"], true, "{body}");
    let (_, body) = app
        .graphql_as(
            Some(&app.token),
            "query($s: String!) { me { messages(folder: \"inbox\", filter: { subjectContains: $s }, first: 1) { nodes { id } } } }",
            json!({ "s": subject }),
        )
        .await;
    body["data"]["me"]["messages"]["nodes"][0]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("the message arrived: {body}"))
        .to_owned()
}

const MAILBOX_CHANGES: &str = "subscription { mailboxChanges(mailbox: \"me\") { id subscriptionId changeType messageId occurredAt message { subject from { address } } } }";

#[tokio::test]
async fn a_subscriber_gets_a_mailbox_change_with_the_message_resolved() {
    // Arrange
    let app = spawn_app().await;
    let user = demo_user_id(&app).await;
    let subject = format!("Live {}", uuid::Uuid::new_v4());
    let message = delivered_message(&app, &subject).await;
    let watch = watch(&app, DEMO_CALLER, &user, "Inbox").await;
    let mut client = Client::ready(&app, &app.token).await;
    client.subscribe("1", MAILBOX_CHANGES).await;
    listening(&app, 1).await;

    // Act: an event of another mailbox, then one of this folder, then a deletion.
    let elsewhere = event(&watch, DEMO_CALLER, "someone-else", "created", &message);
    let created = event(&watch, DEMO_CALLER, &user, "created", &message);
    let deleted = event(&watch, DEMO_CALLER, &user, "deleted", "gone");
    app.events
        .publish(&[elsewhere, created.clone(), deleted.clone()])
        .await;

    // Assert
    let payload = client.payload("1").await;
    assert!(payload.get("errors").is_none(), "{payload}");
    let change = &payload["data"]["mailboxChanges"];
    assert_eq!(change["id"], created.event.id.as_str());
    assert_eq!(change["subscriptionId"], watch.as_str());
    assert_eq!(change["changeType"], "created");
    assert_eq!(change["messageId"], message.as_str());
    assert!(
        change["occurredAt"].as_str().unwrap().ends_with('Z'),
        "{change}"
    );
    assert_eq!(change["message"]["subject"], subject.as_str());
    assert_eq!(
        change["message"]["from"]["address"]
            .as_str()
            .unwrap()
            .to_ascii_lowercase(),
        DEMO_USER_UPN
    );
    let payload = client.payload("1").await;
    let change = &payload["data"]["mailboxChanges"];
    assert_eq!(change["changeType"], "deleted");
    assert!(change["message"].is_null(), "{change}");
}

#[tokio::test]
async fn mailbox_changes_without_a_watch_on_the_folder_is_not_found() {
    let app = spawn_app().await;
    let user = demo_user_id(&app).await;
    watch(&app, DEMO_CALLER, &user, "archive").await;
    let mut client = Client::ready(&app, &app.token).await;
    client.subscribe("1", MAILBOX_CHANGES).await;
    let error = client.refused("1").await;
    assert_eq!(code(&error), "NOT_FOUND", "{error}");
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("createChangeSubscription"),
        "{error}"
    );
}

#[tokio::test]
async fn a_connection_init_without_a_valid_token_is_closed_4403_and_nothing_runs() {
    let app = spawn_app().await;
    for payload in [
        json!({}),
        json!({ "Authorization": "Bearer not-a-token" }),
        json!({ "authorization": format!("Basic {}", app.token) }),
    ] {
        let mut client = Client::connect(&app).await;
        client
            .send(json!({ "type": "connection_init", "payload": payload }))
            .await;
        client.subscribe("1", MAILBOX_CHANGES).await;
        match client.next().await {
            Said::Closed(code) => assert_eq!(code, Some(4403), "{payload}"),
            other => panic!("{payload}: expected a close, got {other:?}"),
        }
    }
    assert_eq!(app.events.subscribers(), 0);
}

#[tokio::test]
async fn a_subscribe_before_connection_init_is_closed_4401() {
    let app = spawn_app().await;
    let mut client = Client::connect(&app).await;
    client.subscribe("1", MAILBOX_CHANGES).await;
    match client.next().await {
        Said::Closed(code) => assert_eq!(code, Some(4401)),
        other => panic!("expected a close, got {other:?}"),
    }
}

#[tokio::test]
async fn a_token_on_the_upgrade_request_is_enough_and_a_bad_one_is_refused_before_upgrading() {
    let app = spawn_app().await;
    let bearer = format!("Bearer {}", app.token);
    let mut client = Client::connect_with(&app, &[("authorization", &bearer)])
        .await
        .unwrap();
    client.send(json!({ "type": "connection_init" })).await;
    match client.next().await {
        Said::Json(ack) => assert_eq!(ack["type"], "connection_ack", "{ack}"),
        other => panic!("no acknowledgement: {other:?}"),
    }

    let refused = Client::connect_with(&app, &[("authorization", "Bearer nope")]).await;
    match refused {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 401)
        }
        Err(other) => panic!("{other}"),
        Ok(_) => panic!("upgraded with a bad token"),
    }
}

#[tokio::test]
async fn an_upgrade_from_a_foreign_origin_is_403_and_an_allowed_one_upgrades() {
    let mut config = test_config();
    config.http.cors_allowed_origins = vec!["https://intranet.example".into()];
    let app = spawn_app_with(config).await;
    match Client::connect_with(&app, &[("origin", "https://evil.example")]).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 403)
        }
        Err(other) => panic!("{other}"),
        Ok(_) => panic!("upgraded for a foreign page"),
    }
    assert!(
        Client::connect_with(&app, &[("origin", "https://intranet.example")])
            .await
            .is_ok()
    );
    // The gateway's own pages (GraphiQL).
    assert!(
        Client::connect_with(&app, &[("origin", &app.base)])
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn a_caller_without_mail_read_or_limited_to_other_mailboxes_is_forbidden() {
    let config = real_mode_config_from(
        test_config(),
        ("nomail", CallerMode::App, &["users.read"], &["*"]),
    );
    let config = real_mode_config_from(
        config,
        (
            "elsewhere",
            CallerMode::App,
            &["mail.read"],
            &[graph_emulator::SHARED_MAILBOX_UPN],
        ),
    );
    let app = spawn_app_with(config).await;
    let query = format!("subscription {{ mailboxChanges(mailbox: \"{DEMO_USER_UPN}\") {{ id }} }}");
    for caller in ["nomail", "elsewhere"] {
        let mut client = Client::ready(&app, &test_token(caller, None)).await;
        client.subscribe("1", &query).await;
        let error = client.refused("1").await;
        assert_eq!(code(&error), "FORBIDDEN", "{caller}: {error}");
    }
}

#[tokio::test]
async fn changes_streams_the_callers_own_watch_and_another_callers_watch_is_not_found() {
    let app = spawn_app().await;
    let user = demo_user_id(&app).await;
    let own = watch(&app, DEMO_CALLER, &user, "inbox").await;
    let foreign = watch(&app, "someone-else", &user, "inbox").await;
    let mut client = Client::ready(&app, &app.token).await;

    client
        .subscribe(
            "theirs",
            &format!("subscription {{ changes(subscriptionId: \"{foreign}\") {{ id }} }}"),
        )
        .await;
    let error = client.refused("theirs").await;
    assert_eq!(code(&error), "NOT_FOUND", "{error}");

    client
        .subscribe(
            "mine",
            &format!(
                "subscription {{ changes(subscriptionId: \"{own}\") {{ id subscriptionId changeType resource resourceId occurredAt data }} }}"
            ),
        )
        .await;
    listening(&app, 1).await;
    let mine = event(&own, DEMO_CALLER, &user, "updated", "m1");
    app.events
        .publish(&[
            event(&foreign, "someone-else", &user, "updated", "m1"),
            mine.clone(),
        ])
        .await;
    let payload = client.payload("mine").await;
    let change = &payload["data"]["changes"];
    assert_eq!(change["id"], mine.event.id.as_str(), "{payload}");
    assert_eq!(change["subscriptionId"], own.as_str());
    assert_eq!(change["resource"], mine.event.resource.as_str());
    assert_eq!(change["resourceId"], "m1");
    assert_eq!(change["data"]["note"], "test");
}

#[tokio::test]
async fn a_subscription_over_the_depth_or_alias_limit_is_refused_with_the_limits_code() {
    let mut config = test_config();
    config.graphql.max_depth = 3;
    config.graphql.max_aliases = 2;
    let app = spawn_app_with(config).await;
    let mut client = Client::ready(&app, &app.token).await;
    client
        .subscribe(
            "deep",
            "subscription { mailboxChanges(mailbox: \"me\") { message { from { user { displayName } } } } }",
        )
        .await;
    assert_eq!(code(&client.refused("deep").await), "MAX_DEPTH_EXCEEDED");
    client
        .subscribe(
            "aliases",
            "subscription { c: mailboxChanges(mailbox: \"me\") { a: id b: id d: id } }",
        )
        .await;
    assert_eq!(
        code(&client.refused("aliases").await),
        "MAX_ALIASES_EXCEEDED"
    );
    // Nothing of either reached the bus.
    assert_eq!(app.events.subscribers(), 0);
}

#[tokio::test]
async fn queries_run_over_the_socket_and_subscriptions_over_http_are_refused() {
    let app = spawn_app().await;
    let mut client = Client::ready(&app, &app.token).await;
    client.subscribe("q", "{ me { userPrincipalName } }").await;
    let payload = client.payload("q").await;
    assert_eq!(
        payload["data"]["me"]["userPrincipalName"]
            .as_str()
            .unwrap()
            .to_ascii_lowercase(),
        DEMO_USER_UPN,
        "{payload}"
    );

    let (status, body) = app
        .graphql_as(Some(&app.token), MAILBOX_CHANGES, json!({}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(code(&body["errors"][0]), "WEBSOCKET_REQUIRED", "{body}");
    assert!(body.get("data").is_none(), "{body}");
}

#[tokio::test]
async fn a_connection_runs_at_most_twenty_operations_and_oversized_messages_close_it() {
    let app = spawn_app().await;
    let user = demo_user_id(&app).await;
    let own = watch(&app, DEMO_CALLER, &user, "inbox").await;
    let mut client = Client::ready(&app, &app.token).await;
    let query = format!("subscription {{ changes(subscriptionId: \"{own}\") {{ id }} }}");
    for i in 0..20 {
        client.subscribe(&i.to_string(), &query).await;
    }
    listening(&app, 20).await;
    client.subscribe("21", &query).await;
    assert_eq!(code(&client.refused("21").await), "MAX_OPERATIONS_EXCEEDED");
    // Completing one gives its slot back.
    client.send(json!({ "id": "0", "type": "complete" })).await;
    let deadline = tokio::time::Instant::now() + WAIT;
    while app.events.subscribers() > 19 {
        assert!(tokio::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    client.subscribe("22", &query).await;
    listening(&app, 20).await;

    let huge = "x".repeat(70 * 1024);
    client
        .send(json!({ "id": "big", "type": "subscribe", "payload": { "query": huge } }))
        .await;
    loop {
        match client.next().await {
            Said::Closed(code) => {
                assert_eq!(code, Some(1009));
                break;
            }
            Said::Json(_) => {}
        }
    }
}

#[tokio::test]
async fn the_connection_closes_4403_when_its_token_expires() {
    let config = real_mode_config_from(
        test_config(),
        ("brief", CallerMode::App, &["mail.read"], &["*"]),
    );
    let app = spawn_app_with(config).await;
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let token = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &json!({
            "iss": crate::helpers::TEST_ISSUER, "aud": "m365-gateway", "sub": "brief",
            "azp": "brief", "iat": now, "exp": now + 2,
        }),
        &jsonwebtoken::EncodingKey::from_secret(crate::helpers::TEST_SECRET.as_bytes()),
    )
    .unwrap();
    let mut client = Client::ready(&app, &token).await;
    match client.next_within(Duration::from_secs(6)).await {
        Some(Said::Closed(code)) => assert_eq!(code, Some(4403)),
        other => panic!("expected a close, got {other:?}"),
    }
}

#[tokio::test]
async fn replicas_sharing_redis_deliver_each_others_events_once() {
    let url = match std::env::var("TEST_REDIS_URL") {
        Ok(url) if !url.trim().is_empty() => url,
        _ => {
            assert!(
                !std::env::var("CI").is_ok_and(|v| v == "true"),
                "TEST_REDIS_URL is unset but CI=true: the live fan-out test must run in CI"
            );
            eprintln!("note: TEST_REDIS_URL is unset; skipping the live fan-out test");
            return;
        }
    };
    // Arrange: two replicas on one Redis, under a prefix of this run alone.
    let prefix = format!("m365gw-test-{}", uuid::Uuid::new_v4());
    let config = || {
        let mut config = test_config();
        config.redis.url = Some(m365_gateway::config::Secret::new(&url));
        config.redis.key_prefix = prefix.clone();
        config
    };
    let a = spawn_app_with(config()).await;
    let b = spawn_app_with(config()).await;
    let user = demo_user_id(&b).await;
    // Each replica has its own in-memory store here; in production they share one.
    let watch_a = watch(&a, DEMO_CALLER, &user, "inbox").await;
    let watch_b = watch(&b, DEMO_CALLER, &user, "inbox").await;
    let subscription =
        |watch: &str| format!("subscription {{ changes(subscriptionId: \"{watch}\") {{ id }} }}");
    let mut on_b = Client::ready(&b, &b.token).await;
    on_b.subscribe("b", &subscription(&watch_b)).await;
    let mut on_a = Client::ready(&a, &a.token).await;
    on_a.subscribe("a", &subscription(&watch_a)).await;
    listening(&a, 1).await;
    listening(&b, 1).await;

    // Act: the outbox worker of A publishes one event of each watch.
    let for_b = event(&watch_b, DEMO_CALLER, &user, "created", "m1");
    let for_a = event(&watch_a, DEMO_CALLER, &user, "created", "m2");
    let published = std::time::Instant::now();
    a.events.publish(&[for_b.clone(), for_a.clone()]).await;

    // Assert: B's subscriber gets A's event within 2 s…
    let payload = on_b.payload("b").await;
    assert_eq!(payload["data"]["changes"]["id"], for_b.event.id.as_str());
    assert!(
        published.elapsed() < Duration::from_secs(2),
        "{:?}",
        published.elapsed()
    );
    // …and A's own subscriber gets it exactly once, no echo back from Redis.
    let payload = on_a.payload("a").await;
    assert_eq!(payload["data"]["changes"]["id"], for_a.event.id.as_str());
    assert!(
        on_a.next_within(Duration::from_millis(700)).await.is_none(),
        "a second delivery on A"
    );
    assert!(
        on_b.next_within(Duration::from_millis(300)).await.is_none(),
        "a second delivery on B"
    );
}
