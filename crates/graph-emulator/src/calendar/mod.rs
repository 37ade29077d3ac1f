//! Exchange Online's side of calendars and contacts: per mailbox, calendars with events
//! (single instances and recurring series with their exceptions), contact folders with
//! contacts, the owner's time zone and working hours.
//!
//! Everything lives in one `CalendarStore` behind a mutex next to the mail store (lock
//! order: tenant, calendar store, mail store). A user's calendar data is created, and its
//! seeded history generated, on first access, like mailboxes. Seeded meetings are a pure
//! function of `(tenant seed, organiser, anchor day)`, so an attendee's copy, generated
//! lazily with the attendee's own data, always matches the organiser's event.

pub(crate) mod recurrence;
mod seed;
pub(crate) mod tz;
mod windows_zones;

use std::collections::{BTreeMap, HashMap};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE;
use jiff::civil::Date;
use serde_json::{Map, Value};

use crate::mail::{Body, Recipient, ids};
use crate::tenant::{SplitMix64, Tenant};
use recurrence::Recurrence;
pub(crate) use seed::{attendee_show_as, join_url as join_url_for};

/// Ordinals of events and contacts start here, so their ids never equal a message id of
/// the same mailbox.
const EVENT_ORDINAL_BASE: u64 = 1 << 40;
const CONTACT_ORDINAL_BASE: u64 = 2 << 40;
/// An occurrence id: the series master's id bytes, this marker, the original start.
const OCCURRENCE_MARKER: [u8; 2] = [0x00, 0x07];

#[derive(Clone, Debug)]
pub(crate) struct Calendar {
    pub id: String,
    pub name: String,
    pub color: &'static str,
    pub hex_color: &'static str,
    pub is_default: bool,
    pub can_edit: bool,
    pub ordinal: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Attendee {
    /// `required`, `optional` or `resource`.
    pub kind: &'static str,
    pub who: Recipient,
    /// `none`, `accepted`, `tentativelyAccepted`, `declined`, `notResponded`.
    pub response: &'static str,
    pub time: Option<i64>,
}

#[derive(Clone, Debug)]
pub(crate) struct Event {
    pub id: String,
    pub ordinal: u64,
    pub version: u64,
    pub calendar: String,
    pub created: i64,
    pub modified: i64,
    pub ical_uid: String,
    pub subject: String,
    pub body: Body,
    pub start: i64,
    pub end: i64,
    /// The zones the start and end were given in (`originalStartTimeZone`).
    pub start_tz: String,
    pub end_tz: String,
    pub is_all_day: bool,
    pub location: String,
    pub categories: Vec<String>,
    pub importance: &'static str,
    pub sensitivity: &'static str,
    /// `free`, `tentative`, `busy`, `oof`, `workingElsewhere`, `unknown`.
    pub show_as: &'static str,
    pub is_cancelled: bool,
    pub is_organizer: bool,
    pub response_requested: bool,
    pub allow_new_time_proposals: bool,
    pub hide_attendees: bool,
    pub is_reminder_on: bool,
    pub reminder_minutes: i64,
    pub is_online_meeting: bool,
    pub online_meeting_provider: &'static str,
    pub join_url: Option<String>,
    /// `responseStatus.response`: `organizer` for the organiser's own event.
    pub response: &'static str,
    pub response_time: Option<i64>,
    pub organizer: Recipient,
    pub attendees: Vec<Attendee>,
    pub recurrence: Option<Recurrence>,
    pub transaction_id: Option<String>,
    /// Series masters only: changed (`Some`) and deleted (`None`) occurrences, by their
    /// original start.
    pub exceptions: BTreeMap<i64, Option<Box<Event>>>,
}

impl Event {
    pub fn duration(&self) -> i64 {
        self.end - self.start
    }
}

/// A stored event (single instance or series master) shown as itself.
pub(crate) fn whole(e: &Event) -> Instance<'_> {
    Instance {
        master: e,
        original_start: None,
        exception: None,
        start: e.start,
        end: e.end,
    }
}

/// One occurrence of a series, or a single instance, as a calendar view lists it.
#[derive(Clone, Debug)]
pub(crate) struct Instance<'e> {
    /// The stored event: the single instance, or the series master.
    pub master: &'e Event,
    /// `Some(original start)` for occurrences and exceptions.
    pub original_start: Option<i64>,
    /// The exception's own data, when the occurrence was changed.
    pub exception: Option<&'e Event>,
    pub start: i64,
    pub end: i64,
}

impl Instance<'_> {
    /// The event whose properties the instance shows.
    pub fn data(&self) -> &Event {
        self.exception.unwrap_or(self.master)
    }

    pub fn id(&self) -> String {
        match self.original_start {
            Some(t) => occurrence_id(&self.master.id, t),
            None => self.master.id.clone(),
        }
    }

    /// `singleInstance`, `seriesMaster`, `occurrence`, `exception`.
    pub fn kind(&self) -> &'static str {
        match (self.original_start, self.exception) {
            (None, _) if self.master.recurrence.is_some() => "seriesMaster",
            (None, _) => "singleInstance",
            (Some(_), None) => "occurrence",
            (Some(_), Some(_)) => "exception",
        }
    }
}

#[derive(Clone, Debug)]
pub(crate) struct ContactFolder {
    pub id: String,
    pub name: String,
    pub parent: String,
}

#[derive(Clone, Debug)]
pub(crate) struct Contact {
    pub id: String,
    pub ordinal: u64,
    pub version: u64,
    pub folder: String,
    pub created: i64,
    pub modified: i64,
    /// Every other property, as Graph names it (strings, string arrays, addresses,
    /// `emailAddresses`).
    pub props: Map<String, Value>,
}

/// Working hours as `mailboxSettings.workingHours` and getSchedule show them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct WorkingHours {
    /// Windows zone name.
    pub time_zone: &'static str,
    pub start_hour: u8,
    pub end_hour: u8,
    /// Sunday = 0.
    pub days: Vec<u8>,
}

/// One user's calendars and contacts.
pub(crate) struct CalendarBox {
    pub owner: usize,
    pub owner_name: String,
    pub owner_address: String,
    pub key: [u8; 16],
    pub working_hours: WorkingHours,
    pub calendars: Vec<Calendar>,
    pub events: Vec<Event>,
    /// The default Contacts folder (well-known name `contacts`).
    pub contacts_root: String,
    pub contact_folders: Vec<ContactFolder>,
    pub contacts: Vec<Contact>,
    next_ordinal: u64,
    next_contact: u64,
    next_folder: u16,
    rng: SplitMix64,
}

impl CalendarBox {
    fn new(tenant: &Tenant, owner: usize, seed: u64) -> CalendarBox {
        let user = &tenant.users[owner];
        let key = ids::mailbox_key(&user.id);
        let mut b = CalendarBox {
            owner,
            owner_name: user.display_name.clone(),
            owner_address: user
                .mail
                .clone()
                .unwrap_or_else(|| user.user_principal_name.clone()),
            key,
            working_hours: working_hours(tenant, owner),
            calendars: Vec::new(),
            events: Vec::new(),
            contacts_root: String::new(),
            contact_folders: Vec::new(),
            contacts: Vec::new(),
            next_ordinal: EVENT_ORDINAL_BASE,
            next_contact: CONTACT_ORDINAL_BASE,
            // Folder numbers above mail's, so calendar and contact folder ids are distinct.
            next_folder: 0x4000,
            rng: SplitMix64::new(seed ^ ids::fnv(user.id.as_bytes()) ^ 0x6361_6c65_6e64_6172),
        };
        b.add_calendar("Calendar", "auto", "", true);
        b.contacts_root = b.new_folder_id();
        b
    }

    pub fn owner_recipient(&self) -> Recipient {
        Recipient::new(self.owner_name.clone(), self.owner_address.clone())
    }

    pub fn draw(&mut self) -> u64 {
        self.rng.next_u64()
    }

    fn new_folder_id(&mut self) -> String {
        let id = calendar_folder_id(&self.key, self.next_folder);
        self.next_folder += 1;
        id
    }

    pub fn add_calendar(
        &mut self,
        name: &str,
        color: &'static str,
        hex: &'static str,
        is_default: bool,
    ) -> String {
        let id = self.new_folder_id();
        let ordinal = self.next_folder as u64;
        self.calendars.push(Calendar {
            id: id.clone(),
            name: name.to_string(),
            color,
            hex_color: hex,
            is_default,
            can_edit: true,
            ordinal,
        });
        id
    }

    pub fn default_calendar(&self) -> String {
        self.calendars
            .iter()
            .find(|c| c.is_default)
            .map(|c| c.id.clone())
            .unwrap_or_default()
    }

    pub fn calendar(&self, id: &str) -> Option<&Calendar> {
        self.calendars.iter().find(|c| c.id == id)
    }

    pub fn add_contact_folder(&mut self, name: &str) -> String {
        let id = self.new_folder_id();
        let parent = self.contacts_root.clone();
        self.contact_folders.push(ContactFolder {
            id: id.clone(),
            name: name.to_string(),
            parent,
        });
        id
    }

    /// Stores a new event: a fresh id and ordinal.
    pub fn insert_event(&mut self, mut e: Event) -> usize {
        let ordinal = self.next_ordinal;
        self.next_ordinal += 1;
        let salt = self.draw();
        e.id = ids::message_id(&self.key, ordinal, salt);
        e.ordinal = ordinal;
        self.events.push(e);
        self.events.len() - 1
    }

    pub fn insert_contact(&mut self, mut c: Contact) -> usize {
        let ordinal = self.next_contact;
        self.next_contact += 1;
        let salt = self.draw();
        c.id = ids::message_id(&self.key, ordinal, salt);
        c.ordinal = ordinal;
        self.contacts.push(c);
        self.contacts.len() - 1
    }

    pub fn find_event(&self, id: &str) -> Option<usize> {
        self.events.iter().position(|e| e.id == id)
    }

    /// An event id or occurrence id: `(index of the stored event, original start)`.
    pub fn resolve_event(&self, id: &str) -> Option<(usize, Option<i64>)> {
        if let Some(i) = self.find_event(id) {
            return Some((i, None));
        }
        let (master, start) = split_occurrence_id(id)?;
        let i = self.find_event(&master)?;
        let e = &self.events[i];
        if e.recurrence.is_some() && is_occurrence_start(e, start) {
            Some((i, Some(start)))
        } else {
            None
        }
    }

    /// The attendee copy (or the organiser's event) of a meeting, by iCalUId.
    pub fn find_by_ical(&self, ical: &str) -> Option<usize> {
        self.events.iter().position(|e| e.ical_uid == ical)
    }

    /// Records a change to event `i`.
    pub fn touch(&mut self, i: usize, now: i64) {
        let e = &mut self.events[i];
        e.version += 1;
        e.modified = now.max(e.created);
    }
}

/// A calendar/contact folder id (`AAMkAD…`-shaped like Exchange's folder ids).
fn calendar_folder_id(key: &[u8; 16], number: u16) -> String {
    let mut b = Vec::with_capacity(46);
    b.extend_from_slice(&[0x00, 0x03, 0x24, 0x00, 0x30 | (key[0] & 0x0f)]);
    b.extend_from_slice(&key[1..]);
    b.extend_from_slice(&[0x00, 0x2e, 0x00, 0x00, 0x00, 0x00]);
    b.extend_from_slice(&key[..]);
    b.extend_from_slice(&[0x01, 0x00]);
    b.extend_from_slice(&number.to_be_bytes());
    b.extend_from_slice(&[0x00, 0x00]);
    URL_SAFE.encode(b)
}

/// The id of the occurrence of series `master_id` that originally starts at `start`.
pub(crate) fn occurrence_id(master_id: &str, start: i64) -> String {
    let mut b = URL_SAFE.decode(master_id).unwrap_or_default();
    b.extend_from_slice(&OCCURRENCE_MARKER);
    b.extend_from_slice(&start.to_be_bytes());
    URL_SAFE.encode(b)
}

fn split_occurrence_id(id: &str) -> Option<(String, i64)> {
    let b = URL_SAFE.decode(id).ok()?;
    if b.len() < 10 {
        return None;
    }
    let (head, tail) = b.split_at(b.len() - 10);
    if tail[..2] != OCCURRENCE_MARKER {
        return None;
    }
    let start = i64::from_be_bytes(tail[2..].try_into().ok()?);
    Some((URL_SAFE.encode(head), start))
}

/// The zone a series' local times are in.
pub(crate) fn series_zone(e: &Event) -> jiff::tz::TimeZone {
    e.recurrence
        .as_ref()
        .and_then(|r| tz::resolve(&r.time_zone))
        .or_else(|| tz::resolve(&e.start_tz))
        .unwrap_or(jiff::tz::TimeZone::UTC)
}

/// The start instant of the occurrence of series `e` on local date `date`.
pub(crate) fn occurrence_start(e: &Event, zone: &jiff::tz::TimeZone, date: Date) -> i64 {
    let time = tz::local(e.start, zone).time();
    tz::instant(date.to_datetime(time), zone)
}

fn is_occurrence_start(e: &Event, start: i64) -> bool {
    let Some(r) = &e.recurrence else { return false };
    let zone = series_zone(e);
    let date = tz::local(start, &zone).date();
    r.occurs_on(date) && occurrence_start(e, &zone, date) == start
}

/// The instances of event `e` (a single instance, or the occurrences of a series with its
/// exceptions applied; deleted occurrences left out) that overlap `[from, to)`.
pub(crate) fn instances(e: &Event, from: i64, to: i64) -> Vec<Instance<'_>> {
    let Some(r) = &e.recurrence else {
        return if e.start < to && e.end > from {
            vec![Instance {
                master: e,
                original_start: None,
                exception: None,
                start: e.start,
                end: e.end,
            }]
        } else {
            Vec::new()
        };
    };
    let zone = series_zone(e);
    let duration = e.duration();
    let until = tz::local(to, &zone).date();
    let until = recurrence::add_days(until, 1).unwrap_or(until);
    let mut out = Vec::new();
    for date in r.dates_until(until) {
        let original = occurrence_start(e, &zone, date);
        match e.exceptions.get(&original) {
            Some(None) => {}
            Some(Some(x)) => {
                if x.start < to && x.end > from {
                    out.push(Instance {
                        master: e,
                        original_start: Some(original),
                        exception: Some(x),
                        start: x.start,
                        end: x.end,
                    });
                }
            }
            None => {
                let end = original + duration;
                if original < to && end > from {
                    out.push(Instance {
                        master: e,
                        original_start: Some(original),
                        exception: None,
                        start: original,
                        end,
                    });
                }
            }
        }
    }
    out
}

/// The one instance of series `e` that originally started at `original`.
pub(crate) fn instance_at(e: &Event, original: i64) -> Option<Instance<'_>> {
    match e.exceptions.get(&original) {
        Some(None) => None,
        Some(Some(x)) => Some(Instance {
            master: e,
            original_start: Some(original),
            exception: Some(x),
            start: x.start,
            end: x.end,
        }),
        None => Some(Instance {
            master: e,
            original_start: Some(original),
            exception: None,
            start: original,
            end: original + e.duration(),
        }),
    }
}

/// Fills what Exchange derives for a contact: `displayName` from the name parts when
/// absent, `fileAs` ("Surname, Given"), and every default property as null or empty.
pub(crate) fn complete_contact(props: &mut Map<String, Value>) {
    let text = |props: &Map<String, Value>, k: &str| {
        props
            .get(k)
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    let given = text(props, "givenName");
    let surname = text(props, "surname");
    if text(props, "displayName").is_none() {
        let name = [given.clone(), surname.clone()]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(" ");
        let name = if name.is_empty() {
            props
                .get("emailAddresses")
                .and_then(|a| a.get(0))
                .and_then(|a| a.get("address"))
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        } else {
            name
        };
        props.insert("displayName".into(), Value::String(name));
    }
    if text(props, "fileAs").is_none() {
        let file_as = match (&surname, &given) {
            (Some(s), Some(g)) => format!("{s}, {g}"),
            (Some(s), None) => s.clone(),
            (None, Some(g)) => g.clone(),
            (None, None) => text(props, "displayName").unwrap_or_default(),
        };
        props.insert("fileAs".into(), Value::String(file_as));
    }
    if text(props, "initials").is_none() {
        let initials: String = [&given, &surname]
            .into_iter()
            .flatten()
            .filter_map(|s| s.chars().next())
            .map(|c| format!("{c}."))
            .collect();
        props.insert(
            "initials".into(),
            if initials.is_empty() {
                Value::Null
            } else {
                Value::String(initials)
            },
        );
    }
}

/// The Windows time zone of tenant user `u` (see the README, "Calendar and contacts"):
/// the demo user Pacific, her manager Eastern, her reports in turn GMT, W. Europe, India
/// and Pacific; everyone else by a hash of the object id (half Pacific).
pub(crate) fn time_zone_of(tenant: &Tenant, u: usize) -> &'static str {
    const REPORT_ZONES: [&str; 4] = [
        "GMT Standard Time",
        "W. Europe Standard Time",
        "India Standard Time",
        "Pacific Standard Time",
    ];
    const OTHERS: [&str; 10] = [
        "Pacific Standard Time",
        "Pacific Standard Time",
        "Pacific Standard Time",
        "Pacific Standard Time",
        "Pacific Standard Time",
        "Eastern Standard Time",
        "Eastern Standard Time",
        "GMT Standard Time",
        "W. Europe Standard Time",
        "India Standard Time",
    ];
    let demo = tenant.find_user(crate::DEMO_USER_UPN);
    if Some(u) == demo {
        return "Pacific Standard Time";
    }
    if let Some(d) = demo {
        if tenant.users[d].manager == Some(u) {
            return "Eastern Standard Time";
        }
        if let Some(pos) = tenant.users[d].direct_reports.iter().position(|r| *r == u) {
            return REPORT_ZONES[pos % REPORT_ZONES.len()];
        }
    }
    OTHERS[(ids::fnv(tenant.users[u].id.as_bytes()) % OTHERS.len() as u64) as usize]
}

/// 08:00–17:00 Monday to Friday in the user's zone; India 09:00–18:00.
pub(crate) fn working_hours(tenant: &Tenant, u: usize) -> WorkingHours {
    let time_zone = time_zone_of(tenant, u);
    let (start_hour, end_hour) = if time_zone == "India Standard Time" {
        (9, 18)
    } else {
        (8, 17)
    };
    WorkingHours {
        time_zone,
        start_hour,
        end_hour,
        days: vec![1, 2, 3, 4, 5],
    }
}

/// All users' calendar data.
pub(crate) struct CalendarStore {
    seed: u64,
    /// The tenant id (Teams join URLs carry it).
    pub tenant_id: String,
    /// The start of the UTC day the emulator started: seeded calendars are laid out
    /// around it.
    pub anchor: i64,
    boxes: HashMap<String, CalendarBox>,
}

impl CalendarStore {
    pub fn new(seed: u64, now: i64, tenant_id: &str) -> CalendarStore {
        CalendarStore {
            seed,
            tenant_id: tenant_id.to_string(),
            anchor: now - now.rem_euclid(86_400),
            boxes: HashMap::new(),
        }
    }

    /// The calendar data of tenant user `owner`, created and seeded on first access.
    pub fn get(&mut self, tenant: &Tenant, owner: usize) -> &mut CalendarBox {
        let key = tenant.users[owner].id.to_ascii_lowercase();
        let (seed, anchor) = (self.seed, self.anchor);
        let tenant_id = &self.tenant_id;
        self.boxes.entry(key).or_insert_with(|| {
            let mut b = CalendarBox::new(tenant, owner, seed);
            seed::seed(&mut b, tenant, seed, anchor, tenant_id);
            b
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn occurrence_ids_round_trip_and_differ_from_the_master() {
        let key = ids::mailbox_key("8a4f2c6e-1d3b-4f5a-9e7c-2b6d8f0a4c1e");
        let master = ids::message_id(&key, EVENT_ORDINAL_BASE + 3, 42);
        let occ = occurrence_id(&master, 1_714_550_400);
        assert_ne!(occ, master);
        assert_eq!(
            split_occurrence_id(&occ),
            Some((master.clone(), 1_714_550_400))
        );
        assert_eq!(split_occurrence_id(&master), None);
        assert_ne!(occurrence_id(&master, 1_714_550_401), occ);
    }

    #[test]
    fn the_demo_user_and_her_team_have_fixed_time_zones() {
        let tenant = Tenant::generate(60, 42);
        let demo = tenant.find_user(crate::DEMO_USER_UPN).expect("demo");
        assert_eq!(time_zone_of(&tenant, demo), "Pacific Standard Time");
        let manager = tenant.users[demo].manager.expect("manager");
        assert_eq!(time_zone_of(&tenant, manager), "Eastern Standard Time");
        let reports = &tenant.users[demo].direct_reports;
        assert!(reports.len() >= 2);
        assert_eq!(time_zone_of(&tenant, reports[0]), "GMT Standard Time");
        assert_eq!(time_zone_of(&tenant, reports[1]), "W. Europe Standard Time");
        assert_eq!(working_hours(&tenant, demo).start_hour, 8);
    }
}
