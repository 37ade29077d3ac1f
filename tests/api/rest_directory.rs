//! The directory through REST: every route, paging, the one error body.

use std::collections::HashSet;

use graph_emulator::DEMO_USER_UPN;
use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::spawn_app;

#[tokio::test]
async fn users_page_through_the_whole_directory_with_limit_and_cursor() {
    let app = spawn_app().await;
    let mut seen = HashSet::new();
    let mut path = "/api/v1/users?limit=9&count=true".to_owned();
    let mut total = None;
    for _ in 0..50 {
        let (status, body) = app.get(&path).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        total = total.or(body["total_count"].as_u64());
        for user in body["data"].as_array().unwrap() {
            assert!(user["display_name"].is_string(), "{user}");
            assert!(seen.insert(user["id"].as_str().unwrap().to_owned()));
        }
        match body["next_cursor"].as_str() {
            Some(cursor) => path = format!("/api/v1/users?limit=9&cursor={cursor}"),
            None => break,
        }
    }
    assert!(seen.len() >= 60);
    assert_eq!(total, Some(seen.len() as u64));
}

#[tokio::test]
async fn a_user_their_manager_reports_and_groups_are_reachable() {
    let app = spawn_app().await;
    let (status, me) = app.get(&format!("/api/v1/users/{DEMO_USER_UPN}")).await;
    assert_eq!(status, StatusCode::OK, "{me}");
    for field in [
        "id",
        "display_name",
        "given_name",
        "surname",
        "mail",
        "user_principal_name",
        "job_title",
        "department",
        "office_location",
        "business_phones",
        "mobile_phone",
    ] {
        assert!(!me[field].is_null(), "{field} missing: {me}");
    }
    let id = me["id"].as_str().unwrap();

    let (status, manager) = app.get(&format!("/api/v1/users/{id}/manager")).await;
    assert_eq!(status, StatusCode::OK, "{manager}");
    assert!(manager["display_name"].is_string());

    let (status, reports) = app
        .get(&format!("/api/v1/users/{id}/direct-reports?limit=2"))
        .await;
    assert_eq!(status, StatusCode::OK, "{reports}");
    assert!(!reports["data"].as_array().unwrap().is_empty());

    let (status, groups) = app.get(&format!("/api/v1/users/{id}/member-of")).await;
    assert_eq!(status, StatusCode::OK, "{groups}");
    let group = &groups["data"][0];
    let group_id = group["id"].as_str().unwrap();

    let (status, one) = app.get(&format!("/api/v1/groups/{group_id}")).await;
    assert_eq!(status, StatusCode::OK, "{one}");
    assert_eq!(&one, group);

    let (status, members) = app
        .get(&format!("/api/v1/groups/{group_id}/members?limit=100"))
        .await;
    assert_eq!(status, StatusCode::OK, "{members}");
    assert!(
        members["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["id"] == me["id"])
    );
}

#[tokio::test]
async fn the_top_of_the_organisation_has_no_manager() {
    let app = spawn_app().await;
    // Walk up from the demo user.
    let (_, mut user) = app.get(&format!("/api/v1/users/{DEMO_USER_UPN}")).await;
    loop {
        let id = user["id"].as_str().unwrap().to_owned();
        let (status, body) = app.get(&format!("/api/v1/users/{id}/manager")).await;
        if status == StatusCode::NOT_FOUND {
            assert_eq!(body["error"]["code"], "NOT_FOUND");
            assert!(
                body["error"]["message"]
                    .as_str()
                    .unwrap()
                    .contains("no manager")
            );
            break;
        }
        assert_eq!(status, StatusCode::OK);
        user = body;
    }
}

fn assert_error(status: StatusCode, body: &Value, expected: StatusCode, code: &str) {
    assert_eq!(status, expected, "{body}");
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(body["error"]["message"].is_string(), "{body}");
    assert!(
        !body["error"]["request_id"].as_str().unwrap().is_empty(),
        "{body}"
    );
}

#[tokio::test]
async fn every_error_has_the_one_body_shape() {
    let app = spawn_app().await;
    let (s, b) = app.get("/api/v1/users/nobody@nowhere.example").await;
    assert_error(s, &b, StatusCode::NOT_FOUND, "NOT_FOUND");
    let (s, b) = app
        .get("/api/v1/groups/00000000-0000-0000-0000-000000000000")
        .await;
    assert_error(s, &b, StatusCode::NOT_FOUND, "NOT_FOUND");
    let (s, b) = app.get("/api/v1/users?limit=0").await;
    assert_error(s, &b, StatusCode::BAD_REQUEST, "BAD_USER_INPUT");
    let (s, b) = app.get("/api/v1/users?limit=abc").await;
    assert_error(s, &b, StatusCode::BAD_REQUEST, "BAD_USER_INPUT");
    let (s, b) = app.get("/api/v1/users?cursor=bm9wZQ").await;
    assert_error(s, &b, StatusCode::BAD_REQUEST, "BAD_USER_INPUT");
    let (s, b) = app.get("/api/v1/no-such-route").await;
    assert_error(s, &b, StatusCode::NOT_FOUND, "NOT_FOUND");
    let (s, b) = app.get_as(None, "/api/v1/users").await;
    assert_error(s, &b, StatusCode::UNAUTHORIZED, "UNAUTHENTICATED");
}

#[tokio::test]
async fn the_request_id_in_an_error_is_the_one_in_the_response_header() {
    let app = spawn_app().await;
    let response = app
        .http
        .get(format!("{}/api/v1/users/nobody@nowhere.example", app.base))
        .bearer_auth(&app.token)
        .header("x-request-id", "trace-me-123")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-request-id"], "trace-me-123");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["request_id"], "trace-me-123");
}

#[tokio::test]
async fn path_ids_cannot_escape_their_segment() {
    let app = spawn_app().await;
    app.reset_stats().await;
    let (status, body) = app.get("/api/v1/users/..%2Fgroups").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let urls = app.recorded_urls().await;
    assert!(urls.iter().all(|u| !u.contains("/groups")), "{urls:?}");
}
