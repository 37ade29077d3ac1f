//! The Entra ID side: the v2.0 token endpoint (client credentials, on-behalf-of,
//! authorization code + PKCE, refresh tokens; client secrets and certificate assertions),
//! `/authorize`, OpenID discovery, JWKS, and the RS256 tokens Graph and APIs accept.

mod authorize;
mod certs;
mod clients;
mod faults;
mod grants;
mod keys;
mod scopes;
mod sessions;
mod tokens;

use axum::body::Bytes;
use axum::extract::{MatchedPath, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

use crate::{Emulator, EmulatorState, TENANT_DOMAIN, clock};

pub(crate) use authorize::authorize;
pub(crate) use certs::{hex_upper, subject_public_key_info};
pub(crate) use clients::AppDirectory;
pub(crate) use faults::inject_faults;
pub(crate) use keys::KeyRing;
pub(crate) use sessions::Sessions;
pub(crate) use tokens::{
    AccessTokenClaims, issue_delegated_token, issue_user_token, service_principal_id,
};

/// The audience of Graph access tokens (v1.0 tokens use the resource URI).
pub(crate) const GRAPH_AUDIENCE: &str = "https://graph.microsoft.com";
/// Graph's well-known application id, also accepted as an audience and a scope prefix.
pub(crate) const GRAPH_APP_ID: &str = "00000003-0000-0000-c000-000000000000";

const TOKEN_ROUTE: &str = "POST /{tenant}/oauth2/v2.0/token";

const GRANT_CLIENT_CREDENTIALS: &str = "client_credentials";
const GRANT_JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
const GRANT_AUTHORIZATION_CODE: &str = "authorization_code";
const GRANT_REFRESH_TOKEN: &str = "refresh_token";

/// An Entra token-endpoint error: `error`, an AADSTS code and its message, and for some
/// errors a `suberror` (consent_required) or a `claims` challenge (Conditional Access).
#[derive(Debug)]
pub(crate) struct EntraError {
    status: StatusCode,
    pub(crate) error: &'static str,
    pub(crate) code: u32,
    message: String,
    suberror: Option<&'static str>,
    claims: Option<String>,
}

/// The ids and time stamped on one error.
struct Stamp {
    trace_id: String,
    correlation_id: String,
    timestamp: String,
}

impl Stamp {
    fn new(request_headers: &HeaderMap) -> Stamp {
        // Entra echoes the caller's `client-request-id` as the correlation id.
        let correlation_id = request_headers
            .get("client-request-id")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| uuid::Uuid::parse_str(v).ok())
            .map(|u| u.to_string())
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        Stamp {
            trace_id: uuid::Uuid::new_v4().to_string(),
            correlation_id,
            timestamp: clock::entra_timestamp(),
        }
    }
}

impl EntraError {
    pub(crate) fn new(error: &'static str, code: u32, message: impl Into<String>) -> Self {
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
            suberror: None,
            claims: None,
        }
    }

    pub(crate) fn invalid_grant(code: u32, message: impl Into<String>) -> Self {
        Self::new("invalid_grant", code, message)
    }

    pub(crate) fn invalid_client(code: u32, message: impl Into<String>) -> Self {
        Self::new("invalid_client", code, message)
    }

    pub(crate) fn invalid_request(code: u32, message: impl Into<String>) -> Self {
        Self::new("invalid_request", code, message)
    }

    /// The same error with another HTTP status (a 503 or 504 from a fault rule).
    fn with_status(mut self, status: StatusCode) -> Self {
        self.status = status;
        self
    }

    pub(crate) fn message(&self) -> &str {
        &self.message
    }

    pub(crate) fn with_suberror(mut self, suberror: &'static str) -> Self {
        self.suberror = Some(suberror);
        self
    }

    pub(crate) fn with_claims(mut self, claims: String) -> Self {
        self.claims = Some(claims);
        self
    }

    pub(crate) fn missing_parameter(name: &str) -> Self {
        Self::invalid_request(
            900144,
            format!("The request body must contain the following parameter: '{name}'."),
        )
    }

    fn tenant_not_found(tenant: &str) -> Self {
        Self::invalid_request(
            90002,
            format!(
                "Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud. Check with your subscription administrator, this may happen if there are no active subscriptions for the tenant."
            ),
        )
    }

    /// A token could not be signed (never expected: the key is our own).
    pub(crate) fn signing_failed(err: &jsonwebtoken::errors::Error) -> Self {
        Self::new(
            "temporarily_unavailable",
            50000,
            format!("There was an error issuing a token: {err}"),
        )
    }

    fn description(&self, stamp: &Stamp) -> String {
        format!(
            "AADSTS{}: {}\r\nTrace ID: {}\r\nCorrelation ID: {}\r\nTimestamp: {}",
            self.code, self.message, stamp.trace_id, stamp.correlation_id, stamp.timestamp
        )
    }

    fn error_uri(&self) -> String {
        format!("https://login.microsoftonline.com/error?code={}", self.code)
    }

    fn into_response(self, request_headers: &HeaderMap) -> Response {
        let stamp = Stamp::new(request_headers);
        let mut body = json!({
            "error": self.error,
            "error_description": self.description(&stamp),
            "error_codes": [self.code],
            "timestamp": stamp.timestamp,
            "trace_id": stamp.trace_id,
            "correlation_id": stamp.correlation_id,
            "error_uri": self.error_uri(),
        });
        if let Some(suberror) = self.suberror {
            body["suberror"] = Value::from(suberror);
        }
        if let Some(claims) = &self.claims {
            body["claims"] = Value::from(claims.as_str());
        }
        entra_json(self.status, &body, &stamp.trace_id)
    }

    /// The parameters of an error redirect from `/authorize` (RFC 6749 §4.1.2.1).
    pub(crate) fn redirect_params(
        &self,
        request_headers: &HeaderMap,
    ) -> Vec<(&'static str, String)> {
        let stamp = Stamp::new(request_headers);
        let mut params = vec![
            ("error", self.error.to_string()),
            ("error_description", self.description(&stamp)),
            ("error_uri", self.error_uri()),
        ];
        if let Some(suberror) = self.suberror {
            params.push(("suberror", suberror.to_string()));
        }
        params
    }

    /// An error `/authorize` must not redirect (unknown client, unregistered redirect URI,
    /// unknown tenant): Entra shows its own error page.
    pub(crate) fn into_page(self, request_headers: &HeaderMap) -> Response {
        let stamp = Stamp::new(request_headers);
        let escape = |s: &str| {
            s.replace('&', "&amp;")
                .replace('<', "&lt;")
                .replace('>', "&gt;")
                .replace('"', "&quot;")
                .replace('\'', "&#39;")
        };
        let html = format!(
            "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>Sign in to your account</title></head>\n<body><h1>Sorry, but we're having trouble signing you in.</h1>\n<p id=\"error\">AADSTS{}: {}</p>\n<p>Trace ID: {}<br>Correlation ID: {}<br>Timestamp: {}</p></body></html>\n",
            self.code,
            escape(&self.message),
            stamp.trace_id,
            stamp.correlation_id,
            stamp.timestamp
        );
        let mut response = (StatusCode::BAD_REQUEST, html).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        );
        response
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
pub(crate) enum Authority {
    /// The emulated tenant, by GUID or by domain.
    Tenant,
    Organizations,
    Common,
    Consumers,
}

pub(crate) fn resolve_authority(
    state: &EmulatorState,
    segment: &str,
) -> Result<Authority, EntraError> {
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

/// A parsed `application/x-www-form-urlencoded` body (or query). Empty values count as absent.
pub(crate) struct Form(Vec<(String, String)>);

impl Form {
    pub(crate) fn parse(body: &[u8]) -> Form {
        Form(url::form_urlencoded::parse(body).into_owned().collect())
    }

    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, v)| k == name && !v.is_empty())
            .map(|(_, v)| v.as_str())
    }
}

/// One token-endpoint request, with what every grant needs to know about it.
pub(crate) struct TokenRequest<'a> {
    pub state: &'a EmulatorState,
    pub authority: Authority,
    /// The `{tenant}` path segment as sent.
    pub tenant_segment: &'a str,
    /// `http://host:port`: where this emulator was reached (client assertions' `aud`).
    pub base: String,
    pub headers: &'a HeaderMap,
    pub form: &'a Form,
}

/// How `Stats::token_requests_by_grant` counts a token request.
fn grant_label(form: &Form) -> &'static str {
    match form.get("grant_type") {
        None => "(missing)",
        Some(GRANT_CLIENT_CREDENTIALS) => GRANT_CLIENT_CREDENTIALS,
        Some(GRANT_JWT_BEARER) => GRANT_JWT_BEARER,
        Some(GRANT_AUTHORIZATION_CODE) => GRANT_AUTHORIZATION_CODE,
        Some(GRANT_REFRESH_TOKEN) => GRANT_REFRESH_TOKEN,
        Some(_) => "(unsupported)",
    }
}

/// `POST /{tenant}/oauth2/v2.0/token`.
pub(crate) async fn token(
    State(emulator): State<Emulator>,
    Path(tenant): Path<String>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let state = emulator.state();
    let form = Form::parse(&body);
    state
        .recorder
        .token_request(TOKEN_ROUTE, grant_label(&form));
    let result = resolve_authority(state, &tenant).and_then(|authority| {
        let request = TokenRequest {
            state,
            authority,
            tenant_segment: &tenant,
            base: crate::graph::base_url(&headers, &uri),
            headers: &headers,
            form: &form,
        };
        grant(&request)
    });
    match result {
        Ok(body) => entra_json(StatusCode::OK, &body, &uuid::Uuid::new_v4().to_string()),
        Err(err) => err.into_response(&headers),
    }
}

fn grant(req: &TokenRequest<'_>) -> Result<Value, EntraError> {
    let grant_type = req
        .form
        .get("grant_type")
        .ok_or_else(|| EntraError::missing_parameter("grant_type"))?;
    match grant_type {
        GRANT_CLIENT_CREDENTIALS => grants::client_credentials(req),
        GRANT_JWT_BEARER => grants::on_behalf_of(req),
        GRANT_AUTHORIZATION_CODE => grants::authorization_code(req),
        GRANT_REFRESH_TOKEN => grants::refresh_token(req),
        other => Err(EntraError::new(
            "unsupported_grant_type",
            70003,
            format!("The app requested an unsupported grant type '{other}'."),
        )),
    }
}

/// `Authorization: Basic base64(urlencode(id) ":" urlencode(secret))`.
pub(crate) fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
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

pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Revokes a user's refresh tokens and moves `signInSessionsValidFromDateTime` to now.
pub(crate) fn revoke_user_sessions(state: &EmulatorState, user: &str) -> bool {
    let now = clock::now_unix();
    let oid = {
        let mut tenant = state.tenant.write().unwrap_or_else(|p| p.into_inner());
        let Some(u) = tenant.find_user(user) else {
            return false;
        };
        tenant.revoke_sessions(u, now);
        tenant.users[u].id.clone()
    };
    state.sessions.revoke_user(&oid, now);
    true
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

/// `GET /{tenant}/discovery/v2.0/keys` (and the v1 form): every published signing key,
/// the active one first.
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
    // No `x5c`: the emulator has bare keys, not certificates.
    let keys: Vec<Value> = state
        .keys
        .published()
        .iter()
        .map(|key| {
            json!({
                "kty": "RSA",
                "use": "sig",
                "kid": key.kid(),
                "x5t": key.kid(),
                "n": key.n,
                "e": key.e,
                "issuer": format!("{base}/{tid}/v2.0"),
            })
        })
        .collect();
    entra_json(
        StatusCode::OK,
        &json!({ "keys": keys }),
        &uuid::Uuid::new_v4().to_string(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

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
