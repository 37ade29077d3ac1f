//! Free/busy: `POST /calendar/getSchedule` computed from real events (series expanded,
//! cancelled and free events ignored), unknown addresses, limits, working hours across
//! time zones, `Prefer: outlook.timezone`, permissions.

mod common;

use common::*;
use graph_emulator::{AppRegistration, DEFAULT_CLIENT_ID, DEMO_USER_UPN, EmulatorConfig};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const DEMO: &str = DEMO_USER_UPN;
/// A Sunday far from the seeded weeks: seeded series are weekday-only there.
const DAY: &str = "2031-03-16";

fn values(body: &Value) -> Vec<Value> {
    body["value"].as_array().cloned().unwrap_or_default()
}

fn at(time: &str) -> Value {
    json!({"dateTime": format!("{DAY}T{time}"), "timeZone": "UTC"})
}

async fn add(h: &Harness, user: &str, subject: &str, from: &str, to: &str, extra: Value) {
    let mut body = json!({"subject": subject, "start": at(from), "end": at(to)});
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    let reply = h.post(&format!("/users/{user}/events"), &body).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
}

async fn schedule(h: &Harness, body: &Value, headers: &[(&str, &str)]) -> Reply {
    h.call(
        Method::POST,
        &format!("/users/{DEMO}/calendar/getSchedule"),
        Some(body),
        None,
        headers,
    )
    .await
}

#[tokio::test]
async fn the_availability_view_is_computed_from_events_and_series() {
    let h = start().await;
    add(&h, DEMO, "Busy hour", "10:00:00", "11:00:00", json!({})).await;
    add(
        &h,
        DEMO,
        "Maybe lunch",
        "12:00:00",
        "12:30:00",
        json!({"showAs": "tentative"}),
    )
    .await;
    add(
        &h,
        DEMO,
        "Away",
        "14:00:00",
        "15:00:00",
        json!({"showAs": "oof", "sensitivity": "private"}),
    )
    .await;
    add(
        &h,
        DEMO,
        "Free slot",
        "15:00:00",
        "16:00:00",
        json!({"showAs": "free"}),
    )
    .await;
    add(
        &h,
        DEMO,
        "Elsewhere",
        "09:00:00",
        "09:30:00",
        json!({"showAs": "workingElsewhere"}),
    )
    .await;
    add(
        &h,
        DEMO,
        "Daily check",
        "16:00:00",
        "16:30:00",
        json!({"recurrence": {"pattern": {"type": "daily", "interval": 1},
                              "range": {"type": "numbered", "startDate": DAY, "numberOfOccurrences": 3}}}),
    )
    .await;
    let body = json!({
        "schedules": [DEMO, "nobody@kestrelridge.example"],
        "startTime": at("09:00:00"),
        "endTime": at("17:00:00"),
        "availabilityViewInterval": 30,
    });
    let reply = schedule(&h, &body, &[]).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let body = reply.json();
    assert_eq!(
        body["@odata.context"],
        "https://graph.microsoft.com/v1.0/$metadata#Collection(microsoft.graph.scheduleInformation)"
    );
    let list = values(&body);
    let demo = &list[0];
    assert_eq!(demo["scheduleId"], DEMO);
    // 09:00 elsewhere, 10–11 busy, 12:00 tentative, 14–15 oof, 15–16 free, 16:00 the series.
    assert_eq!(demo["availabilityView"], "4022001000330020");
    let items = demo["scheduleItems"].as_array().expect("items");
    let statuses: Vec<&str> = items.iter().filter_map(|i| i["status"].as_str()).collect();
    assert_eq!(
        statuses,
        ["workingElsewhere", "busy", "tentative", "oof", "busy"]
    );
    assert_eq!(items[1]["subject"], "Busy hour");
    assert_eq!(
        items[1]["start"]["dateTime"],
        format!("{DAY}T10:00:00.0000000")
    );
    assert_eq!(items[1]["start"]["timeZone"], "UTC");
    assert_eq!(items[3]["isPrivate"], true);
    assert!(items[3].get("subject").is_none());
    assert_eq!(
        demo["workingHours"]["timeZone"]["name"],
        "Pacific Standard Time"
    );
    assert_eq!(demo["workingHours"]["startTime"], "08:00:00.0000000");
    // An unknown address is an item with an error.
    let unknown = &list[1];
    assert_eq!(unknown["scheduleId"], "nobody@kestrelridge.example");
    assert_eq!(
        unknown["error"]["responseCode"],
        "ErrorMailRecipientNotFound"
    );

    // An hour-long interval folds slots: the strongest status of a slot wins.
    let hourly = schedule(
        &h,
        &json!({"schedules": [DEMO], "startTime": at("09:00:00"), "endTime": at("17:00:00"), "availabilityViewInterval": 60}),
        &[],
    )
    .await
    .json();
    assert_eq!(values(&hourly)[0]["availabilityView"], "42010302");
}

#[tokio::test]
async fn schedule_times_follow_prefer_and_attendee_copies_count() {
    let h = start().await;
    let report = h
        .get(&format!("/users/{DEMO}/directReports?$select=mail"))
        .await
        .json()["value"][0]["mail"]
        .as_str()
        .expect("report")
        .to_string();
    add(
        &h,
        DEMO,
        "Pairing",
        "18:00:00",
        "19:00:00",
        json!({"attendees": [{"emailAddress": {"address": report}, "type": "required"}]}),
    )
    .await;
    let reply = schedule(
        &h,
        &json!({"schedules": [report], "startTime": at("17:00:00"), "endTime": at("20:00:00"), "availabilityViewInterval": 60}),
        &[("Prefer", "outlook.timezone=\"Pacific Standard Time\"")],
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(
        reply.header("preference-applied"),
        Some("outlook.timezone=\"Pacific Standard Time\"")
    );
    let info = &values(&reply.json())[0];
    // Not yet answered: tentative.
    assert_eq!(info["availabilityView"], "010");
    assert_eq!(
        info["scheduleItems"][0]["start"]["dateTime"],
        format!("{DAY}T11:00:00.0000000")
    );
    assert_eq!(
        info["scheduleItems"][0]["start"]["timeZone"],
        "Pacific Standard Time"
    );
    assert_eq!(
        info["workingHours"]["timeZone"]["name"],
        "GMT Standard Time"
    );

    // Once the organiser cancels, the attendee's cancelled copy no longer counts.
    let mine = h
        .get(&format!(
            "/users/{DEMO}/events?$filter=subject eq 'Pairing'&$select=id"
        ))
        .await
        .json();
    let id = mine["value"][0]["id"].as_str().expect("id").to_string();
    let reply = h
        .post(
            &format!("/users/{DEMO}/events/{}/cancel", enc(&id)),
            &json!({}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::ACCEPTED);
    let reply = schedule(
        &h,
        &json!({"schedules": [report], "startTime": at("17:00:00"), "endTime": at("20:00:00"), "availabilityViewInterval": 60}),
        &[],
    )
    .await;
    assert_eq!(values(&reply.json())[0]["availabilityView"], "000");
}

#[tokio::test]
async fn working_hours_differ_across_time_zones() {
    let h = start().await;
    let manager = h
        .get(&format!("/users/{DEMO}/manager?$select=mail"))
        .await
        .json()["mail"]
        .as_str()
        .expect("manager")
        .to_string();
    let reports: Vec<String> = values(
        &h.get(&format!("/users/{DEMO}/directReports?$select=mail"))
            .await
            .json(),
    )
    .iter()
    .filter_map(|u| u["mail"].as_str().map(str::to_string))
    .collect();
    let mut schedules = vec![DEMO.to_string(), manager];
    schedules.extend(reports.iter().take(3).cloned());
    let reply = schedule(
        &h,
        &json!({"schedules": schedules, "startTime": at("00:00:00"), "endTime": at("23:00:00")}),
        &[],
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let list = values(&reply.json());
    let zones: Vec<&str> = list
        .iter()
        .filter_map(|i| i["workingHours"]["timeZone"]["name"].as_str())
        .collect();
    assert_eq!(
        zones,
        [
            "Pacific Standard Time",
            "Eastern Standard Time",
            "GMT Standard Time",
            "W. Europe Standard Time",
            "India Standard Time",
        ]
    );
    assert_eq!(list[4]["workingHours"]["startTime"], "09:00:00.0000000");
    assert_eq!(list[4]["workingHours"]["endTime"], "18:00:00.0000000");
    // The default interval is 30 minutes: 46 slots in 23 hours.
    assert_eq!(list[0]["availabilityView"].as_str().map(str::len), Some(46));
}

#[tokio::test]
async fn schedule_requests_outside_the_limits_are_refused() {
    let h = start().await;
    let many: Vec<String> = (0..101)
        .map(|i| format!("u{i}@kestrelridge.example"))
        .collect();
    for (body, what) in [
        (
            json!({"schedules": many, "startTime": at("09:00:00"), "endTime": at("10:00:00")}),
            "101 schedules",
        ),
        (
            json!({"schedules": [DEMO], "startTime": at("09:00:00"),
                   "endTime": {"dateTime": "2031-05-20T09:00:00", "timeZone": "UTC"}}),
            "65 days",
        ),
        (
            json!({"schedules": [DEMO], "startTime": at("09:00:00"), "endTime": at("10:00:00"), "availabilityViewInterval": 4}),
            "interval 4",
        ),
        (
            json!({"schedules": [DEMO], "startTime": at("09:00:00"), "endTime": at("10:00:00"), "availabilityViewInterval": 1441}),
            "interval 1441",
        ),
        (
            json!({"schedules": [DEMO], "endTime": at("10:00:00")}),
            "no start",
        ),
        (
            json!({"startTime": at("09:00:00"), "endTime": at("10:00:00")}),
            "no schedules",
        ),
        (
            json!({"schedules": [DEMO], "startTime": at("10:00:00"), "endTime": at("09:00:00")}),
            "backwards",
        ),
    ] {
        let reply = schedule(&h, &body, &[]).await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "{what}: {}",
            reply.text
        );
        assert_eq!(reply.error_code(), "ErrorInvalidParameter", "{what}");
    }
    let reply = schedule(
        &h,
        &json!({"schedules": [DEMO], "startTime": {"dateTime": "2031-03-16T09:00:00", "timeZone": "Atlantis Time"}, "endTime": at("10:00:00")}),
        &[],
    )
    .await;
    assert_eq!(reply.error_code(), "TimeZoneNotSupportedException");
}

#[tokio::test]
async fn get_schedule_needs_a_calendar_permission() {
    let mail_only = AppRegistration::confidential(
        "7d3e1a4c-9f5b-4a0c-b8e3-2b4a5f6c7d8e",
        "mail-only-secret",
        "mail-only",
        ["Mail.Read"],
    );
    let mut config = EmulatorConfig::default();
    config.apps.push(mail_only.clone());
    let h = start_with(config).await;
    let token = fetch_token(
        &h.client,
        &h.emu.base_url(),
        &mail_only.client_id,
        &mail_only.client_secret,
    )
    .await;
    let body = json!({"schedules": [DEMO], "startTime": at("09:00:00"), "endTime": at("10:00:00")});
    let reply = h
        .call(
            Method::POST,
            &format!("/users/{DEMO}/calendar/getSchedule"),
            Some(&body),
            Some(&token),
            &[],
        )
        .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    assert_eq!(reply.error_code(), "ErrorAccessDenied");
    let basic = h
        .emu
        .emulator
        .issue_delegated_token(DEFAULT_CLIENT_ID, DEMO, &["Calendars.ReadBasic"])
        .expect("token");
    let reply = h
        .call(
            Method::POST,
            "/me/calendar/getSchedule",
            Some(&body),
            Some(&basic),
            &[],
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
}
