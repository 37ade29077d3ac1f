//! Writing and sending mail: drafts, updates, delete, move/copy, folders, `sendMail`,
//! sending drafts, replies and forwards, and the sent log.

mod common;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use common::*;
use graph_emulator::{DEMO_USER_UPN, SHARED_MAILBOX_UPN, TENANT_DOMAIN};
use reqwest::StatusCode;
use serde_json::{Value, json};

fn me() -> String {
    format!("/users/{DEMO_USER_UPN}")
}

fn values(body: &Value) -> Vec<Value> {
    body["value"].as_array().cloned().unwrap_or_default()
}

fn address(r: &Value) -> String {
    r["emailAddress"]["address"]
        .as_str()
        .unwrap_or_default()
        .to_ascii_lowercase()
}

fn addresses(list: &Value) -> Vec<String> {
    list.as_array()
        .map(|l| l.iter().map(address).collect())
        .unwrap_or_default()
}

/// `GET /_emulator/mail/sent`.
async fn sent_log(h: &Harness) -> Vec<Value> {
    let reply = reply(
        h.client
            .get(format!("{}/_emulator/mail/sent", h.emu.base_url()))
            .send()
            .await
            .expect("sent"),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    reply.json().as_array().cloned().expect("array")
}

/// The newest message in a mailbox folder with this subject.
async fn find(h: &Harness, upn: &str, folder: &str, subject: &str) -> Option<Value> {
    let reply = h
        .get(&format!(
            "/users/{upn}/mailFolders/{folder}/messages?$top=1000&$filter=subject eq '{}'",
            subject.replace('\'', "''")
        ))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    values(&reply.json()).into_iter().next()
}

/// Three colleagues of the demo user with a mailbox (not the shared mailbox).
async fn colleagues(h: &Harness) -> Vec<String> {
    let reply = h
        .get(&format!(
            "/users/{DEMO_USER_UPN}/directReports?$select=userPrincipalName"
        ))
        .await;
    let mut out: Vec<String> = values(&reply.json())
        .iter()
        .filter_map(|u| u["userPrincipalName"].as_str().map(str::to_string))
        .collect();
    let more = h
        .get("/users?$top=30&$select=userPrincipalName,userType")
        .await;
    for u in values(&more.json()) {
        let upn = u["userPrincipalName"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        if u["userType"] == "Member"
            && upn != DEMO_USER_UPN
            && upn != SHARED_MAILBOX_UPN
            && !out.contains(&upn)
        {
            out.push(upn);
        }
    }
    out.truncate(3);
    out
}

async fn count(h: &Harness, upn: &str, folder: &str) -> u64 {
    h.get(&format!(
        "/users/{upn}/mailFolders/{folder}?$select=totalItemCount"
    ))
    .await
    .json()["totalItemCount"]
        .as_u64()
        .expect("count")
}

#[tokio::test]
async fn a_draft_is_created_in_drafts_and_accepts_inline_attachments() {
    let h = start().await;
    let drafts = h.get(&format!("{}/mailFolders/drafts", me())).await.json();
    let reply = h
        .post(
            &format!("{}/messages", me()),
            &json!({
                "subject": "Quarterly numbers",
                "importance": "High",
                "body": {"contentType": "HTML", "content": "<p>See <b>attached</b>.</p>"},
                "toRecipients": [{"emailAddress": {"address": SHARED_MAILBOX_UPN}}],
                "categories": ["Orders"],
                "attachments": [{
                    "@odata.type": "#microsoft.graph.fileAttachment",
                    "name": "numbers.csv",
                    "contentBytes": STANDARD.encode(b"a,b\n1,2\n"),
                }],
            }),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    let draft = reply.json();
    assert_eq!(draft["isDraft"], true);
    assert_eq!(draft["parentFolderId"], drafts["id"]);
    assert_eq!(draft["importance"], "high");
    assert_eq!(draft["hasAttachments"], true);
    assert_eq!(draft["body"]["contentType"], "html");
    assert_eq!(draft["toRecipients"][0]["emailAddress"]["name"], "Orders");
    let id = draft["id"].as_str().expect("id");
    let attachments = values(
        &h.get(&format!("{}/messages/{}/attachments", me(), enc(id)))
            .await
            .json(),
    );
    assert_eq!(attachments[0]["name"], "numbers.csv");
    assert_eq!(attachments[0]["contentType"], "text/csv");
    assert_eq!(attachments[0]["size"], 8);
    assert_eq!(count(&h, DEMO_USER_UPN, "drafts").await, 4);

    // Text bodies, in any case; drafts in another folder.
    let projects = values(
        &h.get(&format!(
            "{}/mailFolders?$filter=displayName eq 'Projects'",
            me()
        ))
        .await
        .json(),
    );
    let projects_id = projects[0]["id"].as_str().expect("projects").to_string();
    let in_projects = h
        .post(
            &format!("{}/mailFolders/{}/messages", me(), enc(&projects_id)),
            &json!({"subject": "Plain", "body": {"contentType": "Text", "content": "line one\nline two"}}),
        )
        .await;
    assert_eq!(in_projects.status, StatusCode::CREATED);
    assert_eq!(in_projects.json()["parentFolderId"], projects_id.as_str());
    assert_eq!(
        in_projects.json()["body"]["content"]
            .as_str()
            .map(|c| c.contains("line one<br>")),
        Some(true)
    );

    for (body, status, code, needle) in [
        (
            json!({"body": {"contentType": "markdown", "content": "x"}}),
            400,
            "RequestBodyRead",
            "markdown",
        ),
        (
            json!({"attachments": [{"@odata.type": "#microsoft.graph.fileAttachment", "name": "x.bin", "contentBytes": "not base64!"}]}),
            400,
            "ErrorInvalidRequest",
            "contentBytes",
        ),
        (json!({"colour": "red"}), 400, "RequestBodyRead", "colour"),
        (
            json!({"importance": "urgent"}),
            400,
            "RequestBodyRead",
            "urgent",
        ),
        (
            json!({"attachments": [{"@odata.type": "#microsoft.graph.itemAttachment", "name": "x"}]}),
            501,
            "NotImplemented",
            "itemAttachment",
        ),
    ] {
        let reply = h.post(&format!("{}/messages", me()), &body).await;
        assert_eq!(reply.status.as_u16(), status, "{body}");
        assert_eq!(reply.error_code(), code, "{body}");
        assert!(
            reply.error_message().contains(needle),
            "{}",
            reply.error_message()
        );
    }
    let not_json = h
        .client
        .post(format!("{}{}/messages", h.emu.graph_url(), me()))
        .bearer_auth(&h.token)
        .header("Content-Type", "application/json")
        .body("{nope")
        .send()
        .await
        .expect("post");
    assert_eq!(not_json.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn patching_follows_exchanges_rules_for_drafts_and_sent_messages() {
    let h = start().await;
    let draft = h
        .post(&format!("{}/messages", me()), &json!({"subject": "v1"}))
        .await
        .json();
    let id = draft["id"].as_str().expect("id").to_string();
    let path = format!("{}/messages/{}", me(), enc(&id));
    let patched = h
        .patch(
            &path,
            &json!({
                "subject": "v2",
                "body": {"contentType": "text", "content": "hello"},
                "toRecipients": [{"emailAddress": {"address": "Priya.Natarajan@contoso-partners.example", "name": "Priya"}}],
                "inferenceClassification": "other",
                "flag": {"flagStatus": "flagged"},
            }),
        )
        .await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.text);
    let after = patched.json();
    assert_eq!(after["subject"], "v2");
    assert_eq!(after["inferenceClassification"], "other");
    assert_eq!(after["flag"]["flagStatus"], "flagged");
    assert_ne!(after["changeKey"], draft["changeKey"]);
    assert_ne!(after["@odata.etag"], draft["@odata.etag"]);
    assert!(after["lastModifiedDateTime"].as_str() >= draft["lastModifiedDateTime"].as_str());
    assert_eq!(after["id"], id.as_str());

    // A received message: flags, categories, read state, importance only.
    let received = values(
        &h.get(&format!("{}/mailFolders/inbox/messages?$top=1", me()))
            .await
            .json(),
    );
    let rid = received[0]["id"].as_str().expect("id").to_string();
    let rpath = format!("{}/messages/{}", me(), enc(&rid));
    let ok = h
        .patch(
            &rpath,
            &json!({"isRead": false, "categories": ["Red category", "Follow up"], "importance": "low",
                    "flag": {"flagStatus": "complete", "completedDateTime": {"dateTime": "2024-05-01T10:00:00.0000000", "timeZone": "UTC"}}}),
        )
        .await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.text);
    assert_eq!(
        ok.json()["categories"],
        json!(["Red category", "Follow up"])
    );
    assert_eq!(ok.json()["flag"]["flagStatus"], "complete");
    for (body, code) in [
        (
            json!({"subject": "rewritten"}),
            "ErrorInvalidPropertyUpdateSentMessage",
        ),
        (
            json!({"toRecipients": []}),
            "ErrorInvalidPropertyUpdateSentMessage",
        ),
        (json!({"id": "AAMk"}), "ErrorInvalidProperty"),
        (
            json!({"receivedDateTime": "2024-01-01T00:00:00Z"}),
            "ErrorInvalidProperty",
        ),
        (json!({"attachments": []}), "ErrorInvalidProperty"),
        (json!({"isRead": "yes"}), "RequestBodyRead"),
        (json!({"nonsense": 1}), "RequestBodyRead"),
    ] {
        let reply = h.patch(&rpath, &body).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(reply.error_code(), code, "{body}");
    }
    let unchanged = h.get(&rpath).await.json();
    assert_eq!(unchanged["subject"], received[0]["subject"]);
}

#[tokio::test]
async fn deleting_a_message_removes_it_from_every_folder() {
    let h = start().await;
    let first = values(
        &h.get(&format!("{}/mailFolders/inbox/messages?$top=1", me()))
            .await
            .json(),
    );
    let id = first[0]["id"].as_str().expect("id").to_string();
    let path = format!("{}/messages/{}", me(), enc(&id));
    let reply = h.delete(&path).await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    assert!(reply.text.is_empty());
    assert_eq!(h.get(&path).await.status, StatusCode::NOT_FOUND);
    let (all, _) = h
        .get_all(&format!("{}/messages?$top=1000&$select=id", me()), &[])
        .await;
    assert!(all.iter().all(|m| m["id"] != id.as_str()));
    assert_eq!(all.len(), 86);
    assert_eq!(h.delete(&path).await.error_code(), "ErrorItemNotFound");
}

#[tokio::test]
async fn moving_changes_the_id_and_copying_keeps_the_original() {
    let h = start().await;
    let first = values(
        &h.get(&format!("{}/mailFolders/inbox/messages?$top=2", me()))
            .await
            .json(),
    );
    let id = first[0]["id"].as_str().expect("id").to_string();
    let deleted = h
        .get(&format!("{}/mailFolders/deleteditems", me()))
        .await
        .json();
    let moved = h
        .post(
            &format!("{}/messages/{}/move", me(), enc(&id)),
            &json!({"destinationId": "deleteditems"}),
        )
        .await;
    assert_eq!(moved.status, StatusCode::CREATED, "{}", moved.text);
    let moved = moved.json();
    let new_id = moved["id"].as_str().expect("id").to_string();
    assert_ne!(new_id, id);
    assert_eq!(moved["parentFolderId"], deleted["id"]);
    assert_eq!(moved["subject"], first[0]["subject"]);
    assert_eq!(moved["@odata.type"], "#microsoft.graph.message");
    assert_eq!(
        h.get(&format!("{}/messages/{}", me(), enc(&id)))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        h.get(&format!("{}/messages/{}", me(), enc(&new_id)))
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(count(&h, DEMO_USER_UPN, "inbox").await, 63);
    assert_eq!(count(&h, DEMO_USER_UPN, "deleteditems").await, 3);

    // Copy by folder id: the original stays.
    let archive = h.get(&format!("{}/mailFolders/archive", me())).await.json();
    let second = first[1]["id"].as_str().expect("id").to_string();
    let copied = h
        .post(
            &format!("{}/messages/{}/copy", me(), enc(&second)),
            &json!({"destinationId": archive["id"]}),
        )
        .await;
    assert_eq!(copied.status, StatusCode::CREATED);
    assert_ne!(copied.json()["id"], second.as_str());
    assert_eq!(copied.json()["parentFolderId"], archive["id"]);
    assert_eq!(
        h.get(&format!("{}/messages/{}", me(), enc(&second)))
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(count(&h, DEMO_USER_UPN, "archive").await, 3);

    for (destination, status, code) in [
        (
            json!({"destinationId": "nonexistent"}),
            400,
            "ErrorInvalidIdMalformed",
        ),
        (
            json!({"destinationId": "AQMkADAwATNiZmYAZC1hMjc0LTYyZGEtMDACLTAwCgAuAAAD"}),
            404,
            "ErrorItemNotFound",
        ),
        (json!({}), 400, "ErrorInvalidRequest"),
    ] {
        let reply = h
            .post(
                &format!("{}/messages/{}/move", me(), enc(&second)),
                &destination,
            )
            .await;
        assert_eq!(reply.status.as_u16(), status, "{destination}");
        assert_eq!(reply.error_code(), code);
    }
}

#[tokio::test]
async fn folders_can_be_created_at_the_top_and_below_and_names_are_unique_per_parent() {
    let h = start().await;
    let top = h
        .post(
            &format!("{}/mailFolders", me()),
            &json!({"displayName": "Receipts"}),
        )
        .await;
    assert_eq!(top.status, StatusCode::CREATED, "{}", top.text);
    let top = top.json();
    assert_eq!(top["displayName"], "Receipts");
    assert_eq!(top["totalItemCount"], 0);
    let again = h
        .post(
            &format!("{}/mailFolders", me()),
            &json!({"displayName": "receipts"}),
        )
        .await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    assert_eq!(again.error_code(), "ErrorFolderExists");
    let dup_child = h
        .post(
            &format!("{}/mailFolders/inbox/childFolders", me()),
            &json!({"displayName": "Orders"}),
        )
        .await;
    assert_eq!(dup_child.status, StatusCode::CONFLICT);
    let child = h
        .post(
            &format!("{}/mailFolders/inbox/childFolders", me()),
            &json!({"displayName": "Returns"}),
        )
        .await;
    assert_eq!(child.status, StatusCode::CREATED);
    let inbox = h.get(&format!("{}/mailFolders/inbox", me())).await.json();
    assert_eq!(child.json()["parentFolderId"], inbox["id"]);
    assert_eq!(inbox["childFolderCount"], 3);
    // A grandchild, reached through the childFolders chain.
    let child_id = child.json()["id"].as_str().expect("id").to_string();
    let grandchild = h
        .post(
            &format!(
                "{}/mailFolders/inbox/childFolders/{}/childFolders",
                me(),
                enc(&child_id)
            ),
            &json!({"displayName": "2024"}),
        )
        .await;
    assert_eq!(grandchild.status, StatusCode::CREATED);
    let listed = h
        .get(&format!(
            "{}/mailFolders/inbox/childFolders/{}/childFolders",
            me(),
            enc(&child_id)
        ))
        .await;
    assert_eq!(values(&listed.json()).len(), 1);
    // Ten top-level folders now: the default page of 10 holds them all... with one more, a nextLink.
    h.post(
        &format!("{}/mailFolders", me()),
        &json!({"displayName": "Travel"}),
    )
    .await;
    let page = h.get(&format!("{}/mailFolders", me())).await.json();
    assert_eq!(values(&page).len(), 10);
    assert!(page.get("@odata.nextLink").is_none());
    h.post(
        &format!("{}/mailFolders", me()),
        &json!({"displayName": "Zeta"}),
    )
    .await;
    let page = h.get(&format!("{}/mailFolders", me())).await.json();
    assert!(
        page["@odata.nextLink"]
            .as_str()
            .is_some_and(|l| l.ends_with("$skip=10"))
    );
    let missing_name = h
        .post(
            &format!("{}/mailFolders", me()),
            &json!({"displayName": " "}),
        )
        .await;
    assert_eq!(missing_name.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn sending_mail_delivers_to_every_tenant_recipients_inbox() {
    let h = start().await;
    let people = colleagues(&h).await;
    let (a, b, c) = (&people[0], &people[1], &people[2]);
    let sent_before = count(&h, DEMO_USER_UPN, "sentitems").await;
    let inbox_before = count(&h, a, "inbox").await;
    let bytes = b"%PDF-1.4 the plan".to_vec();
    let reply = h
        .post(
            &format!("{}/sendMail", me()),
            &json!({"message": {
                "subject": "Launch plan",
                "body": {"contentType": "HTML", "content": "<p>The plan is attached.</p>"},
                "toRecipients": [
                    {"emailAddress": {"address": a.to_uppercase()}},
                    {"emailAddress": {"address": "partner@contoso-partners.example", "name": "Partner"}},
                ],
                "ccRecipients": [{"emailAddress": {"address": b}}],
                "bccRecipients": [{"emailAddress": {"address": c}}],
                "attachments": [{"@odata.type": "#microsoft.graph.fileAttachment", "name": "plan.pdf", "contentType": "application/pdf", "contentBytes": STANDARD.encode(&bytes)}],
            }}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.text);
    assert!(reply.text.is_empty());
    assert!(reply.header("content-type").is_none());
    assert_eq!(count(&h, a, "inbox").await, inbox_before + 1);

    let mut ids = Vec::new();
    let mut imids = Vec::new();
    let mut conversations = Vec::new();
    for upn in [a, b, c] {
        let m = find(&h, upn, "inbox", "Launch plan")
            .await
            .expect("delivered");
        assert_eq!(address(&m["from"]), DEMO_USER_UPN);
        assert_eq!(address(&m["sender"]), DEMO_USER_UPN);
        assert_eq!(m["isRead"], false);
        assert_eq!(m["isDraft"], false);
        assert_eq!(m["hasAttachments"], true);
        assert_eq!(m["bccRecipients"], json!([]), "bcc stays hidden from {upn}");
        assert_eq!(addresses(&m["ccRecipients"]), vec![b.to_ascii_lowercase()]);
        assert_eq!(m["toRecipients"][1]["emailAddress"]["name"], "Partner");
        let id = m["id"].as_str().expect("id").to_string();
        let attachment = values(
            &h.get(&format!("/users/{upn}/messages/{}/attachments", enc(&id)))
                .await
                .json(),
        );
        assert_eq!(
            STANDARD
                .decode(attachment[0]["contentBytes"].as_str().expect("bytes"))
                .expect("b64"),
            bytes
        );
        ids.push(id);
        imids.push(m["internetMessageId"].clone());
        conversations.push(m["conversationId"].clone());
    }
    ids.dedup();
    assert_eq!(ids.len(), 3);
    assert!(imids.windows(2).all(|w| w[0] == w[1]));
    assert!(conversations.windows(2).all(|w| w[0] == w[1]));

    // Sent Items keeps the bcc.
    assert_eq!(count(&h, DEMO_USER_UPN, "sentitems").await, sent_before + 1);
    let copy = find(&h, DEMO_USER_UPN, "sentitems", "Launch plan")
        .await
        .expect("sent copy");
    assert_eq!(
        addresses(&copy["bccRecipients"]),
        vec![c.to_ascii_lowercase()]
    );
    assert_eq!(copy["isRead"], true);
    assert_eq!(copy["internetMessageId"], imids[0]);

    let log = sent_log(&h).await;
    assert_eq!(log.len(), 1);
    let entry = &log[0];
    assert_eq!(entry["via"], "sendMail");
    assert_eq!(entry["mailbox"], DEMO_USER_UPN);
    assert_eq!(entry["from"], DEMO_USER_UPN);
    assert_eq!(entry["sender"], DEMO_USER_UPN);
    assert_eq!(entry["subject"], "Launch plan");
    assert_eq!(entry["bcc"], json!([c]));
    assert_eq!(entry["internetMessageId"], imids[0]);
    assert_eq!(entry["conversationId"], conversations[0]);
    assert_eq!(entry["savedToSentItems"], true);
    let delivered: Vec<String> = entry["delivered"]
        .as_array()
        .expect("delivered")
        .iter()
        .map(|d| d.as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(delivered, vec![a.clone(), b.clone(), c.clone()]);
    use sha2::Digest;
    let sha: String = sha2::Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(
        entry["attachments"],
        json!([{"name": "plan.pdf", "contentType": "application/pdf", "size": bytes.len(), "sha256": sha}])
    );
    // The stats reset leaves the sent log alone.
    h.emu.emulator.reset_stats();
    assert_eq!(h.emu.emulator.sent_mail().len(), 1);
}

#[tokio::test]
async fn save_to_sent_items_false_as_a_boolean_or_a_string_keeps_no_copy() {
    let h = start().await;
    let before = count(&h, DEMO_USER_UPN, "sentitems").await;
    let message = json!({"subject": "no copy", "toRecipients": [{"emailAddress": {"address": SHARED_MAILBOX_UPN}}]});
    for flag in [json!(false), json!("false"), json!("False")] {
        let reply = h
            .post(
                &format!("{}/sendMail", me()),
                &json!({"message": message, "saveToSentItems": flag}),
            )
            .await;
        assert_eq!(reply.status, StatusCode::ACCEPTED, "{flag}");
    }
    assert_eq!(count(&h, DEMO_USER_UPN, "sentitems").await, before);
    for flag in [json!(true), json!("true"), Value::Null] {
        let reply = h
            .post(
                &format!("{}/sendMail", me()),
                &json!({"message": message, "saveToSentItems": flag}),
            )
            .await;
        assert_eq!(reply.status, StatusCode::ACCEPTED, "{flag}");
    }
    assert_eq!(count(&h, DEMO_USER_UPN, "sentitems").await, before + 3);
    let bad = h
        .post(
            &format!("{}/sendMail", me()),
            &json!({"message": message, "saveToSentItems": 1}),
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    let log = sent_log(&h).await;
    assert_eq!(
        log.iter()
            .filter(|e| e["savedToSentItems"] == false)
            .count(),
        3
    );
    assert_eq!(count(&h, SHARED_MAILBOX_UPN, "inbox").await, 36);
}

#[tokio::test]
async fn from_another_address_makes_the_mailbox_owner_the_sender() {
    let h = start().await;
    let people = colleagues(&h).await;
    let reply = h
        .post(
            &format!("{}/sendMail", me()),
            &json!({"message": {
                "subject": "Order update",
                "from": {"emailAddress": {"address": SHARED_MAILBOX_UPN}},
                "toRecipients": [{"emailAddress": {"address": people[0]}}],
            }}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::ACCEPTED);
    let m = find(&h, &people[0], "inbox", "Order update")
        .await
        .expect("delivered");
    assert_eq!(address(&m["from"]), SHARED_MAILBOX_UPN);
    assert_eq!(m["from"]["emailAddress"]["name"], "Orders");
    assert_eq!(address(&m["sender"]), DEMO_USER_UPN);
    let log = sent_log(&h).await;
    assert_eq!(log[0]["from"], SHARED_MAILBOX_UPN);
    assert_eq!(log[0]["sender"], DEMO_USER_UPN);
}

#[tokio::test]
async fn bad_recipients_are_error_invalid_recipients() {
    let h = start().await;
    for (message, needle) in [
        (json!({"subject": "nobody"}), "contains no recipients"),
        (
            json!({"toRecipients": [{"emailAddress": {"address": "not-an-address"}}]}),
            "'not-an-address'",
        ),
        (
            json!({"toRecipients": [{"emailAddress": {"name": "No address"}}]}),
            "not resolved",
        ),
        (
            json!({"ccRecipients": [{"emailAddress": {"address": "a b@c.example"}}]}),
            "'a b@c.example'",
        ),
    ] {
        let reply = h
            .post(&format!("{}/sendMail", me()), &json!({"message": message}))
            .await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{message}");
        assert_eq!(reply.error_code(), "ErrorInvalidRecipients");
        assert!(
            reply
                .error_message()
                .starts_with("At least one recipient is not valid.")
        );
        assert!(
            reply.error_message().contains(needle),
            "{}",
            reply.error_message()
        );
    }
    let missing = h
        .post(
            &format!("{}/sendMail", me()),
            &json!({"saveToSentItems": false}),
        )
        .await;
    assert_eq!(missing.status, StatusCode::BAD_REQUEST);
    assert!(sent_log(&h).await.is_empty());
}

#[tokio::test]
async fn bodies_over_4_mb_and_simple_attachments_of_3_mb_are_413s() {
    let h = start().await;
    let to = json!([{"emailAddress": {"address": SHARED_MAILBOX_UPN}}]);
    let big = vec![b'x'; 3 * 1024 * 1024];
    let reply = h
        .post(&format!("{}/sendMail", me()), &json!({"message": {"toRecipients": to, "attachments": [{"@odata.type": "#microsoft.graph.fileAttachment", "name": "big.bin", "contentBytes": STANDARD.encode(&big)}]}}))
        .await;
    assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(reply.error_code(), "ErrorRequestEntityTooLarge");
    assert!(reply.error_message().contains("big.bin"));
    // 3,000,000 bytes travel as 4,000,000 base64 characters: still under the 4 MiB body.
    let just_under = vec![b'x'; 3_000_000];
    let ok = h
        .post(&format!("{}/sendMail", me()), &json!({"message": {"toRecipients": to, "attachments": [{"@odata.type": "#microsoft.graph.fileAttachment", "name": "ok.bin", "contentBytes": STANDARD.encode(&just_under)}]}}))
        .await;
    assert_eq!(ok.status, StatusCode::ACCEPTED, "{}", ok.text);
    let huge_body = "y".repeat(4 * 1024 * 1024 + 10);
    let reply = h
        .post(&format!("{}/sendMail", me()), &json!({"message": {"toRecipients": to, "body": {"contentType": "Text", "content": huge_body}}}))
        .await;
    assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(reply.error_code(), "RequestEntityTooLarge");
}

#[tokio::test]
async fn sending_a_draft_moves_it_to_sent_items_and_delivers_it() {
    let h = start().await;
    let people = colleagues(&h).await;
    let draft = h
        .post(&format!("{}/messages", me()), &json!({"subject": "From a draft", "toRecipients": [{"emailAddress": {"address": people[0]}}]}))
        .await
        .json();
    let id = draft["id"].as_str().expect("id").to_string();
    let drafts_before = count(&h, DEMO_USER_UPN, "drafts").await;
    let sent = h
        .post(&format!("{}/messages/{}/send", me(), enc(&id)), &json!({}))
        .await;
    assert_eq!(sent.status, StatusCode::ACCEPTED, "{}", sent.text);
    assert_eq!(count(&h, DEMO_USER_UPN, "drafts").await, drafts_before - 1);
    assert_eq!(
        h.get(&format!("{}/messages/{}", me(), enc(&id)))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    let copy = find(&h, DEMO_USER_UPN, "sentitems", "From a draft")
        .await
        .expect("sent items");
    assert_eq!(copy["isDraft"], false);
    assert_eq!(copy["internetMessageId"], draft["internetMessageId"]);
    assert!(
        find(&h, &people[0], "inbox", "From a draft")
            .await
            .is_some()
    );
    assert_eq!(sent_log(&h).await[0]["via"], "send");
    // Not a draft any more, or never one.
    let again = h
        .post(&format!("{}/messages/{}/send", me(), enc(&id)), &json!({}))
        .await;
    assert_eq!(again.status, StatusCode::NOT_FOUND);
    let received = values(
        &h.get(&format!("{}/mailFolders/inbox/messages?$top=1", me()))
            .await
            .json(),
    );
    let not_draft = h
        .post(
            &format!(
                "{}/messages/{}/send",
                me(),
                enc(received[0]["id"].as_str().expect("id"))
            ),
            &json!({}),
        )
        .await;
    assert_eq!(not_draft.status, StatusCode::BAD_REQUEST);
    assert_eq!(not_draft.error_code(), "ErrorInvalidOperation");
    // A draft without recipients cannot be sent (the seeded "Notes for the all-hands").
    let lonely = find(&h, DEMO_USER_UPN, "drafts", "Notes for the all-hands")
        .await
        .expect("draft");
    let reply = h
        .post(
            &format!(
                "{}/messages/{}/send",
                me(),
                enc(lonely["id"].as_str().expect("id"))
            ),
            &json!({}),
        )
        .await;
    assert_eq!(reply.error_code(), "ErrorInvalidRecipients");
}

/// A message in the demo Inbox from a colleague, with no replyTo and several recipients.
async fn group_message(h: &Harness) -> Value {
    let items = values(
        &h.get(&format!("{}/mailFolders/inbox/messages?$top=1000", me()))
            .await
            .json(),
    );
    items
        .into_iter()
        .find(|m| {
            m["toRecipients"].as_array().is_some_and(|t| t.len() >= 3)
                && !m["ccRecipients"].as_array().expect("cc").is_empty()
                && m["replyTo"].as_array().expect("replyTo").is_empty()
                && !m["subject"].as_str().unwrap_or_default().starts_with("RE:")
        })
        .expect("a group message with cc")
}

#[tokio::test]
async fn reply_goes_to_reply_to_or_from_with_a_re_prefix_in_the_same_conversation() {
    let h = start().await;
    let original = group_message(&h).await;
    let id = original["id"].as_str().expect("id");
    let sender = address(&original["from"]);
    let reply = h
        .post(
            &format!("{}/messages/{}/reply", me(), enc(id)),
            &json!({"comment": "Sounds good, count me in."}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.text);
    let subject = format!("RE: {}", original["subject"].as_str().expect("subject"));
    let log = sent_log(&h).await;
    assert_eq!(log[0]["via"], "reply");
    assert_eq!(
        log[0]["to"],
        json!([original["from"]["emailAddress"]["address"]])
    );
    assert_eq!(log[0]["cc"], json!([]));
    assert_eq!(log[0]["subject"], subject);
    assert_eq!(log[0]["conversationId"], original["conversationId"]);
    let received = find(&h, &sender, "inbox", &subject)
        .await
        .expect("reply delivered");
    assert_eq!(received["conversationId"], original["conversationId"]);
    let body = received["body"]["content"].as_str().expect("body");
    assert!(body.contains("Sounds good, count me in."));
    assert!(body.contains("<b>From:</b>"));
    let original_text = original["bodyPreview"]
        .as_str()
        .expect("preview")
        .lines()
        .nth(1)
        .unwrap_or_default()
        .to_string();
    let text = h
        .get_with(
            &format!(
                "/users/{sender}/messages/{}?$select=body",
                enc(received["id"].as_str().expect("id"))
            ),
            &[("Prefer", "outlook.body-content-type=\"text\"")],
        )
        .await
        .json();
    assert!(
        text["body"]["content"]
            .as_str()
            .expect("text")
            .contains(original_text.trim()),
        "{original_text}"
    );
    let sent_copy = find(&h, DEMO_USER_UPN, "sentitems", &subject)
        .await
        .expect("sent copy");
    let index_len = |m: &Value| {
        STANDARD
            .decode(m["conversationIndex"].as_str().expect("i"))
            .expect("b64")
            .len()
    };
    assert_eq!(index_len(&sent_copy), index_len(&original) + 5);

    // Replying to a reply does not double the prefix.
    let re = find(&h, DEMO_USER_UPN, "sentitems", &subject)
        .await
        .expect("re");
    h.post(
        &format!(
            "{}/messages/{}/reply",
            me(),
            enc(re["id"].as_str().expect("id"))
        ),
        &json!({"comment": "again"}),
    )
    .await;
    let log = sent_log(&h).await;
    assert_eq!(log[1]["subject"], subject);
    // A reply to one's own sent message goes to its recipients.
    assert_eq!(log[1]["to"], json!([sender]));

    // replyTo wins over from.
    let newsletter = values(
        &h.get(&format!(
            "{}/mailFolders/inbox/messages?$filter=startswith(subject,'Webinar')&$top=1",
            me()
        ))
        .await
        .json(),
    );
    let nid = newsletter[0]["id"].as_str().expect("id");
    let reply = h
        .post(&format!("{}/messages/{}/reply", me(), enc(nid)), &json!({}))
        .await;
    assert_eq!(reply.status, StatusCode::ACCEPTED);
    assert_eq!(
        sent_log(&h).await[2]["to"],
        json!(["noreply@adatum.example"])
    );

    let both = h
        .post(
            &format!("{}/messages/{}/reply", me(), enc(id)),
            &json!({"comment": "a", "message": {"body": {"contentType": "Text", "content": "b"}}}),
        )
        .await;
    assert_eq!(both.status, StatusCode::BAD_REQUEST);
    assert_eq!(both.error_code(), "ErrorInvalidRequest");
    let unknown = h
        .post(
            &format!("{}/messages/{}/reply", me(), enc(id)),
            &json!({"toRecipients": []}),
        )
        .await;
    assert_eq!(unknown.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn reply_all_adds_the_original_recipients_but_not_yourself() {
    let h = start().await;
    let original = group_message(&h).await;
    let id = original["id"].as_str().expect("id");
    let reply = h
        .post(
            &format!("{}/messages/{}/replyAll", me(), enc(id)),
            &json!({"message": {"body": {"contentType": "HTML", "content": "<p>Agreed.</p>"}}}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.text);
    let log = sent_log(&h).await;
    let entry = &log[0];
    assert_eq!(entry["via"], "replyAll");
    let to: Vec<String> = entry["to"]
        .as_array()
        .expect("to")
        .iter()
        .map(|a| a.as_str().unwrap_or_default().to_ascii_lowercase())
        .collect();
    let mut expected = vec![address(&original["from"])];
    for r in addresses(&original["toRecipients"]) {
        if r != DEMO_USER_UPN && !expected.contains(&r) {
            expected.push(r);
        }
    }
    assert_eq!(to, expected);
    assert!(!to.contains(&DEMO_USER_UPN.to_string()));
    let cc: Vec<String> = entry["cc"]
        .as_array()
        .expect("cc")
        .iter()
        .map(|a| a.as_str().unwrap_or_default().to_ascii_lowercase())
        .collect();
    let expected_cc: Vec<String> = addresses(&original["ccRecipients"])
        .into_iter()
        .filter(|a| a != DEMO_USER_UPN && !expected.contains(a))
        .collect();
    assert_eq!(cc, expected_cc);
    assert!(entry["delivered"].as_array().expect("delivered").len() >= 3);
}

#[tokio::test]
async fn forward_needs_recipients_and_carries_the_attachments() {
    let h = start().await;
    let with = values(&h.get(&format!("{}/mailFolders/inbox/messages?$filter=hasAttachments eq true&$top=1&$expand=attachments", me())).await.json());
    let original = &with[0];
    let id = original["id"].as_str().expect("id");
    let none = h
        .post(
            &format!("{}/messages/{}/forward", me(), enc(id)),
            &json!({"comment": "fyi"}),
        )
        .await;
    assert_eq!(none.status, StatusCode::BAD_REQUEST);
    assert_eq!(none.error_code(), "ErrorInvalidRecipients");
    let reply = h
        .post(
            &format!("{}/messages/{}/forward", me(), enc(id)),
            &json!({"comment": "FYI", "toRecipients": [{"emailAddress": {"address": SHARED_MAILBOX_UPN, "name": "Orders desk"}}]}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.text);
    let entry = &sent_log(&h).await[0];
    assert_eq!(entry["via"], "forward");
    assert_eq!(entry["to"], json!([SHARED_MAILBOX_UPN]));
    let subject = format!("FW: {}", original["subject"].as_str().expect("s"));
    assert_eq!(entry["subject"], subject);
    let names: Vec<&Value> = entry["attachments"]
        .as_array()
        .expect("a")
        .iter()
        .map(|a| &a["name"])
        .collect();
    let original_names: Vec<&Value> = original["attachments"]
        .as_array()
        .expect("a")
        .iter()
        .map(|a| &a["name"])
        .collect();
    assert_eq!(names, original_names);
    let delivered = find(&h, SHARED_MAILBOX_UPN, "inbox", &subject)
        .await
        .expect("delivered");
    assert_eq!(delivered["hasAttachments"], true);
    assert_eq!(
        delivered["toRecipients"][0]["emailAddress"]["name"],
        "Orders desk"
    );
    // The recipients may also come in the message.
    let in_message = h
        .post(&format!("{}/messages/{}/forward", me(), enc(id)), &json!({"message": {"toRecipients": [{"emailAddress": {"address": "x@fabrikam.example"}}]}}))
        .await;
    assert_eq!(in_message.status, StatusCode::ACCEPTED);
}

#[tokio::test]
async fn create_reply_and_create_forward_make_drafts_that_can_be_sent() {
    let h = start().await;
    let original = group_message(&h).await;
    let id = original["id"].as_str().expect("id");
    let drafts = h.get(&format!("{}/mailFolders/drafts", me())).await.json();
    let draft = h
        .post(
            &format!("{}/messages/{}/createReply", me(), enc(id)),
            &json!({}),
        )
        .await;
    assert_eq!(draft.status, StatusCode::CREATED, "{}", draft.text);
    let draft = draft.json();
    assert_eq!(draft["isDraft"], true);
    assert_eq!(draft["parentFolderId"], drafts["id"]);
    assert_eq!(
        draft["subject"],
        format!("RE: {}", original["subject"].as_str().expect("s"))
    );
    assert_eq!(
        addresses(&draft["toRecipients"]),
        vec![address(&original["from"])]
    );
    assert_eq!(draft["conversationId"], original["conversationId"]);
    let all = h
        .post(
            &format!("{}/messages/{}/createReplyAll", me(), enc(id)),
            &json!({"comment": "all"}),
        )
        .await
        .json();
    assert!(addresses(&all["toRecipients"]).len() >= 2);
    assert!(!addresses(&all["toRecipients"]).contains(&DEMO_USER_UPN.to_string()));
    let forward = h
        .post(
            &format!("{}/messages/{}/createForward", me(), enc(id)),
            &json!({}),
        )
        .await;
    assert_eq!(forward.status, StatusCode::CREATED);
    let forward = forward.json();
    assert!(forward["subject"].as_str().expect("s").starts_with("FW: "));
    assert_eq!(forward["toRecipients"], json!([]));
    assert!(sent_log(&h).await.is_empty(), "drafts are not sent");
    // Address the forward draft, then send it.
    let fid = forward["id"].as_str().expect("id");
    let patched = h
        .patch(
            &format!("{}/messages/{}", me(), enc(fid)),
            &json!({"toRecipients": [{"emailAddress": {"address": SHARED_MAILBOX_UPN}}]}),
        )
        .await;
    assert_eq!(patched.status, StatusCode::OK);
    let sent = h
        .post(&format!("{}/messages/{}/send", me(), enc(fid)), &json!({}))
        .await;
    assert_eq!(sent.status, StatusCode::ACCEPTED);
    let log = sent_log(&h).await;
    assert_eq!(log[0]["via"], "send");
    assert_eq!(log[0]["delivered"], json!([SHARED_MAILBOX_UPN]));
}

#[tokio::test]
async fn tenant_recipients_are_matched_by_any_address_and_externals_are_only_recorded() {
    let h = start().await;
    let reply = h
        .post(
            &format!("/users/{SHARED_MAILBOX_UPN}/sendMail"),
            &json!({"message": {
                "subject": "Aliases",
                "toRecipients": [
                    {"emailAddress": {"address": format!("TGREAVES@{TENANT_DOMAIN}")}},
                    {"emailAddress": {"address": DEMO_USER_UPN}},
                    {"emailAddress": {"address": "jordan.pike@cascadefreight.example"}},
                ],
            }}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::ACCEPTED);
    let entry = &sent_log(&h).await[0];
    // The demo user once (two addresses), the guest is external: no delivery.
    assert_eq!(entry["delivered"], json!([DEMO_USER_UPN]));
    assert_eq!(entry["mailbox"], SHARED_MAILBOX_UPN);
    let m = find(&h, DEMO_USER_UPN, "inbox", "Aliases")
        .await
        .expect("delivered");
    assert_eq!(m["from"]["emailAddress"]["name"], "Orders");
    assert_eq!(
        m["toRecipients"][0]["emailAddress"]["name"],
        "Tamsin Greaves"
    );
}
