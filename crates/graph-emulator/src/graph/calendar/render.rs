//! JSON of calendars, events (single instances, series masters, occurrences, exceptions),
//! contacts and contact folders, as Graph v1.0 shows them.

use jiff::tz::TimeZone;
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::{Map, Value, json};

use super::odata::{Schema, Ty};
use crate::calendar::{Calendar, CalendarBox, Contact, ContactFolder, Event, Instance, tz};
use crate::mail::text::{html_to_text, preview, text_to_html};
use crate::mail::{Recipient, ids};

/// An event's properties, in the order Graph returns them (user-post-events).
pub(crate) const EVENT_PROPS: [&str; 42] = [
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
    "occurrenceId",
    "originalStart",
];

/// Not in the default set (only with `$select`).
const EVENT_SELECT_ONLY: [&str; 2] = ["occurrenceId", "originalStart"];

pub(crate) const EVENT_SCHEMA: Schema = Schema {
    type_name: "microsoft.graph.event",
    select: &EVENT_PROPS,
    scalars: &[
        ("subject", Ty::Str),
        ("bodyPreview", Ty::Str),
        ("id", Ty::Str),
        ("iCalUId", Ty::Str),
        ("seriesMasterId", Ty::Str),
        ("type", Ty::Str),
        ("showAs", Ty::Str),
        ("importance", Ty::Str),
        ("sensitivity", Ty::Str),
        ("transactionId", Ty::Str),
        ("isCancelled", Ty::Bool),
        ("isAllDay", Ty::Bool),
        ("isOrganizer", Ty::Bool),
        ("isOnlineMeeting", Ty::Bool),
        ("isReminderOn", Ty::Bool),
        ("start/dateTime", Ty::LocalDateTime),
        ("end/dateTime", Ty::LocalDateTime),
        ("organizer/emailAddress/address", Ty::Str),
        ("organizer/emailAddress/name", Ty::Str),
        ("location/displayName", Ty::Str),
        ("responseStatus/response", Ty::Str),
    ],
    collections: &[
        ("categories", &[""]),
        (
            "attendees",
            &["emailAddress/address", "emailAddress/name", "type"],
        ),
    ],
    sortable: &[
        "start/dateTime",
        "end/dateTime",
        "subject",
        "createdDateTime",
        "lastModifiedDateTime",
        "importance",
        "type",
    ],
};

pub(crate) const CALENDAR_PROPS: [&str; 14] = [
    "id",
    "name",
    "color",
    "hexColor",
    "isDefaultCalendar",
    "changeKey",
    "canShare",
    "canViewPrivateItems",
    "canEdit",
    "allowedOnlineMeetingProviders",
    "defaultOnlineMeetingProvider",
    "isTallyingResponses",
    "isRemovable",
    "owner",
];

pub(crate) const CALENDAR_SCHEMA: Schema = Schema {
    type_name: "microsoft.graph.calendar",
    select: &CALENDAR_PROPS,
    scalars: &[
        ("name", Ty::Str),
        ("color", Ty::Str),
        ("isDefaultCalendar", Ty::Bool),
        ("canEdit", Ty::Bool),
        ("id", Ty::Str),
    ],
    collections: &[],
    sortable: &["name"],
};

/// A contact's properties, in contact-get's order.
pub(crate) const CONTACT_PROPS: [&str; 38] = [
    "id",
    "createdDateTime",
    "lastModifiedDateTime",
    "changeKey",
    "categories",
    "parentFolderId",
    "birthday",
    "fileAs",
    "displayName",
    "givenName",
    "initials",
    "middleName",
    "nickName",
    "surname",
    "title",
    "yomiGivenName",
    "yomiSurname",
    "yomiCompanyName",
    "generation",
    "emailAddresses",
    "imAddresses",
    "jobTitle",
    "companyName",
    "department",
    "officeLocation",
    "profession",
    "businessHomePage",
    "assistantName",
    "manager",
    "homePhones",
    "mobilePhone",
    "businessPhones",
    "homeAddress",
    "businessAddress",
    "otherAddress",
    "spouseName",
    "personalNotes",
    "children",
];

/// Contact properties that are collections of strings.
pub(crate) const CONTACT_LISTS: [&str; 5] = [
    "categories",
    "imAddresses",
    "homePhones",
    "businessPhones",
    "children",
];
/// Contact properties that are physicalAddress objects.
pub(crate) const CONTACT_ADDRESSES: [&str; 3] = ["homeAddress", "businessAddress", "otherAddress"];
/// Contact properties that Exchange sets.
pub(crate) const CONTACT_READ_ONLY: [&str; 5] = [
    "id",
    "createdDateTime",
    "lastModifiedDateTime",
    "changeKey",
    "parentFolderId",
];

pub(crate) const CONTACT_SCHEMA: Schema = Schema {
    type_name: "microsoft.graph.contact",
    select: &CONTACT_PROPS,
    scalars: &[
        ("displayName", Ty::Str),
        ("givenName", Ty::Str),
        ("surname", Ty::Str),
        ("middleName", Ty::Str),
        ("nickName", Ty::Str),
        ("fileAs", Ty::Str),
        ("companyName", Ty::Str),
        ("jobTitle", Ty::Str),
        ("department", Ty::Str),
        ("officeLocation", Ty::Str),
        ("mobilePhone", Ty::Str),
        ("parentFolderId", Ty::Str),
        ("id", Ty::Str),
        ("businessAddress/city", Ty::Str),
        ("businessAddress/countryOrRegion", Ty::Str),
    ],
    collections: &[
        ("emailAddresses", &["address", "name"]),
        ("categories", &[""]),
        ("businessPhones", &[""]),
        ("homePhones", &[""]),
        ("imAddresses", &[""]),
    ],
    sortable: &[
        "displayName",
        "givenName",
        "surname",
        "companyName",
        "fileAs",
        "createdDateTime",
        "lastModifiedDateTime",
    ],
};

/// `2024-05-01T09:00:00.0000000Z`: event and contact timestamps.
pub(crate) fn timestamp(unix: i64) -> String {
    format!("{}Z", tz::format_local(tz::local(unix, &TimeZone::UTC)))
}

fn seconds(unix: i64) -> String {
    crate::clock::format_utc_seconds(unix)
}

pub(crate) fn email(r: &Recipient) -> Value {
    json!({"emailAddress": {"name": r.name, "address": r.address}})
}

/// How times and bodies are shown.
pub(crate) struct View {
    pub zone: TimeZone,
    pub zone_name: String,
    pub body_text: bool,
}

fn web_link(id: &str) -> String {
    format!(
        "https://outlook.office365.com/owa/?itemid={}&exvsurl=1&path=/calendar/item",
        utf8_percent_encode(id, NON_ALPHANUMERIC)
    )
}

/// The iCalUId of an occurrence: the series' with the instance date in bytes 16–19, as
/// Exchange's GlobalObjectId carries it.
fn instance_ical(ical: &str, date: jiff::civil::Date) -> String {
    if ical.len() < 48 {
        return ical.to_string();
    }
    format!(
        "{}{:04X}{:02X}{:02X}{}",
        &ical[..32],
        date.year(),
        date.month(),
        date.day(),
        &ical[40..]
    )
}

fn location(name: &str) -> Value {
    if name.is_empty() {
        json!({"displayName": "", "locationType": "default", "uniqueIdType": "unknown"})
    } else {
        json!({"displayName": name, "locationType": "default", "uniqueId": name, "uniqueIdType": "private"})
    }
}

fn body(e: &Event, text: bool) -> Value {
    let content = match (e.body.html, text) {
        (true, true) => html_to_text(&e.body.content),
        (false, false) => text_to_html(&e.body.content),
        _ => e.body.content.clone(),
    };
    json!({"contentType": if text { "text" } else { "html" }, "content": content})
}

fn attendees(e: &Event) -> Value {
    Value::Array(
        e.attendees
            .iter()
            .map(|a| {
                json!({
                    "type": a.kind,
                    "status": {
                        "response": a.response,
                        "time": a.time.map_or_else(|| "0001-01-01T00:00:00Z".to_string(), seconds),
                    },
                    "emailAddress": {"name": a.who.name, "address": a.who.address},
                })
            })
            .collect(),
    )
}

/// One property of an instance.
fn property(b: &CalendarBox, inst: &Instance<'_>, view: &View, name: &str) -> Value {
    let e = inst.data();
    let m = inst.master;
    let when = |unix: i64| tz::date_time_time_zone(unix, &view.zone, &view.zone_name);
    match name {
        "id" => Value::String(inst.id()),
        "createdDateTime" => Value::String(timestamp(e.created)),
        "lastModifiedDateTime" => Value::String(timestamp(e.modified)),
        "changeKey" => Value::String(change_key(b, inst)),
        "categories" => json!(e.categories),
        "transactionId" => match (&m.transaction_id, inst.original_start) {
            (Some(t), None) => Value::String(t.clone()),
            _ => Value::Null,
        },
        "originalStartTimeZone" => Value::String(e.start_tz.clone()),
        "originalEndTimeZone" => Value::String(e.end_tz.clone()),
        "iCalUId" => Value::String(match inst.original_start {
            Some(t) => {
                let zone = crate::calendar::series_zone(m);
                instance_ical(&m.ical_uid, tz::local(t, &zone).date())
            }
            None => m.ical_uid.clone(),
        }),
        "reminderMinutesBeforeStart" => json!(e.reminder_minutes),
        "isReminderOn" => json!(e.is_reminder_on),
        "hasAttachments" => json!(false),
        "subject" => Value::String(e.subject.clone()),
        "bodyPreview" => Value::String(preview(e.body.html, &e.body.content)),
        "importance" => json!(e.importance),
        "sensitivity" => json!(e.sensitivity),
        "isAllDay" => json!(e.is_all_day),
        "isCancelled" => json!(e.is_cancelled),
        "isOrganizer" => json!(e.is_organizer),
        "responseRequested" => json!(e.response_requested),
        "seriesMasterId" => match inst.original_start {
            Some(_) => Value::String(m.id.clone()),
            None => Value::Null,
        },
        "showAs" => json!(e.show_as),
        "type" => json!(inst.kind()),
        "webLink" => Value::String(web_link(&inst.id())),
        "onlineMeetingUrl" => Value::Null,
        "isOnlineMeeting" => json!(e.is_online_meeting),
        "onlineMeetingProvider" => json!(e.online_meeting_provider),
        "allowNewTimeProposals" => json!(e.allow_new_time_proposals),
        "isDraft" => json!(false),
        "hideAttendees" => json!(e.hide_attendees),
        "responseStatus" => json!({
            "response": e.response,
            "time": e.response_time.map_or_else(|| "0001-01-01T00:00:00Z".to_string(), seconds),
        }),
        "body" => body(e, view.body_text),
        "start" => when(inst.start),
        "end" => when(inst.end),
        "location" => location(&e.location),
        "locations" => {
            if e.location.is_empty() {
                json!([])
            } else {
                json!([{"displayName": e.location, "locationType": "default", "uniqueIdType": "unknown"}])
            }
        }
        "recurrence" => match (&m.recurrence, inst.original_start) {
            (Some(r), None) => r.to_json(),
            _ => Value::Null,
        },
        "attendees" => attendees(e),
        "organizer" => email(&e.organizer),
        "onlineMeeting" => match (&e.join_url, e.is_online_meeting) {
            (Some(url), true) => {
                let digits = ids::fnv(url.as_bytes()) % 1_000_000_000;
                json!({
                    "joinUrl": url,
                    "conferenceId": format!("{digits:09}"),
                    "tollNumber": "+1 425 555 0123",
                })
            }
            _ => Value::Null,
        },
        "occurrenceId" => match inst.original_start {
            Some(t) => Value::String(format!(
                "OID.{}.{}",
                m.id,
                tz::format_local(tz::local(t, &TimeZone::UTC))
                    .get(..10)
                    .unwrap_or_default()
            )),
            None => Value::Null,
        },
        "originalStart" => match inst.original_start {
            Some(t) => Value::String(seconds(t)),
            None => Value::Null,
        },
        _ => Value::Null,
    }
}

pub(crate) fn change_key(b: &CalendarBox, inst: &Instance<'_>) -> String {
    let e = inst.data();
    let ordinal = inst.master.ordinal
        ^ inst
            .original_start
            .map_or(0, |t| ids::fnv(&t.to_be_bytes()) << 8);
    ids::change_key(&b.key, ordinal, e.version)
}

/// The JSON of an instance (default property set; `@odata.etag` first).
pub(crate) fn event(b: &CalendarBox, inst: &Instance<'_>, view: &View) -> Map<String, Value> {
    let mut out = Map::new();
    out.insert(
        "@odata.etag".into(),
        Value::String(format!("W/\"{}\"", change_key(b, inst))),
    );
    for name in EVENT_PROPS {
        if EVENT_SELECT_ONLY.contains(&name) {
            continue;
        }
        out.insert(name.into(), property(b, inst, view, name));
    }
    out
}

/// The select-only properties, added when `$select` names them.
pub(crate) fn event_with(
    b: &CalendarBox,
    inst: &Instance<'_>,
    view: &View,
    select: &Option<Vec<&'static str>>,
) -> Map<String, Value> {
    let mut out = event(b, inst, view);
    if let Some(select) = select {
        for name in EVENT_SELECT_ONLY {
            if select.contains(&name) {
                out.insert(name.into(), property(b, inst, view, name));
            }
        }
    }
    out
}

pub(crate) fn calendar(
    b: &CalendarBox,
    c: &Calendar,
    user_id: &str,
    tenant_id: &str,
) -> Map<String, Value> {
    let key = ids::change_key(&b.key, c.ordinal, 1);
    let mut out = Map::new();
    out.insert(
        "@odata.id".into(),
        Value::String(format!(
            "https://graph.microsoft.com/v1.0/users('{user_id}@{tenant_id}')/calendars('{}')",
            c.id
        )),
    );
    out.insert("id".into(), Value::String(c.id.clone()));
    out.insert("name".into(), Value::String(c.name.clone()));
    out.insert("color".into(), json!(c.color));
    out.insert("hexColor".into(), json!(c.hex_color));
    out.insert("isDefaultCalendar".into(), json!(c.is_default));
    out.insert("changeKey".into(), Value::String(key));
    out.insert("canShare".into(), json!(true));
    out.insert("canViewPrivateItems".into(), json!(true));
    out.insert("canEdit".into(), json!(c.can_edit));
    out.insert(
        "allowedOnlineMeetingProviders".into(),
        json!(["teamsForBusiness"]),
    );
    out.insert(
        "defaultOnlineMeetingProvider".into(),
        json!("teamsForBusiness"),
    );
    out.insert("isTallyingResponses".into(), json!(true));
    out.insert("isRemovable".into(), json!(!c.is_default));
    out.insert(
        "owner".into(),
        json!({"name": b.owner_name, "address": b.owner_address}),
    );
    out
}

pub(crate) fn contact(b: &CalendarBox, c: &Contact) -> Map<String, Value> {
    let key = ids::change_key(&b.key, c.ordinal, c.version);
    let mut out = Map::new();
    out.insert("@odata.etag".into(), Value::String(format!("W/\"{key}\"")));
    for name in CONTACT_PROPS {
        let v = match name {
            "id" => Value::String(c.id.clone()),
            "createdDateTime" => Value::String(seconds(c.created)),
            "lastModifiedDateTime" => Value::String(seconds(c.modified)),
            "changeKey" => Value::String(key.clone()),
            "parentFolderId" => Value::String(c.folder.clone()),
            "emailAddresses" => c.props.get(name).cloned().unwrap_or_else(|| json!([])),
            n if CONTACT_LISTS.contains(&n) => {
                c.props.get(name).cloned().unwrap_or_else(|| json!([]))
            }
            n if CONTACT_ADDRESSES.contains(&n) => {
                c.props.get(name).cloned().unwrap_or_else(|| json!({}))
            }
            _ => c.props.get(name).cloned().unwrap_or(Value::Null),
        };
        out.insert(name.into(), v);
    }
    out
}

pub(crate) fn contact_folder(f: &ContactFolder) -> Map<String, Value> {
    let mut out = Map::new();
    out.insert("id".into(), Value::String(f.id.clone()));
    out.insert("displayName".into(), Value::String(f.name.clone()));
    out.insert("parentFolderId".into(), Value::String(f.parent.clone()));
    out
}
