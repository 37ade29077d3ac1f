//! Authorization codes and refresh tokens: opaque strings the emulator remembers.

use std::collections::HashMap;
use std::sync::Mutex;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::EntraError;
use crate::clock;

/// "Authorization codes live about 10 minutes."
pub(crate) const CODE_LIFETIME: i64 = 600;
/// Refresh tokens expire after 90 days without use.
pub(crate) const REFRESH_INACTIVITY: i64 = 90 * 86_400;
/// Redeemed codes are remembered this long (to answer AADSTS54005), then forgotten.
const CODE_MEMORY: i64 = 3_600;

/// What a code was issued for, at `/authorize`.
#[derive(Clone, Debug)]
pub(crate) struct AuthCode {
    pub client_id: String,
    pub redirect_uri: String,
    /// The `scope` as requested (resolved again at redemption).
    pub scope: String,
    /// `(method, challenge)`: `S256` or `plain`.
    pub challenge: Option<(String, String)>,
    /// The user's object id.
    pub user_id: String,
    pub nonce: Option<String>,
    /// Whether the sign-in included MFA.
    pub mfa: bool,
    pub issued_at: i64,
    pub redeemed: bool,
}

/// What a refresh token stands for.
#[derive(Clone, Debug)]
pub(crate) struct RefreshGrant {
    pub client_id: String,
    pub user_id: String,
    /// The `scope` it was issued with: the default for a refresh without `scope`.
    pub scope: String,
    pub mfa: bool,
    pub issued_at: i64,
    pub last_used: i64,
    pub revoked: bool,
}

#[derive(Default)]
struct Inner {
    codes: HashMap<String, AuthCode>,
    refresh: HashMap<String, RefreshGrant>,
    /// Per user object id: when their sessions were last revoked.
    revoked_at: HashMap<String, i64>,
}

#[derive(Default)]
pub(crate) struct Sessions {
    inner: Mutex<Inner>,
}

/// `1.A…`: long, URL-safe and opaque, like Entra's codes and refresh tokens.
fn opaque(bytes: usize) -> String {
    let mut buf = Vec::with_capacity(bytes + 16);
    while buf.len() < bytes {
        buf.extend_from_slice(uuid::Uuid::new_v4().as_bytes());
    }
    buf.truncate(bytes);
    format!("1.A{}", URL_SAFE_NO_PAD.encode(buf))
}

fn date(unix: i64) -> String {
    let s = clock::format_utc_seconds(unix);
    s.replace('T', " ")
}

impl Sessions {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn issue_code(&self, code: AuthCode) -> String {
        let id = opaque(96);
        let mut inner = self.lock();
        let now = code.issued_at;
        inner.codes.retain(|_, c| now - c.issued_at < CODE_MEMORY);
        inner.codes.insert(id.clone(), code);
        id
    }

    /// Redeems a code: unknown (AADSTS70000), already redeemed (AADSTS54005), expired
    /// (AADSTS70008), then `check` (client, redirect URI, PKCE); only a code that passes
    /// them all is marked redeemed, atomically.
    pub(crate) fn redeem_code(
        &self,
        code: &str,
        now: i64,
        check: impl FnOnce(&AuthCode) -> Result<(), EntraError>,
    ) -> Result<AuthCode, EntraError> {
        let mut inner = self.lock();
        let Some(grant) = inner.codes.get_mut(code) else {
            return Err(EntraError::invalid_grant(
                70000,
                "The provided value for the 'code' parameter is not valid.",
            ));
        };
        if grant.redeemed {
            return Err(EntraError::invalid_grant(
                54005,
                "OAuth2 Authorization code was already redeemed, please retry with a new valid code or use an existing refresh token.",
            ));
        }
        if now - grant.issued_at >= CODE_LIFETIME {
            return Err(EntraError::invalid_grant(
                70008,
                format!(
                    "The provided authorization code or refresh token has expired due to inactivity. Send a new interactive authorization request for this user and resource. The grant was issued on '{}'.",
                    date(grant.issued_at)
                ),
            ));
        }
        check(grant)?;
        grant.redeemed = true;
        Ok(grant.clone())
    }

    pub(crate) fn issue_refresh(&self, grant: RefreshGrant) -> String {
        let id = opaque(192);
        self.lock().refresh.insert(id.clone(), grant);
        id
    }

    /// Looks a refresh token up for use: unknown (AADSTS9002313), revoked (AADSTS50173),
    /// inactive for 90 days (AADSTS700082), then `check`. The token stays valid after use
    /// (Entra does not revoke refresh tokens when they are redeemed).
    pub(crate) fn use_refresh(
        &self,
        token: &str,
        now: i64,
        check: impl FnOnce(&RefreshGrant) -> Result<(), EntraError>,
    ) -> Result<RefreshGrant, EntraError> {
        let mut inner = self.lock();
        let revoked_at = |inner: &Inner, user: &str| inner.revoked_at.get(user).copied();
        let Some(grant) = inner.refresh.get(token).cloned() else {
            return Err(EntraError::invalid_grant(
                9002313,
                "Invalid request. Request is malformed or invalid.",
            ));
        };
        if grant.revoked {
            let valid_from = revoked_at(&inner, &grant.user_id.to_ascii_lowercase()).unwrap_or(now);
            return Err(EntraError::invalid_grant(
                50173,
                format!(
                    "The provided grant has expired due to it being revoked, a fresh auth token is needed. The user might have changed or reset their password. The grant was issued on '{}' and the TokensValidFrom date (before which tokens are not valid) for this user is '{}'.",
                    date(grant.issued_at),
                    date(valid_from)
                ),
            ));
        }
        if now - grant.last_used >= REFRESH_INACTIVITY {
            return Err(EntraError::invalid_grant(
                700082,
                format!(
                    "The refresh token has expired due to inactivity. The token was issued on {} and was inactive for 90.00:00:00.",
                    date(grant.issued_at)
                ),
            ));
        }
        check(&grant)?;
        if let Some(g) = inner.refresh.get_mut(token) {
            g.last_used = now;
        }
        Ok(grant)
    }

    /// Revokes every refresh token of a user (object id).
    pub(crate) fn revoke_user(&self, user_id: &str, now: i64) -> usize {
        let mut inner = self.lock();
        inner.revoked_at.insert(user_id.to_ascii_lowercase(), now);
        let mut n = 0;
        for grant in inner.refresh.values_mut() {
            if grant.user_id.eq_ignore_ascii_case(user_id) && !grant.revoked {
                grant.revoked = true;
                n += 1;
            }
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(issued_at: i64) -> AuthCode {
        AuthCode {
            client_id: "c".into(),
            redirect_uri: "http://127.0.0.1/cb".into(),
            scope: "openid".into(),
            challenge: None,
            user_id: "u".into(),
            nonce: None,
            mfa: false,
            issued_at,
            redeemed: false,
        }
    }

    #[test]
    fn codes_are_single_use_and_expire_after_ten_minutes() {
        let s = Sessions::default();
        let id = s.issue_code(code(1_000));
        assert!(s.redeem_code(&id, 1_001, |_| Ok(())).is_ok());
        assert_eq!(
            s.redeem_code(&id, 1_002, |_| Ok(())).err().map(|e| e.code),
            Some(54005)
        );
        let old = s.issue_code(code(1_000));
        assert_eq!(
            s.redeem_code(&old, 1_000 + CODE_LIFETIME, |_| Ok(()))
                .err()
                .map(|e| e.code),
            Some(70008)
        );
        assert_eq!(
            s.redeem_code("nope", 1_000, |_| Ok(()))
                .err()
                .map(|e| e.code),
            Some(70000)
        );
        // A failed check does not consume the code.
        let id = s.issue_code(code(1_000));
        let failed = s.redeem_code(&id, 1_001, |_| Err(EntraError::invalid_grant(501481, "x")));
        assert_eq!(failed.err().map(|e| e.code), Some(501481));
        assert!(s.redeem_code(&id, 1_001, |_| Ok(())).is_ok());
    }

    #[test]
    fn refresh_tokens_survive_use_and_die_on_revocation_or_inactivity() {
        let s = Sessions::default();
        let grant = RefreshGrant {
            client_id: "c".into(),
            user_id: "U".into(),
            scope: "openid".into(),
            mfa: false,
            issued_at: 10,
            last_used: 10,
            revoked: false,
        };
        let a = s.issue_refresh(grant.clone());
        let b = s.issue_refresh(grant);
        assert!(s.use_refresh(&a, 20, |_| Ok(())).is_ok());
        assert!(s.use_refresh(&a, 30, |_| Ok(())).is_ok());
        assert_eq!(
            s.use_refresh(&b, 30 + REFRESH_INACTIVITY, |_| Ok(()))
                .err()
                .map(|e| e.code),
            Some(700082)
        );
        assert_eq!(s.revoke_user("u", 40), 2);
        assert_eq!(
            s.use_refresh(&a, 41, |_| Ok(())).err().map(|e| e.code),
            Some(50173)
        );
        assert_eq!(
            s.use_refresh("garbage", 41, |_| Ok(()))
                .err()
                .map(|e| e.code),
            Some(9002313)
        );
    }
}
