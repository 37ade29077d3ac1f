//! `/api/v1` directory routes.

use axum::extract::{Path, Query};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{ApiError, Authenticated, DEFAULT_LIMIT, ErrorBody, PageParams, Paged, paged};
use crate::app::AppState;
use crate::service::Page;
use crate::service::directory::{Group, User, UserFilter, UserQuery, UserSelect};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/users", get(list_users))
        .route("/users/{id}", get(get_user))
        .route("/users/{id}/manager", get(get_manager))
        .route("/users/{id}/direct-reports", get(list_direct_reports))
        .route("/users/{id}/member-of", get(list_member_of))
        .route("/groups/{id}", get(get_group))
        .route("/groups/{id}/members", get(list_group_members))
}

/// A page of users.
#[derive(Serialize, ToSchema)]
pub struct UserPage {
    data: Vec<User>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    next_cursor: Option<String>,
    /// Total matches, when `count=true` was asked.
    total_count: Option<u64>,
}

fn user_page(page: Page<User>) -> UserPage {
    let total_count = page.total_count;
    let Paged { data, next_cursor } = paged(page);
    UserPage {
        total_count,
        data,
        next_cursor,
    }
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UserListParams {
    /// Page size, 1 to 100 (default 25).
    limit: Option<usize>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
    /// Free text matched against display name and mail.
    search: Option<String>,
    /// Also return `total_count`.
    count: Option<bool>,
    display_name_starts_with: Option<String>,
    given_name: Option<String>,
    surname: Option<String>,
    mail: Option<String>,
    user_principal_name: Option<String>,
    department: Option<String>,
    job_title: Option<String>,
    account_enabled: Option<bool>,
}

/// List or search users.
#[utoipa::path(get, path = "/api/v1/users", tag = "directory", params(UserListParams),
    responses(
        (status = 200, body = UserPage),
        (status = 400, description = "Invalid filter, limit or cursor (BAD_USER_INPUT)", body = ErrorBody),
        (status = 401, description = "Missing or invalid token (UNAUTHENTICATED)", body = ErrorBody),
        (status = 403, description = "Not allowed by the caller's policy (FORBIDDEN)", body = ErrorBody),
        (status = 502, description = "Graph failed (UPSTREAM_ERROR)", body = ErrorBody),
        (status = 503, description = "Graph throttled (UPSTREAM_THROTTLED), see Retry-After", body = ErrorBody),
    ))]
pub async fn list_users(
    Authenticated(session): Authenticated,
    Query(params): Query<UserListParams>,
) -> Result<Json<UserPage>, ApiError> {
    let query = UserQuery {
        filter: UserFilter {
            display_name_starts_with: params.display_name_starts_with,
            given_name: params.given_name,
            surname: params.surname,
            mail: params.mail,
            user_principal_name: params.user_principal_name,
            department: params.department,
            department_in: None,
            job_title: params.job_title,
            account_enabled: params.account_enabled,
        },
        search: params.search,
        first: params.limit.unwrap_or(DEFAULT_LIMIT),
        after: params.cursor,
        count: params.count.unwrap_or(false),
    };
    let page = session.users(&query, &UserSelect::all()).await?;
    Ok(Json(user_page(page)))
}

/// One user by object id or user principal name.
#[utoipa::path(get, path = "/api/v1/users/{id}", tag = "directory",
    params(("id" = String, Path, description = "Object id or user principal name")),
    responses(
        (status = 200, body = User),
        (status = 404, description = "No such user (NOT_FOUND)", body = ErrorBody),
        (status = 401, description = "UNAUTHENTICATED", body = ErrorBody),
        (status = 403, description = "FORBIDDEN", body = ErrorBody),
    ))]
pub async fn get_user(
    Authenticated(session): Authenticated,
    Path(id): Path<String>,
) -> Result<Json<User>, ApiError> {
    Ok(Json(session.user(&id, &UserSelect::all()).await?))
}

/// A user's manager.
#[utoipa::path(get, path = "/api/v1/users/{id}/manager", tag = "directory",
    params(("id" = String, Path, description = "Object id or user principal name")),
    responses(
        (status = 200, body = User),
        (status = 404, description = "No such user, or the user has no manager (NOT_FOUND)", body = ErrorBody),
        (status = 401, description = "UNAUTHENTICATED", body = ErrorBody),
        (status = 403, description = "FORBIDDEN", body = ErrorBody),
    ))]
pub async fn get_manager(
    Authenticated(session): Authenticated,
    Path(id): Path<String>,
) -> Result<Json<User>, ApiError> {
    match session.manager(&id, &UserSelect::all()).await? {
        Some(manager) => Ok(Json(manager)),
        None => Err(
            crate::service::ServiceError::NotFound(format!("user '{id}' has no manager")).into(),
        ),
    }
}

/// People who report to a user.
#[utoipa::path(get, path = "/api/v1/users/{id}/direct-reports", tag = "directory",
    params(("id" = String, Path, description = "Object id or user principal name"), PageParams),
    responses(
        (status = 200, body = UserPage),
        (status = 400, description = "BAD_USER_INPUT", body = ErrorBody),
        (status = 404, description = "NOT_FOUND", body = ErrorBody),
        (status = 401, description = "UNAUTHENTICATED", body = ErrorBody),
        (status = 403, description = "FORBIDDEN", body = ErrorBody),
    ))]
pub async fn list_direct_reports(
    Authenticated(session): Authenticated,
    Path(id): Path<String>,
    Query(page): Query<PageParams>,
) -> Result<Json<UserPage>, ApiError> {
    let result = session
        .direct_reports(&id, &UserSelect::all(), page.limit(), page.cursor())
        .await?;
    Ok(Json(user_page(result)))
}

/// Groups a user is a direct member of.
#[utoipa::path(get, path = "/api/v1/users/{id}/member-of", tag = "directory",
    params(("id" = String, Path, description = "Object id or user principal name"), PageParams),
    responses(
        (status = 200, body = Paged<Group>),
        (status = 400, description = "BAD_USER_INPUT", body = ErrorBody),
        (status = 404, description = "NOT_FOUND", body = ErrorBody),
        (status = 401, description = "UNAUTHENTICATED", body = ErrorBody),
        (status = 403, description = "FORBIDDEN", body = ErrorBody),
    ))]
pub async fn list_member_of(
    Authenticated(session): Authenticated,
    Path(id): Path<String>,
    Query(page): Query<PageParams>,
) -> Result<Json<Paged<Group>>, ApiError> {
    let result = session.member_of(&id, page.limit(), page.cursor()).await?;
    Ok(Json(paged(result)))
}

/// One group by object id.
#[utoipa::path(get, path = "/api/v1/groups/{id}", tag = "directory",
    params(("id" = String, Path, description = "Group object id")),
    responses(
        (status = 200, body = Group),
        (status = 404, description = "NOT_FOUND", body = ErrorBody),
        (status = 401, description = "UNAUTHENTICATED", body = ErrorBody),
        (status = 403, description = "FORBIDDEN", body = ErrorBody),
    ))]
pub async fn get_group(
    Authenticated(session): Authenticated,
    Path(id): Path<String>,
) -> Result<Json<Group>, ApiError> {
    Ok(Json(session.group(&id).await?))
}

/// Users who are direct members of a group.
#[utoipa::path(get, path = "/api/v1/groups/{id}/members", tag = "directory",
    params(("id" = String, Path, description = "Group object id"), PageParams),
    responses(
        (status = 200, body = UserPage),
        (status = 400, description = "BAD_USER_INPUT", body = ErrorBody),
        (status = 404, description = "NOT_FOUND", body = ErrorBody),
        (status = 401, description = "UNAUTHENTICATED", body = ErrorBody),
        (status = 403, description = "FORBIDDEN", body = ErrorBody),
    ))]
pub async fn list_group_members(
    Authenticated(session): Authenticated,
    Path(id): Path<String>,
    Query(page): Query<PageParams>,
) -> Result<Json<UserPage>, ApiError> {
    let result = session
        .group_members(&id, &UserSelect::all(), page.limit(), page.cursor())
        .await?;
    Ok(Json(user_page(result)))
}
