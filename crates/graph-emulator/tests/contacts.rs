//! Contacts: the seeded address book, folders, paging, `$select`, `$orderby`, `$filter`,
//! `$search`, create/update/delete, errors and permissions.

mod common;

use std::collections::HashSet;

use common::*;
use graph_emulator::{AppRegistration, DEFAULT_CLIENT_ID, DEMO_USER_UPN, EmulatorConfig};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const DEMO: &str = DEMO_USER_UPN;

fn values(body: &Value) -> Vec<Value> {
    body["value"].as_array().cloned().unwrap_or_default()
}

fn names(items: &[Value]) -> Vec<String> {
    items
        .iter()
        .map(|c| c["displayName"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[tokio::test]
async fn the_demo_user_has_25_contacts_and_a_suppliers_folder() {
    let h = start().await;
    let first = h.get(&format!("/users/{DEMO}/contacts")).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.text);
    let body = first.json();
    assert_eq!(values(&body).len(), 10, "default page size");
    assert!(
        body["@odata.nextLink"]
            .as_str()
            .is_some_and(|l| l.contains("$skip=10"))
    );
    let (all, pages) = h.get_all(&format!("/users/{DEMO}/contacts"), &[]).await;
    assert_eq!((all.len(), pages), (25, 3));
    let ids: HashSet<&str> = all.iter().filter_map(|c| c["id"].as_str()).collect();
    assert_eq!(ids.len(), 25);
    let domains: HashSet<String> = all
        .iter()
        .filter_map(|c| c["emailAddresses"][0]["address"].as_str())
        .filter_map(|a| a.split('@').nth(1).map(str::to_string))
        .collect();
    for d in [
        "kestrelridge.example",
        "contoso-partners.example",
        "fabrikam.example",
    ] {
        assert!(domains.contains(d), "{domains:?}");
    }
    let c = &all[0];
    let expected = sorted(vec![
        "@odata.etag",
        "id",
        "createdDateTime",
        "lastModifiedDateTime",
        "changeKey",
        "categories",
        "parentFolderId",
        "birthday",
        "fileAs",
        "displayName",
        "givenName",
        "initials",
        "middleName",
        "nickName",
        "surname",
        "title",
        "yomiGivenName",
        "yomiSurname",
        "yomiCompanyName",
        "generation",
        "emailAddresses",
        "imAddresses",
        "jobTitle",
        "companyName",
        "department",
        "officeLocation",
        "profession",
        "businessHomePage",
        "assistantName",
        "manager",
        "homePhones",
        "mobilePhone",
        "businessPhones",
        "homeAddress",
        "businessAddress",
        "otherAddress",
        "spouseName",
        "personalNotes",
        "children",
    ]);
    assert_eq!(keys(c), expected);

    let folders = h.get(&format!("/users/{DEMO}/contactFolders")).await.json();
    let list = values(&folders);
    assert_eq!(names_of(&list), ["Suppliers"]);
    let id = list[0]["id"].as_str().expect("id");
    assert_eq!(list[0]["parentFolderId"], all[0]["parentFolderId"]);
    let suppliers = h
        .get(&format!(
            "/users/{DEMO}/contactFolders/{}/contacts",
            enc(id)
        ))
        .await
        .json();
    assert_eq!(values(&suppliers).len(), 4);
    assert!(values(&suppliers).iter().all(|c| c["parentFolderId"] == id));
    let folder = h
        .get(&format!("/users/{DEMO}/contactFolders/{}", enc(id)))
        .await
        .json();
    assert_eq!(folder["displayName"], "Suppliers");
}

fn names_of(list: &[Value]) -> Vec<&str> {
    list.iter()
        .filter_map(|f| f["displayName"].as_str())
        .collect()
}

#[tokio::test]
async fn contacts_sort_select_filter_and_search() {
    let h = start().await;
    let sorted_reply = h
        .get(&format!("/users/{DEMO}/contacts?$orderby=displayName&$top=100&$select=displayName,emailAddresses"))
        .await;
    assert_eq!(sorted_reply.status, StatusCode::OK, "{}", sorted_reply.text);
    let list = values(&sorted_reply.json());
    let got = names(&list);
    let mut expected = got.clone();
    expected.sort_by_key(|s| s.to_lowercase());
    assert_eq!(got, expected);
    assert_eq!(
        keys(&list[0]),
        sorted(vec!["@odata.etag", "displayName", "emailAddresses", "id"])
    );
    let desc = h
        .get(&format!(
            "/users/{DEMO}/contacts?$orderby=displayName desc&$top=1"
        ))
        .await
        .json();
    assert_eq!(names(&values(&desc))[0], *expected.last().expect("last"));

    let reply = h
        .get(&format!("/users/{DEMO}/contacts?$filter=emailAddresses/any(a:a/address eq 'priya.raman@contoso-partners.example')"))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(names(&values(&reply.json())), ["Priya Raman"]);
    let fabrikam = h
        .get(&format!(
            "/users/{DEMO}/contacts?$filter=companyName eq 'Fabrikam, Inc.'&$top=100"
        ))
        .await
        .json();
    assert_eq!(values(&fabrikam).len(), 5);
    let starts = h
        .get(&format!(
            "/users/{DEMO}/contacts?$filter=startswith(displayName,'pri')"
        ))
        .await
        .json();
    assert_eq!(names(&values(&starts)), ["Priya Raman"]);
    let exact = h
        .get(&format!(
            "/users/{DEMO}/contacts?$filter=displayName eq 'Marcus Bell'"
        ))
        .await
        .json();
    assert_eq!(values(&exact).len(), 1);

    for (search, expected) in [
        ("\"raman\"", vec!["Priya Raman"]),
        ("\"CONTOSO-PARTNERS\"", vec![]),
    ] {
        let reply = h
            .get(&format!("/users/{DEMO}/contacts?$search={search}&$top=100"))
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
        let found = names(&values(&reply.json()));
        if expected.is_empty() {
            assert_eq!(found.len(), 5, "{found:?}");
        } else {
            assert_eq!(found, expected);
        }
    }
    for bad in [
        "$search=raman",
        "$search=\"raman\"&$filter=displayName eq 'x'",
        "$filter=bogus eq 'x'",
        "$orderby=bogus",
        "$select=bogus",
        "$top=1001",
    ] {
        let reply = h.get(&format!("/users/{DEMO}/contacts?{bad}")).await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "{bad}: {}",
            reply.text
        );
    }
}

#[tokio::test]
async fn contacts_are_created_updated_and_deleted() {
    let h = start().await;
    let reply = h
        .post(
            &format!("/users/{DEMO}/contacts"),
            &json!({
                "givenName": "Pavel",
                "surname": "Bansky",
                "emailAddresses": [{"address": "pavelb@fabrikam.example", "name": "Pavel Bansky"}],
                "businessPhones": ["+1 732 555 0102"],
            }),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    let c = reply.json();
    assert_eq!(c["displayName"], "Pavel Bansky");
    assert_eq!(c["fileAs"], "Bansky, Pavel");
    assert_eq!(c["homeAddress"], json!({}));
    let path = format!(
        "/users/{DEMO}/contacts/{}",
        enc(c["id"].as_str().expect("id"))
    );
    let reply = h
        .patch(
            &path,
            &json!({"homeAddress": {"street": "123 Some street", "city": "Seattle", "state": "WA", "postalCode": "98121"},
                    "birthday": "1974-07-22", "jobTitle": "Buyer"}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let u = reply.json();
    assert_eq!(u["homeAddress"]["city"], "Seattle");
    assert_eq!(u["jobTitle"], "Buyer");
    assert_ne!(u["changeKey"], c["changeKey"]);
    let reply = h.patch(&path, &json!({"id": "x"})).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.error_code(), "ErrorInvalidProperty");
    let reply = h.patch(&path, &json!({"favouriteColour": "green"})).await;
    assert_eq!(reply.error_code(), "RequestBodyRead");
    let reply = h
        .patch(&path, &json!({"businessPhones": "not a list"}))
        .await;
    assert_eq!(reply.error_code(), "RequestBodyRead");
    assert_eq!(h.get(&path).await.json()["birthday"], "1974-07-22");
    let (all, _) = h.get_all(&format!("/users/{DEMO}/contacts"), &[]).await;
    assert_eq!(all.len(), 26);

    // Into a folder.
    let folder = values(&h.get(&format!("/users/{DEMO}/contactFolders")).await.json())[0]["id"]
        .as_str()
        .expect("folder")
        .to_string();
    let reply = h
        .post(
            &format!("/users/{DEMO}/contactFolders/{}/contacts", enc(&folder)),
            &json!({"displayName": "Northwind Dispatch", "companyName": "Northwind Traders"}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED);
    assert_eq!(reply.json()["parentFolderId"], folder.as_str());

    assert_eq!(h.delete(&path).await.status, StatusCode::NO_CONTENT);
    let gone = h.get(&path).await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
    assert_eq!(gone.error_code(), "ErrorItemNotFound");
    let bad = h.get(&format!("/users/{DEMO}/contacts/nope")).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert_eq!(bad.error_code(), "ErrorInvalidIdMalformed");
    let bad = h
        .get(&format!("/users/{DEMO}/contactFolders/Suppliers/contacts"))
        .await;
    assert_eq!(bad.error_code(), "ErrorInvalidIdMalformed");
}

#[tokio::test]
async fn everyone_else_has_between_5_and_30_contacts() {
    let h = start().await;
    let users = h
        .get("/users?$top=40&$select=userPrincipalName,userType")
        .await
        .json();
    let mut checked = 0;
    for u in values(&users) {
        let upn = u["userPrincipalName"].as_str().expect("upn");
        if u["userType"] != "Member" || upn == DEMO || upn == graph_emulator::SHARED_MAILBOX_UPN {
            continue;
        }
        let (all, _) = h
            .get_all(&format!("/users/{upn}/contacts?$top=100"), &[])
            .await;
        assert!((5..=30).contains(&all.len()), "{upn}: {}", all.len());
        checked += 1;
    }
    assert!(checked > 20);
}

#[tokio::test]
async fn contact_permissions_are_checked() {
    let mail_only = AppRegistration::confidential(
        "8e4f2b5d-0a6c-4b1d-c9f4-3c5b6a7d8e9f",
        "mail-only-secret",
        "mail-only",
        ["Mail.Read"],
    );
    let mut config = EmulatorConfig::default();
    config.apps.push(mail_only.clone());
    let h = start_with(config).await;
    let token = fetch_token(
        &h.client,
        &h.emu.base_url(),
        &mail_only.client_id,
        &mail_only.client_secret,
    )
    .await;
    let reply = h
        .call(
            Method::GET,
            &format!("/users/{DEMO}/contacts"),
            None,
            Some(&token),
            &[],
        )
        .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    assert_eq!(reply.error_code(), "ErrorAccessDenied");
    let read = h
        .emu
        .emulator
        .issue_delegated_token(DEFAULT_CLIENT_ID, DEMO, &["Contacts.Read"])
        .expect("token");
    let reply = h
        .call(Method::GET, "/me/contacts", None, Some(&read), &[])
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let reply = h
        .call(
            Method::POST,
            "/me/contacts",
            Some(&json!({"displayName": "x"})),
            Some(&read),
            &[],
        )
        .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    let write = h
        .emu
        .emulator
        .issue_delegated_token(DEFAULT_CLIENT_ID, DEMO, &["Contacts.ReadWrite"])
        .expect("token");
    let reply = h
        .call(
            Method::POST,
            "/me/contacts",
            Some(&json!({"displayName": "x"})),
            Some(&write),
            &[],
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED);
    let mgr = h
        .get(&format!("/users/{DEMO}/manager?$select=mail"))
        .await
        .json()["mail"]
        .as_str()
        .expect("mgr")
        .to_string();
    let reply = h
        .call(
            Method::GET,
            &format!("/users/{mgr}/contacts"),
            None,
            Some(&read),
            &[],
        )
        .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
}
