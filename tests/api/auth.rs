//! Inbound authentication: every failure is the same 401; policy is deny by default.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{EncodingKey, Header};
use m365_gateway::config::{
    CallerConfig, CallerMode, DEV_AUDIENCE, DEV_ISSUER, DEV_SECRET, IssuerConfig, IssuerKey, Secret,
};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, graph_app_token, spawn_app, spawn_app_with, test_config};

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

fn dev_claims() -> Value {
    json!({
        "iss": DEV_ISSUER,
        "aud": DEV_AUDIENCE,
        "sub": "someone",
        "azp": "demo-frontend",
        "upn": graph_emulator::DEMO_USER_UPN,
        "iat": now(),
        "nbf": now(),
        "exp": now() + 600,
    })
}

fn sign(claims: &Value, secret: &str) -> String {
    jsonwebtoken::encode(
        &Header::new(jsonwebtoken::Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

/// A token with a hand-written header (for `alg=none`, `crit`, …), HMAC-signed with the
/// dev secret so that only the header is wrong.
fn with_header(header: Value, claims: &Value) -> String {
    use aws_lc_rs::hmac;
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let key = hmac::Key::new(hmac::HMAC_SHA256, DEV_SECRET.as_bytes());
    let tag = hmac::sign(&key, signing_input.as_bytes());
    format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()))
}

async fn assert_refused(app: &TestApp, token: Option<&str>) {
    let (status, body) = app
        .graphql_as(token, "{ me { displayName } }", json!({}))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(
        body,
        json!({ "errors": [{ "message": "authentication required", "extensions": { "code": "UNAUTHENTICATED" } }] })
    );
    let mut request = app.http.get(format!("{}/api/v1/users/x", app.base));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    // RFC 6750 §3: `error="invalid_token"` only when a token was sent.
    let expected = if token.is_some() {
        "Bearer error=\"invalid_token\""
    } else {
        "Bearer"
    };
    assert_eq!(
        response.headers().get("www-authenticate").unwrap(),
        expected
    );
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "UNAUTHENTICATED");
    assert_eq!(body["error"]["message"], "authentication required");
}

#[tokio::test]
async fn the_dev_token_is_accepted() {
    let app = spawn_app().await;
    let (status, body) = app
        .graphql_as(
            Some(&sign(&dev_claims(), DEV_SECRET)),
            "{ me { id } }",
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["data"]["me"]["id"].is_string());
}

#[tokio::test]
async fn every_bad_token_gets_the_same_401_and_no_graph_call() {
    let app = spawn_app().await;
    app.reset_stats().await;
    let mut expired = dev_claims();
    expired["exp"] = json!(now() - 3600);
    let mut not_yet = dev_claims();
    not_yet["nbf"] = json!(now() + 3600);
    let mut wrong_aud = dev_claims();
    wrong_aud["aud"] = json!("someone-else");
    let mut wrong_iss = dev_claims();
    wrong_iss["iss"] = json!("https://evil.example");
    let mut no_aud = dev_claims();
    no_aud.as_object_mut().unwrap().remove("aud");
    let mut no_exp = dev_claims();
    no_exp.as_object_mut().unwrap().remove("exp");
    let mut unknown_client = dev_claims();
    unknown_client["azp"] = json!("not-a-configured-caller");

    let huge_claims = {
        let mut c = dev_claims();
        c["padding"] = json!("x".repeat(9000));
        c
    };
    let bad_tokens = vec![
        sign(&expired, DEV_SECRET),
        sign(&not_yet, DEV_SECRET),
        sign(&wrong_aud, DEV_SECRET),
        sign(&wrong_iss, DEV_SECRET),
        sign(&no_aud, DEV_SECRET),
        sign(&no_exp, DEV_SECRET),
        sign(&unknown_client, DEV_SECRET),
        sign(&dev_claims(), "another-secret-that-is-long-enough-000"),
        with_header(json!({ "alg": "none", "typ": "JWT" }), &dev_claims()),
        with_header(json!({ "alg": "RS256", "typ": "JWT" }), &dev_claims()),
        with_header(json!({ "alg": "HS256", "crit": ["exp"] }), &dev_claims()),
        with_header(
            json!({ "alg": "HS256", "kid": "../../etc/passwd" , "jku": "http://127.0.0.1:1/keys"}),
            &{
                let mut c = dev_claims();
                c["exp"] = json!(now() - 10_000);
                c
            },
        ),
        sign(&huge_claims, DEV_SECRET),
        "not.a.jwt".to_owned(),
        "garbage".to_owned(),
    ];
    assert_refused(&app, None).await;
    for token in &bad_tokens {
        assert_refused(&app, Some(token)).await;
    }
    assert_eq!(app.graph_requests().await, 0);
}

#[tokio::test]
async fn a_header_that_is_not_bearer_is_refused() {
    let app = spawn_app().await;
    let response = app
        .http
        .post(format!("{}/graphql", app.base))
        .header("Authorization", format!("Basic {}", app.token))
        .json(&json!({ "query": "{ me { id } }" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}

fn restricted_config(operations: &[&str], user_claim: Option<&str>) -> m365_gateway::Config {
    let mut config = test_config();
    config.issuers.insert(
        "internal".into(),
        IssuerConfig {
            issuer: "https://idp.internal.example".into(),
            audiences: vec!["m365-gateway".into()],
            key: IssuerKey::Hs256 {
                secret: Secret::new("internal-idp-secret-0123456789abcdef"),
            },
            client_claim: "azp".into(),
            leeway: Duration::from_secs(30),
        },
    );
    config.callers.insert(
        "reporting".into(),
        CallerConfig {
            issuer: "internal".into(),
            client_id: "reporting-service".into(),
            mode: CallerMode::App,
            user_claim: user_claim.map(str::to_owned),
            operations: operations.iter().map(|s| s.to_string()).collect(),
            resources: vec!["*".into()],
            send_as: Vec::new(),
            sites: Vec::new(),
            scopes: None,
        },
    );
    config
}

fn internal_token(with_upn: bool) -> String {
    let mut claims = json!({
        "iss": "https://idp.internal.example",
        "aud": "m365-gateway",
        "sub": "reporting-service",
        "azp": "reporting-service",
        "exp": now() + 600,
    });
    if with_upn {
        claims["upn"] = json!(graph_emulator::DEMO_USER_UPN);
    }
    sign(&claims, "internal-idp-secret-0123456789abcdef")
}

#[tokio::test]
async fn an_operation_outside_the_callers_policy_is_forbidden_with_zero_graph_calls() {
    let app = spawn_app_with(restricted_config(&["users.read"], None)).await;
    let token = internal_token(false);
    // Allowed: users.read.
    let (_, body) = app
        .graphql_as(
            Some(&token),
            "{ users(first: 2) { nodes { id } } }",
            json!({}),
        )
        .await;
    assert!(body.get("errors").is_none(), "{body}");
    app.reset_stats().await;
    // Denied: groups.read is not granted.
    let (_, body) = app
        .graphql_as(
            Some(&token),
            "{ group(id: \"00000000-0000-0000-0000-000000000001\") { id } }",
            json!({}),
        )
        .await;
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "FORBIDDEN",
        "{body}"
    );
    let (status, body) = app
        .get_as(
            Some(&token),
            "/api/v1/groups/00000000-0000-0000-0000-000000000001",
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["error"]["code"], "FORBIDDEN");
    assert_eq!(app.graph_requests().await, 0);
}

#[tokio::test]
async fn a_caller_with_no_operations_may_do_nothing() {
    let app = spawn_app_with(restricted_config(&[], None)).await;
    app.reset_stats().await;
    let (status, body) = app
        .get_as(Some(&internal_token(false)), "/api/v1/users")
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(app.graph_requests().await, 0);
}

#[tokio::test]
async fn a_pure_application_caller_has_no_me() {
    let app = spawn_app_with(restricted_config(&["users.read"], Some("upn"))).await;
    // The token carries no upn: the caller acts as an application.
    let (_, body) = app
        .graphql_as(Some(&internal_token(false)), "{ me { id } }", json!({}))
        .await;
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "FORBIDDEN",
        "{body}"
    );
    // The same caller acting for a user has one.
    let (_, body) = app
        .graphql_as(
            Some(&internal_token(true)),
            "{ me { userPrincipalName } }",
            json!({}),
        )
        .await;
    assert!(body.get("errors").is_none(), "{body}");
}

#[tokio::test]
async fn rs256_tokens_are_verified_against_the_issuers_jwks() {
    // A second emulator plays the company's identity provider: its token endpoint issues
    // RS256 tokens and publishes the keys as a JWKS.
    let idp = graph_emulator::Emulator::spawn(Default::default(), crate::helpers::loopback())
        .await
        .unwrap();
    let tenant = idp.emulator.tenant_id().to_owned();
    let mut config = test_config();
    config.issuers.insert(
        "entra".into(),
        IssuerConfig {
            issuer: format!("https://sts.windows.net/{tenant}/"),
            audiences: vec!["https://graph.microsoft.com".into()],
            key: IssuerKey::Jwks {
                jwks_url: format!("{}/{tenant}/discovery/v2.0/keys", idp.base_url())
                    .parse()
                    .unwrap(),
                algorithms: vec!["RS256".into()],
                refresh: Duration::from_secs(3600),
            },
            client_claim: "appid".into(),
            leeway: Duration::from_secs(30),
        },
    );
    config.callers.insert(
        "svc".into(),
        CallerConfig {
            issuer: "entra".into(),
            client_id: graph_emulator::DEFAULT_CLIENT_ID.into(),
            mode: CallerMode::App,
            user_claim: None,
            operations: vec!["users.read".into()],
            resources: vec!["*".into()],
            send_as: Vec::new(),
            sites: Vec::new(),
            scopes: None,
        },
    );
    let app = spawn_app_with(config).await;
    let token = graph_app_token(&app.http, &idp.base_url(), &tenant).await;
    let token = token.as_str();
    let (status, body) = app
        .graphql_as(
            Some(token),
            "{ users(first: 1) { nodes { id } } }",
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.get("errors").is_none(), "{body}");

    // Same claims, HS256-signed with the RSA public key's bytes as secret: refused.
    let (_, rest) = token.split_once('.').unwrap();
    let claims: Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(rest.split('.').next().unwrap())
            .unwrap(),
    )
    .unwrap();
    let forged = sign(&claims, "rsa-public-key-material-used-as-hmac-secret");
    assert_refused(&app, Some(&forged)).await;
}

#[tokio::test]
async fn health_is_live_and_ready_on_the_embedded_default() {
    let app = spawn_app().await;
    let health: Value = app
        .http
        .get(format!("{}/healthz", app.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["status"], "ok");
    let response = app
        .http
        .get(format!("{}/readyz", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let ready: Value = response.json().await.unwrap();
    assert_eq!(ready["checks"]["graph_token"], true, "{ready}");
}
