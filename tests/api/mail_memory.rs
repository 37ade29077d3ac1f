//! A large attachment passes through the gateway without the gateway holding it in memory:
//! the gateway runs as its own process (the real binary) against an emulator in this test
//! process, so its resident memory can be measured on its own.

use graph_emulator::DEMO_USER_UPN;
use reqwest::StatusCode;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::helpers::{loopback, test_token};
use crate::process::GatewayProcess;

#[tokio::test]
async fn a_40_mb_attachment_passes_through_while_the_gateways_memory_grows_less_than_64_mb() {
    let emulator = graph_emulator::Emulator::spawn(Default::default(), loopback())
        .await
        .unwrap();
    let gateway = GatewayProcess::start(
        &emulator,
        r#"
[callers.crm]
issuer = "tests"
client_id = "crm"
mode = "app"
user_claim = "upn"
operations = ["mail.send", "mail.read", "users.read"]
resources = ["*"]
send_as = ["*"]
"#,
    )
    .await;
    let base = gateway.base.clone();
    let http = reqwest::Client::new();
    let token = test_token("crm", Some(DEMO_USER_UPN));
    // Warm up the paths (token, policy, a small send) so the baseline includes them.
    let small = http
        .post(format!("{base}/api/v1/users/me/send-mail"))
        .bearer_auth(&token)
        .json(&json!({ "message": { "subject": "warm-up", "to": ["a@fabrikam.example"] } }))
        .send()
        .await
        .unwrap();
    assert_eq!(small.status(), StatusCode::ACCEPTED);
    let baseline = gateway.memory("VmRSS");

    let size = 40 * 1024 * 1024u32;
    let content: Vec<u8> = (0..size)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    let digest: String = Sha256::digest(&content)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let form = reqwest::multipart::Form::new()
        .text(
            "message",
            json!({ "message": { "subject": "forty", "to": ["partner@fabrikam.example"] } })
                .to_string(),
        )
        .part(
            "file",
            reqwest::multipart::Part::bytes(content).file_name("forty.bin"),
        );
    let response = http
        .post(format!("{base}/api/v1/users/me/send-mail"))
        .bearer_auth(&token)
        .multipart(form)
        .send()
        .await
        .unwrap();
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let peak = gateway.memory("VmHWM");
    let growth = peak.saturating_sub(baseline);
    eprintln!(
        "gateway RSS: baseline {} MiB, peak {} MiB during the 40 MiB send",
        baseline / (1024 * 1024),
        peak / (1024 * 1024)
    );
    assert!(
        growth < 64 * 1024 * 1024,
        "the gateway's peak RSS grew by {} MiB (baseline {} MiB, peak {} MiB)",
        growth / (1024 * 1024),
        baseline / (1024 * 1024),
        peak / (1024 * 1024)
    );

    let sent: Value = http
        .get(format!("{}/_emulator/mail/sent", emulator.base_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let last = sent.as_array().unwrap().last().unwrap();
    assert_eq!(last["subject"], "forty");
    assert_eq!(last["attachments"][0]["size"], size);
    assert_eq!(last["attachments"][0]["sha256"], digest.as_str());
}
