//! Graph's authentication and permission checks, headers and generic errors.

mod common;

use std::time::Duration;

use common::*;
use graph_emulator::{AppRegistration, DEFAULT_CLIENT_ID, DEMO_USER_UPN, Emulator, EmulatorConfig};
use reqwest::StatusCode;
use serde_json::Value;

const WWW_AUTHENTICATE: &str = "Bearer realm=\"\", authorization_uri=\"https://login.microsoftonline.com/common/oauth2/authorize\", client_id=\"00000003-0000-0000-c000-000000000000\"";

/// Checks the Graph error body shape of graph-protocol.md §4.
fn assert_graph_error(reply: &Reply, status: StatusCode, code: &str, message: &str) {
    assert_eq!(reply.status, status, "{}", reply.text);
    let body = reply.json();
    assert_eq!(keys(&body), vec!["error"]);
    assert_eq!(
        keys(&body["error"]),
        sorted(vec!["code", "message", "innerError"])
    );
    assert_eq!(body["error"]["code"], code, "{}", reply.text);
    assert_eq!(body["error"]["message"], message, "{}", reply.text);
    let inner = &body["error"]["innerError"];
    assert_eq!(
        keys(inner),
        sorted(vec!["date", "request-id", "client-request-id"])
    );
    let date = inner["date"].as_str().expect("date");
    assert_eq!(date.len(), "2021-04-20T17:22:30".len(), "{date}");
    assert!(!date.ends_with('Z'));
    assert_eq!(inner["request-id"].as_str(), reply.header("request-id"));
    assert_eq!(
        inner["client-request-id"].as_str(),
        reply.header("client-request-id")
    );
}

#[tokio::test]
async fn a_graph_request_without_a_token_gets_401_access_token_is_empty() {
    let h = start().await;
    let reply = h.get_with_token("/users", None).await;
    assert_graph_error(
        &reply,
        StatusCode::UNAUTHORIZED,
        "InvalidAuthenticationToken",
        "Access token is empty.",
    );
    assert_eq!(reply.header("www-authenticate"), Some(WWW_AUTHENTICATE));
    // Authentication comes before routing.
    let reply = h.get_with_token("/nonsense", None).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_malformed_token_gets_401_compact_token_parsing_failed() {
    let h = start().await;
    let reply = h.get_with_token("/users", Some("not-a-jwt")).await;
    assert_graph_error(
        &reply,
        StatusCode::UNAUTHORIZED,
        "InvalidAuthenticationToken",
        "CompactToken parsing failed with error code: 80049217",
    );
    assert_eq!(reply.header("www-authenticate"), Some(WWW_AUTHENTICATE));
}

#[tokio::test]
async fn a_token_signed_by_another_emulator_is_rejected() {
    let h = start().await;
    let other = start().await;
    let reply = h.get_with_token("/users", Some(&other.token)).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{}", reply.text);
    assert_eq!(reply.error_code(), "InvalidAuthenticationToken");
}

#[tokio::test]
async fn an_expired_token_gets_401_access_token_has_expired() {
    let h = start_with(EmulatorConfig {
        token_lifetime: Duration::from_secs(1),
        ..EmulatorConfig::default()
    })
    .await;
    assert_eq!(h.get("/users?$top=1").await.status, StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let reply = h.get("/users?$top=1").await;
    assert_graph_error(
        &reply,
        StatusCode::UNAUTHORIZED,
        "InvalidAuthenticationToken",
        "Access token has expired or is not yet valid.",
    );
}

#[tokio::test]
async fn an_app_without_user_read_all_gets_403_on_users() {
    let config = EmulatorConfig {
        apps: vec![
            AppRegistration::default_gateway_app(),
            AppRegistration {
                client_id: "33333333-4444-5555-6666-777777777777".into(),
                client_secret: "mail-only".into(),
                display_name: "mail only".into(),
                roles: vec!["Mail.Send".into(), "Group.Read.All".into()],
                ..AppRegistration::default()
            },
        ],
        ..EmulatorConfig::default()
    };
    let h = start_with(config).await;
    let token = fetch_token(
        &h.client,
        &h.emu.base_url(),
        "33333333-4444-5555-6666-777777777777",
        "mail-only",
    )
    .await;
    let reply = h.get_with_token("/users", Some(&token)).await;
    assert_graph_error(
        &reply,
        StatusCode::FORBIDDEN,
        "Authorization_RequestDenied",
        "Insufficient privileges to complete the operation.",
    );
    let reply = h
        .get_with_token(&format!("/users/{DEMO_USER_UPN}/manager"), Some(&token))
        .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    // Group.Read.All still reads groups, and group membership of a user.
    assert_eq!(
        h.get_with_token("/groups", Some(&token)).await.status,
        StatusCode::OK
    );
    assert_eq!(
        h.get_with_token(&format!("/users/{DEMO_USER_UPN}/memberOf"), Some(&token))
            .await
            .status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn an_app_with_only_user_read_all_gets_403_on_groups() {
    let config = EmulatorConfig {
        apps: vec![AppRegistration {
            client_id: DEFAULT_CLIENT_ID.into(),
            client_secret: "x".into(),
            display_name: "users only".into(),
            roles: vec!["User.Read.All".into()],
            ..AppRegistration::default()
        }],
        ..EmulatorConfig::default()
    };
    let emu = Emulator::spawn(config, loopback()).await.expect("spawn");
    let client = reqwest::Client::new();
    let token = fetch_token(&client, &emu.base_url(), DEFAULT_CLIENT_ID, "x").await;
    let get = |path: &str| {
        client
            .get(format!("{}{path}", emu.graph_url()))
            .bearer_auth(&token)
            .send()
    };
    assert_eq!(get("/users").await.expect("users").status(), StatusCode::OK);
    assert_eq!(
        get("/groups").await.expect("groups").status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        get("/directoryRoles").await.expect("roles").status(),
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn me_with_an_app_token_is_a_400() {
    let h = start().await;
    let reply = h.get("/me").await;
    assert_graph_error(
        &reply,
        StatusCode::BAD_REQUEST,
        "BadRequest",
        "/me request is only valid with delegated authentication flow.",
    );
    assert_eq!(h.get("/me/manager").await.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn me_with_a_delegated_token_is_the_signed_in_user() {
    let h = start().await;
    let token = h
        .emu
        .emulator
        .issue_delegated_token(DEFAULT_CLIENT_ID, DEMO_USER_UPN, &["User.Read"])
        .expect("delegated token");
    let reply = h.get_with_token("/me", Some(&token)).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.json()["userPrincipalName"], DEMO_USER_UPN);
    assert_eq!(
        h.get_with_token("/me/manager", Some(&token)).await.status,
        StatusCode::OK
    );
    // User.Read alone does not list the directory.
    let reply = h.get_with_token("/users", Some(&token)).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN, "{}", reply.text);
}

#[tokio::test]
async fn graph_responses_carry_odata_headers_and_echo_the_client_request_id() {
    let h = start().await;
    let reply = h
        .get_with(
            "/users?$top=1",
            &[("client-request-id", "7b5d4c1e-0000-4000-8000-000000000001")],
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(
        reply.header("content-type"),
        Some(
            "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8"
        )
    );
    assert_eq!(reply.header("odata-version"), Some("4.0"));
    assert_eq!(
        reply.header("client-request-id"),
        Some("7b5d4c1e-0000-4000-8000-000000000001")
    );
    let request_id = reply.header("request-id").expect("request-id");
    assert_eq!(request_id.len(), 36);
    // Without one, client-request-id is generated (as the request id).
    let reply = h.get("/users?$top=1").await;
    assert_eq!(
        reply.header("client-request-id"),
        reply.header("request-id")
    );
}

#[tokio::test]
async fn unknown_segments_and_wrong_methods_get_graph_errors() {
    let h = start().await;
    let reply = h.get("/usres").await;
    assert_graph_error(
        &reply,
        StatusCode::BAD_REQUEST,
        "BadRequest",
        "Resource not found for the segment 'usres'.",
    );
    let reply = h.get(&format!("/users/{DEMO_USER_UPN}/photos")).await;
    assert_eq!(
        reply.error_message(),
        "Resource not found for the segment 'photos'."
    );

    let response = h
        .client
        .delete(format!("{}/users", h.emu.graph_url()))
        .bearer_auth(&h.token)
        .send()
        .await
        .expect("delete");
    let reply = common::reply(response).await;
    assert_graph_error(
        &reply,
        StatusCode::METHOD_NOT_ALLOWED,
        "Request_BadRequest",
        "Specified HTTP method is not allowed for the request target.",
    );

    let response = h
        .client
        .get(format!("{}/beta/users", h.emu.base_url()))
        .bearer_auth(&h.token)
        .send()
        .await
        .expect("beta");
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["error"]["code"], "BadRequest");
}
