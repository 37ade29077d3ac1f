//! Calendar, contact and mailbox-settings paths below `/users/{id}` and `/me`.

use axum::http::Method;

use super::super::auth::{self, Permission};
use super::super::errors::GraphError;

/// Which calendar a path names: `calendar` (the default) or `calendars/{id}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum CalRef {
    Default,
    Id(String),
}

impl CalRef {
    fn template(&self) -> &'static str {
        match self {
            CalRef::Default => "/calendar",
            CalRef::Id(_) => "/calendars/{id}",
        }
    }
}

/// `POST …/events/{id}/{action}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum EventAction {
    Accept,
    TentativelyAccept,
    Decline,
    Cancel,
}

impl EventAction {
    const ALL: [EventAction; 4] = [
        EventAction::Accept,
        EventAction::TentativelyAccept,
        EventAction::Decline,
        EventAction::Cancel,
    ];

    pub fn name(self) -> &'static str {
        match self {
            EventAction::Accept => "accept",
            EventAction::TentativelyAccept => "tentativelyAccept",
            EventAction::Decline => "decline",
            EventAction::Cancel => "cancel",
        }
    }

    fn parse(segment: &str) -> Option<EventAction> {
        let name = segment.strip_prefix("microsoft.graph.").unwrap_or(segment);
        EventAction::ALL
            .into_iter()
            .find(|a| a.name().eq_ignore_ascii_case(name))
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum CalendarRoute {
    Calendars,
    Calendar(CalRef),
    /// `events`, `calendar/events`, `calendars/{id}/events`.
    Events(Option<CalRef>),
    Event {
        cal: Option<CalRef>,
        id: String,
        action: Option<EventAction>,
    },
    CalendarView(Option<CalRef>),
    GetSchedule,
    /// `contacts` or `contactFolders/{id}/contacts`.
    Contacts(Option<String>),
    Contact {
        folder: Option<String>,
        id: String,
    },
    ContactFolders,
    ContactFolder(String),
    MailboxSettings,
}

fn is(segment: &str, name: &str) -> bool {
    segment.eq_ignore_ascii_case(name)
}

/// Whether a segment after `/users/{id}` or `/me` starts a calendar or contact route.
pub(crate) fn is_calendar_segment(segment: &str) -> bool {
    [
        "events",
        "calendar",
        "calendars",
        "calendarView",
        "contacts",
        "contactFolders",
        "mailboxSettings",
    ]
    .iter()
    .any(|s| is(segment, s))
}

fn events(cal: Option<CalRef>, rest: &[&str]) -> Result<CalendarRoute, GraphError> {
    match rest {
        [] => Ok(CalendarRoute::Events(cal)),
        [id] => Ok(CalendarRoute::Event {
            cal,
            id: (*id).to_string(),
            action: None,
        }),
        [id, action] => match EventAction::parse(action) {
            Some(a) => Ok(CalendarRoute::Event {
                cal,
                id: (*id).to_string(),
                action: Some(a),
            }),
            None => Err(GraphError::segment_not_found(action)),
        },
        [_, _, other, ..] => Err(GraphError::segment_not_found(other)),
    }
}

fn in_calendar(cal: CalRef, rest: &[&str]) -> Result<CalendarRoute, GraphError> {
    match rest {
        [] => Ok(CalendarRoute::Calendar(cal)),
        [e, tail @ ..] if is(e, "events") => events(Some(cal), tail),
        [v] if is(v, "calendarView") => Ok(CalendarRoute::CalendarView(Some(cal))),
        [g] if cal == CalRef::Default
            && (is(g, "getSchedule") || is(g, "microsoft.graph.getSchedule")) =>
        {
            Ok(CalendarRoute::GetSchedule)
        }
        [other, ..] => Err(GraphError::segment_not_found(other)),
    }
}

fn contacts(folder: Option<String>, rest: &[&str]) -> Result<CalendarRoute, GraphError> {
    match rest {
        [] => Ok(CalendarRoute::Contacts(folder)),
        [id] => Ok(CalendarRoute::Contact {
            folder,
            id: (*id).to_string(),
        }),
        [_, other, ..] => Err(GraphError::segment_not_found(other)),
    }
}

/// Resolves `rest` = the segments after `/users/{id}` or `/me`.
pub(crate) fn resolve(rest: &[&str]) -> Result<CalendarRoute, GraphError> {
    match rest {
        [c] if is(c, "calendars") => Ok(CalendarRoute::Calendars),
        [c, id, tail @ ..] if is(c, "calendars") => {
            in_calendar(CalRef::Id((*id).to_string()), tail)
        }
        [c, tail @ ..] if is(c, "calendar") => in_calendar(CalRef::Default, tail),
        [e, tail @ ..] if is(e, "events") => events(None, tail),
        [v] if is(v, "calendarView") => Ok(CalendarRoute::CalendarView(None)),
        [c, tail @ ..] if is(c, "contacts") => contacts(None, tail),
        [f] if is(f, "contactFolders") => Ok(CalendarRoute::ContactFolders),
        [f, id] if is(f, "contactFolders") => Ok(CalendarRoute::ContactFolder((*id).to_string())),
        [f, id, c, tail @ ..] if is(f, "contactFolders") && is(c, "contacts") => {
            contacts(Some((*id).to_string()), tail)
        }
        [m] if is(m, "mailboxSettings") => Ok(CalendarRoute::MailboxSettings),
        [_, other, ..] => Err(GraphError::segment_not_found(other)),
        [other] => Err(GraphError::segment_not_found(other)),
        [] => Err(GraphError::segment_not_found("")),
    }
}

/// How a route treats the mailbox, for permissions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Access {
    CalendarRead,
    CalendarWrite,
    Schedule,
    ContactsRead,
    ContactsWrite,
    Settings,
}

impl CalendarRoute {
    /// The template after `/users/{id}` or `/me`, e.g. `/calendars/{id}/calendarView`.
    pub fn template(&self) -> String {
        let cal = |c: &Option<CalRef>| c.as_ref().map_or("", CalRef::template);
        let folder = |f: &Option<String>| {
            if f.is_some() {
                "/contactFolders/{id}"
            } else {
                ""
            }
        };
        match self {
            CalendarRoute::Calendars => "/calendars".into(),
            CalendarRoute::Calendar(c) => c.template().into(),
            CalendarRoute::Events(c) => format!("{}/events", cal(c)),
            CalendarRoute::Event { cal: c, action, .. } => format!(
                "{}/events/{{id}}{}",
                cal(c),
                action.map(|a| format!("/{}", a.name())).unwrap_or_default()
            ),
            CalendarRoute::CalendarView(c) => format!("{}/calendarView", cal(c)),
            CalendarRoute::GetSchedule => "/calendar/getSchedule".into(),
            CalendarRoute::Contacts(f) => format!("{}/contacts", folder(f)),
            CalendarRoute::Contact { folder: f, .. } => format!("{}/contacts/{{id}}", folder(f)),
            CalendarRoute::ContactFolders => "/contactFolders".into(),
            CalendarRoute::ContactFolder(_) => "/contactFolders/{id}".into(),
            CalendarRoute::MailboxSettings => "/mailboxSettings".into(),
        }
    }

    pub fn check_method(&self, method: &Method) -> Result<(), GraphError> {
        let (get, post, patch, delete) = (
            method == Method::GET,
            method == Method::POST,
            method == Method::PATCH,
            method == Method::DELETE,
        );
        let allowed = match self {
            CalendarRoute::Calendars
            | CalendarRoute::Calendar(_)
            | CalendarRoute::CalendarView(_)
            | CalendarRoute::ContactFolders
            | CalendarRoute::ContactFolder(_)
            | CalendarRoute::MailboxSettings => get,
            CalendarRoute::Events(_) | CalendarRoute::Contacts(_) => get || post,
            CalendarRoute::Event { action: None, .. } | CalendarRoute::Contact { .. } => {
                get || patch || delete
            }
            CalendarRoute::Event {
                action: Some(_), ..
            }
            | CalendarRoute::GetSchedule => post,
        };
        if allowed {
            Ok(())
        } else {
            Err(GraphError::method_not_allowed())
        }
    }

    fn access(&self, method: &Method) -> Access {
        let read = method == Method::GET;
        match self {
            CalendarRoute::GetSchedule => Access::Schedule,
            CalendarRoute::MailboxSettings => Access::Settings,
            CalendarRoute::Contacts(_)
            | CalendarRoute::Contact { .. }
            | CalendarRoute::ContactFolders
            | CalendarRoute::ContactFolder(_) => {
                if read {
                    Access::ContactsRead
                } else {
                    Access::ContactsWrite
                }
            }
            _ if read => Access::CalendarRead,
            _ => Access::CalendarWrite,
        }
    }

    /// The permission for this route and method, on one's own mailbox (`/me`) or another's.
    pub fn permission(&self, method: &Method, own: bool) -> &'static Permission {
        match (self.access(method), own) {
            (Access::CalendarRead, true) => &auth::CALENDARS_READ,
            (Access::CalendarRead, false) => &auth::CALENDARS_READ_SHARED,
            (Access::CalendarWrite, true) => &auth::CALENDARS_WRITE,
            (Access::CalendarWrite, false) => &auth::CALENDARS_WRITE_SHARED,
            (Access::Schedule, _) => &auth::CALENDARS_SCHEDULE,
            (Access::ContactsRead, true) => &auth::CONTACTS_READ,
            (Access::ContactsRead, false) => &auth::CONTACTS_READ_SHARED,
            (Access::ContactsWrite, true) => &auth::CONTACTS_WRITE,
            (Access::ContactsWrite, false) => &auth::CONTACTS_WRITE_SHARED,
            (Access::Settings, _) => &auth::MAILBOX_SETTINGS_READ,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn template(path: &str) -> String {
        let segments: Vec<&str> = path.split('/').collect();
        resolve(&segments).map(|r| r.template()).unwrap_or_default()
    }

    #[test]
    fn calendar_paths_resolve_to_templates() {
        for (path, expected) in [
            ("calendars", "/calendars"),
            ("calendars/AAMk=", "/calendars/{id}"),
            ("calendar", "/calendar"),
            ("events", "/events"),
            ("calendars/x/events", "/calendars/{id}/events"),
            ("calendar/events", "/calendar/events"),
            ("events/x", "/events/{id}"),
            ("events/x/accept", "/events/{id}/accept"),
            (
                "events/x/tentativelyaccept",
                "/events/{id}/tentativelyAccept",
            ),
            ("events/x/microsoft.graph.decline", "/events/{id}/decline"),
            ("events/x/cancel", "/events/{id}/cancel"),
            ("calendarView", "/calendarView"),
            ("calendars/x/calendarView", "/calendars/{id}/calendarView"),
            ("calendar/calendarView", "/calendar/calendarView"),
            ("calendar/getSchedule", "/calendar/getSchedule"),
            ("contacts", "/contacts"),
            ("contacts/x", "/contacts/{id}"),
            ("contactFolders", "/contactFolders"),
            ("contactFolders/x", "/contactFolders/{id}"),
            ("contactFolders/x/contacts", "/contactFolders/{id}/contacts"),
            (
                "contactFolders/x/contacts/y",
                "/contactFolders/{id}/contacts/{id}",
            ),
            ("mailboxSettings", "/mailboxSettings"),
        ] {
            assert_eq!(template(path), expected, "{path}");
        }
        assert!(resolve(&["events", "x", "bogus"]).is_err());
        assert!(resolve(&["calendars", "x", "getSchedule"]).is_err());
    }
}
