//! Configuration of what one caller may ask for: GraphQL operation limits, persisted
//! operations, rate limits, and the optional Redis that shares limits across replicas.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use url::Url;

use super::Secret;

/// GraphQL operation limits and trusted documents. Every limit is checked before the
/// operation runs, so a refused operation costs no Graph call.
#[derive(Clone, Debug, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct GraphqlConfig {
    /// Deepest nesting of fields (`{ me { manager { id } } }` is 3).
    pub max_depth: usize,
    /// Most aliases in one document.
    pub max_aliases: usize,
    /// Most fields at the root of one operation (aliases included, `__typename` not).
    pub max_root_fields: usize,
    /// Most lexical tokens in one document (names, punctuation, values).
    pub max_tokens: usize,
    /// Largest cost of one operation: every object field costs 1 and a connection costs 1 +
    /// `first` × the cost of what is selected under it, so the cost bounds the number of
    /// objects (and so Graph reads) an operation may cause. Batched operations add up.
    pub max_cost: u64,
    /// Most items in a list argument (`usersByIds(ids: [...])`); 20 matches Graph's `$batch`.
    pub max_list_items: usize,
    /// Operations accepted in one batched request (a JSON array body). 0 turns batching off.
    pub max_batch: usize,
    /// Persisted-operations manifest loaded at start: a JSON object of
    /// `"<sha256 hex>": "<document>"`, or Apollo's `apollo-persisted-query-manifest`.
    pub persisted_operations: Option<PathBuf>,
    /// Automatic Persisted Queries: clients may send only a document's SHA-256 once the
    /// gateway has seen the document with that hash.
    pub apq: bool,
    /// Callers (keys of `callers`) that may run only operations of the manifest
    /// (trusted documents): anything else is refused with `PERSISTED_QUERY_REQUIRED`.
    pub persisted_only_callers: Vec<String>,
    /// Callers (keys of `callers`) allowed to run introspection when `production = true`.
    pub introspection_callers: Vec<String>,
}

impl Default for GraphqlConfig {
    fn default() -> Self {
        Self {
            max_depth: 12,
            max_aliases: 30,
            max_root_fields: 20,
            max_tokens: 15_000,
            max_cost: 50_000,
            max_list_items: 20,
            max_batch: 0,
            persisted_operations: None,
            apq: true,
            persisted_only_callers: Vec::new(),
            introspection_callers: Vec::new(),
        }
    }
}

/// The most operations a batch may ever hold, whatever `graphql.max_batch` says.
pub const BATCH_CEILING: usize = 10;

/// Per-caller token buckets: one for requests, one for GraphQL cost. Shared across
/// replicas through Redis when `redis.url` is set.
#[derive(Clone, Debug, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimitConfig {
    /// Turn rate limiting on.
    pub enabled: bool,
    /// Sustained requests per second per caller (REST and GraphQL together).
    pub requests_per_second: f64,
    /// Requests a caller may make at once above the sustained rate.
    pub request_burst: u32,
    /// Sustained GraphQL cost per second per caller (see `graphql.max_cost`).
    pub cost_per_second: f64,
    /// Cost a caller may spend at once; at least `graphql.max_cost`, or the largest
    /// operation could never run.
    pub cost_burst: u32,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            requests_per_second: 50.0,
            request_burst: 100,
            cost_per_second: 10_000.0,
            cost_burst: 100_000,
        }
    }
}

/// Redis, optional: shared rate limits, live events and a second-level cache of Graph
/// answers (and, with `token_key`, of Graph tokens) across replicas.
#[derive(Clone, Debug, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct RedisConfig {
    /// `redis://host:6379` (or `rediss://` for TLS). Unset: everything stays in memory.
    pub url: Option<Secret>,
    /// Prefix of every key the gateway writes, so several deployments can share a server.
    pub key_prefix: String,
    /// Base64 of 32 random bytes (`head -c 32 /dev/urandom | base64`). Graph tokens the
    /// gateway acquires are cached in Redis sealed with it (AES-256-GCM, bound to the
    /// identity), so a replica does not ask Entra ID for a token another one already has.
    /// Unset: tokens are **not** written to Redis (each replica acquires its own); Graph
    /// answers are shared either way.
    pub token_key: Option<Secret>,
}

impl Default for RedisConfig {
    fn default() -> Self {
        Self {
            url: None,
            key_prefix: "m365gw".to_owned(),
            token_key: None,
        }
    }
}

impl RedisConfig {
    pub(crate) fn validate(&self, problems: &mut Vec<String>) {
        if let Some(url) = &self.url {
            match Url::parse(url.expose()) {
                Ok(u) if matches!(u.scheme(), "redis" | "rediss") => {}
                _ => problems.push("redis.url: give a redis:// or rediss:// URL".to_owned()),
            }
        }
        if let Some(key) = &self.token_key
            && crate::store::decode_key(key.expose()).is_err()
        {
            problems.push("redis.token_key: must be base64 of 32 bytes (e.g. `head -c 32 /dev/urandom | base64`)".to_owned());
        }
    }
}

impl GraphqlConfig {
    pub(crate) fn validate(
        &self,
        rate: &RateLimitConfig,
        callers: &[&String],
        problems: &mut Vec<String>,
    ) {
        for (key, value) in [
            ("max_depth", self.max_depth),
            ("max_aliases", self.max_aliases),
            ("max_root_fields", self.max_root_fields),
            ("max_tokens", self.max_tokens),
            ("max_list_items", self.max_list_items),
        ] {
            if value == 0 {
                problems.push(format!("graphql.{key}: must be at least 1"));
            }
        }
        if self.max_cost == 0 {
            problems.push("graphql.max_cost: must be at least 1".to_owned());
        }
        if self.max_batch > BATCH_CEILING {
            problems.push(format!(
                "graphql.max_batch: at most {BATCH_CEILING} operations per request (0 turns batching off)"
            ));
        }
        for (key, names) in [
            ("introspection_callers", &self.introspection_callers),
            ("persisted_only_callers", &self.persisted_only_callers),
        ] {
            for name in names {
                if !callers.contains(&name) {
                    problems.push(format!("graphql.{key}: '{name}' is not a key of callers"));
                }
            }
        }
        if !self.persisted_only_callers.is_empty() && self.persisted_operations.is_none() {
            problems.push("graphql.persisted_only_callers: needs graphql.persisted_operations (the manifest they may run)".to_owned());
        }
        if rate.enabled {
            if !(rate.requests_per_second > 0.0 && rate.requests_per_second.is_finite()) {
                problems.push("rate_limit.requests_per_second: must be greater than zero".into());
            }
            if !(rate.cost_per_second > 0.0 && rate.cost_per_second.is_finite()) {
                problems.push("rate_limit.cost_per_second: must be greater than zero".into());
            }
            if rate.request_burst == 0 {
                problems.push("rate_limit.request_burst: must be at least 1".into());
            }
            if u64::from(rate.cost_burst) < self.max_cost {
                problems.push(format!(
                    "rate_limit.cost_burst: must be at least graphql.max_cost ({}), or the largest allowed operation could never run",
                    self.max_cost
                ));
            }
        }
    }
}
