//! Directory use-cases: users, managers, direct reports, groups.

use serde::Serialize;
use utoipa::ToSchema;

use super::paging::check_first;
use super::{Page, ServiceError, Session};

use crate::graph::models;
use crate::graph::{GraphGet, GraphUrl, odata_string, search_clause};

/// User properties the gateway exposes; their Graph names equal their GraphQL names.
pub const USER_FIELDS: &[&str] = &[
    "id",
    "displayName",
    "givenName",
    "surname",
    "mail",
    "userPrincipalName",
    "jobTitle",
    "department",
    "officeLocation",
    "businessPhones",
    "mobilePhone",
];

/// Group properties the gateway exposes.
pub const GROUP_FIELDS: &[&str] = &[
    "id",
    "displayName",
    "description",
    "mail",
    "mailEnabled",
    "securityEnabled",
    "groupTypes",
    "visibility",
];

/// Which user properties to fetch, and whether (and how) to expand the manager.
/// Built from the GraphQL selection set so Graph sends only what was asked.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UserSelect {
    fields: Vec<&'static str>,
    manager: Option<Box<UserSelect>>,
}

impl UserSelect {
    /// Every exposed property (REST answers are not shaped by a selection).
    pub fn all() -> Self {
        Self {
            fields: USER_FIELDS.to_vec(),
            manager: None,
        }
    }

    /// The properties among `names` that Graph knows; `id` is always included because
    /// every relationship is fetched by it.
    pub fn from_names<'a>(names: impl IntoIterator<Item = &'a str>) -> Self {
        let mut fields = vec!["id"];
        for name in names {
            if let Some(field) = USER_FIELDS.iter().find(|f| **f == name)
                && !fields.contains(field)
            {
                fields.push(field);
            }
        }
        Self {
            fields,
            manager: None,
        }
    }

    /// True when every property `other` asks for is among these.
    fn covers(&self, other: &UserSelect) -> bool {
        other.fields.iter().all(|f| self.fields.contains(f))
    }

    /// Also fetch each user's manager in the same request (`$expand=manager`).
    pub fn with_manager(mut self, manager: UserSelect) -> Self {
        self.manager = Some(Box::new(manager));
        self
    }

    fn apply(&self, url: GraphUrl) -> GraphUrl {
        let url = url.select(&self.fields);
        match &self.manager {
            Some(m) => url.expand(&format!("manager($select={})", m.fields.join(","))),
            None => url,
        }
    }
}

/// A directory user as the gateway returns it.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct User {
    pub id: String,
    pub display_name: Option<String>,
    pub given_name: Option<String>,
    pub surname: Option<String>,
    pub mail: Option<String>,
    pub user_principal_name: Option<String>,
    pub job_title: Option<String>,
    pub department: Option<String>,
    pub office_location: Option<String>,
    pub business_phones: Vec<String>,
    pub mobile_phone: Option<String>,
    /// The manager when it came with the user (`$expand`): `Some(None)` means "has none".
    #[serde(skip)]
    pub manager: Option<Option<Box<User>>>,
}

impl User {
    fn from_graph(user: models::User, expanded_manager: bool) -> Result<Self, ServiceError> {
        let manager = if expanded_manager {
            Some(match user.manager {
                Some(m) => Some(Box::new(User::from_graph(*m, false)?)),
                None => None,
            })
        } else {
            None
        };
        Ok(User {
            id: user.id.ok_or_else(|| missing("user id"))?,
            display_name: user.display_name,
            given_name: user.given_name,
            surname: user.surname,
            mail: user.mail,
            user_principal_name: user.user_principal_name,
            job_title: user.job_title,
            department: user.department,
            office_location: user.office_location,
            business_phones: user.business_phones,
            mobile_phone: user.mobile_phone,
            manager,
        })
    }
}

/// A directory group as the gateway returns it.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Group {
    pub id: String,
    pub display_name: Option<String>,
    pub description: Option<String>,
    pub mail: Option<String>,
    pub mail_enabled: Option<bool>,
    pub security_enabled: Option<bool>,
    /// `["Unified"]` for Microsoft 365 groups, empty for security groups.
    pub group_types: Vec<String>,
    pub visibility: Option<String>,
}

impl Group {
    fn from_graph(group: models::Group) -> Result<Self, ServiceError> {
        Ok(Group {
            id: group.id.ok_or_else(|| missing("group id"))?,
            display_name: group.display_name,
            description: group.description,
            mail: group.mail,
            mail_enabled: group.mail_enabled,
            security_enabled: group.security_enabled,
            group_types: group.group_types,
            visibility: group.visibility,
        })
    }
}

impl Session {
    /// Maps a Graph user and remembers the manager that came expanded with it, so a later
    /// `manager` lookup of the same user in this request (a manager chain whose people are
    /// in the list already) needs no Graph call.
    fn adopt(&self, user: models::User, select: &UserSelect) -> Result<User, ServiceError> {
        let user = User::from_graph(user, select.manager.is_some())?;
        if let (Some(manager_select), Some(manager)) = (&select.manager, &user.manager) {
            self.known_managers
                .lock()
                .expect("known managers lock")
                .insert(
                    user.id.to_ascii_lowercase(),
                    (manager_select.as_ref().clone(), manager.as_deref().cloned()),
                );
        }
        Ok(user)
    }

    /// A manager already seen in this request with at least the selected properties.
    fn known_manager(&self, user_id: &str, select: &UserSelect) -> Option<Option<User>> {
        let known = self.known_managers.lock().expect("known managers lock");
        let (seen_with, manager) = known.get(&user_id.to_ascii_lowercase())?;
        seen_with.covers(select).then(|| manager.clone())
    }
}

fn missing(what: &str) -> ServiceError {
    tracing::warn!("Graph answer without {what}");
    ServiceError::Upstream
}

/// Conditions on users; all given conditions must hold.
#[derive(Clone, Debug, Default)]
pub struct UserFilter {
    pub display_name_starts_with: Option<String>,
    pub given_name: Option<String>,
    pub surname: Option<String>,
    pub mail: Option<String>,
    pub user_principal_name: Option<String>,
    pub department: Option<String>,
    pub department_in: Option<Vec<String>>,
    pub job_title: Option<String>,
    pub account_enabled: Option<bool>,
}

impl UserFilter {
    /// The OData `$filter` text, or `None` when no condition is set.
    fn to_odata(&self) -> Result<Option<String>, ServiceError> {
        let mut clauses = Vec::new();
        if let Some(v) = &self.display_name_starts_with {
            clauses.push(format!("startswith(displayName,{})", odata_string(v)?));
        }
        for (property, value) in [
            ("givenName", &self.given_name),
            ("surname", &self.surname),
            ("mail", &self.mail),
            ("userPrincipalName", &self.user_principal_name),
            ("department", &self.department),
            ("jobTitle", &self.job_title),
        ] {
            if let Some(v) = value {
                clauses.push(format!("{property} eq {}", odata_string(v)?));
            }
        }
        if let Some(values) = &self.department_in {
            if values.is_empty() || values.len() > 15 {
                return Err(ServiceError::BadInput(
                    "departmentIn takes 1 to 15 values".into(),
                ));
            }
            let list = values
                .iter()
                .map(|v| odata_string(v))
                .collect::<Result<Vec<_>, _>>()?;
            clauses.push(format!("department in ({})", list.join(",")));
        }
        if let Some(enabled) = self.account_enabled {
            clauses.push(format!("accountEnabled eq {enabled}"));
        }
        Ok((!clauses.is_empty()).then(|| clauses.join(" and ")))
    }
}

/// A request for a page of users.
#[derive(Clone, Debug, Default)]
pub struct UserQuery {
    pub filter: UserFilter,
    /// Free text matched against display name and mail (Graph `$search`).
    pub search: Option<String>,
    pub first: usize,
    pub after: Option<String>,
    /// Ask Graph for the total number of matches.
    pub count: bool,
}

impl Session {
    /// One user by object id or user principal name.
    pub async fn user(&self, id: &str, select: &UserSelect) -> Result<User, ServiceError> {
        self.require("users.read")?;
        let what = format!("user '{id}'");
        let target = self.resolve_user(id)?;
        let url = select.apply(GraphUrl::root("users").id(&target)?);
        let user: models::User = self
            .get_json(GraphGet::new(url))
            .await
            .map_err(|e| self.upstream(e, &what))?;
        self.adopt(user, select)
    }

    /// The directory user with this object id (who created or changed a file), or `None`
    /// when the caller may not see users or this user, or the user no longer exists.
    /// Batched with the request's other lookups.
    pub async fn user_if_visible(
        &self,
        id: &str,
        select: &UserSelect,
    ) -> Result<Option<User>, ServiceError> {
        if !self.caller.may("users.read") || !crate::config::is_guid(id) {
            return Ok(None);
        }
        let target = match self.resolve_user(id) {
            Ok(target) => target,
            Err(ServiceError::Forbidden(_)) => return Ok(None),
            Err(e) => return Err(e),
        };
        let url = select.apply(GraphUrl::root("users").id(&target)?);
        match self.get_json::<models::User>(GraphGet::new(url)).await {
            Ok(user) => self.adopt(user, select).map(Some),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(self.upstream(e, &format!("user '{id}'"))),
        }
    }

    /// The directory user with this mail address (a message's sender), or `None` when the
    /// address is outside the tenant or outside what the caller may see: senders the
    /// caller may not address are simply not resolved, at no Graph cost.
    pub async fn user_by_address(
        &self,
        address: &str,
        select: &UserSelect,
    ) -> Result<Option<User>, ServiceError> {
        if !self.caller.may("users.read") || !super::mail_send::is_address(address) {
            return Ok(None);
        }
        let target = match self.resolve_user(address) {
            Ok(target) => target,
            Err(ServiceError::Forbidden(_)) => return Ok(None),
            Err(e) => return Err(e),
        };
        let what = format!("user '{address}'");
        if !self.caller.resources.is_all() {
            // The policy index knew the address: `target` is the user's object id.
            let url = select.apply(GraphUrl::root("users").id(&target)?);
            return match self.get_json::<models::User>(GraphGet::new(url)).await {
                Ok(user) => self.adopt(user, select).map(Some),
                Err(e) if e.is_not_found() => Ok(None),
                Err(e) => Err(self.upstream(e, &what)),
            };
        }
        // By mail or proxy address rather than `/users/{address}`: it finds people whose
        // address is not their UPN, and "nobody" is a 200 with an empty list, cached like
        // any answer, so external senders cost nothing on the next query.
        let literal = odata_string(&address.to_ascii_lowercase())?;
        let smtp = odata_string(&format!("smtp:{}", address.to_ascii_lowercase()))?;
        let url = select.apply(GraphUrl::root("users").filter(&format!(
            "mail eq {literal} or proxyAddresses/any(p:p eq {smtp})"
        )));
        let page: models::Collection<models::User> = self
            .get_json(GraphGet::new(url))
            .await
            .map_err(|e| self.upstream(e, &what))?;
        match page.value.into_iter().next() {
            Some(user) => self.adopt(user, select).map(Some),
            None => Ok(None),
        }
    }

    /// A user known only by the identifier the caller gave, without asking Graph: enough
    /// when the query reads nothing of the user but their mailbox (the mail calls check
    /// the policy and address the mailbox themselves). `me` is the user the caller acts for.
    pub fn mailbox_owner(&self, id: &str) -> Result<User, ServiceError> {
        let (_, key) = self.mailbox(id)?;
        Ok(User {
            id: key,
            display_name: None,
            given_name: None,
            surname: None,
            mail: None,
            user_principal_name: None,
            job_title: None,
            department: None,
            office_location: None,
            business_phones: Vec::new(),
            mobile_phone: None,
            manager: None,
        })
    }

    /// The user the caller acts for.
    pub async fn me(&self, select: &UserSelect) -> Result<User, ServiceError> {
        if self.is_delegated() {
            // Graph's own `/me`: the user whose delegated token this is.
            self.require("users.read")?;
            let url = select.apply(GraphUrl::root("me"));
            let user: models::User = self
                .get_json(GraphGet::new(url))
                .await
                .map_err(|e| self.upstream(e, "the signed-in user"))?;
            return self.adopt(user, select);
        }
        let user = self.caller.user.clone().ok_or_else(|| {
            ServiceError::Forbidden(format!(
                "caller '{}' acts as an application, not for a user, so it has no 'me'",
                self.caller.name
            ))
        })?;
        self.user(&user, select).await
    }

    /// A user's manager, or `None` for the top of the organisation.
    ///
    /// Asked as `/users/{id}?$expand=manager` rather than `/users/{id}/manager`: the
    /// former answers 200 with or without a manager, so "no manager" is a cacheable
    /// success instead of a 404 that would be fetched again on every query.
    pub async fn manager(
        &self,
        user_id: &str,
        select: &UserSelect,
    ) -> Result<Option<User>, ServiceError> {
        self.require("users.read")?;
        let target = self.resolve_user(user_id)?;
        if let Some(known) = self.known_manager(&target, select) {
            return Ok(known);
        }
        let wrapper = UserSelect::from_names([]).with_manager(select.clone());
        let user = self.user(user_id, &wrapper).await?;
        Ok(user.manager.flatten().map(|m| *m))
    }

    /// A page of users matching a filter and/or search.
    pub async fn users(
        &self,
        query: &UserQuery,
        select: &UserSelect,
    ) -> Result<Page<User>, ServiceError> {
        self.require("users.read")?;
        self.require_all_users()?;
        let top = check_first(query.first)?;
        let mut url = select.apply(GraphUrl::root("users")).top(top);
        // Advanced queries ($search, $count) need `ConsistencyLevel: eventual`.
        let mut eventual = false;
        if let Some(filter) = query.filter.to_odata()? {
            url = url.filter(&filter);
        }
        if let Some(text) = query
            .search
            .as_deref()
            .map(str::trim)
            .filter(|t| !t.is_empty())
        {
            if text.len() > 200 {
                return Err(ServiceError::BadInput(
                    "search is limited to 200 characters".into(),
                ));
            }
            let clause = format!(
                "{} OR {}",
                search_clause("displayName", text)?,
                search_clause("mail", text)?
            );
            url = url.search(&clause);
            eventual = true;
        }
        if query.count {
            url = url.count();
            eventual = true;
        }
        let page = self
            .page::<models::User>(
                GraphGet::new(url).eventual(eventual),
                "/users",
                query.first,
                query.after.as_deref(),
                "users",
            )
            .await?;
        page.map(|u| self.adopt(u, select))
    }

    /// A page of a user's direct reports (users only; org contacts are skipped by the cast).
    pub async fn direct_reports(
        &self,
        user_id: &str,
        select: &UserSelect,
        first: usize,
        after: Option<&str>,
    ) -> Result<Page<User>, ServiceError> {
        self.require("users.read")?;
        let top = check_first(first)?;
        let target = self.resolve_user(user_id)?;
        let base = GraphUrl::root("users")
            .id(&target)?
            .then("directReports")
            .then("microsoft.graph.user");
        let path = base.path().to_owned();
        let url = select.apply(base).top(top);
        let what = format!("direct reports of user '{user_id}'");
        self.page::<models::User>(GraphGet::new(url), &path, first, after, &what)
            .await?
            .map(|u| self.adopt(u, select))
    }

    /// A page of the groups a user is a direct member of.
    pub async fn member_of(
        &self,
        user_id: &str,
        first: usize,
        after: Option<&str>,
    ) -> Result<Page<Group>, ServiceError> {
        self.require("users.read")?;
        self.require("groups.read")?;
        let top = check_first(first)?;
        let target = self.resolve_user(user_id)?;
        let base = GraphUrl::root("users")
            .id(&target)?
            .then("memberOf")
            .then("microsoft.graph.group");
        let path = base.path().to_owned();
        let url = base.select(GROUP_FIELDS).top(top);
        let what = format!("groups of user '{user_id}'");
        self.page::<models::Group>(GraphGet::new(url), &path, first, after, &what)
            .await?
            .map(Group::from_graph)
    }

    /// One group by object id.
    pub async fn group(&self, id: &str) -> Result<Group, ServiceError> {
        self.require("groups.read")?;
        let url = GraphUrl::root("groups").id(id)?.select(GROUP_FIELDS);
        let group: models::Group = self
            .get_json(GraphGet::new(url))
            .await
            .map_err(|e| self.upstream(e, &format!("group '{id}'")))?;
        Group::from_graph(group)
    }

    /// A page of a group's user members.
    pub async fn group_members(
        &self,
        group_id: &str,
        select: &UserSelect,
        first: usize,
        after: Option<&str>,
    ) -> Result<Page<User>, ServiceError> {
        self.require("groups.read")?;
        self.require("users.read")?;
        let top = check_first(first)?;
        let base = GraphUrl::root("groups")
            .id(group_id)?
            .then("members")
            .then("microsoft.graph.user");
        let path = base.path().to_owned();
        let url = select.apply(base).top(top);
        let what = format!("members of group '{group_id}'");
        self.page::<models::User>(GraphGet::new(url), &path, first, after, &what)
            .await?
            .map(|u| self.adopt(u, select))
    }
}
