//! A large attachment passes through the gateway without the gateway holding it in memory:
//! the gateway runs as its own process (the real binary) against an emulator in this test
//! process, so its resident memory can be measured on its own.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use graph_emulator::{DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, DEMO_USER_UPN};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::helpers::{TEST_ISSUER, TEST_SECRET, loopback, test_token};

struct Gateway(Child);

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `VmRSS` or `VmHWM` of a process, in bytes.
fn memory(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with(field))
        .unwrap_or_else(|| panic!("{field} in /proc/{pid}/status"));
    let kib: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap();
    kib * 1024
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test]
async fn a_40_mb_attachment_passes_through_while_the_gateways_memory_grows_less_than_64_mb() {
    let emulator = graph_emulator::Emulator::spawn(Default::default(), loopback())
        .await
        .unwrap();
    let port = free_port();
    let dir = std::env::temp_dir().join(format!("m365gw-mem-{}-{port}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("gateway.toml");
    std::fs::write(
        &config,
        format!(
            r#"
listen = "127.0.0.1:{port}"
[log]
level = "warn"
[graph]
base_url = "{graph}"
authority = "{authority}"
tenant_id = "{tenant}"
client_id = "{DEFAULT_CLIENT_ID}"
client_secret = "{DEFAULT_CLIENT_SECRET}"
[issuers.tests]
issuer = "{TEST_ISSUER}"
audiences = ["m365-gateway"]
kind = "hs256"
secret = "{TEST_SECRET}"
client_claim = "azp"
[callers.crm]
issuer = "tests"
client_id = "crm"
mode = "app"
user_claim = "upn"
operations = ["mail.send", "mail.read", "users.read"]
resources = ["*"]
send_as = ["*"]
"#,
            graph = emulator.graph_url(),
            authority = emulator.base_url(),
            tenant = emulator.emulator.tenant_id(),
        ),
    )
    .unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_m365-gateway"))
        .arg("serve")
        .arg("--config")
        .arg(&config)
        .env_remove("M365GW_CONFIG")
        .env("NO_COLOR", "1")
        .current_dir(&dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let gateway = Gateway(child);
    let pid = gateway.0.id();
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let started = Instant::now();
    while http.get(format!("{base}/healthz")).send().await.is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "gateway did not start"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
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
    let baseline = memory(pid, "VmRSS");

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
    let peak = memory(pid, "VmHWM");
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
    let _ = std::fs::remove_dir_all(&dir);
}
