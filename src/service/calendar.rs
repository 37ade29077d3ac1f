//! Calendar use-cases: calendars, events, calendar views (recurrences expanded by Graph),
//! meetings (create, update, cancel, respond), free/busy and common free slots.
//!
//! Times go to Graph as wall-clock times of a named zone and come back (with
//! `Prefer: outlook.timezone`) in the zone the caller asked for; the gateway answers ISO
//! 8601 instants with their offset plus the zone's name, so callers never parse Outlook's
//! 7-digit, offset-less `dateTime`.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::ToSchema;

use super::mail::{BodyType, ItemBody, Recipient};
use super::paging::check_first;
use super::timezone::{Zone, iso_with_offset, parse_instant};
use super::{Page, ServiceError, Session};
use crate::graph::{GraphGet, GraphUrl, GraphWrite, Idempotency, models};

/// Longest calendar view window.
pub const MAX_VIEW_DAYS: i64 = 62;
/// Most people in one free/busy request (Graph's limit is 100; 20 keeps one request fast).
pub const MAX_SCHEDULES: usize = 20;
/// Most slots `find_meeting_slots` returns.
pub const MAX_SLOTS: usize = 50;

const CALENDAR_FIELDS: &[&str] = &[
    "id",
    "name",
    "color",
    "isDefaultCalendar",
    "canEdit",
    "owner",
];

/// An instant as ISO 8601 with its offset, and the zone it is expressed in.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct DateTimeTz {
    /// e.g. `2024-05-01T09:00:00+02:00`.
    pub date_time: String,
    /// The zone's name as Graph gave it (IANA or Windows).
    pub time_zone: String,
}

impl DateTimeTz {
    fn from_graph(value: Option<models::DateTimeTimeZone>) -> Result<Option<Self>, ServiceError> {
        let Some(value) = value else {
            return Ok(None);
        };
        let (Some(wall_clock), zone) = (value.date_time, value.time_zone) else {
            return Ok(None);
        };
        let zone = zone.unwrap_or_else(|| "UTC".to_owned());
        Ok(Some(DateTimeTz {
            date_time: iso_with_offset(&wall_clock, &zone)?,
            time_zone: zone,
        }))
    }

    /// The instant (for computations on schedules).
    pub fn instant(&self) -> Result<Timestamp, ServiceError> {
        self.date_time
            .parse::<Timestamp>()
            .map_err(|_| ServiceError::Internal)
    }
}

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Calendar {
    pub id: String,
    pub mailbox: String,
    pub name: Option<String>,
    pub color: Option<String>,
    pub is_default: bool,
    pub can_edit: bool,
    pub owner: Option<Recipient>,
}

impl Calendar {
    fn from_graph(c: models::Calendar, mailbox: &str) -> Result<Self, ServiceError> {
        Ok(Calendar {
            id: c.id.ok_or(ServiceError::UpstreamBadResponse)?,
            mailbox: mailbox.to_owned(),
            name: c.name,
            color: c.color,
            is_default: c.is_default_calendar.unwrap_or(false),
            can_edit: c.can_edit.unwrap_or(false),
            owner: c.owner.map(|o| Recipient {
                name: o.name,
                address: o.address,
            }),
        })
    }
}

/// A person invited to an event.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Attendee {
    pub email_address: Recipient,
    /// `required`, `optional` or `resource`.
    pub kind: String,
    /// `none`, `organizer`, `tentativelyAccepted`, `accepted`, `declined`, `notResponded`.
    pub response: Option<String>,
    pub response_time: Option<String>,
}

/// A recurrence as Graph defines it (`patternedRecurrence`).
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Recurrence {
    pub pattern: RecurrencePattern,
    pub range: RecurrenceRange,
}

#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RecurrencePattern {
    /// `daily`, `weekly`, `absoluteMonthly`, `relativeMonthly`, `absoluteYearly`,
    /// `relativeYearly`.
    #[serde(rename = "type")]
    pub kind: String,
    pub interval: i32,
    #[serde(default)]
    pub month: Option<i32>,
    #[serde(default)]
    pub day_of_month: Option<i32>,
    #[serde(default)]
    pub days_of_week: Vec<String>,
    #[serde(default)]
    pub first_day_of_week: Option<String>,
    /// `first`, `second`, `third`, `fourth`, `last` (relative patterns).
    #[serde(default)]
    pub index: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RecurrenceRange {
    /// `endDate`, `noEnd` or `numbered`.
    #[serde(rename = "type")]
    pub kind: String,
    /// `YYYY-MM-DD`.
    pub start_date: String,
    #[serde(default)]
    pub end_date: Option<String>,
    #[serde(default)]
    pub recurrence_time_zone: Option<String>,
    #[serde(default)]
    pub number_of_occurrences: Option<i32>,
}

const DAYS: &[&str] = &[
    "sunday",
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
];

impl Recurrence {
    /// Refuses what Graph would refuse, naming the field, before any Graph call.
    pub fn validate(&self) -> Result<(), ServiceError> {
        fn bad<T>(m: String) -> Result<T, ServiceError> {
            Err(ServiceError::BadInput(format!("recurrence.{m}")))
        }
        let p = &self.pattern;
        let kinds = [
            "daily",
            "weekly",
            "absoluteMonthly",
            "relativeMonthly",
            "absoluteYearly",
            "relativeYearly",
        ];
        if !kinds.contains(&p.kind.as_str()) {
            return bad(format!(
                "pattern.type: '{}' is not one of {kinds:?}",
                p.kind
            ));
        }
        if !(1..=999).contains(&p.interval) {
            return bad("pattern.interval must be 1 to 999".into());
        }
        for day in p.days_of_week.iter().chain(&p.first_day_of_week) {
            if !DAYS.contains(&day.as_str()) {
                return bad(format!("pattern: '{day}' is not a day of the week"));
            }
        }
        let needs_days = matches!(
            p.kind.as_str(),
            "weekly" | "relativeMonthly" | "relativeYearly"
        );
        if needs_days && p.days_of_week.is_empty() {
            return bad(format!(
                "pattern.daysOfWeek: a {} pattern needs at least one day",
                p.kind
            ));
        }
        if matches!(p.kind.as_str(), "absoluteMonthly" | "absoluteYearly")
            && !p.day_of_month.is_some_and(|d| (1..=31).contains(&d))
        {
            return bad(format!(
                "pattern.dayOfMonth: a {} pattern needs a day of the month (1 to 31)",
                p.kind
            ));
        }
        if matches!(p.kind.as_str(), "absoluteYearly" | "relativeYearly")
            && !p.month.is_some_and(|m| (1..=12).contains(&m))
        {
            return bad(format!(
                "pattern.month: a {} pattern needs a month (1 to 12)",
                p.kind
            ));
        }
        if let Some(index) = &p.index
            && !["first", "second", "third", "fourth", "last"].contains(&index.as_str())
        {
            return bad(format!(
                "pattern.index: '{index}' is not first…fourth or last"
            ));
        }
        let r = &self.range;
        let start: jiff::civil::Date = r
            .start_date
            .parse()
            .or_else(|_| bad("range.startDate must be a date (YYYY-MM-DD)".into()))?;
        match r.kind.as_str() {
            "endDate" => {
                let end: jiff::civil::Date = r
                    .end_date
                    .as_deref()
                    .unwrap_or_default()
                    .parse()
                    .or_else(|_| bad("range.endDate must be a date for an endDate range".into()))?;
                if end < start {
                    return bad("range.endDate is before range.startDate".into());
                }
            }
            "numbered" => {
                if !r
                    .number_of_occurrences
                    .is_some_and(|n| (1..=999).contains(&n))
                {
                    return bad(
                        "range.numberOfOccurrences must be 1 to 999 for a numbered range".into(),
                    );
                }
            }
            "noEnd" => {}
            other => {
                return bad(format!(
                    "range.type: '{other}' is not endDate, noEnd or numbered"
                ));
            }
        }
        if let Some(zone) = &r.recurrence_time_zone {
            Zone::parse("recurrence.range.recurrenceTimeZone", zone)?;
        }
        Ok(())
    }
}

/// An event as the gateway returns it.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Event {
    pub id: String,
    pub mailbox: String,
    pub subject: Option<String>,
    pub body: Option<ItemBody>,
    pub body_preview: Option<String>,
    pub start: Option<DateTimeTz>,
    pub end: Option<DateTimeTz>,
    pub is_all_day: Option<bool>,
    /// The location's display name.
    pub location: Option<String>,
    pub locations: Vec<String>,
    pub attendees: Vec<Attendee>,
    pub organizer: Option<Recipient>,
    pub is_online_meeting: Option<bool>,
    /// The Teams join link of an online meeting.
    pub join_url: Option<String>,
    pub recurrence: Option<Recurrence>,
    /// `singleInstance`, `occurrence`, `exception` or `seriesMaster`.
    pub kind: Option<String>,
    pub series_master_id: Option<String>,
    pub show_as: Option<String>,
    pub sensitivity: Option<String>,
    pub importance: Option<String>,
    pub categories: Vec<String>,
    pub is_cancelled: Option<bool>,
    pub is_organizer: Option<bool>,
    /// The mailbox owner's own response.
    pub response: Option<String>,
    pub response_time: Option<String>,
    pub web_link: Option<String>,
    pub ical_uid: Option<String>,
}

fn recipient(e: Option<models::EmailAddress>) -> Option<Recipient> {
    e.map(|e| Recipient {
        name: e.name,
        address: e.address,
    })
}

impl Event {
    fn from_graph(e: models::Event, mailbox: &str) -> Result<Self, ServiceError> {
        Ok(Event {
            id: e.id.ok_or(ServiceError::UpstreamBadResponse)?,
            mailbox: mailbox.to_owned(),
            subject: e.subject,
            body: e.body.map(|b| ItemBody {
                content_type: if b
                    .content_type
                    .as_deref()
                    .is_some_and(|t| t.eq_ignore_ascii_case("text"))
                {
                    BodyType::Text
                } else {
                    BodyType::Html
                },
                content: b.content.unwrap_or_default(),
            }),
            body_preview: e.body_preview,
            start: DateTimeTz::from_graph(e.start)?,
            end: DateTimeTz::from_graph(e.end)?,
            is_all_day: e.is_all_day,
            location: e
                .location
                .and_then(|l| l.display_name)
                .filter(|n| !n.is_empty()),
            locations: e
                .locations
                .unwrap_or_default()
                .into_iter()
                .filter_map(|l| l.display_name)
                .collect(),
            attendees: e
                .attendees
                .unwrap_or_default()
                .into_iter()
                .filter_map(|a| {
                    Some(Attendee {
                        email_address: recipient(a.email_address)?,
                        kind: a.kind.unwrap_or_else(|| "required".into()),
                        response: a.status.as_ref().and_then(|s| s.response.clone()),
                        response_time: a.status.and_then(|s| s.time),
                    })
                })
                .collect(),
            organizer: e.organizer.and_then(|o| recipient(o.email_address)),
            is_online_meeting: e.is_online_meeting,
            join_url: e.online_meeting.and_then(|m| m.join_url),
            recurrence: e
                .recurrence
                .filter(|r| !r.is_null())
                .and_then(|r| serde_json::from_value(r).ok()),
            kind: e.kind,
            series_master_id: e.series_master_id,
            show_as: e.show_as,
            sensitivity: e.sensitivity,
            importance: e.importance,
            categories: e.categories.unwrap_or_default(),
            is_cancelled: e.is_cancelled,
            is_organizer: e.is_organizer,
            response: e.response_status.as_ref().and_then(|s| s.response.clone()),
            response_time: e.response_status.and_then(|s| s.time),
            web_link: e.web_link,
            ical_uid: e.ical_uid,
        })
    }
}

/// An attendee to invite.
#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewAttendee {
    pub address: String,
    pub name: Option<String>,
    /// `required` (default), `optional` or `resource` (also accepted as `type`).
    #[serde(default, alias = "type")]
    pub kind: Option<String>,
}

/// A new event, or the changes to one (every field optional on update).
#[derive(Clone, Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EventInput {
    pub subject: Option<String>,
    pub body: Option<String>,
    pub body_type: Option<BodyType>,
    /// ISO 8601 with offset.
    pub start: Option<String>,
    pub end: Option<String>,
    /// The zone the event is scheduled in (IANA or Windows; default UTC): recurring
    /// meetings keep their wall-clock time in it across DST changes.
    pub time_zone: Option<String>,
    pub is_all_day: Option<bool>,
    pub location: Option<String>,
    pub attendees: Option<Vec<NewAttendee>>,
    pub is_online_meeting: Option<bool>,
    pub recurrence: Option<Recurrence>,
    pub reminder_minutes_before_start: Option<i32>,
    /// `free`, `tentative`, `busy`, `oof`, `workingElsewhere`.
    pub show_as: Option<String>,
    /// `normal`, `personal`, `private`, `confidential`.
    pub sensitivity: Option<String>,
    pub importance: Option<String>,
    pub categories: Option<Vec<String>>,
    /// Makes a create idempotent: Graph answers the event already created with this id.
    /// The gateway makes one up when none is given.
    pub transaction_id: Option<String>,
}

fn one_of(field: &str, value: &str, allowed: &[&str]) -> Result<String, ServiceError> {
    allowed
        .iter()
        .find(|a| a.eq_ignore_ascii_case(value))
        .map(|a| (*a).to_owned())
        .ok_or_else(|| {
            ServiceError::BadInput(format!("{field}: '{value}' is not one of {allowed:?}"))
        })
}

impl EventInput {
    /// The Graph JSON; `creating` requires subject, start and end.
    fn graph_json(&self, creating: bool) -> Result<Value, ServiceError> {
        let zone = match &self.time_zone {
            Some(name) => Zone::parse("timeZone", name)?,
            None => Zone::utc(),
        };
        let start = self
            .start
            .as_deref()
            .map(|s| parse_instant("start", s))
            .transpose()?;
        let end = self
            .end
            .as_deref()
            .map(|s| parse_instant("end", s))
            .transpose()?;
        if creating && (start.is_none() || end.is_none()) {
            return Err(ServiceError::BadInput(
                "an event needs start and end".into(),
            ));
        }
        if let (Some(s), Some(e)) = (start, end)
            && e <= s
        {
            return Err(ServiceError::BadInput("end must be after start".into()));
        }
        let mut event = serde_json::Map::new();
        let mut set = |k: &str, v: Value| {
            event.insert(k.to_owned(), v);
        };
        if let Some(s) = &self.subject {
            set("subject", json!(s));
        }
        if let Some(b) = &self.body {
            let kind = match self.body_type.unwrap_or(BodyType::Text) {
                BodyType::Text => "text",
                BodyType::Html => "html",
            };
            set("body", json!({ "contentType": kind, "content": b }));
        }
        for (field, instant) in [("start", start), ("end", end)] {
            if let Some(instant) = instant {
                set(
                    field,
                    json!({ "dateTime": zone.wall_clock(instant), "timeZone": zone.name }),
                );
            }
        }
        if let Some(v) = self.is_all_day {
            set("isAllDay", json!(v));
        }
        if let Some(l) = &self.location {
            set("location", json!({ "displayName": l }));
        }
        if let Some(attendees) = &self.attendees {
            if attendees.len() > 500 {
                return Err(ServiceError::BadInput("at most 500 attendees".into()));
            }
            let mut list = Vec::new();
            for a in attendees {
                if !super::mail_send::is_address(&a.address) {
                    return Err(ServiceError::BadInput(format!(
                        "attendees: '{}' is not a valid mail address",
                        a.address
                    )));
                }
                let kind = one_of(
                    "attendees.type",
                    a.kind.as_deref().unwrap_or("required"),
                    &["required", "optional", "resource"],
                )?;
                let mut address = json!({ "address": a.address });
                if let Some(name) = &a.name {
                    address["name"] = json!(name);
                }
                list.push(json!({ "emailAddress": address, "type": kind }));
            }
            set("attendees", Value::Array(list));
        }
        if let Some(v) = self.is_online_meeting {
            set("isOnlineMeeting", json!(v));
            if v {
                set("onlineMeetingProvider", json!("teamsForBusiness"));
            }
        }
        if let Some(r) = &self.recurrence {
            r.validate()?;
            set(
                "recurrence",
                serde_json::to_value(r).map_err(|_| ServiceError::Internal)?,
            );
        }
        if let Some(m) = self.reminder_minutes_before_start {
            if !(0..=40_320).contains(&m) {
                return Err(ServiceError::BadInput(
                    "reminderMinutesBeforeStart must be 0 to 40320 (4 weeks)".into(),
                ));
            }
            set("reminderMinutesBeforeStart", json!(m));
            set("isReminderOn", json!(true));
        }
        if let Some(v) = &self.show_as {
            set(
                "showAs",
                json!(one_of(
                    "showAs",
                    v,
                    &["free", "tentative", "busy", "oof", "workingElsewhere"]
                )?),
            );
        }
        if let Some(v) = &self.sensitivity {
            set(
                "sensitivity",
                json!(one_of(
                    "sensitivity",
                    v,
                    &["normal", "personal", "private", "confidential"]
                )?),
            );
        }
        if let Some(v) = &self.importance {
            set(
                "importance",
                json!(one_of("importance", v, &["low", "normal", "high"])?),
            );
        }
        if let Some(c) = &self.categories {
            set("categories", json!(c));
        }
        Ok(Value::Object(event))
    }
}

/// The `Prefer` header asking Graph for times in `zone`.
fn prefer_zone(zone: &Zone) -> String {
    format!("outlook.timezone=\"{}\"", zone.name)
}

fn zone_or_utc(field: &str, name: Option<&str>) -> Result<Zone, ServiceError> {
    name.map(|n| Zone::parse(field, n))
        .transpose()
        .map(|z| z.unwrap_or_else(Zone::utc))
}

/// A response to a meeting invitation.
#[derive(Clone, Copy, Debug, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum MeetingResponse {
    Accept,
    Tentative,
    Decline,
}

/// One person's free/busy.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Schedule {
    /// The address asked about.
    pub schedule_id: String,
    /// One digit per interval: 0 free, 1 tentative, 2 busy, 3 out of office, 4 working
    /// elsewhere.
    pub availability_view: Option<String>,
    pub items: Vec<ScheduleItem>,
    pub working_hours: Option<WorkingHours>,
    /// Why Graph had nothing for this person (unknown address, no access).
    pub error: Option<String>,
}

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct ScheduleItem {
    /// `free`, `tentative`, `busy`, `oof`, `workingElsewhere`, `unknown`.
    pub status: String,
    pub subject: Option<String>,
    pub location: Option<String>,
    pub is_private: bool,
    pub start: DateTimeTz,
    pub end: DateTimeTz,
}

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct WorkingHours {
    /// `monday`, …
    pub days_of_week: Vec<String>,
    /// `08:00:00`.
    pub start_time: String,
    pub end_time: String,
    pub time_zone: String,
}

/// A slot every attendee is free for.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct MeetingSlot {
    pub start: DateTimeTz,
    pub end: DateTimeTz,
}

impl Session {
    fn check_view_window(start: Timestamp, end: Timestamp) -> Result<(), ServiceError> {
        if end <= start {
            return Err(ServiceError::BadInput("end must be after start".into()));
        }
        if end.duration_since(start) > jiff::SignedDuration::from_hours(24 * MAX_VIEW_DAYS) {
            return Err(ServiceError::BadInput(format!(
                "the window from start to end may span at most {MAX_VIEW_DAYS} days"
            )));
        }
        Ok(())
    }

    /// A user's calendars.
    pub async fn calendars(
        &self,
        mailbox: &str,
        first: usize,
        after: Option<&str>,
    ) -> Result<Page<Calendar>, ServiceError> {
        self.require("calendar.read")?;
        let top = check_first(first)?;
        let (user, key) = self.mailbox(mailbox)?;
        let base = user.then("calendars");
        let path = base.path().to_owned();
        let url = base.select(CALENDAR_FIELDS).top(top);
        self.page::<models::Calendar>(GraphGet::new(url), &path, first, after, "calendars")
            .await?
            .map(|c| Calendar::from_graph(c, &key))
    }

    /// The default calendar.
    pub async fn calendar(&self, mailbox: &str) -> Result<Calendar, ServiceError> {
        self.require("calendar.read")?;
        let (user, key) = self.mailbox(mailbox)?;
        let url = user.then("calendar").select(CALENDAR_FIELDS);
        let found: models::Calendar = self
            .get_json(GraphGet::new(url))
            .await
            .map_err(|e| self.upstream(e, &format!("the calendar of '{mailbox}'")))?;
        Calendar::from_graph(found, &key)
    }

    fn calendar_base(user: GraphUrl, calendar: Option<&str>) -> Result<GraphUrl, ServiceError> {
        Ok(match calendar {
            Some(id) => user.then("calendars").id(id)?,
            None => user.then("calendar"),
        })
    }

    /// Events as stored (series masters and single events), optionally limited to those
    /// starting from `start` and ending by `end`.
    #[allow(clippy::too_many_arguments)]
    pub async fn events(
        &self,
        mailbox: &str,
        calendar: Option<&str>,
        start: Option<&str>,
        end: Option<&str>,
        subject_contains: Option<&str>,
        time_zone: Option<&str>,
        first: usize,
        after: Option<&str>,
    ) -> Result<Page<Event>, ServiceError> {
        self.require("calendar.read")?;
        let top = check_first(first)?;
        let zone = zone_or_utc("timeZone", time_zone)?;
        let utc = Zone::utc();
        let mut clauses = Vec::new();
        if let Some(s) = start {
            let s = parse_instant("start", s)?;
            clauses.push(format!("start/dateTime ge '{}'", utc.wall_clock(s)));
        }
        if let Some(e) = end {
            let e = parse_instant("end", e)?;
            clauses.push(format!("end/dateTime le '{}'", utc.wall_clock(e)));
        }
        if let Some(text) = subject_contains {
            clauses.push(format!(
                "contains(subject,{})",
                crate::graph::odata_string(text)?
            ));
        }
        let (user, key) = self.mailbox(mailbox)?;
        let base = Self::calendar_base(user, calendar)?.then("events");
        let path = base.path().to_owned();
        let mut url = base.top(top).orderby("start/dateTime");
        if !clauses.is_empty() {
            url = url.filter(&clauses.join(" and "));
        }
        let start = GraphGet::new(url).prefer(Some(&prefer_zone(&zone)));
        self.page::<models::Event>(start, &path, first, after, "events")
            .await?
            .map(|e| Event::from_graph(e, &key))
    }

    /// The calendar between `start` and `end` with recurring series expanded into their
    /// occurrences and exceptions, times in `time_zone` (default UTC).
    #[allow(clippy::too_many_arguments)]
    pub async fn calendar_view(
        &self,
        mailbox: &str,
        calendar: Option<&str>,
        start: &str,
        end: &str,
        time_zone: Option<&str>,
        first: usize,
        after: Option<&str>,
    ) -> Result<Page<Event>, ServiceError> {
        self.require("calendar.read")?;
        let top = check_first(first)?;
        let zone = zone_or_utc("timeZone", time_zone)?;
        let (s, e) = (parse_instant("start", start)?, parse_instant("end", end)?);
        Self::check_view_window(s, e)?;
        let (user, key) = self.mailbox(mailbox)?;
        let base = Self::calendar_base(user, calendar)?.then("calendarView");
        let path = base.path().to_owned();
        let url = base
            .param("startDateTime", s.to_string())
            .param("endDateTime", e.to_string())
            .top(top);
        let request = GraphGet::new(url).prefer(Some(&prefer_zone(&zone)));
        self.page::<models::Event>(request, &path, first, after, "calendar view")
            .await?
            .map(|e| Event::from_graph(e, &key))
    }

    /// One event by id.
    pub async fn event(
        &self,
        mailbox: &str,
        id: &str,
        time_zone: Option<&str>,
    ) -> Result<Event, ServiceError> {
        self.require("calendar.read")?;
        let zone = zone_or_utc("timeZone", time_zone)?;
        let (user, key) = self.mailbox(mailbox)?;
        let url = user.then("events").id(id)?;
        let found: models::Event = self
            .get_json(GraphGet::new(url).prefer(Some(&prefer_zone(&zone))))
            .await
            .map_err(|e| self.upstream(e, &format!("event '{id}'")))?;
        Event::from_graph(found, &key)
    }

    fn event_reply(&self, body: &[u8], key: &str) -> Result<Event, ServiceError> {
        let event: models::Event =
            serde_json::from_slice(body).map_err(|_| ServiceError::UpstreamBadResponse)?;
        Event::from_graph(event, key)
    }

    /// Creates an event (a meeting when it has attendees: Exchange sends the invitations).
    /// Retried safely: the create carries a `transactionId`, so Graph never makes two.
    pub async fn create_event(
        &self,
        mailbox: &str,
        calendar: Option<&str>,
        input: &EventInput,
    ) -> Result<Event, ServiceError> {
        self.require("calendar.write")?;
        let mut body = input.graph_json(true)?;
        let transaction = input
            .transaction_id
            .clone()
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        if transaction.is_empty() || transaction.len() > 256 {
            return Err(ServiceError::BadInput(
                "transactionId must be 1 to 256 characters".into(),
            ));
        }
        body["transactionId"] = json!(transaction);
        let (user, key) = self.mailbox(mailbox)?;
        let url = match calendar {
            Some(id) => user.then("calendars").id(id)?.then("events"),
            None => user.then("events"),
        };
        let request = GraphWrite {
            idempotency: Idempotency::Idempotent,
            ..GraphWrite::post(url, body)
        };
        let reply = self.write_mailbox(&key, request, "the event").await;
        self.calendar_written(&key, input).await;
        self.event_reply(&reply?.body, &key)
    }

    /// Changes an event; only the fields given change (attendees are replaced as a whole).
    pub async fn update_event(
        &self,
        mailbox: &str,
        id: &str,
        input: &EventInput,
    ) -> Result<Event, ServiceError> {
        self.require("calendar.write")?;
        if input.transaction_id.is_some() {
            return Err(ServiceError::BadInput(
                "transactionId is set on creation only".into(),
            ));
        }
        let body = input.graph_json(false)?;
        if body.as_object().is_none_or(|o| o.is_empty()) {
            return Err(ServiceError::BadInput("nothing to update".into()));
        }
        let (user, key) = self.mailbox(mailbox)?;
        let request = GraphWrite::patch(user.then("events").id(id)?, body);
        let reply = self
            .write_mailbox(&key, request, &format!("event '{id}'"))
            .await;
        self.calendar_written(&key, input).await;
        self.event_reply(&reply?.body, &key)
    }

    /// Deletes an event (an organiser deleting a meeting should rather cancel it).
    pub async fn delete_event(&self, mailbox: &str, id: &str) -> Result<(), ServiceError> {
        self.require("calendar.write")?;
        let (user, key) = self.mailbox(mailbox)?;
        let request = GraphWrite::delete(user.then("events").id(id)?);
        self.write_mailbox(&key, request, &format!("event '{id}'"))
            .await
            .map(|_| ())
    }

    /// Cancels a meeting the mailbox organises, telling the attendees.
    pub async fn cancel_event(
        &self,
        mailbox: &str,
        id: &str,
        comment: Option<&str>,
    ) -> Result<(), ServiceError> {
        self.require("calendar.write")?;
        let (user, key) = self.mailbox(mailbox)?;
        let request = GraphWrite {
            idempotency: Idempotency::Idempotent,
            ..GraphWrite::post(
                user.then("events").id(id)?.then("cancel"),
                json!({ "comment": comment.unwrap_or_default() }),
            )
        };
        self.write_mailbox(&key, request, &format!("event '{id}'"))
            .await
            .map(|_| ())
    }

    /// Accepts, tentatively accepts or declines a meeting in the mailbox's calendar.
    pub async fn respond_to_event(
        &self,
        mailbox: &str,
        id: &str,
        response: MeetingResponse,
        comment: Option<&str>,
        send_response: bool,
    ) -> Result<(), ServiceError> {
        self.require("calendar.write")?;
        let (user, key) = self.mailbox(mailbox)?;
        let action = match response {
            MeetingResponse::Accept => "accept",
            MeetingResponse::Tentative => "tentativelyAccept",
            MeetingResponse::Decline => "decline",
        };
        let request = GraphWrite {
            idempotency: Idempotency::Idempotent,
            ..GraphWrite::post(
                user.then("events").id(id)?.then(action),
                json!({ "comment": comment.unwrap_or_default(), "sendResponse": send_response }),
            )
        };
        self.write_mailbox(&key, request, &format!("event '{id}'"))
            .await
            .map(|_| ())
    }

    /// Evicts cached calendars of the mailbox and of the attendees a meeting reached.
    async fn calendar_written(&self, key: &str, input: &EventInput) {
        self.graph().invalidate_mailbox(key).await;
        for a in input.attendees.iter().flatten() {
            self.graph().invalidate_mailbox(&a.address).await;
        }
    }

    /// Free/busy of up to 20 people between `start` and `end`, in `interval_minutes`
    /// (5 to 1440) steps, times in `time_zone`.
    pub async fn schedule(
        &self,
        users: &[String],
        start: &str,
        end: &str,
        interval_minutes: i32,
        time_zone: Option<&str>,
    ) -> Result<Vec<Schedule>, ServiceError> {
        self.require("calendar.read")?;
        if users.is_empty() || users.len() > MAX_SCHEDULES {
            return Err(ServiceError::BadInput(format!(
                "users: give 1 to {MAX_SCHEDULES} addresses"
            )));
        }
        if !(5..=1440).contains(&interval_minutes) {
            return Err(ServiceError::BadInput(
                "intervalMinutes must be 5 to 1440".into(),
            ));
        }
        let zone = zone_or_utc("timeZone", time_zone)?;
        let (s, e) = (parse_instant("start", start)?, parse_instant("end", end)?);
        Self::check_view_window(s, e)?;
        for user in users {
            if !super::mail_send::is_address(user) {
                return Err(ServiceError::BadInput(format!(
                    "users: '{user}' is not a mail address"
                )));
            }
            self.resolve_user(user)?;
        }
        // getSchedule is asked through one mailbox: the caller's own user, else the first
        // person asked about.
        let via = self.caller.user.clone().unwrap_or_else(|| users[0].clone());
        let (user, _) = self.mailbox(&via)?;
        let body = json!({
            "schedules": users,
            "startTime": { "dateTime": zone.wall_clock(s), "timeZone": zone.name },
            "endTime": { "dateTime": zone.wall_clock(e), "timeZone": zone.name },
            "availabilityViewInterval": interval_minutes,
        });
        #[derive(Deserialize)]
        struct Answer {
            #[serde(default)]
            value: Vec<models::ScheduleInformation>,
        }
        let url = user.then("calendar").then("getSchedule");
        let reply = self
            .graph()
            .write(
                self.access(),
                &GraphWrite {
                    idempotency: Idempotency::Idempotent,
                    prefer: Some(prefer_zone(&zone)),
                    ..GraphWrite::post(url, body)
                },
                self.deadline(),
            )
            .await
            .map_err(|e| self.upstream(e, "free/busy"))?;
        let answer: Answer =
            serde_json::from_slice(&reply.body).map_err(|_| ServiceError::UpstreamBadResponse)?;
        answer
            .value
            .into_iter()
            .map(|info| {
                let items = info
                    .schedule_items
                    .unwrap_or_default()
                    .into_iter()
                    .filter_map(|item| {
                        let start = DateTimeTz::from_graph(item.start).transpose()?;
                        let end = DateTimeTz::from_graph(item.end).transpose()?;
                        Some((|| {
                            Ok(ScheduleItem {
                                status: item.status.unwrap_or_else(|| "unknown".into()),
                                subject: item.subject,
                                location: item.location,
                                is_private: item.is_private.unwrap_or(false),
                                start: start?,
                                end: end?,
                            })
                        })())
                    })
                    .collect::<Result<Vec<_>, ServiceError>>()?;
                Ok(Schedule {
                    schedule_id: info.schedule_id.unwrap_or_default(),
                    availability_view: info.availability_view,
                    items,
                    working_hours: info.working_hours.map(|w| WorkingHours {
                        days_of_week: w.days_of_week,
                        start_time: trim_time(w.start_time.as_deref().unwrap_or("00:00:00")),
                        end_time: trim_time(w.end_time.as_deref().unwrap_or("23:59:59")),
                        time_zone: w
                            .time_zone
                            .and_then(|z| z.name)
                            .unwrap_or_else(|| "UTC".into()),
                    }),
                    error: info.error.map(|e| {
                        e.message
                            .or(e.response_code)
                            .unwrap_or_else(|| "no free/busy information".into())
                    }),
                })
            })
            .collect()
    }

    /// Slots of `duration_minutes` between `start` and `end` in which every attendee is
    /// free (busy, tentative and out-of-office times count as taken) and, with
    /// `working_hours_only`, inside each attendee's working hours in their own time zone.
    /// Candidate starts are every `step_minutes` from `start`.
    #[allow(clippy::too_many_arguments)]
    pub async fn find_meeting_slots(
        &self,
        attendees: &[String],
        duration_minutes: i32,
        start: &str,
        end: &str,
        working_hours_only: bool,
        step_minutes: i32,
        time_zone: Option<&str>,
    ) -> Result<Vec<MeetingSlot>, ServiceError> {
        if !(5..=1440).contains(&duration_minutes) {
            return Err(ServiceError::BadInput(
                "durationMinutes must be 5 to 1440".into(),
            ));
        }
        if !(5..=1440).contains(&step_minutes) {
            return Err(ServiceError::BadInput(
                "stepMinutes must be 5 to 1440".into(),
            ));
        }
        let zone = zone_or_utc("timeZone", time_zone)?;
        let (window_start, window_end) =
            (parse_instant("start", start)?, parse_instant("end", end)?);
        let schedules = self
            .schedule(attendees, start, end, step_minutes.min(30), time_zone)
            .await?;
        if let Some(missing) = schedules.iter().find(|s| s.error.is_some()) {
            return Err(ServiceError::NotFound(format!(
                "no free/busy for '{}': {}",
                missing.schedule_id,
                missing.error.as_deref().unwrap_or_default()
            )));
        }
        let mut people = Vec::new();
        for schedule in &schedules {
            let mut busy = Vec::new();
            for item in &schedule.items {
                if matches!(
                    item.status.as_str(),
                    "busy" | "tentative" | "oof" | "unknown"
                ) {
                    busy.push((item.start.instant()?, item.end.instant()?));
                }
            }
            let hours = if working_hours_only {
                match &schedule.working_hours {
                    Some(w) => Some(working_intervals(w, window_start, window_end)?),
                    None => None,
                }
            } else {
                None
            };
            people.push((busy, hours));
        }
        let duration = jiff::SignedDuration::from_mins(i64::from(duration_minutes));
        let step = jiff::SignedDuration::from_mins(i64::from(step_minutes));
        let mut slots = Vec::new();
        let mut at = window_start;
        while at.checked_add(duration).is_ok_and(|end| end <= window_end) && slots.len() < MAX_SLOTS
        {
            let until = at
                .checked_add(duration)
                .map_err(|_| ServiceError::Internal)?;
            let free = people.iter().all(|(busy, hours)| {
                busy.iter().all(|(b, e)| until <= *b || at >= *e)
                    && hours
                        .as_ref()
                        .is_none_or(|h| h.iter().any(|(s, e)| at >= *s && until <= *e))
            });
            if free {
                slots.push(MeetingSlot {
                    start: at_zone(at, &zone),
                    end: at_zone(until, &zone),
                });
            }
            at = at.checked_add(step).map_err(|_| ServiceError::Internal)?;
        }
        Ok(slots)
    }
}

fn at_zone(instant: Timestamp, zone: &Zone) -> DateTimeTz {
    DateTimeTz {
        date_time: instant
            .to_zoned(zone.tz().clone())
            .strftime("%Y-%m-%dT%H:%M:%S%:z")
            .to_string(),
        time_zone: zone.name.clone(),
    }
}

/// `08:00:00.0000000` → `08:00:00`.
fn trim_time(value: &str) -> String {
    value.split('.').next().unwrap_or(value).to_owned()
}

/// The working-hours intervals of a person that touch the window, as instants: each
/// working day's start and end time in the person's own zone.
fn working_intervals(
    hours: &WorkingHours,
    window_start: Timestamp,
    window_end: Timestamp,
) -> Result<Vec<(Timestamp, Timestamp)>, ServiceError> {
    let zone = Zone::parse("workingHours.timeZone", &hours.time_zone)
        .map_err(|_| ServiceError::UpstreamBadResponse)?;
    let begin: jiff::civil::Time = hours
        .start_time
        .parse()
        .map_err(|_| ServiceError::UpstreamBadResponse)?;
    let finish: jiff::civil::Time = hours
        .end_time
        .parse()
        .map_err(|_| ServiceError::UpstreamBadResponse)?;
    let mut day = window_start
        .to_zoned(zone.tz().clone())
        .date()
        .yesterday()
        .map_err(|_| ServiceError::Internal)?;
    let last = window_end.to_zoned(zone.tz().clone()).date();
    let mut intervals = Vec::new();
    while day <= last {
        let name = DAYS[day.weekday().to_sunday_zero_offset() as usize];
        if hours
            .days_of_week
            .iter()
            .any(|d| d.eq_ignore_ascii_case(name))
        {
            let from = zone
                .tz()
                .to_ambiguous_zoned(day.to_datetime(begin))
                .compatible()
                .map_err(|_| ServiceError::Internal)?;
            let to = zone
                .tz()
                .to_ambiguous_zoned(day.to_datetime(finish))
                .compatible()
                .map_err(|_| ServiceError::Internal)?;
            intervals.push((from.timestamp(), to.timestamp()));
        }
        day = day.tomorrow().map_err(|_| ServiceError::Internal)?;
    }
    Ok(intervals)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn weekly(days: &[&str]) -> Recurrence {
        Recurrence {
            pattern: RecurrencePattern {
                kind: "weekly".into(),
                interval: 1,
                month: None,
                day_of_month: None,
                days_of_week: days.iter().map(|d| d.to_string()).collect(),
                first_day_of_week: None,
                index: None,
            },
            range: RecurrenceRange {
                kind: "numbered".into(),
                start_date: "2024-05-06".into(),
                end_date: None,
                recurrence_time_zone: None,
                number_of_occurrences: Some(10),
            },
        }
    }

    #[test]
    fn recurrences_graph_would_reject_are_refused_naming_the_field() {
        assert!(weekly(&["monday"]).validate().is_ok());
        let err = weekly(&[]).validate().unwrap_err();
        assert!(
            matches!(&err, ServiceError::BadInput(m) if m.contains("daysOfWeek")),
            "{err:?}"
        );
        let mut r = weekly(&["funday"]);
        assert!(r.validate().is_err());
        r = weekly(&["monday"]);
        r.range.kind = "endDate".into();
        r.range.end_date = Some("2024-05-01".into());
        let err = r.validate().unwrap_err();
        assert!(matches!(&err, ServiceError::BadInput(m) if m.contains("endDate")));
        r = weekly(&["monday"]);
        r.pattern.kind = "absoluteMonthly".into();
        assert!(matches!(r.validate(), Err(ServiceError::BadInput(m)) if m.contains("dayOfMonth")));
        r = weekly(&["monday"]);
        r.range.number_of_occurrences = None;
        assert!(
            matches!(r.validate(), Err(ServiceError::BadInput(m)) if m.contains("numberOfOccurrences"))
        );
    }

    #[test]
    fn event_input_checks_times_before_graph_sees_them() {
        let input = EventInput {
            subject: Some("x".into()),
            start: Some("2024-05-01T10:00:00Z".into()),
            end: Some("2024-05-01T09:00:00Z".into()),
            ..Default::default()
        };
        assert!(
            matches!(input.graph_json(true), Err(ServiceError::BadInput(m)) if m.contains("end"))
        );
        let input = EventInput {
            subject: Some("x".into()),
            start: Some("2024-05-01T10:00:00+02:00".into()),
            end: Some("2024-05-01T11:00:00+02:00".into()),
            time_zone: Some("W. Europe Standard Time".into()),
            ..Default::default()
        };
        let json = input.graph_json(true).unwrap();
        assert_eq!(json["start"]["dateTime"], "2024-05-01T10:00:00");
        assert_eq!(json["start"]["timeZone"], "W. Europe Standard Time");
        let input = EventInput {
            time_zone: Some("Atlantis/Capital".into()),
            start: Some("2024-05-01T10:00:00Z".into()),
            end: Some("2024-05-01T11:00:00Z".into()),
            ..Default::default()
        };
        assert!(
            matches!(input.graph_json(true), Err(ServiceError::BadInput(m)) if m.contains("timeZone"))
        );
    }

    #[test]
    fn working_hours_become_instants_in_the_persons_zone() {
        let hours = WorkingHours {
            days_of_week: vec!["monday".into()],
            start_time: "08:00:00".into(),
            end_time: "17:00:00".into(),
            time_zone: "Pacific Standard Time".into(),
        };
        let start: Timestamp = "2024-07-01T00:00:00Z".parse().unwrap();
        let end: Timestamp = "2024-07-02T23:00:00Z".parse().unwrap();
        let intervals = working_intervals(&hours, start, end).unwrap();
        assert_eq!(intervals.len(), 1);
        assert_eq!(intervals[0].0.to_string(), "2024-07-01T15:00:00Z");
        assert_eq!(intervals[0].1.to_string(), "2024-07-02T00:00:00Z");
    }
}
