//! Consumer webhooks and their deliveries (`src/store/deliveries.rs`), on both backends:
//! claims under leases, dead letters, replays, and the sealed signing secret.

use std::time::Duration;

use m365_gateway::store::{
    ClaimedDelivery, ConsumerWebhook, DeliveryState, NewChangeEvent, NewWatch, ReplayOutcome,
    Store, WebhookSecret,
};
use time::OffsetDateTime;

use super::{TestDb, assert_absent, random_hex};

const LEASE: Duration = Duration::from_secs(30);

/// A watch of caller `crm` with one consumer webhook.
async fn watch_with_webhook(store: &Store) -> (String, ConsumerWebhook, WebhookSecret) {
    let watch_id = format!("watch-{}", random_hex(6));
    store
        .insert_watch(&NewWatch {
            id: watch_id.clone(),
            caller: "crm".into(),
            kind: "mail".into(),
            target: "u1".into(),
            folder: "inbox".into(),
            resource: "users/u1/mailFolders('inbox')/messages".into(),
            change_types: "created".into(),
            include_resource_data: false,
            resync: None,
        })
        .await
        .unwrap();
    let (webhook, secret) = store
        .create_consumer_webhook(&watch_id, "crm", "https://orders.internal/hooks/mail")
        .await
        .unwrap();
    (watch_id, webhook, secret)
}

/// Records `n` events of the watch; each gets a pending delivery per webhook.
async fn add_events(store: &Store, watch_id: &str, n: usize) -> Vec<String> {
    let events: Vec<NewChangeEvent> = (0..n)
        .map(|i| NewChangeEvent {
            id: format!("evt-{}-{i}", random_hex(4)),
            subscription_id: watch_id.to_owned(),
            change_type: "created".into(),
            resource: "users/u1/messages".into(),
            resource_id: Some(format!("msg-{i}")),
            data: Some(serde_json::json!({ "subject": format!("Order #{i}") })),
            occurred_at: OffsetDateTime::now_utc(),
        })
        .collect();
    // A resync's commit is the public way to record events with their deliveries.
    store.finish_resync(watch_id, None, &events).await.unwrap();
    events.into_iter().map(|e| e.id).collect()
}

fn seqs(claimed: &[ClaimedDelivery]) -> Vec<i64> {
    claimed.iter().map(|d| d.seq).collect()
}

pub(super) async fn a_claim_is_exclusive_between_two_owners(db: &TestDb) {
    let store = db.store(&["k1"], None).await;
    let (watch_id, webhook, secret) = watch_with_webhook(&store).await;
    let events = add_events(&store, &watch_id, 12).await;

    let (a, b) = tokio::join!(
        store.claim_deliveries("replica-a", LEASE, 8),
        store.claim_deliveries("replica-b", LEASE, 8)
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    let mut all = [seqs(&a), seqs(&b)].concat();
    all.sort_unstable();
    let count = all.len();
    all.dedup();
    assert_eq!(
        all.len(),
        count,
        "a delivery was claimed twice: {a:?} {b:?}"
    );
    assert_eq!(count, 12, "every due delivery was claimed by one owner");
    assert!(a.len() <= 8 && b.len() <= 8);

    let first = a.iter().chain(&b).min_by_key(|d| d.seq).unwrap();
    assert_eq!(first.attempts, 1);
    assert_eq!(first.webhook_id, webhook.id);
    assert_eq!(first.url, webhook.url);
    assert_eq!(first.secret, secret);
    assert_eq!(first.event.id, events[0]);
    assert_eq!(first.event.subscription_id, watch_id);
    assert_eq!(
        first.event.data,
        Some(serde_json::json!({ "subject": "Order #0" }))
    );
    assert!(
        store
            .claim_deliveries("replica-c", LEASE, 8)
            .await
            .unwrap()
            .is_empty(),
        "leased deliveries are not due"
    );
}

pub(super) async fn a_lease_that_runs_out_lets_another_owner_claim(db: &TestDb) {
    let store = db.store(&["k1"], None).await;
    let (watch_id, _, _) = watch_with_webhook(&store).await;
    add_events(&store, &watch_id, 1).await;

    let a = store
        .claim_deliveries("replica-a", Duration::from_millis(300), 10)
        .await
        .unwrap();
    assert_eq!(a.len(), 1);
    assert!(
        store
            .claim_deliveries("replica-b", LEASE, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(store.next_delivery_due().await.unwrap().is_some());

    tokio::time::sleep(Duration::from_millis(400)).await;
    let b = store
        .claim_deliveries("replica-b", LEASE, 10)
        .await
        .unwrap();
    assert_eq!(seqs(&b), seqs(&a), "the expired lease passed to replica-b");
    assert_eq!(b[0].attempts, 2);

    assert!(
        !store
            .mark_delivered(a[0].seq, "replica-a", 200)
            .await
            .unwrap(),
        "the old owner can no longer record an outcome"
    );
    assert!(
        store
            .mark_delivered(b[0].seq, "replica-b", 204)
            .await
            .unwrap()
    );
    let listed = store
        .list_deliveries(&b[0].webhook_id, None, 10)
        .await
        .unwrap();
    assert_eq!(listed[0].state, DeliveryState::Delivered);
    assert_eq!(listed[0].last_status, Some(204));
    assert!(listed[0].delivered_at.is_some());
    assert_eq!(store.next_delivery_due().await.unwrap(), None);
}

pub(super) async fn a_delivery_failed_for_good_is_dead_until_replayed(db: &TestDb) {
    let store = db.store(&["k1"], None).await;
    let (watch_id, webhook, _) = watch_with_webhook(&store).await;
    let events = add_events(&store, &watch_id, 2).await;
    let max_attempts = 3;

    // Attempts of the first event fail: retried at once, then dead after the third.
    let mut dead_seq = None;
    for attempt in 1..=max_attempts {
        let claimed = store.claim_deliveries("replica-a", LEASE, 1).await.unwrap();
        let d = &claimed[0];
        assert_eq!(d.event.id, events[0]);
        assert_eq!(d.attempts, attempt);
        let retry_at = (attempt < max_attempts).then(OffsetDateTime::now_utc);
        assert!(
            store
                .fail_delivery(d.seq, "replica-a", Some(500), "HTTP 500", retry_at)
                .await
                .unwrap()
        );
        dead_seq = Some(d.seq);
    }
    let dead_seq = dead_seq.unwrap();

    let dead = store
        .list_deliveries(&webhook.id, Some(DeliveryState::Dead), 10)
        .await
        .unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].seq, dead_seq);
    assert_eq!(dead[0].attempts, max_attempts);
    assert_eq!(dead[0].last_status, Some(500));
    assert_eq!(dead[0].last_error.as_deref(), Some("HTTP 500"));

    // The second event is still due; the dead one is not.
    let next = store
        .claim_deliveries("replica-a", LEASE, 10)
        .await
        .unwrap();
    assert_eq!(next.len(), 1);
    assert_eq!(next[0].event.id, events[1]);
    assert_eq!(
        store
            .replay_delivery(&webhook.id, next[0].seq)
            .await
            .unwrap(),
        ReplayOutcome::StillPending
    );
    store
        .mark_delivered(next[0].seq, "replica-a", 200)
        .await
        .unwrap();

    let all = store.list_deliveries(&webhook.id, None, 10).await.unwrap();
    assert_eq!(
        all.iter().map(|d| d.seq).collect::<Vec<_>>(),
        vec![next[0].seq, dead_seq],
        "newest first"
    );
    assert_eq!(
        store
            .list_deliveries(&webhook.id, None, 1)
            .await
            .unwrap()
            .len(),
        1
    );

    assert_eq!(
        store.replay_delivery(&webhook.id, dead_seq).await.unwrap(),
        ReplayOutcome::Replayed
    );
    assert_eq!(
        store
            .replay_delivery("another-webhook", dead_seq)
            .await
            .unwrap(),
        ReplayOutcome::NotFound
    );
    let replayed = store
        .claim_deliveries("replica-b", LEASE, 10)
        .await
        .unwrap();
    assert_eq!(seqs(&replayed), vec![dead_seq]);
    assert_eq!(replayed[0].attempts, 1, "a replay starts the attempts over");
    assert_eq!(replayed[0].event.id, events[0], "with the same event id");

    // Dead again, then every dead delivery of the webhook replayed at once; a delivered
    // one can be replayed too.
    store
        .fail_delivery(dead_seq, "replica-b", None, "connection failed", None)
        .await
        .unwrap();
    assert_eq!(store.replay_dead_deliveries(&webhook.id).await.unwrap(), 1);
    assert_eq!(store.replay_dead_deliveries(&webhook.id).await.unwrap(), 0);
    assert_eq!(
        store
            .replay_delivery(&webhook.id, next[0].seq)
            .await
            .unwrap(),
        ReplayOutcome::Replayed
    );
    assert_eq!(
        store
            .list_deliveries(&webhook.id, Some(DeliveryState::Pending), 10)
            .await
            .unwrap()
            .len(),
        2
    );
}

pub(super) async fn webhooks_are_listed_without_secrets_and_deleted_with_their_deliveries(
    db: &TestDb,
) {
    let store = db.store(&["k1"], None).await;
    let (watch_id, webhook, _) = watch_with_webhook(&store).await;
    let (second, _) = store
        .create_consumer_webhook(&watch_id, "crm", "https://orders.internal/hooks/other")
        .await
        .unwrap();
    add_events(&store, &watch_id, 1).await;
    assert_eq!(
        store.list_consumer_webhooks(&watch_id).await.unwrap(),
        vec![webhook.clone(), second.clone()]
    );
    assert_eq!(
        store.consumer_webhook(&webhook.id).await.unwrap(),
        Some(webhook.clone())
    );

    assert!(store.delete_consumer_webhook(&webhook.id).await.unwrap());
    assert!(!store.delete_consumer_webhook(&webhook.id).await.unwrap());
    assert_eq!(store.consumer_webhook(&webhook.id).await.unwrap(), None);
    assert_eq!(
        db.scalar(&format!(
            "SELECT COUNT(*) FROM webhook_deliveries WHERE webhook_id = '{}'",
            webhook.id
        ))
        .await,
        0
    );
    let left = store.claim_deliveries("r", LEASE, 10).await.unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].webhook_id, second.id);
}

pub(super) async fn webhook_secrets_are_sealed_in_the_table_and_survive_reencrypt_all(db: &TestDb) {
    let old = db.store(&["k1"], None).await;
    let (watch_id, webhook, secret) = watch_with_webhook(&old).await;
    add_events(&old, &watch_id, 1).await;
    let raw = db.raw_table("consumer_webhooks").await;
    assert_absent(&raw, &secret.to_whsec(), "consumer_webhooks");
    assert!(
        !raw.windows(16).any(|w| w == &secret.bytes()[..16]),
        "consumer_webhooks contains the secret's raw bytes"
    );
    old.close().await;

    let both = db.store(&["k1", "k2"], Some("k2")).await;
    assert_eq!(both.reencrypt_all().await.unwrap(), 1);
    assert_eq!(both.reencrypt_all().await.unwrap(), 0);
    assert_eq!(
        db.column("SELECT key_id FROM consumer_webhooks").await,
        vec![Some("k2".into())]
    );
    both.close().await;

    let new = db.store(&["k2"], None).await;
    let claimed = new.claim_deliveries("r", LEASE, 10).await.unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].webhook_id, webhook.id);
    assert_eq!(
        claimed[0].secret, secret,
        "the secret reads back after rotation"
    );
}

pub(super) async fn a_delivery_whose_secret_cannot_be_opened_is_dead_lettered_not_a_panic(
    db: &TestDb,
) {
    let old = db.store(&["k1"], None).await;
    let (watch_id, webhook, _) = watch_with_webhook(&old).await;
    add_events(&old, &watch_id, 1).await;
    old.close().await;

    // k1 was dropped from the configuration before its rows were re-encrypted.
    let without_key = db.store(&["k2"], None).await;
    assert!(
        without_key
            .claim_deliveries("r", LEASE, 10)
            .await
            .unwrap()
            .is_empty()
    );
    let dead = without_key
        .list_deliveries(&webhook.id, Some(DeliveryState::Dead), 10)
        .await
        .unwrap();
    assert_eq!(dead.len(), 1);
    let reason = dead[0].last_error.clone().unwrap_or_default();
    assert!(reason.contains("'k1'"), "{reason}");
}

on_both_backends!(
    a_claim_is_exclusive_between_two_owners,
    a_lease_that_runs_out_lets_another_owner_claim,
    a_delivery_failed_for_good_is_dead_until_replayed,
    webhooks_are_listed_without_secrets_and_deleted_with_their_deliveries,
    webhook_secrets_are_sealed_in_the_table_and_survive_reencrypt_all,
    a_delivery_whose_secret_cannot_be_opened_is_dead_lettered_not_a_panic,
);
