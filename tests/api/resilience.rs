//! A good Graph citizen under faults injected by the emulator: retries within a budget,
//! `Retry-After` in every format, deadlines, the circuit breaker, per-item `$batch`
//! retries, unusable answers and hostile nextLinks (security catalogue rows 53–66, 80–95).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::{get, post};
use futures::StreamExt;
use graph_emulator::DEMO_USER_UPN;
use m365_gateway::Config;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, loopback, spawn_app_with, test_config};

/// The embedded default with fast backoff, so tests do not sleep for long.
fn config() -> Config {
    let mut config = test_config();
    config.graph.retry.base_backoff = Duration::from_millis(20);
    config.graph.retry.breaker_open_for = Duration::from_secs(1);
    config
}

async fn fault(app: &TestApp, rule: Value) {
    let response = app
        .http
        .post(format!("{}/_emulator/faults", app.emulator))
        .json(&rule)
        .send()
        .await
        .unwrap();
    assert!(
        response.status().is_success(),
        "{}",
        response.text().await.unwrap()
    );
}

async fn clear_faults(app: &TestApp) {
    let response = app
        .http
        .delete(format!("{}/_emulator/faults", app.emulator))
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success());
}

fn code(body: &Value) -> &str {
    body["errors"][0]["extensions"]["code"]
        .as_str()
        .unwrap_or("<none>")
}

async fn user_ids(app: &TestApp) -> Vec<String> {
    let data = app
        .graphql_data("{ users(first: 100) { nodes { id } } }")
        .await;
    data["users"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["id"].as_str().unwrap().to_owned())
        .collect()
}

/// 200 queries whose answers never come from each other's cache entries.
fn mixed_queries(ids: &[String]) -> Vec<String> {
    (0..200)
        .map(|i| {
            let id = &ids[i % ids.len()];
            match (i / ids.len()) % 4 {
                0 => format!("{{ user(id: \"{id}\") {{ displayName department }} }}"),
                1 => format!("{{ user(id: \"{id}\") {{ manager {{ displayName }} }} }}"),
                2 => format!("{{ user(id: \"{id}\") {{ directReports(first: 3) {{ nodes {{ displayName }} }} }} }}"),
                _ => format!("{{ user(id: \"{id}\") {{ memberOf(first: 3) {{ nodes {{ displayName }} }} }} }}"),
            }
        })
        .collect()
}

async fn run_all(app: &TestApp, queries: &[String]) -> Vec<Value> {
    futures::stream::iter(queries.iter().map(|q| app.graphql(q)))
        .buffered(8)
        .collect()
        .await
}

#[tokio::test]
async fn under_ten_percent_throttling_and_five_percent_outages_every_answer_is_complete_and_load_stays_under_1_3x()
 {
    let calm = spawn_app_with(config()).await;
    let ids = user_ids(&calm).await;
    let queries = mixed_queries(&ids);
    calm.reset_stats().await;
    let expected = run_all(&calm, &queries).await;
    let calm_requests = calm.stats().await["graph_requests"].as_u64().unwrap();

    let stormy = spawn_app_with(config()).await;
    stormy
        .graphql_data("{ users(first: 100) { nodes { id } } }")
        .await; // same warm-up
    for retry_after in [json!(0.05), json!(0), json!({ "http_date_in": 0 })] {
        fault(
            &stormy,
            json!({ "rate": 0.034, "fault": { "kind": "throttle", "retry_after": retry_after } }),
        )
        .await;
    }
    fault(
        &stormy,
        json!({ "rate": 0.05, "fault": { "kind": "unavailable" } }),
    )
    .await;
    stormy.reset_stats().await;
    let answers = run_all(&stormy, &queries).await;
    let stats = stormy.stats().await;
    assert!(stats["faults_injected"].as_u64().unwrap() > 10, "{stats}");
    for (answer, expected) in answers.iter().zip(&expected) {
        assert_eq!(answer, expected, "an answer differs under faults");
    }
    let stormy_requests = stats["graph_requests"].as_u64().unwrap();
    eprintln!(
        "chaos: {stormy_requests} Graph requests with {} faults injected, {calm_requests} without",
        stats["faults_injected"]
    );
    assert!(
        (stormy_requests as f64) <= 1.3 * calm_requests as f64,
        "{stormy_requests} Graph requests under faults vs {calm_requests} without"
    );
}

#[tokio::test]
async fn a_mailbox_throttled_for_two_minutes_fails_fast_while_others_answer_normally() {
    let app = spawn_app_with(config()).await;
    fault(&app, json!({ "route": "/v1.0/users/*", "mailbox": DEMO_USER_UPN, "fault": { "kind": "throttle", "retry_after": 120 } })).await;
    let started = Instant::now();
    let body = app
        .graphql(&format!(
            "{{ user(id: \"{DEMO_USER_UPN}\") {{ displayName }} }}"
        ))
        .await;
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(code(&body), "UPSTREAM_THROTTLED", "{body}");
    assert_eq!(body["errors"][0]["extensions"]["retryAfter"], 120);
    let response = app
        .http
        .get(format!("{}/api/v1/users/{DEMO_USER_UPN}", app.base))
        .bearer_auth(&app.token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(response.headers()["retry-after"], "120");
    // Someone else's data comes back at once.
    let started = Instant::now();
    let other = app
        .graphql_data("{ users(first: 3) { nodes { displayName } } }")
        .await;
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_eq!(other["users"]["nodes"].as_array().unwrap().len(), 3);
}

#[tokio::test]
async fn a_hanging_route_times_out_within_the_deadline_plus_ten_percent() {
    let app = spawn_app_with(config()).await;
    app.graphql_data("{ me { id } }").await; // token acquired beforehand
    fault(
        &app,
        json!({ "route": "GET /users/{id}", "fault": { "kind": "hang" } }),
    )
    .await;
    let started = Instant::now();
    let response = app
        .http
        .get(format!("{}/api/v1/users/{DEMO_USER_UPN}", app.base))
        .bearer_auth(&app.token)
        .header("X-Request-Timeout", "2")
        .send()
        .await
        .unwrap();
    let took = started.elapsed();
    assert_eq!(response.status(), StatusCode::GATEWAY_TIMEOUT);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "UPSTREAM_TIMEOUT");
    assert!(
        took >= Duration::from_secs(2) && took <= Duration::from_millis(2200),
        "took {took:?}"
    );
}

#[tokio::test]
async fn a_total_outage_is_not_amplified_and_the_breaker_opens_then_closes() {
    let app = spawn_app_with(config()).await;
    let ids = user_ids(&app).await;
    fault(&app, json!({ "fault": { "kind": "unavailable" } })).await;
    app.reset_stats().await;
    // Offered load: one new request every 25 ms for 30 s.
    let mut offered = 0u64;
    let until = Instant::now() + Duration::from_secs(30);
    let mut i = 0;
    while Instant::now() < until {
        let body = app
            .graphql(&format!(
                "{{ user(id: \"{}\") {{ jobTitle officeLocation }} }}",
                ids[i % ids.len()]
            ))
            .await;
        assert_eq!(code(&body), "UPSTREAM_THROTTLED", "{body}");
        offered += 1;
        i += 1;
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let attempts = app.stats().await["graph_requests"].as_u64().unwrap();
    eprintln!("outage: {attempts} upstream attempts for {offered} offered requests");
    assert!(
        attempts as f64 <= 1.2 * offered as f64 + 10.0,
        "{attempts} upstream attempts for {offered} requests"
    );
    assert!(
        attempts < offered,
        "the breaker never opened: {attempts} attempts for {offered} requests"
    );
    let metrics = app
        .http
        .get(format!("{}/metrics", app.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("graph_breaker_state"), "{metrics}");

    clear_faults(&app).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let body = app
        .graphql(&format!("{{ user(id: \"{}\") {{ displayName }} }}", ids[0]))
        .await;
    assert!(
        body.get("errors").is_none(),
        "the breaker did not close: {body}"
    );
}

#[tokio::test]
async fn only_the_throttled_batch_item_is_sent_again() {
    let app = spawn_app_with(config()).await;
    let ids = user_ids(&app).await;
    fault(
        &app,
        json!({
            "route": "GET /users/{id}/directReports/microsoft.graph.user",
            "mailbox": ids[3],
            "nth": [1],
            "fault": { "kind": "throttle", "retry_after": 0.1 }
        }),
    )
    .await;
    app.reset_stats().await;
    let data = app
        .graphql_data("{ users(first: 20) { nodes { directReports(first: 2) { nodes { id } } } } }")
        .await;
    assert_eq!(data["users"]["nodes"].as_array().unwrap().len(), 20);
    let stats = app.stats().await;
    assert_eq!(stats["routes"]["POST /$batch"], 2, "{stats}");
    assert_eq!(stats["batch_items"], 21, "{stats}");
}

#[tokio::test]
async fn unusable_answers_are_upstream_bad_response_never_a_panic() {
    let app = spawn_app_with(config()).await;
    for kind in ["malformed_json", "truncated_json", "html_error"] {
        fault(
            &app,
            json!({ "route": "GET /users/{id}", "fault": { "kind": kind } }),
        )
        .await;
        let body = app
            .graphql(&format!(
                "{{ user(id: \"{DEMO_USER_UPN}\") {{ givenName }} }}"
            ))
            .await;
        assert_eq!(code(&body), "UPSTREAM_BAD_RESPONSE", "{kind}: {body}");
        let (status, body) = app
            .get(&format!("/api/v1/users/{DEMO_USER_UPN}?{kind}"))
            .await;
        assert_eq!(status, StatusCode::BAD_GATEWAY, "{kind}: {body}");
        clear_faults(&app).await;
    }
}

#[tokio::test]
async fn a_connection_reset_on_a_get_is_retried() {
    let app = spawn_app_with(config()).await;
    app.graphql_data("{ me { id } }").await;
    fault(
        &app,
        json!({ "route": "GET /users/{id}", "nth": [1], "fault": { "kind": "reset" } }),
    )
    .await;
    let body = app
        .graphql(&format!(
            "{{ user(id: \"{DEMO_USER_UPN}\") {{ surname }} }}"
        ))
        .await;
    assert!(body.get("errors").is_none(), "{body}");
}

#[tokio::test]
async fn metrics_count_graph_calls_retries_throttles_cache_and_tokens() {
    let app = spawn_app_with(config()).await;
    fault(&app, json!({ "route": "GET /users", "nth": [1], "fault": { "kind": "throttle", "retry_after": 0 } })).await;
    app.graphql_data(
        "{ users(first: 30) { nodes { displayName directReports(first: 2) { nodes { id } } } } }",
    )
    .await;
    app.graphql_data(
        "{ users(first: 30) { nodes { displayName directReports(first: 2) { nodes { id } } } } }",
    )
    .await;
    let text = app
        .http
        .get(format!("{}/metrics", app.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for name in [
        "graph_requests_total{",
        "graph_retries_total{",
        "graph_throttled_total{",
        "graph_batch_size",
        "graph_cache_hits_total",
        "graph_cache_misses_total",
        "graph_token_acquisitions_total{",
        "graph_breaker_state",
    ] {
        assert!(text.contains(name), "{name} missing from /metrics:\n{text}");
    }
    assert!(text.contains("route=\"/users\""), "{text}");
}

/// A fake Graph whose list answers carry a nextLink to another host.
struct Hostile {
    evil_hits: Arc<AtomicUsize>,
    evil_with_token: Arc<AtomicUsize>,
}

async fn serve(router: Router) -> String {
    let listener = tokio::net::TcpListener::bind(loopback()).await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await });
    format!("http://{addr}")
}

#[tokio::test]
async fn a_nextlink_to_another_host_is_refused_and_the_token_never_leaves() {
    let hostile = Hostile {
        evil_hits: Arc::new(AtomicUsize::new(0)),
        evil_with_token: Arc::new(AtomicUsize::new(0)),
    };
    let counters = (hostile.evil_hits.clone(), hostile.evil_with_token.clone());
    let evil = serve(Router::new().fallback(get(move |headers: HeaderMap| {
        let (hits, with_token) = counters.clone();
        async move {
            hits.fetch_add(1, Ordering::SeqCst);
            if headers.contains_key("authorization") {
                with_token.fetch_add(1, Ordering::SeqCst);
            }
            axum::Json(json!({ "value": [] }))
        }
    })))
    .await;
    let next = format!("{evil}/v1.0/users?$skiptoken=steal");
    let graph = serve(
        Router::new()
            .route("/{tenant}/oauth2/v2.0/token", post(|| async {
                axum::Json(json!({ "token_type": "Bearer", "expires_in": 3599, "access_token": "fake-graph-token" }))
            }))
            .route("/v1.0/users", get(|State(next): State<String>| async move {
                axum::Json(json!({ "value": [{ "id": "00000000-0000-0000-0000-0000000000a1", "displayName": "A" }], "@odata.nextLink": next }))
            }))
            .with_state(next),
    )
    .await;
    let mut config = test_config();
    config.graph.base_url = format!("{graph}/v1.0").parse().unwrap();
    config.graph.authority = graph.parse().unwrap();
    config.graph.tenant_id = Some("contoso.example".into());
    config.graph.client_id = Some("gateway".into());
    config.graph.client_secret = Some(m365_gateway::config::Secret::new("s"));
    let mut with_caller = crate::helpers::real_mode_config_from(
        config,
        (
            "svc",
            m365_gateway::config::CallerMode::App,
            &["users.read"],
            &["*"],
        ),
    );
    with_caller.policy.refresh = Duration::from_secs(3600);
    let app = spawn_app_with(with_caller).await;
    let (_, body) = app
        .graphql_as(
            Some(&crate::helpers::test_token("svc", None)),
            "{ users(first: 5) { nodes { id } } }",
            json!({}),
        )
        .await;
    assert_eq!(code(&body), "UPSTREAM_BAD_RESPONSE", "{body}");
    assert_eq!(
        hostile.evil_with_token.load(Ordering::SeqCst),
        0,
        "the Graph token reached another host"
    );
    assert_eq!(
        hostile.evil_hits.load(Ordering::SeqCst),
        0,
        "another host was contacted"
    );
}

#[tokio::test]
async fn a_hanging_mailbox_does_not_slow_requests_for_other_users() {
    let app = spawn_app_with(config()).await;
    let ids = user_ids(&app).await;
    fault(
        &app,
        json!({ "route": "/v1.0/users/*", "mailbox": DEMO_USER_UPN, "fault": { "kind": "hang" } }),
    )
    .await;
    let stuck: Vec<_> = (0..6)
        .map(|_| {
            let request = app
                .http
                .get(format!("{}/api/v1/users/{DEMO_USER_UPN}", app.base))
                .bearer_auth(&app.token)
                .header("X-Request-Timeout", "3");
            tokio::spawn(async move { request.send().await.map(|r| r.status()) })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    for id in ids.iter().filter(|id| !id.is_empty()).take(5) {
        let (status, body) = app.get(&format!("/api/v1/users/{id}/manager")).await;
        assert!(
            status == StatusCode::OK || status == StatusCode::NOT_FOUND,
            "{body}"
        );
    }
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "others waited {:?}",
        started.elapsed()
    );
    for handle in stuck {
        assert_eq!(handle.await.unwrap().unwrap(), StatusCode::GATEWAY_TIMEOUT);
    }
}

/// Rows 54, 55, 58: what reaches Graph is exactly the escaped literal, never new syntax.
#[tokio::test]
async fn filter_search_and_id_injections_reach_graph_as_escaped_literals() {
    let app = spawn_app_with(config()).await;
    app.graphql_data("{ me { id } }").await;
    app.reset_stats().await;
    let (_, body) = app
        .graphql_as(
            Some(&app.token),
            "query($p: String, $q: String) { a: users(first: 2, filter: { displayNameStartsWith: $p }) { nodes { id } } b: users(first: 2, search: $q) { nodes { id } } }",
            json!({ "p": "a') or startswith(mail,'", "q": "\"subject:foo\" OR from:ceo\\" }),
        )
        .await;
    assert!(body.get("errors").is_none(), "{body}");
    let (status, _) = app
        .get("/api/v1/users/abc%3F%24select%3Dbody%26%24expand%3Dmanager/manager")
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let urls: Vec<String> = app
        .recorded_urls()
        .await
        .iter()
        .map(|u| {
            percent_encoding::percent_decode_str(u)
                .decode_utf8_lossy()
                .into_owned()
        })
        .collect();
    assert!(
        urls.iter()
            .any(|u| u.contains("$filter=startswith(displayName,'a'') or startswith(mail,''')")),
        "{urls:?}"
    );
    assert!(
        urls.iter().any(|u| u.contains(r#"$search="displayName:\"subject:foo\" OR from:ceo\\" OR "mail:\"subject:foo\" OR from:ceo\\""#)),
        "{urls:?}"
    );
    let raw = app.recorded_urls().await;
    assert!(
        raw.iter().any(
            |u| u.starts_with("/v1.0/users/abc%3F$select=body&$expand=manager?")
                || u.starts_with("/v1.0/users/abc%3F%24select")
        ),
        "{raw:?}"
    );
    assert!(raw.iter().all(|u| !u.contains("/users/abc?")), "{raw:?}");
}
