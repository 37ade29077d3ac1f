//! Consumer webhooks end to end: REST registration and ownership, the delivery worker
//! POSTing signed events to a local receiver, retries into the dead letter, and replay.
//!
//! Events are recorded straight through the store (a resync's commit), so these tests do not
//! depend on Graph notifications reaching the gateway.

use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode as AxumStatus};
use axum::routing::post;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use m365_gateway::App;
use m365_gateway::auth::mint_dev_token;
use m365_gateway::config::{CallerConfig, CallerMode, Config, DEMO_CALLER, DEV_ISSUER_NAME};
use m365_gateway::store::{NewChangeEvent, NewWatch, Store};
use m365_gateway::webhooks::outbound::{
    ID_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, decode_secret, spawn_delivery_worker,
    verify_headers,
};
use reqwest::StatusCode;
use serde_json::{Value, json};
use time::OffsetDateTime;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::helpers::test_config;

const WINDOW: Duration = Duration::from_secs(300);

// ---------------------------------------------------------------------------------------
// A consumer: records every request and answers with a status the test sets.
// ---------------------------------------------------------------------------------------

#[derive(Clone)]
pub struct Hit {
    pub headers: HeaderMap,
    pub body: Vec<u8>,
    pub at: Instant,
}

#[derive(Clone)]
pub struct Receiver {
    pub base: String,
    pub hits: Arc<Mutex<Vec<Hit>>>,
    status: Arc<AtomicU16>,
}

impl Receiver {
    pub async fn spawn() -> Receiver {
        async fn receive(
            State(r): State<Receiver>,
            headers: HeaderMap,
            body: axum::body::Bytes,
        ) -> AxumStatus {
            r.hits.lock().unwrap().push(Hit {
                headers,
                body: body.to_vec(),
                at: Instant::now(),
            });
            AxumStatus::from_u16(r.status.load(Ordering::SeqCst)).unwrap()
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let receiver = Receiver {
            base: format!("http://{}", listener.local_addr().unwrap()),
            hits: Default::default(),
            status: Arc::new(AtomicU16::new(200)),
        };
        let app = axum::Router::new()
            .route("/hooks/orders", post(receive))
            .with_state(receiver.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        receiver
    }

    pub fn url(&self) -> String {
        format!("{}/hooks/orders", self.base)
    }

    fn answer(&self, status: u16) {
        self.status.store(status, Ordering::SeqCst);
    }

    fn count(&self) -> usize {
        self.hits.lock().unwrap().len()
    }
}

// ---------------------------------------------------------------------------------------
// The gateway with a store, a delivery worker and a watch of the demo caller.
// ---------------------------------------------------------------------------------------

struct Gateway {
    base: String,
    http: reqwest::Client,
    /// The demo caller, owner of `watch_id`.
    token: String,
    /// Another caller allowed to manage subscriptions (its own).
    other_token: String,
    /// A caller without `subscriptions.manage`.
    reader_token: String,
    store: Option<Store>,
    watch_id: String,
    wake: Arc<Notify>,
    shutdown: CancellationToken,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

fn caller(name: &str, operations: &[&str]) -> CallerConfig {
    CallerConfig {
        issuer: DEV_ISSUER_NAME.into(),
        client_id: format!("{name}-app"),
        mode: CallerMode::App,
        user_claim: None,
        operations: operations.iter().map(|s| s.to_string()).collect(),
        resources: vec!["*".into()],
        send_as: Vec::new(),
        sites: Vec::new(),
        scopes: None,
    }
}

/// The gateway on an in-memory store, accepting webhooks under `{receiver}/hooks/`, with
/// quick retries (50 ms base, 3 attempts).
fn webhook_config(receiver: &Receiver) -> Config {
    let mut config = test_config();
    config.store.url = "sqlite::memory:".into();
    let mut key = [0u8; 32];
    aws_lc_rs::rand::fill(&mut key).unwrap();
    config
        .store
        .encryption
        .keys
        .insert("test".into(), STANDARD.encode(key));
    let hooks = &mut config.notifications.webhooks;
    hooks.allowed_url_prefixes = vec![format!("{}/hooks/", receiver.base)];
    hooks.retry_base = Duration::from_millis(50);
    hooks.max_attempts = 3;
    hooks.timeout = Duration::from_secs(2);
    config
}

async fn spawn_gateway(mut config: Config) -> Gateway {
    config
        .callers
        .insert("other".into(), caller("other", &["subscriptions.manage"]));
    config
        .callers
        .insert("reader".into(), caller("reader", &["mail.read"]));
    let minted = config.clone().with_embedded_defaults();
    let mint = |name: &str| mint_dev_token(&minted, name, None, Duration::from_secs(3600)).unwrap();
    let (token, other_token, reader_token) = (mint(DEMO_CALLER), mint("other"), mint("reader"));

    let app = App::build(config.clone())
        .await
        .expect("the gateway builds");
    let base = format!("http://{}", app.local_addr());
    let store = app.store().cloned();
    tokio::spawn(app.run_until_stopped(std::future::pending()));

    let wake = Arc::new(Notify::new());
    let shutdown = CancellationToken::new();
    let watch_id = format!("watch-{}", uuid::Uuid::new_v4());
    if let Some(store) = &store {
        store
            .insert_watch(&NewWatch {
                id: watch_id.clone(),
                caller: DEMO_CALLER.into(),
                kind: "mail".into(),
                target: "orders@contoso.example".into(),
                folder: "inbox".into(),
                resource: "users/orders@contoso.example/mailFolders('inbox')/messages".into(),
                change_types: "created".into(),
                include_resource_data: false,
                resync: None,
            })
            .await
            .unwrap();
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        spawn_delivery_worker(
            store.clone(),
            http,
            config.notifications.webhooks.clone(),
            "test-replica".into(),
            wake.clone(),
            shutdown.clone(),
        );
    }
    Gateway {
        base,
        http: reqwest::Client::new(),
        token,
        other_token,
        reader_token,
        store,
        watch_id,
        wake,
        shutdown,
    }
}

impl Gateway {
    async fn call(
        &self,
        method: reqwest::Method,
        token: &str,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("gateway answers");
        let status = response.status();
        let text = response.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    async fn register(&self, url: &str) -> (StatusCode, Value) {
        let path = format!("/api/v1/subscriptions/{}/webhooks", self.watch_id);
        self.call(
            reqwest::Method::POST,
            &self.token,
            &path,
            Some(json!({ "url": url })),
        )
        .await
    }

    async fn deliveries(&self, webhook: &str, query: &str) -> Vec<Value> {
        let path = format!("/api/v1/webhooks/{webhook}/deliveries{query}");
        let (status, body) = self
            .call(reqwest::Method::GET, &self.token, &path, None)
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["data"].as_array().unwrap().clone()
    }

    /// Records a `created` event of the watch, as the outbox worker would, and wakes the
    /// delivery worker.
    async fn record_event(&self) -> String {
        let id = format!("evt-{}", uuid::Uuid::new_v4());
        let event = NewChangeEvent {
            id: id.clone(),
            subscription_id: self.watch_id.clone(),
            change_type: "created".into(),
            resource: "users/orders@contoso.example/messages/AAMk-1".into(),
            resource_id: Some("AAMk-1".into()),
            data: Some(json!({ "subject": "Order #12345" })),
            occurred_at: OffsetDateTime::now_utc(),
        };
        self.store
            .as_ref()
            .unwrap()
            .finish_resync(&self.watch_id, None, &[event])
            .await
            .unwrap();
        self.wake.notify_one();
        id
    }
}

/// Polls `check` every 20 ms until it holds; fails after `within`.
async fn eventually<F, Fut>(within: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    while !check().await {
        assert!(Instant::now() < deadline, "not within {within:?}: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn secret_of(created: &Value) -> Vec<u8> {
    let text = created["secret"].as_str().expect("the secret is shown");
    assert!(text.starts_with("whsec_"), "{text}");
    decode_secret(text).expect("whsec_ + base64")
}

// ---------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn a_registered_webhook_receives_the_event_signed_within_two_seconds() {
    // Arrange
    let receiver = Receiver::spawn().await;
    let gateway = spawn_gateway(webhook_config(&receiver)).await;
    let (status, created) = gateway.register(&receiver.url()).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["subscription_id"], gateway.watch_id);
    assert_eq!(created["url"], receiver.url());
    let secret = secret_of(&created);
    let webhook = created["id"].as_str().unwrap().to_owned();

    let (status, listed) = gateway
        .call(
            reqwest::Method::GET,
            &gateway.token,
            &format!("/api/v1/subscriptions/{}/webhooks", gateway.watch_id),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(listed["data"][0]["id"], webhook.as_str());
    assert!(listed["data"][0].get("secret").is_none(), "{listed}");

    // Act
    let event_id = gateway.record_event().await;
    eventually(
        Duration::from_secs(2),
        "the receiver got the event",
        || async { receiver.count() == 1 },
    )
    .await;

    // Assert
    let hit = receiver.hits.lock().unwrap()[0].clone();
    assert_eq!(hit.headers[ID_HEADER], event_id.as_str());
    assert_eq!(hit.headers["content-type"], "application/json");
    assert!(
        hit.headers[SIGNATURE_HEADER]
            .to_str()
            .unwrap()
            .starts_with("v1,")
    );
    verify_headers(
        &secret,
        &hit.headers,
        &hit.body,
        OffsetDateTime::now_utc(),
        WINDOW,
    )
    .expect("the signature verifies with the secret shown at registration");
    assert!(
        verify_headers(
            b"not the secret",
            &hit.headers,
            &hit.body,
            OffsetDateTime::now_utc(),
            WINDOW
        )
        .is_err()
    );
    let body: Value = serde_json::from_slice(&hit.body).unwrap();
    assert_eq!(body["id"], event_id.as_str());
    assert_eq!(body["type"], "change");
    assert_eq!(body["subscription_id"], gateway.watch_id);
    assert_eq!(body["change_type"], "created");
    assert_eq!(body["resource_id"], "AAMk-1");
    assert_eq!(body["data"]["subject"], "Order #12345");
    assert!(
        OffsetDateTime::parse(
            body["occurred_at"].as_str().unwrap(),
            &time::format_description::well_known::Rfc3339
        )
        .is_ok()
    );

    let mut delivered = Vec::new();
    for _ in 0..50 {
        delivered = gateway.deliveries(&webhook, "?state=delivered").await;
        if !delivered.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(delivered.len(), 1);
    assert_eq!(delivered[0]["event_id"], event_id.as_str());
    assert_eq!(delivered[0]["last_status"], 200);
    assert_eq!(delivered[0]["attempts"], 1);
}

#[tokio::test]
async fn a_failing_receiver_gets_quick_retries_then_the_delivery_is_dead_and_replay_delivers_it() {
    // Arrange
    let receiver = Receiver::spawn().await;
    receiver.answer(500);
    let gateway = spawn_gateway(webhook_config(&receiver)).await;
    let (_, created) = gateway.register(&receiver.url()).await;
    let secret = secret_of(&created);
    let webhook = created["id"].as_str().unwrap().to_owned();

    // Act
    let event_id = gateway.record_event().await;
    let mut dead = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    while dead.is_empty() {
        assert!(Instant::now() < deadline, "the delivery never became dead");
        tokio::time::sleep(Duration::from_millis(20)).await;
        dead = gateway.deliveries(&webhook, "?state=dead").await;
    }

    // Assert: three attempts (max_attempts), each signed, with the same webhook-id, spaced
    // by the jittered backoff (bounds 50 ms then 100 ms) rather than the 1 s poll.
    tokio::time::sleep(Duration::from_millis(300)).await;
    {
        let hits = receiver.hits.lock().unwrap();
        assert_eq!(
            hits.len(),
            3,
            "max_attempts = 3, and nothing after the dead letter"
        );
        for hit in hits.iter() {
            assert_eq!(hit.headers[ID_HEADER], event_id.as_str());
            assert!(hit.headers.contains_key(TIMESTAMP_HEADER));
            verify_headers(
                &secret,
                &hit.headers,
                &hit.body,
                OffsetDateTime::now_utc(),
                WINDOW,
            )
            .unwrap();
        }
        let slack = Duration::from_millis(600);
        let gap1 = hits[1].at - hits[0].at;
        let gap2 = hits[2].at - hits[1].at;
        assert!(gap1 < Duration::from_millis(50) + slack, "{gap1:?}");
        assert!(gap2 < Duration::from_millis(100) + slack, "{gap2:?}");
    }
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0]["event_id"], event_id.as_str());
    assert_eq!(dead[0]["state"], "dead");
    assert_eq!(dead[0]["attempts"], 3);
    assert_eq!(dead[0]["last_status"], 500);
    assert!(dead[0]["last_error"].as_str().unwrap().contains("500"));
    let metrics = gateway
        .http
        .get(format!("{}/metrics", gateway.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for outcome in ["retry", "dead"] {
        assert!(
            metrics.contains(&format!(
                "gateway_webhook_deliveries_total{{outcome=\"{outcome}\"}}"
            )),
            "{outcome} missing from /metrics"
        );
    }

    // Act: the receiver recovers, the delivery is replayed.
    receiver.answer(204);
    let seq = dead[0]["seq"].as_i64().unwrap();
    let (status, body) = gateway
        .call(
            reqwest::Method::POST,
            &gateway.token,
            &format!("/api/v1/webhooks/{webhook}/deliveries/{seq}/replay"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    gateway.wake.notify_one();

    // Assert
    eventually(
        Duration::from_secs(2),
        "the replay was delivered",
        || async { receiver.count() == 4 },
    )
    .await;
    assert_eq!(
        receiver.hits.lock().unwrap()[3].headers[ID_HEADER],
        event_id.as_str(),
        "a replay keeps the webhook-id, so receivers de-duplicate it"
    );
    let mut delivered = Vec::new();
    for _ in 0..50 {
        delivered = gateway.deliveries(&webhook, "?state=delivered").await;
        if !delivered.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(delivered.len(), 1);
    assert_eq!(delivered[0]["last_status"], 204);
    assert_eq!(delivered[0]["attempts"], 1);

    let (status, body) = gateway
        .call(
            reqwest::Method::POST,
            &gateway.token,
            &format!("/api/v1/webhooks/{webhook}/replay-dead"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(body, json!({ "replayed": 0 }));
    let (status, body) = gateway
        .call(
            reqwest::Method::POST,
            &gateway.token,
            &format!("/api/v1/webhooks/{webhook}/deliveries/999999/replay"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
}

#[tokio::test]
async fn another_caller_gets_404_on_someone_elses_subscription_and_webhooks() {
    // Arrange
    let receiver = Receiver::spawn().await;
    let gateway = spawn_gateway(webhook_config(&receiver)).await;
    let (_, created) = gateway.register(&receiver.url()).await;
    let webhook = created["id"].as_str().unwrap().to_owned();
    let watch = gateway.watch_id.clone();
    let get = reqwest::Method::GET;
    let post = reqwest::Method::POST;
    let delete = reqwest::Method::DELETE;
    let attempts = [
        (
            get.clone(),
            format!("/api/v1/subscriptions/{watch}/webhooks"),
            None,
        ),
        (
            post.clone(),
            format!("/api/v1/subscriptions/{watch}/webhooks"),
            Some(json!({ "url": receiver.url() })),
        ),
        (
            get.clone(),
            format!("/api/v1/webhooks/{webhook}/deliveries"),
            None,
        ),
        (
            post.clone(),
            format!("/api/v1/webhooks/{webhook}/deliveries/1/replay"),
            None,
        ),
        (
            post.clone(),
            format!("/api/v1/webhooks/{webhook}/replay-dead"),
            None,
        ),
        (delete.clone(), format!("/api/v1/webhooks/{webhook}"), None),
    ];

    // Act + Assert
    for (method, path, body) in &attempts {
        let (status, answer) = gateway
            .call(method.clone(), &gateway.other_token, path, body.clone())
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{method} {path}: {answer}");
        assert_eq!(answer["error"]["code"], "NOT_FOUND");
        let (status, answer) = gateway
            .call(method.clone(), &gateway.reader_token, path, body.clone())
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{method} {path}: {answer}");
    }
    let (status, _) = gateway
        .call(
            delete.clone(),
            &gateway.token,
            &format!("/api/v1/webhooks/{webhook}"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "the owner still has it");
    let (status, _) = gateway
        .call(
            delete,
            &gateway.token,
            &format!("/api/v1/webhooks/{webhook}"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_url_outside_the_allowed_prefixes_is_refused_as_bad_user_input() {
    // Arrange
    let receiver = Receiver::spawn().await;
    let gateway = spawn_gateway(webhook_config(&receiver)).await;
    let port = receiver.base.rsplit(':').next().unwrap().to_owned();

    // Act + Assert
    for url in [
        "https://evil.example/hooks/orders".to_owned(),
        format!("http://127.0.0.1:{port}/admin"),
        format!("http://127.0.0.1:{port}/hooksX"),
        format!("http://user@127.0.0.1:{port}/hooks/orders"),
        format!("https://127.0.0.1:{port}/hooks/orders"),
        "not a url".to_owned(),
    ] {
        let (status, body) = gateway.register(&url).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{url}: {body}");
        assert_eq!(body["error"]["code"], "BAD_USER_INPUT", "{url}");
    }
    let (_, listed) = gateway
        .call(
            reqwest::Method::GET,
            &gateway.token,
            &format!("/api/v1/subscriptions/{}/webhooks", gateway.watch_id),
            None,
        )
        .await;
    assert_eq!(listed["data"], json!([]), "nothing was registered");
}

#[tokio::test]
async fn with_no_allowed_prefix_registering_names_the_key_and_the_routes_answer_503_without_a_store()
 {
    // Arrange: the default configuration allows no webhook URL; with notifications off
    // (and no connected caller) no store is opened.
    let mut config = test_config();
    config.notifications.enabled = false;
    let gateway = spawn_gateway(config).await;
    assert!(gateway.store.is_none());

    // Act
    let (status, body) = gateway.register("https://orders.internal/hooks/").await;

    // Assert
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["code"], "BAD_USER_INPUT");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("notifications.webhooks.allowed_url_prefixes"),
        "{body}"
    );
    let (status, body) = gateway
        .call(
            reqwest::Method::GET,
            &gateway.token,
            "/api/v1/subscriptions/any/webhooks",
            None,
        )
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["error"]["code"], "UNAVAILABLE");
}
