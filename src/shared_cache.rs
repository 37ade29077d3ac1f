//! Redis as a second-level cache shared by every replica (issue 8): Graph answers, and
//! Graph tokens sealed with `redis.token_key`.
//!
//! The first level stays each replica's moka caches ([`crate::graph::GraphClient`],
//! [`crate::identity::TokenBroker`]); this level is only asked on their misses, and filled
//! after a fetch. Keys (all under `redis.key_prefix`):
//!
//! - `{prefix}:resp:{gen}:{sha256(cache key)}`: a Graph answer's body as Graph sent it,
//!   for `cache.ttl`. The cache key holds the identity namespace (identity + policy
//!   version), so an answer fetched as one identity is never found under another's key.
//!   Bodies over [`MAX_ENTRY_BYTES`] stay in the first level only.
//! - `{prefix}:gen:mailbox:{mailbox}` and `{prefix}:gen:files`: generation counters. An
//!   answer about a mailbox (or about files) is stored under that mailbox's (the files')
//!   current generation, other answers under generation 0. A write `INCR`s the
//!   generation before it returns, so every replica's next lookup reads the new number
//!   and misses; the old entries are unreachable and expire by their TTL. The first level
//!   keys such answers by generation too, so a replica never serves an answer from before
//!   another replica's write (at the price of one Redis round trip per lookup of them).
//!   The write is also published on `{prefix}:invalidate`, so the other replicas drop
//!   those unreachable first-level entries at once instead of at their TTL.
//! - `{prefix}:token:{sha256(identity)}`: a Graph token, AES-256-GCM sealed (aws-lc-rs,
//!   random nonce: `nonce || ciphertext || tag`), the identity as associated data, for the
//!   token's lifetime minus the refresh margin. Only with `redis.token_key`; never in
//!   plain text.
//!
//! Redis failing never fails a request: the lookup is a miss, the write is dropped, the
//! outage is logged once and counted in `graph_cache_l2_errors_total`, and for a second
//! after a failure Redis is not asked at all (so a partition costs no timeouts per
//! request). While Redis is away replicas only see their own writes, as without Redis.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_lc_rs::aead::{AES_256_GCM, Aad, NONCE_LEN, Nonce, RandomizedNonceKey};
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

/// Largest answer written to Redis; bigger ones stay in the replica's own cache.
pub const MAX_ENTRY_BYTES: usize = 1024 * 1024;

/// Longest wait for one Redis exchange before it counts as a failure.
const OP_TIMEOUT: Duration = Duration::from_millis(500);

/// After a failure Redis is left alone this long (every lookup is a plain miss).
const PAUSE_AFTER_FAILURE: Duration = Duration::from_secs(1);

const TAG_LEN: usize = 16;

/// What a cached answer is about, which decides the generation it is stored under.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Not invalidated by writes (directory, groups, sites): generation 0.
    None,
    /// A mailbox's mail, calendar or contacts: the percent-decoded path segment, lowercase.
    Mailbox(String),
    /// Drives and items.
    Files,
}

/// A first-level eviction another replica asked for.
pub type Evict = Arc<dyn Fn(&Scope) + Send + Sync>;

pub struct SharedCache {
    /// Reconnects by itself; commands fail fast while Redis is away.
    connection: redis::aio::ConnectionManager,
    client: redis::Client,
    prefix: String,
    /// Random per process: tells this replica's own invalidations from the others'.
    replica: String,
    /// TTL of answers (`cache.ttl`).
    response_ttl: Duration,
    /// Seals tokens; None: tokens are not shared.
    token_key: Option<RandomizedNonceKey>,
    /// Set while Redis fails, so an outage is logged once.
    failing: AtomicBool,
    /// Milliseconds after `started` before which Redis is not asked (after a failure).
    paused_until: AtomicU64,
    started: Instant,
}

/// What goes over `{prefix}:invalidate`.
#[derive(Serialize, Deserialize)]
struct Message {
    replica: String,
    scope: Scope,
}

impl SharedCache {
    /// Connects (as the rate limiter does: a configured Redis that does not answer
    /// within 5 s stops the start).
    ///
    /// # Errors
    ///
    /// The URL is invalid or Redis does not answer.
    pub async fn connect(
        url: &str,
        prefix: &str,
        response_ttl: Duration,
        token_key: Option<[u8; 32]>,
    ) -> anyhow::Result<Arc<SharedCache>> {
        let client = redis::Client::open(url).map_err(|e| anyhow::anyhow!("redis.url: {e}"))?;
        let connection = crate::rate_limit::RateLimiter::connect_redis(url).await?;
        let token_key = token_key
            .map(|k| RandomizedNonceKey::new(&AES_256_GCM, &k))
            .transpose()
            .map_err(|_| anyhow::anyhow!("redis.token_key: not a usable AES-256 key"))?;
        Ok(Arc::new(SharedCache {
            connection,
            client,
            prefix: prefix.to_owned(),
            replica: uuid::Uuid::new_v4().to_string(),
            response_ttl,
            token_key,
            failing: AtomicBool::new(false),
            paused_until: AtomicU64::new(0),
            started: Instant::now(),
        }))
    }

    /// Whether tokens are shared (a `token_key` is configured).
    pub fn shares_tokens(&self) -> bool {
        self.token_key.is_some()
    }

    fn generation_key(&self, scope: &Scope) -> Option<String> {
        match scope {
            Scope::None => None,
            Scope::Mailbox(m) => Some(format!("{}:gen:mailbox:{m}", self.prefix)),
            Scope::Files => Some(format!("{}:gen:files", self.prefix)),
        }
    }

    fn response_key(&self, generation: u64, cache_key: &str) -> String {
        format!(
            "{}:resp:{generation}:{}",
            self.prefix,
            hex_sha256(cache_key)
        )
    }

    fn token_redis_key(&self, identity: &str) -> String {
        format!("{}:token:{}", self.prefix, hex_sha256(identity))
    }

    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// Runs one exchange unless Redis is paused; a failure or timeout is logged once per
    /// outage, counted, pauses Redis, and comes back as None.
    async fn run<T: redis::FromRedisValue>(&self, what: &str, pipe: &redis::Pipeline) -> Option<T> {
        if self.now_ms() < self.paused_until.load(Ordering::Relaxed) {
            return None;
        }
        let mut connection = self.connection.clone();
        let answer = tokio::time::timeout(OP_TIMEOUT, pipe.query_async::<T>(&mut connection)).await;
        let error = match answer {
            Ok(Ok(value)) => {
                if self.failing.swap(false, Ordering::Relaxed) {
                    tracing::info!("the shared Redis cache answers again");
                }
                return Some(value);
            }
            Ok(Err(e)) => e.to_string(),
            Err(_) => format!("no answer within {} ms", OP_TIMEOUT.as_millis()),
        };
        metrics::counter!("graph_cache_l2_errors_total").increment(1);
        self.paused_until.store(
            self.now_ms() + PAUSE_AFTER_FAILURE.as_millis() as u64,
            Ordering::Relaxed,
        );
        if !self.failing.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                error,
                what,
                "the shared Redis cache failed; serving from this replica's cache and Graph until it is back"
            );
        }
        None
    }

    /// The current generation of each scope (0 for [`Scope::None`], without asking
    /// Redis). None when Redis cannot be asked: then the second level is skipped.
    pub async fn generations(&self, scopes: &[&Scope]) -> Option<Vec<u64>> {
        let keys: Vec<Option<String>> = scopes.iter().map(|s| self.generation_key(s)).collect();
        if self.now_ms() < self.paused_until.load(Ordering::Relaxed) {
            return None;
        }
        let asked: Vec<&String> = keys.iter().flatten().collect();
        let mut read = Vec::new().into_iter();
        if !asked.is_empty() {
            let mut pipe = redis::pipe();
            pipe.cmd("MGET").arg(&asked);
            let (values,): (Vec<Option<u64>>,) = self.run("read generations", &pipe).await?;
            read = values.into_iter();
        }
        Some(
            keys.iter()
                .map(|k| match k {
                    Some(_) => read.next().flatten().unwrap_or(0),
                    None => 0,
                })
                .collect(),
        )
    }

    /// Looks answers up by (generation, cache key); counts hits and misses.
    pub async fn get_responses(&self, wanted: &[(u64, &str)]) -> Vec<Option<Bytes>> {
        if wanted.is_empty() {
            return Vec::new();
        }
        let keys: Vec<String> = wanted
            .iter()
            .map(|(generation, key)| self.response_key(*generation, key))
            .collect();
        let mut pipe = redis::pipe();
        pipe.cmd("MGET").arg(&keys);
        let found: Vec<Option<Bytes>> = match self
            .run::<(Vec<Option<Vec<u8>>>,)>("read answers", &pipe)
            .await
        {
            Some((values,)) => values.into_iter().map(|v| v.map(Bytes::from)).collect(),
            None => return vec![None; wanted.len()],
        };
        let hits = found.iter().filter(|v| v.is_some()).count() as u64;
        metrics::counter!("graph_cache_l2_hits_total").increment(hits);
        metrics::counter!("graph_cache_l2_misses_total").increment(wanted.len() as u64 - hits);
        found
    }

    /// Stores answers under the generation read *before* they were fetched: if a write
    /// bumped it meanwhile, the answer lands where nobody looks any more.
    pub async fn put_responses(&self, entries: &[(u64, &str, &Bytes)]) {
        let mut pipe = redis::pipe();
        let mut any = false;
        let ttl_ms = self.response_ttl.as_millis().max(1) as u64;
        for (generation, key, body) in entries {
            if body.len() > MAX_ENTRY_BYTES {
                continue;
            }
            any = true;
            pipe.cmd("SET")
                .arg(self.response_key(*generation, key))
                .arg(body.as_ref())
                .arg("PX")
                .arg(ttl_ms)
                .ignore();
        }
        if any {
            self.run::<()>("store answers", &pipe).await;
        }
    }

    /// A write made `scope`'s answers stale: bump its generation (every replica's next
    /// lookup misses) and tell the other replicas to drop their first-level copies.
    pub async fn invalidate(&self, scope: &Scope) {
        let Some(key) = self.generation_key(scope) else {
            return;
        };
        let message = serde_json::to_string(&Message {
            replica: self.replica.clone(),
            scope: scope.clone(),
        })
        .unwrap_or_default();
        let mut pipe = redis::pipe();
        pipe.cmd("INCR")
            .arg(&key)
            .ignore()
            .cmd("PUBLISH")
            .arg(format!("{}:invalidate", self.prefix))
            .arg(message)
            .ignore();
        // Not paused here: a write's bump is worth one attempt even right after a failure.
        let mut connection = self.connection.clone();
        match tokio::time::timeout(OP_TIMEOUT, pipe.query_async::<()>(&mut connection)).await {
            Ok(Ok(())) => {}
            _ => {
                metrics::counter!("graph_cache_l2_errors_total").increment(1);
                if !self.failing.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        "the shared Redis cache failed; other replicas may serve answers from before a write until they expire"
                    );
                }
            }
        }
    }

    /// A token another replica acquired for `identity`, if sealed with our key and still
    /// valid: the token and when it expires.
    pub async fn get_token(&self, identity: &str) -> Option<(String, Instant)> {
        let key = self.token_key.as_ref()?;
        let mut pipe = redis::pipe();
        pipe.cmd("GET").arg(self.token_redis_key(identity));
        let (blob,): (Option<Vec<u8>>,) = self.run("read a token", &pipe).await?;
        let Some(blob) = blob else {
            metrics::counter!("graph_cache_l2_misses_total").increment(1);
            return None;
        };
        let opened = open_token(key, identity, blob);
        match &opened {
            Some(_) => metrics::counter!("graph_cache_l2_hits_total").increment(1),
            // Another key (rotated) or another identity's value: acquire our own.
            None => metrics::counter!("graph_cache_l2_misses_total").increment(1),
        }
        opened
    }

    /// Shares a token acquired for `identity` until `refresh_margin` before it expires.
    pub async fn put_token(
        &self,
        identity: &str,
        token: &str,
        expires_at: Instant,
        refresh_margin: Duration,
    ) {
        let Some(key) = self.token_key.as_ref() else {
            return;
        };
        let left = expires_at.saturating_duration_since(Instant::now());
        let ttl = left.saturating_sub(refresh_margin).as_secs();
        if ttl == 0 {
            return;
        }
        let Some(blob) = seal_token(key, identity, token, unix_now() + left) else {
            return;
        };
        let mut pipe = redis::pipe();
        pipe.cmd("SET")
            .arg(self.token_redis_key(identity))
            .arg(blob)
            .arg("EX")
            .arg(ttl)
            .ignore();
        self.run::<()>("store a token", &pipe).await;
    }

    /// Forgets a shared token Graph refused.
    pub async fn forget_token(&self, identity: &str) {
        if self.token_key.is_none() {
            return;
        }
        let mut pipe = redis::pipe();
        pipe.cmd("DEL").arg(self.token_redis_key(identity)).ignore();
        self.run::<()>("forget a token", &pipe).await;
    }

    /// Evicts this replica's first-level entries when another replica invalidates, until
    /// `shutdown`; reconnects with backoff while Redis is away (logged once per outage).
    /// Missing a message only costs memory: the first level keys those entries by
    /// generation, so they are never served after the bump anyway.
    pub fn listen(self: &Arc<Self>, evict: Evict, shutdown: CancellationToken) {
        let this = self.clone();
        let channel = format!("{}:invalidate", this.prefix);
        let client = this.client.clone();
        tokio::spawn(crate::redis_pubsub::listen(
            client,
            channel,
            None,
            "cache invalidations",
            move |payload| this.relay(&evict, payload),
            shutdown,
        ));
    }

    fn relay(&self, evict: &Evict, payload: &[u8]) {
        match serde_json::from_slice::<Message>(payload) {
            Ok(m) if m.replica == self.replica => {}
            Ok(m) => evict(&m.scope),
            Err(e) => tracing::debug!(error = %e, "ignored a message on the invalidation channel"),
        }
    }
}

fn hex_sha256(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn unix_now() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

/// Associated data of a sealed token: the identity it was acquired for.
fn token_aad(identity: &str) -> Vec<u8> {
    let mut aad = b"m365gw.token.v1\0".to_vec();
    aad.extend_from_slice(identity.as_bytes());
    aad
}

/// `nonce || seal(expiry unix ms (8 bytes, big-endian) || token) || tag`.
fn seal_token(
    key: &RandomizedNonceKey,
    identity: &str,
    token: &str,
    expires: Duration,
) -> Option<Vec<u8>> {
    let mut data = (expires.as_millis() as u64).to_be_bytes().to_vec();
    data.extend_from_slice(token.as_bytes());
    let nonce = key
        .seal_in_place_append_tag(Aad::from(token_aad(identity).as_slice()), &mut data)
        .ok()?;
    let mut out = nonce.as_ref().to_vec();
    out.append(&mut data);
    Some(out)
}

fn open_token(
    key: &RandomizedNonceKey,
    identity: &str,
    blob: Vec<u8>,
) -> Option<(String, Instant)> {
    if blob.len() < NONCE_LEN + 8 + TAG_LEN {
        return None;
    }
    let (nonce, sealed) = blob.split_at(NONCE_LEN);
    let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
    let mut sealed = sealed.to_vec();
    let plain = key
        .open_in_place(
            nonce,
            Aad::from(token_aad(identity).as_slice()),
            &mut sealed,
        )
        .ok()?;
    let (expiry, token) = plain.split_at(8);
    let expiry = Duration::from_millis(u64::from_be_bytes(expiry.try_into().ok()?));
    let left = expiry.checked_sub(unix_now())?;
    Some((
        String::from_utf8(token.to_vec()).ok()?,
        Instant::now() + left,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> RandomizedNonceKey {
        RandomizedNonceKey::new(&AES_256_GCM, &[byte; 32]).unwrap()
    }

    #[test]
    fn a_sealed_token_opens_only_for_its_identity_and_key_and_hides_the_token() {
        let expires = unix_now() + Duration::from_secs(3600);
        let blob = seal_token(&key(1), "app:t:c", "eyJ.secret-token", expires).unwrap();
        assert!(!blob.windows(12).any(|w| w == b"secret-token"));
        let (token, at) = open_token(&key(1), "app:t:c", blob.clone()).unwrap();
        assert_eq!(token, "eyJ.secret-token");
        assert!(at > Instant::now() + Duration::from_secs(3500));
        assert!(open_token(&key(1), "app:t:other", blob.clone()).is_none());
        assert!(open_token(&key(2), "app:t:c", blob).is_none());
    }

    #[test]
    fn an_expired_sealed_token_is_not_used() {
        let blob = seal_token(&key(1), "i", "tok", unix_now() - Duration::from_secs(1)).unwrap();
        assert!(open_token(&key(1), "i", blob).is_none());
    }
}
