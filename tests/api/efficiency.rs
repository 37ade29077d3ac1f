//! What a query costs in Graph calls, measured through the emulator's stats.

use futures::future::join_all;

use crate::helpers::spawn_app;

const ORG_CHART: &str = "{ users(first: 50) { nodes { displayName manager { displayName } directReports(first: 10) { nodes { displayName } } } } }";

#[tokio::test]
async fn the_org_chart_query_costs_at_most_six_graph_requests_cold_and_none_warm() {
    let app = spawn_app().await;
    app.reset_stats().await;

    let cold = app.graphql_data(ORG_CHART).await;
    let nodes = cold["users"]["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 50);
    // The answer is complete: every non-CEO has a manager, and managers have reports.
    assert!(nodes.iter().filter(|n| n["manager"].is_null()).count() <= 1);
    assert!(
        nodes
            .iter()
            .any(|n| !n["directReports"]["nodes"].as_array().unwrap().is_empty())
    );
    let stats = app.stats().await;
    let cold_requests = stats["graph_requests"].as_u64().unwrap();
    assert!(
        cold_requests <= 6,
        "cold query cost {cold_requests} Graph requests: {stats}"
    );
    // Managers come with the list ($expand); the 50 report lookups fill 20-item batches.
    assert_eq!(stats["routes"]["GET /users"].as_u64(), Some(1), "{stats}");
    assert_eq!(stats["routes"]["POST /$batch"].as_u64(), Some(3), "{stats}");

    let warm = app.graphql_data(ORG_CHART).await;
    assert_eq!(warm, cold);
    assert_eq!(
        app.graph_requests().await,
        cold_requests,
        "warm query reached Graph"
    );
}

#[tokio::test]
async fn relationship_lookups_are_packed_twenty_to_a_batch() {
    let app = spawn_app().await;
    app.reset_stats().await;
    // 40 users each with a direct-reports lookup and no manager expansion.
    app.graphql_data("{ users(first: 40) { nodes { directReports(first: 3) { nodes { id } } } } }")
        .await;
    let stats = app.stats().await;
    assert_eq!(stats["batch_items"].as_u64(), Some(40), "{stats}");
    assert_eq!(stats["routes"]["POST /$batch"].as_u64(), Some(2), "{stats}");
    assert_eq!(stats["graph_requests"].as_u64(), Some(3), "{stats}");
}

#[tokio::test]
async fn many_concurrent_requests_on_a_cold_gateway_fetch_one_token() {
    let app = spawn_app().await;
    let queries = (0..50).map(|_| app.graphql_data("{ me { displayName } }"));
    join_all(queries).await;
    let stats = app.stats().await;
    assert_eq!(stats["token_requests"].as_u64(), Some(1), "{stats}");
}

#[tokio::test]
async fn identical_concurrent_queries_share_one_graph_call() {
    let app = spawn_app().await;
    app.graphql_data("{ me { id } }").await; // token and me warmed
    app.reset_stats().await;
    let queries = (0..20).map(|_| {
        app.graphql_data(
            "{ users(first: 5, filter: { department: \"Finance\" }) { nodes { id } } }",
        )
    });
    join_all(queries).await;
    assert_eq!(app.graph_requests().await, 1);
}

#[tokio::test]
async fn a_manager_chain_within_the_listed_people_costs_one_graph_request() {
    let app = spawn_app().await;
    app.graphql_data("{ me { id } }").await;
    app.reset_stats().await;
    // Every one of the 60 people is listed, so every manager's manager is already known
    // from the list's own `$expand=manager`.
    let data = app
        .graphql_data(
            "{ users(first: 100) { nodes { id manager { id manager { id manager { id } } } } } }",
        )
        .await;
    let nodes = data["users"]["nodes"].as_array().unwrap();
    assert!(nodes.len() >= 60);
    let with_grand_manager = nodes
        .iter()
        .filter(|n| !n["manager"]["manager"].is_null())
        .count();
    assert!(with_grand_manager > 10, "{data}");
    assert_eq!(app.graph_requests().await, 1, "{}", app.stats().await);
}
