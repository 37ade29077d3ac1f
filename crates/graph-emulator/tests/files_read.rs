//! OneDrive and SharePoint reads: seeded drives and sites, item addressing by id and path,
//! children paging, `$select`/`$expand`, batches and stats.

mod common;

use std::collections::BTreeSet;

use common::*;
use graph_emulator::{
    CONTRACTS_SITE_PATH, DEFAULT_DRIVE_QUOTA, DEMO_REPORT_AUTHORS, DEMO_REPORT_COUNT,
    DEMO_USER_UPN, EmulatorConfig, FINANCE_SITE_PATH, ROOT_SITE_PATH, SHAREPOINT_HOSTNAME,
};
use reqwest::StatusCode;
use serde_json::{Value, json};

fn names(items: &[Value]) -> Vec<String> {
    items
        .iter()
        .map(|i| i["name"].as_str().expect("name").to_string())
        .collect()
}

#[tokio::test]
async fn every_member_has_a_onedrive_and_guests_have_none() {
    let h = start().await;
    let drive_id = h.demo_drive();
    assert!(
        drive_id.starts_with("b!") && drive_id.len() == 66,
        "{drive_id}"
    );
    assert!(
        drive_id[2..]
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    );

    let reply = h.get(&format!("/users/{DEMO_USER_UPN}/drive")).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let drive = reply.json();
    let demo_id = h.user_id(DEMO_USER_UPN).await;
    assert_eq!(drive["id"], drive_id);
    assert_eq!(drive["driveType"], "business");
    assert_eq!(drive["name"], "OneDrive");
    assert_eq!(drive["owner"]["user"]["id"], demo_id);
    assert_eq!(drive["owner"]["user"]["displayName"], "Tamsin Greaves");
    assert_eq!(drive["owner"]["user"]["email"], DEMO_USER_UPN);
    assert_eq!(
        drive["webUrl"],
        "https://kestrelridge-my.sharepoint.com/personal/tamsin_greaves_kestrelridge_example/Documents"
    );
    let quota = &drive["quota"];
    assert_eq!(quota["total"], DEFAULT_DRIVE_QUOTA);
    assert_eq!(quota["deleted"], 0);
    assert_eq!(quota["state"], "normal");
    let used = quota["used"].as_u64().expect("used");
    assert!(used > 100 * 8_000, "{used}");
    assert_eq!(quota["remaining"], DEFAULT_DRIVE_QUOTA - used);
    for key in ["createdDateTime", "lastModifiedDateTime"] {
        assert!(
            drive[key].as_str().is_some_and(|t| t.ends_with('Z')),
            "{key}"
        );
    }

    // The same drive by id, by the user's object id, as a collection, and as /me.
    let by_id = h.get(&format!("/drives/{drive_id}")).await.json();
    assert_eq!(by_id["id"], drive_id);
    let by_oid = h.get(&format!("/users/{demo_id}/drive")).await.json();
    assert_eq!(by_oid["id"], drive_id);
    let list = h
        .get(&format!("/users/{DEMO_USER_UPN}/drives"))
        .await
        .json();
    assert_eq!(list["value"].as_array().map(Vec::len), Some(1));
    assert_eq!(list["value"][0]["id"], drive_id);
    let token = h.delegated(DEMO_USER_UPN, &["Files.Read"]);
    let me = h
        .call(reqwest::Method::GET, "/me/drive", None, Some(&token), &[])
        .await;
    assert_eq!(me.status, StatusCode::OK, "{}", me.text);
    assert_eq!(me.json()["id"], drive_id);
    let my_drives = h
        .call(reqwest::Method::GET, "/me/drives", None, Some(&token), &[])
        .await;
    assert_eq!(my_drives.json()["value"][0]["id"], drive_id);
    // `$select` narrows a drive.
    let narrow = h
        .get(&format!("/drives/{drive_id}?$select=id,quota"))
        .await
        .json();
    assert_eq!(
        keys(&narrow)
            .into_iter()
            .filter(|k| !k.starts_with('@'))
            .collect::<Vec<_>>(),
        vec!["id", "quota"]
    );

    // Another member's drive exists too (created on first use) and is tiny.
    let someone = h
        .get("/users?$top=5&$select=userPrincipalName")
        .await
        .json()["value"][4]["userPrincipalName"]
        .as_str()
        .expect("upn")
        .to_string();
    let other = h
        .get(&format!("/users/{someone}/drive/root:/Documents:/children"))
        .await;
    assert_eq!(other.status, StatusCode::OK, "{}", other.text);
    assert_eq!(
        names(other.json()["value"].as_array().expect("value")),
        vec!["Notes.txt", "Plan.docx"]
    );

    // The B2B guest has no OneDrive.
    let guest = h
        .get("/users?$filter=userType eq 'Guest'&$select=id,userPrincipalName")
        .await
        .json()["value"][0]
        .clone();
    let guest_upn = guest["userPrincipalName"].as_str().expect("guest upn");
    assert_eq!(h.emu.emulator.drive_id_of_user(guest_upn), None);
    let reply = h
        .get(&format!(
            "/users/{}/drive",
            guest["id"].as_str().expect("id")
        ))
        .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND, "{}", reply.text);
    assert_eq!(reply.error_code(), "itemNotFound");
    assert!(reply.json()["error"]["innerError"]["request-id"].is_string());
    let reply = h.get(&format!("/users/{}/drive", enc(guest_upn))).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    let reply = h.get("/users/nobody@kestrelridge.example/drive").await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_eq!(reply.error_code(), "itemNotFound");
    let reply = h.get("/drives/b!nothing-here").await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    // `/me` needs a signed-in user.
    let reply = h.get("/me/drive").await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn the_demo_drive_holds_documents_and_a_hundred_reports_by_twenty_five_colleagues() {
    let h = start().await;
    let drive = h.demo_drive();
    let root = h.get(&format!("/drives/{drive}/root/children")).await;
    assert_eq!(root.status, StatusCode::OK, "{}", root.text);
    assert_eq!(
        names(root.json()["value"].as_array().expect("value")),
        vec!["Documents", "Getting started with OneDrive.pdf", "Reports"]
    );
    let documents = h
        .get(&format!("/drives/{drive}/root:/Documents:/children"))
        .await
        .json();
    assert_eq!(
        names(documents["value"].as_array().expect("value")),
        vec![
            "Budget 2026.xlsx",
            "Notes.txt",
            "Trailhead launch plan.pdf",
            "Welcome.docx"
        ]
    );

    let reports = h
        .get(&format!("/drives/{drive}/root:/Reports"))
        .await
        .json();
    assert_eq!(reports["folder"]["childCount"], DEMO_REPORT_COUNT + 1);
    let listing = h
        .get(&format!("/drives/{drive}/root:/Reports:/children"))
        .await
        .json();
    assert!(
        listing.get("@odata.nextLink").is_none(),
        "200 a page by default"
    );
    let items = listing["value"].as_array().expect("value");
    assert_eq!(items.len(), DEMO_REPORT_COUNT + 1);
    let files: Vec<&Value> = items.iter().filter(|i| i.get("file").is_some()).collect();
    assert_eq!(files.len(), DEMO_REPORT_COUNT);
    let expected: Vec<String> = (1..=DEMO_REPORT_COUNT)
        .map(|i| format!("report-{i:03}.pdf"))
        .collect();
    let mut got: Vec<String> = files
        .iter()
        .map(|f| f["name"].as_str().expect("name").to_string())
        .collect();
    got.sort();
    assert_eq!(got, expected);
    for f in &files {
        assert_eq!(f["file"]["mimeType"], "application/pdf");
    }
    // The folder's size is the total of what is in it.
    let total: u64 = items
        .iter()
        .map(|i| i["size"].as_u64().expect("size"))
        .sum();
    assert_eq!(reports["size"], total);

    let modifiers: BTreeSet<String> = files
        .iter()
        .map(|f| {
            f["lastModifiedBy"]["user"]["id"]
                .as_str()
                .expect("id")
                .to_string()
        })
        .collect();
    assert_eq!(modifiers.len(), DEMO_REPORT_AUTHORS);
    let creators: BTreeSet<String> = files
        .iter()
        .map(|f| {
            f["createdBy"]["user"]["id"]
                .as_str()
                .expect("id")
                .to_string()
        })
        .collect();
    assert!(creators.is_subset(&modifiers));
    for f in &files {
        let user = &f["lastModifiedBy"]["user"];
        assert!(user["displayName"].is_string() && user["email"].is_string());
    }
    let archive = h
        .get(&format!("/drives/{drive}/root:/Reports/Archive:/children"))
        .await
        .json();
    assert_eq!(archive["value"].as_array().map(Vec::len), Some(3));
}

#[tokio::test]
async fn the_same_seed_seeds_the_same_files_and_another_seed_others() {
    let a = start().await;
    let b = start().await;
    let c = start_with(EmulatorConfig {
        seed: 7,
        ..EmulatorConfig::default()
    })
    .await;
    assert_eq!(a.demo_drive(), b.demo_drive());
    assert_ne!(a.demo_drive(), c.demo_drive());
    let strip = |mut v: Value| {
        v.as_object_mut()
            .map(|o| o.remove("@microsoft.graph.downloadUrl"));
        v
    };
    for path in [
        "Reports/report-042.pdf",
        "Documents/Welcome.docx",
        "Reports/Archive",
    ] {
        let ia = a.item_id(&a.demo_drive(), path);
        assert_eq!(ia, b.item_id(&b.demo_drive(), path));
        assert!(ia.starts_with("01") && ia.len() == 34, "{ia}");
        assert!(
            ia[2..]
                .chars()
                .all(|ch| ch.is_ascii_uppercase() || ('2'..='7').contains(&ch))
        );
        let ja = strip(
            a.get(&format!("/drives/{}/items/{ia}", a.demo_drive()))
                .await
                .json(),
        );
        let jb = strip(
            b.get(&format!("/drives/{}/items/{ia}", b.demo_drive()))
                .await
                .json(),
        );
        assert_eq!(ja, jb);
    }
    for path in [ROOT_SITE_PATH, FINANCE_SITE_PATH] {
        assert_eq!(a.emu.emulator.site_id(path), b.emu.emulator.site_id(path));
        assert_ne!(a.emu.emulator.site_id(path), c.emu.emulator.site_id(path));
    }
}

#[tokio::test]
async fn items_are_addressed_by_id_and_by_path_with_spaces_and_percent_encoding() {
    let h = start().await;
    let drive = h.demo_drive();
    let base = format!("/drives/{drive}");
    let budget = h.item_id(&drive, "Documents/Budget 2026.xlsx");
    let documents = h.item_id(&drive, "Documents");

    for path in [
        format!("{base}/root:/Documents/Budget%202026.xlsx"),
        format!("{base}/root:/Documents/Budget%202026.xlsx:"),
        format!("{base}/root:/documents/BUDGET%202026.xlsx:"),
        format!("{base}/items/{documents}:/Budget%202026.xlsx:"),
        format!("{base}/items/{budget}"),
        format!("/users/{DEMO_USER_UPN}/drive/root:/Documents/Budget%202026.xlsx:"),
        format!("/users/{}/drive/items/{budget}", enc(DEMO_USER_UPN)),
    ] {
        let reply = h.get(&path).await;
        assert_eq!(reply.status, StatusCode::OK, "{path}: {}", reply.text);
        assert_eq!(reply.json()["id"], budget, "{path}");
    }

    let item = h.get(&format!("{base}/items/{budget}")).await.json();
    assert_eq!(item["name"], "Budget 2026.xlsx");
    for key in [
        "@microsoft.graph.downloadUrl",
        "id",
        "name",
        "size",
        "eTag",
        "cTag",
        "createdDateTime",
        "lastModifiedDateTime",
        "webUrl",
        "createdBy",
        "lastModifiedBy",
        "parentReference",
        "file",
        "fileSystemInfo",
    ] {
        assert!(item.get(key).is_some(), "{key} missing: {item}");
    }
    let etag = item["eTag"].as_str().expect("eTag");
    assert!(etag.starts_with("\"{") && etag.ends_with(",1\""), "{etag}");
    let guid = &etag[2..etag.find('}').expect("}")];
    assert_eq!(guid, guid.to_ascii_uppercase());
    assert_eq!(item["cTag"], format!("\"c:{{{guid}}},1\""));
    assert_eq!(
        item["file"]["mimeType"],
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    );
    let hashes = &item["file"]["hashes"];
    assert_eq!(hashes["quickXorHash"].as_str().map(str::len), Some(28));
    assert_eq!(hashes["sha1Hash"].as_str().map(str::len), Some(40));
    assert_eq!(hashes["sha256Hash"].as_str().map(str::len), Some(64));
    let parent = &item["parentReference"];
    assert_eq!(parent["driveId"], drive);
    assert_eq!(parent["driveType"], "business");
    assert_eq!(parent["id"], documents);
    assert_eq!(parent["name"], "Documents");
    assert_eq!(parent["path"], "/drive/root:/Documents");
    assert_eq!(
        item["webUrl"],
        "https://kestrelridge-my.sharepoint.com/personal/tamsin_greaves_kestrelridge_example/Documents/Documents/Budget%202026.xlsx"
    );
    assert_eq!(
        item["fileSystemInfo"]["lastModifiedDateTime"],
        item["lastModifiedDateTime"]
    );

    // The root: `root: {}`, a drive-only parentReference; its children's path is the root's.
    let root = h.get(&format!("{base}/root")).await.json();
    assert_eq!(root["root"], json!({}));
    assert_eq!(
        keys(&root["parentReference"]),
        sorted(vec!["driveId", "driveType"])
    );
    assert_eq!(root["folder"]["childCount"], 3);
    let folder = h.get(&format!("{base}/items/{documents}")).await.json();
    assert_eq!(folder["parentReference"]["path"], "/drive/root:");
    assert!(folder.get("cTag").is_none(), "folders have no cTag");
    assert!(folder.get("@microsoft.graph.downloadUrl").is_none());

    // `$select` returns exactly what it names; the download URL only when named.
    let narrow = h
        .get(&format!(
            "{base}/items/{budget}?$select=name,@microsoft.graph.downloadUrl"
        ))
        .await
        .json();
    assert_eq!(
        keys(&narrow)
            .into_iter()
            .filter(|k| k != "@odata.context")
            .collect::<Vec<_>>(),
        sorted(vec!["@microsoft.graph.downloadUrl", "name"])
    );
    let narrow = h
        .get(&format!("{base}/items/{budget}?$select=id,size"))
        .await
        .json();
    assert!(narrow.get("@microsoft.graph.downloadUrl").is_none());
    let reply = h
        .get(&format!("{base}/items/{budget}?$select=colour"))
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.error_code(), "invalidRequest");
    // `$expand=children`.
    let expanded = h
        .get(&format!("{base}/root:/Documents?$expand=children"))
        .await
        .json();
    assert_eq!(expanded["children"].as_array().map(Vec::len), Some(4));

    // Not there: 404 itemNotFound; a path through a file: 400.
    for path in [
        format!("{base}/root:/Documents/Nope.txt"),
        format!("{base}/items/01NOSUCHITEMAAAAAAAAAAAAAAAAAAAAAA"),
        format!("{base}/items/01NOSUCHITEMAAAAAAAAAAAAAAAAAAAAAA:/x.txt:"),
    ] {
        let reply = h.get(&path).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(reply.error_code(), "itemNotFound");
        assert_eq!(reply.error_message(), "The resource could not be found.");
    }
    let reply = h
        .get(&format!("{base}/root:/Documents/Notes.txt/deeper"))
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn children_page_with_top_and_skiptokens_that_keep_orderby_and_select() {
    let h = start().await;
    let drive = h.demo_drive();
    let first = format!(
        "/drives/{drive}/root:/Reports:/children?$top=30&$orderby=name desc&$select=name,size"
    );
    let mut url = Some(first);
    let mut pages = Vec::new();
    let mut all = Vec::new();
    while let Some(u) = url {
        let reply = h.get(&u).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
        let body = reply.json();
        let value = body["value"].as_array().expect("value").clone();
        pages.push(value.len());
        for item in &value {
            assert_eq!(keys(item), sorted(vec!["name", "size"]));
        }
        all.extend(value);
        url = body["@odata.nextLink"].as_str().map(str::to_string);
        if let Some(next) = &url {
            assert!(next.starts_with("http://127.0.0.1:"), "{next}");
            assert!(next.contains("$skiptoken="), "{next}");
            assert!(!next.contains("$top"), "{next}");
        }
    }
    assert_eq!(pages, vec![30, 30, 30, 11]);
    let got = names(&all);
    let mut expected = got.clone();
    expected.sort_by_key(|n| std::cmp::Reverse(n.to_lowercase()));
    assert_eq!(got, expected);
    assert_eq!(got[0], "report-100.pdf");
    assert_eq!(got[100], "Archive");

    // Other orders.
    let by_size = h
        .get(&format!(
            "/drives/{drive}/root:/Reports:/children?$orderby=size&$top=1000"
        ))
        .await
        .json();
    let sizes: Vec<u64> = by_size["value"]
        .as_array()
        .expect("value")
        .iter()
        .map(|i| i["size"].as_u64().expect("size"))
        .collect();
    assert!(sizes.windows(2).all(|w| w[0] <= w[1]), "{sizes:?}");
    let by_date = h
        .get(&format!(
            "/drives/{drive}/root:/Reports:/children?$orderby=lastModifiedDateTime desc"
        ))
        .await
        .json();
    let dates: Vec<String> = by_date["value"]
        .as_array()
        .expect("value")
        .iter()
        .map(|i| {
            i["lastModifiedDateTime"]
                .as_str()
                .expect("date")
                .to_string()
        })
        .collect();
    assert!(dates.windows(2).all(|w| w[0] >= w[1]));
    let created = h
        .get(&format!(
            "/drives/{drive}/root:/Reports:/children?$orderby=createdDateTime asc"
        ))
        .await;
    assert_eq!(created.status, StatusCode::OK);

    for bad in [
        "$top=0",
        "$top=1001",
        "$top=x",
        "$orderby=colour",
        "$orderby=name sideways",
        "$select=nope",
        "$filter=size gt 1",
    ] {
        let reply = h
            .get(&format!("/drives/{drive}/root:/Reports:/children?{bad}"))
            .await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "{bad}: {}",
            reply.text
        );
        assert_eq!(reply.error_code(), "invalidRequest", "{bad}");
    }
    let reply = h
        .get(&format!(
            "/drives/{drive}/root:/Reports:/children?$skiptoken=garbage"
        ))
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    // A file has no children.
    let reply = h
        .get(&format!(
            "/drives/{drive}/root:/Reports/report-001.pdf:/children"
        ))
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.error_code(), "invalidRequest");
}

#[tokio::test]
async fn sites_are_found_by_search_id_hostname_and_server_relative_path() {
    let h = start().await;
    let emu = &h.emu.emulator;
    let finance = emu.site_id(FINANCE_SITE_PATH).expect("finance");
    let root_id = emu.site_id(ROOT_SITE_PATH).expect("root");
    assert!(finance.starts_with(&format!("{SHAREPOINT_HOSTNAME},")));
    assert_eq!(finance.split(',').count(), 3);

    let search = h.get("/sites?search=finance").await;
    assert_eq!(search.status, StatusCode::OK, "{}", search.text);
    let value = search.json()["value"].as_array().expect("value").clone();
    assert_eq!(value.len(), 1);
    let site = &value[0];
    assert_eq!(site["id"], finance);
    assert_eq!(site["displayName"], "Finance");
    assert_eq!(site["name"], "finance");
    assert_eq!(
        site["webUrl"],
        "https://kestrelridge.sharepoint.com/sites/finance"
    );
    assert_eq!(site["siteCollection"]["hostname"], SHAREPOINT_HOSTNAME);
    assert!(site.get("root").is_none());
    for key in ["description", "createdDateTime", "lastModifiedDateTime"] {
        assert!(site[key].is_string(), "{key}");
    }
    let all = h.get("/sites?search=*").await.json();
    assert_eq!(all["value"].as_array().map(Vec::len), Some(5));
    let by_description = h.get("/sites?search=CONTRACTS").await.json();
    assert_eq!(by_description["value"][0]["displayName"], "Contracts");
    let none = h.get("/sites?search=zzzz").await.json();
    assert_eq!(none["value"], json!([]));

    for path in [
        "/sites/root".to_string(),
        format!("/sites/{SHAREPOINT_HOSTNAME}"),
        format!("/sites/{root_id}"),
        format!("/sites/{SHAREPOINT_HOSTNAME}:/"),
    ] {
        let reply = h.get(&path).await;
        assert_eq!(reply.status, StatusCode::OK, "{path}: {}", reply.text);
        let site = reply.json();
        assert_eq!(site["id"], root_id, "{path}");
        assert_eq!(site["root"], json!({}));
        assert_eq!(site["displayName"], "Kestrel Ridge Intranet");
        assert_eq!(site["webUrl"], "https://kestrelridge.sharepoint.com");
    }
    for path in [
        format!("/sites/{finance}"),
        format!("/sites/{SHAREPOINT_HOSTNAME}:/sites/finance"),
        format!("/sites/{SHAREPOINT_HOSTNAME}:/sites/finance:"),
        format!("/sites/{SHAREPOINT_HOSTNAME}:/sites/Finance/"),
    ] {
        let reply = h.get(&path).await;
        assert_eq!(reply.status, StatusCode::OK, "{path}: {}", reply.text);
        assert_eq!(reply.json()["id"], finance, "{path}");
    }

    // Libraries.
    let drives = h
        .get(&format!(
            "/sites/{SHAREPOINT_HOSTNAME}:/sites/finance:/drives"
        ))
        .await;
    assert_eq!(drives.status, StatusCode::OK, "{}", drives.text);
    let drives = drives.json()["value"].as_array().expect("value").clone();
    assert_eq!(names(&drives), vec!["Documents", "Invoices"]);
    assert!(drives.iter().all(|d| d["driveType"] == "documentLibrary"));
    assert_eq!(
        drives[0]["webUrl"],
        "https://kestrelridge.sharepoint.com/sites/finance/Shared%20Documents"
    );
    assert_eq!(
        drives[0]["id"].as_str(),
        emu.site_drive_id(FINANCE_SITE_PATH, "Documents").as_deref()
    );
    assert_eq!(
        drives[1]["id"].as_str(),
        emu.site_drive_id(FINANCE_SITE_PATH, "Invoices").as_deref()
    );
    let default = h.get(&format!("/sites/{finance}/drive")).await.json();
    assert_eq!(default["id"], drives[0]["id"]);
    let invoices = h
        .get(&format!(
            "/sites/{finance}/drives/{}/root/children",
            drives[1]["id"].as_str().expect("id")
        ))
        .await
        .json();
    assert_eq!(invoices["value"].as_array().map(Vec::len), Some(5));

    let contracts = emu.site_id(CONTRACTS_SITE_PATH).expect("contracts");
    let signed = h
        .get(&format!("/sites/{contracts}/drive/root:/Signed:/children"))
        .await;
    assert_eq!(signed.status, StatusCode::OK, "{}", signed.text);
    let signed = signed.json()["value"].as_array().expect("value").clone();
    assert_eq!(signed.len(), 2);
    for file in &signed {
        assert!(file["name"].as_str().expect("name").ends_with(".pdf"));
        assert_eq!(file["parentReference"]["siteId"], contracts);
        assert_eq!(file["parentReference"]["path"], "/drive/root:/Signed");
        assert_eq!(file["parentReference"]["driveType"], "documentLibrary");
        assert!(file["webUrl"].as_str().expect("webUrl").starts_with(
            "https://kestrelridge.sharepoint.com/sites/contracts/Shared%20Documents/Signed/"
        ));
    }

    for path in [
        "/sites/kestrelridge.sharepoint.com:/sites/nowhere".to_string(),
        "/sites/contoso.sharepoint.com:/sites/finance".to_string(),
        format!(
            "{SHAREPOINT_HOSTNAME},00000000-0000-0000-0000-000000000000,00000000-0000-0000-0000-000000000000"
        ),
    ] {
        let path = if path.starts_with('/') {
            path
        } else {
            format!("/sites/{path}")
        };
        let reply = h.get(&path).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(reply.error_code(), "itemNotFound");
    }
}

#[tokio::test]
async fn a_batch_reaches_drive_item_and_site_routes() {
    let h = start().await;
    let drive = h.demo_drive();
    let file = h.item_id(&drive, "Documents/Notes.txt");
    let reply = h
        .batch(&json!({"requests": [
            {"id": "1", "method": "GET", "url": format!("/users/{DEMO_USER_UPN}/drive")},
            {"id": "2", "method": "GET", "url": format!("/drives/{drive}/root/children?$top=2")},
            {"id": "3", "method": "GET", "url": format!("/drives/{drive}/root:/Documents")},
            {"id": "4", "method": "GET", "url": "/sites/root"},
            {"id": "5", "method": "GET", "url": format!("/drives/{drive}/items/{file}/content")},
            {"id": "6", "method": "GET", "url": format!("/drives/{drive}/items/01NOPE")},
            {"id": "7", "method": "GET", "url": "/sites?search=marketing"},
        ]}))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let body = reply.json();
    let by_id = |id: &str| {
        body["responses"]
            .as_array()
            .expect("responses")
            .iter()
            .find(|r| r["id"] == id)
            .cloned()
            .expect("response")
    };
    assert_eq!(by_id("1")["status"], 200);
    assert_eq!(by_id("1")["body"]["id"], drive);
    assert_eq!(by_id("2")["status"], 200);
    assert_eq!(
        by_id("2")["body"]["value"].as_array().map(Vec::len),
        Some(2)
    );
    assert!(by_id("2")["body"]["@odata.nextLink"].is_string());
    assert_eq!(by_id("3")["body"]["name"], "Documents");
    assert_eq!(by_id("4")["body"]["displayName"], "Kestrel Ridge Intranet");
    let content = by_id("5");
    assert_eq!(content["status"], 302);
    assert!(
        content["headers"]["Location"]
            .as_str()
            .expect("Location")
            .contains("/_layouts/15/download.aspx?UniqueId=")
    );
    assert_eq!(content["body"], Value::Null);
    assert_eq!(by_id("6")["status"], 404);
    assert_eq!(by_id("6")["body"]["error"]["code"], "itemNotFound");
    assert_eq!(by_id("7")["body"]["value"][0]["displayName"], "Marketing");

    let stats = h.emu.emulator.stats();
    for key in [
        "GET /users/{id}/drive",
        "GET /drives/{id}/root/children",
        "GET /drives/{id}/root:/{path}:",
        "GET /sites/root",
        "GET /drives/{id}/items/{id}/content",
        "GET /drives/{id}/items/{id}",
        "GET /sites",
    ] {
        assert_eq!(
            stats.batch_item_routes.get(key),
            Some(&1),
            "{key}: {stats:?}"
        );
    }
}

#[tokio::test]
async fn drive_routes_count_under_their_templates() {
    let h = start().await;
    let token = h.delegated(DEMO_USER_UPN, &["Files.Read", "Sites.Read.All"]);
    let site = h.emu.emulator.site_id(FINANCE_SITE_PATH).expect("site");
    for path in [
        "/me/drive/root:/Reports:/children?$top=1".to_string(),
        "/me/drive/root".to_string(),
        format!("/sites/{site}"),
        format!("/sites/{site}/drives"),
    ] {
        let reply = h
            .call(reqwest::Method::GET, &path, None, Some(&token), &[])
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{path}: {}", reply.text);
    }
    let stats = h.emu.emulator.stats();
    for key in [
        "GET /me/drive/root:/{path}:/children",
        "GET /me/drive/root",
        "GET /sites/{id}",
        "GET /sites/{id}/drives",
    ] {
        assert_eq!(stats.routes.get(key), Some(&1), "{key}: {:?}", stats.routes);
    }
}

#[tokio::test]
async fn a_large_tenant_opens_drives_lazily_and_the_files_dir_goes_with_the_emulator() {
    let h = start_with(EmulatorConfig {
        users: 1000,
        ..EmulatorConfig::default()
    })
    .await;
    let upns: Vec<String> = h
        .get("/users?$top=999&$select=userPrincipalName,userType")
        .await
        .json()["value"]
        .as_array()
        .expect("value")
        .iter()
        .filter(|u| u["userType"] == "Member")
        .map(|u| u["userPrincipalName"].as_str().expect("upn").to_string())
        .collect();
    let last = upns.last().expect("a member");
    let drive_id = h.emu.emulator.drive_id_of_user(last).expect("drive id");
    // By id, before anything opened it.
    let reply = h
        .get(&format!("/drives/{drive_id}/root:/Documents:/children"))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.json()["value"].as_array().map(Vec::len), Some(2));

    let dir = h.emu.emulator.files_dir();
    assert!(dir.is_dir());
    drop(h);
    let mut gone = false;
    for _ in 0..100 {
        if !dir.exists() {
            gone = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(gone, "{} still exists", dir.display());
}
