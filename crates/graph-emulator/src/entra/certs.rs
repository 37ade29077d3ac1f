//! Client certificates: PEM → DER → thumbprints and the RSA public key, with a minimal DER
//! walk (a certificate's layout up to `subjectPublicKeyInfo` is fixed by RFC 5280, so no
//! general ASN.1 library is needed).

use aws_lc_rs::digest;
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::DecodingKey;

/// `1.2.840.113549.1.1.1` rsaEncryption, DER-encoded.
const RSA_ENCRYPTION_OID: &[u8] = &[0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01, 0x01];

/// A registered certificate credential.
pub(crate) struct ClientCertificate {
    /// base64url SHA-1 of the DER (`x5t`).
    pub x5t: String,
    /// base64url SHA-256 of the DER (`x5t#S256`).
    pub x5t_s256: String,
    /// Upper-case hex SHA-1, as Entra prints thumbprints in its messages.
    pub sha1_hex: String,
    pub key: DecodingKey,
}

impl ClientCertificate {
    pub(crate) fn from_pem(pem: &str) -> Result<ClientCertificate, String> {
        let der = pem_to_der(pem)?;
        let rsa_public_key = rsa_public_key(&der)?;
        let sha1 = digest::digest(&digest::SHA1_FOR_LEGACY_USE_ONLY, &der);
        let sha256 = digest::digest(&digest::SHA256, &der);
        Ok(ClientCertificate {
            x5t: URL_SAFE_NO_PAD.encode(sha1.as_ref()),
            x5t_s256: URL_SAFE_NO_PAD.encode(sha256.as_ref()),
            sha1_hex: hex_upper(sha1.as_ref()),
            key: DecodingKey::from_rsa_der(rsa_public_key),
        })
    }
}

pub(crate) fn hex_upper(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

/// The DER inside `-----BEGIN CERTIFICATE-----` … `-----END CERTIFICATE-----`.
fn pem_to_der(pem: &str) -> Result<Vec<u8>, String> {
    const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
    const END: &str = "-----END CERTIFICATE-----";
    let start = pem.find(BEGIN).ok_or("no BEGIN CERTIFICATE line")? + BEGIN.len();
    let end = pem[start..].find(END).ok_or("no END CERTIFICATE line")? + start;
    let b64: String = pem[start..end]
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    STANDARD
        .decode(b64)
        .map_err(|e| format!("bad base64 in the certificate: {e}"))
}

/// One DER element: tag, contents, and what follows it.
fn element(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7F);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        (len, &rest[n..])
    };
    if rest.len() < len {
        return None;
    }
    Some((tag, &rest[..len], &rest[len..]))
}

const SEQUENCE: u8 = 0x30;

/// Certificate → tbsCertificate → the whole `subjectPublicKeyInfo` element (tag and length
/// included), as RSA encryption keys are loaded from it.
pub(crate) fn subject_public_key_info(der: &[u8]) -> Result<&[u8], String> {
    let malformed = || "malformed certificate DER".to_string();
    let (tag, certificate, _) = element(der).ok_or_else(malformed)?;
    if tag != SEQUENCE {
        return Err(malformed());
    }
    let (tag, tbs, _) = element(certificate).ok_or_else(malformed)?;
    if tag != SEQUENCE {
        return Err(malformed());
    }
    // [0] version (optional), serialNumber, signature, issuer, validity, subject, spki.
    let mut rest = tbs;
    let (tag, _, after) = element(rest).ok_or_else(malformed)?;
    if tag == 0xA0 {
        rest = after;
    }
    for _ in 0..5 {
        let (_, _, after) = element(rest).ok_or_else(malformed)?;
        rest = after;
    }
    let (tag, _, after) = element(rest).ok_or_else(malformed)?;
    if tag != SEQUENCE {
        return Err(malformed());
    }
    Ok(&rest[..rest.len() - after.len()])
}

/// Certificate → tbsCertificate → subjectPublicKeyInfo → the PKCS#1 `RSAPublicKey` DER.
fn rsa_public_key(der: &[u8]) -> Result<&[u8], String> {
    let malformed = || "malformed certificate DER".to_string();
    let (_, spki, _) = element(subject_public_key_info(der)?).ok_or_else(malformed)?;
    let (tag, algorithm, after) = element(spki).ok_or_else(malformed)?;
    if tag != SEQUENCE {
        return Err(malformed());
    }
    let (tag, oid, _) = element(algorithm).ok_or_else(malformed)?;
    if tag != 0x06 || oid != RSA_ENCRYPTION_OID {
        return Err("the certificate's key is not an RSA key".to_string());
    }
    let (tag, bits, _) = element(after).ok_or_else(malformed)?;
    match bits.split_first() {
        Some((0, key)) if tag == 0x03 => {
            // Sanity: RSAPublicKey ::= SEQUENCE { modulus INTEGER, publicExponent INTEGER }.
            let (tag, body, _) = element(key).ok_or_else(malformed)?;
            let (t1, _, rest) = element(body).ok_or_else(malformed)?;
            let (t2, _, _) = element(rest).ok_or_else(malformed)?;
            if tag == SEQUENCE && t1 == 0x02 && t2 == 0x02 {
                Ok(key)
            } else {
                Err(malformed())
            }
        }
        _ => Err(malformed()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CERT: &str = include_str!("../../tests/fixtures/certs/cert.pem");

    #[test]
    fn the_fixture_certificate_gives_openssl_s_thumbprints() {
        let cert = ClientCertificate::from_pem(CERT).expect("parse");
        // `openssl x509 -noout -fingerprint -sha1` (see tests/fixtures/certs/README.md).
        assert_eq!(cert.sha1_hex, "DB40A49A382F6A5441152FD8B53EF6AAA0789A8E");
        assert_eq!(
            hex_upper(&URL_SAFE_NO_PAD.decode(&cert.x5t_s256).expect("b64")),
            "690CE2C7905AB30FF375A836892B39CE150458DEAEF0F5A74F82AE0BDB9D399C"
        );
        assert_eq!(cert.x5t.len(), 27);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(ClientCertificate::from_pem("nope").is_err());
        assert!(
            ClientCertificate::from_pem(
                "-----BEGIN CERTIFICATE-----\nMAMCAQA=\n-----END CERTIFICATE-----"
            )
            .is_err()
        );
        for n in 0..64 {
            let der: Vec<u8> = (0..n).map(|i| (i * 37 % 251) as u8).collect();
            let _ = rsa_public_key(&der);
        }
    }
}
