//! Change notifications end to end: watches through the API, the emulator's real
//! subscriptions and webhook calls, the outbox, events, lifecycle and resync
//! (issue 8; security-catalogue rows 67–79).

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, spawn_app_with, test_config};

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
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    pub async fn watch_inbox(&self, mailbox: &str) -> String {
        let (status, body) = self
            .post_json(
                "/api/v1/subscriptions",
                json!({ "resource": { "mailbox": mailbox, "folder": "inbox" }, "changeTypes": ["created", "updated", "deleted"] }),
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
            if let Some(found) = body["value"].as_array().unwrap().iter().find(|e| pred(e)) {
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
    assert_eq!(listed["value"][0]["id"], watch.as_str(), "{listed}");
    assert_eq!(listed["value"][0]["status"], "active", "{listed}");

    let subject = format!("Order {}", uuid::Uuid::new_v4());
    let sent = Instant::now();
    app.send_mail_to(SHARED, &subject).await;
    let event = app
        .wait_for_event(&watch, Duration::from_secs(2), |e| {
            e["changeType"] == "created" && e["data"]["subject"] == subject.as_str()
        })
        .await;
    assert!(sent.elapsed() < Duration::from_secs(2));
    assert!(event["resourceId"].as_str().is_some_and(|id| !id.is_empty()), "{event}");
    assert_eq!(event["subscriptionId"], watch.as_str());
}
