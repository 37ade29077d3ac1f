//! Graceful shutdown of the real binary: SIGTERM takes it out of the load balancer at once,
//! lets the request in flight finish, and exits 0 — within `http.shutdown_grace`.

use std::time::{Duration, Instant};

use graph_emulator::{DEMO_USER_UPN, FaultRule, RunningEmulator};
use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{loopback, test_token};
use crate::process::GatewayProcess;

const CALLER: &str = r#"
[callers.reader]
issuer = "tests"
client_id = "reader"
mode = "app"
user_claim = "upn"
operations = ["users.read"]
resources = ["*"]
"#;

/// An emulator whose user look-ups take `delay`: a request the test starts stays in flight.
async fn slow_emulator(delay: Duration) -> RunningEmulator {
    let emulator = graph_emulator::Emulator::spawn(Default::default(), loopback())
        .await
        .unwrap();
    let rule: FaultRule = serde_json::from_value(json!({
        "route": "GET /users/{id}",
        "fault": { "kind": "latency", "ms": delay.as_millis() as u64 }
    }))
    .unwrap();
    emulator.emulator.add_fault(rule);
    emulator
}

/// A user look-up started in the background, and a moment for it to reach Graph.
async fn request_in_flight(
    gateway: &GatewayProcess,
) -> tokio::task::JoinHandle<reqwest::Result<StatusCode>> {
    let url = format!("{}/api/v1/users/{DEMO_USER_UPN}", gateway.base);
    let token = test_token("reader", None);
    let request = tokio::spawn(async move {
        let response = reqwest::Client::new()
            .get(url)
            .bearer_auth(token)
            .send()
            .await?;
        Ok(response.status())
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!request.is_finished(), "the request was not slow");
    request
}

#[tokio::test]
async fn sigterm_lets_the_request_in_flight_finish_then_exits_zero() {
    let emulator = slow_emulator(Duration::from_secs(2)).await;
    let mut gateway =
        GatewayProcess::start_with(&emulator, CALLER, "[http]\nshutdown_grace = \"10s\"\n").await;
    let health = reqwest::get(format!("{}/healthz", gateway.base))
        .await
        .unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    let request = request_in_flight(&gateway).await;

    let signalled = Instant::now();
    gateway.terminate();
    // Out of rotation at once: `/readyz` says so, or nobody answers any more.
    let http = reqwest::Client::new();
    let out_of_rotation = loop {
        match http.get(format!("{}/readyz", gateway.base)).send().await {
            Ok(r) if r.status() == StatusCode::OK => {
                assert!(
                    signalled.elapsed() < Duration::from_secs(1),
                    "still ready after SIGTERM"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Ok(r) => {
                assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
                let body: serde_json::Value = r.json().await.unwrap();
                assert_eq!(body["status"], "shutting down");
                break signalled.elapsed();
            }
            Err(_) => break signalled.elapsed(),
        }
    };
    assert!(!request.is_finished(), "the request ended before the check");

    let status = request
        .await
        .unwrap()
        .expect("the request in flight is answered");
    assert_eq!(status, StatusCode::OK, "{}", gateway.stderr());
    let exit = gateway
        .wait_exit(Duration::from_secs(8))
        .await
        .unwrap_or_else(|| {
            panic!(
                "still running after the request finished\n{}",
                gateway.stderr()
            )
        });
    assert!(exit.success(), "exit {exit:?}\n{}", gateway.stderr());
    eprintln!(
        "out of rotation after {out_of_rotation:?}, exited after {:?}",
        signalled.elapsed()
    );
}

#[tokio::test]
async fn the_shutdown_grace_bounds_how_long_a_request_in_flight_delays_the_exit() {
    let emulator = slow_emulator(Duration::from_secs(30)).await;
    let mut gateway =
        GatewayProcess::start_with(&emulator, CALLER, "[http]\nshutdown_grace = \"1s\"\n").await;
    let request = request_in_flight(&gateway).await;
    let signalled = Instant::now();
    gateway.terminate();
    let exit = gateway
        .wait_exit(Duration::from_secs(4))
        .await
        .unwrap_or_else(|| panic!("still running 4 s after SIGTERM\n{}", gateway.stderr()));
    let took = signalled.elapsed();
    assert!(exit.success(), "exit {exit:?}\n{}", gateway.stderr());
    assert!(
        took >= Duration::from_millis(900),
        "exited after {took:?}, before the grace"
    );
    // The abandoned request gets no answer.
    let outcome = tokio::time::timeout(Duration::from_secs(5), request)
        .await
        .expect("the connection is closed with the process")
        .unwrap();
    assert!(outcome.is_err(), "{outcome:?}");
}
