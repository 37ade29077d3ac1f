//! The Graph side of the identity features: transitive memberships, proxy addresses,
//! delegated permissions, and the fixed identity users.

mod common;

use std::collections::HashSet;

use common::*;
use graph_emulator::{
    CONSENT_USER_UPN, DEFAULT_CLIENT_ID, DEMO_USER_UPN, EmulatorConfig, MFA_USER_UPN, TENANT_DOMAIN,
};
use reqwest::StatusCode;
use serde_json::Value;

fn ids(items: &[Value]) -> Vec<String> {
    items
        .iter()
        .map(|v| v["id"].as_str().expect("id").to_string())
        .collect()
}

#[tokio::test]
async fn transitive_members_reach_users_through_a_nested_group_once() {
    let h = start().await;
    let leadership = h.group_id("Extended Leadership").await;
    let managers = h.group_id("People Managers").await;

    let (direct, _) = h
        .get_all(&format!("/groups/{leadership}/members?$top=999"), &[])
        .await;
    assert!(
        direct.iter().any(|m| m["id"] == managers.as_str()),
        "People Managers is a direct member"
    );
    let (manager_users, _) = h
        .get_all(
            &format!("/groups/{managers}/members/microsoft.graph.user?$select=id&$top=999"),
            &[],
        )
        .await;

    // Users only, paged 7 at a time, with $select.
    let (users, pages) = h
        .get_all(
            &format!(
                "/groups/{leadership}/transitiveMembers/microsoft.graph.user?$select=id,displayName&$top=7"
            ),
            &[],
        )
        .await;
    assert!(pages > 1, "paged through nextLink");
    let user_ids = ids(&users);
    let unique: HashSet<&String> = user_ids.iter().collect();
    assert_eq!(unique.len(), user_ids.len(), "de-duplicated");
    for m in ids(&manager_users) {
        assert!(user_ids.contains(&m), "nested member {m} missing");
    }
    for d in direct
        .iter()
        .filter(|m| m["@odata.type"] == "#microsoft.graph.user")
    {
        assert!(user_ids.contains(&d["id"].as_str().expect("id").to_string()));
    }
    assert_eq!(
        users[0]
            .as_object()
            .expect("object")
            .keys()
            .collect::<Vec<_>>(),
        vec!["displayName", "id"]
    );

    // Without the cast, the nested group itself is listed too.
    let (all, _) = h
        .get_all(
            &format!("/groups/{leadership}/transitiveMembers?$top=999"),
            &[],
        )
        .await;
    assert!(
        all.iter()
            .any(|m| m["id"] == managers.as_str() && m["@odata.type"] == "#microsoft.graph.group")
    );
    assert_eq!(all.len(), users.len() + 1);
    // $top is capped at 999.
    let reply = h
        .get(&format!("/groups/{leadership}/transitiveMembers?$top=1000"))
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn transitive_member_of_includes_groups_reached_through_nesting() {
    let h = start().await;
    let leadership = h.group_id("Extended Leadership").await;
    let direct = h
        .get(&format!(
            "/users/{DEMO_USER_UPN}/memberOf/microsoft.graph.group?$select=id"
        ))
        .await
        .json();
    assert!(!ids(direct["value"].as_array().expect("value")).contains(&leadership));
    let transitive = h
        .get(&format!(
            "/users/{DEMO_USER_UPN}/transitiveMemberOf/microsoft.graph.group?$select=id,displayName"
        ))
        .await;
    assert_eq!(transitive.status, StatusCode::OK, "{}", transitive.text);
    let groups = ids(transitive.json()["value"].as_array().expect("value"));
    assert!(groups.contains(&leadership));
    // The directory role shows up without the cast.
    let all = h
        .get(&format!("/users/{DEMO_USER_UPN}/transitiveMemberOf"))
        .await
        .json();
    assert!(
        all["value"]
            .as_array()
            .expect("value")
            .iter()
            .any(|o| o["@odata.type"] == "#microsoft.graph.directoryRole")
    );
    // And /me works with a delegated token.
    let token = h
        .emu
        .emulator
        .issue_delegated_token(DEFAULT_CLIENT_ID, DEMO_USER_UPN, &["GroupMember.Read.All"])
        .expect("token");
    let mine = h
        .get_with_token("/me/transitiveMemberOf/microsoft.graph.group", Some(&token))
        .await;
    assert_eq!(mine.status, StatusCode::OK, "{}", mine.text);
}

#[tokio::test]
async fn proxy_addresses_come_only_with_select_and_filter_case_insensitively() {
    let h = start().await;
    let plain = h.get(&format!("/users/{DEMO_USER_UPN}")).await.json();
    assert!(plain.get("proxyAddresses").is_none());
    let selected = h
        .get(&format!(
            "/users/{DEMO_USER_UPN}?$select=mail,proxyAddresses,otherMails"
        ))
        .await
        .json();
    assert_eq!(
        selected["proxyAddresses"],
        serde_json::json!([
            format!("SMTP:{DEMO_USER_UPN}"),
            format!("smtp:tgreaves@{TENANT_DOMAIN}")
        ])
    );
    assert_eq!(selected["otherMails"].as_array().map(Vec::len), Some(1));

    let by_alias = h
        .get(&format!(
            "/users?$filter=proxyAddresses/any(p:p eq 'SMTP:TGreaves@{TENANT_DOMAIN}')&$select=userPrincipalName"
        ))
        .await;
    assert_eq!(by_alias.status, StatusCode::OK, "{}", by_alias.text);
    assert_eq!(
        by_alias.json()["value"],
        serde_json::json!([{"userPrincipalName": DEMO_USER_UPN}])
    );
    let by_mail = h
        .get(&format!(
            "/users?$filter=mail eq '{}'&$select=userPrincipalName",
            DEMO_USER_UPN.to_uppercase()
        ))
        .await
        .json();
    assert_eq!(by_mail["value"][0]["userPrincipalName"], DEMO_USER_UPN);
    // Some users have an alias, some do not.
    let (all, _) = h
        .get_all("/users?$select=proxyAddresses&$top=999", &[])
        .await;
    let with_alias = all
        .iter()
        .filter(|u| u["proxyAddresses"].as_array().is_some_and(|p| p.len() > 1))
        .count();
    assert!(with_alias > 1 && with_alias < all.len(), "{with_alias}");
}

#[tokio::test]
async fn a_user_read_token_reads_its_own_user_by_id_but_not_other_users() {
    let h = start().await;
    let me = h.user_id(DEMO_USER_UPN).await;
    let other = h.user_id(MFA_USER_UPN).await;
    let user_read = h
        .emu
        .emulator
        .issue_delegated_token(DEFAULT_CLIENT_ID, DEMO_USER_UPN, &["User.Read"])
        .expect("token");
    for path in [
        format!("/users/{me}"),
        format!("/users/{}", DEMO_USER_UPN.to_uppercase()),
        format!("/users/{me}/manager"),
        "/me/memberOf".to_string(),
    ] {
        let reply = h.get_with_token(&path, Some(&user_read)).await;
        assert_eq!(reply.status, StatusCode::OK, "{path}: {}", reply.text);
    }
    let reply = h
        .get_with_token(&format!("/users/{other}"), Some(&user_read))
        .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN, "{}", reply.text);
    let basic = h
        .emu
        .emulator
        .issue_delegated_token(DEFAULT_CLIENT_ID, DEMO_USER_UPN, &["User.ReadBasic.All"])
        .expect("token");
    let reply = h
        .get_with_token(&format!("/users/{other}"), Some(&basic))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
}

#[tokio::test]
async fn the_identity_fixture_users_exist_for_any_seed_from_ten_users() {
    let h = start_with(EmulatorConfig {
        users: 10,
        seed: 7,
        ..EmulatorConfig::default()
    })
    .await;
    for upn in [DEMO_USER_UPN, MFA_USER_UPN, CONSENT_USER_UPN] {
        let reply = h
            .get(&format!(
                "/users/{upn}?$select=accountEnabled,userPrincipalName"
            ))
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{upn}: {}", reply.text);
        assert_eq!(reply.json()["accountEnabled"], true);
    }
}
