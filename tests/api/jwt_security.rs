//! Caller JWT validation against an RS256 issuer with a JWKS: rows 1–21 of the security
//! catalogue (`shared/reference/security-catalogue.md`), each a named test.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use futures::future::join_all;
use jsonwebtoken::Algorithm;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, spawn_app_with};
use crate::idp::{Jwks, SigningKey, TestIdp, claims, now};

const QUERY: &str = "{ users(first: 1) { nodes { id } } }";

async fn setup() -> (TestApp, TestIdp, SigningKey) {
    let key = SigningKey::generate("k1");
    let idp = TestIdp::start(&[&key]).await;
    let app = spawn_app_with(idp.config(&["users.read"], &["*"])).await;
    (app, idp, key)
}

async fn status(app: &TestApp, token: &str) -> StatusCode {
    app.graphql_as(Some(token), QUERY, json!({})).await.0
}

fn hand_made(header: Value, claims: &Value, signature: &[u8]) -> String {
    format!(
        "{}.{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string()),
        URL_SAFE_NO_PAD.encode(signature)
    )
}

#[tokio::test]
async fn a_correctly_signed_rs256_token_is_accepted() {
    let (app, _idp, key) = setup().await;
    assert_eq!(status(&app, &key.sign(&claims())).await, StatusCode::OK);
}

#[tokio::test]
async fn row_01_alg_none_in_any_spelling_is_refused() {
    let (app, _idp, _key) = setup().await;
    for alg in ["none", "None", "NONE", "nOnE"] {
        let token = hand_made(
            json!({ "alg": alg, "typ": "JWT", "kid": "k1" }),
            &claims(),
            b"",
        );
        assert_eq!(
            status(&app, &token).await,
            StatusCode::UNAUTHORIZED,
            "{alg}"
        );
    }
}

#[tokio::test]
async fn row_02_an_hs256_token_signed_with_the_public_key_is_refused() {
    let (app, _idp, key) = setup().await;
    let secret = key.jwk["n"].as_str().unwrap().to_owned();
    let mut header = jsonwebtoken::Header::new(Algorithm::HS256);
    header.kid = Some("k1".into());
    let forged = jsonwebtoken::encode(
        &header,
        &claims(),
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap();
    assert_eq!(status(&app, &forged).await, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn row_04_another_algorithm_of_the_same_family_is_refused() {
    let (app, _idp, key) = setup().await;
    for alg in [Algorithm::PS256, Algorithm::RS384, Algorithm::RS512] {
        let token = key.sign_as(alg, Some("k1"), &claims());
        assert_eq!(
            status(&app, &token).await,
            StatusCode::UNAUTHORIZED,
            "{alg:?}"
        );
    }
}

#[tokio::test]
async fn row_05_hostile_kids_are_refused_and_never_fetched() {
    let (app, idp, key) = setup().await;
    let before = idp.hits();
    let long = "k".repeat(10 * 1024);
    for kid in [
        "../../../../dev/null",
        "' OR 1=1 --",
        "http://169.254.169.254/",
        long.as_str(),
    ] {
        let token = key.sign_as(Algorithm::RS256, Some(kid), &claims());
        assert_eq!(
            status(&app, &token).await,
            StatusCode::UNAUTHORIZED,
            "{kid}"
        );
    }
    // At most one refetch for the unknown kids, inside the 30 s window.
    assert!(idp.hits() <= before + 1, "{} fetches", idp.hits() - before);
}

#[tokio::test]
async fn row_06_key_urls_in_the_header_are_never_used() {
    let (app, _idp, _key) = setup().await;
    let attacker = SigningKey::generate("attacker");
    let attacker_idp = TestIdp::start(&[&attacker]).await;
    for field in ["jku", "x5u"] {
        let mut header = jsonwebtoken::Header::new(Algorithm::RS256);
        header.kid = Some("attacker".into());
        let mut token_header = serde_json::to_value(&header).unwrap();
        token_header[field] = json!(attacker_idp.jwks_url);
        // Signed properly by the attacker's key, which our IdP does not publish.
        let signed = attacker.sign_as(Algorithm::RS256, Some("attacker"), &claims());
        let (_, rest) = signed.split_once('.').unwrap();
        let token = format!(
            "{}.{rest}",
            URL_SAFE_NO_PAD.encode(token_header.to_string())
        );
        assert_eq!(
            status(&app, &token).await,
            StatusCode::UNAUTHORIZED,
            "{field}"
        );
    }
    let mut with_jwk = serde_json::to_value(jsonwebtoken::Header::new(Algorithm::RS256)).unwrap();
    with_jwk["jwk"] = attacker.jwk.clone();
    let signed = attacker.sign_as(Algorithm::RS256, None, &claims());
    let (_, rest) = signed.split_once('.').unwrap();
    let token = format!("{}.{rest}", URL_SAFE_NO_PAD.encode(with_jwk.to_string()));
    assert_eq!(status(&app, &token).await, StatusCode::UNAUTHORIZED);
    assert_eq!(
        attacker_idp.hits(),
        0,
        "the gateway fetched a key URL from a token"
    );
}

#[tokio::test]
async fn row_07_a_crit_header_is_refused_even_when_signed() {
    let (app, _idp, key) = setup().await;
    for crit in [json!(["exp-ext"]), json!([])] {
        // Re-sign with the crit header so only `crit` is wrong.
        let header = json!({ "alg": "RS256", "kid": "k1", "crit": crit, "exp-ext": 1 });
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims().to_string())
        );
        let signature = jsonwebtoken::crypto::sign(
            input.as_bytes(),
            &jsonwebtoken::EncodingKey::from_rsa_pem(key.pem.as_bytes()).unwrap(),
            Algorithm::RS256,
        )
        .unwrap();
        let token = format!("{input}.{signature}");
        assert_eq!(
            status(&app, &token).await,
            StatusCode::UNAUTHORIZED,
            "{crit}"
        );
    }
}

#[tokio::test]
async fn row_08_tokens_for_another_audience_are_refused() {
    let (app, _idp, key) = setup().await;
    for aud in [
        json!("client-id-of-a-spa"),
        json!("https://graph.microsoft.com"),
    ] {
        let mut c = claims();
        c["aud"] = aud;
        assert_eq!(status(&app, &key.sign(&c)).await, StatusCode::UNAUTHORIZED);
    }
}

#[tokio::test]
async fn row_09_expiry_honours_exactly_the_configured_leeway() {
    let (app, _idp, key) = setup().await;
    let mut c = claims();
    c["exp"] = json!(now() - 50);
    assert_eq!(
        status(&app, &key.sign(&c)).await,
        StatusCode::OK,
        "inside the 60 s leeway"
    );
    for exp in [
        json!(now() - 61),
        json!("tomorrow"),
        json!(-1),
        json!(1e300),
        Value::Null,
    ] {
        let mut c = claims();
        c["exp"] = exp.clone();
        assert_eq!(
            status(&app, &key.sign(&c)).await,
            StatusCode::UNAUTHORIZED,
            "{exp}"
        );
    }
}

#[tokio::test]
async fn row_10_a_missing_exp_or_a_lifetime_over_a_day_is_refused() {
    let (app, _idp, key) = setup().await;
    let mut c = claims();
    c.as_object_mut().unwrap().remove("exp");
    assert_eq!(status(&app, &key.sign(&c)).await, StatusCode::UNAUTHORIZED);
    let mut c = claims();
    c["exp"] = json!(now() + 25 * 3600);
    assert_eq!(status(&app, &key.sign(&c)).await, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn row_11_nbf_or_iat_in_the_future_is_refused() {
    let (app, _idp, key) = setup().await;
    for field in ["nbf", "iat"] {
        let mut c = claims();
        c[field] = json!(now() + 300);
        assert_eq!(
            status(&app, &key.sign(&c)).await,
            StatusCode::UNAUTHORIZED,
            "{field}"
        );
    }
}

#[tokio::test]
async fn row_12_missing_or_odd_audiences_are_refused_and_a_list_must_contain_ours() {
    let (app, _idp, key) = setup().await;
    for aud in [
        Value::Null,
        json!(42),
        json!("other-api"),
        json!(["other", "another"]),
    ] {
        let mut c = claims();
        c["aud"] = aud.clone();
        assert_eq!(
            status(&app, &key.sign(&c)).await,
            StatusCode::UNAUTHORIZED,
            "{aud}"
        );
    }
    let mut c = claims();
    c.as_object_mut().unwrap().remove("aud");
    assert_eq!(status(&app, &key.sign(&c)).await, StatusCode::UNAUTHORIZED);
    let mut c = claims();
    c["aud"] = json!(["other", crate::idp::AUDIENCE]);
    assert_eq!(status(&app, &key.sign(&c)).await, StatusCode::OK);
}

#[tokio::test]
async fn row_13_a_missing_or_foreign_issuer_is_refused() {
    let (app, _idp, key) = setup().await;
    let mut c = claims();
    c.as_object_mut().unwrap().remove("iss");
    assert_eq!(status(&app, &key.sign(&c)).await, StatusCode::UNAUTHORIZED);
    let mut c = claims();
    c["iss"] = json!("https://login.microsoftonline.com/another-tenant/v2.0");
    assert_eq!(status(&app, &key.sign(&c)).await, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn row_14_a_caller_cannot_claim_to_be_a_caller_of_another_issuer() {
    let (app, _idp, key) = setup().await;
    // `demo-frontend` is a caller of the dev issuer, not of this IdP.
    let mut c = claims();
    c["azp"] = json!("demo-frontend");
    assert_eq!(status(&app, &key.sign(&c)).await, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn row_15_huge_tokens_and_duplicate_claims_are_refused() {
    let (app, _idp, key) = setup().await;
    let mut c = claims();
    c["padding"] = json!("x".repeat(64 * 1024));
    assert_eq!(status(&app, &key.sign(&c)).await, StatusCode::UNAUTHORIZED);
    let payload = format!(
        "{{\"iss\":\"{}\",\"aud\":\"{}\",\"azp\":\"{}\",\"sub\":\"a\",\"sub\":\"admin\",\"exp\":{}}}",
        crate::idp::ISSUER,
        crate::idp::AUDIENCE,
        crate::idp::CLIENT,
        now() + 600
    );
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(json!({ "alg": "RS256", "kid": "k1" }).to_string()),
        URL_SAFE_NO_PAD.encode(payload)
    );
    let signature = jsonwebtoken::crypto::sign(
        input.as_bytes(),
        &jsonwebtoken::EncodingKey::from_rsa_pem(key.pem.as_bytes()).unwrap(),
        Algorithm::RS256,
    )
    .unwrap();
    assert_eq!(
        status(&app, &format!("{input}.{signature}")).await,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn row_16_malformed_serialisations_are_refused_with_one_body() {
    let (app, _idp, key) = setup().await;
    let good = key.sign(&claims());
    let parts: Vec<&str> = good.split('.').collect();
    let padded = format!("{}=.{}.{}", parts[0], parts[1], parts[2]);
    let std_alphabet = good.replace('-', "+").replace('_', "/");
    for token in [
        format!("{}.{}", parts[0], parts[1]),
        format!("{good}.x.y"),
        padded,
        format!("{} .{}.{}", parts[0], parts[1], parts[2]),
        std_alphabet,
    ] {
        if token == good {
            continue;
        }
        let (code, body) = app.graphql_as(Some(&token), QUERY, json!({})).await;
        assert_eq!(code, StatusCode::UNAUTHORIZED, "{token}");
        assert_eq!(body["errors"][0]["message"], "authentication required");
    }
}

#[tokio::test]
async fn row_17_a_flipped_bit_or_a_swapped_kid_is_refused() {
    let (app, idp, key) = setup().await;
    let other = SigningKey::generate("k2");
    idp.set(Jwks::Keys(vec![key.jwk.clone(), other.jwk.clone()]));
    let good = key.sign(&claims());
    let parts: Vec<&str> = good.split('.').collect();
    let mut payload = URL_SAFE_NO_PAD.decode(parts[1]).unwrap();
    payload[5] ^= 1;
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        URL_SAFE_NO_PAD.encode(payload),
        parts[2]
    );
    assert_eq!(status(&app, &tampered).await, StatusCode::UNAUTHORIZED);
    let swapped_header = URL_SAFE_NO_PAD.encode(json!({ "alg": "RS256", "kid": "k2" }).to_string());
    let swapped = format!("{swapped_header}.{}.{}", parts[1], parts[2]);
    assert_eq!(status(&app, &swapped).await, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn row_18_transport_variants() {
    let (app, _idp, key) = setup().await;
    let token = key.sign(&claims());
    // The scheme is case-insensitive.
    let response = app
        .http
        .post(format!("{}/graphql", app.base))
        .header("authorization", format!("bearer {token}"))
        .json(&json!({ "query": QUERY }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    // Two Authorization headers: a bad request.
    let response = app
        .http
        .get(format!("{}/api/v1/users?limit=1", app.base))
        .header("authorization", format!("Bearer {token}"))
        .header("authorization", format!("Bearer {token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    // A token in the query string is never read.
    let response = app
        .http
        .get(format!(
            "{}/api/v1/users?limit=1&access_token={token}",
            app.base
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    // An unknown scheme.
    let response = app
        .http
        .get(format!("{}/api/v1/users?limit=1", app.base))
        .header("authorization", format!("Token {token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn row_19_a_flood_of_unknown_kids_fetches_the_jwks_at_most_once() {
    let (app, idp, key) = setup().await;
    let before = idp.hits();
    let tokens: Vec<String> = (0..200)
        .map(|i| key.sign_as(Algorithm::RS256, Some(&format!("random-{i}")), &claims()))
        .collect();
    let results = join_all(tokens.iter().map(|t| status(&app, t))).await;
    assert!(results.iter().all(|s| *s == StatusCode::UNAUTHORIZED));
    assert!(
        idp.hits() - before <= 1,
        "{} JWKS fetches",
        idp.hits() - before
    );
    // Known-kid traffic is unaffected.
    assert_eq!(status(&app, &key.sign(&claims())).await, StatusCode::OK);
}

#[tokio::test]
async fn row_20_a_rotated_key_is_fetched_once_and_outages_keep_the_last_good_keys() {
    let (app, idp, key) = setup().await;
    let k2 = SigningKey::generate("k2");
    idp.set(Jwks::Keys(vec![key.jwk.clone(), k2.jwk.clone()]));
    let before = idp.hits();
    assert_eq!(status(&app, &k2.sign(&claims())).await, StatusCode::OK);
    assert_eq!(idp.hits(), before + 1);
    // The IdP breaks: known keys keep working, nothing is replaced by an empty set.
    for broken in [Jwks::Status500, Jwks::Garbage, Jwks::Keys(vec![])] {
        idp.set(broken);
        assert_eq!(status(&app, &key.sign(&claims())).await, StatusCode::OK);
        assert_eq!(status(&app, &k2.sign(&claims())).await, StatusCode::OK);
    }
}

#[tokio::test]
async fn row_21_symmetric_or_encryption_keys_in_a_jwks_are_ignored() {
    let key = SigningKey::generate("k1");
    let secret = "a-shared-secret-that-an-attacker-knows-0000";
    let oct = json!({ "kty": "oct", "kid": "k-oct", "k": URL_SAFE_NO_PAD.encode(secret) });
    let mut enc = key.jwk.clone();
    enc["use"] = json!("enc");
    enc["kid"] = json!("k-enc");
    let idp = TestIdp::start(&[&key]).await;
    idp.set(Jwks::Keys(vec![key.jwk.clone(), oct, enc]));
    let app = spawn_app_with(idp.config(&["users.read"], &["*"])).await;
    let mut header = jsonwebtoken::Header::new(Algorithm::HS256);
    header.kid = Some("k-oct".into());
    let hs = jsonwebtoken::encode(
        &header,
        &claims(),
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap();
    assert_eq!(status(&app, &hs).await, StatusCode::UNAUTHORIZED);
    let enc_signed = key.sign_as(Algorithm::RS256, Some("k-enc"), &claims());
    assert_eq!(status(&app, &enc_signed).await, StatusCode::UNAUTHORIZED);
    assert_eq!(status(&app, &key.sign(&claims())).await, StatusCode::OK);
}

#[tokio::test]
async fn a_cold_start_while_the_jwks_is_down_fails_closed() {
    let key = SigningKey::generate("k1");
    let idp = TestIdp::start(&[&key]).await;
    idp.set(Jwks::Status500);
    let app = spawn_app_with(idp.config(&["users.read"], &["*"])).await;
    assert_eq!(
        status(&app, &key.sign(&claims())).await,
        StatusCode::UNAUTHORIZED
    );
    let ready = app
        .http
        .get(format!("{}/readyz", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
}
