//! Contacts through the gateway, in GraphQL and REST.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::spawn_app;

#[tokio::test]
async fn contacts_are_listed_searched_created_updated_and_deleted() {
    let app = spawn_app().await;
    let data = app
        .graphql_data("{ me { contacts(first: 50) { nodes { id displayName emailAddresses { address } companyName } } contactFolders(first: 10) { nodes { id displayName } } } }")
        .await;
    let all = data["me"]["contacts"]["nodes"].as_array().unwrap();
    assert!(all.len() >= 5, "{data}");
    let folders = data["me"]["contactFolders"]["nodes"].as_array().unwrap();
    assert!(!folders.is_empty(), "{data}");

    // Search by a word of someone's company or name.
    let target = &all[0];
    let word = target["displayName"]
        .as_str()
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned();
    let (_, body) = app
        .graphql_as(
            Some(&app.token),
            "query($q: String!) { me { contacts(search: $q, first: 25) { nodes { id displayName } } } }",
            json!({ "q": word }),
        )
        .await;
    let found = body["data"]["me"]["contacts"]["nodes"]
        .as_array()
        .unwrap_or_else(|| panic!("{body}"));
    assert!(found.iter().any(|c| c["id"] == target["id"]), "{body}");

    let (_, body) = app
        .graphql_as(
            Some(&app.token),
            "mutation($c: ContactInput!) { createContact(mailbox: \"me\", contact: $c) { id displayName emailAddresses { address } businessAddress { city } } }",
            json!({ "c": { "givenName": "Ines", "surname": "Okoro", "displayName": "Ines Okoro", "emailAddresses": ["ines.okoro@fabrikam.example"], "companyName": "Fabrikam", "businessAddress": { "city": "Lagos" } } }),
        )
        .await;
    let created = &body["data"]["createContact"];
    assert_eq!(created["displayName"], "Ines Okoro", "{body}");
    assert_eq!(created["businessAddress"]["city"], "Lagos");
    let id = created["id"].as_str().unwrap().to_owned();
    let (_, body) = app
        .graphql_as(
            Some(&app.token),
            "mutation($id: ID!) { updateContact(mailbox: \"me\", id: $id, contact: { jobTitle: \"Buyer\" }) { jobTitle displayName } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(body["data"]["updateContact"]["jobTitle"], "Buyer", "{body}");
    assert_eq!(body["data"]["updateContact"]["displayName"], "Ines Okoro");

    let enc =
        percent_encoding::utf8_percent_encode(&id, percent_encoding::NON_ALPHANUMERIC).to_string();
    let (status, rest) = app.get(&format!("/api/v1/users/me/contacts/{enc}")).await;
    assert_eq!(status, StatusCode::OK, "{rest}");
    assert_eq!(rest["job_title"], "Buyer");
    let response = app
        .http
        .delete(format!("{}/api/v1/users/me/contacts/{enc}", app.base))
        .bearer_auth(&app.token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let body = app
        .graphql(&format!("{{ me {{ contact(id: \"{id}\") {{ id }} }} }}"))
        .await;
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "NOT_FOUND",
        "{body}"
    );
}

#[tokio::test]
async fn bad_contact_input_is_refused_before_graph() {
    let app = spawn_app().await;
    app.graphql_data("{ me { id } }").await;
    app.reset_stats().await;
    for contact in [
        json!({ "emailAddresses": ["not an address"], "displayName": "x" }),
        json!({ "companyName": "Only a company" }),
    ] {
        let (_, body) = app
            .graphql_as(
                Some(&app.token),
                "mutation($c: ContactInput!) { createContact(mailbox: \"me\", contact: $c) { id } }",
                json!({ "c": contact }),
            )
            .await;
        assert_eq!(
            body["errors"][0]["extensions"]["code"], "BAD_USER_INPUT",
            "{body}"
        );
    }
    let response = app
        .http
        .post(format!("{}/api/v1/users/me/contacts", app.base))
        .bearer_auth(&app.token)
        .json(&json!({ "contact": { "display_name": "x", "nickname": "unknown field" } }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "BAD_USER_INPUT");
    assert_eq!(app.graph_requests().await, 0);
}
