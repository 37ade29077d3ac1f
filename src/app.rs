//! Composition root: builds the state, the routers and the background jobs. Production
//! (`m365-gateway serve`) and every integration test go through the same [`App::build`].

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use arc_swap::ArcSwap;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderName, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use graph_emulator::{Emulator, EmulatorConfig as EmulatorSettings, RunningEmulator};
use serde_json::json;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::compression::CompressionLayer;
use tower_http::compression::predicate::{DefaultPredicate, Predicate};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer;
use tower_http::trace::TraceLayer;
use url::Url;

use crate::auth::{Authenticator, JwksKeys, mint_dev_token};
use crate::config::{CallerMode, Config, ConfigError, DEMO_CALLER, Secret};
use crate::graph::{GraphClient, GraphClientSettings};
use crate::graphql::{self, GraphqlRuntime};
use crate::identity::{AppCredentials, CertificateCredential, ClientCredential, TokenBroker};
use crate::rate_limit::RateLimiter;
use crate::rest;
use crate::service::Services;
use crate::service::policy::PolicyResolver;
use crate::store::Store;
use crate::webhooks::bus::EventBus;

/// Where the embedded default keeps its files (SQLite database, development key).
pub const DATA_DIR: &str = ".m365gw";

/// Lifetime of the dev token printed at start and pre-filled in GraphiQL.
pub const DEV_TOKEN_TTL: Duration = Duration::from_secs(12 * 3600);

/// State shared by every handler.
#[derive(Clone)]
pub struct AppState {
    /// Swapped whole on a configuration reload, so a request sees one policy throughout.
    pub auth: Arc<ArcSwap<Authenticator>>,
    pub services: Services,
    pub graphql: Arc<GraphqlRuntime>,
    pub rate: Arc<RateLimiter>,
    /// Cancelled when the gateway starts shutting down: `/readyz` turns 503 at once.
    pub shutdown: CancellationToken,
}

/// Applies a new configuration's issuers, callers and policies without a restart
/// (SIGHUP). Other settings (listen address, Graph credentials, cache) need a restart.
#[derive(Clone)]
pub struct Reloader {
    auth: Arc<ArcSwap<Authenticator>>,
    policy: Arc<PolicyResolver>,
    http: reqwest::Client,
    version: Arc<AtomicU64>,
    /// Stops the background refreshes of the authenticators it builds.
    shutdown: CancellationToken,
}

impl Reloader {
    pub async fn reload(&self, config: Config) -> Result<(), ConfigError> {
        let config = config.with_embedded_defaults();
        config.validate()?;
        crate::telemetry::metrics();
        let version = self.version.fetch_add(1, Ordering::SeqCst) + 1;
        let auth = Arc::new(Authenticator::new(&config, self.http.clone(), version));
        start_jwks_refresh(&auth, &self.shutdown).await;
        // Resolve before swapping, so the new callers never meet an unresolved policy.
        self.policy.refresh(&auth.caller_resources()).await;
        self.policy.refresh_files(&auth.caller_sites()).await;
        self.auth.store(auth);
        tracing::info!(policy_version = version, "configuration reloaded");
        Ok(())
    }
}

/// A built, bound, not yet serving gateway.
pub struct App {
    listener: TcpListener,
    router: Router,
    local_addr: SocketAddr,
    /// The embedded emulator, when no Microsoft credentials are configured.
    emulator: Option<RunningEmulator>,
    /// Token for the demo caller, when running on the embedded default.
    dev_token: Option<String>,
    config: Config,
    reloader: Reloader,
    /// Cancelled when shutdown begins; background tasks stop on it.
    shutdown: CancellationToken,
    /// Closed after the last request (pending writes finish, connections say goodbye).
    store: Option<Store>,
    /// Live change events for GraphQL subscribers (local, or shared through Redis).
    events: EventBus,
}

impl App {
    /// Validates the configuration, starts the embedded emulator when needed, and binds
    /// the listener (port 0 works: see [`App::local_addr`]).
    pub async fn build(config: Config) -> anyhow::Result<App> {
        let config = config.with_embedded_defaults();
        config.validate()?;
        crate::telemetry::metrics();

        let emulator = if config.uses_emulator() {
            let settings = EmulatorSettings {
                users: config.emulator.users,
                seed: config.emulator.seed,
                latency: config.emulator.latency,
                ..EmulatorSettings::default()
            };
            let running = Emulator::spawn(settings, config.emulator.listen).await?;
            Some(running)
        } else {
            None
        };
        let credentials = match &emulator {
            Some(running) => AppCredentials {
                authority: Url::parse(&running.base_url())?,
                tenant: running.emulator.tenant_id().to_owned(),
                client_id: graph_emulator::DEFAULT_CLIENT_ID.to_owned(),
                credential: ClientCredential::Secret(Secret::new(
                    graph_emulator::DEFAULT_CLIENT_SECRET,
                )),
            },
            None => AppCredentials {
                authority: config.graph.authority.clone(),
                tenant: config.graph.tenant_id.clone().unwrap_or_default(),
                client_id: config.graph.client_id.clone().unwrap_or_default(),
                credential: match (&config.graph.certificate, &config.graph.client_secret) {
                    (Some(cert), _) => ClientCredential::Certificate(Arc::new(
                        CertificateCredential::load(
                            &cert.private_key_file,
                            &cert.certificate_file,
                            &cert.algorithm,
                            &cert.thumbprint,
                        )
                        .map_err(|e| anyhow::anyhow!("graph.certificate: {e}"))?,
                    )),
                    (None, secret) => {
                        ClientCredential::Secret(secret.clone().unwrap_or_else(|| Secret::new("")))
                    }
                },
            },
        };
        let graph_base = match &emulator {
            Some(running) => Url::parse(&running.graph_url())?,
            None => config.graph.base_url.clone(),
        };

        // One HTTP client for every upstream. Redirects are never followed: a Graph
        // token must not travel to wherever a 3xx points.
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(5))
            .pool_idle_timeout(Duration::from_secs(90))
            .user_agent(concat!("m365-gateway/", env!("CARGO_PKG_VERSION")))
            .build()?;

        // The store holds connected users' grants and everything about change
        // notifications; it is opened when either is in use.
        let store = if config.notifications.enabled
            || config
                .callers
                .values()
                .any(|c| c.mode == CallerMode::Connected)
        {
            let dev_key = (!config.production)
                .then(|| std::path::Path::new(DATA_DIR).join("dev-encryption.key"));
            Some(Store::connect(&config.store, dev_key.as_deref()).await?)
        } else {
            None
        };
        // Redis as the second-level cache of Graph answers (and sealed tokens) shared by
        // every replica.
        let shared_cache = match &config.redis.url {
            Some(url) => Some(
                crate::shared_cache::SharedCache::connect(
                    url.expose(),
                    &config.redis.key_prefix,
                    config.cache.ttl,
                    config
                        .redis
                        .token_key
                        .as_ref()
                        .map(|k| crate::store::decode_key(k.expose()))
                        .transpose()
                        .map_err(|e| anyhow::anyhow!("redis.token_key: {e}"))?,
                )
                .await?,
            ),
            None => None,
        };
        let tokens = TokenBroker::new(http.clone(), credentials, store.clone())
            .with_shared(shared_cache.clone());
        let graph = GraphClient::new(
            http.clone(),
            tokens,
            GraphClientSettings {
                base_url: graph_base,
                cache_ttl: config.cache.ttl,
                cache_max_bytes: config.cache.max_bytes,
                batch_size: config.graph.batch_size,
                timeout: config.graph.timeout,
                retry: config.graph.retry.clone(),
                transfer_hosts: config.graph.transfer_hosts.clone(),
                shared: shared_cache.clone(),
            },
        );
        let version = Arc::new(AtomicU64::new(1));
        let shutdown = CancellationToken::new();
        if let Some(shared) = &shared_cache {
            shared.listen(graph.evictor(), shutdown.clone());
        }
        let auth = Arc::new(Authenticator::new(&config, http.clone(), 1));
        start_jwks_refresh(&auth, &shutdown).await;
        let policy = Arc::new(PolicyResolver::new(graph.clone()));
        policy.refresh(&auth.caller_resources()).await;
        policy.refresh_files(&auth.caller_sites()).await;
        let auth = Arc::new(ArcSwap::new(auth));
        let http_for_jobs = http.clone();
        let reloader = Reloader {
            auth: auth.clone(),
            policy: policy.clone(),
            http,
            version,
            shutdown: shutdown.clone(),
        };
        start_policy_refresh(&reloader, config.policy.refresh);

        let redis = match &config.redis.url {
            Some(url) => Some(crate::rate_limit::SharedBuckets {
                connection: RateLimiter::connect_redis(url.expose()).await?,
                key_prefix: config.redis.key_prefix.clone(),
            }),
            None => None,
        };
        // Live events reach subscribers on every replica through the same Redis.
        let events = match &config.redis.url {
            Some(url) => {
                EventBus::with_redis(url.expose(), &config.redis.key_prefix, shutdown.clone())
                    .await?
            }
            None => EventBus::new(),
        };

        let listener = TcpListener::bind(config.listen).await?;
        let local_addr = listener.local_addr()?;
        let public_url = match &config.public_url {
            Some(url) => url.clone(),
            None => Url::parse(&format!("http://{local_addr}"))?,
        };
        let notifications = match (&store, config.notifications.enabled) {
            (Some(store), true) => Some(Arc::new(crate::webhooks::manage::Notifications {
                store: store.clone(),
                graph: graph.clone(),
                config: config.notifications.clone(),
                public_url: config
                    .notifications
                    .public_url
                    .clone()
                    .unwrap_or_else(|| public_url.clone()),
                bus: events.clone(),
                rich: rich_keys(&config)?,
                tokens: rich_token_checker(&config, graph.tokens().app(), &http_for_jobs),
                replica: uuid::Uuid::new_v4().to_string(),
                wake_worker: Default::default(),
                wake_renewal: Default::default(),
                wake_deliveries: Default::default(),
                receive_limit: RateLimiter::new(
                    &crate::config::RateLimitConfig {
                        enabled: true,
                        requests_per_second: config.notifications.receive_requests_per_second,
                        request_burst: (config.notifications.receive_requests_per_second * 2.0)
                            .ceil() as u32,
                        ..crate::config::RateLimitConfig::default()
                    },
                    None,
                ),
                orphan_suspects: Default::default(),
            })),
            _ => None,
        };
        if let Some(n) = &notifications {
            // Whatever happened while this process was not running (Graph dropping a
            // subscription, a lifecycle event that found nobody), the renewal job's first
            // pass finds out. Before anything is spawned, so it only concerns older watches.
            n.store.make_all_watches_due().await?;
            crate::webhooks::worker::spawn(n.clone(), shutdown.clone());
            crate::webhooks::renewal::spawn(n.clone(), shutdown.clone());
            crate::webhooks::outbound::spawn_delivery_worker(
                n.store.clone(),
                http_for_jobs.clone(),
                config.notifications.webhooks.clone(),
                n.replica.clone(),
                n.wake_deliveries.clone(),
                shutdown.clone(),
            );
        }
        let state = AppState {
            auth,
            services: Services {
                graph,
                policy,
                store: store.clone(),
                public_url,
                request_timeout: config.http.request_timeout,
                links: Arc::new(crate::service::links::LinkSealer::new(
                    config
                        .files
                        .link_key
                        .as_ref()
                        .map(|k| crate::store::decode_key(k.expose()))
                        .transpose()
                        .map_err(|e| anyhow::anyhow!("files.link_key: {e}"))?,
                    config.files.link_ttl,
                )?),
                files: crate::service::files_transfer::FileSettings {
                    chunk_bytes: config.files.chunk_bytes,
                    transfer_timeout: config.files.transfer_timeout,
                },
                events: events.clone(),
                notifications,
                outbound_webhooks: config.notifications.webhooks.clone(),
            },
            graphql: Arc::new(GraphqlRuntime::new(&config)?),
            rate: Arc::new(RateLimiter::new(&config.rate_limit, redis)),
            shutdown: shutdown.clone(),
        };

        let dev_token = match &emulator {
            Some(_) if config.callers.contains_key(DEMO_CALLER) => mint_dev_token(
                &config,
                DEMO_CALLER,
                Some(graph_emulator::DEMO_USER_UPN),
                DEV_TOKEN_TTL,
            )
            .ok(),
            _ => None,
        };

        let router = router(&config, state, dev_token.as_deref());
        Ok(App {
            listener,
            router,
            local_addr,
            emulator,
            dev_token,
            config,
            reloader,
            shutdown,
            store,
            events,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    pub fn emulator(&self) -> Option<&RunningEmulator> {
        self.emulator.as_ref()
    }

    pub fn dev_token(&self) -> Option<&str> {
        self.dev_token.as_deref()
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Applies new issuers, callers and policies while running (SIGHUP does this).
    pub fn reloader(&self) -> Reloader {
        self.reloader.clone()
    }

    /// The store, when a caller needs one (readiness tests make it unavailable).
    pub fn store(&self) -> Option<&Store> {
        self.store.as_ref()
    }

    /// The bus live events are published on (the outbox worker publishes; tests too).
    pub fn events(&self) -> EventBus {
        self.events.clone()
    }

    /// Cancelling it shuts the gateway down, as the future given to
    /// [`App::run_until_stopped`] completing does.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Serves until `shutdown` completes. Then, at once, `/readyz` answers 503 and
    /// background tasks stop; the listener closes; requests in flight may finish within
    /// `http.shutdown_grace`, after which this returns anyway (the caller exits, dropping
    /// what is left).
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let App {
            listener,
            router,
            emulator,
            shutdown: token,
            config,
            store,
            ..
        } = self;
        let grace = config.http.shutdown_grace;
        let trigger = token.clone();
        tokio::spawn(async move {
            tokio::select! {
                () = shutdown => trigger.cancel(),
                () = trigger.cancelled() => {}
            }
        });
        let serve = axum::serve(listener, router)
            .with_graceful_shutdown(token.clone().cancelled_owned())
            .into_future();
        let result = tokio::select! {
            result = serve => result,
            () = async {
                token.cancelled().await;
                tokio::time::sleep(grace).await;
            } => {
                tracing::warn!(
                    grace = %humantime::format_duration(grace),
                    "requests still in flight after the shutdown grace; exiting anyway"
                );
                Ok(())
            }
        };
        if let Some(store) = store {
            // Bounded: a request abandoned after the grace may still hold a connection.
            let _ = tokio::time::timeout(Duration::from_secs(2), store.close()).await;
        }
        tracing::info!("stopped");
        // The embedded emulator lives exactly as long as the gateway.
        drop(emulator);
        result
    }
}

fn router(config: &Config, state: AppState, dev_token: Option<&str>) -> Router {
    let request_id = HeaderName::from_static("x-request-id");
    let mut router = Router::new()
        .route(
            "/graphql",
            get(graphql::ws::get_handler).post(graphql::handler),
        )
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .merge(rest::router())
        .merge(rest::connect::router())
        .merge(crate::webhooks::receive::router());
    if config.graphiql_enabled() {
        router = router.merge(graphql::graphiql::router(
            graphql::graphiql::GraphiqlSettings {
                endpoint: "/graphql".to_owned(),
                default_headers: dev_token
                    .map(|t| json!({ "Authorization": format!("Bearer {t}") }).to_string()),
                default_query: Some(EXAMPLE_QUERY.to_owned()),
                title: "m365-gateway GraphiQL".to_owned(),
            },
        ));
    }
    let router = router
        .with_state(state)
        // Innermost first: the timeout must wrap the handler directly (see rust-stack.md §8.3).
        .layer(axum::middleware::from_fn_with_state(
            Timeouts {
                request: config.http.request_timeout,
                transfer: config.files.transfer_timeout,
            },
            limit_time,
        ))
        // async-graphql-axum bypasses axum's DefaultBodyLimit, so the limit is a layer.
        .layer(axum::middleware::from_fn_with_state(
            BodyLimits {
                body: config.http.body_limit_bytes,
                upload: config.http.upload_limit_bytes,
                file: usize::try_from(config.files.max_upload_bytes).unwrap_or(usize::MAX),
                webhook: config.notifications.max_body_bytes,
            },
            limit_body,
        ))
        .layer(CompressionLayer::new().compress_when(DefaultPredicate::new().and(not_a_file)))
        .layer(CatchPanicLayer::new())
        .layer(axum::middleware::from_fn(crate::telemetry::http_metrics))
        .layer(TraceLayer::new_for_http().make_span_with(request_span))
        .layer(SetSensitiveRequestHeadersLayer::new([
            axum::http::header::AUTHORIZATION,
            axum::http::header::COOKIE,
        ]))
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid));
    match cors(&config.http) {
        Some(cors) => router.layer(cors),
        None => router,
    }
}

/// CORS for the configured browser origins only (exact matches; never a wildcard).
/// Preflights are answered here, before any authentication: they carry no token.
fn cors(http: &crate::config::HttpConfig) -> Option<tower_http::cors::CorsLayer> {
    use axum::http::{HeaderName, HeaderValue, Method, header};
    use tower_http::cors::{AllowOrigin, CorsLayer};
    if http.cors_allowed_origins.is_empty() {
        return None;
    }
    let origins: Vec<HeaderValue> = http
        .cors_allowed_origins
        .iter()
        .filter_map(|o| HeaderValue::from_str(o).ok())
        .collect();
    Some(
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(origins))
            .allow_methods([
                Method::GET,
                Method::POST,
                Method::PUT,
                Method::PATCH,
                Method::DELETE,
            ])
            .allow_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                header::ACCEPT,
                header::IF_MATCH,
                header::RANGE,
                HeaderName::from_static("x-request-id"),
                HeaderName::from_static(crate::rest::REQUEST_TIMEOUT_HEADER),
                HeaderName::from_static(crate::auth::ACT_AS_HEADER),
                // Sent by common GraphQL clients (Apollo's CSRF guard, operation names).
                HeaderName::from_static("apollo-require-preflight"),
                HeaderName::from_static("x-apollo-operation-name"),
            ])
            .expose_headers([
                HeaderName::from_static("x-request-id"),
                header::ETAG,
                header::CONTENT_RANGE,
                header::CONTENT_DISPOSITION,
                header::RETRY_AFTER,
                header::WWW_AUTHENTICATE,
            ])
            .allow_credentials(http.cors_allow_credentials)
            .max_age(Duration::from_secs(600)),
    )
}

/// The span of one inbound request: method and route template (`/api/v1/users/{id}`), never
/// the path itself, which holds user ids and, for download links, a credential. Exported as
/// an OpenTelemetry server span, a child of the caller's trace when it sent `traceparent`.
fn request_span<B>(request: &axum::http::Request<B>) -> tracing::Span {
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or("unmatched", |r| r.as_str());
    let method = request.method().as_str();
    // Set by `SetRequestIdLayer` (outside this one): every log line of the request has it.
    let request_id = request
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let span = tracing::debug_span!(
        "request",
        otel.name = format!("{method} {route}"),
        otel.kind = "server",
        http.request.method = method,
        http.route = route,
        http.response.status_code = tracing::field::Empty,
        request_id,
        // Recorded once the token is checked (`telemetry::record_caller`).
        caller = tracing::field::Empty,
    );
    crate::telemetry::otel::adopt_remote_parent(&span, request.headers());
    span
}

/// File content (downloads, attachments) goes out as it is: compressing it would drop
/// `Content-Length` and `Accept-Ranges` (so no ranges, no progress) and burn CPU on data
/// that is usually compressed already.
fn not_a_file(
    _: StatusCode,
    _: axum::http::Version,
    headers: &axum::http::HeaderMap,
    _: &axum::http::Extensions,
) -> bool {
    !headers.contains_key(axum::http::header::ACCEPT_RANGES)
        && !headers.contains_key(axum::http::header::CONTENT_DISPOSITION)
}

#[derive(Clone, Copy)]
struct BodyLimits {
    body: usize,
    upload: usize,
    /// A file uploaded to a drive (the raw body of the REST upload route).
    file: usize,
    /// A notification POST from Graph (`/webhooks/graph…`).
    webhook: usize,
}

#[derive(Clone, Copy)]
struct Timeouts {
    request: Duration,
    /// File uploads, which may rightly take much longer than other requests.
    transfer: Duration,
}

/// Answers 408 when a handler takes longer than its deadline. (tower-http's
/// `TimeoutLayer` has one deadline for every route; file uploads need another.) The
/// deadline covers the handler up to the response head; a streamed download body is
/// bounded by its own transfer deadline instead.
async fn limit_time(
    State(timeouts): State<Timeouts>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let transfer = crate::rest::files::is_upload(request.method(), request.uri().path())
        || crate::graphql::is_upload(request.uri().path(), request.headers());
    let limit = if transfer {
        timeouts.transfer
    } else {
        timeouts.request
    };
    let graphql = request.uri().path() == "/graphql";
    let request_id = request
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => {
            let message = "the request took longer than the gateway allows";
            // The error shape of the transport the request was for.
            let body = if graphql {
                json!({ "errors": [{ "message": message, "extensions": { "code": "TIMEOUT" } }] })
            } else {
                json!({ "error": { "code": "TIMEOUT", "message": message, "request_id": request_id } })
            };
            (StatusCode::REQUEST_TIMEOUT, axum::Json(body)).into_response()
        }
    }
}

/// Caps request bodies: multipart uploads (files, spooled to disk by their readers) may be
/// as large as `upload`, everything else `body`. A declared length over the cap is refused
/// at once; a streamed body is cut off when it passes it (`Limited`), and its reader
/// reports 413.
async fn limit_body(
    State(limits): State<BodyLimits>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let multipart = request
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("multipart/form-data"));
    let limit = if crate::rest::files::is_upload(request.method(), request.uri().path()) {
        limits.file
    } else if request
        .uri()
        .path()
        .starts_with(crate::webhooks::manage::NOTIFICATION_PATH)
    {
        limits.webhook
    } else if multipart {
        limits.upload
    } else {
        limits.body
    };
    let declared = request
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|length| length > limit as u64) {
        let body = json!({ "error": {
            "code": "PAYLOAD_TOO_LARGE",
            "message": format!("the request body is larger than {limit} bytes"),
        }});
        return (StatusCode::PAYLOAD_TOO_LARGE, axum::Json(body)).into_response();
    }
    let (parts, body) = request.into_parts();
    let body = axum::body::Body::new(http_body_util::Limited::new(body, limit));
    next.run(axum::extract::Request::from_parts(parts, body))
        .await
}

/// The org-chart query shown in GraphiQL and the README.
pub const EXAMPLE_QUERY: &str = "{
  me { displayName jobTitle manager { displayName } }
  users(first: 10) {
    nodes {
      displayName
      jobTitle
      manager { displayName }
      directReports(first: 10) { nodes { displayName } }
    }
    pageInfo { hasNextPage endCursor }
  }
}
";

/// Prometheus text format. Unauthenticated like `/healthz`: expose it only where the
/// scraper can reach it.
async fn metrics() -> impl IntoResponse {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        crate::telemetry::metrics().render(),
    )
}

async fn healthz() -> impl IntoResponse {
    axum::Json(json!({ "status": "ok" }))
}

/// Ready when a Graph token is cached or can be acquired now, every JWKS issuer has keys and
/// the store answers; never once shutdown has begun (the load balancer must stop sending).
async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    if state.shutdown.is_cancelled() {
        let body = json!({ "status": "shutting down" });
        return (StatusCode::SERVICE_UNAVAILABLE, axum::Json(body));
    }
    let tokens = state.services.graph.tokens();
    let access = crate::identity::Access::new(tokens.app_identity(), None, 0);
    let token_ok = tokens.has_cached(&access.identity)
        || tokio::time::timeout(Duration::from_secs(3), tokens.token(&access))
            .await
            .is_ok_and(|r| r.is_ok());
    let jwks: Vec<_> = state
        .auth
        .load()
        .jwks()
        .iter()
        .map(|k| (k.issuer_name().to_owned(), k.is_loaded()))
        .collect();
    let jwks_ok = jwks.iter().all(|(_, loaded)| *loaded);
    let store_ok = match &state.services.store {
        Some(store) => store.ping().await.is_ok(),
        None => true,
    };
    let status = if token_ok && jwks_ok && store_ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = json!({
        "status": if status == StatusCode::OK { "ready" } else { "not ready" },
        "checks": {
            "graph_token": token_ok,
            "store": store_ok,
            "jwks": jwks.into_iter().collect::<std::collections::BTreeMap<_, _>>(),
        }
    });
    (status, axum::Json(body))
}

/// Loads every JWKS once (not fatal: readiness reports it) and keeps them fresh for as
/// long as their authenticator is in use (a reload retires the old one) and the gateway
/// is not shutting down.
async fn start_jwks_refresh(auth: &Arc<Authenticator>, shutdown: &CancellationToken) {
    for keys in auth.jwks() {
        if let Err(e) = keys.refresh_now().await {
            tracing::warn!(issuer = keys.issuer_name(), error = %e, "initial JWKS fetch failed; will retry");
        }
        let every = keys.refresh_interval();
        let weak: Weak<JwksKeys> = Arc::downgrade(&keys);
        drop(keys);
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let mut interval = tokio::time::interval(every);
            interval.tick().await;
            loop {
                tokio::select! {
                    _ = interval.tick() => {}
                    () = shutdown.cancelled() => break,
                }
                let Some(keys) = weak.upgrade() else { break };
                if let Err(e) = keys.refresh_now().await {
                    tracing::warn!(issuer = keys.issuer_name(), error = %e, "JWKS refresh failed; keeping the last good keys");
                }
            }
        });
    }
}

/// Re-resolves callers' resource lists (group memberships change) on a timer.
fn start_policy_refresh(reloader: &Reloader, every: Duration) {
    let auth = Arc::downgrade(&reloader.auth);
    let policy = Arc::downgrade(&reloader.policy);
    let shutdown = reloader.shutdown.clone();
    tokio::spawn(async move {
        let mut interval = tokio::time::interval(every);
        interval.tick().await;
        loop {
            tokio::select! {
                _ = interval.tick() => {}
                () = shutdown.cancelled() => break,
            }
            let (Some(auth), Some(policy)) = (auth.upgrade(), policy.upgrade()) else {
                break;
            };
            let (callers, sites) = {
                let auth = auth.load();
                (auth.caller_resources(), auth.caller_sites())
            };
            policy.refresh(&callers).await;
            policy.refresh_files(&sites).await;
        }
    });
}

/// The rich-notification certificates from `notifications.encryption`, if set.
fn rich_keys(config: &Config) -> anyhow::Result<Option<Arc<crate::webhooks::rich::RichKeyRing>>> {
    use crate::webhooks::rich::{RichKeyRing, RichKeys};
    let Some(cert) = &config.notifications.encryption else {
        return Ok(None);
    };
    let load = |c: &std::path::Path, k: &std::path::Path, id: &str| {
        RichKeys::from_files(c, k, id).map_err(|e| anyhow::anyhow!("notifications.encryption: {e}"))
    };
    let active = load(
        &cert.certificate_file,
        &cert.private_key_file,
        &cert.certificate_id,
    )?;
    let previous = cert
        .previous
        .iter()
        .map(|p| load(&p.certificate_file, &p.private_key_file, &p.certificate_id))
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(Some(Arc::new(RichKeyRing::new(active, previous))))
}

/// Checks rich notifications' validation tokens against Entra's keys for our tenant.
fn rich_token_checker(
    config: &Config,
    app: &crate::identity::AppCredentials,
    http: &reqwest::Client,
) -> Option<Arc<crate::webhooks::rich::ValidationTokenChecker>> {
    config.notifications.encryption.as_ref()?;
    let url = Url::parse(&format!(
        "{}/{}/discovery/v2.0/keys",
        app.authority.as_str().trim_end_matches('/'),
        app.tenant
    ))
    .ok()?;
    let keys = Arc::new(JwksKeys::new(
        "graph-change-tracking".to_owned(),
        url,
        vec![jsonwebtoken::Algorithm::RS256],
        Duration::from_secs(24 * 3600),
        http.clone(),
    ));
    Some(Arc::new(
        crate::webhooks::rich::ValidationTokenChecker::new(
            keys,
            app.client_id.clone(),
            vec![app.tenant.clone()],
        ),
    ))
}
