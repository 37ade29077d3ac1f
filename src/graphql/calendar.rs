//! GraphQL types of calendars, events, free/busy and contacts, and their mutations.

use async_graphql::{Context, Enum, ID, InputObject, Object, SimpleObject};

use super::GqlResult;
use super::mail::BodyFormat;
use super::types::{ConnectionFields, connection, first, user_select_of};
use crate::service::Session;
use crate::service::calendar::{
    Attendee, Calendar, DateTimeTz, Event, EventInput as ServiceEventInput, MeetingResponse,
    MeetingSlot, NewAttendee, Recurrence as ServiceRecurrence, RecurrencePattern, RecurrenceRange,
    Schedule, ScheduleItem, WorkingHours,
};
use crate::service::contacts::{
    Address, Contact, ContactFolder, ContactInput as ServiceContactInput,
};
use crate::service::directory::User;
use crate::service::mail::{ItemBody, Recipient};

pub type CalendarConnection =
    async_graphql::connection::Connection<String, Calendar, ConnectionFields>;
pub type EventConnection = async_graphql::connection::Connection<String, Event, ConnectionFields>;
pub type ContactConnection =
    async_graphql::connection::Connection<String, Contact, ConnectionFields>;
pub type ContactFolderConnection =
    async_graphql::connection::Connection<String, ContactFolder, ConnectionFields>;

/// An instant as ISO 8601 with its offset, and the zone it is expressed in.
#[Object]
impl DateTimeTz {
    /// e.g. `2024-05-01T09:00:00+02:00`.
    async fn date_time(&self) -> &str {
        &self.date_time
    }
    /// IANA or Windows name, as asked (or as stored).
    async fn time_zone(&self) -> &str {
        &self.time_zone
    }
}

#[Object]
impl Calendar {
    async fn id(&self) -> ID {
        ID(self.id.clone())
    }
    async fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }
    async fn color(&self) -> Option<&str> {
        self.color.as_deref()
    }
    async fn is_default(&self) -> bool {
        self.is_default
    }
    async fn can_edit(&self) -> bool {
        self.can_edit
    }
    async fn owner(&self) -> Option<&Recipient> {
        self.owner.as_ref()
    }
}

#[derive(SimpleObject)]
pub struct AttendeeStatus {
    /// `none`, `organizer`, `tentativelyAccepted`, `accepted`, `declined`, `notResponded`.
    response: Option<String>,
    time: Option<String>,
}

/// Someone invited to an event.
#[Object]
impl Attendee {
    async fn email_address(&self) -> &Recipient {
        &self.email_address
    }
    /// `required`, `optional` or `resource`.
    #[graphql(name = "type")]
    async fn kind(&self) -> &str {
        &self.kind
    }
    async fn status(&self) -> AttendeeStatus {
        AttendeeStatus {
            response: self.response.clone(),
            time: self.response_time.clone(),
        }
    }
    /// The directory user with this address (null outside the tenant), batched.
    async fn user(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<User>> {
        let Some(address) = &self.email_address.address else {
            return Ok(None);
        };
        let session = ctx.data::<Session>()?;
        session
            .user_by_address(address, &user_select_of(ctx))
            .await
            .gql()
    }
}

/// How an event repeats (Graph's `patternedRecurrence`).
#[derive(SimpleObject, InputObject, Clone)]
#[graphql(name = "RecurrencePattern", input_name = "RecurrencePatternInput")]
pub struct RecurrencePatternGql {
    /// `daily`, `weekly`, `absoluteMonthly`, `relativeMonthly`, `absoluteYearly`,
    /// `relativeYearly`.
    #[graphql(name = "type")]
    kind: String,
    interval: i32,
    month: Option<i32>,
    day_of_month: Option<i32>,
    #[graphql(default)]
    days_of_week: Vec<String>,
    first_day_of_week: Option<String>,
    /// `first` … `fourth`, `last`.
    index: Option<String>,
}

#[derive(SimpleObject, InputObject, Clone)]
#[graphql(name = "RecurrenceRange", input_name = "RecurrenceRangeInput")]
pub struct RecurrenceRangeGql {
    /// `endDate`, `noEnd` or `numbered`.
    #[graphql(name = "type")]
    kind: String,
    /// `YYYY-MM-DD`.
    start_date: String,
    end_date: Option<String>,
    recurrence_time_zone: Option<String>,
    number_of_occurrences: Option<i32>,
}

#[derive(SimpleObject, InputObject, Clone)]
#[graphql(name = "Recurrence", input_name = "RecurrenceInput")]
pub struct RecurrenceGql {
    pattern: RecurrencePatternGql,
    range: RecurrenceRangeGql,
}

impl From<&ServiceRecurrence> for RecurrenceGql {
    fn from(r: &ServiceRecurrence) -> Self {
        RecurrenceGql {
            pattern: RecurrencePatternGql {
                kind: r.pattern.kind.clone(),
                interval: r.pattern.interval,
                month: r.pattern.month,
                day_of_month: r.pattern.day_of_month,
                days_of_week: r.pattern.days_of_week.clone(),
                first_day_of_week: r.pattern.first_day_of_week.clone(),
                index: r.pattern.index.clone(),
            },
            range: RecurrenceRangeGql {
                kind: r.range.kind.clone(),
                start_date: r.range.start_date.clone(),
                end_date: r.range.end_date.clone(),
                recurrence_time_zone: r.range.recurrence_time_zone.clone(),
                number_of_occurrences: r.range.number_of_occurrences,
            },
        }
    }
}

impl From<RecurrenceGql> for ServiceRecurrence {
    fn from(r: RecurrenceGql) -> Self {
        ServiceRecurrence {
            pattern: RecurrencePattern {
                kind: r.pattern.kind,
                interval: r.pattern.interval,
                month: r.pattern.month,
                day_of_month: r.pattern.day_of_month,
                days_of_week: r.pattern.days_of_week,
                first_day_of_week: r.pattern.first_day_of_week,
                index: r.pattern.index,
            },
            range: RecurrenceRange {
                kind: r.range.kind,
                start_date: r.range.start_date,
                end_date: r.range.end_date,
                recurrence_time_zone: r.range.recurrence_time_zone,
                number_of_occurrences: r.range.number_of_occurrences,
            },
        }
    }
}

#[derive(SimpleObject)]
pub struct OnlineMeeting {
    join_url: Option<String>,
}

#[derive(SimpleObject)]
pub struct EventBody {
    format: BodyFormat,
    content: String,
}

impl From<&ItemBody> for EventBody {
    fn from(b: &ItemBody) -> Self {
        EventBody {
            format: b.content_type.into(),
            content: b.content.clone(),
        }
    }
}

/// The organiser of an event.
#[derive(SimpleObject)]
pub struct Organizer {
    email_address: Recipient,
}

/// A calendar event: a single event, a series master, or one occurrence or exception.
#[Object]
impl Event {
    async fn id(&self) -> ID {
        ID(self.id.clone())
    }
    async fn subject(&self) -> Option<&str> {
        self.subject.as_deref()
    }
    async fn body(&self) -> Option<EventBody> {
        self.body.as_ref().map(Into::into)
    }
    async fn body_preview(&self) -> Option<&str> {
        self.body_preview.as_deref()
    }
    async fn start(&self) -> Option<&DateTimeTz> {
        self.start.as_ref()
    }
    async fn end(&self) -> Option<&DateTimeTz> {
        self.end.as_ref()
    }
    async fn is_all_day(&self) -> Option<bool> {
        self.is_all_day
    }
    async fn location(&self) -> Option<&str> {
        self.location.as_deref()
    }
    async fn locations(&self) -> &[String] {
        &self.locations
    }
    async fn attendees(&self) -> &[Attendee] {
        &self.attendees
    }
    /// The organiser; `organizer.emailAddress.user` resolves to the directory user.
    async fn organizer(&self) -> Option<Organizer> {
        self.organizer
            .clone()
            .map(|email_address| Organizer { email_address })
    }
    async fn is_online_meeting(&self) -> Option<bool> {
        self.is_online_meeting
    }
    async fn online_meeting(&self) -> Option<OnlineMeeting> {
        self.join_url.clone().map(|join_url| OnlineMeeting {
            join_url: Some(join_url),
        })
    }
    async fn recurrence(&self) -> Option<RecurrenceGql> {
        self.recurrence.as_ref().map(Into::into)
    }
    /// `singleInstance`, `occurrence`, `exception` or `seriesMaster`.
    #[graphql(name = "type")]
    async fn kind(&self) -> Option<&str> {
        self.kind.as_deref()
    }
    async fn series_master_id(&self) -> Option<&str> {
        self.series_master_id.as_deref()
    }
    async fn show_as(&self) -> Option<&str> {
        self.show_as.as_deref()
    }
    async fn sensitivity(&self) -> Option<&str> {
        self.sensitivity.as_deref()
    }
    async fn importance(&self) -> Option<&str> {
        self.importance.as_deref()
    }
    async fn categories(&self) -> &[String] {
        &self.categories
    }
    async fn is_cancelled(&self) -> Option<bool> {
        self.is_cancelled
    }
    async fn is_organizer(&self) -> Option<bool> {
        self.is_organizer
    }
    /// The mailbox owner's own response.
    async fn response_status(&self) -> AttendeeStatus {
        AttendeeStatus {
            response: self.response.clone(),
            time: self.response_time.clone(),
        }
    }
    async fn web_link(&self) -> Option<&str> {
        self.web_link.as_deref()
    }
    #[graphql(name = "iCalUId")]
    async fn ical_uid(&self) -> Option<&str> {
        self.ical_uid.as_deref()
    }
}

#[Object]
impl Address {
    async fn street(&self) -> Option<&str> {
        self.street.as_deref()
    }
    async fn city(&self) -> Option<&str> {
        self.city.as_deref()
    }
    async fn state(&self) -> Option<&str> {
        self.state.as_deref()
    }
    async fn country_or_region(&self) -> Option<&str> {
        self.country_or_region.as_deref()
    }
    async fn postal_code(&self) -> Option<&str> {
        self.postal_code.as_deref()
    }
}

/// A personal contact.
#[Object]
impl Contact {
    async fn id(&self) -> ID {
        ID(self.id.clone())
    }
    async fn display_name(&self) -> Option<&str> {
        self.display_name.as_deref()
    }
    async fn given_name(&self) -> Option<&str> {
        self.given_name.as_deref()
    }
    async fn surname(&self) -> Option<&str> {
        self.surname.as_deref()
    }
    async fn email_addresses(&self) -> &[Recipient] {
        &self.email_addresses
    }
    async fn business_phones(&self) -> &[String] {
        &self.business_phones
    }
    async fn mobile_phone(&self) -> Option<&str> {
        self.mobile_phone.as_deref()
    }
    async fn company_name(&self) -> Option<&str> {
        self.company_name.as_deref()
    }
    async fn job_title(&self) -> Option<&str> {
        self.job_title.as_deref()
    }
    async fn department(&self) -> Option<&str> {
        self.department.as_deref()
    }
    async fn business_address(&self) -> Option<&Address> {
        self.business_address.as_ref()
    }
    async fn categories(&self) -> &[String] {
        &self.categories
    }
    async fn parent_folder_id(&self) -> Option<&str> {
        self.parent_folder_id.as_deref()
    }
}

#[Object]
impl ContactFolder {
    async fn id(&self) -> ID {
        ID(self.id.clone())
    }
    async fn display_name(&self) -> Option<&str> {
        self.display_name.as_deref()
    }
    async fn parent_folder_id(&self) -> Option<&str> {
        self.parent_folder_id.as_deref()
    }
}

#[Object]
impl ScheduleItem {
    /// `free`, `tentative`, `busy`, `oof`, `workingElsewhere`, `unknown`.
    async fn status(&self) -> &str {
        &self.status
    }
    async fn subject(&self) -> Option<&str> {
        self.subject.as_deref()
    }
    async fn location(&self) -> Option<&str> {
        self.location.as_deref()
    }
    async fn is_private(&self) -> bool {
        self.is_private
    }
    async fn start(&self) -> &DateTimeTz {
        &self.start
    }
    async fn end(&self) -> &DateTimeTz {
        &self.end
    }
}

#[Object]
impl WorkingHours {
    async fn days_of_week(&self) -> &[String] {
        &self.days_of_week
    }
    /// `08:00:00`, in `timeZone`.
    async fn start_time(&self) -> &str {
        &self.start_time
    }
    async fn end_time(&self) -> &str {
        &self.end_time
    }
    async fn time_zone(&self) -> &str {
        &self.time_zone
    }
}

/// One person's free/busy.
#[Object]
impl Schedule {
    /// The address asked about.
    async fn schedule_id(&self) -> &str {
        &self.schedule_id
    }
    /// One digit per interval: 0 free, 1 tentative, 2 busy, 3 out of office, 4 working
    /// elsewhere.
    async fn availability_view(&self) -> Option<&str> {
        self.availability_view.as_deref()
    }
    async fn schedule_items(&self) -> &[ScheduleItem] {
        &self.items
    }
    async fn working_hours(&self) -> Option<&WorkingHours> {
        self.working_hours.as_ref()
    }
    /// Why there is no information for this person (unknown address, no access).
    async fn error(&self) -> Option<&str> {
        self.error.as_deref()
    }
}

#[Object]
impl MeetingSlot {
    async fn start(&self) -> &DateTimeTz {
        &self.start
    }
    async fn end(&self) -> &DateTimeTz {
        &self.end
    }
}

/// A time window (ISO 8601 instants with offsets).
#[derive(InputObject)]
pub struct TimeWindowInput {
    start: String,
    end: String,
}

#[derive(InputObject)]
pub struct AttendeeInput {
    address: String,
    name: Option<String>,
    /// `required` (default), `optional` or `resource`.
    #[graphql(name = "type")]
    kind: Option<String>,
}

/// A new event, or the changes to one (on update, only the fields given change).
#[derive(InputObject, Default)]
pub struct EventInput {
    subject: Option<String>,
    body: Option<String>,
    body_format: Option<BodyFormat>,
    /// ISO 8601 with offset.
    start: Option<String>,
    end: Option<String>,
    /// Zone the event is scheduled in (IANA or Windows name; default UTC).
    time_zone: Option<String>,
    is_all_day: Option<bool>,
    location: Option<String>,
    attendees: Option<Vec<AttendeeInput>>,
    /// Creates a Teams meeting (join URL in `onlineMeeting.joinUrl`).
    is_online_meeting: Option<bool>,
    recurrence: Option<RecurrenceGql>,
    reminder_minutes_before_start: Option<i32>,
    show_as: Option<String>,
    sensitivity: Option<String>,
    importance: Option<String>,
    categories: Option<Vec<String>>,
    /// Makes retries of a create safe (Graph returns the event already made).
    transaction_id: Option<String>,
}

impl From<EventInput> for ServiceEventInput {
    fn from(e: EventInput) -> Self {
        ServiceEventInput {
            subject: e.subject,
            body: e.body,
            body_type: e.body_format.map(Into::into),
            start: e.start,
            end: e.end,
            time_zone: e.time_zone,
            is_all_day: e.is_all_day,
            location: e.location,
            attendees: e.attendees.map(|list| {
                list.into_iter()
                    .map(|a| NewAttendee {
                        address: a.address,
                        name: a.name,
                        kind: a.kind,
                    })
                    .collect()
            }),
            is_online_meeting: e.is_online_meeting,
            recurrence: e.recurrence.map(Into::into),
            reminder_minutes_before_start: e.reminder_minutes_before_start,
            show_as: e.show_as,
            sensitivity: e.sensitivity,
            importance: e.importance,
            categories: e.categories,
            transaction_id: e.transaction_id,
        }
    }
}

#[derive(InputObject, Default)]
pub struct AddressInput {
    street: Option<String>,
    city: Option<String>,
    state: Option<String>,
    country_or_region: Option<String>,
    postal_code: Option<String>,
}

/// A new contact, or the changes to one.
#[derive(InputObject, Default)]
pub struct ContactInput {
    display_name: Option<String>,
    given_name: Option<String>,
    surname: Option<String>,
    email_addresses: Option<Vec<String>>,
    business_phones: Option<Vec<String>>,
    mobile_phone: Option<String>,
    company_name: Option<String>,
    job_title: Option<String>,
    department: Option<String>,
    business_address: Option<AddressInput>,
    categories: Option<Vec<String>>,
}

impl From<ContactInput> for ServiceContactInput {
    fn from(c: ContactInput) -> Self {
        ServiceContactInput {
            display_name: c.display_name,
            given_name: c.given_name,
            surname: c.surname,
            email_addresses: c.email_addresses,
            business_phones: c.business_phones,
            mobile_phone: c.mobile_phone,
            company_name: c.company_name,
            job_title: c.job_title,
            department: c.department,
            business_address: c.business_address.map(|a| Address {
                street: a.street,
                city: a.city,
                state: a.state,
                country_or_region: a.country_or_region,
                postal_code: a.postal_code,
            }),
            categories: c.categories,
        }
    }
}

#[derive(Enum, Copy, Clone, Eq, PartialEq)]
pub enum EventResponse {
    Accept,
    Tentative,
    Decline,
}

/// Calendar queries at the root.
#[derive(Default)]
pub struct CalendarQuery;

#[Object]
impl CalendarQuery {
    /// Free/busy of up to 20 people (`getSchedule`): availability per interval, the busy
    /// items, and each person's working hours.
    async fn schedule(
        &self,
        ctx: &Context<'_>,
        users: Vec<String>,
        #[graphql(desc = "ISO 8601 with offset.")] start: String,
        end: String,
        #[graphql(default = 30, desc = "5 to 1440.")] interval_minutes: i32,
        #[graphql(desc = "Zone of the times returned (IANA or Windows; default UTC).")]
        time_zone: Option<String>,
    ) -> async_graphql::Result<Vec<Schedule>> {
        let session = ctx.data::<Session>()?;
        session
            .schedule(&users, &start, &end, interval_minutes, time_zone.as_deref())
            .await
            .gql()
    }

    /// Slots of `durationMinutes` inside `window` in which every attendee is free and (by
    /// default) inside each attendee's working hours in their own time zone. Candidate
    /// starts every `stepMinutes` from the window's start; at most 50 slots.
    #[allow(clippy::too_many_arguments)]
    async fn find_meeting_slots(
        &self,
        ctx: &Context<'_>,
        attendees: Vec<String>,
        duration_minutes: i32,
        window: TimeWindowInput,
        #[graphql(default = true)] working_hours_only: bool,
        #[graphql(default = 30)] step_minutes: i32,
        time_zone: Option<String>,
    ) -> async_graphql::Result<Vec<MeetingSlot>> {
        let session = ctx.data::<Session>()?;
        session
            .find_meeting_slots(
                &attendees,
                duration_minutes,
                &window.start,
                &window.end,
                working_hours_only,
                step_minutes,
                time_zone.as_deref(),
            )
            .await
            .gql()
    }
}

/// Calendar and contact mutations; `mailbox` as in mail (id, UPN, address or `me`).
#[derive(Default)]
pub struct CalendarMutation;

#[Object]
impl CalendarMutation {
    /// Creates an event; with attendees it is a meeting and Exchange sends invitations.
    async fn create_event(
        &self,
        ctx: &Context<'_>,
        mailbox: ID,
        calendar: Option<String>,
        event: EventInput,
    ) -> async_graphql::Result<Event> {
        let session = ctx.data::<Session>()?;
        session
            .create_event(&mailbox, calendar.as_deref(), &event.into())
            .await
            .gql()
    }

    async fn update_event(
        &self,
        ctx: &Context<'_>,
        mailbox: ID,
        id: ID,
        event: EventInput,
    ) -> async_graphql::Result<Event> {
        let session = ctx.data::<Session>()?;
        session
            .update_event(&mailbox, &id, &event.into())
            .await
            .gql()
    }

    async fn delete_event(
        &self,
        ctx: &Context<'_>,
        mailbox: ID,
        id: ID,
    ) -> async_graphql::Result<bool> {
        let session = ctx.data::<Session>()?;
        session.delete_event(&mailbox, &id).await.gql()?;
        Ok(true)
    }

    /// Cancels a meeting the mailbox organises and tells the attendees.
    async fn cancel_event(
        &self,
        ctx: &Context<'_>,
        mailbox: ID,
        id: ID,
        comment: Option<String>,
    ) -> async_graphql::Result<bool> {
        let session = ctx.data::<Session>()?;
        session
            .cancel_event(&mailbox, &id, comment.as_deref())
            .await
            .gql()?;
        Ok(true)
    }

    /// Answers a meeting invitation in the mailbox's calendar.
    async fn respond_to_event(
        &self,
        ctx: &Context<'_>,
        mailbox: ID,
        id: ID,
        response: EventResponse,
        comment: Option<String>,
        #[graphql(default = true)] send_response: bool,
    ) -> async_graphql::Result<bool> {
        let session = ctx.data::<Session>()?;
        let response = match response {
            EventResponse::Accept => MeetingResponse::Accept,
            EventResponse::Tentative => MeetingResponse::Tentative,
            EventResponse::Decline => MeetingResponse::Decline,
        };
        session
            .respond_to_event(&mailbox, &id, response, comment.as_deref(), send_response)
            .await
            .gql()?;
        Ok(true)
    }

    async fn create_contact(
        &self,
        ctx: &Context<'_>,
        mailbox: ID,
        folder: Option<String>,
        contact: ContactInput,
    ) -> async_graphql::Result<Contact> {
        let session = ctx.data::<Session>()?;
        session
            .create_contact(&mailbox, folder.as_deref(), &contact.into())
            .await
            .gql()
    }

    async fn update_contact(
        &self,
        ctx: &Context<'_>,
        mailbox: ID,
        id: ID,
        contact: ContactInput,
    ) -> async_graphql::Result<Contact> {
        let session = ctx.data::<Session>()?;
        session
            .update_contact(&mailbox, &id, &contact.into())
            .await
            .gql()
    }

    async fn delete_contact(
        &self,
        ctx: &Context<'_>,
        mailbox: ID,
        id: ID,
    ) -> async_graphql::Result<bool> {
        let session = ctx.data::<Session>()?;
        session.delete_contact(&mailbox, &id).await.gql()?;
        Ok(true)
    }
}

/// Calendar and contact fields of `User` (called from its resolvers in `types.rs`).
pub(super) async fn calendars(
    ctx: &Context<'_>,
    mailbox: &str,
    first_: i32,
    after: Option<String>,
) -> async_graphql::Result<CalendarConnection> {
    let session = ctx.data::<Session>()?;
    let has_previous = after.is_some();
    let page = session
        .calendars(mailbox, first(first_), after.as_deref())
        .await
        .gql()?;
    Ok(connection(page, has_previous))
}
