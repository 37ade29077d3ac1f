//! `Ts`: a UTC instant that binds and reads the same way on both backends.
//!
//! - PostgreSQL: `TIMESTAMPTZ` (microseconds, stored as UTC).
//! - SQLite has no time type. sqlx's own `OffsetDateTime` encoding writes RFC 3339 with a
//!   variable number of fractional digits, which does not sort as text, so `expires_at <= $1`
//!   would be wrong. `Ts` writes a fixed-width UTC form instead,
//!   `2026-11-27T10:00:00.123456Z`, which sorts chronologically as text and which SQLite's
//!   date functions understand.
//!
//! Both truncate to microseconds, so a value reads back equal on both backends.

use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::postgres::{PgArgumentBuffer, PgTypeInfo, PgValueRef, Postgres};
use sqlx::sqlite::{Sqlite, SqliteArgumentsBuffer, SqliteTypeInfo, SqliteValueRef};
use sqlx::{Decode, Encode, Type};
use time::format_description::BorrowedFormatItem;
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{OffsetDateTime, UtcOffset};

const SQLITE_FORMAT: &[BorrowedFormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z");

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Ts(pub(crate) OffsetDateTime);

impl Ts {
    pub(crate) fn new(t: OffsetDateTime) -> Ts {
        let t = t.to_offset(UtcOffset::UTC);
        let micros = t.microsecond();
        Ts(t.replace_microsecond(micros)
            .expect("a microsecond count read from a valid time is valid"))
    }

    pub(crate) fn now() -> Ts {
        Ts::new(OffsetDateTime::now_utc())
    }

    fn to_sqlite_text(self) -> Result<String, BoxDynError> {
        Ok(self.0.format(SQLITE_FORMAT)?)
    }

    fn from_sqlite_text(text: &str) -> Result<Ts, BoxDynError> {
        let t = match time::PrimitiveDateTime::parse(text, SQLITE_FORMAT) {
            Ok(t) => t.assume_utc(),
            // Tolerate rows written by hand (sqlite3 shell, fixtures) in RFC 3339.
            Err(_) => OffsetDateTime::parse(text, &Rfc3339)?,
        };
        Ok(Ts::new(t))
    }
}

impl Type<Sqlite> for Ts {
    fn type_info() -> SqliteTypeInfo {
        <String as Type<Sqlite>>::type_info()
    }
    fn compatible(ty: &SqliteTypeInfo) -> bool {
        <String as Type<Sqlite>>::compatible(ty)
    }
}

impl Encode<'_, Sqlite> for Ts {
    fn encode_by_ref(&self, buf: &mut SqliteArgumentsBuffer) -> Result<IsNull, BoxDynError> {
        Encode::<Sqlite>::encode(self.to_sqlite_text()?, buf)
    }
}

impl<'r> Decode<'r, Sqlite> for Ts {
    fn decode(value: SqliteValueRef<'r>) -> Result<Self, BoxDynError> {
        let text = <String as Decode<Sqlite>>::decode(value)?;
        Ts::from_sqlite_text(&text)
    }
}

impl Type<Postgres> for Ts {
    fn type_info() -> PgTypeInfo {
        <OffsetDateTime as Type<Postgres>>::type_info()
    }
    fn compatible(ty: &PgTypeInfo) -> bool {
        <OffsetDateTime as Type<Postgres>>::compatible(ty)
    }
}

impl Encode<'_, Postgres> for Ts {
    fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
        <OffsetDateTime as Encode<Postgres>>::encode_by_ref(&self.0, buf)
    }
}

impl<'r> Decode<'r, Postgres> for Ts {
    fn decode(value: PgValueRef<'r>) -> Result<Self, BoxDynError> {
        <OffsetDateTime as Decode<Postgres>>::decode(value).map(Ts::new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn sqlite_text_is_fixed_width_utc_and_sorts_like_time() {
        let a = Ts::new(datetime!(2026-11-27 10:00:00.5 +01:00));
        let b = Ts::new(datetime!(2026-11-27 09:00:00.123456789 UTC));
        let c = Ts::new(datetime!(2026-11-27 09:00:01 UTC));
        let (ta, tb, tc) = (
            a.to_sqlite_text().unwrap(),
            b.to_sqlite_text().unwrap(),
            c.to_sqlite_text().unwrap(),
        );
        assert_eq!(ta, "2026-11-27T09:00:00.500000Z");
        assert_eq!(tb, "2026-11-27T09:00:00.123456Z");
        assert_eq!(tc, "2026-11-27T09:00:01.000000Z");
        assert!(tb < ta && ta < tc);
    }

    #[test]
    fn sqlite_text_round_trips_and_rfc3339_is_accepted() {
        let t = Ts::new(datetime!(2026-01-02 03:04:05.678901 UTC));
        assert_eq!(
            Ts::from_sqlite_text(&t.to_sqlite_text().unwrap()).unwrap(),
            t
        );
        let r = Ts::from_sqlite_text("2026-01-02T04:04:05.678901+01:00").unwrap();
        assert_eq!(r, t);
        assert!(Ts::from_sqlite_text("yesterday").is_err());
    }

    #[test]
    fn new_truncates_to_microseconds_in_utc() {
        let t = Ts::new(datetime!(2026-01-02 03:04:05.123456789 -05:00));
        assert_eq!(t.0.offset(), UtcOffset::UTC);
        assert_eq!(t.0.nanosecond(), 123_456_000);
        assert_eq!(t.0.hour(), 8);
    }
}
