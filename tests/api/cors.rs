//! Browser frontends: CORS for the configured origins only, preflights without a token,
//! and compressed JSON for large answers.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{spawn_app_with, test_config};

const INTRANET: &str = "https://intranet.kestrelridge.example";

#[tokio::test]
async fn a_configured_origin_gets_its_preflight_and_cross_origin_answers_without_wildcards() {
    let mut config = test_config();
    config.http.cors_allowed_origins = vec![INTRANET.to_owned()];
    let app = spawn_app_with(config).await;

    // The preflight carries no token and is answered before any authentication.
    let preflight = app
        .http
        .request(reqwest::Method::OPTIONS, format!("{}/graphql", app.base))
        .header("Origin", INTRANET)
        .header("Access-Control-Request-Method", "POST")
        .header(
            "Access-Control-Request-Headers",
            "authorization, content-type",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(preflight.status(), StatusCode::OK);
    let headers = preflight.headers();
    assert_eq!(headers["access-control-allow-origin"], INTRANET);
    let allowed = headers["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    assert!(
        allowed.contains("authorization") && allowed.contains("content-type"),
        "{allowed}"
    );
    assert!(
        headers["access-control-allow-methods"]
            .to_str()
            .unwrap()
            .contains("POST")
    );
    assert!(headers.get("access-control-allow-credentials").is_none());
    let vary: Vec<String> = headers
        .get_all("vary")
        .iter()
        .map(|v| v.to_str().unwrap().to_ascii_lowercase())
        .collect();
    assert!(vary.iter().any(|v| v.contains("origin")), "{vary:?}");

    // The request itself: answered, with the origin echoed and the request id exposed.
    let response = app
        .http
        .post(format!("{}/graphql", app.base))
        .header("Origin", INTRANET)
        .bearer_auth(&app.token)
        .json(&json!({ "query": "{ me { displayName } }" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["access-control-allow-origin"], INTRANET);
    assert!(
        response.headers()["access-control-expose-headers"]
            .to_str()
            .unwrap()
            .contains("x-request-id")
    );

    // Another origin gets no CORS headers (the browser then refuses the answer), and no
    // origin is ever answered with `*`.
    for origin in [
        "https://evil.example",
        "https://intranet.kestrelridge.example.evil.example",
        "null",
    ] {
        let response = app
            .http
            .request(reqwest::Method::OPTIONS, format!("{}/graphql", app.base))
            .header("Origin", origin)
            .header("Access-Control-Request-Method", "POST")
            .send()
            .await
            .unwrap();
        assert!(
            response
                .headers()
                .get("access-control-allow-origin")
                .is_none(),
            "{origin}"
        );
    }
}

#[tokio::test]
async fn without_configured_origins_there_are_no_cors_headers() {
    let app = spawn_app_with(test_config()).await;
    let response = app
        .http
        .post(format!("{}/graphql", app.base))
        .header("Origin", INTRANET)
        .bearer_auth(&app.token)
        .json(&json!({ "query": "{ me { displayName } }" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );
}

#[test]
fn wildcards_and_origins_with_paths_are_configuration_errors() {
    for bad in [
        "*",
        "https://*.example.com",
        "https://a.example/",
        "https://a.example/app",
        "intranet",
        "ftp://a.example",
    ] {
        let mut config = test_config();
        config.http.cors_allowed_origins = vec![bad.to_owned()];
        let error = config.validate().unwrap_err().to_string();
        assert!(
            error.contains("http.cors_allowed_origins"),
            "{bad}: {error}"
        );
    }
    let mut config = test_config();
    config.http.cors_allowed_origins =
        vec![INTRANET.to_owned(), "http://localhost:3000".to_owned()];
    config.validate().unwrap();
}

#[tokio::test]
async fn large_json_answers_are_compressed_for_clients_that_accept_it() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = spawn_app_with(test_config()).await;
    // Raw HTTP: a client library would decode the body and drop the header under test.
    for encoding in ["br", "gzip"] {
        let address = app.base.trim_start_matches("http://");
        let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
        let request = format!(
            "GET /api/v1/users?limit=100 HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer {}\r\nAccept-Encoding: {encoding}\r\nConnection: close\r\n\r\n",
            app.token
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await.unwrap();
        let text = String::from_utf8_lossy(&answer).to_ascii_lowercase();
        let head = &text[..text.find("\r\n\r\n").unwrap()];
        assert!(head.starts_with("http/1.1 200"), "{head}");
        assert!(
            head.contains(&format!("content-encoding: {encoding}")),
            "{head}"
        );
    }
}
