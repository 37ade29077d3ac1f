//! A fake identity provider for the gateway's inbound JWTs: it publishes a JWKS (counting
//! every fetch, and able to fail or rotate) and signs tokens with its RSA keys.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa::{KeyPair, KeySize};
use aws_lc_rs::signature::KeyPair as _;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use m365_gateway::Config;
use m365_gateway::config::{CallerConfig, CallerMode, IssuerConfig, IssuerKey};
use serde_json::{Value, json};

pub const ISSUER: &str = "https://idp.test.example/";
pub const AUDIENCE: &str = "api://m365-gateway-tests";
pub const CLIENT: &str = "reporting-app";

/// What the JWKS endpoint answers.
#[derive(Clone)]
pub enum Jwks {
    Keys(Vec<Value>),
    Status500,
    Garbage,
}

#[derive(Clone)]
struct Shared {
    jwks: Arc<Mutex<Jwks>>,
    hits: Arc<AtomicUsize>,
}

pub struct SigningKey {
    pub kid: String,
    pub pem: String,
    pub jwk: Value,
}

impl SigningKey {
    pub fn generate(kid: &str) -> Self {
        let pair = KeyPair::generate(KeySize::Rsa2048).expect("RSA key");
        let der = AsDer::<aws_lc_rs::encoding::Pkcs8V1Der>::as_der(&pair).expect("pkcs8");
        let pem = format!(
            "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
            STANDARD.encode(der.as_ref())
        );
        let public = pair.public_key();
        let jwk = json!({
            "kty": "RSA",
            "use": "sig",
            "kid": kid,
            "n": URL_SAFE_NO_PAD.encode(public.modulus().big_endian_without_leading_zero()),
            "e": URL_SAFE_NO_PAD.encode(public.exponent().big_endian_without_leading_zero()),
        });
        Self {
            kid: kid.to_owned(),
            pem,
            jwk,
        }
    }

    pub fn sign(&self, claims: &Value) -> String {
        self.sign_as(Algorithm::RS256, Some(&self.kid), claims)
    }

    pub fn sign_as(&self, alg: Algorithm, kid: Option<&str>, claims: &Value) -> String {
        let mut header = Header::new(alg);
        header.kid = kid.map(str::to_owned);
        jsonwebtoken::encode(
            &header,
            claims,
            &EncodingKey::from_rsa_pem(self.pem.as_bytes()).unwrap(),
        )
        .unwrap()
    }
}

pub struct TestIdp {
    pub jwks_url: String,
    shared: Shared,
}

impl TestIdp {
    pub async fn start(keys: &[&SigningKey]) -> Self {
        let shared = Shared {
            jwks: Arc::new(Mutex::new(Jwks::Keys(
                keys.iter().map(|k| k.jwk.clone()).collect(),
            ))),
            hits: Arc::new(AtomicUsize::new(0)),
        };
        let app = Router::new()
            .route("/keys", get(serve_jwks))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self {
            jwks_url: format!("http://{addr}/keys"),
            shared,
        }
    }

    pub fn hits(&self) -> usize {
        self.shared.hits.load(Ordering::SeqCst)
    }

    pub fn set(&self, jwks: Jwks) {
        *self.shared.jwks.lock().unwrap() = jwks;
    }

    /// The gateway configuration trusting this IdP, with one caller.
    pub fn config(&self, operations: &[&str], resources: &[&str]) -> Config {
        let mut config = crate::helpers::test_config();
        config.issuers.insert(
            "idp".into(),
            IssuerConfig {
                issuer: ISSUER.into(),
                audiences: vec![AUDIENCE.into()],
                key: IssuerKey::Jwks {
                    jwks_url: self.jwks_url.parse().unwrap(),
                    algorithms: vec!["RS256".into()],
                    refresh: Duration::from_secs(3600),
                },
                client_claim: "azp".into(),
                leeway: Duration::from_secs(60),
            },
        );
        config.callers.insert(
            "reporting".into(),
            CallerConfig {
                issuer: "idp".into(),
                client_id: CLIENT.into(),
                mode: CallerMode::App,
                user_claim: Some("upn".into()),
                operations: operations.iter().map(|s| s.to_string()).collect(),
                resources: resources.iter().map(|s| s.to_string()).collect(),
                send_as: Vec::new(),
                sites: Vec::new(),
                scopes: None,
            },
        );
        config
    }
}

async fn serve_jwks(State(shared): State<Shared>) -> axum::response::Response {
    shared.hits.fetch_add(1, Ordering::SeqCst);
    match shared.jwks.lock().unwrap().clone() {
        Jwks::Keys(keys) => axum::Json(json!({ "keys": keys })).into_response(),
        Jwks::Status500 => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
        Jwks::Garbage => "<html>not json".into_response(),
    }
}

pub fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// Valid claims for the IdP's caller.
pub fn claims() -> Value {
    json!({
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": CLIENT,
        "azp": CLIENT,
        "iat": now(),
        "nbf": now(),
        "exp": now() + 600,
    })
}
