//! Graph URL paths → routes. Hand-written rather than an axum `Router` so that direct
//! calls and `$batch` items share one dispatcher, and so unknown segments get Graph's own
//! "Resource not found for the segment" error.

use axum::http::Method;
use percent_encoding::percent_decode_str;

use super::auth::{self, Permission};
use super::calendar::routes::{self as calendar_routes, CalendarRoute};
use super::errors::GraphError;
use super::files::routes::{self as files_routes, FilesRoute};
use super::mail::routes::{self as mail_routes, MailRoute};

/// Whose user resource a path names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Subject {
    /// `/me`: the signed-in user of a delegated token.
    Me,
    /// `/users/{id | userPrincipalName}`, percent-decoded.
    User(String),
}

/// An OData type-cast segment such as `microsoft.graph.user`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Cast {
    User,
    Group,
    DirectoryRole,
}

impl Cast {
    fn segment(self) -> &'static str {
        match self {
            Cast::User => "microsoft.graph.user",
            Cast::Group => "microsoft.graph.group",
            Cast::DirectoryRole => "microsoft.graph.directoryRole",
        }
    }
}

/// The relationship collections of a user or group.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Relation {
    DirectReports,
    MemberOf,
    /// Groups reached through nested memberships too, and directory roles.
    TransitiveMemberOf,
    Members,
    /// Members of nested groups too (users and the nested groups themselves).
    TransitiveMembers,
}

impl Relation {
    fn segment(self) -> &'static str {
        match self {
            Relation::DirectReports => "directReports",
            Relation::MemberOf => "memberOf",
            Relation::TransitiveMemberOf => "transitiveMemberOf",
            Relation::Members => "members",
            Relation::TransitiveMembers => "transitiveMembers",
        }
    }

    fn casts(self) -> &'static [Cast] {
        match self {
            Relation::DirectReports => &[Cast::User],
            Relation::MemberOf | Relation::TransitiveMemberOf => {
                &[Cast::Group, Cast::DirectoryRole]
            }
            Relation::Members | Relation::TransitiveMembers => &[Cast::User, Cast::Group],
        }
    }

    fn is_membership(self) -> bool {
        matches!(self, Relation::MemberOf | Relation::TransitiveMemberOf)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Route {
    Batch,
    Users {
        count: bool,
    },
    User(Subject),
    Manager(Subject),
    UserRelation {
        subject: Subject,
        relation: Relation,
        cast: Option<Cast>,
        count: bool,
    },
    Groups {
        count: bool,
    },
    Group(String),
    GroupRelation {
        group: String,
        relation: Relation,
        cast: Option<Cast>,
        count: bool,
    },
    DirectoryRoles,
    DirectoryRole(String),
    RoleMembers(String),
    /// `POST /users/{id}/revokeSignInSessions`.
    RevokeSessions(Subject),
    /// Outlook mail: `/users/{id}/messages`, `/mailFolders`, `/sendMail`, ... (and `/me/...`).
    Mail {
        subject: Subject,
        route: MailRoute,
    },
    /// Calendars, events, `calendarView`, `getSchedule`, contacts, `mailboxSettings`.
    Calendar {
        subject: Subject,
        route: CalendarRoute,
    },
    /// OneDrive and SharePoint: drives, driveItems, sites (permissions are checked per drive
    /// by the handler).
    Files(FilesRoute),
    /// `/subscriptions` (permissions depend on the subscribed resource: the handler checks).
    Subscriptions,
    /// `/subscriptions/{id}`.
    Subscription(String),
}

impl Route {
    /// The route template used as the stats key, e.g. `/users/{id}/memberOf/microsoft.graph.group`.
    pub fn template(&self) -> String {
        fn subject(s: &Subject) -> &'static str {
            match s {
                Subject::Me => "/me",
                Subject::User(_) => "/users/{id}",
            }
        }
        fn tail(relation: Relation, cast: Option<Cast>, count: bool) -> String {
            let mut t = format!("/{}", relation.segment());
            if let Some(c) = cast {
                t.push('/');
                t.push_str(c.segment());
            }
            if count {
                t.push_str("/$count");
            }
            t
        }
        match self {
            Route::Batch => "/$batch".to_string(),
            Route::Users { count: false } => "/users".to_string(),
            Route::Users { count: true } => "/users/$count".to_string(),
            Route::User(s) => subject(s).to_string(),
            Route::Manager(s) => format!("{}/manager", subject(s)),
            Route::UserRelation {
                subject: s,
                relation,
                cast,
                count,
            } => format!("{}{}", subject(s), tail(*relation, *cast, *count)),
            Route::Groups { count: false } => "/groups".to_string(),
            Route::Groups { count: true } => "/groups/$count".to_string(),
            Route::Group(_) => "/groups/{id}".to_string(),
            Route::GroupRelation {
                relation,
                cast,
                count,
                ..
            } => format!("/groups/{{id}}{}", tail(*relation, *cast, *count)),
            Route::DirectoryRoles => "/directoryRoles".to_string(),
            Route::DirectoryRole(_) => "/directoryRoles/{id}".to_string(),
            Route::RoleMembers(_) => "/directoryRoles/{id}/members".to_string(),
            Route::RevokeSessions(s) => format!("{}/revokeSignInSessions", subject(s)),
            Route::Mail { subject: s, route } => format!("{}{}", subject(s), route.template()),
            Route::Calendar { subject: s, route } => {
                format!("{}{}", subject(s), route.template())
            }
            Route::Files(route) => route.template(),
            Route::Subscriptions => "/subscriptions".to_string(),
            Route::Subscription(_) => "/subscriptions/{id}".to_string(),
        }
    }

    /// The user a route is about, when it names one by id or UPN.
    pub fn user_key(&self) -> Option<&str> {
        match self {
            Route::User(Subject::User(key))
            | Route::Manager(Subject::User(key))
            | Route::RevokeSessions(Subject::User(key))
            | Route::Mail {
                subject: Subject::User(key),
                ..
            }
            | Route::Calendar {
                subject: Subject::User(key),
                ..
            }
            | Route::UserRelation {
                subject: Subject::User(key),
                ..
            } => Some(key),
            _ => None,
        }
    }

    /// The permission of the same route addressed as `/me`: a delegated caller addressing
    /// itself by id or UPN needs only what `/me` needs (`User.Read` for `/users/{own id}`).
    pub fn self_permission(&self, method: &Method) -> Option<&'static Permission> {
        let me = match self {
            Route::Mail {
                subject: Subject::User(_),
                route,
            } => return Some(route.permission(method, true)),
            Route::Calendar {
                subject: Subject::User(_),
                route,
            } => return Some(route.permission(method, true)),
            Route::User(Subject::User(_)) => Route::User(Subject::Me),
            Route::Manager(Subject::User(_)) => Route::Manager(Subject::Me),
            Route::RevokeSessions(Subject::User(_)) => Route::RevokeSessions(Subject::Me),
            Route::UserRelation {
                subject: Subject::User(_),
                relation,
                cast,
                count,
            } => Route::UserRelation {
                subject: Subject::Me,
                relation: *relation,
                cast: *cast,
                count: *count,
            },
            _ => return None,
        };
        Some(me.permission())
    }

    /// Every directory route here is read-only; `$batch` is POST; mail routes say.
    pub fn check_method(&self, method: &Method) -> Result<(), GraphError> {
        let allowed = match self {
            Route::Mail { route, .. } => return route.check_method(method),
            Route::Calendar { route, .. } => return route.check_method(method),
            Route::Files(route) => return route.check_method(method),
            Route::Batch | Route::RevokeSessions(_) => method == Method::POST,
            Route::Subscriptions => method == Method::GET || method == Method::POST,
            Route::Subscription(_) => {
                method == Method::GET || method == Method::PATCH || method == Method::DELETE
            }
            _ => method == Method::GET,
        };
        if allowed {
            Ok(())
        } else {
            Err(GraphError::method_not_allowed())
        }
    }

    /// The permission a request with `method` needs (only mail routes depend on the method).
    pub fn permission_for(&self, method: &Method) -> &'static Permission {
        match self {
            Route::Mail { subject, route } => route.permission(method, *subject == Subject::Me),
            Route::Calendar { subject, route } => route.permission(method, *subject == Subject::Me),
            Route::Files(_) | Route::Subscriptions | Route::Subscription(_) => &auth::NO_PERMISSION,
            _ => self.permission(),
        }
    }

    /// The 403 a caller without the permission gets: Exchange words it its own way.
    pub fn access_denied(&self) -> GraphError {
        match self {
            Route::Mail { .. } | Route::Calendar { .. } => super::mail::access_denied(),
            Route::Files(_) => super::files::access_denied(),
            _ => GraphError::insufficient_privileges(),
        }
    }

    pub fn permission(&self) -> &'static Permission {
        let me = |s: &Subject| *s == Subject::Me;
        match self {
            Route::Mail { subject, route } => route.permission(&Method::GET, me(subject)),
            Route::Calendar { subject, route } => route.permission(&Method::GET, me(subject)),
            Route::Batch | Route::Files(_) | Route::Subscriptions | Route::Subscription(_) => {
                &auth::NO_PERMISSION
            }
            Route::RevokeSessions(_) => &auth::REVOKE_SESSIONS,
            Route::Users { .. } => &auth::READ_USERS,
            Route::User(s) | Route::Manager(s) if me(s) => &auth::READ_ME,
            Route::User(_) | Route::Manager(_) => &auth::READ_USERS,
            Route::UserRelation {
                subject, relation, ..
            } if me(subject) && relation.is_membership() => &auth::READ_MY_MEMBERSHIPS,
            Route::UserRelation { relation, .. } if relation.is_membership() => {
                &auth::READ_MEMBERSHIPS
            }
            Route::UserRelation { subject, .. } if me(subject) => &auth::READ_ME,
            Route::UserRelation { .. } => &auth::READ_USERS,
            Route::Groups { .. } | Route::Group(_) | Route::GroupRelation { .. } => {
                &auth::READ_GROUPS
            }
            Route::DirectoryRoles | Route::DirectoryRole(_) | Route::RoleMembers(_) => {
                &auth::READ_ROLES
            }
        }
    }
}

fn decode(segment: &str) -> String {
    percent_decode_str(segment).decode_utf8_lossy().into_owned()
}

fn is(segment: &str, name: &str) -> bool {
    segment.eq_ignore_ascii_case(name)
}

/// Resolves a path below `/v1.0` (e.g. `/users/abc/memberOf`).
pub(crate) fn resolve(path: &str) -> Result<Route, GraphError> {
    // Drive paths address items by path (`root:/a/b:`), so they are parsed whole.
    if let Some(files) = files_routes::resolve(path) {
        return files.map(Route::Files);
    }
    let mut segments: Vec<String> = path.split('/').skip(1).map(decode).collect();
    // A trailing slash is harmless.
    if segments.last().is_some_and(|s| s.is_empty()) && segments.len() > 1 {
        segments.pop();
    }
    let segs: Vec<&str> = segments.iter().map(String::as_str).collect();
    match segs.as_slice() {
        ["$batch"] => Ok(Route::Batch),
        [subs] if is(subs, "subscriptions") => Ok(Route::Subscriptions),
        [subs, id] if is(subs, "subscriptions") => Ok(Route::Subscription((*id).to_string())),
        [subs, _, other, ..] if is(subs, "subscriptions") => {
            Err(GraphError::segment_not_found(other))
        }
        [users, rest @ ..] if is(users, "users") => match rest {
            [] => Ok(Route::Users { count: false }),
            ["$count"] => Ok(Route::Users { count: true }),
            [id, rest @ ..] => user_route(Subject::User((*id).to_string()), rest),
        },
        [me, rest @ ..] if is(me, "me") => user_route(Subject::Me, rest),
        [groups, rest @ ..] if is(groups, "groups") => match rest {
            [] => Ok(Route::Groups { count: false }),
            ["$count"] => Ok(Route::Groups { count: true }),
            [id] => Ok(Route::Group((*id).to_string())),
            [id, relation, rest @ ..]
                if is(relation, "members") || is(relation, "transitiveMembers") =>
            {
                let relation = if is(relation, "members") {
                    Relation::Members
                } else {
                    Relation::TransitiveMembers
                };
                let (cast, count) = relation_tail(relation, rest)?;
                Ok(Route::GroupRelation {
                    group: (*id).to_string(),
                    relation,
                    cast,
                    count,
                })
            }
            [_, other, ..] => Err(GraphError::segment_not_found(other)),
        },
        [roles, rest @ ..] if is(roles, "directoryRoles") => match rest {
            [] => Ok(Route::DirectoryRoles),
            [id] => Ok(Route::DirectoryRole((*id).to_string())),
            [id, members] if is(members, "members") => Ok(Route::RoleMembers((*id).to_string())),
            [_, other, ..] => Err(GraphError::segment_not_found(other)),
        },
        [first, ..] => Err(GraphError::segment_not_found(first)),
        [] => Err(GraphError::segment_not_found("")),
    }
}

fn user_route(subject: Subject, rest: &[&str]) -> Result<Route, GraphError> {
    match rest {
        [] => Ok(Route::User(subject)),
        [first, ..] if mail_routes::is_mail_segment(first) => Ok(Route::Mail {
            subject,
            route: mail_routes::resolve(rest)?,
        }),
        [first, ..] if calendar_routes::is_calendar_segment(first) => Ok(Route::Calendar {
            subject,
            route: calendar_routes::resolve(rest)?,
        }),
        [m] if is(m, "manager") => Ok(Route::Manager(subject)),
        [r] if is(r, "revokeSignInSessions") => Ok(Route::RevokeSessions(subject)),
        [relation, tail @ ..] => {
            let relation = if is(relation, "directReports") {
                Relation::DirectReports
            } else if is(relation, "memberOf") {
                Relation::MemberOf
            } else if is(relation, "transitiveMemberOf") {
                Relation::TransitiveMemberOf
            } else {
                return Err(GraphError::segment_not_found(relation));
            };
            let (cast, count) = relation_tail(relation, tail)?;
            Ok(Route::UserRelation {
                subject,
                relation,
                cast,
                count,
            })
        }
    }
}

/// `[cast] [$count]` after a relationship segment.
fn relation_tail(relation: Relation, rest: &[&str]) -> Result<(Option<Cast>, bool), GraphError> {
    let cast_of = |seg: &str| {
        relation
            .casts()
            .iter()
            .copied()
            .find(|c| is(seg, c.segment()))
    };
    match rest {
        [] => Ok((None, false)),
        ["$count"] => Ok((None, true)),
        [c] => cast_of(c)
            .map(|c| (Some(c), false))
            .ok_or_else(|| GraphError::segment_not_found(c)),
        [c, "$count"] => cast_of(c)
            .map(|c| (Some(c), true))
            .ok_or_else(|| GraphError::segment_not_found(c)),
        [c, other, ..] => Err(GraphError::segment_not_found(if cast_of(c).is_some() {
            other
        } else {
            c
        })),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_resolve_to_templates() {
        for (path, template) in [
            ("/users", "/users"),
            ("/users/$count", "/users/$count"),
            ("/users/a%40b.example", "/users/{id}"),
            ("/users/x/manager", "/users/{id}/manager"),
            (
                "/users/x/directReports/microsoft.graph.user",
                "/users/{id}/directReports/microsoft.graph.user",
            ),
            (
                "/users/x/memberof/microsoft.graph.group/$count",
                "/users/{id}/memberOf/microsoft.graph.group/$count",
            ),
            ("/me/memberOf", "/me/memberOf"),
            (
                "/groups/g/members/microsoft.graph.user",
                "/groups/{id}/members/microsoft.graph.user",
            ),
            ("/$batch", "/$batch"),
            (
                "/groups/g/transitiveMembers/microsoft.graph.user",
                "/groups/{id}/transitiveMembers/microsoft.graph.user",
            ),
            (
                "/me/transitiveMemberOf/microsoft.graph.group/$count",
                "/me/transitiveMemberOf/microsoft.graph.group/$count",
            ),
            (
                "/users/x/revokeSignInSessions",
                "/users/{id}/revokeSignInSessions",
            ),
            ("/users/x/messages", "/users/{id}/messages"),
            (
                "/me/mailFolders/inbox/messages/delta",
                "/me/mailFolders/{id}/messages/delta",
            ),
            (
                "/users/a%40b.example/messages/AAMk%3D/attachments/x/$value",
                "/users/{id}/messages/{id}/attachments/{id}/$value",
            ),
            ("/users/x/sendMail", "/users/{id}/sendMail"),
            ("/users/x/calendarView", "/users/{id}/calendarView"),
            (
                "/users/x/calendars/y/calendarView",
                "/users/{id}/calendars/{id}/calendarView",
            ),
            (
                "/users/x/calendar/getSchedule",
                "/users/{id}/calendar/getSchedule",
            ),
            ("/me/events/x", "/me/events/{id}"),
            ("/users/x/contacts", "/users/{id}/contacts"),
        ] {
            assert_eq!(
                resolve(path).map(|r| r.template()),
                Ok(template.to_string()),
                "{path}"
            );
        }
    }

    #[test]
    fn unknown_segments_are_named() {
        assert_eq!(
            resolve("/foo").map_err(|e| e.message),
            Err("Resource not found for the segment 'foo'.".to_string())
        );
        assert_eq!(
            resolve("/users/x/bar").map_err(|e| e.message),
            Err("Resource not found for the segment 'bar'.".to_string())
        );
        assert_eq!(
            resolve("/users/x/memberOf/microsoft.graph.user").map_err(|e| e.message),
            Err("Resource not found for the segment 'microsoft.graph.user'.".to_string())
        );
    }

    #[test]
    fn user_keys_are_percent_decoded() {
        assert_eq!(
            resolve("/users/jo_x.example%23EXT%23%40t.example"),
            Ok(Route::User(Subject::User(
                "jo_x.example#EXT#@t.example".into()
            )))
        );
    }
}
