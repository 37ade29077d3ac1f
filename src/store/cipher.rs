//! Encryption at rest for secret columns: AES-256-GCM (aws-lc-rs `RandomizedNonceKey`).
//!
//! - Every write draws a fresh random 96-bit nonce; the stored blob is
//!   `nonce (12 bytes) || ciphertext || tag (16 bytes)` and the row keeps the id of the key
//!   that sealed it in its own `key_id` column.
//! - The additional authenticated data (AAD) binds the row's identity ([`Aad`]), so a
//!   ciphertext copied into another row, or into another column kind, fails to open.
//! - Rotation: reading uses the row's key id; writing always uses the active key;
//!   `Store::reencrypt_all` moves old rows to the active key.
//!
//! Key bytes live only inside aws-lc's key objects; `Debug` shows key ids only.

use std::collections::BTreeMap;
use std::fmt;

use aws_lc_rs::aead::{AES_256_GCM, Aad as AeadAad, NONCE_LEN, Nonce, RandomizedNonceKey};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};

use super::StoreError;
use super::config::EncryptionConfig;

pub(crate) const KEY_LEN: usize = 32;
const TAG_LEN: usize = 16;

/// Decodes a configured key: base64 (standard or URL-safe alphabet, padding optional,
/// surrounding whitespace ignored) of exactly 32 bytes.
pub(crate) fn decode_key(text: &str) -> Result<[u8; KEY_LEN], &'static str> {
    let text = text.trim();
    let bytes = [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD]
        .iter()
        .find_map(|engine| engine.decode(text).ok())
        .ok_or("must be base64 of 32 bytes (e.g. `head -c 32 /dev/urandom | base64`)")?;
    bytes
        .try_into()
        .map_err(|_| "must be base64 of 32 bytes (e.g. `head -c 32 /dev/urandom | base64`)")
}

/// A placeholder rather than a random key (all 32 bytes equal, e.g. all zero): refused in
/// production, accepted elsewhere (tests use fixed keys).
pub(crate) fn is_placeholder_key(key: &[u8; KEY_LEN]) -> bool {
    key.iter().all(|b| *b == key[0])
}

/// Key ids are stored in every row and shown in messages: keep them short and plain.
pub(crate) fn valid_key_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// 32 random bytes from the system CSPRNG.
pub(crate) fn random_key() -> Result<[u8; KEY_LEN], StoreError> {
    let mut key = [0u8; KEY_LEN];
    aws_lc_rs::rand::fill(&mut key)
        .map_err(|_| StoreError::Config("the system random generator failed".into()))?;
    Ok(key)
}

/// The identity a ciphertext is bound to. Parts are length-prefixed, so no choice of
/// caller or user id can make two different rows produce the same AAD.
pub(crate) struct Aad(Vec<u8>);

impl Aad {
    fn new(kind: &str, parts: &[&str]) -> Self {
        let mut out = Vec::with_capacity(32 + parts.iter().map(|p| p.len() + 4).sum::<usize>());
        out.extend_from_slice(b"m365gw.store.v1\0");
        for part in std::iter::once(&kind).chain(parts) {
            out.extend_from_slice(&(part.len() as u32).to_be_bytes());
            out.extend_from_slice(part.as_bytes());
        }
        Aad(out)
    }

    /// `connected_accounts.refresh_token_enc` of (caller, user_id).
    pub(crate) fn connected(caller: &str, user_id: &str) -> Self {
        Self::new("connected", &[caller, user_id])
    }

    /// `pending_connects.code_verifier_enc` of a state.
    pub(crate) fn pending(state: &str) -> Self {
        Self::new("pending", &[state])
    }

    /// `consumer_webhooks.secret_enc` of a webhook id.
    pub(crate) fn webhook(id: &str) -> Self {
        Self::new("webhook", &[id])
    }
}

/// The keys the store can read with, and the one it writes with.
pub(crate) struct KeyRing {
    keys: BTreeMap<String, RandomizedNonceKey>,
    active: String,
}

impl fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyRing")
            .field("key_ids", &self.keys.keys().collect::<Vec<_>>())
            .field("active", &self.active)
            .finish()
    }
}

impl KeyRing {
    /// From `store.encryption`; `None` when no key is listed. Problems are reported with
    /// the same wording as `StoreConfig::validate`.
    pub(crate) fn from_config(config: &EncryptionConfig) -> Result<Option<Self>, StoreError> {
        let mut problems = Vec::new();
        config.validate_into(&mut problems);
        if !problems.is_empty() {
            return Err(StoreError::Config(problems.join("; ")));
        }
        if config.keys.is_empty() {
            return Ok(None);
        }
        let mut ring = BTreeMap::new();
        for (id, text) in &config.keys {
            let bytes = decode_key(text)
                .map_err(|m| StoreError::Config(format!("store.encryption.keys.{id}: {m}")))?;
            ring.insert(id.clone(), new_key(&bytes)?);
        }
        let active = config.effective_active_key().ok_or_else(|| {
            StoreError::Config(
                "store.encryption.active_key: required when several keys are listed".into(),
            )
        })?;
        Ok(Some(KeyRing {
            keys: ring,
            active: active.to_owned(),
        }))
    }

    pub(crate) fn single(id: &str, bytes: &[u8; KEY_LEN]) -> Result<Self, StoreError> {
        let mut keys = BTreeMap::new();
        keys.insert(id.to_owned(), new_key(bytes)?);
        Ok(KeyRing {
            keys,
            active: id.to_owned(),
        })
    }

    pub(crate) fn active_key_id(&self) -> &str {
        &self.active
    }

    pub(crate) fn key_ids(&self) -> impl Iterator<Item = &str> {
        self.keys.keys().map(String::as_str)
    }

    /// Encrypts with the active key: returns (key id, `nonce || ciphertext || tag`).
    pub(crate) fn seal(
        &self,
        aad: &Aad,
        plaintext: &[u8],
    ) -> Result<(String, Vec<u8>), StoreError> {
        let key = &self.keys[&self.active];
        let mut in_out = Vec::with_capacity(plaintext.len() + TAG_LEN);
        in_out.extend_from_slice(plaintext);
        let nonce = key
            .seal_in_place_append_tag(AeadAad::from(aad.0.as_slice()), &mut in_out)
            .map_err(|_| StoreError::Config("AES-256-GCM encryption failed".into()))?;
        let mut blob = Vec::with_capacity(NONCE_LEN + in_out.len());
        blob.extend_from_slice(nonce.as_ref());
        blob.extend_from_slice(&in_out);
        Ok((self.active.clone(), blob))
    }

    /// Decrypts a blob sealed by [`seal`](Self::seal) with key `key_id` for the same AAD.
    /// `what` names the row in error messages (no secrets).
    pub(crate) fn open(
        &self,
        key_id: &str,
        blob: &[u8],
        aad: &Aad,
        what: &dyn fmt::Display,
    ) -> Result<Vec<u8>, StoreError> {
        let key = self.keys.get(key_id).ok_or_else(|| {
            StoreError::Corrupt(format!(
                "{what}: encrypted with key '{key_id}', which is not in store.encryption.keys"
            ))
        })?;
        if blob.len() < NONCE_LEN + TAG_LEN {
            return Err(StoreError::Corrupt(format!("{what}: ciphertext too short")));
        }
        let (nonce, sealed) = blob.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce)
            .map_err(|_| StoreError::Corrupt(format!("{what}: bad nonce")))?;
        let mut in_out = sealed.to_vec();
        let plain = key
            .open_in_place(nonce, AeadAad::from(aad.0.as_slice()), &mut in_out)
            .map_err(|_| {
                StoreError::Corrupt(format!(
                    "{what}: decryption with key '{key_id}' failed (wrong key material, tampered data, or data copied from another row)"
                ))
            })?;
        Ok(plain.to_vec())
    }

    /// [`open`](Self::open) for text secrets.
    pub(crate) fn open_string(
        &self,
        key_id: &str,
        blob: &[u8],
        aad: &Aad,
        what: &dyn fmt::Display,
    ) -> Result<String, StoreError> {
        String::from_utf8(self.open(key_id, blob, aad, what)?)
            .map_err(|_| StoreError::Corrupt(format!("{what}: decrypted value is not UTF-8")))
    }
}

fn new_key(bytes: &[u8; KEY_LEN]) -> Result<RandomizedNonceKey, StoreError> {
    RandomizedNonceKey::new(&AES_256_GCM, bytes)
        .map_err(|_| StoreError::Config("cannot build an AES-256-GCM key".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring(ids: &[(&str, u8)], active: &str) -> KeyRing {
        let mut keys = BTreeMap::new();
        for (id, seed) in ids {
            let mut bytes = [0u8; KEY_LEN];
            for (i, b) in bytes.iter_mut().enumerate() {
                *b = seed.wrapping_add(i as u8);
            }
            keys.insert((*id).to_owned(), new_key(&bytes).unwrap());
        }
        KeyRing {
            keys,
            active: active.to_owned(),
        }
    }

    const WHAT: &str = "test row";

    #[test]
    fn sealing_then_opening_with_the_same_aad_round_trips() {
        let ring = ring(&[("k1", 1)], "k1");
        let aad = Aad::connected("crm", "user-1");
        let (key_id, blob) = ring.seal(&aad, b"0.AAAA-refresh-token").unwrap();
        assert_eq!(key_id, "k1");
        assert_eq!(blob.len(), NONCE_LEN + 20 + TAG_LEN);
        assert!(!blob.windows(7).any(|w| w == b"refresh"));
        let plain = ring.open_string(&key_id, &blob, &aad, &WHAT).unwrap();
        assert_eq!(plain, "0.AAAA-refresh-token");
    }

    #[test]
    fn every_seal_uses_a_fresh_nonce() {
        let ring = ring(&[("k1", 1)], "k1");
        let aad = Aad::pending("s");
        let (_, a) = ring.seal(&aad, b"same").unwrap();
        let (_, b) = ring.seal(&aad, b"same").unwrap();
        assert_ne!(a[..NONCE_LEN], b[..NONCE_LEN]);
        assert_ne!(a, b);
    }

    #[test]
    fn opening_with_another_rows_aad_fails_as_corrupt() {
        let ring = ring(&[("k1", 1)], "k1");
        let (key_id, blob) = ring
            .seal(&Aad::connected("crm", "user-1"), b"secret")
            .unwrap();
        for other in [
            Aad::connected("crm", "user-2"),
            Aad::connected("crm2", "user-1"),
            Aad::pending("crm"),
        ] {
            let err = ring.open(&key_id, &blob, &other, &WHAT).unwrap_err();
            assert!(matches!(err, StoreError::Corrupt(_)), "{err:?}");
        }
    }

    #[test]
    fn aad_parts_are_unambiguous() {
        assert_ne!(Aad::connected("a:b", "c").0, Aad::connected("a", "b:c").0);
        assert_ne!(Aad::connected("ab", "").0, Aad::connected("a", "b").0);
    }

    #[test]
    fn an_unknown_key_id_is_corrupt_and_names_the_key() {
        let ring = ring(&[("k1", 1)], "k1");
        let aad = Aad::pending("s");
        let (_, blob) = ring.seal(&aad, b"secret").unwrap();
        match ring.open("k9", &blob, &aad, &WHAT) {
            Err(StoreError::Corrupt(m)) => assert!(m.contains("'k9'") && m.contains(WHAT), "{m}"),
            other => panic!("expected Corrupt, got {other:?}"),
        }
    }

    #[test]
    fn a_tampered_byte_anywhere_is_corrupt() {
        let ring = ring(&[("k1", 1)], "k1");
        let aad = Aad::pending("s");
        let (key_id, blob) = ring.seal(&aad, b"secret verifier").unwrap();
        for i in 0..blob.len() {
            let mut bad = blob.clone();
            bad[i] ^= 0x01;
            assert!(
                matches!(
                    ring.open(&key_id, &bad, &aad, &WHAT),
                    Err(StoreError::Corrupt(_))
                ),
                "byte {i}"
            );
        }
        assert!(matches!(
            ring.open(&key_id, &blob[..20], &aad, &WHAT),
            Err(StoreError::Corrupt(_))
        ));
        assert!(matches!(
            ring.open(&key_id, &[], &aad, &WHAT),
            Err(StoreError::Corrupt(_))
        ));
    }

    #[test]
    fn a_different_key_under_the_same_id_fails_as_corrupt() {
        let aad = Aad::pending("s");
        let (key_id, blob) = ring(&[("k1", 1)], "k1").seal(&aad, b"secret").unwrap();
        let err = ring(&[("k1", 2)], "k1")
            .open(&key_id, &blob, &aad, &WHAT)
            .unwrap_err();
        assert!(matches!(err, StoreError::Corrupt(_)));
    }

    #[test]
    fn writes_use_the_active_key_and_reads_use_the_rows_key() {
        let aad = Aad::pending("s");
        let old = ring(&[("k1", 1)], "k1");
        let (old_id, old_blob) = old.seal(&aad, b"v1").unwrap();
        let both = ring(&[("k1", 1), ("k2", 7)], "k2");
        assert_eq!(both.open(&old_id, &old_blob, &aad, &WHAT).unwrap(), b"v1");
        let (new_id, _) = both.seal(&aad, b"v2").unwrap();
        assert_eq!(new_id, "k2");
    }

    #[test]
    fn keys_decode_from_base64_of_32_bytes_only() {
        let good = STANDARD.encode((0u8..32).collect::<Vec<_>>());
        assert!(decode_key(&good).is_ok());
        assert!(decode_key(&format!("  {good}\n")).is_ok());
        assert!(decode_key(good.trim_end_matches('=')).is_ok());
        assert!(
            decode_key(
                &URL_SAFE.encode(
                    [0xfbu8; 31]
                        .iter()
                        .chain([1u8].iter())
                        .copied()
                        .collect::<Vec<_>>()
                )
            )
            .is_ok()
        );
        assert!(decode_key(&STANDARD.encode([7u8; 16])).is_err());
        assert!(decode_key(&STANDARD.encode([7u8; 33])).is_err());
        let zero = decode_key(&STANDARD.encode([0u8; 32])).unwrap();
        assert!(is_placeholder_key(&zero) && !is_placeholder_key(&decode_key(&good).unwrap()));
        assert!(decode_key("not base64!").is_err());
        assert!(decode_key("").is_err());
    }

    #[test]
    fn key_ids_are_short_and_plain() {
        for ok in ["k1", "2026-11.prod_a", "dev"] {
            assert!(valid_key_id(ok), "{ok}");
        }
        for bad in ["", "with space", "a/b", "é", &"x".repeat(65)] {
            assert!(!valid_key_id(bad), "{bad}");
        }
    }

    #[test]
    fn debug_shows_key_ids_only() {
        let text = format!("{:?}", ring(&[("k1", 1), ("k2", 2)], "k2"));
        assert!(text.contains("k1") && text.contains("k2"));
        assert!(!text.contains("RandomizedNonceKey"));
    }
}
