//! Rich change notifications from the real emulator: a subscription with
//! `includeResourceData`, a receiver on port 0 that captures what Graph POSTs, and
//! `webhooks::rich` verifying and decrypting it, including the catalogue row 71 refusals.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{StatusCode as AxStatus, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use graph_emulator::{
    CHANGE_TRACKING_APP_ID, DEFAULT_CLIENT_ID, DEMO_USER_UPN, Emulator, RunningEmulator,
};
use m365_gateway::auth::JwksKeys;
use m365_gateway::webhooks::rich::{
    self, EncryptedContent, RichError, RichKeyRing, RichKeys, ValidationTokenChecker,
};
use reqwest::StatusCode;
use serde_json::{Map, Value, json};

use crate::helpers::{graph_app_token, loopback};

const CERT_PEM: &str = include_str!("../fixtures/certs/cert.pem");
const KEY_PEM: &str = include_str!("../fixtures/certs/key.pem");
const CERT_ID: &str = "rich-test-cert";
const SUBJECT: &str = "Board pack, strictly confidential";
/// A tenant the emulator is not.
const OTHER_TENANT: &str = "9d8c7b6a-5f4e-4d3c-b2a1-0f9e8d7c6b5a";

/// Notification bodies the receiver got (handshakes answered, not kept).
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<Value>>>);

async fn receive(
    State(captured): State<Captured>,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    // The handshake: answer 200 text/plain with the URL-decoded token.
    let token = query.as_deref().and_then(|q| {
        url::form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k == "validationToken")
            .map(|(_, v)| v.into_owned())
    });
    if let Some(token) = token {
        return (
            AxStatus::OK,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            token,
        )
            .into_response();
    }
    if let Ok(body) = serde_json::from_slice(&body) {
        captured.0.lock().unwrap().push(body);
    }
    AxStatus::ACCEPTED.into_response()
}

/// An emulator, and the first rich notification collection it POSTed after mail reached
/// the demo user's Inbox.
struct Delivered {
    emu: RunningEmulator,
    http: reqwest::Client,
    /// The app-only Graph token the subscription was made with.
    app_token: String,
    collection: Value,
}

impl Delivered {
    fn tenant(&self) -> String {
        self.emu.emulator.tenant_id().to_owned()
    }

    fn tokens(&self) -> Vec<String> {
        self.collection["validationTokens"]
            .as_array()
            .expect("validationTokens")
            .iter()
            .map(|t| t.as_str().unwrap().to_owned())
            .collect()
    }

    fn contents(&self) -> Vec<Option<EncryptedContent>> {
        self.collection["value"]
            .as_array()
            .unwrap()
            .iter()
            .map(|item| {
                item.get("encryptedContent")
                    .map(|c| serde_json::from_value(c.clone()).expect("encryptedContent"))
            })
            .collect()
    }

    /// A checker of the emulator's keys, as `app_id` serving `tenants`.
    fn checker(&self, app_id: &str, tenants: &[&str]) -> ValidationTokenChecker {
        let jwks = JwksKeys::new(
            "entra".into(),
            format!(
                "{}/{}/discovery/v2.0/keys",
                self.emu.base_url(),
                self.tenant()
            )
            .parse()
            .unwrap(),
            vec![jsonwebtoken::Algorithm::RS256],
            Duration::from_secs(3600),
            self.http.clone(),
        );
        ValidationTokenChecker::new(
            Arc::new(jwks),
            app_id.to_owned(),
            tenants.iter().map(|t| t.to_string()).collect(),
        )
    }

    /// What the gateway would configure: our client id, the emulator's tenant.
    fn our_checker(&self) -> ValidationTokenChecker {
        self.checker(DEFAULT_CLIENT_ID, &[&self.tenant()])
    }
}

fn ring() -> RichKeyRing {
    RichKeyRing::new(
        RichKeys::load(CERT_PEM, KEY_PEM, CERT_ID).expect("fixture keys"),
        Vec::new(),
    )
}

async fn graph(
    http: &reqwest::Client,
    emu: &RunningEmulator,
    token: &str,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let url = format!("{}{path}", emu.graph_url());
    let request = match body {
        Some(body) => http.post(url).json(&body),
        None => http.get(url),
    };
    let response = request.bearer_auth(token).send().await.unwrap();
    let status = response.status();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// Subscribes to the demo user's Inbox with resource data, sends them mail, and waits for
/// the `created` notification.
async fn deliver_rich_notification() -> Delivered {
    let emu = Emulator::spawn(Default::default(), loopback())
        .await
        .expect("emulator");
    let http = reqwest::Client::new();
    let app_token = graph_app_token(&http, &emu.base_url(), emu.emulator.tenant_id()).await;

    let captured = Captured::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let receiver = format!("http://{}/graph/rich", listener.local_addr().unwrap());
    let app = axum::Router::new()
        .fallback(receive)
        .with_state(captured.clone());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });

    let (status, user) = graph(
        &http,
        &emu,
        &app_token,
        &format!("/users/{DEMO_USER_UPN}"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{user}");
    let user_id = user["id"].as_str().unwrap();
    let expires = (time::OffsetDateTime::now_utc() + time::Duration::minutes(60))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let cert = RichKeys::load(CERT_PEM, KEY_PEM, CERT_ID).unwrap();
    let (status, sub) = graph(
        &http,
        &emu,
        &app_token,
        "/subscriptions",
        Some(json!({
            "changeType": "created",
            "notificationUrl": receiver,
            "resource": format!("users/{user_id}/mailFolders('inbox')/messages"),
            "expirationDateTime": expires,
            "clientState": "rich-test",
            "includeResourceData": true,
            "encryptionCertificate": cert.certificate_base64(),
            "encryptionCertificateId": cert.certificate_id(),
        })),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{sub}");

    let (status, sent) = graph(
        &http,
        &emu,
        &app_token,
        "/users/siobhan.obrien@kestrelridge.example/sendMail",
        Some(json!({"message": {
            "subject": SUBJECT,
            "body": {"contentType": "Text", "content": "see attached"},
            "toRecipients": [{"emailAddress": {"address": DEMO_USER_UPN}}],
        }})),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{sent}");

    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let collection = loop {
        let found = captured.0.lock().unwrap().iter().find_map(|body| {
            body["value"]
                .as_array()?
                .iter()
                .any(|i| i.get("encryptedContent").is_some())
                .then(|| body.clone())
        });
        if let Some(body) = found {
            break body;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no rich notification arrived"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    };
    Delivered {
        emu,
        http,
        app_token,
        collection,
    }
}

async fn open(
    checker: &ValidationTokenChecker,
    tokens: Option<&[String]>,
    contents: &[Option<EncryptedContent>],
) -> Result<Vec<Result<Option<Value>, RichError>>, RichError> {
    let items: Vec<Option<&EncryptedContent>> = contents.iter().map(Option::as_ref).collect();
    rich::open_collection(checker, &ring(), tokens, &items).await
}

/// The claims of a JWT, unverified (for re-signing and for asserting preconditions).
fn claims_of(token: &str) -> Map<String, Value> {
    let payload = token.split('.').nth(1).unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

/// `claims` signed RS256 with the fixture key (not one the emulator publishes) under `kid`.
fn sign_with_attacker_key(claims: &Map<String, Value>, kid: &str) -> String {
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.kid = Some(kid.to_owned());
    let key = jsonwebtoken::EncodingKey::from_rsa_pem(KEY_PEM.as_bytes()).unwrap();
    jsonwebtoken::encode(&header, claims, &key).unwrap()
}

#[tokio::test]
async fn a_rich_notification_from_the_emulator_opens_to_the_message_it_announces() {
    // Arrange
    let delivered = deliver_rich_notification().await;
    let tokens = delivered.tokens();
    let contents = delivered.contents();
    // Act
    let opened = open(&delivered.our_checker(), Some(&tokens), &contents)
        .await
        .expect("the collection is accepted");
    // Assert
    let items = delivered.collection["value"].as_array().unwrap();
    assert_eq!(opened.len(), items.len());
    let (index, message) = opened
        .iter()
        .enumerate()
        .find_map(|(i, r)| r.as_ref().ok()?.as_ref().map(|m| (i, m)))
        .expect("a decrypted item");
    assert_eq!(message["subject"], SUBJECT);
    assert_eq!(message["id"], items[index]["resourceData"]["id"]);
    assert_eq!(
        contents[index]
            .as_ref()
            .unwrap()
            .encryption_certificate_thumbprint,
        ring().active().thumbprint()
    );
}

#[tokio::test]
async fn a_validation_token_signed_with_another_key_is_refused() {
    // Arrange: Graph's own claims and kid, signed with a key the JWKS does not hold.
    let delivered = deliver_rich_notification().await;
    let genuine = delivered.tokens().remove(0);
    let kid = jsonwebtoken::decode_header(&genuine).unwrap().kid.unwrap();
    let forged = sign_with_attacker_key(&claims_of(&genuine), &kid);
    let checker = delivered.our_checker();
    // Act + Assert
    assert!(matches!(
        checker.check(std::slice::from_ref(&forged)).await,
        Err(RichError::TokenSignature)
    ));
    let unknown_kid = sign_with_attacker_key(&claims_of(&genuine), "attacker-kid");
    assert!(matches!(
        checker.check(&[unknown_kid]).await,
        Err(RichError::TokenKeyUnknown)
    ));
    // The genuine token still passes, so the refusals above are the signature's doing.
    checker.check(&[genuine]).await.unwrap();
}

#[tokio::test]
async fn one_forged_token_among_genuine_ones_refuses_the_whole_collection() {
    let delivered = deliver_rich_notification().await;
    let genuine = delivered.tokens().remove(0);
    let kid = jsonwebtoken::decode_header(&genuine).unwrap().kid.unwrap();
    let forged = sign_with_attacker_key(&claims_of(&genuine), &kid);
    let tokens = vec![genuine, forged];
    let refused = open(
        &delivered.our_checker(),
        Some(&tokens),
        &delivered.contents(),
    )
    .await;
    assert!(matches!(refused, Err(RichError::TokenSignature)));
}

#[tokio::test]
async fn a_validation_token_for_another_app_is_refused() {
    // The emulator's token names the subscribing app (DEFAULT_CLIENT_ID); we are another.
    let delivered = deliver_rich_notification().await;
    let checker = delivered.checker(
        "5d1c9a2e-7b3f-4e8a-9c6d-1f2e3a4b5c6d",
        &[&delivered.tenant()],
    );
    let refused = open(&checker, Some(&delivered.tokens()), &delivered.contents()).await;
    assert!(matches!(refused, Err(RichError::TokenAudience)));
}

#[tokio::test]
async fn a_graph_access_token_replayed_as_a_validation_token_is_refused_for_its_appid() {
    // Arrange: a token the emulator genuinely signed, from our tenant's v1 issuer, whose
    // appid is an ordinary app, not Change Tracking. Its aud is Graph, so a checker
    // expecting that aud isolates the appid check.
    let delivered = deliver_rich_notification().await;
    let claims = claims_of(&delivered.app_token);
    let tenant = delivered.tenant();
    assert_eq!(claims["iss"], format!("https://sts.windows.net/{tenant}/"));
    assert_eq!(claims["tid"], tenant.as_str());
    assert_eq!(claims["appid"], DEFAULT_CLIENT_ID);
    assert_ne!(claims["appid"], CHANGE_TRACKING_APP_ID);
    let aud = claims["aud"].as_str().unwrap();
    let checker = delivered.checker(aud, &[&tenant]);
    // Act
    let refused = open(
        &checker,
        Some(std::slice::from_ref(&delivered.app_token)),
        &delivered.contents(),
    )
    .await;
    // Assert
    assert!(
        matches!(refused, Err(RichError::TokenPublisher)),
        "{refused:?}"
    );
}

#[tokio::test]
async fn an_expired_validation_token_is_refused() {
    // The emulator's tokens live an hour; check them as of two hours from now.
    let delivered = deliver_rich_notification().await;
    let tokens = delivered.tokens();
    let later = time::OffsetDateTime::now_utc().unix_timestamp() + 2 * 3600;
    let checker = delivered.our_checker();
    assert!(matches!(
        checker.check_at(&tokens, later).await,
        Err(RichError::TokenExpired)
    ));
    // And as of now they pass: the clock is what refused them.
    checker.check(&tokens).await.unwrap();
}

#[tokio::test]
async fn a_validation_token_from_a_tenant_we_do_not_serve_is_refused() {
    let delivered = deliver_rich_notification().await;
    let checker = delivered.checker(DEFAULT_CLIENT_ID, &[OTHER_TENANT]);
    let refused = open(&checker, Some(&delivered.tokens()), &delivered.contents()).await;
    assert!(matches!(refused, Err(RichError::TokenTenant)));
}

#[tokio::test]
async fn encrypted_content_without_validation_tokens_is_refused() {
    let delivered = deliver_rich_notification().await;
    let checker = delivered.our_checker();
    let contents = delivered.contents();
    assert!(matches!(
        open(&checker, None, &contents).await,
        Err(RichError::ValidationTokensMissing)
    ));
    assert!(matches!(
        open(&checker, Some(&[]), &contents).await,
        Err(RichError::ValidationTokensMissing)
    ));
    // Without encrypted items there is nothing to vouch for.
    let plain: Vec<Option<EncryptedContent>> = vec![None];
    assert_eq!(open(&checker, None, &plain).await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_tampered_item_is_refused_alone() {
    // Arrange: the genuine item twice, one copy with a bit of `data` flipped.
    let delivered = deliver_rich_notification().await;
    let genuine = delivered
        .contents()
        .into_iter()
        .flatten()
        .next()
        .expect("an encrypted item");
    let mut tampered = genuine.clone();
    let mut data = STANDARD.decode(&tampered.data).unwrap();
    data[0] ^= 0x01;
    tampered.data = STANDARD.encode(data);
    // Act
    let opened = open(
        &delivered.our_checker(),
        Some(&delivered.tokens()),
        &[Some(genuine), Some(tampered)],
    )
    .await
    .expect("the tokens are genuine");
    // Assert
    assert_eq!(
        opened[0].as_ref().unwrap().as_ref().unwrap()["subject"],
        SUBJECT
    );
    assert!(matches!(opened[1], Err(RichError::BadSignature)));
}
