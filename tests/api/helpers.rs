//! `spawn_app`: a gateway on its embedded default (emulator included), on port 0.

use std::net::SocketAddr;

use graph_emulator::{
    AppRegistration, DEFAULT_API_URI, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, RunningEmulator,
};
use m365_gateway::config::{CallerConfig, CallerMode, IssuerConfig, IssuerKey, Secret};
use m365_gateway::{App, Config};
use reqwest::StatusCode;
use serde_json::{Value, json};

pub struct TestApp {
    pub base: String,
    pub emulator: String,
    /// The demo caller's dev token (acts for the emulator's demo user).
    pub token: String,
    pub http: reqwest::Client,
    /// Applies a new configuration to the running gateway (what SIGHUP does).
    pub reloader: m365_gateway::app::Reloader,
    /// The embedded emulator's handle (subscriptions, lifecycle, clock), when embedded.
    pub emu: Option<graph_emulator::Emulator>,
    /// The gateway's live event bus (what the outbox worker publishes to).
    pub events: m365_gateway::webhooks::bus::EventBus,
    /// The gateway's store (notifications tests look inside and make it fail).
    pub store: Option<m365_gateway::store::Store>,
}

pub fn loopback() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

/// The embedded default, with both listeners on ephemeral ports.
pub fn test_config() -> Config {
    let mut config = Config {
        listen: loopback(),
        ..Config::default()
    };
    config.emulator.listen = loopback();
    // Rate limits have their own tests; the others send bursts far above what a
    // production caller is allowed.
    config.rate_limit.enabled = false;
    // Each test its own database: tests run side by side in one process.
    config.store.url = "sqlite::memory:".to_owned();
    config
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(test_config()).await
}

pub async fn spawn_app_with(config: Config) -> TestApp {
    let app = App::build(config).await.expect("the gateway builds");
    let base = format!("http://{}", app.local_addr());
    // The embedded emulator, or a standalone one the config points at as its authority.
    let emulator = app.emulator().map(|e| e.base_url()).unwrap_or_else(|| {
        app.config()
            .graph
            .authority
            .as_str()
            .trim_end_matches('/')
            .to_owned()
    });
    let token = app.dev_token().unwrap_or_default().to_owned();
    let reloader = app.reloader();
    let emu = app.emulator().map(|e| e.emulator.clone());
    let events = app.events();
    let store = app.store().cloned();
    tokio::spawn(app.run_until_stopped(std::future::pending()));
    TestApp {
        base,
        emulator,
        token,
        http: reqwest::Client::new(),
        reloader,
        emu,
        events,
        store,
    }
}

impl TestApp {
    /// A GraphQL query as the demo caller; returns the whole response body.
    pub async fn graphql(&self, query: &str) -> Value {
        let (status, body) = self.graphql_as(Some(&self.token), query, json!({})).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body
    }

    /// A GraphQL query whose `data` must have no errors.
    pub async fn graphql_data(&self, query: &str) -> Value {
        let body = self.graphql(query).await;
        assert!(body.get("errors").is_none(), "unexpected errors: {body}");
        body["data"].clone()
    }

    pub async fn graphql_as(
        &self,
        token: Option<&str>,
        query: &str,
        variables: Value,
    ) -> (StatusCode, Value) {
        let mut request = self
            .http
            .post(format!("{}/graphql", self.base))
            .json(&json!({ "query": query, "variables": variables }));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.expect("gateway answers");
        let status = response.status();
        (status, response.json().await.expect("JSON body"))
    }

    /// A REST GET as the demo caller.
    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.get_as(Some(&self.token), path).await
    }

    pub async fn get_as(&self, token: Option<&str>, path: &str) -> (StatusCode, Value) {
        let mut request = self.http.get(format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.expect("gateway answers");
        let status = response.status();
        (status, response.json().await.expect("JSON body"))
    }

    pub async fn stats(&self) -> Value {
        self.http
            .get(format!("{}/_emulator/stats", self.emulator))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    pub async fn graph_requests(&self) -> u64 {
        self.stats().await["graph_requests"].as_u64().unwrap()
    }

    pub async fn reset_stats(&self) {
        let status = self
            .http
            .post(format!("{}/_emulator/stats/reset", self.emulator))
            .send()
            .await
            .unwrap()
            .status();
        assert!(status.is_success());
    }

    /// URLs Graph received since the last reset (batch items included).
    pub async fn recorded_urls(&self) -> Vec<String> {
        let requests: Value = self
            .http
            .get(format!("{}/_emulator/requests", self.emulator))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        requests
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["url"].as_str().unwrap().to_owned())
            .collect()
    }
}

/// Secret of the HS256 issuer tests configure next to real-mode Graph settings.
pub const TEST_SECRET: &str = "integration-test-issuer-secret-0123456789";
pub const TEST_ISSUER: &str = "https://tests.internal.example";

/// Points the gateway at a standalone emulator as if it were Microsoft's cloud, with
/// `client_id` as its app registration, and adds an HS256 issuer with one caller.
pub fn real_mode_config(
    emulator: &graph_emulator::RunningEmulator,
    client_id: &str,
    caller: (&str, m365_gateway::config::CallerMode, &[&str], &[&str]),
) -> Config {
    let mut config = test_config();
    config.graph.base_url = emulator.graph_url().parse().unwrap();
    config.graph.authority = emulator.base_url().parse().unwrap();
    config.graph.tenant_id = Some(emulator.emulator.tenant_id().to_owned());
    config.graph.client_id = Some(client_id.to_owned());
    real_mode_config_from(config, caller)
}

/// Adds the test HS256 issuer and one caller of it to `config`.
pub fn real_mode_config_from(
    mut config: Config,
    caller: (&str, CallerMode, &[&str], &[&str]),
) -> Config {
    config.issuers.insert(
        "tests".into(),
        IssuerConfig {
            issuer: TEST_ISSUER.into(),
            audiences: vec!["m365-gateway".into()],
            key: IssuerKey::Hs256 {
                secret: Secret::new(TEST_SECRET),
            },
            client_claim: "azp".into(),
            leeway: std::time::Duration::from_secs(30),
        },
    );
    let (name, mode, operations, resources) = caller;
    config.callers.insert(
        name.into(),
        CallerConfig {
            issuer: "tests".into(),
            client_id: name.into(),
            mode,
            user_claim: Some("upn".into()),
            operations: operations.iter().map(|s| s.to_string()).collect(),
            resources: resources.iter().map(|s| s.to_string()).collect(),
            send_as: Vec::new(),
            sites: if resources.contains(&"*") {
                vec!["*".into()]
            } else {
                Vec::new()
            },
            scopes: None,
        },
    );
    config
}

/// A token of the test HS256 issuer for caller `client_id`, optionally acting for `upn`.
pub fn test_token(client_id: &str, upn: Option<&str>) -> String {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let mut claims = json!({
        "iss": TEST_ISSUER, "aud": "m365-gateway", "sub": client_id, "azp": client_id,
        "iat": now, "exp": now + 600,
    });
    if let Some(upn) = upn {
        claims["upn"] = json!(upn);
    }
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(TEST_SECRET.as_bytes()),
    )
    .unwrap()
}

/// An app-only Graph token for the emulator's default app, from the token endpoint at
/// `base`: for tests that act at Graph behind the gateway's back.
pub async fn graph_app_token(http: &reqwest::Client, base: &str, tenant: &str) -> String {
    let token: Value = http
        .post(format!("{base}/{tenant}/oauth2/v2.0/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", DEFAULT_CLIENT_ID),
            ("client_secret", DEFAULT_CLIENT_SECRET),
            ("scope", "https://graph.microsoft.com/.default"),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    token["access_token"]
        .as_str()
        .expect("an app token")
        .to_owned()
}

pub const INTRANET: &str = "5d1c9a2e-7b3f-4e8a-9c6d-1f2e3a4b5c6d";
pub const INTRANET_SECRET: &str = "intranet-app-secret-for-tests";

/// The gateway's API app (the emulator's default app) plus an intranet app whose users'
/// tokens for the gateway are exchanged on-behalf-of.
pub async fn obo_setup(operations: &[&str]) -> (RunningEmulator, TestApp) {
    let emu = graph_emulator::Emulator::spawn(Default::default(), loopback())
        .await
        .unwrap();
    let config = obo_config(&emu, operations);
    let app = spawn_app_with(config).await;
    (emu, app)
}

/// The configuration of [`obo_setup`], for tests that add to it.
pub fn obo_config(emu: &RunningEmulator, operations: &[&str]) -> Config {
    emu.emulator.register_app(AppRegistration::confidential(
        INTRANET,
        INTRANET_SECRET,
        "Intranet",
        Vec::<String>::new(),
    ));
    let mut config: Config = real_mode_config(
        emu,
        DEFAULT_CLIENT_ID,
        ("unused", CallerMode::App, &[], &[]),
    );
    config.graph.client_secret = Some(Secret::new(DEFAULT_CLIENT_SECRET));
    let tenant = emu.emulator.tenant_id().to_owned();
    config.issuers.insert(
        "entra".into(),
        IssuerConfig {
            issuer: format!("https://login.microsoftonline.com/{tenant}/v2.0"),
            audiences: vec![DEFAULT_CLIENT_ID.into(), DEFAULT_API_URI.into()],
            key: IssuerKey::Jwks {
                jwks_url: format!("{}/{tenant}/discovery/v2.0/keys", emu.base_url())
                    .parse()
                    .unwrap(),
                algorithms: vec!["RS256".into()],
                refresh: std::time::Duration::from_secs(3600),
            },
            client_claim: "azp".into(),
            leeway: std::time::Duration::from_secs(30),
        },
    );
    config.callers.insert(
        "intranet".into(),
        CallerConfig {
            issuer: "entra".into(),
            client_id: INTRANET.into(),
            mode: CallerMode::Obo,
            user_claim: None,
            operations: operations.iter().map(|s| s.to_string()).collect(),
            resources: vec!["*".into()],
            send_as: Vec::new(),
            sites: vec!["*".into()],
            scopes: None,
        },
    );
    config
}

pub fn user_token(emu: &RunningEmulator, upn: &str) -> String {
    emu.emulator
        .issue_user_token(INTRANET, upn, DEFAULT_CLIENT_ID, &["access_as_user"])
        .expect("a user token")
}
