//! Attachments on existing messages and large attachments through upload sessions.

mod common;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use common::*;
use graph_emulator::{DEMO_USER_UPN, SHARED_MAILBOX_UPN};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sha2::Digest;

const MIB: usize = 1024 * 1024;

fn me() -> String {
    format!("/users/{DEMO_USER_UPN}")
}

fn values(body: &Value) -> Vec<Value> {
    body["value"].as_array().cloned().unwrap_or_default()
}

/// A new draft addressed to `to`; returns its id.
async fn draft(h: &Harness, subject: &str, to: &[&str]) -> String {
    let recipients: Vec<Value> = to
        .iter()
        .map(|a| json!({"emailAddress": {"address": a}}))
        .collect();
    let reply = h
        .post(
            &format!("{}/messages", me()),
            &json!({"subject": subject, "toRecipients": recipients}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    reply.json()["id"].as_str().expect("id").to_string()
}

async fn session(h: &Harness, id: &str, name: &str, size: usize) -> Reply {
    h.post(
        &format!(
            "{}/messages/{}/attachments/createUploadSession",
            me(),
            enc(id)
        ),
        &json!({"AttachmentItem": {"attachmentType": "file", "name": name, "size": size}}),
    )
    .await
}

/// `PUT uploadUrl` with a byte range, no Authorization.
async fn put(h: &Harness, url: &str, bytes: &[u8], first: usize, total: usize) -> Reply {
    let last = first + bytes.len() - 1;
    let response = h
        .client
        .put(url)
        .header("Content-Type", "application/octet-stream")
        .header("Content-Range", format!("bytes {first}-{last}/{total}"))
        .body(bytes.to_vec())
        .send()
        .await
        .expect("put");
    reply(response).await
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 % 251) as u8).collect()
}

fn sha256(bytes: &[u8]) -> String {
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[tokio::test]
async fn a_small_attachment_is_added_to_a_message_and_3_mb_is_refused() {
    let h = start().await;
    let id = draft(&h, "with a file", &[SHARED_MAILBOX_UPN]).await;
    let path = format!("{}/messages/{}/attachments", me(), enc(&id));
    let reply = h
        .post(
            &path,
            &json!({"@odata.type": "#microsoft.graph.fileAttachment", "name": "smile.gif", "contentBytes": "R0lGODdhEAAQAA=="}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    let a = reply.json();
    for key in [
        "id",
        "lastModifiedDateTime",
        "name",
        "contentType",
        "size",
        "isInline",
        "contentId",
        "contentLocation",
        "contentBytes",
    ] {
        assert!(a.get(key).is_some(), "{key}");
    }
    assert_eq!(a["contentType"], "image/gif");
    assert_eq!(a["size"], 10);
    assert_eq!(a["isInline"], false);
    let message = h
        .get(&format!("{}/messages/{}", me(), enc(&id)))
        .await
        .json();
    assert_eq!(message["hasAttachments"], true);
    let big = STANDARD.encode(vec![0u8; 3 * MIB]);
    let too_big = h
        .post(&path, &json!({"@odata.type": "#microsoft.graph.fileAttachment", "name": "big.bin", "contentBytes": big}))
        .await;
    assert_eq!(too_big.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(too_big.error_code(), "ErrorRequestEntityTooLarge");
    let bad = h
        .post(&path, &json!({"@odata.type": "#microsoft.graph.fileAttachment", "name": "bad.bin", "contentBytes": "%%%"}))
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert_eq!(bad.error_code(), "ErrorInvalidRequest");
    assert!(bad.error_message().contains("bad.bin"));
    // Removing it again.
    let aid = a["id"].as_str().expect("aid");
    assert_eq!(
        h.delete(&format!("{path}/{}", enc(aid))).await.status,
        StatusCode::NO_CONTENT
    );
    assert!(values(&h.get(&path).await.json()).is_empty());
}

#[tokio::test]
async fn an_upload_session_takes_three_chunks_and_the_attachment_is_delivered() {
    let h = start().await;
    let id = draft(&h, "The big file", &[SHARED_MAILBOX_UPN]).await;
    let size = 9 * MIB + 123;
    let created = session(&h, &id, "catalogue.pdf", size).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let body = created.json();
    assert_eq!(
        body["@odata.context"],
        "https://graph.microsoft.com/v1.0/$metadata#microsoft.graph.uploadSession"
    );
    assert_eq!(body["nextExpectedRanges"], json!(["0-"]));
    assert!(
        body["expirationDateTime"]
            .as_str()
            .is_some_and(|e| e.ends_with('Z'))
    );
    let url = body["uploadUrl"].as_str().expect("uploadUrl").to_string();
    assert!(
        url.starts_with(&format!("{}/api/v2.0/Users('", h.emu.base_url())),
        "{url}"
    );
    assert!(!url.contains("/v1.0/"));
    assert!(
        url.contains("/AttachmentSessions('") && url.contains("?authtoken="),
        "{url}"
    );

    let bytes = pattern(size);
    h.emu.emulator.reset_stats();
    let first = put(&h, &url, &bytes[..4 * MIB], 0, size).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.text);
    let state = first.json();
    assert_eq!(
        state["@odata.context"],
        "https://outlook.office.com/api/v2.0/$metadata#Microsoft.OutlookServices.UploadSession"
    );
    assert_eq!(state["NextExpectedRanges"], json!([(4 * MIB).to_string()]));
    assert!(state["ExpirationDateTime"].is_string());
    let second = put(&h, &url, &bytes[4 * MIB..8 * MIB], 4 * MIB, size).await;
    assert_eq!(second.status, StatusCode::OK);
    assert_eq!(
        second.json()["NextExpectedRanges"],
        json!([(8 * MIB).to_string()])
    );
    let last = put(&h, &url, &bytes[8 * MIB..], 8 * MIB, size).await;
    assert_eq!(last.status, StatusCode::CREATED, "{}", last.text);
    assert!(last.text.is_empty());
    let location = last.header("location").expect("Location").to_string();
    assert!(location.starts_with(&format!("{}/api/v2.0/Users('", h.emu.base_url())));
    assert!(location.contains("/Attachments('"), "{location}");

    let stats = h.emu.emulator.stats();
    assert_eq!(
        stats.routes.get("PUT /api/v2.0/AttachmentSessions"),
        Some(&3)
    );
    assert_eq!(
        stats.graph_requests, 0,
        "upload PUTs are not Graph requests"
    );

    let attachments = values(
        &h.get(&format!(
            "{}/messages/{}/attachments?$select=id,name,size,contentType",
            me(),
            enc(&id)
        ))
        .await
        .json(),
    );
    assert_eq!(attachments.len(), 1);
    assert_eq!(attachments[0]["name"], "catalogue.pdf");
    assert_eq!(attachments[0]["contentType"], "application/pdf");
    assert_eq!(attachments[0]["size"], size);
    let aid = attachments[0]["id"].as_str().expect("aid");
    assert!(location.contains(aid));
    let raw = h
        .client
        .get(format!(
            "{}{}/messages/{}/attachments/{}/$value",
            h.emu.graph_url(),
            me(),
            enc(&id),
            enc(aid)
        ))
        .bearer_auth(&h.token)
        .send()
        .await
        .expect("value");
    assert_eq!(raw.bytes().await.expect("bytes").to_vec(), bytes);
    // The finished session is gone.
    assert_eq!(
        put(&h, &url, &bytes[..10], 0, size).await.status,
        StatusCode::NOT_FOUND
    );

    // Sending the draft delivers the attachment.
    let sent = h
        .post(&format!("{}/messages/{}/send", me(), enc(&id)), &json!({}))
        .await;
    assert_eq!(sent.status, StatusCode::ACCEPTED);
    let log = h.emu.emulator.sent_mail();
    assert_eq!(log[0].attachments[0].size, size);
    assert_eq!(log[0].attachments[0].sha256, sha256(&bytes));
    assert_eq!(log[0].delivered, vec![SHARED_MAILBOX_UPN.to_string()]);
}

#[tokio::test]
async fn upload_urls_refuse_authorization_big_chunks_and_out_of_order_ranges() {
    let h = start().await;
    let id = draft(&h, "careful uploads", &[SHARED_MAILBOX_UPN]).await;
    let size = 5 * MIB;
    let url = session(&h, &id, "data.bin", size).await.json()["uploadUrl"]
        .as_str()
        .expect("url")
        .to_string();
    let bytes = pattern(size);

    let with_auth = h
        .client
        .put(&url)
        .bearer_auth(&h.token)
        .header("Content-Range", format!("bytes 0-1023/{size}"))
        .body(bytes[..1024].to_vec())
        .send()
        .await
        .expect("put");
    assert_eq!(with_auth.status(), StatusCode::UNAUTHORIZED);

    let too_big = put(&h, &url, &bytes[..4 * MIB + 1], 0, size).await;
    assert_eq!(too_big.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(too_big.error_code(), "ErrorRequestEntityTooLarge");

    let out_of_order = put(&h, &url, &bytes[1024..2048], 1024, size).await;
    assert_eq!(out_of_order.status, StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(out_of_order.error_code(), "ErrorInvalidRange");
    let status = reply(h.client.get(&url).send().await.expect("get")).await;
    assert_eq!(
        status.json()["NextExpectedRanges"],
        json!(["0"]),
        "unchanged"
    );

    let ok = put(&h, &url, &bytes[..MIB], 0, size).await;
    assert_eq!(ok.status, StatusCode::OK);
    let overlap = put(&h, &url, &bytes[MIB - 10..2 * MIB], MIB - 10, size).await;
    assert_eq!(overlap.status, StatusCode::RANGE_NOT_SATISFIABLE);
    let status = reply(h.client.get(&url).send().await.expect("get")).await;
    assert_eq!(
        status.json()["NextExpectedRanges"],
        json!([MIB.to_string()])
    );

    let wrong_total = put(&h, &url, &bytes[MIB..2 * MIB], MIB, size + 1).await;
    assert_eq!(wrong_total.status, StatusCode::BAD_REQUEST);
    let no_range = reply(
        h.client
            .put(&url)
            .body(vec![1u8; 10])
            .send()
            .await
            .expect("put"),
    )
    .await;
    assert_eq!(no_range.status, StatusCode::BAD_REQUEST);

    let wrong_token = url.replace("authtoken=", "authtoken=x");
    assert_eq!(
        put(&h, &wrong_token, &bytes[MIB..2 * MIB], MIB, size)
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    let without_token = url.split('?').next().expect("url").to_string();
    assert_eq!(
        put(&h, &without_token, &bytes[MIB..2 * MIB], MIB, size)
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    let unknown = url.replace("AttachmentSessions('", "AttachmentSessions('x");
    assert_eq!(
        put(&h, &unknown, &bytes[MIB..2 * MIB], MIB, size)
            .await
            .status,
        StatusCode::NOT_FOUND
    );

    // Cancelling.
    let cancelled = h.client.delete(&url).send().await.expect("delete");
    assert_eq!(cancelled.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        put(&h, &url, &bytes[MIB..2 * MIB], MIB, size).await.status,
        StatusCode::NOT_FOUND
    );
    assert!(
        values(
            &h.get(&format!("{}/messages/{}/attachments", me(), enc(&id)))
                .await
                .json()
        )
        .is_empty()
    );

    // Sessions are at most 150 MiB, and describe a file.
    let huge = session(&h, &id, "huge.bin", 150 * MIB + 1).await;
    assert_eq!(huge.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        huge.error_code(),
        "ErrorAttachmentSizeShouldNotBeMoreThanMaximumSize"
    );
    for item in [
        json!({}),
        json!({"AttachmentItem": {"attachmentType": "item", "name": "x", "size": 10}}),
        json!({"AttachmentItem": {"attachmentType": "file", "size": 10}}),
        json!({"AttachmentItem": {"attachmentType": "file", "name": "x"}}),
    ] {
        let reply = h
            .post(
                &format!(
                    "{}/messages/{}/attachments/createUploadSession",
                    me(),
                    enc(&id)
                ),
                &item,
            )
            .await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{item}");
        assert_eq!(reply.error_code(), "ErrorInvalidRequest");
    }
    let camel = h
        .post(
            &format!(
                "{}/messages/{}/attachments/createUploadSession",
                me(),
                enc(&id)
            ),
            &json!({"attachmentItem": {"attachmentType": "File", "name": "y.txt", "size": 4}}),
        )
        .await;
    assert_eq!(camel.status, StatusCode::CREATED);
}

#[tokio::test]
async fn a_40_mb_attachment_travels_end_to_end_to_three_mailboxes() {
    let h = start().await;
    let people: Vec<String> = values(
        &h.get(&format!(
            "/users/{DEMO_USER_UPN}/directReports?$select=userPrincipalName"
        ))
        .await
        .json(),
    )
    .iter()
    .filter_map(|u| u["userPrincipalName"].as_str().map(str::to_string))
    .collect();
    let mut to: Vec<&str> = people.iter().map(String::as_str).take(2).collect();
    to.push(SHARED_MAILBOX_UPN);
    let id = draft(&h, "Forty megabytes", &to).await;
    let size = 40 * MIB;
    let url = session(&h, &id, "video.mp4", size).await.json()["uploadUrl"]
        .as_str()
        .expect("url")
        .to_string();
    let bytes = pattern(size);
    for (n, chunk) in bytes.chunks(4 * MIB).enumerate() {
        let reply = put(&h, &url, chunk, n * 4 * MIB, size).await;
        let expected = if (n + 1) * 4 * MIB >= size {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        };
        assert_eq!(reply.status, expected, "chunk {n}: {}", reply.text);
    }
    let sent = h
        .post(&format!("{}/messages/{}/send", me(), enc(&id)), &json!({}))
        .await;
    assert_eq!(sent.status, StatusCode::ACCEPTED, "{}", sent.text);
    let log = h.emu.emulator.sent_mail();
    assert_eq!(log[0].delivered.len(), 3);
    assert_eq!(log[0].attachments[0].sha256, sha256(&bytes));
    for upn in &to {
        let found = values(
            &h.get(&format!("/users/{upn}/mailFolders/inbox/messages?$filter=subject eq 'Forty megabytes'&$expand=attachments($select=id,name,size)"))
                .await
                .json(),
        );
        let a = &found[0]["attachments"][0];
        assert_eq!(a["size"], size, "{upn}");
        assert_eq!(a["name"], "video.mp4");
    }
    // One recipient downloads it.
    let found = values(
        &h.get(&format!("/users/{SHARED_MAILBOX_UPN}/messages?$filter=subject eq 'Forty megabytes'&$expand=attachments($select=id)"))
            .await
            .json(),
    );
    let mid = found[0]["id"].as_str().expect("id");
    let aid = found[0]["attachments"][0]["id"].as_str().expect("aid");
    let raw = h
        .client
        .get(format!(
            "{}/users/{SHARED_MAILBOX_UPN}/messages/{}/attachments/{}/$value",
            h.emu.graph_url(),
            enc(mid),
            enc(aid)
        ))
        .bearer_auth(&h.token)
        .send()
        .await
        .expect("value");
    assert_eq!(
        raw.headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("video/mp4")
    );
    let downloaded = raw.bytes().await.expect("bytes");
    assert_eq!(downloaded.len(), size);
    assert_eq!(sha256(&downloaded), sha256(&bytes));
}
