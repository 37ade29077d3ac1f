//! `/authorize` (no UI) + the authorization-code grant with PKCE, and refresh tokens.

mod common;

use common::*;
use graph_emulator::{
    AppRegistration, CONSENT_USER_UPN, DEFAULT_API_URI, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET,
    DEFAULT_TENANT_ID, DEMO_USER_UPN, EmulatorConfig, MFA_USER_UPN,
};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use reqwest::StatusCode;
use serde_json::Value;

const SPA: &str = "0d6f9b2a-5c4e-4f1a-8b3d-7e9c1a2b3c4d";
const SPA_REDIRECT: &str = "http://localhost:5173/auth/callback";
/// The gateway's registered `http://127.0.0.1/auth/callback`, on some port.
const GATEWAY_REDIRECT: &str = "http://127.0.0.1:41234/auth/callback";

async fn start_code() -> Harness {
    start_with(EmulatorConfig {
        apps: vec![
            AppRegistration::default_gateway_app(),
            AppRegistration::public_client(SPA, "gateway frontend", [SPA_REDIRECT]),
        ],
        ..EmulatorConfig::default()
    })
    .await
}

/// Runs `/authorize` for the SPA and returns the code (panics on anything else).
async fn spa_code(h: &Harness, scope: &str, challenge: &str, extra: &[(&str, &str)]) -> String {
    let mut params = vec![
        ("client_id", SPA),
        ("response_type", "code"),
        ("redirect_uri", SPA_REDIRECT),
        ("scope", scope),
        ("state", "st-123"),
        ("code_challenge", challenge),
        ("code_challenge_method", "S256"),
    ];
    params.extend_from_slice(extra);
    let (status, location, body) = authorize(&h.emu, &params).await;
    assert_eq!(status, StatusCode::FOUND, "{body}");
    let location = location.expect("Location");
    assert_eq!(param(&location, "state").as_deref(), Some("st-123"));
    param(&location, "code").unwrap_or_else(|| panic!("no code in {location}"))
}

async fn redeem_spa(h: &Harness, code: &str, verifier: &str) -> Reply {
    token_request(
        &h.emu,
        DEFAULT_TENANT_ID,
        &[
            ("grant_type", "authorization_code"),
            ("client_id", SPA),
            ("code", code),
            ("redirect_uri", SPA_REDIRECT),
            ("code_verifier", verifier),
        ],
    )
    .await
}

async fn refresh(
    h: &Harness,
    client_id: &str,
    secret: Option<&str>,
    token: &str,
    scope: &str,
) -> Reply {
    let mut form = vec![
        ("grant_type", "refresh_token"),
        ("client_id", client_id),
        ("refresh_token", token),
        ("scope", scope),
    ];
    if let Some(s) = secret {
        form.push(("client_secret", s));
    }
    token_request(&h.emu, DEFAULT_TENANT_ID, &form).await
}

#[tokio::test]
async fn auth_code_with_pkce_issues_a_v2_token_for_the_gateway_api_an_id_token_and_a_refresh_token()
{
    let h = start_code().await;
    let demo_id = h.user_id(DEMO_USER_UPN).await;
    let (verifier, challenge) = pkce();
    let code = spa_code(
        &h,
        &format!("{DEFAULT_API_URI}/access_as_user openid profile offline_access"),
        &challenge,
        &[("nonce", "n-0S6_WzA2Mj")],
    )
    .await;
    let reply = redeem_spa(&h, &code, &verifier).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let body = reply.json();
    assert_eq!(
        body["scope"],
        "api://m365-gateway/access_as_user openid profile offline_access"
    );
    for key in [
        "access_token",
        "refresh_token",
        "id_token",
        "expires_in",
        "ext_expires_in",
    ] {
        assert!(body.get(key).is_some(), "{key} missing: {body}");
    }
    let token = body["access_token"].as_str().expect("token");
    assert!(
        jwt_part(token, 0).get("x5t").is_none(),
        "v2 tokens carry no x5t"
    );
    let c = claims(token);
    let issuer = format!("https://login.microsoftonline.com/{DEFAULT_TENANT_ID}/v2.0");
    assert_eq!(c["iss"], issuer);
    assert_eq!(c["aud"], DEFAULT_CLIENT_ID);
    assert_eq!(c["ver"], "2.0");
    assert_eq!(c["scp"], "access_as_user");
    assert_eq!(c["azp"], SPA);
    assert_eq!(c["azpacr"], "0");
    assert_eq!(c["oid"], demo_id);
    assert_eq!(c["preferred_username"], DEMO_USER_UPN);
    assert_eq!(c["name"], "Tamsin Greaves");
    assert_eq!(c["tid"], DEFAULT_TENANT_ID);

    // A gateway configured like production validates it against the JWKS.
    let jwks = reply_json(&h, &format!("/{DEFAULT_TENANT_ID}/discovery/v2.0/keys")).await;
    let kid = jwt_part(token, 0)["kid"].clone();
    let key = jwks["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .find(|k| k["kid"] == kid)
        .expect("signing key published");
    let decoding = DecodingKey::from_rsa_components(
        key["n"].as_str().expect("n"),
        key["e"].as_str().expect("e"),
    )
    .expect("key");
    let mut validation = Validation::new(Algorithm::RS256);
    validation.set_audience(&[DEFAULT_CLIENT_ID]);
    validation.set_issuer(&[&issuer]);
    jsonwebtoken::decode::<Value>(token, &decoding, &validation).expect("verifies");

    let id = claims(body["id_token"].as_str().expect("id_token"));
    assert_eq!(id["aud"], SPA);
    assert_eq!(id["iss"], issuer);
    assert_eq!(id["nonce"], "n-0S6_WzA2Mj");
    assert_eq!(id["oid"], demo_id);
    assert_eq!(id["preferred_username"], DEMO_USER_UPN);

    // Graph refuses a token meant for the gateway.
    let reply = h.get_with_token("/me", Some(token)).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
}

async fn reply_json(h: &Harness, path: &str) -> Value {
    let response = h
        .client
        .get(format!("{}{path}", h.emu.base_url()))
        .send()
        .await
        .expect("get");
    response.json().await.expect("json")
}

#[tokio::test]
async fn a_confidential_client_redeems_a_code_for_a_graph_token_and_refreshes_it() {
    let h = start_code().await;
    let (verifier, challenge) = pkce();
    let (status, location, body) = authorize(
        &h.emu,
        &[
            ("client_id", DEFAULT_CLIENT_ID),
            ("response_type", "code"),
            ("redirect_uri", GATEWAY_REDIRECT),
            (
                "scope",
                "https://graph.microsoft.com/User.Read offline_access",
            ),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
            ("login_hint", DEMO_USER_UPN),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::FOUND, "{body}");
    let location = location.expect("Location");
    assert!(
        location.as_str().starts_with(GATEWAY_REDIRECT),
        "{location}"
    );
    let code = param(&location, "code").expect("code");
    let body = token_ok(
        &h.emu,
        &[
            ("grant_type", "authorization_code"),
            ("client_id", DEFAULT_CLIENT_ID),
            ("client_secret", DEFAULT_CLIENT_SECRET),
            ("code", &code),
            ("redirect_uri", GATEWAY_REDIRECT),
            ("code_verifier", &verifier),
        ],
    )
    .await;
    assert!(body.get("id_token").is_none(), "no openid, no id_token");
    let token = body["access_token"].as_str().expect("token");
    let c = claims(token);
    assert_eq!(c["aud"], "https://graph.microsoft.com");
    assert_eq!(c["ver"], "1.0");
    assert_eq!(c["scp"], "User.Read");
    assert_eq!(c["appidacr"], "1");
    assert_eq!(
        h.get_with_token("/me", Some(token)).await.status,
        StatusCode::OK
    );

    // Refresh: a new refresh token, and the old one stays valid (as in Entra).
    let first_rt = body["refresh_token"].as_str().expect("rt").to_string();
    let scope = "https://graph.microsoft.com/User.Read offline_access";
    let refreshed = refresh(
        &h,
        DEFAULT_CLIENT_ID,
        Some(DEFAULT_CLIENT_SECRET),
        &first_rt,
        scope,
    )
    .await;
    assert_eq!(refreshed.status, StatusCode::OK, "{}", refreshed.text);
    let refreshed = refreshed.json();
    let second_rt = refreshed["refresh_token"].as_str().expect("new rt");
    assert_ne!(second_rt, first_rt);
    assert_ne!(refreshed["access_token"], body["access_token"]);
    let again = refresh(
        &h,
        DEFAULT_CLIENT_ID,
        Some(DEFAULT_CLIENT_SECRET),
        &first_rt,
        scope,
    )
    .await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.text);
    // Refresh tokens are multi-resource: the gateway's own API too.
    let api = refresh(
        &h,
        DEFAULT_CLIENT_ID,
        Some(DEFAULT_CLIENT_SECRET),
        second_rt,
        &format!("{DEFAULT_API_URI}/access_as_user"),
    )
    .await;
    assert_eq!(api.status, StatusCode::OK, "{}", api.text);
    assert_eq!(
        claims(api.json()["access_token"].as_str().expect("at"))["ver"],
        "2.0"
    );
    // Another client cannot use them, and a confidential client must authenticate.
    let stolen = refresh(&h, SPA, None, &first_rt, scope).await;
    assert_aadsts(&stolen, StatusCode::BAD_REQUEST, "invalid_grant", 70000);
    let unauthenticated = refresh(&h, DEFAULT_CLIENT_ID, None, &first_rt, scope).await;
    assert_aadsts(
        &unauthenticated,
        StatusCode::UNAUTHORIZED,
        "invalid_client",
        7000218,
    );
    // The stats count each grant.
    let stats = h.emu.emulator.stats();
    assert_eq!(
        stats.token_requests_by_grant.get("authorization_code"),
        Some(&1)
    );
    assert_eq!(stats.token_requests_by_grant.get("refresh_token"), Some(&5));
    assert_eq!(
        stats.token_requests_by_grant.get("client_credentials"),
        Some(&1)
    );
    assert_eq!(
        stats.routes.get("GET /{tenant}/oauth2/v2.0/authorize"),
        Some(&1)
    );
}

#[tokio::test]
async fn a_code_redeemed_twice_gets_aadsts54005() {
    let h = start_code().await;
    let (verifier, challenge) = pkce();
    let code = spa_code(&h, "User.Read", &challenge, &[]).await;
    assert_eq!(
        redeem_spa(&h, &code, &verifier).await.status,
        StatusCode::OK
    );
    let again = redeem_spa(&h, &code, &verifier).await;
    assert_aadsts(&again, StatusCode::BAD_REQUEST, "invalid_grant", 54005);
    let unknown = redeem_spa(&h, "1.Anot-a-code", &verifier).await;
    assert_aadsts(&unknown, StatusCode::BAD_REQUEST, "invalid_grant", 70000);
}

#[tokio::test]
async fn a_wrong_code_verifier_gets_aadsts501481() {
    let h = start_code().await;
    let (verifier, challenge) = pkce();
    let code = spa_code(&h, "User.Read", &challenge, &[]).await;
    let (other_verifier, _) = pkce();
    let reply = redeem_spa(&h, &code, &other_verifier).await;
    let body = assert_aadsts(&reply, StatusCode::BAD_REQUEST, "invalid_grant", 501481);
    assert!(
        aadsts_message(&body)
            .starts_with("The Code_Verifier does not match the code_challenge supplied in the authorization request."),
        "{body}"
    );
    // A failed attempt does not burn the code; the right verifier still works once.
    assert_eq!(
        redeem_spa(&h, &code, &verifier).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_redirect_uri_other_than_the_authorize_one_gets_aadsts500112() {
    let h = start_code().await;
    let (verifier, challenge) = pkce();
    let code = spa_code(&h, "User.Read", &challenge, &[]).await;
    let reply = token_request(
        &h.emu,
        DEFAULT_TENANT_ID,
        &[
            ("grant_type", "authorization_code"),
            ("client_id", SPA),
            ("code", &code),
            ("redirect_uri", "http://localhost:9999/auth/callback"),
            ("code_verifier", &verifier),
        ],
    )
    .await;
    assert_aadsts(&reply, StatusCode::BAD_REQUEST, "invalid_grant", 500112);
}

#[tokio::test]
async fn authorize_with_an_unknown_client_or_redirect_uri_answers_a_400_page_not_a_redirect() {
    let h = start_code().await;
    let (_, challenge) = pkce();
    let base = |client: &'static str, redirect: &'static str| {
        vec![
            ("client_id", client),
            ("response_type", "code"),
            ("redirect_uri", redirect),
            ("scope", "User.Read"),
        ]
    };
    let mut unknown = base("11111111-2222-3333-4444-555555555555", SPA_REDIRECT);
    unknown.push(("code_challenge", &challenge));
    let (status, location, body) = authorize(&h.emu, &unknown).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(location.is_none());
    assert!(body.contains("AADSTS700016"), "{body}");

    let (status, location, body) =
        authorize(&h.emu, &base(SPA, "https://evil.example/auth/callback")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(location.is_none());
    assert!(body.contains("AADSTS50011"), "{body}");
    assert!(!body.contains("<script"), "reflected input is escaped");

    // Other errors are redirected, with the state.
    let (status, location, _) = authorize(
        &h.emu,
        &[
            ("client_id", SPA),
            ("response_type", "token"),
            ("redirect_uri", SPA_REDIRECT),
            ("scope", "User.Read"),
            ("state", "s1"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::FOUND);
    let location = location.expect("Location");
    assert_eq!(
        param(&location, "error").as_deref(),
        Some("unsupported_response_type")
    );
    assert_eq!(param(&location, "state").as_deref(), Some("s1"));
    // A public client must use PKCE.
    let (_, location, _) = authorize(&h.emu, &base(SPA, SPA_REDIRECT)).await;
    assert_eq!(
        param(&location.expect("Location"), "error").as_deref(),
        Some("invalid_request")
    );
}

#[tokio::test]
async fn scopes_for_two_resources_get_invalid_scope_aadsts28000() {
    let h = start_code().await;
    let (_, challenge) = pkce();
    let (status, location, _) = authorize(
        &h.emu,
        &[
            ("client_id", SPA),
            ("response_type", "code"),
            ("redirect_uri", SPA_REDIRECT),
            (
                "scope",
                &format!("User.Read {DEFAULT_API_URI}/access_as_user"),
            ),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::FOUND);
    let location = location.expect("Location");
    assert_eq!(param(&location, "error").as_deref(), Some("invalid_scope"));
    assert!(
        param(&location, "error_description")
            .expect("description")
            .starts_with("AADSTS28000: ")
    );
}

#[tokio::test]
async fn authorize_for_the_consent_user_redirects_with_consent_required() {
    let h = start_code().await;
    let (_, challenge) = pkce();
    let (status, location, _) = authorize(
        &h.emu,
        &[
            ("client_id", SPA),
            ("response_type", "code"),
            ("redirect_uri", SPA_REDIRECT),
            ("scope", "openid User.Read"),
            ("state", "xyz"),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
            ("login_hint", CONSENT_USER_UPN),
            ("prompt", "none"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::FOUND);
    let location = location.expect("Location");
    assert!(location.as_str().starts_with(SPA_REDIRECT));
    assert_eq!(
        param(&location, "error").as_deref(),
        Some("consent_required")
    );
    assert_eq!(param(&location, "state").as_deref(), Some("xyz"));
    let description = param(&location, "error_description").expect("description");
    assert!(description.starts_with("AADSTS65001: "), "{description}");
    assert!(description.contains("\r\nTrace ID: "), "{description}");
    assert!(param(&location, "code").is_none());
}

#[tokio::test]
async fn the_mfa_user_needs_mfa_for_graph_until_the_claims_challenge_is_answered() {
    let h = start_code().await;
    let (verifier, challenge) = pkce();
    let mfa_user = [("login_hint", MFA_USER_UPN)];

    // Graph scopes at /authorize: interaction_required.
    let mut params = vec![
        ("client_id", SPA),
        ("response_type", "code"),
        ("redirect_uri", SPA_REDIRECT),
        ("scope", "User.Read offline_access"),
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
    ];
    params.extend_from_slice(&mfa_user);
    let (_, location, _) = authorize(&h.emu, &params).await;
    let location = location.expect("Location");
    assert_eq!(
        param(&location, "error").as_deref(),
        Some("interaction_required")
    );
    assert!(
        param(&location, "error_description")
            .expect("d")
            .starts_with("AADSTS50079: ")
    );

    // The gateway's API is not under the policy: sign-in works, with a refresh token.
    let code = spa_code(
        &h,
        &format!("{DEFAULT_API_URI}/access_as_user offline_access"),
        &challenge,
        &mfa_user,
    )
    .await;
    let body = redeem_spa(&h, &code, &verifier).await.json();
    let api_rt = body["refresh_token"].as_str().expect("rt").to_string();
    // ... but that session cannot be refreshed into a Graph token: the claims challenge.
    let reply = refresh(&h, SPA, None, &api_rt, "User.Read").await;
    let err = assert_aadsts(
        &reply,
        StatusCode::BAD_REQUEST,
        "interaction_required",
        50079,
    );
    let challenge_json = err["claims"].as_str().expect("claims").to_string();
    // Nor exchanged on behalf of the user by the gateway.
    let assertion = body["access_token"].as_str().expect("at");
    let obo = token_request(
        &h.emu,
        DEFAULT_TENANT_ID,
        &[
            ("grant_type", OBO_GRANT),
            ("client_id", DEFAULT_CLIENT_ID),
            ("client_secret", DEFAULT_CLIENT_SECRET),
            ("assertion", assertion),
            ("scope", "User.Read"),
            ("requested_token_use", "on_behalf_of"),
        ],
    )
    .await;
    assert_aadsts(&obo, StatusCode::BAD_REQUEST, "interaction_required", 50079);

    // Sending the challenge back to /authorize performs MFA: now everything works.
    let (verifier, challenge) = pkce();
    let mut extra = mfa_user.to_vec();
    extra.push(("claims", challenge_json.as_str()));
    let code = spa_code(
        &h,
        &format!("{DEFAULT_API_URI}/access_as_user offline_access"),
        &challenge,
        &extra,
    )
    .await;
    let body = redeem_spa(&h, &code, &verifier).await.json();
    let reply = refresh(
        &h,
        SPA,
        None,
        body["refresh_token"].as_str().expect("rt"),
        "User.Read",
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(
        claims(reply.json()["access_token"].as_str().expect("at"))["amr"],
        serde_json::json!(["pwd", "mfa"])
    );
    let obo = token_request(
        &h.emu,
        DEFAULT_TENANT_ID,
        &[
            ("grant_type", OBO_GRANT),
            ("client_id", DEFAULT_CLIENT_ID),
            ("client_secret", DEFAULT_CLIENT_SECRET),
            ("assertion", body["access_token"].as_str().expect("at")),
            ("scope", "User.Read"),
            ("requested_token_use", "on_behalf_of"),
        ],
    )
    .await;
    assert_eq!(obo.status, StatusCode::OK, "{}", obo.text);
}

#[tokio::test]
async fn a_refresh_after_revocation_gets_aadsts50173() {
    let h = start_code().await;
    let (verifier, challenge) = pkce();
    let code = spa_code(&h, "User.Read offline_access", &challenge, &[]).await;
    let rt = redeem_spa(&h, &code, &verifier).await.json()["refresh_token"]
        .as_str()
        .expect("rt")
        .to_string();
    assert_eq!(
        refresh(&h, SPA, None, &rt, "User.Read").await.status,
        StatusCode::OK
    );

    let revoked = h
        .client
        .post(format!(
            "{}/_emulator/users/{DEMO_USER_UPN}/revoke",
            h.emu.base_url()
        ))
        .send()
        .await
        .expect("revoke");
    assert_eq!(revoked.status(), StatusCode::OK);
    let reply = refresh(&h, SPA, None, &rt, "User.Read").await;
    let body = assert_aadsts(&reply, StatusCode::BAD_REQUEST, "invalid_grant", 50173);
    assert!(
        aadsts_message(&body).starts_with("The provided grant has expired due to it being revoked"),
        "{body}"
    );
    // A new sign-in works again.
    let (verifier, challenge) = pkce();
    let code = spa_code(&h, "User.Read offline_access", &challenge, &[]).await;
    let rt = redeem_spa(&h, &code, &verifier).await.json()["refresh_token"]
        .as_str()
        .expect("rt")
        .to_string();
    assert_eq!(
        refresh(&h, SPA, None, &rt, "User.Read").await.status,
        StatusCode::OK
    );
    // Unknown users are a 404 on the admin hook.
    let missing = h
        .client
        .post(format!(
            "{}/_emulator/users/nobody@nowhere.example/revoke",
            h.emu.base_url()
        ))
        .send()
        .await
        .expect("revoke");
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn graph_revoke_sign_in_sessions_revokes_refresh_tokens_and_returns_true() {
    let h = start_code().await;
    let (verifier, challenge) = pkce();
    let code = spa_code(&h, "User.Read offline_access", &challenge, &[]).await;
    let rt = redeem_spa(&h, &code, &verifier).await.json()["refresh_token"]
        .as_str()
        .expect("rt")
        .to_string();
    let demo_id = h.user_id(DEMO_USER_UPN).await;
    let before = h
        .get(&format!(
            "/users/{demo_id}?$select=signInSessionsValidFromDateTime"
        ))
        .await
        .json();
    let response = h
        .client
        .post(format!(
            "{}/users/{demo_id}/revokeSignInSessions",
            h.emu.graph_url()
        ))
        .bearer_auth(&h.token)
        .send()
        .await
        .expect("revoke");
    let reply = common::reply(response).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(
        reply.json(),
        serde_json::json!({
            "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#Edm.Boolean",
            "value": true
        })
    );
    let after = h
        .get(&format!(
            "/users/{demo_id}?$select=signInSessionsValidFromDateTime"
        ))
        .await
        .json();
    assert_ne!(
        before["signInSessionsValidFromDateTime"],
        after["signInSessionsValidFromDateTime"]
    );
    let reply = refresh(&h, SPA, None, &rt, "User.Read").await;
    assert_aadsts(&reply, StatusCode::BAD_REQUEST, "invalid_grant", 50173);

    // A User.Read user token may not revoke anyone; GET is the wrong method.
    let user_token = h
        .emu
        .emulator
        .issue_delegated_token(SPA, DEMO_USER_UPN, &["User.Read"])
        .expect("token");
    let response = h
        .client
        .post(format!("{}/me/revokeSignInSessions", h.emu.graph_url()))
        .bearer_auth(&user_token)
        .send()
        .await
        .expect("revoke");
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let reply = h
        .get(&format!("/users/{demo_id}/revokeSignInSessions"))
        .await;
    assert_eq!(reply.status, StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn garbled_refresh_tokens_get_aadsts9002313_and_public_clients_must_not_send_secrets() {
    let h = start_code().await;
    let reply = refresh(&h, SPA, None, "garbage", "User.Read").await;
    assert_aadsts(&reply, StatusCode::BAD_REQUEST, "invalid_grant", 9002313);
    let reply = refresh(&h, SPA, Some("a-secret"), "garbage", "User.Read").await;
    assert_aadsts(&reply, StatusCode::UNAUTHORIZED, "invalid_client", 700025);
}
