//! Change-notification subscriptions over real HTTP: a small receiver (axum on port 0)
//! answers the validation handshake and records every notification the emulator posts.

mod common;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_lc_rs::cipher::{AES_256, DecryptionContext, PaddedBlockDecryptingKey, UnboundCipherKey};
use aws_lc_rs::hmac;
use aws_lc_rs::iv::FixedLength;
use aws_lc_rs::rsa::{OAEP_SHA1_MGF1SHA1, OaepPrivateDecryptingKey, PrivateDecryptingKey};
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{StatusCode as AxStatus, Uri, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use common::{Harness, start, start_with};
use graph_emulator::{
    AppRegistration, CHANGE_TRACKING_APP_ID, DEFAULT_CLIENT_ID, DEFAULT_TENANT_ID, DEMO_USER_UPN,
    EmulatorConfig, NotificationSettings,
};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const CERT_PEM: &str = include_str!("fixtures/certs/cert.pem");
const KEY_PEM: &str = include_str!("fixtures/certs/key.pem");

/// What the receiver got.
#[derive(Clone, Debug)]
struct Received {
    path: String,
    validation_token: Option<String>,
    content_type: String,
    body: String,
}

#[derive(Clone, Default)]
struct Receiver {
    log: Arc<Mutex<Vec<Received>>>,
    /// Statuses for the next notifications (then 202).
    plan: Arc<Mutex<VecDeque<u16>>>,
    /// Answer handshakes with something other than the token.
    refuse_validation: bool,
}

async fn receive(
    State(rcv): State<Receiver>,
    uri: Uri,
    RawQuery(query): RawQuery,
    headers: axum::http::HeaderMap,
    body: Bytes,
) -> Response {
    // The token arrives URL-encoded; the answer must be the decoded text.
    let token = query.as_deref().and_then(|q| {
        url::form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k == "validationToken")
            .map(|(_, v)| v.into_owned())
    });
    rcv.log.lock().unwrap().push(Received {
        path: uri.path().to_string(),
        validation_token: token.clone(),
        content_type: headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string(),
        body: String::from_utf8_lossy(&body).into_owned(),
    });
    if let Some(token) = token {
        if rcv.refuse_validation {
            return (AxStatus::OK, "not the token").into_response();
        }
        return (
            AxStatus::OK,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            token,
        )
            .into_response();
    }
    let status = rcv.plan.lock().unwrap().pop_front().unwrap_or(202);
    AxStatus::from_u16(status)
        .unwrap_or(AxStatus::ACCEPTED)
        .into_response()
}

/// Starts a receiver; returns it and its base URL (`http://127.0.0.1:PORT`).
async fn receiver(rcv: Receiver) -> (Receiver, String) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new()
        .fallback(receive)
        .with_state(rcv.clone());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (rcv, format!("http://{addr}"))
}

impl Receiver {
    fn notifications(&self, path: &str) -> Vec<Value> {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.validation_token.is_none() && r.path == path)
            .map(|r| serde_json::from_str(&r.body).expect("notification JSON"))
            .collect()
    }

    fn handshakes(&self) -> Vec<Received> {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.validation_token.is_some())
            .cloned()
            .collect()
    }

    /// Waits (up to `within`) until `path` received a notification item matching `pred`.
    async fn wait_for(
        &self,
        path: &str,
        within: Duration,
        pred: impl Fn(&Value) -> bool,
    ) -> Option<(Value, Value)> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            for body in self.notifications(path) {
                if let Some(item) = body["value"]
                    .as_array()
                    .and_then(|v| v.iter().find(|i| pred(i)))
                {
                    return Some((body.clone(), item.clone()));
                }
            }
            if tokio::time::Instant::now() > deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

fn in_minutes(minutes: i64) -> String {
    let t = time::OffsetDateTime::now_utc() + time::Duration::minutes(minutes);
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

async fn user_id(h: &Harness, upn: &str) -> String {
    let reply = h.get(&format!("/users/{upn}")).await;
    reply.json()["id"].as_str().expect("id").to_string()
}

async fn subscribe(h: &Harness, body: Value) -> common::Reply {
    h.post("/subscriptions", &body).await
}

fn settings_for_tests() -> EmulatorConfig {
    EmulatorConfig {
        notifications: NotificationSettings {
            timeout: Duration::from_millis(800),
            retry_base: Duration::from_millis(50),
            max_attempts: 4,
            validation_timeout: Duration::from_secs(2),
            allow_http_hosts: Vec::new(),
        },
        ..EmulatorConfig::default()
    }
}

async fn send_mail_to_demo(h: &Harness, subject: &str) {
    let reply = h
        .post(
            "/users/siobhan.obrien@kestrelridge.example/sendMail",
            &json!({"message": {
                "subject": subject,
                "body": {"contentType": "Text", "content": "hello"},
                "toRecipients": [{"emailAddress": {"address": DEMO_USER_UPN}}],
            }}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.text);
}

async fn inbox_subscription(h: &Harness, url: &str, demo: &str, changes: &str) -> Value {
    let reply = subscribe(
        h,
        json!({
            "changeType": changes,
            "notificationUrl": format!("{url}/notify"),
            "resource": format!("users/{demo}/mailFolders('inbox')/messages"),
            "expirationDateTime": in_minutes(60),
            "clientState": "secretClientValue",
        }),
    )
    .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    reply.json()
}

#[tokio::test]
async fn a_subscription_is_created_after_the_handshake_and_can_be_read_renewed_and_deleted() {
    let h = start().await;
    let (rcv, url) = receiver(Receiver::default()).await;
    let demo = user_id(&h, DEMO_USER_UPN).await;
    let sub = inbox_subscription(&h, &url, &demo, "created,updated").await;

    let handshakes = rcv.handshakes();
    assert_eq!(handshakes.len(), 1);
    assert_eq!(handshakes[0].path, "/notify");
    assert!(handshakes[0].content_type.starts_with("text/plain"));
    assert!(handshakes[0].body.is_empty());

    assert_eq!(
        sub["@odata.context"],
        "https://graph.microsoft.com/v1.0/$metadata#subscriptions/$entity"
    );
    for key in [
        "id",
        "resource",
        "applicationId",
        "changeType",
        "clientState",
        "notificationUrl",
        "lifecycleNotificationUrl",
        "expirationDateTime",
        "creatorId",
        "includeResourceData",
        "latestSupportedTlsVersion",
        "encryptionCertificate",
        "encryptionCertificateId",
        "notificationContentType",
    ] {
        assert!(sub.get(key).is_some(), "{key} missing: {sub}");
    }
    assert_eq!(sub["applicationId"], DEFAULT_CLIENT_ID);
    assert_eq!(sub["changeType"], "created,updated");
    assert_eq!(sub["clientState"], "secretClientValue");
    assert_eq!(sub["includeResourceData"], false);
    assert_eq!(sub["latestSupportedTlsVersion"], "v1_2");
    let id = sub["id"].as_str().unwrap();

    let list = h.get("/subscriptions").await;
    assert_eq!(list.status, StatusCode::OK);
    assert_eq!(list.json()["value"].as_array().unwrap().len(), 1);
    let one = h.get(&format!("/subscriptions/{id}")).await;
    assert_eq!(one.status, StatusCode::OK);
    assert_eq!(one.json()["id"], id);

    let renewed = h
        .patch(
            &format!("/subscriptions/{id}"),
            &json!({"expirationDateTime": in_minutes(3000)}),
        )
        .await;
    assert_eq!(renewed.status, StatusCode::OK, "{}", renewed.text);
    assert_ne!(
        renewed.json()["expirationDateTime"],
        sub["expirationDateTime"]
    );
    // Renewal does not validate again.
    assert_eq!(rcv.handshakes().len(), 1);

    let gone = h.delete(&format!("/subscriptions/{id}")).await;
    assert_eq!(gone.status, StatusCode::NO_CONTENT);
    let missing = h.get(&format!("/subscriptions/{id}")).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_receiver_that_does_not_echo_the_token_gets_no_subscription() {
    let h = start().await;
    let (_rcv, url) = receiver(Receiver {
        refuse_validation: true,
        ..Receiver::default()
    })
    .await;
    let demo = user_id(&h, DEMO_USER_UPN).await;
    let reply = subscribe(
        &h,
        json!({
            "changeType": "created",
            "notificationUrl": format!("{url}/notify"),
            "resource": format!("users/{demo}/messages"),
            "expirationDateTime": in_minutes(60),
        }),
    )
    .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.error_code(), "ValidationError");
    assert!(
        reply
            .error_message()
            .starts_with("Subscription validation request failed.")
    );
    assert!(h.emu.emulator.subscriptions().is_empty());

    // Nobody listening at all: refused the same way.
    let closed = subscribe(
        &h,
        json!({
            "changeType": "created",
            "notificationUrl": "http://127.0.0.1:9/notify",
            "resource": format!("users/{demo}/messages"),
            "expirationDateTime": in_minutes(60),
        }),
    )
    .await;
    assert_eq!(closed.status, StatusCode::BAD_REQUEST);
    assert!(
        h.get("/subscriptions").await.json()["value"]
            .as_array()
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn requests_graph_would_refuse_are_refused_before_any_handshake() {
    let h = start().await;
    let (rcv, url) = receiver(Receiver::default()).await;
    let demo = user_id(&h, DEMO_USER_UPN).await;
    let base = json!({
        "changeType": "created",
        "notificationUrl": format!("{url}/notify"),
        "resource": format!("users/{demo}/messages"),
        "expirationDateTime": in_minutes(60),
    });
    let with = |k: &str, v: Value| {
        let mut b = base.clone();
        b[k] = v;
        b
    };
    // Over the maximum lifetime of Outlook resources (10,080 minutes).
    let long = subscribe(&h, with("expirationDateTime", json!(in_minutes(10_200)))).await;
    assert_eq!(long.status, StatusCode::BAD_REQUEST);
    assert_eq!(long.error_code(), "ExtensionError");
    assert_eq!(
        long.error_message(),
        "Subscription expiration can only be 10080 minutes in the future."
    );
    for (key, value) in [
        ("changeType", json!("created,moved")),
        ("expirationDateTime", json!(in_minutes(-5))),
        ("notificationUrl", json!("http://example.com/notify")),
        ("resource", json!("users/nobody-knows/teamwork")),
        ("clientState", json!("x".repeat(129))),
    ] {
        let reply = subscribe(&h, with(key, value)).await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "{key}: {}",
            reply.text
        );
    }
    // Drive roots take `updated` only.
    let drive = h.emu.emulator.drive_id_of_user(DEMO_USER_UPN).unwrap();
    let mut b = with("resource", json!(format!("drives/{drive}/root")));
    b["changeType"] = json!("created");
    assert_eq!(subscribe(&h, b).await.status, StatusCode::BAD_REQUEST);
    assert!(rcv.handshakes().is_empty());
}

#[tokio::test]
async fn an_app_without_the_resource_s_permission_gets_403() {
    let directory_only = AppRegistration::confidential(
        "7d3e1f4c-9f5b-4a0c-b8e3-2b4f5a6c7d8e",
        "directory-only-secret",
        "directory-only",
        ["User.Read.All"],
    );
    let mut config = EmulatorConfig::default();
    config.apps.push(directory_only.clone());
    let h = start_with(config).await;
    let (rcv, url) = receiver(Receiver::default()).await;
    let token = common::fetch_token(
        &h.client,
        &h.emu.base_url(),
        &directory_only.client_id,
        &directory_only.client_secret,
    )
    .await;
    let demo = user_id(&h, DEMO_USER_UPN).await;
    for resource in [
        format!("users/{demo}/messages"),
        format!("users/{demo}/events"),
        format!("users/{demo}/contacts"),
    ] {
        let body = json!({
            "changeType": "created",
            "notificationUrl": format!("{url}/notify"),
            "resource": resource,
            "expirationDateTime": in_minutes(60),
        });
        let reply = h
            .call(
                Method::POST,
                "/subscriptions",
                Some(&body),
                Some(&token),
                &[],
            )
            .await;
        assert_eq!(reply.status, StatusCode::FORBIDDEN, "{resource}");
        assert_eq!(reply.error_code(), "ErrorAccessDenied");
    }
    // What it may read, it may watch.
    let users = json!({
        "changeType": "updated,deleted",
        "notificationUrl": format!("{url}/notify"),
        "resource": "users",
        "expirationDateTime": in_minutes(60),
    });
    let reply = h
        .call(
            Method::POST,
            "/subscriptions",
            Some(&users),
            Some(&token),
            &[],
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    // And another app does not see it.
    assert!(
        h.get("/subscriptions").await.json()["value"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    assert_eq!(rcv.handshakes().len(), 1);
}

#[tokio::test]
async fn mail_delivered_by_send_mail_notifies_an_inbox_subscription() {
    let h = start().await;
    let (rcv, url) = receiver(Receiver::default()).await;
    let demo = user_id(&h, DEMO_USER_UPN).await;
    let sub = inbox_subscription(&h, &url, &demo, "created").await;
    send_mail_to_demo(&h, "Webhook test").await;

    let (body, item) = rcv
        .wait_for("/notify", Duration::from_secs(2), |i| {
            i["changeType"] == "created"
        })
        .await
        .expect("a created notification within 2 s");
    assert!(body.get("validationTokens").is_none());
    let newest = h
        .get(&format!("/users/{demo}/mailFolders/inbox/messages?$top=1"))
        .await
        .json()["value"][0]
        .clone();
    assert_eq!(newest["subject"], "Webhook test");
    let message_id = newest["id"].as_str().unwrap();
    assert_eq!(item["subscriptionId"], sub["id"]);
    assert_eq!(item["clientState"], "secretClientValue");
    assert_eq!(item["tenantId"], DEFAULT_TENANT_ID);
    assert_eq!(
        item["subscriptionExpirationDateTime"],
        sub["expirationDateTime"]
    );
    assert_eq!(
        item["resource"],
        format!("Users/{demo}/Messages/{message_id}")
    );
    let data = &item["resourceData"];
    assert_eq!(data["@odata.type"], "#Microsoft.Graph.Message");
    assert_eq!(data["@odata.id"], item["resource"]);
    assert_eq!(data["id"], message_id);
    assert_eq!(data["@odata.etag"], newest["@odata.etag"]);
    // The resource path answers as a Graph path.
    let fetched = h
        .get(&format!("/{}", item["resource"].as_str().unwrap()))
        .await;
    assert_eq!(fetched.status, StatusCode::OK, "{}", fetched.text);

    let stats = h.emu.emulator.stats();
    assert_eq!(stats.notification_attempts, 1);
    assert_eq!(stats.notifications_delivered, 1);
}

#[tokio::test]
async fn updating_and_deleting_a_message_notify_updated_and_deleted() {
    let h = start().await;
    let (rcv, url) = receiver(Receiver::default()).await;
    let demo = user_id(&h, DEMO_USER_UPN).await;
    inbox_subscription(&h, &url, &demo, "created,updated,deleted").await;
    let first = h
        .get(&format!("/users/{demo}/mailFolders/inbox/messages?$top=1"))
        .await
        .json()["value"][0]
        .clone();
    let id = first["id"].as_str().unwrap().to_string();
    let reply = h
        .patch(
            &format!("/users/{demo}/messages/{id}"),
            &json!({"categories": ["Blue category"]}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let etag = reply.json()["@odata.etag"].clone();
    let (_, updated) = rcv
        .wait_for("/notify", Duration::from_secs(2), |i| {
            i["changeType"] == "updated"
        })
        .await
        .expect("updated");
    assert_eq!(updated["resourceData"]["id"], id.as_str());
    assert_eq!(updated["resourceData"]["@odata.etag"], etag);

    let reply = h.delete(&format!("/users/{demo}/messages/{id}")).await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    let (_, deleted) = rcv
        .wait_for("/notify", Duration::from_secs(2), |i| {
            i["changeType"] == "deleted"
        })
        .await
        .expect("deleted");
    assert_eq!(deleted["resourceData"]["id"], id.as_str());
    // Nothing was created.
    assert!(
        rcv.wait_for("/notify", Duration::from_millis(100), |i| i["changeType"]
            == "created")
            .await
            .is_none()
    );
}

#[tokio::test]
async fn a_new_event_notifies_an_events_subscription() {
    let h = start().await;
    let (rcv, url) = receiver(Receiver::default()).await;
    let demo = user_id(&h, DEMO_USER_UPN).await;
    let reply = subscribe(
        &h,
        json!({
            "changeType": "created",
            "notificationUrl": format!("{url}/events"),
            "resource": format!("/users/{demo}/events"),
            "expirationDateTime": in_minutes(120),
            "clientState": "events",
        }),
    )
    .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    let created = h
        .post(
            &format!("/users/{demo}/events"),
            &json!({
                "subject": "Webhook review",
                "start": {"dateTime": "2030-05-01T09:00:00", "timeZone": "UTC"},
                "end": {"dateTime": "2030-05-01T10:00:00", "timeZone": "UTC"},
            }),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let event_id = created.json()["id"].as_str().unwrap().to_string();
    let (_, item) = rcv
        .wait_for("/events", Duration::from_secs(2), |i| {
            i["resourceData"]["id"] == event_id.as_str()
        })
        .await
        .expect("event notification");
    assert_eq!(item["changeType"], "created");
    assert_eq!(item["clientState"], "events");
    assert_eq!(
        item["resourceData"]["@odata.type"],
        "#Microsoft.Graph.Event"
    );
    assert_eq!(item["resource"], format!("Users/{demo}/Events/{event_id}"));
}

#[tokio::test]
async fn a_file_upload_notifies_a_drive_root_subscription() {
    let h = start().await;
    let (rcv, url) = receiver(Receiver::default()).await;
    let drive = h.emu.emulator.drive_id_of_user(DEMO_USER_UPN).unwrap();
    let reply = subscribe(
        &h,
        json!({
            "changeType": "updated",
            "notificationUrl": format!("{url}/drive"),
            "resource": format!("drives/{drive}/root"),
            "expirationDateTime": in_minutes(40_000),
        }),
    )
    .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    let put = h
        .client
        .put(format!(
            "{}/drives/{drive}/root:/webhook.txt:/content",
            h.emu.graph_url()
        ))
        .bearer_auth(&h.token)
        .body("hello")
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), StatusCode::CREATED);
    let (_, item) = rcv
        .wait_for("/drive", Duration::from_secs(2), |i| {
            i["changeType"] == "updated"
        })
        .await
        .expect("drive notification");
    assert_eq!(item["resource"], format!("drives/{drive}/root"));
    assert!(item.get("resourceData").is_none());
}

#[tokio::test]
async fn a_receiver_answering_500_twice_then_202_gets_three_attempts_and_the_notification() {
    let h = start_with(settings_for_tests()).await;
    let (rcv, url) = receiver(Receiver::default()).await;
    let demo = user_id(&h, DEMO_USER_UPN).await;
    inbox_subscription(&h, &url, &demo, "created").await;
    rcv.plan.lock().unwrap().extend([500, 500]);
    send_mail_to_demo(&h, "Retry me").await;

    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    while h.emu.emulator.stats().notifications_delivered < 1 {
        assert!(tokio::time::Instant::now() < deadline, "not delivered");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let stats = h.emu.emulator.stats();
    assert_eq!(stats.notification_attempts, 3);
    assert_eq!(stats.notifications_dropped, 0);
    assert_eq!(rcv.notifications("/notify").len(), 3);
    let attempts: Vec<_> = h
        .emu
        .emulator
        .notification_attempts()
        .into_iter()
        .filter(|a| a.kind == "notification")
        .collect();
    let statuses: Vec<_> = attempts.iter().map(|a| (a.attempt, a.status)).collect();
    assert_eq!(
        statuses,
        vec![(1, Some(500)), (2, Some(500)), (3, Some(202))]
    );
    // The same list over HTTP.
    let listed: Value = h
        .client
        .get(format!(
            "{}/_emulator/subscriptions/deliveries",
            h.emu.base_url()
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed["value"].as_array().unwrap().len(), 4); // the handshake too
}

#[tokio::test]
async fn a_receiver_that_never_succeeds_is_given_up_after_the_last_attempt() {
    let h = start_with(settings_for_tests()).await;
    let (rcv, url) = receiver(Receiver::default()).await;
    let demo = user_id(&h, DEMO_USER_UPN).await;
    inbox_subscription(&h, &url, &demo, "created").await;
    rcv.plan.lock().unwrap().extend([503, 503, 503, 503, 503]);
    send_mail_to_demo(&h, "Never").await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    while h.emu.emulator.stats().notifications_dropped < 1 {
        assert!(tokio::time::Instant::now() < deadline, "not dropped");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(h.emu.emulator.stats().notification_attempts, 4);
}

#[tokio::test]
async fn an_expired_subscription_sends_nothing_and_is_gone() {
    let h = start().await;
    let (rcv, url) = receiver(Receiver::default()).await;
    let demo = user_id(&h, DEMO_USER_UPN).await;
    let sub = inbox_subscription(&h, &url, &demo, "created").await;
    let id = sub["id"].as_str().unwrap();

    let advanced = h
        .client
        .post(format!("{}/_emulator/clock/advance", h.emu.base_url()))
        .json(&json!({"seconds": 3601}))
        .send()
        .await
        .unwrap();
    assert_eq!(advanced.status(), StatusCode::NO_CONTENT);
    send_mail_to_demo(&h, "Too late").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(rcv.notifications("/notify").is_empty());
    assert_eq!(
        h.get(&format!("/subscriptions/{id}")).await.status,
        StatusCode::NOT_FOUND
    );
    assert!(h.emu.emulator.subscriptions().is_empty());
    assert_eq!(h.emu.emulator.stats().notification_attempts, 0);
}

#[tokio::test]
async fn lifecycle_events_are_posted_to_the_lifecycle_url_in_graph_s_shape() {
    let h = start().await;
    let (rcv, url) = receiver(Receiver::default()).await;
    let demo = user_id(&h, DEMO_USER_UPN).await;
    let reply = subscribe(
        &h,
        json!({
            "changeType": "created,updated",
            "notificationUrl": format!("{url}/notify"),
            "lifecycleNotificationUrl": format!("{url}/lifecycle"),
            "resource": format!("users/{demo}/messages"),
            "expirationDateTime": in_minutes(600),
            "clientState": "life",
        }),
    )
    .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    let sub = reply.json();
    let id = sub["id"].as_str().unwrap();
    // Both URLs were validated.
    let paths: Vec<_> = rcv.handshakes().into_iter().map(|r| r.path).collect();
    assert_eq!(paths, ["/notify", "/lifecycle"]);
    assert_eq!(sub["lifecycleNotificationUrl"], format!("{url}/lifecycle"));

    let admin = format!(
        "{}/_emulator/subscriptions/{id}/lifecycle",
        h.emu.base_url()
    );
    let triggered = h
        .client
        .post(&admin)
        .json(&json!({"event": "reauthorizationRequired"}))
        .send()
        .await
        .unwrap();
    assert_eq!(triggered.status(), StatusCode::ACCEPTED);
    let (_, item) = rcv
        .wait_for("/lifecycle", Duration::from_secs(2), |i| {
            i["lifecycleEvent"] == "reauthorizationRequired"
        })
        .await
        .expect("lifecycle notification");
    let mut keys: Vec<_> = item.as_object().unwrap().keys().cloned().collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "clientState",
            "lifecycleEvent",
            "subscriptionExpirationDateTime",
            "subscriptionId",
            "tenantId"
        ]
    );
    assert_eq!(item["subscriptionId"], id);
    assert_eq!(item["clientState"], "life");
    assert_eq!(item["tenantId"], DEFAULT_TENANT_ID);

    // A bad event is refused; subscriptionRemoved deletes the subscription.
    let bad = h
        .client
        .post(&admin)
        .json(&json!({"event": "exploded"}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    h.emu
        .emulator
        .trigger_lifecycle(id, "subscriptionRemoved")
        .expect("trigger");
    rcv.wait_for("/lifecycle", Duration::from_secs(2), |i| {
        i["lifecycleEvent"] == "subscriptionRemoved"
    })
    .await
    .expect("subscriptionRemoved");
    assert_eq!(
        h.get(&format!("/subscriptions/{id}")).await.status,
        StatusCode::NOT_FOUND
    );
}

/// The DER of the test certificate, base64 (what `encryptionCertificate` carries).
fn cert_base64() -> String {
    CERT_PEM
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect::<String>()
}

fn private_key() -> OaepPrivateDecryptingKey {
    let b64: String = KEY_PEM
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    let der = STANDARD.decode(b64).unwrap();
    OaepPrivateDecryptingKey::new(PrivateDecryptingKey::from_pkcs8(&der).unwrap()).unwrap()
}

#[tokio::test]
async fn a_rich_notification_decrypts_verifies_and_carries_a_valid_token() {
    let h = start().await;
    let (rcv, url) = receiver(Receiver::default()).await;
    let demo = user_id(&h, DEMO_USER_UPN).await;
    let mut body = json!({
        "changeType": "created",
        "notificationUrl": format!("{url}/rich"),
        "resource": format!("users/{demo}/mailFolders('inbox')/messages"),
        "expirationDateTime": in_minutes(1_500),
        "clientState": "rich",
        "includeResourceData": true,
        "encryptionCertificate": cert_base64(),
        "encryptionCertificateId": "test-cert-1",
    });
    // Rich Outlook subscriptions live at most 1,440 minutes.
    let long = subscribe(&h, body.clone()).await;
    assert_eq!(long.status, StatusCode::BAD_REQUEST);
    assert_eq!(long.error_code(), "ExtensionError");
    body["expirationDateTime"] = json!(in_minutes(60));
    // A certificate is required.
    let mut no_cert = body.clone();
    no_cert
        .as_object_mut()
        .unwrap()
        .remove("encryptionCertificate");
    assert_eq!(subscribe(&h, no_cert).await.status, StatusCode::BAD_REQUEST);
    let reply = subscribe(&h, body).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    assert_eq!(reply.json()["includeResourceData"], true);
    assert_eq!(reply.json()["encryptionCertificateId"], "test-cert-1");

    send_mail_to_demo(&h, "Rich and secret").await;
    let (collection, item) = rcv
        .wait_for("/rich", Duration::from_secs(2), |i| {
            i["changeType"] == "created"
        })
        .await
        .expect("rich notification");
    let content = &item["encryptedContent"];
    assert_eq!(content["encryptionCertificateId"], "test-cert-1");
    // openssl x509 -noout -fingerprint -sha1 (tests/fixtures/certs/README.md).
    assert_eq!(
        content["encryptionCertificateThumbprint"],
        "DB40A49A382F6A5441152FD8B53EF6AAA0789A8E"
    );

    // As a Graph client does it: unwrap the key, check the HMAC, then decrypt.
    let wrapped = STANDARD
        .decode(content["dataKey"].as_str().unwrap())
        .unwrap();
    let rsa = private_key();
    let mut key_buf = vec![0u8; rsa.min_output_size()];
    let key = rsa
        .decrypt(&OAEP_SHA1_MGF1SHA1, &wrapped, &mut key_buf, None)
        .expect("RSA-OAEP")
        .to_vec();
    assert_eq!(key.len(), 32);
    let data = STANDARD.decode(content["data"].as_str().unwrap()).unwrap();
    let signature = STANDARD
        .decode(content["dataSignature"].as_str().unwrap())
        .unwrap();
    hmac::verify(&hmac::Key::new(hmac::HMAC_SHA256, &key), &data, &signature)
        .expect("HMAC-SHA256 over the encrypted data");
    let mut iv = [0u8; 16];
    iv.copy_from_slice(&key[..16]);
    let aes = PaddedBlockDecryptingKey::cbc_pkcs7(UnboundCipherKey::new(&AES_256, &key).unwrap())
        .unwrap();
    let mut buf = data.clone();
    let plain = aes
        .decrypt(&mut buf, DecryptionContext::Iv128(FixedLength::from(iv)))
        .expect("AES-256-CBC");
    let message: Value = serde_json::from_slice(plain).expect("resource JSON");
    assert_eq!(message["subject"], "Rich and secret");
    assert_eq!(message["id"], item["resourceData"]["id"]);

    // validationTokens: signed with a key from the emulator's JWKS, for our app, by Graph's
    // change-tracking app, from the tenant's v1 issuer.
    let tokens = collection["validationTokens"].as_array().expect("tokens");
    assert_eq!(tokens.len(), 1);
    let token = tokens[0].as_str().unwrap();
    let jwks: Value = h
        .client
        .get(format!(
            "{}/{DEFAULT_TENANT_ID}/discovery/v2.0/keys",
            h.emu.base_url()
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let kid = jsonwebtoken::decode_header(token).unwrap().kid.unwrap();
    let jwk = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == kid.as_str())
        .expect("kid in JWKS");
    let decoding = jsonwebtoken::DecodingKey::from_rsa_components(
        jwk["n"].as_str().unwrap(),
        jwk["e"].as_str().unwrap(),
    )
    .unwrap();
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.set_audience(&[DEFAULT_CLIENT_ID]);
    validation.set_issuer(&[format!("https://sts.windows.net/{DEFAULT_TENANT_ID}/")]);
    let claims = jsonwebtoken::decode::<Value>(token, &decoding, &validation)
        .expect("valid token")
        .claims;
    assert_eq!(claims["appid"], CHANGE_TRACKING_APP_ID);
    assert_eq!(claims["azp"], CHANGE_TRACKING_APP_ID);
    assert_eq!(claims["tid"], DEFAULT_TENANT_ID);
    let lifetime = claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap();
    assert_eq!(lifetime, 3600);
}

#[tokio::test]
async fn plain_http_to_a_host_named_in_allow_http_hosts_passes_the_url_check() {
    let mut config = settings_for_tests();
    config.notifications.allow_http_hosts = vec!["gateway-lb".into()];
    let h = start_with(config).await;
    let demo = user_id(&h, DEMO_USER_UPN).await;
    let body = |url: &str| {
        json!({
            "changeType": "created",
            "notificationUrl": url,
            "resource": format!("users/{demo}/messages"),
            "expirationDateTime": in_minutes(60),
        })
    };
    // Allowed host: the URL is accepted, then the handshake fails (no such host here).
    let allowed = subscribe(&h, body("http://gateway-lb:8080/webhooks/graph")).await;
    assert_eq!(allowed.status, StatusCode::BAD_REQUEST);
    assert_eq!(allowed.error_code(), "ValidationError", "{}", allowed.text);
    // Any other plain-http host is refused as Graph would.
    let other = subscribe(&h, body("http://elsewhere:8080/webhooks/graph")).await;
    assert_eq!(other.status, StatusCode::BAD_REQUEST);
    assert_eq!(other.error_code(), "InvalidRequest", "{}", other.text);
}
