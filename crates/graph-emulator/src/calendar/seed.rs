//! Seeded calendars and contacts, generated when a user's calendar data is first touched.
//!
//! Meetings are described per organiser (`organised`), a pure function of the tenant seed,
//! the organiser and the anchor day; an attendee's calendar copies the meetings of the
//! organisers who can invite them (their manager, their reports and their peers, the only
//! people seeded meetings invite), so both sides agree without either being generated first.
//! Everything is laid out in the organiser's own time zone around the anchor week.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use jiff::civil::{Date, DateTime, Time};
use serde_json::{Map, Value, json};

use super::recurrence::{PatternType, RangeType, Recurrence, add_days};
use super::{
    Attendee, CalendarBox, Contact, Event, occurrence_start, series_zone, time_zone_of, tz,
};
use crate::DEMO_USER_UPN;
use crate::mail::{Body, Recipient, has_mailbox, ids};
use crate::tenant::{COMPANY_NAME, SplitMix64, Tenant};

/// Where a seeded event lives in its organiser's mailbox.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Cal {
    Default,
    Team,
    Project,
}

/// A seeded event as its organiser sees it.
#[derive(Clone, Debug)]
struct Spec {
    key: u32,
    subject: String,
    body: String,
    cal: Cal,
    start: DateTime,
    minutes: i64,
    /// All-day events span this many days (0: not all-day).
    all_day_days: i64,
    location: String,
    attendees: Vec<(usize, &'static str)>,
    show_as: &'static str,
    sensitivity: &'static str,
    importance: &'static str,
    categories: Vec<String>,
    online: bool,
    recurrence: Option<Recurrence>,
    /// Occurrence dates changed (`Some((minutes later, new location))`) or cancelled.
    exceptions: Vec<(Date, Option<(i64, &'static str)>)>,
}

const TOPICS: [(&str, &str); 12] = [
    (
        "Roadmap sync",
        "Let's line up the Q3 roadmap with the store launch dates.",
    ),
    (
        "Design review: inventory API",
        "Walkthrough of the reservation endpoints before we freeze the contract.",
    ),
    (
        "Hiring debrief",
        "Debrief for this week's interview loop. Bring your scorecards.",
    ),
    (
        "Vendor call: Cascade Freight",
        "Monthly call with Cascade Freight about dock schedules and late pallets.",
    ),
    (
        "Quarterly planning prep",
        "Prep for quarterly planning: priorities, capacity and risks.",
    ),
    (
        "Customer escalation review",
        "Review of open escalations and their root causes.",
    ),
    (
        "Sprint retrospective",
        "What went well, what didn't, what we'll change.",
    ),
    (
        "Architecture office hours",
        "Open slot for design questions. Drop in with a diagram.",
    ),
    (
        "Budget variance follow-up",
        "Follow-up on the Portland staffing variance.",
    ),
    (
        "Release readiness",
        "Go/no-go checklist for the next inventory service release.",
    ),
    (
        "Interview: Senior Software Engineer",
        "System design interview. The candidate packet is in the hiring folder.",
    ),
    (
        "Store operations check-in",
        "Check-in with store operations on returns and holiday hours.",
    ),
];

const ROOMS: [&str; 5] = [
    "Summit conference room",
    "Room 4B (Alder)",
    "Basecamp huddle room",
    "Spokane warehouse office",
    "Portland HQ - Cascade room",
];

const TEAMS_LOCATION: &str = "Microsoft Teams Meeting";

fn first_name(tenant: &Tenant, u: usize) -> String {
    let user = &tenant.users[u];
    user.given_name
        .clone()
        .unwrap_or_else(|| user.display_name.clone())
}

fn person(tenant: &Tenant, u: usize) -> Recipient {
    let user = &tenant.users[u];
    Recipient::new(
        user.display_name.clone(),
        user.mail
            .clone()
            .unwrap_or_else(|| user.user_principal_name.clone()),
    )
}

fn mailbox_users(tenant: &Tenant, list: &[usize], except: usize) -> Vec<usize> {
    list.iter()
        .copied()
        .filter(|&v| v != except && has_mailbox(tenant, v))
        .collect()
}

fn manager(tenant: &Tenant, u: usize) -> Option<usize> {
    tenant.users[u].manager.filter(|&m| has_mailbox(tenant, m))
}

fn reports(tenant: &Tenant, u: usize) -> Vec<usize> {
    mailbox_users(tenant, &tenant.users[u].direct_reports, u)
}

fn peers(tenant: &Tenant, u: usize) -> Vec<usize> {
    match tenant.users[u].manager {
        Some(m) => mailbox_users(tenant, &tenant.users[m].direct_reports, u),
        None => Vec::new(),
    }
}

/// The Monday of the anchor's week in `zone`.
fn anchor_monday(anchor: i64, zone: &jiff::tz::TimeZone) -> Date {
    let today = tz::local(anchor, zone).date();
    let back = today.weekday().to_monday_zero_offset() as i64;
    add_days(today, -back).unwrap_or(today)
}

fn at(date: Date, hour: i8, minute: i8) -> DateTime {
    date.to_datetime(Time::new(hour, minute, 0, 0).unwrap_or(Time::midnight()))
}

fn weekly(days: &[u8], interval: u32, start: Date, zone: &str) -> Recurrence {
    Recurrence {
        kind: PatternType::Weekly,
        interval,
        month: 0,
        day_of_month: 0,
        days_of_week: days.to_vec(),
        first_day_of_week: 0,
        index: 0,
        range: RangeType::NoEnd,
        start_date: start,
        end_date: None,
        count: 0,
        time_zone: zone.to_string(),
    }
}

fn meeting(
    key: u32,
    subject: impl Into<String>,
    body: impl Into<String>,
    start: DateTime,
    minutes: i64,
) -> Spec {
    Spec {
        key,
        subject: subject.into(),
        body: body.into(),
        cal: Cal::Default,
        start,
        minutes,
        all_day_days: 0,
        location: String::new(),
        attendees: Vec::new(),
        show_as: "busy",
        sensitivity: "normal",
        importance: "normal",
        categories: Vec::new(),
        online: false,
        recurrence: None,
        exceptions: Vec::new(),
    }
}

fn online(mut s: Spec) -> Spec {
    s.online = true;
    s.location = TEAMS_LOCATION.to_string();
    s
}

/// Every seeded event user `u` organises.
fn organised(tenant: &Tenant, seed: u64, anchor: i64, u: usize) -> Vec<Spec> {
    let user = &tenant.users[u];
    if !has_mailbox(tenant, u)
        || user
            .user_principal_name
            .eq_ignore_ascii_case(crate::SHARED_MAILBOX_UPN)
    {
        return Vec::new();
    }
    let zone_name = time_zone_of(tenant, u);
    let zone = tz::resolve(zone_name).unwrap_or(jiff::tz::TimeZone::UTC);
    let monday = anchor_monday(anchor, &zone);
    let day = |offset: i64| add_days(monday, offset).unwrap_or(monday);
    let mut rng = SplitMix64::new(seed ^ ids::fnv(user.id.as_bytes()) ^ 0x6576_656e_7473_0001);
    let mut below = move |n: u64| rng.next_u64() % n.max(1);
    let me = first_name(tenant, u);
    let my_reports = reports(tenant, u);
    let mut pool: Vec<usize> = manager(tenant, u).into_iter().collect();
    pool.extend(peers(tenant, u));
    pool.extend(my_reports.iter().copied());
    let mut specs = Vec::new();
    let is_demo = user.user_principal_name.eq_ignore_ascii_case(DEMO_USER_UPN);

    if is_demo {
        let mgr = manager(tenant, u);
        let mut standup = online(meeting(
            1,
            "Daily stand-up",
            "Fifteen minutes: yesterday, today, blockers.",
            at(day(-56), 9, 30),
            15,
        ));
        standup.recurrence = Some(weekly(&[1, 2, 3, 4, 5], 1, day(-56), zone_name));
        standup.attendees = my_reports.iter().map(|&r| (r, "required")).collect();
        standup.exceptions = vec![(day(2), Some((30, "Room 4B (Alder)"))), (day(4), None)];
        specs.push(standup);

        let month_start = |back: i64| {
            let m = monday.year() as i64 * 12 + monday.month() as i64 - 1 - back;
            Date::new((m / 12) as i16, (m % 12 + 1) as i8, 1).unwrap_or(monday)
        };
        let mut review = meeting(
            2,
            "Monthly engineering review",
            "Delivery, quality and hiring metrics for the month.",
            at(month_start(3), 14, 0),
            60,
        );
        review.location = ROOMS[0].to_string();
        review.recurrence = Some(Recurrence {
            kind: PatternType::RelativeMonthly,
            interval: 1,
            month: 0,
            day_of_month: 0,
            days_of_week: vec![4],
            first_day_of_week: 0,
            index: 0,
            range: RangeType::NoEnd,
            start_date: month_start(3),
            end_date: None,
            count: 0,
            time_zone: zone_name.to_string(),
        });
        review.attendees = my_reports.iter().map(|&r| (r, "required")).collect();
        review.attendees.extend(mgr.map(|m| (m, "optional")));
        specs.push(review);

        let mut budget = online(meeting(
            3,
            "Budget check-in",
            "Monthly look at the engineering budget.",
            at(month_start(2), 11, 0),
            30,
        ));
        budget.recurrence = Some(Recurrence {
            kind: PatternType::AbsoluteMonthly,
            interval: 1,
            month: 0,
            day_of_month: 15,
            days_of_week: Vec::new(),
            first_day_of_week: 0,
            index: 0,
            range: RangeType::Numbered,
            start_date: month_start(2),
            end_date: None,
            count: 12,
            time_zone: zone_name.to_string(),
        });
        budget.attendees = mgr.map(|m| (m, "required")).into_iter().collect();
        specs.push(budget);

        let jan = |dy: i16| Date::new(monday.year() + dy, 1, 1).unwrap_or(monday);
        let mut kickoff = meeting(
            4,
            "Annual planning kickoff",
            "Kickoff of the annual planning cycle.",
            at(jan(-1), 10, 0),
            120,
        );
        kickoff.location = ROOMS[0].to_string();
        kickoff.recurrence = Some(Recurrence {
            kind: PatternType::RelativeYearly,
            interval: 1,
            month: monday.month() as u8,
            day_of_month: 0,
            days_of_week: vec![2],
            first_day_of_week: 0,
            index: 1,
            range: RangeType::EndDate,
            start_date: jan(-1),
            end_date: Date::new(monday.year() + 2, 12, 31).ok(),
            count: 0,
            time_zone: zone_name.to_string(),
        });
        kickoff.attendees = my_reports.iter().map(|&r| (r, "required")).collect();
        kickoff.attendees.extend(mgr.map(|m| (m, "required")));
        specs.push(kickoff);

        let mut offsite = meeting(
            5,
            "Team offsite in Bend",
            "Two days at the lodge: planning on day one, the trail on day two.",
            at(day(9), 0, 0),
            0,
        );
        offsite.all_day_days = 2;
        offsite.show_as = "workingElsewhere";
        offsite.location = "Bend, OR".to_string();
        offsite.attendees = my_reports.iter().map(|&r| (r, "required")).collect();
        specs.push(offsite);

        let mut oof = meeting(6, "Out of office - dentist", "", at(day(11), 13, 0), 240);
        oof.show_as = "oof";
        oof.sensitivity = "private";
        specs.push(oof);

        let mut lunch = meeting(
            7,
            "Team lunch",
            "Tacos on the team budget.",
            at(day(10), 12, 0),
            60,
        );
        lunch.cal = Cal::Team;
        lunch.location = "Cascade Cantina".to_string();
        specs.push(lunch);

        let mut freeze = meeting(
            8,
            "Release freeze",
            "No deployments this week.",
            at(day(14), 0, 0),
            0,
        );
        freeze.cal = Cal::Team;
        freeze.all_day_days = 5;
        freeze.show_as = "free";
        specs.push(freeze);

        let mut shoot = meeting(
            9,
            "Trailhead launch: photo shoot",
            "The photo shoot for the Trailhead launch on Mount Hood.",
            at(day(16), 8, 0),
            300,
        );
        shoot.cal = Cal::Project;
        shoot.location = "Mount Hood, Timberline Lodge".to_string();
        specs.push(shoot);
    }

    if !my_reports.is_empty() {
        let mut staff = online(meeting(
            10,
            format!("{me}'s staff meeting"),
            "Weekly staff meeting: announcements, priorities, round table.",
            at(day(-84), 11, 0),
            30,
        ));
        staff.recurrence = Some(weekly(&[1], 1, day(-84), zone_name));
        staff.attendees = my_reports.iter().map(|&r| (r, "required")).collect();
        specs.push(staff);
    }
    for (i, &r) in my_reports.iter().take(8).enumerate() {
        let weekday = [2u8, 3, 4, 5][i % 4];
        let first = add_days(day(-70), weekday as i64 - 1).unwrap_or(monday);
        let mut one = online(meeting(
            100 + i as u32,
            format!("1:1 {me} / {}", first_name(tenant, r)),
            "Weekly 1:1.",
            at(first, 15, if i >= 4 { 30 } else { 0 }),
            30,
        ));
        one.recurrence = Some(weekly(&[weekday], 1, first, zone_name));
        one.attendees = vec![(r, "required")];
        specs.push(one);
    }
    for w in -2i64..=2 {
        for j in 0..3 {
            let (subject, body) = TOPICS[below(TOPICS.len() as u64) as usize];
            let date = day(w * 7 + below(5) as i64);
            let hour = 9 + below(8) as i8;
            let minute = if below(2) == 0 { 0 } else { 30 };
            let minutes = [30, 60, 60, 90][below(4) as usize];
            let mut s = meeting(
                1000 + ((w + 2) * 10 + j) as u32,
                subject,
                body,
                at(date, hour, minute),
                minutes,
            );
            if !pool.is_empty() {
                let n = 1 + below(pool.len().min(3) as u64) as usize;
                for _ in 0..n {
                    let who = pool[below(pool.len() as u64) as usize];
                    if !s.attendees.iter().any(|(a, _)| *a == who) {
                        let kind = if below(5) == 0 {
                            "optional"
                        } else {
                            "required"
                        };
                        s.attendees.push((who, kind));
                    }
                }
            }
            if below(10) == 0 {
                s.show_as = "tentative";
            }
            if below(2) == 0 {
                s = online(s);
            } else {
                s.location = ROOMS[below(ROOMS.len() as u64) as usize].to_string();
            }
            if below(5) == 0 {
                s.categories = vec!["Blue category".to_string()];
            }
            if below(10) == 0 {
                s.importance = "high";
            }
            specs.push(s);
        }
        let mut focus = meeting(
            2000 + (w + 2) as u32,
            "Focus time",
            "",
            at(day(w * 7 + below(5) as i64), 13, 0),
            120,
        );
        focus.sensitivity = "private";
        specs.push(focus);
    }
    if !is_demo && ids::fnv(user.id.as_bytes()).is_multiple_of(4) {
        let mut away = meeting(3000, "Out of office", "", at(day(11), 0, 0), 0);
        away.all_day_days = 1;
        away.show_as = "oof";
        specs.push(away);
    }
    specs
}

/// `040000008200E00074C5B7101A82E008…`: an Exchange GlobalObjectId as hex.
fn ical_uid(organiser_id: &str, key: u32) -> String {
    let h = ids::fnv(format!("{organiser_id}/{key}").as_bytes());
    let g1 = ids::fnv(format!("{h:x}/1").as_bytes());
    let g2 = ids::fnv(format!("{h:x}/2").as_bytes());
    format!(
        "040000008200E00074C5B7101A82E00800000000{h:016X}000000000000000010000000{g1:016X}{g2:016X}"
    )
}

/// A Teams join URL (the shape Teams uses: `meetup-join/19:meeting_…@thread.v2/0?context=…`).
pub(crate) fn join_url(tenant_id: &str, organiser_id: &str, seed: &str) -> String {
    let h = ids::fnv(seed.as_bytes());
    let guid = uuid::Builder::from_random_bytes(
        [h.to_le_bytes(), h.rotate_left(17).to_le_bytes()]
            .concat()
            .try_into()
            .unwrap_or([0u8; 16]),
    )
    .into_uuid();
    let token = STANDARD
        .encode(guid.to_string())
        .trim_end_matches('=')
        .to_string();
    format!(
        "https://teams.microsoft.com/l/meetup-join/19%3ameeting_{token}%40thread.v2/0?context=%7b%22Tid%22%3a%22{tenant_id}%22%2c%22Oid%22%3a%22{organiser_id}%22%7d"
    )
}

/// How attendee `who` answered meeting `ical`: seeded, the same on both sides.
fn seeded_response(ical: &str, who: &str) -> &'static str {
    match ids::fnv(format!("{ical}/{}", who.to_ascii_lowercase()).as_bytes()) % 10 {
        0..=4 => "accepted",
        5 | 6 => "tentativelyAccepted",
        7 => "declined",
        _ => "notResponded",
    }
}

/// What an attendee's copy shows as, given the response.
pub(crate) fn attendee_show_as(response: &str, organiser_show_as: &'static str) -> &'static str {
    match response {
        "accepted" => organiser_show_as,
        "declined" => "free",
        _ => "tentative",
    }
}

struct Ctx<'a> {
    tenant: &'a Tenant,
    tenant_id: &'a str,
    anchor: i64,
}

/// The event of `spec` (organised by `organiser`) as it appears in `viewer`'s calendar.
fn materialise(
    cx: &Ctx<'_>,
    organiser: usize,
    spec: &Spec,
    viewer: usize,
    calendar: &str,
) -> Event {
    let tenant = cx.tenant;
    let org_user = &tenant.users[organiser];
    let zone_name = time_zone_of(tenant, organiser);
    let zone = tz::resolve(zone_name).unwrap_or(jiff::tz::TimeZone::UTC);
    let start = tz::instant(spec.start, &zone);
    let end = if spec.all_day_days > 0 {
        let last = add_days(spec.start.date(), spec.all_day_days).unwrap_or(spec.start.date());
        tz::instant(at(last, 0, 0), &zone)
    } else {
        start + spec.minutes * 60
    };
    let ical = ical_uid(&org_user.id, spec.key);
    let created = start.min(cx.anchor) - 14 * 86_400 - (spec.key as i64 % 48) * 3_600;
    let attendees: Vec<Attendee> = spec
        .attendees
        .iter()
        .map(|&(a, kind)| {
            let response = seeded_response(&ical, &tenant.users[a].id);
            Attendee {
                kind,
                who: person(tenant, a),
                response,
                time: (response != "notResponded")
                    .then_some(created + 3_600 * (1 + (a as i64 % 20))),
            }
        })
        .collect();
    let is_organizer = viewer == organiser;
    let (response, response_time, show_as) = if is_organizer {
        ("organizer", None, spec.show_as)
    } else {
        let a = attendees
            .iter()
            .find(|a| a.who.same_address(&person(tenant, viewer).address));
        let response = a.map_or("notResponded", |a| a.response);
        (
            response,
            a.and_then(|a| a.time),
            attendee_show_as(response, spec.show_as),
        )
    };
    let mut e = Event {
        id: String::new(),
        ordinal: 0,
        version: 1,
        calendar: calendar.to_string(),
        created,
        modified: created + 60,
        ical_uid: ical.clone(),
        subject: spec.subject.clone(),
        body: Body {
            html: true,
            content: format!(
                "<html><head></head><body><p>{}</p></body></html>",
                crate::mail::text::escape_html(&spec.body)
            ),
        },
        start,
        end,
        start_tz: zone_name.to_string(),
        end_tz: zone_name.to_string(),
        is_all_day: spec.all_day_days > 0,
        location: spec.location.clone(),
        categories: spec.categories.clone(),
        importance: spec.importance,
        sensitivity: spec.sensitivity,
        show_as,
        is_cancelled: false,
        is_organizer,
        response_requested: true,
        allow_new_time_proposals: true,
        hide_attendees: false,
        is_reminder_on: spec.all_day_days == 0,
        reminder_minutes: if spec.all_day_days > 0 { 1080 } else { 15 },
        is_online_meeting: spec.online,
        online_meeting_provider: if spec.online {
            "teamsForBusiness"
        } else {
            "unknown"
        },
        join_url: spec
            .online
            .then(|| join_url(cx.tenant_id, &org_user.id, &ical)),
        response,
        response_time,
        organizer: person(tenant, organiser),
        attendees,
        recurrence: spec.recurrence.clone(),
        transaction_id: None,
        exceptions: Default::default(),
    };
    if e.recurrence.is_some() {
        let zone = series_zone(&e);
        for (date, change) in &spec.exceptions {
            let original = occurrence_start(&e, &zone, *date);
            let value = change.map(|(later, location)| {
                let mut x = e.clone();
                x.recurrence = None;
                x.start = original + later * 60;
                x.end = x.start + e.duration();
                x.location = location.to_string();
                x.modified = cx.anchor - 86_400;
                Box::new(x)
            });
            e.exceptions.insert(original, value);
        }
    }
    e
}

/// Seeds `b`: its calendars, its own meetings, the copies of meetings it is invited to,
/// and its contacts.
pub(super) fn seed(b: &mut CalendarBox, tenant: &Tenant, seed: u64, anchor: i64, tenant_id: &str) {
    let owner = b.owner;
    let cx = Ctx {
        tenant,
        tenant_id,
        anchor,
    };
    let is_demo = tenant.users[owner]
        .user_principal_name
        .eq_ignore_ascii_case(DEMO_USER_UPN);
    let default = b.default_calendar();
    let (team, project) = if is_demo {
        (
            b.add_calendar("Team calendar", "lightBlue", "#a6d1f5", false),
            b.add_calendar("Project Trailhead", "lightGreen", "#87d28e", false),
        )
    } else {
        (default.clone(), default.clone())
    };
    for spec in organised(tenant, seed, anchor, owner) {
        let cal = match spec.cal {
            Cal::Default => &default,
            Cal::Team => &team,
            Cal::Project => &project,
        };
        let e = materialise(&cx, owner, &spec, owner, cal);
        b.insert_event(e);
    }
    let mut organisers: Vec<usize> = manager(tenant, owner).into_iter().collect();
    for o in reports(tenant, owner)
        .into_iter()
        .chain(peers(tenant, owner))
    {
        if !organisers.contains(&o) {
            organisers.push(o);
        }
    }
    for o in organisers {
        for spec in organised(tenant, seed, anchor, o) {
            if spec.attendees.iter().any(|(a, _)| *a == owner) {
                let e = materialise(&cx, o, &spec, owner, &default);
                b.insert_event(e);
            }
        }
    }
    seed_contacts(b, tenant, seed, anchor);
}

// --- contacts ---------------------------------------------------------------------------

/// An external contact: (given, surname, address, company, job title, phone, city, state).
type External = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
);

/// External contacts.
const PARTNERS: [External; 12] = [
    (
        "Priya",
        "Raman",
        "priya.raman@contoso-partners.example",
        "Contoso Partners",
        "Account Director",
        "+1 206 555 0141",
        "Seattle",
        "WA",
    ),
    (
        "Marcus",
        "Bell",
        "marcus.bell@contoso-partners.example",
        "Contoso Partners",
        "Solutions Architect",
        "+1 206 555 0142",
        "Seattle",
        "WA",
    ),
    (
        "Elena",
        "Voss",
        "elena.voss@contoso-partners.example",
        "Contoso Partners",
        "Project Manager",
        "+1 206 555 0143",
        "Seattle",
        "WA",
    ),
    (
        "Tomasz",
        "Nowak",
        "tomasz.nowak@contoso-partners.example",
        "Contoso Partners",
        "Integration Engineer",
        "+1 206 555 0144",
        "Bellevue",
        "WA",
    ),
    (
        "Aiko",
        "Tanaka",
        "aiko.tanaka@contoso-partners.example",
        "Contoso Partners",
        "Support Lead",
        "+1 206 555 0145",
        "Bellevue",
        "WA",
    ),
    (
        "Grace",
        "Okonjo",
        "grace.okonjo@fabrikam.example",
        "Fabrikam, Inc.",
        "Purchasing Manager",
        "+1 503 555 0171",
        "Portland",
        "OR",
    ),
    (
        "Henrik",
        "Lund",
        "henrik.lund@fabrikam.example",
        "Fabrikam, Inc.",
        "Logistics Coordinator",
        "+1 503 555 0172",
        "Portland",
        "OR",
    ),
    (
        "Sofia",
        "Marquez",
        "sofia.marquez@fabrikam.example",
        "Fabrikam, Inc.",
        "VP Retail Partnerships",
        "+1 503 555 0173",
        "Portland",
        "OR",
    ),
    (
        "Dev",
        "Patel",
        "dev.patel@fabrikam.example",
        "Fabrikam, Inc.",
        "Category Buyer",
        "+1 503 555 0174",
        "Beaverton",
        "OR",
    ),
    (
        "Noor",
        "Haddad",
        "noor.haddad@fabrikam.example",
        "Fabrikam, Inc.",
        "Finance Analyst",
        "+1 503 555 0175",
        "Beaverton",
        "OR",
    ),
    (
        "Liam",
        "O'Connell",
        "liam.oconnell@contoso-partners.example",
        "Contoso Partners",
        "Sales Engineer",
        "+1 206 555 0146",
        "Tacoma",
        "WA",
    ),
    (
        "Yara",
        "Santos",
        "yara.santos@fabrikam.example",
        "Fabrikam, Inc.",
        "Merchandising Lead",
        "+1 503 555 0176",
        "Salem",
        "OR",
    ),
];

/// Suppliers, in the demo user's "Suppliers" folder.
const SUPPLIERS: [External; 4] = [
    (
        "Olivia",
        "Grant",
        "olivia.grant@northwind-traders.example",
        "Northwind Traders",
        "Account Manager",
        "+1 360 555 0191",
        "Vancouver",
        "WA",
    ),
    (
        "Rafael",
        "Costa",
        "rafael.costa@northwind-traders.example",
        "Northwind Traders",
        "Shipping Supervisor",
        "+1 360 555 0192",
        "Vancouver",
        "WA",
    ),
    (
        "Mei",
        "Lin",
        "mei.lin@wideworldimporters.example",
        "Wide World Importers",
        "Sales Representative",
        "+1 415 555 0193",
        "San Francisco",
        "CA",
    ),
    (
        "Jonas",
        "Berg",
        "jonas.berg@wideworldimporters.example",
        "Wide World Importers",
        "Customer Success Manager",
        "+1 415 555 0194",
        "Oakland",
        "CA",
    ),
];

/// Colleagues in the demo user's contacts, at most.
const DEMO_COLLEAGUE_CONTACTS: usize = 15;
/// Partners in the demo user's contacts.
const DEMO_PARTNER_CONTACTS: usize = 10;

fn address(street: &str, city: &str, state: &str, postal: &str) -> Value {
    json!({"street": street, "city": city, "state": state, "countryOrRegion": "United States", "postalCode": postal})
}

fn external_props(p: &External, n: usize) -> Map<String, Value> {
    let (given, surname, mail, company, title, phone, city, state) = *p;
    let mut m = Map::new();
    m.insert("givenName".into(), json!(given));
    m.insert("surname".into(), json!(surname));
    m.insert("displayName".into(), json!(format!("{given} {surname}")));
    m.insert(
        "emailAddresses".into(),
        json!([{"name": format!("{given} {surname}"), "address": mail}]),
    );
    m.insert("companyName".into(), json!(company));
    m.insert("jobTitle".into(), json!(title));
    m.insert("businessPhones".into(), json!([phone]));
    if n.is_multiple_of(3) {
        m.insert(
            "mobilePhone".into(),
            json!(phone.replace("555 01", "555 02")),
        );
    }
    m.insert(
        "businessAddress".into(),
        address(
            &format!("{} Market Street", 100 + n * 7),
            city,
            state,
            &format!("9{:04}", 8000 + n),
        ),
    );
    m
}

fn colleague_props(tenant: &Tenant, u: usize) -> Map<String, Value> {
    let user = &tenant.users[u];
    let mut m = Map::new();
    m.insert("givenName".into(), json!(user.given_name));
    m.insert("surname".into(), json!(user.surname));
    m.insert("displayName".into(), json!(user.display_name));
    m.insert(
        "emailAddresses".into(),
        json!([{"name": user.display_name, "address": person(tenant, u).address}]),
    );
    m.insert("companyName".into(), json!(COMPANY_NAME));
    m.insert(
        "imAddresses".into(),
        json!([format!("sip:{}", person(tenant, u).address)]),
    );
    m.insert("jobTitle".into(), json!(user.job_title));
    m.insert("department".into(), json!(user.department));
    m.insert("officeLocation".into(), json!(user.office_location));
    m.insert("businessPhones".into(), json!(user.business_phones));
    m.insert("mobilePhone".into(), json!(user.mobile_phone));
    m.insert(
        "businessAddress".into(),
        json!({
            "street": user.street_address, "city": user.city, "state": user.state,
            "countryOrRegion": user.country, "postalCode": user.postal_code,
        }),
    );
    m
}

fn seed_contacts(b: &mut CalendarBox, tenant: &Tenant, seed: u64, anchor: i64) {
    let owner = b.owner;
    let user = &tenant.users[owner];
    if user
        .user_principal_name
        .eq_ignore_ascii_case(crate::SHARED_MAILBOX_UPN)
    {
        return;
    }
    let mut rng = SplitMix64::new(seed ^ ids::fnv(user.id.as_bytes()) ^ 0x636f_6e74_6163_7473);
    let is_demo = user.user_principal_name.eq_ignore_ascii_case(DEMO_USER_UPN);
    // Colleagues: manager, reports, peers first, then everyone else in a seeded order.
    let mut colleagues: Vec<usize> = manager(tenant, owner).into_iter().collect();
    colleagues.extend(reports(tenant, owner));
    colleagues.extend(peers(tenant, owner));
    let mut others: Vec<usize> = (0..tenant.users.len())
        .filter(|&v| v != owner && has_mailbox(tenant, v) && !colleagues.contains(&v))
        .filter(|&v| {
            !tenant.users[v]
                .user_principal_name
                .eq_ignore_ascii_case(crate::SHARED_MAILBOX_UPN)
        })
        .collect();
    for i in (1..others.len()).rev() {
        let j = (rng.next_u64() % (i as u64 + 1)) as usize;
        others.swap(i, j);
    }
    colleagues.extend(others);
    let (n_colleagues, n_partners) = if is_demo {
        (DEMO_COLLEAGUE_CONTACTS, DEMO_PARTNER_CONTACTS)
    } else {
        let total = 5 + (rng.next_u64() % 26) as usize;
        let partners = (rng.next_u64() % (total as u64 / 3 + 1)) as usize;
        (total - partners, partners)
    };
    let mut props: Vec<Map<String, Value>> = colleagues
        .iter()
        .take(n_colleagues)
        .map(|&c| colleague_props(tenant, c))
        .collect();
    let offset = (rng.next_u64() % PARTNERS.len() as u64) as usize;
    for k in 0..n_partners {
        let n = if is_demo {
            k
        } else {
            (offset + k) % PARTNERS.len()
        };
        props.push(external_props(&PARTNERS[n % PARTNERS.len()], n));
    }
    // Interleave deterministically so creation order is not alphabetical.
    for i in (1..props.len()).rev() {
        let j = (rng.next_u64() % (i as u64 + 1)) as usize;
        props.swap(i, j);
    }
    let root = b.contacts_root.clone();
    for (n, mut p) in props.into_iter().enumerate() {
        if n % 5 == 1 {
            p.insert("categories".into(), json!(["Blue category"]));
        }
        add_contact(b, &root, p, anchor - 90 * 86_400 + n as i64 * 86_400);
    }
    if is_demo {
        let suppliers = b.add_contact_folder("Suppliers");
        for (n, s) in SUPPLIERS.iter().enumerate() {
            let p = external_props(s, n + 20);
            add_contact(b, &suppliers, p, anchor - 40 * 86_400 + n as i64 * 86_400);
        }
    }
}

fn add_contact(b: &mut CalendarBox, folder: &str, mut props: Map<String, Value>, created: i64) {
    super::complete_contact(&mut props);
    b.insert_contact(Contact {
        id: String::new(),
        ordinal: 0,
        version: 1,
        folder: folder.to_string(),
        created,
        modified: created,
        props,
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attendee_copies_match_the_organisers_meetings() {
        let tenant = Tenant::generate(60, 42);
        let demo = tenant.find_user(DEMO_USER_UPN).expect("demo");
        let report = tenant.users[demo].direct_reports[0];
        let mut store = super::super::CalendarStore::new(42, 1_714_550_400, "t");
        let standup = {
            let b = store.get(&tenant, demo);
            let e = b
                .events
                .iter()
                .find(|e| e.subject == "Daily stand-up")
                .expect("stand-up");
            assert_eq!(e.exceptions.len(), 2);
            e.ical_uid.clone()
        };
        let b = store.get(&tenant, report);
        let copy = b
            .events
            .iter()
            .find(|e| e.ical_uid == standup)
            .expect("copy");
        assert!(!copy.is_organizer);
        assert_eq!(copy.exceptions.len(), 2);
    }
}
