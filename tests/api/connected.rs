//! `connected` callers: a user connects once in the browser (authorization code + PKCE),
//! the caller then acts as them; revocation on either side ends in RECONNECT_REQUIRED.

use std::time::Duration;

use base64::Engine;
use graph_emulator::{
    DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, DEMO_USER_UPN, Emulator, EmulatorConfig,
    RunningEmulator,
};
use m365_gateway::config::{CallerMode, Secret};
use reqwest::StatusCode;
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use serde_json::{Value, json};

use crate::helpers::{TestApp, loopback, real_mode_config, spawn_app_with, test_token};

struct Setup {
    emu: RunningEmulator,
    app: TestApp,
    /// A client that does not follow redirects, like a careful test browser.
    browser: reqwest::Client,
}

async fn setup(resources: &[&str]) -> Setup {
    // Short Graph tokens, so a revoked grant is noticed within a second.
    let emu = Emulator::spawn(
        EmulatorConfig {
            token_lifetime: Duration::from_secs(301),
            ..Default::default()
        },
        loopback(),
    )
    .await
    .unwrap();
    let mut config = real_mode_config(
        &emu,
        DEFAULT_CLIENT_ID,
        ("crm", CallerMode::Connected, &["users.read"], resources),
    );
    config.graph.client_secret = Some(Secret::new(DEFAULT_CLIENT_SECRET));
    let db = std::env::temp_dir().join(format!("m365gw-connected-{}.db", uuid::Uuid::new_v4()));
    config.store.url = format!("sqlite://{}", db.display());
    config.store.encryption.keys.insert(
        "k1".into(),
        base64::engine::general_purpose::STANDARD.encode([7u8; 32]),
    );
    config.store.encryption.active_key = Some("k1".into());
    let app = spawn_app_with(config).await;
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    Setup { emu, app, browser }
}

fn crm() -> String {
    test_token("crm", None)
}

/// The whole browser round trip; returns the final page.
async fn connect(s: &Setup, upn: &str) -> (StatusCode, String) {
    let link: Value = s
        .app
        .http
        .post(format!("{}/api/v1/connections", s.app.base))
        .bearer_auth(crm())
        .json(&json!({ "login_hint": upn }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let connect_url = link["connect_url"]
        .as_str()
        .expect("a connect link")
        .to_owned();
    let start = s.browser.get(&connect_url).send().await.unwrap();
    assert_eq!(start.status(), StatusCode::FOUND);
    let cookie = start.headers()[SET_COOKIE]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let authorize = start.headers()[LOCATION].to_str().unwrap().to_owned();
    assert!(authorize.starts_with(&s.emu.base_url()), "{authorize}");
    assert!(
        authorize.contains("code_challenge_method=S256"),
        "{authorize}"
    );
    let signed_in = s.browser.get(&authorize).send().await.unwrap();
    assert_eq!(signed_in.status(), StatusCode::FOUND);
    let callback = signed_in.headers()[LOCATION].to_str().unwrap().to_owned();
    assert!(
        callback.starts_with(&format!("{}/auth/callback?", s.app.base)),
        "{callback}"
    );
    let done = s
        .browser
        .get(&callback)
        .header(COOKIE, cookie)
        .send()
        .await
        .unwrap();
    let status = done.status();
    (status, done.text().await.unwrap())
}

async fn me_as(s: &Setup, upn: &str, query: &str) -> Value {
    let response = s
        .app
        .http
        .post(format!("{}/graphql", s.app.base))
        .bearer_auth(crm())
        .header("X-M365-Act-As", upn)
        .json(&json!({ "query": query }))
        .send()
        .await
        .unwrap();
    response.json().await.unwrap()
}

fn code(body: &Value) -> &str {
    body["errors"][0]["extensions"]["code"]
        .as_str()
        .unwrap_or("<none>")
}

#[tokio::test]
async fn a_user_connects_once_and_the_caller_then_acts_as_them() {
    let s = setup(&["*"]).await;
    let (status, page) = connect(&s, DEMO_USER_UPN).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(page.contains("is now connected"), "{page}");

    let body = me_as(&s, DEMO_USER_UPN, "{ me { userPrincipalName } }").await;
    assert_eq!(
        body["data"]["me"]["userPrincipalName"]
            .as_str()
            .unwrap()
            .to_lowercase(),
        DEMO_USER_UPN
    );
    // REST too: the same identity, acting as the connected user.
    let response = s
        .app
        .http
        .get(format!(
            "{}/api/v1/users/{DEMO_USER_UPN}/manager",
            s.app.base
        ))
        .bearer_auth(crm())
        .header("X-M365-Act-As", DEMO_USER_UPN)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        s.app.stats().await["token_requests_by_grant"]["refresh_token"]
            .as_u64()
            .unwrap()
            >= 1
    );

    let (status, list) = s.app.get_as(Some(&crm()), "/api/v1/connections").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        list["data"][0]["user_principal_name"]
            .as_str()
            .unwrap()
            .to_lowercase(),
        DEMO_USER_UPN
    );
    assert_eq!(list["data"][0]["revoked"], false);
}

#[tokio::test]
async fn a_revoked_connection_asks_for_reconnection_with_a_link() {
    let s = setup(&["*"]).await;
    assert_eq!(connect(&s, DEMO_USER_UPN).await.0, StatusCode::OK);
    let response = s
        .app
        .http
        .delete(format!("{}/api/v1/connections/{DEMO_USER_UPN}", s.app.base))
        .bearer_auth(crm())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let body = me_as(&s, DEMO_USER_UPN, "{ me { id } }").await;
    assert_eq!(code(&body), "RECONNECT_REQUIRED", "{body}");
    let link = body["errors"][0]["extensions"]["connectUrl"]
        .as_str()
        .unwrap();
    assert!(link.contains("/auth/connect?caller=crm"), "{link}");
}

#[tokio::test]
async fn a_grant_revoked_in_entra_ends_in_reconnect_required_not_a_500() {
    let s = setup(&["*"]).await;
    assert_eq!(connect(&s, DEMO_USER_UPN).await.0, StatusCode::OK);
    assert!(
        me_as(&s, DEMO_USER_UPN, "{ me { id } }")
            .await
            .get("errors")
            .is_none()
    );
    let revoked = s
        .app
        .http
        .post(format!(
            "{}/_emulator/users/{DEMO_USER_UPN}/revoke",
            s.emu.base_url()
        ))
        .send()
        .await
        .unwrap();
    assert!(revoked.status().is_success());
    // The cached Graph token lives one more second; then the refresh token is refused.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let body = me_as(&s, DEMO_USER_UPN, "{ me { displayName } }").await;
    assert_eq!(code(&body), "RECONNECT_REQUIRED", "{body}");
}

#[tokio::test]
async fn acting_as_a_user_who_never_connected_is_reconnect_required() {
    let s = setup(&["*"]).await;
    let body = me_as(&s, DEMO_USER_UPN, "{ me { id } }").await;
    assert_eq!(code(&body), "RECONNECT_REQUIRED", "{body}");
    // No act-as header at all: a clear input error.
    let (_, body) = s
        .app
        .graphql_as(Some(&crm()), "{ me { id } }", json!({}))
        .await;
    assert_eq!(code(&body), "BAD_USER_INPUT", "{body}");
}

#[tokio::test]
async fn a_callback_from_another_browser_or_a_replayed_state_is_refused() {
    let s = setup(&["*"]).await;
    let start = s
        .browser
        .get(format!(
            "{}/auth/connect?caller=crm&login_hint={DEMO_USER_UPN}",
            s.app.base
        ))
        .send()
        .await
        .unwrap();
    let cookie = start.headers()[SET_COOKIE]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let authorize = start.headers()[LOCATION].to_str().unwrap().to_owned();
    let signed_in = s.browser.get(&authorize).send().await.unwrap();
    let callback = signed_in.headers()[LOCATION].to_str().unwrap().to_owned();
    // Without the cookie (login CSRF): refused, and nothing is stored.
    let forged = s.browser.get(&callback).send().await.unwrap();
    assert_eq!(forged.status(), StatusCode::BAD_REQUEST);
    let ok = s
        .browser
        .get(&callback)
        .header(COOKIE, &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), StatusCode::OK);
    let replay = s
        .browser
        .get(&callback)
        .header(COOKIE, &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(replay.status(), StatusCode::BAD_REQUEST);
    // An unknown caller gets no sign-in at all.
    let unknown = s
        .browser
        .get(format!("{}/auth/connect?caller=nobody", s.app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn a_user_outside_the_callers_resources_cannot_be_connected_or_acted_as() {
    let s = setup(&["ceo-only@kestrelridge.example"]).await;
    let (status, page) = connect(&s, DEMO_USER_UPN).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{page}");
    let body = me_as(&s, DEMO_USER_UPN, "{ me { id } }").await;
    assert_eq!(code(&body), "FORBIDDEN", "{body}");
    let (_, list) = s.app.get_as(Some(&crm()), "/api/v1/connections").await;
    assert!(
        list["data"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["revoked"] == true),
        "{list}"
    );
}
