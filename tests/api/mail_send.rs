//! Sending and organising mail through the gateway: delivery, send-as policy, drafts,
//! replies, forwards, flags, moves, deletes, large attachments, and the bad inputs that
//! must send nothing.

use graph_emulator::{DEMO_USER_UPN, SHARED_MAILBOX_UPN};
use m365_gateway::config::CallerMode;
use reqwest::StatusCode;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::helpers::{
    TestApp, real_mode_config_from, spawn_app, spawn_app_with, test_config, test_token,
};

/// Every message the emulator delivered, in order.
async fn sent(app: &TestApp) -> Vec<Value> {
    app.http
        .get(format!("{}/_emulator/mail/sent", app.emulator))
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap()
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// A colleague of the demo user: someone in the directory with a mailbox.
async fn colleague(app: &TestApp) -> String {
    let data = app.graphql_data("{ me { manager { mail } } }").await;
    data["me"]["manager"]["mail"].as_str().unwrap().to_owned()
}

const SEND: &str = "mutation($m: ID!, $msg: OutgoingMessageInput!) { sendMail(mailbox: $m, message: $msg) { accepted uploadedAttachments } }";

#[tokio::test]
async fn sent_mail_lands_in_a_colleagues_inbox_with_the_right_from_and_sender() {
    let app = spawn_app().await;
    let to = colleague(&app).await;
    let subject = format!("Quarterly numbers {}", uuid::Uuid::new_v4());
    let (_, body) = app
        .graphql_as(
            Some(&app.token),
            SEND,
            json!({ "m": "me", "msg": {
                "subject": subject, "body": "<p>See attached</p>", "bodyFormat": "HTML",
                "to": [to], "importance": "HIGH",
                "attachments": [{ "name": "numbers.csv", "contentType": "text/csv", "contentBytes": "YSxiCjEsMgo=" }]
            }}),
        )
        .await;
    assert_eq!(body["data"]["sendMail"]["accepted"], true, "{body}");

    let log = sent(&app).await;
    let last = log.last().expect("one message sent");
    assert_eq!(last["subject"], subject.as_str());
    assert_eq!(last["attachments"][0]["name"], "numbers.csv");
    assert_eq!(last["attachments"][0]["size"], 8);

    // The colleague sees it in their inbox, from the demo user.
    let (_, found) = app
        .graphql_as(
            Some(&app.token),
            "query($u: ID!, $s: String!) { user(id: $u) { messages(folder: \"inbox\", filter: { subjectContains: $s }, first: 5) { nodes { subject importance hasAttachments from { address user { userPrincipalName } } sender { address } } } } }",
            json!({ "u": to, "s": subject }),
        )
        .await;
    let delivered = &found["data"]["user"]["messages"]["nodes"][0];
    assert_eq!(delivered["subject"], subject.as_str(), "{found}");
    assert_eq!(delivered["importance"], "HIGH");
    assert_eq!(delivered["hasAttachments"], true);
    assert_eq!(
        delivered["from"]["address"]
            .as_str()
            .unwrap()
            .to_lowercase(),
        DEMO_USER_UPN
    );
    assert_eq!(
        delivered["from"]["user"]["userPrincipalName"],
        DEMO_USER_UPN
    );
}

#[tokio::test]
async fn sending_needs_send_as_for_the_mailbox_and_for_the_from_address() {
    let mut config = real_mode_config_from(
        test_config(),
        (
            "crm",
            CallerMode::App,
            &["mail.send", "mail.read", "users.read"],
            &["*"],
        ),
    );
    config.callers.get_mut("crm").unwrap().send_as = vec![DEMO_USER_UPN.to_owned()];
    let app = spawn_app_with(config).await;
    let token = test_token("crm", None);
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let to = "someone@contoso-partners.example";
    let before = sent(&app).await.len();
    app.reset_stats().await;

    // On behalf of the shared mailbox: not in send_as.
    let (_, body) = app
        .graphql_as(
            Some(&token),
            SEND,
            json!({ "m": DEMO_USER_UPN, "msg": { "subject": "x", "to": [to], "from": SHARED_MAILBOX_UPN } }),
        )
        .await;
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "FORBIDDEN",
        "{body}"
    );
    // From the shared mailbox itself: not in send_as either.
    let (_, body) = app
        .graphql_as(
            Some(&token),
            SEND,
            json!({ "m": SHARED_MAILBOX_UPN, "msg": { "subject": "x", "to": [to] } }),
        )
        .await;
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "FORBIDDEN",
        "{body}"
    );
    assert_eq!(
        app.graph_requests().await,
        0,
        "denied sends cost no Graph call"
    );
    assert_eq!(sent(&app).await.len(), before);

    // From the allowed mailbox: sent.
    let (_, body) = app
        .graphql_as(
            Some(&token),
            SEND,
            json!({ "m": DEMO_USER_UPN, "msg": { "subject": "allowed", "to": [to] } }),
        )
        .await;
    assert_eq!(body["data"]["sendMail"]["accepted"], true, "{body}");
    assert_eq!(sent(&app).await.len(), before + 1);
}

#[tokio::test]
async fn bad_recipients_and_bad_base64_send_nothing_and_say_why() {
    let app = spawn_app().await;
    let before = sent(&app).await.len();
    app.reset_stats().await;
    for (message, needle) in [
        (json!({ "subject": "no one" }), "recipient"),
        (
            json!({ "subject": "x", "to": ["not an address"] }),
            "not an address",
        ),
        (
            json!({ "subject": "x", "to": ["a@b.example"], "cc": ["x@y.example\r\nBcc: evil@example.com"] }),
            "cc",
        ),
        (
            json!({ "subject": "x", "to": ["a@b.example"], "attachments": [{ "name": "report.pdf", "contentBytes": "data:application/pdf;base64,AAAA" }] }),
            "report.pdf",
        ),
        (
            json!({ "subject": "x", "to": ["a@b.example"], "attachments": [{ "name": "both.txt" }] }),
            "both.txt",
        ),
    ] {
        let (_, body) = app
            .graphql_as(Some(&app.token), SEND, json!({ "m": "me", "msg": message }))
            .await;
        let error = &body["errors"][0];
        assert_eq!(error["extensions"]["code"], "BAD_USER_INPUT", "{body}");
        assert!(
            error["message"].as_str().unwrap().contains(needle),
            "{body}"
        );
    }
    let (status, rest) = app
        .http
        .post(format!("{}/api/v1/users/me/send-mail", app.base))
        .bearer_auth(&app.token)
        .json(&json!({ "message": { "subject": "x", "to": [] } }))
        .send()
        .await
        .map(|r| (r.status(), r))
        .unwrap();
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        rest.json::<Value>().await.unwrap()["error"]["code"],
        "BAD_USER_INPUT"
    );
    assert_eq!(app.graph_requests().await, 0);
    assert_eq!(sent(&app).await.len(), before);
}

#[tokio::test]
async fn drafts_are_created_updated_and_sent() {
    let app = spawn_app().await;
    let to = colleague(&app).await;
    let (_, body) = app
        .graphql_as(
            Some(&app.token),
            "mutation($msg: OutgoingMessageInput!) { createDraft(mailbox: \"me\", message: $msg) { id isDraft subject } }",
            json!({ "msg": { "subject": "Draft one", "body": "hello" } }),
        )
        .await;
    let draft = &body["data"]["createDraft"];
    assert_eq!(draft["isDraft"], true, "{body}");
    let id = draft["id"].as_str().unwrap();
    let (_, body) = app
        .graphql_as(
            Some(&app.token),
            "mutation($id: ID!, $msg: OutgoingMessageInput!) { updateDraft(mailbox: \"me\", id: $id, message: $msg) { subject toRecipients { address } } }",
            json!({ "id": id, "msg": { "subject": "Draft two", "to": [to] } }),
        )
        .await;
    assert_eq!(
        body["data"]["updateDraft"]["subject"], "Draft two",
        "{body}"
    );
    assert_eq!(
        body["data"]["updateDraft"]["toRecipients"][0]["address"],
        to.as_str()
    );
    let (_, body) = app
        .graphql_as(
            Some(&app.token),
            "mutation($id: ID!) { sendDraft(mailbox: \"me\", id: $id) { accepted } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(body["data"]["sendDraft"]["accepted"], true, "{body}");
    assert_eq!(sent(&app).await.last().unwrap()["subject"], "Draft two");
}

#[tokio::test]
async fn reply_reply_all_and_forward_go_to_the_right_people() {
    let app = spawn_app().await;
    let data = app
        .graphql_data("{ me { messages(folder: \"inbox\", filter: { hasAttachments: false }, first: 10) { nodes { id subject from { address } toRecipients { address } ccRecipients { address } } } } }")
        .await;
    let original = &data["me"]["messages"]["nodes"][0];
    let id = original["id"].as_str().unwrap();
    let sender = original["from"]["address"].as_str().unwrap().to_lowercase();

    let (_, body) = app
        .graphql_as(
            Some(&app.token),
            "mutation($id: ID!) { reply(mailbox: \"me\", id: $id, comment: \"Thanks!\") { accepted } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(body["data"]["reply"]["accepted"], true, "{body}");
    let reply = sent(&app).await.last().cloned().unwrap();
    assert!(
        reply["subject"].as_str().unwrap().starts_with("RE: "),
        "{reply}"
    );
    let to: Vec<String> = reply["to"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_lowercase())
        .collect();
    assert_eq!(to, vec![sender.clone()]);

    let (_, body) = app
        .graphql_as(
            Some(&app.token),
            "mutation($id: ID!) { forward(mailbox: \"me\", id: $id, to: [\"partner@fabrikam.example\"], comment: \"FYI\") { accepted } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(body["data"]["forward"]["accepted"], true, "{body}");
    let forward = sent(&app).await.last().cloned().unwrap();
    assert!(
        forward["subject"].as_str().unwrap().starts_with("FW: "),
        "{forward}"
    );

    // Both a comment and a body: refused before Graph.
    let (_, body) = app
        .graphql_as(
            Some(&app.token),
            "mutation($id: ID!) { replyAll(mailbox: \"me\", id: $id, comment: \"a\", body: \"b\") { accepted } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "BAD_USER_INPUT",
        "{body}"
    );
    // Forward to nobody: refused.
    let (status, _) = app
        .http
        .post(format!(
            "{}/api/v1/users/me/messages/{}/forward",
            app.base,
            enc(id)
        ))
        .bearer_auth(&app.token)
        .json(&json!({ "to": [] }))
        .send()
        .await
        .map(|r| (r.status(), ()))
        .unwrap();
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

fn enc(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

#[tokio::test]
async fn messages_are_marked_categorised_flagged_moved_and_deleted() {
    let app = spawn_app().await;
    let data = app
        .graphql_data("{ me { messages(folder: \"inbox\", first: 3) { nodes { id } } } }")
        .await;
    let id = data["me"]["messages"]["nodes"][2]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (_, body) = app
        .graphql_as(
            Some(&app.token),
            "mutation($id: ID!) {
                a: markRead(mailbox: \"me\", id: $id) { isRead }
                b: setCategories(mailbox: \"me\", id: $id, categories: [\"Orders\", \"Blue category\"]) { categories }
                c: flag(mailbox: \"me\", id: $id, status: FLAGGED) { flag { status } } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(body["data"]["a"]["isRead"], true, "{body}");
    assert_eq!(
        body["data"]["b"]["categories"],
        json!(["Orders", "Blue category"])
    );
    assert_eq!(body["data"]["c"]["flag"]["status"], "FLAGGED");

    // The list reflects the writes at once (the gateway evicted its cached pages).
    let data = app
        .graphql_data(
            "{ me { messages(folder: \"inbox\", first: 3) { nodes { id isRead categories } } } }",
        )
        .await;
    assert_eq!(
        data["me"]["messages"]["nodes"][2]["categories"],
        json!(["Orders", "Blue category"])
    );

    let (status, moved) = app
        .http
        .post(format!(
            "{}/api/v1/users/me/messages/{}/move",
            app.base,
            enc(&id)
        ))
        .bearer_auth(&app.token)
        .json(&json!({ "destination": "archive" }))
        .send()
        .await
        .map(|r| (r.status(), r))
        .unwrap();
    assert_eq!(status, StatusCode::CREATED);
    let moved: Value = moved.json().await.unwrap();
    let new_id = moved["id"].as_str().unwrap();
    assert_ne!(new_id, id);
    let (status, _) = app
        .get(&format!("/api/v1/users/me/messages/{}", enc(&id)))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "the old id is gone");

    let response = app
        .http
        .delete(format!(
            "{}/api/v1/users/me/messages/{}",
            app.base,
            enc(new_id)
        ))
        .bearer_auth(&app.token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let (status, body) = app
        .get(&format!("/api/v1/users/me/messages/{}", enc(new_id)))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    // Moving to a folder that does not exist.
    let body = app
        .graphql(&format!(
            "mutation {{ move(mailbox: \"me\", id: \"{}\", destination: \"no-such-folder\") {{ id }} }}",
            data["me"]["messages"]["nodes"][0]["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "NOT_FOUND",
        "{body}"
    );
}

#[tokio::test]
async fn a_read_only_caller_cannot_send_or_change_mail() {
    let config = real_mode_config_from(
        test_config(),
        (
            "reader",
            CallerMode::App,
            &["mail.read", "users.read"],
            &["*"],
        ),
    );
    let app = spawn_app_with(config).await;
    let token = test_token("reader", Some(DEMO_USER_UPN));
    app.reset_stats().await;
    let (_, body) = app
        .graphql_as(
            Some(&token),
            "mutation { sendMail(mailbox: \"me\", message: { subject: \"x\", to: [\"a@b.example\"] }) { accepted } deleteMessage(mailbox: \"me\", id: \"x\") }",
            json!({}),
        )
        .await;
    let codes: Vec<&Value> = body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["extensions"]["code"])
        .collect();
    assert!(codes.iter().all(|c| *c == "FORBIDDEN"), "{body}");
    let response = app
        .http
        .delete(format!("{}/api/v1/users/me/messages/x", app.base))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert_eq!(app.graph_requests().await, 0);
}

#[tokio::test]
async fn a_send_graph_never_confirms_is_reported_as_unknown_and_not_retried() {
    let mut config = test_config();
    config.graph.timeout = std::time::Duration::from_millis(500);
    let app = spawn_app_with(config).await;
    app.graphql_data("{ me { id } }").await;
    let rule: Value = app
        .http
        .post(format!("{}/_emulator/faults", app.emulator))
        .json(&json!({ "fault": { "kind": "hang" }, "route": "POST /users/{id}/sendMail" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(rule.get("ids").is_some(), "{rule}");
    app.reset_stats().await;
    let (_, body) = app
        .graphql_as(
            Some(&app.token),
            SEND,
            json!({ "m": "me", "msg": { "subject": "once only", "to": ["a@b.example"] } }),
        )
        .await;
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "UPSTREAM_TIMEOUT_UNKNOWN_OUTCOME",
        "{body}"
    );
    let stats = app.stats().await;
    assert_eq!(
        stats["routes"]["POST /users/{id}/sendMail"], 1,
        "sent exactly once: {stats}"
    );
}

#[tokio::test]
async fn a_40_mb_attachment_arrives_byte_identical() {
    let app = spawn_app().await;
    let to = colleague(&app).await;
    let content: Vec<u8> = (0..40 * 1024 * 1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    let digest = hex(&Sha256::digest(&content));
    let subject = format!("Big file {}", uuid::Uuid::new_v4());
    let form = reqwest::multipart::Form::new()
        .text(
            "message",
            json!({ "message": { "subject": subject, "to": [to], "body": "see attached" } })
                .to_string(),
        )
        .part(
            "file",
            reqwest::multipart::Part::bytes(content)
                .file_name("survey.bin")
                .mime_str("application/octet-stream")
                .unwrap(),
        );
    app.reset_stats().await;
    let response = app
        .http
        .post(format!("{}/api/v1/users/me/send-mail", app.base))
        .bearer_auth(&app.token)
        .header("x-request-timeout", "120")
        .multipart(form)
        .send()
        .await
        .unwrap();
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["uploaded_attachments"], 1);
    let last = sent(&app).await.last().cloned().unwrap();
    assert_eq!(last["subject"], subject.as_str());
    assert_eq!(last["attachments"][0]["size"], 40 * 1024 * 1024);
    assert_eq!(last["attachments"][0]["sha256"], digest.as_str());
    let stats = app.stats().await;
    // 40 MiB in chunks of 3 MiB.
    assert_eq!(
        stats["routes"]["PUT /api/v2.0/AttachmentSessions"].as_u64(),
        Some(14),
        "{stats}"
    );
}

#[tokio::test]
async fn an_attachment_over_150_mb_is_refused_before_any_upload() {
    let app = spawn_app().await;
    app.reset_stats().await;
    // 151 MB streamed in 1 MB pieces; the gateway stops reading at 150 MB.
    let piece = bytes::Bytes::from(vec![7u8; 1024 * 1024]);
    let stream =
        futures::stream::iter((0..151).map(move |_| Ok::<_, std::io::Error>(piece.clone())));
    let form = reqwest::multipart::Form::new()
        .text(
            "message",
            json!({ "message": { "subject": "huge", "to": ["a@b.example"] } }).to_string(),
        )
        .part(
            "file",
            reqwest::multipart::Part::stream(reqwest::Body::wrap_stream(stream))
                .file_name("huge.bin"),
        );
    let response = app
        .http
        .post(format!("{}/api/v1/users/me/send-mail", app.base))
        .bearer_auth(&app.token)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "PAYLOAD_TOO_LARGE", "{body}");
    assert_eq!(app.graph_requests().await, 0);
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test]
async fn a_file_sent_through_a_graphql_multipart_request_goes_through_an_upload_session() {
    let app = spawn_app().await;
    let content = vec![42u8; 4 * 1024 * 1024 + 17];
    let digest = hex(&Sha256::digest(&content));
    let operations = json!({
        "query": "mutation($f: Upload!) { sendMail(mailbox: \"me\", message: { subject: \"via graphql\", to: [\"partner@fabrikam.example\"], attachments: [{ name: \"scan.pdf\", contentType: \"application/pdf\", file: $f }] }) { accepted uploadedAttachments } }",
        "variables": { "f": null }
    });
    let form = reqwest::multipart::Form::new()
        .text("operations", operations.to_string())
        .text("map", json!({ "0": ["variables.f"] }).to_string())
        .part(
            "0",
            reqwest::multipart::Part::bytes(content).file_name("scan.pdf"),
        );
    app.reset_stats().await;
    let response = app
        .http
        .post(format!("{}/graphql", app.base))
        .bearer_auth(&app.token)
        .header("GraphQL-Require-Preflight", "1")
        .multipart(form)
        .send()
        .await
        .unwrap();
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["data"]["sendMail"]["uploadedAttachments"], 1, "{body}");
    let last = sent(&app).await.last().cloned().unwrap();
    assert_eq!(last["subject"], "via graphql");
    assert_eq!(last["attachments"][0]["sha256"], digest.as_str());
    let stats = app.stats().await;
    assert_eq!(
        stats["routes"]["PUT /api/v2.0/AttachmentSessions"].as_u64(),
        Some(2),
        "{stats}"
    );
}

#[tokio::test]
async fn the_rest_api_drafts_sends_replies_and_updates_like_graphql() {
    let app = spawn_app().await;
    let post = |path: &str, body: Value| {
        app.http
            .post(format!("{}/api/v1/users/me{path}", app.base))
            .bearer_auth(&app.token)
            .json(&body)
            .send()
    };
    let response = post(
        "/messages",
        json!({ "message": { "subject": "REST draft", "body": "<b>hi</b>", "body_format": "html" } }),
    )
    .await
    .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let draft: Value = response.json().await.unwrap();
    assert_eq!(draft["is_draft"], true, "{draft}");
    let id = enc(draft["id"].as_str().unwrap());
    let response = app
        .http
        .patch(format!("{}/api/v1/users/me/drafts/{id}", app.base))
        .bearer_auth(&app.token)
        .json(&json!({ "to": ["partner@fabrikam.example"], "importance": "low" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let updated: Value = response.json().await.unwrap();
    assert_eq!(
        updated["to_recipients"][0]["address"],
        "partner@fabrikam.example"
    );
    assert_eq!(updated["importance"], "low");
    let response = post(&format!("/drafts/{id}/send"), json!({}))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    assert_eq!(sent(&app).await.last().unwrap()["subject"], "REST draft");

    let (_, list) = app
        .get("/api/v1/users/me/messages?folder=inbox&limit=1")
        .await;
    let inbox_id = enc(list["data"][0]["id"].as_str().unwrap());
    let response = app
        .http
        .patch(format!("{}/api/v1/users/me/messages/{inbox_id}", app.base))
        .bearer_auth(&app.token)
        .json(&json!({ "is_read": false, "flag": "flagged", "categories": ["Orders"] }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let patched: Value = response.json().await.unwrap();
    assert_eq!(patched["is_read"], false);
    assert_eq!(patched["flag"]["status"], "flagged");
    assert_eq!(patched["categories"], json!(["Orders"]));
    let response = post(
        &format!("/messages/{inbox_id}/reply-all"),
        json!({ "comment": "Noted." }),
    )
    .await
    .unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    assert!(
        sent(&app).await.last().unwrap()["subject"]
            .as_str()
            .unwrap()
            .starts_with("RE: ")
    );
    // An unknown field is refused, not ignored.
    let response = app
        .http
        .patch(format!("{}/api/v1/users/me/messages/{inbox_id}", app.base))
        .bearer_auth(&app.token)
        .json(&json!({ "isRead": false }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
}
