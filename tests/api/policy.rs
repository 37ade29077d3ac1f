//! Deny-by-default resource policy: rows 40–50 of the security catalogue.

use graph_emulator::DEMO_USER_UPN;
use m365_gateway::Config;
use m365_gateway::config::{CallerConfig, CallerMode, IssuerConfig, IssuerKey, Secret};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, spawn_app, spawn_app_with, test_config};

const SECRET: &str = "policy-tests-issuer-secret-0123456789abc";

/// The embedded default plus callers of an internal issuer, each with its resources.
fn config_with(callers: &[(&str, &[&str])]) -> Config {
    let mut config = test_config();
    config.issuers.insert(
        "internal".into(),
        IssuerConfig {
            issuer: "https://idp.internal.example".into(),
            audiences: vec!["m365-gateway".into()],
            key: IssuerKey::Hs256 {
                secret: Secret::new(SECRET),
            },
            client_claim: "azp".into(),
            leeway: std::time::Duration::from_secs(30),
        },
    );
    for (name, resources) in callers {
        config.callers.insert(
            name.to_string(),
            CallerConfig {
                issuer: "internal".into(),
                client_id: name.to_string(),
                mode: CallerMode::App,
                user_claim: None,
                operations: vec!["users.read".into(), "groups.read".into()],
                resources: resources.iter().map(|s| s.to_string()).collect(),
                send_as: Vec::new(),
                sites: Vec::new(),
                scopes: None,
            },
        );
    }
    config
}

fn token(caller: &str) -> String {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &json!({ "iss": "https://idp.internal.example", "aud": "m365-gateway", "azp": caller, "sub": caller, "exp": now + 600 }),
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap()
}

async fn user_as(app: &TestApp, caller: &str, id: &str) -> Value {
    let (_, body) = app
        .graphql_as(
            Some(&token(caller)),
            "query($id: ID!) { user(id: $id) { id userPrincipalName } }",
            json!({ "id": id }),
        )
        .await;
    body
}

fn code(body: &Value) -> &str {
    body["errors"][0]["extensions"]["code"]
        .as_str()
        .unwrap_or("<none>")
}

/// The demo user's and the CEO's directory facts, read with the demo caller (`*`).
async fn facts() -> (Value, Value) {
    let app = spawn_app().await;
    let me = app
        .graphql_data("{ me { id userPrincipalName mail } }")
        .await["me"]
        .clone();
    let ceo = app
        .graphql_data("{ me { manager { manager { manager { manager { id userPrincipalName } id userPrincipalName } id userPrincipalName } id userPrincipalName } } }")
        .await;
    let mut top = &ceo["me"];
    while !top["manager"].is_null() {
        top = &top["manager"];
    }
    (me, top.clone())
}

#[tokio::test]
async fn a_limited_caller_reaches_its_user_by_id_upn_in_any_case_and_mail_alias() {
    let (me, _) = facts().await;
    let app = spawn_app_with(config_with(&[("hr", &[DEMO_USER_UPN])])).await;
    let id = me["id"].as_str().unwrap();
    let alias = format!("tgreaves@{}", graph_emulator::TENANT_DOMAIN);
    for form in [
        id.to_owned(),
        id.to_uppercase(),
        DEMO_USER_UPN.to_uppercase(),
        alias,
    ] {
        let body = user_as(&app, "hr", &form).await;
        assert_eq!(
            body["data"]["user"]["id"].as_str(),
            Some(id),
            "{form}: {body}"
        );
    }
    // Upstream, the canonical object id is used whatever the caller wrote.
    app.reset_stats().await;
    user_as(&app, "hr", &DEMO_USER_UPN.to_uppercase()).await;
    assert_eq!(
        app.graph_requests().await,
        0,
        "answered from the cache of the id form"
    );
}

#[tokio::test]
async fn every_alias_of_an_out_of_policy_user_is_forbidden_with_zero_graph_calls() {
    let (_, ceo) = facts().await;
    let app = spawn_app_with(config_with(&[("hr", &[DEMO_USER_UPN])])).await;
    let id = ceo["id"].as_str().unwrap();
    let upn = ceo["userPrincipalName"].as_str().unwrap();
    let (local, domain) = upn.split_once('@').unwrap();
    let forms = vec![
        id.to_owned(),
        upn.to_owned(),
        upn.to_uppercase(),
        format!("{upn}."),
        format!("{upn} "),
        format!("users('{upn}')"),
        format!("{local}%40{domain}"),
        upn.replacen('e', "\u{0435}", 1),
        format!("{local}\u{FF20}{domain}"),
        format!("{local}\u{200D}@{domain}"),
    ];
    app.reset_stats().await;
    for form in &forms {
        let body = user_as(&app, "hr", form).await;
        assert_eq!(code(&body), "FORBIDDEN", "{form:?}: {body}");
        assert!(body["data"].is_null() || body["data"]["user"].is_null());
        let path = format!(
            "/api/v1/users/{}",
            form.replace('%', "%25").replace(' ', "%20")
        );
        let (status, _) = app.get_as(Some(&token("hr")), &path).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{form:?}");
    }
    let (status, _) = app
        .get_as(Some(&token("hr")), &format!("/api/v1/users/{id}/manager"))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(app.graph_requests().await, 0);
}

#[tokio::test]
async fn group_resources_cover_the_groups_members_and_nobody_else() {
    let demo = spawn_app().await;
    let data = demo
        .graphql_data(&format!("{{ user(id: \"{DEMO_USER_UPN}\") {{ memberOf(first: 50) {{ nodes {{ id securityEnabled groupTypes members(first: 100) {{ nodes {{ id }} }} }} }} }} }}"))
        .await;
    let groups = data["user"]["memberOf"]["nodes"].as_array().unwrap();
    // The smallest group the demo user is in.
    let group = groups
        .iter()
        .min_by_key(|g| g["members"]["nodes"].as_array().unwrap().len())
        .unwrap();
    let members: Vec<&str> = group["members"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["id"].as_str().unwrap())
        .collect();
    let everyone = demo
        .graphql_data("{ users(first: 100) { nodes { id } } }")
        .await;
    let outsider = everyone["users"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["id"].as_str().unwrap())
        .find(|id| !members.contains(id))
        .expect("someone outside the group");
    let resource = format!("group:{}", group["id"].as_str().unwrap());
    let app = spawn_app_with(config_with(&[("team", &[resource.as_str()])])).await;
    for member in &members {
        let body = user_as(&app, "team", member).await;
        assert!(body.get("errors").is_none(), "{member}: {body}");
    }
    let body = user_as(&app, "team", outsider).await;
    assert_eq!(code(&body), "FORBIDDEN", "{body}");
}

#[tokio::test]
async fn a_limited_caller_cannot_list_or_search_the_directory() {
    let app = spawn_app_with(config_with(&[("hr", &[DEMO_USER_UPN])])).await;
    let (_, body) = app
        .graphql_as(
            Some(&token("hr")),
            "{ users(first: 5) { nodes { id } } }",
            json!({}),
        )
        .await;
    assert_eq!(code(&body), "FORBIDDEN", "{body}");
    let (status, _) = app
        .get_as(Some(&token("hr")), "/api/v1/users?search=a")
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn a_caller_with_no_resources_may_address_nobody() {
    let (me, _) = facts().await;
    let app = spawn_app_with(config_with(&[("none", &[])])).await;
    let body = user_as(&app, "none", me["id"].as_str().unwrap()).await;
    assert_eq!(code(&body), "FORBIDDEN", "{body}");
}

#[tokio::test]
async fn row_47_a_caller_is_refused_what_another_caller_already_cached() {
    let (_, ceo) = facts().await;
    let app = spawn_app_with(config_with(&[("all", &["*"]), ("hr", &[DEMO_USER_UPN])])).await;
    let id = ceo["id"].as_str().unwrap();
    let body = user_as(&app, "all", id).await;
    assert!(body.get("errors").is_none(), "{body}");
    app.reset_stats().await;
    let body = user_as(&app, "hr", id).await;
    assert_eq!(code(&body), "FORBIDDEN");
    assert_eq!(app.graph_requests().await, 0);
}

#[tokio::test]
async fn row_49_a_reloaded_policy_applies_at_once_even_over_cached_answers() {
    let (me, _) = facts().await;
    let app = spawn_app_with(config_with(&[("hr", &[DEMO_USER_UPN])])).await;
    let id = me["id"].as_str().unwrap();
    assert!(user_as(&app, "hr", id).await.get("errors").is_none());
    app.reloader
        .reload(config_with(&[(
            "hr",
            &["00000000-0000-0000-0000-000000000001"],
        )]))
        .await
        .unwrap();
    let body = user_as(&app, "hr", id).await;
    assert_eq!(code(&body), "FORBIDDEN", "{body}");
    // And back: allowed again, fetched under the new policy version.
    app.reloader
        .reload(config_with(&[("hr", &[DEMO_USER_UPN])]))
        .await
        .unwrap();
    app.reset_stats().await;
    assert!(user_as(&app, "hr", id).await.get("errors").is_none());
    assert_eq!(
        app.graph_requests().await,
        1,
        "an answer cached under an older policy was served"
    );
}

#[tokio::test]
async fn row_50_errors_are_never_cached() {
    let app = spawn_app().await;
    app.graphql_data("{ me { id } }").await;
    app.reset_stats().await;
    for _ in 0..2 {
        let body = app
            .graphql("{ user(id: \"ghost@kestrelridge.example\") { id } }")
            .await;
        assert_eq!(code(&body), "NOT_FOUND");
    }
    assert_eq!(app.graph_requests().await, 2);
}

#[tokio::test]
async fn row_43_writes_and_method_overrides_are_refused_without_a_graph_call() {
    let app = spawn_app().await;
    app.reset_stats().await;
    let url = format!("{}/api/v1/users/{DEMO_USER_UPN}", app.base);
    let response = app
        .http
        .delete(&url)
        .bearer_auth(&app.token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "METHOD_NOT_ALLOWED");
    let response = app
        .http
        .post(&url)
        .bearer_auth(&app.token)
        .header("X-HTTP-Method-Override", "DELETE")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(app.graph_requests().await, 0);
}
