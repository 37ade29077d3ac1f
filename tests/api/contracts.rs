//! The checked-in contracts are what the code generates. To refresh them:
//! `cargo run -- schema > schema/schema.graphql && cargo run -- openapi > openapi.yaml`.

fn assert_same(checked_in: &str, generated: &str, file: &str, command: &str) {
    if checked_in != generated {
        panic!("{file} is out of date with the code; regenerate it with `{command}`");
    }
}

#[test]
fn the_checked_in_graphql_schema_matches_the_code() {
    assert_same(
        include_str!("../../schema/schema.graphql"),
        &m365_gateway::graphql::sdl(),
        "schema/schema.graphql",
        "cargo run -- schema > schema/schema.graphql",
    );
}

#[test]
fn the_checked_in_openapi_document_matches_the_code() {
    assert_same(
        include_str!("../../openapi.yaml"),
        &m365_gateway::rest::openapi_yaml(),
        "openapi.yaml",
        "cargo run -- openapi > openapi.yaml",
    );
}

#[test]
fn the_readme_configuration_reference_matches_the_config_types() {
    use m365_gateway::config::reference::{END_MARKER, START_MARKER, markdown};
    let readme = include_str!("../../README.md");
    let start = readme.find(START_MARKER).expect("README has the reference");
    let end = readme
        .find(END_MARKER)
        .expect("README has the reference's end")
        + END_MARKER.len();
    assert_same(
        &readme[start..end],
        &markdown(),
        "README.md (configuration reference)",
        "paste the output of `cargo run -- config-reference` between the markers",
    );
}

#[test]
fn every_rest_route_is_documented() {
    let doc = m365_gateway::rest::openapi_yaml();
    for route in [
        "/api/v1/users:",
        "/api/v1/users/{id}:",
        "/api/v1/users/{id}/manager:",
        "/api/v1/users/{id}/direct-reports:",
        "/api/v1/users/{id}/member-of:",
        "/api/v1/groups/{id}:",
        "/api/v1/groups/{id}/members:",
    ] {
        assert!(doc.contains(route), "{route} missing from openapi.yaml");
    }
}

/// The generated OpenAPI document, parsed.
fn openapi() -> serde_json::Value {
    yaml_serde::from_str(&m365_gateway::rest::openapi_yaml()).expect("the OpenAPI document is YAML")
}

const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// Every operation of the document: (method, path, operation).
fn operations(doc: &serde_json::Value) -> Vec<(String, String, serde_json::Value)> {
    let mut found = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in METHODS {
            if let Some(operation) = item.get(method) {
                found.push((method.to_uppercase(), path.clone(), operation.clone()));
            }
        }
    }
    assert!(found.len() > 50, "only {} operations found", found.len());
    found
}

/// Every `$ref` value anywhere below `value`.
fn references(value: &serde_json::Value, out: &mut Vec<String>) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, v) in map {
                match (key.as_str(), v) {
                    ("$ref", serde_json::Value::String(r)) => out.push(r.clone()),
                    _ => references(v, out),
                }
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| references(v, out)),
        _ => {}
    }
}

// OpenAPI 3.1 requires a description on every response object; openapi-spec-validator
// refused the document for the 50 success responses whose annotation gave none.
#[test]
fn every_response_in_the_openapi_document_has_a_description() {
    let doc = openapi();
    let mut missing = Vec::new();
    for (method, path, operation) in operations(&doc) {
        for (status, response) in operation["responses"].as_object().expect("responses") {
            if response["description"].as_str().is_none_or(str::is_empty) {
                missing.push(format!("{method} {path} {status}"));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "responses without a description: {missing:#?}"
    );
}

// The query parameter enums `ItemOrder` and `MessageOrder` were referred to but not
// defined, so validators and schemathesis could not resolve `order_by`.
#[test]
fn every_schema_the_openapi_document_refers_to_is_defined() {
    let doc = openapi();
    let mut refs = Vec::new();
    references(&doc, &mut refs);
    assert!(!refs.is_empty());
    let mut dangling: Vec<_> = refs
        .into_iter()
        .filter(|r| {
            let name = r
                .strip_prefix("#/components/schemas/")
                .unwrap_or_else(|| panic!("unexpected reference {r}"));
            doc["components"]["schemas"].get(name).is_none()
        })
        .collect();
    dangling.sort();
    dangling.dedup();
    assert!(
        dangling.is_empty(),
        "references to undefined schemas: {dangling:?}"
    );
}

// schemathesis got 401 for requests without a token and 400 for malformed ids on routes
// whose documented statuses were only their successes and a few specific errors.
#[test]
fn every_operation_documents_the_errors_any_route_can_answer() {
    let doc = openapi();
    let mut missing = Vec::new();
    for (method, path, operation) in operations(&doc) {
        let takes_token = operation.get("security") != Some(&serde_json::json!([{}]));
        let mut expected = vec!["400"];
        if takes_token {
            expected.extend(["401", "403"]);
        }
        if path.contains('{') {
            expected.push("404");
        }
        for status in expected {
            let response = &operation["responses"][status];
            let body = &response["content"]["application/json"]["schema"]["$ref"];
            if body != "#/components/schemas/ErrorBody" {
                missing.push(format!("{method} {path} {status}"));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "undocumented error answers: {missing:#?}"
    );
}

/// True when `openapi.yaml` lets `method path` answer `status` with `content_type`: a
/// documented media type equal to it, or a range (`*/*`, `text/*`) covering it.
fn documents_media_type(
    doc: &serde_json::Value,
    method: &str,
    path: &str,
    status: &str,
    content_type: &str,
) -> bool {
    let essence = content_type.split(';').next().unwrap_or_default().trim();
    let (kind, _) = essence.split_once('/').expect("a media type");
    let content = &doc["paths"][path][method]["responses"][status]["content"];
    content.as_object().is_some_and(|types| {
        types
            .keys()
            .any(|t| t == essence || t == "*/*" || *t == format!("{kind}/*"))
    })
}

// schemathesis: an attachment's content came back as text/csv (and a file's as
// application/pdf) while the contract said application/octet-stream only. Downloads keep
// the file's own type on purpose, so the contract must allow any.
#[tokio::test]
async fn downloads_keep_the_files_own_content_type_and_the_contract_allows_it() {
    let app = crate::helpers::spawn_app().await;
    let doc = openapi();
    let encode = |s: &str| {
        percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
    };
    let fetch_type = |url: String| {
        let request = app.http.get(url).bearer_auth(&app.token);
        async move {
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), 200);
            response.headers()["content-type"]
                .to_str()
                .unwrap()
                .to_owned()
        }
    };

    let (status, files) = app.get("/api/v1/drives/me/root/children").await;
    assert_eq!(status, 200, "{files}");
    let pdf = files["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|item| item["name"].as_str().is_some_and(|n| n.ends_with(".pdf")))
        .expect("the demo OneDrive holds a PDF");
    let file_type = fetch_type(format!(
        "{}/api/v1/drives/me/items/{}/content",
        app.base,
        encode(pdf["id"].as_str().unwrap())
    ))
    .await;
    assert_eq!(file_type, "application/pdf");
    assert!(
        documents_media_type(
            &doc,
            "get",
            "/api/v1/drives/{drive}/items/{item}/content",
            "200",
            &file_type
        ),
        "a file download answers {file_type}, which openapi.yaml does not allow"
    );

    let (status, messages) = app
        .get("/api/v1/users/me/messages?folder=inbox&has_attachments=true&expand=attachments&limit=5")
        .await;
    assert_eq!(status, 200, "{messages}");
    let message = &messages["data"][0];
    let attachment = &message["attachments"][0];
    let attachment_type = fetch_type(format!(
        "{}/api/v1/users/me/messages/{}/attachments/{}/content",
        app.base,
        encode(message["id"].as_str().unwrap()),
        encode(attachment["id"].as_str().unwrap())
    ))
    .await;
    assert_eq!(
        Some(attachment_type.as_str()),
        attachment["content_type"].as_str()
    );
    assert_ne!(attachment_type, "application/octet-stream");
    assert!(
        documents_media_type(
            &doc,
            "get",
            "/api/v1/users/{id}/messages/{message}/attachments/{attachment}/content",
            "200",
            &attachment_type
        ),
        "an attachment download answers {attachment_type}, which openapi.yaml does not allow"
    );
}
