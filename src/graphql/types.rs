//! GraphQL types of the directory: `Query`, `User`, `Group` and their connections.

use async_graphql::connection::{Connection, Edge};
use async_graphql::{Context, ID, InputObject, Object, SelectionField, SimpleObject};

use super::GqlResult;
use crate::service::directory::{
    Group, User, UserFilter as ServiceUserFilter, UserQuery, UserSelect,
};
use crate::service::{Page, Session};

/// Extra fields on every connection.
#[derive(SimpleObject)]
pub struct ConnectionFields {
    /// Total number of matches. Asked of Graph only when selected; available on `users`,
    /// null on relationship lists.
    pub(super) total_count: Option<u64>,
}

pub type UserConnection = Connection<String, User, ConnectionFields>;
pub type GroupConnection = Connection<String, Group, ConnectionFields>;

pub(super) fn connection<T: async_graphql::OutputType>(
    page: Page<T>,
    has_previous: bool,
) -> Connection<String, T, ConnectionFields> {
    let mut connection = Connection::with_additional_fields(
        has_previous,
        page.has_next,
        ConnectionFields {
            total_count: page.total_count,
        },
    );
    connection.edges.extend(
        page.items
            .into_iter()
            .map(|(node, cursor)| Edge::new(cursor.encode(), node)),
    );
    connection
}

pub(super) fn first(first: i32) -> usize {
    // Negative values become 0 and are refused by the service with a clear message.
    usize::try_from(first).unwrap_or(0)
}

/// The user properties selected below `fields` (a user object's selections), with the
/// manager expanded in the same Graph request when it is selected too.
fn user_select<'a>(fields: impl Iterator<Item = SelectionField<'a>>) -> UserSelect {
    let fields: Vec<SelectionField<'a>> = fields.collect();
    let mut select = UserSelect::from_names(fields.iter().map(|f| f.name()));
    let managers: Vec<SelectionField<'a>> = fields
        .iter()
        .filter(|f| f.name() == "manager")
        .copied()
        .collect();
    if !managers.is_empty() {
        let manager = UserSelect::from_names(
            managers
                .iter()
                .flat_map(|m| m.selection_set().collect::<Vec<_>>())
                .map(|f| f.name())
                .collect::<Vec<_>>(),
        );
        select = select.with_manager(manager);
    }
    select
}

/// Selection of the current field, whose value is a user.
fn select_here(ctx: &Context<'_>) -> UserSelect {
    user_select(ctx.field().selection_set())
}

/// Selection of the current field, whose value is a user (for other modules).
pub(super) fn user_select_of(ctx: &Context<'_>) -> UserSelect {
    select_here(ctx)
}

/// Selection of the users inside a connection (`nodes { … }` and `edges { node { … } }`).
fn select_nodes(ctx: &Context<'_>) -> UserSelect {
    let here = ctx.look_ahead();
    let nodes = here.field("nodes").selection_fields();
    let edge_nodes = here.field("edges").field("node").selection_fields();
    user_select(
        nodes
            .into_iter()
            .chain(edge_nodes)
            .flat_map(|f| f.selection_set().collect::<Vec<_>>()),
    )
}

/// True when the query reads nothing of a user but their mailbox: the user need not be
/// fetched first (the mail request finds out whether the mailbox exists).
fn only_mailbox_fields(ctx: &Context<'_>) -> bool {
    ctx.field().selection_set().all(|f| {
        matches!(
            f.name(),
            "mailFolders"
                | "mailFolder"
                | "messages"
                | "message"
                | "calendars"
                | "calendar"
                | "events"
                | "calendarView"
                | "event"
                | "contacts"
                | "contact"
                | "contactFolders"
                | "__typename"
        )
    })
}

fn wants_total_count(ctx: &Context<'_>) -> bool {
    ctx.look_ahead().field("totalCount").exists()
}

/// Conditions on users; all given conditions must hold.
#[derive(InputObject, Default)]
pub struct UserFilter {
    display_name_starts_with: Option<String>,
    given_name: Option<String>,
    surname: Option<String>,
    mail: Option<String>,
    user_principal_name: Option<String>,
    department: Option<String>,
    /// Any of these departments (1 to 15 values).
    department_in: Option<Vec<String>>,
    job_title: Option<String>,
    account_enabled: Option<bool>,
}

impl From<UserFilter> for ServiceUserFilter {
    fn from(f: UserFilter) -> Self {
        ServiceUserFilter {
            display_name_starts_with: f.display_name_starts_with,
            given_name: f.given_name,
            surname: f.surname,
            mail: f.mail,
            user_principal_name: f.user_principal_name,
            department: f.department,
            department_in: f.department_in,
            job_title: f.job_title,
            account_enabled: f.account_enabled,
        }
    }
}

/// The directory part of the root query type.
#[derive(Default)]
pub struct DirectoryQuery;

#[Object]
impl DirectoryQuery {
    /// The user the caller acts for. Callers that act as a pure application have none.
    async fn me(&self, ctx: &Context<'_>) -> async_graphql::Result<User> {
        let session = ctx.data::<Session>()?;
        if only_mailbox_fields(ctx) {
            return session.mailbox_owner("me").gql();
        }
        session.me(&select_here(ctx)).await.gql()
    }

    /// A user (or shared mailbox) by object id, user principal name or mail address.
    async fn user(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<User> {
        let session = ctx.data::<Session>()?;
        if only_mailbox_fields(ctx) {
            return session.mailbox_owner(&id).gql();
        }
        session.user(&id, &select_here(ctx)).await.gql()
    }

    /// Users of the directory, optionally filtered or searched (display name and mail).
    async fn users(
        &self,
        ctx: &Context<'_>,
        filter: Option<UserFilter>,
        search: Option<String>,
        #[graphql(desc = "Page size, 1 to 100.")] first: i32,
        after: Option<String>,
    ) -> async_graphql::Result<UserConnection> {
        let session = ctx.data::<Session>()?;
        let has_previous = after.is_some();
        let query = UserQuery {
            filter: filter.map(Into::into).unwrap_or_default(),
            search,
            first: self::first(first),
            after,
            count: wants_total_count(ctx),
        };
        let page = session.users(&query, &select_nodes(ctx)).await.gql()?;
        Ok(connection(page, has_previous))
    }

    /// A group by object id.
    async fn group(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<Group> {
        let session = ctx.data::<Session>()?;
        session.group(&id).await.gql()
    }
}

/// A person in the directory.
#[Object]
impl User {
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
    async fn mail(&self) -> Option<&str> {
        self.mail.as_deref()
    }
    async fn user_principal_name(&self) -> Option<&str> {
        self.user_principal_name.as_deref()
    }
    async fn job_title(&self) -> Option<&str> {
        self.job_title.as_deref()
    }
    async fn department(&self) -> Option<&str> {
        self.department.as_deref()
    }
    async fn office_location(&self) -> Option<&str> {
        self.office_location.as_deref()
    }
    async fn business_phones(&self) -> &[String] {
        &self.business_phones
    }
    async fn mobile_phone(&self) -> Option<&str> {
        self.mobile_phone.as_deref()
    }

    /// The user's manager; null at the top of the organisation.
    async fn manager(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<User>> {
        if let Some(known) = &self.manager {
            return Ok(known.as_deref().cloned());
        }
        let session = ctx.data::<Session>()?;
        session.manager(&self.id, &select_here(ctx)).await.gql()
    }

    /// People who report to this user.
    async fn direct_reports(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Page size, 1 to 100.")] first: i32,
        after: Option<String>,
    ) -> async_graphql::Result<UserConnection> {
        let session = ctx.data::<Session>()?;
        let has_previous = after.is_some();
        let page = session
            .direct_reports(
                &self.id,
                &select_nodes(ctx),
                self::first(first),
                after.as_deref(),
            )
            .await
            .gql()?;
        Ok(connection(page, has_previous))
    }

    /// The user's mail folders (top level: Inbox, Sent Items, … and custom folders).
    async fn mail_folders(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Page size, 1 to 100.")] first: i32,
        after: Option<String>,
    ) -> async_graphql::Result<super::mail::MailFolderConnection> {
        super::mail::mail_folders(ctx, &self.id, first, after).await
    }

    /// One mail folder by id or well-known name (`inbox`, `sentitems`, `drafts`,
    /// `deleteditems`, `junkemail`, `archive`).
    async fn mail_folder(
        &self,
        ctx: &Context<'_>,
        id: String,
    ) -> async_graphql::Result<crate::service::mail::MailFolder> {
        super::mail::mail_folder(ctx, &self.id, &id).await
    }

    /// Messages of the mailbox, newest first: all folders, or one `folder` (id or
    /// well-known name). `search` is KQL (`from:`, `subject:`, words) and cannot be combined
    /// with `filter` or `orderBy`.
    #[allow(clippy::too_many_arguments)]
    async fn messages(
        &self,
        ctx: &Context<'_>,
        folder: Option<String>,
        filter: Option<super::mail::MessageFilterInput>,
        search: Option<String>,
        order_by: Option<super::mail::MessageOrderBy>,
        #[graphql(desc = "Page size, 1 to 100.")] first: i32,
        after: Option<String>,
    ) -> async_graphql::Result<super::mail::MessageConnection> {
        super::mail::messages(
            ctx, &self.id, folder, filter, search, order_by, first, after,
        )
        .await
    }

    /// One message by id.
    async fn message(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> async_graphql::Result<crate::service::mail::Message> {
        super::mail::message(ctx, &self.id, &id).await
    }

    /// The user's OneDrive.
    async fn drive(&self, ctx: &Context<'_>) -> async_graphql::Result<super::files::DriveNode> {
        super::files::user_drive(ctx, &self.id).await
    }

    /// The user's calendars.
    async fn calendars(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Page size, 1 to 100.")] first: i32,
        after: Option<String>,
    ) -> async_graphql::Result<super::calendar::CalendarConnection> {
        super::calendar::calendars(ctx, &self.id, first, after).await
    }

    /// The user's default calendar.
    async fn calendar(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<crate::service::calendar::Calendar> {
        let session = ctx.data::<Session>()?;
        session.calendar(&self.id).await.gql()
    }

    /// Events as stored (single events and series masters, not expanded), by start time;
    /// optionally those starting from `start` and ending by `end`.
    #[allow(clippy::too_many_arguments)]
    async fn events(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Calendar id; default: the default calendar.")] calendar: Option<String>,
        start: Option<String>,
        end: Option<String>,
        subject_contains: Option<String>,
        #[graphql(desc = "Zone of the times returned (IANA or Windows; default UTC).")]
        time_zone: Option<String>,
        #[graphql(desc = "Page size, 1 to 100.")] first: i32,
        after: Option<String>,
    ) -> async_graphql::Result<super::calendar::EventConnection> {
        let session = ctx.data::<Session>()?;
        let has_previous = after.is_some();
        let page = session
            .events(
                &self.id,
                calendar.as_deref(),
                start.as_deref(),
                end.as_deref(),
                subject_contains.as_deref(),
                time_zone.as_deref(),
                self::first(first),
                after.as_deref(),
            )
            .await
            .gql()?;
        Ok(connection(page, has_previous))
    }

    /// What happens between `start` and `end` (at most 62 days): recurring series
    /// expanded into occurrences and exceptions.
    #[allow(clippy::too_many_arguments)]
    async fn calendar_view(
        &self,
        ctx: &Context<'_>,
        calendar: Option<String>,
        #[graphql(desc = "ISO 8601 with offset.")] start: String,
        end: String,
        #[graphql(desc = "Zone of the times returned (IANA or Windows; default UTC).")]
        time_zone: Option<String>,
        #[graphql(desc = "Page size, 1 to 100.")] first: i32,
        after: Option<String>,
    ) -> async_graphql::Result<super::calendar::EventConnection> {
        let session = ctx.data::<Session>()?;
        let has_previous = after.is_some();
        let page = session
            .calendar_view(
                &self.id,
                calendar.as_deref(),
                &start,
                &end,
                time_zone.as_deref(),
                self::first(first),
                after.as_deref(),
            )
            .await
            .gql()?;
        Ok(connection(page, has_previous))
    }

    /// One event by id.
    async fn event(
        &self,
        ctx: &Context<'_>,
        id: ID,
        time_zone: Option<String>,
    ) -> async_graphql::Result<crate::service::calendar::Event> {
        let session = ctx.data::<Session>()?;
        session
            .event(&self.id, &id, time_zone.as_deref())
            .await
            .gql()
    }

    /// The user's contacts (default folder, or `folder`), optionally searched.
    async fn contacts(
        &self,
        ctx: &Context<'_>,
        folder: Option<String>,
        search: Option<String>,
        #[graphql(desc = "Page size, 1 to 100.")] first: i32,
        after: Option<String>,
    ) -> async_graphql::Result<super::calendar::ContactConnection> {
        let session = ctx.data::<Session>()?;
        let has_previous = after.is_some();
        let page = session
            .contacts(
                &self.id,
                folder.as_deref(),
                search.as_deref(),
                self::first(first),
                after.as_deref(),
            )
            .await
            .gql()?;
        Ok(connection(page, has_previous))
    }

    /// One contact by id.
    async fn contact(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> async_graphql::Result<crate::service::contacts::Contact> {
        let session = ctx.data::<Session>()?;
        session.contact(&self.id, &id).await.gql()
    }

    /// The user's contact folders.
    async fn contact_folders(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Page size, 1 to 100.")] first: i32,
        after: Option<String>,
    ) -> async_graphql::Result<super::calendar::ContactFolderConnection> {
        let session = ctx.data::<Session>()?;
        let has_previous = after.is_some();
        let page = session
            .contact_folders(&self.id, self::first(first), after.as_deref())
            .await
            .gql()?;
        Ok(connection(page, has_previous))
    }

    /// Groups this user is a direct member of.
    async fn member_of(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Page size, 1 to 100.")] first: i32,
        after: Option<String>,
    ) -> async_graphql::Result<GroupConnection> {
        let session = ctx.data::<Session>()?;
        let has_previous = after.is_some();
        let page = session
            .member_of(&self.id, self::first(first), after.as_deref())
            .await
            .gql()?;
        Ok(connection(page, has_previous))
    }
}

/// A security or Microsoft 365 group.
#[Object]
impl Group {
    async fn id(&self) -> ID {
        ID(self.id.clone())
    }
    async fn display_name(&self) -> Option<&str> {
        self.display_name.as_deref()
    }
    async fn description(&self) -> Option<&str> {
        self.description.as_deref()
    }
    async fn mail(&self) -> Option<&str> {
        self.mail.as_deref()
    }
    async fn security_enabled(&self) -> Option<bool> {
        self.security_enabled
    }
    async fn mail_enabled(&self) -> Option<bool> {
        self.mail_enabled
    }
    /// `["Unified"]` for Microsoft 365 groups, empty for security groups.
    async fn group_types(&self) -> &[String] {
        &self.group_types
    }

    /// Users who are direct members of the group.
    async fn members(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Page size, 1 to 100.")] first: i32,
        after: Option<String>,
    ) -> async_graphql::Result<UserConnection> {
        let session = ctx.data::<Session>()?;
        let has_previous = after.is_some();
        let page = session
            .group_members(
                &self.id,
                &select_nodes(ctx),
                self::first(first),
                after.as_deref(),
            )
            .await
            .gql()?;
        Ok(connection(page, has_previous))
    }
}
