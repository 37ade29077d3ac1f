//! Shared helpers: start an emulator on port 0 and talk to it over real HTTP.
#![allow(dead_code)] // each test binary uses a different subset

use std::net::SocketAddr;

use graph_emulator::{
    DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, Emulator, EmulatorConfig, RunningEmulator,
};
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde_json::Value;

pub const GRAPH_SCOPE: &str = "https://graph.microsoft.com/.default";

pub struct Harness {
    pub emu: RunningEmulator,
    pub client: reqwest::Client,
    pub token: String,
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub text: String,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// `error.code` of a Graph error body.
    pub fn error_code(&self) -> String {
        self.json()["error"]["code"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    pub fn error_message(&self) -> String {
        self.json()["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }
}

pub fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

pub async fn start() -> Harness {
    start_with(EmulatorConfig::default()).await
}

pub async fn start_with(config: EmulatorConfig) -> Harness {
    let emu = Emulator::spawn(config, loopback())
        .await
        .expect("spawn emulator");
    let client = reqwest::Client::new();
    let token = fetch_token(
        &client,
        &emu.base_url(),
        DEFAULT_CLIENT_ID,
        DEFAULT_CLIENT_SECRET,
    )
    .await;
    Harness { emu, client, token }
}

/// A client-credentials token, or a panic with Entra's answer.
pub async fn fetch_token(
    client: &reqwest::Client,
    base: &str,
    client_id: &str,
    secret: &str,
) -> String {
    let reply = client
        .post(format!(
            "{base}/{}/oauth2/v2.0/token",
            graph_emulator::DEFAULT_TENANT_ID
        ))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", client_id),
            ("client_secret", secret),
            ("scope", GRAPH_SCOPE),
        ])
        .send()
        .await
        .expect("token request");
    let status = reply.status();
    let body: Value = reply.json().await.expect("token JSON");
    assert_eq!(status, StatusCode::OK, "{body}");
    body["access_token"]
        .as_str()
        .expect("access_token")
        .to_string()
}

impl Harness {
    /// `GET {graph}/{path_and_query}` with the default app's token.
    pub async fn get(&self, path_and_query: &str) -> Reply {
        self.get_with(path_and_query, &[]).await
    }

    pub async fn get_eventual(&self, path_and_query: &str) -> Reply {
        self.get_with(path_and_query, &[("ConsistencyLevel", "eventual")])
            .await
    }

    pub async fn get_with(&self, path_and_query: &str, headers: &[(&str, &str)]) -> Reply {
        let url = if path_and_query.starts_with("http") {
            path_and_query.to_string()
        } else {
            format!("{}{}", self.emu.graph_url(), path_and_query)
        };
        let mut request = self.client.get(url).bearer_auth(&self.token);
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        reply(request.send().await.expect("request")).await
    }

    pub async fn get_with_token(&self, path_and_query: &str, token: Option<&str>) -> Reply {
        let mut request = self
            .client
            .get(format!("{}{}", self.emu.graph_url(), path_and_query));
        if let Some(t) = token {
            request = request.bearer_auth(t);
        }
        reply(request.send().await.expect("request")).await
    }

    pub async fn batch(&self, body: &Value) -> Reply {
        let request = self
            .client
            .post(format!("{}/$batch", self.emu.graph_url()))
            .bearer_auth(&self.token)
            .json(body);
        reply(request.send().await.expect("request")).await
    }

    /// Any method on `{graph}/{path_and_query}` (or an absolute URL) with a JSON body, as
    /// `token` (the default app's when `None`), with extra headers.
    pub async fn call(
        &self,
        method: reqwest::Method,
        path_and_query: &str,
        body: Option<&Value>,
        token: Option<&str>,
        headers: &[(&str, &str)],
    ) -> Reply {
        let url = if path_and_query.starts_with("http") {
            path_and_query.to_string()
        } else {
            format!("{}{}", self.emu.graph_url(), path_and_query)
        };
        let mut request = self
            .client
            .request(method, url)
            .bearer_auth(token.unwrap_or(&self.token));
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        reply(request.send().await.expect("request")).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> Reply {
        self.call(reqwest::Method::POST, path, Some(body), None, &[])
            .await
    }

    pub async fn patch(&self, path: &str, body: &Value) -> Reply {
        self.call(reqwest::Method::PATCH, path, Some(body), None, &[])
            .await
    }

    pub async fn delete(&self, path: &str) -> Reply {
        self.call(reqwest::Method::DELETE, path, None, None, &[])
            .await
    }

    /// Follows `@odata.nextLink` to the end; returns every item.
    pub async fn get_all(&self, first: &str, headers: &[(&str, &str)]) -> (Vec<Value>, usize) {
        let mut items = Vec::new();
        let mut pages = 0;
        let mut next = Some(first.to_string());
        while let Some(url) = next {
            let reply = self.get_with(&url, headers).await;
            assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
            let body = reply.json();
            items.extend(body["value"].as_array().expect("value").iter().cloned());
            next = body["@odata.nextLink"].as_str().map(str::to_string);
            pages += 1;
            assert!(pages < 100_000, "runaway paging");
        }
        (items, pages)
    }

    /// The id of a user by UPN.
    pub async fn user_id(&self, upn: &str) -> String {
        let reply = self.get(&format!("/users/{upn}?$select=id")).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
        reply.json()["id"].as_str().expect("id").to_string()
    }

    /// The one person without a manager (the shared mailbox has none either).
    pub async fn ceo(&self) -> Value {
        let (users, _) = self
            .get_all("/users?$top=999&$expand=manager($select=id)", &[])
            .await;
        let ceos: Vec<Value> = users
            .into_iter()
            .filter(|u| {
                u.get("manager").is_none()
                    && u["userPrincipalName"] != graph_emulator::SHARED_MAILBOX_UPN
            })
            .collect();
        assert_eq!(ceos.len(), 1, "exactly one user without a manager");
        ceos[0].clone()
    }

    pub async fn group_id(&self, display_name: &str) -> String {
        let reply = self
            .get(&format!(
                "/groups?$filter=displayName eq '{display_name}'&$select=id"
            ))
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
        reply.json()["value"][0]["id"]
            .as_str()
            .expect("group id")
            .to_string()
    }
}

pub async fn reply(response: reqwest::Response) -> Reply {
    let status = response.status();
    let headers = response.headers().clone();
    let text = response.text().await.expect("body");
    Reply {
        status,
        headers,
        text,
    }
}

/// A Graph id percent-encoded for a path segment (`=` → `%3D`, `-`/`_` kept).
pub fn enc(id: &str) -> String {
    percent_encoding::utf8_percent_encode(id, percent_encoding::NON_ALPHANUMERIC)
        .to_string()
        .replace("%2D", "-")
        .replace("%5F", "_")
}

/// The sorted key set of a JSON object.
pub fn keys(v: &Value) -> Vec<String> {
    let mut k: Vec<String> = v
        .as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default();
    k.sort();
    k
}

pub fn sorted(mut v: Vec<&str>) -> Vec<String> {
    v.sort();
    v.into_iter().map(str::to_string).collect()
}

// --- identity helpers ------------------------------------------------------------------

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};

/// The test-only certificate and key of tests/fixtures/certs (see its README).
pub const TEST_CERT_PEM: &str = include_str!("../fixtures/certs/cert.pem");
pub const TEST_KEY_PEM: &str = include_str!("../fixtures/certs/key.pem");

pub const JWT_BEARER_ASSERTION_TYPE: &str =
    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
pub const OBO_GRANT: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

/// `POST {base}/{tenant}/oauth2/v2.0/token` with a form body.
pub async fn token_request(emu: &RunningEmulator, tenant: &str, form: &[(&str, &str)]) -> Reply {
    let client = reqwest::Client::new();
    let response = client
        .post(format!("{}/{tenant}/oauth2/v2.0/token", emu.base_url()))
        .form(form)
        .send()
        .await
        .expect("token request");
    reply(response).await
}

/// A token-endpoint success body, or a panic with Entra's answer.
pub async fn token_ok(emu: &RunningEmulator, form: &[(&str, &str)]) -> Value {
    let reply = token_request(emu, graph_emulator::DEFAULT_TENANT_ID, form).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    reply.json()
}

/// The header (0) or payload (1) of a JWT, unverified.
pub fn jwt_part(token: &str, index: usize) -> Value {
    let part = token.split('.').nth(index).expect("JWT part");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).expect("base64url")).expect("JSON")
}

pub fn claims(token: &str) -> Value {
    jwt_part(token, 1)
}

/// Checks an Entra error: status, `error`, `error_codes`, the `AADSTS<code>: ` prefix and
/// the Trace/Correlation/Timestamp suffix. Extra keys (`suberror`, `claims`) are allowed.
pub fn assert_aadsts(reply: &Reply, status: StatusCode, error: &str, code: u64) -> Value {
    assert_eq!(reply.status, status, "{}", reply.text);
    let body = reply.json();
    assert_eq!(body["error"], error, "{}", reply.text);
    assert_eq!(
        body["error_codes"],
        serde_json::json!([code]),
        "{}",
        reply.text
    );
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
    body
}

/// The AADSTS message of an error body, without code and suffix.
pub fn aadsts_message(body: &Value) -> String {
    let d = body["error_description"].as_str().unwrap_or_default();
    let d = d.split_once(": ").map_or(d, |(_, rest)| rest);
    d.split("\r\nTrace ID:")
        .next()
        .unwrap_or_default()
        .to_string()
}

/// DER of a PEM certificate.
pub fn pem_der(pem: &str) -> Vec<u8> {
    let b64: String = pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect::<Vec<_>>()
        .concat();
    STANDARD.decode(b64).expect("PEM base64")
}

/// base64url SHA-1 (`x5t`) and SHA-256 (`x5t#S256`) thumbprints of a PEM certificate.
pub fn thumbprints(pem: &str) -> (String, String) {
    use aws_lc_rs::digest;
    let der = pem_der(pem);
    (
        URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA1_FOR_LEGACY_USE_ONLY, &der)),
        URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, &der)),
    )
}

/// Which thumbprint header an assertion carries.
pub enum Thumb {
    X5t(String),
    X5tS256(String),
}

/// Signs a client assertion (or any JWT) with a PEM private key.
pub fn sign_jwt(
    alg: jsonwebtoken::Algorithm,
    thumb: Thumb,
    key_pem: &str,
    claims: &Value,
) -> String {
    let mut header = jsonwebtoken::Header::new(alg);
    match thumb {
        Thumb::X5t(t) => header.x5t = Some(t),
        Thumb::X5tS256(t) => header.x5t_s256 = Some(t),
    }
    let key = jsonwebtoken::EncodingKey::from_rsa_pem(key_pem.as_bytes()).expect("RSA key");
    jsonwebtoken::encode(&header, claims, &key).expect("sign")
}

/// The claims of a client assertion for `client_id` at this emulator's token endpoint.
pub fn assertion_claims(emu: &RunningEmulator, client_id: &str, lifetime: i64) -> Value {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64;
    serde_json::json!({
        "aud": format!("{}/{}/oauth2/v2.0/token", emu.base_url(), graph_emulator::DEFAULT_TENANT_ID),
        "iss": client_id,
        "sub": client_id,
        "jti": uuid::Uuid::new_v4().to_string(),
        "nbf": now,
        "iat": now,
        "exp": now + lifetime,
    })
}

/// An RSA-2048 private key (PKCS#8 PEM) that no certificate belongs to.
pub fn stray_key_pem() -> String {
    use aws_lc_rs::encoding::AsDer;
    let key = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).expect("key");
    let der = key.as_der().expect("der");
    let b64 = STANDARD.encode(der.as_ref());
    let mut pem = String::from("-----BEGIN PRIVATE KEY-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(chunk).expect("ascii"));
        pem.push('\n');
    }
    pem.push_str("-----END PRIVATE KEY-----\n");
    pem
}

/// A PKCE pair: `(verifier, S256 challenge)`.
pub fn pkce() -> (String, String) {
    use sha2::Digest;
    let verifier = format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    let challenge = URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier.as_bytes()));
    (verifier, challenge)
}

/// `GET /authorize` without following the redirect: `(status, Location, body)`.
pub async fn authorize(
    emu: &RunningEmulator,
    params: &[(&str, &str)],
) -> (StatusCode, Option<url::Url>, String) {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let mut url = url::Url::parse(&format!(
        "{}/{}/oauth2/v2.0/authorize",
        emu.base_url(),
        graph_emulator::DEFAULT_TENANT_ID
    ))
    .expect("url");
    url.query_pairs_mut().extend_pairs(params.iter());
    let response = client.get(url).send().await.expect("authorize");
    let status = response.status();
    let location = response
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| url::Url::parse(v).ok());
    let body = response.text().await.unwrap_or_default();
    (status, location, body)
}

/// A query parameter of a redirect.
pub fn param(url: &url::Url, name: &str) -> Option<String> {
    url.query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

pub mod files;
