//! Redis as a second-level cache shared by replicas (issue 8): Graph answers, sealed
//! tokens, invalidation across replicas, identity isolation, and Redis going away.
//! Redis comes from `TEST_REDIS_URL` (the last test starts its own `redis-server`); without
//! it these tests are skipped with a note, except under `CI=true`, where that is a failure.

use std::time::{Duration, Instant};

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use base64::Engine;
use graph_emulator::{
    AppRegistration, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, DEMO_USER_UPN, RunningEmulator,
    SHARED_MAILBOX_UPN,
};
use m365_gateway::config::{CallerMode, Secret};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, loopback, real_mode_config, spawn_app_with, test_token};
use crate::replicas::required_env;

/// Base64 of the 32-byte token key the replicas share in these tests.
const TOKEN_KEY: [u8; 32] = [7; 32];

fn token_key_text() -> String {
    base64::engine::general_purpose::STANDARD.encode(TOKEN_KEY)
}

/// A replica on the standalone emulator as app `client_id`, sharing `redis` under
/// `prefix` (tokens too, with the test key).
async fn replica(
    emulator: &RunningEmulator,
    client: (&str, &str),
    redis: &str,
    prefix: &str,
) -> TestApp {
    let mut config = real_mode_config(emulator, client.0, ("ops", CallerMode::App, &["*"], &["*"]));
    config.graph.client_secret = Some(Secret::new(client.1));
    config.redis.url = Some(Secret::new(redis));
    config.redis.key_prefix = prefix.to_owned();
    config.redis.token_key = Some(Secret::new(token_key_text()));
    let mut app = spawn_app_with(config).await;
    app.token = test_token("ops", None);
    app
}

const GATEWAY: (&str, &str) = (DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET);

fn unique_prefix() -> String {
    format!("m365gw-test-{}", uuid::Uuid::new_v4().simple())
}

async fn emulator() -> RunningEmulator {
    graph_emulator::Emulator::spawn(Default::default(), loopback())
        .await
        .unwrap()
}

async fn redis(url: &str) -> redis::aio::MultiplexedConnection {
    redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

async fn keys(url: &str, pattern: &str) -> Vec<String> {
    redis::cmd("KEYS")
        .arg(pattern)
        .query_async(&mut redis(url).await)
        .await
        .unwrap()
}

/// Token-endpoint calls (the emulator counts them by route template).
fn token_requests(stats: &Value) -> u64 {
    stats["routes"]["POST /{tenant}/oauth2/v2.0/token"]
        .as_u64()
        .unwrap_or(0)
}

#[tokio::test]
async fn an_answer_fetched_by_one_replica_is_served_by_another_from_redis() {
    let Some(url) = required_env("TEST_REDIS_URL") else {
        return;
    };
    // Arrange
    let emulator = emulator().await;
    let prefix = unique_prefix();
    let a = replica(&emulator, GATEWAY, &url, &prefix).await;
    let b = replica(&emulator, GATEWAY, &url, &prefix).await;
    let (status, from_a) = a.get("/api/v1/users?limit=7").await;
    assert_eq!(status, StatusCode::OK, "{from_a}");
    a.reset_stats().await;

    // Act
    let (status, from_b) = b.get("/api/v1/users?limit=7").await;

    // Assert
    assert_eq!(status, StatusCode::OK, "{from_b}");
    assert_eq!(from_b, from_a);
    let stats = a.stats().await;
    assert_eq!(stats["graph_requests"].as_u64(), Some(0), "{stats}");
    assert!(!keys(&url, &format!("{prefix}:resp:0:*")).await.is_empty());
}

#[tokio::test]
async fn a_token_one_replica_acquired_serves_another_and_lies_in_redis_only_sealed() {
    let Some(url) = required_env("TEST_REDIS_URL") else {
        return;
    };
    // Arrange
    let emulator = emulator().await;
    let tenant = emulator.emulator.tenant_id().to_owned();
    let prefix = unique_prefix();
    let a = replica(&emulator, GATEWAY, &url, &prefix).await;
    assert_eq!(a.get("/api/v1/users?limit=2").await.0, StatusCode::OK);
    assert_eq!(token_requests(&a.stats().await), 1);
    a.reset_stats().await;

    // Act: replica B starts and serves its first request.
    let b = replica(&emulator, GATEWAY, &url, &prefix).await;
    let (status, body) = b.get("/api/v1/users?limit=3").await;

    // Assert: B called Graph, with A's token.
    assert_eq!(status, StatusCode::OK, "{body}");
    let stats = a.stats().await;
    assert_eq!(stats["graph_requests"].as_u64(), Some(1), "{stats}");
    assert_eq!(token_requests(&stats), 0, "{stats}");

    // The value in Redis is sealed: opened with the key and the identity it is bound to,
    // it is a token Graph accepts, and the raw value holds no form of it.
    let stored = keys(&url, &format!("{prefix}:token:*")).await;
    assert_eq!(stored.len(), 1, "{stored:?}");
    let raw: Vec<u8> = redis::cmd("GET")
        .arg(&stored[0])
        .query_async(&mut redis(&url).await)
        .await
        .unwrap();
    let (nonce, sealed) = raw.split_at(NONCE_LEN);
    let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &TOKEN_KEY).unwrap());
    let mut aad = b"m365gw.token.v1\0".to_vec();
    aad.extend_from_slice(format!("app\n{tenant}\n{DEFAULT_CLIENT_ID}").as_bytes());
    let mut sealed = sealed.to_vec();
    let plain = key
        .open_in_place(
            Nonce::try_assume_unique_for_key(nonce).unwrap(),
            Aad::from(aad.as_slice()),
            &mut sealed,
        )
        .expect("sealed with the token key, bound to the app identity");
    let token = std::str::from_utf8(&plain[8..]).unwrap().to_owned();
    assert_eq!(token.split('.').count(), 3, "a JWT");
    let graph = reqwest::Client::new()
        .get(format!("{}/users?$top=1", emulator.graph_url()))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(
        graph.status(),
        StatusCode::OK,
        "the stored token is the real one"
    );
    let engines = [
        base64::engine::general_purpose::STANDARD,
        base64::engine::general_purpose::URL_SAFE,
        base64::engine::general_purpose::STANDARD_NO_PAD,
        base64::engine::general_purpose::URL_SAFE_NO_PAD,
    ];
    let mut forms: Vec<Vec<u8>> = vec![token.clone().into_bytes()];
    forms.extend(engines.iter().map(|e| e.encode(&token).into_bytes()));
    // Each part of the JWT (header, claims, signature) on its own too.
    forms.extend(token.split('.').map(|p| p.as_bytes().to_vec()));
    for form in forms {
        assert!(
            !raw.windows(form.len()).any(|w| w == form.as_slice()),
            "the raw Redis value holds a form of the token"
        );
    }
}

#[tokio::test]
async fn a_write_through_one_replica_makes_another_read_that_mailbox_from_graph_and_no_other() {
    let Some(url) = required_env("TEST_REDIS_URL") else {
        return;
    };
    // Arrange: both mailboxes read through A (Graph), then through B (Redis, B's own cache).
    let emulator = emulator().await;
    let prefix = unique_prefix();
    let a = replica(&emulator, GATEWAY, &url, &prefix).await;
    let b = replica(&emulator, GATEWAY, &url, &prefix).await;
    let written = format!("/api/v1/users/{DEMO_USER_UPN}/messages?folder=inbox&limit=5");
    let other = format!("/api/v1/users/{SHARED_MAILBOX_UPN}/messages?folder=inbox&limit=5");
    let (status, before) = a.get(&written).await;
    assert_eq!(status, StatusCode::OK, "{before}");
    assert_eq!(a.get(&other).await.0, StatusCode::OK);
    a.reset_stats().await;
    assert_eq!(b.get(&written).await.1, before);
    assert_eq!(b.get(&other).await.0, StatusCode::OK);
    assert_eq!(a.graph_requests().await, 0, "B read both from Redis");
    let message = &before["data"][0];
    let id = message["id"].as_str().unwrap();
    let was_read = message["is_read"].as_bool().expect("is_read");

    // Act: A marks the message the other way.
    let response = a
        .http
        .patch(format!(
            "{}/api/v1/users/{DEMO_USER_UPN}/messages/{id}",
            a.base
        ))
        .bearer_auth(&a.token)
        .json(&json!({ "is_read": !was_read }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    a.reset_stats().await;

    // Assert: B's very next read of that mailbox is fresh from Graph...
    let (status, after) = b.get(&written).await;
    assert_eq!(status, StatusCode::OK, "{after}");
    assert!(
        a.graph_requests().await >= 1,
        "B served the mailbox from a cache"
    );
    let same = after["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == id)
        .expect("the message is still listed");
    assert_eq!(same["is_read"], json!(!was_read), "{same}");
    // ...while the other mailbox is still cached (B's cache, and Redis for a new replica).
    a.reset_stats().await;
    assert_eq!(b.get(&other).await.0, StatusCode::OK);
    let c = replica(&emulator, GATEWAY, &url, &prefix).await;
    a.reset_stats().await;
    assert_eq!(c.get(&other).await.0, StatusCode::OK);
    assert_eq!(a.graph_requests().await, 0, "{}", a.stats().await);
}

#[tokio::test]
async fn a_replica_does_not_serve_its_own_copy_after_a_bump_whose_message_it_missed() {
    let Some(url) = required_env("TEST_REDIS_URL") else {
        return;
    };
    // Arrange: the mailbox is in the replica's own cache.
    let emulator = emulator().await;
    let prefix = unique_prefix();
    let app = replica(&emulator, GATEWAY, &url, &prefix).await;
    let mailbox = format!("/api/v1/users/{DEMO_USER_UPN}/messages?folder=inbox&limit=4");
    assert_eq!(app.get(&mailbox).await.0, StatusCode::OK);
    app.reset_stats().await;
    assert_eq!(app.get(&mailbox).await.0, StatusCode::OK);
    assert_eq!(app.graph_requests().await, 0, "cached");

    // Act: another replica's write bumped the generation, but its pub/sub message was lost
    // (pub/sub keeps nothing for a replica that is reconnecting).
    let _: u64 = redis::cmd("INCR")
        .arg(format!("{prefix}:gen:mailbox:{DEMO_USER_UPN}"))
        .query_async(&mut redis(&url).await)
        .await
        .unwrap();

    // Assert
    assert_eq!(app.get(&mailbox).await.0, StatusCode::OK);
    assert_eq!(
        app.graph_requests().await,
        1,
        "served a copy from before the bump"
    );
}

#[tokio::test]
async fn an_answer_cached_for_one_identity_is_never_served_to_another() {
    let Some(url) = required_env("TEST_REDIS_URL") else {
        return;
    };
    // Arrange: replica B runs as another app registration of the same tenant.
    let emulator = emulator().await;
    let other_app = ("9a8b7c6d-0000-4000-8000-00000000b0b0", "other-app-secret");
    emulator.emulator.register_app(AppRegistration {
        client_id: other_app.0.to_owned(),
        client_secret: other_app.1.to_owned(),
        ..AppRegistration::default_gateway_app()
    });
    let prefix = unique_prefix();
    let a = replica(&emulator, GATEWAY, &url, &prefix).await;
    let b = replica(&emulator, other_app, &url, &prefix).await;
    assert_eq!(a.get("/api/v1/users?limit=4").await.0, StatusCode::OK);
    a.reset_stats().await;

    // Act
    let (status, body) = b.get("/api/v1/users?limit=4").await;

    // Assert: B fetched its own answer; both identities' answers are in Redis, apart.
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(a.graph_requests().await, 1, "{}", a.stats().await);
    let stored = keys(&url, &format!("{prefix}:resp:0:*")).await;
    assert_eq!(stored.len(), 2, "{stored:?}");
    // And the second read of either is a cache hit.
    a.reset_stats().await;
    b.get("/api/v1/users?limit=4").await;
    a.get("/api/v1/users?limit=4").await;
    assert_eq!(a.graph_requests().await, 0);
}

/// A private `redis-server` on a free port, killed when dropped.
struct PrivateRedis {
    child: std::process::Child,
    url: String,
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn private_redis() -> Option<PrivateRedis> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    private_redis_on(port).await
}

/// A private `redis-server` on `port` (a restart uses the port of the one it replaces).
async fn private_redis_on(port: u16) -> Option<PrivateRedis> {
    let child = std::process::Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no"])
        .stdout(std::process::Stdio::null())
        .spawn();
    let child = match child {
        Ok(child) => child,
        Err(e) => {
            assert!(
                !std::env::var("CI").is_ok_and(|v| v == "true"),
                "redis-server is not on PATH but CI=true: {e}"
            );
            eprintln!("note: redis-server is not on PATH; skipping this test");
            return None;
        }
    };
    let redis = PrivateRedis {
        child,
        url: format!("redis://127.0.0.1:{port}"),
    };
    let client = redis::Client::open(redis.url.as_str()).unwrap();
    let started = Instant::now();
    while client.get_multiplexed_async_connection().await.is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "redis-server did not start"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Some(redis)
}

#[tokio::test]
async fn requests_are_still_answered_from_the_replica_and_graph_when_redis_goes_away() {
    let Some(mut server) = private_redis().await else {
        return;
    };
    // Arrange
    let emulator = emulator().await;
    let app = replica(&emulator, GATEWAY, &server.url, "m365gw-outage").await;
    let mailbox = format!("/api/v1/users/{DEMO_USER_UPN}/messages?folder=inbox&limit=3");
    let (_, cached) = app.get("/api/v1/users?limit=3").await;
    assert_eq!(app.get(&mailbox).await.0, StatusCode::OK);

    // Act: Redis dies.
    server.child.kill().unwrap();
    server.child.wait().unwrap();

    // Assert: a cached answer, a new one, a write and a read after it all work, promptly.
    let started = Instant::now();
    let (status, again) = app.get("/api/v1/users?limit=3").await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(again, cached);
    let (status, body) = app.get("/api/v1/users?limit=9").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, list) = app.get(&mailbox).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    let id = list["data"][0]["id"].as_str().unwrap();
    let response = app
        .http
        .patch(format!(
            "{}/api/v1/users/{DEMO_USER_UPN}/messages/{id}",
            app.base
        ))
        .bearer_auth(&app.token)
        .json(&json!({ "is_read": true }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    app.reset_stats().await;
    let (status, list) = app.get(&mailbox).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert_eq!(
        app.graph_requests().await,
        1,
        "the write still evicts locally"
    );
    assert_eq!(list["data"][0]["is_read"], true, "{list}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "Redis being away slowed requests down: {:?}",
        started.elapsed()
    );
}

/// How many connections listen on `channel` now.
async fn listeners(url: &str, channel: &str) -> i64 {
    let counts: Vec<(String, i64)> = redis::cmd("PUBSUB")
        .arg("NUMSUB")
        .arg(channel)
        .query_async(&mut redis(url).await)
        .await
        .unwrap();
    counts[0].1
}

async fn wait_for_listeners(url: &str, prefix: &str) {
    let started = Instant::now();
    for channel in [format!("{prefix}:invalidate"), format!("{prefix}:events")] {
        while listeners(url, &channel).await != 1 {
            assert!(
                started.elapsed() < Duration::from_secs(15),
                "nobody listens on {channel} again"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Both Redis listeners of a replica (cache invalidations, live events) subscribe again
/// when Redis comes back, so other replicas' events reach its subscribers again.
#[tokio::test]
async fn a_replica_listens_to_other_replicas_again_after_redis_restarts() {
    let Some(mut server) = private_redis().await else {
        return;
    };
    // Arrange: a replica listening on both channels.
    let emulator = emulator().await;
    let prefix = unique_prefix();
    let app = replica(&emulator, GATEWAY, &server.url, &prefix).await;
    wait_for_listeners(&server.url, &prefix).await;

    // Act: Redis restarts on the same port (its pub/sub state is gone).
    let port: u16 = server.url.rsplit(':').next().unwrap().parse().unwrap();
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let server = private_redis_on(port).await.expect("redis-server restarts");

    // Assert: both listeners are back, and an event another replica publishes arrives.
    wait_for_listeners(&server.url, &prefix).await;
    let mut received = app.events.subscribe();
    let other = m365_gateway::webhooks::bus::EventBus::with_redis(
        &server.url,
        &prefix,
        tokio_util::sync::CancellationToken::new(),
    )
    .await
    .unwrap();
    let event: m365_gateway::webhooks::bus::LiveEvent = serde_json::from_value(json!({
        "event": {
            "seq": 1, "id": "after-restart", "subscription_id": "w",
            "change_type": "created", "resource": "Users/u/Messages/m",
            "resource_id": "m", "data": null, "occurred_at": "2026-11-28T10:00:00Z"
        },
        "caller": "ops", "kind": "mail", "target": "u", "folder": "inbox"
    }))
    .unwrap();
    other.publish(&[event]).await;
    let relayed = tokio::time::timeout(Duration::from_secs(2), received.recv())
        .await
        .expect("the event arrives within 2 s")
        .unwrap();
    assert_eq!(relayed.event.id, "after-restart");
    drop(server);
}
