//! Outbound identity: the Graph tokens the gateway uses, in three modes.
//!
//! - `app`: client credentials (client secret or certificate assertion).
//! - `obo`: the caller's Entra user token exchanged on-behalf-of for a delegated token.
//! - `connected`: a stored (encrypted) refresh token of a user who connected once.
//!
//! Written by hand on reqwest rather than with `azure_identity`: that crate has no
//! on-behalf-of flow and needs OpenSSL for certificates, and every grant is one form POST
//! (see `shared/reference/rust-stack.md` §7).
//!
//! Tokens are cached in moka until [`REFRESH_MARGIN`] before they expire; moka's
//! `try_get_with` makes the fetch single-flight, so a thousand requests arriving on a
//! cold gateway cause one token request per identity.

mod assertion;

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use moka::Expiry;
use moka::future::Cache;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use url::Url;

use crate::config::Secret;
use crate::store::{NewConnectedAccount, Store};
pub use assertion::CertificateCredential;

/// Tokens are refreshed this long before they expire.
pub const REFRESH_MARGIN: Duration = Duration::from_secs(5 * 60);

const GRAPH_RESOURCE: &str = "https://graph.microsoft.com";

/// The Microsoft identity a Graph call runs as.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum GraphIdentity {
    /// The gateway's own app-only identity in a tenant.
    App { tenant: String, client_id: String },
    /// A user, through an on-behalf-of exchange of one particular inbound assertion.
    Obo {
        tenant: String,
        user: String,
        /// SHA-256 of the inbound assertion: two assertions never share a token.
        assertion_hash: String,
        scopes: String,
    },
    /// A user who connected their account to a caller.
    Connected {
        tenant: String,
        caller: String,
        user: String,
        scopes: String,
    },
}

impl GraphIdentity {
    /// Text naming whose data an answer is, for response-cache keys (holds no secret).
    /// The assertion hash is left out on purpose: the same user with the same scopes sees
    /// the same data whichever assertion fetched it.
    pub fn cache_key(&self) -> String {
        match self {
            GraphIdentity::App { tenant, client_id } => format!("app:{tenant}:{client_id}"),
            GraphIdentity::Obo {
                tenant,
                user,
                scopes,
                ..
            }
            | GraphIdentity::Connected {
                tenant,
                user,
                scopes,
                ..
            } => format!("user:{tenant}:{user}:{}", short_hash(scopes)),
        }
    }

    /// Text naming exactly whose token this is, for the shared token cache (the key is its
    /// hash, and sealed values are bound to it): every field, the assertion hash included,
    /// as in this replica's token cache. None for connected users (not shared).
    pub fn shared_key(&self) -> Option<String> {
        match self {
            GraphIdentity::App { tenant, client_id } => Some(format!("app\n{tenant}\n{client_id}")),
            GraphIdentity::Obo {
                tenant,
                user,
                assertion_hash,
                scopes,
            } => Some(format!("obo\n{tenant}\n{user}\n{assertion_hash}\n{scopes}")),
            GraphIdentity::Connected { .. } => None,
        }
    }

    pub fn is_delegated(&self) -> bool {
        !matches!(self, GraphIdentity::App { .. })
    }
}

/// How a request may reach Graph: the identity, whatever secret material its token
/// needs, and the response-cache namespace (identity + policy version).
#[derive(Clone, Debug)]
pub struct Access {
    pub identity: GraphIdentity,
    /// The inbound user token, for `Obo` only.
    pub assertion: Option<Secret>,
    pub cache_namespace: String,
}

impl Access {
    pub fn new(identity: GraphIdentity, assertion: Option<Secret>, policy_version: u64) -> Self {
        let cache_namespace = format!("{}:p{policy_version}", identity.cache_key());
        Self {
            identity,
            assertion,
            cache_namespace,
        }
    }
}

fn short_hash(text: &str) -> String {
    let digest = Sha256::digest(text.as_bytes());
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
}

/// Hex SHA-256 of an assertion, for token-cache keys.
pub fn assertion_hash(assertion: &str) -> String {
    Sha256::digest(assertion.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[derive(Clone)]
pub struct AccessToken {
    pub secret: String,
    pub expires_at: Instant,
}

impl std::fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessToken")
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// Failure to obtain a Graph token. Entra's `error_description` may name the app and
/// tenant, so it goes to logs only.
#[derive(Clone, Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("token endpoint refused: {error} ({description})")]
    Refused { error: String, description: String },
    /// Conditional Access / MFA: the caller must get a new token satisfying `claims`.
    #[error("Entra ID requires interaction (claims challenge)")]
    ClaimsChallenge {
        /// Base64 of the claims-request JSON, as it goes into `WWW-Authenticate`.
        claims: String,
    },
    /// The user or an administrator has not consented to the gateway's permissions.
    #[error("consent required")]
    ConsentRequired,
    /// A connected user must connect again (never connected, revoked, or the grant expired).
    #[error("the user must connect again")]
    ReconnectRequired,
    #[error("token endpoint unreachable: {0}")]
    Unreachable(String),
    #[error("token endpoint answered something unexpected: {0}")]
    BadResponse(String),
    #[error("the grant store is unavailable: {0}")]
    Store(String),
}

/// How the gateway proves it is its app registration.
#[derive(Clone)]
pub enum ClientCredential {
    Secret(Secret),
    Certificate(Arc<CertificateCredential>),
}

/// The gateway's app registration in Entra ID.
#[derive(Clone)]
pub struct AppCredentials {
    pub authority: Url,
    pub tenant: String,
    pub client_id: String,
    pub credential: ClientCredential,
}

impl AppCredentials {
    fn endpoint(&self, tail: &[&str]) -> Result<Url, IdentityError> {
        let mut url = self.authority.clone();
        url.path_segments_mut()
            .map_err(|_| IdentityError::BadResponse("authority URL cannot be a base".into()))?
            .pop_if_empty()
            .push(&self.tenant)
            .extend(tail);
        Ok(url)
    }

    pub fn token_endpoint(&self) -> Result<Url, IdentityError> {
        self.endpoint(&["oauth2", "v2.0", "token"])
    }

    pub fn authorize_endpoint(&self) -> Result<Url, IdentityError> {
        self.endpoint(&["oauth2", "v2.0", "authorize"])
    }

    /// Where an administrator grants the gateway's permissions for the whole tenant.
    pub fn admin_consent_url(&self) -> String {
        let mut url = match self.endpoint(&["adminconsent"]) {
            Ok(url) => url,
            Err(_) => return String::new(),
        };
        url.query_pairs_mut()
            .append_pair("client_id", &self.client_id);
        url.to_string()
    }

    /// The client-authentication fields of a token request.
    fn client_auth(&self) -> Result<Vec<(&'static str, String)>, IdentityError> {
        Ok(match &self.credential {
            ClientCredential::Secret(secret) => {
                vec![("client_secret", secret.expose().to_owned())]
            }
            ClientCredential::Certificate(cert) => vec![
                (
                    "client_assertion_type",
                    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer".to_owned(),
                ),
                (
                    "client_assertion",
                    cert.assertion(&self.client_id, self.token_endpoint()?.as_str())?,
                ),
            ],
        })
    }
}

#[derive(Clone)]
pub struct TokenBroker {
    http: reqwest::Client,
    app: Arc<AppCredentials>,
    store: Option<Store>,
    cache: Cache<GraphIdentity, AccessToken>,
    /// Redis, where tokens are shared sealed between replicas (only with a token key).
    shared: Option<Arc<crate::shared_cache::SharedCache>>,
}

struct UntilExpiry;

impl Expiry<GraphIdentity, AccessToken> for UntilExpiry {
    fn expire_after_create(
        &self,
        _key: &GraphIdentity,
        value: &AccessToken,
        created_at: Instant,
    ) -> Option<Duration> {
        Some(
            value
                .expires_at
                .saturating_duration_since(created_at)
                .saturating_sub(REFRESH_MARGIN),
        )
    }
}

/// A successful token-endpoint answer (every grant).
#[derive(Deserialize)]
pub struct TokenResponse {
    pub access_token: String,
    pub expires_in: u64,
    #[serde(default)]
    pub refresh_token: Option<String>,
    #[serde(default)]
    pub id_token: Option<String>,
    #[serde(default)]
    pub scope: Option<String>,
}

#[derive(Deserialize)]
struct TokenErrorResponse {
    error: String,
    #[serde(default)]
    error_description: String,
    #[serde(default)]
    error_codes: Vec<u64>,
    #[serde(default)]
    suberror: Option<String>,
    #[serde(default)]
    claims: Option<String>,
}

/// `https://graph.microsoft.com/Mail.Read` for `Mail.Read`.
pub fn graph_scope_string(scopes: &[String]) -> String {
    scopes
        .iter()
        .map(|s| format!("{GRAPH_RESOURCE}/{s}"))
        .collect::<Vec<_>>()
        .join(" ")
}

impl TokenBroker {
    pub fn new(http: reqwest::Client, app: AppCredentials, store: Option<Store>) -> Self {
        Self {
            http,
            app: Arc::new(app),
            store,
            shared: None,
            cache: Cache::builder()
                .max_capacity(100_000)
                .expire_after(UntilExpiry)
                // Revoking a connected user drops their tokens by predicate.
                .support_invalidation_closures()
                .build(),
        }
    }

    /// Shares tokens through Redis (see [`crate::shared_cache`]): on a miss of this
    /// replica's cache the broker looks there before asking Entra ID, and stores what it
    /// acquires there, sealed. Without a `redis.token_key` nothing is written to Redis.
    pub fn with_shared(mut self, shared: Option<Arc<crate::shared_cache::SharedCache>>) -> Self {
        self.shared = shared.filter(|s| s.shares_tokens());
        self
    }

    pub fn app(&self) -> &AppCredentials {
        &self.app
    }

    /// The app-only identity of the gateway's registration.
    pub fn app_identity(&self) -> GraphIdentity {
        GraphIdentity::App {
            tenant: self.app.tenant.clone(),
            client_id: self.app.client_id.clone(),
        }
    }

    pub fn tenant(&self) -> &str {
        &self.app.tenant
    }

    /// True when a valid token is cached (readiness without a network call).
    pub fn has_cached(&self, identity: &GraphIdentity) -> bool {
        self.cache.contains_key(identity)
    }

    /// A token for `access`, from the cache or fetched once for all waiters.
    pub async fn token(&self, access: &Access) -> Result<AccessToken, IdentityError> {
        self.cache
            .try_get_with(access.identity.clone(), self.fetch_shared(access))
            .await
            .map_err(|e| (*e).clone())
    }

    /// A token from Redis (another replica acquired it), else from Entra ID and then
    /// shared. Connected users' tokens are not shared: a revoke drops them by predicate
    /// (`invalidate_connected`), which Redis keys (hashes) cannot serve.
    async fn fetch_shared(&self, access: &Access) -> Result<AccessToken, IdentityError> {
        let shared = match (&self.shared, access.identity.shared_key()) {
            (Some(shared), Some(key)) => Some((shared, key)),
            _ => None,
        };
        if let Some((shared, key)) = &shared
            && let Some((secret, expires_at)) = shared.get_token(key).await
        {
            return Ok(AccessToken { secret, expires_at });
        }
        let token = self.fetch(access).await?;
        if let Some((shared, key)) = &shared {
            shared
                .put_token(key, &token.secret, token.expires_at, REFRESH_MARGIN)
                .await;
        }
        Ok(token)
    }

    /// Forgets a token Graph refused (e.g. revoked), so the next call fetches a new one
    /// (in Redis too, or this replica would read the same token back).
    pub async fn invalidate(&self, identity: &GraphIdentity) {
        self.cache.invalidate(identity).await;
        if let (Some(shared), Some(key)) = (&self.shared, identity.shared_key()) {
            shared.forget_token(&key).await;
        }
    }

    /// Forgets every cached token of a connected user (after a revoke).
    pub fn invalidate_connected(&self, caller_name: &str, user_id: &str) {
        let (caller_name, user_id) = (caller_name.to_owned(), user_id.to_owned());
        let dropped = self.cache.invalidate_entries_if(move |identity, _| {
            matches!(identity, GraphIdentity::Connected { caller, user, .. } if *caller == caller_name && *user == user_id)
        });
        if let Err(e) = dropped {
            tracing::error!(error = %e, "could not drop a revoked user's cached tokens");
        }
    }

    async fn fetch(&self, access: &Access) -> Result<AccessToken, IdentityError> {
        let started = Instant::now();
        let token = match &access.identity {
            GraphIdentity::App { .. } => {
                let form = vec![
                    ("grant_type", "client_credentials".to_owned()),
                    ("scope", format!("{GRAPH_RESOURCE}/.default")),
                ];
                self.request(form).await?
            }
            GraphIdentity::Obo { scopes, .. } => {
                let assertion = access.assertion.as_ref().ok_or_else(|| {
                    IdentityError::BadResponse("an obo identity without its assertion".into())
                })?;
                let form = vec![
                    (
                        "grant_type",
                        "urn:ietf:params:oauth:grant-type:jwt-bearer".to_owned(),
                    ),
                    ("requested_token_use", "on_behalf_of".to_owned()),
                    ("assertion", assertion.expose().to_owned()),
                    ("scope", scopes.clone()),
                ];
                self.request(form).await?
            }
            GraphIdentity::Connected {
                caller,
                user,
                scopes,
                ..
            } => self.refresh_connected(caller, user, scopes).await?,
        };
        tracing::info!(identity = %access.identity.cache_key(), expires_in = token.expires_in, "acquired a Graph token");
        let mode = match access.identity {
            GraphIdentity::App { .. } => "app",
            GraphIdentity::Obo { .. } => "obo",
            GraphIdentity::Connected { .. } => "connected",
        };
        metrics::counter!("graph_token_acquisitions_total", "mode" => mode).increment(1);
        Ok(AccessToken {
            secret: token.access_token,
            expires_at: started + Duration::from_secs(token.expires_in),
        })
    }

    /// Redeems the stored refresh token and stores the rotated one (Entra returns a new
    /// refresh token on every use and expects the old one to be discarded).
    async fn refresh_connected(
        &self,
        caller: &str,
        user: &str,
        scopes: &str,
    ) -> Result<TokenResponse, IdentityError> {
        let store = self
            .store
            .as_ref()
            .ok_or_else(|| IdentityError::Store("no store configured".into()))?;
        let account = store
            .connected_account(caller, user)
            .await
            .map_err(|e| IdentityError::Store(e.to_string()))?
            .ok_or(IdentityError::ReconnectRequired)?;
        let form = vec![
            ("grant_type", "refresh_token".to_owned()),
            ("refresh_token", account.refresh_token.clone()),
            ("scope", format!("offline_access {scopes}")),
        ];
        let token = match self.request(form).await {
            // An expired, revoked or otherwise dead grant can only be fixed by the user.
            Err(IdentityError::Refused { error, description }) if error == "invalid_grant" => {
                tracing::info!(caller, user, %description, "connected grant refused; the user must reconnect");
                return Err(IdentityError::ReconnectRequired);
            }
            other => other?,
        };
        if let Some(rotated) = &token.refresh_token {
            store
                .update_refresh_token(caller, user, rotated)
                .await
                .map_err(|e| IdentityError::Store(e.to_string()))?;
        }
        Ok(token)
    }

    /// Redeems an authorization code of the connect flow and stores the grant.
    pub async fn redeem_connect_code(
        &self,
        caller: &str,
        code: &str,
        code_verifier: &str,
        redirect_uri: &str,
        scopes: &[String],
    ) -> Result<ConnectedUser, IdentityError> {
        let store = self
            .store
            .as_ref()
            .ok_or_else(|| IdentityError::Store("no store configured".into()))?;
        let form = vec![
            ("grant_type", "authorization_code".to_owned()),
            ("code", code.to_owned()),
            ("code_verifier", code_verifier.to_owned()),
            ("redirect_uri", redirect_uri.to_owned()),
            (
                "scope",
                format!(
                    "openid profile offline_access {}",
                    graph_scope_string(scopes)
                ),
            ),
        ];
        let token = self.request(form).await?;
        let refresh_token = token.refresh_token.clone().ok_or_else(|| {
            IdentityError::BadResponse("no refresh token (offline_access not granted)".into())
        })?;
        // The answer came straight from the token endpoint over the connection we opened,
        // so its claims are read without re-verifying the signature (OIDC Core §3.1.3.7).
        let claims = token
            .id_token
            .as_deref()
            .and_then(unverified_claims)
            .or_else(|| unverified_claims(&token.access_token))
            .ok_or_else(|| IdentityError::BadResponse("no readable id token".into()))?;
        let text = |name: &str| claims.get(name).and_then(|v| v.as_str()).map(str::to_owned);
        let user = ConnectedUser {
            user_id: text("oid")
                .ok_or_else(|| IdentityError::BadResponse("no oid claim".into()))?,
            user_principal_name: text("preferred_username")
                .or_else(|| text("upn"))
                .unwrap_or_default(),
            tenant_id: text("tid").unwrap_or_else(|| self.app.tenant.clone()),
        };
        store
            .save_connected_account(&NewConnectedAccount {
                caller: caller.to_owned(),
                user_id: user.user_id.clone(),
                user_principal_name: user.user_principal_name.clone(),
                tenant_id: user.tenant_id.clone(),
                scopes: scopes.to_vec(),
                refresh_token,
            })
            .await
            .map_err(|e| IdentityError::Store(e.to_string()))?;
        self.invalidate_connected(caller, &user.user_id);
        Ok(user)
    }

    /// One POST to the token endpoint with the gateway's client authentication.
    async fn request(
        &self,
        mut form: Vec<(&'static str, String)>,
    ) -> Result<TokenResponse, IdentityError> {
        form.push(("client_id", self.app.client_id.clone()));
        form.extend(self.app.client_auth()?);
        let response = self
            .http
            .post(self.app.token_endpoint()?)
            .form(&form)
            .timeout(Duration::from_secs(30))
            .send()
            .await
            .map_err(|e| IdentityError::Unreachable(e.without_url().to_string()))?;
        let status = response.status();
        let body = response
            .bytes()
            .await
            .map_err(|e| IdentityError::Unreachable(e.without_url().to_string()))?;
        if status.is_success() {
            return serde_json::from_slice(&body)
                .map_err(|e| IdentityError::BadResponse(e.to_string()));
        }
        let Ok(e) = serde_json::from_slice::<TokenErrorResponse>(&body) else {
            return Err(IdentityError::BadResponse(format!("status {status}")));
        };
        if e.error == "interaction_required" || (e.claims.is_some() && e.error == "invalid_grant") {
            let claims = e.claims.unwrap_or_default();
            tracing::info!(codes = ?e.error_codes, "Entra ID answered with a claims challenge");
            return Err(IdentityError::ClaimsChallenge {
                claims: base64::engine::general_purpose::STANDARD.encode(claims),
            });
        }
        if e.error == "consent_required"
            || e.suberror.as_deref() == Some("consent_required")
            || e.error_codes.contains(&65001)
        {
            tracing::info!(codes = ?e.error_codes, "Entra ID: consent required");
            return Err(IdentityError::ConsentRequired);
        }
        Err(IdentityError::Refused {
            error: e.error,
            description: e.error_description,
        })
    }
}

/// Who connected, read from the token answer of the connect flow.
#[derive(Clone, Debug)]
pub struct ConnectedUser {
    pub user_id: String,
    pub user_principal_name: String,
    pub tenant_id: String,
}

fn unverified_claims(jwt: &str) -> Option<serde_json::Map<String, serde_json::Value>> {
    let payload = jwt.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .ok()?;
    serde_json::from_slice(&bytes).ok()
}
