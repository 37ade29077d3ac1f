//! What operators watch: the `/metrics` catalogue (docs/architecture.md "Operations"),
//! `/healthz` and `/readyz`.
//!
//! The Prometheus recorder is process-wide and the tests of this binary run in parallel, so
//! each test looks at series only it produces (its own operation names, callers, routes) or
//! at counts that moved.

use std::time::Duration;

use base64::Engine;
use graph_emulator::{DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, DEMO_USER_UPN};
use m365_gateway::App;
use m365_gateway::config::{CallerConfig, CallerMode, Secret};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, loopback, real_mode_config, spawn_app, test_token};
use crate::idp::{Jwks, SigningKey, TestIdp};

async fn scrape(app: &TestApp) -> String {
    app.http
        .get(format!("{}/metrics", app.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// The value of the series `name{labels}` (labels in the order the exporter prints them,
/// which is the order they were given), or 0 when absent.
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .map_or(0.0, |v| v.trim().parse().unwrap())
}

async fn readyz(base: &str) -> (StatusCode, Value) {
    let response = reqwest::get(format!("{base}/readyz")).await.unwrap();
    let status = response.status();
    (status, response.json().await.unwrap())
}

#[tokio::test]
async fn http_requests_are_counted_and_timed_by_route_template_and_status() {
    let app = spawn_app().await;
    let ok = r#"gateway_http_requests_total{method="GET",route="/api/v1/users/{id}",status="200"}"#;
    let missing = r#"gateway_http_requests_total{method="GET",route="unmatched",status="404"}"#;
    let before = scrape(&app).await;
    let (status, _) = app.get(&format!("/api/v1/users/{DEMO_USER_UPN}")).await;
    assert_eq!(status, StatusCode::OK);
    let status = app
        .http
        .get(format!("{}/no/such/route/for-metrics", app.base))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, StatusCode::NOT_FOUND);
    let after = scrape(&app).await;
    assert!(sample(&after, ok) >= sample(&before, ok) + 1.0, "{after}");
    assert!(
        sample(&after, missing) >= sample(&before, missing) + 1.0,
        "{after}"
    );
    let bucket = r#"gateway_http_request_duration_seconds_bucket{method="GET",route="/api/v1/users/{id}",status="200",le="+Inf"}"#;
    assert!(
        sample(&after, bucket) >= 1.0,
        "no latency histogram:\n{after}"
    );
    // Labels are templates: no user and no raw path ever becomes a series.
    assert!(!after.contains(DEMO_USER_UPN), "{after}");
    assert!(!after.contains("for-metrics"), "{after}");
}

#[tokio::test]
async fn graphql_operations_are_counted_by_name_and_outcome() {
    let app = spawn_app().await;
    let series = |operation: &str, outcome: &str| {
        format!(
            r#"gateway_graphql_operations_total{{operation="{operation}",outcome="{outcome}"}}"#
        )
    };
    let before = scrape(&app).await;
    app.graphql_data("query MetricsProbeOk { me { id } }").await;
    let body = app
        .graphql(
            r#"query MetricsProbeFails { user(id: "nobody-at-all@kestrelridge.example") { id } }"#,
        )
        .await;
    assert!(body.get("errors").is_some(), "{body}");
    let body = app
        .graphql("query MetricsProbeInvalid { noSuchField }")
        .await;
    assert!(body.get("errors").is_some(), "{body}");
    let (status, _) = app
        .graphql_as(
            Some("not-a-token"),
            "query MetricsProbeUnauthenticated { me { id } }",
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let after = scrape(&app).await;

    assert_eq!(
        sample(&after, &series("MetricsProbeOk", "ok")),
        1.0,
        "{after}"
    );
    assert_eq!(
        sample(&after, &series("MetricsProbeFails", "error")),
        1.0,
        "{after}"
    );
    assert_eq!(
        sample(&after, &series("MetricsProbeInvalid", "rejected")),
        1.0,
        "{after}"
    );
    // Refused before the document is read: counted, but not under the name it claims.
    let unparsed = series("(unparsed)", "rejected");
    assert!(
        sample(&after, &unparsed) >= sample(&before, &unparsed) + 1.0,
        "{after}"
    );
    assert!(!after.contains("MetricsProbeUnauthenticated"), "{after}");
    assert!(
        after.contains(
            r#"gateway_graphql_operation_duration_seconds_bucket{operation="MetricsProbeOk",outcome="ok",le="+Inf"} 1"#
        ),
        "{after}"
    );
}

#[tokio::test]
async fn rate_limited_requests_are_counted_by_caller_and_kind() {
    let app = spawn_app().await;
    m365_gateway::telemetry::record_rate_limited("metrics-probe-caller", "requests");
    m365_gateway::telemetry::record_rate_limited("metrics-probe-caller", "requests");
    let text = scrape(&app).await;
    assert_eq!(
        sample(
            &text,
            r#"gateway_rate_limited_total{caller="metrics-probe-caller",kind="requests"}"#
        ),
        2.0,
        "{text}"
    );
}

#[tokio::test]
async fn graph_calls_are_timed_by_route() {
    let app = spawn_app().await;
    app.graphql_data(&format!(
        "{{ user(id: \"{DEMO_USER_UPN}\") {{ id officeLocation }} }}"
    ))
    .await;
    let text = scrape(&app).await;
    assert!(
        text.contains(r#"graph_request_duration_seconds_bucket{route="/users/{id}",le="+Inf"}"#),
        "{text}"
    );
}

#[tokio::test]
async fn healthz_is_200_and_readyz_names_every_check_when_ready() {
    // A JWKS issuer, a store and a Graph token: every check there is.
    let key = SigningKey::generate("k1");
    let idp = TestIdp::start(&[&key]).await;
    let mut config = idp.config(&["users.read"], &["*"]);
    let db = std::env::temp_dir().join(format!("m365gw-ready-{}.db", uuid::Uuid::new_v4()));
    config.store.url = format!("sqlite://{}", db.display());
    config.store.encryption.keys.insert(
        "k1".into(),
        base64::engine::general_purpose::STANDARD.encode([9u8; 32]),
    );
    config.callers.insert(
        "connected-app".into(),
        CallerConfig {
            issuer: "idp".into(),
            client_id: "connected-app".into(),
            mode: CallerMode::Connected,
            user_claim: None,
            operations: vec!["users.read".into()],
            resources: vec!["*".into()],
            send_as: Vec::new(),
            sites: Vec::new(),
            scopes: None,
        },
    );
    let app = crate::helpers::spawn_app_with(config).await;
    let health = reqwest::get(format!("{}/healthz", app.base)).await.unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    let (status, body) = readyz(&app.base).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "ready");
    assert_eq!(
        body["checks"],
        json!({ "graph_token": true, "store": true, "jwks": { "idp": true } })
    );
    let _ = std::fs::remove_file(db);
}

#[tokio::test]
async fn readyz_is_503_when_no_graph_token_is_cached_and_the_token_endpoint_fails() {
    let emu = graph_emulator::Emulator::spawn(Default::default(), loopback())
        .await
        .unwrap();
    let mut config = real_mode_config(
        &emu,
        DEFAULT_CLIENT_ID,
        ("reader", CallerMode::App, &["users.read"], &["*"]),
    );
    config.graph.client_secret = Some(Secret::new(DEFAULT_CLIENT_SECRET));
    let http = reqwest::Client::new();
    let added = http
        .post(format!("{}/_emulator/faults", emu.base_url()))
        .json(&json!({
            "route": "POST /{tenant}/oauth2/v2.0/token",
            "fault": { "kind": "unavailable" }
        }))
        .send()
        .await
        .unwrap();
    assert!(added.status().is_success());
    let app = crate::helpers::spawn_app_with(config).await;
    let (status, body) = readyz(&app.base).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["status"], "not ready");
    assert_eq!(body["checks"]["graph_token"], false, "{body}");
    // Entra is back: ready again, with no restart.
    http.delete(format!("{}/_emulator/faults", emu.base_url()))
        .send()
        .await
        .unwrap();
    let (status, body) = readyz(&app.base).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // A token is cached now: a later Entra outage does not make the gateway unready.
    http.post(format!("{}/_emulator/faults", emu.base_url()))
        .json(&json!({
            "route": "POST /{tenant}/oauth2/v2.0/token",
            "fault": { "kind": "unavailable" }
        }))
        .send()
        .await
        .unwrap();
    let (status, body) = readyz(&app.base).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let token = test_token("reader", None);
    let (status, _) = app
        .get_as(Some(&token), &format!("/api/v1/users/{DEMO_USER_UPN}"))
        .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn readyz_is_503_while_a_jwks_issuer_has_no_keys() {
    let key = SigningKey::generate("k1");
    let idp = TestIdp::start(&[&key]).await;
    idp.set(Jwks::Status500);
    let app = crate::helpers::spawn_app_with(idp.config(&["users.read"], &["*"])).await;
    let (status, body) = readyz(&app.base).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["checks"]["jwks"]["idp"], false, "{body}");
    assert_eq!(body["checks"]["graph_token"], true, "{body}");
}

#[tokio::test]
async fn readyz_is_503_when_the_store_does_not_answer() {
    let emu = graph_emulator::Emulator::spawn(Default::default(), loopback())
        .await
        .unwrap();
    let mut config = real_mode_config(
        &emu,
        DEFAULT_CLIENT_ID,
        ("crm", CallerMode::Connected, &["users.read"], &["*"]),
    );
    config.graph.client_secret = Some(Secret::new(DEFAULT_CLIENT_SECRET));
    let db = std::env::temp_dir().join(format!("m365gw-unready-{}.db", uuid::Uuid::new_v4()));
    config.store.url = format!("sqlite://{}", db.display());
    config.store.encryption.keys.insert(
        "k1".into(),
        base64::engine::general_purpose::STANDARD.encode([3u8; 32]),
    );
    let app = App::build(config).await.unwrap();
    let base = format!("http://{}", app.local_addr());
    let store = app
        .store()
        .expect("a connected caller opens the store")
        .clone();
    tokio::spawn(app.run_until_stopped(std::future::pending()));
    let (status, body) = readyz(&base).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // The pool gone is what the gateway sees when the database is: every query fails.
    store.close().await;
    let (status, body) = readyz(&base).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["checks"]["store"], false, "{body}");
    assert_eq!(body["checks"]["graph_token"], true, "{body}");
    let _ = std::fs::remove_file(db);
}

#[tokio::test]
async fn readyz_turns_503_shutting_down_as_soon_as_shutdown_begins() {
    let app = App::build(crate::helpers::test_config()).await.unwrap();
    let base = format!("http://{}", app.local_addr());
    let token = app.shutdown_token();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let served = tokio::spawn(app.run_until_stopped(async {
        let _ = rx.await;
    }));
    // A connection opened before the shutdown, kept alive through it.
    let http = reqwest::Client::new();
    let ready = http.get(format!("{base}/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), StatusCode::OK);
    tx.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(2), token.cancelled())
        .await
        .expect("the shutdown future cancels the token");
    match http.get(format!("{base}/readyz")).send().await {
        Ok(response) => {
            assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
            let body: Value = response.json().await.unwrap();
            assert_eq!(body["status"], "shutting down");
        }
        // Or the listener is closed already: just as good for a load balancer.
        Err(e) => assert!(e.is_connect() || e.is_request(), "{e}"),
    }
    tokio::time::timeout(Duration::from_secs(5), served)
        .await
        .expect("an idle gateway stops at once")
        .unwrap()
        .unwrap();
}
