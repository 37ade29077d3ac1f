//! Time zones as Outlook names them (Windows names such as `Pacific Standard Time`, or IANA
//! names such as `Europe/Berlin`) and Graph's `dateTimeTimeZone` values
//! (`{"dateTime": "2024-05-01T09:00:00.0000000", "timeZone": "UTC"}`: 7 fractional digits,
//! no offset).

use jiff::Timestamp;
use jiff::civil::DateTime;
use jiff::tz::TimeZone;

use super::windows_zones::WINDOWS_ZONES;

/// A zone by Windows or IANA name (case-insensitive), `None` when unknown.
pub(crate) fn resolve(name: &str) -> Option<TimeZone> {
    let name = name.trim();
    if name.is_empty() {
        return None;
    }
    if name.eq_ignore_ascii_case("UTC")
        || name.eq_ignore_ascii_case("tzone://Microsoft/Utc")
        || name.eq_ignore_ascii_case("Coordinated Universal Time")
    {
        return Some(TimeZone::UTC);
    }
    if let Some((_, iana)) = WINDOWS_ZONES
        .iter()
        .find(|(windows, _)| windows.eq_ignore_ascii_case(name))
    {
        return TimeZone::get(iana).ok();
    }
    // IANA names contain a slash (or are `UTC`-like, handled above); refuse the rest so
    // abbreviations such as `PST` or `CET` (also tzdb entries) are not taken as zones.
    if !name.contains('/') {
        return None;
    }
    TimeZone::get(name).ok()
}

/// The civil time of `unix` in `tz`.
pub(crate) fn local(unix: i64, tz: &TimeZone) -> DateTime {
    let ts = Timestamp::from_second(unix).unwrap_or(Timestamp::UNIX_EPOCH);
    tz.to_datetime(ts)
}

/// The instant of a civil time in `tz` (a time in a DST gap moves forward, an ambiguous
/// one takes the earlier offset, as Outlook does).
pub(crate) fn instant(dt: DateTime, tz: &TimeZone) -> i64 {
    tz.to_ambiguous_timestamp(dt)
        .compatible()
        .map(|t| t.as_second())
        .unwrap_or(0)
}

/// `2024-05-01T09:00:00.0000000`.
pub(crate) fn format_local(dt: DateTime) -> String {
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.0000000",
        dt.year(),
        dt.month(),
        dt.day(),
        dt.hour(),
        dt.minute(),
        dt.second()
    )
}

/// `{"dateTime": …, "timeZone": name}` of `unix` in `tz`.
pub(crate) fn date_time_time_zone(unix: i64, tz: &TimeZone, name: &str) -> serde_json::Value {
    serde_json::json!({
        "dateTime": format_local(local(unix, tz)),
        "timeZone": name,
    })
}

/// A civil date-time as Graph accepts it in `dateTimeTimeZone.dateTime`:
/// `2024-05-01T09:00:00`, with or without fractional seconds; an offset or `Z`, if present,
/// is honoured (and wins over the zone).
pub(crate) fn parse_local(text: &str, tz: &TimeZone) -> Option<i64> {
    let text = text.trim();
    if let Ok(ts) = text.parse::<Timestamp>() {
        return Some(ts.as_second());
    }
    if let Ok(dt) = text.parse::<DateTime>() {
        return Some(instant(dt, tz));
    }
    // A bare date means midnight.
    text.parse::<jiff::civil::Date>()
        .ok()
        .map(|d| instant(d.to_datetime(jiff::civil::Time::midnight()), tz))
}

/// An ISO 8601 query value (`startDateTime`): the offset wins; no offset means UTC.
pub(crate) fn parse_query_instant(text: &str) -> Option<i64> {
    parse_local(text, &TimeZone::UTC)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_windows_zone_resolves_in_the_bundled_database() {
        for (windows, iana) in WINDOWS_ZONES {
            assert!(TimeZone::get(iana).is_ok(), "{windows} → {iana}");
            assert!(resolve(windows).is_some(), "{windows}");
        }
        assert!(resolve("pacific standard time").is_some());
        assert!(resolve("Europe/Berlin").is_some());
        assert!(resolve("Mars/Olympus_Mons").is_none());
        assert!(resolve("PST").is_none());
        assert!(resolve("").is_none());
    }

    #[test]
    fn local_times_convert_with_daylight_saving() {
        let la = resolve("Pacific Standard Time").expect("zone");
        // 2024-07-01T09:00 PDT = 16:00Z; 2024-01-15T09:00 PST = 17:00Z.
        let summer = parse_local("2024-07-01T09:00:00", &la).expect("parse");
        assert_eq!(
            format_local(local(summer, &TimeZone::UTC)),
            "2024-07-01T16:00:00.0000000"
        );
        let winter = parse_local("2024-01-15T09:00:00.0000000", &la).expect("parse");
        assert_eq!(
            format_local(local(winter, &TimeZone::UTC)),
            "2024-01-15T17:00:00.0000000"
        );
        let with_offset = parse_query_instant("2019-11-08T19:00:00-08:00").expect("parse");
        assert_eq!(
            format_local(local(with_offset, &TimeZone::UTC)),
            "2019-11-09T03:00:00.0000000"
        );
        assert!(parse_query_instant("yesterday").is_none());
    }
}
