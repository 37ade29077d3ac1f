//! Downloads: `…/content` answers 302 to a pre-authenticated URL on the emulator's own host
//! that serves the bytes (ranges included) and refuses credentials.

mod common;

use common::files::*;
use common::*;
use graph_emulator::{Fault, FaultRule, RetryAfter};
use reqwest::StatusCode;

#[tokio::test]
async fn content_redirects_to_a_preauthenticated_url_that_serves_the_bytes() {
    let h = start().await;
    let drive = h.demo_drive();
    let notes = h.item_id(&drive, "Documents/Notes.txt");
    let item = h
        .get(&format!("/drives/{drive}/items/{notes}"))
        .await
        .json();
    let size = item["size"].as_u64().expect("size") as usize;

    for path in [
        format!("/drives/{drive}/items/{notes}/content"),
        format!("/drives/{drive}/root:/Documents/Notes.txt:/content"),
    ] {
        let response = no_redirect()
            .get(format!("{}{path}", h.emu.graph_url()))
            .bearer_auth(&h.token)
            .send()
            .await
            .expect("content");
        assert_eq!(response.status(), StatusCode::FOUND, "{path}");
        let location = response.headers()["location"]
            .to_str()
            .expect("ascii")
            .to_string();
        assert!(
            location.starts_with(&format!(
                "{}/_layouts/15/download.aspx?UniqueId={notes}&tempauth=",
                h.emu.base_url()
            )),
            "{location}"
        );
        assert!(response.bytes().await.expect("body").is_empty());
    }
    let advertised = item["@microsoft.graph.downloadUrl"]
        .as_str()
        .expect("downloadUrl");
    assert!(advertised.contains("/_layouts/15/download.aspx?UniqueId="));

    let (reply, bytes) = h
        .download(&format!("/drives/{drive}/items/{notes}/content"))
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(bytes.len(), size);
    assert_eq!(reply.header("content-type"), Some("text/plain"));
    assert_eq!(
        reply.header("content-length"),
        Some(size.to_string().as_str())
    );
    assert_eq!(reply.header("etag"), item["eTag"].as_str());
    assert_eq!(reply.header("accept-ranges"), Some("bytes"));
    assert_eq!(sha256_hex(&bytes), item["file"]["hashes"]["sha256Hash"]);
    assert!(
        String::from_utf8(bytes.clone())
            .expect("text")
            .starts_with("Kestrel Ridge Outfitters")
    );

    // The advertised URL works the same, twice.
    for _ in 0..2 {
        let again = h.client.get(advertised).send().await.expect("get");
        assert_eq!(again.status(), StatusCode::OK);
        assert_eq!(again.bytes().await.expect("bytes").to_vec(), bytes);
    }

    // Ranges.
    let range = |spec: &'static str| {
        let url = advertised.to_string();
        let client = h.client.clone();
        async move {
            let r = client
                .get(url)
                .header("Range", spec)
                .send()
                .await
                .expect("range");
            let status = r.status();
            let content_range = r
                .headers()
                .get("content-range")
                .map(|v| v.to_str().expect("ascii").to_string());
            (
                status,
                content_range,
                r.bytes().await.expect("bytes").to_vec(),
            )
        }
    };
    let (status, cr, body) = range("bytes=0-9").await;
    assert_eq!(status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(cr.as_deref(), Some(format!("bytes 0-9/{size}").as_str()));
    assert_eq!(body, bytes[..10]);
    let (status, cr, body) = range("bytes=5-").await;
    assert_eq!(status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(cr, Some(format!("bytes 5-{}/{size}", size - 1)));
    assert_eq!(body, bytes[5..]);
    let (status, cr, body) = range("bytes=-4").await;
    assert_eq!(status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(cr, Some(format!("bytes {}-{}/{size}", size - 4, size - 1)));
    assert_eq!(body, bytes[size - 4..]);
    let (status, _, body) = range("bytes=100-999999999").await;
    assert_eq!(status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(body, bytes[100..]);
    for unsatisfiable in ["bytes=999999-", "bytes=-0"] {
        let (status, cr, body) = range(unsatisfiable).await;
        assert_eq!(status, StatusCode::RANGE_NOT_SATISFIABLE, "{unsatisfiable}");
        assert_eq!(cr, Some(format!("bytes */{size}")));
        assert!(body.is_empty());
    }
    // An invalid range is ignored: the whole file.
    let (status, _, body) = range("bytes=9-3").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, bytes);
}

#[tokio::test]
async fn download_urls_refuse_credentials_and_bad_or_foreign_tempauth() {
    let h = start().await;
    let drive = h.demo_drive();
    let notes = h.item_id(&drive, "Documents/Notes.txt");
    let welcome = h.item_id(&drive, "Documents/Welcome.docx");
    let item = h
        .get(&format!("/drives/{drive}/items/{notes}"))
        .await
        .json();
    let url = item["@microsoft.graph.downloadUrl"]
        .as_str()
        .expect("url")
        .to_string();

    // Credentials: 401, even valid ones.
    let refused = reply(
        h.client
            .get(&url)
            .bearer_auth(&h.token)
            .send()
            .await
            .expect("get"),
    )
    .await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED, "{}", refused.text);
    assert_eq!(refused.error_code(), "unauthenticated");
    // A client that follows the 302 keeping its bearer token (same origin) hits that 401.
    let followed = h
        .client
        .get(format!(
            "{}/drives/{drive}/items/{notes}/content",
            h.emu.graph_url()
        ))
        .bearer_auth(&h.token)
        .send()
        .await
        .expect("follow");
    assert_eq!(followed.status(), StatusCode::UNAUTHORIZED);

    let token = url.split("tempauth=").nth(1).expect("tempauth");
    let base = h.emu.base_url();
    for bad in [
        format!("{base}/_layouts/15/download.aspx?UniqueId={notes}&tempauth=AAAA{token}"),
        format!("{base}/_layouts/15/download.aspx?UniqueId={welcome}&tempauth={token}"),
        format!("{base}/_layouts/15/download.aspx?UniqueId={notes}"),
        format!("{base}/_layouts/15/download.aspx"),
    ] {
        let r = reply(h.client.get(&bad).send().await.expect("get")).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{bad}");
    }

    // Folders have no content.
    let folder = h.item_id(&drive, "Documents");
    let r = no_redirect()
        .get(format!(
            "{}/drives/{drive}/items/{folder}/content",
            h.emu.graph_url()
        ))
        .bearer_auth(&h.token)
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);

    // A deleted item's URL is 404.
    assert_eq!(
        h.delete(&format!("/drives/{drive}/items/{notes}"))
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    let r = reply(h.client.get(&url).send().await.expect("get")).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.error_code(), "itemNotFound");
}

#[tokio::test]
async fn downloads_count_outside_graph_requests_and_take_fault_rules() {
    let h = start().await;
    let drive = h.demo_drive();
    let item = h
        .get(&format!("/drives/{drive}/root:/Documents/Welcome.docx"))
        .await
        .json();
    let url = item["@microsoft.graph.downloadUrl"]
        .as_str()
        .expect("url")
        .to_string();
    h.emu.emulator.reset_stats();
    h.emu.emulator.add_fault(
        FaultRule::new(Fault::Throttle {
            retry_after: Some(RetryAfter::Seconds(2)),
        })
        .route("GET /_layouts/15/download.aspx")
        .nth([1]),
    );
    let first = reply(h.client.get(&url).send().await.expect("get")).await;
    assert_eq!(first.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(first.header("retry-after"), Some("2"));
    assert_eq!(first.error_code(), "TooManyRequests");
    let second = h.client.get(&url).send().await.expect("get");
    assert_eq!(second.status(), StatusCode::OK);
    assert_eq!(
        second.headers()["content-type"],
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
    );
    let stats = h.emu.emulator.stats();
    assert_eq!(stats.routes.get("GET /_layouts/15/download.aspx"), Some(&2));
    assert_eq!(stats.graph_requests, 0);
    assert_eq!(stats.throttled, 1);
    assert_eq!(stats.faults_injected, 1);
    let log = h.emu.emulator.requests();
    assert!(
        log.iter()
            .any(|r| r.url.starts_with("/_layouts/15/download.aspx") && r.status == 429)
    );

    // A reset drops the connection.
    h.emu
        .emulator
        .add_fault(FaultRule::new(Fault::Reset).route("/_layouts/*").nth([1]));
    assert!(h.client.get(&url).send().await.is_err());
    assert_eq!(
        h.client.get(&url).send().await.expect("get").status(),
        StatusCode::OK
    );
}
