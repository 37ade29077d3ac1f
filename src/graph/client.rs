//! The Graph HTTP client: token attachment, the response cache, coalescing and `$batch`.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::future::join_all;
use moka::future::Cache;
use serde_json::{Value, json};
use url::Url;

use super::error::{GraphError, parse_retry_after};
use super::models::BatchResponse;
use super::resilience::{
    Breaker, BreakerState, Bulkheads, RetryBudget, RetrySettings, is_host_failure, retry_delay,
};
use crate::identity::{Access, TokenBroker};

/// A GET against Graph: a relative URL built by [`super::GraphUrl`] (or a checked
/// `@odata.nextLink`) plus whether it is an advanced directory query.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct GraphGet {
    /// Relative to the Graph root, starting with `/`.
    pub url: String,
    /// Sends `ConsistencyLevel: eventual` (needed for `$count`, `$search`, advanced filters).
    pub eventual: bool,
}

impl GraphGet {
    pub fn new(url: impl ToString) -> Self {
        Self {
            url: url.to_string(),
            eventual: false,
        }
    }

    pub fn eventual(mut self, eventual: bool) -> Self {
        self.eventual = eventual;
        self
    }
}

#[derive(Clone)]
pub struct GraphClient {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    /// Graph root without a trailing slash, e.g. `https://graph.microsoft.com/v1.0`.
    base: String,
    tokens: TokenBroker,
    /// Successful GET bodies keyed by identity + URL; bounded by bytes.
    cache: Cache<String, Bytes>,
    batch_size: usize,
    timeout: Duration,
    retry: RetrySettings,
    budget: RetryBudget,
    breaker: Breaker,
    bulkheads: Bulkheads,
}

/// Settings of [`GraphClient::new`].
pub struct GraphClientSettings {
    pub base_url: Url,
    pub cache_ttl: Duration,
    pub cache_max_bytes: u64,
    pub batch_size: usize,
    /// Longest single attempt (the caller's deadline may cut it shorter).
    pub timeout: Duration,
    pub retry: RetrySettings,
}

impl GraphClient {
    pub fn new(http: reqwest::Client, tokens: TokenBroker, settings: GraphClientSettings) -> Self {
        let cache = Cache::builder()
            .max_capacity(settings.cache_max_bytes)
            .weigher(|key: &String, value: &Bytes| {
                u32::try_from(key.len() + value.len()).unwrap_or(u32::MAX)
            })
            .time_to_live(settings.cache_ttl)
            .build();
        Self {
            inner: Arc::new(Inner {
                http,
                base: settings.base_url.as_str().trim_end_matches('/').to_owned(),
                tokens,
                cache,
                batch_size: settings.batch_size.clamp(1, 20),
                timeout: settings.timeout,
                budget: RetryBudget::new(settings.retry.budget_ratio, settings.retry.budget_floor),
                breaker: Breaker::new(
                    settings.retry.breaker_failures,
                    settings.retry.breaker_open_for,
                ),
                bulkheads: Bulkheads::new(
                    settings.retry.per_mailbox_concurrency,
                    settings.retry.max_concurrency,
                ),
                retry: settings.retry,
            }),
        }
    }

    pub fn tokens(&self) -> &TokenBroker {
        &self.inner.tokens
    }

    /// The circuit breaker's state (metrics, readiness).
    pub fn breaker_state(&self) -> BreakerState {
        self.inner.breaker.state()
    }

    /// One GET: served from the cache, else fetched once however many callers ask at the
    /// same time (moka's `try_get_with` is single-flight). Errors are never cached.
    pub async fn get(
        &self,
        access: &Access,
        request: &GraphGet,
        deadline: Instant,
    ) -> Result<Bytes, GraphError> {
        let key = cache_key(access, request);
        if let Some(body) = self.inner.cache.get(&key).await {
            metrics::counter!("graph_cache_hits_total").increment(1);
            return Ok(body);
        }
        metrics::counter!("graph_cache_misses_total").increment(1);
        // Whoever's future runs fetches; everyone else waiting on the same key shares it.
        let fetched = AtomicBool::new(false);
        let result = self
            .inner
            .cache
            .try_get_with(key, async {
                fetched.store(true, Ordering::Relaxed);
                self.fetch(access, request, deadline).await
            })
            .await
            .map_err(|e| (*e).clone());
        if !fetched.load(Ordering::Relaxed) {
            metrics::counter!("graph_coalesced_total").increment(1);
        }
        result
    }

    /// Many GETs at once: cache hits first, then the misses packed into `$batch` requests
    /// of at most `batch_size`, sent concurrently. Results come back in request order.
    pub async fn get_many(
        &self,
        access: &Access,
        requests: &[GraphGet],
        deadline: Instant,
    ) -> Vec<Result<Bytes, GraphError>> {
        let mut results: Vec<Option<Result<Bytes, GraphError>>> =
            Vec::with_capacity(requests.len());
        let mut misses = Vec::new();
        for (i, request) in requests.iter().enumerate() {
            match self.inner.cache.get(&cache_key(access, request)).await {
                Some(body) => {
                    metrics::counter!("graph_cache_hits_total").increment(1);
                    results.push(Some(Ok(body)))
                }
                None => {
                    results.push(None);
                    misses.push(i);
                }
            }
        }
        let chunks = misses
            .chunks(self.inner.batch_size)
            .map(|chunk| async move {
                if let [single] = chunk {
                    // A batch of one costs the same single request and loses coalescing.
                    vec![(
                        *single,
                        self.get(access, &requests[*single], deadline).await,
                    )]
                } else {
                    let items: Vec<&GraphGet> = chunk.iter().map(|&i| &requests[i]).collect();
                    let answers = self.batch(access, &items, deadline).await;
                    chunk.iter().copied().zip(answers).collect()
                }
            });
        for (i, result) in join_all(chunks).await.into_iter().flatten() {
            results[i] = Some(result);
        }
        results
            .into_iter()
            .map(|r| {
                r.unwrap_or_else(|| Err(GraphError::BadResponse("no answer for a request".into())))
            })
            .collect()
    }

    /// Turns an `@odata.nextLink` into a relative URL, but only when it points under the
    /// configured Graph root: the gateway's token is never sent anywhere else.
    pub fn relative_link(&self, link: &str) -> Result<String, GraphError> {
        let rest = link
            .strip_prefix(self.inner.base.as_str())
            .filter(|rest| rest.starts_with('/'))
            .ok_or_else(|| GraphError::Refused("a nextLink outside the Graph root".into()))?;
        if rest.chars().any(|c| c.is_control()) {
            return Err(GraphError::Refused(
                "a nextLink with control characters".into(),
            ));
        }
        Ok(rest.to_owned())
    }

    async fn fetch(
        &self,
        access: &Access,
        request: &GraphGet,
        deadline: Instant,
    ) -> Result<Bytes, GraphError> {
        let url = format!("{}{}", self.inner.base, request.url);
        let route = crate::telemetry::graph_route(&request.url);
        let _permits = self.inner.bulkheads.enter(&request.url, deadline).await?;
        self.send_retrying(access, &route, deadline, |http| {
            let mut builder = http.get(&url);
            if request.eventual {
                builder = builder.header("ConsistencyLevel", "eventual");
            }
            builder
        })
        .await
    }

    /// GETs packed into one `$batch` (every item is a GET, so the envelope is idempotent
    /// and retried like one). Items Graph throttled are sent again, alone, in a new batch
    /// after the longest of their own `Retry-After`s, while the caller's deadline allows.
    async fn batch(
        &self,
        access: &Access,
        items: &[&GraphGet],
        deadline: Instant,
    ) -> Vec<Result<Bytes, GraphError>> {
        let mut results: Vec<Option<Result<Bytes, GraphError>>> = vec![None; items.len()];
        let mut pending: Vec<usize> = (0..items.len()).collect();
        for round in 0..=self.inner.retry.max_retries {
            let answers = self
                .batch_once(
                    access,
                    &pending.iter().map(|&i| items[i]).collect::<Vec<_>>(),
                    deadline,
                )
                .await;
            let mut again = Vec::new();
            let mut wait = Duration::ZERO;
            for (&i, answer) in pending.iter().zip(answers) {
                if let Err(error) = &answer
                    && round < self.inner.retry.max_retries
                    && let Some(delay) = retry_delay(error, round, &self.inner.retry)
                {
                    wait = wait.max(delay);
                    again.push(i);
                }
                results[i] = Some(answer);
            }
            if again.is_empty() {
                break;
            }
            let late = Instant::now() + wait >= deadline || wait > self.inner.retry.max_retry_after;
            if late || !again.iter().all(|_| self.inner.budget.try_retry()) {
                break;
            }
            tracing::debug!(
                items = again.len(),
                ?wait,
                "retrying throttled $batch items"
            );
            tokio::time::sleep(wait).await;
            pending = again;
        }
        results
            .into_iter()
            .map(|r| {
                r.unwrap_or_else(|| {
                    Err(GraphError::BadResponse("no answer for a batch item".into()))
                })
            })
            .collect()
    }

    async fn batch_once(
        &self,
        access: &Access,
        items: &[&GraphGet],
        deadline: Instant,
    ) -> Vec<Result<Bytes, GraphError>> {
        let body = json!({
            "requests": items.iter().enumerate().map(|(i, item)| {
                let mut request = json!({ "id": i.to_string(), "method": "GET", "url": item.url });
                if item.eventual {
                    request["headers"] = json!({ "ConsistencyLevel": "eventual" });
                }
                request
            }).collect::<Vec<_>>()
        });
        let url = format!("{}/$batch", self.inner.base);
        let envelope = async {
            // Batch items address many mailboxes; Graph itself runs Outlook items at most
            // four at a time, so the envelope takes only a slot of the gateway's ceiling.
            let _permits = self.inner.bulkheads.enter("/$batch", deadline).await?;
            metrics::histogram!("graph_batch_size").record(items.len() as f64);
            metrics::counter!("graph_cache_misses_total").increment(items.len() as u64);
            let bytes = self
                .send_retrying(access, "/$batch", deadline, |http| {
                    http.post(&url).json(&body)
                })
                .await?;
            serde_json::from_slice::<BatchResponse>(&bytes)
                .map_err(|e| GraphError::BadResponse(format!("$batch envelope: {e}")))
        }
        .await;
        let envelope = match envelope {
            Ok(envelope) => envelope,
            Err(e) => return items.iter().map(|_| Err(e.clone())).collect(),
        };

        let mut by_id: HashMap<String, _> = envelope
            .responses
            .into_iter()
            .map(|item| (item.id.clone(), item))
            .collect();
        let mut out = Vec::with_capacity(items.len());
        for (i, request) in items.iter().enumerate() {
            let Some(item) = by_id.remove(&i.to_string()) else {
                out.push(Err(GraphError::BadResponse(
                    "$batch answer is missing an item".into(),
                )));
                continue;
            };
            let header = |name: &str| {
                item.headers.as_ref().and_then(|h| {
                    h.iter()
                        .find(|(k, _)| k.eq_ignore_ascii_case(name))
                        .and_then(|(_, v)| v.as_str().map(str::to_owned))
                })
            };
            let body = match &item.body {
                None | Some(Value::Null) => Vec::new(),
                Some(value) => serde_json::to_vec(value).unwrap_or_default(),
            };
            if (200..300).contains(&item.status) {
                let body = Bytes::from(body);
                self.inner
                    .cache
                    .insert(cache_key(access, request), body.clone())
                    .await;
                out.push(Ok(body));
            } else {
                let route = crate::telemetry::graph_route(&request.url);
                metrics::counter!("graph_batch_items_total", "route" => route.clone(), "status" => item.status.to_string()).increment(1);
                if item.status == 429 {
                    metrics::counter!("graph_throttled_total", "route" => route).increment(1);
                }
                out.push(Err(GraphError::from_response(
                    item.status,
                    &body,
                    header("request-id"),
                    header("Retry-After").as_deref().and_then(parse_retry_after),
                )));
            }
        }
        out
    }

    /// One idempotent call with the identity's token, retried on throttling and
    /// unavailability within the retry budget and the caller's deadline; never waits past
    /// the deadline (it fails fast with the wait Graph asked for instead).
    ///
    /// A 401 means the cached token went bad (revoked, rotated): drop it, acquire once,
    /// retry once; a second 401 is the answer.
    async fn send_retrying(
        &self,
        access: &Access,
        route: &str,
        deadline: Instant,
        build: impl Fn(&reqwest::Client) -> reqwest::RequestBuilder,
    ) -> Result<Bytes, GraphError> {
        let settings = &self.inner.retry;
        let mut renewed_token = false;
        let mut attempt = 0;
        self.inner.budget.record_request();
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return Err(GraphError::Timeout);
            }
            let probe = match self.inner.breaker.admit() {
                Ok(probe) => probe,
                Err(wait) => return Err(GraphError::CircuitOpen { retry_after: wait }),
            };
            // If this call is the half-open probe and ends without an outcome (token
            // failure, cancelled caller), the next call must be allowed to probe.
            let _probe = probe.then_some(ProbeRelease(&self.inner.breaker));
            let outcome = match self.inner.tokens.token(access).await {
                Ok(token) => {
                    self.attempt(
                        &build,
                        route,
                        &token.secret,
                        remaining.min(self.inner.timeout),
                    )
                    .await
                }
                Err(e) => return Err(e.into()),
            };
            let error = match outcome {
                Ok(body) => {
                    self.inner.breaker.record(false);
                    return Ok(body);
                }
                Err(GraphError::Api { status: 401, .. }) if !renewed_token => {
                    // Graph answered, so the host is healthy; only our token was stale.
                    self.inner.breaker.record(false);
                    renewed_token = true;
                    self.inner.tokens.invalidate(&access.identity).await;
                    continue;
                }
                Err(error) => error,
            };
            self.inner.breaker.record(is_host_failure(&error));
            let Some(delay) = retry_delay(&error, attempt, settings) else {
                return Err(error);
            };
            let error = error.with_retry_after(delay);
            if attempt >= settings.max_retries
                || delay > settings.max_retry_after
                || Instant::now() + delay >= deadline
                || !self.inner.budget.try_retry()
            {
                return Err(error);
            }
            tracing::debug!(attempt, ?delay, error = %error, "retrying a Graph call");
            metrics::counter!("graph_retries_total", "route" => route.to_owned()).increment(1);
            tokio::time::sleep(delay).await;
            attempt += 1;
        }
    }

    /// One HTTP exchange; any non-2xx answer becomes a typed error.
    async fn attempt(
        &self,
        build: &impl Fn(&reqwest::Client) -> reqwest::RequestBuilder,
        route: &str,
        token: &str,
        timeout: Duration,
    ) -> Result<Bytes, GraphError> {
        let client_request_id = uuid::Uuid::new_v4().to_string();
        let sent = build(&self.inner.http)
            .bearer_auth(token)
            .header("client-request-id", &client_request_id)
            .timeout(timeout)
            .send()
            .await;
        let status = match &sent {
            Ok(response) => response.status().as_u16().to_string(),
            Err(e) if e.is_timeout() => "timeout".to_owned(),
            Err(_) => "error".to_owned(),
        };
        metrics::counter!("graph_requests_total", "route" => route.to_owned(), "status" => status.clone()).increment(1);
        if status == "429" {
            metrics::counter!("graph_throttled_total", "route" => route.to_owned()).increment(1);
        }
        let response = sent.map_err(transport_error)?;
        tracing::debug!(
            status = response.status().as_u16(),
            client_request_id,
            request_id = response
                .headers()
                .get("request-id")
                .and_then(|v| v.to_str().ok())
                .unwrap_or(""),
            "graph call"
        );
        read_success(response).await
    }
}

struct ProbeRelease<'a>(&'a Breaker);

impl Drop for ProbeRelease<'_> {
    fn drop(&mut self) {
        self.0.release_probe();
    }
}

/// A request that failed without an HTTP answer.
fn transport_error(e: reqwest::Error) -> GraphError {
    if e.is_timeout() {
        GraphError::Timeout
    } else if e.is_connect() {
        GraphError::Unreachable(e.without_url().to_string())
    } else {
        // Reset or closed mid-exchange: Graph may or may not have acted; for the GETs sent
        // here that is harmless, but it is not a clean "never arrived".
        GraphError::Interrupted(e.without_url().to_string())
    }
}

async fn read_success(response: reqwest::Response) -> Result<Bytes, GraphError> {
    let status = response.status();
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let request_id = header("request-id");
    let retry_after = header("Retry-After").as_deref().and_then(parse_retry_after);
    let body = response.bytes().await.map_err(transport_error)?;
    if status.is_success() {
        Ok(body)
    } else {
        Err(GraphError::from_response(
            status.as_u16(),
            &body,
            request_id,
            retry_after,
        ))
    }
}

/// The Graph identity and policy version are part of the key: an answer fetched as one
/// identity is never served to another, nor under a newer policy. `ConsistencyLevel`
/// changes the answer, so it is part of it too.
fn cache_key(access: &Access, request: &GraphGet) -> String {
    format!(
        "{}\n{}\n{}",
        access.cache_namespace,
        if request.eventual { "eventual" } else { "" },
        request.url
    )
}
