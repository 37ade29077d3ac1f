//! Signing-key rotation: new keys are published next to old ones until those are retired.

mod common;

use common::*;
use graph_emulator::{
    AppRegistration, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, DEFAULT_TENANT_ID, DEMO_USER_UPN,
    EmulatorConfig,
};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use reqwest::StatusCode;
use serde_json::Value;

async fn jwks(h: &Harness) -> Vec<Value> {
    let response = h
        .client
        .get(format!(
            "{}/{DEFAULT_TENANT_ID}/discovery/v2.0/keys",
            h.emu.base_url()
        ))
        .send()
        .await
        .expect("jwks");
    let body: Value = response.json().await.expect("json");
    body["keys"].as_array().expect("keys").clone()
}

/// Verifies `token` with the JWKS key its `kid` names, as a relying party would.
fn verify_with(jwks: &[Value], token: &str) -> Result<Value, String> {
    let kid = jwt_part(token, 0)["kid"].clone();
    let key = jwks
        .iter()
        .find(|k| k["kid"] == kid)
        .ok_or_else(|| format!("kid {kid} not in the JWKS"))?;
    let decoding = DecodingKey::from_rsa_components(
        key["n"].as_str().expect("n"),
        key["e"].as_str().expect("e"),
    )
    .map_err(|e| e.to_string())?;
    let mut validation = Validation::new(Algorithm::RS256);
    validation.set_audience(&["https://graph.microsoft.com"]);
    jsonwebtoken::decode::<Value>(token, &decoding, &validation)
        .map(|d| d.claims)
        .map_err(|e| e.to_string())
}

#[tokio::test]
async fn a_token_signed_before_rotation_still_verifies_via_the_jwks_and_graph_accepts_it() {
    let h = start().await;
    let old_token = h.token.clone();
    let old_kid = jwt_part(&old_token, 0)["kid"].clone();
    let response = h
        .client
        .post(format!("{}/_emulator/keys/rotate", h.emu.base_url()))
        .json(&serde_json::json!({"retire_previous": false}))
        .send()
        .await
        .expect("rotate");
    assert_eq!(response.status(), StatusCode::OK);
    let new_kid = response.json::<Value>().await.expect("json")["kid"].clone();
    assert_ne!(new_kid, old_kid);

    let keys = jwks(&h).await;
    assert_eq!(keys.len(), 2);
    assert_eq!(keys[0]["kid"], new_kid, "the active key comes first");
    assert_eq!(keys[1]["kid"], old_kid);
    verify_with(&keys, &old_token).expect("the old token verifies");
    assert_eq!(h.get("/users?$top=1").await.status, StatusCode::OK);

    // New tokens are signed with the new key.
    let new_token = fetch_token(
        &h.client,
        &h.emu.base_url(),
        DEFAULT_CLIENT_ID,
        DEFAULT_CLIENT_SECRET,
    )
    .await;
    assert_eq!(jwt_part(&new_token, 0)["kid"], new_kid);
    verify_with(&keys, &new_token).expect("the new token verifies");
}

#[tokio::test]
async fn after_retire_previous_graph_and_obo_refuse_tokens_signed_by_the_old_key() {
    const SPA: &str = "0d6f9b2a-5c4e-4f1a-8b3d-7e9c1a2b3c4d";
    let h = start_with(EmulatorConfig {
        apps: vec![
            AppRegistration::default_gateway_app(),
            AppRegistration::public_client(SPA, "frontend", ["http://localhost/cb"]),
        ],
        ..EmulatorConfig::default()
    })
    .await;
    let old_token = h.token.clone();
    let old_assertion = h
        .emu
        .emulator
        .issue_user_token(SPA, DEMO_USER_UPN, DEFAULT_CLIENT_ID, &["access_as_user"])
        .expect("user token");
    let new_kid = h.emu.emulator.rotate_signing_key(true);

    let keys = jwks(&h).await;
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0]["kid"], new_kid);
    assert!(verify_with(&keys, &old_token).is_err());

    let reply = h.get("/users?$top=1").await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{}", reply.text);
    assert_eq!(reply.error_code(), "InvalidAuthenticationToken");

    let obo = token_request(
        &h.emu,
        DEFAULT_TENANT_ID,
        &[
            ("grant_type", OBO_GRANT),
            ("client_id", DEFAULT_CLIENT_ID),
            ("client_secret", DEFAULT_CLIENT_SECRET),
            ("assertion", &old_assertion),
            ("scope", "User.Read"),
            ("requested_token_use", "on_behalf_of"),
        ],
    )
    .await;
    assert_aadsts(&obo, StatusCode::BAD_REQUEST, "invalid_grant", 50013);

    // A fresh token works.
    let fresh = fetch_token(
        &h.client,
        &h.emu.base_url(),
        DEFAULT_CLIENT_ID,
        DEFAULT_CLIENT_SECRET,
    )
    .await;
    let reply = h.get_with_token("/users?$top=1", Some(&fresh)).await;
    assert_eq!(reply.status, StatusCode::OK);
}
