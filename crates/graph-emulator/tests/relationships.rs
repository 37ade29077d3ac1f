//! directReports, memberOf, groups and members, with casts, `$top` and paging.

mod common;

use std::collections::HashSet;

use common::*;
use graph_emulator::DEMO_USER_UPN;
use reqwest::StatusCode;
use serde_json::Value;

fn values(body: &Value) -> Vec<Value> {
    body["value"].as_array().cloned().unwrap_or_default()
}

#[tokio::test]
async fn direct_reports_are_directory_objects_with_odata_type_and_the_cast_drops_it() {
    let h = start().await;
    let body = h
        .get(&format!("/users/{DEMO_USER_UPN}/directReports"))
        .await
        .json();
    assert_eq!(
        body["@odata.context"],
        "https://graph.microsoft.com/v1.0/$metadata#directoryObjects"
    );
    let reports = values(&body);
    assert!(!reports.is_empty());
    let demo_id = h.user_id(DEMO_USER_UPN).await;
    for r in &reports {
        assert_eq!(r["@odata.type"], "#microsoft.graph.user");
        assert!(r.get("userPrincipalName").is_some());
        // Each report's manager is the demo user.
        let m = h
            .get(&format!(
                "/users/{}/manager?$select=id",
                r["id"].as_str().expect("id")
            ))
            .await
            .json();
        assert_eq!(m["id"], demo_id.as_str());
    }

    let cast = h
        .get(&format!(
            "/users/{DEMO_USER_UPN}/directReports/microsoft.graph.user?$select=id,displayName"
        ))
        .await
        .json();
    assert_eq!(
        cast["@odata.context"],
        "https://graph.microsoft.com/v1.0/$metadata#users(id,displayName)"
    );
    let cast = values(&cast);
    assert_eq!(cast.len(), reports.len());
    assert_eq!(keys(&cast[0]), sorted(vec!["id", "displayName"]));

    // $top pages the relationship.
    let (paged, pages) = h
        .get_all(&format!("/users/{DEMO_USER_UPN}/directReports?$top=1"), &[])
        .await;
    assert_eq!(paged.len(), reports.len());
    assert_eq!(pages, reports.len());
}

#[tokio::test]
async fn member_of_holds_groups_and_a_directory_role_and_the_group_cast_leaves_the_role_out() {
    let h = start().await;
    let all = values(
        &h.get(&format!("/users/{DEMO_USER_UPN}/memberOf"))
            .await
            .json(),
    );
    let types: Vec<&str> = all
        .iter()
        .filter_map(|m| m["@odata.type"].as_str())
        .collect();
    assert!(types.contains(&"#microsoft.graph.group"));
    assert!(types.contains(&"#microsoft.graph.directoryRole"));
    let group = all
        .iter()
        .find(|m| m["@odata.type"] == "#microsoft.graph.group")
        .expect("a group");
    for key in [
        "displayName",
        "mailEnabled",
        "securityEnabled",
        "groupTypes",
        "mailNickname",
    ] {
        assert!(group.get(key).is_some(), "{key}");
    }
    let role = all
        .iter()
        .find(|m| m["@odata.type"] == "#microsoft.graph.directoryRole")
        .expect("a role");
    assert!(role.get("roleTemplateId").is_some());

    let groups_body = h
        .get(&format!(
            "/users/{DEMO_USER_UPN}/memberOf/microsoft.graph.group"
        ))
        .await
        .json();
    assert_eq!(
        groups_body["@odata.context"],
        "https://graph.microsoft.com/v1.0/$metadata#groups"
    );
    let groups = values(&groups_body);
    assert_eq!(
        groups.len(),
        types
            .iter()
            .filter(|t| **t == "#microsoft.graph.group")
            .count()
    );
    assert!(groups.iter().all(|g| g.get("@odata.type").is_none()));

    let roles = values(
        &h.get(&format!(
            "/users/{DEMO_USER_UPN}/memberOf/microsoft.graph.directoryRole"
        ))
        .await
        .json(),
    );
    assert!(!roles.is_empty());

    let (paged, _) = h
        .get_all(
            &format!("/users/{DEMO_USER_UPN}/memberOf/microsoft.graph.group?$top=2&$select=id"),
            &[],
        )
        .await;
    assert_eq!(paged.len(), groups.len());
}

#[tokio::test]
async fn member_of_cast_supports_count_search_orderby_and_startswith_as_advanced_queries() {
    let h = start().await;
    let base = format!("/users/{DEMO_USER_UPN}/memberOf/microsoft.graph.group");
    let total = values(&h.get(&base).await.json()).len();

    let reply = h.get_eventual(&format!("{base}/$count")).await;
    assert_eq!(reply.text, total.to_string());
    assert_eq!(
        h.get(&format!("{base}/$count")).await.status,
        StatusCode::BAD_REQUEST
    );

    let reply = h
        .get_eventual(&format!(
            "{base}?$count=true&$orderby=displayName&$filter=startswith(displayName, 'a')"
        ))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let body = reply.json();
    let matching = values(&body);
    assert_eq!(body["@odata.count"], matching.len());
    assert!(matching.iter().any(|g| g["displayName"] == "All Staff"));

    let body = h
        .get_eventual(&format!(
            "{base}?$count=true&$orderby=displayName&$search=\"displayName:staff\"&$select=displayName,id"
        ))
        .await
        .json();
    assert_eq!(
        body["@odata.context"],
        "https://graph.microsoft.com/v1.0/$metadata#groups(displayName,id)"
    );
    assert_eq!(values(&body)[0]["displayName"], "All Staff");

    // Without the advanced-query pair, filtering a relationship is refused.
    let reply = h
        .get(&format!("{base}?$filter=startswith(displayName,'a')"))
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.error_code(), "Request_UnsupportedQuery");
}

#[tokio::test]
async fn all_staff_members_page_through_everyone() {
    let h = start().await;
    let id = h.group_id("All Staff").await;
    let group = h.get(&format!("/groups/{id}")).await.json();
    assert_eq!(group["groupTypes"], serde_json::json!(["Unified"]));
    assert_eq!(group["mailEnabled"], true);
    assert_eq!(
        group["@odata.context"],
        "https://graph.microsoft.com/v1.0/$metadata#groups/$entity"
    );

    let (members, pages) = h
        .get_all(&format!("/groups/{id}/members?$top=25"), &[])
        .await;
    assert_eq!(members.len(), 60);
    assert_eq!(pages, 3);
    let ids: HashSet<&str> = members.iter().filter_map(|m| m["id"].as_str()).collect();
    assert_eq!(ids.len(), 60);
    assert!(
        members
            .iter()
            .all(|m| m["@odata.type"] == "#microsoft.graph.user")
    );

    let count = h
        .get_eventual(&format!("/groups/{id}/members/$count"))
        .await;
    assert_eq!(count.text, "60");
}

#[tokio::test]
async fn a_nested_group_is_a_member_and_the_user_cast_excludes_it() {
    let h = start().await;
    let id = h.group_id("Extended Leadership").await;
    let members = values(&h.get(&format!("/groups/{id}/members")).await.json());
    let nested: Vec<&Value> = members
        .iter()
        .filter(|m| m["@odata.type"] == "#microsoft.graph.group")
        .collect();
    assert_eq!(nested.len(), 1);
    assert_eq!(nested[0]["displayName"], "People Managers");
    let users = values(
        &h.get(&format!(
            "/groups/{id}/members/microsoft.graph.user?$select=id,displayName"
        ))
        .await
        .json(),
    );
    assert_eq!(users.len(), members.len() - 1);
    assert!(users.iter().all(|u| u.get("@odata.type").is_none()));
}

#[tokio::test]
async fn groups_list_filters_selects_and_pages() {
    let h = start().await;
    let body = h
        .get("/groups?$filter=groupTypes/any(c:c eq 'Unified')&$select=displayName,groupTypes,visibility")
        .await
        .json();
    let unified = values(&body);
    assert!(unified.len() >= 4, "several Microsoft 365 groups");
    for g in &unified {
        assert_eq!(g["groupTypes"], serde_json::json!(["Unified"]));
        assert_eq!(
            keys(g),
            sorted(vec!["displayName", "groupTypes", "visibility"])
        );
    }
    let security = values(
        &h.get("/groups?$filter=securityEnabled eq true and mailEnabled eq false")
            .await
            .json(),
    );
    assert!(
        security
            .iter()
            .any(|g| g["displayName"] == "Engineering Department")
    );

    let total = values(&h.get("/groups?$top=999").await.json()).len();
    let (paged, _) = h.get_all("/groups?$top=3", &[]).await;
    assert_eq!(paged.len(), total);

    let reply = h.get("/groups/00000000-0000-0000-0000-000000000000").await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_eq!(reply.error_code(), "Request_ResourceNotFound");
}

#[tokio::test]
async fn directory_roles_list_and_their_members() {
    let h = start().await;
    let roles = values(&h.get("/directoryRoles").await.json());
    assert!(roles.len() >= 2);
    let global = roles
        .iter()
        .find(|r| r["displayName"] == "Global Administrator")
        .expect("global admin");
    let members = values(
        &h.get(&format!(
            "/directoryRoles/{}/members",
            global["id"].as_str().expect("id")
        ))
        .await
        .json(),
    );
    assert!(!members.is_empty());
    // Also addressable by role template id.
    let by_template = h
        .get("/directoryRoles/62e90394-69f5-4237-9190-012177145e10")
        .await
        .json();
    assert_eq!(by_template["id"], global["id"]);
}
