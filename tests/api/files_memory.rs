//! A 300 MB file goes up and comes back through the gateway byte-identical while the
//! gateway's memory stays flat: the gateway runs as its own process (the real binary)
//! against an emulator in this test process, so its resident memory is measured alone.
//! (About 10 s in a debug build: 600 MB through two HTTP hops, hashed at both ends.)

use std::time::Instant;

use futures::StreamExt;
use graph_emulator::DEMO_USER_UPN;
use reqwest::StatusCode;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::helpers::{loopback, test_token};
use crate::process::GatewayProcess;

const SIZE: u64 = 300 * 1024 * 1024;
/// Bytes generated per piece of the streamed request body.
const PIECE: usize = 1024 * 1024;

/// Piece `i` of the file: cheap to generate, different everywhere.
fn piece(i: u64) -> Vec<u8> {
    let mut bytes = vec![0u8; PIECE];
    let mut x = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    for chunk in bytes.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
    }
    bytes
}

#[tokio::test]
async fn a_300_mb_file_round_trips_byte_identical_while_the_gateways_memory_grows_less_than_64_mb()
{
    let emulator = graph_emulator::Emulator::spawn(Default::default(), loopback())
        .await
        .unwrap();
    let gateway = GatewayProcess::start(
        &emulator,
        r#"
[callers.archive]
issuer = "tests"
client_id = "archive"
mode = "app"
user_claim = "upn"
operations = ["files.read", "files.write"]
resources = ["*"]
sites = ["*"]
"#,
    )
    .await;
    let base = gateway.base.clone();
    let http = reqwest::Client::new();
    let token = test_token("archive", Some(DEMO_USER_UPN));
    // Warm up the paths (token, policy, a small upload and download).
    let small = http
        .put(format!(
            "{base}/api/v1/drives/me/root:/warm-up.txt:/content"
        ))
        .bearer_auth(&token)
        .body("warm")
        .send()
        .await
        .unwrap();
    assert_eq!(small.status(), StatusCode::OK);
    let baseline = gateway.memory("VmRSS");

    let pieces = SIZE / PIECE as u64;
    let body = futures::stream::iter(0..pieces).map(|i| Ok::<_, std::io::Error>(piece(i)));
    let upload_started = Instant::now();
    let response = http
        .put(format!(
            "{base}/api/v1/drives/me/root:/Archive/big.bin:/content"
        ))
        .bearer_auth(&token)
        .header("Content-Length", SIZE)
        .body(reqwest::Body::wrap_stream(body))
        .send()
        .await
        .unwrap();
    let status = response.status();
    let item: Value = response.json().await.unwrap();
    assert_eq!(status, StatusCode::OK, "{item}");
    assert_eq!(item["size"], SIZE);
    let upload_time = upload_started.elapsed();

    let mut expected = Sha256::new();
    for i in 0..pieces {
        expected.update(piece(i));
    }
    let expected = expected.finalize();
    let id = item["id"].as_str().unwrap();
    let download_started = Instant::now();
    let response = http
        .get(format!("{base}/api/v1/drives/me/items/{id}/content"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.content_length(), Some(SIZE));
    let mut got = Sha256::new();
    let mut received = 0u64;
    let mut stream = response.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.unwrap();
        received += chunk.len() as u64;
        got.update(&chunk);
    }
    let download_time = download_started.elapsed();
    assert_eq!(received, SIZE);
    assert_eq!(got.finalize(), expected, "the bytes came back unchanged");

    let peak = gateway.memory("VmHWM");
    let growth = peak.saturating_sub(baseline);
    eprintln!(
        "gateway RSS: baseline {} MiB, peak {} MiB; upload {:.1} s, download {:.1} s",
        baseline / (1024 * 1024),
        peak / (1024 * 1024),
        upload_time.as_secs_f64(),
        download_time.as_secs_f64()
    );
    assert!(
        growth < 64 * 1024 * 1024,
        "the gateway's peak RSS grew by {} MiB (baseline {} MiB, peak {} MiB)",
        growth / (1024 * 1024),
        baseline / (1024 * 1024),
        peak / (1024 * 1024)
    );
}
