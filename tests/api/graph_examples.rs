//! Every directory response from Microsoft's documentation parses into the gateway's
//! Graph models. The records are copied from `shared/graph-examples/examples.jsonl`
//! into `tests/fixtures/graph-examples/directory.jsonl` (see the README there).

use m365_gateway::graph::models::{Collection, Group, User};
use serde_json::Value;

fn records() -> Vec<Value> {
    include_str!("../fixtures/graph-examples/directory.jsonl")
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).expect("a JSON record"))
        .collect()
}

#[test]
fn every_documented_directory_response_parses_into_the_models() {
    let records = records();
    let pages: std::collections::BTreeSet<&str> = records
        .iter()
        .map(|r| r["page"].as_str().unwrap())
        .collect();
    for page in [
        "user-get",
        "user-list",
        "user-list-manager",
        "user-list-directreports",
        "user-list-memberof",
    ] {
        assert!(pages.contains(page), "fixture lacks {page}");
    }
    let mut parsed = 0;
    for record in &records {
        let body = &record["response"]["body"];
        let name = record["name"].as_str().unwrap();
        let path = record["request"]["path"].as_str().unwrap();
        if body.is_string() {
            // `$count` answers are text/plain numbers.
            assert!(body.as_str().unwrap().parse::<u64>().is_ok(), "{name}");
            continue;
        }
        if body.get("value").is_some() {
            if path.contains("memberOf") {
                serde_json::from_value::<Collection<Group>>(body.clone())
                    .unwrap_or_else(|e| panic!("{name}: {e}"));
            } else {
                serde_json::from_value::<Collection<User>>(body.clone())
                    .unwrap_or_else(|e| panic!("{name}: {e}"));
            }
        } else {
            let user: User =
                serde_json::from_value(body.clone()).unwrap_or_else(|e| panic!("{name}: {e}"));
            // Expanded manager chains parse recursively.
            if body.get("manager").is_some() {
                assert!(user.manager.is_some(), "{name}");
            }
        }
        parsed += 1;
    }
    assert!(parsed >= 12, "parsed only {parsed} bodies");
}
