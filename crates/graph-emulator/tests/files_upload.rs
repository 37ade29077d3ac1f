//! Simple uploads (`PUT …/content`): create and replace, hashes, content types, conflict
//! behaviour, `If-Match`, OneDrive's name rules, the 250 MB limit and quotas.

mod common;

use common::files::*;
use common::*;
use graph_emulator::{DEFAULT_CLIENT_ID, DEMO_USER_UPN};
use reqwest::StatusCode;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn sha1_hex(bytes: &[u8]) -> String {
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY, bytes)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect()
}

#[tokio::test]
async fn a_simple_upload_creates_missing_folders_then_replaces_the_file() {
    let h = start().await;
    let drive = h.demo_drive();
    let body = b"The contents of the file goes here.";
    let path = format!("/drives/{drive}/root:/Uploads/Sub%20Folder/hello.txt:/content");
    let created = h
        .put_content(&path, body, &[("Content-Type", "text/plain")])
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let item = created.json();
    assert_eq!(item["name"], "hello.txt");
    assert_eq!(item["size"], 35);
    assert_eq!(item["file"]["mimeType"], "text/plain");
    assert_eq!(item["file"]["hashes"]["sha256Hash"], sha256_hex(body));
    assert_eq!(item["file"]["hashes"]["sha1Hash"], sha1_hex(body));
    assert_eq!(
        item["parentReference"]["path"],
        "/drive/root:/Uploads/Sub Folder"
    );
    assert_eq!(item["parentReference"]["name"], "Sub Folder");
    let app = json!({"application": {"id": DEFAULT_CLIENT_ID, "displayName": "m365-gateway"}});
    assert_eq!(item["createdBy"], app);
    assert_eq!(item["lastModifiedBy"], app);
    let uploads = h
        .get(&format!("/drives/{drive}/root:/Uploads"))
        .await
        .json();
    assert_eq!(uploads["folder"]["childCount"], 1);
    assert_eq!(uploads["size"], 35);
    let id = item["id"].as_str().expect("id").to_string();
    let (etag, ctag) = (item["eTag"].clone(), item["cTag"].clone());

    // Again: replaced (200), same id, new eTag and cTag.
    let replaced = h.put_content(&path, b"shorter", &[]).await;
    assert_eq!(replaced.status, StatusCode::OK, "{}", replaced.text);
    let again = replaced.json();
    assert_eq!(again["id"], id);
    assert_eq!(again["size"], 7);
    assert_ne!(again["eTag"], etag);
    assert_ne!(again["cTag"], ctag);
    assert_eq!(
        h.get(&format!("/drives/{drive}/root:/Uploads"))
            .await
            .json()["size"],
        7
    );
    // By id.
    let by_id = h
        .put_content(
            &format!("/drives/{drive}/items/{id}/content"),
            b"third version",
            &[],
        )
        .await;
    assert_eq!(by_id.status, StatusCode::OK, "{}", by_id.text);
    assert!(
        by_id.json()["cTag"]
            .as_str()
            .expect("cTag")
            .ends_with(",3\"")
    );
    let (_, bytes) = h
        .download(&format!("/drives/{drive}/items/{id}/content"))
        .await;
    assert_eq!(bytes, b"third version");

    // Under a parent by id; the type from the extension when none is sent.
    let parent = h.item_id(&drive, "Uploads");
    for (name, mime) in [
        ("data.bin", "application/octet-stream"),
        ("data.json", "application/json"),
        ("table.csv", "text/csv"),
        ("image.png", "image/png"),
        ("doc.pdf", "application/pdf"),
        (
            "memo.docx",
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        ),
    ] {
        let r = h
            .put_content(
                &format!("/drives/{drive}/items/{parent}:/{name}:/content"),
                b"x",
                &[],
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{name}: {}", r.text);
        assert_eq!(r.json()["file"]["mimeType"], mime, "{name}");
    }
    // Empty files are files too.
    let empty = h
        .put_content(
            &format!("/drives/{drive}/root:/empty.txt:/content"),
            b"",
            &[],
        )
        .await;
    assert_eq!(empty.status, StatusCode::CREATED, "{}", empty.text);
    assert_eq!(empty.json()["size"], 0);
    assert_eq!(
        empty.json()["file"]["hashes"]["quickXorHash"],
        "AAAAAAAAAAAAAAAAAAAAAAAAAAA="
    );
}

#[tokio::test]
async fn quick_xor_hashes_match_the_published_vectors() {
    use base64::Engine as _;
    let h = start().await;
    let drive = h.demo_drive();
    // (input, QuickXorHash) as published with rclone's implementation of the algorithm.
    for (i, (input, expected)) in [
        ("Sg==", "SgAAAAAAAAAAAAAAAQAAAAAAAAA="),
        ("2fuxhBJXtpWFe8dOfdGeHw==", "O9tHLAghgSvYohKFyMMxnNCHaHg="),
        (
            "Mb7EGva2rEE5fENDL85P+BsapHEEjv2/siVhKjvAQe02feExVOQSkfmuYzU/kTF1MaKjPmKF/w+cbvwfdWL8aQ==",
            "n1anP5NfvD4XDYWIeRPW3ZkPv1Y=",
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(input)
            .expect("base64");
        let r = h
            .put_content(&format!("/drives/{drive}/root:/vector-{i}.bin:/content"), &bytes, &[])
            .await;
        assert_eq!(r.json()["file"]["hashes"]["quickXorHash"], expected);
    }
}

#[tokio::test]
async fn conflict_behaviour_and_if_match_decide_what_a_simple_upload_does() {
    let h = start().await;
    let drive = h.demo_drive();
    let put = |path: String, headers: Vec<(&'static str, String)>| {
        let h = &h;
        async move {
            let headers: Vec<(&str, &str)> =
                headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
            h.put_content(&path, b"v", &headers).await
        }
    };
    let base = format!("/drives/{drive}/root:/Documents/Notes.txt:/content");
    let fail = put(
        format!("{base}?@microsoft.graph.conflictBehavior=fail"),
        vec![],
    )
    .await;
    assert_eq!(fail.status, StatusCode::CONFLICT, "{}", fail.text);
    assert_eq!(fail.error_code(), "nameAlreadyExists");
    for expected in ["Notes 1.txt", "Notes 2.txt"] {
        let renamed = put(
            format!("{base}?@microsoft.graph.conflictBehavior=rename"),
            vec![],
        )
        .await;
        assert_eq!(renamed.status, StatusCode::CREATED, "{}", renamed.text);
        assert_eq!(renamed.json()["name"], expected);
    }
    let bad = put(
        format!("{base}?@microsoft.graph.conflictBehavior=merge"),
        vec![],
    )
    .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);

    let notes = h
        .get(&format!("/drives/{drive}/root:/Documents/Notes.txt"))
        .await
        .json();
    let etag = notes["eTag"].as_str().expect("eTag").to_string();
    let ctag = notes["cTag"].as_str().expect("cTag").to_string();
    let stale = put(
        base.clone(),
        vec![(
            "If-Match",
            "\"{00000000-0000-0000-0000-000000000000},1\"".into(),
        )],
    )
    .await;
    assert_eq!(
        stale.status,
        StatusCode::PRECONDITION_FAILED,
        "{}",
        stale.text
    );
    assert_eq!(stale.error_code(), "preconditionFailed");
    let ok = put(
        format!("{base}?@microsoft.graph.conflictBehavior=replace"),
        vec![("If-Match", etag.clone())],
    )
    .await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.text);
    // The cTag of the new content matches too; the old eTag no longer does.
    let new_ctag = ok.json()["cTag"].as_str().expect("cTag").to_string();
    assert_ne!(new_ctag, ctag);
    assert_eq!(
        put(base.clone(), vec![("If-Match", new_ctag)]).await.status,
        StatusCode::OK
    );
    assert_eq!(
        put(base.clone(), vec![("If-Match", etag)]).await.status,
        StatusCode::PRECONDITION_FAILED
    );
    // If-Match on a name that does not exist yet.
    let missing = put(
        format!("/drives/{drive}/root:/Documents/Brand%20new.txt:/content"),
        vec![("If-Match", "*".into())],
    )
    .await;
    assert_eq!(missing.status, StatusCode::PRECONDITION_FAILED);
    // Uploading onto a folder's name, or into the root itself, is refused.
    let onto_folder = put(format!("/drives/{drive}/root:/Documents:/content"), vec![]).await;
    assert_eq!(
        onto_folder.status,
        StatusCode::CONFLICT,
        "{}",
        onto_folder.text
    );
    let folder = h.item_id(&drive, "Documents");
    let by_folder_id = put(format!("/drives/{drive}/items/{folder}/content"), vec![]).await;
    assert_eq!(by_folder_id.status, StatusCode::BAD_REQUEST);
    let into_root = put(format!("/drives/{drive}/root/content"), vec![]).await;
    assert_eq!(into_root.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn names_onedrive_refuses_are_invalid_requests() {
    let h = start().await;
    let drive = h.demo_drive();
    for name in [
        "a%22b.txt",
        "a*b.txt",
        "a%3Cb.txt",
        "a%3Eb.txt",
        "what%3F.txt",
        "back%5Cslash.txt",
        "pipe%7C.txt",
        "%20leading.txt",
        "trailing.txt%20",
        "dot.",
        ".lock",
        "CON",
        "con.txt",
        "Com1.docx",
        "LPT9",
        "nul.tar.gz",
        "desktop.ini",
        "a_vti_b.txt",
        "~%24lockfile.docx",
    ] {
        let r = h
            .put_content(&format!("/drives/{drive}/root:/{name}:/content"), b"x", &[])
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{name}: {}", r.text);
        assert_eq!(r.error_code(), "invalidRequest", "{name}");
    }
    // A folder on the way is a name too.
    let r = h
        .put_content(
            &format!("/drives/{drive}/root:/CON/ok.txt:/content"),
            b"x",
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    // Names that look close but are fine.
    for name in [
        "CONTRACT.txt",
        "com10.txt",
        "lpt.txt",
        "notes.lock.txt",
        "x~%24y.txt",
    ] {
        let r = h
            .put_content(&format!("/drives/{drive}/root:/{name}:/content"), b"x", &[])
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{name}: {}", r.text);
    }
}

/// Sends a request head and `body` on a raw connection; the status line of the answer.
async fn raw_status(addr: std::net::SocketAddr, head: &str, body: &[u8]) -> String {
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    stream.write_all(head.as_bytes()).await.expect("head");
    let _ = stream.write_all(body).await;
    let mut buf = vec![0u8; 4096];
    let mut got = Vec::new();
    let read = async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    got.extend_from_slice(&buf[..n]);
                    if got.windows(4).any(|w| w == b"\r\n\r\n") {
                        break;
                    }
                }
            }
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(10), read)
        .await
        .expect("an answer");
    String::from_utf8_lossy(&got)
        .lines()
        .next()
        .unwrap_or_default()
        .to_string()
}

#[tokio::test]
async fn simple_uploads_stop_at_250_mb_and_at_the_quota() {
    let h = start().await;
    let drive = h.demo_drive();
    // A declared 250 MB + 1 is refused before the body is read.
    let head = format!(
        "PUT /v1.0/drives/{drive}/root:/huge.bin:/content HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\nContent-Length: 262144001\r\n\r\n",
        h.emu.addr, h.token
    );
    let status = raw_status(h.emu.addr, &head, &[0u8; 1024]).await;
    assert!(status.starts_with("HTTP/1.1 413"), "{status}");

    // Quota: exactly what is left fits, one byte more does not.
    let used = h.get(&format!("/drives/{drive}")).await.json()["quota"]["used"]
        .as_u64()
        .expect("used");
    let set = h
        .client
        .post(format!(
            "{}/_emulator/drives/{drive}/quota",
            h.emu.base_url()
        ))
        .json(&json!({"total": used + 100}))
        .send()
        .await
        .expect("quota");
    assert_eq!(set.status(), StatusCode::NO_CONTENT);
    let over = h
        .put_content(
            &format!("/drives/{drive}/root:/q.bin:/content"),
            &[7u8; 101],
            &[],
        )
        .await;
    assert_eq!(
        over.status,
        StatusCode::INSUFFICIENT_STORAGE,
        "{}",
        over.text
    );
    assert_eq!(over.error_code(), "quotaLimitReached");
    let fits = h
        .put_content(
            &format!("/drives/{drive}/root:/q.bin:/content"),
            &[7u8; 100],
            &[],
        )
        .await;
    assert_eq!(fits.status, StatusCode::CREATED, "{}", fits.text);
    let quota = h.get(&format!("/drives/{drive}")).await.json()["quota"].clone();
    assert_eq!(quota["remaining"], 0);
    assert_eq!(quota["used"], used + 100);
    assert_eq!(quota["state"], "exceeded");
    // Replacing with fewer bytes frees space.
    let smaller = h
        .put_content(
            &format!("/drives/{drive}/root:/q.bin:/content"),
            &[7u8; 40],
            &[],
        )
        .await;
    assert_eq!(smaller.status, StatusCode::OK);
    assert_eq!(
        h.get(&format!("/drives/{drive}")).await.json()["quota"]["remaining"],
        60
    );
    // Deleting frees the rest.
    let id = smaller.json()["id"].as_str().expect("id").to_string();
    assert_eq!(
        h.delete(&format!("/drives/{drive}/items/{id}"))
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        h.get(&format!("/drives/{drive}")).await.json()["quota"]["remaining"],
        100
    );

    assert!(h.emu.emulator.set_drive_quota(&drive, 1 << 40));
    assert!(!h.emu.emulator.set_drive_quota("b!unknown", 1));
    let unknown = h
        .client
        .post(format!(
            "{}/_emulator/drives/b!unknown/quota",
            h.emu.base_url()
        ))
        .json(&json!({"total": 5}))
        .send()
        .await
        .expect("quota");
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn delegated_uploads_are_stamped_with_the_user() {
    let h = start().await;
    let token = h.delegated(DEMO_USER_UPN, &["Files.ReadWrite"]);
    let r = h
        .bytes_request(
            reqwest::Method::PUT,
            "/me/drive/root:/mine.txt:/content",
            b"hello".to_vec(),
            true,
            Some(&token),
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let demo_id = h.user_id(DEMO_USER_UPN).await;
    let item = r.json();
    assert_eq!(item["lastModifiedBy"]["user"]["id"], demo_id);
    assert_eq!(
        item["lastModifiedBy"]["user"]["displayName"],
        "Tamsin Greaves"
    );
    assert_eq!(item["createdBy"]["user"]["email"], DEMO_USER_UPN);
    let stats = h.emu.emulator.stats();
    assert_eq!(
        stats.routes.get("PUT /me/drive/root:/{path}:/content"),
        Some(&1)
    );
}

#[tokio::test]
async fn simple_uploads_are_not_bound_by_the_16_mib_buffer_of_other_graph_requests() {
    let h = start().await;
    let drive = h.demo_drive();
    let data = pattern(0, 20 * 1024 * 1024 + 3);
    let r = h
        .put_content(
            &format!("/drives/{drive}/root:/twenty.bin:/content"),
            &data,
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(r.json()["size"], data.len());
    assert_eq!(r.json()["file"]["hashes"]["sha256Hash"], sha256_hex(&data));
    let id = r.json()["id"].as_str().expect("id").to_string();
    let (_, bytes) = h
        .download(&format!("/drives/{drive}/items/{id}/content"))
        .await;
    assert!(bytes == data);
    // Other Graph bodies keep their limit.
    let big_json = json!({"name": "x".repeat(17 * 1024 * 1024), "folder": {}});
    let r = h
        .post(&format!("/drives/{drive}/root/children"), &big_json)
        .await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
}
