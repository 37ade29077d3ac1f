//! Per-caller rate limits: one token bucket for requests, one for GraphQL cost, in memory
//! or in Redis (so every replica draws from the same bucket).
//!
//! Both backends run the same algorithm, GCRA (the "generic cell rate algorithm" behind
//! governor and redis-cell): a bucket is one number, the theoretical arrival time (TAT)
//! of the next request. It is written here rather than taken from governor because the
//! Redis side has to be a script anyway, and one algorithm in two places (a few lines
//! each) keeps the two backends answering identically.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::config::RateLimitConfig;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Requests,
    Cost,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Requests => "requests",
            Kind::Cost => "cost",
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    /// Milliseconds one unit adds to the TAT (1000 / rate).
    interval_ms: f64,
    /// Units that may be spent at once.
    burst: f64,
}

pub struct RateLimiter {
    requests: Option<Bucket>,
    cost: Option<Bucket>,
    started: Instant,
    memory: Mutex<HashMap<(Kind, String), f64>>,
    redis: Option<SharedBuckets>,
}

/// Buckets in Redis: the connection, and the prefix of the keys.
pub struct SharedBuckets {
    pub connection: redis::aio::ConnectionManager,
    pub key_prefix: String,
}

/// GCRA as one atomic step in Redis. The server's clock (`TIME`) is used so that replicas
/// with skewed clocks still share one timeline.
const GCRA_SCRIPT: &str = r"
local t = redis.call('TIME')
local now = t[1] * 1000 + t[2] / 1000
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local n = tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local new_tat = tat + n * interval
local allow_at = new_tat - burst * interval
if allow_at > now then return {0, tostring(allow_at - now)} end
redis.call('SET', KEYS[1], tostring(new_tat), 'PX', math.ceil(new_tat - now) + 1000)
return {1, '0'}
";

impl RateLimiter {
    pub fn new(config: &RateLimitConfig, redis: Option<SharedBuckets>) -> Self {
        let bucket = |rate: f64, burst: u32| Bucket {
            interval_ms: 1000.0 / rate,
            burst: f64::from(burst),
        };
        RateLimiter {
            requests: config
                .enabled
                .then(|| bucket(config.requests_per_second, config.request_burst)),
            cost: config
                .enabled
                .then(|| bucket(config.cost_per_second, config.cost_burst)),
            started: Instant::now(),
            memory: Mutex::new(HashMap::new()),
            redis,
        }
    }

    /// Connects to Redis for shared limits; the connection manager reconnects by itself.
    pub async fn connect_redis(url: &str) -> anyhow::Result<redis::aio::ConnectionManager> {
        let client = redis::Client::open(url).map_err(|e| anyhow::anyhow!("redis.url: {e}"))?;
        let manager = tokio::time::timeout(
            Duration::from_secs(5),
            redis::aio::ConnectionManager::new(client),
        )
        .await
        .map_err(|_| anyhow::anyhow!("redis.url: no answer from Redis within 5 s"))?
        .map_err(|e| anyhow::anyhow!("redis.url: {e}"))?;
        Ok(manager)
    }

    /// Takes `n` units from the caller's bucket, or says how long to wait.
    pub async fn check(&self, caller: &str, kind: Kind, n: u64) -> Result<(), Duration> {
        let bucket = match kind {
            Kind::Requests => self.requests,
            Kind::Cost => self.cost,
        };
        let Some(bucket) = bucket else {
            return Ok(());
        };
        let n = n as f64;
        let result = match &self.redis {
            Some(redis) => match self.check_redis(redis, caller, kind, bucket, n).await {
                Ok(result) => result,
                // Limits are protection, not the service: with Redis away, each replica
                // keeps limiting on its own rather than refusing everyone.
                Err(e) => {
                    tracing::warn!(error = %e, "Redis rate limit failed; limiting in memory");
                    self.check_memory(caller, kind, bucket, n)
                }
            },
            None => self.check_memory(caller, kind, bucket, n),
        };
        if result.is_err() {
            crate::telemetry::record_rate_limited(caller, kind.as_str());
        }
        result
    }

    fn check_memory(
        &self,
        caller: &str,
        kind: Kind,
        bucket: Bucket,
        n: f64,
    ) -> Result<(), Duration> {
        let now = self.started.elapsed().as_secs_f64() * 1000.0;
        let mut memory = self.memory.lock().unwrap_or_else(|e| e.into_inner());
        let tat = memory
            .get(&(kind, caller.to_owned()))
            .copied()
            .unwrap_or(now)
            .max(now);
        let new_tat = tat + n * bucket.interval_ms;
        let allow_at = new_tat - bucket.burst * bucket.interval_ms;
        if allow_at > now {
            return Err(Duration::from_secs_f64((allow_at - now) / 1000.0));
        }
        memory.insert((kind, caller.to_owned()), new_tat);
        Ok(())
    }

    async fn check_redis(
        &self,
        redis: &SharedBuckets,
        caller: &str,
        kind: Kind,
        bucket: Bucket,
        n: f64,
    ) -> redis::RedisResult<Result<(), Duration>> {
        let key = format!("{}:rate:{}:{caller}", redis.key_prefix, kind.as_str());
        let mut connection = redis.connection.clone();
        let (allowed, wait_ms): (i64, String) = redis::Script::new(GCRA_SCRIPT)
            .key(key)
            .arg(bucket.interval_ms)
            .arg(bucket.burst)
            .arg(n)
            .invoke_async(&mut connection)
            .await?;
        if allowed == 1 {
            return Ok(Ok(()));
        }
        let wait_ms: f64 = wait_ms.parse().unwrap_or(1000.0);
        Ok(Err(Duration::from_secs_f64(wait_ms.max(0.0) / 1000.0)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(rate: f64, burst: u32) -> RateLimiter {
        RateLimiter::new(
            &RateLimitConfig {
                enabled: true,
                requests_per_second: rate,
                request_burst: burst,
                cost_per_second: rate,
                cost_burst: burst,
            },
            None,
        )
    }

    #[tokio::test]
    async fn a_caller_gets_its_burst_then_waits_for_the_sustained_rate() {
        let limiter = limiter(1.0, 3);
        for _ in 0..3 {
            limiter.check("a", Kind::Requests, 1).await.unwrap();
        }
        let wait = limiter.check("a", Kind::Requests, 1).await.unwrap_err();
        assert!(
            wait > Duration::from_millis(900) && wait <= Duration::from_secs(1),
            "{wait:?}"
        );
        // Another caller has its own bucket.
        limiter.check("b", Kind::Requests, 1).await.unwrap();
    }

    #[tokio::test]
    async fn cost_is_taken_in_one_piece_or_not_at_all() {
        let limiter = limiter(10.0, 100);
        limiter.check("a", Kind::Cost, 60).await.unwrap();
        assert!(limiter.check("a", Kind::Cost, 60).await.is_err());
        limiter.check("a", Kind::Cost, 40).await.unwrap();
    }
}
