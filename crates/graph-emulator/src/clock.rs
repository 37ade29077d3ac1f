//! Time formats the wire protocols use. Graph and Entra each have their own.

use time::OffsetDateTime;
use time::macros::format_description;

pub(crate) fn now_unix() -> i64 {
    OffsetDateTime::now_utc().unix_timestamp()
}

/// `2021-03-14T09:27:31Z`: Graph's `DateTimeOffset` values (createdDateTime, ...).
pub(crate) fn format_utc_seconds(unix: i64) -> String {
    let fmt = format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
    OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| t.format(&fmt).ok())
        .unwrap_or_else(|| "1970-01-01T00:00:00Z".to_string())
}

/// `2021-04-20T17:22:30`: the `innerError.date` of a Graph error, which has no `Z`.
pub(crate) fn graph_error_date() -> String {
    let fmt = format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]");
    OffsetDateTime::now_utc()
        .format(&fmt)
        .unwrap_or_else(|_| "1970-01-01T00:00:00".to_string())
}

/// `2016-01-09 02:02:12Z`: the `timestamp` of an Entra token-endpoint error.
pub(crate) fn entra_timestamp() -> String {
    let fmt = format_description!("[year]-[month]-[day] [hour]:[minute]:[second]Z");
    OffsetDateTime::now_utc()
        .format(&fmt)
        .unwrap_or_else(|_| "1970-01-01 00:00:00Z".to_string())
}

/// `Sun, 06 Nov 1994 08:49:37 GMT`: an RFC 7231 IMF-fixdate (`Retry-After`, `Date`).
pub(crate) fn http_date(unix: i64) -> String {
    let fmt = format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| t.format(&fmt).ok())
        .unwrap_or_else(|| "Thu, 01 Jan 1970 00:00:00 GMT".to_string())
}

#[cfg(test)]
mod tests {
    #[test]
    fn http_dates_are_imf_fixdates() {
        assert_eq!(
            super::http_date(784_111_777),
            "Sun, 06 Nov 1994 08:49:37 GMT"
        );
    }
}
