//! App registrations and client authentication: secrets (body or HTTP Basic), certificate
//! assertions (`private_key_jwt`, RFC 7523) and public clients.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, Validation};
use serde_json::Value;

use super::certs::{ClientCertificate, hex_upper};
use super::{EntraError, TokenRequest, basic_credentials, constant_time_eq};
use crate::{AppRegistration, TENANT_DOMAIN, clock};

pub(crate) const ASSERTION_TYPE_JWT_BEARER: &str =
    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

const CERT_DOCS: &str = "Review the documentation at https://docs.microsoft.com/en-us/azure/active-directory/develop/active-directory-certificate-credentials .";

/// Clock skew tolerated before an assertion's `nbf` (clients whose clock runs ahead).
const NBF_SKEW: i64 = 300;

/// An app registration with its parsed certificates.
pub(crate) struct RegisteredApp {
    pub reg: AppRegistration,
    pub certs: Vec<ClientCertificate>,
}

impl RegisteredApp {
    fn new(reg: AppRegistration) -> RegisteredApp {
        let certs = reg
            .certificates
            .iter()
            .filter_map(|pem| match ClientCertificate::from_pem(pem) {
                Ok(cert) => Some(cert),
                Err(err) => {
                    tracing::warn!(client_id = %reg.client_id, %err, "ignoring an unreadable certificate");
                    None
                }
            })
            .collect();
        RegisteredApp { reg, certs }
    }

    pub fn client_id(&self) -> &str {
        &self.reg.client_id
    }

    /// Whether `aud` names this app: its client id or its Application ID URI.
    pub fn is_audience(&self, aud: &str) -> bool {
        self.reg.client_id.eq_ignore_ascii_case(aud)
            || self.reg.identifier_uri.as_deref().is_some_and(|uri| {
                uri.trim_end_matches('/')
                    .eq_ignore_ascii_case(aud.trim_end_matches('/'))
            })
    }

    /// Whether the app exposes an API other apps may request tokens for.
    pub fn exposes_api(&self) -> bool {
        self.reg.identifier_uri.is_some() || !self.reg.exposed_scopes.is_empty()
    }

    /// How the API's scopes are written in a token response: `api://…/name` (or
    /// `{client id}/name` when the app has no Application ID URI).
    pub fn scope_prefix(&self) -> &str {
        self.reg
            .identifier_uri
            .as_deref()
            .map_or(self.reg.client_id.as_str(), |u| u.trim_end_matches('/'))
    }
}

/// Every registered app (from the config, plus `Emulator::register_app`), and the client
/// assertion `jti`s seen, for replay detection.
pub(crate) struct AppDirectory {
    apps: RwLock<Vec<Arc<RegisteredApp>>>,
    /// `client_id|jti` → the assertion's `exp`.
    seen_jtis: Mutex<HashMap<String, i64>>,
}

impl AppDirectory {
    pub(crate) fn new(apps: &[AppRegistration]) -> AppDirectory {
        AppDirectory {
            apps: RwLock::new(
                apps.iter()
                    .cloned()
                    .map(|a| Arc::new(RegisteredApp::new(a)))
                    .collect(),
            ),
            seen_jtis: Mutex::new(HashMap::new()),
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Vec<Arc<RegisteredApp>>> {
        self.apps.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds an app, replacing one with the same client id.
    pub(crate) fn register(&self, reg: AppRegistration) {
        let app = Arc::new(RegisteredApp::new(reg));
        let mut apps = self.apps.write().unwrap_or_else(|p| p.into_inner());
        apps.retain(|a| !a.reg.client_id.eq_ignore_ascii_case(&app.reg.client_id));
        apps.push(app);
    }

    pub(crate) fn get(&self, client_id: &str) -> Option<Arc<RegisteredApp>> {
        self.read()
            .iter()
            .find(|a| a.reg.client_id.eq_ignore_ascii_case(client_id))
            .cloned()
    }

    /// The app whose API a resource identifier (client id or Application ID URI) names.
    pub(crate) fn api(&self, resource: &str) -> Option<Arc<RegisteredApp>> {
        self.read()
            .iter()
            .find(|a| a.exposes_api() && a.is_audience(resource))
            .cloned()
    }

    /// Records a `jti`; `false` if it was already used by this client and is still live.
    fn first_use(&self, client_id: &str, jti: &str, exp: i64, now: i64) -> bool {
        let mut seen = self.seen_jtis.lock().unwrap_or_else(|p| p.into_inner());
        seen.retain(|_, &mut e| e > now);
        let key = format!("{}|{jti}", client_id.to_ascii_lowercase());
        if seen.contains_key(&key) {
            return false;
        }
        seen.insert(key, exp.max(now + 1));
        true
    }
}

/// How the client proved who it is; `appidacr` / `azpacr` in the tokens it gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AuthMethod {
    /// A public client: no credential.
    Public,
    Secret,
    Certificate,
}

impl AuthMethod {
    pub fn acr(self) -> &'static str {
        match self {
            AuthMethod::Public => "0",
            AuthMethod::Secret => "1",
            AuthMethod::Certificate => "2",
        }
    }
}

/// An authenticated (or, for public clients, identified) client.
pub(crate) struct ClientAuth {
    pub app: Arc<RegisteredApp>,
    pub method: AuthMethod,
}

fn app_not_found(client_id: &str) -> EntraError {
    EntraError::new(
        "unauthorized_client",
        700016,
        format!(
            "Application with identifier '{client_id}' was not found in the directory '{}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant.",
            crate::tenant::COMPANY_NAME
        ),
    )
}

/// Client authentication, shared by every grant: HTTP Basic (RFC 6749 §2.3.1),
/// `client_secret` in the body, or `client_assertion` (a JWT signed with a registered
/// certificate's key). A public client sends none of them; `allow_public` says whether
/// the grant accepts that (authorization code and refresh token do; client credentials and
/// on-behalf-of do not).
pub(crate) fn authenticate_client(
    req: &TokenRequest<'_>,
    allow_public: bool,
) -> Result<ClientAuth, EntraError> {
    let form = req.form;
    let basic = basic_credentials(req.headers);
    let assertion = form.get("client_assertion");
    let client_id = match (&basic, form.get("client_id"), assertion) {
        (Some((id, _)), _, _) => id.clone(),
        (None, Some(id), _) => id.to_string(),
        // RFC 7523 §3: with an assertion, `client_id` may be left out; `sub` names the client.
        (None, None, Some(a)) => jsonwebtoken::dangerous::insecure_decode_claims::<Value>(a)
            .ok()
            .and_then(|c| c["sub"].as_str().map(str::to_string))
            .ok_or_else(|| EntraError::missing_parameter("client_id"))?,
        (None, None, None) => return Err(EntraError::missing_parameter("client_id")),
    };
    let app = req
        .state
        .apps
        .get(&client_id)
        .ok_or_else(|| app_not_found(&client_id))?;
    let secret = basic
        .map(|(_, s)| s)
        .or_else(|| form.get("client_secret").map(str::to_string));

    if app.reg.public_client {
        if secret.is_some() || assertion.is_some() {
            return Err(EntraError::invalid_client(
                700025,
                "Client is public so neither 'client_assertion' nor 'client_secret' should be presented.",
            ));
        }
        if allow_public {
            return Ok(ClientAuth {
                app,
                method: AuthMethod::Public,
            });
        }
        return Err(EntraError::invalid_client(
            7000218,
            "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
        ));
    }

    match (secret, assertion) {
        (Some(_), Some(_)) => Err(EntraError::invalid_request(
            90023,
            "Invalid request. More than one client authentication method was provided: send either a client_secret or a client_assertion, not both.",
        )),
        (Some(secret), None) => {
            let registered = app.reg.client_secret.as_bytes();
            if !registered.is_empty() && constant_time_eq(secret.as_bytes(), registered) {
                Ok(ClientAuth {
                    app,
                    method: AuthMethod::Secret,
                })
            } else {
                Err(EntraError::invalid_client(
                    7000215,
                    format!(
                        "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '{}'.",
                        app.reg.client_id
                    ),
                ))
            }
        }
        (None, Some(assertion)) => {
            verify_client_assertion(req, &app, assertion)?;
            Ok(ClientAuth {
                app,
                method: AuthMethod::Certificate,
            })
        }
        (None, None) => Err(EntraError::invalid_client(
            7000218,
            "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
        )),
    }
}

/// The audiences a client assertion may carry: this emulator's v2.0 token endpoint for the
/// tenant, by GUID, domain, or the path segment the request used.
fn expected_audiences(req: &TokenRequest<'_>) -> Vec<String> {
    [
        req.state.config.tenant_id.as_str(),
        TENANT_DOMAIN,
        req.tenant_segment,
    ]
    .iter()
    .map(|t| format!("{}/{t}/oauth2/v2.0/token", req.base))
    .collect()
}

fn iso(unix: i64) -> String {
    let s = clock::format_utc_seconds(unix);
    // Entra prints 7 fractional digits: 2019-08-02T20:42:53.0000000Z.
    format!("{}.0000000Z", s.trim_end_matches('Z'))
}

/// Validates a `client_assertion` as Entra does (certificate-credentials.md): type, header
/// (`alg`, `x5t` / `x5t#S256`), signature with the registered certificate, `aud`, `iss` =
/// `sub` = client id, `nbf`/`exp`, and a `jti` not seen before within its lifetime.
fn verify_client_assertion(
    req: &TokenRequest<'_>,
    app: &RegisteredApp,
    assertion: &str,
) -> Result<(), EntraError> {
    match req.form.get("client_assertion_type") {
        None => return Err(EntraError::missing_parameter("client_assertion_type")),
        Some(ASSERTION_TYPE_JWT_BEARER) => {}
        Some(other) => {
            return Err(EntraError::invalid_request(
                90023,
                format!(
                    "Invalid request. The client_assertion_type '{other}' is not supported; use '{ASSERTION_TYPE_JWT_BEARER}'."
                ),
            ));
        }
    }
    let malformed = || EntraError::invalid_client(50027, "JWT token is invalid or malformed.");
    let header = jsonwebtoken::decode_header(assertion).map_err(|_| malformed())?;
    let supported = [
        Algorithm::RS256,
        Algorithm::RS384,
        Algorithm::RS512,
        Algorithm::PS256,
        Algorithm::PS384,
        Algorithm::PS512,
    ];
    if !supported.contains(&header.alg) {
        return Err(EntraError::invalid_client(
            5002738,
            format!(
                "Invalid JWT token. '{:?}' is not a supported signature algorithm. Supported signing algorithms are: 'RS256, RS384, RS512, PS256, PS384, PS512'",
                header.alg
            ),
        ));
    }
    // The thumbprint the client names, preferring SHA-256, as hex for messages.
    let (cert, thumbprint) = match (&header.x5t_s256, &header.x5t) {
        (Some(s256), _) => (
            app.certs.iter().find(|c| c.x5t_s256 == *s256),
            URL_SAFE_NO_PAD
                .decode(s256)
                .map(|b| hex_upper(&b))
                .unwrap_or_else(|_| s256.clone()),
        ),
        (None, Some(x5t)) => (
            app.certs.iter().find(|c| c.x5t == *x5t),
            URL_SAFE_NO_PAD
                .decode(x5t)
                .map(|b| hex_upper(&b))
                .unwrap_or_else(|_| x5t.clone()),
        ),
        (None, None) => (None, String::new()),
    };
    let cert = cert.ok_or_else(|| {
        EntraError::invalid_client(
            700027,
            format!(
                "The certificate with identifier used to sign the client assertion is not registered on application. [Reason - The key was not found., Thumbprint of key used by client: '{thumbprint}', Please visit the Azure Portal, Graph Explorer or directly use MS Graph to see configured keys for app Id '{}'. Review the documentation at https://docs.microsoft.com/en-us/graph/deployments#app-registration-and-token-service-root-endpoints to learn how to use the certificate.]",
                app.reg.client_id
            ),
        )
    })?;

    let mut validation = Validation::new(header.alg);
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation.required_spec_claims.clear();
    let claims = jsonwebtoken::decode::<Value>(assertion, &cert.key, &validation)
        .map_err(|err| match err.kind() {
            ErrorKind::InvalidSignature
            | ErrorKind::InvalidRsaKey(_)
            | ErrorKind::InvalidKeyFormat
            | ErrorKind::Provider(_) => {
                EntraError::invalid_client(
                    700027,
                    format!(
                        "Client assertion failed signature validation. [Reason - The provided signature value did not match the expected signature value., Thumbprint of key used by client: '{}']",
                        cert.sha1_hex
                    ),
                )
            }
            _ => malformed(),
        })?
        .claims;

    // `aud`: exactly one value, this token endpoint.
    let audiences: Vec<&str> = match &claims["aud"] {
        Value::String(s) => vec![s.as_str()],
        Value::Array(items) => items.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    if audiences.len() > 1 {
        return Err(EntraError::invalid_client(
            5002741,
            format!(
                "Number of audience values in the provided client credential exceed maximum allowed. {} audience values provided, maximum allowed is 1.",
                audiences.len()
            ),
        ));
    }
    let expected = expected_audiences(req);
    let aud_ok = audiences.first().is_some_and(|aud| {
        expected
            .iter()
            .any(|e| e.eq_ignore_ascii_case(aud.trim_end_matches('/')))
    });
    if !aud_ok {
        return Err(EntraError::invalid_client(
            700023,
            format!("Client assertion audience claim does not match Realm issuer. {CERT_DOCS}"),
        ));
    }

    let id = app.reg.client_id.as_str();
    let names_client = |claim: &str| {
        claims[claim]
            .as_str()
            .is_some_and(|v| v.eq_ignore_ascii_case(id))
    };
    if !names_client("iss") || !names_client("sub") {
        return Err(EntraError::invalid_client(
            700021,
            format!(
                "Client assertion application identifier doesn't match 'client_id' parameter. {CERT_DOCS}"
            ),
        ));
    }

    let now = clock::now_unix();
    let exp = claims["exp"].as_i64();
    let nbf = claims["nbf"].as_i64();
    let in_range = exp.is_some_and(|e| now < e) && nbf.is_none_or(|n| now + NBF_SKEW >= n);
    if !in_range {
        return Err(EntraError::invalid_client(
            700024,
            format!(
                "Client assertion is not within its valid time range. Current time: {}, assertion valid from {}, expiry time of assertion {}. {CERT_DOCS}",
                iso(now),
                nbf.map_or_else(|| "(none)".to_string(), iso),
                exp.map_or_else(|| "(none)".to_string(), iso),
            ),
        ));
    }

    if let Some(jti) = claims["jti"].as_str()
        && !req.state.apps.first_use(id, jti, exp.unwrap_or(now), now)
    {
        // Entra documents no code for a replayed assertion; 50027 is its generic
        // "invalid JWT" code, and the answer is invalid_client like every assertion error.
        return Err(EntraError::invalid_client(
            50027,
            format!(
                "JWT token is invalid or malformed. The client assertion with jti '{jti}' was already used; each assertion must carry a unique jti within its lifetime."
            ),
        ));
    }
    Ok(())
}
