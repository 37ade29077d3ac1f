//! The Graph HTTP client: token attachment, the response cache, coalescing and `$batch`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::future::join_all;
use moka::future::Cache;
use reqwest::StatusCode;
use serde_json::{Value, json};
use url::Url;

use super::error::{GraphError, parse_retry_after};
use super::models::BatchResponse;
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
}

/// Settings of [`GraphClient::new`].
pub struct GraphClientSettings {
    pub base_url: Url,
    pub cache_ttl: Duration,
    pub cache_max_bytes: u64,
    pub batch_size: usize,
    pub timeout: Duration,
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
            }),
        }
    }

    pub fn tokens(&self) -> &TokenBroker {
        &self.inner.tokens
    }

    /// One GET: served from the cache, else fetched once however many callers ask at the
    /// same time (moka's `try_get_with` is single-flight). Errors are never cached.
    pub async fn get(&self, access: &Access, request: &GraphGet) -> Result<Bytes, GraphError> {
        self.inner
            .cache
            .try_get_with(cache_key(access, request), self.fetch(access, request))
            .await
            .map_err(|e| (*e).clone())
    }

    /// Many GETs at once: cache hits first, then the misses packed into `$batch` requests
    /// of at most `batch_size`, sent concurrently. Results come back in request order.
    pub async fn get_many(
        &self,
        access: &Access,
        requests: &[GraphGet],
    ) -> Vec<Result<Bytes, GraphError>> {
        let mut results: Vec<Option<Result<Bytes, GraphError>>> =
            Vec::with_capacity(requests.len());
        let mut misses = Vec::new();
        for (i, request) in requests.iter().enumerate() {
            match self.inner.cache.get(&cache_key(access, request)).await {
                Some(body) => results.push(Some(Ok(body))),
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
                    vec![(*single, self.get(access, &requests[*single]).await)]
                } else {
                    let items: Vec<&GraphGet> = chunk.iter().map(|&i| &requests[i]).collect();
                    let answers = self.batch(access, &items).await;
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

    async fn fetch(&self, access: &Access, request: &GraphGet) -> Result<Bytes, GraphError> {
        let url = format!("{}{}", self.inner.base, request.url);
        let response = self
            .send_with_token(access, |http| {
                let mut builder = http.get(&url);
                if request.eventual {
                    builder = builder.header("ConsistencyLevel", "eventual");
                }
                builder
            })
            .await?;
        read_success(response).await
    }

    async fn batch(&self, access: &Access, items: &[&GraphGet]) -> Vec<Result<Bytes, GraphError>> {
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
            let response = self
                .send_with_token(access, |http| http.post(&url).json(&body))
                .await?;
            let bytes = read_success(response).await?;
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

    /// Sends with the identity's token. A 401 means the cached token went bad (revoked,
    /// rotated): drop it, acquire once, retry once; a second 401 is the answer.
    async fn send_with_token(
        &self,
        access: &Access,
        build: impl Fn(&reqwest::Client) -> reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, GraphError> {
        let mut retried = false;
        loop {
            let token = self.inner.tokens.token(access).await?;
            let client_request_id = uuid::Uuid::new_v4().to_string();
            let response = build(&self.inner.http)
                .bearer_auth(&token.secret)
                .header("client-request-id", &client_request_id)
                .timeout(self.inner.timeout)
                .send()
                .await
                .map_err(|e| {
                    if e.is_timeout() {
                        GraphError::Timeout
                    } else {
                        GraphError::Unreachable(e.without_url().to_string())
                    }
                })?;
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
            if response.status() == StatusCode::UNAUTHORIZED && !retried {
                retried = true;
                self.inner.tokens.invalidate(&access.identity).await;
                continue;
            }
            return Ok(response);
        }
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
    let body = response.bytes().await.map_err(|e| {
        if e.is_timeout() {
            GraphError::Timeout
        } else {
            GraphError::Unreachable(e.without_url().to_string())
        }
    })?;
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
