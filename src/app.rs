//! Composition root: builds the state, the routers and the background jobs. Production
//! (`m365-gateway serve`) and every integration test go through the same [`App::build`].

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderName, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use graph_emulator::{Emulator, EmulatorConfig as EmulatorSettings, RunningEmulator};
use serde_json::json;
use tokio::net::TcpListener;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::compression::CompressionLayer;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;
use url::Url;

use crate::auth::{Authenticator, mint_dev_token};
use crate::config::{Config, DEMO_CALLER, Secret};
use crate::graph::{GraphClient, GraphClientSettings};
use crate::graphql::{self, GatewaySchema};
use crate::identity::{AppCredentials, TokenBroker};
use crate::rest;
use crate::service::Services;

/// Lifetime of the dev token printed at start and pre-filled in GraphiQL.
pub const DEV_TOKEN_TTL: Duration = Duration::from_secs(12 * 3600);

/// State shared by every handler.
#[derive(Clone)]
pub struct AppState {
    pub auth: Arc<Authenticator>,
    pub services: Services,
    pub schema: GatewaySchema,
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
}

impl App {
    /// Validates the configuration, starts the embedded emulator when needed, and binds
    /// the listener (port 0 works: see [`App::local_addr`]).
    pub async fn build(config: Config) -> anyhow::Result<App> {
        let config = config.with_embedded_defaults();
        config.validate()?;

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
                client_secret: Secret::new(graph_emulator::DEFAULT_CLIENT_SECRET),
            },
            None => AppCredentials {
                authority: config.graph.authority.clone(),
                tenant: config.graph.tenant_id.clone().unwrap_or_default(),
                client_id: config.graph.client_id.clone().unwrap_or_default(),
                client_secret: config
                    .graph
                    .client_secret
                    .clone()
                    .unwrap_or_else(|| Secret::new("")),
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

        let tokens = TokenBroker::new(http.clone(), credentials);
        let graph = GraphClient::new(
            http.clone(),
            tokens,
            GraphClientSettings {
                base_url: graph_base,
                cache_ttl: config.cache.ttl,
                cache_max_bytes: config.cache.max_bytes,
                batch_size: config.graph.batch_size,
                timeout: config.graph.timeout,
            },
        );
        let auth = Arc::new(Authenticator::new(&config, http));
        start_jwks_refresh(&auth).await;

        let state = AppState {
            auth,
            services: Services { graph },
            schema: graphql::build_schema(),
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
        let listener = TcpListener::bind(config.listen).await?;
        let local_addr = listener.local_addr()?;
        Ok(App {
            listener,
            router,
            local_addr,
            emulator,
            dev_token,
            config,
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

    /// Serves until `shutdown` completes, then lets in-flight requests finish.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let App {
            listener,
            router,
            emulator,
            ..
        } = self;
        let result = axum::serve(listener, router)
            .with_graceful_shutdown(shutdown)
            .await;
        // The embedded emulator lives exactly as long as the gateway.
        drop(emulator);
        result
    }
}

fn router(config: &Config, state: AppState, dev_token: Option<&str>) -> Router {
    let request_id = HeaderName::from_static("x-request-id");
    let mut router = Router::new()
        .route("/graphql", get(graphql::handler).post(graphql::handler))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .merge(rest::router());
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
    router
        .with_state(state)
        // Innermost first: the timeout must wrap the handler directly (see rust-stack.md §8.3).
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            config.http.request_timeout,
        ))
        // async-graphql-axum bypasses axum's DefaultBodyLimit, so the limit is a layer.
        .layer(RequestBodyLimitLayer::new(config.http.body_limit_bytes))
        .layer(CompressionLayer::new())
        .layer(CatchPanicLayer::new())
        .layer(TraceLayer::new_for_http())
        .layer(SetSensitiveRequestHeadersLayer::new([
            axum::http::header::AUTHORIZATION,
            axum::http::header::COOKIE,
        ]))
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid))
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

async fn healthz() -> impl IntoResponse {
    axum::Json(json!({ "status": "ok" }))
}

/// Ready when a Graph token is cached or can be acquired now, and every JWKS issuer has keys.
async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    let tokens = state.services.graph.tokens();
    let identity = tokens.app_identity();
    let token_ok = tokens.has_cached(&identity)
        || tokio::time::timeout(Duration::from_secs(3), tokens.token(&identity))
            .await
            .is_ok_and(|r| r.is_ok());
    let jwks: Vec<_> = state
        .auth
        .jwks()
        .iter()
        .map(|k| (k.issuer_name().to_owned(), k.is_loaded()))
        .collect();
    let jwks_ok = jwks.iter().all(|(_, loaded)| *loaded);
    let status = if token_ok && jwks_ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = json!({
        "status": if status == StatusCode::OK { "ready" } else { "not ready" },
        "checks": {
            "graph_token": token_ok,
            "jwks": jwks.into_iter().collect::<std::collections::BTreeMap<_, _>>(),
        }
    });
    (status, axum::Json(body))
}

/// Loads every JWKS once (not fatal: readiness reports it) and keeps them fresh.
async fn start_jwks_refresh(auth: &Arc<Authenticator>) {
    for keys in auth.jwks() {
        if let Err(e) = keys.refresh_now().await {
            tracing::warn!(issuer = keys.issuer_name(), error = %e, "initial JWKS fetch failed; will retry");
        }
        tokio::spawn(async move {
            let mut interval = tokio::time::interval(keys.refresh_interval());
            interval.tick().await;
            loop {
                interval.tick().await;
                if let Err(e) = keys.refresh_now().await {
                    tracing::warn!(issuer = keys.issuer_name(), error = %e, "JWKS refresh failed; keeping the last good keys");
                }
            }
        });
    }
}
