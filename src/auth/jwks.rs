//! Keys of an RS256/ES256 issuer, fetched from its JWKS URL.
//!
//! Fetched at start and refreshed in the background; a token with an unknown `kid`
//! triggers at most one refetch per [`UNKNOWN_KID_REFETCH`] window, so a flood of forged
//! `kid`s cannot turn the gateway into a JWKS hammer. When a refresh fails the last good
//! keys stay in use.

use std::collections::HashMap;
use std::sync::RwLock;
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{AlgorithmParameters, JwkSet, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};
use tokio::sync::Mutex;
use url::Url;

use super::AuthError;

/// Minimum time between two fetches caused by unknown `kid`s.
pub const UNKNOWN_KID_REFETCH: Duration = Duration::from_secs(30);
/// Largest JWKS document read; a bigger one is refused whole.
const MAX_JWKS_BYTES: usize = 1024 * 1024;

pub struct JwksKeys {
    issuer_name: String,
    url: Url,
    algorithms: Vec<Algorithm>,
    refresh: Duration,
    http: reqwest::Client,
    keys: RwLock<HashMap<String, (DecodingKey, Algorithm)>>,
    /// Serialises fetches caused by unknown `kid`s and remembers when the last one
    /// started. Scheduled refreshes don't count: a key rotated in right after one must
    /// still be picked up by the first token that uses it.
    last_fetch: Mutex<Option<Instant>>,
}

impl JwksKeys {
    pub fn new(
        issuer_name: String,
        url: Url,
        algorithms: Vec<Algorithm>,
        refresh: Duration,
        http: reqwest::Client,
    ) -> Self {
        Self {
            issuer_name,
            url,
            algorithms,
            refresh,
            http,
            keys: RwLock::new(HashMap::new()),
            last_fetch: Mutex::new(None),
        }
    }

    pub fn issuer_name(&self) -> &str {
        &self.issuer_name
    }

    pub fn refresh_interval(&self) -> Duration {
        self.refresh
    }

    /// True once at least one usable key is known (readiness).
    pub fn is_loaded(&self) -> bool {
        !self.keys.read().expect("jwks lock").is_empty()
    }

    /// The key for a token header; refetches once per window when the `kid` is unknown.
    /// Crate-visible because rich notifications (`webhooks::rich`) verify Graph's
    /// `validationTokens` against Entra's keys with the same refetch rules.
    pub(crate) async fn key_for(
        &self,
        kid: Option<&str>,
        alg: &str,
    ) -> Result<(DecodingKey, Algorithm), AuthError> {
        let alg: Algorithm = alg
            .parse()
            .map_err(|_| AuthError::Malformed(format!("unknown algorithm {alg}")))?;
        if !self.algorithms.contains(&alg) {
            return Err(AuthError::Malformed(format!(
                "algorithm {alg:?} not allowed for this issuer"
            )));
        }
        let kid = kid.ok_or(AuthError::UnknownKey)?;
        if let Some(found) = self.lookup(kid, alg) {
            return Ok(found);
        }
        {
            let mut last = self.last_fetch.lock().await;
            // Another request may have refreshed while we waited for the lock.
            if let Some(found) = self.lookup(kid, alg) {
                return Ok(found);
            }
            if last.is_some_and(|t| t.elapsed() < UNKNOWN_KID_REFETCH) {
                return Err(AuthError::UnknownKey);
            }
            *last = Some(Instant::now());
            if let Err(e) = self.fetch().await {
                tracing::warn!(issuer = %self.issuer_name, error = %e, "JWKS refetch for an unknown kid failed; keeping the last good keys");
            }
        }
        self.lookup(kid, alg).ok_or(AuthError::UnknownKey)
    }

    fn lookup(&self, kid: &str, alg: Algorithm) -> Option<(DecodingKey, Algorithm)> {
        let keys = self.keys.read().expect("jwks lock");
        // The key's own algorithm must match the token's: an RSA key never verifies an
        // ES256 token and vice versa, whatever the header claims.
        keys.get(kid).filter(|(_, a)| *a == alg).cloned()
    }

    /// Background refresh; failures keep the last good keys.
    pub async fn refresh_now(&self) -> Result<usize, String> {
        self.fetch().await
    }

    async fn fetch(&self) -> Result<usize, String> {
        let response = self
            .http
            .get(self.url.clone())
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .map_err(|e| format!("JWKS request failed: {e}"))?;
        if !response.status().is_success() {
            return Err(format!("JWKS endpoint answered {}", response.status()));
        }
        if response
            .content_length()
            .is_some_and(|len| len > MAX_JWKS_BYTES as u64)
        {
            return Err("JWKS document larger than 1 MiB".into());
        }
        let body = response
            .bytes()
            .await
            .map_err(|e| format!("JWKS body could not be read: {e}"))?;
        if body.len() > MAX_JWKS_BYTES {
            return Err("JWKS document larger than 1 MiB".into());
        }
        let set: JwkSet = serde_json::from_slice(&body)
            .map_err(|e| format!("JWKS body is not a key set: {e}"))?;
        let mut keys = HashMap::new();
        for jwk in &set.keys {
            let Some(kid) = jwk.common.key_id.clone() else {
                continue;
            };
            // Only asymmetric signing keys: a symmetric (`oct`) key would let anyone who
            // reads the JWKS mint HS256 tokens, and `use: enc` keys are not for signatures.
            let (alg, expected) = match &jwk.algorithm {
                AlgorithmParameters::RSA(_) => (Algorithm::RS256, KeyAlgorithm::RS256),
                AlgorithmParameters::EllipticCurve(_) => (Algorithm::ES256, KeyAlgorithm::ES256),
                _ => continue,
            };
            if !self.algorithms.contains(&alg)
                || matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption))
                || jwk.common.key_algorithm.is_some_and(|a| a != expected)
            {
                continue;
            }
            if let Ok(key) = DecodingKey::from_jwk(jwk) {
                keys.insert(kid, (key, alg));
            }
        }
        if keys.is_empty() {
            return Err("JWKS holds no usable key".into());
        }
        let count = keys.len();
        *self.keys.write().expect("jwks lock") = keys;
        tracing::debug!(issuer = %self.issuer_name, keys = count, "JWKS loaded");
        Ok(count)
    }
}
