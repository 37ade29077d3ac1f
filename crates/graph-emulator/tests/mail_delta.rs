//! Message delta: the first sync in pages, incremental rounds with changes and removals,
//! `$select`/`$filter`, and 410 when the sync state is gone.

mod common;

use std::collections::HashSet;

use common::*;
use graph_emulator::{DEFAULT_CLIENT_ID, DEMO_USER_UPN, SHARED_MAILBOX_UPN};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

fn delta_path(folder: &str) -> String {
    format!("/users/{DEMO_USER_UPN}/mailFolders/{folder}/messages/delta")
}

fn values(body: &Value) -> Vec<Value> {
    body["value"].as_array().cloned().unwrap_or_default()
}

/// Follows nextLinks to the deltaLink: (items, pages, deltaLink).
async fn sync(h: &Harness, first: &str, page_size: usize) -> (Vec<Value>, usize, String) {
    let prefer = format!("odata.maxpagesize={page_size}");
    let mut url = first.to_string();
    let mut items = Vec::new();
    let mut pages = 0;
    loop {
        let reply = h.get_with(&url, &[("Prefer", &prefer)]).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
        assert_eq!(reply.header("preference-applied"), Some(prefer.as_str()));
        let body = reply.json();
        assert_eq!(
            body["@odata.context"],
            "https://graph.microsoft.com/v1.0/$metadata#Collection(message)"
        );
        let page = values(&body);
        assert!(page.len() <= page_size);
        items.extend(page);
        pages += 1;
        assert!(pages < 1000);
        match (
            body["@odata.nextLink"].as_str(),
            body["@odata.deltaLink"].as_str(),
        ) {
            (Some(next), None) => {
                assert!(next.contains("/messages/delta?$skiptoken="), "{next}");
                url = next.to_string();
            }
            (None, Some(delta)) => {
                assert!(delta.contains("/messages/delta?$deltatoken="), "{delta}");
                return (items, pages, delta.to_string());
            }
            other => panic!("exactly one link expected: {other:?}"),
        }
    }
}

#[tokio::test]
async fn the_first_sync_pages_with_skiptokens_and_ends_with_a_delta_link() {
    let h = start().await;
    let (items, pages, delta) = sync(&h, &delta_path("inbox"), 10).await;
    assert_eq!(items.len(), 64);
    assert_eq!(pages, 7);
    let ids: HashSet<&str> = items.iter().filter_map(|m| m["id"].as_str()).collect();
    assert_eq!(ids.len(), 64);
    for m in &items {
        assert_eq!(m["@odata.type"], "#microsoft.graph.message");
        assert!(m["@odata.etag"].is_string());
        assert!(m["subject"].is_string() && m["body"].is_object());
    }
    assert!(delta.starts_with(&format!("{}{}", h.emu.graph_url(), delta_path("inbox"))));
    // Without Prefer: pages of 10; $top is ignored.
    let reply = h.get(&format!("{}?$top=3", delta_path("inbox"))).await;
    assert_eq!(values(&reply.json()).len(), 10);
    assert!(reply.header("preference-applied").is_none());
    // Nothing changed: the next round is empty.
    let (again, _, _) = sync(&h, &delta, 10).await;
    assert!(again.is_empty());
}

#[tokio::test]
async fn an_incremental_round_returns_changes_new_mail_and_removals() {
    let h = start().await;
    let (items, _, delta) = sync(&h, &delta_path("inbox"), 25).await;
    let id = |i: usize| items[i]["id"].as_str().expect("id").to_string();
    let (read, deleted, moved) = (id(0), id(1), id(2));
    let path = |id: &str| format!("/users/{DEMO_USER_UPN}/messages/{}", enc(id));
    let was_read = items[0]["isRead"].as_bool().expect("isRead");
    assert_eq!(
        h.patch(&path(&read), &json!({"isRead": !was_read}))
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        h.delete(&path(&deleted)).await.status,
        StatusCode::NO_CONTENT
    );
    let archived = h
        .post(
            &format!("{}/move", path(&moved)),
            &json!({"destinationId": "archive"}),
        )
        .await;
    assert_eq!(archived.status, StatusCode::CREATED);
    let sent = h
        .post(
            &format!("/users/{SHARED_MAILBOX_UPN}/sendMail"),
            &json!({"message": {"subject": "Fresh delivery", "toRecipients": [{"emailAddress": {"address": DEMO_USER_UPN}}]}}),
        )
        .await;
    assert_eq!(sent.status, StatusCode::ACCEPTED);
    // A change elsewhere is not this folder's business.
    let drafts = values(
        &h.get(&format!(
            "/users/{DEMO_USER_UPN}/mailFolders/drafts/messages?$top=1"
        ))
        .await
        .json(),
    );
    h.patch(
        &path(drafts[0]["id"].as_str().expect("id")),
        &json!({"subject": "elsewhere"}),
    )
    .await;

    let (changes, _, next_delta) = sync(&h, &delta, 2).await;
    assert_eq!(changes.len(), 4, "{changes:#?}");
    let removed: Vec<&Value> = changes
        .iter()
        .filter(|c| c.get("@removed").is_some())
        .collect();
    let removed_ids: HashSet<&str> = removed.iter().filter_map(|c| c["id"].as_str()).collect();
    assert_eq!(
        removed_ids,
        HashSet::from([deleted.as_str(), moved.as_str()])
    );
    for r in &removed {
        assert_eq!(keys(r), sorted(vec!["@odata.type", "@removed", "id"]));
        assert_eq!(r["@removed"], json!({"reason": "deleted"}));
        assert_eq!(r["@odata.type"], "#microsoft.graph.message");
    }
    let updated = changes
        .iter()
        .find(|c| c["id"] == read.as_str())
        .expect("updated");
    assert_eq!(updated["isRead"], !was_read);
    let fresh = changes
        .iter()
        .find(|c| c["subject"] == "Fresh delivery")
        .expect("new mail");
    assert_eq!(fresh["isRead"], false);

    // The archive folder sees the moved message arrive under its new id.
    let (archive, _, _) = sync(&h, &delta_path("archive"), 10).await;
    assert!(archive.iter().any(|m| m["id"] == archived.json()["id"]));

    let (quiet, _, _) = sync(&h, &next_delta, 10).await;
    assert!(quiet.is_empty());
}

#[tokio::test]
async fn delta_honours_select_and_the_received_date_filter_across_rounds() {
    let h = start().await;
    let all = values(
        &h.get(&format!(
            "/users/{DEMO_USER_UPN}/mailFolders/inbox/messages?$top=100"
        ))
        .await
        .json(),
    );
    let since = all[19]["receivedDateTime"]
        .as_str()
        .expect("date")
        .to_string();
    let first = format!(
        "{}?$select=subject,isRead&$filter=receivedDateTime ge {since}",
        delta_path("inbox")
    );
    let (items, pages, delta) = sync(&h, &first, 7).await;
    assert_eq!(items.len(), 20);
    assert_eq!(pages, 3);
    for m in &items {
        assert_eq!(
            keys(m),
            sorted(vec![
                "@odata.etag",
                "@odata.type",
                "id",
                "isRead",
                "subject"
            ])
        );
    }
    // The next round keeps the select (and the filter).
    let old = all[40]["id"].as_str().expect("id");
    let recent = all[0]["id"].as_str().expect("id");
    for id in [old, recent] {
        h.patch(
            &format!("/users/{DEMO_USER_UPN}/messages/{}", enc(id)),
            &json!({"categories": ["Orders"]}),
        )
        .await;
    }
    let (changes, _, _) = sync(&h, &delta, 7).await;
    assert_eq!(changes.len(), 1, "only the message inside the filter");
    assert_eq!(changes[0]["id"], recent);
    assert_eq!(
        keys(&changes[0]),
        sorted(vec![
            "@odata.etag",
            "@odata.type",
            "id",
            "isRead",
            "subject"
        ])
    );

    for bad in [
        "$filter=isRead eq false",
        "$filter=receivedDateTime lt 2024-01-01T00:00:00Z",
        "$orderby=subject",
        "$select=nope",
    ] {
        let reply = h.get(&format!("{}?{bad}", delta_path("inbox"))).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{bad}");
    }
}

#[tokio::test]
async fn delta_tokens_are_bound_to_their_folder_and_can_be_expired() {
    let h = start().await;
    let (_, _, delta) = sync(&h, &delta_path("inbox"), 50).await;
    let token = delta
        .split("$deltatoken=")
        .nth(1)
        .expect("token")
        .to_string();
    let gone = |reply: &Reply| {
        assert_eq!(reply.status, StatusCode::GONE, "{}", reply.text);
        assert_eq!(reply.error_code(), "syncStateNotFound");
        assert!(
            reply
                .error_message()
                .starts_with("The sync state for this request has expired or is invalid")
        );
    };
    gone(
        &h.get(&format!("{}?$deltatoken={token}", delta_path("sentitems")))
            .await,
    );
    gone(
        &h.get(&format!(
            "/users/{SHARED_MAILBOX_UPN}/mailFolders/inbox/messages/delta?$deltatoken={token}"
        ))
        .await,
    );
    gone(
        &h.get(&format!("{}?$deltatoken=garbage", delta_path("inbox")))
            .await,
    );
    gone(
        &h.get(&format!("{}?$skiptoken=AAAA", delta_path("inbox")))
            .await,
    );
    assert_eq!(h.get(&delta).await.status, StatusCode::OK);

    // A page in the middle of a sync expires too.
    let first_page = h
        .get_with(&delta_path("drafts"), &[("Prefer", "odata.maxpagesize=1")])
        .await
        .json();
    let next = first_page["@odata.nextLink"]
        .as_str()
        .expect("next")
        .to_string();
    let expired = reply(
        h.client
            .post(format!(
                "{}/_emulator/mail/expire-delta-tokens",
                h.emu.base_url()
            ))
            .send()
            .await
            .expect("expire"),
    )
    .await;
    assert_eq!(expired.status, StatusCode::NO_CONTENT);
    gone(&h.get(&delta).await);
    gone(&h.get(&next).await);
    // A new sync starts over.
    let (items, _, fresh) = sync(&h, &delta_path("inbox"), 50).await;
    assert_eq!(items.len(), 64);
    assert_eq!(h.get(&fresh).await.status, StatusCode::OK);
    h.emu.emulator.expire_mail_delta_tokens();
    gone(&h.get(&fresh).await);
}

#[tokio::test]
async fn me_delta_works_with_a_delegated_token() {
    let h = start().await;
    let token = h
        .emu
        .emulator
        .issue_delegated_token(DEFAULT_CLIENT_ID, DEMO_USER_UPN, &["Mail.Read"])
        .expect("token");
    let reply = h
        .call(
            Method::GET,
            "/me/mailFolders/drafts/messages/delta",
            None,
            Some(&token),
            &[("Prefer", "odata.maxpagesize=2")],
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let body = reply.json();
    assert_eq!(values(&body).len(), 2);
    let next = body["@odata.nextLink"].as_str().expect("next");
    assert!(next.starts_with(&format!(
        "{}/me/mailFolders/drafts/messages/delta?$skiptoken=",
        h.emu.graph_url()
    )));
    let last = h
        .call(
            Method::GET,
            next,
            None,
            Some(&token),
            &[("Prefer", "odata.maxpagesize=2")],
        )
        .await
        .json();
    assert_eq!(values(&last).len(), 1);
    assert!(last["@odata.deltaLink"].is_string());
}
