//! The notifications runtime shared by the receiver, the workers and the subscription API:
//! creating, renewing and deleting the Graph subscriptions behind watches.
//!
//! Graph subscriptions are always made with the gateway's application identity, whoever
//! asked for the watch: a delegated subscription would die with the user's token. The
//! caller's right to watch a resource is decided by the policy before (see
//! `service::subscriptions`), exactly as for reading it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::json;
use time::OffsetDateTime;
use tokio::sync::Notify;
use url::Url;

use crate::config::NotificationsConfig;
use crate::graph::{GraphClient, GraphError, GraphWrite};
use crate::identity::Access;
use crate::store::{Store, Watch, WatchGraphState};
use crate::webhooks::bus::EventBus;
use crate::webhooks::rich::{RichKeyRing, ValidationTokenChecker};

/// Where Graph posts change notifications and lifecycle events, under `public_url`.
pub const NOTIFICATION_PATH: &str = "/webhooks/graph";
pub const LIFECYCLE_PATH: &str = "/webhooks/graph/lifecycle";

/// Longest time a Graph call of the workers may take (the subscription POST includes
/// Graph's 10-second validation handshake).
const GRAPH_CALL_LIMIT: Duration = Duration::from_secs(30);

/// What kinds of resource a watch can be on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WatchKind {
    Mail,
    Calendar,
    Contacts,
    Drive,
    Users,
    Groups,
}

impl WatchKind {
    pub fn as_str(self) -> &'static str {
        match self {
            WatchKind::Mail => "mail",
            WatchKind::Calendar => "calendar",
            WatchKind::Contacts => "contacts",
            WatchKind::Drive => "drive",
            WatchKind::Users => "users",
            WatchKind::Groups => "groups",
        }
    }

    pub fn parse(kind: &str) -> Option<WatchKind> {
        Some(match kind {
            "mail" => WatchKind::Mail,
            "calendar" => WatchKind::Calendar,
            "contacts" => WatchKind::Contacts,
            "drive" => WatchKind::Drive,
            "users" => WatchKind::Users,
            "groups" => WatchKind::Groups,
            _ => return None,
        })
    }

    /// The change types Graph allows for the resource (graph-protocol.md §10.1).
    pub fn allowed_changes(self) -> &'static [&'static str] {
        match self {
            WatchKind::Mail | WatchKind::Calendar | WatchKind::Contacts => {
                &["created", "updated", "deleted"]
            }
            WatchKind::Drive => &["updated"],
            WatchKind::Users | WatchKind::Groups => &["updated", "deleted"],
        }
    }

    /// Graph's maximum subscription lifetime for the resource (graph-protocol.md §10.5).
    pub fn max_lifetime(self, rich: bool) -> Duration {
        let minutes = match self {
            WatchKind::Mail | WatchKind::Calendar | WatchKind::Contacts if rich => 1_440,
            WatchKind::Mail | WatchKind::Calendar | WatchKind::Contacts => 10_080,
            WatchKind::Drive => 42_300,
            WatchKind::Users | WatchKind::Groups => 41_760,
        };
        Duration::from_secs(minutes * 60)
    }

    /// Whether changes can be caught up with a delta query (mail folders, drives); other
    /// kinds tell consumers to re-read instead (a `resyncRequired` event).
    pub fn has_delta(self) -> bool {
        matches!(self, WatchKind::Mail | WatchKind::Drive)
    }
}

/// Everything the notification machinery shares. One per gateway process.
pub struct Notifications {
    pub store: Store,
    pub graph: GraphClient,
    pub config: NotificationsConfig,
    pub public_url: Url,
    pub bus: EventBus,
    /// Decrypts rich notifications; None when `notifications.encryption` is unset.
    pub rich: Option<Arc<RichKeyRing>>,
    pub tokens: Option<Arc<ValidationTokenChecker>>,
    /// Identifies this process in leases.
    pub replica: String,
    pub wake_worker: Notify,
    pub wake_renewal: Notify,
    pub wake_deliveries: Arc<Notify>,
    /// The receiver's own rate limit (it has no caller to charge).
    pub receive_limit: crate::rate_limit::RateLimiter,
    /// Graph subscription ids that notifications came for but no watch has: possibly the
    /// gateway's own, orphaned (see [`Notifications::suspect_orphan`]).
    pub orphan_suspects: std::sync::Mutex<std::collections::BTreeSet<String>>,
}

/// Most suspected orphans remembered between two renewal passes: each costs a Graph GET,
/// and unknown ids are what a forger sends.
const MAX_ORPHAN_SUSPECTS: usize = 100;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ExistingSubscription {
    #[serde(default)]
    notification_url: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CreatedSubscription {
    id: String,
    #[serde(with = "time::serde::rfc3339")]
    expiration_date_time: OffsetDateTime,
}

impl Notifications {
    fn access(&self) -> Access {
        Access::new(self.graph.tokens().app_identity(), None, 0)
    }

    fn deadline() -> Instant {
        Instant::now() + GRAPH_CALL_LIMIT
    }

    pub fn notification_url(&self) -> String {
        join(&self.public_url, NOTIFICATION_PATH)
    }

    pub fn lifecycle_url(&self) -> String {
        join(&self.public_url, LIFECYCLE_PATH)
    }

    /// The lifetime to ask for: the configured one, at most the resource's maximum (less
    /// a minute, so clock skew never makes Graph refuse it).
    pub fn lifetime(&self, kind: WatchKind, rich: bool) -> Duration {
        let max = kind.max_lifetime(rich) - Duration::from_secs(60);
        match self.config.lifetime {
            Some(wanted) => wanted.min(max),
            None => max - Duration::from_secs(3600),
        }
    }

    /// Creates the Graph subscription for `watch` with a fresh clientState (256 random
    /// bits; only its hash is kept). Graph validates our notification URLs before it
    /// answers, so the gateway must be serving.
    pub async fn create_graph_subscription(
        &self,
        watch: &Watch,
    ) -> Result<WatchGraphState, GraphError> {
        let kind = WatchKind::parse(&watch.kind).ok_or_else(|| {
            GraphError::BadResponse(format!("unknown watch kind '{}'", watch.kind))
        })?;
        let lifetime = self.lifetime(kind, watch.include_resource_data);
        let client_state = random_client_state();
        let expires = OffsetDateTime::now_utc() + lifetime;
        let mut body = json!({
            "changeType": watch.change_types,
            "notificationUrl": self.notification_url(),
            "lifecycleNotificationUrl": self.lifecycle_url(),
            "resource": watch.resource,
            "expirationDateTime": rfc3339(expires),
            "clientState": client_state,
            "latestSupportedTlsVersion": "v1_2",
        });
        if watch.include_resource_data {
            let Some(keys) = &self.rich else {
                return Err(GraphError::BadResponse(
                    "resource data requested but notifications.encryption is not configured".into(),
                ));
            };
            body["includeResourceData"] = json!(true);
            body["encryptionCertificate"] = json!(keys.active().certificate_base64());
            body["encryptionCertificateId"] = json!(keys.active().certificate_id());
        }
        let reply = self
            .graph
            .write(
                &self.access(),
                &GraphWrite::post("/subscriptions", body),
                Self::deadline(),
            )
            .await?;
        let created: CreatedSubscription = serde_json::from_slice(&reply.body)
            .map_err(|e| GraphError::BadResponse(format!("subscription answer: {e}")))?;
        tracing::info!(
            watch = %watch.id,
            graph_id = %created.id,
            resource = %watch.resource,
            "Graph subscription created"
        );
        Ok(WatchGraphState {
            graph_id: created.id,
            client_state_hash: hash_client_state(&client_state),
            expires_at: created.expiration_date_time,
            renew_after: renew_point(OffsetDateTime::now_utc(), created.expiration_date_time),
        })
    }

    /// Extends the Graph subscription (this also answers `reauthorizationRequired`).
    /// `Ok(None)` when Graph no longer knows it (expired or removed).
    pub async fn renew_graph_subscription(
        &self,
        watch: &Watch,
        graph_id: &str,
    ) -> Result<Option<WatchGraphState>, GraphError> {
        let kind = WatchKind::parse(&watch.kind).ok_or_else(|| {
            GraphError::BadResponse(format!("unknown watch kind '{}'", watch.kind))
        })?;
        let expires = OffsetDateTime::now_utc() + self.lifetime(kind, watch.include_resource_data);
        let url = format!("/subscriptions/{}", encode_segment(graph_id));
        let result = self
            .graph
            .write(
                &self.access(),
                &GraphWrite::patch(url, json!({ "expirationDateTime": rfc3339(expires) })),
                Self::deadline(),
            )
            .await;
        let reply = match result {
            Ok(reply) => reply,
            Err(GraphError::Api { status: 404, .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        let renewed: CreatedSubscription = serde_json::from_slice(&reply.body)
            .map_err(|e| GraphError::BadResponse(format!("subscription answer: {e}")))?;
        Ok(Some(WatchGraphState {
            graph_id: renewed.id,
            client_state_hash: watch.client_state_hash.clone(),
            expires_at: renewed.expiration_date_time,
            renew_after: renew_point(OffsetDateTime::now_utc(), renewed.expiration_date_time),
        }))
    }

    /// Deletes a Graph subscription; one Graph no longer knows is already gone.
    pub async fn delete_graph_subscription(&self, graph_id: &str) -> Result<(), GraphError> {
        let url = format!("/subscriptions/{}", encode_segment(graph_id));
        match self
            .graph
            .write(&self.access(), &GraphWrite::delete(url), Self::deadline())
            .await
        {
            Ok(_) | Err(GraphError::Api { status: 404, .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Remembers a subscription id a notification came for that no watch has. A Graph
    /// subscription the gateway created but never recorded (a crash between Graph's answer
    /// and the store) would otherwise notify for days; the renewal job checks each suspect
    /// and deletes it if it is the gateway's (catalogue row 69). Only GUIDs are kept, at
    /// most [`MAX_ORPHAN_SUSPECTS`].
    pub fn suspect_orphan(&self, graph_id: &str) -> bool {
        if uuid::Uuid::parse_str(graph_id).is_err() {
            return false;
        }
        let mut suspects = self
            .orphan_suspects
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if suspects.len() >= MAX_ORPHAN_SUSPECTS {
            return false;
        }
        suspects.insert(graph_id.to_owned())
    }

    /// Checks the suspected orphans: a Graph subscription that notifies the gateway's own
    /// URL and belongs to no watch is deleted. Returns how many were deleted.
    pub async fn delete_orphans(&self) -> usize {
        let suspects: Vec<String> = std::mem::take(
            &mut *self
                .orphan_suspects
                .lock()
                .unwrap_or_else(|p| p.into_inner()),
        )
        .into_iter()
        .collect();
        let mut deleted = 0;
        for id in suspects {
            if self.known(&id).await {
                continue;
            }
            let url = format!("/subscriptions/{}", encode_segment(&id));
            let found = match self
                .graph
                .get_fresh(
                    &self.access(),
                    &crate::graph::GraphGet::new(url),
                    Self::deadline(),
                )
                .await
            {
                Ok(body) => serde_json::from_slice::<ExistingSubscription>(&body).ok(),
                // Unknown to Graph too (forged, or gone): nothing to do.
                Err(_) => None,
            };
            let ours = found.is_some_and(|s| s.notification_url == self.notification_url());
            if ours && !self.known(&id).await {
                match self.delete_graph_subscription(&id).await {
                    Ok(()) => {
                        tracing::warn!(graph_id = %id, "deleted an orphaned Graph subscription of this gateway");
                        metrics::counter!("gateway_subscription_upkeep_total", "outcome" => "orphan_deleted")
                            .increment(1);
                        deleted += 1;
                    }
                    Err(e) => {
                        tracing::warn!(graph_id = %id, error = %e, "orphaned subscription not deleted")
                    }
                }
            }
        }
        deleted
    }

    /// Whether a watch has this Graph subscription. A store that cannot answer counts as
    /// "known": nothing is deleted on a doubt.
    async fn known(&self, graph_id: &str) -> bool {
        !matches!(self.store.watch_by_graph_id(graph_id).await, Ok(None))
    }

    /// The app identity's view for the workers' reads.
    pub fn app_access(&self) -> Access {
        self.access()
    }

    pub fn worker_deadline() -> Instant {
        Self::deadline()
    }
}

/// When to renew: two-thirds into the remaining lifetime.
pub fn renew_point(now: OffsetDateTime, expires: OffsetDateTime) -> OffsetDateTime {
    let left = expires - now;
    if left.is_negative() {
        return now;
    }
    now + left * 2 / 3
}

/// 32 random bytes, base64url: 43 characters, well under Graph's 128.
fn random_client_state() -> String {
    use base64::Engine;
    let mut bytes = [0u8; 32];
    // The system RNG failing leaves no safe way on; it does not happen on supported systems.
    aws_lc_rs::rand::fill(&mut bytes).expect("the system random number generator works");
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Hex SHA-256 of a clientState: what the store keeps and the receiver compares.
pub fn hash_client_state(client_state: &str) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, client_state.as_bytes());
    hex(digest.as_ref())
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

fn encode_segment(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

fn join(base: &Url, path: &str) -> String {
    format!("{}{}", base.as_str().trim_end_matches('/'), path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renewal_falls_two_thirds_into_the_lifetime() {
        let now = OffsetDateTime::UNIX_EPOCH;
        let expires = now + time::Duration::minutes(90);
        assert_eq!(renew_point(now, expires), now + time::Duration::minutes(60));
        assert_eq!(renew_point(expires, now), expires);
    }

    #[test]
    fn client_states_are_random_256_bit_values_and_only_their_hash_is_kept() {
        let a = random_client_state();
        let b = random_client_state();
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
        let h = hash_client_state(&a);
        assert_eq!(h.len(), 64);
        assert!(!h.contains(&a));
    }

    #[test]
    fn lifetimes_follow_graphs_maximum_per_resource() {
        assert_eq!(WatchKind::Mail.max_lifetime(false).as_secs(), 10_080 * 60);
        assert_eq!(WatchKind::Mail.max_lifetime(true).as_secs(), 1_440 * 60);
        assert_eq!(WatchKind::Drive.max_lifetime(false).as_secs(), 42_300 * 60);
        assert_eq!(WatchKind::Users.max_lifetime(false).as_secs(), 41_760 * 60);
        assert_eq!(WatchKind::Drive.allowed_changes(), ["updated"]);
    }
}
