//! Files through the gateway: OneDrive and SharePoint libraries in GraphQL and REST,
//! content streamed both ways, uploads resumed after faults, policy before Graph.

use m365_gateway::graph::models::{Collection, DeltaPage, DriveItem, Site, UploadSession};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::helpers::{TestApp, spawn_app, spawn_app_with, test_config};

const FINANCE: &str = "kestrelridge.sharepoint.com:/sites/finance";

fn enc(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Deterministic, incompressible-looking bytes.
fn content(size: usize, seed: u32) -> Vec<u8> {
    (0..size as u32)
        .map(|i| (i.wrapping_add(seed).wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect()
}

async fn route(app: &TestApp, key: &str) -> u64 {
    app.stats().await["routes"][key].as_u64().unwrap_or(0)
}

/// Uploads through REST as the demo caller.
async fn put(
    app: &TestApp,
    drive: &str,
    path: &str,
    bytes: Vec<u8>,
    query: &str,
) -> (StatusCode, Value) {
    let response = app
        .http
        .put(format!(
            "{}/api/v1/drives/{}/root:/{path}:/content{query}",
            app.base,
            enc(drive)
        ))
        .bearer_auth(&app.token)
        .header("Content-Type", "application/octet-stream")
        .body(bytes)
        .send()
        .await
        .unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn download(
    app: &TestApp,
    drive: &str,
    item: &str,
    range: Option<&str>,
) -> reqwest::Response {
    let mut request = app
        .http
        .get(format!(
            "{}/api/v1/drives/{}/items/{}/content",
            app.base,
            enc(drive),
            enc(item)
        ))
        .bearer_auth(&app.token);
    if let Some(range) = range {
        request = request.header("Range", range);
    }
    request.send().await.unwrap()
}

/// One request written byte for byte (no client-side path normalisation); the answer's
/// head and body as text.
async fn raw_request(app: &TestApp, request: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let address = app.base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.unwrap();
    String::from_utf8_lossy(&answer).into_owned()
}

/// A gateway on the embedded default with one more app caller of the dev issuer (acting
/// for the demo user), and that caller's token.
async fn app_with_caller(
    name: &str,
    operations: &[&str],
    resources: &[&str],
    sites: &[&str],
) -> (TestApp, String) {
    use m365_gateway::config::{CallerConfig, CallerMode};
    let strings = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let mut config = test_config().with_embedded_defaults();
    config.callers.insert(
        name.into(),
        CallerConfig {
            issuer: m365_gateway::config::DEV_ISSUER_NAME.to_owned(),
            client_id: name.to_owned(),
            mode: CallerMode::App,
            user_claim: Some("upn".to_owned()),
            operations: strings(operations),
            resources: strings(resources),
            send_as: vec![],
            sites: strings(sites),
            scopes: None,
        },
    );
    let token = m365_gateway::auth::mint_dev_token(
        &config,
        name,
        Some(graph_emulator::DEMO_USER_UPN),
        std::time::Duration::from_secs(600),
    )
    .unwrap();
    (spawn_app_with(config).await, token)
}

async fn add_fault(app: &TestApp, rule: Value) {
    let answer: Value = app
        .http
        .post(format!("{}/_emulator/faults", app.emulator))
        .json(&rule)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(answer.get("ids").is_some(), "{answer}");
}

#[test]
fn every_documented_drive_and_site_response_parses_into_the_models() {
    let fixtures = include_str!("../fixtures/graph-examples/files.jsonl");
    let mut parsed = 0;
    for line in fixtures.lines().filter(|l| !l.trim().is_empty()) {
        let record: Value = serde_json::from_str(line).unwrap();
        let page = record["page"].as_str().unwrap();
        let body = &record["response"]["body"];
        if !body.is_object() || body.get("error").is_some() {
            continue;
        }
        let ok = match page {
            "driveitem-list-children" => {
                serde_json::from_value::<Collection<DriveItem>>(body.clone())
                    .is_ok_and(|c| !c.value.is_empty())
            }
            "driveitem-delta" => serde_json::from_value::<DeltaPage<DriveItem>>(body.clone())
                .is_ok_and(|p| p.next_link.is_some() || p.delta_link.is_some()),
            "site-search" => serde_json::from_value::<Collection<Site>>(body.clone())
                .is_ok_and(|c| !c.value.is_empty()),
            "site-get" => {
                serde_json::from_value::<Site>(body.clone()).is_ok_and(|s| s.id.is_some())
            }
            _ if body.get("uploadUrl").is_some() || body.get("nextExpectedRanges").is_some() => {
                serde_json::from_value::<UploadSession>(body.clone()).is_ok()
            }
            _ => serde_json::from_value::<DriveItem>(body.clone()).is_ok_and(|i| i.id.is_some()),
        };
        assert!(ok, "{page}: {body}");
        parsed += 1;
    }
    assert!(parsed >= 18, "parsed only {parsed} bodies");
}

#[tokio::test]
async fn the_demo_users_onedrive_is_browsable_by_path_and_by_id() {
    let app = spawn_app().await;
    let data = app
        .graphql_data(
            "{ me { drive { id driveType owner { kind displayName } quota { total used }
                root { isRoot path folder { childCount } children(first: 10) { nodes { id name path folder { childCount } } } } } } }",
        )
        .await;
    let drive = &data["me"]["drive"];
    assert_eq!(drive["driveType"], "business", "{data}");
    assert_eq!(drive["owner"]["kind"], "user");
    assert!(drive["quota"]["total"].as_i64().unwrap() > 0);
    assert_eq!(drive["root"]["isRoot"], true);
    assert_eq!(drive["root"]["path"], "/");
    let names: Vec<&str> = drive["root"]["children"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"Reports") && names.contains(&"Documents"),
        "{names:?}"
    );

    let drive_id = drive["id"].as_str().unwrap();
    let (status, item) = app
        .get("/api/v1/drives/me/root:/Reports/report-007.pdf")
        .await;
    assert_eq!(status, StatusCode::OK, "{item}");
    assert_eq!(item["path"], "/Reports/report-007.pdf");
    assert_eq!(item["file"]["mime_type"], "application/pdf");
    assert!(item["e_tag"].is_string() && item["c_tag"].is_string());
    assert_eq!(item["parent_reference"]["drive_id"], drive_id);
    let (status, same) = app
        .get(&format!(
            "/api/v1/drives/{}/items/{}",
            enc(drive_id),
            enc(item["id"].as_str().unwrap())
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{same}");
    assert_eq!(same["name"], "report-007.pdf");
    let (status, missing) = app.get("/api/v1/drives/me/root:/Reports/nope.pdf").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{missing}");
    assert_eq!(missing["error"]["code"], "NOT_FOUND");
}

#[tokio::test]
async fn a_folder_of_100_files_with_each_modifier_costs_one_list_and_batched_user_lookups() {
    let app = spawn_app().await;
    // The drive's own lookup and the folder's are not part of the measure.
    app.graphql_data("{ drive(drive: \"me\") { itemByPath(path: \"Reports\") { id } } }")
        .await;
    app.reset_stats().await;
    let data = app
        .graphql_data(
            "{ drive(drive: \"me\") { itemByPath(path: \"Reports\") { children(first: 100, orderBy: NAME_DESC) {
                nodes { name lastModifiedBy { kind user { id displayName jobTitle } } }
                pageInfo { hasNextPage } } } } }",
        )
        .await;
    let children = &data["drive"]["itemByPath"]["children"];
    let nodes = children["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 100, "{data}");
    assert_eq!(nodes[0]["name"], "report-100.pdf");
    assert_eq!(
        children["pageInfo"]["hasNextPage"], true,
        "Archive is the 101st"
    );
    let mut users = std::collections::BTreeSet::new();
    for n in nodes {
        assert_eq!(n["lastModifiedBy"]["kind"], "user", "{n}");
        let user = &n["lastModifiedBy"]["user"];
        assert!(
            user["displayName"].is_string(),
            "every modifier resolves: {n}"
        );
        users.insert(user["id"].as_str().unwrap().to_owned());
    }
    assert!(
        users.len() > 20,
        "the seed has 25 modifiers: {}",
        users.len()
    );
    let stats = app.stats().await;
    assert_eq!(
        route(&app, "GET /users/{id}/drive/root:/{path}:/children").await,
        1,
        "one list, by path, with no lookup of the drive or the folder first: {stats}"
    );
    assert_eq!(
        stats["graph_requests"].as_u64().unwrap(),
        1 + users.len().div_ceil(20) as u64,
        "{stats}"
    );
    let lookups = route(&app, "POST /$batch").await + route(&app, "GET /users/{id}").await;
    assert_eq!(
        lookups,
        users.len().div_ceil(20) as u64,
        "{} distinct users in batches of 20: {stats}",
        users.len()
    );
    // Warm: the same query costs nothing.
    app.reset_stats().await;
    app.graphql_data(
        "{ drive(drive: \"me\") { itemByPath(path: \"Reports\") { children(first: 100, orderBy: NAME_DESC) {
            nodes { name lastModifiedBy { kind user { id displayName jobTitle } } } pageInfo { hasNextPage } } } } }",
    )
    .await;
    assert_eq!(app.graph_requests().await, 0);
}

#[tokio::test]
async fn children_page_with_cursors_in_the_order_asked() {
    let app = spawn_app().await;
    let mut names = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let (status, page) = app
            .get(&format!(
                "/api/v1/drives/me/root:/Reports:/children?limit=40&order_by=name_asc{}",
                cursor
                    .as_deref()
                    .map(|c| format!("&cursor={}", enc(c)))
                    .unwrap_or_default()
            ))
            .await;
        assert_eq!(status, StatusCode::OK, "{page}");
        names.extend(
            page["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i["name"].as_str().unwrap().to_owned()),
        );
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(names.len(), 101);
    assert_eq!(names[0], "Archive");
    assert_eq!(names[1], "report-001.pdf");
    assert_eq!(names[100], "report-100.pdf");
    let (status, body) = app.get("/api/v1/drives/me/root/children?limit=101").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
}

#[tokio::test]
async fn downloads_stream_the_bytes_with_ranges_and_never_show_graphs_url() {
    let app = spawn_app().await;
    let bytes = content(300_000, 1);
    let (status, item) = put(&app, "me", "Downloads/data.bin", bytes.clone(), "").await;
    assert!(status.is_success(), "{item}");
    let id = item["id"].as_str().unwrap().to_owned();

    let full = download(&app, "me", &id, None).await;
    assert_eq!(full.status(), StatusCode::OK);
    assert_eq!(full.headers()["content-length"], "300000");
    assert_eq!(full.headers()["accept-ranges"], "bytes");
    assert!(full.headers().get("etag").is_some());
    assert_eq!(full.bytes().await.unwrap().as_ref(), bytes.as_slice());

    let part = download(&app, "me", &id, Some("bytes=100-199")).await;
    assert_eq!(part.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(part.headers()["content-range"], "bytes 100-199/300000");
    assert_eq!(part.bytes().await.unwrap().as_ref(), &bytes[100..200]);

    let outside = download(&app, "me", &id, Some("bytes=400000-")).await;
    assert_eq!(outside.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(outside.headers()["content-range"], "bytes */300000");
    let body: Value = outside.json().await.unwrap();
    assert_eq!(body["error"]["code"], "RANGE_NOT_SATISFIABLE");

    // A folder has no content.
    let (_, folder) = app.get("/api/v1/drives/me/root:/Downloads").await;
    let response = download(&app, "me", folder["id"].as_str().unwrap(), None).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);

    // GraphQL hands out a signed gateway link, not Graph's pre-authenticated URL.
    let data = app
        .graphql_data(&format!(
            "{{ drive(drive: \"me\") {{ item(id: \"{id}\") {{ name downloadUrl }} }} }}"
        ))
        .await;
    let link = data["drive"]["item"]["downloadUrl"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        link.starts_with(&format!("{}/api/v1/downloads/", app.base)),
        "{link}"
    );
    assert!(
        !link.contains("tempauth") && !link.contains(&app.emulator),
        "{link}"
    );
    let fetched = app.http.get(&link).send().await.unwrap();
    assert_eq!(fetched.status(), StatusCode::OK);
    assert!(
        fetched.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .contains("data.bin")
    );
    assert_eq!(fetched.bytes().await.unwrap().as_ref(), bytes.as_slice());
    let ranged = app
        .http
        .get(&link)
        .header("Range", "bytes=-10")
        .send()
        .await
        .unwrap();
    assert_eq!(ranged.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(
        ranged.bytes().await.unwrap().as_ref(),
        &bytes[bytes.len() - 10..]
    );
    let mut tampered = link.clone();
    let last = tampered.pop().unwrap();
    tampered.push(if last == 'A' { 'B' } else { 'A' });
    let refused = app.http.get(&tampered).send().await.unwrap();
    assert_eq!(refused.status(), StatusCode::NOT_FOUND);
    // The link was never cached with Graph's URL inside: listing children with links
    // asks Graph again.
    app.reset_stats().await;
    let data = app
        .graphql_data(
            "{ drive(drive: \"me\") { itemByPath(path: \"Downloads\") { children(first: 5) { nodes { name downloadUrl } } } } }",
        )
        .await;
    let nodes = data["drive"]["itemByPath"]["children"]["nodes"]
        .as_array()
        .unwrap();
    assert!(nodes.iter().all(|n| n["downloadUrl"].is_string()), "{data}");
    assert_eq!(
        route(&app, "GET /users/{id}/drive/root:/{path}:/children").await,
        1,
        "{}",
        app.stats().await
    );
}

#[tokio::test]
async fn small_files_go_in_one_put_and_large_ones_in_chunks_byte_identical() {
    let app = spawn_app().await;
    app.reset_stats().await;
    let small = content(1024 * 1024, 2);
    let (status, item) = put(&app, "me", "Uploads/small.bin", small.clone(), "").await;
    assert!(status.is_success(), "{item}");
    assert_eq!(item["size"], 1024 * 1024);
    assert_eq!(route(&app, "PUT /up/{id}").await, 0);

    let large = content(25 * 1024 * 1024 + 123, 3);
    let (status, item) = put(&app, "me", "Uploads/large.bin", large.clone(), "").await;
    assert!(status.is_success(), "{item}");
    assert_eq!(item["size"], large.len());
    assert_eq!(
        item["file"]["hashes"]["sha256_hash"]
            .as_str()
            .unwrap()
            .to_ascii_lowercase(),
        hex(&Sha256::digest(&large))
    );
    // 10 MiB chunks: 3 PUTs to the session, none with the Graph token (the emulator
    // refuses those with 401).
    assert_eq!(route(&app, "PUT /up/{id}").await, 3);
    let got = download(&app, "me", item["id"].as_str().unwrap(), None)
        .await
        .bytes()
        .await
        .unwrap();
    assert_eq!(hex(&Sha256::digest(&got)), hex(&Sha256::digest(&large)));

    // A chunked body without Content-Length is spooled first, then uploaded the same way.
    let stream_bytes = content(5 * 1024 * 1024, 4);
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = stream_bytes
        .chunks(64 * 1024)
        .map(|c| Ok(c.to_vec()))
        .collect();
    let response = app
        .http
        .put(format!(
            "{}/api/v1/drives/me/root:/Uploads/streamed.bin:/content",
            app.base
        ))
        .bearer_auth(&app.token)
        .body(reqwest::Body::wrap_stream(futures::stream::iter(chunks)))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let item: Value = response.json().await.unwrap();
    assert_eq!(item["size"], stream_bytes.len());
}

#[tokio::test]
async fn graphql_uploads_a_multipart_file_into_a_folder() {
    let app = spawn_app().await;
    let bytes = content(4 * 1024 * 1024 + 1, 5);
    let operations = json!({
        "query": "mutation($f: Upload!) { uploadFile(drive: \"me\", parentPath: \"/Scans/2026\", file: $f) { name size path file { mimeType } } }",
        "variables": { "f": null }
    });
    let form = reqwest::multipart::Form::new()
        .text("operations", operations.to_string())
        .text("map", json!({ "0": ["variables.f"] }).to_string())
        .part(
            "0",
            reqwest::multipart::Part::bytes(bytes.clone())
                .file_name("scan.pdf")
                .mime_str("application/pdf")
                .unwrap(),
        );
    let body: Value = app
        .http
        .post(format!("{}/graphql", app.base))
        .bearer_auth(&app.token)
        .header("GraphQL-Require-Preflight", "1")
        .multipart(form)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let item = &body["data"]["uploadFile"];
    assert_eq!(item["name"], "scan.pdf", "{body}");
    assert_eq!(item["size"], bytes.len());
    assert_eq!(item["path"], "/Scans/2026/scan.pdf");
}

#[tokio::test]
async fn uploads_may_take_the_transfer_timeout_not_the_request_timeout() {
    let mut config = test_config();
    config.http.request_timeout = std::time::Duration::from_secs(1);
    config.files.chunk_bytes = 327_680;
    let app = spawn_app_with(config).await;
    add_fault(
        &app,
        json!({ "route": "PUT /up/{id}", "fault": { "kind": "latency", "ms": 150 } }),
    )
    .await;
    // 14 chunks at 150 ms each: well over the 1 s request timeout.
    let bytes = content(4 * 1024 * 1024 + 1, 9);
    let (status, item) = put(&app, "me", "Slow/rest.bin", bytes.clone(), "").await;
    assert_eq!(status, StatusCode::OK, "{item}");
    let operations = json!({
        "query": "mutation($f: Upload!) { uploadFile(drive: \"me\", parentPath: \"Slow\", file: $f) { size } }",
        "variables": { "f": null }
    });
    let form = reqwest::multipart::Form::new()
        .text("operations", operations.to_string())
        .text("map", json!({ "0": ["variables.f"] }).to_string())
        .part(
            "0",
            reqwest::multipart::Part::bytes(bytes.clone()).file_name("graphql.bin"),
        );
    let response = app
        .http
        .post(format!("{}/graphql", app.base))
        .bearer_auth(&app.token)
        .header("GraphQL-Require-Preflight", "1")
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["data"]["uploadFile"]["size"], bytes.len(), "{body}");
    // Everything else keeps the request timeout.
    add_fault(
        &app,
        json!({ "route": "GET /users/{id}/drive", "fault": { "kind": "latency", "ms": 1500 } }),
    )
    .await;
    let (status, body) = app
        .get("/api/v1/drives/user:orders@kestrelridge.example")
        .await;
    assert!(
        status == StatusCode::REQUEST_TIMEOUT || status == StatusCode::GATEWAY_TIMEOUT,
        "{status} {body}"
    );
    assert!(
        matches!(
            body["error"]["code"].as_str(),
            Some("TIMEOUT" | "UPSTREAM_TIMEOUT")
        ),
        "{body}"
    );
}

#[tokio::test]
async fn name_conflicts_etags_and_quota_get_their_own_codes() {
    let app = spawn_app().await;
    let (status, first) = put(&app, "me", "Clash/dup.txt", b"one".to_vec(), "").await;
    assert!(status.is_success(), "{first}");
    let (status, body) = put(
        &app,
        "me",
        "Clash/dup.txt",
        b"two".to_vec(),
        "?conflict_behavior=fail",
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"]["code"], "CONFLICT");
    let (status, renamed) = put(
        &app,
        "me",
        "Clash/dup.txt",
        b"three".to_vec(),
        "?conflict_behavior=rename",
    )
    .await;
    assert!(status.is_success(), "{renamed}");
    assert_eq!(renamed["name"], "dup 1.txt");

    // If-Match: a stale eTag is refused, the current one replaces.
    let etag = first["e_tag"].as_str().unwrap().to_owned();
    let (_, current) = put(&app, "me", "Clash/dup.txt", b"four".to_vec(), "").await;
    let response = app
        .http
        .put(format!(
            "{}/api/v1/drives/me/root:/Clash/dup.txt:/content",
            app.base
        ))
        .bearer_auth(&app.token)
        .header("If-Match", &etag)
        .body("five")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::PRECONDITION_FAILED);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "PRECONDITION_FAILED");
    let response = app
        .http
        .put(format!(
            "{}/api/v1/drives/me/root:/Clash/dup.txt:/content",
            app.base
        ))
        .bearer_auth(&app.token)
        .header("If-Match", current["e_tag"].as_str().unwrap())
        .body("six")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);

    // GraphQL: the same codes in extensions.
    let (_, body) = app
        .graphql_as(
            Some(&app.token),
            "mutation { createFolder(drive: \"me\", parentPath: \"/\", name: \"Clash\") { id } }",
            json!({}),
        )
        .await;
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "CONFLICT",
        "{body}"
    );

    // A full drive: 507 INSUFFICIENT_STORAGE, for small and chunked uploads alike.
    let (_, drive) = app.get("/api/v1/drives/me").await;
    let status = app
        .http
        .post(format!(
            "{}/_emulator/drives/{}/quota",
            app.emulator,
            drive["id"].as_str().unwrap()
        ))
        .json(&json!({ "total": drive["quota"]["used"].as_i64().unwrap() + 1000 }))
        .send()
        .await
        .unwrap()
        .status();
    assert!(status.is_success());
    for size in [5000, 6 * 1024 * 1024] {
        let (status, body) = put(&app, "me", "Full/too-big.bin", content(size, 6), "").await;
        assert_eq!(status, StatusCode::INSUFFICIENT_STORAGE, "{body}");
        assert_eq!(body["error"]["code"], "INSUFFICIENT_STORAGE");
    }
}

#[tokio::test]
async fn bad_names_and_paths_are_refused_before_any_graph_call() {
    let app = spawn_app().await;
    app.graphql_data("{ me { drive { id } } }").await;
    app.reset_stats().await;
    // (`..` as its own segment is normalised away by HTTP clients, so it is sent encoded
    // inside a segment here, and raw below.)
    for path in [
        "a/..%2Fb.txt",
        "Reports/..%2F..%2Fx.txt",
        "x/CON.txt",
        "what%3F.txt",
        "a%22b.txt",
        "trailing.%20",
        "dot.",
        "~%24lock.docx",
        "my_vti_.txt",
        "a%7Cb.txt",
        "a%2Ab.txt",
        "a%3Cb%3E.txt",
        "a%5Cb.txt",
    ] {
        let response = app
            .http
            .put(format!(
                "{}/api/v1/drives/me/root:/{path}:/content",
                app.base
            ))
            .bearer_auth(&app.token)
            .body("x")
            .send()
            .await
            .unwrap();
        let status = response.status();
        let body: Value = response.json().await.unwrap();
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {body}");
        assert_eq!(body["error"]["code"], "BAD_USER_INPUT", "{path}");
    }
    for name in ["..", "a:b", "nul", "desktop.ini", ".lock", " x"] {
        let (_, body) = app
            .graphql_as(
                Some(&app.token),
                "mutation($n: String!) { createFolder(drive: \"me\", name: $n) { id } }",
                json!({ "n": name }),
            )
            .await;
        assert_eq!(
            body["errors"][0]["extensions"]["code"], "BAD_USER_INPUT",
            "{name}: {body}"
        );
    }
    let (status, _) = app
        .get("/api/v1/drives/me/root:/a%2F..%2F..%2Fetc%2Fpasswd")
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // A client that sends `..` unnormalised gets the same answer.
    let raw = raw_request(
        &app,
        &format!(
            "PUT /api/v1/drives/me/root:/a/../../b.txt:/content HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer {}\r\nContent-Length: 1\r\nConnection: close\r\n\r\nx",
            app.token
        ),
    )
    .await;
    assert!(raw.starts_with("HTTP/1.1 400"), "{raw}");
    // Item ids cannot leave their segment either.
    for id in ["..%2F..%2Fusers%2Fceo", "a%2Fb", "x%3Ay", "a%5Cb"] {
        let (status, body) = app.get(&format!("/api/v1/drives/me/items/{id}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{id}: {body}");
    }
    assert_eq!(app.graph_requests().await, 0, "{}", app.stats().await);
    // An id with query or fragment characters stays one encoded segment: Graph finds no
    // such item.
    let (status, body) = app
        .get(&format!(
            "/api/v1/drives/me/items/{}",
            enc("x?$expand=children#")
        ))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
}

#[tokio::test]
async fn an_upload_interrupted_on_chunk_5_resumes_and_completes() {
    let mut config = test_config();
    config.files.chunk_bytes = 327_680; // 320 KiB: many chunks for a small file
    let app = spawn_app_with(config).await;
    let bytes = content(5 * 1024 * 1024 + 7, 7); // 17 chunks
    add_fault(
        &app,
        json!({ "route": "PUT /up/{id}", "nth": [5], "fault": { "kind": "reset" } }),
    )
    .await;
    app.reset_stats().await;
    let (status, item) = put(&app, "me", "Resumed/big.bin", bytes.clone(), "").await;
    assert_eq!(status, StatusCode::OK, "{item}");
    assert_eq!(item["size"], bytes.len());
    assert_eq!(
        route(&app, "PUT /up/{id}").await,
        17 + 1,
        "chunk 5 sent twice"
    );
    assert_eq!(route(&app, "GET /up/{id}").await, 1, "one status query");
    let got = download(&app, "me", item["id"].as_str().unwrap(), None)
        .await
        .bytes()
        .await
        .unwrap();
    assert_eq!(hex(&Sha256::digest(&got)), hex(&Sha256::digest(&bytes)));
}

#[tokio::test]
async fn an_upload_that_cannot_resume_is_reported_and_leaves_no_file() {
    let mut config = test_config();
    config.files.chunk_bytes = 327_680;
    let app = spawn_app_with(config).await;
    add_fault(
        &app,
        json!({ "route": "PUT /up/{id}", "nth": (3..40).collect::<Vec<u32>>(), "fault": { "kind": "html_error" } }),
    )
    .await;
    app.reset_stats().await;
    let (status, body) = put(
        &app,
        "me",
        "Broken/half.bin",
        content(5 * 1024 * 1024, 8),
        "",
    )
    .await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{body}");
    assert_eq!(body["error"]["code"], "UPSTREAM_ERROR");
    assert_eq!(
        route(&app, "DELETE /up/{id}").await,
        1,
        "the session is cancelled"
    );
    let (status, _) = app.get("/api/v1/drives/me/root:/Broken/half.bin").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "no partial file");
}

#[tokio::test]
async fn folders_are_created_renamed_moved_copied_and_deleted() {
    let app = spawn_app().await;
    let mutate = |query: &'static str, variables: Value| {
        let app = &app;
        async move {
            let (_, body) = app.graphql_as(Some(&app.token), query, variables).await;
            assert!(body.get("errors").is_none(), "{body}");
            body["data"].clone()
        }
    };
    let projects = mutate(
        "mutation { createFolder(drive: \"me\", name: \"Projects\") { id name path folder { childCount } } }",
        json!({}),
    )
    .await;
    let projects_id = projects["createFolder"]["id"].as_str().unwrap().to_owned();
    assert_eq!(projects["createFolder"]["path"], "/Projects");
    let inner = mutate(
        "mutation { createFolder(drive: \"me\", parentPath: \"Projects\", name: \"Alpha\") { id path } }",
        json!({}),
    )
    .await;
    assert_eq!(inner["createFolder"]["path"], "/Projects/Alpha");
    let (_, file) = put(
        &app,
        "me",
        "Projects/Alpha/plan.txt",
        b"the plan".to_vec(),
        "",
    )
    .await;
    let file_id = file["id"].as_str().unwrap().to_owned();

    let renamed = mutate(
        "mutation($i: ID!, $e: String) { renameItem(drive: \"me\", item: $i, name: \"plan-v2.txt\", ifMatch: $e) { name path eTag } }",
        json!({ "i": file_id, "e": file["e_tag"] }),
    )
    .await;
    assert_eq!(renamed["renameItem"]["path"], "/Projects/Alpha/plan-v2.txt");
    assert_ne!(renamed["renameItem"]["eTag"], file["e_tag"]);
    let moved = mutate(
        "mutation($i: ID!, $p: ID!) { moveItem(drive: \"me\", item: $i, parentId: $p) { path } }",
        json!({ "i": file_id, "p": projects_id }),
    )
    .await;
    assert_eq!(moved["moveItem"]["path"], "/Projects/plan-v2.txt");

    let copied = mutate(
        "mutation($i: ID!, $p: ID!) { copyItem(drive: \"me\", item: $i, parentId: $p, name: \"copy.txt\") { id path size } }",
        json!({ "i": file_id, "p": projects_id }),
    )
    .await;
    assert_eq!(copied["copyItem"]["path"], "/Projects/copy.txt");
    assert!(route(&app, "GET /_api/v2.0/monitor/{id}").await >= 1);
    // Copying onto the same name with the default FAIL behaviour is a conflict.
    let (_, body) = app
        .graphql_as(
            Some(&app.token),
            "mutation($i: ID!, $p: ID!) { copyItem(drive: \"me\", item: $i, parentId: $p, name: \"copy.txt\") { id } }",
            json!({ "i": file_id, "p": projects_id }),
        )
        .await;
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "CONFLICT",
        "{body}"
    );

    // REST: PATCH and DELETE with If-Match.
    let (_, current) = app
        .get(&format!("/api/v1/drives/me/items/{}", enc(&file_id)))
        .await;
    let stale = app
        .http
        .delete(format!(
            "{}/api/v1/drives/me/items/{}",
            app.base,
            enc(&file_id)
        ))
        .bearer_auth(&app.token)
        .header("If-Match", file["e_tag"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(stale.status(), StatusCode::PRECONDITION_FAILED);
    let deleted = app
        .http
        .delete(format!(
            "{}/api/v1/drives/me/items/{}",
            app.base,
            enc(&file_id)
        ))
        .bearer_auth(&app.token)
        .header("If-Match", current["e_tag"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    let (status, _) = app
        .get(&format!("/api/v1/drives/me/items/{}", enc(&file_id)))
        .await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "a write evicts the cached item"
    );
    let gone = mutate(
        "mutation($i: ID!) { deleteItem(drive: \"me\", item: $i) }",
        json!({ "i": projects_id }),
    )
    .await;
    assert_eq!(gone["deleteItem"], true);
}

#[tokio::test]
async fn drive_delta_reports_changes_and_deletions_and_asks_for_a_resync_when_stale() {
    let app = spawn_app().await;
    let mut token: Option<String> = None;
    let mut seen = 0;
    loop {
        let (status, page) = app
            .get(&format!(
                "/api/v1/drives/me/delta?limit=50{}",
                token
                    .as_deref()
                    .map(|t| format!("&delta_token={}", enc(t)))
                    .unwrap_or_default()
            ))
            .await;
        assert_eq!(status, StatusCode::OK, "{page}");
        seen += page["changed"].as_array().unwrap().len();
        token = page["delta_token"].as_str().map(str::to_owned);
        if page["has_more"] == false {
            break;
        }
    }
    assert!(seen > 100, "the full sync lists everything: {seen}");
    let (_, added) = put(&app, "me", "Sync/new.txt", b"new".to_vec(), "").await;
    let (_, doomed) = app
        .get("/api/v1/drives/me/root:/Reports/report-001.pdf")
        .await;
    let doomed_id = doomed["id"].as_str().unwrap().to_owned();
    let response = app
        .http
        .delete(format!(
            "{}/api/v1/drives/me/items/{}",
            app.base,
            enc(&doomed_id)
        ))
        .bearer_auth(&app.token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);

    let data = app
        .graphql_data(&format!(
            "{{ driveDelta(drive: \"me\", token: \"{}\") {{ changed {{ id name }} deleted deltaToken hasMore }} }}",
            token.unwrap()
        ))
        .await;
    let delta = &data["driveDelta"];
    assert!(
        delta["changed"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["id"] == added["id"]),
        "{data}"
    );
    assert!(
        delta["deleted"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d == doomed_id.as_str()),
        "{data}"
    );
    let next = delta["deltaToken"].as_str().unwrap().to_owned();

    // A token of another drive is refused before any Graph call.
    let (_, finance) = app
        .get(&format!("/api/v1/drives/site:{}", enc(FINANCE)))
        .await;
    let (status, body) = app
        .get(&format!(
            "/api/v1/drives/{}/delta?delta_token={}",
            enc(finance["id"].as_str().unwrap()),
            enc(&next)
        ))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");

    let expired = app
        .http
        .post(format!(
            "{}/_emulator/drives/expire-delta-tokens",
            app.emulator
        ))
        .send()
        .await
        .unwrap();
    assert!(expired.status().is_success());
    let (status, body) = app
        .get(&format!(
            "/api/v1/drives/me/delta?delta_token={}",
            enc(&next)
        ))
        .await;
    assert_eq!(status, StatusCode::GONE, "{body}");
    assert_eq!(body["error"]["code"], "SYNC_RESET");
}

#[tokio::test]
async fn sites_are_found_by_search_path_and_id_with_their_libraries() {
    let app = spawn_app().await;
    let data = app
        .graphql_data(
            "{ sites(search: \"finance\", first: 10) { nodes { id displayName webUrl } }
               site(site: \"kestrelridge.sharepoint.com:/sites/finance\") { id displayName
                 drives { id name driveType } drive { name root { children(first: 20) { nodes { name } } } } } }",
        )
        .await;
    let found = data["sites"]["nodes"].as_array().unwrap();
    assert_eq!(found.len(), 1, "{data}");
    assert_eq!(found[0]["displayName"], "Finance");
    let site = &data["site"];
    assert_eq!(site["id"], found[0]["id"]);
    let libraries: Vec<&str> = site["drives"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["name"].as_str().unwrap())
        .collect();
    assert!(
        libraries.contains(&"Documents") && libraries.contains(&"Invoices"),
        "{libraries:?}"
    );
    assert_eq!(site["drive"]["name"], "Documents");

    let id = site["id"].as_str().unwrap();
    let (status, by_id) = app.get(&format!("/api/v1/sites/{}", enc(id))).await;
    assert_eq!(status, StatusCode::OK, "{by_id}");
    assert_eq!(by_id["display_name"], "Finance");
    let (status, drives) = app.get(&format!("/api/v1/sites/{}/drives", enc(id))).await;
    assert_eq!(status, StatusCode::OK, "{drives}");
    assert_eq!(drives["data"].as_array().unwrap().len(), 2);
    let (status, all) = app.get("/api/v1/sites?search=*&limit=10").await;
    assert_eq!(status, StatusCode::OK, "{all}");
    assert!(all["data"].as_array().unwrap().len() >= 5);
    let (status, _) = app
        .get("/api/v1/sites/kestrelridge.sharepoint.com:/sites/nowhere")
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // A library reached through Site.drives lists its files.
    let invoices = site["drives"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == "Invoices")
        .unwrap();
    let (status, page) = app
        .get(&format!(
            "/api/v1/drives/{}/root/children",
            enc(invoices["id"].as_str().unwrap())
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
}

#[tokio::test]
async fn callers_reach_only_their_users_drives_and_their_sites_and_denials_cost_nothing() {
    use graph_emulator::DEMO_USER_UPN;
    let (app, token) = app_with_caller(
        "finance-app",
        &["files.read", "files.write", "users.read"],
        &[DEMO_USER_UPN],
        &[FINANCE],
    )
    .await;

    // Allowed: the caller's own user and site.
    let (_, own) = app.get_as(Some(&token), "/api/v1/drives/me").await;
    assert!(own["id"].is_string(), "{own}");
    let (status, site) = app
        .get_as(
            Some(&token),
            &format!("/api/v1/drives/site:{}", enc(FINANCE)),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{site}");
    let site_drive = site["id"].as_str().unwrap().to_owned();
    let (status, _) = app
        .get_as(
            Some(&token),
            &format!("/api/v1/drives/{}/root", enc(&site_drive)),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "a listed site's library by id");

    // Another user's OneDrive (by reference or by id) and another site: refused, free.
    let (_, other) = app
        .get("/api/v1/drives/user:orders@kestrelridge.example")
        .await;
    let other_drive = other["id"].as_str().map(str::to_owned);
    let (_, contracts) = app
        .get(&format!(
            "/api/v1/drives/site:{}",
            enc("kestrelridge.sharepoint.com:/sites/contracts")
        ))
        .await;
    let contracts_drive = contracts["id"].as_str().unwrap().to_owned();
    app.reset_stats().await;
    let mut denied = vec![
        "/api/v1/drives/user:orders@kestrelridge.example".to_owned(),
        format!("/api/v1/drives/{}/root", enc(&contracts_drive)),
        format!(
            "/api/v1/drives/site:{}/root",
            enc("kestrelridge.sharepoint.com:/sites/contracts")
        ),
        format!(
            "/api/v1/sites/{}",
            enc("kestrelridge.sharepoint.com:/sites/contracts")
        ),
    ];
    if let Some(id) = other_drive {
        denied.push(format!("/api/v1/drives/{}/root/children", enc(&id)));
    }
    for path in &denied {
        let (status, body) = app.get_as(Some(&token), path).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path}: {body}");
        assert_eq!(body["error"]["code"], "FORBIDDEN");
    }
    let body = app
        .graphql_as(
            Some(&token),
            "{ site(site: \"kestrelridge.sharepoint.com:/sites/marketing\") { id } }",
            json!({}),
        )
        .await
        .1;
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "FORBIDDEN",
        "{body}"
    );
    assert_eq!(app.graph_requests().await, 0, "denials cost no Graph call");
    // Search shows only the caller's sites.
    let (_, found) = app.get_as(Some(&token), "/api/v1/sites?search=*").await;
    let names: Vec<&str> = found["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["display_name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Finance"], "{found}");
}

#[tokio::test]
async fn a_caller_without_file_operations_is_refused() {
    let (app, token) = app_with_caller("reader", &["files.read"], &["*"], &["*"]).await;
    let (status, _) = app.get_as(Some(&token), "/api/v1/drives/me/root").await;
    assert_eq!(status, StatusCode::OK);
    let response = app
        .http
        .put(format!(
            "{}/api/v1/drives/me/root:/x.txt:/content",
            app.base
        ))
        .bearer_auth(&token)
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let (_, body) = app
        .graphql_as(
            Some(&token),
            "mutation { createFolder(drive: \"me\", name: \"Nope\") { id } }",
            json!({}),
        )
        .await;
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "FORBIDDEN",
        "{body}"
    );
}

#[tokio::test]
async fn a_download_redirect_to_a_host_outside_the_allow_list_is_not_followed() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use axum::http::{HeaderMap, StatusCode as Status, header};
    use graph_emulator::{DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET};
    use m365_gateway::config::{CallerMode, Secret};

    use crate::helpers::{loopback, real_mode_config, test_token};

    async fn serve(router: axum::Router) -> String {
        let listener = tokio::net::TcpListener::bind(loopback()).await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, router).await });
        format!("http://{address}")
    }
    // Something posing as a download host: it must never be asked.
    let stolen = Arc::new(AtomicUsize::new(0));
    let counter = stolen.clone();
    let evil = serve(axum::Router::new().fallback(move || {
        counter.fetch_add(1, Ordering::SeqCst);
        async { "the file" }
    }))
    .await;
    // A Graph whose `/content` redirects there.
    let authorized = Arc::new(AtomicUsize::new(0));
    let seen = authorized.clone();
    let target = format!("{evil}/_layouts/15/download.aspx?tempauth=secret");
    let graph = serve(
        axum::Router::new()
            .route(
                "/v1.0/drives/{drive}/items/{item}",
                axum::routing::get(|| async {
                    axum::Json(json!({
                        "id": "i1", "name": "a.txt", "size": 8,
                        "file": { "mimeType": "text/plain" },
                        "parentReference": { "driveId": "d1", "path": "/drive/root:" }
                    }))
                }),
            )
            .route(
                "/v1.0/drives/{drive}/items/{item}/content",
                axum::routing::get(move |headers: HeaderMap| {
                    if headers.contains_key(header::AUTHORIZATION) {
                        seen.fetch_add(1, Ordering::SeqCst);
                    }
                    let target = target.clone();
                    async move { (Status::FOUND, [(header::LOCATION, target)]) }
                }),
            ),
    )
    .await;
    let emulator = graph_emulator::Emulator::spawn(Default::default(), loopback())
        .await
        .unwrap();
    let mut config = real_mode_config(
        &emulator,
        DEFAULT_CLIENT_ID,
        ("reader", CallerMode::App, &["files.read"], &["*"]),
    );
    config.graph.client_secret = Some(Secret::new(DEFAULT_CLIENT_SECRET));
    config.graph.base_url = format!("{graph}/v1.0").parse().unwrap();
    let app = spawn_app_with(config).await;
    let response = app
        .http
        .get(format!("{}/api/v1/drives/d1/items/i1/content", app.base))
        .bearer_auth(test_token("reader", None))
        .send()
        .await
        .unwrap();
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{body}");
    assert_eq!(body["error"]["code"], "UPSTREAM_BAD_RESPONSE");
    assert!(!body.to_string().contains("tempauth"), "{body}");
    assert_eq!(
        authorized.load(Ordering::SeqCst),
        1,
        "Graph itself gets the token"
    );
    assert_eq!(
        stolen.load(Ordering::SeqCst),
        0,
        "the other host is never asked"
    );
}
