//! Folders, rename and move, delete, asynchronous copies with a monitor, and delta.

mod common;

use std::collections::{HashMap, HashSet};

use common::*;
use graph_emulator::{DEFAULT_CLIENT_ID, DEMO_USER_UPN, FINANCE_SITE_PATH};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

#[tokio::test]
async fn folders_are_created_with_a_conflict_behaviour_that_defaults_to_fail() {
    let h = start().await;
    let drive = h.demo_drive();
    let root_children = format!("/drives/{drive}/root/children");
    let root_etag = h.get(&format!("/drives/{drive}/root")).await.json()["eTag"].clone();
    let created = h
        .post(&root_children, &json!({"name": "Projects", "folder": {}}))
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let folder = created.json();
    assert_eq!(folder["name"], "Projects");
    assert_eq!(folder["folder"]["childCount"], 0);
    assert_eq!(folder["size"], 0);
    assert_eq!(folder["parentReference"]["path"], "/drive/root:");
    assert_eq!(folder["createdBy"]["application"]["id"], DEFAULT_CLIENT_ID);
    assert!(folder.get("cTag").is_none());
    assert_ne!(
        h.get(&format!("/drives/{drive}/root")).await.json()["eTag"],
        root_etag
    );

    let again = h
        .post(&root_children, &json!({"name": "projects", "folder": {}}))
        .await;
    assert_eq!(again.status, StatusCode::CONFLICT, "{}", again.text);
    assert_eq!(again.error_code(), "nameAlreadyExists");
    for expected in ["Projects 1", "Projects 2"] {
        let renamed = h
            .post(
                &root_children,
                &json!({"name": "Projects", "folder": {}, "@microsoft.graph.conflictBehavior": "rename"}),
            )
            .await;
        assert_eq!(renamed.status, StatusCode::CREATED, "{}", renamed.text);
        assert_eq!(renamed.json()["name"], expected);
    }
    let replaced = h
        .post(
            &root_children,
            &json!({"name": "Projects 2", "folder": {}, "@microsoft.graph.conflictBehavior": "replace"}),
        )
        .await;
    assert_eq!(replaced.status, StatusCode::CREATED);

    // Under a folder by id and by path.
    let id = folder["id"].as_str().expect("id");
    let sub = h
        .post(
            &format!("/drives/{drive}/items/{id}/children"),
            &json!({"name": "Q3", "folder": {}}),
        )
        .await;
    assert_eq!(sub.status, StatusCode::CREATED, "{}", sub.text);
    let deeper = h
        .post(
            &format!("/drives/{drive}/root:/Projects/Q3:/children"),
            &json!({"name": "Drafts", "folder": {}}),
        )
        .await;
    assert_eq!(deeper.status, StatusCode::CREATED, "{}", deeper.text);
    assert_eq!(
        deeper.json()["parentReference"]["path"],
        "/drive/root:/Projects/Q3"
    );
    assert_eq!(
        h.get(&format!("/drives/{drive}/items/{id}")).await.json()["folder"]["childCount"],
        1
    );

    for (path, body, status) in [
        (
            root_children.clone(),
            json!({"name": "No facet"}),
            StatusCode::BAD_REQUEST,
        ),
        (
            root_children.clone(),
            json!({"name": "a:b", "folder": {}}),
            StatusCode::BAD_REQUEST,
        ),
        (
            root_children.clone(),
            json!({"name": "COM3", "folder": {}}),
            StatusCode::BAD_REQUEST,
        ),
        (
            root_children.clone(),
            json!({"folder": {}}),
            StatusCode::BAD_REQUEST,
        ),
        (
            root_children.clone(),
            json!({"name": "f.txt", "file": {}}),
            StatusCode::BAD_REQUEST,
        ),
        (
            format!("/drives/{drive}/root:/Documents/Notes.txt:/children"),
            json!({"name": "x", "folder": {}}),
            StatusCode::BAD_REQUEST,
        ),
        (
            format!("/drives/{drive}/root:/Nowhere:/children"),
            json!({"name": "x", "folder": {}}),
            StatusCode::NOT_FOUND,
        ),
    ] {
        let r = h.post(&path, &body).await;
        assert_eq!(r.status, status, "{path} {body}: {}", r.text);
    }
}

#[tokio::test]
async fn items_are_renamed_moved_and_deleted_with_their_tags_and_sizes_kept_right() {
    let h = start().await;
    let drive = h.demo_drive();
    let base = format!("/drives/{drive}");
    let up = h
        .put_content(
            &format!("{base}/root:/move-me.txt:/content"),
            &[1u8; 500],
            &[],
        )
        .await
        .json();
    let id = up["id"].as_str().expect("id").to_string();
    let item_url = format!("{base}/items/{id}");

    let renamed = h.patch(&item_url, &json!({"name": "moved.txt"})).await;
    assert_eq!(renamed.status, StatusCode::OK, "{}", renamed.text);
    let renamed = renamed.json();
    assert_eq!(renamed["name"], "moved.txt");
    assert_ne!(renamed["eTag"], up["eTag"]);
    assert_eq!(renamed["cTag"], up["cTag"], "a rename keeps the cTag");
    // Only the case changes: the same item, no clash with itself.
    let cased = h.patch(&item_url, &json!({"name": "Moved.txt"})).await;
    assert_eq!(cased.status, StatusCode::OK, "{}", cased.text);

    let documents = h.item_id(&drive, "Documents");
    let docs_size = h.get(&format!("{base}/items/{documents}")).await.json()["size"]
        .as_u64()
        .expect("size");
    let moved = h
        .patch(&item_url, &json!({"parentReference": {"id": documents}}))
        .await;
    assert_eq!(moved.status, StatusCode::OK, "{}", moved.text);
    assert_eq!(
        moved.json()["parentReference"]["path"],
        "/drive/root:/Documents"
    );
    assert_eq!(
        h.get(&format!("{base}/items/{documents}")).await.json()["size"],
        docs_size + 500
    );
    assert_eq!(
        h.get(&format!("{base}/root:/Documents/Moved.txt"))
            .await
            .json()["id"],
        id
    );
    let by_path = h
        .patch(
            &item_url,
            &json!({"parentReference": {"path": "/drive/root:/Reports/Archive"}, "name": "notes.txt"}),
        )
        .await;
    assert_eq!(by_path.status, StatusCode::OK, "{}", by_path.text);
    assert_eq!(
        by_path.json()["parentReference"]["path"],
        "/drive/root:/Reports/Archive"
    );
    assert_eq!(
        h.get(&format!("{base}/items/{documents}")).await.json()["size"],
        docs_size
    );

    // Clashes, preconditions, impossible moves.
    let clash = h.patch(&item_url, &json!({"name": "README.txt"})).await;
    assert_eq!(clash.status, StatusCode::CONFLICT, "{}", clash.text);
    assert_eq!(clash.error_code(), "nameAlreadyExists");
    let stale = h
        .call(
            Method::PATCH,
            &item_url,
            Some(&json!({"name": "x.txt"})),
            None,
            &[("If-Match", "\"{00000000-0000-0000-0000-000000000000},1\"")],
        )
        .await;
    assert_eq!(stale.status, StatusCode::PRECONDITION_FAILED);
    let etag = by_path.json()["eTag"].as_str().expect("eTag").to_string();
    let fresh = h
        .call(
            Method::PATCH,
            &item_url,
            Some(&json!({"name": "x.txt"})),
            None,
            &[("If-Match", &etag)],
        )
        .await;
    assert_eq!(fresh.status, StatusCode::OK, "{}", fresh.text);
    let reports = h.item_id(&drive, "Reports");
    let archive = h.item_id(&drive, "Reports/Archive");
    let root = h.get(&format!("{base}/root")).await.json()["id"]
        .as_str()
        .expect("root")
        .to_string();
    let other_drive = h
        .emu
        .emulator
        .site_drive_id(FINANCE_SITE_PATH, "Documents")
        .expect("drive");
    for (target, body) in [
        (reports.clone(), json!({"parentReference": {"id": archive}})),
        (reports.clone(), json!({"parentReference": {"id": reports}})),
        (root.clone(), json!({"name": "renamed root"})),
        (
            id.clone(),
            json!({"parentReference": {"driveId": other_drive, "id": "x"}}),
        ),
        (id.clone(), json!({"name": "bad|name.txt"})),
        (
            id.clone(),
            json!({"parentReference": {"id": h.item_id(&drive, "Documents/Notes.txt")}}),
        ),
    ] {
        let r = h.patch(&format!("{base}/items/{target}"), &body).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}: {}", r.text);
        assert_eq!(r.error_code(), "invalidRequest");
    }
    let missing = h
        .patch(&item_url, &json!({"parentReference": {"id": "01NOPE"}}))
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);

    // Deleting a folder takes everything in it; the quota goes down by its size.
    let quota = |v: Value| v["quota"]["used"].as_u64().expect("used");
    let used = quota(h.get(&base).await.json());
    let archive_item = h.get(&format!("{base}/items/{archive}")).await.json();
    let archive_size = archive_item["size"].as_u64().expect("size");
    let inside = h.item_id(&drive, "Reports/Archive/README.txt");
    let stale = h
        .call(
            Method::DELETE,
            &format!("{base}/items/{archive}"),
            None,
            None,
            &[("If-Match", "\"{00000000-0000-0000-0000-000000000000},1\"")],
        )
        .await;
    assert_eq!(stale.status, StatusCode::PRECONDITION_FAILED);
    let deleted = h.delete(&format!("{base}/items/{archive}")).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT, "{}", deleted.text);
    assert!(deleted.text.is_empty());
    assert_eq!(quota(h.get(&base).await.json()), used - archive_size);
    for gone in [&archive, &inside, &id] {
        assert_eq!(
            h.get(&format!("{base}/items/{gone}")).await.status,
            StatusCode::NOT_FOUND
        );
    }
    assert_eq!(
        h.delete(&format!("{base}/items/{archive}")).await.status,
        StatusCode::NOT_FOUND
    );
    let root_delete = h.delete(&format!("{base}/items/{root}")).await;
    assert_eq!(root_delete.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        h.get(&format!("{base}/items/{reports}")).await.json()["folder"]["childCount"],
        100
    );
}

/// Polls a copy monitor: the first answer (202) and the final one.
async fn monitor(h: &Harness, location: &str) -> (Value, Value) {
    let first = h.preauth(Method::GET, location, Vec::new(), &[]).await;
    assert_eq!(first.status, StatusCode::ACCEPTED, "{}", first.text);
    let done = h.preauth(Method::GET, location, Vec::new(), &[]).await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.text);
    let again = h.preauth(Method::GET, location, Vec::new(), &[]).await;
    assert_eq!(again.json(), done.json());
    (first.json(), done.json())
}

async fn start_copy(h: &Harness, path: &str, body: Value) -> String {
    let r = h.post(path, &body).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    assert!(r.text.is_empty());
    r.header("location").expect("Location").to_string()
}

#[tokio::test]
async fn copies_run_behind_a_monitor_and_may_cross_drives() {
    let h = start().await;
    let drive = h.demo_drive();
    let base = format!("/drives/{drive}");
    let welcome = h.item_id(&drive, "Documents/Welcome.docx");
    let reports = h.item_id(&drive, "Reports");
    let original = h.get(&format!("{base}/items/{welcome}")).await.json();

    let location = start_copy(
        &h,
        &format!("{base}/items/{welcome}/copy"),
        json!({"parentReference": {"driveId": drive, "id": reports}, "name": "Welcome copy.docx"}),
    )
    .await;
    assert!(
        location.starts_with(&format!("{}/_api/v2.0/monitor/", h.emu.base_url())),
        "{location}"
    );
    let (first, done) = monitor(&h, &location).await;
    assert_eq!(
        first,
        json!({"operation": "ItemCopy", "percentageComplete": 50.0, "status": "inProgress"})
    );
    assert_eq!(done["status"], "completed");
    assert_eq!(done["percentageComplete"], 100.0);
    let new_id = done["resourceId"].as_str().expect("resourceId").to_string();
    assert_ne!(new_id, welcome);
    let copy = h.get(&format!("{base}/items/{new_id}")).await.json();
    assert_eq!(copy["name"], "Welcome copy.docx");
    assert_eq!(copy["parentReference"]["id"], reports);
    assert_eq!(copy["file"]["hashes"], original["file"]["hashes"]);
    assert_eq!(copy["createdBy"]["application"]["id"], DEFAULT_CLIENT_ID);
    let (_, a) = h.download(&format!("{base}/items/{welcome}/content")).await;
    let (_, b) = h.download(&format!("{base}/items/{new_id}/content")).await;
    assert_eq!(a, b);

    // Again with the same name: fails (fail is the default), or renames.
    let location = start_copy(
        &h,
        &format!("{base}/items/{welcome}/copy"),
        json!({"parentReference": {"driveId": drive, "id": reports}, "name": "Welcome copy.docx"}),
    )
    .await;
    let (_, failed) = monitor(&h, &location).await;
    assert_eq!(failed["status"], "failed");
    assert_eq!(failed["error"]["code"], "nameAlreadyExists");
    let location = start_copy(
        &h,
        &format!("{base}/items/{welcome}/copy?@microsoft.graph.conflictBehavior=rename"),
        json!({"parentReference": {"id": reports}, "name": "Welcome copy.docx"}),
    )
    .await;
    let (_, renamed) = monitor(&h, &location).await;
    let renamed_id = renamed["resourceId"].as_str().expect("id");
    assert_eq!(
        h.get(&format!("{base}/items/{renamed_id}")).await.json()["name"],
        "Welcome copy 1.docx"
    );

    // A folder tree into another drive (a site library).
    let library = h
        .emu
        .emulator
        .site_drive_id(FINANCE_SITE_PATH, "Documents")
        .expect("library");
    let library_root = h.item_id(&library, "");
    let archive = h.item_id(&drive, "Reports/Archive");
    let location = start_copy(
        &h,
        &format!("{base}/items/{archive}/copy"),
        json!({"parentReference": {"driveId": library, "id": library_root}}),
    )
    .await;
    let (_, done) = monitor(&h, &location).await;
    assert_eq!(done["status"], "completed", "{done}");
    let tree = h
        .get(&format!("/drives/{library}/root:/Archive:/children"))
        .await
        .json();
    let names: HashSet<String> = tree["value"]
        .as_array()
        .expect("value")
        .iter()
        .map(|i| i["name"].as_str().expect("name").to_string())
        .collect();
    assert_eq!(
        names,
        ["report-2025-q3.pdf", "report-2025-q4.pdf", "README.txt"]
            .into_iter()
            .map(String::from)
            .collect()
    );
    assert!(tree["value"][0]["parentReference"]["siteId"].is_string());

    // Not enough room at the destination.
    let used = h.get(&format!("/drives/{library}")).await.json()["quota"]["used"]
        .as_u64()
        .expect("used");
    assert!(h.emu.emulator.set_drive_quota(&library, used + 10));
    let location = start_copy(
        &h,
        &format!("{base}/items/{welcome}/copy"),
        json!({"parentReference": {"driveId": library, "id": library_root}}),
    )
    .await;
    let (_, full) = monitor(&h, &location).await;
    assert_eq!(full["error"]["code"], "quotaLimitReached");
    // The source vanished before the first poll.
    let notes = h.item_id(&drive, "Documents/Notes.txt");
    let location = start_copy(
        &h,
        &format!("{base}/items/{notes}/copy"),
        json!({"name": "Notes again.txt"}),
    )
    .await;
    assert_eq!(
        h.delete(&format!("{base}/items/{notes}")).await.status,
        StatusCode::NO_CONTENT
    );
    let (_, vanished) = monitor(&h, &location).await;
    assert_eq!(vanished["status"], "failed");
    assert_eq!(vanished["error"]["code"], "itemNotFound");

    // Invalid destinations are refused at once.
    let budget = h.item_id(&drive, "Documents/Budget 2026.xlsx");
    for (source, body, status) in [
        (
            welcome.clone(),
            json!({"parentReference": {"driveId": "b!nope", "id": "x"}}),
            StatusCode::NOT_FOUND,
        ),
        (
            welcome.clone(),
            json!({"parentReference": {"id": "01NOPE"}}),
            StatusCode::NOT_FOUND,
        ),
        (
            welcome.clone(),
            json!({"parentReference": {"id": budget}}),
            StatusCode::BAD_REQUEST,
        ),
        (
            reports.clone(),
            json!({"parentReference": {"id": archive}}),
            StatusCode::BAD_REQUEST,
        ),
        (
            welcome.clone(),
            json!({"name": "bad?name.docx"}),
            StatusCode::BAD_REQUEST,
        ),
        (
            h.item_id(&drive, ""),
            json!({"name": "root copy"}),
            StatusCode::BAD_REQUEST,
        ),
    ] {
        let r = h.post(&format!("{base}/items/{source}/copy"), &body).await;
        assert_eq!(r.status, status, "{body}: {}", r.text);
    }
    let unknown = h
        .preauth(
            Method::GET,
            &format!("{}/_api/v2.0/monitor/nope", h.emu.base_url()),
            Vec::new(),
            &[],
        )
        .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    let stats = h.emu.emulator.stats();
    assert!(
        stats
            .routes
            .get("GET /_api/v2.0/monitor/{id}")
            .is_some_and(|n| *n >= 10)
    );
    assert_eq!(
        stats
            .routes
            .get("POST /drives/{id}/items/{id}/copy")
            .copied(),
        Some(12)
    );
}

/// Follows a delta round to its deltaLink: the items and the deltaLink.
async fn delta_round(h: &Harness, first: &str, token: Option<&str>) -> (Vec<Value>, String, usize) {
    let mut url = first.to_string();
    let mut items = Vec::new();
    let mut pages = 0;
    loop {
        let r = match token {
            Some(t) => h.call(Method::GET, &url, None, Some(t), &[]).await,
            None => h.get(&url).await,
        };
        assert_eq!(r.status, StatusCode::OK, "{url}: {}", r.text);
        let body = r.json();
        pages += 1;
        items.extend(body["value"].as_array().expect("value").iter().cloned());
        if let Some(next) = body["@odata.nextLink"].as_str() {
            assert!(body.get("@odata.deltaLink").is_none());
            url = next.to_string();
            continue;
        }
        let delta = body["@odata.deltaLink"]
            .as_str()
            .expect("deltaLink")
            .to_string();
        return (items, delta, pages);
    }
}

#[tokio::test]
async fn delta_enumerates_everything_then_reports_changes_moves_and_deletions_once() {
    let h = start().await;
    let drive = h.demo_drive();
    let base = format!("/drives/{drive}");
    let (items, delta_link, pages) =
        delta_round(&h, &format!("{base}/root/delta?$top=50"), None).await;
    assert_eq!(pages, 3);
    assert_eq!(
        items.len(),
        1 + 3 + 4 + 101 + 3,
        "root, its 3 children, 4 documents, 101 reports, 3 archived"
    );
    assert!(
        delta_link.starts_with(&format!("{}{base}/root/delta?token=", h.emu.graph_url())),
        "{delta_link}"
    );
    assert_eq!(items[0]["root"], json!({}));
    // Parents come before their children.
    let mut seen = HashSet::new();
    for item in &items {
        if let Some(parent) = item["parentReference"]["id"].as_str() {
            assert!(seen.contains(parent), "{} before its parent", item["name"]);
        }
        seen.insert(item["id"].as_str().expect("id").to_string());
    }
    assert_eq!(seen.len(), items.len(), "each item once");

    // Nothing changed: nothing to report.
    let (none, delta_link, _) = delta_round(&h, &delta_link, None).await;
    assert!(none.is_empty(), "{none:?}");

    // Create, rename, move, delete.
    let new = h
        .put_content(
            &format!("{base}/root:/Documents/new.txt:/content"),
            b"new",
            &[],
        )
        .await
        .json();
    let report = h.item_id(&drive, "Reports/report-007.pdf");
    assert_eq!(
        h.patch(
            &format!("{base}/items/{report}"),
            &json!({"name": "report-007-final.pdf"})
        )
        .await
        .status,
        StatusCode::OK
    );
    assert_eq!(
        h.patch(
            &format!("{base}/items/{report}"),
            &json!({"name": "report-007-final-2.pdf"})
        )
        .await
        .status,
        StatusCode::OK
    );
    let welcome = h.item_id(&drive, "Documents/Welcome.docx");
    let reports = h.item_id(&drive, "Reports");
    assert_eq!(
        h.patch(
            &format!("{base}/items/{welcome}"),
            &json!({"parentReference": {"id": reports}})
        )
        .await
        .status,
        StatusCode::OK
    );
    let archive = h.item_id(&drive, "Reports/Archive");
    let archived: Vec<String> = ["report-2025-q3.pdf", "report-2025-q4.pdf", "README.txt"]
        .iter()
        .map(|n| h.item_id(&drive, &format!("Reports/Archive/{n}")))
        .collect();
    assert_eq!(
        h.delete(&format!("{base}/items/{archive}")).await.status,
        StatusCode::NO_CONTENT
    );

    let (changes, delta_link, _) = delta_round(&h, &delta_link, None).await;
    let by_id: HashMap<String, &Value> = changes
        .iter()
        .map(|c| (c["id"].as_str().expect("id").to_string(), c))
        .collect();
    assert_eq!(by_id.len(), changes.len(), "each item once: {changes:#?}");
    assert_eq!(by_id[new["id"].as_str().expect("id")]["name"], "new.txt");
    assert_eq!(by_id[&report]["name"], "report-007-final-2.pdf");
    assert_eq!(
        by_id[&welcome]["parentReference"]["path"],
        "/drive/root:/Reports"
    );
    let documents = h.item_id(&drive, "Documents");
    assert!(
        by_id.contains_key(&documents),
        "a folder whose contents changed is reported"
    );
    let archive_entry = by_id[&archive];
    assert_eq!(archive_entry["deleted"], json!({"state": "deleted"}));
    assert_eq!(archive_entry["folder"], json!({}));
    assert_eq!(archive_entry["name"], "Archive");
    assert_eq!(archive_entry["parentReference"]["id"], reports);
    assert_eq!(
        archive_entry["parentReference"]["path"],
        "/drive/root:/Reports"
    );
    for id in &archived {
        assert_eq!(by_id[id]["deleted"]["state"], "deleted");
        assert_eq!(by_id[id]["file"], json!({}));
        assert_eq!(by_id[id]["parentReference"]["id"], archive);
    }
    let untouched = h.item_id(&drive, "Reports/report-008.pdf");
    assert!(!by_id.contains_key(&untouched));
    let (none, _, _) = delta_round(&h, &delta_link, None).await;
    assert!(none.is_empty());
}

#[tokio::test]
async fn delta_tokens_come_in_several_forms_belong_to_their_drive_and_expire_with_410() {
    let h = start().await;
    let drive = h.demo_drive();
    let token = h.delegated(DEMO_USER_UPN, &["Files.ReadWrite"]);
    let latest = h
        .call(
            Method::GET,
            "/me/drive/root/delta?token=latest",
            None,
            Some(&token),
            &[],
        )
        .await;
    assert_eq!(latest.status, StatusCode::OK, "{}", latest.text);
    let latest = latest.json();
    assert_eq!(latest["value"], json!([]));
    let link = latest["@odata.deltaLink"]
        .as_str()
        .expect("deltaLink")
        .to_string();
    assert!(
        link.starts_with(&format!("{}/me/drive/root/delta?token=", h.emu.graph_url())),
        "{link}"
    );

    let put = h
        .bytes_request(
            Method::PUT,
            "/me/drive/root:/Documents/d.txt:/content",
            b"d".to_vec(),
            true,
            Some(&token),
            &[],
        )
        .await;
    assert_eq!(put.status, StatusCode::CREATED);
    let (changes, _, _) = delta_round(&h, &link, Some(&token)).await;
    let names: Vec<&str> = changes
        .iter()
        .map(|c| c["name"].as_str().expect("name"))
        .collect();
    assert_eq!(names, vec!["root", "Documents", "d.txt"]);

    // `delta(token='…')` in the path is the same call.
    let raw = link.split("token=").nth(1).expect("token");
    let function = h
        .call(
            Method::GET,
            &format!("/me/drive/root/delta(token='{raw}')"),
            None,
            Some(&token),
            &[],
        )
        .await;
    assert_eq!(function.status, StatusCode::OK, "{}", function.text);
    assert_eq!(function.json()["value"].as_array().map(Vec::len), Some(3));

    // `$select` narrows items (and rides along in the links).
    let (selected, next, _) = delta_round(
        &h,
        &format!("/drives/{drive}/root/delta?$select=name,size&$top=40"),
        None,
    )
    .await;
    assert!(
        selected
            .iter()
            .all(|i| keys(i) == sorted(vec!["name", "size"]))
    );
    assert!(
        h.put_content(&format!("/drives/{drive}/root:/e.txt:/content"), b"e", &[])
            .await
            .status
            .is_success()
    );
    let (later, _, _) = delta_round(&h, &next, None).await;
    assert!(
        later
            .iter()
            .all(|i| keys(i) == sorted(vec!["name", "size"])),
        "{later:?}"
    );

    // Another drive's token, garbage, delta below the root: 400.
    let library = h
        .emu
        .emulator
        .site_drive_id(FINANCE_SITE_PATH, "Documents")
        .expect("library");
    for url in [
        format!("/drives/{library}/root/delta?token={raw}"),
        format!("/drives/{drive}/root/delta?token=not-a-token"),
        format!(
            "/drives/{drive}/items/{}/delta",
            h.item_id(&drive, "Documents")
        ),
    ] {
        let r = h.get(&url).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{url}: {}", r.text);
        assert_eq!(r.error_code(), "invalidRequest");
    }

    // Expired: 410 with a Location to start over.
    let expire = h
        .client
        .post(format!(
            "{}/_emulator/drives/expire-delta-tokens",
            h.emu.base_url()
        ))
        .send()
        .await
        .expect("expire");
    assert_eq!(expire.status(), StatusCode::NO_CONTENT);
    let gone = h.call(Method::GET, &link, None, Some(&token), &[]).await;
    assert_eq!(gone.status, StatusCode::GONE, "{}", gone.text);
    assert_eq!(gone.error_code(), "resyncChangesApplyDifferences");
    let location = gone.header("location").expect("Location").to_string();
    assert_eq!(
        location,
        format!("{}/me/drive/root/delta", h.emu.graph_url())
    );
    let (again, fresh, _) = delta_round(&h, &location, Some(&token)).await;
    assert!(again.len() > 100);
    // The Rust hook does the same.
    h.emu.emulator.expire_drive_delta_tokens();
    assert_eq!(
        h.call(Method::GET, &fresh, None, Some(&token), &[])
            .await
            .status,
        StatusCode::GONE
    );
}
