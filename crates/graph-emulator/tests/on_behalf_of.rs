//! The on-behalf-of grant: the gateway (middle tier, `DEFAULT_CLIENT_ID`) exchanges a
//! user's token for its API (`api://m365-gateway`) for a Graph token.

mod common;

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use common::*;
use graph_emulator::{
    AppRegistration, CONSENT_USER_UPN, DEFAULT_API_URI, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET,
    DEFAULT_TENANT_ID, DEMO_USER_UPN, Emulator, EmulatorConfig, MFA_POLICY_ID, MFA_USER_UPN,
    RunningEmulator,
};
use jsonwebtoken::Algorithm;
use reqwest::StatusCode;
use serde_json::Value;

/// The frontend that signs users in and calls the gateway's API.
const SPA: &str = "0d6f9b2a-5c4e-4f1a-8b3d-7e9c1a2b3c4d";

fn config() -> EmulatorConfig {
    EmulatorConfig {
        apps: vec![
            AppRegistration::default_gateway_app().with_certificate(TEST_CERT_PEM),
            AppRegistration::public_client(SPA, "gateway frontend", ["http://localhost/spa"]),
        ],
        ..EmulatorConfig::default()
    }
}

async fn start_obo() -> Harness {
    start_with(config()).await
}

/// A user's token for the gateway's API, as the frontend would hold it.
fn api_token_for(emu: &RunningEmulator, upn: &str) -> String {
    emu.emulator
        .issue_user_token(SPA, upn, DEFAULT_CLIENT_ID, &["access_as_user"])
        .expect("user token")
}

async fn obo(emu: &RunningEmulator, assertion: &str, scope: &str) -> Reply {
    token_request(
        emu,
        DEFAULT_TENANT_ID,
        &[
            ("grant_type", OBO_GRANT),
            ("client_id", DEFAULT_CLIENT_ID),
            ("client_secret", DEFAULT_CLIENT_SECRET),
            ("assertion", assertion),
            ("scope", scope),
            ("requested_token_use", "on_behalf_of"),
        ],
    )
    .await
}

#[tokio::test]
async fn obo_exchanges_a_user_token_for_a_graph_token_with_the_requested_scp_and_oid() {
    let h = start_obo().await;
    let demo_id = h.user_id(DEMO_USER_UPN).await;
    let assertion = api_token_for(&h.emu, DEMO_USER_UPN);
    let reply = obo(
        &h.emu,
        &assertion,
        "https://graph.microsoft.com/User.Read https://graph.microsoft.com/Mail.Read offline_access",
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let body = reply.json();
    assert_eq!(
        keys(&body),
        sorted(vec![
            "token_type",
            "scope",
            "expires_in",
            "ext_expires_in",
            "access_token",
            "refresh_token"
        ])
    );
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 3599);
    assert_eq!(
        body["scope"],
        "https://graph.microsoft.com/User.Read https://graph.microsoft.com/Mail.Read offline_access"
    );
    let token = body["access_token"].as_str().expect("token");
    let header = jwt_part(token, 0);
    assert_eq!(header["kid"], header["x5t"]);
    let c = claims(token);
    assert_eq!(c["aud"], "https://graph.microsoft.com");
    assert_eq!(
        c["iss"],
        format!("https://sts.windows.net/{DEFAULT_TENANT_ID}/")
    );
    assert_eq!(c["ver"], "1.0");
    assert_eq!(c["scp"], "User.Read Mail.Read");
    assert_eq!(c["oid"], demo_id);
    assert_eq!(c["upn"], DEMO_USER_UPN);
    assert_eq!(c["name"], "Tamsin Greaves");
    assert_eq!(c["given_name"], "Tamsin");
    assert_eq!(c["family_name"], "Greaves");
    assert_eq!(c["tid"], DEFAULT_TENANT_ID);
    assert_eq!(c["appid"], DEFAULT_CLIENT_ID);
    assert_eq!(c["appidacr"], "1");
    assert_eq!(c["idtyp"], "user");
    assert!(c.get("roles").is_none());

    // Graph takes it as the signed-in user.
    let me = h.get_with_token("/me", Some(token)).await;
    assert_eq!(me.status, StatusCode::OK, "{}", me.text);
    assert_eq!(me.json()["id"], demo_id);

    // Without offline_access there is no refresh token.
    let reply = obo(&h.emu, &assertion, "https://graph.microsoft.com/User.Read").await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert!(reply.json().get("refresh_token").is_none());
}

#[tokio::test]
async fn obo_with_graph_default_grants_every_known_delegated_scope() {
    let h = start_obo().await;
    let assertion = api_token_for(&h.emu, DEMO_USER_UPN);
    let reply = obo(&h.emu, &assertion, "https://graph.microsoft.com/.default").await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let token = reply.json()["access_token"]
        .as_str()
        .expect("token")
        .to_string();
    let scp = claims(&token)["scp"].as_str().expect("scp").to_string();
    for scope in [
        "User.Read",
        "User.Read.All",
        "GroupMember.Read.All",
        "Mail.Read",
    ] {
        assert!(
            scp.split(' ').any(|s| s == scope),
            "{scope} missing in {scp}"
        );
    }
    let users = h.get_with_token("/users?$top=2", Some(&token)).await;
    assert_eq!(users.status, StatusCode::OK, "{}", users.text);
}

#[tokio::test]
async fn obo_with_a_certificate_credential_records_appidacr_2_and_its_refresh_token_works() {
    let h = start_obo().await;
    let assertion = api_token_for(&h.emu, DEMO_USER_UPN);
    let client_assertion = sign_jwt(
        Algorithm::RS256,
        Thumb::X5t(thumbprints(TEST_CERT_PEM).0),
        TEST_KEY_PEM,
        &assertion_claims(&h.emu, DEFAULT_CLIENT_ID, 300),
    );
    let body = token_ok(
        &h.emu,
        &[
            ("grant_type", OBO_GRANT),
            ("client_id", DEFAULT_CLIENT_ID),
            ("client_assertion_type", JWT_BEARER_ASSERTION_TYPE),
            ("client_assertion", &client_assertion),
            ("assertion", &assertion),
            ("scope", "User.Read offline_access"),
            ("requested_token_use", "on_behalf_of"),
        ],
    )
    .await;
    assert_eq!(
        claims(body["access_token"].as_str().expect("at"))["appidacr"],
        "2"
    );
    // The middle tier redeems its refresh token with its secret.
    let refreshed = token_ok(
        &h.emu,
        &[
            ("grant_type", "refresh_token"),
            ("client_id", DEFAULT_CLIENT_ID),
            ("client_secret", DEFAULT_CLIENT_SECRET),
            ("refresh_token", body["refresh_token"].as_str().expect("rt")),
            (
                "scope",
                "https://graph.microsoft.com/User.Read offline_access",
            ),
        ],
    )
    .await;
    assert_eq!(
        claims(refreshed["access_token"].as_str().expect("at"))["scp"],
        "User.Read"
    );
}

#[tokio::test]
async fn obo_refuses_an_app_only_token_with_aadsts50013() {
    let h = start_obo().await;
    // An app-only token for the gateway's own API: right audience, but no user.
    let body = token_ok(
        &h.emu,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", DEFAULT_CLIENT_ID),
            ("client_secret", DEFAULT_CLIENT_SECRET),
            ("scope", &format!("{DEFAULT_API_URI}/.default")),
        ],
    )
    .await;
    let app_token = body["access_token"].as_str().expect("token");
    let c = claims(app_token);
    assert_eq!(c["aud"], DEFAULT_CLIENT_ID);
    assert_eq!(c["idtyp"], "app");
    assert_eq!(c["ver"], "2.0");
    let reply = obo(&h.emu, app_token, "User.Read").await;
    assert_aadsts(&reply, StatusCode::BAD_REQUEST, "invalid_grant", 50013);
}

#[tokio::test]
async fn obo_refuses_an_assertion_for_another_audience_with_aadsts500131() {
    let h = start_obo().await;
    // A Graph token is not meant for the gateway.
    let graph_token = h
        .emu
        .emulator
        .issue_delegated_token(SPA, DEMO_USER_UPN, &["User.Read"])
        .expect("token");
    let reply = obo(&h.emu, &graph_token, "User.Read").await;
    let body = assert_aadsts(&reply, StatusCode::BAD_REQUEST, "invalid_grant", 500131);
    assert!(
        aadsts_message(&body).starts_with(
            "Assertion audience does not match the Client app presenting the assertion."
        ),
        "{body}"
    );
}

#[tokio::test]
async fn obo_refuses_an_expired_assertion_with_aadsts500133() {
    let h = start_with(EmulatorConfig {
        token_lifetime: Duration::from_secs(1),
        ..config()
    })
    .await;
    let assertion = api_token_for(&h.emu, DEMO_USER_UPN);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let reply = obo(&h.emu, &assertion, "User.Read").await;
    assert_aadsts(&reply, StatusCode::BAD_REQUEST, "invalid_grant", 500133);
}

#[tokio::test]
async fn obo_refuses_a_malformed_or_foreign_assertion_with_aadsts50013() {
    let h = start_obo().await;
    let reply = obo(&h.emu, "not-a-jwt", "User.Read").await;
    assert_aadsts(&reply, StatusCode::BAD_REQUEST, "invalid_grant", 50013);
    let other = Emulator::spawn(config(), loopback()).await.expect("spawn");
    let foreign = api_token_for(&other, DEMO_USER_UPN);
    let reply = obo(&h.emu, &foreign, "User.Read").await;
    assert_aadsts(&reply, StatusCode::BAD_REQUEST, "invalid_grant", 50013);
}

#[tokio::test]
async fn obo_for_the_mfa_user_gets_interaction_required_with_a_claims_challenge() {
    let h = start_obo().await;
    let assertion = api_token_for(&h.emu, MFA_USER_UPN);
    let reply = obo(&h.emu, &assertion, "https://graph.microsoft.com/User.Read").await;
    let body = assert_aadsts(
        &reply,
        StatusCode::BAD_REQUEST,
        "interaction_required",
        50079,
    );
    assert!(
        aadsts_message(&body).starts_with("Due to a configuration change made by your administrator, or because you moved to a new location, you must enroll in multifactor authentication to access '00000003-0000-0000-c000-000000000000'."),
        "{body}"
    );
    let claims_str = body["claims"].as_str().expect("claims is a string");
    // The middle tier base64-encodes it into its own WWW-Authenticate challenge.
    let round_trip = STANDARD
        .decode(STANDARD.encode(claims_str))
        .expect("base64");
    let challenge: Value = serde_json::from_slice(&round_trip).expect("claims JSON");
    assert_eq!(
        challenge,
        serde_json::json!({"access_token": {"capolids": {"essential": true, "values": [MFA_POLICY_ID]}}})
    );
    // The demo user is not affected.
    let ok = obo(&h.emu, &api_token_for(&h.emu, DEMO_USER_UPN), "User.Read").await;
    assert_eq!(ok.status, StatusCode::OK);
}

#[tokio::test]
async fn obo_for_the_consent_user_gets_invalid_grant_aadsts65001_consent_required() {
    let h = start_obo().await;
    let assertion = api_token_for(&h.emu, CONSENT_USER_UPN);
    let reply = obo(&h.emu, &assertion, "User.Read").await;
    let body = assert_aadsts(&reply, StatusCode::BAD_REQUEST, "invalid_grant", 65001);
    assert_eq!(body["suberror"], "consent_required");
    assert!(
        aadsts_message(&body).starts_with(&format!(
            "The user or administrator has not consented to use the application with ID '{DEFAULT_CLIENT_ID}' named 'm365-gateway'."
        )),
        "{body}"
    );
}

#[tokio::test]
async fn obo_needs_requested_token_use_and_a_confidential_client() {
    let h = start_obo().await;
    let assertion = api_token_for(&h.emu, DEMO_USER_UPN);
    let reply = token_request(
        &h.emu,
        DEFAULT_TENANT_ID,
        &[
            ("grant_type", OBO_GRANT),
            ("client_id", DEFAULT_CLIENT_ID),
            ("client_secret", DEFAULT_CLIENT_SECRET),
            ("assertion", &assertion),
            ("scope", "User.Read"),
        ],
    )
    .await;
    assert_aadsts(&reply, StatusCode::BAD_REQUEST, "invalid_request", 900144);
    // A public client has no credential to present.
    let reply = token_request(
        &h.emu,
        DEFAULT_TENANT_ID,
        &[
            ("grant_type", OBO_GRANT),
            ("client_id", SPA),
            ("assertion", &assertion),
            ("scope", "User.Read"),
            ("requested_token_use", "on_behalf_of"),
        ],
    )
    .await;
    assert_aadsts(&reply, StatusCode::UNAUTHORIZED, "invalid_client", 7000218);
}
