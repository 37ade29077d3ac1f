//! The emulator as a whole: seeds, size, latency, embedding.

mod common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use common::*;
use graph_emulator::{DEMO_USER_UPN, Emulator, EmulatorConfig};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// Every user and group of a tenant, as the emulator serves them (all properties that
/// `$select` can name for users are enough to detect any difference).
async fn snapshot(h: &Harness) -> (String, String) {
    let select = "id,displayName,givenName,surname,mail,userPrincipalName,jobTitle,department,officeLocation,businessPhones,mobilePhone,preferredLanguage,accountEnabled,userType,createdDateTime,employeeId,city";
    let users = h
        .get(&format!(
            "/users?$top=999&$select={select}&$expand=manager($select=id)"
        ))
        .await;
    let groups = h.get("/groups?$top=999").await;
    assert_eq!(users.status, StatusCode::OK);
    (users.text, groups.text)
}

#[tokio::test]
async fn the_same_seed_gives_byte_identical_data_and_another_seed_does_not() {
    let a = start().await;
    let b = start().await;
    let c = start_with(EmulatorConfig {
        seed: 7,
        ..EmulatorConfig::default()
    })
    .await;
    let (ua, ga) = snapshot(&a).await;
    let (ub, gb) = snapshot(&b).await;
    let (uc, _) = snapshot(&c).await;
    assert_eq!(ua, ub);
    assert_eq!(ga, gb);
    assert_ne!(ua, uc);
    // The demo user exists for every seed.
    assert_eq!(
        c.get(&format!("/users/{DEMO_USER_UPN}")).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn ten_thousand_users_generate_quickly_and_page_correctly() {
    let started = Instant::now();
    let emulator = Emulator::new(EmulatorConfig {
        users: 10_000,
        ..EmulatorConfig::default()
    });
    // Includes the RSA key generation; tenant generation alone is unit-tested under 1 s.
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    drop(emulator);

    let h = start_with(EmulatorConfig {
        users: 10_000,
        ..EmulatorConfig::default()
    })
    .await;
    let (users, pages) = h
        .get_all(
            "/users?$top=999&$select=id&$expand=manager($select=id)",
            &[],
        )
        .await;
    assert_eq!(users.len(), 10_000);
    assert_eq!(pages, 11);
    let ids: HashSet<&str> = users.iter().filter_map(|u| u["id"].as_str()).collect();
    assert_eq!(ids.len(), 10_000);
    assert_eq!(
        users.iter().filter(|u| u.get("manager").is_none()).count(),
        2,
        "one CEO, and the shared mailbox"
    );
    assert_eq!(h.get_eventual("/users/$count").await.text, "10000");
    let demo = h
        .get(&format!("/users/{DEMO_USER_UPN}/directReports"))
        .await
        .json();
    assert!(!demo["value"].as_array().expect("value").is_empty());
}

#[tokio::test]
async fn latency_is_injected_once_per_http_request_and_once_per_batch() {
    let latency = Duration::from_millis(300);
    let h = start_with(EmulatorConfig {
        latency,
        ..EmulatorConfig::default()
    })
    .await;
    let started = Instant::now();
    assert_eq!(h.get("/users?$top=1").await.status, StatusCode::OK);
    assert!(started.elapsed() >= latency);

    let requests: Vec<Value> = (1..=10)
        .map(|i| json!({"id": i.to_string(), "method": "GET", "url": "/users?$top=1"}))
        .collect();
    let started = Instant::now();
    assert_eq!(
        h.batch(&json!({ "requests": requests })).await.status,
        StatusCode::OK
    );
    let elapsed = started.elapsed();
    assert!(elapsed >= latency, "{elapsed:?}");
    assert!(
        elapsed < latency * 3,
        "items are not delayed one by one: {elapsed:?}"
    );

    // The admin surface is not slowed down.
    let started = Instant::now();
    h.client
        .get(format!("{}/_emulator/stats", h.emu.base_url()))
        .send()
        .await
        .expect("stats");
    assert!(started.elapsed() < latency);
}

#[tokio::test]
async fn the_router_can_be_embedded_in_another_server() {
    let emulator = Emulator::new(EmulatorConfig::default());
    let app = axum::Router::new().merge(emulator.router());
    let listener = tokio::net::TcpListener::bind(loopback())
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let base = format!("http://{addr}");
    let client = reqwest::Client::new();
    let token = fetch_token(
        &client,
        &base,
        graph_emulator::DEFAULT_CLIENT_ID,
        graph_emulator::DEFAULT_CLIENT_SECRET,
    )
    .await;
    let reply = client
        .get(format!("{base}/v1.0/users/{DEMO_USER_UPN}"))
        .bearer_auth(token)
        .send()
        .await
        .expect("user");
    assert_eq!(reply.status(), StatusCode::OK);
    assert_eq!(emulator.stats().graph_requests, 1);
    assert_eq!(emulator.tenant_id(), graph_emulator::DEFAULT_TENANT_ID);
    server.abort();
}

#[tokio::test]
async fn dropping_a_running_emulator_stops_its_server() {
    let emu = Emulator::spawn(EmulatorConfig::default(), loopback())
        .await
        .expect("spawn");
    let base = emu.base_url();
    assert!(base.starts_with("http://127.0.0.1:"));
    assert_eq!(emu.graph_url(), format!("{base}/v1.0"));
    let client = reqwest::Client::new();
    assert!(
        client
            .get(format!("{base}/_emulator/stats"))
            .send()
            .await
            .is_ok()
    );
    drop(emu);
    tokio::time::sleep(Duration::from_millis(100)).await;
    // Neither a new connection nor the pooled keep-alive one reaches it any more.
    let fresh = reqwest::Client::new();
    assert!(
        fresh
            .get(format!("{base}/_emulator/stats"))
            .send()
            .await
            .is_err()
    );
    assert!(
        client
            .get(format!("{base}/_emulator/stats"))
            .send()
            .await
            .is_err()
    );
}
