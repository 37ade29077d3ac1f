//! The binary's subcommands.

use std::process::Command;

use serde_json::json;

use crate::helpers::spawn_app;

fn gateway() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_m365-gateway"));
    command.env_remove("M365GW_CONFIG").env("NO_COLOR", "1");
    command
}

#[test]
fn check_config_explains_every_problem_and_fails() {
    let dir = std::env::temp_dir().join(format!("m365gw-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("bad.toml");
    std::fs::write(
        &file,
        r#"
[graph]
client_id = "abc"
[issuers.internal]
issuer = "https://idp.example"
audiences = ["gw"]
kind = "hs256"
secret = "short-secret-value"
"#,
    )
    .unwrap();
    let output = gateway()
        .arg("check-config")
        .arg("--config")
        .arg(&file)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    for key in [
        "graph.tenant_id",
        "graph.client_secret",
        "issuers.internal.secret",
    ] {
        assert!(stderr.contains(key), "{key} not explained: {stderr}");
    }
    assert!(
        !stderr.contains("short-secret-value"),
        "secret printed: {stderr}"
    );
}

#[test]
fn check_config_accepts_the_embedded_default() {
    let output = gateway().arg("check-config").output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(String::from_utf8_lossy(&output.stdout).contains("built-in emulator"));
}

#[test]
fn environment_variables_override_the_file_with_double_underscore_nesting() {
    let output = gateway()
        .arg("check-config")
        .env("M365GW_GRAPH__BATCH_SIZE", "50")
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("graph.batch_size"));
}

#[test]
fn schema_and_openapi_print_the_contracts() {
    let sdl = gateway().arg("schema").output().unwrap();
    assert_eq!(
        String::from_utf8(sdl.stdout).unwrap(),
        m365_gateway::graphql::sdl()
    );
    let openapi = gateway().arg("openapi").output().unwrap();
    assert_eq!(
        String::from_utf8(openapi.stdout).unwrap(),
        m365_gateway::rest::openapi_yaml()
    );
}

#[tokio::test]
async fn dev_token_prints_a_token_the_gateway_accepts() {
    let app = spawn_app().await;
    let output = gateway()
        .args(["dev-token", "--ttl", "5m"])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let token = String::from_utf8(output.stdout).unwrap().trim().to_owned();
    let (_, body) = app
        .graphql_as(Some(&token), "{ me { userPrincipalName } }", json!({}))
        .await;
    assert!(body.get("errors").is_none(), "{body}");
    let unknown = gateway()
        .args(["dev-token", "--caller", "nobody"])
        .output()
        .unwrap();
    assert!(!unknown.status.success());
}

#[test]
fn every_subcommand_has_help() {
    for sub in [
        "serve",
        "emulator",
        "dev-token",
        "schema",
        "openapi",
        "check-config",
    ] {
        let output = gateway().args([sub, "--help"]).output().unwrap();
        assert!(output.status.success(), "{sub} --help failed");
    }
}
