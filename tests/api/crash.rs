//! Crash safety of the notification path (issue 8; catalogue rows 75 and 90): the real
//! gateway binary is killed with SIGKILL while Graph delivers notifications, and restarted.
//! A notification Graph got a 2xx for is never lost, and each has its effect once.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{loopback, test_token};
use crate::process::GatewayProcess;

const CALLER: &str = r#"
[callers.crash]
issuer = "tests"
client_id = "crash"
mode = "app"
operations = ["*"]
resources = ["*"]
"#;

const EXTRA: &str = r#"
[rate_limit]
enabled = false
[notifications]
poll_interval = "200ms"
renewal_interval = "1s"
lease = "3s"
"#;

const NOTIFICATIONS: usize = 1000;
const PER_POST: usize = 10;

/// Posts one collection until the gateway answers 2xx, as Graph retries: a refused
/// connection (the process is down), a reset (killed mid-request) or a 5xx all mean
/// "not delivered".
async fn deliver(http: &reqwest::Client, url: &str, body: &Value) {
    let started = Instant::now();
    loop {
        match http.post(url).json(body).send().await {
            Ok(r) if r.status().is_success() => return,
            Ok(r) => assert!(
                r.status().is_server_error(),
                "a refusal Graph would not retry: {}",
                r.status()
            ),
            Err(_) => {}
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "never acknowledged"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[derive(Clone, Copy)]
enum Stop {
    /// SIGKILL: nothing runs after it.
    Kill,
    /// SIGTERM: graceful shutdown (catalogue row 90); requests in flight finish.
    Terminate,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_notifications_survive_two_sigkills_and_each_has_its_effect_once() {
    survive(Stop::Kill).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notifications_in_flight_at_a_sigterm_are_committed_or_refused_never_lost() {
    survive(Stop::Terminate).await;
}

async fn survive(stop: Stop) {
    let emulator = graph_emulator::Emulator::spawn(Default::default(), loopback())
        .await
        .unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = std::env::temp_dir().join(format!("m365gw-crash-{}-{port}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut gateway = GatewayProcess::start_at(&emulator, CALLER, EXTRA, port, dir.clone()).await;
    let http = reqwest::Client::new();
    let token = test_token("crash", None);

    let created: Value = http
        .post(format!("{}/api/v1/subscriptions", gateway.base))
        .bearer_auth(&token)
        .json(&json!({ "resource": { "mailbox": graph_emulator::SHARED_MAILBOX_UPN } }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let watch = created["id"].as_str().expect("watch created").to_owned();
    let sub = emulator
        .emulator
        .subscriptions()
        .pop()
        .expect("a Graph subscription");
    let user = sub["resource"]
        .as_str()
        .unwrap()
        .split('/')
        .nth(1)
        .unwrap()
        .to_owned();

    let posts: Vec<Value> = (0..NOTIFICATIONS / PER_POST)
        .map(|p| {
            let items: Vec<Value> = (0..PER_POST)
                .map(|i| {
                    let n = p * PER_POST + i;
                    json!({
                        "subscriptionId": sub["id"],
                        "subscriptionExpirationDateTime": sub["expirationDateTime"],
                        "clientState": sub["clientState"],
                        "changeType": "created",
                        "resource": format!("Users/{user}/Messages/crash-{n}"),
                        "resourceData": { "@odata.etag": "W/\"1\"", "id": format!("crash-{n}") }
                    })
                })
                .collect();
            json!({ "value": items })
        })
        .collect();

    // Two kills at points drawn at random, mid-stream; deliveries go on throughout.
    let first_kill = fastrand::usize(10..45);
    let second_kill = fastrand::usize(55..90);
    let url = format!("{}/webhooks/graph", gateway.base);
    let sender = {
        let http = http.clone();
        let url = url.clone();
        let (tx, rx) = tokio::sync::watch::channel(0usize);
        let task = tokio::spawn(async move {
            for (i, body) in posts.iter().enumerate() {
                deliver(&http, &url, body).await;
                let _ = tx.send(i + 1);
            }
        });
        (task, rx)
    };
    let (task, mut progress) = sender;
    for kill_at in [first_kill, second_kill] {
        progress.wait_for(|sent| *sent >= kill_at).await.unwrap();
        // Let a request be in flight (or not): the kill lands wherever it lands.
        tokio::time::sleep(Duration::from_millis(fastrand::u64(0..30))).await;
        let dir = match stop {
            Stop::Kill => gateway.kill_hard(),
            Stop::Terminate => {
                gateway.terminate();
                gateway.stopped().await
            }
        };
        gateway = GatewayProcess::start_at(&emulator, CALLER, EXTRA, port, dir).await;
    }
    task.await.unwrap();

    // Every acknowledged notification becomes exactly one event.
    let started = Instant::now();
    let events = loop {
        let mut all = Vec::new();
        let mut after = 0;
        loop {
            let page: Value = http
                .get(format!(
                    "{}/api/v1/subscriptions/{watch}/events?after={after}&limit=500",
                    gateway.base
                ))
                .bearer_auth(&token)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let value = page["data"].as_array().unwrap().clone();
            if value.is_empty() {
                break;
            }
            after = page["next_after"].as_i64().unwrap();
            all.extend(value);
        }
        if all.len() >= NOTIFICATIONS || started.elapsed() > Duration::from_secs(90) {
            break all;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let mut per_item: HashMap<String, usize> = HashMap::new();
    for e in &events {
        *per_item
            .entry(e["resource_id"].as_str().unwrap().to_owned())
            .or_default() += 1;
    }
    let missing: Vec<usize> = (0..NOTIFICATIONS)
        .filter(|n| !per_item.contains_key(&format!("crash-{n}")))
        .collect();
    assert!(
        missing.is_empty(),
        "lost: {missing:?}\n{}",
        gateway.stderr()
    );
    let doubled: Vec<(&String, &usize)> = per_item.iter().filter(|(_, c)| **c > 1).collect();
    assert!(doubled.is_empty(), "more than once: {doubled:?}");
    assert_eq!(events.len(), NOTIFICATIONS);

    let health = http
        .get(format!("{}/readyz", gateway.base))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    drop(gateway);
    let _ = std::fs::remove_dir_all(&dir);
}
