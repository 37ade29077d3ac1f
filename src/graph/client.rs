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
use crate::shared_cache::{Evict, Scope, SharedCache};
use tracing::Instrument;

/// A GET against Graph: a relative URL built by [`super::GraphUrl`] (or a checked
/// `@odata.nextLink`) plus whether it is an advanced directory query.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct GraphGet {
    /// Relative to the Graph root, starting with `/`.
    pub url: String,
    /// Sends `ConsistencyLevel: eventual` (needed for `$count`, `$search`, advanced filters).
    pub eventual: bool,
    /// A `Prefer` header value (e.g. `outlook.body-content-type="text"`); it changes the
    /// answer, so it is part of the cache key too.
    pub prefer: Option<String>,
    /// Never read from nor written to the cache: the answer holds a short-lived credential
    /// (a file's pre-authenticated download URL).
    pub no_store: bool,
}

impl GraphGet {
    pub fn new(url: impl ToString) -> Self {
        Self {
            url: url.to_string(),
            eventual: false,
            prefer: None,
            no_store: false,
        }
    }

    pub fn no_store(mut self, no_store: bool) -> Self {
        self.no_store = no_store;
        self
    }

    pub fn eventual(mut self, eventual: bool) -> Self {
        self.eventual = eventual;
        self
    }

    /// Sets the `Prefer` header (several preferences joined by `, `).
    pub fn prefer(mut self, prefer: Option<&str>) -> Self {
        self.prefer = prefer.map(str::to_owned);
        self
    }
}

/// Whether a write may be sent again when it is unclear whether Graph acted on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Idempotency {
    /// Sending twice has the effect of sending once (PATCH of fixed values, DELETE).
    Idempotent,
    /// Sending twice could act twice (send a mail, create a draft, move). Retried only
    /// when Graph certainly did not act (429, 503, connection refused); a timeout or a
    /// reset becomes [`GraphError::OutcomeUnknown`].
    Once,
}

/// A write to Graph: POST / PATCH / PUT / DELETE with an optional JSON body.
#[derive(Clone, Debug)]
pub struct GraphWrite {
    pub method: reqwest::Method,
    /// Relative to the Graph root, starting with `/`.
    pub url: String,
    pub body: Option<Value>,
    pub idempotency: Idempotency,
    /// A `Prefer` header (e.g. `outlook.timezone="…"` for answers with times).
    pub prefer: Option<String>,
    /// Raw bytes and their content type instead of a JSON body (a file's content).
    pub content: Option<(Bytes, String)>,
    /// An `If-Match` header: Graph refuses the write (412) if the item changed.
    pub if_match: Option<String>,
}

impl GraphWrite {
    pub fn post(url: impl ToString, body: Value) -> Self {
        Self {
            method: reqwest::Method::POST,
            url: url.to_string(),
            body: Some(body),
            idempotency: Idempotency::Once,
            prefer: None,
            content: None,
            if_match: None,
        }
    }

    pub fn patch(url: impl ToString, body: Value) -> Self {
        Self {
            method: reqwest::Method::PATCH,
            url: url.to_string(),
            body: Some(body),
            idempotency: Idempotency::Idempotent,
            prefer: None,
            content: None,
            if_match: None,
        }
    }

    pub fn delete(url: impl ToString) -> Self {
        Self {
            method: reqwest::Method::DELETE,
            url: url.to_string(),
            body: None,
            idempotency: Idempotency::Idempotent,
            prefer: None,
            content: None,
            if_match: None,
        }
    }

    /// A PUT of raw bytes (a small file's content). Sent once: with conflict behaviour
    /// `fail`, a second copy would fail although the first one landed.
    pub fn put_bytes(url: impl ToString, bytes: Bytes, content_type: &str) -> Self {
        Self {
            method: reqwest::Method::PUT,
            url: url.to_string(),
            body: None,
            idempotency: Idempotency::Once,
            prefer: None,
            content: Some((bytes, content_type.to_owned())),
            if_match: None,
        }
    }

    pub fn if_match(mut self, etag: Option<&str>) -> Self {
        self.if_match = etag.map(str::to_owned);
        self
    }
}

/// A successful answer to a write.
#[derive(Clone, Debug)]
pub struct GraphReply {
    pub status: u16,
    /// The `Location` header (upload sessions, async operations).
    pub location: Option<String>,
    pub body: Bytes,
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
    /// Successful GET bodies keyed by identity + URL (+ generation, with Redis); bounded
    /// by bytes.
    cache: Cache<String, Bytes>,
    /// The second level shared by every replica (Redis), when configured.
    shared: Option<Arc<SharedCache>>,
    batch_size: usize,
    timeout: Duration,
    retry: RetrySettings,
    budget: RetryBudget,
    breaker: Breaker,
    bulkheads: Bulkheads,
    /// Hosts, besides Graph's, that pre-authenticated transfer URLs may point to.
    transfer_hosts: Vec<String>,
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
    /// Hosts (or `*.suffix` patterns) that upload URLs Graph hands out may point to; the
    /// Graph host itself is always allowed. The token is never sent to any of them.
    pub transfer_hosts: Vec<String>,
    /// Redis as a second-level cache shared by every replica.
    pub shared: Option<Arc<SharedCache>>,
}

impl GraphClient {
    pub fn new(http: reqwest::Client, tokens: TokenBroker, settings: GraphClientSettings) -> Self {
        let cache = Cache::builder()
            .max_capacity(settings.cache_max_bytes)
            .weigher(|key: &String, value: &Bytes| {
                u32::try_from(key.len() + value.len()).unwrap_or(u32::MAX)
            })
            .time_to_live(settings.cache_ttl)
            // Writes evict what they made stale (`invalidate_mailbox`).
            .support_invalidation_closures()
            .build();
        Self {
            inner: Arc::new(Inner {
                http,
                base: settings.base_url.as_str().trim_end_matches('/').to_owned(),
                tokens,
                cache,
                shared: settings.shared,
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
                transfer_hosts: settings
                    .transfer_hosts
                    .iter()
                    .map(|h| h.to_ascii_lowercase())
                    .collect(),
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
    ///
    /// With Redis, a first-level miss looks in the shared second level before Graph, and a
    /// fetched answer is written there too (see [`crate::shared_cache`]).
    pub async fn get(
        &self,
        access: &Access,
        request: &GraphGet,
        deadline: Instant,
    ) -> Result<Bytes, GraphError> {
        if request.no_store {
            return self.fetch(access, request, deadline).await;
        }
        let generation = self.generations(&[request]).await.map(|g| g[0]);
        self.get_cached(access, request, deadline, generation, true)
            .await
    }

    /// The current generation of each request's scope in Redis; None without Redis (or
    /// while it fails), and then the second level is skipped.
    async fn generations(&self, requests: &[&GraphGet]) -> Option<Vec<u64>> {
        let shared = self.inner.shared.as_ref()?;
        let scopes: Vec<Scope> = requests.iter().map(|r| scope_of(&r.url)).collect();
        shared.generations(&scopes.iter().collect::<Vec<_>>()).await
    }

    /// [`GraphClient::get`] once the generation is known; `look_in_l2` is false when the
    /// caller already looked there.
    async fn get_cached(
        &self,
        access: &Access,
        request: &GraphGet,
        deadline: Instant,
        generation: Option<u64>,
        look_in_l2: bool,
    ) -> Result<Bytes, GraphError> {
        let key = cache_key(access, request);
        let l1 = l1_key(&key, generation, &request.url);
        if let Some(body) = self.inner.cache.get(&l1).await {
            metrics::counter!("graph_cache_hits_total").increment(1);
            return Ok(body);
        }
        metrics::counter!("graph_cache_misses_total").increment(1);
        // Whoever's future runs fetches; everyone else waiting on the same key shares it.
        let fetched = AtomicBool::new(false);
        let result = self
            .inner
            .cache
            .try_get_with(l1, async {
                fetched.store(true, Ordering::Relaxed);
                let (Some(shared), Some(generation)) = (&self.inner.shared, generation) else {
                    return self.fetch(access, request, deadline).await;
                };
                if look_in_l2
                    && let Some(Some(body)) =
                        shared.get_responses(&[(generation, &key)]).await.pop()
                {
                    return Ok(body);
                }
                let body = self.fetch(access, request, deadline).await?;
                shared.put_responses(&[(generation, &key, &body)]).await;
                Ok(body)
            })
            .await
            .map_err(|e| (*e).clone());
        if !fetched.load(Ordering::Relaxed) {
            metrics::counter!("graph_coalesced_total").increment(1);
        }
        result
    }

    /// Many GETs at once: cache hits first (this replica's, then Redis's), then the misses
    /// packed into `$batch` requests of at most `batch_size`, sent concurrently. Results
    /// come back in request order.
    pub async fn get_many(
        &self,
        access: &Access,
        requests: &[GraphGet],
        deadline: Instant,
    ) -> Vec<Result<Bytes, GraphError>> {
        let generations = self.generations(&requests.iter().collect::<Vec<_>>()).await;
        let generation = |i: usize| generations.as_ref().map(|g| g[i]);
        let keys: Vec<String> = requests.iter().map(|r| cache_key(access, r)).collect();
        let l1_keys: Vec<String> = (0..requests.len())
            .map(|i| l1_key(&keys[i], generation(i), &requests[i].url))
            .collect();
        let mut results: Vec<Option<Result<Bytes, GraphError>>> =
            Vec::with_capacity(requests.len());
        let mut misses = Vec::new();
        for (i, request) in requests.iter().enumerate() {
            let cached = if request.no_store {
                None
            } else {
                self.inner.cache.get(&l1_keys[i]).await
            };
            match cached {
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
        // The first level's misses, in Redis (one round trip for all of them).
        if let (Some(shared), Some(generations)) = (&self.inner.shared, &generations) {
            let asked: Vec<usize> = misses
                .iter()
                .copied()
                .filter(|&i| !requests[i].no_store)
                .collect();
            let wanted: Vec<(u64, &str)> = asked
                .iter()
                .map(|&i| (generations[i], keys[i].as_str()))
                .collect();
            for (&i, found) in asked.iter().zip(shared.get_responses(&wanted).await) {
                if let Some(body) = found {
                    self.inner
                        .cache
                        .insert(l1_keys[i].clone(), body.clone())
                        .await;
                    results[i] = Some(Ok(body));
                }
            }
            misses.retain(|&i| results[i].is_none());
        }
        let (keys, l1_keys, generations) = (&keys, &l1_keys, &generations);
        let chunks = misses
            .chunks(self.inner.batch_size)
            .map(|chunk| async move {
                if let [single] = chunk {
                    // A batch of one costs the same single request and loses coalescing.
                    let request = &requests[*single];
                    let answer = if request.no_store {
                        self.fetch(access, request, deadline).await
                    } else {
                        let generation = generations.as_ref().map(|g| g[*single]);
                        self.get_cached(access, request, deadline, generation, false)
                            .await
                    };
                    vec![(*single, answer)]
                } else {
                    let items: Vec<&GraphGet> = chunk.iter().map(|&i| &requests[i]).collect();
                    let answers = self.batch(access, &items, deadline).await;
                    let mut shared_puts = Vec::new();
                    for (&i, answer) in chunk.iter().zip(&answers) {
                        if let Ok(body) = answer
                            && !requests[i].no_store
                        {
                            self.inner
                                .cache
                                .insert(l1_keys[i].clone(), body.clone())
                                .await;
                            if let Some(generations) = generations {
                                shared_puts.push((generations[i], keys[i].as_str(), body));
                            }
                        }
                    }
                    if let Some(shared) = &self.inner.shared
                        && !shared_puts.is_empty()
                    {
                        shared.put_responses(&shared_puts).await;
                    }
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
        self.send_get(access, request, deadline, read_body).await
    }

    /// A GET that bypasses the cache (delta pages: each answer moves a sync state on).
    pub async fn get_fresh(
        &self,
        access: &Access,
        request: &GraphGet,
        deadline: Instant,
    ) -> Result<Bytes, GraphError> {
        self.send_get(access, request, deadline, read_body).await
    }

    /// One GET through the bulkheads and the retry loop; `read` turns the 2xx answer into
    /// the result.
    async fn send_get<T>(
        &self,
        access: &Access,
        request: &GraphGet,
        deadline: Instant,
        read: impl AsyncFn(reqwest::Response) -> Result<T, GraphError>,
    ) -> Result<T, GraphError> {
        let url = format!("{}{}", self.inner.base, request.url);
        let route = crate::telemetry::graph_route(&request.url);
        let _permits = self.inner.bulkheads.enter(&request.url, deadline).await?;
        self.send_retrying(
            access,
            &route,
            deadline,
            Idempotency::Idempotent,
            |http| get_builder(http, &url, request),
            read,
        )
        .await
    }

    /// A GET Graph answers with a redirect (`…/content` → 302 to the pre-authenticated
    /// download URL): returns the `Location`, which is not followed here. Never cached:
    /// the URL is short-lived and a credential.
    pub async fn get_location(
        &self,
        access: &Access,
        request: &GraphGet,
        deadline: Instant,
    ) -> Result<String, GraphError> {
        let answer = self
            .send_get(access, request, deadline, async |_| {
                Err::<String, _>(GraphError::BadResponse(
                    "a 2xx answer where a redirect to the content was expected".into(),
                ))
            })
            .await;
        match answer {
            Err(GraphError::Redirected { location }) if !location.is_empty() => Ok(location),
            Err(GraphError::Redirected { .. }) => Err(GraphError::BadResponse(
                "a redirect without a Location".into(),
            )),
            other => other,
        }
    }

    /// One write. Successful writes are never cached; the caller evicts what they made
    /// stale (see [`GraphClient::invalidate_mailbox`]).
    pub async fn write(
        &self,
        access: &Access,
        request: &GraphWrite,
        deadline: Instant,
    ) -> Result<GraphReply, GraphError> {
        let url = format!("{}{}", self.inner.base, request.url);
        let route = crate::telemetry::graph_route(&request.url);
        let _permits = self.inner.bulkheads.enter(&request.url, deadline).await?;
        self.send_retrying(
            access,
            &route,
            deadline,
            request.idempotency,
            |http| {
                let mut builder = http.request(request.method.clone(), &url);
                if let Some(prefer) = &request.prefer {
                    builder = builder.header("Prefer", prefer);
                }
                if let Some(etag) = &request.if_match {
                    builder = builder.header(reqwest::header::IF_MATCH, etag);
                }
                match (&request.content, &request.body) {
                    (Some((bytes, content_type)), _) => builder
                        .header(reqwest::header::CONTENT_TYPE, content_type)
                        .body(bytes.clone()),
                    (None, Some(body)) => builder.json(body),
                    // Graph wants a length on bodiless POSTs (411 otherwise).
                    (None, None) => builder.header(reqwest::header::CONTENT_LENGTH, "0"),
                }
            },
            read_reply,
        )
        .await
    }

    /// A GET whose body is streamed to the caller (attachment content): retried like any
    /// GET until Graph answers 2xx, then handed over with the body unread.
    pub async fn get_stream(
        &self,
        access: &Access,
        request: &GraphGet,
        deadline: Instant,
    ) -> Result<reqwest::Response, GraphError> {
        self.send_get(access, request, deadline, async |response| Ok(response))
            .await
    }

    /// One chunk to a pre-authenticated upload URL Graph handed out (an attachment upload
    /// session). The URL carries its own credential, so the Graph token is **not** sent;
    /// the host must be Graph's or an allowed transfer host. Sent again only when the
    /// chunk certainly did not arrive (429, 503, connection refused).
    pub async fn put_chunk(
        &self,
        upload_url: &str,
        range: (u64, u64, u64),
        chunk: Bytes,
        deadline: Instant,
    ) -> Result<GraphReply, GraphError> {
        let (start, end, total) = range;
        let content_range = format!("bytes {start}-{end}/{total}");
        let _permits = self.inner.bulkheads.enter("/upload", deadline).await?;
        let response = self
            .send_transfer(
                upload_url,
                deadline,
                Idempotency::Once,
                self.inner.timeout.max(Duration::from_secs(60)),
                |timeout| {
                    metrics::counter!("graph_upload_chunks_total").increment(1);
                    self.inner
                        .http
                        .put(upload_url)
                        .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
                        .header(reqwest::header::CONTENT_RANGE, &content_range)
                        .body(chunk.clone())
                        .timeout(timeout)
                },
            )
            .await?;
        read_reply(response).await
    }

    /// A request without the Graph token to a pre-authenticated transfer URL Graph handed
    /// out (an upload session's status or cancel, a copy's monitor): only to allowed
    /// hosts, retried like a GET. A vanished session's or job's 404 comes back as a
    /// reply, for the caller to interpret.
    pub async fn transfer(
        &self,
        method: reqwest::Method,
        link: &str,
        deadline: Instant,
    ) -> Result<GraphReply, GraphError> {
        let sent = self
            .send_transfer(
                link,
                deadline,
                Idempotency::Idempotent,
                self.inner.timeout,
                |timeout| {
                    self.inner
                        .http
                        .request(method.clone(), link)
                        .header(reqwest::header::CONTENT_LENGTH, "0")
                        .timeout(timeout)
                },
            )
            .await;
        match sent {
            Ok(response) => read_reply(response).await,
            // The session or job is gone: an answer the caller interprets.
            Err(GraphError::Api { status: 404, .. }) => Ok(GraphReply {
                status: 404,
                location: None,
                body: Bytes::new(),
            }),
            Err(e) => Err(e),
        }
    }

    /// Opens a pre-authenticated download URL (from `…/content`'s redirect) without the
    /// Graph token, forwarding a `Range`; only to allowed hosts. The body is left unread
    /// for the caller to stream. A 416 comes back as an error with status 416.
    pub async fn download(
        &self,
        link: &str,
        range: Option<&str>,
        deadline: Instant,
    ) -> Result<reqwest::Response, GraphError> {
        // Only the wait for the headers is bounded; the body streams as long as the
        // caller's transfer deadline allows (no request timeout on the builder).
        self.send_transfer(
            link,
            deadline,
            Idempotency::Idempotent,
            self.inner.timeout,
            |_| {
                let request = self.inner.http.get(link);
                match range {
                    Some(range) => request.header(reqwest::header::RANGE, range),
                    None => request,
                }
            },
        )
        .await
    }

    /// One request to a pre-authenticated transfer URL, **without** the Graph token and
    /// only to Graph's host or an allowed transfer host, retried like Graph calls are
    /// (`retry_delay`, at most `max_retries`, never past `max_retry_after` or the
    /// deadline). `build` makes the request for one attempt, given the time that attempt
    /// may take; the wait for the response head is bounded by it too. A 2xx answer is
    /// returned with its body unread.
    async fn send_transfer(
        &self,
        link: &str,
        deadline: Instant,
        idempotency: Idempotency,
        attempt_timeout: Duration,
        build: impl Fn(Duration) -> reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, GraphError> {
        self.check_transfer_url(link)?;
        let settings = &self.inner.retry;
        let mut attempt = 0;
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return Err(match idempotency {
                    Idempotency::Once => {
                        GraphError::OutcomeUnknown("transfer deadline passed".into())
                    }
                    Idempotency::Idempotent => GraphError::Timeout,
                });
            }
            let timeout = remaining.min(attempt_timeout);
            let sent = match tokio::time::timeout(timeout, build(timeout).send()).await {
                Ok(sent) => sent.map_err(transport_error),
                Err(_) => Err(GraphError::Timeout),
            };
            let error = match sent {
                Ok(response) => match check_status(response).await {
                    Ok(response) => return Ok(response),
                    Err(e) => e,
                },
                Err(e) => e,
            };
            let Some(delay) = retry_delay(&error, attempt, settings, idempotency) else {
                return Err(match idempotency {
                    Idempotency::Once => unknown_outcome(error),
                    Idempotency::Idempotent => error,
                });
            };
            if attempt >= settings.max_retries
                || delay > settings.max_retry_after
                || Instant::now() + delay >= deadline
            {
                return Err(error.with_retry_after(delay));
            }
            tokio::time::sleep(delay).await;
            attempt += 1;
        }
    }

    /// Evicts every cached answer about files (drives, items, children, site libraries),
    /// whoever fetched it, after a write through the gateway. Coarse on purpose: one drive
    /// is reachable under several URLs (`/drives/{id}`, `/users/{id}/drive`,
    /// `/sites/{id}/drive`), and writes are rare next to reads. With Redis, every replica
    /// misses them from when this returns (the files generation is bumped).
    pub async fn invalidate_files(&self) {
        evict(&self.inner.cache, &Scope::Files);
        if let Some(shared) = &self.inner.shared {
            shared.invalidate(&Scope::Files).await;
        }
    }

    /// Refuses transfer URLs outside Graph's host and the allowed transfer hosts, and
    /// anything but https (plain http only toward the configured Graph host itself, which
    /// is how the emulator runs).
    fn check_transfer_url(&self, link: &str) -> Result<(), GraphError> {
        if transfer_url_allowed(&self.inner.base, &self.inner.transfer_hosts, link) {
            Ok(())
        } else {
            Err(GraphError::Refused(
                "an upload URL outside the allowed hosts".into(),
            ))
        }
    }

    /// Evicts every cached answer about `mailbox` (messages, folders, events, contacts),
    /// whoever fetched it: a write through the gateway made them stale. The mailbox is the
    /// path segment the gateway used (object id or address), compared ignoring case. With
    /// Redis, every replica misses them from when this returns (the mailbox's generation
    /// is bumped).
    pub async fn invalidate_mailbox(&self, mailbox: &str) {
        let scope = Scope::Mailbox(mailbox.to_ascii_lowercase());
        evict(&self.inner.cache, &scope);
        if let Some(shared) = &self.inner.shared {
            shared.invalidate(&scope).await;
        }
    }

    /// What evicts this replica's first-level entries when another replica invalidates.
    pub fn evictor(&self) -> Evict {
        let cache = self.inner.cache.clone();
        Arc::new(move |scope: &Scope| evict(&cache, scope))
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
                    && let Some(delay) =
                        retry_delay(error, round, &self.inner.retry, Idempotency::Idempotent)
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
                let mut headers = serde_json::Map::new();
                if item.eventual {
                    headers.insert("ConsistencyLevel".into(), json!("eventual"));
                }
                if let Some(prefer) = &item.prefer {
                    headers.insert("Prefer".into(), json!(prefer));
                }
                if !headers.is_empty() {
                    request["headers"] = Value::Object(headers);
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
                .send_retrying(
                    access,
                    "/$batch",
                    deadline,
                    Idempotency::Idempotent,
                    |http| http.post(&url).json(&body),
                    read_body,
                )
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
                // `get_many` caches it (under the generation it read before the batch).
                out.push(Ok(Bytes::from(body)));
            } else {
                let route = crate::telemetry::graph_route(&request.url);
                metrics::counter!("graph_batch_items_total", "route" => route.clone(), "status" => item.status.to_string()).increment(1);
                let error = GraphError::from_response(
                    item.status,
                    &body,
                    header("request-id"),
                    header("Retry-After").as_deref().and_then(parse_retry_after),
                );

                if item.status == 429 {
                    metrics::counter!("graph_throttled_total", "route" => route).increment(1);
                }
                out.push(Err(error));
            }
        }
        out
    }

    /// One call with the identity's token, retried on throttling and unavailability
    /// within the retry budget and the caller's deadline (a call that may act only once is
    /// retried only when Graph certainly did not act); never waits past the deadline (it
    /// fails fast with the wait Graph asked for instead). `read` turns a 2xx answer into
    /// the result.
    ///
    /// A 401 means the cached token went bad (revoked, rotated): drop it, acquire once,
    /// retry once; a second 401 is the answer.
    async fn send_retrying<T>(
        &self,
        access: &Access,
        route: &str,
        deadline: Instant,
        idempotency: Idempotency,
        build: impl Fn(&reqwest::Client) -> reqwest::RequestBuilder,
        read: impl AsyncFn(reqwest::Response) -> Result<T, GraphError>,
    ) -> Result<T, GraphError> {
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
                    let timeout = remaining.min(self.inner.timeout);
                    match self
                        .attempt(&build, route, &token.secret, timeout, attempt)
                        .await
                    {
                        Ok(response) => {
                            let left = deadline.saturating_duration_since(Instant::now());
                            match tokio::time::timeout(left.min(self.inner.timeout), read(response))
                                .await
                            {
                                Ok(result) => result,
                                Err(_) => Err(GraphError::Timeout),
                            }
                        }
                        Err(e) => Err(e),
                    }
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
            let Some(delay) = retry_delay(&error, attempt, settings, idempotency) else {
                return Err(match idempotency {
                    Idempotency::Once => unknown_outcome(error),
                    Idempotency::Idempotent => error,
                });
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

    /// One HTTP exchange up to the response headers; a non-2xx answer becomes a typed
    /// error. The per-attempt timeout covers the headers only, so a streamed body is not
    /// cut short by it (buffered reads are bounded by the caller's deadline instead).
    ///
    /// Each attempt is a `graph.request` span (route template, never the URL: it holds ids
    /// and query text). Its `client-request-id` is the trace id when tracing is on, so
    /// Graph's logs and the trace meet; a fresh UUID otherwise.
    async fn attempt(
        &self,
        build: &impl Fn(&reqwest::Client) -> reqwest::RequestBuilder,
        route: &str,
        token: &str,
        timeout: Duration,
        attempt: u32,
    ) -> Result<reqwest::Response, GraphError> {
        let (client, request) = build(&self.inner.http).bearer_auth(token).build_split();
        let mut request = request.map_err(transport_error)?;
        let method = request.method().clone();
        let span = tracing::debug_span!(
            "graph.request",
            otel.name = format!("{method} {route}"),
            otel.kind = "client",
            otel.status_code = tracing::field::Empty,
            http.request.method = %method,
            graph.route = route,
            http.request.resend_count = attempt,
            http.response.status_code = tracing::field::Empty,
            graph.client_request_id = tracing::field::Empty,
            graph.request_id = tracing::field::Empty,
        );
        let client_request_id = crate::telemetry::otel::trace_guid(&span)
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        span.record("graph.client_request_id", client_request_id.as_str());
        if let Ok(value) = reqwest::header::HeaderValue::from_str(&client_request_id) {
            request.headers_mut().insert("client-request-id", value);
        }
        let started = Instant::now();
        let sent = match tokio::time::timeout(timeout, client.execute(request))
            .instrument(span.clone())
            .await
        {
            Ok(sent) => sent.map_err(transport_error),
            Err(_) => Err(GraphError::Timeout),
        };
        let status = match &sent {
            Ok(response) => response.status().as_u16().to_string(),
            Err(GraphError::Timeout) => "timeout".to_owned(),
            Err(_) => "error".to_owned(),
        };
        metrics::counter!("graph_requests_total", "route" => route.to_owned(), "status" => status.clone()).increment(1);
        metrics::histogram!("graph_request_duration_seconds", "route" => route.to_owned())
            .record(started.elapsed().as_secs_f64());
        if status == "429" {
            metrics::counter!("graph_throttled_total", "route" => route.to_owned()).increment(1);
        }
        let response = match sent {
            Ok(response) => response,
            Err(e) => {
                span.record("otel.status_code", "ERROR");
                return Err(e);
            }
        };
        let request_id = response
            .headers()
            .get("request-id")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        span.record("http.response.status_code", response.status().as_u16());
        span.record("graph.request_id", request_id);
        if !response.status().is_success() && !response.status().is_redirection() {
            span.record("otel.status_code", "ERROR");
        }
        tracing::debug!(
            parent: &span,
            status = response.status().as_u16(),
            client_request_id,
            request_id,
            "graph call"
        );
        check_status(response).await
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

/// May a pre-authenticated transfer URL Graph handed out be followed? Only to the Graph
/// host itself (same scheme and port: how the emulator serves its upload URLs), or over
/// https to one of `hosts` (exact, or `*.suffix` for any subdomain); never with
/// credentials in the URL.
fn transfer_url_allowed(graph_base: &str, hosts: &[String], link: &str) -> bool {
    let (Ok(url), Ok(base)) = (Url::parse(link), Url::parse(graph_base)) else {
        return false;
    };
    let Some(host) = url.host_str().map(str::to_ascii_lowercase) else {
        return false;
    };
    if !url.username().is_empty() || url.password().is_some() {
        return false;
    }
    let same_as_graph = url.scheme() == base.scheme()
        && Some(host.as_str()) == base.host_str()
        && url.port_or_known_default() == base.port_or_known_default();
    let listed = url.scheme() == "https"
        && hosts
            .iter()
            .any(|pattern| match pattern.strip_prefix("*.") {
                Some(suffix) => host
                    .strip_suffix(suffix)
                    .is_some_and(|prefix| prefix.ends_with('.') && prefix.len() > 1),
                None => host == *pattern,
            });
    same_as_graph || listed
}

/// A Graph path about files: `/drives/…`, or anything with a `drive` / `drives` segment.
fn is_file_url(path: &str) -> bool {
    path.starts_with("/drives/")
        || path
            .split('/')
            .any(|segment| segment == "drive" || segment == "drives")
}

/// A non-2xx answer as a typed error (its body read); a 2xx answer untouched.
async fn check_status(response: reqwest::Response) -> Result<reqwest::Response, GraphError> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    if status.is_redirection() {
        let location = response
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        return Err(GraphError::Redirected { location });
    }
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
    Err(GraphError::from_response(
        status.as_u16(),
        &body,
        request_id,
        retry_after,
    ))
}

async fn read_body(response: reqwest::Response) -> Result<Bytes, GraphError> {
    response.bytes().await.map_err(transport_error)
}

async fn read_reply(response: reqwest::Response) -> Result<GraphReply, GraphError> {
    let status = response.status().as_u16();
    let location = response
        .headers()
        .get(reqwest::header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = response.bytes().await.map_err(transport_error)?;
    Ok(GraphReply {
        status,
        location,
        body,
    })
}

fn get_builder(http: &reqwest::Client, url: &str, request: &GraphGet) -> reqwest::RequestBuilder {
    let mut builder = http.get(url);
    if request.eventual {
        builder = builder.header("ConsistencyLevel", "eventual");
    }
    if let Some(prefer) = &request.prefer {
        builder = builder.header("Prefer", prefer);
    }
    builder
}

/// For a call that may act only once: a failure after which Graph may or may not have
/// acted is reported as such, so nobody retries it blindly.
fn unknown_outcome(error: GraphError) -> GraphError {
    match error {
        GraphError::Timeout => GraphError::OutcomeUnknown("no answer in time".into()),
        GraphError::Interrupted(reason) => GraphError::OutcomeUnknown(reason),
        GraphError::Api { status: 504, .. } => {
            GraphError::OutcomeUnknown("Graph's gateway timed out".into())
        }
        other => other,
    }
}

/// Which generation a GET's answer lives under in Redis: its mailbox's (as
/// [`GraphClient::invalidate_mailbox`] recognises it), the files' (as
/// [`GraphClient::invalidate_files`] does), or none.
fn scope_of(url: &str) -> Scope {
    if let Some(mailbox) = super::resilience::outlook_mailbox(url) {
        return Scope::Mailbox(
            percent_encoding::percent_decode_str(&mailbox)
                .decode_utf8_lossy()
                .into_owned(),
        );
    }
    if is_file_url(url.split('?').next().unwrap_or_default()) {
        return Scope::Files;
    }
    Scope::None
}

/// The first-level key: with Redis, answers about a mailbox or files carry the generation
/// they were read under, so once another replica bumps it this replica's copy is no longer
/// found (the pub/sub eviction only frees the memory sooner). The URL stays the last line,
/// which is what the eviction predicates read.
fn l1_key(key: &str, generation: Option<u64>, url: &str) -> String {
    match generation {
        Some(generation) if scope_of(url) != Scope::None => format!("g{generation}\n{key}"),
        _ => key.to_owned(),
    }
}

/// Drops this replica's first-level entries about `scope`, whoever fetched them.
fn evict(cache: &Cache<String, Bytes>, scope: &Scope) {
    let result = match scope {
        Scope::None => return,
        Scope::Files => cache.invalidate_entries_if(|key, _| {
            let url = key.rsplit('\n').next().unwrap_or_default();
            is_file_url(url.split('?').next().unwrap_or_default())
        }),
        Scope::Mailbox(mailbox) => {
            let mailbox = mailbox.clone();
            cache.invalidate_entries_if(move |key, _| {
                let url = key.rsplit('\n').next().unwrap_or_default();
                super::resilience::outlook_mailbox(url).is_some_and(|m| {
                    percent_encoding::percent_decode_str(&m).decode_utf8_lossy() == mailbox
                })
            })
        }
    };
    if let Err(e) = result {
        tracing::warn!(error = %e, "cache invalidation refused");
    }
}

/// The Graph identity and policy version are part of the key: an answer fetched as one
/// identity is never served to another, nor under a newer policy. `ConsistencyLevel`
/// changes the answer, so it is part of it too.
fn cache_key(access: &Access, request: &GraphGet) -> String {
    format!(
        "{}\n{}{}\n{}",
        access.cache_namespace,
        if request.eventual { "eventual" } else { "" },
        request.prefer.as_deref().unwrap_or(""),
        request.url
    )
}

#[cfg(test)]
mod tests {
    use super::transfer_url_allowed;

    #[test]
    fn file_urls_are_recognised_however_the_drive_is_named() {
        use super::is_file_url;
        for yes in [
            "/drives/b!x/items/1",
            "/users/u/drive",
            "/users/u/drive/root:/a%20b:/children",
            "/sites/h,1,2/drives",
            "/sites/h:/sites/x:/drive/root",
        ] {
            assert!(is_file_url(yes), "{yes}");
        }
        for no in [
            "/users/u",
            "/users/u/messages",
            "/users/drive-team@x/manager",
        ] {
            assert!(!is_file_url(no), "{no}");
        }
    }

    #[test]
    fn upload_urls_are_followed_only_to_graph_or_allowed_https_hosts() {
        let hosts = vec![
            "outlook.office.com".to_owned(),
            "*.sharepoint.com".to_owned(),
        ];
        let graph = "https://graph.microsoft.com/v1.0";
        for ok in [
            "https://outlook.office.com/api/v2.0/Users('a')/Messages('b')/AttachmentSessions('c')?authtoken=x",
            "https://contoso.sharepoint.com/upload?x=1",
            "https://graph.microsoft.com/v1.0/whatever",
        ] {
            assert!(transfer_url_allowed(graph, &hosts, ok), "{ok}");
        }
        for refused in [
            "http://outlook.office.com/api",
            "https://outlook.office.com.evil.example/api",
            "https://evilsharepoint.com/x",
            "https://sharepoint.com/x",
            "https://169.254.169.254/latest/meta-data",
            "https://user:pw@outlook.office.com/api",
            "https://graph.microsoft.com:8443/v1.0",
            "not a url",
        ] {
            assert!(!transfer_url_allowed(graph, &hosts, refused), "{refused}");
        }
        // The emulator: plain http, but the Graph host itself.
        assert!(transfer_url_allowed(
            "http://127.0.0.1:4100/v1.0",
            &hosts,
            "http://127.0.0.1:4100/api/v2.0/Users('a')/x"
        ));
        assert!(!transfer_url_allowed(
            "http://127.0.0.1:4100/v1.0",
            &hosts,
            "http://127.0.0.1:4101/api"
        ));
    }
}
