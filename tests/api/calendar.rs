//! Calendars through the gateway: views with recurrences expanded, time zones, meetings and
//! their answers, free/busy, common free slots, and the bad inputs refused before Graph.

use jiff::{SignedDuration, Timestamp};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, spawn_app};

fn nodes(value: &Value) -> &Vec<Value> {
    value["nodes"].as_array().expect("a connection with nodes")
}

/// `now + days`, as ISO 8601 (UTC).
fn at(days: i64) -> String {
    (Timestamp::now() + SignedDuration::from_hours(24 * days))
        .round(jiff::Unit::Second)
        .unwrap()
        .to_string()
}

async fn colleague(app: &TestApp) -> String {
    let data = app.graphql_data("{ me { manager { mail } } }").await;
    data["me"]["manager"]["mail"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn calendars_and_the_default_calendar_are_listed() {
    let app = spawn_app().await;
    let data = app
        .graphql_data("{ me { calendar { id name isDefault } calendars(first: 10) { nodes { id name isDefault canEdit } } } }")
        .await;
    let default = &data["me"]["calendar"];
    assert_eq!(default["isDefault"], true, "{data}");
    let all = nodes(&data["me"]["calendars"]);
    assert!(all.iter().any(|c| c["id"] == default["id"]), "{data}");
    assert!(all.len() >= 2, "{data}");
    let (status, rest) = app.get("/api/v1/users/me/calendars").await;
    assert_eq!(status, StatusCode::OK, "{rest}");
    assert_eq!(rest["data"].as_array().unwrap().len(), all.len());
}

const VIEW: &str = "query($s: String!, $e: String!, $tz: String) { me { calendarView(start: $s, end: $e, timeZone: $tz, first: 100) { nodes { id subject type seriesMasterId isCancelled start { dateTime timeZone } end { dateTime timeZone } recurrence { pattern { type } } organizer { emailAddress { address } } } } } }";

#[tokio::test]
async fn a_calendar_view_expands_series_and_answers_in_the_zone_asked_for() {
    let app = spawn_app().await;
    for zone in ["Europe/Berlin", "W. Europe Standard Time"] {
        let (_, body) = app
            .graphql_as(
                Some(&app.token),
                VIEW,
                json!({ "s": at(-7), "e": at(7), "tz": zone }),
            )
            .await;
        let events = nodes(&body["data"]["me"]["calendarView"]);
        assert!(!events.is_empty(), "{body}");
        let occurrences: Vec<&Value> = events
            .iter()
            .filter(|e| e["type"] == "occurrence")
            .collect();
        assert!(
            !occurrences.is_empty(),
            "a recurring series shows as occurrences: {body}"
        );
        assert!(occurrences.iter().all(|e| e["seriesMasterId"].is_string()));
        assert!(events.iter().all(|e| e["type"] != "seriesMaster"), "{body}");
        for e in events {
            let start = e["start"]["dateTime"].as_str().unwrap();
            assert_eq!(e["start"]["timeZone"], zone, "{e}");
            // ISO 8601 with the zone's offset (CET or CEST).
            assert!(
                start.ends_with("+01:00") || start.ends_with("+02:00"),
                "{start}"
            );
            assert!(start.parse::<Timestamp>().is_ok(), "{start}");
            let end: Timestamp = e["end"]["dateTime"].as_str().unwrap().parse().unwrap();
            assert!(end > start.parse::<Timestamp>().unwrap(), "{e}");
        }
    }
    // The same view through REST, in UTC by default.
    let (status, rest) = app
        .get(&format!(
            "/api/v1/users/me/calendar-view?start={}&end={}&limit=100",
            at(-7),
            at(7)
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{rest}");
    assert!(rest["data"].as_array().unwrap().iter().all(|e| {
        e["start"]["date_time"]
            .as_str()
            .unwrap()
            .ends_with("+00:00")
    }));
}

#[tokio::test]
async fn bad_windows_zones_intervals_and_recurrences_are_refused_before_graph() {
    let app = spawn_app().await;
    app.graphql_data("{ me { id } }").await;
    app.reset_stats().await;
    let cases = [
        (VIEW, json!({ "s": at(2), "e": at(1) }), "end"),
        (VIEW, json!({ "s": at(0), "e": at(63) }), "62 days"),
        (
            VIEW,
            json!({ "s": at(0), "e": at(1), "tz": "Mars/Olympus_Mons" }),
            "timeZone",
        ),
        (
            "query($s: String!, $e: String!) { schedule(users: [\"a@kestrelridge.example\"], start: $s, end: $e, intervalMinutes: 4) { scheduleId } }",
            json!({ "s": at(0), "e": at(1) }),
            "intervalMinutes",
        ),
        (
            "mutation($s: String!, $e: String!) { createEvent(mailbox: \"me\", event: { subject: \"x\", start: $s, end: $e, recurrence: { pattern: { type: \"weekly\", interval: 1 }, range: { type: \"noEnd\", startDate: \"2030-01-07\" } } }) { id } }",
            json!({ "s": at(1), "e": at(2) }),
            "daysOfWeek",
        ),
        (
            "mutation($s: String!, $e: String!) { createEvent(mailbox: \"me\", event: { subject: \"x\", start: $s, end: $e, timeZone: \"Nowhere Standard Time\" }) { id } }",
            json!({ "s": at(1), "e": at(2) }),
            "timeZone",
        ),
    ];
    for (query, variables, needle) in cases {
        let (_, body) = app.graphql_as(Some(&app.token), query, variables).await;
        let error = &body["errors"][0];
        assert_eq!(error["extensions"]["code"], "BAD_USER_INPUT", "{body}");
        assert!(
            error["message"].as_str().unwrap().contains(needle),
            "{needle}: {body}"
        );
    }
    assert_eq!(app.graph_requests().await, 0);
}

const CREATE: &str = "mutation($e: EventInput!) { createEvent(mailbox: \"me\", event: $e) { id subject iCalUId isOnlineMeeting onlineMeeting { joinUrl } attendees { emailAddress { address } type status { response } } start { dateTime timeZone } } }";

#[tokio::test]
async fn a_meeting_lands_in_the_attendees_calendar_and_their_answer_reaches_the_organiser() {
    let app = spawn_app().await;
    let manager = colleague(&app).await;
    let subject = format!("Budget review {}", uuid::Uuid::new_v4());
    let (_, body) = app
        .graphql_as(
            Some(&app.token),
            CREATE,
            json!({ "e": {
                "subject": subject, "start": at(3), "end": (Timestamp::now() + SignedDuration::from_hours(73)).round(jiff::Unit::Second).unwrap().to_string(),
                "timeZone": "Pacific Standard Time", "isOnlineMeeting": true, "location": "Room 4",
                "attendees": [{ "address": manager, "type": "required" }]
            }}),
        )
        .await;
    let created = &body["data"]["createEvent"];
    assert_eq!(created["subject"], subject.as_str(), "{body}");
    assert!(
        created["onlineMeeting"]["joinUrl"]
            .as_str()
            .unwrap()
            .starts_with("https://")
    );
    assert_eq!(
        created["start"]["timeZone"], "UTC",
        "answers default to UTC"
    );
    let id = created["id"].as_str().unwrap().to_owned();

    // The attendee has it, not yet answered.
    let (_, body) = app
        .graphql_as(
            Some(&app.token),
            "query($u: ID!, $s: String!, $e: String!) { user(id: $u) { calendarView(start: $s, end: $e, first: 100) { nodes { id subject isOrganizer responseStatus { response } organizer { emailAddress { address user { displayName } } } } } } }",
            json!({ "u": manager, "s": at(2), "e": at(4) }),
        )
        .await;
    let copy = nodes(&body["data"]["user"]["calendarView"])
        .iter()
        .find(|e| e["subject"] == subject.as_str())
        .cloned()
        .unwrap_or_else(|| panic!("not delivered: {body}"));
    assert_eq!(copy["isOrganizer"], false);
    assert_eq!(copy["responseStatus"]["response"], "notResponded");
    assert!(
        copy["organizer"]["emailAddress"]["user"]["displayName"].is_string(),
        "{copy}"
    );

    // The attendee accepts; the organiser sees it.
    let (_, body) = app
        .graphql_as(
            Some(&app.token),
            "mutation($u: ID!, $id: ID!) { respondToEvent(mailbox: $u, id: $id, response: ACCEPT, comment: \"See you\") }",
            json!({ "u": manager, "id": copy["id"] }),
        )
        .await;
    assert_eq!(body["data"]["respondToEvent"], true, "{body}");
    let (_, body) = app
        .graphql_as(
            Some(&app.token),
            "query($id: ID!) { me { event(id: $id) { attendees { emailAddress { address } status { response } } } } }",
            json!({ "id": id }),
        )
        .await;
    let attendee = &body["data"]["me"]["event"]["attendees"][0];
    assert_eq!(attendee["status"]["response"], "accepted", "{body}");

    // Cancelled: the attendee's copy says so.
    let (_, body) = app
        .graphql_as(
            Some(&app.token),
            "mutation($id: ID!) { cancelEvent(mailbox: \"me\", id: $id, comment: \"Moved to next quarter\") }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(body["data"]["cancelEvent"], true, "{body}");
    let (_, body) = app
        .graphql_as(
            Some(&app.token),
            "query($u: ID!, $id: ID!) { user(id: $u) { event(id: $id) { isCancelled } } }",
            json!({ "u": manager, "id": copy["id"] }),
        )
        .await;
    assert_eq!(body["data"]["user"]["event"]["isCancelled"], true, "{body}");
}

#[tokio::test]
async fn a_create_repeated_with_its_transaction_id_makes_one_event() {
    let app = spawn_app().await;
    let subject = format!("Retry-safe {}", uuid::Uuid::new_v4());
    let event = json!({ "subject": subject, "start": at(5), "end": (Timestamp::now() + SignedDuration::from_hours(121)).round(jiff::Unit::Second).unwrap().to_string(), "transactionId": subject });
    let mut ids = Vec::new();
    for _ in 0..2 {
        let (_, body) = app
            .graphql_as(Some(&app.token), CREATE, json!({ "e": event }))
            .await;
        ids.push(body["data"]["createEvent"]["id"].clone());
    }
    assert_eq!(ids[0], ids[1]);
    let (_, body) = app
        .graphql_as(
            Some(&app.token),
            "query($s: String!, $e: String!) { me { calendarView(start: $s, end: $e, first: 100) { nodes { subject } } } }",
            json!({ "s": at(4), "e": at(6) }),
        )
        .await;
    let copies = nodes(&body["data"]["me"]["calendarView"])
        .iter()
        .filter(|e| e["subject"] == subject.as_str())
        .count();
    assert_eq!(copies, 1, "{body}");
}

#[tokio::test]
async fn events_are_updated_and_deleted_through_rest() {
    let app = spawn_app().await;
    let response = app
        .http
        .post(format!("{}/api/v1/users/me/events", app.base))
        .bearer_auth(&app.token)
        .json(&json!({ "event": { "subject": "Dentist", "start": at(9), "end": (Timestamp::now() + SignedDuration::from_hours(24 * 9 + 1)).round(jiff::Unit::Second).unwrap().to_string(), "show_as": "oof" } }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let event: Value = response.json().await.unwrap();
    let id = percent_encoding::utf8_percent_encode(
        event["id"].as_str().unwrap(),
        percent_encoding::NON_ALPHANUMERIC,
    )
    .to_string();
    let response = app
        .http
        .patch(format!("{}/api/v1/users/me/events/{id}", app.base))
        .bearer_auth(&app.token)
        .json(&json!({ "subject": "Dentist (moved)", "time_zone": "India Standard Time" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let updated: Value = response.json().await.unwrap();
    assert_eq!(updated["subject"], "Dentist (moved)");
    let response = app
        .http
        .delete(format!("{}/api/v1/users/me/events/{id}", app.base))
        .bearer_auth(&app.token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let (status, body) = app.get(&format!("/api/v1/users/me/events/{id}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(body["error"]["code"], "NOT_FOUND");
}

#[tokio::test]
async fn twenty_calendar_views_cost_one_batch_and_organisers_resolve_in_batches() {
    let app = spawn_app().await;
    app.graphql_data("{ me { id } }").await;
    let users = app
        .graphql_data("{ users(first: 20) { nodes { id } } }")
        .await;
    let ids: Vec<&str> = nodes(&users["users"])
        .iter()
        .map(|u| u["id"].as_str().unwrap())
        .collect();
    // Aliased calendar views of 20 users.
    let fields: String = ids
        .iter()
        .enumerate()
        .map(|(i, id)| format!("u{i}: user(id: \"{id}\") {{ calendarView(start: $s, end: $e, first: 50) {{ nodes {{ organizer {{ emailAddress {{ address user {{ displayName }} }} }} }} }} }}"))
        .collect();
    let query = format!("query($s: String!, $e: String!) {{ {fields} }}");
    app.reset_stats().await;
    let (_, body) = app
        .graphql_as(Some(&app.token), &query, json!({ "s": at(0), "e": at(7) }))
        .await;
    assert!(body.get("errors").is_none(), "{body}");
    let mut organisers: Vec<String> = body["data"]
        .as_object()
        .unwrap()
        .values()
        .flat_map(|u| nodes(&u["calendarView"]).clone())
        .filter_map(|e| {
            e["organizer"]["emailAddress"]["address"]
                .as_str()
                .map(str::to_lowercase)
        })
        .collect();
    organisers.sort();
    organisers.dedup();
    assert!(!organisers.is_empty());
    let stats = app.stats().await;
    assert_eq!(
        stats["graph_requests"].as_u64().unwrap(),
        1 + organisers.len().div_ceil(20) as u64,
        "one $batch of 20 views, then the organisers 20 to a $batch: {stats}"
    );
}

#[tokio::test]
async fn free_slots_for_five_people_in_three_time_zones_are_free_for_everyone_within_working_hours()
{
    let app = spawn_app().await;
    // Five people whose working hours are in at least three different zones.
    let people = app
        .graphql_data("{ users(first: 60) { nodes { mail } } }")
        .await;
    let addresses: Vec<String> = nodes(&people["users"])
        .iter()
        .filter_map(|u| u["mail"].as_str().map(str::to_owned))
        .collect();
    let (_, body) = app
        .graphql_as(
            Some(&app.token),
            "query($u: [String!]!, $s: String!, $e: String!) { schedule(users: $u, start: $s, end: $e) { scheduleId workingHours { timeZone } error } }",
            json!({ "u": addresses.iter().take(20).collect::<Vec<_>>(), "s": at(1), "e": at(8) }),
        )
        .await;
    let mut schedules = body["data"]["schedule"]
        .as_array()
        .unwrap_or_else(|| panic!("{body}"))
        .clone();
    let (_, more) = app
        .graphql_as(
            Some(&app.token),
            "query($u: [String!]!, $s: String!, $e: String!) { schedule(users: $u, start: $s, end: $e) { scheduleId workingHours { timeZone } error } }",
            json!({ "u": addresses.iter().skip(20).take(20).collect::<Vec<_>>(), "s": at(1), "e": at(8) }),
        )
        .await;
    schedules.extend(
        more["data"]["schedule"]
            .as_array()
            .unwrap_or_else(|| panic!("{more}"))
            .iter()
            .cloned(),
    );
    let schedules = &schedules;
    // Zones whose 08:00–17:00 overlap (London, Berlin, New York: 13:00–16:00 UTC in
    // winter), so a common slot can exist; at least one person per zone.
    let wanted = [
        "GMT Standard Time",
        "W. Europe Standard Time",
        "Eastern Standard Time",
    ];
    let mut chosen: Vec<String> = Vec::new();
    let mut zones: Vec<String> = Vec::new();
    for round in 0..2 {
        for s in schedules {
            let zone = s["workingHours"]["timeZone"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            let id = s["scheduleId"].as_str().unwrap().to_owned();
            let fresh = round == 1 || !zones.contains(&zone);
            if s["error"].is_null()
                && wanted.contains(&zone.as_str())
                && fresh
                && !chosen.contains(&id)
                && chosen.len() < 5
            {
                zones.push(zone);
                chosen.push(id);
            }
        }
    }
    zones.sort();
    zones.dedup();
    assert_eq!(chosen.len(), 5, "{body}");
    assert_eq!(zones.len(), 3, "five people across three zones: {zones:?}");
    let window = json!({ "start": at(1), "end": at(8) });
    let (_, body) = app
        .graphql_as(
            Some(&app.token),
            "query($a: [String!]!, $w: TimeWindowInput!) { findMeetingSlots(attendees: $a, durationMinutes: 30, window: $w) { start { dateTime } end { dateTime } } }",
            json!({ "a": chosen, "w": window }),
        )
        .await;
    let slots = body["data"]["findMeetingSlots"]
        .as_array()
        .unwrap_or_else(|| panic!("{body}"));
    assert!(
        !slots.is_empty(),
        "five people find some common time in a week: {body}"
    );

    // Brute force over the emulator's own data: every slot is free for everyone and inside
    // everyone's working hours.
    let (_, body) = app
        .graphql_as(
            Some(&app.token),
            "query($u: [String!]!, $s: String!, $e: String!) { schedule(users: $u, start: $s, end: $e, intervalMinutes: 5) { scheduleId scheduleItems { status start { dateTime } end { dateTime } } workingHours { daysOfWeek startTime endTime timeZone } } }",
            json!({ "u": chosen, "s": at(1), "e": at(8) }),
        )
        .await;
    let schedules = body["data"]["schedule"].as_array().unwrap();
    for slot in slots {
        let start: Timestamp = slot["start"]["dateTime"].as_str().unwrap().parse().unwrap();
        let end: Timestamp = slot["end"]["dateTime"].as_str().unwrap().parse().unwrap();
        assert_eq!(end.duration_since(start), SignedDuration::from_mins(30));
        for person in schedules {
            for item in person["scheduleItems"].as_array().unwrap() {
                if item["status"] == "free" || item["status"] == "workingElsewhere" {
                    continue;
                }
                let b: Timestamp = item["start"]["dateTime"].as_str().unwrap().parse().unwrap();
                let e: Timestamp = item["end"]["dateTime"].as_str().unwrap().parse().unwrap();
                assert!(
                    end <= b || start >= e,
                    "{slot} overlaps {item} of {}",
                    person["scheduleId"]
                );
            }
            let hours = &person["workingHours"];
            let zone = windows_or_iana(hours["timeZone"].as_str().unwrap());
            let local_start = start.to_zoned(zone.clone());
            let local_end = end.to_zoned(zone);
            let day = format!("{:?}", local_start.weekday()).to_lowercase();
            assert!(
                hours["daysOfWeek"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|d| d == day.as_str()),
                "{slot} on {day} for {}",
                person["scheduleId"]
            );
            let from: jiff::civil::Time = hours["startTime"].as_str().unwrap().parse().unwrap();
            let to: jiff::civil::Time = hours["endTime"].as_str().unwrap().parse().unwrap();
            assert!(
                local_start.time() >= from
                    && local_end.time() <= to
                    && local_start.date() == local_end.date(),
                "{slot} outside {hours} of {}",
                person["scheduleId"]
            );
        }
    }
}

/// The few Windows names the emulator seeds, for the brute-force check.
fn windows_or_iana(name: &str) -> jiff::tz::TimeZone {
    let iana = match name {
        "Pacific Standard Time" => "America/Los_Angeles",
        "Eastern Standard Time" => "America/New_York",
        "GMT Standard Time" => "Europe/London",
        "W. Europe Standard Time" => "Europe/Berlin",
        "India Standard Time" => "Asia/Kolkata",
        "Tokyo Standard Time" => "Asia/Tokyo",
        "AUS Eastern Standard Time" => "Australia/Sydney",
        "UTC" => "UTC",
        other => other,
    };
    jiff::tz::TimeZone::get(iana).unwrap_or_else(|_| panic!("unknown zone {name}"))
}

#[tokio::test]
async fn free_busy_reports_unknown_people_per_person() {
    let app = spawn_app().await;
    let (status, body) = app
        .http
        .post(format!("{}/api/v1/schedule", app.base))
        .bearer_auth(&app.token)
        .json(&json!({ "users": [graph_emulator::DEMO_USER_UPN, "nobody@kestrelridge.example"], "start": at(1), "end": at(2) }))
        .send()
        .await
        .map(|r| (r.status(), r))
        .unwrap();
    assert_eq!(status, StatusCode::OK);
    let body: Value = body.json().await.unwrap();
    let list = body.as_array().unwrap();
    assert_eq!(list.len(), 2, "{body}");
    assert!(list[0]["error"].is_null(), "{body}");
    assert!(
        list[0]["availability_view"]
            .as_str()
            .is_some_and(|v| v.len() == 48),
        "{body}"
    );
    assert!(list[1]["error"].is_string(), "{body}");
}

#[tokio::test]
async fn every_calendar_and_contact_example_response_deserializes() {
    use m365_gateway::graph::models::{Calendar, Collection, Contact, Event, ScheduleInformation};
    let fixtures = include_str!("../fixtures/graph-examples/calendar.jsonl");
    let mut checked = 0;
    for line in fixtures.lines().filter(|l| !l.trim().is_empty()) {
        let example: Value = serde_json::from_str(line).unwrap();
        let page = example["page"].as_str().unwrap();
        let body = example["response"]["body"].clone();
        let status = example["response"]["status"].as_u64().unwrap_or(200);
        if !body.is_object() || status >= 300 {
            continue;
        }
        let result = match page {
            "user-list-calendars" => serde_json::from_value::<Collection<Calendar>>(body)
                .map(|c| assert!(!c.value.is_empty())),
            "user-list-events" | "user-list-calendarview" => {
                serde_json::from_value::<Collection<Event>>(body)
                    .map(|c| assert!(!c.value.is_empty()))
            }
            // Some of these examples are abridged to a few properties.
            "event-get" | "event-update" | "user-post-events" => {
                serde_json::from_value::<Event>(body).map(drop)
            }
            "calendar-getschedule" => {
                serde_json::from_value::<Collection<ScheduleInformation>>(body)
                    .map(|c| assert!(!c.value.is_empty()))
            }
            "contact-get" | "contact-update" | "user-post-contacts" => {
                serde_json::from_value::<Contact>(body).map(drop)
            }
            "user-list-contacts" => serde_json::from_value::<Collection<Contact>>(body)
                .map(|c| assert!(!c.value.is_empty())),
            _ => continue,
        };
        result.unwrap_or_else(|e| panic!("{page}: {e}"));
        checked += 1;
    }
    assert!(checked >= 10, "only {checked} examples checked");
}

#[tokio::test]
async fn a_calendar_outside_the_callers_policy_is_forbidden_with_zero_graph_calls() {
    use crate::helpers::{real_mode_config_from, spawn_app_with, test_config, test_token};
    use m365_gateway::config::CallerMode;
    let config = real_mode_config_from(
        test_config(),
        (
            "booking",
            CallerMode::App,
            &["calendar.read", "calendar.write", "users.read"],
            &[graph_emulator::DEMO_USER_UPN],
        ),
    );
    let app = spawn_app_with(config).await;
    let token = test_token("booking", None);
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    app.reset_stats().await;
    let (_, body) = app
        .graphql_as(
            Some(&token),
            "query($s: String!, $e: String!) { user(id: \"orders@kestrelridge.example\") { calendarView(start: $s, end: $e, first: 10) { nodes { id } } } schedule(users: [\"orders@kestrelridge.example\"], start: $s, end: $e) { scheduleId } }",
            json!({ "s": at(0), "e": at(1) }),
        )
        .await;
    let codes: Vec<&Value> = body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["extensions"]["code"])
        .collect();
    assert_eq!(codes, vec!["FORBIDDEN", "FORBIDDEN"], "{body}");
    // No contacts operation granted either.
    let (_, body) = app
        .graphql_as(
            Some(&token),
            "{ user(id: \"tamsin.greaves@kestrelridge.example\") { contacts(first: 10) { nodes { id } } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "FORBIDDEN",
        "{body}"
    );
    assert_eq!(app.graph_requests().await, 0);
}

#[tokio::test]
async fn a_recurring_meeting_created_through_the_gateway_shows_as_its_occurrences() {
    let app = spawn_app().await;
    let subject = format!("Weekly sync {}", uuid::Uuid::new_v4());
    // Next Monday 16:00 UTC, weekly on Monday and Thursday, 4 occurrences.
    let today = Timestamp::now().to_zoned(jiff::tz::TimeZone::UTC).date();
    let monday = (1..=7)
        .map(|d| today + jiff::Span::new().days(d))
        .find(|d| d.weekday() == jiff::civil::Weekday::Monday)
        .unwrap();
    let start = monday
        .at(16, 0, 0, 0)
        .to_zoned(jiff::tz::TimeZone::UTC)
        .unwrap();
    let end = start.checked_add(jiff::Span::new().minutes(30)).unwrap();
    let (_, body) = app
        .graphql_as(
            Some(&app.token),
            "mutation($e: EventInput!) { createEvent(mailbox: \"me\", event: $e) { id type recurrence { pattern { type daysOfWeek } range { type numberOfOccurrences } } attendees { type } } }",
            json!({ "e": {
                "subject": subject,
                "start": start.timestamp().to_string(), "end": end.timestamp().to_string(),
                "timeZone": "UTC", "reminderMinutesBeforeStart": 10,
                "attendees": [{ "address": "partner@fabrikam.example", "type": "optional" }, { "address": "room4@kestrelridge.example", "type": "resource" }],
                "recurrence": {
                    "pattern": { "type": "weekly", "interval": 1, "daysOfWeek": ["monday", "thursday"], "firstDayOfWeek": "sunday" },
                    "range": { "type": "numbered", "startDate": monday.to_string(), "numberOfOccurrences": 4 }
                }
            }}),
        )
        .await;
    let created = &body["data"]["createEvent"];
    assert_eq!(created["type"], "seriesMaster", "{body}");
    assert_eq!(created["recurrence"]["range"]["numberOfOccurrences"], 4);
    assert_eq!(created["attendees"][1]["type"], "resource");
    let (_, body) = app
        .graphql_as(
            Some(&app.token),
            "query($s: String!, $e: String!) { me { calendarView(start: $s, end: $e, first: 100, timeZone: \"Tokyo Standard Time\") { nodes { subject type start { dateTime timeZone } } } } }",
            json!({ "s": start.timestamp().to_string(), "e": (start.timestamp() + SignedDuration::from_hours(24 * 21)).to_string() }),
        )
        .await;
    let occurrences: Vec<&Value> = nodes(&body["data"]["me"]["calendarView"])
        .iter()
        .filter(|e| e["subject"] == subject.as_str())
        .collect();
    assert_eq!(occurrences.len(), 4, "{body}");
    assert!(occurrences.iter().all(|e| e["type"] == "occurrence"));
    // 16:00 UTC is 01:00 the next day in Tokyo.
    assert!(
        occurrences.iter().all(|e| e["start"]["dateTime"]
            .as_str()
            .unwrap()
            .ends_with("T01:00:00+09:00")),
        "{body}"
    );
}
