//! The Entra ID side: the v2.0 token endpoint, OpenID discovery, JWKS, and the
//! RS256 v1.0 access tokens Graph accepts.

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa::{KeyPair, KeySize};
use aws_lc_rs::signature::KeyPair as _;
use axum::body::Bytes;
use axum::extract::{MatchedPath, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::{AppRegistration, Emulator, EmulatorState, TENANT_DOMAIN, clock};

/// The audience of Graph access tokens (v1.0 tokens use the resource URI).
pub(crate) const GRAPH_AUDIENCE: &str = "https://graph.microsoft.com";
/// Graph's well-known application id, also accepted as an audience and a scope prefix.
pub(crate) const GRAPH_APP_ID: &str = "00000003-0000-0000-c000-000000000000";

const TOKEN_ROUTE: &str = "POST /{tenant}/oauth2/v2.0/token";

/// The RSA key the emulator signs with. A fresh one per `Emulator` (Entra rotates too).
pub(crate) struct SigningKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    /// base64url key id; also sent as `x5t`, as Entra does for v1.0 tokens.
    kid: String,
    n: String,
    e: String,
}

impl SigningKeys {
    pub(crate) fn generate() -> SigningKeys {
        // Key generation failing means the crypto library itself is broken; nothing sensible
        // can be served without a key, so this is a startup panic, never a request-time one.
        let key = KeyPair::generate(KeySize::Rsa2048)
            .expect("aws-lc-rs failed to generate an RSA-2048 key");
        let pkcs8 = key
            .as_der()
            .expect("aws-lc-rs failed to serialise the RSA key as PKCS#8");
        // jsonwebtoken's aws-lc signer parses a PKCS#1 `RSAPrivateKey` (`from_rsa_der`), while
        // aws-lc-rs only exports PKCS#8. Its PEM loader unwraps PKCS#8 for us, so go through PEM.
        let pem = pkcs8_pem(pkcs8.as_ref());
        let encoding = EncodingKey::from_rsa_pem(pem.as_bytes())
            .expect("jsonwebtoken rejected the generated RSA key");
        let public = key.public_key();
        let n_bytes = public.modulus().big_endian_without_leading_zero().to_vec();
        let e_bytes = public.exponent().big_endian_without_leading_zero().to_vec();
        let decoding = DecodingKey::from_rsa_raw_components(&n_bytes, &e_bytes);
        // Entra's kid is a base64url SHA-1 certificate thumbprint (27 characters). We have no
        // certificate; 20 bytes of a SHA-256 over the public key give the same look.
        let digest = Sha256::digest(public.as_ref());
        let kid = URL_SAFE_NO_PAD.encode(&digest[..20]);
        SigningKeys {
            encoding,
            decoding,
            kid,
            n: URL_SAFE_NO_PAD.encode(&n_bytes),
            e: URL_SAFE_NO_PAD.encode(&e_bytes),
        }
    }

    pub(crate) fn decoding(&self) -> &DecodingKey {
        &self.decoding
    }

    pub(crate) fn kid(&self) -> &str {
        &self.kid
    }

    fn sign<T: Serialize>(&self, claims: &T) -> Result<String, jsonwebtoken::errors::Error> {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(self.kid.clone());
        header.x5t = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding)
    }
}

fn pkcs8_pem(der: &[u8]) -> String {
    let b64 = STANDARD.encode(der);
    let mut pem = String::from("-----BEGIN PRIVATE KEY-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        pem.push_str(&String::from_utf8_lossy(chunk));
        pem.push('\n');
    }
    pem.push_str("-----END PRIVATE KEY-----\n");
    pem
}

/// Claims of the v1.0 access tokens Graph receives. Optional ones differ between app-only
/// tokens (`roles`, `idtyp: app`) and delegated ones (`scp`, `upn`, `name`, ...).
#[derive(Serialize, Deserialize, Debug, Clone)]
pub(crate) struct AccessTokenClaims {
    pub aud: String,
    pub iss: String,
    pub iat: i64,
    pub nbf: i64,
    pub exp: i64,
    pub aio: String,
    pub app_displayname: String,
    pub appid: String,
    pub appidacr: String,
    pub idp: String,
    pub idtyp: String,
    pub oid: String,
    pub rh: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub roles: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scp: Option<String>,
    pub sub: String,
    pub tid: String,
    pub uti: String,
    pub ver: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upn: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unique_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub given_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub family_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amr: Option<Vec<String>>,
}

/// The object id of an app's service principal in this tenant: stable for a client id.
pub(crate) fn service_principal_id(tenant_id: &str, client_id: &str) -> String {
    let digest = Sha256::digest(format!("sp:{tenant_id}:{}", client_id.to_ascii_lowercase()));
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_random_bytes(bytes)
        .into_uuid()
        .to_string()
}

fn random_b64(bytes: usize) -> String {
    let mut buf = Vec::with_capacity(bytes + 16);
    while buf.len() < bytes {
        buf.extend_from_slice(uuid::Uuid::new_v4().as_bytes());
    }
    buf.truncate(bytes);
    URL_SAFE_NO_PAD.encode(buf)
}

fn base_claims(state: &EmulatorState, app: &AppRegistration) -> AccessTokenClaims {
    let tid = state.config.tenant_id.clone();
    let now = clock::now_unix();
    let lifetime = i64::try_from(state.config.token_lifetime.as_secs()).unwrap_or(i64::MAX / 2);
    let oid = service_principal_id(&tid, &app.client_id);
    AccessTokenClaims {
        aud: GRAPH_AUDIENCE.to_string(),
        iss: format!("https://sts.windows.net/{tid}/"),
        iat: now,
        nbf: now,
        exp: now.saturating_add(lifetime),
        aio: random_b64(42),
        app_displayname: app.display_name.clone(),
        appid: app.client_id.clone(),
        appidacr: "1".to_string(),
        idp: format!("https://sts.windows.net/{tid}/"),
        idtyp: "app".to_string(),
        sub: oid.clone(),
        oid,
        rh: format!("0.A{}AA.", random_b64(33)),
        roles: Some(app.roles.clone()),
        scp: None,
        tid,
        uti: random_b64(16),
        ver: "1.0".to_string(),
        upn: None,
        unique_name: None,
        name: None,
        given_name: None,
        family_name: None,
        amr: None,
    }
}

pub(crate) fn issue_delegated_token(
    state: &EmulatorState,
    client_id: &str,
    user: &str,
    scopes: &[&str],
) -> Option<String> {
    let app = state
        .config
        .apps
        .iter()
        .find(|a| a.client_id.eq_ignore_ascii_case(client_id))?;
    let tenant = state.tenant.read().unwrap_or_else(|p| p.into_inner());
    let u = &tenant.users[tenant.find_user(user)?];
    let mut claims = base_claims(state, app);
    claims.idtyp = "user".to_string();
    claims.roles = None;
    claims.scp = Some(scopes.join(" "));
    claims.oid = u.id.clone();
    // `sub` is pairwise: unique per user *and* app.
    claims.sub = URL_SAFE_NO_PAD.encode(Sha256::digest(format!("{}:{}", u.id, app.client_id)));
    claims.upn = Some(u.user_principal_name.clone());
    claims.unique_name = Some(u.user_principal_name.clone());
    claims.name = Some(u.display_name.clone());
    claims.given_name = u.given_name.clone();
    claims.family_name = u.surname.clone();
    claims.amr = Some(vec!["pwd".to_string()]);
    state.keys.sign(&claims).ok()
}

/// An Entra token-endpoint error: `error`, an AADSTS code and its message.
#[derive(Debug)]
pub(crate) struct EntraError {
    status: StatusCode,
    error: &'static str,
    code: u32,
    message: String,
}

impl EntraError {
    fn new(error: &'static str, code: u32, message: impl Into<String>) -> Self {
        // RFC 6749 §5.2: a failed client authentication may be answered with 401.
        let status = if error == "invalid_client" {
            StatusCode::UNAUTHORIZED
        } else {
            StatusCode::BAD_REQUEST
        };
        EntraError {
            status,
            error,
            code,
            message: message.into(),
        }
    }

    fn missing_parameter(name: &str) -> Self {
        Self::new(
            "invalid_request",
            900144,
            format!("The request body must contain the following parameter: '{name}'."),
        )
    }

    fn tenant_not_found(tenant: &str) -> Self {
        Self::new(
            "invalid_request",
            90002,
            format!(
                "Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud. Check with your subscription administrator, this may happen if there are no active subscriptions for the tenant."
            ),
        )
    }

    fn into_response(self, request_headers: &HeaderMap) -> Response {
        let trace_id = uuid::Uuid::new_v4().to_string();
        // Entra echoes the caller's `client-request-id` as the correlation id.
        let correlation_id = request_headers
            .get("client-request-id")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| uuid::Uuid::parse_str(v).ok())
            .map(|u| u.to_string())
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        let timestamp = clock::entra_timestamp();
        let body = json!({
            "error": self.error,
            "error_description": format!(
                "AADSTS{}: {}\r\nTrace ID: {trace_id}\r\nCorrelation ID: {correlation_id}\r\nTimestamp: {timestamp}",
                self.code, self.message
            ),
            "error_codes": [self.code],
            "timestamp": timestamp,
            "trace_id": trace_id,
            "correlation_id": correlation_id,
            "error_uri": format!("https://login.microsoftonline.com/error?code={}", self.code),
        });
        entra_json(self.status, &body, &trace_id)
    }
}

fn entra_json(status: StatusCode, body: &Value, trace_id: &str) -> Response {
    let mut response = (status, body.to_string()).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-store, no-cache"),
    );
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    if let Ok(v) = HeaderValue::from_str(trace_id) {
        headers.insert("x-ms-request-id", v);
    }
    response
}

/// Which authority the `{tenant}` path segment names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Authority {
    /// The emulated tenant, by GUID or by domain.
    Tenant,
    Organizations,
    Common,
    Consumers,
}

fn resolve_authority(state: &EmulatorState, segment: &str) -> Result<Authority, EntraError> {
    let lower = segment.to_ascii_lowercase();
    if lower == state.config.tenant_id.to_ascii_lowercase() || lower == TENANT_DOMAIN {
        return Ok(Authority::Tenant);
    }
    match lower.as_str() {
        "organizations" => Ok(Authority::Organizations),
        "common" => Ok(Authority::Common),
        "consumers" => Ok(Authority::Consumers),
        _ => Err(EntraError::tenant_not_found(segment)),
    }
}

/// A parsed `application/x-www-form-urlencoded` body. Empty values count as absent.
struct Form(Vec<(String, String)>);

impl Form {
    fn parse(body: &[u8]) -> Form {
        Form(url::form_urlencoded::parse(body).into_owned().collect())
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, v)| k == name && !v.is_empty())
            .map(|(_, v)| v.as_str())
    }
}

/// `POST /{tenant}/oauth2/v2.0/token`.
pub(crate) async fn token(
    State(emulator): State<Emulator>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let state = emulator.state();
    state.recorder.token_request(TOKEN_ROUTE);
    let form = Form::parse(&body);
    match grant(state, &tenant, &headers, &form) {
        Ok(body) => entra_json(StatusCode::OK, &body, &uuid::Uuid::new_v4().to_string()),
        Err(err) => err.into_response(&headers),
    }
}

fn grant(
    state: &EmulatorState,
    tenant: &str,
    headers: &HeaderMap,
    form: &Form,
) -> Result<Value, EntraError> {
    let authority = resolve_authority(state, tenant)?;
    let grant_type = form
        .get("grant_type")
        .ok_or_else(|| EntraError::missing_parameter("grant_type"))?;
    match grant_type {
        "client_credentials" => client_credentials(state, authority, headers, form),
        // Later grants slot in here, each reusing `authenticate_client`:
        // "urn:ietf:params:oauth:grant-type:jwt-bearer" (on-behalf-of),
        // "authorization_code", "refresh_token".
        other => Err(EntraError::new(
            "unsupported_grant_type",
            70003,
            format!("The app requested an unsupported grant type '{other}'."),
        )),
    }
}

fn client_credentials(
    state: &EmulatorState,
    authority: Authority,
    headers: &HeaderMap,
    form: &Form,
) -> Result<Value, EntraError> {
    if matches!(authority, Authority::Common | Authority::Consumers) {
        return Err(EntraError::new(
            "invalid_request",
            9001023,
            "The grant type isn't supported over the /common or /consumers endpoints. Please use the /organizations or tenant-specific endpoint.",
        ));
    }
    let app = authenticate_client(state, headers, form)?;
    let scope = form
        .get("scope")
        .ok_or_else(|| EntraError::missing_parameter("scope"))?;
    check_app_only_scope(scope)?;
    let claims = base_claims(state, app);
    let token = state.keys.sign(&claims).map_err(|err| {
        EntraError::new(
            "temporarily_unavailable",
            50000,
            format!("There was an error issuing a token: {err}"),
        )
    })?;
    let lifetime = state.config.token_lifetime.as_secs();
    Ok(json!({
        "token_type": "Bearer",
        "expires_in": lifetime,
        "ext_expires_in": lifetime,
        "access_token": token,
    }))
}

/// Client authentication, shared by every grant: HTTP Basic (RFC 6749 §2.3.1) or
/// `client_id` + `client_secret` in the body. Certificates (`client_assertion`) are not
/// registered for any app yet.
fn authenticate_client<'a>(
    state: &'a EmulatorState,
    headers: &HeaderMap,
    form: &Form,
) -> Result<&'a AppRegistration, EntraError> {
    let (client_id, secret) = match basic_credentials(headers) {
        Some((id, secret)) => (id, Some(secret)),
        None => (
            form.get("client_id")
                .ok_or_else(|| EntraError::missing_parameter("client_id"))?
                .to_string(),
            form.get("client_secret").map(str::to_string),
        ),
    };
    let app = state
        .config
        .apps
        .iter()
        .find(|a| a.client_id.eq_ignore_ascii_case(&client_id))
        .ok_or_else(|| {
            EntraError::new(
                "unauthorized_client",
                700016,
                format!(
                    "Application with identifier '{client_id}' was not found in the directory '{}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant.",
                    crate::tenant::COMPANY_NAME
                ),
            )
        })?;
    match secret {
        Some(secret) if constant_time_eq(secret.as_bytes(), app.client_secret.as_bytes()) => {
            Ok(app)
        }
        Some(_) => Err(EntraError::new(
            "invalid_client",
            7000215,
            format!(
                "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '{}'.",
                app.client_id
            ),
        )),
        None if form.get("client_assertion").is_some() => Err(EntraError::new(
            "invalid_client",
            700027,
            "Client assertion failed signature validation.",
        )),
        None => Err(EntraError::new(
            "invalid_client",
            7000218,
            "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
        )),
    }
}

/// `Authorization: Basic base64(urlencode(id) ":" urlencode(secret))`.
fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = STANDARD.decode(encoded.trim()).ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    let unescape = |s: &str| -> String {
        url::form_urlencoded::parse(format!("x={s}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default()
    };
    Some((unescape(id), unescape(secret)))
}

/// App-only tokens need exactly one `{resource}/.default` scope, and the only resource
/// here is Graph.
fn check_app_only_scope(scope: &str) -> Result<(), EntraError> {
    let accepted = [
        format!("{GRAPH_AUDIENCE}/.default"),
        format!("{GRAPH_APP_ID}/.default"),
    ];
    let scopes: Vec<&str> = scope.split_whitespace().collect();
    if let [single] = scopes.as_slice() {
        if accepted.iter().any(|a| a.eq_ignore_ascii_case(single)) {
            return Ok(());
        }
        let is_graph = single.to_ascii_lowercase().starts_with(GRAPH_AUDIENCE)
            || single.to_ascii_lowercase().starts_with(GRAPH_APP_ID);
        if is_graph {
            return Err(EntraError::new(
                "invalid_scope",
                1002012,
                format!(
                    "The provided value for scope {single} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI)."
                ),
            ));
        }
    }
    Err(EntraError::new(
        "invalid_scope",
        70011,
        format!(
            "The provided value for the input parameter 'scope' is not valid. The scope {scope} is not valid."
        ),
    ))
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// `GET /{tenant}/v2.0/.well-known/openid-configuration` (and the v1 form without `v2.0`).
pub(crate) async fn openid_configuration(
    State(emulator): State<Emulator>,
    Path(tenant): Path<String>,
    matched: MatchedPath,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let state = emulator.state();
    state
        .recorder
        .other_request(&format!("GET {}", matched.as_str()));
    let authority = match resolve_authority(state, &tenant) {
        Ok(a) => a,
        Err(err) => return err.into_response(&headers),
    };
    let base = crate::graph::base_url(&headers, &uri);
    let v1 = !matched.as_str().contains("/v2.0/");
    let tid = if authority == Authority::Tenant {
        state.config.tenant_id.clone()
    } else {
        "{tenantid}".to_string()
    };
    let issuer = if v1 {
        format!("https://sts.windows.net/{tid}/")
    } else {
        format!("{base}/{tid}/v2.0")
    };
    let (oauth, keys) = if v1 {
        (
            format!("{base}/{tenant}/oauth2"),
            format!("{base}/{tenant}/discovery/keys"),
        )
    } else {
        (
            format!("{base}/{tenant}/oauth2/v2.0"),
            format!("{base}/{tenant}/discovery/v2.0/keys"),
        )
    };
    let body = json!({
        "token_endpoint": format!("{oauth}/token"),
        "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
        "jwks_uri": keys,
        "response_modes_supported": ["query", "fragment", "form_post"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "issuer": issuer,
        "request_uri_parameter_supported": false,
        "userinfo_endpoint": "https://graph.microsoft.com/oidc/userinfo",
        "authorization_endpoint": format!("{oauth}/authorize"),
        "device_authorization_endpoint": format!("{oauth}/devicecode"),
        "http_logout_supported": true,
        "frontchannel_logout_supported": true,
        "end_session_endpoint": format!("{oauth}/logout"),
        "claims_supported": ["sub", "iss", "cloud_instance_name", "cloud_instance_host_name", "cloud_graph_host_name", "msgraph_host", "aud", "exp", "iat", "auth_time", "acr", "nonce", "preferred_username", "name", "tid", "ver", "at_hash", "c_hash", "email"],
        "kerberos_endpoint": format!("{base}/{tenant}/kerberos"),
        "tenant_region_scope": "NA",
        "cloud_instance_name": "microsoftonline.com",
        "cloud_graph_host_name": "graph.windows.net",
        "msgraph_host": "graph.microsoft.com",
        "rbac_url": "https://pas.windows.net",
    });
    entra_json(StatusCode::OK, &body, &uuid::Uuid::new_v4().to_string())
}

/// `GET /{tenant}/discovery/v2.0/keys` (and the v1 form).
pub(crate) async fn jwks(
    State(emulator): State<Emulator>,
    Path(tenant): Path<String>,
    matched: MatchedPath,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let state = emulator.state();
    state
        .recorder
        .other_request(&format!("GET {}", matched.as_str()));
    let authority = match resolve_authority(state, &tenant) {
        Ok(a) => a,
        Err(err) => return err.into_response(&headers),
    };
    let base = crate::graph::base_url(&headers, &uri);
    let tid = if authority == Authority::Tenant {
        state.config.tenant_id.clone()
    } else {
        "{tenantid}".to_string()
    };
    let keys = &state.keys;
    // No `x5c`: the emulator has a bare key, not a certificate.
    let body = json!({
        "keys": [{
            "kty": "RSA",
            "use": "sig",
            "kid": keys.kid,
            "x5t": keys.kid,
            "n": keys.n,
            "e": keys.e,
            "issuer": format!("{base}/{tid}/v2.0"),
        }]
    });
    entra_json(StatusCode::OK, &body, &uuid::Uuid::new_v4().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_key_signs_tokens_its_own_decoding_key_verifies() {
        let keys = SigningKeys::generate();
        let claims = json!({"aud": GRAPH_AUDIENCE, "exp": clock::now_unix() + 60});
        let token = keys.sign(&claims).expect("sign");
        let mut validation = jsonwebtoken::Validation::new(Algorithm::RS256);
        validation.set_audience(&[GRAPH_AUDIENCE]);
        let decoded =
            jsonwebtoken::decode::<Value>(&token, keys.decoding(), &validation).expect("verify");
        assert_eq!(decoded.header.kid.as_deref(), Some(keys.kid()));
        assert_eq!(decoded.header.x5t.as_deref(), Some(keys.kid()));
        assert_eq!(keys.kid().len(), 27);
    }

    #[test]
    fn basic_credentials_are_url_decoded() {
        let mut headers = HeaderMap::new();
        let encoded = STANDARD.encode("my%20app:s%3Acret");
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(&format!("Basic {encoded}")).expect("header"),
        );
        assert_eq!(
            basic_credentials(&headers),
            Some(("my app".to_string(), "s:cret".to_string()))
        );
    }
}
