//! JSON batching: limits, ids, dependsOn, ordering, and how batches are counted.

mod common;

use common::*;
use graph_emulator::DEMO_USER_UPN;
use reqwest::StatusCode;
use serde_json::{Value, json};

fn get_item(id: &str, url: &str) -> Value {
    json!({"id": id, "method": "GET", "url": url})
}

fn response_ids(body: &Value) -> Vec<String> {
    body["responses"]
        .as_array()
        .expect("responses")
        .iter()
        .map(|r| r["id"].as_str().unwrap_or_default().to_string())
        .collect()
}

fn response<'a>(body: &'a Value, id: &str) -> &'a Value {
    body["responses"]
        .as_array()
        .expect("responses")
        .iter()
        .find(|r| r["id"] == id)
        .unwrap_or_else(|| panic!("no response {id}"))
}

#[tokio::test]
async fn a_batch_of_21_items_is_a_400() {
    let h = start().await;
    let requests: Vec<Value> = (1..=21)
        .map(|i| get_item(&i.to_string(), "/users?$top=1"))
        .collect();
    let reply = h.batch(&json!({ "requests": requests })).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.error_code(), "BadRequest");
    assert_eq!(
        reply.error_message(),
        "Batch request exceeds the maximum of 20"
    );

    let requests: Vec<Value> = (1..=20)
        .map(|i| get_item(&i.to_string(), "/users?$top=1"))
        .collect();
    let reply = h.batch(&json!({ "requests": requests })).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
}

#[tokio::test]
async fn duplicate_ids_differing_only_in_case_are_a_400() {
    let h = start().await;
    let reply = h
        .batch(
            &json!({"requests": [get_item("a", "/users?$top=1"), get_item("A", "/groups?$top=1")]}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        reply.error_message(),
        "Request Id A has to be unique in a batch."
    );
}

#[tokio::test]
async fn malformed_envelopes_are_400s() {
    let h = start().await;
    for body in [
        json!({}),
        json!({"requests": []}),
        json!({"requests": [{"id": "1", "url": "/users"}]}),
        json!({"requests": [{"id": "1", "method": "GET", "url": "/users", "dependsOn": ["9"]}]}),
        json!({"requests": [{"id": "1", "method": "POST", "url": "/users", "body": {"a": 1}}]}),
    ] {
        let reply = h.batch(&body).await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "{body}: {}",
            reply.text
        );
        assert_eq!(reply.error_code(), "BadRequest");
    }
    let reply = h.batch(&json!({"requests": [{"id": "1", "method": "POST", "url": "/users", "body": {"a": 1}}]})).await;
    assert_eq!(
        reply.error_message(),
        "Write request id : 1 does not contain Content-Type header or body."
    );
}

#[tokio::test]
async fn an_item_depending_on_a_failed_item_gets_424_and_the_envelope_is_200() {
    let h = start().await;
    let reply = h
        .batch(&json!({"requests": [
            get_item("1", "/users/no-such-user@kestrelridge.example"),
            {"id": "2", "method": "GET", "url": "/users?$top=1", "dependsOn": ["1"]},
            {"id": "3", "method": "GET", "url": "/groups?$top=1", "dependsOn": ["2"]},
            get_item("4", "users?$top=1"),
        ]}))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let body = reply.json();
    assert_eq!(response(&body, "1")["status"], 404);
    assert_eq!(
        response(&body, "1")["body"]["error"]["code"],
        "Request_ResourceNotFound"
    );
    for id in ["2", "3"] {
        let r = response(&body, id);
        assert_eq!(r["status"], 424, "{r}");
        assert!(r["body"]["error"]["code"].is_string());
        assert!(r["body"]["error"]["innerError"]["request-id"].is_string());
    }
    assert_eq!(
        response(&body, "4")["status"],
        200,
        "a leading slash is optional"
    );
}

#[tokio::test]
async fn responses_come_back_out_of_request_order_and_match_direct_calls() {
    let h = start().await;
    let ids: Vec<String> = (1..=5).map(|i| i.to_string()).collect();
    let reply = h
        .batch(&json!({"requests": [
            get_item("1", &format!("/users/{DEMO_USER_UPN}")),
            get_item("2", &format!("/users/{DEMO_USER_UPN}/manager?$select=id,displayName")),
            get_item("3", "/users?$top=2&$select=id"),
            {"id": "4", "method": "GET", "url": "/users/$count", "headers": {"ConsistencyLevel": "eventual"}},
            get_item("5", "/users/$count"),
        ]}))
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    let body = reply.json();
    let got = response_ids(&body);
    assert_eq!(got.len(), 5);
    assert_ne!(got, ids, "not in request order");

    let direct = h.get(&format!("/users/{DEMO_USER_UPN}")).await.json();
    let item = response(&body, "1");
    assert_eq!(item["status"], 200);
    assert_eq!(item["body"], direct);
    assert_eq!(
        item["headers"]["Content-Type"],
        "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8"
    );
    assert_eq!(
        keys(&response(&body, "2")["body"]),
        sorted(vec!["@odata.context", "@odata.type", "id", "displayName"])
    );
    // The nextLink of a batch item is absolute and points at this emulator.
    let next = response(&body, "3")["body"]["@odata.nextLink"]
        .as_str()
        .expect("nextLink");
    assert!(next.starts_with(&h.emu.graph_url()), "{next}");
    // ConsistencyLevel comes from the item's own headers; text bodies travel base64-encoded.
    assert_eq!(response(&body, "4")["status"], 200);
    assert_eq!(
        response(&body, "4")["headers"]["Content-Type"],
        "text/plain"
    );
    assert_eq!(response(&body, "4")["body"], "NjA=");
    assert_eq!(response(&body, "5")["status"], 400);
}

#[tokio::test]
async fn batch_items_get_the_same_auth_and_permission_checks() {
    let h = start().await;
    let reply = h
        .client
        .post(format!("{}/$batch", h.emu.graph_url()))
        .json(&json!({"requests": [get_item("1", "/users")]}))
        .send()
        .await
        .expect("batch");
    assert_eq!(
        reply.status(),
        StatusCode::UNAUTHORIZED,
        "the envelope needs a token"
    );
    let reply = h
        .batch(&json!({"requests": [
            get_item("1", "/me"),
            get_item("2", "/nowhere"),
            {"id": "3", "method": "DELETE", "url": "/users"},
            get_item("4", "/$batch"),
        ]}))
        .await;
    let body = reply.json();
    assert_eq!(response(&body, "1")["status"], 400);
    assert_eq!(
        response(&body, "2")["body"]["error"]["message"],
        "Resource not found for the segment 'nowhere'."
    );
    assert_eq!(response(&body, "3")["status"], 405);
    assert_eq!(
        response(&body, "4")["status"],
        405,
        "a nested $batch is not a GET target"
    );
}

#[tokio::test]
async fn stats_count_the_envelope_once_and_every_item() {
    let h = start().await;
    h.emu.emulator.reset_stats();
    h.get("/users?$top=1").await;
    let reply = h
        .batch(&json!({"requests": [
            get_item("1", &format!("/users/{DEMO_USER_UPN}/manager")),
            get_item("2", "/users/someone-else@kestrelridge.example/manager"),
            get_item("3", "/groups?$top=1"),
        ]}))
        .await;
    assert_eq!(reply.status, StatusCode::OK);

    let stats = h.emu.emulator.stats();
    assert_eq!(stats.graph_requests, 2);
    assert_eq!(stats.batch_items, 3);
    assert_eq!(stats.token_requests, 0);
    assert_eq!(stats.routes.get("GET /users"), Some(&1));
    assert_eq!(stats.routes.get("POST /$batch"), Some(&1));
    assert_eq!(
        stats.batch_item_routes.get("GET /users/{id}/manager"),
        Some(&2)
    );
    assert_eq!(stats.batch_item_routes.get("GET /groups"), Some(&1));

    // The same over the admin surface, plus the request log.
    let admin = |path: &str| format!("{}/_emulator/{path}", h.emu.base_url());
    let stats: Value = h
        .client
        .get(admin("stats"))
        .send()
        .await
        .expect("stats")
        .json()
        .await
        .expect("json");
    assert_eq!(stats["graph_requests"], 2);
    assert_eq!(stats["batch_items"], 3);
    let log: Vec<Value> = h
        .client
        .get(admin("requests"))
        .send()
        .await
        .expect("log")
        .json()
        .await
        .expect("json");
    assert_eq!(log.len(), 5);
    assert!(
        log.iter().any(|r| r["url"] == "/v1.0/users?$top=1"
            && r["in_batch"] == false
            && r["status"] == 200)
    );
    assert!(
        log.iter()
            .any(|r| r["url"] == "/v1.0/$batch" && r["method"] == "POST")
    );
    assert!(
        log.iter()
            .any(|r| r["url"] == "/groups?$top=1" && r["in_batch"] == true)
    );
    assert!(
        log.iter()
            .any(|r| r["status"] == 404 && r["in_batch"] == true)
    );
    assert!(log.iter().all(|r| r["client_request_id"].is_string()));

    let reset = h
        .client
        .post(admin("stats/reset"))
        .send()
        .await
        .expect("reset");
    assert_eq!(reset.status(), StatusCode::NO_CONTENT);
    let stats = h.emu.emulator.stats();
    assert_eq!((stats.graph_requests, stats.batch_items), (0, 0));
    assert!(stats.routes.is_empty());
    assert!(h.emu.emulator.requests().is_empty());
}
