//! Who may read and write drives and sites: app roles, `Sites.Selected` grants, and
//! delegated scopes (one's own drive, every drive, site libraries).

mod common;

use common::*;
use graph_emulator::{AppRegistration, CONTRACTS_SITE_PATH, DEMO_USER_UPN, FINANCE_SITE_PATH};
use reqwest::{Method, StatusCode};
use serde_json::json;

async fn app_token(h: &Harness, id: &str, roles: &[&str]) -> String {
    h.emu.emulator.register_app(AppRegistration::confidential(
        id,
        "secret-of-a-test-app",
        format!("test app {id}"),
        roles.iter().copied(),
    ));
    fetch_token(&h.client, &h.emu.base_url(), id, "secret-of-a-test-app").await
}

async fn status(h: &Harness, method: Method, path: &str, token: &str) -> StatusCode {
    let r = match method {
        Method::PUT => {
            h.bytes_request(Method::PUT, path, b"bytes".to_vec(), true, Some(token), &[])
                .await
        }
        Method::POST => {
            h.call(Method::POST, path, Some(&json!({"name": "New folder", "folder": {}, "@microsoft.graph.conflictBehavior": "rename"})), Some(token), &[])
                .await
        }
        m => h.call(m, path, None, Some(token), &[]).await,
    };
    if r.status == StatusCode::FORBIDDEN {
        assert_eq!(r.error_code(), "accessDenied", "{}", r.text);
        assert_eq!(r.error_message(), "Access denied");
    }
    r.status
}

#[tokio::test]
async fn app_roles_decide_who_reads_and_who_writes() {
    let h = start().await;
    let drive = h.demo_drive();
    let finance = h.emu.emulator.site_id(FINANCE_SITE_PATH).expect("finance");
    let reads = [
        format!("/drives/{drive}"),
        format!("/users/{DEMO_USER_UPN}/drive/root/children"),
        format!("/drives/{drive}/root:/Documents/Notes.txt:"),
        format!("/drives/{drive}/root/delta?token=latest"),
        "/sites?search=*".to_string(),
        format!("/sites/{finance}"),
        format!("/sites/{finance}/drive/root/children"),
    ];
    let put = format!("/drives/{drive}/root:/perm.txt:/content");
    let folder = format!("/sites/{finance}/drive/root/children");
    for (id, roles, can_read, can_write) in [
        (
            "11111111-0000-0000-0000-000000000001",
            vec!["Files.Read.All"],
            true,
            false,
        ),
        (
            "11111111-0000-0000-0000-000000000002",
            vec!["Sites.Read.All"],
            true,
            false,
        ),
        (
            "11111111-0000-0000-0000-000000000003",
            vec!["Files.ReadWrite.All"],
            true,
            true,
        ),
        (
            "11111111-0000-0000-0000-000000000004",
            vec!["Sites.ReadWrite.All"],
            true,
            true,
        ),
        (
            "11111111-0000-0000-0000-000000000005",
            vec!["User.Read.All", "Mail.ReadWrite"],
            false,
            false,
        ),
    ] {
        let token = app_token(&h, id, &roles).await;
        for path in &reads {
            let s = status(&h, Method::GET, path, &token).await;
            let expected = if can_read {
                StatusCode::OK
            } else {
                StatusCode::FORBIDDEN
            };
            assert_eq!(s, expected, "{roles:?} GET {path}");
        }
        let expected = |created: StatusCode| {
            if can_write {
                created
            } else {
                StatusCode::FORBIDDEN
            }
        };
        // The first writer creates the file, later ones replace it.
        let put_status = status(&h, Method::PUT, &put, &token).await;
        if can_write {
            assert!(
                put_status == StatusCode::CREATED || put_status == StatusCode::OK,
                "{roles:?} PUT {put_status}"
            );
        } else {
            assert_eq!(put_status, StatusCode::FORBIDDEN, "{roles:?} PUT");
        }
        assert_eq!(
            status(&h, Method::POST, &folder, &token).await,
            expected(StatusCode::CREATED),
            "{roles:?} POST"
        );
        let session = h
            .call(
                Method::POST,
                &format!("/drives/{drive}/root:/s.bin:/createUploadSession"),
                Some(&json!({"item": {"@microsoft.graph.conflictBehavior": "replace"}})),
                Some(&token),
                &[],
            )
            .await;
        assert_eq!(
            session.status,
            expected(StatusCode::OK),
            "{roles:?} session"
        );
    }
}

#[tokio::test]
async fn sites_selected_reaches_only_the_sites_granted_to_the_app() {
    let h = start().await;
    let app = "22222222-0000-0000-0000-000000000001";
    let token = app_token(&h, app, &["Sites.Selected"]).await;
    let emu = &h.emu.emulator;
    let finance = emu.site_id(FINANCE_SITE_PATH).expect("finance");
    let contracts = emu.site_id(CONTRACTS_SITE_PATH).expect("contracts");
    let drive = h.demo_drive();

    let search = h
        .call(Method::GET, "/sites?search=*", None, Some(&token), &[])
        .await;
    assert_eq!(search.status, StatusCode::OK, "{}", search.text);
    assert_eq!(search.json()["value"], json!([]));
    for path in [
        format!("/sites/{finance}"),
        format!("/sites/{finance}/drive"),
        format!("/sites/{finance}/drive/root/children"),
        format!("/drives/{drive}"),
        format!("/users/{DEMO_USER_UPN}/drive"),
    ] {
        assert_eq!(
            status(&h, Method::GET, &path, &token).await,
            StatusCode::FORBIDDEN,
            "{path}"
        );
    }

    // Read on Finance (over HTTP).
    let grant = h
        .client
        .post(format!(
            "{}/_emulator/sites/{finance}/permissions",
            h.emu.base_url()
        ))
        .json(&json!({"appId": app, "roles": ["read"]}))
        .send()
        .await
        .expect("grant");
    assert_eq!(grant.status(), StatusCode::NO_CONTENT);
    let search = h
        .call(Method::GET, "/sites?search=*", None, Some(&token), &[])
        .await
        .json();
    assert_eq!(search["value"].as_array().map(Vec::len), Some(1));
    assert_eq!(search["value"][0]["id"], finance);
    for path in [
        format!("/sites/{finance}"),
        format!("/sites/{finance}/drives"),
        format!("/sites/{finance}/drive/root/children"),
        format!("/sites/{finance}/drive/root/delta"),
    ] {
        assert_eq!(
            status(&h, Method::GET, &path, &token).await,
            StatusCode::OK,
            "{path}"
        );
    }
    let invoices = emu
        .site_drive_id(FINANCE_SITE_PATH, "Invoices")
        .expect("invoices");
    assert_eq!(
        status(
            &h,
            Method::GET,
            &format!("/drives/{invoices}/root/children"),
            &token
        )
        .await,
        StatusCode::OK
    );
    assert_eq!(
        status(
            &h,
            Method::PUT,
            &format!("/sites/{finance}/drive/root:/x.txt:/content"),
            &token
        )
        .await,
        StatusCode::FORBIDDEN
    );
    for path in [
        format!("/sites/{contracts}"),
        format!("/sites/{contracts}/drive/root/children"),
        format!("/drives/{drive}/root/children"),
    ] {
        assert_eq!(
            status(&h, Method::GET, &path, &token).await,
            StatusCode::FORBIDDEN,
            "{path}"
        );
    }

    // Write on Contracts (Rust hook, by path).
    assert!(emu.grant_site_permission(CONTRACTS_SITE_PATH, app, &["write"]));
    assert_eq!(
        status(
            &h,
            Method::PUT,
            &format!("/sites/{contracts}/drive/root:/Signed/new.pdf:/content"),
            &token
        )
        .await,
        StatusCode::CREATED
    );
    assert_eq!(
        status(
            &h,
            Method::POST,
            &format!("/sites/{contracts}/drive/root/children"),
            &token
        )
        .await,
        StatusCode::CREATED
    );
    assert!(!emu.grant_site_permission("/sites/nowhere", app, &["read"]));
    for (site, body, expected) in [
        (
            "nowhere",
            json!({"appId": app, "roles": ["read"]}),
            StatusCode::NOT_FOUND,
        ),
        (
            finance.as_str(),
            json!({"appId": app, "roles": ["own"]}),
            StatusCode::BAD_REQUEST,
        ),
        (
            finance.as_str(),
            json!({"roles": ["read"]}),
            StatusCode::BAD_REQUEST,
        ),
    ] {
        let r = h
            .client
            .post(format!(
                "{}/_emulator/sites/{site}/permissions",
                h.emu.base_url()
            ))
            .json(&body)
            .send()
            .await
            .expect("grant");
        assert_eq!(r.status(), expected, "{body}");
    }
}

#[tokio::test]
async fn delegated_scopes_reach_ones_own_drive_every_drive_or_the_site_libraries() {
    let h = start().await;
    let finance = h.emu.emulator.site_id(FINANCE_SITE_PATH).expect("finance");
    let someone = h
        .get("/users?$top=10&$select=userPrincipalName")
        .await
        .json()["value"][3]["userPrincipalName"]
        .as_str()
        .expect("upn")
        .to_string();
    assert_ne!(someone, DEMO_USER_UPN);
    let own_read = "/me/drive/root/children".to_string();
    let own_by_upn = format!("/users/{DEMO_USER_UPN}/drive/root/children");
    let own_write = "/me/drive/root:/mine.txt:/content".to_string();
    let other_read = format!("/users/{someone}/drive/root/children");
    let other_write = format!("/users/{someone}/drive/root:/theirs.txt:/content");
    let site_read = format!("/sites/{finance}/drive/root/children");
    let site_meta = format!("/sites/{finance}");
    let site_write = format!("/sites/{finance}/drive/root:/site.txt:/content");
    let ok = StatusCode::OK;
    let no = StatusCode::FORBIDDEN;
    let made = StatusCode::CREATED;
    for (scopes, expectations) in [
        (
            vec!["Files.Read"],
            vec![
                (&own_read, ok),
                (&own_by_upn, ok),
                (&other_read, no),
                (&site_read, no),
                (&site_meta, no),
            ],
        ),
        (
            vec!["Files.ReadWrite"],
            vec![(&own_read, ok), (&other_read, no), (&site_read, no)],
        ),
        (
            vec!["Files.Read.All"],
            vec![(&own_read, ok), (&other_read, ok), (&site_read, ok)],
        ),
        (
            vec!["Sites.Read.All"],
            vec![
                (&own_read, no),
                (&other_read, no),
                (&site_read, ok),
                (&site_meta, ok),
            ],
        ),
        (
            vec!["User.Read", "Mail.Read"],
            vec![(&own_read, no), (&site_meta, no)],
        ),
    ] {
        let token = h.delegated(DEMO_USER_UPN, &scopes);
        for (path, expected) in expectations {
            assert_eq!(
                status(&h, Method::GET, path, &token).await,
                expected,
                "{scopes:?} GET {path}"
            );
        }
    }
    for (scopes, expectations) in [
        (vec!["Files.Read"], vec![(&own_write, no)]),
        (
            vec!["Files.ReadWrite"],
            vec![(&own_write, made), (&other_write, no), (&site_write, no)],
        ),
        (vec!["Files.Read.All"], vec![(&other_write, no)]),
        (
            vec!["Files.ReadWrite.All"],
            vec![(&other_write, made), (&site_write, made)],
        ),
        (
            vec!["Sites.ReadWrite.All"],
            vec![(&own_write, no), (&site_write, ok)],
        ),
    ] {
        let token = h.delegated(DEMO_USER_UPN, &scopes);
        for (path, expected) in expectations {
            assert_eq!(
                status(&h, Method::PUT, path, &token).await,
                expected,
                "{scopes:?} PUT {path}"
            );
        }
    }
    // Copying into someone else's drive needs write there.
    let own = h.delegated(DEMO_USER_UPN, &["Files.ReadWrite"]);
    let other_drive = h.emu.emulator.drive_id_of_user(&someone).expect("drive");
    let other_root = h.item_id(&other_drive, "");
    let notes = h.item_id(&h.demo_drive(), "Documents/Notes.txt");
    let copy = h
        .call(
            Method::POST,
            &format!("/me/drive/items/{notes}/copy"),
            Some(&json!({"parentReference": {"driveId": other_drive, "id": other_root}})),
            Some(&own),
            &[],
        )
        .await;
    assert_eq!(copy.status, StatusCode::FORBIDDEN, "{}", copy.text);
}
