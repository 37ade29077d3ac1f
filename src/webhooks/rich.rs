//! Rich change notifications (`includeResourceData: true`, graph-protocol.md §10.7): the
//! collection's `validationTokens` are verified and each item's `encryptedContent` is
//! decrypted.
//!
//! The receiver calls [`open_collection`] once per POST. It runs two independent checks:
//! - **`validationTokens`** (security catalogue row 71) prove that Graph's change-tracking
//!   app sent the POST, for our app, from a tenant we serve. They are checked first, so a
//!   POST from anyone else costs no RSA work.
//! - **`dataSignature`** (row 72) proves the encrypted bytes were not altered on the way. It
//!   is an HMAC keyed with a symmetric key that the *sender* chose and wrapped with our
//!   public certificate, so it says nothing about who sent them: anyone holding the
//!   certificate can make a valid one. Only the tokens vouch for the origin. Processing
//!   should still re-read current state from Graph rather than trust the payload (row 73).
//!
//! The key for each item is found by `encryptionCertificateId` *and* thumbprint in a
//! [`RichKeyRing`]. The ring also keeps older certificates until every subscription has
//! been renewed onto the active one. All crypto is aws-lc-rs, the crate's one crypto
//! library (no OpenSSL).

use std::path::Path;
use std::sync::Arc;

use aws_lc_rs::cipher::{AES_256, DecryptionContext, PaddedBlockDecryptingKey, UnboundCipherKey};
use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::iv::FixedLength;
use aws_lc_rs::rsa::{
    KeyPair, OAEP_SHA1_MGF1SHA1, OaepPrivateDecryptingKey, PrivateDecryptingKey,
    PublicEncryptingKey,
};
use aws_lc_rs::{digest, hmac};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, Validation};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::auth::{AuthError, JwksKeys};

/// Microsoft Graph Change Tracking: the app that signs `validationTokens` (`appid`/`azp`).
pub const CHANGE_TRACKING_APP_ID: &str = "0bf30f3b-4a52-48df-9a82-234910c4a086";

/// Clock skew allowed on a validation token's `exp` and `nbf`. Entra and we both run on
/// NTP, and the tokens live an hour, so two minutes leaves room without stretching a
/// captured token's life much.
pub const TOKEN_LEEWAY_SECS: i64 = 120;

/// Largest decoded `data` accepted. Graph sends one resource per item (a message with an
/// HTML body); 4 MiB is Outlook's own request limit, and above it we refuse rather than
/// decrypt and parse attacker-sized input.
const MAX_DATA_BYTES: usize = 4 * 1024 * 1024;
/// Largest decoded `dataKey`: one RSA block of the largest key aws-lc-rs loads (8192 bits).
const MAX_WRAPPED_KEY_BYTES: usize = 1024;
/// Largest decoded `dataSignature`. An HMAC-SHA256 tag is 32 bytes; anything much longer
/// is garbage and not worth decoding.
const MAX_SIGNATURE_BYTES: usize = 64;
/// The symmetric key Graph wraps: AES-256, whose first 16 bytes are also the IV.
const DATA_KEY_BYTES: usize = 32;
/// Most tokens one collection may carry. There is one per (app, tenant) pair in the POST;
/// each costs an RSA verification, so a flood of them must not become a CPU sink.
const MAX_TOKENS: usize = 1_000;
/// Largest validation token read. Entra's are about 1.5 KB.
const MAX_TOKEN_BYTES: usize = 16 * 1024;
/// Longest `kid` looked up in the JWKS (as for inbound bearer tokens).
const MAX_KID_LEN: usize = 256;
/// Graph's limit for `encryptionCertificateId`.
const MAX_CERTIFICATE_ID_LEN: usize = 128;

/// Why a certificate could not be loaded, a token was refused, or an item could not be
/// opened. No variant carries key material or plaintext. The identifiers echoed back come
/// from the notification and are already public.
#[derive(Debug, thiserror::Error)]
pub enum RichError {
    /// A certificate or key file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the encryption certificate is unusable: {0}")]
    Certificate(&'static str),
    #[error("the encryption private key is unusable: {0}")]
    PrivateKey(&'static str),
    /// The private key's public half is not the certificate's public key.
    #[error("the private key does not belong to the encryption certificate")]
    KeyMismatch,
    #[error("the encryption certificate id is unusable: {0}")]
    CertificateId(&'static str),

    /// `encryptionCertificateId` + thumbprint match no loaded certificate: a subscription
    /// made with a certificate we no longer hold, or a forgery.
    #[error("encryptedContent names an unknown certificate (id {id:?}, thumbprint {thumbprint:?})")]
    UnknownCertificate { id: String, thumbprint: String },
    /// A field is not base64, or has an impossible size.
    #[error("encryptedContent is malformed: {0}")]
    Malformed(&'static str),
    #[error("encryptedContent data is larger than the limit")]
    TooLarge,
    /// RSA-OAEP failed, or did not yield a 32-byte key. One variant for both, so the
    /// outcome of the RSA step tells a prober nothing more than "no".
    #[error("the data key could not be unwrapped")]
    KeyUnwrap,
    /// `dataSignature` is not the HMAC of `data`: the content was altered.
    #[error("dataSignature does not match data")]
    BadSignature,
    /// AES-CBC or its padding failed after the HMAC matched: Graph encrypted with a key
    /// it did not sign with. This is never an attacker's padding oracle, because tampered
    /// data stops at [`RichError::BadSignature`].
    #[error("the data could not be decrypted")]
    Decrypt,
    #[error("the decrypted resource is not a JSON object")]
    NotJson,

    /// `encryptedContent` arrived without `validationTokens`, or with an empty list.
    #[error("validationTokens are missing")]
    ValidationTokensMissing,
    #[error("a validation token is malformed: {0}")]
    TokenMalformed(String),
    /// The token's `kid` is not in the JWKS, even after a refetch.
    #[error("a validation token is signed with an unknown key")]
    TokenKeyUnknown,
    #[error("a validation token's signature is invalid")]
    TokenSignature,
    #[error("a validation token has expired")]
    TokenExpired,
    #[error("a validation token is not valid yet")]
    TokenNotYetValid,
    /// `aud` is not our app id.
    #[error("a validation token is for another application")]
    TokenAudience,
    /// `iss`/`tid` name a tenant we do not serve, or disagree with each other.
    #[error("a validation token is from a tenant we do not serve")]
    TokenTenant,
    /// `appid`/`azp` is not Microsoft Graph Change Tracking.
    #[error("a validation token was not issued to Microsoft Graph Change Tracking")]
    TokenPublisher,
}

impl RichError {
    /// A stable code for logs and metrics; the messages are not API.
    pub fn code(&self) -> &'static str {
        match self {
            RichError::Read { .. } => "RICH_KEY_READ",
            RichError::Certificate(_) => "RICH_CERTIFICATE",
            RichError::PrivateKey(_) => "RICH_PRIVATE_KEY",
            RichError::KeyMismatch => "RICH_KEY_MISMATCH",
            RichError::CertificateId(_) => "RICH_CERTIFICATE_ID",
            RichError::UnknownCertificate { .. } => "RICH_UNKNOWN_CERTIFICATE",
            RichError::Malformed(_) => "RICH_MALFORMED",
            RichError::TooLarge => "RICH_TOO_LARGE",
            RichError::KeyUnwrap => "RICH_KEY_UNWRAP",
            RichError::BadSignature => "RICH_BAD_SIGNATURE",
            RichError::Decrypt => "RICH_DECRYPT",
            RichError::NotJson => "RICH_NOT_JSON",
            RichError::ValidationTokensMissing => "RICH_VALIDATION_TOKENS_MISSING",
            RichError::TokenMalformed(_) => "RICH_TOKEN_MALFORMED",
            RichError::TokenKeyUnknown => "RICH_TOKEN_KEY_UNKNOWN",
            RichError::TokenSignature => "RICH_TOKEN_SIGNATURE",
            RichError::TokenExpired => "RICH_TOKEN_EXPIRED",
            RichError::TokenNotYetValid => "RICH_TOKEN_NOT_YET_VALID",
            RichError::TokenAudience => "RICH_TOKEN_AUDIENCE",
            RichError::TokenTenant => "RICH_TOKEN_TENANT",
            RichError::TokenPublisher => "RICH_TOKEN_PUBLISHER",
        }
    }
}

// --- keys ------------------------------------------------------------------------------

/// The certificate Graph encrypts resource data for, with its private key.
pub struct RichKeys {
    /// What subscriptions send as `encryptionCertificateId` and notifications echo back.
    certificate_id: String,
    /// Upper-case hex SHA-1 of the certificate DER (`encryptionCertificateThumbprint`).
    thumbprint: String,
    certificate_der: Vec<u8>,
    key: OaepPrivateDecryptingKey,
}

impl std::fmt::Debug for RichKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RichKeys")
            .field("certificate_id", &self.certificate_id)
            .field("thumbprint", &self.thumbprint)
            .finish_non_exhaustive()
    }
}

impl RichKeys {
    /// Loads a PEM X.509 certificate with an RSA key and its unencrypted PEM private key
    /// (PKCS#8 `PRIVATE KEY` or PKCS#1 `RSA PRIVATE KEY`).
    ///
    /// # Errors
    /// [`RichError::Certificate`], [`RichError::PrivateKey`] or [`RichError::CertificateId`]
    /// when one is unusable, and [`RichError::KeyMismatch`] when the key is not the
    /// certificate's. A mismatch would otherwise only show up as every notification
    /// failing to decrypt.
    pub fn load(
        certificate_pem: &str,
        private_key_pem: &str,
        certificate_id: &str,
    ) -> Result<RichKeys, RichError> {
        if certificate_id.is_empty() {
            return Err(RichError::CertificateId("it is empty"));
        }
        if certificate_id.len() > MAX_CERTIFICATE_ID_LEN {
            return Err(RichError::CertificateId("it is longer than 128 characters"));
        }
        if certificate_id.chars().any(char::is_control) {
            return Err(RichError::CertificateId("it holds control characters"));
        }
        let certificate_der = pem_block(certificate_pem, "CERTIFICATE")
            .ok_or(RichError::Certificate("no PEM CERTIFICATE block"))?;
        let spki = subject_public_key_info(&certificate_der)
            .ok_or(RichError::Certificate("not X.509 DER"))?;
        let certificate_key = PublicEncryptingKey::from_der(spki).map_err(|_| {
            RichError::Certificate("its key is not an RSA key of 2048 to 8192 bits")
        })?;
        let private = private_key(private_key_pem)?;
        // Compare the two public keys as aws-lc-rs re-encodes them, so equivalent DER
        // spellings of one key cannot cause a false mismatch.
        let ours = private.public_key().as_der();
        let theirs = certificate_key.as_der();
        match (ours, theirs) {
            (Ok(ours), Ok(theirs)) if ours.as_ref() == theirs.as_ref() => {}
            (Ok(_), Ok(_)) => return Err(RichError::KeyMismatch),
            _ => return Err(RichError::Certificate("its key cannot be re-encoded")),
        }
        let key = OaepPrivateDecryptingKey::new(private)
            .map_err(|_| RichError::PrivateKey("not usable for RSA-OAEP"))?;
        let sha1 = digest::digest(&digest::SHA1_FOR_LEGACY_USE_ONLY, &certificate_der);
        Ok(RichKeys {
            certificate_id: certificate_id.to_owned(),
            thumbprint: hex_upper(sha1.as_ref()),
            certificate_der,
            key,
        })
    }

    /// [`RichKeys::load`] from files.
    ///
    /// # Errors
    /// [`RichError::Read`] when a file cannot be read, then as [`RichKeys::load`].
    pub fn from_files(
        certificate_file: &Path,
        private_key_file: &Path,
        certificate_id: &str,
    ) -> Result<RichKeys, RichError> {
        let read = |path: &Path| {
            std::fs::read_to_string(path).map_err(|source| RichError::Read {
                path: path.display().to_string(),
                source,
            })
        };
        RichKeys::load(
            &read(certificate_file)?,
            &read(private_key_file)?,
            certificate_id,
        )
    }

    /// Base64 of the certificate DER: what a subscription's `encryptionCertificate`
    /// carries.
    pub fn certificate_base64(&self) -> String {
        STANDARD.encode(&self.certificate_der)
    }

    pub fn certificate_id(&self) -> &str {
        &self.certificate_id
    }

    /// Upper-case hex SHA-1 of the certificate DER.
    pub fn thumbprint(&self) -> &str {
        &self.thumbprint
    }

    /// Graph's decryption order, which is mandatory: unwrap the key, verify the HMAC over
    /// the ciphertext, and only then run AES-CBC. Tampered data therefore never reaches
    /// the padding check, so the outcome cannot act as a padding oracle. Sizes are checked
    /// before any RSA work.
    fn open(&self, content: &EncryptedContent) -> Result<Value, RichError> {
        let wrapped = decode_bounded(&content.data_key, MAX_WRAPPED_KEY_BYTES).ok_or(
            RichError::Malformed("dataKey is not base64 of one RSA block"),
        )?;
        let signature = decode_bounded(&content.data_signature, MAX_SIGNATURE_BYTES)
            .ok_or(RichError::Malformed("dataSignature is not base64 of a MAC"))?;
        if content.data.len() > base64_len(MAX_DATA_BYTES) {
            return Err(RichError::TooLarge);
        }
        let data = decode_bounded(&content.data, MAX_DATA_BYTES)
            .ok_or(RichError::Malformed("data is not base64"))?;

        let key = self.unwrap_key(&wrapped)?;
        hmac::verify(&hmac::Key::new(hmac::HMAC_SHA256, &key), &data, &signature)
            .map_err(|_| RichError::BadSignature)?;
        let plaintext = aes_256_cbc_decrypt(&key, data)?;
        match serde_json::from_slice::<Value>(&plaintext) {
            Ok(resource @ Value::Object(_)) => Ok(resource),
            _ => Err(RichError::NotJson),
        }
    }

    /// RSA-OAEP (SHA-1, MGF1-SHA-1) unwrap of `dataKey`; anything but 32 bytes is refused.
    fn unwrap_key(&self, wrapped: &[u8]) -> Result<[u8; DATA_KEY_BYTES], RichError> {
        if wrapped.len() != self.key.key_size_bytes() {
            return Err(RichError::KeyUnwrap);
        }
        let mut buffer = vec![0u8; self.key.min_output_size()];
        let key = self
            .key
            .decrypt(&OAEP_SHA1_MGF1SHA1, wrapped, &mut buffer, None)
            .map_err(|_| RichError::KeyUnwrap)
            .and_then(|key| {
                <[u8; DATA_KEY_BYTES]>::try_from(&*key).map_err(|_| RichError::KeyUnwrap)
            });
        // Best effort: don't leave the unwrapped key in freed heap memory.
        buffer.fill(0);
        key
    }
}

/// A key ring: the active [`RichKeys`] plus older ones, kept until every subscription has
/// been renewed with the active certificate (catalogue row 72). Graph keeps encrypting for
/// the certificate a subscription was made with, so dropping an old one early would make
/// those notifications undecryptable.
#[derive(Debug)]
pub struct RichKeyRing {
    /// The active key first, then the previous ones in the order given.
    keys: Vec<RichKeys>,
}

impl RichKeyRing {
    pub fn new(active: RichKeys, previous: Vec<RichKeys>) -> Self {
        let mut keys = Vec::with_capacity(1 + previous.len());
        keys.push(active);
        keys.extend(previous);
        RichKeyRing { keys }
    }

    /// The certificate new subscriptions and renewals should carry.
    pub fn active(&self) -> &RichKeys {
        &self.keys[0]
    }

    /// Certificates still accepted for subscriptions not yet renewed.
    pub fn previous(&self) -> &[RichKeys] {
        &self.keys[1..]
    }

    /// Decrypts one item's `encryptedContent` into the resource JSON (an object).
    ///
    /// # Errors
    /// [`RichError::UnknownCertificate`] (also logged as a warning: it is either a
    /// subscription still on a certificate we dropped, or a forgery), then any failure of
    /// the decryption steps (see [`RichError`]).
    pub fn decrypt(&self, content: &EncryptedContent) -> Result<Value, RichError> {
        // Both must match: the id alone is a free-form label anyone can repeat, and the
        // thumbprint pins the certificate Graph actually encrypted for.
        let keys = self.keys.iter().find(|k| {
            k.certificate_id == content.encryption_certificate_id
                && k.thumbprint
                    .eq_ignore_ascii_case(&content.encryption_certificate_thumbprint)
        });
        let Some(keys) = keys else {
            let id = clip(&content.encryption_certificate_id);
            let thumbprint = clip(&content.encryption_certificate_thumbprint);
            tracing::warn!(
                alert = "rich_notification_unknown_certificate",
                certificate_id = ?id,
                thumbprint = ?thumbprint,
                "encryptedContent names a certificate we do not hold (a subscription not renewed onto a loaded certificate, or a forgery)"
            );
            return Err(RichError::UnknownCertificate { id, thumbprint });
        };
        keys.open(content)
    }
}

/// `encryptedContent` of one change notification item.
#[derive(Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EncryptedContent {
    /// Base64 AES-256-CBC ciphertext of the resource JSON.
    pub data: String,
    /// Base64 HMAC-SHA256 of the decoded `data`, keyed with the unwrapped data key.
    pub data_signature: String,
    /// Base64 RSA-OAEP (SHA-1) encryption of the 32-byte data key.
    pub data_key: String,
    pub encryption_certificate_id: String,
    /// Hex SHA-1 of the certificate DER.
    pub encryption_certificate_thumbprint: String,
}

impl std::fmt::Debug for EncryptedContent {
    // Up to 4 MiB of ciphertext is no use in a log line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EncryptedContent")
            .field("data_len", &self.data.len())
            .field("encryption_certificate_id", &self.encryption_certificate_id)
            .field(
                "encryption_certificate_thumbprint",
                &self.encryption_certificate_thumbprint,
            )
            .finish_non_exhaustive()
    }
}

// --- validation tokens ------------------------------------------------------------------

/// Verifies a collection's `validationTokens` (catalogue row 71).
pub struct ValidationTokenChecker {
    /// Entra's signing keys (the common JWKS in production). The same fetcher and refetch
    /// rules as inbound bearer tokens.
    jwks: Arc<JwksKeys>,
    /// Our client id: the `aud` every token must carry.
    app_id: String,
    /// Tenants whose notifications we accept.
    tenants: Vec<String>,
}

impl ValidationTokenChecker {
    /// `jwks`: Entra's keys; `app_id`: our client id (the expected `aud`); `tenants`: tenant
    /// ids we accept (`iss` must be `https://sts.windows.net/{tenant}/` and `tid` that
    /// tenant).
    pub fn new(jwks: Arc<JwksKeys>, app_id: String, tenants: Vec<String>) -> Self {
        ValidationTokenChecker {
            jwks,
            app_id,
            tenants,
        }
    }

    /// Validates every token (there is one per app+tenant pair in the POST, and one bad
    /// token taints the POST). Each token is checked for: an RS256 signature by a JWKS key
    /// (`kid`), `exp` and `nbf` with [`TOKEN_LEEWAY_SECS`], `aud` == our app id,
    /// `iss`/`tid` one of our tenants, and `appid`/`azp` == [`CHANGE_TRACKING_APP_ID`].
    ///
    /// # Errors
    /// [`RichError::ValidationTokensMissing`] for an empty list; otherwise the first
    /// failing check's variant.
    pub async fn check(&self, tokens: &[String]) -> Result<(), RichError> {
        self.check_at(tokens, time::OffsetDateTime::now_utc().unix_timestamp())
            .await
    }

    /// [`ValidationTokenChecker::check`] as of `now` (Unix seconds) instead of the wall
    /// clock: for tests, and for re-checking a stored POST against the time it arrived.
    ///
    /// # Errors
    /// As [`ValidationTokenChecker::check`].
    pub async fn check_at(&self, tokens: &[String], now: i64) -> Result<(), RichError> {
        if tokens.is_empty() {
            return Err(RichError::ValidationTokensMissing);
        }
        if tokens.len() > MAX_TOKENS {
            return Err(RichError::TokenMalformed(format!(
                "more than {MAX_TOKENS} tokens in one collection"
            )));
        }
        for token in tokens {
            self.check_one(token, now).await?;
        }
        Ok(())
    }

    async fn check_one(&self, token: &str, now: i64) -> Result<(), RichError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(RichError::TokenMalformed("larger than the limit".into()));
        }
        let header = token_header(token)?;
        // RFC 7515 §4.1.11: a recipient must refuse extensions it does not understand, and
        // we understand none. `jku`/`x5u`/`x5c` are ignored: keys come only from the JWKS.
        if header.contains_key("crit") {
            return Err(RichError::TokenMalformed(
                "critical header extension".into(),
            ));
        }
        // Entra signs with RS256 only. The allow-list is ours: the header's `alg` never
        // chooses the verification algorithm.
        if header.get("alg").and_then(Value::as_str) != Some("RS256") {
            return Err(RichError::TokenMalformed("alg is not RS256".into()));
        }
        let kid = header
            .get("kid")
            .and_then(Value::as_str)
            .filter(|kid| kid.len() <= MAX_KID_LEN)
            .ok_or_else(|| RichError::TokenMalformed("no usable kid".into()))?;
        let (key, _) = self
            .jwks
            .key_for(Some(kid), "RS256")
            .await
            .map_err(|e| match e {
                AuthError::UnknownKey => RichError::TokenKeyUnknown,
                other => RichError::TokenMalformed(other.to_string()),
            })?;

        // jsonwebtoken verifies the signature only; every claim is checked below so each
        // failure gets its own variant and `now` can be pinned.
        let mut validation = Validation::new(Algorithm::RS256);
        validation.algorithms = vec![Algorithm::RS256];
        validation.required_spec_claims.clear();
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        let claims = jsonwebtoken::decode::<Map<String, Value>>(token, &key, &validation)
            .map_err(|e| match e.kind() {
                ErrorKind::InvalidSignature => RichError::TokenSignature,
                _ => RichError::TokenMalformed(e.to_string()),
            })?
            .claims;
        check_claims(&claims, &self.app_id, &self.tenants, now)
    }
}

/// The claim checks of one signature-verified validation token.
fn check_claims(
    claims: &Map<String, Value>,
    app_id: &str,
    tenants: &[String],
    now: i64,
) -> Result<(), RichError> {
    let text = |name: &str| claims.get(name).and_then(Value::as_str);

    let exp = claims
        .get("exp")
        .and_then(Value::as_i64)
        .ok_or_else(|| RichError::TokenMalformed("no numeric exp".into()))?;
    // Saturating: `exp` and `nbf` are attacker-chosen numbers until proven otherwise.
    if exp.saturating_add(TOKEN_LEEWAY_SECS) <= now {
        return Err(RichError::TokenExpired);
    }
    if let Some(nbf) = claims.get("nbf") {
        let nbf = nbf
            .as_i64()
            .ok_or_else(|| RichError::TokenMalformed("nbf is not a number".into()))?;
        if nbf.saturating_sub(TOKEN_LEEWAY_SECS) > now {
            return Err(RichError::TokenNotYetValid);
        }
    }

    // Entra writes GUIDs in lower case, but GUIDs compare case-insensitively.
    if !text("aud").is_some_and(|aud| aud.eq_ignore_ascii_case(app_id)) {
        return Err(RichError::TokenAudience);
    }

    let tenant = text("tid")
        .and_then(|tid| tenants.iter().find(|t| t.eq_ignore_ascii_case(tid)))
        .ok_or(RichError::TokenTenant)?;
    let expected_iss = format!("https://sts.windows.net/{tenant}/");
    if !text("iss").is_some_and(|iss| iss.eq_ignore_ascii_case(&expected_iss)) {
        return Err(RichError::TokenTenant);
    }

    // v1 tokens name the client in `appid`, v2 in `azp`; Graph's carry both. Every one
    // present must be Change Tracking, and at least one must be present.
    let publishers: Vec<&str> = ["appid", "azp"].into_iter().filter_map(text).collect();
    if publishers.is_empty()
        || publishers
            .iter()
            .any(|p| !p.eq_ignore_ascii_case(CHANGE_TRACKING_APP_ID))
    {
        return Err(RichError::TokenPublisher);
    }
    Ok(())
}

/// The decoded JOSE header of a compact JWT, before any signature check (to pick the key).
fn token_header(token: &str) -> Result<Map<String, Value>, RichError> {
    let malformed = || RichError::TokenMalformed("not a compact JWS".into());
    let mut parts = token.split('.');
    let (Some(header), Some(_), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(malformed());
    };
    let bytes = URL_SAFE_NO_PAD.decode(header).map_err(|_| malformed())?;
    serde_json::from_slice(&bytes).map_err(|_| malformed())
}

// --- the receiver's entry point ---------------------------------------------------------

/// What the receiver gets out of one rich POST.
///
/// - `Err(_)`: the whole collection is refused. `encryptedContent` came without
///   `validationTokens`, or a token is invalid. Nothing was decrypted.
/// - `Ok(items)`: one entry per input item, in order. `Ok(None)` means the item carried no
///   `encryptedContent` (e.g. `deleted`). `Ok(Some(resource))` is the decrypted resource.
///   `Err(_)` means that item alone is refused (tampered, unknown certificate, ...). One
///   bad item does not drop its neighbours: the tokens already vouch for the POST, and an
///   item that fails is in any case re-read from Graph.
///
/// Tokens are checked whenever present, even when no item is encrypted. Refusals are
/// logged as warnings with their code.
///
/// Decryption is CPU work (one RSA private-key operation per item). Call this from
/// `spawn_blocking` or a worker, not on the path that must answer Graph within 3 s.
#[tracing::instrument(skip_all, fields(items = items.len()))]
pub async fn open_collection(
    checker: &ValidationTokenChecker,
    keys: &RichKeyRing,
    validation_tokens: Option<&[String]>,
    items: &[Option<&EncryptedContent>],
) -> Result<Vec<Result<Option<Value>, RichError>>, RichError> {
    let encrypted = items.iter().any(Option::is_some);
    let checked = match validation_tokens {
        Some(tokens) if !tokens.is_empty() => checker.check(tokens).await,
        _ if encrypted => Err(RichError::ValidationTokensMissing),
        _ => Ok(()),
    };
    if let Err(e) = checked {
        tracing::warn!(
            alert = "rich_notification_refused",
            code = e.code(),
            error = %e,
            "rich notification collection refused"
        );
        return Err(e);
    }
    Ok(items
        .iter()
        .enumerate()
        .map(|(index, item)| {
            let Some(content) = item else {
                return Ok(None);
            };
            keys.decrypt(content).map(Some).inspect_err(|e| {
                // The ring has already raised its own alert for an unknown certificate.
                if !matches!(e, RichError::UnknownCertificate { .. }) {
                    tracing::warn!(
                        alert = "rich_notification_item_refused",
                        index,
                        code = e.code(),
                        error = %e,
                        "rich notification item refused"
                    );
                }
            })
        })
        .collect())
}

// --- encodings ----------------------------------------------------------------------------

/// Standard base64 of at most `max` decoded bytes; `None` when longer or not base64.
fn decode_bounded(text: &str, max: usize) -> Option<Vec<u8>> {
    if text.len() > base64_len(max) {
        return None;
    }
    STANDARD
        .decode(text)
        .ok()
        .filter(|bytes| bytes.len() <= max)
}

/// Padded base64 length of `bytes` bytes.
fn base64_len(bytes: usize) -> usize {
    bytes.div_ceil(3) * 4
}

/// AES-256-CBC with PKCS#7 padding, IV = the key's first 16 bytes (Graph's scheme).
fn aes_256_cbc_decrypt(
    key: &[u8; DATA_KEY_BYTES],
    mut data: Vec<u8>,
) -> Result<Vec<u8>, RichError> {
    let mut iv = [0u8; 16];
    iv.copy_from_slice(&key[..16]);
    let cipher = UnboundCipherKey::new(&AES_256, key).map_err(|_| RichError::Decrypt)?;
    let cipher = PaddedBlockDecryptingKey::cbc_pkcs7(cipher).map_err(|_| RichError::Decrypt)?;
    let len = cipher
        .decrypt(&mut data, DecryptionContext::Iv128(FixedLength::from(iv)))
        .map_err(|_| RichError::Decrypt)?
        .len();
    data.truncate(len);
    Ok(data)
}

/// An unencrypted PEM RSA private key: PKCS#8, or PKCS#1 as older tooling writes it.
fn private_key(pem: &str) -> Result<PrivateDecryptingKey, RichError> {
    if pem.contains("-----BEGIN ENCRYPTED PRIVATE KEY-----")
        || pem.contains("Proc-Type: 4,ENCRYPTED")
    {
        return Err(RichError::PrivateKey(
            "it is encrypted; store it unencrypted in a file only the gateway can read",
        ));
    }
    if let Some(der) = pem_block(pem, "PRIVATE KEY") {
        return PrivateDecryptingKey::from_pkcs8(&der)
            .map_err(|_| RichError::PrivateKey("not an RSA key of 2048 to 8192 bits"));
    }
    if let Some(der) = pem_block(pem, "RSA PRIVATE KEY") {
        // aws-lc-rs reads PKCS#1 only as a signing key pair; re-encoding it as PKCS#8 is
        // the cheap way to a decrypting key.
        let pkcs8 = KeyPair::from_der(&der)
            .map_err(|_| RichError::PrivateKey("not an RSA key of 2048 to 8192 bits"))?
            .as_der()
            .map_err(|_| RichError::PrivateKey("cannot be re-encoded as PKCS#8"))?;
        return PrivateDecryptingKey::from_pkcs8(pkcs8.as_ref())
            .map_err(|_| RichError::PrivateKey("not an RSA key of 2048 to 8192 bits"));
    }
    Err(RichError::PrivateKey(
        "no PEM PRIVATE KEY or RSA PRIVATE KEY block",
    ))
}

/// The bytes of the first PEM block labelled `label` (`None` if absent or not base64).
fn pem_block(text: &str, label: &str) -> Option<Vec<u8>> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let start = text.find(&begin)? + begin.len();
    let stop = start + text[start..].find(&end)?;
    let body: String = text[start..stop]
        .chars()
        .filter(|c| !c.is_ascii_whitespace())
        .collect();
    STANDARD.decode(body).ok()
}

// A minimal DER walk, written out rather than taken from x509-cert/der: only one field is
// needed (the SubjectPublicKeyInfo, which aws-lc-rs then parses and validates itself), and
// neither crate is in the build yet. The emulator has its own walk; production code does
// not borrow from it.

/// One DER element: (tag, contents, what follows). Only single-byte tags and definite
/// lengths of up to four bytes; certificates use nothing else.
fn der_element(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    if tag & 0x1f == 0x1f {
        return None;
    }
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let (digits, rest) = rest.split_at(n);
        let len = digits
            .iter()
            .fold(0usize, |len, digit| (len << 8) | usize::from(*digit));
        (len, rest)
    };
    if rest.len() < len {
        return None;
    }
    let (contents, after) = rest.split_at(len);
    Some((tag, contents, after))
}

const DER_SEQUENCE: u8 = 0x30;

/// Certificate → tbsCertificate → the whole `subjectPublicKeyInfo` element (tag and
/// length included, as aws-lc-rs loads it).
fn subject_public_key_info(der: &[u8]) -> Option<&[u8]> {
    let (tag, certificate, _) = der_element(der)?;
    if tag != DER_SEQUENCE {
        return None;
    }
    let (tag, tbs, _) = der_element(certificate)?;
    if tag != DER_SEQUENCE {
        return None;
    }
    // tbsCertificate: [0] version (optional), serialNumber, signature, issuer, validity,
    // subject, subjectPublicKeyInfo, ...
    let mut rest = tbs;
    if let (0xA0, _, after) = der_element(rest)? {
        rest = after;
    }
    for _ in 0..5 {
        rest = der_element(rest)?.2;
    }
    let (tag, _, after) = der_element(rest)?;
    if tag != DER_SEQUENCE {
        return None;
    }
    Some(&rest[..rest.len() - after.len()])
}

fn hex_upper(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

/// An identifier from a notification, cut to a loggable length on a char boundary.
fn clip(text: &str) -> String {
    text.chars().take(MAX_CERTIFICATE_ID_LEN).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    use aws_lc_rs::cipher::{EncryptionContext, PaddedBlockEncryptingKey};
    use aws_lc_rs::rand::{SecureRandom, SystemRandom};
    use aws_lc_rs::rsa::{KeySize, OaepPublicEncryptingKey};
    use serde_json::json;

    const CERT_PEM: &str = include_str!("../../tests/fixtures/certs/cert.pem");
    const KEY_PEM: &str = include_str!("../../tests/fixtures/certs/key.pem");
    /// `openssl x509 -noout -fingerprint -sha1` of the fixture (its README).
    const FIXTURE_THUMBPRINT: &str = "DB40A49A382F6A5441152FD8B53EF6AAA0789A8E";
    const CERT_ID: &str = "test-cert-1";

    fn fixture_keys(id: &str) -> RichKeys {
        RichKeys::load(CERT_PEM, KEY_PEM, id).expect("the fixture loads")
    }

    fn ring() -> RichKeyRing {
        RichKeyRing::new(fixture_keys(CERT_ID), Vec::new())
    }

    fn pem(label: &str, der: &[u8]) -> String {
        let body = STANDARD.encode(der);
        let lines: Vec<&str> = body
            .as_bytes()
            .chunks(64)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect();
        format!(
            "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
            lines.join("\n")
        )
    }

    /// Encrypts as Graph does (graph-protocol.md §10.7), with `key` as the data key.
    fn encrypt_with_key(key: &[u8], plaintext: &[u8], id: &str) -> EncryptedContent {
        let der = pem_block(CERT_PEM, "CERTIFICATE").unwrap();
        let public = PublicEncryptingKey::from_der(subject_public_key_info(&der).unwrap()).unwrap();
        let oaep = OaepPublicEncryptingKey::new(public).unwrap();
        let mut wrapped = vec![0u8; oaep.ciphertext_size()];
        let wrapped = oaep
            .encrypt(&OAEP_SHA1_MGF1SHA1, key, &mut wrapped, None)
            .unwrap()
            .to_vec();
        let aes_key: [u8; 32] = key[..32].try_into().unwrap();
        let mut iv = [0u8; 16];
        iv.copy_from_slice(&aes_key[..16]);
        let aes =
            PaddedBlockEncryptingKey::cbc_pkcs7(UnboundCipherKey::new(&AES_256, &aes_key).unwrap())
                .unwrap();
        let mut data = plaintext.to_vec();
        aes.less_safe_encrypt(&mut data, EncryptionContext::Iv128(FixedLength::from(iv)))
            .unwrap();
        let signature = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), &data);
        EncryptedContent {
            data: STANDARD.encode(&data),
            data_signature: STANDARD.encode(signature.as_ref()),
            data_key: STANDARD.encode(wrapped),
            encryption_certificate_id: id.to_owned(),
            encryption_certificate_thumbprint: FIXTURE_THUMBPRINT.to_owned(),
        }
    }

    /// Encrypts as Graph does, with a fresh random 32-byte data key.
    fn encrypt_like_graph(plaintext: &[u8], id: &str) -> EncryptedContent {
        let mut key = [0u8; 32];
        SystemRandom::new().fill(&mut key).unwrap();
        encrypt_with_key(&key, plaintext, id)
    }

    fn flip_bit(base64: &str, byte: usize, bit: u8) -> String {
        let mut bytes = STANDARD.decode(base64).unwrap();
        bytes[byte] ^= 1 << bit;
        STANDARD.encode(bytes)
    }

    #[test]
    fn a_payload_encrypted_the_way_graph_does_decrypts_to_its_json() {
        // Arrange
        let message = json!({"id": "AAMk1", "subject": "Quarterly numbers", "body": {"content": "<p>hi</p>"}});
        let content = encrypt_like_graph(message.to_string().as_bytes(), CERT_ID);
        // Act
        let opened = ring().decrypt(&content);
        // Assert
        assert_eq!(opened.unwrap(), message);
    }

    #[test]
    fn the_thumbprint_is_the_upper_case_sha1_of_the_certificate_der() {
        let keys = fixture_keys(CERT_ID);
        assert_eq!(keys.thumbprint(), FIXTURE_THUMBPRINT);
        assert_eq!(keys.certificate_id(), CERT_ID);
        let pem_body: String = CERT_PEM
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .collect();
        assert_eq!(keys.certificate_base64(), pem_body);
    }

    #[test]
    fn a_lower_case_thumbprint_from_the_notification_still_finds_the_key() {
        let mut content = encrypt_like_graph(b"{}", CERT_ID);
        content.encryption_certificate_thumbprint = FIXTURE_THUMBPRINT.to_ascii_lowercase();
        assert_eq!(ring().decrypt(&content).unwrap(), json!({}));
    }

    #[test]
    fn a_flipped_bit_in_data_fails_the_signature_check() {
        let mut content = encrypt_like_graph(br#"{"subject":"pay invoice 1234"}"#, CERT_ID);
        content.data = flip_bit(&content.data, 3, 0);
        assert!(matches!(
            ring().decrypt(&content),
            Err(RichError::BadSignature)
        ));
    }

    #[test]
    fn a_flip_that_would_break_the_padding_is_reported_as_a_bad_signature_so_aes_never_ran() {
        // Arrange: 32 bytes of plaintext, so the last block is pure padding (16 × 0x10).
        // Flipping the lowest bit of the second-to-last ciphertext block's last byte turns
        // the final padding byte into 0x11: a certain padding error, had AES run.
        let mut key = [0u8; 32];
        SystemRandom::new().fill(&mut key).unwrap();
        let plaintext = br#"{"subject":"abcdefghijklmnopqr"}"#;
        assert_eq!(plaintext.len() % 16, 0);
        let mut content = encrypt_with_key(&key, plaintext, CERT_ID);
        let blocks = STANDARD.decode(&content.data).unwrap().len() / 16;
        content.data = flip_bit(&content.data, (blocks - 1) * 16 - 1, 0);
        let tampered = STANDARD.decode(&content.data).unwrap();
        assert!(
            matches!(aes_256_cbc_decrypt(&key, tampered), Err(RichError::Decrypt)),
            "the test must use a flip that AES would notice"
        );
        // Act
        let opened = ring().decrypt(&content);
        // Assert: the HMAC refused it first.
        assert!(matches!(opened, Err(RichError::BadSignature)), "{opened:?}");
    }

    #[test]
    fn a_flipped_bit_in_the_signature_fails_the_signature_check() {
        let mut content = encrypt_like_graph(b"{}", CERT_ID);
        content.data_signature = flip_bit(&content.data_signature, 31, 7);
        assert!(matches!(
            ring().decrypt(&content),
            Err(RichError::BadSignature)
        ));
    }

    #[test]
    fn an_unknown_certificate_id_is_refused() {
        let content = encrypt_like_graph(b"{}", "some-other-cert");
        assert!(matches!(
            ring().decrypt(&content),
            Err(RichError::UnknownCertificate { id, .. }) if id == "some-other-cert"
        ));
    }

    #[test]
    fn an_unknown_thumbprint_is_refused_even_with_a_known_id() {
        let mut content = encrypt_like_graph(b"{}", CERT_ID);
        content.encryption_certificate_thumbprint = "00".repeat(20);
        assert!(matches!(
            ring().decrypt(&content),
            Err(RichError::UnknownCertificate { .. })
        ));
    }

    #[test]
    fn a_previous_certificate_still_opens_notifications_of_subscriptions_not_yet_renewed() {
        // The fixture under two ids stands in for two certificates: lookup is by both.
        let ring = RichKeyRing::new(fixture_keys("cert-2025"), vec![fixture_keys("cert-2024")]);
        assert_eq!(ring.active().certificate_id(), "cert-2025");
        assert_eq!(ring.previous().len(), 1);
        let content = encrypt_like_graph(br#"{"id":"old"}"#, "cert-2024");
        assert_eq!(ring.decrypt(&content).unwrap(), json!({"id": "old"}));
    }

    #[test]
    fn a_data_key_that_is_not_32_bytes_is_refused() {
        let content = encrypt_with_key(&[7u8; 48], b"{}", CERT_ID);
        assert!(matches!(
            ring().decrypt(&content),
            Err(RichError::KeyUnwrap)
        ));
    }

    #[test]
    fn a_data_key_wrapped_for_another_key_is_refused() {
        let mut content = encrypt_like_graph(b"{}", CERT_ID);
        content.data_key = flip_bit(&content.data_key, 100, 3);
        assert!(matches!(
            ring().decrypt(&content),
            Err(RichError::KeyUnwrap)
        ));
    }

    #[test]
    fn data_over_the_size_limit_is_refused_before_any_rsa_work() {
        // A garbage dataKey would fail RSA; the size check must come first.
        let content = EncryptedContent {
            data: "A".repeat(base64_len(MAX_DATA_BYTES) + 4),
            data_signature: STANDARD.encode([0u8; 32]),
            data_key: STANDARD.encode([0u8; 256]),
            encryption_certificate_id: CERT_ID.into(),
            encryption_certificate_thumbprint: FIXTURE_THUMBPRINT.into(),
        };
        assert!(matches!(ring().decrypt(&content), Err(RichError::TooLarge)));
    }

    #[test]
    fn fields_that_are_not_base64_are_refused_as_malformed() {
        let good = encrypt_like_graph(b"{}", CERT_ID);
        for field in 0..3 {
            let mut content = good.clone();
            match field {
                0 => content.data = "not base64!".into(),
                1 => content.data_signature = "not base64!".into(),
                _ => content.data_key = "not base64!".into(),
            }
            assert!(
                matches!(ring().decrypt(&content), Err(RichError::Malformed(_))),
                "field {field}"
            );
        }
    }

    #[test]
    fn a_plaintext_that_is_not_a_json_object_is_refused() {
        for plaintext in [&b"[1,2,3]"[..], b"not json", b""] {
            let content = encrypt_like_graph(plaintext, CERT_ID);
            assert!(matches!(ring().decrypt(&content), Err(RichError::NotJson)));
        }
    }

    #[test]
    fn a_private_key_that_does_not_belong_to_the_certificate_is_refused_at_load() {
        let other = PrivateDecryptingKey::generate(KeySize::Rsa2048).unwrap();
        let other_pem = pem("PRIVATE KEY", other.as_der().unwrap().as_ref());
        assert!(matches!(
            RichKeys::load(CERT_PEM, &other_pem, CERT_ID),
            Err(RichError::KeyMismatch)
        ));
    }

    #[test]
    fn a_pkcs1_private_key_loads_as_well() {
        // PKCS#8 PrivateKeyInfo ::= SEQUENCE { version, algorithm, privateKey OCTET STRING },
        // and the octet string holds the PKCS#1 RSAPrivateKey.
        let pkcs8 = pem_block(KEY_PEM, "PRIVATE KEY").unwrap();
        let (_, info, _) = der_element(&pkcs8).unwrap();
        let (_, _, rest) = der_element(info).unwrap();
        let (_, _, rest) = der_element(rest).unwrap();
        let (tag, pkcs1, _) = der_element(rest).unwrap();
        assert_eq!(tag, 0x04);
        let keys = RichKeys::load(CERT_PEM, &pem("RSA PRIVATE KEY", pkcs1), "pkcs1").unwrap();
        let ring = RichKeyRing::new(keys, Vec::new());
        let content = encrypt_like_graph(br#"{"ok":true}"#, "pkcs1");
        assert_eq!(ring.decrypt(&content).unwrap(), json!({"ok": true}));
    }

    #[test]
    fn unusable_keys_and_certificates_are_refused_at_load_with_the_reason() {
        let encrypted =
            "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIB\n-----END ENCRYPTED PRIVATE KEY-----\n";
        assert!(matches!(
            RichKeys::load(CERT_PEM, encrypted, CERT_ID),
            Err(RichError::PrivateKey(_))
        ));
        assert!(matches!(
            RichKeys::load(CERT_PEM, "", CERT_ID),
            Err(RichError::PrivateKey(_))
        ));
        assert!(matches!(
            RichKeys::load(KEY_PEM, KEY_PEM, CERT_ID),
            Err(RichError::Certificate(_))
        ));
        assert!(matches!(
            RichKeys::load(
                &pem("CERTIFICATE", b"\x30\x03\x02\x01\x01"),
                KEY_PEM,
                CERT_ID
            ),
            Err(RichError::Certificate(_))
        ));
        assert!(matches!(
            RichKeys::load(CERT_PEM, KEY_PEM, ""),
            Err(RichError::CertificateId(_))
        ));
        assert!(matches!(
            RichKeys::load(CERT_PEM, KEY_PEM, &"x".repeat(129)),
            Err(RichError::CertificateId(_))
        ));
    }

    #[test]
    fn every_truncation_of_the_certificate_is_refused_without_panicking() {
        let der = pem_block(CERT_PEM, "CERTIFICATE").unwrap();
        assert!(subject_public_key_info(&der).is_some());
        // The outer SEQUENCE's length covers the whole certificate, so every cut must
        // fail, and fail cleanly.
        for len in 0..der.len() {
            let cut = &der[..len];
            if let Some(spki) = subject_public_key_info(cut) {
                panic!(
                    "a {len}-byte prefix yielded an SPKI of {} bytes",
                    spki.len()
                );
            }
        }
        assert!(der_element(&[0x30, 0x85, 1, 2, 3, 4, 5]).is_none());
        assert!(der_element(&[0x30, 0x80]).is_none());
        assert!(der_element(&[0x1f, 0x01, 0x00]).is_none());
    }

    #[test]
    fn from_files_names_the_file_it_cannot_read() {
        let missing = Path::new("/nonexistent/rich-cert.pem");
        let err = RichKeys::from_files(missing, missing, CERT_ID).unwrap_err();
        assert!(matches!(err, RichError::Read { .. }));
        assert!(err.to_string().contains("/nonexistent/rich-cert.pem"));
    }

    // --- claims ------------------------------------------------------------------------

    const APP: &str = "8a4f2c6e-1d3b-4f5a-9e7c-2b6d8f0a4c1e";
    const TENANT: &str = "3c7e1f5a-9b2d-4e8f-a1c6-5d4b3a2f1e0d";
    const NOW: i64 = 1_750_000_000;

    /// Claims shaped like graph-protocol.md §10.7's sample.
    fn graph_claims() -> Map<String, Value> {
        let iss = format!("https://sts.windows.net/{TENANT}/");
        json!({
            "aud": APP, "iss": iss, "iat": NOW - 60, "nbf": NOW - 60, "exp": NOW + 3540,
            "appid": CHANGE_TRACKING_APP_ID, "appidacr": "2", "azp": CHANGE_TRACKING_APP_ID,
            "idp": iss, "tid": TENANT, "uti": "x", "ver": "1.0",
        })
        .as_object()
        .unwrap()
        .clone()
    }

    fn check(claims: &Map<String, Value>, now: i64) -> Result<(), RichError> {
        check_claims(claims, APP, &[TENANT.to_owned()], now)
    }

    fn with(name: &str, value: Value) -> Map<String, Value> {
        let mut claims = graph_claims();
        claims.insert(name.into(), value);
        claims
    }

    #[test]
    fn claims_shaped_like_graphs_pass() {
        check(&graph_claims(), NOW).unwrap();
        // Upper-case GUIDs are the same GUIDs.
        check_claims(
            &graph_claims(),
            &APP.to_uppercase(),
            &[TENANT.to_uppercase()],
            NOW,
        )
        .unwrap();
    }

    #[test]
    fn exp_is_honoured_with_the_leeway_and_no_more() {
        let exp = NOW + 3540;
        check(&graph_claims(), exp + TOKEN_LEEWAY_SECS - 1).unwrap();
        assert!(matches!(
            check(&graph_claims(), exp + TOKEN_LEEWAY_SECS),
            Err(RichError::TokenExpired)
        ));
        let mut no_exp = graph_claims();
        no_exp.remove("exp");
        assert!(matches!(
            check(&no_exp, NOW),
            Err(RichError::TokenMalformed(_))
        ));
    }

    #[test]
    fn a_token_not_yet_valid_is_refused() {
        let claims = with("nbf", json!(NOW + TOKEN_LEEWAY_SECS + 1));
        assert!(matches!(
            check(&claims, NOW),
            Err(RichError::TokenNotYetValid)
        ));
    }

    #[test]
    fn extreme_exp_and_nbf_values_do_not_overflow() {
        check(&with("exp", json!(i64::MAX)), NOW).unwrap();
        assert!(matches!(
            check(&with("exp", json!(i64::MIN)), NOW),
            Err(RichError::TokenExpired)
        ));
        check(&with("nbf", json!(i64::MIN)), NOW).unwrap();
        assert!(matches!(
            check(&with("nbf", json!(i64::MAX)), NOW),
            Err(RichError::TokenNotYetValid)
        ));
    }

    #[test]
    fn a_token_whose_azp_is_not_change_tracking_is_refused_even_if_appid_is() {
        let claims = with("azp", json!(APP));
        assert!(matches!(
            check(&claims, NOW),
            Err(RichError::TokenPublisher)
        ));
        let mut neither = graph_claims();
        neither.remove("appid");
        neither.remove("azp");
        assert!(matches!(
            check(&neither, NOW),
            Err(RichError::TokenPublisher)
        ));
        // A v2 token names its client in azp only.
        let mut v2 = graph_claims();
        v2.remove("appid");
        check(&v2, NOW).unwrap();
    }

    #[test]
    fn a_token_whose_iss_and_tid_disagree_is_refused() {
        let other = "11111111-2222-3333-4444-555555555555";
        let claims = with("iss", json!(format!("https://sts.windows.net/{other}/")));
        assert!(matches!(check(&claims, NOW), Err(RichError::TokenTenant)));
        // A v2 issuer is not what Graph's change tracking signs with.
        let claims = with(
            "iss",
            json!(format!("https://login.microsoftonline.com/{TENANT}/v2.0")),
        );
        assert!(matches!(check(&claims, NOW), Err(RichError::TokenTenant)));
    }

    #[test]
    fn an_audience_array_is_not_our_app_id() {
        let claims = with("aud", json!([APP]));
        assert!(matches!(check(&claims, NOW), Err(RichError::TokenAudience)));
    }

    #[test]
    fn a_token_header_that_is_not_a_compact_jws_is_malformed() {
        for token in ["", "a.b", "a.b.c.d", "!!!.e30.sig"] {
            assert!(
                matches!(token_header(token), Err(RichError::TokenMalformed(_))),
                "{token}"
            );
        }
    }
}
