//! The emulator's token-signing keys: one active RSA key, older ones still published in the
//! JWKS until retired (Entra rolls its keys the same way).

use std::sync::{Arc, RwLock};

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa::{KeyPair, KeySize};
use aws_lc_rs::signature::KeyPair as _;
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header};
use serde::Serialize;
use sha2::{Digest, Sha256};

/// One RSA-2048 signing key.
pub(crate) struct SigningKey {
    encoding: EncodingKey,
    decoding: DecodingKey,
    /// base64url key id; also sent as `x5t` in v1.0 tokens, as Entra does.
    kid: String,
    pub(crate) n: String,
    pub(crate) e: String,
}

impl SigningKey {
    pub(crate) fn generate() -> SigningKey {
        // Key generation failing means the crypto library itself is broken; nothing sensible
        // can be served without a key, so this is a startup (or rotation) panic, never a
        // request-time one.
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
        SigningKey {
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

    /// A v1.0-style header: `typ`, `alg`, `kid` and the legacy `x5t` (same value).
    pub(crate) fn sign_v1<T: Serialize>(
        &self,
        claims: &T,
    ) -> Result<String, jsonwebtoken::errors::Error> {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(self.kid.clone());
        header.x5t = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding)
    }

    /// A v2.0 header: `typ`, `alg`, `kid` ("x5t … emitted only in v1.0 access tokens").
    pub(crate) fn sign_v2<T: Serialize>(
        &self,
        claims: &T,
    ) -> Result<String, jsonwebtoken::errors::Error> {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(self.kid.clone());
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

/// The published keys, newest (active) first.
pub(crate) struct KeyRing {
    keys: RwLock<Vec<Arc<SigningKey>>>,
}

impl KeyRing {
    pub(crate) fn generate() -> KeyRing {
        KeyRing {
            keys: RwLock::new(vec![Arc::new(SigningKey::generate())]),
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Vec<Arc<SigningKey>>> {
        self.keys.read().unwrap_or_else(|p| p.into_inner())
    }

    /// The key new tokens are signed with.
    pub(crate) fn active(&self) -> Arc<SigningKey> {
        // The ring is never empty: it starts with one key and rotation adds before retiring.
        Arc::clone(&self.read()[0])
    }

    /// A published (not retired) key by `kid`.
    pub(crate) fn find(&self, kid: &str) -> Option<Arc<SigningKey>> {
        self.read().iter().find(|k| k.kid == kid).cloned()
    }

    /// Every published key, the active one first (the JWKS order).
    pub(crate) fn published(&self) -> Vec<Arc<SigningKey>> {
        self.read().clone()
    }

    /// A new active key; the previous ones stay published unless `retire_previous`.
    pub(crate) fn rotate(&self, retire_previous: bool) -> String {
        // Generated outside the lock: it takes a few milliseconds.
        let key = Arc::new(SigningKey::generate());
        let kid = key.kid.clone();
        let mut keys = self.keys.write().unwrap_or_else(|p| p.into_inner());
        if retire_previous {
            keys.clear();
        }
        keys.insert(0, key);
        kid
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    #[test]
    fn a_generated_key_signs_tokens_its_own_decoding_key_verifies() {
        let key = SigningKey::generate();
        let claims =
            json!({"aud": "https://graph.microsoft.com", "exp": crate::clock::now_unix() + 60});
        let token = key.sign_v1(&claims).expect("sign");
        let mut validation = jsonwebtoken::Validation::new(Algorithm::RS256);
        validation.set_audience(&["https://graph.microsoft.com"]);
        let decoded =
            jsonwebtoken::decode::<Value>(&token, key.decoding(), &validation).expect("verify");
        assert_eq!(decoded.header.kid.as_deref(), Some(key.kid()));
        assert_eq!(decoded.header.x5t.as_deref(), Some(key.kid()));
        assert_eq!(key.kid().len(), 27);
        let v2 = jsonwebtoken::decode_header(key.sign_v2(&claims).expect("sign")).expect("header");
        assert_eq!(v2.x5t, None);
    }

    #[test]
    fn rotation_publishes_the_new_key_first_and_retires_on_request() {
        let ring = KeyRing::generate();
        let first = ring.active().kid().to_string();
        let second = ring.rotate(false);
        assert_ne!(first, second);
        let kids: Vec<String> = ring
            .published()
            .iter()
            .map(|k| k.kid().to_string())
            .collect();
        assert_eq!(kids, vec![second.clone(), first.clone()]);
        assert!(ring.find(&first).is_some());
        let third = ring.rotate(true);
        assert_eq!(ring.published().len(), 1);
        assert_eq!(ring.active().kid(), third);
        assert!(ring.find(&first).is_none() && ring.find(&second).is_none());
    }
}
