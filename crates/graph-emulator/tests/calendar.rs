//! Calendars and events: calendars, event shapes, `Prefer: outlook.timezone`, creating,
//! updating and deleting, `transactionId`, meetings (delivery, responses, cancel),
//! calendar views, query options, permissions, `$batch`, mailbox settings.

mod common;

use common::*;
use graph_emulator::{AppRegistration, DEFAULT_CLIENT_ID, DEMO_USER_UPN, EmulatorConfig};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const DEMO: &str = DEMO_USER_UPN;

fn values(body: &Value) -> Vec<Value> {
    body["value"].as_array().cloned().unwrap_or_default()
}

fn is_seven_digit(dt: &str) -> bool {
    let b = dt.as_bytes();
    dt.len() == 27
        && b[4] == b'-'
        && b[10] == b'T'
        && b[19] == b'.'
        && dt[20..].bytes().all(|c| c.is_ascii_digit())
}

/// A window of `days` days around now, as calendarView query parameters (UTC).
fn window(days_before: i64, days_after: i64) -> String {
    let now = jiff::Timestamp::now().as_second();
    let fmt = |t: i64| {
        jiff::Timestamp::from_second(t)
            .expect("ts")
            .strftime("%Y-%m-%dT%H:%M:%SZ")
            .to_string()
    };
    format!(
        "startDateTime={}&endDateTime={}",
        fmt(now - days_before * 86_400),
        fmt(now + days_after * 86_400)
    )
}

/// The demo user's direct reports' mail addresses, in order.
async fn demo_reports(h: &Harness) -> Vec<String> {
    let reply = h
        .get(&format!("/users/{DEMO}/directReports?$select=mail"))
        .await;
    values(&reply.json())
        .iter()
        .filter_map(|u| u["mail"].as_str().map(str::to_string))
        .collect()
}

async fn manager_of(h: &Harness, upn: &str) -> String {
    h.get(&format!("/users/{upn}/manager?$select=mail"))
        .await
        .json()["mail"]
        .as_str()
        .expect("manager mail")
        .to_string()
}

fn new_event(subject: &str, start: &str, end: &str, zone: &str) -> Value {
    json!({
        "subject": subject,
        "body": {"contentType": "HTML", "content": "Does noon work for you?"},
        "start": {"dateTime": start, "timeZone": zone},
        "end": {"dateTime": end, "timeZone": zone},
        "location": {"displayName": "Harry's Bar"},
    })
}

#[tokio::test]
async fn the_demo_user_has_a_default_calendar_and_two_more() {
    let h = start().await;
    let reply = h.get(&format!("/users/{DEMO}/calendars")).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let list = values(&reply.json());
    let names: Vec<&str> = list.iter().filter_map(|c| c["name"].as_str()).collect();
    assert_eq!(names, ["Calendar", "Team calendar", "Project Trailhead"]);
    assert_eq!(list[0]["isDefaultCalendar"], true);
    assert_eq!(list[1]["isDefaultCalendar"], false);
    assert_eq!(list[0]["owner"]["address"], DEMO);
    assert_eq!(list[0]["canEdit"], true);
    let default = h.get(&format!("/users/{DEMO}/calendar")).await.json();
    assert_eq!(default["id"], list[0]["id"]);
    let team_id = list[1]["id"].as_str().expect("id");
    let team = h
        .get(&format!("/users/{DEMO}/calendars/{}", enc(team_id)))
        .await;
    assert_eq!(team.status, StatusCode::OK, "{}", team.text);
    assert_eq!(team.json()["name"], "Team calendar");
    let team_events = h
        .get(&format!("/users/{DEMO}/calendars/{}/events", enc(team_id)))
        .await
        .json();
    let subjects: Vec<&str> = values(&team_events)
        .iter()
        .filter_map(|e| e["subject"].as_str())
        .map(|s| s.to_owned().leak() as &str)
        .collect();
    assert!(subjects.contains(&"Team lunch"), "{subjects:?}");
    // Others have just the default calendar; guests have no mailbox.
    let mgr = manager_of(&h, DEMO).await;
    let theirs = h.get(&format!("/users/{mgr}/calendars")).await.json();
    assert_eq!(values(&theirs).len(), 1);
}

#[tokio::test]
async fn events_show_every_graph_property_with_seven_digit_utc_times() {
    let h = start().await;
    let reply = h.get(&format!("/users/{DEMO}/events?$top=5")).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let body = reply.json();
    let demo_id = h.user_id(DEMO).await;
    assert_eq!(
        body["@odata.context"],
        format!("https://graph.microsoft.com/v1.0/$metadata#users('{demo_id}')/events")
    );
    let e = &values(&body)[0];
    let expected = sorted(vec![
        "@odata.etag",
        "id",
        "createdDateTime",
        "lastModifiedDateTime",
        "changeKey",
        "categories",
        "transactionId",
        "originalStartTimeZone",
        "originalEndTimeZone",
        "iCalUId",
        "reminderMinutesBeforeStart",
        "isReminderOn",
        "hasAttachments",
        "subject",
        "bodyPreview",
        "importance",
        "sensitivity",
        "isAllDay",
        "isCancelled",
        "isOrganizer",
        "responseRequested",
        "seriesMasterId",
        "showAs",
        "type",
        "webLink",
        "onlineMeetingUrl",
        "isOnlineMeeting",
        "onlineMeetingProvider",
        "allowNewTimeProposals",
        "isDraft",
        "hideAttendees",
        "responseStatus",
        "body",
        "start",
        "end",
        "location",
        "locations",
        "recurrence",
        "attendees",
        "organizer",
        "onlineMeeting",
    ]);
    assert_eq!(keys(e), expected);
    for v in values(&body) {
        let start = v["start"]["dateTime"].as_str().expect("start");
        assert!(is_seven_digit(start), "{start}");
        assert_eq!(v["start"]["timeZone"], "UTC");
        assert!(["singleInstance", "seriesMaster"].contains(&v["type"].as_str().unwrap_or("")));
    }
    assert!(
        body["@odata.nextLink"]
            .as_str()
            .is_some_and(|l| l.starts_with("http") && l.contains("$skip=5")),
        "{body}"
    );
}

#[tokio::test]
async fn prefer_outlook_timezone_converts_times_and_unknown_zones_are_refused() {
    let h = start().await;
    let created = h
        .post(
            &format!("/users/{DEMO}/events"),
            &new_event(
                "Zone check",
                "2024-07-01T09:00:00",
                "2024-07-01T10:30:00",
                "Pacific Standard Time",
            ),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let e = created.json();
    assert_eq!(e["start"]["dateTime"], "2024-07-01T16:00:00.0000000");
    assert_eq!(e["start"]["timeZone"], "UTC");
    assert_eq!(e["originalStartTimeZone"], "Pacific Standard Time");
    let id = enc(e["id"].as_str().expect("id"));
    let path = format!("/users/{DEMO}/events/{id}");
    for (zone, start) in [
        ("Europe/Berlin", "2024-07-01T18:00:00.0000000"),
        ("W. Europe Standard Time", "2024-07-01T18:00:00.0000000"),
        ("Pacific Standard Time", "2024-07-01T09:00:00.0000000"),
        ("America/Los_Angeles", "2024-07-01T09:00:00.0000000"),
        ("Eastern Standard Time", "2024-07-01T12:00:00.0000000"),
        ("India Standard Time", "2024-07-01T21:30:00.0000000"),
        ("Tokyo Standard Time", "2024-07-02T01:00:00.0000000"),
        ("AUS Eastern Standard Time", "2024-07-02T02:00:00.0000000"),
        ("GMT Standard Time", "2024-07-01T17:00:00.0000000"),
        ("UTC", "2024-07-01T16:00:00.0000000"),
    ] {
        let prefer = format!("outlook.timezone=\"{zone}\"");
        let reply = h.get_with(&path, &[("Prefer", &prefer)]).await;
        assert_eq!(reply.status, StatusCode::OK, "{zone}: {}", reply.text);
        assert_eq!(reply.header("preference-applied"), Some(prefer.as_str()));
        let body = reply.json();
        assert_eq!(body["start"]["dateTime"], start, "{zone}");
        assert_eq!(body["start"]["timeZone"], zone);
        assert!(is_seven_digit(
            body["end"]["dateTime"].as_str().expect("end")
        ));
    }
    let reply = h
        .get_with(
            &path,
            &[("Prefer", "outlook.timezone=\"Mars/Olympus Mons\"")],
        )
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.text);
    assert_eq!(reply.error_code(), "TimeZoneNotSupportedException");
    // An unknown zone in the body is refused the same way.
    let reply = h
        .post(
            &format!("/users/{DEMO}/events"),
            &new_event(
                "Bad zone",
                "2024-07-01T09:00:00",
                "2024-07-01T10:00:00",
                "Nowhere Standard Time",
            ),
        )
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.text);
    assert_eq!(reply.error_code(), "TimeZoneNotSupportedException");
}

#[tokio::test]
async fn events_are_created_read_updated_and_deleted() {
    let h = start().await;
    let mut body = new_event(
        "Let's go for lunch",
        "2024-04-15T12:00:00",
        "2024-04-15T14:00:00",
        "UTC",
    );
    body["categories"] = json!(["Red category"]);
    body["isOnlineMeeting"] = json!(true);
    body["onlineMeetingProvider"] = json!("teamsForBusiness");
    let created = h.post(&format!("/users/{DEMO}/events"), &body).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let e = created.json();
    assert_eq!(e["type"], "singleInstance");
    assert_eq!(e["isOrganizer"], true);
    assert_eq!(e["responseStatus"]["response"], "organizer");
    assert_eq!(e["organizer"]["emailAddress"]["address"], DEMO);
    assert_eq!(e["location"]["displayName"], "Harry's Bar");
    assert_eq!(e["categories"], json!(["Red category"]));
    assert!(
        e["onlineMeeting"]["joinUrl"]
            .as_str()
            .is_some_and(|u| u.starts_with("https://teams.microsoft.com/l/meetup-join/")),
        "{e}"
    );
    assert!(
        e["iCalUId"]
            .as_str()
            .is_some_and(|u| u.starts_with("040000008200E00074C5B7101A82E008"))
    );
    let id = e["id"].as_str().expect("id").to_string();
    let path = format!("/users/{DEMO}/events/{}", enc(&id));

    let got = h.get(&path).await;
    assert_eq!(got.status, StatusCode::OK, "{}", got.text);
    assert_eq!(got.json()["subject"], "Let's go for lunch");

    let patched = h
        .patch(&path, &json!({"subject": "Let's go brunch", "end": {"dateTime": "2024-04-15T13:00:00", "timeZone": "UTC"}}))
        .await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.text);
    let p = patched.json();
    assert_eq!(p["subject"], "Let's go brunch");
    assert_eq!(p["end"]["dateTime"], "2024-04-15T13:00:00.0000000");
    assert_ne!(p["changeKey"], e["changeKey"]);
    assert_eq!(p["id"], e["id"]);

    let selected = h.get(&format!("{path}?$select=subject,start")).await.json();
    assert_eq!(
        keys(&selected),
        sorted(vec![
            "@odata.context",
            "@odata.etag",
            "id",
            "start",
            "subject"
        ])
    );

    let bad = h.patch(&path, &json!({"bogus": 1})).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert_eq!(bad.error_code(), "RequestBodyRead");
    let backwards = h
        .patch(
            &path,
            &json!({"end": {"dateTime": "2024-04-14T13:00:00", "timeZone": "UTC"}}),
        )
        .await;
    assert_eq!(backwards.status, StatusCode::BAD_REQUEST);
    assert_eq!(backwards.error_code(), "ErrorPropertyValidationFailure");

    let deleted = h.delete(&path).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    let gone = h.get(&path).await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
    assert_eq!(gone.error_code(), "ErrorItemNotFound");
}

#[tokio::test]
async fn unknown_ids_are_not_found_and_malformed_ids_are_refused() {
    let h = start().await;
    let unknown = "AAMkADAwATM3ZmYAZS05ZTg2LTQwZDItYmE4Zi1hNWY5ZmVlNGYwNTQARgAAAAAA";
    let reply = h.get(&format!("/users/{DEMO}/events/{unknown}")).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND, "{}", reply.text);
    assert_eq!(reply.error_code(), "ErrorItemNotFound");
    let reply = h.get(&format!("/users/{DEMO}/events/not-an-id")).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.text);
    assert_eq!(reply.error_code(), "ErrorInvalidIdMalformed");
    let reply = h.get(&format!("/users/{DEMO}/calendars/{unknown}")).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_eq!(reply.error_code(), "ErrorItemNotFound");
    let reply = h.get(&format!("/users/{DEMO}/calendars/Work/events")).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.error_code(), "ErrorInvalidIdMalformed");
    let guest = h
        .get("/users?$filter=userType eq 'Guest'&$select=id")
        .await
        .json();
    let guest_id = guest["value"][0]["id"].as_str().expect("guest");
    let reply = h.get(&format!("/users/{guest_id}/events")).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_eq!(reply.error_code(), "MailboxNotEnabledForRESTAPI");
}

#[tokio::test]
async fn a_second_post_with_the_same_transaction_id_returns_the_first_event() {
    let h = start().await;
    let mut body = new_event(
        "Idempotent",
        "2024-05-01T09:00:00",
        "2024-05-01T09:30:00",
        "UTC",
    );
    body["transactionId"] = json!("7E163156-7762-4BEB-A1C6-729EA81755A7");
    let first = h.post(&format!("/users/{DEMO}/events"), &body).await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.text);
    body["subject"] = json!("Idempotent, again");
    let second = h.post(&format!("/users/{DEMO}/events"), &body).await;
    assert_eq!(second.status, StatusCode::CREATED, "{}", second.text);
    assert_eq!(first.json()["id"], second.json()["id"]);
    assert_eq!(second.json()["subject"], "Idempotent");
    assert_eq!(
        second.json()["transactionId"],
        "7E163156-7762-4BEB-A1C6-729EA81755A7"
    );
    let found = h
        .get(&format!(
            "/users/{DEMO}/events?$filter=subject eq 'Idempotent'&$select=id"
        ))
        .await
        .json();
    assert_eq!(values(&found).len(), 1);
    // Another calendar is another scope.
    let team = values(&h.get(&format!("/users/{DEMO}/calendars")).await.json())[1]["id"]
        .as_str()
        .expect("id")
        .to_string();
    let third = h
        .post(
            &format!("/users/{DEMO}/calendars/{}/events", enc(&team)),
            &body,
        )
        .await;
    assert_eq!(third.status, StatusCode::CREATED);
    assert_ne!(third.json()["id"], first.json()["id"]);
}

#[tokio::test]
async fn meeting_invitations_reach_attendees_and_responses_reach_the_organiser() {
    let h = start().await;
    let reports = demo_reports(&h).await;
    let (a, b) = (&reports[0], &reports[1]);
    let mut body = new_event(
        "Design review: tents",
        "2030-03-04T17:00:00",
        "2030-03-04T18:00:00",
        "UTC",
    );
    body["attendees"] = json!([
        {"emailAddress": {"address": a, "name": "A"}, "type": "required"},
        {"emailAddress": {"address": b}, "type": "optional"},
        {"emailAddress": {"address": "someone@fabrikam.example"}, "type": "required"},
    ]);
    let created = h.post(&format!("/users/{DEMO}/events"), &body).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let e = created.json();
    let ical = e["iCalUId"].clone();
    assert_eq!(e["attendees"].as_array().expect("attendees").len(), 3);
    assert_eq!(e["attendees"][0]["status"]["response"], "none");

    // The attendee's copy and the meeting request.
    let copies = h
        .get(&format!(
            "/users/{a}/events?$filter=subject eq 'Design review: tents'"
        ))
        .await
        .json();
    let copy = &values(&copies)[0];
    assert_eq!(copy["iCalUId"], ical);
    assert_eq!(copy["isOrganizer"], false);
    assert_eq!(copy["responseStatus"]["response"], "notResponded");
    assert_eq!(copy["organizer"]["emailAddress"]["address"], DEMO);
    assert_ne!(copy["id"], e["id"]);
    let inbox = h
        .get(&format!(
            "/users/{a}/mailFolders/inbox/messages?$filter=subject eq 'Design review: tents'"
        ))
        .await
        .json();
    let request = &values(&inbox)[0];
    assert_eq!(
        request["@odata.type"],
        "#microsoft.graph.eventMessageRequest"
    );
    assert_eq!(request["from"]["emailAddress"]["address"], DEMO);

    // Accept: the copy and the organiser's attendee list change.
    let copy_path = format!(
        "/users/{a}/events/{}",
        enc(copy["id"].as_str().expect("id"))
    );
    let reply = h
        .post(
            &format!("{copy_path}/accept"),
            &json!({"comment": "See you there", "sendResponse": true}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.text);
    assert!(reply.text.is_empty());
    let copy = h.get(&copy_path).await.json();
    assert_eq!(copy["responseStatus"]["response"], "accepted");
    assert_eq!(copy["showAs"], "busy");
    let organiser_path = format!(
        "/users/{DEMO}/events/{}",
        enc(e["id"].as_str().expect("id"))
    );
    let organiser = h.get(&organiser_path).await.json();
    assert_eq!(organiser["attendees"][0]["status"]["response"], "accepted");
    assert_ne!(
        organiser["attendees"][0]["status"]["time"],
        "0001-01-01T00:00:00Z"
    );
    let responses = h
        .get(&format!("/users/{DEMO}/mailFolders/inbox/messages?$filter=subject eq 'Accepted: Design review: tents'"))
        .await
        .json();
    assert_eq!(values(&responses).len(), 1);

    // Tentative and decline from the other attendee.
    let b_copy = &values(
        &h.get(&format!(
            "/users/{b}/events?$filter=iCalUId eq '{}'",
            ical.as_str().expect("ical")
        ))
        .await
        .json(),
    )[0];
    let b_path = format!(
        "/users/{b}/events/{}",
        enc(b_copy["id"].as_str().expect("id"))
    );
    let reply = h
        .post(
            &format!("{b_path}/tentativelyAccept"),
            &json!({"sendResponse": false}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.text);
    let organiser = h.get(&organiser_path).await.json();
    assert_eq!(
        organiser["attendees"][1]["status"]["response"],
        "tentativelyAccepted"
    );
    let reply = h.post(&format!("{b_path}/decline"), &json!({})).await;
    assert_eq!(reply.status, StatusCode::ACCEPTED);
    let organiser = h.get(&organiser_path).await.json();
    assert_eq!(organiser["attendees"][1]["status"]["response"], "declined");
    assert_eq!(h.get(&b_path).await.json()["showAs"], "free");

    // The organiser can't respond to their own meeting.
    let reply = h
        .post(&format!("{organiser_path}/accept"), &json!({}))
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.error_code(), "ErrorInvalidRequest");

    // Organiser changes reach the copies.
    let reply = h
        .patch(
            &organiser_path,
            &json!({"location": {"displayName": "Room 4B (Alder)"}}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(
        h.get(&copy_path).await.json()["location"]["displayName"],
        "Room 4B (Alder)"
    );
    assert_eq!(
        h.get(&copy_path).await.json()["responseStatus"]["response"],
        "accepted"
    );
}

#[tokio::test]
async fn cancelling_a_meeting_cancels_every_copy_and_removes_the_organisers_event() {
    let h = start().await;
    let reports = demo_reports(&h).await;
    let a = &reports[0];
    let mut body = new_event(
        "Trail run planning",
        "2030-03-05T17:00:00",
        "2030-03-05T18:00:00",
        "UTC",
    );
    body["attendees"] = json!([{"emailAddress": {"address": a}, "type": "required"}]);
    let e = h.post(&format!("/users/{DEMO}/events"), &body).await.json();
    let organiser_path = format!(
        "/users/{DEMO}/events/{}",
        enc(e["id"].as_str().expect("id"))
    );
    let copy = values(
        &h.get(&format!(
            "/users/{a}/events?$filter=subject eq 'Trail run planning'"
        ))
        .await
        .json(),
    )[0]
    .clone();
    let copy_path = format!(
        "/users/{a}/events/{}",
        enc(copy["id"].as_str().expect("id"))
    );
    // Only the organiser cancels.
    let reply = h
        .post(&format!("{copy_path}/cancel"), &json!({"comment": "no"}))
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.error_code(), "ErrorInvalidRequest");

    let reply = h
        .post(
            &format!("{organiser_path}/cancel"),
            &json!({"comment": "Rain forecast."}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.text);
    assert_eq!(h.get(&organiser_path).await.status, StatusCode::NOT_FOUND);
    let copy = h.get(&copy_path).await.json();
    assert_eq!(copy["isCancelled"], true);
    assert_eq!(copy["subject"], "Canceled: Trail run planning");
    let notice = h
        .get(&format!("/users/{a}/mailFolders/inbox/messages?$filter=subject eq 'Canceled: Trail run planning'"))
        .await
        .json();
    assert_eq!(values(&notice).len(), 1);
    let cancelled = h
        .get(&format!(
            "/users/{a}/events?$filter=isCancelled eq true&$select=subject"
        ))
        .await
        .json();
    assert!(
        values(&cancelled)
            .iter()
            .any(|e| e["subject"] == "Canceled: Trail run planning")
    );
}

#[tokio::test]
async fn calendar_view_needs_a_window_and_lists_occurrences_not_series_masters() {
    let h = start().await;
    for query in [
        "",
        "?startDateTime=2024-01-01T00:00:00Z",
        "?endDateTime=2024-01-01T00:00:00Z",
    ] {
        let reply = h.get(&format!("/users/{DEMO}/calendarView{query}")).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{query}");
        assert_eq!(reply.error_code(), "ErrorInvalidParameter");
    }
    let reply = h
        .get(&format!(
            "/users/{DEMO}/calendarView?startDateTime=soon&endDateTime=later"
        ))
        .await;
    assert_eq!(reply.error_code(), "ErrorInvalidParameter");

    let (items, _) = h
        .get_all(
            &format!("/users/{DEMO}/calendarView?{}&$top=100", window(14, 14)),
            &[],
        )
        .await;
    assert!(items.len() > 20, "{}", items.len());
    assert!(items.iter().all(|e| e["type"] != "seriesMaster"));
    let standups: Vec<&Value> = items
        .iter()
        .filter(|e| e["subject"] == "Daily stand-up")
        .collect();
    assert!(standups.len() >= 15, "{}", standups.len());
    let master = standups[0]["seriesMasterId"].as_str().expect("master");
    assert!(standups.iter().all(|s| s["seriesMasterId"] == master));
    let ids: std::collections::HashSet<&str> =
        standups.iter().filter_map(|s| s["id"].as_str()).collect();
    assert_eq!(ids.len(), standups.len(), "distinct occurrence ids");
    // This week's Wednesday moved (an exception), Friday's was cancelled.
    let exceptions: Vec<&&Value> = standups
        .iter()
        .filter(|s| s["type"] == "exception")
        .collect();
    assert_eq!(exceptions.len(), 1, "{exceptions:?}");
    assert_eq!(exceptions[0]["location"]["displayName"], "Room 4B (Alder)");
    assert!(standups.iter().any(|s| s["type"] == "occurrence"));
    // Sorted by start; times inside the window; no Friday of the anchor week... the
    // gap shows as one weekday fewer than the week has.
    let starts: Vec<&str> = items
        .iter()
        .filter_map(|e| e["start"]["dateTime"].as_str())
        .collect();
    let mut sorted_starts = starts.clone();
    sorted_starts.sort();
    assert_eq!(starts, sorted_starts);
    // Occurrence ids are stable and resolve.
    let again = h
        .get(&format!(
            "/users/{DEMO}/calendarView?{}&$top=100",
            window(14, 14)
        ))
        .await
        .json();
    assert!(values(&again).iter().any(|e| e["id"] == standups[0]["id"]));
    let one = h
        .get(&format!(
            "/users/{DEMO}/events/{}",
            enc(standups[0]["id"].as_str().expect("id"))
        ))
        .await;
    assert_eq!(one.status, StatusCode::OK, "{}", one.text);
    assert_eq!(one.json()["type"], standups[0]["type"]);
    // The series master reads with its recurrence.
    let m = h
        .get(&format!("/users/{DEMO}/events/{}", enc(master)))
        .await
        .json();
    assert_eq!(m["type"], "seriesMaster");
    assert_eq!(m["recurrence"]["pattern"]["type"], "weekly");
    assert_eq!(
        m["recurrence"]["pattern"]["daysOfWeek"],
        json!(["monday", "tuesday", "wednesday", "thursday", "friday"])
    );
    assert_eq!(m["recurrence"]["range"]["type"], "noEnd");
    assert_eq!(
        m["recurrence"]["range"]["recurrenceTimeZone"],
        "Pacific Standard Time"
    );
    // /calendar/calendarView is the same view; another calendar has its own.
    let same = h
        .get(&format!(
            "/users/{DEMO}/calendar/calendarView?{}&$top=100",
            window(14, 14)
        ))
        .await
        .json();
    assert_eq!(values(&same).len(), values(&again).len());
}

#[tokio::test]
async fn event_lists_page_select_sort_and_filter() {
    let h = start().await;
    let (all, pages) = h
        .get_all(&format!("/users/{DEMO}/events?$top=7"), &[])
        .await;
    assert!(pages >= 3, "{pages}");
    let ids: std::collections::HashSet<&str> =
        all.iter().filter_map(|e| e["id"].as_str()).collect();
    assert_eq!(ids.len(), all.len());
    let reply = h.get(&format!("/users/{DEMO}/events?$top=0")).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.error_code(), "ErrorInvalidArgument");
    let reply = h.get(&format!("/users/{DEMO}/events?$top=1001")).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);

    let desc = h
        .get(&format!(
            "/users/{DEMO}/events?$orderby=start/dateTime desc&$top=1000&$select=start"
        ))
        .await
        .json();
    let starts: Vec<String> = values(&desc)
        .iter()
        .map(|e| {
            e["start"]["dateTime"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    let mut expected = starts.clone();
    expected.sort();
    expected.reverse();
    assert_eq!(starts, expected);
    assert_eq!(
        keys(&values(&desc)[0]),
        sorted(vec!["@odata.etag", "id", "start"])
    );

    for (filter, check) in [
        ("subject eq 'Daily stand-up'", "Daily stand-up"),
        ("contains(subject,'stand-up')", "Daily stand-up"),
        (
            "type eq 'seriesMaster' and subject eq 'Daily stand-up'",
            "Daily stand-up",
        ),
    ] {
        let reply = h
            .get(&format!("/users/{DEMO}/events?$filter={filter}&$top=100"))
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{filter}: {}", reply.text);
        let list = values(&reply.json());
        assert!(!list.is_empty(), "{filter}");
        assert!(list.iter().all(|e| e["subject"] == check), "{filter}");
    }
    let blue = h
        .get(&format!(
            "/users/{DEMO}/events?$filter=categories/any(c:c eq 'Blue category')&$top=100"
        ))
        .await
        .json();
    assert!(
        values(&blue)
            .iter()
            .all(|e| e["categories"] == json!(["Blue category"]))
    );
    let bounded = h
        .get(&format!(
            "/users/{DEMO}/events?$filter=start/dateTime ge '2030-01-01T00:00:00' and end/dateTime le '2030-12-31T00:00:00'&$top=100"
        ))
        .await;
    assert_eq!(bounded.status, StatusCode::OK, "{}", bounded.text);
    let created = h
        .post(
            &format!("/users/{DEMO}/events"),
            &new_event(
                "Twenty-thirty",
                "2030-06-01T10:00:00",
                "2030-06-01T11:00:00",
                "UTC",
            ),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED);
    let bounded = h
        .get(&format!(
            "/users/{DEMO}/events?$filter=start/dateTime ge '2030-06-01T10:00:00' and end/dateTime le '2030-06-01T11:00:00'"
        ))
        .await
        .json();
    assert_eq!(values(&bounded).len(), 1, "{bounded}");
    let not_cancelled = h
        .get(&format!(
            "/users/{DEMO}/events?$filter=isCancelled eq false&$count=true&$top=1"
        ))
        .await
        .json();
    assert!(not_cancelled["@odata.count"].as_u64().unwrap_or(0) > 5);
    for bad in ["bogus eq 'x'", "subject eq", "isCancelled eq 'yes'"] {
        let reply = h.get(&format!("/users/{DEMO}/events?$filter={bad}")).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{bad}");
    }
    let reply = h.get(&format!("/users/{DEMO}/events?$select=bogus")).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    let reply = h.get(&format!("/users/{DEMO}/events?$orderby=bogus")).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn calendar_permissions_are_checked_for_apps_and_delegated_callers() {
    let no_calendars = AppRegistration::confidential(
        "5b1c9e2a-7d3f-4e8a-b6c1-0f2e3d4a5b6c",
        "mail-only-secret",
        "mail-only",
        ["Mail.Read", "User.Read.All"],
    );
    let reader = AppRegistration::confidential(
        "6c2d0f3b-8e4a-4f9b-a7d2-1a3f4e5b6c7d",
        "calendar-reader-secret",
        "calendar-reader",
        ["Calendars.Read"],
    );
    let mut config = EmulatorConfig::default();
    config.apps.push(no_calendars.clone());
    config.apps.push(reader.clone());
    let h = start_with(config).await;
    let base = h.emu.base_url();
    let token = fetch_token(
        &h.client,
        &base,
        &no_calendars.client_id,
        &no_calendars.client_secret,
    )
    .await;
    let reply = h
        .call(
            Method::GET,
            &format!("/users/{DEMO}/events"),
            None,
            Some(&token),
            &[],
        )
        .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    assert_eq!(reply.error_code(), "ErrorAccessDenied");
    let token = fetch_token(&h.client, &base, &reader.client_id, &reader.client_secret).await;
    let reply = h
        .call(
            Method::GET,
            &format!("/users/{DEMO}/calendarView?{}", window(1, 1)),
            None,
            Some(&token),
            &[],
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let body = new_event("x", "2024-01-01T10:00:00", "2024-01-01T11:00:00", "UTC");
    let reply = h
        .call(
            Method::POST,
            &format!("/users/{DEMO}/events"),
            Some(&body),
            Some(&token),
            &[],
        )
        .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    assert_eq!(reply.error_code(), "ErrorAccessDenied");

    let emulator = &h.emu.emulator;
    let delegated = |scopes: &[&str]| {
        emulator
            .issue_delegated_token(DEFAULT_CLIENT_ID, DEMO, scopes)
            .expect("token")
    };
    let read = delegated(&["Calendars.Read"]);
    let reply = h
        .call(Method::GET, "/me/events", None, Some(&read), &[])
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let reply = h
        .call(Method::POST, "/me/events", Some(&body), Some(&read), &[])
        .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    let write = delegated(&["Calendars.ReadWrite"]);
    let reply = h
        .call(Method::POST, "/me/events", Some(&body), Some(&write), &[])
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    // Another user's calendar needs a .Shared scope.
    let mgr = manager_of(&h, DEMO).await;
    let reply = h
        .call(
            Method::GET,
            &format!("/users/{mgr}/events"),
            None,
            Some(&read),
            &[],
        )
        .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    let shared = delegated(&["Calendars.Read.Shared"]);
    let reply = h
        .call(
            Method::GET,
            &format!("/users/{mgr}/events"),
            None,
            Some(&shared),
            &[],
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    // Oneself by UPN is as /me.
    let reply = h
        .call(
            Method::GET,
            &format!("/users/{DEMO}/events"),
            None,
            Some(&read),
            &[],
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
}

#[tokio::test]
async fn calendar_routes_work_as_batch_items_and_count_under_their_templates() {
    let h = start().await;
    h.emu.emulator.reset_stats();
    let w = window(7, 7);
    let reply = h
        .batch(&json!({"requests": [
            {"id": "1", "method": "GET", "url": format!("/users/{DEMO}/calendarView?{w}")},
            {"id": "2", "method": "GET", "url": format!("/users/{DEMO}/calendar/calendarView?{w}&$top=3"),
             "headers": {"Prefer": "outlook.timezone=\"Pacific Standard Time\""}},
            {"id": "3", "method": "GET", "url": format!("/users/{DEMO}/contacts?$top=2")},
            {"id": "4", "method": "POST", "url": format!("/users/{DEMO}/calendar/getSchedule"),
             "headers": {"Content-Type": "application/json"},
             "body": {"schedules": [DEMO], "startTime": {"dateTime": "2030-01-06T09:00:00", "timeZone": "UTC"},
                      "endTime": {"dateTime": "2030-01-06T17:00:00", "timeZone": "UTC"}}},
            {"id": "5", "method": "GET", "url": format!("/users/{DEMO}/calendarView")},
        ]}))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let body = reply.json();
    let item = |id: &str| {
        body["responses"]
            .as_array()
            .expect("responses")
            .iter()
            .find(|r| r["id"] == id)
            .cloned()
            .expect("item")
    };
    assert_eq!(item("1")["status"], 200);
    assert!(!values(&item("1")["body"]).is_empty());
    assert_eq!(item("2")["status"], 200);
    assert_eq!(
        values(&item("2")["body"])[0]["start"]["timeZone"],
        "Pacific Standard Time"
    );
    assert_eq!(item("3")["status"], 200);
    assert_eq!(item("4")["status"], 200);
    assert_eq!(item("5")["status"], 400);
    assert_eq!(item("5")["body"]["error"]["code"], "ErrorInvalidParameter");
    let stats = h.emu.emulator.stats();
    let batch_routes = serde_json::to_value(&stats).expect("stats")["batch_item_routes"].clone();
    for key in [
        "GET /users/{id}/calendarView",
        "GET /users/{id}/calendar/calendarView",
        "GET /users/{id}/contacts",
        "POST /users/{id}/calendar/getSchedule",
    ] {
        assert!(batch_routes.get(key).is_some(), "{key}: {batch_routes}");
    }
    let _ = h.get(&format!("/users/{DEMO}/events?$top=1")).await;
    let routes = serde_json::to_value(h.emu.emulator.stats()).expect("stats")["routes"].clone();
    assert!(routes.get("GET /users/{id}/events").is_some(), "{routes}");
}

#[tokio::test]
async fn mailbox_settings_show_each_users_time_zone_and_working_hours() {
    let h = start().await;
    let reply = h.get(&format!("/users/{DEMO}/mailboxSettings")).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let s = reply.json();
    assert_eq!(s["timeZone"], "Pacific Standard Time");
    assert_eq!(s["workingHours"]["startTime"], "08:00:00.0000000");
    assert_eq!(s["workingHours"]["endTime"], "17:00:00.0000000");
    assert_eq!(
        s["workingHours"]["timeZone"]["name"],
        "Pacific Standard Time"
    );
    assert_eq!(
        s["workingHours"]["daysOfWeek"],
        json!(["monday", "tuesday", "wednesday", "thursday", "friday"])
    );
    let mgr = manager_of(&h, DEMO).await;
    let m = h
        .get(&format!("/users/{mgr}/mailboxSettings?$select=timeZone"))
        .await
        .json();
    assert_eq!(m["timeZone"], "Eastern Standard Time");
    assert!(m.get("workingHours").is_none());
    let reports = demo_reports(&h).await;
    let zones = [
        "GMT Standard Time",
        "W. Europe Standard Time",
        "India Standard Time",
    ];
    for (r, zone) in reports.iter().zip(zones) {
        let s = h.get(&format!("/users/{r}/mailboxSettings")).await.json();
        assert_eq!(s["timeZone"], zone, "{r}");
    }
}
