//! Consumer webhooks of watches: registering an internal URL that receives a watch's change
//! events (signed, see `webhooks::outbound`), listing and deleting them, and inspecting and
//! replaying their deliveries. Transports (REST today, GraphQL later) call these functions
//! and map [`ServiceError`] once each.
//!
//! Who may do what: the caller needs the `subscriptions.manage` operation, and sees only the
//! webhooks of watches it owns; anything else is `NOT_FOUND`, exactly as if it did not
//! exist, so one caller cannot learn another's ids.
//!
//! The URL policy is the SSRF guard: the gateway sits inside the network and would POST to
//! whatever a caller names, so a webhook URL must lie under one of
//! `notifications.webhooks.allowed_url_prefixes`, compared as parsed URLs (see
//! [`check_url`]). The delivery worker checks again before every attempt, so removing a
//! prefix stops deliveries to it even for webhooks registered earlier.

use url::Url;

use super::{ServiceError, Services};
use crate::auth::Caller;
use crate::store::{
    ConsumerWebhook, DeliveryInfo, DeliveryState, ReplayOutcome, Store, StoreError, WebhookSecret,
};

/// The operation every webhook use-case needs.
pub const OPERATION: &str = "subscriptions.manage";

/// The configuration key the URL policy reads, named in its messages.
pub const ALLOWED_PREFIXES_KEY: &str = "notifications.webhooks.allowed_url_prefixes";

/// Longest webhook URL accepted.
pub const MAX_URL_LEN: usize = 2048;

/// Deliveries listed when no limit is given, and the most one listing returns.
pub const DEFAULT_DELIVERY_LIMIT: usize = 50;
pub const MAX_DELIVERY_LIMIT: usize = 200;

/// Why a URL is refused; the text is for the caller (it names no allowed prefix).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct UrlRefused(String);

/// Checks `text` against the allowed prefixes and returns it parsed (normalised: dot
/// segments resolved, host lower-cased), which is the form to store and call.
///
/// A URL is under a prefix when both parse and have the same scheme, host and port
/// (default ports made explicit), and the URL's path starts with the prefix's path on a
/// segment boundary: prefix `/hooks/` admits `/hooks/orders`; prefix `/hooks` admits
/// `/hooks` and `/hooks/orders` but not `/hooksX`. URLs with a user name or password are
/// refused outright (`https://orders.internal@evil/` is a request to `evil`).
pub fn check_url(text: &str, allowed_prefixes: &[String]) -> Result<Url, UrlRefused> {
    if allowed_prefixes.is_empty() {
        return Err(UrlRefused(format!(
            "webhooks are disabled: {ALLOWED_PREFIXES_KEY} is empty; an operator must list the URL prefixes consumer webhooks may use"
        )));
    }
    if text.len() > MAX_URL_LEN {
        return Err(UrlRefused(format!(
            "url: longer than {MAX_URL_LEN} characters"
        )));
    }
    let url = Url::parse(text.trim())
        .map_err(|e| UrlRefused(format!("url: not an absolute URL ({e})")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(UrlRefused("url: must be http or https".into()));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(UrlRefused(
            "url: must not contain a user name or password".into(),
        ));
    }
    let admitted = allowed_prefixes
        .iter()
        .filter_map(|p| Url::parse(p).ok())
        .any(|prefix| is_under(&url, &prefix));
    if admitted {
        Ok(url)
    } else {
        Err(UrlRefused(format!(
            "url: '{url}' is not under any of the prefixes in {ALLOWED_PREFIXES_KEY}"
        )))
    }
}

fn is_under(url: &Url, prefix: &Url) -> bool {
    url.scheme() == prefix.scheme()
        && url.host().is_some()
        && url.host() == prefix.host()
        && url.port_or_known_default() == prefix.port_or_known_default()
        && path_is_under(url.path(), prefix.path())
}

fn path_is_under(path: &str, prefix: &str) -> bool {
    if prefix.ends_with('/') {
        path.starts_with(prefix)
    } else {
        path.strip_prefix(prefix)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    }
}

fn store(services: &Services) -> Result<&Store, ServiceError> {
    services.store.as_ref().ok_or_else(|| {
        ServiceError::Unavailable("consumer webhooks need the store, which is not enabled".into())
    })
}

fn store_error(e: StoreError) -> ServiceError {
    match e {
        StoreError::Unavailable(reason) => {
            tracing::error!(%reason, "store unavailable");
            ServiceError::Unavailable("the gateway's store is unavailable; retry later".into())
        }
        other => {
            tracing::error!(error = %other, "store failure");
            ServiceError::Internal
        }
    }
}

fn require(caller: &Caller) -> Result<(), ServiceError> {
    if caller.may(OPERATION) {
        Ok(())
    } else {
        tracing::info!(caller = %caller.name, operation = OPERATION, "denied by policy");
        Err(ServiceError::Forbidden(format!(
            "caller '{}' is not allowed to perform '{OPERATION}'",
            caller.name
        )))
    }
}

/// The caller's own watch, or `NOT_FOUND`.
async fn owned_watch(store: &Store, caller: &Caller, id: &str) -> Result<(), ServiceError> {
    match store.watch(id).await.map_err(store_error)? {
        Some(watch) if watch.caller == caller.name => Ok(()),
        _ => Err(ServiceError::NotFound(format!(
            "subscription '{id}' was not found"
        ))),
    }
}

/// The caller's own webhook, or `NOT_FOUND`.
async fn owned_webhook(
    store: &Store,
    caller: &Caller,
    id: &str,
) -> Result<ConsumerWebhook, ServiceError> {
    match store.consumer_webhook(id).await.map_err(store_error)? {
        Some(webhook) if webhook.caller == caller.name => Ok(webhook),
        _ => Err(ServiceError::NotFound(format!(
            "webhook '{id}' was not found"
        ))),
    }
}

/// Registers `url` for the events of the caller's watch `subscription_id`. The secret is
/// returned here only.
pub async fn create(
    services: &Services,
    caller: &Caller,
    subscription_id: &str,
    url: &str,
) -> Result<(ConsumerWebhook, WebhookSecret), ServiceError> {
    require(caller)?;
    // The policy first: with no prefix configured the store may not even be open, and the
    // caller should learn that webhooks are disabled, not that the store is missing.
    let url = check_url(url, &services.outbound_webhooks.allowed_url_prefixes)
        .map_err(|e| ServiceError::BadInput(e.to_string()))?;
    let store = store(services)?;
    owned_watch(store, caller, subscription_id).await?;
    let (webhook, secret) = store
        .create_consumer_webhook(subscription_id, &caller.name, url.as_str())
        .await
        .map_err(store_error)?;
    tracing::info!(caller = %caller.name, subscription = subscription_id, webhook = %webhook.id, "consumer webhook registered");
    Ok((webhook, secret))
}

/// The webhooks of the caller's watch.
pub async fn list(
    services: &Services,
    caller: &Caller,
    subscription_id: &str,
) -> Result<Vec<ConsumerWebhook>, ServiceError> {
    require(caller)?;
    let store = store(services)?;
    owned_watch(store, caller, subscription_id).await?;
    store
        .list_consumer_webhooks(subscription_id)
        .await
        .map_err(store_error)
}

/// Deletes one of the caller's webhooks with its deliveries.
pub async fn delete(
    services: &Services,
    caller: &Caller,
    webhook_id: &str,
) -> Result<(), ServiceError> {
    require(caller)?;
    let store = store(services)?;
    owned_webhook(store, caller, webhook_id).await?;
    if store
        .delete_consumer_webhook(webhook_id)
        .await
        .map_err(store_error)?
    {
        tracing::info!(caller = %caller.name, webhook = webhook_id, "consumer webhook deleted");
        Ok(())
    } else {
        Err(ServiceError::NotFound(format!(
            "webhook '{webhook_id}' was not found"
        )))
    }
}

/// Deliveries of one of the caller's webhooks, newest first.
pub async fn deliveries(
    services: &Services,
    caller: &Caller,
    webhook_id: &str,
    state: Option<DeliveryState>,
    limit: Option<usize>,
) -> Result<Vec<DeliveryInfo>, ServiceError> {
    let limit = limit.unwrap_or(DEFAULT_DELIVERY_LIMIT);
    if !(1..=MAX_DELIVERY_LIMIT).contains(&limit) {
        return Err(ServiceError::BadInput(format!(
            "limit: must be between 1 and {MAX_DELIVERY_LIMIT}"
        )));
    }
    require(caller)?;
    let store = store(services)?;
    owned_webhook(store, caller, webhook_id).await?;
    store
        .list_deliveries(webhook_id, state, limit as i64)
        .await
        .map_err(store_error)
}

/// Sends a delivered or dead delivery again, now.
pub async fn replay(
    services: &Services,
    caller: &Caller,
    webhook_id: &str,
    seq: i64,
) -> Result<(), ServiceError> {
    require(caller)?;
    let store = store(services)?;
    owned_webhook(store, caller, webhook_id).await?;
    match store
        .replay_delivery(webhook_id, seq)
        .await
        .map_err(store_error)?
    {
        ReplayOutcome::Replayed => Ok(()),
        ReplayOutcome::NotFound => Err(ServiceError::NotFound(format!(
            "delivery {seq} of webhook '{webhook_id}' was not found"
        ))),
        ReplayOutcome::StillPending => Err(ServiceError::Conflict(format!(
            "delivery {seq} is still pending; only delivered or dead deliveries can be replayed"
        ))),
    }
}

/// Sends every dead delivery of one of the caller's webhooks again; returns how many.
pub async fn replay_dead(
    services: &Services,
    caller: &Caller,
    webhook_id: &str,
) -> Result<u64, ServiceError> {
    require(caller)?;
    let store = store(services)?;
    owned_webhook(store, caller, webhook_id).await?;
    store
        .replay_dead_deliveries(webhook_id)
        .await
        .map_err(store_error)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prefixes(list: &[&str]) -> Vec<String> {
        list.iter().map(|p| p.to_string()).collect()
    }

    fn refused(url: &str, allowed: &[&str]) -> String {
        match check_url(url, &prefixes(allowed)) {
            Err(UrlRefused(reason)) => reason,
            Ok(parsed) => panic!("{url} was admitted as {parsed}"),
        }
    }

    #[test]
    fn a_url_under_a_prefix_on_a_segment_boundary_is_admitted() {
        let allowed = prefixes(&["https://orders.internal/hooks/", "http://10.0.0.5:8080/in"]);
        for url in [
            "https://orders.internal/hooks/",
            "https://orders.internal/hooks/orders?tenant=1",
            "https://ORDERS.internal:443/hooks/a/b",
            "http://10.0.0.5:8080/in",
            "http://10.0.0.5:8080/in/x",
        ] {
            assert!(check_url(url, &allowed).is_ok(), "{url}");
        }
        assert!(
            check_url(
                "https://orders.internal/any",
                &prefixes(&["https://orders.internal"])
            )
            .is_ok()
        );
    }

    #[test]
    fn a_lookalike_host_userinfo_another_scheme_or_port_is_refused() {
        let allowed = ["https://orders.internal/"];
        for url in [
            "https://orders.internal.evil.com/",
            "https://evil.com/orders.internal/",
            "http://orders.internal/",
            "https://orders.internal:8443/",
            "ftp://orders.internal/",
        ] {
            refused(url, &allowed);
        }
        assert!(refused("https://orders.internal@evil/", &allowed).contains("user name"));
        assert!(refused("https://user:pw@orders.internal/", &allowed).contains("user name"));
    }

    #[test]
    fn a_path_that_only_shares_a_prefix_or_climbs_out_is_refused() {
        refused(
            "https://orders.internal/hooksX",
            &["https://orders.internal/hooks/"],
        );
        refused(
            "https://orders.internal/hooks",
            &["https://orders.internal/hooks/"],
        );
        refused(
            "https://orders.internal/hooksX/a",
            &["https://orders.internal/hooks"],
        );
        refused(
            "https://orders.internal/hooks/../admin",
            &["https://orders.internal/hooks/"],
        );
        refused(
            "https://orders.internal/hooks/%2e%2e/admin",
            &["https://orders.internal/hooks/"],
        );
        refused(
            "https://orders.internal/hooks%2Fx",
            &["https://orders.internal/hooks"],
        );
    }

    #[test]
    fn with_no_prefix_configured_every_url_is_refused_naming_the_key() {
        let reason = refused("https://orders.internal/hooks/", &[]);
        assert!(reason.contains(ALLOWED_PREFIXES_KEY), "{reason}");
    }

    #[test]
    fn an_unparsable_or_overlong_url_is_refused() {
        let allowed = ["https://orders.internal/"];
        refused("not a url", &allowed);
        refused("/relative/path", &allowed);
        let long = format!("https://orders.internal/{}", "a".repeat(MAX_URL_LEN));
        assert!(refused(&long, &allowed).contains("longer"));
    }
}
