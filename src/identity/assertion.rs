//! Certificate credentials: a short-lived JWT signed with the app's private key
//! (Entra ID "client assertion"), as documented in certificate-credentials.md.

use std::path::Path;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;
use sha2::{Digest, Sha256};

use super::IdentityError;

/// Lifetime of one assertion ("keep it short - 5-10 minutes after nbf at most").
const ASSERTION_LIFETIME: Duration = Duration::from_secs(5 * 60);

pub struct CertificateCredential {
    key: EncodingKey,
    algorithm: Algorithm,
    /// `x5t` (SHA-1) or `x5t#S256` thumbprint of the certificate's DER.
    thumbprint: Thumbprint,
}

enum Thumbprint {
    Sha1(String),
    Sha256(String),
}

impl CertificateCredential {
    /// Reads the PEM files. `algorithm` is `PS256` or `RS256`; `thumbprint` is `sha256` or `sha1`.
    pub fn load(
        private_key_file: &Path,
        certificate_file: &Path,
        algorithm: &str,
        thumbprint: &str,
    ) -> Result<Self, String> {
        let key_pem = std::fs::read(private_key_file)
            .map_err(|e| format!("cannot read {}: {e}", private_key_file.display()))?;
        let key = EncodingKey::from_rsa_pem(&key_pem).map_err(|e| {
            format!(
                "{} is not an RSA private key in PEM: {e}",
                private_key_file.display()
            )
        })?;
        let cert_pem = std::fs::read_to_string(certificate_file)
            .map_err(|e| format!("cannot read {}: {e}", certificate_file.display()))?;
        let der = certificate_der(&cert_pem)
            .ok_or_else(|| format!("{} holds no PEM certificate", certificate_file.display()))?;
        let algorithm = match algorithm {
            "PS256" => Algorithm::PS256,
            "RS256" => Algorithm::RS256,
            other => return Err(format!("unsupported assertion algorithm {other}")),
        };
        let thumbprint = match thumbprint {
            "sha1" => {
                let digest =
                    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY, &der);
                Thumbprint::Sha1(URL_SAFE_NO_PAD.encode(digest.as_ref()))
            }
            _ => Thumbprint::Sha256(URL_SAFE_NO_PAD.encode(Sha256::digest(&der))),
        };
        Ok(Self {
            key,
            algorithm,
            thumbprint,
        })
    }

    /// A fresh assertion for one token request.
    pub fn assertion(
        &self,
        client_id: &str,
        token_endpoint: &str,
    ) -> Result<String, IdentityError> {
        let mut header = Header::new(self.algorithm);
        header.typ = Some("JWT".to_owned());
        match &self.thumbprint {
            Thumbprint::Sha1(t) => header.x5t = Some(t.clone()),
            Thumbprint::Sha256(t) => header.x5t_s256 = Some(t.clone()),
        }
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let claims = json!({
            "aud": token_endpoint,
            "iss": client_id,
            "sub": client_id,
            "jti": uuid::Uuid::new_v4().to_string(),
            "nbf": now,
            "iat": now,
            "exp": now + ASSERTION_LIFETIME.as_secs() as i64,
        });
        jsonwebtoken::encode(&header, &claims, &self.key).map_err(|e| {
            IdentityError::BadResponse(format!("cannot sign the client assertion: {e}"))
        })
    }
}

/// The DER bytes of the first `CERTIFICATE` block of a PEM text.
fn certificate_der(pem: &str) -> Option<Vec<u8>> {
    let start = pem.find("-----BEGIN CERTIFICATE-----")? + "-----BEGIN CERTIFICATE-----".len();
    let end = start + pem[start..].find("-----END CERTIFICATE-----")?;
    let body: String = pem[start..end]
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    base64::engine::general_purpose::STANDARD.decode(body).ok()
}
