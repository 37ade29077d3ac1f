//! Connected accounts: users who connected their mailbox once (OAuth authorization code +
//! PKCE) so a caller (back-office app) can later act as them with their refresh token.
//!
//! - `pending_connects`: the `state` of each authorization request in flight, its PKCE
//!   verifier (encrypted), single use, with an expiry.
//! - `connected_accounts`: keyed by (caller, user id = the user's Entra object id); the refresh
//!   token is encrypted, bound to that key; revoking erases it and keeps the row.

use std::fmt;

use serde::Serialize;
use time::OffsetDateTime;

use super::cipher::Aad;
use super::timestamp::Ts;
use super::{RowExt, Store, StoreError};

/// The state of one authorization request (connect flow), kept until the callback.
#[derive(Clone, PartialEq, Eq)]
pub struct PendingConnect {
    /// The OAuth `state` parameter: random, unguessable, the row's key.
    pub state: String,
    pub caller: String,
    /// PKCE code verifier; stored encrypted.
    pub code_verifier: String,
    pub redirect_uri: String,
    pub return_to: Option<String>,
    pub login_hint: Option<String>,
    pub expires_at: OffsetDateTime,
}

/// An account to save after a successful code exchange.
#[derive(Clone, PartialEq, Eq)]
pub struct NewConnectedAccount {
    pub caller: String,
    /// The user's Entra object id (`oid`).
    pub user_id: String,
    pub user_principal_name: String,
    pub tenant_id: String,
    /// Granted scopes. Stored space-separated, as on the wire: scope tokens contain no spaces.
    pub scopes: Vec<String>,
    /// Stored encrypted.
    pub refresh_token: String,
}

/// A connected account, refresh token decrypted. Keep it in memory only; `Debug` hides the token.
#[derive(Clone, PartialEq, Eq)]
pub struct ConnectedAccount {
    pub caller: String,
    pub user_id: String,
    pub user_principal_name: String,
    pub tenant_id: String,
    pub scopes: Vec<String>,
    pub refresh_token: String,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

/// What a listing shows: no secrets. Serializes times as RFC 3339.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ConnectedAccountInfo {
    pub caller: String,
    pub user_id: String,
    pub user_principal_name: String,
    pub scopes: Vec<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    pub revoked: bool,
}

const HIDDEN: &str = "***";

impl fmt::Debug for PendingConnect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PendingConnect")
            .field("state", &self.state)
            .field("caller", &self.caller)
            .field("code_verifier", &HIDDEN)
            .field("redirect_uri", &self.redirect_uri)
            .field("return_to", &self.return_to)
            .field("login_hint", &self.login_hint)
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

impl fmt::Debug for NewConnectedAccount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewConnectedAccount")
            .field("caller", &self.caller)
            .field("user_id", &self.user_id)
            .field("user_principal_name", &self.user_principal_name)
            .field("tenant_id", &self.tenant_id)
            .field("scopes", &self.scopes)
            .field("refresh_token", &HIDDEN)
            .finish()
    }
}

impl fmt::Debug for ConnectedAccount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectedAccount")
            .field("caller", &self.caller)
            .field("user_id", &self.user_id)
            .field("user_principal_name", &self.user_principal_name)
            .field("tenant_id", &self.tenant_id)
            .field("scopes", &self.scopes)
            .field("refresh_token", &HIDDEN)
            .field("created_at", &self.created_at)
            .field("updated_at", &self.updated_at)
            .finish()
    }
}

/// Names a row in error messages.
struct Connected<'a>(&'a str, &'a str);
impl fmt::Display for Connected<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "connected account (caller '{}', user '{}')",
            self.0, self.1
        )
    }
}
struct Pending;
impl fmt::Display for Pending {
    // The state is a bearer value of the flow in progress: not shown.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("pending connect")
    }
}

fn join_scopes(scopes: &[String]) -> String {
    scopes
        .iter()
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

fn split_scopes(scopes: &str) -> Vec<String> {
    scopes.split_whitespace().map(str::to_owned).collect()
}

// ---- SQL: one text per statement, `$n` placeholders for both backends ----

const PURGE_PENDING: &str = "DELETE FROM pending_connects WHERE expires_at <= $1";

const INSERT_PENDING: &str = "INSERT INTO pending_connects \
    (state, caller, key_id, code_verifier_enc, redirect_uri, return_to, login_hint, created_at, expires_at) \
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)";

const TAKE_PENDING: &str = "DELETE FROM pending_connects WHERE state = $1 \
    RETURNING state, caller, key_id, code_verifier_enc, redirect_uri, return_to, login_hint, expires_at";

const UPSERT_CONNECTED: &str = "INSERT INTO connected_accounts \
    (caller, user_id, user_principal_name, tenant_id, scopes, key_id, refresh_token_enc, created_at, updated_at, revoked_at) \
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8, NULL) \
    ON CONFLICT (caller, user_id) DO UPDATE SET \
        user_principal_name = excluded.user_principal_name, \
        tenant_id = excluded.tenant_id, \
        scopes = excluded.scopes, \
        key_id = excluded.key_id, \
        refresh_token_enc = excluded.refresh_token_enc, \
        updated_at = excluded.updated_at, \
        revoked_at = NULL";

const SELECT_CONNECTED: &str = "SELECT caller, user_id, user_principal_name, tenant_id, scopes, key_id, \
    refresh_token_enc, created_at, updated_at \
    FROM connected_accounts WHERE caller = $1 AND user_id = $2 AND revoked_at IS NULL";

const UPDATE_REFRESH_TOKEN: &str = "UPDATE connected_accounts \
    SET key_id = $3, refresh_token_enc = $4, updated_at = $5 \
    WHERE caller = $1 AND user_id = $2 AND revoked_at IS NULL";

const REVOKE_CONNECTED: &str = "UPDATE connected_accounts \
    SET revoked_at = $3, updated_at = $3, key_id = NULL, refresh_token_enc = NULL \
    WHERE caller = $1 AND user_id = $2 AND revoked_at IS NULL";

const LIST_CONNECTED: &str = "SELECT caller, user_id, user_principal_name, scopes, created_at, updated_at, revoked_at \
    FROM connected_accounts WHERE caller = $1 ORDER BY user_principal_name, user_id";

// Re-encryption reads pages of rows not under the active key, in key order, and swaps each
// secret only if the row still holds the ciphertext that was read (no lost update).
const REENCRYPT_PAGE: i64 = 200;

const STALE_PENDING_FIRST: &str = "SELECT state, key_id, code_verifier_enc FROM pending_connects \
    WHERE key_id <> $1 ORDER BY state LIMIT $2";
const STALE_PENDING_AFTER: &str = "SELECT state, key_id, code_verifier_enc FROM pending_connects \
    WHERE key_id <> $1 AND state > $3 ORDER BY state LIMIT $2";
const SWAP_PENDING: &str = "UPDATE pending_connects SET key_id = $2, code_verifier_enc = $3 \
    WHERE state = $1 AND key_id = $4 AND code_verifier_enc = $5";

const STALE_CONNECTED_FIRST: &str = "SELECT caller, user_id, key_id, refresh_token_enc FROM connected_accounts \
    WHERE refresh_token_enc IS NOT NULL AND key_id <> $1 ORDER BY caller, user_id LIMIT $2";
const STALE_CONNECTED_AFTER: &str = "SELECT caller, user_id, key_id, refresh_token_enc FROM connected_accounts \
    WHERE refresh_token_enc IS NOT NULL AND key_id <> $1 AND (caller, user_id) > ($3, $4) \
    ORDER BY caller, user_id LIMIT $2";
const SWAP_CONNECTED: &str = "UPDATE connected_accounts SET key_id = $3, refresh_token_enc = $4 \
    WHERE caller = $1 AND user_id = $2 AND key_id = $5 AND refresh_token_enc = $6";

/// Tally of a re-encryption run.
#[derive(Default)]
pub(crate) struct Reencrypted {
    pub(crate) rewritten: u64,
    /// Rows that could not be opened (messages name the row and key id, no secrets).
    pub(crate) unreadable: Vec<String>,
}

struct PendingRow {
    state: String,
    caller: String,
    key_id: String,
    code_verifier_enc: Vec<u8>,
    redirect_uri: String,
    return_to: Option<String>,
    login_hint: Option<String>,
    expires_at: OffsetDateTime,
}

impl PendingRow {
    fn read(r: &impl RowExt) -> Result<Self, StoreError> {
        Ok(PendingRow {
            state: r.text("state")?,
            caller: r.text("caller")?,
            key_id: r.text("key_id")?,
            code_verifier_enc: r.bytes("code_verifier_enc")?,
            redirect_uri: r.text("redirect_uri")?,
            return_to: r.opt_text("return_to")?,
            login_hint: r.opt_text("login_hint")?,
            expires_at: r.ts("expires_at")?,
        })
    }
}

struct ConnectedRow {
    caller: String,
    user_id: String,
    user_principal_name: String,
    tenant_id: String,
    scopes: String,
    key_id: Option<String>,
    refresh_token_enc: Option<Vec<u8>>,
    created_at: OffsetDateTime,
    updated_at: OffsetDateTime,
}

impl ConnectedRow {
    fn read(r: &impl RowExt) -> Result<Self, StoreError> {
        Ok(ConnectedRow {
            caller: r.text("caller")?,
            user_id: r.text("user_id")?,
            user_principal_name: r.text("user_principal_name")?,
            tenant_id: r.text("tenant_id")?,
            scopes: r.text("scopes")?,
            key_id: r.opt_text("key_id")?,
            refresh_token_enc: r.opt_bytes("refresh_token_enc")?,
            created_at: r.ts("created_at")?,
            updated_at: r.ts("updated_at")?,
        })
    }
}

fn read_info(r: &impl RowExt) -> Result<ConnectedAccountInfo, StoreError> {
    Ok(ConnectedAccountInfo {
        caller: r.text("caller")?,
        user_id: r.text("user_id")?,
        user_principal_name: r.text("user_principal_name")?,
        scopes: split_scopes(&r.text("scopes")?),
        created_at: r.ts("created_at")?,
        updated_at: r.ts("updated_at")?,
        revoked: r.opt_ts("revoked_at")?.is_some(),
    })
}

/// A secret not under the active key: (row key parts, key id, ciphertext).
struct Stale {
    id: (String, String),
    key_id: String,
    blob: Vec<u8>,
}

impl Store {
    // ---- OAuth state for the connect flow: single use, expires ----

    /// Stores the state of a new authorization request (and drops expired ones).
    pub async fn put_pending_connect(&self, p: &PendingConnect) -> Result<(), StoreError> {
        let (key_id, blob) = self
            .keys
            .seal(&Aad::pending(&p.state), p.code_verifier.as_bytes())?;
        let now = Ts::now();
        with_pool!(&self.db, pool => {
            sqlx::query(PURGE_PENDING).bind(now).execute(pool).await?;
            sqlx::query(INSERT_PENDING)
                .bind(&p.state)
                .bind(&p.caller)
                .bind(&key_id)
                .bind(&blob)
                .bind(&p.redirect_uri)
                .bind(&p.return_to)
                .bind(&p.login_hint)
                .bind(now)
                .bind(Ts::new(p.expires_at))
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    /// Atomically removes and returns it; None when unknown, used, or expired.
    pub async fn take_pending_connect(
        &self,
        state: &str,
    ) -> Result<Option<PendingConnect>, StoreError> {
        let row = with_pool!(&self.db, pool => {
            match sqlx::query(TAKE_PENDING).bind(state).fetch_optional(pool).await? {
                Some(r) => Some(PendingRow::read(&r)?),
                None => None,
            }
        });
        let Some(row) = row else { return Ok(None) };
        if row.expires_at <= OffsetDateTime::now_utc() {
            return Ok(None);
        }
        let code_verifier = self.keys.open_string(
            &row.key_id,
            &row.code_verifier_enc,
            &Aad::pending(&row.state),
            &Pending,
        )?;
        Ok(Some(PendingConnect {
            state: row.state,
            caller: row.caller,
            code_verifier,
            redirect_uri: row.redirect_uri,
            return_to: row.return_to,
            login_hint: row.login_hint,
            expires_at: row.expires_at,
        }))
    }

    /// Deletes expired pending connects; returns how many. `put_pending_connect` already does
    /// this, so a periodic call only matters when connects are rare.
    pub async fn purge_expired_pending_connects(&self) -> Result<u64, StoreError> {
        let now = Ts::now();
        let done = with_pool!(&self.db, pool => {
            sqlx::query(PURGE_PENDING).bind(now).execute(pool).await?.rows_affected()
        });
        Ok(done)
    }

    // ---- Connected accounts, keyed by (caller, user_id) ----

    /// Inserts or replaces the account (a reconnect after a revoke brings it back);
    /// `created_at` stays that of the first connect.
    pub async fn save_connected_account(&self, a: &NewConnectedAccount) -> Result<(), StoreError> {
        let (key_id, blob) = self.keys.seal(
            &Aad::connected(&a.caller, &a.user_id),
            a.refresh_token.as_bytes(),
        )?;
        let scopes = join_scopes(&a.scopes);
        let now = Ts::now();
        with_pool!(&self.db, pool => {
            sqlx::query(UPSERT_CONNECTED)
                .bind(&a.caller)
                .bind(&a.user_id)
                .bind(&a.user_principal_name)
                .bind(&a.tenant_id)
                .bind(&scopes)
                .bind(&key_id)
                .bind(&blob)
                .bind(now)
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    /// The account with its refresh token decrypted; None when absent or revoked.
    pub async fn connected_account(
        &self,
        caller: &str,
        user_id: &str,
    ) -> Result<Option<ConnectedAccount>, StoreError> {
        let row = with_pool!(&self.db, pool => {
            match sqlx::query(SELECT_CONNECTED).bind(caller).bind(user_id).fetch_optional(pool).await? {
                Some(r) => Some(ConnectedRow::read(&r)?),
                None => None,
            }
        });
        let Some(row) = row else { return Ok(None) };
        let what = Connected(&row.caller, &row.user_id);
        let (Some(key_id), Some(blob)) = (&row.key_id, &row.refresh_token_enc) else {
            return Err(StoreError::Corrupt(format!(
                "{what}: active but without a refresh token"
            )));
        };
        let refresh_token = self.keys.open_string(
            key_id,
            blob,
            &Aad::connected(&row.caller, &row.user_id),
            &what,
        )?;
        Ok(Some(ConnectedAccount {
            scopes: split_scopes(&row.scopes),
            refresh_token,
            caller: row.caller,
            user_id: row.user_id,
            user_principal_name: row.user_principal_name,
            tenant_id: row.tenant_id,
            created_at: row.created_at,
            updated_at: row.updated_at,
        }))
    }

    /// Stores the refresh token Entra returned with a refresh (it rotates them). Updates only
    /// an account that still exists and is not revoked: a revoke that raced the refresh wins,
    /// and the new token is dropped (nothing is created).
    pub async fn update_refresh_token(
        &self,
        caller: &str,
        user_id: &str,
        refresh_token: &str,
    ) -> Result<(), StoreError> {
        let (key_id, blob) = self
            .keys
            .seal(&Aad::connected(caller, user_id), refresh_token.as_bytes())?;
        let now = Ts::now();
        let updated = with_pool!(&self.db, pool => {
            sqlx::query(UPDATE_REFRESH_TOKEN)
                .bind(caller)
                .bind(user_id)
                .bind(&key_id)
                .bind(&blob)
                .bind(now)
                .execute(pool)
                .await?
                .rows_affected()
        });
        if updated == 0 {
            tracing::debug!(
                caller,
                user_id,
                "refresh token not stored: the account is absent or revoked"
            );
        }
        Ok(())
    }

    /// Revokes the account: it disappears from `connected_account`, its refresh token is erased,
    /// and `list_connected_accounts` shows it as revoked. False when absent or already revoked.
    pub async fn revoke_connected_account(
        &self,
        caller: &str,
        user_id: &str,
    ) -> Result<bool, StoreError> {
        let now = Ts::now();
        let revoked = with_pool!(&self.db, pool => {
            sqlx::query(REVOKE_CONNECTED)
                .bind(caller)
                .bind(user_id)
                .bind(now)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(revoked > 0)
    }

    /// The caller's accounts, revoked ones included, by user principal name. No secrets.
    pub async fn list_connected_accounts(
        &self,
        caller: &str,
    ) -> Result<Vec<ConnectedAccountInfo>, StoreError> {
        let list = with_pool!(&self.db, pool => {
            let rows = sqlx::query(LIST_CONNECTED).bind(caller).fetch_all(pool).await?;
            rows.iter().map(read_info).collect::<Result<Vec<_>, _>>()?
        });
        Ok(list)
    }

    // ---- Key rotation (called by `Store::reencrypt_all`) ----

    pub(crate) async fn reencrypt_pending_connects(
        &self,
        report: &mut Reencrypted,
    ) -> Result<(), StoreError> {
        let active = self.keys.active_key_id().to_owned();
        let mut after: Option<String> = None;
        loop {
            let page: Vec<Stale> = with_pool!(&self.db, pool => {
                let query = match &after {
                    None => sqlx::query(STALE_PENDING_FIRST).bind(&active).bind(REENCRYPT_PAGE),
                    Some(state) => sqlx::query(STALE_PENDING_AFTER).bind(&active).bind(REENCRYPT_PAGE).bind(state),
                };
                let rows = query.fetch_all(pool).await?;
                rows.iter()
                    .map(|r| {
                        Ok(Stale {
                            id: (r.text("state")?, String::new()),
                            key_id: r.text("key_id")?,
                            blob: r.bytes("code_verifier_enc")?,
                        })
                    })
                    .collect::<Result<Vec<_>, StoreError>>()?
            });
            for row in &page {
                let state = &row.id.0;
                let aad = Aad::pending(state);
                let plain = match self.keys.open(&row.key_id, &row.blob, &aad, &Pending) {
                    Ok(plain) => plain,
                    Err(e) => {
                        report.unreadable.push(e.to_string());
                        continue;
                    }
                };
                let (key_id, blob) = self.keys.seal(&aad, &plain)?;
                report.rewritten += with_pool!(&self.db, pool => {
                    sqlx::query(SWAP_PENDING)
                        .bind(state)
                        .bind(&key_id)
                        .bind(&blob)
                        .bind(&row.key_id)
                        .bind(&row.blob)
                        .execute(pool)
                        .await?
                        .rows_affected()
                });
            }
            match page.last() {
                Some(last) if page.len() as i64 == REENCRYPT_PAGE => {
                    after = Some(last.id.0.clone())
                }
                _ => return Ok(()),
            }
        }
    }

    pub(crate) async fn reencrypt_connected_accounts(
        &self,
        report: &mut Reencrypted,
    ) -> Result<(), StoreError> {
        let active = self.keys.active_key_id().to_owned();
        let mut after: Option<(String, String)> = None;
        loop {
            let page: Vec<Stale> = with_pool!(&self.db, pool => {
                let query = match &after {
                    None => sqlx::query(STALE_CONNECTED_FIRST).bind(&active).bind(REENCRYPT_PAGE),
                    Some((caller, user_id)) => sqlx::query(STALE_CONNECTED_AFTER)
                        .bind(&active)
                        .bind(REENCRYPT_PAGE)
                        .bind(caller)
                        .bind(user_id),
                };
                let rows = query.fetch_all(pool).await?;
                rows.iter()
                    .map(|r| {
                        Ok(Stale {
                            id: (r.text("caller")?, r.text("user_id")?),
                            key_id: r.text("key_id")?,
                            blob: r.bytes("refresh_token_enc")?,
                        })
                    })
                    .collect::<Result<Vec<_>, StoreError>>()?
            });
            for row in &page {
                let (caller, user_id) = (&row.id.0, &row.id.1);
                let aad = Aad::connected(caller, user_id);
                let plain =
                    match self
                        .keys
                        .open(&row.key_id, &row.blob, &aad, &Connected(caller, user_id))
                    {
                        Ok(plain) => plain,
                        Err(e) => {
                            report.unreadable.push(e.to_string());
                            continue;
                        }
                    };
                let (key_id, blob) = self.keys.seal(&aad, &plain)?;
                report.rewritten += with_pool!(&self.db, pool => {
                    sqlx::query(SWAP_CONNECTED)
                        .bind(caller)
                        .bind(user_id)
                        .bind(&key_id)
                        .bind(&blob)
                        .bind(&row.key_id)
                        .bind(&row.blob)
                        .execute(pool)
                        .await?
                        .rows_affected()
                });
            }
            match page.last() {
                Some(last) if page.len() as i64 == REENCRYPT_PAGE => after = Some(last.id.clone()),
                _ => return Ok(()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_are_stored_space_separated() {
        let scopes = vec![
            "offline_access".to_owned(),
            " Mail.Send ".to_owned(),
            String::new(),
            "User.Read".to_owned(),
        ];
        assert_eq!(join_scopes(&scopes), "offline_access Mail.Send User.Read");
        assert_eq!(
            split_scopes("offline_access  Mail.Send User.Read"),
            vec!["offline_access", "Mail.Send", "User.Read"]
        );
        assert!(split_scopes("").is_empty());
    }

    #[test]
    fn debug_never_prints_secrets() {
        let now = OffsetDateTime::now_utc();
        let pending = PendingConnect {
            state: "st".into(),
            caller: "crm".into(),
            code_verifier: "verifier-secret-123".into(),
            redirect_uri: "https://gw/cb".into(),
            return_to: None,
            login_hint: None,
            expires_at: now,
        };
        let new = NewConnectedAccount {
            caller: "crm".into(),
            user_id: "u".into(),
            user_principal_name: "a@b".into(),
            tenant_id: "t".into(),
            scopes: vec![],
            refresh_token: "refresh-secret-456".into(),
        };
        let account = ConnectedAccount {
            caller: "crm".into(),
            user_id: "u".into(),
            user_principal_name: "a@b".into(),
            tenant_id: "t".into(),
            scopes: vec![],
            refresh_token: "refresh-secret-789".into(),
            created_at: now,
            updated_at: now,
        };
        let text = format!("{pending:?} {new:?} {account:?}");
        assert!(!text.contains("secret"), "{text}");
        assert!(text.contains("crm"));
    }

    #[test]
    fn listings_serialize_times_as_rfc3339() {
        let info = ConnectedAccountInfo {
            caller: "crm".into(),
            user_id: "u".into(),
            user_principal_name: "a@b".into(),
            scopes: vec!["Mail.Send".into()],
            created_at: time::macros::datetime!(2026-11-27 10:00:00 UTC),
            updated_at: time::macros::datetime!(2026-11-27 10:00:00 UTC),
            revoked: false,
        };
        assert!(
            serde_json::to_string(&info)
                .unwrap()
                .contains(r#""created_at":"2026-11-27T10:00:00Z""#)
        );
    }
}
