//! Resumable uploads: `createUploadSession`, fragments to the pre-authenticated `uploadUrl`
//! (202, 201/200, the 320 KiB rule, 416 for overlaps and gaps, a constant total), status,
//! cancel, expiry, `deferCommit`, and fragments lost to faults or disconnects.

mod common;

use common::files::*;
use common::*;
use graph_emulator::{Fault, FaultRule, RetryAfter};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;

fn ranges(reply: &Reply) -> Value {
    reply.json()["nextExpectedRanges"].clone()
}

#[tokio::test]
async fn fragments_in_order_answer_202_until_the_last_creates_the_file() {
    let h = start().await;
    let drive = h.demo_drive();
    let created = h
        .post(
            &format!("/drives/{drive}/root:/Big/file.bin:/createUploadSession"),
            &json!({}),
        )
        .await;
    assert_eq!(created.status, StatusCode::OK, "{}", created.text);
    let session = created.json();
    let url = session["uploadUrl"]
        .as_str()
        .expect("uploadUrl")
        .to_string();
    assert!(
        url.starts_with(&format!("{}/up/", h.emu.base_url())),
        "{url}"
    );
    assert_eq!(session["nextExpectedRanges"], json!(["0-"]));
    let expires = session["expirationDateTime"].as_str().expect("expiry");
    assert!(
        expires.ends_with(".000Z") && expires.len() == 24,
        "{expires}"
    );

    let data = pattern(0, 3 * UNIT + 1000);
    h.emu.emulator.reset_stats();
    let first = h.put_fragment(&url, &data, 0, UNIT).await;
    assert_eq!(first.status, StatusCode::ACCEPTED, "{}", first.text);
    assert_eq!(ranges(&first), json!([format!("{UNIT}-")]));
    assert!(first.json()["expirationDateTime"].is_string());
    let status = h.preauth(Method::GET, &url, Vec::new(), &[]).await;
    assert_eq!(status.status, StatusCode::OK);
    assert_eq!(ranges(&status), json!([format!("{UNIT}-")]));
    let second = h.put_fragment(&url, &data, UNIT, 2 * UNIT).await;
    assert_eq!(second.status, StatusCode::ACCEPTED, "{}", second.text);
    assert_eq!(ranges(&second), json!([format!("{}-", 3 * UNIT)]));
    let last = h.put_fragment(&url, &data, 3 * UNIT, 1000).await;
    assert_eq!(last.status, StatusCode::CREATED, "{}", last.text);
    let item = last.json();
    assert_eq!(item["name"], "file.bin");
    assert_eq!(item["size"], data.len());
    assert_eq!(item["parentReference"]["path"], "/drive/root:/Big");
    assert_eq!(item["file"]["hashes"]["sha256Hash"], sha256_hex(&data));
    assert_eq!(item["file"]["mimeType"], "application/octet-stream");
    let id = item["id"].as_str().expect("id").to_string();
    let (_, bytes) = h
        .download(&format!("/drives/{drive}/items/{id}/content"))
        .await;
    assert_eq!(bytes, data);

    // The session is gone.
    let gone = h.preauth(Method::GET, &url, Vec::new(), &[]).await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
    assert_eq!(gone.error_code(), "itemNotFound");
    let stats = h.emu.emulator.stats();
    assert_eq!(stats.routes.get("PUT /up/{id}"), Some(&3));
    assert_eq!(stats.routes.get("GET /up/{id}"), Some(&2));

    // A session on an existing file's id replaces it: 200.
    let url = h
        .session(&format!("/drives/{drive}/items/{id}"), json!({}))
        .await;
    let small = pattern(99, 5000);
    let replaced = h.put_fragment(&url, &small, 0, small.len()).await;
    assert_eq!(replaced.status, StatusCode::OK, "{}", replaced.text);
    assert_eq!(replaced.json()["id"], id);
    assert_eq!(replaced.json()["size"], 5000);
    assert!(
        replaced.json()["cTag"]
            .as_str()
            .expect("cTag")
            .ends_with(",2\"")
    );
}

#[tokio::test]
async fn fragments_out_of_order_or_malformed_are_refused_and_leave_the_session_usable() {
    let h = start().await;
    let drive = h.demo_drive();
    let url = h
        .session(&format!("/drives/{drive}/root:/rules.bin:"), json!({}))
        .await;
    let data = pattern(0, 2 * UNIT + 77);
    let total = data.len();
    assert_eq!(
        h.put_fragment(&url, &data, 0, UNIT).await.status,
        StatusCode::ACCEPTED
    );

    // Not a multiple of 320 KiB and not the last.
    let odd = h.put_fragment(&url, &data, UNIT, 1000).await;
    assert_eq!(odd.status, StatusCode::BAD_REQUEST, "{}", odd.text);
    assert_eq!(odd.error_code(), "invalidRange");
    // Overlap and gap: 416.
    let overlap = h.put_fragment(&url, &data, 0, UNIT).await;
    assert_eq!(
        overlap.status,
        StatusCode::RANGE_NOT_SATISFIABLE,
        "{}",
        overlap.text
    );
    assert_eq!(overlap.error_code(), "invalidRange");
    let overlap = h.put_fragment(&url, &data, UNIT - 10, UNIT + 87).await;
    assert_eq!(overlap.status, StatusCode::RANGE_NOT_SATISFIABLE);
    let gap = h.put_fragment(&url, &data, 2 * UNIT, 77).await;
    assert_eq!(gap.status, StatusCode::RANGE_NOT_SATISFIABLE);
    // The total never changes.
    let other_total = h
        .preauth(
            Method::PUT,
            &url,
            data[UNIT..2 * UNIT].to_vec(),
            &[(
                "Content-Range",
                &format!("bytes {UNIT}-{}/{}", 2 * UNIT - 1, total + 1),
            )],
        )
        .await;
    assert_eq!(
        other_total.status,
        StatusCode::BAD_REQUEST,
        "{}",
        other_total.text
    );
    assert_eq!(other_total.error_code(), "invalidRequest");
    // Content-Range missing, malformed, or not what the body carries.
    for range in [
        None,
        Some("bytes=0-10"),
        Some("bytes 5-2/10"),
        Some("items 0-1/2"),
    ] {
        let headers: Vec<(&str, &str)> = range.iter().map(|r| ("Content-Range", *r)).collect();
        let r = h.preauth(Method::PUT, &url, vec![1, 2, 3], &headers).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{range:?}: {}", r.text);
        assert_eq!(r.error_code(), "invalidRequest", "{range:?}");
    }
    let short = h
        .preauth(
            Method::PUT,
            &url,
            data[UNIT..UNIT + 10].to_vec(),
            &[(
                "Content-Range",
                &format!("bytes {UNIT}-{}/{total}", 2 * UNIT - 1),
            )],
        )
        .await;
    assert_eq!(short.status, StatusCode::BAD_REQUEST, "{}", short.text);
    // Over 60 MiB in one request: 413 before the body is read.
    let huge = h
        .preauth(
            Method::PUT,
            &url,
            vec![0; 16],
            &[(
                "Content-Range",
                &format!("bytes {UNIT}-{}/{}", UNIT + 62_914_560, 100_000_000),
            )],
        )
        .await;
    assert_eq!(huge.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", huge.text);
    // Credentials are refused.
    let with_auth = h
        .bytes_request(
            Method::PUT,
            &url,
            data[UNIT..2 * UNIT].to_vec(),
            true,
            None,
            &[(
                "Content-Range",
                &format!("bytes {UNIT}-{}/{total}", 2 * UNIT - 1),
            )],
        )
        .await;
    assert_eq!(
        with_auth.status,
        StatusCode::UNAUTHORIZED,
        "{}",
        with_auth.text
    );

    // None of that moved the session.
    let status = h.preauth(Method::GET, &url, Vec::new(), &[]).await;
    assert_eq!(ranges(&status), json!([format!("{UNIT}-")]));
    assert_eq!(
        h.put_fragment(&url, &data, UNIT, UNIT).await.status,
        StatusCode::ACCEPTED
    );
    let done = h.put_fragment(&url, &data, 2 * UNIT, 77).await;
    assert_eq!(done.status, StatusCode::CREATED, "{}", done.text);
    assert_eq!(
        done.json()["file"]["hashes"]["sha256Hash"],
        sha256_hex(&data)
    );

    // A declared fileSize fixes the total from the start.
    let url = h
        .session(
            &format!("/drives/{drive}/root:/sized.bin:"),
            json!({"item": {"fileSize": 10}}),
        )
        .await;
    let eleven = pattern(0, 11);
    let wrong = h.put_fragment(&url, &eleven, 0, 11).await;
    assert_eq!(wrong.status, StatusCode::BAD_REQUEST);
    let ten = pattern(0, 10);
    assert_eq!(
        h.put_fragment(&url, &ten, 0, 10).await.status,
        StatusCode::CREATED
    );
}

#[tokio::test]
async fn conflicts_if_match_and_quota_are_checked_at_creation_and_at_commit() {
    let h = start().await;
    let drive = h.demo_drive();
    let notes = format!("/drives/{drive}/root:/Documents/Notes.txt:");
    // The default here is fail.
    let fail = h
        .post(&format!("{notes}/createUploadSession"), &json!({}))
        .await;
    assert_eq!(fail.status, StatusCode::CONFLICT, "{}", fail.text);
    assert_eq!(fail.error_code(), "nameAlreadyExists");
    let data = pattern(5, 1234);
    let url = h.session(&notes, session_body("rename")).await;
    let renamed = h.put_fragment(&url, &data, 0, data.len()).await;
    assert_eq!(renamed.status, StatusCode::CREATED, "{}", renamed.text);
    assert_eq!(renamed.json()["name"], "Notes 1.txt");
    assert_eq!(renamed.json()["file"]["mimeType"], "text/plain");
    let url = h.session(&notes, session_body("replace")).await;
    let replaced = h.put_fragment(&url, &data, 0, data.len()).await;
    assert_eq!(replaced.status, StatusCode::OK, "{}", replaced.text);
    assert_eq!(replaced.json()["name"], "Notes.txt");
    // The query form of the behaviour works too.
    let by_query = h
        .post(
            &format!("{notes}/createUploadSession?@microsoft.graph.conflictBehavior=rename"),
            &json!({}),
        )
        .await;
    assert_eq!(by_query.status, StatusCode::OK, "{}", by_query.text);
    let url = by_query.json()["uploadUrl"]
        .as_str()
        .expect("url")
        .to_string();
    assert_eq!(
        h.put_fragment(&url, &data, 0, data.len()).await.json()["name"],
        "Notes 2.txt"
    );

    // If-Match at creation.
    let stale = h
        .call(
            Method::POST,
            &format!("{notes}/createUploadSession"),
            Some(&session_body("replace")),
            None,
            &[("If-Match", "\"{00000000-0000-0000-0000-000000000000},9\"")],
        )
        .await;
    assert_eq!(
        stale.status,
        StatusCode::PRECONDITION_FAILED,
        "{}",
        stale.text
    );
    // fileSize over the quota at creation.
    let used = h.get(&format!("/drives/{drive}")).await.json()["quota"]["used"]
        .as_u64()
        .expect("used");
    assert!(h.emu.emulator.set_drive_quota(&drive, used + 2000));
    let big = h
        .post(
            &format!("/drives/{drive}/root:/big.bin:/createUploadSession"),
            &json!({"item": {"fileSize": 2001}}),
        )
        .await;
    assert_eq!(big.status, StatusCode::INSUFFICIENT_STORAGE, "{}", big.text);
    assert_eq!(big.error_code(), "quotaLimitReached");
    // Without fileSize, the quota is checked at commit; the session stays for a DELETE.
    let url = h
        .session(&format!("/drives/{drive}/root:/big.bin:"), json!({}))
        .await;
    let too_much = pattern(0, 2001);
    let over = h.put_fragment(&url, &too_much, 0, too_much.len()).await;
    assert_eq!(
        over.status,
        StatusCode::INSUFFICIENT_STORAGE,
        "{}",
        over.text
    );
    let status = h.preauth(Method::GET, &url, Vec::new(), &[]).await;
    assert_eq!(status.status, StatusCode::OK);
    assert_eq!(ranges(&status), json!([]));
    assert_eq!(
        h.preauth(Method::DELETE, &url, Vec::new(), &[])
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    assert!(h.emu.emulator.set_drive_quota(&drive, 1 << 40));

    // A name taken while the session ran: 409 at commit.
    let url = h
        .session(&format!("/drives/{drive}/root:/race.txt:"), json!({}))
        .await;
    assert_eq!(
        h.put_content(
            &format!("/drives/{drive}/root:/race.txt:/content"),
            b"first",
            &[]
        )
        .await
        .status,
        StatusCode::CREATED
    );
    let late = h.put_fragment(&url, &data, 0, data.len()).await;
    assert_eq!(late.status, StatusCode::CONFLICT, "{}", late.text);
    assert_eq!(late.error_code(), "nameAlreadyExists");
    // Invalid names, a folder's id, the root: refused at creation.
    for (path, status) in [
        (
            format!("/drives/{drive}/root:/bad%7Cname.txt:"),
            StatusCode::BAD_REQUEST,
        ),
        (
            format!("/drives/{drive}/items/{}", h.item_id(&drive, "Documents")),
            StatusCode::BAD_REQUEST,
        ),
        (format!("/drives/{drive}/root"), StatusCode::BAD_REQUEST),
        (
            format!("/drives/{drive}/items/01NOPE"),
            StatusCode::NOT_FOUND,
        ),
    ] {
        let r = h
            .post(&format!("{path}/createUploadSession"), &json!({}))
            .await;
        assert_eq!(r.status, status, "{path}: {}", r.text);
    }
}

#[tokio::test]
async fn a_deferred_commit_waits_for_a_post_to_the_upload_url() {
    let h = start().await;
    let drive = h.demo_drive();
    let parent = h.item_id(&drive, "Documents");
    let url = h
        .session(
            &format!("/drives/{drive}/items/{parent}:/deferred.pdf:"),
            json!({"item": {"@microsoft.graph.conflictBehavior": "fail"}, "deferCommit": true}),
        )
        .await;
    let data = pattern(1, UNIT + 10);
    // Committing before the bytes are in is refused.
    let early = h.preauth(Method::POST, &url, Vec::new(), &[]).await;
    assert_eq!(early.status, StatusCode::BAD_REQUEST, "{}", early.text);
    assert_eq!(
        h.put_fragment(&url, &data, 0, UNIT).await.status,
        StatusCode::ACCEPTED
    );
    let last = h.put_fragment(&url, &data, UNIT, 10).await;
    assert_eq!(last.status, StatusCode::ACCEPTED, "{}", last.text);
    assert_eq!(ranges(&last), json!([]));
    let status = h.preauth(Method::GET, &url, Vec::new(), &[]).await;
    assert_eq!(ranges(&status), json!([]));
    assert_eq!(
        h.get(&format!("/drives/{drive}/root:/Documents/deferred.pdf"))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    let commit = h.preauth(Method::POST, &url, Vec::new(), &[]).await;
    assert_eq!(commit.status, StatusCode::CREATED, "{}", commit.text);
    assert_eq!(commit.json()["name"], "deferred.pdf");
    assert_eq!(commit.json()["file"]["mimeType"], "application/pdf");
    assert_eq!(
        h.preauth(Method::POST, &url, Vec::new(), &[]).await.status,
        StatusCode::NOT_FOUND
    );
}

fn files_in(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0)
}

#[tokio::test]
async fn sessions_end_when_cancelled_or_expired_and_take_their_partial_files() {
    let h = start().await;
    let drive = h.demo_drive();
    let dir = h.emu.emulator.files_dir();
    let before = files_in(&dir);
    let data = pattern(0, 2 * UNIT);
    let url = h
        .session(&format!("/drives/{drive}/root:/cancel.bin:"), json!({}))
        .await;
    assert_eq!(
        h.put_fragment(&url, &data, 0, UNIT).await.status,
        StatusCode::ACCEPTED
    );
    assert_eq!(files_in(&dir), before + 1);
    assert_eq!(
        h.preauth(Method::DELETE, &url, Vec::new(), &[])
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(files_in(&dir), before);
    for method in [Method::GET, Method::DELETE] {
        let r = h.preauth(method.clone(), &url, Vec::new(), &[]).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{method}");
    }
    let r = h.put_fragment(&url, &data, UNIT, UNIT).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.error_code(), "itemNotFound");

    // Expired by the admin endpoint, then by the Rust hook.
    let url = h
        .session(&format!("/drives/{drive}/root:/expire.bin:"), json!({}))
        .await;
    assert_eq!(
        h.put_fragment(&url, &data, 0, UNIT).await.status,
        StatusCode::ACCEPTED
    );
    let expired = h
        .client
        .post(format!("{}/_emulator/uploads/expire", h.emu.base_url()))
        .send()
        .await
        .expect("expire");
    assert_eq!(expired.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        h.put_fragment(&url, &data, UNIT, UNIT).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(files_in(&dir), before);
    let url = h
        .session(&format!("/drives/{drive}/root:/expire.bin:"), json!({}))
        .await;
    h.emu.emulator.expire_upload_sessions();
    assert_eq!(
        h.preauth(Method::GET, &url, Vec::new(), &[]).await.status,
        StatusCode::NOT_FOUND
    );
    let unknown = format!("{}/up/nonsense", h.emu.base_url());
    assert_eq!(
        h.preauth(Method::GET, &unknown, Vec::new(), &[])
            .await
            .status,
        StatusCode::NOT_FOUND
    );
}

/// A six-fragment upload whose fifth PUT draws `fault`; `lost` tells whether the client saw
/// the request fail at the HTTP level (a reset) or as an answer (its status).
async fn upload_through_a_fault(fault: Fault, expect: Option<StatusCode>) {
    let h = start().await;
    let drive = h.demo_drive();
    let data = pattern(11, 5 * UNIT + 12_345);
    let url = h
        .session(&format!("/drives/{drive}/root:/resume.bin:"), json!({}))
        .await;
    h.emu
        .emulator
        .add_fault(FaultRule::new(fault).route("PUT /up/{id}").nth([5]));
    for i in 0..4 {
        let r = h.put_fragment(&url, &data, i * UNIT, UNIT).await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "fragment {i}: {}", r.text);
    }
    let range = format!("bytes {}-{}/{}", 4 * UNIT, 5 * UNIT - 1, data.len());
    let fifth = h
        .client
        .put(&url)
        .header("Content-Range", &range)
        .body(data[4 * UNIT..5 * UNIT].to_vec())
        .send()
        .await;
    match expect {
        None => assert!(fifth.is_err(), "the connection should have been reset"),
        Some(status) => {
            let r = reply(fifth.expect("an answer")).await;
            assert_eq!(r.status, status, "{}", r.text);
        }
    }
    let status = h.preauth(Method::GET, &url, Vec::new(), &[]).await;
    assert_eq!(status.status, StatusCode::OK, "{}", status.text);
    assert_eq!(ranges(&status), json!([format!("{}-", 4 * UNIT)]));
    // Resent: the fifth, then the sixth.
    assert_eq!(
        h.put_fragment(&url, &data, 4 * UNIT, UNIT).await.status,
        StatusCode::ACCEPTED
    );
    let last = h.put_fragment(&url, &data, 5 * UNIT, 12_345).await;
    assert_eq!(last.status, StatusCode::CREATED, "{}", last.text);
    let id = last.json()["id"].as_str().expect("id").to_string();
    let (_, bytes) = h
        .download(&format!("/drives/{drive}/items/{id}/content"))
        .await;
    assert_eq!(bytes.len(), data.len());
    assert!(bytes == data, "the file differs from what was sent");
    let stats = h.emu.emulator.stats();
    assert_eq!(stats.routes.get("PUT /up/{id}"), Some(&7));
    assert_eq!(stats.faults_injected, 1);
}

#[tokio::test]
async fn a_fragment_reset_before_it_is_stored_is_sent_again_and_the_file_is_whole() {
    upload_through_a_fault(Fault::Reset, None).await;
}

#[tokio::test]
async fn a_fragment_refused_with_503_is_not_stored_either() {
    upload_through_a_fault(
        Fault::Unavailable {
            retry_after: Some(RetryAfter::Seconds(1)),
        },
        Some(StatusCode::SERVICE_UNAVAILABLE),
    )
    .await;
}

#[tokio::test]
async fn a_fragment_whose_client_vanishes_midway_is_not_counted() {
    let h = start().await;
    let drive = h.demo_drive();
    let data = pattern(3, 2 * UNIT);
    let url = h
        .session(&format!("/drives/{drive}/root:/vanish.bin:"), json!({}))
        .await;
    let path = url
        .strip_prefix(&h.emu.base_url())
        .expect("same host")
        .to_string();
    // Half of the first fragment, then the connection closes.
    let mut stream = tokio::net::TcpStream::connect(h.emu.addr)
        .await
        .expect("connect");
    let head = format!(
        "PUT {path} HTTP/1.1\r\nHost: {}\r\nContent-Length: {UNIT}\r\nContent-Range: bytes 0-{}/{}\r\n\r\n",
        h.emu.addr,
        UNIT - 1,
        data.len()
    );
    stream.write_all(head.as_bytes()).await.expect("head");
    stream.write_all(&data[..UNIT / 2]).await.expect("half");
    stream.flush().await.expect("flush");
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    drop(stream);

    let status = h.preauth(Method::GET, &url, Vec::new(), &[]).await;
    assert_eq!(ranges(&status), json!(["0-"]));
    // The whole fragment, again (it waits for the vanished one to be cleared).
    let first = h.put_fragment(&url, &data, 0, UNIT).await;
    assert_eq!(first.status, StatusCode::ACCEPTED, "{}", first.text);
    let last = h.put_fragment(&url, &data, UNIT, UNIT).await;
    assert_eq!(last.status, StatusCode::CREATED, "{}", last.text);
    assert_eq!(
        last.json()["file"]["hashes"]["sha256Hash"],
        sha256_hex(&data)
    );
}
