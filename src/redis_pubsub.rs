//! A Redis pub/sub subscription that outlives Redis outages.
//!
//! Two things listen on a channel for as long as the gateway runs: the live event bus
//! (other replicas' change events) and the shared cache (other replicas' invalidations).
//! Both need the same care, so it lives here once: reconnect with exponential backoff and
//! jitter while Redis is away, ping so that a connection that died without a reset (a
//! silent network partition) is noticed, log once when an outage starts and once when it
//! ends, and stop at shutdown. The redis crate's `ConnectionManager` reconnects, but not
//! for pub/sub connections, which is why this is written out.

use std::time::Duration;

use futures::StreamExt;
use redis::aio::PubSub;
use tokio_util::sync::CancellationToken;

/// Longest wait for Redis to connect and subscribe, or to answer a ping.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How often the subscriber connection is pinged: a dead connection is noticed within
/// about this long.
const PING_EVERY: Duration = Duration::from_secs(30);

/// Reconnection backoff bounds while Redis is away.
const BACKOFF_FIRST: Duration = Duration::from_millis(200);
const BACKOFF_MAX: Duration = Duration::from_secs(30);

/// A pub/sub connection subscribed to `channel`.
///
/// # Errors
///
/// Redis refuses, or does not answer within [`CONNECT_TIMEOUT`].
pub async fn subscribe(client: &redis::Client, channel: &str) -> anyhow::Result<PubSub> {
    let connect = async {
        let mut pubsub = client.get_async_pubsub().await?;
        pubsub.subscribe(channel).await?;
        Ok::<_, redis::RedisError>(pubsub)
    };
    match tokio::time::timeout(CONNECT_TIMEOUT, connect).await {
        Ok(result) => Ok(result?),
        Err(_) => Err(anyhow::anyhow!(
            "no answer from Redis within {} s",
            CONNECT_TIMEOUT.as_secs()
        )),
    }
}

/// Hands the payload of every message published on `channel` to `on_message` until
/// `shutdown`, starting with `first` when the caller already subscribed (to fail its start
/// when Redis is not there). `what` names the messages in the logs ("live events").
/// Messages published while the connection is down are not seen: Redis pub/sub keeps
/// nothing, and both users are built to afford that.
pub async fn listen(
    client: redis::Client,
    channel: String,
    first: Option<PubSub>,
    what: &'static str,
    mut on_message: impl FnMut(&[u8]),
    shutdown: CancellationToken,
) {
    let mut connected = first;
    let mut backoff = BACKOFF_FIRST;
    let mut outage = false;
    loop {
        let pubsub = match connected.take() {
            Some(pubsub) => pubsub,
            None => {
                let attempt = tokio::select! {
                    attempt = subscribe(&client, &channel) => attempt,
                    () = shutdown.cancelled() => return,
                };
                match attempt {
                    Ok(pubsub) => {
                        if outage {
                            tracing::info!("{what} from other replicas arrive through Redis again");
                        }
                        outage = false;
                        backoff = BACKOFF_FIRST;
                        pubsub
                    }
                    Err(e) => {
                        if !outage {
                            tracing::warn!(error = %e, "cannot subscribe to {what} in Redis; retrying");
                            outage = true;
                        }
                        let wait = backoff.mul_f64(0.5 + fastrand::f64() / 2.0);
                        backoff = (backoff * 2).min(BACKOFF_MAX);
                        tokio::select! {
                            () = tokio::time::sleep(wait) => continue,
                            () = shutdown.cancelled() => return,
                        }
                    }
                }
            }
        };
        let (mut sink, mut messages) = pubsub.split();
        let mut ping = tokio::time::interval(PING_EVERY);
        ping.tick().await;
        let lost = loop {
            tokio::select! {
                message = messages.next() => match message {
                    Some(message) => on_message(message.get_payload_bytes()),
                    None => break "the connection closed",
                },
                _ = ping.tick() => {
                    let answered = tokio::time::timeout(CONNECT_TIMEOUT, sink.ping::<redis::Value>()).await;
                    if !matches!(answered, Ok(Ok(_))) {
                        break "Redis stopped answering pings";
                    }
                }
                () = shutdown.cancelled() => return,
            }
        };
        if !outage {
            tracing::warn!(
                reason = lost,
                "lost the Redis subscription for {what}; reconnecting"
            );
            outage = true;
        }
    }
}
