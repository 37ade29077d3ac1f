-- m365-gateway store, SQLite, migration 0001: the OAuth connect flow and connected accounts.
-- Keep migrations/postgres/0001_init.sql in step (same tables, same behaviour).
-- Never edit a migration once released: sqlx checks checksums; add 0002_… instead.
--
-- STRICT tables: SQLite enforces the declared types. Times are TEXT in UTC, fixed width
-- ('2026-11-27T10:00:00.123456Z', written by src/store/timestamp.rs) so they compare as text.
-- Secret columns (*_enc) hold AES-256-GCM output, nonce (12 bytes) || ciphertext || tag
-- (16 bytes), sealed with the key named in key_id and bound to the row's identity; see
-- src/store/cipher.rs.

-- One row per authorization request in flight (authorization code + PKCE); single use.
CREATE TABLE pending_connects (
    state             TEXT NOT NULL PRIMARY KEY,
    caller            TEXT NOT NULL,
    key_id            TEXT NOT NULL,
    code_verifier_enc BLOB NOT NULL,
    redirect_uri      TEXT NOT NULL,
    return_to         TEXT,
    login_hint        TEXT,
    created_at        TEXT NOT NULL,
    expires_at        TEXT NOT NULL
) STRICT;
CREATE INDEX pending_connects_expires_at ON pending_connects (expires_at);

-- A user who connected their mailbox for a caller (back-office app), by Entra object id.
-- Revoking keeps the row (for listing and audit) and erases the refresh token.
CREATE TABLE connected_accounts (
    caller              TEXT NOT NULL,
    user_id             TEXT NOT NULL,
    user_principal_name TEXT NOT NULL,
    tenant_id           TEXT NOT NULL,
    scopes              TEXT NOT NULL,   -- space-separated, as in OAuth
    key_id              TEXT,
    refresh_token_enc   BLOB,
    created_at          TEXT NOT NULL,
    updated_at          TEXT NOT NULL,
    revoked_at          TEXT,
    PRIMARY KEY (caller, user_id),
    CONSTRAINT connected_accounts_token_iff_active CHECK ((revoked_at IS NULL) = (refresh_token_enc IS NOT NULL)),
    CONSTRAINT connected_accounts_key_with_token CHECK ((key_id IS NULL) = (refresh_token_enc IS NULL))
) STRICT;
