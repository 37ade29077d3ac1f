//! `StoreError`: the store's one error type at its boundary.
//!
//! Messages are for logs and operators: they name tables, key ids and row identities
//! (caller, user id, never a token), and never carry secrets or connection passwords.

use sqlx::migrate::MigrateError;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database cannot be reached or did not answer: connection, pool, I/O, timeouts,
    /// server-side errors. Transient from the caller's point of view: maps to 503.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// A row exists but cannot be read: its key is not configured, decryption failed
    /// (wrong key, tampering, ciphertext copied to another row) or a column did not parse.
    #[error("store data unreadable: {0}")]
    Corrupt(String),
    /// The store is misconfigured (URL, keys, dev key file) or the database's schema does not
    /// match this binary's migrations.
    #[error("store configuration: {0}")]
    Config(String),
}

impl From<sqlx::Error> for StoreError {
    fn from(error: sqlx::Error) -> Self {
        use sqlx::Error as E;
        match error {
            E::Configuration(e) => StoreError::Config(e.to_string()),
            E::Migrate(e) => StoreError::from(*e),
            // Rows that do not decode are unreadable data, not an outage.
            E::RowNotFound
            | E::TypeNotFound { .. }
            | E::ColumnIndexOutOfBounds { .. }
            | E::ColumnNotFound(_)
            | E::ColumnDecode { .. }
            | E::Decode(_)
            | E::Encode(_) => StoreError::Corrupt(error.to_string()),
            // Io, Tls, Protocol, PoolTimedOut, PoolClosed, WorkerCrashed, Database (server-side
            // errors such as a full disk, a busy SQLite file, a dropped schema), and whatever a
            // later sqlx adds: the store cannot serve the request right now.
            other => StoreError::Unavailable(other.to_string()),
        }
    }
}

impl From<MigrateError> for StoreError {
    fn from(error: MigrateError) -> Self {
        match error {
            MigrateError::Execute(e) => StoreError::from(e),
            MigrateError::ExecuteMigration(e, version) => match StoreError::from(e) {
                StoreError::Unavailable(m) => {
                    StoreError::Unavailable(format!("while applying migration {version}: {m}"))
                }
                other => StoreError::Config(format!("migration {version} failed: {other}")),
            },
            // VersionMissing (the database was migrated by a newer binary), VersionMismatch (an
            // applied migration file was edited), Dirty, …: an operator must look.
            other => StoreError::Config(format!("database migrations: {other}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_and_io_errors_are_unavailable_and_decode_errors_are_corrupt() {
        assert!(matches!(
            StoreError::from(sqlx::Error::PoolTimedOut),
            StoreError::Unavailable(_)
        ));
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        assert!(matches!(
            StoreError::from(sqlx::Error::Io(io)),
            StoreError::Unavailable(_)
        ));
        assert!(matches!(
            StoreError::from(sqlx::Error::ColumnNotFound("x".into())),
            StoreError::Corrupt(_)
        ));
        assert!(matches!(
            StoreError::from(MigrateError::VersionMissing(7)),
            StoreError::Config(_)
        ));
    }
}
