//! Signed, short-lived gateway download links (`DriveItem.downloadUrl`).
//!
//! Graph's own `@microsoft.graph.downloadUrl` is pre-authenticated: whoever holds it can
//! read the file, so it must never reach a caller. A gateway link instead carries that
//! URL sealed with AES-256-GCM (aws-lc-rs, as the store's secret columns) together with
//! its expiry and the file's name and type. Opening a link needs no token and no Graph
//! call but the download itself; a link that was altered, sealed by another key or has
//! expired opens to nothing. Sealing (not only signing) keeps Graph's URL out of browser
//! histories, proxies and logs that see the gateway link.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::aead::{AES_256_GCM, Aad, NONCE_LEN, Nonce, RandomizedNonceKey};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

use super::ServiceError;

/// Binds ciphertexts to this use: a blob sealed for another purpose never opens here.
const AAD: &[u8] = b"m365gw.download-link.v1";
/// Longest link accepted before any decoding.
const MAX_LINK: usize = 8192;

/// What a link grants: one download of one file, until `exp`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct DownloadTicket {
    /// Graph's pre-authenticated download URL.
    pub url: String,
    /// Expiry, seconds since the Unix epoch.
    pub exp: u64,
    pub name: String,
    pub mime_type: Option<String>,
}

pub struct LinkSealer {
    key: RandomizedNonceKey,
    ttl: Duration,
}

impl LinkSealer {
    /// `key`: 32 bytes shared by every replica, or `None` for a random key of this process.
    pub fn new(key: Option<[u8; 32]>, ttl: Duration) -> anyhow::Result<Self> {
        let key = match key {
            Some(key) => key,
            None => {
                let mut key = [0u8; 32];
                aws_lc_rs::rand::fill(&mut key)
                    .map_err(|_| anyhow::anyhow!("the system random generator failed"))?;
                key
            }
        };
        let key = RandomizedNonceKey::new(&AES_256_GCM, &key)
            .map_err(|_| anyhow::anyhow!("cannot build an AES-256-GCM key"))?;
        Ok(Self { key, ttl })
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// A link token for `url`, valid for the configured lifetime from now.
    pub fn seal(
        &self,
        url: String,
        name: String,
        mime_type: Option<String>,
    ) -> Result<String, ServiceError> {
        let ticket = DownloadTicket {
            url,
            exp: now() + self.ttl.as_secs(),
            name,
            mime_type,
        };
        let mut in_out = serde_json::to_vec(&ticket).map_err(|_| ServiceError::Internal)?;
        let nonce = self
            .key
            .seal_in_place_append_tag(Aad::from(AAD), &mut in_out)
            .map_err(|_| ServiceError::Internal)?;
        let mut blob = Vec::with_capacity(NONCE_LEN + in_out.len());
        blob.extend_from_slice(nonce.as_ref());
        blob.extend_from_slice(&in_out);
        Ok(URL_SAFE_NO_PAD.encode(blob))
    }

    /// The ticket of a valid, unexpired link. Every failure is the same `NotFound`, so a
    /// prober learns nothing about why.
    pub fn open(&self, token: &str) -> Result<DownloadTicket, ServiceError> {
        let gone = || ServiceError::NotFound("the download link is invalid or has expired".into());
        if token.len() > MAX_LINK {
            return Err(gone());
        }
        let blob = URL_SAFE_NO_PAD.decode(token).map_err(|_| gone())?;
        if blob.len() < NONCE_LEN + 16 {
            return Err(gone());
        }
        let (nonce, sealed) = blob.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| gone())?;
        let mut in_out = sealed.to_vec();
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(AAD), &mut in_out)
            .map_err(|_| gone())?;
        let ticket: DownloadTicket = serde_json::from_slice(plain).map_err(|_| gone())?;
        if ticket.exp <= now() {
            return Err(gone());
        }
        Ok(ticket)
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sealer(ttl: u64) -> LinkSealer {
        LinkSealer::new(Some([7u8; 32]), Duration::from_secs(ttl)).unwrap()
    }

    #[test]
    fn a_sealed_link_opens_to_its_ticket_and_hides_the_graph_url() {
        let s = sealer(300);
        let url = "https://contoso.sharepoint.com/_layouts/15/download.aspx?tempauth=SECRET";
        let token = s
            .seal(url.into(), "q1.pdf".into(), Some("application/pdf".into()))
            .unwrap();
        assert!(!token.contains("SECRET") && !token.contains("sharepoint"));
        let ticket = s.open(&token).unwrap();
        assert_eq!(ticket.url, url);
        assert_eq!(ticket.name, "q1.pdf");
    }

    #[test]
    fn tampered_foreign_and_expired_links_do_not_open() {
        let s = sealer(300);
        let token = s.seal("https://x/y".into(), "a".into(), None).unwrap();
        let mut bytes = URL_SAFE_NO_PAD.decode(&token).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        assert!(s.open(&URL_SAFE_NO_PAD.encode(bytes)).is_err());
        let other = LinkSealer::new(Some([8u8; 32]), Duration::from_secs(300)).unwrap();
        assert!(other.open(&token).is_err());
        assert!(s.open("not base64 !").is_err());
        assert!(s.open(&"A".repeat(MAX_LINK + 1)).is_err());
        let expired = sealer(0)
            .seal("https://x/y".into(), "a".into(), None)
            .unwrap();
        assert!(s.open(&expired).is_err());
    }
}
