//! The directory's entity types as Graph exposes them: property names, default property
//! sets, what `$filter` / `$orderby` / `$search` support per property, and rendering.

use serde_json::{Map, Value, json};

use super::errors::GraphError;
use crate::TENANT_DOMAIN;
use crate::tenant::{DirObj, DirectoryRole, E3_SKU_ID, Group, Tenant, User};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    User,
    Group,
    DirectoryRole,
    /// A mixed collection (memberOf, members, directReports): any of the above.
    DirectoryObject,
}

impl Kind {
    /// `microsoft.graph.user`, as in `@odata.type` and error messages.
    pub fn type_name(self) -> &'static str {
        match self {
            Kind::User => "microsoft.graph.user",
            Kind::Group => "microsoft.graph.group",
            Kind::DirectoryRole => "microsoft.graph.directoryRole",
            Kind::DirectoryObject => "microsoft.graph.directoryObject",
        }
    }

    /// `User`, as the directory names resources in its error messages.
    pub fn resource_name(self) -> &'static str {
        match self {
            Kind::User => "User",
            Kind::Group => "Group",
            Kind::DirectoryRole => "DirectoryRole",
            Kind::DirectoryObject => "DirectoryObject",
        }
    }

    pub fn of(obj: DirObj) -> Kind {
        match obj {
            DirObj::User(_) => Kind::User,
            DirObj::Group(_) => Kind::Group,
            DirObj::Role(_) => Kind::DirectoryRole,
        }
    }

    /// The concrete kinds a collection of this kind may hold.
    fn members(self) -> &'static [Kind] {
        match self {
            Kind::User => &[Kind::User],
            Kind::Group => &[Kind::Group],
            Kind::DirectoryRole => &[Kind::DirectoryRole],
            Kind::DirectoryObject => &[Kind::User, Kind::Group, Kind::DirectoryRole],
        }
    }

    fn properties(self) -> &'static [&'static str] {
        match self {
            Kind::User => USER_PROPERTIES,
            Kind::Group => GROUP_PROPERTIES,
            Kind::DirectoryRole => ROLE_PROPERTIES,
            Kind::DirectoryObject => &["id", "deletedDateTime"],
        }
    }

    fn defaults(self) -> &'static [&'static str] {
        match self {
            Kind::User => USER_DEFAULT_PROPERTIES,
            Kind::Group => GROUP_DEFAULT_PROPERTIES,
            Kind::DirectoryRole => ROLE_PROPERTIES,
            Kind::DirectoryObject => &["id", "deletedDateTime"],
        }
    }

    fn filter_properties(self) -> &'static [FilterProp] {
        match self {
            Kind::User => USER_FILTER,
            Kind::Group => GROUP_FILTER,
            Kind::DirectoryRole => ROLE_FILTER,
            Kind::DirectoryObject => &[],
        }
    }
}

/// Returned without `$select` (user-get, user-list: "Default user properties").
pub(crate) const USER_DEFAULT_PROPERTIES: &[&str] = &[
    "businessPhones",
    "displayName",
    "givenName",
    "id",
    "jobTitle",
    "mail",
    "mobilePhone",
    "officeLocation",
    "preferredLanguage",
    "surname",
    "userPrincipalName",
];

/// Every v1.0 user property `$select` accepts. Unpopulated ones come back null (or []).
const USER_PROPERTIES: &[&str] = &[
    "aboutMe",
    "accountEnabled",
    "ageGroup",
    "assignedLicenses",
    "assignedPlans",
    "birthday",
    "businessPhones",
    "city",
    "companyName",
    "consentProvidedForMinor",
    "country",
    "createdDateTime",
    "creationType",
    "deletedDateTime",
    "department",
    "displayName",
    "employeeHireDate",
    "employeeId",
    "employeeLeaveDateTime",
    "employeeType",
    "externalUserState",
    "externalUserStateChangeDateTime",
    "faxNumber",
    "givenName",
    "hireDate",
    "id",
    "identities",
    "imAddresses",
    "interests",
    "isResourceAccount",
    "jobTitle",
    "lastPasswordChangeDateTime",
    "legalAgeGroupClassification",
    "licenseAssignmentStates",
    "mail",
    "mailNickname",
    "mobilePhone",
    "mySite",
    "officeLocation",
    "onPremisesDistinguishedName",
    "onPremisesDomainName",
    "onPremisesImmutableId",
    "onPremisesLastSyncDateTime",
    "onPremisesSamAccountName",
    "onPremisesSecurityIdentifier",
    "onPremisesSyncEnabled",
    "onPremisesUserPrincipalName",
    "otherMails",
    "passwordPolicies",
    "pastProjects",
    "postalCode",
    "preferredDataLocation",
    "preferredLanguage",
    "preferredName",
    "provisionedPlans",
    "proxyAddresses",
    "responsibilities",
    "schools",
    "securityIdentifier",
    "showInAddressList",
    "signInSessionsValidFromDateTime",
    "skills",
    "state",
    "streetAddress",
    "surname",
    "usageLocation",
    "userPrincipalName",
    "userType",
];

/// Collection-valued user properties: unpopulated ones are `[]`, not null.
const USER_COLLECTIONS: &[&str] = &[
    "assignedLicenses",
    "assignedPlans",
    "businessPhones",
    "identities",
    "imAddresses",
    "interests",
    "licenseAssignmentStates",
    "otherMails",
    "pastProjects",
    "provisionedPlans",
    "proxyAddresses",
    "responsibilities",
    "schools",
    "skills",
];

const GROUP_PROPERTIES: &[&str] = &[
    "id",
    "deletedDateTime",
    "classification",
    "createdDateTime",
    "creationOptions",
    "description",
    "displayName",
    "expirationDateTime",
    "groupTypes",
    "isAssignableToRole",
    "mail",
    "mailEnabled",
    "mailNickname",
    "membershipRule",
    "membershipRuleProcessingState",
    "onPremisesDomainName",
    "onPremisesLastSyncDateTime",
    "onPremisesNetBiosName",
    "onPremisesSamAccountName",
    "onPremisesSecurityIdentifier",
    "onPremisesSyncEnabled",
    "preferredDataLocation",
    "preferredLanguage",
    "proxyAddresses",
    "renewedDateTime",
    "resourceBehaviorOptions",
    "resourceProvisioningOptions",
    "securityEnabled",
    "securityIdentifier",
    "theme",
    "visibility",
];

/// Groups return their full standard set by default.
const GROUP_DEFAULT_PROPERTIES: &[&str] = GROUP_PROPERTIES;

const GROUP_COLLECTIONS: &[&str] = &[
    "creationOptions",
    "groupTypes",
    "proxyAddresses",
    "resourceBehaviorOptions",
    "resourceProvisioningOptions",
];

const ROLE_PROPERTIES: &[&str] = &[
    "id",
    "deletedDateTime",
    "description",
    "displayName",
    "roleTemplateId",
];

/// Resolves a property name case-insensitively to its canonical spelling.
pub(crate) fn canonical_property(kind: Kind, name: &str) -> Option<&'static str> {
    kind.members()
        .iter()
        .flat_map(|k| k.properties().iter())
        .find(|p| p.eq_ignore_ascii_case(name))
        .copied()
}

pub(crate) fn unknown_property(kind: Kind, name: &str) -> GraphError {
    GraphError::bad_request(format!(
        "Could not find a property named '{name}' on type '{}'.",
        kind.type_name()
    ))
}

/// The outcome of `$select`.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub(crate) enum Selection {
    /// No `$select`: each type's default property set.
    #[default]
    Default,
    /// Exactly these properties (canonical names), in the order given.
    Props(Vec<&'static str>),
}

impl Selection {
    pub fn parse(raw: &str, kind: Kind) -> Result<Selection, GraphError> {
        let mut props = Vec::new();
        for name in raw.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            if name == "*" {
                return Ok(Selection::Props(
                    kind.members()
                        .first()
                        .map(|k| k.properties())
                        .unwrap_or(&[])
                        .to_vec(),
                ));
            }
            let canonical =
                canonical_property(kind, name).ok_or_else(|| unknown_property(kind, name))?;
            if !props.contains(&canonical) {
                props.push(canonical);
            }
        }
        if props.is_empty() {
            Ok(Selection::Default)
        } else {
            Ok(Selection::Props(props))
        }
    }

    /// The names as they appear in `@odata.context`, e.g. `id,displayName`.
    pub fn context_suffix(&self) -> Option<String> {
        match self {
            Selection::Default => None,
            Selection::Props(p) => Some(p.join(",")),
        }
    }
}

/// A single property of any directory object, or `None` when its type lacks the property.
pub(crate) fn object_property(tenant: &Tenant, obj: DirObj, name: &str) -> Option<Value> {
    match obj {
        DirObj::User(i) => USER_PROPERTIES
            .contains(&name)
            .then(|| user_property(&tenant.users[i], name)),
        DirObj::Group(i) => GROUP_PROPERTIES
            .contains(&name)
            .then(|| group_property(&tenant.groups[i], name)),
        DirObj::Role(i) => ROLE_PROPERTIES
            .contains(&name)
            .then(|| role_property(&tenant.roles[i], name)),
    }
}

/// Renders a directory object with the properties `selection` asks for.
pub(crate) fn render(
    tenant: &Tenant,
    obj: DirObj,
    selection: &Selection,
    with_type: bool,
) -> Map<String, Value> {
    let kind = Kind::of(obj);
    let mut out = Map::new();
    if with_type {
        out.insert(
            "@odata.type".into(),
            Value::String(format!("#{}", kind.type_name())),
        );
    }
    let names: &[&'static str] = match selection {
        Selection::Default => kind.defaults(),
        Selection::Props(p) => p,
    };
    for &name in names {
        if let Some(value) = object_property(tenant, obj, name) {
            out.insert(name.to_string(), value);
        }
    }
    out
}

fn opt(v: &Option<String>) -> Value {
    v.as_ref().map_or(Value::Null, |s| Value::String(s.clone()))
}

fn strings(v: &[String]) -> Value {
    Value::Array(v.iter().map(|s| Value::String(s.clone())).collect())
}

pub(crate) fn user_property(u: &User, name: &str) -> Value {
    match name {
        "id" => Value::String(u.id.clone()),
        "displayName" => Value::String(u.display_name.clone()),
        "givenName" => opt(&u.given_name),
        "surname" => opt(&u.surname),
        "mail" => opt(&u.mail),
        "mailNickname" => Value::String(u.mail_nickname.clone()),
        "userPrincipalName" => Value::String(u.user_principal_name.clone()),
        "jobTitle" => opt(&u.job_title),
        "department" => opt(&u.department),
        "officeLocation" => opt(&u.office_location),
        "businessPhones" => strings(&u.business_phones),
        "mobilePhone" => opt(&u.mobile_phone),
        "preferredLanguage" => opt(&u.preferred_language),
        "accountEnabled" => Value::Bool(u.account_enabled),
        "userType" => Value::String(u.user_type.to_string()),
        "companyName" => opt(&u.company_name),
        "employeeId" => opt(&u.employee_id),
        "streetAddress" => opt(&u.street_address),
        "city" => opt(&u.city),
        "state" => opt(&u.state),
        "postalCode" => opt(&u.postal_code),
        "country" => opt(&u.country),
        "usageLocation" => opt(&u.usage_location),
        "createdDateTime" => Value::String(u.created_date_time.clone()),
        "creationType" => u
            .creation_type
            .map_or(Value::Null, |s| Value::String(s.to_string())),
        "externalUserState" => {
            if u.user_type == "Guest" {
                Value::String("Accepted".into())
            } else {
                Value::Null
            }
        }
        "otherMails" => strings(&u.other_mails),
        "proxyAddresses" => strings(&u.proxy_addresses),
        "signInSessionsValidFromDateTime" => Value::String(u.sign_in_sessions_valid_from.clone()),
        "identities" => {
            let issuer = if u.user_type == "Guest" {
                "ExternalAzureAD"
            } else {
                TENANT_DOMAIN
            };
            json!([{
                "signInType": "userPrincipalName",
                "issuer": issuer,
                "issuerAssignedId": u.user_principal_name,
            }])
        }
        "assignedLicenses" => {
            if u.account_enabled && u.user_type == "Member" {
                json!([{"disabledPlans": [], "skuId": E3_SKU_ID}])
            } else {
                json!([])
            }
        }
        "showInAddressList" => Value::Null,
        "isResourceAccount" => Value::Null,
        other if USER_COLLECTIONS.contains(&other) => json!([]),
        _ => Value::Null,
    }
}

pub(crate) fn group_property(g: &Group, name: &str) -> Value {
    match name {
        "id" => Value::String(g.id.clone()),
        "displayName" => Value::String(g.display_name.clone()),
        "description" => opt(&g.description),
        "mail" => opt(&g.mail),
        "mailNickname" => Value::String(g.mail_nickname.clone()),
        "mailEnabled" => Value::Bool(g.mail_enabled),
        "securityEnabled" => Value::Bool(g.security_enabled),
        "groupTypes" => json!(g.group_types),
        "visibility" => g
            .visibility
            .map_or(Value::Null, |v| Value::String(v.to_string())),
        "createdDateTime" => Value::String(g.created_date_time.clone()),
        "renewedDateTime" => Value::String(g.created_date_time.clone()),
        "isAssignableToRole" => Value::Null,
        "proxyAddresses" => match &g.mail {
            Some(mail) => json!([format!("SMTP:{mail}")]),
            None => json!([]),
        },
        "securityIdentifier" => {
            // A stable, SID-shaped value derived from the object id.
            let digits: String =
                g.id.chars()
                    .filter(|c| c.is_ascii_digit())
                    .take(9)
                    .collect();
            Value::String(format!("S-1-12-1-{digits}"))
        }
        other if GROUP_COLLECTIONS.contains(&other) => json!([]),
        _ => Value::Null,
    }
}

pub(crate) fn role_property(r: &DirectoryRole, name: &str) -> Value {
    match name {
        "id" => Value::String(r.id.clone()),
        "displayName" => Value::String(r.display_name.to_string()),
        "description" => Value::String(r.description.to_string()),
        "roleTemplateId" => Value::String(r.role_template_id.to_string()),
        _ => Value::Null,
    }
}

// ---------------------------------------------------------------------------------------
// What the directory supports per property (graph-protocol.md §5.4).

/// Whether an operator works on a property: never, always, or only as an advanced query
/// (`ConsistencyLevel: eventual` plus `$count=true`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Support {
    No,
    Default,
    Advanced,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PropType {
    String,
    Bool,
    Guid,
    DateTime,
    /// A collection, filterable only through a lambda (`any`).
    Collection,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SearchMode {
    No,
    /// Word-wise prefix match (displayName, description).
    Tokenized,
    /// Prefix match on the whole value.
    StartsWith,
}

#[derive(Clone, Copy, Debug)]
pub(crate) struct FilterProp {
    pub name: &'static str,
    pub ty: PropType,
    pub eq: Support,
    pub in_list: Support,
    pub starts_with: Support,
    pub ends_with: Support,
    pub range: Support,
    pub null: Support,
    pub any: Support,
    pub sort: Support,
    pub search: SearchMode,
}

impl FilterProp {
    /// A directory string with the default support of displayName & co.
    const fn text(name: &'static str) -> Self {
        FilterProp {
            name,
            ty: PropType::String,
            eq: Support::Default,
            in_list: Support::Default,
            starts_with: Support::Default,
            ends_with: Support::No,
            range: Support::Default,
            null: Support::Advanced,
            any: Support::No,
            sort: Support::Advanced,
            search: SearchMode::StartsWith,
        }
    }

    /// A string that works only in advanced queries (officeLocation, mobilePhone, ...).
    const fn advanced_text(name: &'static str) -> Self {
        FilterProp {
            eq: Support::Advanced,
            in_list: Support::Advanced,
            starts_with: Support::Advanced,
            range: Support::Advanced,
            ..Self::text(name)
        }
    }

    const fn exact(name: &'static str, ty: PropType) -> Self {
        FilterProp {
            name,
            ty,
            eq: Support::Default,
            in_list: Support::Default,
            starts_with: Support::No,
            ends_with: Support::No,
            range: Support::No,
            null: Support::No,
            any: Support::No,
            sort: Support::No,
            search: SearchMode::No,
        }
    }

    const fn collection(name: &'static str, any: Support) -> Self {
        FilterProp {
            eq: Support::No,
            in_list: Support::No,
            any,
            ..Self::exact(name, PropType::Collection)
        }
    }

    const fn ends_advanced(self) -> Self {
        FilterProp {
            ends_with: Support::Advanced,
            ..self
        }
    }

    const fn sort_default(self) -> Self {
        FilterProp {
            sort: Support::Default,
            ..self
        }
    }

    const fn tokenized(self) -> Self {
        FilterProp {
            search: SearchMode::Tokenized,
            ..self
        }
    }
}

const USER_FILTER: &[FilterProp] = &[
    FilterProp::text("displayName").sort_default().tokenized(),
    FilterProp::text("givenName"),
    FilterProp::text("surname"),
    FilterProp::text("department"),
    FilterProp::text("jobTitle"),
    FilterProp::text("mail").ends_advanced(),
    FilterProp::text("mailNickname"),
    FilterProp::text("userPrincipalName")
        .ends_advanced()
        .sort_default(),
    FilterProp::text("city"),
    FilterProp::text("country"),
    FilterProp::text("employeeId"),
    FilterProp::text("usageLocation"),
    FilterProp::text("state"),
    FilterProp::advanced_text("officeLocation"),
    FilterProp::advanced_text("companyName"),
    FilterProp::advanced_text("mobilePhone"),
    FilterProp {
        null: Support::Advanced,
        ..FilterProp::exact("userType", PropType::String)
    },
    FilterProp::exact("accountEnabled", PropType::Bool),
    FilterProp::exact("id", PropType::Guid),
    FilterProp {
        range: Support::Default,
        in_list: Support::Advanced,
        sort: Support::Advanced,
        ..FilterProp::exact("createdDateTime", PropType::DateTime)
    },
    FilterProp::collection("businessPhones", Support::Advanced),
    FilterProp::collection("otherMails", Support::Default),
    FilterProp::collection("proxyAddresses", Support::Default),
    FilterProp::collection("identities", Support::Default),
    FilterProp::collection("assignedLicenses", Support::Default),
    FilterProp::collection("imAddresses", Support::Default),
];

const GROUP_FILTER: &[FilterProp] = &[
    FilterProp::text("displayName").sort_default().tokenized(),
    FilterProp::text("mail"),
    FilterProp::text("mailNickname"),
    FilterProp {
        search: SearchMode::Tokenized,
        ..FilterProp::advanced_text("description")
    },
    FilterProp::exact("mailEnabled", PropType::Bool),
    FilterProp::exact("securityEnabled", PropType::Bool),
    FilterProp::exact("id", PropType::Guid),
    FilterProp::exact("visibility", PropType::String),
    FilterProp {
        range: Support::Default,
        sort: Support::Advanced,
        ..FilterProp::exact("createdDateTime", PropType::DateTime)
    },
    FilterProp::collection("groupTypes", Support::Default),
    FilterProp::collection("proxyAddresses", Support::Default),
];

const ROLE_FILTER: &[FilterProp] = &[
    FilterProp::text("displayName").sort_default().tokenized(),
    FilterProp::exact("roleTemplateId", PropType::Guid),
    FilterProp::exact("id", PropType::Guid),
];

/// The filter/sort/search capabilities of `name` on `kind` (case-insensitive), if any.
/// For mixed collections the first concrete type that has the property decides.
pub(crate) fn filter_property(kind: Kind, name: &str) -> Option<&'static FilterProp> {
    kind.members()
        .iter()
        .flat_map(|k| k.filter_properties().iter())
        .find(|p| p.name.eq_ignore_ascii_case(name))
}
