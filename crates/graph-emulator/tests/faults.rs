//! Fault injection over real HTTP: every fault kind as a client sees it, how rules pick
//! their requests, the admin surface, `$batch` items, and Outlook's mailbox concurrency.

mod common;

use std::future::IntoFuture;
use std::time::{Duration, Instant};

use common::*;
use graph_emulator::{
    DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, DEFAULT_TENANT_ID, DEMO_USER_UPN, EmulatorConfig,
    Fault, FaultRule, RetryAfter,
};
use reqwest::StatusCode;
use serde_json::{Value, json};

const SIOBHAN_UPN: &str = "siobhan.obrien@kestrelridge.example";

/// Adds rules over HTTP; returns their ids.
async fn add_rules(h: &Harness, body: &Value) -> Vec<u64> {
    let response = h
        .client
        .post(format!("{}/_emulator/faults", h.emu.base_url()))
        .json(body)
        .send()
        .await
        .expect("POST /_emulator/faults");
    let reply = reply(response).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    reply.json()["ids"]
        .as_array()
        .expect("ids")
        .iter()
        .map(|id| id.as_u64().expect("id"))
        .collect()
}

async fn list_rules(h: &Harness) -> Vec<Value> {
    let response = h
        .client
        .get(format!("{}/_emulator/faults", h.emu.base_url()))
        .send()
        .await
        .expect("GET /_emulator/faults");
    let reply = reply(response).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    reply.json()["rules"].as_array().expect("rules").clone()
}

fn rule(json: Value) -> FaultRule {
    serde_json::from_value(json).expect("fault rule")
}

/// The I/O error under a reqwest error, if any.
fn io_error_kind(err: &reqwest::Error) -> Option<std::io::ErrorKind> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = source {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            return Some(io.kind());
        }
        source = e.source();
    }
    None
}

fn demo_user_path() -> String {
    format!("/users/{DEMO_USER_UPN}")
}

/// Statuses of `n` sequential GETs.
async fn statuses(h: &Harness, path: &str, n: usize) -> Vec<u16> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(h.get(path).await.status.as_u16());
    }
    out
}

#[tokio::test]
async fn a_throttle_fault_answers_429_with_graphs_body_and_an_integer_retry_after() {
    let h = start().await;
    add_rules(
        &h,
        &json!({"route": "GET /users/{id}", "fault": {"kind": "throttle", "retry_after": 3}}),
    )
    .await;
    let reply = h
        .get_with(
            &demo_user_path(),
            &[("client-request-id", "c0ffee00-0000-4000-8000-000000000001")],
        )
        .await;
    assert_eq!(
        reply.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        reply.text
    );
    assert_eq!(reply.header("retry-after"), Some("3"));
    assert!(
        reply
            .header("content-type")
            .is_some_and(|c| c.starts_with("application/json"))
    );
    let body = reply.json();
    assert_eq!(body["error"]["code"], "TooManyRequests");
    assert_eq!(body["error"]["message"], "Please retry again later.");
    let inner = &body["error"]["innerError"];
    assert_eq!(inner["code"], "429");
    assert_eq!(inner["status"], "429");
    assert_eq!(inner["message"], "Please retry after");
    assert_eq!(
        inner["client-request-id"],
        "c0ffee00-0000-4000-8000-000000000001"
    );
    assert_eq!(
        inner["request-id"].as_str(),
        reply.header("request-id"),
        "{body}"
    );
    // Other routes are untouched.
    assert_eq!(h.get("/users?$top=1").await.status, StatusCode::OK);
}

#[tokio::test]
async fn retry_after_can_be_fractional_or_an_http_date_in_the_future_or_absent() {
    let h = start().await;
    let ids = add_rules(
        &h,
        &json!({"rules": [
            {"route": "GET /users/{id}", "nth": [1], "fault": {"kind": "throttle", "retry_after": 2.128}},
            {"route": "GET /users/{id}", "nth": [1], "fault": {"kind": "throttle", "retry_after": {"http_date_in": 120}}},
            {"route": "GET /users/{id}", "nth": [1], "fault": {"kind": "throttle"}},
        ]}),
    )
    .await;
    assert_eq!(ids.len(), 3);

    let fractional = h.get(&demo_user_path()).await;
    assert_eq!(fractional.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(fractional.header("retry-after"), Some("2.128"));

    // The first rule took request 1; the second sees its own first match now.
    let dated = h.get(&demo_user_path()).await;
    assert_eq!(dated.status, StatusCode::TOO_MANY_REQUESTS);
    let date = dated.header("retry-after").expect("Retry-After");
    let format = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    let at = time::PrimitiveDateTime::parse(date, &format)
        .unwrap_or_else(|e| panic!("{date:?} is not an HTTP date: {e}"))
        .assume_utc();
    let ahead = at - time::OffsetDateTime::now_utc();
    assert!(
        ahead > time::Duration::seconds(110) && ahead <= time::Duration::seconds(121),
        "{date} is {ahead} ahead"
    );

    let bare = h.get(&demo_user_path()).await;
    assert_eq!(bare.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(bare.header("retry-after"), None);

    assert_eq!(h.get(&demo_user_path()).await.status, StatusCode::OK);
}

#[tokio::test]
async fn unavailable_is_a_503_service_not_available_and_gateway_timeout_a_504_unknown_error() {
    let h = start().await;
    add_rules(
        &h,
        &json!({"rules": [
            {"route": "GET /users", "fault": {"kind": "unavailable", "retry_after": 5}},
            {"route": "GET /groups", "fault": {"kind": "gateway_timeout"}},
        ]}),
    )
    .await;
    let unavailable = h.get("/users").await;
    assert_eq!(unavailable.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(unavailable.header("retry-after"), Some("5"));
    assert_eq!(unavailable.error_code(), "serviceNotAvailable");
    assert!(unavailable.json()["error"]["innerError"]["request-id"].is_string());

    let timeout = h.get("/groups").await;
    assert_eq!(timeout.status, StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(timeout.header("retry-after"), None);
    assert_eq!(timeout.error_code(), "UnknownError");
    assert_eq!(timeout.error_message(), "");
}

#[tokio::test]
async fn a_latency_fault_delays_the_answer_and_then_answers_normally() {
    let h = start().await;
    add_rules(
        &h,
        &json!({"route": "GET /users/{id}", "fault": {"kind": "latency", "ms": 300, "jitter_ms": 50}}),
    )
    .await;
    let started = Instant::now();
    let reply = h.get(&demo_user_path()).await;
    let elapsed = started.elapsed();
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.json()["userPrincipalName"], DEMO_USER_UPN);
    assert!(elapsed >= Duration::from_millis(300), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(3), "{elapsed:?}");
}

#[tokio::test]
async fn a_reset_fault_drops_the_connection_without_an_http_answer() {
    let h = start().await;
    add_rules(
        &h,
        &json!({"route": "GET /users/{id}", "nth": [1], "fault": {"kind": "reset"}}),
    )
    .await;
    let err = h
        .client
        .get(format!("{}{}", h.emu.graph_url(), demo_user_path()))
        .bearer_auth(&h.token)
        .send()
        .await
        .expect_err("a reset connection, not an answer");
    assert!(err.status().is_none(), "{err:?}");
    assert!(!err.is_timeout(), "{err:?}");
    assert_eq!(
        io_error_kind(&err),
        Some(std::io::ErrorKind::ConnectionReset),
        "an RST, not a FIN: {err:?}"
    );

    // The emulator itself is fine, and the log shows the request without a status.
    assert_eq!(h.get(&demo_user_path()).await.status, StatusCode::OK);
    let log = h.emu.emulator.requests();
    assert_eq!(log[0].status, 0, "{log:?}");
    assert_eq!(log[1].status, 200, "{log:?}");
}

#[tokio::test]
async fn a_hang_fault_never_answers_and_lets_go_when_the_client_times_out() {
    // One slot per mailbox, so the hang's slot shows whether the server let go of it.
    let h = start_with(EmulatorConfig {
        mailbox_concurrency: Some(1),
        mailbox_concurrency_all_routes: true,
        ..EmulatorConfig::default()
    })
    .await;
    add_rules(
        &h,
        &json!({"route": "GET /users/{id}", "nth": [1], "fault": {"kind": "hang"}}),
    )
    .await;
    let impatient = reqwest::Client::builder()
        .timeout(Duration::from_millis(400))
        .build()
        .expect("client");
    let started = Instant::now();
    let err = impatient
        .get(format!("{}{}", h.emu.graph_url(), demo_user_path()))
        .bearer_auth(&h.token)
        .send()
        .await
        .expect_err("no answer");
    assert!(err.is_timeout(), "{err:?}");
    assert!(started.elapsed() >= Duration::from_millis(400));
    assert_eq!(h.emu.emulator.requests()[0].status, 0);

    // The client hung up, so the server dropped the hanging request and its slot.
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let status = h.get(&demo_user_path()).await.status;
        if status == StatusCode::OK {
            break;
        }
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
        assert!(Instant::now() < deadline, "the hang still holds its slot");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn malformed_json_is_a_200_with_a_json_content_type_and_a_body_that_does_not_parse() {
    let h = start().await;
    add_rules(
        &h,
        &json!({"route": "GET /users", "fault": {"kind": "malformed_json"}}),
    )
    .await;
    let reply = h.get("/users?$top=2").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(
        reply
            .header("content-type")
            .is_some_and(|c| c.starts_with("application/json")),
        "{:?}",
        reply.headers
    );
    assert_eq!(reply.text, "{\"value\": [");
    assert!(serde_json::from_str::<Value>(&reply.text).is_err());
}

#[tokio::test]
async fn truncated_json_keeps_status_and_headers_and_cuts_the_body_in_half() {
    let h = start().await;
    add_rules(
        &h,
        &json!({"route": "GET /users/{id}", "nth": [2], "fault": {"kind": "truncated_json"}}),
    )
    .await;
    let whole = h.get(&demo_user_path()).await;
    assert_eq!(whole.status, StatusCode::OK);
    let cut = h.get(&demo_user_path()).await;
    assert_eq!(cut.status, StatusCode::OK);
    assert!(
        cut.header("content-type")
            .is_some_and(|c| c.starts_with("application/json"))
    );
    assert!(cut.header("request-id").is_some());
    assert_eq!(cut.text.len(), whole.text.len() / 2);
    assert!(whole.text.starts_with(&cut.text));
    assert!(serde_json::from_str::<Value>(&cut.text).is_err());
}

#[tokio::test]
async fn an_html_error_is_a_502_html_page_without_graphs_headers() {
    let h = start().await;
    add_rules(&h, &json!({"fault": {"kind": "html_error"}})).await;
    let reply = h.get(&demo_user_path()).await;
    assert_eq!(reply.status, StatusCode::BAD_GATEWAY);
    assert_eq!(reply.header("content-type"), Some("text/html"));
    assert!(
        reply.text.contains("<h1>502 Bad Gateway</h1>"),
        "{}",
        reply.text
    );
    assert_eq!(reply.header("request-id"), None);
    assert_eq!(reply.header("odata-version"), None);
}

#[tokio::test]
async fn nth_faults_exactly_the_scheduled_matching_requests() {
    let h = start().await;
    add_rules(
        &h,
        &json!({"route": "GET /users/{id}", "nth": [1, 3, 4], "fault": {"kind": "unavailable"}}),
    )
    .await;
    // Requests to other routes do not advance the schedule.
    assert_eq!(h.get("/groups?$top=1").await.status, StatusCode::OK);
    assert_eq!(
        statuses(&h, &demo_user_path(), 6).await,
        vec![503, 200, 503, 503, 200, 200]
    );
    let rules = list_rules(&h).await;
    assert_eq!(rules[0]["matched"], 6);
    assert_eq!(rules[0]["hits"], 3);
}

#[tokio::test]
async fn the_same_seed_faults_the_same_requests_at_a_given_rate_and_another_seed_does_not() {
    let config = |seed: u64| EmulatorConfig {
        seed,
        faults: vec![rule(json!({
            "route": "GET /users/{id}",
            "rate": 0.5,
            "fault": {"kind": "throttle", "retry_after": 1}
        }))],
        ..EmulatorConfig::default()
    };
    let a = start_with(config(42)).await;
    let b = start_with(config(42)).await;
    let c = start_with(config(7)).await;
    let path = demo_user_path();
    let (sa, sb, sc) = (
        statuses(&a, &path, 40).await,
        statuses(&b, &path, 40).await,
        statuses(&c, &path, 40).await,
    );
    assert_eq!(sa, sb);
    assert_ne!(sa, sc);
    let throttled = sa.iter().filter(|s| **s == 429).count();
    assert!((8..=32).contains(&throttled), "{throttled} of 40: {sa:?}");
    assert!(sa.iter().all(|s| *s == 200 || *s == 429));
}

#[tokio::test]
async fn limit_stops_a_rule_after_that_many_faults() {
    let h = start().await;
    add_rules(
        &h,
        &json!({"route": "GET /users/{id}", "limit": 2, "fault": {"kind": "gateway_timeout"}}),
    )
    .await;
    assert_eq!(
        statuses(&h, &demo_user_path(), 4).await,
        vec![504, 504, 200, 200]
    );
    let rules = list_rules(&h).await;
    assert_eq!(rules[0]["hits"], 2);
    assert_eq!(rules[0]["matched"], 4);
}

#[tokio::test]
async fn rules_match_by_route_template_path_prefix_and_mailbox() {
    let h = start().await;
    let demo_id = h.user_id(DEMO_USER_UPN).await;
    add_rules(
        &h,
        &json!({"rules": [
            // A template: only the manager route, for any user.
            {"route": "GET /users/{id}/manager", "fault": {"kind": "unavailable"}},
            // A path prefix.
            {"route": "/v1.0/groups/*", "fault": {"kind": "gateway_timeout"}},
            // A mailbox named by UPN, addressed by id or UPN in any case.
            {"mailbox": DEMO_USER_UPN, "route": "GET /users/{id}/memberOf", "fault": {"kind": "throttle"}},
        ]}),
    )
    .await;
    assert_eq!(
        h.get(&format!("/users/{SIOBHAN_UPN}/manager")).await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(h.get(&demo_user_path()).await.status, StatusCode::OK);
    assert_eq!(
        h.get("/groups/anything").await.status,
        StatusCode::GATEWAY_TIMEOUT
    );
    assert_eq!(
        h.get("/groups").await.status,
        StatusCode::OK,
        "no slash after groups"
    );
    assert_eq!(
        h.get(&format!("/users/{demo_id}/memberOf")).await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(
        h.get(&format!("/users/{}/memberOf", DEMO_USER_UPN.to_uppercase()))
            .await
            .status,
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(
        h.get(&format!("/users/{SIOBHAN_UPN}/memberOf"))
            .await
            .status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn rules_are_added_listed_removed_and_cleared_at_runtime_over_http() {
    let h = start().await;
    let admin = format!("{}/_emulator/faults", h.emu.base_url());
    let one = add_rules(
        &h,
        &json!({"route": "GET /users/{id}", "fault": {"kind": "throttle", "retry_after": 1}}),
    )
    .await;
    let more = add_rules(
        &h,
        &json!({"rules": [
            {"route": "GET /groups", "fault": {"kind": "unavailable"}},
            {"route": "GET /directoryRoles", "fault": {"kind": "latency", "ms": 1}},
        ]}),
    )
    .await;
    assert_eq!(one, vec![1]);
    assert_eq!(more, vec![2, 3]);

    assert_eq!(
        h.get(&demo_user_path()).await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
    let rules = list_rules(&h).await;
    assert_eq!(rules.len(), 3);
    assert_eq!(rules[0]["id"], 1);
    assert_eq!(rules[0]["matched"], 1);
    assert_eq!(rules[0]["hits"], 1);
    assert_eq!(
        rules[0]["rule"],
        json!({"route": "GET /users/{id}", "fault": {"kind": "throttle", "retry_after": 1}})
    );
    assert_eq!(
        rules[2]["rule"]["fault"],
        json!({"kind": "latency", "ms": 1, "jitter_ms": 0})
    );

    // Invalid rules are refused whole, with a reason.
    for bad in [
        json!({"route": "GET /users", "fault": {"kind": "explode"}}),
        json!({"route": "GET /users", "rate": 0.5, "nth": [1], "fault": {"kind": "reset"}}),
        json!({"rules": [{"fault": {"kind": "reset"}}, {"fault": {"kind": "reset"}, "rate": 2.0}]}),
        json!({"fault": {"kind": "reset"}, "mailbx": "x"}),
    ] {
        let r = reply(h.client.post(&admin).json(&bad).send().await.expect("post")).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}: {}", r.text);
        assert!(r.json()["error"].is_string());
    }
    assert_eq!(list_rules(&h).await.len(), 3);

    let delete_one = h
        .client
        .delete(format!("{admin}/1"))
        .send()
        .await
        .expect("delete");
    assert_eq!(delete_one.status(), StatusCode::NO_CONTENT);
    let again = h
        .client
        .delete(format!("{admin}/1"))
        .send()
        .await
        .expect("delete");
    assert_eq!(again.status(), StatusCode::NOT_FOUND);
    assert_eq!(h.get(&demo_user_path()).await.status, StatusCode::OK);
    assert_eq!(
        h.get("/groups").await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );

    let clear = h.client.delete(&admin).send().await.expect("delete all");
    assert_eq!(clear.status(), StatusCode::NO_CONTENT);
    assert!(list_rules(&h).await.is_empty());
    assert_eq!(h.get("/groups").await.status, StatusCode::OK);
    // Ids are never reused.
    assert_eq!(
        add_rules(
            &h,
            &json!({"fault": {"kind": "reset"}, "route": "/v1.0/nowhere*"})
        )
        .await,
        vec![4]
    );
}

#[tokio::test]
async fn config_rules_apply_from_the_start_and_the_rust_api_adds_and_clears_them() {
    let h = start_with(EmulatorConfig {
        faults: vec![
            FaultRule::new(Fault::Unavailable {
                retry_after: Some(RetryAfter::Seconds(9)),
            })
            .route("GET /groups")
            .limit(1),
        ],
        ..EmulatorConfig::default()
    })
    .await;
    let first = h.get("/groups").await;
    assert_eq!(first.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(first.header("retry-after"), Some("9"));
    assert_eq!(h.get("/groups").await.status, StatusCode::OK);

    let emulator = &h.emu.emulator;
    let id = emulator.add_fault(
        FaultRule::new(Fault::Throttle {
            retry_after: Some(RetryAfter::Fractional(0.5)),
        })
        .route("/v1.0/users/*")
        .mailbox(DEMO_USER_UPN),
    );
    assert_eq!(id, 2);
    let throttled = h.get(&demo_user_path()).await;
    assert_eq!(throttled.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(throttled.header("retry-after"), Some("0.5"));
    assert_eq!(emulator.faults().len(), 2);
    assert_eq!(emulator.faults()[1].hits, 1);
    emulator.clear_faults();
    assert!(emulator.faults().is_empty());
    assert_eq!(h.get(&demo_user_path()).await.status, StatusCode::OK);
    assert!(
        emulator
            .try_add_fault(FaultRule::new(Fault::Reset).rate(-0.1))
            .is_err()
    );
}

#[tokio::test]
async fn a_throttled_batch_item_carries_its_retry_after_while_others_succeed_and_its_dependant_gets_424()
 {
    let h = start().await;
    add_rules(
        &h,
        &json!({"route": "GET /users/{id}/manager", "fault": {"kind": "throttle", "retry_after": 7}}),
    )
    .await;
    let reply = h
        .batch(&json!({"requests": [
            {"id": "1", "method": "GET", "url": format!("/users/{DEMO_USER_UPN}/manager")},
            {"id": "2", "method": "GET", "url": "/users?$top=1"},
            {"id": "3", "method": "GET", "url": "/groups?$top=1", "dependsOn": ["1"]},
        ]}))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(
        reply.header("retry-after"),
        None,
        "the envelope is not throttled"
    );
    let body = reply.json();
    let item = |id: &str| {
        body["responses"]
            .as_array()
            .expect("responses")
            .iter()
            .find(|r| r["id"] == id)
            .cloned()
            .unwrap_or_else(|| panic!("no item {id}"))
    };
    let throttled = item("1");
    assert_eq!(throttled["status"], 429, "{throttled}");
    assert_eq!(throttled["headers"]["Retry-After"], "7");
    assert_eq!(throttled["body"]["error"]["code"], "TooManyRequests");
    assert_eq!(item("2")["status"], 200);
    assert_eq!(item("3")["status"], 424);

    let stats = h.emu.emulator.stats();
    assert_eq!(stats.throttled, 1);
    assert_eq!(stats.faults_injected, 1);
    let log = h.emu.emulator.requests();
    assert!(
        log.iter()
            .any(|r| r.in_batch && r.status == 429 && r.url.ends_with("/manager")),
        "{log:?}"
    );
}

#[tokio::test]
async fn batch_items_are_left_alone_unless_the_rule_allows_it_and_item_latency_delays_the_envelope()
{
    let h = start().await;
    add_rules(
        &h,
        &json!({"rules": [
            {"route": "GET /users/{id}", "in_batch": false, "fault": {"kind": "throttle"}},
            {"route": "GET /groups", "in_batch": true, "fault": {"kind": "latency", "ms": 300}},
            // The envelope itself, never its items.
            {"route": "POST /$batch", "nth": [2], "fault": {"kind": "unavailable", "retry_after": 2}},
        ]}),
    )
    .await;
    let items = json!({"requests": [
        {"id": "a", "method": "GET", "url": format!("/users/{DEMO_USER_UPN}")},
        {"id": "b", "method": "GET", "url": "/groups?$top=1"},
    ]});
    let started = Instant::now();
    let reply = h.batch(&items).await;
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(reply.status, StatusCode::OK);
    let statuses: Vec<u64> = reply.json()["responses"]
        .as_array()
        .expect("responses")
        .iter()
        .map(|r| r["status"].as_u64().expect("status"))
        .collect();
    assert_eq!(statuses, vec![200, 200]);
    // The same user directly is throttled.
    assert_eq!(
        h.get(&demo_user_path()).await.status,
        StatusCode::TOO_MANY_REQUESTS
    );

    let envelope = h.batch(&items).await;
    assert_eq!(envelope.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(envelope.header("retry-after"), Some("2"));
}

#[tokio::test]
async fn a_reset_drawn_by_a_batch_item_drops_the_whole_envelope() {
    let h = start().await;
    add_rules(
        &h,
        &json!({"route": "GET /groups", "in_batch": true, "fault": {"kind": "reset"}}),
    )
    .await;
    let err = h
        .client
        .post(format!("{}/$batch", h.emu.graph_url()))
        .bearer_auth(&h.token)
        .json(&json!({"requests": [
            {"id": "1", "method": "GET", "url": "/users?$top=1"},
            {"id": "2", "method": "GET", "url": "/groups?$top=1"},
        ]}))
        .send()
        .await
        .expect_err("reset");
    assert_eq!(
        io_error_kind(&err),
        Some(std::io::ErrorKind::ConnectionReset),
        "{err:?}"
    );
    let log = h.emu.emulator.requests();
    assert!(log.iter().any(|r| !r.in_batch && r.status == 0), "{log:?}");
}

/// Sends `n` GETs at once; returns their replies.
async fn concurrently(h: &Harness, path: &str, n: usize) -> Vec<Reply> {
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..n {
        let request = h
            .client
            .get(format!("{}{path}", h.emu.graph_url()))
            .bearer_auth(&h.token);
        tasks.spawn(async move { reply(request.send().await.expect("request")).await });
    }
    tasks.join_all().await
}

#[tokio::test]
async fn six_concurrent_slow_requests_to_one_mailbox_leave_exactly_two_throttled_and_another_mailbox_is_unaffected()
 {
    let h = start_with(EmulatorConfig {
        mailbox_concurrency_all_routes: true,
        faults: vec![rule(
            json!({"route": "GET /users/{id}", "fault": {"kind": "latency", "ms": 800}}),
        )],
        ..EmulatorConfig::default()
    })
    .await;
    let demo = demo_user_path();
    let other = format!("/users/{SIOBHAN_UPN}");
    let (busy, calm) = tokio::join!(concurrently(&h, &demo, 6), concurrently(&h, &other, 4));

    let throttled: Vec<&Reply> = busy
        .iter()
        .filter(|r| r.status == StatusCode::TOO_MANY_REQUESTS)
        .collect();
    assert_eq!(
        throttled.len(),
        2,
        "{:?}",
        busy.iter().map(|r| r.status).collect::<Vec<_>>()
    );
    assert_eq!(
        busy.iter().filter(|r| r.status == StatusCode::OK).count(),
        4
    );
    for r in &throttled {
        assert_eq!(r.error_code(), "ApplicationThrottled");
        assert_eq!(
            r.error_message(),
            "Application is over its MailboxConcurrency limit."
        );
        assert!(r.header("retry-after").is_some());
    }
    assert!(calm.iter().all(|r| r.status == StatusCode::OK));

    // Slots are given back: the mailbox answers again.
    assert_eq!(h.get(&demo).await.status, StatusCode::OK);
    assert_eq!(h.emu.emulator.stats().throttled, 2);
}

#[tokio::test]
async fn outlook_items_of_one_batch_run_four_at_a_time_without_throttling_each_other() {
    let h = start_with(EmulatorConfig {
        mailbox_concurrency_all_routes: true,
        faults: vec![rule(json!({
            "route": "GET /users/{id}", "in_batch": true,
            "fault": {"kind": "latency", "ms": 250}
        }))],
        ..EmulatorConfig::default()
    })
    .await;
    let requests: Vec<Value> = (1..=8)
        .map(|i| json!({"id": i.to_string(), "method": "GET", "url": format!("/users/{DEMO_USER_UPN}")}))
        .collect();
    let started = Instant::now();
    let reply = h.batch(&json!({ "requests": requests })).await;
    let elapsed = started.elapsed();
    assert_eq!(reply.status, StatusCode::OK);
    let body = reply.json();
    let responses = body["responses"].as_array().expect("responses");
    assert!(responses.iter().all(|r| r["status"] == 200), "{body}");
    // Eight items, four at a time: two rounds of 250 ms, not one.
    assert!(elapsed >= Duration::from_millis(500), "{elapsed:?}");
    assert!(elapsed < Duration::from_millis(2000), "{elapsed:?}");
}

#[tokio::test]
async fn without_the_test_hook_only_mailbox_routes_count_against_the_limit() {
    let h = start_with(EmulatorConfig {
        faults: vec![rule(
            json!({"route": "GET /v1.0/users/*", "fault": {"kind": "latency", "ms": 800}}),
        )],
        ..EmulatorConfig::default()
    })
    .await;
    // A directory route: no limit.
    let directory = concurrently(&h, &demo_user_path(), 6).await;
    assert!(directory.iter().all(|r| r.status == StatusCode::OK));
    // A mailbox route: four are admitted, the other two are over the limit.
    let mail = concurrently(&h, &format!("/users/{DEMO_USER_UPN}/messages"), 6).await;
    let mut statuses: Vec<u16> = mail.iter().map(|r| r.status.as_u16()).collect();
    statuses.sort_unstable();
    assert_eq!(statuses, vec![200, 200, 200, 200, 429, 429]);
}

#[tokio::test]
async fn the_token_endpoint_can_be_throttled_made_unavailable_or_reset() {
    let h = start().await;
    let emulator = &h.emu.emulator;
    let form = [
        ("grant_type", "client_credentials"),
        ("client_id", DEFAULT_CLIENT_ID),
        ("client_secret", DEFAULT_CLIENT_SECRET),
        ("scope", GRAPH_SCOPE),
    ];
    emulator.reset_stats();

    add_rules(
        &h,
        &json!({"route": "POST /{tenant}/oauth2/v2.0/token", "fault": {"kind": "throttle", "retry_after": 60}}),
    )
    .await;
    let throttled = token_request(&h.emu, DEFAULT_TENANT_ID, &form).await;
    assert_eq!(throttled.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(throttled.header("retry-after"), Some("60"));
    assert_eq!(throttled.text, "Too Many Requests");
    emulator.clear_faults();

    add_rules(
        &h,
        &json!({"route": "POST /{tenant}/oauth2/v2.0/token", "fault": {"kind": "unavailable"}}),
    )
    .await;
    let unavailable = token_request(&h.emu, DEFAULT_TENANT_ID, &form).await;
    assert_aadsts(
        &unavailable,
        StatusCode::SERVICE_UNAVAILABLE,
        "temporarily_unavailable",
        90033,
    );
    emulator.clear_faults();

    add_rules(
        &h,
        &json!({"route": "POST /{tenant}/oauth2/v2.0/token", "fault": {"kind": "reset"}}),
    )
    .await;
    let err = reqwest::Client::new()
        .post(format!(
            "{}/{DEFAULT_TENANT_ID}/oauth2/v2.0/token",
            h.emu.base_url()
        ))
        .form(&form)
        .send()
        .await
        .expect_err("reset");
    assert_eq!(
        io_error_kind(&err),
        Some(std::io::ErrorKind::ConnectionReset),
        "{err:?}"
    );
    emulator.clear_faults();

    // Graph rules without a route leave Entra alone.
    add_rules(&h, &json!({"fault": {"kind": "unavailable"}})).await;
    assert_eq!(
        token_request(&h.emu, DEFAULT_TENANT_ID, &form).await.status,
        StatusCode::OK
    );

    let stats = emulator.stats();
    assert_eq!(stats.token_requests, 4);
    assert_eq!(stats.token_requests_by_grant["client_credentials"], 4);
    assert_eq!(stats.faults_injected, 3);
    assert_eq!(stats.throttled, 1);
}

#[tokio::test]
async fn stats_count_injected_faults_and_throttled_answers_and_the_log_shows_faulted_statuses() {
    let h = start().await;
    add_rules(
        &h,
        &json!({"rules": [
            {"route": "GET /users/{id}", "fault": {"kind": "latency", "ms": 1}},
            {"route": "GET /users/{id}", "nth": [2], "fault": {"kind": "throttle", "retry_after": 1}},
            {"route": "GET /groups", "nth": [1], "fault": {"kind": "html_error"}},
        ]}),
    )
    .await;
    let path = demo_user_path();
    assert_eq!(statuses(&h, &path, 3).await, vec![200, 429, 200]);
    assert_eq!(h.get("/groups").await.status, StatusCode::BAD_GATEWAY);

    let stats = h.emu.emulator.stats();
    // 3 latencies + 1 throttle + 1 HTML error.
    assert_eq!(stats.faults_injected, 5);
    assert_eq!(stats.throttled, 1);
    assert_eq!(stats.graph_requests, 4);
    assert_eq!(stats.routes["GET /users/{id}"], 3);
    let log: Vec<u16> = h.emu.emulator.requests().iter().map(|r| r.status).collect();
    assert_eq!(log, vec![200, 429, 200, 502]);

    // Over HTTP, with the new counters.
    let over_http: Value = h
        .client
        .get(format!("{}/_emulator/stats", h.emu.base_url()))
        .send()
        .await
        .expect("stats")
        .json()
        .await
        .expect("JSON");
    assert_eq!(over_http["faults_injected"], 5);
    assert_eq!(over_http["throttled"], 1);

    h.emu.emulator.reset_stats();
    let stats = h.emu.emulator.stats();
    assert_eq!((stats.faults_injected, stats.throttled), (0, 0));
    // Older serialized stats (without the new counters) still read.
    let old: graph_emulator::Stats = serde_json::from_value(json!({
        "graph_requests": 1, "batch_items": 0, "token_requests": 0,
        "routes": {}, "batch_item_routes": {}
    }))
    .expect("old stats");
    assert_eq!(old.faults_injected, 0);
}

#[tokio::test]
async fn a_router_embedded_in_another_server_still_drops_the_connection_on_a_reset() {
    let emulator = graph_emulator::Emulator::new(EmulatorConfig::default());
    emulator.add_fault(FaultRule::new(Fault::Reset).route("GET /users").nth([1]));
    let listener = tokio::net::TcpListener::bind(loopback())
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let server = tokio::spawn(axum::serve(listener, emulator.router()).into_future());

    let client = reqwest::Client::new();
    let url = format!("http://{addr}/v1.0/users");
    let err = client.get(&url).send().await.expect_err("no answer");
    assert!(err.status().is_none() && !err.is_timeout(), "{err:?}");
    // The server goes on serving (401: no token, but an answer).
    let next = client.get(&url).send().await.expect("answer");
    assert_eq!(next.status(), StatusCode::UNAUTHORIZED);
    server.abort();
}

#[tokio::test]
async fn a_broken_body_drawn_by_a_batch_item_breaks_the_envelope_and_an_html_error_stays_in_its_item()
 {
    use base64::Engine as _;
    let h = start().await;
    add_rules(
        &h,
        &json!({"rules": [
            {"route": "GET /groups", "in_batch": true, "nth": [1], "fault": {"kind": "malformed_json"}},
            {"route": "GET /directoryRoles", "in_batch": true, "fault": {"kind": "html_error"}},
        ]}),
    )
    .await;
    let items = json!({"requests": [
        {"id": "1", "method": "GET", "url": "/groups?$top=1"},
        {"id": "2", "method": "GET", "url": "/directoryRoles"},
    ]});
    let broken = h.batch(&items).await;
    assert_eq!(broken.status, StatusCode::OK);
    assert_eq!(broken.text, "{\"value\": [");

    let reply = h.batch(&items).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let body = reply.json();
    let html = body["responses"]
        .as_array()
        .expect("responses")
        .iter()
        .find(|r| r["id"] == "2")
        .expect("item 2");
    assert_eq!(html["status"], 502);
    assert_eq!(html["headers"]["Content-Type"], "text/html");
    let page = base64::engine::general_purpose::STANDARD
        .decode(html["body"].as_str().expect("base64 body"))
        .expect("base64");
    assert!(String::from_utf8_lossy(&page).contains("502 Bad Gateway"));
}
