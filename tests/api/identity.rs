//! Caller modes against a standalone emulator configured as Microsoft's cloud would be:
//! certificate credentials, on-behalf-of with its claims and consent paths, token refresh
//! after Graph refuses a token.

use std::path::PathBuf;

use base64::Engine;
use graph_emulator::{
    AppRegistration, CONSENT_USER_UPN, DEFAULT_API_URI, DEMO_USER_UPN, Emulator, MFA_POLICY_ID,
    MFA_USER_UPN, RunningEmulator,
};
use m365_gateway::config::{CallerMode, CertificateConfig};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{
    INTRANET, INTRANET_SECRET, loopback, obo_config, obo_setup, real_mode_config, spawn_app,
    spawn_app_with, test_token, user_token,
};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("crates/graph-emulator/tests/fixtures/certs")
        .join(name)
}

async fn emulator() -> RunningEmulator {
    Emulator::spawn(Default::default(), loopback())
        .await
        .unwrap()
}

fn grants(stats: &Value, grant: &str) -> u64 {
    stats["token_requests_by_grant"][grant]
        .as_u64()
        .unwrap_or(0)
}

#[tokio::test]
async fn app_mode_authenticates_with_a_certificate_instead_of_a_secret() {
    for (algorithm, thumbprint) in [("PS256", "sha256"), ("RS256", "sha1")] {
        let emu = emulator().await;
        let client = "0b7c5e1a-3d2f-4a6b-8c9d-e0f1a2b3c4d5";
        emu.emulator.register_app(
            AppRegistration::confidential(client, "", "cert app", ["User.Read.All"])
                .with_certificate(std::fs::read_to_string(fixture("cert.pem")).unwrap()),
        );
        let mut config = real_mode_config(
            &emu,
            client,
            ("svc", CallerMode::App, &["users.read"], &["*"]),
        );
        config.graph.certificate = Some(CertificateConfig {
            private_key_file: fixture("key.pem"),
            certificate_file: fixture("cert.pem"),
            algorithm: algorithm.into(),
            thumbprint: thumbprint.into(),
        });
        let app = spawn_app_with(config).await;
        let (status, body) = app
            .graphql_as(
                Some(&test_token("svc", None)),
                "{ users(first: 2) { nodes { id } } }",
                json!({}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{algorithm}: {body}");
        assert!(body.get("errors").is_none(), "{algorithm}: {body}");
        assert_eq!(grants(&app.stats().await, "client_credentials"), 1);
    }
}

#[tokio::test]
async fn a_certificate_entra_does_not_know_gives_an_upstream_error_not_a_500() {
    let emu = emulator().await;
    let client = "0b7c5e1a-3d2f-4a6b-8c9d-e0f1a2b3c4d6";
    emu.emulator.register_app(AppRegistration::confidential(
        client,
        "",
        "cert app",
        ["User.Read.All"],
    ));
    let mut config = real_mode_config(
        &emu,
        client,
        ("svc", CallerMode::App, &["users.read"], &["*"]),
    );
    config.graph.certificate = Some(CertificateConfig {
        private_key_file: fixture("key.pem"),
        certificate_file: fixture("cert.pem"),
        algorithm: "PS256".into(),
        thumbprint: "sha256".into(),
    });
    let app = spawn_app_with(config).await;
    let (status, body) = app
        .get_as(Some(&test_token("svc", None)), "/api/v1/users?limit=1")
        .await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{body}");
    assert_eq!(body["error"]["code"], "UPSTREAM_ERROR");
}

/// Two other ordinary users of the emulated tenant.
async fn other_users() -> Vec<String> {
    let demo = spawn_app().await;
    let data = demo
        .graphql_data("{ users(first: 20) { nodes { userPrincipalName } } }")
        .await;
    data["users"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["userPrincipalName"].as_str().unwrap().to_owned())
        .filter(|u| {
            ![DEMO_USER_UPN, MFA_USER_UPN, CONSENT_USER_UPN].contains(&u.as_str())
                && !u.contains("#EXT#")
        })
        .take(2)
        .collect()
}

#[tokio::test]
async fn obo_callers_see_their_own_user_and_two_users_never_share_an_answer() {
    let (emu, app) = obo_setup(&["users.read"]).await;
    let others = other_users().await;
    let a = user_token(&emu, &others[0]);
    let b = user_token(&emu, &others[1]);
    app.reset_stats().await;
    for (token, upn) in [(&a, &others[0]), (&b, &others[1])] {
        let (_, body) = app
            .graphql_as(Some(token), "{ me { userPrincipalName } }", json!({}))
            .await;
        assert_eq!(
            body["data"]["me"]["userPrincipalName"]
                .as_str()
                .unwrap()
                .to_lowercase(),
            upn.to_lowercase(),
            "{body}"
        );
    }
    let stats = app.stats().await;
    assert_eq!(stats["graph_requests"], 2, "{stats}");
    assert_eq!(
        grants(&stats, "urn:ietf:params:oauth:grant-type:jwt-bearer"),
        2,
        "{stats}"
    );
    // Repeated within the TTL: each from its own cache entry.
    for token in [&a, &b] {
        app.graphql_as(Some(token), "{ me { userPrincipalName } }", json!({}))
            .await;
    }
    assert_eq!(app.stats().await["graph_requests"], 2);
}

#[tokio::test]
async fn two_assertions_of_one_user_are_exchanged_separately_and_each_only_once() {
    let (emu, app) = obo_setup(&["users.read"]).await;
    let first = user_token(&emu, DEMO_USER_UPN);
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let second = user_token(&emu, DEMO_USER_UPN);
    assert_ne!(first, second);
    // Different selections, so neither answer comes from the other's cache entry.
    for (token, query) in [
        (&first, "{ me { id } }"),
        (&second, "{ me { displayName } }"),
        (&first, "{ me { mail } }"),
        (&second, "{ me { jobTitle } }"),
    ] {
        let (_, body) = app.graphql_as(Some(token), query, json!({})).await;
        assert!(body.get("errors").is_none(), "{body}");
    }
    assert_eq!(
        grants(
            &app.stats().await,
            "urn:ietf:params:oauth:grant-type:jwt-bearer"
        ),
        2
    );
}

#[tokio::test]
async fn an_mfa_requirement_becomes_a_claims_challenge_never_a_500() {
    let (emu, app) = obo_setup(&["users.read"]).await;
    let token = user_token(&emu, MFA_USER_UPN);
    let (status, body) = app
        .graphql_as(Some(&token), "{ me { id } }", json!({}))
        .await;
    assert_eq!(status, StatusCode::OK);
    let ext = &body["errors"][0]["extensions"];
    assert_eq!(ext["code"], "CLAIMS_CHALLENGE", "{body}");
    let claims = base64::engine::general_purpose::STANDARD
        .decode(ext["claims"].as_str().unwrap())
        .unwrap();
    assert!(String::from_utf8(claims).unwrap().contains(MFA_POLICY_ID));

    let response = app
        .http
        .get(format!("{}/api/v1/users/{MFA_USER_UPN}", app.base))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let challenge = response.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        challenge.starts_with("Bearer realm=\"\", authorization_uri=\""),
        "{challenge}"
    );
    assert!(
        challenge.contains("error=\"insufficient_claims\""),
        "{challenge}"
    );
    assert!(
        challenge.contains(&format!("claims=\"{}\"", ext["claims"].as_str().unwrap())),
        "{challenge}"
    );
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "CLAIMS_CHALLENGE");
}

#[tokio::test]
async fn missing_consent_is_reported_with_the_admin_consent_url() {
    let (emu, app) = obo_setup(&["users.read"]).await;
    let token = user_token(&emu, CONSENT_USER_UPN);
    let (_, body) = app
        .graphql_as(Some(&token), "{ me { id } }", json!({}))
        .await;
    let ext = &body["errors"][0]["extensions"];
    assert_eq!(ext["code"], "CONSENT_REQUIRED", "{body}");
    assert!(
        ext["consentUrl"]
            .as_str()
            .unwrap()
            .contains("/adminconsent?client_id="),
        "{body}"
    );
    let (status, body) = app
        .get_as(Some(&token), &format!("/api/v1/users/{CONSENT_USER_UPN}"))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["error"]["code"], "CONSENT_REQUIRED");
}

#[tokio::test]
async fn an_obo_caller_presenting_an_app_only_token_is_refused() {
    let (emu, app) = obo_setup(&["users.read"]).await;
    let tenant = emu.emulator.tenant_id().to_owned();
    let token: Value = app
        .http
        .post(format!("{}/{tenant}/oauth2/v2.0/token", emu.base_url()))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", INTRANET),
            ("client_secret", INTRANET_SECRET),
            ("scope", &format!("{DEFAULT_API_URI}/.default")),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = token["access_token"].as_str().expect("an app token");
    app.reset_stats().await;
    let (status, _) = app
        .graphql_as(Some(token), "{ me { id } }", json!({}))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        app.stats().await["token_requests"],
        0,
        "no exchange was attempted"
    );
}

#[tokio::test]
async fn a_token_graph_refuses_is_dropped_and_fetched_again_once() {
    let app = spawn_app().await;
    app.graphql_data("{ me { id } }").await;
    // Graph stops accepting the cached token (signing key retired).
    let rotated = app
        .http
        .post(format!("{}/_emulator/keys/rotate", app.emulator))
        .json(&json!({ "retire_previous": true }))
        .send()
        .await
        .unwrap();
    assert!(rotated.status().is_success());
    app.reset_stats().await;
    // A query not answered from the cache: 401, new token, one retry, success.
    app.graphql_data("{ users(first: 3, filter: { accountEnabled: false }) { nodes { id } } }")
        .await;
    let stats = app.stats().await;
    assert_eq!(stats["token_requests"], 1, "{stats}");
    assert_eq!(stats["graph_requests"], 2, "{stats}");
}

#[tokio::test]
async fn row_48_the_same_user_with_narrower_scopes_never_reads_the_wider_cache_entry() {
    let emu = graph_emulator::Emulator::spawn(Default::default(), loopback())
        .await
        .unwrap();
    let mut config = obo_config(&emu, &["users.read"]);
    let narrow = "6e2d0b3f-8c4a-4f9b-a0d7-2e3f4a5b6c7d";
    emu.emulator.register_app(AppRegistration::confidential(
        narrow,
        "narrow-secret",
        "Narrow",
        Vec::<String>::new(),
    ));
    let mut caller = config.callers["intranet"].clone();
    caller.client_id = narrow.into();
    caller.scopes = Some(vec!["User.Read".into()]);
    config.callers.insert("narrow".into(), caller);
    let app = spawn_app_with(config).await;
    let wide = user_token(&emu, DEMO_USER_UPN);
    let basic = emu
        .emulator
        .issue_user_token(
            narrow,
            DEMO_USER_UPN,
            graph_emulator::DEFAULT_CLIENT_ID,
            &["access_as_user"],
        )
        .unwrap();
    app.reset_stats().await;
    for token in [&wide, &basic] {
        let (_, body) = app
            .graphql_as(Some(token), "{ me { id displayName } }", json!({}))
            .await;
        assert!(body.get("errors").is_none(), "{body}");
    }
    assert_eq!(
        app.stats().await["graph_requests"],
        2,
        "the narrower token was served the wider entry"
    );
}
