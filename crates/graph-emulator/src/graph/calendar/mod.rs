//! Calendars, events, calendar views, free/busy (`getSchedule`), contacts and mailbox
//! settings as Graph v1.0 serves them from Exchange Online (graph-protocol.md §5.6, §6).
//!
//! Handlers are synchronous and run under the dispatcher, so they work as `$batch` items.
//! Lock order: tenant (read), calendar store, mail store (only to deliver meeting mail).

mod contacts;
mod events;
mod odata;
pub(crate) mod render;
pub(crate) mod routes;
mod schedule;

use std::sync::MutexGuard;

use axum::http::{HeaderMap, StatusCode};
use jiff::tz::TimeZone;
use serde_json::{Map, Value};

use super::auth::Principal;
use super::errors::GraphError;
use super::mail::query::MailQuery;
use super::routes::Subject;
use super::{GraphRequest, GraphResponse, Payload};
use crate::calendar::{CalendarStore, tz};
use crate::tenant::Tenant;
use crate::{Emulator, EmulatorState};
use routes::CalendarRoute;

// --- errors -----------------------------------------------------------------------------

/// 400 `ErrorPropertyValidationFailure`: a property of the body is invalid (the message
/// names it).
pub(crate) fn validation_failure(message: impl Into<String>) -> GraphError {
    GraphError::new(
        StatusCode::BAD_REQUEST,
        "ErrorPropertyValidationFailure",
        message,
    )
}

/// 400 `ErrorInvalidParameter`: a bad or missing query or action parameter.
pub(crate) fn invalid_parameter(message: impl Into<String>) -> GraphError {
    GraphError::new(StatusCode::BAD_REQUEST, "ErrorInvalidParameter", message)
}

/// 400 `TimeZoneNotSupportedException`: a zone name that is neither Windows nor IANA.
pub(crate) fn time_zone_not_supported(name: &str) -> GraphError {
    GraphError::new(
        StatusCode::BAD_REQUEST,
        "TimeZoneNotSupportedException",
        format!(
            "A valid TimeZone value must be specified. The following TimeZone value is not supported: '{name}'."
        ),
    )
}

pub(crate) use super::mail::{body_read, get_ci, invalid_request, item_not_found, unknown_folder};

// --- context ----------------------------------------------------------------------------

/// `Prefer: outlook.timezone="…"`, `outlook.body-content-type`.
#[derive(Clone)]
pub(crate) struct Prefer {
    /// The zone name as sent, and the zone.
    pub zone: Option<(String, TimeZone)>,
    pub body_text: Option<bool>,
}

impl Prefer {
    fn parse(headers: &HeaderMap) -> Result<Prefer, GraphError> {
        let mut prefer = Prefer {
            zone: None,
            body_text: None,
        };
        for value in headers.get_all("prefer") {
            let Ok(value) = value.to_str() else { continue };
            for pref in value.split(',') {
                let Some((name, v)) = pref.split_once('=') else {
                    continue;
                };
                let v = v.trim().trim_matches('"').trim();
                match name.trim().to_ascii_lowercase().as_str() {
                    "outlook.timezone" => {
                        let zone = tz::resolve(v).ok_or_else(|| time_zone_not_supported(v))?;
                        prefer.zone = Some((v.to_string(), zone));
                    }
                    "outlook.body-content-type" => {
                        if v.eq_ignore_ascii_case("text") {
                            prefer.body_text = Some(true);
                        } else if v.eq_ignore_ascii_case("html") {
                            prefer.body_text = Some(false);
                        }
                    }
                    _ => {}
                }
            }
        }
        Ok(prefer)
    }
}

/// A calendar or contact request being handled.
pub(crate) struct Cx<'a> {
    pub state: &'a EmulatorState,
    pub req: &'a GraphRequest,
    pub query: MailQuery,
    pub prefer: Prefer,
    pub tenant: &'a Tenant,
    /// The mailbox owner's index in the tenant.
    pub owner: usize,
    pub now: i64,
}

impl Cx<'_> {
    /// `{base}/v1.0{path}`: the request's own URL without query.
    pub fn self_url(&self) -> String {
        format!("{}/v1.0{}", self.req.base_url, self.req.path)
    }

    pub fn user_id(&self) -> &str {
        &self.tenant.users[self.owner].id
    }

    /// `https://graph.microsoft.com/v1.0/$metadata#users('{id}')/…`.
    pub fn context(&self, tail: &str) -> String {
        format!(
            "https://graph.microsoft.com/v1.0/$metadata#users('{}'){tail}",
            self.user_id()
        )
    }

    /// The zone times are shown in: `Prefer: outlook.timezone`, else UTC.
    pub fn out_zone(&self) -> (String, TimeZone) {
        self.prefer
            .zone
            .clone()
            .unwrap_or_else(|| ("UTC".to_string(), TimeZone::UTC))
    }

    /// The JSON object of a POST/PATCH body (an empty body is `{}`).
    pub fn json_body(&self) -> Result<Map<String, Value>, GraphError> {
        let body = &self.req.body;
        if body.len() > super::mail::MAX_REQUEST_BYTES {
            return Err(GraphError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "RequestEntityTooLarge",
                "The request body is larger than Graph accepts (4 MB).",
            ));
        }
        let value: Value = if body.iter().all(u8::is_ascii_whitespace) {
            Value::Object(Map::new())
        } else {
            serde_json::from_slice(body).map_err(|_| unreadable_body())?
        };
        match value {
            Value::Object(map) => Ok(map),
            _ => Err(unreadable_body()),
        }
    }

    /// A query parameter that is not an OData system option (`startDateTime`), by
    /// case-insensitive name.
    pub fn param(&self, name: &str) -> Option<String> {
        let raw = self.req.query.as_deref()?;
        url::form_urlencoded::parse(raw.as_bytes())
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.into_owned())
    }
}

fn unreadable_body() -> GraphError {
    GraphError::bad_request(
        "Unable to read JSON request payload. Please ensure Content-Type header is set and payload is of valid JSON format.",
    )
}

pub(crate) fn lock_store(state: &EmulatorState) -> MutexGuard<'_, CalendarStore> {
    state
        .calendar
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Runs one calendar, contact or mailbox-settings request (already authenticated and
/// authorised).
pub(crate) fn handle(
    emulator: &Emulator,
    req: &GraphRequest,
    subject: &Subject,
    route: &CalendarRoute,
    principal: &Principal,
) -> Result<GraphResponse, GraphError> {
    let state = emulator.state();
    let tenant = state
        .tenant
        .read()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let owner = super::mail::owner_of(&tenant, subject, principal)?;
    let query = MailQuery::parse(req.query.as_deref())?;
    let prefer = Prefer::parse(&req.headers)?;
    let cx = Cx {
        state,
        req,
        query,
        prefer,
        tenant: &tenant,
        owner,
        now: crate::clock::now_unix(),
    };
    let mut store = lock_store(state);
    let mut response = match route {
        CalendarRoute::Calendars => events::list_calendars(&cx, &mut store),
        CalendarRoute::Calendar(cal) => events::get_calendar(&cx, &mut store, cal),
        CalendarRoute::Events(cal) => events::events(&cx, &mut store, cal.as_ref()),
        CalendarRoute::Event { cal, id, action } => {
            events::event(&cx, &mut store, cal.as_ref(), id, *action)
        }
        CalendarRoute::CalendarView(cal) => events::calendar_view(&cx, &mut store, cal.as_ref()),
        CalendarRoute::GetSchedule => schedule::get_schedule(&cx, &mut store),
        CalendarRoute::Contacts(folder) => contacts::contacts(&cx, &mut store, folder.as_deref()),
        CalendarRoute::Contact { folder, id } => {
            contacts::contact(&cx, &mut store, folder.as_deref(), id)
        }
        CalendarRoute::ContactFolders => contacts::list_folders(&cx, &mut store),
        CalendarRoute::ContactFolder(id) => contacts::get_folder(&cx, &mut store, id),
        CalendarRoute::MailboxSettings => schedule::mailbox_settings(&cx, &mut store),
    }?;
    let mut applied = Vec::new();
    if let Some((name, _)) = &cx.prefer.zone {
        applied.push(format!("outlook.timezone=\"{name}\""));
    }
    if let Some(text) = cx.prefer.body_text {
        let kind = if text { "text" } else { "html" };
        applied.push(format!("outlook.body-content-type=\"{kind}\""));
    }
    if matches!(response.payload, Payload::Json(_)) && !applied.is_empty() {
        response
            .headers
            .push(("Preference-Applied", applied.join(", ")));
    }
    Ok(response)
}
