//! Free/busy (`POST /calendar/getSchedule`) and `GET /mailboxSettings`.

use serde_json::{Map, Value, json};

use super::super::GraphResponse;
use super::super::errors::GraphError;
use super::events::date_time_time_zone;
use super::odata::single_entity_only;
use super::{Cx, body_read, get_ci, invalid_parameter};
use crate::calendar::recurrence::DAY_NAMES;
use crate::calendar::{CalendarStore, WorkingHours, instances, tz};
use crate::mail::has_mailbox;

/// At most this many schedules per request.
pub(crate) const MAX_SCHEDULES: usize = 100;
/// The longest window getSchedule takes.
pub(crate) const MAX_WINDOW_DAYS: i64 = 62;

fn working_hours(w: &WorkingHours) -> Value {
    json!({
        "daysOfWeek": w.days.iter().map(|d| DAY_NAMES[*d as usize]).collect::<Vec<_>>(),
        "startTime": format!("{:02}:00:00.0000000", w.start_hour),
        "endTime": format!("{:02}:00:00.0000000", w.end_hour),
        "timeZone": {"name": w.time_zone},
    })
}

/// `(rank, digit)` of a free/busy status in the availability view: the strongest status
/// of a slot wins.
fn rank(status: &str) -> (u8, char) {
    match status {
        "oof" => (4, '3'),
        "busy" => (3, '2'),
        "workingElsewhere" => (2, '4'),
        "tentative" => (1, '1'),
        _ => (0, '0'),
    }
}

pub(super) fn get_schedule(
    cx: &Cx<'_>,
    store: &mut CalendarStore,
) -> Result<GraphResponse, GraphError> {
    let obj = cx.json_body()?;
    for key in obj.keys() {
        if ![
            "schedules",
            "startTime",
            "endTime",
            "availabilityViewInterval",
        ]
        .iter()
        .any(|k| k.eq_ignore_ascii_case(key))
        {
            return Err(body_read(format!(
                "The property '{key}' does not exist on the parameters of 'getSchedule'."
            )));
        }
    }
    let schedules: Vec<String> = match get_ci(&obj, "schedules") {
        Some(Value::Array(list)) => list
            .iter()
            .map(|s| {
                s.as_str()
                    .map(|s| s.trim().to_string())
                    .ok_or_else(|| invalid_parameter("schedules must be a list of SMTP addresses."))
            })
            .collect::<Result<_, _>>()?,
        _ => return Err(invalid_parameter("The parameter 'schedules' is required.")),
    };
    if schedules.is_empty() {
        return Err(invalid_parameter(
            "The parameter 'schedules' must name at least one address.",
        ));
    }
    if schedules.len() > MAX_SCHEDULES {
        return Err(invalid_parameter(format!(
            "The parameter 'schedules' names {} addresses; at most {MAX_SCHEDULES} are allowed.",
            schedules.len()
        )));
    }
    let bound = |name: &str| -> Result<i64, GraphError> {
        let v = get_ci(&obj, name)
            .filter(|v| !v.is_null())
            .ok_or_else(|| invalid_parameter(format!("The parameter '{name}' is required.")))?;
        Ok(date_time_time_zone(name, v)?.0)
    };
    let (from, to) = (bound("startTime")?, bound("endTime")?);
    if to <= from {
        return Err(invalid_parameter(
            "The parameter 'endTime' must be after 'startTime'.",
        ));
    }
    if to - from > MAX_WINDOW_DAYS * 86_400 {
        return Err(invalid_parameter(format!(
            "The requested time window exceeds the maximum of {MAX_WINDOW_DAYS} days."
        )));
    }
    let interval = match get_ci(&obj, "availabilityViewInterval") {
        None | Some(Value::Null) => 30,
        Some(v) => v.as_i64().filter(|n| (5..=1440).contains(n)).ok_or_else(|| {
            invalid_parameter(format!(
                "The parameter 'availabilityViewInterval' ({v}) must be an integer from 5 to 1440."
            ))
        })?,
    };
    let (zone_name, zone) = cx.out_zone();
    let slots = ((to - from) + interval * 60 - 1) / (interval * 60);
    let mut value = Vec::new();
    for address in &schedules {
        let Some(u) = cx
            .tenant
            .find_user_or_address(address)
            .filter(|&u| has_mailbox(cx.tenant, u))
        else {
            value.push(json!({
                "scheduleId": address,
                "availabilityView": "",
                "scheduleItems": [],
                "error": {
                    "message": format!("Microsoft.Exchange.InfoWorker.Common.Availability.MailRecipientNotFoundException: Unable to resolve e-mail address <{address}> to an Active Directory object."),
                    "responseCode": "ErrorMailRecipientNotFound",
                },
            }));
            continue;
        };
        let b = store.get(cx.tenant, u);
        let default = b.default_calendar();
        let mut busy: Vec<(i64, i64, &'static str, bool, String, String)> = b
            .events
            .iter()
            .filter(|e| e.calendar == default)
            .flat_map(|e| instances(e, from, to))
            .filter_map(|inst| {
                let d = inst.data();
                let shows = !d.is_cancelled && !matches!(d.show_as, "free" | "unknown");
                shows.then(|| {
                    (
                        inst.start,
                        inst.end,
                        d.show_as,
                        matches!(d.sensitivity, "private" | "confidential"),
                        d.subject.clone(),
                        d.location.clone(),
                    )
                })
            })
            .collect();
        busy.sort_by_key(|i| (i.0, i.1));
        let view: String = (0..slots)
            .map(|k| {
                let s = from + k * interval * 60;
                let e = (s + interval * 60).min(to);
                busy.iter()
                    .filter(|i| i.0 < e && i.1 > s)
                    .map(|i| rank(i.2))
                    .max_by_key(|r| r.0)
                    .map_or('0', |r| r.1)
            })
            .collect();
        let items: Vec<Value> = busy
            .iter()
            .map(|(start, end, status, private, subject, location)| {
                let mut item = Map::new();
                item.insert("isPrivate".into(), json!(private));
                item.insert("status".into(), json!(status));
                if !private {
                    item.insert("subject".into(), json!(subject));
                    item.insert("location".into(), json!(location));
                }
                item.insert(
                    "start".into(),
                    tz::date_time_time_zone(*start, &zone, &zone_name),
                );
                item.insert(
                    "end".into(),
                    tz::date_time_time_zone(*end, &zone, &zone_name),
                );
                Value::Object(item)
            })
            .collect();
        value.push(json!({
            "scheduleId": address,
            "availabilityView": view,
            "scheduleItems": items,
            "workingHours": working_hours(&b.working_hours),
        }));
    }
    Ok(GraphResponse::json(json!({
        "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#Collection(microsoft.graph.scheduleInformation)",
        "value": value,
    })))
}

/// `GET /mailboxSettings`: the owner's time zone, working hours, locale and formats.
pub(super) fn mailbox_settings(
    cx: &Cx<'_>,
    store: &mut CalendarStore,
) -> Result<GraphResponse, GraphError> {
    single_entity_only(cx)?;
    let b = store.get(cx.tenant, cx.owner);
    let w = &b.working_hours;
    // `$select=timeZone,workingHours` narrows the answer (checked below).
    let (locale, language, date_format, time_format) = match w.time_zone {
        "GMT Standard Time" => ("en-GB", "English (United Kingdom)", "dd/MM/yyyy", "HH:mm"),
        "W. Europe Standard Time" => ("de-DE", "German (Germany)", "dd.MM.yyyy", "HH:mm"),
        "India Standard Time" => ("en-IN", "English (India)", "dd-MM-yyyy", "h:mm tt"),
        _ => ("en-US", "English (United States)", "M/d/yyyy", "h:mm tt"),
    };
    let today = tz::format_local(tz::local(
        cx.now - cx.now.rem_euclid(86_400),
        &jiff::tz::TimeZone::UTC,
    ));
    let mut body = Map::new();
    body.insert(
        "@odata.context".into(),
        json!(cx.context("/mailboxSettings")),
    );
    let mut props = Map::new();
    props.insert("timeZone".into(), json!(w.time_zone));
    props.insert(
        "automaticRepliesSetting".into(),
        json!({
            "status": "disabled",
            "externalAudience": "all",
            "internalReplyMessage": "",
            "externalReplyMessage": "",
            "scheduledStartDateTime": {"dateTime": today, "timeZone": "UTC"},
            "scheduledEndDateTime": {"dateTime": today, "timeZone": "UTC"},
        }),
    );
    props.insert("dateFormat".into(), json!(date_format));
    props.insert("timeFormat".into(), json!(time_format));
    props.insert(
        "delegateMeetingMessageDeliveryOptions".into(),
        json!("sendToDelegateOnly"),
    );
    props.insert("userPurpose".into(), json!("user"));
    props.insert(
        "language".into(),
        json!({"locale": locale, "displayName": language}),
    );
    props.insert("workingHours".into(), working_hours(w));
    if let Some(raw) = &cx.query.select {
        let wanted: Vec<&str> = raw.split(',').map(str::trim).collect();
        for name in &wanted {
            if !props.keys().any(|k| k.eq_ignore_ascii_case(name)) {
                return Err(GraphError::bad_request(format!(
                    "Could not find a property named '{name}' on type 'microsoft.graph.mailboxSettings'."
                )));
            }
        }
        props.retain(|k, _| wanted.iter().any(|w| w.eq_ignore_ascii_case(k)));
    }
    body.extend(props);
    Ok(GraphResponse::json(Value::Object(body)))
}
