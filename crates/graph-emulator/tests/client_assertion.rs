//! Certificate credentials: `client_assertion` JWTs (RS256 + `x5t`, PS256 + `x5t#S256`)
//! signed with the test-only key of tests/fixtures/certs.

mod common;

use common::*;
use graph_emulator::{
    AppRegistration, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, DEFAULT_TENANT_ID, Emulator,
    EmulatorConfig, RunningEmulator, TENANT_DOMAIN,
};
use jsonwebtoken::Algorithm;
use reqwest::StatusCode;
use serde_json::Value;

const CERT_APP: &str = "7c0f3a55-2b1e-4d8c-9f6a-3e5d1c2b4a10";

/// The default gateway app with the test certificate registered, plus a certificate-only app.
async fn start_with_cert() -> RunningEmulator {
    let config = EmulatorConfig {
        apps: vec![
            AppRegistration::default_gateway_app().with_certificate(TEST_CERT_PEM),
            AppRegistration::confidential(CERT_APP, "", "cert only", ["User.Read.All"])
                .with_certificate(TEST_CERT_PEM),
        ],
        ..EmulatorConfig::default()
    };
    Emulator::spawn(config, loopback()).await.expect("spawn")
}

fn x5t() -> Thumb {
    Thumb::X5t(thumbprints(TEST_CERT_PEM).0)
}

fn x5t_s256() -> Thumb {
    Thumb::X5tS256(thumbprints(TEST_CERT_PEM).1)
}

async fn client_credentials_with(emu: &RunningEmulator, client_id: &str, assertion: &str) -> Reply {
    token_request(
        emu,
        DEFAULT_TENANT_ID,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", client_id),
            ("client_assertion_type", JWT_BEARER_ASSERTION_TYPE),
            ("client_assertion", assertion),
            ("scope", GRAPH_SCOPE),
        ],
    )
    .await
}

#[tokio::test]
async fn an_rs256_assertion_with_x5t_gets_an_app_token_with_appidacr_2() {
    let emu = start_with_cert().await;
    let assertion = sign_jwt(
        Algorithm::RS256,
        x5t(),
        TEST_KEY_PEM,
        &assertion_claims(&emu, CERT_APP, 300),
    );
    let reply = client_credentials_with(&emu, CERT_APP, &assertion).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let token = reply.json()["access_token"]
        .as_str()
        .expect("token")
        .to_string();
    let c = claims(&token);
    assert_eq!(c["appid"], CERT_APP);
    assert_eq!(c["appidacr"], "2");
    assert_eq!(c["roles"], serde_json::json!(["User.Read.All"]));
    // Graph accepts it.
    let client = reqwest::Client::new();
    let users = client
        .get(format!("{}/users?$top=1", emu.graph_url()))
        .bearer_auth(&token)
        .send()
        .await
        .expect("graph");
    assert_eq!(users.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_ps256_assertion_with_x5t_s256_authenticates_and_client_id_may_be_left_out() {
    let emu = start_with_cert().await;
    let assertion = sign_jwt(
        Algorithm::PS256,
        x5t_s256(),
        TEST_KEY_PEM,
        &assertion_claims(&emu, DEFAULT_CLIENT_ID, 300),
    );
    let reply = client_credentials_with(&emu, DEFAULT_CLIENT_ID, &assertion).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(
        claims(reply.json()["access_token"].as_str().expect("token"))["appidacr"],
        "2"
    );
    // RFC 7523: `sub` names the client when `client_id` is absent.
    let assertion = sign_jwt(
        Algorithm::PS256,
        x5t_s256(),
        TEST_KEY_PEM,
        &assertion_claims(&emu, DEFAULT_CLIENT_ID, 300),
    );
    let reply = token_request(
        &emu,
        DEFAULT_TENANT_ID,
        &[
            ("grant_type", "client_credentials"),
            ("client_assertion_type", JWT_BEARER_ASSERTION_TYPE),
            ("client_assertion", &assertion),
            ("scope", GRAPH_SCOPE),
        ],
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
}

#[tokio::test]
async fn the_assertion_audience_may_name_the_tenant_by_domain() {
    let emu = start_with_cert().await;
    let mut c = assertion_claims(&emu, CERT_APP, 300);
    c["aud"] = Value::from(format!(
        "{}/{TENANT_DOMAIN}/oauth2/v2.0/token",
        emu.base_url()
    ));
    let assertion = sign_jwt(Algorithm::RS256, x5t(), TEST_KEY_PEM, &c);
    let reply = client_credentials_with(&emu, CERT_APP, &assertion).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
}

#[tokio::test]
async fn an_expired_assertion_gets_aadsts700024() {
    let emu = start_with_cert().await;
    let mut c = assertion_claims(&emu, CERT_APP, 300);
    let now = c["nbf"].as_i64().expect("nbf");
    c["nbf"] = Value::from(now - 1200);
    c["exp"] = Value::from(now - 600);
    let assertion = sign_jwt(Algorithm::RS256, x5t(), TEST_KEY_PEM, &c);
    let reply = client_credentials_with(&emu, CERT_APP, &assertion).await;
    let body = assert_aadsts(&reply, StatusCode::UNAUTHORIZED, "invalid_client", 700024);
    assert!(
        aadsts_message(&body).starts_with("Client assertion is not within its valid time range."),
        "{body}"
    );
}

#[tokio::test]
async fn an_unknown_thumbprint_gets_aadsts700027() {
    let emu = start_with_cert().await;
    let assertion = sign_jwt(
        Algorithm::RS256,
        Thumb::X5t("AAAAAAAAAAAAAAAAAAAAAAAAAAA".into()),
        TEST_KEY_PEM,
        &assertion_claims(&emu, CERT_APP, 300),
    );
    let reply = client_credentials_with(&emu, CERT_APP, &assertion).await;
    assert_aadsts(&reply, StatusCode::UNAUTHORIZED, "invalid_client", 700027);
    // The certificate of one app does not authenticate another.
    let emu2 = Emulator::spawn(EmulatorConfig::default(), loopback())
        .await
        .expect("spawn");
    let assertion = sign_jwt(
        Algorithm::RS256,
        x5t(),
        TEST_KEY_PEM,
        &assertion_claims(&emu2, DEFAULT_CLIENT_ID, 300),
    );
    let reply = client_credentials_with(&emu2, DEFAULT_CLIENT_ID, &assertion).await;
    assert_aadsts(&reply, StatusCode::UNAUTHORIZED, "invalid_client", 700027);
}

#[tokio::test]
async fn a_signature_by_another_key_fails_signature_validation_with_aadsts700027() {
    let emu = start_with_cert().await;
    let assertion = sign_jwt(
        Algorithm::RS256,
        x5t(),
        &stray_key_pem(),
        &assertion_claims(&emu, CERT_APP, 300),
    );
    let reply = client_credentials_with(&emu, CERT_APP, &assertion).await;
    let body = assert_aadsts(&reply, StatusCode::UNAUTHORIZED, "invalid_client", 700027);
    assert!(
        aadsts_message(&body).starts_with("Client assertion failed signature validation."),
        "{body}"
    );
}

#[tokio::test]
async fn a_replayed_jti_gets_invalid_client_aadsts50027() {
    let emu = start_with_cert().await;
    let assertion = sign_jwt(
        Algorithm::RS256,
        x5t(),
        TEST_KEY_PEM,
        &assertion_claims(&emu, CERT_APP, 300),
    );
    let first = client_credentials_with(&emu, CERT_APP, &assertion).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.text);
    let again = client_credentials_with(&emu, CERT_APP, &assertion).await;
    let body = assert_aadsts(&again, StatusCode::UNAUTHORIZED, "invalid_client", 50027);
    assert!(aadsts_message(&body).contains("jti"), "{body}");
}

#[tokio::test]
async fn a_wrong_audience_gets_aadsts700023_and_a_wrong_issuer_aadsts700021() {
    let emu = start_with_cert().await;
    let mut c = assertion_claims(&emu, CERT_APP, 300);
    c["aud"] = Value::from(format!(
        "https://login.microsoftonline.com/{DEFAULT_TENANT_ID}/oauth2/v2.0/token"
    ));
    let assertion = sign_jwt(Algorithm::RS256, x5t(), TEST_KEY_PEM, &c);
    let reply = client_credentials_with(&emu, CERT_APP, &assertion).await;
    assert_aadsts(&reply, StatusCode::UNAUTHORIZED, "invalid_client", 700023);

    let mut c = assertion_claims(&emu, CERT_APP, 300);
    c["iss"] = Value::from(DEFAULT_CLIENT_ID);
    let assertion = sign_jwt(Algorithm::RS256, x5t(), TEST_KEY_PEM, &c);
    let reply = client_credentials_with(&emu, CERT_APP, &assertion).await;
    assert_aadsts(&reply, StatusCode::UNAUTHORIZED, "invalid_client", 700021);
}

#[tokio::test]
async fn a_secret_and_an_assertion_together_are_an_invalid_request() {
    let emu = start_with_cert().await;
    let assertion = sign_jwt(
        Algorithm::RS256,
        x5t(),
        TEST_KEY_PEM,
        &assertion_claims(&emu, DEFAULT_CLIENT_ID, 300),
    );
    let reply = token_request(
        &emu,
        DEFAULT_TENANT_ID,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", DEFAULT_CLIENT_ID),
            ("client_secret", DEFAULT_CLIENT_SECRET),
            ("client_assertion_type", JWT_BEARER_ASSERTION_TYPE),
            ("client_assertion", &assertion),
            ("scope", GRAPH_SCOPE),
        ],
    )
    .await;
    assert_aadsts(&reply, StatusCode::BAD_REQUEST, "invalid_request", 90023);
    // A missing assertion type is a missing parameter.
    let reply = token_request(
        &emu,
        DEFAULT_TENANT_ID,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", DEFAULT_CLIENT_ID),
            ("client_assertion", &assertion),
            ("scope", GRAPH_SCOPE),
        ],
    )
    .await;
    assert_aadsts(&reply, StatusCode::BAD_REQUEST, "invalid_request", 900144);
}

#[tokio::test]
async fn an_app_registered_at_runtime_authenticates_with_its_certificate() {
    let emu = Emulator::spawn(EmulatorConfig::default(), loopback())
        .await
        .expect("spawn");
    let assertion = sign_jwt(
        Algorithm::RS256,
        x5t(),
        TEST_KEY_PEM,
        &assertion_claims(&emu, CERT_APP, 300),
    );
    let before = client_credentials_with(&emu, CERT_APP, &assertion).await;
    assert_aadsts(
        &before,
        StatusCode::BAD_REQUEST,
        "unauthorized_client",
        700016,
    );
    emu.emulator.register_app(
        AppRegistration::confidential(CERT_APP, "", "late", ["Group.Read.All"])
            .with_certificate(TEST_CERT_PEM),
    );
    let assertion = sign_jwt(
        Algorithm::RS256,
        x5t(),
        TEST_KEY_PEM,
        &assertion_claims(&emu, CERT_APP, 300),
    );
    let after = client_credentials_with(&emu, CERT_APP, &assertion).await;
    assert_eq!(after.status, StatusCode::OK, "{}", after.text);
    // An app without a secret is not authenticated by an empty one.
    let reply = reqwest::Client::new()
        .post(format!(
            "{}/{DEFAULT_TENANT_ID}/oauth2/v2.0/token",
            emu.base_url()
        ))
        .basic_auth(CERT_APP, Some(""))
        .form(&[("grant_type", "client_credentials"), ("scope", GRAPH_SCOPE)])
        .send()
        .await
        .expect("token");
    assert_eq!(reply.status(), StatusCode::UNAUTHORIZED);
}
