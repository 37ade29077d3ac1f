//! Helpers of the files tests (`tests/files*.rs`): raw byte requests, redirects left alone,
//! delegated tokens, upload sessions.
#![allow(dead_code)]

use graph_emulator::{DEFAULT_CLIENT_ID, DEMO_USER_UPN};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use super::{Harness, Reply, reply};

/// A client that does not follow redirects (to see the 302 of `…/content`).
pub fn no_redirect() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

/// 320 KiB: the fragment unit of upload sessions.
pub const UNIT: usize = 327_680;

/// Deterministic bytes (a counter through a mixer), `len` of them from `offset`.
pub fn pattern(offset: u64, len: usize) -> Vec<u8> {
    (offset..offset + len as u64)
        .map(|i| {
            let x = i.wrapping_mul(0x9E37_79B9_7F4A_7C15);
            (x >> 56) as u8 ^ (i as u8)
        })
        .collect()
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect()
}

impl Harness {
    fn url(&self, path_or_url: &str) -> String {
        if path_or_url.starts_with("http") {
            path_or_url.to_string()
        } else {
            format!("{}{}", self.emu.graph_url(), path_or_url)
        }
    }

    /// A delegated Graph token of the default app for `upn` with these scopes.
    pub fn delegated(&self, upn: &str, scopes: &[&str]) -> String {
        self.emu
            .emulator
            .issue_delegated_token(DEFAULT_CLIENT_ID, upn, scopes)
            .expect("delegated token")
    }

    /// The demo user's OneDrive id.
    pub fn demo_drive(&self) -> String {
        self.emu
            .emulator
            .drive_id_of_user(DEMO_USER_UPN)
            .expect("demo drive")
    }

    /// An item id by path in a drive (`"Reports/report-001.pdf"`).
    pub fn item_id(&self, drive: &str, path: &str) -> String {
        self.emu
            .emulator
            .drive_item_id(drive, path)
            .unwrap_or_else(|| panic!("no item at {path}"))
    }

    /// Any request with a raw byte body, as the app (or `token`), with extra headers;
    /// `auth: false` sends no `Authorization` (pre-authenticated URLs).
    pub async fn bytes_request(
        &self,
        method: Method,
        path_or_url: &str,
        body: Vec<u8>,
        auth: bool,
        token: Option<&str>,
        headers: &[(&str, &str)],
    ) -> Reply {
        let mut request = self
            .client
            .request(method, self.url(path_or_url))
            .body(body);
        if auth {
            request = request.bearer_auth(token.unwrap_or(&self.token));
        }
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        reply(request.send().await.expect("request")).await
    }

    /// `PUT {graph}{path}` with bytes (a simple upload), as the app.
    pub async fn put_content(&self, path: &str, body: &[u8], headers: &[(&str, &str)]) -> Reply {
        self.bytes_request(Method::PUT, path, body.to_vec(), true, None, headers)
            .await
    }

    /// Any request to a pre-authenticated URL (no `Authorization`).
    pub async fn preauth(
        &self,
        method: Method,
        url: &str,
        body: Vec<u8>,
        headers: &[(&str, &str)],
    ) -> Reply {
        self.bytes_request(method, url, body, false, None, headers)
            .await
    }

    /// `PUT uploadUrl` of bytes `[offset, offset + len)` of `data` (total `data.len()`).
    pub async fn put_fragment(
        &self,
        upload_url: &str,
        data: &[u8],
        offset: usize,
        len: usize,
    ) -> Reply {
        let end = offset + len;
        let range = format!("bytes {offset}-{}/{}", end - 1, data.len());
        self.preauth(
            Method::PUT,
            upload_url,
            data[offset..end].to_vec(),
            &[("Content-Range", &range)],
        )
        .await
    }

    /// `POST {path}/createUploadSession` with `body`, asserting 200; the `uploadUrl`.
    pub async fn session(&self, path: &str, body: Value) -> String {
        let reply = self
            .post(&format!("{path}/createUploadSession"), &body)
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
        reply.json()["uploadUrl"]
            .as_str()
            .expect("uploadUrl")
            .to_string()
    }

    /// Follows a download: `GET …/content` (302), then the `Location` without credentials.
    pub async fn download(&self, path: &str) -> (Reply, Vec<u8>) {
        let first = no_redirect()
            .get(self.url(path))
            .bearer_auth(&self.token)
            .send()
            .await
            .expect("content");
        assert_eq!(first.status(), StatusCode::FOUND);
        let location = first
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .expect("Location")
            .to_string();
        let response = self.client.get(&location).send().await.expect("download");
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.bytes().await.expect("bytes").to_vec();
        (
            Reply {
                status,
                headers,
                text: String::new(),
            },
            bytes,
        )
    }
}

/// `{"item": {"@microsoft.graph.conflictBehavior": behaviour}}`.
pub fn session_body(behaviour: &str) -> Value {
    json!({"item": {"@microsoft.graph.conflictBehavior": behaviour}})
}
