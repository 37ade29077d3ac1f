//! The Entra ID token endpoint, discovery and JWKS.

mod common;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::*;
use graph_emulator::{
    AppRegistration, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, DEFAULT_TENANT_ID, Emulator,
    EmulatorConfig, TENANT_DOMAIN,
};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use reqwest::StatusCode;
use serde_json::Value;

async fn token_request(
    emu: &graph_emulator::RunningEmulator,
    tenant: &str,
    form: &[(&str, &str)],
) -> Reply {
    let client = reqwest::Client::new();
    let response = client
        .post(format!("{}/{tenant}/oauth2/v2.0/token", emu.base_url()))
        .form(form)
        .send()
        .await
        .expect("token request");
    reply(response).await
}

fn good_form() -> Vec<(&'static str, &'static str)> {
    vec![
        ("grant_type", "client_credentials"),
        ("client_id", DEFAULT_CLIENT_ID),
        ("client_secret", DEFAULT_CLIENT_SECRET),
        ("scope", GRAPH_SCOPE),
    ]
}

fn with(
    form: &[(&'static str, &'static str)],
    key: &'static str,
    value: Option<&'static str>,
) -> Vec<(&'static str, &'static str)> {
    let mut out: Vec<_> = form.iter().filter(|(k, _)| *k != key).copied().collect();
    if let Some(v) = value {
        out.push((key, v));
    }
    out
}

fn decode_part(token: &str, index: usize) -> Value {
    let part = token.split('.').nth(index).expect("JWT part");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).expect("base64url")).expect("JSON")
}

/// Checks the exact Entra error body shape of graph-protocol.md §1.5.
fn assert_entra_error(reply: &Reply, status: StatusCode, error: &str, code: u64) {
    assert_eq!(reply.status, status, "{}", reply.text);
    let body = reply.json();
    assert_eq!(
        keys(&body),
        sorted(vec![
            "error",
            "error_description",
            "error_codes",
            "timestamp",
            "trace_id",
            "correlation_id",
            "error_uri"
        ])
    );
    assert_eq!(body["error"], error);
    assert_eq!(body["error_codes"], serde_json::json!([code]));
    let description = body["error_description"].as_str().expect("description");
    assert!(
        description.starts_with(&format!("AADSTS{code}: ")),
        "{description}"
    );
    let ending = format!(
        "\r\nTrace ID: {}\r\nCorrelation ID: {}\r\nTimestamp: {}",
        body["trace_id"].as_str().expect("trace"),
        body["correlation_id"].as_str().expect("correlation"),
        body["timestamp"].as_str().expect("timestamp"),
    );
    assert!(description.ends_with(&ending), "{description:?}");
    let timestamp = body["timestamp"].as_str().expect("timestamp");
    assert_eq!(timestamp.len(), "2016-01-09 02:02:12Z".len(), "{timestamp}");
    assert!(timestamp.ends_with('Z') && timestamp.as_bytes()[10] == b' ');
    assert_eq!(
        body["error_uri"],
        format!("https://login.microsoftonline.com/error?code={code}")
    );
}

#[tokio::test]
async fn a_client_credentials_request_with_the_right_secret_returns_a_v1_bearer_token() {
    let emu = Emulator::spawn(EmulatorConfig::default(), loopback())
        .await
        .expect("spawn");
    let reply = token_request(&emu, DEFAULT_TENANT_ID, &good_form()).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let body = reply.json();
    assert_eq!(
        keys(&body),
        sorted(vec![
            "token_type",
            "expires_in",
            "ext_expires_in",
            "access_token"
        ])
    );
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 3599);
    assert_eq!(body["ext_expires_in"], 3599);

    let token = body["access_token"].as_str().expect("token");
    let header = decode_part(token, 0);
    assert_eq!(header["typ"], "JWT");
    assert_eq!(header["alg"], "RS256");
    assert_eq!(header["kid"], header["x5t"]);
    let claims = decode_part(token, 1);
    assert_eq!(claims["aud"], "https://graph.microsoft.com");
    assert_eq!(
        claims["iss"],
        format!("https://sts.windows.net/{DEFAULT_TENANT_ID}/")
    );
    assert_eq!(claims["tid"], DEFAULT_TENANT_ID);
    assert_eq!(claims["appid"], DEFAULT_CLIENT_ID);
    assert_eq!(claims["appidacr"], "1");
    assert_eq!(claims["idtyp"], "app");
    assert_eq!(claims["ver"], "1.0");
    assert_eq!(claims["app_displayname"], "m365-gateway");
    assert_eq!(claims["sub"], claims["oid"]);
    assert!(claims.get("scp").is_none());
    for claim in ["iat", "nbf", "exp", "uti", "rh", "aio", "oid"] {
        assert!(claims.get(claim).is_some(), "missing {claim}");
    }
    assert_eq!(
        claims["exp"].as_i64().expect("exp") - claims["iat"].as_i64().expect("iat"),
        3599
    );
    let roles: Vec<&str> = claims["roles"]
        .as_array()
        .expect("roles")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for role in [
        "User.Read.All",
        "Group.Read.All",
        "Directory.Read.All",
        "Mail.Send",
        "Sites.ReadWrite.All",
    ] {
        assert!(roles.contains(&role), "{role} missing from {roles:?}");
    }
    assert_eq!(emu.emulator.stats().token_requests, 1);
    assert_eq!(
        emu.emulator
            .stats()
            .routes
            .get("POST /{tenant}/oauth2/v2.0/token"),
        Some(&1)
    );

    // The service principal's object id is stable for the client id.
    let again = token_request(&emu, DEFAULT_TENANT_ID, &good_form())
        .await
        .json();
    let again = decode_part(again["access_token"].as_str().expect("token"), 1);
    assert_eq!(again["oid"], claims["oid"]);
    assert_ne!(again["uti"], claims["uti"]);
}

#[tokio::test]
async fn the_jwks_verifies_a_token_the_emulator_issued() {
    let emu = Emulator::spawn(EmulatorConfig::default(), loopback())
        .await
        .expect("spawn");
    let token = token_request(&emu, DEFAULT_TENANT_ID, &good_form())
        .await
        .json()["access_token"]
        .as_str()
        .expect("token")
        .to_string();
    let client = reqwest::Client::new();
    let jwks = reply(
        client
            .get(format!(
                "{}/{DEFAULT_TENANT_ID}/discovery/v2.0/keys",
                emu.base_url()
            ))
            .send()
            .await
            .expect("jwks"),
    )
    .await;
    assert_eq!(jwks.status, StatusCode::OK);
    let jwks = jwks.json();
    let key = &jwks["keys"][0];
    assert_eq!(
        keys(key),
        sorted(vec!["kty", "use", "kid", "x5t", "n", "e", "issuer"])
    );
    assert_eq!(key["kty"], "RSA");
    assert_eq!(key["use"], "sig");
    assert_eq!(key["kid"], key["x5t"]);
    assert_eq!(key["e"], "AQAB");
    assert_eq!(decode_part(&token, 0)["kid"], key["kid"]);

    let decoding = DecodingKey::from_rsa_components(
        key["n"].as_str().expect("n"),
        key["e"].as_str().expect("e"),
    )
    .expect("key");
    let mut validation = Validation::new(Algorithm::RS256);
    validation.set_audience(&["https://graph.microsoft.com"]);
    validation.set_issuer(&[format!("https://sts.windows.net/{DEFAULT_TENANT_ID}/")]);
    let data = jsonwebtoken::decode::<Value>(&token, &decoding, &validation)
        .expect("the JWKS key verifies the token");
    assert_eq!(data.claims["tid"], DEFAULT_TENANT_ID);

    // A tampered token does not verify.
    let mut parts: Vec<String> = token.split('.').map(str::to_string).collect();
    let mut claims = decode_part(&token, 1);
    claims["roles"] = serde_json::json!(["Directory.ReadWrite.All"]);
    parts[1] = URL_SAFE_NO_PAD.encode(claims.to_string());
    assert!(jsonwebtoken::decode::<Value>(parts.join("."), &decoding, &validation).is_err());
}

#[tokio::test]
async fn openid_configuration_points_at_the_emulator_itself() {
    let emu = Emulator::spawn(EmulatorConfig::default(), loopback())
        .await
        .expect("spawn");
    let base = emu.base_url();
    let client = reqwest::Client::new();
    let config = reply(
        client
            .get(format!(
                "{base}/{DEFAULT_TENANT_ID}/v2.0/.well-known/openid-configuration"
            ))
            .send()
            .await
            .expect("discovery"),
    )
    .await;
    assert_eq!(config.status, StatusCode::OK);
    let config = config.json();
    assert_eq!(
        config["token_endpoint"],
        format!("{base}/{DEFAULT_TENANT_ID}/oauth2/v2.0/token")
    );
    assert_eq!(
        config["jwks_uri"],
        format!("{base}/{DEFAULT_TENANT_ID}/discovery/v2.0/keys")
    );
    assert_eq!(config["issuer"], format!("{base}/{DEFAULT_TENANT_ID}/v2.0"));
    assert_eq!(
        config["id_token_signing_alg_values_supported"],
        serde_json::json!(["RS256"])
    );

    // The advertised JWKS is reachable.
    let jwks = client
        .get(config["jwks_uri"].as_str().expect("jwks_uri"))
        .send()
        .await
        .expect("jwks");
    assert_eq!(jwks.status(), StatusCode::OK);

    // Unknown tenants get Entra's error.
    let unknown = reply(
        client
            .get(format!(
                "{base}/nope.example/v2.0/.well-known/openid-configuration"
            ))
            .send()
            .await
            .expect("discovery"),
    )
    .await;
    assert_entra_error(&unknown, StatusCode::BAD_REQUEST, "invalid_request", 90002);
}

#[tokio::test]
async fn http_basic_client_authentication_is_accepted() {
    let emu = Emulator::spawn(EmulatorConfig::default(), loopback())
        .await
        .expect("spawn");
    let client = reqwest::Client::new();
    let response = client
        .post(format!(
            "{}/{DEFAULT_TENANT_ID}/oauth2/v2.0/token",
            emu.base_url()
        ))
        .basic_auth(DEFAULT_CLIENT_ID, Some(DEFAULT_CLIENT_SECRET))
        .form(&[("grant_type", "client_credentials"), ("scope", GRAPH_SCOPE)])
        .send()
        .await
        .expect("token");
    let reply = reply(response).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
}

#[tokio::test]
async fn the_tenant_domain_organizations_and_the_graph_app_id_scope_are_accepted() {
    let emu = Emulator::spawn(EmulatorConfig::default(), loopback())
        .await
        .expect("spawn");
    for tenant in [
        TENANT_DOMAIN,
        "organizations",
        &DEFAULT_TENANT_ID.to_uppercase(),
    ] {
        let reply = token_request(&emu, tenant, &good_form()).await;
        assert_eq!(reply.status, StatusCode::OK, "{tenant}: {}", reply.text);
    }
    let form = with(
        &good_form(),
        "scope",
        Some("00000003-0000-0000-c000-000000000000/.default"),
    );
    let reply = token_request(&emu, DEFAULT_TENANT_ID, &form).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
}

#[tokio::test]
async fn an_unknown_client_gets_aadsts700016_unauthorized_client() {
    let emu = Emulator::spawn(EmulatorConfig::default(), loopback())
        .await
        .expect("spawn");
    let form = with(
        &good_form(),
        "client_id",
        Some("11111111-2222-3333-4444-555555555555"),
    );
    let reply = token_request(&emu, DEFAULT_TENANT_ID, &form).await;
    assert_entra_error(
        &reply,
        StatusCode::BAD_REQUEST,
        "unauthorized_client",
        700016,
    );
}

#[tokio::test]
async fn a_wrong_secret_gets_aadsts7000215_invalid_client_with_401() {
    let emu = Emulator::spawn(EmulatorConfig::default(), loopback())
        .await
        .expect("spawn");
    let form = with(&good_form(), "client_secret", Some("not-the-secret"));
    let reply = token_request(&emu, DEFAULT_TENANT_ID, &form).await;
    assert_entra_error(&reply, StatusCode::UNAUTHORIZED, "invalid_client", 7000215);
}

#[tokio::test]
async fn a_missing_secret_gets_aadsts7000218_invalid_client() {
    let emu = Emulator::spawn(EmulatorConfig::default(), loopback())
        .await
        .expect("spawn");
    let form = with(&good_form(), "client_secret", None);
    let reply = token_request(&emu, DEFAULT_TENANT_ID, &form).await;
    assert_entra_error(&reply, StatusCode::UNAUTHORIZED, "invalid_client", 7000218);
}

#[tokio::test]
async fn a_scope_for_another_resource_gets_aadsts70011_invalid_scope() {
    let emu = Emulator::spawn(EmulatorConfig::default(), loopback())
        .await
        .expect("spawn");
    for scope in [
        "https://foo.microsoft.com/.default",
        "https://graph.microsoft.com/.default openid",
    ] {
        let form = with(&good_form(), "scope", Some(scope));
        let reply = token_request(&emu, DEFAULT_TENANT_ID, &form).await;
        assert_entra_error(&reply, StatusCode::BAD_REQUEST, "invalid_scope", 70011);
    }
    // A Graph scope without /.default has its own code for client credentials.
    let form = with(
        &good_form(),
        "scope",
        Some("https://graph.microsoft.com/User.Read.All"),
    );
    let reply = token_request(&emu, DEFAULT_TENANT_ID, &form).await;
    assert_entra_error(&reply, StatusCode::BAD_REQUEST, "invalid_scope", 1002012);
}

#[tokio::test]
async fn an_unsupported_grant_gets_aadsts70003_unsupported_grant_type() {
    let emu = Emulator::spawn(EmulatorConfig::default(), loopback())
        .await
        .expect("spawn");
    let form = with(&good_form(), "grant_type", Some("password"));
    let reply = token_request(&emu, DEFAULT_TENANT_ID, &form).await;
    assert_entra_error(
        &reply,
        StatusCode::BAD_REQUEST,
        "unsupported_grant_type",
        70003,
    );
}

#[tokio::test]
async fn an_unknown_tenant_gets_aadsts90002_invalid_request() {
    let emu = Emulator::spawn(EmulatorConfig::default(), loopback())
        .await
        .expect("spawn");
    let reply = token_request(&emu, "00000000-1111-2222-3333-444444444444", &good_form()).await;
    assert_entra_error(&reply, StatusCode::BAD_REQUEST, "invalid_request", 90002);
}

#[tokio::test]
async fn client_credentials_over_common_or_consumers_gets_aadsts9001023() {
    let emu = Emulator::spawn(EmulatorConfig::default(), loopback())
        .await
        .expect("spawn");
    for tenant in ["common", "consumers"] {
        let reply = token_request(&emu, tenant, &good_form()).await;
        assert_entra_error(&reply, StatusCode::BAD_REQUEST, "invalid_request", 9001023);
        assert!(reply.json()["error_description"]
            .as_str()
            .unwrap_or_default()
            .contains("The grant type isn't supported over the /common or /consumers endpoints. Please use the /organizations or tenant-specific endpoint."));
    }
}

#[tokio::test]
async fn a_missing_grant_type_gets_aadsts900144() {
    let emu = Emulator::spawn(EmulatorConfig::default(), loopback())
        .await
        .expect("spawn");
    let form = with(&good_form(), "grant_type", None);
    let reply = token_request(&emu, DEFAULT_TENANT_ID, &form).await;
    assert_entra_error(&reply, StatusCode::BAD_REQUEST, "invalid_request", 900144);
}

#[tokio::test]
async fn extra_app_registrations_get_exactly_their_roles_and_lifetime() {
    let config = EmulatorConfig {
        apps: vec![AppRegistration {
            client_id: "22222222-3333-4444-5555-666666666666".into(),
            client_secret: "s3cret".into(),
            display_name: "mailer".into(),
            roles: vec!["Mail.Send".into()],
            ..AppRegistration::default()
        }],
        token_lifetime: std::time::Duration::from_secs(600),
        ..EmulatorConfig::default()
    };
    let emu = Emulator::spawn(config, loopback()).await.expect("spawn");
    let form = vec![
        ("grant_type", "client_credentials"),
        ("client_id", "22222222-3333-4444-5555-666666666666"),
        ("client_secret", "s3cret"),
        ("scope", GRAPH_SCOPE),
    ];
    let body = token_request(&emu, DEFAULT_TENANT_ID, &form).await.json();
    assert_eq!(body["expires_in"], 600);
    let claims = decode_part(body["access_token"].as_str().expect("token"), 1);
    assert_eq!(claims["roles"], serde_json::json!(["Mail.Send"]));
    assert_eq!(claims["app_displayname"], "mailer");
    // The default app is not registered in this emulator.
    let reply = token_request(&emu, DEFAULT_TENANT_ID, &good_form()).await;
    assert_entra_error(
        &reply,
        StatusCode::BAD_REQUEST,
        "unauthorized_client",
        700016,
    );
}
