//! Configuration of change notifications: receiving Graph's, keeping subscriptions alive,
//! and delivering events to internal consumers (GraphQL subscriptions, signed webhooks).

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::duration;

/// Change notifications (graph-protocol.md §10). Needs the store (subscriptions, the
/// notification outbox, events) and a `public_url` Graph can reach.
#[derive(Clone, Debug, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct NotificationsConfig {
    /// Receive notifications at `/webhooks/graph` and run the outbox, renewal and delivery
    /// workers. Off: the subscription API answers `UNAVAILABLE` and the routes are absent.
    pub enabled: bool,
    /// Base URL Microsoft Graph posts notifications to (`…/webhooks/graph`), when it is not
    /// `public_url` (e.g. the load balancer's address inside a container network). Graph
    /// requires https.
    pub public_url: Option<url::Url>,
    /// Lifetime asked of Graph for a new or renewed subscription, capped at the resource's
    /// maximum (messages, events, contacts 7 days, 1 day with resource data; drives 30
    /// days; users and groups 29 days). Unset: that maximum less one hour.
    #[serde(with = "duration::option")]
    #[schemars(with = "Option<crate::config::DurationText>")]
    pub lifetime: Option<Duration>,
    /// How often the renewal job looks for subscriptions due (renewal happens at about
    /// two-thirds of the lifetime, and at once after a lifecycle event).
    #[serde(with = "duration")]
    #[schemars(with = "crate::config::DurationText")]
    pub renewal_interval: Duration,
    /// How often the outbox worker looks for work it was not woken for (notifications
    /// received by another replica, leases of a replica that died).
    #[serde(with = "duration")]
    #[schemars(with = "crate::config::DurationText")]
    pub poll_interval: Duration,
    /// How long a replica owns a claimed notification; past it another replica takes over.
    #[serde(with = "duration")]
    #[schemars(with = "crate::config::DurationText")]
    pub lease: Duration,
    /// Processing attempts of one notification before it is set aside as failed.
    pub max_attempts: u32,
    /// How long processed notifications are kept to recognise Graph's retries and
    /// replays (Graph retries for up to 4 hours).
    #[serde(with = "duration")]
    #[schemars(with = "crate::config::DurationText")]
    pub dedupe_window: Duration,
    /// How long change events are kept for inspection and replay.
    #[serde(with = "duration")]
    #[schemars(with = "crate::config::DurationText")]
    pub event_retention: Duration,
    /// Largest notification POST accepted from Graph. Far above any real Graph batch: a
    /// 413 would make Graph retry and finally drop the changes.
    pub max_body_bytes: usize,
    /// Notification POSTs accepted per second on `/webhooks/graph` (per replica; the
    /// route is outside caller authentication, so it has a limit of its own). Twice as many
    /// may come at once.
    pub receive_requests_per_second: f64,
    /// The certificate Graph encrypts resource data with (`includeResourceData`). Unset:
    /// subscriptions with resource data are refused.
    pub encryption: Option<NotificationCertificate>,
    /// Outbound webhooks to internal consumers.
    pub webhooks: OutboundWebhooksConfig,
}

impl Default for NotificationsConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            public_url: None,
            lifetime: None,
            renewal_interval: Duration::from_secs(60),
            poll_interval: Duration::from_secs(2),
            lease: Duration::from_secs(30),
            max_attempts: 10,
            dedupe_window: Duration::from_secs(7 * 24 * 3600),
            event_retention: Duration::from_secs(7 * 24 * 3600),
            max_body_bytes: 32 * 1024 * 1024,
            receive_requests_per_second: 1000.0,
            encryption: None,
            webhooks: OutboundWebhooksConfig::default(),
        }
    }
}

/// A certificate (PEM, RSA key) and its private key (PEM) for rich notifications.
#[derive(Clone, Debug, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NotificationCertificate {
    pub certificate_file: PathBuf,
    pub private_key_file: PathBuf,
    /// The `encryptionCertificateId` given to Graph, and sent back with each notification.
    pub certificate_id: String,
    /// Earlier certificates, kept until every subscription is renewed with the new one.
    #[serde(default)]
    pub previous: Vec<PreviousCertificate>,
}

/// A retired rich-notification certificate still accepted for decryption.
#[derive(Clone, Debug, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PreviousCertificate {
    pub certificate_file: PathBuf,
    pub private_key_file: PathBuf,
    pub certificate_id: String,
}

/// Signed outbound webhooks to internal consumers.
#[derive(Clone, Debug, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct OutboundWebhooksConfig {
    /// URL prefixes a consumer webhook may point to (`https://orders.internal/`). Empty:
    /// registering a webhook is refused, so no caller can make the gateway call an
    /// arbitrary address.
    pub allowed_url_prefixes: Vec<String>,
    /// Delivery attempts before a delivery is dead-lettered.
    pub max_attempts: u32,
    /// First retry delay; doubled after each failure (with jitter), at most 1 hour.
    #[serde(with = "duration")]
    #[schemars(with = "crate::config::DurationText")]
    pub retry_base: Duration,
    /// Time one delivery attempt may take.
    #[serde(with = "duration")]
    #[schemars(with = "crate::config::DurationText")]
    pub timeout: Duration,
}

impl Default for OutboundWebhooksConfig {
    fn default() -> Self {
        Self {
            allowed_url_prefixes: Vec::new(),
            max_attempts: 8,
            retry_base: Duration::from_secs(2),
            timeout: Duration::from_secs(10),
        }
    }
}

impl NotificationsConfig {
    pub(crate) fn validate(&self, production: bool, problems: &mut Vec<String>) {
        if let Some(url) = &self.public_url {
            let ok = match url.scheme() {
                "https" => true,
                "http" => !production,
                _ => false,
            };
            if !ok || url.host().is_none() {
                problems.push(format!(
                    "notifications.public_url: Graph posts notifications over https (plain http only outside production), got '{url}'"
                ));
            }
        }
        if self.lifetime.is_some_and(|l| l < Duration::from_secs(60)) {
            problems.push("notifications.lifetime: must be at least 1m".to_owned());
        }
        // NaN fails too.
        if self.receive_requests_per_second.is_nan() || self.receive_requests_per_second <= 0.0 {
            problems.push("notifications.receive_requests_per_second: must be above 0".to_owned());
        }
        if self.lease < Duration::from_secs(1) {
            problems.push("notifications.lease: must be at least 1s".to_owned());
        }
        if self.max_attempts == 0 {
            problems.push("notifications.max_attempts: must be at least 1".to_owned());
        }
        if self.webhooks.max_attempts == 0 {
            problems.push("notifications.webhooks.max_attempts: must be at least 1".to_owned());
        }
        for prefix in &self.webhooks.allowed_url_prefixes {
            match url::Url::parse(prefix) {
                Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {}
                _ => problems.push(format!(
                    "notifications.webhooks.allowed_url_prefixes: '{prefix}' is not an http(s) URL with a host"
                )),
            }
        }
        if let Some(cert) = &self.encryption
            && cert.certificate_id.trim().is_empty()
        {
            problems.push("notifications.encryption.certificate_id: must not be empty".to_owned());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(config: &NotificationsConfig, production: bool) -> Vec<String> {
        let mut p = Vec::new();
        config.validate(production, &mut p);
        p
    }

    #[test]
    fn the_notification_url_must_be_https_in_production_and_prefixes_real_urls() {
        let mut config = NotificationsConfig::default();
        assert!(problems(&config, true).is_empty());
        config.public_url = Some("http://lb:8080".parse().unwrap());
        assert!(problems(&config, false).is_empty());
        assert!(problems(&config, true)[0].starts_with("notifications.public_url"));
        config.public_url = Some("https://gateway.example.com".parse().unwrap());
        assert!(problems(&config, true).is_empty());
        config.webhooks.allowed_url_prefixes = vec!["not a url".into()];
        config.receive_requests_per_second = f64::NAN;
        let p = problems(&config, false);
        assert_eq!(p.len(), 2, "{p:?}");
    }
}
