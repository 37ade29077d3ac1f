//! Integration tests of the persistent store (`src/store`): every scenario runs against SQLite
//! (a file in a fresh temporary directory) and against PostgreSQL.
//!
//! PostgreSQL comes from `TEST_DATABASE_URL` (e.g. `postgres://postgres@127.0.0.1:5432/test`).
//! Each test creates its own schema (random name, reached through `search_path`) and drops it
//! afterwards, so runs and tests never collide. When the variable is unset the PostgreSQL half
//! is skipped with a note on stderr, except under `CI=true`, where that is a failure.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use m365_gateway::store::{
    ConnectedAccount, EncryptionConfig, NewChangeEvent, NewConnectedAccount, NewNotification,
    NewWatch, PendingConnect, Store, StoreConfig, StoreError,
};
use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use sqlx::{AssertSqlSafe, Connection, Row};
use time::OffsetDateTime;

// ---------------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------------

fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    aws_lc_rs::rand::fill(&mut buf).unwrap();
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

fn random_key() -> String {
    let mut buf = [0u8; 32];
    aws_lc_rs::rand::fill(&mut buf).unwrap();
    STANDARD.encode(buf)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Sqlite,
    Postgres,
}

/// One isolated database for one test: a temp directory (always: SQLite file, key files) and,
/// for PostgreSQL, a schema of its own. Dropping it removes both.
struct TestDb {
    kind: Kind,
    url: String,
    dir: PathBuf,
    /// (server URL without search_path, schema name)
    pg_schema: Option<(String, String)>,
    /// Two random keys for this test.
    k1: String,
    k2: String,
}

fn temp_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("m365gw-store-test-{}", random_hex(8)));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

impl TestDb {
    fn sqlite() -> TestDb {
        let dir = temp_dir();
        // A subdirectory that does not exist yet: the store must create it.
        let url = format!("sqlite://{}/data/gateway.db", dir.display());
        TestDb {
            kind: Kind::Sqlite,
            url,
            dir,
            pg_schema: None,
            k1: random_key(),
            k2: random_key(),
        }
    }

    /// None (with a note) when `TEST_DATABASE_URL` is unset; panics then under `CI=true`.
    async fn postgres() -> Option<TestDb> {
        let base = match std::env::var("TEST_DATABASE_URL") {
            Ok(url) if !url.trim().is_empty() => url,
            _ => {
                if std::env::var("CI").is_ok_and(|v| v == "true") {
                    panic!(
                        "TEST_DATABASE_URL is unset but CI=true: the PostgreSQL half of the store tests must run in CI"
                    );
                }
                eprintln!(
                    "note: TEST_DATABASE_URL is unset; skipping the PostgreSQL half of this test"
                );
                return None;
            }
        };
        let schema = format!("m365gw_test_{}", random_hex(6));
        let mut conn = connect_creating_database(&base).await;
        sqlx::raw_sql(AssertSqlSafe(format!("CREATE SCHEMA \"{schema}\"")))
            .execute(&mut conn)
            .await
            .unwrap();
        conn.close().await.unwrap();
        let sep = if base.contains('?') { '&' } else { '?' };
        let url = format!("{base}{sep}options[search_path]={schema}");
        Some(TestDb {
            kind: Kind::Postgres,
            url,
            dir: temp_dir(),
            pg_schema: Some((base, schema)),
            k1: random_key(),
            k2: random_key(),
        })
    }

    /// A config on this database with the given keys (`"k1"` / `"k2"` name this test's keys).
    fn config(&self, keys: &[&str], active: Option<&str>) -> StoreConfig {
        StoreConfig {
            url: self.url.clone(),
            max_connections: 4,
            encryption: EncryptionConfig {
                keys: keys
                    .iter()
                    .map(|id| {
                        let key = match *id {
                            "k1" => &self.k1,
                            "k2" => &self.k2,
                            other => panic!("unknown test key {other}"),
                        };
                        ((*id).to_owned(), key.clone())
                    })
                    .collect(),
                active_key: active.map(str::to_owned),
            },
        }
    }

    async fn store(&self, keys: &[&str], active: Option<&str>) -> Store {
        Store::connect(&self.config(keys, active), None)
            .await
            .expect("connect")
    }

    fn sqlite_path(&self) -> PathBuf {
        PathBuf::from(self.url.trim_start_matches("sqlite://"))
    }

    /// Runs plain SQL outside the store (no result).
    async fn exec(&self, sql: &str) {
        match self.kind {
            Kind::Sqlite => {
                let mut c = SqliteConnection::connect_with(
                    &SqliteConnectOptions::from_str(&self.url).unwrap(),
                )
                .await
                .unwrap();
                sqlx::raw_sql(AssertSqlSafe(sql.to_owned()))
                    .execute(&mut c)
                    .await
                    .unwrap();
                c.close().await.unwrap();
            }
            Kind::Postgres => {
                let mut c = PgConnection::connect(&self.url).await.unwrap();
                sqlx::raw_sql(AssertSqlSafe(sql.to_owned()))
                    .execute(&mut c)
                    .await
                    .unwrap();
                c.close().await.unwrap();
            }
        }
    }

    /// One integer from plain SQL.
    async fn scalar(&self, sql: &str) -> i64 {
        match self.kind {
            Kind::Sqlite => {
                let mut c = SqliteConnection::connect(&self.url).await.unwrap();
                let v: i64 = sqlx::query_scalar(AssertSqlSafe(sql.to_owned()))
                    .fetch_one(&mut c)
                    .await
                    .unwrap();
                c.close().await.unwrap();
                v
            }
            Kind::Postgres => {
                let mut c = PgConnection::connect(&self.url).await.unwrap();
                let v: i64 = sqlx::query_scalar(AssertSqlSafe(sql.to_owned()))
                    .fetch_one(&mut c)
                    .await
                    .unwrap();
                c.close().await.unwrap();
                v
            }
        }
    }

    /// Text values (NULL as None) of one column, in row order.
    async fn column(&self, sql: &str) -> Vec<Option<String>> {
        match self.kind {
            Kind::Sqlite => {
                let mut c = SqliteConnection::connect(&self.url).await.unwrap();
                let rows = sqlx::query(AssertSqlSafe(sql.to_owned()))
                    .fetch_all(&mut c)
                    .await
                    .unwrap();
                rows.iter()
                    .map(|r| r.try_get::<Option<String>, _>(0).unwrap())
                    .collect()
            }
            Kind::Postgres => {
                let mut c = PgConnection::connect(&self.url).await.unwrap();
                let rows = sqlx::query(AssertSqlSafe(sql.to_owned()))
                    .fetch_all(&mut c)
                    .await
                    .unwrap();
                rows.iter()
                    .map(|r| r.try_get::<Option<String>, _>(0).unwrap())
                    .collect()
            }
        }
    }

    /// Every text and binary value of every row of `table`, concatenated: what someone with
    /// read access to the database sees.
    async fn raw_table(&self, table: &str) -> Vec<u8> {
        let sql = format!("SELECT * FROM {table}");
        let mut out = Vec::new();
        macro_rules! dump {
            ($rows:expr) => {
                for row in &$rows {
                    for i in 0..row.len() {
                        if let Ok(Some(text)) = row.try_get::<Option<String>, _>(i) {
                            out.extend_from_slice(text.as_bytes());
                        } else if let Ok(Some(bytes)) = row.try_get::<Option<Vec<u8>>, _>(i) {
                            out.extend_from_slice(&bytes);
                        }
                        out.push(0);
                    }
                }
            };
        }
        match self.kind {
            Kind::Sqlite => {
                let mut c = SqliteConnection::connect(&self.url).await.unwrap();
                let rows = sqlx::query(AssertSqlSafe(sql))
                    .fetch_all(&mut c)
                    .await
                    .unwrap();
                dump!(rows);
            }
            Kind::Postgres => {
                let mut c = PgConnection::connect(&self.url).await.unwrap();
                let rows = sqlx::query(AssertSqlSafe(sql))
                    .fetch_all(&mut c)
                    .await
                    .unwrap();
                dump!(rows);
            }
        }
        out
    }
}

/// Connects to `TEST_DATABASE_URL`, creating its database first when the server does not
/// have it yet (a fresh CI machine has only `postgres`).
async fn connect_creating_database(url: &str) -> PgConnection {
    match PgConnection::connect(url).await {
        Ok(conn) => conn,
        Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("3D000") => {
            let options = PgConnectOptions::from_str(url).expect("TEST_DATABASE_URL");
            let name = options
                .get_database()
                .expect("TEST_DATABASE_URL names a database")
                .to_owned();
            let mut admin = PgConnection::connect_with(&options.clone().database("postgres"))
                .await
                .expect("connect to the server's postgres database");
            let create = format!("CREATE DATABASE \"{}\"", name.replace('"', "\"\""));
            match sqlx::raw_sql(AssertSqlSafe(create))
                .execute(&mut admin)
                .await
            {
                // Another test created it meanwhile: 42P04, or 23505 when both raced.
                Err(sqlx::Error::Database(e))
                    if matches!(e.code().as_deref(), Some("42P04" | "23505")) => {}
                other => {
                    other.expect("create the test database");
                }
            }
            let _ = admin.close().await;
            PgConnection::connect(url)
                .await
                .expect("connect to TEST_DATABASE_URL")
        }
        Err(e) => panic!("cannot connect to TEST_DATABASE_URL: {e}"),
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
        if let Some((base, schema)) = self.pg_schema.take() {
            // Drop may run outside any runtime (or inside one, after a panic): use a thread of
            // our own with its own small runtime.
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async {
                    if let Ok(mut c) = PgConnection::connect(&base).await {
                        let sql = format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE");
                        if let Err(e) = sqlx::raw_sql(AssertSqlSafe(sql)).execute(&mut c).await {
                            eprintln!("could not drop test schema {schema}: {e}");
                        }
                        let _ = c.close().await;
                    }
                });
            })
            .join();
        }
    }
}

fn pending(state: &str, expires_in: time::Duration) -> PendingConnect {
    PendingConnect {
        state: state.to_owned(),
        caller: "crm".to_owned(),
        code_verifier: format!("verifier-{}", random_hex(24)),
        redirect_uri: "https://gateway.example/connect/callback".to_owned(),
        return_to: Some("https://crm.example/settings".to_owned()),
        login_hint: Some("adele@contoso.example".to_owned()),
        expires_at: OffsetDateTime::now_utc() + expires_in,
    }
}

fn account(caller: &str, user_id: &str) -> NewConnectedAccount {
    NewConnectedAccount {
        caller: caller.to_owned(),
        user_id: user_id.to_owned(),
        user_principal_name: format!("{user_id}@contoso.example"),
        tenant_id: "11111111-2222-3333-4444-555555555555".to_owned(),
        scopes: vec![
            "offline_access".into(),
            "Mail.ReadWrite".into(),
            "Mail.Send".into(),
        ],
        refresh_token: format!("0.AXYA-refresh-{}", random_hex(32)),
    }
}

fn assert_same_account(read: &ConnectedAccount, saved: &NewConnectedAccount) {
    assert_eq!(read.caller, saved.caller);
    assert_eq!(read.user_id, saved.user_id);
    assert_eq!(read.user_principal_name, saved.user_principal_name);
    assert_eq!(read.tenant_id, saved.tenant_id);
    assert_eq!(read.scopes, saved.scopes);
    assert_eq!(read.refresh_token, saved.refresh_token);
}

fn encodings(secret: &str) -> Vec<(&'static str, Vec<u8>)> {
    let hex: String = secret.bytes().map(|b| format!("{b:02x}")).collect();
    vec![
        ("plain", secret.as_bytes().to_vec()),
        ("plain prefix", secret.as_bytes()[..16].to_vec()),
        (
            "plain suffix",
            secret.as_bytes()[secret.len() - 16..].to_vec(),
        ),
        ("base64", STANDARD.encode(secret).into_bytes()),
        (
            "base64 unpadded",
            STANDARD_NO_PAD.encode(secret).into_bytes(),
        ),
        ("base64url", URL_SAFE.encode(secret).into_bytes()),
        (
            "base64url unpadded",
            URL_SAFE_NO_PAD.encode(secret).into_bytes(),
        ),
        ("hex", hex.clone().into_bytes()),
        ("HEX", hex.to_uppercase().into_bytes()),
    ]
}

fn assert_absent(haystack: &[u8], secret: &str, place: &str) {
    for (name, needle) in encodings(secret) {
        assert!(
            !haystack
                .windows(needle.len())
                .any(|w| w == needle.as_slice()),
            "{place} contains the secret ({name})"
        );
    }
}

fn is_corrupt<T: std::fmt::Debug>(result: Result<T, StoreError>) -> String {
    match result {
        Err(StoreError::Corrupt(message)) => message,
        other => panic!("expected StoreError::Corrupt, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Scenarios, each run on both backends (see the macro at the end)
// ---------------------------------------------------------------------------------------------

async fn migrations_are_idempotent_when_connecting_twice(db: &TestDb) {
    let first = db.store(&["k1"], None).await;
    let saved = account("crm", "u1");
    first.save_connected_account(&saved).await.unwrap();
    first.close().await;

    let second = db.store(&["k1"], None).await;
    assert_same_account(
        &second
            .connected_account("crm", "u1")
            .await
            .unwrap()
            .unwrap(),
        &saved,
    );
    assert_eq!(db.scalar("SELECT COUNT(*) FROM _sqlx_migrations").await, 2);
    assert_eq!(
        db.scalar("SELECT COUNT(*) FROM connected_accounts").await,
        1
    );
    second.ping().await.unwrap();
    assert_eq!(
        second.backend(),
        match db.kind {
            Kind::Sqlite => "sqlite",
            Kind::Postgres => "postgres",
        }
    );

    // A third store connecting while the second is open.
    let third = db.store(&["k1"], None).await;
    third.ping().await.unwrap();
}

async fn a_closed_store_answers_unavailable(db: &TestDb) {
    let store = db.store(&["k1"], None).await;
    store.ping().await.unwrap();
    store.close().await;
    assert!(matches!(
        store.ping().await,
        Err(StoreError::Unavailable(_))
    ));
    assert!(matches!(
        store.connected_account("crm", "u1").await,
        Err(StoreError::Unavailable(_))
    ));
}

async fn a_pending_connect_is_single_use_and_expires(db: &TestDb) {
    let store = db.store(&["k1"], None).await;
    let live = pending("state-live", time::Duration::minutes(10));
    store.put_pending_connect(&live).await.unwrap();

    let taken = store
        .take_pending_connect("state-live")
        .await
        .unwrap()
        .expect("first take");
    assert_eq!(taken.state, live.state);
    assert_eq!(taken.caller, live.caller);
    assert_eq!(taken.code_verifier, live.code_verifier);
    assert_eq!(taken.redirect_uri, live.redirect_uri);
    assert_eq!(taken.return_to, live.return_to);
    assert_eq!(taken.login_hint, live.login_hint);
    assert!((taken.expires_at - live.expires_at).abs() < time::Duration::milliseconds(1));
    assert!(
        store
            .take_pending_connect("state-live")
            .await
            .unwrap()
            .is_none(),
        "second take"
    );
    assert!(
        store
            .take_pending_connect("never-issued")
            .await
            .unwrap()
            .is_none()
    );

    let mut minimal = pending("state-minimal", time::Duration::minutes(10));
    minimal.return_to = None;
    minimal.login_hint = None;
    store.put_pending_connect(&minimal).await.unwrap();
    assert_eq!(
        store
            .take_pending_connect("state-minimal")
            .await
            .unwrap()
            .unwrap(),
        minimal.clone_with_truncated_time()
    );

    let expired = pending("state-expired", time::Duration::seconds(-1));
    store.put_pending_connect(&expired).await.unwrap();
    assert!(
        store
            .take_pending_connect("state-expired")
            .await
            .unwrap()
            .is_none(),
        "expired"
    );
    assert_eq!(
        db.scalar("SELECT COUNT(*) FROM pending_connects").await,
        0,
        "an expired take removes it too"
    );

    // Expired rows are swept when the next one is put, and by the purge.
    store
        .put_pending_connect(&pending("old-1", time::Duration::seconds(-5)))
        .await
        .unwrap();
    store
        .put_pending_connect(&pending("old-2", time::Duration::seconds(-5)))
        .await
        .unwrap();
    assert_eq!(
        db.scalar("SELECT COUNT(*) FROM pending_connects").await,
        1,
        "old-1 swept by old-2's put"
    );
    assert_eq!(store.purge_expired_pending_connects().await.unwrap(), 1);
    assert_eq!(db.scalar("SELECT COUNT(*) FROM pending_connects").await, 0);
}

async fn a_pending_connect_is_taken_once_under_concurrency(db: &TestDb) {
    let store = db.store(&["k1"], None).await;
    store
        .put_pending_connect(&pending("contested", time::Duration::minutes(5)))
        .await
        .unwrap();
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.take_pending_connect("contested").await })
        })
        .collect();
    let mut winners = 0;
    for task in tasks {
        if task.await.unwrap().unwrap().is_some() {
            winners += 1;
        }
    }
    assert_eq!(winners, 1);
}

async fn a_saved_account_reads_back_decrypted(db: &TestDb) {
    let store = db.store(&["k1"], None).await;
    let before = OffsetDateTime::now_utc() - time::Duration::seconds(1);
    let saved = account("crm", "0f1e2d3c-aaaa-bbbb-cccc-000000000001");
    store.save_connected_account(&saved).await.unwrap();

    let read = store
        .connected_account("crm", &saved.user_id)
        .await
        .unwrap()
        .expect("saved account");
    assert_same_account(&read, &saved);
    assert!(read.created_at >= before && read.created_at <= OffsetDateTime::now_utc());
    assert_eq!(read.created_at, read.updated_at);
    assert!(
        !format!("{read:?}").contains(&saved.refresh_token),
        "Debug hides the token"
    );

    assert!(
        store
            .connected_account("crm", "someone-else")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .connected_account("other-caller", &saved.user_id)
            .await
            .unwrap()
            .is_none(),
        "callers are isolated"
    );

    let list = store.list_connected_accounts("crm").await.unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].user_id, saved.user_id);
    assert_eq!(list[0].user_principal_name, saved.user_principal_name);
    assert_eq!(list[0].scopes, saved.scopes);
    assert_eq!(list[0].created_at, read.created_at);
    assert!(!list[0].revoked);
    assert!(
        store
            .list_connected_accounts("other-caller")
            .await
            .unwrap()
            .is_empty()
    );
}

async fn the_raw_rows_contain_neither_the_refresh_token_nor_the_verifier_in_any_encoding(
    db: &TestDb,
) {
    let store = db.store(&["k1"], None).await;
    let saved = account("crm", "u-raw");
    store.save_connected_account(&saved).await.unwrap();
    let rotated = format!("0.AXYA-rotated-{}", random_hex(32));
    store
        .save_connected_account(&account("crm", "u-other"))
        .await
        .unwrap();
    store
        .update_refresh_token("crm", "u-other", &rotated)
        .await
        .unwrap();
    let flow = pending("state-raw", time::Duration::minutes(10));
    store.put_pending_connect(&flow).await.unwrap();

    let accounts = db.raw_table("connected_accounts").await;
    let pendings = db.raw_table("pending_connects").await;
    assert!(
        accounts
            .windows(saved.user_principal_name.len())
            .any(|w| w == saved.user_principal_name.as_bytes()),
        "the dump sees the row"
    );
    assert!(
        pendings
            .windows(flow.redirect_uri.len())
            .any(|w| w == flow.redirect_uri.as_bytes()),
        "the dump sees the row"
    );
    for haystack in [&accounts, &pendings] {
        assert_absent(haystack, &saved.refresh_token, "a raw row");
        assert_absent(haystack, &rotated, "a raw row");
        assert_absent(haystack, &flow.code_verifier, "a raw row");
    }
    assert_eq!(
        db.column("SELECT key_id FROM connected_accounts ORDER BY user_id")
            .await,
        vec![Some("k1".into()), Some("k1".into())]
    );

    if db.kind == Kind::Sqlite {
        // The files on disk too (database and write-ahead log), not just what SELECT shows.
        store.close().await;
        let path = db.sqlite_path();
        for file in [
            path.clone(),
            PathBuf::from(format!("{}-wal", path.display())),
        ] {
            if let Ok(bytes) = std::fs::read(&file) {
                assert_absent(&bytes, &saved.refresh_token, &file.display().to_string());
                assert_absent(&bytes, &rotated, &file.display().to_string());
                assert_absent(&bytes, &flow.code_verifier, &file.display().to_string());
            }
        }
    }
}

async fn saving_again_replaces_the_account_and_keeps_its_creation_time(db: &TestDb) {
    let store = db.store(&["k1"], None).await;
    let first = account("crm", "u1");
    store.save_connected_account(&first).await.unwrap();
    let created = store
        .connected_account("crm", "u1")
        .await
        .unwrap()
        .unwrap()
        .created_at;
    tokio::time::sleep(Duration::from_millis(5)).await;

    let mut second = account("crm", "u1");
    second.user_principal_name = "renamed@contoso.example".into();
    second.scopes = vec!["offline_access".into(), "Calendars.Read".into()];
    store.save_connected_account(&second).await.unwrap();

    let read = store.connected_account("crm", "u1").await.unwrap().unwrap();
    assert_same_account(&read, &second);
    assert_eq!(read.created_at, created);
    assert!(read.updated_at > created);
    assert_eq!(store.list_connected_accounts("crm").await.unwrap().len(), 1);

    // A refresh rotates the token in place.
    let rotated = format!("0.AXYA-rotated-{}", random_hex(16));
    store
        .update_refresh_token("crm", "u1", &rotated)
        .await
        .unwrap();
    let read = store.connected_account("crm", "u1").await.unwrap().unwrap();
    assert_eq!(read.refresh_token, rotated);
    assert_eq!(read.scopes, second.scopes);

    // Updating an account that does not exist creates nothing.
    store
        .update_refresh_token("crm", "ghost", "0.AXYA-ghost")
        .await
        .unwrap();
    assert!(
        store
            .connected_account("crm", "ghost")
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        db.scalar("SELECT COUNT(*) FROM connected_accounts").await,
        1
    );
}

async fn revoking_hides_the_account_and_listing_shows_it_revoked(db: &TestDb) {
    let store = db.store(&["k1"], None).await;
    let a = account("crm", "u-a");
    let b = account("crm", "u-b");
    store.save_connected_account(&a).await.unwrap();
    store.save_connected_account(&b).await.unwrap();

    assert!(store.revoke_connected_account("crm", "u-a").await.unwrap());
    assert!(
        store
            .connected_account("crm", "u-a")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        !store.revoke_connected_account("crm", "u-a").await.unwrap(),
        "already revoked"
    );
    assert!(
        !store
            .revoke_connected_account("crm", "nobody")
            .await
            .unwrap(),
        "absent"
    );

    let list = store.list_connected_accounts("crm").await.unwrap();
    let flags: Vec<(&str, bool)> = list
        .iter()
        .map(|i| (i.user_id.as_str(), i.revoked))
        .collect();
    assert_eq!(flags, vec![("u-a", true), ("u-b", false)]);

    // The secret is erased, not just hidden.
    assert_eq!(
        db.column("SELECT key_id FROM connected_accounts WHERE user_id = 'u-a'")
            .await,
        vec![None]
    );
    assert_eq!(
        db.scalar("SELECT COUNT(*) FROM connected_accounts WHERE refresh_token_enc IS NULL")
            .await,
        1
    );
    assert_absent(
        &db.raw_table("connected_accounts").await,
        &a.refresh_token,
        "a revoked row",
    );

    // A refresh racing the revoke does not bring it back; connecting again does.
    store
        .update_refresh_token("crm", "u-a", "0.AXYA-late-refresh")
        .await
        .unwrap();
    assert!(
        store
            .connected_account("crm", "u-a")
            .await
            .unwrap()
            .is_none()
    );
    let again = account("crm", "u-a");
    store.save_connected_account(&again).await.unwrap();
    assert_same_account(
        &store
            .connected_account("crm", "u-a")
            .await
            .unwrap()
            .unwrap(),
        &again,
    );
    assert!(
        store
            .list_connected_accounts("crm")
            .await
            .unwrap()
            .iter()
            .all(|i| !i.revoked)
    );
}

async fn rotating_keys_keeps_old_rows_readable_and_reencrypt_moves_them_to_the_active_key(
    db: &TestDb,
) {
    let old = db.store(&["k1"], None).await;
    let a1 = account("crm", "u1");
    old.save_connected_account(&a1).await.unwrap();
    let p1 = pending("state-rotate", time::Duration::minutes(10));
    old.put_pending_connect(&p1).await.unwrap();
    old.close().await;

    // k2 becomes active; k1 stays listed, so old rows still read.
    let both = db.store(&["k1", "k2"], Some("k2")).await;
    assert_same_account(
        &both.connected_account("crm", "u1").await.unwrap().unwrap(),
        &a1,
    );
    let a2 = account("crm", "u2");
    both.save_connected_account(&a2).await.unwrap();
    assert_eq!(
        db.column("SELECT key_id FROM connected_accounts ORDER BY user_id")
            .await,
        vec![Some("k1".into()), Some("k2".into())],
        "new writes use the active key"
    );

    assert_eq!(
        both.reencrypt_all().await.unwrap(),
        2,
        "u1 and the pending connect"
    );
    assert_eq!(
        both.reencrypt_all().await.unwrap(),
        0,
        "nothing left under k1"
    );
    assert_eq!(
        db.scalar("SELECT COUNT(*) FROM connected_accounts WHERE key_id <> 'k2'")
            .await,
        0
    );
    assert_eq!(
        db.scalar("SELECT COUNT(*) FROM pending_connects WHERE key_id <> 'k2'")
            .await,
        0
    );
    both.close().await;

    // k1 can now be dropped from the configuration.
    let new = db.store(&["k2"], None).await;
    assert_same_account(
        &new.connected_account("crm", "u1").await.unwrap().unwrap(),
        &a1,
    );
    assert_same_account(
        &new.connected_account("crm", "u2").await.unwrap().unwrap(),
        &a2,
    );
    assert_eq!(
        new.take_pending_connect("state-rotate")
            .await
            .unwrap()
            .unwrap()
            .code_verifier,
        p1.code_verifier
    );
}

async fn reencrypting_many_rows_goes_through_every_page(db: &TestDb) {
    let old = db.store(&["k1"], None).await;
    let accounts: Vec<_> = (0..450)
        .map(|i| account(&format!("caller-{}", i % 3), &format!("user-{i:04}")))
        .collect();
    for a in &accounts {
        old.save_connected_account(a).await.unwrap();
    }
    old.close().await;
    let new = db.store(&["k1", "k2"], Some("k2")).await;
    assert_eq!(new.reencrypt_all().await.unwrap(), 450);
    new.close().await;
    let only_k2 = db.store(&["k2"], None).await;
    for a in accounts.iter().step_by(37) {
        assert_same_account(
            &only_k2
                .connected_account(&a.caller, &a.user_id)
                .await
                .unwrap()
                .unwrap(),
            a,
        );
    }
}

async fn a_row_whose_key_is_missing_reads_as_corrupt_not_a_panic(db: &TestDb) {
    let old = db.store(&["k1"], None).await;
    old.save_connected_account(&account("crm", "u1"))
        .await
        .unwrap();
    old.put_pending_connect(&pending("state-lost", time::Duration::minutes(10)))
        .await
        .unwrap();
    old.close().await;

    let store = db.store(&["k2"], None).await;
    let message = is_corrupt(store.connected_account("crm", "u1").await);
    assert!(
        message.contains("'k1'") && message.contains("u1"),
        "{message}"
    );
    is_corrupt(store.take_pending_connect("state-lost").await);
    // What needs no secret still works.
    assert_eq!(store.list_connected_accounts("crm").await.unwrap().len(), 1);
    // Rotation reports the unreadable row instead of failing half-way silently.
    store
        .save_connected_account(&account("crm", "u2"))
        .await
        .unwrap();
    let message = is_corrupt(store.reencrypt_all().await);
    assert!(message.contains("could not read 1"), "{message}");
    // Revoking an unreadable account still works (and erases the dead ciphertext).
    assert!(store.revoke_connected_account("crm", "u1").await.unwrap());
}

async fn a_ciphertext_copied_to_another_row_does_not_decrypt(db: &TestDb) {
    let store = db.store(&["k1"], None).await;
    store
        .save_connected_account(&account("crm", "victim"))
        .await
        .unwrap();
    store
        .save_connected_account(&account("crm", "attacker"))
        .await
        .unwrap();
    db.exec(
        "UPDATE connected_accounts SET refresh_token_enc = \
         (SELECT refresh_token_enc FROM connected_accounts WHERE user_id = 'victim') \
         WHERE user_id = 'attacker'",
    )
    .await;
    is_corrupt(store.connected_account("crm", "attacker").await);
    assert!(
        store
            .connected_account("crm", "victim")
            .await
            .unwrap()
            .is_some()
    );
}

async fn the_dev_key_file_is_created_with_mode_0600_and_reused(db: &TestDb) {
    let key_file = db.dir.join("keys/nested/store.key");
    let config = db.config(&[], None);

    match Store::connect(&config, None).await {
        Err(StoreError::Config(m)) => assert!(m.starts_with("store.encryption.keys:"), "{m}"),
        other => panic!("no key and no dev key file must be a Config error, got {other:?}"),
    }

    let store = Store::connect(&config, Some(&key_file)).await.unwrap();
    let text = std::fs::read_to_string(&key_file).unwrap();
    assert_eq!(STANDARD.decode(text.trim()).unwrap().len(), 32);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "mode {mode:o}");
    }
    let saved = account("crm", "u-dev");
    store.save_connected_account(&saved).await.unwrap();
    assert_eq!(
        db.column("SELECT key_id FROM connected_accounts").await,
        vec![Some("dev".into())]
    );
    store.close().await;

    let again = Store::connect(&config, Some(&key_file)).await.unwrap();
    assert_eq!(
        std::fs::read_to_string(&key_file).unwrap(),
        text,
        "reused, not replaced"
    );
    assert_same_account(
        &again
            .connected_account("crm", "u-dev")
            .await
            .unwrap()
            .unwrap(),
        &saved,
    );
    again.close().await;

    // Moving to configured keys: the file's content is the `dev` key.
    let mut configured = db.config(&["k2"], Some("k2"));
    configured
        .encryption
        .keys
        .insert("dev".into(), text.trim().to_owned());
    let moved = Store::connect(&configured, Some(Path::new("/nonexistent/ignored.key")))
        .await
        .unwrap();
    assert_same_account(
        &moved
            .connected_account("crm", "u-dev")
            .await
            .unwrap()
            .unwrap(),
        &saved,
    );
}

// ---- change notifications (src/store/notifications.rs) ----

fn watch(id: &str) -> NewWatch {
    NewWatch {
        id: id.to_owned(),
        caller: "crm".into(),
        kind: "mail".into(),
        target: "u1".into(),
        folder: "inbox".into(),
        resource: "users/u1/mailFolders('inbox')/messages".into(),
        change_types: "created".into(),
        include_resource_data: false,
        resync: None,
    }
}

fn notification(watch: &str, key: &str) -> NewNotification {
    NewNotification {
        dedupe_key: key.to_owned(),
        subscription_id: watch.to_owned(),
        graph_id: "g1".into(),
        change_type: Some("created".into()),
        lifecycle_event: None,
        resource: Some(format!("Users/u1/Messages/{key}")),
        resource_id: Some(key.to_owned()),
        etag: Some("W/\"1\"".into()),
        resource_data: None,
    }
}

fn event(watch: &str, id: &str) -> NewChangeEvent {
    NewChangeEvent {
        id: id.to_owned(),
        subscription_id: watch.to_owned(),
        change_type: "created".into(),
        resource: format!("Users/u1/Messages/{id}"),
        resource_id: Some(id.to_owned()),
        data: Some(serde_json::json!({ "subject": id })),
        occurred_at: OffsetDateTime::now_utc(),
    }
}

async fn notifications_are_deduplicated_and_each_is_claimed_by_one_worker(db: &TestDb) {
    let a = db.store(&["k1"], None).await;
    let b = db.store(&["k1"], None).await;
    a.insert_watch(&watch("w1")).await.unwrap();
    let items: Vec<NewNotification> = (0..200)
        .map(|i| notification("w1", &format!("n{i}")))
        .collect();
    assert_eq!(a.enqueue_notifications(&items).await.unwrap(), 200);
    // Graph's retry of the same items adds nothing.
    assert_eq!(b.enqueue_notifications(&items[..50]).await.unwrap(), 0);
    let lease = Duration::from_secs(60);
    let mut claimed = Vec::new();
    loop {
        let (x, y) = tokio::join!(
            a.claim_notifications("replica-a", lease, 7),
            b.claim_notifications("replica-b", lease, 7)
        );
        let (x, y) = (x.unwrap(), y.unwrap());
        if x.is_empty() && y.is_empty() {
            break;
        }
        claimed.extend(x.into_iter().map(|i| i.seq));
        claimed.extend(y.into_iter().map(|i| i.seq));
    }
    let count = claimed.len();
    claimed.sort();
    claimed.dedup();
    assert_eq!(
        (count, claimed.len()),
        (200, 200),
        "every row claimed exactly once"
    );
}

async fn a_worker_whose_lease_ran_out_cannot_finish_and_the_effect_is_recorded_once(db: &TestDb) {
    let store = db.store(&["k1"], None).await;
    store.insert_watch(&watch("w1")).await.unwrap();
    store
        .enqueue_notifications(&[notification("w1", "n1")])
        .await
        .unwrap();
    let slow = store
        .claim_notifications("slow", Duration::from_millis(200), 10)
        .await
        .unwrap();
    assert_eq!(slow.len(), 1);
    assert!(
        store
            .claim_notifications("fast", Duration::from_secs(60), 10)
            .await
            .unwrap()
            .is_empty()
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let fast = store
        .claim_notifications("fast", Duration::from_secs(60), 10)
        .await
        .unwrap();
    assert_eq!(
        fast.len(),
        1,
        "the lease ran out: another worker takes the row"
    );
    assert_eq!(fast[0].attempts, 2);
    let recorded = store
        .complete_notification(fast[0].seq, "fast", &[event("w1", "e1")])
        .await
        .unwrap()
        .expect("the holder finishes");
    assert_eq!(recorded.len(), 1);
    assert!(
        store
            .complete_notification(slow[0].seq, "slow", &[event("w1", "e1")])
            .await
            .unwrap()
            .is_none(),
        "the worker that lost its lease writes nothing"
    );
    let events = store.events_after("w1", 0, 10).await.unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].data, Some(serde_json::json!({ "subject": "e1" })));
    assert_eq!(
        store.outbox_counts().await.unwrap(),
        vec![("done".to_owned(), 1)]
    );
}

async fn due_watches_are_claimed_by_one_replica_and_released_for_later(db: &TestDb) {
    let a = db.store(&["k1"], None).await;
    let b = db.store(&["k1"], None).await;
    for i in 0..12 {
        let id = format!("w{i}");
        a.insert_watch(&watch(&id)).await.unwrap();
        // Due now.
        a.request_watch_work(&id, false, true).await.unwrap();
    }
    let lease = Duration::from_secs(60);
    let (x, y) = tokio::join!(
        a.claim_due_watches("replica-a", lease, 100),
        b.claim_due_watches("replica-b", lease, 100)
    );
    let (x, y) = (x.unwrap(), y.unwrap());
    assert_eq!(x.len() + y.len(), 12, "each due watch claimed once");
    let mut ids: Vec<String> = x.iter().chain(y.iter()).map(|w| w.id.clone()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 12);
    let later = OffsetDateTime::now_utc() + time::Duration::hours(1);
    for w in &x {
        a.release_watch(&w.id, "replica-a", later, None, false)
            .await
            .unwrap();
    }
    // Released for later: nobody claims them now; the other replica's are still leased.
    assert!(
        b.claim_due_watches("replica-b", lease, 100)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn a_resync_commits_new_events_and_its_delta_link_together(db: &TestDb) {
    let store = db.store(&["k1"], None).await;
    let mut w = watch("w1");
    w.resync = Some("delta".into());
    store.insert_watch(&w).await.unwrap();
    store
        .enqueue_notifications(&[notification("w1", "n1")])
        .await
        .unwrap();
    let claimed = store
        .claim_notifications("r", Duration::from_secs(60), 10)
        .await
        .unwrap();
    store
        .complete_notification(claimed[0].seq, "r", &[event("w1", "e1")])
        .await
        .unwrap();
    let new = store
        .finish_resync(
            "w1",
            Some("https://graph/delta?token=2"),
            &[event("w1", "e1"), event("w1", "e2")],
        )
        .await
        .unwrap();
    assert_eq!(
        new.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(),
        ["e2"],
        "e1 was known"
    );
    let after = store.watch("w1").await.unwrap().unwrap();
    assert_eq!(
        after.delta_link.as_deref(),
        Some("https://graph/delta?token=2")
    );
    assert_eq!(after.resync, None);
    assert!(after.synced_at.is_some());
    // Deleting the watch takes its outbox rows and events with it.
    assert!(store.delete_watch("w1").await.unwrap());
    assert!(store.events_after("w1", 0, 10).await.unwrap().is_empty());
    assert_eq!(store.outbox_counts().await.unwrap(), vec![]);
}

macro_rules! on_both_backends {
    ($($scenario:ident),+ $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    let db = super::TestDb::sqlite();
                    super::$scenario(&db).await;
                }
            )+
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    if let Some(db) = super::TestDb::postgres().await {
                        super::$scenario(&db).await;
                    }
                }
            )+
        }
    };
}

on_both_backends!(
    notifications_are_deduplicated_and_each_is_claimed_by_one_worker,
    a_worker_whose_lease_ran_out_cannot_finish_and_the_effect_is_recorded_once,
    due_watches_are_claimed_by_one_replica_and_released_for_later,
    a_resync_commits_new_events_and_its_delta_link_together,
    migrations_are_idempotent_when_connecting_twice,
    a_closed_store_answers_unavailable,
    a_pending_connect_is_single_use_and_expires,
    a_pending_connect_is_taken_once_under_concurrency,
    a_saved_account_reads_back_decrypted,
    the_raw_rows_contain_neither_the_refresh_token_nor_the_verifier_in_any_encoding,
    saving_again_replaces_the_account_and_keeps_its_creation_time,
    revoking_hides_the_account_and_listing_shows_it_revoked,
    rotating_keys_keeps_old_rows_readable_and_reencrypt_moves_them_to_the_active_key,
    reencrypting_many_rows_goes_through_every_page,
    a_row_whose_key_is_missing_reads_as_corrupt_not_a_panic,
    a_ciphertext_copied_to_another_row_does_not_decrypt,
    the_dev_key_file_is_created_with_mode_0600_and_reused,
);

// ---------------------------------------------------------------------------------------------
// Backend-specific
// ---------------------------------------------------------------------------------------------

fn postgres_config(url: String) -> StoreConfig {
    StoreConfig {
        url,
        max_connections: 2,
        encryption: EncryptionConfig {
            keys: [("k1".to_owned(), random_key())].into(),
            active_key: None,
        },
    }
}

async fn assert_unavailable_quickly(url: String) {
    let started = Instant::now();
    let result = Store::connect(&postgres_config(url), None).await;
    let elapsed = started.elapsed();
    match result {
        Err(StoreError::Unavailable(message)) => {
            assert!(
                !message.contains("pw-secret"),
                "no password in errors: {message}"
            );
            assert!(
                message.contains("***"),
                "the URL is shown redacted: {message}"
            );
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
    assert!(elapsed < Duration::from_millis(5_900), "took {elapsed:?}");
}

#[tokio::test]
async fn a_store_whose_postgres_server_is_unreachable_is_unavailable_within_five_seconds() {
    // Refused: a port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let refused = format!("postgres://gw:pw-secret@127.0.0.1:{port}/gateway");
    // Silent: a listener that accepts (in the kernel's backlog) and never answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_url = format!(
        "postgres://gw:pw-secret@127.0.0.1:{}/gateway",
        silent.local_addr().unwrap().port()
    );
    tokio::join!(
        assert_unavailable_quickly(refused),
        assert_unavailable_quickly(silent_url)
    );
    drop(silent);
}

#[tokio::test]
async fn an_in_memory_sqlite_store_works_with_a_single_connection() {
    let config = StoreConfig {
        url: "sqlite::memory:".into(),
        ..postgres_config(String::new())
    };
    let store = Store::connect(&config, None).await.unwrap();
    let saved = account("crm", "u-mem");
    store.save_connected_account(&saved).await.unwrap();
    // Several sequential and concurrent uses see the same database.
    let (a, b) = tokio::join!(
        store.connected_account("crm", "u-mem"),
        store.list_connected_accounts("crm")
    );
    assert_same_account(&a.unwrap().unwrap(), &saved);
    assert_eq!(b.unwrap().len(), 1);
}

#[tokio::test]
async fn a_sqlite_path_that_cannot_be_created_is_a_config_error() {
    let dir = temp_dir();
    let file = dir.join("not-a-directory");
    std::fs::write(&file, b"x").unwrap();
    let config = StoreConfig {
        url: format!("sqlite://{}/gateway.db", file.display()),
        ..postgres_config(String::new())
    };
    let result = Store::connect(&config, None).await;
    let _ = std::fs::remove_dir_all(&dir);
    match result {
        Err(StoreError::Config(m)) => {
            assert!(m.starts_with("store.url: cannot create directory"), "{m}")
        }
        other => panic!("expected Config, got {other:?}"),
    }
}

#[tokio::test]
async fn an_invalid_configuration_is_refused_before_connecting() {
    let mut config = StoreConfig::default();
    config
        .encryption
        .keys
        .insert("k1".into(), "too-short".into());
    match Store::connect(&config, None).await {
        Err(StoreError::Config(m)) => assert!(
            m.contains("store.encryption.keys.k1: must be base64 of 32 bytes"),
            "{m}"
        ),
        other => panic!("expected Config, got {other:?}"),
    }
}

// Small helper used above: what a `PendingConnect` reads back as (times in microseconds).
trait TruncatedTime {
    fn clone_with_truncated_time(&self) -> Self;
}
impl TruncatedTime for PendingConnect {
    fn clone_with_truncated_time(&self) -> Self {
        let mut p = self.clone();
        let t = p.expires_at;
        p.expires_at = t.replace_microsecond(t.microsecond()).unwrap();
        p
    }
}

// Consumer webhooks and their deliveries, with the fixtures and the macro above.
#[path = "store/deliveries.rs"]
mod deliveries;
