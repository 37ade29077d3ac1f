//! Inbound authentication: the company's own JWTs → a configured [`Caller`].
//!
//! Every failure produces the same [`AuthError`] to the outside (one 401 body with
//! `WWW-Authenticate: Bearer`); the precise reason goes to debug logs only, so a probing
//! client learns nothing about which check it failed.

mod dev;
mod jwks;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use axum::http::{self, HeaderMap};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::Value;

use crate::config::{CallerMode, Config, IssuerKey};
pub use dev::mint_dev_token;
pub use jwks::JwksKeys;

/// Who is calling, resolved from a validated token and the configuration.
#[derive(Clone, Debug)]
pub struct Caller {
    /// Configured caller name (`callers.<name>`).
    pub name: String,
    /// Issuer name (`issuers.<name>`).
    pub issuer: String,
    pub client_id: String,
    /// The token's `sub`.
    pub subject: String,
    pub mode: CallerMode,
    /// The end user this caller acts for (UPN or object id), when its config names a
    /// `user_claim` and the token carries it.
    pub user: Option<String>,
    operations: Arc<HashSet<String>>,
}

impl Caller {
    /// Deny by default: only operations named in the caller's config (or `"*"`).
    pub fn may(&self, operation: &str) -> bool {
        self.operations.contains("*") || self.operations.contains(operation)
    }
}

/// Why a token was refused. Callers only ever see "unauthenticated"; `Display` is for logs.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("no bearer token")]
    Missing,
    #[error("token larger than the limit")]
    TooLarge,
    #[error("malformed token: {0}")]
    Malformed(String),
    #[error("token from an unknown issuer")]
    UnknownIssuer,
    #[error("token header names an unsupported critical extension")]
    CriticalHeader,
    #[error("signing key not found")]
    UnknownKey,
    #[error("token rejected: {0}")]
    Invalid(#[from] jsonwebtoken::errors::Error),
    #[error("no caller configured for this client")]
    UnknownCaller,
}

struct Issuer {
    name: String,
    iss: String,
    audiences: Vec<String>,
    client_claim: String,
    leeway: u64,
    keys: IssuerKeys,
}

enum IssuerKeys {
    Hs256(DecodingKey),
    Jwks(Arc<JwksKeys>),
}

struct CallerEntry {
    name: String,
    mode: CallerMode,
    user_claim: Option<String>,
    operations: Arc<HashSet<String>>,
}

/// Validates bearer tokens against the configured issuers and maps them to callers.
pub struct Authenticator {
    issuers: Vec<Issuer>,
    callers: HashMap<(String, String), CallerEntry>,
    max_token_bytes: usize,
}

impl Authenticator {
    /// Builds the authenticator; JWKS issuers start with no keys until
    /// [`Authenticator::jwks`] sets are refreshed (see `app.rs`).
    pub fn new(config: &Config, http: reqwest::Client) -> Self {
        let issuers = config
            .issuers
            .iter()
            .map(|(name, c)| Issuer {
                name: name.clone(),
                iss: c.issuer.clone(),
                audiences: c.audiences.clone(),
                client_claim: c.client_claim.clone(),
                leeway: c.leeway.as_secs(),
                keys: match &c.key {
                    IssuerKey::Hs256 { secret } => {
                        IssuerKeys::Hs256(DecodingKey::from_secret(secret.expose().as_bytes()))
                    }
                    IssuerKey::Jwks {
                        jwks_url,
                        algorithms,
                        refresh,
                    } => IssuerKeys::Jwks(Arc::new(JwksKeys::new(
                        name.clone(),
                        jwks_url.clone(),
                        algorithms.iter().filter_map(|a| a.parse().ok()).collect(),
                        *refresh,
                        http.clone(),
                    ))),
                },
            })
            .collect();
        let callers = config
            .callers
            .iter()
            .map(|(name, c)| {
                (
                    (c.issuer.clone(), c.client_id.clone()),
                    CallerEntry {
                        name: name.clone(),
                        mode: c.mode,
                        user_claim: c.user_claim.clone(),
                        operations: Arc::new(c.operations.iter().cloned().collect()),
                    },
                )
            })
            .collect();
        Self {
            issuers,
            callers,
            max_token_bytes: config.http.max_token_bytes,
        }
    }

    /// The JWKS key sets, for the background refresher and readiness.
    pub fn jwks(&self) -> Vec<Arc<JwksKeys>> {
        self.issuers
            .iter()
            .filter_map(|i| match &i.keys {
                IssuerKeys::Jwks(keys) => Some(keys.clone()),
                IssuerKeys::Hs256(_) => None,
            })
            .collect()
    }

    /// Validates the `Authorization: Bearer` token of a request.
    pub async fn authenticate(&self, headers: &HeaderMap) -> Result<Caller, AuthError> {
        let token = bearer(headers)?;
        if token.len() > self.max_token_bytes {
            return Err(AuthError::TooLarge);
        }
        let (header, claims) = peek(token)?;
        // RFC 7515 §4.1.11: a recipient must reject extensions it does not understand.
        // We understand none. `jku`/`x5u`/`x5c` are simply ignored: keys come only from
        // configuration, never from the token.
        if header.get("crit").is_some() {
            return Err(AuthError::CriticalHeader);
        }
        let iss = claims
            .get("iss")
            .and_then(Value::as_str)
            .ok_or_else(|| AuthError::Malformed("no iss claim".into()))?;
        let issuer = self
            .issuers
            .iter()
            .find(|i| i.iss == iss)
            .ok_or(AuthError::UnknownIssuer)?;

        let alg = header.get("alg").and_then(Value::as_str).unwrap_or("");
        let (key, algorithm) = match &issuer.keys {
            IssuerKeys::Hs256(key) => {
                if alg != "HS256" {
                    return Err(AuthError::Malformed(format!(
                        "algorithm {alg} not allowed for this issuer"
                    )));
                }
                (key.clone(), Algorithm::HS256)
            }
            IssuerKeys::Jwks(keys) => {
                let kid = header.get("kid").and_then(Value::as_str);
                keys.key_for(kid, alg).await?
            }
        };

        let mut validation = Validation::new(algorithm);
        validation.algorithms = vec![algorithm];
        validation.set_issuer(&[&issuer.iss]);
        validation.set_audience(&issuer.audiences);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        validation.validate_nbf = true;
        validation.leeway = issuer.leeway;
        let data =
            jsonwebtoken::decode::<serde_json::Map<String, Value>>(token, &key, &validation)?;
        let claims = data.claims;

        let client_id = claims
            .get(&issuer.client_claim)
            .and_then(Value::as_str)
            .ok_or(AuthError::UnknownCaller)?;
        let entry = self
            .callers
            .get(&(issuer.name.clone(), client_id.to_owned()))
            .ok_or(AuthError::UnknownCaller)?;
        let user = entry.user_claim.as_ref().and_then(|claim| {
            claims
                .get(claim)
                .and_then(Value::as_str)
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
        });
        Ok(Caller {
            name: entry.name.clone(),
            issuer: issuer.name.clone(),
            client_id: client_id.to_owned(),
            subject: claims
                .get("sub")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            mode: entry.mode,
            user,
            operations: entry.operations.clone(),
        })
    }
}

fn bearer(headers: &HeaderMap) -> Result<&str, AuthError> {
    let value = headers
        .get(http::header::AUTHORIZATION)
        .ok_or(AuthError::Missing)?
        .to_str()
        .map_err(|_| AuthError::Malformed("authorization header is not ASCII".into()))?;
    let (scheme, token) = value.split_once(' ').ok_or_else(|| {
        AuthError::Malformed("authorization header is not 'Bearer <token>'".into())
    })?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(AuthError::Malformed("scheme is not Bearer".into()));
    }
    let token = token.trim();
    if token.is_empty() {
        return Err(AuthError::Missing);
    }
    Ok(token)
}

/// Reads the header and claims *without* trusting them, only to pick the issuer and key.
/// Nothing read here is believed until the signature check in `authenticate` passes.
fn peek(token: &str) -> Result<(Value, Value), AuthError> {
    let mut parts = token.split('.');
    let (Some(h), Some(c), Some(_sig), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(AuthError::Malformed("not a compact JWS".into()));
    };
    let decode = |part: &str| -> Result<Value, AuthError> {
        let bytes = URL_SAFE_NO_PAD
            .decode(part)
            .map_err(|_| AuthError::Malformed("bad base64url".into()))?;
        let value: Value =
            serde_json::from_slice(&bytes).map_err(|_| AuthError::Malformed("bad JSON".into()))?;
        if value.is_object() {
            Ok(value)
        } else {
            Err(AuthError::Malformed("not a JSON object".into()))
        }
    };
    Ok((decode(h)?, decode(c)?))
}
