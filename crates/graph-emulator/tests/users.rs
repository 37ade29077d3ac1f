//! `/users`: paging, `$select`, `$filter`, `$search`, `$count`, `$orderby`, `$expand`.

mod common;

use std::collections::HashSet;

use common::*;
use graph_emulator::{DEMO_USER_UPN, EmulatorConfig, TENANT_DOMAIN};
use reqwest::StatusCode;
use serde_json::Value;

const DEFAULT_USER_KEYS: [&str; 11] = [
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

fn upns(items: &[Value]) -> Vec<String> {
    items
        .iter()
        .map(|u| {
            u["userPrincipalName"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect()
}

#[tokio::test]
async fn paging_through_all_users_with_top_7_returns_each_user_exactly_once() {
    let h = start().await;
    let first = h.get("/users?$top=7").await;
    assert_eq!(first.status, StatusCode::OK);
    let body = first.json();
    assert_eq!(
        body["@odata.context"],
        "https://graph.microsoft.com/v1.0/$metadata#users"
    );
    assert_eq!(body["value"].as_array().map(Vec::len), Some(7));
    let next = body["@odata.nextLink"].as_str().expect("nextLink");
    assert!(
        next.starts_with(&format!("{}/users?$top=7&$skiptoken=", h.emu.graph_url())),
        "{next}"
    );

    let (users, pages) = h.get_all("/users?$top=7", &[]).await;
    assert_eq!(users.len(), 60);
    assert_eq!(pages, 60usize.div_ceil(7));
    let ids: HashSet<&str> = users.iter().filter_map(|u| u["id"].as_str()).collect();
    assert_eq!(ids.len(), 60, "every user exactly once");
}

#[tokio::test]
async fn the_skiptoken_carries_the_original_query_to_later_pages() {
    let h = start().await;
    let (filtered, _) = h
        .get_all(
            "/users?$filter=accountEnabled eq true&$select=id,accountEnabled&$top=4",
            &[],
        )
        .await;
    assert!(filtered.len() > 4);
    for u in &filtered {
        assert_eq!(keys(u), sorted(vec!["accountEnabled", "id"]));
        assert_eq!(u["accountEnabled"], true);
    }
    let (all, _) = h
        .get_all("/users?$select=id,accountEnabled&$top=999", &[])
        .await;
    let enabled = all.iter().filter(|u| u["accountEnabled"] == true).count();
    assert_eq!(filtered.len(), enabled);
    assert!(enabled < all.len(), "some accounts are disabled");
    // A tampered token is refused.
    let reply = h.get("/users?$top=4&$skiptoken=bogus").await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.error_code(), "Request_BadRequest");
}

#[tokio::test]
async fn users_come_with_the_default_property_set_unless_select_names_exactly_what_to_return() {
    let h = start().await;
    let body = h.get("/users?$top=3").await.json();
    for u in body["value"].as_array().expect("value") {
        assert_eq!(keys(u), sorted(DEFAULT_USER_KEYS.to_vec()));
    }
    let reply = h.get(&format!("/users/{DEMO_USER_UPN}")).await;
    let user = reply.json();
    assert_eq!(
        user["@odata.context"],
        "https://graph.microsoft.com/v1.0/$metadata#users/$entity"
    );
    let mut expected = DEFAULT_USER_KEYS.to_vec();
    expected.push("@odata.context");
    assert_eq!(keys(&user), sorted(expected));
    assert!(user.get("department").is_none());

    let user = h
        .get(&format!(
            "/users/{DEMO_USER_UPN}?$select=displayName,department,accountEnabled,postalCode"
        ))
        .await
        .json();
    assert_eq!(
        user["@odata.context"],
        "https://graph.microsoft.com/v1.0/$metadata#users(displayName,department,accountEnabled,postalCode)/$entity"
    );
    assert_eq!(
        keys(&user),
        sorted(vec![
            "@odata.context",
            "displayName",
            "department",
            "accountEnabled",
            "postalCode"
        ])
    );
    assert_eq!(user["department"], "Engineering");
    assert_eq!(user["accountEnabled"], true);

    let list = h.get("/users?$select=id,displayName&$top=2").await.json();
    assert_eq!(
        list["@odata.context"],
        "https://graph.microsoft.com/v1.0/$metadata#users(id,displayName)"
    );
    let reply = h.get("/users?$select=id,favouriteColour").await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.error_code(), "BadRequest");
}

#[tokio::test]
async fn a_user_is_found_by_id_or_case_insensitive_upn_including_guests() {
    let h = start().await;
    let id = h.user_id(DEMO_USER_UPN).await;
    let by_id = h.get(&format!("/users/{id}")).await.json();
    assert_eq!(by_id["userPrincipalName"], DEMO_USER_UPN);
    let by_upper = h
        .get(&format!("/users/{}", DEMO_USER_UPN.to_uppercase()))
        .await
        .json();
    assert_eq!(by_upper["id"], id.as_str());
    let encoded = DEMO_USER_UPN.replace('@', "%40");
    assert_eq!(
        h.get(&format!("/users/{encoded}")).await.json()["id"],
        id.as_str()
    );

    // The B2B guest has an #EXT# UPN, which must be percent-encoded in a URL.
    let guests = h
        .get_eventual("/users?$filter=userType eq 'Guest'&$count=true&$select=id,userPrincipalName,userType,mail")
        .await
        .json();
    let guest = &guests["value"][0];
    let upn = guest["userPrincipalName"].as_str().expect("guest upn");
    assert!(
        upn.contains("#EXT#@") && upn.ends_with(TENANT_DOMAIN),
        "{upn}"
    );
    let found = h.get(&format!("/users/{}", upn.replace('#', "%23"))).await;
    assert_eq!(found.status, StatusCode::OK, "{}", found.text);
    assert_eq!(found.json()["id"], guest["id"]);
}

#[tokio::test]
async fn an_unknown_user_is_a_404_request_resource_not_found() {
    let h = start().await;
    let reply = h.get("/users/00000000-0000-0000-0000-000000000000").await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_eq!(reply.error_code(), "Request_ResourceNotFound");
    assert_eq!(
        reply.error_message(),
        "Resource '00000000-0000-0000-0000-000000000000' does not exist or one of its queried reference-property objects are not present."
    );
    let reply = h.get("/users/nobody@kestrelridge.example/manager").await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn filter_supports_eq_startswith_in_and_or_and_doubled_quotes() {
    let h = start().await;
    let get = |filter: String| {
        let h = &h;
        async move {
            let reply = h.get(&format!("/users?$top=999&$filter={filter}")).await;
            assert_eq!(reply.status, StatusCode::OK, "{filter}: {}", reply.text);
            reply.json()["value"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        }
    };
    let demo = get(format!(
        "userPrincipalName eq '{}'",
        DEMO_USER_UPN.to_uppercase()
    ))
    .await;
    assert_eq!(upns(&demo), vec![DEMO_USER_UPN]);

    // An apostrophe in the data: quotes are doubled in the literal.
    let obrien = get("surname eq 'O''Brien'".to_string()).await;
    assert_eq!(obrien.len(), 1);
    assert_eq!(obrien[0]["displayName"], "Siobhan O'Brien");
    let obrien = get("startswith(displayName,'siobhan o''b')".to_string()).await;
    assert_eq!(obrien.len(), 1);

    let engineers = get("department eq 'Engineering'".to_string()).await;
    assert!(engineers.len() > 3);
    let tg = get("startswith(givenName,'tam') and surname eq 'greaves'".to_string()).await;
    assert_eq!(upns(&tg), vec![DEMO_USER_UPN]);
    let either = get(format!(
        "userPrincipalName in ('{DEMO_USER_UPN}', 'nobody@{TENANT_DOMAIN}') or surname eq 'O''Brien'"
    ))
    .await;
    assert_eq!(either.len(), 2);
    let grouped = get(
        "(givenName eq 'Tamsin' or givenName eq 'Siobhan') and surname eq 'Greaves'".to_string(),
    )
    .await;
    assert_eq!(upns(&grouped), vec![DEMO_USER_UPN]);
}

#[tokio::test]
async fn filters_graph_rejects_are_400s_and_advanced_ones_need_consistency_level() {
    let h = start().await;
    for (filter, code) in [
        ("displayName eq", "BadRequest"),
        ("displayName eq 'unterminated", "BadRequest"),
        ("shoeSize eq 'x'", "BadRequest"),
        ("accountEnabled eq 'yes'", "BadRequest"),
        ("contains(displayName,'a')", "Request_UnsupportedQuery"),
        ("displayName ne 'x'", "Request_UnsupportedQuery"),
        ("not(displayName eq 'x')", "Request_UnsupportedQuery"),
        ("endswith(mail,'.example')", "Request_UnsupportedQuery"),
        ("startswith(accountEnabled,'t')", "Request_UnsupportedQuery"),
        ("officeLocation eq '10/101'", "Request_UnsupportedQuery"),
    ] {
        let reply = h.get(&format!("/users?$filter={filter}")).await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "{filter}: {}",
            reply.text
        );
        assert_eq!(reply.error_code(), code, "{filter}: {}", reply.text);
    }
    let reply = h.get("/users?$filter=displayName eq").await;
    assert!(
        reply.error_message().starts_with("Invalid filter clause"),
        "{}",
        reply.text
    );

    // As advanced queries (header + $count=true), ne / not / endsWith work.
    let reply = h
        .get_eventual(&format!("/users?$count=true&$top=999&$filter=endswith(mail,'@{TENANT_DOMAIN}') and userType ne 'Guest'"))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let body = reply.json();
    assert_eq!(body["@odata.count"], 59);
    let reply = h.get_eventual("/users?$filter=endswith(mail,'x')").await;
    assert_eq!(
        reply.status,
        StatusCode::BAD_REQUEST,
        "header alone is not enough"
    );
}

#[tokio::test]
async fn top_outside_1_to_999_is_a_400() {
    let h = start().await;
    for top in ["0", "1000", "abc", "-1"] {
        let reply = h.get(&format!("/users?$top={top}")).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{top}");
        assert_eq!(reply.error_code(), "Request_BadRequest");
    }
    assert_eq!(h.get("/users?$top=999").await.status, StatusCode::OK);
    let default_page = h.get("/users").await.json();
    assert_eq!(default_page["value"].as_array().map(Vec::len), Some(60));
    assert!(default_page.get("@odata.nextLink").is_none());
}

#[tokio::test]
async fn count_needs_consistency_level_eventual() {
    let h = start().await;
    // The $count segment: 400 without the header, text/plain with it.
    let reply = h.get("/users/$count").await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.error_code(), "Request_BadRequest");
    let reply = h.get_eventual("/users/$count").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.header("content-type"), Some("text/plain"));
    assert_eq!(reply.text, "60");
    let reply = h
        .get_eventual("/users/$count?$filter=department eq 'Engineering'")
        .await;
    assert!(reply.text.parse::<usize>().expect("number") < 60);

    // $count=true: silently ignored without the header, on the first page only with it.
    let body = h.get("/users?$count=true&$top=5").await.json();
    assert!(body.get("@odata.count").is_none());
    let body = h.get_eventual("/users?$count=true&$top=5").await.json();
    assert_eq!(body["@odata.count"], 60);
    let next = body["@odata.nextLink"]
        .as_str()
        .expect("nextLink")
        .to_string();
    let page2 = h.get_eventual(&next).await.json();
    assert!(page2.get("@odata.count").is_none());
    assert_eq!(page2["value"].as_array().map(Vec::len), Some(5));
}

#[tokio::test]
async fn search_needs_consistency_level_and_matches_display_name_words() {
    let h = start().await;
    let reply = h.get("/users?$search=\"displayName:greav\"").await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.error_code(), "Request_UnsupportedQuery");
    assert!(reply.error_message().contains("ConsistencyLevel: eventual"));

    let reply = h.get_eventual("/users?$search=\"displayName:greav\"").await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert!(
        upns(reply.json()["value"].as_array().expect("value")).contains(&DEMO_USER_UPN.to_string())
    );

    // "brien" is a word of "O'Brien"; "amsin" is no word's prefix.
    let body = h
        .get_eventual("/users?$search=\"displayName:brien\"")
        .await
        .json();
    assert_eq!(body["value"][0]["surname"], "O'Brien");
    let body = h
        .get_eventual("/users?$search=\"displayName:amsin\"")
        .await
        .json();
    assert_eq!(body["value"].as_array().map(Vec::len), Some(0));

    let body = h
        .get_eventual("/users?$search=\"displayName:greaves\" OR \"mail:siobhan\"&$orderby=displayName&$count=true")
        .await
        .json();
    assert_eq!(body["@odata.count"], 2);
    let names: Vec<&str> = body["value"]
        .as_array()
        .expect("value")
        .iter()
        .filter_map(|u| u["displayName"].as_str())
        .collect();
    assert_eq!(names, vec!["Siobhan O'Brien", "Tamsin Greaves"]);
}

#[tokio::test]
async fn orderby_display_name_works_by_default_and_other_properties_need_advanced_queries() {
    let h = start().await;
    let body = h
        .get("/users?$orderby=displayName&$top=999&$select=displayName")
        .await
        .json();
    let names: Vec<String> = body["value"]
        .as_array()
        .expect("value")
        .iter()
        .filter_map(|u| u["displayName"].as_str().map(str::to_lowercase))
        .collect();
    let mut sorted_names = names.clone();
    sorted_names.sort();
    assert_eq!(names, sorted_names);
    let body = h.get("/users?$orderby=userPrincipalName desc&$top=2").await;
    assert_eq!(body.status, StatusCode::OK);

    let reply = h.get("/users?$orderby=jobTitle").await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.error_code(), "Request_UnsupportedQuery");
    let reply = h
        .get("/users?$orderby=displayName&$filter=startswith(displayName,'a')")
        .await;
    assert_eq!(
        reply.status,
        StatusCode::BAD_REQUEST,
        "filter + orderby is advanced"
    );
    let reply = h
        .get_eventual("/users?$orderby=jobTitle&$count=true&$filter=startswith(displayName,'a')")
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
}

#[tokio::test]
async fn expand_manager_on_a_list_and_on_a_single_user() {
    let h = start().await;
    let body = h
        .get("/users?$select=id,displayName&$expand=manager($select=id,displayName)&$top=999")
        .await
        .json();
    let users = body["value"].as_array().expect("value");
    let without_manager = users.iter().filter(|u| u.get("manager").is_none()).count();
    assert_eq!(
        without_manager, 2,
        "only the CEO (and the shared mailbox, not a person) lacks a manager"
    );
    let with = users
        .iter()
        .find(|u| u.get("manager").is_some())
        .expect("someone has a manager");
    assert_eq!(
        keys(&with["manager"]),
        sorted(vec!["@odata.type", "id", "displayName"])
    );
    assert_eq!(with["manager"]["@odata.type"], "#microsoft.graph.user");

    let single = h
        .get(&format!("/users/{DEMO_USER_UPN}?$expand=manager"))
        .await
        .json();
    let manager = &single["manager"];
    assert_eq!(manager["jobTitle"], "VP of Engineering");
    assert!(manager.get("userPrincipalName").is_some());
}

#[tokio::test]
async fn the_ceo_has_no_manager_and_gets_a_404() {
    let h = start().await;
    let ceo = h.ceo().await;
    assert_eq!(ceo["jobTitle"], "Chief Executive Officer");
    let reply = h
        .get(&format!(
            "/users/{}/manager",
            ceo["id"].as_str().expect("id")
        ))
        .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_eq!(reply.error_code(), "Request_ResourceNotFound");
    assert_eq!(
        reply.error_message(),
        "Resource 'manager' does not exist or one of its queried reference-property objects are not present."
    );
}

#[tokio::test]
async fn the_manager_of_a_user_is_a_directory_object_with_its_type() {
    let h = start().await;
    let body = h
        .get(&format!("/users/{DEMO_USER_UPN}/manager"))
        .await
        .json();
    assert_eq!(body["@odata.type"], "#microsoft.graph.user");
    assert_eq!(
        body["@odata.context"],
        "https://graph.microsoft.com/v1.0/$metadata#directoryObjects/$entity"
    );
    assert_eq!(body["jobTitle"], "VP of Engineering");
    let selected = h
        .get(&format!("/users/{DEMO_USER_UPN}/manager?$select=id,mail"))
        .await
        .json();
    assert_eq!(
        keys(&selected),
        sorted(vec!["@odata.context", "@odata.type", "id", "mail"])
    );
}

#[tokio::test]
async fn the_management_chain_expands_with_levels_max() {
    let h = start_with(EmulatorConfig {
        users: 500,
        ..EmulatorConfig::default()
    })
    .await;
    // Pick someone deep in the tree: a user whose manager has a manager who has a manager.
    let body = h
        .get_eventual("/users?$expand=manager($levels=max;$select=id,displayName)&$select=id,displayName&$count=true&$top=999")
        .await
        .json();
    let depth = |u: &Value| {
        let mut d = 0;
        let mut cur = u;
        while let Some(m) = cur.get("manager") {
            d += 1;
            cur = m;
        }
        d
    };
    let deepest = body["value"]
        .as_array()
        .expect("value")
        .iter()
        .map(depth)
        .max()
        .unwrap_or(0);
    assert!(
        deepest >= 3,
        "a chain of at least 3 managers above someone, got {deepest}"
    );
}

#[tokio::test]
async fn collection_options_on_a_single_user_are_rejected() {
    let h = start().await;
    let reply = h.get(&format!("/users/{DEMO_USER_UPN}?$top=5")).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    // $count=true is tolerated on a single entity (the manager-chain example sends it).
    let reply = h
        .get_eventual(&format!("/users/{DEMO_USER_UPN}?$select=id&$count=true"))
        .await;
    assert_eq!(reply.status, StatusCode::OK);
}
