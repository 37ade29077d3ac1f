//! GraphQL over HTTP and operation limits (security catalogue rows 22–38): every refusal
//! has its status and `extensions.code`, carries no `data`, and costs no Graph call.

use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};

use crate::helpers::{TestApp, spawn_app, spawn_app_with, test_config};

const GQL: &str = "application/graphql-response+json";

/// POSTs `body` (JSON text) with `Accept: accept`; returns status, headers and body.
async fn post_raw(
    app: &TestApp,
    accept: Option<&str>,
    content_type: Option<&str>,
    body: String,
) -> (StatusCode, HeaderMap, Value) {
    let mut request = app
        .http
        .post(format!("{}/graphql", app.base))
        .bearer_auth(&app.token)
        .body(body);
    if let Some(accept) = accept {
        request = request.header("accept", accept);
    }
    if let Some(content_type) = content_type {
        request = request.header("content-type", content_type);
    }
    let response = request.send().await.expect("gateway answers");
    let status = response.status();
    let headers = response.headers().clone();
    let text = response.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, headers, body)
}

async fn post(app: &TestApp, body: Value) -> (StatusCode, Value) {
    let (status, _, body) =
        post_raw(app, Some(GQL), Some("application/json"), body.to_string()).await;
    (status, body)
}

fn code(body: &Value) -> &str {
    body["errors"][0]["extensions"]["code"]
        .as_str()
        .unwrap_or_default()
}

/// Asserts a request error: `status`, `code`, no `data`, and no Graph call made.
async fn refused(app: &TestApp, body: Value, status: StatusCode, expected: &str) -> Value {
    app.reset_stats().await;
    let (got, body) = post(app, body).await;
    assert_eq!(got, status, "{body}");
    assert_eq!(code(&body), expected, "{body}");
    assert!(
        body.get("data").is_none(),
        "a request error has no data: {body}"
    );
    assert_eq!(
        app.graph_requests().await,
        0,
        "a refused operation costs no Graph call"
    );
    body
}

#[tokio::test]
async fn a_manager_chain_forty_deep_is_refused_before_any_graph_call() {
    let app = spawn_app().await;
    let query = format!(
        "{{ user(id: \"u1\") {{ {} id {} }} }}",
        "manager {".repeat(40),
        "}".repeat(40)
    );
    refused(
        &app,
        json!({ "query": query }),
        StatusCode::BAD_REQUEST,
        "MAX_DEPTH_EXCEEDED",
    )
    .await;
}

#[tokio::test]
async fn a_three_level_fan_out_of_a_hundred_exceeds_the_cost_budget() {
    let app = spawn_app().await;
    let query = "{ user(id: \"u1\") { directReports(first: 100) { nodes { directReports(first: 100) { nodes { directReports(first: 100) { nodes { id } } } } } } } }";
    let body = refused(
        &app,
        json!({ "query": query }),
        StatusCode::BAD_REQUEST,
        "COST_LIMIT_EXCEEDED",
    )
    .await;
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("50000"),
        "{body}"
    );
}

#[tokio::test]
async fn connections_need_a_first_between_one_and_a_hundred() {
    let app = spawn_app().await;
    for first in ["0", "-1", "101"] {
        let query = format!("{{ users(first: {first}) {{ nodes {{ id }} }} }}");
        refused(
            &app,
            json!({ "query": query }),
            StatusCode::BAD_REQUEST,
            "BAD_USER_INPUT",
        )
        .await;
    }
    refused(
        &app,
        json!({ "query": "{ users { nodes { id } } }" }),
        StatusCode::BAD_REQUEST,
        "BAD_USER_INPUT",
    )
    .await;
    // Through a variable too.
    refused(
        &app,
        json!({ "query": "query($n: Int!) { users(first: $n) { nodes { id } } }", "variables": { "n": 1000 } }),
        StatusCode::BAD_REQUEST,
        "BAD_USER_INPUT",
    )
    .await;
    // Past i32, or not an integer at all.
    for first in ["2147483648", "1e9"] {
        let query = format!("{{ users(first: {first}) {{ nodes {{ id }} }} }}");
        refused(
            &app,
            json!({ "query": query }),
            StatusCode::BAD_REQUEST,
            "BAD_USER_INPUT",
        )
        .await;
    }
    let data = app
        .graphql_data("{ users(first: 3) { nodes { id } } }")
        .await;
    assert_eq!(data["users"]["nodes"].as_array().unwrap().len(), 3);
}

#[tokio::test]
async fn too_many_aliases_or_root_fields_are_refused_with_no_side_effect() {
    let app = spawn_app().await;
    let aliases: String = (0..1000).map(|i| format!("a{i}: me {{ id }} ")).collect();
    refused(
        &app,
        json!({ "query": format!("{{ {aliases} }}") }),
        StatusCode::BAD_REQUEST,
        "MAX_ROOT_FIELDS_EXCEEDED",
    )
    .await;

    let nested: String = (0..31).map(|i| format!("a{i}: displayName ")).collect();
    refused(
        &app,
        json!({ "query": format!("{{ me {{ {nested} }} }}") }),
        StatusCode::BAD_REQUEST,
        "MAX_ALIASES_EXCEEDED",
    )
    .await;

    let sends: String = (0..100)
        .map(|i| format!("s{i}: sendMail(mailbox: \"me\", message: {{ subject: \"x\", to: [\"a@b.example\"] }}) {{ accepted }} "))
        .collect();
    refused(
        &app,
        json!({ "query": format!("mutation {{ {sends} }}") }),
        StatusCode::BAD_REQUEST,
        "MAX_ROOT_FIELDS_EXCEEDED",
    )
    .await;
}

#[tokio::test]
async fn twenty_thousand_duplicate_fields_hit_the_token_limit_unparsed() {
    let app = spawn_app().await;
    let query = format!("{{ me {{ {} }} }}", "id ".repeat(20_000));
    refused(
        &app,
        json!({ "query": query }),
        StatusCode::BAD_REQUEST,
        "TOKEN_LIMIT_EXCEEDED",
    )
    .await;
}

#[tokio::test]
async fn fragment_cycles_fail_validation_and_fragment_bombs_are_cheap_to_refuse() {
    let app = spawn_app().await;
    let cycle = "query { me { ...A } } fragment A on User { manager { ...B } } fragment B on User { manager { ...A } }";
    refused(
        &app,
        json!({ "query": cycle }),
        StatusCode::BAD_REQUEST,
        "GRAPHQL_VALIDATION_FAILED",
    )
    .await;

    let mut bomb = String::from("query { me { ...F25 } } fragment F0 on User { id } ");
    for i in 1..=25 {
        bomb.push_str(&format!(
            "fragment F{i} on User {{ ...F{p} ...F{p} }} ",
            p = i - 1
        ));
    }
    // 2²⁵ selections once expanded: counted (each fragment once) and refused before
    // validation, which would expand them all.
    let started = std::time::Instant::now();
    refused(
        &app,
        json!({ "query": bomb }),
        StatusCode::BAD_REQUEST,
        "MAX_SELECTIONS_EXCEEDED",
    )
    .await;
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn absurd_nesting_is_refused_without_crashing_the_parser() {
    let app = spawn_app().await;
    let braces = format!("{}{}", "{a".repeat(10_000), "}".repeat(10_000));
    refused(
        &app,
        json!({ "query": braces }),
        StatusCode::BAD_REQUEST,
        "MAX_DEPTH_EXCEEDED",
    )
    .await;
    let lists = format!(
        "{{ user(id: {}\"x\"{}) {{ id }} }}",
        "[".repeat(5_000),
        "]".repeat(5_000)
    );
    refused(
        &app,
        json!({ "query": lists }),
        StatusCode::BAD_REQUEST,
        "MAX_DEPTH_EXCEEDED",
    )
    .await;
    // Still serving.
    app.graphql_data("{ me { id } }").await;
}

#[tokio::test]
async fn batches_are_off_by_default_and_bounded_and_summed_when_on() {
    let app = spawn_app().await;
    let two = json!([{ "query": "{ me { id } }" }, { "query": "{ me { id } }" }]);
    refused(&app, two, StatusCode::BAD_REQUEST, "BATCH_LIMIT_EXCEEDED").await;
    // An array is a batch, even of one.
    let one = json!([{ "query": "{ me { id } }" }]);
    refused(
        &app,
        one.clone(),
        StatusCode::BAD_REQUEST,
        "BATCH_LIMIT_EXCEEDED",
    )
    .await;
    let thousand = Value::Array(vec![json!({ "query": "{ me { id } }" }); 1000]);
    refused(
        &app,
        thousand,
        StatusCode::BAD_REQUEST,
        "BATCH_LIMIT_EXCEEDED",
    )
    .await;

    let mut config = test_config();
    config.graphql.max_batch = 3;
    config.graphql.max_cost = 500;
    config.rate_limit.cost_burst = 500;
    let app = spawn_app_with(config).await;
    let (status, body) = post(
        &app,
        json!([{ "query": "{ me { id } }" }, { "query": "{ users(first: 2) { nodes { id } } }" }]),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body[0]["data"]["me"]["id"].as_str().map(str::is_empty),
        Some(false),
        "{body}"
    );
    assert_eq!(
        body[1]["data"]["users"]["nodes"].as_array().unwrap().len(),
        2,
        "{body}"
    );
    // A batch of one is answered as a batch.
    let (status, body) = post(&app, json!([{ "query": "{ me { id } }" }])).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body[0]["data"]["me"]["id"].is_string(), "{body}");
    refused(
        &app,
        Value::Array(vec![json!({ "query": "{ me { id } }" }); 4]),
        StatusCode::BAD_REQUEST,
        "BATCH_LIMIT_EXCEEDED",
    )
    .await;
    // Each operation is within the budget (cost 301: 1 + 100 × 3), two together are not.
    let big = json!({ "query": "{ users(first: 100) { nodes { manager { manager { id } } } } }" });
    let (status, body) = post(&app, json!({ "query": big["query"] })).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    refused(
        &app,
        json!([big, big]),
        StatusCode::BAD_REQUEST,
        "COST_LIMIT_EXCEEDED",
    )
    .await;
}

#[tokio::test]
async fn list_arguments_above_twenty_items_are_bad_input() {
    let app = spawn_app().await;
    let users: Vec<String> = (0..10_000).map(|i| format!("u{i}@example.com")).collect();
    let query = "query($u: [String!]!) { schedule(users: $u, start: \"2026-01-05T08:00:00Z\", end: \"2026-01-05T18:00:00Z\") { scheduleId } }";
    refused(
        &app,
        json!({ "query": query, "variables": { "u": users } }),
        StatusCode::BAD_REQUEST,
        "BAD_USER_INPUT",
    )
    .await;
    let literal = format!(
        "{{ schedule(users: [{}], start: \"2026-01-05T08:00:00Z\", end: \"2026-01-05T18:00:00Z\") {{ scheduleId }} }}",
        (0..21)
            .map(|i| format!("\"u{i}@example.com\""))
            .collect::<Vec<_>>()
            .join(",")
    );
    refused(
        &app,
        json!({ "query": literal }),
        StatusCode::BAD_REQUEST,
        "BAD_USER_INPUT",
    )
    .await;
}

#[tokio::test]
async fn production_hides_introspection_suggestions_and_graphiql_except_for_allowed_callers() {
    let emulator = graph_emulator::Emulator::spawn(Default::default(), crate::helpers::loopback())
        .await
        .unwrap();
    let mut config = crate::helpers::real_mode_config(
        &emulator,
        graph_emulator::DEFAULT_CLIENT_ID,
        (
            "frontend",
            m365_gateway::config::CallerMode::App,
            &["users.read"],
            &["*"],
        ),
    );
    config.graph.client_secret = Some(m365_gateway::config::Secret::new(
        graph_emulator::DEFAULT_CLIENT_SECRET,
    ));
    // Production mode against the emulator standing in for Microsoft's cloud, with a
    // store that survives a restart (production refuses an in-memory one).
    config.production = true;
    config.store.url = format!(
        "sqlite://{}/gateway.db",
        std::env::temp_dir()
            .join(format!("m365gw-prod-{}", uuid::Uuid::new_v4()))
            .display()
    );
    config.store.encryption.keys.insert(
        "k1".into(),
        base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            std::array::from_fn::<u8, 32, _>(|i| i as u8 * 7 + 1),
        ),
    );
    config.graphql.introspection_callers = vec!["frontend".into()];
    let mut app = spawn_app_with(config.clone()).await;
    app.token = crate::helpers::test_token("frontend", None);

    // Allow-listed: introspection works.
    let (status, body) = post(
        &app,
        json!({ "query": "{ __schema { queryType { name } } }" }),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["__schema"]["queryType"]["name"], "Query");

    // Another caller: refused, though __typename still answers.
    config.callers.insert("other".into(), {
        let mut other = config.callers["frontend"].clone();
        other.client_id = "other".into();
        other
    });
    let mut app = spawn_app_with(config).await;
    app.token = crate::helpers::test_token("other", None);
    for query in [
        "{ __schema { types { name fields { name } } } }",
        "{ __type(name: \"User\") { fields { name } } }",
    ] {
        refused(
            &app,
            json!({ "query": query }),
            StatusCode::BAD_REQUEST,
            "INTROSPECTION_DISABLED",
        )
        .await;
    }
    let (_, body) = post(&app, json!({ "query": "{ __typename }" })).await;
    assert_eq!(body["data"]["__typename"], "Query", "{body}");

    // No "did you mean".
    let (status, body) = post(&app, json!({ "query": "{ usr { id } }" })).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(!body.to_string().contains("Did you mean"), "{body}");

    // No GraphiQL, on either path.
    let response = app
        .http
        .get(format!("{}/graphiql", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let response = app
        .http
        .get(format!("{}/graphql", app.base))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn in_development_suggestions_help_and_a_browser_is_sent_to_graphiql() {
    let app = spawn_app().await;
    let (status, body) = post(&app, json!({ "query": "{ usr { id } }" })).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.to_string().contains("Did you mean"), "{body}");
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let response = client
        .get(format!("{}/graphql", app.base))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(response.headers()["location"], "/graphiql");
}

#[tokio::test]
async fn a_mutation_sent_with_get_is_405_and_never_runs() {
    let app = spawn_app().await;
    app.reset_stats().await;
    let response = app
        .http
        .get(format!("{}/graphql", app.base))
        .query(&[("query", "mutation { sendMail(mailbox: \"me\", message: { subject: \"x\", to: [\"a@b.example\"] }) { accepted } }")])
        .header("accept", GQL)
        .bearer_auth(&app.token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(response.headers()["allow"], "POST");
    let body: Value = response.json().await.unwrap();
    assert_eq!(code(&body), "METHOD_NOT_ALLOWED");
    assert_eq!(app.graph_requests().await, 0);

    // A query over GET works, with its variables as JSON text.
    let response = app
        .http
        .get(format!("{}/graphql", app.base))
        .query(&[
            (
                "query",
                "query($n: Int!) { users(first: $n) { nodes { id } } }",
            ),
            ("variables", "{\"n\": 2}"),
        ])
        .bearer_auth(&app.token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body["data"]["users"]["nodes"].as_array().unwrap().len(),
        2,
        "{body}"
    );
}

#[tokio::test]
async fn bodies_a_html_form_could_send_are_415() {
    let app = spawn_app().await;
    let query = json!({ "query": "{ me { id } }" }).to_string();
    for content_type in [
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        Some("multipart/form-data; boundary=x"),
        None,
    ] {
        let (status, _, body) = post_raw(&app, Some(GQL), content_type, query.clone()).await;
        assert_eq!(
            status,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "{content_type:?}: {body}"
        );
        assert_eq!(code(&body), "UNSUPPORTED_MEDIA_TYPE");
    }
}

#[tokio::test]
async fn request_errors_follow_the_media_type_the_client_accepts() {
    let app = spawn_app().await;
    let cases = [
        (
            "{ \"not a JSON",
            StatusCode::BAD_REQUEST,
            StatusCode::BAD_REQUEST,
        ),
        (
            "{\"query\": {\"obj\": \"ect\"}}",
            StatusCode::BAD_REQUEST,
            StatusCode::BAD_REQUEST,
        ),
        (
            "{\"query\": \"{ me { id } }\", \"variables\": \"string\"}",
            StatusCode::BAD_REQUEST,
            StatusCode::BAD_REQUEST,
        ),
        (
            "{\"qeury\": \"{ me { id } }\"}",
            StatusCode::BAD_REQUEST,
            StatusCode::BAD_REQUEST,
        ),
        ("", StatusCode::BAD_REQUEST, StatusCode::BAD_REQUEST),
        // Parse and validation failures: 400 for the GraphQL media type, 200 for JSON.
        (
            "{\"query\": \"{\"}",
            StatusCode::BAD_REQUEST,
            StatusCode::OK,
        ),
        (
            "{\"query\": \"{ nosuchfield }\"}",
            StatusCode::BAD_REQUEST,
            StatusCode::OK,
        ),
        (
            "{\"query\": \"query($id: ID!) { __typename }\"}",
            StatusCode::BAD_REQUEST,
            StatusCode::OK,
        ),
    ];
    for (body, graphql_status, json_status) in cases {
        let (status, headers, got) =
            post_raw(&app, Some(GQL), Some("application/json"), body.into()).await;
        assert_eq!(status, graphql_status, "{body}: {got}");
        assert!(headers["content-type"].to_str().unwrap().starts_with(GQL));
        assert!(got.get("data").is_none(), "{body}: {got}");
        let (status, headers, got) = post_raw(
            &app,
            Some("application/json"),
            Some("application/json"),
            body.into(),
        )
        .await;
        assert_eq!(status, json_status, "{body}: {got}");
        assert!(
            headers["content-type"]
                .to_str()
                .unwrap()
                .starts_with("application/json")
        );
        assert!(got.get("data").is_none(), "{body}: {got}");
    }
    // Null parameters are allowed.
    let (status, _, got) = post_raw(
        &app,
        None,
        Some("application/json; charset=utf-8"),
        json!({ "query": "{ __typename }", "operationName": null, "variables": null, "extensions": null }).to_string(),
    )
    .await;
    assert_eq!(
        (status, &got["data"]["__typename"]),
        (StatusCode::OK, &json!("Query")),
        "{got}"
    );
    // An Accept the gateway cannot answer.
    let (status, _, _) = post_raw(
        &app,
        Some("image/png"),
        Some("application/json"),
        "{}".into(),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_ACCEPTABLE);
}

#[tokio::test]
async fn a_two_megabyte_document_is_413() {
    let app = spawn_app().await;
    let query = format!("{{ me {{ id }} }} # {}", "x".repeat(2 * 1024 * 1024));
    let (status, _, body) = post_raw(
        &app,
        Some(GQL),
        Some("application/json"),
        json!({ "query": query }).to_string(),
    )
    .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
}

#[tokio::test]
async fn persisted_operations_run_by_hash_and_trusted_only_callers_run_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let trusted = "query Me { me { displayName } }";
    let hash = m365_gateway::graphql::persisted::sha256_hex(trusted);
    let manifest = dir.path().join("manifest.json");
    std::fs::write(
        &manifest,
        json!({ "format": "apollo-persisted-query-manifest", "version": 1, "operations": [{ "id": hash, "body": trusted, "name": "Me", "type": "query" }] }).to_string(),
    )
    .unwrap();
    let mut config = test_config();
    config.graphql.persisted_operations = Some(manifest.clone());
    let app = spawn_app_with(config.clone()).await;

    // By hash, Apollo's way and the documentId way.
    let by_hash =
        json!({ "extensions": { "persistedQuery": { "version": 1, "sha256Hash": hash } } });
    let (status, body) = post(&app, by_hash.clone()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["data"]["me"]["displayName"].is_string(), "{body}");
    let (_, body) = post(&app, json!({ "documentId": format!("sha256:{hash}") })).await;
    assert!(body["data"]["me"]["displayName"].is_string(), "{body}");

    // APQ: an unknown hash asks for the text; after that, the hash is enough.
    let other = "{ me { id } }";
    let other_hash = m365_gateway::graphql::persisted::sha256_hex(other);
    let apq =
        json!({ "extensions": { "persistedQuery": { "version": 1, "sha256Hash": other_hash } } });
    let (status, body) = post(&app, apq.clone()).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::BAD_REQUEST, "PERSISTED_QUERY_NOT_FOUND"),
        "{body}"
    );
    assert_eq!(body["errors"][0]["message"], "PersistedQueryNotFound");
    let mut with_text = apq.clone();
    with_text["query"] = json!(other);
    let (status, _) = post(&app, with_text).await;
    assert_eq!(status, StatusCode::OK);
    let (_, body) = post(&app, apq.clone()).await;
    assert!(body["data"]["me"]["id"].is_string(), "{body}");
    // A hash that is not the text's.
    let mut lying = apq.clone();
    lying["query"] = json!("{ __typename }");
    refused(&app, lying, StatusCode::BAD_REQUEST, "BAD_USER_INPUT").await;

    // The demo caller on trusted documents only.
    config.graphql.persisted_only_callers = vec![m365_gateway::config::DEMO_CALLER.into()];
    let app = spawn_app_with(config).await;
    let (status, body) = post(&app, by_hash).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    refused(
        &app,
        json!({ "query": other }),
        StatusCode::FORBIDDEN,
        "PERSISTED_QUERY_REQUIRED",
    )
    .await;
    let mut register = apq.clone();
    register["query"] = json!(other);
    refused(
        &app,
        register,
        StatusCode::FORBIDDEN,
        "PERSISTED_QUERY_REQUIRED",
    )
    .await;
    // The full text of a trusted document is fine.
    let (status, body) = post(&app, json!({ "query": trusted })).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn a_manifest_entry_whose_hash_is_wrong_stops_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("manifest.json");
    std::fs::write(&manifest, json!({ "0000000000000000000000000000000000000000000000000000000000000000": "{ me { id } }" }).to_string()).unwrap();
    let mut config = test_config();
    config.graphql.persisted_operations = Some(manifest);
    let error = m365_gateway::App::build(config)
        .await
        .err()
        .expect("refused");
    assert!(error.to_string().contains("not the SHA-256"), "{error}");
}
