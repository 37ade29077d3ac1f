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
