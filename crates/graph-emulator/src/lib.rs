//! A faithful, stateful stand-in for Microsoft Graph v1.0 (directory slice and Outlook mail)
//! and Entra ID v2.0 (token endpoint with client credentials, on-behalf-of, authorization code
//! + PKCE and refresh tokens; `/authorize`; discovery; JWKS), seeded with a fictional tenant.
//!
//! One listener serves both: Entra under `/{tenant}/oauth2/v2.0/...` (and discovery), Graph
//! under `/v1.0/...`, plus an unauthenticated admin surface under `/_emulator/...` for tests
//! ("this query cost exactly N Graph calls"), which also takes fault rules at runtime
//! (`/_emulator/faults`: throttling, outages, latency, hangs, resets, broken bodies).
//!
//! Mail (see README.md, "Mail"): every member user has an Exchange Online mailbox, created and
//! seeded on first access — messages and folders (`/users/{id}/messages`, `/mailFolders`,
//! `$filter`/`$orderby`/`$search`/`$select`/`$expand=attachments`, `$skip` paging, `Prefer:
//! outlook.body-content-type`), drafts, `PATCH`, `DELETE`, `move`/`copy`, `sendMail`, `send`,
//! replies and forwards with delivery to every tenant recipient's Inbox, attachments and
//! large-attachment upload sessions (the pre-authenticated upload URLs live under
//! `/api/v2.0/...`, outside `/v1.0`), and per-folder message delta. The demo user's Inbox holds
//! 64 messages (with Inbox/Orders, Inbox/Invoices and Projects), the shared mailbox
//! `SHARED_MAILBOX_UPN` order and invoice mail, everyone else 5–15 messages. Admin hooks:
//! `GET /_emulator/mail/sent` (the sent log, `Emulator::sent_mail`) and
//! `POST /_emulator/mail/expire-delta-tokens` (`Emulator::expire_mail_delta_tokens`).
//! Simplifications are listed in the README: hard deletes, file attachments only, no MIME
//! input, no immutable ids, `.Shared` scopes reach every mailbox, seeded mail has no twin in
//! the sender's Sent Items.
//!
//! Calendars and contacts (see README.md, "Calendar and contacts"): calendars, events with
//! recurrence (expanded in `calendarView`, with exceptions), `Prefer: outlook.timezone` with
//! Windows and IANA zone names, meetings delivered to tenant attendees with responses and
//! cancellation, `getSchedule` free/busy, `mailboxSettings`, contacts and contact folders;
//! seeded lazily per user around the week the emulator started.
//!
//! Files (see README.md, "Files"): every member has a OneDrive for Business, and
//! `SHAREPOINT_HOSTNAME` has a root site and four team sites with document libraries; drives,
//! sites and driveItems addressed by id or path, children paging, downloads through
//! pre-authenticated URLs (`/_layouts/15/download.aspx`, ranges), simple uploads and upload
//! sessions (`/up/{token}`, 320 KiB fragments, resumable), folders, rename/move, delete,
//! asynchronous copy (`/_api/v2.0/monitor/{job}`), delta, quotas, `Sites.Selected`. File bytes
//! stream to and from a temp dir the emulator owns. The demo user's drive holds `Reports` with
//! 100 generated reports by 25 colleagues. Admin hooks: `expire_drive_delta_tokens`,
//! `expire_upload_sessions`, `set_drive_quota`, `grant_site_permission`.
//!
//! Change notifications (see README.md, "Change notifications"): `/subscriptions` for messages,
//! events, contacts, drive roots, users and groups, with the validation handshake,
//! notifications POSTed in the background after every write (retried with backoff), expiry on
//! an advanceable clock, lifecycle notifications triggered from `/_emulator`, and rich
//! notifications (encrypted resource data and `validationTokens`). Admin hooks:
//! `subscriptions`, `trigger_lifecycle`, `notification_attempts`, `advance_clock`.
//!
//! This crate deliberately knows nothing about the gateway: the two must not share a
//! misreading of Graph.

mod admin;
mod calendar;
mod clock;
mod entra;
mod faults;
mod files;
mod graph;
mod mail;
mod net;
mod subscriptions;
mod tenant;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{any, delete, get, post};

pub use admin::{RecordedRequest, Stats};
pub use faults::{Fault, FaultRule, FaultRuleStatus, RetryAfter};
pub use files::{
    CONTRACTS_SITE_PATH, DEFAULT_DRIVE_QUOTA, DEMO_REPORT_AUTHORS, DEMO_REPORT_COUNT,
    DEMO_REPORTS_FOLDER, ENGINEERING_SITE_PATH, FINANCE_SITE_PATH, MARKETING_SITE_PATH,
    ONEDRIVE_HOSTNAME, ROOT_SITE_PATH, SHAREPOINT_HOSTNAME,
};
pub use mail::{SentAttachment, SentMail};
pub use subscriptions::{
    CHANGE_TRACKING_APP_ID, LIFECYCLE_EVENTS, NotificationAttempt, NotificationSettings,
};

/// Request bodies `/v1.0` accepts at the HTTP level. Graph's own limit for Outlook writes
/// (4 MiB) is enforced by the handlers with Graph's 413; this only stops abuse.
const GRAPH_BODY_LIMIT: usize = 16 * 1024 * 1024;
/// Request bodies the upload URLs (`/api/v2.0/...`) accept at the HTTP level; each chunk
/// may be at most 4 MiB, which the handler enforces with a 413 of its own.
const UPLOAD_BODY_LIMIT: usize = 16 * 1024 * 1024;

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
/// A fixed user (every seed, 10 users or more) a Conditional Access policy requires MFA of
/// for Microsoft Graph: on-behalf-of, refresh and `/authorize` requests for Graph scopes get
/// `interaction_required` (AADSTS50079) with a `claims` challenge naming `MFA_POLICY_ID`,
/// until the client sends that challenge back to `/authorize` (`claims=`), which "performs"
/// the MFA. Tokens for other APIs (e.g. `api://m365-gateway`) need no MFA.
pub const MFA_USER_UPN: &str = "marguerite.fenwick@kestrelridge.example";
/// A fixed user (every seed, 10 users or more) who has consented to no application:
/// `/authorize` answers `error=consent_required`, the token endpoint `invalid_grant`
/// AADSTS65001 with `suberror: consent_required`.
pub const CONSENT_USER_UPN: &str = "dashiell.okafor@kestrelridge.example";
/// A shared mailbox present in every tenant of 10 users or more: a `Member` user "Orders"
/// with sign-in disabled (`accountEnabled: false`) and no manager, as Exchange creates shared
/// mailboxes. It replaces one generated person, so the tenant keeps its configured size. Its
/// Inbox holds order and invoice mail from external senders (see the crate docs, "Mail").
pub const SHARED_MAILBOX_UPN: &str = "orders@kestrelridge.example";
/// The id of the Conditional Access policy in the `claims` challenge for `MFA_USER_UPN`:
/// `{"access_token":{"capolids":{"essential":true,"values":["<this>"]}}}`.
pub const MFA_POLICY_ID: &str = "5f2b7c1e-8d4a-4e9b-b3a6-0c7d1e2f3a4b";
/// The Application ID URI of the default app's API (`default_gateway_app`).
pub const DEFAULT_API_URI: &str = "api://m365-gateway";
/// The delegated scope the default app's API exposes: `api://m365-gateway/access_as_user`.
pub const DEFAULT_API_SCOPE: &str = "access_as_user";
/// The default app's registered redirect URI. Loopback redirect URIs match on any port.
pub const DEFAULT_REDIRECT_URI: &str = "http://127.0.0.1/auth/callback";

/// Every application permission the emulator checks somewhere.
const ALL_APP_PERMISSIONS: [&str; 14] = [
    "User.Read.All",
    "User.ReadWrite.All",
    "User.RevokeSessions.All",
    "Directory.ReadWrite.All",
    "Group.Read.All",
    "GroupMember.Read.All",
    "Directory.Read.All",
    "Mail.ReadWrite",
    "Mail.Send",
    "Calendars.ReadWrite",
    "Contacts.ReadWrite",
    "MailboxSettings.Read",
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
    /// Fault rules active from the start (ids 1, 2, ... in this order); more can be added
    /// at runtime (`Emulator::add_fault`, `POST /_emulator/faults`). Default: none.
    ///
    /// # Panics
    /// `Emulator::new` (and `spawn`) panic on a rule `FaultRule::validate` refuses.
    pub faults: Vec<FaultRule>,
    /// Outlook's concurrency limit: requests one app may have running against one mailbox
    /// (on mailbox routes: `/users/{id}/messages`, `mailFolders`, `events`, `calendar`,
    /// `calendarView`, `contacts`, ...); over it, 429 `ApplicationThrottled`. It also caps
    /// how many Outlook items of one `$batch` run in parallel. `None` disables both.
    /// Default `Some(4)`.
    pub mailbox_concurrency: Option<usize>,
    /// Test hook: apply `mailbox_concurrency` to every route addressing a user
    /// (`/users/{id}/...`, `/me/...`), not only mailbox routes. Default `false`.
    pub mailbox_concurrency_all_routes: bool,
    /// Change notifications: delivery timeout, retries, validation window.
    pub notifications: NotificationSettings,
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
            faults: Vec::new(),
            mailbox_concurrency: Some(4),
            mailbox_concurrency_all_routes: false,
            notifications: NotificationSettings::default(),
        }
    }
}

/// An app registration: its credentials (a client secret and/or certificates), the
/// application permissions (app roles) an administrator consented to (they end up in the
/// `roles` claim of app-only Graph tokens), its redirect URIs, and the API it exposes.
///
/// Every seeded user has consented to every app, except `CONSENT_USER_UPN`.
#[derive(Clone, Default)]
pub struct AppRegistration {
    pub client_id: String,
    /// Empty: the app has no secret (no secret, not even an empty one, authenticates it).
    pub client_secret: String,
    pub display_name: String,
    pub roles: Vec<String>,
    /// PEM X.509 certificates for `client_assertion` (private_key_jwt). The emulator keys
    /// them by the SHA-1 (`x5t`) and SHA-256 (`x5t#S256`) thumbprints of their DER and
    /// verifies assertions with their RSA public key. Unparsable ones are logged and ignored.
    pub certificates: Vec<String>,
    /// Where `/authorize` may send codes. An `http` loopback URI (`127.0.0.1`, `localhost`,
    /// `[::1]`) matches any port and any of those hosts, as Entra ignores loopback ports.
    pub redirect_uris: Vec<String>,
    /// A public client (SPA, native app) redeems codes and refresh tokens without a
    /// credential, with PKCE; its tokens carry `appidacr`/`azpacr` `"0"`.
    pub public_client: bool,
    /// The Application ID URI of the API this app exposes, e.g. `api://m365-gateway`.
    /// Tokens for the API are v2.0 (`accessTokenAcceptedVersion: 2`): `aud` is the client id.
    pub identifier_uri: Option<String>,
    /// Delegated scopes the API exposes, e.g. `access_as_user`.
    pub exposed_scopes: Vec<String>,
}

/// Secrets stay out of logs, even an emulator's.
impl std::fmt::Debug for AppRegistration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppRegistration")
            .field("client_id", &self.client_id)
            .field("client_secret", &"<redacted>")
            .field("display_name", &self.display_name)
            .field("roles", &self.roles)
            .field("certificates", &self.certificates.len())
            .field("redirect_uris", &self.redirect_uris)
            .field("public_client", &self.public_client)
            .field("identifier_uri", &self.identifier_uri)
            .field("exposed_scopes", &self.exposed_scopes)
            .finish()
    }
}

impl AppRegistration {
    /// The gateway's app: `DEFAULT_CLIENT_ID` / `DEFAULT_CLIENT_SECRET` with every
    /// application permission the emulator knows; it also exposes an API
    /// (`DEFAULT_API_URI`, scope `DEFAULT_API_SCOPE`) and may receive codes at
    /// `DEFAULT_REDIRECT_URI` (any loopback port).
    pub fn default_gateway_app() -> Self {
        AppRegistration {
            client_id: DEFAULT_CLIENT_ID.to_string(),
            client_secret: DEFAULT_CLIENT_SECRET.to_string(),
            display_name: "m365-gateway".to_string(),
            roles: ALL_APP_PERMISSIONS.iter().map(|r| r.to_string()).collect(),
            redirect_uris: vec![DEFAULT_REDIRECT_URI.to_string()],
            identifier_uri: Some(DEFAULT_API_URI.to_string()),
            exposed_scopes: vec![DEFAULT_API_SCOPE.to_string()],
            ..AppRegistration::default()
        }
    }

    /// A confidential client with a secret and application permissions.
    pub fn confidential(
        client_id: impl Into<String>,
        client_secret: impl Into<String>,
        display_name: impl Into<String>,
        roles: impl IntoIterator<Item = impl Into<String>>,
    ) -> Self {
        AppRegistration {
            client_id: client_id.into(),
            client_secret: client_secret.into(),
            display_name: display_name.into(),
            roles: roles.into_iter().map(Into::into).collect(),
            ..AppRegistration::default()
        }
    }

    /// A public client (SPA or native app): no credential, PKCE, these redirect URIs.
    pub fn public_client(
        client_id: impl Into<String>,
        display_name: impl Into<String>,
        redirect_uris: impl IntoIterator<Item = impl Into<String>>,
    ) -> Self {
        AppRegistration {
            client_id: client_id.into(),
            display_name: display_name.into(),
            redirect_uris: redirect_uris.into_iter().map(Into::into).collect(),
            public_client: true,
            ..AppRegistration::default()
        }
    }

    /// Adds a PEM certificate credential.
    pub fn with_certificate(mut self, pem: impl Into<String>) -> Self {
        self.certificates.push(pem.into());
        self
    }

    /// Adds a redirect URI.
    pub fn with_redirect_uri(mut self, uri: impl Into<String>) -> Self {
        self.redirect_uris.push(uri.into());
        self
    }

    /// Exposes an API at `identifier_uri` with these delegated scopes.
    pub fn with_api(
        mut self,
        identifier_uri: impl Into<String>,
        scopes: impl IntoIterator<Item = impl Into<String>>,
    ) -> Self {
        self.identifier_uri = Some(identifier_uri.into());
        self.exposed_scopes = scopes.into_iter().map(Into::into).collect();
        self
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
    /// Written only by session revocation (`signInSessionsValidFromDateTime`) today.
    pub(crate) tenant: RwLock<tenant::Tenant>,
    /// The signing keys: one active, older ones published until retired.
    pub(crate) keys: entra::KeyRing,
    /// App registrations: `config.apps` plus any registered at runtime.
    pub(crate) apps: entra::AppDirectory,
    /// Authorization codes and refresh tokens.
    pub(crate) sessions: entra::Sessions,
    pub(crate) recorder: admin::Recorder,
    /// Fault rules and their counters.
    pub(crate) faults: faults::FaultSet,
    /// Outlook requests in flight per (app, mailbox).
    pub(crate) mailboxes: graph::MailboxLimiter,
    /// Every mailbox (created on first access), upload sessions, the sent log.
    pub(crate) mail: Mutex<mail::MailStore>,
    /// Every user's calendars, events and contacts (created on first access). Lock order:
    /// tenant, then this, then `mail`.
    pub(crate) calendar: Mutex<calendar::CalendarStore>,
    /// Drives, sites, upload sessions, copy jobs; file bytes in its temp dir. Lock order:
    /// tenant, then this.
    pub(crate) files: Mutex<files::FileStore>,
    /// Change-notification subscriptions and the outbound attempt log. Lock order: this,
    /// then tenant, calendar, mail, files.
    pub(crate) subscriptions: subscriptions::Subscriptions,
}

/// The file store, locked (a poisoned lock is still usable: see `admin::lock`).
pub(crate) fn lock_files(state: &EmulatorState) -> std::sync::MutexGuard<'_, files::FileStore> {
    state
        .files
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Emulator {
    /// Generates the tenant and a fresh RSA-2048 signing key, and installs
    /// `config.faults`.
    ///
    /// # Panics
    /// On a fault rule in `config.faults` that `FaultRule::validate` refuses, or when no
    /// temporary directory can be created for drive files.
    pub fn new(config: EmulatorConfig) -> Emulator {
        let tenant = tenant::Tenant::generate(config.users, config.seed);
        let file_store = files::FileStore::new(config.seed, &tenant)
            .expect("graph-emulator: cannot create a temporary directory for drive files");
        let keys = entra::KeyRing::generate();
        let apps = entra::AppDirectory::new(&config.apps);
        let rules = config.faults.clone();
        let mail_store = Mutex::new(mail::MailStore::new(config.seed, clock::now_unix()));
        let calendar_store = Mutex::new(calendar::CalendarStore::new(
            config.seed,
            clock::now_unix(),
            &config.tenant_id,
        ));
        let emulator = Emulator {
            state: Arc::new(EmulatorState {
                faults: faults::FaultSet::new(config.seed),
                config,
                tenant: RwLock::new(tenant),
                keys,
                apps,
                sessions: entra::Sessions::default(),
                recorder: admin::Recorder::default(),
                mailboxes: graph::MailboxLimiter::default(),
                mail: mail_store,
                calendar: calendar_store,
                files: Mutex::new(file_store),
                subscriptions: subscriptions::Subscriptions::default(),
            }),
        };
        for rule in rules {
            emulator.add_fault(rule);
        }
        emulator
    }

    /// Every endpoint (Entra, Graph, admin), for embedding in another server.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/{tenant}/oauth2/v2.0/token", post(entra::token))
            .route("/{tenant}/oauth2/v2.0/authorize", get(entra::authorize))
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
            .route(
                "/v1.0",
                any(graph::http_entry).layer(DefaultBodyLimit::max(GRAPH_BODY_LIMIT)),
            )
            .route(
                "/v1.0/",
                any(graph::http_entry).layer(DefaultBodyLimit::max(GRAPH_BODY_LIMIT)),
            )
            .route(
                "/v1.0/{*rest}",
                any(graph::http_entry).layer(DefaultBodyLimit::max(GRAPH_BODY_LIMIT)),
            )
            // Outlook's pre-authenticated large-attachment upload URLs.
            .route(
                "/api/v2.0/{*rest}",
                any(graph::upload_entry).layer(DefaultBodyLimit::max(UPLOAD_BODY_LIMIT)),
            )
            .route("/_emulator/stats", get(admin::get_stats))
            .route("/_emulator/stats/reset", post(admin::reset_stats))
            .route("/_emulator/requests", get(admin::get_requests))
            .route("/_emulator/keys/rotate", post(admin::rotate_keys))
            .route("/_emulator/users/{user}/revoke", post(admin::revoke_user))
            .route(
                "/_emulator/faults",
                get(admin::list_faults)
                    .post(admin::add_faults)
                    .delete(admin::clear_faults),
            )
            .route("/_emulator/faults/{id}", delete(admin::remove_fault))
            // OneDrive's pre-authenticated URLs: upload sessions, downloads, copy monitors.
            .route("/up/{token}", any(graph::files_wire::upload_entry))
            .route(
                "/_layouts/15/download.aspx",
                get(graph::files_wire::download_entry),
            )
            .route(
                "/_api/v2.0/monitor/{job}",
                get(graph::files_wire::monitor_entry),
            )
            .route(
                "/_emulator/drives/expire-delta-tokens",
                post(graph::files_wire::expire_delta_tokens),
            )
            .route(
                "/_emulator/drives/{drive}/quota",
                post(graph::files_wire::set_quota),
            )
            .route(
                "/_emulator/uploads/expire",
                post(graph::files_wire::expire_uploads),
            )
            .route(
                "/_emulator/sites/{site}/permissions",
                post(graph::files_wire::grant_site),
            )
            .route("/_emulator/mail/sent", get(graph::sent_mail))
            .route(
                "/_emulator/mail/expire-delta-tokens",
                post(graph::expire_delta_tokens),
            )
            .route("/_emulator/subscriptions", get(admin::list_subscriptions))
            .route(
                "/_emulator/subscriptions/deliveries",
                get(admin::list_deliveries),
            )
            .route(
                "/_emulator/subscriptions/{id}/lifecycle",
                post(admin::trigger_lifecycle),
            )
            .route("/_emulator/clock/advance", post(admin::advance_clock))
            .fallback(graph::unknown_version)
            // After every write, whatever its route, subscribers hear about the changes.
            .layer(middleware::from_fn_with_state(
                self.clone(),
                graph::notify_changes,
            ))
            .layer(middleware::from_fn_with_state(
                self.clone(),
                entra::inject_faults,
            ))
            .layer(middleware::from_fn_with_state(self.clone(), inject_latency))
            .with_state(self.clone())
    }

    /// Serves `router()` on `listener` until the returned future is dropped.
    ///
    /// Served this way (or by `spawn`), a `Reset` fault drops the TCP connection with an
    /// RST; a router embedded in another server has to unwind the connection task instead
    /// (see `Fault::Reset`).
    pub async fn serve(self, listener: tokio::net::TcpListener) -> std::io::Result<()> {
        axum::serve(net::FaultListener::new(listener), self.make_service()).await
    }

    /// `router()` with the per-connection kill switch `Reset` faults use.
    fn make_service(
        &self,
    ) -> axum::extract::connect_info::IntoMakeServiceWithConnectInfo<Router, net::Connection> {
        self.router()
            .into_make_service_with_connect_info::<net::Connection>()
    }

    /// Binds `addr` (port 0 picks a free port) and serves in a background task.
    pub async fn spawn(
        config: EmulatorConfig,
        addr: SocketAddr,
    ) -> std::io::Result<RunningEmulator> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let emulator = Emulator::new(config);
        let service = emulator.make_service();
        let listener = net::FaultListener::new(listener);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let handle = tokio::spawn(async move {
            // Graceful shutdown also closes idle keep-alive connections, so a client that
            // keeps using its pooled connection sees the emulator go away too.
            let shutdown = async move {
                let _ = stopped.await;
            };
            if let Err(err) = axum::serve(listener, service)
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

    /// Signs a delegated (user) v1.0 Graph token for `user` (object id or UPN) with the given
    /// scopes (`scp`), as the authorization-code or on-behalf-of grants issue them, for the
    /// app `client_id`. Consent and MFA are not checked. Returns `None` when the app or the
    /// user is unknown. Meant for tests.
    pub fn issue_delegated_token(
        &self,
        client_id: &str,
        user: &str,
        scopes: &[&str],
    ) -> Option<String> {
        entra::issue_delegated_token(&self.state, client_id, user, scopes)
    }

    /// Signs a v2.0 access token for the API of app `audience_app` (its client id or
    /// Application ID URI), as the authorization-code flow issues it to `client_id` for user
    /// `upn` (UPN or object id): `aud` = the API's client id, `azp` = `client_id`, `scp` =
    /// `scopes` (names such as `access_as_user`; an `api://…/` prefix is dropped),
    /// `iss` = `https://login.microsoftonline.com/{tid}/v2.0`. Consent and MFA are not
    /// checked (so it can mint the assertion an on-behalf-of test needs for `MFA_USER_UPN`
    /// or `CONSENT_USER_UPN`). `None` when an app or the user is unknown. Meant for tests.
    pub fn issue_user_token(
        &self,
        client_id: &str,
        upn: &str,
        audience_app: &str,
        scopes: &[&str],
    ) -> Option<String> {
        entra::issue_user_token(&self.state, client_id, upn, audience_app, scopes)
    }

    /// Makes a new RSA signing key active (published in the JWKS under a new `kid`) and
    /// returns its `kid`. Earlier keys stay published, and tokens they signed stay valid,
    /// unless `retire_previous`: then they leave the JWKS and Graph (and the on-behalf-of
    /// grant) refuse their tokens.
    pub fn rotate_signing_key(&self, retire_previous: bool) -> String {
        self.state.keys.rotate(retire_previous)
    }

    /// Revokes every refresh token of a user (UPN or object id), as Graph's
    /// `revokeSignInSessions` does; their next refresh gets AADSTS50173. `false` when the
    /// user is unknown.
    pub fn revoke_user_sessions(&self, upn: &str) -> bool {
        entra::revoke_user_sessions(&self.state, upn)
    }

    /// Adds an app registration at runtime (or replaces the one with the same client id).
    pub fn register_app(&self, app: AppRegistration) {
        self.state.apps.register(app);
    }

    /// Adds a fault rule after the existing ones and returns its id (ids are never reused).
    ///
    /// # Panics
    /// When `FaultRule::validate` refuses the rule (a test setup mistake).
    pub fn add_fault(&self, rule: FaultRule) -> u64 {
        match self.try_add_fault(rule) {
            Ok(id) => id,
            Err(err) => panic!("invalid fault rule: {err}"),
        }
    }

    /// `add_fault` without the panic.
    pub fn try_add_fault(&self, rule: FaultRule) -> Result<u64, String> {
        rule.validate()?;
        let mailbox = rule
            .mailbox
            .as_deref()
            .map(|m| graph::canonical_mailbox(&self.state, m));
        Ok(self.state.faults.add(rule, mailbox))
    }

    /// The fault rules with their counters, in id order.
    pub fn faults(&self) -> Vec<FaultRuleStatus> {
        self.state.faults.list()
    }

    /// Removes one fault rule; `false` when there is none with that id.
    pub fn remove_fault(&self, id: u64) -> bool {
        self.state.faults.remove(id)
    }

    /// Removes every fault rule (the emulator answers normally again). Requests already
    /// delayed or hanging are not released.
    pub fn clear_faults(&self) {
        self.state.faults.clear();
    }

    /// Every message sent so far (`sendMail`, `send`, `reply`, `replyAll`, `forward`), oldest
    /// first: what `GET /_emulator/mail/sent` lists. `reset_stats` does not clear it.
    pub fn sent_mail(&self) -> Vec<SentMail> {
        graph::sent_messages(&self.state)
    }

    /// Invalidates every outstanding message delta token (and delta paging token): the next
    /// delta call with one gets 410 `syncStateNotFound`, as when Exchange drops a sync state.
    pub fn expire_mail_delta_tokens(&self) {
        graph::expire_tokens(&self.state);
    }

    // --- files -------------------------------------------------------------------------

    /// The id of a user's OneDrive (by UPN or object id), whether or not anyone has opened
    /// it yet; `None` for guests and unknown users.
    pub fn drive_id_of_user(&self, user: &str) -> Option<String> {
        let tenant = self
            .state
            .tenant
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let u = tenant.find_user(user)?;
        files::has_drive(&tenant, u)
            .then(|| files::user_drive_id(self.state.config.seed, &tenant.users[u].id))
    }

    /// The id (`{hostname},{collection},{web}`) of the site at a server-relative path
    /// (`ROOT_SITE_PATH`, `FINANCE_SITE_PATH`, …).
    pub fn site_id(&self, path: &str) -> Option<String> {
        let store = lock_files(&self.state);
        store.site_by_path(path).map(|s| store.sites[s].id())
    }

    /// The drive id of a site's document library by name (`"Documents"`, `"Invoices"`).
    pub fn site_drive_id(&self, path: &str, library: &str) -> Option<String> {
        let store = lock_files(&self.state);
        let s = store.site_by_path(path)?;
        store
            .site_library(s, library)
            .map(|d| store.drives[d].id.clone())
    }

    /// The id of the item at `path` (`"Reports/report-001.pdf"`; `""` or `"/"` is the root)
    /// in a drive, without a Graph call.
    pub fn drive_item_id(&self, drive_id: &str, path: &str) -> Option<String> {
        let tenant = self
            .state
            .tenant
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut store = lock_files(&self.state);
        let d = store.drive_by_id(&tenant, drive_id)?;
        let drive = &store.drives[d];
        let mut cur = drive.root.clone();
        for name in path.split('/').filter(|s| !s.is_empty()) {
            cur = drive.child_named(&cur, name)?.to_string();
        }
        Some(cur)
    }

    /// Sets a drive's quota (`quota.total`, bytes); uploads and copies beyond it get 507
    /// `quotaLimitReached`. `false` for an unknown drive.
    pub fn set_drive_quota(&self, drive_id: &str, total: u64) -> bool {
        let tenant = self
            .state
            .tenant
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut store = lock_files(&self.state);
        match store.drive_by_id(&tenant, drive_id) {
            Some(d) => {
                store.drives[d].quota_total = total;
                true
            }
            None => false,
        }
    }

    /// Invalidates every outstanding drive delta token: the next delta call with one gets
    /// 410 `resyncChangesApplyDifferences` with a `Location` to enumerate again.
    pub fn expire_drive_delta_tokens(&self) {
        lock_files(&self.state).delta_epoch += 1;
    }

    /// Ends every open upload session (their URLs answer 404 `itemNotFound`; partial files
    /// are removed).
    pub fn expire_upload_sessions(&self) {
        lock_files(&self.state).sessions.clear();
    }

    /// Grants an app `Sites.Selected` access to a site (by id, hostname or server-relative
    /// path), as an administrator does with `POST /sites/{id}/permissions`: `roles` holds
    /// `"read"` and/or `"write"`. `false` for an unknown site.
    pub fn grant_site_permission(&self, site: &str, app_id: &str, roles: &[&str]) -> bool {
        let mut store = lock_files(&self.state);
        let found = store.site_by_id(site).or_else(|| store.site_by_path(site));
        let Some(s) = found else {
            return false;
        };
        let write = roles.iter().any(|r| r.eq_ignore_ascii_case("write"));
        store.sites[s]
            .grants
            .push((app_id.to_ascii_lowercase(), write));
        true
    }

    /// The directory where drive files live while the emulator runs (removed when the last
    /// clone of the emulator is dropped).
    pub fn files_dir(&self) -> std::path::PathBuf {
        lock_files(&self.state).dir().to_path_buf()
    }

    // --- change notifications --------------------------------------------------------

    /// Every live subscription, as `GET /v1.0/subscriptions/{id}` renders it (expired ones
    /// are gone).
    pub fn subscriptions(&self) -> Vec<serde_json::Value> {
        let subs = &self.state.subscriptions;
        subs.purge_expired();
        subscriptions::lock(&subs.subs)
            .values()
            .map(subscriptions::Subscription::json)
            .collect()
    }

    /// Sends a lifecycle notification (`reauthorizationRequired`, `subscriptionRemoved`,
    /// `missed`) to a subscription's `lifecycleNotificationUrl`; `subscriptionRemoved` also
    /// deletes the subscription. `Err` says why nothing was sent.
    pub fn trigger_lifecycle(&self, id: &str, event: &str) -> Result<(), String> {
        subscriptions::trigger_lifecycle(self, id, event)
    }

    /// Every outbound POST to subscribers so far (handshakes, notifications, lifecycle
    /// notifications, retries), oldest first.
    pub fn notification_attempts(&self) -> Vec<NotificationAttempt> {
        self.state.subscriptions.attempts()
    }

    /// Moves the clock subscriptions expire by (and `expirationDateTime` is checked
    /// against) forward. Other features keep the wall clock.
    pub fn advance_clock(&self, by: Duration) {
        let seconds = i64::try_from(by.as_secs()).unwrap_or(i64::MAX / 2);
        self.state.subscriptions.advance(seconds);
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
