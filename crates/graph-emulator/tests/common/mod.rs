//! Shared helpers: start an emulator on port 0 and talk to it over real HTTP.
#![allow(dead_code)] // each test binary uses a different subset

use std::net::SocketAddr;

use graph_emulator::{
    DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, Emulator, EmulatorConfig, RunningEmulator,
};
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde_json::Value;

pub const GRAPH_SCOPE: &str = "https://graph.microsoft.com/.default";

pub struct Harness {
    pub emu: RunningEmulator,
    pub client: reqwest::Client,
    pub token: String,
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub text: String,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// `error.code` of a Graph error body.
    pub fn error_code(&self) -> String {
        self.json()["error"]["code"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    pub fn error_message(&self) -> String {
        self.json()["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }
}

pub fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

pub async fn start() -> Harness {
    start_with(EmulatorConfig::default()).await
}

pub async fn start_with(config: EmulatorConfig) -> Harness {
    let emu = Emulator::spawn(config, loopback())
        .await
        .expect("spawn emulator");
    let client = reqwest::Client::new();
    let token = fetch_token(
        &client,
        &emu.base_url(),
        DEFAULT_CLIENT_ID,
        DEFAULT_CLIENT_SECRET,
    )
    .await;
    Harness { emu, client, token }
}

/// A client-credentials token, or a panic with Entra's answer.
pub async fn fetch_token(
    client: &reqwest::Client,
    base: &str,
    client_id: &str,
    secret: &str,
) -> String {
    let reply = client
        .post(format!(
            "{base}/{}/oauth2/v2.0/token",
            graph_emulator::DEFAULT_TENANT_ID
        ))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", client_id),
            ("client_secret", secret),
            ("scope", GRAPH_SCOPE),
        ])
        .send()
        .await
        .expect("token request");
    let status = reply.status();
    let body: Value = reply.json().await.expect("token JSON");
    assert_eq!(status, StatusCode::OK, "{body}");
    body["access_token"]
        .as_str()
        .expect("access_token")
        .to_string()
}

impl Harness {
    /// `GET {graph}/{path_and_query}` with the default app's token.
    pub async fn get(&self, path_and_query: &str) -> Reply {
        self.get_with(path_and_query, &[]).await
    }

    pub async fn get_eventual(&self, path_and_query: &str) -> Reply {
        self.get_with(path_and_query, &[("ConsistencyLevel", "eventual")])
            .await
    }

    pub async fn get_with(&self, path_and_query: &str, headers: &[(&str, &str)]) -> Reply {
        let url = if path_and_query.starts_with("http") {
            path_and_query.to_string()
        } else {
            format!("{}{}", self.emu.graph_url(), path_and_query)
        };
        let mut request = self.client.get(url).bearer_auth(&self.token);
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        reply(request.send().await.expect("request")).await
    }

    pub async fn get_with_token(&self, path_and_query: &str, token: Option<&str>) -> Reply {
        let mut request = self
            .client
            .get(format!("{}{}", self.emu.graph_url(), path_and_query));
        if let Some(t) = token {
            request = request.bearer_auth(t);
        }
        reply(request.send().await.expect("request")).await
    }

    pub async fn batch(&self, body: &Value) -> Reply {
        let request = self
            .client
            .post(format!("{}/$batch", self.emu.graph_url()))
            .bearer_auth(&self.token)
            .json(body);
        reply(request.send().await.expect("request")).await
    }

    /// Follows `@odata.nextLink` to the end; returns every item.
    pub async fn get_all(&self, first: &str, headers: &[(&str, &str)]) -> (Vec<Value>, usize) {
        let mut items = Vec::new();
        let mut pages = 0;
        let mut next = Some(first.to_string());
        while let Some(url) = next {
            let reply = self.get_with(&url, headers).await;
            assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
            let body = reply.json();
            items.extend(body["value"].as_array().expect("value").iter().cloned());
            next = body["@odata.nextLink"].as_str().map(str::to_string);
            pages += 1;
            assert!(pages < 100_000, "runaway paging");
        }
        (items, pages)
    }

    /// The id of a user by UPN.
    pub async fn user_id(&self, upn: &str) -> String {
        let reply = self.get(&format!("/users/{upn}?$select=id")).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
        reply.json()["id"].as_str().expect("id").to_string()
    }

    /// The one user without a manager.
    pub async fn ceo(&self) -> Value {
        let (users, _) = self
            .get_all("/users?$top=999&$expand=manager($select=id)", &[])
            .await;
        let ceos: Vec<Value> = users
            .into_iter()
            .filter(|u| u.get("manager").is_none())
            .collect();
        assert_eq!(ceos.len(), 1, "exactly one user without a manager");
        ceos[0].clone()
    }

    pub async fn group_id(&self, display_name: &str) -> String {
        let reply = self
            .get(&format!(
                "/groups?$filter=displayName eq '{display_name}'&$select=id"
            ))
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
        reply.json()["value"][0]["id"]
            .as_str()
            .expect("group id")
            .to_string()
    }
}

pub async fn reply(response: reqwest::Response) -> Reply {
    let status = response.status();
    let headers = response.headers().clone();
    let text = response.text().await.expect("body");
    Reply {
        status,
        headers,
        text,
    }
}

/// The sorted key set of a JSON object.
pub fn keys(v: &Value) -> Vec<String> {
    let mut k: Vec<String> = v
        .as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default();
    k.sort();
    k
}

pub fn sorted(mut v: Vec<&str>) -> Vec<String> {
    v.sort();
    v.into_iter().map(str::to_string).collect()
}
