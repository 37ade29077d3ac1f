//! The directory through GraphQL: every field, paging, filters, errors.

use std::collections::HashSet;

use graph_emulator::DEMO_USER_UPN;
use serde_json::{Value, json};

use crate::helpers::spawn_app;

const USER_FIELDS: &str = "id displayName givenName surname mail userPrincipalName jobTitle department officeLocation businessPhones mobilePhone";

fn code(body: &Value) -> &str {
    body["errors"][0]["extensions"]["code"]
        .as_str()
        .unwrap_or("<none>")
}

#[tokio::test]
async fn me_is_the_user_the_dev_token_acts_for_with_manager_reports_and_groups() {
    let app = spawn_app().await;
    let data = app
        .graphql_data(&format!(
            "{{ me {{ {USER_FIELDS} manager {{ displayName }} directReports(first: 5) {{ nodes {{ displayName }} }} memberOf(first: 5) {{ nodes {{ displayName }} }} }} }}"
        ))
        .await;
    let me = &data["me"];
    assert_eq!(
        me["userPrincipalName"].as_str().unwrap().to_lowercase(),
        DEMO_USER_UPN.to_lowercase()
    );
    for field in USER_FIELDS.split(' ') {
        assert!(!me[field].is_null(), "me.{field} is null: {me}");
    }
    assert!(me["manager"]["displayName"].is_string(), "{me}");
    assert!(
        !me["directReports"]["nodes"].as_array().unwrap().is_empty(),
        "{me}"
    );
    assert!(
        !me["memberOf"]["nodes"].as_array().unwrap().is_empty(),
        "{me}"
    );
}

#[tokio::test]
async fn a_user_is_found_by_upn_and_by_id_alike() {
    let app = spawn_app().await;
    let by_upn = app
        .graphql_data(&format!(
            "{{ user(id: \"{DEMO_USER_UPN}\") {{ {USER_FIELDS} }} }}"
        ))
        .await;
    let id = by_upn["user"]["id"].as_str().unwrap();
    let by_id = app
        .graphql_data(&format!("{{ user(id: \"{id}\") {{ {USER_FIELDS} }} }}"))
        .await;
    assert_eq!(by_upn, by_id);
}

#[tokio::test]
async fn an_unknown_user_is_not_found_not_an_internal_error() {
    let app = spawn_app().await;
    let body = app
        .graphql("{ user(id: \"nobody@nowhere.example\") { displayName } }")
        .await;
    assert_eq!(code(&body), "NOT_FOUND", "{body}");
    assert!(body["data"].is_null(), "{body}");
}

#[tokio::test]
async fn paging_through_all_users_returns_each_exactly_once() {
    let app = spawn_app().await;
    let mut seen = HashSet::new();
    let mut after = Value::Null;
    let mut total = None;
    for _ in 0..50 {
        let (_, body) = app
            .graphql_as(
                Some(&app.token),
                "query($after: String) { users(first: 7, after: $after) { totalCount edges { cursor node { id } } pageInfo { hasNextPage hasPreviousPage endCursor } } }",
                json!({ "after": after }),
            )
            .await;
        assert!(body.get("errors").is_none(), "{body}");
        let users = &body["data"]["users"];
        total = total.or(users["totalCount"].as_u64());
        let edges = users["edges"].as_array().unwrap();
        assert!(edges.len() <= 7);
        for edge in edges {
            assert!(
                seen.insert(edge["node"]["id"].as_str().unwrap().to_owned()),
                "duplicate {edge}"
            );
        }
        assert_eq!(
            users["pageInfo"]["hasPreviousPage"],
            json!(!after.is_null())
        );
        if !users["pageInfo"]["hasNextPage"].as_bool().unwrap() {
            break;
        }
        after = users["pageInfo"]["endCursor"].clone();
    }
    assert!(seen.len() >= 60, "only {} users", seen.len());
    assert_eq!(total, Some(seen.len() as u64));
}

#[tokio::test]
async fn an_edge_cursor_resumes_right_after_that_edge() {
    let app = spawn_app().await;
    let first = app
        .graphql_data("{ users(first: 10) { edges { cursor node { id } } } }")
        .await;
    let edges = first["users"]["edges"].as_array().unwrap();
    let (_, body) = app
        .graphql_as(
            Some(&app.token),
            "query($after: String) { users(first: 3, after: $after) { nodes { id } } }",
            json!({ "after": edges[4]["cursor"] }),
        )
        .await;
    let ids: Vec<&Value> = body["data"]["users"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| &n["id"])
        .collect();
    let expected: Vec<&Value> = edges[5..8].iter().map(|e| &e["node"]["id"]).collect();
    assert_eq!(ids, expected);
}

#[tokio::test]
async fn a_forged_cursor_and_an_out_of_range_page_size_are_bad_user_input() {
    let app = spawn_app().await;
    let body = app
        .graphql("{ users(first: 5, after: \"eyJ1IjoiL2dyb3VwcyIsIm8iOjB9\") { nodes { id } } }")
        .await;
    assert_eq!(code(&body), "BAD_USER_INPUT", "{body}");
    for first in [0, -1, 101] {
        let body = app
            .graphql(&format!("{{ users(first: {first}) {{ nodes {{ id }} }} }}"))
            .await;
        assert_eq!(code(&body), "BAD_USER_INPUT", "{body}");
    }
}

#[tokio::test]
async fn filters_are_applied_by_graph() {
    let app = spawn_app().await;
    let me = app.graphql_data("{ me { department givenName } }").await;
    let department = me["me"]["department"].as_str().unwrap().to_owned();
    let (_, body) = app
        .graphql_as(
            Some(&app.token),
            "query($d: String) { users(first: 100, filter: { department: $d }) { nodes { department } } }",
            json!({ "d": department }),
        )
        .await;
    let nodes = body["data"]["users"]["nodes"].as_array().unwrap();
    assert!(!nodes.is_empty());
    assert!(
        nodes.iter().all(|n| n["department"] == json!(department)),
        "{body}"
    );

    let prefix: String = me["me"]["givenName"]
        .as_str()
        .unwrap()
        .chars()
        .take(2)
        .collect();
    let (_, body) = app
        .graphql_as(
            Some(&app.token),
            "query($p: String) { users(first: 100, filter: { displayNameStartsWith: $p, accountEnabled: true }) { nodes { displayName } } }",
            json!({ "p": prefix }),
        )
        .await;
    let nodes = body["data"]["users"]["nodes"].as_array().unwrap();
    assert!(!nodes.is_empty(), "{body}");
    assert!(nodes.iter().all(|n| {
        n["displayName"]
            .as_str()
            .unwrap()
            .to_lowercase()
            .starts_with(&prefix.to_lowercase())
    }));
}

#[tokio::test]
async fn single_quotes_in_filter_values_are_escaped_not_injected() {
    let app = spawn_app().await;
    app.reset_stats().await;
    let body = app
        .graphql("{ users(first: 5, filter: { surname: \"O'Brien\" }) { nodes { surname } } }")
        .await;
    assert!(body.get("errors").is_none(), "{body}");
    for node in body["data"]["users"]["nodes"].as_array().unwrap() {
        assert_eq!(node["surname"], "O'Brien");
    }
    // Decoded, because the HTTP client may percent-encode the quotes on the wire.
    let urls: Vec<String> = app
        .recorded_urls()
        .await
        .iter()
        .map(|u| {
            percent_encoding::percent_decode_str(u)
                .decode_utf8_lossy()
                .into_owned()
        })
        .collect();
    assert!(
        urls.iter()
            .any(|u| u.contains("$filter=surname eq 'O''Brien'")),
        "{urls:?}"
    );
}

#[tokio::test]
async fn search_finds_people_by_display_name() {
    let app = spawn_app().await;
    let me = app.graphql_data("{ me { displayName surname } }").await;
    let surname = me["me"]["surname"].as_str().unwrap();
    let (_, body) = app
        .graphql_as(
            Some(&app.token),
            "query($q: String) { users(first: 20, search: $q) { nodes { displayName } } }",
            json!({ "q": surname }),
        )
        .await;
    let names: Vec<&str> = body["data"]["users"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["displayName"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&me["me"]["displayName"].as_str().unwrap()),
        "{body}"
    );
}

#[tokio::test]
async fn the_selection_set_becomes_graph_select() {
    let app = spawn_app().await;
    app.reset_stats().await;
    app.graphql_data("{ users(first: 3) { nodes { displayName } } }")
        .await;
    let urls = app.recorded_urls().await;
    let list = urls
        .iter()
        .find(|u| u.contains("/users?"))
        .expect("a list call");
    assert!(list.contains("$select=id,displayName"), "{list}");
    assert!(!list.contains("mail"), "{list}");
    assert!(
        !list.contains("$count"),
        "totalCount was not selected: {list}"
    );
}

#[tokio::test]
async fn walking_up_the_manager_chain_ends_at_a_ceo_without_manager() {
    let app = spawn_app().await;
    let data = app
        .graphql_data("{ me { manager { manager { manager { manager { manager { displayName } displayName } displayName } displayName } displayName } } }")
        .await;
    let mut level = &data["me"];
    let mut depth = 0;
    while !level["manager"].is_null() {
        level = &level["manager"];
        depth += 1;
        assert!(depth <= 5);
    }
    assert!(depth >= 1, "{data}");
    // The top found has no manager at all.
    let (_, body) = app
        .graphql_as(
            Some(&app.token),
            "query($name: String) { users(first: 5, filter: { displayNameStartsWith: $name }) { nodes { displayName manager { id } } } }",
            json!({ "name": level["displayName"] }),
        )
        .await;
    let top = body["data"]["users"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["displayName"] == level["displayName"])
        .expect("the top of the chain");
    assert!(top["manager"].is_null(), "{body}");
}

#[tokio::test]
async fn groups_show_their_fields_and_page_through_members() {
    let app = spawn_app().await;
    let data = app
        .graphql_data("{ me { memberOf(first: 50) { nodes { id displayName description mail securityEnabled mailEnabled groupTypes } } } }")
        .await;
    let groups = data["me"]["memberOf"]["nodes"].as_array().unwrap();
    assert!(
        groups
            .iter()
            .all(|g| g["id"].is_string() && g["displayName"].is_string())
    );
    // The biggest group the user is in pages in chunks of 4 without repeats.
    let group_id = groups[0]["id"].as_str().unwrap();
    let one = app
        .graphql_data(&format!("{{ group(id: \"{group_id}\") {{ id displayName description mail securityEnabled mailEnabled groupTypes }} }}"))
        .await;
    assert_eq!(one["group"]["id"], json!(group_id));
    let mut seen = HashSet::new();
    let mut after = Value::Null;
    loop {
        let (_, body) = app
            .graphql_as(
                Some(&app.token),
                "query($g: ID!, $after: String) { group(id: $g) { members(first: 4, after: $after) { nodes { id } pageInfo { hasNextPage endCursor } } } }",
                json!({ "g": group_id, "after": after }),
            )
            .await;
        let members = &body["data"]["group"]["members"];
        for node in members["nodes"].as_array().unwrap() {
            assert!(seen.insert(node["id"].as_str().unwrap().to_owned()));
        }
        if !members["pageInfo"]["hasNextPage"].as_bool().unwrap() {
            break;
        }
        after = members["pageInfo"]["endCursor"].clone();
    }
    assert!(!seen.is_empty());
}

#[tokio::test]
async fn an_unknown_group_is_not_found() {
    let app = spawn_app().await;
    let body = app
        .graphql("{ group(id: \"00000000-0000-0000-0000-000000000000\") { displayName } }")
        .await;
    assert_eq!(code(&body), "NOT_FOUND", "{body}");
}
