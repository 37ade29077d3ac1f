//! Typed configuration, read once at start.
//!
//! Layers, later wins: built-in defaults < TOML file (`--config`, `M365GW_CONFIG`) <
//! environment (`M365GW_` prefix, `__` for nesting, e.g. `M365GW_GRAPH__BASE_URL`) <
//! command-line flags. [`Config::validate`] explains every problem by key; secrets are
//! held in [`Secret`], whose `Debug`/`Display`/`Serialize` never show the value.
//!
//! With no Microsoft credentials configured the gateway runs on its *embedded default*:
//! the built-in Graph emulator, a development token issuer and a demo caller
//! ([`Config::with_embedded_defaults`]).

mod duration;
mod limits;
mod notifications;
pub mod reference;
mod secret;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};
use url::Url;

pub use limits::{BATCH_CEILING, GraphqlConfig, RateLimitConfig, RedisConfig};
pub use notifications::{
    NotificationCertificate, NotificationsConfig, OutboundWebhooksConfig, PreviousCertificate,
};
pub use secret::Secret;

/// How durations are written in the configuration (`30s`, `5m`, `12h`), for the reference.
pub(crate) struct DurationText;

impl schemars::JsonSchema for DurationText {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Duration".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({ "type": "string", "format": "duration" })
    }
}

/// Issuer name and key used by the embedded default. The key is public on purpose: the
/// dev issuer is only ever enabled while the gateway talks to the built-in emulator, which
/// holds nothing worth protecting. Production mode refuses it.
pub const DEV_ISSUER_NAME: &str = "dev";
pub const DEV_ISSUER: &str = "m365-gateway-dev";
pub const DEV_AUDIENCE: &str = "m365-gateway";
pub const DEV_SECRET: &str = "m365-gateway-dev-only-hs256-key-not-for-production";
pub const DEMO_CALLER: &str = "demo";
pub const DEMO_CLIENT_ID: &str = "demo-frontend";

/// Every operation a caller can be granted. Deny by default: a caller may do only what
/// its `operations` list names (or everything with an explicit `"*"`).
pub const OPERATIONS: &[&str] = &[
    "users.read",
    "groups.read",
    "mail.read",
    "mail.send",
    "mail.write",
    "calendar.read",
    "calendar.write",
    "contacts.read",
    "contacts.write",
    "files.read",
    "files.write",
    "subscriptions.manage",
];

#[derive(Clone, Debug, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address the gateway listens on.
    pub listen: SocketAddr,
    /// Production mode: refuses the dev issuer and the emulator, turns GraphiQL, field
    /// suggestions and introspection (but for `graphql.introspection_callers`) off.
    pub production: bool,
    /// The gateway's address as browsers and Entra ID reach it (connect flow redirect URI).
    /// Default: `http://{listen}`.
    pub public_url: Option<Url>,
    pub graph: GraphConfig,
    pub policy: PolicyConfig,
    /// Persistent state (connected users' grants). SQLite by default, PostgreSQL when the
    /// URL says so.
    pub store: crate::store::StoreConfig,
    pub emulator: EmulatorConfig,
    pub cache: CacheConfig,
    pub graphiql: GraphiqlConfig,
    /// OpenTelemetry traces (off unless `telemetry.otlp_endpoint` is set).
    pub telemetry: TelemetryConfig,
    pub http: HttpConfig,
    pub files: FilesConfig,
    pub log: LogConfig,
    pub graphql: GraphqlConfig,
    pub rate_limit: RateLimitConfig,
    pub redis: RedisConfig,
    /// Graph change notifications, subscriptions and delivery to internal consumers.
    pub notifications: NotificationsConfig,
    /// Token issuers whose JWTs the gateway accepts, by name.
    pub issuers: BTreeMap<String, IssuerConfig>,
    /// Known callers, by name. A token is accepted only when it maps to one of them.
    pub callers: BTreeMap<String, CallerConfig>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".parse().expect("valid literal"),
            production: false,
            public_url: None,
            graph: GraphConfig::default(),
            policy: PolicyConfig::default(),
            store: crate::store::StoreConfig::default(),
            emulator: EmulatorConfig::default(),
            cache: CacheConfig::default(),
            graphiql: GraphiqlConfig::default(),
            telemetry: TelemetryConfig::default(),
            http: HttpConfig::default(),
            files: FilesConfig::default(),
            log: LogConfig::default(),
            graphql: GraphqlConfig::default(),
            rate_limit: RateLimitConfig::default(),
            redis: RedisConfig::default(),
            notifications: NotificationsConfig::default(),
            issuers: BTreeMap::new(),
            callers: BTreeMap::new(),
        }
    }
}

/// Where Microsoft Graph and Entra ID are, and the gateway's own app registration.
#[derive(Clone, Debug, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct GraphConfig {
    /// Graph root including the API version.
    pub base_url: Url,
    /// Entra ID authority host (token endpoint is `{authority}/{tenant_id}/oauth2/v2.0/token`).
    pub authority: Url,
    /// Directory (tenant) id or verified domain of the company's tenant.
    pub tenant_id: Option<String>,
    /// The gateway's application (client) id in Entra ID.
    pub client_id: Option<String>,
    /// The gateway's client secret (or use `certificate`).
    pub client_secret: Option<Secret>,
    /// Certificate credential: a private-key JWT assertion instead of a secret.
    pub certificate: Option<CertificateConfig>,
    /// Timeout of one Graph HTTP attempt.
    #[serde(with = "duration")]
    #[schemars(with = "crate::config::DurationText")]
    pub timeout: Duration,
    /// Items per `$batch` request (Graph allows at most 20).
    pub batch_size: usize,
    /// How throttling and failures are retried.
    pub retry: RetryConfig,
    /// Hosts (exact, or `*.suffix`) that pre-authenticated upload URLs handed out by Graph
    /// may point to, besides the Graph host itself. Only https; the Graph token is never
    /// sent to them.
    pub transfer_hosts: Vec<String>,
    /// Allow plain http for `base_url` and `authority` on hosts other than loopback: an
    /// emulator in another container. Refused in production.
    pub allow_http: bool,
}

/// Files (OneDrive and SharePoint document libraries).
#[derive(Clone, Debug, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct FilesConfig {
    /// Size of one upload-session chunk: a multiple of 320 KiB (327,680 bytes), at most
    /// 60 MiB. Files up to 4 MB go in one simple upload instead.
    pub chunk_bytes: usize,
    /// Largest file accepted by `PUT /api/v1/drives/{drive}/root:/{path}:/content`.
    pub max_upload_bytes: u64,
    /// Longest time one upload or download through the gateway may take (instead of
    /// `http.request_timeout`).
    #[serde(with = "duration")]
    #[schemars(with = "crate::config::DurationText")]
    pub transfer_timeout: Duration,
    /// Lifetime of the signed download links on `DriveItem.downloadUrl`.
    #[serde(with = "duration")]
    #[schemars(with = "crate::config::DurationText")]
    pub link_ttl: Duration,
    /// Key sealing those links: base64 of 32 bytes. Unset: a random key per process, so a
    /// link works only on the replica that issued it; set the same key on every replica.
    pub link_key: Option<Secret>,
}

/// 320 KiB: Graph's upload-session fragments must be multiples of it.
pub const UPLOAD_FRAGMENT_UNIT: usize = 327_680;

impl Default for FilesConfig {
    fn default() -> Self {
        Self {
            chunk_bytes: 32 * UPLOAD_FRAGMENT_UNIT, // 10 MiB
            max_upload_bytes: 250 * 1024 * 1024 * 1024,
            transfer_timeout: Duration::from_secs(3600),
            link_ttl: Duration::from_secs(300),
            link_key: None,
        }
    }
}

/// Retries, retry budget and circuit breaker of the Graph client.
#[derive(Clone, Debug, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct RetryConfig {
    /// Retries after the first attempt (idempotent calls only).
    pub max_retries: u32,
    /// Longest `Retry-After` waited for; a longer one fails fast with `UPSTREAM_THROTTLED`.
    #[serde(with = "duration")]
    #[schemars(with = "crate::config::DurationText")]
    pub max_retry_after: Duration,
    /// First backoff when Graph sends no `Retry-After` (doubles, full jitter).
    #[serde(with = "duration")]
    #[schemars(with = "crate::config::DurationText")]
    pub base_backoff: Duration,
    /// Retries may add at most this share of the requests of the last 10 s…
    pub budget_ratio: f64,
    /// …plus this many.
    pub budget_floor: u32,
    /// Consecutive failures (5xx, timeouts, connection errors) that open the circuit breaker.
    pub breaker_failures: u32,
    /// How long the breaker stays open before one probe may go.
    #[serde(with = "duration")]
    #[schemars(with = "crate::config::DurationText")]
    pub breaker_open_for: Duration,
    /// Concurrent calls per mailbox on Outlook routes (Outlook allows 4 per app and mailbox).
    pub per_mailbox_concurrency: usize,
    /// Concurrent Graph calls of the whole gateway.
    pub max_concurrency: usize,
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self {
            max_retries: 3,
            max_retry_after: Duration::from_secs(180),
            base_backoff: Duration::from_millis(500),
            budget_ratio: 0.2,
            budget_floor: 10,
            breaker_failures: 10,
            breaker_open_for: Duration::from_secs(5),
            per_mailbox_concurrency: 4,
            max_concurrency: 128,
        }
    }
}

impl Default for GraphConfig {
    fn default() -> Self {
        Self {
            base_url: Url::parse("https://graph.microsoft.com/v1.0").expect("valid literal"),
            authority: Url::parse("https://login.microsoftonline.com").expect("valid literal"),
            tenant_id: None,
            client_id: None,
            client_secret: None,
            certificate: None,
            timeout: Duration::from_secs(30),
            batch_size: 20,
            retry: RetryConfig::default(),
            transfer_hosts: vec![
                "outlook.office.com".to_owned(),
                "outlook.office365.com".to_owned(),
                "*.sharepoint.com".to_owned(),
                "*.1drv.com".to_owned(),
                "api.onedrive.com".to_owned(),
            ],
            allow_http: false,
        }
    }
}

impl GraphConfig {
    /// True when Microsoft credentials are configured; otherwise the embedded emulator is used.
    pub fn has_credentials(&self) -> bool {
        self.client_id.is_some()
            || self.client_secret.is_some()
            || self.tenant_id.is_some()
            || self.certificate.is_some()
    }
}

/// A certificate registered on the gateway's app registration (Entra ID "Certificates &
/// secrets"). The private key signs the client assertion; the certificate gives its thumbprint.
#[derive(Clone, Debug, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CertificateConfig {
    /// PEM file with the RSA private key (PKCS#8 or PKCS#1).
    pub private_key_file: std::path::PathBuf,
    /// PEM file with the X.509 certificate uploaded to Entra ID.
    pub certificate_file: std::path::PathBuf,
    /// `PS256` (what Entra documents) or `RS256`.
    #[serde(default = "default_assertion_algorithm")]
    pub algorithm: String,
    /// Thumbprint header: `sha256` (`x5t#S256`) or `sha1` (`x5t`).
    #[serde(default = "default_thumbprint")]
    pub thumbprint: String,
}

fn default_assertion_algorithm() -> String {
    "PS256".to_owned()
}

fn default_thumbprint() -> String {
    "sha256".to_owned()
}

/// Policy resolution settings.
#[derive(Clone, Debug, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct PolicyConfig {
    /// How often callers' resource lists (users, `group:` memberships) are re-resolved
    /// through the directory.
    #[serde(with = "duration")]
    #[schemars(with = "crate::config::DurationText")]
    pub refresh: Duration,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        Self {
            refresh: Duration::from_secs(300),
        }
    }
}

/// The built-in emulator used when no Microsoft credentials are configured.
#[derive(Clone, Debug, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct EmulatorConfig {
    /// Where the embedded emulator listens (default: an ephemeral loopback port).
    pub listen: SocketAddr,
    /// Size of the generated tenant.
    pub users: usize,
    /// Seed of the generated tenant (same seed, same data).
    pub seed: u64,
    /// Latency the emulator adds to every Graph request (for demos and benchmarks).
    #[serde(with = "duration")]
    #[schemars(with = "crate::config::DurationText")]
    pub latency: Duration,
}

impl Default for EmulatorConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:0".parse().expect("valid literal"),
            users: 60,
            seed: 42,
            latency: Duration::ZERO,
        }
    }
}

/// Response cache (moka, in memory).
#[derive(Clone, Debug, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct CacheConfig {
    /// How long a successful Graph GET is served from the cache.
    #[serde(with = "duration")]
    #[schemars(with = "crate::config::DurationText")]
    pub ttl: Duration,
    /// Upper bound of the cache, in bytes of response bodies.
    pub max_bytes: u64,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            ttl: Duration::from_secs(60),
            max_bytes: 64 * 1024 * 1024,
        }
    }
}

#[derive(Clone, Debug, Default, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct GraphiqlConfig {
    /// Serve GraphiQL at `/graphiql`. Default: on, except in production mode.
    pub enabled: Option<bool>,
}

#[derive(Clone, Debug, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// Largest request body accepted (JSON, GraphQL documents).
    pub body_limit_bytes: usize,
    /// Largest `multipart/form-data` body accepted (file uploads: GraphQL multipart
    /// requests, REST send-mail with files). Files are spooled to disk, not held in memory.
    pub upload_limit_bytes: usize,
    /// Deadline of one inbound request.
    #[serde(with = "duration")]
    #[schemars(with = "crate::config::DurationText")]
    pub request_timeout: Duration,
    /// Largest bearer token accepted, in bytes (bigger ones are refused before parsing).
    pub max_token_bytes: usize,
    /// Browser origins (`https://intranet.example.com`, exact: scheme, host and port) whose
    /// pages may call the gateway. Empty: no CORS headers, browsers refuse cross-origin calls.
    pub cors_allowed_origins: Vec<String>,
    /// Let those pages send cookies and HTTP authentication (`Access-Control-Allow-Credentials`).
    /// Not needed for bearer tokens in `Authorization`.
    pub cors_allow_credentials: bool,
    /// On SIGTERM/SIGINT, how long requests already in flight may take to finish; the
    /// process exits when they have, or when this has passed. Keep it below the
    /// orchestrator's own kill timeout (Kubernetes: `terminationGracePeriodSeconds`, 30 s).
    #[serde(with = "duration")]
    #[schemars(with = "crate::config::DurationText")]
    pub shutdown_grace: Duration,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            body_limit_bytes: 256 * 1024,
            cors_allowed_origins: Vec::new(),
            cors_allow_credentials: false,
            upload_limit_bytes: 160 * 1024 * 1024,
            request_timeout: Duration::from_secs(30),
            max_token_bytes: 8 * 1024,
            shutdown_grace: Duration::from_secs(25),
        }
    }
}

/// OpenTelemetry traces, exported over OTLP/HTTP (protobuf) to a collector. Spans carry
/// route templates, methods, statuses and GraphQL operation names, never bodies, tokens,
/// query strings or user ids.
#[derive(Clone, Debug, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct TelemetryConfig {
    /// Base URL of an OTLP/HTTP collector, e.g. `http://otel-collector:4318`; spans are
    /// POSTed to `{otlp_endpoint}/v1/traces`. Unset (the default): no traces are recorded.
    pub otlp_endpoint: Option<Url>,
    /// `service.name` of the exported spans.
    pub service_name: String,
    /// Share of traces started here that are recorded, 0.0–1.0. A request arriving with a
    /// W3C `traceparent` follows the caller's sampling decision instead.
    pub sample_ratio: f64,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        Self {
            otlp_endpoint: None,
            service_name: "m365-gateway".to_owned(),
            sample_ratio: 1.0,
        }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// `pretty` for people, `json` for log pipelines.
    pub format: LogFormat,
    /// tracing filter directive, e.g. `info,m365_gateway=debug` (`RUST_LOG` wins when set).
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: LogFormat::Pretty,
            level: "info".to_owned(),
        }
    }
}

#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Pretty,
    Json,
}

/// A trusted token issuer. (No `deny_unknown_fields` here: serde cannot combine it with
/// `flatten`; the flattened [`IssuerKey`] refuses unknown keys instead.)
#[derive(Clone, Debug, Deserialize, Serialize, schemars::JsonSchema)]
pub struct IssuerConfig {
    /// Expected `iss` claim.
    pub issuer: String,
    /// Accepted `aud` values (at least one).
    pub audiences: Vec<String>,
    /// How signatures are checked.
    #[serde(flatten)]
    pub key: IssuerKey,
    /// Claim naming the calling application (Entra v2: `azp`, v1: `appid`).
    #[serde(default = "default_client_claim")]
    pub client_claim: String,
    /// Clock skew tolerated on `exp`/`nbf`.
    #[serde(default = "default_leeway", with = "duration")]
    #[schemars(with = "crate::config::DurationText")]
    pub leeway: Duration,
}

fn default_client_claim() -> String {
    "azp".to_owned()
}

fn default_leeway() -> Duration {
    Duration::from_secs(60)
}

/// Key material of an issuer. The algorithm allow-list lives here, never in the token.
#[derive(Clone, Debug, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum IssuerKey {
    /// HMAC-SHA256 with a shared secret of at least 32 bytes.
    Hs256 {
        /// The shared HMAC secret, at least 32 bytes.
        secret: Secret,
    },
    /// RS256 / ES256 keys published at a JWKS URL (fetched at start, refreshed in the background).
    Jwks {
        /// Where the issuer publishes its signing keys (https).
        jwks_url: Url,
        /// Signature algorithms accepted (`RS256`, `ES256`); never taken from the token.
        #[serde(default = "default_jwks_algorithms")]
        algorithms: Vec<String>,
        /// How often the keys are fetched again (an unknown `kid` also triggers a fetch).
        #[serde(default = "default_jwks_refresh", with = "duration")]
        #[schemars(with = "crate::config::DurationText")]
        refresh: Duration,
    },
}

fn default_jwks_algorithms() -> Vec<String> {
    vec!["RS256".to_owned()]
}

fn default_jwks_refresh() -> Duration {
    Duration::from_secs(3600)
}

/// How a caller's requests reach Graph.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum CallerMode {
    /// The gateway's own app-only token; the gateway's policy is the only fence.
    App,
    /// On-behalf-of: the caller's token is an Entra ID user token for the gateway's API,
    /// exchanged for a delegated Graph token; Graph enforces the user's own rights too.
    Obo,
    /// A user connected their mailbox once (authorization code + PKCE); the caller acts as
    /// that user with delegated permissions, through the stored (encrypted) refresh token.
    Connected,
}

#[derive(Clone, Debug, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CallerConfig {
    /// Name of the issuer (a key of `issuers`) whose tokens identify this caller.
    pub issuer: String,
    /// Value of the issuer's client claim that identifies this caller.
    pub client_id: String,
    pub mode: CallerMode,
    /// Claim carrying the end user's UPN or object id, for callers acting for a person
    /// (`me` resolves to that user). Unset: the caller is a pure service and has no `me`.
    #[serde(default)]
    pub user_claim: Option<String>,
    /// Operations granted (see [`OPERATIONS`]); empty means nothing is allowed.
    #[serde(default)]
    pub operations: Vec<String>,
    /// Users (object id, user principal name or mail address) and `group:<id>` (transitive
    /// members) whose data the caller may address; `"*"` for everyone. Empty: nobody.
    #[serde(default)]
    pub resources: Vec<String>,
    /// Mailboxes the caller may send mail as (the mailbox it sends from, and any `from` it
    /// sends on behalf of), in the syntax of `resources`; `"*"` for any mailbox it may
    /// address. Empty: it may send as nobody, even with `mail.send` (deny by default).
    #[serde(default)]
    pub send_as: Vec<String>,
    /// SharePoint sites whose document libraries the caller may address: site ids
    /// (`host,site-collection-id,web-id`) or `host:/server-relative-path`
    /// (`contoso.sharepoint.com:/sites/finance`); `"*"` for every site. Empty: none.
    /// Users' OneDrives follow `resources`.
    #[serde(default)]
    pub sites: Vec<String>,
    /// Delegated Graph scopes requested for `obo`/`connected` callers. Default: the scopes
    /// the granted operations need (see [`delegated_scopes`]).
    #[serde(default)]
    pub scopes: Option<Vec<String>>,
}

impl CallerConfig {
    /// The delegated Graph scopes this caller's tokens are requested with.
    pub fn graph_scopes(&self) -> Vec<String> {
        match &self.scopes {
            Some(scopes) => scopes.clone(),
            None => delegated_scopes(&self.operations),
        }
    }
}

/// Least delegated Graph permissions that cover the operations.
pub fn delegated_scopes(operations: &[String]) -> Vec<String> {
    let all = operations.iter().any(|o| o == "*");
    let has = |op: &str| all || operations.iter().any(|o| o == op);
    let mut scopes = vec!["User.Read".to_owned()];
    for (op, scope) in [
        ("users.read", "User.Read.All"),
        ("groups.read", "GroupMember.Read.All"),
        ("mail.read", "Mail.Read"),
        ("mail.write", "Mail.ReadWrite"),
        ("mail.send", "Mail.Send"),
        ("calendar.read", "Calendars.Read"),
        ("calendar.write", "Calendars.ReadWrite"),
        ("contacts.read", "Contacts.Read"),
        ("contacts.write", "Contacts.ReadWrite"),
        ("files.read", "Files.Read.All"),
        ("files.write", "Files.ReadWrite.All"),
    ] {
        if has(op) && !scopes.iter().any(|s| s == scope) {
            scopes.push(scope.to_owned());
        }
    }
    scopes
}

/// A problem found while loading or validating the configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read the configuration: {0}")]
    Load(String),
    #[error("the configuration is invalid:\n{}", .0.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<String>),
}

impl Config {
    /// Reads defaults < file < environment. `file` is usually `--config` / `M365GW_CONFIG`.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(path) = file {
            if !path.exists() {
                return Err(ConfigError::Load(format!(
                    "config file {} does not exist",
                    path.display()
                )));
            }
            figment = figment.merge(Toml::file_exact(path));
        }
        // `M365GW_CONFIG` names the file itself and is not a key of the configuration.
        figment = figment.merge(Env::prefixed("M365GW_").ignore(&["config"]).split("__"));
        figment
            .extract()
            .map_err(|e| ConfigError::Load(e.to_string()))
    }

    /// Parses a TOML string on top of the defaults (used by tests and `check-config`).
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        Figment::from(Serialized::defaults(Config::default()))
            .merge(Toml::string(text))
            .extract()
            .map_err(|e| ConfigError::Load(e.to_string()))
    }

    /// True when the gateway should start and use the built-in emulator.
    pub fn uses_emulator(&self) -> bool {
        !self.graph.has_credentials()
    }

    /// GraphiQL is on unless switched off, and off by default in production.
    pub fn graphiql_enabled(&self) -> bool {
        self.graphiql.enabled.unwrap_or(!self.production)
    }

    /// Fills in the embedded default: with no issuers configured while on the emulator,
    /// adds the dev HS256 issuer and a demo caller allowed to read the directory.
    pub fn with_embedded_defaults(mut self) -> Self {
        if self.uses_emulator() && !self.production && self.issuers.is_empty() {
            self.issuers.insert(
                DEV_ISSUER_NAME.to_owned(),
                IssuerConfig {
                    issuer: DEV_ISSUER.to_owned(),
                    audiences: vec![DEV_AUDIENCE.to_owned()],
                    key: IssuerKey::Hs256 {
                        secret: Secret::new(DEV_SECRET),
                    },
                    client_claim: default_client_claim(),
                    leeway: default_leeway(),
                },
            );
            self.callers
                .entry(DEMO_CALLER.to_owned())
                .or_insert_with(|| CallerConfig {
                    issuer: DEV_ISSUER_NAME.to_owned(),
                    client_id: DEMO_CLIENT_ID.to_owned(),
                    mode: CallerMode::App,
                    user_claim: Some("upn".to_owned()),
                    operations: vec!["*".to_owned()],
                    resources: vec!["*".to_owned()],
                    send_as: vec!["*".to_owned()],
                    sites: vec!["*".to_owned()],
                    scopes: None,
                });
        }
        self
    }

    /// Checks everything that can be checked without the network; every problem names
    /// its key and says what is wrong. Secrets are never echoed.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut problems = Vec::new();
        let g = &self.graph;

        if g.has_credentials() {
            if g.tenant_id.is_none() {
                problems.push("graph.tenant_id: required when Microsoft credentials are configured (the directory id or verified domain)".to_owned());
            }
            if g.client_id.is_none() {
                problems.push(
                    "graph.client_id: required when Microsoft credentials are configured"
                        .to_owned(),
                );
            }
            match (&g.client_secret, &g.certificate) {
                (None, None) => problems.push(
                    "graph.client_secret: give a client secret or a graph.certificate when Microsoft credentials are configured"
                        .to_owned(),
                ),
                (Some(_), Some(_)) => problems.push(
                    "graph.certificate: give either graph.client_secret or graph.certificate, not both".to_owned(),
                ),
                _ => {}
            }
            if let Some(cert) = &g.certificate {
                if !matches!(cert.algorithm.as_str(), "PS256" | "RS256") {
                    problems.push(format!(
                        "graph.certificate.algorithm: '{}' is not supported; use PS256 or RS256",
                        cert.algorithm
                    ));
                }
                if !matches!(cert.thumbprint.as_str(), "sha256" | "sha1") {
                    problems.push(format!(
                        "graph.certificate.thumbprint: '{}' is not supported; use sha256 or sha1",
                        cert.thumbprint
                    ));
                }
                for (key, path) in [
                    ("private_key_file", &cert.private_key_file),
                    ("certificate_file", &cert.certificate_file),
                ] {
                    if !path.is_file() {
                        problems.push(format!(
                            "graph.certificate.{key}: {} is not a readable file",
                            path.display()
                        ));
                    }
                }
            }
            if let Some(t) = &g.tenant_id
                && matches!(t.as_str(), "common" | "consumers" | "organizations")
            {
                problems.push(format!("graph.tenant_id: '{t}' cannot be used for app-only tokens; give the tenant's id or domain"));
            }
        } else if self.production {
            problems.push("graph.client_id: production = true needs Microsoft credentials (graph.tenant_id, graph.client_id, graph.client_secret); the built-in emulator is for development".to_owned());
        }
        if g.allow_http && self.production {
            problems.push(
                "graph.allow_http: plain http to Graph and Entra ID is refused in production"
                    .to_owned(),
            );
        }
        if !g.allow_http {
            check_upstream_url("graph.base_url", &g.base_url, &mut problems);
            check_upstream_url("graph.authority", &g.authority, &mut problems);
        }
        if !(1..=20).contains(&g.batch_size) {
            problems.push(format!(
                "graph.batch_size: must be between 1 and 20 (Graph's $batch limit), got {}",
                g.batch_size
            ));
        }
        if g.retry.max_retries > 10 {
            problems.push(format!(
                "graph.retry.max_retries: at most 10, got {}",
                g.retry.max_retries
            ));
        }
        if !(0.0..=1.0).contains(&g.retry.budget_ratio) {
            problems.push(format!(
                "graph.retry.budget_ratio: must be between 0 and 1, got {}",
                g.retry.budget_ratio
            ));
        }
        if g.retry.breaker_failures == 0 {
            problems.push("graph.retry.breaker_failures: must be at least 1".to_owned());
        }
        if g.timeout.is_zero() {
            problems.push("graph.timeout: must be greater than zero".to_owned());
        }
        if self.emulator.users == 0 || self.emulator.users > 100_000 {
            problems.push(format!(
                "emulator.users: must be between 1 and 100000, got {}",
                self.emulator.users
            ));
        }
        self.store.validate(self.production, &mut problems);
        if self.cache.max_bytes < 1024 * 1024 {
            problems.push("cache.max_bytes: must be at least 1048576 (1 MiB)".to_owned());
        }
        for origin in &self.http.cors_allowed_origins {
            if let Err(reason) = check_origin(origin) {
                problems.push(format!("http.cors_allowed_origins: '{origin}' {reason}"));
            }
        }
        if self.http.max_token_bytes < 1024 {
            problems.push("http.max_token_bytes: must be at least 1024".to_owned());
        }
        if self.http.request_timeout.is_zero() {
            problems.push("http.request_timeout: must be greater than zero".to_owned());
        }
        let callers: Vec<&String> = self.callers.keys().collect();
        self.graphql
            .validate(&self.rate_limit, &callers, &mut problems);
        self.redis.validate(&mut problems);
        self.notifications.validate(self.production, &mut problems);
        self.validate_telemetry(&mut problems);

        for (name, issuer) in &self.issuers {
            let key = format!("issuers.{name}");
            if issuer.issuer.trim().is_empty() {
                problems.push(format!("{key}.issuer: must not be empty"));
            }
            if issuer.audiences.is_empty() || issuer.audiences.iter().any(|a| a.trim().is_empty()) {
                problems.push(format!(
                    "{key}.audiences: give at least one non-empty audience"
                ));
            }
            match &issuer.key {
                IssuerKey::Hs256 { secret } => {
                    if secret.expose().len() < 32 {
                        problems.push(format!(
                            "{key}.secret: an HS256 secret must be at least 32 bytes (got {})",
                            secret.expose().len()
                        ));
                    }
                    if self.production && secret.expose() == DEV_SECRET {
                        problems.push(format!("{key}.secret: the public development secret cannot be used with production = true"));
                    }
                }
                IssuerKey::Jwks {
                    jwks_url,
                    algorithms,
                    refresh,
                } => {
                    check_upstream_url(&format!("{key}.jwks_url"), jwks_url, &mut problems);
                    if algorithms.is_empty() {
                        problems.push(format!(
                            "{key}.algorithms: give at least one of RS256, ES256"
                        ));
                    }
                    for alg in algorithms {
                        if !matches!(alg.as_str(), "RS256" | "ES256") {
                            problems.push(format!(
                                "{key}.algorithms: '{alg}' is not allowed; use RS256 or ES256"
                            ));
                        }
                    }
                    if *refresh < Duration::from_secs(60) {
                        problems.push(format!("{key}.refresh: must be at least 60s"));
                    }
                }
            }
        }

        for (name, caller) in &self.callers {
            let key = format!("callers.{name}");
            if !self.issuers.contains_key(&caller.issuer) {
                problems.push(format!(
                    "{key}.issuer: no issuer named '{}' (known: {})",
                    caller.issuer,
                    known(self.issuers.keys())
                ));
            }
            if caller.client_id.trim().is_empty() {
                problems.push(format!("{key}.client_id: must not be empty"));
            }
            if caller.mode != CallerMode::App && self.uses_emulator() && self.production {
                problems.push(format!(
                    "{key}.mode: delegated modes need Microsoft credentials"
                ));
            }
            if caller.mode == CallerMode::Obo
                && let Some(issuer) = self.issuers.get(&caller.issuer)
                && !matches!(issuer.key, IssuerKey::Jwks { .. })
            {
                problems.push(format!("{key}.mode: 'obo' needs an Entra ID issuer verified by JWKS (the caller's token is exchanged with Entra ID)"));
            }
            for resource in &caller.resources {
                if let Err(reason) = check_resource(resource) {
                    problems.push(format!("{key}.resources: '{resource}' {reason}"));
                }
            }
            for resource in &caller.send_as {
                if let Err(reason) = check_resource(resource) {
                    problems.push(format!("{key}.send_as: '{resource}' {reason}"));
                }
            }
            for site in &caller.sites {
                if let Err(reason) = crate::auth::policy::SiteResources::check(site) {
                    problems.push(format!("{key}.sites: '{site}' {reason}"));
                }
            }
            for op in &caller.operations {
                if op != "*" && !OPERATIONS.contains(&op.as_str()) {
                    problems.push(format!(
                        "{key}.operations: unknown operation '{op}' (known: {}, or \"*\")",
                        OPERATIONS.join(", ")
                    ));
                }
            }
        }
        let f = &self.files;
        if f.chunk_bytes == 0
            || !f.chunk_bytes.is_multiple_of(UPLOAD_FRAGMENT_UNIT)
            || f.chunk_bytes > 60 * 1024 * 1024
        {
            problems.push(format!(
                "files.chunk_bytes: must be a multiple of {UPLOAD_FRAGMENT_UNIT} (320 KiB) and at most 62914560 (60 MiB), got {}",
                f.chunk_bytes
            ));
        }
        if f.transfer_timeout.is_zero() {
            problems.push("files.transfer_timeout: must be greater than zero".to_owned());
        }
        if f.link_ttl.is_zero() || f.link_ttl > Duration::from_secs(3600) {
            problems.push("files.link_ttl: must be between 1s and 1h".to_owned());
        }
        if let Some(key) = &f.link_key
            && crate::store::decode_key(key.expose()).is_err()
        {
            problems.push("files.link_key: must be base64 of 32 bytes (e.g. `head -c 32 /dev/urandom | base64`)".to_owned());
        }
        let mut seen = BTreeMap::new();
        for (name, caller) in &self.callers {
            if let Some(other) = seen.insert((&caller.issuer, &caller.client_id), name) {
                problems.push(format!("callers.{name}.client_id: callers '{other}' and '{name}' have the same issuer and client id"));
            }
        }

        if problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::Invalid(problems))
        }
    }
}

impl Config {
    fn validate_telemetry(&self, problems: &mut Vec<String>) {
        let t = &self.telemetry;
        if !(0.0..=1.0).contains(&t.sample_ratio) {
            problems.push(format!(
                "telemetry.sample_ratio: must be between 0 and 1, got {}",
                t.sample_ratio
            ));
        }
        if let Some(url) = &t.otlp_endpoint
            && !matches!(url.scheme(), "http" | "https")
        {
            problems.push(format!(
                "telemetry.otlp_endpoint: must be an http(s) URL of an OTLP/HTTP collector, got '{url}'"
            ));
        }
        if t.service_name.trim().is_empty() {
            problems.push("telemetry.service_name: must not be empty".to_owned());
        }
    }
}

/// A resource entry: `*`, an object id, a UPN / mail address, or `group:<object id>`.
/// A browser origin as browsers send it: `scheme://host[:port]`, nothing else. A wildcard
/// would let any site's scripts call the gateway with a user's token.
fn check_origin(origin: &str) -> Result<(), &'static str> {
    if origin.contains('*') {
        return Err("is a wildcard; list each origin exactly");
    }
    let url = Url::parse(origin).map_err(|_| "is not an origin (scheme://host[:port])")?;
    let exact = matches!(url.scheme(), "http" | "https")
        && url.host_str().is_some()
        && url.username().is_empty()
        && url.password().is_none()
        && url.query().is_none()
        && url.fragment().is_none()
        && url.path() == "/"
        && !origin.ends_with('/');
    if exact {
        Ok(())
    } else {
        Err("must be exactly scheme://host[:port], with no path, query or trailing slash")
    }
}

fn check_resource(resource: &str) -> Result<(), &'static str> {
    if resource == "*" {
        return Ok(());
    }
    let value = resource.strip_prefix("group:").unwrap_or(resource);
    if value.is_empty()
        || !value.is_ascii()
        || value
            .chars()
            .any(|c| c.is_ascii_whitespace() || c.is_control())
    {
        return Err(
            "must be \"*\", an object id, a user principal name or mail address, or group:<object id>",
        );
    }
    if resource.starts_with("group:") && !is_guid(value) {
        return Err("names a group by something other than its object id");
    }
    if !is_guid(value) && !value.contains('@') {
        return Err("is neither an object id nor a user principal name");
    }
    Ok(())
}

/// `8-4-4-4-12` hexadecimal, the shape of every Entra object id.
pub fn is_guid(value: &str) -> bool {
    let parts: Vec<&str> = value.split('-').collect();
    parts.len() == 5
        && parts
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(p, n)| p.len() == n && p.chars().all(|c| c.is_ascii_hexdigit()))
}

fn known<'a>(names: impl Iterator<Item = &'a String>) -> String {
    let names: Vec<&str> = names.map(String::as_str).collect();
    if names.is_empty() {
        "none".to_owned()
    } else {
        names.join(", ")
    }
}

/// Upstream URLs must be https, except on loopback (the emulator, tests).
fn check_upstream_url(key: &str, url: &Url, problems: &mut Vec<String>) {
    let loopback = matches!(url.host_str(), Some("127.0.0.1" | "localhost" | "[::1]"));
    if url.scheme() != "https" && !(url.scheme() == "http" && loopback) {
        problems.push(format!(
            "{key}: must be an https URL (http only for loopback), got '{url}'"
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_config_runs_on_the_emulator_and_validates() {
        let config = Config::default().with_embedded_defaults();
        assert!(config.uses_emulator());
        assert!(config.graphiql_enabled());
        config.validate().expect("embedded default is valid");
        assert!(config.callers.contains_key(DEMO_CALLER));
    }

    #[test]
    fn a_short_hs256_secret_is_refused_by_name_without_echoing_it() {
        let config = Config::from_toml(
            r#"
            [issuers.internal]
            issuer = "https://idp.example"
            audiences = ["gw"]
            kind = "hs256"
            secret = "too-short-secret"
            "#,
        )
        .unwrap();
        let err = config.validate().unwrap_err().to_string();
        assert!(err.contains("issuers.internal.secret"), "{err}");
        assert!(!err.contains("too-short-secret"), "secret leaked: {err}");
    }

    #[test]
    fn partial_credentials_name_every_missing_key() {
        let config = Config::from_toml("[graph]\nclient_id = \"abc\"\n").unwrap();
        let err = config.validate().unwrap_err().to_string();
        assert!(err.contains("graph.tenant_id"), "{err}");
        assert!(err.contains("graph.client_secret"), "{err}");
    }

    #[test]
    fn production_refuses_the_emulator_and_turns_graphiql_off() {
        let config = Config::from_toml("production = true\n").unwrap();
        assert!(!config.graphiql_enabled());
        let err = config.validate().unwrap_err().to_string();
        assert!(err.contains("production"), "{err}");
        assert!(config.with_embedded_defaults().issuers.is_empty());
    }

    #[test]
    fn unknown_keys_and_operations_are_errors() {
        assert!(Config::from_toml("listne = \"127.0.0.1:1\"\n").is_err());
        let typo = Config::from_toml(
            "[issuers.i]\nissuer = \"x\"\naudiences = [\"a\"]\nkind = \"hs256\"\nsecret = \"0123456789abcdef0123456789abcdef\"\nleway = \"5s\"\n",
        );
        assert!(typo.is_err(), "a misspelt issuer key is accepted");
        let config = Config::from_toml(
            r#"
            [issuers.i]
            issuer = "x"
            audiences = ["a"]
            kind = "hs256"
            secret = "0123456789abcdef0123456789abcdef"
            [callers.c]
            issuer = "i"
            client_id = "c"
            mode = "app"
            operations = ["users.read", "mail.delete"]
            "#,
        )
        .unwrap();
        let err = config.validate().unwrap_err().to_string();
        assert!(err.contains("callers.c.operations"), "{err}");
    }

    #[test]
    fn traces_are_off_by_default_and_a_bad_sample_ratio_is_refused_by_name() {
        let config = Config::default();
        assert!(config.telemetry.otlp_endpoint.is_none());
        assert_eq!(config.http.shutdown_grace, Duration::from_secs(25));
        let config = Config::from_toml(
            "[telemetry]\notlp_endpoint = \"http://collector:4318\"\nsample_ratio = 1.5\n[http]\nshutdown_grace = \"5s\"\n",
        )
        .unwrap();
        assert_eq!(config.http.shutdown_grace, Duration::from_secs(5));
        let err = config.validate().unwrap_err().to_string();
        assert!(err.contains("telemetry.sample_ratio"), "{err}");
    }

    #[test]
    fn plain_http_upstreams_are_refused_unless_loopback() {
        let config =
            Config::from_toml("[graph]\nbase_url = \"http://graph.example/v1.0\"\n").unwrap();
        assert!(
            config
                .validate()
                .unwrap_err()
                .to_string()
                .contains("graph.base_url")
        );
        let config =
            Config::from_toml("[graph]\nbase_url = \"http://127.0.0.1:9/v1.0\"\n").unwrap();
        config.validate().unwrap();
    }
}
