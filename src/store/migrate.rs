//! Schema migrations, one set per backend, embedded in the binary.
//!
//! Applied by sqlx's own `Migrator`, built at run time from in-memory `Migration`s
//! (`Migrator::with_migrations`) over `include_str!`ed files: `sqlx::migrate!()` would need
//! sqlx's `macros` feature, which compiles the drivers a second time for the host (see
//! rust-stack.md pitfall 2). sqlx's runner rather than one of our own because it already does
//! what we would have to write and test: the `_sqlx_migrations` table with checksums (an edited
//! migration is refused, not silently skipped), one transaction per migration, dirty-state
//! detection, and on PostgreSQL an advisory lock, so replicas that start together migrate once.
//!
//! Adding tables (subscriptions, delta links, the notification outbox …): write
//! `migrations/{sqlite,postgres}/000N_name.sql` with the same tables on both sides and add one
//! line to each list below. Never edit a released migration.

use sqlx::SqlSafeStr;
use sqlx::migrate::{Migration, MigrationType, Migrator};

use super::config::BackendKind;

struct Embedded {
    version: i64,
    description: &'static str,
    sql: &'static str,
}

const SQLITE: &[Embedded] = &[
    Embedded {
        version: 1,
        description: "init",
        sql: include_str!("../../migrations/sqlite/0001_init.sql"),
    },
    Embedded {
        version: 2,
        description: "notifications",
        sql: include_str!("../../migrations/sqlite/0002_notifications.sql"),
    },
];

const POSTGRES: &[Embedded] = &[
    Embedded {
        version: 1,
        description: "init",
        sql: include_str!("../../migrations/postgres/0001_init.sql"),
    },
    Embedded {
        version: 2,
        description: "notifications",
        sql: include_str!("../../migrations/postgres/0002_notifications.sql"),
    },
];

pub(crate) fn migrator(kind: BackendKind) -> Migrator {
    let set = match kind {
        BackendKind::Sqlite => SQLITE,
        BackendKind::Postgres => POSTGRES,
    };
    Migrator::with_migrations(
        set.iter()
            .map(|m| {
                Migration::new(
                    m.version,
                    m.description.into(),
                    MigrationType::Simple,
                    m.sql.into_sql_str(),
                    false,
                )
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tables(sql: &str) -> Vec<String> {
        let mut names: Vec<String> = sql
            .lines()
            .filter_map(|l| l.trim().strip_prefix("CREATE TABLE "))
            .map(|rest| rest.split_whitespace().next().unwrap_or("").to_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn both_backends_have_the_same_migrations_and_tables() {
        assert_eq!(SQLITE.len(), POSTGRES.len());
        for (s, p) in SQLITE.iter().zip(POSTGRES) {
            assert_eq!((s.version, s.description), (p.version, p.description));
            assert_eq!(tables(s.sql), tables(p.sql), "migration {}", s.version);
        }
        let versions: Vec<i64> = migrator(BackendKind::Sqlite)
            .iter()
            .map(|m| m.version)
            .collect();
        assert_eq!(versions, (1..=SQLITE.len() as i64).collect::<Vec<_>>());
    }
}
