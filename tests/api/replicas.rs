//! Two gateway replicas sharing PostgreSQL (and Redis): work is done once across them
//! (issue 8). PostgreSQL comes from `TEST_DATABASE_URL`, Redis from `TEST_REDIS_URL`;
//! without them these tests are skipped with a note, except under `CI=true`, where that is
//! a failure.

use std::str::FromStr;
use std::time::{Duration, Instant};

use graph_emulator::{DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, RunningEmulator};
use m365_gateway::config::{CallerMode, Secret};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::{AssertSqlSafe, Connection};

use crate::helpers::{TestApp, loopback, real_mode_config, spawn_app_with, test_token};

/// `name`'s URL from the environment; None (with a note) when unset, a failure under CI.
pub fn required_env(name: &str) -> Option<String> {
    match std::env::var(name) {
        Ok(url) if !url.trim().is_empty() => Some(url),
        _ => {
            assert!(
                !std::env::var("CI").is_ok_and(|v| v == "true"),
                "{name} is unset but CI=true: the replica tests must run in CI"
            );
            eprintln!("note: {name} is unset; skipping this replica test");
            None
        }
    }
}

/// A fresh PostgreSQL schema on `TEST_DATABASE_URL` (creating the database if needed) and
/// the store URL that uses it.
pub async fn postgres_schema(base: &str) -> String {
    let schema = format!("m365gw_replicas_{}", uuid::Uuid::new_v4().simple());
    let options = sqlx::postgres::PgConnectOptions::from_str(base).expect("TEST_DATABASE_URL");
    let mut conn = match sqlx::PgConnection::connect_with(&options).await {
        Ok(c) => c,
        Err(_) => {
            let name = options.get_database().unwrap_or("postgres").to_owned();
            let mut admin = sqlx::PgConnection::connect_with(&options.clone().database("postgres"))
                .await
                .expect("PostgreSQL answers");
            let _ = sqlx::raw_sql(AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
                .execute(&mut admin)
                .await;
            sqlx::PgConnection::connect_with(&options).await.unwrap()
        }
    };
    sqlx::raw_sql(AssertSqlSafe(format!("CREATE SCHEMA \"{schema}\"")))
        .execute(&mut conn)
        .await
        .unwrap();
    let sep = if base.contains('?') { '&' } else { '?' };
    format!("{base}{sep}options[search_path]={schema}")
}

/// A replica on the shared emulator, store and Redis. Graph posts notifications to
/// `public_url` (the load balancer in production; replica A here).
pub async fn replica(
    emulator: &RunningEmulator,
    store_url: &str,
    redis: Option<(&str, &str)>,
    public_url: Option<&str>,
) -> TestApp {
    let mut config = real_mode_config(
        emulator,
        DEFAULT_CLIENT_ID,
        ("ops", CallerMode::App, &["*"], &["*"]),
    );
    config.graph.client_secret = Some(Secret::new(DEFAULT_CLIENT_SECRET));
    config.callers.get_mut("ops").unwrap().send_as = vec!["*".into()];
    config.store.url = store_url.to_owned();
    config.notifications.renewal_interval = Duration::from_millis(200);
    config.notifications.poll_interval = Duration::from_millis(200);
    if let Some((url, prefix)) = redis {
        config.redis.url = Some(Secret::new(url));
        config.redis.key_prefix = prefix.to_owned();
    }
    config.public_url = public_url.map(|u| u.parse().unwrap());
    let mut app = spawn_app_with(config).await;
    app.token = test_token("ops", None);
    app
}

fn patches(emulator: &RunningEmulator) -> u64 {
    let stats = serde_json::to_value(emulator.emulator.stats()).unwrap();
    stats["routes"]["PATCH /subscriptions/{id}"]
        .as_u64()
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_renew_each_due_subscription_exactly_once() {
    let Some(base) = required_env("TEST_DATABASE_URL") else {
        return;
    };
    let store = postgres_schema(&base).await;
    let emulator = graph_emulator::Emulator::spawn(Default::default(), loopback())
        .await
        .unwrap();
    let a = replica(&emulator, &store, None, None).await;
    let b = replica(&emulator, &store, None, Some(&a.base)).await;

    let mailboxes: Vec<String> = emulator
        .emulator
        .subscriptions()
        .iter()
        .map(|s| s["id"].to_string())
        .collect();
    assert!(mailboxes.is_empty());
    let users: Value = a.get("/api/v1/users?limit=6").await.1;
    let mut watches = Vec::new();
    for u in users["data"].as_array().unwrap().iter().take(5) {
        let (status, body) = a
            .post_json(
                "/api/v1/subscriptions",
                json!({ "resource": { "mailbox": u["id"] } }),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        watches.push(body["id"].as_str().unwrap().to_owned());
    }
    // The new watches' baselines run (no renewal: they have their whole life left).
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(patches(&emulator), 0);
    // Every watch comes due at once; both replicas' renewal jobs are looking.
    let store_a = a.store.as_ref().unwrap();
    for w in &watches {
        store_a.request_watch_work(w, false, true).await.unwrap();
    }
    let started = Instant::now();
    while patches(&emulator) < watches.len() as u64 {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "renewed {} of {}",
            patches(&emulator),
            watches.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Several more rounds of both jobs: nothing is renewed twice.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(patches(&emulator), watches.len() as u64);
    drop(b);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_notification_received_by_one_replica_reaches_a_graphql_subscriber_on_the_other() {
    let (Some(base), Some(redis)) = (
        required_env("TEST_DATABASE_URL"),
        required_env("TEST_REDIS_URL"),
    ) else {
        return;
    };
    let store = postgres_schema(&base).await;
    let prefix = format!("m365gw-replicas-{}", uuid::Uuid::new_v4());
    let emulator = graph_emulator::Emulator::spawn(Default::default(), loopback())
        .await
        .unwrap();
    // Graph posts to A; the subscriber is on B.
    let a = replica(&emulator, &store, Some((&redis, &prefix)), None).await;
    let b = replica(&emulator, &store, Some((&redis, &prefix)), Some(&a.base)).await;
    let (status, body) = a
        .post_json(
            "/api/v1/subscriptions",
            json!({ "resource": { "mailbox": graph_emulator::SHARED_MAILBOX_UPN } }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    let mut subscriber = crate::live::Client::ready(&b, &b.token).await;
    subscriber
        .subscribe(
            "s",
            &format!(
                "subscription {{ mailboxChanges(mailbox: \"{}\") {{ changeType message {{ subject }} }} }}",
                graph_emulator::SHARED_MAILBOX_UPN
            ),
        )
        .await;
    crate::live::listening(&b, 1).await;

    // Mail from a user of the directory to the shared mailbox, sent through replica A.
    let subject = format!("Cross-replica {}", uuid::Uuid::new_v4());
    let (status, sent) = a
        .post_json(
            &format!("/api/v1/users/{}/send-mail", graph_emulator::DEMO_USER_UPN),
            json!({ "message": { "to": [graph_emulator::SHARED_MAILBOX_UPN], "subject": subject, "body": "hello" } }),
        )
        .await;
    assert!(status.is_success(), "{status}: {sent}");
    let started = Instant::now();
    let payload = subscriber.payload("s").await;
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "too late: {:?}",
        started.elapsed()
    );
    let change = &payload["data"]["mailboxChanges"];
    assert_eq!(change["changeType"], "created", "{payload}");
    assert_eq!(change["message"]["subject"], subject.as_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_draining_one_outbox_record_each_notification_once() {
    let Some(base) = required_env("TEST_DATABASE_URL") else {
        return;
    };
    let store = postgres_schema(&base).await;
    let emulator = graph_emulator::Emulator::spawn(Default::default(), loopback())
        .await
        .unwrap();
    let a = replica(&emulator, &store, None, None).await;
    let b = replica(&emulator, &store, None, Some(&a.base)).await;
    let (status, body) = a
        .post_json(
            "/api/v1/subscriptions",
            json!({ "resource": { "mailbox": graph_emulator::SHARED_MAILBOX_UPN } }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let watch = body["id"].as_str().unwrap().to_owned();
    let sub = emulator.emulator.subscriptions().pop().unwrap();
    let user = sub["resource"]
        .as_str()
        .unwrap()
        .split('/')
        .nth(1)
        .unwrap()
        .to_owned();
    // Half the notifications reach each replica (a load balancer's spread); both workers
    // drain the one outbox in PostgreSQL.
    let http = reqwest::Client::new();
    for n in 0..200 {
        let target = if n % 2 == 0 { &a.base } else { &b.base };
        let item = json!({ "value": [{
            "subscriptionId": sub["id"], "subscriptionExpirationDateTime": sub["expirationDateTime"],
            "clientState": sub["clientState"], "changeType": "created",
            "resource": format!("Users/{user}/Messages/r-{n}"),
            "resourceData": { "@odata.etag": "W/\"1\"", "id": format!("r-{n}") }
        }]});
        let status = http
            .post(format!("{target}/webhooks/graph"))
            .json(&item)
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, StatusCode::ACCEPTED);
    }
    let started = Instant::now();
    loop {
        let counts = a.store.as_ref().unwrap().outbox_counts().await.unwrap();
        if counts == vec![("done".to_owned(), 200)] {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "{counts:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let events = a
        .store
        .as_ref()
        .unwrap()
        .events_after(&watch, 0, 1000)
        .await
        .unwrap();
    let mut ids: Vec<String> = events
        .iter()
        .filter_map(|e| e.resource_id.clone())
        .collect();
    assert_eq!(ids.len(), 200);
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 200, "each notification recorded once");
}
