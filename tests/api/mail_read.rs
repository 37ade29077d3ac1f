//! Reading mail through the gateway: folders, lists with filters and search, bodies,
//! senders, attachments, shared mailboxes, policy, delta — in GraphQL and REST.

use graph_emulator::{DEMO_USER_UPN, SHARED_MAILBOX_UPN};
use m365_gateway::config::CallerMode;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{
    TestApp, graph_app_token, real_mode_config_from, spawn_app, spawn_app_with, test_config,
    test_token,
};

fn nodes(value: &Value) -> &Vec<Value> {
    value["nodes"].as_array().expect("a connection with nodes")
}

#[tokio::test]
async fn the_mailbox_lists_its_well_known_folders_with_counts_and_child_folders() {
    let app = spawn_app().await;
    let data = app
        .graphql_data(
            "{ me { mailFolders(first: 50) { nodes { id displayName totalItemCount unreadItemCount childFolderCount } }
                    inbox: mailFolder(id: \"inbox\") { displayName totalItemCount childFolders(first: 10) { nodes { displayName } } } } }",
        )
        .await;
    let folders = nodes(&data["me"]["mailFolders"]);
    let names: Vec<&str> = folders
        .iter()
        .map(|f| f["displayName"].as_str().unwrap())
        .collect();
    for wanted in [
        "Inbox",
        "Sent Items",
        "Drafts",
        "Deleted Items",
        "Junk Email",
        "Archive",
    ] {
        assert!(names.contains(&wanted), "{wanted} missing from {names:?}");
    }
    let inbox = &data["me"]["inbox"];
    assert_eq!(inbox["displayName"], "Inbox");
    assert!(inbox["totalItemCount"].as_u64().unwrap() >= 50, "{inbox}");
    let children: Vec<&str> = nodes(&inbox["childFolders"])
        .iter()
        .map(|f| f["displayName"].as_str().unwrap())
        .collect();
    assert!(children.contains(&"Orders"), "{children:?}");
}

#[tokio::test]
async fn filters_and_a_sort_work_together_as_exchange_requires() {
    let app = spawn_app().await;
    let data = app
        .graphql_data(
            "{ me { messages(folder: \"inbox\", filter: { isRead: false, hasAttachments: true }, orderBy: RECEIVED_ASC, first: 50) {
                nodes { isRead hasAttachments receivedDateTime } } } }",
        )
        .await;
    let list = nodes(&data["me"]["messages"]);
    assert!(
        !list.is_empty(),
        "the seeded inbox has unread mail with attachments"
    );
    let mut previous = String::new();
    for m in list {
        assert_eq!(m["isRead"], false, "{m}");
        assert_eq!(m["hasAttachments"], true, "{m}");
        let received = m["receivedDateTime"].as_str().unwrap().to_owned();
        assert!(
            received >= previous,
            "not ascending: {received} after {previous}"
        );
        previous = received;
    }
    // The Graph request carried the sort property first in $filter.
    let urls = app.recorded_urls().await;
    assert!(
        urls.iter()
            .any(|u| u.contains("%24orderby=receivedDateTime%20asc")
                || u.contains("$orderby=receivedDateTime%20asc")),
        "{urls:?}"
    );
}

#[tokio::test]
async fn a_filter_on_sender_and_dates_returns_only_matching_messages() {
    let app = spawn_app().await;
    let all = app
        .graphql_data("{ me { messages(folder: \"inbox\", first: 100) { nodes { from { address } receivedDateTime } } } }")
        .await;
    let list = nodes(&all["me"]["messages"]);
    let sender = list[3]["from"]["address"].as_str().unwrap().to_owned();
    let expected = list
        .iter()
        .filter(|m| m["from"]["address"].as_str() == Some(sender.as_str()))
        .count();
    let (status, body) = app
        .graphql_as(
            Some(&app.token),
            "query($from: String!) { me { messages(folder: \"inbox\", filter: { from: $from, receivedAfter: \"2000-01-01T00:00:00Z\" }, first: 100) { nodes { from { address } } } } }",
            json!({ "from": sender }),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let found = nodes(&body["data"]["me"]["messages"]);
    assert_eq!(found.len(), expected, "{body}");
    assert!(
        found
            .iter()
            .all(|m| m["from"]["address"] == sender.as_str())
    );
}

#[tokio::test]
async fn search_finds_messages_and_refuses_to_be_combined_with_a_filter() {
    let app = spawn_app().await;
    let all = app
        .graphql_data("{ me { messages(folder: \"inbox\", first: 5) { nodes { subject } } } }")
        .await;
    let subject = nodes(&all["me"]["messages"])[0]["subject"]
        .as_str()
        .unwrap()
        .to_owned();
    let word = subject
        .split_whitespace()
        .find(|w| w.len() > 4 && w.chars().all(char::is_alphanumeric))
        .unwrap_or(&subject)
        .to_owned();
    let (_, body) = app
        .graphql_as(
            Some(&app.token),
            "query($q: String!) { me { messages(search: $q, first: 25) { nodes { subject } } } }",
            json!({ "q": format!("subject:{word}") }),
        )
        .await;
    let found = nodes(&body["data"]["me"]["messages"]);
    assert!(!found.is_empty(), "{body}");
    assert!(found.iter().all(|m| {
        m["subject"]
            .as_str()
            .unwrap()
            .to_lowercase()
            .contains(&word.to_lowercase())
    }));

    app.reset_stats().await;
    let body = app
        .graphql("{ me { messages(search: \"x\", filter: { isRead: true }) { nodes { id } } } }")
        .await;
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "BAD_USER_INPUT",
        "{body}"
    );
    assert_eq!(mail_requests(&app).await, 0);
}

/// Graph requests that reached mailbox routes (directory lookups for `me` aside).
async fn mail_requests(app: &TestApp) -> u64 {
    let stats = app.stats().await;
    stats["routes"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(route, _)| {
            route.contains("messages")
                || route.contains("mailFolders")
                || route.contains("sendMail")
        })
        .map(|(_, n)| n.as_u64().unwrap())
        .sum()
}

#[tokio::test]
async fn cursors_page_through_the_inbox_without_repeats() {
    let app = spawn_app().await;
    let mut seen = std::collections::HashSet::new();
    let mut after: Option<String> = None;
    for _ in 0..3 {
        let (_, body) = app
            .graphql_as(
                Some(&app.token),
                "query($after: String) { me { messages(folder: \"inbox\", first: 10, after: $after) { pageInfo { hasNextPage endCursor } nodes { id } } } }",
                json!({ "after": after }),
            )
            .await;
        let connection = &body["data"]["me"]["messages"];
        for m in nodes(connection) {
            assert!(
                seen.insert(m["id"].as_str().unwrap().to_owned()),
                "repeat {m}"
            );
        }
        assert_eq!(connection["pageInfo"]["hasNextPage"], true);
        after = connection["pageInfo"]["endCursor"]
            .as_str()
            .map(str::to_owned);
    }
    assert_eq!(seen.len(), 30);
}

#[tokio::test]
async fn bodies_come_as_html_or_as_text_on_request() {
    let app = spawn_app().await;
    let data = app
        .graphql_data(
            "{ me { messages(folder: \"inbox\", first: 5) { nodes { parentFolder { displayName } html: body { format content } text: body(format: TEXT) { format content } } } } }",
        )
        .await;
    for m in nodes(&data["me"]["messages"]) {
        assert_eq!(m["html"]["format"], "HTML", "{m}");
        assert_eq!(m["text"]["format"], "TEXT", "{m}");
        assert!(
            !m["text"]["content"].as_str().unwrap().contains("<html"),
            "{m}"
        );
    }
}

const INBOX_WITH_SENDERS: &str = "{ me { messages(folder: \"inbox\", first: 50) { nodes { subject from { address user { displayName manager { displayName } } } } } } }";

#[tokio::test]
async fn fifty_inbox_messages_with_senders_and_their_managers_cost_one_list_and_one_wave_of_batches_cold_and_nothing_warm()
 {
    let app = spawn_app().await;
    app.graphql_data("{ me { id } }").await; // the Graph token, outside the count
    app.reset_stats().await;
    let cold = app.graphql_data(INBOX_WITH_SENDERS).await;
    let list = nodes(&cold["me"]["messages"]);
    assert_eq!(list.len(), 50);
    let resolved = list.iter().filter(|m| !m["from"]["user"].is_null()).count();
    let external = list.iter().filter(|m| m["from"]["user"].is_null()).count();
    assert!(
        resolved >= 30,
        "tenant senders resolve to users: {resolved}"
    );
    assert!(external >= 1, "the seeded inbox has external senders");
    assert!(
        list.iter().any(|m| !m["from"]["user"]["manager"].is_null()),
        "senders' managers resolve"
    );
    let stats = app.stats().await;
    let cold_requests = stats["graph_requests"].as_u64().unwrap();
    let mut senders: Vec<String> = list
        .iter()
        .map(|m| m["from"]["address"].as_str().unwrap().to_lowercase())
        .collect();
    senders.sort();
    senders.dedup();
    // The list, then every distinct sender with their manager expanded, 20 to a `$batch`.
    assert_eq!(
        cold_requests,
        1 + senders.len().div_ceil(20) as u64,
        "{} distinct senders ({external} external): {stats}",
        senders.len()
    );
    assert!(cold_requests <= 7, "{stats}");
    let warm = app.graphql_data(INBOX_WITH_SENDERS).await;
    assert_eq!(warm["me"]["messages"], cold["me"]["messages"]);
    let after_warm = app.stats().await;
    // "No such user" for external senders is cached like any answer.
    let warm_requests = after_warm["graph_requests"].as_u64().unwrap() - cold_requests;
    assert_eq!(warm_requests, 0, "warm query reached Graph: {after_warm}");
}

#[tokio::test]
async fn a_shared_mailbox_is_read_by_its_address_in_graphql_and_rest() {
    let app = spawn_app().await;
    let (_, body) = app
        .graphql_as(
            Some(&app.token),
            "query($m: ID!) { user(id: $m) { messages(folder: \"inbox\", first: 10) { nodes { subject hasAttachments from { address } } } } }",
            json!({ "m": SHARED_MAILBOX_UPN }),
        )
        .await;
    let list = nodes(&body["data"]["user"]["messages"]);
    assert_eq!(list.len(), 10, "{body}");

    let (status, rest) = app
        .get(&format!(
            "/api/v1/users/{SHARED_MAILBOX_UPN}/messages?folder=inbox&limit=10&body_format=text"
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{rest}");
    let rest_subjects: Vec<&Value> = rest["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| &m["subject"])
        .collect();
    let gql_subjects: Vec<&Value> = list.iter().map(|m| &m["subject"]).collect();
    assert_eq!(rest_subjects, gql_subjects);
    assert!(rest["next_cursor"].is_string());
}

#[tokio::test]
async fn attachments_list_in_graphql_and_stream_byte_for_byte_through_rest() {
    let app = spawn_app().await;
    let data = app
        .graphql_data(
            "{ me { messages(folder: \"inbox\", filter: { hasAttachments: true }, first: 5) { nodes { id attachments { id name contentType size kind } } } } }",
        )
        .await;
    let message = &nodes(&data["me"]["messages"])[0];
    let attachment = &message["attachments"][0];
    let (mid, aid) = (
        message["id"].as_str().unwrap(),
        attachment["id"].as_str().unwrap(),
    );
    let encode = |s: &str| {
        percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
    };
    let response = app
        .http
        .get(format!(
            "{}/api/v1/users/me/messages/{}/attachments/{}/content",
            app.base,
            encode(mid),
            encode(aid)
        ))
        .bearer_auth(&app.token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()["content-type"].to_str().unwrap(),
        attachment["contentType"].as_str().unwrap()
    );
    assert!(
        response.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .starts_with("attachment; filename*=UTF-8''")
    );
    let bytes = response.bytes().await.unwrap();
    assert_eq!(bytes.len() as u64, attachment["size"].as_u64().unwrap());

    // The same bytes as Graph's own `$value`.
    let direct = raw_attachment(&app, mid, aid).await;
    assert_eq!(bytes.as_ref(), direct.as_slice());
}

/// An attachment's bytes straight from the emulator, with an app token of its own.
async fn raw_attachment(app: &TestApp, mid: &str, aid: &str) -> Vec<u8> {
    let token = graph_app_token(&app.http, &app.emulator, graph_emulator::DEFAULT_TENANT_ID).await;
    let encode = |s: &str| {
        percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
    };
    app.http
        .get(format!(
            "{}/v1.0/users/{}/messages/{}/attachments/{}/$value",
            app.emulator,
            encode(DEMO_USER_UPN),
            encode(mid),
            encode(aid)
        ))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap()
        .to_vec()
}

#[tokio::test]
async fn a_mailbox_outside_the_callers_policy_is_forbidden_with_zero_graph_calls() {
    let config = real_mode_config_from(
        test_config(),
        (
            "svc-hr",
            CallerMode::App,
            &["mail.read", "mail.send", "users.read"],
            &[DEMO_USER_UPN],
        ),
    );
    let app = spawn_app_with(config).await;
    let token = test_token("svc-hr", None);
    // Let the policy resolve, then count from zero.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    app.reset_stats().await;
    let (_, body) = app
        .graphql_as(
            Some(&token),
            "query($m: ID!) { user(id: $m) { messages(first: 5) { nodes { subject } } } }",
            json!({ "m": SHARED_MAILBOX_UPN }),
        )
        .await;
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "FORBIDDEN",
        "{body}"
    );
    let (status, rest) = app
        .get_as(
            Some(&token),
            &format!("/api/v1/users/{SHARED_MAILBOX_UPN}/messages"),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{rest}");
    assert_eq!(app.graph_requests().await, 0);
}

#[tokio::test]
async fn unknown_folders_and_messages_are_not_found() {
    let app = spawn_app().await;
    let body = app
        .graphql("{ me { mailFolder(id: \"no-such-folder\") { id } message(id: \"AAMkAGno-such-message=\") { id } } }")
        .await;
    let codes: Vec<&Value> = body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["extensions"]["code"])
        .collect();
    assert_eq!(codes, vec!["NOT_FOUND", "NOT_FOUND"], "{body}");
    let (status, rest) = app
        .get("/api/v1/users/me/messages/AAMkAGno-such-message%3D")
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{rest}");
    assert_eq!(rest["error"]["code"], "NOT_FOUND");
}

#[tokio::test]
async fn delta_returns_everything_then_only_changes_and_a_stale_token_means_sync_reset() {
    let app = spawn_app().await;
    const DELTA: &str = "query($t: String) { messagesDelta(mailbox: \"me\", folder: \"inbox\", deltaToken: $t, first: 200) { changed { id isRead } removed deltaToken hasMore } }";
    // The first sync: everything, page by page.
    let mut token: Option<String> = None;
    let mut initial = Vec::new();
    loop {
        let (_, body) = app
            .graphql_as(Some(&app.token), DELTA, json!({ "t": token }))
            .await;
        let delta = &body["data"]["messagesDelta"];
        initial.extend(
            delta["changed"]
                .as_array()
                .expect("changed")
                .iter()
                .cloned(),
        );
        token = delta["deltaToken"].as_str().map(str::to_owned);
        if delta["hasMore"] == false {
            break;
        }
    }
    assert!(initial.len() >= 50, "{}", initial.len());

    // Nothing changed: nothing reported.
    let (_, body) = app
        .graphql_as(Some(&app.token), DELTA, json!({ "t": token }))
        .await;
    assert_eq!(
        body["data"]["messagesDelta"]["changed"],
        json!([]),
        "{body}"
    );
    let token = body["data"]["messagesDelta"]["deltaToken"]
        .as_str()
        .unwrap()
        .to_owned();

    // Mark one read and move another out: one change, one removal.
    let (read, moved) = (
        initial[0]["id"].as_str().unwrap(),
        initial[1]["id"].as_str().unwrap(),
    );
    let (_, marked) = app
        .graphql_as(
            Some(&app.token),
            "mutation($id: ID!) { markRead(mailbox: \"me\", id: $id, isRead: false) { id isRead } }",
            json!({ "id": read }),
        )
        .await;
    assert_eq!(marked["data"]["markRead"]["isRead"], false, "{marked}");
    let (_, body) = app
        .graphql_as(
            Some(&app.token),
            "mutation($id: ID!) { move(mailbox: \"me\", id: $id, destination: \"archive\") { id } }",
            json!({ "id": moved }),
        )
        .await;
    assert_ne!(
        body["data"]["move"]["id"].as_str(),
        Some(moved),
        "move gives a new id: {body}"
    );

    let (_, body) = app
        .graphql_as(Some(&app.token), DELTA, json!({ "t": token }))
        .await;
    let delta = &body["data"]["messagesDelta"];
    let changed: Vec<&str> = delta["changed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert!(changed.contains(&read), "{body}");
    assert!(
        delta["removed"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r == moved),
        "{body}"
    );
    let stale = delta["deltaToken"].as_str().unwrap().to_owned();

    // Exchange forgets sync states: the caller is told to start over.
    let expired = app
        .http
        .post(format!(
            "{}/_emulator/mail/expire-delta-tokens",
            app.emulator
        ))
        .send()
        .await
        .unwrap();
    assert!(expired.status().is_success());
    let (_, body) = app
        .graphql_as(Some(&app.token), DELTA, json!({ "t": stale }))
        .await;
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "SYNC_RESET",
        "{body}"
    );
    let (status, rest) = app
        .get(&format!(
            "/api/v1/users/me/mail-folders/inbox/messages/delta?delta_token={stale}"
        ))
        .await;
    assert_eq!(status, StatusCode::GONE, "{rest}");
    assert_eq!(rest["error"]["code"], "SYNC_RESET");

    // A token for another folder is refused without a Graph call.
    let (status, _) = app
        .get(&format!(
            "/api/v1/users/me/mail-folders/sentitems/messages/delta?delta_token={stale}"
        ))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn every_mail_example_response_from_microsofts_docs_deserializes() {
    use m365_gateway::graph::models::{
        Attachment, Collection, DeltaPage, MailFolder, Message, UploadSession,
    };
    let fixtures = include_str!("../fixtures/graph-examples/mail.jsonl");
    let mut checked = 0;
    for line in fixtures.lines().filter(|l| !l.trim().is_empty()) {
        let example: Value = serde_json::from_str(line).unwrap();
        let page = example["page"].as_str().unwrap();
        let body = example["response"]["body"].clone();
        let status = example["response"]["status"].as_u64().unwrap_or(200);
        // Error answers and MIME text are not message shapes.
        if !body.is_object() || status >= 300 {
            continue;
        }
        let result = match page {
            "user-list-messages" | "mailfolder-list-messages" => {
                serde_json::from_value::<Collection<Message>>(body)
                    .map(|c| assert!(!c.value.is_empty()))
            }
            "message-get" | "message-move" | "message-update" | "message-createreply" => {
                serde_json::from_value::<Message>(body)
                    .map(|m| assert!(m.id.is_some() || m.subject.is_some()))
            }
            "message-delta" | "concepts/delta-query-messages" => {
                serde_json::from_value::<DeltaPage<Message>>(body)
                    .map(|d| assert!(d.next_link.is_some() || d.delta_link.is_some()))
            }
            "message-post-attachments" => {
                serde_json::from_value::<Attachment>(body).map(|a| assert!(a.name.is_some()))
            }
            "attachment-createuploadsession" => serde_json::from_value::<UploadSession>(body)
                .map(|s| assert!(s.upload_url.is_some())),
            "user-list-mailfolders" => serde_json::from_value::<Collection<MailFolder>>(body)
                .map(|c| assert!(!c.value.is_empty())),
            _ => continue,
        };
        result.unwrap_or_else(|e| panic!("{page}: {e}"));
        checked += 1;
    }
    assert!(checked >= 9, "only {checked} examples checked");
}

#[tokio::test]
async fn concurrent_reads_of_one_mailbox_stay_within_outlooks_limit_of_four() {
    let app = spawn_app().await;
    let data = app
        .graphql_data("{ me { messages(folder: \"inbox\", first: 12) { nodes { id } } } }")
        .await;
    let ids: Vec<String> = nodes(&data["me"]["messages"])
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_owned())
        .collect();
    // Each read takes a while upstream, so twelve at once would overlap.
    let rule = app
        .http
        .post(format!("{}/_emulator/faults", app.emulator))
        .json(&json!({ "route": "GET /users/{id}/messages/{id}", "fault": { "kind": "latency", "ms": 200 } }))
        .send()
        .await
        .unwrap();
    assert!(rule.status().is_success(), "{}", rule.text().await.unwrap());
    app.reset_stats().await;
    let reads = ids.iter().map(|id| {
        let url = format!(
            "{}/api/v1/users/me/messages/{}",
            app.base,
            percent_encoding::utf8_percent_encode(id, percent_encoding::NON_ALPHANUMERIC)
        );
        let request = app.http.get(url).bearer_auth(&app.token).send();
        async move { request.await.unwrap().status() }
    });
    let statuses = futures::future::join_all(reads).await;
    assert!(
        statuses.iter().all(|s| *s == StatusCode::OK),
        "{statuses:?}"
    );
    let requests: Value = app
        .http
        .get(format!("{}/_emulator/requests", app.emulator))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let throttled = requests
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["status"] == 429)
        .count();
    assert_eq!(
        throttled, 0,
        "the gateway let Outlook throttle it: {requests}"
    );
    assert_eq!(requests.as_array().unwrap().len(), 12);
}
