//! Outbound identity: the Graph tokens the gateway itself uses.
//!
//! Written by hand on reqwest rather than with `azure_identity`: that crate has no
//! on-behalf-of flow and needs OpenSSL for certificates, and the token request is one
//! form POST (see `shared/reference/rust-stack.md` §7).
//!
//! Tokens are cached in moka until [`REFRESH_MARGIN`] before they expire; moka's
//! `try_get_with` makes the fetch single-flight, so a thousand requests arriving on a
//! cold gateway cause one token request.

use std::sync::Arc;
use std::time::{Duration, Instant};

use moka::Expiry;
use moka::future::Cache;
use serde::Deserialize;
use url::Url;

use crate::config::Secret;

/// Tokens are refreshed this long before they expire.
pub const REFRESH_MARGIN: Duration = Duration::from_secs(5 * 60);

/// The Microsoft identity a Graph call runs as. Part of every cache key, so answers
/// fetched with one identity are never served to another.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum GraphIdentity {
    /// The gateway's own app-only identity in a tenant.
    App { tenant: String, client_id: String },
}

impl GraphIdentity {
    /// Stable text form used in cache keys and logs (holds no secret).
    pub fn cache_key(&self) -> String {
        match self {
            GraphIdentity::App { tenant, client_id } => format!("app:{tenant}:{client_id}"),
        }
    }
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
    #[error("token endpoint unreachable: {0}")]
    Unreachable(String),
    #[error("token endpoint answered something unexpected: {0}")]
    BadResponse(String),
}

/// Entra ID client-credentials settings of the gateway's app registration.
#[derive(Clone, Debug)]
pub struct AppCredentials {
    pub authority: Url,
    pub tenant: String,
    pub client_id: String,
    pub client_secret: Secret,
}

#[derive(Clone)]
pub struct TokenBroker {
    http: reqwest::Client,
    app: Arc<AppCredentials>,
    cache: Cache<GraphIdentity, AccessToken>,
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

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    expires_in: u64,
}

#[derive(Deserialize)]
struct TokenErrorResponse {
    error: String,
    #[serde(default)]
    error_description: String,
}

impl TokenBroker {
    pub fn new(http: reqwest::Client, app: AppCredentials) -> Self {
        Self {
            http,
            app: Arc::new(app),
            cache: Cache::builder()
                .max_capacity(10_000)
                .expire_after(UntilExpiry)
                .build(),
        }
    }

    /// The app-only identity of the gateway's registration.
    pub fn app_identity(&self) -> GraphIdentity {
        GraphIdentity::App {
            tenant: self.app.tenant.clone(),
            client_id: self.app.client_id.clone(),
        }
    }

    /// True when a valid token is cached (readiness without a network call).
    pub fn has_cached(&self, identity: &GraphIdentity) -> bool {
        self.cache.contains_key(identity)
    }

    /// A token for `identity`, from the cache or fetched once for all waiters.
    pub async fn token(&self, identity: &GraphIdentity) -> Result<AccessToken, IdentityError> {
        self.cache
            .try_get_with(identity.clone(), self.fetch(identity))
            .await
            .map_err(|e| (*e).clone())
    }

    /// Forgets a token Graph refused (e.g. revoked), so the next call fetches a new one.
    pub async fn invalidate(&self, identity: &GraphIdentity) {
        self.cache.invalidate(identity).await;
    }

    async fn fetch(&self, identity: &GraphIdentity) -> Result<AccessToken, IdentityError> {
        let GraphIdentity::App { .. } = identity;
        let app = &self.app;
        let mut url = app.authority.clone();
        url.path_segments_mut()
            .map_err(|_| IdentityError::BadResponse("authority URL cannot be a base".into()))?
            .pop_if_empty()
            .extend([app.tenant.as_str(), "oauth2", "v2.0", "token"]);
        let started = Instant::now();
        let form = [
            ("grant_type", "client_credentials"),
            ("client_id", app.client_id.as_str()),
            ("client_secret", app.client_secret.expose()),
            ("scope", "https://graph.microsoft.com/.default"),
        ];
        let response = self
            .http
            .post(url)
            .form(&form)
            .send()
            .await
            .map_err(|e| IdentityError::Unreachable(e.without_url().to_string()))?;
        let status = response.status();
        let body = response
            .bytes()
            .await
            .map_err(|e| IdentityError::Unreachable(e.without_url().to_string()))?;
        if !status.is_success() {
            return Err(match serde_json::from_slice::<TokenErrorResponse>(&body) {
                Ok(e) => IdentityError::Refused {
                    error: e.error,
                    description: e.error_description,
                },
                Err(_) => IdentityError::BadResponse(format!("status {status}")),
            });
        }
        let token: TokenResponse =
            serde_json::from_slice(&body).map_err(|e| IdentityError::BadResponse(e.to_string()))?;
        tracing::info!(identity = %identity.cache_key(), expires_in = token.expires_in, "acquired a Graph token");
        Ok(AccessToken {
            secret: token.access_token,
            expires_at: started + Duration::from_secs(token.expires_in),
        })
    }
}
