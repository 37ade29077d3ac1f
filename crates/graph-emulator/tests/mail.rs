//! Reading mail: folders, the seeded history, paging, `$filter`/`$orderby`/`$search`,
//! `$select`, `Prefer`, attachments, `$expand`, MIME, addressing, permissions, `$batch`.

mod common;

use std::collections::{HashMap, HashSet};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use common::*;
use graph_emulator::{
    AppRegistration, DEFAULT_CLIENT_ID, DEMO_USER_UPN, EmulatorConfig, SHARED_MAILBOX_UPN,
    TENANT_DOMAIN,
};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

fn inbox() -> String {
    format!("/users/{DEMO_USER_UPN}/mailFolders/inbox/messages")
}

fn values(body: &Value) -> Vec<Value> {
    body["value"].as_array().cloned().unwrap_or_default()
}

fn subjects(items: &[Value]) -> Vec<String> {
    items
        .iter()
        .map(|m| m["subject"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// Every message of the demo user's Inbox, newest first.
async fn all_inbox(h: &Harness) -> Vec<Value> {
    let reply = h.get(&format!("{}?$top=1000", inbox())).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    values(&reply.json())
}

fn count_where(items: &[Value], f: impl Fn(&Value) -> bool) -> usize {
    items.iter().filter(|m| f(m)).count()
}

#[tokio::test]
async fn the_demo_mailbox_lists_its_top_level_folders_with_counts() {
    let h = start().await;
    let reply = h.get(&format!("/users/{DEMO_USER_UPN}/mailFolders")).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let body = reply.json();
    let demo_id = h.user_id(DEMO_USER_UPN).await;
    assert_eq!(
        body["@odata.context"],
        format!("https://graph.microsoft.com/v1.0/$metadata#users('{demo_id}')/mailFolders")
    );
    let folders = values(&body);
    let names: Vec<&str> = folders
        .iter()
        .filter_map(|f| f["displayName"].as_str())
        .collect();
    assert_eq!(
        names,
        vec![
            "Archive",
            "Deleted Items",
            "Drafts",
            "Inbox",
            "Junk Email",
            "Outbox",
            "Projects",
            "Sent Items"
        ]
    );
    let root = h
        .get(&format!("/users/{DEMO_USER_UPN}/mailFolders/msgfolderroot"))
        .await
        .json();
    let ids: HashSet<&str> = folders.iter().filter_map(|f| f["id"].as_str()).collect();
    assert_eq!(ids.len(), folders.len(), "distinct ids");
    assert!(!ids.contains(root["id"].as_str().expect("root id")));
    for f in &folders {
        assert_eq!(
            keys(f),
            sorted(vec![
                "childFolderCount",
                "displayName",
                "id",
                "isHidden",
                "parentFolderId",
                "sizeInBytes",
                "totalItemCount",
                "unreadItemCount"
            ])
        );
        assert_eq!(f["parentFolderId"], root["id"], "{f}");
        assert_eq!(f["isHidden"], false);
    }
    let by_name: HashMap<&str, &Value> = folders
        .iter()
        .map(|f| (f["displayName"].as_str().unwrap_or_default(), f))
        .collect();
    let inbox = by_name["Inbox"];
    assert_eq!(inbox["totalItemCount"], 64);
    assert_eq!(inbox["childFolderCount"], 2);
    let unread = inbox["unreadItemCount"].as_u64().expect("unread");
    assert!(unread > 0 && unread < 64, "{unread}");
    assert!(inbox["sizeInBytes"].as_u64().expect("size") > 10_000);
    for (name, total) in [
        ("Sent Items", 6),
        ("Drafts", 3),
        ("Deleted Items", 2),
        ("Archive", 2),
        ("Junk Email", 1),
        ("Outbox", 0),
        ("Projects", 2),
    ] {
        assert_eq!(by_name[name]["totalItemCount"], total, "{name}");
    }
    // The shared mailbox has its own Inbox/Orders.
    let shared = h
        .get(&format!(
            "/users/{SHARED_MAILBOX_UPN}/mailFolders/inbox/childFolders"
        ))
        .await
        .json();
    assert_eq!(subjects_of_folders(&shared), vec!["Orders"]);
    assert_eq!(values(&shared)[0]["totalItemCount"], 8);
    let shared_inbox = h
        .get(&format!("/users/{SHARED_MAILBOX_UPN}/mailFolders/inbox"))
        .await
        .json();
    assert_eq!(shared_inbox["totalItemCount"], 30);
}

fn subjects_of_folders(body: &Value) -> Vec<String> {
    values(body)
        .iter()
        .map(|f| f["displayName"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[tokio::test]
async fn well_known_names_work_wherever_a_folder_id_does() {
    let h = start().await;
    let base = format!("/users/{DEMO_USER_UPN}/mailFolders");
    let inbox = h.get(&format!("{base}/inbox")).await.json();
    let id = inbox["id"].as_str().expect("id").to_string();
    assert_eq!(inbox["displayName"], "Inbox");
    for spelling in ["Inbox", "INBOX", &enc(&id)] {
        let again = h.get(&format!("{base}/{spelling}")).await;
        assert_eq!(again.status, StatusCode::OK, "{spelling}");
        assert_eq!(again.json()["id"], id.as_str());
    }
    let by_name = h.get(&format!("{base}/inbox/messages?$top=5")).await.json();
    let by_id = h
        .get(&format!("{base}/{}/messages?$top=5", enc(&id)))
        .await
        .json();
    assert_eq!(values(&by_name), values(&by_id));
    for wk in [
        "sentitems",
        "drafts",
        "deleteditems",
        "junkemail",
        "archive",
        "outbox",
    ] {
        let f = h.get(&format!("{base}/{wk}")).await;
        assert_eq!(f.status, StatusCode::OK, "{wk}");
        assert_eq!(f.json()["parentFolderId"], inbox["parentFolderId"]);
    }
    let children = h.get(&format!("{base}/inbox/childFolders")).await.json();
    assert_eq!(subjects_of_folders(&children), vec!["Invoices", "Orders"]);
    for c in values(&children) {
        assert_eq!(c["parentFolderId"], id.as_str());
    }
    // A display name is not an id; an id-shaped key that names no folder is not found.
    let by_display_name = h.get(&format!("{base}/Orders")).await;
    assert_eq!(by_display_name.status, StatusCode::BAD_REQUEST);
    assert_eq!(by_display_name.error_code(), "ErrorInvalidIdMalformed");
    let missing = h
        .get(&format!(
            "{base}/AQMkADAwATNiZmYAZC1hMjc0LTYyZGEtMDACLTAwCgAuAAAD"
        ))
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(missing.error_code(), "ErrorItemNotFound");
}

#[tokio::test]
async fn messages_page_ten_at_a_time_with_skip_next_links_and_count() {
    let h = start().await;
    let reply = h.get(&format!("{}?$count=true", inbox())).await;
    assert_eq!(reply.status, StatusCode::OK);
    let body = reply.json();
    assert_eq!(values(&body).len(), 10);
    assert_eq!(body["@odata.count"], 64);
    let next = body["@odata.nextLink"].as_str().expect("nextLink");
    assert_eq!(
        next,
        format!("{}{}?$count=true&$skip=10", h.emu.graph_url(), inbox())
    );
    let (items, pages) = h.get_all(&inbox(), &[]).await;
    assert_eq!(items.len(), 64);
    assert_eq!(pages, 7);
    let ids: HashSet<&str> = items.iter().filter_map(|m| m["id"].as_str()).collect();
    assert_eq!(ids.len(), 64);
    let received: Vec<&str> = items
        .iter()
        .filter_map(|m| m["receivedDateTime"].as_str())
        .collect();
    let mut sorted_desc = received.clone();
    sorted_desc.sort_unstable_by(|a, b| b.cmp(a));
    assert_eq!(received, sorted_desc, "newest first by default");

    // $top and $skip, kept in the nextLink.
    let page = h.get(&format!("{}?$top=7&$skip=14", inbox())).await.json();
    assert_eq!(values(&page)[0]["id"], items[14]["id"]);
    assert!(
        page["@odata.nextLink"]
            .as_str()
            .expect("next")
            .ends_with("?$top=7&$skip=21")
    );
    assert_eq!(
        values(&h.get(&format!("{}?$top=1000", inbox())).await.json()).len(),
        64
    );
    for bad in ["$top=0", "$top=1001", "$top=x", "$skip=-1"] {
        let reply = h.get(&format!("{}?{bad}", inbox())).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{bad}");
        assert_eq!(reply.error_code(), "ErrorInvalidArgument", "{bad}");
    }
    // /messages spans every folder.
    let all = h
        .get(&format!(
            "/users/{DEMO_USER_UPN}/messages?$count=true&$top=1"
        ))
        .await
        .json();
    assert_eq!(all["@odata.count"], 87);
}

#[tokio::test]
async fn the_demo_inbox_has_the_documented_seed() {
    let h = start().await;
    let items = all_inbox(&h).await;
    assert!(items.len() >= 60);
    let from = |m: &Value| {
        m["from"]["emailAddress"]["address"]
            .as_str()
            .unwrap_or_default()
            .to_ascii_lowercase()
    };
    let internal: Vec<&Value> = items
        .iter()
        .filter(|m| from(m).ends_with(&format!("@{TENANT_DOMAIN}")))
        .collect();
    assert!(internal.len() >= 50, "{}", internal.len());
    let senders: HashSet<String> = internal.iter().map(|m| from(m)).collect();
    assert!(
        senders.len() >= 30,
        "distinct-ish senders: {}",
        senders.len()
    );
    assert!(!senders.contains(DEMO_USER_UPN));
    let externals: HashSet<String> = items
        .iter()
        .map(from)
        .filter(|a| !a.ends_with(&format!("@{TENANT_DOMAIN}")))
        .collect();
    assert!(
        externals
            .iter()
            .any(|a| a.ends_with("@contoso-partners.example"))
    );
    assert!(externals.iter().any(|a| a.ends_with("@fabrikam.example")));

    // Senders sharing a manager, and senders without one.
    let mut managers: HashMap<String, usize> = HashMap::new();
    let mut without = 0;
    for s in &senders {
        let reply = h.get(&format!("/users/{s}/manager?$select=id")).await;
        if reply.status == StatusCode::NOT_FOUND {
            without += 1;
        } else {
            *managers
                .entry(reply.json()["id"].as_str().unwrap_or_default().to_string())
                .or_default() += 1;
        }
    }
    assert!(without >= 2, "the CEO and the shared mailbox");
    assert!(managers.values().any(|n| *n >= 3), "{managers:?}");

    // Threads.
    let mut threads: HashMap<&str, Vec<&Value>> = HashMap::new();
    for m in &items {
        threads
            .entry(m["conversationId"].as_str().expect("conversationId"))
            .or_default()
            .push(m);
    }
    let long: Vec<&Vec<&Value>> = threads.values().filter(|t| t.len() >= 2).collect();
    assert!(long.len() >= 4, "{}", long.len());
    for thread in long {
        let replies: Vec<&&Value> = thread
            .iter()
            .filter(|m| {
                m["subject"]
                    .as_str()
                    .unwrap_or_default()
                    .starts_with("RE: ")
            })
            .collect();
        assert!(!replies.is_empty());
        let index_len = |m: &Value| {
            STANDARD
                .decode(m["conversationIndex"].as_str().expect("index"))
                .expect("base64")
                .len()
        };
        let shortest = thread.iter().map(|m| index_len(m)).min().unwrap_or(0);
        let longest = thread.iter().map(|m| index_len(m)).max().unwrap_or(0);
        assert_eq!(shortest, 22);
        assert!(longest >= 27);
    }

    // The variety the gateway's tests can lean on.
    assert!(count_where(&items, |m| m["hasAttachments"] == true) >= 8);
    assert!(count_where(&items, |m| m["isRead"] == false) >= 5);
    assert!(count_where(&items, |m| m["isRead"] == true) >= 20);
    for importance in ["high", "low", "normal"] {
        assert!(count_where(&items, |m| m["importance"] == importance) >= 2);
    }
    for status in ["flagged", "complete", "notFlagged"] {
        assert!(count_where(&items, |m| m["flag"]["flagStatus"] == status) >= 2);
    }
    for category in ["Red category", "Orders", "Blue category"] {
        assert!(
            count_where(&items, |m| {
                m["categories"]
                    .as_array()
                    .is_some_and(|c| c.iter().any(|c| c == category))
            }) >= 1
        );
    }
    assert!(count_where(&items, |m| m["inferenceClassification"] == "other") >= 2);
    assert!(
        count_where(&items, |m| !m["replyTo"]
            .as_array()
            .expect("replyTo")
            .is_empty())
            >= 1
    );
    assert!(
        count_where(&items, |m| !m["ccRecipients"]
            .as_array()
            .expect("cc")
            .is_empty())
            >= 5
    );
    // Dates spread over weeks, never in the future.
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let times: Vec<i64> = items
        .iter()
        .map(|m| {
            time::OffsetDateTime::parse(
                m["receivedDateTime"].as_str().expect("date"),
                &time::format_description::well_known::Rfc3339,
            )
            .expect("RFC 3339")
            .unix_timestamp()
        })
        .collect();
    let span = times.iter().max().unwrap_or(&0) - times.iter().min().unwrap_or(&0);
    assert!(span > 30 * 86_400, "{span}");
    assert!(times.iter().all(|t| *t <= now));
    // Outlook-shaped ids that need percent-encoding care.
    for m in &items {
        let id = m["id"].as_str().expect("id");
        assert!(
            id.starts_with("AAMkAD") && id.ends_with('=') && id.len() > 60,
            "{id}"
        );
        assert!(
            m["internetMessageId"]
                .as_str()
                .is_some_and(|i| i.starts_with('<') && i.ends_with('>') && i.contains('@'))
        );
        assert!(
            m["webLink"]
                .as_str()
                .is_some_and(|w| w.starts_with("https://outlook.office365.com/owa/?ItemID="))
        );
        assert!(
            m["bodyPreview"]
                .as_str()
                .is_some_and(|p| !p.is_empty() && p.chars().count() <= 255)
        );
    }
    assert!(items.iter().any(|m| {
        let id = m["id"].as_str().unwrap_or_default();
        id.contains('-') || id.contains('_')
    }));
    // An apostrophe and non-ASCII characters in subjects.
    let all = subjects(&items);
    assert!(all.iter().any(|s| s.contains('\'')));
    assert!(all.iter().any(|s| !s.is_ascii()));
}

#[tokio::test]
async fn filters_cover_dates_booleans_strings_and_lambdas() {
    let h = start().await;
    let items = all_inbox(&h).await;
    let filtered = |filter: String| {
        let h = &h;
        async move {
            let reply = h
                .get(&format!("{}?$top=1000&$filter={filter}", inbox()))
                .await;
            assert_eq!(reply.status, StatusCode::OK, "{filter}: {}", reply.text);
            values(&reply.json())
        }
    };
    let ids = |list: &[Value]| -> Vec<String> {
        list.iter()
            .map(|m| m["id"].as_str().unwrap_or_default().to_string())
            .collect()
    };
    let expect = |f: &dyn Fn(&Value) -> bool| -> Vec<String> {
        ids(&items.iter().filter(|m| f(m)).cloned().collect::<Vec<_>>())
    };

    assert_eq!(
        ids(&filtered("isRead eq false".into()).await),
        expect(&|m| m["isRead"] == false)
    );
    assert_eq!(
        ids(&filtered("not(isRead eq true)".into()).await),
        expect(&|m| m["isRead"] == false)
    );
    assert_eq!(
        ids(&filtered("hasAttachments eq true".into()).await),
        expect(&|m| m["hasAttachments"] == true)
    );
    assert_eq!(
        ids(&filtered("importance eq 'high'".into()).await),
        expect(&|m| m["importance"] == "high")
    );
    let middle = items[30]["receivedDateTime"]
        .as_str()
        .expect("date")
        .to_string();
    let newer = filtered(format!("receivedDateTime ge {middle}")).await;
    assert_eq!(
        ids(&newer),
        expect(&|m| m["receivedDateTime"].as_str() >= Some(middle.as_str()))
    );
    assert_eq!(newer.len(), 31);
    let strictly = filtered(format!(
        "receivedDateTime gt {middle} and receivedDateTime le {}",
        items[0]["receivedDateTime"].as_str().expect("d")
    ))
    .await;
    assert_eq!(strictly.len(), 30);
    let sender = items[3]["from"]["emailAddress"]["address"]
        .as_str()
        .expect("from")
        .to_string();
    assert_eq!(
        ids(&filtered(format!(
            "from/emailAddress/address eq '{}'",
            sender.to_uppercase()
        ))
        .await),
        expect(&|m| m["from"]["emailAddress"]["address"] == sender.as_str())
    );
    assert_eq!(
        ids(&filtered("startswith(subject,'RE:')".into()).await),
        // Case-insensitive, as in Exchange ("Re: Weekly sync moved" too).
        expect(&|m| m["subject"]
            .as_str()
            .unwrap_or_default()
            .to_lowercase()
            .starts_with("re:"))
    );
    assert_eq!(
        ids(&filtered("contains(subject,'invoice')".into()).await),
        expect(&|m| m["subject"]
            .as_str()
            .unwrap_or_default()
            .to_lowercase()
            .contains("invoice"))
    );
    assert_eq!(
        ids(&filtered("categories/any(c:c eq 'Red category')".into()).await),
        expect(&|m| m["categories"]
            .as_array()
            .is_some_and(|c| c.iter().any(|c| c == "Red category")))
    );
    let cc_only = filtered(format!(
        "ccRecipients/any(r:r/emailAddress/address eq '{DEMO_USER_UPN}')"
    ))
    .await;
    assert!(!cc_only.is_empty());
    let to_me = filtered(format!(
        "toRecipients/any(r:r/emailAddress/address eq '{DEMO_USER_UPN}')"
    ))
    .await;
    assert_eq!(to_me.len() + cc_only.len(), items.len());
    assert_eq!(
        ids(&filtered(
            "flag/flagStatus eq 'flagged' and (importance eq 'high' or isRead eq false)".into()
        )
        .await),
        expect(&|m| m["flag"]["flagStatus"] == "flagged"
            && (m["importance"] == "high" || m["isRead"] == false))
    );
    let quoted = filtered("subject eq 'Let''s review the O''Brien account'".into()).await;
    assert!(!quoted.is_empty());
    assert!(
        subjects(&quoted)
            .iter()
            .all(|s| s == "Let's review the O'Brien account")
    );
    let conversation = items[0]["conversationId"]
        .as_str()
        .expect("conv")
        .to_string();
    assert_eq!(
        ids(&filtered(format!("conversationId eq '{conversation}'")).await),
        expect(&|m| m["conversationId"] == conversation.as_str())
    );
    assert_eq!(
        ids(&filtered("inferenceClassification eq 'other' and isDraft eq false".into()).await),
        expect(&|m| m["inferenceClassification"] == "other")
    );
}

#[tokio::test]
async fn bad_filters_are_400s_naming_the_problem() {
    let h = start().await;
    for (filter, code, needle) in [
        ("foo eq 'x'", "BadRequest", "foo"),
        ("subject eq", "BadRequest", "Syntax error"),
        ("isRead eq 'yes'", "BadRequest", "incompatible types"),
        (
            "receivedDateTime ge '2024-01-01T00:00:00Z'",
            "BadRequest",
            "incompatible types",
        ),
        (
            "receivedDateTime ge 2024-13-01T00:00:00Z",
            "BadRequest",
            "DateTimeOffset",
        ),
        (
            "endswith(subject,'x')",
            "ErrorInvalidUrlQueryFilter",
            "invalid nodes",
        ),
        (
            "categories/all(c:c eq 'x')",
            "ErrorInvalidUrlQueryFilter",
            "invalid nodes",
        ),
        (
            "toRecipients/any(r:r/emailAddress/nope eq 'x')",
            "ErrorInvalidUrlQueryFilter",
            "invalid nodes",
        ),
        (
            "from/emailAddress/phone eq 'x'",
            "BadRequest",
            "from/emailAddress/phone",
        ),
    ] {
        let reply = h.get(&format!("{}?$filter={filter}", inbox())).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{filter}");
        assert_eq!(reply.error_code(), code, "{filter}: {}", reply.text);
        assert!(
            reply.error_message().contains(needle),
            "{filter}: {}",
            reply.error_message()
        );
    }
}

#[tokio::test]
async fn filter_with_orderby_must_lead_with_the_sort_properties() {
    let h = start().await;
    let ok = |q: &'static str| {
        let h = &h;
        async move {
            let reply = h.get(&format!("{}?$top=1000&{q}", inbox())).await;
            assert_eq!(reply.status, StatusCode::OK, "{q}: {}", reply.text);
            values(&reply.json())
        }
    };
    let list = ok("$filter=receivedDateTime ge 2000-01-01T00:00:00Z and isRead eq false&$orderby=receivedDateTime asc").await;
    let dates: Vec<&str> = list
        .iter()
        .filter_map(|m| m["receivedDateTime"].as_str())
        .collect();
    let mut ascending = dates.clone();
    ascending.sort_unstable();
    assert_eq!(dates, ascending);
    assert!(list.iter().all(|m| m["isRead"] == false));
    ok("$filter=importance eq 'high' and subject ne 'x'&$orderby=importance desc,subject").await;
    ok("$filter=isRead eq false&$orderby=isRead").await;
    for q in [
        "$filter=isRead eq false&$orderby=receivedDateTime desc",
        "$filter=isRead eq false and receivedDateTime ge 2000-01-01T00:00:00Z&$orderby=receivedDateTime desc",
        "$filter=subject ne 'x' and importance eq 'high'&$orderby=importance,subject",
    ] {
        let reply = h.get(&format!("{}?{q}", inbox())).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{q}");
        assert_eq!(reply.error_code(), "InefficientFilter");
        assert_eq!(
            reply.error_message(),
            "The restriction or sort order is too complex for this operation."
        );
    }
    // $orderby alone sorts freely.
    let by_importance = ok("$orderby=importance desc").await;
    let rank = |m: &Value| match m["importance"].as_str() {
        Some("high") => 2,
        Some("normal") => 1,
        _ => 0,
    };
    assert!(by_importance.windows(2).all(|w| rank(&w[0]) >= rank(&w[1])));
    let by_sender = ok("$orderby=from/emailAddress/name").await;
    let names: Vec<String> = by_sender
        .iter()
        .map(|m| {
            m["from"]["emailAddress"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_lowercase()
        })
        .collect();
    assert!(names.windows(2).all(|w| w[0] <= w[1]));
    let by_subject = ok("$orderby=subject desc").await;
    let s = subjects(&by_subject);
    assert!(
        s.windows(2)
            .all(|w| w[0].to_lowercase() >= w[1].to_lowercase())
    );
    let reply = h.get(&format!("{}?$orderby=body", inbox())).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn search_matches_words_and_kql_properties_newest_first() {
    let h = start().await;
    let items = all_inbox(&h).await;
    let search = |q: String| {
        let h = &h;
        async move {
            let reply = h.get(&format!("{}?$top=1000&$search={q}", inbox())).await;
            assert_eq!(reply.status, StatusCode::OK, "{q}: {}", reply.text);
            values(&reply.json())
        }
    };
    let invoices = search("\"invoice\"".into()).await;
    assert!(!invoices.is_empty());
    for m in &invoices {
        let text = format!("{} {} {}", m["subject"], m["from"], m["bodyPreview"]).to_lowercase();
        assert!(text.contains("invoice"), "{text}");
    }
    let from_priya = search("\"from:priya\"".into()).await;
    assert!(!from_priya.is_empty());
    assert!(from_priya.iter().all(|m| {
        let from = m["from"]["emailAddress"].to_string().to_lowercase();
        from.contains("priya")
    }));
    assert!(
        from_priya
            .iter()
            .any(|m| m["from"]["emailAddress"]["name"] == "Priya Natarajan")
    );
    let subject = search("\"subject:forecast\"".into()).await;
    assert!(!subject.is_empty());
    assert!(
        subjects(&subject)
            .iter()
            .all(|s| s.to_lowercase().contains("forecast"))
    );
    let with_files = search("\"hasAttachments:true\"".into()).await;
    assert_eq!(
        with_files.len(),
        count_where(&items, |m| m["hasAttachments"] == true)
    );
    let either = search("\"subject:forecast OR subject:invoice\"".into()).await;
    assert_eq!(
        either.len(),
        count_where(&items, |m| {
            let s = m["subject"].as_str().unwrap_or_default().to_lowercase();
            s.split(|c: char| !c.is_alphanumeric())
                .any(|w| w.starts_with("forecast") || w.starts_with("invoice"))
        })
    );
    let both = search("\"subject:RE AND from:kestrelridge\"".into()).await;
    assert!(!both.is_empty());
    // KQL matches word prefixes: "RE" finds "RE: …", "Release", "Return", "review".
    assert!(both.iter().all(|m| {
        let s = m["subject"].as_str().unwrap_or_default().to_lowercase();
        s.split(|c: char| !c.is_alphanumeric())
            .any(|w| w.starts_with("re"))
            && m["from"]["emailAddress"]["address"]
                .as_str()
                .unwrap_or_default()
                .ends_with("@kestrelridge.example")
    }));
    let day = &items[5]["receivedDateTime"].as_str().expect("date")[..10];
    let since = search(format!("\"received>={day}\"")).await;
    assert_eq!(
        since.len(),
        count_where(&items, |m| m["receivedDateTime"]
            .as_str()
            .unwrap_or_default()[..10]
            >= *day)
    );
    let dates: Vec<&str> = since
        .iter()
        .filter_map(|m| m["receivedDateTime"].as_str())
        .collect();
    assert!(dates.windows(2).all(|w| w[0] >= w[1]), "newest first");
    assert!(search("\"zzzz-nothing-matches\"".into()).await.is_empty());

    for (q, needle) in [
        (
            "$search=\"invoice\"&$filter=isRead eq true",
            "'$filter' is not supported with '$search'",
        ),
        (
            "$search=\"invoice\"&$orderby=subject",
            "'$orderby' is not supported with '$search'",
        ),
        ("$search=invoice", "double quotes"),
        ("$search=\"a OR\"", "ends with an operator"),
    ] {
        let reply = h.get(&format!("{}?{q}", inbox())).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{q}");
        assert!(
            reply.error_message().contains(needle),
            "{q}: {}",
            reply.error_message()
        );
    }
}

#[tokio::test]
async fn search_returns_at_most_250_results() {
    let h = start().await;
    let to = json!([{"emailAddress": {"address": SHARED_MAILBOX_UPN}}]);
    // 13 batches of 20 sendMail items: 260 messages in the shared mailbox's Inbox.
    for batch in 0..13 {
        let requests: Vec<Value> = (0..20)
            .map(|i| {
                json!({
                    "id": (i + 1).to_string(),
                    "method": "POST",
                    "url": format!("/users/{DEMO_USER_UPN}/sendMail"),
                    "headers": {"Content-Type": "application/json"},
                    "body": {"message": {
                        "subject": format!("capacity check {}", batch * 20 + i),
                        "body": {"contentType": "Text", "content": "load"},
                        "toRecipients": to,
                    }, "saveToSentItems": false},
                })
            })
            .collect();
        let reply = h.batch(&json!({ "requests": requests })).await;
        assert_eq!(reply.status, StatusCode::OK);
        for r in reply.json()["responses"].as_array().expect("responses") {
            assert_eq!(r["status"], 202, "{r}");
        }
    }
    let base =
        format!("/users/{SHARED_MAILBOX_UPN}/messages?$search=\"capacity\"&$top=100&$select=id");
    let (found, pages) = h.get_all(&base, &[]).await;
    assert_eq!(found.len(), 250);
    assert_eq!(pages, 3);
    let counted = h.get(&format!("{base}&$count=true")).await.json();
    assert_eq!(counted["@odata.count"], 250);
}

#[tokio::test]
async fn select_returns_only_the_named_properties_plus_id_and_etag() {
    let h = start().await;
    let reply = h
        .get(&format!("{}?$select=subject,from&$top=3", inbox()))
        .await;
    let body = reply.json();
    assert!(
        body["@odata.context"]
            .as_str()
            .expect("context")
            .ends_with("/messages(subject,from)")
    );
    for m in values(&body) {
        assert_eq!(
            keys(&m),
            sorted(vec!["@odata.etag", "from", "id", "subject"])
        );
        assert!(m["@odata.etag"].as_str().expect("etag").starts_with("W/\""));
    }
    let default = values(&h.get(&format!("{}?$top=1", inbox())).await.json());
    assert_eq!(
        keys(&default[0]),
        sorted(vec![
            "@odata.etag",
            "bccRecipients",
            "body",
            "bodyPreview",
            "categories",
            "ccRecipients",
            "changeKey",
            "conversationId",
            "conversationIndex",
            "createdDateTime",
            "flag",
            "from",
            "hasAttachments",
            "id",
            "importance",
            "inferenceClassification",
            "internetMessageId",
            "isDeliveryReceiptRequested",
            "isDraft",
            "isRead",
            "isReadReceiptRequested",
            "lastModifiedDateTime",
            "parentFolderId",
            "receivedDateTime",
            "replyTo",
            "sender",
            "sentDateTime",
            "subject",
            "toRecipients",
            "webLink",
        ])
    );
    let id = default[0]["id"].as_str().expect("id");
    let single = h
        .get(&format!(
            "/users/{DEMO_USER_UPN}/messages/{}?$select=internetMessageHeaders,uniqueBody",
            enc(id)
        ))
        .await
        .json();
    assert!(
        !single["internetMessageHeaders"]
            .as_array()
            .expect("headers")
            .is_empty()
    );
    assert!(single["uniqueBody"]["content"].is_string());
    let bad = h.get(&format!("{}?$select=subject,nope", inbox())).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(bad.error_message().contains("'nope'"));
}

#[tokio::test]
async fn prefer_body_content_type_converts_bodies_and_is_echoed() {
    let h = start().await;
    let html = h.get(&format!("{}?$top=20&$select=body", inbox())).await;
    assert!(html.header("preference-applied").is_none());
    for m in values(&html.json()) {
        assert_eq!(m["body"]["contentType"], "html");
        assert!(
            m["body"]["content"]
                .as_str()
                .expect("content")
                .contains("<html")
        );
    }
    let text = h
        .get_with(
            &format!("{}?$top=20&$select=body,bodyPreview", inbox()),
            &[("Prefer", "outlook.body-content-type=\"text\"")],
        )
        .await;
    assert_eq!(
        text.header("preference-applied"),
        Some("outlook.body-content-type=\"text\"")
    );
    for m in values(&text.json()) {
        assert_eq!(m["body"]["contentType"], "text");
        let content = m["body"]["content"].as_str().expect("content");
        assert!(
            !content.contains('<') && content.starts_with("Hi "),
            "{content}"
        );
    }
    let explicit_html = h
        .get_with(
            &format!("{}?$top=1", inbox()),
            &[("Prefer", "outlook.body-content-type=\"html\"")],
        )
        .await;
    assert_eq!(
        explicit_html.header("preference-applied"),
        Some("outlook.body-content-type=\"html\"")
    );
}

#[tokio::test]
async fn attachments_list_get_and_value_return_the_bytes() {
    let h = start().await;
    let with = values(
        &h.get(&format!(
            "{}?$filter=hasAttachments eq true&$top=1",
            inbox()
        ))
        .await
        .json(),
    );
    let id = with[0]["id"].as_str().expect("id").to_string();
    let base = format!("/users/{DEMO_USER_UPN}/messages/{}/attachments", enc(&id));
    let list = h.get(&base).await;
    assert_eq!(list.status, StatusCode::OK);
    let attachments = values(&list.json());
    assert!(!attachments.is_empty());
    let a = &attachments[0];
    assert_eq!(a["@odata.type"], "#microsoft.graph.fileAttachment");
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
        assert!(a.get(key).is_some(), "{key} in {a}");
    }
    let bytes = STANDARD
        .decode(a["contentBytes"].as_str().expect("bytes"))
        .expect("base64");
    assert_eq!(a["size"], bytes.len());
    let aid = a["id"].as_str().expect("aid");
    let single = h.get(&format!("{base}/{}", enc(aid))).await.json();
    assert_eq!(single["name"], a["name"]);
    let raw = h
        .client
        .get(format!("{}{base}/{}/$value", h.emu.graph_url(), enc(aid)))
        .bearer_auth(&h.token)
        .send()
        .await
        .expect("value");
    assert_eq!(raw.status(), StatusCode::OK);
    assert_eq!(
        raw.headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        a["contentType"].as_str()
    );
    assert_eq!(raw.bytes().await.expect("bytes").to_vec(), bytes);
    let missing = h.get(&format!("{base}/AAMkADnope=")).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(missing.error_code(), "ErrorItemNotFound");
}

#[tokio::test]
async fn expand_attachments_on_lists_and_single_messages_honours_select() {
    let h = start().await;
    let list = h
        .get(&format!(
            "{}?$filter=hasAttachments eq true&$top=3&$expand=attachments",
            inbox()
        ))
        .await;
    assert_eq!(list.status, StatusCode::OK, "{}", list.text);
    for m in values(&list.json()) {
        let a = m["attachments"].as_array().expect("attachments");
        assert!(!a.is_empty());
        assert!(a[0]["contentBytes"].is_string());
    }
    let first = values(&list.json())[0]["id"]
        .as_str()
        .expect("id")
        .to_string();
    let single = h
        .get(&format!(
            "/users/{DEMO_USER_UPN}/messages/{}?$expand=attachments($select=id,name,contentType,size,isInline)",
            enc(&first)
        ))
        .await
        .json();
    for a in single["attachments"].as_array().expect("attachments") {
        assert_eq!(
            keys(a),
            sorted(vec![
                "@odata.mediaContentType",
                "@odata.type",
                "contentType",
                "id",
                "isInline",
                "name",
                "size"
            ])
        );
    }
    for bad in [
        "$expand=manager",
        "$expand=subject",
        "$expand=attachments($top=1)",
    ] {
        let reply = h.get(&format!("{}?{bad}", inbox())).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{bad}");
    }
}

#[tokio::test]
async fn a_message_by_id_and_its_mime_content() {
    let h = start().await;
    let items = values(
        &h.get(&format!(
            "{}?$filter=hasAttachments eq true&$top=1",
            inbox()
        ))
        .await
        .json(),
    );
    let m = &items[0];
    let id = m["id"].as_str().expect("id");
    let demo_id = h.user_id(DEMO_USER_UPN).await;
    let single = h
        .get(&format!("/users/{DEMO_USER_UPN}/messages/{}", enc(id)))
        .await;
    assert_eq!(single.status, StatusCode::OK);
    let body = single.json();
    assert_eq!(
        body["@odata.context"],
        format!("https://graph.microsoft.com/v1.0/$metadata#users('{demo_id}')/messages/$entity")
    );
    assert_eq!(body["id"], id);
    // The same message under its folder; an unencoded id works too.
    let under_folder = h.get(&format!("{}/{id}", inbox())).await;
    assert_eq!(under_folder.json()["id"], id);
    let mime = h
        .get(&format!(
            "/users/{DEMO_USER_UPN}/messages/{}/$value",
            enc(id)
        ))
        .await;
    assert_eq!(mime.status, StatusCode::OK);
    assert_eq!(mime.header("content-type"), Some("text/plain"));
    for needle in [
        "From: ",
        "Subject: ",
        "Message-ID: <",
        "MIME-Version: 1.0",
        "multipart/mixed",
        "Content-Disposition: attachment",
    ] {
        assert!(mime.text.contains(needle), "{needle}");
    }
    let missing = h
        .get(&format!("/users/{DEMO_USER_UPN}/messages/AAMkADk0MGFkODE3LWE4MmYtNDRhOS0Dh_6qB-pB2Sa2pUum19a6YAAKnLuxoAAA="))
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(missing.error_code(), "ErrorItemNotFound");
    assert_eq!(
        missing.error_message(),
        "The specified object was not found in the store."
    );
    let collection_option = h
        .get(&format!(
            "/users/{DEMO_USER_UPN}/messages/{}?$top=1",
            enc(id)
        ))
        .await;
    assert_eq!(collection_option.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn mailboxes_are_addressed_by_id_upn_alias_and_me() {
    let h = start().await;
    let demo_id = h.user_id(DEMO_USER_UPN).await;
    let first = |body: Value| values(&body)[0]["id"].clone();
    let by_upn = first(
        h.get(&format!("/users/{DEMO_USER_UPN}/messages?$top=1"))
            .await
            .json(),
    );
    let by_id = first(
        h.get(&format!("/users/{demo_id}/messages?$top=1"))
            .await
            .json(),
    );
    let by_alias = first(
        h.get(&format!(
            "/users/TGreaves@{}/messages?$top=1",
            TENANT_DOMAIN.to_uppercase()
        ))
        .await
        .json(),
    );
    let token = h
        .emu
        .emulator
        .issue_delegated_token(DEFAULT_CLIENT_ID, DEMO_USER_UPN, &["Mail.Read"])
        .expect("token");
    let me = h
        .call(Method::GET, "/me/messages?$top=1", None, Some(&token), &[])
        .await;
    assert_eq!(me.status, StatusCode::OK, "{}", me.text);
    assert_eq!(by_upn, by_id);
    assert_eq!(by_upn, by_alias);
    assert_eq!(by_upn, first(me.json()));
    // /me needs a delegated token.
    let app_me = h.get("/me/messages").await;
    assert_eq!(app_me.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn guests_have_no_mailbox_and_unknown_users_are_invalid() {
    let h = start().await;
    let guests = h
        .get("/users?$filter=userType eq 'Guest'&$select=userPrincipalName")
        .await
        .json();
    let guest = values(&guests)[0]["userPrincipalName"]
        .as_str()
        .expect("guest")
        .to_string();
    assert!(guest.contains("#EXT#"));
    for path in [
        "messages",
        "mailFolders",
        "mailFolders/inbox/messages/delta",
    ] {
        let reply = h.get(&format!("/users/{}/{path}", enc(&guest))).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(reply.error_code(), "MailboxNotEnabledForRESTAPI");
        assert_eq!(
            reply.error_message(),
            "The mailbox is either inactive, soft-deleted, or is hosted on-premise."
        );
    }
    let unknown = h.get("/users/nobody@kestrelridge.example/messages").await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert_eq!(unknown.error_code(), "ErrorInvalidUser");
}

#[tokio::test]
async fn an_app_without_mail_permissions_gets_error_access_denied() {
    let h = start().await;
    let emulator = &h.emu.emulator;
    emulator.register_app(AppRegistration::confidential(
        "11111111-2222-3333-4444-555555555555",
        "reader-secret",
        "directory reader",
        ["User.Read.All"],
    ));
    emulator.register_app(AppRegistration::confidential(
        "66666666-7777-8888-9999-000000000000",
        "mail-reader-secret",
        "mail reader",
        ["Mail.Read"],
    ));
    let base = h.emu.base_url();
    let directory_only = fetch_token(
        &h.client,
        &base,
        "11111111-2222-3333-4444-555555555555",
        "reader-secret",
    )
    .await;
    let mail_reader = fetch_token(
        &h.client,
        &base,
        "66666666-7777-8888-9999-000000000000",
        "mail-reader-secret",
    )
    .await;
    let messages = format!("/users/{DEMO_USER_UPN}/messages");
    let denied = h
        .call(Method::GET, &messages, None, Some(&directory_only), &[])
        .await;
    assert_eq!(denied.status, StatusCode::FORBIDDEN);
    assert_eq!(denied.error_code(), "ErrorAccessDenied");
    assert_eq!(
        denied.error_message(),
        "Access is denied. Check credentials and try again."
    );
    // The directory is still readable with that token.
    let user = h
        .call(
            Method::GET,
            &format!("/users/{DEMO_USER_UPN}"),
            None,
            Some(&directory_only),
            &[],
        )
        .await;
    assert_eq!(user.status, StatusCode::OK);

    let read = h
        .call(Method::GET, &messages, None, Some(&mail_reader), &[])
        .await;
    assert_eq!(read.status, StatusCode::OK);
    let id = values(&read.json())[0]["id"]
        .as_str()
        .expect("id")
        .to_string();
    for (method, path, body) in [
        (
            Method::PATCH,
            format!("{messages}/{}", enc(&id)),
            json!({"isRead": true}),
        ),
        (
            Method::POST,
            format!("/users/{DEMO_USER_UPN}/sendMail"),
            json!({"message": {"toRecipients": [{"emailAddress": {"address": "a@b.example"}}]}}),
        ),
        (
            Method::POST,
            format!("{messages}/{}/reply", enc(&id)),
            json!({"comment": "x"}),
        ),
        (
            Method::POST,
            format!("/users/{DEMO_USER_UPN}/mailFolders"),
            json!({"displayName": "x"}),
        ),
    ] {
        let reply = h
            .call(method.clone(), &path, Some(&body), Some(&mail_reader), &[])
            .await;
        assert_eq!(reply.status, StatusCode::FORBIDDEN, "{method} {path}");
        assert_eq!(reply.error_code(), "ErrorAccessDenied");
    }
}

#[tokio::test]
async fn delegated_tokens_need_mail_scopes_and_shared_scopes_for_other_mailboxes() {
    let h = start().await;
    let emulator = &h.emu.emulator;
    let token = |scopes: &[&str]| {
        emulator
            .issue_delegated_token(DEFAULT_CLIENT_ID, DEMO_USER_UPN, scopes)
            .expect("token")
    };
    let read_only = token(&["User.Read", "Mail.Read"]);
    let demo_id = h.user_id(DEMO_USER_UPN).await;
    let get = |path: String, t: String| {
        let h = &h;
        async move { h.call(Method::GET, &path, None, Some(&t), &[]).await }
    };
    assert_eq!(
        get("/me/messages".into(), read_only.clone()).await.status,
        StatusCode::OK
    );
    // Naming oneself by id or address needs no .Shared scope.
    assert_eq!(
        get(format!("/users/{demo_id}/mailFolders"), read_only.clone())
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        get(
            format!("/users/tgreaves@{TENANT_DOMAIN}/messages"),
            read_only.clone()
        )
        .await
        .status,
        StatusCode::OK
    );
    let other = get(
        format!("/users/{SHARED_MAILBOX_UPN}/messages"),
        read_only.clone(),
    )
    .await;
    assert_eq!(other.status, StatusCode::FORBIDDEN);
    assert_eq!(other.error_code(), "ErrorAccessDenied");
    let shared = token(&["Mail.Read.Shared"]);
    assert_eq!(
        get(format!("/users/{SHARED_MAILBOX_UPN}/messages"), shared)
            .await
            .status,
        StatusCode::OK
    );

    let send = json!({"message": {"subject": "x", "toRecipients": [{"emailAddress": {"address": SHARED_MAILBOX_UPN}}]}});
    let no_send = h
        .call(
            Method::POST,
            "/me/sendMail",
            Some(&send),
            Some(&read_only),
            &[],
        )
        .await;
    assert_eq!(no_send.status, StatusCode::FORBIDDEN);
    assert_eq!(no_send.error_code(), "ErrorAccessDenied");
    let sender = token(&["Mail.Send"]);
    let sent = h
        .call(
            Method::POST,
            "/me/sendMail",
            Some(&send),
            Some(&sender),
            &[],
        )
        .await;
    assert_eq!(sent.status, StatusCode::ACCEPTED, "{}", sent.text);
    let as_shared = h
        .call(
            Method::POST,
            &format!("/users/{SHARED_MAILBOX_UPN}/sendMail"),
            Some(&send),
            Some(&sender),
            &[],
        )
        .await;
    assert_eq!(as_shared.status, StatusCode::FORBIDDEN);
    let send_shared = token(&["Mail.Send.Shared"]);
    let ok = h
        .call(
            Method::POST,
            &format!("/users/{SHARED_MAILBOX_UPN}/sendMail"),
            Some(&send),
            Some(&send_shared),
            &[],
        )
        .await;
    assert_eq!(ok.status, StatusCode::ACCEPTED);
    // The default app may ask Entra for the mail scopes.
    for scope in [
        "Mail.Read",
        "Mail.ReadWrite",
        "Mail.Send",
        "Mail.Read.Shared",
        "Mail.ReadWrite.Shared",
        "Mail.Send.Shared",
    ] {
        assert!(
            emulator
                .issue_delegated_token(DEFAULT_CLIENT_ID, DEMO_USER_UPN, &[scope])
                .is_some(),
            "{scope}"
        );
    }
}

#[tokio::test]
async fn mail_requests_work_as_batch_items_and_binary_bodies_come_base64() {
    let h = start().await;
    let with = values(
        &h.get(&format!(
            "{}?$filter=hasAttachments eq true&$top=1&$expand=attachments",
            inbox()
        ))
        .await
        .json(),
    );
    let m = &with[0];
    let id = m["id"].as_str().expect("id");
    let a = &m["attachments"][0];
    let aid = a["id"].as_str().expect("aid");
    h.emu.emulator.reset_stats();
    let reply = h
        .batch(&json!({"requests": [
            {"id": "1", "method": "GET", "url": format!("/users/{DEMO_USER_UPN}/mailFolders/inbox/messages?$top=2&$select=subject")},
            {"id": "2", "method": "GET", "url": format!("/users/{DEMO_USER_UPN}/mailFolders/inbox")},
            {"id": "3", "method": "GET", "url": format!("/users/{DEMO_USER_UPN}/messages/{}/attachments/{}/$value", enc(id), enc(aid))},
            {"id": "4", "method": "PATCH", "url": format!("/users/{DEMO_USER_UPN}/messages/{}", enc(id)),
             "headers": {"Content-Type": "application/json"}, "body": {"isRead": false, "categories": ["Orders"]}},
            {"id": "5", "method": "GET", "url": format!("/users/{DEMO_USER_UPN}/messages/{}?$select=isRead,categories", enc(id)), "dependsOn": ["4"]},
            {"id": "6", "method": "DELETE", "url": format!("/users/{DEMO_USER_UPN}/messages/AAMkADnothing=")},
        ]}))
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    let body = reply.json();
    let item = |i: &str| {
        body["responses"]
            .as_array()
            .expect("responses")
            .iter()
            .find(|r| r["id"] == i)
            .cloned()
            .expect("item")
    };
    assert_eq!(item("1")["status"], 200);
    assert_eq!(item("1")["body"]["value"].as_array().map(Vec::len), Some(2));
    assert_eq!(item("2")["body"]["displayName"], "Inbox");
    let binary = item("3");
    assert_eq!(binary["status"], 200);
    assert_eq!(binary["headers"]["Content-Type"], a["contentType"]);
    assert_eq!(binary["body"], a["contentBytes"]);
    assert_eq!(item("4")["status"], 200);
    assert_eq!(item("5")["body"]["isRead"], false);
    assert_eq!(item("5")["body"]["categories"], json!(["Orders"]));
    assert_eq!(item("6")["status"], 404);
    assert_eq!(item("6")["body"]["error"]["code"], "ErrorItemNotFound");
    let stats = h.emu.emulator.stats();
    assert_eq!(
        stats.batch_item_routes["GET /users/{id}/mailFolders/{id}/messages"],
        1
    );
    assert_eq!(
        stats.batch_item_routes["GET /users/{id}/messages/{id}/attachments/{id}/$value"],
        1
    );
    assert_eq!(
        stats.batch_item_routes["PATCH /users/{id}/messages/{id}"],
        1
    );
    assert_eq!(
        stats.batch_item_routes["DELETE /users/{id}/messages/{id}"],
        1
    );
}

#[tokio::test]
async fn mail_routes_are_counted_by_template_and_wrong_methods_are_405() {
    let h = start().await;
    let token = h
        .emu
        .emulator
        .issue_delegated_token(DEFAULT_CLIENT_ID, DEMO_USER_UPN, &["Mail.ReadWrite"])
        .expect("token");
    h.emu.emulator.reset_stats();
    h.get(&format!("/users/{DEMO_USER_UPN}/messages")).await;
    h.get(&format!(
        "/users/{DEMO_USER_UPN}/mailFolders/inbox/childFolders"
    ))
    .await;
    h.call(
        Method::GET,
        "/me/mailFolders/inbox/messages/delta",
        None,
        Some(&token),
        &[],
    )
    .await;
    let put = h
        .call(
            Method::PUT,
            &format!("/users/{DEMO_USER_UPN}/messages"),
            Some(&json!({})),
            None,
            &[],
        )
        .await;
    assert_eq!(put.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(
        put.error_message(),
        "Specified HTTP method is not allowed for the request target."
    );
    let post_delta = h
        .call(
            Method::POST,
            &format!("/users/{DEMO_USER_UPN}/mailFolders/inbox/messages/delta"),
            Some(&json!({})),
            None,
            &[],
        )
        .await;
    assert_eq!(post_delta.status, StatusCode::METHOD_NOT_ALLOWED);
    let stats = h.emu.emulator.stats();
    for key in [
        "GET /users/{id}/messages",
        "GET /users/{id}/mailFolders/{id}/childFolders",
        "GET /me/mailFolders/{id}/messages/delta",
        "PUT /users/{id}/messages",
    ] {
        assert_eq!(stats.routes.get(key), Some(&1), "{key}: {:?}", stats.routes);
    }
}

/// Everything of a mailbox except the timestamps (which follow the day the emulator starts).
async fn mailbox_snapshot(h: &Harness, upn: &str) -> Vec<Value> {
    let (mut items, _) = h
        .get_all(
            &format!("/users/{upn}/messages?$top=1000&$expand=attachments"),
            &[],
        )
        .await;
    for m in &mut items {
        if let Some(o) = m.as_object_mut() {
            for k in [
                "createdDateTime",
                "lastModifiedDateTime",
                "receivedDateTime",
                "sentDateTime",
                "flag",
                "conversationIndex",
            ] {
                o.remove(k);
            }
            if let Some(Value::Array(list)) = o.get_mut("attachments") {
                for a in list {
                    if let Some(a) = a.as_object_mut() {
                        a.remove("lastModifiedDateTime");
                    }
                }
            }
        }
    }
    items
}

#[tokio::test]
async fn the_same_seed_gives_identical_mailboxes_and_another_seed_does_not() {
    let a = start().await;
    let b = start().await;
    let c = start_with(EmulatorConfig {
        seed: 7,
        ..EmulatorConfig::default()
    })
    .await;
    for upn in [DEMO_USER_UPN, SHARED_MAILBOX_UPN] {
        let sa = mailbox_snapshot(&a, upn).await;
        let sb = mailbox_snapshot(&b, upn).await;
        assert!(!sa.is_empty());
        assert_eq!(sa, sb, "{upn}");
        assert_ne!(sa, mailbox_snapshot(&c, upn).await, "{upn}");
    }
}

#[tokio::test]
async fn any_member_of_a_large_tenant_has_a_small_seeded_mailbox() {
    let h = start_with(EmulatorConfig {
        users: 10_000,
        ..EmulatorConfig::default()
    })
    .await;
    let users = h
        .get("/users?$top=50&$skip=0&$select=userPrincipalName,userType")
        .await;
    assert_eq!(
        users.status,
        StatusCode::BAD_REQUEST,
        "directory still refuses $skip"
    );
    let page = h
        .get("/users?$top=999&$select=userPrincipalName,userType")
        .await
        .json();
    let members: Vec<String> = values(&page)
        .iter()
        .filter(|u| u["userType"] == "Member")
        .map(|u| {
            u["userPrincipalName"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .filter(|u| u != DEMO_USER_UPN && u != SHARED_MAILBOX_UPN)
        .take(5)
        .collect();
    for upn in members {
        let inbox = h
            .get(&format!(
                "/users/{upn}/mailFolders/inbox?$select=totalItemCount"
            ))
            .await
            .json();
        let n = inbox["totalItemCount"].as_u64().expect("count");
        assert!((5..=15).contains(&n), "{upn}: {n}");
        let sent = h
            .get(&format!(
                "/users/{upn}/mailFolders/sentitems?$select=totalItemCount"
            ))
            .await
            .json();
        assert!((1..=2).contains(&sent["totalItemCount"].as_u64().expect("count")));
    }
    let demo = h
        .get(&format!("/users/{DEMO_USER_UPN}/mailFolders/inbox"))
        .await
        .json();
    assert_eq!(demo["totalItemCount"], 64);
}
