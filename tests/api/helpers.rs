//! `spawn_app`: a gateway on its embedded default (emulator included), on port 0.

use std::net::SocketAddr;

use m365_gateway::{App, Config};
use reqwest::StatusCode;
use serde_json::{Value, json};

pub struct TestApp {
    pub base: String,
    pub emulator: String,
    /// The demo caller's dev token (acts for the emulator's demo user).
    pub token: String,
    pub http: reqwest::Client,
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
    config
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(test_config()).await
}

pub async fn spawn_app_with(config: Config) -> TestApp {
    let app = App::build(config).await.expect("the gateway builds");
    let base = format!("http://{}", app.local_addr());
    let emulator = app
        .emulator()
        .map(|e| e.base_url())
        .expect("tests run on the embedded emulator");
    let token = app.dev_token().unwrap_or_default().to_owned();
    tokio::spawn(app.run_until_stopped(std::future::pending()));
    TestApp {
        base,
        emulator,
        token,
        http: reqwest::Client::new(),
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
