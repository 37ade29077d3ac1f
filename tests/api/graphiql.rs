//! GraphiQL is served from the binary: nothing is loaded from another host.

use reqwest::StatusCode;

use crate::helpers::{spawn_app, spawn_app_with, test_config};

fn asset_urls(html: &str) -> Vec<String> {
    let mut urls = Vec::new();
    for attr in ["src=\"", "href=\""] {
        let mut rest = html;
        while let Some(i) = rest.find(attr) {
            rest = &rest[i + attr.len()..];
            let end = rest.find('"').unwrap();
            urls.push(rest[..end].to_owned());
            rest = &rest[end..];
        }
    }
    urls
}

#[tokio::test]
async fn graphiql_loads_every_asset_from_the_gateway_itself() {
    let app = spawn_app().await;
    let response = app
        .http
        .get(format!("{}/graphiql", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let html = response.text().await.unwrap();
    let urls = asset_urls(&html);
    assert!(urls.len() >= 3, "{urls:?}");
    for url in &urls {
        assert!(
            url.starts_with("/graphiql/assets/"),
            "asset from elsewhere: {url}"
        );
        let asset = app
            .http
            .get(format!("{}{url}", app.base))
            .send()
            .await
            .unwrap();
        assert_eq!(asset.status(), StatusCode::OK, "{url}");
    }
    assert!(
        !html.contains("unpkg.com") && !html.contains("cdn"),
        "CDN reference in the page"
    );
    // The headers pane is pre-filled with the dev token.
    assert!(html.contains(&app.token), "the dev token is not pre-filled");
}

#[tokio::test]
async fn graphiql_can_be_switched_off() {
    let mut config = test_config();
    config.graphiql.enabled = Some(false);
    let app = spawn_app_with(config).await;
    let response = app
        .http
        .get(format!("{}/graphiql", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
}
