//! The gateway's persistent store: SQLite (embedded default, one file, WAL) or PostgreSQL
//! (scale-out), same tables and behaviour, through sqlx without its macros.
//!
//! Layout:
//! - `config.rs`    `[store]` settings and their validation
//! - `error.rs`     [`StoreError`]: `Unavailable` (→ 503), `Corrupt`, `Config`
//! - `cipher.rs`    AES-256-GCM for secret columns, key ring and rotation
//! - `keyfile.rs`   the generated development key
//! - `timestamp.rs` one UTC timestamp type for both backends
//! - `migrate.rs`   embedded migrations (`migrations/{sqlite,postgres}/`)
//! - `accounts.rs`  the OAuth connect flow (`pending_connects`) and `connected_accounts`
//!
//! - `notifications.rs` watches (Graph subscriptions), the notification outbox, change
//!   events, consumer webhooks and their deliveries
//! - `deliveries.rs` consumer webhooks (sealed signing secrets) and claiming, retrying,
//!   dead-lettering and replaying their deliveries
//!
//! Later areas follow the same pattern: a migration per backend, a file with an `impl Store` block, and, for tables with
//! secret columns, an `Aad` constructor and a step in [`Store::reencrypt_all`].
//!
//! SQL is written once: both drivers accept `$1`-style placeholders, and `ON CONFLICT … DO
//! UPDATE`, `DELETE … RETURNING` and row-value comparisons work on SQLite ≥ 3.35 (bundled:
//! 3.51) and PostgreSQL alike. [`with_pool!`] expands a block once per backend; where a query
//! must differ (`FOR UPDATE SKIP LOCKED`, advisory locks), match on `Db` instead.
//!
//! Tokens, verifiers and keys never reach logs or error messages.

use std::fmt;
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions, PgRow};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
};
use sqlx::{Connection, Row};
use time::OffsetDateTime;

/// Runs `$body` with `$pool` bound to the store's pool, whichever backend it is: the block is
/// compiled once per backend, so the same SQL and binds serve both.
macro_rules! with_pool {
    ($db:expr, $pool:ident => $body:expr) => {
        match $db {
            $crate::store::Db::Sqlite($pool) => $body,
            $crate::store::Db::Postgres($pool) => $body,
        }
    };
}

mod accounts;
mod cipher;
mod config;
mod deliveries;
mod error;
mod keyfile;
mod migrate;
mod notifications;
mod timestamp;

pub use accounts::{ConnectedAccount, ConnectedAccountInfo, NewConnectedAccount, PendingConnect};
pub(crate) use cipher::decode_key;
pub use config::{DEFAULT_MAX_CONNECTIONS, DEFAULT_URL, EncryptionConfig, StoreConfig};
pub use deliveries::{
    ClaimedDelivery, ConsumerWebhook, DeliveryInfo, DeliveryState, ReplayOutcome,
    WEBHOOK_SECRET_LEN, WEBHOOK_SECRET_PREFIX, WebhookSecret,
};
pub use error::StoreError;
pub use keyfile::DEV_KEY_ID;
pub use notifications::{
    ChangeEvent, NewChangeEvent, NewNotification, NewWatch, OutboxItem, Watch, WatchGraphState,
};

use cipher::KeyRing;
use config::{BackendKind, is_sqlite_memory};
use timestamp::Ts;

/// How long connecting, and waiting for a pooled connection, may take before `Unavailable`.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// SQLite: how long a statement waits for another writer's lock.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Clone)]
pub(crate) enum Db {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// The persistent store. Cheap to clone (the pool and keys are shared).
#[derive(Clone)]
pub struct Store {
    db: Db,
    keys: Arc<KeyRing>,
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("backend", &self.backend())
            .field("keys", &self.keys)
            .finish()
    }
}

impl Store {
    /// Connects, creates the SQLite file's directory if needed, and runs that backend's
    /// migrations. When `config` lists no encryption key and `dev_key_file` is given (the
    /// embedded default, never production), a random key is created in that file (mode 0600)
    /// on first start and reused afterwards; with neither, this fails with `Config`.
    ///
    /// An unreachable PostgreSQL server fails with `Unavailable` after at most 5 seconds.
    pub async fn connect(
        config: &StoreConfig,
        dev_key_file: Option<&Path>,
    ) -> Result<Store, StoreError> {
        let mut problems = Vec::new();
        config.validate(false, &mut problems);
        if !problems.is_empty() {
            return Err(StoreError::Config(problems.join("; ")));
        }
        let keys = match KeyRing::from_config(&config.encryption)? {
            Some(ring) => ring,
            // Small synchronous file I/O, once at start-up.
            None => match dev_key_file {
                Some(path) => KeyRing::single(DEV_KEY_ID, &keyfile::load_or_create(path)?)?,
                None => {
                    return Err(StoreError::Config(
                        "store.encryption.keys: no encryption key is configured (store.encryption.keys.<id> = base64 of 32 random bytes)".into(),
                    ));
                }
            },
        };
        let kind = BackendKind::of(&config.url).expect("validated above");
        let db = match kind {
            BackendKind::Sqlite => connect_sqlite(config).await?,
            BackendKind::Postgres => connect_postgres(config).await?,
        };
        let store = Store {
            db,
            keys: Arc::new(keys),
        };
        tracing::info!(
            backend = store.backend(),
            url = %config.redacted_url(),
            key_ids = ?store.keys.key_ids().collect::<Vec<_>>(),
            active_key = store.keys.active_key_id(),
            "store ready"
        );
        Ok(store)
    }

    /// "sqlite" | "postgres".
    pub fn backend(&self) -> &'static str {
        match self.db {
            Db::Sqlite(_) => "sqlite",
            Db::Postgres(_) => "postgres",
        }
    }

    /// One round trip to the database, for `/readyz`.
    pub async fn ping(&self) -> Result<(), StoreError> {
        with_pool!(&self.db, pool => {
            sqlx::query("SELECT 1").execute(pool).await?;
        });
        Ok(())
    }

    /// Closes the pool, waiting for connections in use to be returned (graceful shutdown).
    pub async fn close(&self) {
        with_pool!(&self.db, pool => pool.close().await)
    }

    /// Re-encrypts every secret not yet under the active key (key rotation), in all tables;
    /// returns the number of rows rewritten. Rows already under the active key are left alone,
    /// so running it again is cheap. Each row is swapped only if it has not changed since it
    /// was read, so it is safe alongside live traffic and on several replicas at once.
    ///
    /// Rows whose key is missing or whose ciphertext does not open are skipped and reported
    /// afterwards as one `Corrupt` error (the other rows are rewritten all the same).
    pub async fn reencrypt_all(&self) -> Result<u64, StoreError> {
        let mut report = accounts::Reencrypted::default();
        self.reencrypt_pending_connects(&mut report).await?;
        self.reencrypt_connected_accounts(&mut report).await?;
        self.reencrypt_consumer_webhooks(&mut report).await?;
        tracing::info!(
            rewritten = report.rewritten,
            unreadable = report.unreadable.len(),
            active_key = self.keys.active_key_id(),
            "store re-encryption finished"
        );
        if report.unreadable.is_empty() {
            Ok(report.rewritten)
        } else {
            let shown: Vec<&str> = report
                .unreadable
                .iter()
                .take(5)
                .map(String::as_str)
                .collect();
            Err(StoreError::Corrupt(format!(
                "re-encryption rewrote {} rows but could not read {}: {}{}",
                report.rewritten,
                report.unreadable.len(),
                shown.join("; "),
                if report.unreadable.len() > shown.len() {
                    "; …"
                } else {
                    ""
                }
            )))
        }
    }
}

async fn connect_sqlite(config: &StoreConfig) -> Result<Db, StoreError> {
    let memory = is_sqlite_memory(&config.url);
    let mut options = SqliteConnectOptions::from_str(&config.url)?
        .foreign_keys(true)
        .busy_timeout(SQLITE_BUSY_TIMEOUT);
    let mut pool = SqlitePoolOptions::new()
        .max_connections(config.max_connections)
        .acquire_timeout(CONNECT_TIMEOUT);
    if memory {
        // One connection that never closes: an in-memory database lives as long as its
        // connections (rust-stack.md pitfall 11).
        pool = pool
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None);
    } else {
        options = options
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal);
        if let Some(dir) = options
            .get_filename()
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
        {
            std::fs::create_dir_all(dir).map_err(|e| {
                StoreError::Config(format!(
                    "store.url: cannot create directory {}: {e}",
                    dir.display()
                ))
            })?;
        }
    }
    let pool = pool
        .connect_with(options)
        .await
        .map_err(|e| with_context(config, e))?;
    migrate::migrator(BackendKind::Sqlite).run(&pool).await?;
    Ok(Db::Sqlite(pool))
}

async fn connect_postgres(config: &StoreConfig) -> Result<Db, StoreError> {
    let options = PgConnectOptions::from_str(&config.url)?.application_name("m365-gateway");
    // One direct connection first, for the migrations and for a real error message: the pool
    // retries a refused connection until its timeout and then reports only "timed out".
    let mut conn =
        match tokio::time::timeout(CONNECT_TIMEOUT, PgConnection::connect_with(&options)).await {
            Ok(Ok(conn)) => conn,
            Ok(Err(e)) => return Err(with_context(config, e)),
            Err(_) => {
                return Err(StoreError::Unavailable(format!(
                    "cannot connect to {}: no answer within {}s",
                    config.redacted_url(),
                    CONNECT_TIMEOUT.as_secs()
                )));
            }
        };
    migrate::migrator(BackendKind::Postgres)
        .run(&mut conn)
        .await?;
    let _ = conn.close().await;
    let pool = PgPoolOptions::new()
        .max_connections(config.max_connections)
        .acquire_timeout(CONNECT_TIMEOUT)
        .connect_lazy_with(options);
    Ok(Db::Postgres(pool))
}

fn with_context(config: &StoreConfig, e: sqlx::Error) -> StoreError {
    match StoreError::from(e) {
        StoreError::Unavailable(m) => {
            StoreError::Unavailable(format!("cannot connect to {}: {m}", config.redacted_url()))
        }
        other => other,
    }
}

/// Typed column reads shared by both backends' rows; a value that does not decode is `Corrupt`.
pub(crate) trait RowExt {
    fn text(&self, col: &str) -> Result<String, StoreError>;
    fn opt_text(&self, col: &str) -> Result<Option<String>, StoreError>;
    fn bytes(&self, col: &str) -> Result<Vec<u8>, StoreError>;
    fn opt_bytes(&self, col: &str) -> Result<Option<Vec<u8>>, StoreError>;
    fn ts(&self, col: &str) -> Result<OffsetDateTime, StoreError>;
    fn opt_ts(&self, col: &str) -> Result<Option<OffsetDateTime>, StoreError>;
    fn int(&self, col: &str) -> Result<i64, StoreError>;
    fn opt_int(&self, col: &str) -> Result<Option<i64>, StoreError>;
    fn flag(&self, col: &str) -> Result<bool, StoreError>;
}

macro_rules! impl_row_ext {
    ($row:ty) => {
        impl RowExt for $row {
            fn text(&self, col: &str) -> Result<String, StoreError> {
                Ok(self.try_get::<String, _>(col)?)
            }
            fn opt_text(&self, col: &str) -> Result<Option<String>, StoreError> {
                Ok(self.try_get::<Option<String>, _>(col)?)
            }
            fn bytes(&self, col: &str) -> Result<Vec<u8>, StoreError> {
                Ok(self.try_get::<Vec<u8>, _>(col)?)
            }
            fn opt_bytes(&self, col: &str) -> Result<Option<Vec<u8>>, StoreError> {
                Ok(self.try_get::<Option<Vec<u8>>, _>(col)?)
            }
            fn ts(&self, col: &str) -> Result<OffsetDateTime, StoreError> {
                Ok(self.try_get::<Ts, _>(col)?.0)
            }
            fn opt_ts(&self, col: &str) -> Result<Option<OffsetDateTime>, StoreError> {
                Ok(self.try_get::<Option<Ts>, _>(col)?.map(|t| t.0))
            }
            fn int(&self, col: &str) -> Result<i64, StoreError> {
                Ok(self.try_get::<i64, _>(col)?)
            }
            fn opt_int(&self, col: &str) -> Result<Option<i64>, StoreError> {
                Ok(self.try_get::<Option<i64>, _>(col)?)
            }
            fn flag(&self, col: &str) -> Result<bool, StoreError> {
                Ok(self.try_get::<bool, _>(col)?)
            }
        }
    };
}
impl_row_ext!(SqliteRow);
impl_row_ext!(PgRow);
