//! Every directory response body in Microsoft's documentation examples
//! (`tests/fixtures/directory-examples.jsonl`) has the same key shape as the emulator's
//! answer to the equivalent request.
//!
//! The examples are truncated ("compare by shape and key set, never by literal values"),
//! and their placeholders and sample data (`{id}`, `startswith(displayName,'a')`, Contoso
//! SKUs) do not exist in the seeded tenant, so each example is paired by hand with the
//! equivalent request against the emulator. The comparison:
//! - every key of an example object is present in the emulator's object, recursively;
//! - JSON types agree wherever neither side is null;
//! - each example array element matches at least one emulator element (of the same
//!   `@odata.type`, when the example names one);
//! - where the request fixes the property set (`$select`, or the default set), the emulator
//!   returns no other properties (annotations such as `@odata.context` aside);
//! - text bodies (`/$count`) are text numbers on both sides.
//!
//! The mail examples (`tests/fixtures/mail-examples.jsonl`) run in file order against one
//! emulator, as the demo user (`/me`), each paired with an equivalent request by hand; the
//! examples without a response body (sendMail, reply, forward) are checked for their status.
//!
//! The calendar and contact examples (`tests/fixtures/calendar-examples.jsonl`) run the same
//! way, as the demo user; fix-ups of the samples are explained next to them.

mod common;

use common::*;
use graph_emulator::{DEFAULT_CLIENT_ID, DEMO_USER_UPN, SHARED_MAILBOX_UPN, TENANT_DOMAIN};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const FIXTURES: &str = include_str!("fixtures/directory-examples.jsonl");
const MAIL_FIXTURES: &str = include_str!("fixtures/mail-examples.jsonl");
const CALENDAR_FIXTURES: &str = include_str!("fixtures/calendar-examples.jsonl");

/// Who calls: the app, or a delegated token for a user (for `/me`).
#[derive(Clone, Copy)]
enum Caller {
    App,
    Demo,
    /// A direct report of the demo user, whose management chain is three deep.
    DemoReport,
}

struct Equivalent {
    method: &'static str,
    url: String,
    eventual: bool,
    caller: Caller,
    /// The request fixes the property set, so no extra properties are allowed.
    exact: bool,
    body: Option<Value>,
}

fn get(url: impl Into<String>, exact: bool) -> Equivalent {
    Equivalent {
        method: "GET",
        url: url.into(),
        eventual: false,
        caller: Caller::App,
        exact,
        body: None,
    }
}

impl Equivalent {
    fn eventual(mut self) -> Self {
        self.eventual = true;
        self
    }
    fn called_by(mut self, caller: Caller) -> Self {
        self.caller = caller;
        self
    }
}

/// The emulator request equivalent to each documented example that has a response body.
fn equivalent(page: &str, name: &str) -> Option<Equivalent> {
    let demo = DEMO_USER_UPN;
    let memberof_groups = format!("/users/{demo}/memberOf/microsoft.graph.group");
    Some(match (page, name) {
        ("user-get", "get_user_1") => get(format!("/users/{demo}"), true),
        ("user-get", "get_user") => get("/me", true).called_by(Caller::Demo),
        ("user-get", "get_user_2") => get(format!("/users/{demo}?$select=displayName,givenName,postalCode"), true),
        // The documented body shows non-default properties (truncated sample): select them.
        ("user-list", "get_users_2") => get(
            "/users?$select=displayName,mail,mailNickname,otherMails,proxyAddresses,userPrincipalName",
            true,
        ),
        ("user-list", "get_signinname_users") => get(
            format!(
                "/users?$select=displayName,id&$filter=identities/any(c:c/issuerAssignedId eq '{demo}' and c/issuer eq '{TENANT_DOMAIN}')"
            ),
            false,
        ),
        ("user-list", "get_count_only") => get("/users/$count", false).eventual(),
        // The documented user is a B2B guest (otherMails, #EXT# nickname): so is ours.
        ("user-list", "get_a_count") => get(
            "/users?$filter=startswith(displayName,'jordan p')&$orderby=displayName&$count=true&$top=1&$select=displayName,mail,mailNickname,otherMails,proxyAddresses,userPrincipalName",
            true,
        )
        .eventual(),
        ("user-list", "get_a_count_endsWith") => get(
            format!("/users?$filter=endswith(mail,'@{TENANT_DOMAIN}')&$orderby=userPrincipalName&$count=true"),
            false,
        )
        .eventual(),
        ("user-list", "get_wa_count") => get(
            "/users?$search=\"displayName:greav\"&$orderby=displayName&$count=true&$select=displayName,givenName,mail,mailNickname,userPrincipalName",
            true,
        )
        .eventual(),
        ("user-list", "get_to_count") => get(
            "/users?$search=\"displayName:greav\" OR \"displayName:brien\"&$orderby=displayName&$count=true&$select=displayName,givenName,mail,mailNickname,proxyAddresses,userPrincipalName",
            false,
        )
        .eventual(),
        ("user-list", "get_user_assignedLicenses") => get(
            "/users?$select=id,mail,assignedLicenses&$filter=assignedLicenses/any(u:u/skuId eq 05e9a617-0261-4cee-bb44-138d3ef5d965)",
            true,
        ),
        ("user-list-manager", "get_manager_2") => get(format!("/users/{demo}/manager"), false),
        ("user-list-manager", "get_transitive_managers") => get(
            "/me?$expand=manager($levels=max;$select=id,displayName)&$select=id,displayName&$count=true",
            true,
        )
        .eventual()
        .called_by(Caller::DemoReport),
        ("user-list-directreports", "get_directreports") => get("/me/directReports", false).called_by(Caller::Demo),
        ("user-list-memberof", "user_get_memberof") => get(format!("/users/{demo}/memberOf"), false),
        ("user-list-memberof", "get_user_memberof_count_only") => {
            get(format!("/users/{demo}/memberOf/$count"), false).eventual()
        }
        ("user-list-memberof", "get_count_only") => get(format!("{memberof_groups}/$count"), false).eventual(),
        ("user-list-memberof", "get_tier_count") => get(
            format!("{memberof_groups}?$count=true&$orderby=displayName&$search=\"displayName:staff\"&$select=displayName,id"),
            true,
        )
        .eventual(),
        ("user-list-memberof", "get_a_count") => get(
            format!("{memberof_groups}?$count=true&$orderby=displayName&$filter=startswith(displayName, 'a')"),
            false,
        )
        .eventual(),
        // Planner is not emulated (this example mixes Planner, drive and events): a directory
        // batch with a success and an error item stands in. (The 302 and 204 items are
        // skipped below.)
        ("concepts/json-batching", "json_batching__ex1") => Equivalent {
            method: "POST",
            url: "/$batch".into(),
            eventual: false,
            caller: Caller::App,
            exact: false,
            body: Some(json!({"requests": [
                {"id": "1", "method": "GET", "url": format!("/users/{demo}/manager")},
                {"id": "2", "method": "GET", "url": "/groups?$top=1"},
                {"id": "3", "method": "GET", "url": "/users/nobody@kestrelridge.example"},
            ]})),
        },
        ("concepts/paging", "paging__ex2") => get("/users?$top=5", false),
        _ => return None,
    })
}

/// The documented response body of a record, if it has one. Body-only records (`payload`)
/// are response fragments, except the batch one, which sketches a request.
fn documented_body(record: &Value) -> Option<Value> {
    let response = &record["response"]["body"];
    if response.is_object() || response.is_string() {
        return Some(response.clone());
    }
    let payload = &record["payload"]["body"];
    (payload.is_object() && payload.get("requests").is_none()).then(|| payload.clone())
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Shape differences of `actual` against `example`, as human-readable paths.
fn shape_errors(
    example: &Value,
    actual: &Value,
    exact: bool,
    path: &str,
    errors: &mut Vec<String>,
) {
    match (example, actual) {
        (Value::Null, _) | (_, Value::Null) => {}
        (Value::Object(e), Value::Object(a)) => {
            for (key, ev) in e {
                match a.get(key) {
                    None => errors.push(format!("{path}.{key}: missing")),
                    Some(av) => shape_errors(ev, av, exact, &format!("{path}.{key}"), errors),
                }
            }
            if exact {
                for key in a
                    .keys()
                    .filter(|k| !k.starts_with('@') && !e.contains_key(*k))
                {
                    // Navigation properties the request expanded are not extra properties.
                    if key != "value" && key != "manager" {
                        errors.push(format!("{path}.{key}: not in the example"));
                    }
                }
            }
        }
        (Value::Array(e), Value::Array(a)) => {
            if a.is_empty() && !e.is_empty() {
                errors.push(format!("{path}: empty, the example has items"));
            }
            for (i, ev) in e.iter().enumerate() {
                let candidates: Vec<&Value> = a
                    .iter()
                    .filter(|av| {
                        ev.get("@odata.type").is_none()
                            || av.get("@odata.type") == ev.get("@odata.type")
                    })
                    .collect();
                let matched = candidates.iter().any(|av| {
                    let mut sub = Vec::new();
                    shape_errors(ev, av, exact, path, &mut sub);
                    sub.is_empty()
                });
                if !matched && !a.is_empty() {
                    let mut detail = Vec::new();
                    if let Some(first) = candidates.first() {
                        shape_errors(ev, first, exact, &format!("{path}[{i}]"), &mut detail);
                    }
                    errors.push(format!(
                        "{path}[{i}]: no element with the example's shape {detail:?}"
                    ));
                }
            }
        }
        (e, a) if kind(e) != kind(a) => errors.push(format!(
            "{path}: {} in the example, {} here",
            kind(e),
            kind(a)
        )),
        _ => {}
    }
}

#[tokio::test]
async fn every_documented_directory_response_has_the_emulators_key_shape() {
    let h = start().await;
    let emulator = &h.emu.emulator;
    let demo_token = emulator
        .issue_delegated_token(DEFAULT_CLIENT_ID, DEMO_USER_UPN, &["User.Read"])
        .expect("demo token");
    let report = h
        .get(&format!(
            "/users/{DEMO_USER_UPN}/directReports?$select=id&$top=1"
        ))
        .await
        .json();
    let report_id = report["value"][0]["id"]
        .as_str()
        .expect("a report")
        .to_string();
    let report_token = emulator
        .issue_delegated_token(DEFAULT_CLIENT_ID, &report_id, &["User.Read"])
        .expect("report token");

    let mut compared = 0;
    let mut failures = Vec::new();
    for line in FIXTURES.lines().filter(|l| !l.trim().is_empty()) {
        let record: Value = serde_json::from_str(line).expect("fixture JSON");
        let page = record["page"].as_str().unwrap_or_default();
        let name = record["name"].as_str().unwrap_or_default();
        let Some(mut example) = documented_body(&record) else {
            continue; // request-only examples (dependsOn sketch, paging request)
        };
        let Some(eq) = equivalent(page, name) else {
            failures.push(format!("{page}/{name}: no equivalent request defined"));
            continue;
        };
        if page == "concepts/json-batching" {
            // Only the statuses a directory batch can produce (200 and errors).
            if let Some(responses) = example["responses"].as_array_mut() {
                responses.retain(|r| {
                    r["status"] == 200 || r["status"].as_u64().is_some_and(|s| s >= 400)
                });
            }
        }

        let token = match eq.caller {
            Caller::App => h.token.clone(),
            Caller::Demo => demo_token.clone(),
            Caller::DemoReport => report_token.clone(),
        };
        let url = format!("{}{}", h.emu.graph_url(), eq.url);
        let mut request = match eq.method {
            "POST" => h.client.post(url),
            _ => h.client.get(url),
        }
        .bearer_auth(token);
        if eq.eventual {
            request = request.header("ConsistencyLevel", "eventual");
        }
        if let Some(body) = &eq.body {
            request = request.json(body);
        }
        let reply = reply(request.send().await.expect("request")).await;
        let status = record["response"]["status"].as_u64().unwrap_or(200);
        if reply.status != StatusCode::from_u16(status as u16).unwrap_or(StatusCode::OK) {
            failures.push(format!(
                "{page}/{name}: status {} ({})",
                reply.status, reply.text
            ));
            continue;
        }
        let mut errors = Vec::new();
        match &example {
            Value::String(text) => {
                let ok = text.parse::<u64>().is_ok() && reply.text.parse::<u64>().is_ok();
                let is_text = reply.header("content-type") == Some("text/plain");
                if !ok || !is_text {
                    errors.push(format!("text body expected, got {:?}", reply.text));
                }
            }
            _ => shape_errors(&example, &reply.json(), eq.exact, "$", &mut errors),
        }
        if !errors.is_empty() {
            failures.push(format!("{page}/{name} ({}): {errors:?}", eq.url));
        }
        compared += 1;
    }
    assert!(failures.is_empty(), "{failures:#?}");
    assert_eq!(compared, 21, "every documented response body was compared");
}

/// What the mail examples share as they run in order.
struct MailRun<'a> {
    h: &'a Harness,
    token: String,
    /// Newest first.
    inbox: Vec<String>,
    draft: String,
    /// The nextLink of `get_messages_delta_1`, the deltaLink of `get_messages_delta_3`.
    next_link: Option<String>,
    delta_link: Option<String>,
}

impl MailRun<'_> {
    async fn call(
        &self,
        method: Method,
        url: &str,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> Reply {
        self.h
            .call(method, url, body.as_ref(), Some(&self.token), headers)
            .await
    }

    async fn get(&self, url: &str) -> Reply {
        self.call(Method::GET, url, None, &[]).await
    }

    /// The emulator's answer to the request equivalent to a documented mail example, and
    /// whether that request fixes the property set.
    async fn equivalent(&mut self, page: &str, name: &str) -> Option<(Reply, bool)> {
        let inbox = |i: usize| enc(&self.inbox[i]);
        let draft = enc(&self.draft);
        let maxpage2 = [("Prefer", "odata.maxpagesize=2")];
        let colleague = format!("aidan.reed@{TENANT_DOMAIN}");
        Some(match (page, name) {
            ("user-list-messages", "get_messages") => (self.get("/me/messages?$select=sender,subject").await, true),
            ("message-get", "get_message") => (self.get(&format!("/me/messages/{}", inbox(0))).await, false),
            ("message-get", "get_message_headers") => (
                self.get(&format!("/me/messages/{}/?$select=internetMessageHeaders", inbox(0))).await,
                true,
            ),
            ("message-get", "get_message_in_text") => {
                let reply = self
                    .call(
                        Method::GET,
                        &format!("/me/messages/{}/?$select=subject,body,bodyPreview,uniqueBody", inbox(1)),
                        None,
                        &[("Prefer", "outlook.body-content-type=\"text\"")],
                    )
                    .await;
                assert_eq!(reply.header("preference-applied"), Some("outlook.body-content-type=\"text\""));
                (reply, true)
            }
            ("message-get", "get_message_in_mime") => (self.get(&format!("/me/messages/{}/$value", inbox(2))).await, false),
            ("message-createreply", "message_createreply") => (
                self.call(Method::POST, &format!("/me/messages/{}/createReply", inbox(3)), None, &[]).await,
                false,
            ),
            ("message-move", "message_move") => (
                self.call(Method::POST, &format!("/me/messages/{}/move", inbox(4)), Some(json!({"destinationId": "deleteditems"})), &[])
                    .await,
                false,
            ),
            // The documented body has an empty contentType, which Graph would refuse.
            ("message-update", "update_message") => (
                self.call(
                    Method::PATCH,
                    &format!("/me/messages/{draft}"),
                    Some(json!({"subject": "subject-value", "body": {"contentType": "text", "content": "content-value"}, "inferenceClassification": "other"})),
                    &[],
                )
                .await,
                false,
            ),
            ("message-delta", "message_delta") => (
                self.call(Method::GET, "/me/mailFolders/inbox/messages/delta", None, &maxpage2).await,
                false,
            ),
            ("concepts/delta-query-messages", "get_messages_delta_1") => {
                let reply = self
                    .call(Method::GET, "/me/mailfolders/inbox/messages/delta?$select=subject,sender,isRead", None, &maxpage2)
                    .await;
                self.next_link = reply.json()["@odata.nextLink"].as_str().map(str::to_string);
                (reply, true)
            }
            ("concepts/delta-query-messages", "get_messages_delta_2") => {
                let next = self.next_link.clone().expect("a nextLink from the first page");
                (self.call(Method::GET, &next, None, &maxpage2).await, true)
            }
            // The last page of a sync: Projects holds two messages, one page.
            ("concepts/delta-query-messages", "get_messages_delta_3") => {
                let projects = self.get("/me/mailFolders?$filter=displayName eq 'Projects'").await.json();
                let id = projects["value"][0]["id"].as_str().expect("Projects").to_string();
                let reply = self
                    .call(
                        Method::GET,
                        &format!("/me/mailFolders/{}/messages/delta?$select=subject,sender,isRead", enc(&id)),
                        None,
                        &maxpage2,
                    )
                    .await;
                self.delta_link = reply.json()["@odata.deltaLink"].as_str().map(str::to_string);
                (reply, true)
            }
            // The next round, after one message was deleted and the other read.
            ("concepts/delta-query-messages", "get_messages_delta_next") => {
                let delta = self.delta_link.clone().expect("a deltaLink");
                let projects = self.get("/me/mailFolders?$filter=displayName eq 'Projects'").await.json();
                let id = projects["value"][0]["id"].as_str().expect("Projects").to_string();
                let messages = self.get(&format!("/me/mailFolders/{}/messages?$select=id", enc(&id))).await.json();
                let ids: Vec<String> = messages["value"]
                    .as_array()
                    .expect("value")
                    .iter()
                    .filter_map(|m| m["id"].as_str().map(str::to_string))
                    .collect();
                self.call(Method::DELETE, &format!("/me/messages/{}", enc(&ids[0])), None, &[]).await;
                self.call(Method::PATCH, &format!("/me/messages/{}", enc(&ids[1])), Some(json!({"isRead": false})), &[])
                    .await;
                (self.call(Method::GET, &delta, None, &maxpage2).await, true)
            }
            // The documented contentBytes is truncated (not valid base64).
            ("message-post-attachments", "create_file_attachment_from_message_v1") => (
                self.call(
                    Method::POST,
                    &format!("/me/messages/{draft}/attachments"),
                    Some(json!({"@odata.type": "#microsoft.graph.fileAttachment", "name": "smile", "contentBytes": "R0lGODdhEAAQAA=="})),
                    &[],
                )
                .await,
                true,
            ),
            ("attachment-createuploadsession", "attachment_createuploadsession") => (
                self.call(
                    Method::POST,
                    &format!("/me/messages/{draft}/attachments/createUploadSession"),
                    Some(json!({"AttachmentItem": {"attachmentType": "file", "name": "flower", "size": 3483322}})),
                    &[],
                )
                .await,
                true,
            ),
            ("user-list-mailfolders", "get_mailfolders") => (self.get("/me/mailFolders").await, false),
            // A beta example: no folder is hidden here, the shape is the same.
            ("user-list-mailfolders", "get_hiddenmailfolders") => {
                (self.get("/me/mailFolders/?includeHiddenFolders=true").await, false)
            }
            ("mailfolder-list-messages", "mailfolder_get_messages") => (self.get("/me/mailFolders/inbox/messages").await, false),
            ("user-sendmail", "user_sendmail") => (
                self.call(
                    Method::POST,
                    "/me/sendMail",
                    Some(json!({"message": {"subject": "Meet for lunch?", "body": {"contentType": "Text", "content": "The new cafeteria is open."},
                        "toRecipients": [{"emailAddress": {"address": SHARED_MAILBOX_UPN}}],
                        "ccRecipients": [{"emailAddress": {"address": colleague}}]}, "saveToSentItems": "false"})),
                    &[],
                )
                .await,
                false,
            ),
            ("user-sendmail", "user_sendmail_with_headers") => (
                self.call(
                    Method::POST,
                    "/me/sendMail",
                    Some(json!({"message": {"subject": "9/9/2018: concert", "body": {"contentType": "HTML", "content": "The group represents Nevada."},
                        "toRecipients": [{"emailAddress": {"address": SHARED_MAILBOX_UPN}}],
                        "internetMessageHeaders": [{"name": "x-custom-header-group-name", "value": "Nevada"}, {"name": "x-custom-header-group-id", "value": "NV001"}]}})),
                    &[],
                )
                .await,
                false,
            ),
            ("user-sendmail", "user_sendmail_with_attachment") => (
                self.call(
                    Method::POST,
                    "/me/sendMail",
                    Some(json!({"message": {"subject": "Meet for lunch?", "body": {"contentType": "Text", "content": "The new cafeteria is open."},
                        "toRecipients": [{"emailAddress": {"address": SHARED_MAILBOX_UPN}}],
                        "attachments": [{"@odata.type": "#microsoft.graph.fileAttachment", "name": "attachment.txt", "contentType": "text/plain", "contentBytes": "SGVsbG8gV29ybGQh"}]}})),
                    &[],
                )
                .await,
                false,
            ),
            // The documented body verbatim (its recipients are outside the tenant).
            ("message-reply", "message_reply_v1") => (
                self.call(
                    Method::POST,
                    &format!("/me/messages/{}/reply", inbox(5)),
                    Some(json!({"message": {"toRecipients": [
                        {"emailAddress": {"address": "samanthab@contoso.onmicrosoft.com", "name": "Samantha Booth"}},
                        {"emailAddress": {"address": "randiw@contoso.onmicrosoft.com", "name": "Randi Welch"}}]},
                        "comment": "Samantha, Randi, would you name the group please?"})),
                    &[],
                )
                .await,
                false,
            ),
            ("message-forward", "message_forward") => (
                self.call(
                    Method::POST,
                    &format!("/me/messages/{}/forward", inbox(6)),
                    Some(json!({"comment": "comment-value", "toRecipients": [{"emailAddress": {"name": "name-value", "address": SHARED_MAILBOX_UPN}}]})),
                    &[],
                )
                .await,
                false,
            ),
            _ => return None,
        })
    }
}

/// Where the documentation's sample status is wrong: the pages' own text says 201 Created
/// for createReply and 202 Accepted for forward.
fn documented_status(page: &str, name: &str, record: &Value) -> u16 {
    match (page, name) {
        ("message-createreply", "message_createreply") => 201,
        ("message-forward", "message_forward") => 202,
        _ => record["response"]["status"].as_u64().unwrap_or(200) as u16,
    }
}

#[tokio::test]
async fn every_documented_mail_response_has_the_emulators_key_shape() {
    let h = start().await;
    let token = h
        .emu
        .emulator
        .issue_delegated_token(
            DEFAULT_CLIENT_ID,
            DEMO_USER_UPN,
            &["Mail.ReadWrite", "Mail.Send"],
        )
        .expect("demo token");
    let inbox = h
        .call(
            Method::GET,
            "/me/mailFolders/inbox/messages?$top=20&$select=id",
            None,
            Some(&token),
            &[],
        )
        .await
        .json();
    let drafts = h
        .call(
            Method::GET,
            "/me/mailFolders/drafts/messages?$top=1&$select=id",
            None,
            Some(&token),
            &[],
        )
        .await
        .json();
    let ids = |v: &Value| -> Vec<String> {
        v["value"]
            .as_array()
            .expect("value")
            .iter()
            .filter_map(|m| m["id"].as_str().map(str::to_string))
            .collect()
    };
    let mut run = MailRun {
        h: &h,
        token,
        inbox: ids(&inbox),
        draft: ids(&drafts)[0].clone(),
        next_link: None,
        delta_link: None,
    };

    let mut compared = 0;
    let mut failures = Vec::new();
    for line in MAIL_FIXTURES.lines().filter(|l| !l.trim().is_empty()) {
        let record: Value = serde_json::from_str(line).expect("fixture JSON");
        let page = record["page"].as_str().unwrap_or_default().to_string();
        let name = record["name"].as_str().unwrap_or_default().to_string();
        let Some((reply, exact)) = run.equivalent(&page, &name).await else {
            failures.push(format!("{page}/{name}: no equivalent request defined"));
            continue;
        };
        let status = documented_status(&page, &name, &record);
        if reply.status.as_u16() != status {
            failures.push(format!(
                "{page}/{name}: status {} ({})",
                reply.status, reply.text
            ));
            continue;
        }
        compared += 1;
        let Some(mut example) = documented_body(&record) else {
            // sendMail, reply, forward: an empty 202.
            if !reply.text.is_empty() {
                failures.push(format!(
                    "{page}/{name}: a body where the documentation has none"
                ));
            }
            continue;
        };
        match (page.as_str(), name.as_str()) {
            // Search folders are not emulated.
            ("user-list-mailfolders", "get_mailfolders") => {
                if let Some(list) = example["value"].as_array_mut() {
                    list.retain(|f| f["@odata.type"] != "#microsoft.graph.mailSearchFolder");
                }
            }
            // The sample writes `"isRead": "true"`, a string, where Graph sends a Boolean.
            ("concepts/delta-query-messages", "get_messages_delta_next") => {
                if let Some(list) = example["value"].as_array_mut() {
                    for item in list.iter_mut().filter(|i| i["isRead"] == "true") {
                        item["isRead"] = json!(true);
                    }
                }
            }
            _ => {}
        }
        let mut errors = Vec::new();
        match &example {
            Value::String(_) => {
                // MIME: text/plain with the usual headers.
                let mime_like = ["From: ", "Subject: ", "Message-ID: ", "MIME-Version: 1.0"]
                    .iter()
                    .all(|h| reply.text.contains(h));
                if reply.header("content-type") != Some("text/plain") || !mime_like {
                    errors.push(format!("MIME text expected, got {:?}", reply.text));
                }
            }
            _ => shape_errors(&example, &reply.json(), exact, "$", &mut errors),
        }
        if !errors.is_empty() {
            failures.push(format!("{page}/{name}: {errors:?}"));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
    assert_eq!(compared, 23, "every documented mail example was compared");
}

#[test]
fn the_shape_check_notices_missing_extra_and_mistyped_keys() {
    let example = json!({"value": [{"id": "x", "displayName": "y", "businessPhones": ["1"]}]});
    let mut errors = Vec::new();
    shape_errors(
        &example,
        &json!({"value": [{"id": "a", "displayName": "b", "businessPhones": ["2"]}]}),
        true,
        "$",
        &mut errors,
    );
    assert!(errors.is_empty(), "{errors:?}");
    for actual in [
        json!({"value": [{"id": "a", "businessPhones": ["2"]}]}),
        json!({"value": [{"id": "a", "displayName": "b", "businessPhones": ["2"], "mail": "m"}]}),
        json!({"value": [{"id": 1, "displayName": "b", "businessPhones": ["2"]}]}),
        json!({"value": []}),
    ] {
        let mut errors = Vec::new();
        shape_errors(&example, &actual, true, "$", &mut errors);
        assert!(!errors.is_empty(), "{actual}");
    }
}

/// `(method, path, body, Prefer, exact)`.
type CalendarCall = (Method, String, Option<Value>, Option<&'static str>, bool);

/// The request equivalent to a calendar or contact example, as the demo user: `(method,
/// path, body, Prefer, exact)`.
fn calendar_equivalent(
    page: &str,
    name: &str,
    record: &Value,
    (event_id, doomed_id): (&str, &str),
    contact_id: &str,
    colleague: &str,
) -> Option<CalendarCall> {
    let pst = Some("outlook.timezone=\"Pacific Standard Time\"");
    let request_body = record["request"]["body"].clone();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64;
    let day = |offset: i64| {
        let t = now + offset * 86_400;
        let (y, m, d) = civil(t / 86_400);
        format!("{y:04}-{m:02}-{d:02}T00:00:00Z")
    };
    Some(match (page, name) {
        // The samples show `locations` next to `location` although only `location` is
        // selected: select both.
        ("user-list-events", "get_events") => (
            Method::GET,
            "/me/events?$select=subject,body,bodyPreview,organizer,attendees,start,end,location,locations&$top=50".into(),
            None,
            pst,
            true,
        ),
        ("event-get", "get_event") => (
            Method::GET,
            format!("/me/events/{}?$select=subject,body,bodyPreview,organizer,attendees,start,end,location,locations,hideAttendees", enc(event_id)),
            None,
            pst,
            true,
        ),
        ("event-get", "get_event_multiple_locations") => (
            Method::GET,
            format!("/me/events/{}?$select=subject,body,bodyPreview,organizer,attendees,start,end,location,locations", enc(event_id)),
            None,
            None,
            true,
        ),
        ("user-list-calendarview", "user_get_calendarview") => (
            Method::GET,
            format!("/me/calendarView?startDateTime={}&endDateTime={}", day(-7), day(7)),
            None,
            None,
            false,
        ),
        // The 2021 sample predates `isDefaultCalendar`: compare without the exact key set.
        ("user-list-calendars", "user_get_calendars") => (Method::GET, "/me/calendars".into(), None, None, false),
        ("user-post-events", _) => (Method::POST, "/me/events".into(), Some(request_body), pst, false),
        ("event-update", "update_event") => (
            Method::PATCH,
            format!("/me/events/{}", enc(event_id)),
            Some(request_body),
            None,
            false,
        ),
        ("event-delete", "delete_event") => {
            (Method::DELETE, format!("/me/events/{}", enc(doomed_id)), None, None, false)
        }
        ("calendar-getschedule", "calendar_getSchedule") => {
            let mut body = request_body;
            body["schedules"] = json!([DEMO_USER_UPN, colleague]);
            (Method::POST, "/me/calendar/getSchedule".into(), Some(body), pst, false)
        }
        ("user-list-contacts", "user_list_contacts__ex1") => (
            Method::GET,
            "/me/contacts?$filter=emailAddresses/any(a:a/address eq 'priya.raman@contoso-partners.example')".into(),
            None,
            None,
            false,
        ),
        ("user-list-contacts", "user_get_contacts") => (Method::GET, "/me/contacts".into(), None, None, false),
        ("contact-get", "get_contact") => {
            (Method::GET, format!("/me/contacts/{}", enc(contact_id)), None, None, true)
        }
        ("contact-update", "update_contact") => (
            Method::PATCH,
            format!("/me/contacts/{}", enc(contact_id)),
            Some(request_body),
            None,
            true,
        ),
        ("user-post-contacts", "create_contact_from_user") => {
            (Method::POST, "/me/contacts".into(), Some(request_body), None, false)
        }
        _ => return None,
    })
}

/// `(year, month, day)` of a day number since 1970-01-01 (Howard Hinnant's algorithm).
fn civil(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[tokio::test]
async fn every_documented_calendar_and_contact_response_has_the_emulators_key_shape() {
    let h = start().await;
    let token = h
        .emu
        .emulator
        .issue_delegated_token(
            DEFAULT_CLIENT_ID,
            DEMO_USER_UPN,
            &["Calendars.ReadWrite", "Contacts.ReadWrite"],
        )
        .expect("demo token");
    let call = |method: Method, path: String, body: Option<Value>, prefer: Option<&'static str>| {
        let token = token.clone();
        let h = &h;
        async move {
            let headers: Vec<(&str, &str)> = prefer.iter().map(|p| ("Prefer", *p)).collect();
            h.call(method, &path, body.as_ref(), Some(&token), &headers)
                .await
        }
    };
    let colleague = h
        .get(&format!(
            "/users/{DEMO_USER_UPN}/directReports?$select=mail"
        ))
        .await
        .json()["value"][0]["mail"]
        .as_str()
        .expect("report")
        .to_string();
    // A meeting to read, update and finally delete; busy time in the getSchedule window.
    let meeting = call(
        Method::POST,
        "/me/events".into(),
        Some(json!({
            "subject": "Orientation",
            "body": {"contentType": "HTML", "content": "Please bring the notes I sent you."},
            "start": {"dateTime": "2019-03-15T12:00:00", "timeZone": "Pacific Standard Time"},
            "end": {"dateTime": "2019-03-15T14:00:00", "timeZone": "Pacific Standard Time"},
            "location": {"displayName": "Assembly Hall"},
            "attendees": [
                {"emailAddress": {"address": colleague}, "type": "required"},
                {"emailAddress": {"address": "danas@fabrikam.example", "name": "Dana Swope"}, "type": "required"},
            ],
        })),
        None,
    )
    .await;
    assert_eq!(meeting.status, StatusCode::CREATED, "{}", meeting.text);
    let event_id = meeting.json()["id"].as_str().expect("id").to_string();
    let doomed = call(
        Method::POST,
        "/me/events".into(),
        Some(json!({
            "subject": "To be deleted",
            "start": {"dateTime": "2019-03-16T12:00:00", "timeZone": "UTC"},
            "end": {"dateTime": "2019-03-16T13:00:00", "timeZone": "UTC"},
        })),
        None,
    )
    .await;
    let doomed_id = doomed.json()["id"].as_str().expect("id").to_string();
    // A colleague (colleagues have IM addresses, as the sample does).
    let contact_id = call(
        Method::GET,
        "/me/contacts?$top=1&$select=id&$filter=companyName eq 'Kestrel Ridge Outfitters'".into(),
        None,
        None,
    )
    .await
    .json()["value"][0]["id"]
        .as_str()
        .expect("contact")
        .to_string();

    let mut compared = 0;
    let mut failures = Vec::new();
    for line in CALENDAR_FIXTURES.lines().filter(|l| !l.trim().is_empty()) {
        let record: Value = serde_json::from_str(line).expect("fixture JSON");
        let page = record["page"].as_str().unwrap_or_default().to_string();
        let name = record["name"].as_str().unwrap_or_default().to_string();
        let Some((method, path, body, prefer, exact)) = calendar_equivalent(
            &page,
            &name,
            &record,
            (&event_id, &doomed_id),
            &contact_id,
            &colleague,
        ) else {
            failures.push(format!("{page}/{name}: no equivalent request defined"));
            continue;
        };
        let reply = call(method, path, body, prefer).await;
        let status = record["response"]["status"].as_u64().unwrap_or(200) as u16;
        if reply.status.as_u16() != status {
            failures.push(format!(
                "{page}/{name}: status {} ({})",
                reply.status, reply.text
            ));
            continue;
        }
        if let Some(p) = prefer
            && status == 200
            && reply.header("preference-applied") != Some(p)
        {
            failures.push(format!("{page}/{name}: no Preference-Applied"));
        }
        compared += 1;
        let Some(mut example) = documented_body(&record) else {
            // delete_event (204) and the request-only filter example.
            if status == 204 && !reply.text.is_empty() {
                failures.push(format!(
                    "{page}/{name}: a body where the documentation has none"
                ));
            }
            continue;
        };
        match (page.as_str(), name.as_str()) {
            // `proposedNewTime` (a new-time proposal) is not emulated.
            ("event-get", "get_event") => {
                if let Some(list) = example["attendees"].as_array_mut() {
                    for a in list {
                        if let Some(o) = a.as_object_mut() {
                            o.remove("proposedNewTime");
                        }
                    }
                }
            }
            // One location per event is emulated: keep the sample's first.
            ("event-get", "get_event_multiple_locations")
            | ("user-post-events", "create_event_from_user_multiple_locations") => {
                if let Some(list) = example["locations"].as_array_mut() {
                    list.truncate(1);
                }
            }
            // Working hours always name their zone (no customTimeZone with offsets).
            ("calendar-getschedule", _) => {
                if let Some(list) = example["value"].as_array_mut() {
                    for s in list {
                        s["workingHours"]["timeZone"] = json!({"name": "Pacific Standard Time"});
                    }
                }
            }
            _ => {}
        }
        let mut errors = Vec::new();
        shape_errors(&example, &reply.json(), exact, "$", &mut errors);
        if !errors.is_empty() {
            failures.push(format!("{page}/{name}: {errors:?}"));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
    assert_eq!(
        compared, 17,
        "every calendar and contact example was compared"
    );
}
