//! Row 52: after a run of good and hostile requests in several caller modes, no log line
//! holds a token, a client secret or an HS256 key.
//!
//! A test binary of its own: it installs the process-wide subscriber at `trace`, which a
//! test sharing a process with others could not do reliably.

#[allow(dead_code)]
#[path = "api/helpers.rs"]
mod helpers;

use std::io::Write;
use std::sync::{Arc, Mutex};

use graph_emulator::{DEFAULT_CLIENT_SECRET, MFA_USER_UPN};
use m365_gateway::config::DEV_SECRET;
use serde_json::json;

use helpers::{INTRANET_SECRET, TEST_SECRET, obo_setup, spawn_app, user_token};

/// Subject and body of a message sent during the run: mail content must never be logged.
const BODY_MARKER: &str = "quarterly-numbers-confidential-7c41";

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_log_line_contains_a_token_or_a_secret() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter("trace")
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    tracing::subscriber::set_global_default(subscriber).expect("the only subscriber");

    let app = spawn_app().await;
    app.graphql_data("{ me { displayName manager { displayName } } }")
        .await;
    app.get("/api/v1/users?limit=3").await;
    for bad in ["garbage", "a.b.c", &format!("{}x", app.token)] {
        app.graphql_as(Some(bad), "{ me { id } }", json!({})).await;
    }
    let response = app
        .http
        .get(format!("{}/api/v1/users/nobody", app.base))
        .bearer_auth(&app.token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);

    // Files: Graph's pre-authenticated URLs (`tempauth=`) and the gateway's download links
    // are credentials too.
    let response = app
        .http
        .put(format!(
            "{}/api/v1/drives/me/root:/Secrets/a.txt:/content",
            app.base
        ))
        .bearer_auth(&app.token)
        .body("content")
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success());
    let data = app
        .graphql_data(
            "{ drive(drive: \"me\") { itemByPath(path: \"Secrets/a.txt\") { id downloadUrl } } }",
        )
        .await;
    let link = data["drive"]["itemByPath"]["downloadUrl"]
        .as_str()
        .unwrap()
        .to_owned();
    let link_token = link.rsplit('/').next().unwrap().to_owned();
    assert_eq!(app.http.get(&link).send().await.unwrap().status(), 200);
    let id = data["drive"]["itemByPath"]["id"].as_str().unwrap();
    let status = app
        .http
        .get(format!("{}/api/v1/drives/me/items/{id}/content", app.base))
        .bearer_auth(&app.token)
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 200);

    // Message bodies are content, not diagnostics; hostile documents are refused quietly.
    let sent = app
        .graphql_data(&format!(
            "mutation {{ sendMail(mailbox: \"me\", message: {{ subject: \"{BODY_MARKER}\", body: \"{BODY_MARKER}\", to: [\"{}\"] }}) {{ accepted }} }}",
            graph_emulator::DEMO_USER_UPN
        ))
        .await;
    assert_eq!(sent["sendMail"]["accepted"], true);
    let deep = format!(
        "{{ me {{ {} id {} }} }}",
        "manager {".repeat(40),
        "}".repeat(40)
    );
    let aliases: String = (0..100).map(|i| format!("a{i}: me {{ id }} ")).collect();
    for document in [
        deep,
        format!("{{ {aliases} }}"),
        format!("{{ me {{ {} }} }}", "id ".repeat(20_000)),
    ] {
        let (status, _) = app.graphql_as(Some(&app.token), &document, json!({})).await;
        assert_eq!(status, 200);
    }

    // On-behalf-of, including a claims challenge.
    let (emu, obo) = obo_setup(&["users.read"]).await;
    for upn in [graph_emulator::DEMO_USER_UPN, MFA_USER_UPN] {
        let token = user_token(&emu, upn);
        obo.graphql_as(Some(&token), "{ me { id } }", json!({}))
            .await;
    }

    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(logs.len() > 1000, "nothing was captured: {logs}");
    // Every request's lines say which request and which caller they belong to.
    assert!(
        logs.contains("caller=\"demo\""),
        "no caller on the request span"
    );
    assert!(
        logs.contains("request_id="),
        "no request id on the request span"
    );
    // Tokens (`eyJ…`), configured secrets, and the form fields that carry grants.
    for secret in [
        "eyJ",
        DEV_SECRET,
        DEFAULT_CLIENT_SECRET,
        TEST_SECRET,
        INTRANET_SECRET,
        "client_secret=",
        "assertion=",
        "refresh_token=",
        "tempauth",
        &link_token,
        BODY_MARKER,
    ] {
        if let Some(at) = logs.find(secret) {
            let line = logs[..at].rfind('\n').map(|s| s + 1).unwrap_or(0);
            let end = logs[at..].find('\n').map(|e| at + e).unwrap_or(logs.len());
            panic!("a secret reached the logs: {}", &logs[line..end]);
        }
    }
}
