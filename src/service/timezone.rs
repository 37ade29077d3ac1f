//! Time zone names as Outlook and callers write them: IANA (`Europe/Berlin`) or Windows
//! (`W. Europe Standard Time`). Graph answers calendar times as a wall-clock `dateTime`
//! (7 fractional digits, no offset) plus the zone's name; the gateway turns them into
//! ISO 8601 instants with an offset, which needs the zone's rules: the IANA database
//! bundled by `jiff`, and the Windows → IANA table below (no crate keeps it).

use jiff::civil::DateTime;
use jiff::tz::TimeZone;
use jiff::{Timestamp, Zoned};

use super::ServiceError;

/// Windows zone id → IANA zone, from CLDR `windowsZones.xml`, territory "001" (the
/// zone's primary location). Written out by hand: no maintained crate ships it.
const WINDOWS_ZONES: &[(&str, &str)] = &[
    ("Dateline Standard Time", "Etc/GMT+12"),
    ("UTC-11", "Etc/GMT+11"),
    ("Aleutian Standard Time", "America/Adak"),
    ("Hawaiian Standard Time", "Pacific/Honolulu"),
    ("Marquesas Standard Time", "Pacific/Marquesas"),
    ("Alaskan Standard Time", "America/Anchorage"),
    ("UTC-09", "Etc/GMT+9"),
    ("Pacific Standard Time (Mexico)", "America/Tijuana"),
    ("UTC-08", "Etc/GMT+8"),
    ("Pacific Standard Time", "America/Los_Angeles"),
    ("US Mountain Standard Time", "America/Phoenix"),
    ("Mountain Standard Time (Mexico)", "America/Mazatlan"),
    ("Mountain Standard Time", "America/Denver"),
    ("Yukon Standard Time", "America/Whitehorse"),
    ("Central America Standard Time", "America/Guatemala"),
    ("Central Standard Time", "America/Chicago"),
    ("Easter Island Standard Time", "Pacific/Easter"),
    ("Central Standard Time (Mexico)", "America/Mexico_City"),
    ("Canada Central Standard Time", "America/Regina"),
    ("SA Pacific Standard Time", "America/Bogota"),
    ("Eastern Standard Time (Mexico)", "America/Cancun"),
    ("Eastern Standard Time", "America/New_York"),
    ("Haiti Standard Time", "America/Port-au-Prince"),
    ("Cuba Standard Time", "America/Havana"),
    ("US Eastern Standard Time", "America/Indiana/Indianapolis"),
    ("Turks And Caicos Standard Time", "America/Grand_Turk"),
    ("Paraguay Standard Time", "America/Asuncion"),
    ("Atlantic Standard Time", "America/Halifax"),
    ("Venezuela Standard Time", "America/Caracas"),
    ("Central Brazilian Standard Time", "America/Cuiaba"),
    ("SA Western Standard Time", "America/La_Paz"),
    ("Pacific SA Standard Time", "America/Santiago"),
    ("Newfoundland Standard Time", "America/St_Johns"),
    ("Tocantins Standard Time", "America/Araguaina"),
    ("E. South America Standard Time", "America/Sao_Paulo"),
    ("SA Eastern Standard Time", "America/Cayenne"),
    ("Argentina Standard Time", "America/Argentina/Buenos_Aires"),
    ("Greenland Standard Time", "America/Nuuk"),
    ("Montevideo Standard Time", "America/Montevideo"),
    ("Magallanes Standard Time", "America/Punta_Arenas"),
    ("Saint Pierre Standard Time", "America/Miquelon"),
    ("Bahia Standard Time", "America/Bahia"),
    ("UTC-02", "Etc/GMT+2"),
    ("Azores Standard Time", "Atlantic/Azores"),
    ("Cape Verde Standard Time", "Atlantic/Cape_Verde"),
    ("UTC", "Etc/UTC"),
    ("GMT Standard Time", "Europe/London"),
    ("Greenwich Standard Time", "Atlantic/Reykjavik"),
    ("Sao Tome Standard Time", "Africa/Sao_Tome"),
    ("Morocco Standard Time", "Africa/Casablanca"),
    ("W. Europe Standard Time", "Europe/Berlin"),
    ("Central Europe Standard Time", "Europe/Budapest"),
    ("Romance Standard Time", "Europe/Paris"),
    ("Central European Standard Time", "Europe/Warsaw"),
    ("W. Central Africa Standard Time", "Africa/Lagos"),
    ("Jordan Standard Time", "Asia/Amman"),
    ("GTB Standard Time", "Europe/Bucharest"),
    ("Middle East Standard Time", "Asia/Beirut"),
    ("Egypt Standard Time", "Africa/Cairo"),
    ("E. Europe Standard Time", "Europe/Chisinau"),
    ("Syria Standard Time", "Asia/Damascus"),
    ("West Bank Standard Time", "Asia/Hebron"),
    ("South Africa Standard Time", "Africa/Johannesburg"),
    ("FLE Standard Time", "Europe/Kyiv"),
    ("Israel Standard Time", "Asia/Jerusalem"),
    ("South Sudan Standard Time", "Africa/Juba"),
    ("Kaliningrad Standard Time", "Europe/Kaliningrad"),
    ("Sudan Standard Time", "Africa/Khartoum"),
    ("Libya Standard Time", "Africa/Tripoli"),
    ("Namibia Standard Time", "Africa/Windhoek"),
    ("Arabic Standard Time", "Asia/Baghdad"),
    ("Turkey Standard Time", "Europe/Istanbul"),
    ("Arab Standard Time", "Asia/Riyadh"),
    ("Belarus Standard Time", "Europe/Minsk"),
    ("Russian Standard Time", "Europe/Moscow"),
    ("E. Africa Standard Time", "Africa/Nairobi"),
    ("Volgograd Standard Time", "Europe/Volgograd"),
    ("Iran Standard Time", "Asia/Tehran"),
    ("Arabian Standard Time", "Asia/Dubai"),
    ("Astrakhan Standard Time", "Europe/Astrakhan"),
    ("Azerbaijan Standard Time", "Asia/Baku"),
    ("Russia Time Zone 3", "Europe/Samara"),
    ("Mauritius Standard Time", "Indian/Mauritius"),
    ("Saratov Standard Time", "Europe/Saratov"),
    ("Georgian Standard Time", "Asia/Tbilisi"),
    ("Caucasus Standard Time", "Asia/Yerevan"),
    ("Afghanistan Standard Time", "Asia/Kabul"),
    ("West Asia Standard Time", "Asia/Tashkent"),
    ("Ekaterinburg Standard Time", "Asia/Yekaterinburg"),
    ("Pakistan Standard Time", "Asia/Karachi"),
    ("Qyzylorda Standard Time", "Asia/Qyzylorda"),
    ("India Standard Time", "Asia/Kolkata"),
    ("Sri Lanka Standard Time", "Asia/Colombo"),
    ("Nepal Standard Time", "Asia/Kathmandu"),
    ("Central Asia Standard Time", "Asia/Bishkek"),
    ("Bangladesh Standard Time", "Asia/Dhaka"),
    ("Omsk Standard Time", "Asia/Omsk"),
    ("Myanmar Standard Time", "Asia/Yangon"),
    ("SE Asia Standard Time", "Asia/Bangkok"),
    ("Altai Standard Time", "Asia/Barnaul"),
    ("W. Mongolia Standard Time", "Asia/Hovd"),
    ("North Asia Standard Time", "Asia/Krasnoyarsk"),
    ("N. Central Asia Standard Time", "Asia/Novosibirsk"),
    ("Tomsk Standard Time", "Asia/Tomsk"),
    ("China Standard Time", "Asia/Shanghai"),
    ("North Asia East Standard Time", "Asia/Irkutsk"),
    ("Singapore Standard Time", "Asia/Singapore"),
    ("W. Australia Standard Time", "Australia/Perth"),
    ("Taipei Standard Time", "Asia/Taipei"),
    ("Ulaanbaatar Standard Time", "Asia/Ulaanbaatar"),
    ("Aus Central W. Standard Time", "Australia/Eucla"),
    ("Transbaikal Standard Time", "Asia/Chita"),
    ("Tokyo Standard Time", "Asia/Tokyo"),
    ("North Korea Standard Time", "Asia/Pyongyang"),
    ("Korea Standard Time", "Asia/Seoul"),
    ("Yakutsk Standard Time", "Asia/Yakutsk"),
    ("Cen. Australia Standard Time", "Australia/Adelaide"),
    ("AUS Central Standard Time", "Australia/Darwin"),
    ("E. Australia Standard Time", "Australia/Brisbane"),
    ("AUS Eastern Standard Time", "Australia/Sydney"),
    ("West Pacific Standard Time", "Pacific/Port_Moresby"),
    ("Tasmania Standard Time", "Australia/Hobart"),
    ("Vladivostok Standard Time", "Asia/Vladivostok"),
    ("Lord Howe Standard Time", "Australia/Lord_Howe"),
    ("Bougainville Standard Time", "Pacific/Bougainville"),
    ("Russia Time Zone 10", "Asia/Srednekolymsk"),
    ("Magadan Standard Time", "Asia/Magadan"),
    ("Norfolk Standard Time", "Pacific/Norfolk"),
    ("Sakhalin Standard Time", "Asia/Sakhalin"),
    ("Central Pacific Standard Time", "Pacific/Guadalcanal"),
    ("Russia Time Zone 11", "Asia/Kamchatka"),
    ("New Zealand Standard Time", "Pacific/Auckland"),
    ("UTC+12", "Etc/GMT-12"),
    ("Fiji Standard Time", "Pacific/Fiji"),
    ("Chatham Islands Standard Time", "Pacific/Chatham"),
    ("UTC+13", "Etc/GMT-13"),
    ("Tonga Standard Time", "Pacific/Tongatapu"),
    ("Samoa Standard Time", "Pacific/Apia"),
    ("Line Islands Standard Time", "Pacific/Kiritimati"),
];

/// A zone a caller or Graph named, with its rules.
#[derive(Clone, Debug)]
pub struct Zone {
    /// The name as given (what goes to Graph in `Prefer: outlook.timezone`).
    pub name: String,
    tz: TimeZone,
}

impl Zone {
    /// Resolves an IANA or Windows zone name; anything else is `BAD_USER_INPUT` naming
    /// `field`. Windows names match ignoring ASCII case, as Exchange does.
    pub fn parse(field: &str, name: &str) -> Result<Zone, ServiceError> {
        let name = name.trim();
        let unknown = || {
            ServiceError::BadInput(format!(
                "{field}: unknown time zone '{name}' (use an IANA name such as Europe/Berlin or a Windows name such as W. Europe Standard Time)"
            ))
        };
        if name.is_empty() || name.len() > 64 || name.chars().any(char::is_control) {
            return Err(unknown());
        }
        let iana = WINDOWS_ZONES
            .iter()
            .find(|(windows, _)| windows.eq_ignore_ascii_case(name))
            .map_or(name, |(_, iana)| iana);
        let tz = TimeZone::get(iana).map_err(|_| unknown())?;
        Ok(Zone {
            name: name.to_owned(),
            tz,
        })
    }

    pub fn utc() -> Zone {
        Zone {
            name: "UTC".to_owned(),
            tz: TimeZone::UTC,
        }
    }

    /// A wall-clock time in this zone (Graph's `dateTime`, up to 7 fractional digits, no
    /// offset) as an instant. A time skipped or repeated by a DST change resolves as
    /// RFC 5545 says (the later offset for gaps, the earlier for folds).
    pub fn instant(&self, wall_clock: &str) -> Result<Zoned, ServiceError> {
        let civil: DateTime = wall_clock.trim().parse().map_err(|_| {
            tracing::warn!(%wall_clock, "unusable dateTime from Graph");
            ServiceError::UpstreamBadResponse
        })?;
        self.tz
            .to_ambiguous_zoned(civil)
            .compatible()
            .map_err(|_| ServiceError::UpstreamBadResponse)
    }

    /// An instant in this zone's wall-clock time, as Graph wants it in request bodies.
    pub fn wall_clock(&self, instant: Timestamp) -> String {
        instant
            .to_zoned(self.tz.clone())
            .datetime()
            .strftime("%Y-%m-%dT%H:%M:%S%.f")
            .to_string()
    }

    pub fn tz(&self) -> &TimeZone {
        &self.tz
    }
}

/// A caller's instant: ISO 8601 with an offset (`2024-05-01T09:00:00+02:00`, `…Z`).
pub fn parse_instant(field: &str, value: &str) -> Result<Timestamp, ServiceError> {
    value.trim().parse::<Timestamp>().map_err(|_| {
        ServiceError::BadInput(format!(
            "{field} must be an ISO 8601 date-time with an offset, e.g. 2024-05-01T09:00:00+02:00, got '{value}'"
        ))
    })
}

/// A Graph `dateTimeTimeZone` as ISO 8601 with the offset it has in its zone
/// (`2024-05-01T09:00:00-07:00`).
pub fn iso_with_offset(wall_clock: &str, zone: &str) -> Result<String, ServiceError> {
    let zone = Zone::parse("timeZone", zone).map_err(|_| {
        tracing::warn!(%zone, "Graph named a time zone the gateway does not know");
        ServiceError::UpstreamBadResponse
    })?;
    let zoned = zone.instant(wall_clock)?;
    Ok(zoned.strftime("%Y-%m-%dT%H:%M:%S%:z").to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_and_iana_names_resolve_and_unknown_names_are_bad_input() {
        for name in [
            "Europe/Berlin",
            "W. Europe Standard Time",
            "pacific standard time",
            "UTC",
            "India Standard Time",
            "Etc/GMT+12",
        ] {
            assert!(Zone::parse("timeZone", name).is_ok(), "{name}");
        }
        for name in ["Mars/Olympus", "", "W. Europe Standard", "Europe/Ber\nlin"] {
            let err = Zone::parse("timeZone", name).unwrap_err();
            assert!(matches!(&err, ServiceError::BadInput(m) if m.contains("timeZone")));
        }
    }

    #[test]
    fn every_windows_zone_in_the_table_exists_in_the_bundled_database() {
        for (windows, iana) in WINDOWS_ZONES {
            assert!(TimeZone::get(iana).is_ok(), "{windows} → {iana}");
        }
    }

    #[test]
    fn graph_wall_clock_times_with_seven_digits_get_their_offset() {
        assert_eq!(
            iso_with_offset("2024-07-01T09:30:00.0000000", "Pacific Standard Time").unwrap(),
            "2024-07-01T09:30:00-07:00"
        );
        assert_eq!(
            iso_with_offset("2024-01-15T09:30:00.1234567", "Europe/Berlin").unwrap(),
            "2024-01-15T09:30:00+01:00"
        );
        assert_eq!(
            iso_with_offset("2024-01-15T09:30:00.0000000", "UTC").unwrap(),
            "2024-01-15T09:30:00+00:00"
        );
    }

    #[test]
    fn instants_become_wall_clock_times_of_a_zone() {
        let zone = Zone::parse("z", "India Standard Time").unwrap();
        let instant = parse_instant("start", "2024-05-01T09:00:00Z").unwrap();
        assert_eq!(zone.wall_clock(instant), "2024-05-01T14:30:00");
        assert!(parse_instant("start", "2024-05-01T09:00:00").is_err());
    }
}
