//! Recurring series through the API: each pattern and range type expanded by calendarView,
//! recurrence time zones across daylight saving, validation, and exceptions (a changed and
//! a deleted occurrence).

mod common;

use common::*;
use graph_emulator::DEMO_USER_UPN;
use reqwest::StatusCode;
use serde_json::{Value, json};

const DEMO: &str = DEMO_USER_UPN;

fn values(body: &Value) -> Vec<Value> {
    body["value"].as_array().cloned().unwrap_or_default()
}

async fn create_series(
    h: &Harness,
    subject: &str,
    start: &str,
    end: &str,
    zone: &str,
    recurrence: Value,
) -> Value {
    let reply = h
        .post(
            &format!("/users/{DEMO}/events"),
            &json!({
                "subject": subject,
                "start": {"dateTime": start, "timeZone": zone},
                "end": {"dateTime": end, "timeZone": zone},
                "recurrence": recurrence,
            }),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    reply.json()
}

/// The occurrences of `subject` in a UTC window, as `start/dateTime` strings shown in
/// `zone` (UTC when `None`).
async fn view(h: &Harness, subject: &str, from: &str, to: &str, zone: Option<&str>) -> Vec<Value> {
    let prefer = zone.map(|z| format!("outlook.timezone=\"{z}\""));
    let headers: Vec<(&str, &str)> = prefer.iter().map(|p| ("Prefer", p.as_str())).collect();
    let (items, _) = h
        .get_all(
            &format!(
                "/users/{DEMO}/calendarView?startDateTime={from}&endDateTime={to}&$top=500&$filter=subject eq '{subject}'"
            ),
            &headers,
        )
        .await;
    items
}

fn starts(items: &[Value]) -> Vec<String> {
    items
        .iter()
        .map(|e| {
            e["start"]["dateTime"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect()
}

#[tokio::test]
async fn every_pattern_type_expands_in_a_calendar_view() {
    let h = start().await;
    let cases = [
        (
            "daily every third day",
            json!({"pattern": {"type": "daily", "interval": 3}, "range": {"type": "numbered", "startDate": "2031-01-01", "numberOfOccurrences": 4}}),
            vec!["2031-01-01", "2031-01-04", "2031-01-07", "2031-01-10"],
        ),
        (
            "weekly mon fri",
            json!({"pattern": {"type": "weekly", "interval": 2, "daysOfWeek": ["monday", "friday"], "firstDayOfWeek": "sunday"},
                   "range": {"type": "endDate", "startDate": "2031-01-01", "endDate": "2031-01-31"}}),
            vec![
                "2031-01-03",
                "2031-01-13",
                "2031-01-17",
                "2031-01-27",
                "2031-01-31",
            ],
        ),
        (
            "absolute monthly 31st",
            json!({"pattern": {"type": "absoluteMonthly", "interval": 1, "dayOfMonth": 31},
                   "range": {"type": "endDate", "startDate": "2031-01-01", "endDate": "2031-06-30"}}),
            vec!["2031-01-31", "2031-03-31", "2031-05-31"],
        ),
        (
            "relative monthly last thursday",
            json!({"pattern": {"type": "relativeMonthly", "interval": 1, "daysOfWeek": ["thursday"], "index": "last"},
                   "range": {"type": "numbered", "startDate": "2031-01-01", "numberOfOccurrences": 3}}),
            vec!["2031-01-30", "2031-02-27", "2031-03-27"],
        ),
        (
            "absolute yearly",
            json!({"pattern": {"type": "absoluteYearly", "interval": 1, "month": 3, "dayOfMonth": 14},
                   "range": {"type": "noEnd", "startDate": "2031-01-01"}}),
            vec!["2031-03-14", "2032-03-14", "2033-03-14"],
        ),
        (
            "relative yearly",
            json!({"pattern": {"type": "relativeYearly", "interval": 1, "month": 11, "daysOfWeek": ["thursday"], "index": "fourth"},
                   "range": {"type": "noEnd", "startDate": "2031-01-01"}}),
            vec!["2031-11-27", "2032-11-25", "2033-11-24"],
        ),
    ];
    for (subject, recurrence, dates) in cases {
        let master = create_series(
            &h,
            subject,
            "2031-01-01T09:00:00",
            "2031-01-01T09:30:00",
            "UTC",
            recurrence,
        )
        .await;
        assert_eq!(master["type"], "seriesMaster");
        let items = view(
            &h,
            subject,
            "2030-12-01T00:00:00Z",
            "2034-01-01T00:00:00Z",
            None,
        )
        .await;
        let expected: Vec<String> = dates
            .iter()
            .map(|d| format!("{d}T09:00:00.0000000"))
            .collect();
        assert_eq!(starts(&items), expected, "{subject}");
        for e in &items {
            assert_eq!(e["type"], "occurrence", "{subject}");
            assert_eq!(e["seriesMasterId"], master["id"]);
            assert_eq!(e["recurrence"], Value::Null);
            assert_eq!(
                e["end"]["dateTime"].as_str().map(|s| &s[11..]),
                Some("09:30:00.0000000")
            );
        }
    }
}

#[tokio::test]
async fn a_series_keeps_its_local_time_across_daylight_saving() {
    let h = start().await;
    create_series(
        &h,
        "Pacific weekly",
        "2031-03-03T09:00:00",
        "2031-03-03T10:00:00",
        "Pacific Standard Time",
        json!({"pattern": {"type": "weekly", "interval": 1, "daysOfWeek": ["monday"]},
               "range": {"type": "numbered", "startDate": "2031-03-03", "numberOfOccurrences": 3}}),
    )
    .await;
    // DST starts on 2031-03-09 in the US: 17:00Z before, 16:00Z after.
    let utc = view(
        &h,
        "Pacific weekly",
        "2031-03-01T00:00:00Z",
        "2031-04-01T00:00:00Z",
        None,
    )
    .await;
    assert_eq!(
        starts(&utc),
        [
            "2031-03-03T17:00:00.0000000",
            "2031-03-10T16:00:00.0000000",
            "2031-03-17T16:00:00.0000000"
        ]
    );
    let local = view(
        &h,
        "Pacific weekly",
        "2031-03-01T00:00:00Z",
        "2031-04-01T00:00:00Z",
        Some("America/Los_Angeles"),
    )
    .await;
    assert!(
        starts(&local)
            .iter()
            .all(|s| s.ends_with("T09:00:00.0000000")),
        "{:?}",
        starts(&local)
    );
    // The window's offset wins; a window without an offset is UTC.
    let offset = view(
        &h,
        "Pacific weekly",
        "2031-03-10T08:00:00-08:00",
        "2031-03-10T10:00:00-07:00",
        None,
    )
    .await;
    assert_eq!(starts(&offset), ["2031-03-10T16:00:00.0000000"]);
}

#[tokio::test]
async fn invalid_recurrences_are_refused_naming_the_field() {
    let h = start().await;
    for (recurrence, field) in [
        (
            json!({"pattern": {"type": "weekly", "interval": 1}, "range": {"type": "noEnd", "startDate": "2031-01-01"}}),
            "daysOfWeek",
        ),
        (
            json!({"pattern": {"type": "absoluteMonthly", "interval": 1}, "range": {"type": "noEnd", "startDate": "2031-01-01"}}),
            "dayOfMonth",
        ),
        (
            json!({"pattern": {"type": "daily", "interval": 0}, "range": {"type": "noEnd", "startDate": "2031-01-01"}}),
            "interval",
        ),
        (
            json!({"pattern": {"type": "daily", "interval": 1}, "range": {"type": "endDate", "startDate": "2031-02-01", "endDate": "2031-01-01"}}),
            "endDate",
        ),
        (
            json!({"pattern": {"type": "daily", "interval": 1}, "range": {"type": "numbered", "startDate": "2031-01-01"}}),
            "numberOfOccurrences",
        ),
    ] {
        let reply = h
            .post(
                &format!("/users/{DEMO}/events"),
                &json!({
                    "subject": "invalid",
                    "start": {"dateTime": "2031-01-01T09:00:00", "timeZone": "UTC"},
                    "end": {"dateTime": "2031-01-01T10:00:00", "timeZone": "UTC"},
                    "recurrence": recurrence,
                }),
            )
            .await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "{field}: {}",
            reply.text
        );
        assert_eq!(reply.error_code(), "ErrorPropertyValidationFailure");
        assert!(
            reply.error_message().contains(field),
            "{field}: {}",
            reply.error_message()
        );
    }
}

#[tokio::test]
async fn changed_and_deleted_occurrences_become_exceptions_and_gaps() {
    let h = start().await;
    let master = create_series(
        &h,
        "Exceptional",
        "2031-05-05T15:00:00",
        "2031-05-05T15:30:00",
        "UTC",
        json!({"pattern": {"type": "daily", "interval": 1}, "range": {"type": "numbered", "startDate": "2031-05-05", "numberOfOccurrences": 5}}),
    )
    .await;
    let items = view(
        &h,
        "Exceptional",
        "2031-05-01T00:00:00Z",
        "2031-06-01T00:00:00Z",
        None,
    )
    .await;
    assert_eq!(items.len(), 5);
    let second = items[1]["id"].as_str().expect("id").to_string();
    let fourth = items[3]["id"].as_str().expect("id").to_string();

    let reply = h
        .patch(
            &format!("/users/{DEMO}/events/{}", enc(&second)),
            &json!({"start": {"dateTime": "2031-05-06T17:00:00", "timeZone": "UTC"},
                    "end": {"dateTime": "2031-05-06T18:00:00", "timeZone": "UTC"},
                    "location": {"displayName": "Moved"}}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let x = reply.json();
    assert_eq!(x["type"], "exception");
    assert_eq!(x["id"], second.as_str());
    assert_eq!(x["seriesMasterId"], master["id"]);
    assert_eq!(x["start"]["dateTime"], "2031-05-06T17:00:00.0000000");

    let reply = h
        .delete(&format!("/users/{DEMO}/events/{}", enc(&fourth)))
        .await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    let reply = h
        .get(&format!("/users/{DEMO}/events/{}", enc(&fourth)))
        .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);

    let items = view(
        &h,
        "Exceptional",
        "2031-05-01T00:00:00Z",
        "2031-06-01T00:00:00Z",
        None,
    )
    .await;
    assert_eq!(
        starts(&items),
        [
            "2031-05-05T15:00:00.0000000",
            "2031-05-06T17:00:00.0000000",
            "2031-05-07T15:00:00.0000000",
            "2031-05-09T15:00:00.0000000",
        ]
    );
    assert_eq!(items[1]["type"], "exception");
    assert_eq!(items[1]["location"]["displayName"], "Moved");
    assert_eq!(items[0]["type"], "occurrence");
    // Recurrence can't be set on an occurrence.
    let reply = h
        .patch(
            &format!(
                "/users/{DEMO}/events/{}",
                enc(items[0]["id"].as_str().expect("id"))
            ),
            &json!({"recurrence": null}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.error_code(), "ErrorPropertyValidationFailure");
    // An id-shaped occurrence id of a date the series does not have is unknown.
    let mut bogus = items[0]["id"].as_str().expect("id").to_string();
    bogus.replace_range(bogus.len() - 4.., "AAAA");
    let reply = h
        .get(&format!("/users/{DEMO}/events/{}", enc(&bogus)))
        .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND, "{}", reply.text);
    // Series masters never show in a view; /events shows the master only.
    let listed = h
        .get(&format!(
            "/users/{DEMO}/events?$filter=subject eq 'Exceptional'"
        ))
        .await
        .json();
    assert_eq!(values(&listed).len(), 1);
    assert_eq!(values(&listed)[0]["type"], "seriesMaster");
}

#[tokio::test]
async fn the_demo_users_seeded_series_have_the_documented_patterns() {
    let h = start().await;
    let (events, _) = h
        .get_all(
            &format!("/users/{DEMO}/events?$filter=type eq 'seriesMaster'&$top=100"),
            &[],
        )
        .await;
    let pattern = |subject: &str| {
        events
            .iter()
            .find(|e| e["subject"] == subject)
            .unwrap_or_else(|| panic!("{subject}"))["recurrence"]
            .clone()
    };
    assert_eq!(pattern("Daily stand-up")["pattern"]["type"], "weekly");
    let review = pattern("Monthly engineering review");
    assert_eq!(review["pattern"]["type"], "relativeMonthly");
    assert_eq!(review["pattern"]["index"], "first");
    assert_eq!(review["pattern"]["daysOfWeek"], json!(["thursday"]));
    let budget = pattern("Budget check-in");
    assert_eq!(budget["pattern"]["type"], "absoluteMonthly");
    assert_eq!(budget["pattern"]["dayOfMonth"], 15);
    assert_eq!(budget["range"]["type"], "numbered");
    assert_eq!(budget["range"]["numberOfOccurrences"], 12);
    let kickoff = pattern("Annual planning kickoff");
    assert_eq!(kickoff["pattern"]["type"], "relativeYearly");
    assert_eq!(kickoff["range"]["type"], "endDate");
    assert!(events.iter().any(|e| {
        e["subject"]
            .as_str()
            .is_some_and(|s| s.starts_with("1:1 Tamsin / "))
    }));
    assert!(
        events
            .iter()
            .any(|e| e["subject"] == "Tamsin's staff meeting")
    );
    // Her manager's staff meeting and 1:1 are copies in her calendar.
    let copies: Vec<&Value> = events
        .iter()
        .filter(|e| e["isOrganizer"] == false)
        .collect();
    assert!(copies.len() >= 2, "{}", copies.len());
}
