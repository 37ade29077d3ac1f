//! `[store]` configuration: where the database is and how secrets in it are encrypted.
//!
//! ```toml
//! [store]
//! url = "postgres://gateway@db.internal/gateway"   # default: sqlite://.m365gw/gateway.db
//! max_connections = 8
//! [store.encryption]
//! active_key = "2026-11"
//! keys = { "2026-11" = "…base64 of 32 random bytes…", "2026-05" = "…old key, still listed…" }
//! ```
//!
//! Keys are secrets: pass them through the environment (`M365GW_STORE__ENCRYPTION__KEYS__2026-11`)
//! rather than a checked-in file. `Debug` hides them and the URL's password.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use sqlx::postgres::PgConnectOptions;
use sqlx::sqlite::SqliteConnectOptions;

use super::cipher::{decode_key, is_placeholder_key, valid_key_id};

pub const DEFAULT_URL: &str = "sqlite://.m365gw/gateway.db";
pub const DEFAULT_MAX_CONNECTIONS: u32 = 8;

#[derive(Clone, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct StoreConfig {
    /// `sqlite://path/to/file.db` (created if missing, WAL, busy timeout 5s, foreign keys on)
    /// or `postgres://…`.
    pub url: String,
    /// Connections in the pool.
    pub max_connections: u32,
    pub encryption: EncryptionConfig,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            url: DEFAULT_URL.to_owned(),
            max_connections: DEFAULT_MAX_CONNECTIONS,
            encryption: EncryptionConfig::default(),
        }
    }
}

#[derive(Clone, Default, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct EncryptionConfig {
    /// Key id → base64 of 32 random bytes. Old keys stay listed so old rows can be read.
    /// Serialized in full (figment layers configs through serialization); `Debug` hides them.
    pub keys: BTreeMap<String, String>,
    /// Id of the key new rows are encrypted with. May be omitted when exactly one key is listed.
    pub active_key: Option<String>,
}

/// The database a URL selects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BackendKind {
    Sqlite,
    Postgres,
}

impl BackendKind {
    pub(crate) fn of(url: &str) -> Option<Self> {
        if url.starts_with("sqlite:") {
            Some(BackendKind::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Some(BackendKind::Postgres)
        } else {
            None
        }
    }
}

impl StoreConfig {
    /// Appends one message per problem, each starting with the key it is about
    /// (`store.url: …`, `store.encryption.keys.k1: …`). Never quotes a key or a password.
    pub fn validate(&self, production: bool, problems: &mut Vec<String>) {
        match BackendKind::of(&self.url) {
            None if self.url.trim().is_empty() => problems.push("store.url: must not be empty".into()),
            None => {
                let scheme = self.url.split_once(':').map_or("", |(s, _)| s);
                let scheme: String = scheme.chars().filter(|c| c.is_ascii_alphanumeric()).take(20).collect();
                problems.push(format!(
                    "store.url: must start with sqlite:// or postgres:// (got scheme '{scheme}')"
                ));
            }
            Some(BackendKind::Sqlite) => match SqliteConnectOptions::from_str(&self.url) {
                Err(e) => problems.push(format!("store.url: not a valid SQLite URL: {e}")),
                Ok(_) if production && is_sqlite_memory(&self.url) => problems.push(
                    "store.url: an in-memory SQLite database forgets everything on restart; not allowed with production = true".into(),
                ),
                Ok(_) => {}
            },
            Some(BackendKind::Postgres) => {
                if let Err(e) = PgConnectOptions::from_str(&self.url) {
                    problems.push(format!("store.url: not a valid PostgreSQL URL: {e}"));
                }
            }
        }
        if self.max_connections == 0 {
            problems.push("store.max_connections: must be at least 1".into());
        }
        self.encryption.validate_into(problems);
        if production {
            for (id, value) in &self.encryption.keys {
                if decode_key(value).is_ok_and(|key| is_placeholder_key(&key)) {
                    problems.push(format!(
                        "store.encryption.keys.{id}: is not a random key (all 32 bytes are equal); production = true needs a random one"
                    ));
                }
            }
        }
        if production && self.encryption.keys.is_empty() {
            problems.push(
                "store.encryption.keys: production = true needs an encryption key (store.encryption.keys.<id> = base64 of 32 random bytes; generated dev keys are for development only)".into(),
            );
        }
    }

    /// "sqlite" | "postgres" | None for an unsupported URL.
    pub fn backend(&self) -> Option<&'static str> {
        BackendKind::of(&self.url).map(|k| match k {
            BackendKind::Sqlite => "sqlite",
            BackendKind::Postgres => "postgres",
        })
    }

    /// The URL with any password replaced by `***`, for logs.
    pub fn redacted_url(&self) -> String {
        redact_url(&self.url)
    }
}

impl EncryptionConfig {
    pub(crate) fn validate_into(&self, problems: &mut Vec<String>) {
        for (id, value) in &self.keys {
            if !valid_key_id(id) {
                let shown: String = id.chars().take(64).collect();
                problems.push(format!(
                    "store.encryption.keys.{shown}: key ids are 1 to 64 characters of A-Z a-z 0-9 . _ -"
                ));
            }
            if let Err(message) = decode_key(value) {
                problems.push(format!("store.encryption.keys.{id}: {message}"));
            }
        }
        match &self.active_key {
            Some(active) if !self.keys.contains_key(active) => problems.push(format!(
                "store.encryption.active_key: no key named '{active}' in store.encryption.keys"
            )),
            None if self.keys.len() > 1 => problems.push(
                "store.encryption.active_key: required when several keys are listed (name the one new rows are encrypted with)".into(),
            ),
            _ => {}
        }
    }

    /// `active_key`, or the only key when just one is listed.
    pub(crate) fn effective_active_key(&self) -> Option<&str> {
        match &self.active_key {
            Some(active) => Some(active),
            None if self.keys.len() == 1 => self.keys.keys().next().map(String::as_str),
            None => None,
        }
    }
}

impl fmt::Debug for StoreConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoreConfig")
            .field("url", &redact_url(&self.url))
            .field("max_connections", &self.max_connections)
            .field("encryption", &self.encryption)
            .finish()
    }
}

impl fmt::Debug for EncryptionConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        struct Hidden;
        impl fmt::Debug for Hidden {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("***")
            }
        }
        f.debug_struct("EncryptionConfig")
            .field(
                "keys",
                &self
                    .keys
                    .keys()
                    .map(|k| (k, Hidden))
                    .collect::<BTreeMap<_, _>>(),
            )
            .field("active_key", &self.active_key)
            .finish()
    }
}

pub(crate) fn is_sqlite_memory(url: &str) -> bool {
    url.contains(":memory:") || url.contains("mode=memory")
}

/// Replaces the password of `scheme://user:password@host/…` and any `password=` query value.
pub(crate) fn redact_url(url: &str) -> String {
    let mut out = url.to_owned();
    if let Some(start) = out.find("://").map(|i| i + 3) {
        let end = out[start..]
            .find(['/', '?', '#'])
            .map_or(out.len(), |i| start + i);
        if let Some(at) = out[start..end].rfind('@').map(|i| start + i)
            && let Some(colon) = out[start..at].find(':').map(|i| start + i)
        {
            out.replace_range(colon + 1..at, "***");
        }
    }
    if let Some(q) = out.find('?') {
        let (head, query) = out.split_at(q + 1);
        let query: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
                _ => pair.to_owned(),
            })
            .collect();
        out = format!("{head}{}", query.join("&"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const K1: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    const K2: &str = "ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8=";

    fn problems(config: &StoreConfig, production: bool) -> Vec<String> {
        let mut p = Vec::new();
        config.validate(production, &mut p);
        p
    }

    fn with_keys(keys: &[(&str, &str)], active: Option<&str>) -> StoreConfig {
        StoreConfig {
            encryption: EncryptionConfig {
                keys: keys
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect(),
                active_key: active.map(str::to_owned),
            },
            ..StoreConfig::default()
        }
    }

    #[test]
    fn the_default_is_valid_for_development_only() {
        assert_eq!(
            problems(&StoreConfig::default(), false),
            Vec::<String>::new()
        );
        let p = problems(&StoreConfig::default(), true);
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(
            p[0].starts_with("store.encryption.keys: production = true needs an encryption key"),
            "{p:?}"
        );
    }

    #[test]
    fn one_good_key_is_enough_in_production_and_becomes_active() {
        let config = with_keys(&[("k1", K1)], None);
        assert_eq!(problems(&config, true), Vec::<String>::new());
        assert_eq!(config.encryption.effective_active_key(), Some("k1"));
    }

    #[test]
    fn bad_keys_are_named_by_their_config_key() {
        let short = "AAECAwQFBgcICQoLDA0ODw=="; // 16 bytes
        let p = problems(
            &with_keys(&[("k1", short), ("k2", "%%%"), ("k3", K1)], Some("k3")),
            false,
        );
        assert_eq!(
            p,
            vec![
                "store.encryption.keys.k1: must be base64 of 32 bytes (e.g. `head -c 32 /dev/urandom | base64`)",
                "store.encryption.keys.k2: must be base64 of 32 bytes (e.g. `head -c 32 /dev/urandom | base64`)",
            ]
        );
        assert!(
            p.iter().all(|m| !m.contains(short)),
            "never quote key material"
        );
    }

    #[test]
    fn placeholder_keys_are_refused_in_production_only() {
        let zero = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
        let config = with_keys(&[("k1", zero)], None);
        assert_eq!(problems(&config, false), Vec::<String>::new());
        assert_eq!(
            problems(&config, true),
            vec![
                "store.encryption.keys.k1: is not a random key (all 32 bytes are equal); production = true needs a random one"
            ]
        );
    }

    #[test]
    fn active_key_must_name_a_listed_key() {
        let p = problems(&with_keys(&[("k1", K1)], Some("k2")), false);
        assert_eq!(
            p,
            vec!["store.encryption.active_key: no key named 'k2' in store.encryption.keys"]
        );
        let p = problems(&with_keys(&[], Some("k1")), false);
        assert_eq!(
            p,
            vec!["store.encryption.active_key: no key named 'k1' in store.encryption.keys"]
        );
    }

    #[test]
    fn several_keys_need_an_active_key() {
        let p = problems(&with_keys(&[("k1", K1), ("k2", K2)], None), false);
        assert_eq!(p.len(), 1);
        assert!(
            p[0].starts_with("store.encryption.active_key: required when several keys are listed")
        );
        assert_eq!(
            problems(&with_keys(&[("k1", K1), ("k2", K2)], Some("k2")), true),
            Vec::<String>::new()
        );
    }

    #[test]
    fn key_ids_must_be_plain() {
        let p = problems(&with_keys(&[("bad id", K1)], Some("bad id")), false);
        assert_eq!(
            p,
            vec![
                "store.encryption.keys.bad id: key ids are 1 to 64 characters of A-Z a-z 0-9 . _ -"
            ]
        );
    }

    #[test]
    fn urls_must_be_sqlite_or_postgres() {
        let mut config = StoreConfig {
            url: "mysql://u:pw@h/db".into(),
            ..StoreConfig::default()
        };
        assert_eq!(
            problems(&config, false),
            vec!["store.url: must start with sqlite:// or postgres:// (got scheme 'mysql')"]
        );
        config.url = String::new();
        assert_eq!(
            problems(&config, false),
            vec!["store.url: must not be empty"]
        );
        config.url = "sqlite://x.db?mode=bogus".into();
        let p = problems(&config, false);
        assert!(
            p.len() == 1 && p[0].starts_with("store.url: not a valid SQLite URL"),
            "{p:?}"
        );
        config.url = "postgres://u:pw@host:notaport/db".into();
        let p = problems(&config, false);
        assert!(
            p.len() == 1 && p[0].starts_with("store.url: not a valid PostgreSQL URL"),
            "{p:?}"
        );
        assert!(!p[0].contains("pw"), "{p:?}");
        for ok in [
            "sqlite://.m365gw/gateway.db",
            "sqlite::memory:",
            "postgres://postgres@127.0.0.1:5432/test",
            "postgresql://h/db",
        ] {
            config.url = ok.into();
            assert_eq!(problems(&config, false), Vec::<String>::new(), "{ok}");
        }
    }

    #[test]
    fn in_memory_sqlite_is_refused_in_production() {
        let config = StoreConfig {
            url: "sqlite::memory:".into(),
            ..with_keys(&[("k1", K1)], None)
        };
        let p = problems(&config, true);
        assert_eq!(p.len(), 1);
        assert!(p[0].starts_with("store.url: an in-memory SQLite database"));
    }

    #[test]
    fn max_connections_must_be_positive() {
        let config = StoreConfig {
            max_connections: 0,
            ..StoreConfig::default()
        };
        assert_eq!(
            problems(&config, false),
            vec!["store.max_connections: must be at least 1"]
        );
    }

    #[test]
    fn debug_hides_keys_and_passwords() {
        let config = StoreConfig {
            url: "postgres://gw:s3cr3t@db:5432/gw?sslmode=require&password=other".into(),
            ..with_keys(&[("k1", K1)], Some("k1"))
        };
        let text = format!("{config:?}");
        assert!(
            !text.contains(K1) && !text.contains("s3cr3t") && !text.contains("other"),
            "{text}"
        );
        assert!(
            text.contains("k1") && text.contains("postgres://gw:***@db:5432/gw"),
            "{text}"
        );
    }

    #[test]
    fn redaction_leaves_urls_without_passwords_alone() {
        for url in [
            "sqlite://.m365gw/gateway.db",
            "postgres://postgres@127.0.0.1:5432/test",
            "sqlite::memory:",
        ] {
            assert_eq!(redact_url(url), url);
        }
        assert_eq!(redact_url("postgres://a:b@h/d"), "postgres://a:***@h/d");
    }

    #[test]
    fn unknown_fields_are_rejected_and_missing_ones_defaulted() {
        let config: StoreConfig =
            serde_json::from_str(r#"{"encryption":{"keys":{"k1":"x"}}}"#).unwrap();
        assert_eq!(config.url, DEFAULT_URL);
        assert_eq!(config.max_connections, DEFAULT_MAX_CONNECTIONS);
        assert!(serde_json::from_str::<StoreConfig>(r#"{"uri":"sqlite::memory:"}"#).is_err());
        assert!(serde_json::from_str::<StoreConfig>(r#"{"encryption":{"key":"x"}}"#).is_err());
    }
}
