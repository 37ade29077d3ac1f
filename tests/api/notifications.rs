//! Change notifications end to end: watches through the API, the emulator's real
//! subscriptions and webhook calls, the outbox, events, lifecycle and resync
//! (issue 8; security-catalogue rows 67–79).

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, graph_app_token, spawn_app_with, test_config};

const SHARED: &str = graph_emulator::SHARED_MAILBOX_UPN;
const SEND: &str = "mutation($m: ID!, $msg: OutgoingMessageInput!) { sendMail(mailbox: $m, message: $msg) { accepted } }";

pub async fn spawn() -> TestApp {
    spawn_app_with(test_config()).await
}

impl TestApp {
    pub async fn post_json(&self, path: &str, body: Value) -> (StatusCode, Value) {
        let response = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await
            .expect("gateway answers");
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    pub async fn watch_inbox(&self, mailbox: &str) -> String {
        let (status, body) = self
            .post_json(
                "/api/v1/subscriptions",
                json!({ "resource": { "mailbox": mailbox, "folder": "inbox" }, "change_types": ["created", "updated", "deleted"] }),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body["id"].as_str().unwrap().to_owned()
    }

    pub async fn send_mail_to(&self, to: &str, subject: &str) {
        let (_, body) = self
            .graphql_as(
                Some(&self.token),
                SEND,
                json!({ "m": "me", "msg": { "subject": subject, "body": "Order #4711, Total: 99.50 EUR", "to": [to] } }),
            )
            .await;
        assert_eq!(body["data"]["sendMail"]["accepted"], true, "{body}");
    }

    /// Waits until the watch has an event matching `pred`, or fails after `within`.
    pub async fn wait_for_event(
        &self,
        watch: &str,
        within: Duration,
        pred: impl Fn(&Value) -> bool,
    ) -> Value {
        let start = Instant::now();
        loop {
            let (status, body) = self
                .get(&format!("/api/v1/subscriptions/{watch}/events?limit=500"))
                .await;
            assert_eq!(status, StatusCode::OK, "{body}");
            if let Some(found) = body["data"].as_array().unwrap().iter().find(|e| pred(e)) {
                return found.clone();
            }
            assert!(
                start.elapsed() < within,
                "no matching event within {within:?}: {body}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

#[tokio::test]
async fn mail_sent_to_a_watched_shared_inbox_becomes_a_created_event_within_two_seconds() {
    let app = spawn().await;
    let watch = app.watch_inbox(SHARED).await;
    let (status, listed) = app.get("/api/v1/subscriptions").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(listed["data"][0]["id"], watch.as_str(), "{listed}");
    assert_eq!(listed["data"][0]["status"], "active", "{listed}");

    let subject = format!("Order {}", uuid::Uuid::new_v4());
    let sent = Instant::now();
    app.send_mail_to(SHARED, &subject).await;
    let event = app
        .wait_for_event(&watch, Duration::from_secs(2), |e| {
            e["change_type"] == "created" && e["data"]["subject"] == subject.as_str()
        })
        .await;
    assert!(sent.elapsed() < Duration::from_secs(2));
    assert!(
        event["resource_id"]
            .as_str()
            .is_some_and(|id| !id.is_empty()),
        "{event}"
    );
    assert_eq!(event["subscription_id"], watch.as_str());
}

/// A gateway whose renewal job looks for work often, so lifecycle tests do not wait.
async fn spawn_fast() -> TestApp {
    let mut config = test_config();
    config.notifications.renewal_interval = Duration::from_millis(200);
    config.notifications.poll_interval = Duration::from_millis(200);
    spawn_app_with(config).await
}

impl TestApp {
    /// Deletes a Graph subscription behind the gateway's back, as the app.
    async fn delete_at_graph(&self, id: &str) {
        let tenant = self.emulator().tenant_id().to_owned();
        let token = graph_app_token(&self.http, &self.emulator, &tenant).await;
        let status = self
            .http
            .delete(format!("{}/v1.0/subscriptions/{id}", self.emulator))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, StatusCode::NO_CONTENT);
    }

    fn emulator(&self) -> &graph_emulator::Emulator {
        self.emu.as_ref().expect("embedded emulator")
    }

    /// The Graph subscription behind a watch, as the emulator holds it (id, clientState).
    async fn graph_subscription(&self, watch: &str) -> Value {
        let (_, w) = self.get(&format!("/api/v1/subscriptions/{watch}")).await;
        let resource = w["resource"].as_str().unwrap().to_owned();
        let start = Instant::now();
        loop {
            if let Some(s) = self
                .emulator()
                .subscriptions()
                .into_iter()
                .find(|s| s["resource"] == resource.as_str())
            {
                return s;
            }
            assert!(
                start.elapsed() < Duration::from_secs(5),
                "no Graph subscription for {resource}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// POSTs a notification collection to the gateway as Graph would.
    async fn notify(&self, path: &str, body: &Value) -> (StatusCode, Duration) {
        let start = Instant::now();
        let response = self
            .http
            .post(format!("{}{path}", self.base))
            .json(body)
            .send()
            .await
            .unwrap();
        (response.status(), start.elapsed())
    }

    async fn outbox(&self) -> Vec<(String, i64)> {
        self.store.as_ref().unwrap().outbox_counts().await.unwrap()
    }

    async fn events(&self, watch: &str) -> Vec<Value> {
        let (_, body) = self
            .get(&format!("/api/v1/subscriptions/{watch}/events?limit=500"))
            .await;
        body["data"].as_array().unwrap().clone()
    }

    async fn metric(&self, name_and_labels: &str) -> f64 {
        let text = self
            .http
            .get(format!("{}/metrics", self.base))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.lines()
            .find(|l| l.starts_with(name_and_labels))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0)
    }
}

/// One change notification item for a message, as Graph sends it.
fn item(sub: &Value, client_state: &str, message: &str, etag: &str) -> Value {
    let user = sub["resource"]
        .as_str()
        .unwrap()
        .split('/')
        .nth(1)
        .unwrap()
        .to_owned();
    json!({
        "id": format!("n-{message}-{etag}"),
        "subscriptionId": sub["id"],
        "subscriptionExpirationDateTime": sub["expirationDateTime"],
        "clientState": client_state,
        "changeType": "updated",
        "resource": format!("Users/{user}/Messages/{message}"),
        "tenantId": null,
        "resourceData": {
            "@odata.type": "#Microsoft.Graph.Message",
            "@odata.id": format!("Users/{user}/Messages/{message}"),
            "@odata.etag": etag,
            "id": message,
        }
    })
}

#[tokio::test]
async fn the_validation_handshake_echoes_the_decoded_token_as_plain_text_and_refuses_huge_ones() {
    let app = spawn().await;
    for path in ["/webhooks/graph", "/webhooks/graph/lifecycle"] {
        let response = app
            .http
            .post(format!(
                "{}{path}?validationToken=%3Cscript%3Ealert(1)%3C%2Fscript%3E",
                app.base
            ))
            .header("content-type", "text/plain; charset=utf-8")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let headers = response.headers().clone();
        assert!(
            headers["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/plain")
        );
        assert_eq!(headers["x-content-type-options"], "nosniff");
        assert_eq!(response.text().await.unwrap(), "<script>alert(1)</script>");
    }
    let huge = "a".repeat(2048);
    let response = app
        .http
        .post(format!(
            "{}/webhooks/graph?validationToken={huge}",
            app.base
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn get_is_405_and_a_body_that_is_not_json_is_415() {
    let app = spawn().await;
    let get = app
        .http
        .get(format!("{}/webhooks/graph", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(get.status(), StatusCode::METHOD_NOT_ALLOWED);
    let form = app
        .http
        .post(format!("{}/webhooks/graph", app.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("value=1")
        .send()
        .await
        .unwrap();
    assert_eq!(form.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
}

#[tokio::test]
async fn forged_unknown_and_stale_items_are_acknowledged_but_never_processed_while_their_valid_neighbour_is()
 {
    let app = spawn().await;
    let watch = app.watch_inbox(SHARED).await;
    let sub = app.graph_subscription(&watch).await;
    let secret = sub["clientState"].as_str().unwrap().to_owned();
    let mismatches_before = app
        .metric("gateway_webhook_notifications_total{outcome=\"client_state_mismatch\"}")
        .await;

    let mut unknown = item(&sub, &secret, "m-unknown", "W/\"1\"");
    unknown["subscriptionId"] = json!("00000000-0000-0000-0000-000000000000");
    let mut stale = item(&sub, &secret, "m-stale", "W/\"1\"");
    stale["subscriptionExpirationDateTime"] = json!("2020-01-01T00:00:00Z");
    let body = json!({ "value": [
        item(&sub, "guess", "m-forged", "W/\"1\""),
        item(&sub, &secret, "m-valid", "W/\"1\""),
        unknown,
        stale,
    ]});
    let (status, _) = app.notify("/webhooks/graph", &body).await;
    assert_eq!(status, StatusCode::ACCEPTED);

    // Only the valid item reached the outbox and became an event.
    let event = app
        .wait_for_event(&watch, Duration::from_secs(5), |e| {
            e["resource_id"] == "m-valid"
        })
        .await;
    assert_eq!(event["change_type"], "updated");
    // The message does not exist in the emulator: re-read says it is gone.
    assert!(event["data"].is_null(), "{event}");
    let events = app.events(&watch).await;
    assert!(
        events.iter().all(|e| e["resource_id"] != "m-forged"
            && e["resource_id"] != "m-unknown"
            && e["resource_id"] != "m-stale"),
        "{events:?}"
    );
    let total: i64 = app.outbox().await.iter().map(|(_, n)| n).sum();
    assert_eq!(total, 1, "one row committed");
    assert_eq!(
        app.metric("gateway_webhook_notifications_total{outcome=\"client_state_mismatch\"}")
            .await,
        mismatches_before + 1.0
    );
}

#[tokio::test]
async fn the_same_notification_delivered_three_times_has_one_effect() {
    let app = spawn().await;
    let watch = app.watch_inbox(SHARED).await;
    let sub = app.graph_subscription(&watch).await;
    let secret = sub["clientState"].as_str().unwrap().to_owned();
    let body = json!({ "value": [item(&sub, &secret, "m-dup", "W/\"7\"")] });
    for _ in 0..3 {
        let (status, _) = app.notify("/webhooks/graph", &body).await;
        assert_eq!(status, StatusCode::ACCEPTED);
    }
    app.wait_for_event(&watch, Duration::from_secs(5), |e| {
        e["resource_id"] == "m-dup"
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let events = app.events(&watch).await;
    assert_eq!(
        events
            .iter()
            .filter(|e| e["resource_id"] == "m-dup")
            .count(),
        1,
        "{events:?}"
    );
    // A new version of the item is a new change.
    let next = json!({ "value": [item(&sub, &secret, "m-dup", "W/\"8\"")] });
    app.notify("/webhooks/graph", &next).await;
    let start = Instant::now();
    while app
        .events(&watch)
        .await
        .iter()
        .filter(|e| e["resource_id"] == "m-dup")
        .count()
        < 2
    {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "the new version made no event"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn acknowledgement_is_fast_while_graph_hangs_and_processing_catches_up_later() {
    let app = spawn().await;
    let watch = app.watch_inbox(SHARED).await;
    let sub = app.graph_subscription(&watch).await;
    let secret = sub["clientState"].as_str().unwrap().to_owned();
    // Every read-back of a message hangs: processing cannot finish while this lasts.
    app.emulator().add_fault(
        serde_json::from_value(json!({
            "fault": { "kind": "hang" },
            "route": "GET /users/{id}/messages/{id}",
            "limit": 3
        }))
        .unwrap(),
    );
    let mut slowest = Duration::ZERO;
    for i in 0..50 {
        let body = json!({ "value": [item(&sub, &secret, &format!("m-fast-{i}"), "W/\"1\"")] });
        let (status, took) = app.notify("/webhooks/graph", &body).await;
        assert_eq!(status, StatusCode::ACCEPTED);
        slowest = slowest.max(took);
    }
    // Generous for a debug build on a shared machine; the benchmark measures p99.
    assert!(
        slowest < Duration::from_millis(500),
        "slowest acknowledgement {slowest:?}"
    );
    let committed: i64 = app.outbox().await.iter().map(|(_, n)| n).sum();
    assert_eq!(committed, 50);
}

#[tokio::test]
async fn with_the_store_down_graph_gets_503_so_it_retries() {
    let app = spawn().await;
    let watch = app.watch_inbox(SHARED).await;
    let sub = app.graph_subscription(&watch).await;
    let secret = sub["clientState"].as_str().unwrap().to_owned();
    app.store.as_ref().unwrap().close().await;
    let body = json!({ "value": [item(&sub, &secret, "m-lost?", "W/\"1\"")] });
    let (status, _) = app.notify("/webhooks/graph", &body).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test]
async fn a_ten_thousand_item_post_is_committed_whole() {
    let app = spawn().await;
    let watch = app.watch_inbox(SHARED).await;
    let sub = app.graph_subscription(&watch).await;
    let secret = sub["clientState"].as_str().unwrap().to_owned();
    let items: Vec<Value> = (0..10_000)
        .map(|i| item(&sub, &secret, &format!("m-bulk-{i}"), "W/\"1\""))
        .collect();
    let (status, _) = app
        .notify("/webhooks/graph", &json!({ "value": items }))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let committed: i64 = app.outbox().await.iter().map(|(_, n)| n).sum();
    assert_eq!(committed, 10_000);
}

#[tokio::test]
async fn reauthorization_required_renews_the_subscription_with_a_patch() {
    let app = spawn_fast().await;
    let watch = app.watch_inbox(SHARED).await;
    let sub = app.graph_subscription(&watch).await;
    let id = sub["id"].as_str().unwrap().to_owned();
    let before = sub["expirationDateTime"].as_str().unwrap().to_owned();
    // Let the new watch's baseline pass first (it must not renew).
    tokio::time::sleep(Duration::from_millis(500)).await;
    let patches = |stats: &Value| {
        stats["routes"]["PATCH /subscriptions/{id}"]
            .as_u64()
            .unwrap_or(0)
    };
    assert_eq!(patches(&app.stats().await), 0, "a new watch is not renewed");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    app.emulator()
        .trigger_lifecycle(&id, "reauthorizationRequired")
        .unwrap();
    let start = Instant::now();
    while patches(&app.stats().await) == 0 {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "no PATCH after reauthorizationRequired"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let after = app.graph_subscription(&watch).await;
    assert_eq!(after["id"], id.as_str(), "the same subscription, renewed");
    assert_ne!(after["expirationDateTime"].as_str().unwrap(), before);
}

#[tokio::test]
async fn a_removed_subscription_is_recreated_and_changes_made_meanwhile_arrive_through_the_resync()
{
    let app = spawn_fast().await;
    let watch = app.watch_inbox(SHARED).await;
    let sub = app.graph_subscription(&watch).await;
    let old = sub["id"].as_str().unwrap().to_owned();
    // The baseline must be in place before the gap (it records where the data is).
    tokio::time::sleep(Duration::from_millis(600)).await;
    // Graph removes the subscription; while it is gone, mail arrives that no notification
    // will ever announce.
    app.emulator()
        .trigger_lifecycle(&old, "subscriptionRemoved")
        .unwrap();
    let subject = format!("Sent while removed {}", uuid::Uuid::new_v4());
    app.send_mail_to(SHARED, &subject).await;
    let event = app
        .wait_for_event(&watch, Duration::from_secs(10), |e| {
            e["data"]["subject"] == subject.as_str()
        })
        .await;
    assert_eq!(event["change_type"], "created", "{event}");
    let new = app.graph_subscription(&watch).await;
    assert_ne!(new["id"], old.as_str(), "a new Graph subscription");
}

#[tokio::test]
async fn a_subscription_that_expired_while_nobody_renewed_it_is_recreated_without_a_gap() {
    let app = spawn_fast().await;
    let watch = app.watch_inbox(SHARED).await;
    let sub = app.graph_subscription(&watch).await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    // The gateway was down past the expiry: Graph forgot the subscription (the emulator's
    // clock cannot be moved for this: the gateway's requests would then lie in its past).
    app.delete_at_graph(sub["id"].as_str().unwrap()).await;
    let subject = format!("Sent while expired {}", uuid::Uuid::new_v4());
    app.send_mail_to(SHARED, &subject).await;
    // Back up: the stored expiry is in the past and the watch is due.
    let store = app.store.as_ref().unwrap();
    let stored = store.watch(&watch).await.unwrap().unwrap();
    let past = time::OffsetDateTime::now_utc() - time::Duration::hours(1);
    store
        .set_watch_graph_state(
            &watch,
            &m365_gateway::store::WatchGraphState {
                graph_id: stored.graph_id.clone().unwrap(),
                client_state_hash: stored.client_state_hash.clone(),
                expires_at: past,
                renew_after: past,
            },
        )
        .await
        .unwrap();
    let event = app
        .wait_for_event(&watch, Duration::from_secs(10), |e| {
            e["data"]["subject"] == subject.as_str()
        })
        .await;
    assert_eq!(event["change_type"], "created");
    let new = app.graph_subscription(&watch).await;
    assert_ne!(new["id"], sub["id"]);
}

#[tokio::test]
async fn missed_triggers_a_resync_that_finds_the_missed_change_once() {
    let app = spawn_fast().await;
    let watch = app.watch_inbox(SHARED).await;
    let sub = app.graph_subscription(&watch).await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    let subject = format!("Announced and resynced {}", uuid::Uuid::new_v4());
    app.send_mail_to(SHARED, &subject).await;
    app.wait_for_event(&watch, Duration::from_secs(5), |e| {
        e["data"]["subject"] == subject.as_str()
    })
    .await;
    app.emulator()
        .trigger_lifecycle(sub["id"].as_str().unwrap(), "missed")
        .unwrap();
    // The resync sees the same message, same version: no second event.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let events = app.events(&watch).await;
    let matching = events
        .iter()
        .filter(|e| e["data"]["subject"] == subject.as_str())
        .count();
    assert_eq!(matching, 1, "{events:?}");
}

/// A stored delta link no longer under the Graph root (the root moved: another port of the
/// embedded emulator after a restart, or from the emulator to Microsoft's cloud) is never
/// followed: the resync starts over and still finds the change Graph did not announce.
#[tokio::test]
async fn a_delta_link_outside_the_graph_root_is_not_followed_and_a_fresh_resync_finds_the_change() {
    // Arrange: a synced watch whose stored link points elsewhere.
    let app = spawn_fast().await;
    let watch = app.watch_inbox(SHARED).await;
    let sub = app.graph_subscription(&watch).await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    let store = app.store.as_ref().unwrap();
    let foreign = "https://graph.example.invalid/v1.0/users/x/mailFolders('inbox')/messages/delta?$deltatoken=old";
    store
        .finish_resync(&watch, Some(foreign), &[])
        .await
        .unwrap();
    // A change Graph does not announce: the subscription is gone when it happens.
    app.delete_at_graph(sub["id"].as_str().unwrap()).await;
    let subject = format!("Behind a moved root {}", uuid::Uuid::new_v4());
    app.send_mail_to(SHARED, &subject).await;

    // Act: the resync a `missed` notification asks for.
    store.request_watch_work(&watch, true, false).await.unwrap();

    // Assert
    let event = app
        .wait_for_event(&watch, Duration::from_secs(10), |e| {
            e["data"]["subject"] == subject.as_str()
        })
        .await;
    assert_eq!(event["change_type"], "created", "{event}");
    let stored = store.watch(&watch).await.unwrap().unwrap();
    let link = stored.delta_link.unwrap_or_default();
    assert!(link.starts_with(&app.emulator), "{link}");
    let (_, w) = app.get(&format!("/api/v1/subscriptions/{watch}")).await;
    assert_eq!(w["status"], "active", "{w}");
    assert_eq!(w["last_error"], Value::Null, "{w}");
}

#[tokio::test]
async fn graphql_creates_lists_and_deletes_watches_like_rest() {
    let app = spawn().await;
    let data = app
        .graphql_data(&format!(
            "mutation {{ createChangeSubscription(input: {{ resource: {{ mailbox: \"{SHARED}\" }}, changeTypes: [\"created\"] }}) {{ id kind folder changeTypes status }} }}"
        ))
        .await;
    let created = &data["createChangeSubscription"];
    assert_eq!(created["kind"], "mail");
    assert_eq!(created["folder"], "inbox");
    assert_eq!(created["changeTypes"], json!(["created"]));
    assert_eq!(created["status"], "active");
    let id = created["id"].as_str().unwrap().to_owned();
    let listed = app.graphql_data("{ changeSubscriptions { id } }").await;
    assert_eq!(listed["changeSubscriptions"][0]["id"], id.as_str());
    assert_eq!(app.emulator().subscriptions().len(), 1);
    let deleted = app
        .graphql_data(&format!(
            "mutation {{ deleteChangeSubscription(id: \"{id}\") }}"
        ))
        .await;
    assert_eq!(deleted["deleteChangeSubscription"], true);
    assert!(
        app.emulator().subscriptions().is_empty(),
        "the Graph subscription is gone too"
    );
    let (status, _) = app.get(&format!("/api/v1/subscriptions/{id}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn watching_needs_subscriptions_manage_and_the_right_to_read_the_resource() {
    let app = spawn().await;
    let (status, body) = app
        .post_json(
            "/api/v1/subscriptions",
            json!({ "resource": { "mailbox": SHARED, "drive": "me" } }),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, body) = app
        .post_json(
            "/api/v1/subscriptions",
            json!({ "resource": { "drive": "me" }, "change_types": ["created"] }),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "drives allow only updated: {body}"
    );
    let (status, body) = app
        .post_json(
            "/api/v1/subscriptions",
            json!({ "resource": { "mailbox": SHARED }, "notificationUrl": "https://evil.example/" }),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "a caller never supplies the URL: {body}"
    );
    assert!(app.emulator().subscriptions().is_empty());
}

mod policy {
    use super::*;
    use m365_gateway::config::{CallerConfig, CallerMode, IssuerConfig, IssuerKey, Secret};

    const SECRET: &str = "notifications-policy-test-secret-of-enough-length";

    fn caller(name: &str, operations: &[&str], resources: &[&str]) -> CallerConfig {
        CallerConfig {
            issuer: "internal".into(),
            client_id: name.into(),
            mode: CallerMode::App,
            user_claim: None,
            operations: operations.iter().map(|s| s.to_string()).collect(),
            resources: resources.iter().map(|s| s.to_string()).collect(),
            send_as: Vec::new(),
            sites: Vec::new(),
            scopes: None,
        }
    }

    fn token(caller: &str) -> String {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
            &json!({ "iss": "https://idp.internal.example", "aud": "m365-gateway", "azp": caller, "sub": caller, "exp": now + 600 }),
            &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
        )
        .unwrap()
    }

    async fn create_as(app: &TestApp, who: &str, mailbox: &str) -> (StatusCode, Value) {
        let response = app
            .http
            .post(format!("{}/api/v1/subscriptions", app.base))
            .bearer_auth(token(who))
            .json(&json!({ "resource": { "mailbox": mailbox } }))
            .send()
            .await
            .unwrap();
        (response.status(), response.json().await.unwrap())
    }

    #[tokio::test]
    async fn a_caller_watches_only_what_it_may_read_and_sees_only_its_own_watches() {
        let mut config = test_config();
        config.issuers.insert(
            "internal".into(),
            IssuerConfig {
                issuer: "https://idp.internal.example".into(),
                audiences: vec!["m365-gateway".into()],
                key: IssuerKey::Hs256 {
                    secret: Secret::new(SECRET),
                },
                client_claim: "azp".into(),
                leeway: Duration::from_secs(30),
            },
        );
        config
            .callers
            .insert("reader".into(), caller("reader", &["mail.read"], &["*"]));
        config.callers.insert(
            "watcher".into(),
            caller(
                "watcher",
                &["mail.read", "subscriptions.manage"],
                &[graph_emulator::DEMO_USER_UPN],
            ),
        );
        config
            .callers
            .insert("other".into(), caller("other", &["*"], &["*"]));
        let app = spawn_app_with(config).await;

        let (status, body) = create_as(&app, "reader", SHARED).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
        let (status, body) = create_as(&app, "watcher", SHARED).await;
        assert_eq!(
            status,
            StatusCode::FORBIDDEN,
            "outside its resources: {body}"
        );
        assert!(
            app.emulator().subscriptions().is_empty(),
            "no Graph call made a subscription"
        );

        let (status, own) = create_as(&app, "watcher", graph_emulator::DEMO_USER_UPN).await;
        assert_eq!(status, StatusCode::CREATED, "{own}");
        // Another caller that may do everything still does not see it.
        let other = |path: String| {
            app.http
                .get(format!("{}{path}", app.base))
                .bearer_auth(token("other"))
                .send()
        };
        let response = other(format!(
            "/api/v1/subscriptions/{}",
            own["id"].as_str().unwrap()
        ))
        .await
        .unwrap();
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
        let listed: Value = other("/api/v1/subscriptions".into())
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(listed["data"], json!([]));
    }
}

#[tokio::test]
async fn rich_notifications_are_verified_decrypted_and_need_no_read_back() {
    let mut config = test_config();
    let certs = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/certs");
    config.notifications.encryption = Some(m365_gateway::config::NotificationCertificate {
        certificate_file: format!("{certs}/cert.pem").into(),
        private_key_file: format!("{certs}/key.pem").into(),
        certificate_id: "gateway-2026".into(),
        previous: Vec::new(),
    });
    let app = spawn_app_with(config).await;
    let (status, body) = app
        .post_json(
            "/api/v1/subscriptions",
            json!({ "resource": { "mailbox": SHARED }, "change_types": ["created"], "include_resource_data": true }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let watch = body["id"].as_str().unwrap().to_owned();
    let sub = app.graph_subscription(&watch).await;
    assert_eq!(sub["includeResourceData"], true);
    assert_eq!(sub["encryptionCertificateId"], "gateway-2026");
    tokio::time::sleep(Duration::from_millis(300)).await;
    app.reset_stats().await;

    let subject = format!("Rich order {}", uuid::Uuid::new_v4());
    app.send_mail_to(SHARED, &subject).await;
    let event = app
        .wait_for_event(&watch, Duration::from_secs(5), |e| {
            e["data"]["subject"] == subject.as_str()
        })
        .await;
    assert_eq!(event["change_type"], "created");
    // The decrypted item carries the body the notification encrypted.
    assert!(
        event["data"]["body"]["content"]
            .as_str()
            .is_some_and(|b| b.contains("Order #4711")),
        "{event}"
    );
    let stats = app.stats().await;
    assert!(
        stats["routes"]["GET /users/{id}/messages/{id}"].is_null(),
        "no read-back: {}",
        stats["routes"]
    );
}

#[tokio::test]
async fn resource_data_without_a_configured_certificate_is_refused_before_graph_is_asked() {
    let app = spawn().await;
    let (status, body) = app
        .post_json(
            "/api/v1/subscriptions",
            json!({ "resource": { "mailbox": SHARED }, "include_resource_data": true }),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("notifications.encryption")
    );
    assert!(app.emulator().subscriptions().is_empty());
}

mod end_to_end {
    use super::*;
    use crate::live::{Client, listening};
    use crate::outbound_webhooks::Receiver;

    /// The end-to-end check: subscribe to a shared inbox, send mail to it, and both a
    /// GraphQL subscriber and the consumer's webhook get the new message within 2 s.
    #[tokio::test]
    async fn mail_to_a_watched_shared_inbox_reaches_a_graphql_subscriber_and_a_webhook_within_two_seconds()
     {
        let receiver = Receiver::spawn().await;
        let mut config = test_config();
        config.notifications.webhooks.allowed_url_prefixes =
            vec![format!("{}/hooks/", receiver.base)];
        let app = spawn_app_with(config).await;
        let watch = app.watch_inbox(SHARED).await;
        let (status, hook) = app
            .post_json(
                &format!("/api/v1/subscriptions/{watch}/webhooks"),
                json!({ "url": receiver.url() }),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{hook}");
        let secret =
            m365_gateway::webhooks::outbound::decode_secret(hook["secret"].as_str().unwrap())
                .unwrap();

        // A GraphQL subscriber to the same folder.
        let mut subscriber = Client::ready(&app, &app.token).await;
        subscriber
            .subscribe(
                "orders",
                &format!("subscription {{ mailboxChanges(mailbox: \"{SHARED}\", folder: \"inbox\") {{ changeType message {{ subject from {{ address }} }} }} }}"),
            )
            .await;
        listening(&app, 1).await;

        let subject = format!("Order {}", uuid::Uuid::new_v4());
        let sent = Instant::now();
        app.send_mail_to(SHARED, &subject).await;
        let live = subscriber.payload("orders").await;
        assert!(
            sent.elapsed() < Duration::from_secs(2),
            "GraphQL subscriber too late"
        );
        let change = &live["data"]["mailboxChanges"];
        assert_eq!(change["changeType"], "created", "{live}");
        assert_eq!(change["message"]["subject"], subject.as_str());
        assert_eq!(
            change["message"]["from"]["address"],
            graph_emulator::DEMO_USER_UPN
        );
        let hit = loop {
            let found = receiver.hits.lock().unwrap().iter().find_map(|h| {
                let body: Value = serde_json::from_slice(&h.body).ok()?;
                (body["data"]["subject"] == subject.as_str()).then(|| h.clone())
            });
            if let Some(hit) = found {
                break hit;
            }
            assert!(
                sent.elapsed() < Duration::from_secs(2),
                "no delivery within 2 s"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        assert!(hit.at - sent < Duration::from_secs(2));
        m365_gateway::webhooks::outbound::verify_headers(
            &secret,
            &hit.headers,
            &hit.body,
            time::OffsetDateTime::now_utc(),
            Duration::from_secs(300),
        )
        .expect("a valid Standard Webhooks signature");
        let body: Value = serde_json::from_slice(&hit.body).unwrap();
        assert_eq!(body["change_type"], "created");
        assert_eq!(body["subscription_id"], watch.as_str());
    }
}

mod kinds {
    use super::*;

    /// Graph's drive notifications say only "something changed": the delta resync finds
    /// what, and each new item becomes an event.
    #[tokio::test]
    async fn a_file_uploaded_to_a_watched_drive_becomes_an_event_through_the_delta_resync() {
        let app = spawn_fast().await;
        let drive = format!("user:{}", graph_emulator::DEMO_USER_UPN);
        let (status, body) = app
            .post_json(
                "/api/v1/subscriptions",
                json!({ "resource": { "drive": drive } }),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let watch = body["id"].as_str().unwrap().to_owned();
        assert_eq!(body["change_types"], json!(["updated"]));
        // The baseline first.
        tokio::time::sleep(Duration::from_millis(700)).await;
        let name = format!("invoice-{}.txt", uuid::Uuid::new_v4());
        let uploaded = app
            .http
            .put(format!(
                "{}/api/v1/drives/{drive}/root:/Invoices/{name}:/content",
                app.base
            ))
            .bearer_auth(&app.token)
            .header("content-type", "text/plain")
            .body("total 42")
            .send()
            .await
            .unwrap();
        assert!(uploaded.status().is_success(), "{}", uploaded.status());
        let event = app
            .wait_for_event(&watch, Duration::from_secs(10), |e| {
                e["data"]["name"] == name.as_str()
            })
            .await;
        assert_eq!(event["change_type"], "created", "{event}");
        // Items that existed before the watch are not announced.
        let events = app.events(&watch).await;
        assert!(
            events.len() <= 3,
            "only the new file and its folders: {events:?}"
        );
    }

    #[tokio::test]
    async fn a_new_event_in_a_watched_calendar_becomes_a_created_event() {
        let app = spawn().await;
        let (status, body) = app
            .post_json(
                "/api/v1/subscriptions",
                json!({ "resource": { "calendar": graph_emulator::DEMO_USER_UPN } }),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let watch = body["id"].as_str().unwrap().to_owned();
        let subject = format!("Planning {}", uuid::Uuid::new_v4());
        let (status, created) = app
            .post_json(
                &format!("/api/v1/users/{}/events", graph_emulator::DEMO_USER_UPN),
                json!({ "event": { "subject": subject, "start": "2030-01-07T10:00:00Z", "end": "2030-01-07T11:00:00Z" } }),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
        let event = app
            .wait_for_event(&watch, Duration::from_secs(5), |e| {
                e["data"]["subject"] == subject.as_str()
            })
            .await;
        assert_eq!(event["change_type"], "created");
    }

    /// Catalogue row 92: the stored delta link expired (410): a full resync, and the change
    /// made in the gap is there.
    #[tokio::test]
    async fn an_expired_delta_link_falls_back_to_a_full_resync_without_losing_the_change() {
        let app = spawn_fast().await;
        let watch = app.watch_inbox(SHARED).await;
        let sub = app.graph_subscription(&watch).await;
        tokio::time::sleep(Duration::from_millis(700)).await;
        app.emulator()
            .trigger_lifecycle(sub["id"].as_str().unwrap(), "subscriptionRemoved")
            .unwrap();
        app.emulator().expire_mail_delta_tokens();
        let subject = format!("In the gap {}", uuid::Uuid::new_v4());
        app.send_mail_to(SHARED, &subject).await;
        let event = app
            .wait_for_event(&watch, Duration::from_secs(10), |e| {
                e["data"]["subject"] == subject.as_str()
            })
            .await;
        // Announced by the re-created subscription or found by the resync, whichever came
        // first (the same version is one event either way).
        assert!(
            ["created", "updated"].contains(&event["change_type"].as_str().unwrap()),
            "{event}"
        );
        // The resync hit 410 and fell back to a full sync, which announces every message in
        // the folder as an update (the baseline had announced none).
        let start = Instant::now();
        loop {
            let others = app
                .events(&watch)
                .await
                .into_iter()
                .filter(|e| {
                    e["change_type"] == "updated" && e["data"]["subject"] != subject.as_str()
                })
                .count();
            if others > 0 {
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "no full resync happened"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let (_, w) = app.get(&format!("/api/v1/subscriptions/{watch}")).await;
        assert_eq!(w["status"], "active", "{w}");
        assert!(w["last_error"].is_null(), "{w}");
    }
}

/// A gateway that starts again finds out about every subscription Graph dropped while it was
/// away (no lifecycle event reached it), re-creates it and resyncs: nothing is missed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_gateway_recreates_a_subscription_graph_dropped_meanwhile() {
    use crate::helpers::{loopback, real_mode_config};
    let emulator = graph_emulator::Emulator::spawn(Default::default(), loopback())
        .await
        .unwrap();
    let dir = std::env::temp_dir().join(format!("m365gw-restart-{}", uuid::Uuid::new_v4()));
    let config = || {
        let mut config = real_mode_config(
            &emulator,
            graph_emulator::DEFAULT_CLIENT_ID,
            ("ops", m365_gateway::config::CallerMode::App, &["*"], &["*"]),
        );
        config.graph.client_secret = Some(m365_gateway::config::Secret::new(
            graph_emulator::DEFAULT_CLIENT_SECRET,
        ));
        config.callers.get_mut("ops").unwrap().send_as = vec!["*".into()];
        config.store.url = format!("sqlite://{}/gateway.db", dir.display());
        config.notifications.renewal_interval = Duration::from_millis(200);
        config
    };
    let mut first = spawn_app_with(config()).await;
    first.token = crate::helpers::test_token("ops", None);
    let watch = first.watch_inbox(SHARED).await;
    let old = emulator.emulator.subscriptions().pop().unwrap();
    // It has been running a while: the watch's baseline is taken.
    let store = first.store.clone().unwrap();
    let start = Instant::now();
    while store
        .watch(&watch)
        .await
        .unwrap()
        .unwrap()
        .synced_at
        .is_none()
    {
        assert!(start.elapsed() < Duration::from_secs(10), "no baseline");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // "Stopped": its store closed, its workers can no longer do anything.
    first.store.as_ref().unwrap().close().await;
    drop(first);

    // While the gateway is away, Graph drops the subscription and mail arrives.
    first_delete(&emulator, old["id"].as_str().unwrap()).await;

    let mut second = spawn_app_with(config()).await;
    second.token = crate::helpers::test_token("ops", None);
    let subject = format!("While away {}", uuid::Uuid::new_v4());
    let (status, body) = second
        .post_json(
            &format!("/api/v1/users/{}/send-mail", graph_emulator::DEMO_USER_UPN),
            json!({ "message": { "to": [SHARED], "subject": subject, "body": "x" } }),
        )
        .await;
    assert!(status.is_success(), "{body}");
    second
        .wait_for_event(&watch, Duration::from_secs(10), |e| {
            e["data"]["subject"] == subject.as_str()
        })
        .await;
    let now = emulator.emulator.subscriptions();
    assert_eq!(now.len(), 1);
    assert_ne!(now[0]["id"], old["id"], "re-created");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Deletes a Graph subscription as the app, straight at the emulator.
async fn first_delete(emulator: &graph_emulator::RunningEmulator, id: &str) {
    let http = reqwest::Client::new();
    let tenant = emulator.emulator.tenant_id().to_owned();
    let token = graph_app_token(&http, &emulator.base_url(), &tenant).await;
    let status = http
        .delete(format!("{}/v1.0/subscriptions/{id}", emulator.base_url()))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, StatusCode::NO_CONTENT);
}

/// Catalogue row 79: the receiver is outside caller authentication, so it has a rate limit
/// of its own.
#[tokio::test]
async fn the_receiver_has_its_own_rate_limit() {
    let mut config = test_config();
    config.notifications.receive_requests_per_second = 1.0;
    let app = spawn_app_with(config).await;
    let body = json!({ "value": [] });
    let mut statuses = Vec::new();
    for _ in 0..5 {
        statuses.push(app.notify("/webhooks/graph", &body).await.0);
    }
    assert_eq!(statuses[0], StatusCode::ACCEPTED);
    assert!(
        statuses.contains(&StatusCode::TOO_MANY_REQUESTS),
        "{statuses:?}"
    );
    // The validation handshake is never limited: Graph must always be able to validate.
    let handshake = app
        .http
        .post(format!("{}/webhooks/graph?validationToken=abc", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(handshake.status(), StatusCode::OK);
}

/// Catalogue row 69: a Graph subscription that notifies the gateway but belongs to no watch
/// (the gateway crashed between Graph's answer and its store) is deleted.
#[tokio::test]
async fn an_orphaned_graph_subscription_of_the_gateway_is_deleted_when_it_notifies() {
    let app = spawn_fast().await;
    let tenant = app.emulator().tenant_id().to_owned();
    let token = graph_app_token(&app.http, &app.emulator, &tenant).await;
    let expires = (time::OffsetDateTime::now_utc() + time::Duration::days(1))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let created = app
        .http
        .post(format!("{}/v1.0/subscriptions", app.emulator))
        .bearer_auth(&token)
        .json(&json!({
            "changeType": "created",
            "notificationUrl": format!("{}/webhooks/graph", app.base),
            "resource": format!("users/{SHARED}/mailFolders('inbox')/messages"),
            "expirationDateTime": expires,
            "clientState": "lost-in-a-crash",
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    assert_eq!(app.emulator().subscriptions().len(), 1);
    // A forged notification for a made-up subscription changes nothing.
    let forged = json!({ "value": [{ "subscriptionId": uuid::Uuid::new_v4().to_string(), "clientState": "x", "changeType": "created", "resource": "Users/x/Messages/y" }] });
    assert_eq!(
        app.notify("/webhooks/graph", &forged).await.0,
        StatusCode::ACCEPTED
    );

    app.send_mail_to(SHARED, "to an orphan").await;
    let start = Instant::now();
    while !app.emulator().subscriptions().is_empty() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the orphan is still there"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
