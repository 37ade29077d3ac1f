//! A faithful, stateful stand-in for Microsoft Graph v1.0 (directory slice) and the
//! Entra ID v2.0 token endpoint, seeded with a fictional tenant.
//!
//! One listener serves both: Entra under `/{tenant}/oauth2/v2.0/token` (and discovery), Graph
//! under `/v1.0/...`, plus an unauthenticated admin surface under `/_emulator/...` for tests
//! ("this query cost exactly N Graph calls").
//!
//! This crate deliberately knows nothing about the gateway: the two must not share a
//! misreading of Graph.

mod admin;
mod clock;
mod entra;
mod graph;
mod tenant;

use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{any, get, post};

pub use admin::{RecordedRequest, Stats};

/// The emulated tenant's id (used when `EmulatorConfig::tenant_id` is left at its default).
pub const DEFAULT_TENANT_ID: &str = "3c7e1f5a-9b2d-4e8f-a1c6-5d4b3a2f1e0d";
/// The client id of the app registration the gateway uses by default.
pub const DEFAULT_CLIENT_ID: &str = "8a4f2c6e-1d3b-4f5a-9e7c-2b6d8f0a4c1e";
/// That app's client secret. Only meaningful to this emulator.
pub const DEFAULT_CLIENT_SECRET: &str = "emu~Gw8Q.kestrel-ridge-not-a-real-secret_0001";
/// The tenant's (fictional, reserved `.example`) domain: UPNs and mail addresses end in it.
pub const TENANT_DOMAIN: &str = "kestrelridge.example";
/// A fixed user present for every seed and every tenant of 10 users or more: a mid-level
/// manager with a manager, direct reports, group memberships and a directory role.
pub const DEMO_USER_UPN: &str = "tamsin.greaves@kestrelridge.example";

/// Every application permission the emulator checks somewhere.
const ALL_APP_PERMISSIONS: [&str; 10] = [
    "User.Read.All",
    "Group.Read.All",
    "GroupMember.Read.All",
    "Directory.Read.All",
    "Mail.ReadWrite",
    "Mail.Send",
    "Calendars.ReadWrite",
    "Contacts.ReadWrite",
    "Files.ReadWrite.All",
    "Sites.ReadWrite.All",
];

#[derive(Clone, Debug)]
pub struct EmulatorConfig {
    /// Tenant size (number of users, guest included). Default 60.
    pub users: usize,
    /// Seed of the generated data; the same seed gives byte-identical data. Default 42.
    pub seed: u64,
    /// The tenant id. Default `DEFAULT_TENANT_ID`.
    pub tenant_id: String,
    /// App registrations that may request tokens.
    pub apps: Vec<AppRegistration>,
    /// Delay injected once per HTTP request received (a `$batch` envelope counts once).
    pub latency: Duration,
    /// Lifetime of issued access tokens. Default 3599 s, as Entra reports it.
    pub token_lifetime: Duration,
}

impl Default for EmulatorConfig {
    fn default() -> Self {
        EmulatorConfig {
            users: 60,
            seed: 42,
            tenant_id: DEFAULT_TENANT_ID.to_string(),
            apps: vec![AppRegistration::default_gateway_app()],
            latency: Duration::ZERO,
            token_lifetime: Duration::from_secs(3599),
        }
    }
}

/// An app registration with a client secret and the application permissions (app roles)
/// an administrator consented to; they end up in the token's `roles` claim.
#[derive(Clone)]
pub struct AppRegistration {
    pub client_id: String,
    pub client_secret: String,
    pub display_name: String,
    pub roles: Vec<String>,
}

/// Secrets stay out of logs, even an emulator's.
impl std::fmt::Debug for AppRegistration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppRegistration")
            .field("client_id", &self.client_id)
            .field("client_secret", &"<redacted>")
            .field("display_name", &self.display_name)
            .field("roles", &self.roles)
            .finish()
    }
}

impl AppRegistration {
    /// The gateway's app: `DEFAULT_CLIENT_ID` / `DEFAULT_CLIENT_SECRET` with every
    /// application permission the emulator knows.
    pub fn default_gateway_app() -> Self {
        AppRegistration {
            client_id: DEFAULT_CLIENT_ID.to_string(),
            client_secret: DEFAULT_CLIENT_SECRET.to_string(),
            display_name: "m365-gateway".to_string(),
            roles: ALL_APP_PERMISSIONS.iter().map(|r| r.to_string()).collect(),
        }
    }
}

/// The emulator: cheap to clone, all state behind one `Arc`.
#[derive(Clone)]
pub struct Emulator {
    state: Arc<EmulatorState>,
}

/// Shared state. Locks are `std::sync` ones and are never held across an `.await`.
pub(crate) struct EmulatorState {
    pub(crate) config: EmulatorConfig,
    /// Read-only today; a lock because later slices (mail, calendars, drives) write.
    pub(crate) tenant: RwLock<tenant::Tenant>,
    pub(crate) keys: entra::SigningKeys,
    pub(crate) recorder: admin::Recorder,
}

impl Emulator {
    /// Generates the tenant and a fresh RSA-2048 signing key.
    pub fn new(config: EmulatorConfig) -> Emulator {
        let tenant = tenant::Tenant::generate(config.users, config.seed);
        let keys = entra::SigningKeys::generate();
        Emulator {
            state: Arc::new(EmulatorState {
                config,
                tenant: RwLock::new(tenant),
                keys,
                recorder: admin::Recorder::default(),
            }),
        }
    }

    /// Every endpoint (Entra, Graph, admin), for embedding in another server.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/{tenant}/oauth2/v2.0/token", post(entra::token))
            .route(
                "/{tenant}/v2.0/.well-known/openid-configuration",
                get(entra::openid_configuration),
            )
            .route(
                "/{tenant}/.well-known/openid-configuration",
                get(entra::openid_configuration),
            )
            .route("/{tenant}/discovery/v2.0/keys", get(entra::jwks))
            .route("/{tenant}/discovery/keys", get(entra::jwks))
            .route("/v1.0", any(graph::http_entry))
            .route("/v1.0/", any(graph::http_entry))
            .route("/v1.0/{*rest}", any(graph::http_entry))
            .route("/_emulator/stats", get(admin::get_stats))
            .route("/_emulator/stats/reset", post(admin::reset_stats))
            .route("/_emulator/requests", get(admin::get_requests))
            .fallback(graph::unknown_version)
            .layer(middleware::from_fn_with_state(self.clone(), inject_latency))
            .with_state(self.clone())
    }

    /// Serves `router()` on `listener` until the returned future is dropped.
    pub async fn serve(self, listener: tokio::net::TcpListener) -> std::io::Result<()> {
        axum::serve(listener, self.router()).await
    }

    /// Binds `addr` (port 0 picks a free port) and serves in a background task.
    pub async fn spawn(
        config: EmulatorConfig,
        addr: SocketAddr,
    ) -> std::io::Result<RunningEmulator> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let emulator = Emulator::new(config);
        let router = emulator.router();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let handle = tokio::spawn(async move {
            // Graceful shutdown also closes idle keep-alive connections, so a client that
            // keeps using its pooled connection sees the emulator go away too.
            let shutdown = async move {
                let _ = stopped.await;
            };
            if let Err(err) = axum::serve(listener, router)
                .with_graceful_shutdown(shutdown)
                .await
            {
                tracing::error!(%err, "graph emulator stopped");
            }
        });
        Ok(RunningEmulator {
            addr,
            emulator,
            stop: Some(stop),
            handle,
        })
    }

    pub fn stats(&self) -> Stats {
        self.state.recorder.stats()
    }

    /// Zeroes the counters and clears the request log.
    pub fn reset_stats(&self) {
        self.state.recorder.reset();
    }

    /// The last 10,000 Graph requests (batch items included), oldest first.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.state.recorder.requests()
    }

    pub fn tenant_id(&self) -> &str {
        &self.state.config.tenant_id
    }

    /// Signs a delegated (user) Graph token for `user` (object id or UPN) with the given
    /// scopes, as the authorization-code or on-behalf-of grants will once they exist.
    /// Returns `None` when the app or the user is unknown. Meant for tests.
    pub fn issue_delegated_token(
        &self,
        client_id: &str,
        user: &str,
        scopes: &[&str],
    ) -> Option<String> {
        entra::issue_delegated_token(&self.state, client_id, user, scopes)
    }

    pub(crate) fn state(&self) -> &EmulatorState {
        &self.state
    }
}

/// Sleeps `config.latency` before every Entra and Graph request (not the admin surface,
/// so test harnesses reading stats are not slowed down).
async fn inject_latency(
    State(emulator): State<Emulator>,
    request: Request,
    next: Next,
) -> Response {
    let latency = emulator.state.config.latency;
    if !latency.is_zero() && !request.uri().path().starts_with("/_emulator/") {
        tokio::time::sleep(latency).await;
    }
    next.run(request).await
}

/// An emulator serving in a background task; dropping it stops the server.
pub struct RunningEmulator {
    pub addr: SocketAddr,
    pub emulator: Emulator,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    handle: tokio::task::JoinHandle<()>,
}

impl RunningEmulator {
    /// `http://127.0.0.1:PORT` (loopback even when bound to the unspecified address).
    pub fn base_url(&self) -> String {
        let ip = self.addr.ip();
        match ip {
            std::net::IpAddr::V4(v4) if v4.is_unspecified() => {
                format!("http://127.0.0.1:{}", self.addr.port())
            }
            std::net::IpAddr::V4(v4) => format!("http://{v4}:{}", self.addr.port()),
            std::net::IpAddr::V6(v6) if v6.is_unspecified() => {
                format!("http://[::1]:{}", self.addr.port())
            }
            std::net::IpAddr::V6(v6) => format!("http://[{v6}]:{}", self.addr.port()),
        }
    }

    /// `base_url() + "/v1.0"`.
    pub fn graph_url(&self) -> String {
        format!("{}/v1.0", self.base_url())
    }
}

impl Drop for RunningEmulator {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        // Stop accepting at once; open connections finish their current request and close.
        self.handle.abort();
    }
}
