-- m365-gateway store, SQLite, migration 0002: change notifications.
-- Keep migrations/postgres/0002_notifications.sql in step (same tables, same behaviour).
--
-- watch_subscriptions  what a caller watches, and the Graph subscription that serves it
-- notification_outbox  every accepted Graph notification, committed before Graph gets 202
-- change_events        what the worker made of them (and of delta resyncs), for consumers
-- consumer_webhooks    internal URLs that receive a subscription's events, signed
-- webhook_deliveries   one row per (webhook, event): retries, dead letters, replays

-- One row per watch. `id` is the gateway's and stays the same when the Graph subscription
-- behind it is re-created (`graph_id` then changes).
CREATE TABLE watch_subscriptions (
    id                    TEXT    NOT NULL PRIMARY KEY,
    caller                TEXT    NOT NULL,
    kind                  TEXT    NOT NULL,   -- mail | calendar | contacts | drive | users | groups
    target                TEXT    NOT NULL,   -- user object id, drive id, or '' (users, groups)
    folder                TEXT    NOT NULL,   -- mail folder as named, '' otherwise
    resource              TEXT    NOT NULL,   -- the Graph resource path
    change_types          TEXT    NOT NULL,   -- comma-separated, as Graph takes them
    include_resource_data INTEGER NOT NULL,
    graph_id              TEXT,               -- NULL while the Graph subscription must be (re)created
    client_state_hash     TEXT    NOT NULL,   -- hex SHA-256 of the clientState Graph holds
    expires_at            TEXT,               -- Graph's expirationDateTime
    renew_after           TEXT    NOT NULL,   -- when the renewal job next acts on it
    resync                TEXT,               -- pending resync: baseline | delta | full (NULL: none)
    delta_link            TEXT,               -- where the last committed resync ended
    synced_at             TEXT,               -- when that resync ended
    state                 TEXT    NOT NULL,   -- active | failed
    lease_owner           TEXT,
    lease_until           TEXT,
    last_error            TEXT,
    created_at            TEXT    NOT NULL,
    updated_at            TEXT    NOT NULL
) STRICT;
CREATE UNIQUE INDEX watch_subscriptions_graph_id ON watch_subscriptions (graph_id);
CREATE INDEX watch_subscriptions_renew_after ON watch_subscriptions (renew_after);
CREATE INDEX watch_subscriptions_caller ON watch_subscriptions (caller, created_at);

-- The outbox. `dedupe_key` makes Graph's retries and replays one row.
CREATE TABLE notification_outbox (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    dedupe_key      TEXT    NOT NULL UNIQUE,
    subscription_id TEXT    NOT NULL REFERENCES watch_subscriptions (id) ON DELETE CASCADE,
    graph_id        TEXT    NOT NULL,
    change_type     TEXT,               -- created | updated | deleted (NULL for lifecycle events)
    lifecycle_event TEXT,               -- reauthorizationRequired | subscriptionRemoved | missed | …
    resource        TEXT,
    resource_id     TEXT,
    etag            TEXT,
    resource_data   TEXT,               -- JSON: the decrypted item of a rich notification
    received_at     TEXT    NOT NULL,
    state           TEXT    NOT NULL,   -- pending | done | failed
    attempts        INTEGER NOT NULL,
    available_at    TEXT    NOT NULL,   -- claimable from then (a claim pushes it by the lease)
    lease_owner     TEXT,
    last_error      TEXT,
    processed_at    TEXT
) STRICT;
CREATE INDEX notification_outbox_due ON notification_outbox (state, available_at);
CREATE INDEX notification_outbox_received_at ON notification_outbox (received_at);

-- Changes as consumers see them. `id` is derived from what changed (subscription, item,
-- version), so the same change found by a notification and by a resync is one event.
CREATE TABLE change_events (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    id              TEXT    NOT NULL UNIQUE,
    subscription_id TEXT    NOT NULL REFERENCES watch_subscriptions (id) ON DELETE CASCADE,
    change_type     TEXT    NOT NULL,   -- created | updated | deleted | resyncRequired
    resource        TEXT    NOT NULL,
    resource_id     TEXT,
    data            TEXT,               -- JSON: the item as Graph had it when processed
    occurred_at     TEXT    NOT NULL
) STRICT;
CREATE INDEX change_events_subscription ON change_events (subscription_id, seq);
CREATE INDEX change_events_occurred_at ON change_events (occurred_at);

CREATE TABLE consumer_webhooks (
    id              TEXT    NOT NULL PRIMARY KEY,
    subscription_id TEXT    NOT NULL REFERENCES watch_subscriptions (id) ON DELETE CASCADE,
    caller          TEXT    NOT NULL,
    url             TEXT    NOT NULL,
    key_id          TEXT    NOT NULL,
    secret_enc      BLOB    NOT NULL,   -- the HMAC signing secret, sealed (src/store/cipher.rs)
    created_at      TEXT    NOT NULL
) STRICT;
CREATE INDEX consumer_webhooks_subscription ON consumer_webhooks (subscription_id);

CREATE TABLE webhook_deliveries (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    webhook_id      TEXT    NOT NULL REFERENCES consumer_webhooks (id) ON DELETE CASCADE,
    event_id        TEXT    NOT NULL REFERENCES change_events (id) ON DELETE CASCADE,
    state           TEXT    NOT NULL,   -- pending | delivered | dead
    attempts        INTEGER NOT NULL,
    next_attempt_at TEXT    NOT NULL,
    lease_owner     TEXT,
    last_status     INTEGER,
    last_error      TEXT,
    created_at      TEXT    NOT NULL,
    delivered_at    TEXT,
    UNIQUE (webhook_id, event_id)
) STRICT;
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (state, next_attempt_at);
