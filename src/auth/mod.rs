//! Inbound authentication: the company's own JWTs → a configured [`Caller`].
//!
//! Every failure produces the same [`AuthError`] to the outside (one 401 body with
//! `WWW-Authenticate: Bearer`); the precise reason goes to debug logs only, so a probing
//! client learns nothing about which check it failed.

mod dev;
mod jwks;
pub mod policy;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use axum::http::{self, HeaderMap};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::Value;

use crate::config::{CallerMode, Config, IssuerKey, Secret};
pub use dev::mint_dev_token;
pub use jwks::JwksKeys;
pub use policy::{Resources, SiteResources};

/// Header a `connected` caller uses to say which connected user it acts as.
pub const ACT_AS_HEADER: &str = "x-m365-act-as";
/// Longest `kid` looked up; longer ones are refused before any lookup.
const MAX_KID_LEN: usize = 256;

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
    /// The end user this caller acts for (UPN or object id): from the configured
    /// `user_claim` (`app`), the token's `oid` (`obo`), or the act-as header (`connected`).
    pub user: Option<String>,
    /// The inbound user token, for `obo` callers only: it is the assertion exchanged
    /// with Entra ID. Never forwarded to Graph.
    pub assertion: Option<Secret>,
    /// Entra tenant of an `obo` caller's token (`tid`).
    pub tenant: Option<String>,
    /// Delegated Graph scopes for `obo` / `connected` callers, sorted.
    pub scopes: Arc<Vec<String>>,
    pub resources: Arc<Resources>,
    /// Mailboxes the caller may send as (`callers.<name>.send_as`).
    pub send_as: Arc<Resources>,
    /// SharePoint sites the caller may address (`callers.<name>.sites`).
    pub sites: Arc<SiteResources>,
    /// Changes whenever the configuration is reloaded; part of every cache key, so entries
    /// cached under an older policy are never served.
    pub policy_version: u64,
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
    #[error("more than one Authorization header")]
    Duplicate,
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
    #[error("token claims are unacceptable: {0}")]
    Claims(String),
}

impl AuthError {
    /// RFC 6750 §3: no `error` attribute when no credentials were sent at all.
    pub fn www_authenticate(&self) -> &'static str {
        match self {
            AuthError::Missing => "Bearer",
            _ => "Bearer error=\"invalid_token\"",
        }
    }
}

struct Issuer {
    name: String,
    iss: String,
    audiences: Vec<String>,
    client_claim: String,
    leeway: u64,
    /// Longest accepted `exp - now`, in seconds.
    max_lifetime: i64,
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
    resources: Arc<Resources>,
    send_as: Arc<Resources>,
    sites: Arc<SiteResources>,
    scopes: Arc<Vec<String>>,
}

/// The policy index key of a caller's `send_as` list (a caller name cannot hold a NUL).
pub fn send_as_key(caller: &str) -> String {
    format!("{caller}\0send_as")
}

/// Validates bearer tokens against the configured issuers and maps them to callers.
pub struct Authenticator {
    issuers: Vec<Issuer>,
    callers: HashMap<(String, String), CallerEntry>,
    max_token_bytes: usize,
    policy_version: u64,
}

impl Authenticator {
    /// Builds the authenticator; JWKS issuers start with no keys until
    /// [`Authenticator::jwks`] sets are refreshed (see `app.rs`). `policy_version`
    /// distinguishes configurations across reloads.
    pub fn new(config: &Config, http: reqwest::Client, policy_version: u64) -> Self {
        let issuers = config
            .issuers
            .iter()
            .map(|(name, c)| Issuer {
                name: name.clone(),
                iss: c.issuer.clone(),
                audiences: c.audiences.clone(),
                client_claim: c.client_claim.clone(),
                leeway: c.leeway.as_secs(),
                max_lifetime: 24 * 3600,
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
                        resources: Arc::new(Resources::parse(&c.resources)),
                        send_as: Arc::new(Resources::parse(&c.send_as)),
                        sites: Arc::new(SiteResources::parse(&c.sites)),
                        scopes: Arc::new({
                            let mut scopes = c.graph_scopes();
                            scopes.sort();
                            scopes.dedup();
                            scopes
                        }),
                    },
                )
            })
            .collect();
        Self {
            issuers,
            callers,
            max_token_bytes: config.http.max_token_bytes,
            policy_version,
        }
    }

    pub fn policy_version(&self) -> u64 {
        self.policy_version
    }

    /// A configured caller by name, without any token data (the connect flow's callback,
    /// which arrives from a browser, not from the caller).
    pub fn configured_caller(&self, name: &str) -> Option<Caller> {
        let ((issuer, client_id), entry) = self.callers.iter().find(|(_, c)| c.name == name)?;
        Some(Caller {
            name: entry.name.clone(),
            issuer: issuer.clone(),
            client_id: client_id.clone(),
            subject: String::new(),
            mode: entry.mode,
            user: None,
            assertion: None,
            tenant: None,
            scopes: entry.scopes.clone(),
            resources: entry.resources.clone(),
            send_as: entry.send_as.clone(),
            sites: entry.sites.clone(),
            policy_version: self.policy_version,
            operations: entry.operations.clone(),
        })
    }

    /// Configured callers and their resource lists (for the policy resolver): each
    /// caller's `resources` under its name, its `send_as` under [`send_as_key`].
    pub fn caller_resources(&self) -> Vec<(String, Arc<Resources>)> {
        self.callers
            .values()
            .flat_map(|c| {
                [
                    (c.name.clone(), c.resources.clone()),
                    (send_as_key(&c.name), c.send_as.clone()),
                ]
            })
            .collect()
    }

    /// Configured callers with their users and sites, for resolving which drives and
    /// sites each may address.
    pub fn caller_sites(&self) -> Vec<(String, Arc<Resources>, Arc<SiteResources>)> {
        self.callers
            .values()
            .map(|c| (c.name.clone(), c.resources.clone(), c.sites.clone()))
            .collect()
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
        if header
            .get("kid")
            .and_then(Value::as_str)
            .is_some_and(|kid| kid.len() > MAX_KID_LEN)
        {
            return Err(AuthError::Malformed("kid too long".into()));
        }
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
        // jsonwebtoken checks neither `iat` nor how far away `exp` is.
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        if let Some(iat) = claims.get("iat") {
            match iat.as_i64() {
                Some(iat) if iat <= now + issuer.leeway as i64 => {}
                _ => {
                    return Err(AuthError::Claims(
                        "iat in the future or not a number".into(),
                    ));
                }
            }
        }
        if claims
            .get("exp")
            .and_then(Value::as_i64)
            .is_some_and(|exp| exp - now > issuer.max_lifetime)
        {
            return Err(AuthError::Claims("lifetime longer than allowed".into()));
        }

        let client_id = claims
            .get(&issuer.client_claim)
            .and_then(Value::as_str)
            .ok_or(AuthError::UnknownCaller)?;
        let entry = self
            .callers
            .get(&(issuer.name.clone(), client_id.to_owned()))
            .ok_or(AuthError::UnknownCaller)?;
        let claim = |name: &str| {
            claims
                .get(name)
                .and_then(Value::as_str)
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
        };
        let (user, assertion, tenant) = match entry.mode {
            CallerMode::App => (entry.user_claim.as_deref().and_then(claim), None, None),
            CallerMode::Obo => {
                // Only a user token can be exchanged on-behalf-of; an app token has no oid+scp.
                let oid = claim("oid")
                    .ok_or_else(|| AuthError::Claims("obo token without oid".into()))?;
                if claim("scp").is_none() {
                    return Err(AuthError::Claims(
                        "obo token is not a user token (no scp)".into(),
                    ));
                }
                (Some(oid), Some(Secret::new(token)), claim("tid"))
            }
            CallerMode::Connected => {
                let act_as = headers
                    .get(ACT_AS_HEADER)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned)
                    .filter(|v| !v.is_empty());
                (
                    act_as.or_else(|| entry.user_claim.as_deref().and_then(claim)),
                    None,
                    None,
                )
            }
        };
        Ok(Caller {
            name: entry.name.clone(),
            issuer: issuer.name.clone(),
            client_id: client_id.to_owned(),
            subject: claim("sub").unwrap_or_default(),
            mode: entry.mode,
            user,
            assertion,
            tenant,
            scopes: entry.scopes.clone(),
            resources: entry.resources.clone(),
            send_as: entry.send_as.clone(),
            sites: entry.sites.clone(),
            policy_version: self.policy_version,
            operations: entry.operations.clone(),
        })
    }
}

fn bearer(headers: &HeaderMap) -> Result<&str, AuthError> {
    let mut values = headers.get_all(http::header::AUTHORIZATION).iter();
    let value = values.next().ok_or(AuthError::Missing)?;
    if values.next().is_some() {
        return Err(AuthError::Duplicate);
    }
    let value = value
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
        let object: UniqueKeys = serde_json::from_slice(&bytes)
            .map_err(|e| AuthError::Malformed(format!("bad JSON object: {e}")))?;
        Ok(Value::Object(object.0))
    };
    Ok((decode(h)?, decode(c)?))
}

/// A JSON object that refuses duplicate keys. `serde_json::Map` keeps the last of two
/// `"sub"`s silently; RFC 8725 §2.6 asks that such a token be refused, since two parsers
/// might disagree on which one counts.
struct UniqueKeys(serde_json::Map<String, Value>);

impl<'de> serde::Deserialize<'de> for UniqueKeys {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = UniqueKeys;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<UniqueKeys, A::Error> {
                let mut object = serde_json::Map::new();
                while let Some((key, value)) = map.next_entry::<String, Value>()? {
                    if object.contains_key(&key) {
                        return Err(serde::de::Error::custom(format!("duplicate key {key}")));
                    }
                    object.insert(key, value);
                }
                Ok(UniqueKeys(object))
            }
        }
        deserializer.deserialize_map(Visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicate_claims_are_refused() {
        let part = URL_SAFE_NO_PAD.encode(br#"{"sub":"a","sub":"admin"}"#);
        let token = format!("{part}.{part}.sig");
        assert!(matches!(peek(&token), Err(AuthError::Malformed(_))));
    }

    #[test]
    fn deeply_nested_claims_are_refused_without_a_crash() {
        let nested = format!("{{\"a\":{}1{}}}", "[".repeat(100_000), "]".repeat(100_000));
        let part = URL_SAFE_NO_PAD.encode(nested);
        let token = format!("{part}.{part}.sig");
        assert!(peek(&token).is_err());
    }

    #[test]
    fn only_three_part_tokens_are_read() {
        for token in ["a.b", "a.b.c.d.e", ""] {
            assert!(peek(token).is_err(), "{token}");
        }
    }
}
