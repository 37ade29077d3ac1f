//! Handlers for users, groups and their relationships.

use serde_json::{Map, Value};

use super::auth::Principal;
use super::collection::{self, CONTEXT_BASE, ListSpec};
use super::errors::GraphError;
use super::query;
use super::routes::{Cast, Relation, Route, Subject};
use super::schema::{self, Kind, Selection};
use super::{Ctx, GraphResponse};
use crate::tenant::{DirObj, Tenant};

const USERS: ListSpec = ListSpec {
    kind: Kind::User,
    context: "users",
    with_type: false,
    relationship: false,
};

const GROUPS: ListSpec = ListSpec {
    kind: Kind::Group,
    context: "groups",
    with_type: false,
    relationship: false,
};

pub(crate) fn handle(
    route: &Route,
    ctx: &Ctx<'_>,
    tenant: &Tenant,
) -> Result<GraphResponse, GraphError> {
    match route {
        Route::Users { count } => {
            let items = (0..tenant.users.len()).map(DirObj::User).collect();
            if *count {
                collection::count(ctx, tenant, items, &USERS)
            } else {
                collection::list(ctx, tenant, items, &USERS)
            }
        }
        Route::User(subject) => {
            let u = subject_user(ctx, tenant, subject)?;
            single(ctx, tenant, DirObj::User(u), Kind::User, "users")
        }
        Route::Manager(subject) => {
            let u = subject_user(ctx, tenant, subject)?;
            let m = tenant.users[u]
                .manager
                .ok_or_else(|| GraphError::resource_not_found("manager"))?;
            let selection = selection(ctx, Kind::User)?;
            let mut body = Map::new();
            body.insert(
                "@odata.context".into(),
                Value::String(format!("{CONTEXT_BASE}directoryObjects/$entity")),
            );
            body.extend(schema::render(tenant, DirObj::User(m), &selection, true));
            Ok(GraphResponse::json(Value::Object(body)))
        }
        Route::UserRelation {
            subject,
            relation,
            cast,
            count,
        } => {
            let u = subject_user(ctx, tenant, subject)?;
            let user = &tenant.users[u];
            let items: Vec<DirObj> = match relation {
                Relation::DirectReports => user
                    .direct_reports
                    .iter()
                    .map(|&r| DirObj::User(r))
                    .collect(),
                Relation::TransitiveMemberOf => tenant.transitive_member_of(u),
                _ => user.member_of.clone(),
            };
            relationship(ctx, tenant, items, *cast, *count)
        }
        Route::Groups { count } => {
            let items = (0..tenant.groups.len()).map(DirObj::Group).collect();
            if *count {
                collection::count(ctx, tenant, items, &GROUPS)
            } else {
                collection::list(ctx, tenant, items, &GROUPS)
            }
        }
        Route::Group(id) => {
            let g = tenant
                .find_group(id)
                .ok_or_else(|| GraphError::resource_not_found(id))?;
            single(ctx, tenant, DirObj::Group(g), Kind::Group, "groups")
        }
        Route::GroupRelation {
            group,
            relation,
            cast,
            count,
        } => {
            let g = tenant
                .find_group(group)
                .ok_or_else(|| GraphError::resource_not_found(group))?;
            let items = match relation {
                Relation::TransitiveMembers => tenant.transitive_members(g),
                _ => tenant.groups[g].members.clone(),
            };
            relationship(ctx, tenant, items, *cast, *count)
        }
        Route::DirectoryRoles => {
            // "directoryRoles does not page": all of them, always.
            let mut body = Map::new();
            body.insert(
                "@odata.context".into(),
                Value::String(format!("{CONTEXT_BASE}directoryRoles")),
            );
            let selection = selection(ctx, Kind::DirectoryRole)?;
            let value = (0..tenant.roles.len())
                .map(|r| Value::Object(schema::render(tenant, DirObj::Role(r), &selection, false)))
                .collect();
            body.insert("value".into(), Value::Array(value));
            Ok(GraphResponse::json(Value::Object(body)))
        }
        Route::DirectoryRole(id) => {
            let r = tenant
                .find_role(id)
                .ok_or_else(|| GraphError::resource_not_found(id))?;
            single(
                ctx,
                tenant,
                DirObj::Role(r),
                Kind::DirectoryRole,
                "directoryRoles",
            )
        }
        Route::RoleMembers(id) => {
            let r = tenant
                .find_role(id)
                .ok_or_else(|| GraphError::resource_not_found(id))?;
            let items = tenant.roles[r]
                .members
                .iter()
                .map(|&u| DirObj::User(u))
                .collect();
            relationship(ctx, tenant, items, None, false)
        }
        Route::Batch => Err(GraphError::bad_request(
            "Nested batch requests are not supported.",
        )),
        // Writes and mail are dispatched before the tenant is read-locked (`graph::dispatch`).
        Route::RevokeSessions(_)
        | Route::Mail { .. }
        | Route::Calendar { .. }
        | Route::Files(_)
        | Route::Subscriptions
        | Route::Subscription(_) => Err(GraphError::method_not_allowed()),
    }
}

/// The user a path names: `/users/{id | userPrincipalName}` or the signed-in `/me`.
pub(crate) fn subject_user(
    ctx: &Ctx<'_>,
    tenant: &Tenant,
    subject: &Subject,
) -> Result<usize, GraphError> {
    match subject {
        Subject::User(key) => tenant
            .find_user(key)
            .ok_or_else(|| GraphError::resource_not_found(key)),
        Subject::Me => match ctx.principal {
            Principal::User { user_id, .. } => tenant
                .find_user(user_id)
                .ok_or_else(|| GraphError::resource_not_found(user_id)),
            Principal::App { .. } => Err(GraphError::bad_request(
                "/me request is only valid with delegated authentication flow.",
            )),
        },
    }
}

fn selection(ctx: &Ctx<'_>, kind: Kind) -> Result<Selection, GraphError> {
    match &ctx.opts.select {
        Some(raw) => Selection::parse(raw, kind),
        None => Ok(Selection::Default),
    }
}

/// A single entity: `$select` and `$expand` apply; collection options do not.
fn single(
    ctx: &Ctx<'_>,
    tenant: &Tenant,
    obj: DirObj,
    kind: Kind,
    set: &str,
) -> Result<GraphResponse, GraphError> {
    let o = &ctx.opts;
    if o.filter.is_some()
        || o.orderby.is_some()
        || o.top.is_some()
        || o.search.is_some()
        || o.skiptoken.is_some()
    {
        return Err(GraphError::bad_request(
            "The query specified in the URI is not valid. The requested resource is not a collection. Query options $filter, $orderby, $count, $skip, and $top can be applied only on collections.",
        ));
    }
    let selection = selection(ctx, kind)?;
    let expand = match &o.expand {
        Some(raw) => query::parse_expand(raw, kind)?,
        None => None,
    };
    let context = match selection.context_suffix() {
        Some(props) => format!("{CONTEXT_BASE}{set}({props})/$entity"),
        None => format!("{CONTEXT_BASE}{set}/$entity"),
    };
    let mut body = Map::new();
    body.insert("@odata.context".into(), Value::String(context));
    body.extend(collection::render_with_expand(
        tenant,
        obj,
        &selection,
        false,
        expand.as_ref(),
    ));
    Ok(GraphResponse::json(Value::Object(body)))
}

/// directReports, memberOf, members: directoryObjects, optionally narrowed by a cast.
fn relationship(
    ctx: &Ctx<'_>,
    tenant: &Tenant,
    items: Vec<DirObj>,
    cast: Option<Cast>,
    count: bool,
) -> Result<GraphResponse, GraphError> {
    let (items, spec) = match cast {
        None => (
            items,
            ListSpec {
                kind: Kind::DirectoryObject,
                context: "directoryObjects",
                with_type: true,
                relationship: true,
            },
        ),
        Some(cast) => {
            let (kind, context) = match cast {
                Cast::User => (Kind::User, "users"),
                Cast::Group => (Kind::Group, "groups"),
                Cast::DirectoryRole => (Kind::DirectoryRole, "directoryRoles"),
            };
            let items = items.into_iter().filter(|&o| Kind::of(o) == kind).collect();
            (
                items,
                ListSpec {
                    kind,
                    context,
                    with_type: false,
                    relationship: true,
                },
            )
        }
    };
    if count {
        collection::count(ctx, tenant, items, &spec)
    } else {
        collection::list(ctx, tenant, items, &spec)
    }
}
