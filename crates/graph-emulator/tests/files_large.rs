//! A 200 MB file through an upload session and back through its download URL: the bytes
//! survive (SHA-256), and the emulator (which runs in this test process) never holds the
//! file in memory: the process's resident set grows by less than 64 MB.
//!
//! Alone in its test binary, so no other test's allocations blur the measurement.

mod common;

use common::files::UNIT;
use common::*;
use reqwest::{Method, StatusCode};
use serde_json::json;

/// Resident set size of this process, bytes (`VmRSS` of /proc/self/status).
fn rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS");
    kb * 1024
}

/// Fills `buf` with the bytes of the test file from `offset` (8-byte aligned).
fn fill(buf: &mut [u8], offset: u64) {
    for (i, chunk) in buf.chunks_mut(8).enumerate() {
        let mut x = (offset / 8 + i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        x ^= x >> 29;
        let bytes = x.to_le_bytes();
        chunk.copy_from_slice(&bytes[..chunk.len()]);
    }
}

fn hex(digest: aws_lc_rs::digest::Digest) -> String {
    digest.as_ref().iter().map(|b| format!("{b:02X}")).collect()
}

#[tokio::test]
async fn a_200_mb_upload_and_download_round_trip_keeps_the_bytes_and_the_memory_bounded() {
    const TOTAL: u64 = 200 * 1024 * 1024 + 12_345;
    const FRAGMENT: usize = 12 * UNIT; // 3.75 MiB

    let h = start().await;
    let drive = h.demo_drive();
    // Warm up every path once (runtime, pools, the store) before measuring.
    let small = h
        .put_content(
            &format!("/drives/{drive}/root:/warm-up.bin:/content"),
            &[1u8; 1 << 20],
            &[],
        )
        .await;
    assert_eq!(small.status, StatusCode::CREATED, "{}", small.text);
    let warm = small.json()["id"].as_str().expect("id").to_string();
    let (_, bytes) = h
        .download(&format!("/drives/{drive}/items/{warm}/content"))
        .await;
    assert_eq!(bytes.len(), 1 << 20);
    drop(bytes);
    let before = rss();
    let mut peak = before;

    let url = h
        .session(
            &format!("/drives/{drive}/root:/Large/big.bin:"),
            json!({"item": {"@microsoft.graph.conflictBehavior": "replace", "fileSize": TOTAL}}),
        )
        .await;
    let mut sha = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    let mut offset = 0u64;
    let mut last = None;
    while offset < TOTAL {
        let len = FRAGMENT.min((TOTAL - offset) as usize);
        let mut chunk = vec![0u8; len];
        fill(&mut chunk, offset);
        sha.update(&chunk);
        let range = format!("bytes {offset}-{}/{TOTAL}", offset + len as u64 - 1);
        let r = h
            .preauth(Method::PUT, &url, chunk, &[("Content-Range", &range)])
            .await;
        offset += len as u64;
        let expected = if offset == TOTAL {
            StatusCode::CREATED
        } else {
            StatusCode::ACCEPTED
        };
        assert_eq!(r.status, expected, "{range}: {}", r.text);
        if offset == TOTAL {
            last = Some(r.json());
        }
        peak = peak.max(rss());
    }
    let uploaded = hex(sha.finish());
    let item = last.expect("the created item");
    assert_eq!(item["size"], TOTAL);
    assert_eq!(item["file"]["hashes"]["sha256Hash"], uploaded);
    let id = item["id"].as_str().expect("id");

    // Download, streamed and hashed as it arrives.
    let first = common::files::no_redirect()
        .get(format!(
            "{}/drives/{drive}/items/{id}/content",
            h.emu.graph_url()
        ))
        .bearer_auth(&h.token)
        .send()
        .await
        .expect("content");
    assert_eq!(first.status(), StatusCode::FOUND);
    let location = first.headers()["location"]
        .to_str()
        .expect("ascii")
        .to_string();
    let mut response = h.client.get(&location).send().await.expect("download");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.content_length(), Some(TOTAL));
    let mut sha = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    let mut received = 0u64;
    let mut chunks = 0u64;
    while let Some(chunk) = response.chunk().await.expect("chunk") {
        received += chunk.len() as u64;
        sha.update(&chunk);
        chunks += 1;
        if chunks.is_multiple_of(256) {
            peak = peak.max(rss());
        }
    }
    assert_eq!(received, TOTAL);
    assert_eq!(hex(sha.finish()), uploaded);
    let after = rss();
    peak = peak.max(after);
    let growth = peak.saturating_sub(before);
    eprintln!(
        "resident set: {} MiB before, {} MiB at the peak, {} MiB after",
        before >> 20,
        peak >> 20,
        after >> 20
    );
    assert!(
        growth < 64 * 1024 * 1024,
        "the resident set grew by {} MiB (from {} MiB)",
        growth / (1024 * 1024),
        before / (1024 * 1024)
    );
    // The bytes are on disk, in the emulator's directory.
    let on_disk: u64 = std::fs::read_dir(h.emu.emulator.files_dir())
        .expect("files dir")
        .filter_map(|e| e.ok()?.metadata().ok())
        .map(|m| m.len())
        .sum();
    assert!(on_disk >= TOTAL, "{on_disk}");
}
