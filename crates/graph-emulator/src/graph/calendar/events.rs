//! Calendars and events: lists, calendar views, reads, creates (with meeting delivery and
//! `transactionId` idempotency), updates and deletes (occurrences become exceptions or
//! disappear), responses (`accept`, `tentativelyAccept`, `decline`) and `cancel`.
//!
//! Meetings: the organiser's event is the source of truth. Every tenant attendee (with a
//! mailbox) gets a copy in their default calendar (same `iCalUId`, `isOrganizer: false`,
//! `responseStatus` `notResponded`) and a `#microsoft.graph.eventMessageRequest` in their
//! Inbox; later changes by the organiser are copied over (`sync_attendees`); responses
//! update the attendee's copy and the organiser's `attendees[].status`; `cancel` (and
//! `DELETE` by the organiser) marks every copy cancelled and removes the organiser's event.

use axum::http::{Method, StatusCode};
use serde_json::{Map, Value};

use super::super::GraphResponse;
use super::super::errors::GraphError;
use super::odata::{self, collection, entity, single_entity_only};
use super::render::{self, CALENDAR_SCHEMA, EVENT_SCHEMA, View};
use super::routes::{CalRef, EventAction};
use super::{
    Cx, body_read, get_ci, invalid_parameter, invalid_request, item_not_found,
    time_zone_not_supported, unknown_folder, validation_failure,
};
use crate::calendar::recurrence::Recurrence;
use crate::calendar::{
    Attendee, CalendarBox, CalendarStore, Event, Instance, instance_at, instances, tz, whole,
};
use crate::mail::{Body, Message, Recipient, has_mailbox};

fn view(cx: &Cx<'_>) -> View {
    let (zone_name, zone) = cx.out_zone();
    View {
        zone,
        zone_name,
        body_text: cx.prefer.body_text == Some(true),
    }
}

/// The id of the calendar a path names (`None`: the default calendar).
fn calendar_id(b: &CalendarBox, cal: Option<&CalRef>) -> Result<String, GraphError> {
    match cal {
        None | Some(CalRef::Default) => Ok(b.default_calendar()),
        Some(CalRef::Id(key)) => b
            .calendar(key.trim())
            .map(|c| c.id.clone())
            .ok_or_else(|| unknown_folder(key)),
    }
}

// --- calendars --------------------------------------------------------------------------

pub(super) fn list_calendars(
    cx: &Cx<'_>,
    store: &mut CalendarStore,
) -> Result<GraphResponse, GraphError> {
    let b = store.get(cx.tenant, cx.owner);
    let tenant_id = &cx.state.config.tenant_id;
    let items = b
        .calendars
        .iter()
        .map(|c| render::calendar(b, c, cx.user_id(), tenant_id))
        .collect();
    collection(cx, &CALENDAR_SCHEMA, "/calendars", items, &[])
}

pub(super) fn get_calendar(
    cx: &Cx<'_>,
    store: &mut CalendarStore,
    cal: &CalRef,
) -> Result<GraphResponse, GraphError> {
    single_entity_only(cx)?;
    let b = store.get(cx.tenant, cx.owner);
    let id = calendar_id(b, Some(cal))?;
    let c = b.calendar(&id).ok_or_else(item_not_found)?;
    let item = render::calendar(b, c, cx.user_id(), &cx.state.config.tenant_id);
    Ok(GraphResponse::json(entity(
        cx,
        &CALENDAR_SCHEMA,
        "/calendars",
        item,
    )?))
}

// --- reading events ---------------------------------------------------------------------

fn render_items<'e>(
    cx: &Cx<'_>,
    b: &CalendarBox,
    list: impl Iterator<Item = Instance<'e>>,
) -> Result<Vec<Map<String, Value>>, GraphError> {
    let select = odata::parse_select(cx.query.select.as_deref(), &EVENT_SCHEMA)?;
    let view = view(cx);
    Ok(list
        .map(|inst| render::event_with(b, &inst, &view, &select))
        .collect())
}

const BY_START: [(&str, bool); 1] = [("start/dateTime", false)];

pub(super) fn events(
    cx: &Cx<'_>,
    store: &mut CalendarStore,
    cal: Option<&CalRef>,
) -> Result<GraphResponse, GraphError> {
    let cal_id = calendar_id(store.get(cx.tenant, cx.owner), cal)?;
    if cx.req.method == Method::POST {
        return create(cx, store, &cal_id);
    }
    let b = store.get(cx.tenant, cx.owner);
    let items = render_items(
        cx,
        b,
        b.events.iter().filter(|e| e.calendar == cal_id).map(whole),
    )?;
    let context = match cal {
        Some(CalRef::Id(_)) => format!("/calendars('{cal_id}')/events"),
        _ => "/events".to_string(),
    };
    collection(cx, &EVENT_SCHEMA, &context, items, &BY_START)
}

/// `startDateTime`/`endDateTime` of a calendar view.
fn window(cx: &Cx<'_>) -> Result<(i64, i64), GraphError> {
    let missing = || {
        invalid_parameter(
            "This request requires a time window specified by the query string parameters StartDateTime and EndDateTime.",
        )
    };
    let parse = |name: &str| -> Result<i64, GraphError> {
        let raw = cx.param(name).ok_or_else(missing)?;
        tz::parse_query_instant(&raw).ok_or_else(|| {
            invalid_parameter(format!(
                "The value '{raw}' of parameter '{name}' is not a valid ISO 8601 date and time."
            ))
        })
    };
    let (from, to) = (parse("startDateTime")?, parse("endDateTime")?);
    if to < from {
        return Err(invalid_parameter(
            "The parameter 'EndDateTime' must not be before 'StartDateTime'.",
        ));
    }
    Ok((from, to))
}

pub(super) fn calendar_view(
    cx: &Cx<'_>,
    store: &mut CalendarStore,
    cal: Option<&CalRef>,
) -> Result<GraphResponse, GraphError> {
    let (from, to) = window(cx)?;
    let b = store.get(cx.tenant, cx.owner);
    let cal_id = calendar_id(b, cal)?;
    let mut list: Vec<Instance<'_>> = b
        .events
        .iter()
        .filter(|e| e.calendar == cal_id)
        .flat_map(|e| instances(e, from, to))
        .collect();
    list.sort_by_key(|i| (i.start, i.end));
    let items = render_items(cx, b, list.into_iter())?;
    let context = match cal {
        Some(CalRef::Id(_)) => format!("/calendars('{cal_id}')/calendarView"),
        _ => "/calendarView".to_string(),
    };
    collection(cx, &EVENT_SCHEMA, &context, items, &[])
}

fn entity_of(cx: &Cx<'_>, b: &CalendarBox, inst: &Instance<'_>) -> Result<Value, GraphError> {
    let select = odata::parse_select(cx.query.select.as_deref(), &EVENT_SCHEMA)?;
    let item = render::event_with(b, inst, &view(cx), &select);
    entity(cx, &EVENT_SCHEMA, "/events", item)
}

/// An event id that names nothing: 404 when it is id-shaped, else malformed (400).
fn unknown_event(id: &str) -> GraphError {
    unknown_folder(id)
}

/// `(stored event index, original start of an occurrence)`.
fn locate(
    b: &CalendarBox,
    cal: Option<&CalRef>,
    id: &str,
) -> Result<(usize, Option<i64>), GraphError> {
    let cal_id = match cal {
        Some(c) => Some(calendar_id(b, Some(c))?),
        None => None,
    };
    let (i, original) = b
        .resolve_event(id.trim())
        .ok_or_else(|| unknown_event(id))?;
    if cal_id.is_some_and(|c| b.events[i].calendar != c) {
        return Err(item_not_found());
    }
    if let Some(t) = original
        && instance_at(&b.events[i], t).is_none()
    {
        return Err(item_not_found());
    }
    Ok((i, original))
}

fn instance_of(e: &Event, original: Option<i64>) -> Instance<'_> {
    match original {
        Some(t) => instance_at(e, t).unwrap_or_else(|| whole(e)),
        None => whole(e),
    }
}

pub(super) fn event(
    cx: &Cx<'_>,
    store: &mut CalendarStore,
    cal: Option<&CalRef>,
    id: &str,
    action: Option<EventAction>,
) -> Result<GraphResponse, GraphError> {
    let (i, original) = locate(store.get(cx.tenant, cx.owner), cal, id)?;
    match (action, &cx.req.method) {
        (Some(EventAction::Cancel), _) => cancel(cx, store, i, original),
        (Some(a), _) => respond(cx, store, i, a),
        (None, m) if *m == Method::PATCH => update(cx, store, i, original),
        (None, m) if *m == Method::DELETE => delete(cx, store, i, original),
        _ => {
            single_entity_only(cx)?;
            let b = store.get(cx.tenant, cx.owner);
            let inst = instance_of(&b.events[i], original);
            Ok(GraphResponse::json(entity_of(cx, b, &inst)?))
        }
    }
}

// --- input ------------------------------------------------------------------------------

/// Writable event properties.
const WRITABLE: [&str; 20] = [
    "subject",
    "body",
    "start",
    "end",
    "location",
    "locations",
    "attendees",
    "categories",
    "importance",
    "sensitivity",
    "showAs",
    "isAllDay",
    "isReminderOn",
    "reminderMinutesBeforeStart",
    "responseRequested",
    "allowNewTimeProposals",
    "hideAttendees",
    "isOnlineMeeting",
    "onlineMeetingProvider",
    "recurrence",
];

/// Properties Exchange sets: ignored when sent (on create and update alike, as the
/// documented event-update sample sends some of them).
const READ_ONLY: [&str; 21] = [
    "id",
    "createdDateTime",
    "lastModifiedDateTime",
    "changeKey",
    "iCalUId",
    "originalStartTimeZone",
    "originalEndTimeZone",
    "originalStart",
    "responseStatus",
    "organizer",
    "isOrganizer",
    "type",
    "seriesMasterId",
    "webLink",
    "onlineMeetingUrl",
    "onlineMeeting",
    "hasAttachments",
    "bodyPreview",
    "isCancelled",
    "isDraft",
    "occurrenceId",
];

#[derive(Default)]
struct Input {
    subject: Option<String>,
    body: Option<Body>,
    start: Option<(i64, String)>,
    end: Option<(i64, String)>,
    location: Option<String>,
    attendees: Option<Vec<Attendee>>,
    categories: Option<Vec<String>>,
    importance: Option<&'static str>,
    sensitivity: Option<&'static str>,
    show_as: Option<&'static str>,
    is_all_day: Option<bool>,
    is_reminder_on: Option<bool>,
    reminder: Option<i64>,
    response_requested: Option<bool>,
    allow_new_time_proposals: Option<bool>,
    hide_attendees: Option<bool>,
    is_online_meeting: Option<bool>,
    provider: Option<&'static str>,
    recurrence: Option<Option<Value>>,
    transaction_id: Option<String>,
}

fn expected(name: &str, ty: &str) -> GraphError {
    body_read(format!(
        "Cannot convert the value of property '{name}' to the expected type '{ty}'."
    ))
}

fn string(name: &str, v: &Value) -> Result<String, GraphError> {
    match v {
        Value::String(s) => Ok(s.clone()),
        Value::Null => Ok(String::new()),
        _ => Err(expected(name, "Edm.String")),
    }
}

fn boolean(name: &str, v: &Value) -> Result<bool, GraphError> {
    v.as_bool().ok_or_else(|| expected(name, "Edm.Boolean"))
}

fn enum_value(
    name: &str,
    v: &Value,
    ty: &str,
    allowed: &[&'static str],
) -> Result<&'static str, GraphError> {
    let s = v.as_str().ok_or_else(|| expected(name, ty))?;
    allowed
        .iter()
        .find(|a| a.eq_ignore_ascii_case(s))
        .copied()
        .ok_or_else(|| {
            body_read(format!(
                "Cannot convert the literal '{s}' to the expected type '{ty}'."
            ))
        })
}

/// A `dateTimeTimeZone`: `(instant, zone name as given)`.
pub(super) fn date_time_time_zone(name: &str, v: &Value) -> Result<(i64, String), GraphError> {
    let o = v
        .as_object()
        .ok_or_else(|| expected(name, "microsoft.graph.dateTimeTimeZone"))?;
    let zone_name = match get_ci(o, "timeZone") {
        Some(Value::String(s)) if !s.trim().is_empty() => s.trim().to_string(),
        None | Some(Value::Null) => "UTC".to_string(),
        Some(Value::String(_)) => return Err(time_zone_not_supported("")),
        Some(_) => return Err(expected("timeZone", "Edm.String")),
    };
    let zone = tz::resolve(&zone_name).ok_or_else(|| time_zone_not_supported(&zone_name))?;
    let text = get_ci(o, "dateTime")
        .and_then(Value::as_str)
        .ok_or_else(|| validation_failure(format!("{name}.dateTime is required.")))?;
    let unix = tz::parse_local(text, &zone).ok_or_else(|| {
        validation_failure(format!(
            "{name}.dateTime '{text}' is not a valid date and time (yyyy-MM-ddTHH:mm:ss)."
        ))
    })?;
    Ok((unix, zone_name))
}

fn attendees(v: &Value) -> Result<Vec<Attendee>, GraphError> {
    let items = match v {
        Value::Null => return Ok(Vec::new()),
        Value::Array(items) => items,
        _ => {
            return Err(expected(
                "attendees",
                "Collection(microsoft.graph.attendee)",
            ));
        }
    };
    let mut out: Vec<Attendee> = Vec::new();
    for a in items {
        let o = a
            .as_object()
            .ok_or_else(|| expected("attendees", "microsoft.graph.attendee"))?;
        let email = get_ci(o, "emailAddress")
            .and_then(Value::as_object)
            .ok_or_else(|| validation_failure("attendees.emailAddress is required."))?;
        let address = get_ci(email, "address")
            .map_or(Ok(String::new()), |v| string("address", v))?
            .trim()
            .to_string();
        if address.is_empty() {
            return Err(validation_failure(
                "attendees.emailAddress.address is required.",
            ));
        }
        let name = get_ci(email, "name").map_or(Ok(String::new()), |v| string("name", v))?;
        let kind = match get_ci(o, "type") {
            None | Some(Value::Null) => "required",
            Some(t) => enum_value(
                "type",
                t,
                "microsoft.graph.attendeeType",
                &["required", "optional", "resource"],
            )?,
        };
        if out.iter().any(|x| x.who.same_address(&address)) {
            continue;
        }
        out.push(Attendee {
            kind,
            who: Recipient::new(name, address),
            response: "none",
            time: None,
        });
    }
    Ok(out)
}

fn parse_input(obj: &Map<String, Value>, create: bool) -> Result<Input, GraphError> {
    let mut input = Input::default();
    for (key, v) in obj {
        if key.contains('@') {
            continue;
        }
        if READ_ONLY.iter().any(|k| k.eq_ignore_ascii_case(key)) {
            continue;
        }
        if key.eq_ignore_ascii_case("transactionId") {
            if create {
                input.transaction_id = Some(string(key, v)?).filter(|s| !s.is_empty());
            }
            continue;
        }
        let Some(name) = WRITABLE
            .iter()
            .find(|k| k.eq_ignore_ascii_case(key))
            .copied()
        else {
            return Err(body_read(format!(
                "The property '{key}' does not exist on type 'microsoft.graph.event'. Make sure to only use property names that are defined by the type or mark the type as open type."
            )));
        };
        match name {
            "subject" => input.subject = Some(string(name, v)?),
            "body" => input.body = Some(super::super::mail::write_body(v)?),
            "start" => input.start = Some(date_time_time_zone(name, v)?),
            "end" => input.end = Some(date_time_time_zone(name, v)?),
            "location" => {
                input.location = Some(match v {
                    Value::Null => String::new(),
                    Value::Object(o) => get_ci(o, "displayName")
                        .map_or(Ok(String::new()), |d| string("displayName", d))?,
                    _ => return Err(expected(name, "microsoft.graph.location")),
                })
            }
            "locations" => {
                if input.location.is_none()
                    && let Some(first) = v
                        .as_array()
                        .and_then(|a| a.first())
                        .and_then(Value::as_object)
                {
                    input.location = Some(
                        get_ci(first, "displayName")
                            .map_or(Ok(String::new()), |d| string("displayName", d))?,
                    );
                }
            }
            "attendees" => input.attendees = Some(attendees(v)?),
            "categories" => {
                let list = match v {
                    Value::Null => Vec::new(),
                    Value::Array(items) => items
                        .iter()
                        .map(|c| {
                            c.as_str()
                                .map(str::to_string)
                                .ok_or_else(|| expected(name, "Collection(Edm.String)"))
                        })
                        .collect::<Result<_, _>>()?,
                    _ => return Err(expected(name, "Collection(Edm.String)")),
                };
                input.categories = Some(list);
            }
            "importance" => {
                input.importance = Some(enum_value(
                    name,
                    v,
                    "microsoft.graph.importance",
                    &["low", "normal", "high"],
                )?)
            }
            "sensitivity" => {
                input.sensitivity = Some(enum_value(
                    name,
                    v,
                    "microsoft.graph.sensitivity",
                    &["normal", "personal", "private", "confidential"],
                )?)
            }
            "showAs" => {
                input.show_as = Some(enum_value(
                    name,
                    v,
                    "microsoft.graph.freeBusyStatus",
                    &[
                        "free",
                        "tentative",
                        "busy",
                        "oof",
                        "workingElsewhere",
                        "unknown",
                    ],
                )?)
            }
            "onlineMeetingProvider" => {
                input.provider = Some(enum_value(
                    name,
                    v,
                    "microsoft.graph.onlineMeetingProviderType",
                    &[
                        "unknown",
                        "teamsForBusiness",
                        "skypeForBusiness",
                        "skypeForConsumer",
                    ],
                )?)
            }
            "isAllDay" => input.is_all_day = Some(boolean(name, v)?),
            "isReminderOn" => input.is_reminder_on = Some(boolean(name, v)?),
            "responseRequested" => input.response_requested = Some(boolean(name, v)?),
            "allowNewTimeProposals" => input.allow_new_time_proposals = Some(boolean(name, v)?),
            "hideAttendees" => input.hide_attendees = Some(boolean(name, v)?),
            "isOnlineMeeting" => input.is_online_meeting = Some(boolean(name, v)?),
            "reminderMinutesBeforeStart" => {
                input.reminder = Some(v.as_i64().ok_or_else(|| expected(name, "Edm.Int32"))?)
            }
            "recurrence" => input.recurrence = Some((!v.is_null()).then(|| v.clone())),
            _ => {}
        }
    }
    Ok(input)
}

/// Applies `input` to `e`, then checks the result.
fn apply(e: &mut Event, input: Input, occurrence: bool) -> Result<(), GraphError> {
    if occurrence && input.recurrence.is_some() {
        return Err(validation_failure(
            "recurrence can't be set on an occurrence of a series; update the series master.",
        ));
    }
    if let Some(s) = input.subject {
        e.subject = s;
    }
    if let Some(b) = input.body {
        e.body = b;
    }
    if let Some((t, zone)) = input.start {
        e.start = t;
        e.start_tz = zone;
    }
    if let Some((t, zone)) = input.end {
        e.end = t;
        e.end_tz = zone;
    }
    if let Some(l) = input.location {
        e.location = l;
    }
    if let Some(a) = input.attendees {
        // Keep the statuses of attendees already invited.
        let old = std::mem::take(&mut e.attendees);
        e.attendees = a
            .into_iter()
            .map(|mut n| {
                if let Some(o) = old.iter().find(|o| o.who.same_address(&n.who.address)) {
                    n.response = o.response;
                    n.time = o.time;
                }
                n
            })
            .collect();
    }
    if let Some(c) = input.categories {
        e.categories = c;
    }
    if let Some(v) = input.importance {
        e.importance = v;
    }
    if let Some(v) = input.sensitivity {
        e.sensitivity = v;
    }
    if let Some(v) = input.show_as {
        e.show_as = v;
    }
    if let Some(v) = input.is_all_day {
        e.is_all_day = v;
    }
    if let Some(v) = input.is_reminder_on {
        e.is_reminder_on = v;
    }
    if let Some(v) = input.reminder {
        e.reminder_minutes = v;
    }
    if let Some(v) = input.response_requested {
        e.response_requested = v;
    }
    if let Some(v) = input.allow_new_time_proposals {
        e.allow_new_time_proposals = v;
    }
    if let Some(v) = input.hide_attendees {
        e.hide_attendees = v;
    }
    if let Some(v) = input.provider {
        e.online_meeting_provider = v;
    }
    if let Some(v) = input.is_online_meeting {
        e.is_online_meeting = v;
        if v && e.online_meeting_provider == "unknown" {
            e.online_meeting_provider = "teamsForBusiness";
        }
    }
    if e.end < e.start {
        return Err(validation_failure(
            "end: the end of an event must not be before its start.",
        ));
    }
    if e.is_all_day {
        let midnight = |t: i64, zone: &str| {
            let zone = tz::resolve(zone).unwrap_or(jiff::tz::TimeZone::UTC);
            tz::local(t, &zone).time() == jiff::civil::Time::midnight()
        };
        if !midnight(e.start, &e.start_tz) || !midnight(e.end, &e.end_tz) || e.end == e.start {
            return Err(validation_failure(
                "isAllDay: the start and end of an all-day event must be at midnight, at least a day apart.",
            ));
        }
    }
    if let Some(r) = input.recurrence {
        e.recurrence = match r {
            None => None,
            Some(v) => {
                let zone = tz::resolve(&e.start_tz).unwrap_or(jiff::tz::TimeZone::UTC);
                let start_date = tz::local(e.start, &zone).date();
                let r = Recurrence::parse(&v, start_date, &e.start_tz)
                    .map_err(|err| validation_failure(err.0))?;
                if tz::resolve(&r.time_zone).is_none() {
                    return Err(time_zone_not_supported(&r.time_zone));
                }
                Some(r)
            }
        };
        e.exceptions.clear();
    }
    Ok(())
}

fn new_ical(b: &mut CalendarBox, now: i64) -> String {
    let (c, d) = (b.draw(), b.draw());
    // A FILETIME (100 ns since 1601), little-endian as in Exchange's GlobalObjectId.
    let ticks = (now.max(0) as u64)
        .wrapping_mul(10_000_000)
        .wrapping_add(116_444_736_000_000_000);
    format!(
        "040000008200E00074C5B7101A82E00800000000{:016X}000000000000000010000000{c:016X}{d:016X}",
        ticks.swap_bytes()
    )
}

fn blank_event(b: &mut CalendarBox, calendar: &str, now: i64) -> Event {
    let ical = new_ical(b, now);
    Event {
        id: String::new(),
        ordinal: 0,
        version: 1,
        calendar: calendar.to_string(),
        created: now,
        modified: now,
        ical_uid: ical,
        subject: String::new(),
        body: Body {
            html: true,
            content: String::new(),
        },
        start: now,
        end: now,
        start_tz: "UTC".into(),
        end_tz: "UTC".into(),
        is_all_day: false,
        location: String::new(),
        categories: Vec::new(),
        importance: "normal",
        sensitivity: "normal",
        show_as: "busy",
        is_cancelled: false,
        is_organizer: true,
        response_requested: true,
        allow_new_time_proposals: true,
        hide_attendees: false,
        is_reminder_on: true,
        reminder_minutes: 15,
        is_online_meeting: false,
        online_meeting_provider: "unknown",
        join_url: None,
        response: "organizer",
        response_time: None,
        organizer: b.owner_recipient(),
        attendees: Vec::new(),
        recurrence: None,
        transaction_id: None,
        exceptions: Default::default(),
    }
}

fn ensure_join_url(cx: &Cx<'_>, e: &mut Event) {
    if e.is_online_meeting && e.join_url.is_none() {
        e.join_url = Some(crate::calendar::join_url_for(
            &cx.state.config.tenant_id,
            cx.user_id(),
            &e.ical_uid,
        ));
    }
}

fn create(
    cx: &Cx<'_>,
    store: &mut CalendarStore,
    cal_id: &str,
) -> Result<GraphResponse, GraphError> {
    let obj = cx.json_body()?;
    let input = parse_input(&obj, true)?;
    let b = store.get(cx.tenant, cx.owner);
    if let Some(t) = &input.transaction_id
        && let Some(i) = b
            .events
            .iter()
            .position(|e| e.calendar == cal_id && e.transaction_id.as_deref() == Some(t))
    {
        let body = entity_of(cx, b, &whole(&b.events[i]))?;
        return Ok(GraphResponse::with_status(
            StatusCode::CREATED,
            super::super::Payload::Json(body),
        ));
    }
    if input.start.is_none() || input.end.is_none() {
        let missing = if input.start.is_none() {
            "start"
        } else {
            "end"
        };
        return Err(validation_failure(format!(
            "{missing}: an event needs a start and an end."
        )));
    }
    let mut e = blank_event(b, cal_id, cx.now);
    e.transaction_id = input.transaction_id.clone();
    apply(&mut e, input, false)?;
    ensure_join_url(cx, &mut e);
    let ical = e.ical_uid.clone();
    let has_attendees = !e.attendees.is_empty();
    let i = b.insert_event(e);
    let id = b.events[i].id.clone();
    if has_attendees {
        sync_attendees(cx, store, &ical);
    }
    let b = store.get(cx.tenant, cx.owner);
    let i = b.find_event(&id).ok_or_else(item_not_found)?;
    let body = entity_of(cx, b, &whole(&b.events[i]))?;
    Ok(GraphResponse::with_status(
        StatusCode::CREATED,
        super::super::Payload::Json(body),
    ))
}

fn update(
    cx: &Cx<'_>,
    store: &mut CalendarStore,
    i: usize,
    original: Option<i64>,
) -> Result<GraphResponse, GraphError> {
    let obj = cx.json_body()?;
    let input = parse_input(&obj, false)?;
    let b = store.get(cx.tenant, cx.owner);
    let now = cx.now;
    match original {
        Some(t) => {
            let master = &b.events[i];
            let mut x = match master.exceptions.get(&t) {
                Some(Some(x)) => (**x).clone(),
                _ => {
                    let mut x = master.clone();
                    x.recurrence = None;
                    x.exceptions.clear();
                    x.start = t;
                    x.end = t + master.duration();
                    x
                }
            };
            apply(&mut x, input, true)?;
            x.version += 1;
            x.modified = now;
            b.events[i].exceptions.insert(t, Some(Box::new(x)));
        }
        None => {
            let mut e = b.events[i].clone();
            apply(&mut e, input, false)?;
            ensure_join_url(cx, &mut e);
            b.events[i] = e;
        }
    }
    b.touch(i, now);
    let (ical, organiser) = (b.events[i].ical_uid.clone(), b.events[i].is_organizer);
    let id = b.events[i].id.clone();
    if organiser {
        sync_attendees(cx, store, &ical);
    }
    let b = store.get(cx.tenant, cx.owner);
    let i = b.find_event(&id).ok_or_else(item_not_found)?;
    let inst = instance_of(&b.events[i], original);
    Ok(GraphResponse::json(entity_of(cx, b, &inst)?))
}

fn delete(
    cx: &Cx<'_>,
    store: &mut CalendarStore,
    i: usize,
    original: Option<i64>,
) -> Result<GraphResponse, GraphError> {
    let b = store.get(cx.tenant, cx.owner);
    let e = b.events[i].clone();
    match original {
        Some(t) => {
            b.events[i].exceptions.insert(t, None);
            b.touch(i, cx.now);
            if e.is_organizer {
                sync_attendees(cx, store, &e.ical_uid);
            }
        }
        None => {
            if e.is_organizer && !e.is_cancelled {
                cancel_copies(cx, store, &e, "");
            }
            let b = store.get(cx.tenant, cx.owner);
            if let Some(i) = b.find_event(&e.id) {
                b.events.remove(i);
            }
        }
    }
    Ok(GraphResponse::empty(StatusCode::NO_CONTENT))
}

// --- meetings ---------------------------------------------------------------------------

/// The tenant users (with a mailbox, other than the owner) among an event's attendees.
fn tenant_attendees(cx: &Cx<'_>, e: &Event) -> Vec<usize> {
    let mut out = Vec::new();
    for a in &e.attendees {
        if let Some(u) = cx.tenant.find_user_or_address(&a.who.address)
            && u != cx.owner
            && has_mailbox(cx.tenant, u)
            && !out.contains(&u)
        {
            out.push(u);
        }
    }
    out
}

/// `e` as attendee `response` sees it in their own calendar.
fn attendee_copy(e: &Event, response: &'static str, time: Option<i64>) -> Event {
    let mut c = e.clone();
    let adjust = |x: &mut Event| {
        x.is_organizer = false;
        x.response = response;
        x.response_time = time;
        x.show_as = crate::calendar::attendee_show_as(response, x.show_as);
        x.transaction_id = None;
    };
    adjust(&mut c);
    for x in c.exceptions.values_mut().flatten() {
        adjust(x);
    }
    c
}

/// Copies the organiser's event `ical` to every tenant attendee: new invitees get a copy
/// and a meeting request, existing copies take the organiser's changes.
fn sync_attendees(cx: &Cx<'_>, store: &mut CalendarStore, ical: &str) {
    let b = store.get(cx.tenant, cx.owner);
    let Some(i) = b.find_by_ical(ical) else {
        return;
    };
    let e = b.events[i].clone();
    if !e.is_organizer {
        return;
    }
    let mut invited = Vec::new();
    for u in tenant_attendees(cx, &e) {
        let ab = store.get(cx.tenant, u);
        match ab.find_by_ical(ical) {
            Some(j) => {
                let old = &ab.events[j];
                let mut c = attendee_copy(&e, old.response, old.response_time);
                c.id = old.id.clone();
                c.ordinal = old.ordinal;
                c.calendar = old.calendar.clone();
                c.created = old.created;
                c.version = old.version + 1;
                c.modified = cx.now;
                ab.events[j] = c;
            }
            None => {
                let mut c = attendee_copy(&e, "notResponded", None);
                c.calendar = ab.default_calendar();
                c.created = cx.now;
                c.modified = cx.now;
                c.version = 1;
                ab.insert_event(c);
                invited.push(u);
            }
        }
    }
    let to: Vec<Recipient> = e.attendees.iter().map(|a| a.who.clone()).collect();
    for u in invited {
        deliver(
            cx,
            u,
            &e.subject,
            &e.body,
            &e.organizer,
            &to,
            "#microsoft.graph.eventMessageRequest",
        );
    }
}

/// Marks every attendee's copy of `e` cancelled and tells them.
fn cancel_copies(cx: &Cx<'_>, store: &mut CalendarStore, e: &Event, comment: &str) {
    let to: Vec<Recipient> = e.attendees.iter().map(|a| a.who.clone()).collect();
    let subject = format!("Canceled: {}", e.subject);
    for u in tenant_attendees(cx, e) {
        let ab = store.get(cx.tenant, u);
        if let Some(j) = ab.find_by_ical(&e.ical_uid) {
            let c = &mut ab.events[j];
            c.is_cancelled = true;
            c.subject = subject.clone();
            c.show_as = "free";
            ab.touch(j, cx.now);
            let body = Body {
                html: true,
                content: format!(
                    "<html><head></head><body><p>{}</p></body></html>",
                    crate::mail::text::escape_html(comment)
                ),
            };
            deliver(
                cx,
                u,
                &subject,
                &body,
                &e.organizer,
                &to,
                "#microsoft.graph.eventMessage",
            );
        }
    }
}

/// A meeting message in tenant user `u`'s Inbox.
fn deliver(
    cx: &Cx<'_>,
    u: usize,
    subject: &str,
    body: &Body,
    from: &Recipient,
    to: &[Recipient],
    odata_type: &'static str,
) {
    let mut mail = super::super::mail::lock_store(cx.state);
    let mb = mail.mailbox(cx.tenant, u);
    let inbox = mb.well_known("inbox");
    let mut m = Message::blank(&inbox, cx.now);
    m.subject = subject.to_string();
    m.body = body.clone();
    m.from = Some(from.clone());
    m.sender = Some(from.clone());
    m.to = to.to_vec();
    m.is_read = false;
    m.odata_type = Some(odata_type);
    let (conversation, index) = mb.new_conversation(cx.now);
    m.conversation_id = conversation;
    m.conversation_index = index;
    m.internet_message_id = mb.new_internet_message_id();
    mb.insert(m);
}

fn comment_of(obj: &Map<String, Value>) -> Result<String, GraphError> {
    match get_ci(obj, "comment") {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(_) => Err(expected("comment", "Edm.String")),
    }
}

/// `accept`, `tentativelyAccept`, `decline`: the attendee's copy and the organiser's
/// attendee list take the response (for a whole series when called on an occurrence).
fn respond(
    cx: &Cx<'_>,
    store: &mut CalendarStore,
    i: usize,
    action: EventAction,
) -> Result<GraphResponse, GraphError> {
    let obj = cx.json_body()?;
    for key in obj.keys() {
        if !["comment", "sendResponse", "proposedNewTime"]
            .iter()
            .any(|k| k.eq_ignore_ascii_case(key))
        {
            return Err(body_read(format!(
                "The property '{key}' does not exist on the parameters of '{}'.",
                action.name()
            )));
        }
    }
    let comment = comment_of(&obj)?;
    let send = match get_ci(&obj, "sendResponse") {
        None | Some(Value::Null) => true,
        Some(v) => boolean("sendResponse", v)?,
    };
    let response = match action {
        EventAction::Accept => "accepted",
        EventAction::TentativelyAccept => "tentativelyAccepted",
        _ => "declined",
    };
    let b = store.get(cx.tenant, cx.owner);
    let e = b.events[i].clone();
    if e.is_organizer {
        return Err(invalid_request(
            "Your request can't be completed. You can't respond to a meeting you organized.",
        ));
    }
    // The organiser's side first: it knows how the meeting shows when accepted.
    let mut organiser_show_as = "busy";
    let organiser = cx
        .tenant
        .find_user_or_address(&e.organizer.address)
        .filter(|&o| o != cx.owner && has_mailbox(cx.tenant, o));
    if let Some(o) = organiser {
        let ob = store.get(cx.tenant, o);
        if let Some(j) = ob.find_by_ical(&e.ical_uid) {
            organiser_show_as = ob.events[j].show_as;
            let me = cx.owner;
            let tenant = cx.tenant;
            let mark = |list: &mut Vec<Attendee>| {
                for a in list.iter_mut() {
                    if tenant.find_user_or_address(&a.who.address) == Some(me) {
                        a.response = response;
                        a.time = Some(cx.now);
                    }
                }
            };
            mark(&mut ob.events[j].attendees);
            for x in ob.events[j].exceptions.values_mut().flatten() {
                mark(&mut x.attendees);
            }
            ob.touch(j, cx.now);
        }
    }
    let b = store.get(cx.tenant, cx.owner);
    let c = &mut b.events[i];
    c.response = response;
    c.response_time = Some(cx.now);
    c.show_as = crate::calendar::attendee_show_as(response, organiser_show_as);
    for x in c.exceptions.values_mut().flatten() {
        x.response = response;
        x.response_time = Some(cx.now);
        x.show_as = crate::calendar::attendee_show_as(response, organiser_show_as);
    }
    b.touch(i, cx.now);
    if send && let Some(o) = organiser {
        let prefix = match action {
            EventAction::Accept => "Accepted",
            EventAction::TentativelyAccept => "Tentative",
            _ => "Declined",
        };
        let body = Body {
            html: false,
            content: comment,
        };
        let me = b.owner_recipient();
        deliver(
            cx,
            o,
            &format!("{prefix}: {}", e.subject),
            &body,
            &me,
            std::slice::from_ref(&e.organizer),
            "#microsoft.graph.eventMessageResponse",
        );
    }
    Ok(GraphResponse::empty(StatusCode::ACCEPTED))
}

/// `cancel` (organiser only): every attendee's copy is marked cancelled (with a
/// cancellation in their Inbox) and the organiser's event is removed; on an occurrence,
/// only that occurrence goes, for everyone.
fn cancel(
    cx: &Cx<'_>,
    store: &mut CalendarStore,
    i: usize,
    original: Option<i64>,
) -> Result<GraphResponse, GraphError> {
    let obj = cx.json_body()?;
    let comment = comment_of(&obj)?;
    let b = store.get(cx.tenant, cx.owner);
    let e = b.events[i].clone();
    if !e.is_organizer {
        return Err(invalid_request(
            "Your request can't be completed. Only the meeting organizer can cancel a meeting.",
        ));
    }
    match original {
        Some(t) => {
            b.events[i].exceptions.insert(t, None);
            b.touch(i, cx.now);
            sync_attendees(cx, store, &e.ical_uid);
        }
        None => {
            cancel_copies(cx, store, &e, &comment);
            let b = store.get(cx.tenant, cx.owner);
            if let Some(i) = b.find_event(&e.id) {
                b.events.remove(i);
            }
        }
    }
    Ok(GraphResponse::empty(StatusCode::ACCEPTED))
}
